//! Training of the Gram-domain nets: the same protocol, data sets and epoch loop as the
//! unfolded nets ([`crate::train`]), with one SNR per channel block and minibatches of whole
//! blocks under block fading.

use serde::{Deserialize, Serialize};

use super::{GramConfig, GramNet};
use crate::link::LinkConfig;
use crate::train::{EpochRecord, Progress, RunData, TrainConfig, TrainError, run_epochs};
use crate::unfolded::NetConfig;

/// Everything that defines a training run of a Gram-domain net. The fields other than `net`
/// mean what they mean in [`TrainConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GramTrainConfig {
    /// The link (with its channel block length).
    pub link: LinkConfig,
    /// The net to train.
    pub net: GramConfig,
    /// Training samples.
    pub samples: usize,
    /// Validation samples.
    pub val_samples: usize,
    /// Minibatch size (rounded up to whole channel blocks).
    pub batch: usize,
    /// Epochs.
    pub epochs: usize,
    /// Initial Adam learning rate.
    pub lr: f64,
    /// The learning rate halves every `lr_step` epochs.
    pub lr_step: usize,
    /// Seed of every random stream of the run.
    pub seed: u64,
    /// SNRs in dB, one drawn per channel block.
    pub snr_db: Vec<f64>,
    /// SNRs in dB of the per-epoch validation BER.
    pub val_ber_snr_db: Vec<f64>,
    /// Frames per validation-BER SNR point.
    pub val_ber_frames: usize,
}

impl GramTrainConfig {
    /// The paper's protocol for `net` on `link` (the defaults of [`TrainConfig`]).
    pub fn new(link: LinkConfig, net: GramConfig) -> Self {
        let d = TrainConfig::default();
        Self {
            link,
            net,
            samples: d.samples,
            val_samples: d.val_samples,
            batch: d.batch,
            epochs: d.epochs,
            lr: d.lr,
            lr_step: d.lr_step,
            seed: d.seed,
            snr_db: d.snr_db,
            val_ber_snr_db: d.val_ber_snr_db,
            val_ber_frames: d.val_ber_frames,
        }
    }

    /// The run's fields as a [`TrainConfig`] (its `net` is unused).
    pub fn run_config(&self) -> TrainConfig {
        TrainConfig {
            link: self.link.clone(),
            net: NetConfig::default(),
            samples: self.samples,
            val_samples: self.val_samples,
            batch: self.batch,
            epochs: self.epochs,
            lr: self.lr,
            lr_step: self.lr_step,
            seed: self.seed,
            snr_db: self.snr_db.clone(),
            val_ber_snr_db: self.val_ber_snr_db.clone(),
            val_ber_frames: self.val_ber_frames,
        }
    }

    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), TrainError> {
        self.run_config().validate()?;
        GramNet::new(self.net.clone(), &self.link)?;
        Ok(())
    }
}

/// A trained Gram-domain net with its config and history.
#[derive(Debug, Clone)]
pub struct TrainedGramNet {
    /// The trained net.
    pub net: GramNet,
    /// The config of the run.
    pub config: GramTrainConfig,
    /// One record per epoch.
    pub history: Vec<EpochRecord>,
}

/// Trains a fresh net as `config` says, reporting progress through `progress`.
pub fn train(
    config: &GramTrainConfig,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<TrainedGramNet, TrainError> {
    config.validate()?;
    let net = GramNet::new(config.net.clone(), &config.link)?;
    let run = config.run_config();
    let data = RunData::generate(&run)?;
    let (net, history) = run_epochs(&run, net, &data, progress)?;
    net.validate()?;
    Ok(TrainedGramNet {
        net,
        config: config.clone(),
        history,
    })
}
