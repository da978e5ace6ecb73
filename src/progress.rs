//! Progress on stderr, one module for every subcommand. On a terminal, an indicatif bar redrawn
//! in place; when stderr is a file or a pipe (a log, CI, a cluster job), the same bar printed
//! as a plain line at most every [`LINE_INTERVAL`], so a long stage is never silent.

use std::io::{self, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

/// Least time between two progress lines when stderr is not a terminal.
pub const LINE_INTERVAL: Duration = Duration::from_secs(5);

/// A bar of `len` steps labelled `label`, counting `unit` (e.g. `frames`; empty for none).
pub fn bar(label: &str, len: u64, unit: &str) -> ProgressBar {
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    styled(label, len, &format!("{{pos}}/{{len}}{unit}"))
}

/// A bar of `len` steps labelled `label` that shows the percentage done.
pub fn percent_bar(label: &str, len: u64) -> ProgressBar {
    styled(label, len, "{percent:>3}%")
}

fn styled(label: &str, len: u64, count: &str) -> ProgressBar {
    let template = format!("{{spinner}} {{prefix}} [{{bar:30}}] {count}  {{msg}}  {{elapsed}}");
    let bar = ProgressBar::with_draw_target(Some(len), target());
    bar.set_style(
        ProgressStyle::with_template(&template)
            .expect("the progress template is valid")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A bar whose length is set later (e.g. when training reports its batches).
pub fn open_bar(label: &str, unit: &str) -> ProgressBar {
    bar(label, 0, unit)
}

/// Stderr as a terminal, or as lines.
fn target() -> ProgressDrawTarget {
    if console_is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::term_like_with_hz(Box::new(Lines::default()), 1)
    }
}

fn console_is_terminal() -> bool {
    use std::io::IsTerminal;
    io::stderr().is_terminal()
}

/// A `TermLike` that prints every drawn bar as one line, at most every [`LINE_INTERVAL`].
#[derive(Debug, Default)]
struct Lines {
    state: Mutex<LineState>,
}

#[derive(Debug, Default)]
struct LineState {
    last: Option<Instant>,
    pending: String,
}

impl LineState {
    /// Whether a line drawn now is printed.
    fn due(&mut self, now: Instant) -> bool {
        match self.last {
            Some(t) if now.duration_since(t) < LINE_INTERVAL => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

impl TermLike for Lines {
    fn width(&self) -> u16 {
        120
    }

    fn move_cursor_up(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_down(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_right(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_left(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn write_line(&self, s: &str) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let line = std::mem::take(&mut state.pending) + s;
        let line = line.trim();
        if !line.is_empty() && state.due(Instant::now()) {
            writeln!(io::stderr(), "{line}")?;
        }
        Ok(())
    }

    fn write_str(&self, s: &str) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.pending.push_str(s);
        Ok(())
    }

    fn clear_line(&self) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.pending.clear();
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        // A bar drawn without a trailing newline is one line too.
        let pending = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut state.pending)
        };
        if !pending.trim().is_empty() {
            self.write_line(&pending)?;
        }
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_printed_at_most_once_per_interval() {
        let mut s = LineState::default();
        let t0 = Instant::now();
        assert!(s.due(t0));
        assert!(!s.due(t0 + Duration::from_secs(1)));
        assert!(!s.due(t0 + LINE_INTERVAL - Duration::from_millis(1)));
        assert!(s.due(t0 + LINE_INTERVAL));
        assert!(!s.due(t0 + LINE_INTERVAL + Duration::from_secs(1)));
    }
}
