//! The external build commands kaq-sim runs (verilator, g++, ar): each writes stdout and stderr
//! into its own log file, and a failure becomes [`SimError::Build`] carrying the log's tail.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::error::SimError;

/// How many trailing log lines a build error carries.
const LOG_TAIL_LINES: usize = 40;

/// A started command whose output goes to a log file.
#[derive(Debug)]
pub struct LoggedChild {
    step: String,
    log_path: PathBuf,
    child: Child,
}

/// Starts `cmd` with stdout and stderr appended to `log_path`.
pub fn spawn_logged(
    mut cmd: Command,
    step: impl Into<String>,
    log_path: &Path,
) -> Result<LoggedChild, SimError> {
    let step = step.into();
    let io = |action, error| SimError::Io {
        action,
        path: log_path.to_path_buf(),
        error,
    };
    let log = File::options()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| io("opening build log", e))?;
    let err = log.try_clone().map_err(|e| io("opening build log", e))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err));
    let child = cmd.spawn().map_err(|e| SimError::Build {
        step: step.clone(),
        status: format!("could not start {:?}: {e}", cmd.get_program()),
        log_path: log_path.to_path_buf(),
        log_tail: String::new(),
    })?;
    Ok(LoggedChild {
        step,
        log_path: log_path.to_path_buf(),
        child,
    })
}

impl LoggedChild {
    /// Waits for the command; a non-zero exit is an error with the log's tail.
    pub fn finish(mut self) -> Result<(), SimError> {
        let status = self.child.wait().map_err(|e| SimError::Io {
            action: "waiting for build step",
            path: self.log_path.clone(),
            error: e,
        })?;
        if status.success() {
            return Ok(());
        }
        Err(SimError::Build {
            step: self.step,
            status: status.to_string(),
            log_tail: log_tail(&self.log_path),
            log_path: self.log_path,
        })
    }
}

/// Runs `cmd` to completion with its output in `log_path`.
pub fn run_logged(cmd: Command, step: impl Into<String>, log_path: &Path) -> Result<(), SimError> {
    spawn_logged(cmd, step, log_path)?.finish()
}

/// Runs `cmd` and returns the first line of its stdout (for version and path queries).
pub fn first_line(mut cmd: Command, step: &str) -> Result<String, SimError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| SimError::Build {
            step: step.to_string(),
            status: format!("could not start {:?}: {e}", cmd.get_program()),
            log_path: PathBuf::new(),
            log_tail: String::new(),
        })?;
    if !out.status.success() {
        return Err(SimError::Build {
            step: step.to_string(),
            status: out.status.to_string(),
            log_path: PathBuf::new(),
            log_tail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string())
}

/// The last [`LOG_TAIL_LINES`] lines of a log file (empty if unreadable).
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_carries_the_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("step.log");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo first; echo 'it broke here' >&2; exit 3"]);
        let err = run_logged(cmd, "demo step", &log).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("demo step"), "{text}");
        assert!(text.contains("it broke here"), "{text}");
        assert!(text.contains('3'), "{text}");
        let mut ok = Command::new("sh");
        ok.args(["-c", "echo fine"]);
        run_logged(ok, "ok step", &log).unwrap();
        assert!(std::fs::read_to_string(&log).unwrap().contains("fine"));
    }
}
