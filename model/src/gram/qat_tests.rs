//! The QAT surrogate of the cg net: its forward is the fake-quant net's, its gradient the
//! finite-difference gradient of the taped surrogate, and a trained net lowers to an IR whose
//! golden model agrees with the fake-quant net.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::cg::Tape;
use super::qat::QatCg;
use super::quantized::{CgQuantOptions, CgTensor, quantize_cg};
use super::{Family, GramConfig, GramNet};
use crate::detect::Detector;
use crate::link::LinkConfig;
use crate::modulation::Modulation;
use crate::train::Forward;
use crate::unfolded::F32Frames;
use kaq_ir::gram::GramInterpreter;

fn small_net(seed: u64) -> GramNet {
    let link = LinkConfig::new(3, 4, Modulation::Qam16).unwrap();
    let config = GramConfig {
        family: Family::Cg,
        layers: 3,
        inner: 3,
    };
    let mut net = GramNet::new(config, &link).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for v in net.params_mut() {
        *v += rng.random_range(-0.2..0.2);
    }
    net
}

fn frames(net: &GramNet, count: usize, block: usize, seed: u64) -> crate::link::FrameBatch {
    let link = net.link().clone().with_block(block).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let snr: Vec<f64> = (0..count.div_ceil(block))
        .flat_map(|_| std::iter::repeat_n(rng.random_range(8.0..25.0), block))
        .take(count)
        .collect();
    link.generator().unwrap().generate(&snr, &mut rng)
}

#[test]
fn surrogate_forward_is_the_fake_quant_forward() {
    for (seed, bits) in [(1u64, 6u32), (2, 8), (3, 4)] {
        let net = small_net(seed);
        let mut opts = CgQuantOptions::new(bits);
        opts.calib_frames = 300;
        let fq = quantize_cg(&net, &opts).unwrap();
        let qat = QatCg::new(&fq);
        let batch = frames(&net, 60, 5, seed);
        let data = F32Frames::from_frames(&batch, 0..batch.frames).unwrap();
        let mut out = vec![0f32; batch.frames * batch.n];
        qat.forward(&data.as_batch(), &mut out);
        let codes = fq.forward_codes(&batch);
        let step = 2f32.powi(-fq.ir().state.frac());
        for (i, (&o, &c)) in out.iter().zip(&codes).enumerate() {
            assert_eq!(o, c as f32 * step, "bits {bits}, value {i}");
        }
    }
}

#[test]
fn surrogate_gradient_matches_central_differences() {
    // Wide formats, so the offsets the gradient ignores (e inside v², the chain factors of the
    // quantized log-parameters) are far below the tolerance.
    let net = small_net(7);
    let mut opts = CgQuantOptions::new(12);
    for t in [
        CgTensor::E,
        CgTensor::P,
        CgTensor::D,
        CgTensor::V2,
        CgTensor::Tau2,
    ] {
        opts.widths.push((t, 20));
    }
    opts.widths.push((CgTensor::Coef, 20));
    opts.calib_frames = 300;
    let fq = quantize_cg(&net, &opts).unwrap();
    let mut qat = QatCg::new(&fq);
    let batch = frames(&net, 12, 3, 9);
    let data = F32Frames::from_frames(&batch, 0..batch.frames).unwrap();
    qat.freeze_constants();
    let mut tapes = vec![Tape::<f64>::default(); batch.frames];
    let (_, grad) = qat.loss_and_grad_taped(&data.as_batch(), &mut tapes);
    tapes.iter_mut().for_each(|t| t.replay = true);
    let p0: Vec<f32> = qat.net().params().to_vec();
    let gmax = grad.iter().fold(0.0f64, |a, g| a.max(g.abs()));
    let mut checked = 0;
    for i in 0..p0.len() {
        let h = 1e-3f32;
        let mut at = |v: f32| {
            let mut p = p0.clone();
            p[i] = v;
            crate::train::Trainable::params_mut(&mut qat).copy_from_slice(&p);
            qat.loss_and_grad_taped(&data.as_batch(), &mut tapes).0
        };
        let (plus, minus) = (at(p0[i] + h), at(p0[i] - h));
        // The step is exact in f32 (both ends are representable), so divide by the real step.
        let span = f64::from(p0[i] + h) - f64::from(p0[i] - h);
        let fd = (plus - minus) / span;
        let tol = 2e-2 * fd.abs().max(grad[i].abs()) + 1e-3 * gmax + 1e-6;
        assert!(
            (fd - grad[i]).abs() <= tol,
            "{}: analytic {} vs finite difference {fd}",
            net.param_names()[i],
            grad[i]
        );
        checked += 1;
    }
    assert_eq!(checked, p0.len());
}

#[test]
fn trained_qat_net_lowers_and_agrees_with_its_golden_model() {
    let net = small_net(11);
    let mut opts = CgQuantOptions::new(6);
    opts.calib_frames = 300;
    let fq = quantize_cg(&net, &opts).unwrap();
    let mut qat = QatCg::new(&fq);
    // A few plain gradient steps change every constant.
    let batch = frames(&net, 64, 4, 12);
    let data = F32Frames::from_frames(&batch, 0..batch.frames).unwrap();
    let mut grad = vec![0f32; net.params().len()];
    for _ in 0..5 {
        crate::train::Trainable::loss_and_grad(&qat, &data.as_batch(), &mut grad);
        let p = crate::train::Trainable::params_mut(&mut qat);
        for (v, g) in p.iter_mut().zip(&grad) {
            *v -= 0.05 * g.signum();
        }
    }
    assert_ne!(qat.net().params(), net.params());
    let fq2 = qat.fake_quant().unwrap();
    assert_ne!(fq2.ir(), fq.ir(), "the constants did not change");
    let golden = GramInterpreter::new(fq2.ir().clone()).unwrap();
    let test = frames(&net, 700, 7, 13);
    let mut a = vec![0i32; test.frames * test.n];
    let mut b = vec![0i32; test.frames * test.n];
    golden.detect(&test, &mut a).unwrap();
    fq2.detect(&test, &mut b).unwrap();
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    assert!(
        same as f64 >= 0.999 * a.len() as f64,
        "{same} of {}",
        a.len()
    );
    // And the QAT forward is the fake-quant forward of the lowered net.
    let data = F32Frames::from_frames(&test, 0..test.frames).unwrap();
    let mut out = vec![0f32; test.frames * test.n];
    qat.forward(&data.as_batch(), &mut out);
    let step = 2f32.powi(-fq2.ir().state.frac());
    let codes = fq2.forward_codes(&test);
    assert!(out.iter().zip(&codes).all(|(&o, &c)| o == c as f32 * step));
}
