//! The integer golden model: runs an [`Ir`] on integer codes exactly as docs/fixed-point.md
//! and docs/ir.md define, batched, with no allocation per element or frame.
//!
//! The dot products of the e and g stages (and the matched filter) run on `i16` codes with
//! `i32` accumulators when every MAC operand has at most 16 bits and every MAC accumulator at
//! most 32 (the default formats), which the compiler turns into packed multiply-adds; otherwise
//! on `i32` codes with `i64` accumulators. Both give the same integers: the accumulator widths
//! are proved by the interval analysis of [`crate::fill_bounds`], and every accumulator value is checked
//! against its proved bound by `debug_assert!` (so in every test build).

use rayon::prelude::*;

use crate::document::{BinRequant, InitStage, Ir, IrError, Layer, ProxStage};
use crate::fixed::{
    OverflowMode, Requant, RoundingMode, overflow, requantize, requantize_i64, requantize_wide,
};
use crate::modulation::Modulation;
use crate::vocab::Arch;

mod kernels;

use kernels::Code;

/// Q_P = 2^{w−1} − 1 as an f32 (exact for every stored width).
fn max_code(w: u32) -> f32 {
    crate::fixed::max_code(w) as f32
}

/// Received frames as the receiver's front end gets them: real-valued H̃ and ỹ of every frame
/// and its complex noise variance σ² (which selects the SNR bin).
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The frames' alphabet.
    pub modulation: Modulation,
    /// Number of frames.
    pub frames: usize,
    /// Rows of H̃.
    pub m: usize,
    /// Columns of H̃.
    pub n: usize,
    /// H̃ of every frame: `frames × m × n`, row-major.
    pub h: &'a [f64],
    /// ỹ of every frame: `frames × m`.
    pub y: &'a [f64],
    /// σ² of every frame.
    pub noise_var: &'a [f64],
}

impl Received<'_> {
    /// Whether frame `f` opens a new channel block: the first frame, or σ² or any bit of H̃
    /// differs from frame `f − 1`'s (compared without an early exit, which vectorizes).
    pub fn starts_block(&self, f: usize) -> bool {
        let mn = self.m * self.n;
        f == 0
            || self.noise_var[f] != self.noise_var[f - 1]
            || self.h[f * mn..(f + 1) * mn]
                .iter()
                .zip(&self.h[(f - 1) * mn..f * mn])
                .fold(0u64, |acc, (a, c)| acc | (a.to_bits() ^ c.to_bits()))
                != 0
    }
}

/// Frames per parallel task in [`Interpreter::detect_received`].
const TASK_FRAMES: usize = 64;

/// The codes one layer produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerTap {
    /// e = H x⁽ᵏ⁻¹⁾ − y (M codes).
    pub e: Vec<i64>,
    /// g = Hᵀ e (N codes).
    pub g: Vec<i64>,
    /// x⁽ᵏ⁾ (N state codes).
    pub x: Vec<i64>,
    /// s⁽ᵏ⁾ (ADMM-Net; empty for PGD-Net).
    pub s: Vec<i64>,
    /// u⁽ᵏ⁾ (ADMM-Net; empty for PGD-Net).
    pub u: Vec<i64>,
}

/// Every intermediate code of one frame: what co-simulation compares layer by layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Taps {
    /// x⁽⁰⁾.
    pub x0: Vec<i64>,
    /// Layers 1..K.
    pub layers: Vec<LayerTap>,
    /// The output codes (x⁽ᴷ⁾ for PGD-Net, s⁽ᴷ⁾ for ADMM-Net).
    pub output: Vec<i64>,
    /// The hard decisions: alphabet levels (odd integers).
    pub levels: Vec<i32>,
}

/// Scratch of one frame's run.
struct Workspace<C: Code> {
    h: Vec<C>,
    hp: Vec<C>,
    n: usize,
    acc: Vec<C::Acc>,
    y: Vec<C>,
    y64: Vec<i64>,
    xin: Vec<C>,
    e: Vec<C>,
    g: Vec<i64>,
    xp: Vec<i64>,
    xpp: Vec<i64>,
    xn: Vec<i64>,
    s: Vec<i64>,
    u: Vec<i64>,
    sn: Vec<i64>,
    un: Vec<i64>,
    e64: Vec<i64>,
}

impl<C: Code> Workspace<C> {
    fn new(m: usize, n: usize) -> Self {
        Self {
            h: vec![C::default(); m * n],
            hp: vec![C::default(); m * n],
            n,
            acc: vec![C::Acc::default(); n],
            y: vec![C::default(); m],
            y64: vec![0; m],
            xin: vec![C::default(); n],
            e: vec![C::default(); m],
            g: vec![0; n],
            xp: vec![0; n],
            xpp: vec![0; n],
            xn: vec![0; n],
            s: vec![0; n],
            u: vec![0; n],
            sn: vec![0; n],
            un: vec![0; n],
            e64: vec![0; m],
        }
    }

    /// Loads H (row-major codes) and y.
    fn load_codes(&mut self, h: &[i64], y: &[i64]) {
        for (d, &c) in self.h.iter_mut().zip(h) {
            *d = C::of(c);
        }
        for (d, &c) in self.y.iter_mut().zip(y) {
            *d = C::of(c);
        }
        self.finish_load();
    }

    /// Loads one frame's H̃ (row-major) and ỹ through the front end.
    fn load_frame(&mut self, h: &[f64], y: &[f64], fe: &FrontEnd) {
        C::quantize_into(h, &mut self.h, fe.h_scale, fe.h_qp);
        C::quantize_into(y, &mut self.y, fe.y_scale, fe.y_qp);
        self.finish_load();
    }

    /// The paired rows of H and the wide copy of y.
    fn finish_load(&mut self) {
        C::pair_rows(&self.h, self.n, &mut self.hp);
        for (d, &c) in self.y64.iter_mut().zip(&self.y) {
            *d = c.wide();
        }
    }
}

#[inline]
fn check(v: i128, bound: i64, what: &str, k: usize) {
    debug_assert!(
        v.unsigned_abs() <= bound.unsigned_abs() as u128,
        "layer {k} {what}: |{v}| exceeds the proved bound {bound}"
    );
}

/// The front end's quantizer: `clamp(⌊v/step + ½⌋, −Q_P, Q_P)` in f32, exactly as the
/// fake-quant nets quantize their inputs (also the Gram-domain golden models' front end).
#[inline]
pub(crate) fn front_end(v: f32, step: f32, qp: f32) -> i64 {
    (v / step + 0.5).floor().clamp(-qp, qp) as i64
}

/// The front end's quantizers as multiplications by `1/step` (exact powers of two).
#[derive(Debug, Clone, Copy)]
struct FrontEnd {
    h_scale: f32,
    h_qp: f32,
    y_scale: f32,
    y_qp: f32,
}

/// Which requantizations of a stage may compute their product in `i64`: those whose proved
/// input bound times their largest multiplier fits (see [`requantize_i64`]).
#[derive(Debug, Clone, Copy, Default)]
struct Narrow {
    g: bool,
    out: bool,
    x_out: bool,
    table: bool,
}

/// Whether `|x·mult| ≤ i64::MAX` for every `|x| ≤ bound` and every multiplier in `mults`.
fn product_fits(bound: i64, mults: impl IntoIterator<Item = i64>) -> bool {
    let m = mults.into_iter().map(i64::unsigned_abs).max().unwrap_or(0);
    u128::from(bound.unsigned_abs()) * u128::from(m) <= i64::MAX as u128
}

impl Narrow {
    fn of(layer: &Layer) -> Self {
        let r = layer.update.acc.bound;
        // The prox input: R (PGD-Net) or v (ADMM-Net).
        let p_in = layer.admm.as_ref().map_or(r, |a| a.v.bound);
        let (p_out, table) = match &layer.prox {
            ProxStage::Soft { lambda } => (p_in.saturating_add(lambda.saturating_abs()), true),
            ProxStage::Box { limit } => (p_in.max(limit.saturating_abs()), true),
            ProxStage::Table { input, table, .. } => (
                table.iter().map(|t| t.saturating_abs()).max().unwrap_or(0),
                product_fits(p_in, [input.mult()]),
            ),
        };
        Self {
            g: product_fits(layer.g.acc.bound, [layer.g.requant.mult()]),
            out: layer.out.shift.iter().all(|&s| s <= 63)
                && product_fits(p_out, layer.out.mult.iter().copied()),
            x_out: layer.admm.as_ref().is_none_or(|a| {
                a.x_out.shift.iter().all(|&s| s <= 63)
                    && product_fits(r.max(a.w.bound), a.x_out.mult.iter().copied())
            }),
            table,
        }
    }
}

/// `rq.apply(x)`, in `i64` when `narrow`.
#[inline]
fn apply(rq: &Requant, x: i64, narrow: bool) -> i64 {
    let (m, s, r, o, w) = (
        rq.mult(),
        rq.shift(),
        rq.rounding(),
        rq.overflow(),
        rq.out_width(),
    );
    if narrow {
        requantize_i64(x, m, s, r, o, w)
    } else {
        requantize(x, m, s, r, o, w)
    }
}

/// `rq.apply(x, bin)` with `(mult, shift) = (rq.mult[bin], rq.shift[bin])`, in `i64` when
/// `narrow`.
#[inline]
fn apply_bin(rq: &BinRequant, (mult, shift): (i64, u32), x: i64, narrow: bool) -> i64 {
    if narrow {
        requantize_i64(x, mult, shift, rq.rounding, rq.overflow, rq.width)
    } else {
        requantize(x, mult, shift, rq.rounding, rq.overflow, rq.width)
    }
}

/// The integer golden model of one IR.
#[derive(Debug, Clone)]
pub struct Interpreter {
    ir: Ir,
    fast: bool,
    /// The matched filter's requantization runs in `i64`.
    init_narrow: bool,
    /// Per layer.
    narrow: Vec<Narrow>,
    h_step: f32,
    h_qp: f32,
    y_step: f32,
    y_qp: f32,
}

impl Interpreter {
    /// An interpreter for `ir` (validated here).
    pub fn new(ir: Ir) -> Result<Self, IrError> {
        ir.validate()?;
        let mut widths = vec![ir.inputs.h.width(), ir.inputs.y.width(), ir.state_width];
        let mut accs = Vec::new();
        if let InitStage::MatchedFilter { acc, .. } = &ir.init {
            accs.push(acc.width);
        }
        for l in &ir.layers {
            widths.push(l.e.format.width());
            accs.push(l.e.acc.width);
            accs.push(l.g.acc.width);
        }
        let fast = widths.iter().all(|&w| w <= 16) && accs.iter().all(|&w| w <= 32);
        let step = |f: crate::fixed::QFormat| 2f32.powi(-f.frac());
        Ok(Self {
            fast,
            init_narrow: init_narrow(&ir),
            narrow: ir.layers.iter().map(Narrow::of).collect(),
            h_step: step(ir.inputs.h),
            h_qp: max_code(ir.inputs.h.width()),
            y_step: step(ir.inputs.y),
            y_qp: max_code(ir.inputs.y.width()),
            ir,
        })
    }

    /// The IR.
    pub fn ir(&self) -> &Ir {
        &self.ir
    }

    /// An interpreter for `ir` without validation: for tests that must reach the
    /// interpreter's own accumulator assertions with a deliberately wrong IR.
    #[cfg(any(test, feature = "test-support"))]
    pub fn new_unchecked(ir: Ir) -> Self {
        let mut me = Self::new(ir.clone()).unwrap_or_else(|_| Self {
            ir: ir.clone(),
            fast: false,
            init_narrow: false,
            narrow: vec![Narrow::default(); ir.layers.len()],
            h_step: 2f32.powi(-ir.inputs.h.frac()),
            h_qp: max_code(ir.inputs.h.width()),
            y_step: 2f32.powi(-ir.inputs.y.frac()),
            y_qp: max_code(ir.inputs.y.width()),
        });
        me.ir = ir;
        me
    }

    /// The same interpreter on the `i32`/`i64` path (for tests of the fast path).
    #[cfg(any(test, feature = "test-support"))]
    pub fn force_wide(mut self) -> Self {
        self.fast = false;
        self
    }

    /// Whether the packed 16-bit MAC path is in use.
    pub fn is_fast(&self) -> bool {
        self.fast
    }

    /// The input codes of frame `f` of `frames` as the receiver's front end forms them
    /// (docs/ir.md §Inputs): H̃ (row-major), ỹ and the SNR bin.
    pub fn frame_codes(
        &self,
        frames: &Received<'_>,
        f: usize,
    ) -> Result<(Vec<i64>, Vec<i64>, usize), IrError> {
        self.check_frames(frames)?;
        if f >= frames.frames {
            return Err(IrError::Shape(format!(
                "frame {f} of a batch of {}",
                frames.frames
            )));
        }
        let (m, n) = (self.ir.m, self.ir.n);
        let h = frames.h[f * m * n..(f + 1) * m * n]
            .iter()
            .map(|&v| front_end(v as f32, self.h_step, self.h_qp))
            .collect();
        let y = frames.y[f * m..(f + 1) * m]
            .iter()
            .map(|&v| front_end(v as f32, self.y_step, self.y_qp))
            .collect();
        Ok((h, y, self.ir.bin_of(frames.noise_var[f] as f32)))
    }

    /// Runs one frame given as codes (H̃ row-major, ỹ, SNR bin) and returns every
    /// intermediate code. Codes outside their input format, wrong lengths or a bin outside
    /// the table are errors.
    pub fn run_codes(&self, h: &[i64], y: &[i64], bin: usize) -> Result<Taps, IrError> {
        let (m, n) = (self.ir.m, self.ir.n);
        if h.len() != m * n {
            return Err(IrError::invalid(
                "h",
                format!("{} codes given, M·N = {} needed", h.len(), m * n),
            ));
        }
        if y.len() != m {
            return Err(IrError::invalid(
                "y",
                format!("{} codes given, M = {m} needed", y.len()),
            ));
        }
        for (name, codes, f) in [("h", h, self.ir.inputs.h), ("y", y, self.ir.inputs.y)] {
            if let Some((i, c)) = codes.iter().enumerate().find(|(_, c)| !f.contains(**c)) {
                return Err(IrError::invalid(
                    format!("{name}[{i}]"),
                    format!("{c} is not a signed {}-bit code", f.width()),
                ));
            }
        }
        if bin >= self.ir.bins() {
            return Err(IrError::invalid(
                "bin",
                format!("{bin} is outside 0..{}", self.ir.bins()),
            ));
        }
        let mut taps = Taps::default();
        if self.fast {
            let mut ws = Workspace::<i16>::new(m, n);
            ws.load_codes(h, y);
            self.run(&mut ws, bin, Some(&mut taps));
        } else {
            let mut ws = Workspace::<i32>::new(m, n);
            ws.load_codes(h, y);
            self.run(&mut ws, bin, Some(&mut taps));
        }
        Ok(taps)
    }

    fn check_frames(&self, frames: &Received<'_>) -> Result<(), IrError> {
        let ir = &self.ir;
        if frames.m != ir.m || frames.n != ir.n || frames.modulation != ir.modulation {
            return Err(IrError::Shape(format!(
                "frames are {}×{} {}, the IR {} needs {}×{} {}",
                frames.m, frames.n, frames.modulation, ir.name, ir.m, ir.n, ir.modulation
            )));
        }
        Ok(())
    }

    /// One frame whose inputs are loaded in `ws`; the output codes end in `ws.xp` (PGD) or
    /// `ws.s` (ADMM). With `taps`, every intermediate code is recorded.
    fn run<C: Code>(&self, ws: &mut Workspace<C>, bin: usize, mut taps: Option<&mut Taps>) {
        let ir = &self.ir;
        let (m, n) = (ir.m, ir.n);
        match &ir.init {
            InitStage::Zero => ws.xp.fill(0),
            InitStage::MatchedFilter { acc, requant } => {
                C::t_dot(&ws.h, &ws.hp, n, &ws.y, &mut ws.acc);
                for (x, &a) in ws.xp.iter_mut().zip(&ws.acc) {
                    let a = a.into();
                    check(i128::from(a), acc.bound, "init.acc", 0);
                    *x = apply(requant, a, self.init_narrow);
                }
            }
        }
        ws.xpp.copy_from_slice(&ws.xp);
        let admm = ir.arch == Arch::Admm;
        if admm {
            ws.s.copy_from_slice(&ws.xp);
            ws.u.fill(0);
        }
        if let Some(t) = taps.as_deref_mut() {
            t.x0 = ws.xp.clone();
        }
        for (k, (layer, nw)) in ir.layers.iter().zip(&self.narrow).enumerate() {
            let nw = *nw;
            for (d, &v) in ws.xin.iter_mut().zip(&ws.xp) {
                *d = C::of(v);
            }
            // e = requant(mult·(H x) − y ≪ y_shift)
            // Every sum below is formed in wrapping i64 arithmetic: its exact value is within
            // its proved bound, below 2^63, so the result modulo 2^64 is the exact value
            // whatever the partial sums did. Debug builds recompute it in i128.
            let es = &layer.e;
            let mult = es.mult[bin];
            for i in 0..m {
                let a = C::dot(&ws.h[i * n..(i + 1) * n], &ws.xin);
                check(i128::from(a), es.acc.bound, "e.acc", k);
                let sum = mult
                    .wrapping_mul(a)
                    .wrapping_sub(shl_wrapping(ws.y64[i], es.y_shift));
                if cfg!(debug_assertions) {
                    let exact =
                        i128::from(mult) * i128::from(a) - (i128::from(ws.y64[i]) << es.y_shift);
                    check(exact, es.sum.bound, "e.sum", k);
                    debug_assert_eq!(i128::from(sum), exact);
                }
                let e = requantize64(sum, es.shift, es.rounding, es.overflow, es.format.width());
                ws.e64[i] = e;
                ws.e[i] = C::of(e);
            }
            // g = requant(Hᵀ e)
            C::t_dot(&ws.h, &ws.hp, n, &ws.e, &mut ws.acc);
            for (g, &a) in ws.g.iter_mut().zip(&ws.acc) {
                let a = a.into();
                check(i128::from(a), layer.g.acc.bound, "g.acc", k);
                *g = apply(&layer.g.requant, a, nw.g);
            }
            // The update, the prox and the new states, with the prox's kind and every
            // per-bin constant resolved once per layer.
            match &layer.prox {
                ProxStage::Soft { lambda } => {
                    let l = *lambda;
                    update(ws, layer, nw, bin, k, |r| r - r.clamp(-l, l));
                }
                ProxStage::Box { limit } => {
                    let l = *limit;
                    update(ws, layer, nw, bin, k, |r| r.clamp(-l, l));
                }
                ProxStage::Table { .. } => {
                    update(ws, layer, nw, bin, k, |r| prox(&layer.prox, r, nw.table));
                }
            }
            std::mem::swap(&mut ws.xpp, &mut ws.xp);
            std::mem::swap(&mut ws.xp, &mut ws.xn);
            if admm {
                std::mem::swap(&mut ws.s, &mut ws.sn);
                std::mem::swap(&mut ws.u, &mut ws.un);
            }
            if let Some(t) = taps.as_deref_mut() {
                t.layers.push(LayerTap {
                    e: ws.e64.clone(),
                    g: ws.g.clone(),
                    x: ws.xp.clone(),
                    s: if admm { ws.s.clone() } else { Vec::new() },
                    u: if admm { ws.u.clone() } else { Vec::new() },
                });
            }
        }
        if let Some(t) = taps {
            let out = if admm { &ws.s } else { &ws.xp };
            t.output = out.clone();
            t.levels = out.iter().map(|&c| ir.decide(c, bin)).collect();
        }
    }

    fn detect_with<C: Code>(&self, frames: &Received<'_>, decisions: &mut [i32]) {
        let (m, n) = (self.ir.m, self.ir.n);
        // 2^frac, exact in f32 for every |frac| ≤ MAX_FRAC.
        let scale = |f: crate::fixed::QFormat| 2f32.powi(f.frac());
        let fe = FrontEnd {
            h_scale: scale(self.ir.inputs.h),
            h_qp: self.h_qp,
            y_scale: scale(self.ir.inputs.y),
            y_qp: self.y_qp,
        };
        debug_assert!(fe.h_scale * self.h_step == 1.0 && fe.y_scale * self.y_step == 1.0);
        decisions
            .par_chunks_mut(TASK_FRAMES * n)
            .enumerate()
            .for_each(|(task, out)| {
                let mut ws = Workspace::<C>::new(m, n);
                for (local, dec) in out.chunks_exact_mut(n).enumerate() {
                    let f = task * TASK_FRAMES + local;
                    let h = &frames.h[f * m * n..(f + 1) * m * n];
                    let y = &frames.y[f * m..(f + 1) * m];
                    ws.load_frame(h, y, &fe);
                    let bin = self.ir.bin_of(frames.noise_var[f] as f32);
                    self.run(&mut ws, bin, None);
                    let out = if self.ir.arch == Arch::Admm {
                        &ws.s
                    } else {
                        &ws.xp
                    };
                    // 2·#{t : c ≥ t} − (levels − 1), one threshold at a time.
                    let top = self.ir.levels() as i32 - 1;
                    dec.fill(-top);
                    for &t in &self.ir.slicer.thresholds[bin] {
                        for (d, &c) in dec.iter_mut().zip(out) {
                            *d += 2 * i32::from(c >= t);
                        }
                    }
                }
            });
    }

    /// Quantizes every frame with the front end (docs/ir.md §Inputs), runs the integer model
    /// and writes the hard decision (alphabet level) of every output element into
    /// `decisions`, which holds `frames.frames × n` values.
    pub fn detect_received(
        &self,
        frames: &Received<'_>,
        decisions: &mut [i32],
    ) -> Result<(), IrError> {
        self.check_frames(frames)?;
        if decisions.len() != frames.frames * frames.n {
            return Err(IrError::Shape(format!(
                "decision buffer holds {} values, batch needs {} frames × {} = {}",
                decisions.len(),
                frames.frames,
                frames.n,
                frames.frames * frames.n
            )));
        }
        for (field, len, per) in [
            ("h", frames.h.len(), self.ir.m * self.ir.n),
            ("y", frames.y.len(), self.ir.m),
            ("noise_var", frames.noise_var.len(), 1),
        ] {
            if len < frames.frames * per {
                return Err(IrError::Shape(format!(
                    "frame batch field {field} holds {len} values, {} frames need {}",
                    frames.frames,
                    frames.frames * per
                )));
            }
        }
        if self.ir.n == 0 || frames.frames == 0 {
            return Ok(());
        }
        if self.fast {
            self.detect_with::<i16>(frames, decisions)
        } else {
            self.detect_with::<i32>(frames, decisions)
        }
        Ok(())
    }
}

/// x⁽ᵏ⁾ (and s⁽ᵏ⁾, u⁽ᵏ⁾ for ADMM-Net) of layer `k` from the states and g in `ws`, into
/// `ws.xn` (`ws.sn`, `ws.un`), with `prox` the layer's prox.
#[inline]
fn update<C: Code>(
    ws: &mut Workspace<C>,
    layer: &Layer,
    nw: Narrow,
    bin: usize,
    k: usize,
    prox: impl Fn(i64) -> i64,
) {
    let up = &layer.update;
    let x1 = up.x1[bin];
    let x2 = up.x2.get(bin).copied().unwrap_or(0);
    let gc = up.g_coef;
    let out = &layer.out;
    let (out_m, out_s) = (out.mult[bin], out.shift[bin]);
    // Every sum is formed in wrapping i64 arithmetic: its exact value is within its proved
    // bound, so the result modulo 2^64 is the exact value (debug builds check in i128).
    let r_of = |xp: i64, xpp: i64, g: i64| {
        x1.wrapping_mul(xp)
            .wrapping_add(x2.wrapping_mul(xpp))
            .wrapping_add(gc.wrapping_mul(g))
    };
    match &layer.admm {
        None => {
            for (((xn, &xp), &xpp), &g) in ws.xn.iter_mut().zip(&ws.xp).zip(&ws.xpp).zip(&ws.g) {
                let r = r_of(xp, xpp, g);
                if cfg!(debug_assertions) {
                    let exact = i128::from(x1) * i128::from(xp)
                        + i128::from(x2) * i128::from(xpp)
                        + i128::from(gc) * i128::from(g);
                    check(exact, up.acc.bound, "update.acc", k);
                    debug_assert_eq!(i128::from(r), exact);
                }
                *xn = apply_bin(out, (out_m, out_s), prox(r), nw.out);
            }
        }
        Some(a) => {
            let c = up.c.get(bin).copied().unwrap_or(0);
            let x_mult = (a.x_out.mult[bin], a.x_out.shift[bin]);
            let (vx, vu) = (a.vx[bin], a.vu[bin]);
            for j in 0..ws.xn.len() {
                let (xp, xpp, g, u) = (ws.xp[j], ws.xpp[j], ws.g[j], ws.u[j]);
                // x, s and u are state codes (≤ 32 bits): the constraint term is exact.
                let constraint = xp - ws.s[j] + u;
                let r = r_of(xp, xpp, g).wrapping_add(c.wrapping_mul(constraint));
                if cfg!(debug_assertions) {
                    let exact = i128::from(x1) * i128::from(xp)
                        + i128::from(x2) * i128::from(xpp)
                        + i128::from(gc) * i128::from(g)
                        + i128::from(c) * i128::from(constraint);
                    check(exact, up.acc.bound, "update.acc", k);
                    debug_assert_eq!(i128::from(r), exact);
                }
                let x = apply_bin(&a.x_out, x_mult, r, nw.x_out);
                let v = vx.wrapping_mul(x).wrapping_add(vu.wrapping_mul(u));
                let s = apply_bin(out, (out_m, out_s), prox(v), nw.out);
                let w = v.wrapping_sub(vx.wrapping_mul(s));
                if cfg!(debug_assertions) {
                    let exact_v = i128::from(vx) * i128::from(x) + i128::from(vu) * i128::from(u);
                    check(exact_v, a.v.bound, "admm.v", k);
                    debug_assert_eq!(i128::from(v), exact_v);
                    let exact_w = exact_v - i128::from(vx) * i128::from(s);
                    check(exact_w, a.w.bound, "admm.w", k);
                    debug_assert_eq!(i128::from(w), exact_w);
                }
                ws.xn[j] = x;
                ws.sn[j] = s;
                ws.un[j] = apply_bin(&a.x_out, x_mult, w, nw.x_out);
            }
        }
    }
}

/// Whether the matched filter's requantization may run in `i64`.
fn init_narrow(ir: &Ir) -> bool {
    match &ir.init {
        InitStage::Zero => true,
        InitStage::MatchedFilter { acc, requant } => product_fits(acc.bound, [requant.mult()]),
    }
}

/// `x·2^s` modulo 2^64.
#[inline]
fn shl_wrapping(x: i64, s: u32) -> i64 {
    if s < 64 { x << s } else { 0 }
}

/// [`requantize_wide`] of an `i64`: `overflow(round_shift(x, shift), width)`, the same
/// integer for every `shift ≤ 126`, with `i64` arithmetic for `shift ≤ 63`.
#[inline]
fn requantize64(
    x: i64,
    shift: u32,
    rounding: RoundingMode,
    overflow_mode: OverflowMode,
    width: u32,
) -> i64 {
    if shift == 0 || shift > 63 {
        return requantize_wide(i128::from(x), shift, rounding, overflow_mode, width);
    }
    let q = x >> shift;
    let r = x & ((1u64 << shift) - 1) as i64;
    let half = 1i64 << (shift - 1);
    let carry = match rounding {
        RoundingMode::Floor => false,
        RoundingMode::HalfUp => r >= half,
        RoundingMode::HalfEven => r > half || (r == half && q & 1 == 1),
    };
    // |q| ≤ 2^62 for shift ≥ 1: q + 1 does not overflow.
    let v = overflow(q + i64::from(carry), width, overflow_mode);
    debug_assert_eq!(
        v,
        requantize_wide(i128::from(x), shift, rounding, overflow_mode, width)
    );
    v
}

#[inline]
fn prox(stage: &ProxStage, r: i64, narrow: bool) -> i64 {
    match stage {
        ProxStage::Soft { lambda } => r - r.clamp(-lambda, *lambda),
        ProxStage::Box { limit } => r.clamp(-limit, *limit),
        ProxStage::Table { input, table, .. } => {
            let half = 1i64 << (input.out_width() - 1);
            table[(apply(input, r, narrow) + half) as usize]
        }
    }
}
