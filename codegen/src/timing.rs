//! Clock figures of a generated design (docs/synthesis.md §Timing): the
//! static-timing estimate of Yosys's `sta` on a mapped netlist, and the post-route Fmax of
//! nextpnr-ice40 for designs that fit an iCE40.
//!
//! `sta` runs on the unit's netlist read back with the target's cell library and its
//! `specify` delays (`+/xilinx/cells_sim.v`, `+/ice40/cells_sim.v` for the UltraPlus
//! family); it sums cell delays only, with no wires. [`PathTiming::fmax_mhz`] turns the
//! longest path into an estimated clock with a per-target routing factor
//! ([`routing_factor`]): measured for iCE40 (placed-and-routed Fmax against `sta` on the
//! same designs, docs/synthesis.md), an assumption for xc7, for which no open router is at
//! hand. Either way the figure is labelled an estimate; only [`place_ice40`] gives a placed
//! one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::Generated;
use crate::synth::{SynthError, Target, find_yosys, io_err, parse_stat_json, run_yosys};

/// The cell library with timing of `target` (`None` for the generic gates, which have no
/// delays).
pub fn cell_models(target: Target) -> Option<&'static str> {
    match target {
        Target::Generic => None,
        Target::Ice40 => Some("-D ICE40_U +/ice40/cells_sim.v"),
        Target::Xilinx => Some("+/xilinx/cells_sim.v"),
    }
}

/// The ratio of a placed-and-routed clock period to the `sta` delay of the same netlist
/// (docs/synthesis.md §Timing: measured with nextpnr-ice40 for iCE40; for xc7 an allowance
/// for routing, not a measurement).
pub fn routing_factor(target: Target) -> Option<f64> {
    match target {
        Target::Generic => None,
        Target::Ice40 => Some(2.1),
        Target::Xilinx => Some(1.5),
    }
}

/// The longest path `sta` found in one netlist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathTiming {
    /// Its delay in ns (cell delays only).
    pub delay_ns: f64,
    /// Cells on it by type (`LUT6`, `CARRY4`, `DSP48E1`, …), the end point included.
    pub cells: BTreeMap<String, u64>,
}

impl PathTiming {
    /// The estimated clock in MHz: 1000 / (delay × [`routing_factor`]).
    pub fn fmax_mhz(&self, target: Target) -> Option<f64> {
        let f = routing_factor(target)?;
        (self.delay_ns > 0.0).then(|| 1000.0 / (self.delay_ns * f))
    }
}

/// The longest path of `sta` output: "Latest arrival time in 'M' is T:" (T in ps, the unit of
/// the cell libraries' `specify` blocks) followed by one line per cell, `T name (TYPE.pin)`.
pub fn parse_sta(text: &str) -> Result<PathTiming, String> {
    let mut lines = text.lines();
    let head = lines
        .by_ref()
        .find(|l| l.contains("Latest arrival time in"))
        .ok_or("no \"Latest arrival time\" line")?;
    let ps: f64 = head
        .rsplit_once(" is ")
        .map(|(_, t)| t.trim().trim_end_matches(':'))
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("cannot read the arrival time of {head:?}"))?;
    let mut cells = BTreeMap::new();
    for l in lines {
        let l = l.trim();
        if l.is_empty() || l.starts_with("Arrival histogram") {
            break;
        }
        // "19286 _23690_ (FDRE.D)"
        if let Some((_, cell)) = l.rsplit_once('(')
            && l.chars().next().is_some_and(|c| c.is_ascii_digit())
        {
            let ty = cell.trim_end_matches(')').split('.').next().unwrap_or("");
            if !ty.is_empty() {
                *cells.entry(ty.to_string()).or_default() += 1;
            }
        }
    }
    Ok(PathTiming {
        delay_ns: ps / 1000.0,
        cells,
    })
}

/// The iCE40 device designs are placed on.
pub const ICE40_DEVICE: &str = "hx8k";
/// Its package (206 I/Os: the generated tops have wide ports).
pub const ICE40_PACKAGE: &str = "ct256";
/// Its logic cells.
pub const ICE40_LCS: u64 = 7680;

/// The outcome of [`place_ice40`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Placement {
    /// Placed and routed.
    Placed {
        /// The device and package.
        device: String,
        /// nextpnr's post-route Fmax of `clk` in MHz.
        fmax_mhz: f64,
        /// Logic cells used.
        lcs: u64,
        /// `sta`'s longest path of the same netlist (HX timing models), in ns: the period
        /// 1000 / `fmax_mhz` over it is the measured routing factor.
        sta_ns: Option<f64>,
        /// Seconds Yosys and nextpnr took.
        seconds: f64,
    },
    /// Too large for the device: Yosys's LUT4 or FF count exceeds its logic cells.
    DoesNotFit {
        /// The device.
        device: String,
        /// max(LUT4, FF) of the flat synthesis.
        cells: u64,
        /// The device's logic cells.
        capacity: u64,
    },
}

/// Errors of [`place_ice40`] beyond Yosys's.
fn nextpnr() -> Result<Option<PathBuf>, SynthError> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nextpnr-ice40"))
            .find(|p| p.is_file())
    });
    let required = std::env::var("KAQ_REQUIRE_VERILATOR")
        .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    match found {
        Some(p) => Ok(Some(p)),
        None if required => Err(SynthError::Failed {
            command: "nextpnr-ice40".to_string(),
            status: "KAQ_REQUIRE_VERILATOR=1 but nextpnr-ice40 was not found on PATH".to_string(),
            tail: "install it with `apt-get install -y nextpnr-ice40`".to_string(),
        }),
        None => Ok(None),
    }
}

/// True when nextpnr-ice40 is on PATH (an error when it is missing and
/// `KAQ_REQUIRE_VERILATOR=1`).
pub fn nextpnr_available() -> Result<bool, SynthError> {
    Ok(nextpnr()?.is_some())
}

/// "Max frequency for clock 'C': F MHz" of nextpnr's log, the last one (after routing).
pub fn parse_nextpnr_fmax(log: &str) -> Option<f64> {
    log.lines()
        .rev()
        .filter_map(|l| l.split_once("Max frequency for clock "))
        .filter_map(|(_, rest)| rest.split_once("': ")?.1.split_whitespace().next())
        .find_map(|f| f.parse().ok())
}

/// Synthesizes `generated` flat for iCE40 HX (LUT multipliers: the HX family has no DSP)
/// and, when it fits [`ICE40_DEVICE`], places and routes it with nextpnr-ice40 and reads its
/// Fmax. `dir` is a scratch directory.
pub fn place_ice40(
    generated: &Generated,
    dir: &Path,
    limit: Option<Duration>,
) -> Result<Placement, SynthError> {
    let yosys = find_yosys()?.ok_or(SynthError::NotFound)?;
    let pnr = nextpnr()?.ok_or_else(|| SynthError::Failed {
        command: "nextpnr-ice40".to_string(),
        status: "not found on PATH".to_string(),
        tail: "install it with `apt-get install -y nextpnr-ice40`".to_string(),
    })?;
    let start = Instant::now();
    let deadline = limit.map(|l| start + l);
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    for file in &generated.files {
        let path = dir.join(&file.name);
        std::fs::write(&path, &file.contents).map_err(io_err(&path))?;
    }
    let top = &generated.design.top;
    let mut script = String::new();
    for f in generated.sources() {
        script.push_str(&format!("read_verilog {}\n", f.name));
    }
    let command = format!("synth_ice40 -flatten -top {top} -json net.json");
    script.push_str(&command);
    script.push_str("\ntee -q -o stat.json stat -json\n");
    // The same netlist under sta with the HX timing models, for the routing factor.
    script.push_str("write_verilog -noattr net.v\ndesign -reset\n");
    script.push_str("read_verilog -lib -specify -D ICE40_HX +/ice40/cells_sim.v\n");
    script.push_str(&format!(
        "read_verilog net.v\nhierarchy -top {top}\ntee -q -o sta.txt sta\n"
    ));
    let ys = dir.join("place.ys");
    std::fs::write(&ys, script).map_err(io_err(&ys))?;
    run_yosys(&yosys, dir, "place.ys", deadline, &command)?;
    let stat = dir.join("stat.json");
    let text = std::fs::read_to_string(&stat).map_err(io_err(&stat))?;
    let cells = parse_stat_json(&text, top).map_err(|reason| SynthError::Stat {
        path: stat.display().to_string(),
        reason,
    })?;
    let count = |pred: &dyn Fn(&str) -> bool| -> u64 {
        cells.iter().filter(|(c, _)| pred(c)).map(|(_, n)| n).sum()
    };
    let luts = count(&|c| c == "SB_LUT4");
    let ffs = count(&|c| c.starts_with("SB_DFF"));
    let need = luts.max(ffs);
    if need > ICE40_LCS {
        return Ok(Placement::DoesNotFit {
            device: format!("iCE40 {ICE40_DEVICE}"),
            cells: need,
            capacity: ICE40_LCS,
        });
    }
    let log = dir.join("nextpnr.log");
    let log_file = std::fs::File::create(&log).map_err(io_err(&log))?;
    let mut child = std::process::Command::new(&pnr)
        .current_dir(dir)
        .args([
            &format!("--{ICE40_DEVICE}"),
            "--package",
            ICE40_PACKAGE,
            "--json",
            "net.json",
            "--freq",
            "12",
            "--seed",
            "1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(io_err(&pnr))?;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(io_err(&pnr))? {
            break s;
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SynthError::TimedOut {
                command: "nextpnr-ice40".to_string(),
                seconds: start.elapsed().as_secs_f64(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&log).map_err(io_err(&log))?;
    if !status.success() {
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        return Err(SynthError::Failed {
            command: "nextpnr-ice40".to_string(),
            status: status.to_string(),
            tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    let fmax = parse_nextpnr_fmax(&text).ok_or_else(|| SynthError::Stat {
        path: log.display().to_string(),
        reason: "no \"Max frequency for clock\" line".to_string(),
    })?;
    let lcs = text
        .lines()
        .rev()
        .filter_map(|l| l.split_once("ICESTORM_LC:"))
        .find_map(|(_, r)| r.split('/').next()?.trim().parse().ok())
        .unwrap_or(need);
    let sta_ns = std::fs::read_to_string(dir.join("sta.txt"))
        .ok()
        .and_then(|t| parse_sta(&t).ok())
        .map(|p| p.delay_ns);
    Ok(Placement::Placed {
        device: format!("iCE40 {ICE40_DEVICE} {ICE40_PACKAGE}"),
        fmax_mhz: fmax,
        lcs,
        sta_ns,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sta_report() {
        let text = "\n17. Executing STA pass (static timing analysis).\n\
            Latest arrival time in 'kaq_unit' is 19286:\n   19286 _23690_ (FDRE.D)\n\
            \x20          \\_05463_\n   19286 _20443_ (LUT6.I5->O)\n           \\_1_ [5]\n\
            \x20  18121 _21907_ (CARRY4.CI->O)\n   17882 _21906_ (CARRY4.CI->CO)\n\
            \x20    303 _22856_ (FDRE.C->Q)\n\nArrival histogram:\n";
        let t = parse_sta(text).unwrap();
        assert_eq!(t.delay_ns, 19.286);
        assert_eq!(t.cells["CARRY4"], 2);
        assert_eq!(t.cells["FDRE"], 2);
        assert_eq!(t.cells["LUT6"], 1);
        assert!(parse_sta("nothing").is_err());
        let f = t.fmax_mhz(Target::Xilinx).unwrap();
        assert!((f - 1000.0 / (19.286 * 1.5)).abs() < 1e-9);
        assert_eq!(t.fmax_mhz(Target::Generic), None);
    }

    #[test]
    fn nextpnr_fmax_is_the_last_report() {
        let log = "Info: Max frequency for clock 'clk$SB_IO_IN_$glb_clk': 40.10 MHz (PASS at 12.00 MHz)\n\
                   Info: Max frequency for clock 'clk$SB_IO_IN_$glb_clk': 35.52 MHz (PASS at 12.00 MHz)\n";
        assert_eq!(parse_nextpnr_fmax(log), Some(35.52));
        assert_eq!(parse_nextpnr_fmax("Info: nothing"), None);
    }
}
