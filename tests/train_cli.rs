//! End-to-end tests of `kaq train` on a tiny configuration: the files it writes, its refusal
//! to clobber, and its usage errors.

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

/// A tiny, fast run: 4×4 QPSK, PGD-soft K = 3, 600 samples, 3 epochs.
fn tiny(dir: &Path, out: &str) -> Command {
    tiny_with(dir, out, "1", "0.01")
}

/// [`tiny`] on `threads` worker threads with learning rate `lr`.
fn tiny_with(dir: &Path, out: &str, threads: &str, lr: &str) -> Command {
    let mut cmd = Command::cargo_bin("kaq").unwrap();
    cmd.current_dir(dir).args([
        "train",
        "--nt",
        "4",
        "--nr",
        "4",
        "--mod",
        "qpsk",
        "--layers",
        "3",
        "--samples",
        "600",
        "--val-samples",
        "200",
        "--val-frames",
        "200",
        "--batch",
        "50",
        "--epochs",
        "3",
        "--lr",
        lr,
        "--threads",
        threads,
        "--out",
        out,
    ]);
    cmd
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn writes_model_history_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), "model.json")
        .args(["--json", "history.json", "--plot", "loss.svg"])
        .assert()
        .success()
        .stdout(predicate::str::contains("epoch 3/3"))
        .stdout(predicate::str::contains("val BER"));

    let model = read_json(&dir.path().join("model.json"));
    assert_eq!(model["format"], "kaq-model");
    assert_eq!(model["version"], 1);
    assert_eq!(model["train"]["seed"], 1);
    assert_eq!(model["train"]["link"]["nt"], 4);
    assert_eq!(model["history"].as_array().unwrap().len(), 3);
    assert_eq!(model["history"][2]["val_ber"].as_array().unwrap().len(), 3);

    let history = read_json(&dir.path().join("history.json"));
    assert_eq!(history["command"], "train");
    assert_eq!(history["history"], model["history"]);

    let svg = fs::read_to_string(dir.path().join("loss.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "not an SVG"
    );
    assert!(svg.contains("validation loss"), "legend missing");
}

#[test]
fn equal_arguments_give_equal_models_on_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), "a.json").assert().success();
    tiny_with(dir.path(), "b.json", "2", "0.01")
        .assert()
        .success();
    let (a, b) = (
        read_json(&dir.path().join("a.json")),
        read_json(&dir.path().join("b.json")),
    );
    assert_eq!(a["net"], b["net"]);
    assert_eq!(a["history"][2]["val_loss"], b["history"][2]["val_loss"]);
}

#[test]
fn refuses_to_clobber_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.json");
    fs::write(&out, "precious").unwrap();
    tiny(dir.path(), "model.json")
        .assert()
        .failure()
        .code(1)
        .stderr(predicate::str::contains("--force"));
    assert_eq!(fs::read_to_string(&out).unwrap(), "precious");

    // Also for the side outputs, checked before training.
    fs::write(dir.path().join("h.json"), "keep").unwrap();
    tiny(dir.path(), "fresh.json")
        .args(["--json", "h.json"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--json"));
    assert!(!dir.path().join("fresh.json").exists());

    tiny(dir.path(), "model.json")
        .arg("--force")
        .assert()
        .success();
    assert_eq!(read_json(&out)["format"], "kaq-model");
}

#[test]
fn diverging_run_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    tiny_with(dir.path(), "model.json", "1", "1e30")
        .args(["--json", "h.json", "--plot", "loss.svg"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("diverged"))
        .stderr(predicate::str::contains("no file was written"));
    let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn unwritable_output_fails_before_training() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), "missing-dir/model.json")
        .assert()
        .failure()
        .code(1)
        .stdout(predicate::str::contains("epoch").not())
        .stderr(predicate::str::contains("missing-dir"));
}

#[test]
fn bad_flags_exit_2_naming_the_argument() {
    let dir = tempfile::tempdir().unwrap();
    for (args, name) in [
        (vec!["--arch", "cnn"], "--arch"),
        (vec!["--prox", "hard"], "--prox"),
        (vec!["--init", "random"], "--init"),
        (vec!["--layers", "0"], "--layers"),
        (vec!["--epochs", "0"], "--epochs"),
        (vec!["--lr", "-1"], "--lr"),
        (vec!["--lr", "nan"], "--lr"),
        (vec!["--mod", "8psk"], "--mod"),
        (vec!["--nt", "0"], "--nt"),
        (vec!["--snr", "0,x"], "--snr"),
        (vec!["--threads", "0"], "--threads"),
        (vec!["--samples", "600", "--batch", "601"], "--batch"),
    ] {
        // Only the bad flag on top of the defaults: parsing fails before any training.
        Command::cargo_bin("kaq")
            .unwrap()
            .current_dir(dir.path())
            .args(["train", "--out", "model.json"])
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("invalid value"))
            .stderr(predicate::str::contains(name));
    }
    Command::cargo_bin("kaq")
        .unwrap()
        .args(["train"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--out"));
    assert!(!dir.path().join("model.json").exists());
}

#[test]
fn ber_compares_a_trained_model_with_the_classical_detectors() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), "model.json").assert().success();
    let ber = |extra: &[&str]| {
        let mut cmd = Command::cargo_bin("kaq").unwrap();
        cmd.current_dir(dir.path()).args([
            "ber",
            "--detector",
            "zf",
            "--snr",
            "0,10",
            "--max-frames",
            "400",
            "--model",
            "model.json",
        ]);
        cmd.args(extra);
        cmd
    };
    ber(&[
        "--nt", "4", "--nr", "4", "--mod", "qpsk", "--json", "ber.json",
    ])
    .assert()
    .success()
    .stdout(predicate::str::contains("pgd-soft-k3"));
    let report = read_json(&dir.path().join("ber.json"));
    let detectors = report["detectors"].as_array().unwrap();
    assert_eq!(detectors.len(), 2, "{detectors:?}");
    assert_eq!(detectors[1], "pgd-soft-k3");
    let net_points: Vec<&Value> = report["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["detector"] == "pgd-soft-k3")
        .collect();
    assert_eq!(net_points.len(), 2);
    assert!(net_points.iter().all(|p| p["bits"].as_u64().unwrap() > 0));

    // The same model twice is told apart by its path.
    ber(&[
        "--nt",
        "4",
        "--nr",
        "4",
        "--mod",
        "qpsk",
        "--model",
        "./model.json",
    ])
    .assert()
    .success()
    .stdout(predicate::str::contains("pgd-soft-k3 (./model.json)"));

    // A model of another link is refused before the run, naming the mismatch (a usage error).
    ber(&["--nt", "8", "--nr", "8", "--mod", "qpsk"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("trained for 4x4 qpsk"));
    // A broken model file is refused with the file named.
    fs::write(dir.path().join("broken.json"), "{\"format\": \"kaq-model\"").unwrap();
    ber(&[
        "--nt",
        "4",
        "--nr",
        "4",
        "--mod",
        "qpsk",
        "--model",
        "broken.json",
    ])
    .assert()
    .code(2)
    .stderr(predicate::str::contains("broken.json"));
}
