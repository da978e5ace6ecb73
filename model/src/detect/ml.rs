//! Exhaustive maximum-likelihood detection for small systems: the test oracle.
//!
//! Every one of the L^N real-valued alphabet vectors s is scored by the metric
//! ‖ỹ − H̃s‖² computed directly on H̃ (no QR, so it shares no code path with
//! [`super::kbest`]), and the least is returned. Candidates are visited in odometer order,
//! so consecutive candidates differ in one coordinate per step and the residual ỹ − H̃s is
//! updated by one column of H̃ (O(M) per candidate, O(M·N) once per frame).
//!
//! Guarantees: systems with L^N > [`ML_MAX_CANDIDATES`] are refused with
//! [`ModelError::InvalidDimension`] before any work; shape mismatches return errors; no panics.

use super::{Detector, check_batch};
use crate::error::ModelError;
use crate::link::FrameBatch;

/// Largest number of candidate vectors L^N that exhaustive ML enumerates per frame (2^20).
pub const ML_MAX_CANDIDATES: u64 = 1 << 20;

/// Exhaustive ML detector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Ml;

/// The ML metric ‖ỹ − H̃s‖² of one frame (`h` is m × n row-major) for alphabet levels `s`.
pub fn ml_metric(h: &[f64], y: &[f64], s: &[i32]) -> f64 {
    let n = s.len();
    h.chunks_exact(n.max(1))
        .zip(y)
        .map(|(row, &yi)| {
            let hs: f64 = row.iter().zip(s).map(|(a, &b)| a * b as f64).sum();
            (yi - hs) * (yi - hs)
        })
        .sum()
}

impl Detector for Ml {
    fn name(&self) -> String {
        "ml".to_string()
    }

    fn detect(&self, batch: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError> {
        check_batch(batch)?;
        batch.check_decisions(decisions)?;
        let (m, n) = (batch.m, batch.n);
        let modulation = batch.modulation();
        let levels = modulation.levels_per_dim();
        let candidates = u32::try_from(n)
            .ok()
            .and_then(|n| (levels as u64).checked_pow(n))
            .unwrap_or(u64::MAX);
        if candidates > ML_MAX_CANDIDATES {
            return Err(ModelError::InvalidDimension {
                name: "n",
                value: n,
                reason: "exhaustive ML would enumerate more than 2^20 candidate vectors (L^N)",
            });
        }
        let max_level = modulation.max_level();
        // Columns of H̃ (column-major copy), the residual, the current and the best candidate.
        let mut columns = vec![0.0; m * n];
        let mut residual = vec![0.0; m];
        let mut s = vec![0i32; n];
        let mut index = vec![0usize; n];
        for f in 0..batch.frames {
            let (h, y) = (batch.h(f), batch.y(f));
            for (i, row) in h.chunks_exact(n).enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    columns[j * m + i] = v;
                }
            }
            s.fill(-max_level);
            index.fill(0);
            // residual = ỹ − H̃s for the first candidate (every level at its minimum).
            for ((r, &yi), row) in residual.iter_mut().zip(y).zip(h.chunks_exact(n)) {
                *r = yi + max_level as f64 * row.iter().sum::<f64>();
            }
            let best = &mut decisions[f * n..(f + 1) * n];
            best.copy_from_slice(&s);
            let mut best_metric: f64 = residual.iter().map(|r| r * r).sum();
            'enumerate: loop {
                // Odometer step: raise the first coordinate that can rise, reset those before.
                let mut j = 0;
                loop {
                    if j == n {
                        break 'enumerate;
                    }
                    let col = &columns[j * m..(j + 1) * m];
                    if index[j] + 1 < levels {
                        index[j] += 1;
                        s[j] += 2;
                        for (r, &c) in residual.iter_mut().zip(col) {
                            *r -= 2.0 * c;
                        }
                        break;
                    }
                    let back = 2.0 * max_level as f64;
                    for (r, &c) in residual.iter_mut().zip(col) {
                        *r += back * c;
                    }
                    index[j] = 0;
                    s[j] = -max_level;
                    j += 1;
                }
                let metric: f64 = residual.iter().map(|r| r * r).sum();
                if metric < best_metric {
                    best_metric = metric;
                    best.copy_from_slice(&s);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{KBest, LinearDetector};
    use crate::link::{LinkConfig, stream_rng};
    use crate::modulation::Modulation;

    fn batch(
        nt: usize,
        nr: usize,
        modulation: Modulation,
        snr_db: &[f64],
        seed: u64,
    ) -> FrameBatch {
        let link = LinkConfig::new(nt, nr, modulation).unwrap();
        link.generator()
            .unwrap()
            .generate(snr_db, &mut stream_rng(seed, 0))
    }

    /// Candidate number `c` of an independent enumeration: digit j of `c` in base L.
    fn candidate(modulation: Modulation, n: usize, mut c: usize) -> Vec<i32> {
        let levels = modulation.levels_per_dim();
        (0..n)
            .map(|_| {
                let level = modulation.level_of_index(c % levels);
                c /= levels;
                level
            })
            .collect()
    }

    #[test]
    fn ml_attains_the_brute_force_minimum() {
        for (nt, nr, modulation) in [
            (2, 2, Modulation::Qam16),
            (3, 2, Modulation::Qpsk),
            (3, 3, Modulation::Bpsk),
            (1, 2, Modulation::Qam64),
        ] {
            let b = batch(nt, nr, modulation, &[0.0, 6.0, 12.0, 18.0].repeat(50), 31);
            let mut d = vec![0; b.frames * b.n];
            Ml.detect(&b, &mut d).unwrap();
            let total = modulation.levels_per_dim().pow(b.n as u32);
            for f in 0..b.frames {
                let (h, y) = (b.h(f), b.y(f));
                let best = (0..total)
                    .map(|c| ml_metric(h, y, &candidate(modulation, b.n, c)))
                    .fold(f64::INFINITY, f64::min);
                let got = ml_metric(h, y, &d[f * b.n..(f + 1) * b.n]);
                assert!(
                    got <= best * (1.0 + 1e-12) + 1e-12,
                    "{nt}×{nr} {modulation} frame {f}: ML metric {got}, brute force {best}"
                );
            }
        }
    }

    #[test]
    fn ml_metric_never_exceeds_other_decisions() {
        let b = batch(4, 4, Modulation::Qam16, &[2.0, 8.0, 14.0].repeat(100), 32);
        let size = b.frames * b.n;
        let mut ml = vec![0; size];
        Ml.detect(&b, &mut ml).unwrap();
        let others: Vec<(String, Vec<i32>)> = [
            Box::new(LinearDetector::zf()) as Box<dyn Detector>,
            Box::new(LinearDetector::mmse()),
            Box::new(KBest::new(4)),
        ]
        .iter()
        .map(|d| {
            let mut out = vec![0; size];
            d.detect(&b, &mut out).unwrap();
            (d.name(), out)
        })
        .chain(std::iter::once(("transmitted".to_string(), b.x.clone())))
        .collect();
        let mut strictly_better = 0;
        for f in 0..b.frames {
            let (h, y) = (b.h(f), b.y(f));
            let frame = f * b.n..(f + 1) * b.n;
            let best = ml_metric(h, y, &ml[frame.clone()]);
            for (name, d) in &others {
                let other = ml_metric(h, y, &d[frame.clone()]);
                assert!(
                    best <= other + 1e-9,
                    "frame {f}: ML {best} > {name} {other}"
                );
                if best < other - 1e-9 {
                    strictly_better += 1;
                }
            }
        }
        assert!(strictly_better > 0, "ML never beat any other decision");
    }

    #[test]
    fn too_large_systems_and_bad_shapes_are_refused() {
        // 16-QAM 6×6: N = 12, 4^12 = 2^24 > 2^20.
        let big = batch(6, 6, Modulation::Qam16, &[10.0], 33);
        assert!(matches!(
            Ml.detect(&big, &mut [0; 12]),
            Err(ModelError::InvalidDimension {
                name: "n",
                value: 12,
                ..
            })
        ));
        // QPSK 10×10 (2^20 candidates) is the largest QPSK system accepted.
        let edge = batch(10, 10, Modulation::Qpsk, &[10.0], 34);
        assert!(Ml.detect(&edge, &mut [0; 20]).is_ok());
        let small = batch(2, 2, Modulation::Qpsk, &[10.0; 2], 35);
        assert!(matches!(
            Ml.detect(&small, &mut [0; 7]),
            Err(ModelError::Shape(_))
        ));
    }
}
