//! The quantized-model file: a versioned JSON document (`kaq-qmodel`, version 1).
//!
//! ```json
//! { "format": "kaq-qmodel", "version": 1, "method": "kaq",
//!   "quant": { …every tensor's format and the SNR bins… },
//!   "fixed_steps": { "h": …, "y": …, "x0": …, "e": [..K], "g": [..K], "activation": [..K] },
//!   "step_params": [ …[] | Δ_k | α_k then γ_k… ],
//!   "step_table": [ [ Δ_k per SNR bin ], … K rows ],
//!   "net": { …the trained f32 parameters the fake-quant forward quantizes… },
//!   "teacher": { …the f32 parent net… },
//!   "train": { …the QuantTrainConfig… },
//!   "history": [ …epoch records… ],
//!   "kaq_history": [ …KAQ loss terms per epoch (KAQ only, omitted otherwise)… ] }
//! ```
//!
//! `step_table` is what the hardware indexes by SNR bin; it is derived from the other fields
//! and loading checks that it equals the recomputed table exactly. Saving is atomic
//! ([`write_atomic`]); loading checks the tags, every field (through [`QuantNet::from_parts`]),
//! that the net, the teacher and the training config share link and architecture, and the
//! history's epoch numbering. Every error names the file and the field.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{
    FixedSteps, KaqEpoch, QuantConfig, QuantMethod, QuantNet, QuantTrainConfig, QuantTrained,
};
use crate::train::model_file::{Overwrite, write_atomic};
use crate::train::{EpochRecord, TrainError};
use crate::unfolded::UnfoldedNet;

/// The `format` tag of a quantized-model file.
pub const QFORMAT: &str = "kaq-qmodel";
/// The version this build writes and reads.
pub const QVERSION: u32 = 1;

/// The contents of a quantized-model file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantModelFile {
    /// Always [`QFORMAT`].
    pub format: String,
    /// Always [`QVERSION`].
    pub version: u32,
    /// The quantization method.
    pub method: QuantMethod,
    /// Every tensor's format.
    pub quant: QuantConfig,
    /// The calibrated fixed steps.
    pub fixed_steps: FixedSteps,
    /// The method's learned step parameters.
    pub step_params: Vec<f32>,
    /// Activation step per layer and SNR bin (`K × bins`).
    pub step_table: Vec<Vec<f32>>,
    /// The f32 parameters of the quantized net.
    pub net: UnfoldedNet,
    /// The f32 parent (teacher) net.
    pub teacher: UnfoldedNet,
    /// The run's config.
    pub train: QuantTrainConfig,
    /// One record per epoch.
    pub history: Vec<EpochRecord>,
    /// KAQ only: the loss terms, saturation and bandwidths per epoch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kaq_history: Vec<KaqEpoch>,
}

fn file_error(path: &Path, reason: impl Into<String>) -> TrainError {
    TrainError::ModelFile {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

impl From<&QuantTrained> for QuantModelFile {
    fn from(run: &QuantTrained) -> Self {
        Self {
            format: QFORMAT.to_string(),
            version: QVERSION,
            method: run.net.method(),
            quant: run.net.config().clone(),
            fixed_steps: run.net.fixed_steps().clone(),
            step_params: run.net.step_params().to_vec(),
            step_table: run.net.step_table(),
            net: run.net.float_net(),
            teacher: run.teacher.clone(),
            train: run.config.clone(),
            history: run.history.clone(),
            kaq_history: run.kaq_history.clone(),
        }
    }
}

impl QuantModelFile {
    /// The quantized net the file describes, after validating the whole document.
    pub fn quant_net(&self) -> Result<QuantNet, String> {
        if self.format != QFORMAT {
            return Err(format!("format is `{}`, expected `{QFORMAT}`", self.format));
        }
        if self.version != QVERSION {
            return Err(format!(
                "version {} is not supported (this build reads version {QVERSION})",
                self.version
            ));
        }
        let net = QuantNet::from_parts(
            self.net.clone(),
            self.method,
            self.quant.clone(),
            self.fixed_steps.clone(),
            self.step_params.clone(),
        )
        .map_err(|e| format!("net/quant/fixed_steps/step_params: {e}"))?;
        if net.step_table() != self.step_table {
            return Err("step_table does not match the table recomputed from step_params".into());
        }
        if self.teacher.link() != self.net.link() || self.teacher.config() != self.net.config() {
            return Err("teacher: link or architecture differs from net".into());
        }
        if &self.train.train.link != self.net.link() || self.train.train.net != *self.net.config() {
            return Err("train.train: link or architecture differs from net".into());
        }
        if self.train.quant != self.quant {
            return Err("train.quant differs from quant".into());
        }
        self.train
            .train
            .validate()
            .map_err(|e| format!("train.train: {e}"))?;
        for (i, record) in self.history.iter().enumerate() {
            if record.epoch != i + 1 {
                return Err(format!(
                    "history[{i}].epoch = {}, expected {}",
                    record.epoch,
                    i + 1
                ));
            }
        }
        Ok(net)
    }

    /// Parses and validates a file's text; `path` names it in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Self, TrainError> {
        let file: Self = serde_json::from_str(text)
            .map_err(|e| file_error(path, format!("invalid contents: {e}")))?;
        file.quant_net()
            .map_err(|reason| file_error(path, reason))?;
        Ok(file)
    }

    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text = kaq_files::read_text(path, kaq_files::INPUT_LIMIT).map_err(TrainError::Read)?;
        Self::from_json(&text, path)
    }

    /// Validates, then writes the file atomically.
    pub fn save(&self, path: &Path, overwrite: Overwrite) -> Result<(), TrainError> {
        self.quant_net().map_err(|reason| {
            file_error(path, format!("refusing to save an invalid model: {reason}"))
        })?;
        let text =
            serde_json::to_string_pretty(self).map_err(|e| file_error(path, e.to_string()))?;
        write_atomic(path, text.as_bytes(), overwrite)
    }
}
