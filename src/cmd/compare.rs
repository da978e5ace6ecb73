//! `kaq compare`: trains (or loads) an f32 teacher, quantizes it with every requested method
//! at every requested activation bit width, measures all of them in one BER run, and writes a
//! report directory.
//!
//! What it guarantees:
//!
//! * **Same data.** Every quantized run uses the same training, validation and calibration data
//!   (the `--seed` streams of `kaq train`) and the same schedule; the BER run is one
//!   [`kaq_model::ber::simulate`] call, so every detector sees the same frames at each SNR.
//! * **KAQ is the full method.** Its loss is MSE + ε Σ_k MMD² against the teacher's layer
//!   outputs (`--epsilon`, `--kernel`, defaults those of `kaq train --quant`).
//! * **f32 is always the reference.** The teacher is simulated as `fp32` whether or not
//!   `--methods` lists it; `fp32` in `--methods` is accepted and adds nothing.
//! * **Safe output.** `--out` must be missing or empty unless `--force` is given; kaq then
//!   writes only the files listed below (never touching others), each atomically.
//! * **Resumable.** With `--force`, a model already in `models/` whose stored training config,
//!   method and teacher equal what this run would train is loaded instead of retrained, so an
//!   interrupted comparison resumes where it stopped.
//!
//! Files under `--out`:
//!
//! * `models/fp32.json` (a `kaq-model` file), `models/<method>-<bits>bit.json` (`kaq-qmodel`).
//! * `report.md`: the BER table (rows = SNR, columns = detector, BER with its 95 % Wilson
//!   interval) and, per bit width, the two checks: KAQ within 5 % of f32 at every SNR (worst
//!   ratio BER_KAQ / BER_f32), and at how many SNR points KAQ has a lower BER than QAT-MSE
//!   (and at how many the intervals are separated: KAQ's upper end below QAT-MSE's lower end).
//! * `report.json`: config, every BER point, every training history, the checks.
//! * `ber-<bits>bit.svg`: log BER against SNR, f32 and every method at that width.
//! * `accuracy.svg`: validation accuracy against epoch. Validation accuracy is
//!   1 − (bit errors / bits) pooled over the validation-BER probes (`--val-snr`,
//!   `--val-frames` frames each). The teacher's epochs come first; each quantized run's
//!   fine-tuning epochs continue after them (epoch E + 1, …), so the plot reads as one timeline.
//! * `hist-layer<k>.svg` for the first and last layer: histograms of the layer-k activations
//!   (ADMM-Net: s⁽ᵏ⁾) of the f32 teacher and of every method at the lowest bit width, on the
//!   same fixed batch (the first `--hist-samples` samples of the validation set).
//!
//! Bad arguments end with status 2 and a message naming the argument; run-time failures
//! (refused output directory, divergence) with status 1.

mod report;

use super::args::{
    parse_antennas, parse_bits, parse_epsilon, parse_from_str, parse_layers, parse_lr,
    parse_positive, parse_snr_db, parse_threads, train_config_error,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::ProgressBar;
use kaq_model::ber::{BerConfig, BerPoint, BerProgress, DEFAULT_BATCH_FRAMES, simulate};
use kaq_model::mmd::KernelMode;
use kaq_model::quant::file::QuantModelFile;
use kaq_model::quant::kaq::{DEFAULT_EPSILON, DEFAULT_KERNEL, KaqConfig, KaqEpoch};
use kaq_model::quant::{
    QuantConfig, QuantMethod, QuantTrainConfig, QuantTrained, teacher_layers, train_quantized,
};
use kaq_model::train::model_file::Overwrite;
use kaq_model::train::{EpochRecord, ModelFile, Progress, SetKind, TrainConfig, TrainSet, train};
use kaq_model::unfolded::{Arch, Init, NetConfig, Prox, UnfoldedNet};
use kaq_model::{Detector, FrameBatch, LinkConfig, ModelError, Modulation};
use serde::Serialize;

use super::ber::{SnrPoints, parse_snr};
use crate::plot::{self, Histogram, Series};

/// One column of the comparison: the f32 teacher or a quantization method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The f32 teacher.
    Fp32,
    /// A quantization method.
    Quant(QuantMethod),
}

/// Arguments of `kaq compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Unfolded architecture: pgd or admm.
    #[arg(long, value_parser = parse_from_str::<Arch>, default_value = "pgd",
          conflicts_with = "teacher")]
    arch: Arch,

    /// Proximal operator of every layer: soft, box or qam.
    #[arg(long, value_parser = parse_from_str::<Prox>, default_value = "soft",
          conflicts_with = "teacher")]
    prox: Prox,

    /// Unfolded layers K.
    #[arg(long, value_parser = parse_layers, default_value_t = 5, conflicts_with = "teacher")]
    layers: usize,

    /// Add a learnable heavy-ball momentum term to every layer.
    #[arg(long, conflicts_with = "teacher")]
    momentum: bool,

    /// Initial estimate x⁽⁰⁾: zero or mf.
    #[arg(long, value_parser = parse_from_str::<Init>, default_value = "zero",
          conflicts_with = "teacher")]
    init: Init,

    /// Activation bit widths, comma separated (2 to 24).
    #[arg(long, value_delimiter = ',', value_parser = parse_bits, default_value = "8,6,4")]
    bits: Vec<u32>,

    /// Methods, comma separated: fp32, ptq, qat-mse, lsq, kaq.
    #[arg(long, value_delimiter = ',', value_parser = parse_method,
          default_value = "fp32,ptq,qat-mse,lsq,kaq")]
    methods: Vec<Method>,

    /// Transmit antennas, 1 to 256.
    #[arg(long, value_parser = parse_antennas, default_value_t = 16, conflicts_with = "teacher")]
    nt: usize,

    /// Receive antennas, 1 to 256.
    #[arg(long, value_parser = parse_antennas, default_value_t = 16, conflicts_with = "teacher")]
    nr: usize,

    /// Modulation: bpsk, qpsk, 16qam, 64qam.
    #[arg(long = "mod", value_parser = parse_from_str::<Modulation>, default_value = "16qam",
          conflicts_with = "teacher")]
    modulation: Modulation,

    /// f32 training epochs.
    #[arg(long, value_parser = parse_positive, default_value_t = 50)]
    epochs: usize,

    /// Training samples (f32 and quantized runs).
    #[arg(long, value_parser = parse_positive, default_value_t = 50_000)]
    samples: usize,

    /// Validation samples.
    #[arg(long, value_parser = parse_positive, default_value_t = 5_000)]
    val_samples: usize,

    /// Minibatch size.
    #[arg(long, value_parser = parse_positive, default_value_t = 128)]
    batch: usize,

    /// Initial f32 learning rate.
    #[arg(long, value_parser = parse_lr, default_value_t = 1e-3)]
    lr: f64,

    /// The f32 learning rate halves every this many epochs.
    #[arg(long, value_parser = parse_positive, default_value_t = 10)]
    lr_step: usize,

    /// Training SNRs in dB, comma separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_snr_db, allow_hyphen_values = true,
          default_value = "0,5,10,15,20,25")]
    train_snr: Vec<f64>,

    /// SNRs in dB of the per-epoch validation BER (the accuracy plot), comma separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_snr_db, allow_hyphen_values = true,
          default_value = "0,10,20")]
    val_snr: Vec<f64>,

    /// Frames per validation-BER SNR.
    #[arg(long, value_parser = parse_positive, default_value_t = 2_000)]
    val_frames: usize,

    /// Fine-tuning epochs of every quantized run (default: the quantized-training default).
    #[arg(long, value_parser = parse_positive)]
    quant_epochs: Option<usize>,

    /// Initial learning rate of the quantized runs (default: the quantized-training default).
    #[arg(long, value_parser = parse_lr)]
    quant_lr: Option<f64>,

    /// KAQ: weight of the MMD term, loss = MSE + E * sum_k MMD^2 (finite, >= 0).
    #[arg(long, value_name = "E", value_parser = parse_epsilon, default_value_t = DEFAULT_EPSILON,
          allow_hyphen_values = true)]
    epsilon: f64,

    /// KAQ: MMD kernel bandwidths: learnable, median or multi.
    #[arg(long, value_parser = parse_from_str::<KernelMode>, default_value_t = DEFAULT_KERNEL)]
    kernel: KernelMode,

    /// Calibration samples (default: the quantized-training default).
    #[arg(long, value_parser = parse_positive)]
    calibration_samples: Option<usize>,

    /// BER SNR points in dB: `start:stop:step` or a comma list.
    #[arg(long, value_parser = parse_snr, default_value = "0:25:5", allow_hyphen_values = true)]
    snr: SnrPoints,

    /// A BER point stops once a detector has this many bit errors.
    #[arg(long, value_parser = parse_positive_u64, default_value = "1000")]
    min_errors: u64,

    /// A BER point never simulates more than this many frames.
    #[arg(long, value_parser = parse_positive_u64, default_value = "200000")]
    max_frames: u64,

    /// Samples of the fixed batch whose activations are histogrammed.
    #[arg(long, value_parser = parse_positive, default_value_t = 1_000)]
    hist_samples: usize,

    /// Seed of the data sets, sample order and BER frames.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Use this trained f32 model (a `kaq train` file) as the teacher instead of training one;
    /// the link and architecture come from it.
    #[arg(long, value_name = "PATH")]
    teacher: Option<PathBuf>,

    /// The report directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Write into a non-empty report directory, replacing kaq's own files there and reusing
    /// models whose config matches.
    #[arg(long)]
    force: bool,

    /// Worker threads (default: all cores). Does not change the results.
    #[arg(long, value_parser = parse_threads)]
    threads: Option<usize>,
}

fn parse_positive_u64(s: &str) -> Result<u64, String> {
    parse_positive(s).map(|n| n as u64)
}

fn parse_method(s: &str) -> Result<Method, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "fp32" | "f32" => Ok(Method::Fp32),
        other => other.parse().map(Method::Quant).map_err(|_| {
            format!("unknown method `{s}` (expected one of: fp32, ptq, qat-mse, lsq, kaq)")
        }),
    }
}

/// One quantized run of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RunKey {
    method: QuantMethod,
    bits: u32,
}

impl RunKey {
    /// Column and legend label, for example `kaq@4`.
    fn label(self) -> String {
        format!("{}@{}", self.method, self.bits)
    }

    fn file_name(self) -> String {
        format!("{}-{}bit.json", self.method, self.bits)
    }
}

/// The label of the f32 teacher.
const FP32: &str = "fp32";

/// A detector under the comparison's label.
struct Labelled<'a> {
    label: String,
    inner: &'a dyn Detector,
}

impl Detector for Labelled<'_> {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn detect(&self, batch: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError> {
        self.inner.detect(batch, decisions)
    }
}

/// The validated plan of a comparison.
#[derive(Debug)]
struct Plan {
    /// How the teacher was trained (its file's config when loaded with `--teacher`).
    teacher_config: TrainConfig,
    /// The data and seed of the quantized runs: the command's data flags on the teacher's link
    /// and net (equal to `teacher_config` apart from the schedule when the teacher is trained
    /// here).
    data: TrainConfig,
    runs: Vec<RunKey>,
    ber: BerConfig,
    out: PathBuf,
}

impl CompareArgs {
    fn teacher_config(&self, link: LinkConfig, net: NetConfig) -> TrainConfig {
        TrainConfig {
            link,
            net,
            samples: self.samples,
            val_samples: self.val_samples,
            batch: self.batch,
            epochs: self.epochs,
            lr: self.lr,
            lr_step: self.lr_step,
            seed: self.seed,
            snr_db: self.train_snr.clone(),
            val_ber_snr_db: self.val_snr.clone(),
            val_ber_frames: self.val_frames,
        }
    }

    /// The config of one quantized run: the teacher's data with the quantized schedule; every
    /// other field (for example KAQ's loss options) keeps its default.
    // The struct update keeps fields added to `QuantTrainConfig` later at their defaults.
    #[allow(clippy::needless_update)]
    fn quant_config(&self, teacher: &TrainConfig, bits: u32) -> QuantTrainConfig {
        let defaults = QuantTrainConfig::default();
        let train = TrainConfig {
            epochs: self.quant_epochs.unwrap_or(defaults.train.epochs),
            lr: self.quant_lr.unwrap_or(defaults.train.lr),
            lr_step: defaults.train.lr_step,
            ..teacher.clone()
        };
        QuantTrainConfig {
            train,
            quant: QuantConfig::with_activation_bits(bits),
            calibration_samples: self
                .calibration_samples
                .unwrap_or(defaults.calibration_samples),
            kaq: KaqConfig {
                epsilon: self.epsilon,
                kernel: self.kernel,
            },
            ..defaults
        }
    }
}

/// The per-run part of `report.json`.
#[derive(Debug, Serialize)]
struct RunReport<'a> {
    label: String,
    method: QuantMethod,
    bits: u32,
    model: String,
    reused: bool,
    config: &'a QuantTrainConfig,
    history: &'a [EpochRecord],
    /// KAQ only: the loss terms, saturation and bandwidths of every epoch.
    kaq_history: &'a [KaqEpoch],
    validation_accuracy: Vec<f64>,
}

/// One bit width's checks.
#[derive(Debug, Clone, Serialize)]
struct BitsSummary {
    bits: u32,
    /// Worst BER_KAQ / BER_f32 over the SNR points and where (absent without KAQ).
    kaq_worst_ratio: Option<(f64, f64)>,
    /// Whether KAQ is within 5 % of f32 at every SNR point.
    kaq_within_5_percent: Option<bool>,
    /// SNR points where KAQ's BER is below QAT-MSE's (absent without both).
    kaq_better_than_qat: Option<usize>,
    /// SNR points where KAQ's upper 95 % bound is below QAT-MSE's lower bound.
    kaq_better_than_qat_ci: Option<usize>,
    snr_points: usize,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    tool: &'static str,
    version: &'static str,
    command: &'static str,
    snr_definition: &'static str,
    confidence: f64,
    interval: &'static str,
    accuracy_definition: &'static str,
    teacher: TeacherReport<'a>,
    runs: Vec<RunReport<'a>>,
    ber: &'a BerConfig,
    detectors: Vec<String>,
    points: &'a [BerPoint],
    summary: &'a [BitsSummary],
}

#[derive(Debug, Serialize)]
struct TeacherReport<'a> {
    model: String,
    source: String,
    config: &'a TrainConfig,
    history: &'a [EpochRecord],
    validation_accuracy: Vec<f64>,
}

/// 1 − pooled validation BER of every epoch.
fn accuracy(history: &[EpochRecord]) -> Vec<f64> {
    history
        .iter()
        .map(|r| {
            let errors: u64 = r.val_ber.iter().map(|v| v.bit_errors).sum();
            let bits: u64 = r.val_ber.iter().map(|v| v.bits).sum();
            if bits == 0 {
                f64::NAN
            } else {
                1.0 - errors as f64 / bits as f64
            }
        })
        .collect()
}

/// Checks the output directory: missing or empty, or `force`. Creates it and `models/`.
fn prepare_out(out: &Path, force: bool) -> anyhow::Result<()> {
    if out.exists() {
        if !out.is_dir() {
            bail!("--out {} exists and is not a directory", out.display());
        }
        let non_empty = fs::read_dir(out)
            .with_context(|| format!("cannot read --out {}", out.display()))?
            .next()
            .is_some();
        if non_empty && !force {
            bail!(
                "--out {} is not empty; pass --force to write kaq's report files into it \
                 (other files are left alone)",
                out.display()
            );
        }
    }
    fs::create_dir_all(out.join("models"))
        .with_context(|| format!("cannot create {}", out.join("models").display()))?;
    plot::check_writable(&out.join("report.md"))?;
    plot::check_writable(&out.join("models").join("fp32.json"))?;
    Ok(())
}

/// A progress callback for one training run labelled `label`.
fn on_progress<'a>(label: &'a str, bar: &'a ProgressBar) -> impl FnMut(Progress<'_>) + 'a {
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
            let acc = accuracy(std::slice::from_ref(r))[0];
            bar.suspend(|| {
                println!(
                    "{label} epoch {}/{epochs}  train loss {:.5}  val loss {:.5}  val accuracy {:.5}  {:.1} s",
                    r.epoch, r.train_loss, r.val_loss, acc, r.seconds
                )
            });
            bar.set_position(0);
        }
    }
}

/// The teacher: loaded from `--teacher`, reused from `models/fp32.json`, or trained.
fn obtain_teacher(
    args: &CompareArgs,
    path: &Path,
) -> anyhow::Result<(UnfoldedNet, TrainConfig, Vec<EpochRecord>, String)> {
    if let Some(src) = &args.teacher {
        let file = ModelFile::load(src).with_context(|| format!("--teacher {}", src.display()))?;
        let source = format!("loaded from {}", src.display());
        file.save(path, Overwrite::Replace)
            .with_context(|| format!("cannot save {}", path.display()))?;
        return Ok((file.net, file.train, file.history, source));
    }
    let link = LinkConfig::new(args.nt, args.nr, args.modulation)?;
    let net = NetConfig {
        arch: args.arch,
        prox: args.prox,
        layers: args.layers,
        momentum: args.momentum,
        init: args.init,
    };
    let config = args.teacher_config(link, net);
    if let Ok(file) = ModelFile::load(path)
        && file.train == config
    {
        println!("fp32: reusing {}", path.display());
        return Ok((file.net, file.train, file.history, "reused".into()));
    }
    let bar = crate::progress::open_bar("", "batches");
    let result = train(&config, &mut on_progress(FP32, &bar));
    bar.finish_and_clear();
    let model = result.context("training the f32 teacher failed")?;
    let file = ModelFile::from(model);
    file.save(path, Overwrite::Replace)
        .with_context(|| format!("cannot save {}", path.display()))?;
    Ok((file.net, file.train, file.history, "trained".into()))
}

/// One quantized run: reused from its model file when that holds exactly this run, else
/// trained and saved.
fn obtain_quant(
    teacher: &UnfoldedNet,
    key: RunKey,
    config: &QuantTrainConfig,
    path: &Path,
) -> anyhow::Result<(QuantTrained, bool)> {
    if let Ok(file) = QuantModelFile::load(path)
        && file.method == key.method
        && &file.train == config
        && &file.teacher == teacher
        && let Ok(net) = file.quant_net()
    {
        println!("{}: reusing {}", key.label(), path.display());
        return Ok((
            QuantTrained {
                net,
                teacher: file.teacher,
                config: file.train,
                history: file.history,
                kaq_history: file.kaq_history,
            },
            true,
        ));
    }
    let label = key.label();
    let bar = crate::progress::open_bar("", "batches");
    bar.set_prefix(format!("{label} calibrating"));
    let result = train_quantized(teacher, key.method, config, &mut on_progress(&label, &bar));
    bar.finish_and_clear();
    let run = result.with_context(|| format!("quantized run {label} failed"))?;
    QuantModelFile::from(&run)
        .save(path, Overwrite::Replace)
        .with_context(|| format!("cannot save {}", path.display()))?;
    Ok((run, false))
}

/// Runs `kaq compare`.
pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut runs = Vec::new();
    let mut methods: Vec<QuantMethod> = Vec::new();
    for m in &args.methods {
        if let Method::Quant(q) = m
            && !methods.contains(q)
        {
            methods.push(*q);
        }
    }
    let mut bits: Vec<u32> = Vec::new();
    for &b in &args.bits {
        if !bits.contains(&b) {
            bits.push(b);
        }
    }
    for &b in &bits {
        for &method in &methods {
            runs.push(RunKey { method, bits: b });
        }
    }
    // Validate the data config before touching the file system (link and net are checked
    // again against the teacher file below).
    let link = LinkConfig::new(args.nt, args.nr, args.modulation)?;
    let probe_net = NetConfig {
        arch: args.arch,
        prox: args.prox,
        layers: args.layers,
        momentum: args.momentum,
        init: args.init,
    };
    args.teacher_config(link, probe_net)
        .validate()
        .map_err(|e| train_config_error(e, "--train-snr"))?;
    prepare_out(&args.out, args.force)?;

    let pool = match args.threads {
        Some(n) => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .context("cannot start the worker threads")?,
        ),
        None => None,
    };
    let work = || compare(&args, &runs, &bits);
    match &pool {
        Some(pool) => pool.install(work)?,
        None => work()?,
    }
    println!(
        "report written to {} in {:.1} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn compare(args: &CompareArgs, runs: &[RunKey], bits: &[u32]) -> anyhow::Result<()> {
    let models = args.out.join("models");
    let teacher_path = models.join("fp32.json");
    let (teacher, teacher_config, teacher_history, source) = obtain_teacher(args, &teacher_path)?;
    let data = args.teacher_config(teacher.link().clone(), teacher.config().clone());
    let mut trained = Vec::with_capacity(runs.len());
    for &key in runs {
        let config = args.quant_config(&data, key.bits);
        config
            .train
            .validate()
            .map_err(|e| train_config_error(e, "--train-snr"))?;
        let path = models.join(key.file_name());
        let (run, reused) = obtain_quant(&teacher, key, &config, &path)?;
        trained.push((key, run, reused));
    }
    let plan = Plan {
        ber: BerConfig {
            link: teacher.link().clone(),
            snr_db: args.snr.0.clone(),
            min_errors: args.min_errors,
            max_frames: args.max_frames,
            batch_frames: DEFAULT_BATCH_FRAMES,
            seed: args.seed,
            threads: None,
        },
        teacher_config,
        data,
        runs: runs.to_vec(),
        out: args.out.clone(),
    };
    plan.ber.validate()?;

    // One BER run for every detector.
    let mut labelled = vec![Labelled {
        label: FP32.into(),
        inner: &teacher,
    }];
    for (key, run, _) in &trained {
        labelled.push(Labelled {
            label: key.label(),
            inner: &run.net,
        });
    }
    let detectors: Vec<&dyn Detector> = labelled.iter().map(|d| d as &dyn Detector).collect();
    let points = run_ber(&plan.ber, &detectors)?;
    let names: Vec<String> = labelled.iter().map(|d| d.label.clone()).collect();

    let summary: Vec<BitsSummary> = bits.iter().map(|&b| summarize(b, &points)).collect();

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
            config: &plan.teacher_config,
            history: &teacher_history,
            validation_accuracy: accuracy(&teacher_history),
        },
        runs: trained
            .iter()
            .map(|(key, run, reused)| RunReport {
                label: key.label(),
                method: key.method,
                bits: key.bits,
                model: format!("models/{}", key.file_name()),
                reused: *reused,
                config: &run.config,
                history: &run.history,
                kaq_history: &run.kaq_history,
                validation_accuracy: accuracy(&run.history),
            })
            .collect(),
        ber: &plan.ber,
        detectors: names.clone(),
        points: &points,
        summary: &summary,
    };
    let mut json = serde_json::to_string_pretty(&report).context("cannot encode the report")?;
    json.push('\n');
    plot::write_atomically(&plan.out.join("report.json"), json.as_bytes())?;

    let md = report::markdown(args, &plan, &teacher, &source, &names, &points, &summary);
    plot::write_atomically(&plan.out.join("report.md"), md.as_bytes())?;

    let link = plot::style::link_name(plan.ber.link.nt, plan.ber.link.nr, plan.ber.link.modulation);
    for &b in bits {
        let series: Vec<Series> = names
            .iter()
            .filter(|name| {
                name.as_str() == FP32
                    || plan.runs.iter().any(|k| k.bits == b && &k.label() == *name)
            })
            .map(|name| ber_series(name, &points))
            .collect();
        plot::line_plot(
            &plan.out.join(format!("ber-{b}bit.svg")),
            &format!("BER, {} {b}-bit activations, {link}", teacher.name()),
            plot::style::SNR_AXIS,
            "BER",
            true,
            &series,
        )?;
    }

    let teacher_epochs = teacher_history.len();
    let mut accuracy_series = vec![Series {
        name: FP32.into(),
        points: teacher_history
            .iter()
            .zip(accuracy(&teacher_history))
            .map(|(r, a)| (r.epoch as f64, a))
            .collect(),
        y_err: None,
    }];
    for (key, run, _) in &trained {
        if run.history.is_empty() {
            continue;
        }
        accuracy_series.push(Series {
            name: key.label(),
            points: run
                .history
                .iter()
                .zip(accuracy(&run.history))
                .map(|(r, a)| ((teacher_epochs + r.epoch) as f64, a))
                .collect(),
            y_err: None,
        });
    }
    if accuracy_series.iter().any(|s| !s.points.is_empty()) {
        accuracy_series.retain(|s| !s.points.is_empty());
        plot::line_plot(
            &plan.out.join("accuracy.svg"),
            &format!("Validation accuracy, {} on {link}", teacher.name()),
            "epoch (f32, then quantized fine-tuning)",
            "1 - validation BER",
            false,
            &accuracy_series,
        )?;
    }

    histograms(args, &plan, &teacher, &trained)?;
    Ok(())
}

fn ber_series(name: &str, points: &[BerPoint]) -> Series {
    let mine: Vec<&BerPoint> = points.iter().filter(|p| p.detector == name).collect();
    Series {
        name: name.to_string(),
        points: mine.iter().map(|p| (p.snr_db, p.ber)).collect(),
        y_err: Some(mine.iter().map(|p| (p.ber_ci_low, p.ber_ci_high)).collect()),
    }
}

fn run_ber(config: &BerConfig, detectors: &[&dyn Detector]) -> anyhow::Result<Vec<BerPoint>> {
    let bar = crate::progress::percent_bar("BER", config.snr_db.len() as u64 * 1000);
    let mut on_progress = |p: &BerProgress| {
        let done = (p.snr_index as f64 + p.point_fraction()) * 1000.0;
        bar.set_position(done as u64);
        let running = p.done.iter().filter(|d| !**d).count();
        bar.set_message(format!(
            "SNR {} dB ({}/{}), {running} detectors running",
            p.snr_db,
            p.snr_index + 1,
            p.snr_points
        ));
    };
    let start = Instant::now();
    let points = simulate(config, detectors, Some(&mut on_progress));
    bar.finish_and_clear();
    let points = points.context("the BER run failed")?;
    println!("BER run: {:.1} s", start.elapsed().as_secs_f64());
    Ok(points)
}

/// The checks of one bit width.
fn summarize(bits: u32, points: &[BerPoint]) -> BitsSummary {
    let of =
        |name: &str| -> Vec<&BerPoint> { points.iter().filter(|p| p.detector == name).collect() };
    let f32_points = of(FP32);
    let kaq = of(&RunKey {
        method: QuantMethod::Kaq,
        bits,
    }
    .label());
    let qat = of(&RunKey {
        method: QuantMethod::QatMse,
        bits,
    }
    .label());
    let mut summary = BitsSummary {
        bits,
        kaq_worst_ratio: None,
        kaq_within_5_percent: None,
        kaq_better_than_qat: None,
        kaq_better_than_qat_ci: None,
        snr_points: f32_points.len(),
    };
    if !kaq.is_empty() {
        let worst = kaq
            .iter()
            .zip(&f32_points)
            .map(|(k, f)| (ber_ratio(k.ber, f.ber), k.snr_db))
            .fold(
                (f64::NEG_INFINITY, f64::NAN),
                |a, b| if b.0 > a.0 { b } else { a },
            );
        summary.kaq_worst_ratio = Some(worst);
        summary.kaq_within_5_percent = Some(worst.0 <= 1.05);
    }
    if !kaq.is_empty() && !qat.is_empty() {
        summary.kaq_better_than_qat =
            Some(kaq.iter().zip(&qat).filter(|(k, q)| k.ber < q.ber).count());
        summary.kaq_better_than_qat_ci = Some(
            kaq.iter()
                .zip(&qat)
                .filter(|(k, q)| k.ber_ci_high < q.ber_ci_low)
                .count(),
        );
    }
    summary
}

/// BER_a / BER_f32; 1 when both are zero, infinite when only the reference is.
fn ber_ratio(ber: f64, reference: f64) -> f64 {
    if reference > 0.0 {
        ber / reference
    } else if ber > 0.0 {
        f64::INFINITY
    } else {
        1.0
    }
}

/// Histograms of the first and last layer's activations, teacher vs every method at the
/// lowest bit width, on the first `--hist-samples` validation samples.
fn histograms(
    args: &CompareArgs,
    plan: &Plan,
    teacher: &UnfoldedNet,
    trained: &[(RunKey, QuantTrained, bool)],
) -> anyhow::Result<()> {
    let Some(lowest) = plan.runs.iter().map(|k| k.bits).min() else {
        return Ok(());
    };
    let tc = &plan.data;
    let set = TrainSet::generate(
        &tc.link,
        args.hist_samples.min(tc.val_samples),
        &tc.snr_db,
        tc.seed,
        SetKind::Validation,
    )?;
    let batch = set.as_batch();
    let k = tc.net.layers;
    let per_layer = batch.batch * batch.n;
    let mut f32_layers = vec![0.0f32; k * per_layer];
    teacher_layers(teacher, &batch, &mut f32_layers)?;
    let students: Vec<(String, Vec<f32>)> = trained
        .iter()
        .filter(|(key, _, _)| key.bits == lowest)
        .map(|(key, run, _)| {
            let mut out = vec![0.0f32; k * per_layer];
            run.net
                .forward_layers(&batch, &mut out)
                .map(|()| (key.label(), out))
        })
        .collect::<Result<_, _>>()?;
    let mut layers = vec![1];
    if k > 1 {
        layers.push(k);
    }
    for layer in layers {
        let slice = |v: &[f32]| -> Vec<f64> {
            v[(layer - 1) * per_layer..layer * per_layer]
                .iter()
                .map(|&a| a as f64)
                .collect()
        };
        let mut samples = vec![Histogram {
            name: FP32.into(),
            values: slice(&f32_layers),
        }];
        samples.extend(students.iter().map(|(name, v)| Histogram {
            name: name.clone(),
            values: slice(v),
        }));
        plot::histogram_plot(
            &plan.out.join(format!("hist-layer{layer}.svg")),
            &format!(
                "Layer {layer} activations, {} samples, f32 vs {lowest}-bit",
                batch.batch
            ),
            "activation value",
            &samples,
            80,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaq_model::ber::StopReason;

    fn point(detector: &str, snr_db: f64, ber: f64, ci: (f64, f64)) -> BerPoint {
        BerPoint {
            detector: detector.into(),
            snr_db,
            ber,
            ber_ci_low: ci.0,
            ber_ci_high: ci.1,
            ser: ber,
            bit_errors: 0,
            bits: 0,
            symbol_errors: 0,
            symbols: 0,
            frames: 0,
            stop: StopReason::MinErrors,
        }
    }

    #[test]
    fn summary_counts_wins_and_separated_intervals() {
        let points = [
            point("fp32", 0.0, 0.10, (0.09, 0.11)),
            point("fp32", 5.0, 0.02, (0.018, 0.022)),
            point("fp32", 10.0, 0.0, (0.0, 0.001)),
            point("qat-mse@4", 0.0, 0.12, (0.11, 0.13)),
            point("qat-mse@4", 5.0, 0.04, (0.038, 0.042)),
            point("qat-mse@4", 10.0, 0.001, (0.0005, 0.002)),
            // Better but overlapping, better and separated, worse.
            point("kaq@4", 0.0, 0.115, (0.105, 0.125)),
            point("kaq@4", 5.0, 0.021, (0.019, 0.023)),
            point("kaq@4", 10.0, 0.002, (0.001, 0.003)),
        ];
        let s = summarize(4, &points);
        assert_eq!(s.snr_points, 3);
        assert_eq!(s.kaq_better_than_qat, Some(2));
        assert_eq!(s.kaq_better_than_qat_ci, Some(1));
        // f32 has no error at 10 dB where KAQ has some: the worst ratio is infinite there.
        let (ratio, snr) = s.kaq_worst_ratio.unwrap();
        assert!(ratio.is_infinite() && snr == 10.0, "{ratio} at {snr}");
        assert_eq!(s.kaq_within_5_percent, Some(false));

        let within = summarize(
            4,
            &points[..2]
                .iter()
                .cloned()
                .chain([
                    point("kaq@4", 0.0, 0.104, (0.1, 0.11)),
                    point("kaq@4", 5.0, 0.0201, (0.019, 0.021)),
                ])
                .collect::<Vec<_>>(),
        );
        let (ratio, snr) = within.kaq_worst_ratio.unwrap();
        assert!((ratio - 1.04).abs() < 1e-9 && snr == 0.0);
        assert_eq!(within.kaq_within_5_percent, Some(true));
        assert_eq!(within.kaq_better_than_qat, None);

        let none = summarize(8, &points);
        assert_eq!(none.kaq_worst_ratio, None);
        assert_eq!(none.kaq_better_than_qat, None);
    }

    #[test]
    fn ratio_handles_zero_errors() {
        assert_eq!(ber_ratio(0.2, 0.1), 2.0);
        assert_eq!(ber_ratio(0.0, 0.0), 1.0);
        assert!(ber_ratio(0.1, 0.0).is_infinite());
    }

    #[test]
    fn method_and_bits_parsers_name_the_problem() {
        assert_eq!(parse_method("FP32"), Ok(Method::Fp32));
        assert_eq!(
            parse_method("qat-mse"),
            Ok(Method::Quant(QuantMethod::QatMse))
        );
        assert!(parse_method("foo").unwrap_err().contains("foo"));
        assert_eq!(parse_bits("4"), Ok(4));
        assert!(parse_bits("1").unwrap_err().contains("got 1"));
        assert!(parse_bits("25").is_err());
        assert_eq!(
            RunKey {
                method: QuantMethod::Kaq,
                bits: 4
            }
            .label(),
            "kaq@4"
        );
        assert_eq!(
            RunKey {
                method: QuantMethod::QatMse,
                bits: 6
            }
            .file_name(),
            "qat-mse-6bit.json"
        );
    }
}
