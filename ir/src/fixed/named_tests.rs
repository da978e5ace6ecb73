//! The named operations (division, reciprocal, square root) against the search references of
//! [`super::reference`]: exhaustively over every signed 8-bit operand (hence every width ≤ 8)
//! and shift ≤ 8 in every mode, by proptest to 24-bit operands and at the `i64` limits; the
//! bit-serial twins against the fast forms; the interval rules against brute force.

use proptest::prelude::*;

use super::reference as slow;
use super::*;

const CODES8: std::ops::RangeInclusive<i64> = -128..=127;

#[test]
fn divide_matches_reference_exhaustively() {
    for rounding in RoundingMode::ALL {
        for shift in 0..=8 {
            for d_min in [1, 3] {
                for n in CODES8 {
                    for d in CODES8 {
                        // Unnarrowed (64 bits) once, and each narrowing of it.
                        let exact = slow::divide(
                            n.into(),
                            d.into(),
                            shift,
                            d_min.into(),
                            rounding,
                            OverflowMode::Saturate,
                            64,
                        );
                        let got = divide(n, d, shift, d_min, rounding, OverflowMode::Saturate, 64);
                        assert_eq!(
                            i128::from(got),
                            exact,
                            "n={n} d={d} shift={shift} d_min={d_min} {rounding:?}"
                        );
                        for ovf in OverflowMode::ALL {
                            for w in 1..=8 {
                                assert_eq!(
                                    i128::from(divide(n, d, shift, d_min, rounding, ovf, w)),
                                    slow::overflow(exact, w, ovf),
                                    "n={n} d={d} shift={shift} d_min={d_min} w={w} {rounding:?} {ovf:?}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Division by `2^k` is the round-shift of §2, in every rounding mode.
#[test]
fn division_by_a_power_of_two_is_the_round_shift() {
    for rounding in RoundingMode::ALL {
        for k in 0..=10 {
            for n in -2000..=2000 {
                assert_eq!(
                    divide(n, 1 << k, 0, 1, rounding, OverflowMode::Saturate, 64),
                    round_shift(n, k, rounding),
                    "n={n} k={k} {rounding:?}"
                );
            }
        }
    }
}

#[test]
fn restoring_division_matches_divide_exhaustively() {
    for rounding in RoundingMode::ALL {
        for shift in 0..=8 {
            for n in CODES8 {
                for d in CODES8 {
                    for (ovf, w) in [(OverflowMode::Saturate, 64), (OverflowMode::Wrap, 6)] {
                        assert_eq!(
                            divide_restoring(n, d, shift, 1, rounding, ovf, w),
                            divide(n, d, shift, 1, rounding, ovf, w),
                            "n={n} d={d} shift={shift} {rounding:?} {ovf:?}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn isqrt_matches_reference_exhaustively() {
    for rounding in RoundingMode::ALL {
        for shift in 0..=16 {
            for x in CODES8 {
                let exact = slow::isqrt(x.into(), shift, rounding, OverflowMode::Saturate, 64);
                assert_eq!(
                    i128::from(isqrt(x, shift, rounding, OverflowMode::Saturate, 64)),
                    exact,
                    "x={x} shift={shift} {rounding:?}"
                );
                assert_eq!(
                    isqrt_digit(x, shift, rounding, OverflowMode::Saturate, 64),
                    isqrt(x, shift, rounding, OverflowMode::Saturate, 64),
                    "digit x={x} shift={shift} {rounding:?}"
                );
                for ovf in OverflowMode::ALL {
                    for w in 1..=8 {
                        assert_eq!(
                            i128::from(isqrt(x, shift, rounding, ovf, w)),
                            slow::overflow(exact, w, ovf),
                            "x={x} shift={shift} w={w} {rounding:?} {ovf:?}"
                        );
                    }
                }
            }
        }
        // Every radicand of 16 bits (every unsigned product of two 8-bit codes).
        for x in 0..=65_535 {
            assert_eq!(
                i128::from(isqrt(x, 0, rounding, OverflowMode::Saturate, 64)),
                slow::isqrt(x.into(), 0, rounding, OverflowMode::Saturate, 64),
                "x={x} {rounding:?}"
            );
        }
    }
}

/// Hand-worked values of docs/fixed-point.md §6.
#[test]
fn worked_examples() {
    use OverflowMode::{Saturate as S, SaturateSymmetric as Sym, Wrap as W};
    use RoundingMode::{Floor as F, HalfEven as E, HalfUp as U};
    // 7/2 = 3.5 → 4 / 3 / 4; −7/2 = −3.5 → −3 / −4 / −4; 5/2 = 2.5 → 3 / 2 / 2.
    let div = |n, d, r| divide(n, d, 0, 1, r, S, 16);
    assert_eq!([div(7, 2, U), div(7, 2, F), div(7, 2, E)], [4, 3, 4]);
    assert_eq!([div(-7, 2, U), div(-7, 2, F), div(-7, 2, E)], [-3, -4, -4]);
    assert_eq!([div(5, 2, U), div(5, 2, F), div(5, 2, E)], [3, 2, 2]);
    // −1/3 → 0 (half-up), −1 (floor).
    assert_eq!([div(-1, 3, U), div(-1, 3, F)], [0, -1]);
    // Divisor 0 or negative → clamped to d_min: 5 / max(0, 1) = 5; 5 / max(−4, 2) → 3 (2.5 up).
    assert_eq!(divide(5, 0, 0, 1, U, S, 16), 5);
    assert_eq!(divide(5, -4, 0, 2, U, S, 16), 3);
    // Reciprocal 2^8 / 3 = 85.33 → 85; 2^8 / 0 → 256, saturated to 127 in 8 bits.
    assert_eq!(reciprocal(3, 8, 1, U, S, 16), 85);
    assert_eq!(reciprocal(0, 8, 1, U, S, 8), 127);
    // −128 / 1 in 8 bits: −128 saturated, −127 symmetric; 128/1 wraps to −128.
    assert_eq!(divide(-128, 1, 0, 1, U, S, 8), -128);
    assert_eq!(divide(-128, 1, 0, 1, U, Sym, 8), -127);
    assert_eq!(divide(1, 1, 7, 1, U, W, 8), -128);
    // √2 = 1.41 → 1; √(2·2^8) = 22.63 → 23 (floor 22); √6 = 2.449 → 2; √(−5) → 0.
    assert_eq!(isqrt(2, 0, U, S, 8), 1);
    assert_eq!([isqrt(2, 8, U, S, 16), isqrt(2, 8, F, S, 16)], [23, 22]);
    assert_eq!(isqrt(6, 0, E, S, 8), 2);
    assert_eq!(isqrt(-5, 4, U, S, 8), 0);
    // √(2^62 · 2^63 ...): the largest radicand, i64::MAX · 2^63, has a 63-bit root.
    assert_eq!(
        isqrt(i64::MAX, 63, F, S, 64),
        isqrt_digit(i64::MAX, 63, F, S, 64)
    );
}

#[test]
fn validated_steps_name_the_field() {
    let r = RoundingMode::HalfUp;
    let o = OverflowMode::Saturate;
    assert_eq!(
        Divide::new(64, 1, r, o, 8),
        Err(NamedOpError::Shift { value: 64 })
    );
    assert_eq!(
        Divide::new(0, 0, r, o, 8),
        Err(NamedOpError::DivisorMin { value: 0 })
    );
    assert_eq!(
        Divide::new(0, 1, r, o, 65),
        Err(NamedOpError::OutWidth { value: 65 })
    );
    assert_eq!(
        Sqrt::new(0, r, o, 0),
        Err(NamedOpError::OutWidth { value: 0 })
    );
    assert!(
        Divide::new(0, 0, r, o, 8)
            .unwrap_err()
            .to_string()
            .contains("d_min")
    );
    let step = Divide::new(4, 2, r, o, 12).unwrap();
    assert_eq!(step.apply(-37, 5), divide(-37, 5, 4, 2, r, o, 12));
    assert!(step.divisor_proved(2) && !step.divisor_proved(1));
}

#[test]
fn validated_steps_round_trip_through_json_and_refuse_bad_fields() {
    let step = Divide::new(
        9,
        4,
        RoundingMode::HalfEven,
        OverflowMode::SaturateSymmetric,
        10,
    )
    .unwrap();
    let json = serde_json::to_string(&step).unwrap();
    assert_eq!(
        json,
        r#"{"shift":9,"d_min":4,"rounding":"half_even","overflow":"saturate_symmetric","out_width":10}"#
    );
    assert_eq!(serde_json::from_str::<Divide>(&json).unwrap(), step);
    let bad = serde_json::from_str::<Divide>(
        r#"{"shift":9,"d_min":0,"rounding":"floor","overflow":"saturate","out_width":10}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(bad.contains("d_min = 0"), "{bad}");
    assert!(
        serde_json::from_str::<Divide>(
            r#"{"shift":9,"d_min":1,"rounding":"floor","overflow":"saturate","out_width":10,"x":0}"#
        )
        .is_err()
    );
    let root = Sqrt::new(3, RoundingMode::Floor, OverflowMode::Wrap, 7).unwrap();
    let json = serde_json::to_string(&root).unwrap();
    assert_eq!(serde_json::from_str::<Sqrt>(&json).unwrap(), root);
    let bad = serde_json::from_str::<Sqrt>(
        r#"{"shift":64,"rounding":"floor","overflow":"saturate","out_width":10}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(bad.contains("shift = 64"), "{bad}");
}

fn rounding() -> impl Strategy<Value = RoundingMode> {
    prop::sample::select(RoundingMode::ALL.to_vec())
}

fn overflow_mode() -> impl Strategy<Value = OverflowMode> {
    prop::sample::select(OverflowMode::ALL.to_vec())
}

const C24: std::ops::RangeInclusive<i64> = -(1 << 23)..=(1 << 23) - 1;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn divide_matches_reference_to_24_bits(
        n in C24, d in C24, shift in 0u32..=40, d_min in 1i64..=(1 << 12),
        r in rounding(), o in overflow_mode(), w in 1u32..=64,
    ) {
        let want = slow::divide(n.into(), d.into(), shift, d_min.into(), r, o, w);
        prop_assert_eq!(i128::from(divide(n, d, shift, d_min, r, o, w)), want);
        prop_assert_eq!(divide_restoring(n, d, shift, d_min, r, o, w), divide(n, d, shift, d_min, r, o, w));
    }

    #[test]
    fn divide_matches_reference_at_the_i64_limits(
        n in prop_oneof![Just(i64::MIN), Just(i64::MAX), any::<i64>()],
        d in prop_oneof![Just(i64::MAX), Just(1i64), Just(0i64), Just(i64::MIN), any::<i64>()],
        shift in prop_oneof![Just(63u32), 0u32..=63],
        r in rounding(), o in overflow_mode(), w in 1u32..=64,
    ) {
        let want = slow::divide(n.into(), d.into(), shift, 1, r, o, w);
        prop_assert_eq!(i128::from(divide(n, d, shift, 1, r, o, w)), want);
        prop_assert_eq!(divide_restoring(n, d, shift, 1, r, o, w), divide(n, d, shift, 1, r, o, w));
    }

    #[test]
    fn isqrt_matches_reference_to_24_bits_and_the_limits(
        x in prop_oneof![C24, Just(i64::MAX), any::<i64>()],
        shift in 0u32..=63, r in rounding(), o in overflow_mode(), w in 1u32..=64,
    ) {
        let want = slow::isqrt(x.into(), shift, r, o, w);
        prop_assert_eq!(i128::from(isqrt(x, shift, r, o, w)), want);
        prop_assert_eq!(isqrt_digit(x, shift, r, o, w), isqrt(x, shift, r, o, w));
    }

    /// The corner rule encloses every value over a small box, and its ends are attained.
    #[test]
    fn divide_interval_encloses_the_box(
        n0 in -300i64..=300, dn in 0i64..=20, d0 in -40i64..=300, dd in 0i64..=20,
        shift in 0u32..=10, d_min in 1i64..=8, r in rounding(), o in overflow_mode(), w in 1u32..=16,
    ) {
        let step = Divide::new(shift, d_min, r, o, w).unwrap();
        let (lo, hi) = step.interval((n0, n0 + dn), (d0, d0 + dd));
        let mut seen = (i64::MAX, i64::MIN);
        for n in n0..=n0 + dn {
            for d in d0..=d0 + dd {
                let q = step.apply(n, d);
                prop_assert!(lo <= q && q <= hi, "{} outside [{}, {}]", q, lo, hi);
                seen = (seen.0.min(q), seen.1.max(q));
            }
        }
        if o != OverflowMode::Wrap {
            prop_assert_eq!(seen, (lo, hi));
        }
    }

    #[test]
    fn isqrt_interval_encloses_the_range(
        x0 in -100i64..=5000, dx in 0i64..=200, shift in 0u32..=10,
        r in rounding(), o in overflow_mode(), w in 1u32..=16,
    ) {
        let step = Sqrt::new(shift, r, o, w).unwrap();
        let (lo, hi) = step.interval((x0, x0 + dx));
        for x in x0..=x0 + dx {
            let y = step.apply(x);
            prop_assert!(lo <= y && y <= hi);
        }
    }
}
