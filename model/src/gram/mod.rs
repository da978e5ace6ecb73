//! Gram-domain detectors with a per-channel stage (docs/f32-nets.md): the EP-class EPNet, the
//! LMMSE-class OAMP-Net2 with a per-block bank of LMMSE matrices, and the inverse-free unfolded
//! conjugate-gradient net. f32 with hand-derived gradients; docs/f32-nets.md has the results.
//!
//! # Structure
//!
//! Every family splits into a **per-channel stage** ([`stage::Stage`]), computed once per
//! channel block from H̃ and σ² — the Gram G = H̃ᵀH̃, and what the family needs on top of it —
//! and **per-vector layers** that start from z = H̃ᵀỹ. With block fading (`LinkConfig::block`)
//! one stage serves T vectors; the drivers recompute it exactly when H̃ or σ² changes between
//! consecutive samples, so any batch layout is detected correctly. [`GramNet::cost`] states the
//! multiplies, adds, reciprocals and square roots of each part; [`Cost::per_vector_amortized`]
//! spreads the stage over T vectors.
//!
//! Every operation is a multiply, an add, a comparison, a reciprocal (named, counted in
//! [`Ops::recips`]) or an element-wise function of quantizable inputs (the denoiser of
//! [`denoise`], a table in the integer model; counted in [`Ops::tables`]). Learned parameters
//! that are stored through a logarithm (floors, scales) are exponentiated once per parameter
//! set, never per vector.
//!
//! Notation: M×N real channel H, y, s2 = σ²/2 (noise variance per real dimension, σ² the
//! complex variance of the frame), E_s the symbol energy per real dimension (5 for 16-QAM),
//! K = `layers`, k = 0..K−1 the layer index used in the parameter names, gq(t, h) = (m, v) the
//! posterior mean and variance of [`denoise::GaussQam`].
//!
//! # EPNet (`ep`, [`ep`])
//! Expectation propagation with learned damping β_k and variance floor ε_k. λ⁽⁰⁾ = 1/E_s,
//! γ⁽⁰⁾ = 0; layer k: A = G + s2·diag(λ), P = A⁻¹ (per vector: λ depends on the vector),
//! μ = P(z + s2γ), c_i = max(1 − s2 P_ii λ_i, 10⁻⁵), cavity t_i = (μ_i − s2 P_ii γ_i)/c_i and
//! h_i = s2 P_ii/c_i, (m, v) = gq(t, h). Output m of layer K−1. Layers k < K−1 update
//! v′ = max(v, ε_k), λ̂ = 1/v′ − 1/h, γ̂ = m/v′ − t/h (kept at the old λ, γ where λ̂ < 0),
//! λ ← β_k λ̂ + (1 − β_k) λ, γ ← β_k γ̂ + (1 − β_k) γ (β weighs the new message).
//! Parameters: `beta[k]`, `log_floor[k]` for k < K−1 (init 0.9 and ln 10⁻³).
//!
//! # OAMP-Net2 with an LMMSE bank (`oamp`, [`oamp`])
//! Per block: Q_j = (G + δ_j I)⁻¹ for δ_j = (s2/E_s)·8^j, j < J = 6 (the LMMSE matrix of prior
//! variance E_s/8^j), with α_j = N/tr(Q_j G), F_j = ‖Q_j G‖²_F and T_j = tr(Q_j G Q_j) from
//! tr Q_j and ‖Q_j‖²_F (Q G = I − δQ). x⁽⁰⁾ = 0; layer k: u = Gx, e = z − u,
//! v² = max((‖y‖² − 2xᵀz + xᵀu − M s2)/tr G, 10⁻⁴), j the bank entry whose prior variance is
//! nearest to v² on a log scale (comparisons against fixed thresholds), r = x + γ_k α_j Q_j e,
//! τ² = v²(1 − 2θ_k + θ_k² α_j² F_j/N) + s2 θ_k² α_j² T_j/N, x ← φ_k (gq(r, τ²).m − ξ_k r).
//! Parameters: `gamma[k]`, `theta[k]`, `phi[k]`, `xi[k]` (init 1, 1, 1, 0).
//!
//! # Unfolded conjugate gradient (`cg`, [`cg`])
//! Inverse-free: per block only G, tr G and D = diag(G)⁻¹. x⁽⁰⁾ = 0; layer k: u = Gx,
//! e = z − u, v² as for OAMP, δ = s2·e^{ρ_k}; L inner steps of a Jacobi-preconditioned two-term
//! recurrence with learned steps on (G + δI) d = e: d₀ = 0, ρ₀ = e,
//! p_l = D ρ_l + β_{k,l} p_{l−1} (β_{k,0} = 0), d_{l+1} = d_l + ω_{k,l} p_l,
//! ρ_{l+1} = e − (G + δI) d_{l+1}; then r = x + γ_k d_L, τ² = e^{a_k} v² + e^{b_k} s2,
//! x ← gq(r, τ²).m. Parameters: `log_delta[k]`, `gamma[k]`, `log_tv[k]`, `log_ts[k]`,
//! `omega[k,l]`, `beta[k,l]` (l ≥ 1) (init ln(1/E_s), 1, 0, 0, 0.4, 0).
//!
//! # Loss and gradients
//! L = (1/B) Σ_b ‖x_b − x̂_b‖². The backward passes are derived in each family's module docs and
//! checked against f64 central differences of the same generic code in property tests
//! (`tests.rs`); parameters that no path reaches get a zero gradient. Branches (floors, the
//! EP keep rule, the bank choice) are piecewise: the derivative of the taken branch.

pub(crate) mod batch;
pub mod cg;
pub mod denoise;
pub mod ep;
pub mod ep_quant;
#[cfg(test)]
mod ep_quant_tests;
pub mod file;
#[cfg(test)]
mod ir_inputs_tests;
pub mod linalg;
pub mod oamp;
pub mod oamp_qat;
#[cfg(test)]
mod oamp_qat_tests;
pub mod oamp_quant;
#[cfg(test)]
mod oamp_quant_tests;
pub mod qat;
#[cfg(test)]
mod qat_tests;
pub mod quantized;
#[cfg(test)]
mod quantized_tests;
pub mod refine;
#[cfg(test)]
mod refine_tests;
pub mod stage;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
#[cfg(test)]
mod tests;
pub mod train;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::detect::Detector;
use crate::error::ModelError;
use crate::link::{FrameBatch, LinkConfig};
use crate::unfolded::{F32Frames, TrainBatch};

/// Largest number of layers accepted.
pub const MAX_LAYERS: usize = 64;
/// Largest number of inner steps of the `cg` family.
pub const MAX_INNER: usize = 32;
/// Entries of the OAMP LMMSE bank.
pub const OAMP_BANK: usize = 6;
/// Ratio between the regularizers of neighbouring bank entries.
pub const OAMP_BANK_RATIO: f64 = 8.0;

/// A Gram-domain detector family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// EPNet: expectation propagation with learned damping and variance floors.
    Ep,
    /// OAMP-Net2 with a per-block bank of LMMSE matrices.
    Oamp,
    /// Inverse-free unfolded conjugate gradient with learned steps.
    Cg,
}

impl Family {
    /// Every family, in documentation order.
    pub const ALL: [Family; 3] = [Family::Ep, Family::Oamp, Family::Cg];
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ep => "ep",
            Self::Oamp => "oamp",
            Self::Cg => "cg",
        })
    }
}

impl FromStr for Family {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ep" => Ok(Self::Ep),
            "oamp" => Ok(Self::Oamp),
            "cg" => Ok(Self::Cg),
            _ => Err(ModelError::UnknownName {
                what: "Gram-domain family",
                given: s.to_string(),
                expected: "ep, oamp, cg".into(),
            }),
        }
    }
}

/// The architecture of a Gram-domain net.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GramConfig {
    /// The family.
    pub family: Family,
    /// Layers K, 1..=[`MAX_LAYERS`].
    pub layers: usize,
    /// Inner steps L per layer (`cg` only; must be 0 for the others).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inner: usize,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

impl GramConfig {
    /// The default configuration of `family` with `layers` layers (`cg`: 4 inner steps).
    pub fn new(family: Family, layers: usize) -> Self {
        Self {
            family,
            layers,
            inner: if family == Family::Cg { 4 } else { 0 },
        }
    }

    fn check(&self) -> Result<(), ModelError> {
        if self.layers == 0 || self.layers > MAX_LAYERS {
            return Err(ModelError::InvalidDimension {
                name: "layers",
                value: self.layers,
                reason: "must be between 1 and 64",
            });
        }
        match self.family {
            Family::Cg if self.inner == 0 || self.inner > MAX_INNER => {
                Err(ModelError::InvalidDimension {
                    name: "inner",
                    value: self.inner,
                    reason: "the cg family needs between 1 and 32 inner steps",
                })
            }
            Family::Ep | Family::Oamp if self.inner != 0 => Err(ModelError::InvalidDimension {
                name: "inner",
                value: self.inner,
                reason: "only the cg family has inner steps",
            }),
            _ => Ok(()),
        }
    }
}

/// Counts of the operations hardware must do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ops {
    /// Multiplies.
    pub mults: u64,
    /// Adds and subtracts.
    pub adds: u64,
    /// Reciprocals (divisions).
    pub recips: u64,
    /// Square roots.
    pub sqrts: u64,
    /// Evaluations of an element-wise table (the denoiser).
    pub tables: u64,
}

impl std::ops::Add for Ops {
    type Output = Ops;
    fn add(self, o: Ops) -> Ops {
        Ops {
            mults: self.mults + o.mults,
            adds: self.adds + o.adds,
            recips: self.recips + o.recips,
            sqrts: self.sqrts + o.sqrts,
            tables: self.tables + o.tables,
        }
    }
}

impl std::ops::Mul<u64> for Ops {
    type Output = Ops;
    fn mul(self, k: u64) -> Ops {
        Ops {
            mults: self.mults * k,
            adds: self.adds * k,
            recips: self.recips * k,
            sqrts: self.sqrts * k,
            tables: self.tables * k,
        }
    }
}

/// The cost of a detector: its per-channel stage and its per-vector work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// Once per channel block.
    pub per_block: Ops,
    /// Once per received vector.
    pub per_vector: Ops,
}

impl Cost {
    /// Per-vector operations with the per-block stage spread over `block` vectors (rounded up).
    pub fn per_vector_amortized(&self, block: usize) -> Ops {
        let t = block.max(1) as u64;
        let b = self.per_block;
        self.per_vector
            + Ops {
                mults: b.mults.div_ceil(t),
                adds: b.adds.div_ceil(t),
                recips: b.recips.div_ceil(t),
                sqrts: b.sqrts.div_ceil(t),
                tables: b.tables.div_ceil(t),
            }
    }
}

/// The blocks of the flat parameter vector of a configuration: (name, length, initial value).
fn blocks(config: &GramConfig, link: &LinkConfig) -> Vec<(&'static str, usize, f32)> {
    let k = config.layers;
    let es = es_dim(link) as f32;
    match config.family {
        Family::Ep => vec![
            ("beta", k - 1, ep::INIT_BETA),
            ("log_floor", k - 1, ep::INIT_FLOOR.ln()),
        ],
        Family::Oamp => vec![
            ("gamma", k, 1.0),
            ("theta", k, 1.0),
            ("phi", k, 1.0),
            ("xi", k, 0.0),
        ],
        Family::Cg => {
            let l = config.inner;
            vec![
                ("log_delta", k, (1.0 / es).ln()),
                ("gamma", k, 1.0),
                ("log_tv", k, 0.0),
                ("log_ts", k, 0.0),
                ("omega", k * l, cg::INIT_OMEGA),
                ("beta", k * (l - 1), 0.0),
            ]
        }
    }
}

/// Symbol energy per real dimension.
pub(crate) fn es_dim(link: &LinkConfig) -> f64 {
    link.modulation.es() / link.modulation.real_dims_per_symbol() as f64
}

/// A Gram-domain net for one link, with its learnable parameters.
///
/// Deserializing validates, so a loaded net always has a consistent parameter vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GramNetFile")]
pub struct GramNet {
    config: GramConfig,
    link: LinkConfig,
    params: Vec<f32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GramNetFile {
    config: GramConfig,
    link: LinkConfig,
    params: Vec<f32>,
}

impl TryFrom<GramNetFile> for GramNet {
    type Error = ModelError;
    fn try_from(f: GramNetFile) -> Result<Self, ModelError> {
        let net = Self {
            config: f.config,
            link: f.link,
            params: f.params,
        };
        net.validate()?;
        Ok(net)
    }
}

impl GramNet {
    /// A net with the initial parameters of the module docs.
    pub fn new(config: GramConfig, link: &LinkConfig) -> Result<Self, ModelError> {
        config.check()?;
        link.validate()?;
        let params = blocks(&config, link)
            .into_iter()
            .flat_map(|(_, len, init)| std::iter::repeat_n(init, len))
            .collect();
        let net = Self {
            config,
            link: link.clone(),
            params,
        };
        net.validate()?;
        Ok(net)
    }

    /// The architecture.
    pub fn config(&self) -> &GramConfig {
        &self.config
    }

    /// The link the net detects.
    pub fn link(&self) -> &LinkConfig {
        &self.link
    }

    /// The learnable parameters, in the block order of the module docs.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The learnable parameters, for an optimizer.
    pub fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    /// `name[k]` (or `name[k,l]` for the cg inner steps) of every parameter.
    pub fn param_names(&self) -> Vec<String> {
        let inner = self.config.inner;
        let mut names = Vec::with_capacity(self.params.len());
        for (name, len, _) in blocks(&self.config, &self.link) {
            for i in 0..len {
                names.push(match (self.config.family, name) {
                    (Family::Cg, "omega") => format!("{name}[{},{}]", i / inner, i % inner),
                    (Family::Cg, "beta") => {
                        format!("{name}[{},{}]", i / (inner - 1), i % (inner - 1) + 1)
                    }
                    _ => format!("{name}[{i}]"),
                });
            }
        }
        names
    }

    /// Offsets of each parameter block, in [`blocks`] order.
    pub(crate) fn offsets(&self) -> Vec<usize> {
        let mut at = 0;
        blocks(&self.config, &self.link)
            .into_iter()
            .map(|(_, len, _)| {
                let start = at;
                at += len;
                start
            })
            .collect()
    }

    /// Checks the configuration, the link, the parameter count and finiteness, and the
    /// parameter domains (EP: 0 < β ≤ 1, |ln ε| ≤ 30; log-scales within ±30).
    pub fn validate(&self) -> Result<(), ModelError> {
        self.config.check()?;
        self.link.validate()?;
        let want: usize = blocks(&self.config, &self.link).iter().map(|b| b.1).sum();
        if self.params.len() != want {
            return Err(ModelError::InvalidDimension {
                name: "params",
                value: self.params.len(),
                reason: "does not match the parameter count of the net's configuration",
            });
        }
        for (name, &v) in self.param_names().iter().zip(&self.params) {
            if !v.is_finite() {
                return Err(ModelError::NonFinite(format!("parameter {name} = {v}")));
            }
            let base = name.split('[').next().unwrap_or("");
            let ok = match (self.config.family, base) {
                (Family::Ep, "beta") => v > 0.0 && v <= 1.0,
                (_, b) if b.starts_with("log_") => v.abs() <= MAX_LOG,
                _ => true,
            };
            if !ok {
                return Err(ModelError::InvalidParameter {
                    name: "params",
                    value: v as f64,
                    reason: "outside its domain (EP beta in (0, 1], log-scales within ±30)",
                });
            }
        }
        Ok(())
    }

    /// Clamps the parameters into the domain [`GramNet::validate`] accepts.
    pub fn project(&mut self) {
        let names = self.param_names();
        let family = self.config.family;
        for (name, v) in names.iter().zip(self.params.iter_mut()) {
            let base = name.split('[').next().unwrap_or("");
            match (family, base) {
                (Family::Ep, "beta") => *v = v.clamp(ep::MIN_BETA, 1.0),
                (_, b) if b.starts_with("log_") => *v = v.clamp(-MAX_LOG, MAX_LOG),
                _ => {}
            }
        }
    }

    /// Checks a batch against the net's link.
    pub fn check(&self, data: &TrainBatch<'_>) -> Result<(), ModelError> {
        data.check()?;
        if data.m != self.link.m() || data.n != self.link.n() {
            return Err(ModelError::Shape(format!(
                "batch is {}×{}, the net's link needs {}×{}",
                data.m,
                data.n,
                self.link.m(),
                self.link.n()
            )));
        }
        Ok(())
    }

    /// Mean over the batch of ‖x − x̂‖²; writes its gradient into `grad`. Runs in parallel over
    /// chunks of whole channel blocks and sums them in order (thread-count independent).
    pub fn loss_and_grad(&self, data: &TrainBatch<'_>, grad: &mut [f32]) -> f32 {
        debug_assert!(self.check(data).is_ok(), "{:?}", self.check(data));
        assert_eq!(grad.len(), self.params.len(), "gradient buffer length");
        batch::loss_and_grad(self, data, grad)
    }

    /// Writes x̂ of every sample into `out` (`batch × n`).
    pub fn forward(&self, data: &TrainBatch<'_>, out: &mut [f32]) {
        debug_assert!(self.check(data).is_ok(), "{:?}", self.check(data));
        assert_eq!(out.len(), data.batch * data.n, "output buffer length");
        batch::forward(self, data, out);
    }

    /// Multiplies, adds, reciprocals, square roots and table look-ups of the per-channel stage
    /// and of one vector, for this net's link and configuration (counted as the code runs).
    pub fn cost(&self) -> Cost {
        cost(&self.config, &self.link)
    }
}

/// Largest |log-scale parameter| accepted.
pub const MAX_LOG: f32 = 30.0;

/// The cost of a configuration on a link; see [`GramNet::cost`].
pub fn cost(config: &GramConfig, link: &LinkConfig) -> Cost {
    let (m, n) = (link.m(), link.n());
    let per_block = stage::stage_ops(config, m, n);
    let per_vector = match config.family {
        Family::Ep => ep::vector_ops(config.layers, m, n),
        Family::Oamp => oamp::vector_ops(config.layers, m, n),
        Family::Cg => cg::vector_ops(config.layers, config.inner, m, n),
    };
    Cost {
        per_block,
        per_vector,
    }
}

/// Frames converted to f32 per parallel chunk in [`Detector::detect`] (a multiple of every
/// usual block length would be ideal; blocks cut by a chunk only recompute their stage).
const DETECT_CHUNK: usize = 168;

impl Detector for GramNet {
    /// `{family}-k{K}` (cg: `cg-k{K}-l{L}`).
    fn name(&self) -> String {
        match self.config.family {
            Family::Cg => format!("cg-k{}-l{}", self.config.layers, self.config.inner),
            f => format!("{f}-k{}", self.config.layers),
        }
    }

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
        let n = frames.n;
        if n == 0 || frames.frames == 0 {
            return Ok(());
        }
        let modulation = self.link.modulation;
        let chunk = DETECT_CHUNK.div_ceil(frames.link.block.max(1)) * frames.link.block.max(1);
        decisions
            .par_chunks_mut(chunk * n)
            .enumerate()
            .try_for_each(|(c, out)| {
                let first = c * chunk;
                let count = out.len() / n;
                let owned = F32Frames::from_frames(frames, first..first + count)?;
                let mut estimate = vec![0.0f32; count * n];
                batch::forward_serial(self, &owned.as_batch(), &mut estimate);
                for (d, &v) in out.iter_mut().zip(&estimate) {
                    *d = modulation.slice(v as f64);
                }
                Ok(())
            })
    }
}

impl crate::train::Trainable for GramNet {
    fn params(&self) -> &[f32] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }
    fn param_names(&self) -> Vec<String> {
        GramNet::param_names(self)
    }
    fn loss_and_grad(&self, data: &TrainBatch<'_>, grad: &mut [f32]) -> f32 {
        GramNet::loss_and_grad(self, data, grad)
    }
    fn project(&mut self) {
        GramNet::project(self)
    }
}

impl crate::train::Forward for GramNet {
    fn forward(&self, data: &TrainBatch<'_>, out: &mut [f32]) {
        GramNet::forward(self, data, out)
    }
}

/// The float operations the Gram-domain code needs: those of the prox (f32 and f64) plus the
/// conversion to f64 for gradient accumulation.
pub trait Real: crate::unfolded::prox::ProxFloat {
    /// The value as f64.
    fn to_f64(self) -> f64;
}

impl Real for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    fn to_f64(self) -> f64 {
        self
    }
}

/// Whether `a` is not above `b` (a ≤ b, or either is NaN): the test of every floor and clamp,
/// so that a NaN is clamped rather than propagated silently.
pub(crate) fn not_above<F: PartialOrd>(a: F, b: F) -> bool {
    !matches!(a.partial_cmp(&b), Some(std::cmp::Ordering::Greater))
}
