//! `kaq train --quant ptq|qat-mse|kaq|lsq` of a cg teacher: the students are IR documents
//! (KAQ's a version 3 with per-SNR-bin shifts) that `kaq ber --ir` runs; lsq and the flags a
//! cg student does not use exit 2 naming them; `kaq codegen` and `kaq cosim` refuse the
//! version-3 document with status 2 naming the field.

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

fn json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

const SMALL: [&str; 12] = [
    "--samples",
    "300",
    "--val-samples",
    "50",
    "--val-frames",
    "50",
    "--batch",
    "50",
    "--threads",
    "1",
    "--snr",
    "5,10,15,20",
];

#[test]
fn cg_students_from_kaq_train() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    kaq(d)
        .args(["train", "--arch", "cg", "--layers", "2", "--inner", "2"])
        .args(["--nt", "2", "--nr", "2", "--mod", "qpsk", "--epochs", "1"])
        .args(SMALL)
        .args(["--out", "t.json"])
        .assert()
        .success();
    for (method, version) in [("ptq", 2), ("qat-mse", 2), ("kaq", 3)] {
        let out = format!("{method}.ir.json");
        kaq(d)
            .args([
                "train",
                "--quant",
                method,
                "--teacher",
                "t.json",
                "--bits",
                "6",
            ])
            .args(["--epochs", "1"])
            .args(SMALL)
            .args(["--out", &out])
            .assert()
            .success()
            .stdout(predicate::str::contains(format!(
                "IR v{version} cg-k2-l2-{method}-6b written to {out}"
            )));
        let doc = json(&d.join(&out));
        assert_eq!(doc["version"], version, "{method}");
        assert_eq!(doc["layers"][0]["bin_shift"].is_object(), version == 3);
        assert_eq!(doc["name"], format!("cg-k2-l2-{method}-6b"));
        kaq(d)
            .args(["ber", "--ir", &out, "--snr", "10", "--max-frames", "200"])
            .args(["--nt", "2", "--nr", "2", "--mod", "qpsk"])
            .args(["--min-errors", "1", "--threads", "1"])
            .assert()
            .success();
    }
    // The version-3 document and a narrow inner G (docs/ir.md §10.8, §10.9): the golden model
    // runs them, and so does the v2 RTL, bit-exact.
    let mut doc = json(&d.join("ptq.ir.json"));
    doc["layers"][0]["g_inner"] = serde_json::json!(8);
    std::fs::write(d.join("gi.ir.json"), doc.to_string()).unwrap();
    kaq(d)
        .args([
            "ber",
            "--ir",
            "gi.ir.json",
            "--snr",
            "10",
            "--max-frames",
            "200",
        ])
        .args(["--nt", "2", "--nr", "2", "--mod", "qpsk"])
        .args(["--min-errors", "1", "--threads", "1"])
        .assert()
        .success();
    for ir in ["kaq.ir.json", "gi.ir.json"] {
        kaq(d)
            .args(["codegen", "--ir", ir, "--out", "rtl"])
            .assert()
            .success();
        std::fs::remove_dir_all(d.join("rtl")).unwrap();
        if kaq_sim::tools::require(kaq_sim::tools::Tool::Verilator)
            .expect("KAQ_REQUIRE_VERILATOR=1 but verilator is unusable")
            .is_some()
        {
            kaq(d)
                .args(["cosim", "--ir", ir, "--frames", "24", "--block", "4"])
                .args(["--snr", "0,10,20,30", "--stall-prob", "0.3"])
                .assert()
                .success()
                .stdout(predicate::str::contains("0 mismatches"))
                .stdout(predicate::str::contains("measured equal"));
        }
    }
    // LSQ and the flags a cg student does not use: status 2, nothing written.
    for (flags, msg) in [
        (
            &["--quant", "lsq"][..],
            "lsq is not available for the cg family",
        ),
        (&["--quant", "kaq", "--bits", "6,6"][..], "--bits"),
        (&["--quant", "kaq", "--bits", "13"][..], "--bits"),
        (&["--quant", "kaq", "--e-bits", "8"][..], "--e-bits"),
        (&["--quant", "kaq", "--kernel", "learnable"][..], "--kernel"),
    ] {
        kaq(d)
            .args(["train", "--teacher", "t.json"])
            .args(flags)
            .args(["--out", "no.json"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(msg));
        assert!(!d.join("no.json").exists());
    }
}
