//! PGD-Net: one sample's forward pass (keeping what the backward pass needs) and its
//! hand-derived backward pass.
//!
//! Forward, layer k = 1..K (x⁽⁻¹⁾ = x⁽⁰⁾, β_k = 0 without momentum):
//!   g⁽ᵏ⁾ = Hᵀ(H x⁽ᵏ⁻¹⁾ − y),
//!   r⁽ᵏ⁾ = x⁽ᵏ⁻¹⁾ − η_k g⁽ᵏ⁾ + β_k (x⁽ᵏ⁻¹⁾ − x⁽ᵏ⁻²⁾),
//!   x⁽ᵏ⁾ = prox(r⁽ᵏ⁾; p_k).
//!
//! Backward. Write δa = ∂L/∂a. The loss term of one sample is c‖x⁽ᴷ⁾ − x‖² with c = 1/B, so
//! δx⁽ᴷ⁾ = 2c (x⁽ᴷ⁾ − x). Going from k = K down to 1, δx⁽ᵏ⁾ is complete when layer k is reached
//! (x⁽ᵏ⁾ feeds only layers k+1 and k+2, already processed), and:
//!   δr⁽ᵏ⁾ = δx⁽ᵏ⁾ ⊙ prox′(r⁽ᵏ⁾),                 ∂L/∂p_k = Σ_i δx⁽ᵏ⁾_i ∂prox/∂p (r⁽ᵏ⁾_i),
//!   ∂L/∂η_k = −⟨δr⁽ᵏ⁾, g⁽ᵏ⁾⟩,                    ∂L/∂β_k = ⟨δr⁽ᵏ⁾, x⁽ᵏ⁻¹⁾ − x⁽ᵏ⁻²⁾⟩,
//!   δx⁽ᵏ⁻¹⁾ += (1 + β_k) δr⁽ᵏ⁾ − η_k HᵀH δr⁽ᵏ⁾  (∂g/∂x = HᵀH, symmetric),
//!   δx⁽ᵏ⁻²⁾ += −β_k δr⁽ᵏ⁾                          (for k = 1 both land on x⁽⁰⁾ and cancel
//!                                                   the β part, as x⁽⁻¹⁾ = x⁽⁰⁾ says).
//! With x⁽⁰⁾ = α Hᵀy: ∂L/∂α = ⟨δx⁽⁰⁾, Hᵀy⟩. With x⁽⁰⁾ = 0 the k = 1 propagation is skipped.
//! HᵀH δr is computed as Hᵀ(H δr), two matrix–vector products, never forming HᵀH.

use super::batch::{Plan, Sample, Workspace, first_residual, initial_estimate};
use super::matvec::{dot, residual, transpose_mul};

/// Runs the layers on one sample; the output is `ws.x[K·n..]`. With `TRAIN` the prox
/// derivatives are kept for [`backward`].
pub(crate) fn forward<const TRAIN: bool>(plan: &Plan, sample: Sample<'_>, ws: &mut Workspace) {
    let n = plan.n;
    initial_estimate(plan, sample, ws);
    for (k, lp) in plan.layers.iter().enumerate() {
        let kpp = k.saturating_sub(1);
        let (done, rest) = ws.x.split_at_mut((k + 1) * n);
        let xp = &done[k * n..];
        let xpp = &done[kpp * n..(kpp + 1) * n];
        let g = &mut ws.g[k * n..(k + 1) * n];
        if k == 0 {
            first_residual(plan, sample, xp, &mut ws.e);
        } else {
            residual(sample.h, xp, sample.y, &mut ws.e);
        }
        transpose_mul(sample.h, &ws.e, g);
        let d_input = &mut ws.d_input[k * n..(k + 1) * n];
        let d_param = &mut ws.d_param[k * n..(k + 1) * n];
        let next = &mut rest[..n];
        for i in 0..n {
            let ri = xp[i] - lp.eta * g[i] + lp.beta * (xp[i] - xpp[i]);
            if TRAIN {
                let ev = lp.prox.eval(ri);
                next[i] = ev.value;
                d_input[i] = ev.d_input;
                d_param[i] = ev.d_param;
            } else {
                next[i] = lp.prox.apply(ri);
            }
        }
    }
}

/// Adds this sample's parameter gradient into `grad`, given the forward pass in `ws` and the
/// output gradient scale `scale` = 2/B (see the module docs for the derivation).
pub(crate) fn backward(
    plan: &Plan,
    sample: Sample<'_>,
    truth: &[f32],
    scale: f32,
    ws: &mut Workspace,
    grad: &mut [f64],
) {
    let n = plan.n;
    let layers = plan.layers.len();
    ws.dx.fill(0.0);
    let last = layers * n..(layers + 1) * n;
    for ((d, &out), &t) in ws.dx[last.clone()].iter_mut().zip(&ws.x[last]).zip(truth) {
        *d = scale * (out - t);
    }
    for k in (0..layers).rev() {
        let lp = &plan.layers[k];
        let slots = &plan.slots[k];
        let kpp = k.saturating_sub(1);
        let (mut d_eta, mut d_beta, mut d_param) = (0.0f32, 0.0f32, 0.0f32);
        {
            let d_input = &ws.d_input[k * n..(k + 1) * n];
            let d_prox = &ws.d_param[k * n..(k + 1) * n];
            let g = &ws.g[k * n..(k + 1) * n];
            let dx = &ws.dx[(k + 1) * n..(k + 2) * n];
            let xp = &ws.x[k * n..(k + 1) * n];
            let xpp = &ws.x[kpp * n..(kpp + 1) * n];
            for i in 0..n {
                let dr = dx[i] * d_input[i];
                d_param += dx[i] * d_prox[i];
                d_eta -= dr * g[i];
                d_beta += dr * (xp[i] - xpp[i]);
                ws.t[i] = dr;
            }
        }
        grad[slots.eta] += d_eta as f64;
        if let Some(j) = slots.beta {
            grad[j] += d_beta as f64;
        }
        if let Some(j) = slots.prox {
            grad[j] += d_param as f64;
        }
        if k == 0 && plan.mf.is_none() {
            break;
        }
        residual(sample.h, &ws.t, &[], &mut ws.e);
        transpose_mul(sample.h, &ws.e, &mut ws.w);
        let carry = 1.0 + lp.beta;
        for i in 0..n {
            ws.dx[k * n + i] += carry * ws.t[i] - lp.eta * ws.w[i];
            ws.dx[kpp * n + i] -= lp.beta * ws.t[i];
        }
    }
    if let Some((slot, _)) = plan.mf {
        grad[slot] += dot(&ws.dx[..n], &ws.z) as f64;
    }
}
