//! End-to-end tests of `kaq ber --csi` (docs/channels.md): perfect CSI reproduces the results
//! written before CSI existed byte for byte (committed fixtures), estimated CSI costs BER and
//! LMMSE costs less than LS, and bad pilot values exit with status 2 naming the flag.

use predicates::str::contains;

#[path = "common/ber_fixture.rs"]
mod ber_fixture;
use ber_fixture::{BLOCK, fixture, kaq, run_json};

/// The arguments of `tests/fixtures/ber_csi/perfect-kronecker.json`.
const KRONECKER: [&str; 20] = [
    "ber",
    "--nt",
    "2",
    "--nr",
    "4",
    "--mod",
    "16qam",
    "--detector",
    "zf,mmse",
    "--snr",
    "5,15",
    "--min-errors",
    "200",
    "--max-frames",
    "3000",
    "--seed",
    "4",
    "--rho-tx",
    "0.5",
    "--rho-rx=0.3",
];

#[test]
fn perfect_csi_is_bit_identical_to_the_results_before_csi() {
    for (args, name) in [
        (&BLOCK[..], "perfect.json"),
        (&KRONECKER[..], "perfect-kronecker.json"),
    ] {
        let want = fixture(name);
        assert_eq!(run_json(args, &[]), want, "{name} without --csi");
        assert_eq!(
            run_json(args, &["--csi", "perfect"]),
            want,
            "{name} with --csi perfect"
        );
    }
}

fn point(json: &str, detector: &str, snr: f64) -> (f64, f64, f64) {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let p = v["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["detector"] == detector && p["snr_db"].as_f64() == Some(snr))
        .unwrap()
        .clone();
    let f = |k: &str| p[k].as_f64().unwrap();
    (f("ber"), f("ber_ci_low"), f("ber_ci_high"))
}

#[test]
fn estimated_csi_costs_ber_and_lmmse_costs_less_than_ls() {
    // A correlated channel: there the LMMSE filter is more than a common scale factor (on an
    // i.i.d. channel it only shrinks Ĥ_LS, which barely moves an MMSE detector's decisions).
    let args = [
        "ber",
        "--nt",
        "2",
        "--nr",
        "4",
        "--mod",
        "qpsk",
        "--detector",
        "mmse",
        "--snr",
        "5",
        "--min-errors",
        "10000",
        "--max-frames",
        "1000000",
        "--seed",
        "5",
        "--rho-tx",
        "0.7",
        "--rho-rx",
        "0.7",
    ];
    let perfect = point(&run_json(&args, &[]), "mmse", 5.0);
    let ls_json = run_json(&args, &["--csi", "ls", "--pilots", "2"]);
    let ls = point(&ls_json, "mmse", 5.0);
    let lmmse = point(
        &run_json(&args, &["--csi", "lmmse", "--pilots", "2"]),
        "mmse",
        5.0,
    );
    let long = point(
        &run_json(&args, &["--csi", "ls", "--pilots", "8"]),
        "mmse",
        5.0,
    );
    // Separated 95 % intervals: perfect < LS with 8 pilots < LS with 2, LMMSE < LS.
    assert!(perfect.2 < long.1, "perfect {perfect:?}, LS L_p=8 {long:?}");
    assert!(long.2 < ls.1, "LS L_p=8 {long:?}, L_p=2 {ls:?}");
    assert!(lmmse.2 < ls.1, "LMMSE {lmmse:?}, LS {ls:?}");
    assert!(perfect.2 < lmmse.1, "perfect {perfect:?}, LMMSE {lmmse:?}");
    let v: serde_json::Value = serde_json::from_str(&ls_json).unwrap();
    assert_eq!(v["config"]["link"]["csi"]["estimator"], "ls");
    assert_eq!(v["config"]["link"]["csi"]["pilots"], 2);
}

#[test]
fn csi_label_is_in_the_table() {
    kaq()
        .args(BLOCK)
        .args(["--csi", "lmmse", "--pilots", "4", "--pilot-power", "2"])
        .assert()
        .success()
        .stdout(contains("LMMSE CSI L_p=4 P=2"));
}

#[test]
fn bad_pilot_values_exit_2_naming_the_flag() {
    for (extra, flag) in [
        (&["--csi", "ls", "--pilots", "1"][..], "--pilots"),
        (&["--csi", "lmmse", "--pilots", "x"][..], "--pilots"),
        (&["--csi", "ls", "--pilot-power", "0"][..], "--pilot-power"),
        (&["--csi", "ls", "--pilot-power", "-1"][..], "--pilot-power"),
        (
            &["--csi", "ls", "--pilot-power", "NaN"][..],
            "--pilot-power",
        ),
        (
            &["--csi", "ls", "--pilot-power", "inf"][..],
            "--pilot-power",
        ),
        (&["--pilots", "4"][..], "--pilots"),
        (&["--csi", "mmse"][..], "--csi"),
    ] {
        kaq()
            .args(BLOCK)
            .args(extra)
            .assert()
            .code(2)
            .stderr(contains(flag));
    }
}

#[test]
fn train_records_the_csi_it_trained_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net.json");
    kaq()
        .args([
            "train",
            "--nt",
            "2",
            "--nr",
            "4",
            "--mod",
            "qpsk",
            "--layers",
            "2",
            "--samples",
            "200",
            "--val-samples",
            "100",
            "--val-frames",
            "100",
            "--batch",
            "50",
            "--epochs",
            "1",
            "--csi",
            "lmmse",
            "--pilots",
            "3",
        ])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(model["train"]["link"]["csi"]["estimator"], "lmmse");
    assert_eq!(model["train"]["link"]["csi"]["pilots"], 3);
    kaq()
        .args([
            "train", "--nt", "2", "--nr", "4", "--csi", "ls", "--pilots", "1",
        ])
        .arg("--out")
        .arg(dir.path().join("bad.json"))
        .assert()
        .code(2)
        .stderr(contains("--pilots"));
}
