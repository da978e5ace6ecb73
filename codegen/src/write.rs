//! Writing a generated design into its output directory, transactionally (docs/outputs.md,
//! "Output directories").
//!
//! [`write_design`] holds the directory's [`DirLock`] for the whole write, repairs what an
//! interrupted earlier run left ([`Staging::recover`], [`remove_stale`]), refuses a directory
//! holding files kaq did not write (kaq's own `.kaq-*` names never count), then builds the
//! complete new directory beside the old one with [`Staging`]: the generated files, the files
//! kept from the old directory (hard links, or copies where links are impossible) and the
//! manifest, and swaps it in. After an interruption at any point the directory holds the old
//! complete output or the new complete one, and the next run succeeds without `force`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use kaq_files::{CommitStep, DirLock, Staging, Wait, carry_over, is_kaq_file, remove_stale};

use crate::{CodegenError, Generated, GeneratedFile, MANIFEST};

/// The largest manifest read back from an earlier run (a design lists a few dozen names).
const MANIFEST_LIMIT: u64 = 1 << 20;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CodegenError + '_ {
    move |error| CodegenError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// Writes `generated` into `dir` (created if missing). A directory holding files that are
/// not listed in its kaq manifest is refused unless `force`; kaq's own bookkeeping names
/// (`.kaq-*`) never count, and stale temporary files are removed. The new manifest keeps
/// listing the files of earlier runs that are still there; with `force`, the other files stay
/// too. The directory is locked for the write and replaced in one step (see the module
/// documentation). Returns the paths written.
pub fn write_design(
    generated: &Generated,
    dir: &Path,
    force: bool,
) -> Result<Vec<PathBuf>, CodegenError> {
    write_steps(&generated.files, dir, force, None).map(|(written, _)| written)
}

/// [`write_design`] for a list of files (an IR v2 design, `kaq_codegen::gram`).
pub fn write_files(
    files: &[GeneratedFile],
    dir: &Path,
    force: bool,
) -> Result<Vec<PathBuf>, CodegenError> {
    write_steps(files, dir, force, None).map(|(written, _)| written)
}

/// [`write_design`] stopped after its `stop_after`-th step (`1` = after the first file was
/// written into the staging directory), as if the process were killed there: the lock is
/// released and nothing is cleaned up. The steps are the generated files, the files kept from
/// the old directory, the manifest, then the four steps of [`Staging::commit`]. Returns
/// whether it stopped (`false`: `stop_after` is beyond the last step and the write completed).
/// For fault-injection tests.
#[doc(hidden)]
pub fn write_design_interrupted(
    generated: &Generated,
    dir: &Path,
    force: bool,
    stop_after: usize,
) -> Result<bool, CodegenError> {
    write_steps(&generated.files, dir, force, Some(stop_after)).map(|(_, stopped)| stopped)
}

fn write_steps(
    files: &[GeneratedFile],
    dir: &Path,
    force: bool,
    stop_after: Option<usize>,
) -> Result<(Vec<PathBuf>, bool), CodegenError> {
    if dir.exists() && !dir.is_dir() {
        return Err(CodegenError::NotADirectory(dir.display().to_string()));
    }
    let _lock = DirLock::acquire(dir, Wait::No)?;
    Staging::recover(dir)?;
    let old_exists = dir.is_dir();
    if old_exists {
        remove_stale(dir)?;
    }
    // What an earlier run wrote here (empty for a new directory).
    let manifest_path = dir.join(MANIFEST);
    let ours: BTreeSet<String> = if manifest_path.is_file() {
        let bytes = kaq_files::read_capped(&manifest_path, MANIFEST_LIMIT)?;
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect()
    } else {
        BTreeSet::new()
    };
    let mut old_entries = Vec::new();
    if old_exists {
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            old_entries.push(entry.file_name());
        }
        old_entries.sort();
    }
    if old_exists && !force {
        let foreign: Vec<String> = old_entries
            .iter()
            .filter(|n| !is_kaq_file(n))
            .map(|n| n.to_string_lossy().to_string())
            .filter(|n| !ours.contains(n))
            .collect();
        if !foreign.is_empty() {
            let shown: Vec<_> = foreign.iter().take(5).cloned().collect();
            let more = if foreign.len() > 5 {
                format!(" and {} more", foreign.len() - 5)
            } else {
                String::new()
            };
            return Err(CodegenError::ForeignFiles {
                dir: dir.display().to_string(),
                files: format!("{}{more}", shown.join(", ")),
            });
        }
    }

    let staging = Staging::begin(dir)?;
    let mut step = 0;
    // Whether the step just done is the one to stop after.
    let mut stop_here = || {
        step += 1;
        stop_after == Some(step)
    };
    let mut written = Vec::with_capacity(files.len());
    let mut manifest = String::new();
    for file in files {
        staging.write(Path::new(&file.name), file.contents.as_bytes())?;
        manifest.push_str(&file.name);
        manifest.push('\n');
        written.push(dir.join(&file.name));
        if stop_here() {
            staging.commit_interrupted(CommitStep::Synced)?;
            return Ok((written, true));
        }
    }
    // Everything else in the old directory stays: files of an earlier run that this one does
    // not rewrite (another top's) stay kaq's; with `force`, other files stay unlisted.
    for name in &old_entries {
        let text = name.to_string_lossy();
        if name == MANIFEST || files.iter().any(|f| f.name == text) {
            continue;
        }
        let from = dir.join(name);
        if ours.contains(text.as_ref()) && from.is_file() {
            manifest.push_str(&text);
            manifest.push('\n');
        }
        carry_over(&from, &staging.path().join(name))?;
    }
    if stop_here() {
        staging.commit_interrupted(CommitStep::Synced)?;
        return Ok((written, true));
    }
    staging.write(Path::new(MANIFEST), manifest.as_bytes())?;
    if stop_here() {
        staging.commit_interrupted(CommitStep::Synced)?;
        return Ok((written, true));
    }
    for commit_step in [
        CommitStep::Synced,
        CommitStep::OldMovedAside,
        CommitStep::NewInPlace,
        CommitStep::OldTrashed,
    ] {
        if stop_here() {
            staging.commit_interrupted(commit_step)?;
            return Ok((written, true));
        }
    }
    staging.commit()?;
    Ok((written, false))
}
