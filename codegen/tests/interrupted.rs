//! Fault injection on `write_design` (docs/outputs.md, "Output directories"): a write stopped
//! after every one of its steps, as a SIGKILL there would stop it, leaves the old complete
//! output or the new complete one; the next run succeeds without `--force` and leaves nothing
//! else behind. Also: stale temporary files are removed, not blamed as foreign, and a locked
//! directory is refused naming the holder.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::{Config, fixture};
use kaq_codegen::{
    CodegenError, Generated, MANIFEST, Options, generate, write_design, write_design_interrupted,
};
use kaq_files::{DirLock, Staging, Wait};
use kaq_model::lower::LinkFrames;

fn design(lanes: usize, top: &str, seed: u64) -> Generated {
    let ir = fixture("pgd-qpsk-2x2", &Config::default(), Some(4));
    let options = Options {
        lanes,
        top: top.to_string(),
        testbench_frames: 4,
        seed,
    };
    generate(&ir, &options, &LinkFrames).unwrap()
}

/// Every entry under `dir` by relative path: a file's bytes, a directory as `None`.
fn snapshot(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if p.is_dir() {
                out.insert(rel.clone(), None);
                walk(root, &p, out);
            } else {
                out.insert(rel, Some(fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// The names directly in `dir` other than `keep` and lock files.
fn leftovers(dir: &Path, keep: &str) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n != keep && !n.starts_with(".kaq-lock-"))
        .collect()
}

/// How the output directory looks before the interrupted write.
#[derive(Debug, Clone, Copy)]
enum Before {
    /// Absent.
    Absent,
    /// The complete output of another design.
    Old,
    /// Another design plus files kaq did not write (the write uses `force`).
    OldWithForeign,
}

fn prepare(target: &Path, before: Before, old: &Generated) {
    match before {
        Before::Absent => {}
        Before::Old => {
            write_design(old, target, false).unwrap();
        }
        Before::OldWithForeign => {
            write_design(old, target, false).unwrap();
            fs::write(target.join("notes.txt"), "mine").unwrap();
            fs::create_dir(target.join("sub")).unwrap();
            fs::write(target.join("sub/data.bin"), [1u8, 2, 3]).unwrap();
        }
    }
}

/// Stops the write of `new` after every step over the state `before`, checks old-or-new after
/// recovery and a clean rerun; returns the number of interrupted cases.
fn every_step(before: Before) -> usize {
    let old = design(2, "det", 3);
    let new = design(4, "det", 5);
    let force = matches!(before, Before::OldWithForeign);
    // The complete old and new outputs, written without interruption.
    let reference = tempfile::tempdir().unwrap();
    let reference_dir = reference.path().join("out");
    prepare(&reference_dir, before, &old);
    let old_snap = snapshot(&reference_dir);
    write_design(&new, &reference_dir, force).unwrap();
    let new_snap = snapshot(&reference_dir);
    assert_ne!(old_snap, new_snap);

    let mut cases = 0;
    for n in 1.. {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("out");
        prepare(&target, before, &old);
        let stopped = write_design_interrupted(&new, &target, force, n).unwrap();
        if !stopped {
            assert_eq!(
                snapshot(&target),
                new_snap,
                "{before:?}: the full write differs"
            );
            break;
        }
        cases += 1;
        // What any reader finds after the repair a next run starts with.
        Staging::recover(&target).unwrap();
        let got = snapshot(&target);
        let old_ok = match before {
            Before::Absent => got.is_empty(),
            _ => got == old_snap,
        };
        assert!(
            old_ok || got == new_snap,
            "{before:?}, stopped after step {n}: neither the old nor the new output: {:?}",
            got.keys()
        );
        // The rerun succeeds without --force (unless the directory holds foreign files).
        write_design(&new, &target, force).unwrap_or_else(|e| {
            panic!("{before:?}, stopped after step {n}: the rerun failed: {e}")
        });
        assert_eq!(snapshot(&target), new_snap, "{before:?}, step {n}: rerun");
        let left = leftovers(root.path(), "out");
        assert!(
            left.is_empty(),
            "{before:?}, step {n}: left behind {left:?}"
        );
        // The lock was released with the "killed" writer.
        DirLock::acquire(&target, Wait::No).unwrap();
    }
    // Every file, the kept files, the manifest and the four commit steps.
    assert_eq!(cases, new.files.len() + 2 + 4, "{before:?}");
    cases
}

#[test]
fn every_interruption_of_a_new_directory_leaves_nothing_or_the_new_output() {
    every_step(Before::Absent);
}

#[test]
fn every_interruption_of_a_rewrite_leaves_the_old_or_the_new_output() {
    every_step(Before::Old);
}

#[test]
fn every_interruption_of_a_forced_rewrite_keeps_the_foreign_files() {
    every_step(Before::OldWithForeign);
}

#[test]
fn stale_temporary_files_are_removed_not_blamed() {
    let g = design(2, "kaq_top", 1);
    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("rtl");
    write_design(&g, &target, false).unwrap();
    let clean = snapshot(&target);
    // What a writer killed mid-file leaves: an unlocked temporary file inside and beside.
    fs::write(target.join(".kaq-tmp-abc123"), "half").unwrap();
    fs::write(root.path().join(".kaq-tmp-def456"), "half").unwrap();
    write_design(&g, &target, false).unwrap();
    assert_eq!(snapshot(&target), clean);
    // A write killed mid-way through the staging directory leaves it behind; the rerun
    // removes it too.
    let other = design(4, "kaq_top", 2);
    assert!(write_design_interrupted(&other, &target, false, 3).unwrap());
    assert!(fs::read_dir(root.path()).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".kaq-staging-")
    }));
    write_design(&g, &target, false).unwrap();
    assert_eq!(snapshot(&target), clean);
    let left = leftovers(root.path(), "rtl");
    assert_eq!(
        left,
        [".kaq-tmp-def456"],
        "only the unrelated temp file stays"
    );
}

#[test]
fn a_locked_directory_is_refused_naming_the_holder() {
    let g = design(2, "kaq_top", 1);
    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("rtl");
    let lock = DirLock::acquire(&target, Wait::No).unwrap();
    let err = write_design(&g, &target, false).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CodegenError::Write(_)), "{err:?}");
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    assert!(!target.join(MANIFEST).exists(), "written despite the lock");
    drop(lock);
    write_design(&g, &target, false).unwrap();
}
