// kaq_prox_pwl — combinational piecewise-linear proximal operator on a signed W-bit code:
//   KIND 0 (soft): y = x - clamp(x, -PARAM, PARAM)   (soft threshold, PARAM = lambda)
//   KIND 1 (box):  y = clamp(x, -PARAM, PARAM)       (box projection, PARAM = limit)
// as implemented in Rust by the interpreter's prox (kaq_model::ir, ProxStage::Soft / Box).
// PARAM is a non-negative W-bit constant read as unsigned, so it may exceed the largest W-bit
// code (then box is the identity and soft is zero). The result always fits W bits: clamping
// never increases the magnitude, and x - clamp(x) lies between 0 and x. Any W >= 1 is valid;
// an unknown KIND fails elaboration. Pass PARAM sized (W'd...): lint under Verilator flags an
// unsized 32-bit value as a WIDTH warning unless W = 32. With en = 0 the output is a
// don't-care ('x): nothing may read it then, so a simulator skips the compares and synthesis
// drops the select.
`default_nettype none

module kaq_prox_pwl #(
    parameter integer W     = 16,
    parameter integer KIND  = 0,
    parameter [W-1:0] PARAM = {W{1'b0}}
) (
    input  wire                en,
    input  wire signed [W-1:0] x,
    output reg  signed [W-1:0] y
);
    // Working width: PARAM < 2^W and -PARAM >= -2^W both fit W + 1 signed bits.
    localparam integer XW = W + 1;
    localparam signed [XW-1:0] HI = $signed({1'b0, PARAM});
    localparam signed [XW-1:0] LO = -HI;

    generate
        if (KIND != 0 && KIND != 1) begin : g_bad_kind
            kaq_prox_pwl_unknown_KIND u_fail ();
        end
    endgenerate

    // r = x - clamp(x) (soft) or clamp(x) (box) fits W bits (see above): its top bit only
    // repeats the sign.
    function automatic signed [W-1:0] prox(input signed [W-1:0] f_x);
        reg signed [XW-1:0] xw;
        reg signed [XW-1:0] clamped;
        /* verilator lint_off UNUSEDSIGNAL */
        reg signed [XW-1:0] r;
        /* verilator lint_on UNUSEDSIGNAL */
        begin
            xw = $signed({f_x[W-1], f_x});
            clamped = (xw > HI) ? HI : ((xw < LO) ? LO : xw);
            r = (KIND == 0) ? xw - clamped : clamped;
            prox = $signed(r[W-1:0]);
        end
    endfunction

    // The don't-care first, then the value under en: Verilator then evaluates the function
    // only when en is high (an if/else of two assignments becomes a select whose function
    // body it computes every cycle).
    always @(*) begin
        y = {W{1'bx}};
        if (en) begin
            y = prox(x);
        end
    end
endmodule

`default_nettype wire
