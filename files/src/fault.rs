//! Fault injection for kaq's own tests (docs/outputs.md, "Fault injection").
//!
//! Every write of file contents and every rename kaq performs on an output passes through
//! [`point`] (kaq-files itself, and the few callers that touch output files directly). Built
//! without the `fault-injection` feature, that is a no-op the compiler removes; with it, the
//! environment variable `KAQ_FAULT` chooses what happens at the `n`-th point of the process
//! (counted from 1 in the order they are reached):
//!
//! * `exit:N`: after the `N`-th operation is done, the process ends at once with status
//!   [`EXIT_STATUS`] without unwinding (no destructor runs, no temporary file or staging
//!   directory is cleaned up, locks die with the process), which is what a SIGKILL at that
//!   moment leaves on disk;
//! * `enospc:N`: the `N`-th operation fails with `ENOSPC` ("No space left on device"), as
//!   on a full disk, and the caller handles the error as it would a real one;
//! * `pause:N`: before the `N`-th operation, the file named by `KAQ_FAULT_GATE` plus
//!   `.paused` is created and the process waits until the file `KAQ_FAULT_GATE` exists, then
//!   goes on (to run a second writer, or deliver a signal, at a known point);
//! * anything else, or unset: nothing is injected.
//!
//! With `KAQ_FAULT_NOSYNC=1`, kaq-files skips its `fsync`s: what a killed process leaves on
//! disk is the same (the kernel keeps written data whoever dies), only a power loss differs,
//! and the fault tests run many times faster.
//!
//! With `KAQ_FAULT_LOG=PATH`, each point appends `N OP PATH` to that file, so a test learns
//! how many points a run has and which file each one touches. When a fault fires, a line
//! starting `kaq-fault:` is printed on stderr.

use std::io;
use std::path::Path;

/// The exit status of a process stopped by `KAQ_FAULT=exit:N`.
pub const EXIT_STATUS: i32 = 86;

/// The kinds of operation that are fault points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Writing the contents of a file (a temporary file, a staged file, a device).
    Write,
    /// Renaming a file or directory into or out of place.
    Rename,
    /// Putting a file into a staging directory by hard link or copy.
    Link,
}

impl Op {
    /// The name used in the log.
    pub fn name(self) -> &'static str {
        match self {
            Op::Write => "write",
            Op::Rename => "rename",
            Op::Link => "link",
        }
    }
}

/// A fault point that was passed; [`Done::done`] marks the operation as completed.
#[derive(Debug)]
#[must_use = "call done() once the operation has completed"]
pub struct Done {
    #[cfg(feature = "fault-injection")]
    n: usize,
}

/// The fault point before an operation `op` on `path`: `Err` (ENOSPC) when the fault plan
/// says this operation fails; otherwise the caller does the operation and then calls
/// [`Done::done`].
#[inline]
pub fn point(op: Op, path: &Path) -> io::Result<Done> {
    #[cfg(feature = "fault-injection")]
    {
        imp::before(op, path).map(|n| Done { n })
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = (op, path);
        Ok(Done {})
    }
}

/// Whether kaq-files `fsync`s what it writes: always, unless built with `fault-injection`
/// and run with `KAQ_FAULT_NOSYNC=1`.
#[inline]
pub fn syncs() -> bool {
    #[cfg(feature = "fault-injection")]
    {
        imp::syncs()
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        true
    }
}

impl Done {
    /// Marks the operation as completed (where `KAQ_FAULT=exit:N` stops the process).
    #[inline]
    pub fn done(self) {
        #[cfg(feature = "fault-injection")]
        imp::after(self.n);
    }
}

#[cfg(feature = "fault-injection")]
mod imp {
    use std::fs::{File, OpenOptions};
    use std::io::{self, Write};
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Mutex, OnceLock};
    use std::time::Duration;

    use super::{EXIT_STATUS, Op};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Mode {
        Off,
        Exit(usize),
        NoSpace(usize),
        Pause(usize),
    }

    #[derive(Debug)]
    struct Plan {
        mode: Mode,
        log: Option<Mutex<File>>,
        gate: Option<PathBuf>,
    }

    static PLAN: OnceLock<Plan> = OnceLock::new();
    static COUNT: AtomicUsize = AtomicUsize::new(0);

    fn plan() -> &'static Plan {
        PLAN.get_or_init(|| {
            let spec = std::env::var("KAQ_FAULT").unwrap_or_default();
            let mode = match spec.split_once(':') {
                Some((kind, n)) => match (kind, n.parse::<usize>()) {
                    ("exit", Ok(n)) => Mode::Exit(n),
                    ("enospc", Ok(n)) => Mode::NoSpace(n),
                    ("pause", Ok(n)) => Mode::Pause(n),
                    _ => Mode::Off,
                },
                None => Mode::Off,
            };
            let log = std::env::var_os("KAQ_FAULT_LOG").and_then(|p| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .ok()
                    .map(Mutex::new)
            });
            let gate = std::env::var_os("KAQ_FAULT_GATE").map(PathBuf::from);
            Plan { mode, log, gate }
        })
    }

    pub(super) fn before(op: Op, path: &Path) -> io::Result<usize> {
        let plan = plan();
        let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(log) = &plan.log
            && let Ok(mut f) = log.lock()
        {
            let _ = writeln!(f, "{n} {} {}", op.name(), path.display());
        }
        match plan.mode {
            Mode::NoSpace(k) if k == n => {
                eprintln!(
                    "kaq-fault: ENOSPC injected into {} {} (point {n})",
                    op.name(),
                    path.display()
                );
                Err(io::Error::from_raw_os_error(28))
            }
            Mode::Pause(k) if k == n => {
                if let Some(gate) = &plan.gate {
                    let mut paused = gate.clone().into_os_string();
                    paused.push(".paused");
                    eprintln!(
                        "kaq-fault: paused before {} {} (point {n})",
                        op.name(),
                        path.display()
                    );
                    let _ = File::create(&paused);
                    while !gate.exists() {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                Ok(n)
            }
            _ => Ok(n),
        }
    }

    pub(super) fn syncs() -> bool {
        static SYNCS: OnceLock<bool> = OnceLock::new();
        *SYNCS.get_or_init(|| std::env::var_os("KAQ_FAULT_NOSYNC").is_none_or(|v| v != "1"))
    }

    pub(super) fn after(n: usize) {
        if plan().mode == Mode::Exit(n) {
            eprintln!("kaq-fault: stopped after point {n}");
            // Ends the process without unwinding: nothing is cleaned up, as after SIGKILL.
            std::process::exit(EXIT_STATUS);
        }
    }
}
