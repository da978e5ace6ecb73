//! Fake-quant unfolded detectors and the quantization methods of docs/fixed-point.md: PTQ,
//! QAT-MSE, LSQ and KAQ's SNR-adaptive step (paper §3, eqs. 9–19).
//!
//! This module owns [`QuantNet`]: an f32 PGD-Net or ADMM-Net whose every hardware tensor is passed through
//! the one scalar quantizer of [`quantizer`] (round half up, symmetric saturation — the integer
//! semantics of docs/fixed-point.md), its hand-derived backward pass under the straight-through
//! estimator, calibration, the per-SNR-bin step tables, training ([`train_quantized`]) and the
//! `kaq-qmodel` file ([`mod@file`]). It guarantees that [`QuantNet::loss_and_grad`] returns the
//! exact gradient of the STE/LSQ surrogate described in [`quantizer`] (checked against finite
//! differences in the tests), that the forward pass with every quantizer disabled is the f32
//! net's forward pass, and that every activation is an integer multiple of its step within
//! ±Q_P·Δ.
//!
//! # What is quantized, and the default formats ([`QuantConfig::default`])
//!
//! | tensor | bits | step |
//! |---|---|---|
//! | activations x⁽ᵏ⁾, k = 1..K (ADMM: x⁽ᵏ⁾, s⁽ᵏ⁾, u⁽ᵏ⁾, one shared step) | 8 (`activation_bits`, the `--bits` knob; per layer with `layer_bits`) | the method's |
//! | H | 8 | power of two, calibrated |
//! | y | 10 | power of two, calibrated |
//! | e⁽ᵏ⁾ = Ĥx⁽ᵏ⁻¹⁾ − ŷ | 12 | power of two, calibrated per layer |
//! | g⁽ᵏ⁾ = Ĥᵀe⁽ᵏ⁾ | 12 | power of two, calibrated per layer |
//! | parameters (η, λ or ln τ, β, α_mf) | 12 | power of two per scalar |
//! | x⁽⁰⁾ (matched-filter init only) | activation bits | power of two, calibrated |
//! | prox input r (`qam` prox only) | activation bits | power of two holding ±L ([`QuantNet::prox_input_step`]) |
//!
//! Why: the entries of H̃ are Gaussian with standard deviation 1/√(2N_r) and a largest
//! calibrated magnitude of a few standard deviations, so 8 bits leave ≈ 5 bits below the
//! typical entry; y carries the noise at low SNR and a sum of N terms, so two more bits; e and g
//! are accumulator outputs that feed the next layer's step, 12 bits keep their requantization
//! error well below the 8-bit activation grid. Power-of-two steps make every fixed requantization
//! a pure shift. Each parameter scalar is a constant multiplier in hardware, so it gets the
//! smallest power-of-two step that holds it (recomputed from its current value; it never
//! saturates, so its STE mask is 1). Steps of H, y, e, g and x⁽⁰⁾ are fixed at calibration
//! (eq. 10, rounded up to a power of two) on the teacher's forward pass and are not trained.
//!
//! # Methods ([`QuantMethod`])
//!
//! * `ptq`: activation steps Δ_k = max|x⁽ᵏ⁾| / Q_P on the calibration set (eq. 10), no training.
//! * `qat-mse`: the same fixed steps; the net parameters trained through the fake-quant forward
//!   with the STE on the MSE loss (the paper's "traditional QAT").
//! * `lsq`: one learned step per layer (Esser et al. 2020), initialized by calibration; its
//!   gradient is scaled by 1/√(n·Q_P), n the elements per sample the step quantizes.
//! * `kaq`: Δ_k = max(α_k·SNR^{−1/2} + γ_k, [`quantizer::MIN_STEP`]) with learned α_k, γ_k
//!   (eq. 15, SNR linear, at the centre of the sample's SNR bin). Initialized with α_k = 0 and
//!   γ_k = the calibrated step, so training starts from PTQ. The same gradient scale as LSQ
//!   multiplies ∂L/∂α_k and ∂L/∂γ_k. Below the floor both get zero gradient. The MMD term of the
//!   KAQ loss enters through the `extra` per-layer gradient of [`QuantNet::loss_and_grad`].
//!
//! A sample's SNR bin comes from its noise variance: SNR = N_t/N_r·E_s/σ² (the link's
//! definition), binned by [`SnrBins::bin`]. [`QuantNet::step_table`] tabulates Δ_k per bin.
//!
//! ADMM-Net: the three states of layer k (x⁽ᵏ⁾, s⁽ᵏ⁾ = prox output, u⁽ᵏ⁾ = v − s) are all
//! held by the hardware and quantized with layer k's activation step, calibrated on the largest
//! of the three. The layer output and the KAQ activation x_S⁽ᵏ⁾ of ADMM-Net is s⁽ᵏ⁾ (the net
//! outputs s⁽ᴷ⁾).

pub mod file;
pub mod kaq;
pub(crate) mod pass;
pub mod quantizer;
#[cfg(test)]
mod tests;
mod training;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::detect::Detector;
use crate::error::ModelError;
use crate::link::{FrameBatch, LinkConfig};
use crate::train::Trainable;
use crate::unfolded::{F32Frames, NetConfig, TrainBatch, UnfoldedNet};
pub use kaq::{KaqConfig, KaqEpoch, KaqStudent};
use pass::{ActivationPlan, QuantPlan};
pub use quantizer::{SnrBins, StepPolicy};
pub use training::{
    QuantTrainConfig, QuantTrained, quant_ber_on, quant_mean_loss, train_quantized,
};

/// The quantization method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuantMethod {
    /// Post-training quantization: calibrated steps, no training.
    Ptq,
    /// Quantization-aware training on the MSE loss with fixed calibrated steps.
    QatMse,
    /// Learned step size quantization.
    Lsq,
    /// KAQ: SNR-adaptive learned steps (MSE + MMD loss).
    Kaq,
}

impl QuantMethod {
    /// Whether the method trains at all.
    pub fn trains(self) -> bool {
        self != Self::Ptq
    }
}

impl fmt::Display for QuantMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ptq => "ptq",
            Self::QatMse => "qat-mse",
            Self::Lsq => "lsq",
            Self::Kaq => "kaq",
        })
    }
}

impl FromStr for QuantMethod {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ptq" => Ok(Self::Ptq),
            "qat-mse" | "qat" => Ok(Self::QatMse),
            "lsq" => Ok(Self::Lsq),
            "kaq" => Ok(Self::Kaq),
            _ => Err(ModelError::UnknownName {
                what: "quantization method",
                given: s.to_string(),
                expected: "ptq, qat-mse, lsq, kaq".into(),
            }),
        }
    }
}

/// The format of one quantized tensor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorFormat {
    /// Bits, 2..=24.
    pub bits: u32,
    /// How the step is chosen from the calibrated largest magnitude.
    pub step: StepPolicy,
}

impl TensorFormat {
    const fn pow2(bits: u32) -> Self {
        Self {
            bits,
            step: StepPolicy::PowerOfTwo,
        }
    }
}

/// The formats of every quantized tensor (defaults in the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantConfig {
    /// Bits of the activations x⁽ᵏ⁾ (default 8); their step is the method's. With
    /// `layer_bits` it is the widest layer's bits: the width of x⁽⁰⁾, of the `qam` prox
    /// input and of the hardware's state registers.
    pub activation_bits: u32,
    /// Mixed precision: the bits of x⁽ᵏ⁾ per layer k = 1..K (absent: `activation_bits` for
    /// every layer). Each entry is at most `activation_bits`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_bits: Option<Vec<u32>>,
    /// H (default 8 bits, power of two).
    pub h: TensorFormat,
    /// Mixed H̃ precision: per layer k = 1..K the bits of H̃ that layer reads (absent: `h.bits`
    /// for every layer). Layer k uses the input codes rounded (half up) to their top
    /// `h_layer_bits[k]` bits and saturated symmetrically there. Each entry is at most
    /// `h.bits`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h_layer_bits: Option<Vec<u32>>,
    /// y (default 10 bits, power of two).
    pub y: TensorFormat,
    /// e⁽ᵏ⁾ (default 12 bits, power of two).
    pub e: TensorFormat,
    /// g⁽ᵏ⁾ (default 12 bits, power of two).
    pub g: TensorFormat,
    /// Every net parameter (default 12 bits, power of two per scalar).
    pub params: TensorFormat,
    /// The SNR bins of the adaptive step (default 0.5 dB from −10 to 40 dB).
    pub snr_bins: SnrBins,
}

impl Default for QuantConfig {
    fn default() -> Self {
        Self {
            activation_bits: 8,
            layer_bits: None,
            h: TensorFormat::pow2(8),
            h_layer_bits: None,
            y: TensorFormat::pow2(10),
            e: TensorFormat::pow2(12),
            g: TensorFormat::pow2(12),
            params: TensorFormat::pow2(12),
            snr_bins: SnrBins::default(),
        }
    }
}

impl QuantConfig {
    /// The default formats with `bits`-bit activations.
    pub fn with_activation_bits(bits: u32) -> Self {
        Self {
            activation_bits: bits,
            ..Self::default()
        }
    }

    /// Per-layer activation bits `bits` (one entry per layer): `activation_bits` is their
    /// largest; all equal gives the uniform config of [`QuantConfig::with_activation_bits`].
    pub fn with_layer_bits(bits: &[u32]) -> Self {
        let max = bits.iter().copied().max().unwrap_or(8);
        if bits.iter().all(|&b| b == max) {
            return Self::with_activation_bits(max);
        }
        Self {
            activation_bits: max,
            layer_bits: Some(bits.to_vec()),
            ..Self::default()
        }
    }

    /// Bits of the activation of layer k (0-based).
    pub fn layer_activation_bits(&self, layer: usize) -> u32 {
        self.layer_bits
            .as_ref()
            .and_then(|b| b.get(layer).copied())
            .unwrap_or(self.activation_bits)
    }

    /// Whether the layers have different activation bits.
    pub fn is_mixed(&self) -> bool {
        self.layer_bits.is_some()
    }

    /// Bits of H̃ that layer k (0-based) reads.
    pub fn layer_h_bits(&self, layer: usize) -> u32 {
        self.h_layer_bits
            .as_ref()
            .and_then(|b| b.get(layer).copied())
            .unwrap_or(self.h.bits)
    }

    /// Checks `layer_bits` and `h_layer_bits` against a net of `layers` layers: one entry
    /// per layer.
    pub fn check_layers(&self, layers: usize) -> Result<(), ModelError> {
        if let Some(b) = &self.h_layer_bits
            && b.len() != layers
        {
            return Err(ModelError::InvalidDimension {
                name: "h_layer_bits",
                value: b.len(),
                reason: "needs one entry per layer",
            });
        }
        match &self.layer_bits {
            Some(b) if b.len() != layers => Err(ModelError::InvalidDimension {
                name: "layer_bits",
                value: b.len(),
                reason: "needs one entry per layer",
            }),
            _ => Ok(()),
        }
    }

    /// Checks every bit width (2..=24) and the SNR bins.
    pub fn validate(&self) -> Result<(), ModelError> {
        if let Some(b) = &self.layer_bits
            && let Some(&v) = b
                .iter()
                .find(|&&v| !(quantizer::MIN_BITS..=self.activation_bits).contains(&v))
        {
            return Err(ModelError::InvalidDimension {
                name: "layer_bits",
                value: v as usize,
                reason: "each layer's bits must be between 2 and activation_bits",
            });
        }
        if let Some(b) = &self.h_layer_bits
            && let Some(&v) = b
                .iter()
                .find(|&&v| !(quantizer::MIN_BITS..=self.h.bits).contains(&v))
        {
            return Err(ModelError::InvalidDimension {
                name: "h_layer_bits",
                value: v as usize,
                reason: "each layer's H bits must be between 2 and h.bits",
            });
        }
        for (name, bits) in [
            ("activation_bits", self.activation_bits),
            ("h.bits", self.h.bits),
            ("y.bits", self.y.bits),
            ("e.bits", self.e.bits),
            ("g.bits", self.g.bits),
            ("params.bits", self.params.bits),
        ] {
            if !(quantizer::MIN_BITS..=quantizer::MAX_BITS).contains(&bits) {
                return Err(ModelError::InvalidDimension {
                    name,
                    value: bits as usize,
                    reason: "bit width must be between 2 and 24",
                });
            }
        }
        Ok(self.snr_bins.validate()?)
    }
}

/// The fixed steps of a quantized net, set by calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedSteps {
    /// Step of H.
    pub h: f32,
    /// Step of y.
    pub y: f32,
    /// Step of x⁽⁰⁾ (matched-filter init; 1 otherwise).
    pub x0: f32,
    /// Steps of e⁽ᵏ⁾, one per layer.
    pub e: Vec<f32>,
    /// Steps of g⁽ᵏ⁾, one per layer.
    pub g: Vec<f32>,
    /// Calibrated activation steps max|x⁽ᵏ⁾|/Q_P (eq. 10), one per layer: the steps of PTQ and
    /// QAT-MSE and the initial steps of LSQ and KAQ.
    pub activation: Vec<f32>,
}

/// A fake-quant unfolded net: the f32 net's architecture and parameters, the method, the
/// formats, the calibrated steps and the learned step parameters.
///
/// The learnable vector ([`QuantNet::params`]) is the f32 net's parameters followed by the
/// method's step parameters: none (PTQ, QAT-MSE), Δ_1..Δ_K (LSQ), α_1..α_K then γ_1..γ_K (KAQ).
#[derive(Debug, Clone)]
pub struct QuantNet {
    /// Architecture and link; its parameters are not used (the live ones are `params`).
    net: UnfoldedNet,
    method: QuantMethod,
    config: QuantConfig,
    fixed: FixedSteps,
    params: Vec<f32>,
}

impl PartialEq for QuantNet {
    /// Equal architecture, link, method, formats, steps and learnable vector.
    fn eq(&self, other: &Self) -> bool {
        self.net.config() == other.net.config()
            && self.net.link() == other.net.link()
            && self.method == other.method
            && self.config == other.config
            && self.fixed == other.fixed
            && self.params == other.params
    }
}

fn finite_positive(name: &str, values: &[f32]) -> Result<(), ModelError> {
    if let Some(v) = values.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
        return Err(ModelError::NonFinite(format!(
            "{name} step {v} is not finite and positive"
        )));
    }
    Ok(())
}

impl QuantNet {
    /// Calibrates `teacher` on `data` (eq. 10 for every tensor; see the module docs) and builds
    /// the quantized net of `method` with the formats `config`. Fails on ADMM-Net (not yet
    /// supported), an invalid config, a batch of the wrong shape or an empty batch.
    pub fn calibrate(
        teacher: &UnfoldedNet,
        method: QuantMethod,
        config: &QuantConfig,
        data: &TrainBatch<'_>,
    ) -> Result<Self, ModelError> {
        config.validate()?;
        config.check_layers(teacher.config().layers)?;
        teacher.validate()?;
        teacher.check(data)?;
        if data.batch == 0 {
            return Err(ModelError::InvalidDimension {
                name: "calibration batch",
                value: 0,
                reason: "calibration needs at least one sample",
            });
        }
        let plan = plain_plan(teacher, &config.snr_bins);
        let stats = pass::calibrate(&plan, data);
        let act_bits = config.activation_bits;
        let fixed = FixedSteps {
            h: config.h.step.step(stats.h, config.h.bits),
            y: config.y.step.step(stats.y, config.y.bits),
            x0: StepPolicy::PowerOfTwo.step(stats.x0, act_bits),
            e: stats
                .e
                .iter()
                .map(|&v| config.e.step.step(v, config.e.bits))
                .collect(),
            g: stats
                .g
                .iter()
                .map(|&v| config.g.step.step(v, config.g.bits))
                .collect(),
            activation: stats
                .x
                .iter()
                .enumerate()
                .map(|(k, &v)| StepPolicy::MaxAbs.step(v, config.layer_activation_bits(k)))
                .collect(),
        };
        let mut params = teacher.params().to_vec();
        match method {
            QuantMethod::Ptq | QuantMethod::QatMse => {}
            QuantMethod::Lsq => params.extend_from_slice(&fixed.activation),
            QuantMethod::Kaq => {
                params.extend(std::iter::repeat_n(0.0f32, fixed.activation.len()));
                params.extend_from_slice(&fixed.activation);
            }
        }
        let net = Self {
            net: teacher.clone(),
            method,
            config: config.clone(),
            fixed,
            params,
        };
        net.validate()?;
        Ok(net)
    }

    /// Assembles a quantized net from its parts (used by the model file), validating them.
    pub fn from_parts(
        net: UnfoldedNet,
        method: QuantMethod,
        config: QuantConfig,
        fixed: FixedSteps,
        step_params: Vec<f32>,
    ) -> Result<Self, ModelError> {
        let mut params = net.params().to_vec();
        params.extend_from_slice(&step_params);
        let q = Self {
            net,
            method,
            config,
            fixed,
            params,
        };
        q.validate()?;
        Ok(q)
    }

    /// Checks the formats, the parameter count, the f32 net's parameter domain, and that every
    /// fixed step is finite and positive, learned LSQ steps are ≥ MIN_STEP and α, γ finite.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.config.validate()?;
        let k = self.net.config().layers;
        self.config.check_layers(k)?;
        let net_len = self.net.params().len();
        let want = net_len + self.step_param_count();
        if self.params.len() != want {
            return Err(ModelError::InvalidDimension {
                name: "params",
                value: self.params.len(),
                reason: "does not match the net's parameters plus the method's step parameters",
            });
        }
        let mut net = self.net.clone();
        net.params_mut().copy_from_slice(&self.params[..net_len]);
        net.validate()?;
        for (name, len) in [
            ("fixed.e", self.fixed.e.len()),
            ("fixed.g", self.fixed.g.len()),
            ("fixed.activation", self.fixed.activation.len()),
        ] {
            if len != k {
                return Err(ModelError::InvalidDimension {
                    name,
                    value: len,
                    reason: "needs one step per layer",
                });
            }
        }
        finite_positive("h", &[self.fixed.h])?;
        finite_positive("y", &[self.fixed.y])?;
        finite_positive("x0", &[self.fixed.x0])?;
        finite_positive("e", &self.fixed.e)?;
        finite_positive("g", &self.fixed.g)?;
        finite_positive("activation", &self.fixed.activation)?;
        let tail = &self.params[net_len..];
        if let Some(v) = tail.iter().find(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite(format!("step parameter {v}")));
        }
        if self.method == QuantMethod::Lsq
            && let Some(&v) = tail.iter().find(|&&v| v < quantizer::MIN_STEP)
        {
            return Err(ModelError::InvalidParameter {
                name: "lsq step",
                value: v as f64,
                reason: "learned steps must be at least 2^-20",
            });
        }
        Ok(())
    }

    fn step_param_count(&self) -> usize {
        let k = self.net.config().layers;
        match self.method {
            QuantMethod::Ptq | QuantMethod::QatMse => 0,
            QuantMethod::Lsq => k,
            QuantMethod::Kaq => 2 * k,
        }
    }

    /// The method.
    pub fn method(&self) -> QuantMethod {
        self.method
    }

    /// The formats.
    pub fn config(&self) -> &QuantConfig {
        &self.config
    }

    /// The calibrated fixed steps.
    pub fn fixed_steps(&self) -> &FixedSteps {
        &self.fixed
    }

    /// The architecture of the f32 net.
    pub fn net_config(&self) -> &NetConfig {
        self.net.config()
    }

    /// The link.
    pub fn link(&self) -> &LinkConfig {
        self.net.link()
    }

    /// The f32 net with the current (unquantized) parameters.
    pub fn float_net(&self) -> UnfoldedNet {
        let mut net = self.net.clone();
        let len = net.params().len();
        net.params_mut().copy_from_slice(&self.params[..len]);
        net
    }

    /// The method's step parameters: [] (PTQ, QAT-MSE), Δ_k (LSQ), α_k then γ_k (KAQ).
    pub fn step_params(&self) -> &[f32] {
        &self.params[self.net.params().len()..]
    }

    /// The learnable vector: net parameters then step parameters.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The learnable vector, for an optimizer.
    pub fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    /// Names of the learnable vector: the net's, then `step[k]` or `alpha[k]`, `gamma[k]`.
    pub fn param_names(&self) -> Vec<String> {
        let mut names = self.net.param_names();
        let k = self.net.config().layers;
        match self.method {
            QuantMethod::Ptq | QuantMethod::QatMse => {}
            QuantMethod::Lsq => names.extend((0..k).map(|i| format!("step[{i}]"))),
            QuantMethod::Kaq => {
                names.extend((0..k).map(|i| format!("alpha[{i}]")));
                names.extend((0..k).map(|i| format!("gamma[{i}]")));
            }
        }
        names
    }

    /// Projects onto the domain: the net's projection, and LSQ steps ≥ MIN_STEP.
    pub fn project(&mut self) {
        let mut net = self.float_net();
        net.project();
        let len = net.params().len();
        self.params[..len].copy_from_slice(net.params());
        if self.method == QuantMethod::Lsq {
            for v in &mut self.params[len..] {
                *v = v.max(quantizer::MIN_STEP);
            }
        }
    }

    /// The step of the prox input quantizer Q_r, present for the `qam` prox only: the
    /// smallest power of two at which ±L (one beyond the alphabet's largest level L − 1) fits
    /// the activation bits. The prox then reads a b-bit code, so the integer model and the
    /// hardware hold it as a 2^b-entry table, exactly.
    pub fn prox_input_step(&self) -> Option<f32> {
        (self.net.config().prox == crate::unfolded::Prox::Qam).then(|| {
            let levels = self.net.link().modulation.levels_per_dim() as f32;
            quantizer::power_of_two_step(levels, self.config.activation_bits)
        })
    }

    /// Activation step of layer k (0-based) in SNR bin `bin`, as the forward pass uses it.
    pub fn activation_step(&self, layer: usize, bin: usize) -> f32 {
        let k = self.net.config().layers;
        let tail = self.step_params();
        let raw = match self.method {
            QuantMethod::Ptq | QuantMethod::QatMse => return self.fixed.activation[layer],
            QuantMethod::Lsq => tail[layer],
            QuantMethod::Kaq => {
                tail[layer] * self.config.snr_bins.inv_sqrt_snr(bin) + tail[k + layer]
            }
        };
        raw.max(quantizer::MIN_STEP)
    }

    /// The activation step of every layer in every SNR bin, `K × bins` (constant across bins
    /// except for KAQ): the table the hardware indexes by the receiver's SNR bin.
    pub fn step_table(&self) -> Vec<Vec<f32>> {
        let bins = self.config.snr_bins.count;
        (0..self.net.config().layers)
            .map(|k| (0..bins).map(|b| self.activation_step(k, b)).collect())
            .collect()
    }

    /// The quantized value of every net parameter and its STE mask.
    fn quantized_params(&self) -> (Vec<f32>, Vec<f32>) {
        let len = self.net.params().len();
        let fmt = self.config.params;
        let qp = quantizer::max_code(fmt.bits);
        self.params[..len]
            .iter()
            .map(|&p| {
                let e = quantizer::eval(p, fmt.step.step(p.abs(), fmt.bits), qp);
                (e.value, e.d_input)
            })
            .unzip()
    }

    /// Every net parameter's quantized value as (code, frac) with value = code·2^−frac, or
    /// an error naming the parameter when its step is not a power of two (the IR needs
    /// power-of-two parameter steps: each is a shift-and-multiply by an integer constant).
    pub(crate) fn param_codes(&self) -> Result<Vec<(i64, i32)>, String> {
        let len = self.net.params().len();
        let fmt = self.config.params;
        let qp = quantizer::max_code(fmt.bits);
        let names = self.net.param_names();
        self.params[..len]
            .iter()
            .zip(&names)
            .map(|(&p, name)| {
                let step = fmt.step.step(p.abs(), fmt.bits);
                let frac = quantizer::pow2_frac(step).ok_or_else(|| {
                    format!("parameter {name} has step {step}, not a power of two")
                })?;
                let value = quantizer::quantize(p, step, qp);
                Ok(((value / step) as i64, frac))
            })
            .collect()
    }

    pub(crate) fn plan(&self) -> QuantPlan {
        let (q, mask) = self.quantized_params();
        let mut net = self.net.clone();
        net.params_mut().copy_from_slice(&q);
        let mut plan = plain_plan(&net, &self.config.snr_bins);
        plan.quantize = true;
        plan.param_mask = mask;
        let qp = |bits| quantizer::max_code(bits);
        plan.h = (self.fixed.h, qp(self.config.h.bits));
        plan.h_shift = (0..self.net.config().layers)
            .map(|k| self.config.h.bits - self.config.layer_h_bits(k))
            .collect();
        plan.y = (self.fixed.y, qp(self.config.y.bits));
        plan.x0 = (self.fixed.x0, qp(self.config.activation_bits));
        plan.e = self.fixed.e.clone();
        plan.e_qp = qp(self.config.e.bits);
        plan.g = self.fixed.g.clone();
        plan.g_qp = qp(self.config.g.bits);
        plan.act_qp = (0..self.net.config().layers)
            .map(|k| qp(self.config.layer_activation_bits(k)))
            .collect();
        plan.prox_in = self
            .prox_input_step()
            .map(|step| (step, qp(self.config.activation_bits)));
        let len = self.net.params().len();
        let k = self.net.config().layers;
        let tail = self.step_params();
        plan.activation = match self.method {
            QuantMethod::Ptq | QuantMethod::QatMse => {
                ActivationPlan::Fixed(self.fixed.activation.clone())
            }
            QuantMethod::Lsq => ActivationPlan::Learned {
                steps: tail.to_vec(),
                slot: len,
            },
            QuantMethod::Kaq => ActivationPlan::Snr {
                alpha: tail[..k].to_vec(),
                gamma: tail[k..].to_vec(),
                slot: len,
                inv_sqrt_snr: (0..self.config.snr_bins.count)
                    .map(|b| self.config.snr_bins.inv_sqrt_snr(b))
                    .collect(),
            },
        };
        plan
    }

    /// The LSQ gradient scale 1/√(n·Q_P) of the step parameters of layer `layer` (0-based;
    /// n = elements per sample of one activation, Q_P of that layer's activation format).
    pub fn step_grad_scale(&self, layer: usize) -> f32 {
        let n = self.net.link().n() as f32;
        1.0 / (n * quantizer::max_code(self.config.layer_activation_bits(layer))).sqrt()
    }

    /// Multiplies the gradient `grad` of the step parameters (laid out as
    /// [`QuantNet::step_params`]: one block of K per-layer entries, two for KAQ) by each entry's
    /// layer's [`QuantNet::step_grad_scale`].
    pub fn scale_step_grads(&self, grad: &mut [f32]) {
        let k = self.net.config().layers;
        let scales: Vec<f32> = (0..k).map(|l| self.step_grad_scale(l)).collect();
        for (i, g) in grad.iter_mut().enumerate() {
            *g *= scales[i % k];
        }
    }

    /// Mean over the batch of ‖x − x_S⁽ᴷ⁾‖² of the fake-quant forward pass; writes into `grad`
    /// the gradient of that loss plus Σ_k ⟨extra_k, x_S⁽ᵏ⁾⟩, i.e. `extra` is the upstream
    /// gradient ∂L_extra/∂x_S⁽ᵏ⁾ of an additional loss term (layout `K × batch × n`, layers
    /// 1..K in order, as [`QuantNet::forward_layers`] writes them). The gradient is the exact
    /// gradient of the STE/LSQ surrogate (no LSQ gradient scale; see [`Trainable`]).
    pub fn loss_and_grad(
        &self,
        data: &TrainBatch<'_>,
        extra: Option<&[f32]>,
        grad: &mut [f32],
    ) -> Result<f32, ModelError> {
        self.check(data)?;
        if grad.len() != self.params.len() {
            return Err(ModelError::Shape(format!(
                "gradient buffer holds {} values, the net has {} parameters",
                grad.len(),
                self.params.len()
            )));
        }
        let layers = self.net.config().layers;
        if let Some(extra) = extra
            && extra.len() != layers * data.batch * data.n
        {
            return Err(ModelError::Shape(format!(
                "extra layer gradient holds {} values, K × batch × n = {layers} × {} × {} needs {}",
                extra.len(),
                data.batch,
                data.n,
                layers * data.batch * data.n
            )));
        }
        Ok(pass::loss_and_grad(&self.plan(), data, extra, grad))
    }

    /// Checks a batch against the link.
    pub fn check(&self, data: &TrainBatch<'_>) -> Result<(), ModelError> {
        self.net.check(data)
    }

    /// Writes x_S⁽ᴷ⁾ of every sample into `out` (`batch × n`).
    pub fn forward(&self, data: &TrainBatch<'_>, out: &mut [f32]) -> Result<(), ModelError> {
        self.check(data)?;
        check_out(out.len(), data.batch * data.n)?;
        pass::forward_batch(&self.plan(), data, false, out);
        Ok(())
    }

    /// Writes x_S⁽¹⁾ … x_S⁽ᴷ⁾ of every sample into `out`, layout `K × batch × n` (the student
    /// activations the KAQ loss compares with the teacher's).
    pub fn forward_layers(&self, data: &TrainBatch<'_>, out: &mut [f32]) -> Result<(), ModelError> {
        self.check(data)?;
        check_out(out.len(), self.net.config().layers * data.batch * data.n)?;
        pass::forward_batch(&self.plan(), data, true, out);
        Ok(())
    }
}

fn check_out(len: usize, want: usize) -> Result<(), ModelError> {
    if len != want {
        return Err(ModelError::Shape(format!(
            "output buffer holds {len} values, needs {want}"
        )));
    }
    Ok(())
}

/// The per-layer activations x⁽¹⁾ … x⁽ᴷ⁾ of the f32 (teacher) net, layout `K × batch × n`.
pub fn teacher_layers(
    teacher: &UnfoldedNet,
    data: &TrainBatch<'_>,
    out: &mut [f32],
) -> Result<(), ModelError> {
    teacher.check(data)?;
    check_out(out.len(), teacher.config().layers * data.batch * data.n)?;
    let plan = plain_plan(teacher, &SnrBins::default());
    pass::forward_batch(&plan, data, true, out);
    Ok(())
}

/// The unquantized plan of an f32 PGD-Net.
fn plain_plan(net: &UnfoldedNet, bins: &SnrBins) -> QuantPlan {
    let (layers, slots) = net.layers().into_iter().unzip();
    let k = net.config().layers;
    let link = net.link();
    QuantPlan {
        arch: net.config().arch,
        quantize: false,
        layers,
        slots,
        param_mask: vec![1.0; net.params().len()],
        mf: net.mf_slot().map(|i| (i, net.params()[i])),
        m: link.m(),
        n: link.n(),
        h: (1.0, 1.0),
        h_shift: Vec::new(),
        y: (1.0, 1.0),
        x0: (1.0, 1.0),
        e: vec![1.0; k],
        e_qp: 1.0,
        g: vec![1.0; k],
        g_qp: 1.0,
        act_qp: vec![1.0; k],
        activation: ActivationPlan::Fixed(vec![1.0; k]),
        signal_var: link.noise_var(0.0),
        bins: *bins,
        prox_in: None,
    }
}

impl Trainable for QuantNet {
    fn params(&self) -> &[f32] {
        QuantNet::params(self)
    }
    fn params_mut(&mut self) -> &mut [f32] {
        QuantNet::params_mut(self)
    }
    fn param_names(&self) -> Vec<String> {
        QuantNet::param_names(self)
    }
    /// The MSE loss and its surrogate gradient, the step parameters' entries multiplied by
    /// [`QuantNet::scale_step_grads`]. A batch of the wrong shape gives a NaN loss (which the
    /// trainer reports as divergence); the trainer only passes batches of the net's link.
    fn loss_and_grad(&self, data: &TrainBatch<'_>, grad: &mut [f32]) -> f32 {
        match QuantNet::loss_and_grad(self, data, None, grad) {
            Ok(loss) => {
                let len = self.net.params().len();
                self.scale_step_grads(&mut grad[len..]);
                loss
            }
            Err(_) => f32::NAN,
        }
    }
    fn project(&mut self) {
        QuantNet::project(self)
    }
}

/// Frames converted to f32 per chunk in [`Detector::detect`].
const DETECT_CHUNK: usize = 512;

impl Detector for QuantNet {
    /// `{f32 net name}-{method}-{bits}b`, for example `pgd-soft-k5-kaq-8b`; mixed precision
    /// lists the layers' bits, for example `pgd-soft-k3-kaq-8-6-4b`.
    fn name(&self) -> String {
        let bits = match &self.config.layer_bits {
            Some(b) => b.iter().map(u32::to_string).collect::<Vec<_>>().join("-"),
            None => self.config.activation_bits.to_string(),
        };
        format!("{}-{}-{}b", self.net.name(), self.method, bits)
    }

    /// Runs the fake-quant forward pass and slices every output to the nearest level.
    fn detect(&self, frames: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError> {
        frames.check_decisions(decisions)?;
        let link = self.net.link();
        if frames.m != link.m() || frames.n != link.n() || frames.link.modulation != link.modulation
        {
            return Err(ModelError::Shape(format!(
                "frames are {}×{} {}, detector {} needs {}×{} {}",
                frames.m,
                frames.n,
                frames.link.modulation,
                self.name(),
                link.m(),
                link.n(),
                link.modulation
            )));
        }
        let n = frames.n;
        if n == 0 || frames.frames == 0 {
            return Ok(());
        }
        let plan = self.plan();
        let modulation = link.modulation;
        let mut estimate = Vec::new();
        for first in (0..frames.frames).step_by(DETECT_CHUNK) {
            let count = DETECT_CHUNK.min(frames.frames - first);
            let owned = F32Frames::from_frames(frames, first..first + count)?;
            let data = owned.as_batch();
            estimate.resize(count * n, 0.0);
            pass::forward_batch(&plan, &data, false, &mut estimate);
            for (d, &v) in decisions[first * n..(first + count) * n]
                .iter_mut()
                .zip(&estimate)
            {
                *d = modulation.slice(v as f64);
            }
        }
        Ok(())
    }
}
