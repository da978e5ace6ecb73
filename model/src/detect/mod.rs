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
pub mod ops;

pub use kbest::{KBest, KBestVariant};
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

/// A classical detector named on the command line: `zf`, `mmse`, `kbest:K`, `kbest-reg:K`,
/// `kbest-zf:K` (the K-best variants of [`KBestVariant`]) or `ml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DetectorSpec {
    /// Zero forcing.
    Zf,
    /// Linear MMSE with the true noise variance.
    Mmse,
    /// Real-valued sorted-QR K-best sphere decoder keeping `k` candidates per level:
    /// `kbest:K`, `kbest-reg:K` or `kbest-zf:K`.
    KBest {
        /// Breadth, 1 ≤ k ≤ [`MAX_KBEST`].
        k: usize,
        /// Decomposition and metric.
        variant: KBestVariant,
    },
    /// Exhaustive maximum likelihood (small systems only).
    Ml,
}

impl std::fmt::Display for DetectorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Zf => f.write_str("zf"),
            Self::Mmse => f.write_str("mmse"),
            Self::KBest { k, variant } => write!(f, "{}:{k}", variant.prefix()),
            Self::Ml => f.write_str("ml"),
        }
    }
}

/// The parse error's list of valid detector names.
const EXPECTED: &str = "expected one of zf, mmse, kbest:K, kbest-reg:K, kbest-zf:K, ml";

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
                "kbest" | "kbest-reg" | "kbest-zf" => {
                    Err(err(format!("K-best needs a breadth, e.g. {lower}:32")))
                }
                _ => Err(err(EXPECTED.into())),
            },
            Some((prefix, k)) => {
                let variant = KBestVariant::ALL
                    .into_iter()
                    .find(|m| m.prefix() == prefix)
                    .ok_or_else(|| err(EXPECTED.into()))?;
                let k: usize = k
                    .parse()
                    .map_err(|_| err(format!("K-best breadth `{k}` is not a positive integer")))?;
                if k == 0 || k > MAX_KBEST {
                    return Err(err(format!(
                        "K-best breadth must be between 1 and {MAX_KBEST}"
                    )));
                }
                Ok(Self::KBest { k, variant })
            }
        }
    }
}

impl DetectorSpec {
    /// The detector this specification names (fast kernels for ZF and MMSE).
    pub fn build(&self) -> Box<dyn Detector> {
        match *self {
            Self::Zf => Box::new(LinearDetector::zf()),
            Self::Mmse => Box::new(LinearDetector::mmse()),
            Self::KBest { k, variant } => Box::new(KBest::with_variant(k, variant)),
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
        for s in [
            "zf",
            "mmse",
            "kbest:32",
            "kbest-reg:32",
            "kbest-zf:32",
            "ml",
        ] {
            assert_eq!(s.parse::<DetectorSpec>().unwrap().to_string(), s);
        }
        assert_eq!(
            "KBest:8".parse::<DetectorSpec>().unwrap(),
            DetectorSpec::KBest {
                k: 8,
                variant: KBestVariant::Mmse
            }
        );
        assert_eq!(
            " kbest-ZF:8".parse::<DetectorSpec>().unwrap(),
            DetectorSpec::KBest {
                k: 8,
                variant: KBestVariant::Zf
            }
        );
        for bad in [
            "kbest:0",
            "kbest-zf:0",
            "kbest-reg:0",
            "kbest",
            "kbest-zf",
            "kbest:x",
            "kbest-zf:-1",
            "kbest-mmse:8",
            "foo",
            "zf:1",
            "",
        ] {
            let e = bad.parse::<DetectorSpec>().unwrap_err().to_string();
            assert!(e.contains(bad.trim()), "{bad}: {e}");
        }
        let e = "kbest-zf".parse::<DetectorSpec>().unwrap_err().to_string();
        assert!(e.contains("kbest-zf:32"), "{e}");
    }

    #[test]
    fn build_names_the_detector_it_parsed() {
        for s in [
            "zf",
            "mmse",
            "kbest:32",
            "kbest-reg:32",
            "kbest-zf:32",
            "ml",
        ] {
            let spec: DetectorSpec = s.parse().unwrap();
            assert_eq!(spec.build().name(), s);
        }
    }
}
