//! kaq-files: the one way kaq writes its outputs and reads its inputs (docs/outputs.md).
//!
//! * [`write_file`] / [`write_new`] replace or create one file atomically (a temporary file in
//!   the same directory, synced, renamed); a character device or FIFO (`/dev/null`,
//!   `/dev/stdout`) is written straight and never replaced; anything else that is not a regular
//!   file is refused. [`check_writable`] runs the same checks without writing, so every output of
//!   a command can be checked before long work starts. [`PendingFile`] gives the same
//!   guarantee to a file another writer fills by path (a simulator's VCD trace).
//! * [`read_capped`] reads a regular file up to a size limit and refuses device files, FIFOs and
//!   directories; [`read_text`] does the same for UTF-8 text, and [`INPUT_LIMIT`] is the limit
//!   of every input file kaq reads.
//! * [`Staging`] builds a multi-file output in a directory beside its target and swaps it in:
//!   after any interruption, the next [`Staging::begin`] leaves the target holding the old
//!   complete output or the new complete one.
//! * [`DirLock`] is an advisory exclusive lock on an output directory whose lock file names its
//!   holder.
//!
//! Every file kaq creates for its own bookkeeping beside an output is named `.kaq-*`
//! ([`is_kaq_file`]); stale ones are removed by [`remove_stale`] and [`Staging::begin`].
//! Errors are [`FilesError`] values naming the path and the problem; nothing here panics on bad
//! input.

mod error;
#[doc(hidden)]
pub mod fault;
mod kind;
mod lock;
mod names;
mod single;
mod staging;

pub use error::FilesError;
pub use kind::FileKind;
pub use lock::{DirLock, Wait};
pub use names::{is_kaq_file, remove_stale, temp_prefix};
pub use single::{
    INPUT_LIMIT, PendingFile, check_writable, read_capped, read_text, write_file, write_new,
};
#[doc(hidden)]
pub use staging::CommitStep;
pub use staging::{Staging, carry_over};

/// The longest file name (in bytes) kaq creates; the limit of Linux's common file systems.
pub const NAME_MAX: usize = 255;
