//! Quality of results of a generated design (docs/synthesis.md): the cells
//! of a hierarchical synthesis, a clock figure (placed, or estimated from the critical path,
//! labelled which), and what they give: throughput in Mb/s = bits per vector × f / II,
//! latency in µs, Mb/s per kLUT and per DSP.

use serde::Serialize;

use crate::design::Design;
use crate::hierarchy::HierReport;
use crate::report::Report;
use crate::synth::{Category, Target};
use crate::timing::{Placement, routing_factor};

/// Where a clock figure comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClockSource {
    /// nextpnr-ice40's post-route Fmax of the flat design on `device`.
    Placed {
        /// Device and package.
        device: String,
    },
    /// The `sta` critical path × the target's routing factor.
    Estimated {
        /// The critical path in ns.
        critical_path_ns: f64,
        /// The factor (docs/synthesis.md §Timing).
        routing_factor: f64,
    },
}

/// The figures of one design at one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Qor {
    /// The target of the cell counts.
    pub target: Target,
    /// Every unit was synthesized; otherwise the counts cover only those that were.
    pub complete: bool,
    /// LUTs (xilinx, ice40) or gates (generic).
    pub lut: u64,
    /// Flip-flops.
    pub ff: u64,
    /// DSP blocks.
    pub dsp: u64,
    /// Block RAMs (`RAMB18*`/`RAMB36*` or `SB_RAM40_4K*`).
    pub bram: u64,
    /// LUT RAMs and shift-register LUTs.
    pub lutram: u64,
    /// The longest register-to-register path `sta` found, in ns.
    pub critical_path_ns: Option<f64>,
    /// The clock in MHz and where it comes from.
    pub fmax_mhz: Option<f64>,
    /// Where `fmax_mhz` comes from.
    pub clock: Option<ClockSource>,
    /// Detected bits per received vector (N real dimensions × bits per dimension).
    pub bits_per_vector: u64,
    /// Initiation interval in cycles: of one vector, or of `vectors_per_ii` vectors (an IR v2
    /// channel block of T vectors, `kaq report`'s `cycles`).
    pub ii: u64,
    /// Vectors per `ii` cycles: 1, or T for an IR v2 design.
    pub vectors_per_ii: u64,
    /// Latency in cycles.
    pub latency_cycles: u64,
    /// bits per vector × f / II, in Mb/s.
    pub throughput_mbps: Option<f64>,
    /// Latency in µs at f.
    pub latency_us: Option<f64>,
    /// Throughput per 1000 LUTs.
    pub mbps_per_klut: Option<f64>,
    /// Throughput per DSP block.
    pub mbps_per_dsp: Option<f64>,
}

fn is_bram(target: Target, cell: &str) -> bool {
    match target {
        Target::Xilinx => cell.starts_with("RAMB"),
        Target::Ice40 => cell.starts_with("SB_RAM40_4K"),
        Target::Generic => false,
    }
}

/// The figures of `d` from its analytic `report`, its synthesis `hier` and, when the design
/// was placed, `placement` (whose Fmax then replaces the estimate).
pub fn qor(d: &Design, report: &Report, hier: &HierReport, placement: Option<&Placement>) -> Qor {
    let bits_per_vector = d.io.n as u64 * u64::from(d.io.bpd);
    let cycles = (report.total.ii, 1, report.total.latency);
    figures(hier, placement, bits_per_vector, cycles)
}

/// The figures of a design of `bits_per_vector` bits per vector that takes
/// `(ii, vectors, latency)` cycles: `vectors` vectors every `ii` cycles, the first out
/// `latency` cycles after its input; from its synthesis `hier` and `placement` as [`qor`].
pub fn figures(
    hier: &HierReport,
    placement: Option<&Placement>,
    bits_per_vector: u64,
    (ii, vectors, latency_cycles): (u64, u64, u64),
) -> Qor {
    let t = &hier.total;
    let target = hier.target;
    let mut bram = 0;
    let mut lutram = 0;
    for (cell, n) in &t.cells {
        if Category::of(target, cell) == Category::Memory {
            if is_bram(target, cell) {
                bram += n;
            } else {
                lutram += n;
            }
        }
    }
    let critical_path_ns = hier.critical.as_ref().map(|(_, p)| p.delay_ns);
    let (fmax_mhz, clock) = match placement {
        Some(Placement::Placed {
            device, fmax_mhz, ..
        }) => (
            Some(*fmax_mhz),
            Some(ClockSource::Placed {
                device: device.clone(),
            }),
        ),
        _ => match (critical_path_ns, routing_factor(target)) {
            (Some(ns), Some(f)) if ns > 0.0 => (
                Some(1000.0 / (ns * f)),
                Some(ClockSource::Estimated {
                    critical_path_ns: ns,
                    routing_factor: f,
                }),
            ),
            _ => (None, None),
        },
    };
    let throughput_mbps =
        fmax_mhz.map(|f| (bits_per_vector * vectors) as f64 * f / ii.max(1) as f64);
    let per = |n: u64, scale: f64| {
        throughput_mbps
            .filter(|_| n > 0 && hier.complete)
            .map(|tp| tp / (n as f64 / scale))
    };
    Qor {
        target,
        complete: hier.complete,
        lut: t.logic,
        ff: t.ff,
        dsp: t.dsp,
        bram,
        lutram,
        critical_path_ns,
        fmax_mhz,
        clock,
        bits_per_vector,
        ii,
        vectors_per_ii: vectors,
        latency_cycles,
        throughput_mbps,
        latency_us: fmax_mhz.map(|f| latency_cycles as f64 / f),
        mbps_per_klut: per(t.logic, 1000.0),
        mbps_per_dsp: per(t.dsp, 1.0),
    }
}

/// Options of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalOptions {
    /// The hierarchical synthesis.
    pub synth: crate::hierarchy::HierOptions,
    /// Also place and route the flat design on an iCE40 with nextpnr-ice40
    /// ([`crate::timing::place_ice40`]; a design too large is reported as such).
    pub place: bool,
}

/// Everything [`evaluate`] measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// The hierarchical synthesis.
    pub synth: HierReport,
    /// The placement, when asked for.
    pub placement: Option<Placement>,
    /// The figures.
    pub qor: Qor,
}

/// Synthesizes `generated` by units ([`crate::hierarchy::synthesize_units`]), places it when
/// asked, and computes its figures. `scratch` receives the tools' working directories.
pub fn evaluate(
    generated: &crate::Generated,
    scratch: &std::path::Path,
    options: &EvalOptions,
    progress: &(dyn Fn(&crate::hierarchy::UnitResult) + Sync),
) -> Result<Evaluation, crate::synth::SynthError> {
    let synth = crate::hierarchy::synthesize_units(
        generated,
        &scratch.join("units"),
        &options.synth,
        progress,
    )?;
    let placement = if options.place {
        let limit = options.synth.limit;
        Some(crate::timing::place_ice40(
            generated,
            &scratch.join("place"),
            limit,
        )?)
    } else {
        None
    };
    let report = crate::report::analyse(&generated.design);
    let qor = qor(&generated.design, &report, &synth, placement.as_ref());
    Ok(Evaluation {
        synth,
        placement,
        qor,
    })
}
