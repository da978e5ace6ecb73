//! Detectors: the one [`Detector`] trait every detector of kaq implements — the classical
//! references here, and later the unfolded nets, the integer golden model and the RTL.
//!
//! A detector turns a [`FrameBatch`] into hard decisions: one alphabet level (an odd integer)
//! per real dimension of every frame, `frames × n` values in frame order.

use crate::error::ModelError;
use crate::link::FrameBatch;

pub mod kbest;
pub mod linear;
pub mod ml;

pub use kbest::KBest;
pub use linear::{Kernel, LinearDetector, LinearKind};
pub use ml::{ML_MAX_CANDIDATES, Ml, ml_metric};

/// A MIMO detector producing hard decisions for a batch of frames.
pub trait Detector: Send + Sync {
    /// A short name for tables, plots and JSON (for example `mmse` or `kbest:32`).
    fn name(&self) -> String;

    /// Writes the hard decision (alphabet level) of every real dimension of every frame into
    /// `decisions`, which holds `batch.frames × batch.n` values.
    fn detect(&self, batch: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError>;
}

/// Largest K-best breadth accepted.
pub const MAX_KBEST: usize = 1 << 16;

/// A classical detector named on the command line: `zf`, `mmse`, `kbest:K` or `ml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DetectorSpec {
    /// Zero forcing.
    Zf,
    /// Linear MMSE with the true noise variance.
    Mmse,
    /// Real-valued sorted-QR K-best sphere decoder keeping `k` candidates per level.
    KBest {
        /// Breadth, 1 ≤ k ≤ [`MAX_KBEST`].
        k: usize,
    },
    /// Exhaustive maximum likelihood (small systems only).
    Ml,
}

impl std::fmt::Display for DetectorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Zf => f.write_str("zf"),
            Self::Mmse => f.write_str("mmse"),
            Self::KBest { k } => write!(f, "kbest:{k}"),
            Self::Ml => f.write_str("ml"),
        }
    }
}

impl std::str::FromStr for DetectorSpec {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ModelError::InvalidDetector {
            spec: s.to_string(),
            reason,
        };
        let lower = s.trim().to_ascii_lowercase();
        match lower.split_once(':') {
            None => match lower.as_str() {
                "zf" => Ok(Self::Zf),
                "mmse" => Ok(Self::Mmse),
                "ml" => Ok(Self::Ml),
                "kbest" => Err(err("K-best needs a breadth, e.g. kbest:32".into())),
                _ => Err(err("expected one of zf, mmse, kbest:K, ml".into())),
            },
            Some(("kbest", k)) => {
                let k: usize = k
                    .parse()
                    .map_err(|_| err(format!("K-best breadth `{k}` is not a positive integer")))?;
                if k == 0 || k > MAX_KBEST {
                    return Err(err(format!(
                        "K-best breadth must be between 1 and {MAX_KBEST}"
                    )));
                }
                Ok(Self::KBest { k })
            }
            Some(_) => Err(err("expected one of zf, mmse, kbest:K, ml".into())),
        }
    }
}

impl DetectorSpec {
    /// The detector this specification names (fast kernels for ZF and MMSE).
    pub fn build(&self) -> Box<dyn Detector> {
        match *self {
            Self::Zf => Box::new(LinearDetector::zf()),
            Self::Mmse => Box::new(LinearDetector::mmse()),
            Self::KBest { k } => Box::new(KBest::new(k)),
            Self::Ml => Box::new(Ml),
        }
    }
}

/// Checks that a batch is internally consistent: its dimensions match its link and its
/// buffers hold `frames` frames. Detectors call this before touching any frame, so a batch
/// assembled by hand with the wrong shape is an error rather than a panic.
pub fn check_batch(batch: &FrameBatch) -> Result<(), ModelError> {
    let (m, n) = (batch.link.m(), batch.link.n());
    if batch.m != m || batch.n != n {
        return Err(ModelError::Shape(format!(
            "batch is {} × {} but its link ({} × {}, {}) needs {m} × {n}",
            batch.m, batch.n, batch.link.nr, batch.link.nt, batch.link.modulation
        )));
    }
    let frames = batch.frames;
    for (name, len, per_frame) in [
        ("h", batch.h.len(), m * n),
        ("y", batch.y.len(), m),
        ("noise_var", batch.noise_var.len(), 1),
    ] {
        if len != frames * per_frame {
            return Err(ModelError::Shape(format!(
                "batch.{name} holds {len} values, {frames} frames need {}",
                frames * per_frame
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod spec_tests {
    use super::*;

    #[test]
    fn parses_and_displays_specs() {
        for s in ["zf", "mmse", "kbest:32", "ml"] {
            assert_eq!(s.parse::<DetectorSpec>().unwrap().to_string(), s);
        }
        for bad in ["kbest:0", "kbest", "kbest:x", "foo", "zf:1", ""] {
            assert!(bad.parse::<DetectorSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn build_names_the_detector_it_parsed() {
        for s in ["zf", "mmse", "kbest:32", "ml"] {
            let spec: DetectorSpec = s.parse().unwrap();
            assert_eq!(spec.build().name(), s);
        }
    }
}
