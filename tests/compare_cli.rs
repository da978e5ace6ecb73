//! End-to-end tests of `kaq compare` on a tiny configuration: the report files and their
//! contents, resuming, refusing a non-empty directory, `--teacher`, and usage errors.

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

/// SNR points of the tiny runs.
const SNRS: [f64; 3] = [0.0, 5.0, 10.0];

/// Flags of a tiny comparison (few samples and epochs) except the link, the net and `--out`.
const TINY: [&str; 26] = [
    "--samples",
    "400",
    "--val-samples",
    "200",
    "--val-frames",
    "200",
    "--batch",
    "50",
    "--epochs",
    "2",
    "--quant-epochs",
    "2",
    "--calibration-samples",
    "200",
    "--bits",
    "4,8",
    "--methods",
    "fp32,ptq,qat-mse",
    "--snr",
    "0:10:5",
    "--min-errors",
    "100",
    "--max-frames",
    "1000",
    "--hist-samples",
    "100",
];

fn kaq(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("kaq").unwrap();
    cmd.current_dir(dir).args(["compare", "--threads", "1"]);
    cmd
}

/// The tiny comparison (4×4 QPSK, PGD-soft K = 2) writing to `out`.
fn tiny(dir: &Path, out: &str) -> Command {
    let mut cmd = kaq(dir);
    cmd.args(["--nt", "4", "--nr", "4", "--mod", "qpsk", "--layers", "2"])
        .args(TINY)
        .args(["--out", out]);
    cmd
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// The trimmed contents of every `<text>` element of an SVG file.
fn svg_texts(path: &Path) -> Vec<String> {
    let svg = fs::read_to_string(path).unwrap();
    assert!(svg.starts_with("<svg"), "{} is not an SVG", path.display());
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

fn assert_legend(path: &Path, present: &[&str], absent: &[&str]) {
    let texts = svg_texts(path);
    for name in present {
        assert!(
            texts.iter().any(|t| t == name),
            "{} lacks series {name}: {texts:?}",
            path.display()
        );
    }
    for name in absent {
        assert!(
            !texts.iter().any(|t| t == name),
            "{} has unexpected series {name}",
            path.display()
        );
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn writes_the_report_and_resumes_with_force() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), "report")
        .assert()
        .success()
        .stdout(predicate::str::contains("qat-mse@4 epoch 2/2"));
    let out = dir.path().join("report");
    assert_eq!(
        listing(&out),
        [
            "accuracy.svg",
            "ber-4bit.svg",
            "ber-8bit.svg",
            "hist-layer1.svg",
            "hist-layer2.svg",
            "models",
            "report.json",
            "report.md"
        ]
    );
    assert_eq!(
        listing(&out.join("models")),
        [
            "fp32.json",
            "ptq-4bit.json",
            "ptq-8bit.json",
            "qat-mse-4bit.json",
            "qat-mse-8bit.json"
        ]
    );

    let report = read_json(&out.join("report.json"));
    let detectors: Vec<&str> = report["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(
        detectors,
        ["fp32", "ptq@4", "qat-mse@4", "ptq@8", "qat-mse@8"]
    );
    let points = report["points"].as_array().unwrap();
    assert_eq!(points.len(), detectors.len() * SNRS.len());
    for (i, p) in points.iter().enumerate() {
        assert_eq!(p["detector"], detectors[i / SNRS.len()]);
        assert_eq!(p["snr_db"].as_f64().unwrap(), SNRS[i % SNRS.len()]);
        let (lo, ber, hi) = (
            p["ber_ci_low"].as_f64().unwrap(),
            p["ber"].as_f64().unwrap(),
            p["ber_ci_high"].as_f64().unwrap(),
        );
        assert!(lo <= ber && ber <= hi, "{p}");
    }
    assert_eq!(report["teacher"]["history"].as_array().unwrap().len(), 2);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for run in runs {
        let trains = run["method"] != "ptq";
        assert_eq!(
            run["history"].as_array().unwrap().len(),
            if trains { 2 } else { 0 },
            "{}",
            run["label"]
        );
        assert_eq!(
            run["validation_accuracy"].as_array().unwrap().len(),
            run["history"].as_array().unwrap().len()
        );
    }
    let summary = report["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 2);
    assert!(summary.iter().all(|s| s["kaq_within_5_percent"].is_null()));

    let md = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("| SNR [dB] | fp32 | ptq@4 | qat-mse@4 | ptq@8 | qat-mse@8 |"),
        "{md}"
    );
    for snr in ["| 0 |", "| 5 |", "| 10 |"] {
        assert!(md.contains(snr), "no row {snr} in {md}");
    }
    assert!(md.contains("4-bit KAQ within 5 % of f32: not run"), "{md}");

    assert_legend(
        &out.join("ber-4bit.svg"),
        &["fp32", "ptq@4", "qat-mse@4"],
        &["ptq@8", "qat-mse@8"],
    );
    assert_legend(
        &out.join("ber-8bit.svg"),
        &["fp32", "ptq@8", "qat-mse@8"],
        &["ptq@4"],
    );
    // PTQ does not train, so it has no accuracy curve.
    assert_legend(
        &out.join("accuracy.svg"),
        &["fp32", "qat-mse@4", "qat-mse@8"],
        &["ptq@4"],
    );
    for layer in ["hist-layer1.svg", "hist-layer2.svg"] {
        assert_legend(
            &out.join(layer),
            &["fp32", "ptq@4", "qat-mse@4"],
            &["ptq@8"],
        );
    }

    // Resuming: every model is reused, foreign files are left alone, the report is the same.
    fs::write(out.join("notes.txt"), "mine").unwrap();
    let first = fs::read(out.join("report.json")).unwrap();
    tiny(dir.path(), "report")
        .arg("--force")
        .assert()
        .success()
        .stdout(predicate::str::contains("fp32: reusing"))
        .stdout(predicate::str::contains("qat-mse@8: reusing"))
        .stdout(predicate::str::contains("epoch 1/2").not());
    assert_eq!(fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
    let second: Value =
        serde_json::from_slice(&fs::read(out.join("report.json")).unwrap()).unwrap();
    let first: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(first["points"], second["points"]);
    assert_eq!(second["runs"][1]["reused"], true);

    // The saved teacher drives a fresh comparison to the same f32 BER.
    let teacher = out.join("models").join("fp32.json");
    kaq(dir.path())
        .args(TINY)
        .args(["--teacher", teacher.to_str().unwrap(), "--out", "again"])
        .assert()
        .success();
    let again = read_json(&dir.path().join("again").join("report.json"));
    assert_eq!(again["points"], second["points"]);
}

#[test]
fn refuses_a_non_empty_out_dir_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("notes.txt"), "mine").unwrap();
    tiny(dir.path(), "report")
        .assert()
        .failure()
        .code(1)
        .stderr(predicate::str::contains("not empty").and(predicate::str::contains("--force")));
    assert_eq!(listing(&out), ["notes.txt"]);
    assert_eq!(fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
}

#[test]
fn bad_flags_exit_2_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["--bits", "1"], "--bits"),
        (&["--bits", "4,x"], "--bits"),
        (&["--methods", "fp32,foo"], "--methods"),
        (&["--arch", "lstm"], "--arch"),
        (&["--epsilon", "-1"], "--epsilon"),
        (&["--teacher", "t.json", "--nt", "4"], "--teacher"),
    ];
    for (extra, flag) in cases {
        kaq(dir.path())
            .args(extra)
            .args(["--out", "report"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(flag));
    }
    // A config error found after parsing (batch larger than the training set) also exits 2.
    kaq(dir.path())
        .args(["--samples", "10", "--batch", "20", "--out", "report"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--batch"));
    assert!(listing(dir.path()).is_empty());
}

/// The cg family: the f32 teacher, PTQ, QAT-MSE and KAQ at every width in one BER run (4×4
/// QPSK, K = 2, two inner steps); LSQ left out with the reason in the report; the KAQ students
/// are version-3 IRs (per-SNR-bin shifts) and the others version 2.
#[test]
fn compares_the_cg_family() {
    let dir = tempfile::tempdir().unwrap();
    // TINY without its `--methods`: the cg default list applies.
    let flags: Vec<&str> = TINY
        .iter()
        .copied()
        .filter(|f| *f != "--methods" && *f != "fp32,ptq,qat-mse")
        .collect();
    kaq(dir.path())
        .args(["--arch", "cg", "--layers", "2", "--inner", "2"])
        .args(["--nt", "4", "--nr", "4", "--mod", "qpsk"])
        .args(flags)
        .args(["--out", "report"])
        .assert()
        .success()
        .stdout(predicate::str::contains("qat-mse@4 epoch 2/2"));
    let out = dir.path().join("report");
    assert_eq!(
        listing(&out),
        [
            "accuracy.svg",
            "ber-4bit.svg",
            "ber-8bit.svg",
            "models",
            "report.json",
            "report.md"
        ]
    );
    assert_eq!(
        listing(&out.join("models")),
        [
            "fp32.json",
            "kaq-4bit.ir.json",
            "kaq-8bit.ir.json",
            "ptq-4bit.ir.json",
            "ptq-8bit.ir.json",
            "qat-mse-4bit.ir.json",
            "qat-mse-8bit.ir.json"
        ]
    );
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.starts_with("# kaq compare: cg"), "{md}");
    assert!(
        md.contains("| SNR [dB] | fp32 | ptq@4 | qat-mse@4 | kaq@4 | ptq@8 | qat-mse@8 | kaq@8 |"),
        "{md}"
    );
    assert!(
        md.contains("not run: lsq — not available for the cg family"),
        "{md}"
    );
    assert!(!md.contains("lsq@"), "{md}");
    let report = read_json(&out.join("report.json"));
    let detectors: Vec<&str> = report["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(
        detectors,
        [
            "fp32",
            "ptq@4",
            "qat-mse@4",
            "kaq@4",
            "ptq@8",
            "qat-mse@8",
            "kaq@8"
        ]
    );
    let points = report["points"].as_array().unwrap();
    assert_eq!(points.len(), detectors.len() * SNRS.len());
    for (i, p) in points.iter().enumerate() {
        assert_eq!(p["detector"], detectors[i / SNRS.len()]);
        assert_eq!(p["snr_db"].as_f64().unwrap(), SNRS[i % SNRS.len()]);
        assert!(p["bits"].as_u64().unwrap() > 0, "{p}");
    }
    assert_eq!(report["teacher"]["config"]["net"]["family"], "cg");
    assert_eq!(report["teacher"]["config"]["net"]["inner"], 2);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6);
    for run in runs {
        let trains = run["method"] == "qat-mse" || run["method"] == "kaq";
        assert_eq!(
            run["history"].as_array().unwrap().len(),
            if trains { 2 } else { 0 },
            "{}",
            run["label"]
        );
        assert_eq!(
            run["config"]["train"].is_null(),
            !trains,
            "{}",
            run["label"]
        );
        // Every student's IR is a document `kaq ber --ir` reads: KAQ's with per-bin shifts
        // (version 3), the others version 2.
        let ir = out.join(run["model"].as_str().unwrap());
        let kaq = run["method"] == "kaq";
        let doc = read_json(&ir);
        assert_eq!(doc["version"], if kaq { 3 } else { 2 }, "{}", ir.display());
        assert_eq!(
            doc["layers"][0]["bin_shift"].is_object(),
            kaq,
            "{}",
            ir.display()
        );
        assert_eq!(
            run["config"]["ptq"]["bin_adaptive"], kaq,
            "{}",
            run["label"]
        );
    }
    assert_legend(
        &out.join("ber-4bit.svg"),
        &["fp32", "ptq@4", "qat-mse@4", "kaq@4"],
        &["ptq@8"],
    );
}

/// The oamp family: the f32 teacher, PTQ, QAT-MSE and KAQ (MMD loss) at every width in one BER
/// run (4×4 QPSK, K = 2); LSQ left out with the reason; every student an IR version 4.
#[test]
fn compares_the_oamp_family() {
    let dir = tempfile::tempdir().unwrap();
    let flags: Vec<&str> = TINY
        .iter()
        .copied()
        .filter(|f| *f != "--methods" && *f != "fp32,ptq,qat-mse")
        .collect();
    kaq(dir.path())
        .args(["--arch", "oamp", "--layers", "2"])
        .args(["--nt", "4", "--nr", "4", "--mod", "qpsk"])
        .args(flags)
        .args(["--out", "report"])
        .assert()
        .success()
        .stdout(predicate::str::contains("kaq@4 epoch 2/2"));
    let out = dir.path().join("report");
    assert_eq!(
        listing(&out.join("models")),
        [
            "fp32.json",
            "kaq-4bit.ir.json",
            "kaq-8bit.ir.json",
            "ptq-4bit.ir.json",
            "ptq-8bit.ir.json",
            "qat-mse-4bit.ir.json",
            "qat-mse-8bit.ir.json"
        ]
    );
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.starts_with("# kaq compare: oamp"), "{md}");
    assert!(
        md.contains("| SNR [dB] | fp32 | ptq@4 | qat-mse@4 | kaq@4 | ptq@8 | qat-mse@8 | kaq@8 |"),
        "{md}"
    );
    assert!(
        md.contains("not run: lsq — not available for the oamp family"),
        "{md}"
    );
    let report = read_json(&out.join("report.json"));
    assert_eq!(report["teacher"]["config"]["net"]["family"], "oamp");
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6);
    for run in runs {
        let trains = run["method"] == "qat-mse" || run["method"] == "kaq";
        assert_eq!(
            run["history"].as_array().unwrap().len(),
            if trains { 2 } else { 0 },
            "{}",
            run["label"]
        );
        let ir = out.join(run["model"].as_str().unwrap());
        let doc = read_json(&ir);
        assert_eq!(doc["version"], 4, "{}", ir.display());
        assert_eq!(doc["family"], "oamp", "{}", ir.display());
        assert_eq!(
            run["measured_as"],
            "integer golden model of the IR v4 document"
        );
    }
    // The trained students' constants differ from the PTQ student's at the same formats.
    let ptq = read_json(&out.join("models/ptq-8bit.ir.json"));
    let qat = read_json(&out.join("models/qat-mse-8bit.ir.json"));
    assert_eq!(ptq["block"], qat["block"]);
    assert_ne!(ptq["layers"], qat["layers"]);
}

/// Methods and families kaq compare cannot quantize exit 2 naming them, before --out exists.
#[test]
fn refuses_methods_and_families_without_quantized_forms() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (
            &["--arch", "cg", "--methods", "kaq", "--kernel", "learnable"],
            "invalid value for --kernel: learnable bandwidths are not implemented",
        ),
        (
            &["--arch", "cg", "--methods", "fp32,kaq,lsq"],
            "invalid value for --methods: lsq is not available for the cg family",
        ),
        (
            &["--arch", "cg", "--methods", "lsq"],
            "invalid value for --methods: lsq is not available for the cg family",
        ),
        (
            &["--arch", "ep"],
            "invalid value for --arch: ep: the ep family has no quantized forms yet",
        ),
        (
            &["--arch", "oamp", "--methods", "ptq,lsq"],
            "invalid value for --methods: lsq is not available for the oamp family",
        ),
        (&["--arch", "pgd", "--inner", "2"], "--inner"),
    ];
    for (extra, message) in cases {
        kaq(dir.path())
            .args(extra)
            .args(["--out", "report"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(message));
    }
    assert!(listing(dir.path()).is_empty());
}
