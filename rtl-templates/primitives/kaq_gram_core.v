// kaq_gram_core — the folded engine of an IR v2 cg detector (docs/rtl.md, "IR v2").
//
// One multiplier, one 64-bit accumulator and a register file run a micro-program that the
// generated top holds in ROM (kaq_codegen::gram::program): the per-channel-block program
// (G = H̃ᵀH̃ upper triangle, tr G, 1/tr G, D = 1/diag G) once per block, then the vector
// program (z, ‖ỹ‖², every layer's e, W, v², inner steps p/d/ρ, r, τ², bucket, table) per
// vector. One instruction per cycle; a division (kaq_divide_seq, n = 1) holds the program
// for 2 + 2 + SHIFT cycles (issue, N_W + SHIFT steps, write).
//
// Ports: a block beat (blk_valid/blk_ready: H̃ row-major, blk_h[(r*N+j)*HW +: HW]; T; SNR
// bin), then T vector beats (y_valid/y_ready: ỹ, y_data[r*YW +: YW]), each answered by one
// output beat (out_valid/out_ready: x, out_x[i*SW +: SW]; out_last on the block's last
// vector). Every handshake transfers on a rising edge with valid && ready; a valid output is
// held until taken. T = 0 runs the block program and returns to idle.
//
// Instruction word (LSB first): op[3], a[AW], b[BW], b_const, b_bin, neg, sh[6], first,
// last, down[6], satw[7], dest[AW]. op: 0 MAC, 1 MAX, 2 DIV inv_trace, 3 DIV diag_inv,
// 4 BUCKET, 5 LUT. MAC: acc' = (first ? 0 : acc) ± (a·b << sh); on last, dest =
// sat_satw(round_half_up(acc' >> down)). The ROM ports (pc → ins, kaddr → kval, bk_in →
// bk_out, {lut_bucket, lut_idx} → lut_val) are combinational in the top.
`default_nettype none

module kaq_gram_core #(
    parameter integer M = 4,
    parameter integer N = 4,
    parameter integer HW = 8,
    parameter integer YW = 8,
    parameter integer SW = 8,
    parameter integer TW = 16,
    parameter integer BINW = 7,
    parameter integer DW = 64,
    parameter integer NREG = 128,
    parameter integer AW = 7,
    parameter integer BW = 8,
    parameter integer KAW = 8,
    parameter integer PCW = 10,
    parameter integer PB = 10,
    parameter integer PV = 10,
    parameter integer H_BASE = 0,
    parameter integer Y_BASE = 16,
    parameter integer X_BASE = 32,
    parameter integer ONE = 63,
    parameter integer RW = 8,
    parameter integer BKW = 3,
    parameter integer DIVW = 24,
    parameter integer SH0 = 16,
    parameter [DIVW-2:0] DMIN0 = 1,
    parameter integer OW0 = 16,
    parameter integer RND0 = 0,
    parameter integer OVF0 = 0,
    parameter integer SH1 = 16,
    parameter [DIVW-2:0] DMIN1 = 1,
    parameter integer OW1 = 16,
    parameter integer RND1 = 0,
    parameter integer OVF1 = 0,
    parameter integer IW = 3 + AW + BW + 3 + 6 + 2 + 6 + 7 + AW
) (
    input  wire                  clk,
    input  wire                  rst,
    input  wire                  blk_valid,
    output wire                  blk_ready,
    input  wire [M*N*HW-1:0]     blk_h,
    input  wire [TW-1:0]         blk_t,
    input  wire [BINW-1:0]       blk_bin,
    input  wire                  y_valid,
    output wire                  y_ready,
    input  wire [M*YW-1:0]       y_data,
    output wire                  out_valid,
    input  wire                  out_ready,
    output wire [N*SW-1:0]       out_x,
    output wire                  out_last,
    output wire [PCW-1:0]        pc_o,
    input  wire [IW-1:0]         ins,
    output wire [KAW-1:0]        kaddr,
    input  wire signed [DW-1:0]  kval,
    output wire signed [DW-1:0]  bk_in,
    input  wire [BKW-1:0]        bk_out,
    output wire [BKW-1:0]        lut_bucket,
    output wire [RW-1:0]         lut_idx,
    input  wire signed [SW-1:0]  lut_val
);
    localparam [2:0] S_IDLE = 3'd0, S_RUN = 3'd1, S_WAIT_Y = 3'd2, S_OUT = 3'd3;
    localparam [2:0] OP_MAC = 3'd0, OP_MAX = 3'd1, OP_DIV0 = 3'd2, OP_DIV1 = 3'd3,
                     OP_BUCKET = 3'd4, OP_LUT = 3'd5;

    reg [2:0] state;
    reg [PCW-1:0] pc;
    reg [PCW-1:0] pc_end;
    reg in_block;
    reg [TW-1:0] t_left;
    reg [BINW-1:0] bin;
    reg [BKW-1:0] bucket;
    reg waiting;
    reg signed [DW-1:0] acc;
    reg signed [DW-1:0] rf [0:NREG-1];

    // Instruction fields.
    wire [2:0] op = ins[2:0];
    wire [AW-1:0] ia = ins[3 +: AW];
    wire [BW-1:0] ib = ins[3 + AW +: BW];
    wire b_const = ins[3 + AW + BW];
    wire b_bin = ins[4 + AW + BW];
    wire neg = ins[5 + AW + BW];
    wire [5:0] sh = ins[6 + AW + BW +: 6];
    wire first = ins[12 + AW + BW];
    wire last = ins[13 + AW + BW];
    wire [5:0] down = ins[14 + AW + BW +: 6];
    wire [6:0] satw = ins[20 + AW + BW +: 7];
    wire [AW-1:0] dest = ins[27 + AW + BW +: AW];

    assign pc_o = pc;
    assign blk_ready = (state == S_IDLE);
    assign y_ready = (state == S_WAIT_Y);
    assign out_valid = (state == S_OUT);
    assign out_last = (t_left == {{(TW - 1){1'b0}}, 1'b1});

    // Operands.
    localparam signed [DW-1:0] ONE_V = {{(DW - 1){1'b0}}, 1'b1};
    wire signed [DW-1:0] av = (ia == ONE[AW-1:0]) ? ONE_V : rf[ia];
    wire [AW-1:0] ib_r = ib[AW-1:0];
    wire signed [DW-1:0] bv_r = (ib_r == ONE[AW-1:0]) ? ONE_V : rf[ib_r];
    wire [KAW-1:0] bin_k = b_bin ? {{(KAW - BINW){1'b0}}, bin} : {KAW{1'b0}};
    assign kaddr = ib[KAW-1:0] + bin_k;
    wire signed [DW-1:0] bv = b_const ? kval : bv_r;

    // The multiply-accumulate and the finish.
    wire signed [2*DW-1:0] prod_w = av * bv;
    wire signed [DW-1:0] prod = prod_w[DW-1:0];
    wire signed [DW-1:0] term = prod <<< sh;
    wire signed [DW-1:0] base = first ? {DW{1'b0}} : acc;
    wire signed [DW-1:0] accn = neg ? base - term : base + term;
    wire signed [DW-1:0] half = (down == 6'd0) ? {DW{1'b0}} : (ONE_V <<< (down - 6'd1));
    wire signed [DW-1:0] rnd = (accn + half) >>> down;
    wire signed [DW-1:0] smax = (ONE_V <<< (satw - 7'd1)) - ONE_V;
    wire signed [DW-1:0] sat = (satw == 7'd0) ? rnd
                             : (rnd > smax) ? smax
                             : (rnd < -smax) ? -smax : rnd;

    // The dividers.
    wire d0_ready, d0_done, d1_ready, d1_done;
    wire signed [OW0-1:0] d0_y;
    wire signed [OW1-1:0] d1_y;
    wire running = (state == S_RUN);
    wire d0_start = running && (op == OP_DIV0) && !waiting;
    wire d1_start = running && (op == OP_DIV1) && !waiting;
    kaq_divide_seq #(
        .N_W(2), .D_W(DIVW), .SHIFT(SH0), .D_MIN(DMIN0), .OUT_W(OW0),
        .ROUNDING(RND0), .OVERFLOW(OVF0)
    ) u_div0 (
        .clk(clk), .rst(rst), .start(d0_start), .n(2'sd1), .d(av[DIVW-1:0]),
        .ready(d0_ready), .done(d0_done), .y(d0_y)
    );
    kaq_divide_seq #(
        .N_W(2), .D_W(DIVW), .SHIFT(SH1), .D_MIN(DMIN1), .OUT_W(OW1),
        .ROUNDING(RND1), .OVERFLOW(OVF1)
    ) u_div1 (
        .clk(clk), .rst(rst), .start(d1_start), .n(2'sd1), .d(av[DIVW-1:0]),
        .ready(d1_ready), .done(d1_done), .y(d1_y)
    );
    /* verilator lint_off UNUSEDSIGNAL */
    wire unused = d0_ready | d1_ready | (|av[DW-1:DIVW]) | (|ib) | (|prod_w[2*DW-1:DW]);
    /* verilator lint_on UNUSEDSIGNAL */

    assign bk_in = av;
    assign lut_bucket = bucket;
    assign lut_idx = {~av[RW-1], av[RW-2:0]};

    // Whether the current instruction completes this cycle.
    wire div_done = ((op == OP_DIV0) && d0_done) || ((op == OP_DIV1) && d1_done);
    wire is_div = (op == OP_DIV0) || (op == OP_DIV1);
    wire advance = running && (!is_div || (waiting && div_done));
    wire at_end = (pc == pc_end);

    integer k;
    always @(posedge clk) begin
        if (rst) begin
            state <= S_IDLE;
            pc <= {PCW{1'b0}};
            pc_end <= {PCW{1'b0}};
            in_block <= 1'b0;
            t_left <= {TW{1'b0}};
            bin <= {BINW{1'b0}};
            bucket <= {BKW{1'b0}};
            waiting <= 1'b0;
            acc <= {DW{1'b0}};
        end else begin
            case (state)
                S_IDLE: if (blk_valid) begin
                    for (k = 0; k < M * N; k = k + 1)
                        rf[H_BASE + k] <= {{(DW - HW){blk_h[k*HW + HW - 1]}}, blk_h[k*HW +: HW]};
                    t_left <= blk_t;
                    bin <= blk_bin;
                    pc <= {PCW{1'b0}};
                    pc_end <= PB[PCW-1:0] - 1'b1;
                    in_block <= 1'b1;
                    state <= S_RUN;
                end
                S_WAIT_Y: if (y_valid) begin
                    for (k = 0; k < M; k = k + 1)
                        rf[Y_BASE + k] <= {{(DW - YW){y_data[k*YW + YW - 1]}}, y_data[k*YW +: YW]};
                    pc <= PB[PCW-1:0];
                    pc_end <= PB[PCW-1:0] + PV[PCW-1:0] - 1'b1;
                    in_block <= 1'b0;
                    state <= S_RUN;
                end
                S_OUT: if (out_ready) begin
                    t_left <= t_left - 1'b1;
                    state <= out_last ? S_IDLE : S_WAIT_Y;
                end
                S_RUN: begin
                    if (is_div && !waiting) waiting <= 1'b1;
                    if (advance) begin
                        waiting <= 1'b0;
                        case (op)
                            OP_MAC: begin
                                acc <= accn;
                                if (last) rf[dest] <= sat;
                            end
                            OP_MAX: rf[dest] <= (av > bv) ? av : bv;
                            OP_DIV0: rf[dest] <= {{(DW - OW0){d0_y[OW0-1]}}, d0_y};
                            OP_DIV1: rf[dest] <= {{(DW - OW1){d1_y[OW1-1]}}, d1_y};
                            OP_BUCKET: bucket <= bk_out;
                            OP_LUT: rf[dest] <= {{(DW - SW){lut_val[SW-1]}}, lut_val};
                            default: ;
                        endcase
                        if (at_end) begin
                            if (in_block)
                                state <= (t_left == {TW{1'b0}}) ? S_IDLE : S_WAIT_Y;
                            else
                                state <= S_OUT;
                        end else begin
                            pc <= pc + 1'b1;
                        end
                    end
                end
                default: state <= S_IDLE;
            endcase
        end
    end

    genvar gi;
    generate
        for (gi = 0; gi < N; gi = gi + 1) begin : g_out
            wire signed [DW-1:0] xv = rf[X_BASE + gi];
            assign out_x[gi*SW +: SW] = xv[SW-1:0];
            /* verilator lint_off UNUSEDSIGNAL */
            wire x_hi = |xv[DW-1:SW];
            /* verilator lint_on UNUSEDSIGNAL */
        end
    endgenerate
endmodule

`default_nettype wire
