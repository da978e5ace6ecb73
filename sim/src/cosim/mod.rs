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

mod compare;
mod detector;
mod driver;
pub mod gram;
mod gram_detector;
pub mod gram_oamp;
pub mod gram_taps;

pub use compare::{Mismatch, RtlFrame, StageTap, compare};
pub use detector::RtlDetector;
pub use driver::Driver;
pub use gram_detector::GramRtlDetector;

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

#[cfg(test)]
mod tests {
    use super::*;

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
