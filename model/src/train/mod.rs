//! f32 training of the unfolded detectors (docs/f32-nets.md): data, optimizer, loop and model file.
//!
//! * [`TrainConfig`] holds every knob, defaults to the paper's protocol (5·10⁴ samples with SNR
//!   uniform over {0, 5, …, 25} dB, Adam lr 1e-3 halved every 10 epochs, 50 epochs, batch 128,
//!   16×16 16-QAM, the paper's net) and is validated field by field before anything runs.
//! * [`train`] draws the training and validation sets once from the seed, then runs Adam on the
//!   mean loss ‖x − x⁽ᴷ⁾‖² over shuffled minibatches. After each epoch it measures the mean
//!   validation loss and the validation BER at a few fixed SNRs. It never prints: progress is
//!   reported through a callback.
//! * Training is deterministic for a seed: data streams, sample order and the net's reductions
//!   do not depend on the thread count, so the same config gives bit-identical parameters and
//!   history (except the measured wall time per epoch).
//! * A non-finite loss, gradient or parameter stops training with [`TrainError::Diverged`],
//!   naming the epoch, the batch and the parameter; no model is returned, so none is saved.
//! * [`model_file`] saves and loads the result as a versioned JSON document, atomically.

pub mod adam;
pub mod dataset;
pub mod model_file;

use std::time::Instant;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::ModelError;
use crate::link::LinkConfig;
use crate::modulation::Modulation;
use crate::unfolded::{NetConfig, TrainBatch, UnfoldedNet};

pub use adam::Adam;
pub use dataset::{Minibatcher, SetKind, TrainSet};
pub use model_file::{FORMAT, ModelFile, VERSION};

/// Largest number of f32 values of H̃ a training set may hold (4 GiB).
pub const MAX_SET_FLOATS: usize = 1 << 30;

/// Errors of training and of model files. Each names the offending field, value or place.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A training-config field outside its allowed range.
    #[error("invalid training config: {field} = {value}: {reason}")]
    Config {
        /// Which field.
        field: &'static str,
        /// The value given, as text.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// An error of the link or the net.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The loss, a gradient or a parameter stopped being finite.
    #[error("training diverged in epoch {epoch}, {stage}: {what}")]
    Diverged {
        /// Epoch, counted from 1.
        epoch: usize,
        /// Where in the epoch: `batch b of B` or `validation`.
        stage: String,
        /// What became non-finite (the loss or a named parameter).
        what: String,
    },
    /// A model file that cannot be read or does not describe a valid model.
    #[error("model file {path}: {reason}")]
    ModelFile {
        /// The file.
        path: String,
        /// What is wrong, naming the field.
        reason: String,
    },
    /// A file-system error while reading or writing a model file.
    #[error("{action} {path}: {error}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: String,
        /// The underlying error (in the message, so not also the `source()`).
        error: std::io::Error,
    },
    /// Reading a model file: not a regular file, too large, or not text (kaq-files names the
    /// path and the problem).
    #[error(transparent)]
    Read(kaq_files::FilesError),
    /// Writing a model file (kaq-files names the path and the problem).
    #[error(transparent)]
    Write(kaq_files::FilesError),
}

/// Everything that defines a training run. Defaults are the paper's protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The link the net detects (default 16×16 16-QAM, i.i.d. Rayleigh).
    pub link: LinkConfig,
    /// The net to train (default: the paper's PGD-Net).
    pub net: NetConfig,
    /// Training samples, drawn once (default 50 000).
    pub samples: usize,
    /// Validation samples for the validation loss, drawn once from their own streams
    /// (default 5 000, a tenth of the training set).
    pub val_samples: usize,
    /// Minibatch size (default 128).
    pub batch: usize,
    /// Epochs (default 50).
    pub epochs: usize,
    /// Initial Adam learning rate (default 1e-3).
    pub lr: f64,
    /// The learning rate halves every `lr_step` epochs (default 10).
    pub lr_step: usize,
    /// Seed of every random stream of the run (default 1).
    pub seed: u64,
    /// Per-sample SNRs in dB, drawn uniformly (default {0, 5, …, 25}).
    pub snr_db: Vec<f64>,
    /// SNRs in dB at which the validation BER is measured after each epoch (default 0, 10, 20).
    pub val_ber_snr_db: Vec<f64>,
    /// Frames per validation-BER SNR point (default 2 000).
    pub val_ber_frames: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            link: LinkConfig::new(16, 16, Modulation::Qam16).expect("16×16 is a valid link"),
            net: NetConfig::default(),
            samples: 50_000,
            val_samples: 5_000,
            batch: 128,
            epochs: 50,
            lr: 1e-3,
            lr_step: 10,
            seed: 1,
            snr_db: vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0],
            val_ber_snr_db: vec![0.0, 10.0, 20.0],
            val_ber_frames: 2_000,
        }
    }
}

fn config_error(
    field: &'static str,
    value: impl ToString,
    reason: impl Into<String>,
) -> TrainError {
    TrainError::Config {
        field,
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl TrainConfig {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), TrainError> {
        self.link.validate()?;
        for (field, value) in [
            ("samples", self.samples),
            ("val_samples", self.val_samples),
            ("batch", self.batch),
            ("epochs", self.epochs),
            ("lr_step", self.lr_step),
        ] {
            if value == 0 {
                return Err(config_error(field, value, "must be at least 1"));
            }
        }
        if self.batch > self.samples {
            return Err(config_error(
                "batch",
                self.batch,
                format!("larger than the training set (samples = {})", self.samples),
            ));
        }
        let per_sample = self.link.m() * self.link.n();
        for (field, value) in [
            ("samples", self.samples),
            ("val_samples", self.val_samples),
            ("val_ber_frames", self.val_ber_frames),
        ] {
            if value.saturating_mul(per_sample) > MAX_SET_FLOATS {
                return Err(config_error(
                    field,
                    value,
                    format!(
                        "the data set would hold more than {MAX_SET_FLOATS} channel values \
                         ({per_sample} per sample)"
                    ),
                ));
            }
        }
        if !self.lr.is_finite() || self.lr <= 0.0 {
            return Err(config_error("lr", self.lr, "must be finite and positive"));
        }
        if self.snr_db.is_empty() {
            return Err(config_error("snr_db", "[]", "needs at least one SNR"));
        }
        for (field, list) in [
            ("snr_db", &self.snr_db),
            ("val_ber_snr_db", &self.val_ber_snr_db),
        ] {
            if let Some(bad) = list.iter().find(|v| !v.is_finite() || v.abs() > 100.0) {
                return Err(config_error(
                    field,
                    bad,
                    "every SNR must be finite, within ±100 dB",
                ));
            }
        }
        if !self.val_ber_snr_db.is_empty() && self.val_ber_frames == 0 {
            return Err(config_error(
                "val_ber_frames",
                0,
                "must be at least 1 when val_ber_snr_db is not empty",
            ));
        }
        UnfoldedNet::new(self.net.clone(), &self.link)?;
        Ok(())
    }

    /// Learning rate of `epoch` (counted from 1): lr · 0.5^⌊(epoch − 1)/lr_step⌋.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let halvings = (epoch.saturating_sub(1) / self.lr_step.max(1)).min(1000) as i32;
        self.lr * 0.5f64.powi(halvings)
    }
}

/// The validation BER at one SNR after one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationBer {
    /// SNR in dB.
    pub snr_db: f64,
    /// Bit error rate, `bit_errors / bits`.
    pub ber: f64,
    /// Gray-bit errors counted.
    pub bit_errors: u64,
    /// Bits compared.
    pub bits: u64,
}

/// The record of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochRecord {
    /// Epoch, counted from 1.
    pub epoch: usize,
    /// Learning rate used in this epoch.
    pub lr: f64,
    /// Mean training loss ‖x − x⁽ᴷ⁾‖² over the epoch's samples (parameters changing within).
    pub train_loss: f64,
    /// Mean validation loss after the epoch.
    pub val_loss: f64,
    /// Validation BER after the epoch at each configured SNR.
    pub val_ber: Vec<ValidationBer>,
    /// Wall time of the epoch in seconds, validation included. Not saved in model files (they
    /// hold only what the seed and config determine, so a rerun writes the same bytes); read
    /// as 0 from files that have it.
    #[serde(default, skip_serializing)]
    pub seconds: f64,
}

/// Progress reports of [`train`], for progress bars and logs.
#[derive(Debug)]
pub enum Progress<'a> {
    /// The data sets are drawn; training starts.
    Started {
        /// Epochs to run.
        epochs: usize,
        /// Minibatches per epoch.
        batches: usize,
    },
    /// A minibatch step finished.
    Batch {
        /// Epoch, counted from 1.
        epoch: usize,
        /// Minibatch within the epoch, counted from 1.
        batch: usize,
        /// Minibatches per epoch.
        batches: usize,
        /// The minibatch's loss before the step.
        loss: f32,
    },
    /// An epoch finished (validation included).
    Epoch(&'a EpochRecord),
}

/// A trained net with the config that made it and its history.
#[derive(Debug, Clone)]
pub struct TrainedModel {
    /// The trained net.
    pub net: UnfoldedNet,
    /// The config of the run.
    pub config: TrainConfig,
    /// One record per epoch.
    pub history: Vec<EpochRecord>,
}

/// Data sets of a run: training, validation and one BER probe per validation SNR.
#[derive(Debug)]
pub(crate) struct RunData {
    train: TrainSet,
    validation: TrainSet,
    ber_probes: Vec<TrainSet>,
}

impl RunData {
    pub(crate) fn generate(config: &TrainConfig) -> Result<Self, TrainError> {
        let train = TrainSet::generate(
            &config.link,
            config.samples,
            &config.snr_db,
            config.seed,
            SetKind::Train,
        )?;
        let validation = TrainSet::generate(
            &config.link,
            config.val_samples,
            &config.snr_db,
            config.seed,
            SetKind::Validation,
        )?;
        let ber_probes = config
            .val_ber_snr_db
            .iter()
            .enumerate()
            .map(|(i, &snr)| {
                TrainSet::generate(
                    &config.link,
                    config.val_ber_frames,
                    &[snr],
                    config.seed,
                    SetKind::BerProbe(i as u32),
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            train,
            validation,
            ber_probes,
        })
    }
}

/// Samples per forward call during validation (bounds the output buffer).
const VALIDATION_CHUNK: usize = 4096;

/// A net that maps a minibatch to its estimates x⁽ᴷ⁾ (`batch × n`): what validation needs.
pub trait Forward {
    /// Writes x⁽ᴷ⁾ of every sample of `data` into `out`.
    fn forward(&self, data: &TrainBatch<'_>, out: &mut [f32]);
}

impl Forward for UnfoldedNet {
    fn forward(&self, data: &TrainBatch<'_>, out: &mut [f32]) {
        UnfoldedNet::forward(self, data, out)
    }
}

/// Mean ‖x − x⁽ᴷ⁾‖² of `net` over `set`, summed in sample order in f64.
pub fn mean_loss<N: Forward + ?Sized>(net: &N, set: &TrainSet) -> f64 {
    let n = set.n();
    let mut out = Vec::new();
    let mut total = 0.0f64;
    for start in (0..set.len()).step_by(VALIDATION_CHUNK) {
        let end = (start + VALIDATION_CHUNK).min(set.len());
        let batch = set.range_batch(start, end);
        out.resize(batch.batch * n, 0.0);
        net.forward(&batch, &mut out);
        for (xs, os) in batch.x.chunks_exact(n).zip(out.chunks_exact(n)) {
            total += xs
                .iter()
                .zip(os)
                .map(|(&a, &b)| ((a - b) as f64).powi(2))
                .sum::<f64>();
        }
    }
    total / set.len() as f64
}

/// Gray-bit error count of `net`'s sliced x⁽ᴷ⁾ over `set` at the SNR `snr_db` of the set.
pub fn ber_on<N: Forward + ?Sized>(net: &N, set: &TrainSet, snr_db: f64) -> ValidationBer {
    let modulation = set.link().modulation;
    let n = set.n();
    let mut out = Vec::new();
    let mut bit_errors = 0u64;
    for start in (0..set.len()).step_by(VALIDATION_CHUNK) {
        let end = (start + VALIDATION_CHUNK).min(set.len());
        let batch = set.range_batch(start, end);
        out.resize(batch.batch * n, 0.0);
        net.forward(&batch, &mut out);
        bit_errors += batch
            .x
            .iter()
            .zip(&out)
            .map(|(&x, &o)| modulation.bit_errors(x as i32, modulation.slice(o as f64)) as u64)
            .sum::<u64>();
    }
    let bits = set.len() as u64 * set.link().bits_per_frame();
    ValidationBer {
        snr_db,
        ber: bit_errors as f64 / bits as f64,
        bit_errors,
        bits,
    }
}

/// The first non-finite value of `values`, named by `names`.
fn first_non_finite(values: &[f32], names: &[String]) -> Option<String> {
    values.iter().position(|v| !v.is_finite()).map(|i| {
        let name = names.get(i).map_or("?", String::as_str);
        format!("{name} (parameter {i}) = {}", values[i])
    })
}

/// Trains a fresh net as `config` says, reporting progress through `progress`.
pub fn train(
    config: &TrainConfig,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<TrainedModel, TrainError> {
    config.validate()?;
    let net = UnfoldedNet::new(config.net.clone(), &config.link)?;
    let data = RunData::generate(config)?;
    train_on(config, net, &data, progress)
}

fn train_on(
    config: &TrainConfig,
    net: UnfoldedNet,
    data: &RunData,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<TrainedModel, TrainError> {
    let (net, history) = run_epochs(config, net, data, progress)?;
    net.validate()?;
    Ok(TrainedModel {
        net,
        config: config.clone(),
        history,
    })
}

/// The epoch loop shared by every trainable detector: Adam over the shuffled minibatches of
/// `data.train` (whole channel blocks with block fading), validation loss and BER after each
/// epoch. Uses every field of `config` except `net`.
pub(crate) fn run_epochs<N: Trainable + Forward>(
    config: &TrainConfig,
    net: N,
    data: &RunData,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(N, Vec<EpochRecord>), TrainError> {
    let mut trainer = Trainer::with_block(
        net,
        data.train.len(),
        config.batch,
        config.link.block,
        config.seed,
    );
    let mut history = Vec::with_capacity(config.epochs);
    progress(Progress::Started {
        epochs: config.epochs,
        batches: trainer.batches(),
    });
    for epoch in 1..=config.epochs {
        let started = Instant::now();
        let lr = config.lr_at(epoch);
        let train_loss = trainer.epoch(&data.train, epoch, lr, progress)?;
        let net = trainer.net();
        let val_loss = mean_loss(net, &data.validation);
        if !val_loss.is_finite() {
            return Err(TrainError::Diverged {
                epoch,
                stage: "validation".into(),
                what: format!("the validation loss is {val_loss}"),
            });
        }
        let val_ber = data
            .ber_probes
            .iter()
            .zip(&config.val_ber_snr_db)
            .map(|(set, &snr)| ber_on(net, set, snr))
            .collect();
        let record = EpochRecord {
            epoch,
            lr,
            train_loss,
            val_loss,
            val_ber,
            seconds: started.elapsed().as_secs_f64(),
        };
        progress(Progress::Epoch(&record));
        history.push(record);
    }
    Ok((trainer.into_net(), history))
}

/// What [`Trainer`] can optimize: a flat parameter vector with names, a loss with its
/// gradient on a minibatch, and a projection onto the parameter domain.
///
/// Implemented by the f32 [`UnfoldedNet`] and by the fake-quant `QuantNet`
/// ([`crate::quant`]), so one loop trains both.
pub trait Trainable {
    /// The learnable parameters.
    fn params(&self) -> &[f32];
    /// The learnable parameters, for the optimizer.
    fn params_mut(&mut self) -> &mut [f32];
    /// One name per parameter, for divergence reports.
    fn param_names(&self) -> Vec<String>;
    /// The minibatch loss; writes the gradient the optimizer steps along into `grad`.
    fn loss_and_grad(&self, data: &TrainBatch<'_>, grad: &mut [f32]) -> f32;
    /// Clamps the parameters into their domain (called after every optimizer step).
    fn project(&mut self);
}

impl Trainable for UnfoldedNet {
    fn params(&self) -> &[f32] {
        UnfoldedNet::params(self)
    }
    fn params_mut(&mut self) -> &mut [f32] {
        UnfoldedNet::params_mut(self)
    }
    fn param_names(&self) -> Vec<String> {
        UnfoldedNet::param_names(self)
    }
    fn loss_and_grad(&self, data: &TrainBatch<'_>, grad: &mut [f32]) -> f32 {
        UnfoldedNet::loss_and_grad(self, data, grad)
    }
    fn project(&mut self) {
        UnfoldedNet::project(self)
    }
}

/// The optimizer side of a run: a net, its Adam state and the shuffled minibatches.
#[derive(Debug)]
pub struct Trainer<N = UnfoldedNet> {
    net: N,
    names: Vec<String>,
    adam: Adam,
    grad: Vec<f32>,
    batcher: Minibatcher,
    seed: u64,
}

impl<N: Trainable> Trainer<N> {
    /// A trainer of `net` over a set of `samples` samples in minibatches of `batch`, shuffled
    /// with `seed`.
    pub fn new(net: N, samples: usize, batch: usize, seed: u64) -> Self {
        Self::with_block(net, samples, batch, 1, seed)
    }

    /// A trainer whose minibatches hold whole channel blocks of `block` samples
    /// ([`Minibatcher::with_block`]); `block` = 1 is [`Trainer::new`].
    pub fn with_block(net: N, samples: usize, batch: usize, block: usize, seed: u64) -> Self {
        let len = net.params().len();
        Self {
            names: net.param_names(),
            adam: Adam::new(len),
            grad: vec![0.0; len],
            batcher: Minibatcher::with_block(samples, batch, block),
            seed,
            net,
        }
    }

    /// Minibatches per epoch.
    pub fn batches(&self) -> usize {
        self.batcher.batches()
    }

    /// The net as trained so far.
    pub fn net(&self) -> &N {
        &self.net
    }

    /// The trained net.
    pub fn into_net(self) -> N {
        self.net
    }

    /// One epoch over `set` (`epoch` counted from 1, learning rate `lr`): shuffle, then one
    /// Adam step per minibatch followed by the net's projection onto its parameter domain.
    /// Returns the mean minibatch loss weighted by minibatch size; fails on any non-finite
    /// loss, gradient or parameter.
    pub fn epoch(
        &mut self,
        set: &TrainSet,
        epoch: usize,
        lr: f64,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<f64, TrainError> {
        let batches = self.batcher.batches();
        self.batcher.shuffle(self.seed, epoch);
        let mut loss_sum = 0.0f64;
        for b in 0..batches {
            let diverged = |what: String| TrainError::Diverged {
                epoch,
                stage: format!("batch {} of {batches}", b + 1),
                what,
            };
            let batch: TrainBatch<'_> = self.batcher.gather(set, b);
            let count = batch.batch;
            let loss = self.net.loss_and_grad(&batch, &mut self.grad);
            if !loss.is_finite() {
                return Err(diverged(format!("the loss is {loss}")));
            }
            if let Some(what) = first_non_finite(&self.grad, &self.names) {
                return Err(diverged(format!("the gradient of {what}")));
            }
            self.adam.update(self.net.params_mut(), &self.grad, lr);
            self.net.project();
            if let Some(what) = first_non_finite(self.net.params(), &self.names) {
                return Err(diverged(format!("after the update {what}")));
            }
            loss_sum += loss as f64 * count as f64;
            progress(Progress::Batch {
                epoch,
                batch: b + 1,
                batches,
                loss,
            });
        }
        Ok(loss_sum / set.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unfolded::{Arch, Prox};

    /// 4×4 QPSK, PGD-soft K = 3, 2 000 samples, 5 epochs.
    fn small_config() -> TrainConfig {
        TrainConfig {
            link: LinkConfig::new(4, 4, Modulation::Qpsk).unwrap(),
            net: NetConfig {
                arch: Arch::Pgd,
                prox: Prox::Soft,
                layers: 3,
                ..NetConfig::default()
            },
            samples: 2_000,
            val_samples: 500,
            batch: 64,
            epochs: 5,
            lr: 1e-2,
            lr_step: 2,
            seed: 11,
            val_ber_frames: 500,
            ..TrainConfig::default()
        }
    }

    fn without_times(history: &[EpochRecord]) -> Vec<EpochRecord> {
        history
            .iter()
            .map(|r| EpochRecord {
                seconds: 0.0,
                ..r.clone()
            })
            .collect()
    }

    fn train_with_threads(config: &TrainConfig, threads: usize) -> TrainedModel {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| train(config, &mut |_| {}).unwrap())
    }

    #[test]
    fn small_training_lowers_validation_loss_and_is_deterministic() {
        let config = small_config();
        let one = train_with_threads(&config, 1);
        let two = train_with_threads(&config, 2);
        assert_eq!(
            one.net.params(),
            two.net.params(),
            "params depend on threads"
        );
        assert_eq!(without_times(&one.history), without_times(&two.history));

        let untrained = UnfoldedNet::new(config.net.clone(), &config.link).unwrap();
        let data = RunData::generate(&config).unwrap();
        let before = mean_loss(&untrained, &data.validation);
        let history = &one.history;
        assert_eq!(history.len(), 5);
        let after = history.last().unwrap().val_loss;
        assert!(
            after < 0.9 * before,
            "validation loss {before} → {after} did not decrease"
        );
        assert!(history[4].val_loss < history[0].val_loss);
        assert_ne!(untrained.params(), one.net.params());
        // Halved every 2 epochs.
        let lrs: Vec<f64> = history.iter().map(|r| r.lr).collect();
        assert_eq!(lrs, vec![1e-2, 1e-2, 5e-3, 5e-3, 2.5e-3]);
        for r in history {
            assert_eq!(r.val_ber.len(), 3);
            assert_eq!(r.val_ber[0].bits, 500 * 8);
        }
        // Higher SNR, fewer errors.
        let last = &history[4].val_ber;
        assert!(last[2].ber < last[0].ber, "BER {last:?}");

        let other_seed = train(
            &TrainConfig {
                seed: 12,
                ..config.clone()
            },
            &mut |_| {},
        )
        .unwrap();
        assert_ne!(other_seed.net.params(), one.net.params());
    }

    #[test]
    fn progress_reports_every_batch_and_epoch() {
        let config = TrainConfig {
            epochs: 2,
            samples: 300,
            batch: 128,
            ..small_config()
        };
        let (mut batches, mut epochs, mut started) = (0, 0, 0);
        train(&config, &mut |p| match p {
            Progress::Started { batches: b, .. } => {
                started += 1;
                assert_eq!(b, 3);
            }
            Progress::Batch { loss, .. } => {
                batches += 1;
                assert!(loss.is_finite());
            }
            Progress::Epoch(r) => {
                epochs += 1;
                assert_eq!(r.epoch, epochs);
            }
        })
        .unwrap();
        assert_eq!((started, batches, epochs), (1, 6, 2));
    }

    #[test]
    fn absurd_learning_rate_or_poisoned_sample_stops_with_an_error() {
        let config = TrainConfig {
            epochs: 3,
            ..small_config()
        };
        let mut data = RunData::generate(&config).unwrap();
        data.train.y_mut()[7] = f32::NAN;
        let net = UnfoldedNet::new(config.net.clone(), &config.link).unwrap();
        let err = train_on(&config, net, &data, &mut |_| {}).unwrap_err();
        match &err {
            TrainError::Diverged { epoch, stage, .. } => {
                assert_eq!(*epoch, 1);
                assert!(stage.starts_with("batch "), "{err}");
            }
            other => panic!("expected divergence, got {other}"),
        }

        let config = TrainConfig { lr: 1e30, ..config };
        let err = train(&config, &mut |_| {}).unwrap_err();
        assert!(
            matches!(err, TrainError::Diverged { .. }),
            "expected divergence, got {err}"
        );
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases: Vec<(&str, TrainConfig)> = vec![
            (
                "samples",
                TrainConfig {
                    samples: 0,
                    ..small_config()
                },
            ),
            (
                "val_samples",
                TrainConfig {
                    val_samples: 0,
                    ..small_config()
                },
            ),
            (
                "batch",
                TrainConfig {
                    batch: 0,
                    ..small_config()
                },
            ),
            (
                "batch",
                TrainConfig {
                    batch: 2_001,
                    ..small_config()
                },
            ),
            (
                "epochs",
                TrainConfig {
                    epochs: 0,
                    ..small_config()
                },
            ),
            (
                "lr_step",
                TrainConfig {
                    lr_step: 0,
                    ..small_config()
                },
            ),
            (
                "lr",
                TrainConfig {
                    lr: f64::NAN,
                    ..small_config()
                },
            ),
            (
                "lr",
                TrainConfig {
                    lr: -1.0,
                    ..small_config()
                },
            ),
            (
                "snr_db",
                TrainConfig {
                    snr_db: vec![],
                    ..small_config()
                },
            ),
            (
                "snr_db",
                TrainConfig {
                    snr_db: vec![0.0, f64::INFINITY],
                    ..small_config()
                },
            ),
            (
                "val_ber_snr_db",
                TrainConfig {
                    val_ber_snr_db: vec![f64::NAN],
                    ..small_config()
                },
            ),
            (
                "val_ber_frames",
                TrainConfig {
                    val_ber_frames: 0,
                    ..small_config()
                },
            ),
            (
                "samples",
                TrainConfig {
                    samples: usize::MAX / 2,
                    ..small_config()
                },
            ),
        ];
        for (field, config) in cases {
            let err = config.validate().unwrap_err();
            assert!(
                matches!(&err, TrainError::Config { field: f, .. } if *f == field),
                "{field}: got {err}"
            );
            assert!(err.to_string().contains(field), "{err}");
        }
        let bad_link = TrainConfig {
            link: LinkConfig {
                nt: 0,
                ..small_config().link
            },
            ..small_config()
        };
        assert!(bad_link.validate().unwrap_err().to_string().contains("nt"));
        TrainConfig::default().validate().unwrap();
        small_config().validate().unwrap();
    }

    #[test]
    fn default_is_the_paper_protocol() {
        let c = TrainConfig::default();
        assert_eq!(
            (c.samples, c.batch, c.epochs, c.lr_step),
            (50_000, 128, 50, 10)
        );
        assert_eq!(c.lr, 1e-3);
        assert_eq!(c.snr_db, vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0]);
        assert_eq!(
            (c.link.nt, c.link.nr, c.link.modulation),
            (16, 16, Modulation::Qam16)
        );
        assert_eq!(c.lr_at(1), 1e-3);
        assert_eq!(c.lr_at(10), 1e-3);
        assert_eq!(c.lr_at(11), 5e-4);
        assert_eq!(c.lr_at(50), 1e-3 / 16.0);
    }
}
