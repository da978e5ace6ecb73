//! kaq-sim: builds generated RTL with Verilator into a shared library and drives it from Rust,
//! checking it bit for bit against the integer golden model of kaq-model.
//!
//! - [`tools`] finds Verilator, Yosys and Icarus Verilog and enforces `KAQ_REQUIRE_VERILATOR`.
//! - [`VerilatorBuild`] compiles a top module plus a generated C ABI [`shim`] into a `.so`,
//!   content-addressed in a machine-wide [`cache`] next to a prebuilt [`runtime`].
//! - [`Model`] loads that library and drives it cycle by cycle: `set`/`get` by port, `tick`,
//!   `reset`, VCD `trace`.
//! - [`cosim`] builds a kaq-codegen design of an IR, streams frames through it and compares
//!   every output and every layer's states with the integer golden model; [`RtlDetector`] is
//!   the RTL as a `Detector`.
//!
//! ```no_run
//! use kaq_sim::{Model, Port, VerilatorBuild};
//! # fn main() -> Result<(), kaq_sim::SimError> {
//! let built = VerilatorBuild::new("counter")
//!     .source_file("rtl/counter.v")
//!     .ports([Port::input("clk", 1), Port::input("rst", 1), Port::output("q", 8)])
//!     .build()?;
//! let mut model = Model::new(&built, 1)?;
//! model.reset(2)?;
//! model.tick()?;
//! assert_eq!(model.get("q")?, 1);
//! # Ok(()) }
//! ```

pub mod cache;
mod command;
pub mod cosim;
pub mod error;
pub mod model;
pub mod port;
pub mod runtime;
pub mod shim;
pub mod tools;
pub mod verilate;

pub use cache::CacheOutcome;
pub use cosim::{CosimError, CosimReport, Mismatch, Rtl, RtlDetector, Stalls, cosimulate};
pub use error::SimError;
pub use model::{Model, PortId, PortKey};
pub use port::{Direction, Port};
pub use verilate::{BuiltModel, ResetPolarity, VerilatorBuild};
