//! [`QFormat`], the runtime descriptor of a stored tensor's format, and [`Requant`], a
//! validated requantization step. Both validate on construction and on deserialization, so a
//! value of either type always satisfies the ranges below.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::ops::{OverflowMode, RoundingMode, fits, max_code, min_code, requantize};

/// Widest stored tensor, in bits.
pub const MAX_STORED_WIDTH: u32 = 32;
/// Widest accumulator, in bits.
pub const MAX_ACC_WIDTH: u32 = 64;
/// Largest magnitude of a format's fractional-bit count (so `2^±frac` is an exact `f64`).
pub const MAX_FRAC: i32 = 64;
/// Largest requantization shift.
pub const MAX_SHIFT: u32 = 63;
/// Widest requantization multiplier (a signed code), in bits.
pub const MAX_MULT_WIDTH: u32 = 32;

/// Errors of fixed-point descriptors; each names the offending field and value.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FixedPointError {
    /// A bit width outside its allowed range.
    #[error("{field} = {value} bits is outside {min}..={max}")]
    Width {
        /// Which width.
        field: &'static str,
        /// The value given.
        value: u32,
        /// Smallest allowed.
        min: u32,
        /// Largest allowed.
        max: u32,
    },
    /// A fractional-bit count outside `−MAX_FRAC..=MAX_FRAC`.
    #[error("frac = {value} fractional bits is outside -{MAX_FRAC}..={MAX_FRAC}")]
    Frac {
        /// The value given.
        value: i32,
    },
    /// A requantization shift above [`MAX_SHIFT`].
    #[error("shift = {value} is above the largest shift {MAX_SHIFT}")]
    Shift {
        /// The value given.
        value: u32,
    },
    /// A requantization step that cannot be rewritten at another shift without changing it.
    #[error(
        "mult = {mult} at shift {from} cannot be rewritten at shift {to}: the shift may only \
         grow, and the multiplier must stay a signed {MAX_MULT_WIDTH}-bit code"
    )]
    Rescale {
        /// The multiplier.
        mult: i64,
        /// Its shift.
        from: u32,
        /// The shift asked for.
        to: u32,
    },
    /// A requantization multiplier that is not a signed [`MAX_MULT_WIDTH`]-bit code.
    #[error("mult = {value} does not fit a signed {MAX_MULT_WIDTH}-bit multiplier")]
    Mult {
        /// The value given.
        value: i64,
    },
}

/// A two's-complement (or unsigned) fixed-point format: a `width`-bit integer code `c` stands
/// for the real value `c · 2^−frac`.
///
/// Signed codes lie in `[−2^(width−1), 2^(width−1)−1]`, unsigned ones in `[0, 2^width−1]`.
/// Unsigned formats serve indices and table addresses; arithmetic results are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "QFormatFields", into = "QFormatFields")]
pub struct QFormat {
    width: u32,
    frac: i32,
    signed: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QFormatFields {
    width: u32,
    frac: i32,
    signed: bool,
}

impl TryFrom<QFormatFields> for QFormat {
    type Error = FixedPointError;
    fn try_from(f: QFormatFields) -> Result<Self, Self::Error> {
        QFormat::new(f.width, f.frac, f.signed)
    }
}

impl From<QFormat> for QFormatFields {
    fn from(q: QFormat) -> Self {
        QFormatFields {
            width: q.width,
            frac: q.frac,
            signed: q.signed,
        }
    }
}

impl QFormat {
    /// A format of `width` bits (1..=[`MAX_STORED_WIDTH`]) with `frac` fractional bits
    /// (`−MAX_FRAC..=MAX_FRAC`; negative means the LSB weighs more than 1).
    pub fn new(width: u32, frac: i32, signed: bool) -> Result<Self, FixedPointError> {
        if !(1..=MAX_STORED_WIDTH).contains(&width) {
            return Err(FixedPointError::Width {
                field: "width",
                value: width,
                min: 1,
                max: MAX_STORED_WIDTH,
            });
        }
        if !(-MAX_FRAC..=MAX_FRAC).contains(&frac) {
            return Err(FixedPointError::Frac { value: frac });
        }
        Ok(QFormat {
            width,
            frac,
            signed,
        })
    }

    /// A signed format.
    pub fn signed(width: u32, frac: i32) -> Result<Self, FixedPointError> {
        Self::new(width, frac, true)
    }

    /// Bits per code.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Fractional bits: the code's LSB weighs `2^−frac`.
    pub fn frac(&self) -> i32 {
        self.frac
    }

    /// Whether codes are two's-complement.
    pub fn is_signed(&self) -> bool {
        self.signed
    }

    /// Smallest code.
    pub fn min_code(&self) -> i64 {
        if self.signed { min_code(self.width) } else { 0 }
    }

    /// Largest code.
    pub fn max_code(&self) -> i64 {
        if self.signed {
            max_code(self.width)
        } else {
            (1i64 << self.width) - 1
        }
    }

    /// Whether `code` is a code of this format.
    pub fn contains(&self, code: i64) -> bool {
        (self.min_code()..=self.max_code()).contains(&code)
    }

    /// The weight of one LSB, `2^−frac` (exact).
    pub fn lsb(&self) -> f64 {
        2f64.powi(-self.frac)
    }

    /// The real value a code stands for, `code · 2^−frac` (exact for every code).
    pub fn to_real(&self, code: i64) -> f64 {
        code as f64 * self.lsb()
    }
}

/// One requantization step `y = overflow(round_shift(x · mult, shift))` to a signed
/// `out_width`-bit code: the integer form of multiplying by the real scale `mult · 2^−shift`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RequantFields", into = "RequantFields")]
pub struct Requant {
    mult: i64,
    shift: u32,
    rounding: RoundingMode,
    overflow: OverflowMode,
    out_width: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequantFields {
    mult: i64,
    shift: u32,
    rounding: RoundingMode,
    overflow: OverflowMode,
    out_width: u32,
}

impl TryFrom<RequantFields> for Requant {
    type Error = FixedPointError;
    fn try_from(f: RequantFields) -> Result<Self, Self::Error> {
        Requant::new(f.mult, f.shift, f.rounding, f.overflow, f.out_width)
    }
}

impl From<Requant> for RequantFields {
    fn from(r: Requant) -> Self {
        RequantFields {
            mult: r.mult,
            shift: r.shift,
            rounding: r.rounding,
            overflow: r.overflow,
            out_width: r.out_width,
        }
    }
}

impl Requant {
    /// A requantization step; `mult` must be a signed [`MAX_MULT_WIDTH`]-bit code,
    /// `shift ≤ MAX_SHIFT`, `1 ≤ out_width ≤ MAX_STORED_WIDTH`.
    pub fn new(
        mult: i64,
        shift: u32,
        rounding: RoundingMode,
        overflow: OverflowMode,
        out_width: u32,
    ) -> Result<Self, FixedPointError> {
        if !fits(mult, MAX_MULT_WIDTH) {
            return Err(FixedPointError::Mult { value: mult });
        }
        if shift > MAX_SHIFT {
            return Err(FixedPointError::Shift { value: shift });
        }
        if !(1..=MAX_STORED_WIDTH).contains(&out_width) {
            return Err(FixedPointError::Width {
                field: "out_width",
                value: out_width,
                min: 1,
                max: MAX_STORED_WIDTH,
            });
        }
        Ok(Requant {
            mult,
            shift,
            rounding,
            overflow,
            out_width,
        })
    }

    /// The integer multiplier.
    pub fn mult(&self) -> i64 {
        self.mult
    }

    /// The right shift applied after the multiply.
    pub fn shift(&self) -> u32 {
        self.shift
    }

    /// The rounding of the shift.
    pub fn rounding(&self) -> RoundingMode {
        self.rounding
    }

    /// The narrowing to `out_width` bits.
    pub fn overflow(&self) -> OverflowMode {
        self.overflow
    }

    /// Bits of the result.
    pub fn out_width(&self) -> u32 {
        self.out_width
    }

    /// The real scale `mult · 2^−shift` this step applies.
    pub fn scale(&self) -> f64 {
        self.mult as f64 * 2f64.powi(-(self.shift as i32))
    }

    /// Bits of the smallest signed code holding `mult` (the Verilog `MULT_W`).
    pub fn mult_width(&self) -> u32 {
        (1..=64).find(|&w| fits(self.mult, w)).unwrap_or(64)
    }

    /// Applies the step to an accumulator value.
    #[inline]
    pub fn apply(&self, x: i64) -> i64 {
        requantize(
            x,
            self.mult,
            self.shift,
            self.rounding,
            self.overflow,
            self.out_width,
        )
    }

    /// The same step written with a larger shift, `mult · 2^(shift' − shift)` and `shift'`:
    /// it computes exactly the same function, because rounding depends only on the rational
    /// value `x · mult / 2^shift`. This is how a per-SNR-bin table of `(mult, shift)` pairs is
    /// brought to one common shift, so that hardware needs no variable shifter.
    pub fn with_shift(&self, shift: u32) -> Result<Self, FixedPointError> {
        if shift > MAX_SHIFT {
            return Err(FixedPointError::Shift { value: shift });
        }
        let rescale = FixedPointError::Rescale {
            mult: self.mult,
            from: self.shift,
            to: shift,
        };
        let Some(extra) = shift.checked_sub(self.shift) else {
            return Err(rescale);
        };
        // |mult| ≤ 2^31 and extra ≤ 63: the product is exact in i128.
        let mult = i128::from(self.mult) << extra;
        let Some(mult) = i64::try_from(mult)
            .ok()
            .filter(|&m| fits(m, MAX_MULT_WIDTH))
        else {
            return Err(rescale);
        };
        Requant::new(mult, shift, self.rounding, self.overflow, self.out_width)
    }
}
