//! Training of the fake-quant nets: calibration from the f32 teacher, then the shared
//! [`Trainer`] loop (Adam, the halving learning-rate schedule, deterministic shuffles, the
//! divergence checks) on the method's learnable vector.
//!
//! Every method draws the same training, validation and BER-probe sets from the config's seed
//! (the streams of [`crate::train`]), and calibrates on the first `calibration_samples` of the
//! training set, so methods compared with one config see identical data.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::kaq::{KaqConfig, KaqEpoch, KaqStudent};
use super::{QuantConfig, QuantMethod, QuantNet};
use crate::train::{
    EpochRecord, Minibatcher, Progress, SetKind, TrainConfig, TrainError, TrainSet, Trainable,
    Trainer, ValidationBer,
};
use crate::unfolded::UnfoldedNet;

/// Everything that defines a quantized training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantTrainConfig {
    /// Data, optimizer and schedule; `link` and `net` must be the teacher's. Default: the f32
    /// defaults with 10 epochs, lr 2·10⁻⁴ halved every 5 epochs (fine-tuning a trained net).
    pub train: TrainConfig,
    /// The formats.
    pub quant: QuantConfig,
    /// Samples of the training set used for calibration (default 5 000).
    pub calibration_samples: usize,
    /// The KAQ loss (ε, kernel mode); used by the `kaq` method only.
    #[serde(default)]
    pub kaq: KaqConfig,
}

impl Default for QuantTrainConfig {
    fn default() -> Self {
        Self {
            train: TrainConfig {
                epochs: 10,
                lr: 2e-4,
                lr_step: 5,
                ..TrainConfig::default()
            },
            quant: QuantConfig::default(),
            calibration_samples: 5_000,
            kaq: KaqConfig::default(),
        }
    }
}

impl QuantTrainConfig {
    /// The fine-tuning run `kaq train --quant` makes: data and schedule `train` (its link and
    /// net must be the teacher's), `bits`-bit activations with the default formats elsewhere,
    /// calibration on the default number of samples or all of them when there are fewer, and
    /// the KAQ loss `kaq`.
    pub fn fine_tuning(train: TrainConfig, bits: u32, kaq: KaqConfig) -> Self {
        let calibration_samples = Self::default().calibration_samples.min(train.samples);
        Self {
            train,
            quant: QuantConfig::with_activation_bits(bits),
            calibration_samples,
            kaq,
        }
    }
}

/// A quantized net with the run that made it.
#[derive(Debug, Clone)]
pub struct QuantTrained {
    /// The quantized net.
    pub net: QuantNet,
    /// The f32 net it was quantized from.
    pub teacher: UnfoldedNet,
    /// The config of the run.
    pub config: QuantTrainConfig,
    /// One record per epoch (empty for PTQ). For KAQ, `train_loss` is the MSE term; the
    /// total loss is in `kaq_history`.
    pub history: Vec<EpochRecord>,
    /// KAQ only: the loss terms, saturation and bandwidths of every epoch.
    pub kaq_history: Vec<KaqEpoch>,
}

const VALIDATION_CHUNK: usize = 4096;

/// Mean ‖x − x_S⁽ᴷ⁾‖² of `net` over `set`.
pub fn quant_mean_loss(net: &QuantNet, set: &TrainSet) -> Result<f64, TrainError> {
    let n = set.n();
    let mut out = Vec::new();
    let mut total = 0.0f64;
    for start in (0..set.len()).step_by(VALIDATION_CHUNK) {
        let batch = set.range_batch(start, (start + VALIDATION_CHUNK).min(set.len()));
        out.resize(batch.batch * n, 0.0);
        net.forward(&batch, &mut out)?;
        total += batch
            .x
            .iter()
            .zip(&out)
            .map(|(&a, &b)| ((a - b) as f64).powi(2))
            .sum::<f64>();
    }
    Ok(total / set.len() as f64)
}

/// Bit errors of `net`'s sliced x_S⁽ᴷ⁾ over `set`, recorded at `snr_db`.
pub fn quant_ber_on(
    net: &QuantNet,
    set: &TrainSet,
    snr_db: f64,
) -> Result<ValidationBer, TrainError> {
    let modulation = set.link().modulation;
    let n = set.n();
    let mut out = Vec::new();
    let mut bit_errors = 0u64;
    for start in (0..set.len()).step_by(VALIDATION_CHUNK) {
        let batch = set.range_batch(start, (start + VALIDATION_CHUNK).min(set.len()));
        out.resize(batch.batch * n, 0.0);
        net.forward(&batch, &mut out)?;
        bit_errors += batch
            .x
            .iter()
            .zip(&out)
            .map(|(&x, &o)| modulation.bit_errors(x as i32, modulation.slice(o as f64)) as u64)
            .sum::<u64>();
    }
    let bits = set.len() as u64 * set.link().bits_per_frame();
    Ok(ValidationBer {
        snr_db,
        ber: bit_errors as f64 / bits as f64,
        bit_errors,
        bits,
    })
}

/// Quantizes `teacher` with `method`: calibrates on the training set, then (except PTQ) trains
/// the fake-quant net with the STE, reporting progress like [`crate::train::train`]: on the
/// MSE loss (QAT-MSE, LSQ) or on MSE + ε Σ_k MMD² against the teacher's layer outputs (KAQ,
/// [`KaqStudent`], with `config.kaq`).
pub fn train_quantized(
    teacher: &UnfoldedNet,
    method: QuantMethod,
    config: &QuantTrainConfig,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<QuantTrained, TrainError> {
    let tc = &config.train;
    tc.validate()?;
    config.quant.validate()?;
    if teacher.link() != &tc.link {
        return Err(TrainError::Config {
            field: "train.link",
            value: format!("{}x{} {}", tc.link.nt, tc.link.nr, tc.link.modulation),
            reason: "must be the teacher's link".to_string(),
        });
    }
    if teacher.config() != &tc.net {
        return Err(TrainError::Config {
            field: "train.net",
            value: format!("{:?}", tc.net),
            reason: "must be the teacher's architecture".to_string(),
        });
    }
    if config.calibration_samples == 0 {
        return Err(TrainError::Config {
            field: "calibration_samples",
            value: "0".to_string(),
            reason: "must be at least 1".to_string(),
        });
    }
    let train = TrainSet::generate(&tc.link, tc.samples, &tc.snr_db, tc.seed, SetKind::Train)?;
    let validation = TrainSet::generate(
        &tc.link,
        tc.val_samples,
        &tc.snr_db,
        tc.seed,
        SetKind::Validation,
    )?;
    let probes = tc
        .val_ber_snr_db
        .iter()
        .enumerate()
        .map(|(i, &snr)| {
            TrainSet::generate(
                &tc.link,
                tc.val_ber_frames,
                &[snr],
                tc.seed,
                SetKind::BerProbe(i as u32),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let calibration = train.range_batch(0, config.calibration_samples.min(train.len()));
    let net = QuantNet::calibrate(teacher, method, &config.quant, &calibration)?;
    if !method.trains() {
        return Ok(QuantTrained {
            net,
            teacher: teacher.clone(),
            config: config.clone(),
            history: Vec::new(),
            kaq_history: Vec::new(),
        });
    }
    let data = Data {
        train: &train,
        validation: &validation,
        probes: &probes,
    };
    let (net, history, kaq_history) = if method == QuantMethod::Kaq {
        config.kaq.validate()?;
        // Algorithm 1, line 4: the bandwidths start from the first minibatch the trainer draws.
        let mut first_order = Minibatcher::new(train.len(), tc.batch);
        first_order.shuffle(tc.seed, 1);
        let first = first_order.gather(&train, 0);
        let student = KaqStudent::new(net, teacher, config.kaq, &first)?;
        let mut kaq_history = Vec::with_capacity(tc.epochs);
        let (student, history) = run_epochs(student, tc, &data, progress, |s, epoch, record| {
            let terms = s.take_epoch(epoch);
            record.train_loss = terms.mse;
            kaq_history.push(terms);
            s.net()
        })?;
        (student.into_net(), history, kaq_history)
    } else {
        let (net, history) = run_epochs(net, tc, &data, progress, |n, _, _| n)?;
        (net, history, Vec::new())
    };
    net.validate()?;
    Ok(QuantTrained {
        net,
        teacher: teacher.clone(),
        config: config.clone(),
        history,
        kaq_history,
    })
}

/// The sets every epoch evaluates on.
struct Data<'a> {
    train: &'a TrainSet,
    validation: &'a TrainSet,
    probes: &'a [TrainSet],
}

/// Runs the configured epochs of `trainable`, validating the quantized net `quant_of` returns
/// after each (which may also adjust the epoch's record before it is reported).
fn run_epochs<T: Trainable>(
    trainable: T,
    tc: &TrainConfig,
    data: &Data<'_>,
    progress: &mut dyn FnMut(Progress<'_>),
    mut quant_of: impl for<'t> FnMut(&'t T, usize, &mut EpochRecord) -> &'t QuantNet,
) -> Result<(T, Vec<EpochRecord>), TrainError> {
    let mut trainer = Trainer::new(trainable, data.train.len(), tc.batch, tc.seed);
    let mut history = Vec::with_capacity(tc.epochs);
    progress(Progress::Started {
        epochs: tc.epochs,
        batches: trainer.batches(),
    });
    for epoch in 1..=tc.epochs {
        let started = Instant::now();
        let lr = tc.lr_at(epoch);
        let train_loss = trainer.epoch(data.train, epoch, lr, progress)?;
        let mut record = EpochRecord {
            epoch,
            lr,
            train_loss,
            val_loss: 0.0,
            val_ber: Vec::new(),
            seconds: 0.0,
        };
        let net = quant_of(trainer.net(), epoch, &mut record);
        let val_loss = quant_mean_loss(net, data.validation)?;
        if !val_loss.is_finite() {
            return Err(TrainError::Diverged {
                epoch,
                stage: "validation".into(),
                what: format!("the validation loss is {val_loss}"),
            });
        }
        record.val_loss = val_loss;
        record.val_ber = data
            .probes
            .iter()
            .zip(&tc.val_ber_snr_db)
            .map(|(set, &snr)| quant_ber_on(net, set, snr))
            .collect::<Result<Vec<_>, _>>()?;
        record.seconds = started.elapsed().as_secs_f64();
        progress(Progress::Epoch(&record));
        history.push(record);
    }
    Ok((trainer.into_net(), history))
}
