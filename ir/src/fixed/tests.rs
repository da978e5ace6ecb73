//! The fast primitives against the slow references: exhaustively for every width ≤ 8 and
//! shift ≤ 8 in every mode, by proptest beyond; hand-worked examples from
//! `docs/fixed-point.md`; descriptor validation and serde.

use proptest::prelude::*;

use super::reference as slow;
use super::*;

/// Every signed code of every width up to 9 bits, and a margin beyond.
const SMALL: std::ops::RangeInclusive<i64> = -600..=600;

#[test]
fn round_shift_matches_reference_exhaustively() {
    for mode in RoundingMode::ALL {
        for s in 0..=8 {
            for x in SMALL {
                let want = slow::round_shift(i128::from(x), s, mode);
                assert_eq!(
                    i128::from(round_shift(x, s, mode)),
                    want,
                    "x={x} s={s} {mode:?}"
                );
                assert_eq!(
                    round_shift_wide(i128::from(x), s, mode),
                    want,
                    "wide x={x} s={s} {mode:?}"
                );
            }
        }
    }
}

#[test]
fn overflow_matches_reference_exhaustively() {
    for mode in OverflowMode::ALL {
        for w in 1..=8 {
            for x in SMALL {
                let want = slow::overflow(i128::from(x), w, mode);
                assert_eq!(
                    i128::from(overflow(x, w, mode)),
                    want,
                    "x={x} w={w} {mode:?}"
                );
            }
        }
    }
}

#[test]
fn requantize_matches_reference_exhaustively() {
    let mults: Vec<i64> = (-9..=9).chain([127, -128, 255, 1000]).collect();
    for rounding in RoundingMode::ALL {
        for ovf in OverflowMode::ALL {
            for out_w in 1..=8 {
                for shift in 0..=8 {
                    for &mult in &mults {
                        for x in -128..=127 {
                            let want = slow::requantize(
                                i128::from(x),
                                i128::from(mult),
                                shift,
                                rounding,
                                ovf,
                                out_w,
                            );
                            let got = requantize(x, mult, shift, rounding, ovf, out_w);
                            assert_eq!(
                                i128::from(got),
                                want,
                                "x={x} mult={mult} shift={shift} out_w={out_w} {rounding:?} {ovf:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn requantize_i64_matches_requantize_exhaustively() {
    let mults: Vec<i64> = (-9..=9).chain([127, -128, 255, 1000, -1000]).collect();
    for rounding in RoundingMode::ALL {
        for ovf in OverflowMode::ALL {
            for out_w in 1..=8 {
                for shift in (0..=10).chain([62, 63]) {
                    for &mult in &mults {
                        for x in -256..=255 {
                            assert_eq!(
                                requantize_i64(x, mult, shift, rounding, ovf, out_w),
                                requantize(x, mult, shift, rounding, ovf, out_w),
                                "x={x} mult={mult} shift={shift} out_w={out_w} {rounding:?} {ovf:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn dot_matches_reference_exhaustively_for_3_bit_pairs() {
    // Every pair of 2-element vectors of signed 3-bit codes: sums reach 32, so 7 bits suffice.
    let codes: Vec<i32> = (-4..=3).collect();
    for acc_w in [7, 8] {
        for &a0 in &codes {
            for &a1 in &codes {
                for &b0 in &codes {
                    for &b1 in &codes {
                        let (a, b) = ([a0, a1], [b0, b1]);
                        let want = slow::dot(&a, &b, acc_w).expect("two 3-bit products fit 7 bits");
                        assert_eq!(i128::from(dot(&a, &b, acc_w)), want, "{a:?}·{b:?}");
                    }
                }
            }
        }
    }
}

/// Examples worked by hand in docs/fixed-point.md (ties in both directions, negatives).
#[test]
fn hand_worked_examples_hold() {
    use OverflowMode::*;
    use RoundingMode::*;
    // x, s, half-up, floor, half-even
    let cases = [
        (5, 1, 3, 2, 2),     // 2.5
        (7, 1, 4, 3, 4),     // 3.5
        (-5, 1, -2, -3, -2), // −2.5
        (-7, 1, -3, -4, -4), // −3.5
        (-5, 2, -1, -2, -1), // −1.25
        (-6, 2, -1, -2, -2), // −1.5
        (6, 2, 2, 1, 2),     // 1.5
        (-1, 3, 0, -1, 0),   // −0.125
        (9, 0, 9, 9, 9),     // s = 0: no rounding
    ];
    for (x, s, up, fl, even) in cases {
        assert_eq!(round_shift(x, s, HalfUp), up, "half-up {x} >> {s}");
        assert_eq!(round_shift(x, s, Floor), fl, "floor {x} >> {s}");
        assert_eq!(round_shift(x, s, HalfEven), even, "half-even {x} >> {s}");
    }
    // x, w, saturate, wrap, symmetric
    let cases = [
        (127, 8, 127, 127, 127),
        (128, 8, 127, -128, 127),
        (-128, 8, -128, -128, -127),
        (-129, 8, -128, 127, -127),
        (300, 8, 127, 44, 127),
        (-1, 1, -1, -1, 0),
        (1, 1, 0, -1, 0),
    ];
    for (x, w, sat, wr, sym) in cases {
        assert_eq!(overflow(x, w, Saturate), sat, "saturate {x} to {w}");
        assert_eq!(overflow(x, w, Wrap), wr, "wrap {x} to {w}");
        assert_eq!(
            overflow(x, w, SaturateSymmetric),
            sym,
            "symmetric {x} to {w}"
        );
    }
    // 100 · 3 / 8 = 37.5 → 38 (half-up), 37 (floor), 38 (half-even); 8-bit output.
    assert_eq!(requantize(100, 3, 3, HalfUp, Saturate, 8), 38);
    assert_eq!(requantize(100, 3, 3, Floor, Saturate, 8), 37);
    assert_eq!(requantize(100, 3, 3, HalfEven, Saturate, 8), 38);
    // −100 · 3 / 8 = −37.5 → −37, −38, −38.
    assert_eq!(requantize(-100, 3, 3, HalfUp, Saturate, 8), -37);
    assert_eq!(requantize(-100, 3, 3, Floor, Saturate, 8), -38);
    assert_eq!(requantize(-100, 3, 3, HalfEven, Saturate, 8), -38);
}

#[test]
fn width_limits_are_the_extreme_codes() {
    assert_eq!(max_code(64), i64::MAX);
    assert_eq!(min_code(64), i64::MIN);
    assert_eq!(wrap(i64::MIN, 64), i64::MIN);
    for w in 1..=64 {
        let (lo, hi) = slow::range(w);
        assert_eq!((i128::from(min_code(w)), i128::from(max_code(w))), (lo, hi));
        assert!(fits(max_code(w), w) && fits(min_code(w), w));
        if w < 64 {
            assert!(!fits(max_code(w) + 1, w) && !fits(min_code(w) - 1, w));
        }
    }
}

#[test]
fn requantize_is_exact_beyond_64_bit_products() {
    // i64::MIN · i64::MIN = 2^126 does not fit i64; the i128 product and clamp must hold.
    for mode in RoundingMode::ALL {
        assert_eq!(
            requantize(i64::MIN, i64::MIN, 60, mode, OverflowMode::Saturate, 32),
            max_code(32)
        );
        assert_eq!(
            requantize(i64::MIN, i64::MAX, 60, mode, OverflowMode::Saturate, 32),
            min_code(32)
        );
    }
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "accumulator overflow")]
fn mac_asserts_its_accumulator_width() {
    // 3 · 3 + 3 · 3 = 18 does not fit a signed 5-bit accumulator (max 15).
    let _ = dot(&[3, 3], &[3, 3], 5);
}

#[test]
fn qformat_validates_width_and_frac() {
    assert_eq!(
        QFormat::new(0, 0, true),
        Err(FixedPointError::Width {
            field: "width",
            value: 0,
            min: 1,
            max: MAX_STORED_WIDTH
        })
    );
    assert!(matches!(
        QFormat::new(33, 0, true),
        Err(FixedPointError::Width { value: 33, .. })
    ));
    assert_eq!(
        QFormat::new(8, MAX_FRAC + 1, true),
        Err(FixedPointError::Frac {
            value: MAX_FRAC + 1
        })
    );
    assert_eq!(
        QFormat::new(8, -MAX_FRAC - 1, false),
        Err(FixedPointError::Frac {
            value: -MAX_FRAC - 1
        })
    );
    let err = QFormat::new(40, 0, true).unwrap_err().to_string();
    assert!(err.contains("width") && err.contains("40"), "{err}");
}

#[test]
fn qformat_ranges_follow_signedness() {
    for width in 1..=MAX_STORED_WIDTH {
        let s = QFormat::new(width, 0, true).unwrap();
        let (lo, hi) = slow::range(width);
        assert_eq!(
            (i128::from(s.min_code()), i128::from(s.max_code())),
            (lo, hi)
        );
        let u = QFormat::new(width, 0, false).unwrap();
        assert_eq!(u.min_code(), 0);
        assert_eq!(i128::from(u.max_code()), slow::pow2(width) - 1);
        assert!(u.contains(u.max_code()) && !u.contains(u.max_code() + 1) && !u.contains(-1));
    }
    let q = QFormat::signed(8, 5).unwrap();
    assert_eq!(q.to_real(-48), -1.5);
    assert_eq!(QFormat::signed(4, -2).unwrap().to_real(3), 12.0);
}

#[test]
fn qformat_serde_round_trips_and_rejects_invalid() {
    let q = QFormat::new(12, 9, true).unwrap();
    let json = serde_json::to_string(&q).unwrap();
    assert_eq!(json, r#"{"width":12,"frac":9,"signed":true}"#);
    assert_eq!(serde_json::from_str::<QFormat>(&json).unwrap(), q);
    let bad = serde_json::from_str::<QFormat>(r#"{"width":0,"frac":0,"signed":true}"#)
        .unwrap_err()
        .to_string();
    assert!(bad.contains("width = 0"), "{bad}");
    assert!(
        serde_json::from_str::<QFormat>(r#"{"width":8,"frac":0,"signed":true,"x":1}"#).is_err()
    );
}

#[test]
fn requant_validates_and_round_trips() {
    let r = Requant::new(
        181,
        12,
        RoundingMode::HalfEven,
        OverflowMode::SaturateSymmetric,
        8,
    )
    .unwrap();
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(
        json,
        r#"{"mult":181,"shift":12,"rounding":"half_even","overflow":"saturate_symmetric","out_width":8}"#
    );
    assert_eq!(serde_json::from_str::<Requant>(&json).unwrap(), r);
    assert_eq!(r.mult_width(), 9);
    assert_eq!(r.scale(), 181.0 / 4096.0);
    let too_big = 1i64 << 31;
    assert_eq!(
        Requant::new(too_big, 0, RoundingMode::HalfUp, OverflowMode::Saturate, 8),
        Err(FixedPointError::Mult { value: too_big })
    );
    assert_eq!(
        Requant::new(
            1,
            MAX_SHIFT + 1,
            RoundingMode::HalfUp,
            OverflowMode::Saturate,
            8
        ),
        Err(FixedPointError::Shift {
            value: MAX_SHIFT + 1
        })
    );
    assert!(matches!(
        Requant::new(1, 0, RoundingMode::HalfUp, OverflowMode::Saturate, 0),
        Err(FixedPointError::Width {
            field: "out_width",
            ..
        })
    ));
    assert!(matches!(
        r.with_shift(11),
        Err(FixedPointError::Rescale {
            from: 12,
            to: 11,
            ..
        })
    ));
    assert!(matches!(
        r.with_shift(40),
        Err(FixedPointError::Rescale { to: 40, .. })
    ));
    let bad = serde_json::from_str::<Requant>(
        r#"{"mult":1,"shift":99,"rounding":"floor","overflow":"wrap","out_width":8}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(bad.contains("shift = 99"), "{bad}");
}

#[test]
fn rescaled_requant_is_the_same_function_exhaustively() {
    for rounding in RoundingMode::ALL {
        for ovf in OverflowMode::ALL {
            for shift in 0..=6 {
                for mult in [-7, -1, 1, 3, 5, 100] {
                    let r = Requant::new(mult, shift, rounding, ovf, 6).unwrap();
                    for to in shift..=shift + 8 {
                        let s = r.with_shift(to).unwrap();
                        assert_eq!(s.shift(), to);
                        for x in -2048..2048 {
                            assert_eq!(s.apply(x), r.apply(x), "{r:?} at shift {to}, x={x}");
                        }
                    }
                }
            }
        }
    }
}

fn rounding_mode() -> impl Strategy<Value = RoundingMode> {
    prop::sample::select(RoundingMode::ALL.to_vec())
}

fn overflow_mode() -> impl Strategy<Value = OverflowMode> {
    prop::sample::select(OverflowMode::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn round_shift_matches_reference_on_wide_values(
        x in any::<i64>(), s in 0u32..=63, mode in rounding_mode()
    ) {
        prop_assert_eq!(
            i128::from(round_shift(x, s, mode)),
            slow::round_shift(i128::from(x), s, mode)
        );
    }

    #[test]
    fn round_shift_wide_matches_reference_on_products(
        a in any::<i64>(), b in -(1i64 << 40)..(1i64 << 40), s in 0u32..=100,
        mode in rounding_mode()
    ) {
        let x = i128::from(a) * i128::from(b);
        prop_assert_eq!(round_shift_wide(x, s, mode), slow::round_shift(x, s, mode));
    }

    #[test]
    fn overflow_matches_reference_on_wide_values(
        x in any::<i64>(), w in 1u32..=64, mode in overflow_mode()
    ) {
        prop_assert_eq!(
            i128::from(overflow(x, w, mode)),
            slow::overflow(i128::from(x), w, mode)
        );
    }

    #[test]
    fn requantize_matches_reference_on_wide_values(
        x in any::<i64>(),
        mult in -(1i64 << 24)..=(1i64 << 24),
        shift in 0u32..=40,
        out_w in 1u32..=32,
        rounding in rounding_mode(),
        ovf in overflow_mode(),
    ) {
        prop_assert_eq!(
            i128::from(requantize(x, mult, shift, rounding, ovf, out_w)),
            slow::requantize(i128::from(x), i128::from(mult), shift, rounding, ovf, out_w)
        );
    }

    #[test]
    fn requantize_i64_matches_requantize_when_the_product_fits(
        x in any::<i64>(),
        mult in -(1i64 << 31)..=(1i64 << 31),
        shift in 0u32..=63,
        out_w in 1u32..=64,
        rounding in rounding_mode(),
        ovf in overflow_mode(),
    ) {
        // Shrink x until x·mult fits i64 (keeping its low bits varied).
        let x = if x.checked_mul(mult).is_some() { x } else { x >> 32 };
        prop_assume!(x.checked_mul(mult).is_some());
        prop_assert_eq!(
            requantize_i64(x, mult, shift, rounding, ovf, out_w),
            requantize(x, mult, shift, rounding, ovf, out_w)
        );
    }

    #[test]
    fn requantize_matches_reference_near_the_rounding_boundary(
        // Products that land on or next to a tie: x·mult = k·2^shift + 2^(shift−1) + d.
        k in -(1i64 << 20)..(1i64 << 20),
        d in -2i64..=2,
        shift in 1u32..=40,
        out_w in 1u32..=32,
        rounding in rounding_mode(),
        ovf in overflow_mode(),
    ) {
        let x = k * (1i64 << shift) + (1i64 << (shift - 1)) + d;
        prop_assert_eq!(
            i128::from(requantize(x, 1, shift, rounding, ovf, out_w)),
            slow::requantize(i128::from(x), 1, shift, rounding, ovf, out_w)
        );
    }

    #[test]
    fn dot_matches_reference_when_it_fits(
        pairs in prop::collection::vec((-(1i32 << 23)..(1i32 << 23), -(1i32 << 23)..(1i32 << 23)), 0..64),
    ) {
        let (a, b): (Vec<i32>, Vec<i32>) = pairs.into_iter().unzip();
        // 64 products of 24-bit codes: |sum| < 64 · 2^46 = 2^52, so 54 bits always suffice.
        let want = slow::dot(&a, &b, 54);
        prop_assert!(want.is_ok());
        prop_assert_eq!(want.ok(), Some(i128::from(dot(&a, &b, 54))));
    }
}
