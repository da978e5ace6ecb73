// kaq_requant — combinational requantization of an accumulator value:
//   y = overflow(round_shift(x * mult, SHIFT, ROUNDING), OUT_W, OVERFLOW)
// with an exact signed IN_W x MULT_W product, as specified in docs/fixed-point.md and
// implemented in Rust by kaq_model::fixed::requantize. The multiplier is a port so that a
// per-SNR-bin table can drive it; the shift is a constant (a table of (mult, shift) pairs is
// first brought to one common shift, which is exact — see docs/fixed-point.md).
// ROUNDING and OVERFLOW codes as in kaq_round_shift_sat.
`default_nettype none

module kaq_requant #(
    parameter integer IN_W     = 24,
    parameter integer MULT_W   = 16,
    parameter integer SHIFT    = 12,
    parameter integer OUT_W    = 8,
    parameter integer ROUNDING = 0,
    parameter integer OVERFLOW = 0
) (
    input  wire signed [IN_W-1:0]   x,
    input  wire signed [MULT_W-1:0] mult,
    output wire signed [OUT_W-1:0]  y
);
    localparam integer PROD_W = IN_W + MULT_W;

    // Both operands signed and explicitly sign-extended: the product is exact.
    wire signed [PROD_W-1:0] x_ext    = $signed({{MULT_W{x[IN_W-1]}}, x});
    wire signed [PROD_W-1:0] mult_ext = $signed({{IN_W{mult[MULT_W-1]}}, mult});
    wire signed [PROD_W-1:0] product  = x_ext * mult_ext;

    kaq_round_shift_sat #(
        .IN_W    (PROD_W),
        .SHIFT   (SHIFT),
        .OUT_W   (OUT_W),
        .ROUNDING(ROUNDING),
        .OVERFLOW(OVERFLOW)
    ) u_round_shift_sat (
        .x(product),
        .y(y)
    );
endmodule

`default_nettype wire
