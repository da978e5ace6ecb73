//! The energy models against hand-computed cases (docs/energy.md).

use std::collections::BTreeMap;

use super::*;

fn fixture(name: &str) -> Ir {
    let path = format!(
        "{}/../codegen/tests/fixtures/{name}.ir.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    Ir::from_json(&text, &path).unwrap()
}

fn close(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= rel * want.abs().max(1e-12)
}

/// Sums the counts of `counts` per operation over all stages and per-vector only.
fn totals(counts: &Counts) -> BTreeMap<String, u64> {
    let mut t = BTreeMap::new();
    for c in &counts.ops {
        assert!(!c.per_block, "a kaq design has no per-block stage");
        let key = match c.op {
            Op::Mul { a, b } => format!("mul {a}x{b}"),
            Op::Add { w } => format!("add {w}"),
            Op::Read { bits } => format!("read {bits}"),
            Op::FMul => "fmul".into(),
            Op::FAdd => "fadd".into(),
        };
        *t.entry(key).or_insert(0) += c.count;
    }
    t
}

#[test]
fn multiplier_and_mac_fits_at_the_quoted_points() {
    // The quoted figures: 0.20 pJ at 8 bits, 3.1 pJ at 32.
    assert!((Horowitz45::mul_square(8.0) - 0.20).abs() < 0.005);
    assert!((Horowitz45::mul_square(32.0) - 3.1).abs() < 0.05);
    // An a×b multiply is priced at √(ab): 8×32 is the 16-bit multiplier.
    assert!(close(
        Horowitz45::mul(8, 32),
        Horowitz45::mul_square(16.0),
        1e-12
    ));
    assert!(close(Horowitz45::add(32), 0.1, 1e-12));
    // Eq. 9: E_MAC(16) = α, and each halving of Q divides it by 2^β.
    let p = PaperModel::default();
    assert!(close(p.e_mac(16.0), 0.86, 1e-12));
    assert!(close(p.e_mac(8.0), 0.86 / 2f64.powf(1.9), 1e-12));
    assert!(close(PaperModel::parallel_units(16.0), 64.0, 1e-12));
    assert!(close(PaperModel::parallel_units(8.0), 32.0, 1e-12));
}

#[test]
fn sram_size_classes() {
    assert!(close(
        Horowitz45::read_per_bit(8 * 8192),
        10.0 / 64.0,
        1e-12
    ));
    assert!(close(
        Horowitz45::read_per_bit(8 * 8192 + 8),
        20.0 / 64.0,
        1e-12
    ));
    assert!(close(
        Horowitz45::read_per_bit(8 << 20),
        100.0 / 64.0,
        1e-12
    ));
    assert!(close(Horowitz45::read_per_bit((8 << 20) + 8), 20.3, 1e-12));
}

#[test]
fn paper_accelerator_terms_by_hand() {
    // N_c = 1000, N_a = 10, N_w = 100, Q = 16: E_MAC = E_L = 0.86, E_M = 1.72, √p = 8.
    let [c, w, a] = PaperModel::default().accelerator(1000.0, 10.0, 100.0, 16.0);
    assert!(close(c, 0.86 * 1030.0, 1e-12)); // eq. 8
    assert!(close(w, 1.72 * 100.0 + 0.86 * 125.0, 1e-12)); // eq. 10
    assert!(close(a, 2.0 * 1.72 * 10.0 + 0.86 * 125.0, 1e-12)); // eq. 11
    let [m, l] = PaperModel::default().baseline(1000.0, 16.0);
    assert!(close(m, 860.0, 1e-12)); // eq. 14, first term
    assert!(close(l, 107.5, 1e-12)); // eq. 14, local buffer
}

#[test]
fn paper_table_one_zero_forcing() {
    // Table I: N_T = 64, N_U = 4; eq. 13 gives 8·16·64 + 8/3·64 real multiplies, and eq. 14
    // at Q = 16 the 0.008 µJ the table states (to its one significant digit).
    let nc = paper_zf_mults(64.0, 4.0);
    assert!(close(nc, 8192.0 + 512.0 / 3.0, 1e-12));
    let [m, l] = PaperModel::default().baseline(nc, 16.0);
    let uj = (m + l) * 1e-6;
    assert!((0.0075..0.0085).contains(&uj), "{uj} µJ");
}

#[test]
fn paper_wmmse_count_per_iteration() {
    // Eq. 12 at N_T = 64, N_U = 4, one iteration, term by term.
    let want = 8.0 / 3.0 * 262_144.0 * 4.0
        + 4.0 * 4096.0 * 4.0
        + 4.0 * 64.0 * (4.0 * 16.0 + 8.0)
        + 64.0
        + 56.0 / 3.0 * 4.0;
    assert!(close(paper_wmmse_mults(64.0, 4.0, 1.0), want, 1e-12));
    assert!(close(
        paper_wmmse_mults(64.0, 4.0, 92.8),
        92.8 * want,
        1e-12
    ));
}

#[test]
fn newton_expansion() {
    let ops = BaselineOps {
        mults: 10,
        adds: 7,
        recips: 2,
        sqrts: 3,
        tables: 4,
    };
    // 16-bit fixed point: one Newton step from the 8-bit seed.
    assert_eq!(ops.expanded(Arith::fixed(16)), (10 + 4 + 12, 7 + 2 + 3, 9));
    // 8 bits: the seed suffices, a square root is still x·y.
    assert_eq!(ops.expanded(Arith::fixed(8)), (10 + 3, 7, 9));
    // f32: 24 significand bits, two steps.
    assert_eq!(ops.expanded(Arith::F32), (10 + 8 + 21, 7 + 4 + 6, 9));
}

#[test]
fn baseline_counts_and_both_models() {
    // 100 multiplies and 50 adds per channel block, 20 and 10 per vector, 16-bit fixed
    // point, a 1 KB working set.
    let pb = BaselineOps {
        mults: 100,
        adds: 50,
        ..BaselineOps::default()
    };
    let pv = BaselineOps {
        mults: 20,
        adds: 10,
        ..BaselineOps::default()
    };
    let c = Counts::baseline("b", 4, Arith::fixed(16), pb, pv, 8192);
    let e = c.energy(10);
    // Per vector: 20 + 100/10 multiplies, 10 + 50/10 adds, one 16-bit read per multiply.
    assert!(close(e.mults, 30.0, 1e-12));
    assert!(close(e.adds, 15.0, 1e-12));
    assert!(close(e.read_bits, 30.0 * 16.0, 1e-12));
    let h = 30.0 * Horowitz45::mul_square(16.0) + 15.0 * 0.003125 * 24.0 + 480.0 * 10.0 / 64.0;
    assert!(close(e.horowitz.pj_per_vector, h, 1e-12));
    assert!(close(e.horowitz.pj_per_bit, h / 4.0, 1e-12));
    let p = 30.0 * 0.86 * (1.0 + 1.0 / 8.0);
    assert!(close(e.paper.pj_per_vector, p, 1e-12));
    assert!(close(e.paper_terms.weights_pj, 0.0, 0.0));
    // f32: the 45 nm float multiply and add.
    let f = Counts::baseline("f", 4, Arith::F32, BaselineOps::default(), pv, 8192).energy(1);
    let h = 20.0 * 3.7 + 10.0 * 0.9 + 20.0 * 32.0 * 10.0 / 64.0;
    assert!(close(f.horowitz.pj_per_vector, h, 1e-12));
    assert!(close(
        f.paper.pj_per_vector,
        20.0 * 0.86 * 2f64.powf(1.9) * (1.0 + 1.0 / 128f64.sqrt()),
        1e-12
    ));
}

/// The 1×1 QPSK PGD fixture (m = n = 2, two layers, zero init), counted by hand from its
/// JSON with the rules of docs/energy.md §3.
#[test]
fn counts_of_a_small_ir_by_hand() {
    let ir = fixture("snap-pgd-qpsk-1x1");
    let c = Counts::from_ir(&ir);
    let want: BTreeMap<String, u64> = [
        // Multiplies: layer 1 g H·e (8×12, 4), update g_coef·g (12×12, 2), out (23×24, 2);
        // layer 2 e H·x (8×4, 4), e.mult·A (12×24, 2), g (8×12, 4), update x1·x (24×4, 2),
        // g_coef·g (16×12, 2), out (28×24, 2).
        ("mul 8x12", 8),
        ("mul 12x12", 2),
        ("mul 23x24", 2),
        ("mul 8x4", 4),
        ("mul 12x24", 2),
        ("mul 24x4", 2),
        ("mul 16x12", 2),
        ("mul 28x24", 2),
        // Adds: e's subtract and narrowing (13), g's sums, rounding (20) and narrowing, the
        // update's sum (28), soft threshold 3 per entry (23, 28), out's rounding and
        // narrowing, the slicer's comparisons (5).
        ("add 13", 8),
        ("add 20", 8),
        ("add 23", 6),
        ("add 47", 2),
        ("add 8", 2),
        ("add 12", 2),
        ("add 36", 4),
        ("add 14", 2),
        ("add 28", 8),
        ("add 52", 2),
        ("add 7", 2),
        ("add 5", 2),
        // Reads: y (10) per e stage, H (8) per pass over it, e and g (12), coefficients,
        // the 4-bit state, the slicer's threshold (5).
        ("read 10", 4),
        ("read 12", 9),
        ("read 8", 12),
        ("read 24", 4),
        ("read 4", 4),
        ("read 16", 1),
        ("read 5", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(totals(&c), want);
    assert_eq!(c.bits_per_vector, 2);
    assert_eq!(c.kind, Kind::Accelerator);
    // Two frames of H (4·8) and y (2·10), four states (2·4 each), the widest e and g.
    assert_eq!(c.buffer_bits, 2 * (52 + 32) + 48);
    let passes: Vec<(&str, u64, u64, u64)> = c
        .passes
        .iter()
        .map(|p| (p.stage.as_str(), p.macs, p.activations, p.weights))
        .collect();
    assert_eq!(
        passes,
        [
            ("layer 1 e", 0, 2, 1),
            ("layer 1 g", 4, 2, 4),
            ("layer 1 update", 4, 2, 2),
            ("layer 2 e", 6, 2, 5),
            ("layer 2 g", 4, 2, 4),
            ("layer 2 update", 6, 2, 3),
            ("slicer", 0, 2, 1),
        ]
    );
    // Q of each pass: the count-weighted mean of √(ab) of its multiplies, else its output.
    let q: Vec<f64> = c.passes.iter().map(|p| p.q).collect();
    let want_q = [
        12.0,
        96f64.sqrt(),
        (2.0 * 12.0 + 2.0 * 552f64.sqrt()) / 4.0,
        (4.0 * 32f64.sqrt() + 2.0 * 288f64.sqrt()) / 6.0,
        96f64.sqrt(),
        (2.0 * 96f64.sqrt() + 2.0 * 192f64.sqrt() + 2.0 * 672f64.sqrt()) / 6.0,
        4.0,
    ];
    for (g, w) in q.iter().zip(want_q) {
        assert!(close(*g, w, 1e-12), "{q:?}");
    }

    // Model 2 by hand: every multiply at √(ab), every add at its width, 377 bits read from
    // an 8 KB SRAM.
    let e = estimate(&ir);
    let em = |b: f64| 0.0029948 * b * b + 0.0010417 * b;
    let mul_pj = 8.0 * em(96f64.sqrt())
        + 2.0 * em(12.0)
        + 2.0 * em(552f64.sqrt())
        + 4.0 * em(32f64.sqrt())
        + 2.0 * em(288f64.sqrt())
        + 2.0 * em(96f64.sqrt())
        + 2.0 * em(192f64.sqrt())
        + 2.0 * em(672f64.sqrt());
    let add_bits = 8 * 13
        + 8 * 20
        + 6 * 23
        + 2 * 47
        + 2 * 8
        + 2 * 12
        + 4 * 36
        + 2 * 14
        + 8 * 28
        + 2 * 52
        + 2 * 7
        + 2 * 5;
    let read_bits = 4 * 10 + 9 * 12 + 12 * 8 + 4 * 24 + 4 * 4 + 16 + 5;
    assert_eq!(read_bits, 377);
    assert!(close(e.mults, 24.0, 0.0));
    assert!(close(e.adds, 48.0, 0.0));
    assert!(close(e.read_bits, 377.0, 0.0));
    assert!(close(e.horowitz_terms.multiply_pj, mul_pj, 1e-12));
    assert!(close(
        e.horowitz_terms.add_pj,
        0.003125 * f64::from(add_bits),
        1e-12
    ));
    assert!(close(
        e.horowitz_terms.memory_pj,
        377.0 * 10.0 / 64.0,
        1e-12
    ));
    let h = mul_pj + 0.003125 * f64::from(add_bits) + 377.0 * 10.0 / 64.0;
    assert!(close(e.horowitz.pj_per_vector, h, 1e-12));
    assert!(close(e.horowitz.pj_per_bit, h / 2.0, 1e-12));

    // Model 1 by hand: eqs. 8, 10, 11 per pass at its Q, summed (eq. 7).
    let mut paper = 0.0;
    for ((_, nc, na, nw), q) in passes.iter().zip(want_q) {
        let emac = 0.86 * (q / 16.0).powf(1.9);
        let local = emac * *nc as f64 / (64.0 * q / 16.0).sqrt();
        let (nc, na, nw) = (*nc as f64, *na as f64, *nw as f64);
        paper += emac * (nc + 3.0 * na) + (2.0 * emac * nw + local) + (4.0 * emac * na + local);
    }
    assert!(close(e.paper.pj_per_vector, paper, 1e-12));
    assert!(close(e.paper.pj_per_bit, paper / 2.0, 1e-12));
}

#[test]
fn every_fixture_is_finite_and_non_negative() {
    for name in [
        "pgd-qpsk-2x2",
        "snap-pgd-qpsk-1x1",
        "synth-admm-bpsk",
        "synth-pgd-bpsk",
        "synth-pgd-momentum-mf-bpsk",
    ] {
        let ir = fixture(name);
        let e = estimate(&ir);
        let all = [
            e.paper.pj_per_vector,
            e.paper.pj_per_bit,
            e.paper_terms.compute_pj,
            e.paper_terms.weights_pj,
            e.paper_terms.activations_pj,
            e.horowitz.pj_per_vector,
            e.horowitz.pj_per_bit,
            e.horowitz_terms.multiply_pj,
            e.horowitz_terms.add_pj,
            e.horowitz_terms.memory_pj,
        ];
        assert!(
            all.iter().all(|v| v.is_finite() && *v >= 0.0),
            "{name}: {e:?}"
        );
        assert!(
            e.paper.pj_per_vector > 0.0 && e.horowitz.pj_per_vector > 0.0,
            "{name}"
        );
        // The terms add up to the totals.
        let p = e.paper_terms;
        assert!(close(
            p.compute_pj + p.weights_pj + p.activations_pj,
            p.total_pj,
            1e-12
        ));
        let h = e.horowitz_terms;
        assert!(close(
            h.multiply_pj + h.add_pj + h.memory_pj,
            h.total_pj,
            1e-12
        ));
        // Every multiply of the IR is a MAC of some pass.
        let macs: u64 = Counts::from_ir(&ir).passes.iter().map(|p| p.macs).sum();
        assert!(close(e.mults, macs as f64, 0.0), "{name}");
    }
}
