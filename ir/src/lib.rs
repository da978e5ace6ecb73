//! kaq-ir: the narrow waist of kaq. Everything downstream of quantization (code generation,
//! co-simulation, the golden model) needs this crate alone; it depends on nothing of training.
//!
//! * [`fixed`]: the normative fixed-point arithmetic of docs/fixed-point.md.
//! * [`modulation`]: the Gray-mapped alphabets (docs/ir.md §Slicer).
//! * [`vocab`]: the vocabulary shared with training: architectures, SNR bins and limits.
//! * [`Ir`] and its stages: the versioned JSON document of docs/ir.md, loaded with unknown
//!   fields refused and validated field by field ([`Ir::validate`]), with the interval
//!   analysis that proves every accumulator width ([`fill_bounds`]).
//! * [`Interpreter`]: the integer golden model, batched over [`Received`] frames, with
//!   per-stage [`Taps`] for co-simulation.
//!
//! * [`gram`]: IR version 2, the Gram-domain cg net with its per-channel-block stage, and its
//!   golden model [`gram::GramInterpreter`] (docs/ir.md §10); version 4, OAMP-Net2 with an
//!   LMMSE bank, in [`gram::oamp`] (docs/ir.md §11).
//!
//! An [`Ir`] states everything the hardware needs and nothing else: dimensions, modulation,
//! the SNR binning the receiver applies, the input formats, the integer parameters and
//! per-SNR-bin requantization tables of every layer, every accumulator's declared width with
//! the bound proved by interval analysis, the prox (exact integer piecewise-linear for `soft`
//! and `box`, a 2^b-entry table otherwise) and the slicer thresholds.
//!
//! Loading ([`Ir::from_json`]) parses with unknown fields refused, then [`Ir::validate`]
//! checks every field against the others and names the offending one by its JSON path, e.g.
//! `layers[2].out.mult[17]`. A validated IR cannot make the interpreter panic or overflow:
//! every bound is recomputed from the IR's own values and must be at most the declared one.

pub mod energy;
pub mod fixed;
pub mod gram;
pub mod modulation;
pub mod vocab;

mod document;
mod interp;
mod source;
mod validate;

pub use document::*;
pub use interp::{Interpreter, LayerTap, Received, Taps};
pub use modulation::Modulation;
pub use source::{FixedFrames, FrameCodes, FrameSource};
pub use validate::{MAX_TABLE_BITS, code_bound, fill_bounds};
pub use vocab::{Arch, SnrBins, VocabError};
