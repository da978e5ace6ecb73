//! [`VerilatorBuild`]: turns a top module, its Verilog sources and its port list into a
//! shared library (`verilator --cc --exe --build` with the generated [`crate::shim`] and the
//! prebuilt [`crate::runtime`]), cached by content hash.
//!
//! Guarantees: the port list is validated before anything runs (legal identifiers, widths,
//! no duplicates, clock and reset are 1-bit inputs); the cache key covers the sources, the
//! ports, the top name, the Verilator flags, the shim ABI and the toolchain versions, so equal
//! inputs are a cache hit and any difference is a new build in its own directory; builds never
//! run in a directory another build can see (see [`crate::cache`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::cache::{Cache, CacheOutcome, ContentHash, default_root};
use crate::command::run_logged;
use crate::error::SimError;
use crate::port::{Direction, Port, validate_identifier};
use crate::runtime::{self, OPT_FAST, Runtime, Toolchain};
use crate::shim::{self, SHIM_ABI_VERSION, ShimSpec};
use crate::tools::{self, Tool, ToolInfo};

/// Which level of the reset port resets the design.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetPolarity {
    /// `rst = 1` resets.
    ActiveHigh,
    /// `rst_n = 0` resets.
    ActiveLow,
}

/// The resolved reset port of a built model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetPort {
    /// Index in the port list.
    pub index: usize,
    /// Its polarity.
    pub polarity: ResetPolarity,
}

#[derive(Debug, Clone)]
enum SourceInput {
    File(PathBuf),
    Text { name: String, text: String },
}

/// A Verilog source after reading: its file name in the build directory and its bytes.
#[derive(Debug, Clone)]
struct Source {
    name: String,
    bytes: Vec<u8>,
}

impl Source {
    /// `.v`/`.sv` files are compiled; anything else (`.vh`, `.svh`, `.mem`) is only copied next
    /// to them for `` `include `` to find.
    fn is_compiled(&self) -> bool {
        matches!(
            Path::new(&self.name).extension().and_then(|e| e.to_str()),
            Some("v" | "sv")
        )
    }
}

/// A Verilator build request. Construct with [`VerilatorBuild::new`], add sources and ports,
/// then [`build`](VerilatorBuild::build).
#[derive(Debug, Clone)]
pub struct VerilatorBuild {
    top: String,
    sources: Vec<SourceInput>,
    ports: Vec<Port>,
    clock: Option<String>,
    reset: Option<(String, ResetPolarity)>,
    trace: bool,
    strict_lint: bool,
    extra_args: Vec<String>,
    cache_root: Option<PathBuf>,
}

/// Verilator's [`ToolInfo`], asked for once per process once found (each query starts a Perl
/// script; a cache hit should not pay for it every time).
fn verilator(top: &str) -> Result<ToolInfo, SimError> {
    static FOUND: OnceLock<ToolInfo> = OnceLock::new();
    if let Some(info) = FOUND.get() {
        return Ok(info.clone());
    }
    let info = tools::require(Tool::Verilator)?.ok_or_else(|| SimError::VerilatorUnavailable {
        top: top.to_string(),
    })?;
    Ok(FOUND.get_or_init(|| info).clone())
}

/// A validated build with its cache key.
#[derive(Debug)]
struct Plan {
    key: String,
    clock: Option<usize>,
    reset: Option<ResetPort>,
    sources: Vec<Source>,
    shim_text: String,
    flags: Vec<String>,
    verilator: PathBuf,
    toolchain: &'static Toolchain,
}

/// A compiled model in the cache, ready to be instantiated with [`crate::Model::new`].
#[derive(Debug, Clone)]
pub struct BuiltModel {
    /// Top module name.
    pub top: String,
    /// The port list, in shim index order.
    pub ports: Arc<[Port]>,
    /// Index of the clock port.
    pub clock: Option<usize>,
    /// The reset port.
    pub reset: Option<ResetPort>,
    /// Whether VCD tracing is compiled in.
    pub trace: bool,
    /// Content hash (32 hex digits) — also the cache directory name.
    pub key: String,
    /// The shared library.
    pub library: PathBuf,
    /// Hit or miss.
    pub outcome: CacheOutcome,
    /// Wall time of this build call (near zero on a hit).
    pub elapsed: Duration,
    /// The runtime archive used, when this call had to build the model.
    pub runtime: Option<Runtime>,
}

impl VerilatorBuild {
    /// A build of module `top`, with clock `clk` and active-high reset `rst`.
    pub fn new(top: impl Into<String>) -> Self {
        VerilatorBuild {
            top: top.into(),
            sources: Vec::new(),
            ports: Vec::new(),
            clock: Some("clk".into()),
            reset: Some(("rst".into(), ResetPolarity::ActiveHigh)),
            trace: false,
            strict_lint: false,
            extra_args: Vec::new(),
            cache_root: None,
        }
    }

    /// Adds a source file from disk (read at build time; its file name is kept).
    pub fn source_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.sources.push(SourceInput::File(path.into()));
        self
    }

    /// Adds an in-memory source named `name` (a plain file name such as `mac.v`).
    pub fn source_text(mut self, name: impl Into<String>, text: impl Into<String>) -> Self {
        self.sources.push(SourceInput::Text {
            name: name.into(),
            text: text.into(),
        });
        self
    }

    /// Appends a port; ports are indexed in the order they are added.
    pub fn port(mut self, port: Port) -> Self {
        self.ports.push(port);
        self
    }

    /// Appends several ports.
    pub fn ports(mut self, ports: impl IntoIterator<Item = Port>) -> Self {
        self.ports.extend(ports);
        self
    }

    /// Names the clock port (default `clk`).
    pub fn clock(mut self, name: impl Into<String>) -> Self {
        self.clock = Some(name.into());
        self
    }

    /// Declares a purely combinational design: `tick` is unavailable.
    pub fn no_clock(mut self) -> Self {
        self.clock = None;
        self
    }

    /// Names the reset port and its polarity (default `rst`, active high).
    pub fn reset(mut self, name: impl Into<String>, polarity: ResetPolarity) -> Self {
        self.reset = Some((name.into(), polarity));
        self
    }

    /// Declares a design without reset port: `reset` is unavailable.
    pub fn no_reset(mut self) -> Self {
        self.reset = None;
        self
    }

    /// Compiles VCD tracing in (slower model; enables [`crate::Model::trace`]).
    pub fn trace(mut self, on: bool) -> Self {
        self.trace = on;
        self
    }

    /// Builds with `-Wall` and every warning fatal (default: warnings only logged).
    pub fn strict_lint(mut self, on: bool) -> Self {
        self.strict_lint = on;
        self
    }

    /// Passes an extra argument to verilator (part of the cache key).
    pub fn verilator_arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Uses `root` as the cache instead of [`default_root`].
    pub fn cache_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.cache_root = Some(root.into());
        self
    }

    fn validate(&self) -> Result<(Option<usize>, Option<ResetPort>), SimError> {
        validate_identifier("top module", &self.top)?;
        for (i, port) in self.ports.iter().enumerate() {
            port.validate()?;
            if self.ports[..i].iter().any(|p| p.name == port.name) {
                return Err(SimError::DuplicatePort {
                    name: port.name.clone(),
                });
            }
        }
        let control = |role: &'static str, name: &str| -> Result<usize, SimError> {
            let err = |reason| SimError::ControlPort {
                role,
                name: name.to_string(),
                reason,
            };
            let index = self.ports.iter().position(|p| p.name == name).ok_or(err(
                "is not in the port list (declare it, or build with no_clock()/no_reset())",
            ))?;
            let port = &self.ports[index];
            if port.direction != Direction::Input {
                return Err(err("must be an input"));
            }
            if port.width != 1 {
                return Err(err("must be 1 bit wide"));
            }
            Ok(index)
        };
        let clock = self
            .clock
            .as_deref()
            .map(|name| control("clock", name))
            .transpose()?;
        let reset = self
            .reset
            .as_ref()
            .map(|(name, polarity)| {
                control("reset", name).map(|index| ResetPort {
                    index,
                    polarity: *polarity,
                })
            })
            .transpose()?;
        if let (Some(c), Some(r)) = (clock, reset)
            && c == r.index
        {
            return Err(SimError::ControlPort {
                role: "reset",
                name: self.ports[c].name.clone(),
                reason: "is also the clock",
            });
        }
        Ok((clock, reset))
    }

    fn read_sources(&self) -> Result<Vec<Source>, SimError> {
        let mut sources: Vec<Source> = Vec::with_capacity(self.sources.len());
        for input in &self.sources {
            let source = match input {
                SourceInput::File(path) => {
                    let name = path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .ok_or_else(|| SimError::InvalidSource {
                            name: path.display().to_string(),
                            reason: "has no UTF-8 file name",
                        })?
                        .to_string();
                    let bytes = std::fs::read(path).map_err(|error| SimError::Io {
                        action: "reading Verilog source",
                        path: path.clone(),
                        error,
                    })?;
                    Source { name, bytes }
                }
                SourceInput::Text { name, text } => Source {
                    name: name.clone(),
                    bytes: text.clone().into_bytes(),
                },
            };
            let bad = |reason| SimError::InvalidSource {
                name: source.name.clone(),
                reason,
            };
            if source.name.is_empty() || source.name.starts_with('.') {
                return Err(bad("must be a plain file name"));
            }
            if source
                .name
                .chars()
                .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            {
                return Err(bad("may only contain ASCII letters, digits, `_`, `-`, `.`"));
            }
            if sources.iter().any(|s| s.name == source.name) {
                return Err(bad("is given twice"));
            }
            sources.push(source);
        }
        if !sources.iter().any(Source::is_compiled) {
            return Err(SimError::NoSources {
                top: self.top.clone(),
            });
        }
        Ok(sources)
    }

    /// The verilator arguments that do not name files (hashed into the cache key).
    fn flags(&self) -> Vec<String> {
        let mut flags: Vec<String> = [
            "--cc",
            "--exe",
            "--build",
            "-O3",
            "--x-assign",
            "fast",
            "--x-initial",
            "unique",
            "--noassert",
            "-CFLAGS",
            "-fPIC",
            "-LDFLAGS",
            "-shared",
            "-MAKEFLAGS",
            "VK_GLOBAL_OBJS=",
            "-MAKEFLAGS",
            "OPT_SLOW=-O1",
            "-MAKEFLAGS",
            "OPT_GLOBAL=-O2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        flags.push("-MAKEFLAGS".into());
        flags.push(format!("OPT_FAST={OPT_FAST}"));
        // `-j 0`: make uses every core; the output does not depend on it.
        flags.push("-j".into());
        flags.push("0".into());
        if self.strict_lint {
            flags.push("-Wall".into());
        } else {
            flags.push("-Wno-fatal".into());
        }
        if self.trace {
            flags.push("--trace".into());
        }
        flags.push("--top-module".into());
        flags.push(self.top.clone());
        flags.extend(self.extra_args.iter().cloned());
        flags
    }

    /// Validates everything and computes the cache key, without building.
    fn plan(&self) -> Result<Plan, SimError> {
        let (clock, reset) = self.validate()?;
        let sources = self.read_sources()?;
        let verilator = verilator(&self.top)?;
        let toolchain = Toolchain::detect(&verilator)?;
        let shim_text = shim::generate(&ShimSpec {
            top: &self.top,
            ports: &self.ports,
            clock,
            trace: self.trace,
        });
        let flags = self.flags();
        let mut h = ContentHash::new("kaq-sim model v1");
        h.field(&SHIM_ABI_VERSION.to_le_bytes())
            .field(toolchain.verilator_version.as_bytes())
            .field(toolchain.cxx_version.as_bytes())
            .field(runtime::runtime_key(toolchain).as_bytes())
            .field(self.top.as_bytes())
            .field(shim_text.as_bytes());
        for flag in &flags {
            h.field(flag.as_bytes());
        }
        for port in &self.ports {
            h.field(port.name.as_bytes())
                .field(&port.width.to_le_bytes())
                .field(&[u8::from(port.direction == Direction::Input)]);
        }
        for source in &sources {
            h.field(source.name.as_bytes()).field(&source.bytes);
        }
        Ok(Plan {
            key: h.key(),
            clock,
            reset,
            sources,
            shim_text,
            flags,
            verilator: verilator.path,
            toolchain,
        })
    }

    /// The content hash this build would be cached under (validates, reads the sources and
    /// asks Verilator for its version, but compiles nothing).
    pub fn key(&self) -> Result<String, SimError> {
        self.plan().map(|plan| plan.key)
    }

    /// Validates, then returns the cached model or builds it.
    ///
    /// Fails with [`SimError::VerilatorUnavailable`] when Verilator is not installed (callers
    /// that may skip check [`tools::require`] first), or with [`SimError::Tool`] when it is
    /// missing but required.
    pub fn build(&self) -> Result<BuiltModel, SimError> {
        let start = Instant::now();
        let Plan {
            key,
            clock,
            reset,
            sources,
            shim_text,
            flags,
            verilator,
            toolchain,
        } = self.plan()?;
        let cache = Cache::new(self.cache_root.clone().unwrap_or_else(default_root));
        let library_name = format!("lib{}.so", self.top);
        let entry = cache.entry("models", &key);
        let built = |library: PathBuf, outcome, runtime| BuiltModel {
            top: self.top.clone(),
            ports: self.ports.clone().into(),
            clock,
            reset,
            trace: self.trace,
            key: key.clone(),
            library,
            outcome,
            elapsed: start.elapsed(),
            runtime,
        };
        if entry.join(&library_name).is_file() {
            return Ok(built(entry.join(&library_name), CacheOutcome::Hit, None));
        }
        let runtime = runtime::ensure(&cache, toolchain)?;
        let _lock = cache.lock(&key)?;
        if entry.join(&library_name).is_file() {
            return Ok(built(entry.join(&library_name), CacheOutcome::Hit, None));
        }
        let scratch = cache.scratch(&key)?;
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |error| SimError::Io {
                action,
                path,
                error,
            }
        };
        let src_dir = scratch.join("src");
        std::fs::create_dir_all(&src_dir).map_err(io("creating source dir", &src_dir))?;
        for source in &sources {
            let path = src_dir.join(&source.name);
            std::fs::write(&path, &source.bytes).map_err(io("writing source", &path))?;
        }
        let shim_path = scratch.join(format!("{}_shim.cpp", self.top));
        std::fs::write(&shim_path, &shim_text).map_err(io("writing shim", &shim_path))?;
        let obj_dir = scratch.join("obj");
        let mut cmd = Command::new(&verilator);
        cmd.current_dir(&scratch)
            .args(&flags)
            .arg("-Mdir")
            .arg(&obj_dir)
            .arg("-o")
            .arg(&library_name)
            .arg(format!("-I{}", src_dir.display()));
        for source in sources.iter().filter(|s| s.is_compiled()) {
            cmd.arg(src_dir.join(&source.name));
        }
        cmd.arg(&shim_path).arg(&runtime.archive);
        let log = scratch.join("build.log");
        run_logged(cmd, format!("verilator build of `{}`", self.top), &log)?;
        let produced = obj_dir.join(&library_name);
        std::fs::rename(&produced, scratch.join(&library_name))
            .map_err(io("moving built library", &produced))?;
        // The object files are large and useless once linked; the log and shim stay.
        std::fs::remove_dir_all(&obj_dir).map_err(io("removing object dir", &obj_dir))?;
        let entry = cache.publish(&scratch, "models", &key)?;
        Ok(built(
            entry.join(&library_name),
            CacheOutcome::Miss,
            Some(runtime),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> VerilatorBuild {
        VerilatorBuild::new("m")
            .source_text("m.v", "module m; endmodule\n")
            .port(Port::input("clk", 1))
            .port(Port::input("rst", 1))
    }

    #[test]
    fn validation_rejects_bad_ports_before_running_anything() {
        assert!(base().validate().is_ok());
        let dup = base().port(Port::output("clk", 1)).validate().unwrap_err();
        assert!(matches!(dup, SimError::DuplicatePort { ref name } if name == "clk"));
        let wide_clk = VerilatorBuild::new("m")
            .port(Port::input("clk", 2))
            .no_reset()
            .validate()
            .unwrap_err();
        assert!(wide_clk.to_string().contains("1 bit"), "{wide_clk}");
        let out_rst = VerilatorBuild::new("m")
            .port(Port::input("clk", 1))
            .port(Port::output("rst", 1))
            .validate()
            .unwrap_err();
        assert!(
            out_rst.to_string().contains("must be an input"),
            "{out_rst}"
        );
        let missing = VerilatorBuild::new("m").no_reset().validate().unwrap_err();
        assert!(missing.to_string().contains("no_clock()"), "{missing}");
        let bad_top = VerilatorBuild::new("m-1").validate().unwrap_err();
        assert!(matches!(
            bad_top,
            SimError::InvalidName {
                what: "top module",
                ..
            }
        ));
        let (clock, reset) = base()
            .reset("rst", ResetPolarity::ActiveLow)
            .validate()
            .unwrap();
        assert_eq!(clock, Some(0));
        assert_eq!(
            reset,
            Some(ResetPort {
                index: 1,
                polarity: ResetPolarity::ActiveLow
            })
        );
    }

    #[test]
    fn source_names_are_checked() {
        assert!(base().read_sources().is_ok());
        let dup = base().source_text("m.v", "").read_sources().unwrap_err();
        assert!(dup.to_string().contains("twice"), "{dup}");
        let path = base().source_text("../x.v", "").read_sources().unwrap_err();
        assert!(matches!(path, SimError::InvalidSource { .. }), "{path}");
        let headers_only = VerilatorBuild::new("m")
            .source_text("p.vh", "")
            .read_sources()
            .unwrap_err();
        assert!(matches!(headers_only, SimError::NoSources { .. }));
        let missing = base()
            .source_file("/nonexistent/kaq/x.v")
            .read_sources()
            .unwrap_err();
        assert!(
            missing.to_string().contains("/nonexistent/kaq/x.v"),
            "{missing}"
        );
    }
}
