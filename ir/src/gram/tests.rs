//! The IR v2 golden model against a straightforward reference evaluation of docs/ir.md §10.3
//! (every sum in i128, every requantization by [`combine`], G computed in full), bit for bit,
//! on random valid documents and random codes (including the extreme codes of each format),
//! through both entry points ([`GramInterpreter::run_block_codes`] with every tap, and
//! [`GramInterpreter::detect_received`] on multi-block batches); and the worked example of
//! docs/ir.md §10.7, pinned.

use proptest::prelude::*;

use super::*;
use crate::document::Inputs;
use crate::fixed::max_code;
use crate::interp::Received;

/// A small deterministic generator (splitmix64), so one proptest seed fixes a whole case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo) as u64 + 1)) as i64
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.range(0, xs.len() as i64 - 1) as usize]
    }

    /// A code of `width` bits: mostly uniform over the full range, sometimes an extreme.
    fn code(&mut self, width: u32) -> i64 {
        let (lo, hi) = (-(1i64 << (width - 1)), (1i64 << (width - 1)) - 1);
        match self.range(0, 7) {
            0 => lo,
            1 => hi,
            2 => 0,
            _ => self.range(lo, hi),
        }
    }

    /// A symmetric code of `width` bits (what a requantization produces).
    fn sym(&mut self, width: u32) -> i64 {
        let q = max_code(width);
        match self.range(0, 7) {
            0 => -q,
            1 => q,
            _ => self.range(-q, q),
        }
    }
}

fn fmt(rng: &mut Rng, lo: u32, hi: u32, frac: (i64, i64)) -> QFormat {
    let w = rng.range(i64::from(lo), i64::from(hi)) as u32;
    QFormat::signed(w, rng.range(frac.0, frac.1) as i32).expect("format")
}

fn coef(rng: &mut Rng, bits: u32) -> Coef {
    Coef {
        code: rng.sym(bits),
        frac: rng.range(0, 14) as i32,
    }
}

/// A random document; `None` when it does not validate (the caller draws again). N = `n` real
/// dimensions when given (N = 32: the 32-code row kernels), else a small random N.
fn random_ir_n(rng: &mut Rng, n_fixed: Option<usize>) -> Option<GramIr> {
    let modulation = rng.pick(&[
        Modulation::Bpsk,
        Modulation::Qpsk,
        Modulation::Qam16,
        Modulation::Qam64,
    ]);
    let nt = match n_fixed {
        Some(n) => n / modulation.real_dims_per_symbol(),
        None => rng.range(1, 4) as usize,
    };
    let nr = nt + rng.range(0, 2) as usize;
    let n = modulation.real_dims_per_symbol() * nt;
    let bins = rng.range(1, 3) as usize;
    // Narrow formats (the 16-bit kernels) in most cases, wide ones (the i64 path) in others.
    let wide = rng.range(0, 3) == 0;
    let hi = |narrow: u32, wide_hi: u32| if wide { wide_hi } else { narrow };
    let h = fmt(rng, 2, hi(16, 24), (0, 12));
    let y = fmt(rng, 2, hi(16, 24), (0, 12));
    let state = fmt(rng, 2, hi(10, 16), (0, 8));
    let g = fmt(rng, 2, hi(16, 32), (-4, 14));
    let recip = |rng: &mut Rng| {
        let shift = rng.range(0, 40) as u32;
        let width = rng.range(2, 24) as u32;
        let op = Divide::new(
            shift,
            rng.range(1, 4),
            rng.pick(&[
                RoundingMode::HalfUp,
                RoundingMode::Floor,
                RoundingMode::HalfEven,
            ]),
            rng.pick(&[
                OverflowMode::Saturate,
                OverflowMode::Wrap,
                OverflowMode::SaturateSymmetric,
            ]),
            width,
        )
        .expect("divide");
        Reciprocal {
            op,
            divisor: Divisor::Clamped,
            format: QFormat::signed(width, shift as i32 - g.frac()).expect("format"),
        }
    };
    let block = BlockStage {
        g,
        inv_trace: recip(rng),
        diag_inv: recip(rng),
    };
    let yy = fmt(rng, 8, 32, (-4, 14));
    let front = VectorFront {
        z: fmt(rng, 2, hi(16, 32), (-4, 14)),
        yy,
        noise: (0..bins).map(|_| rng.sym(yy.width().min(24))).collect(),
    };
    let r = fmt(rng, 2, 8, (-2, 8));
    let tau2 = fmt(rng, 2, 20, (-4, 14));
    let k = rng.range(1, 6) as usize;
    let inner = rng.range(1, 4) as usize;
    let bin_coef = |rng: &mut Rng| BinCoef {
        codes: (0..bins).map(|_| rng.sym(12)).collect(),
        frac: rng.range(0, 14) as i32,
    };
    let layers = (0..k)
        .map(|_| {
            let formats = LayerFormats {
                e: fmt(rng, 2, hi(16, 24), (-4, 12)),
                p: fmt(rng, 2, hi(16, 24), (-4, 12)),
                d: fmt(rng, 2, hi(16, 24), (-4, 12)),
                r: QFormat::signed(r.width(), rng.range(-2, 8) as i32).expect("r"),
                v2: fmt(rng, 2, 24, (-4, 14)),
                tau2,
            };
            GramLayer {
                v2_floor: rng.range(0, max_code(formats.v2.width()).min(8)),
                delta: bin_coef(rng),
                gamma: coef(rng, 12),
                tv: coef(rng, 12),
                ts: bin_coef(rng),
                steps: (0..inner)
                    .map(|l| InnerStep {
                        omega: coef(rng, 12),
                        beta: if l == 0 {
                            Coef { code: 0, frac: 0 }
                        } else {
                            coef(rng, 12)
                        },
                    })
                    .collect(),
                formats,
                bin_shift: None,
                g_inner: None,
            }
        })
        .collect::<Vec<_>>();
    // Half the documents are version 3 with per-bin shifts of e, p, d in every layer.
    let shifted = rng.range(0, 1) == 0;
    let mut layers = layers;
    if shifted {
        for l in &mut layers {
            let v = |rng: &mut Rng| (0..bins).map(|_| rng.range(-3, 3) as i32).collect();
            l.bin_shift = Some(BinShift {
                e: v(rng),
                p: v(rng),
                d: v(rng),
            });
        }
    }
    let buckets = rng.range(1, 6) as usize;
    let mut thresholds: Vec<i64> = (1..buckets).map(|_| rng.sym(tau2.width())).collect();
    thresholds.sort_unstable();
    let levels = modulation.levels_per_dim();
    let mut slicer: Vec<i64> = (1..levels).map(|_| rng.sym(state.width())).collect();
    slicer.sort_unstable();
    let mut ir = GramIr {
        format: crate::document::IR_FORMAT.into(),
        version: if shifted {
            GRAM_IR_VERSION_BIN_SHIFT
        } else {
            GRAM_IR_VERSION
        },
        name: "random".into(),
        family: GramFamily::Cg,
        modulation,
        nt,
        nr,
        m: 2 * nr,
        n,
        snr_bins: SnrBins {
            min_db: 0.0,
            step_db: 10.0,
            count: bins,
        },
        inputs: Inputs { h, y },
        state,
        block,
        front,
        layers,
        denoiser: Denoiser {
            thresholds,
            representatives: vec![1.0; buckets],
            // Random rows, or steps of the sign of r (x then settles after a layer or two,
            // and G·x follows the few entries that change).
            table: (0..buckets)
                .map(|_| {
                    let entries = 1usize << r.width();
                    if rng.range(0, 1) == 0 {
                        (0..entries).map(|_| rng.sym(state.width())).collect()
                    } else {
                        let (a, b) = (rng.sym(state.width()), rng.sym(state.width()));
                        (0..entries)
                            .map(|i| if i < entries / 2 { a } else { b })
                            .collect()
                    }
                })
                .collect(),
        },
        slicer,
    };
    // A third of the documents read a narrow inner G (`g_inner`) in about half their layers
    // (drawn last, so the rest of every document is what it was before the field existed).
    let gw = ir.block.g.width();
    if gw > 2 && rng.range(0, 2) == 0 {
        for l in &mut ir.layers {
            if rng.range(0, 1) == 0 {
                l.g_inner = Some(rng.range(2, i64::from(gw) - 1) as u32);
            }
        }
    }
    ir.validate().is_ok().then_some(ir)
}

fn draw_ir(rng: &mut Rng) -> GramIr {
    draw_ir_n(rng, None)
}

fn draw_ir_n(rng: &mut Rng, n: Option<usize>) -> GramIr {
    loop {
        if let Some(ir) = random_ir_n(rng, n) {
            return ir;
        }
    }
}

fn t(v: i64, f: i32) -> (i128, i32) {
    (i128::from(v), f)
}

/// docs/ir.md §10.3 evaluated literally: i128 sums, [`combine`], G in full.
fn reference(ir: &GramIr, h: &[i64], ys: &[i64], bin: usize) -> (BlockTaps, Vec<VectorTaps>) {
    let (m, n) = (ir.m, ir.n);
    let (fh, fy) = (ir.inputs.h.frac(), ir.inputs.y.frac());
    let (gf, xf) = (ir.block.g.frac(), ir.state.frac());
    let (zf, yyf) = (ir.front.z.frac(), ir.front.yy.frac());
    let mut g = vec![0i64; n * n];
    for i in 0..n {
        for j in 0..n {
            let s: i128 = (0..m)
                .map(|r| i128::from(h[r * n + i]) * i128::from(h[r * n + j]))
                .sum();
            g[i * n + j] = combine(&[(s, 2 * fh)], ir.block.g);
        }
    }
    let trace: i64 = (0..n).map(|i| g[i * n + i]).sum();
    let inv_trace = ir.block.inv_trace.op.apply(1, trace);
    let diag_inv: Vec<i64> = (0..n)
        .map(|i| ir.block.diag_inv.op.apply(1, g[i * n + i]))
        .collect();
    let it_f = ir.block.inv_trace.format.frac();
    let df = ir.block.diag_inv.format.frac();
    let gv = |v: &[i64], i: usize| -> i128 {
        (0..n)
            .map(|j| i128::from(g[i * n + j]) * i128::from(v[j]))
            .sum()
    };
    // docs/ir.md §10.9: a layer's inner G is G combined into its `g_inner` format.
    let gv_inner = |l: &GramLayer, v: &[i64], i: usize| -> i128 {
        let gi = l.inner_g(ir.block.g);
        (0..n)
            .map(|j| i128::from(combine(&[t(g[i * n + j], gf)], gi)) * i128::from(v[j]))
            .sum()
    };
    let dot = |a: &[i64], b: &[i64]| -> i128 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| i128::from(x) * i128::from(y))
            .sum()
    };
    let mut out = Vec::new();
    for y in ys.chunks(m) {
        let z: Vec<i64> = (0..n)
            .map(|j| {
                let s: i128 = (0..m)
                    .map(|r| i128::from(h[r * n + j]) * i128::from(y[r]))
                    .sum();
                combine(&[(s, fh + fy)], ir.front.z)
            })
            .collect();
        let yy = combine(&[(dot(y, y), 2 * fy)], ir.front.yy);
        let mut x = vec![0i64; n];
        let mut layers = Vec::new();
        for l in &ir.layers {
            // docs/ir.md §10.8: in bin `bin` the fracs of e, p, d move by the bin's shifts.
            let mut f = l.formats;
            if let Some(s) = &l.bin_shift {
                f.e = QFormat::signed(f.e.width(), f.e.frac() + s.e[bin]).unwrap();
                f.p = QFormat::signed(f.p.width(), f.p.frac() + s.p[bin]).unwrap();
                f.d = QFormat::signed(f.d.width(), f.d.frac() + s.d[bin]).unwrap();
            }
            let f = &f;
            let e: Vec<i64> = (0..n)
                .map(|i| combine(&[t(z[i], zf), (-gv(&x, i), gf + xf)], f.e))
                .collect();
            let w_terms = [
                t(yy, yyf),
                (-dot(&x, &z), xf + zf),
                (-dot(&x, &e), xf + f.e.frac()),
                t(-ir.front.noise[bin], yyf),
            ];
            let fw = w_terms.iter().map(|t| t.1).fold(f.v2.frac(), i32::max);
            let w: i128 = w_terms.iter().map(|&(v, fr)| v << (fw - fr)).sum();
            let v2_unfloored = combine(&[(w * i128::from(inv_trace), fw + it_f)], f.v2);
            let v2 = v2_unfloored.max(l.v2_floor);
            let (mut rho, mut d, mut p) = (e.clone(), vec![0i64; n], vec![0i64; n]);
            let (mut tp, mut td, mut trho) = (Vec::new(), Vec::new(), Vec::new());
            let dl = l.delta.codes[bin];
            for (s_i, s) in l.steps.iter().enumerate() {
                for i in 0..n {
                    p[i] = combine(
                        &[
                            (
                                i128::from(diag_inv[i]) * i128::from(rho[i]),
                                df + f.e.frac(),
                            ),
                            (
                                i128::from(s.beta.code) * i128::from(p[i]),
                                s.beta.frac + f.p.frac(),
                            ),
                        ],
                        f.p,
                    );
                    d[i] = combine(
                        &[
                            t(d[i], f.d.frac()),
                            (
                                i128::from(s.omega.code) * i128::from(p[i]),
                                s.omega.frac + f.p.frac(),
                            ),
                        ],
                        f.d,
                    );
                }
                tp.extend_from_slice(&p);
                td.extend_from_slice(&d);
                if s_i + 1 < l.steps.len() {
                    rho = (0..n)
                        .map(|i| {
                            combine(
                                &[
                                    t(e[i], f.e.frac()),
                                    (
                                        -gv_inner(l, &d, i),
                                        l.inner_g(ir.block.g).frac() + f.d.frac(),
                                    ),
                                    (
                                        -i128::from(dl) * i128::from(d[i]),
                                        l.delta.frac + f.d.frac(),
                                    ),
                                ],
                                f.e,
                            )
                        })
                        .collect();
                    trho.extend_from_slice(&rho);
                }
            }
            let r: Vec<i64> = (0..n)
                .map(|i| {
                    combine(
                        &[
                            t(x[i], xf),
                            (
                                i128::from(l.gamma.code) * i128::from(d[i]),
                                l.gamma.frac + f.d.frac(),
                            ),
                        ],
                        f.r,
                    )
                })
                .collect();
            let tau2 = combine(
                &[
                    (
                        i128::from(l.tv.code) * i128::from(v2),
                        l.tv.frac + f.v2.frac(),
                    ),
                    t(l.ts.codes[bin], l.ts.frac),
                ],
                f.tau2,
            );
            let bucket = ir
                .denoiser
                .thresholds
                .iter()
                .filter(|&&th| tau2 >= th)
                .count();
            let half = 1i64 << (f.r.width() - 1);
            x = r
                .iter()
                .map(|&ri| ir.denoiser.table[bucket][(ri + half) as usize])
                .collect();
            layers.push(LayerTaps {
                e,
                w: i64::try_from(w).expect("W fits 64 bits"),
                v2_unfloored,
                v2,
                p: tp,
                d: td,
                rho: trho,
                r,
                tau2,
                bucket,
                x: x.clone(),
            });
        }
        let levels = ir.levels() as i32;
        let decisions = x
            .iter()
            .map(|&c| 2 * ir.slicer.iter().filter(|&&s| c >= s).count() as i32 - (levels - 1))
            .collect();
        out.push(VectorTaps {
            z,
            yy,
            layers,
            output: x,
            levels: decisions,
        });
    }
    (
        BlockTaps {
            g,
            trace,
            inv_trace,
            diag_inv,
        },
        out,
    )
}

fn fixed_seed(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x006b_6171_1016),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(fixed_seed(256))]

    /// Every tap of `run_block_codes` equals the reference, on random documents and codes.
    #[test]
    fn block_codes_equal_the_reference(seed in any::<u64>()) {
        block_codes_case(seed, None)?;
    }

    /// The same at N = 32 (a 16 × 16 complex net), where the products run on the 32-code
    /// row kernel, and at N = 15 (BPSK, M = 30 or 32: an odd number of 32-code rows of H̃ᵀ).
    #[test]
    fn block_codes_equal_the_reference_at_n32(seed in any::<u64>()) {
        block_codes_case(seed, Some(if seed % 4 == 0 { 15 } else { 32 }))?;
    }

    /// `detect_received` on a batch of blocks of random lengths (frames with equal H̃ and σ²
    /// form a block) gives the reference's decisions for every frame.
    #[test]
    fn detect_received_equals_the_reference(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let ir = draw_ir(&mut rng);
        let gi = GramInterpreter::new(ir.clone()).unwrap();
        let (m, n) = (ir.m, ir.n);
        let (hs, ys_step) = (2f64.powi(-ir.inputs.h.frac()), 2f64.powi(-ir.inputs.y.frac()));
        let (mut h, mut y, mut nv) = (Vec::new(), Vec::new(), Vec::new());
        let mut want = Vec::new();
        for _ in 0..rng.range(1, 8) {
            let len = rng.range(1, 40) as usize;
            let hc: Vec<i64> = (0..m * n).map(|_| rng.sym(ir.inputs.h.width())).collect();
            let yc: Vec<i64> =
                (0..len * m).map(|_| rng.sym(ir.inputs.y.width())).collect();
            let noise = 10f64.powf(-(rng.range(0, 30) as f64) / 10.0);
            let bin = ir.bin_of(noise as f32);
            for v in reference(&ir, &hc, &yc, bin).1 {
                want.extend(v.levels);
            }
            for _ in 0..len {
                h.extend(hc.iter().map(|&c| c as f64 * hs));
                nv.push(noise);
            }
            y.extend(yc.iter().map(|&c| c as f64 * ys_step));
        }
        let frames = nv.len();
        let rx = Received {
            modulation: ir.modulation,
            frames,
            m,
            n,
            h: &h,
            y: &y,
            noise_var: &nv,
        };
        let mut got = vec![0i32; frames * n];
        gi.detect_received(&rx, &mut got).unwrap();
        prop_assert_eq!(got, want);
    }
}

fn block_codes_case(seed: u64, n: Option<usize>) -> Result<(), TestCaseError> {
    let mut rng = Rng(seed);
    let ir = draw_ir_n(&mut rng, n);
    let gi = GramInterpreter::new(ir.clone()).unwrap();
    let (m, n) = (ir.m, ir.n);
    let hw = ir.inputs.h.width();
    let yw = ir.inputs.y.width();
    // Sometimes every entry of H̃ at the most negative code (the largest G and z).
    let extreme = rng.range(0, 5) == 0;
    let h: Vec<i64> = (0..m * n)
        .map(|_| {
            if extreme {
                -(1i64 << (hw - 1))
            } else {
                rng.code(hw)
            }
        })
        .collect();
    let t = rng.range(1, 20) as usize;
    let ys: Vec<i64> = (0..t * m).map(|_| rng.code(yw)).collect();
    let bin = rng.range(0, ir.snr_bins.count as i64 - 1) as usize;
    let got = gi.run_block_codes(&h, &ys, bin).unwrap();
    let want = reference(&ir, &h, &ys, bin);
    prop_assert_eq!(&got.0, &want.0);
    prop_assert_eq!(got.1.len(), t);
    for (k, (a, b)) in got.1.iter().zip(&want.1).enumerate() {
        prop_assert_eq!(a, b, "vector {}", k);
    }
    Ok(())
}

/// The random documents of the reference tests run both lane types of the interpreter: i32
/// (the formats keep every per-vector sum below 2^31) and i64.
#[test]
fn random_documents_cover_both_lane_types() {
    let mut rng = Rng(0x5eed_1616);
    let lanes: Vec<bool> = (0..64)
        .map(|_| GramInterpreter::new(draw_ir(&mut rng)).unwrap().lanes32())
        .collect();
    let narrow = lanes.iter().filter(|&&l| l).count();
    assert!(
        narrow > 0 && narrow < lanes.len(),
        "{narrow} of {} in i32",
        lanes.len()
    );
}

/// The worked example of docs/ir.md §10.7: QPSK, 1 × 1 antenna (M = N = 2), two layers of
/// two inner steps, two SNR bins, a two-bucket table.
pub(super) fn example_ir() -> GramIr {
    let f = |w, fr| QFormat::signed(w, fr).unwrap();
    let recip = |shift: u32, width: u32| Reciprocal {
        op: Divide::new(
            shift,
            1,
            RoundingMode::HalfUp,
            OverflowMode::SaturateSymmetric,
            width,
        )
        .unwrap(),
        divisor: Divisor::Clamped,
        format: f(width, shift as i32 - 6),
    };
    let layer = |gamma: i64| GramLayer {
        formats: LayerFormats {
            e: f(8, 5),
            p: f(8, 5),
            d: f(8, 5),
            r: f(4, 2),
            v2: f(12, 8),
            tau2: f(8, 6),
        },
        v2_floor: 1,
        delta: BinCoef {
            codes: vec![16, 2],
            frac: 6,
        },
        gamma: Coef {
            code: gamma,
            frac: 2,
        },
        tv: Coef { code: 8, frac: 3 },
        ts: BinCoef {
            codes: vec![32, 4],
            frac: 6,
        },
        steps: vec![
            InnerStep {
                omega: Coef { code: 7, frac: 3 },
                beta: Coef { code: 0, frac: 0 },
            },
            InnerStep {
                omega: Coef { code: 6, frac: 3 },
                beta: Coef { code: 2, frac: 3 },
            },
        ],
        bin_shift: None,
        g_inner: None,
    };
    GramIr {
        format: crate::document::IR_FORMAT.into(),
        version: GRAM_IR_VERSION,
        name: "example".into(),
        family: GramFamily::Cg,
        modulation: Modulation::Qpsk,
        nt: 1,
        nr: 1,
        m: 2,
        n: 2,
        snr_bins: SnrBins {
            min_db: 0.0,
            step_db: 10.0,
            count: 2,
        },
        inputs: Inputs {
            h: f(8, 5),
            y: f(8, 5),
        },
        state: f(4, 2),
        block: BlockStage {
            g: f(12, 6),
            inv_trace: recip(12, 12),
            diag_inv: recip(12, 12),
        },
        front: VectorFront {
            z: f(12, 6),
            yy: f(16, 8),
            noise: vec![128, 13],
        },
        layers: vec![layer(4), layer(3)],
        denoiser: Denoiser {
            thresholds: vec![16],
            representatives: vec![0.1, 0.5],
            table: vec![
                vec![-4, -4, -4, -4, -4, -4, -3, -1, 1, 3, 4, 4, 4, 4, 4, 4],
                vec![-4, -4, -3, -3, -2, -2, -1, 0, 0, 1, 2, 2, 3, 3, 4, 4],
            ],
        },
        slicer: vec![0],
    }
}

/// H̃ (row-major 2 × 2) and ỹ of the worked example, in codes.
pub(super) const EXAMPLE_H: [i64; 4] = [29, -9, 7, 22];
/// ỹ: one vector.
pub(super) const EXAMPLE_Y: [i64; 2] = [40, -21];

#[test]
fn worked_example_of_the_docs() {
    let ir = example_ir();
    ir.validate().unwrap();
    let gi = GramInterpreter::new(ir.clone()).unwrap();
    let (block, v) = gi.run_block_codes(&EXAMPLE_H, &EXAMPLE_Y, 1).unwrap();
    let want = reference(&ir, &EXAMPLE_H, &EXAMPLE_Y, 1);
    assert_eq!((&block, &v), (&want.0, &want.1));
    // The numbers of docs/ir.md §10.7.
    assert_eq!(
        block,
        BlockTaps {
            g: vec![56, -7, -7, 35],
            trace: 91,
            inv_trace: 45,
            diag_inv: vec![73, 117],
        }
    );
    // (e, W, v² before and after its floor, p, d, ρ, r, τ², bucket, x)
    type Layer = (
        [i64; 2],
        i64,
        i64,
        i64,
        [i64; 4],
        [i64; 4],
        [i64; 2],
        [i64; 2],
        i64,
        usize,
        [i64; 2],
    );
    let layer = |(e, w, v2_unfloored, v2, p, d, rho, r, tau2, bucket, x): Layer| LayerTaps {
        e: e.to_vec(),
        w,
        v2_unfloored,
        v2,
        p: p.to_vec(),
        d: d.to_vec(),
        rho: rho.to_vec(),
        r: r.to_vec(),
        tau2,
        bucket,
        x: x.to_vec(),
    };
    assert_eq!(
        v,
        vec![VectorTaps {
            z: vec![63, -51],
            yy: 510,
            layers: vec![
                layer((
                    [32, -25],
                    497,
                    349,
                    349,
                    [37, -46, 8, -8],
                    [32, -40, 38, -46],
                    [-1, 2],
                    [5, -6],
                    91,
                    1,
                    [3, -3]
                )),
                layer((
                    [8, -10],
                    47,
                    33,
                    33,
                    [9, -18, 1, -4],
                    [8, -16, 9, -19],
                    [-1, 0],
                    [4, -5],
                    12,
                    0,
                    [4, -4]
                )),
            ],
            output: vec![4, -4],
            levels: vec![1, -1],
        }]
    );
}

#[test]
fn combine_examples_of_the_docs() {
    // docs/fixed-point.md §7.1.
    let f = |w, fr| QFormat::signed(w, fr).unwrap();
    let c = |terms: &[(i128, i32)], out| combine(terms, out);
    assert_eq!(c(&[(5, 1), (3, 0)], f(8, 0)), 6);
    assert_eq!(c(&[(-5, 1)], f(8, 0)), -2);
    assert_eq!(c(&[(-7, 1)], f(8, 0)), -3);
    assert_eq!(c(&[(300, 0)], f(8, 0)), 127);
    assert_eq!(c(&[(-300, 0)], f(8, 0)), -127);
    assert_eq!(c(&[(3, -2)], f(8, 0)), 12);
    assert_eq!(c(&[(1, 4)], f(8, 2)), 0);
    assert_eq!(c(&[(2, 4)], f(8, 2)), 1);
    assert_eq!(c(&[], f(8, 0)), 0);
    // docs/fixed-point.md §7.2: the reciprocals at 0, at ties and at the limits.
    let op = |w| {
        Divide::new(
            12,
            1,
            RoundingMode::HalfUp,
            OverflowMode::SaturateSymmetric,
            w,
        )
        .unwrap()
    };
    assert_eq!(op(12).apply(1, 0), 2047);
    assert_eq!(op(16).apply(1, 0), 4096);
    assert_eq!(op(12).apply(1, 91), 45);
    assert_eq!(op(12).apply(1, 56), 73);
    assert_eq!(op(12).apply(1, 35), 117);
    assert_eq!(op(12).apply(1, 8192), 1);
    assert_eq!(op(12).apply(1, 8193), 0);
}

/// A version-3 document in bin b computes exactly what the version-2 document with the bin's
/// shifted formats computes (docs/ir.md §10.8), every tap, in every bin; and a version-3
/// document with all-zero shifts equals its version-2 original.
#[test]
fn bin_shift_equals_the_shifted_formats() {
    let mut rng = Rng(0x5eed);
    let mut checked = 0;
    while checked < 40 {
        let ir = draw_ir(&mut rng);
        if ir.layers[0].bin_shift.is_none() {
            continue;
        }
        checked += 1;
        let gi = GramInterpreter::new(ir.clone()).unwrap();
        let (m, n) = (ir.m, ir.n);
        let h: Vec<i64> = (0..m * n).map(|_| rng.sym(ir.inputs.h.width())).collect();
        let ys: Vec<i64> = (0..3 * m).map(|_| rng.sym(ir.inputs.y.width())).collect();
        for bin in 0..ir.snr_bins.count {
            let mut plain = ir.clone();
            plain.version = GRAM_IR_VERSION;
            for l in &mut plain.layers {
                l.formats = l.formats_at(bin);
                l.bin_shift = None;
            }
            // The plain document may break a bound only this bin's shifts reach; it never does
            // here, since every bin of the shifted one passed.
            let pi = GramInterpreter::new(plain).unwrap();
            assert_eq!(
                gi.run_block_codes(&h, &ys, bin).unwrap(),
                pi.run_block_codes(&h, &ys, bin).unwrap(),
                "bin {bin}"
            );
        }
        let mut zero = ir.clone();
        let mut orig = ir.clone();
        orig.version = GRAM_IR_VERSION;
        for (lz, lo) in zero.layers.iter_mut().zip(&mut orig.layers) {
            let bins = ir.snr_bins.count;
            lz.bin_shift = Some(BinShift {
                e: vec![0; bins],
                p: vec![0; bins],
                d: vec![0; bins],
            });
            lo.bin_shift = None;
        }
        if let (Ok(a), Ok(b)) = (GramInterpreter::new(zero), GramInterpreter::new(orig)) {
            for bin in 0..ir.snr_bins.count {
                assert_eq!(
                    a.run_block_codes(&h, &ys, bin).unwrap(),
                    b.run_block_codes(&h, &ys, bin).unwrap()
                );
            }
        }
    }
}

/// A version-2 document never writes `bin_shift` (its canonical text is unchanged), and a
/// version-3 one round-trips with it.
#[test]
fn bin_shift_serialization() {
    let ir = example_ir();
    let text = ir.to_json();
    assert!(!text.contains("bin_shift"));
    assert_eq!(GramIr::from_json(&text, "x").unwrap(), ir);
    let mut v3 = ir.clone();
    v3.version = GRAM_IR_VERSION_BIN_SHIFT;
    v3.layers[1].bin_shift = Some(BinShift {
        e: vec![0, 2],
        p: vec![-1, 1],
        d: vec![0, 1],
    });
    let text = v3.to_json();
    assert!(text.contains("\"bin_shift\""));
    assert_eq!(GramIr::from_json(&text, "x").unwrap(), v3);
    match AnyIr::from_json(&text, "x").unwrap() {
        AnyIr::V2(g) => assert_eq!(g, v3),
        _ => panic!("a version-3 document loaded as another version"),
    }
}

/// The worked example with layer 0's e one bit finer in bin 1 (e at (8, 6)): pinned against
/// the hand computation of docs/ir.md §10.8.
#[test]
fn bin_shift_worked_example() {
    let mut ir = example_ir();
    ir.version = GRAM_IR_VERSION_BIN_SHIFT;
    ir.layers[0].bin_shift = Some(BinShift {
        e: vec![0, 1],
        p: vec![0, 0],
        d: vec![0, 0],
    });
    let gi = GramInterpreter::new(ir.clone()).unwrap();
    let (_, v) = gi.run_block_codes(&EXAMPLE_H, &EXAMPLE_Y, 1).unwrap();
    // e = combine((z, 6), (−Gx = 0, 8); (8, 6)): F = 8, e_0 = ⌊(252 + 2)/4⌋ = 63,
    // e_1 = ⌊(−204 + 2)/4⌋ = −51 (−50.5 → −51 is the floor of −50.5 + ½ = −50? no: −202/4).
    assert_eq!(v[0].layers[0].e, vec![63, -51]);
    // p_0 = combine((D_0·e_0 = 73·63 = 4599, 6 + 6), (0, ·); (8, 5)): F = 12, s = 7,
    // ⌊(4599 + 64)/128⌋ = 36.
    assert_eq!(v[0].layers[0].p[0], 36);
    // Bin 0 has no shift: the unshifted example's numbers.
    let (_, v0) = gi.run_block_codes(&EXAMPLE_H, &EXAMPLE_Y, 0).unwrap();
    let plain = GramInterpreter::new(example_ir()).unwrap();
    assert_eq!(
        v0,
        plain.run_block_codes(&EXAMPLE_H, &EXAMPLE_Y, 0).unwrap().1
    );
    assert_eq!(v, reference(&ir, &EXAMPLE_H, &EXAMPLE_Y, 1).1);
}

/// Malformed per-bin shifts: each error names the field.
#[test]
fn bin_shift_errors_name_the_field() {
    let base = || {
        let mut ir = example_ir();
        ir.version = GRAM_IR_VERSION_BIN_SHIFT;
        ir.layers[1].bin_shift = Some(BinShift {
            e: vec![0, 1],
            p: vec![0, 1],
            d: vec![0, 1],
        });
        ir
    };
    let field = |ir: &GramIr| match ir.validate() {
        Err(IrError::Invalid { field, .. }) => field,
        other => panic!("expected an invalid field, got {other:?}"),
    };
    base().validate().unwrap();
    let mut v2 = base();
    v2.version = GRAM_IR_VERSION;
    assert_eq!(field(&v2), "layers[1].bin_shift");
    let mut short = base();
    short.layers[1].bin_shift.as_mut().unwrap().p = vec![0];
    assert_eq!(field(&short), "layers[1].bin_shift.p");
    let mut big = base();
    big.layers[1].bin_shift.as_mut().unwrap().d[1] = 25;
    assert_eq!(field(&big), "layers[1].bin_shift.d[1]");
    let mut far = base();
    far.layers[1].formats.e = QFormat::signed(8, 50).unwrap();
    far.layers[1].bin_shift.as_mut().unwrap().e[1] = 20;
    // 50 + 20 is outside −64..=64.
    assert_eq!(field(&far), "layers[1].bin_shift.e[1]");
    let mut v4 = base();
    v4.version = 4;
    assert_eq!(field(&v4), "version");
    // An unknown field inside bin_shift is refused while parsing, naming it.
    let text = base()
        .to_json()
        .replacen("\"e\": [", "\"q\": [0, 0], \"e\": [", 1);
    let err = GramIr::from_json(&text, "x").unwrap_err().to_string();
    assert!(err.contains("bin_shift"), "{err}");
}

/// `narrow_g` is `combine` of one term into the inner G's format (docs/ir.md §10.9): rounded
/// half-up and saturated symmetrically, on every 12-bit code at every shift.
#[test]
fn narrow_g_is_combine_into_the_inner_format() {
    let g = QFormat::signed(12, 7).unwrap();
    for width in 2..12 {
        let layer = GramLayer {
            g_inner: Some(width),
            ..example_ir().layers[0].clone()
        };
        let gi = layer.inner_g(g);
        assert_eq!(gi.width(), width);
        assert_eq!(gi.frac(), 7 - (12 - width) as i32);
        let s = layer.inner_g_shift(g);
        for c in -2047..=2047i64 {
            assert_eq!(
                super::narrow_g(c, s, width),
                combine(&[t(c, 7)], gi),
                "code {c}, width {width}"
            );
        }
    }
}

/// `g_inner` is absent from older documents (and not written when absent), round-trips when
/// present, and a width outside 2..block.g.width is refused naming the field.
#[test]
fn g_inner_serialization_and_errors() {
    let ir = example_ir();
    let text = ir.to_json();
    assert!(!text.contains("g_inner"));
    let mut narrow = ir.clone();
    narrow.layers[1].g_inner = Some(6);
    let back = GramIr::from_json(&narrow.to_json(), "x").unwrap();
    assert_eq!(back, narrow);
    for bad in [1, 12, 13] {
        let mut w = ir.clone();
        w.layers[1].g_inner = Some(bad);
        let e = w.validate().unwrap_err().to_string();
        assert!(e.contains("layers[1].g_inner"), "{e}");
    }
    assert_eq!(narrow.first_g_inner(), Some(1));
    assert_eq!(ir.first_g_inner(), None);
}
