//! Fault injection on kaq's multi-file outputs (docs/outputs.md, "Fault injection"): the
//! output directories of `kaq codegen`, `kaq export` and `kaq compare`, the VCD of
//! `kaq cosim --trace` and the stages of `kaq flow`.
//!
//! The kaq binary these tests run is built with kaq-files' `fault-injection` feature, so
//! `KAQ_FAULT` stops it after its n-th write or rename (`exit:n`), makes that operation fail
//! with ENOSPC (`enospc:n`) or pauses it there (`pause:n`). Every case checks, on the whole
//! test directory:
//!
//! * right after the fault, every output (an output directory as a whole, every other file on
//!   its own) is its old complete self or its new complete self, as the next run finds it:
//!   on a copy of the directory, kaq-files' own recovery is run on each output directory
//!   first (finishing or undoing a stopped swap); dead temporary files of single-file writes
//!   are ignored, since the next write of that file removes them;
//! * the same command run again without `--force` does what it does after an uninterrupted
//!   run (or, when the fault left the old output, after no run): it succeeds, except that
//!   `kaq export` refuses an existing complete `--out` without `--force`;
//! * afterwards the whole directory is byte for byte that of an uninterrupted run: nothing
//!   else changed, nothing of kaq's bookkeeping left behind.
//!
//! Failures are counted, not stopped at; each test prints `faults: CLASS: N cases, F failures`
//! (shown with `--nocapture`) and fails if F > 0 or a class tried no case. The counts are in
//! docs/outputs.md.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;
use kaq_files::fault::EXIT_STATUS;

// ---------------------------------------------------------------------------------------
// Directory trees.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

type Tree = BTreeMap<String, Entry>;

/// Every entry under `root` by relative path (`/`-separated), symbolic links not followed.
fn tree(root: &Path) -> Tree {
    fn walk(root: &Path, dir: &Path, out: &mut Tree) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(rel, Entry::Link(fs::read_link(&p).unwrap()));
            } else if meta.is_dir() {
                out.insert(rel, Entry::Dir);
                walk(root, &p, out);
            } else {
                out.insert(rel, Entry::File(fs::read(&p).unwrap_or_default()));
            }
        }
    }
    let mut out = Tree::new();
    walk(root, root, &mut out);
    out
}

/// Files whose bytes hold wall-clock figures: compared by presence only.
const VOLATILE: [&str; 3] = ["summary.md", "flow.json", "cosim.json"];

/// A VCD without its `$date` section (the time of the run).
fn undated_vcd(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    match text.find("$date") {
        Some(start) => match text[start..].find("$end") {
            Some(len) => format!("{}{}", &text[..start], &text[start + len + 4..]).into_bytes(),
            None => bytes.to_vec(),
        },
        None => bytes.to_vec(),
    }
}

fn file_name(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

/// `t` with the bytes of volatile files and lock files (a holder's pid) blanked.
fn normal(t: &Tree) -> Tree {
    t.iter()
        .map(|(k, v)| {
            let name = file_name(k);
            let v = match v {
                Entry::File(b) if VOLATILE.contains(&name) && !b.is_empty() => {
                    Entry::File(b"(volatile)".to_vec())
                }
                Entry::File(b) if name.ends_with(".vcd") => Entry::File(undated_vcd(b)),
                Entry::File(_) if name.starts_with(".kaq-lock-") => Entry::File(Vec::new()),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// `t` without what is not an output: dead temporary files of single-file writes (the next
/// write of the same file removes them) and lock files.
fn view(t: &Tree) -> Tree {
    normal(t)
        .into_iter()
        .filter(|(k, _)| {
            !k.split('/')
                .any(|c| c.starts_with(".kaq-tmp-") || c.starts_with(".kaq-lock-"))
        })
        .collect()
}

/// What the next kaq run finds in `root` after its repairs: a copy of `root` in which
/// kaq-files' recovery has run on each output directory of `dirs` (a swap stopped half-way
/// finished or undone, dead staging directories removed), as [`view`] sees it.
fn recovered(root: &Path, dirs: &[&str]) -> Tree {
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("root");
    copy_tree(root, &copy);
    for d in dirs {
        let target = copy.join(d);
        if target.parent().is_some_and(Path::is_dir) {
            kaq_files::Staging::recover(&target).unwrap();
        }
    }
    view(&tree(&copy))
}

/// The unit `rel` belongs to: an output directory of `dirs` as a whole, or itself.
fn unit(rel: &str, dirs: &[&str]) -> String {
    for d in dirs {
        if rel == *d || rel.starts_with(&format!("{d}/")) {
            return d.to_string();
        }
    }
    rel.to_string()
}

fn units(t: &Tree, dirs: &[&str]) -> BTreeMap<String, Tree> {
    let mut out: BTreeMap<String, Tree> = BTreeMap::new();
    for (k, v) in t {
        out.entry(unit(k, dirs))
            .or_default()
            .insert(k.clone(), v.clone());
    }
    out
}

/// Whether every unit of `got` is that of `old` or that of `new`; the mixed units if not.
fn old_or_new(got: &Tree, old: &Tree, new: &Tree, dirs: &[&str]) -> Result<(), String> {
    let (g, o, n) = (units(got, dirs), units(old, dirs), units(new, dirs));
    let mut keys: Vec<&String> = g.keys().chain(o.keys()).chain(n.keys()).collect();
    keys.sort();
    keys.dedup();
    let bad: Vec<&String> = keys
        .into_iter()
        .filter(|k| g.get(*k) != o.get(*k) && g.get(*k) != n.get(*k))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("neither old nor new: {bad:?}"))
    }
}

/// The paths where `a` and `b` differ (at most 6).
fn diff(a: &Tree, b: &Tree) -> Vec<String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .take(6)
        .cloned()
        .collect()
}

/// Copies the tree at `from` into the new directory `to`.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let meta = fs::symlink_metadata(&src).unwrap();
        if meta.file_type().is_symlink() {
            symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if meta.is_dir() {
            copy_tree(&src, &dst);
            fs::set_permissions(&dst, meta.permissions()).unwrap();
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Running kaq.

fn command(root: &Path, args: &[String], fault: Option<String>) -> Command {
    let mut cmd = Command::new(cargo_bin("kaq"));
    cmd.current_dir(root)
        .args(args)
        .env_remove("KAQ_FAULT")
        .env_remove("KAQ_FAULT_LOG")
        .env_remove("KAQ_FAULT_GATE")
        // A killed process leaves the same files with or without fsync; only slower.
        .env("KAQ_FAULT_NOSYNC", "1")
        .stdin(Stdio::null());
    if let Some(f) = fault {
        cmd.env("KAQ_FAULT", f);
    }
    cmd
}

fn kaq(root: &Path, args: &[String], fault: Option<String>) -> Output {
    command(root, args, fault).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The fault points of `args` run uninterrupted in a copy of `template`, as `(op, path)`,
/// and how long the run took.
fn points(template: &Path, args: &[String]) -> (Vec<(String, String)>, Duration) {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    copy_tree(template, &root);
    let log = work.path().join("points.log");
    let t = Instant::now();
    let out = command(&root, args, None)
        .env("KAQ_FAULT_LOG", &log)
        .output()
        .unwrap();
    let took = t.elapsed();
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    let points = fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut it = l.splitn(3, ' ');
            let _n = it.next();
            let op = it.next().unwrap_or("").to_string();
            let path = it.next().unwrap_or("").to_string();
            (op, path)
        })
        .collect();
    (points, took)
}

fn sh(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------
// Scenarios.

/// One command writing over a prepared directory.
struct Scenario {
    name: String,
    /// The directory before the command (copied for every case).
    template: PathBuf,
    cmd: Vec<String>,
    /// The output directories among the outputs (swapped as a whole).
    dirs: Vec<&'static str>,
    /// The whole directory before and after an uninterrupted run (normalized).
    old: Tree,
    new: Tree,
    /// The exit status of the command run a second time after an uninterrupted run.
    again: Option<i32>,
    /// The number of fault points of the command.
    points: usize,
    /// How long the uninterrupted command took.
    seconds: Duration,
}

impl Scenario {
    fn new(name: &str, template: PathBuf, cmd: Vec<String>, dirs: Vec<&'static str>) -> Self {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("root");
        copy_tree(&template, &root);
        let old = normal(&tree(&root));
        let first = kaq(&root, &cmd, None);
        assert!(first.status.success(), "{name}: {}", stderr(&first));
        let new = normal(&tree(&root));
        assert_ne!(old, new, "{name}: the command changes nothing");
        let second = kaq(&root, &cmd, None);
        let again = second.status.code();
        if again == Some(0) {
            assert_eq!(
                normal(&tree(&root)),
                new,
                "{name}: a rerun is not idempotent"
            );
        }
        // Timed after the first run, so a build it cached is not counted.
        let (points, seconds) = points(&template, &cmd);
        let points = points.len();
        assert!(points > 0, "{name}: no fault points");
        Scenario {
            name: name.to_string(),
            template,
            cmd,
            dirs,
            old,
            new,
            again,
            points,
            seconds,
        }
    }

    fn dirs(&self) -> Vec<&str> {
        self.dirs.clone()
    }

    /// Checks the directory after a fault and reruns the command; `Err` names what is wrong.
    fn after_fault(&self, root: &Path, label: &str) -> Result<(), String> {
        let dirs = self.dirs();
        let seen = recovered(root, &dirs);
        old_or_new(&seen, &view(&self.old), &view(&self.new), &dirs)
            .map_err(|e| format!("{label}: {e}"))?;
        let expect = if seen == view(&self.new) {
            self.again
        } else {
            Some(0)
        };
        let rerun = kaq(root, &self.cmd, None);
        if rerun.status.code() != expect {
            return Err(format!(
                "{label}: the rerun exited {:?}, not {expect:?}: {}",
                rerun.status.code(),
                stderr(&rerun)
            ));
        }
        let got = normal(&tree(root));
        if got != self.new {
            return Err(format!(
                "{label}: after the rerun the directory differs from an uninterrupted run's at {:?}",
                diff(&got, &self.new)
            ));
        }
        Ok(())
    }

    /// Runs the command with `KAQ_FAULT=kind:n` in a fresh copy and checks the result.
    fn fault_case(&self, kind: &str, n: usize) -> Result<(), String> {
        let label = format!("{} {kind}:{n}", self.name);
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("root");
        copy_tree(&self.template, &root);
        let out = kaq(&root, &self.cmd, Some(format!("{kind}:{n}")));
        let err = stderr(&out);
        if !err.contains("kaq-fault:") {
            return Err(format!("{label}: the fault did not fire: {err}"));
        }
        if err.contains("panicked") {
            return Err(format!("{label}: panic: {err}"));
        }
        let code = out.status.code();
        match kind {
            "exit" if code != Some(EXIT_STATUS) => {
                return Err(format!("{label}: exited {code:?}: {err}"));
            }
            "enospc" => {
                // Only best-effort clean-up may swallow the error (the run then succeeds). The
                // operating system's message is printed once, not once per error layer.
                let named = err.matches("No space left on device").count() == 1;
                if !(code == Some(1) && named || code == Some(0)) {
                    return Err(format!("{label}: exited {code:?}: {err}"));
                }
            }
            _ => {}
        }
        self.after_fault(&root, &label)
    }
}

/// The tally of one class.
#[derive(Default)]
struct Tally {
    cases: usize,
    failures: Vec<String>,
}

impl Tally {
    fn add(&mut self, r: Result<(), String>) {
        self.cases += 1;
        if let Err(e) = r {
            self.failures.push(e);
        }
    }

    fn report(self, class: &str) {
        println!(
            "faults: {class}: {} cases, {} failures",
            self.cases,
            self.failures.len()
        );
        for f in self.failures.iter().take(10) {
            println!("  {f}");
        }
        assert!(self.cases > 0, "{class}: no case tried");
        assert!(self.failures.is_empty(), "{class}: {:?}", self.failures);
    }
}

fn example_ir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pgd-qpsk-2x2/ir.json")
}

/// A directory holding the example IR, then the commands `setup` run in it.
fn template(base: &Path, name: &str, setup: &[Vec<String>]) -> PathBuf {
    let root = base.join(name);
    fs::create_dir_all(&root).unwrap();
    fs::copy(example_ir(), root.join("ir.json")).unwrap();
    fs::write(root.join("kaq.json"), TINY).unwrap();
    fs::write(root.join("kaq-b.json"), TINY_B).unwrap();
    fs::write(root.join("kaq-c.json"), TINY_C).unwrap();
    for args in setup {
        let out = kaq(&root, args, None);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    root
}

fn codegen(lanes: &str, extra: &[&str]) -> Vec<String> {
    let mut v = sh(&[
        "codegen",
        "--ir",
        "ir.json",
        "--out",
        "rtl",
        "--lanes",
        lanes,
        "--testbench-frames",
        "4",
    ]);
    v.extend(sh(extra));
    v
}

fn export(seed: &str, extra: &[&str]) -> Vec<String> {
    let mut v = sh(&[
        "export", "--nt", "2", "--nr", "2", "--mod", "qpsk", "--snr", "0,10", "--frames", "8",
        "--seed", seed, "--out", "frames",
    ]);
    v.extend(sh(extra));
    v
}

/// The command-level scenarios: a new output directory, a rewrite, a forced rewrite.
fn command_scenarios(base: &Path) -> Vec<Scenario> {
    let rtl2 = codegen("2", &[]);
    let foreign = template(base, "codegen-foreign", std::slice::from_ref(&rtl2));
    fs::write(foreign.join("rtl/notes.txt"), "mine").unwrap();
    fs::create_dir(foreign.join("rtl/sub")).unwrap();
    fs::write(foreign.join("rtl/sub/data.bin"), [1u8, 2, 3]).unwrap();
    vec![
        Scenario::new(
            "codegen new",
            template(base, "codegen-new", &[]),
            codegen("2", &[]),
            vec!["rtl"],
        ),
        Scenario::new(
            "codegen rewrite",
            template(base, "codegen-rewrite", std::slice::from_ref(&rtl2)),
            codegen("4", &[]),
            vec!["rtl"],
        ),
        Scenario::new(
            "codegen forced rewrite",
            foreign,
            codegen("4", &["--force"]),
            vec!["rtl"],
        ),
        Scenario::new(
            "export new",
            template(base, "export-new", &[]),
            export("1", &[]),
            vec!["frames"],
        ),
        Scenario::new(
            "export forced rewrite",
            template(base, "export-rewrite", &[export("1", &[])]),
            export("2", &["--force"]),
            vec!["frames"],
        ),
    ]
}

/// A flow of a fraction of a second: 2×2 QPSK, two layers, a short training, no
/// co-simulation.
const TINY: &str = r#"{
  "link": {"nt": 2, "nr": 2, "modulation": "qpsk"},
  "net": {"arch": "pgd", "layers": 2},
  "train": {"samples": 400, "val_samples": 100, "epochs": 1, "batch": 50, "lr": 0.01},
  "quant": {"epochs": 1, "bits": 6},
  "rtl": {"lanes": 2, "synth": "none", "testbench_frames": 4},
  "cosim": {"frames": 0},
  "ber": {"snr_db": [0, 8], "min_errors": 20, "max_frames": 400, "references": ["mmse"]}
}"#;

/// [`TINY`] with other lanes and SNR points: codegen, report and BER rerun over its output.
const TINY_B: &str = r#"{
  "link": {"nt": 2, "nr": 2, "modulation": "qpsk"},
  "net": {"arch": "pgd", "layers": 2},
  "train": {"samples": 400, "val_samples": 100, "epochs": 1, "batch": 50, "lr": 0.01},
  "quant": {"epochs": 1, "bits": 6},
  "rtl": {"lanes": 4, "synth": "none", "testbench_frames": 4},
  "cosim": {"frames": 0},
  "ber": {"snr_db": [0, 4], "min_errors": 20, "max_frames": 400, "references": ["mmse"]}
}"#;

/// [`TINY`] with two co-simulated frames: over its output only the cosim stage (and the
/// summary) runs. Verilator's build of the design, some 15 s, is cached for every later run;
/// without Verilator the stage is skipped and has no fault points.
const TINY_C: &str = r#"{
  "link": {"nt": 2, "nr": 2, "modulation": "qpsk"},
  "net": {"arch": "pgd", "layers": 2},
  "train": {"samples": 400, "val_samples": 100, "epochs": 1, "batch": 50, "lr": 0.01},
  "quant": {"epochs": 1, "bits": 6},
  "rtl": {"lanes": 2, "synth": "none", "testbench_frames": 4},
  "cosim": {"frames": 2},
  "ber": {"snr_db": [0, 8], "min_errors": 20, "max_frames": 400, "references": ["mmse"]}
}"#;

fn flow(config: &str) -> Vec<String> {
    sh(&["flow", "--config", config, "--out", "out", "--threads", "1"])
}

/// The stage a fault point of the flow ends, if it ends one: the renames of the stage keys
/// and of the artefacts written after the last key.
fn stage_end(op: &str, path: &str) -> Option<String> {
    if op != "rename" {
        return None;
    }
    let name = file_name(path);
    if let Some(stage) = name.strip_suffix(".key") {
        return Some(stage.to_string());
    }
    match name {
        "report.json" => Some("report".into()),
        "summary.md" => Some("summary".into()),
        "flow.json" => Some("log".into()),
        _ => None,
    }
}

/// The flow run from nothing, split at its stages: for each stage, a directory holding the
/// complete output of the stages before it (what the flow stopped at that stage's start
/// leaves), a scenario resuming from there, and the fault points of that stage in the
/// resumed run (numbered from 1, the resumed run's first point being the lock of `out`).
fn flow_stages(base: &Path) -> Vec<(String, Scenario, Vec<usize>)> {
    let empty = template(base, "flow-0", &[]);
    let (all, _) = points(&empty, &flow("kaq.json"));
    let mut ends: Vec<(usize, String)> = all
        .iter()
        .enumerate()
        .filter_map(|(i, (op, path))| stage_end(op, path).map(|s| (i + 1, s)))
        .collect();
    assert!(ends.len() >= 7, "stage ends: {ends:?}");
    assert_eq!(ends.last().unwrap().0, all.len(), "points after flow.json");
    let mut out = Vec::new();
    let mut prefix = empty;
    let mut start = 0; // the from-scratch points before this stage
    for (k, (end, stage)) in ends.drain(..).enumerate() {
        let scenario = Scenario::new(
            &format!("flow {stage}"),
            prefix.clone(),
            flow("kaq.json"),
            vec!["out/rtl"],
        );
        // From the prefix, point 1 is the lock of `out`; the stage's points follow.
        let own: Vec<usize> = if k == 0 {
            (1..=end).collect()
        } else {
            (2..=end - start + 1).collect()
        };
        // The next prefix: this one with the stage complete.
        let next = base.join(format!("flow-{}", k + 1));
        copy_tree(&prefix, &next);
        let last = *own.last().unwrap();
        let o = kaq(&next, &flow("kaq.json"), Some(format!("exit:{last}")));
        assert_eq!(
            o.status.code(),
            Some(EXIT_STATUS),
            "{stage}: {}",
            stderr(&o)
        );
        out.push((stage, scenario, own));
        start = end;
        prefix = next;
    }
    out
}

// ---------------------------------------------------------------------------------------
// 1 and 2: stopped or out of space after every write and rename.

fn sweep(scenarios: &[Scenario], kind: &str, tally: &mut Tally) {
    for s in scenarios {
        for n in 1..=s.points {
            tally.add(s.fault_case(kind, n));
        }
    }
}

#[test]
fn every_write_and_rename_of_codegen_and_export_stopped_or_out_of_space() {
    let base = tempfile::tempdir().unwrap();
    let scenarios = command_scenarios(base.path());
    let mut stopped = Tally::default();
    sweep(&scenarios, "exit", &mut stopped);
    stopped.report("stopped after the n-th write/rename (codegen, export)");
    let mut full = Tally::default();
    sweep(&scenarios, "enospc", &mut full);
    full.report("ENOSPC injected at the n-th write/rename (codegen, export)");
}

/// Where a flow killed in `root` (resumed from the prefix of `stages[k]`) stopped: the first
/// stage from `k` on whose end is not on disk.
fn killed_in(root: &Path, stages: &[(String, Scenario, Vec<usize>)], k: usize) -> String {
    for (stage, _, _) in &stages[k..] {
        let end = match stage.as_str() {
            "report" => root.join("out/report.json"),
            "summary" => root.join("out/summary.md"),
            "log" => root.join("out/flow.json"),
            s => root.join("out/.kaq-flow").join(format!("{s}.key")),
        };
        if !end.exists() {
            return stage.clone();
        }
    }
    AFTER.into()
}

/// Where a kill that came after the run had finished is counted (not as a case).
const AFTER: &str = "after the run ended";

/// A SIGKILL of the flow of `s`: paused before point `n` then killed, or killed `after` into
/// the run; the stage it hit (`stage_of` the killed directory) is counted in `hits`. `None`
/// when the run had ended before the kill.
fn kill_case(
    s: &Scenario,
    when: Result<usize, Duration>,
    stage_of: &dyn Fn(&Path) -> String,
    hits: &mut BTreeMap<String, usize>,
) -> Option<Result<(), String>> {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    copy_tree(&s.template, &root);
    let (mut child, label) = match when {
        Ok(n) => {
            let gate = work.path().join("gate");
            let label = format!("{} SIGKILL at point {n}", s.name);
            match start_paused(&root, &s.cmd, n, &gate) {
                Ok(child) => (child, label),
                Err(e) => return Some(Err(format!("{label}: {e}"))),
            }
        }
        Err(after) => {
            let child = command(&root, &s.cmd, None)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(after);
            (child, format!("{} SIGKILL after {after:?}", s.name))
        }
    };
    let finished = child.try_wait().unwrap().is_some();
    child.kill().unwrap();
    let _ = child.wait();
    let stage = if finished {
        AFTER.to_string()
    } else {
        stage_of(&root)
    };
    *hits.entry(stage.clone()).or_default() += 1;
    (stage != AFTER).then(|| s.after_fault(&root, &label))
}

#[test]
fn every_flow_stage_stopped_out_of_space_killed_and_locked_at_every_point() {
    let base = tempfile::tempdir().unwrap();
    let stages = flow_stages(base.path());
    let mut stopped = Tally::default();
    let mut full = Tally::default();
    for (_, s, own) in &stages {
        for &n in own {
            stopped.add(s.fault_case("exit", n));
            full.add(s.fault_case("enospc", n));
        }
    }
    // The flow rerun with another configuration over a complete output.
    let done = template(base.path(), "flow-rewrite", &[flow("kaq.json")]);
    let with_cosim = base.path().join("flow-cosim");
    copy_tree(&done, &with_cosim);
    let rewrite = Scenario::new("flow rewrite", done, flow("kaq-b.json"), vec!["out/rtl"]);
    for n in 1..=rewrite.points {
        stopped.add(rewrite.fault_case("exit", n));
        full.add(rewrite.fault_case("enospc", n));
    }
    // The cosim stage, run over a complete output without co-simulation.
    let cosim = verilator().then(|| {
        Scenario::new(
            "flow cosim",
            with_cosim,
            flow("kaq-c.json"),
            vec!["out/rtl"],
        )
    });
    // Its own points: the lock of `out`, then cosim.json and the cosim key (the summary's
    // and log's points are those of every other scenario).
    let cosim_points = 1..=5;
    if let Some(c) = &cosim {
        for n in cosim_points.clone() {
            stopped.add(c.fault_case("exit", n));
            full.add(c.fault_case("enospc", n));
        }
    } else {
        println!("faults: the cosim stage: skipped (Verilator is not installed)");
    }
    stopped.report("stopped after the n-th write/rename (flow stages)");
    full.report("ENOSPC injected at the n-th write/rename (flow stages)");

    // SIGKILL in every stage: before its first, middle and last write or rename, and at
    // fractions of the resumed run's time (which land in the long computations).
    let mut killed = Tally::default();
    let mut hits = BTreeMap::new();
    for (k, (_, s, own)) in stages.iter().enumerate() {
        let picks = [own[0], own[own.len() / 2], own[own.len() - 1]];
        let mut picks = picks.to_vec();
        picks.dedup();
        for n in picks {
            if let Some(r) = kill_case(s, Ok(n), &|r| killed_in(r, &stages, k), &mut hits) {
                killed.add(r);
            }
        }
        for frac in [0.1, 0.3, 0.5] {
            let after = s.seconds.mul_f64(frac);
            if let Some(r) = kill_case(s, Err(after), &|r| killed_in(r, &stages, k), &mut hits) {
                killed.add(r);
            }
        }
    }
    if let Some(c) = &cosim {
        let stage_of = |r: &Path| {
            if r.join("out/.kaq-flow/cosim.key").exists() {
                "summary, after cosim".to_string()
            } else {
                "cosim".to_string()
            }
        };
        for when in [Ok(2), Ok(*cosim_points.end())] {
            if let Some(r) = kill_case(c, when, &stage_of, &mut hits) {
                killed.add(r);
            }
        }
        for frac in [0.2, 0.5] {
            if let Some(r) = kill_case(c, Err(c.seconds.mul_f64(frac)), &stage_of, &mut hits) {
                killed.add(r);
            }
        }
        assert!(hits.contains_key("cosim"), "no SIGKILL landed in cosim");
    }
    for (stage, n) in &hits {
        if stage == AFTER {
            println!("faults: SIGKILL {stage} (not counted): {n}");
        } else {
            println!("faults: SIGKILL during {stage}: {n} cases");
        }
    }
    for (stage, _, _) in &stages {
        assert!(hits.contains_key(stage), "no SIGKILL landed in {stage}");
    }
    killed.report("SIGKILL during the flow's stages");

    // A second flow on the same --out while the first is paused at each of its points.
    let mut locked = Tally::default();
    for n in 1..=rewrite.points {
        locked.add(concurrent_case(&rewrite, &flow("kaq.json"), n));
    }
    locked.report("concurrent writers (flow)");
}

// ---------------------------------------------------------------------------------------
// 3: a second writer while the first is paused before each of its writes and renames.

/// Starts `cmd` in `root` paused before its `n`-th fault point; returns once it is paused
/// (`Err` if it ended first). The gate file, once created, lets it go on.
fn start_paused(root: &Path, cmd: &[String], n: usize, gate: &Path) -> Result<Child, String> {
    let mut child = command(root, cmd, Some(format!("pause:{n}")))
        .env("KAQ_FAULT_GATE", gate)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let paused = PathBuf::from(format!("{}.paused", gate.display()));
    let start = Instant::now();
    while !paused.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            return Err(format!("ended ({status}) before point {n}: {err}"));
        }
        if start.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            return Err(format!("never reached point {n}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(child)
}

/// `first` paused before its `n`-th point; `second` then run on the same directory must fail
/// naming the first (pid), change nothing, and leave the first to finish its output.
fn concurrent_case(s: &Scenario, second: &[String], n: usize) -> Result<(), String> {
    let label = format!("{} paused at {n}", s.name);
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    copy_tree(&s.template, &root);
    let gate = work.path().join("gate");
    let first = start_paused(&root, &s.cmd, n, &gate).map_err(|e| format!("{label}: {e}"))?;
    let pid = first.id();
    let before = tree(&root);
    let seen = recovered(&root, &s.dirs());
    let out = kaq(&root, second, None);
    let err = stderr(&out);
    let after = tree(&root);
    fs::write(&gate, "").unwrap();
    let done = first.wait_with_output().unwrap();
    if out.status.code() != Some(1) || !err.contains("in use by another kaq run") {
        return Err(format!(
            "{label}: the second run exited {:?}: {err}",
            out.status.code()
        ));
    }
    // The holder names itself right after taking the lock: from its second point on.
    if n > 1 && !err.contains(&format!("pid {pid}")) {
        return Err(format!(
            "{label}: the second run does not name pid {pid}: {err}"
        ));
    }
    if before != after {
        return Err(format!(
            "{label}: the second run changed {:?}",
            diff(&before, &after)
        ));
    }
    let dirs = s.dirs();
    old_or_new(&seen, &view(&s.old), &view(&s.new), &dirs).map_err(|e| format!("{label}: {e}"))?;
    if !done.status.success() {
        return Err(format!(
            "{label}: the first run failed: {}",
            String::from_utf8_lossy(&done.stderr)
        ));
    }
    let got = normal(&tree(&root));
    if got != s.new {
        return Err(format!(
            "{label}: the first run's output differs at {:?}",
            diff(&got, &s.new)
        ));
    }
    Ok(())
}

#[test]
fn a_second_writer_fails_naming_the_first_at_every_point_of_codegen_and_export() {
    let base = tempfile::tempdir().unwrap();
    let scenarios = command_scenarios(base.path());
    let mut tally = Tally::default();
    for s in &scenarios {
        // The second writer writes something else into the same directory.
        let second = if s.cmd[0] == "codegen" {
            codegen("1", &["--force"])
        } else {
            export("3", &["--force"])
        };
        for n in 1..=s.points {
            tally.add(concurrent_case(s, &second, n));
        }
    }
    tally.report("concurrent writers (codegen, export)");
}

// ---------------------------------------------------------------------------------------
// `kaq compare --out` and `kaq cosim --trace`.

/// A comparison of about a second: 2×2 QPSK, K = 2, the f32 teacher and 4-bit PTQ.
fn compare(snr: &str, extra: &[&str]) -> Vec<String> {
    let mut v = sh(&[
        "compare",
        "--threads",
        "1",
        "--nt",
        "2",
        "--nr",
        "2",
        "--mod",
        "qpsk",
        "--layers",
        "2",
        "--samples",
        "100",
        "--val-samples",
        "50",
        "--val-frames",
        "50",
        "--batch",
        "50",
        "--epochs",
        "1",
        "--calibration-samples",
        "50",
        "--bits",
        "4",
        "--methods",
        "fp32,ptq",
        "--snr",
        snr,
        "--min-errors",
        "20",
        "--max-frames",
        "200",
        "--hist-samples",
        "20",
        "--out",
        "cmp",
    ]);
    v.extend(sh(extra));
    v
}

/// `kaq cosim` of the example IR over 200 frames with the outputs `extra`.
fn cosim(seed: &str, extra: &[&str]) -> Vec<String> {
    let mut v = sh(&[
        "cosim", "--ir", "ir.json", "--lanes", "2", "--frames", "200", "--seed", seed,
    ]);
    v.extend(sh(extra));
    v
}

/// The compare scenarios (a new report directory, a forced rewrite keeping a foreign file)
/// and, with Verilator, the cosim --trace ones (a new trace, a forced rewrite of the trace and
/// the JSON).
fn compare_and_trace_scenarios(base: &Path) -> Vec<Scenario> {
    let forced = template(base, "compare-forced", &[compare("0,8", &[])]);
    fs::write(forced.join("cmp/notes.txt"), "mine").unwrap();
    let mut v = vec![
        Scenario::new(
            "compare new",
            template(base, "compare-new", &[]),
            compare("0,8", &[]),
            vec!["cmp"],
        ),
        Scenario::new(
            "compare forced rewrite",
            forced,
            compare("0,4", &["--force"]),
            vec!["cmp"],
        ),
    ];
    if verilator() {
        let both = ["--trace", "run.vcd", "--json", "cosim.json"];
        v.push(Scenario::new(
            "cosim --trace new",
            template(base, "trace-new", &[]),
            cosim("1", &["--trace", "run.vcd"]),
            vec![],
        ));
        v.push(Scenario::new(
            "cosim --trace forced rewrite",
            template(base, "trace-forced", &[cosim("1", &both)]),
            cosim("2", &[&both[..], &["--force"]].concat()),
            vec![],
        ));
    } else {
        println!("faults: cosim --trace: skipped (Verilator is not installed)");
    }
    v
}

#[test]
fn every_write_and_rename_of_compare_and_cosim_trace_stopped_out_of_space_killed_and_locked() {
    let base = tempfile::tempdir().unwrap();
    let scenarios = compare_and_trace_scenarios(base.path());
    let mut stopped = Tally::default();
    sweep(&scenarios, "exit", &mut stopped);
    stopped.report("stopped after the n-th write/rename (compare, cosim --trace)");
    let mut full = Tally::default();
    sweep(&scenarios, "enospc", &mut full);
    full.report("ENOSPC injected at the n-th write/rename (compare, cosim --trace)");

    // SIGKILL at fractions of the run, most of which land in training, the BER run or the
    // co-simulation writing its VCD.
    let mut killed = Tally::default();
    let mut hits = BTreeMap::new();
    for s in &scenarios {
        for frac in [0.2, 0.5, 0.8] {
            let name = s.name.clone();
            let stage_of = move |_: &Path| name.clone();
            if let Some(r) = kill_case(s, Err(s.seconds.mul_f64(frac)), &stage_of, &mut hits) {
                killed.add(r);
            }
        }
    }
    for (stage, n) in &hits {
        if stage == AFTER {
            println!("faults: SIGKILL {stage} (not counted): {n}");
        } else {
            println!("faults: SIGKILL during {stage}: {n} cases");
        }
    }
    killed.report("SIGKILL during compare and cosim --trace");

    // A second comparison into the same --out while the first is paused at each point.
    let mut locked = Tally::default();
    for s in scenarios.iter().filter(|s| s.cmd[0] == "compare") {
        for n in 1..=s.points {
            locked.add(concurrent_case(s, &compare("0", &["--force"]), n));
        }
    }
    locked.report("concurrent writers (compare)");
}

// ---------------------------------------------------------------------------------------
// 2 on a real file system: a small tmpfs (as root, where mount works).

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path, bytes: usize) -> Option<Mount> {
    fs::create_dir_all(dir).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
        .arg(dir)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| Mount(dir.to_path_buf()))
}

/// Whether Verilator is installed (required where `KAQ_REQUIRE_VERILATOR=1`).
fn verilator() -> bool {
    let found = Command::new("verilator")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if std::env::var_os("KAQ_REQUIRE_VERILATOR").is_some_and(|v| v == "1") {
        assert!(
            found,
            "KAQ_REQUIRE_VERILATOR=1 but verilator is not installed"
        );
    }
    found
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn codegen_into_a_full_tmpfs_keeps_the_old_output_and_reruns() {
    let base = tempfile::tempdir().unwrap();
    let probe = base.path().join("probe");
    if !is_root() || mount_tmpfs(&probe, 1 << 20).is_none() {
        println!("faults: ENOSPC on a small tmpfs: skipped (needs root and mount)");
        return;
    }
    let out = |lanes: &str| {
        let mut c = codegen(lanes, &[]);
        let i = c.iter().position(|a| a == "rtl").unwrap();
        c[i] = "mnt/rtl".into();
        c
    };
    let mut tally = Tally::default();
    for (name, setup, cmd) in [
        ("new", None, out("2")),
        ("rewrite", Some(out("2")), out("4")),
    ] {
        // The uninterrupted result, on an ordinary file system.
        let reference = template(base.path(), &format!("tmpfs-{name}"), &[]);
        fs::create_dir(reference.join("mnt")).unwrap();
        let mut old = Tree::new();
        if let Some(s) = &setup {
            assert!(kaq(&reference, s, None).status.success());
            old = normal(&tree(&reference.join("mnt")));
        }
        assert!(kaq(&reference, &cmd, None).status.success());
        let new = normal(&tree(&reference.join("mnt")));
        let mut finished = false;
        for pages in 1..=512 {
            let root = base.path().join(format!("tmpfs-{name}-{pages}"));
            fs::create_dir_all(&root).unwrap();
            fs::copy(example_ir(), root.join("ir.json")).unwrap();
            let mnt = root.join("mnt");
            let Some(guard) = mount_tmpfs(&mnt, pages * 4096) else {
                panic!("mount failed after the probe worked");
            };
            if let Some(s) = &setup
                && !kaq(&root, s, None).status.success()
            {
                // Not even the old output fits.
                drop(guard);
                continue;
            }
            let run = kaq(&root, &cmd, None);
            let label = format!("tmpfs {name} {pages} pages");
            if run.status.success() {
                let got = normal(&tree(&mnt));
                tally.add(if got == new {
                    Ok(())
                } else {
                    Err(format!("{label}: differs at {:?}", diff(&got, &new)))
                });
                finished = true;
                drop(guard);
                break;
            }
            let err = stderr(&run);
            let r = (|| {
                if run.status.code() != Some(1) || !err.contains("No space left on device") {
                    return Err(format!("{label}: exited {:?}: {err}", run.status.code()));
                }
                let dirs = ["rtl"];
                let seen = recovered(&mnt, &dirs);
                old_or_new(&seen, &view(&old), &view(&new), &dirs)
                    .map_err(|e| format!("{label}: {e}"))?;
                // With room again, the rerun succeeds and leaves exactly the new output.
                let grown = Command::new("mount")
                    .args(["-o", "remount,size=8m"])
                    .arg(&mnt)
                    .status()
                    .is_ok_and(|s| s.success());
                if !grown {
                    return Err(format!("{label}: cannot grow the tmpfs"));
                }
                let rerun = kaq(&root, &cmd, None);
                if !rerun.status.success() {
                    return Err(format!("{label}: the rerun failed: {}", stderr(&rerun)));
                }
                let got = normal(&tree(&mnt));
                if got != new {
                    return Err(format!("{label}: after the rerun: {:?}", diff(&got, &new)));
                }
                Ok(())
            })();
            tally.add(r);
            drop(guard);
        }
        assert!(finished, "{name}: never fitted in 2 MiB");
    }
    tally.report("ENOSPC on a small tmpfs (codegen)");
}
