//! QAT-MSE of a cg model file against its PTQ, per bit width: trains the fake-quant net at
//! fixed PTQ formats, lowers it to IR v2 and measures the f32 net, the PTQ golden model and the
//! QAT golden model in one BER run (same frames).
//!
//! `cargo run --release -p kaq-model --example cg_qat -- MODEL BITS SNRS FRAMES EPOCHS LR
//! [bin-adaptive|both]` (BITS and SNRS comma-separated; `bin-adaptive`: KAQ's per-SNR-bin
//! steps of e, p, d, an IR version 3, for the PTQ and the trained net alike; `both`: the fixed
//! and the per-bin formats, all in the same BER run; the environment variable
//! `KAQ_WIDTHS=r=8,p=7` sets per-class widths over the BITS defaults, `KAQ_CAL=p=max,r=p99.9`
//! per-class calibrations over MSE; `KAQ_REFINE=FRAMES` refines the formats of the PTQ and of
//! the trained IR on FRAMES frames per point at `KAQ_REFINE_SNR` (default 20,22,24 dB, frames
//! apart from the BER run's) and reports the refined students too; `KAQ_SAMPLES`,
//! `KAQ_LR_STEP`, `KAQ_TRAIN_SNR`, `KAQ_SEED` set the fine-tuning's samples (20 000), halving
//! period (2), SNRs (15,17,…,27) and seed (16); `KAQ_EPS=10` adds KAQ's MMD term with that
//! weight (`KAQ_KERNEL` median or multi; default 0: MSE only); `KAQ_THREADS` the threads of
//! the training and the refinement (1); writes nothing, prints the table and each epoch's
//! validation loss.

use kaq_ir::gram::GramInterpreter;
use kaq_model::Detector;
use kaq_model::ber::{BerConfig, simulate};
use kaq_model::gram::file::GramModelFile;
use kaq_model::gram::qat::{train_kaq, train_qat_mse};
use kaq_model::gram::quantized::{CgQuantOptions, FakeQuantCg, quantize_cg};
use kaq_model::gram::refine::{RefineOptions, refine_formats};
use kaq_model::gram::train::GramTrainConfig;
use kaq_model::quant::kaq::KaqConfig;

fn list<T: std::str::FromStr>(s: &str) -> Result<Vec<T>, T::Err> {
    s.split(',').map(str::parse).collect()
}

/// The environment variable `name` parsed, or `default` when it is unset.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) => v.parse().map_err(|_| format!("{name}: cannot parse {v:?}")),
        Err(_) => Ok(default),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 6 {
        return Err("usage: cg_qat MODEL BITS SNRS FRAMES EPOCHS LR".into());
    }
    let file = GramModelFile::load(std::path::Path::new(&a[0]))?;
    let bits: Vec<u32> = list(&a[1])?;
    let snr: Vec<f64> = list(&a[2])?;
    let frames: u64 = a[3].parse()?;
    let epochs: usize = a[4].parse()?;
    let lr: f64 = a[5].parse()?;
    let modes: Vec<bool> = match a.get(6).map(String::as_str) {
        Some("bin-adaptive") => vec![true],
        Some("both") => vec![false, true],
        _ => vec![false],
    };
    let net = &file.net;
    let threads: usize = env_or("KAQ_THREADS", 1)?;
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()?;
    let mmd = KaqConfig {
        epsilon: env_or("KAQ_EPS", 0.0)?,
        kernel: env_or("KAQ_KERNEL", "median".to_string())?.parse()?,
    };
    let refine_frames: usize = env_or("KAQ_REFINE", 0)?;
    let refine_snr: Vec<f64> = list(&env_or("KAQ_REFINE_SNR", "20,22,24".to_string())?)?;
    let refine_opts = RefineOptions {
        frames: refine_frames,
        snr_db: refine_snr,
        ..RefineOptions::default()
    };
    let refine_data = refine_opts.frames(net.link())?;
    let refine = |ir: &kaq_ir::gram::GramIr, what: &str| {
        let t0 = std::time::Instant::now();
        let (out, moves) = refine_formats(net, ir, &refine_data, &refine_opts)?;
        eprintln!(
            "{what}: refined in {:.1} s: {}",
            t0.elapsed().as_secs_f64(),
            moves
                .iter()
                .map(|m| format!(
                    "{}{}{:+} ({})",
                    m.class.as_str(),
                    m.layer.map_or(String::new(), |k| k.to_string()),
                    m.shift,
                    m.bit_errors
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok::<_, kaq_model::ModelError>(out)
    };
    let mut golden = Vec::new();
    for (&b, &adaptive) in bits.iter().flat_map(|b| modes.iter().map(move |m| (b, m))) {
        let mut opts = CgQuantOptions::new(b);
        // KAQ_WIDTHS="r=8,p=7": per-class widths over the b-bit defaults.
        if let Ok(w) = std::env::var("KAQ_WIDTHS") {
            for item in w.split(',').filter(|s| !s.is_empty()) {
                let (t, v) = item.split_once('=').ok_or("KAQ_WIDTHS: CLASS=BITS")?;
                opts.widths.push((t.parse()?, v.parse()?));
            }
        }
        // KAQ_CAL="p=max,r=p99.9": per-class calibrations over the MSE default.
        if let Ok(w) = std::env::var("KAQ_CAL") {
            for item in w.split(',').filter(|s| !s.is_empty()) {
                let (t, v) = item.split_once('=').ok_or("KAQ_CAL: CLASS=max|mse|pQ")?;
                opts.calibrations.push((t.parse()?, v.parse()?));
            }
        }
        opts.bin_adaptive = adaptive;
        let mut fq = quantize_cg(net, &opts)?;
        let tag = if adaptive { "bin-" } else { "" };
        if refine_frames > 0 {
            let mut ptq = fq.ir().clone();
            ptq.name = format!("cg-{tag}ptq-{b}b");
            let mut r = refine(&ptq, &format!("{b} bits PTQ"))?;
            golden.push(GramInterpreter::new(ptq)?);
            r.name = format!("cg-{tag}ptq-ref-{b}b");
            fq = FakeQuantCg::new(net.clone(), r, opts.clone());
        }
        let mut tc = GramTrainConfig::new(net.link().clone(), net.config().clone());
        tc.samples = env_or("KAQ_SAMPLES", 20_000)?;
        tc.val_samples = 2_000;
        tc.epochs = epochs;
        tc.lr = lr;
        tc.lr_step = env_or("KAQ_LR_STEP", 2)?;
        tc.seed = env_or("KAQ_SEED", 16)?;
        tc.snr_db = match std::env::var("KAQ_TRAIN_SNR") {
            Ok(v) => list(&v)?,
            Err(_) => (15..=27).step_by(2).map(f64::from).collect(),
        };
        tc.val_ber_snr_db = vec![22.0];
        tc.val_ber_frames = 1000;
        let t0 = std::time::Instant::now();
        let (qat, history) = if mmd.epsilon > 0.0 {
            train_kaq(&fq, &tc, &mmd, &mut |_| {})?
        } else {
            train_qat_mse(&fq, &tc, &mut |_| {})?
        };
        for e in &history {
            eprintln!(
                "{b} bits epoch {}: val loss {:.4}, val BER {:?}",
                e.epoch,
                e.val_loss,
                e.val_ber.iter().map(|v| v.ber).collect::<Vec<_>>()
            );
        }
        eprintln!("{b} bits: trained in {:.1} s", t0.elapsed().as_secs_f64());
        let mut ir = qat.lower()?;
        ir.name = format!("cg-{tag}qat-mse-{b}b");
        let mut ptq = fq.ir().clone();
        if refine_frames == 0 {
            ptq.name = format!("cg-{tag}ptq-{b}b");
        }
        golden.push(GramInterpreter::new(ptq)?);
        if refine_frames > 0 {
            let mut r = refine(&ir, &format!("{b} bits QAT"))?;
            r.name = format!("cg-{tag}qat-ref-{b}b");
            golden.push(GramInterpreter::new(ir)?);
            golden.push(GramInterpreter::new(r)?);
        } else {
            golden.push(GramInterpreter::new(ir)?);
        }
    }
    let mut dets: Vec<&dyn Detector> = vec![net];
    dets.extend(golden.iter().map(|g| g as &dyn Detector));
    let mut config = BerConfig::new(net.link().clone(), snr, u64::MAX, frames, 1);
    config.threads = Some(1);
    for r in simulate(&config, &dets, None)? {
        println!(
            "{:<24} {:>5.1} dB  BER {:.3e}  [{:.2e}, {:.2e}]  errors {:>7}  frames {}",
            r.detector, r.snr_db, r.ber, r.ber_ci_low, r.ber_ci_high, r.bit_errors, r.frames
        );
    }
    Ok(())
}
