// kaq_affine_requant — combinational requantization of an affine combination:
//   y = overflow(round_shift(a * mult - b * 2^B_SHIFT, SHIFT, ROUNDING), OUT_W, OVERFLOW)
// computed exactly (no wrap before the final narrowing), as specified in docs/fixed-point.md
// and implemented in Rust by kaq_model::fixed::requantize_wide on the exact i128 value
// a*mult - (b << B_SHIFT). The multiplier is a port so that a per-SNR-bin table can drive it.
// ROUNDING and OVERFLOW codes as in kaq_round_shift_sat; an unknown code fails elaboration.
`default_nettype none

module kaq_affine_requant #(
    parameter integer A_W      = 16,
    parameter integer MULT_W   = 16,
    parameter integer B_W      = 8,
    parameter integer B_SHIFT  = 0,
    parameter integer SHIFT    = 12,
    parameter integer OUT_W    = 8,
    parameter integer ROUNDING = 0,
    parameter integer OVERFLOW = 0
) (
    input  wire signed [A_W-1:0]    a,
    input  wire signed [MULT_W-1:0] mult,
    input  wire signed [B_W-1:0]    b,
    output wire signed [OUT_W-1:0]  y
);
    localparam integer PROD_W = A_W + MULT_W;
    localparam integer BS_W   = B_W + B_SHIFT;
    // One bit above both terms: the difference of a PROD_W-bit and a BS_W-bit value is exact.
    localparam integer DIFF_W = ((PROD_W > BS_W) ? PROD_W : BS_W) + 1;

    // Both factors signed and explicitly sign-extended: the product is exact.
    wire signed [PROD_W-1:0] a_ext    = $signed({{MULT_W{a[A_W-1]}}, a});
    wire signed [PROD_W-1:0] mult_ext = $signed({{A_W{mult[MULT_W-1]}}, mult});
    wire signed [PROD_W-1:0] product  = a_ext * mult_ext;

    // Both terms sign-extended to DIFF_W bits; b * 2^B_SHIFT fits BS_W < DIFF_W bits.
    wire signed [DIFF_W-1:0] product_w = $signed({{(DIFF_W - PROD_W){product[PROD_W-1]}}, product});
    wire signed [DIFF_W-1:0] b_w       = $signed({{(DIFF_W - B_W){b[B_W-1]}}, b});
    wire signed [DIFF_W-1:0] b_scaled  = b_w <<< B_SHIFT;
    wire signed [DIFF_W-1:0] diff      = product_w - b_scaled;

    kaq_round_shift_sat #(
        .IN_W    (DIFF_W),
        .SHIFT   (SHIFT),
        .OUT_W   (OUT_W),
        .ROUNDING(ROUNDING),
        .OVERFLOW(OVERFLOW)
    ) u_round_shift_sat (
        .x(diff),
        .y(y)
    );
endmodule

`default_nettype wire
