//! The QAT surrogate of the cg net: its forward is the fake-quant net's, its gradient the
//! finite-difference gradient of the taped surrogate, and a trained net lowers to an IR whose
//! golden model agrees with the fake-quant net.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::cg::Tape;
use super::qat::QatCg;
use super::quantized::{CgQuantOptions, CgTensor, quantize_cg};
use super::{Family, GramConfig, GramNet};
use crate::detect::Detector;
use crate::link::LinkConfig;
use crate::mmd::KernelMode;
use crate::modulation::Modulation;
use crate::quant::kaq::KaqConfig;
use crate::train::Forward;
use crate::unfolded::F32Frames;
use kaq_ir::gram::GramInterpreter;

fn small_net(seed: u64) -> GramNet {
    let link = LinkConfig::new(3, 4, Modulation::Qam16).unwrap();
    let config = GramConfig {
        family: Family::Cg,
        layers: 3,
        inner: 3,
    };
    let mut net = GramNet::new(config, &link).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for v in net.params_mut() {
        *v += rng.random_range(-0.2..0.2);
    }
    net
}

fn frames(net: &GramNet, count: usize, block: usize, seed: u64) -> crate::link::FrameBatch {
    let link = net.link().clone().with_block(block).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let snr: Vec<f64> = (0..count.div_ceil(block))
        .flat_map(|_| std::iter::repeat_n(rng.random_range(8.0..25.0), block))
        .take(count)
        .collect();
    link.generator().unwrap().generate(&snr, &mut rng)
}

#[test]
fn surrogate_forward_is_the_fake_quant_forward() {
    for (seed, bits) in [(1u64, 6u32), (2, 8), (3, 4)] {
        let net = small_net(seed);
        let mut opts = CgQuantOptions::new(bits);
        opts.calib_frames = 300;
        let fq = quantize_cg(&net, &opts).unwrap();
        let qat = QatCg::new(&fq);
        let batch = frames(&net, 60, 5, seed);
        let data = F32Frames::from_frames(&batch, 0..batch.frames).unwrap();
        let mut out = vec![0f32; batch.frames * batch.n];
        qat.forward(&data.as_batch(), &mut out);
        let codes = fq.forward_codes(&batch);
        let step = 2f32.powi(-fq.ir().state.frac());
        for (i, (&o, &c)) in out.iter().zip(&codes).enumerate() {
            assert_eq!(o, c as f32 * step, "bits {bits}, value {i}");
        }
    }
}

/// Wide formats, so the offsets the gradient ignores (e inside v², the chain factors of the
/// quantized log-parameters) are far below the tolerance.
fn wide_qat(net: &GramNet) -> QatCg {
    let mut opts = CgQuantOptions::new(12);
    for t in [
        CgTensor::E,
        CgTensor::P,
        CgTensor::D,
        CgTensor::V2,
        CgTensor::Tau2,
    ] {
        opts.widths.push((t, 20));
    }
    opts.widths.push((CgTensor::Coef, 20));
    opts.calib_frames = 300;
    QatCg::new(&quantize_cg(net, &opts).unwrap())
}

/// The taped loss's gradient against central differences, every parameter; returns the
/// gradient.
fn check_gradient(mut qat: QatCg, batch: &crate::link::FrameBatch) -> Vec<f64> {
    let names = qat.net().param_names();
    let data = F32Frames::from_frames(batch, 0..batch.frames).unwrap();
    qat.freeze_constants();
    let mut tapes = vec![Tape::<f64>::default(); batch.frames];
    let (_, grad) = qat
        .loss_and_grad_taped(&data.as_batch(), &mut tapes)
        .unwrap();
    tapes.iter_mut().for_each(|t| t.replay = true);
    let p0: Vec<f32> = qat.net().params().to_vec();
    let gmax = grad.iter().fold(0.0f64, |a, g| a.max(g.abs()));
    let mut checked = 0;
    for i in 0..p0.len() {
        let h = 1e-3f32;
        let mut at = |v: f32| {
            let mut p = p0.clone();
            p[i] = v;
            crate::train::Trainable::params_mut(&mut qat).copy_from_slice(&p);
            qat.loss_and_grad_taped(&data.as_batch(), &mut tapes)
                .unwrap()
                .0
        };
        let (plus, minus) = (at(p0[i] + h), at(p0[i] - h));
        // The step is exact in f32 (both ends are representable), so divide by the real step.
        let span = f64::from(p0[i] + h) - f64::from(p0[i] - h);
        let fd = (plus - minus) / span;
        let tol = 2e-2 * fd.abs().max(grad[i].abs()) + 1e-3 * gmax + 1e-6;
        assert!(
            (fd - grad[i]).abs() <= tol,
            "{}: analytic {} vs finite difference {fd}",
            names[i],
            grad[i]
        );
        checked += 1;
    }
    assert_eq!(checked, p0.len());
    grad
}

#[test]
fn surrogate_gradient_matches_central_differences() {
    let net = small_net(7);
    check_gradient(wide_qat(&net), &frames(&net, 12, 3, 9));
}

#[test]
fn kaq_mmd_gradient_matches_central_differences() {
    // The MMD term with fixed bandwidths (multi: the median's σ moves with the parameters,
    // and no gradient flows through it). The student starts off its teacher, so the term is
    // not at its minimum.
    let net = small_net(7);
    let mut qat = wide_qat(&net)
        .with_mmd(&KaqConfig {
            epsilon: 10.0,
            kernel: KernelMode::Multi,
        })
        .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for v in crate::train::Trainable::params_mut(&mut qat) {
        *v += rng.random_range(-0.3..0.3);
    }
    let batch = frames(&net, 12, 3, 9);
    let mse_only = {
        let mut plain = wide_qat(&net);
        crate::train::Trainable::params_mut(&mut plain).copy_from_slice(qat.net().params());
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
    let net = small_net(5);
    let batch = frames(&net, 24, 4, 2);
    let data = F32Frames::from_frames(&batch, 0..batch.frames).unwrap();
    let plain = wide_qat(&net);
    let zero = wide_qat(&net)
        .with_mmd(&KaqConfig {
            epsilon: 0.0,
            kernel: KernelMode::Median,
        })
        .unwrap();
    let len = net.params().len();
    let (mut g1, mut g2) = (vec![0f32; len], vec![0f32; len]);
    let l1 = crate::train::Trainable::loss_and_grad(&plain, &data.as_batch(), &mut g1);
    let l2 = crate::train::Trainable::loss_and_grad(&zero, &data.as_batch(), &mut g2);
    assert_eq!(l1, l2);
    assert_eq!(g1, g2);
    // With ε > 0 the loss adds the MMD, which is ≥ 0 (biased estimator, shared kernel).
    let with = wide_qat(&net)
        .with_mmd(&KaqConfig {
            epsilon: 10.0,
            kernel: KernelMode::Median,
        })
        .unwrap();
    let l3 = crate::train::Trainable::loss_and_grad(&with, &data.as_batch(), &mut g2);
    assert!(l3 >= l1, "{l3} < {l1}");
    assert!(
        wide_qat(&net)
            .with_mmd(&KaqConfig {
                epsilon: 1.0,
                kernel: KernelMode::Learnable,
            })
            .is_err()
    );
}

#[test]
fn trained_qat_net_lowers_and_agrees_with_its_golden_model() {
    let net = small_net(11);
    let mut opts = CgQuantOptions::new(6);
    opts.calib_frames = 300;
    let fq = quantize_cg(&net, &opts).unwrap();
    let mut qat = QatCg::new(&fq);
    // A few plain gradient steps change every constant.
    let batch = frames(&net, 64, 4, 12);
    let data = F32Frames::from_frames(&batch, 0..batch.frames).unwrap();
    let mut grad = vec![0f32; net.params().len()];
    for _ in 0..5 {
        crate::train::Trainable::loss_and_grad(&qat, &data.as_batch(), &mut grad);
        let p = crate::train::Trainable::params_mut(&mut qat);
        for (v, g) in p.iter_mut().zip(&grad) {
            *v -= 0.05 * g.signum();
        }
    }
    assert_ne!(qat.net().params(), net.params());
    let fq2 = qat.fake_quant().unwrap();
    assert_ne!(fq2.ir(), fq.ir(), "the constants did not change");
    let golden = GramInterpreter::new(fq2.ir().clone()).unwrap();
    let test = frames(&net, 700, 7, 13);
    let mut a = vec![0i32; test.frames * test.n];
    let mut b = vec![0i32; test.frames * test.n];
    golden.detect(&test, &mut a).unwrap();
    fq2.detect(&test, &mut b).unwrap();
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    assert!(
        same as f64 >= 0.999 * a.len() as f64,
        "{same} of {}",
        a.len()
    );
    // And the QAT forward is the fake-quant forward of the lowered net.
    let data = F32Frames::from_frames(&test, 0..test.frames).unwrap();
    let mut out = vec![0f32; test.frames * test.n];
    qat.forward(&data.as_batch(), &mut out);
    let step = 2f32.powi(-fq2.ir().state.frac());
    let codes = fq2.forward_codes(&test);
    assert!(out.iter().zip(&codes).all(|(&o, &c)| o == c as f32 * step));
}

#[test]
fn kaq_cg_refines_before_and_after_the_fine_tuning() {
    use super::qat::kaq_cg;
    use super::refine::{RefineOptions, golden_errors};
    use super::train::GramTrainConfig;
    let net = small_net(21);
    let mut opts = CgQuantOptions::new(6);
    opts.calib_frames = 300;
    let mut config = GramTrainConfig::new(net.link().clone(), net.config().clone());
    config.samples = 256;
    config.val_samples = 64;
    config.epochs = 1;
    config.lr = 1e-3;
    config.val_ber_frames = 64;
    let refine = RefineOptions {
        frames: 300,
        snr_db: vec![14.0, 20.0],
        ..RefineOptions::default()
    };
    let kaq = KaqConfig {
        epsilon: 10.0,
        kernel: KernelMode::Median,
    };
    let run = kaq_cg(&net, &opts, &config, &kaq, Some(&refine), &mut |_| {}).unwrap();
    assert_eq!(run.ir.version, kaq_ir::gram::GRAM_IR_VERSION_BIN_SHIFT);
    assert_eq!(run.history.len(), 1);
    // The student is the fine-tuned net's lowering, refined: never more errors on the
    // refinement frames, and exactly the last kept move's count when a move was kept.
    let frames = refine.frames(net.link()).unwrap();
    let (before, _) = golden_errors(&run.qat.lower().unwrap(), &frames).unwrap();
    let (after, _) = golden_errors(&run.ir, &frames).unwrap();
    assert!(after <= before, "{after} > {before}");
    match run.moves[1].last() {
        Some(m) => assert_eq!(m.bit_errors, after),
        None => assert_eq!(run.ir, run.qat.lower().unwrap()),
    }
    // Without refinement: the fine-tuned net's lowering itself.
    let plain = kaq_cg(&net, &opts, &config, &kaq, None, &mut |_| {}).unwrap();
    assert!(plain.moves.iter().all(Vec::is_empty));
    assert_eq!(plain.ir, plain.qat.lower().unwrap());
}
