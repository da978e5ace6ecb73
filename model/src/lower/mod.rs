//! Lowering a fake-quant net ([`QuantNet`]) to the IR (docs/ir.md §Lowering).
//!
//! Every tensor of the fake-quant forward pass becomes an integer code; every real scale
//! between two of them becomes an integer multiplier and a shift. H, y, e, g, x⁽⁰⁾ and every
//! parameter have power-of-two steps, so the e and g stages, the matched filter, the g term of
//! the update and the prox parameters are exact. The activation steps Δ_k (per SNR bin for KAQ)
//! are arbitrary reals; they enter only through per-bin multipliers rounded to
//! [`LowerOptions::mult_bits`] bits, and the update is formed exactly at a fine per-layer
//! scale 2^−F, so the integer model departs from the fake-quant one only where a value lies
//! within that rounding of a quantizer's decision boundary. The `qam` prox becomes a 2^b-entry
//! table over a b-bit code of its input (the only deliberate approximation; docs/ir.md).

mod golden;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_inputs;

use crate::Detector;
use crate::fixed::{OverflowMode, QFormat, Requant, RoundingMode};
use crate::quant::quantizer::pow2_frac;
use crate::quant::{QuantNet, StepPolicy};
use crate::unfolded::{Arch, Init, Prox};
pub use golden::LinkFrames;
use kaq_ir::{
    Acc, AdmmStage, BinRequant, EStage, GStage, IR_FORMAT, IR_VERSION, InitStage, Inputs, Ir,
    IrError, Layer, ProxStage, Slicer, Update, fill_bounds,
};

/// Choices of the lowering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowerOptions {
    /// Signed width of the per-bin requantization multipliers and update coefficients
    /// (8..=32, default 24: the precision of an f32 significand).
    pub mult_bits: u32,
}

impl Default for LowerOptions {
    fn default() -> Self {
        Self {
            mult_bits: kaq_ir::DEFAULT_MULT_BITS,
        }
    }
}

/// Width of a qam-prox table entry.
const TABLE_WIDTH: u32 = 16;

const PLACEHOLDER: Acc = Acc { width: 1, bound: 0 };

fn lower_err(msg: impl Into<String>) -> IrError {
    IrError::Lower(msg.into())
}

/// Round half up to an integer (multipliers and coefficients).
fn round_int(v: f64) -> i64 {
    (v + 0.5).floor() as i64
}

/// A per-bin table of the real values `vals` (each to be multiplied by 2^shift) at the
/// smallest shift ≥ `min_shift` that puts the largest magnitude in [2^(bits−2), 2^(bits−1)),
/// rounded half up. All-zero values give zeros at `min_shift`. Errors when `min_shift`
/// already pushes a value past `bits` bits.
fn scaled_table(
    vals: &[f64],
    min_shift: i32,
    bits: u32,
    what: &str,
) -> Result<(Vec<i64>, i32), IrError> {
    let max = vals.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    if !max.is_finite() {
        return Err(lower_err(format!("{what}: a non-finite scale")));
    }
    let shift = if max == 0.0 {
        min_shift
    } else {
        let want = (f64::from(bits) - 2.0 - max.log2()).ceil() as i32;
        // Guard the logarithm's rounding.
        let mut s = want.max(min_shift);
        while s > min_shift && max * 2f64.powi(s) >= 2f64.powi(bits as i32 - 1) {
            s -= 1;
        }
        s
    };
    coefficients(vals, shift, bits, what).map(|t| (t, shift))
}

/// `round(v·2^shift)` of every value, each a signed code of at most 32 bits (`bits` sets the
/// precision the shift was chosen for; an exactness requirement may push a value beyond it).
fn coefficients(vals: &[f64], shift: i32, _bits: u32, what: &str) -> Result<Vec<i64>, IrError> {
    let bits = crate::fixed::MAX_MULT_WIDTH;
    let limit = 2f64.powi(bits as i32 - 1);
    vals.iter()
        .map(|&v| {
            let c = v * 2f64.powi(shift);
            if !c.is_finite() || c.abs() >= limit - 0.5 {
                return Err(lower_err(format!(
                    "{what}: the scale {v:e} at 2^{shift} does not fit a {bits}-bit multiplier"
                )));
            }
            Ok(round_int(c))
        })
        .collect()
}

fn frac_of(step: f32, what: &str) -> Result<i32, IrError> {
    pow2_frac(step).ok_or_else(|| {
        lower_err(format!(
            "{what} has step {step}, not a power of two (set its step policy to power-of-two)"
        ))
    })
}

fn qformat(width: u32, frac: i32, what: &str) -> Result<QFormat, IrError> {
    QFormat::signed(width, frac).map_err(|e| lower_err(format!("{what}: {e}")))
}

/// A power-of-two requantization `x·2^−s` (a left shift when `s < 0`).
fn pow2_requant(s: i32, coef: i64, width: u32, what: &str) -> Result<Requant, IrError> {
    let (mult, shift) = if s >= 0 {
        (coef, s as u32)
    } else {
        let m = i128::from(coef) << (-s).min(64);
        let m = i64::try_from(m).map_err(|_| lower_err(format!("{what}: left shift too wide")))?;
        (m, 0)
    };
    Requant::new(
        mult,
        shift,
        RoundingMode::HalfUp,
        OverflowMode::SaturateSymmetric,
        width,
    )
    .map_err(|e| lower_err(format!("{what}: {e}")))
}

fn shift_u32(s: i32, what: &str) -> Result<u32, IrError> {
    u32::try_from(s)
        .ok()
        .filter(|&s| s <= crate::fixed::MAX_SHIFT)
        .ok_or_else(|| lower_err(format!("{what}: shift {s} outside 0..=63")))
}

/// The per-bin requantization of values at scale 2^−`in_frac` to state codes of step
/// `steps[bin]`.
fn state_requant(
    steps: &[f32],
    in_frac: i32,
    width: u32,
    bits: u32,
    what: &str,
) -> Result<BinRequant, IrError> {
    let vals: Vec<f64> = steps
        .iter()
        .map(|&d| 2f64.powi(-in_frac) / f64::from(d))
        .collect();
    // Each bin at its own shift: full precision in every bin.
    let mut mult = Vec::with_capacity(vals.len());
    let mut shift = Vec::with_capacity(vals.len());
    for &v in &vals {
        let (m, s) = scaled_table(&[v], 0, bits, what)?;
        mult.push(m[0]);
        shift.push(shift_u32(s, what)?);
    }
    Ok(BinRequant {
        mult,
        shift,
        rounding: RoundingMode::HalfUp,
        overflow: OverflowMode::SaturateSymmetric,
        width,
        input: PLACEHOLDER,
    })
}

/// Lowers a fake-quant net to a validated IR.
///
/// Refuses (with [`IrError::Lower`]) what the IR cannot express exactly: non-power-of-two
/// steps of H, y, e, g or the parameters, and scales whose multipliers do not fit.
pub fn lower(q: &QuantNet, options: LowerOptions) -> Result<Ir, IrError> {
    let bits = options.mult_bits;
    if !(8..=32).contains(&bits) {
        return Err(lower_err(format!("mult_bits = {bits} is outside 8..=32")));
    }
    q.validate().map_err(|e| lower_err(e.to_string()))?;
    let cfg = q.config();
    for (name, f) in [
        ("h", cfg.h),
        ("y", cfg.y),
        ("e", cfg.e),
        ("g", cfg.g),
        ("params", cfg.params),
    ] {
        if f.step != StepPolicy::PowerOfTwo {
            return Err(lower_err(format!(
                "the {name} format uses max-abs steps; the IR needs power-of-two steps there"
            )));
        }
    }
    if cfg.h_layer_bits.is_some() {
        return Err(lower_err(
            "per-layer H widths (h_layer_bits) are not yet in the IR; quantize with one H width",
        ));
    }
    let fixed = q.fixed_steps();
    let net = q.net_config().clone();
    let link = q.link().clone();
    let plan = q.plan();
    let codes = q.param_codes().map_err(lower_err)?;
    let steps = q.step_table();
    let nbins = cfg.snr_bins.count;
    let b = cfg.activation_bits;
    let fh = frac_of(fixed.h, "h")?;
    let fy = frac_of(fixed.y, "y")?;

    // x⁽⁰⁾ and its scale σ₀ (0 for the zero init: its coefficients vanish).
    let (init, sigma0) = match (net.init, plan.mf) {
        (Init::MatchedFilter, Some((slot, _))) => {
            let fx0 = frac_of(fixed.x0, "x0")?;
            let (ca, fa) = codes[slot];
            let requant = pow2_requant(fa + fh + fy - fx0, ca, b, "init")?;
            (
                InitStage::MatchedFilter {
                    acc: PLACEHOLDER,
                    requant,
                },
                f64::from(fixed.x0),
            )
        }
        _ => (InitStage::Zero, 0.0),
    };
    let sigma = |layer: isize, bin: usize| -> f64 {
        if layer < 0 {
            sigma0
        } else {
            f64::from(steps[layer as usize][bin])
        }
    };

    let mut layers = Vec::with_capacity(net.layers);
    for (k, (lp, slots)) in plan.layers.iter().zip(&plan.slots).enumerate() {
        let p = format!("layer {k}");
        let fe = frac_of(fixed.e[k], &format!("{p} e"))?;
        let fg = frac_of(fixed.g[k], &format!("{p} g"))?;
        let prev = k as isize - 1; // index of x⁽ᵏ⁻¹⁾ in `steps` (−1: x⁽⁰⁾)
        let sp: Vec<f64> = (0..nbins).map(|bin| sigma(prev, bin)).collect();

        // e = Q_e(mult·(H x) − y ≪ y_shift) ≫ shift.
        let e_vals: Vec<f64> = sp.iter().map(|s| s * 2f64.powi(fe - fh)).collect();
        let (e_mult, e_shift) = scaled_table(&e_vals, (fy - fe).max(0), bits, &format!("{p} e"))?;
        let e = EStage {
            acc: PLACEHOLDER,
            mult: e_mult,
            y_shift: shift_u32(e_shift + fe - fy, &format!("{p} e.y_shift"))?,
            sum: PLACEHOLDER,
            shift: shift_u32(e_shift, &format!("{p} e.shift"))?,
            rounding: RoundingMode::HalfUp,
            overflow: OverflowMode::SaturateSymmetric,
            format: qformat(cfg.e.bits, fe, &p)?,
        };
        let g = GStage {
            acc: PLACEHOLDER,
            requant: pow2_requant(fh + fe - fg, 1, cfg.g.bits, &format!("{p} g"))?,
            format: qformat(cfg.g.bits, fg, &p)?,
        };

        // The update at the fine scale 2^−F.
        let (c_eta, f_eta) = codes[slots.eta];
        // The first layer's momentum term β(x⁽⁰⁾ − x⁽⁻¹⁾) vanishes (x⁽⁻¹⁾ = x⁽⁰⁾).
        let beta = if k > 0 && slots.beta.is_some() {
            f64::from(lp.beta)
        } else {
            0.0
        };
        let rho = if slots.rho.is_some() {
            f64::from(lp.rho)
        } else {
            0.0
        };
        let eta = f64::from(lp.eta);
        let mut min_f = (f_eta + fg).max(0);
        let lambda_code = match net.prox {
            Prox::Soft => {
                let slot = slots.prox.ok_or_else(|| lower_err("soft prox without λ"))?;
                let (c, f) = codes[slot];
                min_f = min_f.max(f);
                Some((c, f))
            }
            _ => None,
        };
        // Every coefficient of the update (and of ADMM's v) shares F: the smallest scale at
        // which g and λ are exact and the largest coefficient has `bits − 1` significant bits.
        let dk: Vec<f64> = (0..nbins).map(|bin| sigma(k as isize, bin)).collect();
        let x1_vals: Vec<f64> = sp.iter().map(|s| (1.0 + beta) * s).collect();
        let x2_vals: Vec<f64> = if k > 0 && slots.beta.is_some() {
            (0..nbins).map(|bin| -beta * sigma(prev - 1, bin)).collect()
        } else {
            Vec::new()
        };
        let c_vals: Vec<f64> = if net.arch == Arch::Admm {
            sp.iter().map(|s| -eta * rho * s).collect()
        } else {
            Vec::new()
        };
        let mut all: Vec<f64> = x1_vals
            .iter()
            .chain(&x2_vals)
            .chain(&c_vals)
            .copied()
            .collect();
        if net.arch == Arch::Admm {
            all.extend(dk.iter().chain(&sp));
        }
        let what = format!("{p} update");
        let (_, f) = scaled_table(&all, min_f, bits, &what)?;
        let x1 = coefficients(&x1_vals, f, bits, &what)?;
        let x2 = coefficients(&x2_vals, f, bits, &what)?;
        let c = coefficients(&c_vals, f, bits, &what)?;
        let g_coef = 1i64
            .checked_shl((f - f_eta - fg) as u32)
            .and_then(|m| m.checked_mul(-c_eta))
            .filter(|&v| crate::fixed::fits(v, crate::fixed::MAX_MULT_WIDTH))
            .ok_or_else(|| lower_err(format!("{what}: the g coefficient exceeds 32 bits")))?;
        let update = Update {
            frac: f,
            x1,
            x2,
            g_coef,
            c,
            acc: PLACEHOLDER,
        };

        // The prox, and the requantization of its output to the state codes.
        let state_steps = &steps[k];
        let (prox, out_frac) = match net.prox {
            Prox::Soft => {
                let (c, fl) = lambda_code.expect("set above");
                (
                    ProxStage::Soft {
                        lambda: c
                            .checked_shl((f - fl) as u32)
                            .filter(|&v| crate::fixed::fits(v, 62))
                            .ok_or_else(|| lower_err(format!("{p} λ exceeds 62 bits")))?,
                    },
                    f,
                )
            }
            Prox::Box => {
                let limit = i64::from(link.modulation.max_level())
                    .checked_shl(f as u32)
                    .filter(|&v| crate::fixed::fits(v, 62))
                    .ok_or_else(|| lower_err(format!("{p} box limit exceeds 62 bits")))?;
                (ProxStage::Box { limit }, f)
            }
            Prox::Qam => {
                let max_level = link.modulation.max_level();
                let f_in = frac_of(
                    q.prox_input_step()
                        .ok_or_else(|| lower_err("a qam prox without an input step"))?,
                    "prox input",
                )?;
                let input = pow2_requant(f - f_in, 1, b, &format!("{p} prox.input"))?;
                let level_bits = 32 - (max_level as u32).leading_zeros();
                let table_frac = (TABLE_WIDTH - 1 - level_bits) as i32;
                let half = 1i64 << (b - 1);
                let table = (0..2 * half)
                    .map(|i| {
                        let r = (i - half) as f32 * 2f32.powi(-f_in);
                        let v = f64::from(lp.prox.eval(r).value);
                        round_int(v * 2f64.powi(table_frac))
                    })
                    .collect();
                (
                    ProxStage::Table {
                        input,
                        table,
                        table_frac,
                        table_width: TABLE_WIDTH,
                    },
                    table_frac,
                )
            }
        };
        // Mixed precision: layer k's states saturate at its own bits (≤ state_width).
        let bk = cfg.layer_activation_bits(k);
        let out = state_requant(state_steps, out_frac, bk, bits, &format!("{p} out"))?;
        let admm = if net.arch == Arch::Admm {
            let what = format!("{p} admm");
            Some(AdmmStage {
                x_out: state_requant(state_steps, f, bk, bits, &what)?,
                vx: coefficients(&dk, f, bits, &what)?,
                vu: coefficients(&sp, f, bits, &what)?,
                v: PLACEHOLDER,
                w: PLACEHOLDER,
            })
        } else {
            None
        };
        layers.push(Layer {
            e,
            g,
            update,
            prox,
            out,
            admm,
        });
    }

    // The slicer on the last state's codes: c ≥ t_j exactly when the fake-quant value
    // c·Δ_K (an f32 product) slices at or above the level boundary 2j.
    let last = &steps[net.layers - 1];
    let levels = link.modulation.levels_per_dim() as i64;
    let half = 1i64 << (cfg.layer_activation_bits(net.layers - 1) - 1);
    let thresholds = last
        .iter()
        .map(|&d| {
            (1..levels)
                .map(|i| {
                    let boundary = (2 * i - levels) as f64;
                    let above = |c: i64| f64::from(c as f32 * d) >= boundary;
                    let mut c = (boundary / f64::from(d))
                        .ceil()
                        .clamp(-2.0 * half as f64, 2.0 * half as f64)
                        as i64;
                    while c > -half && above(c - 1) {
                        c -= 1;
                    }
                    while c <= half && !above(c) {
                        c += 1;
                    }
                    c.clamp(-half, half)
                })
                .collect()
        })
        .collect();
    let slicer = Slicer {
        thresholds,
        output_lsb: last.iter().map(|&d| f64::from(d)).collect(),
    };
    let mut ir = Ir {
        format: IR_FORMAT.to_string(),
        version: IR_VERSION,
        name: q.name(),
        arch: net.arch,
        modulation: link.modulation,
        nt: link.nt,
        nr: link.nr,
        m: link.m(),
        n: link.n(),
        snr_bins: cfg.snr_bins,
        inputs: Inputs {
            h: qformat(cfg.h.bits, fh, "h")?,
            y: qformat(cfg.y.bits, fy, "y")?,
        },
        state_width: b,
        init,
        layers,
        slicer,
    };
    fill_bounds(&mut ir)?;
    ir.validate()?;
    Ok(ir)
}
