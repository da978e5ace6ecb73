//! End-to-end tests of the Gram-domain nets on the command line: `kaq train --arch ep|oamp|cg`
//! with block fading writes a `kaq-gram-model` file that `kaq ber --model` runs.

use std::fs;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

#[test]
fn trains_each_family_with_block_fading_and_runs_it_in_ber() {
    let dir = tempfile::tempdir().unwrap();
    for (arch, name, extra) in [
        ("ep", "ep-k2", &[][..]),
        ("oamp", "oamp-k2", &[][..]),
        ("cg", "cg-k2-l3", &["--inner", "3"][..]),
    ] {
        let out = format!("{arch}.json");
        Command::cargo_bin("kaq")
            .unwrap()
            .current_dir(dir.path())
            .args([
                "train",
                "--arch",
                arch,
                "--layers",
                "2",
                "--nt",
                "4",
                "--nr",
                "4",
                "--samples",
                "256",
                "--val-samples",
                "64",
                "--val-frames",
                "64",
                "--batch",
                "32",
                "--epochs",
                "2",
                "--block",
                "4",
                "--snr",
                "10,20",
                "--threads",
                "1",
                "--out",
                &out,
            ])
            .args(extra)
            .assert()
            .success()
            .stdout(predicate::str::contains("cost per vector"));
        let doc: Value =
            serde_json::from_str(&fs::read_to_string(dir.path().join(&out)).unwrap()).unwrap();
        assert_eq!(doc["format"], "kaq-gram-model");
        assert_eq!(doc["net"]["link"]["block"], 4);
        assert_eq!(doc["net"]["config"]["family"], arch);
        Command::cargo_bin("kaq")
            .unwrap()
            .current_dir(dir.path())
            .args([
                "ber",
                "--detector",
                "mmse",
                "--nt",
                "4",
                "--nr",
                "4",
                "--snr",
                "10",
                "--max-frames",
                "256",
                "--block",
                "4",
                "--model",
                &out,
            ])
            .assert()
            .success()
            .stdout(predicate::str::contains(name).and(predicate::str::contains("T=4")));
    }
}

#[test]
fn bad_block_and_inner_flags_are_named() {
    let dir = tempfile::tempdir().unwrap();
    Command::cargo_bin("kaq")
        .unwrap()
        .current_dir(dir.path())
        .args(["ber", "--block", "0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--block"));
    Command::cargo_bin("kaq")
        .unwrap()
        .current_dir(dir.path())
        .args(["ber", "--block", "14", "--batch", "100"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("multiple of --block"));
    Command::cargo_bin("kaq")
        .unwrap()
        .current_dir(dir.path())
        .args(["train", "--arch", "ep", "--inner", "3", "--out", "m.json"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--inner"));
    Command::cargo_bin("kaq")
        .unwrap()
        .current_dir(dir.path())
        .args(["train", "--arch", "nope", "--out", "m.json"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("ep, oamp, cg"));
    assert!(!dir.path().join("m.json").exists());
}
