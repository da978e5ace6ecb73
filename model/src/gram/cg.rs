//! The inverse-free unfolded conjugate-gradient net: one vector's forward pass and its
//! hand-derived backward pass. Per layer k (x⁽⁰⁾ = 0; equations in the parent module docs):
//! u = Gx, e = z − u, v² = max(w, V_FLOOR) as in OAMP, δ = s2 e^{ρ_k}; inner l = 0..L−1:
//! p_l = D ρ_l + β_l p_{l−1} (β_0 = 0), d_{l+1} = d_l + ω_l p_l, ρ_{l+1} = e − G d_{l+1} − δ d_{l+1}
//! (d_0 = 0, ρ_0 = e); r = x + γ d_L, τ² = e^a v² + e^b s2, x⁺ = gq(r, τ²).m.
//!
//! Backward, layer k from K−1 down to 0, given δx⁺:
//!   δr = δx⁺ ∂m/∂r, δτ² = Σ δx⁺ ∂m/∂τ²; δa += e^a v² δτ², δb += e^b s2 δτ², δv² = e^a δτ²;
//!   δx = δr, δγ += ⟨δr, d_L⟩, δd_L = γ δr; then for l = L−1 … 0 with the carry c_p (δp_{l}
//!   received from p_{l+1} = … + β_{l+1} p_l, zero for l = L−1):
//!     δω_l += ⟨δd_{l+1}, p_l⟩, δp_l = ω_l δd_{l+1} + c_p, δd_l = δd_{l+1},
//!     δβ_l += ⟨δp_l, p_{l−1}⟩ and c_p = β_l δp_l (l ≥ 1), δρ_l = D δp_l,
//!     l = 0: δe += δρ_0; l ≥ 1: δe += δρ_l, δd_l −= G δρ_l + δ δρ_l, δδ −= ⟨δρ_l, d_l⟩;
//!   δρ_k += δ·δδ (δ = s2 e^{ρ_k}); δx −= 2 δv² e/tr G unless floored; δx −= G δe.
//! Layer 0 has x = 0, a constant, so the pass stops after its parameters.

use super::Ops;
use super::denoise::GaussQam;
use super::linalg::{dot, sym_mul, transpose_mul};
use super::oamp::V_FLOOR;
use super::stage::Stage;
use super::{Real, not_above};

/// Initial inner step ω (damped Jacobi: λ_max(D(G + δI)) ≤ about 4 on a square i.i.d. channel).
pub const INIT_OMEGA: f32 = 0.4;

/// One vector's state, every layer kept for the backward pass.
#[derive(Debug, Clone)]
pub struct Workspace<F> {
    n: usize,
    z: Vec<F>,
    x: Vec<F>,
    e: Vec<F>,
    /// d_0 … d_L of every layer, `K × (L+1) × n`.
    d: Vec<F>,
    /// p_0 … p_{L−1}, `K × L × n`.
    p: Vec<F>,
    /// ρ_0 … ρ_{L−1}, `K × L × n`.
    res: Vec<F>,
    r: Vec<F>,
    dm_dr: Vec<F>,
    dm_dt2: Vec<F>,
    v2: Vec<F>,
    v_floored: Vec<bool>,
    u: Vec<F>,
    dx: Vec<F>,
    dr: Vec<F>,
    dd: Vec<F>,
    dp: Vec<F>,
    carry: Vec<F>,
    dres: Vec<F>,
    de: Vec<F>,
    tmp: Vec<F>,
}

impl<F: Real> Workspace<F> {
    /// A workspace for `layers` layers of `inner` steps on an `n`-column channel.
    pub fn new(layers: usize, inner: usize, n: usize) -> Self {
        let kn = layers * n;
        let v = |len| vec![F::ZERO; len];
        Self {
            n,
            z: v(n),
            x: v(kn + n),
            e: v(kn),
            d: v(kn * (inner + 1)),
            p: v(kn * inner),
            res: v(kn * inner),
            r: v(kn),
            dm_dr: v(kn),
            dm_dt2: v(kn),
            v2: v(layers),
            v_floored: vec![false; layers],
            u: v(n),
            dx: v(n),
            dr: v(n),
            dd: v(n),
            dp: v(n),
            carry: v(n),
            dres: v(n),
            de: v(n),
            tmp: v(n),
        }
    }

    /// The output of the last forward pass.
    pub fn output(&self, layers: usize) -> &[F] {
        &self.x[layers * self.n..(layers + 1) * self.n]
    }

    /// Branch pattern of the last forward pass, for tests.
    pub fn pattern(&self) -> Vec<bool> {
        self.v_floored.clone()
    }
}

/// Parameters of one cg net, resolved (exponentials of the log-scales taken once).
#[derive(Debug, Clone)]
pub struct Params<F> {
    /// Layers K.
    pub layers: usize,
    /// Inner steps L.
    pub inner: usize,
    /// e^{ρ_k}.
    pub delta_scale: Vec<F>,
    /// γ_k.
    pub gamma: Vec<F>,
    /// e^{a_k}.
    pub tv: Vec<F>,
    /// e^{b_k}.
    pub ts: Vec<F>,
    /// ω_{k,l}, `K × L`.
    pub omega: Vec<F>,
    /// β_{k,l} for l ≥ 1, `K × (L−1)`.
    pub beta: Vec<F>,
    /// Slots of log_delta[0], gamma[0], log_tv[0], log_ts[0], omega[0,0], beta[0,1].
    pub slots: [usize; 6],
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
    let (m, n, l_in) = (st.m, st.n, p.inner);
    let s2 = st.s2;
    transpose_mul(h, y, &mut ws.z);
    let yy = dot(y, y);
    let noise = F::of(m as f64) * s2;
    for i in 0..n {
        ws.x[i] = F::ZERO;
    }
    for k in 0..p.layers {
        let at = k * n;
        if k == 0 {
            ws.u.iter_mut().for_each(|v| *v = F::ZERO);
        } else {
            sym_mul(&st.g, &ws.x[at..at + n], &mut ws.u);
        }
        for i in 0..n {
            ws.e[at + i] = ws.z[i] - ws.u[i];
        }
        let x = &ws.x[at..at + n];
        let w = (yy - F::of(2.0) * dot(x, &ws.z) + dot(x, &ws.u) - noise) * st.inv_trace;
        let floor = F::of(V_FLOOR);
        ws.v_floored[k] = not_above(w, floor);
        let v2 = if ws.v_floored[k] { floor } else { w };
        ws.v2[k] = v2;
        let delta = s2 * p.delta_scale[k];
        let d_at = k * (l_in + 1) * n;
        let p_at = k * l_in * n;
        for i in 0..n {
            ws.d[d_at + i] = F::ZERO;
            ws.res[p_at + i] = ws.e[at + i];
        }
        for l in 0..l_in {
            let beta = if l == 0 {
                F::ZERO
            } else {
                p.beta[k * (l_in - 1) + l - 1]
            };
            let omega = p.omega[k * l_in + l];
            let (pl, rl) = (p_at + l * n, p_at + l * n);
            for i in 0..n {
                let prev = if l == 0 { F::ZERO } else { ws.p[pl - n + i] };
                let pv = st.diag_inv[i] * ws.res[rl + i] + beta * prev;
                ws.p[pl + i] = pv;
                ws.d[d_at + (l + 1) * n + i] = ws.d[d_at + l * n + i] + omega * pv;
            }
            if l + 1 < l_in {
                let dn = d_at + (l + 1) * n;
                sym_mul(&st.g, &ws.d[dn..dn + n], &mut ws.tmp);
                for i in 0..n {
                    ws.res[rl + n + i] = ws.e[at + i] - ws.tmp[i] - delta * ws.d[dn + i];
                }
            }
        }
        let tau2 = p.tv[k] * v2 + p.ts[k] * s2;
        let gamma = p.gamma[k];
        let dl = d_at + l_in * n;
        for i in 0..n {
            let r = ws.x[at + i] + gamma * ws.d[dl + i];
            ws.r[at + i] = r;
            let post = q.eval(r, tau2);
            ws.dm_dr[at + i] = post.dm_dt;
            ws.dm_dt2[at + i] = post.dm_dh;
            ws.x[at + n + i] = post.mean;
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
    backward_with(p, st, dout, None, ws, grad);
}

/// [`backward`] of a loss that also depends on every layer's output: `extra` (`K × n`) holds
/// ∂loss/∂x⁽ᵏ⁺¹⁾ of layer k's output, added to the gradient flowing into layer k (for the
/// last layer, to `dout`).
pub fn backward_with<F: Real>(
    p: &Params<F>,
    st: &Stage<F>,
    dout: &[F],
    extra: Option<&[F]>,
    ws: &mut Workspace<F>,
    grad: &mut [f64],
) {
    let (n, l_in) = (st.n, p.inner);
    let s2 = st.s2;
    ws.dx.copy_from_slice(dout);
    for k in (0..p.layers).rev() {
        let at = k * n;
        if let Some(ex) = extra {
            for (d, &v) in ws.dx.iter_mut().zip(&ex[at..at + n]) {
                *d = *d + v;
            }
        }
        let d_at = k * (l_in + 1) * n;
        let p_at = k * l_in * n;
        let mut d_tau2 = F::ZERO;
        for i in 0..n {
            ws.dr[i] = ws.dx[i] * ws.dm_dr[at + i];
            d_tau2 = d_tau2 + ws.dx[i] * ws.dm_dt2[at + i];
        }
        let v2 = ws.v2[k];
        grad[p.slots[2] + k] += (p.tv[k] * v2 * d_tau2).to_f64();
        grad[p.slots[3] + k] += (p.ts[k] * s2 * d_tau2).to_f64();
        let dv2 = p.tv[k] * d_tau2;
        let gamma = p.gamma[k];
        let dl = d_at + l_in * n;
        grad[p.slots[1] + k] += dot(&ws.dr, &ws.d[dl..dl + n]).to_f64();
        for i in 0..n {
            ws.dd[i] = gamma * ws.dr[i];
            ws.carry[i] = F::ZERO;
            ws.de[i] = F::ZERO;
        }
        let delta = s2 * p.delta_scale[k];
        let mut d_delta = F::ZERO;
        for l in (0..l_in).rev() {
            let pl = p_at + l * n;
            let omega = p.omega[k * l_in + l];
            grad[p.slots[4] + k * l_in + l] += dot(&ws.dd, &ws.p[pl..pl + n]).to_f64();
            for i in 0..n {
                ws.dp[i] = omega * ws.dd[i] + ws.carry[i];
            }
            if l >= 1 {
                let bi = k * (l_in - 1) + l - 1;
                grad[p.slots[5] + bi] += dot(&ws.dp, &ws.p[pl - n..pl]).to_f64();
                let beta = p.beta[bi];
                for i in 0..n {
                    ws.carry[i] = beta * ws.dp[i];
                }
            }
            for i in 0..n {
                ws.dres[i] = st.diag_inv[i] * ws.dp[i];
                ws.de[i] = ws.de[i] + ws.dres[i];
            }
            if l >= 1 {
                let dn = d_at + l * n;
                d_delta = d_delta - dot(&ws.dres, &ws.d[dn..dn + n]);
                sym_mul(&st.g, &ws.dres, &mut ws.tmp);
                for i in 0..n {
                    ws.dd[i] = ws.dd[i] - ws.tmp[i] - delta * ws.dres[i];
                }
            }
        }
        grad[p.slots[0] + k] += (delta * d_delta).to_f64();
        if k == 0 {
            break;
        }
        sym_mul(&st.g, &ws.de, &mut ws.tmp);
        let dw = if ws.v_floored[k] { F::ZERO } else { dv2 };
        let c = F::of(2.0) * dw * st.inv_trace;
        for i in 0..n {
            ws.dx[i] = ws.dr[i] - c * ws.e[at + i] - ws.tmp[i];
        }
    }
}

/// Per-vector operations of a K-layer, L-step cg net on an `m × n` channel: z = Hᵀy and ‖y‖²,
/// then per layer Gx (not in layer 0), the residual power, L preconditioned steps with L − 1
/// products G d, τ² and the denoiser.
pub fn vector_ops(layers: usize, inner: usize, m: usize, n: usize) -> Ops {
    let (mm, nn, k, l) = (m as u64, n as u64, layers as u64, inner as u64);
    let front = Ops {
        mults: mm * nn + mm + 1,
        adds: mm * nn + mm,
        ..Ops::default()
    };
    let step = Ops {
        mults: 3 * nn,
        adds: 2 * nn,
        ..Ops::default()
    };
    let product = Ops {
        // G d and ρ = e − Gd − δd.
        mults: nn * nn + nn,
        adds: nn * nn + 2 * nn,
        ..Ops::default()
    };
    let layer = Ops {
        // x·z, x·u, w, δ, τ², r = x + γ d.
        mults: 2 * nn + 6 + nn,
        adds: 2 * nn + nn + 5,
        tables: nn,
        ..Ops::default()
    } + step * l
        + product * l.saturating_sub(1);
    let gx = Ops {
        mults: nn * nn,
        adds: nn * nn + nn,
        ..Ops::default()
    };
    front + layer * k + gx * k.saturating_sub(1)
}

/// The quantizers of the STE surrogate of a fake-quant cg net ([`forward_surrogate`]): every
/// call either records the offset q(v) − v of a quantizer (or of the denoiser table against the
/// Gauss-QAM mean) on the tape, or replays a recorded offset, so that the replayed forward is
/// a differentiable function of the parameters whose value at the recording point is the
/// fake-quant forward and whose gradient is the one [`backward`] computes.
#[derive(Debug, Clone)]
pub struct Tape<F> {
    /// The offsets, in call order.
    pub offsets: Vec<F>,
    /// Replay the offsets instead of recording them.
    pub replay: bool,
    pos: usize,
}

impl<F> Default for Tape<F> {
    fn default() -> Self {
        Self {
            offsets: Vec::new(),
            replay: false,
            pos: 0,
        }
    }
}

impl<F: Real> Tape<F> {
    /// Starts a pass: recording clears the tape, replaying rewinds it.
    pub fn start(&mut self) {
        if !self.replay {
            self.offsets.clear();
        }
        self.pos = 0;
    }

    /// v through a quantizer `quant`.
    #[inline]
    fn q(&mut self, v: F, quant: impl FnOnce(F) -> F) -> F {
        if self.replay {
            let c = self.offsets[self.pos];
            self.pos += 1;
            v + c
        } else {
            let out = quant(v);
            self.offsets.push(out - v);
            out
        }
    }
}

/// The formats and the denoiser table of a fake-quant cg net (from its IR v2 document).
#[derive(Debug, Clone)]
pub struct SurrogateFormats {
    /// Format of z.
    pub z: kaq_ir::fixed::QFormat,
    /// Format of ‖y‖².
    pub yy: kaq_ir::fixed::QFormat,
    /// Per layer: the formats of e (and ρ), p, d, v², r, τ².
    pub layers: Vec<[kaq_ir::fixed::QFormat; 6]>,
    /// Per layer: the v² floor's value.
    pub v2_floor: Vec<f32>,
    /// Denoiser thresholds (τ² codes).
    pub thresholds: Vec<i64>,
    /// Denoiser table rows as state values.
    pub table: Vec<Vec<f32>>,
}

impl SurrogateFormats {
    /// The formats of `ir`.
    pub fn of(ir: &kaq_ir::gram::GramIr) -> Self {
        let st = 2f32.powi(-ir.state.frac());
        Self {
            z: ir.front.z,
            yy: ir.front.yy,
            layers: ir
                .layers
                .iter()
                .map(|l| {
                    let f = &l.formats;
                    [f.e, f.p, f.d, f.v2, f.r, f.tau2]
                })
                .collect(),
            v2_floor: ir
                .layers
                .iter()
                .map(|l| l.v2_floor as f32 * 2f32.powi(-l.formats.v2.frac()))
                .collect(),
            thresholds: ir.denoiser.thresholds.clone(),
            table: ir
                .denoiser
                .table
                .iter()
                .map(|row| row.iter().map(|&c| c as f32 * st).collect())
                .collect(),
        }
    }
}

/// The per-SNR-bin values of the surrogate, quantized as the fake-quant net quantizes them.
#[derive(Debug, Clone)]
pub struct SurrogateBin {
    /// M·s2 at ‖y‖²'s step.
    pub noise: f32,
    /// Per layer: δ = s2·e^ρ at the IR's δ code.
    pub delta: Vec<f32>,
    /// Per layer: s2·e^b at τ²'s frac.
    pub ts: Vec<f32>,
    /// Per layer: the bin's formats of e (and ρ), p, d, v², r, τ² (the IR's `formats_at`).
    pub layers: Vec<[kaq_ir::fixed::QFormat; 6]>,
}

/// The fake-quant quantizer of `f` on `v` rounded to f32, computed in f32 (the arithmetic of
/// [`crate::gram::quantized::FakeQuantCg`]).
#[inline]
fn fq<F: Real>(v: F, f: kaq_ir::fixed::QFormat) -> F {
    let qp = kaq_ir::fixed::max_code(f.width()) as f32;
    let v = v.to_f64() as f32;
    F::of(f64::from(
        (v * 2f32.powi(f.frac()) + 0.5).floor().clamp(-qp, qp) * 2f32.powi(-f.frac()),
    ))
}

/// The STE surrogate forward of a fake-quant cg net on one vector: the equations of
/// [`forward`] with every per-vector tensor through the tape's quantizers at `fm`, the inputs
/// `h`, `y` already quantized, the stage `st` holding the quantized G, 1/tr G, D and the bin's
/// s2, `bin` the bin's quantized constants, and `p` the parameters with ω, β, γ, e^a already
/// quantized (e^ρ and e^b float: they enter through `bin`). v² is formed as
/// (‖y‖² − x·z − x·e − M·s2)/tr G, the integer model's expression. The workspace then holds
/// what [`backward`] needs; its gradient is the surrogate's up to the quantization offsets of
/// e inside v² and of the log-parameters' chain factors (both below one LSB of their format).
#[allow(clippy::too_many_arguments)]
pub fn forward_surrogate<F: Real>(
    p: &Params<F>,
    q: &GaussQam<F>,
    st: &Stage<F>,
    fm: &SurrogateFormats,
    bin: &SurrogateBin,
    h: &[F],
    y: &[F],
    ws: &mut Workspace<F>,
    tape: &mut Tape<F>,
) {
    let (n, l_in) = (st.n, p.inner);
    transpose_mul(h, y, &mut ws.z);
    for v in ws.z.iter_mut() {
        *v = tape.q(*v, |v| fq(v, fm.z));
    }
    let yy = tape.q(dot(y, y), |v| fq(v, fm.yy));
    for i in 0..n {
        ws.x[i] = F::ZERO;
    }
    for k in 0..p.layers {
        let [fe, fp, fd, fv2, fr, ft2] = bin.layers[k];
        let at = k * n;
        if k == 0 {
            ws.u.iter_mut().for_each(|v| *v = F::ZERO);
        } else {
            sym_mul(&st.g, &ws.x[at..at + n], &mut ws.u);
        }
        for i in 0..n {
            ws.e[at + i] = tape.q(ws.z[i] - ws.u[i], |v| fq(v, fe));
        }
        let x = &ws.x[at..at + n];
        let w = tape.q(
            (yy - dot(x, &ws.z) - dot(x, &ws.e[at..at + n]) - F::of(f64::from(bin.noise)))
                * st.inv_trace,
            |v| fq(v, fv2),
        );
        let floor = F::of(f64::from(fm.v2_floor[k]));
        ws.v_floored[k] = not_above(w, floor);
        let v2 = if ws.v_floored[k] { floor } else { w };
        ws.v2[k] = v2;
        let delta = F::of(f64::from(bin.delta[k]));
        let d_at = k * (l_in + 1) * n;
        let p_at = k * l_in * n;
        for i in 0..n {
            ws.d[d_at + i] = F::ZERO;
            ws.res[p_at + i] = ws.e[at + i];
        }
        for l in 0..l_in {
            let beta = if l == 0 {
                F::ZERO
            } else {
                p.beta[k * (l_in - 1) + l - 1]
            };
            let omega = p.omega[k * l_in + l];
            let (pl, rl) = (p_at + l * n, p_at + l * n);
            for i in 0..n {
                let prev = if l == 0 { F::ZERO } else { ws.p[pl - n + i] };
                let pv = tape.q(st.diag_inv[i] * ws.res[rl + i] + beta * prev, |v| fq(v, fp));
                ws.p[pl + i] = pv;
                ws.d[d_at + (l + 1) * n + i] =
                    tape.q(ws.d[d_at + l * n + i] + omega * pv, |v| fq(v, fd));
            }
            if l + 1 < l_in {
                let dn = d_at + (l + 1) * n;
                sym_mul(&st.g, &ws.d[dn..dn + n], &mut ws.tmp);
                for i in 0..n {
                    ws.res[rl + n + i] = tape
                        .q(ws.e[at + i] - ws.tmp[i] - delta * ws.d[dn + i], |v| {
                            fq(v, fe)
                        });
                }
            }
        }
        let tau2 = tape.q(p.tv[k] * v2 + F::of(f64::from(bin.ts[k])), |v| fq(v, ft2));
        let tau2_code = (tau2.to_f64() as f32 * 2f32.powi(ft2.frac())).round() as i64;
        let bucket = fm.thresholds.iter().filter(|&&t| tau2_code >= t).count();
        let row = &fm.table[bucket];
        let half = 1i64 << (fr.width() - 1);
        let gamma = p.gamma[k];
        let dl = d_at + l_in * n;
        for i in 0..n {
            let r = tape.q(ws.x[at + i] + gamma * ws.d[dl + i], |v| fq(v, fr));
            ws.r[at + i] = r;
            let post = q.eval(r, tau2);
            ws.dm_dr[at + i] = post.dm_dt;
            ws.dm_dt2[at + i] = post.dm_dh;
            ws.x[at + n + i] = tape.q(post.mean, |_| {
                let code = (r.to_f64() as f32 * 2f32.powi(fr.frac())).round() as i64;
                F::of(f64::from(row[(code + half) as usize]))
            });
        }
    }
}
