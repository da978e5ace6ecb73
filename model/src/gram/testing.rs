//! Fixtures for the tests of this crate and of the crates downstream (feature `test-support`):
//! small cg designs lowered from nets with perturbed parameters, version-3 documents with
//! random per-bin shifts, and the decision agreement of two detectors on block fading.

use kaq_ir::gram::{BinShift, GramIr};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::quantized::{CgQuantOptions, lower_cg};
use super::{Family, GramConfig, GramNet};
use crate::detect::Detector;
use crate::link::LinkConfig;

/// The PTQ lowering at `bits` (100 calibration frames, 8 buckets, then `tune`) of a cg net on
/// `link` with `layers` × `inner` steps whose parameters are perturbed by U(−0.2, 0.2) drawn
/// from `seed`.
pub fn lowered_cg(
    link: &LinkConfig,
    layers: usize,
    inner: usize,
    bits: u32,
    seed: u64,
    tune: impl FnOnce(&mut CgQuantOptions),
) -> GramIr {
    let config = GramConfig {
        family: Family::Cg,
        layers,
        inner,
    };
    let mut net = GramNet::new(config, link).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for v in net.params_mut() {
        *v += rng.random_range(-0.2..0.2);
    }
    let mut opts = CgQuantOptions::new(bits);
    opts.calib_frames = 100;
    opts.buckets = 8;
    tune(&mut opts);
    lower_cg(&net, &opts).unwrap()
}

/// `ir` as version 3 with random per-bin shifts of e, p, d in −2..=2 (bin 0 unshifted) on
/// every layer, redrawn until the document validates; `None` after 50 draws.
pub fn bin_shifted(ir: &GramIr, rng: &mut ChaCha8Rng) -> Option<GramIr> {
    for _ in 0..50 {
        let mut doc = ir.clone();
        doc.version = 3;
        let bins = doc.snr_bins.count;
        for l in &mut doc.layers {
            let mut draw = || -> Vec<i32> {
                (0..bins)
                    .map(|b| if b == 0 { 0 } else { rng.random_range(-2..=2) })
                    .collect()
            };
            l.bin_shift = Some(BinShift {
                e: draw(),
                p: draw(),
                d: draw(),
            });
        }
        if doc.validate().is_ok() {
            return Some(doc);
        }
    }
    None
}

/// Decisions of `a` and `b` on the same `frames` frames of `link` (block fading at its block
/// length; one SNR per block drawn from `snr` with `seed`): (agreeing, total).
pub fn agreement(
    link: &LinkConfig,
    a: &dyn Detector,
    b: &dyn Detector,
    snr: (f64, f64),
    frames: usize,
    seed: u64,
) -> (usize, usize) {
    let block = link.block;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let blocks = frames.div_ceil(block);
    let snr_db: Vec<f64> = (0..blocks)
        .flat_map(|_| std::iter::repeat_n(rng.random_range(snr.0..snr.1), block))
        .collect();
    let batch = link.generator().expect("gen").generate(&snr_db, &mut rng);
    let n = batch.n;
    let mut da = vec![0i32; batch.frames * n];
    let mut db = vec![0i32; batch.frames * n];
    for (d, out) in [(a, &mut da), (b, &mut db)] {
        if let Err(e) = d.detect(&batch, out) {
            panic!("{}: {e}", d.name());
        }
    }
    (da.iter().zip(&db).filter(|(x, y)| x == y).count(), da.len())
}
