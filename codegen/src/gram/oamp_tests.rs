//! The oamp program on its Rust twin against the golden model `OampInterpreter`, bit for bit
//! on every output, over small lowered nets (N = 2, 4) with random and extreme codes and on
//! the trained 16×16 oamp-k10 at 8 bits; the analytic cycle model against the program.

use kaq_ir::gram::oamp::{OampInterpreter, OampIr};
use kaq_model::gram::oamp_quant::{OampQuantOptions, lower_oamp};
use kaq_model::gram::{Family, GramConfig, GramNet};
use kaq_model::link::LinkConfig;
use kaq_model::modulation::Modulation;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::oamp::{analytic_cycles, program};
use super::{Engine, Program};

/// A PTQ'd oamp net of `nt`×`nr` `modulation` with `layers` layers and parameters perturbed
/// by `seed` (so that every constant is a distinct non-trivial code).
pub(crate) fn lowered_oamp(
    nt: usize,
    nr: usize,
    modulation: Modulation,
    layers: usize,
    bits: u32,
    seed: u64,
) -> OampIr {
    let link = LinkConfig::new(nt, nr, modulation).unwrap();
    let mut net = GramNet::new(
        GramConfig {
            family: Family::Oamp,
            layers,
            inner: 0,
        },
        &link,
    )
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for p in net.params_mut() {
        *p *= rng.random_range(0.6..1.4f32);
    }
    let mut opts = OampQuantOptions::new(bits);
    opts.calib_frames = 60;
    lower_oamp(&net, &opts).unwrap()
}

/// The trained oamp-k10 (16×16 16-QAM, N = 32) lowered at 8 bits, as `kaq lower --model
/// docs/gram/oamp-k10.model.json --ptq-bits 8` writes it.
pub(crate) fn oamp_k10_8b() -> OampIr {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/gram/oamp-k10.model.json");
    let file = kaq_model::gram::file::GramModelFile::load(&path).expect("model file");
    lower_oamp(&file.net, &OampQuantOptions::new(8)).unwrap()
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

/// Runs `blocks` random blocks of up to 3 vectors through the twin and the golden model and
/// asserts every x equal; also the cycles against [`Program::block_cycles`] and
/// [`Program::vector_cycles`]. Returns the vectors compared.
fn check(ir: &OampIr, prog: &Program, blocks: usize, rng: &mut ChaCha8Rng) -> (usize, usize) {
    // Every accumulator stays within the widest sum bound of the interval analysis (so
    // below 2^62 and exact in 64 bits).
    let widest = ir.bounds().unwrap().sums.iter().map(|s| s.1).max().unwrap();
    let golden = OampInterpreter::new(ir.clone()).unwrap();
    let (m, n) = (ir.m, ir.n);
    let mut vectors = 0;
    let mut entries = std::collections::BTreeSet::new();
    let mut nonzero = 0;
    for blk in 0..blocks {
        let hw = ir.inputs.h.width();
        let yw = ir.inputs.y.width();
        let h: Vec<i64> = (0..m * n).map(|_| code(rng, hw)).collect();
        let t = rng.random_range(1..=3);
        let ys: Vec<i64> = (0..t * m).map(|_| code(rng, yw)).collect();
        let bin = if blk % 3 == 0 {
            [0, ir.snr_bins.count - 1][blk / 3 % 2]
        } else {
            rng.random_range(0..ir.snr_bins.count)
        };
        let (_, taps) = golden.run_block_codes(&h, &ys, bin).unwrap();
        let mut eng = Engine::new(prog);
        eng.block(&h, bin);
        assert_eq!(eng.cycles, prog.block_cycles(), "block cycles");
        for (v, y) in ys.chunks(m).enumerate() {
            let before = eng.cycles;
            let x = eng.vector(y);
            assert_eq!(eng.cycles - before, prog.vector_cycles(), "vector cycles");
            let want = &taps[v].layers.last().unwrap().x;
            assert_eq!(&x, want, "block {blk} (bin {bin}) vector {v}: x");
            let levels: Vec<i32> = x.iter().map(|&c| eng.level(c)).collect();
            assert_eq!(levels, taps[v].levels, "block {blk} vector {v}: levels");
            vectors += 1;
            assert!(
                eng.acc_peak < 1u64 << widest,
                "an accumulator reached {} (bound 2^{widest})",
                eng.acc_peak
            );
            nonzero += x.iter().filter(|&&c| c != 0).count();
            entries.extend(taps[v].layers.iter().map(|l| l.j));
        }
    }
    assert!(nonzero > 0, "some x is not 0");
    (vectors, entries.len())
}

#[test]
fn oamp_program_equals_golden_model_on_small_designs() {
    let mut rng = ChaCha8Rng::seed_from_u64(18);
    let (mut vectors, mut entries) = (0, 0);
    for (c, &(nt, nr, modulation, layers, lanes)) in [
        (1, 1, Modulation::Qpsk, 1, 1),
        (1, 1, Modulation::Qpsk, 3, 2),
        (2, 2, Modulation::Qpsk, 2, 1),
        (2, 2, Modulation::Qam16, 3, 3),
        (2, 2, Modulation::Qam16, 2, 8),
        (2, 3, Modulation::Qam16, 2, 4),
    ]
    .iter()
    .enumerate()
    {
        let ir = lowered_oamp(nt, nr, modulation, layers, 8, c as u64);
        let prog = program(&ir, lanes);
        let (v, e) = check(&ir, &prog, 25, &mut rng);
        vectors += v;
        entries = entries.max(e);
        assert_eq!(
            analytic_cycles(&ir, lanes),
            (prog.block_cycles(), prog.vector_cycles()),
            "analytic cycles of case {c}"
        );
    }
    assert!(vectors > 200);
    // The runs select more than one bank entry (the selection offset is exercised).
    assert!(entries > 1, "{entries} bank entries selected");
}

#[test]
fn oamp_program_equals_golden_model_on_oamp_k10_8b() {
    let ir = oamp_k10_8b();
    assert_eq!(ir.n, 32);
    let widest = ir.bounds().unwrap().sums.iter().map(|s| s.1).max().unwrap();
    assert_eq!(widest, 57, "the widest sum bound of oamp-k10 at 8 bits");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for lanes in [1, 8, 32] {
        let prog = program(&ir, lanes);
        let (_, e) = check(&ir, &prog, 3, &mut rng);
        assert!(e > 1, "{e} bank entries selected");
        assert_eq!(
            analytic_cycles(&ir, lanes),
            (prog.block_cycles(), prog.vector_cycles()),
            "analytic cycles at P = {lanes}"
        );
    }
}
