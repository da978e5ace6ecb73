//! `kaq compare --arch cg|oamp`: the Gram-domain unfolded CG (or OAMP-Net2, below) teacher and
//! its PTQ and QAT-MSE students ([`kaq_model::gram::quantized`], [`kaq_model::gram::qat`]), measured in the same
//! single BER run and written to the same report files as the unfolded nets.
//!
//! Each student is its IR v2 document (`models/<method>-<bits>bit.ir.json`, the input of
//! `kaq ber --ir`), measured as that document's integer golden model. PTQ calibrates on
//! `--calibration-samples` frames drawn over the `--train-snr` range; QAT-MSE fine-tunes at the
//! PTQ formats on the teacher's data with the quantized schedule. KAQ is the cg form of KAQ's
//! SNR-adaptive step: PTQ with per-SNR-bin steps of e, p, d (`CgQuantOptions::bin_adaptive`,
//! an IR version 3, docs/ir.md §10.8), its formats refined on the golden model, the
//! fine-tuning at those formats with the loss MSE + ε Σ MMD² (`--epsilon`, `--kernel`
//! median or multi), and the formats refined again (`kaq_model::gram::qat::kaq_cg`; no
//! learned steps).
//!
//! For oamp the students are IR v4 documents (docs/ir.md §11): PTQ is `quantize_oamp`,
//! QAT-MSE and KAQ fine-tune the layer constants at the PTQ formats through the fake-quant
//! net's STE surrogate (`kaq_model::gram::oamp_qat`), KAQ with the loss MSE + ε Σ MMD²; there
//! are no per-SNR-bin steps nor a format refinement for oamp (IR v4 has one format per tensor). LSQ does not exist for cg
//! ([`super::options::CG_UNSUPPORTED`]); the activation histograms are not drawn.

use std::path::Path;

use anyhow::Context;
use indicatif::ProgressBar;
use kaq_ir::gram::GramInterpreter;
use kaq_ir::gram::oamp::OampInterpreter;
use kaq_model::ber::{BerConfig, DEFAULT_BATCH_FRAMES};
use kaq_model::gram::file::GramModelFile;
use kaq_model::gram::oamp_qat::{quantize_oamp, train_kaq_oamp, train_qat_mse_oamp};
use kaq_model::gram::oamp_quant::OampQuantOptions;
use kaq_model::gram::qat::{kaq_cg, train_qat_mse};
use kaq_model::gram::quantized::{CgQuantOptions, quantize_cg};
use kaq_model::gram::refine::RefineOptions;
use kaq_model::gram::train::GramTrainConfig;
use kaq_model::gram::{Family, GramConfig, GramNet};
use kaq_model::quant::kaq::KaqConfig;
use kaq_model::quant::{QuantMethod, QuantTrainConfig};
use kaq_model::train::model_file::Overwrite;
use kaq_model::train::{EpochRecord, TrainConfig};
use kaq_model::{Detector, LinkConfig};
use serde::Serialize;

use super::options::{ArchChoice, CG_UNSUPPORTED, CompareArgs, FP32, Labelled, RunKey};
use super::report::render;
use super::results::{Report, TeacherReport, accuracy, accuracy_series, ber_plots, summarize};
use super::stages::{on_progress, run_ber};
use crate::cmd::args::train_config_error;
use crate::plot;

/// The cg teacher's training config from the command's flags.
pub(super) fn teacher_config(
    args: &CompareArgs,
    link: LinkConfig,
) -> anyhow::Result<GramTrainConfig> {
    let family = match args.arch {
        ArchChoice::Gram(f) => f,
        ArchChoice::Unfolded(_) => Family::Cg,
    };
    let mut net = GramConfig::new(family, args.layers);
    if let Some(inner) = args.inner {
        net.inner = inner;
    }
    let base: TrainConfig = args.teacher_config(link, Default::default());
    Ok(GramTrainConfig {
        link: base.link,
        net,
        samples: base.samples,
        val_samples: base.val_samples,
        batch: base.batch,
        epochs: base.epochs,
        lr: base.lr,
        lr_step: base.lr_step,
        seed: base.seed,
        snr_db: base.snr_db,
        val_ber_snr_db: base.val_ber_snr_db,
        val_ber_frames: base.val_ber_frames,
    })
}

/// The PTQ options of a cg student at `bits`: the defaults of [`CgQuantOptions::new`] with
/// the command's calibration frames and the `--train-snr` range.
fn ptq_options(args: &CompareArgs, config: &GramTrainConfig, bits: u32) -> CgQuantOptions {
    let mut opts = CgQuantOptions::new(bits);
    if let Some(n) = args.calibration_samples {
        opts.calib_frames = n;
    }
    let lo = config.snr_db.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = config
        .snr_db
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    // One training SNR: calibrate at (just above) it.
    opts.calib_snr = (lo, if hi > lo { hi } else { lo + 1e-9 });
    opts
}

/// The PTQ part of a cg run's config in `report.json`.
#[derive(Debug, Serialize)]
struct PtqReport {
    bits: u32,
    input_bits: u32,
    wide_bits: u32,
    scalar_bits: u32,
    calibration: String,
    calibration_frames: usize,
    calibration_snr_db: (f64, f64),
    calibration_seed: u64,
    /// KAQ: the per-SNR-bin steps of e, p, d (an IR version 3).
    bin_adaptive: bool,
}

/// A cg run's config in `report.json`: its PTQ and (QAT-MSE) its fine-tuning.
#[derive(Debug, Serialize)]
struct CgRunConfig {
    ptq: PtqReport,
    train: Option<GramTrainConfig>,
}

/// The per-run part of `report.json` for a cg student.
#[derive(Debug, Serialize)]
struct CgRunReport<'a> {
    label: String,
    method: QuantMethod,
    bits: u32,
    model: String,
    reused: bool,
    measured_as: &'static str,
    config: &'a CgRunConfig,
    history: &'a [EpochRecord],
    validation_accuracy: Vec<f64>,
}

/// One trained cg student.
struct CgStudent {
    key: RunKey,
    golden: Box<dyn Detector + Send + Sync>,
    config: CgRunConfig,
    history: Vec<EpochRecord>,
}

fn file_name(key: RunKey) -> String {
    format!("{}-{}bit.ir.json", key.method, key.bits)
}

/// The teacher: reused from `models/fp32.json` when its config equals this run's, else
/// trained and saved.
fn obtain_teacher(
    config: &GramTrainConfig,
    path: &Path,
) -> anyhow::Result<(GramNet, Vec<EpochRecord>, String)> {
    if let Ok(file) = GramModelFile::load(path)
        && &file.train == config
    {
        println!("fp32: reusing models/fp32.json");
        return Ok((file.net, file.history, "reused".into()));
    }
    let bar = crate::progress::open_bar("", "batches");
    let result = kaq_model::gram::train::train(config, &mut on_progress(FP32, &bar));
    bar.finish_and_clear();
    let trained = result.context("training the f32 teacher failed")?;
    let file = GramModelFile::from(trained);
    file.save(path, Overwrite::Replace)
        .with_context(|| format!("cannot save {}", path.display()))?;
    Ok((file.net, file.history, "trained".into()))
}

/// One student: PTQ at `key.bits`, then for QAT-MSE the fine-tuning at the PTQ formats; its
/// IR saved under `models/`.
fn train_student(
    args: &CompareArgs,
    teacher: &GramNet,
    data: &GramTrainConfig,
    key: RunKey,
    path: &Path,
) -> anyhow::Result<CgStudent> {
    let label = key.label();
    let mut opts = ptq_options(args, data, key.bits);
    opts.bin_adaptive = key.method == QuantMethod::Kaq;
    let fq = quantize_cg(teacher, &opts).with_context(|| format!("PTQ of {label} failed"))?;
    let (mut ir, train, history) = match key.method {
        QuantMethod::Ptq => (fq.ir().clone(), None, Vec::new()),
        QuantMethod::QatMse | QuantMethod::Kaq => {
            let defaults = QuantTrainConfig::default();
            let config = GramTrainConfig {
                epochs: args.quant_epochs.unwrap_or(defaults.train.epochs),
                lr: args.quant_lr.unwrap_or(defaults.train.lr),
                lr_step: defaults.train.lr_step,
                ..data.clone()
            };
            config
                .validate()
                .map_err(|e| train_config_error(e, "--train-snr"))?;
            let bar: ProgressBar = crate::progress::open_bar("", "batches");
            let result = if key.method == QuantMethod::Kaq {
                let kaq = KaqConfig {
                    epsilon: args.epsilon,
                    kernel: args.kernel,
                };
                let refine = RefineOptions::default();
                kaq_cg(
                    teacher,
                    &opts,
                    &config,
                    &kaq,
                    Some(&refine),
                    &mut on_progress(&label, &bar),
                )
                .map(|run| (run.ir, run.history))
            } else {
                train_qat_mse(&fq, &config, &mut on_progress(&label, &bar))
                    .and_then(|(qat, history)| Ok((qat.lower()?, history)))
            };
            bar.finish_and_clear();
            let (ir, history) = result.with_context(|| format!("quantized run {label} failed"))?;
            (ir, Some(config), history)
        }
        other => anyhow::bail!("internal error: {other} is not a cg method"),
    };
    ir.name = format!("cg-{}-{}b", key.method, key.bits);
    plot::write_atomically(path, ir.to_json().as_bytes())?;
    let golden =
        Box::new(GramInterpreter::new(ir).with_context(|| format!("{label}: invalid IR"))?);
    let config = CgRunConfig {
        ptq: PtqReport {
            bits: opts.bits,
            input_bits: opts.input_bits,
            wide_bits: opts.wide_bits,
            scalar_bits: opts.scalar_bits,
            calibration: format!("{:?}", opts.calibration).to_lowercase(),
            calibration_frames: opts.calib_frames,
            calibration_snr_db: opts.calib_snr,
            calibration_seed: opts.seed,
            bin_adaptive: opts.bin_adaptive,
        },
        train,
    };
    Ok(CgStudent {
        key,
        golden,
        config,
        history,
    })
}

/// One oamp student: PTQ to IR v4 at `key.bits` ([`quantize_oamp`]); QAT-MSE fine-tunes at
/// the PTQ formats with the MSE loss, KAQ with the loss MSE + ε Σ_k MMD² (no per-SNR-bin
/// steps: IR v4 has one format per tensor); the IR saved under `models/`.
fn train_oamp_student(
    args: &CompareArgs,
    teacher: &GramNet,
    data: &GramTrainConfig,
    key: RunKey,
    path: &Path,
) -> anyhow::Result<CgStudent> {
    let label = key.label();
    let mut opts = OampQuantOptions::new(key.bits);
    if let Some(n) = args.calibration_samples {
        opts.calib_frames = n;
    }
    let cg_opts = ptq_options(args, data, key.bits);
    opts.calib_snr = cg_opts.calib_snr;
    let fq = quantize_oamp(teacher, &opts).with_context(|| format!("PTQ of {label} failed"))?;
    let (mut ir, train, history) = match key.method {
        QuantMethod::Ptq => (fq.ir().clone(), None, Vec::new()),
        QuantMethod::QatMse | QuantMethod::Kaq => {
            let defaults = QuantTrainConfig::default();
            let config = GramTrainConfig {
                epochs: args.quant_epochs.unwrap_or(defaults.train.epochs),
                lr: args.quant_lr.unwrap_or(defaults.train.lr),
                lr_step: defaults.train.lr_step,
                ..data.clone()
            };
            config
                .validate()
                .map_err(|e| train_config_error(e, "--train-snr"))?;
            let bar: ProgressBar = crate::progress::open_bar("", "batches");
            let result = if key.method == QuantMethod::Kaq {
                let kaq = KaqConfig {
                    epsilon: args.epsilon,
                    kernel: args.kernel,
                };
                train_kaq_oamp(&fq, &config, &kaq, &mut on_progress(&label, &bar))
            } else {
                train_qat_mse_oamp(&fq, &config, &mut on_progress(&label, &bar))
            }
            .and_then(|(qat, history)| Ok((qat.lower()?, history)));
            bar.finish_and_clear();
            let (ir, history) = result.with_context(|| format!("quantized run {label} failed"))?;
            (ir, Some(config), history)
        }
        other => anyhow::bail!("internal error: {other} is not an oamp method"),
    };
    ir.name = format!("oamp-{}-{}b", key.method, key.bits);
    plot::write_atomically(path, ir.to_json().as_bytes())?;
    let golden =
        Box::new(OampInterpreter::new(ir).with_context(|| format!("{label}: invalid IR"))?);
    let config = CgRunConfig {
        ptq: PtqReport {
            bits: opts.bits,
            input_bits: opts.input_bits,
            wide_bits: opts.wide_bits,
            scalar_bits: opts.scalar_bits,
            calibration: format!("{:?}", opts.calibration).to_lowercase(),
            calibration_frames: opts.calib_frames,
            calibration_snr_db: opts.calib_snr,
            calibration_seed: opts.seed,
            bin_adaptive: false,
        },
        train,
    };
    Ok(CgStudent {
        key,
        golden,
        config,
        history,
    })
}

/// The comparison of a cg net, its files written under `out` (the staging directory).
pub(super) fn compare(
    args: &CompareArgs,
    out: &Path,
    runs: &[RunKey],
    bits: &[u32],
) -> anyhow::Result<()> {
    let models = out.join("models");
    let link = LinkConfig::new(args.nt, args.nr, args.modulation)?;
    let data = teacher_config(args, link)?;
    let (teacher, teacher_history, source) = obtain_teacher(&data, &models.join("fp32.json"))?;
    let mut students = Vec::with_capacity(runs.len());
    for &key in runs {
        let path = models.join(file_name(key));
        students.push(match data.net.family {
            Family::Oamp => train_oamp_student(args, &teacher, &data, key, &path)?,
            _ => train_student(args, &teacher, &data, key, &path)?,
        });
    }
    let oamp = data.net.family == Family::Oamp;
    let ber = BerConfig {
        link: teacher.link().clone(),
        snr_db: args.snr.0.clone(),
        min_errors: args.min_errors,
        max_frames: args.max_frames,
        batch_frames: DEFAULT_BATCH_FRAMES,
        seed: args.seed,
        threads: None,
    };
    ber.validate()?;

    let mut labelled = vec![Labelled {
        label: FP32.into(),
        inner: &teacher,
    }];
    for s in &students {
        labelled.push(Labelled {
            label: s.key.label(),
            inner: s.golden.as_ref(),
        });
    }
    let detectors: Vec<&dyn Detector> = labelled.iter().map(|d| d as &dyn Detector).collect();
    let points = run_ber(&ber, &detectors)?;
    let names: Vec<String> = labelled.iter().map(|d| d.label.clone()).collect();
    let summary: Vec<_> = bits.iter().map(|&b| summarize(b, &points)).collect();

    let report = Report {
        tool: "kaq",
        version: env!("CARGO_PKG_VERSION"),
        command: "compare",
        snr_definition: "per receive antenna: SNR = E|Hx|^2 / E|n|^2 = (Nt/Nr) Es / sigma^2",
        confidence: 0.95,
        interval: "wilson",
        accuracy_definition: "1 - (bit errors / bits) pooled over the validation-BER probes",
        teacher: TeacherReport {
            model: "models/fp32.json".into(),
            source: source.clone(),
            config: &data,
            history: &teacher_history,
            validation_accuracy: accuracy(&teacher_history),
        },
        runs: students
            .iter()
            .map(|s| CgRunReport {
                label: s.key.label(),
                method: s.key.method,
                bits: s.key.bits,
                model: format!("models/{}", file_name(s.key)),
                reused: false,
                measured_as: if oamp {
                    "integer golden model of the IR v4 document"
                } else {
                    "integer golden model of the IR v2 document"
                },
                config: &s.config,
                history: &s.history,
                validation_accuracy: accuracy(&s.history),
            })
            .collect(),
        ber: &ber,
        detectors: names.clone(),
        points: &points,
        summary: &summary,
    };
    let mut json = serde_json::to_string_pretty(&report).context("cannot encode the report")?;
    let family_line = if oamp {
        format!("oamp K={}", data.net.layers)
    } else {
        format!(
            "cg K={} with {} inner steps",
            data.net.layers, data.net.inner
        )
    };
    json.push('\n');
    plot::write_atomically(&out.join("report.json"), json.as_bytes())?;

    let quant_epochs = args
        .quant_epochs
        .unwrap_or(QuantTrainConfig::default().train.epochs);
    let mut setup = vec![format!(
        "f32 teacher: {source}; {family_line}; {} epochs, {} samples, batch {}, \
         lr {} halved every {} epochs, training SNR {:?} dB, seed {}",
        data.epochs, data.samples, data.batch, data.lr, data.lr_step, data.snr_db, data.seed
    )];
    if let (true, Some(s)) = (oamp, students.first()) {
        let p = &s.config.ptq;
        setup.push(format!(
            "students: PTQ to IR v4 (docs/ir.md §11.6: x, r at b bits, inputs at b + 2, e and g \
             at b + 4, G, z and Q_j at b + 8, the LDLᵀ tensors at 24, scalars and constants at \
             {} bits; {} calibration, {} frames at {:.1}–{:.1} dB); QAT-MSE fine-tunes the \
             layer constants γ, θ, φ, ξ at the PTQ formats through the fake-quant net's STE \
             surrogate: {quant_epochs} epochs on the teacher's data; KAQ: the same fine-tuning \
             with the loss MSE + ε Σ MMD² (no per-SNR-bin steps and no format refinement for \
             oamp: IR v4 has one format per tensor); every student measured as its IR's \
             integer golden model",
            p.scalar_bits,
            p.calibration,
            p.calibration_frames,
            p.calibration_snr_db.0,
            p.calibration_snr_db.1
        ));
    } else if let Some(s) = students.first() {
        let p = &s.config.ptq;
        setup.push(format!(
            "students: PTQ to IR v2 (x, p, d, r at b bits, inputs at b + 2, e and ρ at b + 4, \
             G and z at b + 8, scalars and constants at {} bits; {} calibration, {} frames at \
             {:.1}–{:.1} dB); QAT-MSE fine-tunes at the PTQ formats: {quant_epochs} epochs on the \
             teacher's data; KAQ: the PTQ with per-SNR-bin steps of e, ρ, p, d (eq. 15 fitted to \
             per-bin calibrated steps, IR version 3), its formats refined on the golden model \
             (±1 frac moves of e, p, d per layer and of r kept by a paired test on 3 × 3000 \
             frames at 20, 22, 24 dB), the fine-tuning at those formats with the loss \
             MSE + ε Σ MMD², the formats refined again (steps not learned); every student \
             measured as its IR's integer golden model",
            p.scalar_bits,
            p.calibration,
            p.calibration_frames,
            p.calibration_snr_db.0,
            p.calibration_snr_db.1
        ));
    }
    setup.push(format!(
        "not run: lsq — not available for the {} family ({CG_UNSUPPORTED})",
        data.net.family
    ));
    setup.push(format!(
        "BER: one run, every detector on the same frames; a point stops at {} bit errors or \
         {} frames; seed {}; SNR per receive antenna; 95 % Wilson intervals",
        ber.min_errors, ber.max_frames, ber.seed
    ));
    let checks = vec![format!(
        "KAQ checks: not run (the {} form of KAQ has no learned steps to check)",
        data.net.family
    )];
    let mut plots: String = bits.iter().map(|b| format!("ber-{b}bit.svg, ")).collect();
    plots += "accuracy.svg";
    let md = render(teacher.name(), &ber, setup, &names, &points, checks, plots);
    plot::write_atomically(&out.join("report.md"), md.as_bytes())?;

    let link_name = plot::style::link_name(ber.link.nt, ber.link.nr, ber.link.modulation);
    ber_plots(
        out,
        |b| format!("BER, {} {b}-bit students, {link_name}", teacher.name()),
        bits,
        &names,
        &points,
        runs,
    )?;
    let accuracy_series = accuracy_series(
        &teacher_history,
        students
            .iter()
            .map(|s| (s.key.label(), s.history.as_slice())),
    );
    plot::line_plot(
        &out.join("accuracy.svg"),
        &format!("Validation accuracy, {} on {link_name}", teacher.name()),
        "epoch (f32, then quantized fine-tuning)",
        "1 - validation BER",
        false,
        &accuracy_series,
    )?;
    Ok(())
}
