//! The PTQ cg lowering: the IR v2 golden model against the fake-quant net (docs/ir.md §10.6).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::quantized::{Calibration, CgQuantOptions, bin_shifts, choose_frac, quantize_cg};
use super::testing::agreement;
use super::{Family, GramConfig, GramNet};
use crate::detect::Detector;
use crate::link::LinkConfig;
use crate::modulation::Modulation;
use kaq_ir::gram::{GramInterpreter, GramIr};

/// Decisions of the golden model and of the fake-quant net on `frames` frames of `link`
/// (block fading `block`) at SNRs drawn from `snr`: (agreeing, total).
fn lowered_agreement(
    net: &GramNet,
    opts: &CgQuantOptions,
    block: usize,
    snr: (f64, f64),
    frames: usize,
    seed: u64,
) -> (usize, usize) {
    let fq = quantize_cg(net, opts).expect("lowers");
    let ir = fq.ir().clone();
    // The document round-trips and reloads through validation.
    assert_eq!(
        GramIr::from_json(&ir.to_json(), "<test>").expect("reloads"),
        ir
    );
    let golden = GramInterpreter::new(ir).expect("validates");
    let link = net.link().clone().with_block(block).expect("block");
    agreement(&link, &golden, &fq, snr, frames, seed)
}

#[test]
fn random_cg_configs_agree_with_fake_quant() {
    // A seeded sweep over families' configs × modulation × bits × block length × SNR.
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let (mut same, mut total) = (0, 0);
    for case in 0..12 {
        let modulation = [Modulation::Qpsk, Modulation::Qam16, Modulation::Qam64][case % 3];
        let nt = rng.random_range(1..=4);
        let nr = nt + rng.random_range(0..=2);
        let link = LinkConfig::new(nt, nr, modulation).unwrap();
        let config = GramConfig {
            family: Family::Cg,
            layers: rng.random_range(1..=4),
            inner: rng.random_range(1..=4),
        };
        let mut net = GramNet::new(config, &link).unwrap();
        for v in net.params_mut() {
            *v += rng.random_range(-0.2..0.2);
        }
        let mut opts = CgQuantOptions::new(rng.random_range(6..=10));
        opts.calib_frames = 300;
        let block = rng.random_range(1..=14);
        let lo = rng.random_range(0.0..25.0);
        let (s, t) = lowered_agreement(&net, &opts, block, (lo, lo + 5.0), 200, case as u64);
        same += s;
        total += t;
    }
    let rate = same as f64 / total as f64;
    assert!(
        rate >= 0.999,
        "decisions agree on {same} of {total} ({rate})"
    );
}

#[test]
fn trained_cg_k8_l4_agrees_with_fake_quant_at_8_bits() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/gram/cg-k8-l4.model.json");
    let file = super::file::GramModelFile::load(&path).expect("model file");
    let mut opts = CgQuantOptions::new(8);
    opts.calib_frames = 500;
    let (s, t) = lowered_agreement(&file.net, &opts, 14, (15.0, 30.0), 140, 7);
    assert!(
        s as f64 >= 0.999 * t as f64,
        "decisions agree on {s} of {t}"
    );
}

/// Per-layer narrow inner G (`g_inner`, docs/ir.md §10.9): the lowering writes it, the
/// golden model and the fake-quant net agree on it.
#[test]
fn trained_cg_k8_l4_with_narrow_inner_g_agrees_with_fake_quant() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/gram/cg-k8-l4.model.json");
    let file = super::file::GramModelFile::load(&path).expect("model file");
    let mut opts = CgQuantOptions::new(8);
    opts.calib_frames = 500;
    opts.g_inner = vec![6, 7, 8, 9, 10, 12, 16, 24];
    let fq = quantize_cg(&file.net, &opts).expect("lowers");
    let widths: Vec<Option<u32>> = fq.ir().layers.iter().map(|l| l.g_inner).collect();
    // G is 16 bits: 16 and 24 read the full G.
    assert_eq!(
        widths,
        [6, 7, 8, 9, 10, 12]
            .map(Some)
            .into_iter()
            .chain([None, None])
            .collect::<Vec<_>>()
    );
    let (s, t) = lowered_agreement(&file.net, &opts, 14, (15.0, 30.0), 140, 7);
    assert!(
        s as f64 >= 0.999 * t as f64,
        "decisions agree on {s} of {t}"
    );
    opts.g_inner = vec![8; 7];
    assert!(
        quantize_cg(&file.net, &opts).is_err(),
        "7 widths for 8 layers"
    );
}

#[test]
fn lowering_is_deterministic_for_a_seed() {
    let link = LinkConfig::new(4, 4, Modulation::Qam16).unwrap();
    let config = GramConfig {
        family: Family::Cg,
        layers: 3,
        inner: 2,
    };
    let net = GramNet::new(config, &link).unwrap();
    let mut opts = CgQuantOptions::new(6);
    opts.calib_frames = 300;
    let a = super::quantized::lower_cg(&net, &opts).unwrap();
    let b = super::quantized::lower_cg(&net, &opts).unwrap();
    assert_eq!(a, b);
    opts.seed += 1;
    opts.calibration = Calibration::Max;
    let c = super::quantized::lower_cg(&net, &opts).unwrap();
    assert_ne!(a, c, "another seed and calibration give the same document");
}

#[test]
fn calibrations_pick_the_documented_step() {
    // Magnitudes |N(0,1)|-like with one outlier at 40.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut v: Vec<f32> = (0..5000)
        .map(|_| {
            let s: f32 = (0..12).map(|_| rng.random_range(0.0f32..1.0)).sum::<f32>() - 6.0;
            s.abs()
        })
        .collect();
    v.push(40.0);
    let width = 6;
    let qp = f64::from(kaq_ir::fixed::max_code(width) as i32);
    let top = choose_frac(&[&v], width, Calibration::Max);
    // Max: the finest step holding 40 at 6 bits (31 / 40 < 1, so frac −1).
    assert_eq!(top, -1);
    let err = |frac: i32| -> f64 {
        let s = 2f64.powi(frac);
        v.iter()
            .map(|&x| {
                let x = f64::from(x);
                ((x * s + 0.5).floor().min(qp) / s - x).powi(2)
            })
            .sum()
    };
    let mse = choose_frac(&[&v], width, Calibration::Mse);
    for f in top..=top + 10 {
        assert!(
            err(mse) <= err(f),
            "frac {mse} is not the least-error step ({f})"
        );
    }
    assert!(mse > top, "the outlier should be clipped");
    // The 99.9 % quantile is about 3.3: 31 / 3.3 ≈ 9.4 → frac 3.
    assert_eq!(choose_frac(&[&v], width, Calibration::Percentile(0.999)), 3);
}

#[test]
fn a_diverging_first_layer_does_not_set_the_shared_r_format() {
    // The trained cg-k8-l4 with its first layer's inner steps made too long for the spectrum
    // of D·G (ω = 1.5, β = 0: the recurrence grows by |1 − 1.5λ| per step, so by 2^4 or more
    // on most channels): its r then reaches far past the constellation and saturates the
    // denoiser, which the later layers recover from. The integer model must track the f32
    // net; with r's one format sized by those values, every ordinary r rounds to 0.
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/gram/cg-k8-l4.model.json");
    let mut net = super::file::GramModelFile::load(&path)
        .expect("model file")
        .net;
    let (off, inner) = (net.offsets(), net.config().inner);
    for l in 0..inner {
        net.params_mut()[off[4] + l] = 1.5;
    }
    for l in 0..inner - 1 {
        net.params_mut()[off[5] + l] = 0.0;
    }
    let mut opts = CgQuantOptions::new(10);
    opts.calib_frames = 500;
    let ir = super::quantized::lower_cg(&net, &opts).expect("lowers");
    let golden = GramInterpreter::new(ir).expect("validates");
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    let snr_db: Vec<f64> = (0..2000).map(|_| rng.random_range(18.0..24.0)).collect();
    let batch = net
        .link()
        .generator()
        .expect("gen")
        .generate(&snr_db, &mut rng);
    let mut a = vec![0i32; batch.frames * batch.n];
    let mut b = vec![0i32; batch.frames * batch.n];
    golden.detect(&batch, &mut a).expect("golden");
    net.detect(&batch, &mut b).expect("f32");
    let wrong = |d: &[i32]| d.iter().zip(&batch.x).filter(|(u, v)| u != v).count() as f64;
    let total = batch.x.len() as f64;
    let (int_ser, f32_ser) = (wrong(&a) / total, wrong(&b) / total);
    assert!(f32_ser < 0.1, "the f32 net itself fails: SER {f32_ser}");
    assert!(
        int_ser <= f32_ser + 0.02,
        "integer SER {int_ser} against the f32 net's {f32_ser}"
    );
}

/// KAQ's per-bin steps (version-3 IRs): the golden model and the fake-quant net agree on
/// ≥ 99.9 % of decisions over random configs, block lengths and SNRs, and the lowering does
/// shift some bin.
#[test]
fn bin_adaptive_configs_agree_with_fake_quant() {
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let (mut same, mut total, mut shifted) = (0, 0, 0);
    for case in 0..8 {
        let modulation = [Modulation::Qpsk, Modulation::Qam16][case % 2];
        let nt = rng.random_range(1..=4);
        let nr = nt + rng.random_range(0..=2);
        let link = LinkConfig::new(nt, nr, modulation).unwrap();
        let config = GramConfig {
            family: Family::Cg,
            layers: rng.random_range(1..=3),
            inner: rng.random_range(1..=3),
        };
        let mut net = GramNet::new(config, &link).unwrap();
        for v in net.params_mut() {
            *v += rng.random_range(-0.2..0.2);
        }
        let mut opts = CgQuantOptions::new(rng.random_range(4..=8));
        opts.calib_frames = 1500;
        opts.bin_adaptive = true;
        let ir = super::quantized::lower_cg(&net, &opts).unwrap();
        assert_eq!(ir.version, kaq_ir::gram::GRAM_IR_VERSION_BIN_SHIFT);
        shifted += ir
            .layers
            .iter()
            .filter_map(|l| l.bin_shift.as_ref())
            .filter(|s| s.e.iter().chain(&s.p).chain(&s.d).any(|&v| v != 0))
            .count();
        let block = rng.random_range(1..=14);
        let lo = rng.random_range(5.0..28.0);
        let (s, t) = lowered_agreement(&net, &opts, block, (lo, lo + 5.0), 200, case as u64);
        same += s;
        total += t;
    }
    assert!(shifted > 0, "no layer got a non-zero per-bin shift");
    let rate = same as f64 / total as f64;
    assert!(
        rate >= 0.999,
        "decisions agree on {same} of {total} ({rate})"
    );
}

/// `bin_shifts` on magnitudes that halve from bin to bin while SNR^−½ halves (bins 6.02 dB
/// apart): the per-bin max-calibrated steps are 2^−b, eq. 15 fits them exactly (α = step /
/// SNR^−½, γ = 0), so the shifts from base frac 0 are 0, 1, 2; bins without frames follow the
/// fit (bin 3 gets 3), and the clamp holds.
#[test]
fn bin_shifts_follow_the_snr_adaptive_step() {
    let bins = kaq_ir::SnrBins {
        min_db: 0.0,
        step_db: 20.0 * 2f64.log10(),
        count: 4,
    };
    let per_frame = 4;
    let mut samples = Vec::new();
    let mut frame_bins = Vec::new();
    for b in 0..3usize {
        for _ in 0..25 {
            frame_bins.push(b);
            samples.extend(std::iter::repeat_n(
                100.0 * 2f32.powi(-(b as i32)),
                per_frame,
            ));
        }
    }
    let sh = |max| {
        bin_shifts(
            &samples,
            per_frame,
            &frame_bins,
            &bins,
            8,
            Calibration::Max,
            0,
            max,
        )
    };
    assert_eq!(sh(8), vec![0, 1, 2, 3]);
    assert_eq!(sh(1), vec![0, 1, 1, 1]);
    // Too few frames in every bin: no shift at all.
    let few = bin_shifts(
        &samples[..40],
        per_frame,
        &frame_bins[..10],
        &bins,
        8,
        Calibration::Max,
        0,
        8,
    );
    assert_eq!(few, vec![0; 4]);
}
