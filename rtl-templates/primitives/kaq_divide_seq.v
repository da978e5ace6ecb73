// kaq_divide_seq — sequential integer division of two signed codes (docs/fixed-point.md §6),
// the same function as kaq_divide with one compare-and-subtract shared over NUM_W cycles:
//   D = max(d, D_MIN); y = overflow(round(n * 2^SHIFT / D, ROUNDING), OUT_W, OVERFLOW)
// as implemented in Rust by kaq_ir::fixed::{divide, divide_restoring}.
//
// Handshake: `start` is accepted on a rising edge while `ready` is high (n and d are sampled
// then; a `start` while busy is ignored). The restoring division of |n * 2^SHIFT| by D takes
// one quotient bit per cycle, NUM_W = N_W + SHIFT cycles; `done` is high for the one cycle
// after the last step (NUM_W rising edges after the accepting one), when `ready` is high
// again. `y` holds the result from `done` until the next accepted `start`. The floor fix-up of
// a negative numerator, the rounding carry from 2r vs D and the narrowing (kaq_round_shift_sat
// with SHIFT 0) are combinational on the registered quotient and remainder.
// ROUNDING: 0 half-up, 1 floor, 2 half-even. OVERFLOW: 0 saturate, 1 wrap, 2 symmetric.
// D_MIN >= 1 is a sized (D_W-1)-bit unsigned constant. N_W >= 1, N_W + SHIFT >= 2, D_W >= 2,
// OUT_W >= 1; D_MIN = 0, N_W + SHIFT < 2 or an unknown ROUNDING fails elaboration.
`default_nettype none

module kaq_divide_seq #(
    parameter integer N_W      = 8,
    parameter integer D_W      = 8,
    parameter integer SHIFT    = 0,
    parameter [D_W-2:0] D_MIN  = {{(D_W - 2){1'b0}}, 1'b1},
    parameter integer OUT_W    = 8,
    parameter integer ROUNDING = 0,
    parameter integer OVERFLOW = 0
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire                    start,
    input  wire signed [N_W-1:0]   n,
    input  wire signed [D_W-1:0]   d,
    output wire                    ready,
    output reg                     done,
    output wire signed [OUT_W-1:0] y
);
    localparam integer NUM_W = N_W + SHIFT;
    localparam integer QW = NUM_W + 2;
    localparam integer CW = $clog2(NUM_W + 1);

    generate
        if (D_MIN == {(D_W - 1){1'b0}}) begin : g_bad_dmin
            kaq_divide_seq_D_MIN_must_be_at_least_1 u_fail ();
        end
        if (NUM_W < 2) begin : g_bad_width
            kaq_divide_seq_N_W_plus_SHIFT_must_be_at_least_2 u_fail ();
        end
        if (ROUNDING < 0 || ROUNDING > 2) begin : g_bad_rounding
            kaq_divide_seq_unknown_ROUNDING u_fail ();
        end
    endgenerate

    localparam signed [D_W-1:0] DMIN_S = $signed({1'b0, D_MIN});
    wire signed [D_W-1:0] dc = (d < DMIN_S) ? DMIN_S : d;

    // |n * 2^SHIFT| in NUM_W unsigned bits (it is at most 2^(NUM_W-1)).
    wire signed [NUM_W:0] nw = $signed({{(SHIFT + 1){n[N_W-1]}}, n});
    wire signed [NUM_W:0] num = nw <<< SHIFT;
    wire [NUM_W:0] mag_w = n[N_W-1] ? -num : num;
    /* verilator lint_off UNUSEDSIGNAL */
    wire mag_top = mag_w[NUM_W];
    /* verilator lint_on UNUSEDSIGNAL */

    reg [D_W-1:0] den;        // the clamped divisor, positive
    reg negative;             // the numerator's sign
    reg [NUM_W-1:0] qm;       // dividend bits shifting out at the top, quotient bits in below
    reg [D_W-1:0] r0;         // the partial remainder, r0 < den
    reg [CW-1:0] cnt;         // steps left
    reg busy;

    assign ready = !busy;

    // One restoring step: {r0, next bit} < 2^D_W since r0 < den <= 2^(D_W-1).
    wire [D_W-1:0] rs = {r0[D_W-2:0], qm[NUM_W-1]};
    wire take = (rs >= den);

    always @(posedge clk) begin
        if (rst) begin
            busy <= 1'b0;
            done <= 1'b0;
            cnt <= {CW{1'b0}};
            den <= {{(D_W - 1){1'b0}}, 1'b1};
            negative <= 1'b0;
            qm <= {NUM_W{1'b0}};
            r0 <= {D_W{1'b0}};
        end else begin
            done <= 1'b0;
            if (!busy) begin
                if (start) begin
                    busy <= 1'b1;
                    cnt <= NUM_W[CW-1:0];
                    den <= dc;
                    negative <= n[N_W-1];
                    qm <= mag_w[NUM_W-1:0];
                    r0 <= {D_W{1'b0}};
                end
            end else begin
                r0 <= take ? rs - den : rs;
                qm <= {qm[NUM_W-2:0], take};
                cnt <= cnt - 1'b1;
                if (cnt == {{(CW - 1){1'b0}}, 1'b1}) begin
                    busy <= 1'b0;
                    done <= 1'b1;
                end
            end
        end
    end

    // Floor fix-up: for n < 0, q = -q0 - [r0 != 0], r = den - r0 if r0 != 0.
    wire signed [QW-1:0] q0s = $signed({2'b00, qm});
    wire r_zero = (r0 == {D_W{1'b0}});
    wire signed [QW-1:0] q = !negative ? q0s : (r_zero ? -q0s : -q0s - $signed({{(QW - 1){1'b0}}, 1'b1}));
    wire [D_W-1:0] r = (!negative || r_zero) ? r0 : den - r0;

    wire [D_W:0] r2 = {r, 1'b0};
    wire [D_W:0] den_w = {1'b0, den};
    wire carry = (ROUNDING == 0) ? (r2 >= den_w)
               : (ROUNDING == 2) ? ((r2 > den_w) | ((r2 == den_w) & q[0]))
               : 1'b0;
    wire signed [QW-1:0] rounded = q + $signed({{(QW - 1){1'b0}}, carry});

    kaq_round_shift_sat #(
        .IN_W(QW), .SHIFT(0), .OUT_W(OUT_W), .ROUNDING(1), .OVERFLOW(OVERFLOW)
    ) u_narrow (
        .x(rounded), .y(y)
    );
endmodule

`default_nettype wire
