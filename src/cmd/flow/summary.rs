//! The flow's `summary.md`: the results formatted here, laid out by `templates/summary.md`.

use askama::Template;
use kaq_model::Detector;

use super::{FlowArgs, FlowConfig, Results, Stages};

#[derive(Template)]
#[template(path = "summary.md", escape = "none")]
struct Summary<'a> {
    name: &'a str,
    headline: String,
    ber_names: Vec<String>,
    ber_rows: Vec<(f64, Vec<String>)>,
    gap_rows: Vec<(f64, String, String, String)>,
    t: &'a kaq_codegen::report::Totals,
    synth: String,
    codegen_seconds: String,
    cosim: String,
    commands: Vec<String>,
    stages: Vec<(&'static str, String, String)>,
}

/// A BER for a table: `0`, or two significant decimals in scientific notation.
fn sci(v: f64) -> String {
    if v == 0.0 {
        "0".to_string()
    } else {
        format!("{v:.2e}")
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
        config.rtl.lanes
    );
    let mut ber_names: Vec<String> = Vec::new();
    for p in &r.ber {
        if !ber_names.contains(&p.detector) {
            ber_names.push(p.detector.clone());
        }
    }
    let find = |name: &str, snr: f64| {
        r.ber
            .iter()
            .find(|p| p.detector == name && p.snr_db == snr)
            .map(|p| p.ber)
    };
    let ber_rows = config
        .ber
        .snr_db
        .iter()
        .map(|&snr| {
            let cells = ber_names
                .iter()
                .map(|n| find(n, snr).map_or("–".to_string(), sci))
                .collect();
            (snr, cells)
        })
        .collect();
    let f32_name = r.f32_file.net.name();
    let int_name = format!("{}-int", ir.name);
    let gap_rows = config
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
    let template = Summary {
        name: &ir.name,
        headline,
        ber_names,
        ber_rows,
        gap_rows,
        t: &r.report.total,
        synth: synth_line(r.synth.as_ref()),
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

fn synth_line(synth: Option<&serde_json::Value>) -> String {
    match synth {
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

/// The command of every stage, as `kaq` subcommands.
fn commands(c: &FlowConfig, args: &FlowArgs) -> Vec<String> {
    let out = args.out.display();
    vec![
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
            c.rtl.lanes, c.rtl.top, c.rtl.testbench_frames
        ),
        format!(
            "kaq report --ir {out}/ir.json --lanes {}{}",
            c.rtl.lanes,
            if c.rtl.synth == "none" {
                String::new()
            } else {
                format!(" --synth {}", c.rtl.synth)
            }
        ),
        format!(
            "kaq cosim --ir {out}/ir.json --lanes {} --frames {} --stall-prob {} --seed {}",
            c.rtl.lanes, c.cosim.frames, c.cosim.stall_prob, c.cosim.seed
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
    ]
}
