//! The fake-quant OAMP net and its QAT surrogate: the fake-quant forward is the golden
//! model's, the surrogate's forward is the fake-quant forward, its gradient the
//! finite-difference gradient of the taped surrogate, and a trained net lowers to an IR whose
//! golden model agrees with its fake-quant net.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::oamp_qat::{FakeQuantOamp, OampTape, QatOamp, quantize_oamp, train_qat_mse_oamp};
use super::oamp_quant::OampQuantOptions;
use super::testing::agreement;
use super::train::GramTrainConfig;
use super::{Family, GramConfig, GramNet};
use crate::detect::Detector;
use crate::link::LinkConfig;
use crate::mmd::KernelMode;
use crate::modulation::Modulation;
use crate::quant::kaq::KaqConfig;
use crate::train::{Forward, Trainable};
use crate::unfolded::F32Frames;
use kaq_ir::gram::oamp::OampInterpreter;

fn small_net(seed: u64, nt: usize, nr: usize, layers: usize) -> GramNet {
    let link = LinkConfig::new(nt, nr, Modulation::Qam16).unwrap();
    let config = GramConfig {
        family: Family::Oamp,
        layers,
        inner: 0,
    };
    let mut net = GramNet::new(config, &link).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for v in net.params_mut() {
        *v += rng.random_range(-0.1..0.1);
    }
    net
}

fn frames(net: &GramNet, count: usize, block: usize, seed: u64) -> crate::link::FrameBatch {
    frames_at(net, count, block, seed, (8.0, 28.0))
}

fn frames_at(
    net: &GramNet,
    count: usize,
    block: usize,
    seed: u64,
    snr: (f64, f64),
) -> crate::link::FrameBatch {
    let link = net.link().clone().with_block(block).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let snr: Vec<f64> = (0..count.div_ceil(block))
        .flat_map(|_| std::iter::repeat_n(rng.random_range(snr.0..snr.1), block))
        .take(count)
        .collect();
    link.generator().unwrap().generate(&snr, &mut rng)
}

fn ptq(net: &GramNet, bits: u32) -> FakeQuantOamp {
    ptq_at(net, bits, (15.0, 27.0))
}

fn ptq_at(net: &GramNet, bits: u32, calib_snr: (f64, f64)) -> FakeQuantOamp {
    let mut opts = OampQuantOptions::new(bits);
    opts.calib_snr = calib_snr;
    opts.calib_frames = 300;
    opts.buckets = 16;
    quantize_oamp(net, &opts).unwrap()
}

/// The golden model's last-layer state codes of every frame (its taps, block by block).
fn golden_codes(golden: &OampInterpreter, batch: &crate::link::FrameBatch) -> Vec<i64> {
    let (m, n) = (batch.m, batch.n);
    let mut out = Vec::new();
    for f in 0..batch.frames {
        let h: Vec<i64> = batch.h[f * m * n..(f + 1) * m * n]
            .iter()
            .map(|&v| golden.quantize_h(v as f32))
            .collect();
        let y: Vec<i64> = batch.y[f * m..(f + 1) * m]
            .iter()
            .map(|&v| golden.quantize_y(v as f32))
            .collect();
        let bin = golden.ir().bin_of(batch.noise_var[f] as f32);
        let (_, taps) = golden.run_block_codes(&h, &y, bin).unwrap();
        out.extend_from_slice(&taps[0].layers.last().unwrap().x);
    }
    out
}

#[test]
fn fake_quant_forward_is_the_golden_model() {
    for (seed, bits, nt, layers) in [(1u64, 8u32, 3usize, 3usize), (2, 6, 4, 4), (3, 4, 2, 2)] {
        let net = small_net(seed, nt, nt + 1, layers);
        let fq = ptq(&net, bits);
        let golden = OampInterpreter::new(fq.ir().clone()).unwrap();
        let batch = frames(&net, 300, 1, seed);
        let a = fq.forward_codes(&batch).unwrap();
        let b = golden_codes(&golden, &batch);
        assert_eq!(a, b, "bits {bits}: state codes differ");
        let link = net.link().clone().with_block(5).unwrap();
        let (same, total) = agreement(&link, &fq, &golden, (8.0, 28.0), 400, seed);
        assert_eq!(same, total, "bits {bits}");
    }
}

#[test]
fn surrogate_forward_is_the_fake_quant_forward() {
    for (seed, bits) in [(4u64, 6u32), (5, 8)] {
        let net = small_net(seed, 3, 4, 3);
        let fq = ptq(&net, bits);
        let qat = QatOamp::new(&fq);
        let batch = frames(&net, 60, 5, seed);
        let data = F32Frames::from_frames(&batch, 0..batch.frames).unwrap();
        let mut out = vec![0f32; batch.frames * batch.n];
        qat.forward(&data.as_batch(), &mut out);
        let codes = fq.forward_codes(&batch).unwrap();
        let step = 2f32.powi(-fq.ir().state.frac());
        for (i, (&o, &c)) in out.iter().zip(&codes).enumerate() {
            assert_eq!(o, c as f32 * step, "bits {bits}, value {i}");
        }
    }
}

/// The finite-difference tests' SNR range (calibration and frames): at high SNR τ² is tiny and
/// the posterior mean a near-step in r, whose curvature central differences cannot resolve.
const FD_SNR: (f64, f64) = (-6.0, 0.0);

/// The taped loss's gradient against central differences, every parameter; returns it.
fn check_gradient(mut qat: QatOamp, batch: &crate::link::FrameBatch) -> Vec<f64> {
    let names = qat.net().param_names();
    let data = F32Frames::from_frames(batch, 0..batch.frames).unwrap();
    qat.freeze_constants();
    let mut tapes = vec![OampTape::default(); batch.frames];
    let (_, grad) = qat
        .loss_and_grad_taped(&data.as_batch(), &mut tapes)
        .unwrap();
    tapes.iter_mut().for_each(|t| t.replay = true);
    let p0: Vec<f32> = qat.net().params().to_vec();
    let gmax = grad.iter().fold(0.0f64, |a, g| a.max(g.abs()));
    assert!(gmax > 0.0, "zero gradient");
    for i in 0..p0.len() {
        // Small steps (the loss is in f64) and Richardson's extrapolation of two central
        // differences (their h² terms cancel): near a decision boundary the posterior mean at
        // the table's smallest τ² is steep and its curvature large.
        let mut at = |v: f32| {
            let mut p = p0.clone();
            p[i] = v;
            qat.params_mut().copy_from_slice(&p);
            qat.loss_and_grad_taped(&data.as_batch(), &mut tapes)
                .unwrap()
                .0
        };
        let mut central = |h: f32| {
            let (plus, minus) = (at(p0[i] + h), at(p0[i] - h));
            (plus - minus) / (f64::from(p0[i] + h) - f64::from(p0[i] - h))
        };
        let (d1, d2) = (central(4e-6), central(2e-6));
        let fd = (4.0 * d2 - d1) / 3.0;
        let tol = 3e-2 * fd.abs().max(grad[i].abs()) + 1e-4 * gmax + 1e-7;
        assert!(
            (fd - grad[i]).abs() <= tol,
            "{}: analytic {} vs finite difference {fd}",
            names[i],
            grad[i]
        );
    }
    grad
}

#[test]
fn surrogate_gradient_matches_central_differences() {
    // At 8 bits. At 4 and 6 bits most seeds put some vector near a tie of the posterior at
    // the table's smallest τ² in every layer; the gradient there reaches 1e5–1e8 over a span
    // below the f32 parameters' resolution, which central differences cannot follow.
    let net = small_net(7, 3, 4, 3);
    let batch = frames_at(&net, 12, 3, 9, FD_SNR);
    check_gradient(QatOamp::new(&ptq_at(&net, 8, FD_SNR)), &batch);
}

#[test]
fn kaq_mmd_gradient_matches_central_differences() {
    let net = small_net(7, 3, 4, 3);
    let fq = ptq_at(&net, 8, FD_SNR);
    let qat = QatOamp::new(&fq)
        .with_mmd(&KaqConfig {
            epsilon: 10.0,
            kernel: KernelMode::Multi,
        })
        .unwrap();
    // The teacher is the f32 net; the student's quantized layer outputs differ from its.
    let batch = frames_at(&net, 12, 3, 9, FD_SNR);
    let mse_only = {
        let mut plain = QatOamp::new(&fq);
        plain.params_mut().copy_from_slice(qat.net().params());
        check_gradient(plain, &batch)
    };
    let with_mmd = check_gradient(qat, &batch);
    assert!(
        mse_only
            .iter()
            .zip(&with_mmd)
            .any(|(a, b)| (a - b).abs() > 1e-3 * a.abs().max(1e-3)),
        "the MMD term changed no gradient entry"
    );
}

#[test]
fn kaq_with_zero_epsilon_is_mse_training() {
    let net = small_net(5, 3, 4, 3);
    let fq = ptq(&net, 6);
    let batch = frames(&net, 24, 4, 2);
    let data = F32Frames::from_frames(&batch, 0..batch.frames).unwrap();
    let zero = QatOamp::new(&fq)
        .with_mmd(&KaqConfig {
            epsilon: 0.0,
            kernel: KernelMode::Median,
        })
        .unwrap();
    let len = net.params().len();
    let (mut g1, mut g2) = (vec![0f32; len], vec![0f32; len]);
    let l1 = QatOamp::new(&fq).loss_and_grad(&data.as_batch(), &mut g1);
    let l2 = zero.loss_and_grad(&data.as_batch(), &mut g2);
    assert_eq!(l1, l2);
    assert_eq!(g1, g2);
    let with = QatOamp::new(&fq)
        .with_mmd(&KaqConfig {
            epsilon: 10.0,
            kernel: KernelMode::Median,
        })
        .unwrap();
    let l3 = with.loss_and_grad(&data.as_batch(), &mut g2);
    assert!(l3 >= l1, "{l3} < {l1}");
    assert!(
        QatOamp::new(&fq)
            .with_mmd(&KaqConfig {
                epsilon: 1.0,
                kernel: KernelMode::Learnable,
            })
            .is_err()
    );
}

#[test]
fn trained_net_lowers_and_agrees_with_its_golden_model() {
    let net = small_net(11, 4, 4, 4);
    let fq = ptq(&net, 6);
    let mut qat = QatOamp::new(&fq);
    let batch = frames(&net, 64, 4, 12);
    let data = F32Frames::from_frames(&batch, 0..batch.frames).unwrap();
    let mut grad = vec![0f32; net.params().len()];
    for _ in 0..5 {
        qat.loss_and_grad(&data.as_batch(), &mut grad);
        for (v, g) in qat.params_mut().iter_mut().zip(&grad) {
            *v -= 0.05 * g.signum();
        }
    }
    assert_ne!(qat.net().params(), net.params());
    let fq2 = qat.fake_quant().unwrap();
    assert_ne!(
        fq2.ir().layers,
        fq.ir().layers,
        "the constants did not change"
    );
    assert_eq!(
        fq2.ir().block,
        fq.ir().block,
        "the formats and the bank are kept"
    );
    let golden = OampInterpreter::new(fq2.ir().clone()).unwrap();
    let link = net.link().clone().with_block(7).unwrap();
    let (same, total) = agreement(&link, &golden, &fq2, (8.0, 28.0), 700, 13);
    assert!(
        same as f64 >= 0.999 * total as f64,
        "{same} of {total} decisions agree"
    );
    let test = frames(&net, 200, 7, 13);
    let data = F32Frames::from_frames(&test, 0..test.frames).unwrap();
    let mut out = vec![0f32; test.frames * test.n];
    qat.forward(&data.as_batch(), &mut out);
    let step = 2f32.powi(-fq2.ir().state.frac());
    let codes = fq2.forward_codes(&test).unwrap();
    assert!(out.iter().zip(&codes).all(|(&o, &c)| o == c as f32 * step));
}

#[test]
fn qat_mse_training_lowers_the_training_loss() {
    let net = small_net(21, 3, 4, 3);
    let fq = ptq(&net, 4);
    let mut config = GramTrainConfig::new(net.link().clone(), net.config().clone());
    config.samples = 512;
    config.val_samples = 64;
    config.epochs = 3;
    config.lr = 5e-3;
    config.val_ber_frames = 64;
    let (qat, history) = train_qat_mse_oamp(&fq, &config, &mut |_| {}).unwrap();
    assert_eq!(history.len(), 3);
    assert_ne!(qat.net().params(), net.params());
    assert!(qat.lower().is_ok());
    // Refused: a config of another net.
    let mut other = config.clone();
    other.net.layers = 2;
    assert!(train_qat_mse_oamp(&fq, &other, &mut |_| {}).is_err());
    let _ = fq.name();
}

/// The trained oamp-k10 (16×16 16-QAM): at 8 and 6 bits the fake-quant net's last-layer state
/// codes are the golden model's on every vector (full-size sums, 18–30 dB).
#[test]
fn trained_oamp_k10_fake_quant_is_its_golden_model() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/gram/oamp-k10.model.json");
    let file = super::file::GramModelFile::load(&path).expect("model file");
    for bits in [8u32, 6] {
        let mut opts = OampQuantOptions::new(bits);
        opts.calib_frames = 300;
        let fq = quantize_oamp(&file.net, &opts).unwrap();
        let golden = OampInterpreter::new(fq.ir().clone()).unwrap();
        let batch = frames_at(&file.net, 24, 1, bits.into(), (18.0, 30.0));
        assert_eq!(
            fq.forward_codes(&batch).unwrap(),
            golden_codes(&golden, &batch),
            "bits {bits}"
        );
    }
}
