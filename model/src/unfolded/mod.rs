//! The deep-unfolded detectors in f32: PGD-Net and (linearized) ADMM-Net, with hand-derived
//! gradients for training (docs/f32-nets.md).
//!
//! This module owns the nets' semantics, their parameter layout and their forward and backward
//! passes. It guarantees that [`UnfoldedNet::loss_and_grad`] returns the gradient of the loss
//! it reports, up to f32 rounding (at the kinks of `soft` and `box` the derivative of the flat
//! piece is taken), checked against f64 central differences of an independent reference in
//! property tests, and that every batched result is independent of the thread count.
//!
//! # The nets
//!
//! Per sample, H is the M×N real-valued channel, y the received vector, x the transmitted
//! levels, K = `layers`, and k = 1..K the layer (named `[k−1]` in [`UnfoldedNet::param_names`]).
//! Both nets compute e = H x⁽ᵏ⁻¹⁾ − y and g⁽ᵏ⁾ = Hᵀe (the direct-form datapath).
//!
//! * **PGD-Net** (paper eqs. 6–8):
//!   r⁽ᵏ⁾ = x⁽ᵏ⁻¹⁾ − η_k g⁽ᵏ⁾ [+ β_k (x⁽ᵏ⁻¹⁾ − x⁽ᵏ⁻²⁾)], x⁽ᵏ⁾ = prox_k(r⁽ᵏ⁾); output x⁽ᴷ⁾.
//! * **ADMM-Net**, linearized so that it shares the datapath (no matrix inverse):
//!   x⁽ᵏ⁾ = x⁽ᵏ⁻¹⁾ − η_k [g⁽ᵏ⁾ + ρ_k (x⁽ᵏ⁻¹⁾ − s⁽ᵏ⁻¹⁾ + u⁽ᵏ⁻¹⁾)] [+ β_k (x⁽ᵏ⁻¹⁾ − x⁽ᵏ⁻²⁾)],
//!   v⁽ᵏ⁾ = x⁽ᵏ⁾ + u⁽ᵏ⁻¹⁾, s⁽ᵏ⁾ = prox_k(v⁽ᵏ⁾), u⁽ᵏ⁾ = u⁽ᵏ⁻¹⁾ + x⁽ᵏ⁾ − s⁽ᵏ⁾ = v⁽ᵏ⁾ − s⁽ᵏ⁾;
//!   s⁽⁰⁾ = x⁽⁰⁾, u⁽⁰⁾ = 0; output s⁽ᴷ⁾.
//! * The bracketed heavy-ball term is present only with `momentum: true`; x⁽⁻¹⁾ = x⁽⁰⁾, so the
//!   first layer's β has no effect (and a zero gradient). For ADMM it acts on the x-update.
//! * `prox_k` ([`Prox`], see [`prox`]): `soft` threshold λ_k (paper eq. 8), `box` clip to
//!   [−(L−1), L−1] (no parameter), `qam` posterior-mean denoiser Σ_s s·softmax_s(−(r−s)²/τ_k)
//!   over the per-dimension alphabet, learned as θ_k = ln τ_k so that τ_k > 0 always.
//! * x⁽⁰⁾ ([`Init`]): `zero`, or `mf`: x⁽⁰⁾ = α Hᵀy with one learnable scale α initialized to
//!   M/(M+N), the scalar minimizing E‖x − αHᵀy‖² for i.i.d. Rayleigh at high SNR
//!   (E‖HᵀHx‖² ≈ (1 + N/M)·E‖x‖² because the columns of H have unit expected squared norm).
//!
//! Initial parameters: η_k = 0.1 and λ_k = 0.05 (the paper), ρ_k = 0.5, τ_k = 0.5
//! (θ_k = ln 0.5), β_k = 0.3. The raw η·HᵀH step on unnormalized levels is well scaled because
//! E‖h_col‖² = 1.
//!
//! # Parameters
//!
//! [`UnfoldedNet::params`] is one flat vector, in blocks of K values in this order, each block
//! present only where the configuration uses it: `eta`, `rho` (ADMM), `lambda` (soft) or
//! `log_tau` (qam), `beta` (momentum); then the single `mf_scale` (matched-filter init).
//! [`UnfoldedNet::validate`] requires the right length, finite values, λ_k ≥ 0 and
//! |ln τ_k| ≤ [`MAX_LOG_TAU`]; [`UnfoldedNet::project`] clamps a net into that domain (call it
//! after each optimizer step).
//!
//! # Loss
//!
//! L = (1/B) Σ_b ‖x_b − x̂_b‖², x̂ the net output, B the batch size (docs/f32-nets.md). The backward
//! passes are derived by hand in the docs of `pgd.rs` and `admm.rs` (reverse through the layers
//! carrying ∂L/∂x⁽ᵏ⁾, and ∂L/∂s⁽ᵏ⁾, ∂L/∂u⁽ᵏ⁾ for ADMM), the prox derivatives in [`prox`].
//!
//! # Execution
//!
//! The batch is cut into fixed chunks of 8 samples run in parallel (rayon), each with its own
//! preallocated workspace; parameter gradients are accumulated in f64 per chunk and the chunks
//! are summed in order. Per sample and layer the datapath is two contiguous matrix–vector
//! products (H v as row dot products, Hᵀe as row axpys); the training forward pass keeps
//! x⁽ᵏ⁾ (and s⁽ᵏ⁾, u⁽ᵏ⁾), g⁽ᵏ⁾ and the prox derivatives, so the backward pass costs two more
//! products per layer (HᵀH δ as Hᵀ(H δ)) and no exponentials. `reference.rs` (tests only) is the
//! slow f64 implementation written straight from the equations above.

mod admm;
pub(crate) mod batch;
mod matvec;
mod pgd;
pub mod prox;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::detect::Detector;
use crate::error::ModelError;
use crate::link::{FrameBatch, LinkConfig, MAX_ANTENNAS};
use prox::ProxOp;

pub use kaq_ir::vocab::MAX_LAYERS;

/// Largest |ln τ| of the qam prox accepted by [`UnfoldedNet::validate`].
pub const MAX_LOG_TAU: f32 = 20.0;

/// Initial step size η_k (the paper).
pub const INIT_ETA: f32 = 0.1;
/// Initial soft threshold λ_k (the paper).
pub const INIT_LAMBDA: f32 = 0.05;
/// Initial ADMM penalty ρ_k.
pub const INIT_RHO: f32 = 0.5;
/// Initial qam temperature τ_k.
pub const INIT_TAU: f32 = 0.5;
/// Initial momentum β_k.
pub const INIT_BETA: f32 = 0.3;

pub use kaq_ir::vocab::Arch;

/// The proximal operator of every layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prox {
    /// Soft threshold with learnable λ_k (paper eq. 8).
    Soft,
    /// Clip to the alphabet's range [−(L−1), L−1].
    Box,
    /// Posterior-mean QAM denoiser with learnable temperature τ_k.
    Qam,
}

/// The first estimate x⁽⁰⁾.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Init {
    /// x⁽⁰⁾ = 0.
    #[serde(rename = "zero")]
    Zero,
    /// x⁽⁰⁾ = α Hᵀy with a learnable scale α.
    #[serde(rename = "mf")]
    MatchedFilter,
}

macro_rules! name_enum {
    ($ty:ty, $what:literal, $($variant:ident => $name:literal),+ $(,)?) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $(Self::$variant => $name),+ })
            }
        }

        impl FromStr for $ty {
            type Err = ModelError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($name => Ok(Self::$variant),)+
                    _ => Err(ModelError::UnknownName {
                        what: $what,
                        given: s.to_string(),
                        expected: [$($name),+].join(", "),
                    }),
                }
            }
        }
    };
}

name_enum!(Prox, "prox", Soft => "soft", Box => "box", Qam => "qam");
name_enum!(Init, "initialization", Zero => "zero", MatchedFilter => "mf");

/// The architecture of an unfolded net.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// PGD-Net or ADMM-Net.
    pub arch: Arch,
    /// The prox of every layer.
    pub prox: Prox,
    /// Number of unfolded layers K, 1..=[`MAX_LAYERS`].
    pub layers: usize,
    /// Heavy-ball momentum with learnable β_k.
    pub momentum: bool,
    /// The first estimate x⁽⁰⁾.
    pub init: Init,
}

impl Default for NetConfig {
    /// The paper's PGD-Net: soft threshold, 5 layers, no momentum, x⁽⁰⁾ = 0.
    fn default() -> Self {
        Self {
            arch: Arch::Pgd,
            prox: Prox::Soft,
            layers: 5,
            momentum: false,
            init: Init::Zero,
        }
    }
}

/// Where each parameter block starts in the flat parameter vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    layers: usize,
    eta: usize,
    rho: Option<usize>,
    prox: Option<usize>,
    beta: Option<usize>,
    mf_scale: Option<usize>,
    len: usize,
}

impl Layout {
    fn of(config: &NetConfig) -> Self {
        let k = config.layers;
        let mut next = 0;
        let mut block = |present: bool, size: usize| {
            present.then(|| {
                let at = next;
                next += size;
                at
            })
        };
        let eta = block(true, k).unwrap_or(0);
        let rho = block(config.arch == Arch::Admm, k);
        let prox = block(config.prox != Prox::Box, k);
        let beta = block(config.momentum, k);
        let mf_scale = block(config.init == Init::MatchedFilter, 1);
        Self {
            layers: k,
            eta,
            rho,
            prox,
            beta,
            mf_scale,
            len: next,
        }
    }
}

/// One layer's parameters, resolved for the kernels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerParams {
    pub eta: f32,
    pub rho: f32,
    pub beta: f32,
    pub prox: ProxOp<f32>,
}

/// Indices of one layer's parameters in the flat vector (for scattering gradients).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerSlots {
    pub eta: usize,
    pub rho: Option<usize>,
    pub prox: Option<usize>,
    pub beta: Option<usize>,
}

/// A minibatch in f32, row-major, sample after sample: H is `batch × m × n`, y `batch × m`,
/// x `batch × n` (transmitted levels as f32), noise_var `batch` (complex σ² as in
/// [`FrameBatch`]).
#[derive(Debug, Clone, Copy)]
pub struct TrainBatch<'a> {
    /// Number of samples.
    pub batch: usize,
    /// Rows of H̃.
    pub m: usize,
    /// Columns of H̃.
    pub n: usize,
    /// H̃ of every sample.
    pub h: &'a [f32],
    /// ỹ of every sample.
    pub y: &'a [f32],
    /// Transmitted levels of every sample.
    pub x: &'a [f32],
    /// Complex noise variance σ² of every sample.
    pub noise_var: &'a [f32],
}

/// Owned f32 copies of a range of frames of a [`FrameBatch`]: the buffers a [`TrainBatch`]
/// views. The one place where f64 frames become the nets' f32 inputs outside training sets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct F32Frames {
    /// Number of samples.
    pub batch: usize,
    /// Rows of H̃.
    pub m: usize,
    /// Columns of H̃.
    pub n: usize,
    /// H̃ of every sample, `batch × m × n`.
    pub h: Vec<f32>,
    /// ỹ of every sample, `batch × m`.
    pub y: Vec<f32>,
    /// Transmitted levels of every sample, `batch × n`.
    pub x: Vec<f32>,
    /// Complex noise variance σ² of every sample.
    pub noise_var: Vec<f32>,
}

impl F32Frames {
    /// Converts frames `range` of `frames` to f32. A range past the end of any field of the
    /// batch is a [`ModelError::Shape`] naming the field.
    pub fn from_frames(frames: &FrameBatch, range: Range<usize>) -> Result<Self, ModelError> {
        let (m, n) = (frames.m, frames.n);
        fn field<T: Copy>(
            name: &str,
            values: &[T],
            per: usize,
            range: &Range<usize>,
            to: impl Fn(T) -> f32,
        ) -> Result<Vec<f32>, ModelError> {
            values
                .get(range.start * per..range.end * per)
                .map(|v| v.iter().map(|&a| to(a)).collect())
                .ok_or_else(|| {
                    ModelError::Shape(format!(
                        "frame batch field {name} holds {} values, frames {}..{} need {}",
                        values.len(),
                        range.start,
                        range.end,
                        range.end * per
                    ))
                })
        }
        Ok(Self {
            batch: range.len(),
            m,
            n,
            h: field("h", &frames.h, m * n, &range, |v| v as f32)?,
            y: field("y", &frames.y, m, &range, |v| v as f32)?,
            x: field("x", &frames.x, n, &range, |v| v as f32)?,
            noise_var: field("noise_var", &frames.noise_var, 1, &range, |v| v as f32)?,
        })
    }

    /// The minibatch view of these buffers.
    pub fn as_batch(&self) -> TrainBatch<'_> {
        TrainBatch {
            batch: self.batch,
            m: self.m,
            n: self.n,
            h: &self.h,
            y: &self.y,
            x: &self.x,
            noise_var: &self.noise_var,
        }
    }
}

impl TrainBatch<'_> {
    /// Checks that every slice holds exactly the values the shape calls for.
    pub fn check(&self) -> Result<(), ModelError> {
        let b = self.batch;
        for (field, len, want) in [
            (
                "h",
                self.h.len(),
                b.checked_mul(self.m).and_then(|v| v.checked_mul(self.n)),
            ),
            ("y", self.y.len(), b.checked_mul(self.m)),
            ("x", self.x.len(), b.checked_mul(self.n)),
            ("noise_var", self.noise_var.len(), Some(b)),
        ] {
            if Some(len) != want {
                return Err(ModelError::Shape(format!(
                    "training batch field {field} holds {len} values, \
                     shape batch = {b}, m = {}, n = {} needs {}",
                    self.m,
                    self.n,
                    want.map_or("more than usize::MAX".to_string(), |w| w.to_string())
                )));
            }
        }
        Ok(())
    }
}

/// A PGD-Net or ADMM-Net for one link, with its learnable parameters.
///
/// Deserializing validates (see [`UnfoldedNet::validate`]), so a loaded net always has a
/// consistent parameter vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "UnfoldedNetFile")]
pub struct UnfoldedNet {
    config: NetConfig,
    link: LinkConfig,
    params: Vec<f32>,
}

/// The serialized form of [`UnfoldedNet`], validated on conversion.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnfoldedNetFile {
    config: NetConfig,
    link: LinkConfig,
    params: Vec<f32>,
}

impl TryFrom<UnfoldedNetFile> for UnfoldedNet {
    type Error = ModelError;

    fn try_from(file: UnfoldedNetFile) -> Result<Self, Self::Error> {
        let net = Self {
            config: file.config,
            link: file.link,
            params: file.params,
        };
        net.validate()?;
        Ok(net)
    }
}

impl UnfoldedNet {
    /// A net with the initial parameters of the module docs.
    pub fn new(config: NetConfig, link: &LinkConfig) -> Result<Self, ModelError> {
        check_config(&config, link)?;
        let layout = Layout::of(&config);
        let k = config.layers;
        let mut params = vec![INIT_ETA; layout.len];
        if let Some(at) = layout.rho {
            params[at..at + k].fill(INIT_RHO);
        }
        if let Some(at) = layout.prox {
            let init = match config.prox {
                Prox::Soft => INIT_LAMBDA,
                Prox::Qam => INIT_TAU.ln(),
                Prox::Box => unreachable!("box has no parameter block"),
            };
            params[at..at + k].fill(init);
        }
        if let Some(at) = layout.beta {
            params[at..at + k].fill(INIT_BETA);
        }
        if let Some(at) = layout.mf_scale {
            let (m, n) = (link.m() as f32, link.n() as f32);
            params[at] = m / (m + n);
        }
        let net = Self {
            config,
            link: link.clone(),
            params,
        };
        net.validate()?;
        Ok(net)
    }

    /// The architecture.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// The link the net detects.
    pub fn link(&self) -> &LinkConfig {
        &self.link
    }

    /// The learnable parameters (layout in the module docs).
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The learnable parameters, for an optimizer.
    pub fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    /// The name of every parameter, in the order of [`UnfoldedNet::params`]: `eta[0]`, …,
    /// `rho[k]`, `lambda[k]` or `log_tau[k]`, `beta[k]`, `mf_scale`.
    pub fn param_names(&self) -> Vec<String> {
        let layout = Layout::of(&self.config);
        let mut names = vec![String::new(); layout.len];
        let prox_name = match self.config.prox {
            Prox::Soft => "lambda",
            Prox::Qam => "log_tau",
            Prox::Box => "",
        };
        for (name, at) in [
            ("eta", Some(layout.eta)),
            ("rho", layout.rho),
            (prox_name, layout.prox),
            ("beta", layout.beta),
        ] {
            if let Some(at) = at {
                for k in 0..layout.layers {
                    names[at + k] = format!("{name}[{k}]");
                }
            }
        }
        if let Some(at) = layout.mf_scale {
            names[at] = "mf_scale".to_string();
        }
        names
    }

    /// Checks the configuration, the parameter count, finiteness, λ_k ≥ 0 (soft) and
    /// |ln τ_k| ≤ [`MAX_LOG_TAU`] (qam).
    pub fn validate(&self) -> Result<(), ModelError> {
        check_config(&self.config, &self.link)?;
        let layout = Layout::of(&self.config);
        if self.params.len() != layout.len {
            return Err(ModelError::InvalidDimension {
                name: "params",
                value: self.params.len(),
                reason: "does not match the parameter count of the net's configuration",
            });
        }
        let names = self.param_names();
        for (name, &v) in names.iter().zip(&self.params) {
            if !v.is_finite() {
                return Err(ModelError::NonFinite(format!("parameter {name} = {v}")));
            }
        }
        if let Some(at) = layout.prox {
            for &v in &self.params[at..at + layout.layers] {
                match self.config.prox {
                    Prox::Soft if v < 0.0 => {
                        return Err(ModelError::InvalidParameter {
                            name: "lambda",
                            value: v as f64,
                            reason: "the soft threshold must be non-negative",
                        });
                    }
                    Prox::Qam if v.abs() > MAX_LOG_TAU => {
                        return Err(ModelError::InvalidParameter {
                            name: "log_tau",
                            value: v as f64,
                            reason: "the qam temperature's logarithm must be within ±20",
                        });
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Clamps the parameters into the domain [`UnfoldedNet::validate`] accepts (λ_k ≥ 0,
    /// |ln τ_k| ≤ [`MAX_LOG_TAU`]); non-finite values are left for `validate` to report.
    pub fn project(&mut self) {
        let layout = Layout::of(&self.config);
        if let Some(at) = layout.prox {
            for v in &mut self.params[at..at + layout.layers] {
                *v = match self.config.prox {
                    Prox::Soft => v.max(0.0),
                    Prox::Qam => v.clamp(-MAX_LOG_TAU, MAX_LOG_TAU),
                    Prox::Box => *v,
                };
            }
        }
    }

    /// Checks a training batch: consistent slice lengths, and m, n of the net's link.
    pub fn check(&self, data: &TrainBatch<'_>) -> Result<(), ModelError> {
        data.check()?;
        if data.m != self.link.m() || data.n != self.link.n() {
            return Err(ModelError::Shape(format!(
                "batch is {}×{}, the net's link {}x{} {} needs m×n = {}×{}",
                data.m,
                data.n,
                self.link.nt,
                self.link.nr,
                self.link.modulation,
                self.link.m(),
                self.link.n()
            )));
        }
        Ok(())
    }

    /// Mean over the batch of ‖x − x⁽ᴷ⁾‖²; writes d(loss)/d(params) into `grad`.
    ///
    /// `data` must have passed [`UnfoldedNet::check`] (debug builds assert it; release builds
    /// may panic on an out-of-bounds slice but never read past it). Panics if
    /// `grad.len() != self.params().len()`. Runs in parallel over fixed chunks of the batch and
    /// sums the chunks in order, so the result does not depend on the thread count.
    pub fn loss_and_grad(&self, data: &TrainBatch<'_>, grad: &mut [f32]) -> f32 {
        debug_assert!(self.check(data).is_ok(), "{:?}", self.check(data));
        assert_eq!(
            grad.len(),
            self.params.len(),
            "gradient buffer length must equal the parameter count"
        );
        batch::loss_and_grad(self, data, grad)
    }

    /// Writes x⁽ᴷ⁾ (the net output) of every sample into `out` (`batch × n`).
    ///
    /// `data` must have passed [`UnfoldedNet::check`]; panics if `out.len() != batch × n`.
    pub fn forward(&self, data: &TrainBatch<'_>, out: &mut [f32]) {
        debug_assert!(self.check(data).is_ok(), "{:?}", self.check(data));
        assert_eq!(
            out.len(),
            data.batch * data.n,
            "output buffer must hold batch × n values"
        );
        batch::forward(self, data, out);
    }

    /// The resolved per-layer parameters and their slots.
    pub(crate) fn layers(&self) -> Vec<(LayerParams, LayerSlots)> {
        let layout = Layout::of(&self.config);
        let p = &self.params;
        let modulation = self.link.modulation;
        (0..layout.layers)
            .map(|k| {
                let slots = LayerSlots {
                    eta: layout.eta + k,
                    rho: layout.rho.map(|at| at + k),
                    prox: layout.prox.map(|at| at + k),
                    beta: layout.beta.map(|at| at + k),
                };
                let params = LayerParams {
                    eta: p[slots.eta],
                    rho: slots.rho.map_or(0.0, |i| p[i]),
                    beta: slots.beta.map_or(0.0, |i| p[i]),
                    prox: ProxOp::new(
                        self.config.prox,
                        modulation,
                        slots.prox.map_or(0.0, |i| p[i]),
                    ),
                };
                (params, slots)
            })
            .collect()
    }

    /// The slot of the matched-filter scale, if any.
    pub(crate) fn mf_slot(&self) -> Option<usize> {
        Layout::of(&self.config).mf_scale
    }
}

fn check_config(config: &NetConfig, link: &LinkConfig) -> Result<(), ModelError> {
    if config.layers == 0 || config.layers > MAX_LAYERS {
        return Err(ModelError::InvalidDimension {
            name: "layers",
            value: config.layers,
            reason: "must be between 1 and 64",
        });
    }
    for (name, value) in [("nt", link.nt), ("nr", link.nr)] {
        if value == 0 || value > MAX_ANTENNAS {
            return Err(ModelError::InvalidDimension {
                name,
                value,
                reason: "must be between 1 and 256",
            });
        }
    }
    Ok(())
}

/// Frames converted to f32 per parallel chunk in [`Detector::detect`].
const DETECT_CHUNK: usize = 64;

impl Detector for UnfoldedNet {
    /// `{arch}-{prox}-k{K}`, with `-momentum` and `-mf` appended when configured
    /// (for example `pgd-soft-k5`).
    fn name(&self) -> String {
        let c = &self.config;
        let mut name = format!("{}-{}-k{}", c.arch, c.prox, c.layers);
        if c.momentum {
            name.push_str("-momentum");
        }
        if c.init == Init::MatchedFilter {
            name.push_str("-mf");
        }
        name
    }

    /// Converts the frames to f32 in chunks, runs [`UnfoldedNet::forward`] and slices every
    /// output to the nearest alphabet level.
    fn detect(&self, frames: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError> {
        use rayon::prelude::*;
        frames.check_decisions(decisions)?;
        if frames.m != self.link.m()
            || frames.n != self.link.n()
            || frames.link.modulation != self.link.modulation
        {
            return Err(ModelError::Shape(format!(
                "frames are {}×{} {}, detector {} needs {}×{} {}",
                frames.m,
                frames.n,
                frames.link.modulation,
                self.name(),
                self.link.m(),
                self.link.n(),
                self.link.modulation
            )));
        }
        let (m, n) = (frames.m, frames.n);
        let expected = [
            ("h", frames.h.len(), frames.frames * m * n),
            ("y", frames.y.len(), frames.frames * m),
            ("x", frames.x.len(), frames.frames * n),
            ("noise_var", frames.noise_var.len(), frames.frames),
        ];
        for (field, len, want) in expected {
            if len != want {
                return Err(ModelError::Shape(format!(
                    "frame batch field {field} holds {len} values, {} frames need {want}",
                    frames.frames
                )));
            }
        }
        if n == 0 || frames.frames == 0 {
            return Ok(());
        }
        let modulation = self.link.modulation;
        decisions
            .par_chunks_mut(DETECT_CHUNK * n)
            .enumerate()
            .try_for_each(|(chunk, out)| {
                let first = chunk * DETECT_CHUNK;
                let count = out.len() / n;
                let owned = F32Frames::from_frames(frames, first..first + count)?;
                let mut estimate = vec![0.0f32; count * n];
                batch::forward(self, &owned.as_batch(), &mut estimate);
                for (d, &v) in out.iter_mut().zip(&estimate) {
                    *d = modulation.slice(v as f64);
                }
                Ok(())
            })
    }
}
