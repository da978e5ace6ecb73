// kaq_gram_core — the folded engine of an IR v2 cg detector (docs/rtl.md, "IR v2").
//
// LANES multipliers (MAW × MBW bits), a 64-bit accumulator per lane and a register file of
// three synchronous memories (bank H: H̃ at HBW bits, bank G: G = H̃ᵀH̃ n × n and its narrow
// inner copies, NG entries at GBW bits, both copied per lane; bank V: every per-vector
// tensor at VBW bits, interleaved over the lanes: register V_BASE + k in lane k mod LANES's
// bank, row k / LANES, every tensor starting on a row) plus two
// registers (W at WW bits; the address after it reads 1) run a looped micro-program that the
// generated top holds in a synchronous ROM (kaq_codegen::gram::program): the
// per-channel-block program (G's upper triangle, its copy into the lower one, the narrow
// copies of G, tr G, 1/tr G, D = 1/diag G) once per block, then the vector program (z, ‖ỹ‖²,
// every layer's e, W, v², inner steps p/d/ρ, r, τ², bucket, table) per vector.
//
// Pipeline: issue (the instruction word registered from the ROM at pc; a MAC repeats REP
// times with its operand addresses stepping by SA and SB; the banks and the constant ROM are
// read with registered, write-first reads) then execute (multiply, accumulate, round and
// saturate, write). LANES repetitions per cycle (lane l takes repetition c·LANES + l of
// cycle c, reading its own copy of banks H and G, which every write updates alike, and its
// own bank of V; a MAC's lanes' products are summed into accumulator `lane`, exact since no
// partial sum wraps, and a wide MAC or look-up runs repetition l on lane l with its own
// accumulator and writes row `dr` of every lane's bank of V, P results a cycle); a
// division (kaq_divide_seq, n = 1) holds the execute stage 2 + 2 + SHIFT cycles; the program ends one cycle after its last issue. A
// block's H̃ streams in as M·N beats of one code each, row-major, written into bank H as they
// are taken (one a cycle while blk_valid is high; no copy of H̃ is latched); T and the SNR bin
// are taken with the last code; a vector's ỹ is latched and written into bank V LANES codes a
// cycle (one into each lane's bank, ⌈M / LANES⌉ cycles); then the program runs.
//
// Ports: a block's M·N code beats (blk_valid/blk_ready: blk_h = H̃ entry (r, j) at beat
// r*N + j; blk_t = T and blk_bin = SNR bin, read with the last), then T vector beats (y_valid/y_ready: ỹ, y_data[r*YW +: YW]), each answered by one
// output beat (out_valid/out_ready: x, out_x[i*SW +: SW]; out_last on the block's last
// vector). Every handshake transfers on a rising edge with valid && ready; a valid output is
// held until taken. T = 0 runs the block program and returns to idle.
//
// Instruction word (LSB first): op[3], a[AW], b[BW], b_const, b_bin, neg, sh[6], first,
// last, down[6], satw[7], dest[AW], rep_m1[RPW], sa[AW], sb[BW], s_bin, sidx[SIW], wide,
// lane[LNW], ar[VAW], br[VAW], dr[VAW] (the bank-V rows of a, b and dest), then with JSEL
// a_sel. op: 0 MAC, 1 MAX, 2 DIV inv_trace, 3 DIV diag_inv (an oamp design's pivot_inv),
// 4 BUCKET, 5 LUT, 6 DIV c_inv (NDIV = 3), 7 SELECT (JSEL = 1: the bank entry of an oamp
// design, docs/rtl.md "IR v4"; a_sel adds its offset to a). MAC repetition k: acc' = (first &&
// k = 0 ? 0 : acc) ± (a_k·b_k << sh) (a term whose a is the one register adds b_k without
// the multiplier); on last at k = rep_m1, dest = sat_satw(round_half_up(acc' >> down)). With
// s_bin, sh and down are the block's SNR bin's entry of the shift table instead of the two
// fields ({down, sh} = shift[sidx + bin]: the per-bin formats of IR version 3). The top
// registers `ins` = rom[pc_next], `kval` = const[kaddr] and `sval` = shift[saddr]; bk_in →
// bk_out and {lut_bucket, lut_idx[l]} → lut_val[l] (one table port per lane) are
// combinational in the top.
//
// Taps (TAPS = 1, the co-simulation's build; 0, the default, leaves `tap` a constant 1'b0
// and adds no logic): tap = {data[64*LANES], lanes[LANES], pc[PCW], valid}, every cycle the
// execute stage writes a register or the bucket: valid, the ROM address of the writing
// instruction, which lanes write (lane l's write of its bank of V; lane 0 also for bank G,
// W and the bucket) and each lane's value as stored (its bank's width, sign-extended; the
// bucket zero-extended). ỹ's and H̃'s loads are not shown.
`default_nettype none

module kaq_gram_core #(
    parameter integer M = 4,
    parameter integer N = 4,
    parameter integer HW = 8,
    parameter integer YW = 8,
    parameter integer SW = 8,
    parameter integer TW = 16,
    parameter integer BINW = 7,
    parameter integer GBW = 16,
    parameter integer VBW = 24,
    parameter integer WW = 40,
    parameter integer MAW = 24,
    parameter integer MBW = 16,
    parameter integer KW = 16,
    parameter integer AW = 7,
    parameter integer BW = 8,
    parameter integer KAW = 8,
    parameter integer PCW = 10,
    parameter integer RPW = 4,
    parameter integer PB = 10,
    parameter integer PV = 10,
    parameter integer NG = 16,
    parameter integer SIW = 1,
    parameter integer G_BASE = 16,
    parameter integer V_BASE = 32,
    parameter integer NV = 32,
    parameter integer W_ADDR = 62,
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
    parameter integer NDIV = 2,
    parameter integer SH2 = 16,
    parameter [DIVW-2:0] DMIN2 = 1,
    parameter integer OW2 = 16,
    parameter integer RND2 = 0,
    parameter integer OVF2 = 0,
    parameter integer JSEL = 0,
    parameter integer NSEL = 0,
    parameter integer NSELP = (NSEL > 0) ? NSEL : 1,
    parameter [64*NSELP-1:0] SEL_T = 0,
    parameter integer SEL_STRIDE = 0,
    parameter integer HAW = 4,
    parameter integer GAW = 4,
    parameter integer VAW = 5,
    parameter integer LDW = 5,
    parameter integer LANES = 1,
    parameter integer LNW = 1,
    parameter integer YROWS = 4,
    parameter integer X_ROW = 2,
    parameter integer KBW = RPW + 6,
    parameter integer IW = 3 + AW + BW + 3 + 6 + 2 + 6 + 7 + AW + RPW + AW + BW + 1 + SIW
                           + 1 + LNW + 3 * VAW + JSEL,
    parameter integer TAPS = 0,
    parameter integer TAPW = (TAPS != 0) ? 1 + PCW + LANES + 64 * LANES : 1
) (
    input  wire                  clk,
    input  wire                  rst,
    input  wire                  blk_valid,
    output wire                  blk_ready,
    input  wire [HW-1:0]         blk_h,
    input  wire [TW-1:0]         blk_t,
    input  wire [BINW-1:0]       blk_bin,
    input  wire                  y_valid,
    output wire                  y_ready,
    input  wire [M*YW-1:0]       y_data,
    output wire                  out_valid,
    input  wire                  out_ready,
    output wire [N*SW-1:0]       out_x,
    output wire                  out_last,
    output wire                  idle,
    output reg  [PCW-1:0]        pc_next,
    input  wire [IW-1:0]         ins,
    output wire [KAW-1:0]        kaddr,
    input  wire signed [KW-1:0]  kval,
    output wire [SIW-1:0]        saddr,
    input  wire [11:0]           sval,
    output wire signed [63:0]    bk_in,
    input  wire [BKW-1:0]        bk_out,
    output wire [BKW-1:0]        lut_bucket,
    output wire [LANES*RW-1:0]   lut_idx,
    input  wire [LANES*SW-1:0]   lut_val,
    output wire [TAPW-1:0]       tap
);
    localparam [2:0] S_IDLE = 3'd0, S_LOAD_H = 3'd1, S_RUN = 3'd2, S_WAIT_Y = 3'd3,
                     S_LOAD_Y = 3'd4, S_OUT = 3'd5;
    localparam [2:0] OP_MAC = 3'd0, OP_MAX = 3'd1, OP_DIV0 = 3'd2, OP_DIV1 = 3'd3,
                     OP_BUCKET = 3'd4, OP_LUT = 3'd5, OP_DIV2 = 3'd6, OP_SEL = 3'd7;
    localparam [2:0] B_H = 3'd0, B_G = 3'd1, B_V = 3'd2, B_W = 3'd3, B_ONE = 3'd4;
    localparam integer NH = M * N;
    localparam integer PW = MAW + MBW;
    localparam integer LDH = NH - 1;
    localparam integer LDY = YROWS - 1;
    localparam integer NVR = NV / LANES;
    localparam integer YBW = YROWS * LANES * YW;
    localparam [LDW-1:0] LD_H_END = LDH[LDW-1:0];
    localparam [LDW-1:0] LD_Y_END = LDY[LDW-1:0];

    reg [2:0] state;
    reg [PCW-1:0] pc;
    reg [PCW-1:0] pc_end;
    reg in_block;
    reg [TW-1:0] t_left;
    reg [BINW-1:0] bin;
    reg [BKW-1:0] bucket;
    reg [YBW-1:0] ybuf;
    reg [LDW-1:0] ld;

    // Instruction fields (issue stage).
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
    wire [RPW-1:0] rep_m1 = ins[27 + 2*AW + BW +: RPW];
    wire [AW-1:0] sa = ins[27 + 2*AW + BW + RPW +: AW];
    wire [BW-1:0] sb = ins[27 + 3*AW + BW + RPW +: BW];
    wire s_bin = ins[27 + 3*AW + 2*BW + RPW];
    wire [SIW-1:0] sidx = ins[28 + 3*AW + 2*BW + RPW +: SIW];
    wire wide = ins[28 + 3*AW + 2*BW + RPW + SIW];
    wire [LNW-1:0] ilane = ins[29 + 3*AW + 2*BW + RPW + SIW +: LNW];
    wire [VAW-1:0] iar = ins[29 + 3*AW + 2*BW + RPW + SIW + LNW +: VAW];
    wire [VAW-1:0] ibr = ins[29 + 3*AW + 2*BW + RPW + SIW + LNW + VAW +: VAW];
    wire [VAW-1:0] idr = ins[29 + 3*AW + 2*BW + RPW + SIW + LNW + 2*VAW +: VAW];

    // Every code beat is taken in S_LOAD_H, the cycle it is written (see S_LOAD_H).
    assign blk_ready = (state == S_LOAD_H);
    // Idle: waiting for a block beat (the previous block finished).
    assign idle = (state == S_IDLE);
    assign y_ready = (state == S_WAIT_Y);
    assign out_valid = (state == S_OUT);
    assign out_last = (t_left == {{(TW - 1){1'b0}}, 1'b1});

    // The issue stage: repetition counter and running operand addresses.
    // cnt: the first repetition of this cycle (a multiple of LANES).
    reg [KBW-1:0] cnt;
    reg [AW-1:0] a_run;
    reg [BW-1:0] b_run;
    // The bank-V rows of a and b (every lane reads the same row of its bank).
    reg [VAW-1:0] ar_run;
    reg [VAW-1:0] br_run;
    reg draining;
    localparam integer LM1 = LANES - 1;
    localparam [KBW-1:0] K_LANES = LANES[KBW-1:0];
    localparam [KBW-1:0] K_LM1 = LM1[KBW-1:0];
    wire [KBW-1:0] rep_k = {{(KBW - RPW){1'b0}}, rep_m1};
    wire first_rep = (cnt == {KBW{1'b0}});
    wire last_rep = (cnt + K_LM1 >= rep_k);
    // With JSEL, the first repetition's a of an a_sel instruction adds the bank-entry
    // selection offset (below).
    wire [AW-1:0] a_cur;
    wire [BW-1:0] b_cur = first_rep ? ib : b_run;
    wire [VAW-1:0] ar_cur = first_rep ? iar : ar_run;
    wire [VAW-1:0] br_cur = first_rep ? ibr : br_run;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [AW-1:0] sa_u = sa;
    wire [BW-1:0] sb_u = sb;
    /* verilator lint_on UNUSEDSIGNAL */
    /* verilator lint_off UNUSEDSIGNAL */
    wire [AW-1:0] b_reg = b_cur[AW-1:0];
    /* verilator lint_on UNUSEDSIGNAL */
    wire [BINW-1:0] bin_k = b_bin ? bin : {BINW{1'b0}};
    assign kaddr = b_cur[KAW-1:0] + {{(KAW - BINW){1'b0}}, bin_k};
    // The shift table's address: the block's bin's entry of the instruction's run (a design
    // without a table, SIW ≤ BINW, has no s_bin instruction).
    generate
        if (SIW > BINW) begin : g_saddr
            assign saddr = sidx + {{(SIW - BINW){1'b0}}, bin};
        end else begin : g_saddr_none
            assign saddr = sidx;
        end
    endgenerate

    function automatic [2:0] bank_of(input [AW-1:0] r);
        if (r < G_BASE[AW-1:0]) bank_of = B_H;
        else if (r < V_BASE[AW-1:0]) bank_of = B_G;
        else if (r < W_ADDR[AW-1:0]) bank_of = B_V;
        else if (r == W_ADDR[AW-1:0]) bank_of = B_W;
        else bank_of = B_ONE;
    endfunction

    // The execute stage.
    reg x_valid;
    reg [2:0] x_op;
    reg x_neg;
    reg [5:0] x_sh;
    reg x_first;
    reg x_last;
    reg [5:0] x_down;
    reg x_sbin;
    reg [6:0] x_satw;
    reg [AW-1:0] x_dest;
    reg x_bconst;
    reg x_wide;
    reg [LNW-1:0] x_lane;
    reg [VAW-1:0] x_dr;
    reg [2:0] x_abank;
    reg [2:0] x_bbank;
    reg x_waiting;
    reg signed [WW-1:0] wreg;

    wire d0_ready, d0_done, d1_ready, d1_done, d2_done;
    wire x_is_div = (x_op == OP_DIV0) || (x_op == OP_DIV1) || ((NDIV > 2) && (x_op == OP_DIV2));
    wire x_div_done = ((x_op == OP_DIV0) && d0_done) || ((x_op == OP_DIV1) && d1_done)
                    || ((x_op == OP_DIV2) && d2_done);
    wire x_complete = !x_valid || !x_is_div || (x_waiting && x_div_done);
    wire running = (state == S_RUN);
    wire issue = running && !draining && x_complete;
    wire at_end = (pc == pc_end);

    // Lane 0's operands in the execute stage, sign-extended to 64 bits: its banks' reads
    // (g_lane[0], below) or W, the one, a constant.
    wire [64*LANES-1:0] lane_a;
    wire [64*LANES-1:0] lane_b;
    wire signed [63:0] wv = {{(64 - WW){wreg[WW-1]}}, wreg};
    wire signed [63:0] kv = {{(64 - KW){kval[KW-1]}}, kval};
    localparam signed [63:0] ONE_V = 64'sd1;
    wire signed [63:0] av = (x_abank == B_W) ? wv : (x_abank == B_ONE) ? ONE_V
                          : $signed(lane_a[63:0]);
    wire signed [63:0] bv = x_bconst ? kv : (x_bbank == B_W) ? wv
                          : (x_bbank == B_ONE) ? ONE_V : $signed(lane_b[63:0]);

    // The multiply-accumulate and the finish.
    /* verilator lint_off UNUSEDSIGNAL */
    wire signed [MAW-1:0] ma = av[MAW-1:0];
    wire signed [MBW-1:0] mb = bv[MBW-1:0];
    wire signed [PW-1:0] mp = ma * mb;
    /* verilator lint_on UNUSEDSIGNAL */
    wire signed [63:0] mp64;
    generate
        if (PW >= 64) begin : g_pwide
            assign mp64 = mp[63:0];
        end else begin : g_pnarrow
            assign mp64 = {{(64 - PW){mp[PW-1]}}, mp};
        end
    endgenerate
    wire signed [63:0] prod = (x_abank == B_ONE) ? bv : mp64;
    // lprod[l]: lane l's product (lane 0's always active, lane l's 0 when inactive); psum:
    // their sum.
    wire [64*LANES-1:0] lprod;
    assign lprod[63:0] = prod;
    reg signed [63:0] psum;
    integer li;
    always @(*) begin
        psum = prod;
        for (li = 1; li < LANES; li = li + 1) psum = psum + $signed(lprod[64*li +: 64]);
    end
    // The shift and the rounding of this instruction: its fields, or its bin's table entry.
    wire [5:0] e_sh = x_sbin ? sval[5:0] : x_sh;
    wire [5:0] e_down = x_sbin ? sval[11:6] : x_down;
    wire signed [63:0] half = (e_down == 6'd0) ? 64'sd0 : (ONE_V <<< (e_down - 6'd1));
    wire signed [63:0] smax = (ONE_V <<< (x_satw - 7'd1)) - ONE_V;
    // lsat[l]: lane l's finished sum (its accumulator's update rounded and saturated);
    // lane 0's is `sat`.
    /* verilator lint_off UNUSEDSIGNAL */
    wire [64*LANES-1:0] lsat;
    /* verilator lint_on UNUSEDSIGNAL */
    wire signed [63:0] sat = $signed(lsat[63:0]);

    // The dividers.
    wire signed [OW0-1:0] d0_y;
    wire signed [OW1-1:0] d1_y;
    wire d0_start = x_valid && (x_op == OP_DIV0) && !x_waiting;
    wire d1_start = x_valid && (x_op == OP_DIV1) && !x_waiting;
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
    wire unused = d0_ready | d1_ready;
    /* verilator lint_on UNUSEDSIGNAL */
    // The third divider (an oamp design's 1/c, NDIV = 3).
    wire signed [63:0] d2_w;
    generate
        if (NDIV > 2) begin : g_div2
            wire d2_ready;
            wire signed [OW2-1:0] d2_y;
            wire d2_start = x_valid && (x_op == OP_DIV2) && !x_waiting;
            kaq_divide_seq #(
                .N_W(2), .D_W(DIVW), .SHIFT(SH2), .D_MIN(DMIN2), .OUT_W(OW2),
                .ROUNDING(RND2), .OVERFLOW(OVF2)
            ) u_div2 (
                .clk(clk), .rst(rst), .start(d2_start), .n(2'sd1), .d(av[DIVW-1:0]),
                .ready(d2_ready), .done(d2_done), .y(d2_y)
            );
            /* verilator lint_off UNUSEDSIGNAL */
            wire unused2 = d2_ready;
            /* verilator lint_on UNUSEDSIGNAL */
            assign d2_w = {{(64 - OW2){d2_y[OW2-1]}}, d2_y};
        end else begin : g_no_div2
            assign d2_done = 1'b0;
            assign d2_w = 64'sd0;
        end
    endgenerate

    // The bank-entry selection (an oamp design, JSEL = 1): OP_SEL sets jofs = SEL_STRIDE ·
    // #{t : av < SEL_T[t]}, forwarded to the instruction issued in the cycle it executes;
    // the first repetition's a of an a_sel instruction (the word's top bit) adds it.
    generate
        if (JSEL != 0) begin : g_sel
            wire a_sel = ins[IW-1];
            reg [AW-1:0] jofs;
            reg [AW-1:0] jnew;
            integer si;
            always @(*) begin
                jnew = {AW{1'b0}};
                for (si = 0; si < NSEL; si = si + 1)
                    if (av < $signed(SEL_T[64*si +: 64])) jnew = jnew + SEL_STRIDE[AW-1:0];
            end
            wire x_sel = x_valid && x_complete && (x_op == OP_SEL);
            wire [AW-1:0] jofs_now = x_sel ? jnew : jofs;
            always @(posedge clk) begin
                if (rst) jofs <= {AW{1'b0}};
                else if (x_sel) jofs <= jnew;
            end
            assign a_cur = first_rep ? (a_sel ? ia + jofs_now : ia) : a_run;
        end else begin : g_no_sel
            assign a_cur = first_rep ? ia : a_run;
        end
    endgenerate

    assign bk_in = av;
    assign lut_bucket = bucket;

    // The execute stage's write.
    wire x_done = x_valid && x_complete;
    wire x_we = x_done && (((x_op == OP_MAC) && x_last) || (x_op == OP_MAX)
                           || x_is_div || (x_op == OP_LUT));
    reg signed [63:0] x_wd;
    always @(*) begin
        case (x_op)
            OP_MAX: x_wd = (av > bv) ? av : bv;
            OP_DIV0: x_wd = {{(64 - OW0){d0_y[OW0-1]}}, d0_y};
            OP_DIV1: x_wd = {{(64 - OW1){d1_y[OW1-1]}}, d1_y};
            OP_DIV2: x_wd = d2_w;
            default: x_wd = sat;
        endcase
    end
    wire [2:0] x_wbank = bank_of(x_dest);
    /* verilator lint_off UNUSEDSIGNAL */
    wire [AW-1:0] x_wg = x_dest - G_BASE[AW-1:0];
    wire signed [63:0] x_wd_u = x_wd;
    /* verilator lint_on UNUSEDSIGNAL */

    // Bank write ports.
    // H̃ is written into bank H straight from the port, one code beat a cycle while blk_valid.
    wire we_h = (state == S_LOAD_H) && blk_valid;
    wire we_g = x_we && (x_wbank == B_G);
    wire [GAW-1:0] wa_g = x_wg[GAW-1:0];
    wire [GBW-1:0] wd_g = x_wd_u[GBW-1:0];
    wire ld_y = (state == S_LOAD_Y);
    // Each lane's bank of V: its write (ỹ's codes, lane l's result of a wide instruction,
    // or the result of an instruction whose lane is l) at one row.
    wire x_wv_on = x_we && (x_wbank == B_V);
    wire [VAW-1:0] wa_v = ld_y ? ld_u[VAW-1:0] : x_dr;
    wire [LANES-1:0] we_vl;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [VBW*LANES-1:0] wd_vl;
    /* verilator lint_on UNUSEDSIGNAL */
    /* verilator lint_off UNUSEDSIGNAL */
    wire [LDW-1:0] ld_u = ld;
    /* verilator lint_on UNUSEDSIGNAL */
    wire [HAW-1:0] ld_h = ld_u[HAW-1:0];
    wire [HW-1:0] h_in = blk_h;
    // The next program counter (the top's ROM address).
    always @(*) begin
        pc_next = pc;
        case (state)
            S_IDLE: if (blk_valid) pc_next = {PCW{1'b0}};
            S_WAIT_Y: if (y_valid) pc_next = PB[PCW-1:0];
            S_RUN: if (issue && last_rep && !at_end) pc_next = pc + 1'b1;
            default: ;
        endcase
    end

    always @(posedge clk) begin
        if (rst) begin
            state <= S_IDLE;
            pc <= {PCW{1'b0}};
            pc_end <= {PCW{1'b0}};
            in_block <= 1'b0;
            t_left <= {TW{1'b0}};
            bin <= {BINW{1'b0}};
            bucket <= {BKW{1'b0}};
            ld <= {LDW{1'b0}};
            cnt <= {KBW{1'b0}};
            a_run <= {AW{1'b0}};
            b_run <= {BW{1'b0}};
            ar_run <= {VAW{1'b0}};
            br_run <= {VAW{1'b0}};
            draining <= 1'b0;
            x_valid <= 1'b0;
            x_op <= OP_MAC;
            x_neg <= 1'b0;
            x_sh <= 6'd0;
            x_first <= 1'b0;
            x_last <= 1'b0;
            x_down <= 6'd0;
            x_sbin <= 1'b0;
            x_satw <= 7'd0;
            x_dest <= {AW{1'b0}};
            x_bconst <= 1'b0;
            x_wide <= 1'b0;
            x_lane <= {LNW{1'b0}};
            x_dr <= {VAW{1'b0}};
            x_abank <= B_ONE;
            x_bbank <= B_ONE;
            x_waiting <= 1'b0;
            wreg <= {WW{1'b0}};
        end else begin
            pc <= pc_next;
            // Issue.
            if (issue) begin
                if (last_rep) begin
                    cnt <= {KBW{1'b0}};
                    if (at_end) draining <= 1'b1;
                end else begin
                    cnt <= cnt + K_LANES;
                end
                a_run <= a_cur + sa * LANES[AW-1:0];
                b_run <= b_cur + sb * LANES[BW-1:0];
                ar_run <= ar_cur + sa_u[VAW-1:0];
                br_run <= br_cur + sb_u[VAW-1:0];
            end
            if (x_complete) begin
                x_valid <= issue;
                x_op <= op;
                x_neg <= neg;
                x_sh <= sh;
                x_first <= first && first_rep;
                x_last <= last && last_rep;
                x_down <= down;
                x_sbin <= s_bin;
                x_satw <= satw;
                x_dest <= dest;
                x_bconst <= b_const;
                x_wide <= wide;
                x_lane <= ilane;
                x_dr <= idr;
                x_abank <= bank_of(a_cur);
                x_bbank <= bank_of(b_reg);
            end
            // Execute.
            if (x_valid && x_is_div && !x_waiting) x_waiting <= 1'b1;
            if (x_done) begin
                x_waiting <= 1'b0;
                if (x_op == OP_BUCKET) bucket <= bk_out;
                if (x_we && (x_wbank == B_W)) wreg <= x_wd_u[WW-1:0];
            end
            case (state)
                S_IDLE: if (blk_valid) begin
                    pc_end <= PB[PCW-1:0] - 1'b1;
                    in_block <= 1'b1;
                    ld <= {LDW{1'b0}};
                    cnt <= {KBW{1'b0}};
                    draining <= 1'b0;
                    state <= S_LOAD_H;
                end
                S_LOAD_H: if (blk_valid) begin
                    ld <= ld + 1'b1;
                    if (ld == LD_H_END) begin
                        t_left <= blk_t;
                        bin <= blk_bin;
                        state <= S_RUN;
                    end
                end
                S_WAIT_Y: if (y_valid) begin
                    ybuf <= y_in;
                    pc_end <= PB[PCW-1:0] + PV[PCW-1:0] - 1'b1;
                    in_block <= 1'b0;
                    ld <= {LDW{1'b0}};
                    cnt <= {KBW{1'b0}};
                    draining <= 1'b0;
                    state <= S_LOAD_Y;
                end
                S_LOAD_Y: begin
                    ybuf <= y_next;
                    ld <= ld + 1'b1;
                    if (ld == LD_Y_END) state <= S_RUN;
                end
                S_OUT: if (out_ready) begin
                    t_left <= t_left - 1'b1;
                    state <= out_last ? S_IDLE : S_WAIT_Y;
                end
                S_RUN: if (draining && x_complete) begin
                    if (in_block)
                        state <= (t_left == {TW{1'b0}}) ? S_IDLE : S_WAIT_Y;
                    else
                        state <= S_OUT;
                end
                default: state <= S_IDLE;
            endcase
        end
    end

    // ỹ latched, padded to whole rows of LANES codes; each load cycle writes the next row.
    wire [YBW-1:0] y_in;
    wire [YBW-1:0] y_next;
    generate
        if (YBW > M * YW) begin : g_ypad
            assign y_in = {{(YBW - M * YW){1'b0}}, y_data};
        end else begin : g_ynopad
            assign y_in = y_data;
        end
        if (YROWS > 1) begin : g_yshift
            assign y_next = {{(LANES * YW){1'b0}}, ybuf[YBW-1:LANES*YW]};
        end else begin : g_yhold
            assign y_next = ybuf;
        end
    endgenerate

    // The lanes: each its copy of banks H and G (one write port, written alike; two
    // registered write-first read ports, H only loaded), read at repetition cnt + l, and its
    // bank of V (rows ar/br, the same for every lane; one write port, two registered
    // write-first reads); its multiplier (lane 0's above), its accumulator and finish, its
    // table port. A repeated MAC reads a (and a register b) in one bank of H, G and V over
    // its repetitions and lane l reads bank V only in its own bank (kaq_codegen::gram asserts
    // both) and a constant b as one constant, so a lane past 0 needs no W, one or constant
    // port.
    genvar gl;
    generate
        for (gl = 0; gl < LANES; gl = gl + 1) begin : g_lane
            localparam integer GL = gl;
            localparam [AW-1:0] AL = GL[AW-1:0];
            localparam [BW-1:0] BL = GL[BW-1:0];
            localparam [KBW-1:0] KL = GL[KBW-1:0];
            localparam [LNW-1:0] LL = GL[LNW-1:0];
            wire [AW-1:0] la = a_cur + sa * AL;
            /* verilator lint_off UNUSEDSIGNAL */
            wire [BW-1:0] lb_full = b_cur + sb * BL;
            wire [AW-1:0] lb = lb_full[AW-1:0];
            wire [AW-1:0] la_g = la - G_BASE[AW-1:0];
            wire [AW-1:0] lb_g = lb - G_BASE[AW-1:0];
            /* verilator lint_on UNUSEDSIGNAL */
            reg [HW-1:0] mem_h [0:NH-1];
            reg [GBW-1:0] mem_g [0:NG-1];
            reg [VBW-1:0] mem_v [0:NVR-1];
            reg [HW-1:0] h_qa, h_qb;
            reg [GBW-1:0] g_qa, g_qb;
            reg [VBW-1:0] v_qa, v_qb;
            wire [GAW-1:0] ra_g_a = la_g[GAW-1:0];
            wire [GAW-1:0] ra_g_b = lb_g[GAW-1:0];
            // Active: a MAC's or look-up's repetition cnt + l exists (lane 0 always).
            reg act;
            always @(posedge clk) begin
                if (rst) act <= 1'b0;
                else if (x_complete)
                    act <= issue && ((op == OP_MAC) || (op == OP_LUT)) && (cnt + KL <= rep_k);
            end
            // This lane's write of bank V.
            wire we = ld_y || (x_wv_on && (x_wide ? act : (x_lane == LL)));
            wire [YW-1:0] ycode = ybuf[GL*YW +: YW];
            wire signed [SW-1:0] lv = lut_val[GL*SW +: SW];
            wire [VBW-1:0] wd = ld_y ? {{(VBW - YW){ycode[YW-1]}}, ycode}
                              : (x_op == OP_LUT) ? {{(VBW - SW){lv[SW-1]}}, lv}
                              : (x_op == OP_MAC) ? lsat[64*GL +: VBW] : x_wd_u[VBW-1:0];
            assign we_vl[gl] = we;
            assign wd_vl[VBW*gl +: VBW] = wd;
            always @(posedge clk) begin
                if (we_h) mem_h[ld_h] <= h_in;
                h_qa <= mem_h[la[HAW-1:0]];
                h_qb <= mem_h[lb[HAW-1:0]];
            end
            always @(posedge clk) begin
                if (we_g) mem_g[wa_g] <= wd_g;
                g_qa <= (we_g && (wa_g == ra_g_a)) ? wd_g : mem_g[ra_g_a];
                g_qb <= (we_g && (wa_g == ra_g_b)) ? wd_g : mem_g[ra_g_b];
            end
            always @(posedge clk) begin
                if (we) mem_v[wa_v] <= wd;
                v_qa <= (we && (wa_v == ar_cur)) ? wd : mem_v[ar_cur];
                v_qb <= (we && (wa_v == br_cur)) ? wd : mem_v[br_cur];
            end
            wire signed [63:0] ha = {{(64 - HW){h_qa[HW-1]}}, h_qa};
            wire signed [63:0] hb = {{(64 - HW){h_qb[HW-1]}}, h_qb};
            wire signed [63:0] ga = {{(64 - GBW){g_qa[GBW-1]}}, g_qa};
            wire signed [63:0] gb = {{(64 - GBW){g_qb[GBW-1]}}, g_qb};
            wire signed [63:0] va = {{(64 - VBW){v_qa[VBW-1]}}, v_qa};
            wire signed [63:0] vb = {{(64 - VBW){v_qb[VBW-1]}}, v_qb};
            assign lane_a[64*gl +: 64] = (x_abank == B_H) ? ha : (x_abank == B_G) ? ga : va;
            assign lane_b[64*gl +: 64] = (x_bbank == B_H) ? hb : (x_bbank == B_G) ? gb : vb;
            assign lut_idx[RW*gl +: RW] = {~v_qa[RW-1], v_qa[RW-2:0]};
            if (GL > 0) begin : g_mul
                /* verilator lint_off UNUSEDSIGNAL */
                wire signed [63:0] lav = lane_a[64*gl +: 64];
                wire signed [63:0] lbv = x_bconst ? kv : lane_b[64*gl +: 64];
                wire signed [MAW-1:0] lma = lav[MAW-1:0];
                wire signed [MBW-1:0] lmb = lbv[MBW-1:0];
                wire signed [PW-1:0] lmp = lma * lmb;
                /* verilator lint_on UNUSEDSIGNAL */
                wire signed [63:0] lmp64;
                if (PW >= 64) begin : g_lwide
                    assign lmp64 = lmp[63:0];
                end else begin : g_lnarrow
                    assign lmp64 = {{(64 - PW){lmp[PW-1]}}, lmp};
                end
                assign lprod[64*gl +: 64] = act ? lmp64 : 64'sd0;
            end
            // The accumulator: a wide instruction's own product, else the lanes' sum into
            // the instruction's lane.
            reg signed [63:0] acc;
            wire upd = x_wide ? act : (x_lane == LL);
            wire signed [63:0] lin = x_wide ? $signed(lprod[64*gl +: 64]) : psum;
            wire signed [63:0] term = lin <<< e_sh;
            wire signed [63:0] base = x_first ? 64'sd0 : acc;
            wire signed [63:0] accn = x_neg ? base - term : base + term;
            wire signed [63:0] rnd = (accn + half) >>> e_down;
            wire signed [63:0] lsv = (x_satw == 7'd0) ? rnd
                                   : (rnd > smax) ? smax
                                   : (rnd < -smax) ? -smax : rnd;
            assign lsat[64*gl +: 64] = lsv;
            always @(posedge clk) begin
                if (rst) acc <= 64'sd0;
                else if (x_done && (x_op == OP_MAC) && upd) acc <= accn;
            end
        end
    endgenerate

    // The tap port (see the header): the execute stage's writes, off unless TAPS.
    generate
        if (TAPS != 0) begin : g_taps
            reg [PCW-1:0] x_pc;
            always @(posedge clk) if (x_complete) x_pc <= pc;
            wire x_bk = x_done && (x_op == OP_BUCKET);
            wire other = (x_we && ((x_wbank == B_G) || (x_wbank == B_W))) || x_bk;
            wire [LANES-1:0] t_lanes;
            wire [64*LANES-1:0] t_data;
            genvar gt;
            for (gt = 0; gt < LANES; gt = gt + 1) begin : g_tap
                wire [VBW-1:0] v = wd_vl[VBW*gt +: VBW];
                wire [63:0] vx = {{(64 - VBW){v[VBW-1]}}, v};
                if (gt == 0) begin : g_tap0
                    wire [63:0] gx = {{(64 - GBW){wd_g[GBW-1]}}, wd_g};
                    wire [WW-1:0] w = x_wd_u[WW-1:0];
                    wire [63:0] wx = {{(64 - WW){w[WW-1]}}, w};
                    wire [63:0] bx = {{(64 - BKW){1'b0}}, bk_out};
                    assign t_data[63:0] = x_bk ? bx : (x_wbank == B_G) ? gx
                                        : (x_wbank == B_W) ? wx : vx;
                    assign t_lanes[gt] = (!ld_y && we_vl[gt]) || other;
                end else begin : g_tapl
                    assign t_data[64*gt +: 64] = vx;
                    assign t_lanes[gt] = !ld_y && we_vl[gt];
                end
            end
            assign tap = {t_data, t_lanes, x_pc, x_done && (x_we || x_op == OP_BUCKET)};
        end else begin : g_no_taps
            assign tap = 1'b0;
        end
    endgenerate

    // The output: a copy of x, written with it (entry i in lane i mod LANES's bank, row
    // X_ROW + i / LANES).
    genvar gi;
    generate
        for (gi = 0; gi < N; gi = gi + 1) begin : g_out
            localparam integer XL = gi % LANES;
            localparam integer XR = X_ROW + gi / LANES;
            localparam [VAW-1:0] XRA = XR[VAW-1:0];
            reg [SW-1:0] xo;
            always @(posedge clk)
                if (we_vl[XL] && !ld_y && (wa_v == XRA)) xo <= wd_vl[VBW*XL +: SW];
            assign out_x[gi*SW +: SW] = xo;
        end
    endgenerate
endmodule

`default_nettype wire
