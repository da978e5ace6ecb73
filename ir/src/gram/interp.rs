//! The integer golden model of an IR v2 cg document (docs/ir.md §10.3): the per-channel-block
//! stage once per block, then the layers on every vector of the block, all buffers allocated
//! once per block batch (none per element or vector). Taps expose every stage's codes.

use rayon::prelude::*;

#[cfg(doc)]
use super::combine;
use super::{GramIr, GramLayer};
use crate::document::IrError;
use crate::fixed::{QFormat, max_code};
use crate::interp::{Received, front_end};

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
    /// W, the numerator of v² at F_W (docs/ir.md §10.3).
    pub w: i64,
    /// v² before its floor.
    pub v2_unfloored: i64,
    /// v² (floored).
    pub v2: i64,
    /// p_l of every inner step (`L × n`).
    pub p: Vec<i64>,
    /// d_{l+1} of every inner step (`L × n`).
    pub d: Vec<i64>,
    /// ρ after every inner step but the last (`(L − 1) × n`).
    pub rho: Vec<i64>,
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
    /// Every plan's per-vector codes fit i32 lanes ([`Plan::check32`]).
    lanes32: bool,
    /// The distinct right shifts of the layers' narrow inner copies of G (`g_inner`).
    inner_shifts: Vec<u32>,
    /// Per layer: its inner G's index in `inner_shifts` (None: the full G).
    inner_of_layer: Vec<Option<usize>>,
    h_step: f32,
    h_qp: f32,
    y_step: f32,
    y_qp: f32,
}

/// Scratch of one block's run: the block stage's codes (G full, symmetric, in i64, in the lane
/// type `L` and, when the 16-bit kernels apply, in i16; H̃ᵀ likewise) and every per-vector
/// buffer, in `L`.
struct Work<L> {
    g: Vec<i64>,
    /// G in `L` (the column updates of G·x).
    gl: Vec<L>,
    g16: Vec<i16>,
    /// The narrow copies of G (one per distinct `g_inner`), in i64 and i16.
    gn: Vec<Vec<i64>>,
    gn16: Vec<Vec<i16>>,
    ht: Vec<i64>,
    ht16: Vec<i16>,
    diag_inv: Vec<L>,
    /// H̃ᵀỹ, exact.
    acc: Vec<i64>,
    z: Vec<L>,
    x: Vec<L>,
    /// G·x of the current x, exact (kept up to date column by column when few x_j change).
    gx: Vec<L>,
    e: Vec<L>,
    rho: Vec<L>,
    p: Vec<L>,
    d: Vec<L>,
    tmp: Vec<L>,
    r: Vec<L>,
    v16: Vec<i16>,
    /// The indices of the changed x_j.
    cols: Vec<usize>,
}

impl<L: Lane> Work<L> {
    fn new(m: usize, n: usize) -> Self {
        let v = || vec![L::default(); n];
        Self {
            g: vec![0; n * n],
            gl: vec![L::default(); n * n],
            g16: vec![0; n * n],
            gn: Vec::new(),
            gn16: Vec::new(),
            ht: vec![0; n * m],
            ht16: vec![0; n * m],
            diag_inv: v(),
            acc: vec![0; n],
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
            cols: vec![0; n],
        }
    }
}

/// The integer type of the per-vector codes and sums: i64 always exact (the interval analysis
/// keeps every aligned sum below 2^62), i32 when the formats keep every per-vector sum of the
/// hot loops below 2^31 ([`Plan::fits32`]); both compute the same codes bit for bit.
trait Lane:
    Copy
    + Default
    + Ord
    + Send
    + Sync
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Shl<u32, Output = Self>
    + std::ops::Shr<u32, Output = Self>
    + std::ops::AddAssign
{
    /// `v` in the lane type (the caller's bounds keep it in range).
    fn of(v: i64) -> Self;
    /// The code as i64.
    fn wide(self) -> i64;
    /// An i32 sum in the lane type (exact: both lane types hold every i32).
    fn of32(v: i32) -> Self;
}

impl Lane for i64 {
    #[inline(always)]
    fn of(v: i64) -> Self {
        v
    }
    #[inline(always)]
    fn wide(self) -> i64 {
        self
    }
    #[inline(always)]
    fn of32(v: i32) -> Self {
        i64::from(v)
    }
}

impl Lane for i32 {
    #[inline(always)]
    fn of(v: i64) -> Self {
        debug_assert!(i32::try_from(v).is_ok(), "{v} outside i32");
        v as i32
    }
    #[inline(always)]
    fn wide(self) -> i64 {
        i64::from(self)
    }
    #[inline(always)]
    fn of32(v: i32) -> Self {
        v
    }
}

/// G·x follows x by column updates while at most N / `GX_COLUMNS` of its entries change in a
/// layer, else it is recomputed (a column update costs about an eighth of the product).
const GX_COLUMNS: usize = 8;

/// Whether every sum of `len` products of codes bounded by `a` and `b` (each at most
/// 2^15 in magnitude, so they are i16 values) stays below 2^31: then the products and every
/// partial sum are exact in i32, in any order, and the 16-bit kernel computes the i64 sum.
fn narrow(len: usize, a: i128, b: i128) -> bool {
    a <= 1 << 15 && b <= 1 << 15 && (len as i128) * a * b < 1 << 31
}

/// `out_i = Σ_j a[i·len + j]·v_j` over the rows of `a` (`len = v.len()`), in i64.
#[inline]
fn matvec<V: Lane, O: Lane>(a: &[i64], v: &[V], out: &mut [O]) {
    let len = v.len();
    for (o, row) in out.iter_mut().zip(a.chunks_exact(len)) {
        *o = O::of(row.iter().zip(v).map(|(x, y)| x * y.wide()).sum());
    }
}

/// Σ a_j·b_j of 16-bit codes in i32 (exact when [`narrow`] holds). Blocks of 32 and then 16
/// fixed-size products, each block summed as one reduction, compile to full-width multiply-add
/// instructions with one horizontal sum per block (a 32-code row of a 16 × 16 net is one block).
#[inline]
fn dot16(a: &[i16], b: &[i16]) -> i32 {
    #[inline(always)]
    fn block<const K: usize>(x: &[i16], y: &[i16]) -> i32 {
        let (x, y): (&[i16; K], &[i16; K]) = (x.try_into().unwrap(), y.try_into().unwrap());
        let mut s = 0i32;
        for k in 0..K {
            s += i32::from(x[k]) * i32::from(y[k]);
        }
        s
    }
    let (a32, b32) = (a.chunks_exact(32), b.chunks_exact(32));
    let (ar, br) = (a32.remainder(), b32.remainder());
    let mut acc: i32 = a32.zip(b32).map(|(x, y)| block::<32>(x, y)).sum();
    let (a16, b16) = (ar.chunks_exact(16), br.chunks_exact(16));
    acc += a16
        .remainder()
        .iter()
        .zip(b16.remainder())
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum::<i32>();
    acc + a16.zip(b16).map(|(x, y)| block::<16>(x, y)).sum::<i32>()
}

/// Σ a_j·b_j of two 32-code rows (the rows of a 16 × 16 net's G and H̃ᵀ): four multiply-adds
/// and one horizontal sum. Not inlined: inside the row loop the vectorizer mixes rows.
#[inline(never)]
fn dot32(x: &[i16; 32], y: &[i16; 32]) -> i32 {
    let mut s = 0i32;
    for k in 0..32 {
        s += i32::from(x[k]) * i32::from(y[k]);
    }
    s
}

/// [`matvec`] of 16-bit codes with i32 sums (exact when [`narrow`] holds, which the caller
/// checked once per IR); `v16` is scratch for the operand.
#[inline]
fn matvec16<V: Lane, O: Lane>(a: &[i16], v: &[V], v16: &mut [i16], out: &mut [O]) {
    let len = v.len();
    let v16 = &mut v16[..len];
    for (s, &c) in v16.iter_mut().zip(v) {
        *s = c.wide() as i16;
    }
    if let Ok(v32) = <&[i16; 32]>::try_from(&*v16) {
        for (o, row) in out.iter_mut().zip(a.chunks_exact(32)) {
            *o = O::of32(dot32(row.try_into().unwrap(), v32));
        }
    } else {
        for (o, row) in out.iter_mut().zip(a.chunks_exact(len)) {
            *o = O::of32(dot16(row, v16));
        }
    }
}

#[inline]
fn dot<A: Lane, B: Lane>(a: &[A], b: &[B]) -> i64 {
    a.iter().zip(b).map(|(x, y)| x.wide() * y.wide()).sum()
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

    /// The rounding and saturation in lane type `L`, hoisted out of a loop.
    #[inline(always)]
    fn fin<L: Lane>(&self) -> Fin<L> {
        Fin {
            half: L::of(self.half),
            down: self.down,
            lo: L::of(-self.max),
            hi: L::of(self.max),
        }
    }

    /// Whether every aligned sum of terms bounded by `bounds` (the terms' code bounds before
    /// their shifts), plus the rounding half, stays below 2^31.
    fn fits32(&self, bounds: [i128; N]) -> bool {
        fits32(
            bounds.iter().zip(&self.sh).map(|(&b, &sh)| (b, sh)),
            self.down,
        )
    }

    /// `c·2^sh[i]`: a constant coefficient of term `i` with the term's alignment folded in,
    /// so that `(c·v)·2^sh[i] = (c·2^sh[i])·v` costs no shift per element. Exact: the
    /// interval analysis bounds |c|·Q·2^sh[i] (Q ≥ 1) below 2^62.
    #[inline(always)]
    fn fold(&self, i: usize, c: i64) -> i64 {
        c << self.sh[i]
    }
}

/// [`Comb::finish`] with its constants in lane type `L`.
#[derive(Debug, Clone, Copy)]
struct Fin<L> {
    half: L,
    down: u32,
    lo: L,
    hi: L,
}

impl<L: Lane> Fin<L> {
    #[inline(always)]
    fn f(&self, s: L) -> L {
        ((s + self.half) >> self.down).max(self.lo).min(self.hi)
    }
}

/// Whether `Σ b·2^sh + 2^down` over the `(b, sh)` terms stays below 2^31.
fn fits32(terms: impl Iterator<Item = (i128, u32)>, down: u32) -> bool {
    let mut s: i128 = if down < 64 { 1 << down } else { return false };
    for (b, sh) in terms {
        if sh >= 64 || b >= 1 << 64 {
            return false;
        }
        s += b << sh;
    }
    s < 1 << 31
}

/// ρ's combine `(e·2^s0 − gd·2^s1 − δ·d + half) >> down` in two steps that keep the terms
/// small: with `m = min(s0, s1, down)`, `(A + ((half − δ·d) >> m)) >> (down − m)` where
/// `A = e·2^(s0−m) − gd·2^(s1−m)`, the same floor since `⌊(2^m·A + B)/2^down⌋ =
/// ⌊(A + ⌊B/2^m⌋)/2^(down−m)⌋`.
#[derive(Debug, Clone, Copy)]
struct RhoPlan {
    m: u32,
    /// s0 − m, s1 − m.
    sh: [u32; 2],
    /// down − m.
    down: u32,
}

impl RhoPlan {
    fn new(c: &Comb<3>) -> Self {
        let m = c.sh[0].min(c.sh[1]).min(c.down);
        Self {
            m,
            sh: [c.sh[0] - m, c.sh[1] - m],
            down: c.down - m,
        }
    }

    /// Whether both steps stay below 2^31 for |e| ≤ `eb`, |gd| ≤ `gdb`, |δ·d| ≤ `db`
    /// (δ·2^s2 included) and the rounding half of `c`.
    fn fits32(&self, c: &Comb<3>, eb: i128, gdb: i128, db: i128) -> bool {
        let b = db + (1 << c.down.min(63));
        fits32([(db, 0)].into_iter(), c.down.min(63))
            && fits32(
                [(eb, self.sh[0]), (gdb, self.sh[1]), ((b >> self.m) + 1, 0)].into_iter(),
                0,
            )
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
    rho2: RhoPlan,
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
    /// The per-vector codes run in i32 lanes ([`Plan::check32`]).
    fits32: bool,
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
                let rho = Comb::new(
                    [
                        f.e.frac(),
                        l.inner_g(ir.block.g).frac() + f.d.frac(),
                        l.delta.frac + f.d.frac(),
                    ],
                    f.e,
                );
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
                    rho2: RhoPlan::new(&rho),
                    rho,
                    r: Comb::new([xf, l.gamma.frac + f.d.frac()], f.r),
                    tau2: Comb::new([l.tv.frac + f.v2.frac(), l.ts.frac], f.tau2),
                }
            })
            .collect();
        let mut plan = Self {
            g: Comb::new([2 * fh], ir.block.g),
            z: Comb::new([fh + fy], fr.z),
            yy: Comb::new([2 * fy], fr.yy),
            layers,
            fits32: false,
        };
        plan.fits32 = plan.check32(ir, bin);
        plan
    }

    /// Whether every per-vector sum of the hot loops (e, p, d, ρ, r, G·x column updates) stays
    /// below 2^31 for any codes of the formats' widths: then the i32 lanes compute the i64
    /// codes exactly.
    fn check32(&self, ir: &GramIr, bin: usize) -> bool {
        // Any code of width w (a wrapping reciprocal included) is at most 2^(w−1) in magnitude.
        let full = |f: QFormat| 1i128 << (f.width() - 1);
        let n = ir.n as i128;
        let (gq, xq, zq) = (full(ir.block.g), full(ir.state), full(ir.front.z));
        let dq_inv = full(ir.block.diag_inv.format);
        ir.layers.iter().zip(&self.layers).all(|(l, lp)| {
            let f = l.formats_at(bin);
            let (eq, pq, dq) = (full(f.e), full(f.p), full(f.d));
            let gx = n * gq * xq;
            let delta = l.delta.codes.iter().map(|c| i128::from(*c).abs()).max();
            let db = (delta.unwrap_or(0) * dq) << lp.rho.sh[2].min(63);
            lp.e.fits32([zq, gx])
                && lp.steps.iter().zip(&l.steps).all(|(sp, s)| {
                    sp.p.fits32([dq_inv * eq, i128::from(s.beta.code).abs() * pq])
                        && sp.d.fits32([dq, i128::from(s.omega.code).abs() * pq])
                })
                && lp
                    .rho2
                    .fits32(&lp.rho, eq, n * full(l.inner_g(ir.block.g)) * dq, db)
                && lp.r.fits32([xq, i128::from(l.gamma.code).abs() * dq])
                && fits32([(gx, 0), (gq * 2 * xq, 0)].into_iter(), 0)
        })
    }
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
        let lanes32 = plans.iter().all(|p| p.fits32);
        Ok(Self {
            plans,
            plan_of_bin,
            kernels: Kernels::new(&ir),
            lanes32,
            inner_shifts,
            inner_of_layer,
            h_step: step(ir.inputs.h),
            h_qp: max_code(ir.inputs.h.width()) as f32,
            y_step: step(ir.inputs.y),
            y_qp: max_code(ir.inputs.y.width()) as f32,
            ir,
        })
    }

    /// Whether the per-vector codes run in i32 lanes (the tests cover both lane types).
    #[cfg(test)]
    pub(super) fn lanes32(&self) -> bool {
        self.lanes32
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
        let ir = &self.ir;
        check_block_codes(h, ys, bin, (ir.m, ir.n), &ir.inputs, ir.snr_bins.count)
    }

    /// The block stage of channel codes `h` (docs/ir.md §10.3), into `w`: H̃ᵀ, G (in full),
    /// tr G, 1/tr G and D.
    fn block<L: Lane>(&self, h: &[i64], w: &mut Work<L>) -> (i64, i64) {
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
        for (s, &c) in w.gl.iter_mut().zip(&w.g) {
            *s = L::of(c);
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
            w.diag_inv[i] = L::of(b.diag_inv.op.apply(1, w.g[i * n + i]));
        }
        (trace, inv_trace)
    }

    /// One vector (docs/ir.md §10.3) of the block in `w`; taps filled when given. x⁽ᴷ⁾ is left
    /// in `w.x`.
    fn vector<L: Lane>(
        &self,
        y: &[i64],
        bin: usize,
        inv_trace: i64,
        w: &mut Work<L>,
        mut taps: Option<&mut VectorTaps>,
    ) {
        let ir = &self.ir;
        let plan = &self.plans[self.plan_of_bin.get(bin).copied().unwrap_or(0)];
        let kern = &self.kernels;
        let (m, n) = (ir.m, ir.n);
        let fr = &ir.front;
        if kern.z {
            matvec16(&w.ht16, y, &mut w.v16, &mut w.acc);
        } else {
            matvec(&w.ht, y, &mut w.acc);
        }
        for (z, &acc) in w.z.iter_mut().zip(&w.acc) {
            *z = L::of(plan.z.apply([acc]));
        }
        debug_assert_eq!(y.len(), m);
        let yy = plan.yy.apply([dot(y, y)]);
        let wide = |v: &[L]| v.iter().map(|c| c.wide()).collect::<Vec<i64>>();
        if let Some(t) = taps.as_deref_mut() {
            t.z = wide(&w.z);
            t.yy = yy;
            t.layers.clear();
        }
        w.x.fill(L::default());
        // G·x of x = 0.
        w.gx.fill(L::default());
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
            let (fe, e_sh) = (lp.e.fin::<L>(), lp.e.sh);
            for ((e, &z), &gx) in w.e.iter_mut().zip(&w.z).zip(&w.gx) {
                *e = fe.f((z << e_sh[0]) - (gx << e_sh[1]));
            }
            let sh = &lp.w_sh;
            let wsum = (yy << sh[0])
                - (dot(&w.x, &w.z) << sh[1])
                - (dot(&w.x, &w.e) << sh[2])
                - (noise << sh[3]);
            let v2_unfloored = lp.v2.apply([wsum * inv_trace]);
            let v2 = v2_unfloored.max(*v2_floor);
            w.rho.copy_from_slice(&w.e);
            w.d.fill(L::default());
            w.p.fill(L::default());
            let mut tap_p = Vec::new();
            let mut tap_d = Vec::new();
            let mut tap_rho = Vec::new();
            let dl = L::of(lp.rho.fold(2, delta.codes[bin]));
            let gamma = L::of(lp.r.fold(1, gamma.code));
            let (frho, rp) = (lp.rho.fin::<L>(), lp.rho2);
            let rho_half = frho.half;
            let (fr_r, r_sh) = (lp.r.fin::<L>(), lp.r.sh[0]);
            for (l, (s, sp)) in steps.iter().zip(&lp.steps).enumerate() {
                let beta = L::of(sp.p.fold(1, s.beta.code));
                let omega = L::of(sp.d.fold(1, s.omega.code));
                let (p_sh, d_sh) = (sp.p.sh[0], sp.d.sh[0]);
                let (fp, fd) = (sp.p.fin::<L>(), sp.d.fin::<L>());
                for (((p, d), &rho), &di) in
                    w.p.iter_mut()
                        .zip(w.d.iter_mut())
                        .zip(&w.rho)
                        .zip(&w.diag_inv)
                {
                    *p = fp.f(((di * rho) << p_sh) + beta * *p);
                    *d = fd.f((*d << d_sh) + omega * *p);
                }
                if taps.is_some() {
                    tap_p.extend(w.p.iter().map(|c| c.wide()));
                    tap_d.extend(w.d.iter().map(|c| c.wide()));
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
                    // (e·2^s0 − gd·2^s1 − δ·d + half) >> down in two steps (RhoPlan).
                    for (((rho, &e), &gd), &d) in w.rho.iter_mut().zip(&w.e).zip(&w.tmp).zip(&w.d) {
                        let a = (e << rp.sh[0]) - (gd << rp.sh[1]);
                        let b = (rho_half - dl * d) >> rp.m;
                        *rho = ((a + b) >> rp.down).max(frho.lo).min(frho.hi);
                    }
                    if taps.is_some() {
                        tap_rho.extend(w.rho.iter().map(|c| c.wide()));
                    }
                }
            }
            for ((r, &x), &d) in w.r.iter_mut().zip(&w.x).zip(&w.d) {
                *r = fr_r.f((x << r_sh) + gamma * d);
            }
            let tau2 = lp.tau2.apply([tv.code * v2, ts.codes[bin]]);
            // #{j : τ² ≥ thresholds[j]} of the ascending thresholds.
            let bucket = thresholds.partition_point(|&t| t <= tau2);
            let row = &ir.denoiser.table[bucket];
            // The new x (table lookups into tmp), then G·x follows it column by column (G is
            // symmetric: column j is row j) while few entries change, else it is recomputed at
            // the next layer.
            for (t, &r) in w.tmp.iter_mut().zip(&w.r) {
                *t = L::of(row[(r.wide() + half) as usize]);
            }
            if k < last && gx_valid {
                // The changed columns, compacted without a branch per entry.
                let mut changed = 0;
                for (j, (&new, &old)) in w.tmp.iter().zip(&w.x).enumerate() {
                    w.cols[changed] = j;
                    changed += usize::from(new != old);
                }
                if changed * GX_COLUMNS > n {
                    gx_valid = false;
                } else {
                    for &j in &w.cols[..changed] {
                        let dj = w.tmp[j] - w.x[j];
                        for (g, &c) in w.gx.iter_mut().zip(&w.gl[j * n..(j + 1) * n]) {
                            *g += c * dj;
                        }
                    }
                }
            }
            w.x.copy_from_slice(&w.tmp);
            if let Some(t) = taps.as_deref_mut() {
                t.layers.push(LayerTaps {
                    e: wide(&w.e),
                    w: wsum,
                    v2_unfloored,
                    v2,
                    p: tap_p,
                    d: tap_d,
                    rho: tap_rho,
                    r: wide(&w.r),
                    tau2,
                    bucket,
                    x: wide(&w.x),
                });
            }
        }
        if let Some(t) = taps {
            t.output = wide(&w.x);
            t.levels = w.x.iter().map(|&c| ir.decide(c.wide())).collect();
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
        if self.lanes32 {
            Ok(self.block_taps::<i32>(h, ys, bin))
        } else {
            Ok(self.block_taps::<i64>(h, ys, bin))
        }
    }

    fn block_taps<L: Lane>(
        &self,
        h: &[i64],
        ys: &[i64],
        bin: usize,
    ) -> (BlockTaps, Vec<VectorTaps>) {
        let mut w = Work::<L>::new(self.ir.m, self.ir.n);
        let (trace, inv_trace) = self.block(h, &mut w);
        let block = BlockTaps {
            g: w.g.clone(),
            trace,
            inv_trace,
            diag_inv: w.diag_inv.iter().map(|c| c.wide()).collect(),
        };
        let mut out = Vec::new();
        for y in ys.chunks(self.ir.m) {
            let mut t = VectorTaps::default();
            self.vector(y, bin, inv_trace, &mut w, Some(&mut t));
            out.push(t);
        }
        (block, out)
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
        let (starts, parts) = block_parts(frames, m, n, self.ir.modulation, decisions)?;
        parts.into_par_iter().for_each(|(first, out)| {
            if self.lanes32 {
                self.detect_part::<i32>(frames, &starts, first, out);
            } else {
                self.detect_part::<i64>(frames, &starts, first, out);
            }
        });
        Ok(())
    }

    /// The frames `first..` of one chunk of whole blocks into `out`.
    fn detect_part<L: Lane>(
        &self,
        frames: &Received<'_>,
        starts: &[bool],
        first: usize,
        out: &mut [i32],
    ) {
        let (m, n) = (self.ir.m, self.ir.n);
        let mut w = Work::<L>::new(m, n);
        let mut hc = vec![0i64; m * n];
        let mut yc = vec![0i64; m];
        let mut inv_trace = 0;
        let mut bin = 0;
        for (k, dec) in out.chunks_mut(n).enumerate() {
            let b = first + k;
            if k == 0 || starts[b] {
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
                *d = self.ir.decide(c.wide());
            }
        }
    }
}

/// Checks one channel block given as codes (docs/ir.md §10.3, §11.3): H̃ of `M·N` codes, the
/// vectors ỹ a multiple of M codes, the SNR bin below `bins`, every code within its input width.
pub(super) fn check_block_codes(
    h: &[i64],
    ys: &[i64],
    bin: usize,
    (m, n): (usize, usize),
    inputs: &crate::document::Inputs,
    bins: usize,
) -> Result<(), IrError> {
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
    if bin >= bins {
        return Err(IrError::invalid(
            "bin",
            format!("{bin} is outside 0..{bins}"),
        ));
    }
    for (field, codes, w) in [("h", h, inputs.h.width()), ("y", ys, inputs.y.width())] {
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

/// Checks a frame batch against an `m × n` Gram-domain IR and its decision buffer, finds the
/// frames that start a channel block (σ² differs, or H̃ differs in any bit: a split between
/// frames with equal codes changes no output; found once per frame), and cuts the buffer into
/// parts of whole blocks, at least 32 frames each, each with its first frame, for the workers.
#[allow(clippy::type_complexity)]
pub(super) fn block_parts<'d>(
    frames: &Received<'_>,
    m: usize,
    n: usize,
    modulation: crate::modulation::Modulation,
    decisions: &'d mut [i32],
) -> Result<(Vec<bool>, Vec<(usize, &'d mut [i32])>), IrError> {
    if frames.m != m || frames.n != n || frames.modulation != modulation {
        return Err(IrError::Shape(format!(
            "frames are {}×{} {}, the IR needs {m}×{n} {modulation}",
            frames.m, frames.n, frames.modulation
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
    let starts: Vec<bool> = (0..f).map(|b| frames.starts_block(b)).collect();
    let mut cuts = vec![0];
    for (b, &s) in starts.iter().enumerate().skip(1) {
        if b - cuts[cuts.len() - 1] >= 32 && s {
            cuts.push(b);
        }
    }
    cuts.push(f);
    let mut parts = Vec::with_capacity(cuts.len() - 1);
    let mut rest = decisions;
    for c in cuts.windows(2) {
        let (head, tail) = rest.split_at_mut((c[1] - c[0]) * n);
        parts.push((c[0], head));
        rest = tail;
    }
    Ok((starts, parts))
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
