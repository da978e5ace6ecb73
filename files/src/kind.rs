//! What a path is on disk ([`FileKind`]), after following symbolic links, and the one
//! classification every other module uses.

use std::fmt;
use std::fs::{self, FileType};
use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use crate::FilesError;

/// The kind of an existing path, symbolic links followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A character device (`/dev/null`, a terminal).
    CharDevice,
    /// A block device (a disk).
    BlockDevice,
    /// A named pipe, or the pipe behind `/dev/stdout`.
    Fifo,
    /// A Unix domain socket.
    Socket,
    /// A symbolic link whose target does not exist (or a loop of links).
    BrokenSymlink,
}

impl FileKind {
    pub(crate) fn of(file_type: FileType) -> FileKind {
        if file_type.is_dir() {
            FileKind::Directory
        } else if file_type.is_char_device() {
            FileKind::CharDevice
        } else if file_type.is_block_device() {
            FileKind::BlockDevice
        } else if file_type.is_fifo() {
            FileKind::Fifo
        } else if file_type.is_socket() {
            FileKind::Socket
        } else if file_type.is_symlink() {
            FileKind::BrokenSymlink
        } else {
            FileKind::Regular
        }
    }

    /// The kind of `path` with symbolic links followed; `None` if nothing is there at all.
    pub(crate) fn probe(path: &Path) -> Result<Option<FileKind>, FilesError> {
        match fs::metadata(path) {
            Ok(m) => Ok(Some(FileKind::of(m.file_type()))),
            // ENOTDIR: a parent is not a directory, so nothing is there; callers name the parent.
            Err(e) if e.kind() == ErrorKind::NotADirectory => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => match fs::symlink_metadata(path) {
                Ok(_) => Ok(Some(FileKind::BrokenSymlink)),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(FilesError::io("cannot inspect", path)(e)),
            },
            // ENAMETOOLONG: a component longer than the file system allows.
            Err(e) if e.raw_os_error() == Some(36) => Err(FilesError::NameTooLong {
                path: path.to_path_buf(),
                limit: crate::NAME_MAX,
            }),
            // ELOOP: a cycle of symbolic links.
            Err(e) if e.raw_os_error() == Some(40) => Ok(Some(FileKind::BrokenSymlink)),
            Err(e) => Err(FilesError::io("cannot inspect", path)(e)),
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Regular => "a regular file",
            FileKind::Directory => "a directory",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Fifo => "a FIFO (named pipe)",
            FileKind::Socket => "a socket",
            FileKind::BrokenSymlink => "a broken symbolic link",
        })
    }
}
