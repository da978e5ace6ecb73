//! The RTL as a [`Detector`] for `kaq ber --rtl`.

use super::*;

/// The RTL as a [`Detector`]: each `detect` call builds a fresh model instance on the calling
/// thread (a Verilated model must stay on the thread that created it), streams the whole batch
/// through the pipeline without stalls and maps every output's Gray bits to its level.
#[derive(Debug, Clone)]
pub struct RtlDetector {
    rtl: Rtl,
    seed: u64,
}

impl RtlDetector {
    /// A detector running `rtl`; `seed` seeds the model's random initial state.
    pub fn new(rtl: Rtl, seed: u64) -> Self {
        Self { rtl, seed }
    }

    /// The RTL.
    pub fn rtl(&self) -> &Rtl {
        &self.rtl
    }
}

impl Detector for RtlDetector {
    /// The IR's name with `-rtl`, e.g. `pgd-soft-k5-kaq-8b-rtl`.
    fn name(&self) -> String {
        format!("{}-rtl", self.rtl.interp.ir().name)
    }

    fn detect(&self, frames: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError> {
        frames.check_decisions(decisions)?;
        kaq_model::detect::check_batch(frames)?;
        let n = self.rtl.design.io.n;
        if n == 0 || frames.frames == 0 {
            return Ok(());
        }
        let interp = &self.rtl.interp;
        let modulation = interp.ir().modulation;
        let mut codes = Vec::with_capacity(frames.frames);
        for f in 0..frames.frames {
            codes.push(FrameCodes::from(
                interp
                    .frame_codes(&frames.received(), f)
                    .map_err(ModelError::from)?,
            ));
        }
        let fail = |frame: usize, e: CosimError| ModelError::DetectFailed {
            detector: self.name(),
            frame,
            reason: e.to_string(),
        };
        let mut driver = self
            .rtl
            .driver(Stalls::none(self.seed), false)
            .map_err(|e| fail(0, e))?;
        let mut out = decisions.chunks_exact_mut(n);
        let mut done = 0usize;
        driver
            .run(codes, |_, frame| {
                let dec = out.next().ok_or(CosimError::Frame {
                    frame: frame.index,
                    reason: "more outputs than frames".into(),
                })?;
                for (d, &b) in dec.iter_mut().zip(&frame.out_bits) {
                    *d = modulation.level_from_bits(b);
                }
                done += 1;
                Ok(())
            })
            .map_err(|e| fail(done, e))?;
        Ok(())
    }
}
