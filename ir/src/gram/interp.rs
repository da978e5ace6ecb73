//! The integer golden model of an IR v2 cg document (docs/ir.md §10.3): the per-channel-block
//! stage once per block, then the layers on every vector of the block, all buffers allocated
//! once per block batch (none per element or vector). Taps expose every stage's codes.

use rayon::prelude::*;

#[cfg(doc)]
use super::combine;
use super::{GramIr, GramLayer};
use crate::document::IrError;
use crate::fixed::{QFormat, max_code};
use crate::interp::Received;

/// The per-channel-block stage's codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockTaps {
    /// G, `n × n` row-major.
    pub g: Vec<i64>,
    /// tr G = Σ G_ii (at G's frac, exact).
    pub trace: i64,
    /// 1/tr G.
    pub inv_trace: i64,
    /// D_i = 1/G_ii.
    pub diag_inv: Vec<i64>,
}

/// One layer's codes for one vector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerTaps {
    /// e = z − Gx.
    pub e: Vec<i64>,
    /// v² (floored).
    pub v2: i64,
    /// p_l of every inner step (`L × n`).
    pub p: Vec<i64>,
    /// d_{l+1} of every inner step (`L × n`).
    pub d: Vec<i64>,
    /// The denoiser input r.
    pub r: Vec<i64>,
    /// τ².
    pub tau2: i64,
    /// The denoiser bucket.
    pub bucket: usize,
    /// x⁽ᵏ⁺¹⁾.
    pub x: Vec<i64>,
}

/// One vector's codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VectorTaps {
    /// z = H̃ᵀỹ.
    pub z: Vec<i64>,
    /// ‖ỹ‖².
    pub yy: i64,
    /// Every layer.
    pub layers: Vec<LayerTaps>,
    /// x⁽ᴷ⁾.
    pub output: Vec<i64>,
    /// Hard decisions (alphabet levels).
    pub levels: Vec<i32>,
}

/// The integer golden model of a validated [`GramIr`].
#[derive(Debug, Clone)]
pub struct GramInterpreter {
    ir: GramIr,
    /// One plan per distinct combination of the layers' per-bin formats (one without shifts).
    plans: Vec<Plan>,
    /// Per SNR bin: its plan in `plans` (empty without per-bin shifts: plan 0 for every bin).
    plan_of_bin: Vec<usize>,
    kernels: Kernels,
    /// The distinct right shifts of the layers' narrow inner copies of G (`g_inner`).
    inner_shifts: Vec<u32>,
    /// Per layer: its inner G's index in `inner_shifts` (None: the full G).
    inner_of_layer: Vec<Option<usize>>,
    h_step: f32,
    h_qp: f32,
    y_step: f32,
    y_qp: f32,
}

/// Scratch of one block's run: the block stage's codes (G full, symmetric, in i64 and, when
/// the 16-bit kernels apply, in i16; H̃ᵀ likewise) and every per-vector buffer.
struct Work {
    g: Vec<i64>,
    g16: Vec<i16>,
    /// The narrow copies of G (one per distinct `g_inner`), in i64 and i16.
    gn: Vec<Vec<i64>>,
    gn16: Vec<Vec<i16>>,
    ht: Vec<i64>,
    ht16: Vec<i16>,
    diag_inv: Vec<i64>,
    z: Vec<i64>,
    x: Vec<i64>,
    /// G·x of the current x, exact (kept up to date column by column when few x_j change).
    gx: Vec<i64>,
    e: Vec<i64>,
    rho: Vec<i64>,
    p: Vec<i64>,
    d: Vec<i64>,
    tmp: Vec<i64>,
    r: Vec<i64>,
    v16: Vec<i16>,
}

impl Work {
    fn new(m: usize, n: usize) -> Self {
        let v = || vec![0i64; n];
        Self {
            g: vec![0; n * n],
            g16: vec![0; n * n],
            gn: Vec::new(),
            gn16: Vec::new(),
            ht: vec![0; n * m],
            ht16: vec![0; n * m],
            diag_inv: v(),
            z: v(),
            x: v(),
            gx: v(),
            e: v(),
            rho: v(),
            p: v(),
            d: v(),
            tmp: v(),
            r: v(),
            v16: vec![0; m.max(n)],
        }
    }
}

/// Whether every sum of `len` products of codes bounded by `a` and `b` (each at most
/// 2^15 in magnitude, so they are i16 values) stays below 2^31: then the products and every
/// partial sum are exact in i32, in any order, and the 16-bit kernel computes the i64 sum.
fn narrow(len: usize, a: i128, b: i128) -> bool {
    a <= 1 << 15 && b <= 1 << 15 && (len as i128) * a * b < 1 << 31
}

/// `out_i = Σ_j a[i·len + j]·v_j` over the rows of `a` (`len = v.len()`), in i64.
#[inline]
fn matvec(a: &[i64], v: &[i64], out: &mut [i64]) {
    let len = v.len();
    for (o, row) in out.iter_mut().zip(a.chunks_exact(len)) {
        *o = row.iter().zip(v).map(|(x, y)| x * y).sum();
    }
}

/// Σ a_j·b_j of 16-bit codes in i32 (exact when [`narrow`] holds). Blocks of 16 fixed-size
/// products, summed per block, compile to full-width multiply-add instructions.
#[inline]
fn dot16(a: &[i16], b: &[i16]) -> i32 {
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let mut acc: i32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum();
    for (x, y) in ac.zip(bc) {
        let (x, y): (&[i16; 16], &[i16; 16]) = (x.try_into().unwrap(), y.try_into().unwrap());
        let mut s = 0i32;
        for k in 0..16 {
            s += i32::from(x[k]) * i32::from(y[k]);
        }
        acc += s;
    }
    acc
}

/// [`matvec`] of 16-bit codes with i32 sums (exact when [`narrow`] holds, which the caller
/// checked once per IR); `v16` is scratch for the operand.
#[inline]
fn matvec16(a: &[i16], v: &[i64], v16: &mut [i16], out: &mut [i64]) {
    let len = v.len();
    let v16 = &mut v16[..len];
    for (s, &c) in v16.iter_mut().zip(v) {
        *s = c as i16;
    }
    for (o, row) in out.iter_mut().zip(a.chunks_exact(len)) {
        *o = i64::from(dot16(row, v16));
    }
}

#[inline]
fn dot(a: &[i64], b: &[i64]) -> i64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Which products run on the 16-bit kernel ([`narrow`]), decided once from the formats.
#[derive(Debug, Clone, Default)]
struct Kernels {
    /// G = H̃ᵀH̃.
    g: bool,
    /// z = H̃ᵀỹ.
    z: bool,
    /// G stored in i16 (its width is at most 16).
    g16: bool,
    /// Per layer: G·x.
    gx: Vec<bool>,
    /// Per layer: G·d.
    gd: Vec<bool>,
}

impl Kernels {
    fn new(ir: &GramIr) -> Self {
        let (m, n) = (ir.m, ir.n);
        let full = |w: u32| 1i128 << (w - 1);
        let q = |f: QFormat| i128::from(max_code(f.width()));
        let (hb, yb) = (full(ir.inputs.h.width()), full(ir.inputs.y.width()));
        let g16 = ir.block.g.width() <= 16;
        let gq = q(ir.block.g);
        Self {
            g: narrow(m, hb, hb),
            z: narrow(m, hb, yb),
            g16,
            gx: ir
                .layers
                .iter()
                .map(|_| g16 && narrow(n, gq, q(ir.state)))
                .collect(),
            gd: ir
                .layers
                .iter()
                .map(|l| {
                    let gi = l.inner_g(ir.block.g);
                    gi.width() <= 16 && narrow(n, q(gi), q(l.formats.d))
                })
                .collect(),
        }
    }
}

/// One `combine` (docs/ir.md §10.3) precomputed from its terms' fracs and the output format:
/// term i is shifted left by `sh[i]` onto the common frac F, the sum is rounded half-up down
/// by `down` bits and saturated symmetrically to ±`max`. The interval analysis keeps every
/// aligned sum below 2^62 ([`GramIr::bounds`]), so the i64 arithmetic is exact: it computes
/// [`combine`] bit for bit without i128 (test builds check every operation for overflow).
#[derive(Debug, Clone, Copy)]
struct Comb<const N: usize> {
    sh: [u32; N],
    down: u32,
    /// 2^(down − 1), or 0 when `down` = 0 (no rounding).
    half: i64,
    max: i64,
}

impl<const N: usize> Comb<N> {
    fn new(fracs: [i32; N], out: QFormat) -> Self {
        let f = fracs.iter().copied().fold(out.frac(), i32::max);
        let down = (f - out.frac()) as u32;
        Self {
            sh: fracs.map(|fr| (f - fr) as u32),
            down,
            half: if down == 0 { 0 } else { 1i64 << (down - 1) },
            max: max_code(out.width()),
        }
    }

    #[inline(always)]
    fn apply(&self, terms: [i64; N]) -> i64 {
        let mut s = 0i64;
        for (v, &sh) in terms.iter().zip(&self.sh) {
            s += v << sh;
        }
        self.finish(s)
    }

    /// Rounds and saturates an aligned sum.
    #[inline(always)]
    fn finish(&self, s: i64) -> i64 {
        ((s + self.half) >> self.down).clamp(-self.max, self.max)
    }

    /// `c·2^sh[i]`: a constant coefficient of term `i` with the term's alignment folded in,
    /// so that `(c·v)·2^sh[i] = (c·2^sh[i])·v` costs no shift per element. Exact: the
    /// interval analysis bounds |c|·Q·2^sh[i] (Q ≥ 1) below 2^62.
    #[inline(always)]
    fn fold(&self, i: usize, c: i64) -> i64 {
        c << self.sh[i]
    }
}

/// One inner step's combines.
#[derive(Debug, Clone, Copy)]
struct StepPlan {
    p: Comb<2>,
    d: Comb<2>,
}

/// One layer's combines, from [`GramIr`] once at construction.
#[derive(Debug, Clone)]
struct LayerPlan {
    e: Comb<2>,
    /// The shifts of W's four terms onto its frac (W is not rounded).
    w_sh: [u32; 4],
    v2: Comb<1>,
    steps: Vec<StepPlan>,
    rho: Comb<3>,
    r: Comb<2>,
    tau2: Comb<2>,
}

/// Every combine of the IR, precomputed.
#[derive(Debug, Clone)]
struct Plan {
    g: Comb<1>,
    z: Comb<1>,
    yy: Comb<1>,
    layers: Vec<LayerPlan>,
}

impl Plan {
    /// The plan of SNR bin `bin` (its layers' formats shifted by `bin_shift`).
    fn new(ir: &GramIr, bin: usize) -> Self {
        let (fh, fy) = (ir.inputs.h.frac(), ir.inputs.y.frac());
        let fr = &ir.front;
        let (gf, xf, zf, yyf) = (
            ir.block.g.frac(),
            ir.state.frac(),
            fr.z.frac(),
            fr.yy.frac(),
        );
        let it_f = ir.block.inv_trace.format.frac();
        let df = ir.block.diag_inv.format.frac();
        let layers = ir
            .layers
            .iter()
            .map(|l| {
                let f = &l.formats_at(bin);
                let wfr = [yyf, xf + zf, xf + f.e.frac(), yyf];
                let wf = wfr.iter().copied().fold(f.v2.frac(), i32::max);
                LayerPlan {
                    e: Comb::new([zf, gf + xf], f.e),
                    w_sh: wfr.map(|x| (wf - x) as u32),
                    v2: Comb::new([wf + it_f], f.v2),
                    steps: l
                        .steps
                        .iter()
                        .map(|s| StepPlan {
                            p: Comb::new([df + f.e.frac(), s.beta.frac + f.p.frac()], f.p),
                            d: Comb::new([f.d.frac(), s.omega.frac + f.p.frac()], f.d),
                        })
                        .collect(),
                    rho: Comb::new(
                        [
                            f.e.frac(),
                            l.inner_g(ir.block.g).frac() + f.d.frac(),
                            l.delta.frac + f.d.frac(),
                        ],
                        f.e,
                    ),
                    r: Comb::new([xf, l.gamma.frac + f.d.frac()], f.r),
                    tau2: Comb::new([l.tv.frac + f.v2.frac(), l.ts.frac], f.tau2),
                }
            })
            .collect();
        Self {
            g: Comb::new([2 * fh], ir.block.g),
            z: Comb::new([fh + fy], fr.z),
            yy: Comb::new([2 * fy], fr.yy),
            layers,
        }
    }
}

fn front_end(v: f32, step: f32, qp: f32) -> i64 {
    (v / step + 0.5).floor().clamp(-qp, qp) as i64
}

impl GramInterpreter {
    /// Validates `ir` and builds its golden model.
    pub fn new(ir: GramIr) -> Result<Self, IrError> {
        ir.validate()?;
        let step = |f: QFormat| 2f32.powi(-f.frac());
        let (plans, plan_of_bin) = if ir.layers.iter().all(|l| l.bin_shift.is_none()) {
            (vec![Plan::new(&ir, 0)], Vec::new())
        } else {
            let mut keys: Vec<Vec<[i32; 3]>> = Vec::new();
            let mut plans = Vec::new();
            let mut of_bin = Vec::with_capacity(ir.snr_bins.count);
            for bin in 0..ir.snr_bins.count {
                let key: Vec<[i32; 3]> = ir
                    .layers
                    .iter()
                    .map(|l| {
                        let f = l.formats_at(bin);
                        [f.e.frac(), f.p.frac(), f.d.frac()]
                    })
                    .collect();
                let at = keys.iter().position(|k| *k == key).unwrap_or_else(|| {
                    keys.push(key);
                    plans.push(Plan::new(&ir, bin));
                    plans.len() - 1
                });
                of_bin.push(at);
            }
            (plans, of_bin)
        };
        let mut inner_shifts = Vec::new();
        let inner_of_layer = ir
            .layers
            .iter()
            .map(|l| match l.inner_g_shift(ir.block.g) {
                0 => None,
                s => Some(
                    inner_shifts
                        .iter()
                        .position(|&t| t == s)
                        .unwrap_or_else(|| {
                            inner_shifts.push(s);
                            inner_shifts.len() - 1
                        }),
                ),
            })
            .collect();
        Ok(Self {
            plans,
            plan_of_bin,
            kernels: Kernels::new(&ir),
            inner_shifts,
            inner_of_layer,
            h_step: step(ir.inputs.h),
            h_qp: max_code(ir.inputs.h.width()) as f32,
            y_step: step(ir.inputs.y),
            y_qp: max_code(ir.inputs.y.width()) as f32,
            ir,
        })
    }

    /// The IR.
    pub fn ir(&self) -> &GramIr {
        &self.ir
    }

    /// The front end's codes of one real value of H̃ (`h`) or ỹ.
    pub fn quantize_h(&self, v: f32) -> i64 {
        front_end(v, self.h_step, self.h_qp)
    }

    /// The front end's code of one real value of ỹ.
    pub fn quantize_y(&self, v: f32) -> i64 {
        front_end(v, self.y_step, self.y_qp)
    }

    fn check_codes(&self, h: &[i64], ys: &[i64], bin: usize) -> Result<(), IrError> {
        let (m, n) = (self.ir.m, self.ir.n);
        if h.len() != m * n {
            return Err(IrError::invalid(
                "h",
                format!("{} codes given, M·N = {} needed", h.len(), m * n),
            ));
        }
        if !ys.len().is_multiple_of(m) {
            return Err(IrError::invalid(
                "y",
                format!("{} codes is not a multiple of M = {m}", ys.len()),
            ));
        }
        if bin >= self.ir.snr_bins.count {
            return Err(IrError::invalid(
                "bin",
                format!("{bin} is outside 0..{}", self.ir.snr_bins.count),
            ));
        }
        for (field, codes, w) in [
            ("h", h, self.ir.inputs.h.width()),
            ("y", ys, self.ir.inputs.y.width()),
        ] {
            let (lo, hi) = (-(1i64 << (w - 1)), (1i64 << (w - 1)) - 1);
            if let Some(i) = codes.iter().position(|c| !(lo..=hi).contains(c)) {
                return Err(IrError::invalid(
                    format!("{field}[{i}]"),
                    format!("{} is not a {w}-bit code", codes[i]),
                ));
            }
        }
        Ok(())
    }

    /// The block stage of channel codes `h` (docs/ir.md §10.3), into `w`: H̃ᵀ, G (in full),
    /// tr G, 1/tr G and D.
    fn block(&self, h: &[i64], w: &mut Work) -> (i64, i64) {
        let ir = &self.ir;
        let (m, n) = (ir.m, ir.n);
        let b = &ir.block;
        let k = &self.kernels;
        for (r, row) in h.chunks_exact(n).enumerate() {
            for (j, &c) in row.iter().enumerate() {
                w.ht[j * m + r] = c;
                w.ht16[j * m + r] = c as i16;
            }
        }
        for i in 0..n {
            for j in i..n {
                let acc = if k.g {
                    i64::from(dot16(
                        &w.ht16[i * m..(i + 1) * m],
                        &w.ht16[j * m..(j + 1) * m],
                    ))
                } else {
                    dot(&w.ht[i * m..(i + 1) * m], &w.ht[j * m..(j + 1) * m])
                };
                let v = self.plans[0].g.apply([acc]);
                w.g[i * n + j] = v;
                w.g[j * n + i] = v;
            }
        }
        if k.g16 {
            for (s, &c) in w.g16.iter_mut().zip(&w.g) {
                *s = c as i16;
            }
        }
        let gw = b.g.width();
        w.gn.resize(self.inner_shifts.len(), vec![0; n * n]);
        w.gn16.resize(self.inner_shifts.len(), vec![0; n * n]);
        for ((&s, gn), gn16) in self.inner_shifts.iter().zip(&mut w.gn).zip(&mut w.gn16) {
            for ((o, o16), &c) in gn.iter_mut().zip(gn16.iter_mut()).zip(&w.g) {
                *o = super::narrow_g(c, s, gw - s);
                *o16 = *o as i16;
            }
        }
        let trace: i64 = (0..n).map(|i| w.g[i * n + i]).sum();
        let inv_trace = b.inv_trace.op.apply(1, trace);
        for i in 0..n {
            w.diag_inv[i] = b.diag_inv.op.apply(1, w.g[i * n + i]);
        }
        (trace, inv_trace)
    }

    /// One vector (docs/ir.md §10.3) of the block in `w`; taps filled when given. x⁽ᴷ⁾ is left
    /// in `w.x`.
    fn vector(
        &self,
        y: &[i64],
        bin: usize,
        inv_trace: i64,
        w: &mut Work,
        mut taps: Option<&mut VectorTaps>,
    ) {
        let ir = &self.ir;
        let plan = &self.plans[self.plan_of_bin.get(bin).copied().unwrap_or(0)];
        let kern = &self.kernels;
        let (m, n) = (ir.m, ir.n);
        let fr = &ir.front;
        if kern.z {
            matvec16(&w.ht16, y, &mut w.v16, &mut w.tmp);
        } else {
            matvec(&w.ht, y, &mut w.tmp);
        }
        for (z, &acc) in w.z.iter_mut().zip(&w.tmp) {
            *z = plan.z.apply([acc]);
        }
        debug_assert_eq!(y.len(), m);
        let yy = plan.yy.apply([dot(y, y)]);
        if let Some(t) = taps.as_deref_mut() {
            t.z = w.z.clone();
            t.yy = yy;
            t.layers.clear();
        }
        w.x.fill(0);
        // G·x of x = 0.
        w.gx.fill(0);
        let mut gx_valid = true;
        let half = 1i64 << (ir.layers[0].formats.r.width() - 1);
        let noise = fr.noise[bin];
        let thresholds = &ir.denoiser.thresholds;
        let last = ir.layers.len() - 1;
        for (k, (layer, lp)) in ir.layers.iter().zip(&plan.layers).enumerate() {
            let GramLayer {
                v2_floor,
                delta,
                gamma,
                tv,
                ts,
                steps,
                ..
            } = layer;
            if !gx_valid {
                if kern.gx[k] {
                    matvec16(&w.g16, &w.x, &mut w.v16, &mut w.gx);
                } else {
                    matvec(&w.g, &w.x, &mut w.gx);
                }
                gx_valid = true;
            }
            for ((e, &z), &gx) in w.e.iter_mut().zip(&w.z).zip(&w.gx) {
                *e = lp.e.apply([z, -gx]);
            }
            let sh = &lp.w_sh;
            let wsum = (yy << sh[0])
                - (dot(&w.x, &w.z) << sh[1])
                - (dot(&w.x, &w.e) << sh[2])
                - (noise << sh[3]);
            let v2 = lp.v2.apply([wsum * inv_trace]).max(*v2_floor);
            w.rho.copy_from_slice(&w.e);
            w.d.fill(0);
            w.p.fill(0);
            let mut tap_p = Vec::new();
            let mut tap_d = Vec::new();
            let dl = lp.rho.fold(2, delta.codes[bin]);
            let gamma = lp.r.fold(1, gamma.code);
            let (rho_sh, r_sh) = (lp.rho.sh, lp.r.sh[0]);
            for (l, (s, sp)) in steps.iter().zip(&lp.steps).enumerate() {
                let (beta, omega) = (sp.p.fold(1, s.beta.code), sp.d.fold(1, s.omega.code));
                let (p_sh, d_sh) = (sp.p.sh[0], sp.d.sh[0]);
                for (((p, d), &rho), &di) in
                    w.p.iter_mut()
                        .zip(w.d.iter_mut())
                        .zip(&w.rho)
                        .zip(&w.diag_inv)
                {
                    *p = sp.p.finish(((di * rho) << p_sh) + beta * *p);
                    *d = sp.d.finish((*d << d_sh) + omega * *p);
                }
                if taps.is_some() {
                    tap_p.extend_from_slice(&w.p);
                    tap_d.extend_from_slice(&w.d);
                }
                if l + 1 < steps.len() {
                    let (g, g16) = match self.inner_of_layer[k] {
                        None => (&w.g, &w.g16),
                        Some(i) => (&w.gn[i], &w.gn16[i]),
                    };
                    if kern.gd[k] {
                        matvec16(g16, &w.d, &mut w.v16, &mut w.tmp);
                    } else {
                        matvec(g, &w.d, &mut w.tmp);
                    }
                    for (((rho, &e), &gd), &d) in w.rho.iter_mut().zip(&w.e).zip(&w.tmp).zip(&w.d) {
                        *rho = lp.rho.finish((e << rho_sh[0]) - (gd << rho_sh[1]) - dl * d);
                    }
                }
            }
            for ((r, &x), &d) in w.r.iter_mut().zip(&w.x).zip(&w.d) {
                *r = lp.r.finish((x << r_sh) + gamma * d);
            }
            let tau2 = lp.tau2.apply([tv.code * v2, ts.codes[bin]]);
            // #{j : τ² ≥ thresholds[j]} of the ascending thresholds.
            let bucket = thresholds.partition_point(|&t| t <= tau2);
            let row = &ir.denoiser.table[bucket];
            // The new x; G·x follows it column by column (G is symmetric: column j is row j)
            // while few entries change, else it is recomputed at the next layer.
            let mut changed = 0;
            for j in 0..n {
                let new = row[(w.r[j] + half) as usize];
                let old = w.x[j];
                if new != old {
                    w.x[j] = new;
                    if k < last && gx_valid {
                        changed += 1;
                        if changed * 4 > n {
                            gx_valid = false;
                        } else {
                            let dj = new - old;
                            for (g, &c) in w.gx.iter_mut().zip(&w.g[j * n..(j + 1) * n]) {
                                *g += c * dj;
                            }
                        }
                    }
                }
            }
            if let Some(t) = taps.as_deref_mut() {
                t.layers.push(LayerTaps {
                    e: w.e.clone(),
                    v2,
                    p: tap_p,
                    d: tap_d,
                    r: w.r.clone(),
                    tau2,
                    bucket,
                    x: w.x.clone(),
                });
            }
        }
        if let Some(t) = taps {
            t.output = w.x.clone();
            t.levels = w.x.iter().map(|&c| ir.decide(c)).collect();
        }
    }

    /// Runs one channel block given as codes: H̃ (row-major), the T vectors ỹ (`T × M`) and the
    /// SNR bin; returns the block's taps and every vector's taps.
    pub fn run_block_codes(
        &self,
        h: &[i64],
        ys: &[i64],
        bin: usize,
    ) -> Result<(BlockTaps, Vec<VectorTaps>), IrError> {
        self.check_codes(h, ys, bin)?;
        let mut w = Work::new(self.ir.m, self.ir.n);
        let (trace, inv_trace) = self.block(h, &mut w);
        let block = BlockTaps {
            g: w.g.clone(),
            trace,
            inv_trace,
            diag_inv: w.diag_inv.clone(),
        };
        let mut out = Vec::new();
        for y in ys.chunks(self.ir.m) {
            let mut t = VectorTaps::default();
            self.vector(y, bin, inv_trace, &mut w, Some(&mut t));
            out.push(t);
        }
        Ok((block, out))
    }

    /// Quantizes every frame with the front end, cuts the frames into channel blocks (runs of
    /// consecutive frames with equal H̃ and σ²), runs each block's stage once and its vectors,
    /// and writes the hard decisions (`frames × n` alphabet levels). Parallel over whole blocks.
    pub fn detect_received(
        &self,
        frames: &Received<'_>,
        decisions: &mut [i32],
    ) -> Result<(), IrError> {
        let (m, n) = (self.ir.m, self.ir.n);
        if frames.m != m || frames.n != n || frames.modulation != self.ir.modulation {
            return Err(IrError::Shape(format!(
                "frames are {}×{} {}, the IR needs {m}×{n} {}",
                frames.m, frames.n, frames.modulation, self.ir.modulation
            )));
        }
        let f = frames.frames;
        if decisions.len() != f * n
            || frames.h.len() < f * m * n
            || frames.y.len() < f * m
            || frames.noise_var.len() < f
        {
            return Err(IrError::Shape(
                "frame batch or decision buffer of the wrong length".into(),
            ));
        }
        // A new block: σ² differs, or H̃ differs in any bit (a split between frames with equal
        // codes changes no output).
        let starts = |b: usize| frames.starts_block(b);
        // Chunks of whole blocks, at least 32 frames each.
        let mut cuts = vec![0];
        for b in 1..f {
            if b - cuts[cuts.len() - 1] >= 32 && starts(b) {
                cuts.push(b);
            }
        }
        cuts.push(f);
        let mut parts: Vec<(usize, &mut [i32])> = Vec::new();
        let mut rest = decisions;
        for c in cuts.windows(2) {
            let (head, tail) = rest.split_at_mut((c[1] - c[0]) * n);
            parts.push((c[0], head));
            rest = tail;
        }
        parts.into_par_iter().for_each(|(first, out)| {
            let mut w = Work::new(m, n);
            let mut hc = vec![0i64; m * n];
            let mut yc = vec![0i64; m];
            let mut inv_trace = 0;
            let mut bin = 0;
            for (k, dec) in out.chunks_mut(n).enumerate() {
                let b = first + k;
                if k == 0 || starts(b) {
                    for (c, &v) in hc.iter_mut().zip(&frames.h[b * m * n..(b + 1) * m * n]) {
                        *c = front_end(v as f32, self.h_step, self.h_qp);
                    }
                    bin = self.ir.bin_of(frames.noise_var[b] as f32);
                    inv_trace = self.block(&hc, &mut w).1;
                }
                for (c, &v) in yc.iter_mut().zip(&frames.y[b * m..(b + 1) * m]) {
                    *c = front_end(v as f32, self.y_step, self.y_qp);
                }
                self.vector(&yc, bin, inv_trace, &mut w, None);
                for (d, &c) in dec.iter_mut().zip(&w.x) {
                    *d = self.ir.decide(c);
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::combine;
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The precomputed i64 combine equals the i128 reference `combine` whenever the
        /// aligned sum stays below 2^62 (what the interval analysis guarantees).
        #[test]
        fn comb_equals_combine(
            vals in prop::array::uniform3(-(1i64 << 40)..(1i64 << 40)),
            fracs in prop::array::uniform3(-20i32..40),
            width in 2u32..=32,
            out_frac in -20i32..40,
        ) {
            let out = QFormat::signed(width, out_frac).unwrap();
            let f = fracs.iter().copied().fold(out_frac, i32::max);
            let aligned: i128 = vals
                .iter()
                .zip(&fracs)
                .map(|(&v, &fr)| i128::from(v) << (f - fr))
                .map(i128::abs)
                .sum();
            prop_assume!(aligned < 1i128 << 62);
            let terms: Vec<(i128, i32)> =
                vals.iter().zip(&fracs).map(|(&v, &fr)| (i128::from(v), fr)).collect();
            prop_assert_eq!(Comb::new(fracs, out).apply(vals), combine(&terms, out));
            prop_assert_eq!(
                Comb::new([fracs[0]], out).apply([vals[0]]),
                combine(&terms[..1], out)
            );
        }
    }
}
