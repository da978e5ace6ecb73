//! The ep family on the command line: `kaq lower --ptq-bits` writes an IR version 5
//! document, `kaq ber --ir` runs its golden model, and the RTL commands refuse it with
//! status 2 ("family ep has no RTL yet").

use std::path::Path;

use assert_cmd::Command;
use kaq_ir::gram::AnyIr;

fn kaq(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("kaq").unwrap();
    c.current_dir(dir);
    c
}

/// Trains and lowers a tiny ep net (2×2 QPSK, two layers) into `ir.json`.
fn tiny_ir(d: &Path) {
    kaq(d)
        .args(["train", "--arch", "ep", "--layers", "2"])
        .args([
            "--nt",
            "2",
            "--nr",
            "2",
            "--mod",
            "qpsk",
            "--samples",
            "200",
        ])
        .args(["--val-samples", "50", "--val-frames", "50", "--batch", "50"])
        .args(["--epochs", "1", "--threads", "1", "--out", "t.json"])
        .assert()
        .success();
    let out = kaq(d)
        .args([
            "lower",
            "--model",
            "t.json",
            "--ptq-bits",
            "8",
            "--out",
            "ir.json",
        ])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(text.contains("IR v5") && text.contains("(ep)"), "{text}");
}

#[test]
fn ep_lowers_runs_in_ber_and_is_refused_by_the_rtl_commands() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_ir(d);
    match AnyIr::load(&d.join("ir.json")).unwrap() {
        AnyIr::Ep(ir) => assert_eq!((ir.layers, ir.updates.len()), (2, 1)),
        _ => panic!("kaq lower of an ep net wrote another version"),
    }
    // cg-only options are usage errors.
    kaq(d)
        .args([
            "lower",
            "--model",
            "t.json",
            "--ptq-bits",
            "8",
            "--out",
            "x.json",
        ])
        .args(["--cg-width", "e=10"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--cg-width"));
    assert!(!d.join("x.json").exists());
    let out = kaq(d)
        .args([
            "ber",
            "--detector",
            "mmse",
            "--ir",
            "ir.json",
            "--model",
            "t.json",
        ])
        .args(["--nt", "2", "--nr", "2", "--mod", "qpsk", "--snr", "10"])
        .args(["--block", "14", "--max-frames", "280", "--threads", "1"])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(text.contains("ptq-8b-int"), "{text}");
    for args in [
        vec!["codegen", "--ir", "ir.json", "--out", "rtl"],
        vec!["cosim", "--ir", "ir.json", "--frames", "10"],
        vec!["report", "--ir", "ir.json"],
        vec![
            "ber", "--rtl", "ir.json", "--nt", "2", "--nr", "2", "--mod", "qpsk", "--snr", "10",
        ],
    ] {
        kaq(d)
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicates::str::contains("family ep has no RTL yet"));
    }
    assert!(!d.join("rtl").exists());
}
