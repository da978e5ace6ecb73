//! Test fixture shared by the driver tests and the bench: a registered signed MAC with a
//! valid/ready handshake, as Verilog and as a Rust reference model of the same cycle semantics.
//!
//! Ports exercise every storage class Verilator uses: 1-bit (`CData`), 12-bit (`SData`),
//! 24-bit (`IData`), 40-bit (`QData`) and the 70-/96-bit `VlWide` ports.

#![allow(dead_code)]

use kaq_sim::{Port, VerilatorBuild};

pub const TOP: &str = "mac_fixture";

pub const VERILOG: &str = r#"`default_nettype none
// kaq-sim test fixture: a registered signed multiply-accumulate with a valid/ready handshake.
// A sample (a, b) is accepted when in_valid && in_ready; then
// acc <= (clear ? 0 : acc) + a*b (signed, wrapping at 24 bits), count <= count + 1,
// tag_q <= tag, history <= {history[71:0], new acc}, and out_valid rises. The result is held
// until out_ready; in_ready = !out_valid || out_ready (a one-deep pipeline register).
module mac_fixture (
    input  wire        clk,
    input  wire        rst,
    input  wire        in_valid,
    output wire        in_ready,
    input  wire [11:0] a,
    input  wire [11:0] b,
    input  wire        clear,
    input  wire [69:0] tag,
    output reg         out_valid,
    input  wire        out_ready,
    output reg  [23:0] acc,
    output reg  [39:0] count,
    output reg  [69:0] tag_q,
    output reg  [95:0] history
);
    wire signed [23:0] product = $signed(a) * $signed(b);
    wire [23:0] base = clear ? 24'd0 : acc;
    wire [23:0] acc_next = base + product;
    wire accept = in_valid && in_ready;
    assign in_ready = !out_valid || out_ready;

    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
            acc <= 24'd0;
            count <= 40'd0;
            tag_q <= 70'd0;
            history <= 96'd0;
        end else if (accept) begin
            acc <= acc_next;
            count <= count + 40'd1;
            tag_q <= tag;
            history <= {history[71:0], acc_next};
            out_valid <= 1'b1;
        end else if (out_ready) begin
            out_valid <= 1'b0;
        end
    end
endmodule
`default_nettype wire
"#;

/// The fixture's ports, in the order the tests index them.
pub fn ports() -> Vec<Port> {
    vec![
        Port::input("clk", 1),
        Port::input("rst", 1),
        Port::input("in_valid", 1),
        Port::output("in_ready", 1),
        Port::input("a", 12),
        Port::input("b", 12),
        Port::input("clear", 1),
        Port::input("tag", 70),
        Port::output("out_valid", 1),
        Port::input("out_ready", 1),
        Port::output("acc", 24),
        Port::output("count", 40),
        Port::output("tag_q", 70),
        Port::output("history", 96),
    ]
}

/// The fixture's build request (strict lint: the fixture must be `-Wall` clean).
pub fn build() -> VerilatorBuild {
    VerilatorBuild::new(TOP)
        .source_text("mac_fixture.v", VERILOG)
        .ports(ports())
        .strict_lint(true)
}

/// Inputs of one cycle, as raw (possibly over-wide) values the driver must mask.
#[derive(Debug, Clone, Copy, Default)]
pub struct MacInputs {
    pub rst: bool,
    pub in_valid: bool,
    pub a: u64,
    pub b: u64,
    pub clear: bool,
    pub tag: u128,
    pub out_ready: bool,
}

/// Registered state of the fixture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MacState {
    pub out_valid: bool,
    /// 24-bit two's-complement pattern.
    pub acc: u64,
    pub count: u64,
    pub tag_q: u128,
    pub history: u128,
}

const ACC_BITS: u32 = 24;
const ACC_MASK: u64 = (1 << ACC_BITS) - 1;

fn signed12(x: u64) -> i64 {
    (((x & 0xfff) << 52) as i64) >> 52
}

impl MacState {
    /// The combinational `in_ready` output for these inputs.
    pub fn in_ready(&self, inputs: &MacInputs) -> bool {
        !self.out_valid || inputs.out_ready
    }

    /// The state after a rising clock edge with `inputs` applied.
    pub fn step(&self, inputs: &MacInputs) -> MacState {
        if inputs.rst {
            return MacState::default();
        }
        let mut next = *self;
        if inputs.in_valid && self.in_ready(inputs) {
            let product = signed12(inputs.a) * signed12(inputs.b);
            let base = if inputs.clear { 0 } else { self.acc };
            let acc = (base as i64).wrapping_add(product) as u64 & ACC_MASK;
            next.acc = acc;
            next.count = (self.count + 1) & ((1 << 40) - 1);
            next.tag_q = inputs.tag & ((1u128 << 70) - 1);
            next.history = ((self.history << ACC_BITS) | u128::from(acc)) & ((1u128 << 96) - 1);
            next.out_valid = true;
        } else if inputs.out_ready {
            next.out_valid = false;
        }
        next
    }

    /// The accumulator as a signed value.
    pub fn acc_signed(&self) -> i64 {
        ((self.acc << 40) as i64) >> 40
    }
}

/// Little-endian 32-bit words of the low `words * 32` bits of `x`.
pub fn to_words(x: u128, words: usize) -> Vec<u32> {
    (0..words).map(|i| (x >> (32 * i)) as u32).collect()
}

/// The value of LSW-first words.
pub fn from_words(words: &[u32]) -> u128 {
    words
        .iter()
        .rev()
        .fold(0u128, |acc, &w| (acc << 32) | u128::from(w))
}
