//! `kaq plot --ber`: the BER plot redrawn from a saved `kaq ber --json` file is the plot
//! `kaq ber --plot` drew from the same run, byte for byte; outputs need `--force` to be
//! replaced, and a file that is not a `kaq ber` JSON is a usage error naming `--ber`.

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

fn kaq(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("kaq").unwrap();
    cmd.current_dir(dir);
    cmd
}

#[test]
fn the_redrawn_plot_equals_the_plot_of_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    kaq(d)
        .args(["ber", "--detector", "zf,mmse", "--nt", "2", "--nr", "2"])
        .args(["--mod", "qpsk", "--snr", "0,10,20", "--min-errors", "50"])
        .args(["--max-frames", "2000", "--threads", "1"])
        .args(["--json", "ber.json", "--plot", "ber.svg"])
        .assert()
        .success();
    kaq(d)
        .args(["plot", "--ber", "ber.json", "--out", "again.svg"])
        .assert()
        .success()
        .stdout(predicate::str::contains("again.svg drawn from ber.json"));
    let (drawn, redrawn) = (
        fs::read(d.join("ber.svg")).unwrap(),
        fs::read(d.join("again.svg")).unwrap(),
    );
    assert!(redrawn.starts_with(b"<svg"));
    assert_eq!(drawn, redrawn, "the redrawn plot differs");

    // An existing output needs --force.
    kaq(d)
        .args(["plot", "--ber", "ber.json", "--out", "again.svg"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--out").and(predicate::str::contains("--force")));
    kaq(d)
        .args(["plot", "--ber", "ber.json", "--out", "again.svg", "--force"])
        .assert()
        .success();
}

#[test]
fn a_file_that_is_not_a_ber_json_is_a_usage_error_naming_ber() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("empty.json"), "{}").unwrap();
    fs::write(d.join("text.json"), "not json").unwrap();
    for (file, why) in [
        ("empty.json", "missing field"),
        ("text.json", "expected"),
        ("absent.json", "absent.json"),
    ] {
        kaq(d)
            .args(["plot", "--ber", file, "--out", "p.svg"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("--ber").and(predicate::str::contains(why)));
    }
    assert!(!d.join("p.svg").exists());
}
