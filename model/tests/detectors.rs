//! Cross-detector checks through the public API: [`DetectorSpec::build`] and the statistical
//! ordering of the classical detectors on one fixed-seed data set.

use kaq_model::detect::DetectorSpec;
use kaq_model::link::stream_rng;
use kaq_model::{LinkConfig, Modulation};

/// Gray-coded bit errors of a decision buffer against the transmitted levels.
fn bit_errors(modulation: Modulation, decided: &[i32], sent: &[i32]) -> u64 {
    decided
        .iter()
        .zip(sent)
        .map(|(&d, &x)| modulation.bit_errors(d, x) as u64)
        .sum()
}

/// 4×4 16-QAM at 20 dB over 4000 frames (64 000 bits), bit errors per detector. Every
/// stronger detector must make fewer errors than the weaker one by a stated margin, each well
/// inside the gap measured with this seed (ZF 3932, MMSE 2861, K-best:4 454, K-best:16 292,
/// ML 289), so the check is robust rather than a coin toss:
/// ZF ≥ 1.15 × MMSE (measured 1.37), MMSE ≥ 3 × K-best:4 (6.3), K-best:4 ≥ 1.2 × ML (1.57),
/// K-best:16 ≥ ML, and ML > 0 so the comparison means something.
#[test]
fn error_counts_follow_detector_strength() {
    let link = LinkConfig::new(4, 4, Modulation::Qam16).unwrap();
    let frames = 4000;
    let batch = link
        .generator()
        .unwrap()
        .generate(&vec![20.0; frames], &mut stream_rng(2024, 0));
    let mut errors = std::collections::BTreeMap::new();
    for spec in ["zf", "mmse", "kbest:4", "kbest:16", "ml"] {
        let detector = spec.parse::<DetectorSpec>().unwrap().build();
        let mut d = vec![0; batch.frames * batch.n];
        detector.detect(&batch, &mut d).unwrap();
        errors.insert(spec, bit_errors(link.modulation, &d, &batch.x));
    }
    eprintln!(
        "bit errors over {} bits: {errors:?}",
        link.bits_per_frame() * frames as u64
    );
    let e = |s: &str| errors[s] as f64;
    assert!(
        e("ml") > 0.0,
        "no errors at all: the SNR is too high for a meaningful check"
    );
    assert!(e("ml") <= e("kbest:16"), "{errors:?}");
    assert!(e("kbest:16") <= e("kbest:4"), "{errors:?}");
    assert!(e("ml") * 1.2 <= e("kbest:4"), "{errors:?}");
    assert!(e("kbest:4") * 3.0 <= e("mmse"), "{errors:?}");
    assert!(e("mmse") * 1.15 <= e("zf"), "{errors:?}");
}
