//! Channel datasets from `.npy` files (docs/channels.md): measured or ray-traced channels H
//! that replace the random channel model.
//!
//! Accepted: shape `[n, Nr, Nt]` of complex64 (`<c8`) or complex128 (`<c16`), or `[n, Nr, Nt, 2]`
//! of float32/float64 holding (re, im) pairs, C or Fortran order, little- or big-endian,
//! n ≥ 1. The header is read by `ndarray-npy`; before anything is allocated the file size is
//! checked against [`MAX_DATASET_BYTES`], the header length against the file, and the byte count
//! the header's shape implies against the bytes that follow it, so a file claiming more data
//! than it holds fails with the counts instead of allocating. Every value must be finite; the
//! error names the file and the channel, row, column and part of the first bad value.
//!
//! SNR of dataset channels ([`ChannelNorm`]): `per-file` (the default) scales every channel by
//! one factor c so that the file's mean ‖cH‖_F² equals Nt, the E‖H‖_F² of the i.i.d. model
//! (entries of variance 1/Nr), so the per-receive-antenna SNR (Nt/Nr)·Es/σ² holds on average
//! over the file and per-channel gain differences stay; `as-is` uses the stored values, so the
//! requested SNR is that of a unit-gain channel and the mean receive SNR is
//! SNR·mean‖H‖_F²/Nt.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use ndarray::{Array3, Array4};
use ndarray_npy::ReadNpyExt;
use ndarray_npy::npy::header::Header;
use num_complex::Complex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Largest dataset file accepted: 4 GiB.
pub const MAX_DATASET_BYTES: u64 = 4 << 30;

/// How the SNR applies to dataset channels (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChannelNorm {
    /// One scale factor per file so that the mean ‖H‖_F² is Nt.
    #[default]
    PerFile,
    /// The stored values.
    AsIs,
}

/// Why a dataset was refused. Every message names the file.
#[derive(Debug, Error)]
pub enum DatasetError {
    /// The file cannot be read.
    #[error("{file}: {error}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error (in the message, so not also the `source()`).
        error: std::io::Error,
    },
    /// The file is larger than [`MAX_DATASET_BYTES`].
    #[error("{file}: {bytes} bytes, more than the {max} a dataset may have")]
    TooLarge {
        /// The file.
        file: String,
        /// Its size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// Not a readable `.npy` header.
    #[error("{file}: not a valid .npy file: {reason}")]
    Header {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// An element type other than complex or a float pair.
    #[error(
        "{file}: dtype {descr} is not complex64, complex128, or float32/float64 with a trailing dimension of 2"
    )]
    Dtype {
        /// The file.
        file: String,
        /// The dtype descriptor found.
        descr: String,
    },
    /// A shape that does not fit the link.
    #[error("{file}: shape {found:?}, the link needs {want}")]
    Shape {
        /// The file.
        file: String,
        /// The shape found.
        found: Vec<usize>,
        /// The shape wanted.
        want: String,
    },
    /// Fewer or more data bytes than the header's shape implies.
    #[error(
        "{file}: the header's shape {shape:?} needs {want} data bytes, the file holds {have}{hint}"
    )]
    Size {
        /// The file.
        file: String,
        /// The shape claimed.
        shape: Vec<usize>,
        /// Bytes the shape implies.
        want: u128,
        /// Bytes present.
        have: u64,
        /// "(truncated)" or "(extra bytes)".
        hint: &'static str,
    },
    /// No channel at all.
    #[error("{file}: holds 0 channels")]
    Empty {
        /// The file.
        file: String,
    },
    /// A NaN or infinite value.
    #[error(
        "{file}: non-finite value {value} at channel {channel}, row {row}, column {col} ({part} part)"
    )]
    NonFinite {
        /// The file.
        file: String,
        /// The channel index.
        channel: usize,
        /// The receive antenna.
        row: usize,
        /// The transmit antenna.
        col: usize,
        /// "real" or "imaginary".
        part: &'static str,
        /// The value.
        value: f64,
    },
    /// Every channel is zero, so no per-file scale exists.
    #[error("{file}: every channel is zero; per-file normalization needs some power")]
    ZeroPower {
        /// The file.
        file: String,
    },
}

/// The channels of one file, scaled by the file's [`ChannelNorm`].
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelSet {
    /// Receive antennas.
    pub nr: usize,
    /// Transmit antennas.
    pub nt: usize,
    /// Channels, `channels × Nr × Nt` row-major, complex (re, im), already scaled.
    pub data: Vec<(f64, f64)>,
    /// Mean |h_ij|² over the file of every entry (i, j), after scaling, Nr × Nt.
    pub entry_power: Vec<f64>,
}

impl ChannelSet {
    /// Number of channels.
    pub fn len(&self) -> usize {
        self.data.len() / (self.nr * self.nt)
    }

    /// Whether the set holds no channel (never true for a loaded set).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Channel `c` (Nr × Nt row-major).
    pub fn channel(&self, c: usize) -> &[(f64, f64)] {
        let size = self.nr * self.nt;
        &self.data[c * size..(c + 1) * size]
    }
}

/// The dataset a link draws its channels from: what JSON records of it (file, hash, count,
/// normalization and scale) and the loaded channels, which are not serialized.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetChannels {
    /// The file as given.
    pub file: String,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    /// Number of channels.
    pub channels: usize,
    /// How the SNR applies.
    pub norm: ChannelNorm,
    /// The factor every stored channel was multiplied by (1 for `as-is`).
    pub scale: f64,
    /// The channels; `None` after deserialization until loaded again.
    #[serde(skip)]
    pub set: Option<Arc<ChannelSet>>,
}

impl PartialEq for DatasetChannels {
    /// Equal files (by hash) with equal normalization; the loaded data follows from them.
    fn eq(&self, other: &Self) -> bool {
        (&self.sha256, self.channels, self.norm, self.scale.to_bits())
            == (
                &other.sha256,
                other.channels,
                other.norm,
                other.scale.to_bits(),
            )
    }
}

/// The element types accepted.
#[derive(Debug, Clone, Copy)]
enum Element {
    C64,
    C128,
    F32Pair,
    F64Pair,
}

impl Element {
    fn from_descr(descr: &str) -> Option<Self> {
        let (order, kind) = descr.split_at(descr.len().min(1));
        if !matches!(order, "<" | ">" | "=" | "|") {
            return None;
        }
        match kind {
            "c8" => Some(Self::C64),
            "c16" => Some(Self::C128),
            "f4" => Some(Self::F32Pair),
            "f8" => Some(Self::F64Pair),
            _ => None,
        }
    }

    fn bytes(self) -> u128 {
        match self {
            Self::C64 | Self::F64Pair => 8,
            Self::C128 => 16,
            Self::F32Pair => 4,
        }
    }

    fn pair(self) -> bool {
        matches!(self, Self::F32Pair | Self::F64Pair)
    }
}

/// Loads the channels of `path` for a link with `nr` receive and `nt` transmit antennas.
pub fn load(
    path: &Path,
    nr: usize,
    nt: usize,
    norm: ChannelNorm,
) -> Result<DatasetChannels, DatasetError> {
    let file = path.display().to_string();
    let io = |error| DatasetError::Io {
        file: file.clone(),
        error,
    };
    let header_error = |reason: String| DatasetError::Header {
        file: file.clone(),
        reason,
    };
    let mut handle = std::fs::File::open(path).map_err(io)?;
    let size = handle.metadata().map_err(io)?.len();
    if size > MAX_DATASET_BYTES {
        return Err(DatasetError::TooLarge {
            file,
            bytes: size,
            max: MAX_DATASET_BYTES,
        });
    }
    // The fixed preamble: magic, version, header length. Checked against the file size before
    // the header reader allocates the header.
    let mut preamble = Vec::with_capacity(12);
    (&mut handle)
        .take(12)
        .read_to_end(&mut preamble)
        .map_err(io)?;
    if preamble.len() < 10 || &preamble[..6] != b"\x93NUMPY" {
        return Err(header_error("no .npy magic string".into()));
    }
    let (prefix, header_len) = match preamble[6] {
        1 => (
            10u64,
            u64::from(u16::from_le_bytes([preamble[8], preamble[9]])),
        ),
        2 | 3 if preamble.len() == 12 => (
            12,
            u64::from(u32::from_le_bytes([
                preamble[8],
                preamble[9],
                preamble[10],
                preamble[11],
            ])),
        ),
        v => return Err(header_error(format!("unsupported format version {v}"))),
    };
    if prefix + header_len > size {
        return Err(header_error(format!(
            "the header claims {header_len} bytes, the file has {size} in all (truncated)"
        )));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    handle = std::fs::File::open(path).map_err(io)?;
    handle.read_to_end(&mut bytes).map_err(io)?;
    let header = Header::from_reader(&mut &bytes[..]).map_err(|e| header_error(e.to_string()))?;
    let descr = header.type_descriptor.to_string();
    let element = Element::from_descr(descr.trim_matches('\'')).ok_or(DatasetError::Dtype {
        file: file.clone(),
        descr: descr.clone(),
    })?;
    let shape = header.shape.clone();
    let want_shape = if element.pair() {
        format!("[n, {nr}, {nt}, 2] (n channels of Nr = {nr} by Nt = {nt}, re/im pairs)")
    } else {
        format!("[n, {nr}, {nt}] (n channels of Nr = {nr} by Nt = {nt})")
    };
    let fits = shape.len() == if element.pair() { 4 } else { 3 }
        && shape[1] == nr
        && shape[2] == nt
        && (!element.pair() || shape[3] == 2);
    if !fits {
        return Err(DatasetError::Shape {
            file,
            found: shape,
            want: want_shape,
        });
    }
    let want: u128 = shape.iter().map(|&d| d as u128).product::<u128>() * element.bytes();
    let have = (bytes.len() as u64).saturating_sub(prefix + header_len);
    if want != u128::from(have) {
        return Err(DatasetError::Size {
            file,
            shape,
            want,
            have,
            hint: if want > u128::from(have) {
                " (truncated)"
            } else {
                " (extra bytes)"
            },
        });
    }
    let channels = shape[0];
    if channels == 0 {
        return Err(DatasetError::Empty { file });
    }
    let parse = |e: ndarray_npy::ReadNpyError| header_error(e.to_string());
    let reader = &bytes[..];
    let mut data = Vec::with_capacity(channels * nr * nt);
    match element {
        Element::C64 => {
            let a = Array3::<Complex<f32>>::read_npy(reader).map_err(parse)?;
            data.extend(a.iter().map(|z| (f64::from(z.re), f64::from(z.im))));
        }
        Element::C128 => {
            let a = Array3::<Complex<f64>>::read_npy(reader).map_err(parse)?;
            data.extend(a.iter().map(|z| (z.re, z.im)));
        }
        Element::F32Pair => {
            let a = Array4::<f32>::read_npy(reader).map_err(parse)?;
            let v: Vec<f64> = a.iter().map(|&x| f64::from(x)).collect();
            data.extend(v.chunks_exact(2).map(|p| (p[0], p[1])));
        }
        Element::F64Pair => {
            let a = Array4::<f64>::read_npy(reader).map_err(parse)?;
            let v: Vec<f64> = a.iter().copied().collect();
            data.extend(v.chunks_exact(2).map(|p| (p[0], p[1])));
        }
    }
    let sha256: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    drop(bytes);
    for (k, &(re, im)) in data.iter().enumerate() {
        for (value, part) in [(re, "real"), (im, "imaginary")] {
            if !value.is_finite() {
                let (c, rest) = (k / (nr * nt), k % (nr * nt));
                return Err(DatasetError::NonFinite {
                    file,
                    channel: c,
                    row: rest / nt,
                    col: rest % nt,
                    part,
                    value,
                });
            }
        }
    }
    let scale = match norm {
        ChannelNorm::AsIs => 1.0,
        ChannelNorm::PerFile => {
            let mean_power =
                data.iter().map(|&(re, im)| re * re + im * im).sum::<f64>() / channels as f64;
            if !mean_power.is_finite() || mean_power <= 0.0 {
                return Err(DatasetError::ZeroPower { file });
            }
            (nt as f64 / mean_power).sqrt()
        }
    };
    if scale != 1.0 {
        for h in data.iter_mut() {
            *h = (h.0 * scale, h.1 * scale);
        }
    }
    let mut entry_power = vec![0.0; nr * nt];
    for c in data.chunks_exact(nr * nt) {
        for (p, &(re, im)) in entry_power.iter_mut().zip(c) {
            *p += (re * re + im * im) / channels as f64;
        }
    }
    Ok(DatasetChannels {
        file,
        sha256,
        channels,
        norm,
        scale,
        set: Some(Arc::new(ChannelSet {
            nr,
            nt,
            data,
            entry_power,
        })),
    })
}
