//! The cycle-level Rust twin of the folded Gram engine: runs a [`Program`] instruction by
//! instruction exactly as `kaq_gram_core` does (registers at their banks' widths, a 64-bit
//! accumulator per lane, P MAC repetitions a cycle — summed into one accumulator, or
//! elementwise on P accumulators for a wide instruction —, a division 2 + N_W + SHIFT cycles,
//! the loads and the pipeline's drain), and counts the cycles. Tested
//! equal to the golden model `kaq_ir::gram::GramInterpreter`, so the program is right before
//! any Verilog runs; the co-simulation then checks the RTL against the golden model directly.

use kaq_ir::fixed::divide;

use super::program::{Ins, Op, Program};

/// The engine's state between instructions.
#[derive(Debug, Clone)]
pub struct Engine<'p> {
    prog: &'p Program,
    /// The register file.
    pub regs: Vec<i64>,
    /// One accumulator per lane.
    acc: Vec<i64>,
    bucket: usize,
    bin: usize,
    /// The bank-entry selection offset (an oamp design's [`Op::Select`]).
    jofs: usize,
    /// Cycles run.
    pub cycles: u64,
    /// The largest |accumulator| any MAC reached (the 64-bit accumulator's headroom).
    pub acc_peak: u64,
    /// When `Some`, every register (and bucket) write of the programs as the tap port shows
    /// it: (ROM word, lane, value as stored).
    pub log: Option<Vec<(usize, usize, i64)>>,
    /// The ROM word running (none during the loads).
    word: Option<usize>,
}

fn finish(acc: i64, down: u32, satw: u32) -> i64 {
    let r = if down == 0 {
        acc
    } else {
        (acc + (1i64 << (down - 1))) >> down
    };
    if satw == 0 {
        r
    } else {
        let m = (1i64 << (satw - 1)) - 1;
        r.clamp(-m, m)
    }
}

impl<'p> Engine<'p> {
    /// A reset engine.
    pub fn new(prog: &'p Program) -> Self {
        Engine {
            prog,
            regs: vec![0; prog.map.count],
            acc: vec![0; prog.lanes],
            bucket: 0,
            bin: 0,
            jofs: 0,
            cycles: 0,
            acc_peak: 0,
            log: None,
            word: None,
        }
    }

    fn read(&self, r: usize) -> i64 {
        if r == self.prog.map.one {
            1
        } else {
            self.regs[r]
        }
    }

    /// Writes `v` into register `r` at its bank's width (two's complement, as the RTL).
    fn write(&mut self, r: usize, v: i64) {
        let w = self.prog.bank_w[self.prog.map.bank(r).min(3)];
        let sh = 64 - w;
        self.regs[r] = (v << sh) >> sh;
    }

    /// [`Engine::write`] of an instruction's result from `lane`, logged.
    fn put(&mut self, r: usize, v: i64, lane: usize) {
        self.write(r, v);
        if let (Some(log), Some(w)) = (self.log.as_mut(), self.word) {
            log.push((w, lane, self.regs[r]));
        }
    }

    fn mac(&mut self, ins: &Ins, k: usize) {
        let p = self.prog;
        let a = self.read(self.a_reg(ins) + k * ins.sa as usize);
        let bi = ins.b + k * ins.sb as usize;
        let b = if ins.b_const {
            p.consts[bi + if ins.b_bin { self.bin } else { 0 }]
        } else {
            self.read(bi)
        };
        let prod = if ins.a == p.map.one {
            b
        } else {
            let fits = |v: i64, w: u32| (v << (64 - w)) >> (64 - w) == v;
            assert!(
                fits(a, p.mul_w[0]) && fits(b, p.mul_w[1]),
                "a multiplier operand exceeds its port"
            );
            a.wrapping_mul(b)
        };
        let (sh, down) = p.shift_of(ins, self.bin);
        let term = prod.wrapping_shl(sh);
        // A wide instruction's repetition k on lane k's accumulator, writing dest + k; else
        // every repetition into accumulator `lane` (the lanes' products summed: the same
        // integer in any order, the sum wrapping nowhere), finishing at the last.
        let (l, first, done, dest) = if ins.wide {
            (k, ins.first, ins.last, ins.dest + k)
        } else {
            (
                ins.lane,
                ins.first && k == 0,
                ins.last && k + 1 == ins.rep as usize,
                ins.dest,
            )
        };
        let base = if first { 0 } else { self.acc[l] };
        self.acc[l] = if ins.neg {
            base.wrapping_sub(term)
        } else {
            base.wrapping_add(term)
        };
        self.acc_peak = self.acc_peak.max(self.acc[l].unsigned_abs());
        if done {
            self.put(dest, finish(self.acc[l], down, ins.satw), l);
        }
    }

    /// Operand a's first register: `a`, plus the selection offset with `a_sel`.
    fn a_reg(&self, ins: &Ins) -> usize {
        ins.a + if ins.a_sel { self.jofs } else { 0 }
    }

    fn step(&mut self, ins: &Ins) {
        let p = self.prog;
        let a = self.read(self.a_reg(ins));
        let b = if ins.b_const {
            p.consts[ins.b + if ins.b_bin { self.bin } else { 0 }]
        } else {
            self.read(ins.b)
        };
        match ins.op {
            Op::Mac => {
                for k in 0..ins.rep as usize {
                    self.mac(ins, k);
                }
            }
            Op::Max => self.put(ins.dest, a.max(b), ins.lane),
            Op::Div(k) => {
                let d = p.divider(k);
                let (r, o) = (d.rounding(), d.overflow());
                let q = divide(1, a, d.shift(), d.d_min(), r, o, d.out_width());
                self.put(ins.dest, q, ins.lane);
            }
            Op::Bucket => {
                self.bucket = p.thresholds.iter().filter(|&&t| a >= t).count();
                if let (Some(log), Some(w)) = (self.log.as_mut(), self.word) {
                    log.push((w, 0, self.bucket as i64));
                }
            }
            Op::Select => {
                let s = p
                    .sel
                    .as_ref()
                    .expect("a Select instruction has a selection");
                self.jofs = s.thresholds.iter().filter(|&&t| a < t).count() * s.stride;
            }
            Op::Lut => {
                // One look-up per lane, row k of the wide instruction on lane k.
                let half = 1i64 << (p.r_width - 1);
                for k in 0..ins.rep as usize {
                    let a = self.read(self.a_reg(ins) + k * ins.sa as usize);
                    let v = p.table[self.bucket][(a + half) as usize];
                    self.put(ins.dest + k, v, k);
                }
            }
        }
        self.cycles += p.cycles_of(ins);
    }

    /// Loads H̃ (row-major codes) and runs the block program.
    pub fn block(&mut self, h: &[i64], bin: usize) {
        let map = self.prog.map;
        for (k, &v) in h.iter().enumerate() {
            self.write(map.h + k, v);
        }
        // The drain (H̃'s M·N load cycles precede the block beat's acceptance).
        self.cycles += 1;
        self.bin = bin;
        for (w, ins) in self.prog.block.iter().enumerate() {
            self.word = Some(w);
            self.step(ins);
        }
        self.word = None;
    }

    /// Loads ỹ, runs the vector program and returns x⁽ᴷ⁾.
    pub fn vector(&mut self, y: &[i64]) -> Vec<i64> {
        let map = self.prog.map;
        for (k, &v) in y.iter().enumerate() {
            self.write(map.y + k, v);
        }
        self.cycles += self.prog.load_cycles() + 1;
        let base = self.prog.block.len();
        for (w, ins) in self.prog.vector.iter().enumerate() {
            self.word = Some(base + w);
            self.step(ins);
        }
        self.word = None;
        self.regs[map.x..map.x + self.prog.n].to_vec()
    }

    /// The alphabet level of state code `c` (the slicer).
    pub fn level(&self, c: i64) -> i32 {
        let i = self.prog.slicer.iter().filter(|&&t| c >= t).count() as i32;
        2 * i - (self.prog.levels as i32 - 1)
    }
}
