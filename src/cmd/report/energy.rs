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

/// ZF, MMSE and kbest:32 at every baseline arithmetic on an M × N link with `levels`
/// amplitude levels, their per-channel work spread over `block` vectors.
fn baselines(
    m: usize,
    n: usize,
    levels: usize,
    modulation: kaq_ir::Modulation,
    block: usize,
) -> Vec<Baseline> {
    let bits = n as u32 * modulation.bits_per_dim();
    let mut out = Vec::new();
    for spec in baseline_specs() {
        for arith in baseline_ariths() {
            if let Some(c) = baseline_counts(spec, m, n, levels, bits, arith) {
                out.push(Baseline {
                    detector: spec.to_string(),
                    arith,
                    energy: c.energy(block),
                });
            }
        }
    }
    out
}

/// The energy of `ir` and of the baselines at its dimensions, their per-channel work spread
/// over `block` vectors.
pub(crate) fn energy_report(ir: &Ir, block: usize) -> EnergyReport {
    let baselines = baselines(ir.m, ir.n, ir.levels(), ir.modulation, block);
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

/// The f32 forms of the Gram-domain families priced beside a v2 design: the design's own
/// family at its K and L, and EPNet and OAMP-Net2 at its K (their operation counts,
/// `kaq_model::gram::cost`; the per-block stage over the block).
fn gram_f32_counts(ir: &kaq_ir::gram::GramIr) -> Vec<(String, kaq_ir::energy::Counts)> {
    use kaq_ir::energy::{BaselineOps, Counts};
    use kaq_model::gram::{Family, GramConfig};
    let Ok(link) = kaq_model::link::LinkConfig::new(ir.nt, ir.nr, ir.modulation) else {
        return Vec::new();
    };
    let (m, n) = (ir.m as u64, ir.n as u64);
    let bits = ir.n as u32 * ir.modulation.bits_per_dim();
    let ops = |o: kaq_model::gram::Ops| BaselineOps {
        mults: o.mults,
        adds: o.adds,
        recips: o.recips,
        sqrts: o.sqrts,
        tables: o.tables,
    };
    let mut out = Vec::new();
    for family in [Family::Cg, Family::Ep, Family::Oamp] {
        let mut config = GramConfig::new(family, ir.layers.len());
        if family == Family::Cg {
            config.inner = ir.inner();
        }
        let cost = kaq_model::gram::cost(&config, &link);
        let name = match family {
            Family::Cg => format!("cg-k{}-l{}", config.layers, config.inner),
            f => format!("{f}-k{}", config.layers),
        };
        // Working set: H̃, G (or the LMMSE matrix), ỹ and a few vectors of n, at 32 bits.
        let working = m * n + n * n + m + 6 * n;
        let c = Counts::baseline(
            &name,
            bits,
            Arith::F32,
            ops(cost.per_block),
            ops(cost.per_vector),
            working * 32,
        );
        out.push((name, c));
    }
    out
}

/// The energy of the v2 design `ir` (`kaq_ir::gram::gram_energy`, its block stage spread over
/// `block` vectors) and, over the same block, of ZF, MMSE and kbest:32 at 16-bit fixed point
/// and f32, and of the Gram-domain families' f32 forms.
pub(crate) fn gram_energy_report(ir: &kaq_ir::gram::GramIr, block: usize) -> EnergyReport {
    let mut baselines = baselines(ir.m, ir.n, ir.levels(), ir.modulation, block);
    for (name, c) in gram_f32_counts(ir) {
        baselines.push(Baseline {
            detector: name,
            arith: Arith::F32,
            energy: c.energy(block),
        });
    }
    EnergyReport {
        design: kaq_ir::gram::gram_energy(ir, block),
        baselines,
    }
}
