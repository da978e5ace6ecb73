//! Testbench vectors from the integer golden model.

use kaq_model::LinkConfig;
use kaq_model::ir::{Interpreter, Ir};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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

/// `count` frames: random channels and noise at SNRs across 0–30 dB, then (one in eight, at
/// least one) frames at the input formats' limits — every code at the minimum, at the
/// maximum, alternating — cycling through the SNR bins.
pub fn stimulus(ir: &Ir, count: usize, seed: u64) -> Result<Stimulus, CodegenError> {
    let interp = Interpreter::new(ir.clone()).map_err(CodegenError::Ir)?;
    let link = LinkConfig::new(ir.nt, ir.nr, ir.modulation)
        .map_err(|e| CodegenError::Unsupported(e.to_string()))?;
    let extreme = (count / 8).max(1).min(count);
    let random = count - extreme;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let snr: Vec<f64> = (0..random).map(|_| rng.random_range(0.0..30.0)).collect();
    let batch = link
        .generator()
        .map_err(|e| CodegenError::Unsupported(e.to_string()))?
        .generate(&snr, &mut rng);
    let mut inputs = Vec::with_capacity(count);
    for f in 0..random {
        let codes = interp
            .frame_codes(&batch, f)
            .map_err(|e| CodegenError::Unsupported(e.to_string()))?;
        inputs.push(codes);
    }
    let (hf, yf) = (ir.inputs.h, ir.inputs.y);
    for e in 0..extreme {
        let pick = |f: kaq_model::fixed::QFormat, i: usize| match e % 3 {
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
