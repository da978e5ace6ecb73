// kaq_requant_var — combinational requantization with a per-input shift:
//   y = overflow(round_shift(x * mult, shift, ROUNDING), OUT_W, OVERFLOW)
// like kaq_requant, but the shift is a port (0..2^SHIFT_W-1) as well as the multiplier, so a
// per-SNR-bin table of (mult, shift) pairs keeps every bin's multiplier at full precision
// (docs/fixed-point.md §2). Rust twin: kaq_model::fixed::requantize. ROUNDING: 0 half-up,
// 1 floor, 2 half-even; OVERFLOW as in kaq_round_shift_sat (which does the narrowing).
`default_nettype none

module kaq_requant_var #(
    parameter integer IN_W     = 24,
    parameter integer MULT_W   = 16,
    parameter integer SHIFT_W  = 6,
    parameter integer OUT_W    = 8,
    parameter integer ROUNDING = 0,
    parameter integer OVERFLOW = 0
) (
    input  wire signed [IN_W-1:0]   x,
    input  wire signed [MULT_W-1:0] mult,
    input  wire        [SHIFT_W-1:0] shift,
    output wire signed [OUT_W-1:0]  y
);
    localparam integer PROD_W = IN_W + MULT_W;
    // One bit of headroom for the rounding offset; at least as wide as the largest shift.
    localparam integer MAXS = (1 << SHIFT_W) - 1;
    localparam integer XW = ((PROD_W > MAXS) ? PROD_W : MAXS) + 1;
    localparam [XW-1:0] ONE = {{(XW - 1){1'b0}}, 1'b1};

    wire signed [PROD_W-1:0] x_ext    = $signed({{MULT_W{x[IN_W-1]}}, x});
    wire signed [PROD_W-1:0] mult_ext = $signed({{IN_W{mult[MULT_W-1]}}, mult});
    wire signed [PROD_W-1:0] product  = x_ext * mult_ext;
    wire signed [XW-1:0] pw = $signed({{(XW - PROD_W){product[PROD_W-1]}}, product});

    // 2^(shift-1) for shift >= 1, and the mask of the dropped bits, as XW-bit values.
    // (Floor rounding reads none of these but q.)
    /* verilator lint_off UNUSEDSIGNAL */
    wire nonzero = (shift != {SHIFT_W{1'b0}});
    wire [XW-1:0] half = nonzero ? (ONE << (shift - 1'b1)) : {XW{1'b0}};
    wire [XW-1:0] mask = (ONE << shift) - ONE;
    wire signed [XW-1:0] q = pw >>> shift;  // floor
    wire [XW-1:0] r = pw & mask;             // dropped bits, 0 <= r < 2^shift
    /* verilator lint_on UNUSEDSIGNAL */
    wire carry;
    generate
        if (ROUNDING == 0) begin : g_half_up
            assign carry = nonzero && (r >= half);
        end else if (ROUNDING == 1) begin : g_floor
            assign carry = 1'b0;
        end else if (ROUNDING == 2) begin : g_half_even
            assign carry = nonzero && ((r > half) || ((r == half) && q[0]));
        end else begin : g_bad_rounding
            kaq_requant_var_unknown_ROUNDING u_fail ();
        end
    endgenerate
    wire signed [XW-1:0] rs = q + $signed({{(XW - 1){1'b0}}, carry});

    // Narrowing only (SHIFT 0): the overflow rules of kaq_round_shift_sat.
    kaq_round_shift_sat #(
        .IN_W    (XW),
        .SHIFT   (0),
        .OUT_W   (OUT_W),
        .ROUNDING(0),
        .OVERFLOW(OVERFLOW)
    ) u_narrow (
        .x(rs),
        .y(y)
    );
endmodule

`default_nettype wire
