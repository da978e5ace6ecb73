//! `kaq codegen`: Verilog from the IR (`kaq_codegen`, docs/rtl.md).
//!
//! `kaq codegen --ir ir.json --out rtl/ [--lanes P] [--top NAME] [--testbench-frames N]
//! [--seed S] [--force]` reads an IR (`kaq lower`), generates the design with
//! [`kaq_codegen::generate`] and writes its files into the output directory with
//! [`kaq_codegen::write_design`]: the primitives, one module per layer, the top, its
//! parameter header, a self-checking testbench with its stimulus, a file list and a README.
//!
//! `--lanes` (MAC lanes per layer stage) must divide N, the columns of H̃; by default it is 8
//! when 8 divides N, else the largest divisor of N below 8. `--top` names the top module
//! (default `kaq_top`), `--testbench-frames` the frames of the testbench (1 to 100000,
//! default 64) and `--seed` their seed (default 1). Equal inputs give equal bytes.
//!
//! A directory that holds files kaq did not write there is refused, naming them, unless
//! `--force` (kaq's own `.kaq-*` files never count; stale ones are removed). The directory is
//! locked while it is written and replaced in one step: after an interruption it holds the old
//! complete design or the new one, and a rerun succeeds (docs/outputs.md). Stdout gets what was
//! written (directory, file count, top, lanes), the analytic initiation interval and latency
//! (`kaq_codegen::report`) and the generation time.
//!
//! Bad `--lanes`, `--top` or `--testbench-frames` values end with status 2 naming the flag;
//! an unreadable or invalid IR, a design the generator cannot express and an unwritable or
//! foreign output directory end with status 1.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use kaq_codegen::{
    CodegenError, Generated, Options, check_top_name, generate_pipelined, resolve_lanes,
    write_design,
};
use kaq_ir::Ir;
use kaq_model::lower::LinkFrames;

use super::args::{parse_positive, usage_error};

/// Arguments of `kaq codegen`.
#[derive(Debug, Args)]
pub struct CodegenArgs {
    /// The IR file (`kaq lower`).
    #[arg(long, value_name = "PATH")]
    ir: PathBuf,

    /// The directory to write the design into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// MAC lanes per layer stage; must divide N [default: 8 if it divides N, else N's
    /// largest divisor below 8].
    #[arg(long, value_parser = parse_positive)]
    lanes: Option<usize>,

    /// Name of the top module (a Verilog identifier).
    #[arg(long, default_value = "kaq_top")]
    top: String,

    /// Frames of the generated testbench, 1 to 100000.
    #[arg(long, value_name = "N", value_parser = parse_positive, default_value_t = 64)]
    testbench_frames: usize,

    /// Seed of the testbench frames and stalls.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    #[command(flatten)]
    pipeline: PipelineArgs,

    /// Write into a directory that holds files kaq did not write, replacing same-named ones.
    #[arg(long)]
    force: bool,
}

/// The update pipeline of the generated stages: for a target clock, or a depth.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PipelineArgs {
    /// Target clock in MHz: the update lanes get the fewest pipeline registers (0 to 2) whose
    /// estimated clock (xc7 cell delays × 1.5 routing) reaches it; each adds a cycle of
    /// latency per stage.
    #[arg(long, value_name = "F", conflicts_with = "update_pipeline")]
    clock_mhz: Option<f64>,

    /// Pipeline registers per update lane, 0 to 2 (2: PGD-Net only; ADMM-Net takes at most 1).
    #[arg(long, value_name = "D")]
    update_pipeline: Option<u64>,
}

impl PipelineArgs {
    /// The flag given, if any (for designs they do not apply to).
    pub(crate) fn given(&self) -> Option<&'static str> {
        match (self.clock_mhz, self.update_pipeline) {
            (Some(_), _) => Some("--clock-mhz"),
            (_, Some(_)) => Some("--update-pipeline"),
            _ => None,
        }
    }

    /// The depth to generate with, and the plan when a clock was asked for.
    pub(crate) fn depth(
        &self,
        ir: &Ir,
        lanes: usize,
    ) -> anyhow::Result<(u64, Option<kaq_codegen::estimate::ClockPlan>)> {
        let max = kaq_codegen::design::max_update_pipeline(ir.arch);
        if let Some(d) = self.update_pipeline {
            if d > max {
                return Err(usage_error(
                    "--update-pipeline",
                    format!("{d} is above {max}, the deepest for this architecture"),
                ));
            }
            return Ok((d, None));
        }
        let Some(f) = self.clock_mhz else {
            return Ok((0, None));
        };
        if !(f.is_finite() && f > 0.0 && f <= 2000.0) {
            return Err(usage_error(
                "--clock-mhz",
                format!("must be a clock in MHz in (0, 2000], got {f}"),
            ));
        }
        let design = kaq_codegen::lower(ir, lanes, "kaq_top").map_err(lanes_error)?;
        let plan = kaq_codegen::estimate::pipeline_for_clock(&design, f, max);
        Ok((plan.upd_pipe, Some(plan)))
    }
}

/// A line on the clock plan (stdout of `kaq codegen` and `kaq report`).
pub(crate) fn plan_line(plan: &kaq_codegen::estimate::ClockPlan) -> String {
    format!(
        "  clock target {:.1} MHz: {} pipeline register(s) per update lane, estimated {:.1} MHz \
         (critical path {:.2} ns x 1.5){}",
        plan.target_mhz,
        plan.upd_pipe,
        plan.estimated_mhz,
        plan.critical_ns,
        if plan.met {
            ""
        } else {
            "; target NOT met (the MAC, g and e paths are not pipelined)"
        }
    )
}

/// Loads the IR named by `--ir`, naming the file in the error.
pub(crate) fn load_ir(path: &Path) -> anyhow::Result<Ir> {
    Ir::load(path).with_context(|| format!("--ir {}: cannot use this IR", path.display()))
}

/// The lanes asked for (or the default); a count that breaks the lanes rule is a usage error.
pub(crate) fn lanes_for(ir: &Ir, lanes: Option<usize>) -> anyhow::Result<usize> {
    resolve_lanes(ir.n, lanes).map_err(lanes_error)
}

/// The lanes rule broken, as a usage error of `--lanes`.
fn lanes_error(e: CodegenError) -> anyhow::Error {
    match e {
        CodegenError::Lanes { lanes, n } => usage_error(
            "--lanes",
            format!("{lanes} does not divide N = {n} (the columns of H~ of this IR)"),
        ),
        e => e.into(),
    }
}

/// Generates the design, turning option errors into usage errors (status 2).
pub(crate) fn generate_checked(
    ir: &Ir,
    options: &Options,
    upd_pipe: u64,
) -> anyhow::Result<Generated> {
    match generate_pipelined(ir, options, &LinkFrames, upd_pipe) {
        Ok(g) => Ok(g),
        Err(e @ CodegenError::Lanes { .. }) => Err(lanes_error(e)),
        Err(e @ CodegenError::TopName(..)) => Err(usage_error("--top", e)),
        Err(e @ CodegenError::TestbenchFrames(_)) => Err(usage_error("--testbench-frames", e)),
        Err(e) => Err(e).context("code generation failed"),
    }
}

/// Runs `kaq codegen`.
pub fn run(args: CodegenArgs) -> anyhow::Result<()> {
    if let Err(e) = check_top_name(&args.top) {
        return Err(usage_error("--top", e));
    }
    if args.testbench_frames > 100_000 {
        return Err(usage_error(
            "--testbench-frames",
            format!(
                "must be between 1 and 100000, got {}",
                args.testbench_frames
            ),
        ));
    }
    let ir = match kaq_ir::gram::AnyIr::load(&args.ir)
        .with_context(|| format!("--ir {}: cannot use this IR", args.ir.display()))?
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
    let lanes = lanes_for(&ir, args.lanes)?;
    let options = Options {
        lanes,
        top: args.top.clone(),
        testbench_frames: args.testbench_frames,
        seed: args.seed,
    };
    let (upd_pipe, plan) = args.pipeline.depth(&ir, lanes)?;
    let start = Instant::now();
    let generated = generate_checked(&ir, &options, upd_pipe)?;
    let gen_time = start.elapsed();
    let written = write_design(&generated, &args.out, args.force)
        .with_context(|| format!("--out {}", args.out.display()))?;
    let total_time = start.elapsed();

    let report = kaq_codegen::report::analyse(&generated.design);
    let t = &report.total;
    println!(
        "wrote {} files to {} (top {}, {} lanes, {} layers, testbench {} frames)",
        written.len(),
        args.out.display(),
        generated.design.top,
        lanes,
        generated.design.layers.len(),
        args.testbench_frames
    );
    println!(
        "  II {} cycles/frame (MAC bound {}), latency {} cycles",
        t.ii, t.mac_bound, t.latency
    );
    if let Some(plan) = &plan {
        println!("{}", plan_line(plan));
    }
    println!(
        "  codegen {:.1} ms, with writing {:.1} ms",
        gen_time.as_secs_f64() * 1e3,
        total_time.as_secs_f64() * 1e3
    );
    Ok(())
}

/// The MAC lanes of an IR v2 (cg) design (default 1); outside 1 to
/// `kaq_codegen::gram::MAX_LANES` is a usage error of `flag`.
pub(crate) fn gram_lanes(flag: &str, lanes: Option<usize>) -> anyhow::Result<usize> {
    let lanes = lanes.unwrap_or(1);
    let max = kaq_codegen::gram::MAX_LANES;
    if !(1..=max).contains(&lanes) {
        return Err(usage_error(
            flag,
            format!("{lanes}: an IR v2 (cg) design takes 1 to {max} MAC lanes"),
        ));
    }
    Ok(lanes)
}

/// `kaq codegen` of an IR v2 (cg) document: the folded Gram engine (`kaq_codegen::gram`) on
/// `--lanes` MAC lanes (default 1, any count from 1 to 32); no testbench (the design is
/// checked by `kaq_sim::cosim::gram`).
fn run_gram(args: &CodegenArgs, ir: &kaq_ir::gram::GramIr) -> anyhow::Result<()> {
    let lanes = gram_lanes("--lanes", args.lanes)?;
    if let Some(flag) = args.pipeline.given() {
        return Err(usage_error(
            flag,
            "does not apply to an IR v2 (cg) design (the folded engine has no update lanes to \
             pipeline)",
        ));
    }
    let start = Instant::now();
    let files = match kaq_codegen::gram::generate_lanes(ir, &args.top, lanes) {
        Ok(f) => f,
        Err(e @ CodegenError::TopName(..)) => return Err(usage_error("--top", e)),
        Err(e) => return Err(e).context("code generation failed"),
    };
    let written = kaq_codegen::write_files(&files, &args.out, args.force)
        .with_context(|| format!("--out {}", args.out.display()))?;
    let (block, vector) = kaq_codegen::gram::program::analytic_cycles_lanes(ir, lanes);
    println!(
        "wrote {} files to {} (top {}, IR v2 {}, folded engine, {lanes} lane{}, {} layers)",
        written.len(),
        args.out.display(),
        args.top,
        ir.name,
        if lanes == 1 { "" } else { "s" },
        ir.layers.len()
    );
    println!(
        "  block stage {block} cycles, {vector} cycles per vector ({} without stalls)",
        vector + 2
    );
    println!(
        "  codegen with writing {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

/// `kaq codegen` of an IR v4 (oamp) document: the folded Gram engine running the oamp
/// programs (`kaq_codegen::gram::oamp`) on `--lanes` MAC lanes (default 1, 1 to 32); no
/// testbench (the design is checked by `kaq_sim::cosim::gram_oamp`).
fn run_oamp(args: &CodegenArgs, ir: &kaq_ir::gram::oamp::OampIr) -> anyhow::Result<()> {
    let lanes = gram_lanes("--lanes", args.lanes)?;
    if let Some(flag) = args.pipeline.given() {
        return Err(usage_error(
            flag,
            "does not apply to an IR v4 (oamp) design (the folded engine has no update lanes \
             to pipeline)",
        ));
    }
    let start = Instant::now();
    let files = match kaq_codegen::gram::oamp::generate_lanes(ir, &args.top, lanes) {
        Ok(f) => f,
        Err(e @ CodegenError::TopName(..)) => return Err(usage_error("--top", e)),
        Err(e) => return Err(e).context("code generation failed"),
    };
    let written = kaq_codegen::write_files(&files, &args.out, args.force)
        .with_context(|| format!("--out {}", args.out.display()))?;
    let (block, vector) = kaq_codegen::gram::oamp::analytic_cycles(ir, lanes);
    println!(
        "wrote {} files to {} (top {}, IR v4 {}, folded engine, {lanes} lane{}, {} layers, \
         bank of {})",
        written.len(),
        args.out.display(),
        args.top,
        ir.name,
        if lanes == 1 { "" } else { "s" },
        ir.layers.len(),
        ir.bank_len()
    );
    println!(
        "  block stage {block} cycles, {vector} cycles per vector ({} without stalls)",
        vector + 2
    );
    println!(
        "  codegen with writing {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
