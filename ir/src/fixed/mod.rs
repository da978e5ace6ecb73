//! Fixed-point arithmetic: the one normative implementation of the integer semantics of
//! `docs/fixed-point.md`, which the interpreter, the lowering and the RTL primitives all obey.
//!
//! * [`QFormat`]: the runtime descriptor of a stored tensor's two's-complement format.
//! * [`RoundingMode`] and [`OverflowMode`]: how a right shift rounds and how a value is narrowed.
//! * The primitives [`round_shift`], [`saturate`], [`saturate_symmetric`], [`wrap`],
//!   [`overflow`], [`requantize`] (and [`requantize_i64`], its `i64` form for products that
//!   fit), [`mac`] and [`dot`] on plain `i64` (`i128` inside where a
//!   product can exceed 64 bits), and [`Requant`], a validated requantization step.
//! * The named operations [`divide`] (and [`reciprocal`]) and [`isqrt`], with their validated
//!   steps [`Divide`] and [`Sqrt`] and bit-serial twins [`divide_restoring`] and
//!   [`isqrt_digit`] (docs/fixed-point.md §6).
//! * [`reference`]: a slow, obviously correct `i128` twin of every primitive, written without
//!   shifts or masks, against which the fast code is tested exhaustively for widths ≤ 8.
//!
//! Guarantees: every primitive is total over its documented domain (no overflow, no panic),
//! and its result is bit-identical to the matching `rtl-templates/primitives/` cell.

mod format;
mod isqrt;
mod ops;
mod recip;
pub mod reference;

#[cfg(test)]
mod named_tests;
#[cfg(test)]
mod tests;

pub use format::{
    FixedPointError, MAX_ACC_WIDTH, MAX_FRAC, MAX_MULT_WIDTH, MAX_SHIFT, MAX_STORED_WIDTH, QFormat,
    Requant,
};
pub use isqrt::{Sqrt, isqrt, isqrt_digit};
pub use ops::{
    OverflowMode, RoundingMode, dot, fits, mac, max_code, min_code, overflow, requantize,
    requantize_i64, requantize_wide, round_shift, round_shift_wide, saturate, saturate_symmetric,
    wrap,
};
pub use recip::{Divide, NamedOpError, divide, divide_restoring, reciprocal};
