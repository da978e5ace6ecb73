//! `kaq report` of an IR v2 (cg) document: the folded Gram engine (`kaq_codegen::gram`).
//!
//! The cycle model of docs/rtl.md "IR v2" (`P_blk` per channel block, `P_vec` per vector, a
//! block of T = `--block` vectors (default 14) in `1 + M·N + P_blk + T·(P_vec + 2)` cycles and the
//! effective II, that over T), and with `--synth TARGET` the design synthesized as one unit by
//! the v1 machinery (cache, `--synth-limit`, `sta`), its estimated Fmax (the same routing
//! factor), throughput in Mb/s at T, latency and Mb/s per kLUT and per DSP; the energy table of
//! both models at T (`kaq_ir::gram::gram_energy`, docs/energy.md). `--lanes` is the
//! engine's MAC lanes (1 to 32, default 1); `--flat`, `--place`, `--sweep-lanes`,
//! `--clock-mhz` and `--update-pipeline` do not apply and end with status 2.

use std::fmt::Write as _;

use anyhow::Context;
use kaq_codegen::gram::{Program, program::analytic_cycles_lanes, stream_cycles};
use kaq_codegen::qor::Evaluation;
use kaq_ir::gram::GramIr;
use kaq_model::train::model_file::{Overwrite, write_atomic};
use serde_json::{Value, json};

use super::super::args::usage_error;
use super::{ReportArgs, evaluation_table, hier_options, scratch, unit_progress};

/// Vectors per channel block of the v2 cycle figures by default (14 OFDM symbols).
pub(crate) const DEFAULT_BLOCK: usize = 14;

/// The cycle model at block length `t`.
#[derive(Debug, serde::Serialize)]
struct Cycles {
    /// Cycles of the block program.
    p_blk: u64,
    /// Cycles of the vector program.
    p_vec: u64,
    /// Vectors per channel block.
    block: u64,
    /// Cycles of a stall-free block of `block` vectors.
    block_cycles: u64,
    /// `block_cycles / block`.
    ii_effective: f64,
    /// MACs of the block and of the vector program.
    macs_block: usize,
    macs_vector: usize,
    /// MAC lanes.
    lanes: usize,
}

/// Runs `kaq report` on a v2 IR (the `--json` checks are done by the caller).
pub(crate) fn run(args: &ReportArgs, ir: &GramIr) -> anyhow::Result<()> {
    let lanes = crate::cmd::codegen::gram_lanes("--lanes", args.lanes)?;
    for (set, flag) in [
        (args.flat, "--flat"),
        (args.place, "--place"),
        (args.sweep_lanes.is_some(), "--sweep-lanes"),
        (
            args.pipeline.given().is_some(),
            args.pipeline.given().unwrap_or(""),
        ),
    ] {
        if set {
            return Err(usage_error(
                flag,
                "does not apply to an IR v2 (cg) design (one folded engine, one unit)",
            ));
        }
    }
    let t = args.block.unwrap_or(DEFAULT_BLOCK);
    if t > 65_535 {
        return Err(usage_error(
            "--block",
            format!("{t}: an IR v2 block holds at most 65535 vectors (16-bit blk_t)"),
        ));
    }
    ir.validate()
        .with_context(|| format!("--ir {}: cannot use this IR", args.ir.display()))?;
    let prog = Program::with_lanes(ir, lanes);
    let (p_blk, p_vec) = analytic_cycles_lanes(ir, lanes);
    let (macs_block, macs_vector) = prog.multiplies();
    let block_cycles = stream_cycles(&prog, t as u64);
    let cycles = Cycles {
        p_blk,
        p_vec,
        block: t as u64,
        block_cycles,
        ii_effective: block_cycles as f64 / t as f64,
        macs_block,
        macs_vector,
        lanes,
    };
    let eval = match args.synth {
        None => None,
        Some(target) => {
            let tmp = scratch()?;
            let dir = args.synth_dir.as_deref().unwrap_or(tmp.path());
            let synth = hier_options(target, args);
            let e = kaq_codegen::gram::evaluate(
                &prog,
                t as u64,
                &dir.join("units"),
                &synth,
                &unit_progress,
            )
            .with_context(|| format!("--synth {target}: synthesis failed"))?;
            Some(e)
        }
    };
    let energy = super::energy::gram_energy_report(ir, t);
    print!("{}", table(ir, &cycles, eval.as_ref()));
    print!("{}", super::energy::energy_table(&energy));
    if let Some(path) = &args.json {
        let mut doc = to_json(ir, args, &cycles, eval.as_ref());
        doc["energy"] = json!(energy);
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

fn table(ir: &GramIr, c: &Cycles, eval: Option<&Evaluation>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} (IR v2 cg): {}, H~ {}x{}, {} layers x {} inner steps, folded engine, {} lane{}",
        ir.name,
        crate::plot::style::link_name(ir.nt, ir.nr, ir.modulation),
        ir.m,
        ir.n,
        ir.layers.len(),
        ir.inner(),
        c.lanes,
        if c.lanes == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        s,
        "cycles: block stage P_blk {} ({} MACs), vector P_vec {} ({} MACs); a block of T = {} \
         vectors {} cycles (1 + M·N + P_blk + T(P_vec + 2)), effective II {:.2} cycles/vector",
        c.p_blk, c.macs_block, c.p_vec, c.macs_vector, c.block, c.block_cycles, c.ii_effective
    );
    let bound = (c.macs_vector as u64).div_ceil(c.lanes as u64);
    let _ = writeln!(
        s,
        "multiply bound per vector ceil(MACs / {}) = {bound} cycles: P_vec is {:.3}x it ({} the 10 % goal)",
        c.lanes,
        c.p_vec as f64 / bound as f64,
        if c.p_vec * 10 <= bound * 11 {
            "within"
        } else {
            "outside"
        }
    );
    if let Some(e) = eval {
        s.push_str(&evaluation_table(e));
    }
    s
}

fn to_json(ir: &GramIr, args: &ReportArgs, c: &Cycles, eval: Option<&Evaluation>) -> Value {
    json!({
        "format": "kaq-report",
        "tool": "kaq",
        "version": env!("CARGO_PKG_VERSION"),
        "ir": args.ir.display().to_string(),
        "ir_version": ir.version,
        "name": ir.name,
        "family": "cg",
        "nt": ir.nt,
        "nr": ir.nr,
        "modulation": ir.modulation.to_string(),
        "m": ir.m,
        "n": ir.n,
        "lanes": c.lanes,
        "cycles": c,
        "synth": eval.map(|e| json!(e.synth)),
        "qor": eval.map(|e| json!(e.qor)),
    })
}
