//! The Gram-domain model file: a versioned JSON document holding a trained [`GramNet`].
//!
//! ```json
//! { "format": "kaq-gram-model", "version": 1,
//!   "net": { "config": { "family": "ep", "layers": 10 }, "link": { … }, "params": [ … ] },
//!   "train": { …the GramTrainConfig of the run… },
//!   "history": [ …one record per epoch, as in a kaq-model file… ] }
//! ```
//!
//! Saving validates and writes atomically ([`crate::train::model_file::write_atomic`]).
//! Loading checks the JSON, the `format` tag, the `version`, every field, the parameters and
//! that the net's link and configuration are those it was trained with; errors name the file
//! and the field.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::GramNet;
use super::train::{GramTrainConfig, TrainedGramNet};
use crate::train::model_file::{Overwrite, write_atomic};
use crate::train::{EpochRecord, TrainError};

/// The `format` tag of a Gram-domain model file.
pub const GRAM_FORMAT: &str = "kaq-gram-model";
/// The version this build writes and reads.
pub const GRAM_VERSION: u32 = 1;

/// The contents of a Gram-domain model file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GramModelFile {
    /// Always [`GRAM_FORMAT`].
    pub format: String,
    /// Always [`GRAM_VERSION`].
    pub version: u32,
    /// The trained net.
    pub net: GramNet,
    /// The training config of the run.
    pub train: GramTrainConfig,
    /// One record per epoch.
    pub history: Vec<EpochRecord>,
}

impl From<TrainedGramNet> for GramModelFile {
    fn from(t: TrainedGramNet) -> Self {
        Self {
            format: GRAM_FORMAT.into(),
            version: GRAM_VERSION,
            net: t.net,
            train: t.config,
            history: t.history,
        }
    }
}

fn file_error(path: &Path, reason: impl Into<String>) -> TrainError {
    TrainError::ModelFile {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

impl GramModelFile {
    /// Checks tag, version, config and that the net matches it.
    pub fn validate(&self) -> Result<(), String> {
        if self.format != GRAM_FORMAT {
            return Err(format!(
                "format is `{}`, expected `{GRAM_FORMAT}`",
                self.format
            ));
        }
        if self.version != GRAM_VERSION {
            return Err(format!(
                "version {} is not supported (this build reads version {GRAM_VERSION})",
                self.version
            ));
        }
        self.train.validate().map_err(|e| format!("train: {e}"))?;
        if self.net.link() != &self.train.link {
            return Err("net.link does not match train.link".into());
        }
        if self.net.config() != &self.train.net {
            return Err("net.config does not match train.net".into());
        }
        self.net.validate().map_err(|e| format!("net: {e}"))
    }

    /// Parses and validates a file's text; `path` names it in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Self, TrainError> {
        let file: GramModelFile = serde_json::from_str(text)
            .map_err(|e| file_error(path, format!("invalid contents: {e}")))?;
        file.validate().map_err(|reason| file_error(path, reason))?;
        Ok(file)
    }

    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text = kaq_files::read_text(path, kaq_files::INPUT_LIMIT).map_err(TrainError::Read)?;
        Self::from_json(&text, path)
    }

    /// Writes the file atomically after validating it.
    pub fn save(&self, path: &Path, overwrite: Overwrite) -> Result<(), TrainError> {
        self.validate().map_err(|reason| {
            file_error(path, format!("refusing to save an invalid model: {reason}"))
        })?;
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| file_error(path, format!("cannot encode: {e}")))?;
        write_atomic(path, text.as_bytes(), overwrite)
    }
}
