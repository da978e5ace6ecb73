//! Tests of the version-5 (ep) document and golden model: an independent reference of
//! docs/ir.md §12.3 (and §11.3's chain) written from the text, adversarial channels at the
//! format limits (the interpreter's debug assertions check every accumulator against 2^62),
//! malformed documents and mutated JSON.

use proptest::prelude::*;

use super::ep::{
    EP_IR_VERSION, EpFamily, EpFormats, EpInterpreter, EpInverse, EpIr, EpUpdate, Moments,
};
use super::{AnyIr, BinCoef, Coef, Divisor, Reciprocal};
use crate::document::Inputs;
use crate::fixed::{Divide, OverflowMode, QFormat, RoundingMode, max_code};
use crate::modulation::Modulation;
use crate::vocab::SnrBins;

/// A small deterministic generator (splitmix64) for the test documents and codes.
struct ChaCha8Rng(u64);

impl ChaCha8Rng {
    fn seed_from_u64(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in lo..=hi.
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo) as u64 + 1)) as i64
    }
}

fn f(w: u32, fr: i32) -> QFormat {
    QFormat::signed(w, fr).unwrap()
}

fn recip(width: u32, frac: i32, divisor_frac: i32, d_min: i64, divisor: Divisor) -> Reciprocal {
    Reciprocal {
        op: Divide::new(
            (frac + divisor_frac) as u32,
            d_min,
            RoundingMode::HalfUp,
            OverflowMode::SaturateSymmetric,
            width,
        )
        .unwrap(),
        divisor,
        format: f(width, frac),
    }
}

/// A small valid document drawn from `seed`: QPSK or 16-QAM, `nt = nr` antennas, three SNR
/// bins, `layers` layers, 1..=6 buckets of random table codes, random floors and β.
fn example(nt: usize, modulation: Modulation, layers: usize, seed: u64) -> EpIr {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = modulation.real_dims_per_symbol() * nt;
    let g = f(16, 10);
    let ld = f(24, 12);
    let q = f(24, 14);
    let load = f(24, 12);
    let c = f(24, 20);
    let var = f(16, 12);
    let state = f(8, 5);
    let t = f(6, 3);
    let bins = 3;
    let buckets = rng.int(1, 6) as usize;
    let mut thresholds: Vec<i64> = (1..buckets).map(|_| rng.int(0, (1 << 16) - 1)).collect();
    thresholds.sort_unstable();
    let entries = 1usize << t.width();
    let xq = max_code(state.width());
    let vq = max_code(var.width());
    let updates = (1..layers)
        .map(|_| {
            let beta = rng.int(1, 1 << 15);
            EpUpdate {
                floor: rng.int(1, 199),
                beta: Coef {
                    code: beta,
                    frac: 15,
                },
                keep: Coef {
                    code: (1 << 15) - beta,
                    frac: 15,
                },
            }
        })
        .collect();
    let levels = modulation.levels_per_dim();
    let step = 2f64.powi(-state.frac());
    EpIr {
        format: crate::IR_FORMAT.into(),
        version: EP_IR_VERSION,
        name: "ep-test".into(),
        family: EpFamily::Ep,
        modulation,
        nt,
        nr: nt,
        m: 2 * nt,
        n,
        snr_bins: SnrBins {
            min_db: 10.0,
            step_db: 5.0,
            count: bins,
        },
        inputs: Inputs {
            h: f(8, 6),
            y: f(8, 4),
        },
        state,
        g,
        z: f(16, 8),
        s2: BinCoef {
            codes: (0..bins).map(|_| rng.int(1, (1 << 12) - 1)).collect(),
            frac: 14,
        },
        init_load: (0..bins).map(|_| rng.int(0, (1 << 10) - 1)).collect(),
        inverse: EpInverse {
            ld,
            pivot_inv: recip(24, 12, ld.frac(), 1, Divisor::Clamped),
            l: f(24, 20),
            w: f(24, 20),
            v: f(24, 12),
            q,
        },
        formats: EpFormats {
            load,
            gam: f(24, 12),
            mu: f(24, 14),
            c,
            c_inv: recip(24, 10, c.frac(), rng.int(1, 49), Divisor::Clamped),
            tn: f(24, 14),
            t,
            h: f(24, 16),
            var,
            v_inv: recip(24, 10, var.frac(), 1, Divisor::Proved),
            q_inv: recip(24, 10, q.frac(), 1, Divisor::Clamped),
        },
        layers,
        updates,
        moments: Moments {
            thresholds,
            representatives: (0..buckets).map(|j| j as f64).collect(),
            mean: (0..buckets)
                .map(|_| (0..entries).map(|_| rng.int(-xq, xq)).collect())
                .collect(),
            var: (0..buckets)
                .map(|_| (0..entries).map(|_| rng.int(0, vq)).collect())
                .collect(),
        },
        slicer: (1..levels)
            .map(|j| (((2 * j) as f64 - levels as f64) / step).ceil() as i64)
            .collect(),
    }
}

// ---- The reference: docs/ir.md §12.3 and §11.3, written again from the text. ----

/// §10.3's combine: F = max(out frac, term fracs), S = Σ v·2^(F − f), round half-up by
/// F − out frac, saturate symmetrically to the width.
fn rq(terms: &[(i128, i32)], out: QFormat) -> i64 {
    let big = terms.iter().map(|t| t.1).fold(out.frac(), i32::max);
    let s: i128 = terms.iter().map(|&(v, fr)| v * (1i128 << (big - fr))).sum();
    let sh = big - out.frac();
    let r = if sh == 0 {
        s
    } else {
        (s + (1i128 << (sh - 1))).div_euclid(1i128 << sh)
    };
    let qm = i128::from(max_code(out.width()));
    r.clamp(-qm, qm) as i64
}

/// round_half_up(2^shift / max(d, d_min)), saturated to ±Q(out_width).
fn rc(r: &Reciprocal, d: i64) -> i64 {
    let den = i128::from(d.max(r.op.d_min()));
    let num = 1i128 << r.op.shift();
    let q = num.div_euclid(den);
    let rem = num.rem_euclid(den);
    let q = if 2 * rem >= den { q + 1 } else { q };
    let qm = i128::from(max_code(r.op.out_width()));
    q.clamp(-qm, qm) as i64
}

fn w(v: i64) -> i128 {
    i128::from(v)
}

/// §11.3's LDLᵀ chain on A (full n × n, at `af`): P (n × n).
fn ref_inverse(ir: &EpIr, a: &[i64], af: i32) -> Vec<i64> {
    let n = ir.n;
    let k = &ir.inverse;
    let (ldf, lf, wf, vf) = (k.ld.frac(), k.l.frac(), k.w.frac(), k.v.frac());
    let pif = k.pivot_inv.format.frac();
    let mut e = vec![0i64; n * n];
    let mut l = vec![0i64; n * n];
    let mut iota = vec![0i64; n];
    for c in 0..n {
        for i in c..n {
            let s: i128 = (0..c).map(|kk| w(e[i * n + kk]) * w(l[c * n + kk])).sum();
            e[i * n + c] = rq(&[(w(a[i * n + c]), af), (-s, ldf + lf)], k.ld);
        }
        iota[c] = rc(&k.pivot_inv, e[c * n + c]);
        for i in c + 1..n {
            l[i * n + c] = rq(&[(w(e[i * n + c]) * w(iota[c]), ldf + pif)], k.l);
        }
    }
    let mut wm = vec![0i64; n * n];
    for c in 0..n {
        wm[c * n + c] = 1 << wf;
        for i in c + 1..n {
            let s: i128 = (c..i).map(|kk| w(l[i * n + kk]) * w(wm[kk * n + c])).sum();
            wm[i * n + c] = rq(&[(-s, lf + wf)], k.w);
        }
    }
    let mut v = vec![0i64; n * n];
    for r in 0..n {
        for c in 0..=r {
            v[r * n + c] = rq(&[(w(iota[r]) * w(wm[r * n + c]), pif + wf)], k.v);
        }
    }
    let mut p = vec![0i64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: i128 = (i..n).map(|kk| w(wm[kk * n + i]) * w(v[kk * n + j])).sum();
            let x = rq(&[(s, wf + vf)], k.q);
            p[i * n + j] = x;
            p[j * n + i] = x;
        }
    }
    p
}

/// The output m codes of every vector of one block, by §12.3.
fn reference(ir: &EpIr, h: &[i64], ys: &[i64], bin: usize) -> Vec<i64> {
    let (m, n) = (ir.m, ir.n);
    let fm = &ir.formats;
    let (fh, fy) = (ir.inputs.h.frac(), ir.inputs.y.frac());
    let mut g = vec![0i64; n * n];
    for i in 0..n {
        for j in 0..n {
            let s: i128 = (0..m).map(|r| w(h[r * n + i]) * w(h[r * n + j])).sum();
            g[i * n + j] = rq(&[(s, 2 * fh)], ir.g);
        }
    }
    let fa = fm.load.frac();
    let ga = fa - ir.g.frac();
    let (s, fs) = (ir.s2.codes[bin], ir.s2.frac);
    let (qf, zf, gmf, muf, tnf) = (
        ir.inverse.q.frac(),
        ir.z.frac(),
        fm.gam.frac(),
        fm.mu.frac(),
        fm.tn.frac(),
    );
    let mut out = Vec::new();
    for y in ys.chunks(m) {
        let z: Vec<i64> = (0..n)
            .map(|j| {
                let s: i128 = (0..m).map(|r| w(h[r * n + j]) * w(y[r])).sum();
                rq(&[(s, fh + fy)], ir.z)
            })
            .collect();
        let mut ell = vec![ir.init_load[bin]; n];
        let mut gam = vec![0i64; n];
        let mut mm = vec![0i64; n];
        for k in 0..ir.layers {
            let mut a = vec![0i64; n * n];
            for i in 0..n {
                for c in 0..n {
                    a[i * n + c] = g[i * n + c] * (1 << ga) + if i == c { ell[i] } else { 0 };
                }
            }
            let p = ref_inverse(ir, &a, fa);
            let mu: Vec<i64> = (0..n)
                .map(|i| {
                    let sz: i128 = (0..n).map(|j| w(p[i * n + j]) * w(z[j])).sum();
                    let sg: i128 = (0..n).map(|j| w(p[i * n + j]) * w(gam[j])).sum();
                    rq(&[(sz, qf + zf), (sg, qf + gmf)], fm.mu)
                })
                .collect();
            let (old_l, old_g) = (ell.clone(), gam.clone());
            for i in 0..n {
                let q = p[i * n + i];
                let c = rq(&[(1, 0), (-w(q) * w(old_l[i]), qf + fa)], fm.c);
                let ic = rc(&fm.c_inv, c);
                let u = rq(&[(w(mu[i]), muf), (-w(q) * w(old_g[i]), qf + gmf)], fm.tn);
                let tc = rq(&[(w(u) * w(ic), tnf + fm.c_inv.format.frac())], fm.t);
                let sq = rq(&[(w(s) * w(q), fs + qf)], fm.h);
                let hc = rq(
                    &[(w(sq) * w(ic), fm.h.frac() + fm.c_inv.format.frac())],
                    fm.h,
                );
                let j = ir.moments.thresholds.iter().filter(|&&th| hc >= th).count();
                let at = (tc + (1 << (fm.t.width() - 1))) as usize;
                mm[i] = ir.moments.mean[j][at];
                let v = ir.moments.var[j][at];
                if k + 1 == ir.layers {
                    continue;
                }
                let up = &ir.updates[k];
                let vp = v.max(up.floor);
                let iv = rc(&fm.v_inv, vp);
                let iq = rc(&fm.q_inv, q);
                let cp = c.max(fm.c_inv.op.d_min());
                let vif = fm.v_inv.format.frac();
                let qif = fm.q_inv.format.frac();
                let mut lh = rq(
                    &[
                        (w(s) * w(iv), fs + vif),
                        (-w(cp) * w(iq), fm.c.frac() + qif),
                    ],
                    fm.load,
                );
                let mut gh = rq(
                    &[
                        (w(s) * w(mm[i]) * w(iv), fs + ir.state.frac() + vif),
                        (-w(u) * w(iq), tnf + qif),
                    ],
                    fm.gam,
                );
                if lh < 0 {
                    lh = old_l[i];
                    gh = old_g[i];
                }
                let (b, kp) = (up.beta, up.keep);
                ell[i] = rq(
                    &[
                        (w(b.code) * w(lh), b.frac + fa),
                        (w(kp.code) * w(old_l[i]), kp.frac + fa),
                    ],
                    fm.load,
                );
                gam[i] = rq(
                    &[
                        (w(b.code) * w(gh), b.frac + gmf),
                        (w(kp.code) * w(old_g[i]), kp.frac + gmf),
                    ],
                    fm.gam,
                );
            }
        }
        out.extend_from_slice(&mm);
    }
    out
}

fn check_against_reference(ir: &EpIr, h: &[i64], ys: &[i64], bin: usize) {
    let golden = EpInterpreter::new(ir.clone()).expect("validates");
    let want = reference(ir, h, ys, bin);
    let got = golden.outputs_block_codes(h, ys, bin).expect("runs");
    assert_eq!(got, want, "golden model vs the §12.3 reference");
    let (_, taps) = golden.run_block_codes(h, ys, bin).expect("runs");
    let n = ir.n;
    for (v, tv) in taps.iter().enumerate() {
        assert_eq!(tv.layers.len(), ir.layers);
        assert_eq!(tv.layers[ir.layers - 1].m, want[v * n..(v + 1) * n]);
        let levels: Vec<i32> = want[v * n..(v + 1) * n]
            .iter()
            .map(|&c| ir.decide(c))
            .collect();
        assert_eq!(tv.levels, levels);
    }
}

fn random_codes(rng: &mut ChaCha8Rng, len: usize, width: u32) -> Vec<i64> {
    let q = max_code(width);
    (0..len).map(|_| rng.int(-q, q)).collect()
}

#[test]
fn example_validates_round_trips_and_loads_as_version_5() {
    let ir = example(2, Modulation::Qam16, 3, 1);
    ir.validate().expect("valid");
    let text = ir.to_json();
    assert_eq!(EpIr::from_json(&text, "x").unwrap(), ir);
    match AnyIr::from_json(&text, "x").unwrap() {
        AnyIr::Ep(e) => assert_eq!(*e, ir),
        _ => panic!("a v5 document loaded as another version"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Small N (QPSK and 16-QAM, 1..=3 antennas), 1..=4 layers, block lengths 1..=4, every
    /// bin, random documents and codes: the golden model is bit-exact with the reference.
    #[test]
    fn golden_model_equals_the_reference(
        nt in 1usize..=3, qam in any::<bool>(), layers in 1usize..=4, block in 1usize..=4,
        bin in 0usize..3, seed in any::<u64>(),
    ) {
        let modulation = if qam { Modulation::Qam16 } else { Modulation::Qpsk };
        let ir = example(nt, modulation, layers, seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
        // Channel codes of a realistic scale (entries ≈ ±0.5) and at full range.
        let h: Vec<i64> = if seed % 3 == 0 {
            random_codes(&mut rng, ir.m * ir.n, ir.inputs.h.width())
        } else {
            (0..ir.m * ir.n).map(|_| rng.int(-40, 40)).collect()
        };
        let ys = random_codes(&mut rng, block * ir.m, ir.inputs.y.width());
        check_against_reference(&ir, &h, &ys, bin);
    }

    /// Mutated documents are refused or run, never panic.
    #[test]
    fn mutated_json_never_panics(seed in any::<u64>(), at in 0usize..4000, byte in any::<u8>()) {
        let text = example(1, Modulation::Qpsk, 2, seed).to_json();
        let mut bytes = text.into_bytes();
        let i = at % bytes.len();
        bytes[i] = byte;
        if let Ok(mutated) = String::from_utf8(bytes)
            && let Ok(AnyIr::Ep(ir)) = AnyIr::from_json(&mutated, "m")
        {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let h = random_codes(&mut rng, ir.m * ir.n, ir.inputs.h.width());
            let ys = random_codes(&mut rng, ir.m, ir.inputs.y.width());
            let golden = EpInterpreter::new(*ir).expect("validated");
            let _ = golden.outputs_block_codes(&h, &ys, 0);
        }
    }
}

/// H̃ = 0, H̃ at ±Q, ỹ at ±Q, every bin, 16-QAM with 4 antennas (N = 8): the debug assertions
/// (every aligned sum below 2^62, table codes in range) hold and the reference agrees.
#[test]
fn adversarial_channels_stay_in_range() {
    let ir = example(4, Modulation::Qam16, 4, 7);
    let (mm, n) = (ir.m, ir.n);
    let qh = max_code(ir.inputs.h.width());
    let qy = max_code(ir.inputs.y.width());
    let cases: Vec<(Vec<i64>, Vec<i64>)> = vec![
        (vec![0; mm * n], vec![qy; 2 * mm]),
        (vec![qh; mm * n], vec![qy; mm]),
        (vec![-qh; mm * n], vec![-qy; mm]),
        (
            (0..mm * n)
                .map(|i| if i % 3 == 0 { qh } else { -qh })
                .collect(),
            (0..mm).map(|i| if i % 2 == 0 { qy } else { -qy }).collect(),
        ),
        // A rank-one channel: A is G + diag(ℓ) with G singular.
        (vec![1; mm * n], vec![1; mm]),
    ];
    for bin in 0..ir.snr_bins.count {
        for (h, ys) in &cases {
            check_against_reference(&ir, h, ys, bin);
        }
    }
}

/// Each malformed document is refused with an error naming the field.
#[test]
fn malformed_documents_name_the_field() {
    let base = example(2, Modulation::Qpsk, 3, 3);
    let refuse = |ir: EpIr, field: &str| {
        let e = ir.validate().expect_err(field).to_string();
        assert!(e.contains(field), "{field}: {e}");
    };
    let mut ir = base.clone();
    ir.moments.mean[0].pop();
    refuse(ir, "moments.mean[0]");
    let mut ir = base.clone();
    ir.moments.var.pop();
    refuse(ir, "moments.var");
    let mut ir = base.clone();
    ir.moments.var[0][3] = -1;
    refuse(ir, "moments.var[0][3]");
    let mut ir = base.clone();
    ir.formats.t = f(13, 3);
    refuse(ir, "formats.t.width");
    let mut ir = base.clone();
    ir.formats.c_inv.divisor = Divisor::Proved;
    refuse(ir, "formats.c_inv.divisor");
    let mut ir = base.clone();
    ir.formats.q_inv.divisor = Divisor::Proved;
    refuse(ir, "formats.q_inv.divisor");
    let mut ir = base.clone();
    ir.updates[0].floor = 0;
    refuse(ir, "formats.v_inv.divisor");
    let mut ir = base.clone();
    ir.updates.pop();
    refuse(ir, "updates");
    let mut ir = base.clone();
    ir.updates[1].beta.code = -1;
    refuse(ir, "updates[1].beta.code");
    let mut ir = base.clone();
    ir.formats.load = f(24, 9);
    refuse(ir, "formats.load.frac");
    let mut ir = base.clone();
    ir.init_load.push(0);
    refuse(ir, "init_load");
    let mut ir = base.clone();
    ir.s2.codes[1] = -5;
    refuse(ir, "s2.codes[1]");
    let mut ir = base.clone();
    ir.inverse.w = f(24, 23);
    refuse(ir, "inverse.w.frac");
    let mut ir = base.clone();
    ir.formats.v_inv.format = f(24, 11);
    refuse(ir, "formats.v_inv.format.frac");
    let mut ir = base.clone();
    ir.version = 4;
    refuse(ir, "version");
    let mut ir = base.clone();
    ir.layers = 0;
    refuse(ir, "layers");
    let mut ir = base.clone();
    ir.inverse.ld = f(32, 12);
    ir.inverse.l = f(32, 20);
    refuse(ir, "inverse.ld");
    // Unknown fields and wrong types are refused by the parser with the JSON path.
    let text = base.to_json();
    let bad = text.replacen("\"layers\":", "\"extra\": 1,\n  \"layers\":", 1);
    let e = AnyIr::from_json(&bad, "x")
        .expect_err("unknown field")
        .to_string();
    assert!(e.contains("extra"), "{e}");
    let bad = text.replacen("\"family\": \"ep\"", "\"family\": \"oamp\"", 1);
    let e = AnyIr::from_json(&bad, "x").expect_err("family").to_string();
    assert!(e.contains("family"), "{e}");
    let bad = text.replacen("\"floor\":", "\"floor\": \"x\", \"f\":", 1);
    assert!(AnyIr::from_json(&bad, "x").is_err());
}

/// Versions 1–4 still dispatch as before (a v5 field set does not change their loading).
#[test]
fn a_v5_document_with_version_4_is_not_an_ep_document() {
    let text = example(1, Modulation::Qpsk, 2, 9).to_json().replacen(
        "\"version\": 5",
        "\"version\": 4",
        1,
    );
    let e = AnyIr::from_json(&text, "x")
        .expect_err("v4 parser")
        .to_string();
    assert!(!e.is_empty());
}
