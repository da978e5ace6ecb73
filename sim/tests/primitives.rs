//! The hand-written RTL primitives of `rtl-templates/primitives/` against the normative Rust
//! arithmetic of `kaq_ir::fixed`, bit for bit.
//!
//! Each test writes one Verilog testbench holding many parameterized instances, runs it under
//! Icarus (and once under Verilator), and compares every `$display`ed line with the Rust
//! primitive. Combinational cells are swept over every input where that is small, else driven
//! by seeded random codes with the extreme ones mixed in; the MAC lane gets a seeded random
//! stimulus with resets, clears, holds and extreme codes. Every test uses its own temporary
//! directory. A missing tool skips the test, or fails it under `KAQ_REQUIRE_VERILATOR=1`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use kaq_ir::fixed::{
    OverflowMode, RoundingMode, fits, mac, max_code, min_code, overflow, requantize,
    requantize_wide, round_shift, wrap,
};
use kaq_model::Modulation;
use kaq_sim::tools::{Tool, require};

const ROUND_SHIFT_SAT: &str = "kaq_round_shift_sat.v";
const REQUANT: &str = "kaq_requant.v";
const MAC_LANE: &str = "kaq_mac_lane.v";
const AFFINE_REQUANT: &str = "kaq_affine_requant.v";
const PROX_PWL: &str = "kaq_prox_pwl.v";
const LUT: &str = "kaq_lut.v";
const SLICER: &str = "kaq_slicer.v";

fn primitive(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../rtl-templates/primitives")
        .join(file)
}

/// Whether every tool is present; `false` skips the test, a required but missing tool panics.
fn tools_present(tools: &[Tool]) -> bool {
    for &tool in tools {
        match require(tool) {
            Ok(Some(_)) => {}
            Ok(None) => {
                eprintln!("skipping: {tool} not found (set KAQ_REQUIRE_VERILATOR=1 to fail)");
                return false;
            }
            Err(e) => panic!("{e}"),
        }
    }
    true
}

/// A small deterministic generator (SplitMix64) for stimulus.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A signed `w`-bit code; one draw in four is an extreme code (min, max, −1, 0, 1).
    fn code(&mut self, w: u32) -> i64 {
        let r = self.next();
        if r.is_multiple_of(4) {
            let extremes = [min_code(w), max_code(w), -1, 0, wrap(1, w)];
            extremes[(r / 4 % 5) as usize]
        } else {
            wrap((r >> 2) as i64, w)
        }
    }
}

/// The two's-complement bits of `v` in `w` bits.
fn bits(v: i64, w: u32) -> u128 {
    u128::from((v as u64) & (u64::MAX >> (64 - w)))
}

/// The hex digits of the concatenation of `fields` (code, width), first field most significant
/// (kaq-codegen's packing, which takes the first field least significant).
fn hex_word(fields: &[(i64, u32)]) -> String {
    let low_first: Vec<(i64, u32)> = fields.iter().rev().copied().collect();
    kaq_codegen::literal::hex_digits(&low_first)
}

/// One testbench under construction: declarations and one sequential `initial` body.
struct Bench {
    dir: PathBuf,
    decls: String,
    body: String,
}

impl Bench {
    fn new(dir: &Path) -> Self {
        Bench {
            dir: dir.to_path_buf(),
            decls: String::new(),
            body: String::new(),
        }
    }

    /// Writes `words` (hex, one per line) to a stimulus file and declares the memory `name`
    /// loaded from it by absolute path.
    fn memory(&mut self, name: &str, width: u32, words: &[String]) {
        let path = self.dir.join(format!("{name}.mem"));
        std::fs::write(&path, words.join("\n") + "\n").expect("write stimulus");
        let _ = writeln!(
            self.decls,
            "  reg [{}:0] {name} [0:{}];\n  initial $readmemh(\"{}\", {name});",
            width - 1,
            words.len() - 1,
            path.display()
        );
    }

    /// Declares `reg signed` inputs `fields` (name, width) and appends a loop that applies each
    /// of `vectors` (one code per field) from a stimulus memory and displays the tag, the
    /// inputs and then `outputs`.
    fn drive(
        &mut self,
        tag: usize,
        fields: &[(String, u32)],
        vectors: &[Vec<i64>],
        outputs: &[String],
    ) {
        let width: u32 = fields.iter().map(|(_, w)| w).sum();
        for (name, w) in fields {
            let _ = writeln!(self.decls, "  reg signed [{}:0] {name};", w - 1);
        }
        let words: Vec<String> = vectors
            .iter()
            .map(|v| {
                let coded: Vec<(i64, u32)> =
                    v.iter().zip(fields).map(|(&x, (_, w))| (x, *w)).collect();
                hex_word(&coded)
            })
            .collect();
        self.memory(&format!("stim{tag}"), width, &words);
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        let shown: Vec<&str> = names
            .iter()
            .copied()
            .chain(outputs.iter().map(String::as_str))
            .collect();
        let _ = writeln!(
            self.body,
            "    for (i = 0; i < {}; i = i + 1) begin\n      {{{}}} = stim{tag}[i];\n      #1;\n      \
             $display(\"{tag}{}\", {});\n    end",
            words.len(),
            names.join(", "),
            " %0d".repeat(shown.len()),
            shown.join(", ")
        );
    }

    fn finish(self) -> String {
        format!(
            "`default_nettype none\nmodule tb;\n  integer i;\n  integer j;\n{}  initial begin\n{}    $finish;\n  end\nendmodule\n",
            self.decls, self.body
        )
    }
}

/// A `kaq_round_shift_sat` instance, swept over all 2^IN_W inputs.
#[derive(Debug, Clone, Copy)]
struct RoundShiftSat {
    in_w: u32,
    shift: u32,
    out_w: u32,
    rounding: RoundingMode,
    overflow: OverflowMode,
}

/// A `kaq_requant` instance, swept over all inputs and multipliers when `samples` is 0, else
/// over `samples` seeded random pairs.
#[derive(Debug, Clone, Copy)]
struct Requant {
    in_w: u32,
    mult_w: u32,
    shift: u32,
    out_w: u32,
    rounding: RoundingMode,
    overflow: OverflowMode,
    samples: usize,
    seed: u64,
}

/// A `kaq_mac_lane` instance driven for `cycles` clock cycles of seeded random stimulus.
#[derive(Debug, Clone, Copy)]
struct MacLane {
    a_w: u32,
    b_w: u32,
    acc_w: u32,
    cycles: usize,
    seed: u64,
}

/// A `kaq_affine_requant` instance, swept over every (a, mult, b) when `samples` is 0, else
/// over `samples` seeded random triples.
#[derive(Debug, Clone, Copy)]
struct AffineRequant {
    a_w: u32,
    mult_w: u32,
    b_w: u32,
    b_shift: u32,
    shift: u32,
    out_w: u32,
    rounding: RoundingMode,
    overflow: OverflowMode,
    samples: usize,
    seed: u64,
}

/// The two piecewise-linear prox kinds of `kaq_prox_pwl` (its `KIND` parameter).
#[derive(Debug, Clone, Copy)]
enum ProxKind {
    Soft,
    Box,
}

/// A `kaq_prox_pwl` instance, swept over every input when `samples` is 0, else over `samples`
/// seeded random codes plus the codes around ±PARAM.
#[derive(Debug, Clone, Copy)]
struct ProxPwl {
    w: u32,
    kind: ProxKind,
    param: i64,
    samples: usize,
    seed: u64,
}

/// A `kaq_lut` instance with a seeded random table, swept over every index.
#[derive(Debug, Clone, Copy)]
struct Lut {
    idx_w: u32,
    tw: u32,
    seed: u64,
}

/// A `kaq_slicer` instance driven by `samples` seeded random codes and threshold sets.
#[derive(Debug, Clone, Copy)]
struct Slicer {
    w: u32,
    levels: usize,
    tw: u32,
    samples: usize,
    seed: u64,
}

#[derive(Debug, Clone, Copy)]
enum Case {
    RoundShiftSat(RoundShiftSat),
    Requant(Requant),
    MacLane(MacLane),
    AffineRequant(AffineRequant),
    ProxPwl(ProxPwl),
    Lut(Lut),
    Slicer(Slicer),
}

/// One stimulus step of a MAC lane.
#[derive(Debug, Clone, Copy)]
struct MacStep {
    rst: bool,
    clear: bool,
    en: bool,
    a: i64,
    b: i64,
}

impl Requant {
    fn pairs(&self) -> Vec<(i64, i64)> {
        if self.samples == 0 {
            let mut pairs = Vec::new();
            for i in 0..1i64 << self.in_w {
                for j in 0..1i64 << self.mult_w {
                    pairs.push((wrap(i, self.in_w), wrap(j, self.mult_w)));
                }
            }
            pairs
        } else {
            let mut rng = SplitMix(self.seed);
            (0..self.samples)
                .map(|_| (rng.code(self.in_w), rng.code(self.mult_w)))
                .collect()
        }
    }
}

impl AffineRequant {
    fn vectors(&self) -> Vec<Vec<i64>> {
        if self.samples == 0 {
            let n = self.a_w + self.mult_w + self.b_w;
            (0..1i64 << n)
                .map(|i| {
                    vec![
                        wrap(i >> (self.mult_w + self.b_w), self.a_w),
                        wrap(i >> self.b_w, self.mult_w),
                        wrap(i, self.b_w),
                    ]
                })
                .collect()
        } else {
            let mut rng = SplitMix(self.seed);
            (0..self.samples)
                .map(|_| {
                    vec![
                        rng.code(self.a_w),
                        rng.code(self.mult_w),
                        rng.code(self.b_w),
                    ]
                })
                .collect()
        }
    }

    /// The Rust twin: the exact value, requantized by `requantize_wide`.
    fn model(&self, a: i64, mult: i64, b: i64) -> i64 {
        let exact = i128::from(a) * i128::from(mult) - (i128::from(b) << self.b_shift);
        requantize_wide(exact, self.shift, self.rounding, self.overflow, self.out_w)
    }
}

impl ProxPwl {
    fn vectors(&self) -> Vec<Vec<i64>> {
        let mut codes: Vec<i64> = if self.samples == 0 {
            (0..1i64 << self.w).map(|i| wrap(i, self.w)).collect()
        } else {
            let mut rng = SplitMix(self.seed);
            (0..self.samples).map(|_| rng.code(self.w)).collect()
        };
        if self.samples != 0 {
            let p = self.param;
            codes.extend(
                [p - 1, p, p + 1, -p - 1, -p, -p + 1]
                    .into_iter()
                    .filter(|&x| fits(x, self.w)),
            );
        }
        codes.into_iter().map(|x| vec![x]).collect()
    }

    /// The Rust twin: the interpreter's `prox` for `ProxStage::Soft { lambda }` and
    /// `ProxStage::Box { limit }` (model/src/ir/interp.rs).
    fn model(&self, x: i64) -> i64 {
        let p = self.param;
        match self.kind {
            ProxKind::Soft => x - x.clamp(-p, p),
            ProxKind::Box => x.clamp(-p, p),
        }
    }

    fn kind_code(&self) -> u32 {
        match self.kind {
            ProxKind::Soft => 0,
            ProxKind::Box => 1,
        }
    }
}

impl Lut {
    /// The table, entry 0 first.
    fn table(&self) -> Vec<i64> {
        let mut rng = SplitMix(self.seed);
        (0..1u32 << self.idx_w).map(|_| rng.code(self.tw)).collect()
    }

    /// The table as a concatenation of one sized literal per entry, entry 0 last (in the
    /// least significant bits). Icarus cannot lex one literal of the whole 2^12 × 32-bit table.
    fn literal(&self) -> String {
        let entries: Vec<String> = self
            .table()
            .iter()
            .rev()
            .map(|&e| format!("{}'h{:x}", self.tw, bits(e, self.tw)))
            .collect();
        format!("{{{}}}", entries.join(", "))
    }
}

impl Slicer {
    /// Vectors of code then thresholds t_0 .. t_{L−2}: ascending, except one set in eight in
    /// random order; one code in four equals a threshold when it fits the code width.
    fn vectors(&self) -> Vec<Vec<i64>> {
        let mut rng = SplitMix(self.seed);
        (0..self.samples)
            .map(|_| {
                let mut t: Vec<i64> = (1..self.levels).map(|_| rng.code(self.tw)).collect();
                let r = rng.next();
                if !r.is_multiple_of(8) {
                    t.sort_unstable();
                }
                let mut code = rng.code(self.w);
                let pick = t[(r / 8 % t.len() as u64) as usize];
                if (r / 64).is_multiple_of(4) && fits(pick, self.w) {
                    code = pick;
                }
                std::iter::once(code).chain(t).collect()
            })
            .collect()
    }

    /// The Rust twin: the level index of `Ir::level_index`, Gray-coded by
    /// `Modulation::gray_bits` of its level.
    fn model(&self, code: i64, thresholds: &[i64]) -> i64 {
        let modulation = match self.levels {
            2 => Modulation::Bpsk,
            4 => Modulation::Qam16,
            8 => Modulation::Qam64,
            l => panic!("{l} levels per dimension"),
        };
        assert_eq!(modulation.levels_per_dim(), self.levels);
        let i = thresholds.iter().filter(|&&t| code >= t).count();
        i64::from(modulation.gray_bits(modulation.level_of_index(i)))
    }

    fn bpd(&self) -> u32 {
        self.levels.trailing_zeros()
    }
}

impl MacLane {
    /// The stimulus and the accumulator the Rust model expects after each step. A step that
    /// would leave the accumulator width is turned into a clear, as the lowering guarantees.
    fn run(&self) -> Vec<(MacStep, i64)> {
        let mut rng = SplitMix(self.seed);
        let mut acc = 0i64;
        let mut out = Vec::with_capacity(self.cycles);
        for cycle in 0..self.cycles {
            let r = rng.next();
            let mut step = MacStep {
                rst: cycle == 0 || r.is_multiple_of(61),
                clear: r.is_multiple_of(7),
                en: !r.is_multiple_of(5),
                a: rng.code(self.a_w),
                b: rng.code(self.b_w),
            };
            let next = |s: &MacStep, acc: i64| -> Option<i64> {
                let base = if s.clear { 0 } else { acc };
                let (a, b) = if s.en { (s.a, s.b) } else { (0, 0) };
                let sum = i128::from(base) + i128::from(a) * i128::from(b);
                (sum >= i128::from(min_code(self.acc_w)) && sum <= i128::from(max_code(self.acc_w)))
                    .then(|| mac(base, a as i32, b as i32, self.acc_w))
            };
            acc = if step.rst {
                0
            } else if step.clear || step.en {
                match next(&step, acc) {
                    Some(v) => v,
                    None => {
                        step.clear = true;
                        next(&step, acc).expect("one product always fits ACC_W")
                    }
                }
            } else {
                acc
            };
            out.push((step, acc));
        }
        out
    }
}

impl Case {
    /// Declares the instance `u<tag>` and appends its stimulus; every output line starts
    /// with the tag.
    fn emit(&self, tag: usize, bench: &mut Bench) {
        match *self {
            Case::RoundShiftSat(c) => {
                let _ = writeln!(
                    bench.decls,
                    "  reg signed [{}:0] x{tag};\n  wire signed [{}:0] y{tag};\n  \
                     kaq_round_shift_sat #(.IN_W({}), .SHIFT({}), .OUT_W({}), .ROUNDING({}), .OVERFLOW({})) \
                     u{tag} (.x(x{tag}), .y(y{tag}));",
                    c.in_w - 1,
                    c.out_w - 1,
                    c.in_w,
                    c.shift,
                    c.out_w,
                    c.rounding.verilog_code(),
                    c.overflow.verilog_code()
                );
                let _ = writeln!(
                    bench.body,
                    "    for (i = 0; i < {n}; i = i + 1) begin\n      x{tag} = i[{m}:0];\n      #1;\n      \
                     $display(\"{tag} %0d %0d\", x{tag}, y{tag});\n    end",
                    n = 1u64 << c.in_w,
                    m = c.in_w - 1
                );
            }
            Case::Requant(c) => {
                let _ = writeln!(
                    bench.decls,
                    "  reg signed [{}:0] x{tag};\n  reg signed [{}:0] m{tag};\n  wire signed [{}:0] y{tag};\n  \
                     kaq_requant #(.IN_W({}), .MULT_W({}), .SHIFT({}), .OUT_W({}), .ROUNDING({}), .OVERFLOW({})) \
                     u{tag} (.x(x{tag}), .mult(m{tag}), .y(y{tag}));",
                    c.in_w - 1,
                    c.mult_w - 1,
                    c.out_w - 1,
                    c.in_w,
                    c.mult_w,
                    c.shift,
                    c.out_w,
                    c.rounding.verilog_code(),
                    c.overflow.verilog_code()
                );
                let show = format!(
                    "      #1;\n      $display(\"{tag} %0d %0d %0d\", x{tag}, m{tag}, y{tag});"
                );
                if c.samples == 0 {
                    let _ = writeln!(
                        bench.body,
                        "    for (i = 0; i < {}; i = i + 1) begin\n      for (j = 0; j < {}; j = j + 1) begin\n        \
                         x{tag} = i[{}:0];\n        m{tag} = j[{}:0];\n  {show}\n      end\n    end",
                        1u64 << c.in_w,
                        1u64 << c.mult_w,
                        c.in_w - 1,
                        c.mult_w - 1
                    );
                } else {
                    let words: Vec<String> = c
                        .pairs()
                        .into_iter()
                        .map(|(x, m)| {
                            format!("{:x}", bits(x, c.in_w) << c.mult_w | bits(m, c.mult_w))
                        })
                        .collect();
                    bench.memory(&format!("stim{tag}"), c.in_w + c.mult_w, &words);
                    let _ = writeln!(
                        bench.body,
                        "    for (i = 0; i < {}; i = i + 1) begin\n      {{x{tag}, m{tag}}} = stim{tag}[i];\n{show}\n    end",
                        words.len()
                    );
                }
            }
            Case::MacLane(c) => {
                let _ = writeln!(
                    bench.decls,
                    "  reg clk{tag} = 1'b0;\n  reg rst{tag};\n  reg clear{tag};\n  reg en{tag};\n  \
                     reg signed [{}:0] a{tag};\n  reg signed [{}:0] b{tag};\n  wire signed [{}:0] acc{tag};\n  \
                     kaq_mac_lane #(.A_W({}), .B_W({}), .ACC_W({})) u{tag} (.clk(clk{tag}), .rst(rst{tag}), \
                     .clear(clear{tag}), .en(en{tag}), .a(a{tag}), .b(b{tag}), .acc(acc{tag}));",
                    c.a_w - 1,
                    c.b_w - 1,
                    c.acc_w - 1,
                    c.a_w,
                    c.b_w,
                    c.acc_w
                );
                let words: Vec<String> = c
                    .run()
                    .into_iter()
                    .map(|(s, _)| {
                        let flags =
                            u128::from(s.rst) << 2 | u128::from(s.clear) << 1 | u128::from(s.en);
                        let word = (flags << c.a_w | bits(s.a, c.a_w)) << c.b_w | bits(s.b, c.b_w);
                        format!("{word:x}")
                    })
                    .collect();
                bench.memory(&format!("stim{tag}"), 3 + c.a_w + c.b_w, &words);
                let _ = writeln!(
                    bench.body,
                    "    for (i = 0; i < {}; i = i + 1) begin\n      \
                     {{rst{tag}, clear{tag}, en{tag}, a{tag}, b{tag}}} = stim{tag}[i];\n      \
                     #1 clk{tag} = 1'b1;\n      #1 clk{tag} = 1'b0;\n      $display(\"{tag} %0d\", acc{tag});\n    end",
                    words.len()
                );
            }
            Case::AffineRequant(c) => {
                bench.drive(
                    tag,
                    &[
                        (format!("a{tag}"), c.a_w),
                        (format!("m{tag}"), c.mult_w),
                        (format!("b{tag}"), c.b_w),
                    ],
                    &c.vectors(),
                    &[format!("y{tag}")],
                );
                let _ = writeln!(
                    bench.decls,
                    "  wire signed [{}:0] y{tag};\n  \
                     kaq_affine_requant #(.A_W({}), .MULT_W({}), .B_W({}), .B_SHIFT({}), .SHIFT({}), \
                     .OUT_W({}), .ROUNDING({}), .OVERFLOW({})) \
                     u{tag} (.a(a{tag}), .mult(m{tag}), .b(b{tag}), .y(y{tag}));",
                    c.out_w - 1,
                    c.a_w,
                    c.mult_w,
                    c.b_w,
                    c.b_shift,
                    c.shift,
                    c.out_w,
                    c.rounding.verilog_code(),
                    c.overflow.verilog_code()
                );
            }
            Case::ProxPwl(c) => {
                bench.drive(
                    tag,
                    &[(format!("x{tag}"), c.w)],
                    &c.vectors(),
                    &[format!("y{tag}")],
                );
                let _ = writeln!(
                    bench.decls,
                    "  wire signed [{}:0] y{tag};\n  \
                     kaq_prox_pwl #(.W({w}), .KIND({}), .PARAM({w}'d{})) u{tag} (.en(1'b1), .x(x{tag}), .y(y{tag}));",
                    c.w - 1,
                    c.kind_code(),
                    c.param,
                    w = c.w
                );
            }
            Case::Lut(c) => {
                let _ = writeln!(
                    bench.decls,
                    "  reg signed [{}:0] x{tag};\n  wire signed [{}:0] y{tag};\n  \
                     kaq_lut #(.IDX_W({}), .TW({}), .TABLE({})) u{tag} (.idx(x{tag}), .y(y{tag}));",
                    c.idx_w - 1,
                    c.tw - 1,
                    c.idx_w,
                    c.tw,
                    c.literal()
                );
                let _ = writeln!(
                    bench.body,
                    "    for (i = 0; i < {n}; i = i + 1) begin\n      x{tag} = i[{m}:0];\n      #1;\n      \
                     $display(\"{tag} %0d %0d\", x{tag}, y{tag});\n    end",
                    n = 1u64 << c.idx_w,
                    m = c.idx_w - 1
                );
            }
            Case::Slicer(c) => {
                let mut fields = vec![(format!("c{tag}"), c.w)];
                fields.extend((0..c.levels - 1).map(|j| (format!("t{tag}_{j}"), c.tw)));
                let packed: Vec<&str> = fields[1..].iter().rev().map(|(n, _)| n.as_str()).collect();
                bench.drive(tag, &fields, &c.vectors(), &[format!("g{tag}")]);
                let _ = writeln!(
                    bench.decls,
                    "  wire [{}:0] g{tag};\n  \
                     kaq_slicer #(.W({}), .LEVELS({}), .TW({}), .BPD({})) \
                     u{tag} (.en(1'b1), .code(c{tag}), .thresholds({{{}}}), .bits(g{tag}));",
                    c.bpd() - 1,
                    c.w,
                    c.levels,
                    c.tw,
                    c.bpd(),
                    packed.join(", ")
                );
            }
        }
    }

    /// The lines the Rust primitives predict, without the tag.
    fn expected(&self) -> Vec<Vec<i64>> {
        match *self {
            Case::RoundShiftSat(c) => (0..1i64 << c.in_w)
                .map(|i| {
                    let x = wrap(i, c.in_w);
                    let y = overflow(round_shift(x, c.shift, c.rounding), c.out_w, c.overflow);
                    vec![x, y]
                })
                .collect(),
            Case::Requant(c) => c
                .pairs()
                .into_iter()
                .map(|(x, m)| {
                    vec![
                        x,
                        m,
                        requantize(x, m, c.shift, c.rounding, c.overflow, c.out_w),
                    ]
                })
                .collect(),
            Case::MacLane(c) => c.run().into_iter().map(|(_, acc)| vec![acc]).collect(),
            Case::AffineRequant(c) => c
                .vectors()
                .into_iter()
                .map(|mut v| {
                    v.push(c.model(v[0], v[1], v[2]));
                    v
                })
                .collect(),
            Case::ProxPwl(c) => c
                .vectors()
                .into_iter()
                .map(|mut v| {
                    v.push(c.model(v[0]));
                    v
                })
                .collect(),
            Case::Lut(c) => {
                let table = c.table();
                let half = 1i64 << (c.idx_w - 1);
                (0..1i64 << c.idx_w)
                    .map(|i| {
                        let idx = wrap(i, c.idx_w);
                        vec![idx, table[(idx + half) as usize]]
                    })
                    .collect()
            }
            Case::Slicer(c) => c
                .vectors()
                .into_iter()
                .map(|mut v| {
                    v.push(c.model(v[0], &v[1..]));
                    v
                })
                .collect(),
        }
    }
}

enum Simulator {
    Icarus,
    Verilator,
}

/// Writes the testbench for `cases`, simulates it and checks every line of every case.
fn check_cases(simulator: Simulator, cases: &[Case]) {
    let tools: &[Tool] = match simulator {
        Simulator::Icarus => &[Tool::Iverilog, Tool::Vvp],
        Simulator::Verilator => &[Tool::Verilator],
    };
    if !tools_present(tools) {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut bench = Bench::new(dir.path());
    for (tag, case) in cases.iter().enumerate() {
        case.emit(tag, &mut bench);
    }
    let tb = dir.path().join("tb.v");
    std::fs::write(&tb, bench.finish()).expect("write testbench");
    let sources = [
        ROUND_SHIFT_SAT,
        REQUANT,
        MAC_LANE,
        AFFINE_REQUANT,
        PROX_PWL,
        LUT,
        SLICER,
    ]
    .map(primitive);
    let output = match simulator {
        Simulator::Icarus => {
            let image = dir.path().join("tb.vvp");
            run(Command::new("iverilog")
                .args(["-g2012", "-Wall", "-o"])
                .arg(&image)
                .arg(&tb)
                .args(&sources));
            run(Command::new("vvp").arg("-n").arg(&image))
        }
        Simulator::Verilator => {
            let obj = dir.path().join("obj");
            run(Command::new("verilator")
                .args(["--binary", "-j", "2", "-Wall", "--top-module", "tb"])
                // The bench runs for well under a second: compile the C++ for speed of building.
                .args([
                    "-MAKEFLAGS",
                    "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0",
                    "-Mdir",
                ])
                .arg(&obj)
                .arg(&tb)
                .args(&sources));
            run(&mut Command::new(obj.join("Vtb")))
        }
    };
    compare(cases, &output);
}

/// Runs a command, failing the test with its output unless it succeeds silently on stderr
/// (a warning is a failure).
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let noisy = stderr
        .lines()
        .any(|l| l.contains("arning") || l.contains("rror"));
    assert!(
        out.status.success() && !noisy,
        "{cmd:?} failed ({}):\n{stderr}\n{}",
        out.status,
        stdout.lines().take(20).collect::<Vec<_>>().join("\n")
    );
    stdout
}

fn compare(cases: &[Case], output: &str) {
    let mut got: BTreeMap<usize, Vec<Vec<i64>>> = BTreeMap::new();
    for line in output.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some((tag, values)) = fields.split_first() else {
            continue;
        };
        let (Ok(tag), Ok(values)) = (
            tag.parse::<usize>(),
            values
                .iter()
                .map(|v| v.parse::<i64>())
                .collect::<Result<Vec<_>, _>>(),
        ) else {
            // Simulator chatter such as Verilator's `- tb.v:…: Verilog $finish`.
            assert!(
                line.contains("$finish") || line.starts_with('-'),
                "unparsable line `{line}`"
            );
            continue;
        };
        got.entry(tag).or_default().push(values);
    }
    for (tag, case) in cases.iter().enumerate() {
        let want = case.expected();
        let have = got.remove(&tag).unwrap_or_default();
        let mismatches: Vec<String> = want
            .iter()
            .zip(&have)
            .enumerate()
            .filter(|(_, (w, h))| w != h)
            .take(5)
            .map(|(n, (w, h))| format!("line {n}: rust {w:?}, rtl {h:?}"))
            .collect();
        assert!(
            mismatches.is_empty() && want.len() == have.len(),
            "{case:?}: {} lines expected, {} simulated; first mismatches:\n{}",
            want.len(),
            have.len(),
            mismatches.join("\n")
        );
    }
    assert!(got.is_empty(), "lines with unknown tags: {:?}", got.keys());
}

/// Every SHIFT × OUT_W × ROUNDING × OVERFLOW of the matrix for one input width.
fn round_shift_sat_matrix(in_w: u32, shifts: &[u32], out_ws: &[u32]) -> Vec<Case> {
    let mut cases = Vec::new();
    for &shift in shifts {
        for &out_w in out_ws {
            for rounding in RoundingMode::ALL {
                for overflow in OverflowMode::ALL {
                    cases.push(Case::RoundShiftSat(RoundShiftSat {
                        in_w,
                        shift,
                        out_w,
                        rounding,
                        overflow,
                    }));
                }
            }
        }
    }
    cases
}

const SHIFTS: [u32; 4] = [0, 1, 3, 5];
const OUT_WS: [u32; 3] = [4, 6, 8];

#[test]
fn round_shift_sat_matches_rust_for_6_bit_inputs_under_icarus() {
    check_cases(
        Simulator::Icarus,
        &round_shift_sat_matrix(6, &SHIFTS, &OUT_WS),
    );
}

#[test]
fn round_shift_sat_matches_rust_for_8_bit_inputs_under_icarus() {
    check_cases(
        Simulator::Icarus,
        &round_shift_sat_matrix(8, &SHIFTS, &OUT_WS),
    );
}

#[test]
fn round_shift_sat_matches_rust_for_12_bit_inputs_under_icarus() {
    check_cases(
        Simulator::Icarus,
        &round_shift_sat_matrix(12, &SHIFTS, &OUT_WS),
    );
}

/// Corners of the parameter space: a 1-bit output, a shift beyond the input width, an output
/// wider than the working width, and OUT_W equal to it.
#[test]
fn round_shift_sat_matches_rust_at_parameter_corners_under_icarus() {
    let mut cases = round_shift_sat_matrix(3, &[0, 2, 3, 4, 7], &[1, 2, 3, 4, 9]);
    cases.extend(round_shift_sat_matrix(1, &[0, 1], &[1, 2]));
    check_cases(Simulator::Icarus, &cases);
}

fn requant_cases(samples: usize) -> Vec<Case> {
    let mut cases = Vec::new();
    for rounding in RoundingMode::ALL {
        for overflow in OverflowMode::ALL {
            // Exhaustive: every 7-bit x and every 5-bit multiplier.
            cases.push(Case::Requant(Requant {
                in_w: 7,
                mult_w: 5,
                shift: 4,
                out_w: 6,
                rounding,
                overflow,
                samples: 0,
                seed: 0,
            }));
            // Wide: a 24-bit accumulator, 16-bit multipliers, 12-bit shift, 8-bit result.
            cases.push(Case::Requant(Requant {
                in_w: 24,
                mult_w: 16,
                shift: 12 + rounding.verilog_code() * 7,
                out_w: 8,
                rounding,
                overflow,
                samples,
                seed: 17 + u64::from(overflow.verilog_code()),
            }));
        }
    }
    cases
}

#[test]
fn requant_matches_rust_under_icarus() {
    check_cases(Simulator::Icarus, &requant_cases(2000));
}

fn mac_cases(cycles: usize) -> Vec<Case> {
    [
        (8, 8, 16),
        (6, 5, 20),
        (16, 12, 40),
        (32, 32, 64),
        (3, 2, 5),
    ]
    .iter()
    .enumerate()
    .map(|(n, &(a_w, b_w, acc_w))| {
        Case::MacLane(MacLane {
            a_w,
            b_w,
            acc_w,
            cycles,
            seed: 1000 + n as u64,
        })
    })
    .collect()
}

#[test]
fn mac_lane_matches_rust_under_icarus() {
    check_cases(Simulator::Icarus, &mac_cases(3000));
}

/// Every ROUNDING × OVERFLOW for each (B_SHIFT, SHIFT, OUT_W) of `shapes`.
fn affine_requant_matrix(
    (a_w, mult_w, b_w): (u32, u32, u32),
    shapes: &[(u32, u32, u32)],
    samples: usize,
) -> Vec<Case> {
    let mut cases = Vec::new();
    for (n, &(b_shift, shift, out_w)) in shapes.iter().enumerate() {
        for rounding in RoundingMode::ALL {
            for overflow in OverflowMode::ALL {
                cases.push(Case::AffineRequant(AffineRequant {
                    a_w,
                    mult_w,
                    b_w,
                    b_shift,
                    shift,
                    out_w,
                    rounding,
                    overflow,
                    samples,
                    seed: 300
                        + 10 * n as u64
                        + u64::from(3 * rounding.verilog_code() + overflow.verilog_code()),
                }));
            }
        }
    }
    cases
}

/// Exhaustive: every 6-bit a, 4-bit multiplier and 4-bit b, with b unshifted, shifted below
/// and above the rounding shift, and outputs that do and do not saturate.
#[test]
fn affine_requant_matches_rust_exhaustively_under_icarus() {
    check_cases(
        Simulator::Icarus,
        &affine_requant_matrix((6, 4, 4), &[(0, 0, 10), (2, 3, 5), (6, 4, 4)], 0),
    );
}

/// Wide: 32-bit a and b, 24-bit multipliers, b shifted past the product (a 73-bit difference)
/// or below it, outputs of 16 and 8 bits.
#[test]
fn affine_requant_matches_rust_for_wide_operands_under_icarus() {
    check_cases(
        Simulator::Icarus,
        &affine_requant_matrix((32, 24, 32), &[(40, 50, 16), (12, 30, 8)], 1500),
    );
}

fn prox_cases(samples: usize) -> Vec<Case> {
    let mut cases = Vec::new();
    for kind in [ProxKind::Soft, ProxKind::Box] {
        // Exhaustive on 6 bits, PARAM from 0 past the largest code to 2^W − 1.
        for param in [0, 1, 5, 31, 32, 63] {
            cases.push(Case::ProxPwl(ProxPwl {
                w: 6,
                kind,
                param,
                samples: 0,
                seed: 0,
            }));
        }
        for (n, (w, param)) in [
            (17, 1000),
            (17, (1 << 17) - 1),
            (62, 0),
            (62, (1 << 40) + 3),
            (62, (1 << 61) - 1),
            (62, 1 << 61),
            (62, (1 << 62) - 1),
        ]
        .into_iter()
        .enumerate()
        {
            cases.push(Case::ProxPwl(ProxPwl {
                w,
                kind,
                param,
                samples,
                seed: 500 + n as u64,
            }));
        }
    }
    cases
}

#[test]
fn prox_pwl_matches_rust_under_icarus() {
    check_cases(Simulator::Icarus, &prox_cases(500));
}

fn lut_cases(full: bool) -> Vec<Case> {
    let mut shapes = vec![(1, 1), (1, 5), (2, 3), (4, 8), (8, 16), (6, 32)];
    if full {
        shapes.push((12, 32));
    }
    shapes
        .into_iter()
        .enumerate()
        .map(|(n, (idx_w, tw))| {
            Case::Lut(Lut {
                idx_w,
                tw,
                seed: 700 + n as u64,
            })
        })
        .collect()
}

#[test]
fn lut_matches_rust_under_icarus() {
    check_cases(Simulator::Icarus, &lut_cases(true));
}

fn slicer_cases(samples: usize) -> Vec<Case> {
    let mut cases = Vec::new();
    for levels in [2, 4, 8] {
        for (w, tw) in [(4, 4), (6, 3), (3, 7), (16, 16), (32, 20), (20, 32)] {
            cases.push(Case::Slicer(Slicer {
                w,
                levels,
                tw,
                samples,
                seed: 900 + cases.len() as u64,
            }));
        }
    }
    cases
}

#[test]
fn slicer_matches_rust_under_icarus() {
    check_cases(Simulator::Icarus, &slicer_cases(1000));
}

/// One Verilator build covering every primitive: the 8-bit round-shift matrix at two shifts,
/// the requantizers, the MAC lanes and a share of each newer cell's cases.
#[test]
fn primitives_match_rust_under_verilator() {
    let mut cases = round_shift_sat_matrix(8, &[0, 3], &[4, 8]);
    cases.extend(requant_cases(200));
    cases.extend(mac_cases(500));
    cases.extend(affine_requant_matrix((6, 4, 3), &[(2, 3, 5)], 0));
    cases.extend(affine_requant_matrix((32, 24, 32), &[(40, 50, 16)], 200));
    cases.extend(prox_cases(100));
    cases.extend(lut_cases(false));
    cases.extend(slicer_cases(200));
    check_cases(Simulator::Verilator, &cases);
}

/// `verilator --lint-only -Wall` prints nothing for each primitive under several parameter sets.
#[test]
fn primitives_are_lint_clean() {
    if !tools_present(&[Tool::Verilator]) {
        return;
    }
    let sets: &[(&str, &[&str], &[&str])] = &[
        (
            "kaq_round_shift_sat",
            &[ROUND_SHIFT_SAT],
            &[
                "IN_W=16 SHIFT=4 OUT_W=8 ROUNDING=0 OVERFLOW=0",
                "IN_W=8 SHIFT=3 OUT_W=4 ROUNDING=2 OVERFLOW=1",
                "IN_W=8 SHIFT=0 OUT_W=4 ROUNDING=2 OVERFLOW=2",
                "IN_W=6 SHIFT=1 OUT_W=8 ROUNDING=2 OVERFLOW=2",
                "IN_W=6 SHIFT=9 OUT_W=1 ROUNDING=0 OVERFLOW=2",
                "IN_W=12 SHIFT=5 OUT_W=7 ROUNDING=1 OVERFLOW=1",
                "IN_W=12 SHIFT=5 OUT_W=8 ROUNDING=1 OVERFLOW=0",
                "IN_W=40 SHIFT=20 OUT_W=16 ROUNDING=2 OVERFLOW=2",
            ],
        ),
        (
            "kaq_requant",
            &[REQUANT, ROUND_SHIFT_SAT],
            &[
                "IN_W=24 MULT_W=16 SHIFT=12 OUT_W=8 ROUNDING=0 OVERFLOW=0",
                "IN_W=7 MULT_W=5 SHIFT=4 OUT_W=6 ROUNDING=2 OVERFLOW=1",
                "IN_W=32 MULT_W=32 SHIFT=40 OUT_W=16 ROUNDING=1 OVERFLOW=2",
                "IN_W=8 MULT_W=2 SHIFT=0 OUT_W=12 ROUNDING=0 OVERFLOW=0",
            ],
        ),
        (
            "kaq_mac_lane",
            &[MAC_LANE],
            &[
                "A_W=8 B_W=8 ACC_W=24",
                "A_W=8 B_W=8 ACC_W=16",
                "A_W=32 B_W=32 ACC_W=64",
                "A_W=3 B_W=12 ACC_W=33",
            ],
        ),
        (
            "kaq_affine_requant",
            &[AFFINE_REQUANT, ROUND_SHIFT_SAT],
            &[
                "A_W=16 MULT_W=16 B_W=8 B_SHIFT=0 SHIFT=12 OUT_W=8 ROUNDING=0 OVERFLOW=0",
                "A_W=6 MULT_W=4 B_W=4 B_SHIFT=0 SHIFT=0 OUT_W=10 ROUNDING=1 OVERFLOW=1",
                "A_W=6 MULT_W=4 B_W=4 B_SHIFT=6 SHIFT=4 OUT_W=4 ROUNDING=2 OVERFLOW=2",
                "A_W=32 MULT_W=24 B_W=32 B_SHIFT=40 SHIFT=50 OUT_W=16 ROUNDING=2 OVERFLOW=1",
                "A_W=32 MULT_W=24 B_W=32 B_SHIFT=12 SHIFT=30 OUT_W=8 ROUNDING=0 OVERFLOW=2",
            ],
        ),
        (
            "kaq_prox_pwl",
            &[PROX_PWL],
            &[
                "W=16 KIND=0",
                "W=6 KIND=0 PARAM=6'd63",
                "W=6 KIND=1 PARAM=6'd5",
                "W=1 KIND=1 PARAM=1'd1",
                "W=17 KIND=0 PARAM=17'd1000",
                "W=62 KIND=0 PARAM=62'h3fffffffffffffff",
                "W=62 KIND=1 PARAM=62'h1000000000000003",
            ],
        ),
        (
            "kaq_lut",
            &[LUT],
            &[
                "IDX_W=4 TW=8",
                "IDX_W=1 TW=1 TABLE=2'b10",
                "IDX_W=1 TW=5",
                "IDX_W=2 TW=3 TABLE=12'habc",
                "IDX_W=4 TW=1",
                "IDX_W=8 TW=16",
                "IDX_W=12 TW=32",
            ],
        ),
        (
            "kaq_slicer",
            &[SLICER],
            &[
                "W=16 LEVELS=4 TW=16 BPD=2",
                "W=4 LEVELS=2 TW=4 BPD=1",
                "W=6 LEVELS=8 TW=3 BPD=3",
                "W=3 LEVELS=8 TW=7 BPD=3",
                "W=32 LEVELS=4 TW=20 BPD=2",
                "W=1 LEVELS=2 TW=1 BPD=1",
            ],
        ),
    ];
    for (top, files, param_sets) in sets {
        for params in *param_sets {
            let mut cmd = Command::new("verilator");
            cmd.args(["--lint-only", "-Wall", "--top-module", top]);
            cmd.args(params.split_whitespace().map(|p| format!("-G{p}")));
            cmd.args(files.iter().map(|f| primitive(f)));
            let out = cmd.output().expect("run verilator");
            assert!(
                out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
                "{top} with {params} is not lint-clean:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// An unknown ROUNDING, OVERFLOW or prox KIND code, a MAC accumulator narrower than its
/// product, or an unsupported slicer shape fails elaboration instead of building something
/// unspecified.
#[test]
fn invalid_parameters_fail_elaboration() {
    if !tools_present(&[Tool::Verilator]) {
        return;
    }
    let cases: &[(&str, &[&str], &str)] = &[
        ("kaq_round_shift_sat", &[ROUND_SHIFT_SAT], "ROUNDING=3"),
        ("kaq_round_shift_sat", &[ROUND_SHIFT_SAT], "OVERFLOW=3"),
        ("kaq_mac_lane", &[MAC_LANE], "ACC_W=15"),
        (
            "kaq_affine_requant",
            &[AFFINE_REQUANT, ROUND_SHIFT_SAT],
            "ROUNDING=3",
        ),
        (
            "kaq_affine_requant",
            &[AFFINE_REQUANT, ROUND_SHIFT_SAT],
            "OVERFLOW=3",
        ),
        ("kaq_prox_pwl", &[PROX_PWL], "KIND=2"),
        ("kaq_prox_pwl", &[PROX_PWL], "KIND=-1"),
        ("kaq_slicer", &[SLICER], "LEVELS=3"),
        ("kaq_slicer", &[SLICER], "BPD=3"),
        ("kaq_slicer", &[SLICER], "LEVELS=16"),
    ];
    for (top, files, param) in cases {
        let out = Command::new("verilator")
            .args(["--lint-only", "-Wall", "--top-module", top])
            .arg(format!("-G{param}"))
            .args(files.iter().map(|f| primitive(f)))
            .output()
            .expect("run verilator");
        assert!(!out.status.success(), "{top} accepted {param}");
    }
}

/// Each primitive synthesizes in Yosys (`synth -top …`) without a single latch.
#[test]
fn primitives_synthesize_without_latches() {
    if !tools_present(&[Tool::Yosys]) {
        return;
    }
    let sets: &[(&str, &[&str], &str)] = &[
        (
            "kaq_round_shift_sat",
            &[ROUND_SHIFT_SAT],
            "IN_W=12 SHIFT=5 OUT_W=6 ROUNDING=2 OVERFLOW=2",
        ),
        (
            "kaq_requant",
            &[REQUANT, ROUND_SHIFT_SAT],
            "IN_W=12 MULT_W=8 SHIFT=6 OUT_W=8 ROUNDING=0 OVERFLOW=0",
        ),
        ("kaq_mac_lane", &[MAC_LANE], "A_W=8 B_W=8 ACC_W=20"),
        (
            "kaq_affine_requant",
            &[AFFINE_REQUANT, ROUND_SHIFT_SAT],
            "A_W=12 MULT_W=8 B_W=8 B_SHIFT=6 SHIFT=6 OUT_W=8 ROUNDING=2 OVERFLOW=0",
        ),
        ("kaq_prox_pwl", &[PROX_PWL], "W=12 KIND=0 PARAM=100"),
        ("kaq_prox_pwl", &[PROX_PWL], "W=12 KIND=1 PARAM=100"),
        ("kaq_lut", &[LUT], "IDX_W=6 TW=8 TABLE=12345678901234567"),
        ("kaq_slicer", &[SLICER], "W=12 LEVELS=8 TW=10 BPD=3"),
    ];
    for (top, files, params) in sets {
        let read: Vec<String> = files
            .iter()
            .map(|f| format!("read_verilog {};", primitive(f).display()))
            .collect();
        let chparam: String = params
            .split_whitespace()
            .map(|p| format!(" -set {}", p.replace('=', " ")))
            .collect();
        let script = format!(
            "{} chparam{chparam} {top}; synth -top {top}; select -assert-none t:$dlatch t:$adlatch t:$_DLATCH_*",
            read.join(" ")
        );
        let out = Command::new("yosys")
            .args(["-q", "-p", &script])
            .output()
            .expect("run yosys");
        assert!(
            out.status.success(),
            "{top} with {params} failed synthesis or has latches:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
