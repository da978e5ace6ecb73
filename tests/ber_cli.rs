//! End-to-end tests of `kaq ber`: a small run writes the table, the JSON and the SVG; bad
//! arguments exit with status 2 naming the problem; an unwritable output fails before the run
//! and leaves no file behind.

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin_cmd;
use predicates::str::contains;

fn kaq() -> Command {
    cargo_bin_cmd!("kaq")
}

/// A fast run: 2×2 QPSK, three SNR points, at most 512 frames per point.
const SMALL: [&str; 14] = [
    "ber",
    "--detector",
    "zf,mmse,kbest:4",
    "--nt",
    "2",
    "--nr",
    "2",
    "--mod",
    "qpsk",
    "--snr",
    "0:10:5",
    "--min-errors",
    "100",
    "--max-frames=512",
];

#[test]
fn small_run_writes_table_json_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("ber.json");
    let svg = dir.path().join("ber.svg");
    let out = kaq()
        .args(SMALL)
        .args(["--batch", "64", "--threads", "2", "--seed", "3"])
        .arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let table = String::from_utf8(out).unwrap();
    assert!(table.contains("95% CI"), "{table}");
    // Header comment, column header, then one row per detector and SNR point.
    let rows: Vec<&str> = table.lines().skip(2).collect();
    assert_eq!(rows.len(), 9, "{table}");
    for det in ["zf", "mmse", "kbest:4"] {
        assert_eq!(
            rows.iter().filter(|r| r.starts_with(det)).count(),
            3,
            "{table}"
        );
    }

    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let points = doc["points"].as_array().unwrap();
    assert_eq!(points.len(), 9);
    assert_eq!(doc["config"]["seed"], 3);
    assert_eq!(doc["config"]["link"]["nt"], 2);
    assert_eq!(doc["config"]["link"]["modulation"], "qpsk");
    assert_eq!(
        doc["detectors"],
        serde_json::json!(["zf", "mmse", "kbest:4"])
    );
    for p in points {
        let (ber, lo, hi) = (
            p["ber"].as_f64().unwrap(),
            p["ber_ci_low"].as_f64().unwrap(),
            p["ber_ci_high"].as_f64().unwrap(),
        );
        assert!(lo <= ber && ber <= hi, "{p}");
        let frames = p["frames"].as_u64().unwrap();
        assert!(frames > 0 && frames <= 512, "{p}");
        assert_eq!(p["bits"].as_u64().unwrap(), frames * 4);
        let stop = p["stop"].as_str().unwrap();
        let errors = p["bit_errors"].as_u64().unwrap();
        match stop {
            "min_errors" => assert!(errors >= 100, "{p}"),
            "max_frames" => assert_eq!(frames, 512, "{p}"),
            other => panic!("unexpected stop {other}"),
        }
    }

    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(svg_text.starts_with("<svg"));
    assert!(svg_text.trim_end().ends_with("</svg>"));
    let texts: Vec<&str> = svg_text
        .split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim())
        })
        .collect();
    for label in [
        "zf",
        "mmse",
        "kbest:4",
        "BER",
        "SNR per receive antenna (dB)",
    ] {
        assert!(texts.contains(&label), "SVG lacks {label}: {texts:?}");
    }
    // Nothing but the two outputs is left in the directory (no temporary files).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn equal_seeds_give_equal_json_on_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let run = |threads: &str, seed: &str, name: &str| {
        let path = dir.path().join(name);
        kaq()
            .args(SMALL)
            .args(["--threads", threads, "--seed", seed, "--batch", "32"])
            .arg("--json")
            .arg(&path)
            .assert()
            .success();
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        doc["points"].clone()
    };
    let one = run("1", "5", "a.json");
    let two = run("2", "5", "b.json");
    let other = run("2", "6", "c.json");
    assert_eq!(one, two);
    assert_ne!(one, other);
}

#[test]
fn bad_arguments_exit_2_naming_the_problem() {
    for (args, needle) in [
        (vec!["--snr", "5:0:1"], "--snr"),
        (vec!["--snr", "5:0:1"], "start 5 is above stop 0"),
        (vec!["--snr", "0:10:0"], "step must be positive"),
        (vec!["--snr", "nan"], "--snr"),
        (vec!["--mod", "7qam"], "7qam"),
        (vec!["--nt", "0"], "--nt"),
        (vec!["--nr", "0"], "--nr"),
        (vec!["--detector", "kbest:0"], "kbest:0"),
        (vec!["--detector", "foo"], "--detector"),
        (vec!["--rho-tx", "1.5"], "--rho-tx"),
        (vec!["--min-errors", "0"], "--min-errors"),
        (vec!["--threads", "0"], "--threads"),
        (vec!["--batch", "0"], "--batch"),
    ] {
        kaq()
            .arg("ber")
            .args(&args)
            .assert()
            .code(2)
            .stderr(contains(needle));
    }
}

#[test]
fn unwritable_output_fails_before_running_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir").join("ber.json");
    kaq()
        .args(SMALL)
        .arg("--json")
        .arg(&missing)
        .assert()
        .code(1)
        .stderr(contains("no-such-dir"))
        .stdout("");
    assert!(!missing.exists());
    let svg_missing = dir.path().join("absent").join("ber.svg");
    kaq()
        .args(SMALL)
        .arg("--plot")
        .arg(&svg_missing)
        .assert()
        .code(1)
        .stderr(contains("absent"));
    // A directory is not a file to write.
    kaq()
        .args(SMALL)
        .arg("--json")
        .arg(dir.path())
        .assert()
        .code(1)
        .stderr(contains("directory"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn detector_refusing_the_link_fails_before_the_run() {
    // Exhaustive ML over 16×16 16-QAM is refused by the detector itself.
    kaq()
        .args(["ber", "--detector", "ml", "--snr", "10"])
        .assert()
        .code(2)
        .stderr(contains("--detector"))
        .stderr(contains("ml"));
}
