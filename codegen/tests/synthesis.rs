//! Hierarchical synthesis against the flattened design (docs/synthesis.md): on small
//! configurations of both architectures, with momentum and the matched-filter start, the
//! stages synthesized in their context sum to the flat synthesis of the top (flip-flops, DSPs
//! and memories exactly, LUTs within 3 %); a second run comes from the cache; a time limit of
//! zero gives a partial result that names what it lacks.
//!
//! A missing Yosys skips the tests, or fails them under `KAQ_REQUIRE_VERILATOR=1`.

mod common;

use kaq_model::lower::LinkFrames;
use std::time::Duration;

use common::{Config, fixture};
use kaq_codegen::hierarchy::{HierOptions, UnitStatus, synthesize_units};
use kaq_codegen::synth::{Target, synthesize};
use kaq_codegen::{Generated, Options, generate};
use kaq_model::Modulation;
use kaq_model::unfolded::{Arch, Init, Prox};
use kaq_sim::tools::{Tool, require};

fn yosys_present() -> bool {
    match require(Tool::Yosys) {
        Ok(Some(_)) => true,
        Ok(None) => {
            eprintln!("skipping: yosys not found (set KAQ_REQUIRE_VERILATOR=1 to fail)");
            false
        }
        Err(e) => panic!("{e}"),
    }
}

fn design(name: &str, config: Config, lanes: usize) -> Generated {
    let ir = fixture(name, &config, Some(4));
    let options = Options {
        lanes,
        top: "kaq_top".to_string(),
        testbench_frames: 1,
        seed: 1,
    };
    generate(&ir, &options, &LinkFrames).unwrap()
}

/// Small designs that exercise every stream of the liveness model: PGD-Net (s and u pass
/// through and are dead), PGD-Net with momentum and the matched filter (x2 live, the first
/// stage writes s), ADMM-Net (every state computed).
fn cases() -> Vec<(&'static str, Generated)> {
    let bpsk = Config {
        modulation: Modulation::Bpsk,
        nt: 2,
        nr: 2,
        layers: 3,
        bits: 4,
        ..Config::default()
    };
    vec![
        ("pgd", design("synth-pgd-bpsk", bpsk, 1)),
        (
            "pgd-momentum-mf",
            design(
                "synth-pgd-momentum-mf-bpsk",
                Config {
                    momentum: true,
                    init: Init::MatchedFilter,
                    ..bpsk
                },
                1,
            ),
        ),
        (
            "admm",
            design(
                "synth-admm-bpsk",
                Config {
                    arch: Arch::Admm,
                    prox: Prox::Box,
                    layers: 2,
                    ..bpsk
                },
                2,
            ),
        ),
    ]
}

#[test]
fn stages_in_context_sum_to_the_flat_design() {
    if !yosys_present() {
        return;
    }
    for (name, g) in cases() {
        let tmp = tempfile::tempdir().unwrap();
        let flat = synthesize(&g, &tmp.path().join("flat"), Target::Xilinx).unwrap();
        let mut options = HierOptions::new(Target::Xilinx);
        options.timing = false;
        let hier = synthesize_units(&g, &tmp.path().join("units"), &options, &|_| {}).unwrap();
        assert!(hier.complete, "{name}");
        let t = &hier.total;
        assert_eq!(t.ff, flat.ff, "{name}: FFs {t:?} vs flat {flat:?}");
        assert_eq!(t.dsp, flat.dsp, "{name}: DSPs");
        assert_eq!(t.memory, flat.memory, "{name}: memories");
        assert_eq!(t.latch, 0, "{name}");
        let ratio = t.logic as f64 / flat.logic as f64;
        assert!(
            (0.97..=1.03).contains(&ratio),
            "{name}: {} LUTs by stage vs {} flat",
            t.logic,
            flat.logic
        );
    }
}

#[test]
fn cache_and_time_limit() {
    if !yosys_present() {
        return;
    }
    let (_, g) = cases().remove(0);
    let tmp = tempfile::tempdir().unwrap();
    let mut options = HierOptions::new(Target::Xilinx);
    options.cache = Some(tmp.path().join("cache"));
    let first = synthesize_units(&g, &tmp.path().join("a"), &options, &|_| {}).unwrap();
    assert!(first.complete);
    assert!(
        first
            .units
            .iter()
            .all(|u| u.status == UnitStatus::Synthesized)
    );
    let (unit, path) = first.critical.clone().expect("xilinx units are timed");
    assert!(path.delay_ns > 0.5, "{unit}: {path:?}");
    assert!(path.cells.contains_key("FDRE") || path.cells.contains_key("FDSE"));
    let second = synthesize_units(&g, &tmp.path().join("b"), &options, &|_| {}).unwrap();
    assert!(second.units.iter().all(|u| u.status == UnitStatus::Cached));
    assert_eq!(second.total.cells, first.total.cells);
    assert_eq!(second.critical, first.critical);
    assert!(second.cached_seconds > 0.0);

    options.cache = None;
    options.limit = Some(Duration::ZERO);
    let none = synthesize_units(&g, &tmp.path().join("c"), &options, &|_| {}).unwrap();
    assert!(!none.complete);
    assert!(none.units.iter().all(|u| u.status == UnitStatus::NotRun));
    let instances: usize = none.units.iter().map(|u| u.unit.instances.len()).sum();
    assert_eq!(none.missing.len(), instances);
    assert_eq!(none.total.total, 0);
}
