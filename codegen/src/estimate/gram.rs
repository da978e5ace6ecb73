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
            .filter(|l| l.contains(": lut_val = ") && !l.contains("default"))
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
