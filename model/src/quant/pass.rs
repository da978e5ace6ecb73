//! The fake-quant PGD-Net and ADMM-Net per sample (forward keeping what the backward pass
//! needs, and the hand-derived backward pass) and the batched drivers. The ADMM equations are
//! in the docs of `forward_admm` and `backward_admm`; both nets share the inputs and the
//! gradient term below.
//!
//! PGD forward of one sample, layer k = 1..K (Q_T the quantizer of tensor T, Ĥ = Q_H(H),
//! ŷ = Q_y(y), p̂ = Q_p(p) for every parameter, x⁽⁻¹⁾ = x⁽⁰⁾):
//!   e⁽ᵏ⁾ = Q_e,k(Ĥ x⁽ᵏ⁻¹⁾ − ŷ),  g⁽ᵏ⁾ = Q_g,k(Ĥᵀ e⁽ᵏ⁾),
//!   r⁽ᵏ⁾ = x⁽ᵏ⁻¹⁾ − η̂_k g⁽ᵏ⁾ + β̂_k (x⁽ᵏ⁻¹⁾ − x⁽ᵏ⁻²⁾),
//!   x⁽ᵏ⁾ = Q(prox(r⁽ᵏ⁾; p̂_k); Δ_k), Δ_k the method's activation step for the sample;
//! x⁽⁰⁾ = 0, or Q_x0(α̂ Ĥᵀŷ) with the matched-filter init.
//!
//! PGD backward (δa = ∂L/∂a; M_T the STE mask of a quantizer, 1 inside its range, 0 outside;
//! D_k the LSQ step derivative of the activation quantizer). δx⁽ᵏ⁾ starts as the caller's
//! extra per-layer gradient (0 without one), plus 2c(x⁽ᴷ⁾ − x) at k = K. From k = K down to 1:
//!   δq = δx⁽ᵏ⁾ ⊙ M_x,  ∂L/∂Δ_k += ⟨δx⁽ᵏ⁾, D_k⟩,
//!   δr = δq ⊙ prox′(r⁽ᵏ⁾),  ∂L/∂p_k = Σ δq ∂prox/∂p,  ∂L/∂η_k = −⟨δr, g⁽ᵏ⁾⟩,
//!   ∂L/∂β_k = ⟨δr, x⁽ᵏ⁻¹⁾ − x⁽ᵏ⁻²⁾⟩,
//!   δg = −η̂_k δr ⊙ M_g,  δe = (Ĥ δg) ⊙ M_e,
//!   δx⁽ᵏ⁻¹⁾ += (1 + β̂_k) δr + Ĥᵀ δe,  δx⁽ᵏ⁻²⁾ −= β̂_k δr.
//! Parameter gradients pass the parameter quantizers by the STE (times their masks, which are
//! 1 because each parameter's step is sized to hold it). The fixed steps of H, y, e, g and x⁽⁰⁾
//! get no gradient. With the SNR-adaptive step Δ_k = max(α_k s + γ_k, MIN_STEP),
//! s = SNR^{−1/2} at the sample's bin centre: ∂L/∂α_k = s ∂L/∂Δ_k and ∂L/∂γ_k = ∂L/∂Δ_k
//! above the floor, 0 on it.

use rayon::prelude::*;

use super::quantizer::{QuantEval, eval};
use crate::unfolded::{Arch, LayerParams, LayerSlots, TrainBatch};

/// Samples per parallel task.
const CHUNK: usize = 8;

/// How layer k's activation step is obtained for a sample.
#[derive(Debug, Clone)]
pub(crate) enum ActivationPlan {
    /// One fixed step per layer (PTQ, QAT-MSE), no gradient.
    Fixed(Vec<f32>),
    /// One learned step per layer (LSQ); `slot` is where step 0 sits in the parameter vector.
    Learned { steps: Vec<f32>, slot: usize },
    /// Δ_k = max(α_k s + γ_k, MIN_STEP) (KAQ); α at `slot`, γ at `slot + K`; `inv_sqrt_snr`
    /// holds s per SNR bin.
    Snr {
        alpha: Vec<f32>,
        gamma: Vec<f32>,
        slot: usize,
        inv_sqrt_snr: Vec<f32>,
    },
}

/// The activation step of one layer and sample with the gradient routing.
struct StepAt {
    step: f32,
    /// (slot, ∂Δ/∂slot) of up to two learned values.
    routes: [(usize, f32); 2],
    count: usize,
}

impl ActivationPlan {
    fn step(&self, k: usize, bin: usize) -> StepAt {
        use super::quantizer::MIN_STEP;
        match self {
            Self::Fixed(steps) => StepAt {
                step: steps[k],
                routes: [(0, 0.0); 2],
                count: 0,
            },
            Self::Learned { steps, slot } => {
                let raw = steps[k];
                if raw >= MIN_STEP {
                    StepAt {
                        step: raw,
                        routes: [(slot + k, 1.0), (0, 0.0)],
                        count: 1,
                    }
                } else {
                    StepAt {
                        step: MIN_STEP,
                        routes: [(0, 0.0); 2],
                        count: 0,
                    }
                }
            }
            Self::Snr {
                alpha,
                gamma,
                slot,
                inv_sqrt_snr,
            } => {
                let s = inv_sqrt_snr[bin];
                let raw = alpha[k] * s + gamma[k];
                if raw >= MIN_STEP {
                    StepAt {
                        step: raw,
                        routes: [(slot + k, s), (slot + alpha.len() + k, 1.0)],
                        count: 2,
                    }
                } else {
                    StepAt {
                        step: MIN_STEP,
                        routes: [(0, 0.0); 2],
                        count: 0,
                    }
                }
            }
        }
    }
}

/// Everything the per-sample passes need: quantized parameters and every step.
#[derive(Debug, Clone)]
pub(crate) struct QuantPlan {
    /// PGD-Net or ADMM-Net.
    pub arch: Arch,
    /// Quantize (false: the plain f32 net, used for the teacher and for calibration).
    pub quantize: bool,
    /// Per layer: the quantized parameters and their slots in the parameter vector.
    pub layers: Vec<LayerParams>,
    pub slots: Vec<LayerSlots>,
    /// STE mask of every net parameter's quantizer.
    pub param_mask: Vec<f32>,
    /// (slot, α̂) of the matched-filter scale.
    pub mf: Option<(usize, f32)>,
    pub m: usize,
    pub n: usize,
    /// (step, Q_P) of H, y, x⁽⁰⁾.
    pub h: (f32, f32),
    /// Per layer, the bits dropped from H̃'s codes for that layer (mixed H̃ precision): the
    /// layer uses sat(round_half_up(c / 2^d), bits − d)·2^d·step. Empty: 0 for every layer.
    pub h_shift: Vec<u32>,
    pub y: (f32, f32),
    pub x0: (f32, f32),
    /// Steps of e and g per layer, with their Q_P.
    pub e: Vec<f32>,
    pub e_qp: f32,
    pub g: Vec<f32>,
    pub g_qp: f32,
    /// Q_P of the activations, per layer.
    pub act_qp: Vec<f32>,
    pub activation: ActivationPlan,
    /// SNR bin of each sample is derived from its noise variance: snr = `signal_var` / σ².
    pub signal_var: f64,
    pub bins: super::quantizer::SnrBins,
    /// (step, Q_P) of the prox input quantizer Q_r (the `qam` prox only): the prox reads a
    /// b-bit code, so that in the integer model it is a 2^b-entry table.
    pub prox_in: Option<(f32, f32)>,
}

impl QuantPlan {
    #[inline]
    fn q(&self, v: f32, step: f32, qp: f32) -> QuantEval {
        if self.quantize {
            eval(v, step, qp)
        } else {
            QuantEval {
                value: v,
                d_input: 1.0,
                d_step: 0.0,
            }
        }
    }

    /// The SNR bin of a sample with complex noise variance `noise_var`.
    pub fn bin(&self, noise_var: f32) -> usize {
        self.bins.bin_of_noise(self.signal_var, noise_var)
    }

    /// The prox input: Q_r(r) and its STE mask with a prox input quantizer, else (r, 1).
    #[inline]
    fn prox_input(&self, r: f32) -> (f32, f32) {
        match self.prox_in {
            Some((step, qp)) => {
                let q = self.q(r, step, qp);
                (q.value, q.d_input)
            }
            None => (r, 1.0),
        }
    }

    fn layers_len(&self) -> usize {
        self.layers.len()
    }
}

/// Per-task scratch of one sample's passes.
#[derive(Debug)]
pub(crate) struct Workspace {
    hq: Vec<f32>,
    /// Per layer with a non-zero `h_shift`, its narrowed H̃ (`K × m × n`; else empty).
    hk: Vec<f32>,
    yq: Vec<f32>,
    /// x⁽⁰⁾ … x⁽ᴷ⁾, `(K+1) × n`.
    pub x: Vec<f32>,
    /// s⁽⁰⁾ … s⁽ᴷ⁾ and u⁽⁰⁾ … u⁽ᴷ⁾ (ADMM), `(K+1) × n`.
    pub s: Vec<f32>,
    u: Vec<f32>,
    s_mask: Vec<f32>,
    s_dstep: Vec<f32>,
    u_mask: Vec<f32>,
    u_dstep: Vec<f32>,
    ds: Vec<f32>,
    du: Vec<f32>,
    act_mask: Vec<f32>,
    act_dstep: Vec<f32>,
    d_input: Vec<f32>,
    d_param: Vec<f32>,
    g: Vec<f32>,
    g_mask: Vec<f32>,
    e_mask: Vec<f32>,
    z: Vec<f32>,
    x0_mask: Vec<f32>,
    e: Vec<f32>,
    t: Vec<f32>,
    w: Vec<f32>,
    dx: Vec<f32>,
    /// Largest magnitudes seen (calibration): H, y, x⁽⁰⁾, then e, g, x per layer.
    pub stats: Stats,
}

/// Largest magnitudes of every tensor over the samples a workspace has run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Stats {
    pub h: f32,
    pub y: f32,
    pub x0: f32,
    pub e: Vec<f32>,
    pub g: Vec<f32>,
    pub x: Vec<f32>,
}

impl Stats {
    pub fn new(layers: usize) -> Self {
        Self {
            e: vec![0.0; layers],
            g: vec![0.0; layers],
            x: vec![0.0; layers],
            ..Self::default()
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        self.h = self.h.max(other.h);
        self.y = self.y.max(other.y);
        self.x0 = self.x0.max(other.x0);
        for (a, b) in [
            (&mut self.e, &other.e),
            (&mut self.g, &other.g),
            (&mut self.x, &other.x),
        ] {
            for (a, b) in a.iter_mut().zip(b) {
                *a = a.max(*b);
            }
        }
    }
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |a, b| a.max(b.abs()))
}

impl Workspace {
    pub fn new(layers: usize, m: usize, n: usize) -> Self {
        let states = (layers + 1) * n;
        Self {
            hq: vec![0.0; m * n],
            hk: Vec::new(),
            yq: vec![0.0; m],
            x: vec![0.0; states],
            s: vec![0.0; states],
            u: vec![0.0; states],
            s_mask: vec![0.0; layers * n],
            s_dstep: vec![0.0; layers * n],
            u_mask: vec![0.0; layers * n],
            u_dstep: vec![0.0; layers * n],
            ds: vec![0.0; states],
            du: vec![0.0; states],
            act_mask: vec![0.0; layers * n],
            act_dstep: vec![0.0; layers * n],
            d_input: vec![0.0; layers * n],
            d_param: vec![0.0; layers * n],
            g: vec![0.0; layers * n],
            g_mask: vec![0.0; layers * n],
            e_mask: vec![0.0; layers * m],
            z: vec![0.0; n],
            x0_mask: vec![0.0; n],
            e: vec![0.0; m],
            t: vec![0.0; n],
            w: vec![0.0; n],
            dx: vec![0.0; states],
            stats: Stats::new(layers),
        }
    }
}

/// The H̃ layer `k` uses: the narrowed copy with a non-zero `h_shift`, else the input's.
fn layer_h<'a>(plan: &QuantPlan, k: usize, hq: &'a [f32], hk: &'a [f32]) -> &'a [f32] {
    match plan.h_shift.get(k) {
        Some(&d) if d > 0 && plan.quantize => &hk[k * hq.len()..(k + 1) * hq.len()],
        _ => hq,
    }
}

fn residual(h: &[f32], v: &[f32], y: &[f32], out: &mut [f32]) {
    let n = v.len();
    for (i, (o, row)) in out.iter_mut().zip(h.chunks_exact(n)).enumerate() {
        let hv: f32 = row.iter().zip(v).map(|(a, b)| a * b).sum();
        *o = if y.is_empty() { hv } else { hv - y[i] };
    }
}

fn transpose_mul(h: &[f32], e: &[f32], out: &mut [f32]) {
    let n = out.len();
    out.fill(0.0);
    for (&ei, row) in e.iter().zip(h.chunks_exact(n)) {
        for (o, &hij) in out.iter_mut().zip(row) {
            *o += ei * hij;
        }
    }
}

/// Quantizes H and y into the workspace and writes x⁽⁰⁾ (and, for ADMM, s⁽⁰⁾ = x⁽⁰⁾,
/// u⁽⁰⁾ = 0).
fn inputs<const STATS: bool>(plan: &QuantPlan, h: &[f32], y: &[f32], ws: &mut Workspace) {
    let n = plan.n;
    if STATS {
        ws.stats.h = ws.stats.h.max(max_abs(h));
        ws.stats.y = ws.stats.y.max(max_abs(y));
    }
    for (o, &v) in ws.hq.iter_mut().zip(h) {
        *o = plan.q(v, plan.h.0, plan.h.1).value;
    }
    if plan.quantize && plan.h_shift.iter().any(|&d| d > 0) {
        let mn = ws.hq.len();
        ws.hk.resize(plan.h_shift.len() * mn, 0.0);
        let (step, qp) = plan.h;
        for (k, &d) in plan.h_shift.iter().enumerate() {
            if d == 0 {
                continue;
            }
            let scale = (1u32 << d) as f32;
            // Q_P of the narrowed width: (Q_P + 1) / 2^d − 1.
            let narrow_qp = (qp + 1.0) / scale - 1.0;
            for (o, &v) in ws.hk[k * mn..(k + 1) * mn].iter_mut().zip(&ws.hq) {
                let c = (v / step).round();
                let r = ((c + scale / 2.0) / scale)
                    .floor()
                    .clamp(-narrow_qp, narrow_qp);
                *o = r * scale * step;
            }
        }
    }
    for (o, &v) in ws.yq.iter_mut().zip(y) {
        *o = plan.q(v, plan.y.0, plan.y.1).value;
    }
    match plan.mf {
        None => ws.x[..n].fill(0.0),
        Some((_, alpha)) => {
            transpose_mul(&ws.hq, &ws.yq, &mut ws.z);
            for i in 0..n {
                let v = alpha * ws.z[i];
                if STATS {
                    ws.stats.x0 = ws.stats.x0.max(v.abs());
                }
                let q = plan.q(v, plan.x0.0, plan.x0.1);
                ws.x[i] = q.value;
                ws.x0_mask[i] = q.d_input;
            }
        }
    }
    if plan.arch == Arch::Admm {
        ws.s[..n].copy_from_slice(&ws.x[..n]);
        ws.u[..n].fill(0.0);
    }
}

/// g⁽ᵏ⁾ = Q_g(Ĥᵀ Q_e(Ĥ x⁽ᵏ⁻¹⁾ − ŷ)) of layer `k` (0-based) into `ws.g`, with the masks.
fn gradient_term<const STATS: bool>(plan: &QuantPlan, k: usize, ws: &mut Workspace) {
    let (m, n) = (plan.m, plan.n);
    if k == 0 && plan.mf.is_none() {
        for (e, &y) in ws.e.iter_mut().zip(&ws.yq) {
            *e = -y;
        }
    } else {
        residual(
            layer_h(plan, k, &ws.hq, &ws.hk),
            &ws.x[k * n..(k + 1) * n],
            &ws.yq,
            &mut ws.e,
        );
    }
    if STATS {
        ws.stats.e[k] = ws.stats.e[k].max(max_abs(&ws.e));
    }
    let e_mask = &mut ws.e_mask[k * m..(k + 1) * m];
    for (e, mask) in ws.e.iter_mut().zip(e_mask) {
        let q = plan.q(*e, plan.e[k], plan.e_qp);
        *e = q.value;
        *mask = q.d_input;
    }
    let g = &mut ws.g[k * n..(k + 1) * n];
    transpose_mul(layer_h(plan, k, &ws.hq, &ws.hk), &ws.e, g);
    if STATS {
        ws.stats.g[k] = ws.stats.g[k].max(max_abs(g));
    }
    for (gi, mask) in g.iter_mut().zip(&mut ws.g_mask[k * n..(k + 1) * n]) {
        let q = plan.q(*gi, plan.g[k], plan.g_qp);
        *gi = q.value;
        *mask = q.d_input;
    }
}

/// One sample's forward pass. With `STATS` the largest pre-quantization magnitudes are
/// max-accumulated into `ws.stats`.
pub(crate) fn forward<const STATS: bool>(
    plan: &QuantPlan,
    h: &[f32],
    y: &[f32],
    bin: usize,
    ws: &mut Workspace,
) {
    inputs::<STATS>(plan, h, y, ws);
    match plan.arch {
        Arch::Pgd => forward_pgd::<STATS>(plan, bin, ws),
        Arch::Admm => forward_admm::<STATS>(plan, bin, ws),
    }
}

fn forward_pgd<const STATS: bool>(plan: &QuantPlan, bin: usize, ws: &mut Workspace) {
    let n = plan.n;
    for (k, lp) in plan.layers.iter().enumerate() {
        gradient_term::<STATS>(plan, k, ws);
        let kpp = k.saturating_sub(1);
        let (done, rest) = ws.x.split_at_mut((k + 1) * n);
        let xp = &done[k * n..];
        let xpp = &done[kpp * n..(kpp + 1) * n];
        let g = &ws.g[k * n..(k + 1) * n];
        let at = plan.activation.step(k, bin);
        let next = &mut rest[..n];
        for i in 0..n {
            let ri = xp[i] - lp.eta * g[i] + lp.beta * (xp[i] - xpp[i]);
            let (rq, r_mask) = plan.prox_input(ri);
            let ev = lp.prox.eval(rq);
            ws.d_input[k * n + i] = ev.d_input * r_mask;
            ws.d_param[k * n + i] = ev.d_param;
            if STATS {
                ws.stats.x[k] = ws.stats.x[k].max(ev.value.abs());
            }
            let q = plan.q(ev.value, at.step, plan.act_qp[k]);
            next[i] = q.value;
            ws.act_mask[k * n + i] = q.d_input;
            ws.act_dstep[k * n + i] = q.d_step;
        }
    }
}

/// Linearized ADMM: x⁽ᵏ⁾ = Q(x⁽ᵏ⁻¹⁾ − η̂(g⁽ᵏ⁾ + ρ̂ c⁽ᵏ⁾) + β̂(x⁽ᵏ⁻¹⁾ − x⁽ᵏ⁻²⁾)),
/// c⁽ᵏ⁾ = x⁽ᵏ⁻¹⁾ − s⁽ᵏ⁻¹⁾ + u⁽ᵏ⁻¹⁾, v = x⁽ᵏ⁾ + u⁽ᵏ⁻¹⁾, s⁽ᵏ⁾ = Q(prox(v)), u⁽ᵏ⁾ = Q(v − s⁽ᵏ⁾):
/// the three states of layer k share the activation step Δ_k.
fn forward_admm<const STATS: bool>(plan: &QuantPlan, bin: usize, ws: &mut Workspace) {
    let n = plan.n;
    for (k, lp) in plan.layers.iter().enumerate() {
        gradient_term::<STATS>(plan, k, ws);
        let kpp = k.saturating_sub(1);
        let at = plan.activation.step(k, bin);
        for i in 0..n {
            let j = k * n + i;
            let (xp, xpp) = (ws.x[j], ws.x[kpp * n + i]);
            let (sp, up) = (ws.s[j], ws.u[j]);
            let c = xp - sp + up;
            let pre_x = xp - lp.eta * (ws.g[j] + lp.rho * c) + lp.beta * (xp - xpp);
            let qx = plan.q(pre_x, at.step, plan.act_qp[k]);
            let v = qx.value + up;
            let (vq, v_mask) = plan.prox_input(v);
            let ev = lp.prox.eval(vq);
            let qs = plan.q(ev.value, at.step, plan.act_qp[k]);
            let qu = plan.q(v - qs.value, at.step, plan.act_qp[k]);
            if STATS {
                let big = pre_x.abs().max(ev.value.abs()).max((v - qs.value).abs());
                ws.stats.x[k] = ws.stats.x[k].max(big);
            }
            ws.x[j + n] = qx.value;
            ws.s[j + n] = qs.value;
            ws.u[j + n] = qu.value;
            ws.act_mask[j] = qx.d_input;
            ws.act_dstep[j] = qx.d_step;
            ws.s_mask[j] = qs.d_input;
            ws.s_dstep[j] = qs.d_step;
            ws.u_mask[j] = qu.d_input;
            ws.u_dstep[j] = qu.d_step;
            ws.d_input[j] = ev.d_input * v_mask;
            ws.d_param[j] = ev.d_param;
        }
    }
}

/// Adds one sample's gradient into `grad` (f64), given its forward pass in `ws`:
/// `scale` = 2/B multiplies the MSE term, `extra` (K × n, layer k = 1..K in order) is the
/// caller's ∂L_extra/∂x⁽ᵏ⁾ for this sample.
pub(crate) fn backward(
    plan: &QuantPlan,
    bin: usize,
    truth: &[f32],
    scale: f32,
    extra: Option<&[f32]>,
    ws: &mut Workspace,
    grad: &mut [f64],
) {
    match plan.arch {
        Arch::Pgd => backward_pgd(plan, bin, truth, scale, extra, ws, grad),
        Arch::Admm => backward_admm(plan, bin, truth, scale, extra, ws, grad),
    }
}

/// The states the net outputs and the extra gradient applies to: x (PGD) or s (ADMM).
fn outputs<'w>(plan: &QuantPlan, ws: &'w Workspace) -> &'w [f32] {
    match plan.arch {
        Arch::Pgd => &ws.x,
        Arch::Admm => &ws.s,
    }
}

/// Adds the step gradient `d_step` of layer `k` to its learned values.
fn add_step_grad(plan: &QuantPlan, k: usize, bin: usize, d_step: f32, grad: &mut [f64]) {
    let step = plan.activation.step(k, bin);
    for &(slot, factor) in &step.routes[..step.count] {
        grad[slot] += (d_step * factor) as f64;
    }
}

/// `ws.w` = the gradient reaching x⁽ᵏ⁻¹⁾ through g⁽ᵏ⁾ when δg = −η̂_k `ws.t`:
/// Ĥᵀ((Ĥ(δg ⊙ M_g)) ⊙ M_e).
fn through_gradient_term(plan: &QuantPlan, k: usize, eta: f32, ws: &mut Workspace) {
    let (m, n) = (plan.m, plan.n);
    for i in 0..n {
        ws.w[i] = -eta * ws.t[i] * ws.g_mask[k * n + i];
    }
    residual(layer_h(plan, k, &ws.hq, &ws.hk), &ws.w, &[], &mut ws.e);
    for (e, mask) in ws.e.iter_mut().zip(&ws.e_mask[k * m..(k + 1) * m]) {
        *e *= mask;
    }
    transpose_mul(layer_h(plan, k, &ws.hq, &ws.hk), &ws.e, &mut ws.w);
}

fn backward_pgd(
    plan: &QuantPlan,
    bin: usize,
    truth: &[f32],
    scale: f32,
    extra: Option<&[f32]>,
    ws: &mut Workspace,
    grad: &mut [f64],
) {
    let n = plan.n;
    let layers = plan.layers_len();
    ws.dx.fill(0.0);
    if let Some(extra) = extra {
        ws.dx[n..].copy_from_slice(extra);
    }
    let last = layers * n..(layers + 1) * n;
    for ((d, &out), &t) in ws.dx[last.clone()].iter_mut().zip(&ws.x[last]).zip(truth) {
        *d += scale * (out - t);
    }
    for k in (0..layers).rev() {
        let lp = &plan.layers[k];
        let slots = &plan.slots[k];
        let kpp = k.saturating_sub(1);
        let (mut d_eta, mut d_beta, mut d_param, mut d_step) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let at = k * n + i;
            let dxi = ws.dx[(k + 1) * n + i];
            d_step += dxi * ws.act_dstep[at];
            let dq = dxi * ws.act_mask[at];
            let dr = dq * ws.d_input[at];
            d_param += dq * ws.d_param[at];
            d_eta -= dr * ws.g[at];
            d_beta += dr * (ws.x[k * n + i] - ws.x[kpp * n + i]);
            ws.t[i] = dr;
        }
        add_step_grad(plan, k, bin, d_step, grad);
        grad[slots.eta] += (d_eta * plan.param_mask[slots.eta]) as f64;
        if let Some(j) = slots.beta {
            grad[j] += (d_beta * plan.param_mask[j]) as f64;
        }
        if let Some(j) = slots.prox {
            grad[j] += (d_param * plan.param_mask[j]) as f64;
        }
        if k == 0 && plan.mf.is_none() {
            break;
        }
        for i in 0..n {
            ws.w[i] = -lp.eta * ws.t[i] * ws.g_mask[k * n + i];
        }
        residual(layer_h(plan, k, &ws.hq, &ws.hk), &ws.w, &[], &mut ws.e);
        for (e, mask) in
            ws.e.iter_mut()
                .zip(&ws.e_mask[k * plan.m..(k + 1) * plan.m])
        {
            *e *= mask;
        }
        transpose_mul(layer_h(plan, k, &ws.hq, &ws.hk), &ws.e, &mut ws.w);
        let carry = 1.0 + lp.beta;
        for i in 0..n {
            ws.dx[k * n + i] += carry * ws.t[i] + ws.w[i];
            ws.dx[kpp * n + i] -= lp.beta * ws.t[i];
        }
    }
    if let Some((slot, _)) = plan.mf {
        let d: f32 = (0..n).map(|i| ws.dx[i] * ws.x0_mask[i] * ws.z[i]).sum();
        grad[slot] += (d * plan.param_mask[slot]) as f64;
    }
}

/// ADMM backward, carrying δx, δs, δu (all complete when layer k is reached):
///   δũ = δu⁽ᵏ⁾ ⊙ M_u,  δs′ = δs⁽ᵏ⁾ − δũ,  δp = δs′ ⊙ M_s,  δv = δũ + δp ⊙ prox′(v),
///   δx′ = δx⁽ᵏ⁾ + δv,  δu⁽ᵏ⁻¹⁾ += δv,  δ = δx′ ⊙ M_x,
///   ∂L/∂Δ_k += ⟨δu⁽ᵏ⁾, D_u⟩ + ⟨δs′, D_s⟩ + ⟨δx′, D_x⟩,  ∂L/∂p_k = Σ δp ∂prox/∂p,
///   ∂L/∂η_k = −⟨δ, g + ρ̂c⟩,  ∂L/∂ρ_k = −η̂⟨δ, c⟩,  ∂L/∂β_k = ⟨δ, x⁽ᵏ⁻¹⁾ − x⁽ᵏ⁻²⁾⟩,
///   δx⁽ᵏ⁻¹⁾ += (1 − η̂ρ̂ + β̂)δ + [through g],  δs⁽ᵏ⁻¹⁾ += η̂ρ̂δ,  δu⁽ᵏ⁻¹⁾ −= η̂ρ̂δ,
///   δx⁽ᵏ⁻²⁾ −= β̂δ;  finally δx⁽⁰⁾ += δs⁽⁰⁾ (s⁽⁰⁾ = x⁽⁰⁾).
fn backward_admm(
    plan: &QuantPlan,
    bin: usize,
    truth: &[f32],
    scale: f32,
    extra: Option<&[f32]>,
    ws: &mut Workspace,
    grad: &mut [f64],
) {
    let n = plan.n;
    let layers = plan.layers_len();
    ws.dx.fill(0.0);
    ws.ds.fill(0.0);
    ws.du.fill(0.0);
    if let Some(extra) = extra {
        ws.ds[n..].copy_from_slice(extra);
    }
    let last = layers * n..(layers + 1) * n;
    for ((d, &out), &t) in ws.ds[last.clone()].iter_mut().zip(&ws.s[last]).zip(truth) {
        *d += scale * (out - t);
    }
    for k in (0..layers).rev() {
        let lp = &plan.layers[k];
        let slots = &plan.slots[k];
        let kpp = k.saturating_sub(1);
        let (mut d_eta, mut d_rho, mut d_beta, mut d_param, mut d_step) =
            (0.0f32, 0.0f32, 0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let j = k * n + i;
            let at = j + n;
            let du_out = ws.du[at];
            let d_pre_u = du_out * ws.u_mask[j];
            let ds_total = ws.ds[at] - d_pre_u;
            let d_prox = ds_total * ws.s_mask[j];
            let dv = d_pre_u + d_prox * ws.d_input[j];
            d_param += d_prox * ws.d_param[j];
            let dx_total = ws.dx[at] + dv;
            ws.du[j] += dv;
            let delta = dx_total * ws.act_mask[j];
            d_step +=
                du_out * ws.u_dstep[j] + ds_total * ws.s_dstep[j] + dx_total * ws.act_dstep[j];
            let (xp, xpp) = (ws.x[j], ws.x[kpp * n + i]);
            let c = xp - ws.s[j] + ws.u[j];
            d_eta -= delta * (ws.g[j] + lp.rho * c);
            d_rho -= delta * c;
            d_beta += delta * (xp - xpp);
            ws.t[i] = delta;
        }
        add_step_grad(plan, k, bin, d_step, grad);
        grad[slots.eta] += (d_eta * plan.param_mask[slots.eta]) as f64;
        if let Some(j) = slots.rho {
            grad[j] += (lp.eta * d_rho * plan.param_mask[j]) as f64;
        }
        if let Some(j) = slots.beta {
            grad[j] += (d_beta * plan.param_mask[j]) as f64;
        }
        if let Some(j) = slots.prox {
            grad[j] += (d_param * plan.param_mask[j]) as f64;
        }
        if k == 0 && plan.mf.is_none() {
            break;
        }
        through_gradient_term(plan, k, lp.eta, ws);
        let eta_rho = lp.eta * lp.rho;
        let carry = 1.0 - eta_rho + lp.beta;
        for i in 0..n {
            let t = ws.t[i];
            ws.dx[k * n + i] += carry * t + ws.w[i];
            ws.ds[k * n + i] += eta_rho * t;
            ws.du[k * n + i] -= eta_rho * t;
            ws.dx[kpp * n + i] -= lp.beta * t;
        }
    }
    if let Some((slot, _)) = plan.mf {
        let d: f32 = (0..n)
            .map(|i| (ws.dx[i] + ws.ds[i]) * ws.x0_mask[i] * ws.z[i])
            .sum();
        grad[slot] += (d * plan.param_mask[slot]) as f64;
    }
}

fn sample<'a>(data: &TrainBatch<'a>, b: usize) -> (&'a [f32], &'a [f32]) {
    let (m, n) = (data.m, data.n);
    (
        &data.h[b * m * n..(b + 1) * m * n],
        &data.y[b * m..(b + 1) * m],
    )
}

/// Mean MSE over the batch; the gradient (with the optional extra per-layer gradients,
/// layout `K × batch × n`) is written into `grad`. Deterministic: fixed chunks summed in order.
pub(crate) fn loss_and_grad(
    plan: &QuantPlan,
    data: &TrainBatch<'_>,
    extra: Option<&[f32]>,
    grad: &mut [f32],
) -> f32 {
    let (n, k) = (plan.n, plan.layers_len());
    let params = grad.len();
    if data.batch == 0 {
        grad.fill(0.0);
        return 0.0;
    }
    let scale = 2.0 / data.batch as f32;
    let chunks = data.batch.div_ceil(CHUNK);
    let results: Vec<(f64, Vec<f64>)> = (0..chunks)
        .into_par_iter()
        .map(|c| {
            let mut ws = Workspace::new(k, plan.m, n);
            let mut acc = vec![0.0f64; params];
            let mut extra_b = vec![0.0f32; k * n];
            let mut loss = 0.0f64;
            for b in c * CHUNK..((c + 1) * CHUNK).min(data.batch) {
                let (h, y) = sample(data, b);
                let bin = plan.bin(data.noise_var[b]);
                forward::<false>(plan, h, y, bin, &mut ws);
                let truth = &data.x[b * n..(b + 1) * n];
                let out = &outputs(plan, &ws)[k * n..(k + 1) * n];
                loss += out
                    .iter()
                    .zip(truth)
                    .map(|(a, t)| ((a - t) * (a - t)) as f64)
                    .sum::<f64>();
                let extra_here = extra.map(|e| {
                    for layer in 0..k {
                        let from = (layer * data.batch + b) * n;
                        extra_b[layer * n..(layer + 1) * n].copy_from_slice(&e[from..from + n]);
                    }
                    &extra_b[..]
                });
                backward(plan, bin, truth, scale, extra_here, &mut ws, &mut acc);
            }
            (loss, acc)
        })
        .collect();
    crate::unfolded::batch::reduce_chunks(&results, grad, data.batch)
}

/// Writes x⁽¹⁾ … x⁽ᴷ⁾ of every sample into `layers_out` (layout `K × batch × n`), or only
/// x⁽ᴷ⁾ into `out` (`batch × n`) when `all_layers` is false.
pub(crate) fn forward_batch(
    plan: &QuantPlan,
    data: &TrainBatch<'_>,
    all_layers: bool,
    out: &mut [f32],
) {
    let (n, k) = (plan.n, plan.layers_len());
    let batch = data.batch;
    let per_chunk: Vec<Vec<f32>> = (0..batch.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut ws = Workspace::new(k, plan.m, n);
            let range = c * CHUNK..((c + 1) * CHUNK).min(batch);
            let width = if all_layers { k * n } else { n };
            let mut local = vec![0.0f32; range.len() * width];
            for (j, b) in range.enumerate() {
                let (h, y) = sample(data, b);
                forward::<false>(plan, h, y, plan.bin(data.noise_var[b]), &mut ws);
                let dst = &mut local[j * width..(j + 1) * width];
                let states = outputs(plan, &ws);
                if all_layers {
                    dst.copy_from_slice(&states[n..]);
                } else {
                    dst.copy_from_slice(&states[k * n..]);
                }
            }
            local
        })
        .collect();
    for (c, local) in per_chunk.iter().enumerate() {
        let first = c * CHUNK;
        if all_layers {
            for (j, sample_layers) in local.chunks_exact(k * n).enumerate() {
                for layer in 0..k {
                    let to = (layer * batch + first + j) * n;
                    out[to..to + n].copy_from_slice(&sample_layers[layer * n..(layer + 1) * n]);
                }
            }
        } else {
            out[first * n..first * n + local.len()].copy_from_slice(local);
        }
    }
}

/// Largest magnitudes of every tensor of the (unquantized) plan over `data`.
pub(crate) fn calibrate(plan: &QuantPlan, data: &TrainBatch<'_>) -> Stats {
    let (n, k) = (plan.n, plan.layers_len());
    let parts: Vec<Stats> = (0..data.batch.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut ws = Workspace::new(k, plan.m, n);
            for b in c * CHUNK..((c + 1) * CHUNK).min(data.batch) {
                let (h, y) = sample(data, b);
                forward::<true>(plan, h, y, plan.bin(data.noise_var[b]), &mut ws);
            }
            ws.stats
        })
        .collect();
    let mut total = Stats::new(k);
    for p in &parts {
        total.merge(p);
    }
    total
}
