//! Co-simulation of an IR v2 (cg) design: the generated top (`kaq_codegen::gram`) under
//! Verilator, driven through its channel-block interface with random stalls on every port
//! (block beats, vector beats, output back-pressure), every output beat (x, the levels, the
//! last-of-block flag) compared bit for bit with the golden model `GramInterpreter`, every
//! stage's taps too when the design is built with its tap port ([`super::gram_taps`]: every
//! register write against the golden model's block and vector taps), and the measured cycles
//! of every block and vector checked equal to the analytic cycle model.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use kaq_codegen::gram::verilog::{T_WIDTH, Widths};
use kaq_codegen::gram::{Program, sources_taps};
use kaq_ir::gram::{BlockTaps, GramInterpreter, GramIr, VectorTaps};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::driver::unpack_signed;
use super::gram_taps::{GoldenBlock, Run, TapChecker, TapMismatch};
use super::{CosimError, RESET_CYCLES};
use crate::model::{Model, PortId};
use crate::port::Port;
use crate::verilate::{BuiltModel, VerilatorBuild};

/// One channel block: H̃ codes (row-major), T vectors ỹ (`T × M` codes), the SNR bin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GramBlock {
    /// H̃, `m × n` codes.
    pub h: Vec<i64>,
    /// The vectors, `T × m` codes.
    pub ys: Vec<i64>,
    /// The SNR bin.
    pub bin: usize,
}

/// Probabilities of withholding a valid (block, vector port) and of a low `out_ready`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GramStalls {
    /// Block port.
    pub block: f64,
    /// Vector port.
    pub vector: f64,
    /// Output back-pressure.
    pub output: f64,
    /// Seed of the stall pattern and of the model's random initial state.
    pub seed: u64,
}

/// What a run saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GramReport {
    /// Blocks run.
    pub blocks: usize,
    /// Vectors compared.
    pub vectors: usize,
    /// Every mismatch, described (empty when bit-exact).
    pub mismatches: Vec<String>,
    /// Cycles from the end of reset until the design is idle after the last block.
    pub cycles: u64,
    /// Measured cycles from each block beat's acceptance to `y_ready` (blocks with T ≥ 1).
    pub block_cycles: Vec<u64>,
    /// Measured cycles from each vector beat's acceptance to `out_valid`.
    pub vector_cycles: Vec<u64>,
    /// The RTL's decisions (alphabet levels, `n` per vector) in stream order.
    pub levels: Vec<i64>,
    /// Whether every stage's taps were compared (the design built with its tap port).
    pub taps: bool,
    /// Tap values compared with the golden model.
    pub taps_compared: u64,
    /// Tap mismatches and anomalies in all (0 when bit-exact).
    pub tap_mismatch_count: u64,
    /// The first differing tap values (at most [`super::gram_taps::MAX_KEPT`]), in stream
    /// order: a vector's first is the first its program wrote wrong.
    pub tap_mismatches: Vec<TapMismatch>,
    /// Writes that are not the generator's table's (missing, repeated, from other lanes),
    /// described (at most [`super::gram_taps::MAX_KEPT`]).
    pub tap_anomalies: Vec<String>,
}

/// A built v2 design and its golden model.
#[derive(Debug)]
pub struct GramRtl {
    prog: Program,
    golden: GramInterpreter,
    widths: Widths,
    built: BuiltModel,
    build_time: Duration,
    taps: bool,
    fast_forward: bool,
    tap_records: usize,
}

struct Ids {
    blk_valid: PortId,
    blk_ready: PortId,
    blk_h: PortId,
    blk_t: PortId,
    blk_bin: PortId,
    y_valid: PortId,
    y_ready: PortId,
    y_data: PortId,
    out_valid: PortId,
    out_ready: PortId,
    out_x: PortId,
    out_level: PortId,
    out_last: PortId,
    idle: PortId,
}

struct TapIds {
    valid: PortId,
    pc: PortId,
    lanes: PortId,
    data: PortId,
}

/// Packs `codes` of `w` bits each, first code least significant, into as many 32-bit words
/// as they fill (at least one): the driver's packing ([`super::driver::pack`]).
fn pack(codes: &[i64], w: u32) -> Vec<u32> {
    let mut words = vec![0u32; (codes.len() * w as usize).div_ceil(32).max(1)];
    super::driver::pack(codes.iter().copied(), w, &mut words);
    words
}

impl GramRtl {
    /// Generates the one-lane design of `ir` (top `kaq_top`) and builds it under Verilator.
    pub fn build(ir: &GramIr, trace: bool) -> Result<Self, CosimError> {
        Self::build_lanes(ir, 1, trace)
    }

    /// Generates the design of `ir` on `lanes` (≥ 1) MAC lanes (top `kaq_top`) with its tap
    /// port and builds it under Verilator: [`GramRtl::run`] compares every stage's taps.
    pub fn build_lanes(ir: &GramIr, lanes: usize, trace: bool) -> Result<Self, CosimError> {
        Self::build_with(ir, lanes, trace, true)
    }

    /// [`GramRtl::build_lanes`], the tap port on only with `taps` (without, only the outputs
    /// are compared; the design is then the flow's RTL exactly).
    pub fn build_with(
        ir: &GramIr,
        lanes: usize,
        trace: bool,
        taps: bool,
    ) -> Result<Self, CosimError> {
        let start = Instant::now();
        let golden = GramInterpreter::new(ir.clone())?;
        let prog = Program::with_lanes(ir, lanes);
        let widths = Widths::of(&prog);
        let top = "kaq_top";
        let (m, n) = (prog.m as u32, prog.n as u32);
        let ports = vec![
            Port::input("clk", 1),
            Port::input("rst", 1),
            Port::input("blk_valid", 1),
            Port::output("blk_ready", 1),
            Port::input("blk_h", prog.h_width),
            Port::input("blk_t", T_WIDTH),
            Port::input("blk_bin", widths.binw),
            Port::input("y_valid", 1),
            Port::output("y_ready", 1),
            Port::input("y_data", m * prog.y_width),
            Port::output("out_valid", 1),
            Port::input("out_ready", 1),
            Port::output("out_x", n * prog.state_width),
            Port::output("out_level", n * widths.lw),
            Port::output("out_last", 1),
            Port::output("idle", 1),
        ];
        let mut ports = ports;
        if taps {
            ports.extend([
                Port::output("tap_valid", 1),
                Port::output("tap_pc", widths.pcw),
                Port::output("tap_lanes", prog.lanes as u32),
                Port::output("tap_data", 64 * prog.lanes as u32),
            ]);
        }
        // The block beat loads H̃ (M·N registers) in one for loop: Verilator unrolls it only
        // above its default limits (64 iterations), else refuses it (BLKLOOPINIT) at 16×16.
        let mut build = VerilatorBuild::new(top)
            .trace(trace)
            .verilator_arg("--unroll-count")
            .verilator_arg("65536")
            .verilator_arg("--unroll-stmts")
            .verilator_arg("10000000");
        for (name, text) in sources_taps(&prog, top, taps) {
            build = build.source_text(name, text);
        }
        let built = build.ports(ports).build()?;
        Ok(GramRtl {
            prog,
            golden,
            widths,
            built,
            build_time: start.elapsed(),
            taps,
            fast_forward: true,
            tap_records: 1024,
        })
    }

    /// With `on` (the default) a run hands every stretch of cycles in which the design waits
    /// on no port to the shim in one call ([`Model::run_while_low`]: while `blk_ready`,
    /// `y_ready`, `out_valid` and `idle` are all low, which are registered, so no input can
    /// matter by the handshake rules), the tap port's writes of those cycles recorded there
    /// and checked in bulk, and the stall pattern's draws for them skipped: the run is the
    /// per-cycle one's exactly (same stalls, cycles, outputs and taps; a test compares the
    /// two). Off, every cycle is driven from Rust.
    pub fn with_fast_forward(mut self, on: bool) -> Self {
        self.fast_forward = on;
        self
    }

    /// Tap records (cycles that write) the shim keeps per free-running call (default 1024,
    /// at least 1): a stretch with more writes takes more calls, the run unchanged (a test
    /// shrinks it to cover that).
    pub fn with_tap_records(mut self, records: usize) -> Self {
        self.tap_records = records.max(1);
        self
    }

    /// Whether the design has its tap port (and a run compares every stage's taps).
    pub fn has_taps(&self) -> bool {
        self.taps
    }

    /// Tap values the generator's table lists for a block stage and for a vector: a run
    /// without stalls or mismatches compares `blocks × .0 + vectors × .1` of them.
    pub fn taps_per_run(&self) -> (u64, u64) {
        TapChecker::new(&self.prog).per_run()
    }

    /// The program (and so the analytic cycle model).
    pub fn program(&self) -> &Program {
        &self.prog
    }

    /// Wall time of the build (near zero on a cache hit).
    pub fn build_time(&self) -> Duration {
        self.build_time
    }

    /// The golden model the outputs are compared with (and whose front end quantizes).
    pub fn golden(&self) -> &GramInterpreter {
        &self.golden
    }

    /// Streams `blocks` through the design with `stalls` and compares every output beat and,
    /// with the tap port, every stage's taps with the golden model.
    pub fn run(&self, blocks: &[GramBlock], stalls: GramStalls) -> Result<GramReport, CosimError> {
        self.run_against(blocks, stalls, |_, b| {
            Ok(self.golden.run_block_codes(&b.h, &b.ys, b.bin)?)
        })
    }

    /// [`GramRtl::run`] against the golden taps `golden(k, block)` of block `k` (called
    /// twice a block: for the outputs first, for the taps when the block is taken) — the
    /// golden model's, or deliberately altered ones to show a difference is found and named.
    pub fn run_against(
        &self,
        blocks: &[GramBlock],
        stalls: GramStalls,
        mut golden: impl FnMut(usize, &GramBlock) -> Result<(BlockTaps, Vec<VectorTaps>), CosimError>,
    ) -> Result<GramReport, CosimError> {
        for (name, value) in [
            ("block stall", stalls.block),
            ("vector stall", stalls.vector),
            ("backpressure", stalls.output),
        ] {
            if !(0.0..1.0).contains(&value) {
                return Err(CosimError::Probability { name, value });
            }
        }
        let (m, n) = (self.prog.m, self.prog.n);
        // The golden outputs, in stream order: (x, levels, last).
        let mut want = VecDeque::new();
        let mut ys = VecDeque::new();
        // Per vector over the stream: (its block, its index in the block).
        let mut vector_of = Vec::new();
        for (bi, b) in blocks.iter().enumerate() {
            let (_, taps) = golden(bi, b)?;
            vector_of.extend((0..taps.len()).map(|k| (bi, k)));
            let t = taps.len();
            for (k, v) in taps.into_iter().enumerate() {
                want.push_back((v.output, v.levels, k + 1 == t));
            }
            for y in b.ys.chunks(m) {
                ys.push_back(pack(y, self.prog.y_width));
            }
        }
        let total = want.len();
        let mut model = Model::new(&self.built, stalls.seed)?;
        let port = |name: &str| model.port(name);
        let ids = Ids {
            blk_valid: port("blk_valid")?,
            blk_ready: port("blk_ready")?,
            blk_h: port("blk_h")?,
            blk_t: port("blk_t")?,
            blk_bin: port("blk_bin")?,
            y_valid: port("y_valid")?,
            y_ready: port("y_ready")?,
            y_data: port("y_data")?,
            out_valid: port("out_valid")?,
            out_ready: port("out_ready")?,
            out_x: port("out_x")?,
            out_level: port("out_level")?,
            out_last: port("out_last")?,
            idle: port("idle")?,
        };
        for id in [ids.blk_valid, ids.y_valid, ids.out_ready] {
            model.set(id, 0)?;
        }
        model.reset(RESET_CYCLES)?;
        let tap_ids = if self.taps {
            Some(TapIds {
                valid: model.port("tap_valid")?,
                pc: model.port("tap_pc")?,
                lanes: model.port("tap_lanes")?,
                data: model.port("tap_data")?,
            })
        } else {
            None
        };
        let stop = [ids.blk_ready, ids.y_ready, ids.out_valid, ids.idle];
        let capture = match &tap_ids {
            Some(t) => Some(model.capture(t.valid, &[t.pc, t.lanes, t.data])?),
            None => None,
        };
        let mut tap_buf =
            vec![0u32; capture.as_ref().map_or(0, |c| c.record_words()) * self.tap_records];
        let mut checker = TapChecker::new(&self.prog);
        let mut gold: Option<GoldenBlock> = None;
        let mut tap_words = vec![0u32; 2 * self.prog.lanes];
        let mut tap_values = vec![0i64; self.prog.lanes];
        let mut rng = ChaCha8Rng::seed_from_u64(stalls.seed ^ 0x6772_616d);
        let mut report = GramReport {
            blocks: blocks.len(),
            taps: self.taps,
            ..GramReport::default()
        };
        let (sw, lw) = (self.prog.state_width, self.widths.lw);
        // The block's code beat and the vector (counted from the first) on the data ports: a
        // port is written only when another beat goes on it, not every cycle a beat waits.
        let mut h_on_port: Option<(usize, usize)> = None;
        // The next H̃ code of the block being sent (its beats are its M·N codes, row-major).
        let mut blk_code = 0usize;
        let mut y_on_port: Option<usize> = None;
        let mut y_sent = 0usize;
        let mut next_block = 0;
        let mut seen = 0usize;
        // Cycle of the last block / vector acceptance still waiting for its ready / valid.
        let mut block_at: Option<u64> = None;
        let mut vector_at: Option<u64> = None;
        let mut cycle: u64 = 0;
        let mut idle = 0u64;
        loop {
            if self.fast_forward {
                // The cycles until the design waits on a port again (none if it does now),
                // at most up to the hang limit below.
                let budget = HANG_CYCLES.saturating_sub(idle);
                let (skipped, used) =
                    model.run_while_low(budget, &stop, capture.as_ref(), &mut tap_buf)?;
                if let Some(c) = &capture {
                    for rec in tap_buf[..used].chunks_exact(c.record_words()) {
                        let (pc, lanes) = (
                            rec[0] as usize,
                            u64::from(rec[2]) | (u64::from(rec[3]) << 32),
                        );
                        for (v, w) in tap_values.iter_mut().zip(rec[4..].chunks_exact(2)) {
                            *v = (u64::from(w[0]) | (u64::from(w[1]) << 32)) as i64;
                        }
                        checker.write(gold.as_ref(), pc, lanes, &tap_values);
                    }
                }
                // The stall draws those cycles would have made (none of them can fire).
                let draws = u64::from(next_block < blocks.len()) + u64::from(!ys.is_empty()) + 1;
                skip_draws(&mut rng, draws * skipped);
                cycle += skipped;
                idle += skipped;
            }
            // Drive this cycle's inputs.
            let blk_v = next_block < blocks.len() && !rng.random_bool(stalls.block);
            if blk_v && h_on_port != Some((next_block, blk_code)) {
                let b = &blocks[next_block];
                model.set_signed(ids.blk_h, b.h[blk_code])?;
                if blk_code == 0 {
                    model.set(ids.blk_t, (b.ys.len() / m) as u64)?;
                    model.set(ids.blk_bin, b.bin as u64)?;
                }
                h_on_port = Some((next_block, blk_code));
            }
            model.set(ids.blk_valid, u64::from(blk_v))?;
            let y_v = !ys.is_empty() && !rng.random_bool(stalls.vector);
            if y_v && y_on_port != Some(y_sent) {
                model.set_wide(ids.y_data, &ys[0])?;
                y_on_port = Some(y_sent);
            }
            model.set(ids.y_valid, u64::from(y_v))?;
            let o_r = !rng.random_bool(stalls.output);
            model.set(ids.out_ready, u64::from(o_r))?;
            model.eval();
            let blk_ready = model.get(ids.blk_ready)? == 1;
            // Done when every output is taken, every block sent and the design idle again.
            if seen == total && next_block == blocks.len() && model.get(ids.idle)? == 1 {
                break;
            }
            let blk_fire = blk_v && blk_ready;
            let y_ready = model.get(ids.y_ready)? == 1;
            let y_fire = y_v && y_ready;
            let o_valid = model.get(ids.out_valid)? == 1;
            if let Some(t) = &tap_ids
                && model.get(t.valid)? == 1
            {
                let pc = model.get(t.pc)? as usize;
                let lanes = model.get(t.lanes)?;
                model.get_wide_into(t.data, &mut tap_words)?;
                for (v, w) in tap_values.iter_mut().zip(tap_words.chunks_exact(2)) {
                    *v = (u64::from(w[0]) | (u64::from(w[1]) << 32)) as i64;
                }
                checker.write(gold.as_ref(), pc, lanes, &tap_values);
            }
            // Cycles strictly between the accepting cycle and the first ready / valid one.
            if y_ready && let Some(at) = block_at.take() {
                report.block_cycles.push(cycle - at - 1);
            }
            if o_valid && let Some(at) = vector_at.take() {
                report.vector_cycles.push(cycle - at - 1);
            }
            if o_valid && o_r {
                let x = unpack_signed(&model.get_wide(ids.out_x)?, n, sw);
                let levels = unpack_signed(&model.get_wide(ids.out_level)?, n, lw);
                let last = model.get(ids.out_last)? == 1;
                report.levels.extend_from_slice(&levels);
                let (wx, wl, wlast) = want.pop_front().expect("counted");
                let wl: Vec<i64> = wl.iter().map(|&l| i64::from(l)).collect();
                if x != wx || levels != wl || last != wlast {
                    report.mismatches.push(format!(
                        "vector {seen}: x {x:?} levels {levels:?} last {last}, golden x {wx:?} \
                         levels {wl:?} last {wlast}"
                    ));
                }
                seen += 1;
            }
            if blk_fire {
                blk_code += 1;
                if blk_code == blocks[next_block].h.len() {
                    // The block is taken with its last code.
                    let t = blocks[next_block].ys.len() / m;
                    blk_code = 0;
                    if tap_ids.is_some() {
                        let b = &blocks[next_block];
                        let (bt, vt) = golden(next_block, b)?;
                        gold = Some(GoldenBlock::new(
                            self.golden.ir(),
                            &self.prog,
                            bt,
                            vt,
                            b.bin,
                        ));
                        checker.start(Some(Run::Block(next_block)));
                    }
                    next_block += 1;
                    if t > 0 {
                        block_at = Some(cycle);
                    }
                }
            }
            if y_fire {
                if tap_ids.is_some() {
                    let (b, k) = vector_of[y_sent];
                    checker.start(Some(Run::Vector { v: y_sent, b, k }));
                }
                ys.pop_front();
                y_sent += 1;
                vector_at = Some(cycle);
            }
            if blk_fire || y_fire || (o_valid && o_r) {
                idle = 0;
            } else {
                idle += 1;
                if idle > HANG_CYCLES {
                    return Err(CosimError::Hang {
                        cycles: idle,
                        at: cycle,
                        accepted: (total - ys.len()) as u64,
                        emitted: seen as u64,
                    });
                }
            }
            model.tick()?;
            cycle += 1;
        }
        report.vectors = seen;
        report.cycles = cycle;
        if tap_ids.is_some() {
            checker.start(None);
            report.taps_compared = checker.compared;
            report.tap_mismatch_count = checker.count;
            report.tap_mismatches = checker.mismatches;
            report.tap_anomalies = checker.anomalies;
        }
        Ok(report)
    }
}

/// Cycles without a handshake after which a run is a hang.
const HANG_CYCLES: u64 = 1_000_000;

/// Advances `rng` past `draws` calls of `random_bool` (each takes one `u64`, two words, for
/// any probability below 1).
fn skip_draws(rng: &mut ChaCha8Rng, draws: u64) {
    if draws > 0 {
        rng.set_word_pos(rng.get_word_pos() + 2 * u128::from(draws));
    }
}

/// `frames` frames of `ir`'s link in channel blocks of `block` frames (block fading), the
/// blocks spread evenly over the SNR points `snr_db`, quantized by the golden model's front
/// end; the SNR bin of each block from its noise variance (docs/ir.md §10.2).
pub fn link_blocks(
    ir: &GramIr,
    frames: usize,
    block: usize,
    snr_db: &[f64],
    seed: u64,
) -> Result<Vec<GramBlock>, CosimError> {
    let golden = GramInterpreter::new(ir.clone())?;
    let front = Front {
        link: (ir.nt, ir.nr, ir.modulation),
        h: &|v| golden.quantize_h(v),
        y: &|v| golden.quantize_y(v),
        bin: &|noise_var| ir.bin_of(noise_var),
    };
    blocks_through(&front, frames, block, snr_db, seed)
}

/// The golden model's front end of a Gram-engine design: its link (nt, nr, modulation), the
/// quantizers of H̃ and ỹ and the SNR bin of a noise variance.
pub(crate) struct Front<'a> {
    pub link: (usize, usize, kaq_ir::Modulation),
    pub h: &'a dyn Fn(f32) -> i64,
    pub y: &'a dyn Fn(f32) -> i64,
    pub bin: &'a dyn Fn(f32) -> usize,
}

/// [`link_blocks`] through any family's front end.
pub(crate) fn blocks_through(
    front: &Front<'_>,
    frames: usize,
    block: usize,
    snr_db: &[f64],
    seed: u64,
) -> Result<Vec<GramBlock>, CosimError> {
    let (nt, nr, modulation) = front.link;
    let link = kaq_model::link::LinkConfig::new(nt, nr, modulation)?.with_block(block)?;
    let blocks = frames.div_ceil(block);
    let per_frame: Vec<f64> = (0..blocks)
        .flat_map(|b| std::iter::repeat_n(snr_db[b * snr_db.len() / blocks], block))
        .take(frames)
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let batch = link.generator()?.generate(&per_frame, &mut rng);
    let (m, n) = (batch.m, batch.n);
    let mut out = Vec::with_capacity(blocks);
    for b in 0..blocks {
        let first = b * block;
        let last = (first + block).min(frames);
        out.push(GramBlock {
            h: batch.h[first * m * n..(first + 1) * m * n]
                .iter()
                .map(|&v| (front.h)(v as f32))
                .collect(),
            ys: batch.y[first * m..last * m]
                .iter()
                .map(|&v| (front.y)(v as f32))
                .collect(),
            bin: (front.bin)(batch.noise_var[first] as f32),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipping_draws_is_drawing_them() {
        for p in [0.0, 0.2, 0.6, 0.999] {
            for n in [0u64, 1, 3, 7, 8, 31, 32, 33, 1000] {
                let mut drawn = ChaCha8Rng::seed_from_u64(5);
                let mut skipped = drawn.clone();
                for _ in 0..n {
                    drawn.random_bool(p);
                }
                skip_draws(&mut skipped, n);
                let a: Vec<bool> = (0..100).map(|_| drawn.random_bool(p)).collect();
                let b: Vec<bool> = (0..100).map(|_| skipped.random_bool(p)).collect();
                assert_eq!(a, b, "p {p} n {n}");
            }
        }
    }
}
