//! The micro-program of the folded Gram engine (docs/rtl.md, "IR v2"): every `combine` of
//! docs/ir.md §10.3 as a run of multiply-accumulate instructions on one shared multiplier,
//! the two reciprocals as sequential divisions, the denoiser's bucket and table look-up.
//!
//! A MAC instruction adds `±(a · b) << sh` to the accumulator (cleared first when `first`);
//! with `last` the sum is rounded half-up down by `down` bits, saturated symmetrically to
//! `satw` bits (none when 0) and written to `dest`. Shifting each product onto the common
//! frac is the aligned sum of the combine, since every shift is a multiplication by a power
//! of two; the interval analysis (docs/ir.md §10.4) keeps every partial sum below 2^62, so a
//! 64-bit accumulator is exact. Terms that are zero by construction (x⁽⁰⁾ = 0, p₀ = d₀ = 0,
//! a zero constant) are left out, which changes no sum.

use kaq_ir::fixed::{Divide, QFormat, max_code};
use kaq_ir::gram::GramIr;

/// What an instruction does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Multiply-accumulate (and finish on `last`).
    Mac,
    /// `dest = max(reg[a], const[b])`.
    Max,
    /// `dest = divider k (1 / reg[a])`: 0 is `block.inv_trace`, 1 is `block.diag_inv` (an oamp
    /// design's `block.bank.pivot_inv`), 2 an oamp design's `block.bank.c_inv`.
    Div(u8),
    /// `bucket = #{j : reg[a] ≥ thresholds[j]}`.
    Bucket,
    /// `dest = table[bucket][reg[a] + 2^(r.width − 1)]`.
    Lut,
    /// The bank entry of an oamp design (docs/rtl.md, "IR v4"): `j = #{t : reg[a] <
    /// sel.thresholds[t]}`; the selection offset `j · sel.stride` is added to the a address
    /// of every later instruction with [`Ins::a_sel`].
    Select,
}

impl Op {
    /// The op's code in the instruction word.
    pub fn code(self) -> u32 {
        match self {
            Op::Mac => 0,
            Op::Max => 1,
            Op::Div(0) => 2,
            Op::Div(1) => 3,
            Op::Div(_) => 6,
            Op::Bucket => 4,
            Op::Lut => 5,
            Op::Select => 7,
        }
    }
}

/// One instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ins {
    /// The operation.
    pub op: Op,
    /// Register of operand a.
    pub a: usize,
    /// Register (or constant index when `b_const`) of operand b.
    pub b: usize,
    /// Whether b is read from the constant ROM.
    pub b_const: bool,
    /// Whether the SNR bin is added to b's constant index.
    pub b_bin: bool,
    /// Subtract the term.
    pub neg: bool,
    /// Left shift of the product.
    pub sh: u32,
    /// Clear the accumulator first.
    pub first: bool,
    /// Round, saturate and write `dest`.
    pub last: bool,
    /// Right shift (half-up) of the finished sum.
    pub down: u32,
    /// Per-SNR-bin shifts (docs/ir.md §10.8): `Some(base)` takes `sh` and `down` from
    /// [`Program::shifts`]`[base + bin]` instead of the two fields (which are then 0).
    pub shift_bin: Option<usize>,
    /// Symmetric saturation width (0: none).
    pub satw: u32,
    /// Destination register.
    pub dest: usize,
    /// Repetitions of a MAC (≥ 1): repetition `k` multiplies registers `a + k·sa` and
    /// `b + k·sb` (constant `b + k·sb`); `first` applies to the first, `last` to the last.
    pub rep: u32,
    /// Stride of operand a over the repetitions.
    pub sa: u32,
    /// Stride of operand b over the repetitions.
    pub sb: u32,
    /// Elementwise across the lanes (a MAC or a table look-up of `rep` ≤ lanes repetitions
    /// in one cycle): repetition k runs on lane k with its own accumulator and writes
    /// `dest + k`. Otherwise a MAC's lanes' products are summed into accumulator `lane`.
    pub wide: bool,
    /// The accumulator (and the writing lane) of an instruction that is not wide: the bank
    /// of `dest` in bank V (0 for a destination in bank G or W).
    pub lane: usize,
    /// Add the bank-entry selection offset ([`Op::Select`]) to operand a's register (an oamp
    /// design's reads of Q_j, α_j, a_j, b_j).
    pub a_sel: bool,
}

impl Ins {
    pub(super) fn nop(op: Op) -> Self {
        Ins {
            op,
            a: 0,
            b: 0,
            b_const: false,
            b_bin: false,
            neg: false,
            sh: 0,
            first: false,
            last: false,
            down: 0,
            shift_bin: None,
            satw: 0,
            dest: 0,
            rep: 1,
            sa: 0,
            sb: 0,
            wide: false,
            lane: 0,
            a_sel: false,
        }
    }
}

/// The golden-model value an instruction writes (docs/rtl.md, "IR v2", taps): a tensor of
/// the block stage or of a vector, by name; a layer's tensors with [`Stage::layer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tensor {
    /// G, `n × n` row-major.
    G,
    /// Narrow inner copy `c` of G (`g_inner`, docs/ir.md §10.9), `n × n`.
    GInner(usize),
    /// tr G.
    Trace,
    /// 1/tr G.
    InvTrace,
    /// D = 1/diag G.
    DiagInv,
    /// z = H̃ᵀỹ.
    Z,
    /// ‖ỹ‖².
    Yy,
    /// e = z − Gx.
    E,
    /// W, the unrounded residual power sum.
    W,
    /// v² before its floor.
    V2Unfloored,
    /// v² (floored).
    V2,
    /// p of inner step `l` (0-based).
    P(usize),
    /// d of inner step `l`.
    D(usize),
    /// ρ after inner step `l` (the next step's; the last step has none).
    Rho(usize),
    /// The denoiser input r.
    R,
    /// τ².
    Tau2,
    /// The denoiser bucket (the engine's bucket register).
    Bucket,
    /// The layer's new x.
    X,
    /// A tensor of an oamp design (docs/rtl.md, "IR v4"); its taps name registers.
    Oamp(super::oamp::OampTensor),
}

impl Tensor {
    /// The tensor's name as the reports spell it.
    pub fn name(self) -> &'static str {
        match self {
            Tensor::G => "g",
            Tensor::GInner(_) => "g_inner",
            Tensor::Trace => "trace",
            Tensor::InvTrace => "inv_trace",
            Tensor::DiagInv => "diag_inv",
            Tensor::Z => "z",
            Tensor::Yy => "yy",
            Tensor::E => "e",
            Tensor::W => "w",
            Tensor::V2Unfloored => "v2_unfloored",
            Tensor::V2 => "v2",
            Tensor::P(_) => "p",
            Tensor::D(_) => "d",
            Tensor::Rho(_) => "rho",
            Tensor::R => "r",
            Tensor::Tau2 => "tau2",
            Tensor::Bucket => "bucket",
            Tensor::X => "x",
            Tensor::Oamp(t) => t.name(),
        }
    }
}

/// What a run of instructions computes: a tensor, of layer `layer` (0-based) for a layer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// The tensor.
    pub tensor: Tensor,
    /// The layer (0-based) of a layer's tensor, else `None`.
    pub layer: Option<usize>,
}

/// One value an instruction writes, as the tap port shows it: lane `lane`'s write of
/// element `element` of `stage`'s tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapWrite {
    /// The lane whose write it is (0 for bank G, W and the bucket).
    pub lane: usize,
    /// The tensor (and layer).
    pub stage: Stage,
    /// The element within the tensor (row-major for G).
    pub element: usize,
}

/// Labels the instructions `stages.len()..upto` with `tensor` of `layer`.
pub(super) fn mark(stages: &mut Vec<Stage>, upto: usize, tensor: Tensor, layer: Option<usize>) {
    stages.resize(upto, Stage { tensor, layer });
}

/// The register map: every buffer's first register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegMap {
    /// H̃, `m × n` row-major (loaded by the block port).
    pub h: usize,
    /// ỹ, `m` (loaded by the vector port).
    pub y: usize,
    /// G, `n × n` row-major (the block program computes the upper triangle and copies it).
    pub g: usize,
    /// The narrow inner copies of G (`g_inner`, docs/ir.md §10.9), `n × n` row-major each,
    /// one per distinct [`Program::inner`] shift, after G in bank G.
    pub gn: usize,
    /// D, `n`.
    pub dinv: usize,
    /// tr G.
    pub trace: usize,
    /// 1/tr G.
    pub inv_trace: usize,
    /// z, `n`.
    pub z: usize,
    /// ‖ỹ‖².
    pub yy: usize,
    /// x, `n`.
    pub x: usize,
    /// e, `n`.
    pub e: usize,
    /// ρ, `n`.
    pub rho: usize,
    /// p, `n`.
    pub p: usize,
    /// d, `n`.
    pub d: usize,
    /// r, `n`.
    pub r: usize,
    /// W (the unrounded residual power sum).
    pub w: usize,
    /// v².
    pub v2: usize,
    /// τ².
    pub tau2: usize,
    /// A register that always reads 1.
    pub one: usize,
    /// Registers in all.
    pub count: usize,
    /// The lanes: bank V is interleaved over them (register `v() + k` in bank `k mod
    /// lanes`, row `k / lanes`), and every tensor of bank V starts at a multiple of them.
    pub lanes: usize,
}

impl RegMap {
    pub(super) fn new(m: usize, n: usize, copies: usize, lanes: usize) -> Self {
        let mut next = 0usize;
        let mut v0: Option<usize> = None;
        // A tensor of bank V starts on a multiple of the lanes (its element k in bank k mod
        // lanes); H and G are not interleaved.
        let mut take = |k: usize, in_v: bool| {
            if in_v {
                let base = *v0.get_or_insert(next);
                next = base + (next - base).div_ceil(lanes) * lanes;
            }
            let at = next;
            next += k;
            at
        };
        // Bank H (H̃), bank G (G and its narrow copies), bank V (every other tensor), then W
        // and the constant one, which are registers of their own (docs/rtl.md, "IR v2").
        let map = RegMap {
            h: take(m * n, false),
            g: take(n * n, false),
            gn: take(copies * n * n, false),
            y: take(m, true),
            dinv: take(n, true),
            trace: take(1, true),
            inv_trace: take(1, true),
            z: take(n, true),
            yy: take(1, true),
            x: take(n, true),
            e: take(n, true),
            rho: take(n, true),
            p: take(n, true),
            d: take(n, true),
            r: take(n, true),
            v2: take(1, true),
            tau2: take(1, true),
            // Bank V ends on a whole row.
            w: take(1, true),
            one: take(1, false),
            count: 0,
            lanes,
        };
        RegMap { count: next, ..map }
    }

    /// The bank-V lane (interleaved bank) of register `r` of bank V.
    pub fn v_lane(&self, r: usize) -> usize {
        (r - self.v()) % self.lanes
    }

    /// The row of register `r` in its bank-V lane (0 for a register outside bank V).
    pub fn v_row(&self, r: usize) -> usize {
        if self.bank(r) == 2 {
            (r - self.v()) / self.lanes
        } else {
            0
        }
    }

    /// Rows of every bank-V lane.
    pub fn v_rows(&self) -> usize {
        (self.w - self.v()) / self.lanes
    }

    /// First register of bank V.
    pub fn v(&self) -> usize {
        self.y
    }

    /// The bank of register `r`: 0 H, 1 G, 2 V, 3 W, 4 the constant one.
    pub fn bank(&self, r: usize) -> usize {
        if r < self.g {
            0
        } else if r < self.y {
            1
        } else if r < self.w {
            2
        } else if r == self.w {
            3
        } else {
            4
        }
    }
}

/// The engine's program and tables for one [`GramIr`].
#[derive(Debug, Clone)]
pub struct Program {
    /// Rows of H̃.
    pub m: usize,
    /// Columns of H̃.
    pub n: usize,
    /// The register map.
    pub map: RegMap,
    /// The per-channel-block program (G, trace, 1/trace, D).
    pub block: Vec<Ins>,
    /// The per-vector program (z, ‖ỹ‖², the layers).
    pub vector: Vec<Ins>,
    /// The constant ROM.
    pub consts: Vec<i64>,
    /// `block.inv_trace.op`, `block.diag_inv.op`.
    pub divs: [Divide; 2],
    /// Divisor width of both dividers (holds tr G and `d_min`).
    pub div_w: u32,
    /// The denoiser input width (table address bits per bucket).
    pub r_width: u32,
    /// τ² thresholds.
    pub thresholds: Vec<i64>,
    /// The table, `buckets × 2^r_width` state codes.
    pub table: Vec<Vec<i64>>,
    /// The slicer thresholds.
    pub slicer: Vec<i64>,
    /// Levels per real dimension.
    pub levels: usize,
    /// SNR bins.
    pub bins: usize,
    /// Stored widths of bank H, bank G, bank V and of the register W.
    pub bank_w: [u32; 4],
    /// Multiplier port widths (a, b).
    pub mul_w: [u32; 2],
    /// Width of the constant ROM's words.
    pub const_w: u32,
    /// Input, state and output formats.
    pub h_width: u32,
    /// Width of ỹ codes.
    pub y_width: u32,
    /// Width of x codes.
    pub state_width: u32,
    /// MAC lanes: a MAC runs `⌈rep / lanes⌉` cycles, `lanes` repetitions a cycle.
    pub lanes: usize,
    /// The per-SNR-bin shift table `(sh, down)` of the instructions with a
    /// [`Ins::shift_bin`] (IR version 3, docs/ir.md §10.8): one run of `bins` entries per
    /// distinct pattern; empty without `bin_shift`.
    pub shifts: Vec<(u32, u32)>,
    /// The right shifts of the narrow inner copies of G (`g_inner`, docs/ir.md §10.9), one
    /// per distinct shift of a layer with at least two inner steps; copy `c` is at
    /// `map.gn + c·n²`.
    pub inner: Vec<u32>,
    /// What every instruction (block then vector program) computes ([`Program::tap_writes`]).
    pub stages: Vec<Stage>,
    /// The third divider (`Op::Div(2)`): an oamp design's `block.bank.c_inv`; none in cg.
    pub div2: Option<Divide>,
    /// The bank-entry selection of an oamp design ([`Op::Select`]); none in cg.
    pub sel: Option<Selection>,
}

/// The bank-entry selection of an oamp design (docs/rtl.md, "IR v4").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// `block.bank.thresholds` (non-increasing v² codes).
    pub thresholds: Vec<i64>,
    /// Registers between two bank entries' copies of a tensor (the offset of entry j is
    /// `j · stride`).
    pub stride: usize,
}

/// One term of a combine: a · b (b a register or a constant) at `frac[bin]` in SNR bin
/// `bin` (one entry when no layer has `bin_shift`, else one per bin).
#[derive(Clone)]
pub(super) struct Term {
    pub(super) a: usize,
    pub(super) b: B,
    pub(super) neg: bool,
    pub(super) frac: Vec<i32>,
}

#[derive(Clone, Copy)]
pub(super) enum B {
    Reg(usize),
    Const(usize),
    Bin(usize),
}

/// The divisor width of both dividers (holds tr G and `d_min`).
fn div_width(ir: &GramIr) -> u32 {
    let b = &ir.block;
    let g_bound = i128::from(max_code(b.g.width())) * ir.n as i128;
    let dmin = i128::from(b.inv_trace.op.d_min().max(b.diag_inv.op.d_min()));
    bits_for(g_bound).max(bits_for(dmin) + 1).max(2)
}

/// The stored widths of bank H (H̃), bank G, bank V (the widest of ỹ (plus a bit), D, tr G, 1/tr G, z,
/// ‖ỹ‖², x, e, ρ, p, d, r, v² with its floors, τ²) and of the register W.
fn bank_widths(ir: &GramIr) -> [u32; 4] {
    let b = &ir.block;
    let mut v = [
        ir.inputs.y.width() + 1,
        b.diag_inv.op.out_width(),
        div_width(ir),
        b.inv_trace.op.out_width(),
        ir.front.z.width(),
        ir.front.yy.width(),
        ir.state.width(),
    ]
    .into_iter()
    .fold(2, u32::max);
    let mut w = 2;
    for l in &ir.layers {
        let f = &l.formats;
        for fmt in [f.e, f.p, f.d, f.r, f.v2, f.tau2] {
            v = v.max(fmt.width());
        }
        v = v.max(bits_for(l.v2_floor.into()));
        w = w.max(bits_for(w_bound(ir, l)));
    }
    [ir.inputs.h.width(), b.g.width(), v, w]
}

/// Signed bits that hold every value in ±`bound`.
pub(crate) fn bits_for(bound: i128) -> u32 {
    129 - bound.unsigned_abs().leading_zeros()
}

/// One term of a row-wise combine ([`Builder::rows`]) over the rows i of a tensor.
#[derive(Clone)]
pub(super) enum RowTerm {
    /// `a_i · b_i` (b a register), `a_i · b` (a constant): elementwise, `a` and `b` the
    /// tensors' first registers.
    Elem(Term),
    /// `Σ_j a[i·row + j] · b[j]` over `len` terms: row i of a matrix (first register `a`)
    /// times the vector at `b`.
    Dot {
        a: usize,
        row: usize,
        b: usize,
        len: usize,
        neg: bool,
        frac: Vec<i32>,
    },
}

pub(super) struct Builder {
    pub(super) map: RegMap,
    pub(super) lanes: usize,
    pub(super) consts: Vec<i64>,
    /// The stored width of every register (its bank's tensor width).
    pub(super) wid: Vec<u32>,
    /// The per-bin shift table ([`Program::shifts`]).
    pub(super) shifts: Vec<(u32, u32)>,
}

impl Builder {
    pub(super) fn konst(&mut self, v: i64) -> usize {
        if let Some(i) = self.consts.iter().position(|&c| c == v) {
            return i;
        }
        self.consts.push(v);
        self.consts.len() - 1
    }

    pub(super) fn bins(&mut self, codes: &[i64]) -> usize {
        let at = self.consts.len();
        self.consts.extend_from_slice(codes);
        at
    }

    /// The base of the per-bin shift pattern `pat` in the shift table (appended when new).
    fn pattern(&mut self, pat: &[(u32, u32)]) -> usize {
        let k = pat.len();
        if let Some(c) = self.shifts.chunks_exact(k).position(|c| c == pat) {
            return c * k;
        }
        self.shifts.extend_from_slice(pat);
        self.shifts.len() - k
    }

    /// The instructions of `combine(terms, out)` into `dest`, the output at frac
    /// `out_frac[bin]` saturated to `satw` bits (0: the exact aligned sum, no saturation). A
    /// register × register term puts the wider register on port a; a run of terms with equal
    /// sign and, in every bin, equal shift whose operands step by constant strides is one
    /// repeated MAC. An instruction whose shift (or, finishing, whose `down`) differs between
    /// the bins takes both from the per-bin shift table; the instructions themselves are
    /// those of every bin.
    pub(super) fn combine(
        &mut self,
        prog: &mut Vec<Ins>,
        terms: &[Term],
        out_frac: &[i32],
        satw: u32,
        dest: usize,
    ) {
        assert!(!terms.is_empty(), "a combine has a term");
        let nb = out_frac.len();
        let f: Vec<i32> = (0..nb)
            .map(|b| terms.iter().map(|t| t.frac[b]).fold(out_frac[b], i32::max))
            .collect();
        let start = prog.len();
        // The per-bin shift of every instruction of this combine.
        let mut shs: Vec<Vec<u32>> = Vec::new();
        for t in terms {
            let (a, b, b_const, b_bin) = match t.b {
                B::Reg(r) if self.wid[r] > self.wid[t.a] => (r, t.a, false, false),
                B::Reg(r) => (t.a, r, false, false),
                B::Const(c) => (t.a, c, true, false),
                B::Bin(c) => (t.a, c, true, true),
            };
            let sh: Vec<u32> = (0..nb).map(|k| (f[k] - t.frac[k]) as u32).collect();
            let open = prog.len() > start;
            if let Some(prev) = prog.last_mut().filter(|_| open) {
                let k = prev.rep as usize;
                let fits = |at: usize, now: usize, stride: u32| {
                    if k == 1 {
                        now >= at
                    } else {
                        now == at + k * stride as usize
                    }
                };
                // A constant b repeats only as one constant (stride 0): the lanes share the
                // one constant port.
                if prev.neg == t.neg
                    && shs.last() == Some(&sh)
                    && prev.b_const == b_const
                    && (!b_const || b == prev.b)
                    && !b_bin
                    && !prev.b_bin
                    && fits(prev.a, a, prev.sa)
                    && fits(prev.b, b, prev.sb)
                {
                    if k == 1 {
                        prev.sa = (a - prev.a) as u32;
                        prev.sb = (b - prev.b) as u32;
                    }
                    prev.rep += 1;
                    continue;
                }
            }
            prog.push(Ins {
                a,
                b,
                b_const,
                b_bin,
                neg: t.neg,
                first: prog.len() == start,
                ..Ins::nop(Op::Mac)
            });
            shs.push(sh);
        }
        let count = prog.len() - start;
        let last = prog.last_mut().expect("a combine has a term");
        last.last = true;
        last.satw = satw;
        last.dest = dest;
        let lane = self.lane_of(dest);
        for (k, sh) in shs.iter().enumerate() {
            let down: Vec<u32> = if k + 1 == count {
                (0..nb).map(|b| (f[b] - out_frac[b]) as u32).collect()
            } else {
                vec![0; nb]
            };
            let ins = &mut prog[start + k];
            ins.lane = lane;
            self.set_shifts(ins, sh, &down);
        }
    }

    /// The accumulator and writing lane of a destination: its bank-V lane, else 0.
    pub(super) fn lane_of(&self, dest: usize) -> usize {
        if self.map.bank(dest) == 2 {
            self.map.v_lane(dest)
        } else {
            0
        }
    }

    /// Sets the product shift `sh` and the finish's `down` (one per SNR bin) of `ins`: its
    /// fields when equal in every bin, else a pattern of the per-bin shift table.
    fn set_shifts(&mut self, ins: &mut Ins, sh: &[u32], down: &[u32]) {
        if sh.iter().all(|&v| v == sh[0]) && down.iter().all(|&v| v == down[0]) {
            ins.sh = sh[0];
            ins.down = down[0];
        } else {
            let pat: Vec<(u32, u32)> = sh.iter().copied().zip(down.iter().copied()).collect();
            ins.shift_bin = Some(self.pattern(&pat));
        }
    }

    /// The instructions of `combine(terms_i, out)` into `dest + i` for every row i < `n`,
    /// the lanes across rows: the rows in passes of up to P (the lanes), each pass one
    /// wide instruction per elementwise term (lane l, its own accumulator, row `i₀ + l`),
    /// then each row's dot product, if any, split over the lanes into the row's accumulator
    /// (lane `l`), finishing the row. The elementwise terms come first; the sum is the same
    /// integer in any order (docs/ir.md §10.4).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn rows(
        &mut self,
        prog: &mut Vec<Ins>,
        n: usize,
        terms: &[RowTerm],
        out_frac: &[i32],
        satw: u32,
        dest: usize,
    ) {
        let nb = out_frac.len();
        let frac = |t: &RowTerm| match t {
            RowTerm::Elem(t) => t.frac.clone(),
            RowTerm::Dot { frac, .. } => frac.clone(),
        };
        let f: Vec<i32> = (0..nb)
            .map(|b| terms.iter().map(|t| frac(t)[b]).fold(out_frac[b], i32::max))
            .collect();
        let down: Vec<u32> = (0..nb).map(|b| (f[b] - out_frac[b]) as u32).collect();
        let zero = vec![0; nb];
        let p = self.lanes;
        let elems: Vec<&Term> = terms
            .iter()
            .filter_map(|t| match t {
                RowTerm::Elem(t) => Some(t),
                RowTerm::Dot { .. } => None,
            })
            .collect();
        let dot = terms.iter().find(|t| matches!(t, RowTerm::Dot { .. }));
        for i0 in (0..n).step_by(p) {
            let w = p.min(n - i0);
            for (k, t) in elems.iter().enumerate() {
                let (a, b, b_const, b_bin, sb) = match t.b {
                    B::Reg(r) if self.wid[r] > self.wid[t.a] => (r + i0, t.a + i0, false, false, 1),
                    B::Reg(r) => (t.a + i0, r + i0, false, false, 1),
                    B::Const(c) => (t.a + i0, c, true, false, 0),
                    B::Bin(c) => (t.a + i0, c, true, true, 0),
                };
                let last = dot.is_none() && k + 1 == elems.len();
                let mut ins = Ins {
                    a,
                    b,
                    b_const,
                    b_bin,
                    neg: t.neg,
                    first: k == 0,
                    last,
                    satw: if last { satw } else { 0 },
                    dest: if last { dest + i0 } else { 0 },
                    rep: w as u32,
                    sa: 1,
                    sb,
                    wide: true,
                    ..Ins::nop(Op::Mac)
                };
                let sh: Vec<u32> = (0..nb).map(|b| (f[b] - t.frac[b]) as u32).collect();
                self.set_shifts(&mut ins, &sh, if last { &down } else { &zero });
                prog.push(ins);
            }
            if let Some(&RowTerm::Dot {
                a,
                row,
                b,
                len,
                neg,
                ref frac,
            }) = dot
            {
                let sh: Vec<u32> = (0..nb).map(|k| (f[k] - frac[k]) as u32).collect();
                for l in 0..w {
                    let i = i0 + l;
                    let (ra, rb) = (a + i * row, b);
                    let (a, b) = if self.wid[rb] > self.wid[ra] {
                        (rb, ra)
                    } else {
                        (ra, rb)
                    };
                    let mut ins = Ins {
                        a,
                        b,
                        neg,
                        first: elems.is_empty(),
                        last: true,
                        satw,
                        dest: dest + i,
                        rep: len as u32,
                        sa: 1,
                        sb: 1,
                        lane: self.lane_of(dest + i),
                        ..Ins::nop(Op::Mac)
                    };
                    self.set_shifts(&mut ins, &sh, &down);
                    prog.push(ins);
                }
            }
        }
    }
}

/// The bound of W, the unrounded residual power sum of `layer` (docs/ir.md §10.4), the
/// largest over the SNR bins.
fn w_bound(ir: &GramIr, layer: &kaq_ir::gram::GramLayer) -> i128 {
    let q = |f: QFormat| i128::from(max_code(f.width()));
    let n = ir.n as i128;
    let (xf, zf, yyf) = (ir.state.frac(), ir.front.z.frac(), ir.front.yy.frac());
    let noise = ir.front.noise.iter().map(|v| i128::from(*v).abs()).max();
    (0..ir.snr_bins.count)
        .map(|bin| {
            let f = layer.formats_at(bin);
            let terms = [
                (q(ir.front.yy), yyf),
                (n * q(ir.state) * q(ir.front.z), xf + zf),
                (n * q(ir.state) * q(f.e), xf + f.e.frac()),
                (noise.unwrap_or(0), yyf),
            ];
            let top = terms.iter().map(|t| t.1).fold(f.v2.frac(), i32::max);
            terms.iter().map(|&(b, fr)| b << (top - fr) as u32).sum()
        })
        .max()
        .unwrap_or(0)
}

impl Program {
    /// The program of a validated `ir` on one MAC lane.
    pub fn new(ir: &GramIr) -> Self {
        Self::with_lanes(ir, 1)
    }

    /// The program of a validated `ir` on `lanes` (≥ 1) MAC lanes: the same instructions,
    /// each MAC splitting its repetitions over the lanes (docs/rtl.md, "IR v2").
    pub fn with_lanes(ir: &GramIr, lanes: usize) -> Self {
        assert!(lanes >= 1, "at least one lane");
        let (m, n) = (ir.m, ir.n);
        let gfmt = ir.block.g;
        // The narrow copies of G: one per distinct shift of a layer whose ρ reads one.
        let mut inner: Vec<u32> = Vec::new();
        for l in &ir.layers {
            let s = l.inner_g_shift(gfmt);
            if s > 0 && l.steps.len() > 1 && !inner.contains(&s) {
                inner.push(s);
            }
        }
        let map = RegMap::new(m, n, inner.len(), lanes);
        let bank_w = bank_widths(ir);
        // Every register's value width (its tensor's format), which sizes the multiplier;
        // its bank's width (at least as wide) is what is stored.
        let mut wid: Vec<u32> = (0..map.count)
            .map(|r| match map.bank(r) {
                4 => 2,
                k => bank_w[k],
            })
            .collect();
        let lmax = |f: fn(&kaq_ir::gram::LayerFormats) -> QFormat| {
            ir.layers
                .iter()
                .map(|l| f(&l.formats).width())
                .max()
                .unwrap_or(2)
        };
        let v2w = ir
            .layers
            .iter()
            .map(|l| l.formats.v2.width().max(bits_for(l.v2_floor.into())))
            .max()
            .unwrap_or(2);
        let b = &ir.block;
        for (at, len, w) in [
            (map.y, m, ir.inputs.y.width()),
            (map.dinv, n, b.diag_inv.op.out_width()),
            (map.trace, 1, div_width(ir)),
            (map.inv_trace, 1, b.inv_trace.op.out_width()),
            (map.z, n, ir.front.z.width()),
            (map.yy, 1, ir.front.yy.width()),
            (map.x, n, ir.state.width()),
            (map.e, n, lmax(|f| f.e)),
            (map.rho, n, lmax(|f| f.e)),
            (map.p, n, lmax(|f| f.p)),
            (map.d, n, lmax(|f| f.d)),
            (map.r, n, lmax(|f| f.r)),
            (map.v2, 1, v2w),
            (map.tau2, 1, lmax(|f| f.tau2)),
        ] {
            wid[at..at + len].fill(w);
        }
        for (c, &s) in inner.iter().enumerate() {
            let at = map.gn + c * n * n;
            wid[at..at + n * n].fill(gfmt.width() - s);
        }
        let mut bld = Builder {
            map,
            lanes,
            consts: Vec::new(),
            wid,
            shifts: Vec::new(),
        };
        // The fracs of a combine are per SNR bin when a layer moves its formats by bin
        // (docs/ir.md §10.8), else one value.
        let nb = if ir.layers.iter().any(|l| l.bin_shift.is_some()) {
            ir.snr_bins.count
        } else {
            1
        };
        let same = |x: i32| vec![x; nb];
        let one_c = bld.konst(1);
        let gidx = |i: usize, j: usize| map.g + i * n + j;
        let (fh, fy) = (ir.inputs.h.frac(), ir.inputs.y.frac());
        let (gf, xf) = (gfmt.frac(), ir.state.frac());
        let (zf, yyf) = (ir.front.z.frac(), ir.front.yy.frac());
        let it_f = ir.block.inv_trace.format.frac();
        let df = ir.block.diag_inv.format.frac();
        let reg = |a: usize, b: usize, neg: bool, frac: Vec<i32>| Term {
            a,
            b: B::Reg(b),
            neg,
            frac,
        };

        // The block stage.
        let mut block = Vec::new();
        for i in 0..n {
            for j in i..n {
                let terms: Vec<Term> = (0..m)
                    .map(|r| reg(map.h + r * n + i, map.h + r * n + j, false, same(2 * fh)))
                    .collect();
                bld.combine(&mut block, &terms, &same(gf), gfmt.width(), gidx(i, j));
            }
        }
        let mut sb = Vec::new();
        let mut sv = Vec::new();
        let trace: Vec<Term> = (0..n)
            .map(|i| Term {
                a: gidx(i, i),
                b: B::Const(one_c),
                neg: false,
                frac: same(gf),
            })
            .collect();
        // The lower triangle: G[j][i] = G[i][j] · 1.
        for i in 0..n {
            for j in i + 1..n {
                block.push(Ins {
                    a: gidx(i, j),
                    b: one_c,
                    b_const: true,
                    first: true,
                    last: true,
                    dest: gidx(j, i),
                    ..Ins::nop(Op::Mac)
                });
            }
        }
        mark(&mut sb, block.len(), Tensor::G, None);
        // The narrow copies: G⁽ʷ⁾ = sat_w(round_half_up(G >> s)), one entry a cycle.
        for (c, &s) in inner.iter().enumerate() {
            for k in 0..n * n {
                block.push(Ins {
                    a: map.g + k,
                    b: one_c,
                    b_const: true,
                    first: true,
                    last: true,
                    down: s,
                    satw: gfmt.width() - s,
                    dest: map.gn + c * n * n + k,
                    ..Ins::nop(Op::Mac)
                });
            }
            mark(&mut sb, block.len(), Tensor::GInner(c), None);
        }
        bld.combine(&mut block, &trace, &same(gf), 0, map.trace);
        mark(&mut sb, block.len(), Tensor::Trace, None);
        block.push(Ins {
            a: map.trace,
            dest: map.inv_trace,
            ..Ins::nop(Op::Div(0))
        });
        mark(&mut sb, block.len(), Tensor::InvTrace, None);
        for i in 0..n {
            block.push(Ins {
                a: gidx(i, i),
                dest: map.dinv + i,
                lane: map.v_lane(map.dinv + i),
                ..Ins::nop(Op::Div(1))
            });
        }
        mark(&mut sb, block.len(), Tensor::DiagInv, None);

        // The vector front.
        let mut vector = Vec::new();
        for j in 0..n {
            let terms: Vec<Term> = (0..m)
                .map(|r| reg(map.h + r * n + j, map.y + r, false, same(fh + fy)))
                .collect();
            let z = ir.front.z;
            bld.combine(&mut vector, &terms, &same(z.frac()), z.width(), map.z + j);
        }
        mark(&mut sv, vector.len(), Tensor::Z, None);
        let terms: Vec<Term> = (0..m)
            .map(|r| reg(map.y + r, map.y + r, false, same(2 * fy)))
            .collect();
        let yy = ir.front.yy;
        bld.combine(&mut vector, &terms, &same(yy.frac()), yy.width(), map.yy);
        mark(&mut sv, vector.len(), Tensor::Yy, None);
        let noise = bld.bins(&ir.front.noise);
        let konst = |bld: &mut Builder, a: usize, code: i64, neg: bool, frac: Vec<i32>| Term {
            a,
            b: B::Const(bld.konst(code)),
            neg,
            frac,
        };

        for (k, layer) in ir.layers.iter().enumerate() {
            let f = &layer.formats;
            // The layer's formats in every bin, and a frac per bin from them.
            let fb: Vec<kaq_ir::gram::LayerFormats> =
                (0..nb).map(|bin| layer.formats_at(bin)).collect();
            let at = |g: &dyn Fn(&kaq_ir::gram::LayerFormats) -> i32| -> Vec<i32> {
                fb.iter().map(g).collect()
            };
            let x_zero = k == 0;
            // e = z − Gx.
            let mut terms = vec![RowTerm::Elem(konst(&mut bld, map.z, 1, false, same(zf)))];
            if !x_zero {
                terms.push(RowTerm::Dot {
                    a: map.g,
                    row: n,
                    b: map.x,
                    len: n,
                    neg: true,
                    frac: same(gf + xf),
                });
            }
            bld.rows(
                &mut vector,
                n,
                &terms,
                &at(&|f| f.e.frac()),
                f.e.width(),
                map.e,
            );
            mark(&mut sv, vector.len(), Tensor::E, Some(k));
            // W, exact at F_W.
            let wf = at(&|f| {
                [yyf, xf + zf, xf + f.e.frac(), yyf]
                    .into_iter()
                    .fold(f.v2.frac(), i32::max)
            });
            let mut terms = vec![konst(&mut bld, map.yy, 1, false, same(yyf))];
            if !x_zero {
                terms.extend((0..n).map(|j| reg(map.x + j, map.z + j, true, same(xf + zf))));
                terms.extend(
                    (0..n).map(|j| reg(map.x + j, map.e + j, true, at(&|f| xf + f.e.frac()))),
                );
            }
            terms.push(Term {
                a: map.one,
                b: B::Bin(noise),
                neg: true,
                frac: same(yyf),
            });
            bld.combine(&mut vector, &terms, &wf, 0, map.w);
            mark(&mut sv, vector.len(), Tensor::W, Some(k));
            // v² = max(combine(W · 1/tr G), floor).
            let wf_it: Vec<i32> = wf.iter().map(|&w| w + it_f).collect();
            let terms = [reg(map.w, map.inv_trace, false, wf_it)];
            bld.combine(
                &mut vector,
                &terms,
                &at(&|f| f.v2.frac()),
                f.v2.width(),
                map.v2,
            );
            mark(&mut sv, vector.len(), Tensor::V2Unfloored, Some(k));
            vector.push(Ins {
                a: map.v2,
                b: bld.konst(layer.v2_floor),
                b_const: true,
                dest: map.v2,
                ..Ins::nop(Op::Max)
            });
            mark(&mut sv, vector.len(), Tensor::V2, Some(k));
            // The inner steps; ρ's G·d reads the layer's narrow copy of G, if any.
            let delta = bld.bins(&layer.delta.codes);
            let gi = layer.inner_g(gfmt);
            let gsrc = match inner.iter().position(|&s| s == layer.inner_g_shift(gfmt)) {
                Some(c) => map.gn + c * n * n,
                None => map.g,
            };
            let steps = layer.steps.len();
            for (l, s) in layer.steps.iter().enumerate() {
                let rho = if l == 0 { map.e } else { map.rho };
                let mut terms = vec![RowTerm::Elem(reg(
                    rho,
                    map.dinv,
                    false,
                    at(&|f| df + f.e.frac()),
                ))];
                if l > 0 && s.beta.code != 0 {
                    terms.push(RowTerm::Elem(konst(
                        &mut bld,
                        map.p,
                        s.beta.code,
                        false,
                        at(&|f| s.beta.frac + f.p.frac()),
                    )));
                }
                bld.rows(
                    &mut vector,
                    n,
                    &terms,
                    &at(&|f| f.p.frac()),
                    f.p.width(),
                    map.p,
                );
                mark(&mut sv, vector.len(), Tensor::P(l), Some(k));
                let mut terms = Vec::new();
                if l > 0 {
                    terms.push(RowTerm::Elem(konst(
                        &mut bld,
                        map.d,
                        1,
                        false,
                        at(&|f| f.d.frac()),
                    )));
                }
                if s.omega.code != 0 || terms.is_empty() {
                    terms.push(RowTerm::Elem(konst(
                        &mut bld,
                        map.p,
                        s.omega.code,
                        false,
                        at(&|f| s.omega.frac + f.p.frac()),
                    )));
                }
                bld.rows(
                    &mut vector,
                    n,
                    &terms,
                    &at(&|f| f.d.frac()),
                    f.d.width(),
                    map.d,
                );
                mark(&mut sv, vector.len(), Tensor::D(l), Some(k));
                if l + 1 < steps {
                    let terms = [
                        RowTerm::Elem(konst(&mut bld, map.e, 1, false, at(&|f| f.e.frac()))),
                        RowTerm::Elem(Term {
                            a: map.d,
                            b: B::Bin(delta),
                            neg: true,
                            frac: at(&|f| layer.delta.frac + f.d.frac()),
                        }),
                        RowTerm::Dot {
                            a: gsrc,
                            row: n,
                            b: map.d,
                            len: n,
                            neg: true,
                            frac: at(&|f| gi.frac() + f.d.frac()),
                        },
                    ];
                    bld.rows(
                        &mut vector,
                        n,
                        &terms,
                        &at(&|f| f.e.frac()),
                        f.e.width(),
                        map.rho,
                    );
                    mark(&mut sv, vector.len(), Tensor::Rho(l), Some(k));
                }
            }
            // r = x + γ d.
            let mut terms = Vec::new();
            if !x_zero {
                terms.push(RowTerm::Elem(konst(&mut bld, map.x, 1, false, same(xf))));
            }
            if layer.gamma.code != 0 || terms.is_empty() {
                terms.push(RowTerm::Elem(konst(
                    &mut bld,
                    map.d,
                    layer.gamma.code,
                    false,
                    at(&|f| layer.gamma.frac + f.d.frac()),
                )));
            }
            bld.rows(
                &mut vector,
                n,
                &terms,
                &same(f.r.frac()),
                f.r.width(),
                map.r,
            );
            mark(&mut sv, vector.len(), Tensor::R, Some(k));
            // τ², bucket, table.
            let ts = bld.bins(&layer.ts.codes);
            let terms = [
                konst(
                    &mut bld,
                    map.v2,
                    layer.tv.code,
                    false,
                    at(&|f| layer.tv.frac + f.v2.frac()),
                ),
                Term {
                    a: map.one,
                    b: B::Bin(ts),
                    neg: false,
                    frac: same(layer.ts.frac),
                },
            ];
            bld.combine(
                &mut vector,
                &terms,
                &same(f.tau2.frac()),
                f.tau2.width(),
                map.tau2,
            );
            mark(&mut sv, vector.len(), Tensor::Tau2, Some(k));
            vector.push(Ins {
                a: map.tau2,
                ..Ins::nop(Op::Bucket)
            });
            mark(&mut sv, vector.len(), Tensor::Bucket, Some(k));
            for i0 in (0..n).step_by(lanes) {
                vector.push(Ins {
                    a: map.r + i0,
                    dest: map.x + i0,
                    rep: lanes.min(n - i0) as u32,
                    sa: 1,
                    wide: true,
                    ..Ins::nop(Op::Lut)
                });
            }
            mark(&mut sv, vector.len(), Tensor::X, Some(k));
        }

        let b = &ir.block;
        let div_w = div_width(ir);
        // The multiplier's ports: the widest a and b of any MAC whose a is not the constant
        // one (a term 1 · b bypasses the multiplier).
        let (mut mul_a, mut mul_b) = (2, 2);
        for ins in block.iter().chain(&vector).filter(|i| i.op == Op::Mac) {
            if ins.a == map.one {
                continue;
            }
            mul_a = mul_a.max(bld.wid[ins.a]);
            let bw = if ins.b_const {
                let span = if ins.b_bin {
                    ins.b..ins.b + ir.snr_bins.count
                } else {
                    ins.b..ins.b + (ins.rep as usize - 1) * ins.sb as usize + 1
                };
                bld.consts[span]
                    .iter()
                    .map(|&c| bits_for(c.into()))
                    .max()
                    .unwrap_or(2)
            } else {
                bld.wid[ins.b]
            };
            mul_b = mul_b.max(bw);
        }
        let const_w = bld
            .consts
            .iter()
            .map(|&c| bits_for(c.into()))
            .fold(2, u32::max);
        Program {
            m,
            n,
            map,
            block,
            vector,
            bank_w,
            mul_w: [mul_a, mul_b],
            const_w,
            consts: bld.consts,
            divs: [b.inv_trace.op, b.diag_inv.op],
            div_w,
            r_width: ir.layers[0].formats.r.width(),
            thresholds: ir.denoiser.thresholds.clone(),
            table: ir.denoiser.table.clone(),
            slicer: ir.slicer.clone(),
            levels: ir.levels(),
            bins: ir.snr_bins.count,
            h_width: ir.inputs.h.width(),
            y_width: ir.inputs.y.width(),
            state_width: ir.state.width(),
            lanes,
            shifts: bld.shifts,
            inner,
            stages: sb.into_iter().chain(sv).collect(),
            div2: None,
            sel: None,
        }
        .checked()
    }

    /// Asserts what the lanes rely on: every repetition of a repeated MAC reads a in the bank
    /// of its first (H, G or V, never W or the one), and b from that bank too or from one
    /// constant; repetition k, on lane k mod P in the instruction's cycle ⌊k / P⌋, reads
    /// bank V only in its lane's bank (interleaved bank k mod P) at the first repetition's
    /// row plus ⌊k / P⌋ (stride 1) or at that row (stride 0); a wide instruction fits on the
    /// lanes and writes a whole row from lane 0; any other writes bank V from its `lane`'s
    /// bank and G and W from lane 0.
    pub(super) fn checked(self) -> Self {
        let map = self.map;
        let p = self.lanes;
        assert_eq!(
            self.stages.len(),
            self.block.len() + self.vector.len(),
            "every instruction is labelled with its stage"
        );
        for ins in self.block.iter().chain(&self.vector) {
            assert!(
                ins.shift_bin
                    .is_none_or(|b| ins.op == Op::Mac && b + self.bins <= self.shifts.len()),
                "a per-bin shift is a MAC's and names a run of the table"
            );
            assert!(
                !ins.wide || (matches!(ins.op, Op::Mac | Op::Lut) && ins.rep as usize <= p),
                "a wide instruction is a MAC or a look-up on at most the lanes"
            );
            let lane_reads = |start: usize, stride: u32| {
                if map.bank(start) != 2 {
                    return;
                }
                assert!(stride <= 1, "bank V is read at stride 0 or 1");
                let row = map.v_row(start);
                for k in 0..ins.rep as usize {
                    let r = start + k * stride as usize;
                    assert!(
                        map.v_lane(r) == k % p && map.v_row(r) == row + (k / p) * stride as usize,
                        "repetition {k} reads bank V in its lane's bank"
                    );
                }
            };
            lane_reads(ins.a, ins.sa);
            if !ins.b_const && ins.op == Op::Mac {
                lane_reads(ins.b, ins.sb);
            }
            let writes =
                ins.op == Op::Mac && ins.last || matches!(ins.op, Op::Max | Op::Div(_) | Op::Lut);
            if writes {
                if ins.wide {
                    assert!(
                        map.bank(ins.dest) == 2 && map.v_lane(ins.dest) == 0,
                        "a wide instruction writes a row of bank V"
                    );
                } else if map.bank(ins.dest) == 2 {
                    assert!(
                        ins.lane == map.v_lane(ins.dest),
                        "a write from its lane's bank"
                    );
                } else {
                    assert!(ins.lane == 0, "G and W are written from lane 0");
                }
            }
            if ins.op != Op::Mac || ins.rep == 1 {
                continue;
            }
            // Every repetition of operand `what` (from `start`, `stride` apart) in one of the
            // banks H, G, V.
            let one_bank = |what: &str, start: usize, stride: u32| {
                let bank = map.bank(start);
                assert!(bank <= 2, "a repeated MAC reads {what} from bank H, G or V");
                assert!(
                    (0..ins.rep as usize).all(|k| map.bank(start + k * stride as usize) == bank),
                    "a repeated MAC's {what} stays in one bank"
                );
            };
            one_bank("a", ins.a, ins.sa);
            if ins.b_const {
                assert!(ins.sb == 0, "a repeated constant is one constant");
            } else {
                one_bank("b", ins.b, ins.sb);
            }
        }
        self
    }

    /// The first register of `tensor` and its length.
    fn tensor_at(&self, tensor: Tensor) -> (usize, usize) {
        let (map, n) = (&self.map, self.n);
        match tensor {
            Tensor::G => (map.g, n * n),
            Tensor::GInner(c) => (map.gn + c * n * n, n * n),
            Tensor::Trace => (map.trace, 1),
            Tensor::InvTrace => (map.inv_trace, 1),
            Tensor::DiagInv => (map.dinv, n),
            Tensor::Z => (map.z, n),
            Tensor::Yy => (map.yy, 1),
            Tensor::E => (map.e, n),
            Tensor::W => (map.w, 1),
            Tensor::V2Unfloored | Tensor::V2 => (map.v2, 1),
            Tensor::P(_) => (map.p, n),
            Tensor::D(_) => (map.d, n),
            Tensor::Rho(_) => (map.rho, n),
            Tensor::R => (map.r, n),
            Tensor::Tau2 => (map.tau2, 1),
            Tensor::Bucket => (0, 1),
            Tensor::X => (map.x, n),
            Tensor::Oamp(_) => (0, map.count),
        }
    }

    /// Whether `ins` writes a register (or the bucket): what the tap port shows.
    pub fn writes(ins: &Ins) -> bool {
        match ins.op {
            Op::Mac => ins.last,
            Op::Max | Op::Div(_) | Op::Lut | Op::Bucket => true,
            Op::Select => false,
        }
    }

    /// Per ROM word (block program at 0, vector program after it), the values it writes as
    /// the tap port shows them (docs/rtl.md, "IR v2", taps): none for an instruction that
    /// writes nothing, one per repetition (lane k) for a wide instruction, else one from
    /// its lane. The co-simulation checks every write against the golden model with it.
    pub fn tap_writes(&self) -> Vec<Vec<TapWrite>> {
        self.block
            .iter()
            .chain(&self.vector)
            .zip(&self.stages)
            .map(|(ins, &stage)| {
                if !Self::writes(ins) {
                    return Vec::new();
                }
                let (base, len) = self.tensor_at(stage.tensor);
                let at = |dest: usize| {
                    if stage.tensor == Tensor::Bucket {
                        return 0;
                    }
                    assert!(
                        (base..base + len).contains(&dest),
                        "an instruction labelled {stage:?} writes register {dest}"
                    );
                    dest - base
                };
                if ins.wide {
                    (0..ins.rep as usize)
                        .map(|k| TapWrite {
                            lane: k,
                            stage,
                            element: at(ins.dest + k),
                        })
                        .collect()
                } else {
                    vec![TapWrite {
                        lane: ins.lane,
                        stage,
                        element: at(ins.dest),
                    }]
                }
            })
            .collect()
    }

    /// The `(sh, down)` of `ins` in SNR bin `bin`: its fields, or its entry of the per-bin
    /// shift table.
    pub fn shift_of(&self, ins: &Ins, bin: usize) -> (u32, u32) {
        match ins.shift_bin {
            Some(base) => self.shifts[base + bin],
            None => (ins.sh, ins.down),
        }
    }

    /// Divider `k` (0 and 1: [`Program::divs`], 2: [`Program::div2`]).
    pub fn divider(&self, k: u8) -> Divide {
        match k {
            0 | 1 => self.divs[usize::from(k)],
            _ => self.div2.expect("a Div(2) instruction has a third divider"),
        }
    }

    /// Cycles of one instruction in the execute stage: a MAC ⌈its repetitions / lanes⌉; a division
    /// 2 + its N_W + SHIFT steps (N_W = 2: n = 1): the starting cycle, the steps, the cycle
    /// `done` is seen and the result written; any other 1.
    pub fn cycles_of(&self, ins: &Ins) -> u64 {
        match ins.op {
            Op::Div(k) => 2 + 2 + u64::from(self.divider(k).shift()),
            Op::Mac => u64::from(ins.rep).div_ceil(self.lanes as u64),
            // A wide look-up: one cycle for up to P rows.
            _ => 1,
        }
    }

    /// Cycles of the block stage (from the block beat's acceptance, the cycle its last H̃ code
    /// is written, to `y_ready`): the program, one cycle draining the pipeline. The M·N cycles
    /// writing H̃ come before the acceptance ([`super::stream_cycles`]).
    pub fn block_cycles(&self) -> u64 {
        self.block.iter().map(|i| self.cycles_of(i)).sum::<u64>() + 1
    }

    /// Cycles of a vector (from its acceptance to `out_valid`): ỹ written P codes a cycle
    /// (one into each interleaved bank of V, ⌈M / P⌉ cycles), the program, one cycle
    /// draining the pipeline.
    pub fn vector_cycles(&self) -> u64 {
        self.load_cycles() + self.vector.iter().map(|i| self.cycles_of(i)).sum::<u64>() + 1
    }

    /// Cycles writing a vector's ỹ into bank V: ⌈M / P⌉.
    pub fn load_cycles(&self) -> u64 {
        self.m.div_ceil(self.lanes) as u64
    }

    /// Multiplies of the block and the vector program.
    pub fn multiplies(&self) -> (usize, usize) {
        let count = |p: &[Ins]| {
            p.iter()
                .filter(|i| i.op == Op::Mac)
                .map(|i| i.rep as usize)
                .sum()
        };
        (count(&self.block), count(&self.vector))
    }
}

/// The closed-form cycle model of a one-lane v2 design: [`analytic_cycles_lanes`] at 1.
pub fn analytic_cycles(ir: &GramIr) -> (u64, u64) {
    analytic_cycles_lanes(ir, 1)
}

/// The closed-form cycle model of a v2 design on `lanes` MAC lanes, from the IR alone
/// (docs/rtl.md, "IR v2"): `(block, vector)` cycles. A dot product of k terms takes ⌈k / P⌉
/// cycles. Equal to [`Program::block_cycles`] and [`Program::vector_cycles`] (tested), and to
/// the cycles the RTL takes (co-simulation).
pub fn analytic_cycles_lanes(ir: &GramIr, lanes: usize) -> (u64, u64) {
    let c = |k: u64| k.div_ceil(lanes as u64);
    let (m, n) = (ir.m as u64, ir.n as u64);
    let b = &ir.block;
    let div = |d: &Divide| 4 + u64::from(d.shift());
    // The narrow copies of G: one per distinct g_inner shift of a layer with ≥ 2 steps.
    let mut inner = Vec::new();
    for l in &ir.layers {
        let s = l.inner_g_shift(b.g);
        if s > 0 && l.steps.len() > 1 && !inner.contains(&s) {
            inner.push(s);
        }
    }
    // G's upper triangle, its copy, the narrow copies, tr G, the divisions, the drain (the
    // load of H̃ precedes the block beat's acceptance).
    let block = c(m) * n * (n + 1) / 2
        + n * (n - 1) / 2
        + inner.len() as u64 * n * n
        + c(n)
        + div(&b.inv_trace.op)
        + n * div(&b.diag_inv.op)
        + 1;
    // The passes of a row-wise combine or look-up: ⌈N / P⌉, each one cycle per elementwise
    // term (the rows' dot products come on top).
    let q = c(n);
    // Load (P codes a cycle), z, ‖ỹ‖², the drain.
    let mut vector = c(m) + n * c(m) + c(m) + 1;
    for (k, layer) in ir.layers.iter().enumerate() {
        let later = u64::from(k > 0);
        // e, W, v² and its floor.
        vector += q + later * n * c(n) + (2 + later * 2 * c(n)) + 2;
        let steps = layer.steps.len();
        for (l, s) in layer.steps.iter().enumerate() {
            let on = u64::from(l > 0);
            vector += q * (1 + on * u64::from(s.beta.code != 0));
            vector += q * (on + u64::from(s.omega.code != 0 || l == 0));
            if l + 1 < steps {
                vector += 2 * q + n * c(n);
            }
        }
        // r, τ², the bucket, the table.
        vector += q * (later + u64::from(layer.gamma.code != 0 || k == 0)) + 2 + 1 + q;
    }
    (block, vector)
}
