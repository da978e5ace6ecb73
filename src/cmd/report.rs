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
//! synthesized by Yosys (`kaq_codegen::synth`); the table gains the measured cells: logic
//! (LUTs or gates), flip-flops, carry cells, DSP blocks, memories, latches (always 0 in a
//! correct design) and the count of every cell type. Yosys must be on PATH.
//!
//! `--json PATH` writes all of it as one JSON object (`"format": "kaq-report"`), atomically;
//! an existing file is replaced only with `--force`.
//!
//! Bad flag values end with status 2 naming the flag; an unreadable or invalid IR, a missing
//! or failing Yosys and an unwritable output end with status 1.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use kaq_codegen::report::{Report, analyse};
use kaq_codegen::synth::{SynthReport, Target, synthesize};
use kaq_codegen::{CodegenError, Options};
use kaq_model::ir::Ir;
use kaq_model::train::model_file::{Overwrite, write_atomic};
use serde_json::{Value, json};

use super::args::{parse_from_str, parse_positive, usage_error};
use super::codegen::{generate_or_exit, lanes_for, load_ir};
use crate::plot;

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

    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,

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
    let ir = load_ir(&args.ir)?;
    let lanes = lanes_for(&ir, args.lanes);
    let design = match kaq_codegen::lower(&ir, lanes, TOP) {
        Ok(d) => d,
        Err(CodegenError::Lanes { lanes, n }) => {
            usage_error("--lanes", format!("{lanes} does not divide N = {n}"))
        }
        Err(e) => return Err(e).context("code generation failed"),
    };
    let report = analyse(&design);
    let synth = match args.synth {
        None => None,
        Some(target) => Some(run_synth(&ir, lanes, target)?),
    };
    print!("{}", table(&ir, lanes, &report, synth.as_ref()));

    if let Some(path) = &args.json {
        let mut text =
            serde_json::to_string_pretty(&to_json(&ir, &args.ir, lanes, &report, synth.as_ref()))
                .context("cannot encode the report")?;
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

/// Generates the design into a temporary directory and synthesizes it.
fn run_synth(ir: &Ir, lanes: usize, target: Target) -> anyhow::Result<SynthReport> {
    let options = Options {
        lanes,
        top: TOP.to_string(),
        testbench_frames: 1,
        seed: 1,
    };
    let generated = generate_or_exit(ir, &options)?;
    let dir = tempfile::Builder::new()
        .prefix("kaq-synth-")
        .tempdir()
        .context("cannot create a temporary directory for synthesis")?;
    synthesize(&generated, dir.path(), target)
        .with_context(|| format!("--synth {target}: synthesis failed"))
}

/// The ratio of the II to its MAC bound.
fn ratio(report: &Report) -> f64 {
    report.total.ii as f64 / report.total.mac_bound.max(1) as f64
}

/// The table printed on stdout.
fn table(ir: &Ir, lanes: usize, report: &Report, synth: Option<&SynthReport>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} ({}): {}x{} {}, H~ {}x{}, {} layers, {} lanes",
        ir.name,
        ir.arch,
        ir.nt,
        ir.nr,
        ir.modulation,
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
    if let Some(r) = synth {
        let _ = writeln!(s, "Yosys `{}` ({:.1} s):", r.command, r.seconds);
        let lcs = r
            .estimated_lcs
            .map(|n| format!(", estimated LCs {n}"))
            .unwrap_or_default();
        let logic = if r.target == Target::Generic {
            "gates"
        } else {
            "LUTs"
        };
        let _ = writeln!(
            s,
            "  {logic} {}, FFs {}, carry {}, DSPs {}, memories {}, latches {}, other {}, \
             total cells {}{lcs}",
            r.logic, r.ff, r.carry, r.dsp, r.memory, r.latch, r.other, r.total
        );
        let cells: Vec<String> = r.cells.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let _ = writeln!(s, "  cells: {}", cells.join(", "));
    }
    s
}

/// The `--json` document.
fn to_json(
    ir: &Ir,
    path: &std::path::Path,
    lanes: usize,
    report: &Report,
    synth: Option<&SynthReport>,
) -> Value {
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
        "synth": synth,
    })
}
