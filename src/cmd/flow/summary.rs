//! The flow's `summary.md`: the results formatted here, laid out by `templates/summary.md`.

use askama::Template;
use kaq_model::Detector;
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
    t: &'a kaq_codegen::report::Totals,
    synth: String,
    energy: String,
    codegen_seconds: String,
    cosim: String,
    commands: Vec<String>,
    stages: Vec<(&'static str, String, String)>,
}

/// A BER for a table: two significant decimals in scientific notation.
fn sci(v: f64) -> String {
    if v == 0.0 {
        "0".to_string()
    } else {
        format!("{v:.2e}")
    }
}

/// A measured point for a table: its BER, or for a point without errors `< u`, the upper end
/// of its 95 % interval.
fn cell(p: &BerPoint) -> String {
    if p.bit_errors == 0 {
        format!("< {:.1e}", p.ber_ci_high)
    } else {
        sci(p.ber)
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

/// The verdict in words: where `design` beats the first reference (SNR ranges of the points at
/// which its BER is lower), and the SNR at BER [`TARGET_BER`] of the design and of every
/// reference. `curves` holds (name, points with SNR ascending); the design first.
pub(super) fn verdict(curves: &[(String, Vec<(f64, f64)>)]) -> String {
    let Some(((design, mine), refs)) = curves.split_first().map(|(d, r)| ((&d.0, &d.1), r)) else {
        return String::new();
    };
    let mut text = String::new();
    if let Some((reference, theirs)) = refs.first() {
        let better: Vec<f64> = mine
            .iter()
            .filter_map(|&(s, b)| {
                let other = theirs.iter().find(|&&(t, _)| t == s)?.1;
                (b < other).then_some(s)
            })
            .collect();
        let compared = mine
            .iter()
            .filter(|&&(s, _)| theirs.iter().any(|&(t, _)| t == s))
            .count();
        text = if better.is_empty() {
            format!("**{design} is worse than {reference} at every SNR point** (or level with it).")
        } else if better.len() == compared {
            format!("**{design} beats {reference} at every SNR point.**")
        } else {
            let ranges = ranges(mine, &better);
            format!(
                "**{design} beats {reference} at {} dB and is worse elsewhere.**",
                ranges.join(", ")
            )
        };
        text.push(' ');
    }
    let at: Vec<String> = curves
        .iter()
        .map(|(name, c)| format!("{name} {}", snr_text(c)))
        .collect();
    text.push_str(&format!("SNR at BER {TARGET_BER:.0e}: {}.", at.join("; ")));
    text
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

/// The runs of consecutive SNR points of `all` that are in `picked`, as `a–b` (or `a`).
fn ranges(all: &[(f64, f64)], picked: &[f64]) -> Vec<String> {
    let mut out = Vec::new();
    let mut run: Vec<f64> = Vec::new();
    for &(s, _) in all {
        if picked.contains(&s) {
            run.push(s);
        } else if !run.is_empty() {
            out.push(range(&run));
            run.clear();
        }
    }
    if !run.is_empty() {
        out.push(range(&run));
    }
    out
}

fn range(run: &[f64]) -> String {
    match run {
        [one] => one.to_string(),
        _ => format!("{}–{}", run[0], run[run.len() - 1]),
    }
}

fn join(v: &[f64]) -> String {
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
    let ir = &r.ir;
    let headline = format!(
        "{}×{} {} link (SNR per receive antenna), {} with K = {}, {} {}-bit; RTL with {} MAC lanes per layer stage.",
        config.link.nt,
        config.link.nr,
        config.link.modulation,
        r.f32_file.net.name(),
        config.net.layers,
        config.quant.method,
        config.quant.bits,
        config.lanes()
    );
    let mut ber_names: Vec<String> = Vec::new();
    for p in &r.ber {
        if !ber_names.contains(&p.detector) {
            ber_names.push(p.detector.clone());
        }
    }
    let point = |name: &str, snr: f64| r.ber.iter().find(|p| p.detector == name && p.snr_db == snr);
    let find = |name: &str, snr: f64| point(name, snr).map(|p| p.ber);
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
    let f32_name = r.f32_file.net.name();
    let int_name = format!("{}-int", ir.name);
    let gap_rows: Vec<(f64, String, String, String)> = config
        .ber
        .snr_db
        .iter()
        .filter_map(|&snr| {
            let (a, b) = (find(&f32_name, snr)?, find(&int_name, snr)?);
            let ratio = if a > 0.0 {
                format!("{:.3}", b / a)
            } else {
                "–".to_string()
            };
            Some((snr, sci(a), sci(b), ratio))
        })
        .collect();
    let mut order = vec![int_name.clone()];
    order.extend(config.ber.references.iter().cloned());
    let curves: Vec<(String, Vec<(f64, f64)>)> = order
        .iter()
        .map(|name| {
            let mut c: Vec<(f64, f64)> = r
                .ber
                .iter()
                .filter(|p| &p.detector == name)
                .map(|p| (p.snr_db, p.ber))
                .collect();
            c.sort_by(|a, b| a.0.total_cmp(&b.0));
            (name.clone(), c)
        })
        .filter(|(_, c)| !c.is_empty())
        .collect();
    let gap_note = gap_note(&gap_rows);
    let template = Summary {
        name: &ir.name,
        headline,
        ber_names,
        ber_rows,
        gap_rows,
        gap_note,
        verdict: verdict(&curves),
        t: &r.report.total,
        synth: synth_line(r.synth.as_ref(), config.rtl.synth_limit_s),
        energy: energy_line(&r.energy),
        codegen_seconds: format!("{:.2}", r.codegen_seconds),
        cosim: cosim_text(r.cosim.as_ref(), r.cosim_note.as_deref()),
        commands: commands(config, args),
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
fn energy_line(e: &EnergyReport) -> String {
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
fn synth_line(synth: Option<&serde_json::Value>, limit_s: u64) -> String {
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

fn cosim_text(cosim: Option<&serde_json::Value>, note: Option<&str>) -> String {
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

/// The command of every stage, as `kaq` subcommands (after the `mkdir` of the models
/// directory), runnable as printed from any directory.
fn commands(c: &FlowConfig, args: &FlowArgs) -> Vec<String> {
    let out = args.out.display();
    let mut commands = vec![
        // `kaq train` writes into an existing directory only.
        format!("mkdir -p {out}/models"),
        format!(
            "kaq train --nt {} --nr {} --mod {} --arch {} --prox {} --layers {}{} --init {} --samples {} --val-samples {} --batch {} --epochs {} --lr {} --lr-step {} --seed {} --snr {} --out {out}/models/f32.json",
            c.link.nt,
            c.link.nr,
            c.link.modulation,
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
            "kaq codegen --ir {out}/ir.json --lanes {} --top {} --testbench-frames {} --out {out}/rtl",
            c.lanes(),
            c.rtl.top,
            c.rtl.testbench_frames
        ),
        format!(
            "kaq report --ir {out}/ir.json --lanes {}{}",
            c.lanes(),
            if c.rtl.synth == "none" {
                String::new()
            } else {
                format!(" --synth {}", c.rtl.synth)
            }
        ),
        format!(
            "kaq cosim --ir {out}/ir.json --lanes {} --frames {} --stall-prob {} --seed {}",
            c.lanes(),
            c.cosim.frames,
            c.cosim.stall_prob,
            c.cosim.seed
        ),
        format!(
            "kaq ber --nt {} --nr {} --mod {} --detector {} --model {out}/models/f32.json --ir {out}/ir.json --snr {} --min-errors {} --max-frames {} --seed {}",
            c.link.nt,
            c.link.nr,
            c.link.modulation,
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

    fn curve(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
        points.to_vec()
    }

    #[test]
    fn snr_at_target_interpolates_in_log_ber() {
        let c = curve(&[(0.0, 1e-1), (10.0, 1e-3)]);
        let (s, bound) = snr_at(&c, 1e-2).unwrap();
        assert!(!bound);
        assert!((s - 5.0).abs() < 1e-12, "{s}");
        assert_eq!(snr_at(&curve(&[(0.0, 0.2), (5.0, 0.1)]), 1e-2), None);
        assert_eq!(snr_at(&curve(&[(3.0, 1e-3)]), 1e-2), Some((3.0, true)));
        // A zero-error point counts as a decade below the target.
        let (s, _) = snr_at(&curve(&[(0.0, 1e-1), (10.0, 0.0)]), 1e-2).unwrap();
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
            "**pgd-int beats mmse at 0–10 dB and is worse elsewhere.** SNR at BER 1e-2: \
             pgd-int 5.0 dB; mmse 10.0 dB; kbest:32 1.3 dB."
        );
        let worse = (
            "pgd-int".to_string(),
            curve(&[(0.0, 0.3), (10.0, 0.2), (20.0, 0.19)]),
        );
        assert_eq!(
            verdict(&[worse, mmse.clone()]),
            "**pgd-int is worse than mmse at every SNR point** (or level with it). SNR at BER \
             1e-2: pgd-int not reached by 20 dB; mmse 10.0 dB."
        );
        let best = (
            "pgd-int".to_string(),
            curve(&[(0.0, 0.1), (10.0, 1e-3), (20.0, 1e-6)]),
        );
        assert!(verdict(&[best, mmse]).starts_with("**pgd-int beats mmse at every SNR point.**"));
    }
}
