//! The PTQ oamp lowering (docs/ir.md §11.6): valid, reproducible documents, and the integer
//! golden model against the float net on the same frames.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::oamp_quant::{OampQuantOptions, lower_oamp};
use super::testing::agreement;
use super::{Family, GramConfig, GramNet};
use crate::link::LinkConfig;
use crate::modulation::Modulation;
use kaq_ir::gram::AnyIr;
use kaq_ir::gram::oamp::OampInterpreter;

/// Decisions of the golden model of `net`'s lowering at `opts` and of the float net on
/// `frames` frames (block fading `block`, SNR per block drawn from `snr`): (agreeing, total).
fn lowered_agreement(
    net: &GramNet,
    opts: &OampQuantOptions,
    block: usize,
    snr: (f64, f64),
    frames: usize,
    seed: u64,
) -> (usize, usize) {
    let ir = lower_oamp(net, opts).expect("lowers");
    assert_eq!(lower_oamp(net, opts).expect("lowers"), ir, "reproducible");
    match AnyIr::from_json(&ir.to_json(), "<test>").expect("reloads") {
        AnyIr::Oamp(o) => assert_eq!(*o, ir),
        _ => panic!("an oamp lowering reloaded as another version"),
    }
    let golden = OampInterpreter::new(ir).expect("validates");
    let link = net.link().clone().with_block(block).expect("block");
    agreement(&link, &golden, net, snr, frames, seed)
}

/// Small nets (N = 2..8, QPSK and 16-QAM, 1..4 layers, perturbed parameters), block lengths
/// 1..14, SNR windows over 10..30 dB: at 12 bits the golden model decides as the float net
/// on at least 99 % of the symbols (the rest are the float net's near-ties and the bin-centre
/// s2 of the IR).
#[test]
fn small_nets_at_12_bits_agree_with_the_float_net() {
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    let (mut same, mut total) = (0, 0);
    for case in 0..8 {
        let modulation = [Modulation::Qpsk, Modulation::Qam16][case % 2];
        let nt = rng.random_range(1..=2);
        let link = LinkConfig::new(nt, nt + rng.random_range(0..=1), modulation).unwrap();
        let config = GramConfig {
            family: Family::Oamp,
            layers: rng.random_range(1..=4),
            inner: 0,
        };
        let mut net = GramNet::new(config, &link).unwrap();
        for v in net.params_mut() {
            *v += rng.random_range(-0.1..0.1);
        }
        let mut opts = OampQuantOptions::new(12);
        opts.calib_frames = 300;
        opts.buckets = 64;
        let block = rng.random_range(1..=14);
        let lo = rng.random_range(10.0..25.0);
        let (s, t) = lowered_agreement(&net, &opts, block, (lo, lo + 5.0), 300, case as u64);
        same += s;
        total += t;
    }
    let rate = same as f64 / total as f64;
    assert!(
        rate >= 0.99,
        "decisions agree on {same} of {total} ({rate})"
    );
}

/// The trained oamp-k10 (16×16 16-QAM) at 8 bits decides as its float net on at least 98 %
/// of the symbols at 18–24 dB (where the float net's symbol error rate is 1–10 %).
#[test]
fn trained_oamp_k10_at_8_bits_agrees_with_its_float_net() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/gram/oamp-k10.model.json");
    let file = super::file::GramModelFile::load(&path).expect("model file");
    let mut opts = OampQuantOptions::new(8);
    opts.calib_frames = 500;
    let (s, t) = lowered_agreement(&file.net, &opts, 14, (18.0, 24.0), 140, 7);
    assert!(s as f64 >= 0.98 * t as f64, "decisions agree on {s} of {t}");
}

#[test]
fn the_lowering_refuses_other_families_and_bad_widths() {
    let link = LinkConfig::new(1, 1, Modulation::Qpsk).unwrap();
    let cg = GramNet::new(
        GramConfig {
            family: Family::Cg,
            layers: 1,
            inner: 1,
        },
        &link,
    )
    .unwrap();
    assert!(lower_oamp(&cg, &OampQuantOptions::new(8)).is_err());
    let oamp = GramNet::new(
        GramConfig {
            family: Family::Oamp,
            layers: 1,
            inner: 0,
        },
        &link,
    )
    .unwrap();
    assert!(lower_oamp(&oamp, &OampQuantOptions::new(13)).is_err());
    let mut o = OampQuantOptions::new(8);
    o.bank_bits = 30;
    assert!(lower_oamp(&oamp, &o).is_err());
}

/// The bank's δ floor (docs/ir.md §11.6): every δ code of the lowering is at least the floor of
/// its inverse's formats, the floor is what raises the LMMSE δ at high SNR, and with it no
/// pivot reciprocal and no entry of Q_j saturates on Rayleigh channels in the top SNR bins
/// (without it the small δ of those bins drives 1/δ past Q's format).
#[test]
fn the_delta_floor_keeps_the_bank_inverse_unsaturated_at_high_snr() {
    use super::oamp_quant::delta_floor;
    use kaq_ir::fixed::max_code;
    let link = LinkConfig::new(2, 2, Modulation::Qam16).unwrap();
    let config = GramConfig {
        family: Family::Oamp,
        layers: 2,
        inner: 0,
    };
    let net = GramNet::new(config, &link).unwrap();
    let mut opts = OampQuantOptions::new(8);
    opts.calib_frames = 300;
    let ir = lower_oamp(&net, &opts).expect("lowers");
    let bank = &ir.block.bank;
    let floor = delta_floor(ir.block.g, &[bank.pivot_inv.format, bank.q]);
    assert!(floor > 1, "the floor is above one code at these formats");
    for row in &bank.delta {
        assert!(
            row.iter().all(|&d| d >= floor),
            "a δ below the floor: {row:?}"
        );
    }
    let top = ir.snr_bins.count - 1;
    assert_eq!(
        bank.delta[0][top], floor,
        "the floor raises δ_0 in the top bin"
    );
    let gi = OampInterpreter::new(ir.clone()).expect("validates");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (m, n) = (ir.m, ir.n);
    let scale = (0.5 / m as f64).sqrt();
    for _ in 0..200 {
        let h: Vec<i64> = (0..m * n)
            .map(|_| {
                let (u, v): (f64, f64) = (rng.random(), rng.random());
                let g = (-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos();
                gi.quantize_h((g * scale) as f32)
            })
            .collect();
        let ys = vec![0; m];
        for bin in [top - 20, top - 10, top] {
            let (bt, _) = gi.run_block_codes(&h, &ys, bin).unwrap();
            for (j, e) in bt.bank.iter().enumerate() {
                let qi = max_code(bank.pivot_inv.format.width());
                assert!(
                    e.pivot_inv.iter().all(|&c| c < qi),
                    "entry {j} bin {bin}: ι saturates"
                );
                let qq = max_code(bank.q.width());
                assert!(
                    e.q.iter().all(|&c| c.abs() < qq),
                    "entry {j} bin {bin}: Q saturates"
                );
            }
        }
    }
}
