//! The stages of `kaq flow` in order (docs/flow.md), each reused when its key is unchanged.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use indicatif::ProgressBar;
use kaq_codegen::report::{Report, analyse};
use kaq_ir::{Interpreter, Ir};
use kaq_model::Detector;
use kaq_model::ber::{BerConfig, BerPoint, simulate};
use kaq_model::detect::DetectorSpec;
use kaq_model::lower::{LinkFrames, LowerOptions, lower};
use kaq_model::quant::file::QuantModelFile;
use kaq_model::quant::train_quantized;
use kaq_model::train::model_file::Overwrite;
use kaq_model::train::{ModelFile, Progress, train};

use super::cache::{Stages, config_json, digest, read};
use super::config::FlowConfig;
use super::{Results, summary};
use crate::cmd::report::energy::{DEFAULT_BLOCK, EnergyReport, energy_report};
use crate::plot::{self, Series};

pub(super) fn on_progress<'a>(
    label: &'a str,
    bar: &'a ProgressBar,
) -> impl FnMut(Progress<'_>) + 'a {
    let mut epochs = 0;
    move |p| match p {
        Progress::Started { epochs: e, batches } => {
            epochs = e;
            bar.set_length(batches as u64);
            bar.set_prefix(format!("{label} epoch 1/{e}"));
        }
        Progress::Batch {
            epoch, batch, loss, ..
        } => {
            bar.set_prefix(format!("{label} epoch {epoch}/{epochs}"));
            bar.set_position(batch as u64);
            bar.set_message(format!("loss {loss:.5}"));
        }
        Progress::Epoch(r) => {
            bar.set_message(format!("val loss {:.5}", r.val_loss));
            bar.set_position(0);
        }
    }
}

/// Ends the BER stage: writes `ber.json` and `ber.svg` (titled after `design`) under the
/// flow's output, prints the stage line and records the stage under `key`, started at `t`.
pub(super) fn save_ber(
    stages: &mut Stages,
    config: &FlowConfig,
    design: &str,
    key: &str,
    t: Instant,
    points: &[BerPoint],
) -> anyhow::Result<()> {
    let doc = serde_json::json!({ "snr_definition": "per receive antenna", "points": points });
    plot::write_atomically(
        &stages.out.join("ber.json"),
        format!("{}\n", serde_json::to_string_pretty(&doc)?).as_bytes(),
    )?;
    let title = format!(
        "BER, {}: {design} and references",
        plot::style::link_name(config.link.nt, config.link.nr, config.link.modulation),
    );
    ber_plot(&stages.out.join("ber.svg"), &title, points)?;
    println!(
        "ber: {} points in {:.1} s",
        points.len(),
        t.elapsed().as_secs_f64()
    );
    stages.record("ber", key, t)
}

/// The stage `stage` that trains the PGD/ADMM net of `config` in f32 to `path` (`what` names it
/// in errors), or reuses the file when its key (`tag` and the config) is unchanged.
pub(super) fn pgd_stage(
    stages: &mut Stages,
    stage: &'static str,
    tag: &[u8],
    config: &kaq_model::train::TrainConfig,
    path: &Path,
    what: &str,
) -> anyhow::Result<ModelFile> {
    let key = digest(&[tag, config_json(config).as_bytes()]);
    if stages.up_to_date(stage, &key, &[path])
        && let Ok(file) = ModelFile::load(path)
    {
        stages.reused(stage);
        return Ok(file);
    }
    let t = Instant::now();
    let bar = crate::progress::open_bar(stage, "");
    let result = train(config, &mut on_progress(stage, &bar));
    bar.finish_and_clear();
    let file = ModelFile::from(result.with_context(|| format!("training {what} failed"))?);
    file.save(path, Overwrite::Replace)
        .with_context(|| format!("cannot save {}", path.display()))?;
    println!(
        "{stage}: trained {} in {:.1} s → {}",
        file.net.name(),
        t.elapsed().as_secs_f64(),
        path.display()
    );
    stages.record(stage, &key, t)?;
    Ok(file)
}

pub(super) fn flow(config: &FlowConfig, stages: &mut Stages) -> anyhow::Result<Results> {
    let out = stages.out.clone();

    // 1. f32 training.
    let f32_config = config.f32_config()?;
    let f32_path = out.join("models").join("f32.json");
    let f32_file = pgd_stage(stages, "f32", b"f32", &f32_config, &f32_path, "the f32 net")?;

    // 2. Quantization.
    let quant_config = config.quant_config(&f32_config);
    let quant_path = out.join("models").join("quant.json");
    let f32_bytes = read(&f32_path)?;
    let key = digest(&[
        b"quant",
        config_json(&quant_config).as_bytes(),
        config.quant.method.to_string().as_bytes(),
        &f32_bytes,
    ]);
    let quant_file = if stages.up_to_date("quant", &key, &[&quant_path])
        && let Ok(file) = QuantModelFile::load(&quant_path)
    {
        stages.reused("quant");
        file
    } else {
        let t = Instant::now();
        let label = format!("{}-{}b", config.quant.method, config.quant.bits);
        let bar = crate::progress::open_bar(&label, "");
        let result = train_quantized(
            &f32_file.net,
            config.quant.method,
            &quant_config,
            &mut on_progress(&label, &bar),
        );
        bar.finish_and_clear();
        let run = result.with_context(|| format!("quantization ({label}) failed"))?;
        let file = QuantModelFile::from(&run);
        file.save(&quant_path, Overwrite::Replace)
            .with_context(|| format!("cannot save {}", quant_path.display()))?;
        println!(
            "quant: {label} in {:.1} s → {}",
            t.elapsed().as_secs_f64(),
            quant_path.display()
        );
        stages.record("quant", &key, t)?;
        file
    };

    // 3. Lowering.
    let ir_path = out.join("ir.json");
    let quant_bytes = read(&quant_path)?;
    let key = digest(&[
        b"lower",
        &config.quant.mult_bits.to_le_bytes(),
        &quant_bytes,
    ]);
    let ir = if stages.up_to_date("lower", &key, &[&ir_path])
        && let Ok(ir) = Ir::load(&ir_path)
    {
        stages.reused("lower");
        ir
    } else {
        let t = Instant::now();
        let net = quant_file
            .quant_net()
            .map_err(|e| anyhow::anyhow!("{}: {e}", quant_path.display()))?;
        let ir = lower(
            &net,
            LowerOptions {
                mult_bits: config.quant.mult_bits,
            },
        )?;
        plot::write_atomically(&ir_path, ir.to_json().as_bytes())?;
        println!("lower: {} → {}", ir.name, ir_path.display());
        stages.record("lower", &key, t)?;
        ir
    };

    // 4. Codegen.
    let rtl_dir = out.join("rtl");
    let ir_bytes = read(&ir_path)?;
    let options = config.codegen_options();
    // The update pipeline for rtl.clock_mhz (the deepest without it).
    let upd_pipe = match config.rtl.clock_mhz {
        Some(f) => {
            let plain = kaq_codegen::lower(&ir, options.lanes, &options.top)?;
            let max = kaq_codegen::design::max_update_pipeline(ir.arch);
            let plan = kaq_codegen::estimate::pipeline_for_clock(&plain, f, max);
            println!("{}", crate::cmd::codegen::plan_line(&plan).trim_start());
            plan.upd_pipe
        }
        None => config.default_update_pipeline(),
    };
    let key = digest(&[
        b"codegen",
        env!("CARGO_PKG_VERSION").as_bytes(),
        format!("{options:?} upd_pipe {upd_pipe}").as_bytes(),
        &ir_bytes,
    ]);
    let t = Instant::now();
    let generated = kaq_codegen::generate_pipelined(&ir, &options, &LinkFrames, upd_pipe)?;
    let codegen_seconds = t.elapsed().as_secs_f64();
    let readme = rtl_dir.join("README.md");
    if stages.up_to_date("codegen", &key, &[&readme]) {
        stages.reused("codegen");
    } else {
        let written = kaq_codegen::write_design(&generated, &rtl_dir, false)?;
        println!(
            "codegen: {} files in {:.2} s → {}",
            written.len(),
            codegen_seconds,
            rtl_dir.display()
        );
        stages.record("codegen", &key, t)?;
    }

    // 5. Report: analytic always; Yosys when asked for and installed.
    let report = analyse(&generated.design);
    // The energy figures of docs/energy.md, as `kaq report` gives them.
    let energy = energy_report(&ir, DEFAULT_BLOCK);
    let synth = synth_stage(config, stages, &key, |target, limit, cache| {
        crate::cmd::report::flow_synth(&generated, target, limit, cache)
    })?;
    plot::write_atomically(
        &out.join("report.json"),
        format!(
            "{}\n",
            serde_json::to_string_pretty(&report_json(&report, synth.as_ref(), &energy))?
        )
        .as_bytes(),
    )?;

    // 6. Co-simulation.
    let (cosim, cosim_note) = cosim_stage(config, stages, &generated, &key)?;

    // 7. BER.
    let ber_path = out.join("ber.json");
    let key = digest(&[
        b"ber",
        config_json(&config.ber).as_bytes(),
        &f32_bytes,
        &ir_bytes,
    ]);
    let ber = if stages.up_to_date("ber", &key, &[&ber_path, &out.join("ber.svg")])
        && let Ok(points) = load_ber(&ber_path)
    {
        stages.reused("ber");
        points
    } else {
        let t = Instant::now();
        let points = ber_stage(config, &f32_file, &ir)?;
        save_ber(stages, config, &ir.name, &key, t, &points)?;
        points
    };
    let hardware = vec![
        format!(
            "initiation interval **{} cycles per frame** (MAC bound {}), latency {} cycles;",
            report.total.ii, report.total.mac_bound, report.total.latency
        ),
        format!(
            "{} MACs per frame; estimated {} multipliers, {} adders, {} bits of storage;",
            report.total.macs,
            report.total.multipliers,
            report.total.adders,
            report.total.memory_bits
        ),
        summary::synth_line(synth.as_ref(), config.rtl.synth_limit_s),
        summary::energy_line(&energy),
        format!(
            "code generation took {codegen_seconds:.2} s; the design is in `rtl/` (its README \
             gives the interface)."
        ),
    ];
    Ok(Results {
        f32_name: f32_file.net.name(),
        design: format!(
            "{} with K = {}, {} {}-bit; RTL with {} MAC lanes per layer stage.",
            f32_file.net.name(),
            config.net.layers,
            config.quant.method,
            config.quant.bits,
            config.lanes()
        ),
        ir_name: ir.name.clone(),
        hardware,
        cosim_text: summary::cosim_text(cosim.as_ref(), cosim_note.as_deref()),
        cosim,
        ber,
        extra_references: Vec::new(),
        energy: Some(energy),
    })
}

fn ber_stage(config: &FlowConfig, f32_file: &ModelFile, ir: &Ir) -> anyhow::Result<Vec<BerPoint>> {
    let link = config.link()?;
    let mut detectors: Vec<Box<dyn Detector>> = config
        .ber
        .references
        .iter()
        .map(|s| s.parse::<DetectorSpec>().map(|d| d.build()))
        .collect::<Result<_, _>>()?;
    detectors.push(Box::new(f32_file.net.clone()));
    detectors.push(Box::new(Interpreter::new(ir.clone())?));
    let refs: Vec<&dyn Detector> = detectors.iter().map(AsRef::as_ref).collect();
    let ber_config = BerConfig::new(
        link,
        config.ber.snr_db.clone(),
        config.ber.min_errors,
        config.ber.max_frames,
        config.ber.seed,
    );
    let bar = crate::progress::percent_bar("ber", ber_config.snr_db.len() as u64 * 1000);
    let mut on_progress = |p: &kaq_model::ber::BerProgress| {
        bar.set_position(((p.snr_index as f64 + p.point_fraction()) * 1000.0) as u64);
        bar.set_message(format!("SNR {} dB", p.snr_db));
    };
    let points = simulate(&ber_config, &refs, Some(&mut on_progress));
    bar.finish_and_clear();
    Ok(points?)
}

pub(super) fn ber_plot(path: &Path, title: &str, points: &[BerPoint]) -> anyhow::Result<()> {
    let mut names: Vec<&str> = Vec::new();
    for p in points {
        if !names.contains(&p.detector.as_str()) {
            names.push(&p.detector);
        }
    }
    let series: Vec<Series> = names
        .iter()
        .map(|name| {
            let pts: Vec<&BerPoint> = points.iter().filter(|p| p.detector == *name).collect();
            Series {
                name: name.to_string(),
                points: pts.iter().map(|p| (p.snr_db, p.ber)).collect(),
                y_err: Some(pts.iter().map(|p| (p.ber_ci_low, p.ber_ci_high)).collect()),
            }
        })
        .collect();
    plot::line_plot(path, title, plot::style::SNR_AXIS, "BER", true, &series)
}

fn report_json(
    report: &Report,
    synth: Option<&serde_json::Value>,
    energy: &EnergyReport,
) -> serde_json::Value {
    serde_json::json!({
        "layers": report.layers.iter().map(|l| serde_json::json!({
            "layer": l.layer, "macs": l.macs, "mac_cycles": l.mac_cycles,
            "update_cycles": l.update_cycles, "latency": l.latency, "ii": l.ii,
            "multipliers": l.multipliers, "adders": l.adders, "memory_bits": l.memory_bits,
        })).collect::<Vec<_>>(),
        "total": {
            "macs": report.total.macs, "mac_bound": report.total.mac_bound,
            "latency": report.total.latency, "ii": report.total.ii,
            "multipliers": report.total.multipliers, "adders": report.total.adders,
            "memory_bits": report.total.memory_bits,
        },
        "synth": synth,
        "energy": energy,
    })
}

/// Yosys on the generated RTL (reused when the RTL and target did not change). A missing
/// Yosys, a time-out or a failure is a note in the summary, not an error of the flow.
pub(super) fn synth_stage(
    config: &FlowConfig,
    stages: &mut Stages,
    rtl_key: &str,
    synthesize: impl FnOnce(
        kaq_codegen::synth::Target,
        std::time::Duration,
        &Path,
    ) -> anyhow::Result<serde_json::Value>,
) -> anyhow::Result<Option<serde_json::Value>> {
    use kaq_codegen::synth::{Target, find_yosys};
    if config.rtl.synth == "none" {
        stages.skipped("synth", "rtl.synth is none".to_string());
        return Ok(None);
    }
    let target: Target = config
        .rtl
        .synth
        .parse()
        .map_err(|e: String| anyhow::anyhow!("config rtl.synth: {e}"))?;
    let path = stages.out.join("synth.json");
    let key = digest(&[
        b"synth",
        rtl_key.as_bytes(),
        target.name().as_bytes(),
        &config.rtl.synth_limit_s.to_le_bytes(),
    ]);
    if stages.up_to_date("synth", &key, &[&path])
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&read(&path)?)
    {
        stages.reused("synth");
        return Ok(Some(v));
    }
    match find_yosys() {
        Ok(Some(_)) => {}
        Ok(None) | Err(_) => {
            stages.skipped("synth", "Yosys is not installed".to_string());
            return Ok(None);
        }
    }
    let t = Instant::now();
    let limit = std::time::Duration::from_secs(config.rtl.synth_limit_s);
    let cache = stages.out.join("synth-cache");
    let value = match synthesize(target, limit, &cache) {
        Ok(v) => v,
        Err(e) => {
            let note = format!("Yosys {target} synthesis failed: {e:#}");
            println!("synth: {note}");
            serde_json::json!({ "target": target.name(), "failed": true, "note": note })
        }
    };
    plot::write_atomically(
        &path,
        format!("{}\n", serde_json::to_string_pretty(&value)?).as_bytes(),
    )?;
    if value["failed"].as_bool() == Some(true) {
        stages.unfinished("synth", "failed (not cached)".into(), t);
    } else if value["complete"].as_bool() == Some(false) {
        stages.unfinished(
            "synth",
            format!(
                "timed out after {} s (not cached; what finished is reported)",
                config.rtl.synth_limit_s
            ),
            t,
        );
    } else {
        stages.record("synth", &key, t)?;
    }
    Ok(Some(value))
}

/// Why the co-simulation stage does not run (`cosim.frames` is 0, or Verilator is missing),
/// recorded as the stage's skip note; `None` when it can run.
pub(super) fn cosim_skip(config: &FlowConfig, stages: &mut Stages) -> Option<String> {
    use kaq_sim::tools::{Tool, find};
    let note = if config.cosim.frames == 0 {
        "cosim.frames is 0"
    } else if !matches!(find(Tool::Verilator), Ok(Some(_))) {
        "Verilator is not installed (`apt-get install -y verilator`)"
    } else {
        return None;
    };
    stages.skipped("cosim", note.to_string());
    Some(note.to_string())
}

/// The co-simulation result at `path` when the stage's `key` is unchanged (recorded as
/// reused), else `None`.
pub(super) fn cosim_reused(
    stages: &mut Stages,
    key: &str,
    path: &Path,
) -> anyhow::Result<Option<serde_json::Value>> {
    if stages.up_to_date("cosim", key, &[path])
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&read(path)?)
    {
        stages.reused("cosim");
        return Ok(Some(v));
    }
    Ok(None)
}

/// Verilator co-simulation (reused when the RTL and settings did not change): frames at the
/// BER SNR points, random input stalls and output back-pressure, every output and every
/// layer's states compared with the golden model. A missing Verilator is a note; a mismatch
/// is an error of the flow (after the report is written).
fn cosim_stage(
    config: &FlowConfig,
    stages: &mut Stages,
    generated: &kaq_codegen::Generated,
    rtl_key: &str,
) -> anyhow::Result<(Option<serde_json::Value>, Option<String>)> {
    use kaq_sim::cosim::{FrameCodes, Rtl, Stalls, link_frames};
    if let Some(note) = cosim_skip(config, stages) {
        return Ok((None, Some(note)));
    }
    let path = stages.out.join("cosim.json");
    let key = digest(&[
        b"cosim",
        rtl_key.as_bytes(),
        config_json(&config.cosim).as_bytes(),
        config_json(&config.ber.snr_db).as_bytes(),
    ]);
    if let Some(v) = cosim_reused(stages, &key, &path)? {
        return Ok((Some(v), None));
    }
    let t = Instant::now();
    let build = crate::progress::step("cosim build", "compiling the RTL with Verilator");
    let rtl = Rtl::build(generated, false);
    build.finish(crate::cmd::cosim::build_outcome(&rtl));
    let rtl = rtl.context("building the RTL with Verilator")?;
    let stalls = Stalls {
        input: config.cosim.stall_prob,
        output: config.cosim.stall_prob,
        seed: config.cosim.seed,
    };
    let link = config.link()?;
    let interp = rtl.interpreter();
    let total = config.cosim.frames;
    let codes: Vec<FrameCodes> =
        link_frames(interp, &link, &config.ber.snr_db, total, config.cosim.seed)?
            .collect::<Result<_, _>>()?;
    let bar = crate::progress::open_bar("cosim", "");
    bar.set_length(total as u64);
    let report = rtl.cosimulate(codes.into_iter().inspect(|_| bar.inc(1)), stalls);
    bar.finish_and_clear();
    let report = report?;
    let first = report.first_mismatch.as_ref().map(|m| m.to_string());
    let value = serde_json::json!({
        "frames": report.frames,
        "mismatches": report.mismatches,
        "first_mismatch": first,
        "stall_prob": config.cosim.stall_prob,
        "measured_ii": report.measured_ii,
        "estimated_ii": report.estimated_ii,
        "measured_latency": report.measured_latency,
        "estimated_latency": report.estimated_latency,
        "frames_per_second": report.frames_per_second,
        "build_seconds": report.build_time.as_secs_f64(),
        "build_cached": report.cached,
    });
    plot::write_atomically(
        &path,
        format!("{}\n", serde_json::to_string_pretty(&value)?).as_bytes(),
    )?;
    println!(
        "cosim: {} frames, {} mismatches, {:.0} frames/s (build {:.1} s{})",
        report.frames,
        report.mismatches,
        report.frames_per_second,
        report.build_time.as_secs_f64(),
        if report.cached { ", cached" } else { "" }
    );
    stages.record("cosim", &key, t)?;
    Ok((Some(value), None))
}

pub(super) fn load_ber(path: &Path) -> anyhow::Result<Vec<BerPoint>> {
    let v: serde_json::Value = serde_json::from_slice(&read(path)?)?;
    Ok(serde_json::from_value(v["points"].clone())?)
}
