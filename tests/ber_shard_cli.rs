//! End-to-end tests of sharded BER sweeps: `kaq ber --shard I/N` as separate, concurrent
//! processes, round after round, merged by `kaq merge`, give byte for byte the JSON, table
//! and plot of one `kaq ber` process, for 1, 2, 7 and 64 shards and after shards are rerun;
//! `kaq merge` refuses foreign, overlapping, missing and corrupt shards naming the file; the
//! local runner script (deploy/local/sweep.sh) drives the same rounds.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use assert_cmd::cargo::cargo_bin_cmd;
use predicates::str::contains;

const KAQ: &str = env!("CARGO_BIN_EXE_kaq");

/// A fast sweep: 2×2 QPSK, three SNR points; at 20 dB every detector stops on the frame cap,
/// below it on errors. A first round of 2 batches makes the sweep take several rounds.
const SWEEP: [&str; 20] = [
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
];

/// The seed of the sweep under test.
const SEED: [&str; 2] = ["--seed", "3"];

fn spawn_shard(dir: &Path, round: u32, i: u32, n: u32, after: Option<&Path>) -> Child {
    let mut cmd = Command::new(KAQ);
    cmd.arg("ber")
        .args(SWEEP)
        .args(SEED)
        .args(["--shard", &format!("{i}/{n}")])
        .arg("--json")
        .arg(shard_path(dir, round, i));
    if let Some(state) = after {
        cmd.arg("--after").arg(state);
    }
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kaq starts")
}

fn shard_path(dir: &Path, round: u32, i: u32) -> PathBuf {
    dir.join(format!("r{round}-s{i}.json"))
}

fn wait_ok(child: Child) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "shard failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn merge(dir: &Path, round: u32, n: u32, after: Option<&Path>, extra: &[&str]) -> Output {
    let mut cmd = Command::new(KAQ);
    cmd.arg("merge");
    for i in 0..n {
        cmd.arg(shard_path(dir, round, i));
    }
    if let Some(state) = after {
        cmd.arg("--after").arg(state);
    }
    cmd.arg("--state")
        .arg(state_path(dir, round + 1))
        .arg("--json")
        .arg(dir.join("merged.json"))
        .arg("--plot")
        .arg(dir.join("merged.svg"))
        .args(extra)
        .output()
        .unwrap()
}

fn state_path(dir: &Path, round: u32) -> PathBuf {
    dir.join(format!("state-{round}.json"))
}

/// Runs the whole sweep with `n` concurrent shard processes per round; returns the merged
/// table (stdout of the last merge) and the number of rounds.
fn sharded_sweep(dir: &Path, n: u32) -> (String, u32) {
    let mut round = 0;
    loop {
        let after = (round > 0).then(|| state_path(dir, round));
        let children: Vec<Child> = (0..n)
            .map(|i| spawn_shard(dir, round, i, n, after.as_deref()))
            .collect();
        children.into_iter().for_each(wait_ok);
        let out = merge(dir, round, n, after.as_deref(), &[]);
        match out.status.code() {
            Some(0) => return (String::from_utf8(out.stdout).unwrap(), round + 1),
            Some(3) => {
                let msg = String::from_utf8_lossy(&out.stderr);
                assert!(msg.contains("need more batches"), "{msg}");
                assert!(state_path(dir, round + 1).exists());
                // Nothing final is written before the last round.
                assert!(!dir.join("merged.json").exists());
                assert!(out.stdout.is_empty());
            }
            _ => panic!("merge failed: {}", String::from_utf8_lossy(&out.stderr)),
        }
        round += 1;
        assert!(round < 20, "the rounds do not converge");
    }
}

/// The unsharded run: its JSON, SVG and table.
fn unsharded(dir: &Path) -> (Vec<u8>, Vec<u8>, String) {
    let json = dir.join("one.json");
    let svg = dir.join("one.svg");
    let out = cargo_bin_cmd!("kaq")
        .arg("ber")
        .args(SWEEP)
        .args(SEED)
        .arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    (
        std::fs::read(json).unwrap(),
        std::fs::read(svg).unwrap(),
        String::from_utf8(out).unwrap(),
    )
}

#[test]
fn sharded_sweeps_equal_the_unsharded_run_for_1_2_7_and_64_shards() {
    let dir = tempfile::tempdir().unwrap();
    let (json, svg, table) = unsharded(dir.path());
    let doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let stops: Vec<&str> = doc["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["stop"].as_str().unwrap())
        .collect();
    assert!(
        stops.contains(&"min_errors") && stops.contains(&"max_frames"),
        "{stops:?}"
    );
    // The thread count is not part of the results.
    assert!(doc["config"].get("threads").is_none(), "{}", doc["config"]);
    for n in [1, 2, 7, 64] {
        let sub = dir.path().join(format!("n{n}"));
        std::fs::create_dir(&sub).unwrap();
        let (merged_table, rounds) = sharded_sweep(&sub, n);
        assert!(
            rounds >= 2,
            "{n} shards: a first round of 2 batches cannot finish"
        );
        assert_eq!(
            std::fs::read(sub.join("merged.json")).unwrap(),
            json,
            "{n} shards"
        );
        assert_eq!(merged_table, table, "{n} shards");
        assert_eq!(
            std::fs::read(sub.join("merged.svg")).unwrap(),
            svg,
            "{n} shards"
        );
    }
}

#[test]
fn shards_rerun_after_a_failure_merge_identically() {
    let dir = tempfile::tempdir().unwrap();
    let (json, _, _) = unsharded(dir.path());
    let d = dir.path();
    let n = 3;
    (0..n)
        .map(|i| spawn_shard(d, 0, i, n, None))
        .for_each(wait_ok);
    let first = std::fs::read(shard_path(d, 0, 1)).unwrap();
    // A lost output: the merge names the missing shard.
    std::fs::remove_file(shard_path(d, 0, 1)).unwrap();
    let out = Command::new(KAQ)
        .arg("merge")
        .arg(shard_path(d, 0, 0))
        .arg(shard_path(d, 0, 2))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("no file of shard 1/3"), "{msg}");
    // A shard killed while it runs leaves no file or a complete one, never a partial one.
    let mut child = spawn_shard(d, 0, 1, n, None);
    child.kill().ok();
    child.wait().unwrap();
    if let Ok(bytes) = std::fs::read(shard_path(d, 0, 1)) {
        assert_eq!(bytes, first);
    }
    // The rerun computes the same shard bit for bit.
    wait_ok(spawn_shard(d, 0, 1, n, None));
    assert_eq!(std::fs::read(shard_path(d, 0, 1)).unwrap(), first);
    // And the sweep carries on to the unsharded result.
    let mut round = 0;
    loop {
        let after = (round > 0).then(|| state_path(d, round));
        if round > 0 {
            (0..n)
                .map(|i| spawn_shard(d, round, i, n, after.as_deref()))
                .for_each(wait_ok);
        }
        match merge(d, round, n, after.as_deref(), &[]).status.code() {
            Some(0) => break,
            Some(3) => round += 1,
            other => panic!("merge exited with {other:?}"),
        }
    }
    assert_eq!(std::fs::read(d.join("merged.json")).unwrap(), json);
}

#[test]
fn merge_refuses_foreign_overlapping_missing_and_corrupt_shards_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    (0..2)
        .map(|i| spawn_shard(d, 0, i, 2, None))
        .for_each(wait_ok);
    let (s0, s1) = (shard_path(d, 0, 0), shard_path(d, 0, 1));
    let refuse = |files: &[&Path], needles: &[&str]| {
        let mut cmd = cargo_bin_cmd!("kaq");
        cmd.arg("merge")
            .args(files)
            .arg("--json")
            .arg(d.join("never.json"));
        let mut assert = cmd.assert().code(1).stdout("");
        for needle in needles {
            assert = assert.stderr(contains(*needle));
        }
        assert!(!d.join("never.json").exists());
    };
    // Another configuration (another seed).
    let foreign = d.join("foreign.json");
    cargo_bin_cmd!("kaq")
        .arg("ber")
        .args(SWEEP)
        .args(["--seed", "4", "--shard", "1/2", "--json"])
        .arg(&foreign)
        .assert()
        .success();
    refuse(&[&s0, &foreign], &["foreign.json", "another configuration"]);
    // The same shard twice, under two names.
    let copy = d.join("copy.json");
    std::fs::copy(&s1, &copy).unwrap();
    refuse(&[&s0, &s1, &copy], &["copy.json", "overlap"]);
    // Shards of two shard counts that overlap.
    let third = d.join("third.json");
    cargo_bin_cmd!("kaq")
        .arg("ber")
        .args(SWEEP)
        .args(SEED)
        .args(["--shard", "0/3", "--json"])
        .arg(&third)
        .assert()
        .success();
    refuse(&[&s0, &s1, &third], &["third.json", "overlap"]);
    // A missing shard.
    refuse(&[&s0], &["no file of shard 1/2"]);
    // Corrupt files: truncated, edited, not a shard file at all.
    let text = std::fs::read_to_string(&s1).unwrap();
    let truncated = d.join("truncated.json");
    std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
    refuse(&[&s0, &truncated], &["truncated.json", "corrupt"]);
    let edited = d.join("edited.json");
    std::fs::write(
        &edited,
        text.replacen("\"bit_errors\":", "\"bit_errors\":9", 1),
    )
    .unwrap();
    refuse(&[&s0, &edited], &["edited.json", "digest"]);
    let unsharded = d.join("unsharded.json");
    cargo_bin_cmd!("kaq")
        .arg("ber")
        .args(SWEEP)
        .args(SEED)
        .arg("--json")
        .arg(&unsharded)
        .assert()
        .success();
    refuse(&[&s0, &unsharded], &["unsharded.json", "corrupt"]);
    refuse(&[&s0, &d.join("absent.json")], &["absent.json"]);
    // A later round without its state, and a state of another configuration.
    let out = merge(d, 0, 2, None, &[]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = state_path(d, 1);
    (0..2)
        .map(|i| spawn_shard(d, 1, i, 2, Some(&state)))
        .for_each(wait_ok);
    refuse(&[&shard_path(d, 1, 0), &shard_path(d, 1, 1)], &["--after"]);
    cargo_bin_cmd!("kaq")
        .arg("ber")
        .args(SWEEP)
        .args(["--seed", "4", "--shard", "0/2", "--json"])
        .arg(d.join("never.json"))
        .arg("--after")
        .arg(&state)
        .assert()
        .code(1)
        .stderr(contains("state-1.json"))
        .stderr(contains("another configuration"));
}

#[test]
fn sharding_arguments_are_checked_while_parsing() {
    for (args, needle) in [
        (
            vec!["--shard", "2/2", "--json", "x.json"],
            "below the shard count",
        ),
        (vec!["--shard", "1/0", "--json", "x.json"], "between 1 and"),
        (vec!["--shard", "1"], "--shard"),
        (vec!["--shard", "0/2"], "--json"),
        (vec!["--after", "state.json"], "--shard"),
        (vec!["--first-round", "0", "--plan"], "--first-round"),
        (
            vec!["--shard", "0/2", "--plan", "--json", "x.json"],
            "--plan",
        ),
        (
            vec!["--shard", "0/2", "--plot", "x.svg", "--json", "x.json"],
            "--plot",
        ),
    ] {
        cargo_bin_cmd!("kaq")
            .arg("ber")
            .args(&args)
            .assert()
            .code(2)
            .stderr(contains(needle));
    }
    cargo_bin_cmd!("kaq").arg("merge").assert().code(2);
    cargo_bin_cmd!("kaq")
        .args(["merge", "--help"])
        .assert()
        .success()
        .stdout(contains("Exit status"))
        .stdout(contains("3 when some point needs another round"));
}

#[test]
fn plan_prints_and_writes_the_next_round() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    let out = cargo_bin_cmd!("kaq")
        .arg("ber")
        .args(SWEEP)
        .args(SEED)
        .arg("--plan")
        .arg("--json")
        .arg(&plan)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let table = String::from_utf8(out).unwrap();
    assert!(table.starts_with("# round 0 of sweep "), "{table}");
    // Two comment lines, the header, then one row per detector and SNR point.
    assert_eq!(table.lines().count(), 3 + 9, "{table}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    assert_eq!(doc["kind"], "kaq-ber-plan");
    assert_eq!(doc["round"], 0);
    // Three points, two batches each; every detector runs every batch.
    assert_eq!(doc["units"], 6);
    assert_eq!(doc["batch_runs"], 18);
    assert_eq!(doc["batches_per_point"], 63);
    for r in doc["ranges"].as_array().unwrap() {
        assert_eq!((r["start"].as_u64(), r["end"].as_u64()), (Some(0), Some(2)));
        assert_eq!(r["frames"], 64);
    }
    // After round 0, the plan continues only the points that have not stopped.
    let d = dir.path();
    (0..2)
        .map(|i| spawn_shard(d, 0, i, 2, None))
        .for_each(wait_ok);
    assert_eq!(merge(d, 0, 2, None, &[]).status.code(), Some(3));
    let out = cargo_bin_cmd!("kaq")
        .arg("ber")
        .args(SWEEP)
        .args(SEED)
        .arg("--plan")
        .arg("--after")
        .arg(state_path(d, 1))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let table = String::from_utf8(out).unwrap();
    assert!(table.starts_with("# round 1 of sweep "), "{table}");
    for row in table.lines().skip(3) {
        assert!(row.contains(" 2.."), "round 1 starts at batch 2: {row}");
    }
}

#[test]
fn local_runner_script_gives_the_unsharded_result() {
    let dir = tempfile::tempdir().unwrap();
    let (json, svg, table) = unsharded(dir.path());
    let out_dir = dir.path().join("sweep");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/local/sweep.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(["-n", "3", "-o"])
        .arg(&out_dir)
        .arg("--")
        .args(SWEEP)
        .args(SEED)
        .env("KAQ", KAQ)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), table);
    assert_eq!(std::fs::read(out_dir.join("ber.json")).unwrap(), json);
    assert_eq!(std::fs::read(out_dir.join("ber.svg")).unwrap(), svg);
    assert!(
        out_dir.join("round-1").is_dir(),
        "the sweep took more than one round"
    );
}
