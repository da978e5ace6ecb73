//! The PTQ ep lowering (docs/ir.md §12.6): valid, reproducible documents, and the integer
//! golden model against the float net and the f64 dataflow on the same frames.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::GramNet;
use super::ep_quant::{EpQuantOptions, float_outputs, lower_ep};
use crate::detect::Detector;
use kaq_ir::gram::AnyIr;
use kaq_ir::gram::ep::EpInterpreter;

fn trained() -> GramNet {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/gram/ep-k10.model.json"
    );
    super::file::GramModelFile::load(std::path::Path::new(path))
        .expect("loads")
        .net
}

/// (net vs f64 dataflow, net vs golden model, symbols) on `frames` frames at `snr` dB.
fn agreement(net: &GramNet, opts: &EpQuantOptions, snr: f64, frames: usize) -> (f64, f64) {
    let ir = lower_ep(net, opts).expect("lowers");
    assert_eq!(lower_ep(net, opts).expect("lowers"), ir, "reproducible");
    match AnyIr::from_json(&ir.to_json(), "<test>").expect("reloads") {
        AnyIr::Ep(e) => assert_eq!(*e, ir),
        _ => panic!("an ep lowering reloaded as another version"),
    }
    let golden = EpInterpreter::new(ir).expect("validates");
    let mut link = net.link().clone();
    link.block = 1;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let frames = link
        .generator()
        .expect("link")
        .generate(&vec![snr; frames], &mut rng);
    let n = frames.n;
    let mut d_net = vec![0i32; frames.frames * n];
    let mut d_int = vec![0i32; frames.frames * n];
    net.detect(&frames, &mut d_net).expect("detects");
    golden.detect(&frames, &mut d_int).expect("detects");
    let d_f: Vec<i32> = float_outputs(net, opts, &frames)
        .iter()
        .map(|&v| net.link().modulation.slice(v))
        .collect();
    let agree = |a: &[i32], b: &[i32]| {
        a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
    };
    (agree(&d_net, &d_f), agree(&d_net, &d_int))
}

/// The f64 dataflow of §12.3 (with a bin-centre SNR, so s2 is the frame's) decides exactly as
/// the f32 net, and the 8- and 6-bit golden models agree with it on ≥ 98 % of the symbols.
#[test]
fn trained_net_lowerings_agree_with_the_float_net() {
    let net = trained();
    for (bits, want) in [(8, 0.985), (6, 0.975)] {
        let (f, int) = agreement(&net, &EpQuantOptions::new(bits), 18.0, 60);
        assert_eq!(f, 1.0, "f64 dataflow vs f32 net");
        assert!(int >= want, "{bits} bits: {int} < {want}");
    }
}

/// Small nets (N = 2..8, QPSK and 16-QAM, 1..4 layers, perturbed β and floors), block
/// lengths 1..14, SNR windows over 10..30 dB: at 12 bits the golden model decides as the
/// float net on at least 99 % of the symbols (the rest are the float net's near-ties and the
/// bin-centre s2 of the IR).
#[test]
fn small_nets_at_12_bits_agree_with_the_float_net() {
    use super::testing::agreement;
    use super::{Family, GramConfig};
    use crate::link::LinkConfig;
    use crate::modulation::Modulation;
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(43);
    let (mut same, mut total) = (0, 0);
    for case in 0..8 {
        let modulation = [Modulation::Qpsk, Modulation::Qam16][case % 2];
        let nt = rng.random_range(1..=2);
        let link = LinkConfig::new(nt, nt + rng.random_range(0..=1), modulation).unwrap();
        let config = GramConfig {
            family: Family::Ep,
            layers: rng.random_range(1..=4),
            inner: 0,
        };
        let mut net = GramNet::new(config, &link).unwrap();
        for v in net.params_mut() {
            *v += rng.random_range(-0.05..0.05);
        }
        net.project();
        let mut opts = EpQuantOptions::new(12);
        opts.calib_frames = 300;
        let ir = lower_ep(&net, &opts).expect("lowers");
        let golden = EpInterpreter::new(ir).expect("validates");
        let block = rng.random_range(1..=14);
        let lo = rng.random_range(10.0..25.0);
        let link = net.link().clone().with_block(block).expect("block");
        let (s, t) = agreement(&link, &golden, &net, (lo, lo + 5.0), 300, case as u64);
        same += s;
        total += t;
    }
    let rate = same as f64 / total as f64;
    assert!(
        rate >= 0.99,
        "decisions agree on {same} of {total} ({rate})"
    );
}

#[test]
fn the_lowering_refuses_other_families_and_bad_widths() {
    use super::{Family, GramConfig};
    use crate::link::LinkConfig;
    use crate::modulation::Modulation;
    let link = LinkConfig::new(1, 1, Modulation::Qpsk).unwrap();
    let oamp = GramNet::new(GramConfig::new(Family::Oamp, 1), &link).unwrap();
    assert!(lower_ep(&oamp, &EpQuantOptions::new(8)).is_err());
    let ep = GramNet::new(GramConfig::new(Family::Ep, 2), &link).unwrap();
    assert!(lower_ep(&ep, &EpQuantOptions::new(13)).is_err());
    let mut o = EpQuantOptions::new(8);
    o.coef_bits = 30;
    assert!(lower_ep(&ep, &o).is_err());
    assert!(lower_ep(&ep, &EpQuantOptions::new(8)).is_ok());
}
