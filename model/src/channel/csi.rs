//! Pilot-based channel estimation (docs/channels.md): what the detectors know of H.
//!
//! * [`Csi::Perfect`] gives the detectors the true channel (the default; no random draw).
//! * [`Csi::Ls`] and [`Csi::Lmmse`] estimate H from L_p ≥ Nt orthogonal pilots sent once at the
//!   start of each channel block: the pilot matrix X_p ∈ ℂ^{Nt×L_p} has the DFT rows
//!   X_p[j, l] = √(P·Es)·e^{−2πi·j·l/L_p}, so X_p X_pᴴ = L_p·P·Es·I, where P is the pilot power
//!   relative to the data symbol energy Es. The receiver sees Y_p = H X_p + N_p with
//!   N_p ~ CN(0, σ²) entry-wise (the σ² of the block's first frame).
//! * LS: Ĥ = Y_p X_pᴴ (X_p X_pᴴ)⁻¹ = H + E, with E i.i.d. CN(0, σ_e²), σ_e² = σ²/(L_p·P·Es).
//! * LMMSE: the linear MMSE estimate given Ĥ_LS and the channel model's covariance. For a
//!   Kronecker channel (Rayleigh is ρ = 0) E[h_ij h_kl*] = R_rx[i,k]·R_tx[j,l]/Nr; with the
//!   eigen-decompositions R_rx = U Λ Uᵀ and R_tx = V M Vᵀ the rotated entries of H' = Uᵀ H V are
//!   independent with variances d_ab = λ_a μ_b/Nr, so Ĥ = U (G ∘ Uᵀ Ĥ_LS V) Vᵀ with
//!   G_ab = d_ab/(d_ab + σ_e²). Its per-entry MSE, mean over entries of d σ_e²/(d + σ_e²), is
//!   below σ_e² for every SNR. For dataset channels the prior is diagonal: the file's mean
//!   power of each entry (correlation between entries is not used).

use nalgebra::{DMatrix, SymmetricEigen};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::link::{ChannelModel, LinkConfig, exponential_correlation};

/// Largest pilot length accepted.
pub const MAX_PILOTS: usize = 1 << 16;

/// Largest pilot power (relative to Es) accepted: 60 dB.
pub const MAX_PILOT_POWER: f64 = 1e6;

/// What the detectors know of the channel.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "estimator", rename_all = "lowercase")]
pub enum Csi {
    /// The true channel.
    #[default]
    Perfect,
    /// Least squares from orthogonal pilots.
    Ls {
        /// Pilot length L_p ≥ Nt.
        pilots: usize,
        /// Pilot symbol energy relative to the data symbol energy Es, > 0.
        pilot_power: f64,
    },
    /// Linear MMSE from orthogonal pilots and the channel model's covariance.
    Lmmse {
        /// Pilot length L_p ≥ Nt.
        pilots: usize,
        /// Pilot symbol energy relative to the data symbol energy Es, > 0.
        pilot_power: f64,
    },
}

impl std::fmt::Display for Csi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Csi::Perfect => write!(f, "perfect CSI"),
            Csi::Ls {
                pilots,
                pilot_power,
            } => write!(f, "LS CSI L_p={pilots} P={pilot_power}"),
            Csi::Lmmse {
                pilots,
                pilot_power,
            } => write!(f, "LMMSE CSI L_p={pilots} P={pilot_power}"),
        }
    }
}

impl Csi {
    /// Whether the detectors get the true channel.
    pub fn is_perfect(&self) -> bool {
        matches!(self, Csi::Perfect)
    }

    /// Pilot length and power of an estimated CSI.
    pub fn pilots(&self) -> Option<(usize, f64)> {
        match *self {
            Csi::Perfect => None,
            Csi::Ls {
                pilots,
                pilot_power,
            }
            | Csi::Lmmse {
                pilots,
                pilot_power,
            } => Some((pilots, pilot_power)),
        }
    }

    /// Checks the pilot length against `nt` transmit antennas and the pilot power.
    pub fn validate(&self, nt: usize) -> Result<(), ModelError> {
        let Some((pilots, power)) = self.pilots() else {
            return Ok(());
        };
        if pilots < nt || pilots > MAX_PILOTS {
            return Err(ModelError::InvalidDimension {
                name: "pilots",
                value: pilots,
                reason: "orthogonal pilots need a length between Nt and 65536",
            });
        }
        if !power.is_finite() || power <= 0.0 || power > MAX_PILOT_POWER {
            return Err(ModelError::InvalidParameter {
                name: "pilot_power",
                value: power,
                reason: "pilot power must be finite, positive and at most 1e6",
            });
        }
        Ok(())
    }

    /// The LS error variance per complex entry, σ²/(L_p·P·Es); 0 for perfect CSI.
    pub fn ls_error_var(&self, es: f64, noise_var: f64) -> f64 {
        match self.pilots() {
            None => 0.0,
            Some((pilots, power)) => noise_var / (pilots as f64 * power * es),
        }
    }
}

/// The estimator of one link: the pilot matrix and the LMMSE prior in its eigenbasis.
#[derive(Debug, Clone)]
pub struct Estimator {
    csi: Csi,
    nt: usize,
    nr: usize,
    es: f64,
    /// X_p, Nt × L_p row-major, complex (re, im).
    pilots: Vec<(f64, f64)>,
    /// Eigenvectors U of R_rx (columns) and eigenvalues λ; `None` when R_rx = I.
    rx: Option<(DMatrix<f64>, Vec<f64>)>,
    /// Eigenvectors V of R_tx (columns) and eigenvalues μ; `None` when R_tx = I.
    tx: Option<(DMatrix<f64>, Vec<f64>)>,
    /// Per-entry prior variances d_ab of the rotated channel, Nr × Nt.
    prior: Vec<f64>,
    /// Received pilots Y_p, Nr × L_p.
    received: Vec<(f64, f64)>,
}

impl Estimator {
    /// The estimator of `link`; `None` for perfect CSI.
    pub fn new(link: &LinkConfig) -> Result<Option<Self>, ModelError> {
        link.csi.validate(link.nt)?;
        let Some((len, power)) = link.csi.pilots() else {
            return Ok(None);
        };
        let (nt, nr) = (link.nt, link.nr);
        let es = link.modulation.es();
        let amp = (power * es).sqrt();
        let mut pilots = Vec::with_capacity(nt * len);
        for j in 0..nt {
            for l in 0..len {
                // Reduce j·l modulo L_p first so the phase stays exact for long pilots.
                let phase = -2.0 * std::f64::consts::PI * ((j * l) % len) as f64 / len as f64;
                pilots.push((amp * phase.cos(), amp * phase.sin()));
            }
        }
        let eigen = |n: usize, rho: f64| {
            let e = SymmetricEigen::new(exponential_correlation(n, rho));
            (
                e.eigenvectors,
                e.eigenvalues.iter().map(|&v| v.max(0.0)).collect(),
            )
        };
        let (rx, tx) = match link.channel {
            ChannelModel::Rayleigh => (None, None),
            ChannelModel::Kronecker { rho_tx, rho_rx } => {
                (Some(eigen(nr, rho_rx)), Some(eigen(nt, rho_tx)))
            }
        };
        let lambda = |v: &Option<(DMatrix<f64>, Vec<f64>)>, i: usize| {
            v.as_ref().map_or(1.0, |(_, values)| values[i])
        };
        let mut prior = Vec::with_capacity(nr * nt);
        for a in 0..nr {
            for b in 0..nt {
                prior.push(lambda(&rx, a) * lambda(&tx, b) / nr as f64);
            }
        }
        // Dataset channels: the file's per-entry mean power, correlation ignored.
        if let Some(set) = link.dataset.as_ref().and_then(|d| d.set.as_ref()) {
            prior.clone_from(&set.entry_power);
        }
        Ok(Some(Self {
            csi: link.csi,
            nt,
            nr,
            es,
            pilots,
            rx,
            tx,
            prior,
            received: vec![(0.0, 0.0); nr * len],
        }))
    }

    /// The pilot matrix X_p (Nt × L_p row-major, complex as (re, im)).
    pub fn pilot_matrix(&self) -> &[(f64, f64)] {
        &self.pilots
    }

    /// Estimates the complex channel `h` (Nr × Nt row-major) from one pilot transmission at
    /// noise variance `noise_var`, drawing the pilot noise from `rng`; writes Ĥ to `out`.
    pub fn estimate(
        &mut self,
        h: &[(f64, f64)],
        noise_var: f64,
        rng: &mut impl Rng,
        out: &mut [(f64, f64)],
    ) {
        let (nt, nr) = (self.nt, self.nr);
        let len = self.pilots.len() / nt;
        let std = (noise_var / 2.0).sqrt();
        // Y_p = H X_p + N_p.
        for i in 0..nr {
            for l in 0..len {
                let (mut re, mut im) = (0.0, 0.0);
                for j in 0..nt {
                    let (hr, hi) = h[i * nt + j];
                    let (pr, pi) = self.pilots[j * len + l];
                    re += hr * pr - hi * pi;
                    im += hr * pi + hi * pr;
                }
                let nre: f64 = rng.sample(StandardNormal);
                let nim: f64 = rng.sample(StandardNormal);
                self.received[i * len + l] = (re + std * nre, im + std * nim);
            }
        }
        // Ĥ_LS = Y_p X_pᴴ / (L_p·P·Es).
        let (_, power) = self.csi.pilots().expect("an estimator has pilots");
        let scale = 1.0 / (len as f64 * power * self.es);
        for i in 0..nr {
            for j in 0..nt {
                let (mut re, mut im) = (0.0, 0.0);
                for l in 0..len {
                    let (yr, yi) = self.received[i * len + l];
                    let (pr, pi) = self.pilots[j * len + l];
                    // y · conj(p)
                    re += yr * pr + yi * pi;
                    im += yi * pr - yr * pi;
                }
                out[i * nt + j] = (re * scale, im * scale);
            }
        }
        if matches!(self.csi, Csi::Lmmse { .. }) {
            let err = self.csi.ls_error_var(self.es, noise_var);
            self.shrink(out, err);
        }
    }

    /// Applies the LMMSE filter Ĥ = U (G ∘ Uᵀ Ĥ_LS V) Vᵀ in place.
    fn shrink(&self, h: &mut [(f64, f64)], err: f64) {
        let (nt, nr) = (self.nt, self.nr);
        let re = DMatrix::from_fn(nr, nt, |i, j| h[i * nt + j].0);
        let im = DMatrix::from_fn(nr, nt, |i, j| h[i * nt + j].1);
        let rotate = |m: DMatrix<f64>| {
            let m = match &self.rx {
                Some((u, _)) => u.transpose() * m,
                None => m,
            };
            match &self.tx {
                Some((v, _)) => m * v,
                None => m,
            }
        };
        let back = |m: DMatrix<f64>| {
            let m = match &self.rx {
                Some((u, _)) => u * m,
                None => m,
            };
            match &self.tx {
                Some((v, _)) => m * v.transpose(),
                None => m,
            }
        };
        let (mut re, mut im) = (rotate(re), rotate(im));
        for a in 0..nr {
            for b in 0..nt {
                let d = self.prior[a * nt + b];
                let g = d / (d + err);
                re[(a, b)] *= g;
                im[(a, b)] *= g;
            }
        }
        let (re, im) = (back(re), back(im));
        for i in 0..nr {
            for j in 0..nt {
                h[i * nt + j] = (re[(i, j)], im[(i, j)]);
            }
        }
    }

    /// The theoretical mean per-entry MSE of this estimator at noise variance `noise_var`.
    pub fn theoretical_mse(&self, noise_var: f64) -> f64 {
        let err = self.csi.ls_error_var(self.es, noise_var);
        match self.csi {
            Csi::Perfect => 0.0,
            Csi::Ls { .. } => err,
            Csi::Lmmse { .. } => {
                self.prior.iter().map(|&d| d * err / (d + err)).sum::<f64>()
                    / self.prior.len() as f64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Modulation;
    use crate::link::stream_rng;

    fn link(csi: Csi, rho: f64) -> LinkConfig {
        LinkConfig::new(4, 8, Modulation::Qam16)
            .unwrap()
            .with_correlation(rho, rho)
            .unwrap()
            .with_csi(csi)
            .unwrap()
    }

    /// Mean per-entry squared error |Ĥ − H|² over `draws` channels at noise variance `s2`.
    fn measured_mse(link: &LinkConfig, s2: f64, draws: usize, seed: u64) -> f64 {
        let mut generator = link.generator().unwrap();
        let mut estimator = Estimator::new(link).unwrap().unwrap();
        let snr = 10.0 * (link.noise_var(0.0) / s2).log10();
        let mut rng = stream_rng(seed, 0);
        let (nt, nr) = (link.nt, link.nr);
        let mut out = vec![(0.0, 0.0); nt * nr];
        let mut acc = 0.0;
        for _ in 0..draws {
            let b = generator.generate(&[snr], &mut rng);
            // Entry (i, j): Re H at row i, column j; Im H at row i + Nr, column j.
            let (n, t) = (b.n, b.true_h(0));
            let h: Vec<(f64, f64)> = (0..nr * nt)
                .map(|k| {
                    let (i, j) = (k / nt, k % nt);
                    (t[i * n + j], t[(i + nr) * n + j])
                })
                .collect();
            estimator.estimate(&h, s2, &mut rng, &mut out);
            acc += h
                .iter()
                .zip(&out)
                .map(|(a, e)| (a.0 - e.0).powi(2) + (a.1 - e.1).powi(2))
                .sum::<f64>();
        }
        acc / (draws * nt * nr) as f64
    }

    #[test]
    fn pilots_are_orthogonal() {
        let l = link(
            Csi::Ls {
                pilots: 6,
                pilot_power: 2.0,
            },
            0.0,
        );
        let e = Estimator::new(&l).unwrap().unwrap();
        let p = e.pilot_matrix();
        let want = 6.0 * 2.0 * Modulation::Qam16.es();
        for a in 0..4 {
            for b in 0..4 {
                let (mut re, mut im) = (0.0, 0.0);
                for k in 0..6 {
                    let (x, y) = (p[a * 6 + k], p[b * 6 + k]);
                    re += x.0 * y.0 + x.1 * y.1;
                    im += x.1 * y.0 - x.0 * y.1;
                }
                let expect = if a == b { want } else { 0.0 };
                assert!(
                    (re - expect).abs() < 1e-9 && im.abs() < 1e-9,
                    "({a},{b}): {re}+{im}i"
                );
            }
        }
    }

    #[test]
    fn ls_error_variance_matches_theory() {
        // σ_e² = σ²/(L_p·P·Es); the mean of D = 4000·32 squared errors of CN(0, σ_e²) entries
        // has relative standard deviation 1/√D ≈ 0.28 %, so 5 sigma is 1.4 %.
        for (pilots, power, s2) in [(4, 1.0, 0.5), (8, 0.5, 2.0), (5, 3.0, 0.1)] {
            let csi = Csi::Ls {
                pilots,
                pilot_power: power,
            };
            let l = link(csi, 0.0);
            let want = s2 / (pilots as f64 * power * Modulation::Qam16.es());
            assert_eq!(csi.ls_error_var(Modulation::Qam16.es(), s2), want);
            let draws = 4000;
            let got = measured_mse(&l, s2, draws, pilots as u64);
            let bound = 5.0 / ((draws * 32) as f64).sqrt();
            assert!(
                (got / want - 1.0).abs() < bound,
                "L_p={pilots} P={power} σ²={s2}: MSE {got}, theory {want}"
            );
        }
    }

    #[test]
    fn lmmse_beats_ls_and_matches_its_theory() {
        for rho in [0.0, 0.7] {
            for s2 in [4.0, 0.4] {
                let ls = link(
                    Csi::Ls {
                        pilots: 4,
                        pilot_power: 1.0,
                    },
                    rho,
                );
                let lmmse = link(
                    Csi::Lmmse {
                        pilots: 4,
                        pilot_power: 1.0,
                    },
                    rho,
                );
                let (a, b) = (
                    measured_mse(&ls, s2, 3000, 9),
                    measured_mse(&lmmse, s2, 3000, 9),
                );
                assert!(b < a, "rho {rho} σ² {s2}: LMMSE {b} not below LS {a}");
                let theory = Estimator::new(&lmmse).unwrap().unwrap().theoretical_mse(s2);
                assert!(
                    (b / theory - 1.0).abs() < 0.05,
                    "rho {rho} σ² {s2}: LMMSE MSE {b}, theory {theory}"
                );
            }
        }
    }

    #[test]
    fn bad_pilots_and_power_are_refused() {
        let base = LinkConfig::new(4, 8, Modulation::Qpsk).unwrap();
        for (csi, field) in [
            (
                Csi::Ls {
                    pilots: 3,
                    pilot_power: 1.0,
                },
                "pilots",
            ),
            (
                Csi::Lmmse {
                    pilots: 4,
                    pilot_power: 0.0,
                },
                "pilot_power",
            ),
            (
                Csi::Ls {
                    pilots: 4,
                    pilot_power: f64::NAN,
                },
                "pilot_power",
            ),
            (
                Csi::Ls {
                    pilots: 4,
                    pilot_power: -1.0,
                },
                "pilot_power",
            ),
        ] {
            let err = base.clone().with_csi(csi).unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn estimated_csi_keeps_the_true_channel_and_the_perfect_stream() {
        let perfect = LinkConfig::new(2, 3, Modulation::Qpsk)
            .unwrap()
            .with_block(2)
            .unwrap();
        let ls = perfect
            .clone()
            .with_csi(Csi::Ls {
                pilots: 2,
                pilot_power: 1.0,
            })
            .unwrap();
        let p = perfect
            .generator()
            .unwrap()
            .generate(&[10.0; 4], &mut stream_rng(1, 0));
        let e = ls
            .generator()
            .unwrap()
            .generate(&[10.0; 4], &mut stream_rng(1, 0));
        assert!(p.h_true.is_empty());
        assert_eq!(p.true_h(0), p.h(0));
        // The first channel is drawn the same way; the estimate differs from it, stays
        // constant over the block, and y is drawn through the true channel.
        assert_eq!(e.true_h(0), p.h(0));
        assert_ne!(e.h(0), e.true_h(0));
        assert_eq!(e.h(0), e.h(1));
        let (m, n) = (e.m, e.n);
        for f in 0..4 {
            let (h, x, y) = (e.true_h(f), e.x(f), e.y(f));
            let resid: f64 = (0..m)
                .map(|i| {
                    let hx: f64 = (0..n).map(|j| h[i * n + j] * x[j] as f64).sum();
                    (y[i] - hx).powi(2)
                })
                .sum();
            assert!(resid < 50.0 * e.noise_var[f], "frame {f}: residual {resid}");
        }
        let text = serde_json::to_string(&ls).unwrap();
        assert!(text.contains("\"estimator\":\"ls\""), "{text}");
        assert_eq!(serde_json::from_str::<LinkConfig>(&text).unwrap(), ls);
        assert!(!serde_json::to_string(&perfect).unwrap().contains("csi"));
    }
}
