// kaq_slicer — combinational slicer of one real dimension to Gray-coded bits:
//   i    = #{ j : code >= t_j }   (signed compare, j = 0 .. LEVELS-2)
//   bits = i ^ (i >> 1)
// as implemented in Rust by kaq_model::ir::Ir::level_index and Modulation::gray_bits (the
// Gray code of the level 2i - (LEVELS-1)). Threshold j is the signed TW-bit code
// thresholds[j*TW +: TW]; kaq supplies them ascending, but i counts every threshold at or
// below the code, as the Rust model does, whatever their order. LEVELS must be 2, 4 or 8 and
// BPD = log2(LEVELS); anything else fails elaboration.
`default_nettype none

module kaq_slicer #(
    parameter integer W      = 16,
    parameter integer LEVELS = 4,
    parameter integer TW     = 16,
    parameter integer BPD    = 2
) (
    input  wire signed [W-1:0]             code,
    input  wire        [(LEVELS-1)*TW-1:0] thresholds,
    output wire        [BPD-1:0]           bits
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

    wire signed [CW-1:0] code_w = $signed({{(CW - W){code[W-1]}}, code});

    // ge[j]: code >= t_j.
    wire [LEVELS-2:0] ge;
    genvar j;
    generate
        for (j = 0; j < LEVELS - 1; j = j + 1) begin : g_threshold
            wire [TW-1:0] t = thresholds[j*TW +: TW];
            wire signed [CW-1:0] t_w = $signed({{(CW - TW){t[TW-1]}}, t});
            assign ge[j] = code_w >= t_w;
        end
    endgenerate

    // The level index: the number of ones in ge (at most LEVELS - 1, so it fits BPD bits).
    reg [BPD-1:0] index;
    integer n;
    always @* begin
        index = ZERO;
        for (n = 0; n < LEVELS - 1; n = n + 1) begin
            index = index + (ge[n] ? ONE : ZERO);
        end
    end

    assign bits = index ^ (index >> 1);
endmodule

`default_nettype wire
