//! Energy of an IR v2 (cg) design by the two models of [`crate::energy`] (docs/energy.md §3b).
//!
//! [`gram_counts`] lists every operation of the design from the IR alone: the per-channel-block
//! stage (G = H̃ᵀH̃, its trace, 1/tr G, D = diag(G)⁻¹; flagged `per_block`, amortized over the
//! block's T vectors when priced) and one vector (z = H̃ᵀỹ, ‖ỹ‖², the K layers of L inner steps,
//! the denoiser table, the slicer). Every multiply carries its two operand widths, every add its
//! accumulator width (the interval-analysis bound of its sum, [`GramIr::bounds`], plus a sign
//! bit), every read its width. [`gram_energy`] prices them at block length T.

use super::{GramIr, bits, sum_bound};
use crate::energy::{Arith, Builder, Counts, Energy, Kind, Op, newton_steps};
use crate::fixed::QFormat;

/// Width of a constant's code (0 for code 0: no term).
fn code_width(code: i64) -> u32 {
    match code.saturating_abs() {
        0 => 0,
        c => crate::document::signed_width(c),
    }
}

/// The widest code of a per-bin table.
fn bins_width(codes: &[i64]) -> u32 {
    codes.iter().map(|&c| code_width(c)).max().unwrap_or(0)
}

/// Accumulator widths of the IR's sums: bits of each bound plus the sign.
struct Widths(Vec<(String, u32)>);

impl Widths {
    fn of(&self, name: &str) -> u32 {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map_or(32, |(_, b)| b + 1)
    }
}

/// One `combine` into `out` of a sum `acc_w` bits wide whose aligned frac is `f`: a rounding
/// add at the sum's width when the shift `f − out.frac` is not 0, and a saturation comparison
/// at the shifted width (never below the output's), `count` times.
fn requant(b: &mut Builder, stage: &str, count: u64, acc_w: u32, f: i32, out: QFormat) {
    let s = (f - out.frac()).max(0) as u32;
    if s > 0 {
        b.push(stage, Op::Add { w: acc_w }, count);
    }
    b.push(
        stage,
        Op::Add {
            w: acc_w.saturating_sub(s).max(out.width()),
        },
        count,
    );
}

/// The aligned frac F of a combine.
fn aligned(fracs: &[i32], out: QFormat) -> i32 {
    fracs.iter().copied().fold(out.frac(), i32::max)
}

/// A reciprocal of the block stage at `out_w` bits, `count` times: the clamp of the divisor
/// (one comparison at `div_w`), an 8-bit seed read and the Newton steps y ← y(2 − xy) that
/// double the seed's bits up to `out_w` (two `out_w`-bit multiplies and one add each).
fn reciprocal(b: &mut Builder, stage: &str, count: u64, div_w: u32, out_w: u32) {
    let s = newton_steps(Arith::fixed(out_w));
    b.push(stage, Op::Add { w: div_w }, count);
    b.push(stage, Op::Read { bits: 8 }, count);
    b.push(stage, Op::Mul { a: out_w, b: out_w }, 2 * s * count);
    b.push(stage, Op::Add { w: out_w }, s * count);
}

/// Every operation of the v2 design `ir` (validated) at its own widths; docs/energy.md §3b
/// states the rules. Reads: H̃ once per block for G (the rank-1 order: row r of H̃ held, G's
/// n(n+1)/2 partial sums in the accumulators) and once per vector for z; ỹ once per vector;
/// G (all n² entries) once per product G·x or G·d; every vector an element-wise stage consumes
/// once; every scalar and constant once where it is used; each denoiser entry looked up. Writes
/// are not priced. Terms that are 0 by construction (x in layer 0, d and p before the first
/// step, a β code of 0) cost nothing.
pub fn gram_counts(ir: &GramIr) -> Counts {
    let (m, n) = (ir.m as u64, ir.n as u64);
    let w = Widths(ir.bounds().map(|s| s.sums).unwrap_or_default());
    let (hw, yw) = (ir.inputs.h.width(), ir.inputs.y.width());
    let (fh, fy) = (ir.inputs.h.frac(), ir.inputs.y.frac());
    let bs = &ir.block;
    let gw = bs.g.width();
    let (itw, dw) = (bs.inv_trace.format.width(), bs.diag_inv.format.width());
    let (sw, sf) = (ir.state.width(), ir.state.frac());
    let (zw, zf) = (ir.front.z.width(), ir.front.z.frac());
    let (yyw, yyf) = (ir.front.yy.width(), ir.front.yy.frac());
    let mut b = Builder {
        ops: Vec::new(),
        passes: Vec::new(),
        per_block: true,
    };

    // Per channel block.
    let st = "block G";
    let gacc = w.of("block.g");
    let entries = n * (n + 1) / 2;
    b.push(st, Op::Read { bits: hw }, m * n);
    b.push(st, Op::Mul { a: hw, b: hw }, m * entries);
    b.push(st, Op::Add { w: gacc }, (m - 1) * entries);
    requant(&mut b, st, entries, gacc, 2 * fh, bs.g);
    // The narrow copies of G the layers' inner steps read (`g_inner`, one per distinct
    // width): each of the n(n+1)/2 entries rounded (an add at G's width) and saturated (a
    // comparison at the copy's width) as it is written; no read (the entry is in the register).
    let mut copies: Vec<u32> = ir
        .layers
        .iter()
        .map(|l| l.inner_g(bs.g).width())
        .filter(|&w| w < gw)
        .collect();
    copies.sort_unstable();
    copies.dedup();
    for &cw in &copies {
        b.push(st, Op::Add { w: gw }, entries);
        b.push(st, Op::Add { w: cw }, entries);
    }
    b.pass(st, entries * (1 + copies.len() as u64), m * n, gw);
    let st = "block reciprocals";
    let trw = bits(i128::from(crate::fixed::max_code(gw)) * n as i128) + 1;
    b.push(st, Op::Read { bits: gw }, n);
    b.push(st, Op::Add { w: trw }, n - 1);
    reciprocal(&mut b, st, 1, trw, itw);
    reciprocal(&mut b, st, n, gw, dw);
    b.pass(st, n + 1, n + 1, itw.max(dw));

    // Per vector.
    b.per_block = false;
    let st = "front";
    let zacc = w.of("front.z");
    let yyacc = w.of("front.yy");
    b.push(st, Op::Read { bits: yw }, m);
    b.push(st, Op::Read { bits: hw }, m * n);
    b.push(st, Op::Mul { a: hw, b: yw }, m * n);
    b.push(st, Op::Add { w: zacc }, n * (m - 1));
    requant(&mut b, st, n, zacc, fh + fy, ir.front.z);
    b.push(st, Op::Mul { a: yw, b: yw }, m);
    b.push(st, Op::Add { w: yyacc }, m - 1);
    requant(&mut b, st, 1, yyacc, 2 * fy, ir.front.yy);
    b.pass(st, n + 1, m * n, zw);

    let inner = ir.inner();
    for (k, l) in ir.layers.iter().enumerate() {
        let f = &l.formats;
        let at = |s: &str| format!("layers[{k}].{s}");
        let (ew, ef) = (f.e.width(), f.e.frac());
        let (pw, pf) = (f.p.width(), f.p.frac());
        let (dwid, df) = (f.d.width(), f.d.frac());
        let x_live = k > 0;

        // e = z − Gx.
        let st = format!("layer {} e", k + 1);
        let eacc = w.of(&at("e"));
        b.push(&st, Op::Read { bits: zw }, n);
        let mut e_fracs = vec![zf];
        if x_live {
            b.push(&st, Op::Read { bits: sw }, n);
            b.push(&st, Op::Read { bits: gw }, n * n);
            b.push(&st, Op::Mul { a: gw, b: sw }, n * n);
            b.push(&st, Op::Add { w: eacc }, n * n);
            e_fracs.push(bs.g.frac() + sf);
        }
        requant(&mut b, &st, n, eacc, aligned(&e_fracs, f.e), f.e);
        b.pass(&st, n, if x_live { n * n } else { 0 }, ew);

        // v² = max(combine(W·(1/tr G)), floor), W = yy − xᵀz − xᵀe − noise.
        let st = format!("layer {} v2", k + 1);
        let mut terms = vec![
            (crate::fixed::max_code(yyw) as i128, yyf),
            (noise_max(ir), yyf),
        ];
        b.push(&st, Op::Read { bits: yyw }, 2);
        if x_live {
            let (xq, zq, eq) = (
                i128::from(crate::fixed::max_code(sw)),
                i128::from(crate::fixed::max_code(zw)),
                i128::from(crate::fixed::max_code(ew)),
            );
            terms.push((n as i128 * xq * zq, sf + zf));
            terms.push((n as i128 * xq * eq, sf + ef));
        }
        let wf = aligned(&terms.iter().map(|t| t.1).collect::<Vec<_>>(), f.v2);
        let wacc = sum_bound(&terms, f.v2).map(|s| bits(s) + 1).unwrap_or(64);
        if x_live {
            b.push(&st, Op::Read { bits: sw }, n);
            b.push(&st, Op::Read { bits: zw }, n);
            b.push(&st, Op::Read { bits: ew }, n);
            b.push(&st, Op::Mul { a: sw, b: zw }, n);
            b.push(&st, Op::Mul { a: sw, b: ew }, n);
            b.push(&st, Op::Add { w: wacc }, 2 * n);
        }
        b.push(&st, Op::Add { w: wacc }, 1);
        b.push(&st, Op::Read { bits: itw }, 1);
        b.push(&st, Op::Mul { a: wacc, b: itw }, 1);
        let vacc = w.of(&at("v2"));
        requant(&mut b, &st, 1, vacc, wf + bs.inv_trace.format.frac(), f.v2);
        b.push(&st, Op::Read { bits: f.v2.width() }, 1);
        b.push(&st, Op::Add { w: f.v2.width() }, 1);
        b.pass(&st, 1, 3, f.v2.width());

        // The inner steps.
        let delta_w = bins_width(&l.delta.codes);
        for (j, s) in l.steps.iter().enumerate() {
            let st = format!("layer {} step {}", k + 1, j + 1);
            let name = |t: &str| at(&format!("steps[{j}].{t}"));
            let mut weights = 0;
            // p = D·ρ + β·p.
            let pacc = w.of(&name("p"));
            let bw = code_width(s.beta.code);
            b.push(&st, Op::Read { bits: dw }, n);
            b.push(&st, Op::Read { bits: ew }, n);
            b.push(&st, Op::Mul { a: dw, b: ew }, n);
            let mut p_fracs = vec![bs.diag_inv.format.frac() + ef];
            if bw > 0 && j > 0 {
                b.push(&st, Op::Read { bits: bw }, 1);
                b.push(&st, Op::Read { bits: pw }, n);
                b.push(&st, Op::Mul { a: bw, b: pw }, n);
                b.push(&st, Op::Add { w: pacc }, n);
                p_fracs.push(s.beta.frac + pf);
                weights += 1;
            }
            requant(&mut b, &st, n, pacc, aligned(&p_fracs, f.p), f.p);
            // d = d + ω·p.
            let dacc = w.of(&name("d"));
            let ow = code_width(s.omega.code).max(1);
            b.push(&st, Op::Read { bits: ow }, 1);
            b.push(&st, Op::Mul { a: ow, b: pw }, n);
            let mut d_fracs = vec![s.omega.frac + pf];
            if j > 0 {
                b.push(&st, Op::Read { bits: dwid }, n);
                b.push(&st, Op::Add { w: dacc }, n);
                d_fracs.push(df);
            }
            requant(&mut b, &st, n, dacc, aligned(&d_fracs, f.d), f.d);
            weights += 1 + n;
            // ρ = e − G·d − δ·d (not after the last step).
            if j + 1 < inner {
                let racc = w.of(&name("rho"));
                let gi = l.inner_g(bs.g);
                b.push(&st, Op::Read { bits: gi.width() }, n * n);
                b.push(&st, Op::Read { bits: ew }, n);
                b.push(
                    &st,
                    Op::Mul {
                        a: gi.width(),
                        b: dwid,
                    },
                    n * n,
                );
                b.push(&st, Op::Add { w: racc }, n * n);
                let mut r_fracs = vec![ef, gi.frac() + df];
                if delta_w > 0 {
                    b.push(&st, Op::Read { bits: delta_w }, 1);
                    b.push(
                        &st,
                        Op::Mul {
                            a: delta_w,
                            b: dwid,
                        },
                        n,
                    );
                    b.push(&st, Op::Add { w: racc }, n);
                    r_fracs.push(l.delta.frac + df);
                    weights += 1;
                }
                requant(&mut b, &st, n, racc, aligned(&r_fracs, f.e), f.e);
                weights += n * n;
            }
            let acts = if j + 1 < inner { 3 * n } else { 2 * n };
            b.pass(&st, acts, weights, pw);
        }

        // r = x + γ·d; τ² = tv·v² + ts; the bucket; the table.
        let st = format!("layer {} denoise", k + 1);
        let racc = w.of(&at("r"));
        let gmw = code_width(l.gamma.code).max(1);
        b.push(&st, Op::Read { bits: gmw }, 1);
        b.push(&st, Op::Read { bits: dwid }, n);
        b.push(&st, Op::Mul { a: gmw, b: dwid }, n);
        let mut r_fracs = vec![l.gamma.frac + df];
        if x_live {
            b.push(&st, Op::Read { bits: sw }, n);
            b.push(&st, Op::Add { w: racc }, n);
            r_fracs.push(sf);
        }
        requant(&mut b, &st, n, racc, aligned(&r_fracs, f.r), f.r);
        let tacc = w.of(&at("tau2"));
        let tvw = code_width(l.tv.code).max(1);
        let tsw = bins_width(&l.ts.codes).max(1);
        b.push(&st, Op::Read { bits: tvw }, 1);
        b.push(&st, Op::Read { bits: f.v2.width() }, 1);
        b.push(&st, Op::Read { bits: tsw }, 1);
        b.push(
            &st,
            Op::Mul {
                a: tvw,
                b: f.v2.width(),
            },
            1,
        );
        b.push(&st, Op::Add { w: tacc }, 1);
        requant(
            &mut b,
            &st,
            1,
            tacc,
            aligned(&[l.tv.frac + f.v2.frac(), l.ts.frac], f.tau2),
            f.tau2,
        );
        let search = search_steps(ir.denoiser.table.len());
        b.push(
            &st,
            Op::Read {
                bits: f.tau2.width(),
            },
            search,
        );
        b.push(&st, Op::Add { w: f.tau2.width() }, search);
        b.push(&st, Op::Read { bits: sw }, n);
        b.pass(&st, n + 1, n + 3 + search, f.r.width());
    }

    // The slicer: L − 1 comparisons per output code, the thresholds read.
    let st = "slicer";
    let lv = ir.levels() as u64;
    b.push(st, Op::Read { bits: sw }, lv - 1);
    b.push(st, Op::Add { w: sw }, n * (lv - 1));
    b.pass(st, n, lv - 1, sw);

    // The buffer: two frames of H̃ and ỹ, G and D, and the vector state (x, z, e, ρ, p, d).
    let frame = m * n * u64::from(hw) + m * u64::from(yw);
    let widest = ir
        .layers
        .iter()
        .map(|l| {
            let f = &l.formats;
            2 * u64::from(f.e.width()) + u64::from(f.p.width()) + u64::from(f.d.width())
        })
        .max()
        .unwrap_or(0);
    let state = n * (u64::from(sw) + u64::from(zw) + widest);
    let copies_bits: u64 = copies.iter().map(|&c| n * n * u64::from(c)).sum();
    let buffer = 2 * frame + n * n * u64::from(gw) + copies_bits + n * u64::from(dw) + state;
    Counts {
        name: ir.name.clone(),
        bits_per_vector: ir.n as u32 * ir.modulation.bits_per_dim(),
        kind: Kind::Accelerator,
        buffer_bits: buffer,
        ops: b.ops,
        passes: b.passes,
    }
}

/// The largest |noise| code.
fn noise_max(ir: &GramIr) -> i128 {
    ir.front
        .noise
        .iter()
        .map(|v| i128::from(*v).abs())
        .max()
        .unwrap_or(0)
}

/// Comparisons of the bucket search over `buckets` rows (a binary search over the
/// `buckets − 1` thresholds): ⌈log₂ buckets⌉.
fn search_steps(buckets: usize) -> u64 {
    let mut s = 0u64;
    while (1usize << s) < buckets {
        s += 1;
    }
    s
}

/// Both models' energy of the v2 design `ir` per vector and per bit, its per-block stage spread
/// over `block` vectors.
pub fn gram_energy(ir: &GramIr, block: usize) -> Energy {
    gram_counts(ir).energy(block)
}

#[cfg(test)]
#[path = "energy_tests.rs"]
mod tests;
