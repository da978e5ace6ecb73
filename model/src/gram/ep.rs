//! EPNet: one vector's forward pass (keeping what the backward pass needs) and its hand-derived
//! backward pass. The equations are in the parent module docs; per layer k with inputs λ, γ:
//! A = G + s2 diag(λ), P = A⁻¹, b = z + s2γ, μ = Pb, q_i = P_ii, c = max(1 − s2 q λ, C_MIN),
//! t = (μ − s2 q γ)/c, h = s2 q/c, (m, v) = gq(t, h); for k < K−1: v′ = max(v, ε_k),
//! λ̂ = 1/v′ − 1/h, γ̂ = m/v′ − t/h (or λ̂ = λ, γ̂ = γ where 1/v′ − 1/h < 0),
//! λ⁺ = β λ̂ + (1−β) λ, γ⁺ = β γ̂ + (1−β) γ.
//!
//! Backward (δa = ∂L/∂a), layer k from K−1 down to 0, given δλ⁺, δγ⁺ (k < K−1) or δm (k = K−1):
//!   δβ += ⟨δλ⁺, λ̂ − λ⟩ + ⟨δγ⁺, γ̂ − γ⟩,  δλ̂ = β δλ⁺,  δγ̂ = β δγ⁺,  δλ = (1−β) δλ⁺,  δγ = (1−β) δγ⁺;
//!   kept sites: δλ += δλ̂, δγ += δγ̂; other sites: δv′ = −(δλ̂ + m δγ̂)/v′²,
//!   δh = (δλ̂ + t δγ̂)/h², δm = δγ̂/v′, δt = −δγ̂/h; floored sites: δ(ln ε_k) += ε_k δv′, else δv = δv′;
//!   δt += δm ∂m/∂t + δv ∂v/∂t,  δh += δm ∂m/∂h + δv ∂v/∂h;
//!   with ρ = 1/c: δμ = ρ δt, δγ −= s2 q ρ δt, δq = s2 ρ (δh − γ δt), δc = −ρ (t δt + h δh)
//!   (0 where c was clamped), δq −= s2 λ δc, δλ −= s2 q δc;
//!   μ = Pb: δb = P δμ, δγ += s2 δb; P = A⁻¹ with δP = δμ bᵀ + diag(δq) gives
//!   δA = −P δP P = −δb μᵀ − P diag(δq) P, and A depends on λ through s2 diag(λ):
//!   δλ_i += s2 (−δb_i μ_i − Σ_j P_ij² δq_j).
//! Layer 0's λ, γ are constants (1/E_s, 0), so the pass stops there.

use super::{Real, not_above};

use super::Ops;
use super::denoise::GaussQam;
use super::linalg::{InverseScratch, inverse_ops, spd_inverse, sym_mul, transpose_mul};
use super::stage::Stage;

/// Initial damping (weight of the new message).
pub const INIT_BETA: f32 = 0.9;
/// Initial variance floor.
pub const INIT_FLOOR: f32 = 1e-3;
/// Smallest damping [`super::GramNet::project`] keeps.
pub const MIN_BETA: f32 = 0.01;
/// Smallest cavity factor c = 1 − s2 P_ii λ_i.
const C_MIN: f64 = 1e-5;

/// One vector's EP state, every layer kept for the backward pass.
#[derive(Debug, Clone)]
pub struct Workspace<F> {
    n: usize,
    z: Vec<F>,
    /// P of every layer, `K × n × n`.
    p: Vec<F>,
    /// λ, γ entering each layer, `K × n`.
    lam: Vec<F>,
    gam: Vec<F>,
    b: Vec<F>,
    mu: Vec<F>,
    c: Vec<F>,
    c_clamped: Vec<bool>,
    t: Vec<F>,
    h: Vec<F>,
    m: Vec<F>,
    vf: Vec<F>,
    floored: Vec<bool>,
    kept: Vec<bool>,
    lam_hat: Vec<F>,
    gam_hat: Vec<F>,
    dm_dt: Vec<F>,
    dm_dh: Vec<F>,
    dv_dt: Vec<F>,
    dv_dh: Vec<F>,
    a: Vec<F>,
    inverse: InverseScratch<F>,
    /// Backward temporaries.
    dlam: Vec<F>,
    dgam: Vec<F>,
    dmu: Vec<F>,
    dq: Vec<F>,
    db: Vec<F>,
}

impl<F: Real> Workspace<F> {
    /// A workspace for `layers` layers of an `n`-column channel.
    pub fn new(layers: usize, n: usize) -> Self {
        let kn = layers * n;
        let z = || vec![F::ZERO; kn];
        Self {
            n,
            z: vec![F::ZERO; n],
            p: vec![F::ZERO; layers * n * n],
            lam: z(),
            gam: z(),
            b: z(),
            mu: z(),
            c: z(),
            c_clamped: vec![false; kn],
            t: z(),
            h: z(),
            m: z(),
            vf: z(),
            floored: vec![false; kn],
            kept: vec![false; kn],
            lam_hat: z(),
            gam_hat: z(),
            dm_dt: z(),
            dm_dh: z(),
            dv_dt: z(),
            dv_dh: z(),
            a: vec![F::ZERO; n * n],
            inverse: InverseScratch::new(n),
            dlam: vec![F::ZERO; n],
            dgam: vec![F::ZERO; n],
            dmu: vec![F::ZERO; n],
            dq: vec![F::ZERO; n],
            db: vec![F::ZERO; n],
        }
    }

    /// The output of the last forward pass.
    pub fn output(&self, layers: usize) -> &[F] {
        &self.m[(layers - 1) * self.n..layers * self.n]
    }

    /// Branch pattern of the last forward pass (floors, kept sites, bank choices), for tests.
    pub fn pattern(&self) -> Vec<bool> {
        let mut p = self.c_clamped.clone();
        p.extend(&self.floored);
        p.extend(&self.kept);
        p
    }
}

/// Parameters of one EP net: β and the floor ε of layers 0..K−1.
#[derive(Debug, Clone)]
pub struct Params<F> {
    /// Layers K.
    pub layers: usize,
    /// β_k.
    pub beta: Vec<F>,
    /// ε_k = e^{log_floor[k]}.
    pub floor: Vec<F>,
    /// Slot of β_0 and of log_floor[0] in the flat vector.
    pub slots: (usize, usize),
    /// 1/E_s.
    pub inv_es: F,
}

/// Runs the layers on one vector (H̃ `h`, ỹ `y`) given the block's stage.
pub fn forward<F: Real>(
    p: &Params<F>,
    q: &GaussQam<F>,
    st: &Stage<F>,
    h: &[F],
    y: &[F],
    ws: &mut Workspace<F>,
) {
    let n = st.n;
    let s2 = st.s2;
    transpose_mul(h, y, &mut ws.z);
    for i in 0..n {
        ws.lam[i] = p.inv_es;
        ws.gam[i] = F::ZERO;
    }
    let c_min = F::of(C_MIN);
    for k in 0..p.layers {
        let at = k * n;
        ws.a.copy_from_slice(&st.g);
        for i in 0..n {
            ws.a[i * n + i] = ws.a[i * n + i] + s2 * ws.lam[at + i];
            ws.b[at + i] = ws.z[i] + s2 * ws.gam[at + i];
        }
        let pk = &mut ws.p[k * n * n..(k + 1) * n * n];
        spd_inverse(&ws.a, n, pk, &mut ws.inverse);
        sym_mul(pk, &ws.b[at..at + n], &mut ws.mu[at..at + n]);
        let last = k + 1 == p.layers;
        for i in 0..n {
            let j = at + i;
            let qi = pk[i * n + i];
            let s2q = s2 * qi;
            let mut c = F::ONE - s2q * ws.lam[j];
            ws.c_clamped[j] = not_above(c, c_min);
            if ws.c_clamped[j] {
                c = c_min;
            }
            ws.c[j] = c;
            let rc = F::ONE / c;
            let t = (ws.mu[j] - s2q * ws.gam[j]) * rc;
            let hv = s2q * rc;
            ws.t[j] = t;
            ws.h[j] = hv;
            let post = q.eval(t, hv);
            ws.m[j] = post.mean;
            ws.dm_dt[j] = post.dm_dt;
            ws.dm_dh[j] = post.dm_dh;
            ws.dv_dt[j] = post.dv_dt;
            ws.dv_dh[j] = post.dv_dh;
            if last {
                continue;
            }
            let floor = p.floor[k];
            ws.floored[j] = post.var < floor;
            let vf = if ws.floored[j] { floor } else { post.var };
            ws.vf[j] = vf;
            let rv = F::ONE / vf;
            let rh = F::ONE / hv;
            let lam_new = rv - rh;
            ws.kept[j] = lam_new < F::ZERO;
            let (lh, gh) = if ws.kept[j] {
                (ws.lam[j], ws.gam[j])
            } else {
                (lam_new, post.mean * rv - t * rh)
            };
            ws.lam_hat[j] = lh;
            ws.gam_hat[j] = gh;
            let beta = p.beta[k];
            let keep = F::ONE - beta;
            ws.lam[j + n] = beta * lh + keep * ws.lam[j];
            ws.gam[j + n] = beta * gh + keep * ws.gam[j];
        }
    }
}

/// Adds this vector's parameter gradient into `grad` given the forward pass in `ws` and
/// δx̂ = `dout` (see the module docs).
#[allow(clippy::needless_range_loop)] // one site index runs through a dozen per-layer arrays
pub fn backward<F: Real>(
    p: &Params<F>,
    st: &Stage<F>,
    dout: &[F],
    ws: &mut Workspace<F>,
    grad: &mut [f64],
) {
    let n = st.n;
    let s2 = st.s2;
    let layers = p.layers;
    for k in (0..layers).rev() {
        let at = k * n;
        let last = k + 1 == layers;
        // δt, δh of every site, gathered in dmu (δt) and dq (δh) first.
        let (mut d_beta, mut d_floor) = (F::ZERO, F::ZERO);
        for i in 0..n {
            let j = at + i;
            let (mut dm, mut dv, mut dt, mut dh) = (F::ZERO, F::ZERO, F::ZERO, F::ZERO);
            if last {
                dm = dout[i];
                ws.dlam[i] = F::ZERO;
                ws.dgam[i] = F::ZERO;
            } else {
                let beta = p.beta[k];
                let (dl_out, dg_out) = (ws.dlam[i], ws.dgam[i]);
                d_beta = d_beta
                    + dl_out * (ws.lam_hat[j] - ws.lam[j])
                    + dg_out * (ws.gam_hat[j] - ws.gam[j]);
                let (dlh, dgh) = (beta * dl_out, beta * dg_out);
                ws.dlam[i] = (F::ONE - beta) * dl_out;
                ws.dgam[i] = (F::ONE - beta) * dg_out;
                if ws.kept[j] {
                    ws.dlam[i] = ws.dlam[i] + dlh;
                    ws.dgam[i] = ws.dgam[i] + dgh;
                } else {
                    let (vf, hv, t) = (ws.vf[j], ws.h[j], ws.t[j]);
                    let dvf = -(dlh + ws.m[j] * dgh) / (vf * vf);
                    dh = (dlh + t * dgh) / (hv * hv);
                    dm = dgh / vf;
                    dt = -dgh / hv;
                    if ws.floored[j] {
                        d_floor = d_floor + dvf * p.floor[k];
                    } else {
                        dv = dvf;
                    }
                }
            }
            dt = dt + dm * ws.dm_dt[j] + dv * ws.dv_dt[j];
            dh = dh + dm * ws.dm_dh[j] + dv * ws.dv_dh[j];
            ws.dmu[i] = dt;
            ws.dq[i] = dh;
        }
        if !last {
            grad[p.slots.0 + k] += d_beta.to_f64();
            grad[p.slots.1 + k] += d_floor.to_f64();
        }
        if k == 0 {
            break;
        }
        let pk = &ws.p[k * n * n..(k + 1) * n * n];
        for i in 0..n {
            let j = at + i;
            let (dt, dh) = (ws.dmu[i], ws.dq[i]);
            let qi = pk[i * n + i];
            let rc = F::ONE / ws.c[j];
            let (t, hv, lam, gam) = (ws.t[j], ws.h[j], ws.lam[j], ws.gam[j]);
            ws.dmu[i] = rc * dt;
            ws.dgam[i] = ws.dgam[i] - s2 * qi * rc * dt;
            let mut dq = s2 * rc * (dh - gam * dt);
            if !ws.c_clamped[j] {
                let dc = -rc * (t * dt + hv * dh);
                dq = dq - s2 * lam * dc;
                ws.dlam[i] = ws.dlam[i] - s2 * qi * dc;
            }
            ws.dq[i] = dq;
        }
        sym_mul(pk, &ws.dmu, &mut ws.db);
        for i in 0..n {
            let j = at + i;
            ws.dgam[i] = ws.dgam[i] + s2 * ws.db[i];
            let row = &pk[i * n..(i + 1) * n];
            let mut acc = F::ZERO;
            for (&pij, &dqj) in row.iter().zip(&ws.dq) {
                acc = acc + pij * pij * dqj;
            }
            ws.dlam[i] = ws.dlam[i] + s2 * (-(ws.db[i] * ws.mu[j]) - acc);
        }
    }
}

/// Per-vector operations of a K-layer EPNet on an `m × n` channel: z = Hᵀy, then per layer the
/// diagonal load, the inverse, μ, the cavity (reciprocal of c), the denoiser and, except in the
/// last layer, the message update (reciprocals of v′ and h).
pub fn vector_ops(layers: usize, m: usize, n: usize) -> Ops {
    let (mm, nn, k) = (m as u64, n as u64, layers as u64);
    let z = Ops {
        mults: mm * nn,
        adds: mm * nn,
        ..Ops::default()
    };
    let layer = inverse_ops(n)
        + Ops {
            // s2λ, s2γ, μ = Pb, s2q, s2qλ, cavity t and h.
            mults: 2 * nn + nn * nn + 2 * nn + 3 * nn,
            adds: 2 * nn + nn * nn + 2 * nn,
            recips: nn,
            tables: nn,
            ..Ops::default()
        };
    let update = Ops {
        // m/v′, t/h, two damped mixes of two products each.
        mults: 2 * nn + 4 * nn,
        adds: 2 * nn + 2 * nn,
        recips: 2 * nn,
        ..Ops::default()
    };
    z + layer * k + update * k.saturating_sub(1)
}
