//! The flow's `summary.md`: the results formatted here, laid out by `templates/summary.md`.

use askama::Template;
use kaq_model::ber::BerPoint;

use super::cache::Stages;
use super::config::FlowConfig;
use super::{FlowArgs, Results};
use crate::cmd::report::energy::{DEFAULT_BLOCK, EnergyReport};

#[derive(Template)]
#[template(path = "summary.md", escape = "none")]
struct Summary<'a> {
    name: &'a str,
    headline: String,
    ber_names: Vec<String>,
    ber_rows: Vec<(f64, Vec<String>)>,
    gap_rows: Vec<(f64, String, String, String)>,
    gap_note: String,
    verdict: String,
    hardware: &'a [String],
    cosim: &'a str,
    commands: Vec<String>,
    stages: Vec<(&'static str, String, String)>,
}

/// A measured point for a table: its BER with two significant decimals, or for a point
/// without errors `< u`, the upper end of its 95 % interval (never a bare 0).
fn cell(p: &BerPoint) -> String {
    if p.bit_errors == 0 {
        format!("< {:.1e}", p.ber_ci_high)
    } else {
        format!("{:.2e}", p.ber)
    }
}

/// The BER the verdict quotes the SNR of.
pub(super) const TARGET_BER: f64 = 1e-2;

/// The SNR at which `curve` (SNR ascending) first falls below `target`, interpolated linearly in
/// log10 BER between the two points around it; `None` when no point is below it. A curve
/// below it from its first point gives that point's SNR as an upper bound (`Some((snr, true))`).
pub(super) fn snr_at(curve: &[(f64, f64)], target: f64) -> Option<(f64, bool)> {
    let i = curve.iter().position(|&(_, b)| b < target)?;
    if i == 0 {
        return Some((curve[0].0, true));
    }
    let ((s0, b0), (s1, b1)) = (curve[i - 1], curve[i]);
    // A zero-error point sits at the floor of the log scale: take a decade below the target.
    let l1 = if b1 > 0.0 {
        b1.log10()
    } else {
        target.log10() - 1.0
    };
    let (l0, lt) = (b0.log10(), target.log10());
    Some((s0 + (s1 - s0) * (l0 - lt) / (l0 - l1), false))
}

fn snr_text(curve: &[(f64, f64)]) -> String {
    match snr_at(curve, TARGET_BER) {
        Some((s, false)) => format!("{s:.1} dB"),
        Some((s, true)) => format!("≤ {s} dB"),
        None => format!(
            "not reached by {} dB",
            curve.last().map_or(0.0, |&(s, _)| s)
        ),
    }
}

/// A point of a BER curve: SNR (dB), BER and its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct CurvePoint {
    snr_db: f64,
    ber: f64,
    low: f64,
    high: f64,
}

/// How the design's point compares with the reference's: better or worse when their 95 %
/// intervals are apart, level when they overlap (the difference is within the noise).
fn compare(mine: &CurvePoint, theirs: &CurvePoint) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    if mine.high < theirs.low {
        Ordering::Less
    } else if mine.low > theirs.high {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

/// The verdict in words: where `design` beats the first reference and where it is worse
/// (runs of the SNR points both were simulated at whose 95 % intervals are apart; overlapping
/// ones are level), and the SNR at BER [`TARGET_BER`] of the design and of every reference.
/// `curves` holds (name, points with SNR ascending); the design first.
pub(super) fn verdict(curves: &[(String, Vec<CurvePoint>)]) -> String {
    use std::cmp::Ordering;
    let Some(((design, mine), refs)) = curves.split_first().map(|(d, r)| ((&d.0, &d.1), r)) else {
        return String::new();
    };
    let mut text = String::new();
    if let Some((reference, theirs)) = refs.first() {
        let compared: Vec<(f64, Ordering)> = mine
            .iter()
            .filter_map(|p| {
                let other = theirs.iter().find(|q| q.snr_db == p.snr_db)?;
                Some((p.snr_db, compare(p, other)))
            })
            .collect();
        let runs = |o: Ordering| {
            let picked: Vec<f64> = compared.iter().filter(|c| c.1 == o).map(|c| c.0).collect();
            (!picked.is_empty()).then(|| ranges(&compared, &picked))
        };
        let (better, worse, level) = (
            runs(Ordering::Less),
            runs(Ordering::Greater),
            runs(Ordering::Equal),
        );
        let everywhere = "at every SNR point";
        let clause = match (&better, &worse) {
            (Some(b), Some(w)) => format!("beats {reference} {b} and is worse than it {w}"),
            (Some(b), None) => format!(
                "beats {reference} {}",
                if level.is_none() { everywhere } else { b }
            ),
            (None, Some(w)) => format!(
                "is worse than {reference} {}",
                if level.is_none() { everywhere } else { w }
            ),
            (None, None) => format!("is level with {reference} {everywhere}"),
        };
        text = if compared.is_empty() {
            format!("{design} and {reference} share no SNR point.")
        } else {
            match (&level, better.is_some() || worse.is_some()) {
                (Some(l), true) => format!(
                    "**{design} {clause}** and level with it {l} (within the 95 % intervals)."
                ),
                (Some(_), false) => {
                    format!("**{design} {clause}** (within the 95 % intervals).")
                }
                (None, _) => format!("**{design} {clause}.**"),
            }
        };
        text.push(' ');
    }
    let at: Vec<String> = curves
        .iter()
        .map(|(name, c)| {
            let c: Vec<(f64, f64)> = c.iter().map(|p| (p.snr_db, p.ber)).collect();
            format!("{name} {}", snr_text(&c))
        })
        .collect();
    text.push_str(&format!("SNR at BER {TARGET_BER:.0e}: {}.", at.join("; ")));
    text
}

/// The BER curves of the detectors named in `order` (those with points), each with its SNRs
/// ascending, as [`verdict`] takes them.
fn curves(points: &[BerPoint], order: &[String]) -> Vec<(String, Vec<CurvePoint>)> {
    order
        .iter()
        .map(|name| {
            let mut c: Vec<CurvePoint> = points
                .iter()
                .filter(|p| &p.detector == name)
                .map(|p| CurvePoint {
                    snr_db: p.snr_db,
                    ber: p.ber,
                    low: p.ber_ci_low,
                    high: p.ber_ci_high,
                })
                .collect();
            c.sort_by(|a, b| a.snr_db.total_cmp(&b.snr_db));
            (name.clone(), c)
        })
        .filter(|(_, c)| !c.is_empty())
        .collect()
}

/// The quantization-gap table: at each SNR of `snrs` where both were simulated, the BER of the
/// f32 net and of the integer model and their ratio (`–` when the f32 net made no error).
fn gap_rows(
    points: &[BerPoint],
    snrs: &[f64],
    f32_name: &str,
    int_name: &str,
) -> Vec<(f64, String, String, String)> {
    let point = |name: &str, snr: f64| {
        points
            .iter()
            .find(|p| p.detector == name && p.snr_db == snr)
    };
    snrs.iter()
        .filter_map(|&snr| {
            let (a, b) = (point(f32_name, snr)?, point(int_name, snr)?);
            let ratio = if a.ber > 0.0 {
                format!("{:.3}", b.ber / a.ber)
            } else {
                "–".to_string()
            };
            Some((snr, cell(a), cell(b), ratio))
        })
        .collect()
}

/// A note under the quantization-gap table when the integer model beats its teacher somewhere.
fn gap_note(rows: &[(f64, String, String, String)]) -> String {
    let below = rows
        .iter()
        .any(|r| r.3.parse::<f64>().is_ok_and(|ratio| ratio < 1.0));
    if below {
        "A ratio below 1 is not an error: the quantization stage trains the net further on top \
         of its f32 teacher (its own epochs), so the integer model can end ahead of it.\n\n"
            .to_string()
    } else {
        String::new()
    }
}

/// The runs of consecutive SNR points of `all` that are in `picked`, in words: `from a to b dB`
/// (or `at a dB`), joined by commas and a final `and`.
fn ranges<T>(all: &[(f64, T)], picked: &[f64]) -> String {
    let mut out = Vec::new();
    let mut run: Vec<f64> = Vec::new();
    for (s, _) in all {
        if picked.contains(s) {
            run.push(*s);
        } else if !run.is_empty() {
            out.push(range(&run));
            run.clear();
        }
    }
    if !run.is_empty() {
        out.push(range(&run));
    }
    match out.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

fn range(run: &[f64]) -> String {
    match run {
        [one] => format!("at {one} dB"),
        _ => format!("from {} to {} dB", run[0], run[run.len() - 1]),
    }
}

pub(super) fn join(v: &[f64]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The summary of a finished flow.
pub(super) fn summary(
    config: &FlowConfig,
    args: &FlowArgs,
    r: &Results,
    stages: &Stages,
) -> String {
    let headline = format!(
        "{} link (SNR per receive antenna), {}",
        crate::plot::style::link_name(config.link.nt, config.link.nr, config.link.modulation),
        r.design
    );
    let mut ber_names: Vec<String> = Vec::new();
    for p in &r.ber {
        if !ber_names.contains(&p.detector) {
            ber_names.push(p.detector.clone());
        }
    }
    let point = |name: &str, snr: f64| r.ber.iter().find(|p| p.detector == name && p.snr_db == snr);
    let ber_rows = config
        .ber
        .snr_db
        .iter()
        .map(|&snr| {
            let cells = ber_names
                .iter()
                .map(|n| point(n, snr).map_or("–".to_string(), cell))
                .collect();
            (snr, cells)
        })
        .collect();
    let int_name = format!("{}-int", r.ir_name);
    let gap_rows = gap_rows(&r.ber, &config.ber.snr_db, &r.f32_name, &int_name);
    let mut order = vec![int_name.clone()];
    order.extend(config.ber.references.iter().cloned());
    order.extend(r.extra_references.iter().cloned());
    let curves = curves(&r.ber, &order);
    let gap_note = gap_note(&gap_rows);
    let template = Summary {
        name: &r.ir_name,
        headline,
        ber_names,
        ber_rows,
        gap_rows,
        gap_note,
        verdict: verdict(&curves),
        hardware: &r.hardware,
        cosim: &r.cosim_text,
        commands: if config.is_cg() {
            super::gram::commands(config, args)
        } else {
            commands(config, args)
        },
        stages: stages
            .log
            .iter()
            .map(|l| (l.stage, l.outcome.clone(), format!("{:.1}", l.seconds)))
            .collect(),
    };
    template
        .render()
        .expect("the summary template renders plain strings")
}

/// The energy line of the summary: the design's pJ per bit under both models of
/// docs/energy.md beside MMSE and kbest:32 at 16-bit fixed point (their per-channel work over
/// one resource block).
pub(super) fn energy_line(e: &EnergyReport) -> String {
    let fig = |en: &kaq_ir::energy::Energy| {
        format!("{:.3} / {:.3}", en.paper.pj_per_bit, en.horowitz.pj_per_bit)
    };
    let mut s = format!(
        "energy (docs/energy.md, pJ per bit, model 1 / model 2): design **{}**",
        fig(&e.design)
    );
    for b in &e.baselines {
        if b.arith == kaq_ir::energy::Arith::fixed(16) && b.detector != "zf" {
            s.push_str(&format!(", {} (16-bit) {}", b.detector, fig(&b.energy)));
        }
    }
    s.push_str(&format!(
        " (baselines' per-channel work over {} vectors)",
        e.baselines
            .first()
            .map_or(DEFAULT_BLOCK, |b| b.energy.block)
    ));
    s
}

/// The Yosys line of the summary; a synthesis stopped by its time limit (`limit_s`) says so
/// first, with the stages it lacks, and that the next run tries again.
pub(super) fn synth_line(synth: Option<&serde_json::Value>, limit_s: u64) -> String {
    match synth {
        Some(v) if v["complete"].as_bool() == Some(false) => {
            let missing: Vec<&str> = v["missing"]
                .as_array()
                .map(|m| m.iter().filter_map(|s| s.as_str()).collect())
                .unwrap_or_default();
            format!(
                "Yosys `{}` **timed out** after {limit_s} s (`rtl.synth_limit_s`; not cached, the \
                 next run tries again); not synthesized: {}; what finished: {}",
                v["command"].as_str().unwrap_or(""),
                if missing.is_empty() {
                    "–".to_string()
                } else {
                    missing.join(", ")
                },
                v["summary"].as_str().unwrap_or("")
            )
        }
        Some(v) if v.get("summary").is_some() => format!(
            "Yosys `{}` stage by stage: {}",
            v["command"].as_str().unwrap_or(""),
            v["summary"].as_str().unwrap_or("")
        ),
        Some(v) if v.get("note").is_some() => {
            format!("Yosys: {}", v["note"].as_str().unwrap_or(""))
        }
        Some(v) => format!(
            "Yosys `{}`: {} cells: {} logic, {} FF, {} carry, {} DSP, {} memory, {} latches ({:.0} s);",
            v["command"].as_str().unwrap_or(""),
            v["total"],
            v["logic"],
            v["ff"],
            v["carry"],
            v["dsp"],
            v["memory"],
            v["latch"],
            v["seconds"].as_f64().unwrap_or(0.0)
        ),
        None => "Yosys: not run (see the stage log below).".to_string(),
    }
}

pub(super) fn cosim_text(cosim: Option<&serde_json::Value>, note: Option<&str>) -> String {
    let Some(v) = cosim else {
        return match note {
            Some(note) => format!("Not run: {note}."),
            None => "Not run.".to_string(),
        };
    };
    let mismatches = v["mismatches"].as_u64().unwrap_or(u64::MAX);
    let mut paragraphs = vec![format!(
        "**{}**: {} frames through the Verilator-built RTL with random input stalls and \
         output back-pressure (probability {}), every output code, decision bit and layer \
         state compared with the integer golden model: {} mismatches.",
        if mismatches == 0 {
            "Bit-exact"
        } else {
            "MISMATCH"
        },
        v["frames"],
        v["stall_prob"],
        mismatches
    )];
    if let Some(first) = v["first_mismatch"].as_str() {
        paragraphs.push(format!("First mismatch: {first}"));
    }
    paragraphs.push(format!(
        "Cycles per frame measured {} (estimated {}), latency measured {} cycles (estimated {}); \
         {:.0} frames/s co-simulated; Verilator build {:.1} s{}.",
        v["measured_ii"],
        v["estimated_ii"],
        v["measured_latency"],
        v["estimated_latency"],
        v["frames_per_second"].as_f64().unwrap_or(0.0),
        v["build_seconds"].as_f64().unwrap_or(0.0),
        if v["build_cached"].as_bool() == Some(true) {
            " (cached)"
        } else {
            ""
        }
    ));
    paragraphs.join("\n\n")
}

/// ` --block T` for a link with channel blocks of T > 1 frames, else nothing.
pub(super) fn block_flag(c: &FlowConfig) -> String {
    if c.link.block == 1 {
        String::new()
    } else {
        format!(" --block {}", c.link.block)
    }
}

/// The command of every stage, as `kaq` subcommands (after the `mkdir` of the models
/// directory), runnable as printed from any directory.
fn commands(c: &FlowConfig, args: &FlowArgs) -> Vec<String> {
    let out = args.out.display();
    let mut commands = vec![
        // `kaq train` writes into an existing directory only.
        format!("mkdir -p {out}/models"),
        format!(
            "kaq train --nt {} --nr {} --mod {}{} --arch {} --prox {} --layers {}{} --init {} --samples {} --val-samples {} --batch {} --epochs {} --lr {} --lr-step {} --seed {} --snr {} --out {out}/models/f32.json",
            c.link.nt,
            c.link.nr,
            c.link.modulation,
            block_flag(c),
            c.net.arch,
            c.net.prox,
            c.net.layers,
            if c.net.momentum { " --momentum" } else { "" },
            c.net.init,
            c.train.samples,
            c.train.val_samples,
            c.train.batch,
            c.train.epochs,
            c.train.lr,
            c.train.lr_step,
            c.train.seed,
            join(&c.train.snr_db),
        ),
        format!(
            "kaq train --quant {} --teacher {out}/models/f32.json --bits {} --epochs {} --lr {} --lr-step {} --epsilon {} --kernel {} --samples {} --val-samples {} --batch {} --seed {} --snr {} --out {out}/models/quant.json",
            c.quant.method,
            c.quant.bits,
            c.quant.epochs,
            c.quant.lr,
            c.quant.lr_step,
            c.quant.epsilon,
            c.quant.kernel,
            c.train.samples,
            c.train.val_samples,
            c.train.batch,
            c.train.seed,
            join(&c.train.snr_db),
        ),
        format!(
            "kaq lower --model {out}/models/quant.json --mult-bits {} --out {out}/ir.json",
            c.quant.mult_bits
        ),
        format!(
            "kaq codegen --ir {out}/ir.json --lanes {} {} --top {} --testbench-frames {} --out {out}/rtl",
            c.lanes(),
            c.pipeline_flag(),
            c.rtl.top,
            c.rtl.testbench_frames
        ),
        format!(
            "kaq report --ir {out}/ir.json --lanes {} {}{}",
            c.lanes(),
            c.pipeline_flag(),
            if c.rtl.synth == "none" {
                String::new()
            } else {
                // The flow's limit and its per-stage cache, so the command repeats its synthesis.
                format!(
                    " --synth {} --synth-limit {} --synth-cache {out}/synth-cache",
                    c.rtl.synth, c.rtl.synth_limit_s
                )
            }
        ),
        format!(
            "kaq cosim --ir {out}/ir.json --lanes {} {} --frames {} --snr {} --stall-prob {} --seed {}",
            c.lanes(),
            c.pipeline_flag(),
            c.cosim.frames,
            join(&c.ber.snr_db),
            c.cosim.stall_prob,
            c.cosim.seed
        ),
        format!(
            "kaq ber --nt {} --nr {} --mod {}{} --detector {} --model {out}/models/f32.json --ir {out}/ir.json --snr {} --min-errors {} --max-frames {} --seed {}",
            c.link.nt,
            c.link.nr,
            c.link.modulation,
            block_flag(c),
            c.ber.references.join(","),
            join(&c.ber.snr_db),
            c.ber.min_errors,
            c.ber.max_frames,
            c.ber.seed
        ),
    ];
    // The flow skips co-simulation at 0 frames (and `kaq cosim` needs at least one).
    if c.cosim.frames == 0 {
        commands.retain(|l| !l.starts_with("kaq cosim "));
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_line_quotes_the_estimate() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pgd-qpsk-2x2/ir.json");
        let ir = kaq_ir::Ir::from_json(&std::fs::read_to_string(path).unwrap(), path).unwrap();
        let e = kaq_ir::energy::estimate(&ir);
        let line = energy_line(&crate::cmd::report::energy::energy_report(
            &ir,
            DEFAULT_BLOCK,
        ));
        let want = format!(
            "design **{:.3} / {:.3}**",
            e.paper.pj_per_bit, e.horowitz.pj_per_bit
        );
        assert!(line.contains(&want), "{line}");
        assert!(line.contains(", mmse (16-bit) ") && line.contains(", kbest:32 (16-bit) "));
        assert!(!line.contains("zf"), "{line}");
    }

    #[test]
    fn a_timed_out_synthesis_says_so() {
        let v = serde_json::json!({
            "command": "synth_xilinx -top kaq_unit",
            "complete": false,
            "missing": ["u_layer1", "u_out"],
            "summary": "QoR xilinx (PARTIAL): 0 LUTs",
        });
        assert_eq!(
            synth_line(Some(&v), 60),
            "Yosys `synth_xilinx -top kaq_unit` **timed out** after 60 s (`rtl.synth_limit_s`; \
             not cached, the next run tries again); not synthesized: u_layer1, u_out; what \
             finished: QoR xilinx (PARTIAL): 0 LUTs"
        );
        let mut done = v.clone();
        done["complete"] = serde_json::json!(true);
        let line = synth_line(Some(&done), 60);
        assert!(!line.contains("timed out"), "{line}");
        assert!(line.contains("stage by stage: QoR"), "{line}");
    }

    /// A curve of exact points (an interval of zero width).
    fn curve(points: &[(f64, f64)]) -> Vec<CurvePoint> {
        points
            .iter()
            .map(|&(snr_db, ber)| CurvePoint {
                snr_db,
                ber,
                low: ber,
                high: ber,
            })
            .collect()
    }

    #[test]
    fn snr_at_target_interpolates_in_log_ber() {
        let c = [(0.0, 1e-1), (10.0, 1e-3)];
        let (s, bound) = snr_at(&c, 1e-2).unwrap();
        assert!(!bound);
        assert!((s - 5.0).abs() < 1e-12, "{s}");
        assert_eq!(snr_at(&[(0.0, 0.2), (5.0, 0.1)], 1e-2), None);
        assert_eq!(snr_at(&[(3.0, 1e-3)], 1e-2), Some((3.0, true)));
        // A zero-error point counts as a decade below the target.
        let (s, _) = snr_at(&[(0.0, 1e-1), (10.0, 0.0)], 1e-2).unwrap();
        assert!((s - 5.0).abs() < 1e-12, "{s}");
    }

    #[test]
    fn verdict_says_where_the_design_beats_the_reference() {
        let design = (
            "pgd-int".to_string(),
            curve(&[(0.0, 0.1), (10.0, 1e-3), (20.0, 1e-4)]),
        );
        let mmse = (
            "mmse".to_string(),
            curve(&[(0.0, 0.2), (10.0, 1e-2), (20.0, 1e-5)]),
        );
        let kbest = (
            "kbest:32".to_string(),
            curve(&[(0.0, 2e-2), (10.0, 1e-4), (20.0, 0.0)]),
        );
        assert_eq!(
            verdict(&[design.clone(), mmse.clone(), kbest]),
            "**pgd-int beats mmse from 0 to 10 dB and is worse than it at 20 dB.** SNR at BER \
             1e-2: pgd-int 5.0 dB; mmse 10.0 dB; kbest:32 1.3 dB."
        );
        let worse = (
            "pgd-int".to_string(),
            curve(&[(0.0, 0.3), (10.0, 0.2), (20.0, 0.19)]),
        );
        assert_eq!(
            verdict(&[worse, mmse.clone()]),
            "**pgd-int is worse than mmse at every SNR point.** SNR at BER 1e-2: pgd-int not \
             reached by 20 dB; mmse 10.0 dB."
        );
        let best = (
            "pgd-int".to_string(),
            curve(&[(0.0, 0.1), (10.0, 1e-3), (20.0, 1e-6)]),
        );
        assert_eq!(
            verdict(&[best, mmse]),
            "**pgd-int beats mmse at every SNR point.** SNR at BER 1e-2: pgd-int 5.0 dB; mmse \
             10.0 dB."
        );
    }

    use kaq_model::ber::{Z_95, wilson_interval};

    /// A BER table as `kaq ber` writes it: (detector, SNR dB, bit errors) over 10^6 bits, each
    /// point with its 95 % Wilson interval.
    fn table(rows: &[(&str, f64, u64)]) -> Vec<BerPoint> {
        let bits = 1_000_000;
        rows.iter()
            .map(|&(detector, snr_db, bit_errors)| BerPoint {
                detector: detector.to_string(),
                snr_db,
                ber: bit_errors as f64 / bits as f64,
                ber_ci_low: wilson_interval(bit_errors, bits, Z_95).0,
                ber_ci_high: wilson_interval(bit_errors, bits, Z_95).1,
                ser: 0.0,
                bit_errors,
                bits,
                symbol_errors: 0,
                symbols: bits / 4,
                frames: bits / 128,
                stop: kaq_model::ber::StopReason::MaxFrames,
            })
            .collect()
    }

    fn verdict_of(points: &[BerPoint]) -> String {
        let order = ["int", "mmse", "kbest:32"].map(String::from);
        verdict(&curves(points, &order))
    }

    /// The default flow's shape: ahead of MMSE at low SNR, behind it from 10 dB on (the
    /// detector's error floor), K-best ahead of both.
    #[test]
    fn verdict_on_a_table_worse_than_mmse_at_high_snr() {
        let points = table(&[
            // Out of order, as a merged table may be: the curves sort by SNR.
            ("int", 10.0, 9_000),
            ("int", 0.0, 150_000),
            ("int", 5.0, 60_000),
            ("int", 15.0, 5_000),
            ("int", 20.0, 4_000),
            ("mmse", 0.0, 180_000),
            ("mmse", 5.0, 80_000),
            ("mmse", 10.0, 10_000),
            ("mmse", 15.0, 300),
            ("mmse", 20.0, 2),
            ("kbest:32", 0.0, 100_000),
            ("kbest:32", 5.0, 20_000),
            ("kbest:32", 10.0, 100),
            ("kbest:32", 15.0, 0),
            ("kbest:32", 20.0, 0),
            // A detector the verdict does not name is left out.
            ("pgd-soft-k5", 0.0, 1),
        ]);
        // int crosses 1e-2 between 5 dB (6e-2) and 10 dB (9e-3): 5 + 5·log(6)/log(6/0.9).
        let int_snr = 5.0 + 5.0 * (6.0f64).log10() / (6.0f64 / 0.9).log10();
        assert_eq!(format!("{int_snr:.1}"), "9.7");
        assert_eq!(
            verdict_of(&points),
            "**int beats mmse from 0 to 10 dB and is worse than it from 15 to 20 dB.** SNR at \
             BER 1e-2: int 9.7 dB; mmse 10.0 dB; kbest:32 5.7 dB."
        );
    }

    #[test]
    fn verdict_on_tables_worse_than_mmse() {
        // Worse from 5 dB on, level at 0 dB.
        let points = table(&[
            ("int", 0.0, 200_000),
            ("int", 5.0, 90_000),
            ("int", 10.0, 40_000),
            ("mmse", 0.0, 200_000),
            ("mmse", 5.0, 80_000),
            ("mmse", 10.0, 10_000),
        ]);
        assert_eq!(
            verdict_of(&points),
            "**int is worse than mmse from 5 to 10 dB** and level with it at 0 dB (within the 95 \
             % intervals). SNR at BER 1e-2: int not reached by 10 dB; mmse not reached by 10 dB."
        );
        // Worse everywhere it was simulated; MMSE alone reaches 1e-2.
        let points = table(&[
            ("int", 0.0, 200_000),
            ("int", 10.0, 50_000),
            ("int", 20.0, 30_000),
            ("mmse", 0.0, 150_000),
            ("mmse", 10.0, 20_000),
            ("mmse", 20.0, 20),
        ]);
        assert_eq!(
            verdict_of(&points),
            "**int is worse than mmse at every SNR point.** SNR at BER 1e-2: int not reached \
             by 20 dB; mmse 11.0 dB."
        );
        // Runs that alternate.
        let points = table(&[
            ("int", 0.0, 100_000),
            ("int", 5.0, 90_000),
            ("int", 10.0, 1_000),
            ("int", 15.0, 900),
            ("int", 20.0, 800),
            ("mmse", 0.0, 200_000),
            ("mmse", 5.0, 80_000),
            ("mmse", 10.0, 10_000),
            ("mmse", 15.0, 100),
            ("mmse", 20.0, 1),
        ]);
        assert!(
            verdict_of(&points).starts_with(
                "**int beats mmse at 0 dB and at 10 dB and is worse than it at 5 dB and from 15 \
                 to 20 dB.** SNR at BER 1e-2: int "
            ),
            "{}",
            verdict_of(&points)
        );
    }

    #[test]
    fn the_gap_table_prints_a_zero_error_point_as_its_bound() {
        let mut points = table(&[
            ("f32", 0.0, 100_000),
            ("int", 0.0, 75_000),
            ("f32", 10.0, 0),
            ("int", 10.0, 0),
            ("int", 20.0, 0),
        ]);
        for p in points.iter_mut().filter(|p| p.bit_errors == 0) {
            p.ber_ci_high = 3.84e-6;
        }
        assert_eq!(
            gap_rows(&points, &[0.0, 10.0, 20.0], "f32", "int"),
            vec![
                (0.0, "1.00e-1".into(), "7.50e-2".into(), "0.750".into()),
                (10.0, "< 3.8e-6".into(), "< 3.8e-6".into(), "–".into()),
            ]
        );
        // The ratio below 1 gets its explanation.
        assert!(gap_note(&gap_rows(&points, &[0.0], "f32", "int")).contains("not an error"));
        assert!(gap_note(&gap_rows(&points, &[10.0], "f32", "int")).is_empty());
    }

    #[test]
    fn verdict_on_tables_with_zero_error_points_and_ties() {
        // Both without errors at 20 dB: level there, not better or worse.
        let points = table(&[
            ("int", 0.0, 100_000),
            ("int", 10.0, 1_000),
            ("int", 20.0, 0),
            ("mmse", 0.0, 200_000),
            ("mmse", 10.0, 10_000),
            ("mmse", 20.0, 0),
        ]);
        assert_eq!(
            verdict_of(&points),
            "**int beats mmse from 0 to 10 dB** and level with it at 20 dB (within the 95 % \
             intervals). SNR at BER 1e-2: int 5.0 dB; mmse 10.0 dB."
        );
        // A difference within the noise is no win: 10 100 against 10 000 errors in 10^6 bits
        // have overlapping intervals; 1 000 against 2 000 do not.
        let close = table(&[
            ("int", 0.0, 10_100),
            ("int", 10.0, 1_000),
            ("mmse", 0.0, 10_000),
            ("mmse", 10.0, 2_000),
        ]);
        let v = verdict_of(&close);
        assert!(
            v.starts_with(
                "**int beats mmse at 10 dB** and level with it at 0 dB (within the 95 % \
                 intervals). SNR at BER 1e-2: "
            ),
            "{v}"
        );
        // Every point the same.
        let same = table(&[("int", 0.0, 5), ("mmse", 0.0, 5)]);
        assert_eq!(
            verdict_of(&same),
            "**int is level with mmse at every SNR point** (within the 95 % intervals). SNR at \
             BER 1e-2: int ≤ 0 dB; mmse ≤ 0 dB."
        );
        // No SNR in common: no comparison, only the SNRs at the target.
        let apart = table(&[("int", 0.0, 5), ("mmse", 3.0, 5)]);
        assert_eq!(
            verdict_of(&apart),
            "int and mmse share no SNR point. SNR at BER 1e-2: int ≤ 0 dB; mmse ≤ 3 dB."
        );
        // No reference simulated: the design's SNR alone.
        let alone = table(&[("int", 0.0, 100_000), ("int", 10.0, 1_000)]);
        assert_eq!(verdict_of(&alone), "SNR at BER 1e-2: int 5.0 dB.");
    }
}
