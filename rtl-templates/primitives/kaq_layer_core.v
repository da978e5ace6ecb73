// kaq_layer_core — one unfolded layer of PGD-Net or ADMM-Net as a pipeline stage
// (docs/ir.md for the equations, docs/rtl.md for the micro-architecture and timing).
//
// A stage holds two frame buffers. Each buffer cycles through
//   EMPTY --fill (M beats from upstream)--> FULL --MAC engine--> MACDONE
//         --update engine--> DONE --drain (M beats to downstream)--> EMPTY
// and each engine serves the buffers in order, so a new frame enters while the previous one
// is computed or leaves. A frame on the stream is M beats; beat i carries row i of H, y_i,
// and (valid on every beat, sampled on beat 0) the SNR bin and the layer's input states.
//
// MAC engine, P lanes (kaq_mac_lane), N/P = NC chunks per row:
//   MF  (HAS_MF)       outer chunk c, inner row i: lane l sums H[i][cP+l]*y_i     -> x0
//   E   (unless E_ZERO) outer row i, inner chunk c: lane l sums H[i][cP+l]*x1[cP+l];
//                       the lanes are added and e_i = requant(mult[bin]*sum - y_i<<YSHIFT)
//   G                  outer chunk c, inner row i: lane l sums H[i][cP+l]*e_i      -> g
// With E_ZERO (first layer, zero init) e_i = requant(-y_i<<YSHIFT) is formed on the fly.
// Update engine, P lanes, NC cycles: the update R, the prox, the new states (kaq_lincomb,
// kaq_prox_pwl or kaq_requant + kaq_lut, kaq_requant).
//
// Every width, table and constant is a parameter computed by kaq-codegen from the IR; this
// module holds the control and instantiates the arithmetic cells. Per-bin tables are packed
// entry 0 in the least significant bits; an SNR bin beyond the table uses the last entry.
`default_nettype none

module kaq_layer_core #(
    // Dimensions and formats.
    parameter integer M = 4,
    parameter integer N = 4,
    parameter integer P = 2,
    parameter integer HW = 8,
    parameter integer YW = 10,
    parameter integer SW = 8,
    parameter integer EW = 12,
    parameter integer GW = 12,
    parameter integer BINS = 4,
    parameter integer BINW = 2,
    parameter integer ARCH = 0,  // 0 PGD-Net, 1 ADMM-Net
    parameter integer HAS_MF = 0,
    parameter integer E_ZERO = 0,
    parameter integer LACC_W = 24,  // MAC lane accumulator (>= every MAC bound and HW + max(YW, SW, EW))
    // Matched filter: x0 = requant(sum * MF_MULT).
    parameter integer MF_MULT_W = 2,
    parameter [MF_MULT_W-1:0] MF_MULT = 0,
    parameter integer MF_SHIFT = 0,
    parameter integer MF_ROUND = 0,
    parameter integer MF_OVF = 2,
    // e stage.
    parameter integer EACC_W = 24,
    parameter integer E_MULT_W = 2,
    parameter [BINS*E_MULT_W-1:0] E_MULT_TABLE = 0,
    parameter integer E_YSHIFT = 0,
    parameter integer E_SHIFT = 0,
    parameter integer E_ROUND = 0,
    parameter integer E_OVF = 2,
    // g stage.
    parameter integer G_MULT_W = 2,
    parameter [G_MULT_W-1:0] G_MULT = 1,
    parameter integer G_SHIFT = 0,
    parameter integer G_ROUND = 0,
    parameter integer G_OVF = 2,
    // The update R = x1*x + x2*xp + gc*g + c*(x - s + u).
    parameter integer R_W = 32,
    parameter integer X1_W = 2,
    parameter [BINS*X1_W-1:0] X1_TABLE = 0,
    parameter integer X2_W = 2,
    parameter [BINS*X2_W-1:0] X2_TABLE = 0,
    parameter integer GC_W = 2,
    parameter [GC_W-1:0] G_COEF = 0,
    parameter integer C_W = 2,
    parameter [BINS*C_W-1:0] C_TABLE = 0,
    // The prox on PIN_W bits: 0 soft, 1 box (PROX_PARAM = lambda or limit), 2 table.
    parameter integer PIN_W = 32,
    parameter integer PROX_KIND = 0,
    parameter [PIN_W-1:0] PROX_PARAM = 0,
    parameter integer TIN_MULT_W = 2,
    parameter [TIN_MULT_W-1:0] TIN_MULT = 1,
    parameter integer TIN_SHIFT = 0,
    parameter integer TIN_ROUND = 0,
    parameter integer TIN_OVF = 2,
    parameter integer TW = 16,
    parameter [(2**SW)*TW-1:0] PROX_TABLE = 0,
    // Prox output -> state codes (PGD x, ADMM s).
    parameter integer O_MULT_W = 2,
    parameter [BINS*O_MULT_W-1:0] O_MULT_TABLE = 0,
    parameter [BINS*6-1:0] O_SHIFT_TABLE = 0,
    parameter integer O_SHIFT_MIN = 0,  // the table's smallest and largest entry
    parameter integer O_SHIFT_MAX = 63,
    parameter integer O_ROUND = 0,
    parameter integer O_OVF = 2,
    parameter integer OW = SW,  // this layer's state width (mixed precision: <= SW)
    // ADMM: update -> x and w -> u codes; v = vx*x + vu*u; w = v - vx*s.
    parameter integer XO_MULT_W = 2,
    parameter [BINS*XO_MULT_W-1:0] XO_MULT_TABLE = 0,
    parameter [BINS*6-1:0] XO_SHIFT_TABLE = 0,
    parameter integer XO_SHIFT_MIN = 0,
    parameter integer XO_SHIFT_MAX = 63,
    parameter integer XO_ROUND = 0,
    parameter integer XO_OVF = 2,
    parameter integer XOW = SW,  // width of x and u codes (ADMM-Net, <= SW)
    parameter integer VX_W = 2,
    parameter [BINS*VX_W-1:0] VX_TABLE = 0,
    parameter integer VU_W = 2,
    parameter [BINS*VU_W-1:0] VU_TABLE = 0,
    parameter integer V_W = 32,
    parameter integer WW = 32,
    // Pipeline registers in the update lanes: 0 none; 1 after the update R (kaq_lincomb);
    // 2 (PGD-Net only) also after the prox. Each adds one cycle to the update engine.
    parameter integer UPD_PIPE = 0,
    // Pipeline registers in the e requantization (0 to 2, at most M - 2; no extra cycle).
    parameter integer E_PIPE = 0
) (
    input  wire              clk,
    input  wire              rst,
    // Upstream frame stream.
    input  wire              s_valid,
    output wire              s_ready,
    input  wire [N*HW-1:0]   s_h,
    input  wire [YW-1:0]     s_y,
    input  wire [BINW-1:0]   s_bin,
    input  wire [N*SW-1:0]   s_x1,
    input  wire [N*SW-1:0]   s_x2,
    input  wire [N*SW-1:0]   s_s,
    input  wire [N*SW-1:0]   s_u,
    // Downstream frame stream.
    output wire              m_valid,
    input  wire              m_ready,
    output wire [N*HW-1:0]   m_h,
    output wire [YW-1:0]     m_y,
    output wire [BINW-1:0]   m_bin,
    output wire [N*SW-1:0]   m_x1,
    output wire [N*SW-1:0]   m_x2,
    output wire [N*SW-1:0]   m_s,
    output wire [N*SW-1:0]   m_u
);
    localparam integer NC = N / P;
    localparam integer RW = (M > 1) ? $clog2(M) : 1;
    localparam integer CW = (NC > 1) ? $clog2(NC) : 1;
    localparam integer BW0 = (YW > SW) ? YW : SW;
    localparam integer BW = (BW0 > EW) ? BW0 : EW;  // MAC operand b
    localparam [BINW-1:0] LAST_BIN = BINS[BINW-1:0] - 1'b1;
    localparam [RW-1:0] LAST_ROW = M[RW-1:0] - 1'b1;
    localparam [CW-1:0] LAST_CHUNK = NC[CW-1:0] - 1'b1;

    localparam [1:0] EMPTY = 2'd0, FULL = 2'd1, MACDONE = 2'd2, DONE = 2'd3;
    localparam [1:0] PH_MF = 2'd0, PH_GAP = 2'd1, PH_E = 2'd2, PH_G = 2'd3;
    localparam [1:0] FIRST_PHASE = (HAS_MF != 0) ? PH_MF : ((E_ZERO != 0) ? PH_G : PH_E);

    generate
        if (NC * P != N || P < 1) begin : g_bad_lanes
            kaq_layer_core_P_must_divide_N u_fail ();
        end
        if (UPD_PIPE < 0 || UPD_PIPE > 2 || (ARCH != 0 && UPD_PIPE > 1)) begin : g_bad_pipe
            kaq_layer_core_UPD_PIPE_out_of_range u_fail ();
        end
        if (E_PIPE < 0 || E_PIPE > 2 || E_PIPE > M - 2) begin : g_bad_e_pipe
            kaq_layer_core_E_PIPE_out_of_range u_fail ();
        end
    endgenerate

    // ------------------------------------------------------------------ frame buffers
    reg [N*HW-1:0] hbuf [0:2*M-1];
    reg [YW-1:0]   ybuf [0:2*M-1];
    reg [BINW-1:0] binb [0:1];
    reg [N*SW-1:0] x1b  [0:1];
    reg [N*SW-1:0] x2b  [0:1];
    reg [N*SW-1:0] sb   [0:1];
    reg [N*SW-1:0] ub   [0:1];
    reg [N*GW-1:0] gb   [0:1];
    reg [EW-1:0]   earr [0:M-1];
    reg [1:0]      bstate [0:1];

    function automatic [RW:0] row_addr(input buf_sel, input [RW-1:0] row);
        row_addr = buf_sel ? ({1'b0, row} + M[RW:0]) : {1'b0, row};
    endfunction

    // Constant when the bin field has no codes past the last bin.
    /* verilator lint_off CMPCONST */
    function automatic [BINW-1:0] clamp_bin(input [BINW-1:0] b);
        clamp_bin = (b > LAST_BIN) ? LAST_BIN : b;
    endfunction
    /* verilator lint_on CMPCONST */

    // ------------------------------------------------------------------ fill
    reg          fptr;
    reg [RW-1:0] frow;
    assign s_ready = !rst && (bstate[fptr] == EMPTY);
    wire fire_in = s_valid && s_ready;
    wire fill_done = fire_in && (frow == LAST_ROW);

    always @(posedge clk) begin
        if (rst) begin
            fptr <= 1'b0;
            frow <= {RW{1'b0}};
        end else if (fire_in) begin
            hbuf[row_addr(fptr, frow)] <= s_h;
            ybuf[row_addr(fptr, frow)] <= s_y;
            if (frow == {RW{1'b0}}) begin
                binb[fptr] <= clamp_bin(s_bin);
            end
            if (fill_done) begin
                frow <= {RW{1'b0}};
                fptr <= !fptr;
            end else begin
                frow <= frow + 1'b1;
            end
        end
    end

    // ------------------------------------------------------------------ MAC engine
    reg          mptr;
    reg          mbusy;
    reg [1:0]    mphase;
    reg [RW-1:0] mi;
    reg [CW-1:0] mc;
    reg signed [E_MULT_W-1:0] e_mult;

    wire [RW:0] m_addr = row_addr(mptr, mi);
    // The issue's chunk of H row i and of x1: one variable select each, then fixed lanes.
    wire [N*HW-1:0] m_row = hbuf[m_addr];
    wire [N*SW-1:0] m_x1v = x1b[mptr];
    wire [P*HW-1:0] m_hc = m_row[{{(32 - CW){1'b0}}, mc} * (P * HW) +: P * HW];
    wire [P*SW-1:0] m_xc = m_x1v[{{(32 - CW){1'b0}}, mc} * (P * SW) +: P * SW];
    wire [YW-1:0] m_y_i = ybuf[m_addr];
    wire issue = mbusy && (mphase != PH_GAP);
    // Last issue of a group (a lane sum is complete after it) and of the frame.
    wire row_major = (mphase == PH_E);
    wire group_first = row_major ? (mc == {CW{1'b0}}) : (mi == {RW{1'b0}});
    wire group_last = row_major ? (mc == LAST_CHUNK) : (mi == LAST_ROW);
    wire phase_last = (mi == LAST_ROW) && (mc == LAST_CHUNK);
    wire frame_last = issue && (mphase == PH_G) && phase_last;
    wire other_full = (bstate[!mptr] == FULL);

    // The e operand of the G phase: stored, or formed from y in the zero-init first layer.
    wire signed [EW-1:0] e_zero_i;
    kaq_affine_requant #(
        .A_W(1), .MULT_W(1), .B_W(YW), .B_SHIFT(E_YSHIFT), .SHIFT(E_SHIFT),
        .OUT_W(EW), .ROUNDING(E_ROUND), .OVERFLOW(E_OVF)
    ) u_e_zero (
        .a(1'b0), .mult(1'b0), .b(m_y_i), .y(e_zero_i)
    );
    wire [EW-1:0] e_i = (E_ZERO != 0) ? e_zero_i : earr[mi];

    always @(posedge clk) begin
        if (rst) begin
            mptr <= 1'b0;
            mbusy <= 1'b0;
            mphase <= FIRST_PHASE;
            mi <= {RW{1'b0}};
            mc <= {CW{1'b0}};
            e_mult <= {E_MULT_W{1'b0}};
        end else if (!mbusy) begin
            if (bstate[mptr] == FULL) begin
                mbusy <= 1'b1;
                mphase <= FIRST_PHASE;
                mi <= {RW{1'b0}};
                mc <= {CW{1'b0}};
                e_mult <= E_MULT_TABLE[{{(32 - BINW){1'b0}}, binb[mptr]} * E_MULT_W +: E_MULT_W];
            end
        end else if (mphase == PH_GAP) begin
            mphase <= PH_E;
        end else if (row_major) begin
            // E: outer row, inner chunk.
            if (mc == LAST_CHUNK) begin
                mc <= {CW{1'b0}};
                if (mi == LAST_ROW) begin
                    mi <= {RW{1'b0}};
                    mphase <= PH_G;
                end else begin
                    mi <= mi + 1'b1;
                end
            end else begin
                mc <= mc + 1'b1;
            end
        end else begin
            // MF and G: outer chunk, inner row.
            if (mi == LAST_ROW) begin
                mi <= {RW{1'b0}};
                if (mc == LAST_CHUNK) begin
                    mc <= {CW{1'b0}};
                    if (mphase == PH_MF) begin
                        mphase <= PH_GAP;
                    end else begin
                        // Frame done: go on with the other buffer if it is ready.
                        mptr <= !mptr;
                        mphase <= FIRST_PHASE;
                        if (other_full) begin
                            e_mult <= E_MULT_TABLE[{{(32 - BINW){1'b0}}, binb[!mptr]} * E_MULT_W +: E_MULT_W];
                        end else begin
                            mbusy <= 1'b0;
                        end
                    end
                end else begin
                    mc <= mc + 1'b1;
                end
            end else begin
                mi <= mi + 1'b1;
            end
        end
    end

    // MAC lanes.
    wire [P*LACC_W-1:0] lane_acc;
    genvar l;
    generate
        for (l = 0; l < P; l = l + 1) begin : g_lane
            wire signed [HW-1:0] a = m_hc[l*HW +: HW];
            wire signed [SW-1:0] x_j = m_xc[l*SW +: SW];
            reg signed [BW-1:0] b;
            always @(*) begin
                case (mphase)
                    PH_MF: b = $signed({{(BW - YW + 1){m_y_i[YW-1]}}, m_y_i[YW-2:0]});
                    PH_E: b = $signed({{(BW - SW + 1){x_j[SW-1]}}, x_j[SW-2:0]});
                    default: b = $signed({{(BW - EW + 1){e_i[EW-1]}}, e_i[EW-2:0]});
                endcase
            end
            wire signed [LACC_W-1:0] acc;
            kaq_mac_lane #(.A_W(HW), .B_W(BW), .ACC_W(LACC_W)) u_mac (
                .clk(clk), .rst(rst), .clear(group_first), .en(issue),
                .a(a), .b(b), .acc(acc)
            );
            assign lane_acc[l*LACC_W +: LACC_W] = acc;
        end
    endgenerate

    // Group-end capture, one cycle after the group's last issue.
    reg          cap;
    reg [1:0]    cap_phase;
    reg          cap_frame_last;
    reg          cap_buf;
    reg [RW-1:0] cap_i;
    reg [CW-1:0] cap_c;
    always @(posedge clk) begin
        if (rst) begin
            cap <= 1'b0;
            cap_phase <= PH_MF;
            cap_frame_last <= 1'b0;
            cap_buf <= 1'b0;
            cap_i <= {RW{1'b0}};
            cap_c <= {CW{1'b0}};
        end else begin
            cap <= issue && group_last;
            cap_phase <= mphase;
            cap_frame_last <= frame_last;
            cap_buf <= mptr;
            cap_i <= mi;
            cap_c <= mc;
        end
    end

    // E: the lanes' sum, then e_i = requant(e_mult * sum - y_i << E_YSHIFT), written to
    // earr E_PIPE cycles after the capture: 0 combinational; 1 the sum and y_i registered;
    // 2 also the product registered (a DSP48's MREG/PREG). The G phase reads row i's e no
    // earlier than M - 1 cycles after its capture, so the registers cost no cycle while
    // M >= E_PIPE + 2 (kaq-codegen never asks for more).
    reg signed [EACC_W-1:0] lane_sum;
    integer k;
    always @(*) begin
        lane_sum = {EACC_W{1'b0}};
        for (k = 0; k < P; k = k + 1) begin
            lane_sum = lane_sum + lane_acc[k*LACC_W +: EACC_W];
        end
    end
    wire e_cap = cap && (cap_phase == PH_E);
    wire [YW-1:0] e_y_cap = ybuf[row_addr(cap_buf, cap_i)];
    wire signed [EW-1:0] e_new;
    wire          e_wr;
    wire [RW-1:0] e_wr_i;
    generate
        if (E_PIPE == 0) begin : g_e_comb
            kaq_affine_requant #(
                .A_W(EACC_W), .MULT_W(E_MULT_W), .B_W(YW), .B_SHIFT(E_YSHIFT), .SHIFT(E_SHIFT),
                .OUT_W(EW), .ROUNDING(E_ROUND), .OVERFLOW(E_OVF)
            ) u_e (
                .a(lane_sum), .mult(e_mult), .b(e_y_cap), .y(e_new)
            );
            assign e_wr = e_cap;
            assign e_wr_i = cap_i;
        end else begin : g_e_pipe
            reg                     q1_v;
            reg          [RW-1:0]   q1_i;
            reg          [YW-1:0]   q1_y;
            reg signed [EACC_W-1:0] q1_sum;
            always @(posedge clk) begin
                if (rst) q1_v <= 1'b0;
                else q1_v <= e_cap;
                if (e_cap) begin
                    q1_i <= cap_i;
                    q1_y <= e_y_cap;
                    q1_sum <= lane_sum;
                end
            end
            if (E_PIPE == 1) begin : g_e1
                kaq_affine_requant #(
                    .A_W(EACC_W), .MULT_W(E_MULT_W), .B_W(YW), .B_SHIFT(E_YSHIFT),
                    .SHIFT(E_SHIFT), .OUT_W(EW), .ROUNDING(E_ROUND), .OVERFLOW(E_OVF)
                ) u_e (
                    .a(q1_sum), .mult(e_mult), .b(q1_y), .y(e_new)
                );
                assign e_wr = q1_v;
                assign e_wr_i = q1_i;
            end else begin : g_e2
                localparam integer EP_W = EACC_W + E_MULT_W;
                // The exact product, both factors explicitly sign-extended.
                wire signed [EP_W-1:0] sum_ext = $signed({{E_MULT_W{q1_sum[EACC_W-1]}}, q1_sum});
                wire signed [EP_W-1:0] mult_ext = $signed({{EACC_W{e_mult[E_MULT_W-1]}}, e_mult});
                reg                   q2_v;
                reg          [RW-1:0] q2_i;
                reg          [YW-1:0] q2_y;
                reg signed [EP_W-1:0] q2_prod;
                always @(posedge clk) begin
                    if (rst) q2_v <= 1'b0;
                    else q2_v <= q1_v;
                    if (q1_v) begin
                        q2_i <= q1_i;
                        q2_y <= q1_y;
                        q2_prod <= sum_ext * mult_ext;
                    end
                end
                // requant(prod * 1 - y << E_YSHIFT): the multiplier 1 folds away.
                kaq_affine_requant #(
                    .A_W(EP_W), .MULT_W(2), .B_W(YW), .B_SHIFT(E_YSHIFT), .SHIFT(E_SHIFT),
                    .OUT_W(EW), .ROUNDING(E_ROUND), .OVERFLOW(E_OVF)
                ) u_e (
                    .a(q2_prod), .mult(2'sb01), .b(q2_y), .y(e_new)
                );
                assign e_wr = q2_v;
                assign e_wr_i = q2_i;
            end
        end
    endgenerate
    always @(posedge clk) begin
        if (!rst && e_wr) begin
            earr[e_wr_i] <= e_new;
        end
    end

    // MF and G: one requantization per lane, enabled in the capture cycle of its phase only
    // (the output is 'x otherwise and read by nothing; the shift is a constant).
    localparam integer MF_SHW = (MF_SHIFT > 0) ? $clog2(MF_SHIFT + 1) : 1;
    localparam integer G_SHW = (G_SHIFT > 0) ? $clog2(G_SHIFT + 1) : 1;
    localparam [MF_SHW-1:0] MF_SH = MF_SHIFT[MF_SHW-1:0];
    localparam [G_SHW-1:0] G_SH = G_SHIFT[G_SHW-1:0];
    wire mf_cap = cap && (cap_phase == PH_MF);
    wire g_take = cap && (cap_phase == PH_G);
    wire [P*SW-1:0] mf_new;
    wire [P*GW-1:0] g_new;
    generate
        for (l = 0; l < P; l = l + 1) begin : g_cap
            // Without the matched filter the MF phase never runs.
            if (HAS_MF != 0) begin : g_mf
                kaq_requant_var #(
                    .IN_W(LACC_W), .MULT_W(MF_MULT_W), .SHIFT_W(MF_SHW), .OUT_W(SW),
                    .ROUNDING(MF_ROUND), .OVERFLOW(MF_OVF)
                ) u_mf (
                    .en(mf_cap), .x(lane_acc[l*LACC_W +: LACC_W]), .mult(MF_MULT),
                    .shift(MF_SH), .y(mf_new[l*SW +: SW])
                );
            end else begin : g_no_mf
                assign mf_new[l*SW +: SW] = {SW{1'b0}};
            end
            kaq_requant_var #(
                .IN_W(LACC_W), .MULT_W(G_MULT_W), .SHIFT_W(G_SHW), .OUT_W(GW),
                .ROUNDING(G_ROUND), .OVERFLOW(G_OVF)
            ) u_g (
                .en(g_take), .x(lane_acc[l*LACC_W +: LACC_W]), .mult(G_MULT), .shift(G_SH),
                .y(g_new[l*GW +: GW])
            );
        end
    endgenerate

    wire mac_done = g_take && cap_frame_last;
    always @(posedge clk) begin
        if (!rst && cap) begin
            case (cap_phase)
                PH_G: gb[cap_buf][{{(32 - CW){1'b0}}, cap_c} * (P * GW) +: P * GW] <= g_new;
                default: ;
            endcase
        end
    end

    // ------------------------------------------------------------------ update engine
    reg          uptr;
    reg          ubusy;
    reg          ulatched;
    reg [CW-1:0] uc;
    reg signed [O_MULT_W-1:0]  c_o;
    reg        [5:0]           c_os;
    // Unread when their table is all zero; ADMM-Net only.
    /* verilator lint_off UNUSEDSIGNAL */
    reg signed [X1_W-1:0]  c_x1;
    reg signed [X2_W-1:0]  c_x2;
    reg signed [C_W-1:0]   c_c;
    reg signed [XO_MULT_W-1:0] c_xo;
    reg        [5:0]           c_xos;
    reg signed [VX_W-1:0]  c_vx;
    reg signed [VU_W-1:0]  c_vu;
    /* verilator lint_on UNUSEDSIGNAL */
    wire [31:0] ubin = {{(32 - BINW){1'b0}}, binb[uptr]};
    // A coefficient whose table is all zero is the constant 0 (its register only ever holds
    // 0), so that its term folds away.
    wire signed [X1_W-1:0] k_x1 = (X1_TABLE == 0) ? {X1_W{1'b0}} : c_x1;
    wire signed [X2_W-1:0] k_x2 = (X2_TABLE == 0) ? {X2_W{1'b0}} : c_x2;
    wire signed [C_W-1:0] k_c = (C_TABLE == 0) ? {C_W{1'b0}} : c_c;
    wire upd_step = ubusy && ulatched;
    wire upd_done = upd_step && (uc == LAST_CHUNK);

    always @(posedge clk) begin
        if (rst) begin
            uptr <= 1'b0;
            ubusy <= 1'b0;
            ulatched <= 1'b0;
            uc <= {CW{1'b0}};
            c_x1 <= {X1_W{1'b0}};
            c_x2 <= {X2_W{1'b0}};
            c_c <= {C_W{1'b0}};
            c_o <= {O_MULT_W{1'b0}};
            c_os <= 6'd0;
            c_xos <= 6'd0;
            c_xo <= {XO_MULT_W{1'b0}};
            c_vx <= {VX_W{1'b0}};
            c_vu <= {VU_W{1'b0}};
        end else if (!ubusy) begin
            if (bstate[uptr] == MACDONE) begin
                ubusy <= 1'b1;
                ulatched <= 1'b0;
                uc <= {CW{1'b0}};
            end
        end else if (!ulatched) begin
            // One cycle to look the bin's coefficients up.
            ulatched <= 1'b1;
            c_x1 <= X1_TABLE[ubin * X1_W +: X1_W];
            c_x2 <= X2_TABLE[ubin * X2_W +: X2_W];
            c_c <= C_TABLE[ubin * C_W +: C_W];
            c_o <= O_MULT_TABLE[ubin * O_MULT_W +: O_MULT_W];
            c_os <= O_SHIFT_TABLE[ubin * 6 +: 6];
            c_xos <= XO_SHIFT_TABLE[ubin * 6 +: 6];
            c_xo <= XO_MULT_TABLE[ubin * XO_MULT_W +: XO_MULT_W];
            c_vx <= VX_TABLE[ubin * VX_W +: VX_W];
            c_vu <= VU_TABLE[ubin * VU_W +: VU_W];
        end else if (upd_done) begin
            ubusy <= 1'b0;
            uptr <= !uptr;
        end else begin
            uc <= uc + 1'b1;
        end
    end

    wire [N*SW-1:0] u_x1 = x1b[uptr];
    wire [N*SW-1:0] u_x2 = x2b[uptr];
    wire [N*SW-1:0] u_s = sb[uptr];
    wire [N*SW-1:0] u_u = ub[uptr];
    wire [N*GW-1:0] u_g = gb[uptr];
    // The update's chunk of each vector.
    wire [P*SW-1:0] u_x1c = u_x1[{{(32 - CW){1'b0}}, uc} * (P * SW) +: P * SW];
    wire [P*SW-1:0] u_x2c = u_x2[{{(32 - CW){1'b0}}, uc} * (P * SW) +: P * SW];
    wire [P*SW-1:0] u_sc = u_s[{{(32 - CW){1'b0}}, uc} * (P * SW) +: P * SW];
    wire [P*SW-1:0] u_uc = u_u[{{(32 - CW){1'b0}}, uc} * (P * SW) +: P * SW];
    wire [P*GW-1:0] u_gc = u_g[{{(32 - CW){1'b0}}, uc} * (P * GW) +: P * GW];

    // The update pipeline: stage 0 is the step itself, stage k its values k cycles later; the
    // states are written, and the buffer marked DONE, from stage UPD_PIPE. Slice k of each
    // vector below is stage k. The coefficient registers may be read up to two cycles after a
    // frame's last step: the next frame's lookup comes at least two cycles later.
    localparam integer UP = UPD_PIPE;
    wire [UP:0]          pst_step;
    wire [UP:0]          pst_done;
    wire [UP:0]          pst_ptr;
    wire [(UP+1)*CW-1:0] pst_c;
    wire [(UP+1)*P*SW-1:0] pst_x1c;
    wire [(UP+1)*P*SW-1:0] pst_sc;
    wire [(UP+1)*P*SW-1:0] pst_uc;
    generate
        if (UP == 0) begin : g_no_pipe
            assign pst_step = upd_step;
            assign pst_done = upd_done;
            assign pst_ptr = uptr;
            assign pst_c = uc;
            assign pst_x1c = u_x1c;
            assign pst_sc = u_sc;
            assign pst_uc = u_uc;
        end else begin : g_pipe
            reg [UP-1:0]        q_step;
            reg [UP-1:0]        q_done;
            reg [UP-1:0]        q_ptr;
            reg [UP*CW-1:0]     q_c;
            reg [UP*P*SW-1:0]   q_x1c;
            reg [UP*P*SW-1:0]   q_sc;
            reg [UP*P*SW-1:0]   q_uc;
            assign pst_step = {q_step, upd_step};
            assign pst_done = {q_done, upd_done};
            assign pst_ptr = {q_ptr, uptr};
            assign pst_c = {q_c, uc};
            assign pst_x1c = {q_x1c, u_x1c};
            assign pst_sc = {q_sc, u_sc};
            assign pst_uc = {q_uc, u_uc};
            always @(posedge clk) begin
                if (rst) begin
                    q_step <= {UP{1'b0}};
                    q_done <= {UP{1'b0}};
                end else begin
                    q_step <= pst_step[UP-1:0];
                    q_done <= pst_done[UP-1:0];
                end
                q_ptr <= pst_ptr[UP-1:0];
                q_c <= pst_c[UP*CW-1:0];
                q_x1c <= pst_x1c[UP*P*SW-1:0];
                q_sc <= pst_sc[UP*P*SW-1:0];
                q_uc <= pst_uc[UP*P*SW-1:0];
            end
        end
    endgenerate
    // The stage that reads R (1 with a pipeline) and the stage that writes the states.
    localparam integer SR = (UP > 0) ? 1 : 0;
    localparam integer SF = UP;
    /* verilator lint_off UNUSEDSIGNAL */
    wire step_r = pst_step[SR];  // unused by PGD-Net with a prox without a pipeline register
    /* verilator lint_on UNUSEDSIGNAL */
    wire step_f = pst_step[SF];
    wire [P*SW-1:0] sc_r = pst_sc[SR*P*SW +: P*SW];
    wire [P*SW-1:0] uc_r = pst_uc[SR*P*SW +: P*SW];
    // The written-back s and u pass through unchanged in PGD-Net only; ADMM-Net computes them.
    /* verilator lint_off UNUSEDSIGNAL */
    wire [P*SW-1:0] sc_f = pst_sc[SF*P*SW +: P*SW];
    wire [P*SW-1:0] uc_f = pst_uc[SF*P*SW +: P*SW];
    /* verilator lint_on UNUSEDSIGNAL */
    wire [P*SW-1:0] new_x;
    wire [P*SW-1:0] new_s;
    wire [P*SW-1:0] new_u;
    localparam integer ROUT_W = (PROX_KIND == 2) ? TW : PIN_W;
    generate
        for (l = 0; l < P; l = l + 1) begin : g_upd
            wire signed [SW-1:0] xp = u_x1c[l*SW +: SW];
            wire signed [SW-1:0] xpp = u_x2c[l*SW +: SW];
            wire signed [SW-1:0] sp = u_sc[l*SW +: SW];
            wire signed [SW-1:0] up = u_uc[l*SW +: SW];
            wire signed [GW-1:0] gj = u_gc[l*GW +: GW];
            // x - s + u of the previous layer (ADMM), exact in SW + 2 bits.
            wire signed [SW+1:0] cons = $signed({{2{xp[SW-1]}}, xp}) - $signed({{2{sp[SW-1]}}, sp})
                                      + $signed({{2{up[SW-1]}}, up});
            wire signed [R_W-1:0] r;
            wire signed [R_W-1:0] r_s;  // R at stage SR
            kaq_lincomb #(
                .A0_W(SW), .C0_W(X1_W), .A1_W(SW), .C1_W(X2_W), .A2_W(GW), .C2_W(GC_W),
                .A3_W(SW + 2), .C3_W(C_W), .OUT_W(R_W)
            ) u_r (
                .en(upd_step), .a0(xp), .c0(k_x1), .a1(xpp), .c1(k_x2), .a2(gj), .c2(G_COEF),
                .a3(cons), .c3(k_c), .y(r)
            );
            if (UP > 0) begin : g_r_reg
                reg signed [R_W-1:0] r_q;
                always @(posedge clk) begin
                    if (upd_step) r_q <= r;
                end
                assign r_s = r_q;
            end else begin : g_r_comb
                assign r_s = r;
            end
            wire signed [SW-1:0] sp_r = sc_r[l*SW +: SW];
            wire signed [SW-1:0] up_r = uc_r[l*SW +: SW];
            wire signed [PIN_W-1:0] pin;
            wire signed [SW-1:0] xo;
            wire signed [SW-1:0] so;
            wire signed [SW-1:0] uo;
            if (ARCH == 0) begin : g_pgd
                assign pin = r_s;
                assign new_x[l*SW +: SW] = so;
                assign new_s[l*SW +: SW] = sc_f[l*SW +: SW];
                assign new_u[l*SW +: SW] = uc_f[l*SW +: SW];
                assign xo = so;
                assign uo = up_r;
            end else begin : g_admm
                wire signed [XOW-1:0] xo_n;
                kaq_requant_var #(
                    .IN_W(R_W), .MULT_W(XO_MULT_W), .SHIFT_W(6), .OUT_W(XOW),
                    .ROUNDING(XO_ROUND), .OVERFLOW(XO_OVF), .SHIFT_MIN(XO_SHIFT_MIN),
                    .SHIFT_MAX(XO_SHIFT_MAX)
                ) u_x (.en(step_r), .x(r_s), .mult(c_xo), .shift(c_xos), .y(xo_n));
                assign xo = $signed({{(SW - XOW + 1){xo_n[XOW-1]}}, xo_n[XOW-2:0]});
                wire signed [V_W-1:0] v;
                kaq_lincomb #(
                    .A0_W(SW), .C0_W(VX_W), .A1_W(SW), .C1_W(VU_W), .A2_W(1), .C2_W(1),
                    .A3_W(1), .C3_W(1), .OUT_W(V_W)
                ) u_v (
                    .en(step_r), .a0(xo), .c0(c_vx), .a1(up_r), .c1(c_vu), .a2(1'b0), .c2(1'b0),
                    .a3(1'b0), .c3(1'b0), .y(v)
                );
                assign pin = v;
                wire signed [WW-1:0] w;
                wire signed [VX_W:0] neg_vx = -$signed({c_vx[VX_W-1], c_vx});
                kaq_lincomb #(
                    .A0_W(V_W), .C0_W(2), .A1_W(SW), .C1_W(VX_W + 1), .A2_W(1), .C2_W(1),
                    .A3_W(1), .C3_W(1), .OUT_W(WW)
                ) u_w (
                    .en(step_r), .a0(v), .c0(2'sb01), .a1(so), .c1(neg_vx), .a2(1'b0), .c2(1'b0),
                    .a3(1'b0), .c3(1'b0), .y(w)
                );
                wire signed [XOW-1:0] uo_n;
                kaq_requant_var #(
                    .IN_W(WW), .MULT_W(XO_MULT_W), .SHIFT_W(6), .OUT_W(XOW),
                    .ROUNDING(XO_ROUND), .OVERFLOW(XO_OVF), .SHIFT_MIN(XO_SHIFT_MIN),
                    .SHIFT_MAX(XO_SHIFT_MAX)
                ) u_u (.en(step_r), .x(w), .mult(c_xo), .shift(c_xos), .y(uo_n));
                assign uo = $signed({{(SW - XOW + 1){uo_n[XOW-1]}}, uo_n[XOW-2:0]});
                assign new_x[l*SW +: SW] = xo;
                assign new_s[l*SW +: SW] = so;
                assign new_u[l*SW +: SW] = uo;
            end
            // The prox (stage SR) and the requantization of its output (stage SF).
            wire signed [ROUT_W-1:0] pout;
            wire signed [ROUT_W-1:0] pout_s;
            if (PROX_KIND == 2) begin : g_table
                wire signed [SW-1:0] idx;
                kaq_requant #(
                    .IN_W(PIN_W), .MULT_W(TIN_MULT_W), .SHIFT(TIN_SHIFT), .OUT_W(SW),
                    .ROUNDING(TIN_ROUND), .OVERFLOW(TIN_OVF)
                ) u_tin (.x(pin), .mult(TIN_MULT), .y(idx));
                kaq_lut #(.IDX_W(SW), .TW(TW), .TABLE(PROX_TABLE)) u_lut (.idx(idx), .y(pout));
            end else begin : g_pwl
                kaq_prox_pwl #(.W(PIN_W), .KIND(PROX_KIND), .PARAM(PROX_PARAM)) u_prox (
                    .en(step_r), .x(pin), .y(pout)
                );
            end
            if (SF > SR) begin : g_p_reg
                reg signed [ROUT_W-1:0] pout_q;
                always @(posedge clk) begin
                    if (step_r) pout_q <= pout;
                end
                assign pout_s = pout_q;
            end else begin : g_p_comb
                assign pout_s = pout;
            end
            // Saturated at this layer's width OW, sign-extended to the state registers.
            wire signed [OW-1:0] so_n;
            kaq_requant_var #(
                .IN_W(ROUT_W), .MULT_W(O_MULT_W), .SHIFT_W(6), .OUT_W(OW),
                .ROUNDING(O_ROUND), .OVERFLOW(O_OVF), .SHIFT_MIN(O_SHIFT_MIN),
                .SHIFT_MAX(O_SHIFT_MAX)
            ) u_out (.en(step_f), .x(pout_s), .mult(c_o), .shift(c_os), .y(so_n));
            assign so = $signed({{(SW - OW + 1){so_n[OW-1]}}, so_n[OW-2:0]});
            /* verilator lint_off UNUSEDSIGNAL */
            wire unused_upd = ^{xo, uo, sp_r, up_r, sp, up};
            /* verilator lint_on UNUSEDSIGNAL */
        end
    endgenerate

    // ------------------------------------------------------------------ drain
    reg          dptr;
    reg [RW-1:0] drow;
    assign m_valid = (bstate[dptr] == DONE);
    wire fire_out = m_valid && m_ready;
    wire drain_done = fire_out && (drow == LAST_ROW);
    assign m_h = hbuf[row_addr(dptr, drow)];
    assign m_y = ybuf[row_addr(dptr, drow)];
    assign m_bin = binb[dptr];
    assign m_x1 = x1b[dptr];
    assign m_x2 = x2b[dptr];
    assign m_s = sb[dptr];
    assign m_u = ub[dptr];

    always @(posedge clk) begin
        if (rst) begin
            dptr <= 1'b0;
            drow <= {RW{1'b0}};
        end else if (fire_out) begin
            if (drain_done) begin
                drow <= {RW{1'b0}};
                dptr <= !dptr;
            end else begin
                drow <= drow + 1'b1;
            end
        end
    end

    // ------------------------------------------------------------------ states
    // The states of a buffer are written by the fill (beat 0), the matched filter and the
    // update; in any cycle these serve different buffers.
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0] mf_base = {{(32 - CW){1'b0}}, cap_c} * (P * SW);
    wire [31:0] up_base = {{(32 - CW){1'b0}}, pst_c[SF*CW +: CW]} * (P * SW);
    wire uptr_f = pst_ptr[SF];
    /* verilator lint_on UNUSEDSIGNAL */
    always @(posedge clk) begin
        if (!rst) begin
            if (fire_in && frow == {RW{1'b0}}) begin
                x1b[fptr] <= s_x1;
                x2b[fptr] <= s_x2;
                sb[fptr] <= s_s;
                ub[fptr] <= s_u;
            end
            if (mf_cap) begin
                x1b[cap_buf][mf_base +: P * SW] <= mf_new;
                x2b[cap_buf][mf_base +: P * SW] <= mf_new;
                sb[cap_buf][mf_base +: P * SW] <= mf_new;
            end
            if (step_f) begin
                x2b[uptr_f][up_base +: P * SW] <= pst_x1c[SF*P*SW +: P*SW];
                x1b[uptr_f][up_base +: P * SW] <= new_x;
                sb[uptr_f][up_base +: P * SW] <= new_s;
                ub[uptr_f][up_base +: P * SW] <= new_u;
            end
        end
    end

    // Buffer states: each event moves one buffer; two events never name the same buffer.
    always @(posedge clk) begin
        if (rst) begin
            bstate[0] <= EMPTY;
            bstate[1] <= EMPTY;
        end else begin
            if (fill_done) bstate[fptr] <= FULL;
            if (mac_done) bstate[cap_buf] <= MACDONE;
            if (pst_done[SF]) bstate[uptr_f] <= DONE;
            if (drain_done) bstate[dptr] <= EMPTY;
        end
    end
endmodule

`default_nettype wire
