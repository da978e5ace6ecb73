//! The "Reproduce each stage" commands of a flow summary, run as printed: shared by the tests
//! of the v1 flow (tests/reproduce.rs) and the cg flow (tests/flow_cg.rs).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The kaq binary under test.
pub fn kaq_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("kaq")
}

/// The lines of the sh block under "## Reproduce each stage".
pub fn reproduce_commands(summary: &str) -> Vec<String> {
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
pub fn files(root: &Path) -> BTreeSet<PathBuf> {
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

/// Runs `commands` (each `kaq …` or `mkdir -p …`) as printed, through `sh`, from a fresh
/// directory with the built kaq first on PATH, and asserts that they write every file of
/// `must` under `out/` and that every file they write equals the flow's under `flow_out`
/// byte for byte.
pub fn assert_commands_reproduce(commands: &[String], flow_out: &Path, must: &[&str]) {
    let bin_dir = kaq_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run_dir = tempfile::tempdir().unwrap();
    for c in commands {
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
    for m in must {
        assert!(
            written.contains(Path::new(m)),
            "the commands did not write {m}: {written:?}"
        );
    }
    let differing: Vec<&PathBuf> = written
        .iter()
        .filter(|f| {
            fs::read(run_dir.path().join("out").join(f)).ok() != fs::read(flow_out.join(f)).ok()
        })
        .collect();
    assert!(
        differing.is_empty(),
        "these artefacts differ from the flow's (or the flow has none): {differing:?}\ncommands:\n{}",
        commands.join("\n")
    );
}
