//! The PTQ ep lowering (docs/ir.md §12.6): valid, reproducible documents, and the integer
//! golden model against the float net on the same frames.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::GramNet;
use super::ep_quant::{EpQuantOptions, float_outputs, lower_ep};
use crate::detect::Detector;
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

#[test]
#[ignore]
fn diag() {
    let net = trained();
    let opts = EpQuantOptions::new(12);
    let ir = lower_ep(&net, &opts).unwrap();
    let golden = EpInterpreter::new(ir).unwrap();
    let mut link = net.link().clone();
    link.block = 1;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let frames = link
        .generator()
        .unwrap()
        .generate(&vec![18.0; 300], &mut rng);
    let n = frames.n;
    let mut d_net = vec![0i32; frames.frames * n];
    let mut d_int = vec![0i32; frames.frames * n];
    net.detect(&frames, &mut d_net).unwrap();
    golden.detect(&frames, &mut d_int).unwrap();
    let f = float_outputs(&net, &opts, &frames);
    let d_f: Vec<i32> = f.iter().map(|&v| net.link().modulation.slice(v)).collect();
    let agree = |a: &[i32], b: &[i32]| a.iter().zip(b).filter(|(x, y)| x == y).count();
    eprintln!(
        "net~f64 {} net~int {} f64~int {} of {}",
        agree(&d_net, &d_f),
        agree(&d_net, &d_int),
        agree(&d_f, &d_int),
        d_net.len()
    );
}
