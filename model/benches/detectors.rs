//! Detection throughput (frames/s, one thread) of the classical detectors on 16×16 16-QAM at
//! 10 dB. Frames are generated once outside the timed loop; only `Detector::detect` is timed.
//! The nalgebra reference MMSE runs in the same group so the fast kernel's speed-up is a ratio
//! measured in one run.
//!
//! Two groups: `detect_16x16_16qam_10dB` in wall time (criterion's default), and
//! `detect_16x16_16qam_10dB_cpu` in the benchmark thread's own CPU time (Linux
//! `/proc/thread-self/schedstat`, nanoseconds), which stays meaningful on a machine shared with
//! other jobs, where wall time also counts the time the thread waited for a core.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kaq_model::detect::{KBest, KBestVariant, Kernel, LinearDetector, LinearKind};
use kaq_model::link::stream_rng;
use kaq_model::{Detector, FrameBatch, LinkConfig, Modulation};

fn frames(count: usize) -> FrameBatch {
    let link = LinkConfig::new(16, 16, Modulation::Qam16).expect("valid link");
    link.generator()
        .expect("generator")
        .generate(&vec![10.0; count], &mut stream_rng(7, 0))
}

/// CPU time of the calling thread in nanoseconds, or None where the kernel does not report it.
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// Criterion measurement of the benchmark thread's CPU time.
struct ThreadCpuTime;

/// Formats durations as criterion's wall-time measurement does.
static WALL_TIME: WallTime = WallTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = Duration;

    fn start(&self) -> u64 {
        thread_cpu_ns().unwrap_or(0)
    }

    fn end(&self, start: u64) -> Duration {
        Duration::from_nanos(thread_cpu_ns().unwrap_or(0).saturating_sub(start))
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

/// The detectors under test with the frames each one runs on (K-best is slower, so fewer).
fn detectors() -> Vec<(Box<dyn Detector>, FrameBatch)> {
    let linear = frames(1000);
    vec![
        (Box::new(LinearDetector::mmse()), linear.clone()),
        (
            Box::new(LinearDetector::new(LinearKind::Mmse, Kernel::Reference)),
            linear.clone(),
        ),
        (Box::new(LinearDetector::zf()), linear),
        (Box::new(KBest::new(32)), frames(100)),
        (
            Box::new(KBest::with_variant(32, KBestVariant::Zf)),
            frames(100),
        ),
    ]
}

fn run_group<M: Measurement>(c: &mut Criterion<M>, group_name: &str) {
    let mut group = c.benchmark_group(group_name);
    for (detector, batch) in &detectors() {
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

fn bench_wall_time(c: &mut Criterion) {
    run_group(c, "detect_16x16_16qam_10dB");
}

fn bench_cpu_time(c: &mut Criterion<ThreadCpuTime>) {
    if thread_cpu_ns().is_none() {
        eprintln!("no /proc/thread-self/schedstat: skipping the CPU-time group");
        return;
    }
    run_group(c, "detect_16x16_16qam_10dB_cpu");
}

criterion_group!(wall, bench_wall_time);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench_cpu_time
}
criterion_main!(wall, cpu);
