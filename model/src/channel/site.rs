//! A site stand-in (docs/channels.md): a geometric channel generator whose datasets
//! `kaq ber/train --channels` read like measured or ray-traced channels.
//!
//! The base station has a uniform linear array of Nr antennas spaced `spacing` wavelengths
//! apart, steering vector a(φ)_i = e^{i 2π d i sin φ}, i = 0..Nr−1, φ from broadside. Nt
//! single-antenna users transmit; column j of H is user j's channel.
//!
//! **The site** (fixed by `site`, the site seed): C scattering clusters with mean angles φ_c
//! drawn uniformly in the sector ±`sector`/2 and powers P_c ∝ 10^(−`decay`·c/10) (c = 0..C−1,
//! normalized to ΣP_c = 1), the same for every channel of the site.
//!
//! **A channel** (drawn from `seed`): for every user and cluster, `rays` rays with angles
//! φ_c + δ, δ ~ N(0, σ²) (σ = `spread`, the cluster's rms angular spread), and gains
//! g ~ CN(0, P_c/rays). With line of sight at Rician factor K, each user also has a direct
//! path at its own angle θ_j, uniform in the sector, with a uniform phase ψ_j:
//!
//! h_j = √(K/(K+1)) e^{iψ_j} a(θ_j) + √(1/(K+1)) Σ_c Σ_r g_{c,r} a(φ_c + δ_{c,r}),
//!
//! scaled by 1/√Nr so that E|h_ij|² = 1/Nr, the i.i.d. model's entry variance. Users are
//! independent given the site; all share the clusters, so the receive covariance is the
//! site's (low rank for few narrow clusters) and not the identity.

use ndarray::Array3;
use num_complex::Complex;
use rand::Rng;
use rand_distr::StandardNormal;
use serde::Serialize;

use crate::error::ModelError;
use crate::link::stream_rng;

/// Largest number of clusters.
pub const MAX_CLUSTERS: usize = 64;
/// Largest number of rays per cluster.
pub const MAX_RAYS: usize = 1024;
/// Largest number of channels one call generates.
pub const MAX_SITE_CHANNELS: usize = 1 << 22;

/// The geometry parameters of a site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteConfig {
    /// Receive antennas (the array).
    pub nr: usize,
    /// Transmit antennas (users).
    pub nt: usize,
    /// Scattering clusters C.
    pub clusters: usize,
    /// Rays per cluster and user.
    pub rays: usize,
    /// rms angular spread σ of a cluster, degrees.
    pub spread_deg: f64,
    /// Width of the sector holding clusters and users, degrees (centred on broadside).
    pub sector_deg: f64,
    /// Power decay between successive clusters, dB.
    pub decay_db: f64,
    /// Rician K factor of the line-of-sight path, dB; `None` is no line of sight.
    pub los_k_db: Option<f64>,
    /// Antenna spacing in wavelengths.
    pub spacing: f64,
}

impl SiteConfig {
    /// A site of `nr` × `nt` with three clusters of 5° spread, 20 rays, a 120° sector,
    /// 3 dB decay, no line of sight, half-wavelength spacing.
    pub fn new(nr: usize, nt: usize) -> Self {
        Self {
            nr,
            nt,
            clusters: 3,
            rays: 20,
            spread_deg: 5.0,
            sector_deg: 120.0,
            decay_db: 3.0,
            los_k_db: None,
            spacing: 0.5,
        }
    }

    /// Checks every field; the error names it.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |name, value: f64, reason| {
            Err(ModelError::InvalidParameter {
                name,
                value,
                reason,
            })
        };
        if self.nr == 0 || self.nr > 256 {
            return bad("nr", self.nr as f64, "must be between 1 and 256");
        }
        if self.nt == 0 || self.nt > 256 {
            return bad("nt", self.nt as f64, "must be between 1 and 256");
        }
        if self.clusters == 0 || self.clusters > MAX_CLUSTERS {
            return bad("clusters", self.clusters as f64, "must be between 1 and 64");
        }
        if self.rays == 0 || self.rays > MAX_RAYS {
            return bad("rays", self.rays as f64, "must be between 1 and 1024");
        }
        if !(0.0..=90.0).contains(&self.spread_deg) {
            return bad(
                "spread",
                self.spread_deg,
                "angular spread must be between 0 and 90 degrees",
            );
        }
        if !(0.0..=180.0).contains(&self.sector_deg) {
            return bad(
                "sector",
                self.sector_deg,
                "sector must be between 0 and 180 degrees",
            );
        }
        if !(0.0..=40.0).contains(&self.decay_db) {
            return bad(
                "decay",
                self.decay_db,
                "cluster power decay must be between 0 and 40 dB",
            );
        }
        if let Some(k) = self.los_k_db
            && !(-40.0..=40.0).contains(&k)
        {
            return bad("los-k", k, "Rician K factor must be between -40 and 40 dB");
        }
        if !(self.spacing > 0.0 && self.spacing <= 4.0) {
            return bad(
                "spacing",
                self.spacing,
                "antenna spacing must be above 0 and at most 4 wavelengths",
            );
        }
        Ok(())
    }
}

/// A site: its configuration and the cluster geometry its seed fixed.
#[derive(Debug, Clone, Serialize)]
pub struct Site {
    /// The parameters.
    pub config: SiteConfig,
    /// The site seed.
    pub site: u64,
    /// Mean angle of every cluster, degrees.
    pub cluster_deg: Vec<f64>,
    /// Power of every cluster (sums to 1).
    pub cluster_power: Vec<f64>,
}

impl Site {
    /// The site of `config` and site seed `site`.
    pub fn new(config: SiteConfig, site: u64) -> Result<Self, ModelError> {
        config.validate()?;
        let mut rng = stream_rng(site, 0x5173);
        let half = config.sector_deg / 2.0;
        let cluster_deg: Vec<f64> = (0..config.clusters)
            .map(|_| {
                if half > 0.0 {
                    rng.random_range(-half..=half)
                } else {
                    0.0
                }
            })
            .collect();
        let raw: Vec<f64> = (0..config.clusters)
            .map(|c| 10f64.powf(-config.decay_db * c as f64 / 10.0))
            .collect();
        let total: f64 = raw.iter().sum();
        let cluster_power = raw.iter().map(|p| p / total).collect();
        Ok(Self {
            config,
            site,
            cluster_deg,
            cluster_power,
        })
    }

    /// `n` channels of the site drawn from `seed`, shape [n, Nr, Nt]. Channel k depends only
    /// on (site, seed, k): it comes from its own random stream.
    pub fn channels(&self, n: usize, seed: u64) -> Result<Array3<Complex<f64>>, ModelError> {
        if n == 0 || n > MAX_SITE_CHANNELS {
            return Err(ModelError::InvalidParameter {
                name: "channels",
                value: n as f64,
                reason: "the number of channels must be between 1 and 4194304",
            });
        }
        let c = &self.config;
        let (nr, nt) = (c.nr, c.nt);
        let mut out = Array3::<Complex<f64>>::zeros((n, nr, nt));
        let (los, nlos) = match c.los_k_db {
            None => (0.0, 1.0),
            Some(k_db) => {
                let k = 10f64.powf(k_db / 10.0);
                ((k / (k + 1.0)).sqrt(), (1.0 / (k + 1.0)).sqrt())
            }
        };
        let half = c.sector_deg.to_radians() / 2.0;
        let spread = c.spread_deg.to_radians();
        let scale = 1.0 / (nr as f64).sqrt();
        let kappa = 2.0 * std::f64::consts::PI * c.spacing;
        let mut column = vec![Complex::new(0.0, 0.0); nr];
        let add_path = |column: &mut [Complex<f64>], gain: Complex<f64>, angle: f64| {
            let step = Complex::from_polar(1.0, kappa * angle.sin());
            let mut phase = gain;
            for v in column.iter_mut() {
                *v += phase;
                phase *= step;
            }
        };
        for k in 0..n {
            // Stream 0 is the site's geometry; channel k uses stream k + 1.
            let mut rng = stream_rng(seed ^ 0x5173_0000_0000_0000, k as u64 + 1);
            for j in 0..nt {
                column.fill(Complex::new(0.0, 0.0));
                for (&mean_deg, &power) in self.cluster_deg.iter().zip(&self.cluster_power) {
                    let std = (power / c.rays as f64 / 2.0).sqrt() * nlos;
                    for _ in 0..c.rays {
                        let d: f64 = rng.sample(StandardNormal);
                        let re: f64 = rng.sample(StandardNormal);
                        let im: f64 = rng.sample(StandardNormal);
                        let angle = mean_deg.to_radians() + spread * d;
                        add_path(&mut column, Complex::new(std * re, std * im), angle);
                    }
                }
                if c.los_k_db.is_some() {
                    let theta = if half > 0.0 {
                        rng.random_range(-half..=half)
                    } else {
                        0.0
                    };
                    let psi = rng.random_range(0.0..2.0 * std::f64::consts::PI);
                    add_path(&mut column, Complex::from_polar(los, psi), theta);
                }
                for (i, v) in column.iter().enumerate() {
                    out[[k, i, j]] = v * scale;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SiteConfig {
        SiteConfig::new(8, 4)
    }

    #[test]
    fn entries_have_the_iid_power() {
        // Nr·|h_ij|² has mean 1. The 16 000 columns are independent; the average of Nr·|h_ij|²
        // over one column has variance at most that of one entry, 1 (an exponential), so the
        // grand mean has a standard error of at most 1/√16000 = 0.0079: bound 0.05 ≈ 6σ.
        for los in [None, Some(6.0)] {
            let site = Site::new(
                SiteConfig {
                    los_k_db: los,
                    ..cfg()
                },
                11,
            )
            .unwrap();
            let h = site.channels(4000, 2).unwrap();
            let cols = 4000 * 4;
            let mean = h.iter().map(|v| v.norm_sqr()).sum::<f64>() * 8.0 / (cols * 8) as f64;
            assert!((mean - 1.0).abs() < 0.05, "{los:?}: mean power {mean}");
        }
    }

    #[test]
    fn one_narrow_cluster_gives_columns_along_its_steering_vector() {
        let site = Site::new(
            SiteConfig {
                clusters: 1,
                spread_deg: 0.0,
                ..cfg()
            },
            5,
        )
        .unwrap();
        let phi = site.cluster_deg[0].to_radians();
        let h = site.channels(20, 9).unwrap();
        let step = Complex::from_polar(1.0, std::f64::consts::PI * phi.sin());
        for k in 0..20 {
            for j in 0..4 {
                let g = h[[k, 0, j]];
                assert!(g.norm() > 0.0);
                for i in 1..8 {
                    let want = g * step.powi(i as i32);
                    assert!(
                        (h[[k, i, j]] - want).norm() < 1e-12,
                        "channel {k} user {j} antenna {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn strong_line_of_sight_gives_flat_amplitudes() {
        let site = Site::new(
            SiteConfig {
                los_k_db: Some(40.0),
                ..cfg()
            },
            3,
        )
        .unwrap();
        let h = site.channels(50, 1).unwrap();
        // |h_ij|² ≈ (K/(K+1))/Nr up to the 1e-4 NLOS power: within a few percent.
        for v in h.iter() {
            let p = v.norm_sqr() * 8.0;
            assert!((p - 1.0).abs() < 0.1, "{p}");
        }
        let no_los = Site::new(cfg(), 3).unwrap().channels(50, 1).unwrap();
        let spread = no_los
            .iter()
            .map(|v| (v.norm_sqr() * 8.0 - 1.0).abs())
            .fold(0.0, f64::max);
        assert!(spread > 0.5, "Rayleigh amplitudes vary: {spread}");
    }

    #[test]
    fn receive_covariance_is_not_white_and_sites_differ() {
        // The trace-normalized receive covariance of a 3-cluster 5° site concentrates its
        // power: the largest eigenvalue share is far above 1/Nr.
        let site = Site::new(cfg(), 11).unwrap();
        let h = site.channels(2000, 4).unwrap();
        let mut r = nalgebra::DMatrix::<Complex<f64>>::zeros(8, 8);
        for k in 0..2000 {
            for j in 0..4 {
                for a in 0..8 {
                    for b in 0..8 {
                        r[(a, b)] += h[[k, a, j]] * h[[k, b, j]].conj();
                    }
                }
            }
        }
        let eig = r.clone().symmetric_eigenvalues();
        let total: f64 = eig.iter().sum();
        let top = eig.iter().cloned().fold(0.0, f64::max) / total;
        assert!(top > 0.3, "largest eigenvalue share {top}");
        // Same seeds: same channels; another site or seed: different ones.
        assert_eq!(
            site.channels(3, 4).unwrap(),
            h.slice(ndarray::s![..3, .., ..])
        );
        assert_ne!(
            site.channels(3, 5).unwrap(),
            h.slice(ndarray::s![..3, .., ..])
        );
        let other = Site::new(cfg(), 12).unwrap();
        assert_ne!(other.cluster_deg, site.cluster_deg);
    }

    #[test]
    fn bad_parameters_name_their_field() {
        let cases: Vec<(&str, SiteConfig)> = vec![
            ("nr", SiteConfig { nr: 0, ..cfg() }),
            ("nt", SiteConfig { nt: 300, ..cfg() }),
            (
                "clusters",
                SiteConfig {
                    clusters: 0,
                    ..cfg()
                },
            ),
            ("rays", SiteConfig { rays: 0, ..cfg() }),
            (
                "spread",
                SiteConfig {
                    spread_deg: f64::NAN,
                    ..cfg()
                },
            ),
            (
                "sector",
                SiteConfig {
                    sector_deg: -1.0,
                    ..cfg()
                },
            ),
            (
                "decay",
                SiteConfig {
                    decay_db: 50.0,
                    ..cfg()
                },
            ),
            (
                "los-k",
                SiteConfig {
                    los_k_db: Some(f64::INFINITY),
                    ..cfg()
                },
            ),
            (
                "spacing",
                SiteConfig {
                    spacing: 0.0,
                    ..cfg()
                },
            ),
        ];
        for (field, c) in cases {
            let err = Site::new(c, 1).unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
        let site = Site::new(cfg(), 1).unwrap();
        assert!(
            site.channels(0, 1)
                .unwrap_err()
                .to_string()
                .contains("channels")
        );
    }
}
