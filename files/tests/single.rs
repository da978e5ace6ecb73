//! Single-file outputs and capped inputs: atomic replacement, device files and FIFOs written
//! straight and never replaced, other kinds refused, oversized and endless inputs refused.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use kaq_files::{
    FileKind, FilesError, INPUT_LIMIT, check_writable, read_capped, read_text, write_file,
    write_new,
};

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

#[test]
fn a_regular_file_is_replaced_atomically_keeping_its_permissions() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("out.json");
    write_file(&path, b"first, and longer than the second").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let before = fs::metadata(&path).unwrap().ino();
    write_file(&path, b"second").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"second");
    let meta = fs::metadata(&path).unwrap();
    // A new inode: renamed over, not rewritten in place.
    assert_ne!(meta.ino(), before);
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    assert_eq!(names(tmp.path()), ["out.json"]);
}

#[test]
fn a_new_file_gets_the_permissions_of_an_ordinary_new_file() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = tmp.path().join("ours");
    let plain = tmp.path().join("plain");
    write_file(&ours, b"x").unwrap();
    fs::write(&plain, b"x").unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode();
    assert_eq!(mode(&ours), mode(&plain));
}

#[test]
fn a_symlink_to_a_regular_file_replaces_the_target_and_stays_a_link() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real.txt");
    let link = tmp.path().join("link.txt");
    fs::write(&real, b"old").unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    write_file(&link, b"new").unwrap();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(&real).unwrap(), b"new");
    assert_eq!(names(tmp.path()), ["link.txt", "real.txt"]);
}

#[test]
fn dev_null_is_written_straight_and_never_replaced() {
    let before = fs::metadata("/dev/null").unwrap();
    check_writable(Path::new("/dev/null")).unwrap();
    write_file(Path::new("/dev/null"), b"discarded").unwrap();
    write_new(Path::new("/dev/null"), b"discarded").unwrap();
    let after = fs::metadata("/dev/null").unwrap();
    assert!(after.file_type().is_char_device());
    assert_eq!((after.ino(), after.rdev()), (before.ino(), before.rdev()));
    assert!(
        !names(Path::new("/dev"))
            .iter()
            .any(|n| n.starts_with(".kaq-"))
    );
}

#[test]
fn a_fifo_is_written_straight_to_its_reader_and_stays_a_fifo() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("pipe");
    mkfifo(&fifo);
    check_writable(&fifo).unwrap();
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            fs::File::open(&fifo)
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            got
        })
    };
    write_file(&fifo, b"through the pipe").unwrap();
    assert_eq!(reader.join().unwrap(), b"through the pipe");
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(names(tmp.path()), ["pipe"]);
}

fn assert_not_regular(result: Result<(), FilesError>, path: &Path, kind: FileKind) {
    match result {
        Err(e @ FilesError::NotRegular { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains(&kind.to_string()), "{msg}");
            assert!(matches!(e, FilesError::NotRegular { kind: k, .. } if k == kind));
        }
        other => panic!(
            "{}: expected a refusal as {kind}, got {other:?}",
            path.display()
        ),
    }
}

#[test]
fn directories_sockets_block_devices_and_broken_links_are_refused_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a-dir");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("inside"), b"kept").unwrap();
    let socket = tmp.path().join("sock");
    let _listener = UnixListener::bind(&socket).unwrap();
    let broken = tmp.path().join("broken");
    std::os::unix::fs::symlink(tmp.path().join("nowhere"), &broken).unwrap();
    let dir_link = tmp.path().join("dir-link");
    std::os::unix::fs::symlink(&dir, &dir_link).unwrap();
    for (path, kind) in [
        (&dir, FileKind::Directory),
        (&dir_link, FileKind::Directory),
        (&socket, FileKind::Socket),
        (&broken, FileKind::BrokenSymlink),
    ] {
        assert_not_regular(write_file(path, b"x"), path, kind);
        assert_not_regular(write_new(path, b"x"), path, kind);
        assert_not_regular(check_writable(path), path, kind);
    }
    assert_eq!(fs::read(dir.join("inside")).unwrap(), b"kept");
    assert!(
        fs::symlink_metadata(&socket)
            .unwrap()
            .file_type()
            .is_socket()
    );
    assert!(!tmp.path().join("nowhere").exists());
    assert_eq!(names(tmp.path()), ["a-dir", "broken", "dir-link", "sock"]);
    // A block device is only checked, never written, even by a test: the check is the
    // classification `write_file` uses.
    let block = Path::new("/dev/loop0");
    if fs::metadata(block).is_ok_and(|m| m.file_type().is_block_device()) {
        assert_not_regular(check_writable(block), block, FileKind::BlockDevice);
    }
}

#[test]
fn missing_or_non_directory_parents_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no/such/dir/out.json");
    match write_file(&missing, b"x") {
        Err(FilesError::NoDirectory { dir, .. }) => assert_eq!(dir, tmp.path().join("no/such/dir")),
        other => panic!("{other:?}"),
    }
    let file = tmp.path().join("file");
    fs::write(&file, b"").unwrap();
    match check_writable(&file.join("out.json")) {
        // The parent "file" is a regular file.
        Err(FilesError::NotDirectory { path, kind }) => {
            assert_eq!((path, kind), (file.clone(), FileKind::Regular));
        }
        other => panic!("{other:?}"),
    }
    let long = tmp.path().join("n".repeat(256));
    assert!(matches!(
        check_writable(&long),
        Err(FilesError::NameTooLong { limit: 255, .. })
    ));
    assert!(matches!(
        write_file(Path::new("/"), b"x"),
        Err(FilesError::NoFileName { .. })
    ));
    assert_eq!(names(tmp.path()), ["file"]);
}

#[test]
fn the_longest_legal_name_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("n".repeat(255));
    check_writable(&path).unwrap();
    write_file(&path, b"ok").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"ok");
}

#[test]
fn check_writable_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    check_writable(&tmp.path().join("new.json")).unwrap();
    fs::write(tmp.path().join("old.json"), b"old").unwrap();
    check_writable(&tmp.path().join("old.json")).unwrap();
    assert_eq!(names(tmp.path()), ["old.json"]);
    assert_eq!(fs::read(tmp.path().join("old.json")).unwrap(), b"old");
}

#[test]
fn write_new_refuses_an_existing_file_and_creates_a_missing_one() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("once.txt");
    write_new(&path, b"first").unwrap();
    match write_new(&path, b"second") {
        Err(e @ FilesError::Exists { .. }) => {
            assert!(e.to_string().contains("once.txt"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), b"first");
    assert_eq!(names(tmp.path()), ["once.txt"]);
}

#[test]
fn read_capped_refuses_endless_and_special_inputs_without_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("pipe");
    mkfifo(&fifo);
    let cases: [(PathBuf, FileKind); 3] = [
        (PathBuf::from("/dev/zero"), FileKind::CharDevice),
        (fifo, FileKind::Fifo),
        (tmp.path().to_path_buf(), FileKind::Directory),
    ];
    for (path, kind) in &cases {
        match read_capped(path, 1 << 20) {
            Err(e @ FilesError::NotRegular { .. }) => {
                assert!(e.to_string().contains(&path.display().to_string()), "{e}");
                assert!(matches!(e, FilesError::NotRegular { kind: k, .. } if k == *kind));
            }
            other => panic!("{}: {other:?}", path.display()),
        }
    }
}

#[test]
fn read_capped_reads_up_to_the_limit_and_names_a_larger_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("model.json");
    fs::write(&path, b"0123456789").unwrap();
    assert_eq!(read_capped(&path, 10).unwrap(), b"0123456789");
    match read_capped(&path, 9) {
        Err(e @ FilesError::TooLarge { limit: 9, .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("model.json") && msg.contains('9'), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        read_capped(&tmp.path().join("missing"), 10),
        Err(FilesError::Io { .. })
    ));
}

#[test]
fn a_full_device_reports_the_write_error_naming_it() {
    // /dev/full fails every write with ENOSPC, as a full disk does.
    match write_file(Path::new("/dev/full"), b"no room") {
        Err(e @ FilesError::Io { .. }) => assert!(e.to_string().contains("/dev/full"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn read_text_names_a_file_that_is_not_utf8_and_reads_text_up_to_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("model.json");
    fs::write(&path, b"{\"a\": \"\xff\"}").unwrap();
    match read_text(&path, INPUT_LIMIT) {
        Err(e @ FilesError::NotText { .. }) => {
            assert!(e.to_string().contains("model.json"), "{e}");
            assert!(e.is_usage());
        }
        other => panic!("{other:?}"),
    }
    fs::write(&path, "{\"a\": \"é\"}").unwrap();
    assert_eq!(read_text(&path, 11).unwrap(), "{\"a\": \"é\"}");
    assert!(matches!(
        read_text(&path, 10),
        Err(FilesError::TooLarge { limit: 10, .. })
    ));
    assert!(matches!(
        read_text(Path::new("/dev/zero"), INPUT_LIMIT),
        Err(FilesError::NotRegular {
            kind: FileKind::CharDevice,
            ..
        })
    ));
    assert_eq!(INPUT_LIMIT, 64 * 1024 * 1024);
}

#[test]
fn stale_temp_files_of_the_target_are_removed_by_its_next_write_live_and_foreign_ones_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let prefix = kaq_files::temp_prefix("out.json".as_ref());
    let dead = dir.join(format!("{prefix}dead01"));
    fs::write(&dead, b"half a file").unwrap();
    // A living writer holds the lock of its temporary file.
    let live = dir.join(format!("{prefix}live01"));
    let held = fs::File::create(&live).unwrap();
    held.try_lock().unwrap();
    let other = dir.join(format!(
        "{}dead02",
        kaq_files::temp_prefix("other.json".as_ref())
    ));
    fs::write(&other, b"").unwrap();
    let foreign = dir.join(format!("{}user", &prefix[..prefix.len() - 1]));
    fs::create_dir(&foreign).unwrap();
    write_file(&dir.join("out.json"), b"new").unwrap();
    let mut want = vec![
        "out.json".to_string(),
        live.file_name().unwrap().to_string_lossy().into_owned(),
        other.file_name().unwrap().to_string_lossy().into_owned(),
        foreign.file_name().unwrap().to_string_lossy().into_owned(),
    ];
    want.sort();
    assert_eq!(names(dir), want);
    drop(held);
    write_file(&dir.join("out.json"), b"newer").unwrap();
    want.retain(|n| !n.contains("live01"));
    assert_eq!(names(dir), want);
}

#[test]
fn temp_names_fit_for_the_longest_legal_output_name() {
    let tmp = tempfile::tempdir().unwrap();
    let longest = tmp.path().join("x".repeat(kaq_files::NAME_MAX));
    check_writable(&longest).unwrap();
    write_file(&longest, b"1").unwrap();
    write_file(&longest, b"2").unwrap();
    assert_eq!(fs::read(&longest).unwrap(), b"2");
    let too_long = tmp.path().join("x".repeat(kaq_files::NAME_MAX + 1));
    assert!(matches!(
        check_writable(&too_long),
        Err(FilesError::NameTooLong { limit: 255, .. })
    ));
    assert_eq!(names(tmp.path()), vec!["x".repeat(kaq_files::NAME_MAX)]);
}
