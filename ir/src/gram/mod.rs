//! IR version 2: the Gram-domain unfolded conjugate-gradient detector (`family: "cg"`) with
//! its per-channel-block stage (docs/ir.md §10, arithmetic in docs/fixed-point.md §7).
//!
//! * [`GramIr`]: the document, loaded with unknown fields refused and validated field by
//!   field ([`GramIr::validate`]); every error names the offending field by its JSON path.
//! * [`combine`]: the one aligned-sum-and-requantize rule every per-vector stage uses.
//! * [`GramInterpreter`]: the integer golden model, batched over the vectors of a channel
//!   block, with per-stage taps ([`BlockTaps`], [`VectorTaps`]).
//! * [`oamp`]: IR version 4, OAMP-Net2 with a per-block LMMSE bank (`family: "oamp"`,
//!   docs/ir.md §11) and its golden model [`oamp::OampInterpreter`].
//! * [`ep`]: IR version 5, EPNet with a per-vector, per-layer LDLᵀ inverse (`family: "ep"`,
//!   docs/ir.md §12) and its golden model [`ep::EpInterpreter`].
//!
//! Guarantees: a validated [`GramIr`] cannot make the interpreter panic or overflow — every
//! sum's bound is computed by interval analysis ([`GramIr::bounds`]) from the formats and the
//! parameter values and must stay below 2^62; every shift the semantics derive lies in 0..=63.

use serde::{Deserialize, Serialize};

use crate::document::{IR_FORMAT, IrError, MAX_DIM};
use crate::fixed::{
    Divide, OverflowMode, QFormat, RoundingMode, max_code, round_shift, saturate_symmetric,
};
use crate::modulation::Modulation;
use crate::vocab::SnrBins;

mod energy;
pub mod ep;
#[cfg(test)]
mod ep_tests;
mod interp;
pub mod oamp;
#[cfg(test)]
mod oamp_tests;
#[cfg(test)]
mod tests;

pub use energy::{gram_counts, gram_energy};
pub use interp::{BlockTaps, GramInterpreter, LayerTaps, VectorTaps};

/// The version of a Gram-domain IR document.
pub const GRAM_IR_VERSION: u32 = 2;
/// The version of a Gram-domain IR document whose layers may carry per-SNR-bin format shifts
/// ([`BinShift`], docs/ir.md §10.8); everything else is version 2's.
pub const GRAM_IR_VERSION_BIN_SHIFT: u32 = 3;
/// Largest magnitude of a per-bin format shift.
pub const MAX_BIN_SHIFT: i32 = 24;
/// Largest number of layers.
pub const MAX_GRAM_LAYERS: usize = 64;
/// Largest number of inner steps per layer.
pub const MAX_GRAM_INNER: usize = 32;
/// Largest number of variance buckets of the denoiser table.
pub const MAX_BUCKETS: usize = 256;
/// Largest width of a denoiser input code (the table has 2^width entries per bucket).
pub const MAX_TABLE_INPUT_WIDTH: u32 = 12;
/// Every sum the semantics form must stay below 2^MAX_SUM_BITS in magnitude.
pub const MAX_SUM_BITS: u32 = 62;

/// The family of a v2 document (only the inverse-free `cg` so far).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GramFamily {
    /// The unfolded Jacobi-preconditioned conjugate-gradient net.
    Cg,
}

/// A constant: the real value `code · 2^−frac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coef {
    /// The integer code (a signed 32-bit value).
    pub code: i64,
    /// Fractional bits.
    pub frac: i32,
}

/// A per-SNR-bin constant: entry `bin` stands for `codes[bin] · 2^−frac`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinCoef {
    /// One code per SNR bin (signed 32-bit values).
    pub codes: Vec<i64>,
    /// Fractional bits shared by every bin.
    pub frac: i32,
}

/// Whether a division's divisor lower bound is proved (the clamp never acts) or the
/// hardware clamps it to `d_min` (docs/fixed-point.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Divisor {
    /// Interval analysis proves every divisor ≥ d_min.
    Proved,
    /// The divisor can fall below d_min; the hardware clamps it.
    Clamped,
}

/// A reciprocal `1 · 2^shift / max(d, d_min)` of the block stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reciprocal {
    /// The division's parameters.
    pub op: Divide,
    /// Which divisor case holds.
    pub divisor: Divisor,
    /// Format of the result: `frac = op.shift − frac(divisor)`, `width = op.out_width`.
    pub format: QFormat,
}

/// The per-channel-block stage: G = H̃ᵀH̃, tr G, 1/tr G, D = diag(G)⁻¹.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockStage {
    /// Format of G's entries.
    pub g: QFormat,
    /// 1/tr G (divisor tr G = Σ G_ii, at G's frac).
    pub inv_trace: Reciprocal,
    /// D_i = 1/G_ii.
    pub diag_inv: Reciprocal,
}

/// The front of every vector: z = H̃ᵀỹ and ‖ỹ‖², and the per-bin noise power M·s2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorFront {
    /// Format of z.
    pub z: QFormat,
    /// Format of ‖ỹ‖² (and of `noise`).
    pub yy: QFormat,
    /// Per bin: M·s2 at `yy.frac`.
    pub noise: Vec<i64>,
}

/// Formats of one layer's tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerFormats {
    /// e = z − Gx and every residual ρ_l.
    pub e: QFormat,
    /// The search directions p_l.
    pub p: QFormat,
    /// The iterates d_l.
    pub d: QFormat,
    /// The denoiser input r (its width addresses the table).
    pub r: QFormat,
    /// The residual-power estimate v².
    pub v2: QFormat,
    /// The denoiser variance τ².
    pub tau2: QFormat,
}

/// One inner step's learned constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InnerStep {
    /// The step ω_{k,l}.
    pub omega: Coef,
    /// The momentum β_{k,l} (code 0 in step 0).
    pub beta: Coef,
}

/// One unfolded cg layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GramLayer {
    /// The layer's formats.
    pub formats: LayerFormats,
    /// Floor of v² (a code at `formats.v2`, ≥ 0).
    pub v2_floor: i64,
    /// Per bin: the regularizer δ = s2·e^ρ_k.
    pub delta: BinCoef,
    /// The step γ_k of r = x + γ d_L.
    pub gamma: Coef,
    /// e^{a_k}, the coefficient of v² in τ².
    pub tv: Coef,
    /// Per bin: e^{b_k}·s2, the constant of τ².
    pub ts: BinCoef,
    /// The L inner steps.
    pub steps: Vec<InnerStep>,
    /// Version 3 only: per SNR bin, the offsets added to the fracs of e (and ρ), p and d
    /// (absent in a version-2 document, and then written nowhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_shift: Option<BinShift>,
    /// Optional: the width of the G that this layer's inner steps read for ρ = e − G·d − δd
    /// (docs/ir.md §10.9), 2 ≤ `g_inner` < `block.g.width`. The block stage stores a second
    /// copy of G at this width, its codes rounded half-up down by s = `block.g.width` −
    /// `g_inner` bits and saturated symmetrically (frac `block.g.frac` − s); e = z − G·x keeps
    /// the full G. Absent: the inner steps read the full G, as in every older document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub g_inner: Option<u32>,
}

/// The per-SNR-bin shifts of one layer's formats (docs/ir.md §10.8): in bin `b` the format of
/// e and of every ρ is `(formats.e.width, formats.e.frac + e[b])`, likewise p and d. The
/// width never changes; only the step 2^−frac follows the bin (KAQ's SNR-adaptive step held as
/// a power of two).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinShift {
    /// Per bin: the offset of e's (and ρ's) frac.
    pub e: Vec<i32>,
    /// Per bin: the offset of p's frac.
    pub p: Vec<i32>,
    /// Per bin: the offset of d's frac.
    pub d: Vec<i32>,
}

impl GramLayer {
    /// The layer's formats in SNR bin `bin` (its `formats` shifted by `bin_shift`).
    pub fn formats_at(&self, bin: usize) -> LayerFormats {
        let mut f = self.formats;
        if let Some(s) = &self.bin_shift {
            // A validated document keeps every shifted frac in range (`GramIr::validate`).
            let sh = |q: QFormat, v: &[i32]| {
                QFormat::new(q.width(), q.frac() + v.get(bin).copied().unwrap_or(0), true)
                    .unwrap_or(q)
            };
            f.e = sh(f.e, &s.e);
            f.p = sh(f.p, &s.p);
            f.d = sh(f.d, &s.d);
        }
        f
    }

    /// The format of the G this layer's ρ products read from the block's G format `g`:
    /// `g` itself, or `g_inner` bits at frac `g.frac − (g.width − g_inner)`.
    pub fn inner_g(&self, g: QFormat) -> QFormat {
        match self.g_inner {
            Some(w) if w < g.width() => {
                QFormat::new(w, g.frac() - (g.width() - w) as i32, true).unwrap_or(g)
            }
            _ => g,
        }
    }

    /// The right shift from the block's G codes to this layer's inner G codes (0: the full G).
    pub fn inner_g_shift(&self, g: QFormat) -> u32 {
        g.width() - self.inner_g(g).width()
    }
}

/// Rounds G's code `c` half-up down by `shift` bits and saturates it symmetrically to
/// `width` bits: the entry of the narrow copy of G that a layer with `g_inner` = `width`
/// reads (docs/ir.md §10.9). `shift` 0 returns `c`.
pub fn narrow_g(c: i64, shift: u32, width: u32) -> i64 {
    if shift == 0 {
        return c;
    }
    saturate_symmetric(round_shift(c, shift, RoundingMode::HalfUp), width)
}

/// The Gauss-QAM denoiser as a bucketed table: bucket j = #{i : τ² ≥ thresholds[i]},
/// x = table[j][r + 2^(w_r − 1)].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Denoiser {
    /// Ascending τ² codes (at each layer's `tau2` format, which must be the same for all
    /// layers): `buckets − 1` entries.
    pub thresholds: Vec<i64>,
    /// The representative τ² of each bucket (informational: what the table was built at).
    pub representatives: Vec<f64>,
    /// One row of 2^(w_r) state codes per bucket.
    pub table: Vec<Vec<i64>>,
}

impl VectorFront {
    /// Checks the per-vector front end against `bins` SNR bins (docs/ir.md §10.5): the formats
    /// of z and ‖ỹ‖², one noise code per bin.
    pub(crate) fn validate(&self, bins: usize) -> Result<(), IrError> {
        check_fmt("front.z", &self.z, 2, 32)?;
        check_fmt("front.yy", &self.yy, 2, 40)?;
        if self.noise.len() != bins {
            return Err(IrError::invalid(
                "front.noise",
                format!(
                    "{} entries, snr_bins.count = {bins} needed",
                    self.noise.len()
                ),
            ));
        }
        for (i, &v) in self.noise.iter().enumerate() {
            check_code(&format!("front.noise[{i}]"), v)?;
        }
        Ok(())
    }
}

/// Checks the number of layers: 1..=MAX_GRAM_LAYERS.
fn check_layer_count(layers: usize) -> Result<(), IrError> {
    if layers == 0 || layers > MAX_GRAM_LAYERS {
        return Err(IrError::invalid(
            "layers",
            format!("{layers} layers is outside 1..={MAX_GRAM_LAYERS}"),
        ));
    }
    Ok(())
}

impl Denoiser {
    /// Checks the table against the width of its input r and the state format (docs/ir.md
    /// §10.5): 1..=MAX_BUCKETS buckets, one threshold fewer (ascending codes), one
    /// representative per bucket, 2^(r width) symmetric state codes per row.
    pub(crate) fn validate(&self, r_width: u32, state: QFormat) -> Result<(), IrError> {
        if self.table.is_empty() || self.table.len() > MAX_BUCKETS {
            return Err(IrError::invalid(
                "denoiser.table",
                format!("{} buckets is outside 1..={MAX_BUCKETS}", self.table.len()),
            ));
        }
        if self.thresholds.len() + 1 != self.table.len() {
            return Err(IrError::invalid(
                "denoiser.thresholds",
                format!(
                    "{} entries, buckets − 1 = {} needed",
                    self.thresholds.len(),
                    self.table.len() - 1
                ),
            ));
        }
        if self.representatives.len() != self.table.len() {
            return Err(IrError::invalid(
                "denoiser.representatives",
                format!(
                    "{} entries, {} buckets",
                    self.representatives.len(),
                    self.table.len()
                ),
            ));
        }
        for i in 1..self.thresholds.len() {
            if self.thresholds[i] < self.thresholds[i - 1] {
                return Err(IrError::invalid(
                    format!("denoiser.thresholds[{i}]"),
                    "not ascending",
                ));
            }
        }
        for (i, &t) in self.thresholds.iter().enumerate() {
            check_code(&format!("denoiser.thresholds[{i}]"), t)?;
        }
        let entries = 1usize << r_width;
        let qx = code_max(state);
        for (j, row) in self.table.iter().enumerate() {
            if row.len() != entries {
                return Err(IrError::invalid(
                    format!("denoiser.table[{j}]"),
                    format!(
                        "{} entries, 2^(r width {r_width}) = {entries} needed",
                        row.len()
                    ),
                ));
            }
            for (i, &v) in row.iter().enumerate() {
                if i128::from(v).abs() > qx {
                    return Err(IrError::invalid(
                        format!("denoiser.table[{j}][{i}]"),
                        format!(
                            "{v} is not a symmetric code of state ({} bits)",
                            state.width()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Checks the slicer: levels − 1 ascending thresholds (docs/ir.md §10.5).
fn check_slicer(slicer: &[i64], levels: usize) -> Result<(), IrError> {
    if slicer.len() + 1 != levels {
        return Err(IrError::invalid(
            "slicer",
            format!(
                "{} thresholds, levels − 1 = {} needed",
                slicer.len(),
                levels - 1
            ),
        ));
    }
    for i in 1..slicer.len() {
        if slicer[i] < slicer[i - 1] {
            return Err(IrError::invalid(format!("slicer[{i}]"), "not ascending"));
        }
    }
    Ok(())
}

/// The IR v2 document of a Gram-domain cg net (docs/ir.md §10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GramIr {
    /// Always `kaq-ir`.
    pub format: String,
    /// Always [`GRAM_IR_VERSION`].
    pub version: u32,
    /// The source model's name, e.g. `cg-k8-l4-ptq-8b`.
    pub name: String,
    /// The family.
    pub family: GramFamily,
    /// The modulation.
    pub modulation: Modulation,
    /// Transmit antennas.
    pub nt: usize,
    /// Receive antennas.
    pub nr: usize,
    /// Rows of H̃.
    pub m: usize,
    /// Columns of H̃.
    pub n: usize,
    /// The SNR bins.
    pub snr_bins: SnrBins,
    /// Input formats of H̃ and ỹ.
    pub inputs: crate::document::Inputs,
    /// Format of every state code x (and of the denoiser's table entries).
    pub state: QFormat,
    /// The per-channel-block stage.
    pub block: BlockStage,
    /// z, ‖y‖², the noise power.
    pub front: VectorFront,
    /// The layers.
    pub layers: Vec<GramLayer>,
    /// The denoiser table.
    pub denoiser: Denoiser,
    /// The L − 1 ascending state-code thresholds of the slicer.
    pub slicer: Vec<i64>,
}

/// `combine`: the aligned sum of terms `(value, frac)` requantized to `out` (docs/ir.md §10.3):
/// F = max(out.frac, every term's frac), S = Σ value·2^(F − frac), result
/// saturate_symmetric(round_half_up(S / 2^(F − out.frac)), out.width). Exact in i128.
#[inline]
pub fn combine(terms: &[(i128, i32)], out: QFormat) -> i64 {
    let f = terms.iter().map(|t| t.1).fold(out.frac(), i32::max);
    let mut s: i128 = 0;
    for &(v, fr) in terms {
        s += v << ((f - fr) as u32);
    }
    let shifted = crate::fixed::round_shift_wide(s, (f - out.frac()) as u32, RoundingMode::HalfUp);
    let m = i128::from(max_code(out.width()));
    shifted.clamp(-m, m) as i64
}

/// The bound of every sum of the IR (interval analysis, docs/ir.md §10.4), in bits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SumBits {
    /// Every named sum and the bits of its bound (`bits(bound)`, sign excluded).
    pub sums: Vec<(String, u32)>,
}

impl SumBits {
    /// Bounds the sum `name` of `terms` written at `fmt` and records its bits; an error names
    /// it when the bound does not stay below 2^[`MAX_SUM_BITS`].
    fn push(&mut self, name: String, terms: &[(i128, i32)], fmt: QFormat) -> Result<(), IrError> {
        let s = sum_bound(terms, fmt).map_err(|_| bound_err(&name))?;
        if bits(s) > MAX_SUM_BITS {
            return Err(bound_err(&name));
        }
        self.sums.push((name, bits(s)));
        Ok(())
    }
}

fn bits(b: i128) -> u32 {
    128 - b.unsigned_abs().leading_zeros()
}

/// The interval-analysis bookkeeping of one combine: terms as (bound, frac).
fn sum_bound(terms: &[(i128, i32)], out: QFormat) -> Result<i128, ()> {
    let f = terms.iter().map(|t| t.1).fold(out.frac(), i32::max);
    let mut s: i128 = 0;
    for &(b, fr) in terms {
        let sh = (f - fr) as u32;
        if sh > 63 || bits(b) + sh > 120 {
            return Err(());
        }
        s = s.checked_add(b << sh).ok_or(())?;
    }
    if f - out.frac() > 63 {
        return Err(());
    }
    Ok(s)
}

fn code_max(f: QFormat) -> i128 {
    i128::from(max_code(f.width()))
}

/// The dimension fields every Gram-domain document shares (docs/ir.md §10.5): `name`, `nt`,
/// `nr`, `m` = 2·nr, `n` = the real dimensions of nt symbols, each within [`MAX_DIM`].
fn check_dims(
    name: &str,
    nt: usize,
    nr: usize,
    m: usize,
    n: usize,
    modulation: Modulation,
) -> Result<(), IrError> {
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(IrError::invalid(
            "name",
            "must be 1 to 128 bytes, no control characters",
        ));
    }
    for (field, v) in [("nt", nt), ("nr", nr)] {
        if !(1..=256).contains(&v) {
            return Err(IrError::invalid(field, format!("{v} is outside 1..=256")));
        }
    }
    if m != 2 * nr || m > MAX_DIM {
        return Err(IrError::invalid(
            "m",
            format!("{m} is not 2·nr = {}", 2 * nr),
        ));
    }
    let n_want = modulation.real_dims_per_symbol() * nt;
    if n != n_want || n > MAX_DIM {
        return Err(IrError::invalid("n", format!("{n} is not {n_want}")));
    }
    Ok(())
}

fn check_fmt(field: &str, f: &QFormat, lo: u32, hi: u32) -> Result<(), IrError> {
    if !f.is_signed() {
        return Err(IrError::invalid(field, "must be signed"));
    }
    if !(lo..=hi).contains(&f.width()) {
        return Err(IrError::invalid(
            format!("{field}.width"),
            format!("{} bits is outside {lo}..={hi}", f.width()),
        ));
    }
    Ok(())
}

fn check_code(field: &str, c: i64) -> Result<(), IrError> {
    if !(i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&c) {
        return Err(IrError::invalid(
            field,
            format!("{c} is not a signed 32-bit code"),
        ));
    }
    Ok(())
}

fn check_bins(field: &str, c: &BinCoef, bins: usize) -> Result<(), IrError> {
    if c.codes.len() != bins {
        return Err(IrError::invalid(
            format!("{field}.codes"),
            format!("{} entries, snr_bins.count = {bins} needed", c.codes.len()),
        ));
    }
    for (i, &v) in c.codes.iter().enumerate() {
        check_code(&format!("{field}.codes[{i}]"), v)?;
    }
    check_frac(&format!("{field}.frac"), c.frac)
}

fn check_frac(field: &str, f: i32) -> Result<(), IrError> {
    if !(-64..=64).contains(&f) {
        return Err(IrError::invalid(field, format!("{f} is outside -64..=64")));
    }
    Ok(())
}

fn check_coef(field: &str, c: &Coef) -> Result<(), IrError> {
    check_code(&format!("{field}.code"), c.code)?;
    check_frac(&format!("{field}.frac"), c.frac)
}

fn bound_err(field: &str) -> IrError {
    IrError::invalid(
        field,
        format!(
            "interval analysis cannot keep this sum below 2^{MAX_SUM_BITS} \
             (or a derived shift exceeds 63)"
        ),
    )
}

impl GramIr {
    /// Parses and validates a v2 document; `path` names it in errors.
    pub fn from_json(text: &str, path: &str) -> Result<Self, IrError> {
        let ir: GramIr = serde_json::from_str(text).map_err(|e| IrError::parse(text, path, e))?;
        ir.validate()?;
        Ok(ir)
    }

    /// The canonical JSON text (pretty, trailing newline).
    pub fn to_json(&self) -> String {
        crate::document::canonical_json(self)
    }

    /// The first layer with per-SNR-bin format shifts (version 3, docs/ir.md §10.8), if any.
    pub fn first_bin_shift(&self) -> Option<usize> {
        self.layers.iter().position(|l| l.bin_shift.is_some())
    }

    /// The first layer with a narrow inner G (`g_inner`, docs/ir.md §10.9), if any.
    pub fn first_g_inner(&self) -> Option<usize> {
        self.layers.iter().position(|l| l.g_inner.is_some())
    }

    /// Levels per real dimension.
    pub fn levels(&self) -> usize {
        self.modulation.levels_per_dim()
    }

    /// Inner steps per layer.
    pub fn inner(&self) -> usize {
        self.layers.first().map_or(0, |l| l.steps.len())
    }

    /// The SNR bin of complex noise variance `noise_var` (the rule of v1, docs/ir.md §3).
    pub fn bin_of(&self, noise_var: f32) -> usize {
        let signal = self.nt as f64 / self.nr as f64 * self.modulation.es();
        self.snr_bins.bin_of_noise(signal, noise_var)
    }

    /// The alphabet level of state code `code`.
    #[inline]
    pub fn decide(&self, code: i64) -> i32 {
        // #{t : code ≥ slicer[t]} of the ascending thresholds.
        let i = self.slicer.partition_point(|&t| t <= code) as i32;
        2 * i - (self.levels() as i32 - 1)
    }

    /// Checks every field; the error names the first offending one (docs/ir.md §10.5).
    pub fn validate(&self) -> Result<(), IrError> {
        if self.format != IR_FORMAT {
            return Err(IrError::Format(self.format.clone()));
        }
        if self.version != GRAM_IR_VERSION && self.version != GRAM_IR_VERSION_BIN_SHIFT {
            return Err(IrError::invalid(
                "version",
                format!(
                    "{} is not {GRAM_IR_VERSION} or {GRAM_IR_VERSION_BIN_SHIFT}",
                    self.version
                ),
            ));
        }
        check_dims(
            &self.name,
            self.nt,
            self.nr,
            self.m,
            self.n,
            self.modulation,
        )?;
        self.snr_bins
            .validate()
            .map_err(|e| IrError::invalid("snr_bins", e))?;
        let bins = self.snr_bins.count;
        check_fmt("inputs.h", &self.inputs.h, 2, 24)?;
        check_fmt("inputs.y", &self.inputs.y, 2, 24)?;
        check_fmt("state", &self.state, 2, 16)?;
        let b = &self.block;
        check_fmt("block.g", &b.g, 2, 32)?;
        for (field, r) in [
            ("block.inv_trace", &b.inv_trace),
            ("block.diag_inv", &b.diag_inv),
        ] {
            check_fmt(&format!("{field}.format"), &r.format, 2, 32)?;
            if r.format.width() != r.op.out_width() {
                return Err(IrError::invalid(
                    format!("{field}.format.width"),
                    format!(
                        "{} is not op.out_width = {}",
                        r.format.width(),
                        r.op.out_width()
                    ),
                ));
            }
            let want = r.op.shift() as i32 - b.g.frac();
            if r.format.frac() != want {
                return Err(IrError::invalid(
                    format!("{field}.format.frac"),
                    format!(
                        "{} is not op.shift − block.g.frac = {want}",
                        r.format.frac()
                    ),
                ));
            }
            if r.divisor == Divisor::Proved {
                // Every divisor (a sum of squares) can be 0: nothing proves d ≥ d_min ≥ 1.
                return Err(IrError::invalid(
                    format!("{field}.divisor"),
                    "\"proved\" does not hold: the divisor (a sum of rounded squares) can be 0; \
                     it must be \"clamped\"",
                ));
            }
        }
        self.front.validate(bins)?;
        check_layer_count(self.layers.len())?;
        let inner = self.inner();
        let tau2_frac = self.layers[0].formats.tau2.frac();
        let r_width = self.layers[0].formats.r.width();
        for (k, l) in self.layers.iter().enumerate() {
            let at = |f: &str| format!("layers[{k}].{f}");
            let f = &l.formats;
            check_fmt(&at("formats.e"), &f.e, 2, 24)?;
            check_fmt(&at("formats.p"), &f.p, 2, 24)?;
            check_fmt(&at("formats.d"), &f.d, 2, 24)?;
            check_fmt(&at("formats.r"), &f.r, 2, MAX_TABLE_INPUT_WIDTH)?;
            check_fmt(&at("formats.v2"), &f.v2, 2, 32)?;
            check_fmt(&at("formats.tau2"), &f.tau2, 2, 32)?;
            if f.tau2.frac() != tau2_frac {
                return Err(IrError::invalid(
                    at("formats.tau2.frac"),
                    format!(
                        "{} differs from layers[0]'s {tau2_frac} (one denoiser table)",
                        f.tau2.frac()
                    ),
                ));
            }
            if f.r.width() != r_width {
                return Err(IrError::invalid(
                    at("formats.r.width"),
                    format!(
                        "{} differs from layers[0]'s {r_width} (one denoiser table)",
                        f.r.width()
                    ),
                ));
            }
            if l.v2_floor < 0 || i128::from(l.v2_floor) > code_max(f.v2) {
                return Err(IrError::invalid(
                    at("v2_floor"),
                    format!("{} is not a non-negative code of formats.v2", l.v2_floor),
                ));
            }
            check_bins(&at("delta"), &l.delta, bins)?;
            check_bins(&at("ts"), &l.ts, bins)?;
            check_coef(&at("gamma"), &l.gamma)?;
            check_coef(&at("tv"), &l.tv)?;
            if l.steps.is_empty() || l.steps.len() > MAX_GRAM_INNER || l.steps.len() != inner {
                return Err(IrError::invalid(
                    at("steps"),
                    format!(
                        "{} steps: every layer needs the same 1..={MAX_GRAM_INNER} steps ({inner} in layers[0])",
                        l.steps.len()
                    ),
                ));
            }
            for (j, s) in l.steps.iter().enumerate() {
                check_coef(&at(&format!("steps[{j}].omega")), &s.omega)?;
                check_coef(&at(&format!("steps[{j}].beta")), &s.beta)?;
            }
            if let Some(gi) = l.g_inner {
                if !(2..b.g.width()).contains(&gi) {
                    return Err(IrError::invalid(
                        at("g_inner"),
                        format!(
                            "{gi} bits is outside 2..{} (block.g.width = {}; absent reads the \
                             full G)",
                            b.g.width(),
                            b.g.width()
                        ),
                    ));
                }
                check_frac(&at("g_inner"), l.inner_g(b.g).frac()).map_err(|_| {
                    IrError::invalid(
                        at("g_inner"),
                        format!(
                            "moves block.g.frac {} to {}, outside -64..=64",
                            b.g.frac(),
                            l.inner_g(b.g).frac()
                        ),
                    )
                })?;
            }
            if l.steps[0].beta.code != 0 {
                return Err(IrError::invalid(
                    at("steps[0].beta.code"),
                    "must be 0 (the first step has no previous direction)",
                ));
            }
            if let Some(s) = &l.bin_shift {
                if self.version != GRAM_IR_VERSION_BIN_SHIFT {
                    return Err(IrError::invalid(
                        at("bin_shift"),
                        format!(
                            "per-bin format shifts need version {GRAM_IR_VERSION_BIN_SHIFT} \
                             (this document is version {})",
                            self.version
                        ),
                    ));
                }
                for (name, v, q) in [("e", &s.e, f.e), ("p", &s.p, f.p), ("d", &s.d, f.d)] {
                    let field = at(&format!("bin_shift.{name}"));
                    if v.len() != bins {
                        return Err(IrError::invalid(
                            field,
                            format!("{} entries, snr_bins.count = {bins} needed", v.len()),
                        ));
                    }
                    for (i, &x) in v.iter().enumerate() {
                        if x.abs() > MAX_BIN_SHIFT {
                            return Err(IrError::invalid(
                                format!("{field}[{i}]"),
                                format!("{x} is outside ±{MAX_BIN_SHIFT}"),
                            ));
                        }
                        check_frac(&format!("{field}[{i}]"), q.frac() + x).map_err(|_| {
                            IrError::invalid(
                                format!("{field}[{i}]"),
                                format!(
                                    "shifts formats.{name}.frac {} to {}, outside -64..=64",
                                    q.frac(),
                                    q.frac() + x
                                ),
                            )
                        })?;
                    }
                }
            }
        }
        self.denoiser.validate(r_width, self.state)?;
        check_slicer(&self.slicer, self.levels())?;
        self.bounds().map(|_| ())
    }

    /// Interval analysis (docs/ir.md §10.4): the bound of every sum from the formats and the
    /// parameter values; an error names the first sum that cannot be kept below 2^62.
    ///
    /// With per-bin shifts (version 3) every distinct combination of the layers' shifts is
    /// analysed with its formats; each sum's bits are the largest over the bins and an error
    /// names the sum and the first bin that breaks it (`layers[2].steps[0].p (bin 7)`).
    pub fn bounds(&self) -> Result<SumBits, IrError> {
        if self.layers.iter().all(|l| l.bin_shift.is_none()) {
            return self.bounds_with(&|k| self.layers[k].formats);
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut out: Option<SumBits> = None;
        for bin in 0..self.snr_bins.count {
            let key: Vec<LayerFormats> = (0..self.layers.len())
                .map(|k| self.layers[k].formats_at(bin))
                .collect();
            let fracs: Vec<[i32; 3]> = key
                .iter()
                .map(|f| [f.e.frac(), f.p.frac(), f.d.frac()])
                .collect();
            if !seen.insert(fracs) {
                continue;
            }
            let b = self.bounds_with(&|k| key[k]).map_err(|e| match e {
                IrError::Invalid { field, reason } => IrError::Invalid {
                    field: format!("{field} (bin {bin})"),
                    reason,
                },
                e => e,
            })?;
            out = Some(match out {
                None => b,
                Some(mut o) => {
                    for ((_, a), (_, c)) in o.sums.iter_mut().zip(&b.sums) {
                        *a = (*a).max(*c);
                    }
                    o
                }
            });
        }
        Ok(out.unwrap_or_default())
    }

    /// [`GramIr::bounds`] with layer `k`'s formats `fmt(k)`.
    fn bounds_with(&self, fmt: &dyn Fn(usize) -> LayerFormats) -> Result<SumBits, IrError> {
        let mut out = SumBits::default();
        let (m, n) = (self.m as i128, self.n as i128);
        let hb = 1i128 << (self.inputs.h.width() - 1);
        let yb = 1i128 << (self.inputs.y.width() - 1);
        let (fh, fy) = (self.inputs.h.frac(), self.inputs.y.frac());
        let b = &self.block;
        let mut push =
            |name: String, terms: &[(i128, i32)], fmt: QFormat| out.push(name, terms, fmt);
        push("block.g".into(), &[(m * hb * hb, 2 * fh)], b.g)?;
        let gq = code_max(b.g);
        if bits(n * gq) > MAX_SUM_BITS {
            return Err(bound_err("block.inv_trace"));
        }
        push("front.z".into(), &[(m * hb * yb, fh + fy)], self.front.z)?;
        let noise = self
            .front
            .noise
            .iter()
            .map(|v| i128::from(*v).abs())
            .max()
            .unwrap_or(0);
        push(
            "front.yy".into(),
            &[(m * yb * yb, 2 * fy), (noise, self.front.yy.frac())],
            self.front.yy,
        )?;
        let xq = code_max(self.state);
        let xf = self.state.frac();
        let zq = code_max(self.front.z);
        let zf = self.front.z.frac();
        let yyq = code_max(self.front.yy);
        let it = &b.inv_trace.format;
        let df = &b.diag_inv.format;
        // A reciprocal's codes: within ±Q(width), except that a wrapping op can produce any
        // code of its width, −2^(w−1) included.
        let recip_max = |r: &Reciprocal| {
            let (lo, hi) = r.op.interval((1, 1), (0, i64::MAX));
            code_max(r.format)
                .max(i128::from(lo).abs())
                .max(i128::from(hi).abs())
        };
        let (itq, dq_inv) = (recip_max(&b.inv_trace), recip_max(&b.diag_inv));
        for (k, l) in self.layers.iter().enumerate() {
            let f = &fmt(k);
            let at = |s: &str| format!("layers[{k}].{s}");
            let eq = code_max(f.e);
            push(at("e"), &[(zq, zf), (n * gq * xq, b.g.frac() + xf)], f.e)?;
            // W = yy − xᵀz − xᵀe − noise, all at their own fracs; then W·(1/tr G).
            let w_terms = [
                (yyq, self.front.yy.frac()),
                (n * xq * zq, xf + zf),
                (n * xq * eq, xf + f.e.frac()),
                (noise, self.front.yy.frac()),
            ];
            let w = sum_bound(&w_terms, f.v2).map_err(|_| bound_err(&at("v2")))?;
            let wf = w_terms.iter().map(|t| t.1).fold(f.v2.frac(), i32::max);
            push(at("v2"), &[(w * itq, wf + it.frac())], f.v2)?;
            let dq = code_max(f.d);
            let pq = code_max(f.p);
            let gi = l.inner_g(b.g);
            let giq = code_max(gi);
            let delta = l
                .delta
                .codes
                .iter()
                .map(|v| i128::from(*v).abs())
                .max()
                .unwrap_or(0);
            for (j, s) in l.steps.iter().enumerate() {
                push(
                    at(&format!("steps[{j}].p")),
                    &[
                        (dq_inv * eq, df.frac() + f.e.frac()),
                        (i128::from(s.beta.code).abs() * pq, s.beta.frac + f.p.frac()),
                    ],
                    f.p,
                )?;
                push(
                    at(&format!("steps[{j}].d")),
                    &[
                        (dq, f.d.frac()),
                        (
                            i128::from(s.omega.code).abs() * pq,
                            s.omega.frac + f.p.frac(),
                        ),
                    ],
                    f.d,
                )?;
                push(
                    at(&format!("steps[{j}].rho")),
                    &[
                        (eq, f.e.frac()),
                        (n * giq * dq, gi.frac() + f.d.frac()),
                        (delta * dq, l.delta.frac + f.d.frac()),
                    ],
                    f.e,
                )?;
            }
            push(
                at("r"),
                &[
                    (xq, xf),
                    (
                        i128::from(l.gamma.code).abs() * dq,
                        l.gamma.frac + f.d.frac(),
                    ),
                ],
                f.r,
            )?;
            let ts =
                l.ts.codes
                    .iter()
                    .map(|v| i128::from(*v).abs())
                    .max()
                    .unwrap_or(0);
            push(
                at("tau2"),
                &[
                    (
                        i128::from(l.tv.code).abs() * code_max(f.v2),
                        l.tv.frac + f.v2.frac(),
                    ),
                    (ts, l.ts.frac),
                ],
                f.tau2,
            )?;
        }
        Ok(out)
    }
}

/// Overflow mode of every v2 requantization (the quantizer's symmetric saturation).
pub const GRAM_OVERFLOW: OverflowMode = OverflowMode::SaturateSymmetric;

/// A document of any version: v1 ([`crate::Ir`]), v2/v3 ([`GramIr`]), v4
/// ([`oamp::OampIr`]) or v5 ([`ep::EpIr`]).
#[derive(Debug, Clone, PartialEq)]
pub enum AnyIr {
    /// Version 1 (PGD-Net, ADMM-Net).
    V1(crate::Ir),
    /// Version 2 (the Gram-domain cg net).
    V2(GramIr),
    /// Version 4 (OAMP-Net2 with an LMMSE bank, docs/ir.md §11).
    Oamp(Box<oamp::OampIr>),
    /// Version 5 (EPNet with a per-vector LDLᵀ inverse, docs/ir.md §12).
    Ep(Box<ep::EpIr>),
}

impl AnyIr {
    /// Parses a document of either version by its `version` field: 1 goes through
    /// [`crate::Ir::from_json`] unchanged, 2 through [`GramIr::from_json`].
    pub fn from_json(text: &str, path: &str) -> Result<Self, IrError> {
        #[derive(Deserialize)]
        struct Head {
            format: Option<serde_json::Value>,
            version: Option<serde_json::Value>,
        }
        // A text that is not an object with these fields gets v1's messages (e.g. "the top
        // level must be a JSON object"), which name the problem better than a Head error.
        let Ok(head) = serde_json::from_str::<Head>(text) else {
            return crate::Ir::from_json(text, path).map(Self::V1);
        };
        let is_kaq = matches!(&head.format, Some(serde_json::Value::String(f)) if f == IR_FORMAT);
        let version = head.version.as_ref().and_then(|v| v.as_u64());
        if is_kaq
            && (version == Some(u64::from(GRAM_IR_VERSION))
                || version == Some(u64::from(GRAM_IR_VERSION_BIN_SHIFT)))
        {
            return GramIr::from_json(text, path).map(Self::V2);
        }
        if is_kaq && version == Some(u64::from(oamp::OAMP_IR_VERSION)) {
            return oamp::OampIr::from_json(text, path).map(|ir| Self::Oamp(Box::new(ir)));
        }
        if is_kaq && version == Some(u64::from(ep::EP_IR_VERSION)) {
            return ep::EpIr::from_json(text, path).map(|ir| Self::Ep(Box::new(ir)));
        }
        crate::Ir::from_json(text, path).map(Self::V1)
    }

    /// Reads a document of either version.
    pub fn load(path: &std::path::Path) -> Result<Self, IrError> {
        let text = kaq_files::read_text(path, kaq_files::INPUT_LIMIT)?;
        Self::from_json(&text, &path.display().to_string())
    }
}
