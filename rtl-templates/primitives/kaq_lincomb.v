// kaq_lincomb — combinational exact linear combination of four signed terms:
//   y = c0*a0 + c1*a1 + c2*a2 + c3*a3
// computed in a width that cannot overflow (every product exact, three guard bits for the
// sum), then narrowed to OUT_W by taking the low bits. The narrowing is lossless because the
// lowering's interval analysis proves |y| fits OUT_W (docs/ir.md, the update, v and w
// accumulators); the Rust twin is the i128 sum in kaq_model::ir's interpreter. Unused terms
// are driven with zero coefficients. With en = 0 the output is a don't-care ('x): nothing
// may read it then, so a simulator skips the arithmetic and synthesis drops the select.
`default_nettype none

module kaq_lincomb #(
    parameter integer A0_W  = 8,
    parameter integer C0_W  = 8,
    parameter integer A1_W  = 8,
    parameter integer C1_W  = 8,
    parameter integer A2_W  = 8,
    parameter integer C2_W  = 8,
    parameter integer A3_W  = 8,
    parameter integer C3_W  = 8,
    parameter integer OUT_W = 24
) (
    input  wire                    en,
    input  wire signed [A0_W-1:0]  a0,
    input  wire signed [C0_W-1:0]  c0,
    input  wire signed [A1_W-1:0]  a1,
    input  wire signed [C1_W-1:0]  c1,
    input  wire signed [A2_W-1:0]  a2,
    input  wire signed [C2_W-1:0]  c2,
    input  wire signed [A3_W-1:0]  a3,
    input  wire signed [C3_W-1:0]  c3,
    output reg  signed [OUT_W-1:0] y
);
    localparam integer P0 = A0_W + C0_W;
    localparam integer P1 = A1_W + C1_W;
    localparam integer P2 = A2_W + C2_W;
    localparam integer P3 = A3_W + C3_W;
    localparam integer PM01 = (P0 > P1) ? P0 : P1;
    localparam integer PM23 = (P2 > P3) ? P2 : P3;
    localparam integer PMAX = (PM01 > PM23) ? PM01 : PM23;
    localparam integer XW0 = PMAX + 3;
    localparam integer XW = (XW0 > OUT_W) ? XW0 : OUT_W + 1;

    // Exact products, each sign-extended to XW bits, and their sum (narrowed to OUT_W).
    function automatic signed [OUT_W-1:0] lincomb(
        input signed [A0_W-1:0] f_a0, input signed [C0_W-1:0] f_c0,
        input signed [A1_W-1:0] f_a1, input signed [C1_W-1:0] f_c1,
        input signed [A2_W-1:0] f_a2, input signed [C2_W-1:0] f_c2,
        input signed [A3_W-1:0] f_a3, input signed [C3_W-1:0] f_c3
    );
        reg signed [P0-1:0] p0;
        reg signed [P1-1:0] p1;
        reg signed [P2-1:0] p2;
        reg signed [P3-1:0] p3;
        /* verilator lint_off UNUSEDSIGNAL */
        reg signed [XW-1:0] sum;
        /* verilator lint_on UNUSEDSIGNAL */
        begin
            p0 = f_a0 * f_c0;
            p1 = f_a1 * f_c1;
            p2 = f_a2 * f_c2;
            p3 = f_a3 * f_c3;
            sum = $signed({{(XW - P0){p0[P0-1]}}, p0}) + $signed({{(XW - P1){p1[P1-1]}}, p1})
                + $signed({{(XW - P2){p2[P2-1]}}, p2}) + $signed({{(XW - P3){p3[P3-1]}}, p3});
            lincomb = sum[OUT_W-1:0];
        end
    endfunction

    // The don't-care first, then the value under en: Verilator then evaluates the function
    // only when en is high (an if/else of two assignments becomes a select whose function
    // body it computes every cycle).
    always @(*) begin
        y = {OUT_W{1'bx}};
        if (en) begin
            y = lincomb(a0, c0, a1, c1, a2, c2, a3, c3);
        end
    end
endmodule

`default_nettype wire
