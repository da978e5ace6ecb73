//! One training epoch of the paper configuration: 16×16 16-QAM, PGD-Net with the soft prox,
//! K = 5, 50 000 samples, batch 128 (391 Adam steps, shuffling and gathering included).
//!
//! The data set is drawn once outside the measurement. Run with `cargo bench -p kaq-model
//! --bench train`; the full 50-epoch run is timed with `kaq train` (see the README).

use criterion::{Criterion, criterion_group, criterion_main};
use kaq_model::train::{SetKind, TrainConfig, TrainSet, Trainer};
use kaq_model::unfolded::UnfoldedNet;

fn paper_epoch(c: &mut Criterion) {
    let config = TrainConfig::default();
    let set = TrainSet::generate(
        &config.link,
        config.samples,
        &config.snr_db,
        config.seed,
        SetKind::Train,
    )
    .expect("the paper configuration is valid");
    let net = UnfoldedNet::new(config.net.clone(), &config.link).expect("valid net");
    let mut trainer = Trainer::new(net, set.len(), config.batch, config.seed);
    let mut epoch = 0;
    let mut group = c.benchmark_group("train");
    group.sample_size(10);
    group.bench_function("epoch_pgd_soft_k5_16x16_16qam_50k_b128", |b| {
        b.iter(|| {
            epoch += 1;
            trainer
                .epoch(&set, epoch, config.lr, &mut |_| {})
                .expect("the paper configuration trains")
        })
    });
    group.finish();
}

criterion_group!(benches, paper_epoch);
criterion_main!(benches);
