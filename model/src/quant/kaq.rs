//! The KAQ training loss (paper §3.2–3.4, eq. 16, Algorithm 1; docs/fixed-point.md):
//! L = MSE + ε Σ_k MMD²(x⁽ᵏ⁾, x_S⁽ᵏ⁾) per minibatch, between the frozen f32 teacher's layer
//! outputs x⁽ᵏ⁾ and the fake-quant student's x_S⁽ᵏ⁾.
//!
//! This module owns [`KaqConfig`] (ε and the kernel mode), [`KaqEpoch`] (the per-epoch record
//! of the loss terms and bandwidths) and [`KaqStudent`], the [`Trainable`] that the shared
//! trainer optimizes for `--quant kaq`. It guarantees:
//!
//! * the gradient [`KaqStudent::loss_and_grad`] returns is the exact gradient of
//!   MSE + ε Σ_k MMD² under the STE surrogate of [`super::quantizer`] with respect to the net
//!   parameters, α_k, γ_k and (learnable mode) ln σ_m⁽ᵏ⁾ — the MMD student gradient enters
//!   through the `extra` per-layer gradient of [`QuantNet::loss_and_grad`] (tests check it
//!   against finite differences);
//! * the α, γ entries are multiplied by [`QuantNet::scale_step_grads`] before the optimizer sees
//!   them, as for LSQ; the log-bandwidths are not scaled;
//! * with ε = 0 the loss, gradient and therefore the whole run equal MSE-only training of the
//!   same `kaq` net (no MMD is even evaluated);
//! * results do not depend on the thread count: the K layers' MMDs run in parallel, each on
//!   its own workspace, and are combined in layer order.
//!
//! Teacher activations are recomputed per minibatch (an f32 forward pass without quantizers);
//! caching them would cost K·samples·N floats for a fraction of the MMD's O(B²N) per layer.
//!
//! Learnable bandwidths are three per layer (σ₁ teacher–teacher, σ₂ student–student, σ₃
//! cross), stored as ln σ after the quantized net's learnable vector so Adam updates them with
//! everything else; all three start at the median heuristic of the first training minibatch
//! (Algorithm 1, line 4). Median mode recomputes one σ per layer per batch; multi mode uses
//! [`Bandwidths::multi_for`] with the modulation's per-dimension energy.

use std::sync::Mutex;

use rayon::prelude::*;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::QuantNet;
use crate::error::ModelError;
use crate::mmd::{Bandwidths, Estimator, KernelMode, Mmd, MmdStats, MmdWorkspace};
use crate::train::Trainable;
use crate::unfolded::{TrainBatch, UnfoldedNet};

/// Default MMD weight ε of eq. 16 (see the README for the measurements behind it).
pub const DEFAULT_EPSILON: f64 = 10.0;

/// Default kernel mode (see the README for the measurements behind it).
pub const DEFAULT_KERNEL: KernelMode = KernelMode::Median;

/// The KAQ loss settings; used only by the `kaq` method.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KaqConfig {
    /// Weight ε ≥ 0 of Σ_k MMD² in the loss (eq. 16; default [`DEFAULT_EPSILON`]).
    pub epsilon: f64,
    /// Bandwidth scheme of the MMD kernels (default [`DEFAULT_KERNEL`]).
    #[serde(serialize_with = "kernel_to_str", deserialize_with = "kernel_from_str")]
    pub kernel: KernelMode,
}

impl Default for KaqConfig {
    fn default() -> Self {
        Self {
            epsilon: DEFAULT_EPSILON,
            kernel: DEFAULT_KERNEL,
        }
    }
}

impl KaqConfig {
    /// Checks that ε is finite and non-negative.
    pub fn validate(&self) -> Result<(), ModelError> {
        if !(self.epsilon.is_finite() && self.epsilon >= 0.0) {
            return Err(ModelError::InvalidParameter {
                name: "kaq.epsilon",
                value: self.epsilon,
                reason: "the MMD weight must be finite and non-negative",
            });
        }
        Ok(())
    }
}

fn kernel_to_str<S: Serializer>(k: &KernelMode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(k.as_str())
}

fn kernel_from_str<'de, D: Deserializer<'de>>(d: D) -> Result<KernelMode, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

/// The KAQ loss terms of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KaqEpoch {
    /// Epoch, counted from 1.
    pub epoch: usize,
    /// Mean training MSE over the epoch's samples.
    pub mse: f64,
    /// Mean Σ_k MMD² over the epoch's samples (minibatches weighted by size).
    pub mmd: f64,
    /// Mean total loss MSE + ε Σ_k MMD².
    pub total: f64,
    /// Mean MMD² per layer.
    pub mmd_per_layer: Vec<f64>,
    /// Mean cross-kernel saturation K̄₃ per layer ([`MmdStats::saturation`]; → 1 flags a
    /// bandwidth that outgrew the data).
    pub saturation: Vec<f64>,
    /// Bandwidths σ₁, σ₂, σ₃ per layer at the end of the epoch (learnable), or the last
    /// minibatch's median σ (median); empty in multi mode.
    pub sigma: Vec<[f64; 3]>,
}

/// Running sums of one epoch.
#[derive(Debug, Clone, Default)]
struct Accumulator {
    samples: f64,
    mse: f64,
    mmd: Vec<f64>,
    saturation: Vec<f64>,
    sigma: Vec<[f64; 3]>,
}

/// The fake-quant net, its frozen teacher and the KAQ loss, as one [`Trainable`]: the
/// learnable vector is the quantized net's followed by ln σ₁, ln σ₂, ln σ₃ of each layer in
/// learnable mode.
#[derive(Debug)]
pub struct KaqStudent {
    net: QuantNet,
    teacher: UnfoldedNet,
    config: KaqConfig,
    multi: Option<Bandwidths>,
    params: Vec<f32>,
    workspaces: Mutex<Vec<MmdWorkspace>>,
    accumulator: Mutex<Accumulator>,
}

impl KaqStudent {
    /// Wraps `net` (a `kaq` net calibrated from `teacher`) with the loss `config`; learnable
    /// bandwidths start at the median heuristic of `first` (the first training minibatch).
    pub fn new(
        net: QuantNet,
        teacher: &UnfoldedNet,
        config: KaqConfig,
        first: &TrainBatch<'_>,
    ) -> Result<Self, ModelError> {
        config.validate()?;
        net.check(first)?;
        let layers = net.net_config().layers;
        let n = first.n;
        let modulation = net.link().modulation;
        let multi = match config.kernel {
            KernelMode::Multi => Some(Bandwidths::multi_for(
                n,
                modulation.es() / modulation.real_dims_per_symbol() as f64,
            )?),
            _ => None,
        };
        let mut params = net.params().to_vec();
        if config.kernel == KernelMode::Learnable {
            let (t, s) = activations(&net, teacher, first)?;
            let mut ws = MmdWorkspace::new(first.batch, n)?;
            let size = first.batch * n;
            for k in 0..layers {
                let range = k * size..(k + 1) * size;
                let sigma = ws.median_bandwidth(&t[range.clone()], &s[range])?;
                params.extend(std::iter::repeat_n(sigma.ln() as f32, 3));
            }
        }
        Ok(Self {
            net,
            teacher: teacher.clone(),
            config,
            multi,
            params,
            workspaces: Mutex::new(Vec::new()),
            accumulator: Mutex::new(Accumulator::default()),
        })
    }

    /// The quantized net (its learnable vector is kept in step with this one's).
    pub fn net(&self) -> &QuantNet {
        &self.net
    }

    /// The quantized net.
    pub fn into_net(self) -> QuantNet {
        self.net
    }

    /// The learnable bandwidths σ₁, σ₂, σ₃ per layer (empty unless learnable mode).
    pub fn sigmas(&self) -> Vec<[f64; 3]> {
        self.params[self.net.params().len()..]
            .chunks_exact(3)
            .map(|c| [c[0], c[1], c[2]].map(|v| (v as f64).exp()))
            .collect()
    }

    /// The record of the epoch since the last call (and resets the running sums).
    pub fn take_epoch(&self, epoch: usize) -> KaqEpoch {
        let acc = std::mem::take(&mut *lock(&self.accumulator));
        let per = |v: f64| {
            if acc.samples > 0.0 {
                v / acc.samples
            } else {
                0.0
            }
        };
        let mmd_per_layer: Vec<f64> = acc.mmd.iter().map(|&v| per(v)).collect();
        let mmd = mmd_per_layer.iter().fold(0.0, |a, b| a + b);
        let mse = per(acc.mse);
        let sigma = match self.config.kernel {
            KernelMode::Learnable => self.sigmas(),
            KernelMode::Median => acc.sigma,
            KernelMode::Multi => Vec::new(),
        };
        KaqEpoch {
            epoch,
            mse,
            mmd,
            total: mse + self.config.epsilon * mmd,
            mmd_per_layer,
            saturation: acc.saturation.iter().map(|&v| per(v)).collect(),
            sigma,
        }
    }

    /// The per-layer MMD losses of this bandwidth scheme (learnable: from the current ln σ).
    fn losses(&self) -> Result<Vec<Mmd>, ModelError> {
        let layers = self.net.net_config().layers;
        match self.config.kernel {
            KernelMode::Learnable => self
                .sigmas()
                .into_iter()
                .map(Mmd::learnable)
                .collect::<Result<Vec<_>, _>>(),
            KernelMode::Median => Ok(vec![
                Mmd {
                    bandwidths: Bandwidths::Median,
                    estimator: Estimator::Biased,
                };
                layers
            ]),
            KernelMode::Multi => Ok(vec![
                Mmd {
                    bandwidths: self.multi.clone().unwrap_or(Bandwidths::Median),
                    estimator: Estimator::Biased,
                };
                layers
            ]),
        }
    }

    /// The total loss MSE + ε Σ_k MMD²; writes its gradient (α, γ entries unscaled) into
    /// `grad` and records the terms in the epoch's running sums.
    pub fn loss_and_grad(
        &self,
        data: &TrainBatch<'_>,
        grad: &mut [f32],
    ) -> Result<f32, ModelError> {
        if grad.len() != self.params.len() {
            return Err(ModelError::Shape(format!(
                "gradient buffer holds {} values, the KAQ student has {} parameters",
                grad.len(),
                self.params.len()
            )));
        }
        let q_len = self.net.params().len();
        let (q_grad, sigma_grad) = grad.split_at_mut(q_len);
        sigma_grad.fill(0.0);
        let layers = self.net.net_config().layers;
        let eps = self.config.epsilon;
        if eps == 0.0 {
            let mse = self.net.loss_and_grad(data, None, q_grad)?;
            let mut acc = lock(&self.accumulator);
            acc.samples += data.batch as f64;
            acc.mse += mse as f64 * data.batch as f64;
            return Ok(mse);
        }
        let (b, n) = (data.batch, data.n);
        let size = b * n;
        let (teacher, student) = activations(&self.net, &self.teacher, data)?;
        let mut extra = vec![0.0f32; layers * size];
        let losses = self.losses()?;
        let mut ws = lock(&self.workspaces);
        if ws.len() != layers || ws.first().is_some_and(|w| w.batch() != b) {
            *ws = (0..layers)
                .map(|_| MmdWorkspace::new(b, n))
                .collect::<Result<_, _>>()?;
        }
        let results: Vec<Result<(MmdStats, [f64; 3]), ModelError>> = ws
            .par_iter_mut()
            .zip(extra.par_chunks_mut(size))
            .zip(losses.par_iter())
            .enumerate()
            .map(|(k, ((w, g), mmd))| {
                let range = k * size..(k + 1) * size;
                let mut g_sigma = [0.0f64; 3];
                let stats = mmd.eval(
                    w,
                    &teacher[range.clone()],
                    &student[range],
                    Some(g),
                    Some(&mut g_sigma),
                )?;
                for v in g.iter_mut() {
                    *v = (*v as f64 * eps) as f32;
                }
                Ok((stats, g_sigma))
            })
            .collect();
        drop(ws);
        let results = results.into_iter().collect::<Result<Vec<_>, _>>()?;
        let mse = self.net.loss_and_grad(data, Some(&extra), q_grad)?;
        let mut mmd_sum = 0.0f64;
        for (k, (stats, g_sigma)) in results.iter().enumerate() {
            mmd_sum += stats.loss;
            if self.config.kernel == KernelMode::Learnable {
                for m in 0..3 {
                    sigma_grad[3 * k + m] = (eps * g_sigma[m]) as f32;
                }
            }
        }
        let mut acc = lock(&self.accumulator);
        let w = b as f64;
        acc.samples += w;
        acc.mse += mse as f64 * w;
        acc.mmd.resize(layers, 0.0);
        acc.saturation.resize(layers, 0.0);
        acc.sigma.clear();
        for (k, (stats, _)) in results.iter().enumerate() {
            acc.mmd[k] += stats.loss * w;
            acc.saturation[k] += stats.saturation() * w;
            if let Some(s) = stats.sigma {
                acc.sigma.push(s);
            }
        }
        Ok((mse as f64 + eps * mmd_sum) as f32)
    }
}

/// Teacher and student per-layer activations, each `K × batch × n`.
fn activations(
    net: &QuantNet,
    teacher: &UnfoldedNet,
    data: &TrainBatch<'_>,
) -> Result<(Vec<f32>, Vec<f32>), ModelError> {
    let len = net.net_config().layers * data.batch * data.n;
    let mut t = vec![0.0f32; len];
    let mut s = vec![0.0f32; len];
    super::teacher_layers(teacher, data, &mut t)?;
    net.forward_layers(data, &mut s)?;
    Ok((t, s))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Trainable for KaqStudent {
    fn params(&self) -> &[f32] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }
    fn param_names(&self) -> Vec<String> {
        let mut names = self.net.param_names();
        let extra = (self.params.len() - names.len()) / 3;
        for k in 0..extra {
            for m in 1..=3 {
                names.push(format!("log_sigma{m}[{k}]"));
            }
        }
        names
    }
    /// The KAQ loss and its gradient, α, γ entries multiplied by [`QuantNet::scale_step_grads`].
    /// An error (a batch of the wrong shape, a non-finite MMD) gives a NaN loss, which the
    /// trainer reports as divergence.
    fn loss_and_grad(&self, data: &TrainBatch<'_>, grad: &mut [f32]) -> f32 {
        match KaqStudent::loss_and_grad(self, data, grad) {
            Ok(loss) => {
                let net_len = self.net.params().len() - self.net.step_params().len();
                let q_len = self.net.params().len();
                self.net.scale_step_grads(&mut grad[net_len..q_len]);
                loss
            }
            Err(_) => f32::NAN,
        }
    }
    fn project(&mut self) {
        let q_len = self.net.params().len();
        self.net.params_mut().copy_from_slice(&self.params[..q_len]);
        self.net.project();
        self.params[..q_len].copy_from_slice(self.net.params());
    }
}
