//! The `kaq flow` configuration (docs/flow.md): its sections with their defaults, the
//! conversions to each stage's own config, and the validation of the whole before any work.

use std::fs;
use std::path::Path;

use anyhow::{Context, bail};
use kaq_model::ber::BerConfig;
use kaq_model::detect::DetectorSpec;
use kaq_model::lower::LowerOptions;
use kaq_model::mmd::KernelMode;
use kaq_model::quant::kaq::{DEFAULT_EPSILON, DEFAULT_KERNEL, KaqConfig};
use kaq_model::quant::{QuantMethod, QuantTrainConfig};
use kaq_model::train::TrainConfig;
use kaq_model::unfolded::{Arch, Init, NetConfig, Prox};
use kaq_model::{LinkConfig, Modulation};
use serde::{Deserialize, Serialize};

/// The link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkSection {
    /// Transmit antennas.
    pub nt: usize,
    /// Receive antennas.
    pub nr: usize,
    /// bpsk, qpsk, 16qam or 64qam.
    pub modulation: Modulation,
    /// Block fading: frames per channel block (1, the default, is left out of the JSON).
    #[serde(skip_serializing_if = "is_one")]
    pub block: usize,
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

impl Default for LinkSection {
    fn default() -> Self {
        Self {
            nt: 16,
            nr: 16,
            modulation: Modulation::Qam16,
            block: 1,
        }
    }
}

/// The unfolded net.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetSection {
    /// pgd or admm.
    pub arch: Arch,
    /// soft, box or qam.
    pub prox: Prox,
    /// Layers K.
    pub layers: usize,
    /// Heavy-ball momentum.
    pub momentum: bool,
    /// zero or mf.
    pub init: Init,
}

impl Default for NetSection {
    fn default() -> Self {
        let d = NetConfig::default();
        Self {
            arch: d.arch,
            prox: d.prox,
            layers: d.layers,
            momentum: d.momentum,
            init: d.init,
        }
    }
}

/// f32 training (the paper's protocol by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// Training samples.
    pub samples: usize,
    /// Validation samples.
    pub val_samples: usize,
    /// Minibatch size.
    pub batch: usize,
    /// Epochs.
    pub epochs: usize,
    /// Initial Adam learning rate.
    pub lr: f64,
    /// The learning rate halves every this many epochs.
    pub lr_step: usize,
    /// Seed of every random stream.
    pub seed: u64,
    /// Training SNRs in dB.
    pub snr_db: Vec<f64>,
}

impl Default for TrainSection {
    fn default() -> Self {
        let d = TrainConfig::default();
        Self {
            samples: d.samples,
            val_samples: d.val_samples,
            batch: d.batch,
            epochs: d.epochs,
            lr: d.lr,
            lr_step: d.lr_step,
            seed: d.seed,
            snr_db: d.snr_db,
        }
    }
}

/// Quantization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuantSection {
    /// ptq, qat-mse, lsq or kaq.
    pub method: QuantMethod,
    /// Activation bits.
    pub bits: u32,
    /// Fine-tuning epochs.
    pub epochs: usize,
    /// Fine-tuning learning rate.
    pub lr: f64,
    /// The learning rate halves every this many epochs.
    pub lr_step: usize,
    /// KAQ's ε.
    pub epsilon: f64,
    /// KAQ's kernel bandwidths: median, multi or learnable.
    pub kernel: String,
    /// Signed bits of the IR's requantization multipliers.
    pub mult_bits: u32,
}

impl Default for QuantSection {
    fn default() -> Self {
        let d = QuantTrainConfig::default();
        Self {
            method: QuantMethod::Kaq,
            bits: 8,
            epochs: d.train.epochs,
            lr: d.train.lr,
            lr_step: d.train.lr_step,
            epsilon: DEFAULT_EPSILON,
            kernel: DEFAULT_KERNEL.to_string(),
            mult_bits: LowerOptions::default().mult_bits,
        }
    }
}

/// The generated RTL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtlSection {
    /// MAC lanes per layer stage (must divide N).
    pub lanes: usize,
    /// Top module name.
    pub top: String,
    /// Frames in the generated testbench.
    pub testbench_frames: usize,
    /// Yosys target for the resource report: generic, ice40, xilinx or none.
    pub synth: String,
    /// Seconds Yosys may run before it is stopped (the summary says so).
    pub synth_limit_s: u64,
}

impl Default for RtlSection {
    fn default() -> Self {
        let d = kaq_codegen::Options::default();
        Self {
            lanes: d.lanes,
            top: d.top,
            testbench_frames: d.testbench_frames,
            synth: "xilinx".to_string(),
            synth_limit_s: 600,
        }
    }
}

/// Co-simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CosimSection {
    /// Frames co-simulated (0 skips the stage).
    pub frames: usize,
    /// Probability of an input stall per cycle.
    pub stall_prob: f64,
    /// Seed of the frames and stalls.
    pub seed: u64,
}

impl Default for CosimSection {
    fn default() -> Self {
        Self {
            frames: 2000,
            stall_prob: 0.2,
            seed: 1,
        }
    }
}

/// The BER curves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BerSection {
    /// SNR points in dB.
    pub snr_db: Vec<f64>,
    /// A point stops at this many bit errors per detector.
    pub min_errors: u64,
    /// A point never uses more frames than this.
    pub max_frames: u64,
    /// Classical references (`kaq ber --detector` specs).
    pub references: Vec<String>,
    /// Seed.
    pub seed: u64,
}

impl Default for BerSection {
    fn default() -> Self {
        Self {
            snr_db: vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0],
            min_errors: 1000,
            max_frames: 200_000,
            references: vec!["mmse".to_string(), "kbest:32".to_string()],
            seed: 1,
        }
    }
}

/// The whole `kaq flow` configuration (docs/flow.md).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowConfig {
    /// The link.
    pub link: LinkSection,
    /// The net.
    pub net: NetSection,
    /// f32 training.
    pub train: TrainSection,
    /// Quantization and lowering.
    pub quant: QuantSection,
    /// RTL generation and synthesis.
    pub rtl: RtlSection,
    /// Co-simulation.
    pub cosim: CosimSection,
    /// BER curves.
    pub ber: BerSection,
}

impl FlowConfig {
    /// Reads a config file; unknown fields are refused with their name.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("--config {}: cannot read", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("--config {}", path.display()))
    }

    pub(super) fn link(&self) -> anyhow::Result<LinkConfig> {
        Ok(
            LinkConfig::new(self.link.nt, self.link.nr, self.link.modulation)?
                .with_block(self.link.block)?,
        )
    }

    pub(super) fn net(&self) -> NetConfig {
        NetConfig {
            arch: self.net.arch,
            prox: self.net.prox,
            layers: self.net.layers,
            momentum: self.net.momentum,
            init: self.net.init,
        }
    }

    pub(super) fn f32_config(&self) -> anyhow::Result<TrainConfig> {
        let t = &self.train;
        Ok(TrainConfig {
            link: self.link()?,
            net: self.net(),
            samples: t.samples,
            val_samples: t.val_samples,
            batch: t.batch,
            epochs: t.epochs,
            lr: t.lr,
            lr_step: t.lr_step,
            seed: t.seed,
            snr_db: t.snr_db.clone(),
            ..TrainConfig::default()
        })
    }

    /// The quantized run's config: `kaq train --quant` with the f32 run's data flags.
    pub(super) fn kernel(&self) -> anyhow::Result<KernelMode> {
        self.quant
            .kernel
            .parse()
            .map_err(|e| anyhow::anyhow!("config quant.kernel: {e}"))
    }

    pub(super) fn quant_config(&self, f32: &TrainConfig) -> QuantTrainConfig {
        let q = &self.quant;
        let train = TrainConfig {
            epochs: q.epochs,
            lr: q.lr,
            lr_step: q.lr_step,
            ..f32.clone()
        };
        let kaq = KaqConfig {
            epsilon: q.epsilon,
            kernel: self.kernel().unwrap_or(DEFAULT_KERNEL),
        };
        QuantTrainConfig::fine_tuning(train, q.bits, kaq)
    }

    pub(super) fn codegen_options(&self) -> kaq_codegen::Options {
        kaq_codegen::Options {
            lanes: self.rtl.lanes,
            top: self.rtl.top.clone(),
            testbench_frames: self.rtl.testbench_frames,
            seed: 1,
        }
    }

    /// Checks everything that can be checked before any work.
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        let f32 = self.f32_config().context("config link")?;
        self.kernel()?;
        if !(self.quant.epsilon.is_finite() && self.quant.epsilon >= 0.0) {
            bail!(
                "config quant.epsilon = {}: must be finite and ≥ 0",
                self.quant.epsilon
            );
        }
        f32.validate().context("config train")?;
        crate::cmd::args::parse_bits(&self.quant.bits.to_string())
            .map_err(|e| anyhow::anyhow!("config quant.bits = {}: {e}", self.quant.bits))?;
        self.quant_config(&f32)
            .quant
            .validate()
            .context("config quant.bits")?;
        if !(8..=32).contains(&self.quant.mult_bits) {
            bail!(
                "config quant.mult_bits = {}: must be 8..=32",
                self.quant.mult_bits
            );
        }
        kaq_codegen::check_top_name(&self.rtl.top).context("config rtl.top")?;
        let n = f32.link.n();
        if kaq_codegen::resolve_lanes(n, Some(self.rtl.lanes)).is_err() {
            bail!(
                "config rtl.lanes = {}: must divide N = {n} (the row length of H)",
                self.rtl.lanes
            );
        }
        if !["generic", "ice40", "xilinx", "none"].contains(&self.rtl.synth.as_str()) {
            bail!(
                "config rtl.synth = {:?}: expected generic, ice40, xilinx or none",
                self.rtl.synth
            );
        }
        if !(0.0..1.0).contains(&self.cosim.stall_prob) {
            bail!(
                "config cosim.stall_prob = {}: must be in [0, 1)",
                self.cosim.stall_prob
            );
        }
        for spec in &self.ber.references {
            spec.parse::<DetectorSpec>()
                .with_context(|| format!("config ber.references: {spec}"))?;
        }
        BerConfig::new(
            f32.link.clone(),
            self.ber.snr_db.clone(),
            self.ber.min_errors,
            self.ber.max_frames,
            self.ber.seed,
        )
        .validate()
        .context("config ber")?;
        Ok(())
    }
}
