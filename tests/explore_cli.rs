//! End-to-end tests of `kaq explore` on a tiny teacher (2×2 QPSK, K = 2): determinism for a
//! seed, resuming from a partial results file, the greedy search, and refusals.

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn kaq(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("kaq").unwrap();
    cmd.current_dir(dir);
    cmd
}

/// Trains the tiny f32 teacher into `dir/fp32.json`.
fn teacher(dir: &Path) {
    kaq(dir)
        .args([
            "train", "--nt", "2", "--nr", "2", "--mod", "qpsk", "--layers", "2",
        ])
        .args([
            "--samples",
            "400",
            "--val-samples",
            "100",
            "--val-frames",
            "100",
        ])
        .args(["--batch", "50", "--epochs", "1", "--threads", "1"])
        .args(["--lr", "0.01", "--out", "fp32.json"])
        .assert()
        .success();
}

fn explore(dir: &Path, out: &str, extra: &[&str]) -> Command {
    let mut cmd = kaq(dir);
    cmd.args(["explore", "--teacher", "fp32.json", "--bits", "3,8"])
        .args(["--lanes", "1,2", "--snr", "4,8", "--frames", "1500"])
        .args(["--samples", "400", "--seed", "7", "--out", out])
        .args(extra);
    cmd
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

#[test]
fn explore_is_deterministic_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    teacher(d);
    explore(d, "a", &["--threads", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Pareto front"))
        .stdout(predicate::str::contains("4 candidates evaluated, 0 reused"));
    explore(d, "b", &["--threads", "2"]).assert().success();
    for f in [
        "results.jsonl",
        "pareto.json",
        "pareto.md",
        "ber_energy.svg",
    ] {
        assert_eq!(
            read(&d.join("a").join(f)),
            read(&d.join("b").join(f)),
            "{f}"
        );
    }
    let doc: Value = serde_json::from_str(&read(&d.join("a/pareto.json"))).unwrap();
    let records = doc["records"].as_array().unwrap();
    assert_eq!(records.len(), 4);
    let bits: Vec<Value> = records.iter().map(|r| r["bits"].clone()).collect();
    assert_eq!(
        bits,
        [[3, 3], [3, 8], [8, 3], [8, 8]].map(|b| serde_json::json!(b))
    );
    for r in records {
        assert_eq!(r["hardware"].as_array().unwrap().len(), 2);
        assert!(r["m2_pj_per_bit"].as_f64().unwrap() > 0.0);
    }
    // Narrower layers cost less energy under model 2.
    let m2 = |i: usize| records[i]["m2_pj_per_bit"].as_f64().unwrap();
    assert!(m2(0) < m2(1) && m2(1) < m2(3) && m2(2) < m2(3));
    // Every front point is a record and no record dominates it.
    for p in doc["fronts"]["ber_vs_m2"].as_array().unwrap() {
        let (e, b) = (
            p["m2_pj_per_bit"].as_f64().unwrap(),
            p["mean_ber"].as_f64().unwrap(),
        );
        assert!(records.iter().any(|r| r["bits"] == p["bits"]));
        for r in records {
            let mean = r["ber"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .sum::<f64>()
                / 2.0;
            let re = r["m2_pj_per_bit"].as_f64().unwrap();
            assert!(
                !(re <= e && mean <= b && (re < e || mean < b)),
                "{p} is dominated by {r}"
            );
        }
    }

    // Resume: keep two records, rerun, get the same files.
    let full = read(&d.join("a/results.jsonl"));
    let partial: String = full.lines().take(2).map(|l| format!("{l}\n")).collect();
    fs::create_dir(d.join("c")).unwrap();
    fs::write(d.join("c/results.jsonl"), partial).unwrap();
    explore(d, "c", &[])
        .assert()
        .success()
        .stdout(predicate::str::contains("2 candidates evaluated, 2 reused"));
    assert_eq!(read(&d.join("c/results.jsonl")), full);
    assert_eq!(
        read(&d.join("c/pareto.json")),
        read(&d.join("a/pareto.json"))
    );
    // A complete file evaluates nothing.
    explore(d, "c", &[])
        .assert()
        .success()
        .stdout(predicate::str::contains("0 candidates evaluated, 4 reused"));

    // Another configuration in the same directory is refused.
    kaq(d)
        .args([
            "explore",
            "--teacher",
            "fp32.json",
            "--bits",
            "3,8",
            "--lanes",
            "1,2",
        ])
        .args([
            "--snr",
            "4,8",
            "--frames",
            "1500",
            "--samples",
            "400",
            "--seed",
            "8",
        ])
        .args(["--out", "a"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--out"))
        .stderr(predicate::str::contains("another configuration"));

    // Greedy (a grid above --exhaustive): from 8,8 down to 3,3 through the better neighbour.
    explore(d, "g", &["--exhaustive", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("4 candidates evaluated"));
    let g: Value = serde_json::from_str(&read(&d.join("g/pareto.json"))).unwrap();
    let gb: Vec<Value> = g["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["bits"].clone())
        .collect();
    assert_eq!(gb[0], serde_json::json!([8, 8]));
    assert_eq!(gb[3], serde_json::json!([3, 3]));
}

/// `--refine` fine-tunes the first fronts and the reference under their own configuration
/// hash: the search's records are reused, the refined ones are resumed, and the summary names
/// the least-energy design within `--max-loss-db`.
#[test]
fn explore_refines_the_front_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    teacher(d);
    explore(d, "r", &["--y-bits", "6,10", "--threads", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("8 candidates evaluated, 0 reused"));
    let refine = [
        "--y-bits",
        "6,10",
        "--refine",
        "qat-mse",
        "--refine-fronts",
        "1",
        "--refine-epochs",
        "1",
        "--threads",
        "1",
    ];
    let out = explore(d, "r", &refine).assert().success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("8 reused"), "{stdout}");
    assert!(
        stdout.contains("(qat-mse): least model 2 energy within 0.2 dB"),
        "{stdout}"
    );
    let doc: Value = serde_json::from_str(&read(&d.join("r/pareto.json"))).unwrap();
    let records = doc["records"].as_array().unwrap();
    let refined: Vec<&Value> = records
        .iter()
        .filter(|r| r["refined"] == "qat-mse")
        .collect();
    assert!(!refined.is_empty() && refined.len() < records.len());
    // The reference (every coordinate at its widest) is always refined.
    assert!(
        refined
            .iter()
            .any(|r| r["bits"] == serde_json::json!([8, 8]) && r["y_bits"] == 10)
    );
    for r in records {
        assert!(r["y_bits"] == 6 || r["y_bits"] == 10);
    }
    let full = read(&d.join("r/results.jsonl"));
    explore(d, "r", &refine)
        .assert()
        .success()
        .stdout(predicate::str::contains("0 candidates evaluated"));
    assert_eq!(read(&d.join("r/results.jsonl")), full);
    explore(d, "r", &["--refine", "ptq"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--refine"));
}

#[test]
fn explore_refuses_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    teacher(d);
    for (extra, flag) in [
        (vec!["--lanes", "3"], "--lanes"),
        (vec!["--lanes", "0"], "--lanes"),
        (vec!["--bits", "1"], "--bits"),
        (vec!["--bits", "4,17"], "--bits"),
        (vec!["--frames", "0"], "--frames"),
        (vec!["--snr", "nan"], "--snr"),
    ] {
        let mut cmd = kaq(d);
        cmd.args([
            "explore",
            "--teacher",
            "fp32.json",
            "--snr",
            "4",
            "--out",
            "x",
        ]);
        cmd.args(&extra)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(flag));
        assert!(!d.join("x/results.jsonl").exists(), "{extra:?}");
    }
    kaq(d)
        .args([
            "explore",
            "--teacher",
            "missing.json",
            "--snr",
            "4",
            "--out",
            "x",
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains("missing.json"));
}

/// Trains a tiny cg teacher (2×2 QPSK, two layers of two inner steps) into `dir/cg.json`.
fn cg_teacher(dir: &Path) {
    kaq(dir)
        .args(["train", "--arch", "cg", "--layers", "2", "--inner", "2"])
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
        .args(["--epochs", "1", "--threads", "1", "--out", "cg.json"])
        .assert()
        .success();
}

/// The family axis: a PGD and a cg teacher in one run; the cg candidates are PTQ-lowered to
/// IR v2 and measured on its golden model, deterministic at any thread count and resumable,
/// their energy that of `kaq report` on the same IR, the front free of dominated points.
#[test]
fn explore_cg_beside_pgd_is_deterministic_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    teacher(d);
    cg_teacher(d);
    let run = |out: &str, threads: &str| {
        let mut c = kaq(d);
        c.args(["explore", "--teacher", "fp32.json", "--teacher", "cg.json"])
            .args(["--bits", "8", "--cg-g-bits", "8,16", "--cg-h-bits", "6,10"])
            .args(["--lanes", "1,2"])
            .args(["--snr", "4,8", "--frames", "1500", "--samples", "400"])
            .args([
                "--seed",
                "7",
                "--block",
                "7",
                "--threads",
                threads,
                "--out",
                out,
            ]);
        c
    };
    run("a", "1")
        .assert()
        .success()
        .stdout(predicate::str::contains("5 candidates evaluated, 0 reused"));
    run("b", "2").assert().success();
    for f in ["results.jsonl", "pareto.json", "pareto.md"] {
        assert_eq!(
            read(&d.join("a").join(f)),
            read(&d.join("b").join(f)),
            "{f}"
        );
    }
    let doc: Value = serde_json::from_str(&read(&d.join("a/pareto.json"))).unwrap();
    let records = doc["records"].as_array().unwrap();
    let cg: Vec<&Value> = records.iter().filter(|r| r["family"] == "cg").collect();
    assert_eq!(cg.len(), 4);
    assert_eq!(records.len() - cg.len(), 1);
    // Narrower G (read every step) and H̃ cost less under both models.
    let at = |g: u64, h: u64| {
        cg.iter()
            .find(|r| r["tensor_bits"][2] == g && r["tensor_bits"][0] == h)
            .unwrap()
    };
    let m = |r: &Value, k: &str| r[k].as_f64().unwrap();
    for k in ["m2_pj_per_bit", "m1_pj_per_bit"] {
        assert!(m(at(8, 10), k) < m(at(16, 10), k), "{k}");
        assert!(m(at(16, 6), k) < m(at(16, 10), k), "{k}");
    }
    // The v2 area estimate and the cycle model at both lane counts: the second lane adds a
    // multiplier and its bank copies and takes fewer cycles.
    for r in &cg {
        let h = r["hardware"].as_array().unwrap();
        assert_eq!(h.len(), 2, "{r}");
        let f = |i: usize, k: &str| h[i][k].as_f64().unwrap();
        assert_eq!(h[1]["lanes"], 2);
        assert!(f(0, "lut") > 0.0 && f(1, "lut") > f(0, "lut"), "{r}");
        assert!(f(1, "dsp") > f(0, "dsp") && f(1, "ff") > f(0, "ff"), "{r}");
        assert!(f(1, "bits_per_cycle") > f(0, "bits_per_cycle") && f(0, "bits_per_cycle") > 0.0);
    }
    // Both families on the model 2 front are undominated.
    let pts: Vec<(f64, f64, &Value)> = doc["fronts"]["ber_vs_m2"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (m(p, "m2_pj_per_bit"), m(p, "mean_ber"), p))
        .collect();
    for (e, b, p) in &pts {
        for r in records {
            let mean = r["ber"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .sum::<f64>()
                / 2.0;
            let re = m(r, "m2_pj_per_bit");
            assert!(
                !(re <= *e && mean <= *b && (re < *e || mean < *b)),
                "{p} dominated by {r}"
            );
        }
    }
    // Resume from two records.
    let full = read(&d.join("a/results.jsonl"));
    let partial: String = full.lines().take(2).map(|l| format!("{l}\n")).collect();
    fs::create_dir(d.join("c")).unwrap();
    fs::write(d.join("c/results.jsonl"), partial).unwrap();
    run("c", "1")
        .assert()
        .success()
        .stdout(predicate::str::contains("3 candidates evaluated, 2 reused"));
    assert_eq!(read(&d.join("c/results.jsonl")), full);
    // A cg teacher is PTQ only.
    kaq(d)
        .args([
            "explore",
            "--teacher",
            "cg.json",
            "--snr",
            "4,8",
            "--method",
            "qat-mse",
        ])
        .args(["--out", "e"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--method"));
}

/// The narrow inner G axis (`--cg-gi-bits`, docs/ir.md §10.9): one coordinate per layer with
/// `--cg-gi-per-layer`, the reference at the full G, and every narrower inner G cheaper in both
/// models; `--cg-gi-per-layer` alone is a usage error.
#[test]
fn explore_cg_inner_g_per_layer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cg_teacher(d);
    kaq(d)
        .args(["explore", "--teacher", "cg.json", "--cg-gi-bits", "6,16"])
        .args(["--cg-gi-per-layer", "--snr", "8", "--frames", "600"])
        .args(["--block", "7", "--threads", "1", "--out", "gi"])
        .assert()
        .success()
        .stdout(predicate::str::contains("4 candidates evaluated, 0 reused"));
    let doc: Value = serde_json::from_str(&read(&d.join("gi/pareto.json"))).unwrap();
    let records = doc["records"].as_array().unwrap();
    let m2 = |gi: [u64; 2]| {
        records
            .iter()
            .find(|r| r["bits"].as_array().unwrap()[3..] == [gi[0], gi[1]])
            .map(|r| r["m2_pj_per_bit"].as_f64().unwrap())
            .unwrap()
    };
    assert!(m2([6, 6]) < m2([6, 16]) && m2([6, 16]) < m2([16, 16]));
    assert!(m2([16, 6]) < m2([16, 16]));
    kaq(d)
        .args(["explore", "--teacher", "cg.json", "--cg-gi-per-layer"])
        .args(["--snr", "8", "--out", "no"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--cg-gi-bits"));
}
