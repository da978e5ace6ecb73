//! Progress on stderr, one module for every subcommand. On a terminal, an indicatif bar redrawn
//! in place. When stderr is a file or a pipe (a log, CI, a cluster job) the bar is hidden and a
//! plain line is printed every [`LINE_INTERVAL`] instead (`$KAQ_PROGRESS_SECS` seconds when
//! set): the stage's label, its percentage when its length is known, its message and the time
//! elapsed, so a long stage is never silent. A [`Step`] without steps (a Verilator build) says
//! when it starts and how long it took.

use std::io::{self, IsTerminal};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Time between two progress lines when stderr is not a terminal, unless
/// `$KAQ_PROGRESS_SECS` sets another.
pub const LINE_INTERVAL: Duration = Duration::from_secs(5);

/// A bar of `len` steps labelled `label`, counting `unit` (e.g. `frames`; empty for none).
pub fn bar(label: &str, len: u64, unit: &str) -> ProgressBar {
    let shown = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    styled(label, len, &format!("{{pos}}/{{len}}{shown}"), Some(unit))
}

/// A bar of `len` steps labelled `label` that shows the percentage done.
pub fn percent_bar(label: &str, len: u64) -> ProgressBar {
    styled(label, len, "{percent:>3}%", None)
}

/// A bar whose length is set later (e.g. when training reports its batches).
pub fn open_bar(label: &str, unit: &str) -> ProgressBar {
    bar(label, 0, unit)
}

/// `unit`: the count is printed in lines as `pos/len unit` (`None`: the percentage only).
fn styled(label: &str, len: u64, count: &str, unit: Option<&str>) -> ProgressBar {
    if !stderr_is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
        bar.set_prefix(label.to_string());
        print_lines(&bar, unit.map(String::from));
        return bar;
    }
    let template = format!("{{spinner}} {{prefix}} [{{bar:30}}] {count}  {{msg}}  {{elapsed}}");
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(&template)
            .expect("the progress template is valid")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A step of unknown length, e.g. a Verilator build: a spinner on a terminal; otherwise a
/// line when it starts and every [`LINE_INTERVAL`] while it runs. [`Step::finish`] prints its
/// outcome and time either way.
#[derive(Debug)]
pub struct Step {
    bar: ProgressBar,
    label: String,
    started: Instant,
}

/// Starts a step labelled `label` doing `what` (e.g. `compiling the RTL with Verilator`).
pub fn step(label: &str, what: &str) -> Step {
    let bar = if stderr_is_terminal() {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix}: {msg}  {elapsed}")
                .expect("the step template is valid"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        eprintln!("{label}: {what}…");
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        print_lines(&bar, None);
        bar
    };
    bar.set_prefix(label.to_string());
    bar.set_message(what.to_string());
    Step {
        bar,
        label: label.to_string(),
        started: Instant::now(),
    }
}

impl Step {
    /// Ends the step, printing `{label}: {outcome} in {seconds} s`.
    pub fn finish(self, outcome: &str) {
        self.bar.finish_and_clear();
        eprintln!(
            "{}: {outcome} in {:.1} s",
            self.label,
            self.started.elapsed().as_secs_f64()
        );
    }
}

fn stderr_is_terminal() -> bool {
    io::stderr().is_terminal()
}

/// The interval between progress lines: `$KAQ_PROGRESS_SECS` when it is a positive number of
/// seconds, else [`LINE_INTERVAL`].
fn line_interval() -> Duration {
    std::env::var("KAQ_PROGRESS_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(LINE_INTERVAL, |s| Duration::from_secs_f64(s.min(86_400.0)))
}

/// Prints `bar`'s [`line`] to stderr every [`line_interval`] until it is finished or dropped.
fn print_lines(bar: &ProgressBar, unit: Option<String>) {
    let weak = bar.downgrade();
    let interval = line_interval();
    let poll = interval.min(Duration::from_millis(100));
    std::thread::spawn(move || {
        let mut next = Instant::now() + interval;
        loop {
            std::thread::sleep(poll);
            let Some(bar) = weak.upgrade() else {
                return;
            };
            if bar.is_finished() {
                return;
            }
            let now = Instant::now();
            if now >= next {
                eprintln!(
                    "{}",
                    line(
                        &bar.prefix(),
                        bar.position(),
                        bar.length(),
                        unit.as_deref(),
                        &bar.message(),
                        bar.elapsed(),
                    )
                );
                next = now + interval;
            }
        }
    });
}

/// One progress line: `label: 42% (21/50 batches), message, 12 s elapsed`; the percentage and
/// count only when the length is known (non-zero), the count only with a `unit`.
fn line(
    label: &str,
    pos: u64,
    len: Option<u64>,
    unit: Option<&str>,
    message: &str,
    elapsed: Duration,
) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(len) = len.filter(|&l| l > 0) {
        let pos = pos.min(len);
        let percent = pos * 100 / len;
        parts.push(match unit {
            Some("") => format!("{percent}% ({pos}/{len})"),
            Some(unit) => format!("{percent}% ({pos}/{len} {unit})"),
            None => format!("{percent}%"),
        });
    }
    if !message.is_empty() {
        parts.push(message.to_string());
    }
    parts.push(format!("{} s elapsed", elapsed.as_secs()));
    format!("{label}: {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_the_stage_its_percentage_and_the_time() {
        let t = Duration::from_millis(12_700);
        assert_eq!(
            line(
                "f32 epoch 2/5",
                21,
                Some(50),
                Some("batches"),
                "loss 0.12345",
                t
            ),
            "f32 epoch 2/5: 42% (21/50 batches), loss 0.12345, 12 s elapsed"
        );
        assert_eq!(
            line("f32", 3, Some(4), Some(""), "", t),
            "f32: 75% (3/4), 12 s elapsed"
        );
        assert_eq!(
            line("ber", 1500, Some(2000), None, "SNR 10 dB", t),
            "ber: 75%, SNR 10 dB, 12 s elapsed"
        );
        // No length yet (or a step without steps): no percentage.
        assert_eq!(
            line("cosim build", 0, Some(0), Some(""), "compiling", t),
            "cosim build: compiling, 12 s elapsed"
        );
        assert_eq!(
            line("cosim build", 0, None, None, "", Duration::ZERO),
            "cosim build: 0 s elapsed"
        );
        // A position past the end (a bar reused after set_length) reads 100 %.
        assert_eq!(line("x", 9, Some(4), None, "", t), "x: 100%, 12 s elapsed");
    }
}
