// kaq_requant_var — combinational requantization with a per-input shift:
//   y = overflow(round_shift(x * mult, shift, ROUNDING), OUT_W, OVERFLOW)
// like kaq_requant, but the shift is a port (0..2^SHIFT_W-1) as well as the multiplier, so a
// per-SNR-bin table of (mult, shift) pairs keeps every bin's multiplier at full precision
// (docs/fixed-point.md §2). Rust twin: kaq_model::fixed::requantize. ROUNDING: 0 half-up,
// 1 floor, 2 half-even; OVERFLOW as in kaq_round_shift_sat (0 saturate, 1 wrap, 2 symmetric).
// With en = 0 the output is a don't-care ('x): nothing may read it then, so a simulator skips
// the product, the shift and the narrowing, and synthesis drops the select.
// SHIFT_MIN..SHIFT_MAX (default 0..2^SHIFT_W-1) is the range the shift port takes (a per-bin
// table's smallest and largest entry); with SHIFT_MIN >= 1 and half-up or floor rounding the
// shift is a constant one by SHIFT_MIN followed by a variable one of shift - SHIFT_MIN, since
// floor((v + 2^(s-1)) / 2^s) = floor(floor((v + 2^(s-1)) / 2^SHIFT_MIN) / 2^(s-SHIFT_MIN)).
`default_nettype none

module kaq_requant_var #(
    parameter integer IN_W     = 24,
    parameter integer MULT_W   = 16,
    parameter integer SHIFT_W  = 6,
    parameter integer OUT_W    = 8,
    parameter integer ROUNDING = 0,
    parameter integer OVERFLOW = 0,
    parameter integer SHIFT_MIN = 0,
    parameter integer SHIFT_MAX = (1 << SHIFT_W) - 1
) (
    input  wire                     en,
    input  wire signed [IN_W-1:0]   x,
    input  wire signed [MULT_W-1:0] mult,
    input  wire        [SHIFT_W-1:0] shift,
    output wire signed [OUT_W-1:0]  y
);
    localparam integer PROD_W = IN_W + MULT_W;
    // One bit of headroom for the rounding offset; at least as wide as the largest shift.
    localparam integer MAXS = SHIFT_MAX;
    localparam integer XW = ((PROD_W > MAXS) ? PROD_W : MAXS) + 1;
    localparam [XW-1:0] ONE = {{(XW - 1){1'b0}}, 1'b1};

    localparam integer RND = (ROUNDING >= 0 && ROUNDING <= 2) ? ROUNDING : 0;
    generate
        if (ROUNDING != RND) begin : g_bad_rounding
            kaq_requant_var_unknown_ROUNDING u_fail ();
        end
        if (SHIFT_MIN < 0 || SHIFT_MAX < SHIFT_MIN || SHIFT_MAX > (1 << SHIFT_W) - 1)
        begin : g_bad_shift_range
            kaq_requant_var_bad_SHIFT_range u_fail ();
        end
    endgenerate
    // The constant-then-variable shift (see the header).
    localparam integer SPLIT = (SHIFT_MIN >= 1 && RND != 2) ? 1 : 0;
    localparam integer SMIN = (SHIFT_MIN >= 1) ? SHIFT_MIN : 1;
    localparam integer DW = (SHIFT_MAX > SHIFT_MIN) ? $clog2(SHIFT_MAX - SHIFT_MIN + 1) : 1;

    // The exact product, then round_shift by `shift`; 2^(shift-1) for shift >= 1 and the
    // mask of the dropped bits as XW-bit values (floor rounding reads none of these but q).
    function automatic signed [XW-1:0] round_product(
        input signed [IN_W-1:0] f_x, input signed [MULT_W-1:0] f_mult,
        input [SHIFT_W-1:0] f_shift
    );
        /* verilator lint_off UNUSEDSIGNAL */
        reg signed [PROD_W-1:0] product;
        reg signed [XW-1:0] pw;
        reg nonzero;
        reg [XW-1:0] half;
        reg [XW-1:0] mask;
        reg signed [XW-1:0] q;  // floor
        reg [XW-1:0] r;         // dropped bits, 0 <= r < 2^shift
        reg carry;
        reg [SHIFT_W-1:0] d_full;
        reg [DW-1:0] d;
        reg [XW-1:0] half_s;
        reg signed [XW-1:0] t;
        /* verilator lint_on UNUSEDSIGNAL */
        begin
            product = $signed({{MULT_W{f_x[IN_W-1]}}, f_x})
                    * $signed({{IN_W{f_mult[MULT_W-1]}}, f_mult});
            pw = $signed({{(XW - PROD_W){product[PROD_W-1]}}, product});
            if (SPLIT != 0) begin
                d_full = f_shift - SMIN[SHIFT_W-1:0];
                d = d_full[DW-1:0];
                half_s = (RND == 0) ? ((ONE << (SMIN - 1)) << d) : {XW{1'b0}};
                t = pw + $signed(half_s);
                round_product = (t >>> SMIN) >>> d;
            end else begin
                nonzero = (f_shift != {SHIFT_W{1'b0}});
                half = nonzero ? (ONE << (f_shift - 1'b1)) : {XW{1'b0}};
                mask = (ONE << f_shift) - ONE;
                q = pw >>> f_shift;
                r = pw & mask;
                case (RND)
                    0: carry = nonzero && (r >= half);
                    1: carry = 1'b0;
                    default: carry = nonzero && ((r > half) || ((r == half) && q[0]));
                endcase
                round_product = q + $signed({{(XW - 1){1'b0}}, carry});
            end
        end
    endfunction

    // overflow(v, OUT_W, OVERFLOW) of a value held in XW bits, as kaq_round_shift_sat does it
    // with SHIFT = 0: NW bits hold both v and every OUT_W-bit code.
    localparam integer NW = (XW > OUT_W) ? XW : OUT_W;
    localparam integer OVF = (OVERFLOW >= 0 && OVERFLOW <= 2) ? OVERFLOW : 0;
    generate
        if (OVERFLOW != OVF) begin : g_bad_overflow
            kaq_requant_var_unknown_OVERFLOW u_fail ();
        end
    endgenerate
    localparam [OUT_W-1:0] ONES    = {OUT_W{1'b1}};
    localparam [OUT_W-1:0] MAX     = ONES >> 1;           //  2^(OUT_W-1) - 1
    localparam [OUT_W-1:0] MIN     = ~MAX;                // -2^(OUT_W-1)
    localparam [OUT_W-1:0] LSB     = ONES ^ (ONES << 1);  //  1
    localparam [OUT_W-1:0] NEG_MAX = MIN + LSB;           // -(2^(OUT_W-1) - 1)

    function automatic signed [OUT_W-1:0] narrow(input signed [XW-1:0] f_v);
        /* verilator lint_off UNUSEDSIGNAL */
        reg signed [NW-1:0] vw;
        reg signed [NW-1:0] hi;
        /* verilator lint_on UNUSEDSIGNAL */
        reg in_range;
        reg [OUT_W-1:0] low;
        begin
            vw = $signed({{(NW - XW + 1){f_v[XW-1]}}, f_v[XW-2:0]});
            // v fits OUT_W bits iff its bits OUT_W-1 and above all equal the sign.
            hi = vw >>> (OUT_W - 1);
            in_range = (hi == {NW{1'b0}}) || (hi == {NW{1'b1}});
            low = vw[OUT_W-1:0];
            case (OVF)
                1: narrow = $signed(low);
                0: narrow = $signed(in_range ? low : (vw[NW-1] ? MIN : MAX));
                default: narrow = $signed((in_range && low != MIN) ? low
                                          : (vw[NW-1] ? NEG_MAX : MAX));
            endcase
        end
    endfunction

    // The whole requantization sits behind en, so a simulator evaluates nothing while the
    // output is not read.
    reg signed [OUT_W-1:0] y_r;
    // The don't-care first, then the value under en: Verilator then evaluates the function
    // only when en is high (an if/else of two assignments becomes a select whose function
    // body it computes every cycle).
    always @(*) begin
        y_r = {OUT_W{1'bx}};
        if (en) begin
            y_r = narrow(round_product(x, mult, shift));
        end
    end
    assign y = y_r;
endmodule

`default_nettype wire
