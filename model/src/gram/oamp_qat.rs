//! The fake-quant OAMP-Net2 ([`FakeQuantOamp`]) and its quantization-aware training
//! ([`QatOamp`]: QAT-MSE, and KAQ's loss MSE + ε Σ_k MMD²).
//!
//! The block stage of an IR v4 document (G, 1/tr G and every bank entry's Q_j, α_j, a_j, b_j,
//! docs/ir.md §11.3) depends only on H̃, the SNR bin and the frozen constants δ_j and prior_j,
//! never on the trained layer parameters, so the fake-quant net takes it from the golden model
//! ([`OampInterpreter::run_block_codes`]'s block taps): it equals the integer model by
//! construction. z = H̃ᵀỹ and ‖ỹ‖² are formed exactly from the front-end codes
//! ([`combine`]). Per layer the fake-quant net runs the IR's dataflow in f64 on the values
//! (code · 2^−frac), every tensor through q(v) = saturate(⌊v·2^frac + ½⌋)·2^−frac (the integer
//! model's half-up saturating rounding) at its IR format:
//!
//! e = q(z − Gx), v² = max(q((‖y‖² − xᵀz − xᵀe − noise)·(1/tr G)), floor), j = select(v²),
//! g = q(Q_j e), r = q(x + γ α_j g), τ² = q(c0 v² + c1 a_j v² + c1 b_j), its bucket,
//! x⁺ = q(φ m(r, bucket) − φξ r) with m the denoiser table's entry.
//!
//! The five layer constants are γ, c0 = 1 − 2θ, c1 = θ², φ, φξ, each at the finest frac
//! holding it at `scalar_bits` (the PTQ rule, [`lower_oamp_with`]). An f64 value differs from
//! the integer model's only where an exact sum needs more than 53 bits; the tests check equal
//! last-layer state codes on every vector of small nets at 8, 6 and 4 bits, and ≥ 99.9 % equal
//! decisions after fine-tuning.
//!
//! The STE surrogate ([`QatOamp`]) is the same forward with each quantizer's offset
//! q(v) − v treated as a constant (recorded into, or replayed from, an [`OampTape`] with the
//! discrete choices j, the v² floor, the bucket), the table entry m replaced by the float
//! posterior mean at (r, τ²) plus its offset, and the constants quantized the same way (with
//! [`QatOamp::freeze_constants`], their offsets frozen). Backward, layer k down to 0, given δx⁺:
//!
//! δφ̂ = ⟨δx⁺, m⟩, δφξ̂ = −⟨δx⁺, r⟩, δr = −φξ̂ δx⁺ + φ̂ δx⁺ ∂m/∂r, δτ² = Σ φ̂ δx⁺_i ∂m_i/∂τ²;
//! δc0 = δτ² v², δc1 = δτ² (a v² + b), δv² = δτ² (c0 + c1 a); δγ̂ = α ⟨δr, g⟩, δg = γ̂ α δr,
//! δe = Q_j δg; unless floored δw = δv²: δe −= δw·(1/tr G)·x, δx −= δw·(1/tr G)·(z + e);
//! δx += δr − G δe. The parameters: δγ = δγ̂, δθ = −2 δc0 + 2θ δc1, δφ = δφ̂ + ξ δφξ̂,
//! δξ = φ δφξ̂.

use rayon::prelude::*;

use kaq_ir::IrError;
use kaq_ir::fixed::{QFormat, max_code};
use kaq_ir::gram::oamp::{OampBlockTaps, OampInterpreter, OampIr};
use kaq_ir::gram::{Coef, combine};

use super::batch::cg_layer_outputs;
use super::denoise::GaussQam;
use super::oamp_quant::{OampQuantOptions, coef, lower_oamp};
use super::train::GramTrainConfig;
use super::{Family, GramNet};
use crate::detect::Detector;
use crate::error::ModelError;
use crate::link::FrameBatch;
use crate::mmd::{Bandwidths, Estimator, KernelMode, Mmd, MmdWorkspace};
use crate::quant::kaq::KaqConfig;
use crate::train::{EpochRecord, Progress, RunData, TrainError, run_epochs};
use crate::unfolded::batch::reduce_chunks;
use crate::unfolded::{F32Frames, TrainBatch};

/// Smallest τ² the float posterior is ever evaluated at (as the f32 net).
const TAU_FLOOR: f64 = 1e-8;
/// Smallest number of samples per parallel task.
const CHUNK: usize = 8;

/// q(v) at format `f`: half-up rounding to the frac, saturated to the width.
#[inline]
fn q(v: f64, f: QFormat) -> f64 {
    let qp = max_code(f.width()) as f64;
    (v * 2f64.powi(f.frac()) + 0.5).floor().clamp(-qp, qp) * 2f64.powi(-f.frac())
}

/// The code of a value on `f`'s grid.
#[inline]
fn code_of(v: f64, f: QFormat) -> i64 {
    (v * 2f64.powi(f.frac())).round() as i64
}

#[inline]
fn val(c: i64, frac: i32) -> f64 {
    c as f64 * 2f64.powi(-frac)
}

fn coef_val(c: &Coef) -> f64 {
    val(c.code, c.frac)
}

/// The quantizer offsets and discrete choices of one vector's surrogate forward: recorded by a
/// forward, replayed by the next ones (then the loss is a differentiable function of the
/// parameters whose value at the recording point is the fake-quant forward).
#[derive(Debug, Clone, Default)]
pub struct OampTape {
    /// The offsets q(v) − v, in call order.
    pub offsets: Vec<f64>,
    /// The bank entries, floors and buckets, in call order.
    pub choices: Vec<usize>,
    /// Replay instead of recording.
    pub replay: bool,
    pos: usize,
    cpos: usize,
}

impl OampTape {
    /// Starts a pass: recording clears the tape, replaying rewinds it.
    pub fn start(&mut self) {
        if !self.replay {
            self.offsets.clear();
            self.choices.clear();
        }
        self.pos = 0;
        self.cpos = 0;
    }

    #[inline]
    fn q(&mut self, v: f64, quant: impl FnOnce(f64) -> f64) -> f64 {
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

    #[inline]
    fn choose(&mut self, pick: impl FnOnce() -> usize) -> usize {
        if self.replay {
            let c = self.choices[self.cpos];
            self.cpos += 1;
            c
        } else {
            let c = pick();
            self.choices.push(c);
            c
        }
    }
}

/// The values of one channel block's stage (from the golden model's block taps).
#[derive(Debug, Clone)]
struct Block {
    g: Vec<f64>,
    inv_trace: f64,
    /// Q_j, `J × n × n`.
    q: Vec<f64>,
    alpha: Vec<f64>,
    a: Vec<f64>,
    b: Vec<f64>,
    noise: f64,
}

impl Block {
    fn of(ir: &OampIr, t: &OampBlockTaps, bin: usize) -> Self {
        let k = &ir.block.bank;
        let mut q = Vec::with_capacity(t.bank.len() * ir.n * ir.n);
        for e in &t.bank {
            q.extend(e.q.iter().map(|&c| val(c, k.q.frac())));
        }
        Self {
            g: t.g.iter().map(|&c| val(c, ir.block.g.frac())).collect(),
            inv_trace: val(t.inv_trace, ir.block.inv_trace.format.frac()),
            q,
            alpha: t
                .bank
                .iter()
                .map(|e| val(e.alpha, k.alpha.frac()))
                .collect(),
            a: t.bank.iter().map(|e| val(e.a, k.a.frac())).collect(),
            b: t.bank.iter().map(|e| val(e.b, k.b.frac())).collect(),
            noise: val(ir.front.noise[bin], ir.front.yy.frac()),
        }
    }
}

/// One layer's constants γ, c0, c1, φ, φξ (values), and the float θ, φ, ξ their chain factors
/// need.
#[derive(Debug, Clone, Copy)]
struct LayerConsts {
    gamma: f64,
    c0: f64,
    c1: f64,
    phi: f64,
    phi_xi: f64,
    theta_f: f64,
    phi_f: f64,
    xi_f: f64,
}

/// One vector's surrogate state, every layer kept for the backward pass.
#[derive(Debug, Clone)]
struct Workspace {
    n: usize,
    z: Vec<f64>,
    /// x⁽⁰⁾ … x⁽ᴷ⁾.
    x: Vec<f64>,
    e: Vec<f64>,
    g: Vec<f64>,
    r: Vec<f64>,
    m: Vec<f64>,
    dm_dr: Vec<f64>,
    dm_dt2: Vec<f64>,
    v2: Vec<f64>,
    floored: Vec<bool>,
    tau_small: Vec<bool>,
    pick: Vec<usize>,
    u: Vec<f64>,
    dx: Vec<f64>,
    dr: Vec<f64>,
    de: Vec<f64>,
    tmp: Vec<f64>,
}

impl Workspace {
    fn new(layers: usize, n: usize) -> Self {
        let kn = layers * n;
        let v = |len| vec![0f64; len];
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
            floored: vec![false; layers],
            tau_small: vec![false; layers],
            pick: vec![0; layers],
            u: v(n),
            dx: v(n),
            dr: v(n),
            de: v(n),
            tmp: v(n),
        }
    }

    fn output(&self, layer: usize) -> &[f64] {
        &self.x[layer * self.n..(layer + 1) * self.n]
    }
}

fn sym_mul(a: &[f64], x: &[f64], out: &mut [f64]) {
    let n = x.len();
    for (i, o) in out.iter_mut().enumerate() {
        *o = a[i * n..(i + 1) * n]
            .iter()
            .zip(x)
            .map(|(p, q)| p * q)
            .sum();
    }
}

/// The surrogate forward of one vector (module docs); `z`, `yy` already in `ws.z` and `yy`.
fn forward(
    ir: &OampIr,
    qam: &GaussQam<f64>,
    blk: &Block,
    c: &[LayerConsts],
    yy: f64,
    ws: &mut Workspace,
    tape: &mut OampTape,
) {
    let n = ir.n;
    let xf = ir.state;
    let half = 1i64 << (ir.layers[0].formats.r.width() - 1);
    ws.x[..n].fill(0.0);
    for (k, l) in ir.layers.iter().enumerate() {
        let f = &l.formats;
        let at = k * n;
        if k == 0 {
            ws.u.fill(0.0);
        } else {
            sym_mul(&blk.g, &ws.x[at..at + n], &mut ws.u);
        }
        for i in 0..n {
            ws.e[at + i] = tape.q(ws.z[i] - ws.u[i], |v| q(v, f.e));
        }
        let x = &ws.x[at..at + n];
        let xz: f64 = x.iter().zip(&ws.z).map(|(a, b)| a * b).sum();
        let xe: f64 = x.iter().zip(&ws.e[at..at + n]).map(|(a, b)| a * b).sum();
        let w = tape.q((yy - xz - xe - blk.noise) * blk.inv_trace, |v| q(v, f.v2));
        let floor = val(l.v2_floor, f.v2.frac());
        ws.floored[k] = tape.choose(|| usize::from(w < floor)) == 1;
        let v2 = if ws.floored[k] { floor } else { w };
        ws.v2[k] = v2;
        let j = tape.choose(|| ir.select(code_of(v2, f.v2)));
        ws.pick[k] = j;
        let qj = &blk.q[j * n * n..(j + 1) * n * n];
        sym_mul(qj, &ws.e[at..at + n], &mut ws.tmp);
        for i in 0..n {
            ws.g[at + i] = tape.q(ws.tmp[i], |v| q(v, f.g));
        }
        let lc = c[k];
        let ga = lc.gamma * blk.alpha[j];
        let tau2 = tape.q(lc.c0 * v2 + lc.c1 * blk.a[j] * v2 + lc.c1 * blk.b[j], |v| {
            q(v, f.tau2)
        });
        let bucket = tape.choose(|| {
            let tc = code_of(tau2, f.tau2);
            ir.denoiser.thresholds.partition_point(|&th| th <= tc)
        });
        // The posterior at τ² no smaller than the table's first representative (and
        // [`TAU_FLOOR`]): the table holds nothing sharper.
        let t_floor = ir.denoiser.representatives[0].max(TAU_FLOOR);
        ws.tau_small[k] = tau2 <= t_floor;
        let teval = tau2.max(t_floor);
        let row = &ir.denoiser.table[bucket];
        for i in 0..n {
            let r = tape.q(ws.x[at + i] + ga * ws.g[at + i], |v| q(v, f.r));
            ws.r[at + i] = r;
            let post = qam.eval(r, teval);
            ws.dm_dr[at + i] = post.dm_dt;
            ws.dm_dt2[at + i] = post.dm_dh;
            let m = tape.q(post.mean, |_| {
                let rc = code_of(r, f.r).clamp(-half, half - 1);
                val(row[(rc + half) as usize], xf.frac())
            });
            ws.m[at + i] = m;
            ws.x[at + n + i] = tape.q(lc.phi * m - lc.phi_xi * r, |v| q(v, xf));
        }
    }
}

/// Adds this vector's parameter gradient into `grad` given the forward pass in `ws`, δx̂ =
/// `dout` and (optional) per layer k ≥ 1 the extra gradient `extra` of x⁽ᵏ⁾ (`K × n`).
fn backward(
    blk: &Block,
    c: &[LayerConsts],
    slots: [usize; 4],
    dout: &[f64],
    extra: Option<&[f64]>,
    ws: &mut Workspace,
    grad: &mut [f64],
) {
    let n = ws.n;
    let layers = c.len();
    ws.dx.copy_from_slice(dout);
    if let Some(ex) = extra {
        let at = (layers - 1) * n;
        for i in 0..n {
            ws.dx[i] += ex[at + i];
        }
    }
    for k in (0..layers).rev() {
        let at = k * n;
        let lc = c[k];
        let j = ws.pick[k];
        let (alpha, a, b) = (blk.alpha[j], blk.a[j], blk.b[j]);
        let (mut d_phi, mut d_phixi, mut d_tau2, mut d_gamma) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..n {
            let dxn = ws.dx[i];
            d_phi += dxn * ws.m[at + i];
            d_phixi -= dxn * ws.r[at + i];
            let dm = lc.phi * dxn;
            ws.dr[i] = -lc.phi_xi * dxn + dm * ws.dm_dr[at + i];
            d_tau2 += dm * ws.dm_dt2[at + i];
            d_gamma += ws.dr[i] * ws.g[at + i];
        }
        if ws.tau_small[k] {
            d_tau2 = 0.0;
        }
        d_gamma *= alpha;
        let v2 = ws.v2[k];
        let d_c0 = d_tau2 * v2;
        let d_c1 = d_tau2 * (a * v2 + b);
        let dv2 = d_tau2 * (lc.c0 + lc.c1 * a);
        grad[slots[0] + k] += d_gamma;
        grad[slots[1] + k] += -2.0 * d_c0 + 2.0 * lc.theta_f * d_c1;
        grad[slots[2] + k] += d_phi + lc.xi_f * d_phixi;
        grad[slots[3] + k] += lc.phi_f * d_phixi;
        if k == 0 {
            break;
        }
        let ga = lc.gamma * alpha;
        for i in 0..n {
            ws.tmp[i] = ga * ws.dr[i];
        }
        let qj = &blk.q[j * n * n..(j + 1) * n * n];
        sym_mul(qj, &ws.tmp, &mut ws.de);
        let dw = if ws.floored[k] { 0.0 } else { dv2 };
        let cw = dw * blk.inv_trace;
        for i in 0..n {
            ws.de[i] -= cw * ws.x[at + i];
        }
        sym_mul(&blk.g, &ws.de, &mut ws.tmp);
        for i in 0..n {
            ws.dx[i] = ws.dr[i] - cw * (ws.z[i] + ws.e[at + i]) - ws.tmp[i];
        }
        if let Some(ex) = extra {
            let xat = (k - 1) * n;
            for i in 0..n {
                ws.dx[i] += ex[xat + i];
            }
        }
    }
}

/// The IR `ir` with the layer constants of `net` (γ, 1 − 2θ, θ², φ, φξ, each at the finest
/// frac holding it at `opts.scalar_bits`, as [`lower_oamp`]) and every format and the block
/// stage kept: the lowering of a net trained at `ir`'s formats.
pub fn lower_oamp_with(
    net: &GramNet,
    opts: &OampQuantOptions,
    ir: &OampIr,
) -> Result<OampIr, ModelError> {
    if net.config().family != Family::Oamp || net.config().layers != ir.layers.len() {
        return Err(IrError::Lower(format!(
            "{} with {} layers: lower_oamp_with needs an oamp net of the IR's {} layers",
            net.config().family,
            net.config().layers,
            ir.layers.len()
        ))
        .into());
    }
    let cw = opts.scalar_bits;
    let off = net.offsets();
    let p = net.params();
    let mut out = ir.clone();
    for (k, l) in out.layers.iter_mut().enumerate() {
        let at = |i: usize| f64::from(p[off[i] + k]);
        let (gamma, theta, phi, xi) = (at(0), at(1), at(2), at(3));
        l.gamma = coef(gamma, cw);
        l.c0 = coef(1.0 - 2.0 * theta, cw);
        l.c1 = coef(theta * theta, cw);
        l.phi = coef(phi, cw);
        l.phi_xi = coef(phi * xi, cw);
    }
    out.validate()?;
    Ok(out)
}

/// A fake-quant OAMP net: the float net, its IR v4 document (the formats, the block stage and
/// the layer constants the forward uses) and the options it was lowered with.
#[derive(Debug, Clone)]
pub struct FakeQuantOamp {
    net: GramNet,
    golden: OampInterpreter,
    opts: OampQuantOptions,
}

/// The PTQ fake-quant net of `net` at `opts` ([`lower_oamp`]).
pub fn quantize_oamp(net: &GramNet, opts: &OampQuantOptions) -> Result<FakeQuantOamp, ModelError> {
    let ir = lower_oamp(net, opts)?;
    FakeQuantOamp::new(net.clone(), ir, opts.clone())
}

impl FakeQuantOamp {
    /// The fake-quant net of the IR `ir` (validated) lowered from `net` at `opts`.
    pub fn new(net: GramNet, ir: OampIr, opts: OampQuantOptions) -> Result<Self, ModelError> {
        if net.config().family != Family::Oamp || net.config().layers != ir.layers.len() {
            return Err(IrError::Lower(format!(
                "{} with {} layers is not the oamp net of an IR of {} layers",
                net.config().family,
                net.config().layers,
                ir.layers.len()
            ))
            .into());
        }
        Ok(Self {
            net,
            golden: OampInterpreter::new(ir)?,
            opts,
        })
    }

    /// The float net.
    pub fn net(&self) -> &GramNet {
        &self.net
    }

    /// The IR.
    pub fn ir(&self) -> &OampIr {
        self.golden.ir()
    }

    /// The lowering options.
    pub fn opts(&self) -> &OampQuantOptions {
        &self.opts
    }

    /// The IR's layer constants as values.
    fn consts(&self) -> Vec<LayerConsts> {
        let (off, p) = (self.net.offsets(), self.net.params());
        self.ir()
            .layers
            .iter()
            .enumerate()
            .map(|(k, l)| LayerConsts {
                gamma: coef_val(&l.gamma),
                c0: coef_val(&l.c0),
                c1: coef_val(&l.c1),
                phi: coef_val(&l.phi),
                phi_xi: coef_val(&l.phi_xi),
                theta_f: f64::from(p[off[1] + k]),
                phi_f: f64::from(p[off[2] + k]),
                xi_f: f64::from(p[off[3] + k]),
            })
            .collect()
    }

    /// Runs the forward over `range` of `data` with the constants `c`, calling
    /// `each(ws, block, b)` after each vector; with `tapes` (one per vector of the range) the
    /// quantizers record into or replay from them.
    fn run(
        &self,
        data: &TrainBatch<'_>,
        range: std::ops::Range<usize>,
        c: &[LayerConsts],
        mut tapes: Option<&mut [OampTape]>,
        mut each: impl FnMut(&mut Workspace, &Block, usize),
    ) -> Result<(), ModelError> {
        let ir = self.ir();
        let (m, n) = (ir.m, ir.n);
        let qam = GaussQam::<f64>::new(ir.modulation);
        let mut ws = Workspace::new(ir.layers.len(), n);
        let mut hc = vec![0i64; m * n];
        let mut yc = vec![0i64; m];
        let mut blk: Option<Block> = None;
        let mut own = OampTape::default();
        let (fh, fy) = (ir.inputs.h.frac(), ir.inputs.y.frac());
        for b in range.clone() {
            let h = &data.h[b * m * n..(b + 1) * m * n];
            let new_block = b == range.start
                || data.noise_var[b] != data.noise_var[b - 1]
                || *h != data.h[(b - 1) * m * n..b * m * n];
            for (o, &v) in yc.iter_mut().zip(&data.y[b * m..(b + 1) * m]) {
                *o = self.golden.quantize_y(v);
            }
            if new_block {
                for (o, &v) in hc.iter_mut().zip(h) {
                    *o = self.golden.quantize_h(v);
                }
                let bin = ir.bin_of(data.noise_var[b]);
                let (taps, _) = self.golden.run_block_codes(&hc, &yc, bin)?;
                blk = Some(Block::of(ir, &taps, bin));
            }
            for j in 0..n {
                let s: i128 = (0..m)
                    .map(|r| i128::from(hc[r * n + j]) * i128::from(yc[r]))
                    .sum();
                ws.z[j] = val(combine(&[(s, fh + fy)], ir.front.z), ir.front.z.frac());
            }
            let yys: i128 = yc.iter().map(|&v| i128::from(v) * i128::from(v)).sum();
            let yy = val(combine(&[(yys, 2 * fy)], ir.front.yy), ir.front.yy.frac());
            let tape = match tapes.as_deref_mut() {
                Some(t) => &mut t[b - range.start],
                None => &mut own,
            };
            tape.start();
            let blk = blk.as_ref().expect("set at the block start");
            forward(ir, &qam, blk, c, yy, &mut ws, tape);
            each(&mut ws, blk, b);
        }
        Ok(())
    }

    /// The state codes of the last layer of every frame (`frames × n`).
    pub fn forward_codes(&self, frames: &FrameBatch) -> Result<Vec<i64>, ModelError> {
        let data = F32Frames::from_frames(frames, 0..frames.frames)?;
        let data = data.as_batch();
        let c = self.consts();
        let k = c.len();
        let state = self.ir().state;
        let parts: Vec<Result<Vec<i64>, ModelError>> = chunks(&data)
            .into_par_iter()
            .map(|r| {
                let mut out = Vec::with_capacity(r.len() * data.n);
                self.run(&data, r, &c, None, |ws, _, _| {
                    out.extend(ws.output(k).iter().map(|&v| code_of(v, state)));
                })?;
                Ok(out)
            })
            .collect();
        let mut out = Vec::with_capacity(frames.frames * frames.n);
        for p in parts {
            out.extend(p?);
        }
        Ok(out)
    }
}

impl Detector for FakeQuantOamp {
    /// The IR's name with `-fq`.
    fn name(&self) -> String {
        format!("{}-fq", self.ir().name)
    }

    fn detect(&self, frames: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError> {
        frames.check_decisions(decisions)?;
        let codes = self.forward_codes(frames)?;
        for (d, &c) in decisions.iter_mut().zip(&codes) {
            *d = self.ir().decide(c);
        }
        Ok(())
    }
}

/// KAQ's MMD term: its weight ε, the per-layer loss and the frozen teacher.
#[derive(Debug, Clone)]
struct OampMmd {
    epsilon: f64,
    mmd: Mmd,
    teacher: GramNet,
}

/// An OAMP net under quantization-aware training at the fixed activation formats of a
/// fake-quant net's IR (its layer constants follow the trained parameters).
#[derive(Debug, Clone)]
pub struct QatOamp {
    fq: FakeQuantOamp,
    /// With [`QatOamp::freeze_constants`]: the parameters at which the constants' offsets are
    /// frozen.
    frozen: Option<Vec<f32>>,
    mmd: Option<OampMmd>,
}

impl QatOamp {
    /// The QAT net starting from the fake-quant net `fq`.
    pub fn new(fq: &FakeQuantOamp) -> Self {
        Self {
            fq: fq.clone(),
            frozen: None,
            mmd: None,
        }
    }

    /// Adds KAQ's MMD term with weight `config.epsilon` (0: none) and `config.kernel`'s
    /// bandwidths (median or multi; learnable is refused), the teacher the current float net.
    pub fn with_mmd(mut self, config: &KaqConfig) -> Result<Self, ModelError> {
        config.validate()?;
        let link = self.fq.net.link();
        let bandwidths = match config.kernel {
            KernelMode::Median => Bandwidths::Median,
            KernelMode::Multi => Bandwidths::multi_for(
                link.n(),
                link.modulation.es() / link.modulation.real_dims_per_symbol() as f64,
            )?,
            KernelMode::Learnable => {
                return Err(ModelError::InvalidParameter {
                    name: "kaq.kernel",
                    value: 0.0,
                    reason: "learnable bandwidths are not implemented for oamp (median or multi)",
                });
            }
        };
        self.mmd = (config.epsilon > 0.0).then(|| OampMmd {
            epsilon: config.epsilon,
            mmd: Mmd {
                bandwidths,
                estimator: Estimator::Biased,
            },
            teacher: self.fq.net.clone(),
        });
        Ok(self)
    }

    /// Freezes the constants' quantization offsets at the current parameters: from then on
    /// each constant is its float value plus that offset (for finite-difference tests).
    pub fn freeze_constants(&mut self) {
        self.frozen = Some(self.fq.net.params().to_vec());
    }

    /// The float net (the trained parameters).
    pub fn net(&self) -> &GramNet {
        &self.fq.net
    }

    /// The IR of the current parameters at the training formats.
    pub fn lower(&self) -> Result<OampIr, ModelError> {
        lower_oamp_with(&self.fq.net, &self.fq.opts, self.fq.ir())
    }

    /// The fake-quant net of the current parameters at the training formats.
    pub fn fake_quant(&self) -> Result<FakeQuantOamp, ModelError> {
        FakeQuantOamp::new(self.fq.net.clone(), self.lower()?, self.fq.opts.clone())
    }

    /// The surrogate's constants: each float constant through its quantizer, or with frozen
    /// offsets v + q(v₀) − v₀.
    fn consts(&self) -> Vec<LayerConsts> {
        let cw = self.fq.opts.scalar_bits;
        let off = self.fq.net.offsets();
        let layer = |p: &[f32], k: usize| {
            let at = |i: usize| f64::from(p[off[i] + k]);
            let (gamma, theta, phi, xi) = (at(0), at(1), at(2), at(3));
            [
                gamma,
                1.0 - 2.0 * theta,
                theta * theta,
                phi,
                phi * xi,
                theta,
                phi,
                xi,
            ]
        };
        let p = self.fq.net.params();
        (0..self.fq.ir().layers.len())
            .map(|k| {
                let v = layer(p, k);
                let v0 = self.frozen.as_ref().map(|z| layer(z, k));
                let kq = |i: usize| match &v0 {
                    None => coef_val(&coef(v[i], cw)),
                    Some(v0) => v[i] + coef_val(&coef(v0[i], cw)) - v0[i],
                };
                LayerConsts {
                    gamma: kq(0),
                    c0: kq(1),
                    c1: kq(2),
                    phi: kq(3),
                    phi_xi: kq(4),
                    theta_f: v[5],
                    phi_f: v[6],
                    xi_f: v[7],
                }
            })
            .collect()
    }

    fn slots(&self) -> [usize; 4] {
        let off = self.fq.net.offsets();
        [off[0], off[1], off[2], off[3]]
    }

    /// Σ over `range` of the squared error and of its gradient scaled by 2/`data.batch`, plus
    /// the gradient of `extra` (empty, or per sample ∂/∂x⁽ᵏ⁾ of every layer, `batch × K × n`).
    fn chunk_sums(
        &self,
        data: &TrainBatch<'_>,
        range: std::ops::Range<usize>,
        tapes: Option<&mut [OampTape]>,
        extra: &[f64],
    ) -> Result<(f64, Vec<f64>), ModelError> {
        let n = data.n;
        let c = self.consts();
        let k = c.len();
        let slots = self.slots();
        let scale = 2.0 / data.batch as f64;
        let mut acc = vec![0.0f64; self.fq.net.params().len()];
        let mut loss = 0.0f64;
        let mut dout = vec![0f64; n];
        self.fq.run(data, range, &c, tapes, |ws, blk, b| {
            let truth = &data.x[b * n..(b + 1) * n];
            for ((d, &o), &t) in dout.iter_mut().zip(ws.output(k)).zip(truth) {
                let diff = o - f64::from(t);
                loss += diff * diff;
                *d = scale * diff;
            }
            let kn = k * n;
            let ex = (!extra.is_empty()).then(|| &extra[b * kn..(b + 1) * kn]);
            backward(blk, &c, slots, &dout, ex, ws, &mut acc);
        })?;
        Ok((loss, acc))
    }

    /// ε Σ_k MMD² on `data` (0 without the term) and per sample its gradient with respect to
    /// every layer's output (`batch × K × n`; empty without the term).
    fn mmd_terms(
        &self,
        data: &TrainBatch<'_>,
        tapes: Option<&mut [OampTape]>,
    ) -> Result<(f64, Vec<f64>), ModelError> {
        let Some(m) = &self.mmd else {
            return Ok((0.0, Vec::new()));
        };
        let (b, n) = (data.batch, data.n);
        let c = self.consts();
        let k = c.len();
        let kn = k * n;
        let teacher = cg_layer_outputs(&m.teacher, data);
        let collect = |ws: &mut Workspace, out: &mut Vec<f32>| {
            for l in 1..=k {
                out.extend(ws.output(l).iter().map(|&v| v as f32));
            }
        };
        let student: Vec<f32> = match tapes {
            Some(t) => {
                let mut out = Vec::with_capacity(b * kn);
                self.fq
                    .run(data, 0..b, &c, Some(t), |ws, _, _| collect(ws, &mut out))?;
                out
            }
            None => {
                let parts: Vec<Result<Vec<f32>, ModelError>> = chunks(data)
                    .into_par_iter()
                    .map(|r| {
                        let mut out = Vec::with_capacity(r.len() * kn);
                        self.fq
                            .run(data, r, &c, None, |ws, _, _| collect(ws, &mut out))?;
                        Ok(out)
                    })
                    .collect();
                let mut out = Vec::with_capacity(b * kn);
                for p in parts {
                    out.extend(p?);
                }
                out
            }
        };
        let mut ws = MmdWorkspace::new(b, n)?;
        let (mut t, mut s, mut g) = (vec![0f32; b * n], vec![0f32; b * n], vec![0f32; b * n]);
        let mut extra = vec![0f64; b * kn];
        let mut total = 0.0f64;
        for l in 0..k {
            for i in 0..b {
                let at = i * kn + l * n;
                t[i * n..(i + 1) * n].copy_from_slice(&teacher[at..at + n]);
                s[i * n..(i + 1) * n].copy_from_slice(&student[at..at + n]);
            }
            total += m.mmd.eval(&mut ws, &t, &s, Some(&mut g), None)?.loss;
            for i in 0..b {
                let at = i * kn + l * n;
                for (e, &v) in extra[at..at + n].iter_mut().zip(&g[i * n..(i + 1) * n]) {
                    *e = m.epsilon * f64::from(v);
                }
            }
        }
        Ok((m.epsilon * total, extra))
    }

    /// The surrogate's loss on `data` and its gradient, every vector recording into (or, when
    /// the tapes replay, replaying from) its tape (one per vector).
    pub fn loss_and_grad_taped(
        &self,
        data: &TrainBatch<'_>,
        tapes: &mut [OampTape],
    ) -> Result<(f64, Vec<f64>), ModelError> {
        let (mmd, extra) = self.mmd_terms(data, Some(&mut *tapes))?;
        let (loss, grad) = self.chunk_sums(data, 0..data.batch, Some(tapes), &extra)?;
        Ok((loss / data.batch as f64 + mmd, grad))
    }
}

fn chunks(data: &TrainBatch<'_>) -> Vec<std::ops::Range<usize>> {
    let mn = data.m * data.n;
    let starts = |b: usize| {
        b == 0
            || data.noise_var[b] != data.noise_var[b - 1]
            || data.h[b * mn..(b + 1) * mn] != data.h[(b - 1) * mn..b * mn]
    };
    let mut out = Vec::new();
    let mut start = 0;
    for b in 1..=data.batch {
        if b == data.batch || (b - start >= CHUNK && starts(b)) {
            if b > start {
                out.push(start..b);
            }
            start = b;
        }
    }
    out
}

impl crate::train::Trainable for QatOamp {
    fn params(&self) -> &[f32] {
        self.fq.net.params()
    }
    fn params_mut(&mut self) -> &mut [f32] {
        self.fq.net.params_mut()
    }
    fn param_names(&self) -> Vec<String> {
        self.fq.net.param_names()
    }
    fn loss_and_grad(&self, data: &TrainBatch<'_>, grad: &mut [f32]) -> f32 {
        if data.batch == 0 {
            grad.fill(0.0);
            return 0.0;
        }
        let Ok((mmd, extra)) = self.mmd_terms(data, None) else {
            // A non-finite activation: the trainer reports the NaN as divergence.
            grad.fill(0.0);
            return f32::NAN;
        };
        let results: Result<Vec<(f64, Vec<f64>)>, ModelError> = chunks(data)
            .into_par_iter()
            .map(|r| self.chunk_sums(data, r, None, &extra))
            .collect();
        match results {
            Ok(results) => (f64::from(reduce_chunks(&results, grad, data.batch)) + mmd) as f32,
            Err(_) => {
                grad.fill(0.0);
                f32::NAN
            }
        }
    }
    fn project(&mut self) {
        self.fq.net.project();
    }
}

impl crate::train::Forward for QatOamp {
    fn forward(&self, data: &TrainBatch<'_>, out: &mut [f32]) {
        let n = data.n;
        let c = self.consts();
        let k = c.len();
        let done = self.fq.run(data, 0..data.batch, &c, None, |ws, _, b| {
            for (o, &v) in out[b * n..(b + 1) * n].iter_mut().zip(ws.output(k)) {
                *o = v as f32;
            }
        });
        if done.is_err() {
            out.fill(f32::NAN);
        }
    }
}

/// A valid training config whose net and link are the quantized net's.
fn check_config(fq: &FakeQuantOamp, config: &GramTrainConfig) -> Result<(), TrainError> {
    config.validate()?;
    if &config.net != fq.net().config() || &config.link != fq.net().link() {
        return Err(TrainError::Config {
            field: "net",
            value: format!("{:?}", config.net),
            reason: "the training config's net and link must be the quantized net's".into(),
        });
    }
    Ok(())
}

/// QAT-MSE of a fake-quant OAMP net: the shared epoch loop on the data of `config` (its `net`
/// must be `fq`'s), the activation formats of `fq`'s IR fixed, the MSE loss through the STE
/// surrogate.
pub fn train_qat_mse_oamp(
    fq: &FakeQuantOamp,
    config: &GramTrainConfig,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(QatOamp, Vec<EpochRecord>), TrainError> {
    check_config(fq, config)?;
    let run = config.run_config();
    let data = RunData::generate(&run)?;
    run_epochs(&run, QatOamp::new(fq), &data, progress)
}

/// KAQ fine-tuning of a fake-quant OAMP net at its formats: [`train_qat_mse_oamp`] with the
/// loss MSE + ε Σ_k MMD² of `kaq` (the teacher `fq`'s float net, frozen).
pub fn train_kaq_oamp(
    fq: &FakeQuantOamp,
    config: &GramTrainConfig,
    kaq: &KaqConfig,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(QatOamp, Vec<EpochRecord>), TrainError> {
    check_config(fq, config)?;
    let student = QatOamp::new(fq).with_mmd(kaq)?;
    let run = config.run_config();
    let data = RunData::generate(&run)?;
    run_epochs(&run, student, &data, progress)
}
