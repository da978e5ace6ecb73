//! The scalar quantizer of docs/fixed-point.md (paper eq. 9), its straight-through and LSQ
//! derivatives, and the SNR binning of the SNR-adaptive step.
//!
//! Q(v) = Δ·clamp(⌊v/Δ + ½⌋, −Q_P, Q_P), Q_P = 2^{b−1} − 1: round half up (ties towards +∞)
//! and symmetric saturation, exactly `HalfUp` + `SaturateSymmetric` of docs/fixed-point.md.
//! Every quantized tensor of the fake-quant nets goes through [`quantize`] or [`eval`]; nothing
//! else rounds.
//!
//! Derivatives (returned by [`eval`]):
//! * wrt v (STE, paper eq. 19): 1 when v/Δ ∈ [−Q_P, Q_P], else 0;
//! * wrt Δ (LSQ, Esser et al. 2020): round(v/Δ) − v/Δ inside, −Q_P below, +Q_P above.
//!
//! Both are the exact derivatives of the *surrogate* Q̃(v; Δ) = Δ·(clamp(v/Δ, −Q_P, Q_P) + ρ)
//! with the rounding residual ρ = round(v/Δ) − v/Δ (0 outside the range) frozen at the point of
//! evaluation; Q̃ equals Q there. The property tests check the hand backward passes against
//! finite differences of exactly this surrogate.

use serde::{Deserialize, Serialize};

pub use kaq_ir::vocab::{MAX_ACTIVATION_BITS, MAX_BITS, MAX_SNR_BINS, MIN_BITS, SnrBins};

/// Smallest activation step, 2⁻²⁰: learned steps are clamped here (zero gradient below).
pub const MIN_STEP: f32 = 1.0 / 1_048_576.0;

/// Q_P = 2^{b−1} − 1, the largest code of a `bits`-bit symmetric format.
pub fn max_code(bits: u32) -> f32 {
    ((1u64 << (bits - 1)) - 1) as f32
}

/// Q(v) with step `step` and largest code `qp` (see the module docs).
#[inline]
pub fn quantize(v: f32, step: f32, qp: f32) -> f32 {
    step * (v / step + 0.5).floor().clamp(-qp, qp)
}

/// Q(v) and its derivatives at one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantEval {
    /// Q(v).
    pub value: f32,
    /// ∂Q/∂v under the STE: 1 inside the clamp range, 0 outside.
    pub d_input: f32,
    /// ∂Q/∂Δ (LSQ): round(v/Δ) − v/Δ inside, ±Q_P outside.
    pub d_step: f32,
}

/// Q(v) with the STE and LSQ derivatives.
#[inline]
pub fn eval(v: f32, step: f32, qp: f32) -> QuantEval {
    let scaled = v / step;
    let code = (scaled + 0.5).floor();
    if scaled < -qp {
        QuantEval {
            value: -qp * step,
            d_input: 0.0,
            d_step: -qp,
        }
    } else if scaled > qp {
        QuantEval {
            value: qp * step,
            d_input: 0.0,
            d_step: qp,
        }
    } else {
        // Inside the range the rounded code is within [−Q_P, Q_P] already.
        let code = code.clamp(-qp, qp);
        QuantEval {
            value: code * step,
            d_input: 1.0,
            d_step: code - scaled,
        }
    }
}

/// The smallest power-of-two step at which `max_abs` fits in `bits` bits:
/// 2^⌈log₂(max_abs / Q_P)⌉, or 1 when `max_abs` is 0 or not finite.
pub fn power_of_two_step(max_abs: f32, bits: u32) -> f32 {
    let exact = max_abs / max_code(bits);
    if !(exact.is_finite() && exact > 0.0) {
        return 1.0;
    }
    let mut step = 2f32.powi(exact.log2().ceil() as i32);
    // Guard the log's rounding: the step must hold max_abs and be the smallest that does.
    while step < exact {
        step *= 2.0;
    }
    while step / 2.0 >= exact {
        step /= 2.0;
    }
    step
}

/// `Some(f)` when `step` is exactly 2^−f (a finite positive power of two), else `None`.
pub fn pow2_frac(step: f32) -> Option<i32> {
    if !(step.is_finite() && step > 0.0) {
        return None;
    }
    let e = step.log2().round() as i32;
    (2f32.powi(e) == step).then_some(-e)
}

/// How a tensor's step is chosen from its calibrated largest magnitude.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepPolicy {
    /// The smallest power of two at which the largest magnitude fits (a pure shift in
    /// hardware).
    PowerOfTwo,
    /// max|v| / Q_P exactly (paper eq. 10).
    MaxAbs,
}

impl StepPolicy {
    /// The step for a tensor whose calibrated largest magnitude is `max_abs`.
    pub fn step(self, max_abs: f32, bits: u32) -> f32 {
        match self {
            Self::PowerOfTwo => power_of_two_step(max_abs, bits),
            Self::MaxAbs => {
                let s = max_abs / max_code(bits);
                if s.is_finite() && s > 0.0 {
                    s.max(MIN_STEP)
                } else {
                    1.0
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::{RoundingMode, round_shift, saturate_symmetric};
    use proptest::prelude::*;

    proptest! {
        /// With a power-of-two step 2^−f and an input that is an integer code c at 2^−(f+s),
        /// the quantizer equals the normative integer requantization: round-shift by s with
        /// half-up rounding, then symmetric saturation to b bits.
        #[test]
        fn quantizer_matches_the_integer_semantics(
            c in -200_000i64..200_000, s in 1u32..8, f in -4i32..12, bits in 2u32..16,
        ) {
            let step = 2f32.powi(-f);
            let v = c as f32 * 2f32.powi(-(f + s as i32));
            let code = saturate_symmetric(round_shift(c, s, RoundingMode::HalfUp), bits);
            prop_assert_eq!(quantize(v, step, max_code(bits)), code as f32 * step);
            prop_assert_eq!(eval(v, step, max_code(bits)).value, code as f32 * step);
        }

        /// The LSQ step derivative and the STE mask agree with the surrogate
        /// Δ·(clamp(v/Δ) + ρ), ρ frozen (checked by central differences in Δ and v).
        #[test]
        fn derivatives_are_those_of_the_surrogate(v in -50.0f64..50.0, step in 0.05f64..2.0, bits in 2u32..8) {
            let qp = max_code(bits) as f64;
            let e = eval(v as f32, step as f32, qp as f32);
            let rho = e.d_step as f64 * (e.d_input as f64); // residual inside, 0 outside
            let sur = |v: f64, d: f64| d * ((v / d).clamp(-qp, qp) + rho);
            prop_assume!(((v / step).abs() - qp).abs() > 1e-3);
            let h = 1e-6;
            let fd_step = (sur(v, step + h) - sur(v, step - h)) / (2.0 * h);
            let fd_v = (sur(v + h, step) - sur(v - h, step)) / (2.0 * h);
            prop_assert!((fd_step - e.d_step as f64).abs() < 1e-3 * (1.0 + qp), "{fd_step} vs {}", e.d_step);
            prop_assert!((fd_v - e.d_input as f64).abs() < 1e-4, "{fd_v} vs {}", e.d_input);
            prop_assert!((sur(v, step) - e.value as f64).abs() < 1e-4 * (1.0 + v.abs()));
        }
    }

    #[test]
    fn ties_round_up_and_saturation_is_symmetric() {
        assert_eq!(quantize(2.5, 1.0, 127.0), 3.0);
        assert_eq!(quantize(-2.5, 1.0, 127.0), -2.0);
        assert_eq!(quantize(-1000.0, 1.0, 127.0), -127.0);
        assert_eq!(quantize(1000.0, 0.5, 7.0), 3.5);
        assert_eq!(power_of_two_step(1.0, 8), 1.0 / 64.0);
        assert_eq!(power_of_two_step(127.0 / 64.0, 8), 1.0 / 64.0);
        assert_eq!(power_of_two_step(0.0, 8), 1.0);
    }

    #[test]
    fn snr_bins_round_half_up_and_clamp() {
        let bins = SnrBins::default();
        assert_eq!(bins.bin(-10.0), 0);
        assert_eq!(bins.bin(-30.0), 0);
        assert_eq!(bins.bin(0.0), 20);
        assert_eq!(bins.bin(0.25), 21);
        assert_eq!(bins.bin(0.2499), 20);
        assert_eq!(bins.bin(40.0), 100);
        assert_eq!(bins.bin(99.0), 100);
        assert_eq!(bins.bin(f64::NAN), 0);
        assert_eq!(bins.centre_db(20), 0.0);
        assert!((bins.inv_sqrt_snr(40) - 0.316_227_77).abs() < 1e-6);
        assert!(bins.validate().is_ok());
        assert!(SnrBins { count: 0, ..bins }.validate().is_err());
    }
}
