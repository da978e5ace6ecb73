//! Snapshots of every rendered template for one tiny configuration (PGD-Net, soft
//! thresholds, QPSK 1×1, two layers, 4 bits, 4 SNR bins, one lane, eight testbench frames,
//! fixed seeds): the top, a layer wrapper, the params header, the testbench and the README.
//! The hand-written primitives are not snapshotted. Review changes with `cargo insta review`.

mod common;

use common::{Config, fixture};
use kaq_codegen::{Generated, Options, generate};
use kaq_model::Modulation;
use kaq_model::lower::LinkFrames;

fn tiny() -> Generated {
    let config = Config {
        modulation: Modulation::Qpsk,
        nt: 1,
        nr: 1,
        layers: 2,
        bits: 4,
        seed: 31,
        ..Config::default()
    };
    let ir = fixture("snap-pgd-qpsk-1x1", &config, Some(4));
    let options = Options {
        lanes: 1,
        top: "snap_top".to_string(),
        testbench_frames: 8,
        seed: 5,
    };
    generate(&ir, &options, &LinkFrames).unwrap()
}

fn contents<'a>(g: &'a Generated, name: &str) -> &'a str {
    &g.file(name)
        .unwrap_or_else(|| panic!("no file {name}"))
        .contents
}

#[test]
fn top() {
    insta::assert_snapshot!("top", contents(&tiny(), "snap_top.v"));
}

#[test]
fn layer_wrapper() {
    let g = tiny();
    assert_eq!(g.design.layers.len(), 2);
    insta::assert_snapshot!("layer2", contents(&g, "snap_top_layer2.v"));
}

#[test]
fn params_header() {
    insta::assert_snapshot!("params", contents(&tiny(), "snap_top_params.vh"));
}

#[test]
fn testbench() {
    insta::assert_snapshot!("testbench", contents(&tiny(), "snap_top_tb.v"));
}

#[test]
fn readme() {
    insta::assert_snapshot!("readme", contents(&tiny(), "README.md"));
}
