//! Testbench vectors from the integer golden model.

use kaq_ir::{FrameSource, Interpreter, Ir};

use crate::CodegenError;

/// One frame: its input codes and the golden model's outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameVector {
    /// H̃ codes, row-major.
    pub h: Vec<i64>,
    /// ỹ codes.
    pub y: Vec<i64>,
    /// SNR bin.
    pub bin: usize,
    /// Output codes.
    pub out: Vec<i64>,
    /// Gray bits of every output element's decision.
    pub bits: Vec<u32>,
}

/// The testbench frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stimulus {
    /// Frames in order.
    pub frames: Vec<FrameVector>,
}

/// `count` frames: random ones from `source` (seeded by `seed`), then (one in eight, at
/// least one) frames at the input formats' limits — every code at the minimum, at the
/// maximum, alternating — cycling through the SNR bins.
pub fn stimulus(
    ir: &Ir,
    count: usize,
    seed: u64,
    source: &dyn FrameSource,
) -> Result<Stimulus, CodegenError> {
    let interp = Interpreter::new(ir.clone()).map_err(CodegenError::Ir)?;
    let extreme = (count / 8).max(1).min(count);
    let random = count - extreme;
    let mut inputs = source
        .frames(ir, random, seed)
        .map_err(CodegenError::Unsupported)?;
    if inputs.len() != random {
        return Err(CodegenError::Unsupported(format!(
            "the frame source gave {} frames, {random} asked for",
            inputs.len()
        )));
    }
    let (hf, yf) = (ir.inputs.h, ir.inputs.y);
    for e in 0..extreme {
        let pick = |f: kaq_ir::fixed::QFormat, i: usize| match e % 3 {
            0 => f.min_code(),
            1 => f.max_code(),
            _ if i.is_multiple_of(2) => f.min_code(),
            _ => f.max_code(),
        };
        let h = (0..ir.m * ir.n).map(|i| pick(hf, i)).collect();
        let y = (0..ir.m).map(|i| pick(yf, i + 1)).collect();
        inputs.push((h, y, (e * 37) % ir.bins()));
    }
    let mut frames = Vec::with_capacity(count);
    for (h, y, bin) in inputs {
        let taps = interp
            .run_codes(&h, &y, bin)
            .map_err(|e| CodegenError::Unsupported(e.to_string()))?;
        let bits = taps
            .levels
            .iter()
            .map(|&l| ir.modulation.gray_bits(l))
            .collect();
        frames.push(FrameVector {
            h,
            y,
            bin,
            out: taps.output,
            bits,
        });
    }
    Ok(Stimulus { frames })
}
