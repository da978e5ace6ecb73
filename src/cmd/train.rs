//! `kaq train`: trains a PGD-Net or ADMM-Net in f32 and writes the model file.
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
//! Bad arguments end with status 2 and a message naming the argument.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use clap::error::ErrorKind;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kaq_model::link::MAX_ANTENNAS;
use kaq_model::train::model_file::{Overwrite, write_atomic};
use kaq_model::train::{
    EpochRecord, ModelFile, Progress, TrainConfig, TrainError, TrainedModel, train,
};
use kaq_model::unfolded::{Arch, Init, MAX_LAYERS, NetConfig, Prox};
use kaq_model::{LinkConfig, Modulation};
use serde::Serialize;

use crate::plot::{self, Series};

/// Arguments of `kaq train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Unfolded architecture: pgd or admm.
    #[arg(long, value_parser = parse_from_str::<Arch>, default_value = "pgd")]
    arch: Arch,

    /// Proximal operator of every layer: soft, box or qam.
    #[arg(long, value_parser = parse_from_str::<Prox>, default_value = "soft")]
    prox: Prox,

    /// Unfolded layers K.
    #[arg(long, value_parser = parse_layers, default_value_t = 5)]
    layers: usize,

    /// Add a learnable heavy-ball momentum term to every layer.
    #[arg(long)]
    momentum: bool,

    /// Initial estimate x⁽⁰⁾: zero or mf (learnable scale times Hᵀy).
    #[arg(long, value_parser = parse_from_str::<Init>, default_value = "zero")]
    init: Init,

    /// Training epochs.
    #[arg(long, value_parser = parse_positive, default_value_t = 50)]
    epochs: usize,

    /// Training samples, drawn once from the seed.
    #[arg(long, value_parser = parse_positive, default_value_t = 50_000)]
    samples: usize,

    /// Validation samples for the per-epoch validation loss.
    #[arg(long, value_parser = parse_positive, default_value_t = 5_000)]
    val_samples: usize,

    /// Minibatch size (at most --samples).
    #[arg(long, value_parser = parse_positive, default_value_t = 128)]
    batch: usize,

    /// Initial Adam learning rate.
    #[arg(long, value_parser = parse_lr, default_value_t = 1e-3, allow_hyphen_values = true)]
    lr: f64,

    /// The learning rate halves every this many epochs.
    #[arg(long, value_parser = parse_positive, default_value_t = 10)]
    lr_step: usize,

    /// Seed of the data sets and the sample order.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Transmit antennas, 1 to 256.
    #[arg(long, value_parser = parse_antennas, default_value_t = 16)]
    nt: usize,

    /// Receive antennas, 1 to 256.
    #[arg(long, value_parser = parse_antennas, default_value_t = 16)]
    nr: usize,

    /// Modulation: bpsk, qpsk, 16qam, 64qam.
    #[arg(long = "mod", value_parser = parse_from_str::<Modulation>, default_value = "16qam")]
    modulation: Modulation,

    /// Training SNRs in dB (per receive antenna), comma separated; each sample draws one.
    #[arg(long, value_delimiter = ',', value_parser = parse_snr, allow_hyphen_values = true,
          default_value = "0,5,10,15,20,25")]
    snr: Vec<f64>,

    /// SNRs in dB of the per-epoch validation BER, comma separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_snr, allow_hyphen_values = true,
          default_value = "0,10,20")]
    val_snr: Vec<f64>,

    /// Frames per validation-BER SNR.
    #[arg(long, value_parser = parse_positive, default_value_t = 2_000)]
    val_frames: usize,

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
}

fn parse_from_str<T>(s: &str) -> Result<T, String>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    s.trim().parse().map_err(|e: T::Err| e.to_string())
}

fn parse_whole(s: &str) -> Result<usize, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))
}

fn parse_positive(s: &str) -> Result<usize, String> {
    match parse_whole(s)? {
        0 => Err("must be at least 1".to_string()),
        n => Ok(n),
    }
}

fn parse_layers(s: &str) -> Result<usize, String> {
    let n = parse_whole(s)?;
    if n == 0 || n > MAX_LAYERS {
        return Err(format!(
            "layers must be between 1 and {MAX_LAYERS}, got {n}"
        ));
    }
    Ok(n)
}

fn parse_antennas(s: &str) -> Result<usize, String> {
    let n = parse_whole(s)?;
    if n == 0 || n > MAX_ANTENNAS {
        return Err(format!(
            "antenna count must be between 1 and {MAX_ANTENNAS}, got {n}"
        ));
    }
    Ok(n)
}

fn parse_threads(s: &str) -> Result<usize, String> {
    let n = parse_whole(s)?;
    if n == 0 || n > 1024 {
        return Err(format!("threads must be between 1 and 1024, got {n}"));
    }
    Ok(n)
}

fn parse_lr(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!(
            "learning rate must be finite and positive, got {v}"
        ));
    }
    Ok(v)
}

fn parse_snr(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !v.is_finite() || v.abs() > 100.0 {
        return Err(format!("SNR must be finite and within ±100 dB, got {v}"));
    }
    Ok(v)
}

/// The command-line flag that sets a [`TrainConfig`] field.
fn flag_of(field: &str) -> &'static str {
    match field {
        "samples" => "--samples",
        "val_samples" => "--val-samples",
        "batch" => "--batch",
        "epochs" => "--epochs",
        "lr" => "--lr",
        "lr_step" => "--lr-step",
        "snr_db" => "--snr",
        "val_ber_snr_db" => "--val-snr",
        "val_ber_frames" => "--val-frames",
        _ => "the arguments",
    }
}

/// The history file written by `--json`.
#[derive(Debug, Serialize)]
struct HistoryFile<'a> {
    tool: &'static str,
    version: &'static str,
    command: &'static str,
    config: &'a TrainConfig,
    history: &'a [EpochRecord],
}

impl TrainArgs {
    fn config(&self) -> anyhow::Result<TrainConfig> {
        Ok(TrainConfig {
            link: LinkConfig::new(self.nt, self.nr, self.modulation)?,
            net: NetConfig {
                arch: self.arch,
                prox: self.prox,
                layers: self.layers,
                momentum: self.momentum,
                init: self.init,
            },
            samples: self.samples,
            val_samples: self.val_samples,
            batch: self.batch,
            epochs: self.epochs,
            lr: self.lr,
            lr_step: self.lr_step,
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
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} epoch {prefix} [{bar:30}] {pos}/{len} batches  {msg}  {elapsed}",
        )
        .expect("the progress template is valid")
        .progress_chars("=> "),
    );
    bar.set_message("drawing data sets");
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let mut epochs = 0;
    let result = train(config, &mut |p| match p {
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

/// Runs `kaq train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    if let Err(err) = config.validate() {
        match &err {
            TrainError::Config { field, .. } => {
                clap::Error::raw(
                    ErrorKind::ValueValidation,
                    format!("invalid value for {}: {err}\n", flag_of(field)),
                )
                .exit();
            }
            _ => return Err(err.into()),
        }
    }
    let outputs = args.outputs();
    check_outputs(&outputs, args.force)?;

    let model = match args.threads {
        Some(threads) => rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .context("cannot start the worker threads")?
            .install(|| run_training(&config)),
        None => run_training(&config),
    }
    .context("training failed; no file was written")?;

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

    if let Some(path) = &args.json {
        let doc = HistoryFile {
            tool: "kaq",
            version: env!("CARGO_PKG_VERSION"),
            command: "train",
            config: &config,
            history: &history,
        };
        let text = serde_json::to_string_pretty(&doc).context("cannot encode the history")?;
        write_atomic(path, text.as_bytes(), overwrite)
            .with_context(|| format!("cannot write the history to {}", path.display()))?;
        println!("history written to {}", path.display());
    }
    if let Some(path) = &args.plot {
        let series = [
            Series {
                name: "train loss".into(),
                points: history
                    .iter()
                    .map(|r| (r.epoch as f64, r.train_loss))
                    .collect(),
                y_err: None,
            },
            Series {
                name: "validation loss".into(),
                points: history
                    .iter()
                    .map(|r| (r.epoch as f64, r.val_loss))
                    .collect(),
                y_err: None,
            },
        ];
        let title = format!(
            "{} {} K={} on {}x{} {}",
            args.arch, args.prox, args.layers, args.nt, args.nr, args.modulation
        );
        plot::line_plot(path, &title, "epoch", "mean ||x - x^(K)||^2", true, &series)?;
        println!("loss plot written to {}", path.display());
    }
    Ok(())
}
