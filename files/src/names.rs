//! The names of kaq's own bookkeeping files beside an output, and their clean-up.
//!
//! Every such name starts with `.kaq-`:
//! * `.kaq-tmp-<h>-XXXXXX`: a single file being written ([`crate::write_file`]), locked while
//!   its writer lives; the next write of the same target removes those whose writer died
//!   ([`remove_stale_temps`]);
//! * `.kaq-staging-<h>-XXXXXX`: a multi-file output being built ([`crate::Staging`]), locked
//!   while its writer lives;
//! * `.kaq-old-<h>`: the previous output of a target during a swap;
//! * `.kaq-trash-<h>`: a previous output being deleted after a swap;
//! * `.kaq-lock-<h>`: the lock file of a target ([`crate::DirLock`]), kept.
//!
//! `<h>` is a fixed 16-digit digest of the target's file name (FNV-1a, 64 bit), so the
//! names stay short for any legal target name and two targets in one directory never share
//! bookkeeping. `XXXXXX` are random characters from `tempfile`.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::{FileKind, FilesError, NAME_MAX};

pub(crate) const PREFIX: &str = ".kaq-";
pub(crate) const TMP: &str = ".kaq-tmp-";
pub(crate) const STAGING: &str = ".kaq-staging-";

/// Whether `name` (a file name, not a path) is one of kaq's own bookkeeping files, which a
/// check for files kaq did not write must not count.
pub fn is_kaq_file(name: &OsStr) -> bool {
    name.as_bytes().starts_with(PREFIX.as_bytes())
}

/// The directory `path` lives in and its file name. An empty parent is `.`.
pub(crate) fn split(path: &Path) -> Result<(PathBuf, OsString), FilesError> {
    let name = path.file_name().ok_or_else(|| FilesError::NoFileName {
        path: path.to_path_buf(),
    })?;
    if name.len() > NAME_MAX {
        return Err(FilesError::NameTooLong {
            path: path.to_path_buf(),
            limit: NAME_MAX,
        });
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name.to_os_string()))
}

/// The FNV-1a digest of a file name, as 16 hexadecimal digits.
fn digest(name: &OsStr) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The sibling of the target `dir/name` that kaq uses as `role` (`old`, `trash`, `lock`).
pub(crate) fn sibling(dir: &Path, name: &OsStr, role: &str) -> PathBuf {
    dir.join(format!("{PREFIX}{role}-{}", digest(name)))
}

/// The prefix of the temporary files of the single-file target `name`: 32 bytes with the
/// random suffix, whatever the length of `name`.
#[doc(hidden)]
pub fn temp_prefix(name: &OsStr) -> String {
    format!("{TMP}{}-", digest(name))
}

/// Removes the temporary files of the single-file target `dir/name` whose writer has died
/// (killed mid-write: its lock is free); a living writer's file is left. Returns what it
/// removed.
pub(crate) fn remove_stale_temps(dir: &Path, name: &OsStr) -> Result<Vec<PathBuf>, FilesError> {
    let prefix = temp_prefix(name);
    let mut removed = Vec::new();
    let entries = fs::read_dir(dir).map_err(FilesError::io("cannot list", dir))?;
    for entry in entries {
        let entry = entry.map_err(FilesError::io("cannot list", dir))?;
        if !entry.file_name().as_bytes().starts_with(prefix.as_bytes()) {
            continue;
        }
        let path = entry.path();
        let regular = entry.file_type().map(FileKind::of).ok() == Some(FileKind::Regular);
        if regular && !in_use(&path) {
            remove_all(&path)?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// The prefix of the staging directories of the target `name`.
pub(crate) fn staging_prefix(name: &OsStr) -> String {
    format!("{STAGING}{}-", digest(name))
}

/// Whether the file or directory at `path` is locked by a living kaq process (a writer holds
/// an exclusive lock on its temporary file or staging directory for as long as it lives).
fn in_use(path: &Path) -> bool {
    match File::open(path) {
        Ok(f) => f.try_lock().is_err(),
        // Gone already, or unreadable: not ours to remove.
        Err(_) => true,
    }
}

/// Removes a file or directory tree; something already gone is not an error.
pub(crate) fn remove_all(path: &Path) -> Result<(), FilesError> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(FilesError::io("cannot remove", path)(e)),
        _ => Ok(()),
    }
}

/// Removes `dir`'s stale temporary files and staging directories whose writers have died,
/// and finished swaps' trash, whichever target they belonged to. Leaves everything else,
/// in particular `.kaq-old-*` (possibly the only copy of an output; [`crate::Staging::begin`]
/// of its target restores or removes it) and lock files. Returns what it removed.
pub fn remove_stale(dir: &Path) -> Result<Vec<PathBuf>, FilesError> {
    let mut removed = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(FilesError::io("cannot list", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(FilesError::io("cannot list", dir))?;
        let name = entry.file_name();
        let bytes = name.as_bytes();
        let path = entry.path();
        let kind = entry.file_type().map(FileKind::of).ok();
        let stale = if bytes.starts_with(TMP.as_bytes()) {
            kind == Some(FileKind::Regular) && !in_use(&path)
        } else if bytes.starts_with(STAGING.as_bytes()) {
            kind == Some(FileKind::Directory) && !in_use(&path)
        } else {
            bytes.starts_with(format!("{PREFIX}trash-").as_bytes())
        };
        if stale {
            remove_all(&path)?;
            removed.push(path);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_fnv1a() {
        // Published FNV-1a 64-bit test vectors.
        assert_eq!(digest(OsStr::new("")), "cbf29ce484222325");
        assert_eq!(digest(OsStr::new("a")), "af63dc4c8601ec8c");
        assert_eq!(digest(OsStr::new("foobar")), "85944171f73967e8");
    }

    #[test]
    fn bookkeeping_names_are_short_for_the_longest_target_name() {
        let long = OsString::from("n".repeat(NAME_MAX));
        for role in ["old", "trash", "lock"] {
            let p = sibling(Path::new("."), &long, role);
            assert!(p.file_name().unwrap().len() < 40, "{}", p.display());
            assert!(is_kaq_file(p.file_name().unwrap()));
        }
        assert!(staging_prefix(&long).len() + 6 < 40);
        assert_eq!(temp_prefix(&long).len() + 6, 32);
        assert!(is_kaq_file(OsStr::new(&temp_prefix(&long))));
        assert!(!is_kaq_file(OsStr::new("kaq-top.v")));
        assert!(!is_kaq_file(OsStr::new(".kaqx")));
    }

    #[test]
    fn split_names_the_problem() {
        assert!(matches!(
            split(Path::new("/")),
            Err(FilesError::NoFileName { .. })
        ));
        let long = "x".repeat(NAME_MAX + 1);
        assert!(matches!(
            split(Path::new(&long)),
            Err(FilesError::NameTooLong {
                limit: NAME_MAX,
                ..
            })
        ));
        let (d, n) = split(Path::new("a.json")).unwrap();
        assert_eq!(
            (d.as_path(), n.as_os_str()),
            (Path::new("."), OsStr::new("a.json"))
        );
    }
}
