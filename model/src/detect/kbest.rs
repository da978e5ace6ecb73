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
//!    `select_nth_unstable_by`, not a full sort). The decision is the surviving full path of
//!    least metric, un-permuted.
//!
//! K ≥ L^N keeps every path, so the search is then exhaustive and returns the exact ML decision.
//! Buffers (paths, candidates, the QR factors) are allocated once per call, never per frame.
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
    /// R (n × n row-major, upper triangle).
    r: Vec<f64>,
    /// Residual squared column norms during the decomposition.
    norms: Vec<f64>,
    /// Column permutation: position p of the sorted system is column perm[p] of H̃.
    perm: Vec<usize>,
    z: Vec<f64>,
    /// Surviving paths (capacity × n, positions level..n filled) and their metrics.
    paths: Vec<i32>,
    metrics: Vec<f64>,
    next_paths: Vec<i32>,
    next_metrics: Vec<f64>,
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
            paths: vec![0; capacity * n],
            metrics: vec![0.0; capacity],
            next_paths: vec![0; capacity * n],
            next_metrics: vec![0.0; capacity],
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
            *norm = self.q[j * m..(j + 1) * m].iter().map(|v| v * v).sum();
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
                    self.r.swap(row * n + i, row * n + k);
                }
                for t in 0..m {
                    self.q.swap(i * m + t, k * m + t);
                }
            }
            let (done, rest) = self.q.split_at_mut((i + 1) * m);
            let qi = &mut done[i * m..];
            let rii = qi.iter().map(|v| v * v).sum::<f64>().sqrt();
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
                let ril: f64 = qi.iter().zip(ql.iter()).map(|(a, b)| a * b).sum();
                self.r[i * n + l] = ril;
                for (b, a) in ql.iter_mut().zip(qi.iter()) {
                    *b -= ril * a;
                }
                self.norms[l] -= ril * ril;
            }
        }
        for (zj, qj) in self.z.iter_mut().zip(self.q.chunks_exact(m)) {
            *zj = qj.iter().zip(y).map(|(a, b)| a * b).sum();
        }
        Ok(())
    }

    /// Breadth-first search keeping `k` paths; writes the un-permuted decision into `out`.
    fn search(&mut self, k: usize, out: &mut [i32]) {
        let n = self.n;
        let mut count = 1;
        self.metrics[0] = 0.0;
        for level in (0..n).rev() {
            self.candidates.clear();
            let r_row = &self.r[level * n..(level + 1) * n];
            let r_diag = r_row[level];
            for (parent, (path, &metric)) in self
                .paths
                .chunks_exact(n)
                .zip(&self.metrics)
                .take(count)
                .enumerate()
            {
                // Interference of the symbols already decided on this path.
                let b = self.z[level]
                    - r_row[level + 1..]
                        .iter()
                        .zip(&path[level + 1..])
                        .map(|(r, &s)| r * s as f64)
                        .sum::<f64>();
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
            for (c, cand) in self.candidates.iter().enumerate() {
                let parent = cand.parent as usize;
                let dst = &mut self.next_paths[c * n..(c + 1) * n];
                dst[level + 1..]
                    .copy_from_slice(&self.paths[parent * n + level + 1..(parent + 1) * n]);
                dst[level] = self.alphabet[cand.level_index as usize] as i32;
                self.next_metrics[c] = cand.metric;
            }
            count = self.candidates.len();
            std::mem::swap(&mut self.paths, &mut self.next_paths);
            std::mem::swap(&mut self.metrics, &mut self.next_metrics);
        }
        let best = (0..count)
            .min_by(|&a, &b| self.metrics[a].total_cmp(&self.metrics[b]))
            .unwrap_or(0);
        for (p, &s) in self.paths[best * n..(best + 1) * n].iter().enumerate() {
            out[self.perm[p]] = s;
        }
    }
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
