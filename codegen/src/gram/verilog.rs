//! The generated top of an IR v2 design: `kaq_gram_core` with its ROMs (the looped
//! micro-program and the constants as synchronous ROMs, the bucket comparators, the denoiser table) and the output slicer, as
//! Verilog text. Deterministic: equal programs give equal bytes.

use std::fmt::Write as _;

use super::program::{Ins, Program, RegMap, bits_for};

/// Width of the block-length field `blk_t`.
pub const T_WIDTH: u32 = 16;

/// Bits to address `count` entries (at least 1).
pub(crate) fn addr_bits(count: usize) -> u32 {
    (usize::BITS - count.saturating_sub(1).leading_zeros()).max(1)
}

/// The port and field widths of a program's design.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Widths {
    /// Register address bits.
    pub aw: u32,
    /// Constant-ROM address bits.
    pub kaw: u32,
    /// Operand b field bits.
    pub bw: u32,
    /// Program counter bits.
    pub pcw: u32,
    /// SNR-bin bits.
    pub binw: u32,
    /// Bucket bits.
    pub bkw: u32,
    /// Repetition-count bits.
    pub rpw: u32,
    /// Bank H, G and V address bits.
    pub haw: u32,
    /// Bank G address bits.
    pub gaw: u32,
    /// Bank V row bits (the rows of each lane's interleaved bank).
    pub vaw: u32,
    /// Lane-index bits (the `lane` field).
    pub lnw: u32,
    /// Shift-table address bits (at least `binw + 1` when the table is not empty, else 1).
    pub siw: u32,
    /// Entries of bank G (G and its narrow copies).
    pub ng: usize,
    /// Instruction bits.
    pub iw: u32,
    /// Output level bits (signed).
    pub lw: u32,
}

impl Widths {
    /// The widths of `p`.
    pub fn of(p: &Program) -> Self {
        let aw = addr_bits(p.map.count);
        let binw = addr_bits(p.bins);
        let kaw = addr_bits(p.consts.len()).max(binw + 1);
        let bw = aw.max(kaw);
        let max_rep = p.block.iter().chain(&p.vector).map(|i| i.rep).max();
        let rpw = addr_bits(max_rep.unwrap_or(1) as usize);
        let siw = if p.shifts.is_empty() {
            1
        } else {
            addr_bits(p.shifts.len()).max(binw + 1)
        };
        let ng = p.map.v() - p.map.g;
        Widths {
            aw,
            kaw,
            bw,
            pcw: addr_bits(p.block.len() + p.vector.len()),
            binw,
            bkw: addr_bits(p.table.len()),
            rpw,
            haw: addr_bits(p.m * p.n),
            gaw: addr_bits(ng),
            vaw: addr_bits(p.map.v_rows()),
            lnw: addr_bits(p.lanes),
            siw,
            ng,
            iw: 3
                + aw
                + bw
                + 3
                + 6
                + 2
                + 6
                + 7
                + aw
                + rpw
                + aw
                + bw
                + 1
                + siw
                + 1
                + addr_bits(p.lanes)
                + 3 * addr_bits(p.map.v_rows())
                + u32::from(p.sel.is_some()),
            lw: bits_for(p.levels as i128 - 1),
        }
    }
}

/// The instruction word of `ins` (see `kaq_gram_core.v`), as hex digits.
fn word(ins: &Ins, map: &RegMap, w: &Widths, sel: bool) -> String {
    // The word's bits, LSB first (an oamp word can exceed 128 bits).
    let mut bitv: Vec<bool> = Vec::new();
    let mut put = |x: u128, bits: u32| {
        assert!(x < 1u128 << bits, "field {x} exceeds {bits} bits");
        bitv.extend((0..bits).map(|k| (x >> k) & 1 == 1));
    };
    put(ins.op.code().into(), 3);
    put(ins.a as u128, w.aw);
    put(ins.b as u128, w.bw);
    put(ins.b_const.into(), 1);
    put(ins.b_bin.into(), 1);
    put(ins.neg.into(), 1);
    put(ins.sh.into(), 6);
    put(ins.first.into(), 1);
    put(ins.last.into(), 1);
    put(ins.down.into(), 6);
    put(ins.satw.into(), 7);
    put(ins.dest as u128, w.aw);
    put(u128::from(ins.rep - 1), w.rpw);
    put(ins.sa.into(), w.aw);
    put(ins.sb.into(), w.bw);
    put(ins.shift_bin.is_some().into(), 1);
    put(ins.shift_bin.unwrap_or(0) as u128, w.siw);
    put(ins.wide.into(), 1);
    put(ins.lane as u128, w.lnw);
    put(map.v_row(ins.a) as u128, w.vaw);
    let b_row = if ins.b_const { 0 } else { map.v_row(ins.b) };
    put(b_row as u128, w.vaw);
    put(map.v_row(ins.dest) as u128, w.vaw);
    // An oamp design's a_sel, the word's top bit.
    if sel {
        put(ins.a_sel.into(), 1);
    } else {
        assert!(!ins.a_sel, "a_sel needs a selection");
    }
    assert_eq!(bitv.len(), w.iw as usize, "the word is IW bits");
    let digits: String = bitv
        .chunks(4)
        .rev()
        .map(|c| {
            let d = c.iter().rev().fold(0u32, |acc, &b| acc * 2 + u32::from(b));
            char::from_digit(d, 16).expect("a hex digit")
        })
        .collect();
    let digits = digits.trim_start_matches('0');
    format!("{}'h{}", w.iw, if digits.is_empty() { "0" } else { digits })
}

/// A `w`-bit two's-complement literal of `v`, signed.
fn lit(v: i64, w: u32) -> String {
    let mask = if w >= 64 { u64::MAX } else { (1u64 << w) - 1 };
    format!("{w}'sh{:x}", (v as u64) & mask)
}

/// Bits of the core's tap bus with taps on: valid, the pc, the lanes' enables, 64 bits a
/// lane of data (`kaq_gram_core.v`).
pub fn tap_width(p: &Program) -> u32 {
    1 + Widths::of(p).pcw + p.lanes as u32 + 64 * p.lanes as u32
}

/// The core's parameters of an oamp design (the third divider, the bank-entry selection)
/// and the tap switch; empty for a cg design without taps.
fn oamp_params(p: &Program, taps: bool) -> String {
    let mut s = String::new();
    if let Some(d) = p.div2 {
        let _ = write!(
            s,
            ",\n        .NDIV(3), .SH2({}), .DMIN2({}'d{}), .OW2({}), .RND2({}), .OVF2({})",
            d.shift(),
            p.div_w - 1,
            d.d_min(),
            d.out_width(),
            d.rounding().verilog_code(),
            d.overflow().verilog_code()
        );
    }
    if let Some(sel) = &p.sel {
        let k = sel.thresholds.len();
        let words: Vec<String> = sel
            .thresholds
            .iter()
            .rev()
            .map(|&t| format!("64'h{:016x}", t as u64))
            .collect();
        let packed = if k == 0 {
            "64'h0".to_string()
        } else {
            format!("{{{}}}", words.join(", "))
        };
        let _ = write!(
            s,
            ",\n        .JSEL(1), .NSEL({k}), .SEL_STRIDE({}), .SEL_T({packed})",
            sel.stride
        );
    }
    if taps {
        s.push_str(", .TAPS(1)");
    }
    s
}

/// The Verilog of the top module `top`, taps off (synthesis and the flow's RTL).
pub fn top(p: &Program, top: &str) -> String {
    top_taps(p, top, false)
}

/// The Verilog of the top module `top`; with `taps` the core's tap port is on and the top
/// has the outputs `tap_valid`, `tap_pc`, `tap_lanes` and `tap_data` (docs/rtl.md, "IR v2",
/// taps), else the port is a constant left unconnected inside the top.
pub fn top_taps(p: &Program, top: &str, taps: bool) -> String {
    let w = Widths::of(p);
    let (m, n) = (p.m, p.n);
    let (hw, yw, sw) = (p.h_width, p.y_width, p.state_width);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "// {top} — generated by kaq codegen from an IR {} document. Do not edit.\n\
         // The folded Gram engine kaq_gram_core with its ROMs; interface and timing in the\n\
         // README (docs/rtl.md, \"IR v2\"). {} MAC lane(s); block program {} cycles, vector\n\
         // program {} cycles.\n\
         `default_nettype none\n",
        if p.sel.is_some() {
            "v4 (oamp)"
        } else {
            "v2 (cg)"
        },
        p.lanes,
        p.block_cycles(),
        p.vector_cycles()
    );
    let _ = writeln!(
        s,
        "module {top} (\n    input  wire clk,\n    input  wire rst,\n    \
         input  wire blk_valid,\n    output wire blk_ready,\n    \
         input  wire [{}:0] blk_h,\n    input  wire [{}:0] blk_t,\n    \
         input  wire [{}:0] blk_bin,\n    input  wire y_valid,\n    output wire y_ready,\n    \
         input  wire [{}:0] y_data,\n    output wire out_valid,\n    input  wire out_ready,\n    \
         output wire [{}:0] out_x,\n    output wire [{}:0] out_level,\n    \
         output wire out_last,\n    output wire idle{}\n);",
        hw as usize - 1,
        T_WIDTH - 1,
        w.binw - 1,
        m * yw as usize - 1,
        n * sw as usize - 1,
        n * w.lw as usize - 1,
        if taps {
            format!(
                ",\n    output wire tap_valid,\n    output wire [{}:0] tap_pc,\n    \
                 output wire [{}:0] tap_lanes,\n    output wire [{}:0] tap_data",
                w.pcw - 1,
                p.lanes - 1,
                64 * p.lanes - 1
            )
        } else {
            String::new()
        }
    );
    let kw = p.const_w;
    let _ = writeln!(
        s,
        "    wire [{}:0] pc_next;\n    reg  [{}:0] ins;\n    wire [{}:0] kaddr;\n    \
         reg  signed [{}:0] kval;\n    wire [{}:0] saddr;\n    \
         {} [11:0] sval;\n    wire signed [63:0] bk_in;\n    wire [{}:0] bk_out;\n    \
         wire [{}:0] lut_bucket;\n    wire [{}:0] lut_idx;\n    wire [{}:0] lut_val;\n",
        w.pcw - 1,
        w.iw - 1,
        w.kaw - 1,
        kw - 1,
        w.siw - 1,
        if p.shifts.is_empty() { "wire" } else { "reg " },
        w.bkw - 1,
        w.bkw - 1,
        p.lanes * p.r_width as usize - 1,
        p.lanes * sw as usize - 1
    );
    let [d0, d1] = p.divs;
    let dmin = |d: i64| format!("{}'d{d}", p.div_w - 1);
    let map = &p.map;
    let [_, gbw, vbw, ww] = p.bank_w;
    // The core's tap port: on, split into the top's tap outputs; off, a constant bit.
    if taps {
        let (pcw, lanes) = (w.pcw, p.lanes as u32);
        let _ = writeln!(
            s,
            "    wire [{}:0] tap;\n    assign tap_valid = tap[0];\n    \
             assign tap_pc = tap[{pcw}:1];\n    assign tap_lanes = tap[{}:{}];\n    \
             assign tap_data = tap[{}:{}];",
            tap_width(p) - 1,
            pcw + lanes,
            pcw + 1,
            tap_width(p) - 1,
            pcw + lanes + 1
        );
    } else {
        s.push_str(
            "    /* verilator lint_off UNUSEDSIGNAL */\n    wire tap;\n    \
             /* verilator lint_on UNUSEDSIGNAL */\n",
        );
    }
    let _ = writeln!(
        s,
        "    kaq_gram_core #(\n        .M({m}), .N({n}), .HW({hw}), .YW({yw}), .SW({sw}), \
         .TW({T_WIDTH}), .BINW({}),\n        .GBW({gbw}), .VBW({vbw}), .WW({ww}), .MAW({}), \
         .MBW({}), .KW({kw}),\n        .NG({}), .SIW({}), .AW({}), .BW({}), .KAW({}), .PCW({}), .RPW({}), \
         .PB({}), .PV({}),\n        .G_BASE({}), .V_BASE({}), .NV({}), .X_ROW({}), .YROWS({}), .LNW({}), \
         .W_ADDR({}),\n        .RW({}), .BKW({}), .DIVW({}),\n        \
         .SH0({}), .DMIN0({}), .OW0({}), .RND0({}), .OVF0({}),\n        \
         .SH1({}), .DMIN1({}), .OW1({}), .RND1({}), .OVF1({}),\n        \
         .HAW({}), .GAW({}), .VAW({}), .LDW({}), .LANES({}), .IW({}){}\n    \
         ) u_core (\n        .clk(clk), .rst(rst), .blk_valid(blk_valid), .blk_ready(blk_ready), \
         .blk_h(blk_h),\n        .blk_t(blk_t), .blk_bin(blk_bin), .y_valid(y_valid), \
         .y_ready(y_ready), .y_data(y_data),\n        .out_valid(out_valid), \
         .out_ready(out_ready), .out_x(out_x), .out_last(out_last), .idle(idle),\n        \
         .pc_next(pc_next), .ins(ins), .kaddr(kaddr), .kval(kval), .saddr(saddr), \
         .sval(sval),\n        .bk_in(bk_in), .bk_out(bk_out),\n        .lut_bucket(lut_bucket), .lut_idx(lut_idx), \
         .lut_val(lut_val), .tap(tap)\n    );\n",
        w.binw,
        p.mul_w[0],
        p.mul_w[1],
        w.ng,
        w.siw,
        w.aw,
        w.bw,
        w.kaw,
        w.pcw,
        w.rpw,
        p.block.len(),
        p.vector.len(),
        map.g,
        map.v(),
        map.w - map.v(),
        map.v_row(map.x),
        p.load_cycles(),
        w.lnw,
        map.w,
        p.r_width,
        w.bkw,
        p.div_w,
        d0.shift(),
        dmin(d0.d_min()),
        d0.out_width(),
        d0.rounding().verilog_code(),
        d0.overflow().verilog_code(),
        d1.shift(),
        dmin(d1.d_min()),
        d1.out_width(),
        d1.rounding().verilog_code(),
        d1.overflow().verilog_code(),
        w.haw,
        w.gaw,
        w.vaw,
        w.haw.max(w.vaw),
        p.lanes,
        w.iw,
        oamp_params(p, taps)
    );
    // The program ROM.
    let words = p.block.len() + p.vector.len();
    let _ = writeln!(
        s,
        "    // The looped micro-program (block at 0, vector at {}), a synchronous ROM.\n    \
         reg [{}:0] rom [0:{}];\n    initial begin",
        p.block.len(),
        w.iw - 1,
        words - 1
    );
    for (i, ins) in p.block.iter().chain(&p.vector).enumerate() {
        let _ = writeln!(
            s,
            "        rom[{i}] = {};",
            word(ins, &p.map, &w, p.sel.is_some())
        );
    }
    s.push_str("    end\n    always @(posedge clk) ins <= rom[pc_next];\n\n");
    // The constant ROM.
    let _ = writeln!(
        s,
        "    // The constants, a synchronous ROM.\n    reg signed [{}:0] krom [0:{}];\n    \
         initial begin",
        kw - 1,
        p.consts.len() - 1
    );
    for (i, &c) in p.consts.iter().enumerate() {
        let _ = writeln!(s, "        krom[{i}] = {};", lit(c, kw));
    }
    s.push_str("    end\n    always @(posedge clk) kval <= krom[kaddr];\n\n");
    // The per-bin shift table.
    if p.shifts.is_empty() {
        s.push_str(
            "    // No per-bin shifts: the table is empty.\n    assign sval = 12'd0;\n    \
             /* verilator lint_off UNUSEDSIGNAL */\n    wire saddr_unused = |saddr;\n    \
             /* verilator lint_on UNUSEDSIGNAL */\n\n",
        );
    } else {
        let _ = writeln!(
            s,
            "    // The per-SNR-bin shifts {{down, sh}} (IR version 3), a synchronous ROM.\n    \
             reg [11:0] srom [0:{}];\n    initial begin",
            p.shifts.len() - 1
        );
        for (i, &(sh, down)) in p.shifts.iter().enumerate() {
            assert!(sh < 64 && down < 64, "a shift exceeds 6 bits");
            let _ = writeln!(s, "        srom[{i}] = 12'h{:03x};", (down << 6) | sh);
        }
        let _ = writeln!(
            s,
            "    end\n    always @(posedge clk) sval <= srom[saddr];\n"
        );
    }
    // The bucket comparators.
    s.push_str("    // bucket = #{j : tau2 >= thresholds[j]}\n");
    if p.thresholds.is_empty() {
        let _ = writeln!(s, "    assign bk_out = {}'d0;", w.bkw);
        s.push_str("    /* verilator lint_off UNUSEDSIGNAL */\n    wire bk_unused = |bk_in;\n    /* verilator lint_on UNUSEDSIGNAL */\n");
    } else {
        let terms: Vec<String> = p
            .thresholds
            .iter()
            .map(|&t| format!("{{{}'d0, (bk_in >= {})}}", w.bkw - 1, lit(t, 64)))
            .collect();
        let _ = writeln!(s, "    assign bk_out = {};\n", terms.join("\n        + "));
    }
    // The table, one port per lane.
    let rw = p.r_width;
    let kb = w.bkw + rw;
    let _ = writeln!(
        s,
        "    // The denoiser table: lut_val[l] = table[lut_bucket][lut_idx[l]], one port per lane.\n    \
         function automatic signed [{}:0] lut_f(input [{}:0] k);\n        case (k)",
        sw - 1,
        kb - 1
    );
    for (b, row) in p.table.iter().enumerate() {
        for (i, &c) in row.iter().enumerate() {
            let _ = writeln!(
                s,
                "            {kb}'d{}: lut_f = {};",
                (b << rw) | i,
                lit(c, sw)
            );
        }
    }
    let _ = writeln!(
        s,
        "            default: lut_f = {{{sw}{{1'b0}}}};\n        endcase\n    endfunction\n    \
         genvar gt;\n    generate\n        for (gt = 0; gt < {}; gt = gt + 1) begin : g_lut\n            \
         assign lut_val[gt*{sw} +: {sw}] = lut_f({{lut_bucket, lut_idx[gt*{rw} +: {rw}]}});\n        \
         end\n    endgenerate\n",
        p.lanes
    );
    // The slicer.
    let lw = w.lw;
    let _ = writeln!(
        s,
        "    // The slicer: level = 2 #{{t : x >= slicer[t]}} - (L - 1).\n    genvar gi;\n    \
         generate\n        for (gi = 0; gi < {n}; gi = gi + 1) begin : g_slice\n            \
         wire signed [{}:0] xv = out_x[gi*{sw} +: {sw}];",
        sw - 1
    );
    let terms: Vec<String> = p
        .slicer
        .iter()
        .map(|&t| format!("{{{}'d0, (xv >= {})}}", lw - 1, lit(t, sw)))
        .collect();
    let count = if terms.is_empty() {
        format!("{lw}'d0")
    } else {
        terms.join(" + ")
    };
    let _ = writeln!(
        s,
        "            wire [{}:0] cnt = {count};\n            \
         assign out_level[gi*{lw} +: {lw}] = (cnt <<< 1) - {lw}'d{};\n        end\n    \
         endgenerate\nendmodule\n\n`default_nettype wire",
        lw - 1,
        p.levels - 1
    );
    s
}
