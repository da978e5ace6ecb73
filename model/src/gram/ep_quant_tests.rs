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
