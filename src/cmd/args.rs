//! Value parsers shared by the subcommands' arguments. Each returns a message naming what is
//! wrong; clap prefixes the flag and exits with status 2.

use kaq_model::link::MAX_ANTENNAS;
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
        return Err(format!("SNR must be finite and within ±100 dB, got {v}"));
    }
    Ok(v)
}

/// Ends the process with status 2 and a message naming `flag`, for a usage error found after
/// parsing (for example a file given by a flag that does not fit the other flags).
pub(crate) fn usage_error(flag: &str, message: impl std::fmt::Display) -> ! {
    clap::Error::raw(
        clap::error::ErrorKind::ValueValidation,
        format!("invalid value for {flag}: {message}\n"),
    )
    .exit()
}
