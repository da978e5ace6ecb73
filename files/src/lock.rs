//! Advisory exclusive locks on output directories (docs/outputs.md, "Concurrent runs").
//!
//! The lock of a directory `parent/name` is the file `parent/.kaq-lock-<h>` beside it, not
//! inside it, so it stays the same file while [`crate::Staging`] swaps the directory itself.
//! The holder writes its pid and command line into the file; a second run that finds the lock
//! taken reads them back into [`FilesError::Locked`], or waits. The lock is an `flock`-style
//! lock ([`std::fs::File::try_lock`]): the operating system releases it when the holder exits,
//! however it exits, so a lock file left behind never blocks anyone. Lock files are kept.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::fault::{self, Op};
use crate::names::{sibling, split};
use crate::{FileKind, FilesError};

/// Whether [`DirLock::acquire`] waits for a lock held by another process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Fail at once with [`FilesError::Locked`], naming the holder.
    No,
    /// Block until the holder releases the lock.
    Yes,
}

/// An exclusive advisory lock on an output directory, released on drop.
#[derive(Debug)]
pub struct DirLock {
    file: File,
    dir: PathBuf,
    lock_path: PathBuf,
}

impl DirLock {
    /// Locks the output directory `dir`, which need not exist yet (missing parent directories
    /// are created, as [`crate::Staging::begin`] does). The lock
    /// is per open file, so a second `acquire` of the same directory in this process is
    /// refused like one from another process.
    pub fn acquire(dir: &Path, wait: Wait) -> Result<DirLock, FilesError> {
        // An existing directory is locked by its real name, so a symbolic link to it and `.`
        // lock the same file.
        let real = match FileKind::probe(dir)? {
            None => dir.to_path_buf(),
            Some(FileKind::Directory) => {
                fs::canonicalize(dir).map_err(FilesError::io("cannot resolve", dir))?
            }
            Some(kind) => {
                return Err(FilesError::NotDirectory {
                    path: dir.to_path_buf(),
                    kind,
                });
            }
        };
        let (parent, name) = split(&real)?;
        match FileKind::probe(&parent)? {
            Some(FileKind::Directory) => {}
            Some(kind) => return Err(FilesError::NotDirectory { path: parent, kind }),
            None => {
                fs::create_dir_all(&parent).map_err(FilesError::io("cannot create", &parent))?
            }
        }
        let lock_path = sibling(&parent, &name, "lock");
        // Never truncate on open: the file holds the current holder's description.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(FilesError::io("cannot open the lock file", &lock_path))?;
        match (file.try_lock(), wait) {
            (Ok(()), _) => {}
            (Err(std::fs::TryLockError::WouldBlock), Wait::No) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = text.trim();
                return Err(FilesError::Locked {
                    path: dir.to_path_buf(),
                    holder: (!holder.is_empty()).then(|| holder.to_string()),
                });
            }
            (Err(std::fs::TryLockError::WouldBlock), Wait::Yes) => file
                .lock()
                .map_err(FilesError::io("cannot lock", &lock_path))?,
            (Err(std::fs::TryLockError::Error(e)), _) => {
                return Err(FilesError::io("cannot lock", &lock_path)(e));
            }
        }
        let command: Vec<String> = std::env::args().collect();
        let holder = format!(
            "pid {}: {} (locking {})\n",
            std::process::id(),
            command.join(" "),
            dir.display()
        );
        fault::point(Op::Write, &lock_path)
            .and_then(|done| {
                file.set_len(0)?;
                file.seek(SeekFrom::Start(0))?;
                file.write_all(holder.as_bytes())?;
                done.done();
                Ok(())
            })
            .map_err(FilesError::io("cannot write the lock file", &lock_path))?;
        Ok(DirLock {
            file,
            dir: dir.to_path_buf(),
            lock_path,
        })
    }

    /// The locked directory, as given to [`DirLock::acquire`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lock file beside the directory.
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // A released lock names no holder; closing the file releases the lock.
        let _ = self.file.set_len(0);
    }
}
