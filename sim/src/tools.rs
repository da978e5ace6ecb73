//! Discovery of the open hardware tools kaq drives: Verilator, Yosys and Icarus Verilog.
//!
//! Tests and commands that need a tool call [`require`]. When the tool is missing it returns
//! `Ok(None)` so the caller can skip — unless `KAQ_REQUIRE_VERILATOR=1` is set (the README's
//! test command and CI set it), in which case absence is an error and the test fails.

use std::fmt;
use std::path::PathBuf;
use std::process::Command;

use thiserror::Error;

/// The environment variable that turns a missing tool into a failure.
pub const REQUIRE_ENV: &str = "KAQ_REQUIRE_VERILATOR";

/// An external tool kaq uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// Verilator, for linting and co-simulation.
    Verilator,
    /// Yosys, for synthesis and resource counts.
    Yosys,
    /// Icarus Verilog compiler (`iverilog`), for the generated testbench.
    Iverilog,
    /// Icarus Verilog runtime (`vvp`).
    Vvp,
    /// nextpnr for iCE40, for a placed-and-routed Fmax.
    NextpnrIce40,
}

impl Tool {
    /// Every tool kaq uses.
    pub const ALL: [Tool; 5] = [
        Tool::Verilator,
        Tool::Yosys,
        Tool::Iverilog,
        Tool::Vvp,
        Tool::NextpnrIce40,
    ];

    /// The executable's name.
    pub fn program(self) -> &'static str {
        match self {
            Tool::Verilator => "verilator",
            Tool::Yosys => "yosys",
            Tool::Iverilog => "iverilog",
            Tool::Vvp => "vvp",
            Tool::NextpnrIce40 => "nextpnr-ice40",
        }
    }

    /// The Debian package that provides it.
    pub fn debian_package(self) -> &'static str {
        match self {
            Tool::Verilator => "verilator",
            Tool::Yosys => "yosys",
            Tool::Iverilog | Tool::Vvp => "iverilog",
            Tool::NextpnrIce40 => "nextpnr-ice40",
        }
    }

    fn version_args(self) -> &'static [&'static str] {
        match self {
            Tool::Verilator => &["--version"],
            Tool::Yosys => &["-V"],
            Tool::Iverilog => &["-V"],
            Tool::Vvp => &["-V"],
            Tool::NextpnrIce40 => &["--version"],
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program())
    }
}

/// A tool found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolInfo {
    /// Which tool.
    pub tool: Tool,
    /// Absolute path of the executable.
    pub path: PathBuf,
    /// First line of its version output.
    pub version: String,
}

/// Errors of tool discovery.
#[derive(Debug, Error)]
pub enum ToolError {
    /// The tool is required (`KAQ_REQUIRE_VERILATOR=1`) but not installed.
    #[error(
        "{tool} is required ({REQUIRE_ENV}=1) but was not found on PATH; \
         install it with `apt-get install -y {package}`"
    )]
    Missing {
        /// The missing tool.
        tool: Tool,
        /// The Debian package to install.
        package: &'static str,
    },
    /// The tool exists but failed to report its version.
    #[error("{tool} at {path} failed to run: {reason}")]
    Broken {
        /// The tool.
        tool: Tool,
        /// Where it was found.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Whether `KAQ_REQUIRE_VERILATOR` asks for the tools to be present.
pub fn tools_required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Looks for a tool on PATH and asks it for its version. `Ok(None)` when it is not installed.
pub fn find(tool: Tool) -> Result<Option<ToolInfo>, ToolError> {
    let Some(path) = search_path(tool.program()) else {
        return Ok(None);
    };
    let output = Command::new(&path)
        .args(tool.version_args())
        .output()
        .map_err(|e| ToolError::Broken {
            tool,
            path: path.clone(),
            reason: e.to_string(),
        })?;
    // Icarus prints its version and then complains about missing input files, exiting 1.
    let text = if output.stdout.is_empty() {
        output.stderr
    } else {
        output.stdout
    };
    let version = String::from_utf8_lossy(&text)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    if version.is_empty() {
        return Err(ToolError::Broken {
            tool,
            path,
            reason: "printed no version".into(),
        });
    }
    Ok(Some(ToolInfo {
        tool,
        path,
        version,
    }))
}

/// Finds a tool, failing when it is missing and [`tools_required`] is set.
pub fn require(tool: Tool) -> Result<Option<ToolInfo>, ToolError> {
    match find(tool)? {
        Some(info) => Ok(Some(info)),
        None if tools_required() => Err(ToolError::Missing {
            tool,
            package: tool.debian_package(),
        }),
        None => Ok(None),
    }
}

fn search_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &std::path::Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_present_or_allowed_missing() {
        for tool in Tool::ALL {
            match require(tool) {
                Ok(Some(info)) => {
                    assert!(info.path.is_absolute(), "{tool}: {:?}", info.path);
                    assert!(!info.version.is_empty(), "{tool}: empty version");
                }
                Ok(None) => assert!(!tools_required(), "{tool} missing yet required"),
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn verilator_reports_version_5_or_later() {
        let Some(info) = require(Tool::Verilator).unwrap() else {
            return;
        };
        let major: u32 = info
            .version
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.split('.').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("unparsable Verilator version `{}`", info.version));
        assert!(
            major >= 5,
            "Verilator {major}.x is older than the 5.x this flow is built for"
        );
    }

    #[test]
    fn unknown_program_is_not_found() {
        assert!(search_path("kaq-no-such-tool-xyz").is_none());
    }
}
