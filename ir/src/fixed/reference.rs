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
