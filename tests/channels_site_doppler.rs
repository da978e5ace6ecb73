//! End-to-end tests of `kaq ber --doppler` and `kaq site` (docs/channels.md): Doppler 0 is
//! bit-identical to block fading (the committed fixture), time variation within a block costs
//! BER, a site dataset round-trips through `--channels`, the committed site sample is what its
//! documented command writes, and bad values exit with status 2 naming the flag.

use ndarray::Array3;
use ndarray_npy::read_npy;
use num_complex::Complex;
use predicates::str::contains;

#[path = "common/ber_fixture.rs"]
mod ber_fixture;
use ber_fixture::{BLOCK, fixture, kaq};

fn run_json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ber_fixture::run_json(args, &[])).unwrap()
}

#[test]
fn doppler_zero_is_the_block_fading_fixture() {
    assert_eq!(
        ber_fixture::run_json(&BLOCK, &["--doppler", "0"]),
        fixture("perfect.json")
    );
}

/// (BER, CI low, CI high) of MMSE at 20 dB on a 2×4 QPSK link with blocks of 16 frames.
fn mmse_at_20db(extra: &[&str]) -> (f64, f64, f64) {
    let mut args = vec![
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
        "20",
        "--min-errors",
        "300",
        "--max-frames",
        "200000",
        "--block",
        "16",
        "--seed",
        "5",
    ];
    args.extend(extra);
    let v = run_json(&args);
    let p = &v["points"][0];
    let f = |k: &str| p[k].as_f64().unwrap();
    (f("ber"), f("ber_ci_low"), f("ber_ci_high"))
}

#[test]
fn time_variation_within_a_block_costs_ber() {
    // f_D·T_s = 0.05: J0(2π·0.05·15) ≈ −0.2, the channel at the end of a block is nearly
    // independent of the block-start CSI the detector keeps; at 0.001 it barely moves.
    let still = mmse_at_20db(&[]);
    let slow = mmse_at_20db(&["--doppler", "0.001"]);
    let fast = mmse_at_20db(&["--doppler", "0.05"]);
    assert!(
        fast.1 > 10.0 * still.2,
        "fast {fast:?} vs block fading {still:?}"
    );
    assert!(fast.1 > slow.2, "fast {fast:?} vs slow {slow:?}");
    assert!(
        slow.0 < 3.0 * still.2,
        "slow {slow:?} vs block fading {still:?}"
    );
}

#[test]
fn bad_doppler_values_exit_2_naming_the_flag() {
    for (value, block, reason) in [
        ("0.7", "4", "between 0 and 0.5"),
        ("-0.1", "4", "between 0 and 0.5"),
        ("NaN", "4", "between 0 and 0.5"),
        ("fast", "4", "not a number"),
        ("0.1", "1", "block above 1"),
    ] {
        kaq()
            .args([
                "ber",
                "--nt",
                "2",
                "--nr",
                "4",
                "--mod",
                "qpsk",
                "--detector",
                "mmse",
            ])
            .args(["--block", block, "--doppler", value])
            .assert()
            .code(2)
            .stderr(contains("--doppler"))
            .stderr(contains(reason));
    }
}

/// The command that writes `tests/fixtures/site/site-8x16.npy` (docs/channels.md).
const SAMPLE: [&str; 14] = [
    "site",
    "--nt",
    "8",
    "--nr",
    "16",
    "--channels",
    "128",
    "--clusters",
    "4",
    "--spread",
    "8",
    "--site",
    "1",
    "--seed=100",
];

#[test]
fn the_committed_site_sample_is_what_its_command_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("site.npy");
    kaq()
        .args(SAMPLE)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("cluster_deg"));
    let fixture = format!(
        "{}/tests/fixtures/site/site-8x16.npy",
        env!("CARGO_MANIFEST_DIR")
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&fixture).unwrap()
    );
    let h: Array3<Complex<f32>> = read_npy(&fixture).unwrap();
    assert_eq!(h.shape(), &[128, 16, 8]);
    assert!(h.iter().all(|v| v.re.is_finite() && v.im.is_finite()));
    // An existing file is kept without --force.
    kaq()
        .args(SAMPLE)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(contains("--force"));
}

#[test]
fn a_site_dataset_runs_through_channels_and_differs_from_iid() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("one.npy");
    // One cluster of zero spread: every channel has rank 1, so two users cannot be
    // separated and MMSE stays near BER 1/4 at 20 dB where i.i.d. channels give far less.
    kaq()
        .args(["site", "--nt", "2", "--nr", "4", "--channels", "64"])
        .args(["--clusters", "1", "--spread", "0", "--out"])
        .arg(&out)
        .assert()
        .success();
    let base = [
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
        "20",
        "--min-errors",
        "300",
        "--max-frames",
        "100000",
        "--seed",
        "2",
    ];
    let iid = run_json(&base);
    let mut with_site = base.to_vec();
    let path = out.to_str().unwrap();
    with_site.extend(["--channels", path]);
    let site = run_json(&with_site);
    let ber = |v: &serde_json::Value| v["points"][0]["ber"].as_f64().unwrap();
    assert!(ber(&site) > 0.1, "rank-1 site: {}", ber(&site));
    assert!(ber(&iid) < 0.02, "i.i.d.: {}", ber(&iid));
}

#[test]
fn bad_site_values_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bad.npy");
    for (flag, value) in [
        ("--spread", "-3"),
        ("--clusters", "0"),
        ("--sector", "200"),
        ("--los-k", "100"),
        ("--spacing", "0"),
        ("--rays", "5000"),
    ] {
        kaq()
            .args(["site", flag, value, "--out"])
            .arg(&out)
            .assert()
            .code(2)
            .stderr(contains(flag));
        assert!(!out.exists(), "{flag} {value} wrote a file");
    }
}
