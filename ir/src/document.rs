//! The IR document: its types, JSON loading with the offending field's path in every error,
//! and the accessors the interpreter and codegen share (schema in docs/ir.md, arithmetic in
//! docs/fixed-point.md).

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::fixed::{OverflowMode, QFormat, Requant, RoundingMode};
use crate::modulation::Modulation;
use crate::vocab::{Arch, SnrBins};

/// The `format` field of an IR document.
pub const IR_FORMAT: &str = "kaq-ir";
/// The IR version this build reads and writes.
pub const IR_VERSION: u32 = 1;

/// Largest dimension (M or N) of an IR.
pub const MAX_DIM: usize = 512;
/// Largest requantization multiplier width the lowering produces by default (signed bits).
pub const DEFAULT_MULT_BITS: u32 = 24;

/// Errors of IR loading, validation and lowering; each names the offending field.
#[derive(Debug, Error)]
pub enum IrError {
    /// The document is not JSON of the IR's shape (serde's message carries line and column).
    #[error("{path}: not a valid IR document: at {}: {error}", at_field(.field))]
    Parse {
        /// The file (or `<string>`).
        path: String,
        /// The JSON path where reading stopped, e.g. `layers[0].e.shift`: the offending value,
        /// or the object holding it when the value is checked once its object is read (the
        /// `init` and `prox` objects, formats and requantizations). Empty at the top level.
        field: String,
        /// What serde reported (in the message, so not also a `source`).
        error: serde_json::Error,
    },
    /// `format` is not `kaq-ir`.
    #[error("format = {0:?}: not a kaq IR document (expected \"{IR_FORMAT}\")")]
    Format(String),
    /// An IR version this build does not read.
    #[error("version = {0}: this build reads IR version {IR_VERSION} only")]
    Version(u32),
    /// A field whose value is invalid.
    #[error("{field}: {reason}")]
    Invalid {
        /// The JSON path of the field, e.g. `layers[1].update.x1[3]`.
        field: String,
        /// Why it is refused.
        reason: String,
    },
    /// Frames whose shape does not fit the IR.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// The lowering cannot express the quantized net.
    #[error("cannot lower: {0}")]
    Lower(String),
    /// Reading an input file: it is not a regular file, too large, or not text
    /// ([`kaq_files::read_text`]).
    #[error(transparent)]
    Read(#[from] kaq_files::FilesError),
    /// Reading or writing a file.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The OS error (in the message, so not also a `source`).
        error: std::io::Error,
    },
}

fn at_field(field: &str) -> &str {
    if field.is_empty() {
        "the top level"
    } else {
        field
    }
}

/// The JSON path (e.g. `layers[2].e.mult[3]`) of the value being read at the 1-based `line`
/// and `column` of `text`, where serde stopped: the keys and indices of the objects and
/// arrays open there. Empty at the top level.
fn json_path_at(text: &str, line: usize, column: usize) -> String {
    enum Frame {
        Object { key: Option<String>, want_key: bool },
        Array(usize),
    }
    let mut end = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            end += column.min(l.len());
            break;
        }
        end += l.len();
    }
    let bytes = &text.as_bytes()[..end.min(text.len())];
    let mut stack = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if let Some(Frame::Object { key, want_key }) = stack.last_mut()
                    && *want_key
                {
                    let k = &bytes[start..i.min(bytes.len())];
                    *key = Some(String::from_utf8_lossy(k).into_owned());
                    *want_key = false;
                }
            }
            b'{' => stack.push(Frame::Object {
                key: None,
                want_key: true,
            }),
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { key, want_key }) => {
                    *key = None;
                    *want_key = true;
                }
                Some(Frame::Array(n)) => *n += 1,
                None => {}
            },
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(k), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Object { key: None, .. } => break,
            Frame::Array(n) => path.push_str(&format!("[{n}]")),
        }
    }
    path
}

/// The canonical JSON text of an IR document (pretty, trailing newline): equal documents give
/// equal bytes.
pub(crate) fn canonical_json<T: serde::Serialize>(doc: &T) -> String {
    let mut s = serde_json::to_string_pretty(doc).expect("an IR always serializes");
    s.push('\n');
    s
}

impl IrError {
    /// A parse error of `text` (file `path`), naming the JSON path of the field serde stopped at.
    pub(crate) fn parse(text: &str, path: &str, error: serde_json::Error) -> Self {
        Self::Parse {
            path: path.to_string(),
            field: json_path_at(text, error.line(), error.column()),
            error,
        }
    }

    pub fn invalid(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

/// A proved accumulator: the declared two's-complement `width` (what hardware allocates) and
/// the `bound` that interval analysis proved for every partial sum, `|v| ≤ bound <
/// 2^(width−1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acc {
    /// Declared width in bits, 1..=64.
    pub width: u32,
    /// Proved bound on the magnitude of every value the accumulator holds.
    pub bound: i64,
}

impl Acc {
    /// The narrowest accumulator holding `bound` (an error above 64 bits).
    pub fn for_bound(bound: i128, what: &str) -> Result<Self, IrError> {
        let bound = i64::try_from(bound.max(0))
            .ok()
            .filter(|&b| b < i64::MAX)
            .ok_or_else(|| IrError::Lower(format!("{what}: the proved bound exceeds 64 bits")))?;
        Ok(Self {
            width: signed_width(bound),
            bound,
        })
    }
}

/// Bits of the smallest signed two's-complement code holding every value in `[−b, b]`.
pub fn signed_width(bound: i64) -> u32 {
    let b = bound.unsigned_abs();
    // b ≤ 2^(w−1) − 1  ⇔  w ≥ bits(b) + 1.
    (64 - b.leading_zeros()) + 1
}

/// The receiver's front end: how H̃ and ỹ become input codes (docs/ir.md §Inputs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// Format of the entries of H̃ (signed, power-of-two step 2^−frac).
    pub h: QFormat,
    /// Format of the entries of ỹ.
    pub y: QFormat,
}

/// How x⁽⁰⁾ is formed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum InitStage {
    /// x⁽⁰⁾ = 0.
    Zero,
    /// x⁽⁰⁾_j = requant(Σ_i H_ij y_i): the matched filter, the learned scale α inside the
    /// multiplier.
    MatchedFilter {
        /// The accumulator of Σ_i H_ij y_i.
        acc: Acc,
        /// Multiplier (α's code), shift, rounding and symmetric saturation to the state width.
        requant: Requant,
    },
}

/// e = overflow(round_shift(mult[bin]·(H x) − (y ≪ y_shift), shift), width).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EStage {
    /// The accumulator of the dot products H x.
    pub acc: Acc,
    /// Per SNR bin: the multiplier bringing H x to the scale of y ≪ y_shift.
    pub mult: Vec<i64>,
    /// Left shift of y before the subtraction.
    pub y_shift: u32,
    /// The bound of mult·(H x) − (y ≪ y_shift).
    pub sum: Acc,
    /// Right shift of the sum.
    pub shift: u32,
    /// Rounding of the shift.
    pub rounding: RoundingMode,
    /// Narrowing to e's width.
    pub overflow: OverflowMode,
    /// Format of e.
    pub format: QFormat,
}

/// g = requant(Hᵀ e).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GStage {
    /// The accumulator of the dot products Hᵀ e.
    pub acc: Acc,
    /// A power-of-two requantization (multiplier 2^k or 1).
    pub requant: Requant,
    /// Format of g.
    pub format: QFormat,
}

/// The gradient update at the layer's fine scale 2^−frac:
/// R = x1[bin]·x⁽ᵏ⁻¹⁾ + x2[bin]·x⁽ᵏ⁻²⁾ + g_coef·g + c[bin]·(x⁽ᵏ⁻¹⁾ − s⁽ᵏ⁻¹⁾ + u⁽ᵏ⁻¹⁾).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// R's real value is R·2^−frac.
    pub frac: i32,
    /// Per bin: the coefficient of the previous state.
    pub x1: Vec<i64>,
    /// Per bin: the coefficient of the state before it (momentum); empty without momentum or
    /// in the first layer.
    pub x2: Vec<i64>,
    /// The coefficient of g (−η's code, shifted).
    pub g_coef: i64,
    /// Per bin: the coefficient of the ADMM constraint term; empty for PGD-Net.
    pub c: Vec<i64>,
    /// The bound of R.
    pub acc: Acc,
}

/// The prox applied to the update (PGD) or to v (ADMM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ProxStage {
    /// Soft threshold: R − clamp(R, −lambda, lambda), exact at the update's scale.
    Soft {
        /// λ at the update's scale.
        lambda: i64,
    },
    /// Box: clamp(R, −limit, limit), exact at the update's scale.
    Box {
        /// The alphabet's largest level at the update's scale.
        limit: i64,
    },
    /// Table: t = requant(R) is a `2^width`-entry table address (offset by 2^(width−1));
    /// the prox output is `table[t + 2^(width−1)]` at the scale 2^−table_frac.
    Table {
        /// R → signed table index.
        input: Requant,
        /// The table, entry i for index i − 2^(width−1).
        table: Vec<i64>,
        /// Real value of a table entry: entry·2^−table_frac.
        table_frac: i32,
        /// Width of a table entry (signed).
        table_width: u32,
    },
}

/// A requantization whose multiplier and shift are looked up by SNR bin:
/// overflow(round_shift(x·mult[bin], shift[bin]), width). A shift per bin keeps every bin's
/// multiplier at full precision even when the steps of the bins differ by orders of magnitude
/// (a KAQ step that reaches its floor in bins outside the training SNRs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinRequant {
    /// Per bin multiplier.
    pub mult: Vec<i64>,
    /// Per bin right shift.
    pub shift: Vec<u32>,
    /// Rounding of the shift.
    pub rounding: RoundingMode,
    /// Narrowing (symmetric saturation for states).
    pub overflow: OverflowMode,
    /// Width of the result.
    pub width: u32,
    /// The bound of the input.
    pub input: Acc,
}

impl BinRequant {
    /// The requantization of bin `bin`.
    #[inline]
    pub fn apply(&self, x: i64, bin: usize) -> i64 {
        crate::fixed::requantize(
            x,
            self.mult[bin],
            self.shift[bin],
            self.rounding,
            self.overflow,
            self.width,
        )
    }
}

/// The ADMM part of a layer: x⁽ᵏ⁾ = x_out(R); v = vx[bin]·x⁽ᵏ⁾ + vu[bin]·u⁽ᵏ⁻¹⁾;
/// s⁽ᵏ⁾ = out(prox(v)); u⁽ᵏ⁾ = x_out(v − vx[bin]·s⁽ᵏ⁾).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmmStage {
    /// The update's scale → state codes (used for x and u).
    pub x_out: BinRequant,
    /// Per bin: the coefficient of x⁽ᵏ⁾ in v (and of s⁽ᵏ⁾ in v − s).
    pub vx: Vec<i64>,
    /// Per bin: the coefficient of u⁽ᵏ⁻¹⁾ in v.
    pub vu: Vec<i64>,
    /// The bound of v.
    pub v: Acc,
    /// The bound of v − vx·s.
    pub w: Acc,
}

/// One unfolded layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// e = H x⁽ᵏ⁻¹⁾ − y.
    pub e: EStage,
    /// g = Hᵀ e.
    pub g: GStage,
    /// The update R.
    pub update: Update,
    /// The prox.
    pub prox: ProxStage,
    /// Prox output → the layer's state code (PGD x⁽ᵏ⁾, ADMM s⁽ᵏ⁾).
    pub out: BinRequant,
    /// ADMM-Net only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admm: Option<AdmmStage>,
}

/// Hard decisions from the output codes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slicer {
    /// Per bin, the `levels − 1` ascending thresholds t_j: the level index of a code c is
    /// #{j : c ≥ t_j}; level index i is the level 2i − (levels − 1).
    pub thresholds: Vec<Vec<i64>>,
    /// Per bin, the real value of one LSB of the output codes (for reading them; the
    /// hardware does not use it).
    pub output_lsb: Vec<f64>,
}

/// The IR document (docs/ir.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ir {
    /// Always [`IR_FORMAT`].
    pub format: String,
    /// Always [`IR_VERSION`].
    pub version: u32,
    /// The source model's detector name, e.g. `pgd-soft-k5-kaq-8b`.
    pub name: String,
    /// PGD-Net or ADMM-Net.
    pub arch: Arch,
    /// The modulation (fixes the alphabet, the slicer and the Gray map).
    pub modulation: Modulation,
    /// Transmit antennas.
    pub nt: usize,
    /// Receive antennas.
    pub nr: usize,
    /// Rows of H̃ (2 N_r).
    pub m: usize,
    /// Columns of H̃ (2 N_t, N_t for BPSK).
    pub n: usize,
    /// The SNR bins the receiver reports.
    pub snr_bins: SnrBins,
    /// Input formats.
    pub inputs: Inputs,
    /// Width of every state code (x, s, u): the activation bits.
    pub state_width: u32,
    /// x⁽⁰⁾.
    pub init: InitStage,
    /// The layers in order.
    pub layers: Vec<Layer>,
    /// The slicer.
    pub slicer: Slicer,
}

/// What kind of JSON value `v` is, for messages.
fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

impl Ir {
    /// Parses and validates an IR document; `path` names it in errors.
    pub fn from_json(text: &str, path: &str) -> Result<Self, IrError> {
        // Check format and version first so an IR of another version gets that message
        // rather than a field error.
        #[derive(Deserialize)]
        struct Head {
            format: Option<serde_json::Value>,
            version: Option<serde_json::Value>,
        }
        let head: Head =
            serde_json::from_str(text).map_err(|source| {
                match serde_json::from_str::<serde_json::Value>(text) {
                    Ok(v) if !v.is_object() => IrError::Invalid {
                        field: "the top level".to_string(),
                        reason: format!("must be a JSON object, got {}", json_kind(&v)),
                    },
                    _ => IrError::parse(text, path, source),
                }
            })?;
        match head.format {
            Some(serde_json::Value::String(f)) if f == IR_FORMAT => {}
            Some(other) => return Err(IrError::Format(other.to_string())),
            None => return Err(IrError::Format("<missing>".to_string())),
        }
        match head.version.as_ref().and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(IR_VERSION) => {}
            Some(v) => return Err(IrError::Version(u32::try_from(v).unwrap_or(u32::MAX))),
            None => {
                return Err(IrError::invalid(
                    "version",
                    "missing or not a non-negative integer",
                ));
            }
        }
        let ir: Ir =
            serde_json::from_str(text).map_err(|source| IrError::parse(text, path, source))?;
        // serde ignores the fields beside the tag of a unit variant (`{"kind": "zero", …}`).
        #[derive(Deserialize)]
        struct InitHead {
            init: serde_json::Map<String, serde_json::Value>,
        }
        if ir.init == InitStage::Zero
            && let Ok(head) = serde_json::from_str::<InitHead>(text)
            && let Some(extra) = head.init.keys().find(|k| *k != "kind")
        {
            return Err(IrError::invalid(
                format!("init.{extra}"),
                "unknown field (a zero init has only `kind`)",
            ));
        }
        ir.validate()?;
        Ok(ir)
    }

    /// Reads and validates an IR file.
    pub fn load(path: &Path) -> Result<Self, IrError> {
        let text = kaq_files::read_text(path, kaq_files::INPUT_LIMIT)?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// The canonical JSON text (pretty, trailing newline): equal IRs give equal bytes, and
    /// `from_json(to_json(ir)) == ir`.
    pub fn to_json(&self) -> String {
        canonical_json(self)
    }

    /// Checks every field (see the module docs); the error names the first offending one.
    pub fn validate(&self) -> Result<(), IrError> {
        crate::validate::validate(self)
    }

    /// Number of SNR bins (the length of every per-bin table).
    pub fn bins(&self) -> usize {
        self.snr_bins.count
    }

    /// Levels per real dimension.
    pub fn levels(&self) -> usize {
        self.modulation.levels_per_dim()
    }

    /// The SNR bin of a frame whose complex noise variance (as the nets see it, in f32) is
    /// `noise_var`: SNR = N_t/N_r·E_s/σ², binned by [`SnrBins::bin`]. The same rule as the
    /// fake-quant nets.
    pub fn bin_of(&self, noise_var: f32) -> usize {
        let signal = self.nt as f64 / self.nr as f64 * self.modulation.es();
        self.snr_bins.bin_of_noise(signal, noise_var)
    }

    /// Level index (0..levels) of output code `code` in bin `bin`.
    #[inline]
    pub fn level_index(&self, code: i64, bin: usize) -> usize {
        self.slicer.thresholds[bin]
            .iter()
            .filter(|&&t| code >= t)
            .count()
    }

    /// The alphabet level (odd integer) of output code `code` in bin `bin`.
    #[inline]
    pub fn decide(&self, code: i64, bin: usize) -> i32 {
        2 * self.level_index(code, bin) as i32 - (self.levels() as i32 - 1)
    }
}
