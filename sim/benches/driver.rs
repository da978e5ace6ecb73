//! Cycles per second of the Verilator driver on the MAC fixture: bare clock ticks, and the
//! full co-simulation loop (drive inputs, tick, read every output, compare with the Rust model).

#[path = "../tests/mac_fixture/mod.rs"]
mod mac_fixture;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kaq_sim::tools::{self, Tool};
use kaq_sim::{Model, PortId};
use mac_fixture::{MacInputs, MacState, from_words, to_words};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CYCLES: u64 = 10_000;

fn driver(c: &mut Criterion) {
    let Some(_) = tools::require(Tool::Verilator).expect("verilator required but unusable") else {
        eprintln!("verilator not installed: driver bench skipped");
        return;
    };
    let built = mac_fixture::build()
        .build()
        .expect("building the MAC fixture");
    eprintln!(
        "mac_fixture build: {:?} in {:.2?}",
        built.outcome, built.elapsed
    );
    let mut group = c.benchmark_group("mac_fixture");
    group.throughput(Throughput::Elements(CYCLES));

    let mut model = Model::new(&built, 1).unwrap();
    model.reset(2).unwrap();
    model.set("in_valid", 1).unwrap();
    model.set("out_ready", 1).unwrap();
    model.set("a", 3).unwrap();
    model.set("b", 0xffd).unwrap();
    group.bench_function("tick", |bench| {
        bench.iter(|| {
            for _ in 0..CYCLES {
                model.tick().unwrap();
            }
            black_box(model.get("acc").unwrap())
        })
    });

    let mut model = Model::new(&built, 1).unwrap();
    let port = |name: &str| -> PortId { model.port(name).unwrap() };
    let [
        rst,
        in_valid,
        a,
        b,
        clear,
        tag,
        out_ready,
        out_valid,
        acc,
        count,
        tag_q,
        history,
    ] = [
        "rst",
        "in_valid",
        "a",
        "b",
        "clear",
        "tag",
        "out_ready",
        "out_valid",
        "acc",
        "count",
        "tag_q",
        "history",
    ]
    .map(port);
    model.reset(2).unwrap();
    let mut state = MacState::default();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let stimulus: Vec<MacInputs> = (0..CYCLES)
        .map(|_| MacInputs {
            rst: false,
            in_valid: rng.random_bool(0.7),
            a: rng.random(),
            b: rng.random(),
            clear: rng.random_bool(0.05),
            tag: rng.random(),
            out_ready: rng.random_bool(0.6),
        })
        .collect();
    let mut words = [0u32; 3];
    group.bench_function("drive_tick_check", |bench| {
        bench.iter(|| {
            for inputs in &stimulus {
                model.set(rst, 0).unwrap();
                model.set(in_valid, u64::from(inputs.in_valid)).unwrap();
                model.set(a, inputs.a).unwrap();
                model.set(b, inputs.b).unwrap();
                model.set(clear, u64::from(inputs.clear)).unwrap();
                model.set_wide(tag, &to_words(inputs.tag, 3)).unwrap();
                model.set(out_ready, u64::from(inputs.out_ready)).unwrap();
                model.tick().unwrap();
                state = state.step(inputs);
                assert_eq!(model.get(out_valid).unwrap() == 1, state.out_valid);
                assert_eq!(model.get(acc).unwrap(), state.acc);
                assert_eq!(model.get(count).unwrap(), state.count);
                model.get_wide_into(tag_q, &mut words).unwrap();
                assert_eq!(from_words(&words), state.tag_q);
                model.get_wide_into(history, &mut words).unwrap();
                assert_eq!(from_words(&words), state.history);
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = driver
}
criterion_main!(benches);
