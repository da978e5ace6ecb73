//! Co-simulation of an IR v4 (oamp) design: the generated top
//! (`kaq_codegen::gram::oamp::program` on the Gram engine) under Verilator, driven through
//! the same channel-block interface as a cg design ([`super::gram`]) with random stalls on
//! every port, every output beat (x, the levels, the last-of-block flag) compared bit for bit
//! with the golden model `OampInterpreter`, and the measured cycles of every block and vector
//! recorded for the analytic cycle model. Built with its tap port, every register write of
//! every run of a program (each stage's values: the bank's E, ι, L, W, V, Q_j, P, c, 1/c, S,
//! α_j, σ, a_j, b_j; each layer's e, W, v², g, γα_j, r, a_j v², τ², the bucket, the table
//! values, x) is compared with the write of the engine's Rust twin `kaq_codegen::gram::Engine`
//! (itself tested equal to the golden model), by ROM word and lane.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use kaq_codegen::gram::verilog::{T_WIDTH, Widths};
use kaq_codegen::gram::{Engine, Program, Tensor, oamp, sources_taps};
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
    taps: bool,
}

/// The twin's writes of one program run, checked against the tap port's.
struct TapTwin {
    /// Per ROM word, the writes (lane, value) still expected.
    want: Vec<Vec<(usize, i64)>>,
    /// What the run is, for the reports.
    run: String,
    compared: u64,
    count: u64,
    kept: Vec<String>,
}

impl TapTwin {
    fn new(words: usize) -> Self {
        TapTwin {
            want: vec![Vec::new(); words],
            run: String::new(),
            compared: 0,
            count: 0,
            kept: Vec::new(),
        }
    }

    fn fail(&mut self, what: String) {
        self.count += 1;
        if self.kept.len() < 8 {
            self.kept.push(what);
        }
    }

    /// Ends the current run (every expected write must have been seen) and starts `run`
    /// with the twin's `log`.
    fn start(&mut self, prog: &Program, run: String, log: &[(usize, usize, i64)]) {
        self.finish(prog);
        self.run = run;
        for &(w, lane, v) in log {
            self.want[w].push((lane, v));
        }
    }

    fn finish(&mut self, prog: &Program) {
        let missing: Vec<usize> = (0..self.want.len())
            .filter(|&w| !self.want[w].is_empty())
            .collect();
        for w in missing {
            let what = format!("{}: {} write(s) missing", self.run, self.want[w].len());
            self.want[w].clear();
            self.fail(format!("{what} ({})", label(prog, w)));
        }
    }

    fn write(&mut self, prog: &Program, pc: usize, lanes: u64, values: &[i64]) {
        for (l, &v) in values.iter().enumerate() {
            if lanes >> l & 1 == 0 {
                continue;
            }
            let at = self
                .want
                .get(pc)
                .and_then(|ws| ws.iter().position(|&(wl, _)| wl == l));
            match at {
                Some(i) => {
                    let (_, want) = self.want[pc].swap_remove(i);
                    self.compared += 1;
                    if v != want {
                        let what = format!(
                            "{} {}: rtl {v} twin {want} (lane {l})",
                            self.run,
                            label(prog, pc)
                        );
                        self.fail(what);
                    }
                }
                None => {
                    let what = format!("{}: unexpected write at word {pc} lane {l}", self.run);
                    self.fail(what);
                }
            }
        }
    }
}

/// The stage of ROM word `w`: its tensor, the bank entry (block) or layer (vector), the word.
fn label(prog: &Program, w: usize) -> String {
    let st = prog.stages[w];
    let name = match st.tensor {
        Tensor::Oamp(t) => t.name(),
        t => t.name(),
    };
    let scope = match (st.layer, w < prog.block.len()) {
        (Some(j), true) => format!(" entry {j}"),
        (Some(k), false) => format!(" layer {}", k + 1),
        (None, _) => String::new(),
    };
    format!("{name}{scope} (instruction {w})")
}

impl OampRtl {
    /// Generates the design of `ir` on `lanes` (1 to 32) MAC lanes (top `kaq_top`, no tap
    /// port: the flow's RTL exactly) and builds it under Verilator.
    pub fn build(ir: &OampIr, lanes: usize, trace: bool) -> Result<Self, CosimError> {
        Self::build_with(ir, lanes, trace, false)
    }

    /// [`OampRtl::build`], with the core's tap port when `taps`: a run then compares every
    /// register write with the Rust twin's.
    pub fn build_with(
        ir: &OampIr,
        lanes: usize,
        trace: bool,
        taps: bool,
    ) -> Result<Self, CosimError> {
        let start = Instant::now();
        let golden = OampInterpreter::new(ir.clone())?;
        let prog = oamp::program(ir, lanes);
        let widths = Widths::of(&prog);
        let top = "kaq_top";
        let (m, n) = (prog.m as u32, prog.n as u32);
        let mut ports = vec![
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
        if taps {
            ports.extend([
                Port::output("tap_valid", 1),
                Port::output("tap_pc", widths.pcw),
                Port::output("tap_lanes", prog.lanes as u32),
                Port::output("tap_data", 64 * prog.lanes as u32),
            ]);
        }
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
        Ok(OampRtl {
            prog,
            golden,
            widths,
            built,
            build_time: start.elapsed(),
            taps,
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
        let mut y_codes: VecDeque<Vec<i64>> = VecDeque::new();
        for b in blocks {
            let (_, taps) = golden.run_block_codes(&b.h, &b.ys, b.bin)?;
            let t = taps.len();
            for (k, v) in taps.into_iter().enumerate() {
                let x = v.layers.last().map(|l| l.x.clone()).unwrap_or_default();
                want.push_back((x, v.levels, k + 1 == t));
            }
            for y in b.ys.chunks(m) {
                y_codes.push_back(y.to_vec());
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
        let tap_ids = if self.taps {
            Some((
                model.port("tap_valid")?,
                model.port("tap_pc")?,
                model.port("tap_lanes")?,
                model.port("tap_data")?,
            ))
        } else {
            None
        };
        let words = self.prog.block.len() + self.prog.vector.len();
        let mut twin_taps = TapTwin::new(words);
        let mut twin = Engine::new(&self.prog);
        twin.log = Some(Vec::new());
        let mut tap_words = vec![0u32; 2 * self.prog.lanes];
        let mut tap_values = vec![0i64; self.prog.lanes];
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
            if let Some((tv, tpc, tl, td)) = tap_ids
                && model.get(tv)? == 1
            {
                let pc = model.get(tpc)? as usize;
                let lanes = model.get(tl)?;
                model.get_wide_into(td, &mut tap_words)?;
                for (v, w) in tap_values.iter_mut().zip(tap_words.chunks_exact(2)) {
                    *v = (u64::from(w[0]) | (u64::from(w[1]) << 32)) as i64;
                }
                twin_taps.write(&self.prog, pc, lanes, &tap_values);
            }
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
                    if tap_ids.is_some() {
                        let b = &blocks[next_block];
                        twin.log = Some(Vec::new());
                        twin.block(&b.h, b.bin);
                        let log = twin.log.take().unwrap_or_default();
                        twin_taps.start(&self.prog, format!("block {next_block}"), &log);
                    }
                    next_block += 1;
                    if t > 0 {
                        block_at = Some(cycle);
                    }
                }
            }
            if y_fire {
                if tap_ids.is_some() {
                    let y = y_codes.pop_front().expect("one per vector");
                    twin.log = Some(Vec::new());
                    twin.vector(&y);
                    let log = twin.log.take().unwrap_or_default();
                    twin_taps.start(&self.prog, format!("vector {y_sent}"), &log);
                }
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
        if tap_ids.is_some() {
            twin_taps.finish(&self.prog);
            report.taps = true;
            report.taps_compared = twin_taps.compared;
            report.tap_mismatch_count = twin_taps.count;
            report.tap_anomalies = twin_taps.kept;
        }
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
    let front = super::gram::Front {
        link: (ir.nt, ir.nr, ir.modulation),
        h: &|v| golden.quantize_h(v),
        y: &|v| golden.quantize_y(v),
        bin: &|noise_var| ir.bin_of(noise_var),
    };
    super::gram::blocks_through(&front, frames, block, snr_db, seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaq_model::gram::oamp_quant::{OampQuantOptions, lower_oamp};
    use kaq_model::gram::{Family, GramConfig, GramNet};
    use kaq_model::link::LinkConfig;
    use kaq_model::modulation::Modulation;

    /// The tap check counts a wrong value, a write no run lists and a listed write that
    /// never comes, and names the stage.
    #[test]
    fn the_tap_check_finds_wrong_missing_and_unexpected_writes() {
        let link = LinkConfig::new(1, 1, Modulation::Qpsk).unwrap();
        let net = GramNet::new(
            GramConfig {
                family: Family::Oamp,
                layers: 1,
                inner: 0,
            },
            &link,
        )
        .unwrap();
        let mut opts = OampQuantOptions::new(8);
        opts.calib_frames = 20;
        let ir = lower_oamp(&net, &opts).unwrap();
        let prog = oamp::program(&ir, 1);
        let mut twin = Engine::new(&prog);
        twin.log = Some(Vec::new());
        twin.block(&vec![3; ir.m * ir.n], 0);
        let log = twin.log.take().unwrap();
        let words = prog.block.len() + prog.vector.len();
        let mut check = TapTwin::new(words);
        check.start(&prog, "block 0".into(), &log);
        // Every write but the first two as the twin wrote it, the first one wrong, the
        // second never, then one the run does not list.
        for (k, &(w, lane, v)) in log.iter().enumerate() {
            let mut values = vec![0i64; 1];
            values[0] = if k == 0 { v + 1 } else { v };
            if k != 1 {
                check.write(&prog, w, 1 << lane, &values);
            }
        }
        check.write(&prog, log[0].0, 1, &[0]);
        check.finish(&prog);
        assert_eq!(check.count, 3, "{:?}", check.kept);
        assert_eq!(check.compared, log.len() as u64 - 1);
        assert!(check.kept[0].contains("rtl") && check.kept[0].contains("(instruction 0)"));
        assert!(check.kept.iter().any(|k| k.contains("unexpected")));
        assert!(check.kept.iter().any(|k| k.contains("missing")));
    }
}
