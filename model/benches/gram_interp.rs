//! Detection throughput (vectors/s, one thread) of the IR v2 golden model against its f32 net,
//! for the trained Gram-domain cg net `docs/gram/cg-k8-l4.model.json` (16×16 16-QAM, K = 8
//! layers × L = 4 inner steps) on block fading T = 14: the f32 net, the golden model of its
//! 8-bit PTQ IR (`kaq lower --ptq-bits 8`) and its fake-quant net, as [`Detector`]s on the
//! same 2058 vectors (147 channel blocks at 15..30 dB), inside a one-thread rayon pool, so the
//! ratios are per-core comparisons in one run. The golden model computes the per-block stage
//! (G, 1/tr G, D) once per block and allocates its buffers once per call.

use std::hint::black_box;
use std::sync::OnceLock;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kaq_ir::gram::GramInterpreter;
use kaq_model::Detector;
use kaq_model::gram::file::GramModelFile;
use kaq_model::gram::quantized::{CgQuantOptions, quantize_cg};
use kaq_model::link::stream_rng;
use rand::Rng;

/// Frames per channel block.
const T: usize = 14;
/// Channel blocks per timed `detect` call.
const BLOCKS: usize = 147;

/// The one-thread rayon pool every detector runs in.
fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("one-thread pool")
    })
}

fn bench(c: &mut Criterion) {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/gram/cg-k8-l4.model.json");
    let file = GramModelFile::load(&path).expect("the trained cg-k8-l4 model file");
    let net = file.net;
    let mut opts = CgQuantOptions::new(8);
    opts.calib_frames = 500;
    let fq = quantize_cg(&net, &opts).expect("PTQ");
    let golden = GramInterpreter::new(fq.ir().clone()).expect("valid IR");
    let link = net.link().clone().with_block(T).expect("block");
    let mut rng = stream_rng(14, 0);
    let snr: Vec<f64> = (0..BLOCKS)
        .flat_map(|_| std::iter::repeat_n(rng.random_range(15.0..30.0), T))
        .collect();
    let batch = link
        .generator()
        .expect("generator")
        .generate(&snr, &mut rng);
    let mut decisions = vec![0i32; batch.frames * batch.n];
    let mut group = c.benchmark_group("gram_cg_k8_l4_16x16_16qam_t14");
    group.throughput(Throughput::Elements(batch.frames as u64));
    for detector in [&net as &dyn Detector, &golden, &fq] {
        group.bench_function(detector.name(), |b| {
            b.iter(|| {
                pool().install(|| {
                    detector
                        .detect(black_box(&batch), &mut decisions)
                        .expect("detect")
                });
                black_box(&decisions);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
