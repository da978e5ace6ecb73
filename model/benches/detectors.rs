//! Detection throughput (frames/s, one thread) of the classical detectors on 16×16 16-QAM at
//! 10 dB. Frames are generated once outside the timed loop; only `Detector::detect` is timed.
//! The nalgebra reference MMSE runs in the same group so the fast kernel's speed-up is a ratio
//! measured in one run.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kaq_model::detect::{KBest, Kernel, LinearDetector, LinearKind};
use kaq_model::link::stream_rng;
use kaq_model::{Detector, FrameBatch, LinkConfig, Modulation};

fn frames(count: usize) -> FrameBatch {
    let link = LinkConfig::new(16, 16, Modulation::Qam16).expect("valid link");
    link.generator()
        .expect("generator")
        .generate(&vec![10.0; count], &mut stream_rng(7, 0))
}

fn bench_detectors(c: &mut Criterion) {
    let linear_batch = frames(1000);
    let kbest_batch = frames(100);
    let detectors: Vec<(Box<dyn Detector>, &FrameBatch)> = vec![
        (Box::new(LinearDetector::mmse()), &linear_batch),
        (
            Box::new(LinearDetector::new(LinearKind::Mmse, Kernel::Reference)),
            &linear_batch,
        ),
        (Box::new(LinearDetector::zf()), &linear_batch),
        (Box::new(KBest::new(32)), &kbest_batch),
    ];
    let mut group = c.benchmark_group("detect_16x16_16qam_10dB");
    for (detector, batch) in &detectors {
        let mut decisions = vec![0; batch.frames * batch.n];
        group.throughput(Throughput::Elements(batch.frames as u64));
        group.bench_function(detector.name(), |b| {
            b.iter(|| {
                detector
                    .detect(black_box(batch), &mut decisions)
                    .expect("detect");
                black_box(&decisions);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_detectors);
criterion_main!(benches);
