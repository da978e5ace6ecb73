//! OAMP-Net2 with a per-block LMMSE bank: one vector's forward pass and its hand-derived
//! backward pass. Per layer k (x⁽⁰⁾ = 0; equations in the parent module docs):
//! u = Gx, e = z − u, v² = max(w, V_FLOOR) with w = (‖y‖² − 2xᵀz + xᵀu − M s2)/tr G,
//! j = select(v²), g = Q_j e, r = x + γ α g, τ² = v² κ + s2 θ² α² T/N with
//! κ = 1 − 2θ + θ² α² F/N, (m, ·) = gq(r, τ²), x⁺ = φ (m − ξ r).
//!
//! Backward, layer k from K−1 down to 0, given δx⁺:
//!   δφ += ⟨δx⁺, m − ξ r⟩, δξ −= φ ⟨δx⁺, r⟩, δm = φ δx⁺, δr = −φ ξ δx⁺ + δm ∂m/∂r,
//!   δτ² = Σ_i δm_i ∂m_i/∂τ²;  δv² = κ δτ²,  δθ += δτ² (v²(2θα²F/N − 2) + 2 s2 θ α² T/N);
//!   δx = δr, δγ += α ⟨δr, g⟩, δe = γ α Q_j δr (Q symmetric);
//!   ∂w/∂x = −2e/tr G (the bank choice is piecewise constant): δx −= 2 δv² e/tr G unless floored;
//!   e = z − Gx: δx −= G δe. Layer 0 has x = 0, a constant, so the pass stops there.

use super::Ops;
use super::denoise::GaussQam;
use super::linalg::{dot, sym_mul, transpose_mul};
use super::stage::Stage;
use super::{Real, not_above};

/// Smallest v² estimate.
pub const V_FLOOR: f64 = 1e-4;
/// Smallest τ².
const TAU_FLOOR: f64 = 1e-8;

/// One vector's state, every layer kept for the backward pass.
#[derive(Debug, Clone)]
pub struct Workspace<F> {
    n: usize,
    z: Vec<F>,
    /// x⁽⁰⁾ … x⁽ᴷ⁾, `(K+1) × n`.
    x: Vec<F>,
    e: Vec<F>,
    g: Vec<F>,
    r: Vec<F>,
    m: Vec<F>,
    dm_dr: Vec<F>,
    dm_dt2: Vec<F>,
    v2: Vec<F>,
    v_floored: Vec<bool>,
    tau2: Vec<F>,
    t_floored: Vec<bool>,
    pick: Vec<usize>,
    u: Vec<F>,
    dx: Vec<F>,
    dr: Vec<F>,
    de: Vec<F>,
    tmp: Vec<F>,
}

impl<F: Real> Workspace<F> {
    /// A workspace for `layers` layers of an `n`-column channel.
    pub fn new(layers: usize, n: usize) -> Self {
        let kn = layers * n;
        let v = |len| vec![F::ZERO; len];
        Self {
            n,
            z: v(n),
            x: v(kn + n),
            e: v(kn),
            g: v(kn),
            r: v(kn),
            m: v(kn),
            dm_dr: v(kn),
            dm_dt2: v(kn),
            v2: v(layers),
            v_floored: vec![false; layers],
            tau2: v(layers),
            t_floored: vec![false; layers],
            pick: vec![0; layers],
            u: v(n),
            dx: v(n),
            dr: v(n),
            de: v(n),
            tmp: v(n),
        }
    }

    /// The output of the last forward pass.
    pub fn output(&self, layers: usize) -> &[F] {
        &self.x[layers * self.n..(layers + 1) * self.n]
    }

    /// Branch pattern of the last forward pass, for tests.
    pub fn pattern(&self) -> Vec<usize> {
        let mut p = self.pick.clone();
        p.extend(self.v_floored.iter().map(|&b| b as usize));
        p.extend(self.t_floored.iter().map(|&b| b as usize));
        p
    }
}

/// Parameters of one OAMP net: γ, θ, φ, ξ of every layer and the slot of each block.
#[derive(Debug, Clone)]
pub struct Params<F> {
    /// γ_k.
    pub gamma: Vec<F>,
    /// θ_k.
    pub theta: Vec<F>,
    /// φ_k.
    pub phi: Vec<F>,
    /// ξ_k.
    pub xi: Vec<F>,
    /// Slots of gamma[0], theta[0], phi[0], xi[0].
    pub slots: [usize; 4],
}

/// Runs the layers on one vector given the block's stage.
pub fn forward<F: Real>(
    p: &Params<F>,
    q: &GaussQam<F>,
    st: &Stage<F>,
    h: &[F],
    y: &[F],
    ws: &mut Workspace<F>,
) {
    let (m, n) = (st.m, st.n);
    let s2 = st.s2;
    let nf = F::of(n as f64);
    transpose_mul(h, y, &mut ws.z);
    let yy = dot(y, y);
    let noise = F::of(m as f64) * s2;
    for i in 0..n {
        ws.x[i] = F::ZERO;
    }
    for k in 0..p.gamma.len() {
        let at = k * n;
        let x = &ws.x[at..at + n];
        // u = Gx (x⁽⁰⁾ = 0 needs no product).
        if k == 0 {
            ws.u.iter_mut().for_each(|v| *v = F::ZERO);
        } else {
            sym_mul(&st.g, x, &mut ws.u);
        }
        for i in 0..n {
            ws.e[at + i] = ws.z[i] - ws.u[i];
        }
        let w = (yy - F::of(2.0) * dot(x, &ws.z) + dot(x, &ws.u) - noise) * st.inv_trace;
        let floor = F::of(V_FLOOR);
        ws.v_floored[k] = not_above(w, floor);
        let v2 = if ws.v_floored[k] { floor } else { w };
        ws.v2[k] = v2;
        let j = st.select(v2);
        ws.pick[k] = j;
        let entry = &st.bank[j];
        sym_mul(&entry.q, &ws.e[at..at + n], &mut ws.g[at..at + n]);
        let (gamma, theta) = (p.gamma[k], p.theta[k]);
        let ga = gamma * entry.alpha;
        let a2n = entry.alpha * entry.alpha / nf;
        let kappa = F::ONE - F::of(2.0) * theta + theta * theta * a2n * entry.frob;
        let mut tau2 = v2 * kappa + s2 * theta * theta * a2n * entry.t3;
        ws.t_floored[k] = not_above(tau2, F::of(TAU_FLOOR));
        if ws.t_floored[k] {
            tau2 = F::of(TAU_FLOOR);
        }
        ws.tau2[k] = tau2;
        let (phi, xi) = (p.phi[k], p.xi[k]);
        for i in 0..n {
            let r = ws.x[at + i] + ga * ws.g[at + i];
            ws.r[at + i] = r;
            let post = q.eval(r, tau2);
            ws.m[at + i] = post.mean;
            ws.dm_dr[at + i] = post.dm_dt;
            ws.dm_dt2[at + i] = post.dm_dh;
            ws.x[at + n + i] = phi * (post.mean - xi * r);
        }
    }
}

/// Adds this vector's parameter gradient into `grad` given the forward pass in `ws` and
/// δx̂ = `dout`.
pub fn backward<F: Real>(
    p: &Params<F>,
    st: &Stage<F>,
    dout: &[F],
    ws: &mut Workspace<F>,
    grad: &mut [f64],
) {
    let n = st.n;
    let s2 = st.s2;
    let nf = F::of(n as f64);
    ws.dx.copy_from_slice(dout);
    for k in (0..p.gamma.len()).rev() {
        let at = k * n;
        let entry = &st.bank[ws.pick[k]];
        let (gamma, theta, phi, xi) = (p.gamma[k], p.theta[k], p.phi[k], p.xi[k]);
        let (mut d_phi, mut d_xi, mut d_tau2) = (F::ZERO, F::ZERO, F::ZERO);
        for i in 0..n {
            let dxn = ws.dx[i];
            let (m, r) = (ws.m[at + i], ws.r[at + i]);
            d_phi = d_phi + dxn * (m - xi * r);
            d_xi = d_xi - phi * dxn * r;
            let dm = phi * dxn;
            ws.dr[i] = -(phi * xi * dxn) + dm * ws.dm_dr[at + i];
            d_tau2 = d_tau2 + dm * ws.dm_dt2[at + i];
        }
        if ws.t_floored[k] {
            d_tau2 = F::ZERO;
        }
        let a2n = entry.alpha * entry.alpha / nf;
        let v2 = ws.v2[k];
        let kappa = F::ONE - F::of(2.0) * theta + theta * theta * a2n * entry.frob;
        let dv2 = kappa * d_tau2;
        let d_theta = d_tau2
            * (v2 * (F::of(2.0) * theta * a2n * entry.frob - F::of(2.0))
                + F::of(2.0) * s2 * theta * a2n * entry.t3);
        let d_gamma = entry.alpha * dot(&ws.dr, &ws.g[at..at + n]);
        grad[p.slots[0] + k] += d_gamma.to_f64();
        grad[p.slots[1] + k] += d_theta.to_f64();
        grad[p.slots[2] + k] += d_phi.to_f64();
        grad[p.slots[3] + k] += d_xi.to_f64();
        if k == 0 {
            break;
        }
        let ga = gamma * entry.alpha;
        for i in 0..n {
            ws.tmp[i] = ga * ws.dr[i];
        }
        sym_mul(&entry.q, &ws.tmp, &mut ws.de);
        sym_mul(&st.g, &ws.de, &mut ws.tmp);
        let dw = if ws.v_floored[k] { F::ZERO } else { dv2 };
        let c = F::of(2.0) * dw * st.inv_trace;
        for i in 0..n {
            ws.dx[i] = ws.dr[i] - c * ws.e[at + i] - ws.tmp[i];
        }
    }
}

/// Per-vector operations of a K-layer OAMP net on an `m × n` channel: z = Hᵀy and ‖y‖², then
/// per layer Gx (not in layer 0), the residual power, Q_j e, τ² and the denoiser.
pub fn vector_ops(layers: usize, m: usize, n: usize) -> Ops {
    let (mm, nn, k) = (m as u64, n as u64, layers as u64);
    let front = Ops {
        mults: mm * nn + mm + 1,
        adds: mm * nn + mm,
        ..Ops::default()
    };
    let layer = Ops {
        // Q e, x + γα g, φ(m − ξr), x·z, x·u and the scalar bookkeeping of w and τ².
        mults: nn * nn + nn + 2 * nn + 2 * nn + 12,
        adds: nn * nn + nn + nn + nn + 2 * nn + 8,
        tables: nn,
        ..Ops::default()
    };
    let gx = Ops {
        mults: nn * nn,
        adds: nn * nn,
        ..Ops::default()
    };
    front + layer * k + gx * k.saturating_sub(1)
}
