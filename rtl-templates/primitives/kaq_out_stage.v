// kaq_out_stage — the output of the layer pipeline: takes the last layer's frame stream
// (M beats; the output codes and SNR bin are sampled on beat 0, the other beats are consumed
// and dropped), slices every code with the bin's thresholds (kaq_slicer) and presents one
// output beat per frame with valid/ready. A new frame's beat 0 is accepted in the cycle the
// held beat leaves, so the stage adds no bubble.
`default_nettype none

module kaq_out_stage #(
    parameter integer M = 4,
    parameter integer N = 4,
    parameter integer SW = 8,
    parameter integer BINS = 4,
    parameter integer BINW = 2,
    parameter integer LEVELS = 4,
    parameter integer TW = 9,
    parameter integer BPD = 2,
    parameter [BINS*(LEVELS-1)*TW-1:0] THRESH_TABLE = 0
) (
    input  wire              clk,
    input  wire              rst,
    input  wire              s_valid,
    output wire              s_ready,
    input  wire [BINW-1:0]   s_bin,
    input  wire [N*SW-1:0]   s_x,
    output wire              out_valid,
    input  wire              out_ready,
    output wire [N*SW-1:0]   out_x,
    output wire [N*BPD-1:0]  out_bits
);
    localparam integer RW = (M > 1) ? $clog2(M) : 1;
    localparam [RW-1:0] LAST_ROW = M[RW-1:0] - 1'b1;
    localparam integer TV = (LEVELS - 1) * TW;

    reg [RW-1:0]    row;
    reg             full;
    reg [N*SW-1:0]  x_q;
    reg [N*BPD-1:0] bits_q;

    wire leaving = full && out_ready;
    wire first = (row == {RW{1'b0}});
    assign s_ready = !rst && (!first || !full || out_ready);
    wire take = s_valid && s_ready;

    // The slicers only run for a frame's beat 0 (their output is a don't-care otherwise).
    wire slice_en = take && first;
    reg [TV-1:0] thresholds;
    always @(*) begin
        thresholds = {TV{1'bx}};
        if (slice_en) begin
            thresholds = THRESH_TABLE[{{(32 - BINW){1'b0}}, s_bin} * TV +: TV];
        end
    end
    wire [N*BPD-1:0] bits_new;
    genvar j;
    generate
        for (j = 0; j < N; j = j + 1) begin : g_slice
            kaq_slicer #(.W(SW), .LEVELS(LEVELS), .TW(TW), .BPD(BPD)) u_slicer (
                .en(slice_en), .code(s_x[j*SW +: SW]), .thresholds(thresholds), .bits(bits_new[j*BPD +: BPD])
            );
        end
    endgenerate

    always @(posedge clk) begin
        if (rst) begin
            row <= {RW{1'b0}};
            full <= 1'b0;
            x_q <= {(N*SW){1'b0}};
            bits_q <= {(N*BPD){1'b0}};
        end else begin
            if (take) begin
                row <= (row == LAST_ROW) ? {RW{1'b0}} : row + 1'b1;
            end
            if (take && first) begin
                full <= 1'b1;
                x_q <= s_x;
                bits_q <= bits_new;
            end else if (leaving) begin
                full <= 1'b0;
            end
        end
    end

    assign out_valid = full;
    assign out_x = x_q;
    assign out_bits = bits_q;
endmodule

`default_nettype wire
