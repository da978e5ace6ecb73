//! kaq-codegen: Verilog from the kaq IR (docs/rtl.md).
//!
//! [`generate`] lowers an [`Ir`] into typed template values ([`design::lower`]: every width,
//! name, constant and table), renders the askama templates of `rtl-templates/` (wiring and
//! constants only) and adds the hand-written primitives of `rtl-templates/primitives/` (the
//! arithmetic and the layer engine), a `<top>_params.vh`, a self-checking testbench whose
//! stimulus and expected outputs come from the integer golden model, a file list and a README.
//! Generation is deterministic (same IR and options ⇒ same bytes) and returns errors, never
//! panics. [`write_design`] writes the files into a directory, refusing one that holds files
//! kaq did not write unless told to overwrite; the directory is replaced in one step, so an
//! interrupted write leaves the old complete output or the new one (docs/outputs.md).

pub mod cosim;
pub mod design;
pub mod estimate;
pub mod gram;
pub mod hierarchy;
mod keywords;
pub mod literal;
pub mod qor;
pub mod report;
mod stimulus;
pub mod synth;
mod templates;
pub mod timing;
mod write;

use kaq_ir::{Ir, IrError};
use thiserror::Error;

pub use cosim::{CosimWrapper, WrapperPort, cosim_wrapper};
pub use design::{Design, lower, lower_pipelined};
pub use kaq_ir::{FixedFrames, FrameCodes, FrameSource};
pub use stimulus::{Stimulus, stimulus};
#[doc(hidden)]
pub use write::write_design_interrupted;
pub use write::{write_design, write_files};

/// The file in a generated directory that lists what kaq wrote there.
pub const MANIFEST: &str = ".kaq-codegen";

/// The hand-written primitives every design includes, in dependency order.
pub const PRIMITIVES: [(&str, &str); 11] = [
    (
        "kaq_round_shift_sat.v",
        include_str!("../../rtl-templates/primitives/kaq_round_shift_sat.v"),
    ),
    (
        "kaq_requant.v",
        include_str!("../../rtl-templates/primitives/kaq_requant.v"),
    ),
    (
        "kaq_requant_var.v",
        include_str!("../../rtl-templates/primitives/kaq_requant_var.v"),
    ),
    (
        "kaq_affine_requant.v",
        include_str!("../../rtl-templates/primitives/kaq_affine_requant.v"),
    ),
    (
        "kaq_mac_lane.v",
        include_str!("../../rtl-templates/primitives/kaq_mac_lane.v"),
    ),
    (
        "kaq_lincomb.v",
        include_str!("../../rtl-templates/primitives/kaq_lincomb.v"),
    ),
    (
        "kaq_prox_pwl.v",
        include_str!("../../rtl-templates/primitives/kaq_prox_pwl.v"),
    ),
    (
        "kaq_lut.v",
        include_str!("../../rtl-templates/primitives/kaq_lut.v"),
    ),
    (
        "kaq_slicer.v",
        include_str!("../../rtl-templates/primitives/kaq_slicer.v"),
    ),
    (
        "kaq_layer_core.v",
        include_str!("../../rtl-templates/primitives/kaq_layer_core.v"),
    ),
    (
        "kaq_out_stage.v",
        include_str!("../../rtl-templates/primitives/kaq_out_stage.v"),
    ),
];

/// Errors of code generation; each names the problem.
#[derive(Debug, Error)]
pub enum CodegenError {
    /// The IR is invalid.
    #[error("invalid IR: {0}")]
    Ir(#[source] IrError),
    /// A lane count that does not divide N.
    #[error("--lanes {lanes}: must be at least 1 and divide N = {n} (the row length)")]
    Lanes {
        /// The lanes asked for.
        lanes: usize,
        /// Columns of H̃.
        n: usize,
    },
    /// A top name that is not a legal Verilog identifier or clashes with a module of the
    /// design; the second field says which.
    #[error("--top {0:?}: {1}")]
    TopName(String, String),
    /// Something the generator cannot express.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A testbench size outside its range.
    #[error("--testbench-frames {0}: must be between 1 and 100000")]
    TestbenchFrames(usize),
    /// The output directory holds files kaq did not write.
    #[error(
        "{dir}: holds files kaq did not write ({files}); choose an empty directory or pass --force"
    )]
    ForeignFiles {
        /// The directory.
        dir: String,
        /// Some of the files.
        files: String,
    },
    /// The output path exists and is not a directory.
    #[error("{0}: exists and is not a directory")]
    NotADirectory(String),
    /// A template failed to render.
    #[error("template {name}: {message}")]
    Template {
        /// The template.
        name: &'static str,
        /// askama's message.
        message: String,
    },
    /// Writing a generated file.
    #[error(transparent)]
    Write(#[from] kaq_files::FilesError),
    /// Reading or writing a file.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The OS error (in the message, so not also the `source()`).
        error: std::io::Error,
    },
}

/// The default lane count for a row length `n`: 8 if it divides `n`, else the largest
/// divisor of `n` not above 8 (what `kaq codegen`, `kaq cosim` and `kaq ber --rtl` use when
/// no lanes are given).
pub fn default_lanes(n: usize) -> usize {
    (1..=8.min(n.max(1)))
        .rev()
        .find(|p| n.is_multiple_of(*p))
        .unwrap_or(1)
}

/// The lanes rule: `lanes` MAC lanes per stage must be at least 1 and divide `n`, the columns
/// of H̃; none given means [`default_lanes`].
pub fn resolve_lanes(n: usize, lanes: Option<usize>) -> Result<usize, CodegenError> {
    match lanes {
        None => Ok(default_lanes(n)),
        Some(lanes) if lanes >= 1 && n.is_multiple_of(lanes) => Ok(lanes),
        Some(lanes) => Err(CodegenError::Lanes { lanes, n }),
    }
}

/// Options of [`generate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// MAC lanes per layer stage (divides N).
    pub lanes: usize,
    /// Top module name (a Verilog identifier; `kaq_` names are reserved for primitives).
    pub top: String,
    /// Frames in the generated testbench.
    pub testbench_frames: usize,
    /// Seed of the testbench frames and stalls.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            lanes: 8,
            top: "kaq_top".to_string(),
            testbench_frames: 64,
            seed: 1,
        }
    }
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// File name (no directories).
    pub name: String,
    /// Contents.
    pub contents: String,
}

/// A generated design: the files in a fixed order.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The IR the design was generated from.
    pub ir: Ir,
    /// The lowered design.
    pub design: Design,
    /// Every file.
    pub files: Vec<GeneratedFile>,
}

impl Generated {
    /// The Verilog sources (primitives first, the top last), in compile order.
    pub fn sources(&self) -> Vec<&GeneratedFile> {
        self.files
            .iter()
            .filter(|f| f.name.ends_with(".v") && !f.name.ends_with("_tb.v"))
            .collect()
    }

    /// A file by name.
    pub fn file(&self, name: &str) -> Option<&GeneratedFile> {
        self.files.iter().find(|f| f.name == name)
    }
}

/// Checks that `name` is a legal, non-reserved Verilog identifier.
pub fn check_top_name(name: &str) -> Result<(), CodegenError> {
    let mut chars = name.chars();
    let legal = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    let primitive = PRIMITIVES
        .iter()
        .map(|(f, _)| f.trim_end_matches(".v"))
        .find(|p| *p == name);
    let reason = if !legal {
        "not a legal Verilog identifier (letters, digits, _ and $, starting with a letter or _)"
            .to_string()
    } else if name.len() > 64 {
        format!("{} characters, more than the 64 allowed", name.len())
    } else if keywords::KEYWORDS.contains(&name) {
        "a reserved Verilog keyword".to_string()
    } else if let Some(p) = primitive {
        format!("clashes with the Verilog primitive module {p} that every design includes")
    } else if name.starts_with("kaq_layer_core") {
        "clashes with the generated layer modules (kaq_layer_core*)".to_string()
    } else {
        return Ok(());
    };
    Err(CodegenError::TopName(name.to_string(), reason))
}

/// Generates the design of `ir` (see the crate docs).
pub fn generate(
    ir: &Ir,
    options: &Options,
    source: &dyn FrameSource,
) -> Result<Generated, CodegenError> {
    generate_pipelined(ir, options, source, 0)
}

/// [`generate`] with `upd_pipe` pipeline registers in every stage's update lanes
/// ([`design::lower_pipelined`]; [`estimate::pipeline_for_clock`] picks it for a clock).
pub fn generate_pipelined(
    ir: &Ir,
    options: &Options,
    source: &dyn FrameSource,
    upd_pipe: u64,
) -> Result<Generated, CodegenError> {
    check_top_name(&options.top)?;
    if !(1..=100_000).contains(&options.testbench_frames) {
        return Err(CodegenError::TestbenchFrames(options.testbench_frames));
    }
    let design = design::lower_pipelined(ir, options.lanes, &options.top, upd_pipe)?;
    let stim = stimulus::stimulus(ir, options.testbench_frames, options.seed, source)?;
    let files = templates::render(ir, &design, &stim, options)?;
    Ok(Generated {
        ir: ir.clone(),
        design,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::default_lanes;

    #[test]
    fn lanes_default_to_the_largest_divisor_up_to_8() {
        assert_eq!(default_lanes(32), 8);
        assert_eq!(default_lanes(8), 8);
        assert_eq!(default_lanes(12), 6);
        assert_eq!(default_lanes(4), 4);
        assert_eq!(default_lanes(9), 3);
        assert_eq!(default_lanes(7), 7);
        assert_eq!(default_lanes(11), 1);
        assert_eq!(default_lanes(1), 1);
    }
}
