//! `kaq cosim`: Verilator co-simulation of the generated RTL against the integer golden model.
//!
//! `kaq cosim --ir ir.json --frames N [--lanes P] [--snr 0:25:5] [--stall-prob P]
//! [--backpressure-prob P] [--seed S] [--trace out.vcd] [--json PATH] [--force]` generates the design of
//! the IR (`kaq_codegen::generate`), builds it with Verilator (cached by content hash), draws
//! N frames from the IR's link spread evenly over the SNR points, quantizes them with the
//! receiver front end (`Interpreter::frame_codes`) and streams them through the pipeline with
//! random input stalls (`--stall-prob`) and output back-pressure (`--backpressure-prob`,
//! default the stall probability). Every output (codes and Gray bits) and every layer's states
//! are compared bit for bit with the golden model.
//!
//! Stdout: frames, mismatches (and the first one: frame, layer, element, field, values),
//! measured cycles per frame and latency against `kaq_codegen::report::analyse`, co-simulated
//! frames per second and the build time. `--trace` writes a VCD of the whole run (keep N
//! small: a warning on stderr names the estimated size when it exceeds 100 MB). `--json` writes the same figures:
//!
//! ```text
//! { "tool", "version", "command": "cosim", "ir", "lanes", "frames", "mismatches",
//!   "first_mismatch": null | { "frame", "layer" (null = output stage), "element", "field",
//!   "rtl", "golden" }, "snr_db", "stall_prob", "backpressure_prob", "seed",
//!   "cycles": { "total", "measured_per_frame", "estimated_per_frame", "estimated_ii",
//!               "measured_latency", "estimated_latency" },
//!   "frames_per_second", "build_seconds", "build_cached" }
//! ```
//!
//! An IR v2 (cg) document runs its folded Gram design instead (`kaq_sim::cosim::gram`): the
//! frames in channel blocks of `--block` (default 1) with stalls on every port, every output
//! beat and every block's and vector's cycle count checked; stdout gives vectors, blocks,
//! mismatches, the analytic cycles and vectors per second (`--block` other than 1 is refused
//! for v1; `--trace` and `--json` for v2; for v2 `--lanes` is the MAC lanes, 1 to 32, default
//! 1).
//!
//! `--update-pipeline D` or `--clock-mhz F` (IR v1) co-simulates the design `kaq codegen`
//! generates with them.
//!
//! Exit status: 0 when every frame matches, 1 on any mismatch or run-time failure (Verilator
//! missing, an unreadable IR), 2 on bad flag values.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use kaq_codegen::Options;
use kaq_model::LinkConfig;
use kaq_sim::cosim::{Stalls, link_frames};
use kaq_sim::{CosimError, Rtl};

use super::args::parse_positive;
use super::ber::{SnrPoints, parse_snr};
use crate::plot;

mod trace;

/// Arguments of `kaq cosim`.
#[derive(Debug, Args)]
pub struct CosimArgs {
    /// The IR (`kaq lower`).
    #[arg(long, value_name = "PATH")]
    ir: PathBuf,

    /// MAC lanes per layer stage (must divide N); default 8, or the largest divisor of N
    /// below it.
    #[arg(long, value_parser = parse_positive)]
    lanes: Option<usize>,

    /// Frames to co-simulate.
    #[arg(long, value_parser = parse_positive)]
    frames: usize,

    /// IR v2 only: frames per channel block (block fading; H̃ enters once per block).
    #[arg(long, value_parser = parse_positive, default_value_t = 1)]
    block: usize,

    /// SNR points in dB (start:stop:step or a comma list); the frames are spread evenly.
    #[arg(long, value_parser = parse_snr, default_value = "0:25:5", allow_hyphen_values = true)]
    snr: SnrPoints,

    /// Probability of withholding an input beat in a cycle, in [0, 1).
    #[arg(long, value_parser = parse_probability, default_value_t = 0.0)]
    stall_prob: f64,

    /// Probability of holding `out_ready` low in a cycle, in [0, 1); default --stall-prob.
    #[arg(long, value_parser = parse_probability)]
    backpressure_prob: Option<f64>,

    /// Seed of the frames, the stalls and the model's initial state.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Write a VCD trace of the whole run here.
    #[arg(long, value_name = "PATH.vcd")]
    trace: Option<PathBuf>,

    /// Write the figures as JSON here.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,

    /// Replace existing --json and --trace files.
    #[arg(long)]
    force: bool,

    /// IR v1 only: the update pipeline of the co-simulated design, as `kaq codegen`.
    #[command(flatten)]
    pipeline: super::codegen::PipelineArgs,
}

fn parse_probability(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !(0.0..1.0).contains(&v) {
        return Err(format!("a probability in [0, 1) is needed, got {v}"));
    }
    Ok(v)
}

/// Runs `kaq cosim`.
pub fn run(args: CosimArgs) -> anyhow::Result<()> {
    super::args::check_outputs(
        &[
            ("--json", args.json.as_deref()),
            ("--trace", args.trace.as_deref()),
        ],
        args.force,
    )?;
    if args.snr.0.is_empty() {
        return Err(super::args::usage_error(
            "--snr",
            "at least one SNR point is needed",
        ));
    }
    let ir = match kaq_ir::gram::AnyIr::load(&args.ir)
        .with_context(|| format!("--ir {}", args.ir.display()))?
    {
        kaq_ir::gram::AnyIr::Ep(_) => {
            return Err(super::args::usage_error(
                "--ir",
                format!("{}: family ep has no RTL yet", args.ir.display()),
            ));
        }
        kaq_ir::gram::AnyIr::V1(ir) => ir,
        kaq_ir::gram::AnyIr::V2(ir) => return run_gram(&args, &ir),
        kaq_ir::gram::AnyIr::Oamp(ir) => return run_oamp(&args, &ir),
    };
    if args.block != 1 {
        return Err(super::args::usage_error(
            "--block",
            "channel blocks are for IR v2 designs; a v1 design takes one channel per frame",
        ));
    }
    let lanes = super::codegen::lanes_for(&ir, args.lanes)?;
    let options = Options {
        lanes,
        ..Options::default()
    };
    let stalls = Stalls {
        input: args.stall_prob,
        output: args.backpressure_prob.unwrap_or(args.stall_prob),
        seed: args.seed,
    };
    let link = LinkConfig::new(ir.nt, ir.nr, ir.modulation)?;

    let build = crate::progress::step(
        "cosim build",
        &format!(
            "building {} ({}, K = {}, {} lanes) with Verilator",
            ir.name,
            plot::style::link_name(ir.nt, ir.nr, ir.modulation),
            ir.layers.len(),
            lanes
        ),
    );
    let (upd_pipe, _) = args.pipeline.depth(&ir, lanes)?;
    let generated = super::codegen::generate_checked(&ir, &options, upd_pipe)?;
    let rtl = Rtl::build(&generated, args.trace.is_some());
    build.finish(build_outcome(&rtl));
    let rtl = rtl.map_err(unavailable)?;
    let mut driver = rtl.driver(stalls, true)?;
    // The VCD is written beside --trace and renamed over it once complete (a device or FIFO
    // is written straight).
    let trace = match &args.trace {
        Some(path) => Some(
            kaq_files::PendingFile::begin(path)
                .with_context(|| format!("--trace {}", path.display()))?,
        ),
        None => None,
    };
    let mut trace_estimate = None;
    if let Some(pending) = &trace
        && !pending.is_straight()
    {
        driver.trace(pending.path())?;
        driver.flush_trace();
        // The header is written on opening: its signal count sizes the whole trace.
        let header = std::fs::read(pending.path()).unwrap_or_default();
        let header = String::from_utf8_lossy(&header);
        let est = rtl.estimate();
        let cycles = trace::run_cycles(
            args.frames,
            est.cycles_per_frame(),
            est.latency,
            stalls.input,
        );
        let bytes = trace::vcd_bytes(header.len() as u64, trace::header_signals(&header), cycles);
        trace_estimate = Some(bytes);
        if let Some(w) = trace::warning(bytes, args.frames) {
            eprintln!("{w}");
        }
    } else if let Some(pending) = &trace {
        driver.trace(pending.path())?;
    }

    let bar = crate::progress::bar("cosim", args.frames as u64, "frames");
    let interp = rtl.interpreter();
    let points = args.snr.0.clone();
    let mut failure: Option<anyhow::Error> = None;
    let frames = link_frames(interp, &link, &points, args.frames, args.seed)?
        .map_while(|frame| match frame {
            Ok(f) => Some(f),
            Err(e) => {
                failure = Some(e.into());
                None
            }
        })
        .inspect(|_| bar.inc(1));
    let report = rtl.cosimulate_on(&mut driver, frames, |_, f| {
        Ok(interp.run_codes(&f.h, &f.y, f.bin)?)
    });
    bar.finish_and_clear();
    // Dropping the driver closes the VCD.
    drop(driver);
    let report = report?;
    if let Some(e) = failure {
        return Err(e.context("quantizing the frames"));
    }
    // Only a complete run's VCD replaces --trace.
    if let Some(pending) = trace {
        pending.commit().context("--trace")?;
    }

    let est = rtl.estimate();
    let fmt_opt = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v}"));
    println!("design      {} ({lanes} lanes)", ir.name);
    println!(
        "frames      {} at SNR {:?} dB, stalls {} in / {} out",
        report.frames, points, stalls.input, stalls.output
    );
    println!("mismatches  {}", report.mismatches);
    if let Some(m) = &report.first_mismatch {
        println!("first       {m}");
    }
    println!(
        "cycles      {} per frame measured, {} estimated (II {}); latency {} measured, {} \
         estimated; {} in total",
        fmt_opt(report.measured_ii),
        est.cycles_per_frame(),
        est.ii,
        fmt_opt(report.measured_latency.map(|v| v as f64)),
        est.latency,
        report.total_cycles
    );
    println!(
        "speed       {:.0} frames/s co-simulated ({:.2} s)",
        report.frames_per_second,
        report.wall.as_secs_f64()
    );
    println!(
        "build       {:.2} s{}",
        report.build_time.as_secs_f64(),
        if report.cached { " (cached)" } else { "" }
    );
    if let Some(path) = &args.trace {
        match (trace_estimate, std::fs::metadata(path)) {
            (Some(est), Ok(m)) if m.is_file() => println!(
                "trace       {} ({:.1} MB; estimated {:.1} MB)",
                path.display(),
                m.len() as f64 / 1e6,
                est as f64 / 1e6
            ),
            _ => println!("trace       {}", path.display()),
        }
    }

    if let Some(path) = &args.json {
        let first = report.first_mismatch.as_ref().map(|m| {
            serde_json::json!({
                "frame": m.frame, "layer": m.layer, "element": m.element, "field": m.field,
                "rtl": m.rtl, "golden": m.golden,
            })
        });
        let doc = serde_json::json!({
            "tool": "kaq",
            "version": env!("CARGO_PKG_VERSION"),
            "command": "cosim",
            "ir": ir.name,
            "lanes": lanes,
            "frames": report.frames,
            "mismatches": report.mismatches,
            "first_mismatch": first,
            "snr_db": points,
            "stall_prob": stalls.input,
            "backpressure_prob": stalls.output,
            "seed": args.seed,
            "cycles": {
                "total": report.total_cycles,
                "measured_per_frame": report.measured_ii,
                "estimated_per_frame": est.cycles_per_frame(),
                "estimated_ii": est.ii,
                "measured_latency": report.measured_latency,
                "estimated_latency": est.latency,
            },
            "frames_per_second": report.frames_per_second,
            "build_seconds": report.build_time.as_secs_f64(),
            "build_cached": report.cached,
        });
        let mut text = serde_json::to_string_pretty(&doc).context("cannot encode the results")?;
        text.push('\n');
        plot::write_atomically(path, text.as_bytes())?;
    }
    if report.mismatches > 0 {
        bail!(
            "{} of {} frames differ from the golden model",
            report.mismatches,
            report.frames
        );
    }
    Ok(())
}

/// The outcome of a Verilator build, for its step line (`crate::progress::step`).
pub(crate) fn build_outcome(rtl: &Result<Rtl, CosimError>) -> &'static str {
    match rtl {
        Ok(rtl) if rtl.cached() => "reused the cached Verilator build",
        Ok(_) => "Verilator build done",
        Err(_) => "Verilator build failed",
    }
}

/// A clearer message when Verilator is not installed.
fn unavailable(e: CosimError) -> anyhow::Error {
    match e {
        CosimError::Sim(kaq_sim::SimError::VerilatorUnavailable { .. }) => {
            anyhow::anyhow!("kaq cosim needs Verilator (apt-get install verilator): {e}")
        }
        e => e.into(),
    }
}

/// The lanes of a Gram-engine design (IR `version`: "v2" or "v4"), refusing the flags that
/// only IR v1 designs take, each named.
fn gram_options(args: &CosimArgs, version: &str) -> anyhow::Result<usize> {
    let lanes = super::codegen::gram_lanes("--lanes", args.lanes)?;
    if let Some(flag) = args.pipeline.given() {
        return Err(super::args::usage_error(
            flag,
            format!(
                "the update pipeline is for IR v1 designs; a {version} design has its own schedule"
            ),
        ));
    }
    if args.trace.is_some() || args.json.is_some() {
        return Err(super::args::usage_error(
            if args.trace.is_some() {
                "--trace"
            } else {
                "--json"
            },
            format!("not supported for IR {version} designs yet"),
        ));
    }
    Ok(lanes)
}

/// The stalls of a Gram-engine run: `--stall-prob` on the block and vector inputs,
/// `--backpressure-prob` (default the same) on the output.
fn gram_stalls(args: &CosimArgs) -> kaq_sim::cosim::gram::GramStalls {
    let stall = args.stall_prob;
    kaq_sim::cosim::gram::GramStalls {
        block: stall,
        vector: stall,
        output: args.backpressure_prob.unwrap_or(stall),
        seed: args.seed,
    }
}

/// `kaq cosim` of an IR v2 (cg) design (`kaq_sim::cosim::gram`): link frames in channel
/// blocks of `--block`, stalls on every port, every output beat compared with the golden
/// model and every block's and vector's cycles with the analytic model.
fn run_gram(args: &CosimArgs, ir: &kaq_ir::gram::GramIr) -> anyhow::Result<()> {
    use kaq_sim::cosim::gram::{GramRtl, link_blocks};
    let lanes = gram_options(args, "v2")?;
    let rtl = GramRtl::build_lanes(ir, lanes, false)?;
    let blocks = link_blocks(ir, args.frames, args.block, &args.snr.0, args.seed)?;
    let stalls = gram_stalls(args);
    let start = std::time::Instant::now();
    let report = rtl.run(&blocks, stalls)?;
    let secs = start.elapsed().as_secs_f64();
    let prog = rtl.program();
    let (pb, pv) = (prog.block_cycles(), prog.vector_cycles());
    let exact = report.block_cycles.iter().all(|&c| c == pb)
        && report.vector_cycles.iter().all(|&c| c == pv);
    println!(
        "{} vectors in {} blocks of {}: {} mismatches",
        report.vectors,
        report.blocks,
        args.block,
        report.mismatches.len()
    );
    if let Some(first) = report.mismatches.first() {
        println!("  first: {first}");
    }
    println!(
        "  taps: {} values of every stage compared, {} mismatches",
        report.taps_compared, report.tap_mismatch_count
    );
    if let Some(first) = report.tap_mismatches.first() {
        println!("  first tap mismatch: {first}");
    }
    if let Some(first) = report.tap_anomalies.first() {
        println!("  first tap anomaly: {first}");
    }
    println!(
        "  cycles: block stage {pb}, vector {pv} (analytic); measured {}",
        if exact { "equal" } else { "DIFFERENT" }
    );
    println!(
        "  {:.0} vectors/s co-simulated, build {:.1} s",
        report.vectors as f64 / secs.max(1e-9),
        rtl.build_time().as_secs_f64()
    );
    if !report.mismatches.is_empty() || report.tap_mismatch_count > 0 || !exact {
        bail!("the RTL differs from the golden model");
    }
    Ok(())
}

/// `kaq cosim` of an IR v4 (oamp) document: the oamp programs on the Gram engine under
/// Verilator (`kaq_sim::cosim::gram_oamp`), every output beat against `OampInterpreter`, the
/// measured cycles against the analytic model, every register write on the tap port against
/// the engine's Rust twin.
fn run_oamp(args: &CosimArgs, ir: &kaq_ir::gram::oamp::OampIr) -> anyhow::Result<()> {
    use kaq_sim::cosim::gram_oamp::{OampRtl, oamp_link_blocks};
    let lanes = gram_options(args, "v4")?;
    let rtl = OampRtl::build_with(ir, lanes, false, true)?;
    let blocks = oamp_link_blocks(ir, args.frames, args.block, &args.snr.0, args.seed)?;
    let stalls = gram_stalls(args);
    let start = std::time::Instant::now();
    let report = rtl.run(&blocks, stalls)?;
    let secs = start.elapsed().as_secs_f64();
    let prog = rtl.program();
    let (pb, pv) = (prog.block_cycles(), prog.vector_cycles());
    let exact = report.block_cycles.iter().all(|&c| c == pb)
        && report.vector_cycles.iter().all(|&c| c == pv);
    println!(
        "{} vectors in {} blocks of {}: {} mismatches",
        report.vectors,
        report.blocks,
        args.block,
        report.mismatches.len()
    );
    if let Some(first) = report.mismatches.first() {
        println!("  first: {first}");
    }
    println!(
        "  taps: {} register writes compared with the engine's Rust twin, {} mismatches",
        report.taps_compared, report.tap_mismatch_count
    );
    if let Some(first) = report.tap_anomalies.first() {
        println!("  first tap mismatch: {first}");
    }
    println!(
        "  cycles: block stage {pb}, vector {pv} (analytic); measured {}",
        if exact { "equal" } else { "DIFFERENT" }
    );
    println!(
        "  {:.0} vectors/s co-simulated, build {:.1} s",
        report.vectors as f64 / secs.max(1e-9),
        rtl.build_time().as_secs_f64()
    );
    if !report.mismatches.is_empty() || report.tap_mismatch_count > 0 || !exact {
        bail!("the RTL differs from the golden model");
    }
    Ok(())
}
