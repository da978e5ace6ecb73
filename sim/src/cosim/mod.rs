//! Co-simulation of a generated design against the integer golden model (docs/rtl.md §Verification).
//!
//! - [`Rtl::build`] generates the design of an IR with kaq-codegen and builds it with
//!   [`VerilatorBuild`] under a generated wrapper top, `<top>_cosim`, that instantiates the
//!   design as `dut` and exposes every internal stage stream as extra output ports through
//!   hierarchical references (`assign t2_valid = dut.s2_valid;`): for stream k = 2..=K+1 (the
//!   output of layer k−1) `t{k}_valid`, `t{k}_ready`, `t{k}_x1` and, for ADMM-Net, `t{k}_s`
//!   and `t{k}_u`. The build is cached by content hash and safe to run from parallel tests.
//! - [`Driver`] resets a model and streams frames through it beat by beat with valid/ready,
//!   optionally with seeded random input stalls and output back-pressure; it records the cycle
//!   of each frame's beat-0 acceptance, its output's first valid cycle and its output transfer,
//!   and captures the layer states on the cycle each stage stream's beat 0 moves.
//! - [`Rtl::cosimulate`] / [`cosimulate`] compare every output (the codes `out_x` and the Gray
//!   bits `out_bits`) bit for bit with [`Interpreter::run_codes`]; a frame that differs is
//!   located through the taps at its first differing layer and element.
//! - [`RtlDetector`] is the RTL as a [`Detector`]: it quantizes with
//!   [`Interpreter::frame_codes`], runs every frame of the batch through the pipeline and maps
//!   the output bits to levels.
//!
//! Cycle numbering: cycle 0 is the first cycle after reset is released; an event "in cycle c"
//! was seen with the inputs of cycle c applied and settled, before the rising edge that ends
//! it. Latency is therefore `first valid cycle − beat-0 acceptance cycle`, as in
//! [`kaq_codegen::report::Totals::latency`].

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use kaq_codegen::report::{Totals, analyse};
use kaq_codegen::{CodegenError, Design, Generated, Options, cosim_wrapper, generate};
use kaq_ir::{Arch, Interpreter, Ir, IrError, Taps};
use kaq_model::detect::Detector;
use kaq_model::error::ModelError;
use kaq_model::link::{FrameBatch, LinkConfig, stream_rng};
use kaq_model::lower::LinkFrames;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

use crate::cache::CacheOutcome;
use crate::error::SimError;
use crate::model::{Model, PortId};
use crate::port::{Port, sign_extend};
use crate::verilate::{BuiltModel, VerilatorBuild};

/// Reset cycles before the first frame.
const RESET_CYCLES: u32 = 4;

/// Output beats whose cycles are kept for the timing figures (the first ones of a run).
const TIMING_FRAMES: usize = 1024;

/// Frames of the stall-free timing probe run when the main run has stalls.
const PROBE_FRAMES: usize = 32;

/// Errors of co-simulation.
#[derive(Debug, Error)]
pub enum CosimError {
    /// Building or driving the Verilator model.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// Generating the design.
    #[error("code generation: {0}")]
    Codegen(#[from] CodegenError),
    /// The golden model refused the IR or a frame.
    #[error("golden model: {0}")]
    Ir(#[from] IrError),
    /// Quantizing a frame batch.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A frame whose shape does not fit the design.
    #[error("frame {frame}: {reason}")]
    Frame {
        /// Index of the frame in the stream.
        frame: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A stall or back-pressure probability outside [0, 1).
    #[error("{name} = {value}: must be in [0, 1)")]
    Probability {
        /// Which probability.
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// The pipeline made no progress for too long (a hang in the RTL or the driver).
    #[error(
        "no transfer on any stream for {cycles} cycles at cycle {at} ({accepted} frames \
         accepted, {emitted} emitted)"
    )]
    Hang {
        /// Cycles without a transfer.
        cycles: u64,
        /// The cycle it was detected.
        at: u64,
        /// Frames whose every beat was accepted.
        accepted: u64,
        /// Output beats seen.
        emitted: u64,
    },
}

/// The input codes of one frame: H̃ row-major (M·N codes), ỹ (M codes) and the SNR bin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameCodes {
    /// H̃, row-major.
    pub h: Vec<i64>,
    /// ỹ.
    pub y: Vec<i64>,
    /// SNR bin.
    pub bin: usize,
}

impl From<(Vec<i64>, Vec<i64>, usize)> for FrameCodes {
    fn from((h, y, bin): (Vec<i64>, Vec<i64>, usize)) -> Self {
        Self { h, y, bin }
    }
}

/// Random input stalls and output back-pressure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stalls {
    /// Probability that the driver withholds `in_valid` in a cycle it has a beat, in [0, 1).
    pub input: f64,
    /// Probability that `out_ready` is low in a cycle, in [0, 1).
    pub output: f64,
    /// Seed of the stall pattern and of the model's random initial state.
    pub seed: u64,
}

impl Stalls {
    /// No stalls; `seed` still seeds the model's initial state.
    pub fn none(seed: u64) -> Self {
        Self {
            input: 0.0,
            output: 0.0,
            seed,
        }
    }

    /// Whether both probabilities are zero.
    pub fn is_none(&self) -> bool {
        self.input == 0.0 && self.output == 0.0
    }

    fn validate(&self) -> Result<(), CosimError> {
        for (name, value) in [
            ("stall_prob", self.input),
            ("backpressure_prob", self.output),
        ] {
            if !(0.0..1.0).contains(&value) {
                return Err(CosimError::Probability { name, value });
            }
        }
        Ok(())
    }
}

/// The ports of one stage stream's tap.
#[derive(Debug, Clone, Copy)]
struct TapPorts {
    valid: PortId,
    ready: PortId,
    x: PortId,
    s: Option<PortId>,
    u: Option<PortId>,
}

/// Resolved port handles of a model of the wrapper.
#[derive(Debug, Clone)]
struct Ports {
    in_valid: PortId,
    in_ready: PortId,
    in_h: PortId,
    in_y: PortId,
    in_bin: PortId,
    out_valid: PortId,
    out_ready: PortId,
    out_x: PortId,
    out_bits: PortId,
    taps: Vec<TapPorts>,
}

impl Ports {
    fn resolve(model: &Model, layers: usize, admm: bool) -> Result<Self, SimError> {
        let mut taps = Vec::with_capacity(layers);
        for k in 2..=layers + 1 {
            let p = |f: &str| model.port(&format!("t{k}_{f}"));
            taps.push(TapPorts {
                valid: p("valid")?,
                ready: p("ready")?,
                x: p("x1")?,
                s: if admm { Some(p("s")?) } else { None },
                u: if admm { Some(p("u")?) } else { None },
            });
        }
        Ok(Self {
            in_valid: model.port("in_valid")?,
            in_ready: model.port("in_ready")?,
            in_h: model.port("in_h")?,
            in_y: model.port("in_y")?,
            in_bin: model.port("in_bin")?,
            out_valid: model.port("out_valid")?,
            out_ready: model.port("out_ready")?,
            out_x: model.port("out_x")?,
            out_bits: model.port("out_bits")?,
            taps,
        })
    }
}

/// A generated design built with Verilator under the co-simulation wrapper.
#[derive(Debug, Clone)]
pub struct Rtl {
    interp: Interpreter,
    design: Design,
    estimate: Totals,
    built: BuiltModel,
    build_time: Duration,
}

impl Rtl {
    /// Builds `generated` under the co-simulation wrapper (with VCD tracing compiled in when
    /// `trace`). A content-hash cache hit takes milliseconds; a miss runs Verilator.
    pub fn build(generated: &Generated, trace: bool) -> Result<Rtl, CosimError> {
        let start = Instant::now();
        let interp = Interpreter::new(generated.ir.clone())?;
        let design = generated.design.clone();
        let wrapper = cosim_wrapper(generated)?;
        let ports: Vec<Port> = wrapper
            .ports
            .iter()
            .map(|p| {
                if p.output {
                    Port::output(p.name.clone(), p.width)
                } else {
                    Port::input(p.name.clone(), p.width)
                }
            })
            .collect();
        let mut build = VerilatorBuild::new(wrapper.name.clone()).trace(trace);
        for file in generated.sources() {
            build = build.source_text(file.name.clone(), file.contents.clone());
        }
        let built = build
            .source_text(wrapper.file.name, wrapper.file.contents)
            .ports(ports)
            .build()?;
        let estimate = analyse(&design).total;
        Ok(Rtl {
            interp,
            design,
            estimate,
            built,
            build_time: start.elapsed(),
        })
    }

    /// Generates the design of `ir` with `options` (testbench frames from the link simulator)
    /// and builds it; see [`Rtl::build`].
    pub fn generate_and_build(ir: &Ir, options: &Options, trace: bool) -> Result<Rtl, CosimError> {
        Rtl::build(&generate(ir, options, &LinkFrames)?, trace)
    }

    /// The lowered design (its interface widths in `design().io`).
    pub fn design(&self) -> &Design {
        &self.design
    }

    /// The golden model of the same IR.
    pub fn interpreter(&self) -> &Interpreter {
        &self.interp
    }

    /// The analytic timing and resources (`kaq_codegen::report::analyse`).
    pub fn estimate(&self) -> &Totals {
        &self.estimate
    }

    /// The Verilator build.
    pub fn built(&self) -> &BuiltModel {
        &self.built
    }

    /// Wall time of [`Rtl::build`]: generation plus the Verilator build or cache lookup.
    pub fn build_time(&self) -> Duration {
        self.build_time
    }

    /// Whether the Verilator model came from the cache.
    pub fn cached(&self) -> bool {
        self.built.outcome == CacheOutcome::Hit
    }

    /// A fresh, reset model instance driven with `stalls`; with `capture_taps` it records the
    /// layer states of every frame.
    pub fn driver(&self, stalls: Stalls, capture_taps: bool) -> Result<Driver<'_>, CosimError> {
        Driver::new(self, stalls, capture_taps)
    }

    /// Streams `frames` through the RTL with `stalls` and compares every output and every
    /// layer's states with the golden model ([`Interpreter::run_codes`]).
    pub fn cosimulate(
        &self,
        frames: impl IntoIterator<Item = FrameCodes>,
        stalls: Stalls,
    ) -> Result<CosimReport, CosimError> {
        let mut driver = self.driver(stalls, true)?;
        self.cosimulate_on(&mut driver, frames, |_, f| {
            Ok(self.interp.run_codes(&f.h, &f.y, f.bin)?)
        })
    }

    /// As [`Rtl::cosimulate`], with the expected taps of frame `i` given by `golden(i, codes)`
    /// (for tests of the comparison itself).
    pub fn cosimulate_against(
        &self,
        frames: impl IntoIterator<Item = FrameCodes>,
        stalls: Stalls,
        golden: impl FnMut(u64, &FrameCodes) -> Result<Taps, CosimError>,
    ) -> Result<CosimReport, CosimError> {
        let mut driver = self.driver(stalls, true)?;
        self.cosimulate_on(&mut driver, frames, golden)
    }

    /// The comparison on a driver the caller made (to trace it, for instance) with
    /// [`Rtl::driver`] and `capture_taps` (without taps only the outputs are compared). When
    /// the driver stalls, a stall-free probe of the first frames on a second model measures
    /// the timing.
    pub fn cosimulate_on(
        &self,
        driver: &mut Driver<'_>,
        frames: impl IntoIterator<Item = FrameCodes>,
        mut golden: impl FnMut(u64, &FrameCodes) -> Result<Taps, CosimError>,
    ) -> Result<CosimReport, CosimError> {
        let stalls = driver.stalls;
        let mut mismatches = 0u64;
        let mut first_mismatch = None;
        let mut probe = Vec::new();
        let want_probe = !stalls.is_none();
        let modulation = self.interp.ir().modulation;
        let started = Instant::now();
        let run = driver.run(
            frames.into_iter().inspect(|f| {
                if want_probe && probe.len() < PROBE_FRAMES {
                    probe.push(f.clone());
                }
            }),
            |codes, out| {
                let taps = golden(out.index, codes)?;
                if let Some(m) = compare(&out, &taps, |l| modulation.gray_bits(l)) {
                    mismatches += 1;
                    if first_mismatch.is_none() {
                        first_mismatch = Some(m);
                    }
                }
                Ok(())
            },
        )?;
        let wall = started.elapsed();
        let timing = if want_probe {
            let mut d = self.driver(Stalls::none(stalls.seed), false)?;
            d.run(probe, |_, _| Ok(()))?.timing
        } else {
            run.timing
        };
        Ok(CosimReport {
            frames: run.frames,
            mismatches,
            first_mismatch,
            total_cycles: run.cycles,
            measured_ii: timing.ii,
            measured_latency: timing.latency,
            estimated_ii: self.estimate.ii,
            estimated_cycles_per_frame: self.estimate.cycles_per_frame(),
            estimated_latency: self.estimate.latency,
            frames_per_second: run.frames as f64 / wall.as_secs_f64().max(1e-9),
            wall,
            build_time: self.build_time,
            cached: self.cached(),
        })
    }
}

/// Frames drawn per random stream by [`link_frames`].
pub const FRAMES_PER_STREAM: usize = 4096;

/// `total` frames of `link` as the receiver's front end codes them for `interp`: frame f at
/// the SNR point `snr_db[f·len/total]` (the points share the frames evenly, in order), drawn
/// [`FRAMES_PER_STREAM`] at a time from the seeded stream `(seed, f / FRAMES_PER_STREAM)`.
/// Lazy: one stream's frames are in memory at a time. What `kaq cosim` and `kaq flow` feed.
pub fn link_frames<'a>(
    interp: &'a Interpreter,
    link: &LinkConfig,
    snr_db: &'a [f64],
    total: usize,
    seed: u64,
) -> Result<impl Iterator<Item = Result<FrameCodes, CosimError>> + 'a, CosimError> {
    let mut generator = link.generator()?;
    let chunks = (0..total)
        .step_by(FRAMES_PER_STREAM.max(1))
        .map(move |first| {
            let count = FRAMES_PER_STREAM.min(total - first);
            let snr: Vec<f64> = (first..first + count)
                .map(|f| snr_db[f * snr_db.len() / total])
                .collect();
            let mut rng = stream_rng(seed, (first / FRAMES_PER_STREAM) as u64);
            let batch = generator.generate(&snr, &mut rng);
            (0..count)
                .map(|f| {
                    Ok(FrameCodes::from(
                        interp
                            .frame_codes(&batch.received(), f)
                            .map_err(ModelError::from)?,
                    ))
                })
                .collect::<Vec<_>>()
        });
    Ok(chunks.flatten())
}

/// Builds the design of `ir` and co-simulates `frames` with random input stalls of
/// probability `stall_prob` and output back-pressure of probability `backpressure_prob`
/// (seeded by `seed`), comparing against the golden model bit for bit.
pub fn cosimulate<F: Into<FrameCodes>>(
    ir: &Ir,
    options: &Options,
    frames: impl IntoIterator<Item = F>,
    stall_prob: f64,
    backpressure_prob: f64,
    seed: u64,
) -> Result<CosimReport, CosimError> {
    let rtl = Rtl::generate_and_build(ir, options, false)?;
    rtl.cosimulate(
        frames.into_iter().map(Into::into),
        Stalls {
            input: stall_prob,
            output: backpressure_prob,
            seed,
        },
    )
}

/// The first difference found in one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Index of the frame in the stream.
    pub frame: u64,
    /// The first layer (1-based) whose states differ, or `None` when every layer agrees and
    /// only the output stage differs.
    pub layer: Option<usize>,
    /// The element (0..N) within the field.
    pub element: usize,
    /// `x`, `s`, `u` (a layer's states), `out_x` (an output code) or `out_bits` (its Gray bits).
    pub field: &'static str,
    /// What the RTL produced.
    pub rtl: i64,
    /// What the golden model expects.
    pub golden: i64,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.layer {
            Some(l) => write!(f, "frame {} layer {l} ", self.frame)?,
            None => write!(f, "frame {} output stage ", self.frame)?,
        }
        write!(
            f,
            "{}[{}]: rtl {} golden {}",
            self.field, self.element, self.rtl, self.golden
        )
    }
}

/// The layer states one stage stream carried on a frame's beat 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageTap {
    /// x (N codes).
    pub x: Vec<i64>,
    /// s (ADMM-Net; empty for PGD-Net).
    pub s: Vec<i64>,
    /// u (ADMM-Net; empty for PGD-Net).
    pub u: Vec<i64>,
}

/// One frame as the RTL produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtlFrame {
    /// Index of the frame in the stream.
    pub index: u64,
    /// The output codes (N, sign-extended).
    pub out_x: Vec<i64>,
    /// The Gray bits of every element's decision (N).
    pub out_bits: Vec<u32>,
    /// Per layer 1..K, its new states (empty unless the driver captures taps).
    pub layers: Vec<StageTap>,
    /// The cycle beat 0 was accepted.
    pub accept_cycle: u64,
    /// The first cycle the output beat was valid.
    pub valid_cycle: u64,
    /// The cycle the output beat was taken.
    pub out_cycle: u64,
}

/// The first difference between the RTL's frame and the golden taps: the layers in order
/// (x, then s, then u, element by element), then the output codes, then the output bits.
pub fn compare(rtl: &RtlFrame, golden: &Taps, gray: impl Fn(i32) -> u32) -> Option<Mismatch> {
    let at = |layer, element, field, got: i64, want: i64| Mismatch {
        frame: rtl.index,
        layer,
        element,
        field,
        rtl: got,
        golden: want,
    };
    for (k, (got, want)) in rtl.layers.iter().zip(&golden.layers).enumerate() {
        for (field, g, w) in [
            ("x", &got.x, &want.x),
            ("s", &got.s, &want.s),
            ("u", &got.u, &want.u),
        ] {
            if let Some(j) = first_diff(g, w) {
                return Some(at(Some(k + 1), j, field, value(g, j), value(w, j)));
            }
        }
    }
    if let Some(j) = first_diff(&rtl.out_x, &golden.output) {
        let (got, want) = (value(&rtl.out_x, j), value(&golden.output, j));
        return Some(at(None, j, "out_x", got, want));
    }
    let want_bits: Vec<u32> = golden.levels.iter().map(|&l| gray(l)).collect();
    first_diff(&rtl.out_bits, &want_bits).map(|j| {
        let v = |b: &[u32]| b.get(j).map_or(-1, |&x| i64::from(x));
        at(None, j, "out_bits", v(&rtl.out_bits), v(&want_bits))
    })
}

fn value(v: &[i64], j: usize) -> i64 {
    v.get(j).copied().unwrap_or(i64::MIN)
}

/// The first index where `a` and `b` differ, including a length difference.
fn first_diff<T: PartialEq>(a: &[T], b: &[T]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or_else(|| (a.len() != b.len()).then(|| a.len().min(b.len())))
}

/// The cycle figures of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timing {
    /// Steady-state cycles per frame: the mean spacing of the output beats over the second
    /// half of the first 1024 frames, an even number of spacings (needs ≥ 5 frames). Only
    /// meaningful without stalls.
    pub ii: Option<f64>,
    /// The first frame's latency: its first output-valid cycle minus its beat-0 acceptance.
    pub latency: Option<u64>,
}

/// What a [`Driver::run`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunStats {
    /// Frames that came out.
    pub frames: u64,
    /// Cycles from the end of reset to the last output beat.
    pub cycles: u64,
    /// Timing figures.
    pub timing: Timing,
}

/// The outcome of a co-simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct CosimReport {
    /// Frames compared.
    pub frames: u64,
    /// Frames with at least one difference.
    pub mismatches: u64,
    /// The first frame's first difference.
    pub first_mismatch: Option<Mismatch>,
    /// Cycles of the whole run.
    pub total_cycles: u64,
    /// Measured steady-state cycles per frame with no stalls (from a stall-free probe of the
    /// first frames when the run itself had stalls).
    pub measured_ii: Option<f64>,
    /// Measured latency of the first frame with no stalls.
    pub measured_latency: Option<u64>,
    /// `report::analyse`'s initiation interval (the ceiling of its cycles per frame).
    pub estimated_ii: u64,
    /// `report::analyse`'s mean cycles per frame.
    pub estimated_cycles_per_frame: f64,
    /// `report::analyse`'s latency.
    pub estimated_latency: u64,
    /// Frames per second of wall time, golden model and comparison included.
    pub frames_per_second: f64,
    /// Wall time of the run.
    pub wall: Duration,
    /// Wall time of the build (generation and Verilator, or the cache lookup).
    pub build_time: Duration,
    /// Whether the Verilator model came from the cache.
    pub cached: bool,
}

/// One model instance of an [`Rtl`], reset and ready to stream frames.
#[derive(Debug)]
pub struct Driver<'r> {
    rtl: &'r Rtl,
    model: Model,
    ports: Ports,
    rng: ChaCha8Rng,
    stalls: Stalls,
    capture: bool,
    /// Cycles since reset.
    cycle: u64,
    /// Frames fed and emitted so far (indices continue across runs).
    fed: u64,
    emitted: u64,
    /// Word buffers of the wide ports.
    h_words: Vec<u32>,
    x_words: Vec<u32>,
    bits_words: Vec<u32>,
    /// Beats seen per stage stream.
    tap_beats: Vec<u64>,
}

/// Packs `codes` of `width` bits each, element j at bits [j·width, (j+1)·width), into `words`.
fn pack(codes: impl IntoIterator<Item = i64>, width: u32, words: &mut [u32]) {
    words.fill(0);
    let mut bit = 0usize;
    for c in codes {
        for b in 0..width {
            let set = if b < 64 { (c >> b) & 1 == 1 } else { c < 0 };
            if set {
                words[bit / 32] |= 1 << (bit % 32);
            }
            bit += 1;
        }
    }
}

/// Bits [lo, lo + width) of `words` (width ≤ 64), zero-extended.
fn field(words: &[u32], lo: usize, width: u32) -> u64 {
    let mut v = 0u64;
    for b in 0..width as usize {
        let bit = lo + b;
        if (words[bit / 32] >> (bit % 32)) & 1 == 1 {
            v |= 1 << b;
        }
    }
    v
}

fn unpack_signed(words: &[u32], n: usize, width: u32) -> Vec<i64> {
    (0..n)
        .map(|j| sign_extend(field(words, j * width as usize, width), width))
        .collect()
}

impl<'r> Driver<'r> {
    fn new(rtl: &'r Rtl, stalls: Stalls, capture: bool) -> Result<Self, CosimError> {
        stalls.validate()?;
        let mut model = Model::new(&rtl.built, stalls.seed)?;
        let d = &rtl.design;
        let ports = Ports::resolve(&model, d.layers.len(), d.arch == Arch::Admm)?;
        let words = |p: PortId| model.ports()[p.index()].words();
        let (h_words, x_words, bits_words) = (
            vec![0; words(ports.in_h)],
            vec![0; words(ports.out_x)],
            vec![0; words(ports.out_bits)],
        );
        model.set(ports.in_valid, 0)?;
        model.set(ports.out_ready, 0)?;
        model.reset(RESET_CYCLES)?;
        Ok(Self {
            rtl,
            tap_beats: vec![0; d.layers.len()],
            model,
            ports,
            rng: ChaCha8Rng::seed_from_u64(stalls.seed ^ 0x6b61_715f_7374_616c),
            stalls,
            capture,
            cycle: 0,
            fed: 0,
            emitted: 0,
            h_words,
            x_words,
            bits_words,
        })
    }

    /// Starts a VCD trace of everything from now on (the RTL must be built with `trace`).
    pub fn trace(&mut self, path: impl AsRef<Path>) -> Result<(), CosimError> {
        Ok(self.model.trace(path)?)
    }

    /// Cycles since reset.
    pub fn cycle(&self) -> u64 {
        self.cycle
    }

    fn check_frame(&self, f: &FrameCodes) -> Result<(), CosimError> {
        let io = &self.rtl.design.io;
        let bad = |reason: String| {
            Err(CosimError::Frame {
                frame: self.fed,
                reason,
            })
        };
        if f.h.len() != io.m * io.n {
            return bad(format!(
                "{} H codes, M·N = {} needed",
                f.h.len(),
                io.m * io.n
            ));
        }
        if f.y.len() != io.m {
            return bad(format!("{} y codes, M = {} needed", f.y.len(), io.m));
        }
        if f.bin >= io.bins {
            return bad(format!("bin {} outside 0..{}", f.bin, io.bins));
        }
        let fits = |c: i64, w: u32| c >= -(1 << (w - 1)) && c < (1 << (w - 1));
        if let Some(c) = f.h.iter().find(|&&c| !fits(c, io.hw)) {
            return bad(format!("H code {c} is not a signed {}-bit code", io.hw));
        }
        if let Some(c) = f.y.iter().find(|&&c| !fits(c, io.yw)) {
            return bad(format!("y code {c} is not a signed {}-bit code", io.yw));
        }
        Ok(())
    }

    /// Drives beat `beat` of `f` onto the input ports.
    fn drive(&mut self, f: &FrameCodes, beat: usize) -> Result<(), SimError> {
        let io = &self.rtl.design.io;
        let row = &f.h[beat * io.n..(beat + 1) * io.n];
        pack(row.iter().copied(), io.hw, &mut self.h_words);
        self.model.set_wide(self.ports.in_h, &self.h_words)?;
        self.model.set_signed(self.ports.in_y, f.y[beat])?;
        self.model.set(self.ports.in_bin, f.bin as u64)?;
        Ok(())
    }

    fn read_states(&mut self, port: PortId) -> Result<Vec<i64>, SimError> {
        let io = &self.rtl.design.io;
        self.model.get_wide_into(port, &mut self.x_words)?;
        Ok(unpack_signed(&self.x_words, io.n, io.sw))
    }

    /// Streams `frames` through the pipeline until every one has come out, calling
    /// `sink(codes, output)` for each output in order. Inputs are checked against the design's
    /// formats (an error names the frame).
    pub fn run(
        &mut self,
        frames: impl IntoIterator<Item = FrameCodes>,
        mut sink: impl FnMut(&FrameCodes, RtlFrame) -> Result<(), CosimError>,
    ) -> Result<RunStats, CosimError> {
        let io = self.rtl.design.io.clone();
        let layers = self.rtl.design.layers.len();
        let hang_limit = 10_000 + 8 * self.rtl.estimate.latency;
        let mut source = frames.into_iter();
        let start_cycle = self.cycle;
        let start_emitted = self.emitted;
        // Frames in flight: codes, beat-0 acceptance cycle.
        let mut in_flight: VecDeque<(FrameCodes, u64)> = VecDeque::new();
        // The frame being fed and its next beat.
        let mut feeding: Option<(FrameCodes, usize)> = None;
        let mut exhausted = false;
        let mut tap_queues: Vec<VecDeque<StageTap>> = vec![VecDeque::new(); layers];
        let mut valid_since: Option<u64> = None;
        let mut out_cycles: Vec<u64> = Vec::new();
        let mut first_latency = None;
        let mut idle = 0u64;
        let mut accepted = 0u64;
        loop {
            if feeding.is_none() && !exhausted {
                match source.next() {
                    Some(f) => {
                        self.check_frame(&f)?;
                        self.fed += 1;
                        feeding = Some((f, 0));
                    }
                    None => exhausted = true,
                }
            }
            if exhausted && feeding.is_none() && in_flight.is_empty() {
                break;
            }
            let stalled = self.stalls.input > 0.0 && self.rng.random_bool(self.stalls.input);
            let in_valid = feeding.is_some() && !stalled;
            if in_valid && let Some((f, beat)) = feeding.take() {
                self.drive(&f, beat)?;
                feeding = Some((f, beat));
            }
            let out_ready = !(self.stalls.output > 0.0 && self.rng.random_bool(self.stalls.output));
            self.model.set(self.ports.in_valid, u64::from(in_valid))?;
            self.model.set(self.ports.out_ready, u64::from(out_ready))?;
            self.model.eval();
            let mut moved = false;
            // The input stream.
            if in_valid && self.model.get(self.ports.in_ready)? == 1 {
                moved = true;
                if let Some((f, beat)) = feeding.take() {
                    if beat == 0 {
                        in_flight.push_back((f.clone(), self.cycle));
                    }
                    if beat + 1 < io.m {
                        feeding = Some((f, beat + 1));
                    } else {
                        accepted += 1;
                    }
                }
            }
            // The stage streams.
            if self.capture {
                for (k, queue) in tap_queues.iter_mut().enumerate() {
                    let t = self.ports.taps[k];
                    if self.model.get(t.valid)? == 1 && self.model.get(t.ready)? == 1 {
                        moved = true;
                        if self.tap_beats[k].is_multiple_of(io.m as u64) {
                            let tap = StageTap {
                                x: self.read_states(t.x)?,
                                s: match t.s {
                                    Some(p) => self.read_states(p)?,
                                    None => Vec::new(),
                                },
                                u: match t.u {
                                    Some(p) => self.read_states(p)?,
                                    None => Vec::new(),
                                },
                            };
                            queue.push_back(tap);
                        }
                        self.tap_beats[k] += 1;
                    }
                }
            }
            // The output.
            if self.model.get(self.ports.out_valid)? == 1 {
                let valid_cycle = *valid_since.get_or_insert(self.cycle);
                if out_ready {
                    moved = true;
                    self.model
                        .get_wide_into(self.ports.out_x, &mut self.x_words)?;
                    self.model
                        .get_wide_into(self.ports.out_bits, &mut self.bits_words)?;
                    let out_x = unpack_signed(&self.x_words, io.n, io.sw);
                    let out_bits = (0..io.n)
                        .map(|j| field(&self.bits_words, j * io.bpd as usize, io.bpd) as u32)
                        .collect();
                    let (codes, accept_cycle) = in_flight.pop_front().ok_or(CosimError::Frame {
                        frame: self.emitted,
                        reason: "an output beat without a frame in flight".into(),
                    })?;
                    let layers_taps = if self.capture {
                        tap_queues
                            .iter_mut()
                            .map(|q| q.pop_front().unwrap_or_default())
                            .collect()
                    } else {
                        Vec::new()
                    };
                    if first_latency.is_none() {
                        first_latency = Some(valid_cycle - accept_cycle);
                    }
                    if out_cycles.len() < TIMING_FRAMES {
                        out_cycles.push(valid_cycle);
                    }
                    let frame = RtlFrame {
                        index: self.emitted,
                        out_x,
                        out_bits,
                        layers: layers_taps,
                        accept_cycle,
                        valid_cycle,
                        out_cycle: self.cycle,
                    };
                    self.emitted += 1;
                    valid_since = None;
                    sink(&codes, frame)?;
                }
            }
            self.model.tick()?;
            self.cycle += 1;
            idle = if moved { 0 } else { idle + 1 };
            if idle > hang_limit {
                return Err(CosimError::Hang {
                    cycles: idle,
                    at: self.cycle,
                    accepted,
                    emitted: self.emitted - start_emitted,
                });
            }
        }
        // An even number of spacings: a stage whose buffer period is odd emits its two
        // buffers' frames at alternating spacings.
        let ii = (out_cycles.len() >= 5).then(|| {
            let last = out_cycles.len() - 1;
            let mut from = out_cycles.len() / 2;
            if (last - from) % 2 == 1 {
                from -= 1;
            }
            (out_cycles[last] - out_cycles[from]) as f64 / (last - from) as f64
        });
        Ok(RunStats {
            frames: self.emitted - start_emitted,
            cycles: self.cycle - start_cycle,
            timing: Timing {
                ii,
                latency: first_latency,
            },
        })
    }
}

/// The RTL as a [`Detector`]: each `detect` call builds a fresh model instance on the calling
/// thread (a Verilated model must stay on the thread that created it), streams the whole batch
/// through the pipeline without stalls and maps every output's Gray bits to its level.
#[derive(Debug, Clone)]
pub struct RtlDetector {
    rtl: Rtl,
    seed: u64,
}

impl RtlDetector {
    /// A detector running `rtl`; `seed` seeds the model's random initial state.
    pub fn new(rtl: Rtl, seed: u64) -> Self {
        Self { rtl, seed }
    }

    /// The RTL.
    pub fn rtl(&self) -> &Rtl {
        &self.rtl
    }
}

impl Detector for RtlDetector {
    /// The IR's name with `-rtl`, e.g. `pgd-soft-k5-kaq-8b-rtl`.
    fn name(&self) -> String {
        format!("{}-rtl", self.rtl.interp.ir().name)
    }

    fn detect(&self, frames: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError> {
        frames.check_decisions(decisions)?;
        kaq_model::detect::check_batch(frames)?;
        let n = self.rtl.design.io.n;
        if n == 0 || frames.frames == 0 {
            return Ok(());
        }
        let interp = &self.rtl.interp;
        let modulation = interp.ir().modulation;
        let mut codes = Vec::with_capacity(frames.frames);
        for f in 0..frames.frames {
            codes.push(FrameCodes::from(
                interp
                    .frame_codes(&frames.received(), f)
                    .map_err(ModelError::from)?,
            ));
        }
        let fail = |frame: usize, e: CosimError| ModelError::DetectFailed {
            detector: self.name(),
            frame,
            reason: e.to_string(),
        };
        let mut driver = self
            .rtl
            .driver(Stalls::none(self.seed), false)
            .map_err(|e| fail(0, e))?;
        let mut out = decisions.chunks_exact_mut(n);
        let mut done = 0usize;
        driver
            .run(codes, |_, frame| {
                let dec = out.next().ok_or(CosimError::Frame {
                    frame: frame.index,
                    reason: "more outputs than frames".into(),
                })?;
                for (d, &b) in dec.iter_mut().zip(&frame.out_bits) {
                    *d = modulation.level_from_bits(b);
                }
                done += 1;
                Ok(())
            })
            .map_err(|e| fail(done, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_unpack_round_trip() {
        let codes = [-128i64, 127, -1, 0, 5, -77, 64, -64, 3];
        let mut words = vec![0u32; (codes.len() * 8).div_ceil(32)];
        pack(codes.iter().copied(), 8, &mut words);
        assert_eq!(unpack_signed(&words, codes.len(), 8), codes);
        // Element j at bits [8j, 8j + 8): the first code in the least significant byte.
        assert_eq!(words[0] & 0xff, 0x80);
        assert_eq!((words[0] >> 8) & 0xff, 0x7f);
        let codes = [-2048i64, 2047, -3];
        let mut words = vec![0u32; 2];
        pack(codes.iter().copied(), 12, &mut words);
        assert_eq!(unpack_signed(&words, 3, 12), codes);
    }

    #[test]
    fn first_diff_finds_values_and_lengths() {
        assert_eq!(first_diff(&[1, 2, 3], &[1, 2, 3]), None);
        assert_eq!(first_diff(&[1, 2, 3], &[1, 5, 3]), Some(1));
        assert_eq!(first_diff(&[1, 2], &[1, 2, 3]), Some(2));
    }

    #[test]
    fn probabilities_are_checked() {
        assert!(Stalls::none(1).validate().is_ok());
        for bad in [-0.1, 1.0, f64::NAN] {
            let s = Stalls {
                input: bad,
                output: 0.0,
                seed: 1,
            };
            let err = s.validate().unwrap_err().to_string();
            assert!(err.contains("stall_prob"), "{err}");
        }
    }
}
