// kaq_lut — combinational table lookup indexed by a signed code:
//   y = entry (idx + 2^(IDX_W-1)) of TABLE, i.e. TABLE[(idx + 2^(IDX_W-1))*TW +: TW]
// with entry 0 (for idx = -2^(IDX_W-1)) in the least significant bits. This is the table prox
// of the IR (kaq_model::ir, ProxStage::Table: table[idx + 2^(b-1)]). Every entry is a signed
// TW-bit code. Any IDX_W >= 1 and TW >= 1 is valid (kaq uses IDX_W <= 12, TW <= 32).
// Icarus cannot lex a single literal of a large table (2^12 x 32 bits); pass TABLE as a
// concatenation of one sized literal per entry, entry 0 last.
`default_nettype none

module kaq_lut #(
    parameter integer IDX_W = 4,
    parameter integer TW    = 8,
    parameter [(2**IDX_W)*TW-1:0] TABLE = 0
) (
    input  wire signed [IDX_W-1:0] idx,
    output wire signed [TW-1:0]    y
);
    localparam integer BITS = (2**IDX_W) * TW;
    // Width of a bit index into TABLE; IX_W >= IDX_W and TW < 2^IX_W.
    localparam integer IX_W = $clog2(BITS);

    // idx + 2^(IDX_W-1) modulo 2^IDX_W: flip the sign bit (FLIP = 100..0, valid for IDX_W = 1).
    localparam [IDX_W-1:0] ONES = {IDX_W{1'b1}};
    localparam [IDX_W-1:0] FLIP = ~(ONES >> 1);
    wire [IDX_W-1:0] addr = $unsigned(idx) ^ FLIP;

    // The entry's bit offset addr * TW <= BITS - TW, computed in IX_W bits.
    localparam [IX_W-1:0] TW_SIZED = TW[IX_W-1:0];
    wire [IX_W-1:0] addr_w;
    generate
        if (IX_W == IDX_W) begin : g_same
            assign addr_w = addr;
        end else begin : g_extend
            assign addr_w = {{(IX_W - IDX_W){1'b0}}, addr};
        end
    endgenerate
    wire [IX_W-1:0] offset = addr_w * TW_SIZED;

    assign y = $signed(TABLE[offset +: TW]);
endmodule

`default_nettype wire
