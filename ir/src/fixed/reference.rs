//! Slow, obviously correct references for the primitives of [`crate::fixed`], in exact `i128`
//! arithmetic without shifts or masks: rounding picks the nearer of the two integers around the
//! exact rational `x / 2^s` by comparing distances, with the tie rule written out; wrap-around
//! is a Euclidean remainder; saturation compares against powers of two built by doubling.
//! They exist to test the fast code and are valid while the intermediate values fit `i128`
//! (every test keeps them below 2^110).

use super::ops::{OverflowMode, RoundingMode};

/// `2^k` by repeated doubling.
pub fn pow2(k: u32) -> i128 {
    (0..k).fold(1i128, |p, _| p * 2)
}

/// The largest integer `q` with `q·d ≤ n`, for `d > 0`.
fn floor_div(n: i128, d: i128) -> i128 {
    let q = n / d; // truncates towards zero
    if q * d > n { q - 1 } else { q }
}

/// `x / 2^s` rounded by `mode`: the nearer of ⌊x/2^s⌋ and ⌊x/2^s⌋+1, ties by the mode's rule.
pub fn round_shift(x: i128, s: u32, mode: RoundingMode) -> i128 {
    let d = pow2(s);
    let below = floor_div(x, d);
    let above = below + 1;
    // Distances to the exact quotient, scaled by d so they are integers.
    let to_below = x - below * d;
    let to_above = above * d - x;
    match mode {
        RoundingMode::Floor => below,
        _ if to_below < to_above => below,
        _ if to_below > to_above => above,
        RoundingMode::HalfUp => above,
        RoundingMode::HalfEven => {
            if below % 2 == 0 {
                below
            } else {
                above
            }
        }
    }
}

/// The signed `w`-bit range `(−2^(w−1), 2^(w−1)−1)`.
pub fn range(w: u32) -> (i128, i128) {
    (-pow2(w - 1), pow2(w - 1) - 1)
}

/// `x` clamped to the signed `w`-bit range.
pub fn saturate(x: i128, w: u32) -> i128 {
    let (lo, hi) = range(w);
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

/// `x` clamped to `[−(2^(w−1)−1), 2^(w−1)−1]`.
pub fn saturate_symmetric(x: i128, w: u32) -> i128 {
    let (_, hi) = range(w);
    if x < -hi {
        -hi
    } else if x > hi {
        hi
    } else {
        x
    }
}

/// The unique signed `w`-bit code congruent to `x` modulo `2^w`.
pub fn wrap(x: i128, w: u32) -> i128 {
    let (lo, _) = range(w);
    (x - lo).rem_euclid(pow2(w)) + lo
}

/// `x` narrowed to `w` bits by `mode`.
pub fn overflow(x: i128, w: u32, mode: OverflowMode) -> i128 {
    match mode {
        OverflowMode::Saturate => saturate(x, w),
        OverflowMode::Wrap => wrap(x, w),
        OverflowMode::SaturateSymmetric => saturate_symmetric(x, w),
    }
}

/// `overflow(round_shift(x · mult, shift))` to `out_width` bits, all in `i128`.
pub fn requantize(
    x: i128,
    mult: i128,
    shift: u32,
    rounding: RoundingMode,
    overflow_mode: OverflowMode,
    out_width: u32,
) -> i128 {
    overflow(
        round_shift(x * mult, shift, rounding),
        out_width,
        overflow_mode,
    )
}

/// The exact dot product, or the index of the first partial sum that leaves the signed
/// `acc_width`-bit range.
pub fn dot(a: &[i32], b: &[i32], acc_width: u32) -> Result<i128, usize> {
    let (lo, hi) = range(acc_width);
    let mut sum = 0i128;
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        sum += i128::from(x) * i128::from(y);
        if sum < lo || sum > hi {
            return Err(i);
        }
    }
    Ok(sum)
}

/// Whether `q·d ≤ n` (`d > 0`), exactly even where `q·d` leaves `i128`: then `|q·d| > |n|`
/// and the sign of `q` decides.
fn times_at_most(q: i128, d: i128, n: i128) -> bool {
    match q.checked_mul(d) {
        Some(p) => p <= n,
        None => q < 0,
    }
}

/// The largest `q` with `q·d ≤ n`, for `d > 0`, found by bisection (no division).
pub fn floor_div_search(n: i128, d: i128) -> i128 {
    // q·d ≤ n holds at lo = −|n| (d ≥ 1) and fails at hi = |n| + 1; the gap, up to
    // 2^127 + 1, is measured in u128.
    let (mut lo, mut hi) = (-n.abs(), n.abs() + 1);
    let gap = |lo: i128, hi: i128| (hi as u128).wrapping_sub(lo as u128);
    while gap(lo, hi) > 1 {
        let mid = lo + (gap(lo, hi) / 2) as i128;
        if times_at_most(mid, d, n) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// `n · 2^shift / max(d, d_min)` rounded by `mode` (the nearer of the two integers around the
/// exact rational, ties by the mode's rule) and narrowed to `out_width` bits, in `i128`.
pub fn divide(
    n: i128,
    d: i128,
    shift: u32,
    d_min: i128,
    rounding: RoundingMode,
    overflow_mode: OverflowMode,
    out_width: u32,
) -> i128 {
    let num = n * pow2(shift);
    let den = if d < d_min { d_min } else { d };
    let below = floor_div_search(num, den);
    let above = below + 1;
    let to_below = num - below * den;
    let to_above = above * den - num;
    let q = match rounding {
        RoundingMode::Floor => below,
        _ if to_below < to_above => below,
        _ if to_below > to_above => above,
        RoundingMode::HalfUp => above,
        RoundingMode::HalfEven => {
            if below % 2 == 0 {
                below
            } else {
                above
            }
        }
    };
    overflow(q, out_width, overflow_mode)
}

/// The largest `y ≥ 0` with `y² ≤ x`, for `0 ≤ x < 2^126`, found by bisection.
pub fn floor_sqrt_search(x: i128) -> i128 {
    let (mut lo, mut hi) = (0i128, pow2(63) + 1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if mid * mid <= x {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// `√(max(x, 0) · 2^shift)` rounded by `mode` and narrowed to `out_width` bits: the floor root
/// by search, then the nearer of it and the next integer: `√X` against the midpoint `y + ½`,
/// compared as `4(X − y²)` against `4y + 1` (`(y + ½)² − y²` scaled by 4), ties by the mode's
/// rule.
pub fn isqrt(
    x: i128,
    shift: u32,
    rounding: RoundingMode,
    overflow_mode: OverflowMode,
    out_width: u32,
) -> i128 {
    let big = if x < 0 { 0 } else { x * pow2(shift) };
    let below = floor_sqrt_search(big);
    let above = below + 1;
    let excess = 4 * (big - below * below);
    let mid = 4 * below + 1;
    let y = match rounding {
        RoundingMode::Floor => below,
        _ if excess < mid => below,
        _ if excess > mid => above,
        RoundingMode::HalfUp => above,
        RoundingMode::HalfEven => {
            if below % 2 == 0 {
                below
            } else {
                above
            }
        }
    };
    overflow(y, out_width, overflow_mode)
}
