//! Co-simulation throughput of the flow's default design: the IR v2 cg engine of
//! `docs/gram/cg-k8-l4.model.json` PTQ'd at 8 bits (`kaq lower --ptq-bits 8`, its defaults),
//! 8 MAC lanes, 16×16 16-QAM, in channel blocks of T = 14 vectors at 10, 20 and 30 dB with
//! 20 % stalls on every port: the run of `kaq cosim --ir cg8.json --frames 560 --block 14
//! --snr 10,20,30 --stall-prob 0.2 --lanes 8`. Vectors per second through the Verilated RTL
//! with outputs only (the flow's RTL exactly) and with every stage's taps checked, single
//! threaded.
//!
//! `cargo bench -p kaq-sim --bench cosim_cg` (needs Verilator; without it the bench prints a
//! note and exits, unless `KAQ_REQUIRE_VERILATOR=1`). `KAQ_COSIM_CG_LANES=8,32` measures other
//! lane counts (default 8), `KAQ_COSIM_CG_FRAMES` another stream length (default 560).
//!
//! Criterion's figures are wall time, which a loaded machine inflates; before them the bench
//! prints, per build, one pass timed by the wall clock and by this thread's CPU time
//! (`/proc/thread-self/schedstat`, Linux) with the load average, and the time the stimulus
//! (link frames and their quantization) and the golden model take for the same stream.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kaq_ir::gram::GramIr;
use kaq_model::gram::file::GramModelFile;
use kaq_model::gram::quantized::{CgQuantOptions, lower_cg};
use kaq_sim::cosim::gram::{GramBlock, GramRtl, GramStalls, link_blocks};
use kaq_sim::tools::{self, Tool};

/// Frames per channel block (T).
const BLOCK: usize = 14;

/// The SNR points of the stream, dB.
const SNR_DB: [f64; 3] = [10.0, 20.0, 30.0];

/// The stall probability on every port.
const STALL: f64 = 0.2;

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

/// A comma-separated list of counts from `var`, else `default`.
fn env_counts(var: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(|l| {
                l.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{var}: `{l}` is not a count"))
            })
            .collect(),
        _ => default.to_vec(),
    }
}

/// The default design's IR: `kaq lower --model docs/gram/cg-k8-l4.model.json --ptq-bits 8`.
fn default_ir() -> GramIr {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/gram/cg-k8-l4.model.json");
    let file = GramModelFile::load(&path).unwrap();
    lower_cg(&file.net, &CgQuantOptions::new(8)).unwrap()
}

fn stalls() -> GramStalls {
    GramStalls {
        block: STALL,
        vector: STALL,
        output: STALL,
        seed: 1,
    }
}

/// One run, checked bit-exact; the vectors.
fn run(rtl: &GramRtl, blocks: &[GramBlock]) -> usize {
    let report = rtl.run(blocks, stalls()).unwrap();
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches[0]);
    assert_eq!(report.tap_mismatch_count, 0);
    report.vectors
}

fn bench(c: &mut Criterion) {
    if tools::require(Tool::Verilator)
        .expect("KAQ_REQUIRE_VERILATOR=1 but verilator is unusable")
        .is_none()
    {
        eprintln!("verilator is not installed; skipping the cg co-simulation bench");
        return;
    }
    let ir = default_ir();
    let frames = env_counts("KAQ_COSIM_CG_FRAMES", &[560])[0];
    let t = Instant::now();
    let blocks = link_blocks(&ir, frames, BLOCK, &SNR_DB, 1).unwrap();
    let stimulus = t.elapsed().as_secs_f64();
    let golden = kaq_ir::gram::GramInterpreter::new(ir.clone()).unwrap();
    let t = Instant::now();
    for b in &blocks {
        black_box(golden.run_block_codes(&b.h, &b.ys, b.bin).unwrap());
    }
    let gold = t.elapsed().as_secs_f64();
    eprintln!(
        "{frames} vectors: stimulus {:.1} ms ({:.0} vectors/s), golden model {:.1} ms \
         ({:.0} vectors/s)",
        stimulus * 1e3,
        frames as f64 / stimulus,
        gold * 1e3,
        frames as f64 / gold
    );
    let mut group = c.benchmark_group("cosim_cg_k8_l4_8b_16x16_16qam_t14");
    group.throughput(Throughput::Elements(frames as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for lanes in env_counts("KAQ_COSIM_CG_LANES", &[8]) {
        for taps in [false, true] {
            let rtl = GramRtl::build_with(&ir, lanes, false, taps).unwrap();
            let what = if taps { "with_taps" } else { "outputs_only" };
            let prog = rtl.program();
            eprintln!(
                "lanes {lanes} {what}: build {:.1} s, {} cycles a vector, {} a block",
                rtl.build_time().as_secs_f64(),
                prog.vector_cycles(),
                prog.block_cycles()
            );
            let (wall, cpu) = (Instant::now(), thread_cpu_time());
            let n = run(&rtl, &blocks);
            let wall = wall.elapsed().as_secs_f64();
            let cpu = cpu
                .zip(thread_cpu_time())
                .map(|(a, b)| format!("{:.0}", n as f64 / (b - a).as_secs_f64()))
                .unwrap_or_else(|| "?".into());
            eprintln!(
                "lanes {lanes} {what}: {n} vectors: {:.0} vectors/s wall, {cpu} vectors/s \
                 thread CPU time (load average {})",
                n as f64 / wall,
                load_average()
            );
            group.bench_function(format!("lanes{lanes}/{what}"), |b| {
                b.iter(|| run(&rtl, &blocks))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
