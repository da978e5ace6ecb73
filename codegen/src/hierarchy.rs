//! Hierarchical synthesis of a generated design (docs/synthesis.md): each
//! distinct module instance is synthesized once, in its context, in parallel, with the results
//! cached by content hash and combined by instance counts.
//!
//! The top of a generated design is wiring only (no cells); its cost is the sum of its
//! instances: the K layer stages and the output stage. Synthesizing a stage alone would cost
//! more than it does in the flattened design, because Yosys cannot see that an input is held
//! at zero (the first stage's input states) or that an output is never read (the state
//! streams the rest of the pipeline ignores). [`contexts`] derives that context from the
//! stream liveness of the layer pipeline (docs/synthesis.md §Context), and each [`Unit`] is a
//! wrapper `kaq_unit` around one `kaq_layer_core` or `kaq_out_stage` with those inputs tied
//! to zero and those outputs left open. Stages whose wrappers are byte-identical are one
//! unit with several instances.
//!
//! [`synthesize_units`] runs up to `jobs` Yosys processes at once, each unit in its own
//! scratch directory, until every unit is done or the time limit passes; a unit whose result
//! is in the cache (keyed by the SHA-256 of the Yosys version, the script and every source)
//! is not run again. A run that did not finish every unit is a partial result, labelled so,
//! with the units that did finish.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use askama::Template;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::design::{Design, LayerDesign};
use crate::synth::{
    SynthError, SynthReport, Target, estimated_lcs, find_yosys, io_err, parse_stat_json, run_yosys,
};
use crate::timing::{self, PathTiming};
use crate::{Generated, PRIMITIVES};

/// The state streams a layer stage passes on, in port order.
pub const STATES: [&str; 4] = ["x1", "x2", "s", "u"];

/// How one layer instance sits in the pipeline: which of its state inputs the design holds at
/// zero and which of its outputs anything reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LayerContext {
    /// `s_x1`, `s_x2`, `s_s`, `s_u` that are zero in the design or read by nothing that
    /// matters (tied to zero: either way the live outputs do not change).
    pub tied: [bool; 4],
    /// `m_x1`, `m_x2`, `m_s`, `m_u` that a later stage reads.
    pub read: [bool; 4],
    /// `m_h` and `m_y` are read (every stage but the last).
    pub rows_read: bool,
}

/// What the stream analysis needs of one layer (from its `kaq_layer_core` parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LayerKind {
    admm: bool,
    has_mf: bool,
    /// The momentum coefficient table is nonzero: the update reads x⁽ᵏ⁻²⁾.
    uses_x2: bool,
    /// The consensus coefficient table is nonzero: the update reads s and u.
    uses_c: bool,
}

fn param<'a>(l: &'a LayerDesign, name: &str) -> Option<&'a str> {
    l.params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// True for a Verilog constant whose every digit is 0 (`0`, `8'h00`, `2'b00`).
fn is_zero_literal(v: &str) -> bool {
    let digits = v.rsplit_once('\'').map_or(v, |(_, d)| {
        d.trim_start_matches(['s', 'S'])
            .trim_start_matches(['h', 'H', 'b', 'B', 'd', 'D'])
    });
    !digits.is_empty() && digits.chars().all(|c| c == '0' || c == '_')
}

impl LayerKind {
    fn of(l: &LayerDesign) -> Self {
        let flag = |name| param(l, name).is_some_and(|v| v != "0");
        let nonzero = |name| param(l, name).is_some_and(|v| !is_zero_literal(v));
        LayerKind {
            admm: flag("ARCH"),
            has_mf: flag("HAS_MF"),
            uses_x2: nonzero("X2_TABLE"),
            uses_c: nonzero("C_TABLE"),
        }
    }

    /// The state inputs the stage needs for the outputs `read` (docs/synthesis.md §Context):
    /// x1 always (the residual), x2 for momentum, s and u for ADMM-Net or a consensus term,
    /// and for PGD-Net s and u also where they pass through to a read output (s unless the
    /// matched filter writes it).
    fn needs(self, read: [bool; 4]) -> [bool; 4] {
        let consensus = self.admm || self.uses_c;
        [
            true,
            self.uses_x2,
            consensus || (!self.admm && !self.has_mf && read[2]),
            consensus || (!self.admm && read[3]),
        ]
    }

    /// The state outputs that are zero when the inputs `zero` are: x2 is the previous x1
    /// (or the matched filter's x⁽⁰⁾), PGD-Net passes s (unless the matched filter writes
    /// it) and u through; x1 and ADMM-Net's s and u are computed.
    fn zero_out(self, zero: [bool; 4]) -> [bool; 4] {
        [
            false,
            !self.has_mf && zero[0],
            !self.admm && !self.has_mf && zero[2],
            !self.admm && zero[3],
        ]
    }
}

/// The context of every layer instance of `d`, in layer order: the top feeds the first stage
/// zero states, the output stage reads the bin and the output state (`x1` for PGD-Net, `s` for
/// ADMM-Net) of the last.
pub fn contexts(d: &Design) -> Vec<LayerContext> {
    let kinds: Vec<LayerKind> = d.layers.iter().map(LayerKind::of).collect();
    let k = kinds.len();
    // Forward: which inputs are zero.
    let mut zero_in = vec![[false; 4]; k];
    let mut zero = [true; 4];
    for (i, kind) in kinds.iter().enumerate() {
        zero_in[i] = zero;
        zero = kind.zero_out(zero);
    }
    // Backward: which outputs are read.
    let mut read = vec![[false; 4]; k];
    let mut wanted = [false; 4];
    wanted[if d.out_state == "s" { 2 } else { 0 }] = true;
    for i in (0..k).rev() {
        read[i] = wanted;
        wanted = kinds[i].needs(wanted);
    }
    (0..k)
        .map(|i| {
            let needs = kinds[i].needs(read[i]);
            let mut tied = [false; 4];
            for s in 0..4 {
                tied[s] = zero_in[i][s] || !needs[s];
            }
            LayerContext {
                tied,
                read: read[i],
                rows_read: i + 1 < k,
            }
        })
        .collect()
}

/// One port of a unit wrapper.
#[derive(Debug, Clone)]
struct Port {
    dir: &'static str,
    range: String,
    name: String,
}

#[derive(Template)]
#[template(path = "synth_unit.v", escape = "none")]
struct UnitTemplate<'a> {
    cell: &'a str,
    ports: Vec<Port>,
    params: &'a [(String, String)],
    conns: Vec<(String, String)>,
}

/// One distinct module instance and the instances of the design it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unit {
    /// A name: `layer3`, or `out` for the output stage.
    pub name: String,
    /// The cell it wraps (`kaq_layer_core`, `kaq_out_stage`).
    pub cell: String,
    /// The instances of the top it stands for (`u_layer3`, `u_out`).
    pub instances: Vec<String>,
    /// The wrapper module `kaq_unit`.
    #[serde(skip)]
    pub verilog: String,
}

/// The top module of every unit.
pub const UNIT_TOP: &str = "kaq_unit";

struct PortBuilder {
    ports: Vec<Port>,
    conns: Vec<(String, String)>,
}

impl PortBuilder {
    fn new() -> Self {
        PortBuilder {
            ports: Vec::new(),
            conns: Vec::new(),
        }
    }
    fn port(&mut self, dir: &'static str, name: &str, width: u64) {
        let range = if width == 1 {
            String::new()
        } else {
            format!("[{}:0] ", width - 1)
        };
        self.ports.push(Port {
            dir,
            range,
            name: name.to_string(),
        });
        self.conns.push((name.to_string(), name.to_string()));
    }
    fn tie(&mut self, name: &str, width: u64) {
        self.conns
            .push((name.to_string(), format!("{{{width}{{1'b0}}}}")));
    }
    fn open(&mut self, name: &str) {
        self.conns.push((name.to_string(), String::new()));
    }
}

fn render(cell: &str, params: &[(String, String)], b: PortBuilder) -> Result<String, SynthError> {
    UnitTemplate {
        cell,
        ports: b.ports,
        params,
        conns: b.conns,
    }
    .render()
    .map_err(|e| SynthError::Template(e.to_string()))
}

/// The wrapper of layer `l` in context `c`.
fn layer_unit(d: &Design, l: &LayerDesign, c: &LayerContext) -> Result<String, SynthError> {
    let io = &d.io;
    let n = io.n as u64;
    let (hw, yw, binw, xw) = (
        n * u64::from(io.hw),
        u64::from(io.yw),
        u64::from(io.binw),
        n * u64::from(io.sw),
    );
    let mut b = PortBuilder::new();
    b.port("input ", "clk", 1);
    b.port("input ", "rst", 1);
    b.port("input ", "s_valid", 1);
    b.port("output", "s_ready", 1);
    b.port("input ", "s_h", hw);
    b.port("input ", "s_y", yw);
    b.port("input ", "s_bin", binw);
    for (s, state) in STATES.iter().enumerate() {
        let name = format!("s_{state}");
        if c.tied[s] {
            b.tie(&name, xw);
        } else {
            b.port("input ", &name, xw);
        }
    }
    b.port("output", "m_valid", 1);
    b.port("input ", "m_ready", 1);
    for (name, w) in [("m_h", hw), ("m_y", yw)] {
        if c.rows_read {
            b.port("output", name, w);
        } else {
            b.open(name);
        }
    }
    b.port("output", "m_bin", binw);
    for (s, state) in STATES.iter().enumerate() {
        let name = format!("m_{state}");
        if c.read[s] {
            b.port("output", &name, xw);
        } else {
            b.open(&name);
        }
    }
    render("kaq_layer_core", &l.params, b)
}

/// The wrapper of the output stage.
fn out_unit(d: &Design) -> Result<String, SynthError> {
    let io = &d.io;
    let n = io.n as u64;
    let mut b = PortBuilder::new();
    b.port("input ", "clk", 1);
    b.port("input ", "rst", 1);
    b.port("input ", "s_valid", 1);
    b.port("output", "s_ready", 1);
    b.port("input ", "s_bin", u64::from(io.binw));
    b.port("input ", "s_x", n * u64::from(io.sw));
    b.port("output", "out_valid", 1);
    b.port("input ", "out_ready", 1);
    b.port("output", "out_x", n * u64::from(io.sw));
    b.port("output", "out_bits", n * u64::from(io.bpd));
    render("kaq_out_stage", &d.out_params, b)
}

/// The distinct units of `d`: the layer stages (identical wrappers merged, in order of first
/// appearance) and the output stage.
pub fn units(d: &Design) -> Result<Vec<Unit>, SynthError> {
    let mut out: Vec<Unit> = Vec::new();
    for (l, c) in d.layers.iter().zip(contexts(d)) {
        let verilog = layer_unit(d, l, &c)?;
        let instance = format!("u_layer{}", l.number);
        match out.iter_mut().find(|u| u.verilog == verilog) {
            Some(u) => u.instances.push(instance),
            None => out.push(Unit {
                name: format!("layer{}", l.number),
                cell: "kaq_layer_core".to_string(),
                instances: vec![instance],
                verilog,
            }),
        }
    }
    out.push(Unit {
        name: "out".to_string(),
        cell: "kaq_out_stage".to_string(),
        instances: vec!["u_out".to_string()],
        verilog: out_unit(d)?,
    });
    Ok(out)
}

/// Options of [`synthesize_units`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HierOptions {
    /// The target.
    pub target: Target,
    /// Yosys processes at once (at least 1).
    pub jobs: usize,
    /// Wall-clock limit of the whole run; units not done by then are reported as such.
    pub limit: Option<Duration>,
    /// Directory of cached unit results (created if missing); `None` caches nothing.
    pub cache: Option<PathBuf>,
    /// Also run static timing analysis on each unit's netlist (xilinx and ice40).
    pub timing: bool,
}

impl HierOptions {
    /// `target` on every core (at most 2 jobs: the machines this runs on are shared), no time
    /// limit, no cache, with timing.
    pub fn new(target: Target) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        HierOptions {
            target,
            jobs: cores.clamp(1, 2),
            limit: None,
            cache: None,
            timing: true,
        }
    }
}

/// What became of one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    /// Yosys ran and finished.
    Synthesized,
    /// The cache held the result.
    Cached,
    /// Yosys was stopped at the time limit.
    TimedOut,
    /// The time limit passed before the unit started.
    NotRun,
    /// Yosys failed.
    Failed,
}

/// The result of one unit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitResult {
    /// The unit.
    #[serde(flatten)]
    pub unit: Unit,
    /// The content hash of its synthesis (the cache key).
    pub key: String,
    /// What became of it.
    pub status: UnitStatus,
    /// Its cells (one instance), when it finished.
    pub cells: Option<SynthReport>,
    /// Its longest register-to-register path, when timed.
    pub timing: Option<PathTiming>,
    /// Why it failed.
    pub error: Option<String>,
}

impl UnitResult {
    fn done(&self) -> bool {
        matches!(self.status, UnitStatus::Synthesized | UnitStatus::Cached)
    }
}

/// The combined result of a hierarchical synthesis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HierReport {
    /// The target.
    pub target: Target,
    /// The Yosys synthesis command of every unit.
    pub command: String,
    /// Every unit finished: `total` is the whole design. Otherwise `total` sums the units
    /// that finished and `missing` names the instances it lacks.
    pub complete: bool,
    /// Instances whose unit did not finish.
    pub missing: Vec<String>,
    /// Cells of the whole design: Σ over units of (instances × cells); `seconds` is the
    /// wall-clock time of the run, `cpu_seconds` the Yosys CPU time of the units it ran.
    pub total: SynthReport,
    /// The longest path of any unit that was timed, and the unit's name.
    pub critical: Option<(String, PathTiming)>,
    /// Yosys CPU seconds the run saved by the cache (the recorded seconds of cached units).
    pub cached_seconds: f64,
    /// Yosys processes at once.
    pub jobs: usize,
    /// The units.
    pub units: Vec<UnitResult>,
}

/// The Yosys synthesis command of one unit for `target`.
pub fn unit_command(target: Target) -> String {
    match target {
        Target::Generic => format!("synth -flatten -top {UNIT_TOP}"),
        Target::Ice40 => format!("synth_ice40 -dsp -flatten -top {UNIT_TOP}"),
        Target::Xilinx => {
            format!("synth_xilinx -flatten -noiopad -noclkbuf -family xc7 -top {UNIT_TOP}")
        }
    }
}

/// The Yosys script of one unit: synthesis, statistics, and with `timing` the netlist read
/// back with the target's timing models and `sta`.
pub fn unit_script(target: Target, timing: bool) -> String {
    unit_script_with(&PRIMITIVES, target, timing)
}

/// [`unit_script`] for units built on the cells `primitives`.
fn unit_script_with(primitives: &[(&str, &str)], target: Target, timing: bool) -> String {
    let mut s = String::new();
    for (name, _) in primitives {
        s.push_str(&format!("read_verilog {name}\n"));
    }
    s.push_str("read_verilog unit.v\n");
    s.push_str(&unit_command(target));
    s.push('\n');
    s.push_str("tee -q -o stat.json stat -json\n");
    if target == Target::Xilinx {
        s.push_str("tee -q -o stat_tech.txt stat -tech xilinx\n");
    }
    if timing && let Some(models) = timing::cell_models(target) {
        s.push_str("write_verilog -noattr net.v\n");
        s.push_str("design -reset\n");
        s.push_str(&format!("read_verilog -lib -specify {models}\n"));
        s.push_str("read_verilog net.v\n");
        s.push_str(&format!("hierarchy -top {UNIT_TOP}\n"));
        s.push_str("tee -q -o sta.txt sta\n");
    }
    s
}

/// The Yosys version line (part of every cache key).
fn yosys_version(yosys: &Path) -> Result<String, SynthError> {
    let out = std::process::Command::new(yosys)
        .arg("-V")
        .output()
        .map_err(io_err(yosys))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The cache key of a unit: SHA-256 of the Yosys version, the script and every source.
fn unit_key(primitives: &[(&str, &str)], version: &str, script: &str, verilog: &str) -> String {
    let mut h = Sha256::new();
    for part in ["kaq-synth-unit 1", version, script, verilog] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    for (name, text) in primitives {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A cached unit result.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheEntry {
    format: String,
    key: String,
    cells: BTreeMap<String, u64>,
    estimated_lcs: Option<u64>,
    seconds: f64,
    cpu_seconds: Option<f64>,
    timing: Option<PathTiming>,
}

const CACHE_FORMAT: &str = "kaq-synth-unit";

fn cache_read(dir: &Path, key: &str) -> Option<CacheEntry> {
    let text = std::fs::read_to_string(dir.join(format!("{key}.json"))).ok()?;
    let e: CacheEntry = serde_json::from_str(&text).ok()?;
    (e.format == CACHE_FORMAT && e.key == key).then_some(e)
}

fn cache_write(dir: &Path, e: &CacheEntry) -> Result<(), SynthError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let path = dir.join(format!("{}.json", e.key));
    let tmp = dir.join(format!(".{}.{}.tmp", e.key, std::process::id()));
    let text = serde_json::to_string_pretty(e).expect("a cache entry encodes");
    std::fs::write(&tmp, text).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))
}

/// Synthesizes one unit in `dir`.
#[allow(clippy::too_many_arguments)]
fn run_unit(
    primitives: &[(&str, &str)],
    yosys: &Path,
    dir: &Path,
    target: Target,
    script: &str,
    verilog: &str,
    key: &str,
    deadline: Option<Instant>,
) -> Result<CacheEntry, SynthError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    for (name, text) in primitives {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io_err(&path))?;
    }
    for (name, text) in [("unit.v", verilog), ("unit.ys", script)] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io_err(&path))?;
    }
    let time = run_yosys(yosys, dir, "unit.ys", deadline, &unit_command(target))?;
    let stat = dir.join("stat.json");
    let text = std::fs::read_to_string(&stat).map_err(io_err(&stat))?;
    let cells = parse_stat_json(&text, UNIT_TOP).map_err(|reason| SynthError::Stat {
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
    let sta = dir.join("sta.txt");
    let timing = if sta.exists() {
        let text = std::fs::read_to_string(&sta).map_err(io_err(&sta))?;
        Some(timing::parse_sta(&text).map_err(|reason| SynthError::Stat {
            path: sta.display().to_string(),
            reason,
        })?)
    } else {
        None
    };
    Ok(CacheEntry {
        format: CACHE_FORMAT.to_string(),
        key: key.to_string(),
        cells,
        estimated_lcs,
        seconds: time.wall,
        cpu_seconds: time.cpu,
        timing,
    })
}

/// Synthesizes the units of `generated` (see the module docs). `scratch` receives one
/// directory per unit. `progress` is called as each unit ends.
pub fn synthesize_units(
    generated: &Generated,
    scratch: &Path,
    options: &HierOptions,
    progress: &(dyn Fn(&UnitResult) + Sync),
) -> Result<HierReport, SynthError> {
    let units = units(&generated.design)?;
    synthesize_unit_list(&units, &PRIMITIVES, scratch, options, progress)
}

/// [`synthesize_units`] of given units, each a module [`UNIT_TOP`] built on the cells
/// `primitives` (name, text): what the IR v2 design (`crate::gram`) is synthesized by.
pub fn synthesize_unit_list(
    units: &[Unit],
    primitives: &[(&str, &str)],
    scratch: &Path,
    options: &HierOptions,
    progress: &(dyn Fn(&UnitResult) + Sync),
) -> Result<HierReport, SynthError> {
    let yosys = find_yosys()?.ok_or(SynthError::NotFound)?;
    let version = yosys_version(&yosys)?;
    let target = options.target;
    let script = unit_script_with(primitives, target, options.timing);
    let start = Instant::now();
    let deadline = options.limit.map(|l| start + l);
    let results: Vec<Mutex<Option<UnitResult>>> = units.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let cached_seconds = Mutex::new(0.0f64);
    let io_error: Mutex<Option<SynthError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..options.jobs.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(unit) = units.get(i) else { break };
                    let key = unit_key(primitives, &version, &script, &unit.verilog);
                    let mut result = UnitResult {
                        unit: unit.clone(),
                        key: key.clone(),
                        status: UnitStatus::NotRun,
                        cells: None,
                        timing: None,
                        error: None,
                    };
                    let cached = options.cache.as_deref().and_then(|c| cache_read(c, &key));
                    let entry = if let Some(e) = cached {
                        *cached_seconds.lock().expect("not poisoned") +=
                            e.cpu_seconds.unwrap_or(e.seconds);
                        result.status = UnitStatus::Cached;
                        Some(e)
                    } else if deadline.is_some_and(|d| Instant::now() >= d) {
                        None
                    } else {
                        let dir = scratch.join(&unit.name);
                        match run_unit(
                            primitives,
                            &yosys,
                            &dir,
                            target,
                            &script,
                            &unit.verilog,
                            &key,
                            deadline,
                        ) {
                            Ok(e) => {
                                result.status = UnitStatus::Synthesized;
                                if let Some(c) = &options.cache
                                    && let Err(err) = cache_write(c, &e)
                                {
                                    io_error.lock().expect("not poisoned").get_or_insert(err);
                                }
                                Some(e)
                            }
                            Err(SynthError::TimedOut { .. }) => {
                                result.status = UnitStatus::TimedOut;
                                None
                            }
                            Err(e @ (SynthError::Io { .. } | SynthError::NotFound)) => {
                                io_error.lock().expect("not poisoned").get_or_insert(e);
                                None
                            }
                            Err(e) => {
                                result.status = UnitStatus::Failed;
                                result.error = Some(e.to_string());
                                None
                            }
                        }
                    };
                    if let Some(e) = entry {
                        let mut r = SynthReport::from_cells(
                            target,
                            UNIT_TOP,
                            e.cells,
                            e.estimated_lcs,
                            e.seconds,
                        );
                        r.cpu_seconds = e.cpu_seconds;
                        result.cells = Some(r);
                        result.timing = e.timing;
                    }
                    progress(&result);
                    *results[i].lock().expect("not poisoned") = Some(result);
                }
            });
        }
    });
    if let Some(e) = io_error.into_inner().expect("not poisoned") {
        return Err(e);
    }
    let units: Vec<UnitResult> = results
        .into_iter()
        .map(|r| {
            r.into_inner()
                .expect("not poisoned")
                .expect("every unit ran")
        })
        .collect();
    let failed: Vec<&UnitResult> = units
        .iter()
        .filter(|u| u.status == UnitStatus::Failed)
        .collect();
    if let Some(u) = failed.first() {
        return Err(SynthError::Failed {
            command: unit_command(target),
            status: format!("unit {}", u.unit.name),
            tail: u.error.clone().unwrap_or_default(),
        });
    }
    Ok(combine(
        target,
        units,
        start.elapsed().as_secs_f64(),
        cached_seconds.into_inner().expect("not poisoned"),
        options.jobs.max(1),
    ))
}

/// Combines unit results by instance counts.
fn combine(
    target: Target,
    units: Vec<UnitResult>,
    seconds: f64,
    cached_seconds: f64,
    jobs: usize,
) -> HierReport {
    let mut cells: BTreeMap<String, u64> = BTreeMap::new();
    let mut lcs = Some(0u64);
    let mut cpu = Some(0.0f64);
    let mut missing = Vec::new();
    let mut critical: Option<(String, PathTiming)> = None;
    for u in &units {
        let count = u.unit.instances.len() as u64;
        match (&u.cells, u.done()) {
            (Some(r), true) => {
                for (cell, n) in &r.cells {
                    *cells.entry(cell.clone()).or_default() += count * n;
                }
                lcs = lcs.zip(r.estimated_lcs).map(|(a, b)| a + count * b);
                if u.status == UnitStatus::Synthesized {
                    cpu = cpu.zip(r.cpu_seconds).map(|(a, b)| a + b);
                }
            }
            _ => missing.extend(u.unit.instances.iter().cloned()),
        }
        if let Some(t) = &u.timing
            && critical
                .as_ref()
                .is_none_or(|(_, c)| t.delay_ns > c.delay_ns)
        {
            critical = Some((u.unit.name.clone(), t.clone()));
        }
    }
    let mut total = SynthReport::from_cells(
        target,
        UNIT_TOP,
        cells,
        lcs.filter(|_| target == Target::Xilinx),
        seconds,
    );
    total.command = unit_command(target);
    total.cpu_seconds = cpu;
    HierReport {
        target,
        command: unit_command(target),
        complete: missing.is_empty(),
        missing,
        total,
        critical,
        cached_seconds,
        jobs,
        units,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_literals() {
        for z in ["0", "8'h00", "2'b00", "24'sh0", "1'b0"] {
            assert!(is_zero_literal(z), "{z}");
        }
        for nz in ["1", "8'h10", "2'b01", "", "4'hf"] {
            assert!(!is_zero_literal(nz), "{nz}");
        }
    }

    fn kind(admm: bool, has_mf: bool, uses_x2: bool) -> LayerKind {
        LayerKind {
            admm,
            has_mf,
            uses_x2,
            uses_c: admm,
        }
    }

    #[test]
    fn pgd_pass_through_streams_are_dead() {
        // PGD without momentum: s and u pass through and nothing reads them; x2 is read by no
        // stage, so only x1 is live; the first stage's inputs are zero.
        let k = kind(false, false, false);
        assert_eq!(
            k.needs([true, false, false, false]),
            [true, false, false, false]
        );
        assert_eq!(k.needs([true, true, true, true]), [true, false, true, true]);
        assert_eq!(k.zero_out([true; 4]), [false, true, true, true]);
        let mf = kind(false, true, false);
        assert_eq!(
            mf.needs([true, true, true, true]),
            [true, false, false, true]
        );
        assert_eq!(mf.zero_out([true; 4]), [false, false, false, true]);
        // Momentum reads x2; ADMM-Net reads every state.
        assert!(kind(false, false, true).needs([true, false, false, false])[1]);
        assert_eq!(
            kind(true, false, false).needs([false; 4]),
            [true, false, true, true]
        );
        assert_eq!(
            kind(true, false, false).zero_out([true; 4]),
            [false, true, false, false]
        );
    }
}
