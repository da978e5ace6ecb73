//! Transactional output directories: a commit replaces the whole old output; an interruption
//! after any step of a commit is recovered by the next `begin` to the old complete output or
//! the new complete one, leaving no bookkeeping behind.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kaq_files::{CommitStep, FilesError, Staging, is_kaq_file};
use proptest::prelude::*;

type Tree = BTreeMap<PathBuf, Vec<u8>>;

/// Every regular file under `dir`, by path relative to it; `None` if `dir` does not exist.
fn read_tree(dir: &Path) -> Option<Tree> {
    fn walk(root: &Path, dir: &Path, out: &mut Tree) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    if !dir.exists() {
        return None;
    }
    let mut out = Tree::new();
    walk(dir, dir, &mut out);
    Some(out)
}

fn tree(files: &[(&str, &str)]) -> Tree {
    files
        .iter()
        .map(|(p, c)| (PathBuf::from(p), c.as_bytes().to_vec()))
        .collect()
}

fn stage(target: &Path, files: &Tree) -> Staging {
    let s = Staging::begin(target).unwrap();
    for (rel, bytes) in files {
        let final_path = s.write(rel, bytes).unwrap();
        assert_eq!(final_path, s.target().join(rel));
    }
    s
}

fn kaq_leftovers(parent: &Path) -> Vec<String> {
    fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| is_kaq_file(n))
        .map(|n| n.to_string_lossy().into_owned())
        .collect()
}

fn old_set() -> Tree {
    tree(&[
        ("top.v", "module old"),
        ("sub/layer0.v", "old layer"),
        ("only-old.txt", "gone after commit"),
    ])
}

fn new_set() -> Tree {
    tree(&[("top.v", "module new"), ("tb/tb.v", "testbench")])
}

#[test]
fn commit_creates_a_new_target() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("rtl");
    stage(&target, &new_set()).commit().unwrap();
    assert_eq!(read_tree(&target), Some(new_set()));
    assert_eq!(kaq_leftovers(tmp.path()), Vec::<String>::new());
}

#[test]
fn commit_replaces_the_old_output_completely() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("rtl");
    stage(&target, &old_set()).commit().unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o750)).unwrap();
    stage(&target, &new_set()).commit().unwrap();
    assert_eq!(read_tree(&target), Some(new_set()));
    let mode = fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o750);
    assert_eq!(kaq_leftovers(tmp.path()), Vec::<String>::new());
}

#[test]
fn a_staging_dropped_without_commit_leaves_the_target_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("rtl");
    stage(&target, &old_set()).commit().unwrap();
    drop(stage(&target, &new_set()));
    assert_eq!(read_tree(&target), Some(old_set()));
    assert_eq!(kaq_leftovers(tmp.path()), Vec::<String>::new());
}

/// After an interruption at `step`, which output `begin` recovers: the old one until the
/// staging directory is renamed into place, the new one from then on.
fn recovered_is_new(step: CommitStep) -> bool {
    matches!(step, CommitStep::NewInPlace | CommitStep::OldTrashed)
}

const STEPS: [CommitStep; 4] = [
    CommitStep::Synced,
    CommitStep::OldMovedAside,
    CommitStep::NewInPlace,
    CommitStep::OldTrashed,
];

#[test]
fn an_interrupted_commit_is_recovered_to_old_or_new_complete_output() {
    for step in STEPS {
        for had_old in [true, false] {
            let tmp = tempfile::tempdir().unwrap();
            let target = tmp.path().join("rtl");
            if had_old {
                stage(&target, &old_set()).commit().unwrap();
            }
            stage(&target, &new_set()).commit_interrupted(step).unwrap();
            // Something is left for recovery, except where a first commit has nothing to undo.
            assert!(
                !kaq_leftovers(tmp.path()).is_empty() || (!had_old && recovered_is_new(step)),
                "{step:?}"
            );
            let expected = if recovered_is_new(step) {
                Some(new_set())
            } else if had_old {
                Some(old_set())
            } else {
                None
            };
            Staging::recover(&target).unwrap();
            assert_eq!(read_tree(&target), expected, "{step:?}, old: {had_old}");
            assert_eq!(kaq_leftovers(tmp.path()), Vec::<String>::new(), "{step:?}");
            // And the next run succeeds.
            stage(&target, &new_set()).commit().unwrap();
            assert_eq!(read_tree(&target), Some(new_set()));
            assert_eq!(kaq_leftovers(tmp.path()), Vec::<String>::new());
        }
    }
}

#[test]
fn begin_recovers_before_staging() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("rtl");
    stage(&target, &old_set()).commit().unwrap();
    stage(&target, &new_set())
        .commit_interrupted(CommitStep::OldMovedAside)
        .unwrap();
    assert_eq!(read_tree(&target), None);
    let s = Staging::begin(&target).unwrap();
    assert_eq!(read_tree(&target), Some(old_set()));
    // Only the live staging directory remains.
    assert_eq!(kaq_leftovers(tmp.path()).len(), 1);
    drop(s);
    assert_eq!(kaq_leftovers(tmp.path()), Vec::<String>::new());
}

#[test]
fn a_removed_target_is_not_resurrected_from_a_half_deleted_old_output() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("rtl");
    stage(&target, &old_set()).commit().unwrap();
    stage(&target, &new_set())
        .commit_interrupted(CommitStep::OldTrashed)
        .unwrap();
    fs::remove_dir_all(&target).unwrap();
    Staging::recover(&target).unwrap();
    assert_eq!(read_tree(&target), None);
    assert_eq!(kaq_leftovers(tmp.path()), Vec::<String>::new());
}

#[test]
fn a_live_staging_of_the_same_or_another_target_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let live_b = stage(&b, &new_set());
    let live_a = stage(&a, &old_set());
    // Another begin of `a` (as a concurrent run without the lock would) spares both.
    let second_a = stage(&a, &new_set());
    assert!(live_a.path().is_dir() && live_b.path().is_dir());
    live_b.commit().unwrap();
    live_a.commit().unwrap();
    assert_eq!(read_tree(&a), Some(old_set()));
    assert_eq!(read_tree(&b), Some(new_set()));
    drop(second_a);
    assert_eq!(kaq_leftovers(tmp.path()), Vec::<String>::new());
}

#[test]
fn staged_paths_must_stay_inside_the_output() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Staging::begin(&tmp.path().join("rtl")).unwrap();
    for bad in ["../escape", "/etc/passwd", "", "a/../../b", "./x"] {
        assert!(
            matches!(
                s.write(Path::new(bad), b"x"),
                Err(FilesError::NotRelative { .. })
            ),
            "{bad}"
        );
    }
    assert!(!tmp.path().join("escape").exists());
}

#[test]
fn a_file_target_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("rtl");
    fs::write(&file, b"a file").unwrap();
    assert!(matches!(
        Staging::begin(&file),
        Err(FilesError::NotDirectory { .. })
    ));
    assert_eq!(fs::read(&file).unwrap(), b"a file");
    assert_eq!(kaq_leftovers(tmp.path()), Vec::<String>::new());
}

#[test]
fn a_symlinked_target_swaps_the_directory_it_points_to() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    let link = tmp.path().join("link");
    stage(&real, &old_set()).commit().unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    stage(&link, &new_set()).commit().unwrap();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(read_tree(&real), Some(new_set()));
}

/// File sets whose paths never collide as file and directory: directories are `d*`, files `f*`.
fn file_set() -> impl Strategy<Value = Tree> {
    let rel = (
        proptest::collection::vec(prop::sample::select(vec!["d0", "d1", "d2"]), 0..3),
        prop::sample::select(vec!["f0", "f1", "f2", "f3"]),
    )
        .prop_map(|(dirs, file)| dirs.iter().collect::<PathBuf>().join(file));
    proptest::collection::btree_map(rel, proptest::collection::vec(any::<u8>(), 0..64), 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn after_commit_the_target_is_exactly_the_new_set(
        old in proptest::option::of(file_set()),
        new in file_set(),
        interrupt in proptest::option::of(prop::sample::select(STEPS.to_vec())),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("out");
        if let Some(old) = &old {
            stage(&target, old).commit().unwrap();
        }
        let staging = stage(&target, &new);
        match interrupt {
            None => {
                staging.commit().unwrap();
                prop_assert_eq!(read_tree(&target), Some(new.clone()));
            }
            Some(step) => {
                staging.commit_interrupted(step).unwrap();
                Staging::recover(&target).unwrap();
                let got = read_tree(&target);
                let expected = if recovered_is_new(step) { Some(new.clone()) } else { old.clone() };
                prop_assert_eq!(got, expected);
            }
        }
        prop_assert_eq!(kaq_leftovers(tmp.path()), Vec::<String>::new());
    }
}

#[test]
fn remove_stale_removes_dead_bookkeeping_only() {
    use kaq_files::remove_stale;
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path();
    // Dead: nobody holds their locks.
    fs::write(p.join(".kaq-tmp-dead01"), b"half").unwrap();
    fs::create_dir(p.join(".kaq-staging-0123456789abcdef-dead01")).unwrap();
    fs::write(p.join(".kaq-staging-0123456789abcdef-dead01/top.v"), b"x").unwrap();
    fs::create_dir(p.join(".kaq-trash-0123456789abcdef")).unwrap();
    // Alive or precious: a locked temporary file, a live staging, an old output, a lock file,
    // and files that are not kaq's.
    let held = fs::File::create(p.join(".kaq-tmp-live01")).unwrap();
    held.try_lock().unwrap();
    let live = Staging::begin(&p.join("rtl")).unwrap();
    fs::create_dir(p.join(".kaq-old-0123456789abcdef")).unwrap();
    kaq_files::DirLock::acquire(&p.join("rtl"), kaq_files::Wait::No).unwrap();
    fs::write(p.join(".hidden"), b"user").unwrap();
    fs::write(p.join("kaq-tmp-not-ours"), b"user").unwrap();
    let mut removed: Vec<String> = remove_stale(p)
        .unwrap()
        .iter()
        .map(|r| r.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    removed.sort();
    assert_eq!(
        removed,
        [
            ".kaq-staging-0123456789abcdef-dead01",
            ".kaq-tmp-dead01",
            ".kaq-trash-0123456789abcdef"
        ]
    );
    let mut left = kaq_leftovers(p);
    left.sort();
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(left.contains(&".kaq-tmp-live01".to_string()));
    assert!(left.contains(&".kaq-old-0123456789abcdef".to_string()));
    assert!(live.path().is_dir());
    assert!(p.join(".hidden").is_file() && p.join("kaq-tmp-not-ours").is_file());
    drop(held);
}
