//! `kaq flow` of the Gram-domain cg net (`net.arch` cg) on a tiny link: every artefact, the
//! summary (verdict beside MMSE and the paper's PGD-Net, the v2 hardware figures), resumption,
//! the reproduce commands run as printed (byte for byte), and the cg config errors.

use std::fs;
use std::path::{Path, PathBuf};

#[path = "common/reproduce.rs"]
mod reproduce;
use reproduce::{assert_commands_reproduce, reproduce_commands};

use predicates::prelude::*;

const TINY_CG: &str = r#"{
  "link": {"nt": 2, "nr": 2, "modulation": "qpsk", "block": 3},
  "net": {"arch": "cg", "layers": 2, "inner": 1},
  "train": {"samples": 300, "val_samples": 60, "epochs": 1, "batch": 50, "lr": 0.01,
            "snr_db": [5, 10]},
  "quant": {"epochs": 1},
  "rtl": {"synth": "none"},
  "cosim": {"frames": 0},
  "ber": {"snr_db": [0, 10], "min_errors": 50, "max_frames": 600, "references": ["mmse"]}
}"#;

fn flow(dir: &Path, config: &str) -> assert_cmd::assert::Assert {
    fs::write(dir.join("kaq.json"), config).unwrap();
    assert_cmd::Command::cargo_bin("kaq")
        .unwrap()
        .current_dir(dir)
        .args([
            "flow",
            "--config",
            "kaq.json",
            "--out",
            "out",
            "--threads",
            "1",
        ])
        .assert()
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}

#[test]
fn cg_flow_writes_every_artefact_resumes_and_reproduces() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // With Verilator, 12 vectors in 4 channel blocks through the RTL (a build of a few
    // seconds); without it the stage is a note.
    let verilator = which("verilator").is_some();
    let config = if verilator {
        TINY_CG.replace(r#""frames": 0"#, r#""frames": 12"#)
    } else {
        TINY_CG.to_string()
    };
    let config = config.as_str();
    flow(d, config)
        .success()
        .stdout(predicate::str::contains("lower: skipped"))
        .stdout(predicate::str::contains("quant: kaq-8b"));
    let out = d.join("out");
    for f in [
        "models/f32.json",
        "models/pgd.json",
        "ir.json",
        "rtl/kaq_top.v",
        "rtl/README.md",
        "report.json",
        "ber.json",
        "ber.svg",
        "summary.md",
        "flow.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let ir: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("ir.json")).unwrap()).unwrap();
    assert_eq!(
        ir["version"], 3,
        "the cg net's KAQ student (per-SNR-bin steps) is an IR version 3"
    );
    assert_eq!(ir["name"], "cg-k2-l1-kaq-8b");
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let c = &report["cycles"];
    assert_eq!(c["block"], 3);
    // 1 + M·N + P_blk + T·(P_vec + 2) (docs/rtl.md, IR v2).
    assert_eq!(
        c["block_cycles"].as_u64().unwrap(),
        1 + ir["m"].as_u64().unwrap() * ir["n"].as_u64().unwrap()
            + c["p_blk"].as_u64().unwrap()
            + 3 * (c["p_vec"].as_u64().unwrap() + 2)
    );
    let flow_json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("flow.json")).unwrap()).unwrap();
    assert_eq!(flow_json["config"]["net"]["inner"], 1);
    assert_eq!(
        flow_json["config"]["rtl"]["lanes"], 8,
        "the cg default lanes"
    );

    // Both energy models of the design at T (docs/energy.md), quoted by the summary.
    let e = &report["energy"]["design"];
    assert_eq!(e["block"], 3);
    let energy = format!(
        "design **{:.3} / {:.3}**",
        e["paper"]["pj_per_bit"].as_f64().unwrap(),
        e["horowitz"]["pj_per_bit"].as_f64().unwrap()
    );

    let summary = fs::read_to_string(out.join("summary.md")).unwrap();
    let int = "cg-k2-l1-kaq-8b-int";
    for needle in [
        "2×2 QPSK link",
        "cg-k2-l1 (the Gram-domain unfolded CG net: K = 2 layers × L = 1 inner steps)",
        "channel blocks of T = 3 vectors",
        // The BER table holds the design, its teacher, MMSE and the paper's PGD-Net.
        &format!("| {int} |"),
        "| cg-k2-l1 |",
        "| pgd-soft-k5 |",
        "| mmse |",
        "cycles per channel block",
        &format!("{} cycles", c["block_cycles"]),
        &energy,
        "mmse (16-bit)",
        "kaq train --quant kaq --teacher out/models/f32.json --bits 8",
        "--epsilon 10 --kernel median",
        "kaq ber --nt 2 --nr 2 --mod qpsk --detector mmse",
    ] {
        assert!(
            summary.contains(needle),
            "summary lacks {needle:?}:\n{summary}"
        );
    }
    // The verdict compares the integer model with MMSE and gives the SNR at 1e-2 of the
    // design, MMSE and the paper's PGD-Net.
    let verdict = summary.lines().nth(4).unwrap();
    assert!(
        verdict.starts_with(&format!("**{int} ")) || verdict.starts_with(&format!("{int} and")),
        "{verdict}"
    );
    assert!(verdict.contains("mmse"), "{verdict}");
    assert!(
        verdict.contains("SNR at BER 1e-2: ") && verdict.contains("; pgd-soft-k5 "),
        "{verdict}"
    );

    if verilator {
        assert!(
            summary.contains("**Bit-exact**: 12 vectors in 4 channel blocks of T = 3")
                && summary.contains("Cycles measured equal to the analytic model"),
            "{summary}"
        );
        // Every stage's taps were compared, and there were some to compare.
        let taps = summary
            .split("compared with the golden model's taps: ")
            .nth(1)
            .unwrap_or_else(|| panic!("no tap comparison in the summary:\n{summary}"));
        assert!(taps.starts_with("0 mismatches"), "{summary}");
        let compared: u64 = summary
            .split(" tap values)")
            .next()
            .and_then(|s| s.rsplit('(').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no tap count in the summary:\n{summary}"));
        assert!(compared > 0, "{summary}");
        assert!(
            summary
                .contains("kaq cosim --ir out/ir.json --lanes 8 --frames 12 --block 3 --snr 0,10")
        );
    }
    // The paper's PGD-Net trains by the paper's protocol on a channel per frame.
    assert!(
        summary.contains(
            "kaq train --nt 2 --nr 2 --mod qpsk --arch pgd --prox soft --layers 5 --init zero \
             --samples 50000 --val-samples 5000 --batch 128 --epochs 50"
        ),
        "{summary}"
    );

    // Unchanged: every stage is reused.
    let again = flow(d, config).success();
    let stdout = String::from_utf8_lossy(&again.get_output().stdout).to_string();
    let mut reused = vec!["f32", "paper", "quant", "codegen", "ber"];
    if verilator {
        reused.push("cosim");
    }
    for stage in reused {
        assert!(
            stdout.contains(&format!("{stage}: up to date, reused")),
            "{stage} not reused:\n{stdout}"
        );
    }

    // The reproduce commands, run as printed from another directory with the built kaq
    // first on PATH, write the flow's model files, IR and RTL byte for byte.
    let commands = reproduce_commands(&summary);
    assert_commands_reproduce(
        &commands,
        &out,
        &[
            "models/f32.json",
            "models/pgd.json",
            "ir.json",
            "rtl/kaq_top.v",
        ],
    );

    // A change of the quantization reruns from quant on and keeps both f32 nets.
    let ptq = config.replace(
        r#""quant": {"epochs": 1}"#,
        r#""quant": {"method": "ptq", "bits": 6}"#,
    );
    flow(d, &ptq)
        .success()
        .stdout(predicate::str::contains("f32: up to date, reused"))
        .stdout(predicate::str::contains("paper: up to date, reused"))
        .stdout(predicate::str::contains("quant: ptq-6b"));
    let summary = fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains("kaq lower --model out/models/f32.json --ptq-bits 6 --out out/ir.json"),
        "{summary}"
    );

    // QAT-MSE (fixed formats, an IR version 2) runs through the same stages; its student is
    // reproduced byte for byte by the printed `kaq train --quant qat-mse` command.
    let qat = config.replace(
        r#""quant": {"epochs": 1}"#,
        r#""quant": {"method": "qat-mse", "epochs": 1}"#,
    );
    flow(d, &qat)
        .success()
        .stdout(predicate::str::contains("f32: up to date, reused"))
        .stdout(predicate::str::contains("quant: qat-mse-8b"));
    let ir: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("ir.json")).unwrap()).unwrap();
    assert_eq!(ir["version"], 2, "a QAT-MSE cg student is an IR version 2");
    let summary = fs::read_to_string(out.join("summary.md")).unwrap();
    let commands = reproduce_commands(&summary);
    assert!(
        commands
            .iter()
            .any(|c| c.contains("kaq train --quant qat-mse --teacher out/models/f32.json")),
        "{summary}"
    );
    assert_commands_reproduce(&commands, &out, &["ir.json", "rtl/kaq_top.v"]);
}

#[test]
fn bad_cg_configs_exit_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (config, field) in [
        (r#"{"net": {"arch": "cg", "layers": 0}}"#, "net.layers"),
        (r#"{"net": {"arch": "cg", "inner": 0}}"#, "net.inner"),
        (r#"{"net": {"arch": "cg", "prox": "box"}}"#, "net.prox"),
        (
            r#"{"net": {"arch": "cg", "momentum": true}}"#,
            "net.momentum",
        ),
        (r#"{"net": {"arch": "cg", "depth": 3}}"#, "net.depth"),
        (r#"{"net": {"arch": "ep"}}"#, "net.arch"),
        (r#"{"net": {"arch": "pgd", "inner": 2}}"#, "net.inner"),
        // The default net is cg, so `inner` alone is not refused; another net's is.
        (r#"{"net": {"arch": "admm", "inner": 2}}"#, "net.inner"),
        (
            r#"{"net": {"arch": "cg"}, "quant": {"method": "lsq"}}"#,
            "quant.method",
        ),
        (
            r#"{"net": {"arch": "cg"}, "quant": {"method": "kaq", "kernel": "learnable"}}"#,
            "quant.kernel",
        ),
        (
            r#"{"net": {"arch": "cg"}, "quant": {"method": "kaq", "epsilon": -1}}"#,
            "quant.epsilon",
        ),
        (
            r#"{"net": {"arch": "cg"}, "quant": {"bits": 13}}"#,
            "quant.bits",
        ),
        (
            r#"{"net": {"arch": "cg"}, "quant": {"mult_bits": 16}}"#,
            "quant.mult_bits",
        ),
        (
            r#"{"net": {"arch": "cg"}, "rtl": {"lanes": 33}}"#,
            "rtl.lanes",
        ),
        (
            r#"{"net": {"arch": "cg"}, "rtl": {"clock_mhz": 100}}"#,
            "rtl.clock_mhz",
        ),
        (
            r#"{"net": {"arch": "cg"}, "link": {"block": 0}}"#,
            "link.block",
        ),
        (
            r#"{"net": {"arch": "cg"}, "link": {"block": 70000}}"#,
            "link.block",
        ),
    ] {
        flow(d, config)
            .code(2)
            .stderr(predicate::str::contains(format!("config field {field}")));
    }
    assert!(
        !d.join("out").exists(),
        "a refused config must not create --out"
    );
}

/// `kaq train --quant` of a cg teacher: ptq writes what `kaq lower --ptq-bits` writes, byte for
/// byte; methods, widths and flags that do not exist for cg exit 2 naming the flag.
#[test]
fn kaq_train_quantizes_a_cg_teacher_to_ir_v2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let kaq = |args: &[&str]| {
        assert_cmd::Command::cargo_bin("kaq")
            .unwrap()
            .current_dir(d)
            .args(args)
            .assert()
    };
    kaq(&[
        "train",
        "--arch",
        "cg",
        "--layers",
        "1",
        "--inner",
        "1",
        "--nt",
        "2",
        "--nr",
        "2",
        "--mod",
        "qpsk",
        "--samples",
        "100",
        "--val-samples",
        "20",
        "--batch",
        "50",
        "--epochs",
        "1",
        "--val-frames",
        "10",
        "--threads",
        "1",
        "--out",
        "cg.json",
    ])
    .success();
    kaq(&[
        "train",
        "--quant",
        "ptq",
        "--teacher",
        "cg.json",
        "--bits",
        "6",
        "--out",
        "a.json",
    ])
    .success()
    .stdout(predicate::str::contains(
        "IR v2 cg-k1-l1-ptq-6b written to a.json",
    ));
    kaq(&[
        "lower",
        "--model",
        "cg.json",
        "--ptq-bits",
        "6",
        "--out",
        "b.json",
    ])
    .success();
    assert_eq!(
        fs::read(d.join("a.json")).unwrap(),
        fs::read(d.join("b.json")).unwrap()
    );
    for (extra, flag) in [
        (&["--quant", "lsq"][..], "--quant"),
        (&["--quant", "ptq", "--bits", "13"][..], "--bits"),
        (&["--quant", "ptq", "--bits", "8,6"][..], "--bits"),
        (&["--quant", "qat-mse", "--h-bits", "8"][..], "--h-bits"),
    ] {
        kaq(&[
            &["train", "--teacher", "cg.json", "--out", "c.json"][..],
            extra,
        ]
        .concat())
        .code(2)
        .stderr(predicate::str::contains(flag));
    }
    assert!(!d.join("c.json").exists());
}
