//! The analytic resource estimate (`kaq_codegen::estimate`, docs/synthesis.md §Estimate)
//! against Yosys's xilinx synthesis of the same designs, FINN-style: on three small committed
//! fixtures (PGD-Net at one lane, PGD-Net with momentum and the matched filter, ADMM-Net at two
//! lanes) the design totals must agree within the stated tolerances: DSP48E1 within 10 %, LUTs
//! and flip-flops within 15 %.
//!
//! The synthesis results are cached under the target directory (`CARGO_TARGET_TMPDIR`), so
//! only the first run pays for Yosys (about 3 minutes on two cores). A missing Yosys skips the
//! test, or fails it under `KAQ_REQUIRE_VERILATOR=1`.

mod common;

use common::{Config, fixture};
use kaq_codegen::estimate::estimate;
use kaq_codegen::hierarchy::{HierOptions, synthesize_units};
use kaq_codegen::synth::Target;
use kaq_codegen::{Options, generate, lower};
use kaq_model::Modulation;
use kaq_model::lower::LinkFrames;
use kaq_model::unfolded::{Arch, Init, Prox};
use kaq_sim::tools::{Tool, require};

/// Relative tolerances of the design totals (estimate / Yosys - 1).
const DSP_TOL: f64 = 0.10;
const LUT_TOL: f64 = 0.15;
const FF_TOL: f64 = 0.15;

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

fn within(name: &str, what: &str, estimate: u64, yosys: u64, tol: f64) -> Option<String> {
    let err = estimate as f64 / yosys as f64 - 1.0;
    eprintln!(
        "{name}: {what} estimate {estimate}, Yosys {yosys} ({:+.1} %)",
        100.0 * err
    );
    (err.abs() > tol).then(|| {
        format!(
            "{name}: {what} estimate {estimate} vs Yosys {yosys} ({:+.1} %, tolerance {:.0} %)",
            100.0 * err,
            100.0 * tol
        )
    })
}

#[test]
fn estimate_matches_yosys_xilinx_within_tolerance() {
    if !yosys_present() {
        return;
    }
    let bpsk = Config {
        modulation: Modulation::Bpsk,
        nt: 2,
        nr: 2,
        layers: 3,
        bits: 4,
        ..Config::default()
    };
    let cases = [
        ("synth-pgd-bpsk", bpsk, 1),
        (
            "synth-pgd-momentum-mf-bpsk",
            Config {
                momentum: true,
                init: Init::MatchedFilter,
                ..bpsk
            },
            1,
        ),
        (
            "synth-admm-bpsk",
            Config {
                arch: Arch::Admm,
                prox: Prox::Box,
                layers: 2,
                ..bpsk
            },
            2,
        ),
    ];
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("estimate-synth-cache");
    let mut failures = Vec::new();
    for (name, config, lanes) in cases {
        let ir = fixture(name, &config, Some(4));
        let options = Options {
            lanes,
            top: "kaq_top".to_string(),
            testbench_frames: 1,
            seed: 1,
        };
        let g = generate(&ir, &options, &LinkFrames).unwrap();
        let mut hier = HierOptions::new(Target::Xilinx);
        hier.timing = false;
        hier.cache = Some(cache.clone());
        let tmp = tempfile::tempdir().unwrap();
        let y = synthesize_units(&g, tmp.path(), &hier, &|_| {}).unwrap();
        assert!(y.complete, "{name}: synthesis incomplete: {:?}", y.missing);
        let e = estimate(&lower(&ir, lanes, "kaq_top").unwrap()).total;
        let t = &y.total;
        failures.extend(within(name, "DSP", e.dsp, t.dsp, DSP_TOL));
        failures.extend(within(name, "LUT", e.lut, t.logic, LUT_TOL));
        failures.extend(within(name, "FF", e.ff, t.ff, FF_TOL));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
