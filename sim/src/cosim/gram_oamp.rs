//! Co-simulation of an IR v4 (oamp) design: the generated top
//! (`kaq_codegen::gram::oamp::program` on the Gram engine) under Verilator, driven through
//! the same channel-block interface as a cg design ([`super::gram`]) with random stalls on
//! every port, every output beat (x, the levels, the last-of-block flag) compared bit for bit
//! with the golden model `OampInterpreter`, and the measured cycles of every block and vector
//! recorded for the analytic cycle model.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use kaq_codegen::gram::verilog::{T_WIDTH, Widths};
use kaq_codegen::gram::{Program, oamp, sources_taps};
use kaq_ir::gram::oamp::{OampInterpreter, OampIr};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::driver::unpack_signed;
use super::gram::{GramBlock, GramReport, GramStalls};
use super::{CosimError, RESET_CYCLES};
use crate::model::Model;
use crate::port::Port;
use crate::verilate::{BuiltModel, VerilatorBuild};

/// A built oamp design and its golden model.
#[derive(Debug)]
pub struct OampRtl {
    prog: Program,
    golden: OampInterpreter,
    widths: Widths,
    built: BuiltModel,
    build_time: Duration,
}

impl OampRtl {
    /// Generates the design of `ir` on `lanes` (1 to 32) MAC lanes (top `kaq_top`, no tap
    /// port: the flow's RTL exactly) and builds it under Verilator.
    pub fn build(ir: &OampIr, lanes: usize, trace: bool) -> Result<Self, CosimError> {
        let start = Instant::now();
        let golden = OampInterpreter::new(ir.clone())?;
        let prog = oamp::program(ir, lanes);
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
        let mut build = VerilatorBuild::new(top)
            .trace(trace)
            .verilator_arg("--unroll-count")
            .verilator_arg("65536")
            .verilator_arg("--unroll-stmts")
            .verilator_arg("10000000");
        for (name, text) in sources_taps(&prog, top, false) {
            build = build.source_text(name, text);
        }
        let built = build.ports(ports).build()?;
        Ok(OampRtl {
            prog,
            golden,
            widths,
            built,
            build_time: start.elapsed(),
        })
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
    pub fn golden(&self) -> &OampInterpreter {
        &self.golden
    }

    /// Streams `blocks` through the design with `stalls` and compares every output beat with
    /// the golden model.
    pub fn run(&self, blocks: &[GramBlock], stalls: GramStalls) -> Result<GramReport, CosimError> {
        self.run_against(&self.golden, blocks, stalls)
    }

    /// [`OampRtl::run`] against `golden` (the design's golden model, or one of an altered IR
    /// to show that a difference is found).
    pub fn run_against(
        &self,
        golden: &OampInterpreter,
        blocks: &[GramBlock],
        stalls: GramStalls,
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
        let mut ys: VecDeque<Vec<u32>> = VecDeque::new();
        for b in blocks {
            let (_, taps) = golden.run_block_codes(&b.h, &b.ys, b.bin)?;
            let t = taps.len();
            for (k, v) in taps.into_iter().enumerate() {
                let x = v.layers.last().map(|l| l.x.clone()).unwrap_or_default();
                want.push_back((x, v.levels, k + 1 == t));
            }
            for y in b.ys.chunks(m) {
                let mut words = vec![0u32; (m * self.prog.y_width as usize).div_ceil(32).max(1)];
                super::driver::pack(y.iter().copied(), self.prog.y_width, &mut words);
                ys.push_back(words);
            }
        }
        let total = want.len();
        let mut model = Model::new(&self.built, stalls.seed)?;
        let blk_valid = model.port("blk_valid")?;
        let blk_ready = model.port("blk_ready")?;
        let blk_h = model.port("blk_h")?;
        let blk_t = model.port("blk_t")?;
        let blk_bin = model.port("blk_bin")?;
        let y_valid = model.port("y_valid")?;
        let y_ready_id = model.port("y_ready")?;
        let y_data = model.port("y_data")?;
        let out_valid = model.port("out_valid")?;
        let out_ready = model.port("out_ready")?;
        let out_x = model.port("out_x")?;
        let out_level = model.port("out_level")?;
        let out_last = model.port("out_last")?;
        let idle_id = model.port("idle")?;
        for id in [blk_valid, y_valid, out_ready] {
            model.set(id, 0)?;
        }
        model.reset(RESET_CYCLES)?;
        let mut rng = ChaCha8Rng::seed_from_u64(stalls.seed ^ 0x6f61_6d70);
        let mut report = GramReport {
            blocks: blocks.len(),
            ..GramReport::default()
        };
        let (sw, lw) = (self.prog.state_width, self.widths.lw);
        let mut h_on_port: Option<(usize, usize)> = None;
        let mut blk_code = 0usize;
        let mut y_on_port: Option<usize> = None;
        let mut y_sent = 0usize;
        let mut next_block = 0;
        let mut seen = 0usize;
        let mut block_at: Option<u64> = None;
        let mut vector_at: Option<u64> = None;
        let mut cycle: u64 = 0;
        let mut idle = 0u64;
        loop {
            let blk_v = next_block < blocks.len() && !rng.random_bool(stalls.block);
            if blk_v && h_on_port != Some((next_block, blk_code)) {
                let b = &blocks[next_block];
                model.set_signed(blk_h, b.h[blk_code])?;
                if blk_code == 0 {
                    model.set(blk_t, (b.ys.len() / m) as u64)?;
                    model.set(blk_bin, b.bin as u64)?;
                }
                h_on_port = Some((next_block, blk_code));
            }
            model.set(blk_valid, u64::from(blk_v))?;
            let y_v = !ys.is_empty() && !rng.random_bool(stalls.vector);
            if y_v && y_on_port != Some(y_sent) {
                model.set_wide(y_data, &ys[0])?;
                y_on_port = Some(y_sent);
            }
            model.set(y_valid, u64::from(y_v))?;
            let o_r = !rng.random_bool(stalls.output);
            model.set(out_ready, u64::from(o_r))?;
            model.eval();
            let b_ready = model.get(blk_ready)? == 1;
            if seen == total && next_block == blocks.len() && model.get(idle_id)? == 1 {
                break;
            }
            let blk_fire = blk_v && b_ready;
            let y_ready = model.get(y_ready_id)? == 1;
            let y_fire = y_v && y_ready;
            let o_valid = model.get(out_valid)? == 1;
            if y_ready && let Some(at) = block_at.take() {
                report.block_cycles.push(cycle - at - 1);
            }
            if o_valid && let Some(at) = vector_at.take() {
                report.vector_cycles.push(cycle - at - 1);
            }
            if o_valid && o_r {
                let x = unpack_signed(&model.get_wide(out_x)?, n, sw);
                let levels = unpack_signed(&model.get_wide(out_level)?, n, lw);
                let last = model.get(out_last)? == 1;
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
                    let t = blocks[next_block].ys.len() / m;
                    blk_code = 0;
                    next_block += 1;
                    if t > 0 {
                        block_at = Some(cycle);
                    }
                }
            }
            if y_fire {
                ys.pop_front();
                y_sent += 1;
                vector_at = Some(cycle);
            }
            if blk_fire || y_fire || (o_valid && o_r) {
                idle = 0;
            } else {
                idle += 1;
                if idle > 10_000_000 {
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
        Ok(report)
    }
}

/// `frames` frames of `ir`'s link in channel blocks of `block` frames, the blocks spread
/// evenly over the SNR points `snr_db`, quantized by the golden model's front end; the SNR
/// bin of each block from its noise variance (as [`super::gram::link_blocks`] for cg).
pub fn oamp_link_blocks(
    ir: &OampIr,
    frames: usize,
    block: usize,
    snr_db: &[f64],
    seed: u64,
) -> Result<Vec<GramBlock>, CosimError> {
    let golden = OampInterpreter::new(ir.clone())?;
    let link = kaq_model::link::LinkConfig::new(ir.nt, ir.nr, ir.modulation)?.with_block(block)?;
    let blocks = frames.div_ceil(block);
    let per_frame: Vec<f64> = (0..blocks)
        .flat_map(|b| std::iter::repeat_n(snr_db[b * snr_db.len() / blocks], block))
        .take(frames)
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let batch = link.generator()?.generate(&per_frame, &mut rng);
    let (m, n) = (ir.m, ir.n);
    let mut out = Vec::with_capacity(blocks);
    for b in 0..blocks {
        let first = b * block;
        let last = (first + block).min(frames);
        out.push(GramBlock {
            h: batch.h[first * m * n..(first + 1) * m * n]
                .iter()
                .map(|&v| golden.quantize_h(v as f32))
                .collect(),
            ys: batch.y[first * m..last * m]
                .iter()
                .map(|&v| golden.quantize_y(v as f32))
                .collect(),
            bin: ir.bin_of(batch.noise_var[first] as f32),
        });
    }
    Ok(out)
}
