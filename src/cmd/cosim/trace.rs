//! The size of a `kaq cosim --trace` VCD, estimated before the run.
//!
//! A VCD is its header (one `$var` line per traced signal) and then, per clock cycle, the
//! values of the signals that changed. The header is on disk as soon as the trace is opened,
//! so the signal count is measured, not guessed; the cycles come from the analytic timing
//! (`kaq_codegen::report::analyse`), stretched by the input stall probability. The bytes per
//! signal and cycle are calibrated on the committed example (`examples/pgd-qpsk-2x2`, 20
//! frames without stalls: at 2 lanes 2045 signals, 376 cycles, 0.93 MB after the header, 1.22
//! bytes per signal-cycle; 1.08 at 4 lanes, 0.92 at 1), rounded up.

/// Bytes one traced signal adds to the VCD per clock cycle, on average.
pub const BYTES_PER_SIGNAL_CYCLE: f64 = 1.3;

/// Above this estimate `kaq cosim --trace` warns.
pub const WARN_BYTES: u64 = 100_000_000;

/// The estimated VCD size in bytes: `header_bytes` plus `signals` × `cycles` ×
/// [`BYTES_PER_SIGNAL_CYCLE`].
pub fn vcd_bytes(header_bytes: u64, signals: u64, cycles: u64) -> u64 {
    header_bytes + (signals as f64 * cycles as f64 * BYTES_PER_SIGNAL_CYCLE).ceil() as u64
}

/// Clock cycles of a run of `frames` frames at `cycles_per_frame` (the pipeline's steady
/// state) with `latency` to drain and input stalls of probability `stall_prob`.
pub fn run_cycles(frames: usize, cycles_per_frame: f64, latency: u64, stall_prob: f64) -> u64 {
    let steady = frames as f64 * cycles_per_frame / (1.0 - stall_prob.clamp(0.0, 0.99));
    steady.ceil() as u64 + latency
}

/// Signals declared in a VCD header (`$var` lines).
pub fn header_signals(header: &str) -> u64 {
    header
        .lines()
        .filter(|l| l.trim_start().starts_with("$var"))
        .count() as u64
}

/// The warning printed above [`WARN_BYTES`], or `None`.
pub fn warning(estimate: u64, frames: usize) -> Option<String> {
    if estimate <= WARN_BYTES {
        return None;
    }
    let per_frame = estimate as f64 / frames.max(1) as f64;
    let fitting = ((WARN_BYTES as f64 / per_frame).floor() as usize).max(1);
    Some(format!(
        "warning: the VCD trace of {frames} frames will be about {:.0} MB; \
         --frames {fitting} keeps it near {} MB",
        estimate as f64 / 1e6,
        WARN_BYTES / 1_000_000
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_matches_the_calibration_run_and_scales_with_frames() {
        // The calibration run (2 lanes): 86 216 header bytes, 2045 signals, 376 cycles,
        // 1 020 901 bytes.
        let est = vcd_bytes(86_216, 2045, 376);
        let measured = 1_020_901f64;
        assert!(
            (est as f64 / measured - 1.0).abs() < 0.1,
            "estimate {est} against {measured}"
        );
        assert!(vcd_bytes(0, 3056, 2460) > 9 * vcd_bytes(0, 3056, 246));
        assert_eq!(vcd_bytes(10, 0, 1000), 10);
    }

    #[test]
    fn run_cycles_count_frames_latency_and_stalls() {
        assert_eq!(run_cycles(20, 10.5, 48, 0.0), 258);
        assert_eq!(run_cycles(20, 10.0, 0, 0.5), 400);
        assert_eq!(run_cycles(0, 10.0, 7, 0.0), 7);
    }

    #[test]
    fn header_signals_counts_var_lines() {
        let h = "$scope module top $end\n  $var wire 1 ! clk $end\n $var wire 8 \" d [7:0] $end\n$upscope $end\n$enddefinitions $end\n";
        assert_eq!(header_signals(h), 2);
    }

    #[test]
    fn warns_above_the_limit_and_names_fewer_frames() {
        assert_eq!(warning(WARN_BYTES, 100), None);
        let w = warning(449_000_000, 100).unwrap();
        assert!(w.contains("about 449 MB"), "{w}");
        assert!(w.contains("--frames 22"), "{w}");
    }
}
