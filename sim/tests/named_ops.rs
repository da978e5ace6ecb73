//! `kaq_divide` and `kaq_isqrt` (docs/fixed-point.md §6) against their Rust twins
//! `kaq_ir::fixed::{divide, isqrt}`: every input of small cells (8-bit dividend × 6-bit divisor,
//! 10-bit radicand) at several shifts and divisor clamps, in all three rounding and all three
//! overflow modes, under Icarus; lint under Verilator at wider parameter sets.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use kaq_ir::fixed::{OverflowMode, RoundingMode, divide, isqrt};
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

/// Every rounding mode with every overflow mode.
fn modes() -> Vec<(RoundingMode, OverflowMode)> {
    RoundingMode::ALL
        .iter()
        .flat_map(|&r| OverflowMode::ALL.iter().map(move |&o| (r, o)))
        .collect()
}

/// Compiles `tb` with the cells under Icarus and returns the printed lines, as integers.
fn run_icarus(tb: &str, cells: &[&str]) -> Vec<Vec<i64>> {
    let dir = tempfile::tempdir().unwrap();
    let tb_path = dir.path().join("tb.v");
    std::fs::write(&tb_path, tb).unwrap();
    let vvp = dir.path().join("tb.vvp");
    let mut cmd = Command::new("iverilog");
    cmd.args(["-g2012", "-Wall", "-o"]).arg(&vvp).arg(&tb_path);
    for c in cells {
        cmd.arg(primitive(c));
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "iverilog: {err}"
    );
    let out = Command::new("vvp").arg("-n").arg(&vvp).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("finish"))
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect()
}

#[test]
fn divide_matches_rust_exhaustively_under_icarus() {
    if !present(Tool::Iverilog) {
        return;
    }
    const OUT_W: u32 = 6;
    // (SHIFT, D_MIN) per block of instances.
    let configs: [(u32, i64); 3] = [(0, 1), (3, 1), (5, 3)];
    let modes = modes();
    let mut tb = String::from("module tb;\n  reg signed [7:0] n; reg signed [5:0] d;\n");
    let mut names = Vec::new();
    for (c, &(shift, d_min)) in configs.iter().enumerate() {
        for (m, (r, o)) in modes.iter().enumerate() {
            let name = format!("y{c}_{m}");
            let _ = writeln!(
                tb,
                "  wire signed [{}:0] {name};\n  kaq_divide #(.N_W(8), .D_W(6), .SHIFT({shift}), \
                 .D_MIN(5'd{d_min}), .OUT_W({OUT_W}), .ROUNDING({}), .OVERFLOW({})) u{c}_{m} \
                 (.n(n), .d(d), .y({name}));",
                OUT_W - 1,
                r.verilog_code(),
                o.verilog_code()
            );
            names.push(name);
        }
    }
    let fmt = vec!["%0d"; names.len() + 2].join(" ");
    let _ = write!(
        tb,
        "  integer i, j;\n  initial begin\n    for (i = -128; i < 128; i = i + 1)\n      \
         for (j = -32; j < 32; j = j + 1) begin\n        n = i; d = j;\n        \
         #1 $display(\"{fmt}\", i, j, {});\n      end\n    $finish;\n  end\nendmodule\n",
        names.join(", ")
    );
    let rows = run_icarus(&tb, &["kaq_divide.v", "kaq_round_shift_sat.v"]);
    assert_eq!(
        rows.len(),
        256 * 64,
        "Icarus printed {} vectors",
        rows.len()
    );
    for v in rows {
        let (n, d) = (v[0], v[1]);
        for (c, &(shift, d_min)) in configs.iter().enumerate() {
            for (m, &(r, o)) in modes.iter().enumerate() {
                assert_eq!(
                    v[2 + c * modes.len() + m],
                    divide(n, d, shift, d_min, r, o, OUT_W),
                    "n {n} d {d} shift {shift} d_min {d_min} {r:?} {o:?}"
                );
            }
        }
    }
}

#[test]
fn isqrt_matches_rust_exhaustively_under_icarus() {
    if !present(Tool::Iverilog) {
        return;
    }
    // (SHIFT, OUT_W) per block of instances: odd and even radicand widths, a narrowing one.
    let configs: [(u32, u32); 3] = [(0, 7), (1, 7), (4, 5)];
    let modes = modes();
    let mut tb = String::from("module tb;\n  reg signed [9:0] x;\n");
    let mut names = Vec::new();
    for (c, &(shift, out_w)) in configs.iter().enumerate() {
        for (m, (r, o)) in modes.iter().enumerate() {
            let name = format!("y{c}_{m}");
            let _ = writeln!(
                tb,
                "  wire signed [{}:0] {name};\n  kaq_isqrt #(.X_W(10), .SHIFT({shift}), \
                 .OUT_W({out_w}), .ROUNDING({}), .OVERFLOW({})) u{c}_{m} (.x(x), .y({name}));",
                out_w - 1,
                r.verilog_code(),
                o.verilog_code()
            );
            names.push(name);
        }
    }
    let fmt = vec!["%0d"; names.len() + 1].join(" ");
    let _ = write!(
        tb,
        "  integer i;\n  initial begin\n    for (i = -512; i < 512; i = i + 1) begin\n      \
         x = i;\n      #1 $display(\"{fmt}\", i, {});\n    end\n    $finish;\n  end\nendmodule\n",
        names.join(", ")
    );
    let rows = run_icarus(&tb, &["kaq_isqrt.v", "kaq_round_shift_sat.v"]);
    assert_eq!(rows.len(), 1024, "Icarus printed {} vectors", rows.len());
    for v in rows {
        let x = v[0];
        for (c, &(shift, out_w)) in configs.iter().enumerate() {
            for (m, &(r, o)) in modes.iter().enumerate() {
                assert_eq!(
                    v[1 + c * modes.len() + m],
                    isqrt(x, shift, r, o, out_w),
                    "x {x} shift {shift} out_w {out_w} {r:?} {o:?}"
                );
            }
        }
    }
}

#[test]
fn named_ops_are_lint_clean() {
    if !present(Tool::Verilator) {
        return;
    }
    let cases: [(&str, &[&str]); 6] = [
        ("kaq_divide", &["-GSHIFT=0"]),
        (
            "kaq_divide",
            &[
                "-GN_W=24",
                "-GD_W=18",
                "-GSHIFT=12",
                "-GD_MIN=17'd5",
                "-GOUT_W=16",
                "-GROUNDING=2",
                "-GOVERFLOW=2",
            ],
        ),
        (
            "kaq_divide",
            &[
                "-GN_W=1",
                "-GD_W=2",
                "-GD_MIN=1'b1",
                "-GOUT_W=40",
                "-GROUNDING=1",
                "-GOVERFLOW=1",
            ],
        ),
        ("kaq_isqrt", &["-GSHIFT=0"]),
        (
            "kaq_isqrt",
            &[
                "-GX_W=24",
                "-GSHIFT=7",
                "-GOUT_W=12",
                "-GROUNDING=2",
                "-GOVERFLOW=2",
            ],
        ),
        (
            "kaq_isqrt",
            &["-GX_W=2", "-GOUT_W=1", "-GROUNDING=1", "-GOVERFLOW=1"],
        ),
    ];
    for (top, params) in cases {
        let out = Command::new("verilator")
            .args(["--lint-only", "-Wall", "--top-module", top])
            .args(params)
            .arg(primitive(&format!("{top}.v")))
            .arg(primitive("kaq_round_shift_sat.v"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !text.contains("%Warning"),
            "{top} {params:?}: {text}"
        );
    }
}
