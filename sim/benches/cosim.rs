//! Co-simulation throughput of the default design (16×16 antennas 16-QAM, M = N = 32 real
//! dimensions, PGD-Net K = 5, 8 bits) at 8 and 32 MAC lanes: frames per second through the Verilated RTL, with and
//! without the per-layer taps and the golden-model comparison, and the Verilator build time.
//! The design is the flow's default: `quant.mult_bits` = 14 (`FLOW_MULT_BITS`) and the deepest
//! update pipeline (2 for PGD-Net), as `kaq flow` generates it without `rtl.clock_mhz`.
//!
//! `cargo bench -p kaq-sim --bench cosim` (needs Verilator; without it the bench prints a note
//! and exits, unless `KAQ_REQUIRE_VERILATOR=1`). The first run builds both designs (cached by
//! content hash afterwards); the build times are printed before the measurements.
//! `KAQ_COSIM_BENCH_LANES=8` measures one lane count only.
//!
//! Criterion's figures are wall time, which a loaded machine inflates; before them the bench
//! also prints, per lane count, one outputs-only pass of `CPU_FRAMES` frames timed both by the
//! wall clock and by this thread's CPU time (`/proc/thread-self/schedstat`, Linux), with the
//! load average.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kaq_codegen::design::max_update_pipeline;
use kaq_codegen::{Options, generate_pipelined};
use kaq_ir::{Interpreter, Ir};
use kaq_model::LinkConfig;
use kaq_model::lower::{LinkFrames, LowerOptions, lower};
use kaq_model::quant::{QuantConfig, QuantMethod, QuantNet};
use kaq_model::train::{SetKind, TrainSet};
use kaq_model::unfolded::{NetConfig, UnfoldedNet};
use kaq_model::{Modulation, link::stream_rng};
use kaq_sim::Rtl;
use kaq_sim::cosim::{FrameCodes, Stalls};
use kaq_sim::tools::{self, Tool};

/// The flow's `quant.mult_bits` (`FLOW_MULT_BITS` of `kaq flow`'s configuration).
const FLOW_MULT_BITS: u32 = 14;

/// Frames per measured batch.
const FRAMES: usize = 500;

/// Frames of the wall-and-CPU-time pass.
const CPU_FRAMES: usize = 2000;

/// This thread's CPU time (`/proc/thread-self/schedstat`, nanoseconds on a CPU), or `None`
/// off Linux.
fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// The 1-minute load average, or `?`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// The default design's IR: the paper's PGD-Net (soft prox, K = 5) on a 16×16 16-QAM link,
/// calibrated and quantized with KAQ at 8 bits (16×16 antennas, docs/system-model.md), lowered
/// with the flow's 14-bit multipliers.
fn default_ir() -> Ir {
    let link = LinkConfig::new(16, 16, Modulation::Qam16).unwrap();
    let net = UnfoldedNet::new(NetConfig::default(), &link).unwrap();
    let set = TrainSet::generate(&link, 256, &[0.0, 10.0, 20.0, 30.0], 1, SetKind::Train).unwrap();
    let qc = QuantConfig::with_activation_bits(8);
    let q = QuantNet::calibrate(&net, QuantMethod::Kaq, &qc, &set.as_batch()).unwrap();
    lower(
        &q,
        LowerOptions {
            mult_bits: FLOW_MULT_BITS,
        },
    )
    .unwrap()
}

fn frames(ir: &Ir) -> Vec<FrameCodes> {
    let interp = Interpreter::new(ir.clone()).unwrap();
    let link = LinkConfig::new(ir.nt, ir.nr, ir.modulation).unwrap();
    let snr: Vec<f64> = (0..FRAMES).map(|f| (f % 26) as f64).collect();
    let batch = link
        .generator()
        .unwrap()
        .generate(&snr, &mut stream_rng(7, 0));
    (0..FRAMES)
        .map(|f| FrameCodes::from(interp.frame_codes(&batch.received(), f).unwrap()))
        .collect()
}

/// The lane counts to measure: `KAQ_COSIM_BENCH_LANES` (comma-separated, e.g. `8`), default 8
/// and 32.
fn bench_lanes() -> Vec<usize> {
    match std::env::var("KAQ_COSIM_BENCH_LANES") {
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(|l| {
                l.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("KAQ_COSIM_BENCH_LANES: `{l}` is not a lane count"))
            })
            .collect(),
        _ => vec![8, 32],
    }
}

fn bench(c: &mut Criterion) {
    if tools::require(Tool::Verilator)
        .expect("KAQ_REQUIRE_VERILATOR=1 but verilator is unusable")
        .is_none()
    {
        eprintln!("verilator is not installed; skipping the co-simulation bench");
        return;
    }
    let ir = default_ir();
    let input = frames(&ir);
    let mut group = c.benchmark_group("cosim_default_16x16_16qam_k5_8b");
    group.throughput(Throughput::Elements(FRAMES as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for lanes in bench_lanes() {
        let options = Options {
            lanes,
            ..Options::default()
        };
        let t = Instant::now();
        let generated =
            generate_pipelined(&ir, &options, &LinkFrames, max_update_pipeline(ir.arch)).unwrap();
        let rtl = Rtl::build(&generated, false).unwrap();
        eprintln!(
            "lanes {lanes}: Verilator build {:.1} s{} (call {:.1} s), {} cycles per frame, \
             latency {}",
            rtl.build_time().as_secs_f64(),
            if rtl.cached() { " (cached)" } else { "" },
            t.elapsed().as_secs_f64(),
            rtl.estimate().cycles_per_frame(),
            rtl.estimate().latency
        );
        // A correctness pass before timing anything.
        let report = rtl.cosimulate(input.clone(), Stalls::none(1)).unwrap();
        assert_eq!(report.mismatches, 0, "{:?}", report.first_mismatch);
        {
            let mut driver = rtl.driver(Stalls::none(1), false).unwrap();
            let mut n = 0u64;
            let (wall, cpu) = (Instant::now(), thread_cpu_time());
            driver
                .run(input.iter().cycle().take(CPU_FRAMES).cloned(), |_, f| {
                    n += u64::from(black_box(f.out_bits[0]) < 16);
                    Ok(())
                })
                .unwrap();
            let wall = wall.elapsed().as_secs_f64();
            let cpu = cpu
                .zip(thread_cpu_time())
                .map(|(a, b)| format!("{:.0}", CPU_FRAMES as f64 / (b - a).as_secs_f64()))
                .unwrap_or_else(|| "?".into());
            eprintln!(
                "lanes {lanes}: outputs only, {CPU_FRAMES} frames: {:.0} frames/s wall, {cpu} \
                 frames/s CPU time (load average {})",
                CPU_FRAMES as f64 / wall,
                load_average()
            );
            black_box(n);
        }
        group.bench_function(format!("lanes{lanes}/outputs_only"), |b| {
            b.iter(|| {
                let mut driver = rtl.driver(Stalls::none(1), false).unwrap();
                let mut n = 0u64;
                driver
                    .run(input.iter().cloned(), |_, f| {
                        n += u64::from(black_box(f.out_bits[0]) < 16);
                        Ok(())
                    })
                    .unwrap();
                n
            })
        });
        group.bench_function(format!("lanes{lanes}/compared_with_taps"), |b| {
            b.iter(|| {
                let r = rtl
                    .cosimulate(input.iter().cloned(), Stalls::none(1))
                    .unwrap();
                assert_eq!(r.mismatches, 0);
                r.frames
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
