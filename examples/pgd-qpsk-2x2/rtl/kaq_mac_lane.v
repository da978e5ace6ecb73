// kaq_mac_lane — one registered signed multiply-accumulate lane:
//   on each rising clk:  rst          -> acc = 0
//                        clear & en   -> acc = a*b         (start a new sum with this term)
//                        clear & !en  -> acc = 0
//                        !clear & en  -> acc = acc + a*b
//                        otherwise    -> acc holds
// The product is exact (A_W + B_W bits, sign-extended to ACC_W). The accumulator width is
// proved sufficient by the lowering's interval analysis, so the sum never wraps; see
// docs/fixed-point.md and the Rust twin kaq_model::fixed::mac. Requires ACC_W >= A_W + B_W.
`default_nettype none

module kaq_mac_lane #(
    parameter integer A_W   = 8,
    parameter integer B_W   = 8,
    parameter integer ACC_W = 24
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire                    clear,
    input  wire                    en,
    input  wire signed [A_W-1:0]   a,
    input  wire signed [B_W-1:0]   b,
    output reg  signed [ACC_W-1:0] acc
);
    localparam integer P_W = A_W + B_W;

    wire signed [P_W-1:0] product = a * b;  // both operands signed: exact signed product
    wire signed [ACC_W-1:0] product_ext;

    generate
        if (ACC_W < P_W) begin : g_bad_width
            kaq_mac_lane_ACC_W_below_A_W_plus_B_W u_fail ();
        end else if (ACC_W == P_W) begin : g_same
            assign product_ext = product;
        end else begin : g_extend
            assign product_ext = $signed({{(ACC_W - P_W){product[P_W-1]}}, product});
        end
    endgenerate

    wire signed [ACC_W-1:0] base   = clear ? {ACC_W{1'b0}} : acc;
    wire signed [ACC_W-1:0] addend = en ? product_ext : {ACC_W{1'b0}};

    always @(posedge clk) begin
        if (rst) begin
            acc <= {ACC_W{1'b0}};
        end else if (clear || en) begin
            acc <= base + addend;
        end
    end
endmodule

`default_nettype wire
