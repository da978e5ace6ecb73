//! The kernel MMD² loss of KAQ (paper §3.2, eqs. 11–14; docs/fixed-point.md) with hand-derived
//! gradients.
//!
//! This module owns the per-layer distribution-matching loss between a frozen f32 teacher and a
//! quantized student, its bandwidth modes, and its gradients with respect to every student
//! activation and to the log-bandwidths. It guarantees that [`Mmd::eval`] returns the gradient
//! of the loss it reports (checked against central finite differences of an independent f64
//! reference in property tests), accumulates every sum in f64, never allocates once its
//! [`MmdWorkspace`] has served one call, and returns a [`ModelError`] naming the offending
//! field or value for any invalid input instead of panicking.
//!
//! # The loss
//!
//! For one layer, a batch of B teacher activations a_i ∈ ℝᴺ and B student activations
//! b_j ∈ ℝᴺ (row-major `B × N` f32 slices), with d(u, v) = ‖u − v‖²:
//!
//! MMD² = K̄₁ + K̄₂ − 2 K̄₃,  K̄₁ = mean K₁(a_i, a_j),  K̄₂ = mean K₂(b_i, b_j),
//! K̄₃ = mean_{i,j} K₃(a_i, b_j),
//!
//! * [`Estimator::Biased`] (the default, paper eq. 11, the V-statistic): K̄₁ and K̄₂ average over
//!   all B² ordered pairs, the diagonal i = j included (each diagonal term is K(0) = 1 per
//!   kernel).
//! * [`Estimator::Unbiased`] (the U-statistic, Gretton et al., JMLR 2012, eq. 3): K̄₁ and K̄₂
//!   average over the B(B−1) pairs i ≠ j; needs B ≥ 2. It can be negative.
//!
//! K̄₃ always averages over all B² pairs.
//!
//! # Kernels and bandwidths ([`Bandwidths`], [`KernelMode`])
//!
//! * `Learnable` (the paper, eq. 12): K_m(u, v) = exp(−d(u, v) / (2σ_m²)), m = 1, 2, 3, with
//!   σ_m parameterized as s_m = ln σ_m so that every optimizer step keeps σ_m > 0. The gradient
//!   ∂MMD²/∂s_m is returned. With d_ij the squared distances and w the pair weights,
//!   ∂K/∂s = K · d / σ².
//! * `Median`: one bandwidth shared by the three kernels, σ = the median of the Euclidean
//!   distances ‖u − v‖ over all unordered pairs of distinct points of the pooled sample
//!   {a_1..a_B, b_1..b_B} (B(2B−1) pairs; with an even count the mean of the two middle
//!   distances) — the median heuristic of Gretton et al., JMLR 2012, §8, with the kernel
//!   exp(−d / (2σ²)). If that median is 0 (many coincident points) the mean pairwise distance
//!   is used; if every point coincides, σ = 1 (the loss and its gradient are then 0 for any σ).
//!   σ is recomputed on every call and treated as a constant: no gradient flows through the
//!   median (a piecewise, almost-everywhere-constant-rank statistic), so the student gradient is
//!   that of the loss at fixed σ, and the log-bandwidth gradient is zero.
//! * `Multi`: a fixed set of bandwidths {σ_s}, the kernel Σ_s exp(−d / (2σ_s²)) shared by the
//!   three terms (a sum of positive-definite kernels is positive definite). The default
//!   [`Bandwidths::multi_for`] uses [`MULTI_FACTORS`] = {0.5, 1, 2, 4, 8} × c with
//!   c = √(2·N·E[x²]) / 2, half the typical distance between two independent activation vectors,
//!   so that the factor 2 sits at that distance and the set spans 1/4 to 4 times it. For 16-QAM
//!   (per-dimension levels ±1, ±3, E[x²] = 5) and N = 32, c = √320 / 2 ≈ 8.94, i.e.
//!   σ ∈ {4.47, 8.94, 17.9, 35.8, 71.6}. The log-bandwidth gradient is zero.
//!
//! # Gradients
//!
//! With ψ(d) = Σ_s K_s(d) / σ_s² (so that ∂K(u, v)/∂u = −ψ · (u − v)), per student row j:
//!
//! ∂MMD²/∂b_j = 2 w₂ Σ_{i≠j} ψ₂(d(b_i, b_j)) (b_i − b_j) + 2 w₃ Σ_i ψ₃(d(a_i, b_j)) (b_j − a_i),
//!
//! with w₂ = 1/B² (biased) or 1/(B(B−1)) (unbiased) and w₃ = 1/B². The factor 2 of the K₂ term
//! comes from b_j appearing as both arguments of the symmetric sum; paper eq. (13) writes 1/B²
//! there, which is the derivative of one argument only. The teacher–teacher term has no student
//! gradient; it contributes to the loss value and to ∂/∂s₁ only.
//!
//! # The learnable-bandwidth trap
//!
//! Minimizing MMD² over the bandwidths does not measure the distributions, it games them: with
//! one shared learnable σ the biased MMD² → 0 as σ → ∞ for any two samples (every kernel value
//! → 1), and with the paper's three independent σ_m the loss is not even bounded below by 0 —
//! shrinking σ₁, σ₂ (K̄₁, K̄₂ → 1/B) and inflating σ₃ (K̄₃ → 1) drives it toward 2/B − 2. A
//! trainer therefore watches [`MmdStats`]: `sigma` (the bandwidths used) and `kernel_means`
//! (K̄₁, K̄₂, K̄₃ per kernel, each in [0, 1]); [`MmdStats::saturation`] → 1 flags σ₃ inflation
//! (every cross pair looks identical), K̄₁, K̄₂ near 1/B flag σ₁, σ₂ collapse. Tying the three
//! bandwidths (sum the three entries of the log-bandwidth gradient) restores MMD² ≥ 0; the
//! median and multi-bandwidth modes avoid the trap by having no learnable bandwidth.
//!
//! # Execution
//!
//! The inputs are widened to f64 once and also kept transposed (N × B). The squared distances
//! are accumulated feature by feature into preallocated B × B buffers (only j > i for the
//! symmetric teacher–teacher and student–student terms), each inner loop running over a
//! contiguous row so that it vectorizes. One pass per term then evaluates the kernels,
//! accumulates the loss and the bandwidth gradient in f64 and leaves ψ in place of the distance;
//! the student gradient is two matrix products of those ψ matrices with the batch, accumulated
//! as N × B. Cost: O(B² · (N + S)) for S kernels, single-threaded and deterministic (the same
//! input gives bit-identical results).

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use crate::error::ModelError;

/// The bandwidth multipliers of [`Bandwidths::multi_for`].
pub const MULTI_FACTORS: [f64; 5] = [0.5, 1.0, 2.0, 4.0, 8.0];

/// Which bandwidth scheme the kernels use (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelMode {
    /// Three learnable bandwidths σ₁, σ₂, σ₃ (the paper).
    Learnable,
    /// One bandwidth per batch from the median heuristic, no gradient.
    Median,
    /// A fixed set of bandwidths, kernels summed.
    Multi,
}

impl KernelMode {
    /// The name used on the command line and in model files.
    pub fn as_str(self) -> &'static str {
        match self {
            KernelMode::Learnable => "learnable",
            KernelMode::Median => "median",
            KernelMode::Multi => "multi",
        }
    }
}

impl fmt::Display for KernelMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KernelMode {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "learnable" => Ok(KernelMode::Learnable),
            "median" => Ok(KernelMode::Median),
            "multi" => Ok(KernelMode::Multi),
            _ => Err(ModelError::UnknownName {
                what: "MMD kernel mode",
                given: s.to_string(),
                expected: "learnable, median, multi".into(),
            }),
        }
    }
}

/// The bandwidths of the three kernels of one layer.
#[derive(Debug, Clone, PartialEq)]
pub enum Bandwidths {
    /// σ_m = exp(log_sigma[m]) for the teacher–teacher, student–student and cross kernels.
    Learnable {
        /// ln σ₁, ln σ₂, ln σ₃.
        log_sigma: [f64; 3],
    },
    /// The median heuristic, recomputed per batch.
    Median,
    /// A fixed set of bandwidths shared by the three terms, kernels summed.
    Multi {
        /// The bandwidths σ_s, each finite and positive.
        sigmas: Vec<f64>,
    },
}

impl Bandwidths {
    /// Learnable bandwidths from σ₁, σ₂, σ₃ (each finite and positive).
    pub fn learnable(sigma: [f64; 3]) -> Result<Self, ModelError> {
        for &s in &sigma {
            check_sigma(s)?;
        }
        Ok(Bandwidths::Learnable {
            log_sigma: sigma.map(f64::ln),
        })
    }

    /// The default multi-bandwidth set for activations of dimension `dim` whose entries have
    /// mean square `mean_square` (5 for 16-QAM levels): [`MULTI_FACTORS`] × √(2·dim·mean_square)/2.
    pub fn multi_for(dim: usize, mean_square: f64) -> Result<Self, ModelError> {
        if dim == 0 {
            return Err(ModelError::InvalidDimension {
                name: "dim",
                value: dim,
                reason: "the activation dimension must be positive",
            });
        }
        if !(mean_square.is_finite() && mean_square > 0.0) {
            return Err(ModelError::InvalidParameter {
                name: "mean_square",
                value: mean_square,
                reason: "the activations' mean square must be finite and positive",
            });
        }
        let scale = (2.0 * dim as f64 * mean_square).sqrt() / 2.0;
        let sigmas: Vec<f64> = MULTI_FACTORS.iter().map(|f| f * scale).collect();
        for &s in &sigmas {
            check_sigma(s)?;
        }
        Ok(Bandwidths::Multi { sigmas })
    }

    /// Which scheme these bandwidths follow.
    pub fn mode(&self) -> KernelMode {
        match self {
            Bandwidths::Learnable { .. } => KernelMode::Learnable,
            Bandwidths::Median => KernelMode::Median,
            Bandwidths::Multi { .. } => KernelMode::Multi,
        }
    }
}

/// Whether the within-sample means include the diagonal (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Estimator {
    /// The V-statistic of paper eq. (11): means over all B² pairs; MMD² ≥ 0 for a shared kernel.
    #[default]
    Biased,
    /// The U-statistic: within-sample means over i ≠ j; needs B ≥ 2.
    Unbiased,
}

/// The MMD² loss of one layer: its bandwidths and estimator.
#[derive(Debug, Clone, PartialEq)]
pub struct Mmd {
    /// The kernels' bandwidths.
    pub bandwidths: Bandwidths,
    /// Biased (paper) or unbiased.
    pub estimator: Estimator,
}

/// What one evaluation reports besides the gradients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MmdStats {
    /// MMD² = K̄₁ + K̄₂ − 2 K̄₃.
    pub loss: f64,
    /// K̄₁, K̄₂, K̄₃ divided by the number of kernels summed, so each lies in [0, 1].
    pub kernel_means: [f64; 3],
    /// The bandwidths σ₁, σ₂, σ₃ used (the median σ three times in `Median` mode); `None` in
    /// `Multi` mode.
    pub sigma: Option<[f64; 3]>,
}

impl MmdStats {
    /// The mean cross-kernel value K̄₃ (per kernel), in [0, 1]: near 1 every teacher–student
    /// pair is within a small fraction of a bandwidth of each other, so the loss can no longer
    /// see the distributions (the bandwidth has outgrown the data).
    pub fn saturation(&self) -> f64 {
        self.kernel_means[2]
    }
}

/// Preallocated buffers for one layer shape; reuse it across calls and layers of that shape.
#[derive(Debug, Clone)]
pub struct MmdWorkspace {
    batch: usize,
    dim: usize,
    /// Activations widened to f64, `B × N` row-major.
    teacher: Vec<f64>,
    student: Vec<f64>,
    /// The same, transposed to `N × B` so that loops over the batch run on contiguous memory.
    teacher_t: Vec<f64>,
    student_t: Vec<f64>,
    /// `B × B` teacher–teacher squared distances; only the strict upper triangle is used.
    dist_tt: Vec<f64>,
    /// `B × B` student–student squared distances (strict upper triangle), overwritten by the
    /// symmetric matrix of ψ₂ (zero diagonal) when a gradient is wanted.
    dist_ss: Vec<f64>,
    /// `B × B` teacher–student squared distances (row i = teacher i), overwritten by ψ₃.
    dist_ts: Vec<f64>,
    /// Scratch for the median selection: squared distances as their IEEE bit patterns, which
    /// order like the values because every squared distance is finite and ≥ +0.
    pooled: Vec<u64>,
    /// Student gradient, `N × B`.
    grad_t: Vec<f64>,
    /// Per student j: Σ_i ψ₂(i, j) and Σ_i ψ₃(i, j).
    psi_ss_sum: Vec<f64>,
    psi_ts_sum: Vec<f64>,
    /// 1/(2σ²) of each kernel of each term.
    inv_two_var: [Vec<f64>; 3],
}

impl MmdWorkspace {
    /// Buffers for `batch` activations of dimension `dim` per side.
    pub fn new(batch: usize, dim: usize) -> Result<Self, ModelError> {
        if batch == 0 {
            return Err(ModelError::InvalidDimension {
                name: "batch",
                value: batch,
                reason: "the MMD needs at least one activation per side",
            });
        }
        if dim == 0 {
            return Err(ModelError::InvalidDimension {
                name: "dim",
                value: dim,
                reason: "the activation dimension must be positive",
            });
        }
        let values = batch.checked_mul(dim).ok_or(ModelError::InvalidDimension {
            name: "batch",
            value: batch,
            reason: "batch × dim overflows usize",
        })?;
        let pairs = batch
            .checked_mul(batch)
            .and_then(|b2| b2.checked_mul(3))
            .ok_or(ModelError::InvalidDimension {
                name: "batch",
                value: batch,
                reason: "the number of pairs overflows usize",
            })?;
        Ok(MmdWorkspace {
            batch,
            dim,
            teacher: vec![0.0; values],
            student: vec![0.0; values],
            teacher_t: vec![0.0; values],
            student_t: vec![0.0; values],
            dist_tt: vec![0.0; batch * batch],
            dist_ss: vec![0.0; batch * batch],
            dist_ts: vec![0.0; batch * batch],
            pooled: Vec::with_capacity(pairs),
            grad_t: vec![0.0; values],
            psi_ss_sum: vec![0.0; batch],
            psi_ts_sum: vec![0.0; batch],
            inv_two_var: [Vec::new(), Vec::new(), Vec::new()],
        })
    }

    /// Activations per side.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Dimension of one activation.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The median-heuristic bandwidth of a teacher/student batch (see the module doc). Useful
    /// to initialize learnable bandwidths from data (Algorithm 1, line 4).
    pub fn median_bandwidth(
        &mut self,
        teacher: &[f32],
        student: &[f32],
    ) -> Result<f64, ModelError> {
        self.load(teacher, student)?;
        self.distances();
        Ok(self.median_sigma())
    }

    /// Checks the shapes and finiteness and widens the activations to f64.
    fn load(&mut self, teacher: &[f32], student: &[f32]) -> Result<(), ModelError> {
        let want = self.batch * self.dim;
        for (name, values, out) in [
            ("teacher", teacher, &mut self.teacher),
            ("student", student, &mut self.student),
        ] {
            if values.len() != want {
                return Err(ModelError::Shape(format!(
                    "MMD {name} activations hold {} values, batch = {} × dim = {} needs {want}",
                    values.len(),
                    self.batch,
                    self.dim
                )));
            }
            for (k, (&v, o)) in values.iter().zip(out.iter_mut()).enumerate() {
                if !v.is_finite() {
                    return Err(ModelError::NonFinite(format!(
                        "MMD {name} activation {} of sample {} ({v})",
                        k % self.dim,
                        k / self.dim
                    )));
                }
                *o = v as f64;
            }
        }
        let (b, n) = (self.batch, self.dim);
        for (x, xt) in [
            (&self.teacher, &mut self.teacher_t),
            (&self.student, &mut self.student_t),
        ] {
            for (i, row) in x.chunks_exact(n).enumerate() {
                for (t, &v) in row.iter().enumerate() {
                    xt[t * b + i] = v;
                }
            }
        }
        Ok(())
    }

    /// Fills the three squared-distance buffers from the widened activations: row i of each
    /// matrix is accumulated feature by feature against a contiguous row of the transposed
    /// batch (which vectorizes), the symmetric ones only for j > i.
    fn distances(&mut self) {
        let (b, n) = (self.batch, self.dim);
        for (x, xt, out) in [
            (&self.teacher, &self.teacher_t, &mut self.dist_tt),
            (&self.student, &self.student_t, &mut self.dist_ss),
        ] {
            for i in 0..b {
                let row = &mut out[i * b + i + 1..(i + 1) * b];
                row.fill(0.0);
                for t in 0..n {
                    let v = x[i * n + t];
                    for (d, &y) in row.iter_mut().zip(&xt[t * b + i + 1..(t + 1) * b]) {
                        let e = v - y;
                        *d += e * e;
                    }
                }
            }
        }
        for i in 0..b {
            let row = &mut self.dist_ts[i * b..(i + 1) * b];
            row.fill(0.0);
            for t in 0..n {
                let v = self.teacher[i * n + t];
                for (d, &y) in row.iter_mut().zip(&self.student_t[t * b..(t + 1) * b]) {
                    let e = v - y;
                    *d += e * e;
                }
            }
        }
    }

    /// The median distance over the pooled sample, with the fallbacks of the module doc.
    fn median_sigma(&mut self) -> f64 {
        let b = self.batch;
        self.pooled.clear();
        for i in 0..b {
            let upper = i * b + i + 1..(i + 1) * b;
            self.pooled
                .extend(self.dist_tt[upper.clone()].iter().map(|d| d.to_bits()));
            self.pooled
                .extend(self.dist_ss[upper].iter().map(|d| d.to_bits()));
        }
        self.pooled.extend(self.dist_ts.iter().map(|d| d.to_bits()));
        let count = self.pooled.len();
        let mid = count / 2;
        let (lower, &mut upper, _) = self.pooled.select_nth_unstable(mid);
        let upper = f64::from_bits(upper);
        let median = if count % 2 == 1 {
            upper.sqrt()
        } else {
            let below = f64::from_bits(lower.iter().copied().max().unwrap_or(0));
            0.5 * (below.sqrt() + upper.sqrt())
        };
        if median > 0.0 {
            return median;
        }
        let mean = self
            .pooled
            .iter()
            .map(|&d| f64::from_bits(d).sqrt())
            .sum::<f64>()
            / count as f64;
        if mean > 0.0 { mean } else { 1.0 }
    }
}

/// Refuses a bandwidth that is not finite and positive or whose 1/(2σ²) is not finite and
/// positive.
fn check_sigma(sigma: f64) -> Result<(), ModelError> {
    let inv = 0.5 / (sigma * sigma);
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(ModelError::InvalidParameter {
            name: "MMD bandwidth sigma",
            value: sigma,
            reason: "must be finite and positive",
        });
    }
    if !(inv.is_finite() && inv > 0.0) {
        return Err(ModelError::InvalidParameter {
            name: "MMD bandwidth sigma",
            value: sigma,
            reason: "its squared value underflows or overflows f64",
        });
    }
    Ok(())
}

/// Kernel value Σ_s exp(−d·c_s) and ψ = Σ_s 2 c_s exp(−d·c_s) for c_s = 1/(2σ_s²).
#[inline]
fn kernel(inv_two_var: &[f64], d: f64) -> (f64, f64) {
    let (mut k, mut psi) = (0.0, 0.0);
    for &c in inv_two_var {
        let e = (-d * c).exp();
        k += e;
        psi += 2.0 * c * e;
    }
    (k, psi)
}

/// Sums over one term's pairs: Σ K and Σ ψ·d (the latter is Σ ∂K/∂ln σ for a single kernel).
#[derive(Debug, Default, Clone, Copy)]
struct TermSums {
    kernel: f64,
    psi_d: f64,
}

impl Mmd {
    /// The paper's loss: learnable bandwidths σ₁, σ₂, σ₃, biased estimator.
    pub fn learnable(sigma: [f64; 3]) -> Result<Self, ModelError> {
        Ok(Mmd {
            bandwidths: Bandwidths::learnable(sigma)?,
            estimator: Estimator::Biased,
        })
    }

    /// Evaluates MMD² of one layer for `teacher` and `student` (each `batch × dim` row-major,
    /// the workspace's shape).
    ///
    /// If given, `grad_student` (same length) is overwritten with ∂MMD²/∂student and
    /// `grad_log_sigma` with ∂MMD²/∂(ln σ₁, ln σ₂, ln σ₃) — zero in `Median` and `Multi` modes,
    /// which have no learnable bandwidth. Errors: a length mismatch, a non-finite activation,
    /// an invalid bandwidth, `Unbiased` with batch < 2, or a non-finite result (the gradient
    /// buffers' contents are then unspecified).
    pub fn eval(
        &self,
        workspace: &mut MmdWorkspace,
        teacher: &[f32],
        student: &[f32],
        grad_student: Option<&mut [f32]>,
        grad_log_sigma: Option<&mut [f64; 3]>,
    ) -> Result<MmdStats, ModelError> {
        let ws = workspace;
        let (b, n) = (ws.batch, ws.dim);
        if let Some(g) = &grad_student
            && g.len() != b * n
        {
            return Err(ModelError::Shape(format!(
                "MMD student gradient holds {} values, batch = {b} × dim = {n} needs {}",
                g.len(),
                b * n
            )));
        }
        if self.estimator == Estimator::Unbiased && b < 2 {
            return Err(ModelError::InvalidDimension {
                name: "batch",
                value: b,
                reason: "the unbiased MMD estimator needs at least two activations per side",
            });
        }
        self.fill_bandwidths(ws)?;
        ws.load(teacher, student)?;
        ws.distances();

        let sigma = match &self.bandwidths {
            Bandwidths::Learnable { log_sigma } => Some(log_sigma.map(f64::exp)),
            Bandwidths::Median => {
                let s = ws.median_sigma();
                check_sigma(s)?;
                for c in &mut ws.inv_two_var {
                    c.clear();
                    c.push(0.5 / (s * s));
                }
                Some([s; 3])
            }
            Bandwidths::Multi { .. } => None,
        };
        let kernels = ws.inv_two_var[0].len() as f64;

        let bf = b as f64;
        let (w_within, diagonal) = match self.estimator {
            Estimator::Biased => (1.0 / (bf * bf), 1.0 / bf),
            Estimator::Unbiased => (1.0 / (bf * (bf - 1.0)), 0.0),
        };
        let w_cross = 1.0 / (bf * bf);

        // Teacher–teacher: loss value and ∂/∂ln σ₁ only.
        let mut tt = TermSums::default();
        for i in 0..b {
            for &d in &ws.dist_tt[i * b + i + 1..(i + 1) * b] {
                let (k, psi) = kernel(&ws.inv_two_var[0], d);
                tt.kernel += k;
                tt.psi_d += psi * d;
            }
        }

        // Student–student: ψ₂ replaces the distance in both triangles (zero diagonal).
        let mut ss = TermSums::default();
        for i in 0..b {
            ws.dist_ss[i * b + i] = 0.0;
            for j in i + 1..b {
                let d = ws.dist_ss[i * b + j];
                let (k, psi) = kernel(&ws.inv_two_var[1], d);
                ss.kernel += k;
                ss.psi_d += psi * d;
                ws.dist_ss[i * b + j] = psi;
                ws.dist_ss[j * b + i] = psi;
            }
        }

        // Cross: ψ₃ replaces the distance.
        let mut ts = TermSums::default();
        for d in ws.dist_ts.iter_mut() {
            let (k, psi) = kernel(&ws.inv_two_var[2], *d);
            ts.kernel += k;
            ts.psi_d += psi * *d;
            *d = psi;
        }

        if let Some(out) = grad_student {
            // ∂/∂b_j = c₂ (Σ_i ψ₂ᵢⱼ b_i − b_j Σ_i ψ₂ᵢⱼ) + c₃ (b_j Σ_i ψ₃ᵢⱼ − Σ_i ψ₃ᵢⱼ a_i),
            // accumulated as N × B so that the innermost loop runs over j contiguously.
            let c_ss = 2.0 * w_within;
            let c_ts = 2.0 * w_cross;
            ws.grad_t.fill(0.0);
            ws.psi_ss_sum.fill(0.0);
            ws.psi_ts_sum.fill(0.0);
            for i in 0..b {
                let psi_ss = &ws.dist_ss[i * b..(i + 1) * b];
                let psi_ts = &ws.dist_ts[i * b..(i + 1) * b];
                for (s, &p) in ws.psi_ss_sum.iter_mut().zip(psi_ss) {
                    *s += p;
                }
                for (s, &p) in ws.psi_ts_sum.iter_mut().zip(psi_ts) {
                    *s += p;
                }
                for t in 0..n {
                    let u = c_ss * ws.student[i * n + t];
                    let v = c_ts * ws.teacher[i * n + t];
                    let g = &mut ws.grad_t[t * b..(t + 1) * b];
                    for ((g, &ps), &pt) in g.iter_mut().zip(psi_ss).zip(psi_ts) {
                        *g += u * ps - v * pt;
                    }
                }
            }
            for t in 0..n {
                let g = &mut ws.grad_t[t * b..(t + 1) * b];
                let bt = &ws.student_t[t * b..(t + 1) * b];
                for (j, (g, &bj)) in g.iter_mut().zip(bt).enumerate() {
                    *g += bj * (c_ts * ws.psi_ts_sum[j] - c_ss * ws.psi_ss_sum[j]);
                }
            }
            for (j, row) in out.chunks_exact_mut(n).enumerate() {
                for (t, o) in row.iter_mut().enumerate() {
                    *o = ws.grad_t[t * b + j] as f32;
                }
            }
        }

        let mean_tt = 2.0 * w_within * tt.kernel + diagonal * kernels;
        let mean_ss = 2.0 * w_within * ss.kernel + diagonal * kernels;
        let mean_ts = w_cross * ts.kernel;
        let loss = mean_tt + mean_ss - 2.0 * mean_ts;
        if !loss.is_finite() {
            return Err(ModelError::NonFinite(format!(
                "MMD loss ({loss}) for bandwidths {:?}",
                self.bandwidths
            )));
        }

        if let Some(out) = grad_log_sigma {
            *out = match self.bandwidths {
                Bandwidths::Learnable { .. } => [
                    2.0 * w_within * tt.psi_d,
                    2.0 * w_within * ss.psi_d,
                    -2.0 * w_cross * ts.psi_d,
                ],
                Bandwidths::Median | Bandwidths::Multi { .. } => [0.0; 3],
            };
        }
        Ok(MmdStats {
            loss,
            kernel_means: [mean_tt, mean_ss, mean_ts].map(|m| m / kernels),
            sigma,
        })
    }

    /// Validates the bandwidths and stores 1/(2σ²) per kernel and term in the workspace
    /// (`Median` is filled after the distances are known).
    fn fill_bandwidths(&self, ws: &mut MmdWorkspace) -> Result<(), ModelError> {
        match &self.bandwidths {
            Bandwidths::Learnable { log_sigma } => {
                for (m, &s) in log_sigma.iter().enumerate() {
                    if !s.is_finite() {
                        return Err(ModelError::InvalidParameter {
                            name: "MMD log-bandwidth ln sigma",
                            value: s,
                            reason: "must be finite",
                        });
                    }
                    let sigma = s.exp();
                    check_sigma(sigma)?;
                    ws.inv_two_var[m].clear();
                    ws.inv_two_var[m].push(0.5 / (sigma * sigma));
                }
            }
            Bandwidths::Median => {}
            Bandwidths::Multi { sigmas } => {
                if sigmas.is_empty() {
                    return Err(ModelError::InvalidDimension {
                        name: "MMD multi-bandwidth set",
                        value: 0,
                        reason: "needs at least one bandwidth",
                    });
                }
                for &s in sigmas {
                    check_sigma(s)?;
                }
                for c in &mut ws.inv_two_var {
                    c.clear();
                    c.extend(sigmas.iter().map(|s| 0.5 / (s * s)));
                }
            }
        }
        Ok(())
    }
}
