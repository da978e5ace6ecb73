//! The error type of kaq-sim: every failure names what failed — the port, the file, the tool,
//! or the tail of the compiler log.

use std::path::PathBuf;

use thiserror::Error;

use crate::port::Direction;
use crate::tools::ToolError;

/// Errors of building, loading and driving a Verilator model.
#[derive(Debug, Error)]
pub enum SimError {
    /// Tool discovery failed (a required tool is missing, or it does not run).
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// Verilator is not installed and `KAQ_REQUIRE_VERILATOR` is not set; callers may skip.
    #[error("verilator is not installed; cannot build `{top}`")]
    VerilatorUnavailable {
        /// The top module that was to be built.
        top: String,
    },
    /// A port, module or clock/reset name is not a legal identifier for both Verilog and C++.
    #[error("`{name}` is not a usable {what} name: {reason}")]
    InvalidName {
        /// What the name is for (port, top module, …).
        what: &'static str,
        /// The offending name.
        name: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// The same port name appears twice in the port list.
    #[error("port `{name}` is declared twice")]
    DuplicatePort {
        /// The repeated name.
        name: String,
    },
    /// A port width outside `1..=MAX_PORT_WIDTH`.
    #[error("port `{port}` has width {width}; widths must be in 1..={max}")]
    InvalidWidth {
        /// The port.
        port: String,
        /// Its declared width.
        width: u32,
        /// The largest supported width.
        max: u32,
    },
    /// The clock or reset port is missing, not an input, or not one bit wide.
    #[error("{role} port `{name}` {reason}")]
    ControlPort {
        /// `clock` or `reset`.
        role: &'static str,
        /// The configured name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A source file name is empty, contains a path separator, or is repeated.
    #[error("source name `{name}` {reason}")]
    InvalidSource {
        /// The offending name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The build was given no Verilog source to compile.
    #[error("no Verilog sources given for top module `{top}`")]
    NoSources {
        /// The top module.
        top: String,
    },
    /// A file-system operation failed.
    #[error("{action} `{path}`: {error}")]
    Io {
        /// What was being done (`reading source`, `creating build dir`, …).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error (in the message, so not also the `source()`).
        error: std::io::Error,
    },
    /// An external command (verilator, g++, ar) could not be started or failed.
    #[error("{step} failed ({status}); log {log_path}:\n{log_tail}")]
    Build {
        /// Which step: `verilator build of <top>`, `g++ verilated.cpp`, ….
        step: String,
        /// Exit status, or the spawn error.
        status: String,
        /// Where the full log was written.
        log_path: PathBuf,
        /// The last lines of the log.
        log_tail: String,
    },
    /// The shared library could not be loaded or lacks a shim symbol.
    #[error("cannot load model library `{path}`: {reason}")]
    Load {
        /// The library path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A port name the model does not have.
    #[error("model `{top}` has no port `{name}` (ports: {available})")]
    UnknownPort {
        /// The model's top module.
        top: String,
        /// The name asked for.
        name: String,
        /// Comma-separated list of the model's ports.
        available: String,
    },
    /// A port handle that belongs to a different design.
    #[error("port handle #{index} belongs to another design than `{top}`")]
    ForeignPort {
        /// The model's top module.
        top: String,
        /// The handle's port index.
        index: usize,
    },
    /// Writing an output port.
    #[error("port `{port}` is an {direction}; only inputs can be set")]
    WrongDirection {
        /// The port.
        port: String,
        /// Its direction.
        direction: Direction,
    },
    /// A scalar (`u64`) access to a port wider than 64 bits.
    #[error("port `{port}` is {width} bits wide; use the *_wide accessors")]
    WidePort {
        /// The port.
        port: String,
        /// Its width.
        width: u32,
    },
    /// A word slice whose length does not match the port's width.
    #[error("port `{port}` is {width} bits = {expected} 32-bit words, got {got} words")]
    WordCount {
        /// The port.
        port: String,
        /// Its width.
        width: u32,
        /// Words needed.
        expected: usize,
        /// Words given.
        got: usize,
    },
    /// `tick`/`reset` on a model built without a clock, or `reset` without a reset port.
    #[error("model `{top}` was built without a {role} port")]
    NoControlPort {
        /// The model's top module.
        top: String,
        /// `clock` or `reset`.
        role: &'static str,
    },
    /// Tracing was asked of a model built without `trace(true)`, or opened twice.
    #[error("VCD trace of `{top}`: {reason}")]
    Trace {
        /// The model's top module.
        top: String,
        /// What went wrong.
        reason: String,
    },
}
