//! The vocabulary shared by the IR and training: the unfolded architectures, the receiver's SNR
//! bins and the limits on bit widths, layers and antennas (docs/ir.md). Training imports these
//! from here, so an IR and the net it was lowered from can never disagree on them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Smallest bit width of a quantized tensor.
pub const MIN_BITS: u32 = 2;
/// Largest bit width of a quantized tensor (24 bits: every code is exact in f32).
pub const MAX_BITS: u32 = 24;
/// Widest activation (layer state) the command line trains (`kaq train`, `kaq compare`, the
/// flow); the library and the IR accept up to [`MAX_BITS`].
pub const MAX_ACTIVATION_BITS: u32 = 16;
/// Largest number of unfolded layers K.
pub const MAX_LAYERS: usize = 64;
/// Largest antenna count accepted on either side.
pub const MAX_ANTENNAS: usize = 256;
/// Largest number of SNR bins accepted.
pub const MAX_SNR_BINS: usize = 4096;

/// Errors of the shared vocabulary; each names the offending value.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum VocabError {
    /// A modulation name that is not one of bpsk, qpsk, 16qam, 64qam.
    #[error("unknown modulation `{0}` (expected one of: bpsk, qpsk, 16qam, 64qam)")]
    UnknownModulation(String),
    /// A name that is not one of the known kinds (an architecture, say).
    #[error("invalid detector `{spec}`: {reason}")]
    UnknownName {
        /// The name given.
        spec: String,
        /// Why it is refused.
        reason: String,
    },
    /// A count that must be positive, or is too large.
    #[error("invalid dimension {name} = {value}: {reason}")]
    InvalidDimension {
        /// Which count.
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
}

/// The unfolded algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Proximal gradient descent (paper eqs. 6–8).
    Pgd,
    /// Linearized ADMM.
    Admm,
}

impl Arch {
    const NAMES: [(Arch, &'static str); 2] = [(Arch::Pgd, "pgd"), (Arch::Admm, "admm")];
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Self::NAMES.iter().find(|(a, _)| a == self).map(|(_, n)| *n);
        f.write_str(name.unwrap_or_default())
    }
}

impl FromStr for Arch {
    type Err = VocabError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let want = s.trim().to_ascii_lowercase();
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == want)
            .map(|(a, _)| *a)
            .ok_or_else(|| VocabError::UnknownName {
                spec: s.to_string(),
                reason: format!(
                    "unknown architecture (expected one of: {})",
                    Self::NAMES.map(|(_, n)| n).join(", ")
                ),
            })
    }
}

/// The SNR bins the receiver reports to the hardware: bin i covers the SNR
/// `min_db + i·step_db` (its centre) ± step_db/2, i = 0..count.
///
/// bin(snr_db) = clamp(⌊(snr_db − min_db)/step_db + ½⌋, 0, count − 1): round half up, and SNRs
/// beyond either end use the end bin. Training and evaluation use the centre's SNR, so the
/// integer model's per-bin table is exactly what trained.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnrBins {
    /// Centre of the first bin in dB (default −10).
    pub min_db: f64,
    /// Bin width in dB (default 0.5).
    pub step_db: f64,
    /// Number of bins (default 101: −10 … 40 dB).
    pub count: usize,
}

impl Default for SnrBins {
    fn default() -> Self {
        Self {
            min_db: -10.0,
            step_db: 0.5,
            count: 101,
        }
    }
}

impl SnrBins {
    /// Checks finiteness, step_db > 0 and 1 ≤ count ≤ [`MAX_SNR_BINS`].
    pub fn validate(&self) -> Result<(), VocabError> {
        if !self.min_db.is_finite() || self.min_db.abs() > 100.0 {
            return Err(VocabError::InvalidParameter {
                name: "snr_bins.min_db",
                value: self.min_db,
                reason: "must be finite, within ±100 dB",
            });
        }
        if !(self.step_db.is_finite() && self.step_db > 0.0 && self.step_db <= 100.0) {
            return Err(VocabError::InvalidParameter {
                name: "snr_bins.step_db",
                value: self.step_db,
                reason: "must be positive and at most 100 dB",
            });
        }
        if self.count == 0 || self.count > MAX_SNR_BINS {
            return Err(VocabError::InvalidDimension {
                name: "snr_bins.count",
                value: self.count,
                reason: "must be between 1 and 4096",
            });
        }
        Ok(())
    }

    /// The bin of an SNR in dB (non-finite SNRs map to the nearest end: NaN to bin 0).
    pub fn bin(&self, snr_db: f64) -> usize {
        let pos = ((snr_db - self.min_db) / self.step_db + 0.5).floor();
        if pos.is_nan() || pos <= 0.0 {
            0
        } else {
            (pos as usize).min(self.count - 1)
        }
    }

    /// The bin of a frame whose complex noise variance (as the nets see it, in f32) is
    /// `noise_var`, at signal power `signal_var` per receive antenna (N_t/N_r·E_s):
    /// SNR = signal_var/σ², binned by [`SnrBins::bin`]. The one rule of the fake-quant nets and
    /// of both IR versions.
    pub fn bin_of_noise(&self, signal_var: f64, noise_var: f32) -> usize {
        self.bin(10.0 * (signal_var / f64::from(noise_var)).log10())
    }

    /// The centre SNR of bin `bin`, in dB.
    pub fn centre_db(&self, bin: usize) -> f64 {
        self.min_db + bin as f64 * self.step_db
    }

    /// SNR^{−1/2} (SNR linear) at the centre of bin `bin`: the factor of α in eq. 15.
    pub fn inv_sqrt_snr(&self, bin: usize) -> f32 {
        10f64.powf(-self.centre_db(bin) / 20.0) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names_round_trip_and_unknown_names_list_the_choices() {
        for a in [Arch::Pgd, Arch::Admm] {
            assert_eq!(a.to_string().parse::<Arch>().unwrap(), a);
        }
        assert_eq!(" PGD ".parse::<Arch>().unwrap(), Arch::Pgd);
        let err = "lista".parse::<Arch>().unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid detector `lista`: unknown architecture (expected one of: pgd, admm)"
        );
    }

    #[test]
    fn snr_bins_clamp_at_both_ends_and_refuse_bad_tables() {
        let b = SnrBins::default();
        assert_eq!(b.bin(f64::NAN), 0);
        assert_eq!(b.bin(-99.0), 0);
        assert_eq!(b.bin(99.0), 100);
        assert_eq!(b.bin(-9.75), 1);
        assert_eq!(b.bin(-9.76), 0);
        assert!(b.validate().is_ok());
        let zero = SnrBins { count: 0, ..b };
        assert!(matches!(
            zero.validate(),
            Err(VocabError::InvalidDimension {
                name: "snr_bins.count",
                ..
            })
        ));
        let flat = SnrBins { step_db: 0.0, ..b };
        assert!(flat.validate().is_err());
    }
}
