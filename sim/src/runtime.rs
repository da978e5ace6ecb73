//! The prebuilt, position-independent Verilator runtime (`verilated.cpp`,
//! `verilated_threads.cpp`, `verilated_vcd_c.cpp` in one archive) that every model links
//! instead of recompiling it (7–10 s per model otherwise). Built once per machine per
//! (Verilator version, compiler, flags) into the shared [`Cache`]; see the cache module for
//! the locking and atomic-publish guarantees. The VCD writer does not depend on `VM_TRACE`,
//! so one archive serves traced and untraced models alike; the linker takes only what a
//! model uses.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::cache::{Cache, CacheOutcome, ContentHash};
use crate::command::{first_line, run_logged, spawn_logged};
use crate::error::SimError;
use crate::tools::ToolInfo;

/// The C++ compiler `verilated.mk` invokes (it assigns `CXX = g++`, ignoring the environment).
pub const CXX: &str = "g++";

/// Optimisation level of the runtime and of the model's hot code (`-Os`, Verilator's
/// default, is about 1.5× slower).
pub const OPT_FAST: &str = "-O2";

/// Archive file name inside the runtime entry.
pub const ARCHIVE: &str = "libverilated_pic.a";

const RUNTIME_SOURCES: [&str; 3] = ["verilated", "verilated_threads", "verilated_vcd_c"];

/// The flags `verilated.mk` adds to every compile (`CFG_CXXFLAGS_NO_UNUSED` of 5.006) plus
/// the `VM_*` switches of an untraced, non-SystemC, uncovered model.
const RUNTIME_FLAGS: &[&str] = &[
    "-fPIC",
    "-std=gnu++17",
    "-faligned-new",
    "-fcf-protection=none",
    "-Wno-bool-operation",
    "-Wno-sign-compare",
    "-Wno-uninitialized",
    "-Wno-unused-but-set-variable",
    "-Wno-unused-parameter",
    "-Wno-unused-variable",
    "-Wno-shadow",
    "-DVM_COVERAGE=0",
    "-DVM_SC=0",
    "-DVM_TRACE=0",
    "-DVM_TRACE_FST=0",
    "-DVM_TRACE_VCD=0",
];

/// Facts about the local toolchain that a build depends on, queried once per process.
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// `verilator --version`, first line.
    pub verilator_version: String,
    /// `verilator --getenv VERILATOR_ROOT`.
    pub verilator_root: PathBuf,
    /// `g++ --version`, first line.
    pub cxx_version: String,
}

impl Toolchain {
    /// Queries the toolchain (once per process; later calls reuse the answer).
    pub fn detect(verilator: &ToolInfo) -> Result<&'static Toolchain, SimError> {
        static DETECTED: OnceLock<Toolchain> = OnceLock::new();
        if let Some(t) = DETECTED.get() {
            return Ok(t);
        }
        let mut root = Command::new(&verilator.path);
        root.args(["--getenv", "VERILATOR_ROOT"]);
        let verilator_root = PathBuf::from(first_line(root, "verilator --getenv VERILATOR_ROOT")?);
        let mut cxx = Command::new(CXX);
        cxx.arg("--version");
        let cxx_version = first_line(cxx, "g++ --version")?;
        Ok(DETECTED.get_or_init(|| Toolchain {
            verilator_version: verilator.version.clone(),
            verilator_root,
            cxx_version,
        }))
    }

    /// `$VERILATOR_ROOT/include`.
    pub fn include_dir(&self) -> PathBuf {
        self.verilator_root.join("include")
    }
}

/// A ready runtime archive.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// Path of `libverilated_pic.a`.
    pub archive: PathBuf,
    /// Found or built.
    pub outcome: CacheOutcome,
    /// Time spent in this call (including waiting for another builder's lock).
    pub elapsed: Duration,
}

/// The cache key of the runtime for this toolchain.
pub fn runtime_key(toolchain: &Toolchain) -> String {
    let mut h = ContentHash::new("kaq-sim runtime v1");
    h.field(toolchain.verilator_version.as_bytes())
        .field(toolchain.verilator_root.as_os_str().as_encoded_bytes())
        .field(toolchain.cxx_version.as_bytes())
        .field(OPT_FAST.as_bytes());
    for flag in RUNTIME_FLAGS {
        h.field(flag.as_bytes());
    }
    h.key()
}

/// Returns the runtime archive for `toolchain`, building it if no process has yet.
pub fn ensure(cache: &Cache, toolchain: &Toolchain) -> Result<Runtime, SimError> {
    let start = Instant::now();
    let key = runtime_key(toolchain);
    let entry = cache.entry("runtime", &key);
    let archive = entry.join(ARCHIVE);
    if archive.is_file() {
        return Ok(Runtime {
            archive,
            outcome: CacheOutcome::Hit,
            elapsed: start.elapsed(),
        });
    }
    let _lock = cache.lock(&format!("runtime-{key}"))?;
    if archive.is_file() {
        return Ok(Runtime {
            archive,
            outcome: CacheOutcome::Hit,
            elapsed: start.elapsed(),
        });
    }
    let scratch = cache.scratch(&key)?;
    let include = toolchain.include_dir();
    let log = scratch.join("build.log");
    let mut children = Vec::new();
    for name in RUNTIME_SOURCES {
        let mut cmd = Command::new(CXX);
        cmd.current_dir(&scratch)
            .arg(OPT_FAST)
            .args(RUNTIME_FLAGS)
            .arg(format!("-I{}", include.display()))
            .arg(format!("-I{}", include.join("vltstd").display()))
            .arg("-c")
            .arg(include.join(format!("{name}.cpp")))
            .arg("-o")
            .arg(scratch.join(format!("{name}.o")));
        let step_log = scratch.join(format!("{name}.log"));
        children.push(spawn_logged(cmd, format!("g++ {name}.cpp"), &step_log)?);
    }
    // Wait for all of them before reporting the first failure, so no compiler outlives us.
    let results: Vec<_> = children.into_iter().map(|c| c.finish()).collect();
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    let mut ar = Command::new("ar");
    ar.current_dir(&scratch).arg("rcs").arg(ARCHIVE);
    for name in RUNTIME_SOURCES {
        ar.arg(format!("{name}.o"));
    }
    run_logged(ar, "ar libverilated_pic.a", &log)?;
    let entry = cache.publish(&scratch, "runtime", &key)?;
    Ok(Runtime {
        archive: entry.join(ARCHIVE),
        outcome: CacheOutcome::Miss,
        elapsed: start.elapsed(),
    })
}
