//! The fast primitives: rounding right shift, the three overflow modes, requantization and the
//! multiply-accumulate, on two's-complement `i64` codes. Semantics: `docs/fixed-point.md`.

use serde::{Deserialize, Serialize};

/// How a right shift by `s` rounds the exact quotient `x / 2^s`. A shift of 0 never rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RoundingMode {
    /// Round half up (towards +∞ on a tie): add `2^(s−1)`, then shift arithmetically.
    #[default]
    HalfUp,
    /// Round towards −∞: arithmetic shift only (Verilog `>>>` on a signed value).
    Floor,
    /// Round half to even (convergent rounding): a tie goes to the even quotient.
    HalfEven,
}

impl RoundingMode {
    /// Every rounding mode, in the order of their Verilog codes.
    pub const ALL: [RoundingMode; 3] = [
        RoundingMode::HalfUp,
        RoundingMode::Floor,
        RoundingMode::HalfEven,
    ];

    /// The value of the `ROUNDING` parameter of the Verilog primitives.
    pub fn verilog_code(self) -> u32 {
        match self {
            RoundingMode::HalfUp => 0,
            RoundingMode::Floor => 1,
            RoundingMode::HalfEven => 2,
        }
    }
}

/// How a value is narrowed to a signed `w`-bit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowMode {
    /// Clamp to the full range `[−2^(w−1), 2^(w−1)−1]`.
    Saturate,
    /// Keep the `w` low bits and sign-extend them (two's-complement wrap-around).
    Wrap,
    /// Clamp to the symmetric range `[−(2^(w−1)−1), 2^(w−1)−1]`: the quantizer of docs/fixed-point.md
    /// (eq. 9), and therefore the mode of every tensor the quantizer trained.
    SaturateSymmetric,
}

impl OverflowMode {
    /// Every overflow mode, in the order of their Verilog codes.
    pub const ALL: [OverflowMode; 3] = [
        OverflowMode::Saturate,
        OverflowMode::Wrap,
        OverflowMode::SaturateSymmetric,
    ];

    /// The value of the `OVERFLOW` parameter of the Verilog primitives.
    pub fn verilog_code(self) -> u32 {
        match self {
            OverflowMode::Saturate => 0,
            OverflowMode::Wrap => 1,
            OverflowMode::SaturateSymmetric => 2,
        }
    }
}

/// Largest signed `w`-bit code, `2^(w−1) − 1`, for `1 ≤ w ≤ 64`.
#[inline]
pub fn max_code(w: u32) -> i64 {
    debug_assert!((1..=64).contains(&w), "width {w} outside 1..=64");
    i64::MAX >> (64 - w)
}

/// Smallest signed `w`-bit code, `−2^(w−1)`, for `1 ≤ w ≤ 64`.
#[inline]
pub fn min_code(w: u32) -> i64 {
    !max_code(w)
}

/// Whether `x` is a signed `w`-bit code, `1 ≤ w ≤ 64`.
#[inline]
pub fn fits(x: i64, w: u32) -> bool {
    (min_code(w)..=max_code(w)).contains(&x)
}

/// `x / 2^s` rounded by `mode`, for any `i128` and `0 ≤ s ≤ 126`. Never overflows.
///
/// Computed as `q + carry` with `q = x >> s` (floor) and the carry decided by the `s` dropped
/// bits `r = x mod 2^s`: for half-up `(x + 2^(s−1)) >> s = q + [r ≥ 2^(s−1)]`, which is the
/// Verilog idiom without its need for one extra bit of headroom.
#[inline]
pub fn round_shift_wide(x: i128, s: u32, mode: RoundingMode) -> i128 {
    debug_assert!(s <= 126, "shift {s} outside 0..=126");
    if s == 0 {
        return x;
    }
    let q = x >> s;
    let r = x & ((1i128 << s) - 1);
    let half = 1i128 << (s - 1);
    let carry = match mode {
        RoundingMode::Floor => false,
        RoundingMode::HalfUp => r >= half,
        RoundingMode::HalfEven => r > half || (r == half && q & 1 == 1),
    };
    q + i128::from(carry)
}

/// `x / 2^s` rounded by `mode`, for `0 ≤ s ≤ 126`. The result always fits `i64`.
#[inline]
pub fn round_shift(x: i64, s: u32, mode: RoundingMode) -> i64 {
    // |x / 2^s| + 1 ≤ 2^62 + 1 for s ≥ 1, and s = 0 returns x: the cast is exact.
    round_shift_wide(i128::from(x), s, mode) as i64
}

/// `x` clamped to the signed `w`-bit range `[−2^(w−1), 2^(w−1)−1]`, `1 ≤ w ≤ 64`.
#[inline]
pub fn saturate(x: i64, w: u32) -> i64 {
    x.clamp(min_code(w), max_code(w))
}

/// `x` clamped to the symmetric range `[−(2^(w−1)−1), 2^(w−1)−1]`, `1 ≤ w ≤ 64`.
#[inline]
pub fn saturate_symmetric(x: i64, w: u32) -> i64 {
    let m = max_code(w);
    x.clamp(-m, m)
}

/// The `w` low bits of `x`, sign-extended (two's-complement wrap-around), `1 ≤ w ≤ 64`.
#[inline]
pub fn wrap(x: i64, w: u32) -> i64 {
    debug_assert!((1..=64).contains(&w), "width {w} outside 1..=64");
    (x << (64 - w)) >> (64 - w)
}

/// `x` narrowed to a signed `w`-bit code by `mode`, `1 ≤ w ≤ 64`.
#[inline]
pub fn overflow(x: i64, w: u32, mode: OverflowMode) -> i64 {
    match mode {
        OverflowMode::Saturate => saturate(x, w),
        OverflowMode::Wrap => wrap(x, w),
        OverflowMode::SaturateSymmetric => saturate_symmetric(x, w),
    }
}

/// Requantization `y = overflow(round_shift(x · mult, shift))` to a signed `out_width`-bit
/// code: how a real scale `mult · 2^−shift` is applied in integers. The product is exact
/// (`i128`), `0 ≤ shift ≤ 126`, `1 ≤ out_width ≤ 64`.
#[inline]
pub fn requantize(
    x: i64,
    mult: i64,
    shift: u32,
    rounding: RoundingMode,
    overflow_mode: OverflowMode,
    out_width: u32,
) -> i64 {
    requantize_wide(
        i128::from(x) * i128::from(mult),
        shift,
        rounding,
        overflow_mode,
        out_width,
    )
}

/// [`requantize`] computed in `i64`, for operands whose product `x · mult` fits `i64` and
/// `shift ≤ 63`: the same integer as [`requantize`] there (callers prove the product bound,
/// e.g. from an accumulator's proved bound and the largest multiplier). Debug builds assert
/// that the product fits; release builds then return an unspecified code, never panic.
#[inline]
pub fn requantize_i64(
    x: i64,
    mult: i64,
    shift: u32,
    rounding: RoundingMode,
    overflow_mode: OverflowMode,
    out_width: u32,
) -> i64 {
    debug_assert!(shift <= 63, "shift {shift} outside 0..=63");
    debug_assert!(
        x.checked_mul(mult).is_some(),
        "requantize_i64: {x}·{mult} does not fit 64 bits"
    );
    let p = x.wrapping_mul(mult);
    if shift == 0 {
        return overflow(p, out_width, overflow_mode);
    }
    let s = shift & 63;
    let q = p >> s;
    let r = p & ((1u64 << s) - 1) as i64;
    let half = 1i64 << (s - 1);
    let carry = match rounding {
        RoundingMode::Floor => false,
        RoundingMode::HalfUp => r >= half,
        RoundingMode::HalfEven => r > half || (r == half && q & 1 == 1),
    };
    // |q| ≤ 2^62 for shift ≥ 1: q + 1 does not overflow.
    overflow(q + i64::from(carry), out_width, overflow_mode)
}

/// `overflow(round_shift(x, shift), out_width)` of a wide value: the narrowing half of
/// [`requantize`], for sums formed in `i128` (`0 ≤ shift ≤ 126`, `1 ≤ out_width ≤ 64`).
#[inline]
pub fn requantize_wide(
    x: i128,
    shift: u32,
    rounding: RoundingMode,
    overflow_mode: OverflowMode,
    out_width: u32,
) -> i64 {
    let rounded = round_shift_wide(x, shift, rounding);
    // Narrowing to 64 bits first changes nothing: wrap to w ≤ 64 bits reads only the low 64
    // bits, and clamping to the wider i64 range before a narrower clamp is the narrower clamp.
    let narrowed = match overflow_mode {
        OverflowMode::Wrap => rounded as i64,
        OverflowMode::Saturate | OverflowMode::SaturateSymmetric => {
            rounded.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
        }
    };
    overflow(narrowed, out_width, overflow_mode)
}

/// One multiply-accumulate step `acc + a·b` in an accumulator of `acc_width` bits
/// (`1 ≤ acc_width ≤ 64`). The product of two stored codes (≤ 32 bits each) is exact in
/// `i64`. The accumulator width is a proof obligation of the lowering (interval analysis), so
/// the sum never leaves it; debug builds assert that.
#[inline]
pub fn mac(acc: i64, a: i32, b: i32, acc_width: u32) -> i64 {
    let sum = i128::from(acc) + i128::from(a) * i128::from(b);
    debug_assert!(
        sum >= i128::from(min_code(acc_width)) && sum <= i128::from(max_code(acc_width)),
        "accumulator overflow: {acc} + {a}·{b} = {sum} does not fit {acc_width} bits"
    );
    sum as i64
}

/// The dot product `Σ a_i·b_i` accumulated left to right in `acc_width` bits, as a MAC lane
/// does; every partial sum must fit (debug-asserted). `a` and `b` have the same length.
#[inline]
pub fn dot(a: &[i32], b: &[i32], acc_width: u32) -> i64 {
    debug_assert_eq!(a.len(), b.len(), "dot product of unequal lengths");
    a.iter()
        .zip(b)
        .fold(0, |acc, (&x, &y)| mac(acc, x, y, acc_width))
}
