//! `kaq ber --rtl`: BER through the Verilator-built RTL equals the golden model's, point by
//! point (the committed example IR, 2×2 QPSK), and a link mismatch names `--rtl`.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn example_ir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pgd-qpsk-2x2/ir.json")
}

fn verilator_present() -> bool {
    match kaq_sim::tools::require(kaq_sim::tools::Tool::Verilator) {
        Ok(Some(_)) => true,
        Ok(None) => {
            eprintln!("skipping: verilator not found (set KAQ_REQUIRE_VERILATOR=1 to fail)");
            false
        }
        Err(e) => panic!("{e}"),
    }
}

/// The `ber.json` in `dir` has two SNR points of the golden model (`…-int`), each with bit
/// errors, and the RTL's (`…-rtl`) points have the same SNR, bit errors, bits and frames.
fn assert_rtl_points_equal_golden(dir: &Path) {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ber.json")).unwrap()).unwrap();
    let points = doc["points"].as_array().unwrap();
    let of = |suffix: &str| -> Vec<(f64, u64, u64, u64)> {
        points
            .iter()
            .filter(|p| p["detector"].as_str().unwrap().ends_with(suffix))
            .map(|p| {
                (
                    p["snr_db"].as_f64().unwrap(),
                    p["bit_errors"].as_u64().unwrap(),
                    p["bits"].as_u64().unwrap(),
                    p["frames"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let (golden, rtl) = (of("-int"), of("-rtl"));
    assert_eq!(golden.len(), 2);
    assert_eq!(golden, rtl, "the RTL's BER differs from the golden model's");
    assert!(golden.iter().all(|p| p.1 > 0));
}

#[test]
fn rtl_ber_equals_the_golden_model() {
    if !verilator_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ir = example_ir();
    Command::cargo_bin("kaq")
        .unwrap()
        .current_dir(dir.path())
        .args([
            "ber",
            "--nt",
            "2",
            "--nr",
            "2",
            "--mod",
            "qpsk",
            "--detector",
            "mmse",
        ])
        .arg("--ir")
        .arg(&ir)
        .arg("--rtl")
        .arg(&ir)
        .args([
            "--snr",
            "0,10",
            "--min-errors",
            "200",
            "--max-frames",
            "3000",
        ])
        .args(["--json", "ber.json"])
        .assert()
        .success();
    assert_rtl_points_equal_golden(dir.path());
}

#[test]
fn rtl_of_another_link_exits_2_naming_the_flag() {
    Command::cargo_bin("kaq")
        .unwrap()
        .args([
            "ber",
            "--nt",
            "4",
            "--nr",
            "4",
            "--mod",
            "qpsk",
            "--detector",
            "mmse",
        ])
        .arg("--rtl")
        .arg(example_ir())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--rtl"));
}

#[path = "common/gram_ir.rs"]
mod gram_ir;

/// The IR v2 engine through `--rtl` on block fading (channel blocks of 7 vectors): every
/// point's bit errors, bits and frames equal the golden model's, outputs only (the flow's
/// RTL, no tap port) by default and with every stage's taps checked under `--rtl-taps`.
#[test]
fn rtl_ber_of_an_ir_v2_design_equals_the_golden_model() {
    if !verilator_present() {
        return;
    }
    for taps in [false, true] {
        rtl_ber_of_an_ir_v2_design(taps);
    }
}

#[test]
fn rtl_taps_without_rtl_is_a_usage_error() {
    Command::cargo_bin("kaq")
        .unwrap()
        .args(["ber", "--rtl-taps", "--snr", "5"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--rtl"));
}

fn rtl_ber_of_an_ir_v2_design(taps: bool) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cg.json"),
        gram_ir::cg_2x2_16qam().to_json(),
    )
    .unwrap();
    Command::cargo_bin("kaq")
        .unwrap()
        .current_dir(dir.path())
        .args([
            "ber",
            "--nt",
            "2",
            "--nr",
            "2",
            "--mod",
            "16qam",
            "--block",
            "7",
            "--ir",
            "cg.json",
            "--rtl",
            "cg.json",
            "--snr",
            "5,15",
            "--min-errors",
            "100",
            "--max-frames",
            "600",
            "--json",
            "ber.json",
        ])
        .args(taps.then_some("--rtl-taps"))
        .assert()
        .success()
        .stderr(predicate::str::contains("IR v2 engine"))
        .stderr(predicate::str::contains("with its tap port").count(usize::from(taps)));
    assert_rtl_points_equal_golden(dir.path());
}
