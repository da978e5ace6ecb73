//! Integer square root on fixed-point codes (docs/fixed-point.md §6): the exact root of
//! `max(x, 0) · 2^shift` rounded by a [`RoundingMode`] and narrowed by an [`OverflowMode`].
//! A negative radicand is clamped to 0 (the hardware clamps it; interval analysis proves
//! where it cannot occur).
//!
//! [`isqrt`] is the fast form (`u128::isqrt`); [`isqrt_digit`] computes the same integer by
//! the bit-serial digit-by-digit (restoring) square root, the algorithm a hardware cell
//! implements.

use serde::{Deserialize, Serialize};

use super::format::MAX_SHIFT;
use super::ops::{OverflowMode, RoundingMode, max_code, min_code, requantize_wide};
use super::recip::{NamedOpError, check_params};

/// The rounded root from the floor root `y` and the remainder `r = X − y²` (`0 ≤ r ≤ 2y`).
/// `√X` is never a half-integer (`(y + ½)² = y² + y + ¼` is not an integer), so both nearest
/// modes round up exactly when `√X > y + ½`, i.e. `r > y`.
#[inline]
fn rounded(y: u128, r: u128, mode: RoundingMode) -> i128 {
    let up = match mode {
        RoundingMode::Floor => false,
        RoundingMode::HalfUp | RoundingMode::HalfEven => r > y,
    };
    (y + u128::from(up)) as i128
}

/// `overflow(round(√(max(x, 0) · 2^shift)), out_width)`.
///
/// Domain: any `i64` code `x`; `shift ≤ 63`; `1 ≤ out_width ≤ 64`. The radicand has at most
/// 126 bits (`u128`); the root at most 63, plus one for rounding up. Never panics.
///
/// Formats: with `x` at `frac_x` and `frac_x + shift` even, the result is at
/// `(frac_x + shift) / 2`.
#[inline]
pub fn isqrt(
    x: i64,
    shift: u32,
    rounding: RoundingMode,
    overflow_mode: OverflowMode,
    out_width: u32,
) -> i64 {
    debug_assert!(shift <= MAX_SHIFT, "shift {shift} above {MAX_SHIFT}");
    let big = (x.max(0) as u128) << (shift & 63);
    let y = big.isqrt();
    let r = big - y * y;
    requantize_wide(
        rounded(y, r, rounding),
        0,
        RoundingMode::Floor,
        overflow_mode,
        out_width,
    )
}

/// [`isqrt`] computed as the hardware does: the digit-by-digit binary square root, one root
/// bit per step from the MSB pair (try `rem ≥ res + bit`, subtract if so), which leaves the
/// floor root and the remainder `X − y²`; then the rounding (`r > y`) and the narrowing.
/// Bit-identical to [`isqrt`] on its whole domain.
pub fn isqrt_digit(
    x: i64,
    shift: u32,
    rounding: RoundingMode,
    overflow_mode: OverflowMode,
    out_width: u32,
) -> i64 {
    let big = (x.max(0) as u128) << (shift & 63);
    let mut rem = big;
    let mut res = 0u128;
    let mut bit = 1u128 << 126;
    while bit != 0 {
        if rem >= res + bit {
            rem -= res + bit;
            res = (res >> 1) + bit;
        } else {
            res >>= 1;
        }
        bit >>= 2;
    }
    requantize_wide(
        rounded(res, rem, rounding),
        0,
        RoundingMode::Floor,
        overflow_mode,
        out_width,
    )
}

/// A validated square-root step: the parameters of [`isqrt`] checked once, on construction
/// and on deserialization (JSON fields `shift`, `rounding`, `overflow`, `out_width`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SqrtFields", into = "SqrtFields")]
pub struct Sqrt {
    shift: u32,
    rounding: RoundingMode,
    overflow: OverflowMode,
    out_width: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqrtFields {
    shift: u32,
    rounding: RoundingMode,
    overflow: OverflowMode,
    out_width: u32,
}

impl TryFrom<SqrtFields> for Sqrt {
    type Error = NamedOpError;
    fn try_from(f: SqrtFields) -> Result<Self, Self::Error> {
        Sqrt::new(f.shift, f.rounding, f.overflow, f.out_width)
    }
}

impl From<Sqrt> for SqrtFields {
    fn from(q: Sqrt) -> Self {
        SqrtFields {
            shift: q.shift,
            rounding: q.rounding,
            overflow: q.overflow,
            out_width: q.out_width,
        }
    }
}

impl Sqrt {
    /// A square-root step; errors name the field out of range (`shift ≤ 63`,
    /// `1 ≤ out_width ≤ 64`).
    pub fn new(
        shift: u32,
        rounding: RoundingMode,
        overflow: OverflowMode,
        out_width: u32,
    ) -> Result<Self, NamedOpError> {
        check_params(shift, out_width)?;
        Ok(Sqrt {
            shift,
            rounding,
            overflow,
            out_width,
        })
    }

    /// `isqrt(x)` with these parameters.
    #[inline]
    pub fn apply(&self, x: i64) -> i64 {
        isqrt(x, self.shift, self.rounding, self.overflow, self.out_width)
    }

    /// The interval of `apply(x)` over `x ∈ [lo, hi]`, `lo ≤ hi`: the root is non-decreasing,
    /// so `[apply(lo), apply(hi)]` under saturation; any code of the width under wrap.
    pub fn interval(&self, x: (i64, i64)) -> (i64, i64) {
        if self.overflow == OverflowMode::Wrap {
            return (min_code(self.out_width), max_code(self.out_width));
        }
        (self.apply(x.0), self.apply(x.1))
    }
}
