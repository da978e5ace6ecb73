//! End-to-end tests of `kaq train --quant` on a tiny configuration: an f32 teacher, its KAQ
//! quantization, the quantized file in `kaq ber --model`, refusal to clobber and usage errors.

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn kaq(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("kaq").unwrap();
    cmd.current_dir(dir);
    cmd
}

/// The teacher's link and architecture: 4×4 QPSK, K = 3. Quantized runs take them from the
/// teacher file and refuse them as flags.
const LINK: [&str; 8] = ["--nt", "4", "--nr", "4", "--mod", "qpsk", "--layers", "3"];

/// The shared data flags: 600 samples, batch 50, 2 epochs, one thread.
const DATA: [&str; 12] = [
    "--samples",
    "600",
    "--val-samples",
    "200",
    "--val-frames",
    "200",
    "--batch",
    "50",
    "--epochs",
    "2",
    "--threads",
    "1",
];

/// Trains the tiny f32 teacher into `dir/fp32.json`.
fn teacher(dir: &Path) {
    kaq(dir)
        .arg("train")
        .args(LINK)
        .args(DATA)
        .args(["--lr", "0.01", "--out", "fp32.json"])
        .assert()
        .success();
}

fn quant(dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = kaq(dir);
    cmd.arg("train").args(DATA).args(extra);
    cmd
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn kaq_quantizes_a_teacher_and_ber_reads_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    teacher(d);
    let args = [
        "--quant",
        "kaq",
        "--bits",
        "4",
        "--teacher",
        "fp32.json",
        "--kernel",
        "learnable",
        "--epsilon",
        "2",
        "--out",
        "q.json",
        "--json",
        "h.json",
        "--plot",
        "q.svg",
    ];
    quant(d, &args)
        .assert()
        .success()
        .stdout(predicate::str::contains("epoch 2/2"))
        .stdout(predicate::str::contains("sum MMD^2"));
    let q = read_json(&d.join("q.json"));
    assert_eq!(q["format"], "kaq-qmodel");
    assert_eq!(q["method"], "kaq");
    assert_eq!(q["quant"]["activation_bits"], 4);
    assert_eq!(q["train"]["kaq"]["epsilon"], 2.0);
    assert_eq!(q["train"]["kaq"]["kernel"], "learnable");
    assert_eq!(q["kaq_history"].as_array().unwrap().len(), 2);
    assert_eq!(q["kaq_history"][1]["sigma"].as_array().unwrap().len(), 3);
    let h = read_json(&d.join("h.json"));
    assert_eq!(h["method"], "kaq");
    assert_eq!(h["kaq_history"], q["kaq_history"]);
    let svg = fs::read_to_string(d.join("q.svg")).unwrap();
    assert!(svg.contains("MMD"), "the total-loss series is missing");

    // No clobbering without --force.
    quant(d, &args)
        .assert()
        .failure()
        .stderr(predicate::str::contains("--force"));

    kaq(d)
        .args([
            "ber",
            "--nt",
            "4",
            "--nr",
            "4",
            "--mod",
            "qpsk",
            "--snr",
            "10",
            "--detector",
            "mmse",
            "--model",
            "q.json",
            "--model",
            "fp32.json",
            "--min-errors",
            "50",
            "--max-frames=512",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("kaq-4b"));
}

/// Mixed precision: `--bits 8,6,4` (one width per layer) reaches the model file and the IR
/// (each layer's states at its width, the registers at the widest), with every method; a
/// repeated single width gives the file of the single value, byte for byte.
#[test]
fn per_layer_bits_reach_the_model_file_and_the_ir() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    teacher(d);
    for method in ["ptq", "qat-mse", "lsq", "kaq"] {
        let out = format!("{method}.json");
        quant(
            d,
            &[
                "--quant",
                method,
                "--bits",
                "8,6,4",
                "--teacher",
                "fp32.json",
                "--out",
                &out,
            ],
        )
        .assert()
        .success();
        let q = read_json(&d.join(&out));
        assert_eq!(q["quant"]["activation_bits"], 8, "{method}");
        assert_eq!(
            q["quant"]["layer_bits"],
            serde_json::json!([8, 6, 4]),
            "{method}"
        );
        let ir = format!("{method}.ir.json");
        kaq(d)
            .args(["lower", "--model", &out, "--out", &ir])
            .assert()
            .success();
        let ir = read_json(&d.join(&ir));
        assert_eq!(ir["state_width"], 8);
        for (k, b) in [8, 6, 4].iter().enumerate() {
            assert_eq!(ir["layers"][k]["out"]["width"], *b, "{method} layer {k}");
        }
    }
    quant(
        d,
        &[
            "--quant",
            "lsq",
            "--bits",
            "6",
            "--teacher",
            "fp32.json",
            "--out",
            "one.json",
        ],
    )
    .assert()
    .success();
    quant(
        d,
        &[
            "--quant",
            "lsq",
            "--bits",
            "6,6,6",
            "--teacher",
            "fp32.json",
            "--out",
            "three.json",
        ],
    )
    .assert()
    .success();
    assert_eq!(
        fs::read(d.join("one.json")).unwrap(),
        fs::read(d.join("three.json")).unwrap()
    );
    assert!(
        read_json(&d.join("one.json"))["quant"]
            .get("layer_bits")
            .is_none()
    );
}

#[test]
fn bad_quantization_flags_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    teacher(d);
    for (extra, flag) in [
        (
            vec!["--quant", "kaq", "--bits", "1", "--teacher", "fp32.json"],
            "--bits",
        ),
        (
            vec!["--quant", "kaq", "--bits", "17", "--teacher", "fp32.json"],
            "--bits",
        ),
        (
            vec![
                "--quant",
                "kaq",
                "--epsilon",
                "-1",
                "--teacher",
                "fp32.json",
            ],
            "--epsilon",
        ),
        (
            vec![
                "--quant",
                "kaq",
                "--epsilon",
                "NaN",
                "--teacher",
                "fp32.json",
            ],
            "--epsilon",
        ),
        (
            vec![
                "--quant",
                "kaq",
                "--kernel",
                "wide",
                "--teacher",
                "fp32.json",
            ],
            "--kernel",
        ),
        (
            vec!["--quant", "lsq", "--bits", "8,6", "--teacher", "fp32.json"],
            "--bits",
        ),
        (
            vec![
                "--quant",
                "lsq",
                "--bits",
                "8,6,4,4",
                "--teacher",
                "fp32.json",
            ],
            "--bits",
        ),
        (
            vec![
                "--quant",
                "lsq",
                "--bits",
                "8,17,4",
                "--teacher",
                "fp32.json",
            ],
            "--bits",
        ),
        (vec!["--quant", "int4", "--teacher", "fp32.json"], "--quant"),
        (vec!["--quant", "kaq"], "--teacher"),
        (vec!["--teacher", "fp32.json"], "--teacher"),
        (
            vec!["--quant", "kaq", "--teacher", "fp32.json", "--nt", "8"],
            "--nt",
        ),
        (
            vec!["--quant", "kaq", "--teacher", "fp32.json", "--prox", "qam"],
            "--prox",
        ),
    ] {
        let mut args = extra.clone();
        args.extend(["--out", "bad.json"]);
        quant(d, &args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(flag));
        assert!(!d.join("bad.json").exists(), "{extra:?} wrote a file");
    }
}
