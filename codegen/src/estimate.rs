//! An analytic resource estimate of a generated design for the xc7 target, without Yosys:
//! per module (each layer stage in its context, the output stage) from the widths, lane count
//! and lengths of its parameters, summed by instance counts (docs/synthesis.md §Estimate).
//!
//! DSP48E1 count by the operand widths of every multiplier (Yosys splits a product wider than
//! 25 × 18 into partial products), flip-flops by the registers the stage keeps, LUTs by a
//! linear model of the adders, multiplexers and requantizers calibrated on small designs;
//! `codegen/tests/estimate_vs_yosys.rs` checks the totals against Yosys's xilinx synthesis.

use serde::Serialize;

use crate::design::{Design, LayerDesign};
use crate::hierarchy::{LayerContext, contexts};

pub mod gram;

/// Estimated cells of one module or of the design.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Estimate {
    /// LUTs (LUT1–LUT6, logic only; LUT-RAM not counted).
    pub lut: u64,
    /// Flip-flops.
    pub ff: u64,
    /// DSP48E1 slices.
    pub dsp: u64,
}

impl Estimate {
    fn add(&mut self, other: Estimate, count: u64) {
        self.lut += count * other.lut;
        self.ff += count * other.ff;
        self.dsp += count * other.dsp;
    }
}

/// The estimate of one module of the design.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleEstimate {
    /// The instance (layer module or `out_stage`).
    pub module: String,
    /// Its cells.
    pub estimate: Estimate,
}

/// The estimate of a design: every module and the total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesignEstimate {
    /// One entry per instance, layers in order, then the output stage.
    pub modules: Vec<ModuleEstimate>,
    /// The sum.
    pub total: Estimate,
}

/// DSP48E1 slices of a signed `a` × `b` product as Yosys's xc7 mapping builds it: none when
/// an operand has fewer than 2 bits (or is constant zero), one up to 25 × 18, and the
/// partial products of 24 × 17 unsigned slices beyond.
pub fn mult_dsps(a: u32, b: u32) -> u64 {
    let (a, b) = if a >= b { (a, b) } else { (b, a) };
    if b < 2 {
        return 0;
    }
    if a <= 25 && b <= 18 {
        return 1;
    }
    let slices = |w: u32, full: u32, part: u32| -> u64 {
        if w <= full {
            1
        } else {
            1 + u64::from((w - full).div_ceil(part))
        }
    };
    // The wider operand goes to the 25-bit port.
    slices(a, 25, 24) * slices(b, 18, 17)
}

struct Params<'a>(&'a [(String, String)]);

impl Params<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    /// An integer parameter (0 when absent or not a plain integer).
    fn int(&self, name: &str) -> u32 {
        self.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
    /// A constant or table that is not all zero.
    fn nonzero(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| {
            let digits = v.rsplit_once('\'').map_or(v, |(_, d)| {
                d.trim_start_matches(['s', 'S'])
                    .trim_start_matches(['h', 'H', 'b', 'B', 'd', 'D'])
            });
            !digits.chars().all(|c| c == '0' || c == '_')
        })
    }
    /// DSPs of `a` bits times the constant `name` of width `w_name`: none for zero or a
    /// power of two (a shift).
    fn const_mult(&self, a: u32, w_name: &str, name: &str) -> u64 {
        let w = self.int(w_name);
        let value = self.get(name).and_then(|v| {
            let (_, d) = v.rsplit_once('\'')?;
            let raw = i64::from_str_radix(d.trim_start_matches(['h', 'H']), 16).ok()?;
            // Two's complement of w bits.
            Some(if w < 64 && raw >> (w - 1) & 1 == 1 {
                raw - (1 << w)
            } else {
                raw
            })
        });
        match value {
            Some(v) if v == 0 || v.unsigned_abs().is_power_of_two() => 0,
            _ => mult_dsps(a, w),
        }
    }
    /// The product width of an operand of `a` bits and the table/constant `name` of width
    /// `w_name`: 0 DSPs when the table is zero.
    fn mult(&self, a: u32, w_name: &str, name: &str) -> u64 {
        if self.nonzero(name) {
            mult_dsps(a, self.int(w_name))
        } else {
            0
        }
    }
}

/// DSP48E1 slices Yosys spends on an index product: a `b`-bit unsigned index times the
/// constant `w` (the base of a part-select of a packed per-bin table or frame buffer,
/// `TABLE[bin * W +: W]`). Yosys's xc7 mapping takes a product to a slice when both factors
/// have at least 2 bits and the result at least 9, once `w`'s trailing zeros are a shift: a
/// 7-bit bin times 14 (7 · 2, 3 bits) takes one, times 6 (3 · 2, 2 bits) one, times 24 none
/// below an 8-bit bin (3 · 8).
pub fn index_dsps(b: u32, w: u32) -> u64 {
    if w == 0 {
        return 0;
    }
    let odd = w >> w.trailing_zeros();
    let wb = u32::BITS - odd.leading_zeros();
    u64::from(b >= 2 && wb >= 2 && b + wb >= 9)
}

/// LUTs of a `k`:1 multiplexer per bit: a LUT3 for 2:1, a LUT6 up to 4:1, then a LUT6 per
/// four inputs (the MUXF7/MUXF8 that join them are not LUTs).
fn mux_luts(k: u64) -> u64 {
    match k {
        0 | 1 => 0,
        2..=4 => 1,
        _ => k.div_ceil(4),
    }
}

/// Calibrated on the fixtures of `tests/estimate_vs_yosys.rs` and the flow's default design
/// (Yosys 0.23, xc7; the least-squares fit of the layer stages, docs/synthesis.md §Estimate).
mod fit {
    /// LUTs of a stage's control and frame-buffer addressing.
    pub const LUT_BASE: f64 = 257.3;
    /// LUTs per bit of the lanes' adders, comparators and rounding (per lane: the g
    /// requantization, the update R's sum, the prox, the output requantization).
    pub const LUT_PER_LANE_BIT: f64 = 0.52;
    /// LUTs per multiplexer LUT counted by `mux_luts` (frame-buffer writes, chunk reads,
    /// drains, the MAC operand select).
    pub const LUT_PER_MUX: f64 = 1.377;
    /// LUTs per bit of a per-bin table read and per 4 bins beyond the first 4.
    pub const LUT_PER_TABLE_BIT: f64 = 2.011;
    /// LUTs per requantizer to state codes (per update lane) that keeps the general 64-bit
    /// variable shifter: half-even rounding (the earlier fit of that shifter).
    pub const LUT_PER_WIDE_REQUANT_VAR: u64 = 240;
    /// Flip-flops of a stage's control, counters and pipeline registers.
    pub const FF_BASE: u64 = 45;
}

/// The terms of a layer stage's estimate before the LUT fit (`fit`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LayerTerms {
    /// DSP48E1 slices.
    pub dsp: u64,
    /// Flip-flops.
    pub ff: u64,
    /// Bits of the lanes' adders and comparators (all lanes).
    pub lane_bits: u64,
    /// Multiplexer LUTs (`mux_luts` summed over every multiplexed bit).
    pub mux: u64,
    /// Table bits × (⌈bins / 4⌉ − 1).
    pub table: u64,
    /// Requantizers to state codes that keep the general shifter, times the lanes.
    pub wide_requant: u64,
}

impl LayerTerms {
    /// The LUT estimate of these terms.
    pub fn lut(&self) -> u64 {
        let l = fit::LUT_BASE
            + fit::LUT_PER_LANE_BIT * self.lane_bits as f64
            + fit::LUT_PER_MUX * self.mux as f64
            + fit::LUT_PER_TABLE_BIT * self.table as f64;
        l.round() as u64 + fit::LUT_PER_WIDE_REQUANT_VAR * self.wide_requant
    }
}

/// The terms of one layer stage in its context.
pub fn layer_terms(l: &LayerDesign, ctx: &LayerContext) -> LayerTerms {
    let p = Params(&l.params);
    let (n, lanes) = (p.int("N"), p.int("P").max(1));
    let (hw, yw, sw, ew, gw) = (
        p.int("HW"),
        p.int("YW"),
        p.int("SW"),
        p.int("EW"),
        p.int("GW"),
    );
    let lacc = p.int("LACC_W");
    let admm = p.int("ARCH") != 0;
    let has_mf = p.int("HAS_MF") != 0;
    let e_phase = p.int("E_ZERO") == 0;
    let bw = yw.max(sw).max(ew);
    let r_w = p.int("R_W");
    let pin_w = p.int("PIN_W");
    let p64 = u64::from(lanes);
    let nc = u64::from(n / lanes);
    let cw = crate::design::index_width(nc as usize);
    let binw = p.int("BINW");
    let up = u64::from(p.int("UPD_PIPE"));
    let table_prox = p.int("PROX_KIND") == 2;
    let rout_w = if table_prox { p.int("TW") } else { pin_w };
    // A coefficient is used when its table is nonzero and its state input is not zero.
    let x1_used = p.nonzero("X1_TABLE") && !ctx.tied[0];
    let x2_used = p.nonzero("X2_TABLE") && !ctx.tied[1];
    let c_used = p.nonzero("C_TABLE");

    // DSPs: the MAC lanes, the g (and matched-filter) requantizers per lane, the e
    // requantizer once, the update's linear combination and output requantizers per lane.
    let mut dsp = p64 * mult_dsps(hw, bw);
    dsp += p64 * p.const_mult(lacc, "G_MULT_W", "G_MULT");
    if has_mf {
        dsp += p64 * p.const_mult(lacc, "MF_MULT_W", "MF_MULT");
    }
    if e_phase {
        dsp += p.mult(p.int("EACC_W"), "E_MULT_W", "E_MULT_TABLE");
    }
    let lincomb = u64::from(x1_used) * mult_dsps(sw, p.int("X1_W"))
        + u64::from(x2_used) * mult_dsps(sw, p.int("X2_W"))
        + p.const_mult(gw, "GC_W", "G_COEF")
        + u64::from(c_used) * mult_dsps(sw + 2, p.int("C_W"));
    let o_mult = p.mult(rout_w, "O_MULT_W", "O_MULT_TABLE");
    let mut upd = lincomb + o_mult;
    // Requantizers to state codes that keep the general shifter (half-even rounding; the
    // others shift by their table's smallest entry and a narrow rest, kaq_requant_var).
    let wide = |name: &str| u64::from(p.int(name) == 2);
    let mut wide_requant = wide("O_ROUND");
    if admm {
        wide_requant += 2 * wide("XO_ROUND");
        // x from the update, u from w; v = vx*x + vu*u; w = v - vx*s.
        upd += p.mult(r_w, "XO_MULT_W", "XO_MULT_TABLE")
            + p.mult(p.int("WW"), "XO_MULT_W", "XO_MULT_TABLE")
            + p.mult(sw, "VX_W", "VX_TABLE")
            + p.mult(sw, "VU_W", "VU_TABLE")
            + mult_dsps(sw, p.int("VX_W") + 1);
    }
    if table_prox {
        upd += p.const_mult(pin_w, "TIN_MULT_W", "TIN_MULT");
    }
    dsp += p64 * upd;
    // The index products of the per-bin table reads (one per distinct width; the MAC engine
    // reads e's multiplier for the current and the next buffer) and of the chunk selects.
    let mut bin_widths: Vec<u32> = vec![p.int("O_MULT_W"), 6];
    if x1_used {
        bin_widths.push(p.int("X1_W"));
    }
    if x2_used {
        bin_widths.push(p.int("X2_W"));
    }
    if c_used {
        bin_widths.push(p.int("C_W"));
    }
    if admm {
        bin_widths.extend([p.int("XO_MULT_W"), p.int("VX_W"), p.int("VU_W")]);
    }
    bin_widths.sort_unstable();
    bin_widths.dedup();
    dsp += bin_widths.iter().map(|&w| index_dsps(binw, w)).sum::<u64>();
    if e_phase && p.nonzero("E_MULT_TABLE") {
        dsp += 2 * index_dsps(binw, p.int("E_MULT_W"));
    }
    let chunk = |w: u32| index_dsps(cw, lanes * w);
    dsp += chunk(hw) + chunk(gw) + chunk(sw);

    // Flip-flops: the lane accumulators, two frame buffers of every state the stage keeps in
    // registers (x1; x2 for momentum; s and u for ADMM-Net) and of g (H̃, ỹ and e are
    // LUT-RAM).
    let states = 1 + u64::from(p.nonzero("X2_TABLE")) + 2 * u64::from(admm);
    let live = ctx.tied.iter().zip(&ctx.read).any(|(t, r)| !t || *r);
    // The update pipeline: per stage the step, done, buffer and chunk; the delayed x1 chunk
    // when x2 is kept, s and u chunks for ADMM-Net. Yosys packs the registered R into the
    // last DSP48E1 of the linear combination (PREG) and the registered prox output into the
    // output product's (AREG), so they cost flip-flops only without those products.
    let x2_kept = x2_used || ctx.read[1];
    let pipe_ff = up * (3 + u64::from(cw))
        + up * p64 * u64::from(sw) * (u64::from(x2_kept) + 2 * u64::from(admm))
        + u64::from(up >= 1 && lincomb == 0) * p64 * u64::from(r_w)
        + u64::from(up >= 2 && o_mult == 0) * p64 * u64::from(rout_w);
    let ff = fit::FF_BASE
        + p64 * u64::from(lacc)
        + u64::from(live) * states * 2 * u64::from(n) * u64::from(sw)
        + 2 * u64::from(n) * u64::from(gw)
        + pipe_ff;

    // Multiplexers: every frame-buffer bit the update (or the matched filter) writes besides
    // the fill; the 2·NC:1 chunk reads of the update (x1, x2, s, u, g) and of the e phase
    // (x1); the NC:1 chunk of the H̃ row; the drain's buffer select of each state read
    // downstream; the MAC operand select.
    let (n64, sw64, gw64) = (u64::from(n), u64::from(sw), u64::from(gw));
    let buffers = 1 + u64::from(x2_kept) + 2 * u64::from(admm);
    let update_reads = 1 + u64::from(x2_used) + 2 * u64::from(admm || c_used);
    let drained = ctx.read.iter().filter(|&&r| r).count() as u64;
    let mux = u64::from(live) * buffers * 2 * n64 * sw64
        + (update_reads * p64 * sw64 + p64 * gw64) * mux_luts(2 * nc)
        + u64::from(e_phase) * p64 * sw64 * mux_luts(2 * nc)
        + p64 * u64::from(hw) * mux_luts(nc)
        + drained * n64 * sw64 * mux_luts(2)
        + p64 * u64::from(bw);

    // Adder bits per lane: the MAC accumulator's rounding and saturation to g, the update R's
    // sum, the prox (two adders, or the table's index requantization), the output
    // requantization's rounding and saturation; ADMM-Net's x, v, w and u chain.
    let mut per_lane = u64::from(lacc) + u64::from(gw) + u64::from(r_w);
    per_lane += if table_prox {
        u64::from(pin_w + p.int("TIN_MULT_W"))
    } else {
        2 * u64::from(pin_w)
    };
    per_lane += u64::from(rout_w + p.int("O_MULT_W")) + u64::from(sw);
    if admm {
        per_lane += 2 * u64::from(r_w + p.int("XO_MULT_W"))
            + u64::from(p.int("V_W"))
            + u64::from(p.int("WW"));
    }
    let lane_bits = p64 * per_lane + u64::from(e_phase) * p64 * u64::from(p.int("EACC_W"));

    // Per-bin tables are read through a shifter by bin × width (a LUT6 and its muxes per 4
    // entries and bit).
    let mut tables: Vec<(&str, &str)> = vec![("O_MULT_W", "O_MULT_TABLE")];
    if e_phase {
        tables.push(("E_MULT_W", "E_MULT_TABLE"));
        tables.push(("E_MULT_W", "E_MULT_TABLE"));
    }
    if x1_used {
        tables.push(("X1_W", "X1_TABLE"));
    }
    if x2_used {
        tables.push(("X2_W", "X2_TABLE"));
    }
    if c_used {
        tables.push(("C_W", "C_TABLE"));
    }
    if admm {
        tables.extend([
            ("XO_MULT_W", "XO_MULT_TABLE"),
            ("VX_W", "VX_TABLE"),
            ("VU_W", "VU_TABLE"),
        ]);
    }
    let table_bits: u64 = tables
        .iter()
        .filter(|(_, t)| p.nonzero(t))
        .map(|(w, _)| u64::from(p.int(w)))
        .sum::<u64>()
        + 6 * (1 + u64::from(admm));
    let bins = u64::from(p.int("BINS"));
    let table = table_bits * (bins.div_ceil(4).saturating_sub(1));

    LayerTerms {
        dsp,
        ff,
        lane_bits,
        mux,
        table,
        wide_requant: p64 * wide_requant,
    }
}

fn layer(l: &LayerDesign, ctx: &LayerContext) -> Estimate {
    let t = layer_terms(l, ctx);
    Estimate {
        lut: t.lut(),
        ff: t.ff,
        dsp: t.dsp,
    }
}

fn out_stage(d: &Design) -> Estimate {
    let p = Params(&d.out_params);
    let (n, sw) = (u64::from(p.int("N")), u64::from(p.int("SW")));
    let (levels, bpd) = (u64::from(p.int("LEVELS")), u64::from(p.int("BPD")));
    // Per output code: LEVELS - 1 threshold comparisons; registers of the codes, the bits,
    // the bin and the handshake.
    let lut = 2 * n * (levels - 1) + 1;
    let ff = n * (sw + bpd) + u64::from(p.int("BINW")) + 1;
    Estimate { lut, ff, dsp: 0 }
}

/// The estimate of `d`, every layer in its pipeline context.
pub fn estimate(d: &Design) -> DesignEstimate {
    let mut modules = Vec::with_capacity(d.layers.len() + 1);
    let mut total = Estimate::default();
    for (l, ctx) in d.layers.iter().zip(contexts(d)) {
        let e = layer(l, &ctx);
        total.add(e, 1);
        modules.push(ModuleEstimate {
            module: l.module.clone(),
            estimate: e,
        });
    }
    let e = out_stage(d);
    total.add(e, 1);
    modules.push(ModuleEstimate {
        module: format!("{}_out", d.top),
        estimate: e,
    });
    DesignEstimate { modules, total }
}

/// Delays of the xc7 timing model Yosys's `sta` uses (`+/xilinx/cells_sim.v`), in ns.
mod delay {
    /// A LUT level (LUT6 I0 → O).
    pub const LUT: f64 = 0.642;
    /// A DSP48E1 used combinationally, A/B → P.
    pub const DSP: f64 = 3.723;
    /// One CARRY4 of a carry chain (CI → CO[3]).
    pub const CARRY4: f64 = 0.114;
    /// Entering and leaving a carry chain (S[0] → O, CI → O[3]).
    pub const CARRY_IO: f64 = 0.8;
}

/// An adder (or comparator) of `w` bits: a LUT and a carry chain.
fn add_ns(w: u32) -> f64 {
    delay::LUT + delay::CARRY_IO + delay::CARRY4 * f64::from(w.div_ceil(4))
}

/// A product of `a` × `b` bits: one DSP48E1 level, two for a product wider than one slice
/// (the partial products are added in a second slice or in the fabric).
fn mult_ns(a: u32, b: u32) -> f64 {
    if mult_dsps(a, b) > 1 {
        2.0 * delay::DSP + add_ns(a + b)
    } else {
        delay::DSP
    }
}

/// The estimated register-to-register paths of one layer stage, in ns of cell delay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StagePaths {
    /// The update R (kaq_lincomb) unregistered: the widest coefficient product and a
    /// two-level sum.
    pub lincomb: f64,
    /// The update R registered (update pipeline ≥ 1): Yosys puts the register into the last
    /// DSP48E1 of the sum (PREG), so the path is the chunk select of the buffers, the widest
    /// product and one adder.
    pub lincomb_reg: f64,
    /// The prox: a table index requantization and a LUT read, or a clamp and a subtraction.
    pub prox: f64,
    /// The requantization of the prox output to state codes: a product, a variable shift, the
    /// rounding add and the saturation.
    pub requant: f64,
    /// The paths the update pipeline does not cut: a MAC lane (product and accumulation), the
    /// g requantization, the e requantization (lane sum, product, difference, rounding).
    pub fixed: f64,
}

impl StagePaths {
    /// The longest path with `upd_pipe` pipeline registers in the update lanes.
    pub fn critical(&self, upd_pipe: u64) -> f64 {
        let upd = match upd_pipe {
            0 => self.lincomb + self.prox + self.requant,
            1 => self.lincomb_reg.max(self.prox + self.requant),
            _ => self.lincomb_reg.max(self.prox).max(self.requant),
        };
        upd.max(self.fixed)
    }
}

/// A requantization of `x` bits by a `m`-bit multiplier with an `s`-bit variable shift: the
/// product, a log₂-deep shifter, the rounding add and a two-level saturation.
fn requant_ns(x: u32, m: u32, shift_bits: u32) -> f64 {
    mult_ns(x, m)
        + delay::LUT * f64::from(shift_bits.div_ceil(2))
        + add_ns(x + m)
        + 2.0 * delay::LUT
}

/// The paths of one layer stage from its parameters.
pub fn stage_paths(l: &LayerDesign) -> StagePaths {
    let p = Params(&l.params);
    let (sw, gw, hw, yw, ew) = (
        p.int("SW"),
        p.int("GW"),
        p.int("HW"),
        p.int("YW"),
        p.int("EW"),
    );
    let lanes = p.int("P").max(1);
    let (r_w, pin_w, lacc) = (p.int("R_W"), p.int("PIN_W"), p.int("LACC_W"));
    let widest = [
        (sw, p.int("X1_W")),
        (sw, p.int("X2_W")),
        (gw, p.int("GC_W")),
        (sw + 2, p.int("C_W")),
    ]
    .iter()
    .map(|&(a, c)| mult_ns(a, c))
    .fold(0.0, f64::max);
    let lincomb = widest + 2.0 * add_ns(r_w);
    // The 2·NC:1 chunk select of the state buffers (LUT6 levels; MUXF7/MUXF8 join 8 and 16).
    let nc = p.int("N") / lanes;
    let select = |k: u32| delay::LUT * f64::from((k.max(2) - 1).ilog2() / 2 + 1);
    let lincomb_reg = select(2 * nc) + widest + add_ns(r_w);
    let prox = if p.int("PROX_KIND") == 2 {
        requant_ns(pin_w, p.int("TIN_MULT_W"), 0) + 3.0 * delay::LUT
    } else {
        2.0 * add_ns(pin_w)
    };
    let rout_w = if p.int("PROX_KIND") == 2 {
        p.int("TW")
    } else {
        pin_w
    };
    // A shift table's range (O_SHIFT_MIN..O_SHIFT_MAX) leaves a narrow variable shifter.
    let o_shift_bits = if p.get("O_SHIFT_MAX").is_some() {
        let span = p.int("O_SHIFT_MAX") - p.int("O_SHIFT_MIN");
        u32::BITS - span.leading_zeros()
    } else {
        6
    };
    let requant = requant_ns(rout_w, p.int("O_MULT_W"), o_shift_bits);
    let bw = yw.max(sw).max(ew);
    // The MAC lane: the H̃ row's LUT-RAM read (a LUT level) after its address, the NC:1
    // chunk select, the operand select, the product and the accumulator.
    let mac = 2.0 * delay::LUT + select(nc) + delay::LUT + mult_ns(hw, bw) + add_ns(lacc);
    // The g requantization: a product unless the multiplier is a power of two (a shift).
    let g_mult = if p.const_mult(lacc, "G_MULT_W", "G_MULT") > 0 {
        mult_ns(lacc, p.int("G_MULT_W"))
    } else {
        0.0
    };
    let g = g_mult + add_ns(lacc + p.int("G_MULT_W")) + 2.0 * delay::LUT;
    let eacc = p.int("EACC_W");
    let e_sum = add_ns(eacc) * f64::from(u32::BITS - (lanes - 1).leading_zeros()).max(1.0);
    let e_mult_w = p.int("E_MULT_W");
    let e_rest = requant_ns(eacc, e_mult_w, 0) + add_ns(eacc);
    // E_PIPE registers after the lane sum (1) and after the product (2).
    let e = match p.int("E_PIPE") {
        // The zero-init first layer has no e phase (e is formed from ỹ on the MAC's path).
        _ if p.int("E_ZERO") != 0 => 0.0,
        0 => e_sum + e_rest,
        1 => e_sum.max(e_rest),
        _ => e_sum
            .max(mult_ns(eacc, e_mult_w))
            .max(e_rest - mult_ns(eacc, e_mult_w)),
    };
    StagePaths {
        lincomb,
        lincomb_reg,
        prox,
        requant,
        fixed: mac.max(g).max(e),
    }
}

/// The routing allowance on top of the cell delays (docs/synthesis.md, Timing: the xc7
/// factor of the Fmax estimate).
pub const XC7_ROUTING_FACTOR: f64 = 1.5;

/// The update pipeline depth [`pipeline_for_clock`] chose and what it gives.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClockPlan {
    /// The target in MHz.
    pub target_mhz: f64,
    /// Pipeline registers per update lane (0, 1 or 2).
    pub upd_pipe: u64,
    /// The estimated critical path (cell delays) at that depth, in ns.
    pub critical_ns: f64,
    /// The estimated clock: 1000 / (critical path × routing factor).
    pub estimated_mhz: f64,
    /// Whether the estimate reaches the target.
    pub met: bool,
}

/// The estimated clock of `d` (every stage's longest path at its pipeline depth).
pub fn clock_estimate(d: &Design) -> (f64, f64) {
    let ns = d
        .layers
        .iter()
        .map(|l| stage_paths(l).critical(l.upd_pipe))
        .fold(0.0, f64::max);
    (ns, 1000.0 / (ns * XC7_ROUTING_FACTOR))
}

/// The fewest update pipeline registers (up to `max_depth`) whose estimated clock reaches
/// `target_mhz`; the deepest one when none does (`met` false). `d` is the unpipelined design.
pub fn pipeline_for_clock(d: &Design, target_mhz: f64, max_depth: u64) -> ClockPlan {
    let paths: Vec<StagePaths> = d.layers.iter().map(stage_paths).collect();
    let at = |depth: u64| paths.iter().map(|s| s.critical(depth)).fold(0.0, f64::max);
    let budget = 1000.0 / (target_mhz * XC7_ROUTING_FACTOR);
    let depth = (0..=max_depth)
        .find(|&k| at(k) <= budget)
        .unwrap_or(max_depth);
    let critical_ns = at(depth);
    ClockPlan {
        target_mhz,
        upd_pipe: depth,
        critical_ns,
        estimated_mhz: 1000.0 / (critical_ns * XC7_ROUTING_FACTOR),
        met: critical_ns <= budget,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsp_slices_follow_the_operand_widths() {
        assert_eq!(mult_dsps(1, 30), 0);
        assert_eq!(mult_dsps(8, 8), 1);
        assert_eq!(mult_dsps(25, 18), 1);
        assert_eq!(mult_dsps(18, 25), 1);
        assert_eq!(mult_dsps(32, 16), 2);
        assert_eq!(mult_dsps(32, 24), 4);
        assert_eq!(mult_dsps(24, 23), 2);
        assert_eq!(mult_dsps(27, 24), 4);
    }

    #[test]
    fn index_products_take_a_slice_from_nine_bits() {
        // Each case synthesized alone (`TABLE[idx * W +: W]`, Yosys 0.23 synth_xilinx).
        for (b, w, dsps) in [
            (7, 14, 1),
            (7, 6, 1),
            (6, 14, 1),
            (5, 14, 0),
            (6, 6, 0),
            (4, 24, 0),
            (5, 24, 0),
            (3, 14, 0),
            (2, 96, 0),
        ] {
            assert_eq!(index_dsps(b, w), dsps, "{b}-bit index × {w}");
        }
        assert_eq!(index_dsps(7, 0), 0);
        assert_eq!(index_dsps(12, 64), 0, "a power of two is a shift");
    }

    #[test]
    fn the_clock_plan_takes_the_fewest_registers_that_meet_the_target() {
        let s = StagePaths {
            lincomb: 6.0,
            lincomb_reg: 6.0,
            prox: 3.0,
            requant: 7.0,
            fixed: 5.0,
        };
        assert_eq!(s.critical(0), 16.0);
        assert_eq!(s.critical(1), 10.0);
        assert_eq!(s.critical(2), 7.0);
        let fixed = StagePaths { fixed: 12.0, ..s };
        assert_eq!(
            fixed.critical(1),
            12.0,
            "the MAC, g and e paths are a floor"
        );
        assert_eq!(fixed.critical(2), 12.0);
        // Paths in ns → MHz with the routing factor.
        let mhz = |ns: f64| 1000.0 / (ns * XC7_ROUTING_FACTOR);
        let pick = |target: f64| {
            (0..=2u64)
                .find(|&d| mhz(s.critical(d)) >= target)
                .unwrap_or(2)
        };
        assert_eq!(pick(mhz(16.0)), 0);
        assert_eq!(pick(mhz(16.0) + 1.0), 1);
        assert_eq!(pick(mhz(10.0) + 1.0), 2);
        assert_eq!(pick(1000.0), 2);
        // The pieces grow with the widths.
        assert!(add_ns(48) > add_ns(16));
        assert!(mult_ns(32, 16) > mult_ns(16, 16));
        assert!(requant_ns(32, 16, 6) > requant_ns(32, 16, 0));
    }
}
