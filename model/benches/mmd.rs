//! Cost of KAQ's per-layer MMD² loss with gradients (student and log-bandwidth) at the paper's
//! batch (B = 128) and the 16×16 real dimension (N = 32), in each kernel mode, next to one
//! PGD-Net (K = 5) `loss_and_grad` on the same 16×16 16-QAM batch, so the per-layer overhead of
//! KAQ can be stated as a ratio of the two times. Teacher activations are the f32 net's output;
//! the student is their 8-bit quantization (Δ = max|x| / 127, paper eqs. 9–10). The group
//! `mmd_b128_n32_one_thread` runs both inside a one-thread rayon pool for a per-core ratio.

use criterion::{Criterion, criterion_group, criterion_main};
use kaq_model::link::stream_rng;
use kaq_model::mmd::{Bandwidths, Estimator, Mmd, MmdWorkspace};
use kaq_model::unfolded::{F32Frames, NetConfig, UnfoldedNet};
use kaq_model::{LinkConfig, Modulation};

const BATCH: usize = 128;

fn bench_mmd(c: &mut Criterion) {
    let link = LinkConfig::new(16, 16, Modulation::Qam16).expect("valid link");
    let mut generator = link.generator().expect("generator");
    let snrs: Vec<f64> = (0..BATCH).map(|i| (i % 6) as f64 * 5.0).collect();
    let frames = generator.generate(&snrs, &mut stream_rng(1, 0));
    let owned = F32Frames::from_frames(&frames, 0..frames.frames).expect("whole batch");
    let data = owned.as_batch();
    let dim = frames.n;
    let net = UnfoldedNet::new(NetConfig::default(), &link).expect("valid net");
    net.check(&data).expect("batch fits the net");

    let mut teacher = vec![0.0f32; BATCH * dim];
    net.forward(&data, &mut teacher);
    let step = teacher.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0;
    let student: Vec<f32> = teacher
        .iter()
        .map(|v| step * (v / step).round().clamp(-127.0, 127.0))
        .collect();

    let mut group = c.benchmark_group("mmd_b128_n32");
    let mut grad = vec![0.0f32; net.params().len()];
    group.bench_function("pgd_k5_loss_and_grad_16x16_16qam", |b| {
        b.iter(|| net.loss_and_grad(&data, &mut grad))
    });

    let mut workspace = MmdWorkspace::new(BATCH, dim).expect("valid shape");
    let median = workspace
        .median_bandwidth(&teacher, &student)
        .expect("valid activations");
    let mut grad_student = vec![0.0f32; BATCH * dim];
    let mut grad_log_sigma = [0.0f64; 3];
    for (name, bandwidths) in [
        (
            "learnable",
            Bandwidths::learnable([median; 3]).expect("valid bandwidth"),
        ),
        ("median", Bandwidths::Median),
        (
            "multi5",
            Bandwidths::multi_for(dim, 5.0).expect("valid bandwidths"),
        ),
    ] {
        let mmd = Mmd {
            bandwidths,
            estimator: Estimator::Biased,
        };
        group.bench_function(format!("mmd2_with_grad/{name}"), |b| {
            b.iter(|| {
                mmd.eval(
                    &mut workspace,
                    &teacher,
                    &student,
                    Some(&mut grad_student),
                    Some(&mut grad_log_sigma),
                )
                .expect("valid activations")
            })
        });
    }
    group.finish();

    // Per core: the net's batch is parallel over rayon, the MMD is single-threaded.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("one-thread pool");
    let mut group = c.benchmark_group("mmd_b128_n32_one_thread");
    group.bench_function("pgd_k5_loss_and_grad_16x16_16qam", |b| {
        b.iter(|| pool.install(|| net.loss_and_grad(&data, &mut grad)))
    });
    let mmd = Mmd {
        bandwidths: Bandwidths::learnable([median; 3]).expect("valid bandwidth"),
        estimator: Estimator::Biased,
    };
    group.bench_function("mmd2_with_grad/learnable", |b| {
        b.iter(|| {
            mmd.eval(
                &mut workspace,
                &teacher,
                &student,
                Some(&mut grad_student),
                Some(&mut grad_log_sigma),
            )
            .expect("valid activations")
        })
    });
    group.finish();
}

criterion_group!(benches, bench_mmd);
criterion_main!(benches);
