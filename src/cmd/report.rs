//! `kaq report`: the timing and resources of the design `kaq codegen` would generate.
//!
//! `kaq report --ir ir.json [--lanes P] [--synth generic|ice40|xilinx] [--json PATH]
//! [--force]` lowers the IR to the design at `--lanes` (default as `kaq codegen`) and prints
//! the analytic model of `kaq_codegen::report` as a table: per layer and in total the MACs
//! per frame, MAC and update cycles, stage latency, stage initiation interval (II),
//! multipliers, adders and memory bits, then the design's II, latency, MAC bound of the II
//! (the busiest stage's MACs ÷ lanes) and the II ÷ MAC-bound ratio.
//!
//! With `--synth TARGET` the design is also generated into a temporary directory and
//! synthesized by Yosys, one distinct stage at a time in its context, `--jobs` at once, each
//! result cached by content hash under `--synth-cache` (`kaq_codegen::hierarchy`,
//! docs/synthesis.md); `--synth-limit S` stops after S seconds and reports the stages that
//! finished, labelled partial. The table gains the cells per stage and in total (logic, FFs,
//! carry, DSPs, memories, latches: always 0 in a correct design), the critical path of `sta`
//! (xilinx, ice40), and the figures of `kaq_codegen::qor`: Fmax (estimated from the critical
//! path, or with `--place` placed and routed on an iCE40 by nextpnr-ice40), throughput in
//! Mb/s = bits per vector × f / II, latency in µs, Mb/s per kLUT and per DSP. `--flat`
//! synthesizes the flattened top in one Yosys run instead (no timing). Yosys must be on PATH.
//!
//! The analytic xc7 estimate follows (`kaq_codegen::estimate`, docs/synthesis.md §Estimate):
//! LUTs, FFs and DSP48E1s per module and in total, without Yosys; beside a `--synth xilinx`
//! run, the measured totals over the estimate.
//!
//! The energy table follows (docs/energy.md): pJ per vector and per information bit of the
//! design under the paper's model (eqs. 7–11) and the 45 nm per-operation model, and of ZF,
//! MMSE (Cholesky) and kbest:32 at 16-bit fixed point and f32 from their operation counts,
//! their per-channel work spread over `--block` vectors (default 168).
//!
//! `--json PATH` writes all of it as one JSON object (`"format": "kaq-report"`), atomically;
//! an existing file is replaced only with `--force`.
//!
//! An IR v2 (cg) document gets its own report (`report::gram`, docs/synthesis.md "IR v2 (cg)
//! designs"): the cycle model at `--block T` (default 14), the design synthesized as one
//! unit, its clock estimate and throughput, and the energy table at T (docs/energy.md §3b).
//!
//! Bad flag values end with status 2 naming the flag; an unreadable or invalid IR, a missing
//! or failing Yosys and an unwritable output end with status 1.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use kaq_codegen::Options;
use kaq_codegen::estimate::{DesignEstimate, Estimate};
use kaq_codegen::hierarchy::{HierOptions, UnitResult, UnitStatus};
use kaq_codegen::qor::{ClockSource, EvalOptions, Evaluation, evaluate};
use kaq_codegen::report::{Report, analyse};
use kaq_codegen::synth::{SynthReport, Target, synthesize};
use kaq_codegen::timing::Placement;
use kaq_ir::Ir;
use kaq_model::train::model_file::{Overwrite, write_atomic};
use serde_json::{Value, json};

use super::args::{parse_from_str, parse_positive};
use super::codegen::{PipelineArgs, generate_checked, lanes_for, load_ir, plan_line};
use crate::plot::{self, Series};

pub(crate) mod energy;
mod gram;
mod ice40;

/// Arguments of `kaq report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The IR file (`kaq lower`).
    #[arg(long, value_name = "PATH")]
    ir: PathBuf,

    /// MAC lanes per layer stage; must divide N [default: as `kaq codegen`].
    #[arg(long, value_parser = parse_positive)]
    lanes: Option<usize>,

    /// Also synthesize the design with Yosys for this target: generic, ice40 or xilinx.
    #[arg(long, value_name = "TARGET", value_parser = parse_from_str::<Target>)]
    synth: Option<Target>,

    /// Yosys processes at once for --synth [default: the cores, at most 2].
    #[arg(long, value_parser = parse_positive)]
    jobs: Option<usize>,

    /// Stop --synth after this many seconds and report the stages that finished.
    #[arg(long, value_name = "SECONDS", value_parser = parse_positive)]
    synth_limit: Option<usize>,

    /// Cache of per-stage synthesis results [default: $KAQ_SYNTH_CACHE, else
    /// $XDG_CACHE_HOME/kaq/synth, else ~/.cache/kaq/synth].
    #[arg(long, value_name = "DIR")]
    synth_cache: Option<PathBuf>,

    /// Do not read or write the synthesis cache.
    #[arg(long, conflicts_with = "synth_cache")]
    no_synth_cache: bool,

    /// With --synth: synthesize the flattened top in one Yosys run (no timing, no cache).
    #[arg(long, requires = "synth")]
    flat: bool,

    /// With --synth: also place and route the flat design on an iCE40 HX8K with
    /// nextpnr-ice40 for a placed Fmax (designs that do not fit are reported as such).
    #[arg(long, requires = "synth", conflicts_with = "flat")]
    place: bool,

    /// With --synth: synthesize the design at every lane count that divides N and plot LUTs
    /// and DSPs against throughput into this SVG file (the table and --json gain the sweep).
    #[arg(long, value_name = "SVG", requires = "synth", conflicts_with_all = ["flat", "place"])]
    sweep_lanes: Option<PathBuf>,

    /// Keep the tools' working directories (scripts, netlists, logs) in this directory
    /// instead of a temporary one.
    #[arg(long, value_name = "DIR", requires = "synth")]
    synth_dir: Option<PathBuf>,

    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,

    /// Vectors per channel block over which the baselines' per-channel work (a factorization
    /// of H) is spread in the energy table [default: 168, one OFDM resource block]; for an
    /// IR v2 design the block length T of its cycle figures [default: 14].
    #[arg(long, value_name = "T", value_parser = parse_positive)]
    block: Option<usize>,

    #[command(flatten)]
    pipeline: PipelineArgs,

    /// Replace the --json file if it exists.
    #[arg(long)]
    force: bool,
}

/// The top module name of the synthesized design.
const TOP: &str = "kaq_top";

/// Runs `kaq report`.
pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        if path.exists() && !args.force {
            bail!(
                "--json {} already exists; pass --force to replace it",
                path.display()
            );
        }
        plot::check_writable(path).context("--json is not writable")?;
    }
    if let Some(path) = &args.sweep_lanes {
        plot::check_writable(path).context("--sweep-lanes is not writable")?;
    }
    // An IR v2 (cg) document has its own report; anything else is read as v1 (and its
    // errors are v1's).
    match kaq_ir::gram::AnyIr::load(&args.ir) {
        Ok(kaq_ir::gram::AnyIr::Ep(_)) => {
            return Err(super::args::usage_error(
                "--ir",
                format!("{}: family ep has no RTL yet", args.ir.display()),
            ));
        }
        Ok(kaq_ir::gram::AnyIr::V2(ir)) => return gram::run(&args, &ir),
        Ok(kaq_ir::gram::AnyIr::Oamp(_)) => {
            return Err(super::args::usage_error(
                "--ir",
                format!(
                    "{}: family oamp has no report yet (kaq codegen and kaq cosim take it)",
                    args.ir.display()
                ),
            ));
        }
        _ => {}
    }
    let ir = load_ir(&args.ir)?;
    let lanes = lanes_for(&ir, args.lanes)?;
    let (upd_pipe, plan) = args.pipeline.depth(&ir, lanes)?;
    let design = kaq_codegen::lower_pipelined(&ir, lanes, TOP, upd_pipe)
        .context("code generation failed")?;
    let report = analyse(&design);
    let synth = match args.synth {
        None => Synth::None,
        Some(target) if args.flat => Synth::Flat(run_flat(&ir, lanes, upd_pipe, target)?),
        Some(target) => Synth::Units(Box::new(run_units(&ir, lanes, upd_pipe, target, &args)?)),
    };
    print!("{}", table(&ir, lanes, &report, &synth));
    let (clock_ns, clock_mhz) = kaq_codegen::estimate::clock_estimate(&design);
    println!(
        "analytic clock: update pipeline {upd_pipe}, critical path {clock_ns:.2} ns (xc7 cell \
         delays), estimated {clock_mhz:.1} MHz with the 1.5 routing factor"
    );
    if let Some(plan) = &plan {
        println!("{}", plan_line(plan));
    }
    let estimate = kaq_codegen::estimate::estimate(&design);
    print!("{}", estimate_table(&estimate, &synth));
    let energy = energy::energy_report(&ir, args.block.unwrap_or(energy::DEFAULT_BLOCK));
    print!("{}", energy::energy_table(&energy));
    let sweep = match (&args.sweep_lanes, args.synth) {
        (Some(svg), Some(target)) => {
            let points = run_sweep(&ir, target, &args)?;
            print!("{}", sweep_table(&points));
            sweep_plot(svg, &ir, target, &points)?;
            println!("sweep plot: {}", svg.display());
            Some(points)
        }
        _ => None,
    };

    if let Some(path) = &args.json {
        let mut doc = to_json(&ir, &args.ir, lanes, &report, &synth);
        doc["sweep"] = json!(sweep);
        doc["energy"] = json!(energy);
        doc["estimate"] = json!(estimate);
        doc["clock_estimate"] = json!({
            "update_pipeline": upd_pipe,
            "critical_ns": clock_ns,
            "fmax_mhz": clock_mhz,
            "plan": plan,
        });
        let mut text = serde_json::to_string_pretty(&doc).context("cannot encode the report")?;
        text.push('\n');
        let overwrite = if args.force {
            Overwrite::Replace
        } else {
            Overwrite::Refuse
        };
        write_atomic(path, text.as_bytes(), overwrite)
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    Ok(())
}

/// What `--synth` measured.
#[derive(Debug)]
enum Synth {
    None,
    Flat(SynthReport),
    Units(Box<Evaluation>),
}

fn generated(ir: &Ir, lanes: usize, upd_pipe: u64) -> anyhow::Result<kaq_codegen::Generated> {
    let options = Options {
        lanes,
        top: TOP.to_string(),
        testbench_frames: 1,
        seed: 1,
    };
    generate_checked(ir, &options, upd_pipe)
}

pub(crate) fn scratch() -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("kaq-synth-")
        .tempdir()
        .context("cannot create a temporary directory for synthesis")
}

/// Generates the design into a temporary directory and synthesizes its flattened top.
fn run_flat(ir: &Ir, lanes: usize, upd_pipe: u64, target: Target) -> anyhow::Result<SynthReport> {
    let generated = generated(ir, lanes, upd_pipe)?;
    let dir = scratch()?;
    synthesize(&generated, dir.path(), target)
        .with_context(|| format!("--synth {target}: synthesis failed"))
}

/// The synthesis cache directory of `kaq report` (see `--synth-cache`).
pub(crate) fn default_synth_cache() -> Option<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("KAQ_SYNTH_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("kaq").join("synth")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("kaq").join("synth")))
}

/// One line per finished stage on stderr while a synthesis runs.
pub(crate) fn unit_progress(u: &UnitResult) {
    let what = match (&u.status, &u.cells) {
        (UnitStatus::Cached, Some(c)) => format!("cached ({:.0} s when run)", c.seconds),
        (UnitStatus::Synthesized, Some(c)) => match c.cpu_seconds {
            Some(cpu) => format!("{:.0} s ({cpu:.0} s CPU)", c.seconds),
            None => format!("{:.0} s", c.seconds),
        },
        (UnitStatus::TimedOut, _) => "stopped at the time limit".to_string(),
        (UnitStatus::NotRun, _) => "not started before the time limit".to_string(),
        _ => "failed".to_string(),
    };
    eprintln!(
        "synth: {} ({}): {what}",
        u.unit.name,
        u.unit.instances.join(", ")
    );
}

/// Synthesizes the design stage by stage (and places it with `--place`).
fn run_units(
    ir: &Ir,
    lanes: usize,
    upd_pipe: u64,
    target: Target,
    args: &ReportArgs,
) -> anyhow::Result<Evaluation> {
    let generated = generated(ir, lanes, upd_pipe)?;
    let tmp = scratch()?;
    let dir = args.synth_dir.as_deref().unwrap_or(tmp.path());
    let synth = hier_options(target, args);
    let options = EvalOptions {
        synth,
        place: args.place,
    };
    evaluate(&generated, dir, &options, &unit_progress)
        .with_context(|| format!("--synth {target}: synthesis failed"))
}

/// The lane counts of a sweep: every divisor of N.
fn sweep_lanes(n: usize) -> Vec<usize> {
    (1..=n).filter(|p| n.is_multiple_of(*p)).collect()
}

/// One design of a lane sweep.
#[derive(Debug, serde::Serialize)]
struct SweepPoint {
    lanes: usize,
    qor: kaq_codegen::qor::Qor,
}

/// Synthesizes the design at every lane count of [`sweep_lanes`].
fn run_sweep(ir: &Ir, target: Target, args: &ReportArgs) -> anyhow::Result<Vec<SweepPoint>> {
    sweep_lanes(ir.n)
        .into_iter()
        .map(|lanes| {
            eprintln!("sweep: {lanes} lanes");
            let (upd_pipe, _) = args.pipeline.depth(ir, lanes)?;
            let e = run_units(ir, lanes, upd_pipe, target, args)?;
            Ok(SweepPoint { lanes, qor: e.qor })
        })
        .collect()
}

fn sweep_table(points: &[SweepPoint]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>6} {:>8} {:>7} {:>6} {:>6} {:>9} {:>7} {:>10} {:>11} {:>11}",
        "lanes",
        "LUTs",
        "FFs",
        "DSPs",
        "II",
        "Fmax MHz",
        "Mb/s",
        "latency us",
        "Mb/s/kLUT",
        "Mb/s/DSP"
    );
    let f = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
    for p in points {
        let q = &p.qor;
        let _ = writeln!(
            s,
            "{:>6} {:>8} {:>7} {:>6} {:>6} {:>9} {:>7} {:>10} {:>11} {:>11}{}",
            p.lanes,
            q.lut,
            q.ff,
            q.dsp,
            q.ii,
            f(q.fmax_mhz, 1),
            f(q.throughput_mbps, 2),
            f(q.latency_us, 2),
            f(q.mbps_per_klut, 3),
            f(q.mbps_per_dsp, 3),
            if q.complete { "" } else { "  PARTIAL" }
        );
    }
    s
}

/// LUTs, 100 × DSPs and their sum against throughput.
fn sweep_plot(
    path: &std::path::Path,
    ir: &Ir,
    target: Target,
    points: &[SweepPoint],
) -> anyhow::Result<()> {
    let series = |name: &str, y: &dyn Fn(&kaq_codegen::qor::Qor) -> f64| Series {
        name: name.to_string(),
        points: points
            .iter()
            .filter_map(|p| Some((p.qor.throughput_mbps?, y(&p.qor))))
            .collect(),
        y_err: None,
    };
    let all = [
        series("LUTs", &|q| q.lut as f64),
        series("100 x DSPs", &|q| 100.0 * q.dsp as f64),
        series("LUTs + 100 x DSPs", &|q| {
            q.lut as f64 + 100.0 * q.dsp as f64
        }),
    ];
    plot::line_plot(
        path,
        &format!(
            "{}: area against throughput, lanes {} ({target}, estimated Fmax)",
            ir.name,
            points
                .iter()
                .map(|p| p.lanes.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "throughput (Mb/s)",
        "cells",
        false,
        &all,
    )
}

/// The ratio of the II to its MAC bound.
fn ratio(report: &Report) -> f64 {
    report.total.ii as f64 / report.total.mac_bound.max(1) as f64
}

/// The table printed on stdout.
fn table(ir: &Ir, lanes: usize, report: &Report, synth: &Synth) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} ({}): {}, H~ {}×{}, {} layers, {} lanes",
        ir.name,
        ir.arch,
        plot::style::link_name(ir.nt, ir.nr, ir.modulation),
        ir.m,
        ir.n,
        ir.layers.len(),
        lanes
    );
    let _ = writeln!(
        s,
        "{:>6} {:>9} {:>8} {:>8} {:>8} {:>7} {:>6} {:>7} {:>10}",
        "layer", "MACs", "MAC cyc", "upd cyc", "latency", "II", "mults", "adders", "mem bits"
    );
    for l in &report.layers {
        let _ = writeln!(
            s,
            "{:>6} {:>9} {:>8} {:>8} {:>8} {:>7} {:>6} {:>7} {:>10}",
            l.layer,
            l.macs,
            l.mac_cycles,
            l.update_cycles,
            l.latency,
            l.ii,
            l.multipliers,
            l.adders,
            l.memory_bits
        );
    }
    let t = &report.total;
    let mac_cycles: u64 = report.layers.iter().map(|l| l.mac_cycles).sum();
    let update_cycles: u64 = report.layers.iter().map(|l| l.update_cycles).sum();
    let _ = writeln!(
        s,
        "{:>6} {:>9} {:>8} {:>8} {:>8} {:>7} {:>6} {:>7} {:>10}",
        "total",
        t.macs,
        mac_cycles,
        update_cycles,
        t.latency,
        t.ii,
        t.multipliers,
        t.adders,
        t.memory_bits
    );
    let _ = writeln!(
        s,
        "II {} cycles/frame, latency {} cycles, MAC bound {} cycles, II / MAC bound {:.3}",
        t.ii,
        t.latency,
        t.mac_bound,
        ratio(report)
    );
    match synth {
        Synth::None => {}
        Synth::Flat(r) => {
            let _ = writeln!(s, "Yosys `{}` ({:.1} s):", r.command, r.seconds);
            let _ = writeln!(s, "  {}", cells_line(r));
            let cells: Vec<String> = r.cells.iter().map(|(c, n)| format!("{c} {n}")).collect();
            let _ = writeln!(s, "  cells: {}", cells.join(", "));
            if let Some(f) = ice40::fit(r) {
                let _ = writeln!(s, "  {}", ice40::line(&f, true));
            }
        }
        Synth::Units(e) => s.push_str(&evaluation_table(e)),
    }
    s
}

/// The analytic xc7 estimate (`kaq_codegen::estimate`, docs/synthesis.md §Estimate): per
/// module and in total, and beside a Yosys xilinx synthesis of the same design the measured
/// total over the estimate.
fn estimate_table(e: &DesignEstimate, synth: &Synth) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "analytic estimate, xc7 (no Yosys; docs/synthesis.md §Estimate):"
    );
    let _ = writeln!(
        s,
        "{:>16} {:>8} {:>7} {:>6}",
        "module", "LUTs", "FFs", "DSPs"
    );
    let mut row = |name: &str, c: &Estimate| {
        let _ = writeln!(s, "{:>16} {:>8} {:>7} {:>6}", name, c.lut, c.ff, c.dsp);
    };
    for m in &e.modules {
        row(&m.module, &m.estimate);
    }
    row("total", &e.total);
    let measured = match synth {
        Synth::Flat(r) if r.target == Target::Xilinx => Some((r.logic, r.ff, r.dsp, true)),
        Synth::Units(u) if u.synth.target == Target::Xilinx => Some((
            u.synth.total.logic,
            u.synth.total.ff,
            u.synth.total.dsp,
            u.synth.complete,
        )),
        _ => None,
    };
    if let Some((lut, ff, dsp, complete)) = measured {
        let r = |m: u64, e: u64| {
            if e == 0 {
                "-".to_string()
            } else {
                format!("{:.2}", m as f64 / e as f64)
            }
        };
        let _ = writeln!(
            s,
            "Yosys / estimate: LUTs {}, FFs {}, DSPs {}{}",
            r(lut, e.total.lut),
            r(ff, e.total.ff),
            r(dsp, e.total.dsp),
            if complete { "" } else { " (synthesis PARTIAL)" }
        );
    }
    s
}

/// The cell categories of a synthesis on one line.
fn cells_line(r: &SynthReport) -> String {
    let lcs = r
        .estimated_lcs
        .map(|n| format!(", estimated LCs {n}"))
        .unwrap_or_default();
    let logic = if r.target == Target::Generic {
        "gates"
    } else {
        "LUTs"
    };
    format!(
        "{logic} {}, FFs {}, carry {}, DSPs {}, memories {}, latches {}, other {}, total cells {}{lcs}",
        r.logic, r.ff, r.carry, r.dsp, r.memory, r.latch, r.other, r.total
    )
}

/// The stages, totals, timing and figures of a hierarchical synthesis.
pub(crate) fn evaluation_table(e: &Evaluation) -> String {
    let mut s = String::new();
    let h = &e.synth;
    let cached = h
        .units
        .iter()
        .filter(|u| u.status == UnitStatus::Cached)
        .count();
    let _ = writeln!(
        s,
        "Yosys `{}` per stage in context, {} jobs, {:.1} s wall, {} CPU ({} stages, {} cached):",
        h.command,
        h.jobs,
        h.total.seconds,
        h.total
            .cpu_seconds
            .map_or("-".to_string(), |c| format!("{c:.1} s")),
        h.units.len(),
        cached
    );
    let _ = writeln!(
        s,
        "  {:<8} {:<22} {:>8} {:>7} {:>6} {:>6} {:>8} {:>7}  status",
        "stage", "instances", "logic", "FFs", "DSPs", "mem", "path ns", "CPU s"
    );
    for u in &h.units {
        let c = u.cells.as_ref();
        let num = |f: fn(&SynthReport) -> u64| c.map_or("-".to_string(), |r| f(r).to_string());
        let _ = writeln!(
            s,
            "  {:<8} {:<22} {:>8} {:>7} {:>6} {:>6} {:>8} {:>7}  {}",
            u.unit.name,
            u.unit.instances.join(","),
            num(|r| r.logic),
            num(|r| r.ff),
            num(|r| r.dsp),
            num(|r| r.memory),
            u.timing
                .as_ref()
                .map_or("-".to_string(), |t| format!("{:.2}", t.delay_ns)),
            c.map_or("-".to_string(), |r| {
                format!("{:.0}", r.cpu_seconds.unwrap_or(r.seconds))
            }),
            serde_json::to_value(u.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        );
    }
    if !h.complete {
        let _ = writeln!(
            s,
            "  PARTIAL: not synthesized within the limit: {}; the totals below lack them",
            h.missing.join(", ")
        );
    }
    let _ = writeln!(s, "  total: {}", cells_line(&h.total));
    let cells: Vec<String> = h
        .total
        .cells
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    let _ = writeln!(s, "  cells: {}", cells.join(", "));
    if let Some(f) = ice40::fit(&h.total) {
        let _ = writeln!(s, "  {}", ice40::line(&f, h.complete));
    }
    if let Some((unit, p)) = &h.critical {
        let on: Vec<String> = p.cells.iter().map(|(c, n)| format!("{c} x{n}")).collect();
        let _ = writeln!(
            s,
            "  critical path (sta, cell delays only): {:.2} ns in {unit}: {}",
            p.delay_ns,
            on.join(", ")
        );
    }
    match &e.placement {
        Some(Placement::Placed {
            device,
            fmax_mhz,
            lcs,
            sta_ns,
            seconds,
        }) => {
            let factor = sta_ns
                .map(|ns| {
                    format!(
                        "; sta of the same netlist {ns:.2} ns, routed period / sta = {:.2}",
                        1000.0 / fmax_mhz / ns
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  placed and routed (nextpnr-ice40, {device}, {lcs} LCs, {seconds:.0} s): Fmax {fmax_mhz:.1} MHz{factor}"
            );
        }
        Some(Placement::DoesNotFit {
            device,
            cells,
            capacity,
        }) => {
            let _ = writeln!(
                s,
                "  not placed: needs {cells} logic cells, the {device} has {capacity}"
            );
        }
        None => {}
    }
    s.push_str(&qor_lines(&e.qor));
    s
}

/// The figures of a design, two lines.
pub(crate) fn qor_lines(q: &kaq_codegen::qor::Qor) -> String {
    let mut s = String::new();
    let partial = if q.complete { "" } else { " (PARTIAL)" };
    let clock = match (&q.fmax_mhz, &q.clock) {
        (Some(f), Some(ClockSource::Placed { device })) => {
            format!("Fmax {f:.1} MHz (placed and routed, {device})")
        }
        (
            Some(f),
            Some(ClockSource::Estimated {
                critical_path_ns,
                routing_factor,
            }),
        ) => format!(
            "Fmax {f:.1} MHz (estimated: sta {critical_path_ns:.2} ns x {routing_factor} for routing)"
        ),
        _ if q.target == Target::Generic => {
            "no clock figure (the generic gates have no delays)".to_string()
        }
        _ => "no clock figure (no stage was timed)".to_string(),
    };
    let _ = writeln!(
        s,
        "QoR {}{partial}: {} {}, {} FFs, {} DSPs, {} BRAMs, {} LUT-RAMs; {clock}",
        q.target,
        q.lut,
        if q.target == Target::Generic {
            "gates"
        } else {
            "LUTs"
        },
        q.ff,
        q.dsp,
        q.bram,
        q.lutram
    );
    if let (Some(tp), Some(lat)) = (q.throughput_mbps, q.latency_us) {
        let per = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        let ii = match q.vectors_per_ii {
            1 => format!("{} cycles", q.ii),
            t => format!("{} cycles per block of {t} vectors", q.ii),
        };
        let _ = writeln!(
            s,
            "  throughput {tp:.2} Mb/s ({} bits/vector, II {ii}), latency {lat:.2} us, \
             {} Mb/s per kLUT, {} Mb/s per DSP",
            q.bits_per_vector,
            per(q.mbps_per_klut),
            per(q.mbps_per_dsp)
        );
    }
    s
}

/// The `--json` document.
fn to_json(ir: &Ir, path: &std::path::Path, lanes: usize, report: &Report, synth: &Synth) -> Value {
    let layers: Vec<Value> = report
        .layers
        .iter()
        .map(|l| {
            json!({
                "layer": l.layer,
                "macs": l.macs,
                "mac_cycles": l.mac_cycles,
                "update_cycles": l.update_cycles,
                "latency": l.latency,
                "ii": l.ii,
                "multipliers": l.multipliers,
                "adders": l.adders,
                "memory_bits": l.memory_bits,
            })
        })
        .collect();
    let t = &report.total;
    json!({
        "format": "kaq-report",
        "tool": "kaq",
        "version": env!("CARGO_PKG_VERSION"),
        "ir": path.display().to_string(),
        "name": ir.name,
        "arch": ir.arch.to_string(),
        "nt": ir.nt,
        "nr": ir.nr,
        "modulation": ir.modulation.to_string(),
        "m": ir.m,
        "n": ir.n,
        "lanes": lanes,
        "layers": layers,
        "total": {
            "macs": t.macs,
            "mac_cycles": report.layers.iter().map(|l| l.mac_cycles).sum::<u64>(),
            "update_cycles": report.layers.iter().map(|l| l.update_cycles).sum::<u64>(),
            "latency": t.latency,
            "ii": t.ii,
            "mac_bound": t.mac_bound,
            "ii_over_mac_bound": ratio(report),
            "multipliers": t.multipliers,
            "adders": t.adders,
            "memory_bits": t.memory_bits,
        },
        "synth": match synth {
            Synth::None => Value::Null,
            Synth::Flat(r) => json!(r),
            Synth::Units(e) => json!(e.synth),
        },
        "placement": match synth {
            Synth::Units(e) => json!(e.placement),
            _ => Value::Null,
        },
        "qor": match synth {
            Synth::Units(e) => json!(e.qor),
            _ => Value::Null,
        },
        // Whether any iCE40 part holds the design (ice40 only).
        "ice40_fit": match synth {
            Synth::Flat(r) => json!(ice40::fit(r)),
            Synth::Units(e) => json!(ice40::fit(&e.synth.total)),
            Synth::None => Value::Null,
        },
    })
}

/// The synthesis of `kaq flow`'s `synth` stage: stage by stage for `target` within `limit`,
/// cached under `cache`. The JSON value holds the total cells (the fields of a
/// [`SynthReport`]), `"complete"`, `"missing"`, `"critical"`, `"qor"`, `"units"` and a
/// `"summary"` line for the flow's summary; the table of [`evaluation_table`] is printed.
pub(crate) fn flow_synth(
    generated: &kaq_codegen::Generated,
    target: Target,
    limit: std::time::Duration,
    cache: &std::path::Path,
) -> anyhow::Result<Value> {
    let dir = scratch()?;
    let mut synth = HierOptions::new(target);
    synth.limit = Some(limit);
    synth.cache = Some(cache.to_path_buf());
    let options = EvalOptions {
        synth,
        place: false,
    };
    let e = evaluate(generated, dir.path(), &options, &unit_progress)
        .with_context(|| format!("{target} synthesis failed"))?;
    let table = evaluation_table(&e);
    print!("{table}");
    let mut v = json!(e.synth.total);
    v["complete"] = json!(e.synth.complete);
    v["missing"] = json!(e.synth.missing);
    v["critical"] = json!(e.synth.critical);
    v["units"] = json!(e.synth.units);
    v["qor"] = json!(e.qor);
    let mut lines = qor_lines(&e.qor);
    if let Some(f) = ice40::fit(&e.synth.total) {
        lines.push_str(&ice40::line(&f, e.synth.complete));
        v["ice40_fit"] = json!(f);
    }
    v["summary"] = json!(lines.split_whitespace().collect::<Vec<_>>().join(" "));
    Ok(v)
}

/// The hierarchical-synthesis options of `--synth`: `--jobs`, `--synth-limit` and the result
/// cache (`--synth-cache`, off with `--no-synth-cache`).
pub(super) fn hier_options(target: Target, args: &ReportArgs) -> HierOptions {
    let mut synth = HierOptions::new(target);
    if let Some(j) = args.jobs {
        synth.jobs = j;
    }
    synth.limit = args
        .synth_limit
        .map(|s| std::time::Duration::from_secs(s as u64));
    synth.cache = if args.no_synth_cache {
        None
    } else {
        args.synth_cache.clone().or_else(default_synth_cache)
    };
    synth
}
