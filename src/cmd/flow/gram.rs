//! The stages of `kaq flow` for the Gram-domain cg net (`net.arch` cg, docs/flow.md): the f32
//! cg net and the paper's PGD-Net (the reference beside it), the cg student written as its
//! IR v2 document, the folded engine's RTL, its cycle model and synthesis at the channel block
//! T = `link.block`, co-simulation in channel blocks and the BER run, each reused when its key
//! is unchanged, as the v1 stages.

use std::time::Instant;

use anyhow::Context;
use kaq_codegen::gram::{Program, program::analytic_cycles_lanes, stream_cycles};
use kaq_ir::gram::{GramInterpreter, GramIr};
use kaq_model::Detector;
use kaq_model::ber::{BerConfig, simulate};
use kaq_model::detect::DetectorSpec;
use kaq_model::gram::file::GramModelFile;
use kaq_model::train::model_file::Overwrite;
use serde_json::json;

use super::cache::{Stages, config_json, digest, read};
use super::config::FlowConfig;
use super::stages::{
    cosim_reused, cosim_skip, load_ber, on_progress, pgd_stage, save_ber, synth_stage,
};
use super::summary::{join, synth_line};
use super::{FlowArgs, Results};
use crate::plot;

pub(super) fn flow(config: &FlowConfig, stages: &mut Stages) -> anyhow::Result<Results> {
    let out = stages.out.clone();

    // 1. The f32 cg net.
    let f32_config = config.gram_config()?;
    let f32_path = out.join("models").join("f32.json");
    let key = digest(&[b"f32-cg", config_json(&f32_config).as_bytes()]);
    let f32_file = if stages.up_to_date("f32", &key, &[&f32_path])
        && let Ok(file) = GramModelFile::load(&f32_path)
    {
        stages.reused("f32");
        file
    } else {
        let t = Instant::now();
        let bar = crate::progress::open_bar("f32", "");
        let result = kaq_model::gram::train::train(&f32_config, &mut on_progress("f32", &bar));
        bar.finish_and_clear();
        let file = GramModelFile::from(result.context("training the f32 cg net failed")?);
        file.save(&f32_path, Overwrite::Replace)
            .with_context(|| format!("cannot save {}", f32_path.display()))?;
        println!(
            "f32: trained {} in {:.1} s → {}",
            file.net.name(),
            t.elapsed().as_secs_f64(),
            f32_path.display()
        );
        stages.record("f32", &key, t)?;
        file
    };
    let f32_name = f32_file.net.name();

    // 2. The paper's PGD-Net on the same link and data, the reference beside the cg design.
    let paper_config = config.paper_config()?;
    let paper_path = out.join("models").join("pgd.json");
    let paper_file = pgd_stage(
        stages,
        "paper",
        b"paper",
        &paper_config,
        &paper_path,
        "the paper's PGD-Net",
    )?;

    // 3. The student: PTQ, QAT-MSE or KAQ straight to its IR document (v2, or v3 for KAQ).
    let quant_config = config.gram_quant_config(&f32_config);
    let ir_path = out.join("ir.json");
    let f32_bytes = read(&f32_path)?;
    let method = config.quant.method;
    let bits = config.quant.bits;
    // The MMD settings enter the key only for kaq, so a ptq or qat-mse out/ stays up to date.
    let kaq_key = if method == kaq_model::quant::QuantMethod::Kaq {
        config_json(&config.kaq_config()).into_bytes()
    } else {
        Vec::new()
    };
    let key = digest(&[
        b"quant-cg",
        method.to_string().as_bytes(),
        &bits.to_le_bytes(),
        config_json(&quant_config).as_bytes(),
        &f32_bytes,
        &kaq_key,
    ]);
    let ir = if stages.up_to_date("quant", &key, &[&ir_path])
        && let Ok(kaq_ir::gram::AnyIr::V2(ir)) = kaq_ir::gram::AnyIr::load(&ir_path)
    {
        stages.reused("quant");
        ir
    } else {
        let t = Instant::now();
        let label = format!("{method}-{bits}b");
        let bar = crate::progress::open_bar(&label, "");
        // The MMD settings (used by `quant.method = "kaq"` only).
        let kaq = config.kaq_config();
        let result = crate::cmd::train::cg_student(
            &f32_file.net,
            method,
            bits,
            &quant_config,
            &kaq,
            &mut on_progress(&label, &bar),
        );
        bar.finish_and_clear();
        let (ir, _) = result.with_context(|| format!("quantization ({label}) failed"))?;
        plot::write_atomically(&ir_path, ir.to_json().as_bytes())?;
        println!(
            "quant: {label} in {:.1} s → {} ({}, IR version {})",
            t.elapsed().as_secs_f64(),
            ir_path.display(),
            ir.name,
            ir.version
        );
        stages.record("quant", &key, t)?;
        ir
    };
    stages.skipped(
        "lower",
        "the cg student is written as its IR document by quant".to_string(),
    );

    // 4. Codegen: the folded engine.
    let rtl_dir = out.join("rtl");
    let ir_bytes = read(&ir_path)?;
    let lanes = config.lanes();
    // One lane keeps the key it had before lanes existed, so an existing out/ stays up to date.
    let lanes_key = if lanes == 1 {
        Vec::new()
    } else {
        format!("lanes {lanes}").into_bytes()
    };
    let key = digest(&[
        b"codegen-cg",
        env!("CARGO_PKG_VERSION").as_bytes(),
        config.rtl.top.as_bytes(),
        &ir_bytes,
        &lanes_key,
    ]);
    let t = Instant::now();
    let files = kaq_codegen::gram::generate_lanes(&ir, &config.rtl.top, lanes)?;
    let codegen_seconds = t.elapsed().as_secs_f64();
    if stages.up_to_date("codegen", &key, &[&rtl_dir.join("README.md")]) {
        stages.reused("codegen");
    } else {
        let written = kaq_codegen::write_files(&files, &rtl_dir, false)?;
        println!(
            "codegen: {} files in {:.2} s → {}",
            written.len(),
            codegen_seconds,
            rtl_dir.display()
        );
        stages.record("codegen", &key, t)?;
    }

    // 5. Report: the cycle model at T, and Yosys as one unit when asked for and installed.
    let block = config.link.block as u64;
    let prog = Program::with_lanes(&ir, lanes);
    let (p_blk, p_vec) = analytic_cycles_lanes(&ir, lanes);
    let (macs_block, macs_vector) = prog.multiplies();
    let block_cycles = stream_cycles(&prog, block);
    // Both energy models of docs/energy.md at T, the design from its IR alone.
    let energy = crate::cmd::report::energy::gram_energy_report(&ir, block as usize);
    let cycles = json!({
        "p_blk": p_blk,
        "p_vec": p_vec,
        "block": block,
        "block_cycles": block_cycles,
        "ii_effective": block_cycles as f64 / block as f64,
        "macs_block": macs_block,
        "macs_vector": macs_vector,
    });
    let synth = synth_stage(
        config,
        stages,
        &format!("{key} block {block}"),
        |target, limit, cache| {
            let dir = crate::cmd::report::scratch()?;
            let mut options = kaq_codegen::hierarchy::HierOptions::new(target);
            options.limit = Some(limit);
            options.cache = Some(cache.to_path_buf());
            // One unit, so no per-unit line comes until it ends: a step shows it running.
            let step = crate::progress::step(
                "synth",
                &format!("Yosys {target} of the engine (limit {} s)", limit.as_secs()),
            );
            let e = kaq_codegen::gram::evaluate(
                &prog,
                block,
                &dir.path().join("units"),
                &options,
                &crate::cmd::report::unit_progress,
            );
            step.finish(if e.is_ok() {
                "Yosys done"
            } else {
                "Yosys failed"
            });
            let e = e.with_context(|| format!("{target} synthesis failed"))?;
            print!("{}", crate::cmd::report::evaluation_table(&e));
            let mut v = json!(e.synth.total);
            v["complete"] = json!(e.synth.complete);
            v["missing"] = json!(e.synth.missing);
            v["critical"] = json!(e.synth.critical);
            v["units"] = json!(e.synth.units);
            v["qor"] = json!(e.qor);
            let lines = crate::cmd::report::qor_lines(&e.qor);
            v["summary"] = json!(lines.split_whitespace().collect::<Vec<_>>().join(" "));
            Ok(v)
        },
    )?;
    plot::write_atomically(
        &out.join("report.json"),
        format!(
            "{}\n",
            serde_json::to_string_pretty(&json!({
                "ir_version": 2,
                "lanes": lanes,
                "cycles": cycles,
                "synth": synth,
                "energy": energy,
            }))?
        )
        .as_bytes(),
    )?;

    // 6. Co-simulation in channel blocks of T.
    let (cosim, cosim_note) = cosim_stage(config, stages, &ir, &key)?;

    // 7. BER: the references, the f32 cg net, the paper's PGD-Net and the integer model.
    let ber_path = out.join("ber.json");
    let paper_bytes = read(&paper_path)?;
    let key = digest(&[
        b"ber-cg",
        config_json(&config.ber).as_bytes(),
        &f32_bytes,
        &paper_bytes,
        &ir_bytes,
    ]);
    let ber = if stages.up_to_date("ber", &key, &[&ber_path, &out.join("ber.svg")])
        && let Ok(points) = load_ber(&ber_path)
    {
        stages.reused("ber");
        points
    } else {
        let t = Instant::now();
        let mut detectors: Vec<Box<dyn Detector>> = config
            .ber
            .references
            .iter()
            .map(|s| s.parse::<DetectorSpec>().map(|d| d.build()))
            .collect::<Result<_, _>>()?;
        detectors.push(Box::new(f32_file.net.clone()));
        detectors.push(Box::new(paper_file.net.clone()));
        detectors.push(Box::new(GramInterpreter::new(ir.clone())?));
        let refs: Vec<&dyn Detector> = detectors.iter().map(AsRef::as_ref).collect();
        let ber_config = BerConfig::new(
            config.frame_link()?,
            config.ber.snr_db.clone(),
            config.ber.min_errors,
            config.ber.max_frames,
            config.ber.seed,
        );
        let bar = crate::progress::percent_bar("ber", ber_config.snr_db.len() as u64 * 1000);
        let mut on_ber = |p: &kaq_model::ber::BerProgress| {
            bar.set_position(((p.snr_index as f64 + p.point_fraction()) * 1000.0) as u64);
            bar.set_message(format!("SNR {} dB", p.snr_db));
        };
        let points = simulate(&ber_config, &refs, Some(&mut on_ber));
        bar.finish_and_clear();
        let points = points?;
        save_ber(stages, config, &ir.name, &key, t, &points)?;
        points
    };

    let hardware = vec![
        format!(
            "the folded IR v2 engine, {lanes} MAC lane{}: **{p_blk} cycles per \
             channel block** (the Gram stage, once per channel) and **{p_vec} cycles per \
             vector**; a block of T = {block} vectors takes {block_cycles} cycles, an effective \
             **{:.1} cycles per vector** (docs/rtl.md, IR v2);",
            if lanes == 1 { "" } else { "s" },
            block_cycles as f64 / block as f64
        ),
        format!(
            "{macs_block} multiplies per channel block and {macs_vector} per vector \
             ({:.0} per vector at T = {block});",
            macs_vector as f64 + macs_block as f64 / block as f64
        ),
        synth_line(synth.as_ref(), config.rtl.synth_limit_s),
        format!("{};", super::summary::energy_line(&energy)),
        format!(
            "code generation took {codegen_seconds:.2} s; the design is in `rtl/` (its README \
             gives the interface)."
        ),
    ];
    let inner = config.net.inner.unwrap_or(0);
    Ok(Results {
        design: format!(
            "{f32_name} (the Gram-domain unfolded CG net: K = {} layers × L = {inner} inner \
             steps), {method} {bits}-bit (IR version {}); RTL: the folded engine, channel \
             blocks of T = {block} vectors.",
            config.net.layers, ir.version
        ),
        f32_name,
        ir_name: ir.name.clone(),
        hardware,
        cosim_text: cosim_text(cosim.as_ref(), cosim_note.as_deref()),
        cosim,
        ber,
        extra_references: vec![paper_file.net.name()],
        energy: None,
    })
}

/// Verilator co-simulation of the folded engine (reused when the IR and settings did not
/// change): the frames in channel blocks of `link.block` at the BER SNR points, random stalls
/// on the block, vector and output ports, every output beat compared with the golden model
/// and every block's and vector's cycle count with the analytic model.
fn cosim_stage(
    config: &FlowConfig,
    stages: &mut Stages,
    ir: &GramIr,
    rtl_key: &str,
) -> anyhow::Result<(Option<serde_json::Value>, Option<String>)> {
    use kaq_sim::cosim::gram::{GramRtl, GramStalls, link_blocks};
    if let Some(note) = cosim_skip(config, stages) {
        return Ok((None, Some(note)));
    }
    let path = stages.out.join("cosim.json");
    let key = digest(&[
        b"cosim-cg",
        rtl_key.as_bytes(),
        &config.link.block.to_le_bytes(),
        config_json(&config.cosim).as_bytes(),
        config_json(&config.ber.snr_db).as_bytes(),
    ]);
    if let Some(v) = cosim_reused(stages, &key, &path)? {
        return Ok((Some(v), None));
    }
    let t = Instant::now();
    let build = crate::progress::step("cosim build", "compiling the RTL with Verilator");
    let rtl = GramRtl::build_lanes(ir, config.lanes(), false);
    build.finish(if rtl.is_ok() {
        "Verilator build done"
    } else {
        "Verilator build failed"
    });
    let rtl = rtl.context("building the RTL with Verilator")?;
    let block = config.link.block;
    let blocks = link_blocks(
        ir,
        config.cosim.frames,
        block,
        &config.ber.snr_db,
        config.cosim.seed,
    )?;
    let p = config.cosim.stall_prob;
    let stalls = GramStalls {
        block: p,
        vector: p,
        output: p,
        seed: config.cosim.seed,
    };
    // One call without progress of its own: say what it runs and how long it took.
    let step = crate::progress::step(
        "cosim run",
        &format!(
            "{} vectors in {} blocks, about {:.1} M cycles without stalls",
            config.cosim.frames,
            blocks.len(),
            (blocks.len() as f64 * (1 + rtl.program().block_cycles()) as f64
                + config.cosim.frames as f64 * (rtl.program().vector_cycles() + 2) as f64)
                / 1e6
        ),
    );
    let run = Instant::now();
    let report = rtl.run(&blocks, stalls);
    step.finish(if report.is_ok() { "done" } else { "failed" });
    let report = report?;
    let seconds = run.elapsed().as_secs_f64();
    let prog = rtl.program();
    let (pb, pv) = (prog.block_cycles(), prog.vector_cycles());
    let exact = report.block_cycles.iter().all(|&c| c == pb)
        && report.vector_cycles.iter().all(|&c| c == pv);
    let value = json!({
        "frames": report.vectors,
        "blocks": report.blocks,
        "block": block,
        "mismatches": report.mismatches.len(),
        "first_mismatch": report.mismatches.first(),
        "taps_compared": report.taps_compared,
        "tap_mismatches": report.tap_mismatch_count,
        "first_tap_mismatch": report.tap_mismatches.first().map(|m| m.to_string()),
        "stall_prob": p,
        "block_cycles": pb,
        "vector_cycles": pv,
        "cycles_exact": exact,
        "frames_per_second": report.vectors as f64 / seconds.max(1e-9),
        "run_seconds": seconds,
        "build_seconds": rtl.build_time().as_secs_f64(),
    });
    plot::write_atomically(
        &path,
        format!("{}\n", serde_json::to_string_pretty(&value)?).as_bytes(),
    )?;
    println!(
        "cosim: {} vectors in {} blocks of {block}, {} mismatches, {} tap values with {} \
         mismatches, cycles {}, {:.0} vectors/s (build {:.1} s)",
        report.vectors,
        report.blocks,
        report.mismatches.len(),
        report.taps_compared,
        report.tap_mismatch_count,
        if exact { "as analysed" } else { "DIFFERENT" },
        report.vectors as f64 / seconds.max(1e-9),
        rtl.build_time().as_secs_f64()
    );
    stages.record("cosim", &key, t)?;
    Ok((Some(value), None))
}

/// The summary's co-simulation section of a cg design.
fn cosim_text(cosim: Option<&serde_json::Value>, note: Option<&str>) -> String {
    let Some(v) = cosim else {
        return match note {
            Some(note) => format!("Not run: {note}."),
            None => "Not run.".to_string(),
        };
    };
    let mismatches = v["mismatches"].as_u64().unwrap_or(u64::MAX);
    // A cosim.json written before taps were compared has no tap fields.
    let taps = match (v["taps_compared"].as_u64(), v["tap_mismatches"].as_u64()) {
        (Some(compared), Some(wrong)) => Some((compared, wrong)),
        _ => None,
    };
    let exact = v["cycles_exact"].as_bool() == Some(true);
    let mut paragraphs = vec![format!(
        "**{}**: {} vectors in {} channel blocks of T = {} through the Verilator-built RTL with \
         random stalls on the block, vector and output ports (probability {}), every output \
         beat (codes, levels, last) compared with the integer golden model: {} mismatches{}.",
        if mismatches == 0 && taps.is_none_or(|(_, wrong)| wrong == 0) {
            "Bit-exact"
        } else {
            "MISMATCH"
        },
        v["frames"],
        v["blocks"],
        v["block"],
        v["stall_prob"],
        mismatches,
        match taps {
            Some((compared, wrong)) => format!(
                "; every value the engine writes in the block stage and in every layer \
                 ({compared} tap values) compared with the golden model's taps: {wrong} \
                 mismatches"
            ),
            None => "; stage taps not compared".to_string(),
        }
    )];
    if let Some(first) = v["first_mismatch"].as_str() {
        paragraphs.push(format!("First mismatch: {first}"));
    }
    if let Some(first) = v["first_tap_mismatch"].as_str() {
        paragraphs.push(format!("First tap mismatch: {first}"));
    }
    paragraphs.push(format!(
        "Cycles measured {} the analytic model: {} per channel block, {} per vector; {:.0} \
         vectors per second co-simulated ({:.1} s), Verilator build {:.1} s.",
        if exact {
            "equal to"
        } else {
            "**DIFFERENT** from"
        },
        v["block_cycles"],
        v["vector_cycles"],
        v["frames_per_second"].as_f64().unwrap_or(0.0),
        v["run_seconds"].as_f64().unwrap_or(0.0),
        v["build_seconds"].as_f64().unwrap_or(0.0),
    ));
    paragraphs.join("\n\n")
}

/// The command of every stage of a cg flow, runnable as printed from any directory.
pub(super) fn commands(c: &FlowConfig, args: &FlowArgs) -> Vec<String> {
    let out = args.out.display();
    let data = format!(
        "--samples {} --val-samples {} --batch {}",
        c.train.samples, c.train.val_samples, c.train.batch
    );
    // Training and BER with a channel per frame (FlowConfig::frame_link).
    let link = format!(
        "--nt {} --nr {} --mod {}",
        c.link.nt, c.link.nr, c.link.modulation
    );
    // `--lanes` is written only when not 1 (so the one-lane commands are as they were).
    let lanes = match c.lanes() {
        1 => String::new(),
        l => format!(" --lanes {l}"),
    };
    let paper = c.paper_config().expect("a validated config has a link");
    let p = &paper.net;
    let mut commands = vec![
        format!("mkdir -p {out}/models"),
        format!(
            "kaq train {link} --arch cg --layers {} --inner {} {data} --epochs {} --lr {} --lr-step {} --seed {} --snr {} --out {out}/models/f32.json",
            c.net.layers,
            c.net.inner.unwrap_or(0),
            c.train.epochs,
            c.train.lr,
            c.train.lr_step,
            c.train.seed,
            join(&c.train.snr_db),
        ),
        format!(
            "kaq train {link} --arch {} --prox {} --layers {} --init {} --samples {} --val-samples {} --batch {} --epochs {} --lr {} --lr-step {} --seed {} --snr {} --out {out}/models/pgd.json",
            p.arch,
            p.prox,
            p.layers,
            p.init,
            paper.samples,
            paper.val_samples,
            paper.batch,
            paper.epochs,
            paper.lr,
            paper.lr_step,
            paper.seed,
            join(&paper.snr_db),
        ),
        if c.quant.method == kaq_model::quant::QuantMethod::Ptq {
            format!(
                "kaq lower --model {out}/models/f32.json --ptq-bits {} --out {out}/ir.json",
                c.quant.bits
            )
        } else {
            format!(
                "kaq train --quant {} --teacher {out}/models/f32.json --bits {} --epochs {} --lr {} --lr-step {}{} {data} --seed {} --snr {} --out {out}/ir.json",
                c.quant.method,
                c.quant.bits,
                c.quant.epochs,
                c.quant.lr,
                c.quant.lr_step,
                if c.quant.method == kaq_model::quant::QuantMethod::Kaq {
                    format!(" --epsilon {} --kernel {}", c.quant.epsilon, c.quant.kernel)
                } else {
                    String::new()
                },
                c.train.seed,
                join(&c.train.snr_db),
            )
        },
        format!(
            "kaq codegen --ir {out}/ir.json{lanes} --top {} --out {out}/rtl",
            c.rtl.top
        ),
        format!(
            "kaq report --ir {out}/ir.json{lanes} --block {}{}",
            c.link.block,
            if c.rtl.synth == "none" {
                String::new()
            } else {
                format!(
                    " --synth {} --synth-limit {} --synth-cache {out}/synth-cache",
                    c.rtl.synth, c.rtl.synth_limit_s
                )
            }
        ),
        format!(
            "kaq cosim --ir {out}/ir.json{lanes} --frames {} --block {} --snr {} --stall-prob {} --seed {}",
            c.cosim.frames,
            c.link.block,
            join(&c.ber.snr_db),
            c.cosim.stall_prob,
            c.cosim.seed
        ),
        format!(
            "kaq ber {link} --detector {} --model {out}/models/f32.json --model {out}/models/pgd.json --ir {out}/ir.json --snr {} --min-errors {} --max-frames {} --seed {}",
            c.ber.references.join(","),
            join(&c.ber.snr_db),
            c.ber.min_errors,
            c.ber.max_frames,
            c.ber.seed
        ),
    ];
    if c.cosim.frames == 0 {
        commands.retain(|l| !l.starts_with("kaq cosim "));
    }
    commands
}
