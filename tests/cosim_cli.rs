//! End-to-end tests of `kaq cosim` on a small IR (2×2 QPSK, K = 2, 6 bits): a clean run with
//! stalls, its JSON and trace, and usage errors. Without Verilator the run test returns early,
//! unless `KAQ_REQUIRE_VERILATOR=1`, where it fails.

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use kaq_model::lower::{LowerOptions, lower};
use kaq_model::quant::{QuantConfig, QuantMethod, QuantNet};
use kaq_model::train::{SetKind, TrainSet};
use kaq_model::unfolded::{NetConfig, UnfoldedNet};
use kaq_model::{LinkConfig, Modulation};
use predicates::prelude::*;
use serde_json::Value;

fn kaq(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("kaq").unwrap();
    cmd.current_dir(dir);
    cmd
}

/// Writes the IR of a calibrated 2-layer PGD-Net on 2×2 QPSK with 8 SNR bins to `dir/ir.json`.
fn write_ir(dir: &Path) {
    write_ir_with(dir, NetConfig::default(), &[6, 6], "ir.json");
}

/// Writes the IR of `config` calibrated with per-layer activation bits `bits` (one per layer)
/// on 2×2 QPSK with 8 SNR bins to `dir/name`.
fn write_ir_with(dir: &Path, config: NetConfig, bits: &[u32], name: &str) {
    let link = LinkConfig::new(2, 2, Modulation::Qpsk).unwrap();
    let config = NetConfig {
        layers: bits.len(),
        ..config
    };
    let net = UnfoldedNet::new(config, &link).unwrap();
    let set = TrainSet::generate(&link, 64, &[0.0, 10.0, 20.0], 1, SetKind::Train).unwrap();
    let mut qc = QuantConfig::with_layer_bits(bits);
    qc.snr_bins.count = 8;
    qc.snr_bins.step_db = 50.0 / 8.0;
    let q = QuantNet::calibrate(&net, QuantMethod::Kaq, &qc, &set.as_batch()).unwrap();
    let ir = lower(&q, LowerOptions::default()).unwrap();
    fs::write(dir.join(name), ir.to_json()).unwrap();
}

fn verilator_present() -> bool {
    let present = std::process::Command::new("verilator")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !present && std::env::var("KAQ_REQUIRE_VERILATOR").is_ok_and(|v| v == "1") {
        panic!("KAQ_REQUIRE_VERILATOR=1 but verilator is not installed");
    }
    present
}

#[test]
fn cosim_runs_clean_and_writes_json_and_trace() {
    if !verilator_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_ir(d);
    let out = kaq(d)
        .args([
            "cosim", "--ir", "ir.json", "--lanes", "2", "--frames", "600",
        ])
        .args(["--snr", "0:20:10", "--stall-prob", "0.2", "--seed", "3"])
        .args(["--json", "cosim.json", "--trace", "run.vcd"])
        .assert()
        .success()
        .stdout(predicate::str::contains("mismatches  0"))
        .stdout(predicate::str::contains("per frame measured"));
    let doc: Value =
        serde_json::from_str(&fs::read_to_string(d.join("cosim.json")).unwrap()).unwrap();
    assert_eq!(doc["command"], "cosim");
    assert_eq!(doc["frames"], 600);
    assert_eq!(doc["mismatches"], 0);
    assert!(doc["first_mismatch"].is_null());
    assert_eq!(doc["lanes"], 2);
    assert_eq!(doc["stall_prob"], 0.2);
    assert_eq!(doc["backpressure_prob"], 0.2);
    let cycles = &doc["cycles"];
    assert_eq!(cycles["measured_per_frame"], cycles["estimated_per_frame"]);
    assert_eq!(cycles["measured_latency"], cycles["estimated_latency"]);
    let vcd = fs::read_to_string(d.join("run.vcd")).unwrap();
    assert!(vcd.contains("$enddefinitions"), "not a VCD");
    assert!(vcd.contains("out_valid"));
    // The size estimated before the run (the base of the size warning) is of the order of the
    // VCD written: not below 80 % of it, at most twice (stalls make fewer signals toggle per
    // cycle than the stall-free calibration, so it errs high); no temporary file is left.
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let line = stdout.lines().find(|l| l.starts_with("trace ")).unwrap();
    let mb = |key: &str| -> f64 {
        let at = line
            .find(key)
            .unwrap_or_else(|| panic!("no {key:?} in {line}"));
        let tail = &line[..at];
        let start = tail.trim_end().rfind([' ', '(']).unwrap() + 1;
        tail[start..].trim().parse().unwrap()
    };
    let (written, estimated) = (mb(" MB;"), mb(" MB)"));
    let actual = fs::metadata(d.join("run.vcd")).unwrap().len() as f64 / 1e6;
    assert!((written - actual).abs() < 0.1, "{line} against {actual} MB");
    assert!(
        (0.8..=2.0).contains(&(estimated / actual)),
        "estimated {estimated} MB, written {actual} MB"
    );
    let left: Vec<_> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".kaq-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Mixed precision: a PGD-Net at 6, 4, 5 bits and an ADMM-Net (box prox) at 6, 3 bits, each
/// layer saturating at its own width, match the integer model bit for bit under stalls.
#[test]
fn cosim_mixed_precision_runs_clean() {
    if !verilator_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let admm = NetConfig {
        arch: kaq_model::unfolded::Arch::Admm,
        prox: kaq_model::unfolded::Prox::Box,
        ..NetConfig::default()
    };
    for (config, bits, name) in [
        (NetConfig::default(), &[6u32, 4, 5][..], "pgd.json"),
        (admm, &[6, 3][..], "admm.json"),
    ] {
        write_ir_with(d, config, bits, name);
        let ir: Value = serde_json::from_str(&fs::read_to_string(d.join(name)).unwrap()).unwrap();
        assert_eq!(ir["state_width"], 6);
        for (k, &b) in bits.iter().enumerate() {
            assert_eq!(ir["layers"][k]["out"]["width"], b, "{name} layer {k}");
        }
        kaq(d)
            .args(["cosim", "--ir", name, "--lanes", "2", "--frames", "400"])
            .args(["--snr", "0:20:10", "--stall-prob", "0.2", "--seed", "5"])
            .assert()
            .success()
            .stdout(predicate::str::contains("mismatches  0"));
    }
}

#[test]
fn cosim_usage_errors_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_ir(d);
    // N = 4: three lanes do not divide it.
    kaq(d)
        .args(["cosim", "--ir", "ir.json", "--lanes", "3", "--frames", "10"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--lanes"));
    for (flag, value) in [("--stall-prob", "1"), ("--update-pipeline", "3")] {
        kaq(d)
            .args(["cosim", "--ir", "ir.json", "--frames", "10", flag, value])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(flag));
    }
    kaq(d)
        .args(["cosim", "--ir", "ir.json", "--frames", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--frames"));
    kaq(d)
        .args(["cosim", "--ir", "missing.json", "--frames", "10"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("missing.json"));
}
