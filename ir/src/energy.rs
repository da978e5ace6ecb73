//! Energy per vector and per bit, by two models (docs/energy.md).
//!
//! This module owns the operation counts of a design and their pricing. [`Counts`] lists every
//! operation of one received vector — every multiply with its operand widths, every add or
//! comparison with its width, every buffer read with its width — and, for the paper's model,
//! the MACs, activations and weights of every pass. [`Counts::from_ir`] derives it from an
//! [`Ir`] at the IR's own widths; kaq-model builds the counts of the classical detectors and
//! the Gram-domain nets with [`Counts::baseline`] from their operation counts at a stated
//! arithmetic ([`Arith`]). Both kinds are priced by the same two functions, so energy ratios
//! are like for like:
//!
//! * **Model 1**, [`PaperModel`]: the accelerator model of the site-specific compression paper
//!   (Kasalaee et al., §III-D/E): eq. 7 E = E_C + E_W + E_A with eq. 8 E_C = E_MAC(N_c + 3N_a),
//!   eq. 9 E_MAC = α(Q/16)^β, eq. 10 E_W = E_M N_w + E_L N_c/√p, eq. 11 E_A = 2E_M N_a +
//!   E_L N_c/√p, E_M = 2E_L = 2E_MAC, p = 64·Q/16; the baselines by eq. 14
//!   E_B = E_MAC N_c + E_L N_c/√p.
//! * **Model 2**, [`Horowitz45`]: per operation at 45 nm (Horowitz, ISSCC 2014, as QKeras's
//!   qtools encode it): an a×b-bit multiply costs E_mul(√(ab)) with E_mul(b) = 0.0029948 b² +
//!   0.0010417 b pJ, a w-bit add E_add(w) = 0.003125 w pJ, a buffer read of b bits b/64 of a
//!   64-bit SRAM read (10, 20, 100 pJ at 8 KB, 32 KB, 1 MB; beyond that DRAM at 20.3 pJ/bit).
//!
//! Guarantees: the counts are exact integers derived from the IR's fields alone (no
//! simulation), pricing is a pure function of the counts, and every figure is finite and
//! non-negative. The counting rules are stated on each function and in docs/energy.md.

use serde::{Deserialize, Serialize};

use crate::document::{InitStage, Ir, ProxStage, signed_width};
use crate::fixed::{OverflowMode, Requant, RoundingMode};

/// α of eq. 9, pJ.
pub const PAPER_ALPHA_PJ: f64 = 0.86;
/// β of eq. 9.
pub const PAPER_BETA: f64 = 1.9;
/// Quadratic coefficient of the 45 nm integer multiplier fit, pJ per bit².
pub const MUL_QUADRATIC_PJ: f64 = 0.0029948;
/// Linear coefficient of the 45 nm integer multiplier fit, pJ per bit.
pub const MUL_LINEAR_PJ: f64 = 0.0010417;
/// The 45 nm integer adder, pJ per bit.
pub const ADD_PJ_PER_BIT: f64 = 0.003125;
/// 64-bit SRAM reads at 45 nm: (capacity in bytes, pJ per read).
pub const SRAM_READ_64_PJ: [(u64, f64); 3] = [(8 << 10, 10.0), (32 << 10, 20.0), (1 << 20, 100.0)];
/// DRAM at 45 nm, pJ per bit (memories beyond the largest SRAM).
pub const DRAM_PJ_PER_BIT: f64 = 20.3;
/// A 32-bit floating-point multiply at 45 nm, pJ.
pub const FP32_MUL_PJ: f64 = 3.7;
/// A 32-bit floating-point add at 45 nm, pJ.
pub const FP32_ADD_PJ: f64 = 0.9;

/// One kind of operation, with the widths that price it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// A signed a×b-bit integer multiply.
    Mul {
        /// Width of one operand.
        a: u32,
        /// Width of the other.
        b: u32,
    },
    /// A w-bit integer add, subtract or comparison.
    Add {
        /// Width of the result (or of the compared values).
        w: u32,
    },
    /// A 32-bit floating-point multiply.
    FMul,
    /// A 32-bit floating-point add, subtract or comparison.
    FAdd,
    /// A read of `bits` bits from an on-chip buffer (an operand fetch or a table entry).
    Read {
        /// Bits read.
        bits: u32,
    },
}

/// `count` operations `op` in `stage`, once per vector or once per channel block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCount {
    /// Where they happen, e.g. `layer 2 g`.
    pub stage: String,
    /// The operation.
    pub op: Op,
    /// How many.
    pub count: u64,
    /// Once per channel block (amortized over its vectors) instead of once per vector.
    pub per_block: bool,
}

/// One pass of the paper's model: a linear map and the activations it produces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pass {
    /// The pass, e.g. `layer 2 g`.
    pub stage: String,
    /// N_c: multiply-accumulates.
    pub macs: u64,
    /// N_a: activations produced.
    pub activations: u64,
    /// N_w: weights read (matrix entries and coefficients).
    pub weights: u64,
    /// Q: the bit width of eq. 9 (the count-weighted mean of √(ab) over the pass's multiplies).
    pub q: f64,
    /// Once per channel block.
    pub per_block: bool,
}

/// Which of the paper's energy equations prices the passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A quantized accelerator: eqs. 7–11.
    Accelerator,
    /// A baseline algorithm: eq. 14, multiplies and local-buffer accesses only.
    Baseline,
}

/// The arithmetic a baseline is priced at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Arith {
    /// Fixed point, every operand `bits` wide and every sum `bits + guard` wide.
    Fixed {
        /// Operand width.
        bits: u32,
        /// Extra bits of an accumulator.
        guard: u32,
    },
    /// IEEE f32.
    F32,
}

impl Arith {
    /// Fixed point at `bits` with 8 guard bits on sums.
    pub fn fixed(bits: u32) -> Self {
        Self::Fixed { bits, guard: 8 }
    }

    /// The width Q of eq. 9 (32 for f32).
    pub fn q(self) -> f64 {
        match self {
            Self::Fixed { bits, .. } => f64::from(bits),
            Self::F32 => 32.0,
        }
    }

    /// Width of a stored operand.
    pub fn operand_bits(self) -> u32 {
        match self {
            Self::Fixed { bits, .. } => bits,
            Self::F32 => 32,
        }
    }

    /// The multiply.
    pub fn mul(self) -> Op {
        match self {
            Self::Fixed { bits, .. } => Op::Mul { a: bits, b: bits },
            Self::F32 => Op::FMul,
        }
    }

    /// The add (at the accumulator width).
    pub fn add(self) -> Op {
        match self {
            Self::Fixed { bits, guard } => Op::Add { w: bits + guard },
            Self::F32 => Op::FAdd,
        }
    }
}

impl std::fmt::Display for Arith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed { bits, guard } => write!(f, "{bits}-bit fixed point (+{guard} on sums)"),
            Self::F32 => f.write_str("f32"),
        }
    }
}

/// The operations of a baseline algorithm, as its operation counts state them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineOps {
    /// Multiplies.
    pub mults: u64,
    /// Adds, subtracts and comparisons.
    pub adds: u64,
    /// Reciprocals (divisions).
    pub recips: u64,
    /// Square roots.
    pub sqrts: u64,
    /// Element-wise table evaluations.
    pub tables: u64,
}

impl std::ops::Add for BaselineOps {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            mults: self.mults + o.mults,
            adds: self.adds + o.adds,
            recips: self.recips + o.recips,
            sqrts: self.sqrts + o.sqrts,
            tables: self.tables + o.tables,
        }
    }
}

impl std::ops::Mul<u64> for BaselineOps {
    type Output = Self;
    fn mul(self, k: u64) -> Self {
        Self {
            mults: self.mults * k,
            adds: self.adds * k,
            recips: self.recips * k,
            sqrts: self.sqrts * k,
            tables: self.tables * k,
        }
    }
}

/// Newton–Raphson steps of a reciprocal or square root from a table seed (8 correct bits):
/// each step doubles the correct bits.
pub(crate) fn newton_steps(arith: Arith) -> u64 {
    let bits = match arith {
        Arith::Fixed { bits, .. } => bits,
        Arith::F32 => 24,
    };
    let mut good = 8;
    let mut steps = 0;
    while good < bits {
        good *= 2;
        steps += 1;
    }
    steps
}

impl BaselineOps {
    /// The operations with reciprocals and square roots expanded into multiplies, adds and
    /// table reads: a reciprocal is a seed-table read and s Newton steps y ← y(2 − xy) (two
    /// multiplies, one add each); a square root is a seed-table read, s steps of the
    /// reciprocal square root y ← y(3 − xy²)/2 (three multiplies, one add; the halving is a
    /// shift) and one multiply √x = x·y. s doubles the 8 seed bits up to the operand width
    /// (24 significand bits for f32). Returns (multiplies, adds, table reads).
    pub fn expanded(&self, arith: Arith) -> (u64, u64, u64) {
        let s = newton_steps(arith);
        let mults = self.mults + self.recips * 2 * s + self.sqrts * (3 * s + 1);
        let adds = self.adds + self.recips * s + self.sqrts * s;
        let reads = self.recips + self.sqrts + self.tables;
        (mults, adds, reads)
    }
}

/// Everything the two models price for one design.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// The design, e.g. the IR's name or `mmse`.
    pub name: String,
    /// Information bits of one vector (N_t · bits per symbol).
    pub bits_per_vector: u32,
    /// Which of the paper's equations applies.
    pub kind: Kind,
    /// Bits held in the buffer the reads come from: fixes the SRAM size class.
    pub buffer_bits: u64,
    /// Every operation.
    pub ops: Vec<OpCount>,
    /// The passes of the paper's model.
    pub passes: Vec<Pass>,
}

/// The figures of the paper's model, pJ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PaperEnergy {
    /// E_C (eq. 8); for a baseline E_MAC·N_c.
    pub compute_pj: f64,
    /// E_W (eq. 10); for a baseline 0.
    pub weights_pj: f64,
    /// E_A (eq. 11); for a baseline the local-buffer term E_L·N_c/√p of eq. 14.
    pub activations_pj: f64,
    /// The total per vector.
    pub total_pj: f64,
}

/// The figures of the 45 nm per-operation model, pJ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HorowitzEnergy {
    /// Every multiply.
    pub multiply_pj: f64,
    /// Every add and comparison.
    pub add_pj: f64,
    /// Every buffer read.
    pub memory_pj: f64,
    /// The total per vector.
    pub total_pj: f64,
    /// The price of one bit read from the design's buffer (its size class).
    pub read_pj_per_bit: f64,
}

/// One model's result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// pJ per received vector.
    pub pj_per_vector: f64,
    /// pJ per information bit.
    pub pj_per_bit: f64,
}

/// Both models' energy of one design (what `kaq report` prints and writes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Energy {
    /// The design.
    pub name: String,
    /// Information bits per vector.
    pub bits_per_vector: u32,
    /// Vectors per channel block the per-block work is spread over.
    pub block: usize,
    /// Model 1 per vector and per bit.
    pub paper: Figure,
    /// Model 1's terms.
    pub paper_terms: PaperEnergy,
    /// Model 2 per vector and per bit.
    pub horowitz: Figure,
    /// Model 2's terms.
    pub horowitz_terms: HorowitzEnergy,
    /// Multiplies per vector (per-block ones amortized).
    pub mults: f64,
    /// Adds and comparisons per vector.
    pub adds: f64,
    /// Bits read per vector.
    pub read_bits: f64,
}

/// Model 1: the paper's accelerator model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaperModel {
    /// α of eq. 9, pJ.
    pub alpha_pj: f64,
    /// β of eq. 9.
    pub beta: f64,
}

impl Default for PaperModel {
    fn default() -> Self {
        Self {
            alpha_pj: PAPER_ALPHA_PJ,
            beta: PAPER_BETA,
        }
    }
}

impl PaperModel {
    /// E_MAC(Q) = α (Q/16)^β (eq. 9).
    pub fn e_mac(&self, q: f64) -> f64 {
        self.alpha_pj * (q / 16.0).powf(self.beta)
    }

    /// p = 64 · Q/16, the parallel execution units (§III-D).
    pub fn parallel_units(q: f64) -> f64 {
        64.0 * q / 16.0
    }

    /// The energy of one accelerator pass (eqs. 8, 10, 11 with E_M = 2E_L = 2E_MAC), split as
    /// (E_C, E_W, E_A).
    pub fn accelerator(&self, macs: f64, activations: f64, weights: f64, q: f64) -> [f64; 3] {
        let e_mac = self.e_mac(q);
        let (e_l, e_m) = (e_mac, 2.0 * e_mac);
        let local = e_l * macs / Self::parallel_units(q).sqrt();
        [
            e_mac * (macs + 3.0 * activations),
            e_m * weights + local,
            2.0 * e_m * activations + local,
        ]
    }

    /// The energy of a baseline with `macs` real multiplies (eq. 14), split as
    /// (E_MAC·N_c, E_L·N_c/√p).
    pub fn baseline(&self, macs: f64, q: f64) -> [f64; 2] {
        let e_mac = self.e_mac(q);
        [e_mac * macs, e_mac * macs / Self::parallel_units(q).sqrt()]
    }

    /// Prices `counts` with the per-block passes spread over `block` vectors.
    pub fn price(&self, counts: &Counts, block: usize) -> PaperEnergy {
        let t = block.max(1) as f64;
        let mut e = PaperEnergy::default();
        for p in &counts.passes {
            let share = if p.per_block { 1.0 / t } else { 1.0 };
            let (macs, acts, weights) = (p.macs as f64, p.activations as f64, p.weights as f64);
            match counts.kind {
                Kind::Accelerator => {
                    let [c, w, a] = self.accelerator(macs, acts, weights, p.q);
                    e.compute_pj += share * c;
                    e.weights_pj += share * w;
                    e.activations_pj += share * a;
                }
                Kind::Baseline => {
                    let [c, l] = self.baseline(macs, p.q);
                    e.compute_pj += share * c;
                    e.activations_pj += share * l;
                }
            }
        }
        e.total_pj = e.compute_pj + e.weights_pj + e.activations_pj;
        e
    }
}

/// Model 2: per operation at 45 nm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Horowitz45;

impl Horowitz45 {
    /// E_mul(b) = 0.0029948 b² + 0.0010417 b pJ, the b×b multiplier.
    pub fn mul_square(b: f64) -> f64 {
        MUL_QUADRATIC_PJ * b * b + MUL_LINEAR_PJ * b
    }

    /// An a×b multiply: E_mul(√(ab)) = 0.0029948 ab + 0.0010417 √(ab) (qtools' rule for a
    /// fixed-point multiplier: its gate count grows with the a·b partial products).
    pub fn mul(a: u32, b: u32) -> f64 {
        Self::mul_square((f64::from(a) * f64::from(b)).sqrt())
    }

    /// A w-bit add: 0.003125 w pJ.
    pub fn add(w: u32) -> f64 {
        ADD_PJ_PER_BIT * f64::from(w)
    }

    /// The price of one bit read from a buffer of `buffer_bits` bits: a 64-bit read of the
    /// smallest tabulated SRAM that holds it, divided by 64; DRAM beyond 1 MB.
    pub fn read_per_bit(buffer_bits: u64) -> f64 {
        let bytes = buffer_bits.div_ceil(8);
        SRAM_READ_64_PJ
            .iter()
            .find(|(cap, _)| bytes <= *cap)
            .map_or(DRAM_PJ_PER_BIT, |(_, pj)| pj / 64.0)
    }

    /// One operation's energy, reads priced at `read_per_bit`.
    pub fn op(op: Op, read_per_bit: f64) -> f64 {
        match op {
            Op::Mul { a, b } => Self::mul(a, b),
            Op::Add { w } => Self::add(w),
            Op::FMul => FP32_MUL_PJ,
            Op::FAdd => FP32_ADD_PJ,
            Op::Read { bits } => f64::from(bits) * read_per_bit,
        }
    }

    /// Prices `counts` with the per-block operations spread over `block` vectors.
    pub fn price(&self, counts: &Counts, block: usize) -> HorowitzEnergy {
        let t = block.max(1) as f64;
        let read = Self::read_per_bit(counts.buffer_bits);
        let mut e = HorowitzEnergy {
            read_pj_per_bit: read,
            ..HorowitzEnergy::default()
        };
        for c in &counts.ops {
            let share = if c.per_block { 1.0 / t } else { 1.0 };
            let pj = share * c.count as f64 * Self::op(c.op, read);
            match c.op {
                Op::Mul { .. } | Op::FMul => e.multiply_pj += pj,
                Op::Add { .. } | Op::FAdd => e.add_pj += pj,
                Op::Read { .. } => e.memory_pj += pj,
            }
        }
        e.total_pj = e.multiply_pj + e.add_pj + e.memory_pj;
        e
    }
}

/// Collects the operations and passes of a design.
pub(crate) struct Builder {
    pub(crate) ops: Vec<OpCount>,
    pub(crate) passes: Vec<Pass>,
    pub(crate) per_block: bool,
}

impl Builder {
    pub(crate) fn push(&mut self, stage: &str, op: Op, count: u64) {
        if count == 0 {
            return;
        }
        if let Some(last) = self
            .ops
            .iter_mut()
            .find(|o| o.stage == stage && o.op == op && o.per_block == self.per_block)
        {
            last.count += count;
        } else {
            self.ops.push(OpCount {
                stage: stage.to_string(),
                op,
                count,
                per_block: self.per_block,
            });
        }
    }

    /// A pass of the paper's model whose Q is the geometric mean width of the multiplies
    /// recorded for `stage` (or `fallback_q` without multiplies).
    pub(crate) fn pass(&mut self, stage: &str, activations: u64, weights: u64, fallback_q: u32) {
        let (mut macs, mut sum) = (0u64, 0.0f64);
        for o in self.ops.iter().filter(|o| o.stage == stage) {
            if let Op::Mul { a, b } = o.op {
                macs += o.count;
                sum += o.count as f64 * (f64::from(a) * f64::from(b)).sqrt();
            }
        }
        let q = if macs == 0 {
            f64::from(fallback_q)
        } else {
            sum / macs as f64
        };
        self.passes.push(Pass {
            stage: stage.to_string(),
            macs,
            activations,
            weights,
            q,
            per_block: self.per_block,
        });
    }

    /// A requantization of a `in_w`-bit value by `mult` (its largest magnitude when the
    /// multiplier is looked up per bin), `count` times: a multiply unless the multiplier is a
    /// constant power of two (a shift, free), an add for the rounding unless it is `floor`
    /// or the shift 0, and a comparison for the narrowing unless it wraps.
    #[allow(clippy::too_many_arguments)]
    fn requant(
        &mut self,
        stage: &str,
        count: u64,
        in_w: u32,
        mult: i64,
        constant: bool,
        shift: u32,
        rounding: RoundingMode,
        overflow: OverflowMode,
    ) {
        let m = mult.unsigned_abs();
        let prod_w = if constant && m.is_power_of_two() {
            in_w + m.trailing_zeros()
        } else {
            let mw = signed_width(mult.saturating_abs());
            self.push(stage, Op::Mul { a: in_w, b: mw }, count);
            in_w + mw
        };
        if shift > 0 && rounding != RoundingMode::Floor {
            self.push(stage, Op::Add { w: prod_w }, count);
        }
        if overflow != OverflowMode::Wrap {
            self.push(
                stage,
                Op::Add {
                    w: prod_w.saturating_sub(shift).max(1),
                },
                count,
            );
        }
    }

    fn fixed_requant(&mut self, stage: &str, count: u64, in_w: u32, r: &Requant) {
        self.requant(
            stage,
            count,
            in_w,
            r.mult(),
            true,
            r.shift(),
            r.rounding(),
            r.overflow(),
        );
    }
}

/// Largest |entry| of a table.
fn table_max(values: &[i64]) -> i64 {
    values.iter().map(|v| v.saturating_abs()).max().unwrap_or(0)
}

/// The smallest shift of a per-bin shift table: its requantization is priced at the widest
/// intermediate.
fn min_shift(shifts: &[u32]) -> u32 {
    shifts.iter().copied().min().unwrap_or(0)
}

/// Width of a per-bin coefficient table (0 for an empty or all-zero table: no term).
fn coef_width(values: &[i64]) -> u32 {
    match table_max(values) {
        0 => 0,
        m => signed_width(m),
    }
}

impl Counts {
    /// The operations of one vector through the design `ir`, at the IR's widths (docs/ir.md
    /// §4, docs/energy.md §3). Per dot product of length L: L multiplies at the operand
    /// widths and L − 1 adds at the accumulator's width; per requantization the rule of
    /// `requant` below; reads: each matrix entry of H once per pass over it (the vector
    /// operand is held in registers for the pass), each vector an element-wise stage
    /// consumes once, each per-bin coefficient once per vector, each table entry looked up.
    /// Writes are not priced: a stored value is priced when it is read. The buffer the reads
    /// come from is one layer stage's storage (two frames of H and y, the states, e and g).
    pub fn from_ir(ir: &Ir) -> Self {
        let (m, n) = (ir.m as u64, ir.n as u64);
        let hw = ir.inputs.h.width();
        let yw = ir.inputs.y.width();
        let mut b = Builder {
            ops: Vec::new(),
            passes: Vec::new(),
            per_block: false,
        };
        // Widths of x⁽ᵏ⁻¹⁾ and x⁽ᵏ⁻²⁾ entering the layer.
        let (mut x1w, mut x2w) = match &ir.init {
            InitStage::Zero => (0, 0),
            InitStage::MatchedFilter { acc, requant } => {
                let st = "init";
                b.push(st, Op::Read { bits: yw }, m);
                b.push(st, Op::Read { bits: hw }, m * n);
                b.push(st, Op::Mul { a: hw, b: yw }, m * n);
                b.push(st, Op::Add { w: acc.width }, n * (m - 1));
                b.fixed_requant(st, n, acc.width, requant);
                b.pass(st, n, m * n + 1, requant.out_width());
                (requant.out_width(), requant.out_width())
            }
        };
        let (mut sw, mut uw) = (x1w, 0u32);
        for (k, layer) in ir.layers.iter().enumerate() {
            let st = format!("layer {} e", k + 1);
            let e = &layer.e;
            let ew = e.format.width();
            b.push(&st, Op::Read { bits: yw }, m);
            if x1w > 0 {
                b.push(
                    &st,
                    Op::Read {
                        bits: coef_width(&e.mult).max(1),
                    },
                    1,
                );
                b.push(&st, Op::Read { bits: x1w }, n);
                b.push(&st, Op::Read { bits: hw }, m * n);
                b.push(&st, Op::Mul { a: hw, b: x1w }, m * n);
                b.push(&st, Op::Add { w: e.acc.width }, m * (n - 1));
                b.push(
                    &st,
                    Op::Mul {
                        a: e.acc.width,
                        b: coef_width(&e.mult).max(1),
                    },
                    m,
                );
            }
            // S = mult·A − (y ≪ y_shift), then the shift and the narrowing.
            b.push(&st, Op::Add { w: e.sum.width }, m);
            b.requant(
                &st,
                m,
                e.sum.width,
                1,
                true,
                e.shift,
                e.rounding,
                e.overflow,
            );
            b.pass(&st, m, if x1w > 0 { m * n + 1 } else { 1 }, ew);

            let st = format!("layer {} g", k + 1);
            let g = &layer.g;
            let gw = g.format.width();
            b.push(&st, Op::Read { bits: ew }, m);
            b.push(&st, Op::Read { bits: hw }, m * n);
            b.push(&st, Op::Mul { a: hw, b: ew }, m * n);
            b.push(&st, Op::Add { w: g.acc.width }, n * (m - 1));
            b.fixed_requant(&st, n, g.acc.width, &g.requant);
            b.pass(&st, n, m * n, gw);

            let st = format!("layer {} update", k + 1);
            let u = &layer.update;
            let rw = u.acc.width;
            let mut terms = 0u64;
            let mut coefs = 0u64;
            let mut term = |b: &mut Builder, cw: u32, xw: u32| {
                if cw > 0 && xw > 0 {
                    b.push(&st, Op::Read { bits: cw }, 1);
                    b.push(&st, Op::Read { bits: xw }, n);
                    b.push(&st, Op::Mul { a: cw, b: xw }, n);
                    terms += 1;
                    coefs += 1;
                }
            };
            term(&mut b, coef_width(&u.x1), x1w);
            term(&mut b, coef_width(&u.x2), x2w);
            term(&mut b, coef_width(&[u.g_coef]), gw);
            let cw = coef_width(&u.c);
            if cw > 0 && x1w > 0 {
                // x − s + u: two adds at the state width + 2, s and u read (x is read above).
                let cons = x1w.max(sw).max(uw) + 2;
                b.push(&st, Op::Read { bits: sw.max(1) }, n);
                if uw > 0 {
                    b.push(&st, Op::Read { bits: uw }, n);
                }
                b.push(&st, Op::Add { w: cons }, 2 * n);
                b.push(&st, Op::Read { bits: cw }, 1);
                b.push(&st, Op::Mul { a: cw, b: cons }, n);
                terms += 1;
                coefs += 1;
            }
            b.push(&st, Op::Add { w: rw }, n * terms.saturating_sub(1));
            let out = &layer.out;
            let bw = out.width;
            let mut activations = n;
            let pin_w = match &layer.admm {
                None => rw,
                Some(a) => {
                    // x = x_out(R); v = vx·x + vu·u.
                    let xo = &a.x_out;
                    b.push(
                        &st,
                        Op::Read {
                            bits: coef_width(&xo.mult).max(1),
                        },
                        1,
                    );
                    b.requant(
                        &st,
                        n,
                        rw,
                        table_max(&xo.mult),
                        false,
                        min_shift(&xo.shift),
                        xo.rounding,
                        xo.overflow,
                    );
                    let (vxw, vuw) = (coef_width(&a.vx), coef_width(&a.vu));
                    b.push(&st, Op::Read { bits: vxw.max(1) }, 1);
                    b.push(&st, Op::Read { bits: vuw.max(1) }, 1);
                    b.push(
                        &st,
                        Op::Mul {
                            a: vxw.max(1),
                            b: xo.width,
                        },
                        n,
                    );
                    if uw > 0 && vuw > 0 {
                        b.push(&st, Op::Mul { a: vuw, b: uw }, n);
                        b.push(&st, Op::Add { w: a.v.width }, n);
                    }
                    coefs += 3;
                    activations = 3 * n;
                    a.v.width
                }
            };
            match &layer.prox {
                ProxStage::Soft { .. } => b.push(&st, Op::Add { w: pin_w }, 3 * n),
                ProxStage::Box { .. } => b.push(&st, Op::Add { w: pin_w }, 2 * n),
                ProxStage::Table {
                    input, table_width, ..
                } => {
                    b.fixed_requant(&st, n, pin_w, input);
                    b.push(&st, Op::Read { bits: *table_width }, n);
                    coefs += n;
                }
            }
            b.push(
                &st,
                Op::Read {
                    bits: coef_width(&out.mult).max(1),
                },
                1,
            );
            b.requant(
                &st,
                n,
                out.input.width,
                table_max(&out.mult),
                false,
                min_shift(&out.shift),
                out.rounding,
                out.overflow,
            );
            coefs += 1;
            if let Some(a) = &layer.admm {
                // w = v − vx·s; u = x_out(w).
                b.push(
                    &st,
                    Op::Mul {
                        a: coef_width(&a.vx).max(1),
                        b: bw,
                    },
                    n,
                );
                b.push(&st, Op::Add { w: a.w.width }, n);
                b.requant(
                    &st,
                    n,
                    a.w.width,
                    table_max(&a.x_out.mult),
                    false,
                    min_shift(&a.x_out.shift),
                    a.x_out.rounding,
                    a.x_out.overflow,
                );
            }
            b.pass(&st, activations, coefs, bw);
            x2w = x1w;
            match &layer.admm {
                None => x1w = bw,
                Some(a) => {
                    x1w = a.x_out.width;
                    uw = a.x_out.width;
                }
            }
            sw = bw;
        }
        // The slicer: L − 1 comparisons per output code, the thresholds of the bin read.
        let st = "slicer";
        let levels = ir.levels() as u64;
        let out_w = ir.layers.last().map_or(ir.state_width, |l| l.out.width);
        b.push(st, Op::Read { bits: out_w + 1 }, levels - 1);
        b.push(st, Op::Add { w: out_w + 1 }, n * (levels - 1));
        b.pass(st, n, levels - 1, out_w);

        let frame = m * n * u64::from(hw) + m * u64::from(yw);
        let states = 4 * n * u64::from(ir.state_width);
        let eg = ir
            .layers
            .iter()
            .map(|l| m * u64::from(l.e.format.width()) + n * u64::from(l.g.format.width()))
            .max()
            .unwrap_or(0);
        Self {
            name: ir.name.clone(),
            bits_per_vector: ir.n as u32 * ir.modulation.bits_per_dim(),
            kind: Kind::Accelerator,
            buffer_bits: 2 * (frame + states) + eg,
            ops: b.ops,
            passes: b.passes,
        }
    }

    /// The counts of a baseline algorithm from its operation counts once per channel block
    /// (`per_block`) and once per vector (`per_vector`), at `arith`. Every multiply fetches one
    /// operand from the buffer (the other is held: the reused vector entry of a matrix–vector
    /// product or a scalar), every table evaluation and reciprocal or square-root seed is a
    /// read; reciprocals and square roots are expanded as [`BaselineOps::expanded`] states.
    /// `buffer_bits` is the working set the reads come from. The paper's model prices the
    /// multiplies by eq. 14.
    pub fn baseline(
        name: &str,
        bits_per_vector: u32,
        arith: Arith,
        per_block: BaselineOps,
        per_vector: BaselineOps,
        buffer_bits: u64,
    ) -> Self {
        let mut b = Builder {
            ops: Vec::new(),
            passes: Vec::new(),
            per_block: false,
        };
        for (stage, ops, block) in [
            ("per channel", per_block, true),
            ("per vector", per_vector, false),
        ] {
            b.per_block = block;
            let (mults, adds, reads) = ops.expanded(arith);
            b.push(stage, arith.mul(), mults);
            b.push(stage, arith.add(), adds);
            b.push(
                stage,
                Op::Read {
                    bits: arith.operand_bits(),
                },
                mults + reads,
            );
            if mults > 0 {
                b.passes.push(Pass {
                    stage: stage.to_string(),
                    macs: mults,
                    activations: 0,
                    weights: 0,
                    q: arith.q(),
                    per_block: block,
                });
            }
        }
        Self {
            name: name.to_string(),
            bits_per_vector,
            kind: Kind::Baseline,
            buffer_bits,
            ops: b.ops,
            passes: b.passes,
        }
    }

    /// Both models' energy with per-block work spread over `block` vectors.
    pub fn energy(&self, block: usize) -> Energy {
        let paper = PaperModel::default().price(self, block);
        let horowitz = Horowitz45.price(self, block);
        let t = block.max(1) as f64;
        let (mut mults, mut adds, mut read_bits) = (0.0, 0.0, 0.0);
        for c in &self.ops {
            let k = c.count as f64 / if c.per_block { t } else { 1.0 };
            match c.op {
                Op::Mul { .. } | Op::FMul => mults += k,
                Op::Add { .. } | Op::FAdd => adds += k,
                Op::Read { bits } => read_bits += k * f64::from(bits),
            }
        }
        let bits = f64::from(self.bits_per_vector.max(1));
        Energy {
            name: self.name.clone(),
            bits_per_vector: self.bits_per_vector,
            block: block.max(1),
            paper: Figure {
                pj_per_vector: paper.total_pj,
                pj_per_bit: paper.total_pj / bits,
            },
            paper_terms: paper,
            horowitz: Figure {
                pj_per_vector: horowitz.total_pj,
                pj_per_bit: horowitz.total_pj / bits,
            },
            horowitz_terms: horowitz,
            mults,
            adds,
            read_bits,
        }
    }
}

/// Both models' energy of the design `ir` per vector and per bit: the one call the flow and
/// `kaq report` make. A kaq design has no per-channel stage, so the block length is 1.
pub fn estimate(ir: &Ir) -> Energy {
    Counts::from_ir(ir).energy(1)
}

/// Real multiplications of I iterations of WMMSE precoding with N_T transmit antennas and N_U
/// users (the paper's eq. 12).
pub fn paper_wmmse_mults(nt: f64, nu: f64, iterations: f64) -> f64 {
    iterations
        * (8.0 / 3.0 * nt.powi(3) * nu
            + 4.0 * nt.powi(2) * nu
            + 4.0 * nt * (4.0 * nu.powi(2) + 2.0 * nu)
            + 4.0 * nu.powi(2)
            + 56.0 / 3.0 * nu)
}

/// Real multiplications of zero-forcing precoding (the paper's eq. 13).
pub fn paper_zf_mults(nt: f64, nu: f64) -> f64 {
    8.0 * nu.powi(2) * nt + 8.0 / 3.0 * nu.powi(3)
}

#[cfg(test)]
mod tests;
