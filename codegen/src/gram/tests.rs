//! The micro-program on its Rust twin against the golden model, bit for bit on every output,
//! over small cg configurations and block lengths, with random and extreme codes.

use kaq_ir::gram::{GramInterpreter, GramIr};
use kaq_model::gram::quantized::CgQuantOptions;
use kaq_model::gram::testing;
use kaq_model::link::LinkConfig;
use kaq_model::modulation::Modulation;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Engine, Program};

/// A PTQ'd cg net of `nt`×`nr` `modulation` with perturbed parameters
/// ([`kaq_model::gram::testing::lowered_cg`]).
pub(crate) fn lowered(
    nt: usize,
    nr: usize,
    modulation: Modulation,
    layers: usize,
    inner: usize,
    bits: u32,
    seed: u64,
) -> GramIr {
    lowered_with(nt, nr, modulation, layers, inner, bits, seed, |_| {})
}

/// [`lowered`] with `tune` applied to the quantization options first.
#[allow(clippy::too_many_arguments)]
pub(crate) fn lowered_with(
    nt: usize,
    nr: usize,
    modulation: Modulation,
    layers: usize,
    inner: usize,
    bits: u32,
    seed: u64,
    tune: impl FnOnce(&mut CgQuantOptions),
) -> GramIr {
    let link = LinkConfig::new(nt, nr, modulation).unwrap();
    testing::lowered_cg(&link, layers, inner, bits, seed, tune)
}

/// `ir` with random per-bin shifts ([`testing::bin_shifted`]), or `ir` as is when no draw
/// validates.
fn bin_shifted(ir: &GramIr, rng: &mut ChaCha8Rng) -> GramIr {
    testing::bin_shifted(ir, rng).unwrap_or_else(|| ir.clone())
}

/// A code of `w` bits: small most of the time, sometimes full range or extreme.
fn code(rng: &mut ChaCha8Rng, w: u32) -> i64 {
    let q = (1i64 << (w - 1)) - 1;
    match rng.random_range(0..10) {
        0 => [-q - 1, q, 0, -1, 1][rng.random_range(0..5)],
        1 | 2 => rng.random_range(-q - 1..=q),
        _ => rng.random_range(-q / 4..=q / 4),
    }
}

#[test]
fn program_equals_golden_model() {
    let mut rng = ChaCha8Rng::seed_from_u64(18);
    let mut vectors = 0;
    for (c, &(nt, nr, modulation, layers, inner)) in [
        (1, 1, Modulation::Qpsk, 1, 1),
        (2, 2, Modulation::Qpsk, 2, 2),
        (2, 2, Modulation::Qam16, 3, 3),
        (2, 3, Modulation::Qam16, 1, 3),
        (4, 4, Modulation::Qpsk, 3, 1),
        (4, 4, Modulation::Qam16, 2, 2),
        (4, 4, Modulation::Qam16, 3, 2),
        (2, 2, Modulation::Qam16, 2, 3),
    ]
    .iter()
    .enumerate()
    {
        let ir = lowered(nt, nr, modulation, layers, inner, 8, c as u64);
        let prog = Program::with_lanes(&ir, [1, 2, 3, 4, 8, 5, 16, 32][c]);
        let golden = GramInterpreter::new(ir.clone()).unwrap();
        for _ in 0..20 {
            let t = rng.random_range(1..=5);
            let bin = rng.random_range(0..ir.snr_bins.count);
            let h: Vec<i64> = (0..ir.m * ir.n)
                .map(|_| code(&mut rng, ir.inputs.h.width()))
                .collect();
            let ys: Vec<i64> = (0..t * ir.m)
                .map(|_| code(&mut rng, ir.inputs.y.width()))
                .collect();
            let (bt, vt) = golden.run_block_codes(&h, &ys, bin).unwrap();
            let mut eng = Engine::new(&prog);
            eng.block(&h, bin);
            let map = prog.map;
            assert_eq!(eng.regs[map.inv_trace], bt.inv_trace, "inv_trace");
            assert_eq!(eng.regs[map.trace], bt.trace, "trace");
            assert_eq!(&eng.regs[map.dinv..map.dinv + ir.n], &bt.diag_inv[..]);
            assert_eq!(eng.cycles, prog.block_cycles());
            for (y, want) in ys.chunks(ir.m).zip(&vt) {
                let before = eng.cycles;
                let x = eng.vector(y);
                assert_eq!(eng.cycles - before, prog.vector_cycles());
                assert_eq!(x, want.output, "config {c}");
                let levels: Vec<i32> = x.iter().map(|&v| eng.level(v)).collect();
                assert_eq!(levels, want.levels);
                vectors += 1;
            }
        }
    }
    assert!(vectors > 300);
}

#[test]
fn the_closed_form_cycle_model_equals_the_program() {
    for (c, &(nt, nr, modulation, layers, inner)) in [
        (1, 1, Modulation::Qpsk, 1, 1),
        (2, 2, Modulation::Qam16, 3, 3),
        (4, 4, Modulation::Qam16, 2, 4),
        (3, 4, Modulation::Qam64, 4, 2),
    ]
    .iter()
    .enumerate()
    {
        let ir = lowered(nt, nr, modulation, layers, inner, 8, 100 + c as u64);
        for lanes in (1..=9).chain([16, 32]) {
            let prog = Program::with_lanes(&ir, lanes);
            assert_eq!(
                super::program::analytic_cycles_lanes(&ir, lanes),
                (prog.block_cycles(), prog.vector_cycles()),
                "config {c}, {lanes} lanes"
            );
        }
        assert_eq!(
            super::program::analytic_cycles(&ir),
            super::program::analytic_cycles_lanes(&ir, 1)
        );
    }
}

/// The variants the v2 RTL runs beside plain PTQ: a narrow inner G per layer (docs/ir.md
/// §10.9), KAQ's bin-adaptive formats (version 3, §10.8), random per-bin shifts, and both.
pub(crate) fn variants(seed: u64) -> Vec<(&'static str, GramIr)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let gi = lowered_with(2, 2, Modulation::Qam16, 3, 3, 8, seed, |o| {
        o.g_inner = vec![9, 6, 16];
    });
    let gi4 = lowered_with(4, 4, Modulation::Qpsk, 2, 2, 8, seed + 1, |o| {
        o.g_inner = vec![7, 7];
    });
    let kaq = lowered_with(2, 2, Modulation::Qpsk, 2, 3, 8, seed + 2, |o| {
        o.bin_adaptive = true;
        o.calib_frames = 400;
    });
    let both = lowered_with(4, 4, Modulation::Qam16, 2, 3, 8, seed + 3, |o| {
        o.g_inner = vec![10, 8];
    });
    let both = bin_shifted(&both, &mut rng);
    let shifted = bin_shifted(
        &lowered(2, 3, Modulation::Qam16, 3, 2, 8, seed + 4),
        &mut rng,
    );
    vec![
        ("g_inner 2x2", gi),
        ("g_inner 4x4", gi4),
        ("kaq bin-adaptive", kaq),
        ("g_inner + bin_shift 4x4", both),
        ("bin_shift 2x3", shifted),
    ]
}

#[test]
fn program_equals_golden_model_with_g_inner_and_bin_shift() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let mut vectors = 0;
    let variants = variants(7);
    assert!(variants[0].1.first_g_inner().is_some());
    assert!(
        variants[2].1.first_bin_shift().is_some(),
        "KAQ lowers to version 3"
    );
    assert!(variants[3].1.first_bin_shift().is_some() && variants[3].1.first_g_inner().is_some());
    for (c, (name, ir)) in variants.iter().enumerate() {
        let lanes = [1, 3, 2, 4, 1][c];
        let prog = Program::with_lanes(ir, lanes);
        if ir.first_g_inner().is_some() {
            assert!(!prog.inner.is_empty(), "{name}: a narrow copy");
        }
        if ir.first_bin_shift().is_some() && c != 2 {
            assert!(!prog.shifts.is_empty(), "{name}: per-bin shifts");
        }
        assert_eq!(
            super::program::analytic_cycles_lanes(ir, lanes),
            (prog.block_cycles(), prog.vector_cycles()),
            "{name}"
        );
        let golden = GramInterpreter::new(ir.clone()).unwrap();
        for bin in 0..ir.snr_bins.count {
            let t = rng.random_range(1..=3);
            let h: Vec<i64> = (0..ir.m * ir.n)
                .map(|_| code(&mut rng, ir.inputs.h.width()))
                .collect();
            let ys: Vec<i64> = (0..t * ir.m)
                .map(|_| code(&mut rng, ir.inputs.y.width()))
                .collect();
            let (_, vt) = golden.run_block_codes(&h, &ys, bin).unwrap();
            let mut eng = Engine::new(&prog);
            eng.block(&h, bin);
            assert_eq!(eng.cycles, prog.block_cycles());
            for (y, want) in ys.chunks(ir.m).zip(&vt) {
                let before = eng.cycles;
                let x = eng.vector(y);
                assert_eq!(eng.cycles - before, prog.vector_cycles());
                assert_eq!(x, want.output, "{name} bin {bin}");
                vectors += 1;
            }
        }
    }
    assert!(vectors > 100);
}

/// Without a narrow copy, the golden model's ρ differs: the test above can fail.
#[test]
fn the_narrow_copy_is_what_rho_reads() {
    let ir = &variants(7)[0].1;
    let prog = Program::new(ir);
    let n = ir.n;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let h: Vec<i64> = (0..ir.m * ir.n)
        .map(|_| code(&mut rng, ir.inputs.h.width()))
        .collect();
    let mut eng = Engine::new(&prog);
    eng.block(&h, 0);
    let g = &eng.regs[prog.map.g..prog.map.g + n * n];
    for (c, &s) in prog.inner.iter().enumerate() {
        let at = prog.map.gn + c * n * n;
        let w = ir.block.g.width() - s;
        let want: Vec<i64> = g.iter().map(|&v| kaq_ir::gram::narrow_g(v, s, w)).collect();
        assert_eq!(&eng.regs[at..at + n * n], &want[..]);
    }
    // Layer 0's g_inner (9 of G's 16 bits) and layer 1's (6): two copies; layer 2 reads G.
    assert_eq!(prog.inner, vec![7, 10]);
}
