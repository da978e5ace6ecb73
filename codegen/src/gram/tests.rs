//! The micro-program on its Rust twin against the golden model, bit for bit on every output,
//! over small cg configurations and block lengths, with random and extreme codes.

use kaq_ir::gram::{GramInterpreter, GramIr};
use kaq_model::gram::quantized::{CgQuantOptions, lower_cg};
use kaq_model::gram::{Family, GramConfig, GramNet};
use kaq_model::link::LinkConfig;
use kaq_model::modulation::Modulation;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Engine, Program};

/// A PTQ'd cg net with perturbed parameters.
pub(crate) fn lowered(
    nt: usize,
    nr: usize,
    modulation: Modulation,
    layers: usize,
    inner: usize,
    bits: u32,
    seed: u64,
) -> GramIr {
    let link = LinkConfig::new(nt, nr, modulation).unwrap();
    let config = GramConfig {
        family: Family::Cg,
        layers,
        inner,
    };
    let mut net = GramNet::new(config, &link).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for v in net.params_mut() {
        *v += rng.random_range(-0.2..0.2);
    }
    let mut opts = CgQuantOptions::new(bits);
    opts.calib_frames = 100;
    opts.buckets = 8;
    lower_cg(&net, &opts).unwrap()
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
    ]
    .iter()
    .enumerate()
    {
        let ir = lowered(nt, nr, modulation, layers, inner, 8, c as u64);
        let prog = Program::with_lanes(&ir, [1, 2, 3, 4, 8, 5][c]);
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
        for lanes in 1..=9 {
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
