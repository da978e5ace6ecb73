//! `PendingFile`: a file another writer fills by path replaces its target only on commit, a
//! dropped one leaves the target and nothing else; devices are written straight, directories
//! refused. `Staging::keep_old`: the old target's files are carried over without modifying it.

use std::fs;

use kaq_files::{FilesError, PendingFile, Staging};

#[test]
fn a_pending_file_replaces_its_target_only_on_commit() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("run.vcd");
    fs::write(&target, "old").unwrap();
    let pending = PendingFile::begin(&target).unwrap();
    assert!(!pending.is_straight());
    assert_ne!(pending.path(), target.as_path());
    assert_eq!(pending.path().parent(), target.parent());
    fs::write(pending.path(), "new").unwrap();
    assert_eq!(fs::read_to_string(&target).unwrap(), "old");
    pending.commit().unwrap();
    assert_eq!(fs::read_to_string(&target).unwrap(), "new");
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "{names:?}");

    // Dropped without commit: the target stays, the temporary file goes.
    let pending = PendingFile::begin(&target).unwrap();
    fs::write(pending.path(), "half").unwrap();
    drop(pending);
    assert_eq!(fs::read_to_string(&target).unwrap(), "new");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_device_is_written_straight_and_a_directory_refused() {
    let null = PendingFile::begin(std::path::Path::new("/dev/null")).unwrap();
    assert!(null.is_straight());
    assert_eq!(null.path(), std::path::Path::new("/dev/null"));
    null.commit().unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        PendingFile::begin(dir.path()),
        Err(FilesError::NotRegular { .. })
    ));
}

#[test]
fn keep_old_carries_the_old_files_over_without_touching_them() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    fs::create_dir_all(target.join("sub")).unwrap();
    fs::write(target.join("a.txt"), "a").unwrap();
    fs::write(target.join("sub/b.txt"), "b").unwrap();
    fs::write(target.join("sub/.kaq-tmp-0-x"), "dead").unwrap();
    let staging = Staging::begin(&target).unwrap();
    staging.keep_old().unwrap();
    staging
        .write(std::path::Path::new("a.txt"), b"rewritten")
        .unwrap();
    // The old target is untouched until the swap.
    assert_eq!(fs::read_to_string(target.join("a.txt")).unwrap(), "a");
    staging.commit().unwrap();
    assert_eq!(
        fs::read_to_string(target.join("a.txt")).unwrap(),
        "rewritten"
    );
    assert_eq!(fs::read_to_string(target.join("sub/b.txt")).unwrap(), "b");
    assert!(!target.join("sub/.kaq-tmp-0-x").exists());
}
