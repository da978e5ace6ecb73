//! The model file: a versioned JSON document holding a trained unfolded net.
//!
//! ```json
//! { "format": "kaq-model", "version": 1,
//!   "net": { …architecture, link and every parameter… },
//!   "train": { …the TrainConfig of the run, seed included… },
//!   "history": [ { "epoch": 1, "lr": 0.001, "train_loss": …, "val_loss": …,
//!                  "val_ber": [ { "snr_db": 0.0, "ber": …, "bit_errors": …, "bits": … } ] },
//!                … ] }
//! ```
//!
//! The file holds no wall times (a history record's `seconds` is left out, and read as 0 from
//! older files that have it), so training again with the same config and seed writes the same
//! bytes.
//!
//! Guarantees: saving refuses a net with a non-finite parameter and is atomic (a temporary file
//! in the target directory is written, fsynced and then renamed or linked into place), so a
//! reader never sees a partial file. Loading checks the JSON syntax, the `format` tag, the
//! `version`, every field, the parameter count, finiteness, and that the net's link is the link
//! it was trained on; every error names the file and the field.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{EpochRecord, TrainConfig, TrainError, TrainedModel};
use crate::unfolded::UnfoldedNet;

/// The `format` tag of a model file.
pub const FORMAT: &str = "kaq-model";
/// The model-file version this build writes and reads.
pub const VERSION: u32 = 1;

/// The contents of a model file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// The trained net: architecture, link and parameters.
    pub net: UnfoldedNet,
    /// The training config of the run, seed included.
    pub train: TrainConfig,
    /// One record per epoch.
    pub history: Vec<EpochRecord>,
}

/// What [`ModelFile::save`] does when the target exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// Fail with an I/O error (kind `AlreadyExists`) and leave the existing file untouched.
    Refuse,
    /// Replace the existing file atomically.
    Replace,
}

impl From<TrainedModel> for ModelFile {
    fn from(model: TrainedModel) -> Self {
        Self {
            format: FORMAT.to_string(),
            version: VERSION,
            net: model.net,
            train: model.config,
            history: model.history,
        }
    }
}

fn file_error(path: &Path, reason: impl Into<String>) -> TrainError {
    TrainError::ModelFile {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// The JSON path of the first `null` under `value` (serde_json writes non-finite floats as null).
fn find_null(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::Null => Some(path.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_null(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| find_null(v, &format!("{path}.{k}"))),
        _ => None,
    }
}

impl ModelFile {
    /// Checks the document: tag, version, config, parameter count and values, and links.
    pub fn validate(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("format is `{}`, expected `{FORMAT}`", self.format));
        }
        if self.version != VERSION {
            return Err(format!(
                "version {} is not supported (this build reads version {VERSION})",
                self.version
            ));
        }
        self.train.validate().map_err(|e| format!("train: {e}"))?;
        let net = &self.net;
        if net.link() != &self.train.link {
            return Err(format!(
                "net.link ({}x{} {}) does not match train.link ({}x{} {})",
                net.link().nt,
                net.link().nr,
                net.link().modulation,
                self.train.link.nt,
                self.train.link.nr,
                self.train.link.modulation
            ));
        }
        if net.config() != &self.train.net {
            return Err("net.config does not match train.net".to_string());
        }
        let fresh = UnfoldedNet::new(net.config().clone(), net.link())
            .map_err(|e| format!("net.config: {e}"))?;
        if net.params().len() != fresh.params().len() {
            return Err(format!(
                "net.params holds {} values, this architecture needs {}",
                net.params().len(),
                fresh.params().len()
            ));
        }
        if let Some(i) = net.params().iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "net.params[{i}] = {} is not finite",
                net.params()[i]
            ));
        }
        net.validate().map_err(|e| format!("net: {e}"))?;
        for (i, record) in self.history.iter().enumerate() {
            if record.epoch != i + 1 {
                return Err(format!(
                    "history[{i}].epoch = {}, expected {}",
                    record.epoch,
                    i + 1
                ));
            }
        }
        Ok(())
    }

    /// Parses and validates a model file's text; `path` names it in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Self, TrainError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| file_error(path, format!("malformed JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| file_error(path, "the document is not a JSON object"))?;
        match object.get("format") {
            Some(Value::String(f)) if f == FORMAT => {}
            Some(other) => {
                return Err(file_error(
                    path,
                    format!("format is {other}, expected \"{FORMAT}\""),
                ));
            }
            None => return Err(file_error(path, "missing field `format`")),
        }
        match object.get("version") {
            Some(v) if v.as_u64() == Some(VERSION as u64) => {}
            Some(other) => {
                return Err(file_error(
                    path,
                    format!(
                        "version {other} is not supported (this build reads version {VERSION})"
                    ),
                ));
            }
            None => return Err(file_error(path, "missing field `version`")),
        }
        if let Some(at) = find_null(&value, "") {
            return Err(file_error(
                path,
                format!("{} is null (a non-finite or missing number)", &at[1..]),
            ));
        }
        let file: ModelFile = serde_json::from_value(value)
            .map_err(|e| file_error(path, format!("invalid contents: {e}")))?;
        file.validate().map_err(|reason| file_error(path, reason))?;
        Ok(file)
    }

    /// Reads and validates a model file.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text = kaq_files::read_text(path, kaq_files::INPUT_LIMIT).map_err(TrainError::Read)?;
        Self::from_json(&text, path)
    }

    /// The document as pretty-printed JSON, after validating it.
    pub fn to_json(&self) -> Result<String, String> {
        self.validate()?;
        serde_json::to_string_pretty(self).map_err(|e| e.to_string())
    }

    /// Writes the file atomically (temporary file in the same directory, fsync, rename or link).
    pub fn save(&self, path: &Path, overwrite: Overwrite) -> Result<(), TrainError> {
        let text = self.to_json().map_err(|reason| {
            file_error(path, format!("refusing to save an invalid model: {reason}"))
        })?;
        write_atomic(path, text.as_bytes(), overwrite)
    }
}

/// Writes `bytes` to `path` with kaq-files: atomically replacing a regular file
/// ([`Overwrite::Replace`], `kaq_files::write_file`) or creating a new one and failing if `path`
/// exists ([`Overwrite::Refuse`], `kaq_files::write_new`). Device files are written straight,
/// other kinds of path refused; a temporary file never outlives the call.
pub fn write_atomic(path: &Path, bytes: &[u8], overwrite: Overwrite) -> Result<(), TrainError> {
    match overwrite {
        Overwrite::Replace => kaq_files::write_file(path, bytes),
        Overwrite::Refuse => kaq_files::write_new(path, bytes),
    }
    .map_err(TrainError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::LinkConfig;
    use crate::modulation::Modulation;
    use crate::train::{TrainConfig, ValidationBer};
    use crate::unfolded::NetConfig;
    use std::fs;

    fn sample_file() -> ModelFile {
        let config = TrainConfig {
            link: LinkConfig::new(2, 3, Modulation::Qam16).unwrap(),
            samples: 1000,
            ..TrainConfig::default()
        };
        let mut net = UnfoldedNet::new(NetConfig::default(), &config.link).unwrap();
        for (i, p) in net.params_mut().iter_mut().enumerate() {
            *p += 0.001 * i as f32 + 1e-7;
        }
        let history = (1..=2)
            .map(|epoch| EpochRecord {
                epoch,
                lr: 1e-3,
                train_loss: 1.0 / epoch as f64,
                val_loss: 1.1 / epoch as f64,
                val_ber: vec![ValidationBer {
                    snr_db: 10.0,
                    ber: 0.125,
                    bit_errors: 5,
                    bits: 40,
                }],
                seconds: 0.0,
            })
            .collect();
        ModelFile::from(TrainedModel {
            net,
            config,
            history,
        })
    }

    fn dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "kaq-model-file-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn assert_same(a: &ModelFile, b: &ModelFile) {
        assert_eq!(a.net.params(), b.net.params());
        assert_eq!(a.net.config(), b.net.config());
        assert_eq!(a.net.link(), b.net.link());
        assert_eq!(a.train, b.train);
        assert_eq!(a.history, b.history);
    }

    #[test]
    fn saved_bytes_do_not_depend_on_wall_time() {
        let a = sample_file();
        let mut b = sample_file();
        for r in &mut b.history {
            r.seconds = 12.5;
        }
        let (pa, pb) = (dir().join("wall-a.json"), dir().join("wall-b.json"));
        for p in [&pa, &pb] {
            let _ = fs::remove_file(p);
        }
        a.save(&pa, Overwrite::Refuse).unwrap();
        b.save(&pb, Overwrite::Refuse).unwrap();
        let text = fs::read_to_string(&pa).unwrap();
        assert_eq!(text.as_bytes(), fs::read(&pb).unwrap().as_slice());
        assert!(!text.contains("\"seconds\""), "{text}");
        // Older files with the field still load.
        let old = text.replacen("\"epoch\": 1,", "\"epoch\": 1, \"seconds\": 3.0,", 1);
        assert_ne!(old, text);
        fs::write(&pa, old).unwrap();
        assert_eq!(ModelFile::load(&pa).unwrap().history[0].seconds, 3.0);
    }

    #[test]
    fn save_load_round_trip_is_identical() {
        let file = sample_file();
        let path = dir().join("round-trip.json");
        let _ = fs::remove_file(&path);
        file.save(&path, Overwrite::Refuse).unwrap();
        let back = ModelFile::load(&path).unwrap();
        assert_same(&file, &back);
        // Saving again refuses to clobber unless asked, and leaves no temporary file behind.
        let err = file.save(&path, Overwrite::Refuse).unwrap_err();
        assert!(
            matches!(
                &err,
                TrainError::Write(kaq_files::FilesError::Exists { .. })
            ),
            "{err}"
        );
        file.save(&path, Overwrite::Replace).unwrap();
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert_same(&file, &ModelFile::load(&path).unwrap());
        fs::remove_file(&path).unwrap();
    }

    fn edited(edit: impl FnOnce(&mut Value)) -> String {
        let mut value = serde_json::to_value(sample_file()).unwrap();
        edit(&mut value);
        serde_json::to_string(&value).unwrap()
    }

    fn load_err(text: &str) -> String {
        ModelFile::from_json(text, Path::new("m.json"))
            .unwrap_err()
            .to_string()
    }

    fn params_of(value: &mut Value) -> &mut Vec<Value> {
        fn find(v: &mut Value) -> Option<&mut Vec<Value>> {
            match v {
                Value::Object(map) => {
                    if let Some(Value::Array(_)) = map.get("params") {
                        return map.get_mut("params").and_then(Value::as_array_mut);
                    }
                    map.values_mut().find_map(find)
                }
                _ => None,
            }
        }
        find(&mut value["net"]).expect("the net serializes a `params` array")
    }

    #[test]
    fn malformed_files_give_errors_naming_the_problem() {
        let good = sample_file().to_json().unwrap();
        ModelFile::from_json(&good, Path::new("m.json")).unwrap();

        let e = load_err(&good[..good.len() / 2]);
        assert!(e.contains("m.json") && e.contains("malformed JSON"), "{e}");

        let e = load_err(&edited(|v| v["version"] = 99.into()));
        assert!(e.contains("version 99"), "{e}");

        let e = load_err(&edited(|v| v["format"] = "onnx".into()));
        assert!(e.contains("format"), "{e}");

        let e = load_err(&edited(|v| {
            v.as_object_mut().unwrap().remove("format");
        }));
        assert!(e.contains("missing field `format`"), "{e}");

        let e = load_err(&edited(|v| {
            params_of(v).pop();
        }));
        assert!(e.contains("params"), "{e}");

        let e = load_err(&edited(|v| params_of(v)[1] = Value::Null));
        assert!(e.contains("params[1]") && e.contains("null"), "{e}");

        let e = load_err(&good.replacen("\"params\": [", "\"params\": [NaN, ", 1));
        assert!(e.contains("malformed JSON"), "{e}");

        let e = load_err(&edited(|v| v["train"]["link"]["nt"] = 3.into()));
        assert!(e.contains("link"), "{e}");

        let e = load_err(&edited(|v| v["train"]["batch"] = 0.into()));
        assert!(e.contains("batch"), "{e}");

        let e = load_err(&edited(|v| v["history"][1]["epoch"] = 7.into()));
        assert!(e.contains("history[1].epoch"), "{e}");

        let e = load_err("[1, 2]");
        assert!(e.contains("not a JSON object"), "{e}");
    }

    #[test]
    fn refuses_to_save_a_non_finite_net() {
        let mut file = sample_file();
        file.net.params_mut()[0] = f32::NAN;
        let path = dir().join("nan.json");
        let _ = fs::remove_file(&path);
        let err = file.save(&path, Overwrite::Replace).unwrap_err();
        assert!(err.to_string().contains("params[0]"), "{err}");
        assert!(!path.exists(), "a corrupt model file was written");
    }
}
