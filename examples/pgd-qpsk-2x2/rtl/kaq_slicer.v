// kaq_slicer — combinational slicer of one real dimension to Gray-coded bits:
//   i    = #{ j : code >= t_j }   (signed compare, j = 0 .. LEVELS-2)
//   bits = i ^ (i >> 1)
// as implemented in Rust by kaq_model::ir::Ir::level_index and Modulation::gray_bits (the
// Gray code of the level 2i - (LEVELS-1)). Threshold j is the signed TW-bit code
// thresholds[j*TW +: TW]; kaq supplies them ascending, but i counts every threshold at or
// below the code, as the Rust model does, whatever their order. LEVELS must be 2, 4 or 8 and
// BPD = log2(LEVELS); anything else fails elaboration. With en = 0 the output is a don't-care
// ('x): nothing may read it then, so a simulator skips the compares and synthesis drops the
// select.
`default_nettype none

module kaq_slicer #(
    parameter integer W      = 16,
    parameter integer LEVELS = 4,
    parameter integer TW     = 16,
    parameter integer BPD    = 2
) (
    input  wire                            en,
    input  wire signed [W-1:0]             code,
    input  wire        [(LEVELS-1)*TW-1:0] thresholds,
    output reg         [BPD-1:0]           bits
);
    generate
        if (!((LEVELS == 2 && BPD == 1) || (LEVELS == 4 && BPD == 2)
              || (LEVELS == 8 && BPD == 3))) begin : g_bad_levels
            kaq_slicer_unsupported_LEVELS_or_BPD u_fail ();
        end
    endgenerate

    // Common compare width, one bit above both so that every operand is sign-extended.
    localparam integer CW = ((W > TW) ? W : TW) + 1;
    localparam [BPD-1:0] ONES = {BPD{1'b1}};
    localparam [BPD-1:0] ONE  = ONES ^ (ONES << 1);
    localparam [BPD-1:0] ZERO = {BPD{1'b0}};

    // i = #{ j : code >= t_j } (at most LEVELS - 1, so it fits BPD bits), Gray-coded.
    function automatic [BPD-1:0] slice(
        input signed [W-1:0] f_code, input [(LEVELS-1)*TW-1:0] f_t
    );
        reg signed [CW-1:0] code_w;
        reg [TW-1:0] t;
        reg signed [CW-1:0] t_w;
        reg [BPD-1:0] index;
        integer n;
        begin
            code_w = $signed({{(CW - W){f_code[W-1]}}, f_code});
            index = ZERO;
            for (n = 0; n < LEVELS - 1; n = n + 1) begin
                t = f_t[n*TW +: TW];
                t_w = $signed({{(CW - TW){t[TW-1]}}, t});
                index = index + ((code_w >= t_w) ? ONE : ZERO);
            end
            slice = index ^ (index >> 1);
        end
    endfunction

    // The don't-care first, then the value under en: Verilator then evaluates the function
    // only when en is high (an if/else of two assignments becomes a select whose function
    // body it computes every cycle).
    always @(*) begin
        bits = {BPD{1'bx}};
        if (en) begin
            bits = slice(code, thresholds);
        end
    end
endmodule

`default_nettype wire
