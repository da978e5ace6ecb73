//! Throughput of the f32 unfolded nets in the paper configuration (PGD-Net, K = 5, 16×16
//! 16-QAM, batch 128): training steps (forward + backward) in samples/s, forward-only in
//! frames/s, and the net as a [`Detector`] (f64 → f32 conversion, forward, slicing) in frames/s.
//! The group `inference_one_thread` runs PGD-Net and MMSE as detectors on the same frames inside
//! a one-thread rayon pool, so their ratio is a per-core comparison measured in one run.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kaq_model::detect::DetectorSpec;
use kaq_model::link::stream_rng;
use kaq_model::unfolded::{Arch, F32Frames, NetConfig, Prox, UnfoldedNet};
use kaq_model::{Detector, LinkConfig, Modulation};

const BATCH: usize = 128;

fn bench_unfolded(c: &mut Criterion) {
    let link = LinkConfig::new(16, 16, Modulation::Qam16).expect("valid link");
    let mut generator = link.generator().expect("generator");
    let snrs: Vec<f64> = (0..BATCH).map(|i| (i % 6) as f64 * 5.0).collect();
    let frames = generator.generate(&snrs, &mut stream_rng(1, 0));
    let owned = F32Frames::from_frames(&frames, 0..frames.frames).expect("whole batch");
    let data = owned.as_batch();

    let mut group = c.benchmark_group("unfolded_16x16_16qam_k5_batch128");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (arch, prox) in [
        (Arch::Pgd, Prox::Soft),
        (Arch::Admm, Prox::Soft),
        (Arch::Pgd, Prox::Qam),
    ] {
        let config = NetConfig {
            arch,
            prox,
            ..NetConfig::default()
        };
        let net = UnfoldedNet::new(config, &link).expect("valid net");
        net.check(&data).expect("batch fits the net");
        let name = Detector::name(&net);
        let mut grad = vec![0.0f32; net.params().len()];
        group.bench_function(format!("loss_and_grad/{name}"), |b| {
            b.iter(|| net.loss_and_grad(&data, &mut grad))
        });
        let mut out = vec![0.0f32; BATCH * frames.n];
        group.bench_function(format!("forward/{name}"), |b| {
            b.iter(|| net.forward(&data, &mut out))
        });
        let mut decisions = vec![0i32; BATCH * frames.n];
        group.bench_function(format!("detect/{name}"), |b| {
            b.iter(|| net.detect(&frames, &mut decisions).expect("detect"))
        });
    }
    group.finish();

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("one-thread pool");
    let mut group = c.benchmark_group("inference_one_thread_16x16_16qam");
    group.throughput(Throughput::Elements(BATCH as u64));
    let pgd = UnfoldedNet::new(NetConfig::default(), &link).expect("valid net");
    let mmse = DetectorSpec::Mmse.build();
    let mut decisions = vec![0i32; BATCH * frames.n];
    for detector in [&pgd as &dyn Detector, mmse.as_ref()] {
        group.bench_function(detector.name(), |b| {
            b.iter(|| pool.install(|| detector.detect(&frames, &mut decisions).expect("detect")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_unfolded);
criterion_main!(benches);
