//! End-to-end tests of IR version 2 on the command line: `kaq train --arch cg` → `kaq lower
//! --ptq-bits B` (a v2 document) → `kaq ber --ir` on block fading, and the refusals of the
//! v2 wiring (status 2 naming the flag, nothing written).

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn kaq(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("kaq").unwrap();
    c.current_dir(dir);
    c
}

fn train(dir: &Path, arch: &str, out: &str, extra: &[&str]) {
    kaq(dir)
        .args([
            "train",
            "--arch",
            arch,
            "--layers",
            "2",
            "--nt",
            "2",
            "--nr",
            "4",
            "--samples",
            "256",
            "--val-samples",
            "64",
            "--val-frames",
            "64",
            "--batch",
            "28",
            "--epochs",
            "1",
            "--block",
            "14",
            "--snr",
            "10,20",
            "--threads",
            "1",
            "--out",
            out,
        ])
        .args(extra)
        .assert()
        .success();
}

#[test]
fn cg_trains_lowers_to_v2_and_runs_in_ber_on_block_fading() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    train(d, "cg", "cg.json", &["--inner", "3"]);
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
        .assert()
        .success()
        .stdout(
            predicate::str::contains("IR v2 cg-k2-l3-ptq-6b")
                .and(predicate::str::contains("state width 6 bits"))
                .and(predicate::str::contains("IR written to ir.json")),
        );
    let doc: Value = serde_json::from_str(&fs::read_to_string(d.join("ir.json")).unwrap()).unwrap();
    assert_eq!(doc["version"], 2);
    assert_eq!(doc["family"], "cg");
    assert_eq!(doc["layers"].as_array().unwrap().len(), 2);
    assert_eq!(doc["layers"][0]["steps"].as_array().unwrap().len(), 3);
    let run = |threads: &str, json: &str| {
        kaq(d)
            .args([
                "ber",
                "--nt",
                "2",
                "--nr",
                "4",
                "--snr",
                "12,24",
                "--max-frames",
                "700",
                "--min-errors",
                "100000",
                "--block",
                "14",
                "--threads",
                threads,
                "--ir",
                "ir.json",
                "--json",
                json,
            ])
            .assert()
            .success()
            .stdout(
                predicate::str::contains("cg-k2-l3-ptq-6b-int")
                    .and(predicate::str::contains("T=14")),
            );
        let v: Value = serde_json::from_str(&fs::read_to_string(d.join(json)).unwrap()).unwrap();
        v["points"].clone()
    };
    let one = run("1", "one.json");
    // The golden model is deterministic: the same frames give the same rows on 2 threads.
    assert_eq!(one, run("2", "two.json"));
    let int_rows: Vec<&Value> = one
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p.to_string().contains("cg-k2-l3-ptq-6b-int"))
        .collect();
    assert!(!int_rows.is_empty(), "no integer-model rows in {one}");
    // Per-class widths and a narrow inner G per layer (docs/ir.md §10.9).
    kaq(d)
        .args(["lower", "--model", "cg.json", "--ptq-bits", "6"])
        .args([
            "--cg-width",
            "g=12",
            "--g-inner-bits",
            "8,12",
            "--out",
            "gi.json",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "energy at T = 14 (docs/energy.md): model 2 ",
        ));
    let gi: Value = serde_json::from_str(&fs::read_to_string(d.join("gi.json")).unwrap()).unwrap();
    assert_eq!(gi["block"]["g"]["width"], 12);
    assert_eq!(gi["layers"][0]["g_inner"], 8);
    assert!(gi["layers"][1].get("g_inner").is_none(), "12 = G's width");
    assert!(doc["layers"][0].get("g_inner").is_none());
    for (flag, value, msg) in [
        ("--g-inner-bits", "8,8,8", "3 widths for 2 layers"),
        ("--cg-width", "q=8", "q"),
        ("--cg-width", "g=30", "outside 2..=24"),
    ] {
        kaq(d)
            .args([
                "lower",
                "--model",
                "cg.json",
                "--ptq-bits",
                "6",
                flag,
                value,
            ])
            .args(["--out", "no.json"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(flag).and(predicate::str::contains(msg)));
        assert!(!d.join("no.json").exists());
    }
}

#[test]
fn v2_wiring_refusals_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    train(d, "cg", "cg.json", &["--inner", "2"]);
    // A Gram-domain file without --ptq-bits.
    kaq(d)
        .args(["lower", "--model", "cg.json", "--out", "ir.json"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--ptq-bits"));
    // --mult-bits does not apply to v2.
    kaq(d)
        .args([
            "lower",
            "--model",
            "cg.json",
            "--ptq-bits",
            "8",
            "--mult-bits",
            "16",
            "--out",
            "ir.json",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--mult-bits"));
    for bad in ["1", "13", "x"] {
        kaq(d)
            .args([
                "lower",
                "--model",
                "cg.json",
                "--ptq-bits",
                bad,
                "--out",
                "ir.json",
            ])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("--ptq-bits"));
    }
    // An ep file lowers too (IR version 5, docs/ir.md §12; tests/ep_cli.rs runs it).
    train(d, "ep", "ep.json", &[]);
    kaq(d)
        .args([
            "lower",
            "--model",
            "ep.json",
            "--ptq-bits",
            "8",
            "--out",
            "ep-ir.json",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("IR v5"));
    assert!(d.join("ep-ir.json").exists());
    assert!(!d.join("ir.json").exists());
    // A v2 IR of another link.
    kaq(d)
        .args([
            "lower",
            "--model",
            "cg.json",
            "--ptq-bits",
            "8",
            "--out",
            "ir.json",
        ])
        .assert()
        .success();
    kaq(d)
        .args([
            "ber", "--nt", "4", "--nr", "4", "--snr", "10", "--ir", "ir.json",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--ir").and(predicate::str::contains("2x4")));
    // An invalid v2 document names the field.
    let mut doc: Value =
        serde_json::from_str(&fs::read_to_string(d.join("ir.json")).unwrap()).unwrap();
    doc["front"]["noise"].as_array_mut().unwrap().pop();
    fs::write(d.join("bad.json"), doc.to_string()).unwrap();
    kaq(d)
        .args([
            "ber", "--nt", "2", "--nr", "4", "--snr", "10", "--ir", "bad.json",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--ir").and(predicate::str::contains("front.noise")));
}
