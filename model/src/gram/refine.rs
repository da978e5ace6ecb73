//! Task-driven refinement of the formats of a cg IR (docs/quantization-results.md): the
//! calibration picks each format's power-of-two step from the tensor's own rounding error;
//! the refinement then moves single steps where the integer golden model makes fewer bit
//! errors.
//!
//! Coordinate descent over the per-layer base fracs of e (with ρ), p and d (each layer's
//! per-SNR-bin shifts move with its base) and the one frac of r (every layer; the denoiser
//! table is rebuilt at the new r format from the same representatives). Each move is ±1 frac;
//! a move is kept when the golden model on the refinement frames gets more real dimensions
//! right than wrong against the current document by more than `z` standard deviations of the
//! paired (McNemar) test, and makes fewer bit errors. Rounds repeat until no move is kept.
//! Deterministic; a document whose moved format fails validation is skipped.

use kaq_ir::fixed::QFormat;
use kaq_ir::gram::{GramInterpreter, GramIr};

use super::GramNet;
use super::denoise::GaussQam;
use super::quantized::{CgTensor, denoiser_table};
use crate::ber::ErrorTally;
use crate::detect::Detector;
use crate::error::ModelError;
use crate::link::{FrameBatch, LinkConfig, stream_rng};

/// Options of [`refine_formats`] and of its frames ([`RefineOptions::frames`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RefineOptions {
    /// Most rounds over every coordinate.
    pub rounds: usize,
    /// A move is kept when (c − b) > z·√(b + c), with c the dimensions it corrects and b
    /// those it breaks.
    pub z: f64,
    /// Refinement frames per SNR point.
    pub frames: usize,
    /// The SNR points in dB (where the students' BER crosses 10⁻²: the 16×16 16-QAM cg nets
    /// cross it at 21.5–24 dB).
    pub snr_db: Vec<f64>,
    /// Seed of the refinement frames (one stream per point).
    pub seed: u64,
}

impl Default for RefineOptions {
    /// 4 rounds, z = 2, 3 000 frames at each of 20, 22, 24 dB.
    fn default() -> Self {
        Self {
            rounds: 4,
            z: 2.0,
            frames: 3000,
            snr_db: vec![20.0, 22.0, 24.0],
            seed: 0x7265_6669_6e65,
        }
    }
}

impl RefineOptions {
    /// The refinement frames of `link`: `frames` at each SNR point, point i from stream i of
    /// `seed`.
    pub fn frames(&self, link: &LinkConfig) -> Result<Vec<FrameBatch>, ModelError> {
        let mut generator = link.generator()?;
        Ok(self
            .snr_db
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let mut rng = stream_rng(self.seed, i as u64);
                generator.generate(&vec![s; self.frames], &mut rng)
            })
            .collect())
    }
}

/// One move [`refine_formats`] kept.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatMove {
    /// The layer; `None` for r (one format in every layer).
    pub layer: Option<usize>,
    /// The class: e, p, d or r.
    pub class: CgTensor,
    /// The change of the frac (+1: half the step).
    pub shift: i32,
    /// Bit errors on the refinement frames after the move.
    pub bit_errors: u64,
}

/// `ir` with the frac of `class` moved by `shift`: in layer `layer` for e, p, d, in every
/// layer for r (`layer` ignored) with the denoiser table rebuilt at the new format. Errors
/// name the class, or the field validation rejects.
pub fn shifted(
    net: &GramNet,
    ir: &GramIr,
    layer: usize,
    class: CgTensor,
    shift: i32,
) -> Result<GramIr, ModelError> {
    let mv = |f: QFormat| {
        QFormat::signed(f.width(), f.frac() + shift)
            .map_err(|e| kaq_ir::IrError::Lower(format!("{}: {e}", class.as_str())))
    };
    let mut out = ir.clone();
    match class {
        CgTensor::E | CgTensor::P | CgTensor::D => {
            let f = &mut out
                .layers
                .get_mut(layer)
                .ok_or_else(|| kaq_ir::IrError::Lower(format!("layer {layer} does not exist")))?
                .formats;
            let slot = match class {
                CgTensor::E => &mut f.e,
                CgTensor::P => &mut f.p,
                _ => &mut f.d,
            };
            *slot = mv(*slot)?;
        }
        CgTensor::R => {
            let r = mv(ir.layers[0].formats.r)?;
            for l in &mut out.layers {
                l.formats.r = r;
            }
            let q = GaussQam::<f32>::new(net.link().modulation);
            out.denoiser.table = denoiser_table(&q, r, ir.state, &ir.denoiser.representatives);
        }
        _ => {
            return Err(kaq_ir::IrError::Lower(format!(
                "{}: only e, p, d and r are refined",
                class.as_str()
            ))
            .into());
        }
    }
    out.validate()?;
    Ok(out)
}

/// The golden model's bit errors on `frames` and, per real dimension in frame order, whether
/// its decision is wrong.
pub fn golden_errors(ir: &GramIr, frames: &[FrameBatch]) -> Result<(u64, Vec<bool>), ModelError> {
    let g = GramInterpreter::new(ir.clone())?;
    let (mut errors, mut wrong) = (0u64, Vec::new());
    for b in frames {
        let mut dec = vec![0i32; b.frames * b.n];
        g.detect(b, &mut dec)?;
        errors += ErrorTally::count(b, &dec, "golden")?.bit_errors;
        wrong.extend(dec.iter().zip(&b.x).map(|(d, x)| d != x));
    }
    Ok((errors, wrong))
}

/// The refined document of `ir` (a cg lowering of `net`) and the moves kept, in order (module
/// docs). `frames` are the refinement frames (keep them apart from the frames a result is
/// measured on).
pub fn refine_formats(
    net: &GramNet,
    ir: &GramIr,
    frames: &[FrameBatch],
    opts: &RefineOptions,
) -> Result<(GramIr, Vec<FormatMove>), ModelError> {
    let mut cur = ir.clone();
    let (mut errors, mut wrong) = golden_errors(&cur, frames)?;
    let mut coords = vec![(0, CgTensor::R)];
    for k in 0..ir.layers.len() {
        coords.extend([CgTensor::P, CgTensor::D, CgTensor::E].map(|c| (k, c)));
    }
    let mut moves = Vec::new();
    for _ in 0..opts.rounds {
        let mut kept = false;
        for &(k, class) in &coords {
            let mut best: Option<(i64, GramIr, u64, Vec<bool>, i32)> = None;
            for shift in [1, -1] {
                let Ok(cand) = shifted(net, &cur, k, class, shift) else {
                    continue;
                };
                let (e, w) = golden_errors(&cand, frames)?;
                let (mut broke, mut fixed) = (0i64, 0i64);
                for (&a, &b) in wrong.iter().zip(&w) {
                    broke += i64::from(!a && b);
                    fixed += i64::from(a && !b);
                }
                let gain = fixed - broke;
                let sig = gain as f64 > opts.z * ((fixed + broke) as f64).sqrt();
                if sig && e < errors && best.as_ref().is_none_or(|b| gain > b.0) {
                    best = Some((gain, cand, e, w, shift));
                }
            }
            if let Some((_, cand, e, w, shift)) = best {
                cur = cand;
                errors = e;
                wrong = w;
                kept = true;
                moves.push(FormatMove {
                    layer: (class != CgTensor::R).then_some(k),
                    class,
                    shift,
                    bit_errors: e,
                });
            }
        }
        if !kept {
            break;
        }
    }
    Ok((cur, moves))
}
