//! The Verilator driver end to end: build, cache, load, drive, compare with a Rust model.
//!
//! Each test asks `tools::require` first: without Verilator it returns early, unless
//! `KAQ_REQUIRE_VERILATOR=1`, where the absence fails the test. Sources are written by the
//! tests; compiled models go to the shared content-addressed cache (locked, so the tests of
//! this and other processes may build concurrently).

mod mac_fixture;

use std::time::Instant;

use kaq_sim::tools::{self, Tool};
use kaq_sim::{CacheOutcome, Model, Port, SimError, VerilatorBuild};
use mac_fixture::{MacInputs, MacState, from_words, to_words};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn verilator_present() -> bool {
    tools::require(Tool::Verilator)
        .expect("KAQ_REQUIRE_VERILATOR=1 but verilator is unusable")
        .is_some()
}

/// A 12-bit operand: mostly uniform, often a corner, sometimes with garbage above bit 11.
fn operand(rng: &mut ChaCha8Rng) -> u64 {
    let base = match rng.random_range(0..8) {
        0 => [0x800, 0x7ff, 0xfff, 0x000, 0x001][rng.random_range(0..5)],
        _ => rng.random_range(0..0x1000),
    };
    if rng.random_bool(0.1) {
        base | (rng.random::<u64>() << 12)
    } else {
        base
    }
}

fn random_inputs(rng: &mut ChaCha8Rng) -> MacInputs {
    MacInputs {
        rst: rng.random_bool(0.002),
        in_valid: rng.random_bool(0.7),
        a: operand(rng),
        b: operand(rng),
        clear: rng.random_bool(0.05),
        tag: rng.random::<u128>(),
        out_ready: rng.random_bool(0.6),
    }
}

fn apply(model: &mut Model, ids: &MacIds, inputs: &MacInputs) -> Result<(), SimError> {
    model.set(ids.rst, u64::from(inputs.rst))?;
    model.set(ids.in_valid, u64::from(inputs.in_valid))?;
    model.set(ids.a, inputs.a)?;
    model.set(ids.b, inputs.b)?;
    model.set(ids.clear, u64::from(inputs.clear))?;
    model.set_wide(ids.tag, &to_words(inputs.tag, 3))?;
    model.set(ids.out_ready, u64::from(inputs.out_ready))?;
    Ok(())
}

struct MacIds {
    rst: kaq_sim::PortId,
    in_valid: kaq_sim::PortId,
    in_ready: kaq_sim::PortId,
    a: kaq_sim::PortId,
    b: kaq_sim::PortId,
    clear: kaq_sim::PortId,
    tag: kaq_sim::PortId,
    out_valid: kaq_sim::PortId,
    out_ready: kaq_sim::PortId,
    acc: kaq_sim::PortId,
    count: kaq_sim::PortId,
    tag_q: kaq_sim::PortId,
    history: kaq_sim::PortId,
}

impl MacIds {
    fn new(model: &Model) -> Result<Self, SimError> {
        Ok(MacIds {
            rst: model.port("rst")?,
            in_valid: model.port("in_valid")?,
            in_ready: model.port("in_ready")?,
            a: model.port("a")?,
            b: model.port("b")?,
            clear: model.port("clear")?,
            tag: model.port("tag")?,
            out_valid: model.port("out_valid")?,
            out_ready: model.port("out_ready")?,
            acc: model.port("acc")?,
            count: model.port("count")?,
            tag_q: model.port("tag_q")?,
            history: model.port("history")?,
        })
    }
}

fn assert_state(model: &Model, ids: &MacIds, want: &MacState, cycle: usize) {
    let got = MacState {
        out_valid: model.get(ids.out_valid).unwrap() == 1,
        acc: model.get(ids.acc).unwrap(),
        count: model.get(ids.count).unwrap(),
        tag_q: from_words(&model.get_wide(ids.tag_q).unwrap()),
        history: from_words(&model.get_wide(ids.history).unwrap()),
    };
    assert_eq!(&got, want, "state differs after cycle {cycle}");
    assert_eq!(
        model.get_signed(ids.acc).unwrap(),
        want.acc_signed(),
        "signed acc after cycle {cycle}"
    );
}

#[test]
fn mac_matches_rust_model_bit_for_bit_over_random_cycles() {
    if !verilator_present() {
        return;
    }
    let built = mac_fixture::build().build().unwrap();
    eprintln!(
        "mac_fixture: {:?} in {:.2?} (runtime: {:?})",
        built.outcome,
        built.elapsed,
        built.runtime.as_ref().map(|r| (r.outcome, r.elapsed))
    );
    const CYCLES: usize = 20_000;
    for seed in [1u64, 2] {
        let mut model = Model::new(&built, seed).unwrap();
        let ids = MacIds::new(&model).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        model.reset(2).unwrap();
        let mut state = MacState::default();
        assert_state(&model, &ids, &state, 0);
        let (mut accepted, mut negative) = (0usize, 0usize);
        let start = Instant::now();
        for cycle in 1..=CYCLES {
            let inputs = random_inputs(&mut rng);
            apply(&mut model, &ids, &inputs).unwrap();
            model.eval();
            assert_eq!(
                model.get(ids.in_ready).unwrap() == 1,
                state.in_ready(&inputs),
                "in_ready before cycle {cycle}"
            );
            assert_eq!(model.get(ids.a).unwrap(), inputs.a & 0xfff, "input masked");
            model.tick().unwrap();
            let next = state.step(&inputs);
            accepted += usize::from(next.count == state.count + 1);
            state = next;
            negative += usize::from(state.acc_signed() < 0);
            assert_state(&model, &ids, &state, cycle);
        }
        let rate = CYCLES as f64 / start.elapsed().as_secs_f64();
        eprintln!("seed {seed}: {CYCLES} checked cycles at {rate:.0} cycles/s");
        assert_eq!(model.cycles(), CYCLES as u64 + 2);
        // The stimulus must actually exercise the design: many accepted samples and both signs.
        assert!(accepted > CYCLES / 4, "only {accepted} samples accepted");
        assert!(
            negative > CYCLES / 10 && negative < CYCLES * 9 / 10,
            "{negative}"
        );
    }
}

#[test]
fn run_while_low_is_ticking_with_reads_between() {
    if !verilator_present() {
        return;
    }
    // `Model::run_while_low` (the shim's `sim_run`) against `tick` and reads from Rust, inputs
    // held: the same cycles, the same records of the captured ports (a wide one as its
    // words, a narrow one as two) on the cycles the valid port (here in_ready) reads 1, the same state after,
    // the stop before the first cycle a stop port reads 1, a full buffer ending the run.
    let built = mac_fixture::build().build().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for round in 0..6 {
        let inputs = MacInputs {
            rst: false,
            in_valid: true,
            out_ready: round % 2 == 0,
            ..random_inputs(&mut rng)
        };
        let mut slow = Model::new(&built, round).unwrap();
        let mut fast = Model::new(&built, round).unwrap();
        let ids = MacIds::new(&slow).unwrap();
        for m in [&mut slow, &mut fast] {
            m.reset(2).unwrap();
            apply(m, &ids, &inputs).unwrap();
            m.eval();
        }
        let stop = if round < 2 { vec![] } else { vec![ids.count] };
        let max = 40;
        let mut want = Vec::new();
        let mut cycles = 0;
        while cycles < max && stop.iter().all(|&p| slow.get(p).unwrap() == 0) {
            if slow.get(ids.in_ready).unwrap() == 1 {
                want.extend(slow.get_wide(ids.tag_q).unwrap());
                let acc = slow.get(ids.acc).unwrap();
                want.extend([acc as u32, (acc >> 32) as u32]);
            }
            slow.tick().unwrap();
            cycles += 1;
        }
        let capture = fast.capture(ids.in_ready, &[ids.tag_q, ids.acc]).unwrap();
        assert_eq!(capture.record_words(), 3 + 2);
        let mut buf = vec![0u32; 5 * 64];
        let (n, used) = fast
            .run_while_low(max, &stop, Some(&capture), &mut buf)
            .unwrap();
        assert_eq!((n, &buf[..used]), (cycles, &want[..]), "round {round}");
        eprintln!(
            "round {round}: {cycles} cycles, {} record words",
            want.len()
        );
        assert_eq!(fast.cycles(), slow.cycles());
        for id in [ids.out_valid, ids.in_ready, ids.acc, ids.count] {
            assert_eq!(fast.get(id).unwrap(), slow.get(id).unwrap());
        }
        assert_eq!(
            fast.get_wide(ids.history).unwrap(),
            slow.get_wide(ids.history).unwrap()
        );
        if want.len() > 5 {
            // Room for one record: the run ends before the cycle of the second.
            let mut again = Model::new(&built, round).unwrap();
            again.reset(2).unwrap();
            apply(&mut again, &ids, &inputs).unwrap();
            again.eval();
            let mut one = vec![0u32; 5];
            let (n1, used1) = again
                .run_while_low(max, &stop, Some(&capture), &mut one)
                .unwrap();
            assert!(
                n1 < cycles && used1 == 5 && one == want[..5],
                "round {round}"
            );
        }
    }
    let mut model = Model::new(&built, 1).unwrap();
    let ids = MacIds::new(&model).unwrap();
    let wide = model
        .run_while_low(1, &[ids.tag_q], None, &mut [])
        .unwrap_err();
    assert!(matches!(wide, SimError::WidePort { .. }), "{wide}");
    assert!(matches!(
        model.capture(ids.history, &[ids.acc]).unwrap_err(),
        SimError::WidePort { .. }
    ));
}

#[test]
fn rebuild_with_same_inputs_is_a_cache_hit() {
    if !verilator_present() {
        return;
    }
    let first = mac_fixture::build().build().unwrap();
    let start = Instant::now();
    let second = mac_fixture::build().build().unwrap();
    eprintln!("cache hit in {:.2?}", start.elapsed());
    assert_eq!(second.outcome, CacheOutcome::Hit);
    assert_eq!(first.library, second.library);
    assert_eq!(first.key, second.key);
    assert!(second.runtime.is_none(), "a hit needs no runtime");
    // Any change of the inputs is a different key (computed without compiling).
    let base = mac_fixture::build().key().unwrap();
    assert_eq!(base, first.key);
    let edited = mac_fixture::VERILOG.replace("// kaq-sim test fixture", "// edited");
    let variants = [
        mac_fixture::build().trace(true).key().unwrap(),
        mac_fixture::build().strict_lint(false).key().unwrap(),
        VerilatorBuild::new(mac_fixture::TOP)
            .source_text("mac_fixture.v", edited)
            .ports(mac_fixture::ports())
            .strict_lint(true)
            .key()
            .unwrap(),
        mac_fixture::build()
            .port(Port::output("extra", 3))
            .key()
            .unwrap(),
    ];
    for (i, key) in variants.iter().enumerate() {
        assert_ne!(key, &base, "variant {i} shares the base key");
    }
}

#[test]
fn unknown_ports_and_wrong_accesses_are_errors() {
    if !verilator_present() {
        return;
    }
    let built = mac_fixture::build().build().unwrap();
    let mut model = Model::new(&built, 7).unwrap();
    let err = model.port("nope").unwrap_err();
    assert!(
        matches!(&err, SimError::UnknownPort { name, available, .. }
            if name == "nope" && available.contains("history")),
        "{err}"
    );
    assert!(matches!(
        model.set("nope", 1),
        Err(SimError::UnknownPort { .. })
    ));
    let err = model.set("acc", 1).unwrap_err();
    assert!(matches!(err, SimError::WrongDirection { .. }), "{err}");
    let err = model.get("history").unwrap_err();
    assert!(matches!(err, SimError::WidePort { width: 96, .. }), "{err}");
    let err = model.set_wide("tag", &[1, 2]).unwrap_err();
    assert!(
        matches!(
            err,
            SimError::WordCount {
                expected: 3,
                got: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = model.trace("/tmp/never.vcd").unwrap_err();
    assert!(matches!(err, SimError::Trace { .. }), "{err}");
    // Narrow ports through the word interface, masked like the scalar one.
    model.set_wide("a", &[0xffff_f123]).unwrap();
    assert_eq!(model.get_wide("a").unwrap(), vec![0x123]);
    model.set_signed("b", -1).unwrap();
    assert_eq!(model.get("b").unwrap(), 0xfff);
    assert_eq!(model.get_signed("b").unwrap(), -1);
}

#[test]
fn uninitialised_state_is_random_but_reproducible_per_seed() {
    if !verilator_present() {
        return;
    }
    let built = mac_fixture::build().build().unwrap();
    let acc_before_reset = |seed| {
        let mut model = Model::new(&built, seed).unwrap();
        model.eval();
        model.get("acc").unwrap()
    };
    let values: Vec<u64> = (1..=6).map(acc_before_reset).collect();
    assert_eq!(values[0], acc_before_reset(1), "same seed, same X state");
    assert!(
        values.iter().any(|&v| v != values[0]),
        "randReset(2) gave the same acc for six seeds: {values:?}"
    );
}

fn adder_source(width: u32, nonce: &str) -> String {
    format!(
        "`default_nettype none\n// {nonce}\nmodule adder (\n    input  wire [{m}:0] x,\n    \
         input  wire [{m}:0] y,\n    output wire [{m}:0] sum\n);\n    assign sum = x + y;\nendmodule\n",
        m = width - 1
    )
}

fn counter_source(nonce: &str) -> String {
    format!(
        "`default_nettype none\n// {nonce}\nmodule counter (\n    input  wire clk,\n    \
         input  wire rst_n,\n    output reg [12:0] q\n);\n    always @(posedge clk) begin\n        \
         if (!rst_n) q <= 13'd0;\n        else q <= q + 13'd1;\n    end\nendmodule\n"
    )
}

#[test]
fn two_designs_build_in_parallel_threads() {
    if !verilator_present() {
        return;
    }
    // A fresh comment makes both builds cache misses, so they really compile concurrently;
    // their cache entries are removed at the end.
    let nonce = format!(
        "nonce {} {:?}",
        std::process::id(),
        std::time::SystemTime::now()
    );
    let dir = tempfile::tempdir().unwrap();
    let adder_path = dir.path().join("adder.v");
    std::fs::write(&adder_path, adder_source(37, &nonce)).unwrap();
    let counter = counter_source(&nonce);
    let start = Instant::now();
    let (adder, counter) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            let built = VerilatorBuild::new("adder")
                .source_file(&adder_path)
                .ports([
                    Port::input("x", 37),
                    Port::input("y", 37),
                    Port::output("sum", 37),
                ])
                .no_clock()
                .no_reset()
                .strict_lint(true)
                .build()
                .unwrap();
            let mut m = Model::new(&built, 3).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            for _ in 0..1000 {
                let (x, y) = (rng.random::<u64>(), rng.random::<u64>());
                m.set("x", x).unwrap();
                m.set("y", y).unwrap();
                m.eval();
                let mask = (1u64 << 37) - 1;
                assert_eq!(m.get("sum").unwrap(), (x.wrapping_add(y)) & mask);
            }
            let err = m.tick().unwrap_err();
            assert!(
                matches!(err, SimError::NoControlPort { role: "clock", .. }),
                "{err}"
            );
            assert!(matches!(m.reset(1), Err(SimError::NoControlPort { .. })));
            built
        });
        let c = s.spawn(|| {
            let built = VerilatorBuild::new("counter")
                .source_text("counter.v", counter.as_str())
                .ports([
                    Port::input("clk", 1),
                    Port::input("rst_n", 1),
                    Port::output("q", 13),
                ])
                .reset("rst_n", kaq_sim::ResetPolarity::ActiveLow)
                .strict_lint(true)
                .build()
                .unwrap();
            let mut m = Model::new(&built, 4).unwrap();
            m.reset(3).unwrap();
            assert_eq!(m.get("q").unwrap(), 0);
            for n in 1..=9000u64 {
                m.tick().unwrap();
                assert_eq!(m.get("q").unwrap(), n % 8192);
            }
            built
        });
        (a.join().unwrap(), c.join().unwrap())
    });
    eprintln!(
        "two parallel builds in {:.2?} (adder {:?} {:.2?}, counter {:?} {:.2?})",
        start.elapsed(),
        adder.outcome,
        adder.elapsed,
        counter.outcome,
        counter.elapsed
    );
    assert_eq!(adder.outcome, CacheOutcome::Miss);
    assert_eq!(counter.outcome, CacheOutcome::Miss);
    assert_ne!(adder.library.parent(), counter.library.parent());
    // A port handle of one design is refused by the other.
    let a = Model::new(&adder, 1).unwrap();
    let c = Model::new(&counter, 1).unwrap();
    let sum = a.port("sum").unwrap();
    assert!(matches!(c.get(sum), Err(SimError::ForeignPort { .. })));
    drop((a, c));
    for built in [adder, counter] {
        std::fs::remove_dir_all(built.library.parent().unwrap()).unwrap();
    }
}

#[test]
fn vcd_trace_is_written_when_enabled() {
    if !verilator_present() {
        return;
    }
    let built = mac_fixture::build().trace(true).build().unwrap();
    eprintln!(
        "traced mac_fixture: {:?} in {:.2?}",
        built.outcome, built.elapsed
    );
    let dir = tempfile::tempdir().unwrap();
    let vcd = dir.path().join("mac.vcd");
    {
        let mut model = Model::new(&built, 5).unwrap();
        model.trace(&vcd).unwrap();
        let err = model.trace(dir.path().join("again.vcd")).unwrap_err();
        assert!(err.to_string().contains("already open"), "{err}");
        model.reset(1).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let ids = MacIds::new(&model).unwrap();
        for _ in 0..50 {
            let mut inputs = random_inputs(&mut rng);
            inputs.rst = false;
            apply(&mut model, &ids, &inputs).unwrap();
            model.tick().unwrap();
        }
    }
    let text = std::fs::read_to_string(&vcd).unwrap();
    assert!(text.contains("$enddefinitions"), "no VCD header");
    for signal in ["acc", "history", "clk"] {
        assert!(text.contains(signal), "{signal} not traced");
    }
    // Two samples per cycle: reset cycle plus 50 → time stamps up to #102.
    assert!(text.contains("\n#102\n"), "missing the last time stamp");
}

#[test]
fn build_failures_carry_the_compiler_log() {
    if !verilator_present() {
        return;
    }
    let err = VerilatorBuild::new("broken")
        .source_text(
            "broken.v",
            "module broken(input wire clk);\n  this is not verilog\nendmodule\n",
        )
        .port(Port::input("clk", 1))
        .no_reset()
        .build()
        .unwrap_err();
    let SimError::Build { step, log_tail, .. } = &err else {
        panic!("expected a build error, got {err}");
    };
    assert!(step.contains("broken"), "{step}");
    assert!(log_tail.contains("%Error"), "{log_tail}");
    assert!(log_tail.contains("broken.v:2"), "{log_tail}");
    // Under strict lint a warning is fatal too.
    let err = VerilatorBuild::new("unused")
        .source_text(
            "unused.v",
            "`default_nettype none\nmodule unused(input wire clk, input wire [3:0] d, output wire q);\n  assign q = d[0];\nendmodule\n",
        )
        .ports([Port::input("clk", 1), Port::input("d", 4), Port::output("q", 1)])
        .no_reset()
        .strict_lint(true)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("UNUSED"), "{err}");
}
