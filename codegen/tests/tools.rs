//! Generated designs under the open tools: for a matrix of small configurations, Verilator's
//! `--lint-only -Wall` is clean, Icarus compiles the design with its generated testbench and
//! the testbench prints `PASS n/n` under `vvp`; a corrupted expected word makes it print
//! `FAIL`; Yosys synthesizes one tiny design without latches.
//!
//! A missing tool skips the test, or fails it under `KAQ_REQUIRE_VERILATOR=1`. The matrix runs
//! on two worker threads (CI has two cores).

mod common;

use kaq_model::lower::LinkFrames;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Config, ir_with_bins};
use kaq_codegen::{Generated, Options, generate, write_design};
use kaq_model::Modulation;
use kaq_model::quant::QuantMethod;
use kaq_model::unfolded::{Arch, Init, Prox};
use kaq_sim::tools::{Tool, require};

/// Whether every tool is present; `false` skips the test, a required but missing tool panics.
fn tools_present(tools: &[Tool]) -> bool {
    for &tool in tools {
        match require(tool) {
            Ok(Some(_)) => {}
            Ok(None) => {
                eprintln!("skipping: {tool} not found (set KAQ_REQUIRE_VERILATOR=1 to fail)");
                return false;
            }
            Err(e) => panic!("{e}"),
        }
    }
    true
}

/// One case of the matrix: a net configuration, its SNR bins, lanes and top name.
#[derive(Debug, Clone)]
struct Case {
    config: Config,
    bins: usize,
    lanes: usize,
    top: &'static str,
}

fn case(config: Config, bins: usize, lanes: usize, top: &'static str) -> Case {
    Case {
        config,
        bins,
        lanes,
        top,
    }
}

/// The matrix: both architectures with every proximal operator, momentum, MF init, the three
/// modulations, nt and nr from 1 to 3, 1 to 4 layers, 4 to 8 bits, lane counts from 1 to N
/// (N = nt for BPSK, 2·nt otherwise) and 4 to 8 SNR bins.
fn matrix() -> Vec<Case> {
    let base = Config::default();
    vec![
        // PGD, soft, QPSK 2×2, K = 2, N = 4 with 1 lane.
        case(base, 4, 1, "kaq_top"),
        // PGD, box, BPSK 1×1, K = 1, 4 bits, N = 1.
        case(
            Config {
                prox: Prox::Box,
                modulation: Modulation::Bpsk,
                nt: 1,
                nr: 1,
                layers: 1,
                bits: 4,
                seed: 2,
                ..base
            },
            4,
            1,
            "det_bpsk",
        ),
        // PGD, QAM denoiser, 16-QAM 1×2, K = 2, 8 bits, N = 2 with 2 lanes.
        case(
            Config {
                prox: Prox::Qam,
                modulation: Modulation::Qam16,
                nt: 1,
                nr: 2,
                bits: 8,
                seed: 3,
                ..base
            },
            5,
            2,
            "kaq_top",
        ),
        // PGD with momentum, soft, QPSK 3×3, K = 3, N = 6 with 3 lanes.
        case(
            Config {
                momentum: true,
                nt: 3,
                nr: 3,
                layers: 3,
                seed: 4,
                ..base
            },
            4,
            3,
            "pgd_mom",
        ),
        // PGD with MF init and momentum, box, 16-QAM 2×3, K = 2, 7 bits, N = 4 with 4 lanes.
        case(
            Config {
                prox: Prox::Box,
                momentum: true,
                init: Init::MatchedFilter,
                modulation: Modulation::Qam16,
                nt: 2,
                nr: 3,
                bits: 7,
                seed: 5,
                ..base
            },
            6,
            4,
            "kaq_top",
        ),
        // PGD with MF init, QAM denoiser, BPSK 3×2, K = 4, 5 bits, N = 3 with 3 lanes.
        case(
            Config {
                prox: Prox::Qam,
                init: Init::MatchedFilter,
                modulation: Modulation::Bpsk,
                nt: 3,
                nr: 2,
                layers: 4,
                bits: 5,
                seed: 6,
                ..base
            },
            8,
            3,
            "kaq_top",
        ),
        // ADMM, soft, QPSK 2×2, K = 2, N = 4 with 2 lanes.
        case(
            Config {
                arch: Arch::Admm,
                seed: 7,
                ..base
            },
            4,
            2,
            "admm_soft",
        ),
        // ADMM, box, BPSK 2×3, K = 3, 4 bits, N = 2 with 1 lane.
        case(
            Config {
                arch: Arch::Admm,
                prox: Prox::Box,
                modulation: Modulation::Bpsk,
                nt: 2,
                nr: 3,
                layers: 3,
                bits: 4,
                seed: 8,
                ..base
            },
            4,
            1,
            "kaq_top",
        ),
        // ADMM, QAM denoiser, 16-QAM 1×1, K = 1, 8 bits, N = 2 with 1 lane.
        case(
            Config {
                arch: Arch::Admm,
                prox: Prox::Qam,
                modulation: Modulation::Qam16,
                nt: 1,
                nr: 1,
                layers: 1,
                bits: 8,
                seed: 9,
                ..base
            },
            4,
            1,
            "kaq_top",
        ),
        // ADMM with MF init, soft, QPSK 3×2, K = 2, 5 bits, N = 6 with 6 lanes.
        case(
            Config {
                arch: Arch::Admm,
                init: Init::MatchedFilter,
                nt: 3,
                nr: 2,
                bits: 5,
                seed: 10,
                ..base
            },
            8,
            6,
            "admm_mf",
        ),
        // ADMM with MF init, box, QPSK 1×3, K = 4, 6 bits, N = 2 with 2 lanes.
        case(
            Config {
                arch: Arch::Admm,
                prox: Prox::Box,
                init: Init::MatchedFilter,
                nt: 1,
                nr: 3,
                layers: 4,
                seed: 11,
                ..base
            },
            4,
            2,
            "kaq_top",
        ),
        // ADMM, QAM denoiser, 16-QAM 2×2, K = 3, 7 bits, N = 4 with 2 lanes.
        case(
            Config {
                arch: Arch::Admm,
                prox: Prox::Qam,
                modulation: Modulation::Qam16,
                layers: 3,
                bits: 7,
                seed: 12,
                ..base
            },
            6,
            2,
            "kaq_top",
        ),
        // PGD with momentum, soft, 16-QAM 3×3, K = 1, 6 bits, N = 6 with 2 lanes, PTQ steps.
        case(
            Config {
                momentum: true,
                modulation: Modulation::Qam16,
                nt: 3,
                nr: 3,
                layers: 1,
                method: QuantMethod::Ptq,
                seed: 13,
                ..base
            },
            4,
            2,
            "kaq_top",
        ),
        // ADMM, soft, BPSK 1×2, K = 2, 8 bits, N = 1, LSQ steps.
        case(
            Config {
                arch: Arch::Admm,
                modulation: Modulation::Bpsk,
                nt: 1,
                nr: 2,
                bits: 8,
                method: QuantMethod::Lsq,
                seed: 14,
                ..base
            },
            4,
            1,
            "kaq_top",
        ),
    ]
}

fn generated(c: &Case, frames: usize) -> Generated {
    let ir = ir_with_bins(&c.config, Some(c.bins));
    let options = Options {
        lanes: c.lanes,
        top: c.top.to_string(),
        testbench_frames: frames,
        seed: c.config.seed,
    };
    generate(&ir, &options, &LinkFrames).unwrap_or_else(|e| panic!("{c:?}: {e}"))
}

/// Runs `cmd` in `dir`; returns (success, stdout + stderr).
fn run(cmd: &mut Command, dir: &Path) -> (bool, String) {
    let out = cmd
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn verilator_lint(dir: &Path, top: &str) -> Result<(), String> {
    let (ok, text) = run(
        Command::new("verilator")
            .args(["--lint-only", "-Wall", "--top-module", top, "-f"])
            .arg(format!("{top}.f")),
        dir,
    );
    if ok && !text.contains("%Warning") && !text.contains("%Error") {
        Ok(())
    } else {
        Err(format!("verilator --lint-only -Wall:\n{text}"))
    }
}

/// Compiles the design with its testbench under Icarus and returns what `vvp` printed.
fn icarus(dir: &Path, top: &str) -> Result<String, String> {
    let (ok, text) = run(
        Command::new("iverilog")
            .args(["-g2012", "-o", "tb.vvp", "-c"])
            .arg(format!("{top}.f"))
            .arg(format!("{top}_tb.v")),
        dir,
    );
    if !ok || !text.trim().is_empty() {
        return Err(format!("iverilog -g2012 (ok = {ok}):\n{text}"));
    }
    let (ok, text) = run(Command::new("vvp").args(["-n", "tb.vvp"]), dir);
    if !ok {
        return Err(format!("vvp failed:\n{text}"));
    }
    Ok(text)
}

fn check_case(c: &Case, frames: usize) -> Result<(), String> {
    let g = generated(c, frames);
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    write_design(&g, tmp.path(), false).map_err(|e| e.to_string())?;
    verilator_lint(tmp.path(), c.top)?;
    let text = icarus(tmp.path(), c.top)?;
    let pass = format!("PASS {frames}/{frames}");
    if text.lines().any(|l| l.trim() == pass) && !text.contains("FAIL") {
        Ok(())
    } else {
        Err(format!("testbench did not print `{pass}`:\n{text}"))
    }
}

#[test]
fn matrix_lints_clean_and_passes_its_testbench() {
    if !tools_present(&[Tool::Verilator, Tool::Iverilog, Tool::Vvp]) {
        return;
    }
    let cases = matrix();
    assert!(cases.len() >= 12);
    let frames = 24;
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(c) = cases.get(i) else { break };
                    if let Err(e) = check_case(c, frames) {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("case {i} {c:?}:\n{e}"));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn lint_check_catches_a_warning() {
    if !tools_present(&[Tool::Verilator]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("unused.v"),
        "`default_nettype none\nmodule unused(input wire a, input wire b, output wire y);\n\
         assign y = a;\nendmodule\n",
    )
    .unwrap();
    std::fs::write(tmp.path().join("unused.f"), "unused.v\n").unwrap();
    let err = verilator_lint(tmp.path(), "unused").expect_err("an unused input went unnoticed");
    assert!(err.contains("UNUSED"), "{err}");
}

/// Flips the lowest bit of the expected word of frame `frame` (always inside the output
/// width) and checks that the testbench reports that frame.
#[test]
fn corrupted_expected_word_fails_the_testbench() {
    if !tools_present(&[Tool::Iverilog, Tool::Vvp]) {
        return;
    }
    let c = &matrix()[0];
    let frames = 16;
    let g = generated(c, frames);
    let tmp = tempfile::tempdir().unwrap();
    write_design(&g, tmp.path(), false).unwrap();
    // The uncorrupted design passes, so the failure below is the corruption's.
    let text = icarus(tmp.path(), c.top).unwrap();
    assert!(text.contains(&format!("PASS {frames}/{frames}")), "{text}");

    let path = tmp.path().join(format!("{}_expect.mem", c.top));
    let original = std::fs::read_to_string(&path).unwrap();
    let bad = 9;
    let lines: Vec<String> = original
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i != bad {
                return l.to_string();
            }
            let mut chars: Vec<char> = l.chars().collect();
            let last = chars.last_mut().unwrap();
            let digit = last.to_digit(16).unwrap() ^ 1;
            *last = char::from_digit(digit, 16).unwrap();
            chars.into_iter().collect()
        })
        .collect();
    assert_eq!(lines.len(), frames);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let text = icarus(tmp.path(), c.top).unwrap();
    assert!(
        text.contains(&format!("FAIL frame {bad} of {frames}")),
        "no FAIL at frame {bad}:\n{text}"
    );
    assert!(!text.contains("PASS"), "{text}");
}

/// Synthesizes the Verilog files of `files` (in `dir`) with `synth -flatten` and asserts
/// that no latch and at least one flip-flop came out.
fn yosys_no_latches(dir: &Path, files: &[String], top: &str) -> Result<(), String> {
    let script = format!(
        "read_verilog -sv {}; synth -flatten -top {top}; \
         select -assert-none t:$dlatch t:$adlatch t:$dlatchsr t:$_DLATCH_* t:$_DLATCHSR_*; \
         select -assert-min 1 t:$_*DFF*",
        files.join(" ")
    );
    let (ok, text) = run(Command::new("yosys").args(["-q", "-p", &script]), dir);
    if ok {
        Ok(())
    } else {
        Err(format!("yosys:\n{text}"))
    }
}

#[test]
fn tiny_design_synthesizes_without_latches() {
    if !tools_present(&[Tool::Yosys]) {
        return;
    }
    // The check itself catches a latch.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("latch.v"),
        "module latch(input wire clk, input wire en, input wire d, output reg q, output reg r);\n\
         always @* if (en) q = d;\n\
         always @(posedge clk) r <= d;\n\
         endmodule\n",
    )
    .unwrap();
    let err = yosys_no_latches(tmp.path(), &["latch.v".to_string()], "latch")
        .expect_err("a latch went unnoticed");
    assert!(err.contains("Assertion failed"), "{err}");

    // BPSK 1×1 with soft thresholds, K = 1, 4 bits, 4 SNR bins, 1 lane.
    let c = case(
        Config {
            modulation: Modulation::Bpsk,
            nt: 1,
            nr: 1,
            layers: 1,
            bits: 4,
            seed: 21,
            ..Config::default()
        },
        4,
        1,
        "syn_top",
    );
    let g = generated(&c, 4);
    let tmp = tempfile::tempdir().unwrap();
    write_design(&g, tmp.path(), false).unwrap();
    let files: Vec<String> = g.sources().iter().map(|f| f.name.clone()).collect();
    yosys_no_latches(tmp.path(), &files, c.top).unwrap();
}
