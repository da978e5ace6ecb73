// kaq_divide — combinational integer division of two signed codes (docs/fixed-point.md §6):
//   D = max(d, D_MIN); y = overflow(round(n * 2^SHIFT / D, ROUNDING), OUT_W, OVERFLOW)
// as implemented in Rust by kaq_ir::fixed::{divide, divide_restoring}. Restoring division of
// the magnitude |n * 2^SHIFT| (one quotient bit per step, NUM_W steps), the floor fix-up of a
// negative numerator, the rounding carry from 2r vs D, then kaq_round_shift_sat with SHIFT 0
// for the narrowing. ROUNDING: 0 half-up, 1 floor, 2 half-even. OVERFLOW: 0 saturate,
// 1 wrap, 2 symmetric. D_MIN >= 1 is a sized (D_W-1)-bit unsigned constant, so the divisor
// is never 0 or negative; D_MIN = 0 or an unknown ROUNDING fails elaboration.
// N_W >= 1, D_W >= 2, SHIFT >= 0, OUT_W >= 1.
`default_nettype none

module kaq_divide #(
    parameter integer N_W      = 8,
    parameter integer D_W      = 8,
    parameter integer SHIFT    = 0,
    parameter [D_W-2:0] D_MIN  = {{(D_W - 2){1'b0}}, 1'b1},
    parameter integer OUT_W    = 8,
    parameter integer ROUNDING = 0,
    parameter integer OVERFLOW = 0
) (
    input  wire signed [N_W-1:0]   n,
    input  wire signed [D_W-1:0]   d,
    output wire signed [OUT_W-1:0] y
);
    // |n * 2^SHIFT| <= 2^(NUM_W-1): NUM_W unsigned bits hold it.
    localparam integer NUM_W = N_W + SHIFT;
    // The signed quotient, fixed up and rounded: |q| <= 2^(NUM_W-1) + 1.
    localparam integer QW = NUM_W + 2;

    generate
        if (D_MIN == {(D_W - 1){1'b0}}) begin : g_bad_dmin
            kaq_divide_D_MIN_must_be_at_least_1 u_fail ();
        end
        if (ROUNDING < 0 || ROUNDING > 2) begin : g_bad_rounding
            kaq_divide_unknown_ROUNDING u_fail ();
        end
    endgenerate

    // The clamped divisor, positive, in D_W - 1 unsigned bits (widened by one for the
    // partial remainder).
    localparam signed [D_W-1:0] DMIN_S = $signed({1'b0, D_MIN});
    wire signed [D_W-1:0] dc = (d < DMIN_S) ? DMIN_S : d;
    wire [D_W-1:0] den = dc;

    // The numerator's magnitude and sign.
    // n sign-extended to NUM_W + 1 bits, then shifted (no zero-width replication).
    wire signed [NUM_W:0] nw = $signed({{(SHIFT + 1){n[N_W-1]}}, n});
    wire signed [NUM_W:0] num = nw <<< SHIFT;
    wire negative = n[N_W-1];
    wire [NUM_W:0] mag_w = negative ? -num : num;
    wire [NUM_W-1:0] mag = mag_w[NUM_W-1:0];
    /* verilator lint_off UNUSEDSIGNAL */
    wire mag_top = mag_w[NUM_W];
    /* verilator lint_on UNUSEDSIGNAL */

    // Restoring division: r < den <= 2^(D_W-1) before each step, so {r, bit} < 2^D_W.
    reg [NUM_W-1:0] q0;
    reg [D_W-1:0] r0;
    integer i;
    always @(*) begin
        q0 = {NUM_W{1'b0}};
        r0 = {D_W{1'b0}};
        for (i = NUM_W - 1; i >= 0; i = i - 1) begin
            r0 = {r0[D_W-2:0], mag[i]};
            if (r0 >= den) begin
                r0 = r0 - den;
                q0[i] = 1'b1;
            end
        end
    end

    // Floor fix-up: for n < 0, q = -q0 - [r0 != 0], r = den - r0 if r0 != 0.
    wire signed [QW-1:0] q0s = $signed({2'b00, q0});
    wire r_zero = (r0 == {D_W{1'b0}});
    wire signed [QW-1:0] q = !negative ? q0s : (r_zero ? -q0s : -q0s - $signed({{(QW - 1){1'b0}}, 1'b1}));
    wire [D_W-1:0] r = (!negative || r_zero) ? r0 : den - r0;

    // Rounding carry from 2r against den (D_W + 1 bits, no overflow).
    wire [D_W:0] r2 = {r, 1'b0};
    wire [D_W:0] den_w = {1'b0, den};
    wire carry = (ROUNDING == 0) ? (r2 >= den_w)
               : (ROUNDING == 2) ? ((r2 > den_w) | ((r2 == den_w) & q[0]))
               : 1'b0;
    wire signed [QW-1:0] rounded = q + $signed({{(QW - 1){1'b0}}, carry});

    kaq_round_shift_sat #(
        .IN_W(QW), .SHIFT(0), .OUT_W(OUT_W), .ROUNDING(1), .OVERFLOW(OVERFLOW)
    ) u_narrow (
        .x(rounded), .y(y)
    );
endmodule

`default_nettype wire
