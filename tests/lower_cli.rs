//! End-to-end tests of `kaq lower` and `kaq ber --ir` on a tiny configuration: a 4×4 QPSK
//! K = 3 teacher, its KAQ quantization, the IR lowered from it, refusal to clobber, refusal of
//! f32 and malformed model files, and the integer golden model's BER next to the fake-quant
//! net's on the same frames.

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

/// The shared data flags: 600 samples, batch 50, one epoch, one thread.
const DATA: [&str; 12] = [
    "--samples",
    "600",
    "--val-samples",
    "200",
    "--val-frames",
    "200",
    "--batch",
    "50",
    "--epochs",
    "1",
    "--threads",
    "1",
];

/// The run's link, that of the models.
const LINK: [&str; 6] = ["--nt", "4", "--nr", "4", "--mod", "qpsk"];

/// Trains the tiny f32 teacher `dir/fp32.json` and its 4-bit KAQ student `dir/q.json`.
fn models(dir: &Path) {
    kaq(dir)
        .arg("train")
        .args(LINK)
        .args(["--layers", "3", "--lr", "0.01", "--out", "fp32.json"])
        .args(DATA)
        .assert()
        .success();
    kaq(dir)
        .arg("train")
        .args(DATA)
        .args([
            "--quant",
            "kaq",
            "--bits",
            "4",
            "--teacher",
            "fp32.json",
            "--out",
            "q.json",
        ])
        .assert()
        .success();
}

fn lower(dir: &Path, model: &str, out: &str) -> Command {
    let mut cmd = kaq(dir);
    cmd.args(["lower", "--model", model, "--out", out]);
    cmd
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn lower_writes_a_deterministic_ir_and_ber_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    models(d);

    lower(d, "q.json", "ir.json")
        .assert()
        .success()
        .stdout(predicate::str::contains("pgd-soft-k3-kaq-4b"))
        .stdout(predicate::str::contains("3 layers"))
        .stdout(predicate::str::contains("state width 4 bits"))
        .stdout(predicate::str::contains("e.acc g.acc update.acc"))
        .stdout(predicate::str::contains("layer  3:"))
        .stdout(predicate::str::contains("ir.json"));
    let ir = read_json(&d.join("ir.json"));
    assert_eq!(ir["format"], "kaq-ir");
    assert_eq!(ir["name"], "pgd-soft-k3-kaq-4b");
    assert_eq!((ir["nt"].as_u64(), ir["nr"].as_u64()), (Some(4), Some(4)));
    assert_eq!(ir["layers"].as_array().unwrap().len(), 3);

    // Lowering is deterministic: equal inputs give equal bytes.
    let first = fs::read(d.join("ir.json")).unwrap();
    lower(d, "q.json", "again.json").assert().success();
    assert_eq!(fs::read(d.join("again.json")).unwrap(), first);

    // No clobbering without --force; the file is left as it was.
    fs::write(d.join("taken.json"), "keep me").unwrap();
    lower(d, "q.json", "taken.json")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--force"));
    assert_eq!(fs::read_to_string(d.join("taken.json")).unwrap(), "keep me");
    lower(d, "q.json", "taken.json")
        .arg("--force")
        .assert()
        .success();
    assert_eq!(fs::read(d.join("taken.json")).unwrap(), first);

    // A narrower multiplier is a different lowering of the same net.
    lower(d, "q.json", "ir12.json")
        .args(["--mult-bits", "12"])
        .assert()
        .success();
    assert_ne!(fs::read(d.join("ir12.json")).unwrap(), first);

    // The integer model and the fake-quant net on the same frames: both run every frame
    // (--min-errors beyond reach), so their error counts compare decision by decision.
    kaq(d)
        .arg("ber")
        .args(LINK)
        .args([
            "--detector",
            "mmse",
            "--ir",
            "ir.json",
            "--model",
            "q.json",
            "--snr",
            "0,8,16",
            "--min-errors",
            "100000000",
            "--max-frames",
            "3000",
            "--threads",
            "1",
            "--json",
            "ber.json",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("pgd-soft-k3-kaq-4b-int"));
    let ber = read_json(&d.join("ber.json"));
    let names: Vec<&str> = ber["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["mmse", "pgd-soft-k3-kaq-4b", "pgd-soft-k3-kaq-4b-int"]
    );
    let points = ber["points"].as_array().unwrap();
    let rows =
        |name: &str| -> Vec<&Value> { points.iter().filter(|p| p["detector"] == name).collect() };
    let (fake, int) = (rows("pgd-soft-k3-kaq-4b"), rows("pgd-soft-k3-kaq-4b-int"));
    assert_eq!((fake.len(), int.len()), (3, 3));
    for (f, i) in fake.iter().zip(&int) {
        assert_eq!(f["snr_db"], i["snr_db"]);
        assert_eq!(f["frames"], 3000);
        assert_eq!(i["frames"], 3000);
        assert_eq!(f["bits"], i["bits"]);
        let bits = f["bits"].as_u64().unwrap();
        let (fe, ie) = (
            f["bit_errors"].as_u64().unwrap(),
            i["bit_errors"].as_u64().unwrap(),
        );
        assert!(
            fe > 0,
            "the fake-quant net makes no errors at {}",
            f["snr_db"]
        );
        // They agree on at least 99.9 % of the decisions.
        assert!(
            fe.abs_diff(ie) * 1000 <= bits,
            "at {} dB: fake-quant {fe} vs integer {ie} bit errors of {bits}",
            f["snr_db"]
        );
    }

    // An IR of another link is a usage error naming --ir.
    kaq(d)
        .args([
            "ber", "--nt", "2", "--nr", "4", "--mod", "qpsk", "--ir", "ir.json", "--snr", "10",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--ir"))
        .stderr(predicate::str::contains("4x4 qpsk"));
    // A broken IR file is refused with the file named.
    fs::write(d.join("broken-ir.json"), "{\"format\": \"kaq-ir\"").unwrap();
    kaq(d)
        .arg("ber")
        .args(LINK)
        .args(["--ir", "broken-ir.json", "--snr", "10"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("broken-ir.json"));

    // Only quantized models lower: the f32 teacher is refused, naming the fix.
    lower(d, "fp32.json", "f32-ir.json")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("f32 model"))
        .stderr(predicate::str::contains("kaq train --quant"));
    assert!(!d.join("f32-ir.json").exists());

    // Malformed and truncated model files are refused with the file named, writing nothing.
    let q = fs::read_to_string(d.join("q.json")).unwrap();
    fs::write(d.join("truncated.json"), &q[..q.len() / 2]).unwrap();
    fs::write(d.join("garbage.json"), "not json at all").unwrap();
    fs::write(
        d.join("tampered.json"),
        q.replacen("\"version\": 1", "\"version\": 7", 1),
    )
    .unwrap();
    fs::write(d.join("other.json"), "{\"format\": \"kaq-ir\"}").unwrap();
    // A file that is not a model is a usage error (status 2), a missing one a run-time error.
    for (bad, code, needle) in [
        ("truncated.json", 2, "not a JSON model file"),
        ("garbage.json", 2, "not a JSON model file"),
        ("tampered.json", 2, "version 7"),
        ("other.json", 2, "expected \"kaq-qmodel\""),
        ("missing.json", 1, "missing.json"),
    ] {
        lower(d, bad, "bad-ir.json")
            .assert()
            .code(code)
            .stderr(predicate::str::contains(bad))
            .stderr(predicate::str::contains(needle));
        assert!(!d.join("bad-ir.json").exists(), "{bad} wrote a file");
    }
}

#[test]
fn lower_flag_errors_exit_2_or_fail_before_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (args, code, needle) in [
        (vec!["--mult-bits", "7"], 2, "--mult-bits"),
        (vec!["--mult-bits", "33"], 2, "between 8 and 32"),
        (vec!["--mult-bits", "x"], 2, "--mult-bits"),
        // The output is checked before the model is read.
        (vec!["--out", "no-such-dir/ir.json"], 1, "no-such-dir"),
    ] {
        let mut cmd = kaq(d);
        cmd.args(["lower", "--model", "absent.json"]);
        if !args.contains(&"--out") {
            cmd.args(["--out", "ir.json"]);
        }
        cmd.args(&args)
            .assert()
            .code(code)
            .stderr(predicate::str::contains(needle));
    }
    kaq(d)
        .args(["lower", "--out", "ir.json"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--model"));
    // The model file itself is not an output.
    fs::write(d.join("q.json"), "{}").unwrap();
    kaq(d)
        .args(["lower", "--model", "q.json", "--out", "q.json", "--force"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--model file"));
    assert_eq!(fs::read_to_string(d.join("q.json")).unwrap(), "{}");
    assert_eq!(fs::read_dir(d).unwrap().count(), 1);
}

/// A quantized model the IR cannot express (per-layer H̃ widths) is a usage error naming
/// `--model`: exit 2, and no IR is written.
#[test]
fn lower_refuses_a_model_the_ir_cannot_express_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    models(d);
    kaq(d)
        .arg("train")
        .args(DATA)
        .args(["--quant", "ptq", "--bits", "4", "--h-layer-bits", "4,3,4"])
        .args(["--teacher", "fp32.json", "--out", "hl.json"])
        .assert()
        .success();
    lower(d, "hl.json", "ir.json")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--model"))
        .stderr(predicate::str::contains("h_layer_bits"));
    assert!(!d.join("ir.json").exists());
}
