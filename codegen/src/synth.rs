//! Yosys synthesis of a generated design and the cell counts it reports (`kaq report
//! --synth`). The counts are Yosys's technology mapping, estimates rather than the results
//! of a vendor place and route.
//!
//! [`synthesize`] writes the design's files into a scratch directory, runs one Yosys script
//!
//! | target    | synthesis command                                           |
//! |-----------|-------------------------------------------------------------|
//! | `generic` | `synth -flatten -top T`                                     |
//! | `ice40`   | `synth_ice40 -dsp -flatten -top T`                          |
//! | `xilinx`  | `synth_xilinx -flatten -noiopad -noclkbuf -family xc7 -top T` |
//!
//! followed by `tee -q -o stat.json stat -json` (and for `xilinx` also `tee -q -o
//! stat_tech.txt stat -tech xilinx`, whose "Estimated number of LCs" is kept), and sorts the
//! cells of the flattened top by type ([`Category::of`]):
//!
//! | category | generic                                   | ice40            | xilinx                     |
//! |----------|-------------------------------------------|------------------|----------------------------|
//! | logic    | `$_AND_`, `$_MUX_`, `$_XOR_`, … (gates)   | `SB_LUT4`        | `LUT1`–`LUT6`              |
//! | ff       | `$_DFF*`, `$_DFFE*`, `$_SDFF*`, `$_DFFSR*`, `$_ALDFF*`, `$_FF_` | `SB_DFF*` | `FD*` (FDRE, FDSE, FDCE, FDPE) |
//! | carry    | —                                         | `SB_CARRY`       | `CARRY4`, `CARRY8`         |
//! | dsp      | —                                         | `SB_MAC16`       | `DSP48*`                   |
//! | memory   | `$mem*`                                   | `SB_RAM40_4K*`   | `RAMB*`, `RAM32*`, `RAM64*`, `RAM128*`, `RAM256*`, `SRL*` |
//! | latch    | `$_DLATCH*`, `$_SR_*`, `$dlatch*`         | same             | `LD*` (LDCE, LDPE) and the generic ones |
//! | other    | everything else (`MUXF7`, `MUXF8`, `GND`, `VCC`, `SB_GB`, …) | | |
//!
//! Latches are never intended: a nonzero count means the RTL infers one. Yosys runs
//! without a time limit; when it fails, the error carries the tail of its output.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::Instant;

use serde::Serialize;
use thiserror::Error;

use crate::Generated;

/// A synthesis target of [`synthesize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Yosys's generic gate library (`synth`).
    Generic,
    /// Lattice iCE40 (`synth_ice40 -dsp`).
    Ice40,
    /// Xilinx 7-series (`synth_xilinx -family xc7`).
    Xilinx,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 3] = [Target::Generic, Target::Ice40, Target::Xilinx];

    /// The target's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::Generic => "generic",
            Target::Ice40 => "ice40",
            Target::Xilinx => "xilinx",
        }
    }

    /// The Yosys synthesis command for top module `top`.
    pub fn synth_command(self, top: &str) -> String {
        match self {
            Target::Generic => format!("synth -flatten -top {top}"),
            Target::Ice40 => format!("synth_ice40 -dsp -flatten -top {top}"),
            Target::Xilinx => {
                format!("synth_xilinx -flatten -noiopad -noclkbuf -family xc7 -top {top}")
            }
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown synthesis target `{s}`; expected generic, ice40 or xilinx")
            })
    }
}

/// What a cell type counts as (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Combinational logic: LUTs on the FPGA targets, simple gates on `generic`.
    Logic,
    /// Flip-flops.
    Ff,
    /// Carry-chain cells.
    Carry,
    /// DSP blocks (hard multipliers).
    Dsp,
    /// Block RAM, LUT RAM, shift-register LUTs and unmapped memories.
    Memory,
    /// Latches (never intended).
    Latch,
    /// Anything else.
    Other,
}

impl Category {
    /// The category of cell type `cell` under `target`.
    pub fn of(target: Target, cell: &str) -> Category {
        // Latches first: `$_DLATCH*` would otherwise look like a gate.
        if cell.starts_with("$_DLATCH")
            || cell.starts_with("$_SR_")
            || cell.starts_with("$dlatch")
            || cell.starts_with("$sr")
        {
            return Category::Latch;
        }
        const GENERIC_FF: [&str; 9] = [
            "$_DFF_",
            "$_DFFE_",
            "$_SDFF_",
            "$_SDFFE_",
            "$_SDFFCE_",
            "$_DFFSR_",
            "$_DFFSRE_",
            "$_ALDFF_",
            "$_ALDFFE_",
        ];
        if GENERIC_FF.iter().any(|p| cell.starts_with(p)) || cell == "$_FF_" {
            return Category::Ff;
        }
        if cell.starts_with("$mem") {
            return Category::Memory;
        }
        match target {
            Target::Generic => {
                if cell.starts_with("$_") && cell.ends_with('_') {
                    Category::Logic
                } else {
                    Category::Other
                }
            }
            Target::Ice40 => match cell {
                "SB_LUT4" => Category::Logic,
                "SB_CARRY" => Category::Carry,
                "SB_MAC16" => Category::Dsp,
                c if c.starts_with("SB_DFF") => Category::Ff,
                c if c.starts_with("SB_RAM40_4K") => Category::Memory,
                _ => Category::Other,
            },
            Target::Xilinx => {
                let lut = cell
                    .strip_prefix("LUT")
                    .is_some_and(|r| matches!(r, "1" | "2" | "3" | "4" | "5" | "6" | "6_2"));
                if lut {
                    Category::Logic
                } else if cell.starts_with("FD") {
                    Category::Ff
                } else if cell.starts_with("LD") {
                    Category::Latch
                } else if cell.starts_with("CARRY") {
                    Category::Carry
                } else if cell.starts_with("DSP48") {
                    Category::Dsp
                } else if ["RAMB", "RAM32", "RAM64", "RAM128", "RAM256", "SRL"]
                    .iter()
                    .any(|p| cell.starts_with(p))
                {
                    Category::Memory
                } else {
                    Category::Other
                }
            }
        }
    }
}

/// The cells of one synthesis run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SynthReport {
    /// The target.
    pub target: Target,
    /// The top module.
    pub top: String,
    /// The Yosys synthesis command that ran.
    pub command: String,
    /// Cells of the flattened top by type.
    pub cells: BTreeMap<String, u64>,
    /// Every cell.
    pub total: u64,
    /// LUTs (ice40, xilinx) or simple gates (generic).
    pub logic: u64,
    /// Flip-flops.
    pub ff: u64,
    /// Carry cells.
    pub carry: u64,
    /// DSP blocks.
    pub dsp: u64,
    /// Memory cells.
    pub memory: u64,
    /// Latches; 0 in a correct design.
    pub latch: u64,
    /// Cells in no other category.
    pub other: u64,
    /// `stat -tech xilinx`'s estimated number of logic cells (xilinx only).
    pub estimated_lcs: Option<u64>,
    /// Wall-clock seconds Yosys ran.
    pub seconds: f64,
    /// CPU seconds Yosys used, where the OS tells it (the machine may be shared: this is the
    /// figure to compare).
    pub cpu_seconds: Option<f64>,
}

impl SynthReport {
    /// Sorts `cells` into the categories of `target`.
    pub fn from_cells(
        target: Target,
        top: &str,
        cells: BTreeMap<String, u64>,
        estimated_lcs: Option<u64>,
        seconds: f64,
    ) -> Self {
        let mut r = SynthReport {
            target,
            top: top.to_string(),
            command: target.synth_command(top),
            total: cells.values().sum(),
            logic: 0,
            ff: 0,
            carry: 0,
            dsp: 0,
            memory: 0,
            latch: 0,
            other: 0,
            estimated_lcs,
            seconds,
            cpu_seconds: None,
            cells: BTreeMap::new(),
        };
        for (cell, &count) in &cells {
            let slot = match Category::of(target, cell) {
                Category::Logic => &mut r.logic,
                Category::Ff => &mut r.ff,
                Category::Carry => &mut r.carry,
                Category::Dsp => &mut r.dsp,
                Category::Memory => &mut r.memory,
                Category::Latch => &mut r.latch,
                Category::Other => &mut r.other,
            };
            *slot += count;
        }
        r.cells = cells;
        r
    }
}

/// Errors of [`synthesize`].
#[derive(Debug, Error)]
pub enum SynthError {
    /// Yosys is not installed.
    #[error("yosys was not found on PATH; install it with `apt-get install -y yosys`")]
    NotFound,
    /// Yosys is required (`KAQ_REQUIRE_VERILATOR=1`) but missing.
    #[error(
        "KAQ_REQUIRE_VERILATOR=1 but yosys was not found on PATH; install it with `apt-get install -y yosys`"
    )]
    Required,
    /// Yosys ran and failed.
    #[error("yosys ({command}) failed with {status}; last output:\n{tail}")]
    Failed {
        /// The synthesis command.
        command: String,
        /// The exit status.
        status: String,
        /// The last lines of its stderr and stdout.
        tail: String,
    },
    /// Yosys ran past its time limit and was stopped.
    #[error("yosys ({command}) was stopped after {seconds:.0} s, its time limit")]
    TimedOut {
        /// The synthesis command.
        command: String,
        /// Seconds it ran.
        seconds: f64,
    },
    /// The statistics file is not what `stat -json` writes.
    #[error("{path}: unexpected `stat -json` output: {reason}")]
    Stat {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A synthesis wrapper failed to render.
    #[error("synthesis wrapper template: {0}")]
    Template(String),
    /// Reading or writing a file, or starting Yosys.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The OS error (in the message, so not also the `source()`).
        error: std::io::Error,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |error| SynthError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// The Yosys executable on PATH: `Ok(None)` when it is missing and allowed to be, an error when
/// `KAQ_REQUIRE_VERILATOR=1` (the same rule as `kaq_sim::tools::require`; kaq-codegen does not
/// depend on kaq-sim, which depends on it).
pub fn find_yosys() -> Result<Option<PathBuf>, SynthError> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("yosys"))
            .find(|p| p.is_file())
    });
    let required = std::env::var("KAQ_REQUIRE_VERILATOR")
        .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    match found {
        Some(path) => Ok(Some(path)),
        None if required => Err(SynthError::Required),
        None => Ok(None),
    }
}

/// The Yosys script that synthesizes `sources` for `target`.
pub fn script(sources: &[&str], top: &str, target: Target) -> String {
    let mut s = String::new();
    for src in sources {
        s.push_str(&format!("read_verilog {src}\n"));
    }
    s.push_str(&target.synth_command(top));
    s.push('\n');
    s.push_str("tee -q -o stat.json stat -json\n");
    if target == Target::Xilinx {
        s.push_str("tee -q -o stat_tech.txt stat -tech xilinx\n");
    }
    s
}

/// Synthesizes `generated` with Yosys for `target`. `dir` is a scratch directory (created
/// if missing) that receives the design's files, the script `synth.ys` and Yosys's
/// statistics; it should not be a directory written by [`crate::write_design`], whose
/// manifest does not list these extra files.
pub fn synthesize(
    generated: &Generated,
    dir: &Path,
    target: Target,
) -> Result<SynthReport, SynthError> {
    synthesize_within(generated, dir, target, None)
}

/// [`synthesize`] with a time limit: Yosys is killed and [`SynthError::TimedOut`] returned
/// when it runs longer than `limit`.
pub fn synthesize_within(
    generated: &Generated,
    dir: &Path,
    target: Target,
    limit: Option<std::time::Duration>,
) -> Result<SynthReport, SynthError> {
    let yosys = find_yosys()?.ok_or(SynthError::NotFound)?;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    for file in &generated.files {
        let path = dir.join(&file.name);
        std::fs::write(&path, &file.contents).map_err(io_err(&path))?;
    }
    let top = &generated.design.top;
    let sources: Vec<&str> = generated
        .sources()
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    let ys = dir.join("synth.ys");
    std::fs::write(&ys, script(&sources, top, target)).map_err(io_err(&ys))?;
    let stat = dir.join("stat.json");
    let _ = std::fs::remove_file(&stat);

    let deadline = limit.map(|l| Instant::now() + l);
    let time = run_yosys(
        &yosys,
        dir,
        "synth.ys",
        deadline,
        &target.synth_command(top),
    )?;
    let text = std::fs::read_to_string(&stat).map_err(io_err(&stat))?;
    let cells = parse_stat_json(&text, top).map_err(|reason| SynthError::Stat {
        path: stat.display().to_string(),
        reason,
    })?;
    let estimated_lcs = if target == Target::Xilinx {
        let path = dir.join("stat_tech.txt");
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        estimated_lcs(&text)
    } else {
        None
    };
    let mut report = SynthReport::from_cells(target, top, cells, estimated_lcs, time.wall);
    report.cpu_seconds = time.cpu;
    Ok(report)
}

/// The seconds a run took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RunTime {
    /// Wall clock.
    pub wall: f64,
    /// CPU (user + system) of the process, where the OS tells it (Linux `/proc`), sampled
    /// every 100 ms.
    pub cpu: Option<f64>,
}

/// User + system CPU seconds of process `pid` from `/proc/<pid>/stat` (Linux; clock ticks of
/// 1/100 s, the kernel's `USER_HZ`).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields count after the last ')'.
    let rest = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Runs `yosys -q -s script` in `dir` (its output in `yosys.out` and `yosys.err` there) and
/// returns the time it took; past `deadline` Yosys is killed and [`SynthError::TimedOut`]
/// returned. `command` names the run in errors.
pub(crate) fn run_yosys(
    yosys: &Path,
    dir: &Path,
    script: &str,
    deadline: Option<Instant>,
    command: &str,
) -> Result<RunTime, SynthError> {
    let start = Instant::now();
    let out_path = dir.join("yosys.out");
    let err_path = dir.join("yosys.err");
    let out_file = std::fs::File::create(&out_path).map_err(io_err(&out_path))?;
    let err_file = std::fs::File::create(&err_path).map_err(io_err(&err_path))?;
    let mut child = Command::new(yosys)
        .current_dir(dir)
        .args(["-q", "-s", script])
        .stdout(out_file)
        .stderr(err_file)
        .spawn()
        .map_err(io_err(yosys))?;
    let mut cpu = None;
    let status = loop {
        cpu = cpu_seconds(child.id()).or(cpu);
        if let Some(status) = child.try_wait().map_err(io_err(yosys))? {
            break status;
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SynthError::TimedOut {
                command: command.to_string(),
                seconds: start.elapsed().as_secs_f64(),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let seconds = start.elapsed().as_secs_f64();
    if !status.success() {
        let stdout = std::fs::read(&out_path).unwrap_or_default();
        let stderr = std::fs::read(&err_path).unwrap_or_default();
        return Err(SynthError::Failed {
            command: command.to_string(),
            status: status.to_string(),
            tail: tail(&stderr, &stdout, 20),
        });
    }
    Ok(RunTime { wall: seconds, cpu })
}

/// The last `lines` lines of `stderr` followed by those of `stdout`.
fn tail(stderr: &[u8], stdout: &[u8], lines: usize) -> String {
    let mut out = Vec::new();
    for stream in [stderr, stdout] {
        let text = String::from_utf8_lossy(stream);
        let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let from = all.len().saturating_sub(lines);
        out.extend(all[from..].iter().map(|l| l.to_string()));
    }
    if out.is_empty() {
        "(no output)".to_string()
    } else {
        out.join("\n")
    }
}

/// The cells by type of module `top` in `stat -json` output (the whole design's when Yosys
/// reports it, else the top module's entry).
pub fn parse_stat_json(text: &str, top: &str) -> Result<BTreeMap<String, u64>, String> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let module = doc
        .get("design")
        .filter(|d| d.get("num_cells_by_type").is_some())
        .or_else(|| {
            let modules = doc.get("modules")?.as_object()?;
            modules
                .get(&format!("\\{top}"))
                .or_else(|| modules.get(top))
                .or_else(|| (modules.len() == 1).then(|| modules.values().next())?)
        })
        .ok_or_else(|| format!("no entry for module {top}"))?;
    let by_type = module
        .get("num_cells_by_type")
        .and_then(|v| v.as_object())
        .ok_or("missing num_cells_by_type")?;
    let mut cells = BTreeMap::new();
    for (cell, count) in by_type {
        let count = count
            .as_u64()
            .ok_or_else(|| format!("num_cells_by_type.{cell}: not a count"))?;
        // Yosys ≥ 0.40 lists scope markers that are not hardware.
        if cell != "$scopeinfo" {
            cells.insert(cell.trim_start_matches('\\').to_string(), count);
        }
    }
    Ok(cells)
}

/// "Estimated number of LCs: N" from `stat -tech xilinx` output.
pub(crate) fn estimated_lcs(text: &str) -> Option<u64> {
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("Estimated number of LCs:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print() {
        for t in Target::ALL {
            assert_eq!(t.name().parse::<Target>().unwrap(), t);
        }
        assert_eq!("XILINX".parse::<Target>().unwrap(), Target::Xilinx);
        assert!("ecp5".parse::<Target>().unwrap_err().contains("ecp5"));
    }

    #[test]
    fn categories() {
        use Category::*;
        let g = Target::Generic;
        assert_eq!(Category::of(g, "$_AND_"), Logic);
        assert_eq!(Category::of(g, "$_MUX_"), Logic);
        assert_eq!(Category::of(g, "$_DFF_P_"), Ff);
        assert_eq!(Category::of(g, "$_SDFFE_PP0P_"), Ff);
        assert_eq!(Category::of(g, "$_DFFE_PN0P_"), Ff);
        assert_eq!(Category::of(g, "$_DLATCH_P_"), Latch);
        assert_eq!(Category::of(g, "$mem_v2"), Memory);
        let i = Target::Ice40;
        assert_eq!(Category::of(i, "SB_LUT4"), Logic);
        assert_eq!(Category::of(i, "SB_DFFESR"), Ff);
        assert_eq!(Category::of(i, "SB_CARRY"), Carry);
        assert_eq!(Category::of(i, "SB_MAC16"), Dsp);
        assert_eq!(Category::of(i, "SB_RAM40_4K"), Memory);
        assert_eq!(Category::of(i, "$_DLATCH_N_"), Latch);
        let x = Target::Xilinx;
        assert_eq!(Category::of(x, "LUT6"), Logic);
        assert_eq!(Category::of(x, "LUT1"), Logic);
        assert_eq!(Category::of(x, "FDRE"), Ff);
        assert_eq!(Category::of(x, "LDCE"), Latch);
        assert_eq!(Category::of(x, "CARRY4"), Carry);
        assert_eq!(Category::of(x, "DSP48E1"), Dsp);
        assert_eq!(Category::of(x, "RAM64M"), Memory);
        assert_eq!(Category::of(x, "SRLC32E"), Memory);
        assert_eq!(Category::of(x, "MUXF7"), Other);
        assert_eq!(Category::of(x, "LUT7"), Other);
    }

    #[test]
    fn stat_json_of_a_flattened_top() {
        let text = r#"{"creator":"Yosys","modules":{"\\dut":{"num_wires":3,"num_cells":7,
            "num_cells_by_type":{"LUT2":2,"FDRE":3,"DSP48E1":1,"LDCE":1}}}}"#;
        let cells = parse_stat_json(text, "dut").unwrap();
        assert_eq!(cells.len(), 4);
        let r = SynthReport::from_cells(Target::Xilinx, "dut", cells, Some(2), 0.0);
        assert_eq!(
            (r.total, r.logic, r.ff, r.dsp, r.latch, r.other),
            (7, 2, 3, 1, 1, 0)
        );
        assert!(parse_stat_json(r#"{"modules":{}}"#, "dut").is_err());
        assert!(parse_stat_json("not json", "dut").is_err());
        let bad = r#"{"modules":{"\\dut":{"num_cells_by_type":{"LUT2":-1}}}}"#;
        assert!(parse_stat_json(bad, "dut").unwrap_err().contains("LUT2"));
    }

    #[test]
    fn lcs_line() {
        let text = "   Number of cells: 5\n\n   Estimated number of LCs:         20\n";
        assert_eq!(estimated_lcs(text), Some(20));
        assert_eq!(estimated_lcs("nothing"), None);
    }

    #[test]
    fn failure_tail_keeps_the_last_lines() {
        let err: Vec<u8> = (0..30)
            .map(|i| format!("e{i}\n"))
            .collect::<String>()
            .into();
        let t = tail(&err, b"", 3);
        assert_eq!(t, "e27\ne28\ne29");
        assert_eq!(tail(b"", b"", 3), "(no output)");
    }
}
