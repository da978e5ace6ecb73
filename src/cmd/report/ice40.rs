//! Whether a design synthesized for iCE40 fits any iCE40 part.
//!
//! A logic cell of an iCE40 holds one LUT4, one flip-flop and one carry element, so a design
//! needs at least max(LUT4s, FFs) logic cells; the DSPs `synth_ice40 -dsp` infers are SB_MAC16
//! blocks, which only the UltraPlus parts have (a design with more multipliers than those
//! 8 does not fit as synthesized, though an HX8K could build them from LUTs: the report
//! says so only for the netlist it has). The largest parts of the family (Lattice's
//! iCE40 LP/HX and UltraPlus data sheets, DS1040 and FPGA-DS-02008):
//!
//! | part        | logic cells | SB_MAC16 | 4 kbit block RAMs |
//! |-------------|------------:|---------:|------------------:|
//! | HX8K / LP8K |        7680 |        0 |                32 |
//! | UP5K        |        5280 |        8 |                30 |

use kaq_codegen::synth::{SynthReport, Target};
use serde::Serialize;

/// One iCE40 part's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Part {
    /// The part's name.
    pub name: &'static str,
    /// Logic cells (one LUT4 and one FF each).
    pub logic_cells: u64,
    /// SB_MAC16 DSP blocks.
    pub dsps: u64,
    /// 4 kbit block RAMs (SB_RAM40_4K).
    pub brams: u64,
}

/// The largest iCE40 parts (see the module documentation).
pub const PARTS: [Part; 2] = [
    Part {
        name: "HX8K/LP8K",
        logic_cells: 7680,
        dsps: 0,
        brams: 32,
    },
    Part {
        name: "UP5K",
        logic_cells: 5280,
        dsps: 8,
        brams: 30,
    },
];

/// What a design needs of an iCE40 and which part holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fit {
    /// Logic cells needed: max(LUT4s, FFs).
    pub logic_cells: u64,
    /// SB_MAC16 blocks needed.
    pub dsps: u64,
    /// Block RAMs needed.
    pub brams: u64,
    /// The first part of [`PARTS`] that holds the design, if any.
    pub part: Option<&'static str>,
}

/// The fit of an iCE40 synthesis; `None` for other targets.
pub fn fit(r: &SynthReport) -> Option<Fit> {
    if r.target != Target::Ice40 {
        return None;
    }
    let logic_cells = r.logic.max(r.ff);
    let part = PARTS
        .iter()
        .find(|p| logic_cells <= p.logic_cells && r.dsp <= p.dsps && r.memory <= p.brams)
        .map(|p| p.name);
    Some(Fit {
        logic_cells,
        dsps: r.dsp,
        brams: r.memory,
        part,
    })
}

/// The line the report prints: the part that holds the design, or that none does and why.
pub fn line(f: &Fit, complete: bool) -> String {
    let needs = format!(
        "{} logic cells, {} DSPs, {} block RAMs",
        f.logic_cells, f.dsps, f.brams
    );
    match f.part {
        Some(part) if complete => format!("iCE40 fit: fits the {part} (needs {needs})"),
        Some(part) => format!(
            "iCE40 fit: the synthesized stages fit the {part} (need {needs}; synthesis PARTIAL)"
        ),
        None => {
            let parts: Vec<String> = PARTS
                .iter()
                .map(|p| {
                    format!(
                        "{} {} LCs, {} DSPs, {} BRAMs",
                        p.name, p.logic_cells, p.dsps, p.brams
                    )
                })
                .collect();
            format!(
                "iCE40 fit: DOES NOT FIT any iCE40 part as synthesized: needs {needs}{}; the \
                 largest parts have {}",
                if complete {
                    ""
                } else {
                    " (synthesis PARTIAL: at least)"
                },
                parts.join("; ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn report(target: Target, luts: u64, ffs: u64, dsps: u64, brams: u64) -> SynthReport {
        let mut r = SynthReport::from_cells(target, "top", BTreeMap::new(), None, 0.0);
        (r.logic, r.ff, r.dsp, r.memory) = (luts, ffs, dsps, brams);
        r
    }

    #[test]
    fn picks_the_first_part_that_holds_the_design() {
        let small = fit(&report(Target::Ice40, 1000, 1200, 0, 2)).unwrap();
        assert_eq!(small.logic_cells, 1200);
        assert_eq!(small.part, Some("HX8K/LP8K"));
        // Every LC of the HX8K, one more does not fit.
        assert_eq!(
            fit(&report(Target::Ice40, 7680, 10, 0, 0)).unwrap().part,
            Some("HX8K/LP8K")
        );
        assert_eq!(
            fit(&report(Target::Ice40, 7681, 10, 0, 0)).unwrap().part,
            None
        );
        // DSPs: only the UP5K has them, and only 8.
        assert_eq!(
            fit(&report(Target::Ice40, 5000, 100, 8, 0)).unwrap().part,
            Some("UP5K")
        );
        assert_eq!(
            fit(&report(Target::Ice40, 5281, 100, 1, 0)).unwrap().part,
            None
        );
        assert_eq!(
            fit(&report(Target::Ice40, 100, 100, 9, 0)).unwrap().part,
            None
        );
        assert_eq!(
            fit(&report(Target::Ice40, 100, 100, 0, 33)).unwrap().part,
            None
        );
        assert_eq!(fit(&report(Target::Xilinx, 1, 1, 0, 0)), None);
    }

    #[test]
    fn the_line_says_when_nothing_fits() {
        let big = fit(&report(Target::Ice40, 18_000, 4000, 16, 0)).unwrap();
        let l = line(&big, true);
        assert!(l.contains("DOES NOT FIT any iCE40 part"), "{l}");
        assert!(l.contains("18000 logic cells, 16 DSPs"), "{l}");
        assert!(
            l.contains("HX8K/LP8K 7680 LCs") && l.contains("UP5K 5280 LCs, 8 DSPs"),
            "{l}"
        );
        let small = fit(&report(Target::Ice40, 100, 100, 0, 0)).unwrap();
        assert_eq!(
            line(&small, true),
            "iCE40 fit: fits the HX8K/LP8K (needs 100 logic cells, 0 DSPs, 0 block RAMs)"
        );
        assert!(line(&small, false).contains("PARTIAL"));
    }
}
