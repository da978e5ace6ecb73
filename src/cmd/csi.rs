//! The channel options shared by `kaq ber` and `kaq train` (docs/channels.md): what the
//! detectors know of the channel.
//!
//! `--csi perfect|ls|lmmse` (default `perfect`), `--pilots L` (pilot length L_p ≥ Nt, default
//! Nt) and `--pilot-power P` (pilot symbol energy relative to the data symbol energy Es,
//! default 1). With `ls` or `lmmse` the link draws `y` through the true channel and the
//! detectors (and training) see the estimate Ĥ from one pilot transmission per channel block.
//! `perfect` leaves every result bit-identical to a run without these flags.
//!
//! `--channels FILE` draws the channels from a `.npy` dataset ([`kaq_model::channel::dataset`])
//! and `--channel-norm per-file|as-is` says how the SNR applies to them. A bad value or a bad
//! dataset ends with status 2 naming the flag (and the file, and the offending index).
//!
//! `--doppler FD` adds Clarke/Jakes time variation within each channel block
//! ([`kaq_model::channel::doppler`]); it needs `--block` above 1 and the random channel models.
//!
//! A model file records its training dataset by name and SHA-256, not its channels;
//! [`reload_dataset`] loads them again for the commands that draw frames on a model's own link
//! (`kaq train --quant`, `kaq lower --ptq-bits`).

use std::path::Path;

use clap::{Args, ValueEnum};
use kaq_model::LinkConfig;
use kaq_model::channel::Csi;
use kaq_model::channel::dataset::{self, ChannelNorm};

use super::args::usage_error;

/// Which channel estimate the detectors get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CsiKind {
    /// The true channel.
    Perfect,
    /// Least squares from orthogonal pilots.
    Ls,
    /// Linear MMSE from orthogonal pilots and the channel model's covariance.
    Lmmse,
}

/// The channel-knowledge flags.
#[derive(Debug, Clone, Args)]
pub struct CsiArgs {
    /// Channel state information the detectors get: perfect, or LS / LMMSE estimates from
    /// orthogonal pilots sent at the start of every channel block.
    #[arg(long, value_enum, default_value = "perfect")]
    pub csi: CsiKind,

    /// Pilot length L_p (at least Nt) for --csi ls|lmmse [default: Nt].
    #[arg(long, value_name = "L")]
    pub pilots: Option<String>,

    /// Pilot symbol energy relative to the data symbol energy Es, > 0 [default: 1].
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    pub pilot_power: Option<String>,

    /// Draw the channels from a dataset: a `.npy` file of shape [n, Nr, Nt] (complex64 or
    /// complex128) or [n, Nr, Nt, 2] (float32/float64 re/im pairs); each channel block takes
    /// one of its channels uniformly at random.
    #[arg(long, value_name = "FILE")]
    pub channels: Option<std::path::PathBuf>,

    /// How the SNR applies to dataset channels: per-file scales the file so its mean ‖H‖_F² is
    /// Nt (the i.i.d. model's), as-is uses the stored values [default: per-file].
    #[arg(long, value_enum)]
    pub channel_norm: Option<NormKind>,

    /// Normalized Doppler f_D·T_s (T_s the frame duration), 0 to 0.5: the true channel moves
    /// frame by frame within each --block (Clarke/Jakes) while the detectors keep the CSI of
    /// the block's first frame [default: 0, block fading].
    #[arg(long, value_name = "FD", allow_hyphen_values = true)]
    pub doppler: Option<String>,
}

/// The `--channel-norm` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NormKind {
    /// One scale per file: mean ‖H‖_F² = Nt.
    PerFile,
    /// The stored values.
    AsIs,
}

impl CsiArgs {
    /// The CSI these flags ask for on a link with `nt` transmit antennas; a bad value is a
    /// usage error naming its flag.
    pub fn csi(&self, nt: usize) -> anyhow::Result<Csi> {
        let pilots = match &self.pilots {
            None => nt,
            Some(text) => {
                let n: usize = text.trim().parse().map_err(|_| {
                    usage_error("--pilots", format!("`{text}` is not a whole number"))
                })?;
                if n < nt || n > kaq_model::channel::csi::MAX_PILOTS {
                    return Err(usage_error(
                        "--pilots",
                        format!(
                            "orthogonal pilots need a length between Nt = {nt} and {}, got {n}",
                            kaq_model::channel::csi::MAX_PILOTS
                        ),
                    ));
                }
                n
            }
        };
        let pilot_power = match &self.pilot_power {
            None => 1.0,
            Some(text) => {
                let v: f64 = text.trim().parse().map_err(|_| {
                    usage_error("--pilot-power", format!("`{text}` is not a number"))
                })?;
                if !v.is_finite() || v <= 0.0 || v > kaq_model::channel::csi::MAX_PILOT_POWER {
                    return Err(usage_error(
                        "--pilot-power",
                        format!("pilot power must be finite, positive and at most 1e6, got {text}"),
                    ));
                }
                v
            }
        };
        if self.csi == CsiKind::Perfect && (self.pilots.is_some() || self.pilot_power.is_some()) {
            let flag = if self.pilots.is_some() {
                "--pilots"
            } else {
                "--pilot-power"
            };
            return Err(usage_error(
                flag,
                "pilots are sent only with --csi ls or --csi lmmse",
            ));
        }
        Ok(match self.csi {
            CsiKind::Perfect => Csi::Perfect,
            CsiKind::Ls => Csi::Ls {
                pilots,
                pilot_power,
            },
            CsiKind::Lmmse => Csi::Lmmse {
                pilots,
                pilot_power,
            },
        })
    }

    /// `link` with the dataset and the CSI of these flags.
    pub fn apply(&self, link: LinkConfig) -> anyhow::Result<LinkConfig> {
        let link = match &self.channels {
            None => {
                if self.channel_norm.is_some() {
                    return Err(usage_error(
                        "--channel-norm",
                        "applies only to dataset channels (--channels FILE)",
                    ));
                }
                link
            }
            Some(path) => {
                if link.channel != kaq_model::ChannelModel::Rayleigh {
                    return Err(usage_error(
                        "--channels",
                        format!(
                            "{}: dataset channels carry their own correlation; leave \
                             --rho-tx and --rho-rx at 0",
                            path.display()
                        ),
                    ));
                }
                let norm = match self.channel_norm.unwrap_or(NormKind::PerFile) {
                    NormKind::PerFile => ChannelNorm::PerFile,
                    NormKind::AsIs => ChannelNorm::AsIs,
                };
                let dataset = dataset::load(path, link.nr, link.nt, norm)
                    .map_err(|e| usage_error("--channels", e))?;
                link.with_dataset(dataset)
                    .map_err(|e| usage_error("--channels", e))?
            }
        };
        let link = match &self.doppler {
            None => link,
            Some(text) => {
                let fd: f64 = text
                    .trim()
                    .parse()
                    .map_err(|_| usage_error("--doppler", format!("`{text}` is not a number")))?;
                let link = link
                    .with_doppler(fd)
                    .map_err(|e| usage_error("--doppler", e))?;
                // The block and dataset checks of a moving channel.
                link.validate().map_err(|e| usage_error("--doppler", e))?;
                link
            }
        };
        let csi = self.csi(link.nt)?;
        Ok(link.with_csi(csi)?)
    }
}

/// `link`, a model file's link, with the channels of its training dataset loaded again from
/// `channels` (the `--channels` flag): the file must be the one the model recorded (equal
/// SHA-256), read with the recorded normalization. A link without a dataset takes no
/// `--channels`, and a link with one needs it; either mismatch is a usage error naming
/// `--channels`.
pub fn reload_dataset(link: &LinkConfig, channels: Option<&Path>) -> anyhow::Result<LinkConfig> {
    match (&link.dataset, channels) {
        (None, None) => Ok(link.clone()),
        (None, Some(path)) => Err(usage_error(
            "--channels",
            format!(
                "{}: the model was trained on the random channel model, not on a dataset; \
                 its link has no channels to load",
                path.display()
            ),
        )),
        (Some(d), None) => Err(usage_error(
            "--channels",
            format!(
                "the model was trained on dataset {} (SHA-256 {}); pass --channels FILE to \
                 load its channels again",
                d.file, d.sha256
            ),
        )),
        (Some(d), Some(path)) => {
            let loaded = dataset::load(path, link.nr, link.nt, d.norm)
                .map_err(|e| usage_error("--channels", e))?;
            if loaded.sha256 != d.sha256 {
                return Err(usage_error(
                    "--channels",
                    format!(
                        "{} (SHA-256 {}) is not the model's dataset {} (SHA-256 {})",
                        path.display(),
                        loaded.sha256,
                        d.file,
                        d.sha256
                    ),
                ));
            }
            let mut plain = link.clone();
            plain.dataset = None;
            plain
                .with_dataset(loaded)
                .map_err(|e| usage_error("--channels", e))
        }
    }
}
