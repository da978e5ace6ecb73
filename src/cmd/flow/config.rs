//! The `kaq flow` configuration (docs/flow.md): its sections with their defaults, the
//! conversions to each stage's own config, and the validation of the whole before any work.

use std::fs;
use std::path::Path;

use anyhow::Context;
use kaq_model::ber::BerConfig;
use kaq_model::detect::DetectorSpec;
use kaq_model::gram::train::GramTrainConfig;
use kaq_model::gram::{Family, GramConfig};
use kaq_model::mmd::KernelMode;
use kaq_model::quant::kaq::{DEFAULT_EPSILON, DEFAULT_KERNEL, KaqConfig};
use kaq_model::quant::{QuantMethod, QuantTrainConfig};
use kaq_model::train::TrainConfig;
use kaq_model::train::TrainError;
use kaq_model::unfolded::{Arch, Init, NetConfig, Prox};
use kaq_model::{Detector, LinkConfig, ModelError, Modulation};
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

/// What `net.arch` names: an unfolded direct-form net (pgd, admm: IR v1, one MAC stage per
/// layer) or the Gram-domain unfolded CG net (cg: IR v2, the folded engine with a per-channel
/// stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetArch {
    /// PGD-Net (the paper's).
    Pgd,
    /// ADMM-Net.
    Admm,
    /// The inverse-free unfolded conjugate-gradient net (`kaq train --arch cg`).
    Cg,
}

impl std::fmt::Display for NetArch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pgd => "pgd",
            Self::Admm => "admm",
            Self::Cg => "cg",
        })
    }
}

impl NetArch {
    /// The unfolded architecture, `None` for cg.
    pub fn unfolded(self) -> Option<Arch> {
        match self {
            Self::Pgd => Some(Arch::Pgd),
            Self::Admm => Some(Arch::Admm),
            Self::Cg => None,
        }
    }
}

impl From<Arch> for NetArch {
    fn from(a: Arch) -> Self {
        match a {
            Arch::Pgd => Self::Pgd,
            Arch::Admm => Self::Admm,
        }
    }
}

/// The flow's net when the config names none: the Gram-domain cg net, the best detector whose
/// 8-bit integer model is within 0.5 dB of its f32 net (docs/quantization-results.md) and the
/// only lowered one that beats MMSE. [`FlowConfig::default`] is the paper's flow whatever it
/// is; a config read by [`FlowConfig::from_value`] gets the defaults of its net
/// ([`arch_defaults`]), so `{}` is the cg flow while `{"net": {"arch": "pgd", "prox": "soft"}}`
/// stays the paper's.
pub const DEFAULT_ARCH: NetArch = NetArch::Cg;

/// The cg engine's MAC lanes when `rtl.lanes` is left out: the row-wise lanes keep P_vec
/// within 2 % of the multiply bound at 8 (docs/rtl.md), at a synthesis time that fits the flow.
pub const CG_DEFAULT_LANES: usize = 8;

/// The defaults that differ from [`FlowConfig::default`] (the paper's flow) for `arch`, as the
/// JSON fields they fill in. cg: cg-k8-l4 trained as docs/f32-nets.md (`scripts/measure-gram.sh`:
/// 2·10⁴ samples, 8 epochs at lr 1e-2 halved every 3, SNRs 15–27 dB), channel blocks of
/// T = 14 (one resource block of OFDM symbols), the 8-bit KAQ student of
/// docs/quantization-results.md (per-bin steps, format refinement and 8 epochs of MMD
/// fine-tuning at lr 2e-3 halved every 2: within 0.01 dB of f32 at 1e-2), BER points up to
/// 30 dB (where MMSE crosses 1e-2).
pub fn arch_defaults_of(arch: NetArch) -> serde_json::Value {
    match arch {
        NetArch::Cg => serde_json::json!({
            "link": {"block": 14},
            "net": {"layers": 8, "inner": 4},
            "train": {"samples": 20000, "val_samples": 2000, "epochs": 8, "lr": 0.01,
                      "lr_step": 3, "snr_db": [15, 18, 21, 24, 27]},
            "quant": {"method": "kaq", "epochs": 8, "lr": 0.002, "lr_step": 2},
            "ber": {"snr_db": [0, 5, 10, 15, 20, 25, 30]},
        }),
        _ => serde_json::json!({}),
    }
}

/// The net.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetSection {
    /// pgd, admm or cg.
    pub arch: NetArch,
    /// soft, box or qam (pgd and admm).
    pub prox: Prox,
    /// Layers K.
    pub layers: usize,
    /// Heavy-ball momentum (pgd and admm).
    pub momentum: bool,
    /// zero or mf (pgd and admm).
    pub init: Init,
    /// Inner CG steps L per layer (cg only; left out of the JSON for pgd and admm).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner: Option<usize>,
}

impl Default for NetSection {
    fn default() -> Self {
        let d = NetConfig::default();
        Self {
            arch: d.arch.into(),
            prox: d.prox,
            layers: d.layers,
            momentum: d.momentum,
            init: d.init,
            inner: None,
        }
    }
}

/// Fields that do not apply to the cg net, by section: given with `net.arch` cg, they are
/// refused naming them.
const NOT_FOR_CG: [(&str, &[&str]); 3] = [
    ("net", &["prox", "momentum", "init"]),
    ("quant", &["mult_bits"]),
    ("rtl", &["clock_mhz", "testbench_frames"]),
];

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

/// The flow's `quant.mult_bits`: 14-bit multipliers and coefficients put the update's
/// products on one DSP48E1 slice each (a 25 × 18 port pair; `kaq lower` keeps 24 by default)
/// with the default design's BER unchanged within its confidence interval (docs/synthesis.md).
pub const FLOW_MULT_BITS: u32 = 14;

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
            mult_bits: FLOW_MULT_BITS,
        }
    }
}

/// The generated RTL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtlSection {
    /// MAC lanes per layer stage (must divide N); by default what `kaq codegen` picks, the
    /// largest divisor of N up to 8.
    pub lanes: Option<usize>,
    /// Top module name.
    pub top: String,
    /// Frames in the generated testbench.
    pub testbench_frames: usize,
    /// Yosys target for the resource report: generic, ice40, xilinx or none.
    pub synth: String,
    /// Seconds Yosys may run before it is stopped (the summary says so).
    pub synth_limit_s: u64,
    /// Target clock in MHz: the update lanes get the pipeline registers (0 to 2) the clock
    /// estimate needs (`kaq codegen --clock-mhz`); none when absent.
    pub clock_mhz: Option<f64>,
}

impl Default for RtlSection {
    fn default() -> Self {
        let d = kaq_codegen::Options::default();
        Self {
            lanes: None,
            top: d.top,
            testbench_frames: d.testbench_frames,
            synth: "xilinx".to_string(),
            synth_limit_s: 600,
            clock_mhz: None,
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
    /// Reads and validates a config file: the whole configuration is checked here, before any
    /// stage runs; the error names the field's path (`ber.snr_db[0]`).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("--config {}: cannot read", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("--config {}: not JSON", path.display()))?;
        Ok(Self::from_value(value)?)
    }

    /// A configuration from its JSON: its shape checked against the default configuration's
    /// (objects where it has objects, no unknown fields at any depth, arrays, numbers, strings
    /// and booleans where it has them), then read and validated.
    pub fn from_value(mut value: serde_json::Value) -> Result<Self, FieldError> {
        shape(&value, &default_shape(), "")?;
        arch_defaults(&mut value)?;
        let mut config: Self = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            FieldError::new(if path == "." { "" } else { &path }, e.inner())
        })?;
        config.validate()?;
        // The lanes a run used are recorded with its configuration (flow.json).
        config.rtl.lanes = Some(config.lanes());
        Ok(config)
    }

    pub(super) fn link(&self) -> anyhow::Result<LinkConfig> {
        Ok(
            LinkConfig::new(self.link.nt, self.link.nr, self.link.modulation)?
                .with_block(self.link.block)?,
        )
    }

    /// Whether the net is the Gram-domain cg net (IR v2).
    pub(super) fn is_cg(&self) -> bool {
        self.net.arch == NetArch::Cg
    }

    /// The cg net's training config (`kaq train --arch cg`).
    pub(super) fn gram_config(&self) -> anyhow::Result<GramTrainConfig> {
        let f32 = self.f32_config()?;
        let link = self.frame_link()?;
        let mut net = GramConfig::new(Family::Cg, self.net.layers);
        net.inner = self.net.inner.unwrap_or(net.inner);
        Ok(GramTrainConfig {
            link,
            net,
            samples: f32.samples,
            val_samples: f32.val_samples,
            batch: f32.batch,
            epochs: f32.epochs,
            lr: f32.lr,
            lr_step: f32.lr_step,
            seed: f32.seed,
            snr_db: f32.snr_db,
            val_ber_snr_db: f32.val_ber_snr_db,
            val_ber_frames: f32.val_ber_frames,
        })
    }

    /// The cg student's fine-tuning config: the f32 run's data with the quant section's
    /// epochs and learning rate (`kaq train --quant qat-mse --teacher f32.json`).
    pub(super) fn gram_quant_config(&self, f32: &GramTrainConfig) -> GramTrainConfig {
        GramTrainConfig {
            epochs: self.quant.epochs,
            lr: self.quant.lr,
            lr_step: self.quant.lr_step,
            ..f32.clone()
        }
    }

    /// The paper's PGD-Net on the flow's link, trained by the paper's protocol (the defaults of
    /// `kaq train`) with the flow's `train.seed`: the reference a cg flow's BER run shows
    /// beside MMSE and K-best.
    pub(super) fn paper_config(&self) -> anyhow::Result<TrainConfig> {
        Ok(TrainConfig {
            link: self.frame_link()?,
            seed: self.train.seed,
            ..TrainConfig::default()
        })
    }

    /// The link with a channel per frame, on which a cg flow trains and measures BER: the
    /// detectors' decisions do not depend on the block length, and a channel per frame keeps
    /// the bits of a BER point independent, as its 95 % Wilson interval assumes. `link.block`
    /// is the hardware's channel block (cycle model, co-simulation).
    pub(super) fn frame_link(&self) -> anyhow::Result<LinkConfig> {
        Ok(LinkConfig::new(
            self.link.nt,
            self.link.nr,
            self.link.modulation,
        )?)
    }

    pub(super) fn net(&self) -> NetConfig {
        NetConfig {
            arch: self.net.arch.unfolded().unwrap_or(Arch::Pgd),
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
        self.quant.kernel.parse().map_err(|_| {
            anyhow::anyhow!(
                "{:?}: expected one of learnable, median, multi",
                self.quant.kernel
            )
        })
    }

    pub(super) fn quant_config(&self, f32: &TrainConfig) -> QuantTrainConfig {
        let q = &self.quant;
        let train = TrainConfig {
            epochs: q.epochs,
            lr: q.lr,
            lr_step: q.lr_step,
            ..f32.clone()
        };
        QuantTrainConfig::fine_tuning(train, q.bits, self.kaq_config())
    }

    /// KAQ's MMD settings: `quant.epsilon` and `quant.kernel` (validated before any work).
    pub(super) fn kaq_config(&self) -> KaqConfig {
        KaqConfig {
            epsilon: self.quant.epsilon,
            kernel: self.kernel().unwrap_or(DEFAULT_KERNEL),
        }
    }

    /// MAC lanes per layer stage: `rtl.lanes`, by default what `kaq codegen` picks for the
    /// link (the largest divisor of N up to 8: 8 on the default 16×16 16-QAM link).
    pub(super) fn lanes(&self) -> usize {
        if self.is_cg() {
            return self.rtl.lanes.unwrap_or(CG_DEFAULT_LANES);
        }
        let n =
            LinkConfig::new(self.link.nt, self.link.nr, self.link.modulation).map_or(1, |l| l.n());
        self.rtl
            .lanes
            .unwrap_or_else(|| kaq_codegen::default_lanes(n))
    }

    /// The update pipeline flag of `kaq codegen` and `kaq report` for the unfolded nets:
    /// `--clock-mhz F` for `rtl.clock_mhz`, else the deepest update pipeline of the
    /// architecture (`--update-pipeline 2`, ADMM-Net 1), the flow's default.
    pub(super) fn pipeline_flag(&self) -> String {
        match self.rtl.clock_mhz {
            Some(f) => format!("--clock-mhz {f}"),
            None => format!("--update-pipeline {}", self.default_update_pipeline()),
        }
    }

    /// The update pipeline without `rtl.clock_mhz`: the architecture's deepest (2 for
    /// PGD-Net, 1 for ADMM-Net), which gives the most Mb/s per (LUT + 100·DSP) on the
    /// default design (docs/synthesis.md).
    pub(super) fn default_update_pipeline(&self) -> u64 {
        if self.net.arch == NetArch::Admm { 1 } else { 2 }
    }

    pub(super) fn codegen_options(&self) -> kaq_codegen::Options {
        kaq_codegen::Options {
            lanes: self.lanes(),
            top: self.rtl.top.clone(),
            testbench_frames: self.rtl.testbench_frames,
            seed: 1,
        }
    }
}

/// A configuration error: the path of the field at fault (`rtl.lanes`, `ber.snr_db[0]`; empty
/// for the whole document) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    fn new(path: &str, message: impl std::fmt::Display) -> Self {
        Self {
            path: path.to_string(),
            message: message.to_string(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "config: {}", self.message)
        } else {
            write!(f, "config field {}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for FieldError {}

/// The shape every config is checked against: the default configuration as JSON, with the
/// fields its serialization leaves out at their default added back.
fn default_shape() -> serde_json::Value {
    let mut shape = serde_json::to_value(FlowConfig::default()).expect("the default serializes");
    shape["link"]["block"] = serde_json::json!(1);
    shape["net"]["inner"] = serde_json::Value::Null;
    shape
}

/// Fills in the defaults that depend on `net.arch` ([`arch_defaults_of`]) for the fields `value`
/// leaves out, and refuses the fields that do not apply to its net ([`NOT_FOR_CG`]; `net.inner`
/// for pgd and admm). `value` has the shape of the default configuration.
fn arch_defaults(value: &mut serde_json::Value) -> Result<(), FieldError> {
    use serde_json::{Value, json};
    let Value::Object(doc) = value else {
        return Ok(());
    };
    let arch = match doc.get("net").and_then(|n| n.get("arch")) {
        None => DEFAULT_ARCH,
        Some(a) => serde_path_to_error::deserialize::<_, NetArch>(a.clone())
            .map_err(|e| FieldError::new("net.arch", e.inner()))?,
    };
    let given = |doc: &serde_json::Map<String, Value>, section: &str, field: &str| {
        doc.get(section)
            .and_then(|s| s.get(field))
            .is_some_and(|v| !v.is_null())
    };
    if arch == NetArch::Cg {
        for (section, fields) in NOT_FOR_CG {
            if let Some(field) = fields.iter().find(|f| given(doc, section, f)) {
                return Err(FieldError::new(
                    &child(section, field),
                    "does not apply to net.arch cg (the Gram-domain net: no prox, momentum or \
                     init; no multiplier width, its products are as wide as their operands' \
                     formats (docs/ir.md §10.6); the folded engine has no clock plan and no \
                     testbench)",
                ));
            }
        }
    } else if given(doc, "net", "inner") {
        return Err(FieldError::new(
            "net.inner",
            format!("only net.arch cg has inner steps (net.arch is {arch})"),
        ));
    }
    if let Value::Object(net) = doc.entry("net").or_insert_with(|| json!({})) {
        net.entry("arch").or_insert(json!(arch));
    }
    let Value::Object(patch) = arch_defaults_of(arch) else {
        return Ok(());
    };
    for (section, fields) in patch {
        let Value::Object(fields) = fields else {
            continue;
        };
        if let Value::Object(s) = doc.entry(section).or_insert_with(|| json!({})) {
            for (field, v) in fields {
                if s.get(&field).is_none_or(Value::is_null) {
                    s.insert(field, v);
                }
            }
        }
    }
    Ok(())
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Checks that `v` has the shape of `reference` (a value of the default configuration):
/// an object where it has an object, with only its fields; an array where it has an array,
/// each element of the shape of its first (any element when it is empty); a non-negative
/// integer where it has one, a number, string or boolean where it has one; a `null` accepts
/// anything (the field's own type decides). Serde alone would read a struct from an array by
/// position.
fn shape(
    v: &serde_json::Value,
    reference: &serde_json::Value,
    path: &str,
) -> Result<(), FieldError> {
    use serde_json::Value;
    let wrong = |expected: &str| {
        let what = if path.is_empty() {
            "the configuration"
        } else {
            "this field"
        };
        Err(FieldError::new(
            path,
            format!("{what} must be {expected}, found {}", kind(v)),
        ))
    };
    match reference {
        Value::Null => Ok(()),
        Value::Object(fields) => {
            let Value::Object(given) = v else {
                return wrong("an object {…}");
            };
            for (key, value) in given {
                let path = child(path, key);
                let Some(reference) = fields.get(key) else {
                    let known: Vec<&str> = fields.keys().map(String::as_str).collect();
                    return Err(FieldError::new(
                        &path,
                        format!("unknown field (expected one of {})", known.join(", ")),
                    ));
                };
                shape(value, reference, &path)?;
            }
            Ok(())
        }
        Value::Array(items) => {
            let Value::Array(given) = v else {
                return wrong("an array […]");
            };
            if let Some(first) = items.first() {
                for (i, value) in given.iter().enumerate() {
                    shape(value, first, &format!("{path}[{i}]"))?;
                }
            }
            Ok(())
        }
        Value::Number(n) if n.is_u64() => {
            if v.is_u64() {
                Ok(())
            } else {
                wrong("a non-negative integer")
            }
        }
        Value::Number(_) if v.is_number() => Ok(()),
        Value::Number(_) => wrong("a number"),
        Value::String(_) if v.is_string() => Ok(()),
        Value::String(_) => wrong("a string"),
        Value::Bool(_) if v.is_boolean() => Ok(()),
        Value::Bool(_) => wrong("true or false"),
    }
}

/// The name a model error gives the field it refuses, if any.
fn model_field(e: &ModelError) -> Option<&'static str> {
    match e {
        ModelError::InvalidDimension { name, .. } | ModelError::InvalidParameter { name, .. } => {
            Some(name)
        }
        _ => None,
    }
}

/// A model error as the field error of `section`: `section.name` when the error names a field
/// of that section, else `fallback`.
fn model_error(e: &ModelError, section: &str, fields: &[&str], fallback: &str) -> FieldError {
    match model_field(e) {
        Some(name) if fields.contains(&name) => FieldError::new(&child(section, name), e),
        _ => FieldError::new(fallback, e),
    }
}

/// Every SNR of `list` finite and within ±100 dB (the rule of every `--snr` flag).
fn check_snrs(list: &[f64], path: &str) -> Result<(), FieldError> {
    if list.is_empty() {
        return Err(FieldError::new(path, "needs at least one SNR"));
    }
    for (i, &v) in list.iter().enumerate() {
        if !v.is_finite() || v.abs() > 100.0 {
            return Err(FieldError::new(
                &format!("{path}[{i}]"),
                format!("{} dB: an SNR must be finite and within ±100 dB", number(v)),
            ));
        }
    }
    Ok(())
}

/// A number for a message: plain, or in scientific notation when it is very large or small.
fn number(v: f64) -> String {
    if v != 0.0 && v.is_finite() && !(1e-4..1e6).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

/// The largest co-simulation batch: its frames are held in memory before they run.
pub(super) const MAX_COSIM_FRAMES: usize = 1_000_000;

/// The longest channel block of the cg design (its block length port `blk_t` has 16 bits).
pub(super) const MAX_CG_BLOCK: usize = 65_535;

impl FlowConfig {
    /// Checks everything that can be checked before any work; the error names the field.
    fn validate(&self) -> Result<(), FieldError> {
        let link = LinkConfig::new(self.link.nt, self.link.nr, self.link.modulation)
            .and_then(|l| l.with_block(self.link.block))
            .map_err(|e| model_error(&e, "link", &["nt", "nr", "block"], "link"))?;
        check_snrs(&self.train.snr_db, "train.snr_db")?;
        if self.is_cg() {
            self.validate_cg()?;
        } else {
            self.validate_unfolded(&link)?;
        }
        kaq_codegen::check_top_name(&self.rtl.top).map_err(|e| FieldError::new("rtl.top", e))?;
        self.validate_common(&link)
    }

    /// The train, quant and rtl fields of a cg flow.
    fn validate_cg(&self) -> Result<(), FieldError> {
        let f32 = self
            .gram_config()
            .map_err(|e| FieldError::new("link", format!("{e:#}")))?;
        let train_error = |section: &str, e: TrainError| match &e {
            TrainError::Config { field, .. }
                if [
                    "samples",
                    "val_samples",
                    "batch",
                    "epochs",
                    "lr",
                    "lr_step",
                    "snr_db",
                ]
                .contains(field) =>
            {
                FieldError::new(&child(section, field), &e)
            }
            TrainError::Model(m) => match model_field(m) {
                Some(name @ ("layers" | "inner")) => FieldError::new(&child("net", name), &e),
                Some(name @ ("nt" | "nr" | "block")) => FieldError::new(&child("link", name), &e),
                _ => FieldError::new("net", &e),
            },
            _ => FieldError::new(section, &e),
        };
        f32.validate().map_err(|e| train_error("train", e))?;
        if self.quant.method == QuantMethod::Lsq {
            return Err(FieldError::new(
                "quant.method",
                "lsq: net.arch cg quantizes by ptq, qat-mse or kaq (lsq does not exist for the \
                 cg net)",
            ));
        }
        if self.quant.method == QuantMethod::Kaq {
            let kernel = self
                .kernel()
                .map_err(|e| FieldError::new("quant.kernel", format!("{e:#}")))?;
            if kernel == KernelMode::Learnable {
                return Err(FieldError::new(
                    "quant.kernel",
                    "learnable: the cg net's KAQ takes median or multi bandwidths (learnable \
                     ones are not implemented for the cg family)",
                ));
            }
            if !(self.quant.epsilon.is_finite() && self.quant.epsilon >= 0.0) {
                return Err(FieldError::new(
                    "quant.epsilon",
                    format!("{}: must be finite and ≥ 0", self.quant.epsilon),
                ));
            }
        }
        if !(2..=12).contains(&self.quant.bits) {
            return Err(FieldError::new(
                "quant.bits",
                format!("{}: net.arch cg quantizes to 2 to 12 bits", self.quant.bits),
            ));
        }
        if self.quant.method != QuantMethod::Ptq {
            self.gram_quant_config(&f32)
                .validate()
                .map_err(|e| train_error("quant", e))?;
        }
        if !(1..=kaq_codegen::gram::MAX_LANES).contains(&self.lanes()) {
            return Err(FieldError::new(
                "rtl.lanes",
                format!(
                    "{}: the cg design takes 1 to {} MAC lanes",
                    self.lanes(),
                    kaq_codegen::gram::MAX_LANES
                ),
            ));
        }
        if self.link.block > MAX_CG_BLOCK {
            return Err(FieldError::new(
                "link.block",
                format!(
                    "{}: an IR v2 block holds at most {MAX_CG_BLOCK} vectors (16-bit blk_t)",
                    self.link.block
                ),
            ));
        }
        Ok(())
    }

    /// The train, quant and rtl fields of a pgd or admm flow.
    fn validate_unfolded(&self, link: &LinkConfig) -> Result<(), FieldError> {
        let f32 = self
            .f32_config()
            .map_err(|e| FieldError::new("link", format!("{e:#}")))?;
        let train_fields = [
            "samples",
            "val_samples",
            "batch",
            "epochs",
            "lr",
            "lr_step",
            "snr_db",
        ];
        f32.validate().map_err(|e| match &e {
            TrainError::Config { field, .. } if train_fields.contains(field) => {
                FieldError::new(&child("train", field), &e)
            }
            TrainError::Model(m) => match model_field(m) {
                Some("layers") => FieldError::new("net.layers", &e),
                Some(name @ ("nt" | "nr" | "block")) => FieldError::new(&child("link", name), &e),
                _ => FieldError::new("net", &e),
            },
            _ => FieldError::new("train", &e),
        })?;
        self.kernel()
            .map_err(|e| FieldError::new("quant.kernel", format!("{e:#}")))?;
        if !(self.quant.epsilon.is_finite() && self.quant.epsilon >= 0.0) {
            return Err(FieldError::new(
                "quant.epsilon",
                format!("{}: must be finite and ≥ 0", self.quant.epsilon),
            ));
        }
        crate::cmd::args::parse_bits(&self.quant.bits.to_string())
            .map_err(|e| FieldError::new("quant.bits", e))?;
        let quant = self.quant_config(&f32);
        quant
            .quant
            .validate()
            .map_err(|e| FieldError::new("quant.bits", e))?;
        quant.train.validate().map_err(|e| match &e {
            TrainError::Config { field, .. } if ["epochs", "lr", "lr_step"].contains(field) => {
                FieldError::new(&child("quant", field), &e)
            }
            _ => FieldError::new("quant", &e),
        })?;
        if !(8..=32).contains(&self.quant.mult_bits) {
            return Err(FieldError::new(
                "quant.mult_bits",
                format!("{}: must be 8..=32", self.quant.mult_bits),
            ));
        }
        let n = link.n();
        if kaq_codegen::resolve_lanes(n, self.rtl.lanes).is_err() {
            return Err(FieldError::new(
                "rtl.lanes",
                format!(
                    "{}: must be at least 1 and divide N = {n} (the row length of H)",
                    self.lanes()
                ),
            ));
        }
        if let Some(f) = self.rtl.clock_mhz
            && !(f.is_finite() && f > 0.0 && f <= 2000.0)
        {
            return Err(FieldError::new(
                "rtl.clock_mhz",
                format!("must be a clock in MHz in (0, 2000], got {f}"),
            ));
        }
        if !(1..=100_000).contains(&self.rtl.testbench_frames) {
            return Err(FieldError::new(
                "rtl.testbench_frames",
                format!(
                    "{}: must be between 1 and 100000",
                    self.rtl.testbench_frames
                ),
            ));
        }
        Ok(())
    }

    /// The fields every flow checks alike: synthesis, co-simulation and the BER run.
    fn validate_common(&self, link: &LinkConfig) -> Result<(), FieldError> {
        if !["generic", "ice40", "xilinx", "none"].contains(&self.rtl.synth.as_str()) {
            return Err(FieldError::new(
                "rtl.synth",
                format!(
                    "{:?}: expected generic, ice40, xilinx or none",
                    self.rtl.synth
                ),
            ));
        }
        if self.rtl.synth_limit_s == 0 {
            return Err(FieldError::new(
                "rtl.synth_limit_s",
                "0: Yosys needs at least 1 s",
            ));
        }
        if self.cosim.frames > MAX_COSIM_FRAMES {
            return Err(FieldError::new(
                "cosim.frames",
                format!(
                    "{}: must be at most {MAX_COSIM_FRAMES} (0 skips the stage)",
                    self.cosim.frames
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.cosim.stall_prob) {
            return Err(FieldError::new(
                "cosim.stall_prob",
                format!("{}: must be in [0, 1)", self.cosim.stall_prob),
            ));
        }
        check_snrs(&self.ber.snr_db, "ber.snr_db")?;
        let ber = BerConfig::new(
            link.clone(),
            self.ber.snr_db.clone(),
            self.ber.min_errors,
            self.ber.max_frames,
            self.ber.seed,
        );
        ber.validate()
            .map_err(|e| model_error(&e, "ber", &["snr_db", "min_errors", "max_frames"], "ber"))?;
        for (i, spec) in self.ber.references.iter().enumerate() {
            let path = format!("ber.references[{i}]");
            let detector = spec
                .parse::<DetectorSpec>()
                .map_err(|e| FieldError::new(&path, e))?
                .build();
            fits(&*detector, &ber).map_err(|e| {
                FieldError::new(&path, format!("{spec} cannot run on this link: {e}"))
            })?;
        }
        Ok(())
    }
}

/// Runs `detector` on one frame of the BER link, so that a reference unable to handle the link
/// (exhaustive ML on a large system, ZF with Nt > Nr) is refused before any stage runs.
fn fits(detector: &dyn Detector, ber: &BerConfig) -> Result<(), ModelError> {
    let mut generator = ber.link.generator()?;
    let batch = generator.generate(
        &ber.snr_db[..1],
        &mut kaq_model::link::stream_rng(ber.seed, u64::MAX),
    );
    let mut decisions = vec![0; batch.n];
    detector.detect(&batch, &mut decisions)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codegen stage's key holds its options: the paper's flow's must be what they were
    /// when `rtl.lanes` defaulted to a fixed 8, so an existing `out/` stays up to date.
    #[test]
    fn the_default_link_keeps_its_codegen_options() {
        let config = FlowConfig::from_value(serde_json::json!({"net": {"arch": "pgd"}})).unwrap();
        assert_eq!(config.codegen_options(), kaq_codegen::Options::default());
        assert_eq!(config.rtl.lanes, Some(8));
    }

    /// `net.arch` cg fills in its own defaults (cg-k8-l4, T = 14, QAT-MSE, one lane) for the
    /// fields left out, keeps the ones given, and leaves the pgd defaults alone; naming pgd
    /// gives the paper's flow whatever [`DEFAULT_ARCH`] is.
    #[test]
    fn the_cg_net_has_its_own_defaults() {
        let cg = FlowConfig::from_value(serde_json::json!({"net": {"arch": "cg"}})).unwrap();
        assert_eq!(
            (cg.net.layers, cg.net.inner, cg.link.block),
            (8, Some(4), 14)
        );
        assert_eq!(cg.quant.method, QuantMethod::Kaq);
        assert_eq!(cg.lanes(), CG_DEFAULT_LANES);
        assert_eq!(
            (
                cg.train.samples,
                cg.train.epochs,
                cg.train.lr,
                cg.quant.epochs
            ),
            (20000, 8, 0.01, 8)
        );
        assert_eq!(cg.train.snr_db, [15.0, 18.0, 21.0, 24.0, 27.0]);
        assert_eq!(*cg.ber.snr_db.last().unwrap(), 30.0);
        let given = FlowConfig::from_value(serde_json::json!({
            "net": {"arch": "cg", "layers": 3, "inner": 2},
            "link": {"block": 1},
            "quant": {"method": "ptq"}
        }))
        .unwrap();
        assert_eq!(
            (given.net.layers, given.net.inner, given.link.block),
            (3, Some(2), 1)
        );
        assert_eq!(given.quant.method, QuantMethod::Ptq);
        let paper =
            FlowConfig::from_value(serde_json::json!({"net": {"arch": "pgd", "prox": "soft"}}))
                .unwrap();
        assert_eq!((paper.net.arch, paper.net.layers), (NetArch::Pgd, 5));
        assert_eq!((paper.net.inner, paper.link.block), (None, 1));
        assert_eq!(paper.quant.method, QuantMethod::Kaq);
        assert_eq!(paper.lanes(), 8);
        let default = FlowConfig::from_value(serde_json::json!({})).unwrap();
        assert_eq!(default.net.arch, DEFAULT_ARCH);
        if DEFAULT_ARCH == NetArch::Pgd {
            assert_eq!(default, paper);
        } else {
            assert_eq!(default, cg);
        }
    }

    /// The shape reference lists every field a config may hold (the ones serialization leaves
    /// out at their default included): a fully written config passes it.
    #[test]
    fn the_shape_reference_has_every_field() {
        let mut full = FlowConfig::default();
        full.link.block = 4;
        full.rtl.lanes = Some(8);
        let value = serde_json::to_value(&full).unwrap();
        assert!(value["link"].get("block").is_some());
        shape(&value, &default_shape(), "").unwrap();
        assert_eq!(FlowConfig::from_value(value).unwrap(), full);
    }
}
