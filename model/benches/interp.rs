//! Detection throughput (frames/s, one thread) of the integer golden model against the nets it
//! comes from, on 16×16 16-QAM: for PGD-Net (soft prox, K = 5, the paper configuration) and
//! ADMM-Net, the f32 net, its 8-bit KAQ fake-quant net and the interpreter of the IR lowered
//! from it, all as [`Detector`]s on the same 2048 frames at 0..25 dB, inside a one-thread rayon
//! pool, so the ratios between them are per-core comparisons measured in one run. The nets'
//! parameters are the initial ones perturbed at random (no training): speed does not depend on
//! their values.
//!
//! Two groups: `interp_16x16_16qam` in wall time (criterion's default), and
//! `interp_16x16_16qam_cpu` in the CPU time of the pool's worker thread, where `detect` runs
//! (Linux `/proc/thread-self/schedstat`, nanoseconds), which stays meaningful on a machine
//! shared with other jobs, where wall time also counts the time the thread waited for a core.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kaq_ir::Interpreter;
use kaq_model::link::stream_rng;
use kaq_model::lower::{LowerOptions, lower};
use kaq_model::quant::{QuantConfig, QuantMethod, QuantNet};
use kaq_model::train::{SetKind, TrainSet};
use kaq_model::unfolded::{Arch, NetConfig, Prox, UnfoldedNet};
use kaq_model::{Detector, FrameBatch, LinkConfig, Modulation};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Frames per timed `detect` call.
const FRAMES: usize = 2048;

fn link() -> LinkConfig {
    LinkConfig::new(16, 16, Modulation::Qam16).expect("valid link")
}

/// 2048 frames at 0, 5, …, 25 dB.
fn frames() -> FrameBatch {
    let snrs: Vec<f64> = (0..FRAMES).map(|i| (i % 6) as f64 * 5.0).collect();
    link()
        .generator()
        .expect("generator")
        .generate(&snrs, &mut stream_rng(3, 0))
}

/// The f32 net of `arch` (soft prox, the default K = 5) with perturbed parameters, its 8-bit
/// KAQ fake-quant net (α ≠ 0, so the steps differ across SNR bins) and the interpreter of
/// the IR lowered from that.
fn models(arch: Arch) -> (UnfoldedNet, QuantNet, Interpreter) {
    let link = link();
    let config = NetConfig {
        arch,
        prox: Prox::Soft,
        ..NetConfig::default()
    };
    let mut net = UnfoldedNet::new(config, &link).expect("valid net");
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let names = net.param_names();
    for (p, name) in net.params_mut().iter_mut().zip(&names) {
        *p *= rng.random_range(0.6f32..1.4);
        if name.starts_with("lambda") {
            *p = p.abs();
        }
    }
    let set = TrainSet::generate(&link, 256, &[0.0, 10.0, 20.0, 30.0], 5, SetKind::Train)
        .expect("calibration set");
    let mut q = QuantNet::calibrate(
        &net,
        QuantMethod::Kaq,
        &QuantConfig::default(),
        &set.as_batch(),
    )
    .expect("calibration");
    // The last 2K parameters are the KAQ α and γ of each layer.
    let k = net.config().layers;
    let len = q.params().len();
    let tail = &mut q.params_mut()[len - 2 * k..];
    for i in 0..k {
        let gamma = tail[k + i];
        tail[i] = gamma * rng.random_range(0.5f32..3.0);
        tail[k + i] = gamma * rng.random_range(0.3f32..0.9);
    }
    let ir = lower(&q, LowerOptions::default()).expect("lowering");
    let interp = Interpreter::new(ir).expect("valid IR");
    (net, q, interp)
}

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

/// CPU time of the calling thread in nanoseconds, or None where the kernel does not report it.
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// CPU time of the pool's worker thread (where `detect` runs) in nanoseconds.
fn worker_cpu_ns() -> Option<u64> {
    pool().install(thread_cpu_ns)
}

/// Criterion measurement of the CPU time of the pool's worker thread.
struct ThreadCpuTime;

/// Formats durations as criterion's wall-time measurement does.
static WALL_TIME: WallTime = WallTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = Duration;

    fn start(&self) -> u64 {
        worker_cpu_ns().unwrap_or(0)
    }

    fn end(&self, start: u64) -> Duration {
        Duration::from_nanos(worker_cpu_ns().unwrap_or(0).saturating_sub(start))
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        WALL_TIME.formatter()
    }
}

fn run_group<M: Measurement>(c: &mut Criterion<M>, group_name: &str) {
    let batch = frames();
    let mut decisions = vec![0i32; batch.frames * batch.n];
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(batch.frames as u64));
    for arch in [Arch::Pgd, Arch::Admm] {
        let (net, q, interp) = models(arch);
        assert!(interp.is_fast(), "the default formats take the 16-bit path");
        for detector in [&net as &dyn Detector, &q, &interp] {
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
    }
    group.finish();
}

fn bench_wall_time(c: &mut Criterion) {
    run_group(c, "interp_16x16_16qam");
}

fn bench_cpu_time(c: &mut Criterion<ThreadCpuTime>) {
    if worker_cpu_ns().is_none() {
        eprintln!("no /proc/thread-self/schedstat: skipping the CPU-time group");
        return;
    }
    run_group(c, "interp_16x16_16qam_cpu");
}

criterion_group!(wall, bench_wall_time);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench_cpu_time
}
criterion_main!(wall, cpu);
