//! Transactional multi-file outputs (docs/outputs.md, "Output directories").
//!
//! [`Staging::begin`] creates `parent/.kaq-staging-<h>-XXXXXX` beside the target directory
//! `parent/name`; the caller fills it; [`Staging::commit`] syncs it and swaps it in:
//!
//! 1. every file and directory of the staging tree is synced;
//! 2. the old target (if any) is renamed to `.kaq-old-<h>`;
//! 3. the staging directory is renamed to the target;
//! 4. `.kaq-old-<h>` is renamed to `.kaq-trash-<h>`, which is then removed.
//!
//! Each rename is followed by a sync of `parent`. `.kaq-old-<h>` is only ever a whole,
//! unmodified former target, so the recovery run by every `begin` (and [`Staging::recover`])
//! is: remove `.kaq-trash-<h>`; if `.kaq-old-<h>` exists, remove it when the target exists
//! (step 3 happened) or rename it back to the target when not (interrupted between 2 and 3);
//! remove staging directories of this target whose writer has died. Afterwards the target is
//! the old complete output or the new complete one. Concurrent writers of one target must hold
//! its [`crate::DirLock`].

use std::ffi::OsString;
use std::fs::{self, File, Permissions};
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use tempfile::{Builder, TempDir};

use crate::fault::{self, Op};
use crate::names::{remove_all, sibling, split, staging_prefix};
use crate::single::sync_dir;
use crate::{FileKind, FilesError};

/// A multi-file output being built beside its target directory. Dropping it without
/// [`Staging::commit`] removes the staging directory and leaves the target untouched.
#[derive(Debug)]
pub struct Staging {
    dir: TempDir,
    /// An exclusive lock on the staging directory: marks it as in use while this process lives.
    _in_use: File,
    target: PathBuf,
    parent: PathBuf,
    name: OsString,
}

/// The steps of [`Staging::commit`], for fault-injection tests that stop after one of them as
/// if the process had been killed there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitStep {
    /// The staging tree is synced.
    Synced,
    /// The old target is renamed to `.kaq-old-<h>` (nothing happens without an old target).
    OldMovedAside,
    /// The staging directory is renamed to the target.
    NewInPlace,
    /// `.kaq-old-<h>` is renamed to `.kaq-trash-<h>`.
    OldTrashed,
}

/// The symlink-free target, its parent and file name, checking that the target is a directory
/// or absent; the parent is created if missing.
fn resolve(target: &Path) -> Result<(PathBuf, PathBuf, OsString), FilesError> {
    let target = match FileKind::probe(target)? {
        None => target.to_path_buf(),
        Some(FileKind::Directory) => {
            fs::canonicalize(target).map_err(FilesError::io("cannot resolve", target))?
        }
        Some(kind) => {
            return Err(FilesError::NotDirectory {
                path: target.to_path_buf(),
                kind,
            });
        }
    };
    let (parent, name) = split(&target)?;
    match FileKind::probe(&parent)? {
        Some(FileKind::Directory) => {}
        Some(kind) => return Err(FilesError::NotDirectory { path: parent, kind }),
        None => fs::create_dir_all(&parent).map_err(FilesError::io("cannot create", &parent))?,
    }
    Ok((target, parent, name))
}

fn rename(from: &Path, to: &Path, parent: &Path) -> Result<(), FilesError> {
    let failed = |error| FilesError::Io {
        path: to.to_path_buf(),
        action: "cannot rename into place",
        error,
    };
    let done = fault::point(Op::Rename, to).map_err(failed)?;
    fs::rename(from, to).map_err(failed)?;
    sync_dir(parent);
    done.done();
    Ok(())
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Syncs every file and directory under `dir`, `dir` last.
fn sync_tree(dir: &Path) -> Result<(), FilesError> {
    for entry in fs::read_dir(dir).map_err(FilesError::io("cannot list", dir))? {
        let entry = entry.map_err(FilesError::io("cannot list", dir))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(FilesError::io("cannot inspect", &path))?;
        if kind.is_dir() {
            sync_tree(&path)?;
        } else if kind.is_file() {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(FilesError::io("cannot sync", &path))?;
        }
    }
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(FilesError::io("cannot sync", dir))
}

impl Staging {
    /// Recovers the target directory from any interrupted earlier commit (see the module
    /// documentation), then creates an empty staging directory beside it, with the
    /// permissions of the existing target or those of a new directory. Missing parent
    /// directories of the target are created.
    pub fn begin(target: &Path) -> Result<Staging, FilesError> {
        let (target, parent, name) = resolve(target)?;
        recover_resolved(&target, &parent, &name)?;
        let mode = match fs::metadata(&target) {
            Ok(m) => m.permissions(),
            Err(_) => Permissions::from_mode(0o777),
        };
        let dir = Builder::new()
            .prefix(&staging_prefix(&name))
            .permissions(mode.clone())
            .tempdir_in(&parent)
            .map_err(FilesError::io(
                "cannot create a staging directory in",
                &parent,
            ))?;
        // DirBuilder's mode is masked by the umask; an existing target's is kept exactly.
        if fs::metadata(&target).is_ok() {
            fs::set_permissions(dir.path(), mode)
                .map_err(FilesError::io("cannot set the permissions of", dir.path()))?;
        }
        let in_use = File::open(dir.path()).map_err(FilesError::io("cannot open", dir.path()))?;
        let _ = in_use.try_lock();
        Ok(Staging {
            dir,
            _in_use: in_use,
            target,
            parent,
            name,
        })
    }

    /// Brings the target directory back to a complete output after an interrupted commit,
    /// without starting a new one; a no-op when nothing was interrupted.
    pub fn recover(target: &Path) -> Result<(), FilesError> {
        let (target, parent, name) = resolve(target)?;
        recover_resolved(&target, &parent, &name)
    }

    /// The staging directory, to be filled by the caller.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The target directory the staging directory replaces on commit (symbolic links
    /// resolved).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Writes `bytes` to `rel` inside the staging directory (parent directories created),
    /// refusing absolute paths and `..`; a file already there is replaced, not written into.
    /// Returns the path the file will have in the target.
    pub fn write(&self, rel: &Path, bytes: &[u8]) -> Result<PathBuf, FilesError> {
        let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain || rel.as_os_str().is_empty() {
            return Err(FilesError::NotRelative {
                path: rel.to_path_buf(),
            });
        }
        for c in rel.components() {
            if c.as_os_str().len() > crate::NAME_MAX {
                return Err(FilesError::NameTooLong {
                    path: rel.to_path_buf(),
                    limit: crate::NAME_MAX,
                });
            }
        }
        let path = self.dir.path().join(rel);
        if let Some(p) = path.parent() {
            fs::create_dir_all(p).map_err(FilesError::io("cannot create", p))?;
        }
        // A file carried over from the old target ([`Staging::keep_old`]) is a hard link to
        // it: unlinked first, so the new contents never reach the old output.
        match fs::remove_file(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                return Err(FilesError::io("cannot replace", &path)(e));
            }
            _ => {}
        }
        fault::point(Op::Write, &path)
            .and_then(|done| fs::write(&path, bytes).map(|()| done.done()))
            .map_err(FilesError::io("cannot write", &path))?;
        Ok(self.target.join(rel))
    }

    /// Puts every entry of the current target directory (if any) into the staging directory
    /// unchanged, except kaq's own `.kaq-*` names: the starting point of an output that
    /// rewrites some files of the old one and keeps the rest ([`carry_over`]). Files written
    /// afterwards through kaq-files replace the carried ones by rename, so the old target is
    /// never modified.
    pub fn keep_old(&self) -> Result<(), FilesError> {
        let entries = match fs::read_dir(&self.target) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(FilesError::io("cannot list", &self.target)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(FilesError::io("cannot list", &self.target))?;
            let name = entry.file_name();
            if crate::is_kaq_file(&name) {
                continue;
            }
            carry_over(&entry.path(), &self.dir.path().join(&name))?;
        }
        Ok(())
    }

    /// Syncs the staging tree and swaps it in for the target (see the module documentation).
    /// On an error the target is the old complete output.
    pub fn commit(self) -> Result<(), FilesError> {
        self.run(None)
    }

    /// Runs [`Staging::commit`] up to and including `step`, then stops as a killed process
    /// would: nothing is cleaned up. For fault-injection tests.
    #[doc(hidden)]
    pub fn commit_interrupted(self, step: CommitStep) -> Result<(), FilesError> {
        self.run(Some(step))
    }

    fn run(self, stop: Option<CommitStep>) -> Result<(), FilesError> {
        let Staging {
            dir,
            _in_use,
            target,
            parent,
            name,
        } = self;
        let old = sibling(&parent, &name, "old");
        let trash = sibling(&parent, &name, "trash");
        if fault::syncs() {
            sync_tree(dir.path())?;
        }
        if stop == Some(CommitStep::Synced) {
            let _ = dir.keep();
            return Ok(());
        }
        let had_old = exists(&target);
        if had_old {
            rename(&target, &old, &parent)?;
        }
        if stop == Some(CommitStep::OldMovedAside) {
            let _ = dir.keep();
            return Ok(());
        }
        let staging = dir.keep();
        if let Err(e) = rename(&staging, &target, &parent) {
            if had_old {
                let _ = rename(&old, &target, &parent);
            }
            let _ = remove_all(&staging);
            return Err(e);
        }
        if stop == Some(CommitStep::NewInPlace) || !had_old {
            return Ok(());
        }
        // The old output is garbage now; as `.kaq-trash-*` it is never restored.
        if rename(&old, &trash, &parent).is_ok() && stop != Some(CommitStep::OldTrashed) {
            let _ = remove_all(&trash);
        }
        Ok(())
    }
}

fn recover_resolved(target: &Path, parent: &Path, name: &OsString) -> Result<(), FilesError> {
    let old = sibling(parent, name, "old");
    remove_all(&sibling(parent, name, "trash"))?;
    if exists(&old) {
        if exists(target) {
            remove_all(&old)?;
        } else {
            rename(&old, target, parent)?;
        }
    }
    let prefix = staging_prefix(name);
    let entries = fs::read_dir(parent).map_err(FilesError::io("cannot list", parent))?;
    for entry in entries {
        let entry = entry.map_err(FilesError::io("cannot list", parent))?;
        if !entry.file_name().as_bytes().starts_with(prefix.as_bytes()) {
            continue;
        }
        let path = entry.path();
        let dead = match File::open(&path) {
            Ok(f) => f.try_lock().is_ok(),
            Err(e) => e.kind() != ErrorKind::NotFound,
        };
        if dead {
            remove_all(&path)?;
        }
    }
    Ok(())
}

/// Puts the entry `from` at `to` unchanged: a hard link where the file system allows one (any
/// kind but a directory), else a copy of a regular file or a new symbolic link with the same
/// target; a directory is recreated with its permissions and its entries carried over, except
/// kaq's own `.kaq-*` files (a dead writer's temporary files). Each link or copy is a fault
/// point ([`Op::Link`]).
pub fn carry_over(from: &Path, to: &Path) -> Result<(), FilesError> {
    let meta = fs::symlink_metadata(from).map_err(FilesError::io("cannot inspect", from))?;
    if meta.is_dir() {
        fs::create_dir(to).map_err(FilesError::io("cannot create", to))?;
        for entry in fs::read_dir(from).map_err(FilesError::io("cannot list", from))? {
            let entry = entry.map_err(FilesError::io("cannot list", from))?;
            if crate::is_kaq_file(&entry.file_name()) {
                continue;
            }
            carry_over(&entry.path(), &to.join(entry.file_name()))?;
        }
        let mode = Permissions::from_mode(meta.permissions().mode());
        return fs::set_permissions(to, mode)
            .map_err(FilesError::io("cannot set the permissions of", to));
    }
    let done = fault::point(Op::Link, to).map_err(FilesError::io("cannot link", to))?;
    if fs::hard_link(from, to).is_ok() {
        done.done();
        return Ok(());
    }
    if meta.file_type().is_symlink() {
        let target = fs::read_link(from).map_err(FilesError::io("cannot read the link", from))?;
        std::os::unix::fs::symlink(&target, to).map_err(FilesError::io("cannot link", to))?;
    } else if meta.is_file() {
        fs::copy(from, to).map_err(FilesError::io("cannot copy", to))?;
    } else {
        return Err(FilesError::NotRegular {
            path: from.to_path_buf(),
            kind: FileKind::of(meta.file_type()),
        });
    }
    done.done();
    Ok(())
}
