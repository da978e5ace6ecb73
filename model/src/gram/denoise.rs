//! The Gaussian-approximation QAM denoiser shared by the EP- and LMMSE-class nets.
//!
//! Per real dimension, with the uniform prior over the alphabet S (16-QAM: {±1, ±3}) and the
//! Gaussian likelihood N(t, h) of an estimate t with error variance h, the posterior weights are
//! w_s = softmax_s(a_s), a_s = −(t − s)²/(2h), and the denoiser returns the posterior mean
//! m = Σ w_s s and variance v = Σ w_s (s − m)². It is a separable element-wise function of two
//! quantizable inputs (t, h): the integer model realizes it as a 2-D table (or a table of
//! log-spaced h times a table over t), never as an exponential in the datapath.
//!
//! Derivatives (Cov and E under w; ds = s − m, dd = (t − s)² − E[(t − s)²]; ∂a_s/∂t = (s − t)/h,
//! ∂a_s/∂h = (t − s)²/(2h²), and ∂E[f]/∂θ = Cov(f, ∂a/∂θ)):
//!   ∂m/∂t = v/h,             ∂m/∂h = E[ds·dd]/(2h²),
//!   ∂v/∂t = E[ds³]/h,         ∂v/∂h = E[ds²·dd]/(2h²)
//! (for v = E[s²] − m²: ∂E[s²]/∂t = (E[ds³] + 2mv)/h, and the 2m·∂m/∂t term cancels the 2mv).
//! All moments are taken centred, so nothing cancels catastrophically when one weight dominates.

use crate::modulation::Modulation;
use crate::unfolded::prox::ProxFloat;

/// Largest alphabet size per real dimension (64-QAM).
const MAX_LEVELS: usize = 8;

/// The denoiser for one alphabet.
#[derive(Debug, Clone, Copy)]
pub struct GaussQam<F> {
    alphabet: [F; MAX_LEVELS],
    levels: usize,
}

/// Value and derivatives of [`GaussQam`] at one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Posterior<F> {
    /// Posterior mean m.
    pub mean: F,
    /// Posterior variance v.
    pub var: F,
    /// ∂m/∂t.
    pub dm_dt: F,
    /// ∂m/∂h.
    pub dm_dh: F,
    /// ∂v/∂t.
    pub dv_dt: F,
    /// ∂v/∂h.
    pub dv_dh: F,
}

impl<F: ProxFloat> GaussQam<F> {
    /// The denoiser over the per-dimension alphabet of `modulation`.
    pub fn new(modulation: Modulation) -> Self {
        let mut alphabet = [F::ZERO; MAX_LEVELS];
        let levels = modulation.levels_per_dim();
        for (slot, level) in alphabet.iter_mut().zip(modulation.alphabet()) {
            *slot = F::of(level as f64);
        }
        Self { alphabet, levels }
    }

    /// Posterior mean, variance and their derivatives at estimate `t`, error variance `h` > 0.
    #[inline]
    pub fn eval(&self, t: F, h: F) -> Posterior<F> {
        let s = &self.alphabet[..self.levels];
        let mut a = [F::ZERO; MAX_LEVELS];
        let inv2h = F::ONE / (F::of(2.0) * h);
        let mut amax = -F::of(f64::MAX);
        for (ai, &si) in a.iter_mut().zip(s) {
            let d = t - si;
            *ai = -(d * d) * inv2h;
            if *ai > amax {
                amax = *ai;
            }
        }
        let mut w = [F::ZERO; MAX_LEVELS];
        let mut total = F::ZERO;
        for (wi, &ai) in w.iter_mut().zip(&a[..self.levels]) {
            *wi = (ai - amax).exp();
            total = total + *wi;
        }
        let inv_total = F::ONE / total;
        let (mut mean, mut ed) = (F::ZERO, F::ZERO);
        let mut dsq = [F::ZERO; MAX_LEVELS];
        for i in 0..self.levels {
            w[i] = w[i] * inv_total;
            let d = t - s[i];
            dsq[i] = d * d;
            mean = mean + w[i] * s[i];
            ed = ed + w[i] * dsq[i];
        }
        let (mut var, mut e3, mut c1, mut c2) = (F::ZERO, F::ZERO, F::ZERO, F::ZERO);
        for i in 0..self.levels {
            let ds = s[i] - mean;
            let dd = dsq[i] - ed;
            let wds = w[i] * ds;
            var = var + wds * ds;
            e3 = e3 + wds * ds * ds;
            c1 = c1 + wds * dd;
            c2 = c2 + wds * ds * dd;
        }
        let inv_h = F::ONE / h;
        let half_inv_h2 = inv_h * inv2h;
        Posterior {
            mean,
            var,
            dm_dt: var * inv_h,
            dm_dh: c1 * half_inv_h2,
            dv_dt: e3 * inv_h,
            dv_dh: c2 * half_inv_h2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn derivatives_match_central_differences(
            t in -5.0f64..5.0, log_h in -4.0f64..2.0,
            modulation in prop::sample::select(Modulation::ALL.to_vec()),
        ) {
            let q = GaussQam::<f64>::new(modulation);
            let h = 10f64.powf(log_h);
            let p = q.eval(t, h);
            // The posterior moves on the scale h in t (BPSK at t = 0 is tanh(t / h)), so the
            // step in t shrinks with h; a fixed 1e-6 leaves a truncation error of ~(1e-6 / h)²,
            // above the 1e-5 bound for h below ~2e-4.
            let (et, eh) = (1e-6 * h.min(1.0), 1e-6 * h);
            let dt = |f: fn(&Posterior<f64>) -> f64| (f(&q.eval(t + et, h)) - f(&q.eval(t - et, h))) / (2.0 * et);
            let dh = |f: fn(&Posterior<f64>) -> f64| (f(&q.eval(t, h + eh)) - f(&q.eval(t, h - eh))) / (2.0 * eh);
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * (1.0 + a.abs().max(b.abs()));
            prop_assert!(close(p.dm_dt, dt(|p| p.mean)), "dm/dt {} vs {}", p.dm_dt, dt(|p| p.mean));
            prop_assert!(close(p.dv_dt, dt(|p| p.var)), "dv/dt {} vs {}", p.dv_dt, dt(|p| p.var));
            prop_assert!(close(p.dm_dh * h, dh(|p| p.mean) * h), "dm/dh {} vs {}", p.dm_dh, dh(|p| p.mean));
            prop_assert!(close(p.dv_dh * h, dh(|p| p.var) * h), "dv/dh {} vs {}", p.dv_dh, dh(|p| p.var));
        }
    }

    #[test]
    fn posterior_is_the_exact_bayes_estimate() {
        let q = GaussQam::<f64>::new(Modulation::Qam16);
        let (t, h) = (0.7f64, 0.8f64);
        let levels = [-3.0f64, -1.0, 1.0, 3.0];
        let w: Vec<f64> = levels
            .iter()
            .map(|s| (-(t - s).powi(2) / (2.0 * h)).exp())
            .collect();
        let z: f64 = w.iter().sum();
        let mean: f64 = levels.iter().zip(&w).map(|(s, w)| s * w).sum::<f64>() / z;
        let var: f64 = levels
            .iter()
            .zip(&w)
            .map(|(s, w)| (s - mean).powi(2) * w)
            .sum::<f64>()
            / z;
        let p = q.eval(t, h);
        assert!((p.mean - mean).abs() < 1e-12 && (p.var - var).abs() < 1e-12);
        // Tiny variance: the nearest level wins without overflow.
        let sharp = q.eval(1.2, 1e-6);
        assert_eq!(sharp.mean, 1.0);
        assert!(sharp.var.abs() < 1e-12);
    }
}
