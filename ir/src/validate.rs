//! Validation of an [`Ir`] and the interval analysis that proves its accumulator widths.
//!
//! The analysis is written once and used twice: the lowering fills every [`Acc`] from it
//! ([`fill_bounds`]), and validation recomputes it and refuses any declared bound below the
//! proved one. Bounds are magnitudes: a value v satisfies |v| ≤ bound. Inputs H and y may take
//! every code of their formats (including −2^(w−1)); a state, e or g code is bounded by its
//! overflow mode (symmetric saturation: 2^(w−1) − 1, otherwise 2^(w−1)).

use crate::document::{
    Acc, IR_FORMAT, IR_VERSION, InitStage, Ir, IrError, Layer, MAX_DIM, ProxStage,
};
use crate::fixed::{MAX_ACC_WIDTH, MAX_SHIFT, OverflowMode, fits};
use crate::vocab::{Arch, MAX_ANTENNAS, MAX_BITS, MAX_LAYERS, MIN_BITS};

/// Largest table address width (2^16 entries).
pub const MAX_TABLE_BITS: u32 = 16;

/// Largest |code| of a `width`-bit code produced with overflow mode `mode`.
pub fn code_bound(width: u32, mode: OverflowMode) -> i128 {
    let half = 1i128 << (width - 1);
    match mode {
        OverflowMode::SaturateSymmetric => half - 1,
        OverflowMode::Saturate | OverflowMode::Wrap => half,
    }
}

fn max_abs(values: &[i64]) -> i128 {
    values
        .iter()
        .map(|&v| i128::from(v).abs())
        .max()
        .unwrap_or(0)
}

/// The proved bounds of one layer, in the order of the layer's [`Acc`] fields.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LayerBounds {
    pub e_acc: i128,
    pub e_sum: i128,
    pub g_acc: i128,
    pub update: i128,
    pub prox_out: i128,
    pub v: i128,
    pub w: i128,
    pub x_out_input: i128,
}

/// State bounds carried from layer to layer.
#[derive(Debug, Clone, Copy)]
struct States {
    x1: i128,
    x2: i128,
    s: i128,
    u: i128,
}

/// The interval analysis of the whole IR: the matched filter's accumulator bound (0 without
/// one) and every layer's bounds. Reads only widths, modes and parameter values (never the
/// declared bounds), so it can run on a half-built IR.
pub(crate) fn analyse(ir: &Ir) -> (i128, Vec<LayerBounds>) {
    let hb = 1i128 << (ir.inputs.h.width() - 1);
    let yb = 1i128 << (ir.inputs.y.width() - 1);
    let (m, n) = (ir.m as i128, ir.n as i128);
    let (mf, x0) = match &ir.init {
        InitStage::Zero => (0, 0),
        InitStage::MatchedFilter { requant, .. } => (
            m * hb * yb,
            code_bound(requant.out_width(), requant.overflow()),
        ),
    };
    let mut st = States {
        x1: x0,
        x2: x0,
        s: x0,
        u: 0,
    };
    let mut out = Vec::with_capacity(ir.layers.len());
    for layer in &ir.layers {
        let mut b = LayerBounds {
            e_acc: n * hb * st.x1,
            ..LayerBounds::default()
        };
        b.e_sum = max_abs(&layer.e.mult) * b.e_acc + (yb << layer.e.y_shift.min(64));
        let eb = code_bound(layer.e.format.width(), layer.e.overflow);
        b.g_acc = m * hb * eb;
        let gb = code_bound(layer.g.format.width(), layer.g.requant.overflow());
        b.update = max_abs(&layer.update.x1) * st.x1
            + max_abs(&layer.update.x2) * st.x2
            + i128::from(layer.update.g_coef).abs() * gb
            + max_abs(&layer.update.c) * (st.x1 + st.s + st.u);
        let state = code_bound(layer.out.width, layer.out.overflow);
        let prox_in = match &layer.admm {
            None => b.update,
            Some(a) => {
                let xs = code_bound(a.x_out.width, a.x_out.overflow);
                b.v = max_abs(&a.vx) * xs + max_abs(&a.vu) * st.u;
                b.w = b.v + max_abs(&a.vx) * state;
                b.x_out_input = b.update.max(b.w);
                b.v
            }
        };
        b.prox_out = match &layer.prox {
            ProxStage::Soft { .. } => prox_in,
            ProxStage::Box { limit } => i128::from(*limit).abs().min(prox_in),
            ProxStage::Table { table, .. } => max_abs(table),
        };
        let next = match &layer.admm {
            None => States {
                x1: state,
                x2: st.x1,
                s: 0,
                u: 0,
            },
            Some(a) => {
                let xs = code_bound(a.x_out.width, a.x_out.overflow);
                States {
                    x1: xs,
                    x2: st.x1,
                    s: state,
                    u: xs,
                }
            }
        };
        st = next;
        out.push(b);
    }
    (mf, out)
}

/// Fills every [`Acc`] of `ir` with the narrowest width holding its proved bound.
pub fn fill_bounds(ir: &mut Ir) -> Result<(), IrError> {
    let (mf, layers) = analyse(ir);
    if let InitStage::MatchedFilter { acc, .. } = &mut ir.init {
        *acc = Acc::for_bound(mf, "init.acc")?;
    }
    for (k, (layer, b)) in ir.layers.iter_mut().zip(layers).enumerate() {
        layer.e.acc = Acc::for_bound(b.e_acc, &format!("layers[{k}].e.acc"))?;
        layer.e.sum = Acc::for_bound(b.e_sum, &format!("layers[{k}].e.sum"))?;
        layer.g.acc = Acc::for_bound(b.g_acc, &format!("layers[{k}].g.acc"))?;
        layer.update.acc = Acc::for_bound(b.update, &format!("layers[{k}].update.acc"))?;
        layer.out.input = Acc::for_bound(b.prox_out, &format!("layers[{k}].out.input"))?;
        if let Some(a) = &mut layer.admm {
            a.v = Acc::for_bound(b.v, &format!("layers[{k}].admm.v"))?;
            a.w = Acc::for_bound(b.w, &format!("layers[{k}].admm.w"))?;
            a.x_out.input =
                Acc::for_bound(b.x_out_input, &format!("layers[{k}].admm.x_out.input"))?;
        }
    }
    Ok(())
}

fn check_acc(field: &str, acc: &Acc, proved: i128) -> Result<(), IrError> {
    if !(1..=MAX_ACC_WIDTH).contains(&acc.width) {
        return Err(IrError::invalid(
            format!("{field}.width"),
            format!("{} bits is outside 1..={MAX_ACC_WIDTH}", acc.width),
        ));
    }
    if acc.bound < 0 {
        return Err(IrError::invalid(
            format!("{field}.bound"),
            format!("{} is negative", acc.bound),
        ));
    }
    if i128::from(acc.bound) < proved {
        return Err(IrError::invalid(
            format!("{field}.bound"),
            format!(
                "{} is below the bound {proved} that interval analysis proves for this IR",
                acc.bound
            ),
        ));
    }
    if !fits(acc.bound, acc.width) {
        return Err(IrError::invalid(
            format!("{field}.width"),
            format!(
                "{} bits cannot hold the declared bound {}",
                acc.width, acc.bound
            ),
        ));
    }
    Ok(())
}

fn check_table(field: String, values: &[i64], bins: usize) -> Result<(), IrError> {
    if values.len() != bins {
        return Err(IrError::invalid(
            field,
            format!("holds {} entries, the IR has {bins} SNR bins", values.len()),
        ));
    }
    check_mults(&field, values)
}

fn check_mults(field: &str, values: &[i64]) -> Result<(), IrError> {
    if let Some((i, v)) = values
        .iter()
        .enumerate()
        .find(|(_, v)| !fits(**v, crate::fixed::MAX_MULT_WIDTH))
    {
        return Err(IrError::invalid(
            format!("{field}[{i}]"),
            format!("{v} does not fit a signed 32-bit multiplier"),
        ));
    }
    Ok(())
}

fn check_shift(field: String, shift: u32) -> Result<(), IrError> {
    if shift > MAX_SHIFT {
        return Err(IrError::invalid(
            field,
            format!("{shift} is above the largest shift {MAX_SHIFT}"),
        ));
    }
    Ok(())
}

fn check_width(field: String, width: u32, min: u32, max: u32) -> Result<(), IrError> {
    if !(min..=max).contains(&width) {
        return Err(IrError::invalid(
            field,
            format!("{width} bits is outside {min}..={max}"),
        ));
    }
    Ok(())
}

pub(crate) fn validate(ir: &Ir) -> Result<(), IrError> {
    if ir.format != IR_FORMAT {
        return Err(IrError::Format(ir.format.clone()));
    }
    if ir.version != IR_VERSION {
        return Err(IrError::Version(ir.version));
    }
    if ir.name.is_empty() || ir.name.len() > 128 || ir.name.chars().any(char::is_control) {
        return Err(IrError::invalid(
            "name",
            "must be 1 to 128 characters without control characters",
        ));
    }
    for (field, v) in [("nt", ir.nt), ("nr", ir.nr)] {
        if v == 0 || v > MAX_ANTENNAS {
            return Err(IrError::invalid(field, format!("{v} is outside 1..=256")));
        }
    }
    if ir.m != 2 * ir.nr || ir.m > MAX_DIM {
        return Err(IrError::invalid(
            "m",
            format!("{} must be 2·nr = {} (at most {MAX_DIM})", ir.m, 2 * ir.nr),
        ));
    }
    let n = ir.nt * ir.modulation.real_dims_per_symbol();
    if ir.n != n || ir.n > MAX_DIM {
        return Err(IrError::invalid(
            "n",
            format!(
                "{} must be {n} for {} {} (at most {MAX_DIM})",
                ir.n, ir.nt, ir.modulation
            ),
        ));
    }
    ir.snr_bins
        .validate()
        .map_err(|e| IrError::invalid("snr_bins", e))?;
    let bins = ir.bins();
    for (field, f) in [("inputs.h", ir.inputs.h), ("inputs.y", ir.inputs.y)] {
        if !f.is_signed() {
            return Err(IrError::invalid(field, "input formats must be signed"));
        }
        check_width(format!("{field}.width"), f.width(), MIN_BITS, MAX_BITS)?;
    }
    check_width("state_width".into(), ir.state_width, MIN_BITS, MAX_BITS)?;
    if ir.layers.is_empty() || ir.layers.len() > MAX_LAYERS {
        return Err(IrError::invalid(
            "layers",
            format!("{} layers is outside 1..={MAX_LAYERS}", ir.layers.len()),
        ));
    }
    if let InitStage::MatchedFilter { requant, .. } = &ir.init
        && requant.out_width() != ir.state_width
    {
        return Err(IrError::invalid(
            "init.requant.out_width",
            format!(
                "{} must equal state_width {}",
                requant.out_width(),
                ir.state_width
            ),
        ));
    }
    for (k, layer) in ir.layers.iter().enumerate() {
        validate_layer(ir, k, layer, bins)?;
    }
    // Every declared bound must be at least the proved one.
    let (mf, proved) = analyse(ir);
    if let InitStage::MatchedFilter { acc, .. } = &ir.init {
        check_acc("init.acc", acc, mf)?;
    }
    for (k, (layer, b)) in ir.layers.iter().zip(proved).enumerate() {
        let p = format!("layers[{k}]");
        check_acc(&format!("{p}.e.acc"), &layer.e.acc, b.e_acc)?;
        check_acc(&format!("{p}.e.sum"), &layer.e.sum, b.e_sum)?;
        check_acc(&format!("{p}.g.acc"), &layer.g.acc, b.g_acc)?;
        check_acc(&format!("{p}.update.acc"), &layer.update.acc, b.update)?;
        check_acc(&format!("{p}.out.input"), &layer.out.input, b.prox_out)?;
        if let Some(a) = &layer.admm {
            check_acc(&format!("{p}.admm.v"), &a.v, b.v)?;
            check_acc(&format!("{p}.admm.w"), &a.w, b.w)?;
            check_acc(
                &format!("{p}.admm.x_out.input"),
                &a.x_out.input,
                b.x_out_input,
            )?;
        }
    }
    validate_slicer(ir, bins)
}

fn validate_layer(ir: &Ir, k: usize, layer: &Layer, bins: usize) -> Result<(), IrError> {
    let p = format!("layers[{k}]");
    // e
    check_table(format!("{p}.e.mult"), &layer.e.mult, bins)?;
    check_shift(format!("{p}.e.shift"), layer.e.shift)?;
    check_shift(format!("{p}.e.y_shift"), layer.e.y_shift)?;
    check_width(
        format!("{p}.e.format.width"),
        layer.e.format.width(),
        MIN_BITS,
        MAX_BITS,
    )?;
    // g
    check_width(
        format!("{p}.g.format.width"),
        layer.g.format.width(),
        MIN_BITS,
        MAX_BITS,
    )?;
    if layer.g.requant.out_width() != layer.g.format.width() {
        return Err(IrError::invalid(
            format!("{p}.g.requant.out_width"),
            format!(
                "{} must equal g.format.width {}",
                layer.g.requant.out_width(),
                layer.g.format.width()
            ),
        ));
    }
    // update
    let u = &layer.update;
    check_table(format!("{p}.update.x1"), &u.x1, bins)?;
    if !u.x2.is_empty() {
        if k == 0 {
            return Err(IrError::invalid(
                format!("{p}.update.x2"),
                "the first layer has no state before the previous one (must be empty)",
            ));
        }
        check_table(format!("{p}.update.x2"), &u.x2, bins)?;
    }
    check_mults(&format!("{p}.update.g_coef"), &[u.g_coef])?;
    match (ir.arch, &layer.admm) {
        (Arch::Pgd, None) => {
            if !u.c.is_empty() {
                return Err(IrError::invalid(
                    format!("{p}.update.c"),
                    "PGD-Net has no constraint term (must be empty)",
                ));
            }
        }
        (Arch::Admm, Some(a)) => {
            check_table(format!("{p}.update.c"), &u.c, bins)?;
            check_table(format!("{p}.admm.vx"), &a.vx, bins)?;
            check_table(format!("{p}.admm.vu"), &a.vu, bins)?;
            validate_bin_requant(&format!("{p}.admm.x_out"), &a.x_out, ir, bins)?;
        }
        (Arch::Pgd, Some(_)) => {
            return Err(IrError::invalid(
                format!("{p}.admm"),
                "present in a PGD-Net IR",
            ));
        }
        (Arch::Admm, None) => {
            return Err(IrError::invalid(
                format!("{p}.admm"),
                "missing in an ADMM-Net IR",
            ));
        }
    }
    match &layer.prox {
        ProxStage::Soft { lambda } => {
            if *lambda < 0 || !fits(*lambda, 62) {
                return Err(IrError::invalid(
                    format!("{p}.prox.lambda"),
                    format!("{lambda} must be non-negative and below 2^61"),
                ));
            }
        }
        ProxStage::Box { limit } => {
            if *limit < 0 || !fits(*limit, 62) {
                return Err(IrError::invalid(
                    format!("{p}.prox.limit"),
                    format!("{limit} must be non-negative and below 2^61"),
                ));
            }
        }
        ProxStage::Table {
            input,
            table,
            table_width,
            ..
        } => {
            check_width(
                format!("{p}.prox.input.out_width"),
                input.out_width(),
                1,
                MAX_TABLE_BITS,
            )?;
            check_width(format!("{p}.prox.table_width"), *table_width, 1, 32)?;
            let want = 1usize << input.out_width();
            if table.len() != want {
                return Err(IrError::invalid(
                    format!("{p}.prox.table"),
                    format!(
                        "holds {} entries, a {}-bit address needs {want}",
                        table.len(),
                        input.out_width()
                    ),
                ));
            }
            if let Some((i, v)) = table
                .iter()
                .enumerate()
                .find(|(_, v)| !fits(**v, *table_width))
            {
                return Err(IrError::invalid(
                    format!("{p}.prox.table[{i}]"),
                    format!("{v} does not fit table_width = {table_width} bits"),
                ));
            }
        }
    }
    validate_bin_requant(&format!("{p}.out"), &layer.out, ir, bins)
}

fn validate_bin_requant(
    p: &str,
    r: &super::BinRequant,
    ir: &Ir,
    bins: usize,
) -> Result<(), IrError> {
    check_table(format!("{p}.mult"), &r.mult, bins)?;
    if r.shift.len() != bins {
        return Err(IrError::invalid(
            format!("{p}.shift"),
            format!(
                "holds {} entries, the IR has {bins} SNR bins",
                r.shift.len()
            ),
        ));
    }
    for (i, &s) in r.shift.iter().enumerate() {
        check_shift(format!("{p}.shift[{i}]"), s)?;
    }
    // Mixed precision: a layer's states may be narrower than the state registers.
    if r.width > ir.state_width || r.width < MIN_BITS {
        return Err(IrError::invalid(
            format!("{p}.width"),
            format!(
                "{} must lie in {MIN_BITS}..=state_width {}",
                r.width, ir.state_width
            ),
        ));
    }
    Ok(())
}

fn validate_slicer(ir: &Ir, bins: usize) -> Result<(), IrError> {
    let s = &ir.slicer;
    if s.thresholds.len() != bins {
        return Err(IrError::invalid(
            "slicer.thresholds",
            format!(
                "holds {} rows, the IR has {bins} SNR bins",
                s.thresholds.len()
            ),
        ));
    }
    let want = ir.levels() - 1;
    let limit = 1i64 << ir.state_width;
    for (b, row) in s.thresholds.iter().enumerate() {
        if row.len() != want {
            return Err(IrError::invalid(
                format!("slicer.thresholds[{b}]"),
                format!(
                    "holds {} thresholds, {} needs {want}",
                    row.len(),
                    ir.modulation
                ),
            ));
        }
        if row.windows(2).any(|w| w[0] > w[1]) {
            return Err(IrError::invalid(
                format!("slicer.thresholds[{b}]"),
                "thresholds must ascend",
            ));
        }
        if let Some(t) = row.iter().find(|t| t.unsigned_abs() > limit.unsigned_abs()) {
            return Err(IrError::invalid(
                format!("slicer.thresholds[{b}]"),
                format!("{t} lies beyond ±2^state_width"),
            ));
        }
    }
    if s.output_lsb.len() != bins {
        return Err(IrError::invalid(
            "slicer.output_lsb",
            format!(
                "holds {} values, the IR has {bins} SNR bins",
                s.output_lsb.len()
            ),
        ));
    }
    if let Some(i) = s
        .output_lsb
        .iter()
        .position(|v| !(v.is_finite() && *v > 0.0))
    {
        return Err(IrError::invalid(
            format!("slicer.output_lsb[{i}]"),
            "must be finite and positive",
        ));
    }
    Ok(())
}
