//! The cluster runners of `deploy/` driven on this machine: the Slurm driver with a stand-in
//! `sbatch` (tests/deploy/fake-sbatch: runs each job at once, honours `afterok`), the
//! Kubernetes driver with a stand-in `kubectl` (tests/deploy/fake-kubectl: runs the Indexed
//! Job's pods with JOB_COMPLETION_INDEX and per-index retries, and the merge Job, from the
//! manifests themselves). Each gives byte for byte the unsharded `kaq ber` result, also after a
//! failed shard. The Kubernetes stand-in needs python3 with PyYAML; without it the test fails
//! naming what to install.

use std::path::{Path, PathBuf};
use std::process::Command;

const KAQ: &str = env!("CARGO_BIN_EXE_kaq");

/// The sweep of tests/ber_shard_cli.rs: several rounds, both stopping reasons.
const SWEEP: [&str; 22] = [
    "--detector",
    "zf,mmse,kbest:4",
    "--nt",
    "2",
    "--nr",
    "2",
    "--mod",
    "qpsk",
    "--snr",
    "0:20:10",
    "--min-errors",
    "100",
    "--max-frames",
    "2000",
    "--batch",
    "32",
    "--threads",
    "1",
    "--first-round",
    "2",
    "--seed",
    "3",
];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The unsharded run's JSON and table.
fn unsharded(dir: &Path) -> (Vec<u8>, String) {
    let json = dir.join("one.json");
    let out = Command::new(KAQ)
        .arg("ber")
        .args(SWEEP)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success());
    (
        std::fs::read(json).unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn slurm_driver_with_a_failed_task_resumes_to_the_unsharded_result() {
    let dir = tempfile::tempdir().unwrap();
    let (json, table) = unsharded(dir.path());
    let slurm = dir.path().join("slurm");
    std::fs::create_dir(&slurm).unwrap();
    let sweep = dir.path().join("sweep");
    let driver = || {
        let mut cmd = Command::new("bash");
        cmd.arg(repo("deploy/slurm/sweep.sh"))
            .args(["-n", "3", "-d"])
            .arg(&sweep)
            .env("SBATCH", repo("tests/deploy/fake-sbatch"))
            .env("FAKE_SLURM_DIR", &slurm)
            // Task 2 of round 1 fails once.
            .env("FAKE_SLURM_FAIL", "1:2")
            .env("KAQ", KAQ);
        cmd
    };
    let (ok, out, err) = run(driver().arg("--").args(SWEEP));
    assert!(ok, "{out}{err}");
    assert!(out.contains("round 0: array job"), "{out}");
    // The failed task keeps the round's merge (afterok) from running: no result yet, and the
    // failed shard's file is the only one missing.
    assert!(!sweep.join("ber.json").exists());
    assert!(sweep.join("round-1/shard-1.json").exists());
    assert!(!sweep.join("round-1/shard-2.json").exists());
    // Resubmitting the round runs only the missing shard, then the merge and the rest.
    let (ok, out, err) = run(driver().args(["--round", "1"]));
    assert!(ok, "{out}{err}");
    assert!(out.contains("(shards 2 of 3)"), "{out}");
    assert_eq!(std::fs::read(sweep.join("ber.json")).unwrap(), json);
    assert_eq!(
        std::fs::read_to_string(sweep.join("ber.txt")).unwrap(),
        table
    );
    // A second sweep in the same directory is refused.
    let (ok, _, err) = run(driver().arg("--").args(SWEEP));
    assert!(!ok && err.contains("already holds a sweep"), "{err}");
}

#[test]
fn kubernetes_driver_with_a_lost_pod_gives_the_unsharded_result() {
    let yaml = Command::new("python3")
        .args(["-c", "import yaml"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        yaml,
        "the Kubernetes stand-in needs python3 with PyYAML (apt install python3-yaml, or pip install pyyaml)"
    );
    let dir = tempfile::tempdir().unwrap();
    let (json, table) = unsharded(dir.path());
    let k8s = dir.path().join("k8s");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(KAQ, bin.join("kaq")).unwrap();
    let (ok, out, err) = run(Command::new("bash")
        .arg(repo("deploy/k8s/sweep.sh"))
        .args(["-s", "test", "-n", "3", "-i", "kaq:test", "--"])
        .args(SWEEP)
        .env("KUBECTL", repo("tests/deploy/fake-kubectl"))
        .env("FAKE_K8S_DIR", &k8s)
        .env("FAKE_K8S_PATH", &bin)
        // The pod of index 1 in round 1 is lost after writing its file; its retry must
        // write the same bytes (the stand-in fails the Job otherwise).
        .env("FAKE_K8S_FAIL", "kaq-ber-test-r1:1")
        .env("POLL", "0"));
    assert!(ok, "{out}{err}");
    assert_eq!(out, table);
    assert!(err.contains("the sweep needs round 1"), "{err}");
    let volume = k8s.join("pvc/kaq-sweep-test");
    assert_eq!(std::fs::read(volume.join("ber.json")).unwrap(), json);
    assert!(
        volume.join("round-1/shard-1.json.lost.checked").exists(),
        "the lost pod was not simulated"
    );
}
