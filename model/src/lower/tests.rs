//! Tests of the IR and the integer golden model: lowering + interpreter against the fake-quant
//! net it was lowered from, adversarial inputs at the format limits, the round trip and
//! malformed documents.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::detect::Detector;
use crate::link::LinkConfig;
use crate::quant::{QuantConfig, QuantMethod, QuantNet};
use crate::train::{SetKind, TrainSet};
use crate::unfolded::{F32Frames, Init, NetConfig, Prox, UnfoldedNet};
use kaq_ir::*;

/// One lowering case.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub arch: Arch,
    pub prox: Prox,
    pub momentum: bool,
    pub init: Init,
    pub modulation: Modulation,
    pub nt: usize,
    pub nr: usize,
    pub layers: usize,
    pub bits: u32,
    pub method: QuantMethod,
    pub seed: u64,
}

/// A randomly perturbed net of `case`, calibrated with the method; KAQ gets α ≠ 0 so its
/// steps differ across SNR bins.
pub(crate) fn quant_net(case: &Case) -> QuantNet {
    quant_net_with(case, &QuantConfig::with_activation_bits(case.bits))
}

/// [`quant_net`] with the formats `qconfig` (for mixed precision) instead of `case.bits`.
pub(crate) fn quant_net_with(case: &Case, qconfig: &QuantConfig) -> QuantNet {
    let link = LinkConfig::new(case.nt, case.nr, case.modulation).unwrap();
    let config = NetConfig {
        arch: case.arch,
        prox: case.prox,
        layers: case.layers,
        momentum: case.momentum,
        init: case.init,
    };
    let mut net = UnfoldedNet::new(config, &link).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(case.seed);
    let names = net.param_names();
    for (p, name) in net.params_mut().iter_mut().zip(&names) {
        *p *= rng.random_range(0.6f32..1.4);
        if name.starts_with("lambda") {
            *p = p.abs();
        }
    }
    let set = TrainSet::generate(
        &link,
        64,
        &[0.0, 10.0, 20.0, 30.0],
        case.seed,
        SetKind::Train,
    )
    .unwrap();
    let mut q = QuantNet::calibrate(&net, case.method, qconfig, &set.as_batch()).unwrap();
    if case.method == QuantMethod::Kaq {
        let k = case.layers;
        let len = q.params().len();
        let tail = &mut q.params_mut()[len - 2 * k..];
        for i in 0..k {
            let gamma = tail[k + i];
            tail[i] = gamma * rng.random_range(0.5f32..3.0);
            tail[k + i] = gamma * rng.random_range(0.3f32..0.9);
        }
    }
    q
}

/// Frames at random SNRs over the bins' range.
pub(crate) fn frames(case: &Case, count: usize, seed: u64) -> crate::FrameBatch {
    let link = LinkConfig::new(case.nt, case.nr, case.modulation).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let snr: Vec<f64> = (0..count).map(|_| rng.random_range(-5.0..35.0)).collect();
    link.generator().unwrap().generate(&snr, &mut rng)
}

/// Per frame: the fake-quant output as codes (x⁽ᴷ⁾ / Δ_K) and the interpreter's taps.
pub(crate) struct Compared {
    pub first_layer_max: i64,
    pub symbols: usize,
    pub decision_mismatches: usize,
    pub max_lsb: i64,
    pub frames_differing: usize,
}

pub(crate) fn compare(q: &QuantNet, interp: &Interpreter, batch: &crate::FrameBatch) -> Compared {
    let n = batch.n;
    let owned = F32Frames::from_frames(batch, 0..batch.frames).unwrap();
    let mut fq = vec![0.0f32; batch.frames * n];
    q.forward(&owned.as_batch(), &mut fq).unwrap();
    let table = q.step_table();
    let kk = table.len();
    let mut fl = vec![0.0f32; kk * batch.frames * n];
    q.forward_layers(&owned.as_batch(), &mut fl).unwrap();
    let admm = q.net_config().arch == Arch::Admm;
    let last = &table[table.len() - 1];
    let modulation = batch.link.modulation;
    let mut out = Compared {
        first_layer_max: 0,
        symbols: 0,
        decision_mismatches: 0,
        max_lsb: 0,
        frames_differing: 0,
    };
    for f in 0..batch.frames {
        let (h, y, bin) = interp.frame_codes(&batch.received(), f).unwrap();
        let taps = interp.run_codes(&h, &y, bin).unwrap();
        let step = last[bin];
        for k in 0..kk {
            let ints = if admm {
                &taps.layers[k].s
            } else {
                &taps.layers[k].x
            };
            let worst = (0..n)
                .map(|j| {
                    ((fl[(k * batch.frames + f) * n + j] / table[k][bin]).round() as i64 - ints[j])
                        .abs()
                })
                .max()
                .unwrap_or(0);
            if worst > 0 {
                out.first_layer_max = out.first_layer_max.max(worst);
                break;
            }
        }
        let mut differs = false;
        for j in 0..n {
            let v = fq[f * n + j];
            let code = (v / step).round() as i64;
            let lsb = (code - taps.output[j]).abs();
            out.max_lsb = out.max_lsb.max(lsb);
            differs |= lsb != 0;
            out.symbols += 1;
            if modulation.slice(f64::from(v)) != taps.levels[j] {
                out.decision_mismatches += 1;
            }
        }
        out.frames_differing += usize::from(differs);
    }
    out
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(Arch::Pgd), Just(Arch::Admm)],
        prop_oneof![Just(Prox::Soft), Just(Prox::Box), Just(Prox::Qam)],
        any::<bool>(),
        prop_oneof![Just(Init::Zero), Just(Init::MatchedFilter)],
        prop_oneof![
            Just(Modulation::Bpsk),
            Just(Modulation::Qpsk),
            Just(Modulation::Qam16)
        ],
        (1usize..=4, 1usize..=4, 1usize..=5),
        prop_oneof![Just(4u32), Just(6), Just(8), Just(10)],
        prop_oneof![
            Just(QuantMethod::Ptq),
            Just(QuantMethod::QatMse),
            Just(QuantMethod::Lsq),
            Just(QuantMethod::Kaq)
        ],
        any::<u64>(),
    )
        .prop_map(
            |(arch, prox, momentum, init, modulation, (nt, nr, layers), bits, method, seed)| Case {
                arch,
                prox,
                momentum,
                init,
                modulation,
                nt,
                nr,
                layers,
                bits,
                method,
                seed,
            },
        )
}

fn fixed_seed(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x6b61_7131),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(fixed_seed(48))]

    /// The integer model lowered from a fake-quant net against that net, on 1000+ symbols at
    /// SNRs across the bins: hard decisions agree on ≥ 99.9 % of symbols, and at the first
    /// layer where the two differ at all, they differ by at most the 1-LSB bound of
    /// docs/fixed-point.md §5 (for ADMM-Net with the table prox the first difference can
    /// sit in x or u, which the fake-quant pass does not expose, so there only the output is
    /// checked).
    #[test]
    fn interpreter_agrees_with_fake_quant(case in case_strategy()) {
        let q = quant_net(&case);
        let ir = lower(&q, LowerOptions::default()).unwrap();
        let interp = Interpreter::new(ir).unwrap();
        let n = LinkConfig::new(case.nt, case.nr, case.modulation).unwrap().n();
        let batch = frames(&case, 1000usize.div_ceil(n).max(200), case.seed ^ 0x5eed);
        let c = compare(&q, &interp, &batch);
        prop_assert!(
            c.decision_mismatches * 1000 <= c.symbols,
            "{} of {} decisions differ", c.decision_mismatches, c.symbols
        );
        if !(case.arch == Arch::Admm && case.prox == Prox::Qam) {
            prop_assert!(c.first_layer_max <= 1, "first differing layer differs by {} LSB", c.first_layer_max);
        }
        prop_assert!(
            c.frames_differing * 20 <= batch.frames,
            "{} of {} frames differ in x⁽ᴷ⁾", c.frames_differing, batch.frames
        );
    }
}

proptest! {
    #![proptest_config(fixed_seed(24))]

    /// Mixed precision: per-layer activation bits (each 3..=10, at least two layers differing)
    /// lower to per-layer state widths; the integer model follows the fake-quant net as in
    /// the uniform case, every layer's states fit its own width, and the uniform list gives
    /// the IR of the single width, byte for byte.
    #[test]
    fn mixed_precision_agrees_with_fake_quant(
        case in case_strategy(),
        raw in proptest::collection::vec(3u32..=10, 5),
    ) {
        let case = Case { layers: case.layers.max(2), ..case };
        let mut bits = raw[..case.layers].to_vec();
        if bits.iter().all(|&b| b == bits[0]) {
            bits[1] = if bits[0] == 3 { 4 } else { bits[0] - 1 };
        }
        let qconfig = QuantConfig::with_layer_bits(&bits);
        prop_assert!(qconfig.is_mixed());
        let q = quant_net_with(&case, &qconfig);
        let ir = lower(&q, LowerOptions::default()).unwrap();
        let max = *bits.iter().max().unwrap();
        prop_assert_eq!(ir.state_width, max);
        for (k, layer) in ir.layers.iter().enumerate() {
            prop_assert_eq!(layer.out.width, bits[k]);
            if let Some(a) = &layer.admm {
                prop_assert_eq!(a.x_out.width, bits[k]);
            }
        }
        let interp = Interpreter::new(ir).unwrap();
        let n = LinkConfig::new(case.nt, case.nr, case.modulation).unwrap().n();
        let batch = frames(&case, 1000usize.div_ceil(n).max(200), case.seed ^ 0x5eed);
        for f in 0..batch.frames.min(50) {
            let (h, y, bin) = interp.frame_codes(&batch.received(), f).unwrap();
            let taps = interp.run_codes(&h, &y, bin).unwrap();
            for (k, t) in taps.layers.iter().enumerate() {
                let limit = (1i64 << (bits[k] - 1)) - 1;
                prop_assert!(t.x.iter().chain(&t.s).chain(&t.u).all(|v| v.abs() <= limit));
            }
        }
        let c = compare(&q, &interp, &batch);
        prop_assert!(
            c.decision_mismatches * 1000 <= c.symbols,
            "{} of {} decisions differ", c.decision_mismatches, c.symbols
        );
        if !(case.arch == Arch::Admm && case.prox == Prox::Qam) {
            prop_assert!(c.first_layer_max <= 1, "first differing layer differs by {} LSB", c.first_layer_max);
        }
        prop_assert!(
            c.frames_differing * 20 <= batch.frames,
            "{} of {} frames differ in x⁽ᴷ⁾", c.frames_differing, batch.frames
        );
        // A uniform list is the single width.
        let uniform = QuantConfig::with_layer_bits(&vec![max; case.layers]);
        prop_assert_eq!(&uniform, &QuantConfig::with_activation_bits(max));
    }
}

/// A per-layer list of the wrong length or with a width above the widest is refused.
#[test]
fn mixed_precision_refuses_bad_lists() {
    let case = Case {
        arch: Arch::Pgd,
        prox: Prox::Soft,
        momentum: false,
        init: Init::Zero,
        modulation: Modulation::Qpsk,
        nt: 2,
        nr: 2,
        layers: 3,
        bits: 8,
        method: QuantMethod::Ptq,
        seed: 1,
    };
    let q = quant_net_with(&case, &QuantConfig::with_layer_bits(&[8, 6, 4]));
    let mut bad = q.config().clone();
    bad.layer_bits = Some(vec![8, 6]);
    let err = bad.check_layers(3).unwrap_err().to_string();
    assert!(err.contains("layer_bits"), "{err}");
    bad.layer_bits = Some(vec![8, 9, 4]);
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("layer_bits"), "{err}");
    bad.layer_bits = Some(vec![8, 1, 4]);
    assert!(bad.validate().is_err());
}

/// The default formats on 16×16 16-QAM (the paper's link) agree exactly on most frames.
#[test]
fn paper_link_agrees_with_fake_quant() {
    for (arch, prox, method, bits) in [
        (Arch::Pgd, Prox::Soft, QuantMethod::Kaq, 8),
        (Arch::Pgd, Prox::Soft, QuantMethod::Kaq, 4),
        (Arch::Admm, Prox::Box, QuantMethod::Lsq, 8),
    ] {
        let case = Case {
            arch,
            prox,
            momentum: false,
            init: Init::Zero,
            modulation: Modulation::Qam16,
            nt: 16,
            nr: 16,
            layers: 5,
            bits,
            method,
            seed: 3,
        };
        let q = quant_net(&case);
        let interp = Interpreter::new(lower(&q, LowerOptions::default()).unwrap()).unwrap();
        let batch = frames(&case, 400, 11);
        let c = compare(&q, &interp, &batch);
        assert!(
            c.decision_mismatches * 1000 <= c.symbols,
            "{arch:?} {bits}b: {} of {} decisions differ",
            c.decision_mismatches,
            c.symbols
        );
        assert!(
            c.first_layer_max <= 1,
            "{arch:?} {bits}b: {}",
            c.first_layer_max
        );
    }
}

/// `Detector::detect` (the batched, parallel path) gives the decisions of `run_codes`.
#[test]
fn detect_equals_run_codes() {
    for arch in [Arch::Pgd, Arch::Admm] {
        let case = Case {
            arch,
            prox: Prox::Qam,
            momentum: true,
            init: Init::MatchedFilter,
            modulation: Modulation::Qam16,
            nt: 3,
            nr: 4,
            layers: 3,
            bits: 8,
            method: QuantMethod::Kaq,
            seed: 5,
        };
        let q = quant_net(&case);
        let interp = Interpreter::new(lower(&q, LowerOptions::default()).unwrap()).unwrap();
        assert!(interp.is_fast());
        let batch = frames(&case, 300, 1);
        let mut decisions = vec![0; batch.frames * batch.n];
        interp.detect(&batch, &mut decisions).unwrap();
        for f in 0..batch.frames {
            let (h, y, bin) = interp.frame_codes(&batch.received(), f).unwrap();
            let taps = interp.run_codes(&h, &y, bin).unwrap();
            assert_eq!(taps.levels, decisions[f * batch.n..(f + 1) * batch.n]);
        }
    }
}

/// The i16/i32 fast path and the i32/i64 path give the same codes: 17-bit e codes force the
/// wide path, and the same net with the wide path forced on the default formats agrees with
/// the fast one frame by frame.
#[test]
fn fast_and_wide_paths_agree() {
    let case = Case {
        arch: Arch::Pgd,
        prox: Prox::Soft,
        momentum: true,
        init: Init::MatchedFilter,
        modulation: Modulation::Qam16,
        nt: 4,
        nr: 4,
        layers: 3,
        bits: 8,
        method: QuantMethod::Kaq,
        seed: 9,
    };
    let q = quant_net(&case);
    let fast = Interpreter::new(lower(&q, LowerOptions::default()).unwrap()).unwrap();
    assert!(fast.is_fast());
    let wide = fast.clone().force_wide();
    assert!(!wide.is_fast());
    let batch = frames(&case, 200, 2);
    for f in 0..batch.frames {
        let (h, y, bin) = fast.frame_codes(&batch.received(), f).unwrap();
        assert_eq!(
            fast.run_codes(&h, &y, bin).unwrap(),
            wide.run_codes(&h, &y, bin).unwrap()
        );
    }
}

/// A KAQ step that reaches its floor in the low-SNR bins (α < 0, as training can learn)
/// makes the per-bin scales 1/Δ span six orders of magnitude; every bin keeps a full-precision
/// multiplier (a shift per bin), so the integer model still follows the fake-quant net.
#[test]
fn steps_at_their_floor_in_some_bins_keep_full_precision() {
    for (arch, bits) in [(Arch::Pgd, 4), (Arch::Pgd, 8), (Arch::Admm, 6)] {
        let case = Case {
            arch,
            prox: Prox::Soft,
            momentum: false,
            init: Init::Zero,
            modulation: Modulation::Qam16,
            nt: 4,
            nr: 4,
            layers: 3,
            bits,
            method: QuantMethod::Kaq,
            seed: 21,
        };
        let mut q = quant_net(&case);
        let k = case.layers;
        let len = q.params().len();
        let tail = &mut q.params_mut()[len - 2 * k..];
        for i in 0..k {
            // Δ = γ (1 − s): at or below the floor for SNR ≤ 0 dB.
            tail[i] = -tail[k + i];
        }
        let floor = crate::quant::quantizer::MIN_STEP;
        assert!(
            q.step_table()
                .iter()
                .all(|l| l[0] == floor && l[100] > 100.0 * floor)
        );
        let interp = Interpreter::new(lower(&q, LowerOptions::default()).unwrap()).unwrap();
        let batch = frames(&case, 600, 4);
        let c = compare(&q, &interp, &batch);
        assert!(
            c.decision_mismatches * 1000 <= c.symbols,
            "{arch:?} {bits}b: {} of {} decisions differ",
            c.decision_mismatches,
            c.symbols
        );
        assert!(
            c.first_layer_max <= 1,
            "{arch:?} {bits}b: {}",
            c.first_layer_max
        );
        assert!(
            c.frames_differing * 100 <= batch.frames,
            "{arch:?} {bits}b: {} frames differ",
            c.frames_differing
        );
    }
}
