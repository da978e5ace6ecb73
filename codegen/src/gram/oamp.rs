//! The engine program of an IR v4 OAMP-Net2 (`family: "oamp"`, docs/ir.md §11; docs/rtl.md,
//! "IR v4"): the same folded engine as cg ([`super::program`]), two additions — a third
//! divider (`block.bank.c_inv`) and the bank-entry selection ([`Op::Select`], whose offset
//! `j · stride` is added to the a address of the instructions with [`Ins::a_sel`]).
//!
//! The block program computes G, tr G, 1/tr G and, for every bank entry j, the integer LDLᵀ
//! of G + δ_j I column by column (E, the pivot reciprocals ι, L), W = L⁻¹, V = D⁻¹W,
//! Q_j = WᵀV, P = δ_j Q_j, c, 1/c, S, α_j, σ, a_j, b_j — every combine of
//! `kaq_ir::gram::oamp::OampInterpreter` as multiply-accumulate instructions. A product of
//! three factors (α·σ·prior, a_j·v²·c1, γ·α_j·g) is two instructions: the exact product of
//! the first two (no rounding, no saturation) into the register W or bank G, then its
//! product with the third, which is the same integer. Bank G holds every matrix and the
//! bank, entry j's Q_j, α_j, a_j, b_j at `stride · j` after entry 0's (the vector program
//! reads entry 0's addresses with `a_sel`).

use kaq_ir::fixed::{QFormat, max_code};
use kaq_ir::gram::oamp::OampIr;

use super::program::{
    B, Builder, Ins, Op, Program, RegMap, RowTerm, Selection, Stage, Tensor, Term, bits_for, mark,
};

/// What an instruction of an oamp program computes (its taps name registers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OampTensor {
    /// G.
    G,
    /// tr G.
    Trace,
    /// 1/tr G.
    InvTrace,
    /// W's unit diagonal.
    WDiag,
    /// E = L·D of entry j.
    Ld,
    /// ι = 1/d.
    PivotInv,
    /// L.
    L,
    /// W = L⁻¹.
    W,
    /// V = D⁻¹W.
    V,
    /// Q_j = WᵀV.
    Q,
    /// P = δ_j Q_j.
    P,
    /// c = N·2^p.frac − tr P.
    C,
    /// 1/c.
    CInv,
    /// S = tr P − ‖P‖²_F.
    S,
    /// α_j.
    Alpha,
    /// σ_j.
    Sigma,
    /// a_j.
    A,
    /// α_j·σ_j (exact).
    AlphaSigma,
    /// b_j.
    B,
    /// z.
    Z,
    /// ‖ỹ‖².
    Yy,
    /// e = z − Gx.
    E,
    /// The unrounded residual power sum.
    Wsum,
    /// v² before its floor.
    V2Unfloored,
    /// v².
    V2,
    /// The bank-entry selection.
    Select,
    /// g = Q_j e.
    Gv,
    /// γ_k α_j (exact).
    Ga,
    /// r.
    R,
    /// a_j v² (exact).
    AV2,
    /// τ².
    Tau2,
    /// The denoiser bucket.
    Bucket,
    /// The table's values.
    Mc,
    /// x.
    X,
}

impl OampTensor {
    /// The tensor's name.
    pub fn name(self) -> &'static str {
        use OampTensor::*;
        match self {
            G => "g",
            Trace => "trace",
            InvTrace => "inv_trace",
            WDiag => "w_diag",
            Ld => "ld",
            PivotInv => "pivot_inv",
            L => "l",
            W => "w",
            V => "v",
            Q => "q",
            P => "p",
            C => "c",
            CInv => "c_inv",
            S => "s",
            Alpha => "alpha",
            Sigma => "sigma",
            A => "a",
            AlphaSigma => "alpha_sigma",
            B => "b",
            Z => "z",
            Yy => "yy",
            E => "e",
            Wsum => "w_sum",
            V2Unfloored => "v2_unfloored",
            V2 => "v2",
            Select => "select",
            Gv => "gv",
            Ga => "ga",
            R => "r",
            AV2 => "a_v2",
            Tau2 => "tau2",
            Bucket => "bucket",
            Mc => "mc",
            X => "x",
        }
    }
}

/// Bank G of an oamp design: every matrix and the bank (first registers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OampMap {
    /// The cg register map (bank H, G, V, W, one); bank V's `rho` holds g = Q_j e and `p` the
    /// table's values.
    pub base: RegMap,
    /// E = L·D, `n × n`.
    pub ld: usize,
    /// L.
    pub l: usize,
    /// W = L⁻¹.
    pub w: usize,
    /// V = D⁻¹W.
    pub v: usize,
    /// P = δQ.
    pub p: usize,
    /// ι, `n`.
    pub pinv: usize,
    /// S.
    pub s: usize,
    /// 1/c.
    pub ci: usize,
    /// σ.
    pub sigma: usize,
    /// γ_k α_j.
    pub ga: usize,
    /// Entry 0's Q (entry j's at `+ j · stride`).
    pub q: usize,
    /// Entry 0's α.
    pub alpha: usize,
    /// Entry 0's a.
    pub a: usize,
    /// Entry 0's b.
    pub b: usize,
    /// Registers between two entries.
    pub stride: usize,
}

impl OampMap {
    fn new(ir: &OampIr, lanes: usize) -> Self {
        let (m, n) = (ir.m, ir.n);
        let nn = n * n;
        let stride = nn + 3;
        let need = 5 * nn + n + 4 + ir.bank_len() * stride;
        let base = RegMap::new(m, n, need.div_ceil(nn), lanes);
        let at = base.gn;
        let e = at + 5 * nn + n + 4;
        OampMap {
            base,
            ld: at,
            l: at + nn,
            w: at + 2 * nn,
            v: at + 3 * nn,
            p: at + 4 * nn,
            pinv: at + 5 * nn,
            s: at + 5 * nn + n,
            ci: at + 5 * nn + n + 1,
            sigma: at + 5 * nn + n + 2,
            ga: at + 5 * nn + n + 3,
            q: e,
            alpha: e + nn,
            a: e + nn + 1,
            b: e + nn + 2,
            stride,
        }
    }
}

fn q(f: QFormat) -> i128 {
    i128::from(max_code(f.width()))
}

/// The bound of W, the unrounded residual power sum of a layer (the largest over the
/// layers), and its frac per layer.
fn wsum_bound(ir: &OampIr) -> i128 {
    let n = ir.n as i128;
    let (xf, zf, yyf) = (ir.state.frac(), ir.front.z.frac(), ir.front.yy.frac());
    let noise = ir.front.noise.iter().map(|v| i128::from(*v).abs()).max();
    ir.layers
        .iter()
        .map(|l| {
            let f = &l.formats;
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

/// `(sh, down)` of a term at frac `fr` of a sum at the common frac `f`, written at `out`.
fn shifts(f: i32, fr: i32, out: i32) -> (u32, u32) {
    ((f - fr) as u32, (f - out) as u32)
}

/// The program of a validated oamp `ir` on `lanes` (≥ 1) MAC lanes.
pub fn program(ir: &OampIr, lanes: usize) -> Program {
    assert!(lanes >= 1, "at least one lane");
    let (m, n) = (ir.m, ir.n);
    let om = OampMap::new(ir, lanes);
    let map = om.base;
    let b = &ir.block;
    let k = &b.bank;
    let jn = ir.bank_len();
    let lmax = |f: fn(&kaq_ir::gram::oamp::OampFormats) -> QFormat| {
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
    let nn = n as i128;
    let pf = k.p.frac();
    let trace_w = bits_for(nn * q(b.g));
    let c_bound = (nn << pf) + nn * q(k.p);
    let v2q = ir
        .layers
        .iter()
        .map(|l| q(l.formats.v2).max(l.v2_floor.into()))
        .max()
        .unwrap_or(0);
    let ga_w = ir
        .layers
        .iter()
        .map(|l| bits_for(i128::from(l.gamma.code).abs() * q(k.alpha)))
        .max()
        .unwrap_or(2);
    // The register W: the residual power sum, c, α·σ and a_j·v².
    let ww = [
        bits_for(wsum_bound(ir)),
        bits_for(c_bound),
        bits_for(q(k.alpha) * q(k.sigma)),
        bits_for(q(k.a) * v2q),
    ]
    .into_iter()
    .fold(2, u32::max);
    let dmin = [b.inv_trace.op, k.pivot_inv.op, k.c_inv.op]
        .iter()
        .map(|d| bits_for(i128::from(d.d_min())) + 1)
        .max()
        .unwrap_or(2);
    let div_w = [trace_w, k.ld.width(), bits_for(c_bound), dmin]
        .into_iter()
        .fold(2, u32::max);

    // Every register's value width.
    let mut wid: Vec<u32> = (0..map.count)
        .map(|r| match map.bank(r) {
            0 => ir.inputs.h.width(),
            3 => ww,
            _ => 2,
        })
        .collect();
    let nnu = n * n;
    let mut put = |at: usize, len: usize, w: u32| wid[at..at + len].fill(w);
    put(map.y, m, ir.inputs.y.width());
    put(map.trace, 1, trace_w);
    put(map.inv_trace, 1, b.inv_trace.op.out_width());
    put(map.z, n, ir.front.z.width());
    put(map.yy, 1, ir.front.yy.width());
    put(map.x, n, ir.state.width());
    put(map.e, n, lmax(|f| f.e));
    put(map.rho, n, lmax(|f| f.g));
    put(map.p, n, ir.state.width());
    put(map.r, n, lmax(|f| f.r));
    put(map.v2, 1, v2w);
    put(map.tau2, 1, lmax(|f| f.tau2));
    put(map.g, nnu, b.g.width());
    put(om.ld, nnu, k.ld.width());
    put(om.l, nnu, k.l.width());
    put(om.w, nnu, k.w.width());
    put(om.v, nnu, k.v.width());
    put(om.p, nnu, k.p.width());
    put(om.pinv, n, k.pivot_inv.op.out_width());
    put(om.s, 1, k.p.width());
    put(om.ci, 1, k.c_inv.op.out_width());
    put(om.sigma, 1, k.sigma.width());
    put(om.ga, 1, ga_w);
    for j in 0..jn {
        let e = j * om.stride;
        put(om.q + e, nnu, k.q.width());
        put(om.alpha + e, 1, k.alpha.width());
        put(om.a + e, 1, k.a.width());
        put(om.b + e, 1, k.b.width());
    }
    let bank_max = |bank: usize| {
        (0..map.count)
            .filter(|&r| map.bank(r) == bank)
            .map(|r| wid[r])
            .fold(2, u32::max)
    };
    let bank_w = [
        ir.inputs.h.width(),
        bank_max(1),
        bank_max(2).max(ir.inputs.y.width() + 1),
        ww,
    ];
    let mut bld = Builder {
        map,
        lanes,
        consts: Vec::new(),
        wid,
        shifts: Vec::new(),
    };
    let same = |x: i32| vec![x];
    let one_c = bld.konst(1);
    let reg = |a: usize, b: usize, neg: bool, frac: i32| Term {
        a,
        b: B::Reg(b),
        neg,
        frac: vec![frac],
    };
    let kt = |bld: &mut Builder, a: usize, code: i64, neg: bool, frac: i32| Term {
        a,
        b: B::Const(bld.konst(code)),
        neg,
        frac: vec![frac],
    };
    let ix = |base: usize, i: usize, j: usize| base + i * n + j;
    let (fh, fy) = (ir.inputs.h.frac(), ir.inputs.y.frac());
    let (gf, xf) = (b.g.frac(), ir.state.frac());
    let (zf, yyf) = (ir.front.z.frac(), ir.front.yy.frac());
    let itf = b.inv_trace.format.frac();
    let (ldf, lf, wf, vf, qf) = (k.ld.frac(), k.l.frac(), k.w.frac(), k.v.frac(), k.q.frac());
    let (pif, cif) = (k.pivot_inv.format.frac(), k.c_inv.format.frac());
    let (alf, sf) = (k.alpha.frac(), k.sigma.frac());
    let label = |t: OampTensor| Tensor::Oamp(t);

    // The block stage.
    let mut block = Vec::new();
    let mut sb: Vec<Stage> = Vec::new();
    let mk = |st: &mut Vec<Stage>, len: usize, t: OampTensor, layer: Option<usize>| {
        mark(st, len, label(t), layer)
    };
    for i in 0..n {
        for j in i..n {
            let terms: Vec<Term> = (0..m)
                .map(|r| reg(map.h + r * n + i, map.h + r * n + j, false, 2 * fh))
                .collect();
            bld.combine(&mut block, &terms, &same(gf), b.g.width(), ix(map.g, i, j));
        }
    }
    for i in 0..n {
        for j in i + 1..n {
            block.push(copy(ix(map.g, i, j), one_c, ix(map.g, j, i)));
        }
    }
    mk(&mut sb, block.len(), OampTensor::G, None);
    let trace: Vec<Term> = (0..n)
        .map(|i| Term {
            a: ix(map.g, i, i),
            b: B::Const(one_c),
            neg: false,
            frac: vec![gf],
        })
        .collect();
    bld.combine(&mut block, &trace, &same(gf), 0, map.trace);
    mk(&mut sb, block.len(), OampTensor::Trace, None);
    block.push(Ins {
        a: map.trace,
        dest: map.inv_trace,
        ..Ins::nop(Op::Div(0))
    });
    mk(&mut sb, block.len(), OampTensor::InvTrace, None);
    let unit = bld.konst(1i64 << wf);
    for c in 0..n {
        block.push(copy(map.one, unit, ix(om.w, c, c)));
    }
    mk(&mut sb, block.len(), OampTensor::WDiag, None);
    for j in 0..jn {
        let ent = j * om.stride;
        let dj = bld.bins(&k.delta[j]);
        for c in 0..n {
            for i in c..n {
                let mut terms = vec![Term {
                    a: ix(map.g, i, c),
                    b: B::Const(one_c),
                    neg: false,
                    frac: vec![gf],
                }];
                if i == c {
                    terms.push(Term {
                        a: map.one,
                        b: B::Bin(dj),
                        neg: false,
                        frac: vec![gf],
                    });
                }
                for kk in 0..c {
                    terms.push(reg(ix(om.ld, i, kk), ix(om.l, c, kk), true, ldf + lf));
                }
                bld.combine(
                    &mut block,
                    &terms,
                    &same(ldf),
                    k.ld.width(),
                    ix(om.ld, i, c),
                );
            }
            mk(&mut sb, block.len(), OampTensor::Ld, Some(j));
            block.push(Ins {
                a: ix(om.ld, c, c),
                dest: om.pinv + c,
                ..Ins::nop(Op::Div(1))
            });
            mk(&mut sb, block.len(), OampTensor::PivotInv, Some(j));
            for i in c + 1..n {
                let t = [reg(ix(om.ld, i, c), om.pinv + c, false, ldf + pif)];
                bld.combine(&mut block, &t, &same(lf), k.l.width(), ix(om.l, i, c));
            }
            mk(&mut sb, block.len(), OampTensor::L, Some(j));
        }
        // W = L⁻¹ below its unit diagonal.
        for c in 0..n {
            for i in c + 1..n {
                let t: Vec<Term> = (c..i)
                    .map(|kk| reg(ix(om.l, i, kk), ix(om.w, kk, c), true, lf + wf))
                    .collect();
                bld.combine(&mut block, &t, &same(wf), k.w.width(), ix(om.w, i, c));
            }
        }
        mk(&mut sb, block.len(), OampTensor::W, Some(j));
        for r in 0..n {
            for c in 0..=r {
                let t = [reg(om.pinv + r, ix(om.w, r, c), false, pif + wf)];
                bld.combine(&mut block, &t, &same(vf), k.v.width(), ix(om.v, r, c));
            }
        }
        mk(&mut sb, block.len(), OampTensor::V, Some(j));
        let qj = om.q + ent;
        for i in 0..n {
            for jj in 0..=i {
                let t: Vec<Term> = (i..n)
                    .map(|kk| reg(ix(om.w, kk, i), ix(om.v, kk, jj), false, wf + vf))
                    .collect();
                bld.combine(&mut block, &t, &same(qf), k.q.width(), ix(qj, i, jj));
                if jj < i {
                    block.push(copy(ix(qj, i, jj), one_c, ix(qj, jj, i)));
                }
            }
        }
        mk(&mut sb, block.len(), OampTensor::Q, Some(j));
        for i in 0..n {
            for jj in 0..n {
                let t = [Term {
                    a: ix(qj, i, jj),
                    b: B::Bin(dj),
                    neg: false,
                    frac: vec![gf + qf],
                }];
                bld.combine(&mut block, &t, &same(pf), k.p.width(), ix(om.p, i, jj));
            }
        }
        mk(&mut sb, block.len(), OampTensor::P, Some(j));
        // c = N·2^pf − tr P, exact, in W.
        let mut t = vec![kt(&mut bld, map.one, (n as i64) << pf, false, 0)];
        t.extend((0..n).map(|i| Term {
            a: ix(om.p, i, i),
            b: B::Const(one_c),
            neg: true,
            frac: vec![0],
        }));
        bld.combine(&mut block, &t, &same(0), 0, map.w);
        mk(&mut sb, block.len(), OampTensor::C, Some(j));
        block.push(Ins {
            a: map.w,
            dest: om.ci,
            ..Ins::nop(Op::Div(2))
        });
        mk(&mut sb, block.len(), OampTensor::CInv, Some(j));
        // S = combine(tr P at pf, −‖P‖²_F at 2pf).
        let mut t: Vec<Term> = (0..n)
            .map(|i| Term {
                a: ix(om.p, i, i),
                b: B::Const(one_c),
                neg: false,
                frac: vec![pf],
            })
            .collect();
        t.extend((0..n * n).map(|e| reg(om.p + e, om.p + e, true, 2 * pf)));
        bld.combine(&mut block, &t, &same(pf), k.p.width(), om.s);
        mk(&mut sb, block.len(), OampTensor::S, Some(j));
        let t = [kt(&mut bld, om.ci, n as i64, false, cif)];
        bld.combine(&mut block, &t, &same(alf), k.alpha.width(), om.alpha + ent);
        mk(&mut sb, block.len(), OampTensor::Alpha, Some(j));
        let t = [reg(om.s, om.ci, false, pf + cif)];
        bld.combine(&mut block, &t, &same(sf), k.sigma.width(), om.sigma);
        mk(&mut sb, block.len(), OampTensor::Sigma, Some(j));
        // a_j = α(2^sf − σ) at alf + sf: α at alf minus α·σ at alf + sf.
        let t = [
            kt(&mut bld, om.alpha + ent, 1, false, alf),
            reg(om.alpha + ent, om.sigma, true, alf + sf),
        ];
        bld.combine(&mut block, &t, &same(k.a.frac()), k.a.width(), om.a + ent);
        mk(&mut sb, block.len(), OampTensor::A, Some(j));
        let pr = k.prior[j];
        if pr.code == 0 {
            let t = [kt(&mut bld, map.one, 0, false, k.b.frac())];
            bld.combine(&mut block, &t, &same(k.b.frac()), k.b.width(), om.b + ent);
        } else {
            let t = [reg(om.alpha + ent, om.sigma, false, alf + sf)];
            bld.combine(&mut block, &t, &same(alf + sf), 0, map.w);
            mk(&mut sb, block.len(), OampTensor::AlphaSigma, Some(j));
            let t = [kt(&mut bld, map.w, pr.code, false, pr.frac + alf + sf)];
            bld.combine(&mut block, &t, &same(k.b.frac()), k.b.width(), om.b + ent);
        }
        mk(&mut sb, block.len(), OampTensor::B, Some(j));
    }

    // The vector front.
    let mut vector = Vec::new();
    let mut sv: Vec<Stage> = Vec::new();
    for j in 0..n {
        let terms: Vec<Term> = (0..m)
            .map(|r| reg(map.h + r * n + j, map.y + r, false, fh + fy))
            .collect();
        let z = ir.front.z;
        bld.combine(&mut vector, &terms, &same(z.frac()), z.width(), map.z + j);
    }
    mk(&mut sv, vector.len(), OampTensor::Z, None);
    let terms: Vec<Term> = (0..m)
        .map(|r| reg(map.y + r, map.y + r, false, 2 * fy))
        .collect();
    let yy = ir.front.yy;
    bld.combine(&mut vector, &terms, &same(yy.frac()), yy.width(), map.yy);
    mk(&mut sv, vector.len(), OampTensor::Yy, None);
    let noise = bld.bins(&ir.front.noise);
    let gv = map.rho;
    let mc = map.p;
    for (li, layer) in ir.layers.iter().enumerate() {
        let f = &layer.formats;
        let ef = f.e.frac();
        let x_zero = li == 0;
        let at = Some(li);
        // e = z − Gx.
        let mut terms = vec![RowTerm::Elem(kt(&mut bld, map.z, 1, false, zf))];
        if !x_zero {
            terms.push(RowTerm::Dot {
                a: map.g,
                row: n,
                b: map.x,
                len: n,
                neg: true,
                frac: vec![gf + xf],
            });
        }
        bld.rows(&mut vector, n, &terms, &same(ef), f.e.width(), map.e);
        mk(&mut sv, vector.len(), OampTensor::E, at);
        // W, exact at F_W; v² = max(combine(W · 1/tr G), floor).
        let fw = [yyf, xf + zf, xf + ef, yyf]
            .into_iter()
            .fold(f.v2.frac(), i32::max);
        let mut terms = vec![kt(&mut bld, map.yy, 1, false, yyf)];
        if !x_zero {
            terms.extend((0..n).map(|j| reg(map.x + j, map.z + j, true, xf + zf)));
            terms.extend((0..n).map(|j| reg(map.x + j, map.e + j, true, xf + ef)));
        }
        terms.push(Term {
            a: map.one,
            b: B::Bin(noise),
            neg: true,
            frac: vec![yyf],
        });
        bld.combine(&mut vector, &terms, &same(fw), 0, map.w);
        mk(&mut sv, vector.len(), OampTensor::Wsum, at);
        let t = [reg(map.w, map.inv_trace, false, fw + itf)];
        bld.combine(&mut vector, &t, &same(f.v2.frac()), f.v2.width(), map.v2);
        mk(&mut sv, vector.len(), OampTensor::V2Unfloored, at);
        vector.push(Ins {
            a: map.v2,
            b: bld.konst(layer.v2_floor),
            b_const: true,
            dest: map.v2,
            ..Ins::nop(Op::Max)
        });
        mk(&mut sv, vector.len(), OampTensor::V2, at);
        vector.push(Ins {
            a: map.v2,
            ..Ins::nop(Op::Select)
        });
        mk(&mut sv, vector.len(), OampTensor::Select, at);
        // g = Q_j e, one row a dot product, Q_j on port a (the selected operand).
        let (sh, down) = shifts((qf + ef).max(f.g.frac()), qf + ef, f.g.frac());
        for i in 0..n {
            vector.push(Ins {
                a: ix(om.q, i, 0),
                a_sel: true,
                b: map.e,
                first: true,
                last: true,
                sh,
                down,
                satw: f.g.width(),
                dest: gv + i,
                rep: n as u32,
                sa: 1,
                sb: 1,
                lane: bld.lane_of(gv + i),
                ..Ins::nop(Op::Mac)
            });
        }
        mk(&mut sv, vector.len(), OampTensor::Gv, at);
        // γα_j, exact, into bank G (the lanes' shared operand of r).
        let gam = bld.konst(layer.gamma.code);
        vector.push(Ins {
            a: om.alpha,
            a_sel: true,
            b: gam,
            b_const: true,
            first: true,
            last: true,
            dest: om.ga,
            ..Ins::nop(Op::Mac)
        });
        mk(&mut sv, vector.len(), OampTensor::Ga, at);
        // r = x + (γα_j)·g, the rows in passes over the lanes.
        let gaf = layer.gamma.frac + alf + f.g.frac();
        let rf = f.r.frac();
        let top = if x_zero { gaf } else { gaf.max(xf) }.max(rf);
        for i0 in (0..n).step_by(lanes) {
            let w = lanes.min(n - i0) as u32;
            if !x_zero {
                vector.push(Ins {
                    a: map.x + i0,
                    b: one_c,
                    b_const: true,
                    first: true,
                    sh: (top - xf) as u32,
                    rep: w,
                    sa: 1,
                    wide: true,
                    ..Ins::nop(Op::Mac)
                });
            }
            let (sh, down) = shifts(top, gaf, rf);
            vector.push(Ins {
                a: gv + i0,
                b: om.ga,
                first: x_zero,
                last: true,
                sh,
                down,
                satw: f.r.width(),
                dest: map.r + i0,
                rep: w,
                sa: 1,
                wide: true,
                ..Ins::nop(Op::Mac)
            });
        }
        mk(&mut sv, vector.len(), OampTensor::R, at);
        // a_j v², exact, in W; τ² = c0 v² + c1 (a_j v²) + c1 b_j.
        vector.push(Ins {
            a: om.a,
            a_sel: true,
            b: map.v2,
            first: true,
            last: true,
            dest: map.w,
            ..Ins::nop(Op::Mac)
        });
        mk(&mut sv, vector.len(), OampTensor::AV2, at);
        let v2f = f.v2.frac();
        let (c0, c1) = (layer.c0, layer.c1);
        let fr = [
            c0.frac + v2f,
            c1.frac + k.a.frac() + v2f,
            c1.frac + k.b.frac(),
        ];
        let t2f = f.tau2.frac();
        let top = fr.iter().copied().fold(t2f, i32::max);
        let kc0 = bld.konst(c0.code);
        let kc1 = bld.konst(c1.code);
        for (idx, (a, kc, a_sel)) in [(map.v2, kc0, false), (map.w, kc1, false), (om.b, kc1, true)]
            .into_iter()
            .enumerate()
        {
            let last = idx == 2;
            let (sh, down) = shifts(top, fr[idx], t2f);
            vector.push(Ins {
                a,
                a_sel,
                b: kc,
                b_const: true,
                first: idx == 0,
                last,
                sh,
                down: if last { down } else { 0 },
                satw: if last { f.tau2.width() } else { 0 },
                dest: if last { map.tau2 } else { 0 },
                ..Ins::nop(Op::Mac)
            });
        }
        mk(&mut sv, vector.len(), OampTensor::Tau2, at);
        vector.push(Ins {
            a: map.tau2,
            ..Ins::nop(Op::Bucket)
        });
        mk(&mut sv, vector.len(), OampTensor::Bucket, at);
        for i0 in (0..n).step_by(lanes) {
            vector.push(Ins {
                a: map.r + i0,
                dest: mc + i0,
                rep: lanes.min(n - i0) as u32,
                sa: 1,
                wide: true,
                ..Ins::nop(Op::Lut)
            });
        }
        mk(&mut sv, vector.len(), OampTensor::Mc, at);
        let terms = [
            RowTerm::Elem(kt(&mut bld, mc, layer.phi.code, false, layer.phi.frac + xf)),
            RowTerm::Elem(kt(
                &mut bld,
                map.r,
                layer.phi_xi.code,
                true,
                layer.phi_xi.frac + rf,
            )),
        ];
        bld.rows(&mut vector, n, &terms, &same(xf), ir.state.width(), map.x);
        mk(&mut sv, vector.len(), OampTensor::X, at);
    }

    // The multiplier's ports: the widest a and b of any MAC whose a is not the constant one.
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
                ins.b..ins.b + 1
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
        divs: [b.inv_trace.op, k.pivot_inv.op],
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
        inner: Vec::new(),
        stages: sb.into_iter().chain(sv).collect(),
        div2: Some(k.c_inv.op),
        sel: Some(Selection {
            thresholds: k.thresholds.clone(),
            stride: om.stride,
        }),
    }
    .checked()
}

/// `dest = reg[a] · const[b]` in one cycle (a copy when the constant is 1).
fn copy(a: usize, b: usize, dest: usize) -> Ins {
    Ins {
        a,
        b,
        b_const: true,
        first: true,
        last: true,
        dest,
        ..Ins::nop(Op::Mac)
    }
}

/// The closed-form cycle model of an oamp design on `lanes` MAC lanes, from the IR alone
/// (docs/rtl.md, "IR v4"): `(block, vector)` cycles, a dot product of k terms ⌈k / P⌉
/// cycles, a division 4 + its shift. Equal to [`Program::block_cycles`] and
/// [`Program::vector_cycles`] (tested), and to the cycles the RTL takes (co-simulation).
pub fn analytic_cycles(ir: &OampIr, lanes: usize) -> (u64, u64) {
    let c = |k: u64| k.div_ceil(lanes as u64);
    let (m, n) = (ir.m as u64, ir.n as u64);
    let b = &ir.block;
    let k = &b.bank;
    let div = |d: &kaq_ir::fixed::Divide| 4 + u64::from(d.shift());
    // G's upper triangle, its copy, tr G, 1/tr G, W's unit diagonal.
    let mut block = c(m) * n * (n + 1) / 2 + n * (n - 1) / 2 + c(n) + div(&b.inv_trace.op) + n;
    for pr in &k.prior {
        // E (each entry: G, δ on the diagonal, the dot product of c terms), ι, L.
        for col in 0..n {
            block += (n - col) * (1 + if col > 0 { c(col) } else { 0 }) + 1;
            block += div(&k.pivot_inv.op) + (n - col - 1);
        }
        // W below the diagonal, V, Q (and its mirror), P.
        for col in 0..n {
            block += (1..n - col).map(c).sum::<u64>();
        }
        block += n * (n + 1) / 2;
        block += (0..n).map(|i| (i + 1) * c(n - i)).sum::<u64>() + n * (n - 1) / 2;
        block += n * n;
        // c, 1/c, S, α, σ, a, b.
        block += 1 + c(n) + div(&k.c_inv.op) + c(n) + c(n * n) + 1 + 1 + 2;
        block += if pr.code == 0 { 1 } else { 2 };
    }
    block += 1;
    let q = c(n);
    // Load, z, ‖ỹ‖², the drain.
    let mut vector = c(m) + n * c(m) + c(m) + 1;
    for li in 0..ir.layers.len() {
        let later = u64::from(li > 0);
        // e, W, v², the floor, the selection, g, γα.
        vector += q + later * n * c(n) + 2 + later * 2 * c(n) + 3 + n * c(n) + 1;
        // r, a v², τ², the bucket, the table, x.
        vector += q * (1 + later) + 1 + 3 + 1 + q + 2 * q;
    }
    (block, vector)
}

/// The files of the oamp design of `ir` on `lanes` MAC lanes (1 to
/// [`super::MAX_LANES`]) with top module `top`: the Verilog sources (the cells of a cg
/// design, the generated top), `files.f` (compile order) and `README.md` (interface, program,
/// cycle counts). Deterministic.
pub fn generate_lanes(
    ir: &OampIr,
    top: &str,
    lanes: usize,
) -> Result<Vec<crate::GeneratedFile>, crate::CodegenError> {
    use crate::{CodegenError, GeneratedFile};
    ir.validate().map_err(CodegenError::Ir)?;
    if !(1..=super::MAX_LANES).contains(&lanes) {
        return Err(CodegenError::Lanes { lanes, n: ir.n });
    }
    crate::check_top_name(top)?;
    if super::PRIMITIVES
        .iter()
        .any(|(f, _)| f.trim_end_matches(".v") == top)
    {
        return Err(CodegenError::TopName(
            top.to_string(),
            "is the name of a cell of the design".into(),
        ));
    }
    let prog = program(ir, lanes);
    let mut files: Vec<GeneratedFile> = super::sources(&prog, top)
        .into_iter()
        .map(|(name, contents)| GeneratedFile { name, contents })
        .collect();
    let list: String = files.iter().map(|f| format!("{}\n", f.name)).collect();
    files.push(GeneratedFile {
        name: "files.f".into(),
        contents: list,
    });
    files.push(GeneratedFile {
        name: "README.md".into(),
        contents: readme(ir, &prog, top),
    });
    Ok(files)
}

/// The README of an oamp design: what it computes, its interface (a cg design's), its
/// program and its cycles.
fn readme(ir: &OampIr, prog: &Program, top: &str) -> String {
    let (mb, mv) = prog.multiplies();
    let p = prog.lanes as u64;
    format!(
        "# {top}: OAMP-Net2 {name} on the folded Gram engine\n\n\
         Generated by `kaq codegen` from an IR version 4 (`family: \"oamp\"`) document \
         (docs/ir.md §11; docs/rtl.md, \"IR v4\"). Do not edit.\n\n\
         {nt}x{nr} {modu}, H~ {m}x{n}, {k} layers, a bank of {j} LMMSE entries, {lanes} MAC \
         lane(s).\n\n\
         ## Interface\n\n\
         As a cg design's (docs/rtl.md, \"IR v2\"): a channel block is M·N = {mn} code beats of \
         H~ on `blk_h` (row-major; `blk_t` = T and `blk_bin` = the SNR bin with the last), then \
         T vector beats of y~ on `y_data`, each answered by one output beat (`out_x`, \
         `out_level`, `out_last` on the block's last vector).\n\n\
         ## Program\n\n\
         - block program: {bl} instructions, {mb} multiplies, {bc} cycles (G, tr G, 1/tr G and, \
         per bank entry, the integer LDL^T inverse Q_j and alpha_j, a_j, b_j);\n\
         - vector program: {vl} instructions, {mv} multiplies, {vc} cycles (z, ||y~||², and per \
         layer e, v², the entry j, g = Q_j e, r, tau², the bucket, the table, x);\n\
         - multiply bound at {lanes} lane(s): {mbv} cycles per vector.\n\n\
         A block of T vectors takes 1 + M·N + {bc} + T·{vc2} cycles without stalls.\n",
        name = ir.name,
        nt = ir.nt,
        nr = ir.nr,
        modu = ir.modulation,
        m = ir.m,
        n = ir.n,
        k = ir.layers.len(),
        j = ir.bank_len(),
        lanes = prog.lanes,
        mn = ir.m * ir.n,
        bl = prog.block.len(),
        bc = prog.block_cycles(),
        vl = prog.vector.len(),
        vc = prog.vector_cycles(),
        vc2 = prog.vector_cycles() + 2,
        mbv = (mv as u64).div_ceil(p),
    )
}
