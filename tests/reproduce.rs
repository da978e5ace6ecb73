//! The "Reproduce each stage" commands of a flow's summary.md, run as printed (through `sh`,
//! from another directory, with the built `kaq` first on PATH), write the same artefacts as
//! the flow, byte for byte.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TINY: &str = r#"{
  "link": {"nt": 2, "nr": 2, "modulation": "qpsk"},
  "net": {"layers": 2},
  "train": {"samples": 600, "val_samples": 200, "epochs": 2, "batch": 50, "lr": 0.01},
  "quant": {"epochs": 1, "bits": 6},
  "rtl": {"lanes": 2, "synth": "none"},
  "cosim": {"frames": 0},
  "ber": {"snr_db": [0, 10], "min_errors": 100, "max_frames": 4000, "references": ["mmse"]}
}"#;

fn kaq_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("kaq")
}

/// The lines of the sh block under "## Reproduce each stage".
fn reproduce_commands(summary: &str) -> Vec<String> {
    let section = summary
        .split("## Reproduce each stage")
        .nth(1)
        .expect("summary.md has a Reproduce each stage section");
    let block = section
        .split("```sh")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the section holds an sh block");
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Every file under `root`, as paths relative to it.
fn files(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out
}

#[test]
fn printed_commands_reproduce_the_flow_artefacts_byte_for_byte() {
    let flow_dir = tempfile::tempdir().unwrap();
    fs::write(flow_dir.path().join("kaq.json"), TINY).unwrap();
    let status = Command::new(kaq_bin())
        .current_dir(flow_dir.path())
        .args(["flow", "--config", "kaq.json", "--out", "out"])
        .status()
        .unwrap();
    assert!(status.success(), "kaq flow failed");
    let summary = fs::read_to_string(flow_dir.path().join("out/summary.md")).unwrap();
    let commands = reproduce_commands(&summary);
    assert!(commands.len() >= 4, "too few commands: {commands:?}");

    let bin_dir = kaq_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run_dir = tempfile::tempdir().unwrap();
    for c in &commands {
        assert!(
            c.starts_with("kaq ") || c.starts_with("mkdir -p "),
            "not a kaq command: {c}"
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(c)
            .current_dir(run_dir.path())
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{c}` failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let written = files(&run_dir.path().join("out"));
    for must in [
        "models/f32.json",
        "models/quant.json",
        "ir.json",
        "rtl/kaq_top.v",
    ] {
        assert!(
            written.contains(Path::new(must)),
            "the commands did not write {must}: {written:?}"
        );
    }
    let differing: Vec<&PathBuf> = written
        .iter()
        .filter(|f| {
            fs::read(run_dir.path().join("out").join(f)).ok()
                != fs::read(flow_dir.path().join("out").join(f)).ok()
        })
        .collect();
    assert!(
        differing.is_empty(),
        "these artefacts differ from the flow's (or the flow has none): {differing:?}\ncommands:\n{}",
        commands.join("\n")
    );
}
