//! Co-simulation of generated designs against the integer golden model: every output and every
//! layer's states bit for bit, under random input stalls and output back-pressure; the RTL as a
//! detector; the measured timing against `report::analyse`; a negative control.
//!
//! Each test asks `tools::require` first: without Verilator it returns early, unless
//! `KAQ_REQUIRE_VERILATOR=1`, where the absence fails the test. Builds go to the shared
//! content-addressed cache (locked, so concurrent test processes are safe); a warm cache makes
//! the suite several times faster.

use std::time::Instant;

use kaq_codegen::Options;
use kaq_model::ir::{Interpreter, Ir, LowerOptions, lower};
use kaq_model::quant::{QuantConfig, QuantMethod, QuantNet};
use kaq_model::train::{SetKind, TrainSet};
use kaq_model::unfolded::{Arch, Init, NetConfig, Prox, UnfoldedNet};
use kaq_model::{LinkConfig, Modulation};
use kaq_sim::cosim::{FrameCodes, Stalls};
use kaq_sim::tools::{self, Tool};
use kaq_sim::{CosimReport, Rtl};
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
            let pick = |f: kaq_model::fixed::QFormat, i: usize| match kind {
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
        let mut codes = FrameCodes::from(interp.frame_codes(&batch, f).unwrap());
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
        report.mismatches, 0,
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

#[test]
fn smoke() {
    if !verilator_present() {
        return;
    }
    let c = Config::default();
    let ir = ir(&c);
    let t = Instant::now();
    let rtl = Rtl::build(&ir, &options(2), false).unwrap();
    eprintln!("build {:?} cached {}", t.elapsed(), rtl.cached());
    let fr = frames(&ir, 5000, 3);
    let n = fr.len();
    let r = rtl
        .cosimulate(
            fr,
            Stalls {
                input: 0.2,
                output: 0.3,
                seed: 5,
            },
        )
        .unwrap();
    eprintln!("{n} {r:?}");
    check(&r, "smoke");
    let r = rtl.cosimulate(frames(&ir, 200, 4), Stalls::none(1)).unwrap();
    eprintln!("{r:?}");
    check(&r, "smoke");
}
