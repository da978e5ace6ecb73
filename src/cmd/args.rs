//! Value parsers shared by the subcommands' arguments. Each returns a message naming what is
//! wrong; clap prefixes the flag and exits with status 2.

use kaq_ir::vocab::{MAX_ACTIVATION_BITS, MIN_BITS};
use kaq_model::link::MAX_ANTENNAS;
use kaq_model::train::TrainError;
use kaq_model::unfolded::MAX_LAYERS;

/// Any `FromStr` value; the error is the type's own message.
pub(crate) fn parse_from_str<T>(s: &str) -> Result<T, String>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    s.trim().parse().map_err(|e: T::Err| e.to_string())
}

/// A whole number.
pub(crate) fn parse_whole(s: &str) -> Result<usize, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))
}

/// A whole number ≥ 1.
pub(crate) fn parse_positive(s: &str) -> Result<usize, String> {
    match parse_whole(s)? {
        0 => Err("must be at least 1".to_string()),
        n => Ok(n),
    }
}

/// Unfolded layers K, 1 to the nets' maximum.
pub(crate) fn parse_layers(s: &str) -> Result<usize, String> {
    let n = parse_whole(s)?;
    if n == 0 || n > MAX_LAYERS {
        return Err(format!(
            "layers must be between 1 and {MAX_LAYERS}, got {n}"
        ));
    }
    Ok(n)
}

/// An antenna count, 1 to the link's maximum.
pub(crate) fn parse_antennas(s: &str) -> Result<usize, String> {
    let n = parse_whole(s)?;
    if n == 0 || n > MAX_ANTENNAS {
        return Err(format!(
            "antenna count must be between 1 and {MAX_ANTENNAS}, got {n}"
        ));
    }
    Ok(n)
}

/// An activation bit width, [`MIN_BITS`] to [`MAX_ACTIVATION_BITS`]: the one range of
/// `kaq train --bits`, `kaq compare --bits` and the flow's `quant.bits`.
pub(crate) fn parse_bits(s: &str) -> Result<u32, String> {
    let v: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    if !(MIN_BITS..=MAX_ACTIVATION_BITS).contains(&v) {
        return Err(format!(
            "bits must be between {MIN_BITS} and {MAX_ACTIVATION_BITS}, got {v}"
        ));
    }
    Ok(v)
}

/// A worker-thread count, 1 to 1024.
pub(crate) fn parse_threads(s: &str) -> Result<usize, String> {
    let n = parse_whole(s)?;
    if n == 0 || n > 1024 {
        return Err(format!("threads must be between 1 and 1024, got {n}"));
    }
    Ok(n)
}

/// A finite, positive learning rate.
pub(crate) fn parse_lr(s: &str) -> Result<f64, String> {
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

/// A finite, non-negative weight.
pub(crate) fn parse_epsilon(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("epsilon must be finite and non-negative, got {v}"));
    }
    Ok(v)
}

/// One SNR value in dB: finite and within ±100 dB.
pub(crate) fn parse_snr_db(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !v.is_finite() || v.abs() > 100.0 {
        return Err(format!(
            "SNR must be finite and within ±100 dB, got `{}`",
            s.trim()
        ));
    }
    Ok(v)
}

/// A usage error found after parsing (a value that does not fit the other flags or the file
/// they name). `main` prints it as clap prints its own and exits with status 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UsageError {
    /// The flag at fault, e.g. `--lanes`.
    pub flag: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid value for {}: {}", self.flag, self.message)
    }
}

impl std::error::Error for UsageError {}

/// A [`UsageError`] naming `flag`, as an `anyhow::Error` to return.
pub(crate) fn usage_error(flag: &str, message: impl std::fmt::Display) -> anyhow::Error {
    UsageError {
        flag: flag.to_string(),
        message: message.to_string(),
    }
    .into()
}

/// Reads the input file given to `flag` as text, up to [`kaq_files::INPUT_LIMIT`]. A path
/// kaq refuses to read (a device file, a FIFO, a directory, a file above the limit, not text)
/// is a usage error naming `flag` and the file; an operating-system failure is not.
pub(crate) fn read_input(flag: &str, path: &std::path::Path) -> anyhow::Result<String> {
    kaq_files::read_text(path, kaq_files::INPUT_LIMIT).map_err(|e| {
        if e.is_usage() {
            usage_error(flag, &e)
        } else {
            anyhow::Error::new(e).context(format!("{flag} {}", path.display()))
        }
    })
}

/// Where an output path would write: the path with symbolic links and `..` of its existing
/// part resolved, or `None` for a device file or FIFO (written straight, so two flags may share
/// `/dev/null` or `/dev/stdout`).
fn output_identity(path: &std::path::Path) -> Option<std::path::PathBuf> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() && !m.is_dir() => None,
        Ok(_) => Some(path.canonicalize().unwrap_or_else(|_| path.to_path_buf())),
        Err(_) => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => std::path::Path::new("."),
            };
            let name = path.file_name()?;
            Some(
                dir.canonicalize()
                    .map_or_else(|_| path.to_path_buf(), |d| d.join(name)),
            )
        }
    }
}

/// Checks a command's single-file outputs before any work: two flags naming the same file, or
/// an existing regular file without `--force`, is a usage error naming the flag; then each must
/// be writable ([`crate::plot::check_writable`]).
pub(crate) fn check_outputs(
    outputs: &[(&str, Option<&std::path::Path>)],
    force: bool,
) -> anyhow::Result<()> {
    let given: Vec<(&str, &std::path::Path)> = outputs
        .iter()
        .filter_map(|&(flag, path)| path.map(|p| (flag, p)))
        .collect();
    for (i, &(flag, path)) in given.iter().enumerate() {
        let Some(id) = output_identity(path) else {
            continue;
        };
        for &(other, other_path) in &given[..i] {
            if output_identity(other_path).as_ref() == Some(&id) {
                return Err(usage_error(
                    flag,
                    format!(
                        "{} is also the file of {other}; give each output its own path",
                        path.display()
                    ),
                ));
            }
        }
        if !force && std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
            return Err(usage_error(
                flag,
                format!("{} exists; pass --force to replace it", path.display()),
            ));
        }
    }
    for (_, path) in given {
        crate::plot::check_writable(path)?;
    }
    Ok(())
}

/// The flag of a training-config field; `snr_flag` is the subcommand's flag for the training
/// SNRs (`--snr` in `kaq train`, `--train-snr` in `kaq compare`).
fn train_flag(field: &str, snr_flag: &'static str) -> &'static str {
    match field {
        "samples" => "--samples",
        "val_samples" => "--val-samples",
        "batch" => "--batch",
        "epochs" => "--epochs",
        "lr" => "--lr",
        "lr_step" => "--lr-step",
        "snr_db" => snr_flag,
        "val_ber_snr_db" => "--val-snr",
        "val_ber_frames" => "--val-frames",
        _ => "the arguments",
    }
}

/// A training-config error naming a field is a usage error of that field's flag (status 2);
/// any other stays a run-time failure.
pub(crate) fn train_config_error(err: TrainError, snr_flag: &'static str) -> anyhow::Error {
    match &err {
        TrainError::Config { field, .. } => usage_error(train_flag(field, snr_flag), &err),
        _ => err.into(),
    }
}
