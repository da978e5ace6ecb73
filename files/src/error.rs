//! The typed errors of kaq-files: every variant names the path and the problem.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::FileKind;

/// Why an output could not be written or an input could not be read.
#[derive(Debug, Error)]
pub enum FilesError {
    /// An operating-system call failed; `action` says which ("cannot create", "cannot rename").
    /// The message ends with the operating system's, which is therefore not also reported as
    /// the error's `source()` (an error chain would print it twice).
    #[error("{}: {action}: {error}", path.display())]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// What kaq tried to do, as a short phrase.
        action: &'static str,
        /// The operating system's error.
        error: io::Error,
    },
    /// The path exists but is of a kind kaq never replaces or reads.
    #[error("{}: is {kind}, not a regular file", path.display())]
    NotRegular {
        /// The path as given.
        path: PathBuf,
        /// What it is (after following symbolic links).
        kind: FileKind,
    },
    /// A directory was expected (an output directory, or the parent of an output file).
    #[error("{}: is {kind}, not a directory", path.display())]
    NotDirectory {
        /// The path that should be a directory.
        path: PathBuf,
        /// What it is instead.
        kind: FileKind,
    },
    /// The directory an output would be created in does not exist.
    #[error("{}: the directory {} does not exist", path.display(), dir.display())]
    NoDirectory {
        /// The output path.
        path: PathBuf,
        /// Its missing parent directory.
        dir: PathBuf,
    },
    /// The path has no file name (`/`, `..`, an empty path).
    #[error("{:?}: the path names no file", path.display().to_string())]
    NoFileName {
        /// The path as given.
        path: PathBuf,
    },
    /// The file name is longer than the file system allows.
    #[error("{}: the file name is longer than {limit} bytes", path.display())]
    NameTooLong {
        /// The path as given.
        path: PathBuf,
        /// The limit in bytes.
        limit: usize,
    },
    /// An input file is larger than the limit it is read with.
    #[error("{}: larger than the limit of {limit} bytes", path.display())]
    TooLarge {
        /// The input file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// An input file is not UTF-8 text.
    #[error("{}: not UTF-8 text", path.display())]
    NotText {
        /// The input file.
        path: PathBuf,
    },
    /// The file exists and the caller asked not to replace it.
    #[error("{}: exists; refusing to replace it", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A path inside a staging directory is absolute or leaves the directory (`..`).
    #[error("{}: not a plain relative path inside the output directory", path.display())]
    NotRelative {
        /// The offending relative path.
        path: PathBuf,
    },
    /// Another process holds the lock of the output directory.
    #[error(
        "{}: in use by another kaq run{}",
        path.display(),
        holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    Locked {
        /// The locked output directory.
        path: PathBuf,
        /// What the holder wrote into the lock file: its pid and command line.
        holder: Option<String>,
    },
}

impl FilesError {
    /// Whether the error is about the path the user gave rather than about the machine: a
    /// path of the wrong kind, a name too long, a missing directory, an input too large or not
    /// text, an existing file not to be replaced. Commands report these as usage errors (exit
    /// status 2); the others ([`FilesError::Io`], [`FilesError::Locked`]) are run-time failures.
    pub fn is_usage(&self) -> bool {
        !matches!(self, FilesError::Io { .. } | FilesError::Locked { .. })
    }

    /// A closure for `map_err` that wraps an [`io::Error`] about `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> FilesError {
        let path = path.into();
        move |error| FilesError::Io {
            path,
            action,
            error,
        }
    }
}
