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

/// Calibrated on the fixtures of `tests/estimate_vs_yosys.rs` (Yosys 0.23, xc7; the
/// least-squares fit of the layer stages, docs/synthesis.md §Estimate).
mod fit {
    /// LUTs of a stage's control, frame buffers and MAC datapath.
    pub const LUT_BASE: u64 = 430;
    /// LUTs per DSP48E1 (the carry chains and sign extensions around each product).
    pub const LUT_PER_DSP: u64 = 32;
    /// LUTs per variable-shift requantizer (per update lane).
    pub const LUT_PER_REQUANT_VAR: u64 = 240;
    /// Flip-flops of a stage's control, counters and pipeline registers.
    pub const FF_BASE: u64 = 45;
    /// SNR bins of the calibration designs: the LUT fit holds their per-bin tables.
    pub const BINS: u64 = 4;
}

fn layer(l: &LayerDesign, ctx: &LayerContext) -> Estimate {
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
    let bw = yw.max(sw).max(ew);
    let r_w = p.int("R_W");
    let pin_w = p.int("PIN_W");
    let p64 = u64::from(lanes);

    // DSPs: the MAC lanes, the g (and matched-filter) requantizers per lane, the e
    // requantizer once, the update's linear combination and output requantizers per lane.
    let mut dsp = p64 * mult_dsps(hw, bw);
    dsp += p64 * p.const_mult(lacc, "G_MULT_W", "G_MULT");
    if has_mf {
        dsp += p64 * p.const_mult(lacc, "MF_MULT_W", "MF_MULT");
    }
    dsp += p.mult(p.int("EACC_W"), "E_MULT_W", "E_MULT_TABLE");
    let mut upd = p.mult(sw, "X1_W", "X1_TABLE")
        + p.mult(sw, "X2_W", "X2_TABLE")
        + p.const_mult(gw, "GC_W", "G_COEF")
        + p.mult(sw + 2, "C_W", "C_TABLE")
        + p.mult(pin_w, "O_MULT_W", "O_MULT_TABLE");
    let mut requant_var = 1;
    if admm {
        // x from the update, u from w; v = vx*x + vu*u; w = v - vx*s.
        upd += p.mult(r_w, "XO_MULT_W", "XO_MULT_TABLE")
            + p.mult(p.int("WW"), "XO_MULT_W", "XO_MULT_TABLE")
            + p.mult(sw, "VX_W", "VX_TABLE")
            + p.mult(sw, "VU_W", "VU_TABLE")
            + mult_dsps(sw, p.int("VX_W") + 1);
        requant_var += 2;
    }
    if p.int("PROX_KIND") == 2 {
        upd += p.const_mult(pin_w, "TIN_MULT_W", "TIN_MULT");
    }
    dsp += p64 * upd;

    // Flip-flops: the lane accumulators, two frame buffers of every state the stage keeps in
    // registers (x1; x2 for momentum; s and u for ADMM-Net) and of g (H̃, ỹ and e are
    // LUT-RAM).
    let states = 1 + u64::from(p.nonzero("X2_TABLE")) + 2 * u64::from(admm);
    let live = ctx.tied.iter().zip(&ctx.read).any(|(t, r)| !t || *r);
    let ff = fit::FF_BASE
        + p64 * u64::from(lacc)
        + u64::from(live) * states * 2 * u64::from(n) * u64::from(sw)
        + 2 * u64::from(n) * u64::from(gw);

    // Per-bin tables are read through a BINS:1 multiplexer per bit (a LUT6 and its muxes
    // per 4 entries); the fit holds tables of `fit::BINS` entries, larger ones add the rest.
    let table_bits: u64 = [
        ("E_MULT_W", "E_MULT_TABLE"),
        ("X1_W", "X1_TABLE"),
        ("X2_W", "X2_TABLE"),
        ("C_W", "C_TABLE"),
        ("O_MULT_W", "O_MULT_TABLE"),
        ("XO_MULT_W", "XO_MULT_TABLE"),
        ("VX_W", "VX_TABLE"),
        ("VU_W", "VU_TABLE"),
    ]
    .iter()
    .filter(|(_, t)| p.nonzero(t))
    .map(|(w, _)| u64::from(p.int(w)))
    .sum::<u64>()
        + 6 * (1 + u64::from(admm));
    let bins = u64::from(p.int("BINS"));
    let table_luts = table_bits * (bins.div_ceil(4).saturating_sub(fit::BINS.div_ceil(4)));

    let lut = fit::LUT_BASE
        + fit::LUT_PER_DSP * dsp
        + fit::LUT_PER_REQUANT_VAR * p64 * requant_var
        + table_luts;
    Estimate { lut, ff, dsp }
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
}
