//! Co-simulation of generated designs against the integer golden model: every output and every
//! layer's states bit for bit, under random input stalls and output back-pressure; the RTL as a
//! detector; the measured timing against `report::analyse`; a negative control.
//!
//! Each test asks `tools::require` first: without Verilator it returns early, unless
//! `KAQ_REQUIRE_VERILATOR=1`, where the absence fails the test. Builds go to the shared
//! content-addressed cache (locked, so concurrent test processes are safe); a warm cache makes
//! the suite several times faster.

use kaq_ir::Taps;
use kaq_model::Detector;
use kaq_model::ber::{BerConfig, simulate};
use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestCaseError};

use kaq_codegen::Options;
use kaq_codegen::report::analyse;
use kaq_ir::{Interpreter, Ir};
use kaq_model::lower::LinkFrames;
use kaq_model::lower::{LowerOptions, lower};
use kaq_model::quant::{QuantConfig, QuantMethod, QuantNet};
use kaq_model::train::{SetKind, TrainSet};
use kaq_model::unfolded::{Arch, Init, NetConfig, Prox, UnfoldedNet};
use kaq_model::{LinkConfig, Modulation};
use kaq_sim::cosim::{FrameCodes, Stalls};
use kaq_sim::tools::{self, Tool};
use kaq_sim::{CosimReport, Rtl, RtlDetector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn verilator_present() -> bool {
    tools::require(Tool::Verilator)
        .expect("KAQ_REQUIRE_VERILATOR=1 but verilator is unusable")
        .is_some()
}

/// One configuration of the net behind an IR.
#[derive(Debug, Clone, Copy)]
struct Config {
    arch: Arch,
    prox: Prox,
    momentum: bool,
    init: Init,
    modulation: Modulation,
    nt: usize,
    nr: usize,
    layers: usize,
    bits: u32,
    /// SNR bins; `None` keeps the default (101).
    bins: Option<usize>,
    seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            arch: Arch::Pgd,
            prox: Prox::Soft,
            momentum: false,
            init: Init::Zero,
            modulation: Modulation::Qpsk,
            nt: 2,
            nr: 2,
            layers: 2,
            bits: 6,
            bins: Some(8),
            seed: 1,
        }
    }
}

/// The IR of a randomly perturbed, calibrated net of `c`, quantized with KAQ (SNR-dependent
/// steps, α ≠ 0), as the codegen tests build theirs.
fn ir(c: &Config) -> Ir {
    let link = LinkConfig::new(c.nt, c.nr, c.modulation).unwrap();
    let config = NetConfig {
        arch: c.arch,
        prox: c.prox,
        layers: c.layers,
        momentum: c.momentum,
        init: c.init,
    };
    let mut net = UnfoldedNet::new(config, &link).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(c.seed);
    let names = net.param_names();
    for (p, name) in net.params_mut().iter_mut().zip(&names) {
        *p *= rng.random_range(0.6f32..1.4);
        if name.starts_with("lambda") {
            *p = p.abs();
        }
    }
    let set =
        TrainSet::generate(&link, 64, &[0.0, 10.0, 20.0, 30.0], c.seed, SetKind::Train).unwrap();
    let mut qc = QuantConfig::with_activation_bits(c.bits);
    if let Some(count) = c.bins {
        qc.snr_bins.count = count;
        qc.snr_bins.step_db = 50.0 / count as f64;
    }
    let mut q = QuantNet::calibrate(&net, QuantMethod::Kaq, &qc, &set.as_batch()).unwrap();
    let k = c.layers;
    let len = q.params().len();
    let tail = &mut q.params_mut()[len - 2 * k..];
    for i in 0..k {
        let gamma = tail[k + i];
        tail[i] = gamma * rng.random_range(0.5f32..3.0);
        tail[k + i] = gamma * rng.random_range(0.3f32..0.9);
    }
    lower(&q, LowerOptions::default()).unwrap()
}

fn options(lanes: usize) -> Options {
    Options {
        lanes,
        ..Options::default()
    }
}

/// `count` frames of `ir`: random channels and noise across the SNR bins, plus corner frames
/// (all zeros, every code at the minimum, at the maximum, alternating) at every bin.
fn frames(ir: &Ir, count: usize, seed: u64) -> Vec<FrameCodes> {
    let interp = Interpreter::new(ir.clone()).unwrap();
    let link = LinkConfig::new(ir.nt, ir.nr, ir.modulation).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (hf, yf) = (ir.inputs.h, ir.inputs.y);
    let mut out = Vec::with_capacity(count + 4 * ir.bins());
    for bin in 0..ir.bins() {
        for kind in 0..4 {
            let pick = |f: kaq_ir::fixed::QFormat, i: usize| match kind {
                0 => 0,
                1 => f.min_code(),
                2 => f.max_code(),
                _ if (i + bin).is_multiple_of(2) => f.min_code(),
                _ => f.max_code(),
            };
            out.push(FrameCodes {
                h: (0..ir.m * ir.n).map(|i| pick(hf, i)).collect(),
                y: (0..ir.m).map(|i| pick(yf, i + 1)).collect(),
                bin,
            });
        }
    }
    let snr: Vec<f64> = (0..count).map(|_| rng.random_range(-5.0..45.0)).collect();
    let batch = link.generator().unwrap().generate(&snr, &mut rng);
    for f in 0..count {
        let mut codes = FrameCodes::from(interp.frame_codes(&batch.received(), f).unwrap());
        // Random codes over the whole input range for one frame in four.
        if f % 4 == 3 {
            for c in &mut codes.h {
                *c = rng.random_range(hf.min_code()..=hf.max_code());
            }
            for c in &mut codes.y {
                *c = rng.random_range(yf.min_code()..=yf.max_code());
            }
            codes.bin = rng.random_range(0..ir.bins());
        }
        out.push(codes);
    }
    out
}

fn check(report: &CosimReport, what: &str) {
    assert_eq!(
        report.mismatches,
        0,
        "{what}: {} of {} frames differ; first: {}",
        report.mismatches,
        report.frames,
        report
            .first_mismatch
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    );
}

/// Measured timing with no stalls equals the analytic model exactly.
fn check_timing(rtl: &Rtl, report: &CosimReport, what: &str) {
    let est = rtl.estimate();
    assert_eq!(
        report.measured_ii,
        Some(est.cycles_per_frame()),
        "{what}: measured cycles per frame vs report::analyse"
    );
    assert_eq!(
        est.ii,
        est.cycles_per_frame().ceil() as u64,
        "{what}: II is the ceiling of the cycles per frame"
    );
    assert_eq!(
        report.measured_latency,
        Some(est.latency),
        "{what}: measured first-frame latency vs report::analyse latency"
    );
}

/// Divisors of `n`.
fn divisors(n: usize) -> Vec<usize> {
    (1..=n).filter(|d| n.is_multiple_of(*d)).collect()
}

fn fixed_seed(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(0x6b61_7137),
        failure_persistence: None,
        // Every case is a Verilator build: shrink little.
        max_shrink_iters: 8,
        ..ProptestConfig::default()
    }
}

/// A configuration, a lane choice (an index into the divisors of N) and stall probabilities.
fn case_strategy() -> impl Strategy<Value = (Config, usize, f64, f64)> {
    let dims = prop_oneof![
        6 => (1usize..=2, 1usize..=3),
        2 => (2usize..=4, 2usize..=4),
        1 => (5usize..=8, 5usize..=8),
    ];
    let net = (
        prop_oneof![Just(Arch::Pgd), Just(Arch::Admm)],
        prop_oneof![Just(Prox::Soft), Just(Prox::Box), Just(Prox::Qam)],
        any::<bool>(),
        prop_oneof![Just(Init::Zero), Just(Init::MatchedFilter)],
        prop_oneof![
            Just(Modulation::Bpsk),
            Just(Modulation::Qpsk),
            Just(Modulation::Qam16)
        ],
    );
    (
        net,
        dims,
        1usize..=6,
        4u32..=12,
        4usize..=16,
        any::<u64>(),
        any::<usize>(),
        0.0f64..0.5,
        0.0f64..0.5,
    )
        .prop_map(
            |(
                (arch, prox, momentum, init, modulation),
                (nt, nr),
                layers,
                bits,
                bins,
                seed,
                lanes,
                p_in,
                p_out,
            )| {
                (
                    Config {
                        arch,
                        prox,
                        momentum,
                        init,
                        modulation,
                        nt,
                        nr,
                        layers,
                        bits,
                        bins: Some(bins),
                        seed: seed % 1000,
                    },
                    lanes,
                    p_in,
                    p_out,
                )
            },
        )
}

/// Frames per proptest case (plus 4 corner frames per SNR bin).
const CASE_FRAMES: usize = 4500;

proptest! {
    #![proptest_config(fixed_seed(22))]

    /// Random configurations and frames under random stalls and back-pressure: every output
    /// and every layer's states equal the golden model's, and the stall-free timing equals
    /// `report::analyse`.
    #[test]
    fn rtl_equals_golden_model(case in case_strategy()) {
        if !verilator_present() {
            return Ok(());
        }
        let (c, lanes, p_in, p_out) = case;
        let ir = ir(&c);
        let choices = divisors(ir.n);
        let lanes = choices[lanes % choices.len()];
        let what = format!("{c:?} lanes {lanes} stalls {p_in:.2}/{p_out:.2}");
        let rtl = Rtl::generate_and_build(&ir, &options(lanes), false)
            .map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
        let report = rtl
            .cosimulate(
                frames(&ir, CASE_FRAMES, c.seed),
                Stalls { input: p_in, output: p_out, seed: c.seed },
            )
            .map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
        eprintln!(
            "{what}: {} frames, build {:.1} s{}, {:.0} frames/s, {} cycles/frame, latency {}",
            report.frames,
            report.build_time.as_secs_f64(),
            if report.cached { " (cached)" } else { "" },
            report.frames_per_second,
            report.estimated_cycles_per_frame,
            report.estimated_latency,
        );
        prop_assert_eq!(report.frames as usize, CASE_FRAMES + 4 * ir.bins());
        check(&report, &what);
        check_timing(&rtl, &report, &what);
    }
}

/// The default 101 SNR bins: the corner frames at every bin and random frames, with stalls.
#[test]
fn default_bins_every_bin() {
    if !verilator_present() {
        return;
    }
    let c = Config {
        arch: Arch::Admm,
        prox: Prox::Soft,
        modulation: Modulation::Qam16,
        layers: 3,
        bits: 8,
        bins: None,
        seed: 11,
        ..Config::default()
    };
    let ir = ir(&c);
    assert_eq!(ir.bins(), 101);
    let rtl = Rtl::generate_and_build(&ir, &options(2), false).unwrap();
    let frames = frames(&ir, 3000, 12);
    let count = frames.len() as u64;
    let stalls = Stalls {
        input: 0.3,
        output: 0.3,
        seed: 13,
    };
    let report = rtl.cosimulate(frames, stalls).unwrap();
    assert_eq!(report.frames, count);
    check(&report, "101 bins");
    check_timing(&rtl, &report, "101 bins");
}

/// Measured cycles per frame (steady state, no stalls) and the first frame's latency equal
/// `report::analyse` exactly, on PGD-Net and ADMM-Net, zero and matched-filter init, one and
/// several lanes, MAC bound and fill-and-drain bound.
#[test]
fn measured_timing_equals_report() {
    if !verilator_present() {
        return;
    }
    let cases = [
        (Config::default(), 1),
        // Fill and drain bound with an odd buffer period: 5.5 cycles per frame.
        (
            Config {
                modulation: Modulation::Bpsk,
                nt: 1,
                nr: 1,
                layers: 1,
                bins: Some(4),
                ..Config::default()
            },
            1,
        ),
        (
            Config {
                arch: Arch::Admm,
                init: Init::MatchedFilter,
                modulation: Modulation::Qam16,
                nt: 2,
                nr: 3,
                layers: 3,
                seed: 21,
                ..Config::default()
            },
            2,
        ),
        (
            Config {
                momentum: true,
                init: Init::MatchedFilter,
                nt: 4,
                nr: 4,
                layers: 2,
                bits: 8,
                seed: 22,
                ..Config::default()
            },
            4,
        ),
    ];
    for (c, lanes) in cases {
        let ir = ir(&c);
        let rtl = Rtl::generate_and_build(&ir, &options(lanes), false).unwrap();
        let report = rtl
            .cosimulate(frames(&ir, 200, 5), Stalls::none(5))
            .unwrap();
        let what = format!("{c:?} lanes {lanes}");
        check(&report, &what);
        check_timing(&rtl, &report, &what);
        // The steady state lasts from the first frame: with no stalls (and these configs'
        // integral cycles per frame) the whole run takes the latency, (frames − 1) intervals
        // and the last frame's output cycle.
        let est = rtl.estimate();
        if est.cycles_per_frame().fract() != 0.0 {
            continue;
        }
        assert_eq!(
            report.total_cycles,
            est.latency + (report.frames - 1) * est.ii + 1,
            "{what}: total cycles"
        );
    }
}

/// A BER run through the RTL gives exactly the golden model's decisions and error counts.
#[test]
fn rtl_detector_decides_like_the_golden_model() {
    if !verilator_present() {
        return;
    }
    let c = Config {
        modulation: Modulation::Qam16,
        nt: 3,
        nr: 4,
        layers: 3,
        bits: 8,
        seed: 31,
        ..Config::default()
    };
    let ir = ir(&c);
    let interp = Interpreter::new(ir.clone()).unwrap();
    let rtl = RtlDetector::new(Rtl::generate_and_build(&ir, &options(3), false).unwrap(), 7);
    assert_eq!(rtl.name(), format!("{}-rtl", ir.name));
    let link = LinkConfig::new(c.nt, c.nr, c.modulation).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(32);
    for snr in [8.0, 20.0] {
        let batch = link.generator().unwrap().generate(&[snr; 500], &mut rng);
        let mut want = vec![0; batch.frames * batch.n];
        let mut got = vec![0; batch.frames * batch.n];
        interp.detect(&batch, &mut want).unwrap();
        rtl.detect(&batch, &mut got).unwrap();
        assert_eq!(got, want, "decisions at {snr} dB");
        assert!(
            got.iter().zip(&batch.x).any(|(a, b)| a != b) || snr > 10.0,
            "the low-SNR point must have symbol errors for the comparison to mean anything"
        );
    }
    let mut config = BerConfig::new(link, vec![6.0, 14.0], 200, 2000, 33);
    config.batch_frames = 250;
    let points = simulate(&config, &[&interp, &rtl], None).unwrap();
    let (golden, hw) = points.split_at(2);
    for (g, h) in golden.iter().zip(hw) {
        assert_eq!(g.snr_db, h.snr_db);
        assert_eq!(g.bit_errors, h.bit_errors, "bit errors at {} dB", g.snr_db);
        assert_eq!(g.frames, h.frames, "frames at {} dB", g.snr_db);
        assert!(g.bit_errors > 0, "{} dB: no errors to compare", g.snr_db);
    }
}

/// Negative control: wrong golden expectations are reported with the right frame, layer,
/// element and field, and counted.
#[test]
fn wrong_expectations_are_reported() {
    if !verilator_present() {
        return;
    }
    let c = Config {
        arch: Arch::Admm,
        layers: 3,
        seed: 41,
        ..Config::default()
    };
    let ir = ir(&c);
    let interp = Interpreter::new(ir.clone()).unwrap();
    let rtl = Rtl::generate_and_build(&ir, &options(1), false).unwrap();
    let stalls = Stalls {
        input: 0.2,
        output: 0.2,
        seed: 42,
    };
    let run = |corrupt: &dyn Fn(u64, &mut Taps)| {
        rtl.cosimulate_against(frames(&ir, 100, 43), stalls, |i, f| {
            let mut taps = interp.run_codes(&f.h, &f.y, f.bin).unwrap();
            corrupt(i, &mut taps);
            Ok(taps)
        })
        .unwrap()
    };
    // One output bit flipped in frame 57: every layer agrees, the output stage differs.
    let report = run(&|i, t| {
        if i == 57 {
            t.output[1] ^= 1;
        }
    });
    assert_eq!(report.mismatches, 1);
    let m = report.first_mismatch.unwrap();
    assert_eq!(
        (m.frame, m.layer, m.element, m.field),
        (57, None, 1, "out_x"),
        "{m}"
    );
    assert_eq!(m.golden, m.rtl ^ 1);
    // Layer 2's u in frame 9 and layer 3's x in frame 70: the first is reported, both counted.
    let report = run(&|i, t| {
        if i == 9 {
            t.layers[1].u[0] += 1;
        }
        if i == 70 {
            t.layers[2].x[1] -= 1;
        }
    });
    assert_eq!(report.mismatches, 2);
    let m = report.first_mismatch.unwrap();
    assert_eq!(
        (m.frame, m.layer, m.element, m.field),
        (9, Some(2), 0, "u"),
        "{m}"
    );
    assert_eq!(m.golden, m.rtl + 1);
    // A wrong decision only (the Gray bits).
    let report = run(&|i, t| {
        if i == 3 {
            t.levels[0] = -t.levels[0];
        }
    });
    let m = report.first_mismatch.unwrap();
    assert_eq!((m.frame, m.layer, m.field), (3, None, "out_bits"), "{m}");
}

/// With pipeline registers in the update lanes (`kaq codegen --update-pipeline`, chosen by
/// `--clock-mhz`) the RTL stays bit-exact (under stalls too) and its measured II and latency
/// equal `report::analyse`, which adds one update cycle per register.
#[test]
fn pipelined_update_is_exact_and_timed_by_the_model() {
    if !verilator_present() {
        return;
    }
    let pgd = Config::default();
    let cases = [
        (pgd, 1, 1),
        (pgd, 2, 2),
        (
            Config {
                momentum: true,
                init: Init::MatchedFilter,
                prox: Prox::Qam,
                nt: 4,
                nr: 4,
                layers: 2,
                bits: 8,
                seed: 23,
                ..Config::default()
            },
            4,
            2,
        ),
        (
            Config {
                arch: Arch::Admm,
                init: Init::MatchedFilter,
                modulation: Modulation::Qam16,
                nt: 2,
                nr: 3,
                layers: 3,
                seed: 21,
                ..Config::default()
            },
            2,
            1,
        ),
    ];
    for (c, lanes, depth) in cases {
        let ir = ir(&c);
        let what = format!("{c:?} lanes {lanes} update pipeline {depth}");
        let plain = kaq_codegen::lower(&ir, lanes, "kaq_top").unwrap();
        let generated =
            kaq_codegen::generate_pipelined(&ir, &options(lanes), &LinkFrames, depth).unwrap();
        assert!(generated.design.layers.iter().all(|l| l.upd_pipe == depth));
        let rtl = Rtl::build(&generated, false).unwrap();
        // Each register delays every stage's update by a cycle.
        let (base, est) = (analyse(&plain).total, rtl.estimate());
        assert_eq!(
            est.latency,
            base.latency + depth * ir.layers.len() as u64,
            "{what}"
        );
        let report = rtl
            .cosimulate(frames(&ir, 120, 9), Stalls::none(9))
            .unwrap();
        check(&report, &what);
        check_timing(&rtl, &report, &what);
        let stalled = Stalls {
            input: 0.3,
            output: 0.3,
            seed: 10,
        };
        let report = rtl.cosimulate(frames(&ir, 60, 11), stalled).unwrap();
        check(&report, &format!("{what}, stalls"));
    }
}
