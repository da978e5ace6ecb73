//! The analytic resource estimate of an IR v2 (cg) design for the xc7 target, without Yosys
//! (docs/synthesis.md §"Estimate of IR v2 designs"): from the parameters of the generated top
//! (`kaq_codegen::gram::verilog::top`) — the lanes, the widths and depths of banks H, G and V,
//! the multiplier's operand widths, the program and constant ROMs, the denoiser table, the
//! bucket and slicer comparators — so that it follows the engine as it changes.
//!
//! `codegen/tests/estimate_vs_yosys.rs` checks the totals against Yosys's xilinx synthesis of
//! small v2 designs.

use serde::Serialize;

/// What the estimate reads from a generated v2 top.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GramShape {
    /// Rows M and columns N of H̃.
    pub m: u64,
    /// Columns N.
    pub n: u64,
    /// MAC lanes.
    pub lanes: u64,
    /// Bank H: M·N codes of `hw` bits.
    pub hw: u64,
    /// Bank G: N·N codes of `gbw` bits.
    pub gbw: u64,
    /// Bank V: `nv` codes of `vbw` bits.
    pub nv: u64,
    /// Bank V's width.
    pub vbw: u64,
    /// Register W's width.
    pub ww: u64,
    /// The multiplier's operand widths.
    pub mul: (u32, u32),
    /// Width of ỹ codes (the vector beat holds M of them).
    pub yw: u64,
    /// Width of state codes (x, the table's entries).
    pub sw: u64,
    /// Program ROM words and their width.
    pub rom: (u64, u64),
    /// Constant ROM entries and their width.
    pub krom: (u64, u64),
    /// Entries of the denoiser table (of `sw` bits each).
    pub table: u64,
    /// Bucket thresholds (64-bit comparators).
    pub thresholds: u64,
    /// Slicer thresholds per output code.
    pub slicer: u64,
}

/// An error naming what the top lacks.
fn missing(what: &str) -> String {
    format!(
        "the generated v2 top has no {what} (the estimate reads it from kaq_gram_core's parameters and the ROM declarations)"
    )
}

/// The integer parameters of the `kaq_gram_core #( … ) u_core` instance of `top`.
fn core_params(top: &str) -> Result<Vec<(String, String)>, String> {
    let start = top
        .find("kaq_gram_core #(")
        .ok_or_else(|| missing("kaq_gram_core instance"))?;
    let body = &top[start + "kaq_gram_core #(".len()..];
    let end = body
        .find(") u_core")
        .ok_or_else(|| missing("u_core instance"))?;
    let mut out = Vec::new();
    for item in body[..end].split("),") {
        let item = item.trim().trim_end_matches(')');
        if let Some((name, value)) = item.trim_start_matches('.').split_once('(') {
            out.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    Ok(out)
}

/// `reg [W-1:0] NAME [0:D-1]` (optionally `signed`): (D, W).
fn memory(top: &str, name: &str) -> Result<(u64, u64), String> {
    let pat = format!(" {name} [0:");
    let at = top.find(&pat).ok_or_else(|| missing(name))?;
    let line_start = top[..at].rfind('\n').map_or(0, |i| i + 1);
    let decl = &top[line_start..at];
    let width = decl
        .rsplit_once('[')
        .and_then(|(_, r)| r.split_once(':'))
        .and_then(|(hi, _)| hi.trim().parse::<u64>().ok())
        .ok_or_else(|| missing(&format!("width of {name}")))?;
    let depth = top[at + pat.len()..]
        .split(']')
        .next()
        .and_then(|d| d.trim().parse::<u64>().ok())
        .ok_or_else(|| missing(&format!("depth of {name}")))?;
    Ok((depth + 1, width + 1))
}

impl GramShape {
    /// Reads the shape of the generated top `top` (the text of `gram::verilog::top`).
    pub fn of_top(top: &str) -> Result<Self, String> {
        let params = core_params(top)?;
        let int = |name: &str| -> Result<u64, String> {
            params
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.parse().ok())
                .ok_or_else(|| missing(&format!("integer parameter {name}")))
        };
        let table = top
            .lines()
            .filter(|l| l.contains(": lut_f = ") && !l.contains("default"))
            .count() as u64;
        let n = int("N")?;
        Ok(GramShape {
            m: int("M")?,
            n,
            lanes: int("LANES")?,
            hw: int("HW")?,
            gbw: int("GBW")?,
            nv: int("NV")?,
            vbw: int("VBW")?,
            ww: int("WW")?,
            mul: (int("MAW")? as u32, int("MBW")? as u32),
            yw: int("YW")?,
            sw: int("SW")?,
            rom: memory(top, "rom")?,
            krom: memory(top, "krom")?,
            table,
            thresholds: top.matches("(bk_in >= ").count() as u64,
            slicer: top.matches("(xv >= ").count() as u64,
        })
    }
}

/// Estimated cells of a v2 design.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GramEstimate {
    /// LUTs (logic; LUT-RAM not counted).
    pub lut: u64,
    /// Flip-flops.
    pub ff: u64,
    /// DSP48E1 slices.
    pub dsp: u64,
    /// RAMB18E1 (a RAMB36E1 counts two).
    pub bram18: u64,
    /// LUT-RAM cells (RAM32M, RAM64M).
    pub lutram: u64,
}

/// Calibrated on small v2 designs (`tests/estimate_vs_yosys.rs`, Yosys 0.23, xc7;
/// docs/synthesis.md §"Estimate of IR v2 designs").
mod fit {
    /// LUTs of the engine's 64-bit datapath, control, dividers and bucket comparators.
    pub const LUT_BASE: f64 = 1565.3;
    /// LUTs per LUT6 of the program and constant ROMs as logic (one per bit and 64 words).
    pub const LUT_PER_ROM_LUT: f64 = 1.612;
    /// LUTs per LUT6 of the denoiser table as logic (one per 64 entry bits).
    pub const LUT_PER_TABLE_LUT: f64 = 0.539;
    /// LUTs per lane beyond the first, per bit of its operand selects, product sum and
    /// addresses (`lane_bits`).
    pub const LUT_PER_LANE_BIT: f64 = 0.293;
    /// LUTs per lane beyond the first of its accumulator's update and finish (the product
    /// shift, the add, the rounding shift, the saturation: 64 bits each) and its bank-V
    /// write select.
    pub const LUT_PER_LANE_FINISH: f64 = 950.0;
    /// Flip-flops of the control, the dividers and the execute stage's fields.
    pub const FF_BASE: u64 = 215;
}

/// A memory of `depth` words of `width` bits with `reads` read ports in LUT-RAM or block
/// RAM, as Yosys maps a bank: up to 64 words per RAM64M (3 bits per read port; RAM32M: 32
/// words, 6 bits) in LUT-RAM, deeper ones to RAMB18E1 (one per read port and
/// ⌈width / (18·1024 / depth rounded up to a power of two)⌉, at most 36 bits wide).
fn bank(depth: u64, width: u64, reads: u64) -> (u64, u64) {
    if depth <= 128 {
        // 64-word slices, the rest in a 32- or 64-word one.
        let full = depth / 64;
        let rest = depth % 64;
        let ram64 =
            full * (width * reads).div_ceil(3) + u64::from(rest > 32) * (width * reads).div_ceil(3);
        let ram32 = u64::from(rest > 0 && rest <= 32) * (width * reads).div_ceil(6);
        (0, ram64 + ram32)
    } else {
        let words = depth.next_power_of_two().max(512);
        let per = (18 * 1024 / words).clamp(1, 36);
        (reads * width.div_ceil(per), 0)
    }
}

/// LUT6s of a ROM of `words` words of `width` bits as logic: one per bit and 64 words.
fn rom_luts(words: u64, width: u64) -> u64 {
    width * words.div_ceil(64)
}

/// The estimate of a v2 design of shape `s`.
pub fn estimate(s: &GramShape) -> GramEstimate {
    let lanes = s.lanes.max(1);
    let (maw, mbw) = s.mul;
    // DSPs: one multiplier per lane (H̃ enters one code a beat, so its load has no index
    // product).
    let haw = crate::design::index_width((s.m * s.n) as usize);
    let dsp = lanes * super::mult_dsps(maw, mbw);
    // Memories: every lane's copy of banks H and G and its interleaved bank of V (NV / P
    // rows), two read ports each.
    let mut bram18 = 0;
    let mut lutram = 0;
    for (d, w) in [(s.m * s.n, s.hw), (s.n * s.n, s.gbw), (s.nv / lanes, s.vbw)] {
        let (b, l) = bank(d, w, 2);
        bram18 += lanes * b;
        lutram += lanes * l;
    }
    // Flip-flops: W, the outputs, the vector beat (whole rows of P codes), the instruction
    // and the constant, two program counters, and per lane its accumulator, the registered
    // bank addresses and its valid bit.
    let gaw = crate::design::index_width((s.n * s.n) as usize);
    let vaw = crate::design::index_width((s.nv / lanes) as usize);
    let pcw = crate::design::index_width(s.rom.0 as usize);
    let ff = fit::FF_BASE
        + s.ww
        + s.n * s.sw
        + s.m.div_ceil(lanes) * lanes * s.yw
        + s.rom.1
        + s.krom.1
        + 2 * u64::from(pcw)
        + lanes * (64 + 2 * u64::from(haw + gaw + vaw) + 1);
    // LUTs: the engine, the ROMs and the table as logic, and per extra lane its operand selects, product-sum adder, addresses and
    // write-first bypasses.
    let lane_bits = u64::from(maw + mbw) + 64 + 6 * 8 + 2 * (s.gbw + s.vbw);
    let roms = rom_luts(s.rom.0, s.rom.1) + rom_luts(s.krom.0, s.krom.1);
    // The table: one port per lane.
    let table = lanes * (s.table * s.sw).div_ceil(64);
    let lut = fit::LUT_BASE
        + fit::LUT_PER_ROM_LUT * roms as f64
        + fit::LUT_PER_TABLE_LUT * table as f64
        + fit::LUT_PER_LANE_BIT * ((lanes - 1) * lane_bits) as f64
        + fit::LUT_PER_LANE_FINISH * (lanes - 1) as f64;
    GramEstimate {
        lut: lut.round() as u64,
        ff,
        dsp,
        bram18,
        lutram,
    }
}

/// The estimate of the generated top `top` (the text of `gram::verilog::top`).
pub fn estimate_top(top: &str) -> Result<GramEstimate, String> {
    Ok(estimate(&GramShape::of_top(top)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banks_map_as_yosys_maps_them() {
        // Measured on 2×2 and 4×4 QPSK designs: H 16 × 10 and G 16 × 16 in 4 + 6 RAM32M,
        // V 41 × 24 in 16 RAM64M; the 16×16 design's 1024-word banks one RAMB18 per port.
        assert_eq!(bank(16, 10, 2), (0, 4));
        assert_eq!(bank(16, 16, 2), (0, 6));
        assert_eq!(bank(41, 24, 2), (0, 16));
        assert_eq!(bank(77, 24, 2), (0, 16 + 8));
        assert_eq!(bank(1024, 10, 2), (2, 0));
        assert_eq!(bank(1024, 16, 2), (2, 0));
        assert_eq!(bank(293, 24, 2), (2, 0));
    }

    #[test]
    fn a_top_without_the_engine_is_refused_by_name() {
        let e = GramShape::of_top("module t; endmodule").unwrap_err();
        assert!(e.contains("kaq_gram_core"), "{e}");
        let top = "kaq_gram_core #(\n .M(2), .N(2)\n ) u_core (";
        let e = GramShape::of_top(top).unwrap_err();
        assert!(e.contains("HW") || e.contains("LANES"), "{e}");
    }
}
