//! The lowering from the IR to the typed values the templates print: every width, name,
//! constant and table, computed here so that the templates hold wiring and constants only.

use kaq_ir::Arch;
use kaq_ir::fixed::{OverflowMode, RoundingMode};
use kaq_ir::{InitStage, Ir, ProxStage};

use crate::CodegenError;
use crate::literal::{packed, signed_width, sized, table_width};

/// The interface widths of the generated top (docs in the generated README).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Rows of H̃ (beats per frame).
    pub m: usize,
    /// Columns of H̃ (entries per row and output codes per frame).
    pub n: usize,
    /// Bits of an entry of H̃.
    pub hw: u32,
    /// Bits of an entry of ỹ.
    pub yw: u32,
    /// Bits of a state code (x, s, u and the output codes).
    pub sw: u32,
    /// Bits of the SNR bin.
    pub binw: u32,
    /// Number of SNR bins.
    pub bins: usize,
    /// Bits per real dimension of the hard decision.
    pub bpd: u32,
    /// Levels per real dimension.
    pub levels: usize,
    /// MAC lanes per layer stage.
    pub lanes: usize,
}

/// One layer module: its name and the parameters of its `kaq_layer_core` instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDesign {
    /// Module name, `<top>_layer<k>` (k from 1).
    pub module: String,
    /// 1-based layer number.
    pub number: usize,
    /// The number of the stream it drives (`number + 1`; the output stage takes the last).
    pub next: usize,
    /// `(parameter, Verilog constant)` in declaration order.
    pub params: Vec<(String, String)>,
    /// Issue cycles of the MAC engine per frame (see `report`).
    pub mac_cycles: u64,
    /// Multiply-accumulates per frame.
    pub macs: u64,
    /// Pipeline registers in the update lanes (`UPD_PIPE`: 0, 1 after the update R, 2 also
    /// after the prox); each adds a cycle to the update engine.
    pub upd_pipe: u64,
}

/// Everything the templates need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Design {
    /// Top module name.
    pub top: String,
    /// Interface.
    pub io: Interface,
    /// PGD-Net or ADMM-Net.
    pub arch: Arch,
    /// The layers in order.
    pub layers: Vec<LayerDesign>,
    /// The output stage's parameters.
    pub out_params: Vec<(String, String)>,
    /// Which state leaves the last layer as the output: `m_x1` (PGD) or `m_s` (ADMM).
    pub out_state: &'static str,
}

fn rounding(r: RoundingMode) -> String {
    r.verilog_code().to_string()
}

fn overflow(o: OverflowMode) -> String {
    o.verilog_code().to_string()
}

/// Bits of an unsigned index of `count` values (at least 1).
pub fn index_width(count: usize) -> u32 {
    if count <= 2 {
        1
    } else {
        usize::BITS - (count - 1).leading_zeros()
    }
}

/// A per-bin shift table: 6-bit unsigned entries (shifts are at most 63).
fn shifts(values: &[u32]) -> String {
    let v: Vec<i64> = values.iter().map(|&s| i64::from(s)).collect();
    packed(&v, 6)
}

fn table(values: &[i64], bins: usize) -> (u32, String) {
    if values.is_empty() {
        (2, packed(&vec![0; bins], 2))
    } else {
        let w = table_width(values);
        (w, packed(values, w))
    }
}

/// `<prefix>_SHIFT_MIN` and `<prefix>_SHIFT_MAX`: the range of a per-bin shift table, so
/// that `kaq_requant_var` shifts by the smallest entry as a constant and by the rest through a
/// narrow barrel shifter.
fn shift_range(p: &mut Params, prefix: &str, values: &[u32]) {
    if let (Some(lo), Some(hi)) = (values.iter().min(), values.iter().max()) {
        p.int(&format!("{prefix}_SHIFT_MIN"), lo);
        p.int(&format!("{prefix}_SHIFT_MAX"), hi);
    }
}

struct Params(Vec<(String, String)>);

impl Params {
    fn int(&mut self, name: &str, v: impl ToString) {
        self.0.push((name.to_string(), v.to_string()));
    }
    fn lit(&mut self, name: &str, v: String) {
        self.0.push((name.to_string(), v));
    }
    /// A per-bin table and its entry width `<W name>`.
    fn table(&mut self, width_name: &str, name: &str, values: &[i64], bins: usize) -> u32 {
        let (w, lit) = table(values, bins);
        self.int(width_name, w);
        self.lit(name, lit);
        w
    }
}

/// Lowers `ir` with `lanes` MAC lanes per layer stage and the top module name `top`.
pub fn lower(ir: &Ir, lanes: usize, top: &str) -> Result<Design, CodegenError> {
    lower_pipelined(ir, lanes, top, 0)
}

/// The deepest pipeline of the e requantization (`E_PIPE`: the lanes' sum and y registered,
/// then the product registered); it adds no cycle while `M >= E_PIPE + 2`.
pub const MAX_E_PIPE: u64 = 2;

/// The deepest update pipeline of an architecture: 2 for PGD-Net (after the update R and
/// after the prox), 1 for ADMM-Net (after the update R; its v, w and u chain follows).
pub fn max_update_pipeline(arch: Arch) -> u64 {
    if arch == Arch::Admm { 1 } else { 2 }
}

/// [`lower`] with `upd_pipe` pipeline registers in every stage's update lanes (clamped to
/// [`max_update_pipeline`]).
pub fn lower_pipelined(
    ir: &Ir,
    lanes: usize,
    top: &str,
    upd_pipe: u64,
) -> Result<Design, CodegenError> {
    let upd_pipe = upd_pipe.min(max_update_pipeline(ir.arch));
    ir.validate().map_err(CodegenError::Ir)?;
    let (m, n) = (ir.m, ir.n);
    crate::resolve_lanes(n, Some(lanes))?;
    let bins = ir.bins();
    let io = Interface {
        m,
        n,
        hw: ir.inputs.h.width(),
        yw: ir.inputs.y.width(),
        sw: ir.state_width,
        binw: index_width(bins),
        bins,
        bpd: ir.modulation.bits_per_dim(),
        levels: ir.levels(),
        lanes,
    };
    let nc = (n / lanes) as u64;
    let mut layers = Vec::with_capacity(ir.layers.len());
    for (k, layer) in ir.layers.iter().enumerate() {
        let mut p = Params(Vec::new());
        let has_mf = k == 0 && matches!(ir.init, InitStage::MatchedFilter { .. });
        let e_zero = k == 0 && matches!(ir.init, InitStage::Zero);
        let ew = layer.e.format.width();
        let gw = layer.g.format.width();
        p.int("M", m);
        p.int("N", n);
        p.int("P", lanes);
        p.int("HW", io.hw);
        p.int("YW", io.yw);
        p.int("SW", io.sw);
        p.int("EW", ew);
        p.int("GW", gw);
        p.int("BINS", bins);
        p.int("BINW", io.binw);
        p.int("ARCH", u8::from(ir.arch == Arch::Admm));
        p.int("HAS_MF", u8::from(has_mf));
        p.int("E_ZERO", u8::from(e_zero));
        let operand = io.hw + io.yw.max(io.sw).max(ew);
        let mut lacc = operand.max(layer.e.acc.width).max(layer.g.acc.width);
        // Matched filter.
        match (&ir.init, has_mf) {
            (InitStage::MatchedFilter { acc, requant }, true) => {
                lacc = lacc.max(acc.width);
                let w = signed_width(requant.mult());
                p.int("LACC_W", lacc);
                p.int("MF_MULT_W", w);
                p.lit("MF_MULT", sized(requant.mult(), w));
                p.int("MF_SHIFT", requant.shift());
                p.int("MF_ROUND", rounding(requant.rounding()));
                p.int("MF_OVF", overflow(requant.overflow()));
            }
            _ => p.int("LACC_W", lacc),
        }
        // e.
        p.int("EACC_W", layer.e.acc.width);
        p.table("E_MULT_W", "E_MULT_TABLE", &layer.e.mult, bins);
        p.int("E_YSHIFT", layer.e.y_shift);
        p.int("E_SHIFT", layer.e.shift);
        p.int("E_ROUND", rounding(layer.e.rounding));
        p.int("E_OVF", overflow(layer.e.overflow));
        // g.
        let g = &layer.g.requant;
        let gmw = signed_width(g.mult());
        p.int("G_MULT_W", gmw);
        p.lit("G_MULT", sized(g.mult(), gmw));
        p.int("G_SHIFT", g.shift());
        p.int("G_ROUND", rounding(g.rounding()));
        p.int("G_OVF", overflow(g.overflow()));
        // The update.
        let u = &layer.update;
        let r_w = u.acc.width;
        p.int("R_W", r_w);
        p.table("X1_W", "X1_TABLE", &u.x1, bins);
        p.table("X2_W", "X2_TABLE", &u.x2, bins);
        let gcw = signed_width(u.g_coef);
        p.int("GC_W", gcw);
        p.lit("G_COEF", sized(u.g_coef, gcw));
        p.table("C_W", "C_TABLE", &u.c, bins);
        // The prox.
        let pin_w = layer.admm.as_ref().map_or(r_w, |a| a.v.width);
        p.int("PIN_W", pin_w);
        // A parameter beyond the input's range acts like the largest code there.
        let in_range = |v: i64| v.min(kaq_ir::fixed::max_code(pin_w));
        match &layer.prox {
            ProxStage::Soft { lambda } => {
                p.int("PROX_KIND", 0);
                p.lit("PROX_PARAM", sized(in_range(*lambda), pin_w));
            }
            ProxStage::Box { limit } => {
                p.int("PROX_KIND", 1);
                p.lit("PROX_PARAM", sized(in_range(*limit), pin_w));
            }
            ProxStage::Table {
                input,
                table,
                table_width,
                ..
            } => {
                if input.out_width() != io.sw {
                    return Err(CodegenError::Unsupported(format!(
                        "layers[{k}].prox.input.out_width = {} must equal state_width {} \
                         (the table is addressed by a state-width code)",
                        input.out_width(),
                        io.sw
                    )));
                }
                p.int("PROX_KIND", 2);
                p.lit("PROX_PARAM", sized(0, pin_w));
                let w = signed_width(input.mult());
                p.int("TIN_MULT_W", w);
                p.lit("TIN_MULT", sized(input.mult(), w));
                p.int("TIN_SHIFT", input.shift());
                p.int("TIN_ROUND", rounding(input.rounding()));
                p.int("TIN_OVF", overflow(input.overflow()));
                p.int("TW", table_width);
                p.lit("PROX_TABLE", packed(table, *table_width));
            }
        }
        // Prox output -> state codes.
        let out = &layer.out;
        p.table("O_MULT_W", "O_MULT_TABLE", &out.mult, bins);
        p.lit("O_SHIFT_TABLE", shifts(&out.shift));
        shift_range(&mut p, "O", &out.shift);
        p.int("O_ROUND", rounding(out.rounding));
        p.int("O_OVF", overflow(out.overflow));
        // Mixed precision: a layer narrower than the state registers (absent: OW = SW, so a
        // uniform design's parameters are those of a design without per-layer widths).
        if out.width != io.sw {
            p.int("OW", out.width);
        }
        if let Some(a) = &layer.admm {
            p.table("XO_MULT_W", "XO_MULT_TABLE", &a.x_out.mult, bins);
            p.lit("XO_SHIFT_TABLE", shifts(&a.x_out.shift));
            shift_range(&mut p, "XO", &a.x_out.shift);
            p.int("XO_ROUND", rounding(a.x_out.rounding));
            p.int("XO_OVF", overflow(a.x_out.overflow));
            if a.x_out.width != io.sw {
                p.int("XOW", a.x_out.width);
            }
            p.table("VX_W", "VX_TABLE", &a.vx, bins);
            p.table("VU_W", "VU_TABLE", &a.vu, bins);
            p.int("V_W", a.v.width);
            p.int("WW", a.w.width);
        }
        if upd_pipe > 0 {
            p.int("UPD_PIPE", upd_pipe);
        }
        // The e requantization's pipeline registers cost no cycle while M >= E_PIPE + 2
        // (kaq_layer_core): always as deep as that allows, up to 2.
        let e_pipe = if e_zero {
            0
        } else {
            MAX_E_PIPE.min(m.saturating_sub(2) as u64)
        };
        if e_pipe > 0 {
            p.int("E_PIPE", e_pipe);
        }
        let mn = (m * n) as u64;
        let mac_cycles = (if has_mf { m as u64 * nc + 1 } else { 0 })
            + (if e_zero { 0 } else { m as u64 * nc })
            + m as u64 * nc;
        let macs = (if has_mf { mn } else { 0 }) + (if e_zero { 0 } else { mn }) + mn;
        layers.push(LayerDesign {
            module: format!("{top}_layer{}", k + 1),
            number: k + 1,
            next: k + 2,
            params: p.0,
            mac_cycles,
            macs,
            upd_pipe,
        });
    }
    // Output stage: the slicer thresholds per bin.
    let thresholds: Vec<i64> = ir.slicer.thresholds.iter().flatten().copied().collect();
    let tw = table_width(&thresholds).max(io.sw + 1);
    let mut p = Params(Vec::new());
    p.int("M", m);
    p.int("N", n);
    p.int("SW", io.sw);
    p.int("BINS", bins);
    p.int("BINW", io.binw);
    p.int("LEVELS", io.levels);
    p.int("TW", tw);
    p.int("BPD", io.bpd);
    p.lit("THRESH_TABLE", packed(&thresholds, tw));
    Ok(Design {
        top: top.to_string(),
        io,
        arch: ir.arch,
        layers,
        out_params: p.0,
        out_state: if ir.arch == Arch::Admm { "s" } else { "x1" },
    })
}
