//! `kaq train`: trains a PGD-Net or ADMM-Net in f32, or quantizes a trained one (`--quant`), and
//! writes the model file.
//!
//! Defaults (`kaq train --out model.json` alone) are the paper's protocol: PGD-Net with the
//! soft-threshold prox, K = 5 layers, x⁽⁰⁾ = 0, on 16×16 16-QAM i.i.d. Rayleigh; 50 000
//! training samples with SNR uniform over {0, 5, …, 25} dB; Adam, lr 1e-3 halved every 10
//! epochs; 50 epochs of batch 128; seed 1; all cores. The validation set (5 000 samples, its own
//! random streams) gives the validation loss after each epoch, and 2 000 frames at each of 0, 10
//! and 20 dB give the validation BER.
//!
//! Output: a progress bar with the live loss on stderr (hidden when stderr is not a terminal),
//! and one line per epoch on stdout (epoch, learning rate, train loss, validation loss,
//! validation BER per SNR). Equal arguments give equal models on any thread count.
//!
//! Files: `--out` (the model JSON, see `kaq_model::train::model_file`), `--json` (the config
//! and per-epoch history), `--plot` (train and validation loss against epoch, log y, SVG).
//! Existing files are never replaced without `--force`; every output path is checked before
//! training starts, and every file is written atomically. A run that diverges (non-finite loss,
//! gradient or parameter) ends with status 1 and writes nothing.
//!
//! With `--quant ptq|qat-mse|lsq|kaq --teacher fp32.json [--bits B or B1,...,BK]` it quantizes a trained f32
//! model instead (`kaq_model::quant::train_quantized`): the link and architecture come from the
//! teacher file, the data flags from the command line, and the fine-tuning defaults are 10
//! epochs at lr 2e-4 halved every 5. `--teacher` is required (train the f32 model first with
//! plain `kaq train`; one file per run keeps the teacher reusable across methods). `kaq` also
//! takes `--epsilon` (MMD weight, default 10) and `--kernel learnable|median|multi` (default
//! median); its per-epoch MSE, Σ MMD², saturation and bandwidths go to the model file's and the
//! `--json` file's `kaq_history`. The output is a `kaq-qmodel` file that `kaq ber --model` reads.
//!
//! `--arch ep|oamp|cg` trains a Gram-domain net (`kaq_model::gram`: EPNet, OAMP-Net2 with an
//! LMMSE bank, the inverse-free unfolded CG with `--inner L` steps) through the same loop and
//! writes a `kaq-gram-model` file; it prints the net's multiplies, adds, reciprocals, square
//! roots and table look-ups per vector, the per-block stage amortized over `--block T`.
//! `--block T` trains with one channel and one SNR per block of T samples (default 1), and
//! `--rho-tx`/`--rho-rx` on a Kronecker-correlated channel, `--csi ls|lmmse --pilots L` on the
//! channel estimate Ĥ (the link draws y through the true H; docs/channels.md).
//! `--quant ptq|qat-mse|kaq --teacher cg.json --bits B` (B 2 to 12) quantizes a cg net instead
//! and writes its IR document (docs/ir.md §10; the input of `kaq ber --ir`, and for version 2 of
//! `kaq codegen`, `kaq cosim`): the PTQ formats of docs/ir.md §10.6 with MSE calibration (what
//! `kaq lower --ptq-bits` writes; for kaq with per-SNR-bin steps of e, ρ, p, d, an IR version
//! 3, §10.8), then for qat-mse and kaq the fine-tuning at those formats on the data flags
//! (`kaq_model::gram::qat`); named `cg-kK-lL-METHOD-Bb`; lsq exits 2. With `--quant`,
//! `--channels FILE` loads the dataset a teacher was trained on again (the file its model
//! records, checked by SHA-256), so a site-trained net quantizes on its site.
//!
//! Bad arguments end with status 2 and a message naming the argument.

use super::args::{
    parse_antennas, parse_bits, parse_epsilon, parse_from_str, parse_layers, parse_lr,
    parse_positive, parse_snr_db, parse_threads, train_config_error, usage_error,
};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use kaq_model::gram::file::GramModelFile;
use kaq_model::gram::train::GramTrainConfig;
use kaq_model::gram::{Family, GramConfig};
use kaq_model::mmd::KernelMode;
use kaq_model::quant::file::QuantModelFile;
use kaq_model::quant::kaq::{DEFAULT_EPSILON, DEFAULT_KERNEL};
use kaq_model::quant::{
    KaqConfig, KaqEpoch, QuantConfig, QuantMethod, QuantTrainConfig, train_quantized,
};
use kaq_model::train::model_file::{Overwrite, write_atomic};
use kaq_model::train::{
    EpochRecord, ModelFile, Progress, TrainConfig, TrainError, TrainedModel, train,
};
use kaq_model::unfolded::{Arch, Init, NetConfig, Prox, UnfoldedNet};
use kaq_model::{LinkConfig, Modulation};
use serde::Serialize;

use crate::plot::{self, Series};

/// Arguments of `kaq train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Architecture: pgd or admm (unfolded direct-form nets), or a Gram-domain family with a
    /// per-channel stage: ep (EPNet), oamp (OAMP-Net2 with an LMMSE bank), cg (unfolded CG).
    #[arg(long, value_parser = parse_arch, default_value = "pgd", conflicts_with = "teacher")]
    arch: ArchChoice,

    /// Inner steps per layer of the cg family [default: 4].
    #[arg(long, value_parser = parse_positive, conflicts_with = "teacher")]
    inner: Option<usize>,

    /// Exponential correlation between neighbouring transmit antennas (Kronecker), |ρ| < 1.
    #[arg(
        long,
        default_value_t = 0.0,
        allow_hyphen_values = true,
        conflicts_with = "teacher"
    )]
    rho_tx: f64,

    /// Exponential correlation between neighbouring receive antennas (Kronecker), |ρ| < 1.
    #[arg(
        long,
        default_value_t = 0.0,
        allow_hyphen_values = true,
        conflicts_with = "teacher"
    )]
    rho_rx: f64,

    /// Block fading: frames per channel block T (one channel and one SNR per block).
    #[arg(long, value_parser = parse_positive, default_value_t = 1, conflicts_with = "teacher")]
    block: usize,

    /// Proximal operator of every layer: soft, box or qam.
    #[arg(long, value_parser = parse_from_str::<Prox>, default_value = "soft", conflicts_with = "teacher")]
    prox: Prox,

    /// Unfolded layers K.
    #[arg(long, value_parser = parse_layers, default_value_t = 5, conflicts_with = "teacher")]
    layers: usize,

    /// Add a learnable heavy-ball momentum term to every layer.
    #[arg(long, conflicts_with = "teacher")]
    momentum: bool,

    /// Initial estimate x⁽⁰⁾: zero or mf (learnable scale times Hᵀy).
    #[arg(long, value_parser = parse_from_str::<Init>, default_value = "zero", conflicts_with = "teacher")]
    init: Init,

    /// Training epochs [default: 50; with --quant 10].
    #[arg(long, value_parser = parse_positive)]
    epochs: Option<usize>,

    /// Training samples, drawn once from the seed.
    #[arg(long, value_parser = parse_positive, default_value_t = 50_000)]
    samples: usize,

    /// Validation samples for the per-epoch validation loss.
    #[arg(long, value_parser = parse_positive, default_value_t = 5_000)]
    val_samples: usize,

    /// Minibatch size (at most --samples).
    #[arg(long, value_parser = parse_positive, default_value_t = 128)]
    batch: usize,

    /// Initial Adam learning rate [default: 1e-3; with --quant 2e-4].
    #[arg(long, value_parser = parse_lr, allow_hyphen_values = true)]
    lr: Option<f64>,

    /// The learning rate halves every this many epochs [default: 10; with --quant 5].
    #[arg(long, value_parser = parse_positive)]
    lr_step: Option<usize>,

    /// Seed of the data sets and the sample order.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Transmit antennas, 1 to 256.
    #[arg(long, value_parser = parse_antennas, default_value_t = 16, conflicts_with = "teacher")]
    nt: usize,

    /// Receive antennas, 1 to 256.
    #[arg(long, value_parser = parse_antennas, default_value_t = 16, conflicts_with = "teacher")]
    nr: usize,

    /// Modulation: bpsk, qpsk, 16qam, 64qam.
    #[arg(long = "mod", value_parser = parse_from_str::<Modulation>, default_value = "16qam", conflicts_with = "teacher")]
    modulation: Modulation,

    /// Training SNRs in dB (per receive antenna), comma separated; each sample draws one.
    #[arg(long, value_delimiter = ',', value_parser = parse_snr_db, allow_hyphen_values = true,
          default_value = "0,5,10,15,20,25")]
    snr: Vec<f64>,

    /// SNRs in dB of the per-epoch validation BER, comma separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_snr_db, allow_hyphen_values = true,
          default_value = "0,10,20")]
    val_snr: Vec<f64>,

    /// Frames per validation-BER SNR.
    #[arg(long, value_parser = parse_positive, default_value_t = 2_000)]
    val_frames: usize,

    /// Quantize a trained f32 teacher (--teacher) instead of training in f32: ptq, qat-mse,
    /// lsq or kaq. The link and architecture come from the teacher; giving them as flags too is
    /// an error.
    #[arg(long, value_parser = parse_from_str::<QuantMethod>)]
    quant: Option<QuantMethod>,

    /// With --quant: bits of the activations x^(k), 2 to 16: one value for every layer, or
    /// one per layer for mixed precision (`--bits 8,6,6,4,4`).
    #[arg(long, value_delimiter = ',', value_parser = parse_bits, default_value = "8", requires = "quant")]
    bits: Vec<u32>,

    /// With --quant: bits of H̃ (default 8), 2 to 16.
    #[arg(long, value_parser = parse_bits, requires = "quant")]
    h_bits: Option<u32>,

    /// With --quant: bits of H̃ per layer (mixed H̃ precision, one entry per layer, each at
    /// most --h-bits): layer k reads H̃'s codes rounded to their top bits. Not yet lowerable
    /// to the IR (`kaq lower` refuses it); `kaq ber --model` simulates it.
    #[arg(long, value_delimiter = ',', value_parser = parse_bits, requires = "quant")]
    h_layer_bits: Option<Vec<u32>>,

    /// With --quant: bits of the residual e (default 12), 2 to 16.
    #[arg(long, value_parser = parse_bits, requires = "quant")]
    e_bits: Option<u32>,

    /// With --quant: bits of the gradient g (default 12), 2 to 16.
    #[arg(long, value_parser = parse_bits, requires = "quant")]
    g_bits: Option<u32>,

    /// With --quant: the trained f32 model file (`kaq train --out`) to quantize; required.
    #[arg(long, value_name = "PATH")]
    teacher: Option<PathBuf>,

    /// With --quant kaq: weight of the MMD term, loss = MSE + E * sum_k MMD^2 (finite, >= 0).
    #[arg(long, value_name = "E", value_parser = parse_epsilon, default_value_t = DEFAULT_EPSILON,
          allow_hyphen_values = true, requires = "quant")]
    epsilon: f64,

    /// With --quant kaq: MMD kernel bandwidths: learnable (the paper's three per layer),
    /// median (median heuristic per batch) or multi (fixed multi-bandwidth sum).
    #[arg(long, value_parser = parse_from_str::<KernelMode>, default_value_t = DEFAULT_KERNEL,
          requires = "quant")]
    kernel: KernelMode,

    /// The model file to write (JSON).
    #[arg(long, value_name = "PATH")]
    out: PathBuf,

    /// Also write the config and per-epoch history as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,

    /// Also draw train and validation loss against epoch (log y) as SVG to this file.
    #[arg(long, value_name = "PATH.svg")]
    plot: Option<PathBuf>,

    /// Worker threads (default: all cores). Does not change the results.
    #[arg(long, value_parser = parse_threads)]
    threads: Option<usize>,

    /// Replace output files that already exist.
    #[arg(long)]
    force: bool,

    /// Channel state information the net trains and validates on (docs/channels.md).
    #[command(flatten)]
    csi: super::csi::CsiArgs,
}

/// What `--arch` names: an unfolded direct-form net or a Gram-domain family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArchChoice {
    Unfolded(Arch),
    Gram(Family),
}

impl std::fmt::Display for ArchChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unfolded(a) => a.fmt(f),
            Self::Gram(g) => g.fmt(f),
        }
    }
}

fn parse_arch(s: &str) -> Result<ArchChoice, String> {
    if let Ok(arch) = s.parse::<Arch>() {
        return Ok(ArchChoice::Unfolded(arch));
    }
    s.parse::<Family>().map(ArchChoice::Gram).map_err(|_| {
        format!("unknown architecture `{s}` (expected one of: pgd, admm, ep, oamp, cg)")
    })
}

/// The history file written by `--json`, for any training config.
#[derive(Debug, Serialize)]
struct HistoryFile<'a, C> {
    tool: &'static str,
    version: &'static str,
    command: &'static str,
    config: &'a C,
    history: &'a [EpochRecord],
}

/// `--json` and `--plot` of an f32 training run (PGD/ADMM or Gram): the history file and the
/// train/validation loss curves titled `title`.
fn write_history<C: Serialize>(
    args: &TrainArgs,
    config: &C,
    history: &[EpochRecord],
    overwrite: Overwrite,
    title: &str,
) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        let doc = HistoryFile {
            tool: "kaq",
            version: env!("CARGO_PKG_VERSION"),
            command: "train",
            config,
            history,
        };
        let text = serde_json::to_string_pretty(&doc).context("cannot encode the history")?;
        write_atomic(path, text.as_bytes(), overwrite)
            .with_context(|| format!("cannot write the history to {}", path.display()))?;
        println!("history written to {}", path.display());
    }
    if let Some(path) = &args.plot {
        let curve = |name: &str, f: fn(&EpochRecord) -> f64| Series {
            name: name.into(),
            points: history.iter().map(|r| (r.epoch as f64, f(r))).collect(),
            y_err: None,
        };
        let series = [
            curve("train loss", |r| r.train_loss),
            curve("validation loss", |r| r.val_loss),
        ];
        plot::line_plot(path, title, "epoch", "mean ||x - x^(K)||^2", true, &series)?;
        println!("loss plot written to {}", path.display());
    }
    Ok(())
}

impl TrainArgs {
    fn link(&self) -> anyhow::Result<LinkConfig> {
        let link = LinkConfig::new(self.nt, self.nr, self.modulation)?
            .with_correlation(self.rho_tx, self.rho_rx)?
            .with_block(self.block)?;
        self.csi.apply(link)
    }

    fn config(&self, arch: Arch) -> anyhow::Result<TrainConfig> {
        Ok(TrainConfig {
            link: self.link()?,
            net: NetConfig {
                arch,
                prox: self.prox,
                layers: self.layers,
                momentum: self.momentum,
                init: self.init,
            },
            samples: self.samples,
            val_samples: self.val_samples,
            batch: self.batch,
            epochs: self.epochs.unwrap_or(50),
            lr: self.lr.unwrap_or(1e-3),
            lr_step: self.lr_step.unwrap_or(10),
            seed: self.seed,
            snr_db: self.snr.clone(),
            val_ber_snr_db: self.val_snr.clone(),
            val_ber_frames: self.val_frames,
        })
    }

    /// Every output path with its flag.
    fn outputs(&self) -> Vec<(&'static str, &Path)> {
        let mut outputs = vec![("--out", self.out.as_path())];
        outputs.extend(self.json.as_deref().map(|p| ("--json", p)));
        outputs.extend(self.plot.as_deref().map(|p| ("--plot", p)));
        outputs
    }
}

/// Checks, before training, that every output can be written and none would be clobbered.
fn check_outputs(outputs: &[(&'static str, &Path)], force: bool) -> anyhow::Result<()> {
    for (i, (flag, path)) in outputs.iter().enumerate() {
        if let Some((other, _)) = outputs[..i].iter().find(|(_, p)| p == path) {
            bail!("{flag} and {other} name the same file {}", path.display());
        }
        if path.exists() && !force {
            bail!(
                "{flag} {} already exists; pass --force to replace it",
                path.display()
            );
        }
        plot::check_writable(path).with_context(|| format!("{flag} is not writable"))?;
    }
    Ok(())
}

/// The per-epoch line printed on stdout.
fn epoch_line(r: &EpochRecord, epochs: usize) -> String {
    let bers: Vec<String> = r
        .val_ber
        .iter()
        .map(|p| format!("{} dB {:.3e}", p.snr_db, p.ber))
        .collect();
    format!(
        "epoch {:>width$}/{epochs}  lr {:.2e}  train loss {:.5}  val loss {:.5}  val BER [{}]  {:.1} s",
        r.epoch,
        r.lr,
        r.train_loss,
        r.val_loss,
        bers.join(", "),
        r.seconds,
        width = epochs.to_string().len()
    )
}

fn run_training(config: &TrainConfig) -> Result<TrainedModel, TrainError> {
    with_progress(|progress| train(config, progress))
}

/// Runs `job` with a progress bar on stderr and the per-epoch lines on stdout.
fn with_progress<T>(
    job: impl FnOnce(&mut dyn FnMut(Progress<'_>)) -> Result<T, TrainError>,
) -> Result<T, TrainError> {
    let bar = crate::progress::open_bar("epoch", "batches");
    bar.set_message("drawing data sets");
    let mut epochs = 0;
    let result = job(&mut |p| match p {
        Progress::Started { epochs: e, batches } => {
            epochs = e;
            bar.set_length(batches as u64);
            bar.set_prefix(format!("1/{e}"));
        }
        Progress::Batch {
            epoch, batch, loss, ..
        } => {
            bar.set_prefix(format!("{epoch}/{epochs}"));
            bar.set_position(batch as u64);
            bar.set_message(format!("loss {loss:.5}"));
        }
        Progress::Epoch(record) => {
            bar.suspend(|| println!("{}", epoch_line(record, epochs)));
            bar.set_position(0);
        }
    });
    bar.finish_and_clear();
    result
}

/// Validates a training config, naming the flag of a bad field (status 2).
fn validate_flags(config: &TrainConfig) -> anyhow::Result<()> {
    config
        .validate()
        .map_err(|e| train_config_error(e, "--snr"))
}

/// Runs `job` in a pool of `threads` workers (all cores by default).
fn in_pool<T: Send>(
    threads: Option<usize>,
    job: impl FnOnce() -> Result<T, TrainError> + Send,
) -> anyhow::Result<T> {
    match threads {
        Some(threads) => rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .context("cannot start the worker threads")?
            .install(job),
        None => job(),
    }
    .context("training failed; no file was written")
}

/// Runs `kaq train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    if let Some(method) = args.quant {
        if args.csi.csi != super::csi::CsiKind::Perfect {
            return Err(usage_error(
                "--csi",
                "a quantized student trains on its teacher's link; train the teacher with --csi",
            ));
        }
        if args.csi.channel_norm.is_some() || args.csi.doppler.is_some() {
            return Err(usage_error(
                "--channels",
                "a quantized student trains on its teacher's link; --channels only loads the \
                 teacher's dataset again (--channel-norm and --doppler do not apply)",
            ));
        }
        return run_quant(&args, method);
    }
    if args.teacher.is_some() {
        return Err(usage_error(
            "--teacher",
            "a teacher is only used with --quant",
        ));
    }
    let arch = match args.arch {
        ArchChoice::Unfolded(arch) => arch,
        ArchChoice::Gram(family) => return run_gram(&args, family),
    };
    if args.inner.is_some() {
        return Err(usage_error("--inner", "only the cg family has inner steps"));
    }
    let config = args.config(arch)?;
    validate_flags(&config)?;
    let outputs = args.outputs();
    check_outputs(&outputs, args.force)?;

    let model = in_pool(args.threads, || run_training(&config))?;

    let history = model.history.clone();
    let file = ModelFile::from(model);
    let overwrite = if args.force {
        Overwrite::Replace
    } else {
        Overwrite::Refuse
    };
    file.save(&args.out, overwrite)
        .with_context(|| format!("cannot save the model to {}", args.out.display()))?;
    println!("model written to {}", args.out.display());

    let title = format!(
        "{} {} K={} on {}x{} {}",
        args.arch, args.prox, args.layers, args.nt, args.nr, args.modulation
    );
    write_history(&args, &config, &history, overwrite, &title)?;
    Ok(())
}

/// `kaq train --arch ep|oamp|cg`: trains a Gram-domain net and writes a `kaq-gram-model` file.
fn run_gram(args: &TrainArgs, family: Family) -> anyhow::Result<()> {
    if family != Family::Cg && args.inner.is_some() {
        return Err(usage_error("--inner", "only the cg family has inner steps"));
    }
    let mut net = GramConfig::new(family, args.layers);
    if let Some(inner) = args.inner {
        net.inner = inner;
    }
    let base = args.config(Arch::Pgd)?;
    let config = GramTrainConfig {
        link: base.link.clone(),
        net,
        samples: base.samples,
        val_samples: base.val_samples,
        batch: base.batch,
        epochs: base.epochs,
        lr: base.lr,
        lr_step: base.lr_step,
        seed: base.seed,
        snr_db: base.snr_db.clone(),
        val_ber_snr_db: base.val_ber_snr_db.clone(),
        val_ber_frames: base.val_ber_frames,
    };
    config
        .validate()
        .map_err(|e| train_config_error(e, "--snr"))?;
    let outputs = args.outputs();
    check_outputs(&outputs, args.force)?;
    let trained = in_pool(args.threads, || {
        with_progress(|progress| kaq_model::gram::train::train(&config, progress))
    })?;
    let cost = trained.net.cost();
    let amortized = cost.per_vector_amortized(args.block);
    println!(
        "cost per vector: {} mults, {} adds, {} recips, {} sqrts, {} table look-ups \
         (per-block stage {} mults amortized over T = {})",
        amortized.mults,
        amortized.adds,
        amortized.recips,
        amortized.sqrts,
        amortized.tables,
        cost.per_block.mults,
        args.block
    );
    let history = trained.history.clone();
    let overwrite = if args.force {
        Overwrite::Replace
    } else {
        Overwrite::Refuse
    };
    GramModelFile::from(trained)
        .save(&args.out, overwrite)
        .with_context(|| format!("cannot save the model to {}", args.out.display()))?;
    println!("model written to {}", args.out.display());
    let title = format!(
        "{family} K={} on {}x{} {}",
        args.layers, args.nt, args.nr, args.modulation
    );
    write_history(args, &config, &history, overwrite, &title)?;
    Ok(())
}

/// `kaq train --quant ptq|qat-mse|kaq --teacher cg.json`: the student of a Gram-domain cg net,
/// written as its IR document (the formats of the PTQ lowering of docs/ir.md §10.6, MSE
/// calibration; QAT-MSE then fine-tunes at those formats on the data flags and lowers again;
/// KAQ is the PTQ with per-SNR-bin steps of e, ρ, p, d — an IR version 3, §10.8 — then the
/// same fine-tuning). `ptq` is `kaq lower --ptq-bits` under another name; `lsq` does not exist
/// for cg (status 2).
fn run_quant_gram(
    args: &TrainArgs,
    method: QuantMethod,
    file: GramModelFile,
) -> anyhow::Result<()> {
    if file.net.config().family != Family::Cg {
        return Err(usage_error(
            "--teacher",
            format!(
                "{}: a {} net; only the cg family quantizes to the IR (IR v2)",
                args.teacher.as_deref().unwrap_or(Path::new("")).display(),
                file.net.config().family
            ),
        ));
    }
    if method == QuantMethod::Lsq {
        return Err(usage_error(
            "--quant",
            "lsq is not available for the cg family: IR v2 holds power-of-two formats only, so \
             LSQ's learned step does not lower to it (cg takes ptq, qat-mse, kaq)",
        ));
    }
    if args.bits.len() != 1 {
        return Err(usage_error(
            "--bits",
            "the cg family takes one width (docs/ir.md §10.6)",
        ));
    }
    let bits = args.bits[0];
    if bits > 12 {
        return Err(usage_error(
            "--bits",
            format!("{bits}: the cg family quantizes to 2 to 12 bits"),
        ));
    }
    for (given, flag) in [
        (args.h_bits.is_some(), "--h-bits"),
        (args.h_layer_bits.is_some(), "--h-layer-bits"),
        (args.e_bits.is_some(), "--e-bits"),
        (args.g_bits.is_some(), "--g-bits"),
        (args.csi.channels.is_some(), "--channels"),
    ] {
        if given {
            return Err(usage_error(flag, "does not apply to a cg teacher"));
        }
    }
    if method == QuantMethod::Kaq && args.kernel == kaq_model::mmd::KernelMode::Learnable {
        return Err(usage_error(
            "--kernel",
            "learnable bandwidths are not implemented for the cg family's KAQ (median or multi)",
        ));
    }
    let teacher = file.net;
    let config = GramTrainConfig {
        link: teacher.link().clone(),
        net: teacher.config().clone(),
        samples: args.samples,
        val_samples: args.val_samples,
        batch: args.batch,
        epochs: args.epochs.unwrap_or(10),
        lr: args.lr.unwrap_or(2e-4),
        lr_step: args.lr_step.unwrap_or(5),
        seed: args.seed,
        snr_db: args.snr.clone(),
        val_ber_snr_db: args.val_snr.clone(),
        val_ber_frames: args.val_frames,
    };
    config
        .validate()
        .map_err(|e| train_config_error(e, "--snr"))?;
    check_outputs(&args.outputs(), args.force)?;
    let (ir, history) = in_pool(args.threads, || {
        let kaq = KaqConfig {
            epsilon: args.epsilon,
            kernel: args.kernel,
        };
        with_progress(|progress| cg_student(&teacher, method, bits, &config, &kaq, progress))
    })?;
    let c = teacher.config();
    let overwrite = if args.force {
        Overwrite::Replace
    } else {
        Overwrite::Refuse
    };
    write_atomic(&args.out, ir.to_json().as_bytes(), overwrite)
        .with_context(|| format!("cannot write the IR to {}", args.out.display()))?;
    println!(
        "IR v{} {} written to {}",
        ir.version,
        ir.name,
        args.out.display()
    );
    let title = format!(
        "{method} {bits} bits, cg K={} L={} on {}x{} {}",
        c.layers,
        c.inner,
        teacher.link().nt,
        teacher.link().nr,
        teacher.link().modulation
    );
    if history.is_empty() {
        for (given, flag) in [
            (args.json.is_some(), "--json"),
            (args.plot.is_some(), "--plot"),
        ] {
            if given {
                println!("{flag} skipped: {method} does not train");
            }
        }
        Ok(())
    } else {
        write_history(args, &config, &history, overwrite, &title)
    }
}

/// The cg student of `teacher` at `bits` (`method` ptq, qat-mse or kaq): the PTQ lowering at
/// the formats of docs/ir.md §10.6 (`CgQuantOptions::new`, what `kaq lower --ptq-bits`
/// writes), then for QAT-MSE the fine-tuning on `config`'s data at those formats, lowered
/// again; for KAQ `kaq_model::gram::qat::kaq_cg` (per-SNR-bin steps of e, ρ, p, d, an IR
/// version 3, the formats refined on the golden model before and after the fine-tuning with
/// the loss MSE + ε Σ MMD² of `kaq`); named `cg-kK-lL-METHOD-Bb`. Shared by
/// `kaq train --quant` and `kaq flow`.
pub(crate) fn cg_student(
    teacher: &kaq_model::gram::GramNet,
    method: QuantMethod,
    bits: u32,
    config: &GramTrainConfig,
    kaq: &KaqConfig,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(kaq_ir::gram::GramIr, Vec<EpochRecord>), TrainError> {
    use kaq_model::gram::qat::{kaq_cg, train_qat_mse};
    use kaq_model::gram::quantized::{CgQuantOptions, quantize_cg};
    use kaq_model::gram::refine::RefineOptions;
    let opts = CgQuantOptions::new(bits);
    let (mut ir, history) = match method {
        QuantMethod::Kaq => {
            let run = kaq_cg(
                teacher,
                &opts,
                config,
                kaq,
                Some(&RefineOptions::default()),
                progress,
            )?;
            (run.ir, run.history)
        }
        QuantMethod::QatMse => {
            let (qat, history) = train_qat_mse(&quantize_cg(teacher, &opts)?, config, progress)?;
            (qat.lower()?, history)
        }
        _ => (quantize_cg(teacher, &opts)?.ir().clone(), Vec::new()),
    };
    let c = teacher.config();
    ir.name = format!("cg-k{}-l{}-{method}-{bits}b", c.layers, c.inner);
    Ok((ir, history))
}

/// The history file written by `--json` for a quantized run.
#[derive(Debug, Serialize)]
struct QuantHistoryFile<'a> {
    tool: &'static str,
    version: &'static str,
    command: &'static str,
    method: QuantMethod,
    config: &'a QuantTrainConfig,
    history: &'a [EpochRecord],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    kaq_history: &'a [KaqEpoch],
}

/// The per-layer activation bits of `--bits`: one value for all `layers`, or one per layer.
pub(crate) fn expand_bits(bits: &[u32], layers: usize) -> anyhow::Result<Vec<u32>> {
    match bits.len() {
        1 => Ok(vec![bits[0]; layers]),
        n if n == layers => Ok(bits.to_vec()),
        n => Err(usage_error(
            "--bits",
            format!(
                "gives {n} widths; the net has {layers} layers (give one value or one per layer)"
            ),
        )),
    }
}

/// `8` or `8,6,4`: the `--bits` list as given.
fn bits_label(bits: &[u32]) -> String {
    bits.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// `kaq train --quant METHOD --teacher fp32.json`: quantizes the teacher and writes a
/// `kaq-qmodel` file.
fn run_quant(args: &TrainArgs, method: QuantMethod) -> anyhow::Result<()> {
    let Some(teacher_path) = &args.teacher else {
        return Err(usage_error(
            "--teacher",
            "--quant needs the trained f32 model to quantize (train it first with `kaq train --out fp32.json`)",
        ));
    };
    // A Gram-domain teacher (`"format": "kaq-gram-model"`) has its own students.
    let text = super::args::read_input("--teacher", teacher_path)?;
    let format = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("format").and_then(|f| f.as_str()).map(String::from));
    if format.as_deref() == Some(kaq_model::gram::file::GRAM_FORMAT) {
        let file = GramModelFile::from_json(&text, teacher_path)
            .with_context(|| format!("--teacher {}", teacher_path.display()))?;
        return run_quant_gram(args, method, file);
    }
    let teacher_file = ModelFile::load(teacher_path)
        .with_context(|| format!("--teacher {}", teacher_path.display()))?;
    // A dataset teacher's file records its channels by hash only: load them again.
    let teacher = match (&teacher_file.net.link().dataset, &args.csi.channels) {
        (None, None) => teacher_file.net,
        (_, channels) => {
            let link = super::csi::reload_dataset(teacher_file.net.link(), channels.as_deref())?;
            let mut net = UnfoldedNet::new(teacher_file.net.config().clone(), &link)?;
            net.params_mut().copy_from_slice(teacher_file.net.params());
            net
        }
    };
    let train = TrainConfig {
        link: teacher.link().clone(),
        net: teacher.config().clone(),
        samples: args.samples,
        val_samples: args.val_samples,
        batch: args.batch,
        epochs: args.epochs.unwrap_or(10),
        lr: args.lr.unwrap_or(2e-4),
        lr_step: args.lr_step.unwrap_or(5),
        seed: args.seed,
        snr_db: args.snr.clone(),
        val_ber_snr_db: args.val_snr.clone(),
        val_ber_frames: args.val_frames,
    };
    validate_flags(&train)?;
    let layer_bits = expand_bits(&args.bits, teacher.config().layers)?;
    let mut config = QuantTrainConfig::fine_tuning(
        train,
        layer_bits[0],
        KaqConfig {
            epsilon: args.epsilon,
            kernel: args.kernel,
        },
    );
    config.quant = QuantConfig::with_layer_bits(&layer_bits);
    for (bits, format) in [
        (args.h_bits, &mut config.quant.h),
        (args.e_bits, &mut config.quant.e),
        (args.g_bits, &mut config.quant.g),
    ] {
        if let Some(b) = bits {
            format.bits = b;
        }
    }
    if let Some(h) = &args.h_layer_bits {
        let layers = teacher.config().layers;
        if h.len() != layers {
            return Err(usage_error(
                "--h-layer-bits",
                format!("needs one width per layer ({layers}), got {}", h.len()),
            ));
        }
        if let Some(&b) = h.iter().find(|&&b| b > config.quant.h.bits) {
            return Err(usage_error(
                "--h-layer-bits",
                format!("{b} exceeds --h-bits {}", config.quant.h.bits),
            ));
        }
        config.quant.h_layer_bits = Some(h.clone());
    }
    let outputs = args.outputs();
    check_outputs(&outputs, args.force)?;

    let run = in_pool(args.threads, || {
        with_progress(|progress| train_quantized(&teacher, method, &config, progress))
    })?;
    if let Some(last) = run.kaq_history.last() {
        println!(
            "kaq: mse {:.5}  sum MMD^2 {:.5}  total {:.5}  saturation [{}]",
            last.mse,
            last.mmd,
            last.total,
            last.saturation
                .iter()
                .map(|v| format!("{v:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let overwrite = if args.force {
        Overwrite::Replace
    } else {
        Overwrite::Refuse
    };
    QuantModelFile::from(&run)
        .save(&args.out, overwrite)
        .with_context(|| format!("cannot save the model to {}", args.out.display()))?;
    println!("quantized model written to {}", args.out.display());
    if let Some(path) = &args.json {
        let doc = QuantHistoryFile {
            tool: "kaq",
            version: env!("CARGO_PKG_VERSION"),
            command: "train",
            method,
            config: &config,
            history: &run.history,
            kaq_history: &run.kaq_history,
        };
        let text = serde_json::to_string_pretty(&doc).context("cannot encode the history")?;
        write_atomic(path, text.as_bytes(), overwrite)
            .with_context(|| format!("cannot write the history to {}", path.display()))?;
        println!("history written to {}", path.display());
    }
    if let Some(path) = &args.plot {
        let mut series = vec![
            Series {
                name: "train MSE".into(),
                points: run
                    .history
                    .iter()
                    .map(|r| (r.epoch as f64, r.train_loss))
                    .collect(),
                y_err: None,
            },
            Series {
                name: "validation MSE".into(),
                points: run
                    .history
                    .iter()
                    .map(|r| (r.epoch as f64, r.val_loss))
                    .collect(),
                y_err: None,
            },
        ];
        if !run.kaq_history.is_empty() {
            series.push(Series {
                name: "train MSE + eps sum MMD^2".into(),
                points: run
                    .kaq_history
                    .iter()
                    .map(|r| (r.epoch as f64, r.total))
                    .collect(),
                y_err: None,
            });
        }
        let c = teacher.config();
        let l = teacher.link();
        let title = format!(
            "{method} {} bits, {} {} K={} on {}x{} {}",
            bits_label(&args.bits),
            c.arch,
            c.prox,
            c.layers,
            l.nt,
            l.nr,
            l.modulation
        );
        if run.history.is_empty() {
            println!("--plot skipped: {method} does not train");
        } else {
            plot::line_plot(path, &title, "epoch", "loss", true, &series)?;
            println!("loss plot written to {}", path.display());
        }
    }
    Ok(())
}
