//! The error type of kaq-model. Every variant names the offending field or value.

use thiserror::Error;

/// Errors returned by kaq-model.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ModelError {
    /// A modulation name that is not one of bpsk, qpsk, 16qam, 64qam.
    #[error("unknown modulation `{0}` (expected one of: bpsk, qpsk, 16qam, 64qam)")]
    UnknownModulation(String),
    /// A dimension that must be positive, or is too large.
    #[error("invalid dimension {name} = {value}: {reason}")]
    InvalidDimension {
        /// Which dimension.
        name: &'static str,
        /// The value given.
        value: usize,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A numeric parameter outside its allowed range or not finite.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        /// Which parameter.
        name: &'static str,
        /// The value given.
        value: f64,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A name of a setting that is none of its allowed values (a quantization method, a prox,
    /// a kernel mode): the message names the setting, not "detector".
    #[error("unknown {what} `{given}` (expected one of: {expected})")]
    UnknownName {
        /// The setting, e.g. `quantization method`.
        what: &'static str,
        /// The value given.
        given: String,
        /// The allowed values, comma separated.
        expected: String,
    },
    /// A detector or model name or specification that could not be parsed.
    #[error("invalid detector `{spec}`: {reason}")]
    InvalidDetector {
        /// The specification given.
        spec: String,
        /// Why it is refused.
        reason: String,
    },
    /// A batch whose shape does not fit the detector.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A detector that failed on a frame (for example a singular matrix).
    #[error("detector {detector} failed on frame {frame}: {reason}")]
    DetectFailed {
        /// The detector's name.
        detector: String,
        /// The frame within the batch.
        frame: usize,
        /// What went wrong.
        reason: String,
    },
    /// An invalid fixed-point format or requantization step.
    #[error("invalid fixed-point descriptor: {0}")]
    FixedPoint(#[from] crate::fixed::FixedPointError),
    /// A non-finite value where a finite one is required.
    #[error("non-finite value in {0}")]
    NonFinite(String),
}

impl From<kaq_ir::VocabError> for ModelError {
    /// Each variant becomes the one of the same name, with the same message.
    fn from(e: kaq_ir::VocabError) -> Self {
        use kaq_ir::VocabError as V;
        match e {
            V::UnknownModulation(s) => Self::UnknownModulation(s),
            V::UnknownName { spec, reason } => Self::InvalidDetector { spec, reason },
            V::InvalidDimension {
                name,
                value,
                reason,
            } => Self::InvalidDimension {
                name,
                value,
                reason,
            },
            V::InvalidParameter {
                name,
                value,
                reason,
            } => Self::InvalidParameter {
                name,
                value,
                reason,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaq_ir::VocabError;

    /// A vocabulary error reads the same after the conversion.
    #[test]
    fn vocabulary_errors_keep_their_message() {
        for e in [
            VocabError::UnknownModulation("8psk".into()),
            VocabError::UnknownName {
                spec: "x".into(),
                reason: "unknown architecture".into(),
            },
            VocabError::InvalidDimension {
                name: "snr_bins.count",
                value: 0,
                reason: "must be between 1 and 4096",
            },
            VocabError::InvalidParameter {
                name: "snr_bins.step_db",
                value: -1.0,
                reason: "must be positive",
            },
        ] {
            let text = e.to_string();
            assert_eq!(ModelError::from(e).to_string(), text);
        }
    }
}
