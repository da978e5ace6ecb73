//! Tests of the version-4 (oamp) document and golden model: an independent reference of
//! docs/ir.md §11.3 written from the text, the inverse against the exact inverse, adversarial
//! channels at the format limits (the interpreter's debug assertions check every accumulator
//! against 2^62), malformed documents and mutated JSON.

use proptest::prelude::*;

use super::oamp::{
    Bank, OAMP_IR_VERSION, OampBlock, OampFamily, OampFormats, OampInterpreter, OampIr, OampLayer,
};
use super::{AnyIr, Coef, Denoiser, Divisor, Reciprocal, VectorFront, combine};
use crate::document::Inputs;
use crate::fixed::{Divide, OverflowMode, QFormat, RoundingMode, max_code};
use crate::modulation::Modulation;
use crate::vocab::SnrBins;

fn f(w: u32, fr: i32) -> QFormat {
    QFormat::signed(w, fr).unwrap()
}

fn recip(width: u32, frac: i32, divisor_frac: i32) -> Reciprocal {
    Reciprocal {
        op: Divide::new(
            (frac + divisor_frac) as u32,
            1,
            RoundingMode::HalfUp,
            OverflowMode::SaturateSymmetric,
            width,
        )
        .unwrap(),
        divisor: Divisor::Clamped,
        format: f(width, frac),
    }
}

/// A small valid document: QPSK, `nt = nr` antennas (N = M = 2·nt), J = 3, two SNR bins,
/// K = 2 layers; `bank_width` sets the inverse's internal widths.
fn example(nt: usize, bank_width: u32) -> OampIr {
    let n = 2 * nt;
    let bw = bank_width;
    let g = f(16, 10);
    let ld = f(bw, bw as i32 - 10);
    let p = f(bw, bw as i32 - 3);
    let layer = |gamma: i64| OampLayer {
        formats: OampFormats {
            e: f(12, 8),
            g: f(12, 8),
            r: f(5, 3),
            v2: f(16, 12),
            tau2: f(12, 8),
        },
        v2_floor: 1,
        gamma: Coef {
            code: gamma,
            frac: 4,
        },
        c0: Coef { code: -3, frac: 2 },
        c1: Coef { code: 5, frac: 2 },
        phi: Coef { code: 9, frac: 3 },
        phi_xi: Coef { code: 1, frac: 3 },
    };
    let r_w = 5u32;
    let half = 1i64 << (r_w - 1);
    let row = |scale: f64| -> Vec<i64> {
        (0..2 * half)
            .map(|i| {
                let r = (i - half) as f64 / 8.0;
                ((r * scale).tanh() * 4.0).round() as i64
            })
            .collect()
    };
    OampIr {
        format: crate::document::IR_FORMAT.into(),
        version: OAMP_IR_VERSION,
        name: "oamp-example".into(),
        family: OampFamily::Oamp,
        modulation: Modulation::Qpsk,
        nt,
        nr: nt,
        m: n,
        n,
        snr_bins: SnrBins {
            min_db: 0.0,
            step_db: 10.0,
            count: 2,
        },
        inputs: Inputs {
            h: f(8, 5),
            y: f(8, 5),
        },
        state: f(6, 2),
        block: OampBlock {
            g,
            inv_trace: recip(16, 14, g.frac()),
            bank: Bank {
                delta: vec![vec![400, 40], vec![800, 80], vec![1600, 160]],
                prior: vec![
                    Coef { code: 8, frac: 3 },
                    Coef { code: 4, frac: 3 },
                    Coef { code: 2, frac: 3 },
                ],
                ld,
                pivot_inv: recip(bw, bw as i32 - 6, ld.frac()),
                l: f(bw, bw as i32 - 6),
                w: f(bw, bw as i32 - 6),
                v: f(bw, bw as i32 - 8),
                q: f(16, 10),
                p,
                c_inv: recip(bw, bw as i32 - 4, p.frac()),
                alpha: f(16, 10),
                sigma: f(16, 14),
                a: f(16, 10),
                b: f(16, 10),
                thresholds: vec![2048, 256],
            },
        },
        front: VectorFront {
            z: f(16, 10),
            yy: f(20, 10),
            noise: vec![500, 50],
        },
        layers: vec![layer(16), layer(12)],
        denoiser: Denoiser {
            thresholds: vec![64],
            representatives: vec![0.1, 1.0],
            table: vec![row(4.0), row(1.0)],
        },
        slicer: vec![0],
    }
}

/// docs/ir.md §11.3, written from the text with full matrices and i128 terms: the bank taps
/// (pivots, ι, L, W, Q, c, S, 1/c, σ, α, a, b) of one block and every vector's x per layer.
#[allow(clippy::type_complexity, clippy::needless_range_loop)]
fn reference(
    ir: &OampIr,
    h: &[i64],
    ys: &[i64],
    bin: usize,
) -> (
    Vec<(Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>, [i64; 7])>,
    Vec<Vec<Vec<i64>>>,
) {
    let (m, n) = (ir.m, ir.n);
    let b = &ir.block;
    let k = &b.bank;
    let w128 = |v: i64| v as i128;
    let mut g = vec![vec![0i64; n]; n];
    for (i, row) in g.iter_mut().enumerate() {
        for (j, gij) in row.iter_mut().enumerate() {
            let s: i128 = (0..m)
                .map(|r| w128(h[r * n + i]) * w128(h[r * n + j]))
                .sum();
            *gij = combine(&[(s, 2 * ir.inputs.h.frac())], b.g);
        }
    }
    let trace: i64 = (0..n).map(|i| g[i][i]).sum();
    let it = b.inv_trace.op.apply(1, trace);
    let mut bank = Vec::new();
    let mut qs = Vec::new();
    let mut scal = Vec::new();
    for j in 0..ir.bank_len() {
        let delta = k.delta[j][bin];
        let a = |i: usize, c: usize| g[i][c] + if i == c { delta } else { 0 };
        let mut e = vec![vec![0i64; n]; n];
        let mut l = vec![vec![0i64; n]; n];
        let mut d = vec![0i64; n];
        let mut io = vec![0i64; n];
        for c in 0..n {
            for i in c..n {
                let s: i128 = (0..c).map(|kk| w128(e[i][kk]) * w128(l[c][kk])).sum();
                e[i][c] = combine(
                    &[(w128(a(i, c)), b.g.frac()), (-s, k.ld.frac() + k.l.frac())],
                    k.ld,
                );
            }
            d[c] = e[c][c];
            io[c] = k.pivot_inv.op.apply(1, d[c]);
            for i in c + 1..n {
                l[i][c] = combine(
                    &[(
                        w128(e[i][c]) * w128(io[c]),
                        k.ld.frac() + k.pivot_inv.format.frac(),
                    )],
                    k.l,
                );
            }
        }
        let mut w = vec![vec![0i64; n]; n];
        for c in 0..n {
            w[c][c] = 1 << k.w.frac();
            for i in c + 1..n {
                let s: i128 = (c..i).map(|kk| w128(l[i][kk]) * w128(w[kk][c])).sum();
                w[i][c] = combine(&[(-s, k.l.frac() + k.w.frac())], k.w);
            }
        }
        let v = |r: usize, c: usize| {
            combine(
                &[(
                    w128(io[r]) * w128(w[r][c]),
                    k.pivot_inv.format.frac() + k.w.frac(),
                )],
                k.v,
            )
        };
        let mut q = vec![0i64; n * n];
        for i in 0..n {
            for jj in 0..=i {
                let s: i128 = (i..n).map(|kk| w128(w[kk][i]) * w128(v(kk, jj))).sum();
                let c = combine(&[(s, k.w.frac() + k.v.frac())], k.q);
                q[i * n + jj] = c;
                q[jj * n + i] = c;
            }
        }
        let pm: Vec<i64> = q
            .iter()
            .map(|&x| combine(&[(w128(delta) * w128(x), b.g.frac() + k.q.frac())], k.p))
            .collect();
        let tp: i128 = (0..n).map(|i| w128(pm[i * n + i])).sum();
        let sp: i128 = pm.iter().map(|&x| w128(x) * w128(x)).sum();
        let c = ((n as i128) << k.p.frac()) - tp;
        let s = combine(&[(tp, k.p.frac()), (-sp, 2 * k.p.frac())], k.p);
        let ci = k.c_inv.op.apply(1, c as i64);
        let cif = k.c_inv.format.frac();
        let al = combine(&[(n as i128 * w128(ci), cif)], k.alpha);
        let sg = combine(&[(w128(s) * w128(ci), k.p.frac() + cif)], k.sigma);
        let (alf, sf) = (k.alpha.frac(), k.sigma.frac());
        let aa = combine(&[(w128(al) * ((1i128 << sf) - w128(sg)), alf + sf)], k.a);
        let pr = k.prior[j];
        let bb = combine(
            &[(w128(pr.code) * w128(al) * w128(sg), pr.frac + alf + sf)],
            k.b,
        );
        let flat = |x: &[Vec<i64>]| x.iter().flatten().copied().collect::<Vec<_>>();
        bank.push((
            d.clone(),
            io.clone(),
            flat(&l),
            flat(&w),
            q.clone(),
            [c as i64, s, ci, sg, al, aa, bb],
        ));
        qs.push(q);
        scal.push((al, aa, bb));
    }
    let mut vectors = Vec::new();
    for y in ys.chunks(m) {
        let z: Vec<i64> = (0..n)
            .map(|j| {
                let s: i128 = (0..m).map(|r| w128(h[r * n + j]) * w128(y[r])).sum();
                combine(&[(s, ir.inputs.h.frac() + ir.inputs.y.frac())], ir.front.z)
            })
            .collect();
        let yy = combine(
            &[(
                y.iter().map(|&v| w128(v) * w128(v)).sum(),
                2 * ir.inputs.y.frac(),
            )],
            ir.front.yy,
        );
        let mut x = vec![0i64; n];
        let mut per_layer = Vec::new();
        let xf = ir.state.frac();
        for l in &ir.layers {
            let fm = &l.formats;
            let e: Vec<i64> = (0..n)
                .map(|i| {
                    let s: i128 = (0..n).map(|j| w128(g[i][j]) * w128(x[j])).sum();
                    combine(
                        &[(w128(z[i]), ir.front.z.frac()), (-s, b.g.frac() + xf)],
                        fm.e,
                    )
                })
                .collect();
            let xz: i128 = (0..n).map(|i| w128(x[i]) * w128(z[i])).sum();
            let xe: i128 = (0..n).map(|i| w128(x[i]) * w128(e[i])).sum();
            let (yyf, zf, ef) = (ir.front.yy.frac(), ir.front.z.frac(), fm.e.frac());
            let fw = fm.v2.frac().max(yyf).max(xf + zf).max(xf + ef);
            let wsum: i128 = (w128(yy) << (fw - yyf))
                - (xz << (fw - xf - zf))
                - (xe << (fw - xf - ef))
                - (w128(ir.front.noise[bin]) << (fw - yyf));
            let v2 = combine(&[(wsum * w128(it), fw + b.inv_trace.format.frac())], fm.v2)
                .max(l.v2_floor);
            let j = k.thresholds.iter().filter(|&&t| v2 < t).count();
            let (al, aa, bb) = scal[j];
            let gv: Vec<i64> = (0..n)
                .map(|i| {
                    let s: i128 = (0..n).map(|c| w128(qs[j][i * n + c]) * w128(e[c])).sum();
                    combine(&[(s, k.q.frac() + ef)], fm.g)
                })
                .collect();
            let r: Vec<i64> = (0..n)
                .map(|i| {
                    combine(
                        &[
                            (w128(x[i]), xf),
                            (
                                w128(l.gamma.code) * w128(al) * w128(gv[i]),
                                l.gamma.frac + k.alpha.frac() + fm.g.frac(),
                            ),
                        ],
                        fm.r,
                    )
                })
                .collect();
            let tau2 = combine(
                &[
                    (w128(l.c0.code) * w128(v2), l.c0.frac + fm.v2.frac()),
                    (
                        w128(l.c1.code) * w128(aa) * w128(v2),
                        l.c1.frac + k.a.frac() + fm.v2.frac(),
                    ),
                    (w128(l.c1.code) * w128(bb), l.c1.frac + k.b.frac()),
                ],
                fm.tau2,
            );
            let bucket = ir
                .denoiser
                .thresholds
                .iter()
                .filter(|&&t| tau2 >= t)
                .count();
            let half = 1i64 << (fm.r.width() - 1);
            for i in 0..n {
                let mc = ir.denoiser.table[bucket][(r[i] + half) as usize];
                x[i] = combine(
                    &[
                        (w128(l.phi.code) * w128(mc), l.phi.frac + xf),
                        (
                            -w128(l.phi_xi.code) * w128(r[i]),
                            l.phi_xi.frac + fm.r.frac(),
                        ),
                    ],
                    ir.state,
                );
            }
            per_layer.push(x.clone());
        }
        vectors.push(per_layer);
    }
    (bank, vectors)
}

fn check_against_reference(ir: &OampIr, h: &[i64], ys: &[i64], bin: usize) {
    let gi = OampInterpreter::new(ir.clone()).unwrap();
    let (bt, vt) = gi.run_block_codes(h, ys, bin).unwrap();
    let (bank, vectors) = reference(ir, h, ys, bin);
    assert_eq!(bt.bank.len(), bank.len());
    for (j, (t, r)) in bt.bank.iter().zip(&bank).enumerate() {
        assert_eq!(t.pivots, r.0, "entry {j} pivots");
        assert_eq!(t.pivot_inv, r.1, "entry {j} ι");
        assert_eq!(t.l, r.2, "entry {j} L");
        assert_eq!(t.w, r.3, "entry {j} W");
        assert_eq!(t.q, r.4, "entry {j} Q");
        assert_eq!(
            [t.c, t.s, t.c_inv, t.sigma, t.alpha, t.a, t.b],
            r.5,
            "entry {j} scalars"
        );
    }
    for (v, (t, r)) in vt.iter().zip(&vectors).enumerate() {
        let xs: Vec<Vec<i64>> = t.layers.iter().map(|l| l.x.clone()).collect();
        assert_eq!(&xs, r, "vector {v}");
        let levels: Vec<i32> = r.last().unwrap().iter().map(|&c| ir.decide(c)).collect();
        assert_eq!(t.levels, levels);
    }
}

#[test]
fn example_validates_round_trips_and_loads_as_version_4() {
    for nt in [1, 2] {
        let ir = example(nt, 24);
        ir.validate().unwrap();
        let text = ir.to_json();
        assert_eq!(OampIr::from_json(&text, "x").unwrap(), ir);
        match AnyIr::from_json(&text, "x").unwrap() {
            AnyIr::Oamp(o) => assert_eq!(*o, ir),
            _ => panic!("a version-4 document loaded as another version"),
        }
        assert_eq!(OampIr::from_json(&text, "x").unwrap().to_json(), text);
    }
}

#[test]
fn a_fixed_block_matches_the_reference() {
    let ir = example(1, 24);
    let h = [29, -9, 7, 22];
    let ys = [40, -21, -3, 17, 100, -128];
    for bin in 0..2 {
        check_against_reference(&ir, &h, &ys, bin);
    }
}

/// The exact inverse (f64 Gauss–Jordan) of A = G + δI from the codes of G and δ.
fn exact_inverse(g: &[i64], delta: i64, n: usize, gf: i32) -> Vec<f64> {
    let s = 2f64.powi(-gf);
    let mut a: Vec<f64> = (0..n * n)
        .map(|i| (g[i] + if i / n == i % n { delta } else { 0 }) as f64 * s)
        .collect();
    let mut inv: Vec<f64> = (0..n * n)
        .map(|i| if i / n == i % n { 1.0 } else { 0.0 })
        .collect();
    for c in 0..n {
        let p = a[c * n + c];
        for j in 0..n {
            a[c * n + j] /= p;
            inv[c * n + j] /= p;
        }
        for r in 0..n {
            if r != c {
                let fct = a[r * n + c];
                for j in 0..n {
                    a[r * n + j] -= fct * a[c * n + j];
                    inv[r * n + j] -= fct * inv[c * n + j];
                }
            }
        }
    }
    inv
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The golden model equals the §11.3 reference bit for bit on random channels, vector
    /// counts (block lengths), SNR bins and sizes (N = 2, 4), at two bank widths.
    #[test]
    fn golden_model_equals_the_reference(
        nt in 1usize..=2,
        wide in any::<bool>(),
        seed in prop::collection::vec(-128i64..=127, 16 + 4 * 14),
        t in 1usize..=14,
        bin in 0usize..2,
    ) {
        let ir = example(nt, if wide { 24 } else { 16 });
        let (m, n) = (ir.m, ir.n);
        let h: Vec<i64> = seed[..m * n].to_vec();
        let ys: Vec<i64> = (0..t * m).map(|i| seed[(i * 7 + 3) % seed.len()]).collect();
        check_against_reference(&ir, &h, &ys, bin);
    }

    /// Q_j against the exact (G + δ_j I)⁻¹ of the same codes, within docs/ir.md §11.4's
    /// first-order bound ½·2^−f_q + 4·N·‖A⁻¹‖²_F·(1 + ‖A‖_F)·2^−f_min (f_min the smallest frac
    /// of ld, l, w, v, ι), wherever the exact entry does not saturate Q.
    #[test]
    fn bank_inverse_is_within_the_bound_of_the_exact_inverse(
        nt in 1usize..=2,
        seed in prop::collection::vec(-40i64..=40, 16),
        bin in 0usize..2,
    ) {
        let ir = example(nt, 24);
        let (m, n) = (ir.m, ir.n);
        let h: Vec<i64> = seed[..m * n].to_vec();
        let gi = OampInterpreter::new(ir.clone()).unwrap();
        let (bt, _) = gi.run_block_codes(&h, &[0; 64][..m], bin).unwrap();
        for (j, entry) in bt.bank.iter().enumerate() {
            let exact = exact_inverse(&bt.g, ir.block.bank.delta[j][bin], n, ir.block.g.frac());
            let qs = 2f64.powi(-ir.block.bank.q.frac());
            let qmax = max_code(ir.block.bank.q.width()) as f64 * qs;
            let k = &ir.block.bank;
            let fmin = [k.ld, k.l, k.w, k.v, k.pivot_inv.format]
                .iter()
                .map(|q| q.frac())
                .min()
                .unwrap();
            let inv_f2: f64 = exact.iter().map(|v| v * v).sum();
            let gs = 2f64.powi(-ir.block.g.frac());
            let a_f: f64 = (0..n * n)
                .map(|i| {
                    let d = if i / n == i % n { ir.block.bank.delta[j][bin] } else { 0 };
                    ((bt.g[i] + d) as f64 * gs).powi(2)
                })
                .sum::<f64>()
                .sqrt();
            let bound = qs / 2.0 + 4.0 * n as f64 * inv_f2 * (1.0 + a_f) * 2f64.powi(-fmin);
            for (i, (&c, &x)) in entry.q.iter().zip(&exact).enumerate() {
                if x.abs() < qmax - qs {
                    let err = (c as f64 * qs - x).abs();
                    prop_assert!(
                        err <= bound,
                        "entry {} Q[{}] = {} vs exact {} (err {} > {})", j, i, c as f64 * qs, x, err, bound
                    );
                }
            }
        }
    }

    /// Mutated documents never panic: each is refused with an error or, if it still
    /// validates, runs a block without panicking or overflowing.
    #[test]
    fn mutated_json_never_panics(
        at in 0usize..10_000,
        len in 0usize..4,
        with in prop::sample::select(vec!["", "0", "-1", "99999999999", "\"x\"", "[]", "{}", "1e9", ",", "null", "64", "-64", "2147483648"]),
    ) {
        let text = example(1, 24).to_json();
        let cut = at % text.len();
        let end = (cut + len).min(text.len());
        let (cut, end) = (
            (0..=cut).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0),
            (end..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len()),
        );
        let mutated = format!("{}{}{}", &text[..cut], with, &text[end..]);
        if let Ok(AnyIr::Oamp(ir)) = AnyIr::from_json(&mutated, "m") {
            let gi = OampInterpreter::new(*ir.clone()).unwrap();
            let (m, n) = (ir.m, ir.n);
            let h = vec![127i64; m * n];
            let ys = vec![-128i64; 2 * m];
            gi.run_block_codes(&h, &ys, 0).unwrap();
        }
    }
}

/// Channels at the format limits: full-magnitude codes, equal columns (singular G), H̃ = 0
/// (c = 0), alternating signs, in every bin. The debug assertions of the interpreter check
/// every accumulator against the interval analysis' 2^62 and every code against its format.
#[test]
fn adversarial_channels_stay_in_range() {
    for nt in [1, 2] {
        for bank_width in [16, 24] {
            let ir = example(nt, bank_width);
            let (m, n) = (ir.m, ir.n);
            let gi = OampInterpreter::new(ir.clone()).unwrap();
            let hs: Vec<Vec<i64>> = vec![
                vec![127; m * n],
                vec![-128; m * n],
                vec![0; m * n],
                (0..m * n)
                    .map(|i| if i % 2 == 0 { -128 } else { 127 })
                    .collect(),
                (0..m * n)
                    .map(|i| if (i / n) % 2 == 0 { 127 } else { -128 })
                    .collect(),
                (0..m * n).map(|i| if i % n == 0 { 1 } else { 0 }).collect(),
            ];
            let ys: Vec<i64> = (0..3 * m).map(|i| [127, -128, 0][i / m]).collect();
            for h in &hs {
                for bin in 0..2 {
                    let (_, vt) = gi.run_block_codes(h, &ys, bin).unwrap();
                    assert_eq!(vt.len(), 3);
                    check_against_reference(&ir, h, &ys, bin);
                }
            }
        }
    }
}

/// Malformed documents: each error names the field.
#[test]
fn malformed_documents_name_the_field() {
    type Edit = fn(&mut OampIr);
    let cases: Vec<(&str, Edit)> = vec![
        ("version", |ir| ir.version = 5),
        ("n", |ir| ir.n = 3),
        ("m", |ir| ir.m = 7),
        ("block.bank.delta", |ir| ir.block.bank.delta.clear()),
        ("block.bank.delta[1]", |ir| ir.block.bank.delta[1].push(3)),
        ("block.bank.delta[0][1]", |ir| ir.block.bank.delta[0][1] = 0),
        ("block.bank.prior", |ir| {
            ir.block.bank.prior.pop();
        }),
        ("block.bank.thresholds", |ir| {
            ir.block.bank.thresholds.push(1)
        }),
        ("block.bank.thresholds[1]", |ir| {
            ir.block.bank.thresholds = vec![10, 20]
        }),
        ("block.bank.w.frac", |ir| ir.block.bank.w = f(24, 23)),
        ("block.bank.p.frac", |ir| ir.block.bank.p = f(24, -1)),
        ("block.bank.sigma.frac", |ir| {
            ir.block.bank.sigma = f(16, 40)
        }),
        ("block.bank.pivot_inv.format.frac", |ir| {
            ir.block.bank.pivot_inv.format = f(24, 3)
        }),
        ("block.bank.c_inv.divisor", |ir| {
            ir.block.bank.c_inv.divisor = Divisor::Proved
        }),
        ("layers[0].formats.e.width", |ir| {
            ir.layers[0].formats.e = f(28, 8)
        }),
        ("layers[1].formats.v2.frac", |ir| {
            ir.layers[1].formats.v2 = f(16, 11)
        }),
        ("layers[1].formats.r.width", |ir| {
            ir.layers[1].formats.r = f(6, 3)
        }),
        ("layers[0].formats.g.width", |ir| {
            ir.layers[0].formats.g = f(30, 8)
        }),
        ("layers[0].phi.code", |ir| ir.layers[0].phi.code = 1 << 40),
        ("layers[1].v2_floor", |ir| ir.layers[1].v2_floor = -1),
        ("denoiser.table[1]", |ir| {
            ir.denoiser.table[1].pop();
        }),
        ("denoiser.thresholds", |ir| ir.denoiser.thresholds.push(70)),
        ("front.noise", |ir| ir.front.noise.push(1)),
        ("slicer", |ir| ir.slicer.push(3)),
        ("layers", |ir| ir.layers.clear()),
        ("layers[0].x", |ir| {
            ir.layers[0].phi = Coef {
                code: 1 << 30,
                frac: -60,
            }
        }),
    ];
    for (field, edit) in cases {
        let mut ir = example(1, 24);
        edit(&mut ir);
        match ir.validate() {
            Err(crate::IrError::Invalid { field: got, .. }) => {
                assert_eq!(got, field, "expected an error naming {field}")
            }
            other => panic!("{field}: expected an invalid-field error, got {other:?}"),
        }
    }
    // Unknown family, unknown field and a v2 family under version 4 are parse errors.
    let text = example(1, 24).to_json();
    for (from, to) in [
        ("\"family\": \"oamp\"", "\"family\": \"cg\""),
        ("\"family\": \"oamp\"", "\"family\": \"oamp\", \"extra\": 1"),
    ] {
        let bad = text.replacen(from, to, 1);
        assert!(matches!(
            AnyIr::from_json(&bad, "x"),
            Err(crate::IrError::Parse { .. })
        ));
    }
    // A wrong-length code buffer is an error, not a panic.
    let gi = OampInterpreter::new(example(1, 24)).unwrap();
    assert!(gi.run_block_codes(&[0; 3], &[0; 2], 0).is_err());
    assert!(gi.run_block_codes(&[0; 4], &[0; 3], 0).is_err());
    assert!(gi.run_block_codes(&[0; 4], &[0; 2], 2).is_err());
    assert!(gi.run_block_codes(&[0, 0, 0, 128], &[0; 2], 0).is_err());
}

/// The document of docs/ir.md §11.7: QPSK, N = M = 2, J = 2 bank entries, one SNR bin, K = 2.
fn worked_example() -> OampIr {
    let layer = |gamma: i64| OampLayer {
        formats: OampFormats {
            e: f(10, 6),
            g: f(10, 6),
            r: f(4, 2),
            v2: f(12, 8),
            tau2: f(10, 6),
        },
        v2_floor: 1,
        gamma: Coef {
            code: gamma,
            frac: 2,
        },
        c0: Coef { code: 1, frac: 2 },
        c1: Coef { code: 9, frac: 6 },
        phi: Coef { code: 4, frac: 2 },
        phi_xi: Coef { code: 1, frac: 3 },
    };
    let g = f(12, 6);
    let ld = f(16, 8);
    let p = f(12, 10);
    OampIr {
        format: crate::document::IR_FORMAT.into(),
        version: OAMP_IR_VERSION,
        name: "oamp-worked-example".into(),
        family: OampFamily::Oamp,
        modulation: Modulation::Qpsk,
        nt: 1,
        nr: 1,
        m: 2,
        n: 2,
        snr_bins: SnrBins {
            min_db: 10.0,
            step_db: 10.0,
            count: 1,
        },
        inputs: Inputs {
            h: f(8, 5),
            y: f(8, 5),
        },
        state: f(4, 2),
        block: OampBlock {
            g,
            inv_trace: recip(12, 6, g.frac()),
            bank: Bank {
                delta: vec![vec![8], vec![64]],
                prior: vec![Coef { code: 8, frac: 3 }, Coef { code: 1, frac: 3 }],
                ld,
                pivot_inv: recip(16, 12, ld.frac()),
                l: f(12, 10),
                w: f(12, 10),
                v: f(16, 12),
                q: f(12, 8),
                p,
                c_inv: recip(12, 8, p.frac()),
                alpha: f(12, 8),
                sigma: f(12, 10),
                a: f(12, 8),
                b: f(12, 8),
                thresholds: vec![100],
            },
        },
        front: VectorFront {
            z: f(12, 6),
            yy: f(16, 8),
            noise: vec![13],
        },
        layers: vec![layer(4), layer(3)],
        denoiser: Denoiser {
            thresholds: vec![16],
            representatives: vec![0.1, 1.0],
            table: vec![
                vec![-4, -4, -4, -4, -4, -4, -3, -1, 1, 3, 4, 4, 4, 4, 4, 4],
                vec![-4, -4, -3, -3, -2, -2, -1, 0, 0, 1, 2, 2, 3, 3, 4, 4],
            ],
        },
        slicer: vec![0],
    }
}

/// Every number of docs/ir.md §11.7 (derived there by hand from §11.3) against the golden
/// model's taps, and the example against the §11.3 reference of this file.
#[test]
fn worked_example_of_the_docs() {
    let ir = worked_example();
    ir.validate().unwrap();
    let h = [29, -9, 7, 22];
    let y = [40, -21];
    check_against_reference(&ir, &h, &y, 0);
    let gi = OampInterpreter::new(ir).unwrap();
    let (bt, vt) = gi.run_block_codes(&h, &y, 0).unwrap();
    assert_eq!(bt.g, [56, -7, -7, 35]);
    assert_eq!((bt.trace, bt.inv_trace), (91, 45));
    let e0 = &bt.bank[0];
    assert_eq!(e0.pivots, [256, 169]);
    assert_eq!(e0.pivot_inv, [4096, 6205]);
    assert_eq!(e0.l, [0, 0, -112, 0]);
    assert_eq!(e0.w, [1024, 0, 112, 1024]);
    assert_eq!(e0.q, [261, 42, 42, 388]);
    assert_eq!(
        [e0.c, e0.s, e0.c_inv, e0.alpha, e0.sigma, e0.a, e0.b],
        [1723, 271, 152, 304, 161, 256, 48]
    );
    let e1 = &bt.bank[1];
    assert_eq!(e1.pivots, [480, 394]);
    assert_eq!(e1.pivot_inv, [2185, 2661]);
    assert_eq!(e1.l, [0, 0, -60, 0]);
    assert_eq!(e1.w, [1024, 0, 60, 1024]);
    assert_eq!(e1.q, [137, 10, 10, 166]);
    assert_eq!(
        [e1.c, e1.s, e1.c_inv, e1.alpha, e1.sigma, e1.a, e1.b],
        [836, 485, 314, 628, 595, 263, 46]
    );
    let v = &vt[0];
    assert_eq!((v.z.as_slice(), v.yy), ([63, -51].as_slice(), 510));
    let l0 = &v.layers[0];
    assert_eq!(l0.e, [63, -51]);
    assert_eq!((l0.v2, l0.j), (349, 0));
    assert_eq!(l0.g, [56, -67]);
    assert_eq!(l0.r, [4, -5]);
    assert_eq!((l0.tau2, l0.bucket), (36, 1));
    assert_eq!(l0.x, [3, -2]);
    let l1 = &v.layers[1];
    assert_eq!(l1.e, [18, -28]);
    assert_eq!((l1.v2, l1.j), (68, 1));
    assert_eq!(l1.g, [9, -17]);
    assert_eq!(l1.r, [4, -4]);
    assert_eq!((l1.tau2, l1.bucket), (8, 0));
    assert_eq!(l1.x, [4, -3]);
    assert_eq!(v.levels, [1, -1]);
}
