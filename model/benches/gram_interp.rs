//! Detection throughput (vectors/s, one thread) of the IR v2 golden model against its f32 net,
//! for the trained Gram-domain cg net `docs/gram/cg-k8-l4.model.json` (16×16 16-QAM, K = 8
//! layers × L = 4 inner steps) on block fading T = 14: the f32 net, the golden model of its
//! 8-bit PTQ IR (`kaq lower --ptq-bits 8`) and its fake-quant net, as [`Detector`]s on the
//! same 2058 vectors (147 channel blocks at 15..30 dB), inside a one-thread rayon pool, so the
//! ratios are per-core comparisons in one run. The golden model computes the per-block stage
//! (G, 1/tr G, D) once per block and allocates its buffers once per call.
//!
//! The near-ML EPNet `docs/gram/ep-k10.model.json` (K = 10, IR v5: a per-vector, per-layer
//! integer LDLᵀ inverse) and OAMP-Net2 `docs/gram/oamp-k10.model.json` (K = 10, IR v4) run
//! beside it on the same vectors: each f32 net and the golden model of its 8-bit PTQ IR, in
//! groups of their own (`gram_ep_oamp_…`, ten samples: an EP call takes about a second).
//!
//! Two groups time the same calls: `gram_cg_k8_l4_16x16_16qam_t14` in wall time and
//! `gram_cg_k8_l4_16x16_16qam_t14_cpu` in the CPU time of the process's threads (Linux
//! `/proc/self/task/*/schedstat`), which a shared, loaded machine does not inflate. Select one
//! with a filter, e.g. `cargo bench -p kaq-model --bench gram_interp -- _cpu/`.

use std::hint::black_box;
use std::sync::OnceLock;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kaq_ir::gram::GramInterpreter;
use kaq_ir::gram::ep::EpInterpreter;
use kaq_ir::gram::oamp::OampInterpreter;
use kaq_model::Detector;
use kaq_model::gram::GramNet;
use kaq_model::gram::ep_quant::{EpQuantOptions, lower_ep};
use kaq_model::gram::file::GramModelFile;
use kaq_model::gram::oamp_quant::{OampQuantOptions, lower_oamp};
use kaq_model::gram::quantized::{CgQuantOptions, FakeQuantCg, quantize_cg};
use kaq_model::link::{FrameBatch, stream_rng};
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

/// The three detectors and the vectors, built once for both groups.
struct Setup {
    net: GramNet,
    golden: GramInterpreter,
    fq: FakeQuantCg,
    ep_net: GramNet,
    ep_golden: EpInterpreter,
    oamp_net: GramNet,
    oamp_golden: OampInterpreter,
    batch: FrameBatch,
}

/// A trained Gram-net file of docs/gram/.
fn load_net(name: &str) -> GramNet {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/gram")
        .join(name);
    GramModelFile::load(&path)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .net
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let net = load_net("cg-k8-l4.model.json");
        let ep_net = load_net("ep-k10.model.json");
        let ep_golden =
            EpInterpreter::new(lower_ep(&ep_net, &EpQuantOptions::new(8)).expect("EP PTQ"))
                .expect("valid EP IR");
        let oamp_net = load_net("oamp-k10.model.json");
        let oamp_golden = OampInterpreter::new(
            lower_oamp(&oamp_net, &OampQuantOptions::new(8)).expect("OAMP PTQ"),
        )
        .expect("valid OAMP IR");
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
        Setup {
            net,
            golden,
            fq,
            ep_net,
            ep_golden,
            oamp_net,
            oamp_golden,
            batch,
        }
    })
}

fn bench_in<M: Measurement>(c: &mut Criterion<M>, group: &str) {
    let s = setup();
    run_group(c, group, &[&s.net, &s.golden, &s.fq], 100);
    run_group(
        c,
        &group.replace("cg_k8_l4", "ep_oamp_k10"),
        &[&s.ep_net, &s.ep_golden, &s.oamp_net, &s.oamp_golden],
        10,
    );
}

/// Times every detector of `detectors` on the setup's vectors in one group.
fn run_group<M: Measurement>(
    c: &mut Criterion<M>,
    group: &str,
    detectors: &[&dyn Detector],
    samples: usize,
) {
    let batch = &setup().batch;
    let mut decisions = vec![0i32; batch.frames * batch.n];
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Elements(batch.frames as u64));
    group.sample_size(samples);
    for &detector in detectors {
        group.bench_function(detector.name(), |b| {
            b.iter(|| {
                pool().install(|| {
                    detector
                        .detect(black_box(batch), &mut decisions)
                        .expect("detect")
                });
                black_box(&decisions);
            })
        });
    }
    group.finish();
}

fn wall(c: &mut Criterion) {
    bench_in(c, "gram_cg_k8_l4_16x16_16qam_t14");
}

fn cpu(c: &mut Criterion<ProcessCpu>) {
    bench_in(c, "gram_cg_k8_l4_16x16_16qam_t14_cpu");
}

/// CPU time (ns) of every thread of this process: the first field of each
/// `/proc/self/task/<tid>/schedstat` (0 where the file is missing).
fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Criterion measurement: the process's CPU time in nanoseconds.
struct ProcessCpu;

impl Measurement for ProcessCpu {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        cpu_ns()
    }
    fn end(&self, i: u64) -> u64 {
        cpu_ns().saturating_sub(i)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Values in ns of CPU time, shown as ms; throughputs per second of CPU time.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, _typical: f64, values: &mut [f64]) -> &'static str {
        for v in values {
            *v /= 1e6;
        }
        "ms cpu"
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per = match throughput {
            Throughput::Elements(n)
            | Throughput::Bytes(n)
            | Throughput::BytesDecimal(n)
            | Throughput::Bits(n) => *n,
        } as f64;
        for v in values {
            *v = per * 1e9 / *v / 1e3;
        }
        "Kelem/s cpu"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

criterion_group!(wall_time, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(ProcessCpu);
    targets = cpu
}
criterion_main!(wall_time, cpu_time);
