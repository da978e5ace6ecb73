// kaq_isqrt — combinational integer square root of a signed code (docs/fixed-point.md §6):
//   X = max(x, 0) * 2^SHIFT; y = overflow(round(sqrt(X), ROUNDING), OUT_W, OVERFLOW)
// as implemented in Rust by kaq_ir::fixed::{isqrt, isqrt_digit}. Digit-by-digit binary square
// root (one root bit per step, RW steps) leaves floor(sqrt(X)) and the remainder X - y^2; the
// nearest modes (0 half-up, 2 half-even: they agree, there are no ties) add 1 when the
// remainder exceeds the root; 1 floor adds nothing. Then kaq_round_shift_sat with SHIFT 0 for
// the narrowing (OVERFLOW: 0 saturate, 1 wrap, 2 symmetric). X_W >= 2, SHIFT >= 0, OUT_W >= 1;
// an unknown ROUNDING fails elaboration.
`default_nettype none

module kaq_isqrt #(
    parameter integer X_W      = 8,
    parameter integer SHIFT    = 0,
    parameter integer OUT_W    = 8,
    parameter integer ROUNDING = 0,
    parameter integer OVERFLOW = 0
) (
    input  wire signed [X_W-1:0]   x,
    output wire signed [OUT_W-1:0] y
);
    // X < 2^(X_W-1+SHIFT), rounded up to an even width XE; the root has RW = XE/2 bits.
    localparam integer XB = X_W - 1 + SHIFT;
    localparam integer XE = XB + (XB % 2);
    localparam integer RW = XE / 2;
    localparam integer QW = RW + 2;

    generate
        if (ROUNDING < 0 || ROUNDING > 2) begin : g_bad_rounding
            kaq_isqrt_unknown_ROUNDING u_fail ();
        end
    endgenerate

    // The clamped, shifted radicand in XE bits (x's sign bit is 0 when it is kept).
    wire [X_W-2:0] xpos = x[X_W-1] ? {(X_W - 1){1'b0}} : x[X_W-2:0];
    // Zero-extended to XE + 1 bits (XE + 2 - X_W >= 1), shifted; the top bit is always 0.
    wire [XE:0] big_w = {{(XE + 2 - X_W){1'b0}}, xpos} << SHIFT;
    /* verilator lint_off UNUSEDSIGNAL */
    wire big_top = big_w[XE];
    /* verilator lint_on UNUSEDSIGNAL */
    wire [XE-1:0] big = big_w[XE-1:0];

    // rem <= X < 2^XE and res + bit < 2^XE throughout.
    reg [XE-1:0] rem;
    reg [XE-1:0] res;
    reg [XE-1:0] bitv;
    integer k;
    always @(*) begin
        rem = big;
        res = {XE{1'b0}};
        bitv = {{(XE - 1){1'b0}}, 1'b1} << (XE - 2);
        for (k = 0; k < RW; k = k + 1) begin
            if (rem >= res + bitv) begin
                rem = rem - (res + bitv);
                res = (res >> 1) + bitv;
            end else begin
                res = res >> 1;
            end
            bitv = bitv >> 2;
        end
    end

    // res < 2^RW; the remainder is at most 2 res.
    wire up = (ROUNDING != 1) && (rem > res);
    /* verilator lint_off UNUSEDSIGNAL */
    wire [XE-1:0] res_all = res;
    /* verilator lint_on UNUSEDSIGNAL */
    wire signed [QW-1:0] rounded = $signed({2'b00, res_all[RW-1:0]}) + $signed({{(QW - 1){1'b0}}, up});

    kaq_round_shift_sat #(
        .IN_W(QW), .SHIFT(0), .OUT_W(OUT_W), .ROUNDING(1), .OVERFLOW(OVERFLOW)
    ) u_narrow (
        .x(rounded), .y(y)
    );
endmodule

`default_nettype wire
