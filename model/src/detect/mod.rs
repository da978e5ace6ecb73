//! Detectors: the one [`Detector`] trait every detector of kaq implements — the classical
//! references here, and later the unfolded nets, the integer golden model and the RTL.
//!
//! A detector turns a [`FrameBatch`] into hard decisions: one alphabet level (an odd integer)
//! per real dimension of every frame, `frames × n` values in frame order.

use crate::error::ModelError;
use crate::link::FrameBatch;

/// A MIMO detector producing hard decisions for a batch of frames.
pub trait Detector: Send + Sync {
    /// A short name for tables, plots and JSON (for example `mmse` or `kbest:32`).
    fn name(&self) -> String;

    /// Writes the hard decision (alphabet level) of every real dimension of every frame into
    /// `decisions`, which holds `batch.frames × batch.n` values.
    fn detect(&self, batch: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError>;
}
