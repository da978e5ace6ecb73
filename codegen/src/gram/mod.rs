//! RTL for IR version 2 (`family: "cg"`, docs/ir.md §10; docs/rtl.md "IR v2"): a folded
//! engine with one shared multiplier runs a micro-program ([`program`]) derived from the IR —
//! the per-channel-block stage (G, tr G, 1/tr G, D) once per block, then the front and every
//! layer and inner step per vector — behind a channel-block interface. [`exec`] is its
//! cycle-level Rust twin.

pub mod exec;
pub mod oamp;
pub mod program;
pub mod readme;
pub mod verilog;

#[cfg(test)]
mod oamp_tests;
#[cfg(test)]
mod tests;

use kaq_ir::gram::GramIr;

use crate::hierarchy::{HierOptions, UNIT_TOP, Unit, UnitResult, synthesize_unit_list};
use crate::qor::{Evaluation, figures};
use crate::synth::SynthError;
use crate::{CodegenError, GeneratedFile, check_top_name};

pub use exec::Engine;
pub use program::{Ins, Op, Program, RegMap, Stage, TapWrite, Tensor};

/// The hand-written cells a v2 design includes, in dependency order.
pub const PRIMITIVES: [(&str, &str); 3] = [
    (
        "kaq_round_shift_sat.v",
        include_str!("../../../rtl-templates/primitives/kaq_round_shift_sat.v"),
    ),
    (
        "kaq_divide_seq.v",
        include_str!("../../../rtl-templates/primitives/kaq_divide_seq.v"),
    ),
    (
        "kaq_gram_core.v",
        include_str!("../../../rtl-templates/primitives/kaq_gram_core.v"),
    ),
];

/// Every Verilog source of the design of `prog` with top module `top`: the cells, then the
/// generated top (`<top>.v`).
pub fn sources(prog: &Program, top: &str) -> Vec<(String, String)> {
    sources_taps(prog, top, false)
}

/// [`sources`], with the core's tap port on when `taps` (the co-simulation's build,
/// [`verilog::top_taps`]).
pub fn sources_taps(prog: &Program, top: &str, taps: bool) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = PRIMITIVES
        .iter()
        .map(|(n, t)| ((*n).to_string(), (*t).to_string()))
        .collect();
    out.push((format!("{top}.v"), verilog::top_taps(prog, top, taps)));
    out
}

/// The files of the one-lane design of `ir` with top module `top`: [`generate_lanes`] at 1.
pub fn generate(ir: &GramIr, top: &str) -> Result<Vec<GeneratedFile>, CodegenError> {
    generate_lanes(ir, top, 1)
}

/// Most MAC lanes a v2 design takes.
pub const MAX_LANES: usize = 32;

/// The files of the design of `ir` on `lanes` MAC lanes (1 to [`MAX_LANES`]) with top
/// module `top`: the Verilog sources, `files.f` (compile order) and `README.md` (interface,
/// packing, cycle counts). Deterministic.
pub fn generate_lanes(
    ir: &GramIr,
    top: &str,
    lanes: usize,
) -> Result<Vec<GeneratedFile>, CodegenError> {
    ir.validate().map_err(CodegenError::Ir)?;
    if !(1..=MAX_LANES).contains(&lanes) {
        return Err(CodegenError::Lanes { lanes, n: ir.n });
    }
    check_top_name(top)?;
    if PRIMITIVES
        .iter()
        .any(|(f, _)| f.trim_end_matches(".v") == top)
    {
        return Err(CodegenError::TopName(
            top.to_string(),
            "is the name of a cell of the design".into(),
        ));
    }
    let prog = Program::with_lanes(ir, lanes);
    let mut files: Vec<GeneratedFile> = sources(&prog, top)
        .into_iter()
        .map(|(name, contents)| GeneratedFile { name, contents })
        .collect();
    let list: String = files.iter().map(|f| format!("{}\n", f.name)).collect();
    files.push(GeneratedFile {
        name: "files.f".into(),
        contents: list,
    });
    files.push(GeneratedFile {
        name: "README.md".into(),
        contents: readme::readme(ir, &prog, top),
    });
    Ok(files)
}

/// Cycles of a channel block of `t` vectors without stalls, from the first cycle its block
/// beat is valid (the design idle) to the last output taken: `1 + M·N + P_blk + t·(P_vec + 2)`
/// (the idle cycle, H̃ written from the port, the block stage, the vectors; docs/rtl.md, "IR
/// v2").
pub fn stream_cycles(prog: &Program, t: u64) -> u64 {
    1 + (prog.m * prog.n) as u64 + prog.block_cycles() + t * (prog.vector_cycles() + 2)
}

/// The design of `prog` as the one unit of a hierarchical synthesis: its top holds the ROMs
/// and the slicer (not only wiring, unlike a v1 top), so the whole design, with top module
/// [`UNIT_TOP`], is synthesized in one piece.
pub fn synth_unit(prog: &Program) -> Unit {
    Unit {
        name: "gram".to_string(),
        cell: "kaq_gram_core".to_string(),
        instances: vec!["u_core".to_string()],
        verilog: verilog::top(prog, UNIT_TOP),
    }
}

/// Synthesizes the design of `prog` ([`synth_unit`], the v1 unit machinery: cache, time
/// limit, `sta`) and its figures with channel blocks of `t` vectors: throughput
/// `bits × t × f / stream_cycles(t)`, latency `P_vec` cycles (a vector's acceptance to its
/// output). `scratch` receives the tools' working directory.
pub fn evaluate(
    prog: &Program,
    t: u64,
    scratch: &std::path::Path,
    options: &HierOptions,
    progress: &(dyn Fn(&UnitResult) + Sync),
) -> Result<Evaluation, SynthError> {
    let unit = synth_unit(prog);
    let synth = synthesize_unit_list(&[unit], &PRIMITIVES, scratch, options, progress)?;
    let bits = prog.n as u64 * u64::from(prog.levels.trailing_zeros());
    let cycles = (stream_cycles(prog, t), t, prog.vector_cycles());
    let qor = figures(&synth, None, bits, cycles);
    Ok(Evaluation {
        synth,
        placement: None,
        qor,
    })
}
