//! What the `kaq ber` tests of CSI and time variation share: the binary, the arguments of
//! the committed block-fading fixture `tests/fixtures/ber_csi/perfect.json`, and a run that
//! returns the `--json` text.

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin_cmd;

pub fn kaq() -> Command {
    cargo_bin_cmd!("kaq")
}

/// The arguments of `tests/fixtures/ber_csi/perfect.json` (block fading, Rayleigh).
pub const BLOCK: [&str; 18] = [
    "ber",
    "--nt",
    "2",
    "--nr",
    "4",
    "--mod",
    "qpsk",
    "--detector",
    "mmse,kbest:4",
    "--snr",
    "0:10:5",
    "--min-errors",
    "200",
    "--max-frames",
    "4000",
    "--seed",
    "3",
    "--block=2",
];

/// Runs `kaq ber ARGS EXTRA --json F` and returns the text of F.
pub fn run_json(args: &[&str], extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("ber.json");
    kaq()
        .args(args)
        .args(extra)
        .arg("--json")
        .arg(&json)
        .assert()
        .success();
    std::fs::read_to_string(json).unwrap()
}

/// The text of a committed fixture of `tests/fixtures/ber_csi/`.
pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/ber_csi/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).unwrap()
}
