//! kaq-sim: builds generated RTL with Verilator into a shared library and drives it from Rust,
//! checking it bit for bit against the integer golden model of kaq-model.
//!
//! [`tools`] finds Verilator, Yosys and Icarus Verilog and enforces `KAQ_REQUIRE_VERILATOR`.

pub mod tools;
