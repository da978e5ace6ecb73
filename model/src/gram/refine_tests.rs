//! The format refinement of a cg IR ([`super::refine`]).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::quantized::{CgQuantOptions, CgTensor, lower_cg};
use super::refine::{RefineOptions, golden_errors, refine_formats, shifted};
use super::{Family, GramConfig, GramNet};
use crate::link::{FrameBatch, LinkConfig};
use crate::modulation::Modulation;

fn net() -> GramNet {
    let link = LinkConfig::new(4, 4, Modulation::Qam16).unwrap();
    let config = GramConfig {
        family: Family::Cg,
        layers: 3,
        inner: 2,
    };
    GramNet::new(config, &link).unwrap()
}

fn frames(net: &GramNet, snr: f64, count: usize, seed: u64) -> FrameBatch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    net.link()
        .generator()
        .unwrap()
        .generate(&vec![snr; count], &mut rng)
}

#[test]
fn r_shift_rebuilds_the_lowering_table_exactly() {
    let net = net();
    let ir = lower_cg(&net, &CgQuantOptions::new(6)).unwrap();
    let up = shifted(&net, &ir, 0, CgTensor::R, 1).unwrap();
    assert_ne!(up.denoiser.table, ir.denoiser.table);
    assert!(
        up.layers
            .iter()
            .all(|l| l.formats.r.frac() == ir.layers[0].formats.r.frac() + 1)
    );
    // Back down: the very document lower_cg built (its table from the same representatives).
    assert_eq!(shifted(&net, &up, 0, CgTensor::R, -1).unwrap(), ir);
    // A per-layer class moves one layer only.
    let p = shifted(&net, &ir, 1, CgTensor::P, -2).unwrap();
    for (k, (a, b)) in p.layers.iter().zip(&ir.layers).enumerate() {
        let want = b.formats.p.frac() - if k == 1 { 2 } else { 0 };
        assert_eq!(a.formats.p.frac(), want);
        assert_eq!(a.formats.d, b.formats.d);
    }
    assert!(shifted(&net, &ir, 3, CgTensor::P, 1).is_err());
    assert!(shifted(&net, &ir, 0, CgTensor::G, 1).is_err());
}

#[test]
fn refinement_undoes_a_clipping_p_format() {
    let net = net();
    let ir = lower_cg(&net, &CgQuantOptions::new(6)).unwrap();
    // p of layer 0 at 1/16 of its calibrated range: it clips.
    let bad = shifted(&net, &ir, 0, CgTensor::P, 4).unwrap();
    let data = [frames(&net, 24.0, 600, 7)];
    let (bad_errors, _) = golden_errors(&bad, &data).unwrap();
    let (good_errors, _) = golden_errors(&ir, &data).unwrap();
    assert!(bad_errors > good_errors, "{bad_errors} vs {good_errors}");
    let (out, moves) = refine_formats(&net, &bad, &data, &RefineOptions::default()).unwrap();
    assert!(
        moves
            .iter()
            .any(|m| m.layer == Some(0) && m.class == CgTensor::P && m.shift == -1),
        "{moves:?}"
    );
    // Every kept move lowers the bit errors, and the last is the result's.
    for w in moves.windows(2) {
        assert!(w[1].bit_errors < w[0].bit_errors);
    }
    let (final_errors, _) = golden_errors(&out, &data).unwrap();
    assert_eq!(final_errors, moves.last().unwrap().bit_errors);
    assert!(final_errors < bad_errors);
    // No rounds: the document as given.
    let none = RefineOptions {
        rounds: 0,
        ..RefineOptions::default()
    };
    let (same, kept) = refine_formats(&net, &bad, &data, &none).unwrap();
    assert!(kept.is_empty());
    assert_eq!(same, bad);
}
