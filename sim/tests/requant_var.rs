//! `kaq_requant_var` (requantization with a per-bin shift port) against its Rust twin
//! `kaq_ir::fixed::requantize`: every input of a 10-bit × 6-bit × 4-bit-shift cell in all
//! three rounding modes and all three overflow modes under Icarus, and lint under Verilator
//! at the widths the layer core uses.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use kaq_ir::fixed::{OverflowMode, RoundingMode, requantize};
use kaq_sim::tools::{Tool, require};

fn primitive(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../rtl-templates/primitives")
        .join(file)
}

fn present(tool: Tool) -> bool {
    match require(tool) {
        Ok(Some(_)) => true,
        Ok(None) => {
            eprintln!("skipping: {tool} not found (set KAQ_REQUIRE_VERILATOR=1 to fail)");
            false
        }
        Err(e) => panic!("{e}"),
    }
}

const MODES: [(RoundingMode, OverflowMode); 3] = [
    (RoundingMode::HalfUp, OverflowMode::SaturateSymmetric),
    (RoundingMode::Floor, OverflowMode::Saturate),
    (RoundingMode::HalfEven, OverflowMode::Wrap),
];

/// Compiles the testbench `tb` with kaq_requant_var and kaq_round_shift_sat under Icarus in
/// `dir` and returns what it prints.
fn icarus(dir: &Path, tb: &str) -> String {
    let tb_path = dir.join("tb.v");
    std::fs::write(&tb_path, tb).unwrap();
    let vvp = dir.join("tb.vvp");
    let status = Command::new("iverilog")
        .args(["-g2012", "-Wall", "-o"])
        .arg(&vvp)
        .arg(&tb_path)
        .arg(primitive("kaq_requant_var.v"))
        .arg(primitive("kaq_round_shift_sat.v"))
        .status()
        .unwrap();
    assert!(status.success(), "iverilog failed");
    let out = Command::new("vvp").arg("-n").arg(&vvp).output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn requant_var_matches_rust_exhaustively_under_icarus() {
    if !present(Tool::Iverilog) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut tb =
        String::from("module tb;\n  reg signed [9:0] x; reg signed [5:0] m; reg [3:0] s;\n");
    for (i, (r, o)) in MODES.iter().enumerate() {
        let _ = writeln!(
            tb,
            "  wire signed [5:0] y{i};\n  kaq_requant_var #(.IN_W(10), .MULT_W(6), .SHIFT_W(4), .OUT_W(6), \
             .ROUNDING({}), .OVERFLOW({})) u{i} (.en(1'b1), .x(x), .mult(m), .shift(s), .y(y{i}));",
            r.verilog_code(),
            o.verilog_code()
        );
    }
    tb.push_str(
        "  integer i, j, k;\n  initial begin\n    for (i = -512; i < 512; i = i + 1)\n      \
         for (j = -32; j < 32; j = j + 3)\n        for (k = 0; k < 16; k = k + 1) begin\n          \
         x = i; m = j; s = k; #1 $display(\"%0d %0d %0d %0d %0d %0d\", i, j, k, y0, y1, y2);\n        \
         end\n    $finish;\n  end\nendmodule\n",
    );
    let text = icarus(dir.path(), &tb);
    let mut lines = 0;
    for line in text.lines().filter(|l| !l.contains("finish")) {
        let v: Vec<i64> = line
            .split_whitespace()
            .map(|t| t.parse().unwrap())
            .collect();
        let (x, m, s) = (v[0], v[1], v[2] as u32);
        for (i, (r, o)) in MODES.iter().enumerate() {
            assert_eq!(
                v[3 + i],
                requantize(x, m, s, *r, *o, 6),
                "x {x} mult {m} shift {s} {r:?} {o:?}"
            );
        }
        lines += 1;
    }
    assert_eq!(lines, 1024 * 22 * 16, "Icarus printed {lines} vectors");
}

/// With the shift's range given (`SHIFT_MIN`..`SHIFT_MAX`, a constant shift by the minimum
/// and a narrow variable one for half-up and floor rounding), every input whose shift lies in
/// the range still matches the Rust twin.
#[test]
fn requant_var_with_a_shift_range_matches_rust_under_icarus() {
    if !present(Tool::Iverilog) {
        return;
    }
    const RANGES: [(u32, u32); 4] = [(1, 1), (3, 11), (1, 15), (0, 9)];
    let dir = tempfile::tempdir().unwrap();
    let mut tb =
        String::from("module tb;\n  reg signed [9:0] x; reg signed [5:0] m; reg [3:0] s;\n");
    for (g, (lo, hi)) in RANGES.iter().enumerate() {
        for (i, (r, o)) in MODES.iter().enumerate() {
            let _ = writeln!(
                tb,
                "  wire signed [5:0] y{g}_{i};\n  kaq_requant_var #(.IN_W(10), .MULT_W(6), \
                 .SHIFT_W(4), .OUT_W(6), .ROUNDING({}), .OVERFLOW({}), .SHIFT_MIN({lo}), \
                 .SHIFT_MAX({hi})) u{g}_{i} (.en(1'b1), .x(x), .mult(m), .shift(s), .y(y{g}_{i}));",
                r.verilog_code(),
                o.verilog_code()
            );
        }
    }
    tb.push_str("  integer i, j, k;\n  initial begin\n");
    for (g, (lo, hi)) in RANGES.iter().enumerate() {
        let _ = writeln!(
            tb,
            "    for (i = -512; i < 512; i = i + 1)\n      for (j = -32; j < 32; j = j + 5)\n        \
             for (k = {lo}; k <= {hi}; k = k + 1) begin\n          x = i; m = j; s = k; #1 \
             $display(\"%0d %0d %0d %0d %0d %0d %0d\", {g}, i, j, k, y{g}_0, y{g}_1, y{g}_2);\n        \
             end"
        );
    }
    tb.push_str("    $finish;\n  end\nendmodule\n");
    let text = icarus(dir.path(), &tb);
    let mut lines = 0;
    for line in text.lines().filter(|l| !l.contains("finish")) {
        let v: Vec<i64> = line
            .split_whitespace()
            .map(|t| t.parse().unwrap())
            .collect();
        let (x, m, s) = (v[1], v[2], v[3] as u32);
        for (i, (r, o)) in MODES.iter().enumerate() {
            assert_eq!(
                v[4 + i],
                requantize(x, m, s, *r, *o, 6),
                "range {} x {x} mult {m} shift {s} {r:?} {o:?}",
                v[0]
            );
        }
        lines += 1;
    }
    let shifts: usize = RANGES.iter().map(|(lo, hi)| (hi - lo + 1) as usize).sum();
    assert_eq!(lines, 1024 * 13 * shifts, "Icarus printed {lines} vectors");
}

#[test]
fn requant_var_is_lint_clean() {
    if !present(Tool::Verilator) {
        return;
    }
    for (in_w, mult_w, out_w, rounding, overflow, smin, smax) in [
        (40, 24, 8, 0, 2, 0, 63),
        (16, 2, 4, 1, 0, 0, 63),
        (62, 32, 12, 2, 1, 0, 63),
        (35, 24, 8, 0, 2, 30, 46),
        (35, 24, 8, 1, 0, 45, 45),
    ] {
        let out = Command::new("verilator")
            .args(["--lint-only", "-Wall", "--top-module", "kaq_requant_var"])
            .arg(format!("-GIN_W={in_w}"))
            .arg(format!("-GMULT_W={mult_w}"))
            .arg(format!("-GOUT_W={out_w}"))
            .arg(format!("-GROUNDING={rounding}"))
            .arg(format!("-GOVERFLOW={overflow}"))
            .arg(format!("-GSHIFT_MIN={smin}"))
            .arg(format!("-GSHIFT_MAX={smax}"))
            .arg(primitive("kaq_requant_var.v"))
            .arg(primitive("kaq_round_shift_sat.v"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !text.contains("%Warning"), "{text}");
    }
}
