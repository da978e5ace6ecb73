//! The energy section of `kaq report`: the design's energy per vector and per bit under both
//! models of `kaq_ir::energy`, beside ZF, MMSE (Cholesky) and kbest:32 from their operation
//! counts (`kaq_model::detect::ops`) at stated arithmetic (docs/energy.md).

use std::fmt::Write as _;

use kaq_ir::Ir;
use kaq_ir::energy::{Arith, Energy, estimate};
use kaq_model::detect::ops::baseline_counts;
use kaq_model::detect::{DetectorSpec, KBestVariant};
use serde::Serialize;

/// Vectors per channel block the baselines' per-channel work is spread over by default: one
/// OFDM resource block of 12 subcarriers × 14 symbols.
pub(crate) const DEFAULT_BLOCK: usize = 12 * 14;

/// A classical detector's energy at one arithmetic.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Baseline {
    /// `zf`, `mmse` or `kbest:32`.
    pub detector: String,
    /// The arithmetic it is priced at.
    pub arith: Arith,
    /// Both models' figures (per-block work amortized over `energy.block` vectors).
    pub energy: Energy,
}

/// The design's energy and the baselines'.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EnergyReport {
    /// The design, from its IR (`kaq_ir::energy::estimate`).
    pub design: Energy,
    /// The baselines at the design's dimensions.
    pub baselines: Vec<Baseline>,
}

/// The detectors priced beside the design.
fn baseline_specs() -> [DetectorSpec; 3] {
    [
        DetectorSpec::Zf,
        DetectorSpec::Mmse,
        DetectorSpec::KBest {
            k: 32,
            variant: KBestVariant::default(),
        },
    ]
}

/// The arithmetic the baselines are priced at: 16-bit fixed point (8 guard bits on sums) and
/// f32.
fn baseline_ariths() -> [Arith; 2] {
    [Arith::fixed(16), Arith::F32]
}

/// The energy of `ir` and of the baselines at its dimensions, their per-channel work spread
/// over `block` vectors.
pub(crate) fn energy_report(ir: &Ir, block: usize) -> EnergyReport {
    let bits = ir.n as u32 * ir.modulation.bits_per_dim();
    let mut baselines = Vec::new();
    for spec in baseline_specs() {
        for arith in baseline_ariths() {
            if let Some(c) = baseline_counts(spec, ir.m, ir.n, ir.levels(), bits, arith) {
                baselines.push(Baseline {
                    detector: spec.to_string(),
                    arith,
                    energy: c.energy(block),
                });
            }
        }
    }
    EnergyReport {
        design: estimate(ir),
        baselines,
    }
}

/// The energy table printed by `kaq report`.
pub(crate) fn energy_table(e: &EnergyReport) -> String {
    let mut s = String::new();
    let block = e.baselines.first().map_or(1, |b| b.energy.block);
    let _ = writeln!(
        s,
        "energy per vector ({} bits): model 1 = paper eqs. 7-14, model 2 = 45 nm per operation; \
         baselines' per-channel work over {block} vectors",
        e.design.bits_per_vector
    );
    let _ = writeln!(
        s,
        "{:<24} {:>12} {:>10} {:>12} {:>10} {:>10} {:>10}",
        "design", "m1 pJ/vec", "m1 pJ/bit", "m2 pJ/vec", "m2 pJ/bit", "mults/vec", "adds/vec"
    );
    let row = |s: &mut String, name: &str, en: &Energy| {
        let _ = writeln!(
            s,
            "{:<24} {:>12.2} {:>10.3} {:>12.2} {:>10.3} {:>10.1} {:>10.1}",
            name,
            en.paper.pj_per_vector,
            en.paper.pj_per_bit,
            en.horowitz.pj_per_vector,
            en.horowitz.pj_per_bit,
            en.mults,
            en.adds
        );
    };
    row(&mut s, &e.design.name, &e.design);
    for b in &e.baselines {
        let arith = match b.arith {
            Arith::Fixed { bits, .. } => format!("{bits}-bit"),
            Arith::F32 => "f32".to_string(),
        };
        row(&mut s, &format!("{} ({arith})", b.detector), &b.energy);
    }
    s
}
