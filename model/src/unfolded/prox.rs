//! The element-wise proximal operators of the unfolded nets and their hand-derived derivatives.
//!
//! Each operator maps one real value `r` (one real dimension of the layer's prox input) to the
//! layer's estimate, with at most one learnable parameter `p` per layer:
//!
//! * `soft` (paper eq. 8), `p = λ`: f(r) = sign(r)·max(|r| − λ, 0).
//!   ∂f/∂r = 1 if |r| > λ else 0; ∂f/∂λ = −sign(r) if |r| > λ else 0.
//!   The kinks at |r| = λ take the derivative of the zero branch.
//! * `box`, no parameter: f(r) = clamp(r, −(L−1), L−1), L the levels per real dimension.
//!   ∂f/∂r = 1 strictly inside the range, 0 outside and on the boundary.
//! * `qam`, `p = θ = ln τ`: the posterior-mean denoiser over the per-dimension alphabet S,
//!   f(r) = Σ_s s·w_s, w_s = softmax_s(−(r − s)²/τ). With d_s = (r − s)² and E_w the mean under w:
//!   ∂w_s/∂r = w_s (a_s − E_w a), a_s = −2(r − s)/τ = 2(s − r)/τ, so
//!   ∂f/∂r = Cov_w(s, a_s) = (2/τ)·Var_w(s) ≥ 0;
//!   ∂w_s/∂τ = w_s (b_s − E_w b), b_s = d_s/τ², so ∂f/∂τ = Cov_w(s, d_s)/τ² and
//!   ∂f/∂θ = τ·∂f/∂τ = Cov_w(s, d_s)/τ = (E_w[s·d_s] − f·E_w[d_s])/τ.
//!   Learning θ = ln τ keeps τ positive; the softmax subtracts its largest logit, so it never
//!   overflows and some weight is always 1 before normalization.
//!
//! The functions are generic over f32 (the training kernels) and f64 (the finite-difference
//! reference), one implementation for both.

use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::modulation::Modulation;

use super::Prox;

/// The few float operations the prox needs, for f32 and f64.
pub trait ProxFloat:
    Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// Conversion from f64 (rounding for f32).
    fn of(v: f64) -> Self;
    /// e^self.
    fn exp(self) -> Self;
    /// |self|.
    fn abs(self) -> Self;
}

impl ProxFloat for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn exp(self) -> Self {
        f32::exp(self)
    }
    #[inline]
    fn abs(self) -> Self {
        f32::abs(self)
    }
}

impl ProxFloat for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline]
    fn of(v: f64) -> Self {
        v
    }
    #[inline]
    fn exp(self) -> Self {
        f64::exp(self)
    }
    #[inline]
    fn abs(self) -> Self {
        f64::abs(self)
    }
}

/// Largest alphabet size per real dimension (64-QAM).
const MAX_LEVELS: usize = 8;

/// Largest exponent 4/τ for which the qam weights are built from ratios (e^80 is finite in
/// f32); below τ = 0.05 every weight gets its own exponential.
const RATIO_EXPONENT_LIMIT: f64 = 80.0;

/// One layer's prox operator with its parameter resolved, ready to apply element-wise.
#[derive(Debug, Clone, Copy)]
pub struct ProxOp<F> {
    kind: Prox,
    /// λ (soft), ln τ (qam), unused (box).
    param: F,
    /// τ = e^θ (qam only).
    tau: F,
    /// L − 1 (box).
    max_level: F,
    /// The alphabet levels (qam), `levels` of them.
    alphabet: [F; MAX_LEVELS],
    levels: usize,
    /// q_m = exp(−4(2m+1)/τ), the fixed factor of the ratio between neighbouring qam weights.
    ratio: [F; MAX_LEVELS],
    /// Whether exp(4/τ) stays far from overflow, so the weights can be built from ratios.
    ratio_ok: bool,
}

/// Value and derivatives of a prox at one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProxEval<F> {
    /// f(r).
    pub value: F,
    /// ∂f/∂r.
    pub d_input: F,
    /// ∂f/∂p for the layer parameter (0 for `box`).
    pub d_param: F,
}

impl<F: ProxFloat> ProxOp<F> {
    /// The operator of kind `kind` for `modulation`, with parameter `param` (λ for soft, ln τ
    /// for qam, ignored for box).
    pub fn new(kind: Prox, modulation: Modulation, param: F) -> Self {
        let mut alphabet = [F::ZERO; MAX_LEVELS];
        let levels = modulation.levels_per_dim();
        for (slot, level) in alphabet.iter_mut().zip(modulation.alphabet()) {
            *slot = F::of(level as f64);
        }
        let tau = if kind == Prox::Qam {
            param.exp()
        } else {
            F::ONE
        };
        let mut ratio = [F::ZERO; MAX_LEVELS];
        for (m, q) in ratio.iter_mut().enumerate() {
            *q = (-F::of(4.0 * (2 * m + 1) as f64) / tau).exp();
        }
        Self {
            kind,
            param,
            tau,
            max_level: F::of(modulation.max_level() as f64),
            alphabet,
            levels,
            ratio,
            ratio_ok: F::of(4.0) / tau <= F::of(RATIO_EXPONENT_LIMIT),
        }
    }

    /// f(r).
    #[inline]
    pub fn apply(&self, r: F) -> F {
        match self.kind {
            Prox::Soft => {
                let lambda = self.param;
                if r > lambda {
                    r - lambda
                } else if r < -lambda {
                    r + lambda
                } else {
                    F::ZERO
                }
            }
            Prox::Box => {
                if r > self.max_level {
                    self.max_level
                } else if r < -self.max_level {
                    -self.max_level
                } else {
                    r
                }
            }
            Prox::Qam => self.qam(r).value,
        }
    }

    /// f(r), ∂f/∂r and ∂f/∂p.
    #[inline]
    pub fn eval(&self, r: F) -> ProxEval<F> {
        match self.kind {
            Prox::Soft => {
                let lambda = self.param;
                if r > lambda {
                    ProxEval {
                        value: r - lambda,
                        d_input: F::ONE,
                        d_param: -F::ONE,
                    }
                } else if r < -lambda {
                    ProxEval {
                        value: r + lambda,
                        d_input: F::ONE,
                        d_param: F::ONE,
                    }
                } else {
                    ProxEval {
                        value: F::ZERO,
                        d_input: F::ZERO,
                        d_param: F::ZERO,
                    }
                }
            }
            Prox::Box => {
                let inside = r < self.max_level && r > -self.max_level;
                ProxEval {
                    value: self.apply(r),
                    d_input: if inside { F::ONE } else { F::ZERO },
                    d_param: F::ZERO,
                }
            }
            Prox::Qam => self.qam(r),
        }
    }

    /// The posterior-mean denoiser with its derivatives (see the module docs).
    #[inline]
    fn qam(&self, r: F) -> ProxEval<F> {
        let tau = self.tau;
        let alphabet = &self.alphabet[..self.levels];
        let mut d = [F::ZERO; MAX_LEVELS];
        let (mut nearest, mut min_d) = (0, F::ZERO);
        for (i, &s) in alphabet.iter().enumerate() {
            let diff = r - s;
            d[i] = diff * diff;
            if i == 0 || d[i] < min_d {
                (nearest, min_d) = (i, d[i]);
            }
        }
        // Weights w_s = exp(−(d_s − min d)/τ), so the nearest level's weight is exactly 1.
        let mut w = [F::ZERO; MAX_LEVELS];
        w[nearest] = F::ONE;
        if self.ratio_ok {
            // With δ = r − s_j for the nearest level j and s_{j±(m+1)} = s_{j±m} ± 2:
            // w_{j+m+1}/w_{j+m} = e^{4δ/τ}·q_m and w_{j−m−1}/w_{j−m} = e^{−4δ/τ}·q_m, each ≤ 1
            // (|δ| ≤ 1 between levels; beyond an edge only the shrinking side exists).
            // One exponential per element instead of one per level.
            let up = (F::of(4.0) * (r - alphabet[nearest]) / tau).exp();
            let down = F::ONE / up;
            let mut acc = F::ONE;
            for (m, i) in (nearest + 1..alphabet.len()).enumerate() {
                acc = acc * (up * self.ratio[m]);
                w[i] = acc;
            }
            acc = F::ONE;
            for (m, i) in (0..nearest).rev().enumerate() {
                acc = acc * (down * self.ratio[m]);
                w[i] = acc;
            }
        } else {
            for (i, wi) in w.iter_mut().enumerate().take(alphabet.len()) {
                *wi = (-(d[i] - min_d) / tau).exp();
            }
        }
        let (mut z, mut m_s, mut m_d) = (F::ZERO, F::ZERO, F::ZERO);
        for (i, &s) in alphabet.iter().enumerate() {
            z = z + w[i];
            m_s = m_s + w[i] * s;
            m_d = m_d + w[i] * d[i];
        }
        let (m_s, m_d) = (m_s / z, m_d / z);
        // Central second moments in a second pass: no cancellation when the posterior is
        // concentrated on one level.
        let (mut var, mut cov) = (F::ZERO, F::ZERO);
        for (i, &s) in alphabet.iter().enumerate() {
            let ds = s - m_s;
            var = var + w[i] * ds * ds;
            cov = cov + w[i] * ds * (d[i] - m_d);
        }
        let (var, cov) = (var / z, cov / z);
        ProxEval {
            value: m_s,
            d_input: (var + var) / tau,
            d_param: cov / tau,
        }
    }

    /// The learnable parameter's value (λ or ln τ).
    pub fn param(&self) -> F {
        self.param
    }

    /// Distance from `r` to the nearest point where the operator is not differentiable
    /// (|r| = λ for soft, |r| = L − 1 for box); infinite for the smooth qam operator.
    pub fn kink_distance(&self, r: F) -> F
    where
        F: Into<f64>,
    {
        let r: f64 = r.into();
        let edge: f64 = match self.kind {
            Prox::Soft => self.param.into(),
            Prox::Box => self.max_level.into(),
            Prox::Qam => return F::of(f64::INFINITY),
        };
        F::of((r.abs() - edge).abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn modulation() -> impl Strategy<Value = Modulation> {
        prop::sample::select(Modulation::ALL.to_vec())
    }

    fn kind() -> impl Strategy<Value = Prox> {
        prop::sample::select(vec![Prox::Soft, Prox::Box, Prox::Qam])
    }

    fn param_for(kind: Prox, raw: f64) -> f64 {
        match kind {
            // λ in [0, 1].
            Prox::Soft => raw.abs().min(1.0),
            // ln τ in [ln 0.05, ln 5].
            Prox::Qam => (0.05f64).ln() + (raw.abs().min(1.0)) * (100f64).ln(),
            Prox::Box => 0.0,
        }
    }

    proptest! {
        /// Both derivatives of every prox, f32 analytic against f64 central differences.
        #[test]
        fn prox_derivatives_match_finite_differences(
            kind in kind(), modulation in modulation(), r in -10.0f64..10.0, raw in -1.0f64..1.0,
        ) {
            let p = param_for(kind, raw);
            let op64 = ProxOp::<f64>::new(kind, modulation, p);
            let op32 = ProxOp::<f32>::new(kind, modulation, p as f32);
            let h = 1e-6;
            prop_assume!(op64.kink_distance(r) > 1e-3);
            let fd_r = (op64.apply(r + h) - op64.apply(r - h)) / (2.0 * h);
            let plus = ProxOp::<f64>::new(kind, modulation, p + h);
            let minus = ProxOp::<f64>::new(kind, modulation, p - h);
            let fd_p = if kind == Prox::Box { 0.0 } else { (plus.apply(r) - minus.apply(r)) / (2.0 * h) };
            let e = op32.eval(r as f32);
            let tol = |want: f64| 1e-3 * (1.0 + want.abs());
            prop_assert!((e.value as f64 - op64.apply(r)).abs() <= tol(op64.apply(r)),
                "value {} vs {}", e.value, op64.apply(r));
            prop_assert!((e.d_input as f64 - fd_r).abs() <= tol(fd_r),
                "{kind} {modulation} r={r} p={p}: d/dr {} vs fd {fd_r}", e.d_input);
            prop_assert!((e.d_param as f64 - fd_p).abs() <= tol(fd_p),
                "{kind} {modulation} r={r} p={p}: d/dp {} vs fd {fd_p}", e.d_param);
            // eval and apply agree exactly.
            prop_assert_eq!(e.value, op32.apply(r as f32));
        }

        /// The qam denoiser stays inside the alphabet's range and is odd-symmetric.
        #[test]
        fn qam_prox_is_bounded_and_odd(modulation in modulation(), r in -20.0f64..20.0, raw in -1.0f64..1.0) {
            let op = ProxOp::<f64>::new(Prox::Qam, modulation, param_for(Prox::Qam, raw));
            let m = modulation.max_level() as f64;
            let v = op.apply(r);
            prop_assert!(v.abs() <= m + 1e-12, "{v}");
            prop_assert!((v + op.apply(-r)).abs() < 1e-9);
        }
    }

    proptest! {
        /// The qam denoiser and its derivatives (ratio-built or direct weights) equal the
        /// softmax definition evaluated directly, over temperatures on both sides of the
        /// ratio limit and inputs beyond the alphabet's edges.
        #[test]
        fn qam_prox_matches_direct_softmax(
            modulation in modulation(), r in -12.0f64..12.0, log_tau in -4.0f64..3.0,
        ) {
            let op = ProxOp::<f64>::new(Prox::Qam, modulation, log_tau);
            let tau = log_tau.exp();
            let alphabet: Vec<f64> = modulation.alphabet().iter().map(|&l| l as f64).collect();
            let logits: Vec<f64> = alphabet.iter().map(|s| -(r - s).powi(2) / tau).collect();
            let top = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = logits.iter().map(|l| (l - top).exp()).collect();
            let z: f64 = w.iter().sum();
            let mean = |f: &dyn Fn(f64) -> f64| -> f64 {
                alphabet.iter().zip(&w).map(|(&s, wi)| wi * f(s)).sum::<f64>() / z
            };
            let value = mean(&|s| s);
            let var = mean(&|s| (s - value).powi(2));
            let d_mean = mean(&|s| (r - s).powi(2));
            let cov = mean(&|s| (s - value) * ((r - s).powi(2) - d_mean));
            let e = op.eval(r);
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * (1.0 + b.abs());
            prop_assert!(close(e.value, value), "value {} vs {value}", e.value);
            prop_assert!(close(e.d_input, 2.0 * var / tau), "d/dr {} vs {}", e.d_input, 2.0 * var / tau);
            prop_assert!(close(e.d_param, cov / tau), "d/dθ {} vs {}", e.d_param, cov / tau);
            let e32 = ProxOp::<f32>::new(Prox::Qam, modulation, log_tau as f32).eval(r as f32);
            prop_assert!(e32.value.is_finite() && e32.d_input.is_finite() && e32.d_param.is_finite());
        }
    }

    #[test]
    fn qam_prox_slices_at_low_temperature_and_shrinks_at_high() {
        let m = Modulation::Qam16;
        let cold = ProxOp::<f64>::new(Prox::Qam, m, (1e-3f64).ln());
        for (r, want) in [(0.4, 1.0), (-2.2, -3.0), (5.0, 3.0), (-1.7, -1.0)] {
            assert!(
                (cold.apply(r) - want).abs() < 1e-6,
                "{r}: {}",
                cold.apply(r)
            );
        }
        // At a very high temperature the posterior is nearly uniform: the mean is near 0.
        let hot = ProxOp::<f64>::new(Prox::Qam, m, (1e4f64).ln());
        assert!(hot.apply(2.0).abs() < 0.05, "{}", hot.apply(2.0));
    }

    #[test]
    fn soft_and_box_match_their_definitions() {
        let soft = ProxOp::<f64>::new(Prox::Soft, Modulation::Qam16, 0.5);
        assert_eq!(soft.apply(2.0), 1.5);
        assert_eq!(soft.apply(-2.0), -1.5);
        assert_eq!(soft.apply(0.3), 0.0);
        let boxed = ProxOp::<f64>::new(Prox::Box, Modulation::Qam64, 0.0);
        assert_eq!(boxed.apply(9.0), 7.0);
        assert_eq!(boxed.apply(-9.0), -7.0);
        assert_eq!(boxed.apply(2.5), 2.5);
    }
}
