//! The K-best sphere decoder: real-valued sorted QR and a breadth-first tree search, in three
//! variants ([`KBestVariant`]) that differ in the decomposition and the metric.
//!
//! The MMSE extension of the sorted QR (MMSE-SQRD, Wübben et al., "MMSE extension of V-BLAST
//! based on sorted QR decomposition", VTC 2003) decomposes the augmented system
//!
//! ```text
//! H̄ = [ H̃ ; √δ·I_N ]   ((M + N) × N),   ȳ = [ ỹ ; 0_N ],   δ = (σ²/2) / Es_dim
//! ```
//!
//! with δ the MMSE diagonal loading of [`super::linear`] (the same function computes it), so that
//! ‖ȳ − H̄x‖² = ‖ỹ − H̃x‖² + δ‖x‖². The loading is what MMSE adds to ZF: a column's sorting norm
//! is ‖h̃_j‖² + δ, and a partial metric over the decided levels treats the undecided symbols
//! as Gaussian interference of variance Es_dim instead of inverting it away, so early
//! decisions at low SNR follow noise-enhanced residuals less and a small K loses the right
//! path less often. H̄ has full column rank whenever δ > 0, so M < N is accepted.
//!
//! * [`KBestVariant::Mmse`] (`kbest:K`, the default): MMSE-SQRD, and each decided level's
//!   branch metric has δ·s² subtracted again, so the full-path metric is the unbiased
//!   ‖ỹ − H̃x‖² + const. With K ≥ L^N the search is exhaustive and returns the exact ML
//!   decision, for M < N too. (The partial metrics can be negative; the search only ranks
//!   paths of equal depth, which needs no sign.)
//! * [`KBestVariant::Regularized`] (`kbest-reg:K`): MMSE-SQRD with the regularized metric
//!   ‖ỹ − H̃x‖² + δ‖x‖² itself, as in the paper. The penalty δ‖x‖² biases decisions towards
//!   the inner levels: with δ > 0 even the full breadth returns the MAP-like decision under a
//!   Gaussian prior, arg min ‖ỹ − H̃x‖² + δ‖x‖², which is *not* the ML decision for QAM orders
//!   above 4 (for BPSK and QPSK ‖x‖² is the same for every candidate and the two agree). On
//!   16×16 16-QAM this bias costs more than the regularization gains: at K = 32 it makes a few
//!   per cent more bit errors than `kbest:K` and than linear MMSE at 0–10 dB.
//! * [`KBestVariant::Zf`] (`kbest-zf:K`): the plain sorted QR of H̃ (SQRD, Wübben et al. 2001)
//!   and the unbiased metric; exact ML at full breadth. Needs M ≥ N and a full-rank H̃.
//!
//! As δ → 0 (high SNR) the three variants coincide.
//!
//! Per frame:
//! 1. Sorted QR decomposition: modified Gram–Schmidt where each step takes the remaining column
//!    of least residual norm. H̄P = QR with P a permutation, so the weakest streams land in the
//!    first rows of R and the strongest in the last rows, which the search decides first; early
//!    decisions are then the most reliable ones, which is what makes a small K work. The lower
//!    block √δ·I of H̄ is kept in sorted coordinates (its rows permuted with the columns, which
//!    leaves R unchanged because the lower part of ȳ is zero): after step i a remaining column
//!    has lower-block entries only in rows 0..=i and its own row, so every lower-block dot
//!    product and update touches i + 1 entries rather than N.
//! 2. z = Qᵀȳ, which only involves the upper M rows of Q. Since ‖ȳ − H̄x‖² = ‖z − R Pᵀx‖² +
//!    const, the search minimizes ‖z − R s‖² (minus δ‖s‖² for `kbest:K`) over s = Pᵀx in the
//!    alphabet.
//! 3. Breadth-first search from the last row to the first: every surviving partial path (its
//!    accumulated metric Σ_{i ≥ level} (z_i − Σ_{j ≥ i} R_ij s_j)², less δ·s_i² for `kbest:K`)
//!    is extended by every level of the alphabet, and the K children of least metric survive
//!    (partial selection with `select_nth_unstable_by`, not a full sort). Each path carries the
//!    residual of its undecided rows, so an extension is one axpy with a column of R and paths
//!    are never copied; the decision is the surviving full path of least metric, traced back through a
//!    per-level parent table and un-permuted.
//!
//! Buffers (residuals, traceback, candidates, the QR factors) are allocated once per call, never
//! per frame; the path buffers hold min(K, L^N) entries.
//!
//! Guarantees: K outside 1..=[`MAX_KBEST`], a shape mismatch, a negative or non-finite noise
//! variance (MMSE-extended variants), M < N (`kbest-zf`) and a rank-deficient H̄ (H̃ itself
//! for `kbest-zf`, or δ = 0) return errors naming the cause; nothing panics on bad input.

use super::linear::LinearDetector;
use super::{Detector, MAX_KBEST, check_batch};
use crate::error::ModelError;
use crate::link::FrameBatch;

/// Which decomposition the K-best search runs on and which metric it minimizes (see the
/// module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KBestVariant {
    /// MMSE-extended sorted QR, unbiased metric ‖ỹ − H̃x‖² (`kbest:K`): exact ML at full
    /// breadth, accepts M < N.
    #[default]
    Mmse,
    /// MMSE-extended sorted QR, regularized metric ‖ỹ − H̃x‖² + δ‖x‖² (`kbest-reg:K`):
    /// MAP-like under a Gaussian prior at full breadth, not ML; accepts M < N.
    Regularized,
    /// Plain sorted QR of H̃, unbiased metric (`kbest-zf:K`): exact ML at full breadth, needs
    /// M ≥ N.
    Zf,
}

impl KBestVariant {
    /// Every variant, the default first.
    pub const ALL: [Self; 3] = [Self::Mmse, Self::Regularized, Self::Zf];

    /// The command-line prefix of a K-best detector of this variant: `kbest`, `kbest-reg` or
    /// `kbest-zf`.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Mmse => "kbest",
            Self::Regularized => "kbest-reg",
            Self::Zf => "kbest-zf",
        }
    }
}

/// A K-best detector keeping `k` partial paths per tree level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KBest {
    k: usize,
    variant: KBestVariant,
}

impl KBest {
    /// A K-best detector of breadth `k`, the default variant [`KBestVariant::Mmse`]
    /// (validated when detecting: 1 ≤ k ≤ [`MAX_KBEST`]).
    pub fn new(k: usize) -> Self {
        Self::with_variant(k, KBestVariant::Mmse)
    }

    /// A K-best detector of breadth `k` of the given variant.
    pub fn with_variant(k: usize, variant: KBestVariant) -> Self {
        Self { k, variant }
    }

    /// The breadth K.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The variant: decomposition and metric.
    pub fn variant(&self) -> KBestVariant {
        self.variant
    }
}

/// Relative difference below which two residual norms count as equal when sorting the QR.
const ORDER_TOLERANCE: f64 = 1e-9;

/// One child of a surviving path: its accumulated metric, its parent and its level index.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    metric: f64,
    parent: u32,
    level_index: u8,
}

/// Per-call scratch of the search.
struct Search {
    m: usize,
    n: usize,
    alphabet: Vec<f64>,
    /// Q of the augmented system during the decomposition, column-major (m + n) × n: the upper
    /// m rows come from H̃, the lower n from √δ·I (in sorted row coordinates).
    q: Vec<f64>,
    /// R (n × n column-major, upper triangle): column l holds R_il at `r[l * n + i]`.
    r: Vec<f64>,
    /// Residual squared column norms during the decomposition.
    norms: Vec<f64>,
    /// δ removed again per decided level, so the metric is ‖ỹ − H̃s‖² on the augmented
    /// decomposition (0 for the regularized metric and the plain decomposition).
    unbias: f64,
    /// Column permutation: position p of the sorted system is column perm[p] of H̃.
    perm: Vec<usize>,
    z: Vec<f64>,
    /// Per surviving path (capacity × n): the residual ρ_i = z_i − Σ_{j ≥ level} R_ij s_j of
    /// the rows not yet decided (i < level), and its accumulated metric.
    rho: Vec<f64>,
    metrics: Vec<f64>,
    next_rho: Vec<f64>,
    next_metrics: Vec<f64>,
    /// Traceback (n × capacity): parent and level index of survivor c at each level.
    back_parent: Vec<u32>,
    back_level: Vec<u8>,
    candidates: Vec<Candidate>,
}

impl Search {
    fn new(m: usize, n: usize, alphabet: Vec<f64>, capacity: usize) -> Self {
        let levels = alphabet.len();
        Self {
            m,
            n,
            alphabet,
            q: vec![0.0; (m + n) * n],
            r: vec![0.0; n * n],
            norms: vec![0.0; n],
            unbias: 0.0,
            perm: vec![0; n],
            z: vec![0.0; n],
            rho: vec![0.0; capacity * n],
            metrics: vec![0.0; capacity],
            next_rho: vec![0.0; capacity * n],
            next_metrics: vec![0.0; capacity],
            back_parent: vec![0; n * capacity],
            back_level: vec![0; n * capacity],
            candidates: Vec::with_capacity(capacity * levels),
        }
    }

    /// Sorted QR of the augmented H̄ = [h; √δ·I] (`h` m × n row-major, δ ≥ 0) and z = Qᵀ[y; 0];
    /// δ = 0 is the plain sorted QR of `h` and skips the lower block. `unbias` (δ or 0) is
    /// subtracted as δ·s² per decided level by the search.
    fn decompose(&mut self, h: &[f64], y: &[f64], delta: f64, unbias: f64) -> Result<(), String> {
        self.unbias = unbias;
        let (m, n) = (self.m, self.n);
        let stride = m + n;
        let augmented = delta > 0.0;
        for (i, row) in h.chunks_exact(n).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                self.q[j * stride + i] = v;
            }
        }
        // Without δ the lower block is never read, so it is neither set nor kept up to date.
        if augmented {
            let sqrt_delta = delta.sqrt();
            for j in 0..n {
                let low = &mut self.q[j * stride + m..(j + 1) * stride];
                low.fill(0.0);
                low[j] = sqrt_delta;
            }
        }
        self.r.fill(0.0);
        for (j, p) in self.perm.iter_mut().enumerate() {
            *p = j;
        }
        for (j, norm) in self.norms.iter_mut().enumerate() {
            let col = &self.q[j * stride..j * stride + m];
            *norm = dot(col, col) + delta;
        }
        for i in 0..n {
            // The remaining column of least residual norm goes to position i. Norms within a
            // relative 1e-9 count as equal and the earlier column wins: the complex structure
            // of H̃ makes the two columns of a complex stream equal in norm, and this keeps
            // their order from depending on rounding (or on a vanishing δ).
            let mut k = i;
            for c in i + 1..n {
                if self.norms[c] < self.norms[k] * (1.0 - ORDER_TOLERANCE) {
                    k = c;
                }
            }
            // Rows of a column that can be non-zero at step i: the upper m, and of the lower
            // block rows 0..=i (for column i; a later column's own row l is still untouched).
            let len = if augmented { m + i + 1 } else { m };
            if k != i {
                self.norms.swap(i, k);
                self.perm.swap(i, k);
                for row in 0..i {
                    self.r.swap(i * n + row, k * n + row);
                }
                // Swap the two columns over their shared support (upper block and lower rows
                // 0..i), and move each one's own lower diagonal entry with it, i.e. swap
                // lower rows i and k too.
                let shared = if augmented { m + i } else { m };
                for t in 0..shared {
                    self.q.swap(i * stride + t, k * stride + t);
                }
                if augmented {
                    self.q.swap(i * stride + m + i, k * stride + m + k);
                }
            }
            let (done, rest) = self.q.split_at_mut((i + 1) * stride);
            let qi = &mut done[i * stride..i * stride + len];
            let rii = dot(qi, qi).sqrt();
            if !(rii > 0.0 && rii.is_finite()) {
                return Err(format!(
                    "H̃ is rank deficient or not finite (sorted column {i})"
                ));
            }
            self.r[i * n + i] = rii;
            let inv = 1.0 / rii;
            for v in qi.iter_mut() {
                *v *= inv;
            }
            for (l, ql) in (i + 1..n).zip(rest.chunks_exact_mut(stride)) {
                let ql = &mut ql[..len];
                let ril = dot(qi, ql);
                self.r[l * n + i] = ril;
                for (b, a) in ql.iter_mut().zip(qi.iter()) {
                    *b -= ril * a;
                }
                self.norms[l] -= ril * ril;
            }
        }
        for (zj, qj) in self.z.iter_mut().zip(self.q.chunks_exact(stride)) {
            *zj = dot(&qj[..m], y);
        }
        Ok(())
    }

    /// Breadth-first search keeping `k` paths; writes the un-permuted decision into `out`.
    ///
    /// Each path carries its residual ρ over the undecided rows, so extending it by a level
    /// costs one update of ρ (an axpy with a column of R) and no path is ever copied; the
    /// decision is traced back through the per-level parent table at the end.
    fn search(&mut self, k: usize, out: &mut [i32]) {
        let n = self.n;
        let capacity = self.metrics.len();
        let mut count = 1;
        self.metrics[0] = 0.0;
        self.rho[..n].copy_from_slice(&self.z);
        for level in (0..n).rev() {
            self.candidates.clear();
            let r_col = &self.r[level * n..level * n + level];
            let r_diag = self.r[level * n + level];
            for (parent, (rho, &metric)) in self
                .rho
                .chunks_exact(n)
                .zip(&self.metrics)
                .take(count)
                .enumerate()
            {
                let b = rho[level];
                for (level_index, &s) in self.alphabet.iter().enumerate() {
                    let e = b - r_diag * s;
                    self.candidates.push(Candidate {
                        metric: metric + e * e - self.unbias * s * s,
                        parent: parent as u32,
                        level_index: level_index as u8,
                    });
                }
            }
            if self.candidates.len() > k {
                self.candidates
                    .select_nth_unstable_by(k - 1, |a, b| a.metric.total_cmp(&b.metric));
                self.candidates.truncate(k);
            }
            let back = level * capacity;
            for (c, cand) in self.candidates.iter().enumerate() {
                let parent = cand.parent as usize;
                let s = self.alphabet[cand.level_index as usize];
                let src = &self.rho[parent * n..parent * n + level];
                let dst = &mut self.next_rho[c * n..c * n + level];
                for ((d, &x), &r) in dst.iter_mut().zip(src).zip(r_col) {
                    *d = x - r * s;
                }
                self.next_metrics[c] = cand.metric;
                self.back_parent[back + c] = cand.parent;
                self.back_level[back + c] = cand.level_index;
            }
            count = self.candidates.len();
            std::mem::swap(&mut self.rho, &mut self.next_rho);
            std::mem::swap(&mut self.metrics, &mut self.next_metrics);
        }
        let mut c = (0..count)
            .min_by(|&a, &b| self.metrics[a].total_cmp(&self.metrics[b]))
            .unwrap_or(0);
        for level in 0..n {
            let at = level * capacity + c;
            let level_index = self.back_level[at] as usize;
            out[self.perm[level]] = self.alphabet[level_index] as i32;
            c = self.back_parent[at] as usize;
        }
    }
}

/// Dot product with four independent partial sums, so the additions neither wait on each
/// other nor prevent vectorization.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a4
        .remainder()
        .iter()
        .zip(b4.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a4.zip(b4) {
        for t in 0..4 {
            acc[t] += x[t] * y[t];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

impl Detector for KBest {
    fn name(&self) -> String {
        format!("{}:{}", self.variant.prefix(), self.k)
    }

    fn detect(&self, batch: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError> {
        check_batch(batch)?;
        batch.check_decisions(decisions)?;
        if self.k == 0 || self.k > MAX_KBEST {
            return Err(ModelError::InvalidDetector {
                spec: self.name(),
                reason: format!("K-best breadth must be between 1 and {MAX_KBEST}"),
            });
        }
        let (m, n) = (batch.m, batch.n);
        if self.variant == KBestVariant::Zf && m < n {
            return Err(ModelError::InvalidDimension {
                name: "n",
                value: n,
                reason: "kbest-zf needs at least as many real rows as \
                         columns (M ≥ N); kbest and kbest-reg accept M < N",
            });
        }
        let modulation = batch.modulation();
        let alphabet: Vec<f64> = modulation.alphabet().iter().map(|&l| l as f64).collect();
        // Paths never outnumber L^N, so a breadth beyond that needs no more room.
        let exhaustive = u32::try_from(n)
            .ok()
            .and_then(|n| alphabet.len().checked_pow(n))
            .unwrap_or(usize::MAX);
        let capacity = self.k.min(exhaustive);
        let mut search = Search::new(m, n, alphabet, capacity);
        let mmse = LinearDetector::mmse();
        for f in 0..batch.frames {
            let (delta, unbias) = match self.variant {
                KBestVariant::Mmse => {
                    let delta = mmse.regularization(batch, f)?;
                    (delta, delta)
                }
                KBestVariant::Regularized => (mmse.regularization(batch, f)?, 0.0),
                KBestVariant::Zf => (0.0, 0.0),
            };
            search
                .decompose(batch.h(f), batch.y(f), delta, unbias)
                .map_err(|reason| ModelError::DetectFailed {
                    detector: self.name(),
                    frame: f,
                    reason,
                })?;
            search.search(capacity, &mut decisions[f * n..(f + 1) * n]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Ml, ml_metric};
    use crate::link::{LinkConfig, stream_rng};
    use crate::modulation::Modulation;

    const SNRS_DB: [f64; 5] = [0.0, 5.0, 10.0, 15.0, 20.0];

    fn batch(nt: usize, nr: usize, modulation: Modulation, frames: usize, seed: u64) -> FrameBatch {
        let snr: Vec<f64> = (0..frames).map(|f| SNRS_DB[f % SNRS_DB.len()]).collect();
        let link = LinkConfig::new(nt, nr, modulation).unwrap();
        link.generator()
            .unwrap()
            .generate(&snr, &mut stream_rng(seed, 0))
    }

    fn run(detector: &KBest, b: &FrameBatch) -> Vec<i32> {
        let mut out = vec![0; b.frames * b.n];
        detector.detect(b, &mut out).unwrap();
        out
    }

    /// Frames (out of `b.frames`) on which two decision buffers differ.
    fn differing_frames(b: &FrameBatch, a: &[i32], c: &[i32]) -> usize {
        a.chunks_exact(b.n)
            .zip(c.chunks_exact(b.n))
            .filter(|(x, y)| x != y)
            .count()
    }

    #[test]
    fn full_breadth_equals_exhaustive_ml() {
        // 2×2 16-QAM: N = 4, L = 4; 4×4 QPSK: N = 8, L = 2; both L^N = 256. Both unbiased
        // variants: the plain and the MMSE-extended decomposition.
        for (nt, modulation, seed) in [(2, Modulation::Qam16, 21), (4, Modulation::Qpsk, 22)] {
            let b = batch(nt, nt, modulation, 3000, seed);
            let mut ml = vec![0; b.frames * b.n];
            Ml.detect(&b, &mut ml).unwrap();
            for variant in [KBestVariant::Zf, KBestVariant::Mmse] {
                let kb = run(&KBest::with_variant(256, variant), &b);
                for f in 0..b.frames {
                    assert_eq!(
                        kb[f * b.n..(f + 1) * b.n],
                        ml[f * b.n..(f + 1) * b.n],
                        "{variant:?} {nt}×{nt} {modulation} frame {f} at {} dB",
                        b.snr_db[f]
                    );
                }
            }
        }
    }

    #[test]
    fn full_breadth_regularized_search_minimizes_the_regularized_metric() {
        // 2×2 16-QAM, L^N = 256: the exhaustive kbest-reg search returns
        // arg min ‖ỹ − H̃x‖² + δ‖x‖² (brute force here), which is not ML on every frame.
        let b = batch(2, 2, Modulation::Qam16, 2000, 26);
        let kb = run(&KBest::with_variant(256, KBestVariant::Regularized), &b);
        let mut ml = vec![0; b.frames * b.n];
        Ml.detect(&b, &mut ml).unwrap();
        let alphabet = b.modulation().alphabet();
        let mmse = LinearDetector::mmse();
        for f in 0..b.frames {
            let delta = mmse.regularization(&b, f).unwrap();
            let metric = |s: &[i32]| {
                ml_metric(b.h(f), b.y(f), s)
                    + delta * s.iter().map(|&v| (v * v) as f64).sum::<f64>()
            };
            let mut s = vec![0; b.n];
            let best = (0..alphabet.len().pow(b.n as u32))
                .map(|mut c| {
                    for v in s.iter_mut() {
                        *v = alphabet[c % alphabet.len()];
                        c /= alphabet.len();
                    }
                    metric(&s)
                })
                .fold(f64::INFINITY, f64::min);
            let got = metric(&kb[f * b.n..(f + 1) * b.n]);
            assert!(
                got <= best * (1.0 + 1e-12) + 1e-12,
                "frame {f} at {} dB: regularized metric {got}, brute force {best}",
                b.snr_db[f]
            );
        }
        assert!(
            differing_frames(&b, &kb, &ml) > 0,
            "the regularized decision never differed from ML: δ is not applied"
        );
    }

    #[test]
    fn small_breadth_differs_from_ml_somewhere() {
        // Guards the tests above against a search that ignores K: K = 1 (sorted SIC) must
        // lose to ML on some frames at low SNR, in every variant.
        let b = batch(4, 4, Modulation::Qam16, 500, 23);
        let mut ml = vec![0; b.frames * b.n];
        Ml.detect(&b, &mut ml).unwrap();
        for variant in KBestVariant::ALL {
            let kb = run(&KBest::with_variant(1, variant), &b);
            assert_ne!(kb, ml, "{variant:?}");
        }
    }

    #[test]
    fn variants_agree_as_delta_vanishes() {
        // The same received frames (0–20 dB of actual noise), detected once with the true
        // noise variance and once with a variance 10⁻¹² times smaller, i.e. δ → 0: the
        // MMSE-extended ordering and metrics then collapse to the plain ones.
        let b = batch(4, 4, Modulation::Qam16, 2000, 27);
        let mut tiny = b.clone();
        for v in &mut tiny.noise_var {
            *v *= 1e-12;
        }
        let zf = run(&KBest::with_variant(8, KBestVariant::Zf), &b);
        for variant in [KBestVariant::Mmse, KBestVariant::Regularized] {
            let detector = KBest::with_variant(8, variant);
            let differ_true = differing_frames(&b, &run(&detector, &b), &zf);
            let differ_tiny = differing_frames(&b, &run(&detector, &tiny), &zf);
            eprintln!(
                "{variant:?} vs kbest-zf:8, frames differing: δ {differ_true}, δ → 0 {differ_tiny}"
            );
            assert!(
                differ_tiny * 1000 <= b.frames,
                "{variant:?}, δ → 0: {differ_tiny} of {} frames differ",
                b.frames
            );
            // With the true δ the variants do differ, so the agreement above is not vacuous.
            assert!(
                differ_true >= 10 * differ_tiny.max(1),
                "{variant:?}: true δ: {differ_true} frames differ, δ → 0: {differ_tiny}"
            );
        }
    }

    #[test]
    fn mmse_extended_variants_accept_more_streams_than_receive_antennas() {
        // M < N: H̄ has full column rank. 2 rx × 4 tx QPSK (N = 8) and 1 rx × 2 tx 16-QAM
        // (N = 4), L^N = 256: the full-breadth kbest search is exact ML; so is kbest-reg for
        // QPSK, where δ‖x‖² is the same for every candidate.
        for (nt, nr, modulation, seed) in
            [(4, 2, Modulation::Qpsk, 28), (2, 1, Modulation::Qam16, 30)]
        {
            let b = batch(nt, nr, modulation, 1000, seed);
            let mut ml = vec![0; b.frames * b.n];
            Ml.detect(&b, &mut ml).unwrap();
            let mut variants = vec![KBestVariant::Mmse];
            if modulation == Modulation::Qpsk {
                variants.push(KBestVariant::Regularized);
            }
            for variant in variants {
                let kb = run(&KBest::with_variant(256, variant), &b);
                for f in 0..b.frames {
                    let (h, y) = (b.h(f), b.y(f));
                    let (got, best) = (
                        ml_metric(h, y, &kb[f * b.n..(f + 1) * b.n]),
                        ml_metric(h, y, &ml[f * b.n..(f + 1) * b.n]),
                    );
                    assert!(
                        got <= best * (1.0 + 1e-12) + 1e-12,
                        "{variant:?} {nt} tx × {nr} rx frame {f}: K-best metric {got}, ML {best}"
                    );
                }
            }
        }
        // A small breadth also runs and decides far better than chance at 20 dB.
        let high = {
            let link = LinkConfig::new(4, 2, Modulation::Qpsk).unwrap();
            link.generator()
                .unwrap()
                .generate(&[20.0; 500], &mut stream_rng(29, 0))
        };
        for variant in [KBestVariant::Mmse, KBestVariant::Regularized] {
            let d = run(&KBest::with_variant(16, variant), &high);
            let wrong = d.iter().zip(&high.x).filter(|(a, b)| a != b).count();
            assert!(
                wrong * 10 < d.len(),
                "{variant:?}: {wrong} of {} dimensions wrong at 20 dB",
                d.len()
            );
        }
        let mut d = vec![0; high.frames * high.n];
        assert!(matches!(
            KBest::with_variant(16, KBestVariant::Zf).detect(&high, &mut d),
            Err(ModelError::InvalidDimension { name: "n", .. })
        ));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let b = batch(2, 2, Modulation::Qpsk, 3, 24);
        for variant in KBestVariant::ALL {
            assert!(matches!(
                KBest::with_variant(4, variant).detect(&b, &mut [0; 5]),
                Err(ModelError::Shape(_))
            ));
            for k in [0, MAX_KBEST + 1] {
                assert!(matches!(
                    KBest::with_variant(k, variant).detect(&b, &mut [0; 12]),
                    Err(ModelError::InvalidDetector { .. })
                ));
            }
            let mut nan = b.clone();
            nan.h[1] = f64::NAN;
            assert!(matches!(
                KBest::with_variant(4, variant).detect(&nan, &mut [0; 12]),
                Err(ModelError::DetectFailed { frame: 0, .. })
            ));
        }
        // A zero channel is rank deficient without regularization, and with δ = 0.
        let mut zero = b.clone();
        zero.h[..b.m * b.n].fill(0.0);
        assert!(matches!(
            KBest::with_variant(4, KBestVariant::Zf).detect(&zero, &mut [0; 12]),
            Err(ModelError::DetectFailed { frame: 0, .. })
        ));
        let mut negative = b.clone();
        negative.noise_var[2] = -1.0;
        for variant in [KBestVariant::Mmse, KBestVariant::Regularized] {
            let detector = KBest::with_variant(4, variant);
            let mut zero = zero.clone();
            assert!(detector.detect(&zero, &mut [0; 12]).is_ok(), "{variant:?}");
            zero.noise_var[0] = 0.0;
            assert!(matches!(
                detector.detect(&zero, &mut [0; 12]),
                Err(ModelError::DetectFailed { frame: 0, .. })
            ));
            assert!(matches!(
                detector.detect(&negative, &mut [0; 12]),
                Err(ModelError::InvalidParameter {
                    name: "noise_var",
                    ..
                })
            ));
        }
        assert!(
            KBest::with_variant(4, KBestVariant::Zf)
                .detect(&negative, &mut [0; 12])
                .is_ok()
        );
    }
}
