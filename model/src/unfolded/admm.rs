//! Linearized ADMM-Net: one sample's forward pass (keeping what the backward pass needs) and
//! its hand-derived backward pass.
//!
//! Forward, layer k = 1..K (s⁽⁰⁾ = x⁽⁰⁾, u⁽⁰⁾ = 0, x⁽⁻¹⁾ = x⁽⁰⁾, β_k = 0 without momentum):
//!   g⁽ᵏ⁾ = Hᵀ(H x⁽ᵏ⁻¹⁾ − y),  c⁽ᵏ⁾ = x⁽ᵏ⁻¹⁾ − s⁽ᵏ⁻¹⁾ + u⁽ᵏ⁻¹⁾,
//!   x⁽ᵏ⁾ = x⁽ᵏ⁻¹⁾ − η_k (g⁽ᵏ⁾ + ρ_k c⁽ᵏ⁾) + β_k (x⁽ᵏ⁻¹⁾ − x⁽ᵏ⁻²⁾),
//!   v⁽ᵏ⁾ = x⁽ᵏ⁾ + u⁽ᵏ⁻¹⁾,  s⁽ᵏ⁾ = prox(v⁽ᵏ⁾; p_k),  u⁽ᵏ⁾ = v⁽ᵏ⁾ − s⁽ᵏ⁾.
//! The output is s⁽ᴷ⁾.
//!
//! Backward, carrying δx⁽ᵏ⁾, δs⁽ᵏ⁾, δu⁽ᵏ⁾ (δa = ∂L/∂a). Start from δs⁽ᴷ⁾ = 2c (s⁽ᴷ⁾ − x),
//! c = 1/B, δx⁽ᴷ⁾ = δu⁽ᴷ⁾ = 0. For k = K down to 1 (all three are complete on arrival, since
//! layer-k states feed only layers k+1 and k+2):
//!   u⁽ᵏ⁾ = v − s  ⇒  δŝ = δs⁽ᵏ⁾ − δu⁽ᵏ⁾ is the total gradient reaching s⁽ᵏ⁾ as a prox output,
//!   δv = δu⁽ᵏ⁾ + δŝ ⊙ prox′(v⁽ᵏ⁾),            ∂L/∂p_k = Σ_i δŝ_i ∂prox/∂p (v⁽ᵏ⁾_i),
//!   v = x⁽ᵏ⁾ + u⁽ᵏ⁻¹⁾  ⇒  δ = δx⁽ᵏ⁾ + δv (total at x⁽ᵏ⁾),  δu⁽ᵏ⁻¹⁾ += δv,
//!   ∂L/∂η_k = −⟨δ, g⁽ᵏ⁾ + ρ_k c⁽ᵏ⁾⟩,  ∂L/∂ρ_k = −η_k ⟨δ, c⁽ᵏ⁾⟩,  ∂L/∂β_k = ⟨δ, x⁽ᵏ⁻¹⁾ − x⁽ᵏ⁻²⁾⟩,
//!   δx⁽ᵏ⁻¹⁾ += (1 − η_k ρ_k + β_k) δ − η_k HᵀH δ,
//!   δs⁽ᵏ⁻¹⁾ += η_k ρ_k δ,  δu⁽ᵏ⁻¹⁾ += −η_k ρ_k δ,  δx⁽ᵏ⁻²⁾ += −β_k δ.
//! Finally s⁽⁰⁾ = x⁽⁰⁾ gives δx⁽⁰⁾ += δs⁽⁰⁾ (u⁽⁰⁾ = 0 is a constant), and with x⁽⁰⁾ = α Hᵀy,
//! ∂L/∂α = ⟨δx⁽⁰⁾, Hᵀy⟩. With x⁽⁰⁾ = 0 the k = 1 propagation is skipped.

use super::batch::{Plan, Sample, Workspace, first_residual, initial_estimate};
use super::matvec::{dot, residual, transpose_mul};

/// Runs the layers on one sample; the output is `ws.s[K·n..]`. With `TRAIN` the prox
/// derivatives are kept for [`backward`].
pub(crate) fn forward<const TRAIN: bool>(plan: &Plan, sample: Sample<'_>, ws: &mut Workspace) {
    let n = plan.n;
    initial_estimate(plan, sample, ws);
    ws.s[..n].copy_from_slice(&ws.x[..n]);
    ws.u[..n].fill(0.0);
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
        let (s_done, s_rest) = ws.s.split_at_mut((k + 1) * n);
        let (u_done, u_rest) = ws.u.split_at_mut((k + 1) * n);
        let (sp, up) = (&s_done[k * n..], &u_done[k * n..]);
        let (x_next, s_next, u_next) = (&mut rest[..n], &mut s_rest[..n], &mut u_rest[..n]);
        let d_input = &mut ws.d_input[k * n..(k + 1) * n];
        let d_param = &mut ws.d_param[k * n..(k + 1) * n];
        let eta_rho = lp.eta * lp.rho;
        for i in 0..n {
            let c = xp[i] - sp[i] + up[i];
            let xn = xp[i] - lp.eta * g[i] - eta_rho * c + lp.beta * (xp[i] - xpp[i]);
            x_next[i] = xn;
            let vi = xn + up[i];
            let si = if TRAIN {
                let ev = lp.prox.eval(vi);
                d_input[i] = ev.d_input;
                d_param[i] = ev.d_param;
                ev.value
            } else {
                lp.prox.apply(vi)
            };
            s_next[i] = si;
            u_next[i] = vi - si;
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
    ws.ds.fill(0.0);
    ws.du.fill(0.0);
    let last = layers * n..(layers + 1) * n;
    for ((d, &out), &t) in ws.ds[last.clone()].iter_mut().zip(&ws.s[last]).zip(truth) {
        *d = scale * (out - t);
    }
    for k in (0..layers).rev() {
        let lp = &plan.layers[k];
        let slots = &plan.slots[k];
        let kpp = k.saturating_sub(1);
        let (mut d_eta, mut d_rho, mut d_beta, mut d_param) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let at = (k + 1) * n + i;
            let ds_total = ws.ds[at] - ws.du[at];
            let dv = ws.du[at] + ds_total * ws.d_input[k * n + i];
            d_param += ds_total * ws.d_param[k * n + i];
            let delta = ws.dx[at] + dv;
            ws.du[k * n + i] += dv;
            let (xp, xpp) = (ws.x[k * n + i], ws.x[kpp * n + i]);
            let c = xp - ws.s[k * n + i] + ws.u[k * n + i];
            d_eta -= delta * (ws.g[k * n + i] + lp.rho * c);
            d_rho -= delta * c;
            d_beta += delta * (xp - xpp);
            ws.t[i] = delta;
        }
        grad[slots.eta] += d_eta as f64;
        if let Some(j) = slots.rho {
            grad[j] += (lp.eta * d_rho) as f64;
        }
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
        let eta_rho = lp.eta * lp.rho;
        let carry = 1.0 - eta_rho + lp.beta;
        for i in 0..n {
            let t = ws.t[i];
            ws.dx[k * n + i] += carry * t - lp.eta * ws.w[i];
            ws.ds[k * n + i] += eta_rho * t;
            ws.du[k * n + i] -= eta_rho * t;
            ws.dx[kpp * n + i] -= lp.beta * t;
        }
    }
    if plan.mf.is_some() {
        for i in 0..n {
            ws.dx[i] += ws.ds[i];
        }
    }
    if let Some((slot, _)) = plan.mf {
        grad[slot] += dot(&ws.dx[..n], &ws.z) as f64;
    }
}
