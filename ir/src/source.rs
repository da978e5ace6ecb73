//! Frames for test vectors: the interface through which a link simulator hands quantized
//! frames to code generation without either depending on the other.

use crate::document::Ir;

/// The input codes of one frame as the receiver's front end forms them: H̃ (row-major), ỹ and
/// the SNR bin.
pub type FrameCodes = (Vec<i64>, Vec<i64>, usize);

/// Where the testbench's random frames come from: a link simulator that draws channels and
/// noise and quantizes them with the IR's front end (kaq-model's `LinkFrames`), or a fixed
/// list of codes.
pub trait FrameSource {
    /// `count` frames for `ir` from the seeded stream `seed`, at SNRs across 0–30 dB.
    fn frames(&self, ir: &Ir, count: usize, seed: u64) -> Result<Vec<FrameCodes>, String>;
}

/// Frames given as codes, cycled to the count asked for (at least one frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedFrames(pub Vec<FrameCodes>);

impl FrameSource for FixedFrames {
    fn frames(&self, _ir: &Ir, count: usize, _seed: u64) -> Result<Vec<FrameCodes>, String> {
        if self.0.is_empty() && count > 0 {
            return Err("no frames given".into());
        }
        Ok(self.0.iter().cycle().take(count).cloned().collect())
    }
}
