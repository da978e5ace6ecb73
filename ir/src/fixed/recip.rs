//! Integer division and reciprocal on fixed-point codes (docs/fixed-point.md §6): the exact
//! rational `n · 2^shift / max(d, d_min)` rounded by a [`RoundingMode`] and narrowed by an
//! [`OverflowMode`]. The divisor is clamped from below to `d_min ≥ 1`, so a zero or negative
//! divisor never reaches the division; a bound proved by interval analysis makes the clamp a
//! no-op, and the IR states which of the two holds.
//!
//! [`divide`] is the fast form (native `i128` division); [`divide_restoring`] computes the same
//! integer by bit-serial restoring division of the magnitude, the algorithm a hardware cell
//! implements, and is tested against it and against a brute-force reference.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::format::{MAX_ACC_WIDTH, MAX_SHIFT};
use super::ops::{OverflowMode, RoundingMode, max_code, min_code, requantize_wide};

/// Errors of a named operation's parameters; each names the field and value.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NamedOpError {
    /// A pre-shift above [`MAX_SHIFT`].
    #[error("shift = {value} is above the largest shift {MAX_SHIFT}")]
    Shift {
        /// The value given.
        value: u32,
    },
    /// A divisor clamp below 1: the division by 0 would not be excluded.
    #[error("d_min = {value} must be at least 1 (the divisor is clamped to it)")]
    DivisorMin {
        /// The value given.
        value: i64,
    },
    /// A result width outside `1..=MAX_ACC_WIDTH`.
    #[error("out_width = {value} bits is outside 1..={MAX_ACC_WIDTH}")]
    OutWidth {
        /// The value given.
        value: u32,
    },
}

/// Checks the parameters shared by the named operations.
pub(super) fn check_params(shift: u32, out_width: u32) -> Result<(), NamedOpError> {
    if shift > MAX_SHIFT {
        return Err(NamedOpError::Shift { value: shift });
    }
    if !(1..=MAX_ACC_WIDTH).contains(&out_width) {
        return Err(NamedOpError::OutWidth { value: out_width });
    }
    Ok(())
}

/// The carry that rounds `q + r/d` (`d > 0`, `0 ≤ r < d`) to an integer by `mode`.
#[inline]
fn carry(q: i128, r: i128, d: i128, mode: RoundingMode) -> bool {
    match mode {
        RoundingMode::Floor => false,
        RoundingMode::HalfUp => 2 * r >= d,
        RoundingMode::HalfEven => 2 * r > d || (2 * r == d && q & 1 == 1),
    }
}

/// `overflow(round(n · 2^shift / max(d, d_min)), out_width)`: the quotient of two codes.
///
/// Domain: any `i64` codes `n`, `d`; `shift ≤ 63`; `d_min ≥ 1` (a smaller `d_min` acts as 1;
/// [`Divide::new`] refuses it); `1 ≤ out_width ≤ 64`. The exact numerator has at most 127 bits
/// and is formed in `i128`; the rounded quotient is narrowed by `overflow_mode`. Never panics.
///
/// Formats: with `n` at `frac_n`, `d` at `frac_d`, the result is at `frac_n + shift − frac_d`.
#[inline]
pub fn divide(
    n: i64,
    d: i64,
    shift: u32,
    d_min: i64,
    rounding: RoundingMode,
    overflow_mode: OverflowMode,
    out_width: u32,
) -> i64 {
    debug_assert!(shift <= MAX_SHIFT, "shift {shift} above {MAX_SHIFT}");
    debug_assert!(d_min >= 1, "d_min {d_min} below 1");
    let num = i128::from(n) << (shift & 63);
    let den = i128::from(d.max(d_min).max(1));
    let q = num.div_euclid(den);
    let r = num.rem_euclid(den);
    let rounded = q + i128::from(carry(q, r, den, rounding));
    requantize_wide(rounded, 0, RoundingMode::Floor, overflow_mode, out_width)
}

/// The reciprocal `overflow(round(2^shift / max(d, d_min)), out_width)`: [`divide`] with `n = 1`.
/// With `d` at `frac_d` the result is at `shift − frac_d`.
#[inline]
pub fn reciprocal(
    d: i64,
    shift: u32,
    d_min: i64,
    rounding: RoundingMode,
    overflow_mode: OverflowMode,
    out_width: u32,
) -> i64 {
    divide(1, d, shift, d_min, rounding, overflow_mode, out_width)
}

/// [`divide`] computed as the hardware does: restoring division of `|n · 2^shift|` by the
/// clamped divisor, one quotient bit per step from the MSB (compare the partial remainder with
/// the divisor, subtract if not below), then the floor fix-up of a negative numerator
/// (`q = −q₀ − [r₀ ≠ 0]`, `r = d − r₀` if `r₀ ≠ 0`), then the rounding carry from `2r` vs `d`,
/// then the narrowing. Bit-identical to [`divide`] on its whole domain.
pub fn divide_restoring(
    n: i64,
    d: i64,
    shift: u32,
    d_min: i64,
    rounding: RoundingMode,
    overflow_mode: OverflowMode,
    out_width: u32,
) -> i64 {
    let num = i128::from(n) << (shift & 63);
    let den = d.max(d_min).max(1).unsigned_abs() as u128;
    let mag = num.unsigned_abs();
    let (mut q0, mut r0) = (0u128, 0u128);
    for i in (0..127).rev() {
        // r0 < den ≤ 2^63, so the shifted remainder stays below 2^64.
        r0 = (r0 << 1) | ((mag >> i) & 1);
        if r0 >= den {
            r0 -= den;
            q0 |= 1 << i;
        }
    }
    let (den, q0, r0) = (den as i128, q0 as i128, r0 as i128);
    let (q, r) = if num >= 0 {
        (q0, r0)
    } else if r0 == 0 {
        (-q0, 0)
    } else {
        (-q0 - 1, den - r0)
    };
    let rounded = q + i128::from(carry(q, r, den, rounding));
    requantize_wide(rounded, 0, RoundingMode::Floor, overflow_mode, out_width)
}

/// A validated division step: the parameters of [`divide`] checked once, on construction and
/// on deserialization (JSON fields `shift`, `d_min`, `rounding`, `overflow`, `out_width`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "DivideFields", into = "DivideFields")]
pub struct Divide {
    shift: u32,
    d_min: i64,
    rounding: RoundingMode,
    overflow: OverflowMode,
    out_width: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DivideFields {
    shift: u32,
    d_min: i64,
    rounding: RoundingMode,
    overflow: OverflowMode,
    out_width: u32,
}

impl TryFrom<DivideFields> for Divide {
    type Error = NamedOpError;
    fn try_from(f: DivideFields) -> Result<Self, Self::Error> {
        Divide::new(f.shift, f.d_min, f.rounding, f.overflow, f.out_width)
    }
}

impl From<Divide> for DivideFields {
    fn from(d: Divide) -> Self {
        DivideFields {
            shift: d.shift,
            d_min: d.d_min,
            rounding: d.rounding,
            overflow: d.overflow,
            out_width: d.out_width,
        }
    }
}

impl Divide {
    /// A division step; errors name the field out of range (`shift ≤ 63`, `d_min ≥ 1`,
    /// `1 ≤ out_width ≤ 64`).
    pub fn new(
        shift: u32,
        d_min: i64,
        rounding: RoundingMode,
        overflow: OverflowMode,
        out_width: u32,
    ) -> Result<Self, NamedOpError> {
        check_params(shift, out_width)?;
        if d_min < 1 {
            return Err(NamedOpError::DivisorMin { value: d_min });
        }
        Ok(Divide {
            shift,
            d_min,
            rounding,
            overflow,
            out_width,
        })
    }

    /// `divide(n, d)` with these parameters.
    #[inline]
    pub fn apply(&self, n: i64, d: i64) -> i64 {
        divide(
            n,
            d,
            self.shift,
            self.d_min,
            self.rounding,
            self.overflow,
            self.out_width,
        )
    }

    /// The interval of `apply(n, d)` over `n ∈ [n_lo, n_hi]`, `d ∈ [d_lo, d_hi]` (each
    /// `lo ≤ hi`). Under saturation the quotient is non-decreasing in `n` and, for fixed `n`,
    /// monotone in the (clamped, positive) divisor, so the extremes lie at the four corners;
    /// under wrap the result can be any code of the width.
    pub fn interval(&self, n: (i64, i64), d: (i64, i64)) -> (i64, i64) {
        if self.overflow == OverflowMode::Wrap {
            return (min_code(self.out_width), max_code(self.out_width));
        }
        let corners = [
            self.apply(n.0, d.0),
            self.apply(n.0, d.1),
            self.apply(n.1, d.0),
            self.apply(n.1, d.1),
        ];
        let lo = corners.iter().copied().min().unwrap_or(0);
        let hi = corners.iter().copied().max().unwrap_or(0);
        (lo, hi)
    }

    /// The pre-shift `s`.
    pub fn shift(&self) -> u32 {
        self.shift
    }

    /// The divisor clamp `d_min ≥ 1`.
    pub fn d_min(&self) -> i64 {
        self.d_min
    }

    /// The result width.
    pub fn out_width(&self) -> u32 {
        self.out_width
    }

    /// The rounding mode of the quotient.
    pub fn rounding(&self) -> RoundingMode {
        self.rounding
    }

    /// The overflow mode of the narrowing.
    pub fn overflow(&self) -> OverflowMode {
        self.overflow
    }

    /// Whether the clamp is provably a no-op for divisors `≥ d_lo`: the IR's "proved" case.
    pub fn divisor_proved(&self, d_lo: i64) -> bool {
        d_lo >= self.d_min
    }
}
