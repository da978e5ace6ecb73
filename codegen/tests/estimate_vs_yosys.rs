//! The analytic resource estimate (`kaq_codegen::estimate`, docs/synthesis.md §Estimate)
//! against Yosys's xilinx synthesis of the same designs, FINN-style: on six small committed
//! fixtures the design totals must agree within the stated tolerances: DSP48E1 within 10 %,
//! LUTs and flip-flops within 15 %. Three are lowered at the IR's 24-bit multipliers without an
//! update pipeline (PGD-Net at one lane, PGD-Net with momentum and the matched filter, ADMM-Net
//! at two lanes); three at 14-bit multipliers (`quant.mult_bits`, the flow's default) with the
//! update pipeline: PGD-Net 2×2 QPSK (N = 4) at two lanes and depth 2, ADMM-Net at one lane and
//! depth 1, PGD-Net 4×4 QPSK (N = 8, 16 bins) at two lanes and depth 1.
//!
//! The synthesis results are cached under the target directory (`CARGO_TARGET_TMPDIR`), so
//! only the first run pays for Yosys (about 5 minutes on two cores). A missing Yosys skips the
//! test, or fails it under `KAQ_REQUIRE_VERILATOR=1`.

mod common;

use common::{Config, fixture};
use kaq_codegen::estimate::estimate;
use kaq_codegen::hierarchy::{HierOptions, synthesize_units};
use kaq_codegen::synth::Target;
use kaq_codegen::{Options, generate_pipelined};
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

/// One fixture: its name, configuration, SNR bins, lanes and update pipeline depth.
struct Case {
    name: &'static str,
    config: Config,
    bins: usize,
    lanes: usize,
    upd_pipe: u64,
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
    let m14 = Config {
        mult_bits: 14,
        layers: 2,
        ..bpsk
    };
    let case = |name, config, bins, lanes, upd_pipe| Case {
        name,
        config,
        bins,
        lanes,
        upd_pipe,
    };
    let cases = [
        case("synth-pgd-bpsk", bpsk, 4, 1, 0),
        case(
            "synth-pgd-momentum-mf-bpsk",
            Config {
                momentum: true,
                init: Init::MatchedFilter,
                ..bpsk
            },
            4,
            1,
            0,
        ),
        case(
            "synth-admm-bpsk",
            Config {
                arch: Arch::Admm,
                prox: Prox::Box,
                layers: 2,
                ..bpsk
            },
            4,
            2,
            0,
        ),
        case(
            "synth-pgd-qpsk-m14",
            Config {
                modulation: Modulation::Qpsk,
                ..m14
            },
            4,
            2,
            2,
        ),
        case(
            "synth-admm-bpsk-m14",
            Config {
                arch: Arch::Admm,
                prox: Prox::Box,
                ..m14
            },
            4,
            1,
            1,
        ),
        case(
            "synth-pgd-qpsk4-m14",
            Config {
                modulation: Modulation::Qpsk,
                nt: 4,
                nr: 4,
                ..m14
            },
            16,
            2,
            1,
        ),
    ];
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("estimate-synth-cache");
    let mut failures = Vec::new();
    for c in cases {
        let name = c.name;
        let ir = fixture(name, &c.config, Some(c.bins));
        let options = Options {
            lanes: c.lanes,
            top: "kaq_top".to_string(),
            testbench_frames: 1,
            seed: 1,
        };
        let g = generate_pipelined(&ir, &options, &LinkFrames, c.upd_pipe).unwrap();
        assert_eq!(
            g.design.layers[0].upd_pipe, c.upd_pipe,
            "{name}: pipeline depth"
        );
        let mut hier = HierOptions::new(Target::Xilinx);
        hier.timing = false;
        hier.cache = Some(cache.clone());
        let tmp = tempfile::tempdir().unwrap();
        let y = synthesize_units(&g, tmp.path(), &hier, &|_| {}).unwrap();
        assert!(y.complete, "{name}: synthesis incomplete: {:?}", y.missing);
        let e = estimate(&g.design);
        // Per module, for the record (the tolerances are on the totals).
        for u in &y.units {
            let cells = u.cells.as_ref().unwrap();
            let module = format!("kaq_top_{}", u.unit.name);
            if let Some(m) = e.modules.iter().find(|m| m.module == module) {
                eprintln!(
                    "{name} {}: LUT {} / {}, FF {} / {}, DSP {} / {} (estimate / Yosys)",
                    u.unit.name,
                    m.estimate.lut,
                    cells.logic,
                    m.estimate.ff,
                    cells.ff,
                    m.estimate.dsp,
                    cells.dsp
                );
            }
        }
        let (e, t) = (e.total, &y.total);
        failures.extend(within(name, "DSP", e.dsp, t.dsp, DSP_TOL));
        failures.extend(within(name, "LUT", e.lut, t.logic, LUT_TOL));
        failures.extend(within(name, "FF", e.ff, t.ff, FF_TOL));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
