//! The IR v2 (cg) RTL as a [`Detector`] for `kaq ber --rtl`.

use kaq_codegen::gram::verilog::T_WIDTH;
use kaq_model::detect::Detector;
use kaq_model::{FrameBatch, ModelError};

use super::gram::{GramBlock, GramRtl, GramStalls};

/// The RTL of an IR v2 design as a [`Detector`]: each `detect` call quantizes the frames with
/// the golden model's front end, cuts them into channel blocks exactly as
/// [`kaq_ir::gram::GramInterpreter::detect_received`] does (a new block where σ² or any bit of
/// H̃ changes, and at most 2^16 − 1 vectors per block beat), streams the blocks through a fresh
/// model instance on the calling thread without stalls and returns the levels the RTL put on
/// `out_level`. The outputs are also compared with the golden model as in `kaq cosim`; a
/// mismatch fails the call, naming the first one. A design built with its tap port
/// ([`GramRtl::has_taps`]) has every stage's taps checked too, and a tap mismatch or anomaly
/// fails the call likewise.
#[derive(Debug)]
pub struct GramRtlDetector {
    rtl: GramRtl,
    seed: u64,
}

impl GramRtlDetector {
    /// A detector running `rtl`; `seed` seeds the model's random initial state.
    pub fn new(rtl: GramRtl, seed: u64) -> Self {
        Self { rtl, seed }
    }

    /// The built design.
    pub fn rtl(&self) -> &GramRtl {
        &self.rtl
    }

    /// The frames of `batch` as channel blocks of codes.
    fn blocks(&self, batch: &FrameBatch) -> Vec<GramBlock> {
        let golden = self.rtl.golden();
        let ir = golden.ir();
        let (m, n) = (batch.m, batch.n);
        let max_t = (1usize << T_WIDTH) - 1;
        let received = batch.received();
        let mut blocks: Vec<GramBlock> = Vec::new();
        for f in 0..batch.frames {
            let full = blocks.last().is_some_and(|b| b.ys.len() / m == max_t);
            if received.starts_block(f) || full {
                blocks.push(GramBlock {
                    h: batch.h[f * m * n..(f + 1) * m * n]
                        .iter()
                        .map(|&v| golden.quantize_h(v as f32))
                        .collect(),
                    ys: Vec::new(),
                    bin: ir.bin_of(batch.noise_var[f] as f32),
                });
            }
            let block = blocks.last_mut().expect("a block was started");
            block.ys.extend(
                batch.y[f * m..(f + 1) * m]
                    .iter()
                    .map(|&v| golden.quantize_y(v as f32)),
            );
        }
        blocks
    }
}

impl Detector for GramRtlDetector {
    /// The IR's name with `-rtl`, e.g. `cg-k8-l4-ptq-8b-rtl`.
    fn name(&self) -> String {
        format!("{}-rtl", self.rtl.golden().ir().name)
    }

    fn detect(&self, frames: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError> {
        frames.check_decisions(decisions)?;
        kaq_model::detect::check_batch(frames)?;
        let ir = self.rtl.golden().ir();
        if (frames.m, frames.n, frames.link.modulation) != (ir.m, ir.n, ir.modulation) {
            return Err(ModelError::DetectFailed {
                detector: self.name(),
                frame: 0,
                reason: format!(
                    "frames are {}×{} {}, the design needs {}×{} {}",
                    frames.m, frames.n, frames.link.modulation, ir.m, ir.n, ir.modulation
                ),
            });
        }
        if frames.frames == 0 {
            return Ok(());
        }
        let fail = |reason: String| ModelError::DetectFailed {
            detector: self.name(),
            frame: 0,
            reason,
        };
        let stalls = GramStalls {
            block: 0.0,
            vector: 0.0,
            output: 0.0,
            seed: self.seed,
        };
        let report = self
            .rtl
            .run(&self.blocks(frames), stalls)
            .map_err(|e| fail(e.to_string()))?;
        if let Some(first) = report.mismatches.first() {
            return Err(fail(format!(
                "{} of {} vectors differ from the golden model; first: {first}",
                report.mismatches.len(),
                report.vectors
            )));
        }
        if report.tap_mismatch_count > 0 {
            let first = report
                .tap_mismatches
                .first()
                .map(ToString::to_string)
                .or_else(|| report.tap_anomalies.first().cloned())
                .unwrap_or_default();
            return Err(fail(format!(
                "{} tap values differ from the golden model; first: {first}",
                report.tap_mismatch_count
            )));
        }
        if report.levels.len() != decisions.len() {
            return Err(fail(format!(
                "{} output levels for {} decisions",
                report.levels.len(),
                decisions.len()
            )));
        }
        for (d, &l) in decisions.iter_mut().zip(&report.levels) {
            *d = l as i32;
        }
        Ok(())
    }
}
