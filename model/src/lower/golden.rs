//! The integer golden model of `kaq-ir` as a [`Detector`] over the link's frames, and the
//! link as the source of code generation's testbench frames.

use kaq_ir::{FrameCodes, FrameSource, Interpreter, Ir, IrError, Received};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::detect::Detector;
use crate::error::ModelError;
use crate::link::{FrameBatch, LinkConfig};

impl FrameBatch {
    /// The frames as the receiver's front end gets them.
    pub fn received(&self) -> Received<'_> {
        Received {
            modulation: self.link.modulation,
            frames: self.frames,
            m: self.m,
            n: self.n,
            h: &self.h,
            y: &self.y,
            noise_var: &self.noise_var,
        }
    }
}

impl From<IrError> for ModelError {
    /// A shape error keeps its message; any other IR error is reported as a shape error of
    /// the frames given to the interpreter, with the IR error's message.
    fn from(e: IrError) -> Self {
        match e {
            IrError::Shape(s) => Self::Shape(s),
            other => Self::Shape(other.to_string()),
        }
    }
}

impl Detector for Interpreter {
    /// The source model's name with `-int`, e.g. `pgd-soft-k5-kaq-8b-int`.
    fn name(&self) -> String {
        format!("{}-int", self.ir().name)
    }

    /// Quantizes every frame with the front end, runs the integer model and slices.
    fn detect(&self, frames: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError> {
        frames.check_decisions(decisions)?;
        Ok(self.detect_received(&frames.received(), decisions)?)
    }
}

/// The testbench frames of code generation drawn from the link simulator: SNRs uniform over
/// 0–30 dB and channels and noise from one ChaCha8 stream seeded by `seed`, quantized with the
/// IR's front end.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkFrames;

impl FrameSource for LinkFrames {
    fn frames(&self, ir: &Ir, count: usize, seed: u64) -> Result<Vec<FrameCodes>, String> {
        let interp = Interpreter::new(ir.clone()).map_err(|e| e.to_string())?;
        let link = LinkConfig::new(ir.nt, ir.nr, ir.modulation).map_err(|e| e.to_string())?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let snr: Vec<f64> = (0..count).map(|_| rng.random_range(0.0..30.0)).collect();
        let batch = link
            .generator()
            .map_err(|e| e.to_string())?
            .generate(&snr, &mut rng);
        let received = batch.received();
        (0..count)
            .map(|f| interp.frame_codes(&received, f).map_err(|e| e.to_string()))
            .collect()
    }
}
