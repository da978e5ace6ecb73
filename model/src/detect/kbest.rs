//! The K-best sphere decoder: real-valued sorted QR and a breadth-first tree search.
//!
//! Per frame:
//! 1. Sorted QR decomposition (SQRD, Wübben et al. 2001): modified Gram–Schmidt on H̃ where each
//!    step takes the remaining column of least residual norm. H̃P = QR with P a permutation, so
//!    the weakest streams land in the first rows of R and the strongest in the last rows, which the
//!    search decides first; early decisions are then the most reliable ones, which is what makes a
//!    small K work.
//! 2. z = Qᵀỹ. Since ‖ỹ − H̃x‖² = ‖z − R Pᵀx‖² + const for M ≥ N, the search minimizes
//!    ‖z − R s‖² over s = Pᵀx in the alphabet.
//! 3. Breadth-first search from the last row to the first: every surviving partial path (its
//!    accumulated metric Σ_{i ≥ level} (z_i − Σ_{j ≥ i} R_ij s_j)²) is extended by every level
//!    of the alphabet, and the K children of least metric survive (partial selection with
//!    `select_nth_unstable_by`, not a full sort). Each path carries the residual of its
//!    undecided rows, so an extension is one axpy with a column of R and paths are never
//!    copied; the decision is the surviving full path of least metric, traced back through a
//!    per-level parent table and un-permuted.
//!
//! K ≥ L^N keeps every path, so the search is then exhaustive and returns the exact ML decision.
//! Buffers (residuals, traceback, candidates, the QR factors) are allocated once per call, never
//! per frame; the path buffers hold min(K, L^N) entries.
//!
//! Guarantees: K outside 1..=[`MAX_KBEST`], M < N, a shape mismatch, and a rank-deficient H̃
//! return errors naming the cause; nothing panics on bad input.

use super::{Detector, MAX_KBEST, check_batch};
use crate::error::ModelError;
use crate::link::FrameBatch;

/// A K-best detector keeping `k` partial paths per tree level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KBest {
    k: usize,
}

impl KBest {
    /// A K-best detector of breadth `k` (validated when detecting: 1 ≤ k ≤ [`MAX_KBEST`]).
    pub fn new(k: usize) -> Self {
        Self { k }
    }

    /// The breadth K.
    pub fn k(&self) -> usize {
        self.k
    }
}

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
    /// Q (column-major, m × n) during the decomposition.
    q: Vec<f64>,
    /// R (n × n column-major, upper triangle): column l holds R_il at `r[l * n + i]`.
    r: Vec<f64>,
    /// Residual squared column norms during the decomposition.
    norms: Vec<f64>,
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
            q: vec![0.0; m * n],
            r: vec![0.0; n * n],
            norms: vec![0.0; n],
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

    /// Sorted QR of `h` (m × n row-major) and z = Qᵀy.
    fn decompose(&mut self, h: &[f64], y: &[f64]) -> Result<(), String> {
        let (m, n) = (self.m, self.n);
        for (i, row) in h.chunks_exact(n).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                self.q[j * m + i] = v;
            }
        }
        self.r.fill(0.0);
        for (j, p) in self.perm.iter_mut().enumerate() {
            *p = j;
        }
        for (j, norm) in self.norms.iter_mut().enumerate() {
            let col = &self.q[j * m..(j + 1) * m];
            *norm = dot(col, col);
        }
        for i in 0..n {
            // The remaining column of least residual norm goes to position i.
            let k = (i..n)
                .min_by(|&a, &b| self.norms[a].total_cmp(&self.norms[b]))
                .unwrap_or(i);
            if k != i {
                self.norms.swap(i, k);
                self.perm.swap(i, k);
                for row in 0..i {
                    self.r.swap(i * n + row, k * n + row);
                }
                for t in 0..m {
                    self.q.swap(i * m + t, k * m + t);
                }
            }
            let (done, rest) = self.q.split_at_mut((i + 1) * m);
            let qi = &mut done[i * m..];
            let rii = dot(qi, qi).sqrt();
            if !(rii > 0.0 && rii.is_finite()) {
                return Err(format!(
                    "H̃ is rank deficient or not finite (sorted column {i})"
                ));
            }
            self.r[i * n + i] = rii;
            for v in qi.iter_mut() {
                *v /= rii;
            }
            for (l, ql) in (i + 1..n).zip(rest.chunks_exact_mut(m)) {
                let ril = dot(qi, ql);
                self.r[l * n + i] = ril;
                for (b, a) in ql.iter_mut().zip(qi.iter()) {
                    *b -= ril * a;
                }
                self.norms[l] -= ril * ril;
            }
        }
        for (zj, qj) in self.z.iter_mut().zip(self.q.chunks_exact(m)) {
            *zj = dot(qj, y);
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
                        metric: metric + e * e,
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
        format!("kbest:{}", self.k)
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
        if m < n {
            return Err(ModelError::InvalidDimension {
                name: "n",
                value: n,
                reason: "K-best needs at least as many real rows as columns (M ≥ N)",
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
        for f in 0..batch.frames {
            search.decompose(batch.h(f), batch.y(f)).map_err(|reason| {
                ModelError::DetectFailed {
                    detector: self.name(),
                    frame: f,
                    reason,
                }
            })?;
            search.search(capacity, &mut decisions[f * n..(f + 1) * n]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Ml;
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

    #[test]
    fn full_breadth_equals_exhaustive_ml() {
        // 2×2 16-QAM: N = 4, L = 4; 4×4 QPSK: N = 8, L = 2; both L^N = 256.
        for (nt, modulation, seed) in [(2, Modulation::Qam16, 21), (4, Modulation::Qpsk, 22)] {
            let b = batch(nt, nt, modulation, 3000, seed);
            let size = b.frames * b.n;
            let (mut kb, mut ml) = (vec![0; size], vec![0; size]);
            KBest::new(256).detect(&b, &mut kb).unwrap();
            Ml.detect(&b, &mut ml).unwrap();
            for f in 0..b.frames {
                assert_eq!(
                    kb[f * b.n..(f + 1) * b.n],
                    ml[f * b.n..(f + 1) * b.n],
                    "{nt}×{nt} {modulation} frame {f} at {} dB",
                    b.snr_db[f]
                );
            }
        }
    }

    #[test]
    fn small_breadth_differs_from_ml_somewhere() {
        // Guards the previous test against a search that ignores K: K = 1 (sorted SIC) must
        // lose to ML on some frames at low SNR.
        let b = batch(4, 4, Modulation::Qam16, 500, 23);
        let size = b.frames * b.n;
        let (mut kb, mut ml) = (vec![0; size], vec![0; size]);
        KBest::new(1).detect(&b, &mut kb).unwrap();
        Ml.detect(&b, &mut ml).unwrap();
        assert_ne!(kb, ml);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let b = batch(2, 2, Modulation::Qpsk, 3, 24);
        assert!(matches!(
            KBest::new(4).detect(&b, &mut [0; 5]),
            Err(ModelError::Shape(_))
        ));
        for k in [0, MAX_KBEST + 1] {
            assert!(matches!(
                KBest::new(k).detect(&b, &mut [0; 12]),
                Err(ModelError::InvalidDetector { .. })
            ));
        }
        let wide = batch(4, 2, Modulation::Qpsk, 2, 25);
        assert!(matches!(
            KBest::new(4).detect(&wide, &mut [0; 16]),
            Err(ModelError::InvalidDimension { name: "n", .. })
        ));
        let mut zero = b.clone();
        zero.h[..b.m * b.n].fill(0.0);
        assert!(matches!(
            KBest::new(4).detect(&zero, &mut [0; 12]),
            Err(ModelError::DetectFailed { frame: 0, .. })
        ));
    }
}
