//! Clarke/Jakes time variation within a channel block (docs/channels.md).
//!
//! With a normalized Doppler f_D·T_s > 0 (T_s the frame duration), every entry of the
//! white channel H_w evolves over the frames t = 0, 1, …, T−1 of a block as a sum of
//! [`SINUSOIDS`] = M complex sinusoids with Gaussian amplitudes,
//! h(t) = M^{−1/2} Σ_n a_n e^{i ω_n t}, a_n ~ CN(0, 1), ω_n = 2π f_D T_s cos α_n,
//! α_n = (2πn − π + θ)/M with θ uniform on [−π, π) (the random-angle form of Zheng and Xiao).
//! Given the angles, h is Gaussian with E|h(t)|² = 1 at every t, so each frame's channel has
//! exactly the block-fading distribution; averaged over θ the angles cover the circle
//! uniformly, so the autocorrelation E[h(t) h*(t+τ)] is J0(2π f_D T_s τ) exactly, Clarke's
//! spectrum, for any M. Blocks are independent; the Kronecker factors and the 1/Nr scale
//! apply per frame as without time variation. f_D·T_s = 0 draws nothing new and keeps block
//! fading bit-identical.

use rand::Rng;
use rand_distr::StandardNormal;

/// Sinusoids per channel entry.
pub const SINUSOIDS: usize = 32;

/// Largest normalized Doppler accepted (the frame-rate Nyquist limit).
pub const MAX_DOPPLER: f64 = 0.5;

/// The sum-of-sinusoids state of one block: per entry M frequencies and amplitudes.
#[derive(Debug, Clone, Default)]
pub struct JakesBlock {
    /// ω_n per entry, entry-major.
    omega: Vec<f64>,
    /// a_n per entry, entry-major, complex (re, im).
    amp: Vec<(f64, f64)>,
}

impl JakesBlock {
    /// Draws the frequencies and amplitudes of `entries` entries at normalized Doppler `fd`.
    pub fn draw(&mut self, entries: usize, fd: f64, rng: &mut impl Rng) {
        let m = SINUSOIDS as f64;
        self.omega.clear();
        self.amp.clear();
        for _ in 0..entries {
            let theta = rng.random_range(-std::f64::consts::PI..std::f64::consts::PI);
            for n in 1..=SINUSOIDS {
                let alpha =
                    (2.0 * std::f64::consts::PI * n as f64 - std::f64::consts::PI + theta) / m;
                self.omega
                    .push(2.0 * std::f64::consts::PI * fd * alpha.cos());
                let re: f64 = rng.sample(StandardNormal);
                let im: f64 = rng.sample(StandardNormal);
                let s = std::f64::consts::FRAC_1_SQRT_2;
                self.amp.push((s * re, s * im));
            }
        }
    }

    /// Writes `scale`·h(t) of every entry into `out`.
    pub fn eval(&self, t: usize, scale: f64, out: &mut [(f64, f64)]) {
        let norm = scale / (SINUSOIDS as f64).sqrt();
        for (k, h) in out.iter_mut().enumerate() {
            let (mut re, mut im) = (0.0, 0.0);
            let range = k * SINUSOIDS..(k + 1) * SINUSOIDS;
            for (&w, &(ar, ai)) in self.omega[range.clone()].iter().zip(&self.amp[range]) {
                let (s, c) = (w * t as f64).sin_cos();
                re += ar * c - ai * s;
                im += ar * s + ai * c;
            }
            *h = (norm * re, norm * im);
        }
    }
}

/// The Bessel function J0 by its power series (accurate to 1e-12 for |x| ≤ 12).
pub fn bessel_j0(x: f64) -> f64 {
    let q = -(x * x) / 4.0;
    let (mut term, mut sum) = (1.0, 1.0);
    for k in 1..60 {
        term *= q / (k * k) as f64;
        sum += term;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Modulation;
    use crate::link::{LinkConfig, stream_rng};

    #[test]
    fn j0_matches_tabulated_values() {
        // Abramowitz and Stegun, Table 9.1.
        for (x, want) in [
            (0.0, 1.0),
            (1.0, 0.765_197_686_6),
            (2.404_825_557_7, 0.0),
            (5.0, -0.177_596_771_3),
            (10.0, -0.245_935_764_5),
        ] {
            assert!(
                (bessel_j0(x) - want).abs() < 1e-9,
                "J0({x}) = {}",
                bessel_j0(x)
            );
        }
    }

    /// E[h_ij(0) h_ij*(τ)]·Nr over the blocks and entries of a Jakes link, τ = 0..T−1.
    fn autocorrelation(fd: f64, block: usize, blocks: usize, rho: f64) -> Vec<f64> {
        let link = LinkConfig::new(4, 8, Modulation::Qpsk)
            .unwrap()
            .with_correlation(rho, rho)
            .unwrap()
            .with_block(block)
            .unwrap()
            .with_doppler(fd)
            .unwrap();
        let mut g = link.generator().unwrap();
        let b = g.generate(&vec![10.0; block * blocks], &mut stream_rng(7, 0));
        let (n, nr, nt) = (b.n, 8, 4);
        let mut acc = vec![0.0; block];
        for k in 0..blocks {
            let h0 = b.true_h(k * block);
            for (tau, a) in acc.iter_mut().enumerate() {
                let ht = b.true_h(k * block + tau);
                for i in 0..nr {
                    for j in 0..nt {
                        // Re(h0 · conj(ht)) from the Re (row i) and Im (row i + Nr) blocks.
                        *a += h0[i * n + j] * ht[i * n + j]
                            + h0[(i + nr) * n + j] * ht[(i + nr) * n + j];
                    }
                }
            }
        }
        acc.iter()
            .map(|a| a * nr as f64 / (blocks * nr * nt) as f64)
            .collect()
    }

    #[test]
    fn autocorrelation_follows_j0() {
        // 3000 blocks × 32 entries = 96 000 products per lag, each of variance at most 1 for
        // unit-power entries (the entries of one channel are independent): a standard error of
        // at most 0.0032, bound 0.02 ≈ 6 standard errors.
        for fd in [0.01, 0.05, 0.2] {
            let r = autocorrelation(fd, 16, 3000, 0.0);
            for (tau, &got) in r.iter().enumerate() {
                let want = bessel_j0(2.0 * std::f64::consts::PI * fd * tau as f64);
                assert!(
                    (got - want).abs() < 0.02,
                    "f_D T_s = {fd}, lag {tau}: {got}, J0 gives {want}"
                );
            }
        }
    }

    #[test]
    fn doppler_zero_is_block_fading_and_bad_values_are_refused() {
        let base = LinkConfig::new(2, 3, Modulation::Qam16)
            .unwrap()
            .with_block(4)
            .unwrap();
        let plain = base
            .generator()
            .unwrap()
            .generate(&[8.0; 12], &mut stream_rng(3, 1));
        let zero = base
            .clone()
            .with_doppler(0.0)
            .unwrap()
            .generator()
            .unwrap()
            .generate(&[8.0; 12], &mut stream_rng(3, 1));
        assert_eq!(plain, zero);
        assert!(
            !serde_json::to_string(&base.clone().with_doppler(0.0).unwrap())
                .unwrap()
                .contains("doppler")
        );
        let moving = base.clone().with_doppler(0.1).unwrap();
        let b = moving
            .generator()
            .unwrap()
            .generate(&[8.0; 8], &mut stream_rng(3, 1));
        // The detectors keep the block-start channel; the true one moves.
        assert_eq!(b.h(1), b.true_h(0));
        assert_ne!(b.true_h(1), b.true_h(0));
        assert_ne!(b.true_h(4), b.true_h(3));
        for bad in [-0.1, 0.6, f64::NAN, f64::INFINITY] {
            assert!(base.clone().with_doppler(bad).is_err(), "{bad}");
        }
        let one = LinkConfig::new(2, 3, Modulation::Qam16).unwrap();
        assert!(one.with_doppler(0.1).unwrap().validate().is_err());
    }
}
