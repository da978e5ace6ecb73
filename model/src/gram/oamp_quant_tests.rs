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
