//! End-to-end tests of quantizing a net trained on a channel dataset (docs/channels.md): a
//! model file records its dataset by SHA-256 only, so `kaq train --quant` and `kaq lower
//! --ptq-bits` take `--channels FILE` to load it again; a missing, foreign or superfluous
//! `--channels` exits with status 2 naming the flag and writes nothing.

use std::path::Path;

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin_cmd;
use predicates::str::contains;

fn kaq(dir: &Path) -> Command {
    let mut cmd = cargo_bin_cmd!("kaq");
    cmd.current_dir(dir);
    cmd
}

const LINK: [&str; 6] = ["--nt", "2", "--nr", "4", "--mod", "qpsk"];

/// A tiny training run: 256 samples, 1 epoch, one thread.
const DATA: [&str; 12] = [
    "--samples",
    "256",
    "--val-samples",
    "64",
    "--val-frames",
    "64",
    "--batch",
    "64",
    "--epochs",
    "1",
    "--threads",
    "1",
];

/// Two files of one site (`site.npy`, `other.npy`, different seeds) in `dir`.
fn sites(dir: &Path) {
    for (seed, out) in [("--seed=1", "site.npy"), ("--seed=2", "other.npy")] {
        kaq(dir)
            .args(["site", "--nt", "2", "--nr", "4", "--channels", "32", seed])
            .args(["--out", out])
            .assert()
            .success();
    }
}

fn train(dir: &Path, extra: &[&str], out: &str) {
    kaq(dir)
        .arg("train")
        .args(LINK)
        .args(DATA)
        .args(extra)
        .args(["--out", out])
        .assert()
        .success();
}

fn quant(dir: &Path, teacher: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
    kaq(dir)
        .arg("train")
        .args(DATA)
        .args(["--quant", "ptq", "--bits", "6", "--teacher", teacher])
        .args(extra)
        .args(["--out", "q.json"])
        .assert()
}

#[test]
fn a_site_teacher_quantizes_on_its_own_dataset_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sites(d);
    train(d, &["--layers", "2", "--channels", "site.npy"], "site.json");
    train(d, &["--layers", "2"], "iid.json");
    for (teacher, extra, reason) in [
        ("site.json", &[][..], "pass --channels FILE"),
        (
            "site.json",
            &["--channels", "other.npy"][..],
            "is not the model's dataset",
        ),
        (
            "iid.json",
            &["--channels", "site.npy"][..],
            "random channel model",
        ),
        (
            "site.json",
            &["--channels", "site.npy", "--channel-norm", "as-is"][..],
            "--channel-norm",
        ),
    ] {
        quant(d, teacher, extra)
            .code(2)
            .stderr(contains("--channels"))
            .stderr(contains(reason));
        assert!(
            !d.join("q.json").exists(),
            "{teacher} {extra:?} wrote q.json"
        );
    }
    quant(d, "site.json", &["--channels", "site.npy"]).success();
    let q = std::fs::read_to_string(d.join("q.json")).unwrap();
    assert!(q.contains("\"format\": \"kaq-qmodel\""), "{q}");
    assert!(
        q.contains("site.npy"),
        "the quantized file records the dataset"
    );
    // The i.i.d. teacher still quantizes without the flag.
    std::fs::remove_file(d.join("q.json")).unwrap();
    quant(d, "iid.json", &[]).success();
    // The quantized site net runs on the held-out file of its site.
    kaq(d)
        .args(["ber"])
        .args(LINK)
        .args([
            "--detector",
            "mmse",
            "--model",
            "q.json",
            "--channels",
            "other.npy",
        ])
        .args(["--snr", "10", "--max-frames", "512", "--threads", "1"])
        .assert()
        .success()
        .stdout(contains("ptq-6b"));
}

#[test]
fn a_site_cg_net_lowers_with_calibration_on_its_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sites(d);
    let cg = ["--arch", "cg", "--layers", "2", "--inner", "2"];
    let mut site = cg.to_vec();
    site.extend(["--channels", "site.npy"]);
    train(d, &site, "cg.json");
    let lower = |extra: &[&str]| {
        kaq(d)
            .args([
                "lower",
                "--model",
                "cg.json",
                "--ptq-bits",
                "6",
                "--out",
                "ir.json",
            ])
            .args(extra)
            .assert()
    };
    for (extra, reason) in [
        (&[][..], "pass --channels FILE"),
        (
            &["--channels", "other.npy"][..],
            "is not the model's dataset",
        ),
    ] {
        lower(extra)
            .code(2)
            .stderr(contains("--channels"))
            .stderr(contains(reason));
        assert!(!d.join("ir.json").exists(), "{extra:?} wrote ir.json");
    }
    // --channels means nothing without --ptq-bits.
    kaq(d)
        .args(["lower", "--model", "cg.json", "--out", "ir.json"])
        .args(["--channels", "site.npy"])
        .assert()
        .code(2)
        .stderr(contains("--ptq-bits"));
    lower(&["--channels", "site.npy", "--calibration", "p200"])
        .code(2)
        .stderr(contains("--calibration"));
    assert!(
        !d.join("ir.json").exists(),
        "a bad --calibration wrote ir.json"
    );
    lower(&["--channels", "site.npy", "--calibration", "p50"]).success();
    let p50 = std::fs::read_to_string(d.join("ir.json")).unwrap();
    lower(&["--channels", "site.npy", "--calibration", "max", "--force"]).success();
    kaq(d)
        .args(["ber"])
        .args(LINK)
        .args([
            "--detector",
            "mmse",
            "--ir",
            "ir.json",
            "--channels",
            "other.npy",
        ])
        .args(["--snr", "10", "--max-frames", "512", "--threads", "1"])
        .assert()
        .success()
        .stdout(contains("ptq-6b-int"));
    // The rule reaches the lowering: the median and the maximum give different formats.
    let max = std::fs::read_to_string(d.join("ir.json")).unwrap();
    assert_ne!(
        p50, max,
        "--calibration p50 gave the IR of --calibration max"
    );
}
