//! Output-directory locks: a second holder is refused naming the first or waits for it, and
//! the lock survives a swap of the directory it guards.

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kaq_files::{DirLock, FileKind, FilesError, Staging, Wait};

fn refused_holder(result: Result<DirLock, FilesError>) -> Option<String> {
    match result {
        Err(FilesError::Locked { holder, .. }) => holder,
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn a_second_holder_is_refused_naming_the_first_until_it_drops() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let first = DirLock::acquire(&out, Wait::No).unwrap();
    let err = DirLock::acquire(&out, Wait::No).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&out.display().to_string()), "{msg}");
    let holder = refused_holder(Err(err)).expect("the holder is named");
    assert!(
        holder.starts_with(&format!("pid {}:", std::process::id())),
        "{holder}"
    );
    drop(first);
    let again = DirLock::acquire(&out, Wait::No).unwrap();
    assert!(again.lock_path().is_file());
    // The lock does not create the directory it guards.
    assert!(!out.exists());
}

#[test]
fn a_waiting_holder_gets_the_lock_once_the_first_releases_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let first = DirLock::acquire(&out, Wait::No).unwrap();
    let released = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (out, released) = (out.clone(), released.clone());
        std::thread::spawn(move || {
            let lock = DirLock::acquire(&out, Wait::Yes).unwrap();
            (released.load(Ordering::SeqCst), lock)
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(!waiter.is_finished());
    released.store(true, Ordering::SeqCst);
    drop(first);
    let (was_released, _lock) = waiter.join().unwrap();
    assert!(was_released);
}

#[test]
fn the_lock_guards_the_directory_across_a_staging_swap() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("rtl");
    let lock = DirLock::acquire(&out, Wait::No).unwrap();
    let s = Staging::begin(&out).unwrap();
    s.write("top.v".as_ref(), b"module").unwrap();
    s.commit().unwrap();
    assert!(refused_holder(DirLock::acquire(&out, Wait::No)).is_some());
    drop(lock);
    DirLock::acquire(&out, Wait::No).unwrap();
    // The lock file lives beside the output, never inside it.
    let inside: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(inside, ["top.v"]);
}

#[test]
fn a_file_is_not_locked_as_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("out");
    fs::write(&file, b"").unwrap();
    assert!(matches!(
        DirLock::acquire(&file, Wait::No),
        Err(FilesError::NotDirectory {
            kind: FileKind::Regular,
            ..
        })
    ));
    assert!(matches!(
        DirLock::acquire(&file.join("out"), Wait::No),
        Err(FilesError::NotDirectory {
            kind: FileKind::Regular,
            ..
        })
    ));
    // Missing parents are created, as for a staged output.
    let nested = tmp.path().join("new/parent/out");
    DirLock::acquire(&nested, Wait::No).unwrap();
    assert!(tmp.path().join("new/parent").is_dir() && !nested.exists());
}

#[test]
fn a_symlink_and_the_directory_it_names_share_one_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("out");
    fs::create_dir(&real).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let _held = DirLock::acquire(&link, Wait::No).unwrap();
    assert!(refused_holder(DirLock::acquire(&real, Wait::No)).is_some());
    let dotted = real.join("..").join("out").join(".");
    assert!(refused_holder(DirLock::acquire(&dotted, Wait::No)).is_some());
}
