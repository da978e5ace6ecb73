//! `kaq flow` and its output directory (docs/outputs.md): one run per `--out` at a time, the
//! second failing at once naming the first; nothing created by a refused configuration.

use std::fs;
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin;
use predicates::prelude::*;

const TINY: &str = r#"{
  "link": {"nt": 2, "nr": 2, "modulation": "qpsk"},
  "net": {"layers": 2},
  "train": {"samples": 600, "val_samples": 200, "epochs": 2, "batch": 50, "lr": 0.01},
  "quant": {"epochs": 1, "bits": 6},
  "rtl": {"lanes": 2, "synth": "none"},
  "cosim": {"frames": 0},
  "ber": {"snr_db": [0, 10], "min_errors": 100, "max_frames": 4000, "references": ["mmse"]}
}"#;

const FLOW: [&str; 7] = [
    "flow",
    "--config",
    "kaq.json",
    "--out",
    "out",
    "--threads",
    "1",
];

/// The text of the lock file of `out` once a holder has written it.
fn lock_text(d: &Path) -> Option<String> {
    fs::read_dir(d).ok()?.find_map(|e| {
        let e = e.ok()?;
        let name = e.file_name().to_string_lossy().to_string();
        let text = fs::read_to_string(e.path()).ok()?;
        (name.starts_with(".kaq-lock-") && !text.trim().is_empty()).then_some(text)
    })
}

#[test]
fn a_locked_out_directory_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("kaq.json"), TINY).unwrap();
    let lock = kaq_files::DirLock::acquire(&d.join("out"), kaq_files::Wait::No).unwrap();
    Command::cargo_bin("kaq")
        .unwrap()
        .current_dir(d)
        .args(FLOW)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--out out"))
        .stderr(predicate::str::contains(format!(
            "in use by another kaq run (pid {}",
            std::process::id()
        )));
    assert!(!d.join("out").exists(), "the refused run created --out");
    drop(lock);
}

#[test]
fn two_concurrent_flows_never_share_an_out_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("kaq.json"), TINY).unwrap();
    let mut first = StdCommand::new(cargo_bin("kaq"))
        .current_dir(d)
        .args(FLOW)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first run holds the lock.
    let start = Instant::now();
    let holder = loop {
        if let Some(text) = lock_text(d) {
            break text;
        }
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended before it was seen holding the lock"
        );
        assert!(start.elapsed() < Duration::from_secs(60), "no lock taken");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(holder.contains(&format!("pid {}:", first.id())), "{holder}");
    let second = Command::cargo_bin("kaq")
        .unwrap()
        .current_dir(d)
        .args(FLOW)
        .output()
        .unwrap();
    let still_running = first.try_wait().unwrap().is_none();
    let status = first.wait_with_output().unwrap();
    assert!(status.status.success(), "the first run failed");
    let stderr = String::from_utf8_lossy(&second.stderr);
    if still_running {
        assert_eq!(second.status.code(), Some(1), "second run: {stderr}");
        assert!(
            stderr.contains(&format!(
                "in use by another kaq run (pid {}",
                status_pid(&holder)
            )),
            "the second run does not name the holder: {stderr}"
        );
    }
    // Whatever the timing, the directory is the first run's complete output and a rerun
    // reuses every stage of it.
    Command::cargo_bin("kaq")
        .unwrap()
        .current_dir(d)
        .args(FLOW)
        .assert()
        .success()
        .stdout(predicate::str::contains("f32: up to date, reused"))
        .stdout(predicate::str::contains("codegen: up to date, reused"))
        .stdout(predicate::str::contains("ber: up to date, reused"));
}

/// The pid a lock file names.
fn status_pid(holder: &str) -> &str {
    holder
        .trim_start_matches("pid ")
        .split(':')
        .next()
        .unwrap_or("")
}
