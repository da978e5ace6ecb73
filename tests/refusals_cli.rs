//! The smaller refusals (docs/outputs.md): outputs that need `--force` or their own path,
//! strict model files (nested unknown fields, a Rayleigh channel with a ρ), options that need
//! `--quant`, SNR values out of range in every command, exit status 2 for inputs that do not
//! fit the run, and messages naming the right thing. Each case asserts the status, the flag or
//! field named, and that no file was written or changed.

use std::path::Path;

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin_cmd;
use predicates::prelude::*;
use serde_json::Value;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pgd-qpsk-2x2");

/// A fast `kaq ber` on the example's link.
const BER: [&str; 12] = [
    "ber",
    "--nt",
    "2",
    "--nr",
    "2",
    "--mod",
    "qpsk",
    "--snr",
    "0",
    "--max-frames",
    "64",
    "--detector=zf",
];

fn kaq() -> Command {
    cargo_bin_cmd!("kaq")
}

/// Runs `kaq args`, asserts exit status 2 with `needles` on stderr and no panic.
fn refused(args: &[String], needles: &[&str]) {
    let out = kaq().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = format!("kaq {}: {stderr}", args.join(" "));
    assert_eq!(out.status.code(), Some(2), "{what}");
    assert!(!stderr.contains("panicked"), "{what}");
    for n in needles {
        assert!(stderr.contains(n), "missing {n:?}: {what}");
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn with(base: &[&str], more: &[&str]) -> Vec<String> {
    strings(&[base, more].concat())
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn ber_and_cosim_outputs_need_force_to_replace_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("ber.json");
    let svg = dir.path().join("ber.svg");
    let mut cases = 0;
    for (flag, path) in [("--json", &json), ("--plot", &svg)] {
        std::fs::write(path, b"keep me").unwrap();
        refused(
            &with(&BER, &[flag, &p(path)]),
            &[flag, &p(path), "exists", "--force"],
        );
        assert_eq!(std::fs::read(path).unwrap(), b"keep me");
        kaq()
            .args(with(&BER, &[flag, &p(path), "--force"]))
            .assert()
            .success();
        assert_ne!(std::fs::read(path).unwrap(), b"keep me");
        cases += 1;
    }
    // cosim checks its outputs before building anything.
    let cj = dir.path().join("cosim.json");
    let vcd = dir.path().join("cosim.vcd");
    let ir = format!("{EXAMPLE}/ir.json");
    for (flag, path) in [("--json", &cj), ("--trace", &vcd)] {
        std::fs::write(path, b"keep me").unwrap();
        refused(
            &strings(&["cosim", "--ir", &ir, "--frames", "1", flag, &p(path)]),
            &[flag, "exists", "--force"],
        );
        assert_eq!(std::fs::read(path).unwrap(), b"keep me");
        cases += 1;
    }
    eprintln!("class 7 (--force): {cases} cases");
}

#[test]
fn two_outputs_given_the_same_file_are_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.out");
    let spelled = dir.path().join(".").join("a.out");
    let link = dir.path().join("link.out");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    std::fs::write(&a, b"").unwrap();
    let ir = format!("{EXAMPLE}/ir.json");
    let mut cases = 0;
    for second in [&a, &spelled, &link] {
        refused(
            &with(&BER, &["--force", "--json", &p(&a), "--plot", &p(second)]),
            &["--plot", "also the file of --json"],
        );
        refused(
            &strings(&[
                "cosim",
                "--ir",
                &ir,
                "--frames",
                "1",
                "--force",
                "--json",
                &p(&a),
                "--trace",
                &p(second),
            ]),
            &["--trace", "also the file of --json"],
        );
        cases += 2;
    }
    assert_eq!(std::fs::read(&a).unwrap(), b"");
    // A device file is written straight: two outputs may share /dev/null.
    kaq()
        .args(with(&BER, &["--json", "/dev/null", "--plot", "/dev/null"]))
        .assert()
        .success();
    eprintln!("class 7 (same path): {cases} cases");
}

/// Every object in `doc`, by its path of keys and indices (the first two items of an array).
fn object_paths(v: &Value, at: Vec<Value>, out: &mut Vec<Vec<Value>>) {
    match v {
        Value::Object(m) => {
            out.push(at.clone());
            for (k, x) in m {
                let mut next = at.clone();
                next.push(Value::String(k.clone()));
                object_paths(x, next, out);
            }
        }
        Value::Array(items) => {
            for (i, x) in items.iter().take(2).enumerate() {
                let mut next = at.clone();
                next.push(Value::from(i));
                object_paths(x, next, out);
            }
        }
        _ => {}
    }
}

fn at_mut<'a>(v: &'a mut Value, path: &[Value]) -> &'a mut Value {
    path.iter().fold(v, |v, k| match k {
        Value::String(s) => &mut v[s.as_str()],
        k => &mut v[k.as_u64().unwrap() as usize],
    })
}

#[test]
fn an_unknown_field_in_any_object_of_a_model_or_ir_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases = 0;
    for (file, flag) in [
        ("teacher.json", "--model"),
        ("model.json", "--model"),
        ("ir.json", "--ir"),
    ] {
        let text = std::fs::read_to_string(format!("{EXAMPLE}/{file}")).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let mut paths = Vec::new();
        object_paths(&doc, Vec::new(), &mut paths);
        assert!(paths.len() > 10, "{file}: {}", paths.len());
        for path in paths {
            let mut bad = doc.clone();
            at_mut(&mut bad, &path)
                .as_object_mut()
                .unwrap()
                .insert("zz_unknown".into(), Value::from(1));
            let input = dir.path().join(file);
            std::fs::write(&input, serde_json::to_string(&bad).unwrap()).unwrap();
            refused(&with(&BER, &[flag, &p(&input)]), &[flag, "zz_unknown"]);
            cases += 1;
        }
        // The untouched file is accepted: the refusals above are the injected field's.
        let input = dir.path().join(file);
        std::fs::write(&input, &text).unwrap();
        kaq()
            .args(with(&BER, &[flag, &p(&input)]))
            .assert()
            .success();
    }
    eprintln!("class 7 (nested unknown fields): {cases} cases");
}

#[test]
fn a_channel_is_read_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(format!("{EXAMPLE}/teacher.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["net"]["link"]["channel"]["kind"], "rayleigh");
    let cases: [(Value, &str); 5] = [
        (
            serde_json::json!({"kind": "rayleigh", "rho_tx": 0.5}),
            "rayleigh channel has no rho_tx",
        ),
        (
            serde_json::json!({"kind": "rayleigh", "rho_rx": 0.0}),
            "rayleigh channel has no rho_tx or rho_rx",
        ),
        (
            serde_json::json!({"kind": "kronecker", "rho_tx": 0.5}),
            "needs both rho_tx and rho_rx",
        ),
        (
            serde_json::json!({"kind": "rician", "k": 3}),
            "unknown field",
        ),
        (
            serde_json::json!({"kind": "rician"}),
            "unknown channel kind `rician`",
        ),
    ];
    for (channel, needle) in &cases {
        let mut bad = doc.clone();
        bad["net"]["link"]["channel"] = channel.clone();
        let input = dir.path().join("m.json");
        std::fs::write(&input, serde_json::to_string(&bad).unwrap()).unwrap();
        refused(&with(&BER, &["--model", &p(&input)]), &["--model", needle]);
    }
    eprintln!("class 7 (channels): {} cases", cases.len());
}

#[test]
fn quantization_options_without_quant_are_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = p(&dir.path().join("m.json"));
    for opt in [["--bits", "4"], ["--epsilon", "1"], ["--kernel", "multi"]] {
        refused(
            &strings(&["train", "--out", &out, opt[0], opt[1]]),
            &[opt[0], "--quant"],
        );
    }
    assert!(!dir.path().join("m.json").exists());
    // --quant's own errors name the quantization method, not a detector.
    let out = kaq()
        .args(["train", "--out", "x.json", "--quant", "fp4"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown quantization method `fp4`"),
        "{stderr}"
    );
    assert!(!stderr.contains("detector"), "{stderr}");
    eprintln!("class 7 (--quant options and message): 4 cases");
}

#[test]
fn extreme_snr_values_are_a_usage_error_in_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let o = |n: &str| p(&dir.path().join(n));
    let ir = format!("{EXAMPLE}/ir.json");
    let commands: Vec<(&str, Vec<String>)> = vec![
        (
            "--snr",
            strings(&["ber", "--nt", "2", "--nr", "2", "--mod", "qpsk"]),
        ),
        ("--snr", strings(&["cosim", "--ir", &ir, "--frames", "1"])),
        ("--snr", strings(&["train", "--out", &o("t.json")])),
        ("--val-snr", strings(&["train", "--out", &o("t.json")])),
        ("--snr", strings(&["compare", "--out", &o("c")])),
        ("--train-snr", strings(&["compare", "--out", &o("c")])),
        ("--val-snr", strings(&["compare", "--out", &o("c")])),
    ];
    let values = [
        "nan",
        "inf",
        "-inf",
        "1e308",
        "-1e308",
        "-101",
        "100.5",
        "0,1e300",
        "-200:0:50",
    ];
    let mut cases = 0;
    for (flag, base) in &commands {
        for v in values {
            // Range syntax belongs to the evaluation --snr of ber, cosim and compare only.
            if v.contains(':') && (*flag != "--snr" || base[0] == "train") {
                continue;
            }
            let mut args = base.clone();
            args.push(format!("{flag}={v}"));
            refused(&args, &[flag, "±100 dB"]);
            cases += 1;
        }
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    eprintln!("class 7 (extreme SNR): {cases} cases");
}

#[test]
fn inputs_that_do_not_fit_the_run_exit_2() {
    let model = format!("{EXAMPLE}/teacher.json");
    let qmodel = format!("{EXAMPLE}/model.json");
    let ir = format!("{EXAMPLE}/ir.json");
    let base = |nt: &str, nr: &str| {
        strings(&[
            "ber",
            "--nt",
            nt,
            "--nr",
            nr,
            "--mod",
            "qpsk",
            "--snr",
            "0",
            "--max-frames",
            "64",
        ])
    };
    let cases: Vec<(Vec<String>, &[&str])> = vec![
        (
            [base("4", "2"), strings(&["--detector", "zf"])].concat(),
            &["--detector", "zf"],
        ),
        (
            [base("16", "16"), strings(&["--detector", "zf,ml"])].concat(),
            &["--detector", "ml"],
        ),
        (
            [base("4", "4"), strings(&["--model", &model])].concat(),
            &["--model", "trained for 2x2"],
        ),
        (
            [base("4", "4"), strings(&["--model", &qmodel])].concat(),
            &["--model", "trained for 2x2"],
        ),
        (
            [base("4", "4"), strings(&["--ir", &ir])].concat(),
            &["--ir", "the IR is for 2x2"],
        ),
    ];
    for (args, needles) in &cases {
        refused(args, needles);
    }
    eprintln!("class 7 (exit 2 for misfits): {} cases", cases.len());
}

#[test]
fn messages_name_the_right_thing() {
    let dir = tempfile::tempdir().unwrap();
    let array = dir.path().join("array.json");
    std::fs::write(&array, "[]").unwrap();
    let ir = format!("{EXAMPLE}/ir.json");
    // An IR that is a JSON array: the top level must be an object, not "expected struct".
    for args in [
        strings(&[
            "codegen",
            "--ir",
            &p(&array),
            "--out",
            &p(&dir.path().join("rtl")),
        ]),
        with(&BER, &["--ir", &p(&array)]),
    ] {
        let out = kaq().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains("top level") && stderr.contains("must be a JSON object, got an array"),
            "{stderr}"
        );
        assert!(!stderr.contains("struct"), "{stderr}");
    }
    // A --top clashing with a primitive says so.
    kaq()
        .args(["codegen", "--ir", &ir, "--top", "kaq_requant", "--out"])
        .arg(dir.path().join("rtl"))
        .assert()
        .code(2)
        .stderr(contains(
            "clashes with the Verilog primitive module kaq_requant",
        ));
    kaq()
        .args(["codegen", "--ir", &ir, "--top", "always_ff", "--out"])
        .arg(dir.path().join("rtl"))
        .assert()
        .code(2)
        .stderr(contains("reserved Verilog keyword"));
    assert!(!dir.path().join("rtl").exists());
    eprintln!("class 7 (messages): 4 cases");
}

fn contains(s: &'static str) -> impl Predicate<str> {
    predicate::str::contains(s)
}
