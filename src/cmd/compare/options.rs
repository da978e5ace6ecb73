//! The arguments of `kaq compare` and their validated plan.

use crate::cmd::args::{
    parse_antennas, parse_bits, parse_epsilon, parse_from_str, parse_layers, parse_lr,
    parse_positive, parse_snr_db, parse_threads, usage_error,
};
use std::path::PathBuf;

use clap::Args;
use kaq_model::ber::BerConfig;
use kaq_model::gram::Family;
use kaq_model::mmd::KernelMode;
use kaq_model::quant::kaq::{DEFAULT_EPSILON, DEFAULT_KERNEL, KaqConfig};
use kaq_model::quant::{QuantConfig, QuantMethod, QuantTrainConfig};
use kaq_model::train::TrainConfig;
use kaq_model::unfolded::{Arch, Init, NetConfig, Prox};
use kaq_model::{Detector, FrameBatch, LinkConfig, ModelError, Modulation};

use crate::cmd::ber::{SnrPoints, parse_snr};

/// One column of the comparison: the f32 teacher or a quantization method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The f32 teacher.
    Fp32,
    /// A quantization method.
    Quant(QuantMethod),
}

/// Arguments of `kaq compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Architecture: pgd or admm (unfolded nets), or cg or oamp (Gram-domain families).
    #[arg(long, value_parser = parse_arch, default_value = "pgd", conflicts_with = "teacher")]
    pub(super) arch: ArchChoice,

    /// Inner steps per layer of the cg family [default: 4].
    #[arg(long, value_parser = parse_positive, conflicts_with = "teacher")]
    pub(super) inner: Option<usize>,

    /// Proximal operator of every layer: soft, box or qam.
    #[arg(long, value_parser = parse_from_str::<Prox>, default_value = "soft",
          conflicts_with = "teacher")]
    pub(super) prox: Prox,

    /// Unfolded layers K.
    #[arg(long, value_parser = parse_layers, default_value_t = 5, conflicts_with = "teacher")]
    pub(super) layers: usize,

    /// Add a learnable heavy-ball momentum term to every layer.
    #[arg(long, conflicts_with = "teacher")]
    pub(super) momentum: bool,

    /// Initial estimate x⁽⁰⁾: zero or mf.
    #[arg(long, value_parser = parse_from_str::<Init>, default_value = "zero",
          conflicts_with = "teacher")]
    pub(super) init: Init,

    /// Activation bit widths, comma separated (2 to 24).
    #[arg(long, value_delimiter = ',', value_parser = parse_bits, default_value = "8,6,4")]
    pub(super) bits: Vec<u32>,

    /// Methods, comma separated: fp32, ptq, qat-mse, lsq, kaq [default: all of them; for cg
    /// fp32,ptq,qat-mse].
    #[arg(long, value_delimiter = ',', value_parser = parse_method)]
    pub(super) methods: Option<Vec<Method>>,

    /// Transmit antennas, 1 to 256.
    #[arg(long, value_parser = parse_antennas, default_value_t = 16, conflicts_with = "teacher")]
    pub(super) nt: usize,

    /// Receive antennas, 1 to 256.
    #[arg(long, value_parser = parse_antennas, default_value_t = 16, conflicts_with = "teacher")]
    pub(super) nr: usize,

    /// Modulation: bpsk, qpsk, 16qam, 64qam.
    #[arg(long = "mod", value_parser = parse_from_str::<Modulation>, default_value = "16qam",
          conflicts_with = "teacher")]
    pub(super) modulation: Modulation,

    /// f32 training epochs.
    #[arg(long, value_parser = parse_positive, default_value_t = 50)]
    pub(super) epochs: usize,

    /// Training samples (f32 and quantized runs).
    #[arg(long, value_parser = parse_positive, default_value_t = 50_000)]
    pub(super) samples: usize,

    /// Validation samples.
    #[arg(long, value_parser = parse_positive, default_value_t = 5_000)]
    pub(super) val_samples: usize,

    /// Minibatch size.
    #[arg(long, value_parser = parse_positive, default_value_t = 128)]
    pub(super) batch: usize,

    /// Initial f32 learning rate.
    #[arg(long, value_parser = parse_lr, default_value_t = 1e-3)]
    pub(super) lr: f64,

    /// The f32 learning rate halves every this many epochs.
    #[arg(long, value_parser = parse_positive, default_value_t = 10)]
    pub(super) lr_step: usize,

    /// Training SNRs in dB, comma separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_snr_db, allow_hyphen_values = true,
          default_value = "0,5,10,15,20,25")]
    pub(super) train_snr: Vec<f64>,

    /// SNRs in dB of the per-epoch validation BER (the accuracy plot), comma separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_snr_db, allow_hyphen_values = true,
          default_value = "0,10,20")]
    pub(super) val_snr: Vec<f64>,

    /// Frames per validation-BER SNR.
    #[arg(long, value_parser = parse_positive, default_value_t = 2_000)]
    pub(super) val_frames: usize,

    /// Fine-tuning epochs of every quantized run (default: the quantized-training default).
    #[arg(long, value_parser = parse_positive)]
    pub(super) quant_epochs: Option<usize>,

    /// Initial learning rate of the quantized runs (default: the quantized-training default).
    #[arg(long, value_parser = parse_lr)]
    pub(super) quant_lr: Option<f64>,

    /// KAQ: weight of the MMD term, loss = MSE + E * sum_k MMD^2 (finite, >= 0).
    #[arg(long, value_name = "E", value_parser = parse_epsilon, default_value_t = DEFAULT_EPSILON,
          allow_hyphen_values = true)]
    pub(super) epsilon: f64,

    /// KAQ: MMD kernel bandwidths: learnable, median or multi.
    #[arg(long, value_parser = parse_from_str::<KernelMode>, default_value_t = DEFAULT_KERNEL)]
    pub(super) kernel: KernelMode,

    /// Calibration samples (default: the quantized-training default).
    #[arg(long, value_parser = parse_positive)]
    pub(super) calibration_samples: Option<usize>,

    /// BER SNR points in dB: `start:stop:step` or a comma list.
    #[arg(long, value_parser = parse_snr, default_value = "0:25:5", allow_hyphen_values = true)]
    pub(super) snr: SnrPoints,

    /// A BER point stops once a detector has this many bit errors.
    #[arg(long, value_parser = parse_positive_u64, default_value = "1000")]
    pub(super) min_errors: u64,

    /// A BER point never simulates more than this many frames.
    #[arg(long, value_parser = parse_positive_u64, default_value = "200000")]
    pub(super) max_frames: u64,

    /// Samples of the fixed batch whose activations are histogrammed.
    #[arg(long, value_parser = parse_positive, default_value_t = 1_000)]
    pub(super) hist_samples: usize,

    /// Seed of the data sets, sample order and BER frames.
    #[arg(long, default_value_t = 1)]
    pub(super) seed: u64,

    /// Use this trained f32 model (a `kaq train` file) as the teacher instead of training one;
    /// the link and architecture come from it.
    #[arg(long, value_name = "PATH")]
    pub(super) teacher: Option<PathBuf>,

    /// The report directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub(super) out: PathBuf,

    /// Write into a non-empty report directory, replacing kaq's own files there and reusing
    /// models whose config matches.
    #[arg(long)]
    pub(super) force: bool,

    /// Worker threads (default: all cores). Does not change the results.
    #[arg(long, value_parser = parse_threads)]
    pub(super) threads: Option<usize>,
}

pub(super) fn parse_positive_u64(s: &str) -> Result<u64, String> {
    parse_positive(s).map(|n| n as u64)
}

/// What `--arch` names: an unfolded direct-form net or a Gram-domain family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchChoice {
    /// PGD-Net or ADMM-Net.
    Unfolded(Arch),
    /// A Gram-domain family (only cg has quantized forms).
    Gram(Family),
}

fn parse_arch(s: &str) -> Result<ArchChoice, String> {
    if let Ok(arch) = s.parse::<Arch>() {
        return Ok(ArchChoice::Unfolded(arch));
    }
    s.parse::<Family>().map(ArchChoice::Gram).map_err(|_| {
        format!("unknown architecture `{s}` (expected one of: pgd, admm, ep, oamp, cg)")
    })
}

/// Why the cg family has no LSQ student.
pub(super) const CG_UNSUPPORTED: &str = "IR v2 and v4 hold power-of-two formats only, so \
     LSQ's learned step does not lower to them; its power-of-two form is not implemented";

pub(super) fn parse_method(s: &str) -> Result<Method, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "fp32" | "f32" => Ok(Method::Fp32),
        other => other.parse().map(Method::Quant).map_err(|_| {
            format!("unknown method `{s}` (expected one of: fp32, ptq, qat-mse, lsq, kaq)")
        }),
    }
}

/// One quantized run of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RunKey {
    pub(super) method: QuantMethod,
    pub(super) bits: u32,
}

impl RunKey {
    /// Column and legend label, for example `kaq@4`.
    pub(super) fn label(self) -> String {
        format!("{}@{}", self.method, self.bits)
    }

    pub(super) fn file_name(self) -> String {
        format!("{}-{}bit.json", self.method, self.bits)
    }
}

/// The label of the f32 teacher.
pub(super) const FP32: &str = "fp32";

/// A detector under the comparison's label.
pub(super) struct Labelled<'a> {
    pub(super) label: String,
    pub(super) inner: &'a dyn Detector,
}

impl Detector for Labelled<'_> {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn detect(&self, batch: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError> {
        self.inner.detect(batch, decisions)
    }
}

/// The validated plan of a comparison.
#[derive(Debug)]
pub(super) struct Plan {
    /// How the teacher was trained (its file's config when loaded with `--teacher`).
    pub(super) teacher_config: TrainConfig,
    /// The data and seed of the quantized runs: the command's data flags on the teacher's link
    /// and net (equal to `teacher_config` apart from the schedule when the teacher is trained
    /// here).
    pub(super) data: TrainConfig,
    pub(super) runs: Vec<RunKey>,
    pub(super) ber: BerConfig,
    pub(super) out: PathBuf,
}

impl CompareArgs {
    /// The quantization methods of the run, in order and without repeats: `--methods`, or
    /// every method the family has. A method the family lacks, or a family without quantized
    /// forms, is a usage error.
    pub(super) fn quant_methods(&self) -> anyhow::Result<Vec<QuantMethod>> {
        let family = match self.arch {
            ArchChoice::Unfolded(_) => None,
            ArchChoice::Gram(f @ (Family::Cg | Family::Oamp)) => Some(f),
            ArchChoice::Gram(f) => {
                return Err(usage_error(
                    "--arch",
                    format!(
                        "{f}: the {f} family has no quantized forms yet \
                         (kaq compare takes pgd, admm, cg or oamp)"
                    ),
                ));
            }
        };
        let supported = |q: QuantMethod| {
            family.is_none()
                || matches!(q, QuantMethod::Ptq | QuantMethod::QatMse | QuantMethod::Kaq)
        };
        let requested = match &self.methods {
            Some(m) => m.clone(),
            None => [
                QuantMethod::Ptq,
                QuantMethod::QatMse,
                QuantMethod::Lsq,
                QuantMethod::Kaq,
            ]
            .into_iter()
            .filter(|&q| supported(q))
            .map(Method::Quant)
            .collect(),
        };
        let mut methods = Vec::new();
        for m in requested {
            if let Method::Quant(q) = m {
                if !supported(q) {
                    return Err(usage_error(
                        "--methods",
                        format!(
                            "{q} is not available for the {f} family ({CG_UNSUPPORTED}); \
                                 {f} takes fp32, ptq, qat-mse, kaq",
                            f = family.expect("only a Gram family lacks a method")
                        ),
                    ));
                }
                if let Some(f) = family
                    && q == QuantMethod::Kaq
                    && self.kernel == KernelMode::Learnable
                {
                    return Err(usage_error(
                        "--kernel",
                        format!(
                            "learnable bandwidths are not implemented for the {f} family's KAQ \
                             (median or multi)"
                        ),
                    ));
                }
                if !methods.contains(&q) {
                    methods.push(q);
                }
            }
        }
        Ok(methods)
    }

    pub(super) fn teacher_config(&self, link: LinkConfig, net: NetConfig) -> TrainConfig {
        TrainConfig {
            link,
            net,
            samples: self.samples,
            val_samples: self.val_samples,
            batch: self.batch,
            epochs: self.epochs,
            lr: self.lr,
            lr_step: self.lr_step,
            seed: self.seed,
            snr_db: self.train_snr.clone(),
            val_ber_snr_db: self.val_snr.clone(),
            val_ber_frames: self.val_frames,
        }
    }

    /// The config of one quantized run: the teacher's data with the quantized schedule; every
    /// other field (for example KAQ's loss options) keeps its default.
    // The struct update keeps fields added to `QuantTrainConfig` later at their defaults.
    #[allow(clippy::needless_update)]
    pub(super) fn quant_config(&self, teacher: &TrainConfig, bits: u32) -> QuantTrainConfig {
        let defaults = QuantTrainConfig::default();
        let train = TrainConfig {
            epochs: self.quant_epochs.unwrap_or(defaults.train.epochs),
            lr: self.quant_lr.unwrap_or(defaults.train.lr),
            lr_step: defaults.train.lr_step,
            ..teacher.clone()
        };
        QuantTrainConfig {
            train,
            quant: QuantConfig::with_activation_bits(bits),
            calibration_samples: self
                .calibration_samples
                .unwrap_or(defaults.calibration_samples),
            kaq: KaqConfig {
                epsilon: self.epsilon,
                kernel: self.kernel,
            },
            ..defaults
        }
    }
}
