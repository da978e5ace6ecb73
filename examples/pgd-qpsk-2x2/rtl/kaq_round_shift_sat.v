// kaq_round_shift_sat — combinational rounding right shift followed by narrowing:
//   y = overflow(round_shift(x, SHIFT, ROUNDING), OUT_W, OVERFLOW)
// on two's-complement codes, exactly as specified in docs/fixed-point.md and implemented in
// Rust by kaq_model::fixed::{round_shift, overflow}.
//   ROUNDING: 0 half-up (add 2^(SHIFT-1), then >>>), 1 floor (>>>), 2 half-even.
//   OVERFLOW: 0 saturate to [-2^(OUT_W-1), 2^(OUT_W-1)-1], 1 wrap (keep OUT_W low bits),
//             2 symmetric saturate to [-(2^(OUT_W-1)-1), 2^(OUT_W-1)-1].
// SHIFT = 0 means no rounding. Any IN_W >= 1, SHIFT >= 0, OUT_W >= 1 is valid; an unknown
// ROUNDING or OVERFLOW code fails elaboration.
`default_nettype none

module kaq_round_shift_sat #(
    parameter integer IN_W     = 16,
    parameter integer SHIFT    = 4,
    parameter integer OUT_W    = 8,
    parameter integer ROUNDING = 0,
    parameter integer OVERFLOW = 0
) (
    input  wire signed [IN_W-1:0]  x,
    output wire signed [OUT_W-1:0] y
);
    // Working width: one bit above both IN_W and SHIFT, so adding the rounding offset cannot
    // overflow and every dropped bit xw[SHIFT-1:0] exists.
    localparam integer XW = ((IN_W > SHIFT) ? IN_W : SHIFT) + 1;
    localparam [XW-1:0] ONE = {{(XW - 1){1'b0}}, 1'b1};

    // x sign-extended explicitly to XW bits.
    wire signed [XW-1:0] xw = $signed({{(XW - IN_W){x[IN_W-1]}}, x});
    // round_shift(x, SHIFT, ROUNDING), sign-extended to XW bits.
    wire signed [XW-1:0] rs;

    generate
        if (SHIFT == 0) begin : g_no_shift
            assign rs = xw;
        end else if (ROUNDING == 0) begin : g_half_up
            localparam [XW-1:0] HALF = ONE << (SHIFT - 1);
            assign rs = (xw + $signed(HALF)) >>> SHIFT;
        end else if (ROUNDING == 1) begin : g_floor
            assign rs = xw >>> SHIFT;
        end else if (ROUNDING == 2) begin : g_half_even
            // Bits below the guard bit xw[SHIFT-1].
            localparam [XW-1:0] STICKY_MASK = (ONE << (SHIFT - 1)) - ONE;
            wire signed [XW-1:0] q = xw >>> SHIFT;
            wire guard = xw[SHIFT-1];
            wire sticky = |(xw & STICKY_MASK);
            wire carry = guard & (sticky | q[0]);
            assign rs = q + $signed({{(XW - 1){1'b0}}, carry});
        end else begin : g_bad_rounding
            kaq_round_shift_sat_unknown_ROUNDING u_fail ();
        end
    endgenerate

    // Output range constants, all OUT_W bits wide (valid for OUT_W = 1 too).
    localparam [OUT_W-1:0] ONES    = {OUT_W{1'b1}};
    localparam [OUT_W-1:0] MAX     = ONES >> 1;           //  2^(OUT_W-1) - 1
    localparam [OUT_W-1:0] MIN     = ~MAX;                // -2^(OUT_W-1)
    localparam [OUT_W-1:0] LSB     = ONES ^ (ONES << 1);  //  1
    localparam [OUT_W-1:0] NEG_MAX = MIN + LSB;           // -(2^(OUT_W-1) - 1)

    generate
        if (OVERFLOW < 0 || OVERFLOW > 2) begin : g_bad_overflow
            kaq_round_shift_sat_unknown_OVERFLOW u_fail ();
        end else if (OUT_W > XW) begin : g_extend
            // rs always fits: sign-extend (no mode can change the value).
            assign y = $signed({{(OUT_W - XW){rs[XW-1]}}, rs});
        end else if (OUT_W == XW) begin : g_same
            // rs >= -2^(IN_W-1) > -2^(XW-1): no mode can change the value.
            assign y = rs;
        end else if (OVERFLOW == 1) begin : g_wrap
            // Wrap-around keeps the OUT_W low bits; the bits above are dropped on purpose.
            /* verilator lint_off UNUSEDSIGNAL */
            wire [XW-OUT_W-1:0] dropped = rs[XW-1:OUT_W];
            /* verilator lint_on UNUSEDSIGNAL */
            assign y = $signed(rs[OUT_W-1:0]);
        end else begin : g_saturate
            // rs fits OUT_W bits iff bits XW-1 .. OUT_W-1 all equal the sign.
            wire [XW-OUT_W:0] top = rs[XW-1:OUT_W-1];
            wire in_range = (&top) | ~(|top);
            wire [OUT_W-1:0] low = rs[OUT_W-1:0];
            wire negative = rs[XW-1];
            if (OVERFLOW == 0) begin : g_full
                assign y = $signed(in_range ? low : (negative ? MIN : MAX));
            end else begin : g_symmetric
                assign y = $signed((in_range && low != MIN) ? low : (negative ? NEG_MAX : MAX));
            end
        end
    endgenerate
endmodule

`default_nettype wire
