//! Single-file outputs and capped inputs (docs/outputs.md, "Single files").
//!
//! An output path is classified once, symbolic links followed:
//! * nothing there: a new file, created atomically in its (existing) directory;
//! * a regular file: replaced atomically. A symbolic link to a regular file replaces the
//!   link's target (the link stays); the replaced file keeps its permission bits;
//! * a character device or FIFO (`/dev/null`, a terminal, a pipe), or any path through a file
//!   descriptor alias (`/dev/stdout`, `/dev/stderr`, `/dev/fd/N`, `/proc/<pid>/fd/N`): written
//!   straight, opened for appending, never created, truncated or replaced. So
//!   `--json /dev/stdout > out.json` appends to what the shell opened;
//! * anything else (a directory, block device, socket, broken symbolic link): refused.
//!
//! "Atomically" means a temporary file `.kaq-tmp-<h>-XXXXXX` (`<h>` a digest of the target's
//! name, so 32 bytes for any legal name) in the same directory is written, synced and renamed
//! over the path, and the directory is synced (best effort): a reader sees the old complete
//! file or the new complete one, never a part, whatever interrupts the write. A temporary file
//! of the same target left by a killed writer (its lock free) is removed by the next write.

use std::fs::{self, OpenOptions, Permissions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use tempfile::{Builder, NamedTempFile};

use crate::fault::{self, Op};
use crate::names::{remove_stale_temps, split, temp_prefix};
use crate::{FileKind, FilesError};

/// How an output path is written.
#[derive(Debug)]
enum Target {
    /// Opened for appending and written in place.
    Straight,
    /// Written to a temporary file in `dir` and renamed to `path` (the symlink-free path of an
    /// existing file, or the path as given for a new one).
    Atomic {
        path: PathBuf,
        dir: PathBuf,
        name: std::ffi::OsString,
        existing: Option<Permissions>,
    },
}

/// Whether `path` names an existing file descriptor of a process rather than a file: one of
/// `/dev/stdout`, `/dev/stderr`, `/dev/fd/N`, `/proc/<pid>/fd/N`, or a symbolic link to one.
fn is_fd_alias(path: &Path) -> bool {
    let mut cur = path.to_path_buf();
    for _ in 0..40 {
        let parts: Vec<Component> = cur.components().collect();
        let name = |i: usize| match parts.get(i) {
            Some(Component::Normal(n)) => n.to_str(),
            _ => None,
        };
        if parts.first() == Some(&Component::RootDir)
            && name(1) == Some("dev")
            && (parts.len() == 3 && matches!(name(2), Some("stdout" | "stderr"))
                || parts.len() == 4 && name(2) == Some("fd"))
            || parts.first() == Some(&Component::RootDir)
                && name(1) == Some("proc")
                && parts.len() == 5
                && name(3) == Some("fd")
        {
            return true;
        }
        match fs::read_link(&cur) {
            Ok(t) if t.is_absolute() => cur = t,
            Ok(t) => cur = cur.parent().unwrap_or(Path::new("/")).join(t),
            Err(_) => return false,
        }
    }
    false
}

fn classify(path: &Path) -> Result<Target, FilesError> {
    let (dir, name) = split(path)?;
    let refuse = |kind| FilesError::NotRegular {
        path: path.to_path_buf(),
        kind,
    };
    match FileKind::probe(path)? {
        Some(FileKind::Directory) => Err(refuse(FileKind::Directory)),
        Some(_) if is_fd_alias(path) => Ok(Target::Straight),
        Some(FileKind::CharDevice | FileKind::Fifo) => Ok(Target::Straight),
        Some(FileKind::Regular) => {
            let real = fs::canonicalize(path).map_err(FilesError::io("cannot resolve", path))?;
            let meta = fs::metadata(&real).map_err(FilesError::io("cannot inspect", &real))?;
            let (dir, name) = split(&real)?;
            Ok(Target::Atomic {
                path: real,
                dir,
                name,
                existing: Some(meta.permissions()),
            })
        }
        Some(kind) => Err(refuse(kind)),
        None => match FileKind::probe(&dir)? {
            Some(FileKind::Directory) => Ok(Target::Atomic {
                path: path.to_path_buf(),
                dir,
                name,
                existing: None,
            }),
            Some(kind) => Err(FilesError::NotDirectory { path: dir, kind }),
            None => Err(FilesError::NoDirectory {
                path: path.to_path_buf(),
                dir,
            }),
        },
    }
}

/// A locked, empty temporary file for the target `dir/name`, with the permission bits of the
/// file it will replace, or those of a newly created file.
fn temp_in(
    dir: &Path,
    name: &std::ffi::OsStr,
    existing: Option<&Permissions>,
) -> Result<NamedTempFile, FilesError> {
    let temp = Builder::new()
        .prefix(&temp_prefix(name))
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(FilesError::io("cannot create a temporary file in", dir))?;
    if let Some(p) = existing {
        temp.as_file()
            .set_permissions(p.clone())
            .map_err(FilesError::io("cannot set the permissions of", temp.path()))?;
    }
    // Marks the file as in use for `remove_stale`; the lock dies with this process.
    let _ = temp.as_file().try_lock();
    Ok(temp)
}

/// Makes the directory entries of `dir` durable, where the platform can open a directory.
pub(crate) fn sync_dir(dir: &Path) {
    if !fault::syncs() {
        return;
    }
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn write(path: &Path, bytes: &[u8], replace: bool) -> Result<(), FilesError> {
    match classify(path)? {
        Target::Straight => {
            let mut file = OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(FilesError::io("cannot open", path))?;
            fault::point(Op::Write, path)
                .and_then(|done| {
                    file.write_all(bytes)?;
                    file.flush()?;
                    done.done();
                    Ok(())
                })
                .map_err(FilesError::io("cannot write", path))
        }
        Target::Atomic {
            path: real,
            dir,
            name,
            existing,
        } => {
            if existing.is_some() && !replace {
                return Err(FilesError::Exists {
                    path: path.to_path_buf(),
                });
            }
            // Best effort: a leftover that cannot be removed does not stop this write.
            let _ = remove_stale_temps(&dir, &name);
            let mut temp = temp_in(&dir, &name, existing.as_ref())?;
            fault::point(Op::Write, temp.path())
                .and_then(|done| {
                    temp.write_all(bytes)?;
                    if fault::syncs() {
                        temp.as_file().sync_all()?;
                    }
                    done.done();
                    Ok(())
                })
                .map_err(FilesError::io("cannot write", temp.path()))?;
            let done =
                fault::point(Op::Rename, &real).map_err(FilesError::io("cannot replace", path))?;
            let persisted = if replace {
                temp.persist(&real)
            } else {
                temp.persist_noclobber(&real)
            };
            match persisted {
                Ok(_) => done.done(),
                Err(e) if !replace && e.error.kind() == ErrorKind::AlreadyExists => {
                    return Err(FilesError::Exists {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) => return Err(FilesError::io("cannot replace", path)(e.error)),
            }
            sync_dir(&dir);
            Ok(())
        }
    }
}

/// Writes `bytes` to `path`: atomically replacing a regular file or creating a new one, or
/// straight into a character device or FIFO; refuses every other kind of path. A symbolic
/// link to a regular file replaces its target.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), FilesError> {
    write(path, bytes, true)
}

/// Like [`write_file`], but refuses ([`FilesError::Exists`]) to replace an existing regular
/// file, atomically: of two concurrent calls, one fails. Device files and FIFOs are written.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<(), FilesError> {
    write(path, bytes, false)
}

/// An output file that another writer fills by path (a simulator's VCD trace): the writer
/// writes [`PendingFile::path`], and [`PendingFile::commit`] puts the finished file in place.
/// For a regular or new file that path is a locked temporary file beside the output, renamed
/// over it by `commit` (a writer killed half-way leaves the old file or none, never a part);
/// for a character device or FIFO it is the output itself, written straight. Other kinds are
/// refused. Dropped without `commit`, the temporary file is removed and the output untouched.
#[derive(Debug)]
pub struct PendingFile {
    path: PathBuf,
    temp: Option<(NamedTempFile, PathBuf, PathBuf)>,
}

impl PendingFile {
    /// Classifies `path` as [`write_file`] does and prepares the file the writer fills.
    pub fn begin(path: &Path) -> Result<PendingFile, FilesError> {
        match classify(path)? {
            Target::Straight => Ok(PendingFile {
                path: path.to_path_buf(),
                temp: None,
            }),
            Target::Atomic {
                path: real,
                dir,
                name,
                existing,
            } => {
                let _ = remove_stale_temps(&dir, &name);
                let temp = temp_in(&dir, &name, existing.as_ref())?;
                Ok(PendingFile {
                    path: path.to_path_buf(),
                    temp: Some((temp, real, dir)),
                })
            }
        }
    }

    /// The path the writer writes: the temporary file, or the device or FIFO itself.
    pub fn path(&self) -> &Path {
        match &self.temp {
            Some((temp, _, _)) => temp.path(),
            None => &self.path,
        }
    }

    /// Whether the output is written straight (a character device or FIFO): then the writer's
    /// file cannot be read back.
    pub fn is_straight(&self) -> bool {
        self.temp.is_none()
    }

    /// Syncs the finished temporary file and renames it over the output (a no-op for a
    /// device or FIFO). Call it after the writer has closed the file.
    pub fn commit(self) -> Result<(), FilesError> {
        let Some((temp, real, dir)) = self.temp else {
            return Ok(());
        };
        fault::point(Op::Write, temp.path())
            .and_then(|done| {
                if fault::syncs() {
                    temp.as_file().sync_all()?;
                }
                done.done();
                Ok(())
            })
            .map_err(FilesError::io("cannot write", temp.path()))?;
        let done = fault::point(Op::Rename, &real)
            .map_err(FilesError::io("cannot replace", &self.path))?;
        temp.persist(&real)
            .map_err(|e| FilesError::io("cannot replace", &self.path)(e.error))?;
        done.done();
        sync_dir(&dir);
        Ok(())
    }
}

/// Checks, without writing, that [`write_file`] on `path` would not be refused: its kind, and
/// for a file to be created or replaced, that its directory exists and accepts a new file (a
/// temporary file is created there and removed at once).
pub fn check_writable(path: &Path) -> Result<(), FilesError> {
    match classify(path)? {
        Target::Straight => Ok(()),
        Target::Atomic { dir, name, .. } => temp_in(&dir, &name, None).map(drop),
    }
}

/// The size limit of kaq's input files (model files, IR files, configurations, sweep states):
/// 64 MiB, far above any file kaq writes (the largest IR of a 256×256 link is a few MiB).
pub const INPUT_LIMIT: u64 = 64 << 20;

/// [`read_capped`] as UTF-8 text; a file that is not UTF-8 is [`FilesError::NotText`].
pub fn read_text(path: &Path, limit: u64) -> Result<String, FilesError> {
    String::from_utf8(read_capped(path, limit)?).map_err(|_| FilesError::NotText {
        path: path.to_path_buf(),
    })
}

/// Reads the regular file at `path` (symbolic links followed) if it holds at most `limit`
/// bytes; refuses directories, device files and FIFOs (`/dev/zero`, `/dev/stdin`) without
/// opening them, and a larger file with [`FilesError::TooLarge`].
pub fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, FilesError> {
    let too_large = || FilesError::TooLarge {
        path: path.to_path_buf(),
        limit,
    };
    match FileKind::probe(path)? {
        Some(FileKind::Regular) | None => {}
        Some(kind) => {
            return Err(FilesError::NotRegular {
                path: path.to_path_buf(),
                kind,
            });
        }
    }
    let file = fs::File::open(path).map_err(FilesError::io("cannot open", path))?;
    let meta = file
        .metadata()
        .map_err(FilesError::io("cannot inspect", path))?;
    let kind = FileKind::of(meta.file_type());
    if kind != FileKind::Regular {
        // Replaced between the check and the open.
        return Err(FilesError::NotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(FilesError::io("cannot read", path))?;
    if bytes.len() as u64 > limit {
        // Grew while being read.
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::is_fd_alias;
    use std::path::Path;

    #[test]
    fn fd_aliases_are_recognised_lexically_and_through_links() {
        for p in [
            "/dev/stdout",
            "/dev/stderr",
            "/dev/fd/1",
            "/proc/self/fd/2",
            "/proc/1/fd/0",
        ] {
            assert!(is_fd_alias(Path::new(p)), "{p}");
        }
        for p in [
            "/dev/null",
            "/dev/shm/x",
            "dev/stdout",
            "/proc/self/status",
            "/tmp",
        ] {
            assert!(!is_fd_alias(Path::new(p)), "{p}");
        }
    }
}
