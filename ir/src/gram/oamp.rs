//! IR version 4: OAMP-Net2 with a per-block LMMSE bank (`family: "oamp"`, docs/ir.md §11).
//!
//! * [`OampIr`]: the document, loaded with unknown fields refused and validated field by
//!   field ([`OampIr::validate`]); every error names the offending field by its JSON path.
//! * [`OampInterpreter`]: the integer golden model, batched over the vectors of a channel
//!   block: per block G, 1/tr G and for every bank entry j the integer LDLᵀ inverse
//!   Q_j = (G + δ_j I)⁻¹ with its scalars α_j, a_j, b_j; per vector the K layers.
//!
//! Guarantees: a validated [`OampIr`] cannot make the interpreter panic or overflow — every
//! sum's bound is computed by interval analysis ([`OampIr::bounds`]) and must stay below 2^62.

use serde::{Deserialize, Serialize};

use super::interp::{block_parts, check_block_codes};
use super::{
    Coef, MAX_SUM_BITS, MAX_TABLE_INPUT_WIDTH, Reciprocal, SumBits, VectorFront, bits, bound_err,
    check_code, check_coef, check_dims, check_fmt, code_max, combine, sum_bound,
};
use crate::document::{IR_FORMAT, IrError};
use crate::fixed::{QFormat, max_code};
use crate::interp::{Received, front_end};
use crate::modulation::Modulation;
use crate::vocab::SnrBins;

/// The version of an OAMP IR document.
pub const OAMP_IR_VERSION: u32 = 4;
/// Largest number of bank entries.
pub const MAX_BANK: usize = 16;

/// The family of a version-4 document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OampFamily {
    /// OAMP-Net2 with an LMMSE bank.
    Oamp,
}

/// The LMMSE bank of the block stage: its regularizers, the formats of the integer LDLᵀ
/// inverse and of the per-entry scalars, and the selection thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bank {
    /// `delta[j][bin]`: δ_j of each SNR bin, a code at `block.g`'s frac (≥ 1).
    pub delta: Vec<Vec<i64>>,
    /// `prior[j]` = E_s/8^j = s2/δ_j, the constant of b_j.
    pub prior: Vec<Coef>,
    /// E = L·D (the unnormalized columns of L) and the pivots d.
    pub ld: QFormat,
    /// ι_k = 1/d_k (divisor d_k at `ld`'s frac).
    pub pivot_inv: Reciprocal,
    /// The strict lower triangle of L.
    pub l: QFormat,
    /// W = L⁻¹ (unit lower triangular; its diagonal is the code 2^frac).
    pub w: QFormat,
    /// V = D⁻¹W.
    pub v: QFormat,
    /// The entries of Q_j = WᵀV (what the per-vector layers read).
    pub q: QFormat,
    /// P = δ_j Q_j.
    pub p: QFormat,
    /// 1/c with c = N − tr P (divisor at `p`'s frac).
    pub c_inv: Reciprocal,
    /// α_j = N/c.
    pub alpha: QFormat,
    /// σ_j = S/c ∈ [0, 1] (frac ≥ 0).
    pub sigma: QFormat,
    /// a_j = α_j(1 − σ_j) = α_j²F_j/N.
    pub a: QFormat,
    /// b_j = prior_j·α_j·σ_j = s2·α_j²T_j/N.
    pub b: QFormat,
    /// `J − 1` v² codes (at the layers' common v2 frac), non-increasing:
    /// `j = #{t : v² < thresholds[t]}`.
    pub thresholds: Vec<i64>,
}

/// The per-channel-block stage: G, 1/tr G and the bank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OampBlock {
    /// Format of G's entries.
    pub g: QFormat,
    /// 1/tr G (divisor tr G at G's frac).
    pub inv_trace: Reciprocal,
    /// The LMMSE bank.
    pub bank: Bank,
}

/// Formats of one layer's tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OampFormats {
    /// e = z − Gx.
    pub e: QFormat,
    /// g = Q_j e.
    pub g: QFormat,
    /// The denoiser input r (its width addresses the table).
    pub r: QFormat,
    /// v² (the same frac in every layer: the bank thresholds compare it).
    pub v2: QFormat,
    /// τ² (the same frac in every layer: one denoiser table).
    pub tau2: QFormat,
}

/// One OAMP layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OampLayer {
    /// The layer's formats.
    pub formats: OampFormats,
    /// Floor of v² (a code at `formats.v2`, ≥ 0).
    pub v2_floor: i64,
    /// γ_k of r = x + γ_k α_j g.
    pub gamma: Coef,
    /// 1 − 2θ_k.
    pub c0: Coef,
    /// θ_k².
    pub c1: Coef,
    /// φ_k.
    pub phi: Coef,
    /// φ_k ξ_k.
    pub phi_xi: Coef,
}

/// The IR v4 document of an OAMP-Net2 (docs/ir.md §11).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OampIr {
    /// Always `kaq-ir`.
    pub format: String,
    /// Always [`OAMP_IR_VERSION`].
    pub version: u32,
    /// The source model's name.
    pub name: String,
    /// Always `oamp`.
    pub family: OampFamily,
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
    /// Format of every state code x and of the denoiser's table entries.
    pub state: QFormat,
    /// The per-channel-block stage.
    pub block: OampBlock,
    /// z, ‖y‖², the noise power.
    pub front: VectorFront,
    /// The layers.
    pub layers: Vec<OampLayer>,
    /// The denoiser table (as v2's).
    pub denoiser: super::Denoiser,
    /// The L − 1 ascending state-code thresholds of the slicer.
    pub slicer: Vec<i64>,
}

pub(super) fn check_recip(field: &str, r: &Reciprocal, divisor: QFormat) -> Result<(), IrError> {
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
    let want = r.op.shift() as i32 - divisor.frac();
    if r.format.frac() != want {
        return Err(IrError::invalid(
            format!("{field}.format.frac"),
            format!(
                "{} is not op.shift − the divisor's frac = {want}",
                r.format.frac()
            ),
        ));
    }
    if r.divisor == super::Divisor::Proved {
        return Err(IrError::invalid(
            format!("{field}.divisor"),
            "\"proved\" does not hold: the rounded divisor can reach 0 (docs/ir.md §11.4); \
             it must be \"clamped\"",
        ));
    }
    Ok(())
}

pub(super) fn abs_max(v: impl IntoIterator<Item = i64>) -> i128 {
    v.into_iter()
        .map(|c| i128::from(c).abs())
        .max()
        .unwrap_or(0)
}

fn coef_abs(c: &Coef) -> i128 {
    i128::from(c.code).abs()
}

impl OampIr {
    /// Parses and validates a v4 document; `path` names it in errors.
    pub fn from_json(text: &str, path: &str) -> Result<Self, IrError> {
        let ir: OampIr = serde_json::from_str(text).map_err(|e| IrError::parse(text, path, e))?;
        ir.validate()?;
        Ok(ir)
    }

    /// The canonical JSON text (pretty, trailing newline).
    pub fn to_json(&self) -> String {
        crate::document::canonical_json(self)
    }

    /// Entries of the bank.
    pub fn bank_len(&self) -> usize {
        self.block.bank.delta.len()
    }

    /// Levels per real dimension.
    pub fn levels(&self) -> usize {
        self.modulation.levels_per_dim()
    }

    /// The SNR bin of complex noise variance `noise_var` (the rule of v1, docs/ir.md §3).
    pub fn bin_of(&self, noise_var: f32) -> usize {
        let signal = self.nt as f64 / self.nr as f64 * self.modulation.es();
        self.snr_bins.bin_of_noise(signal, noise_var)
    }

    /// The alphabet level of state code `code`.
    #[inline]
    pub fn decide(&self, code: i64) -> i32 {
        let i = self.slicer.partition_point(|&t| t <= code) as i32;
        2 * i - (self.levels() as i32 - 1)
    }

    /// The bank entry of v² code `v2`: `#{t : v2 < thresholds[t]}`.
    #[inline]
    pub fn select(&self, v2: i64) -> usize {
        self.block
            .bank
            .thresholds
            .iter()
            .filter(|&&t| v2 < t)
            .count()
    }

    /// Checks every field; the error names the first offending one (docs/ir.md §11.5).
    pub fn validate(&self) -> Result<(), IrError> {
        if self.format != IR_FORMAT {
            return Err(IrError::Format(self.format.clone()));
        }
        if self.version != OAMP_IR_VERSION {
            return Err(IrError::invalid(
                "version",
                format!("{} is not {OAMP_IR_VERSION} (family oamp)", self.version),
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
        check_recip("block.inv_trace", &b.inv_trace, b.g)?;
        let k = &b.bank;
        let j_n = k.delta.len();
        if !(1..=MAX_BANK).contains(&j_n) {
            return Err(IrError::invalid(
                "block.bank.delta",
                format!("{j_n} entries is outside 1..={MAX_BANK}"),
            ));
        }
        let gq = code_max(b.g);
        for (j, d) in k.delta.iter().enumerate() {
            if d.len() != bins {
                return Err(IrError::invalid(
                    format!("block.bank.delta[{j}]"),
                    format!("{} entries, snr_bins.count = {bins} needed", d.len()),
                ));
            }
            for (i, &c) in d.iter().enumerate() {
                if c < 1 || i128::from(c) > gq {
                    return Err(IrError::invalid(
                        format!("block.bank.delta[{j}][{i}]"),
                        format!("{c} is not a code 1..=Q(block.g) = {gq} (δ > 0)"),
                    ));
                }
            }
        }
        if k.prior.len() != j_n {
            return Err(IrError::invalid(
                "block.bank.prior",
                format!("{} entries, {j_n} bank entries", k.prior.len()),
            ));
        }
        for (j, c) in k.prior.iter().enumerate() {
            check_coef(&format!("block.bank.prior[{j}]"), c)?;
        }
        for (name, f) in [
            ("ld", &k.ld),
            ("l", &k.l),
            ("w", &k.w),
            ("v", &k.v),
            ("q", &k.q),
            ("p", &k.p),
            ("alpha", &k.alpha),
            ("sigma", &k.sigma),
            ("a", &k.a),
            ("b", &k.b),
        ] {
            check_fmt(&format!("block.bank.{name}"), f, 2, 32)?;
        }
        if k.w.frac() < 0 || k.w.frac() as u32 > k.w.width() - 2 {
            return Err(IrError::invalid(
                "block.bank.w.frac",
                format!(
                    "{} is outside 0..={}: W's unit diagonal 2^frac must be a code",
                    k.w.frac(),
                    k.w.width() - 2
                ),
            ));
        }
        if k.p.frac() < 0 {
            return Err(IrError::invalid(
                "block.bank.p.frac",
                format!(
                    "{} is negative: c = N·2^frac − tr P needs frac ≥ 0",
                    k.p.frac()
                ),
            ));
        }
        if !(0..=32).contains(&k.sigma.frac()) {
            return Err(IrError::invalid(
                "block.bank.sigma.frac",
                format!(
                    "{} is outside 0..=32: 1 − σ needs the code 2^frac",
                    k.sigma.frac()
                ),
            ));
        }
        check_recip("block.bank.pivot_inv", &k.pivot_inv, k.ld)?;
        check_recip("block.bank.c_inv", &k.c_inv, k.p)?;
        if k.thresholds.len() + 1 != j_n {
            return Err(IrError::invalid(
                "block.bank.thresholds",
                format!(
                    "{} entries, bank entries − 1 = {} needed",
                    k.thresholds.len(),
                    j_n - 1
                ),
            ));
        }
        for (i, &t) in k.thresholds.iter().enumerate() {
            check_code(&format!("block.bank.thresholds[{i}]"), t)?;
            if i > 0 && t > k.thresholds[i - 1] {
                return Err(IrError::invalid(
                    format!("block.bank.thresholds[{i}]"),
                    "not non-increasing",
                ));
            }
        }
        self.front.validate(bins)?;
        super::check_layer_count(self.layers.len())?;
        let tau2_frac = self.layers[0].formats.tau2.frac();
        let v2_frac = self.layers[0].formats.v2.frac();
        let r_width = self.layers[0].formats.r.width();
        for (k, l) in self.layers.iter().enumerate() {
            let at = |f: &str| format!("layers[{k}].{f}");
            let f = &l.formats;
            check_fmt(&at("formats.e"), &f.e, 2, 24)?;
            check_fmt(&at("formats.g"), &f.g, 2, 24)?;
            check_fmt(&at("formats.r"), &f.r, 2, MAX_TABLE_INPUT_WIDTH)?;
            check_fmt(&at("formats.v2"), &f.v2, 2, 32)?;
            check_fmt(&at("formats.tau2"), &f.tau2, 2, 32)?;
            for (name, fr, want) in [
                ("formats.tau2.frac", f.tau2.frac(), tau2_frac),
                ("formats.v2.frac", f.v2.frac(), v2_frac),
            ] {
                if fr != want {
                    return Err(IrError::invalid(
                        at(name),
                        format!("{fr} differs from layers[0]'s {want} (shared thresholds)"),
                    ));
                }
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
            for (name, c) in [
                ("gamma", &l.gamma),
                ("c0", &l.c0),
                ("c1", &l.c1),
                ("phi", &l.phi),
                ("phi_xi", &l.phi_xi),
            ] {
                check_coef(&at(name), c)?;
            }
        }
        self.denoiser.validate(r_width, self.state)?;
        super::check_slicer(&self.slicer, self.levels())?;
        self.bounds().map(|_| ())
    }

    /// Interval analysis (docs/ir.md §11.4): the bound of every sum from the formats and the
    /// constants; an error names the first sum that cannot be kept below 2^62.
    pub fn bounds(&self) -> Result<SumBits, IrError> {
        let mut out = SumBits::default();
        let (m, n) = (self.m as i128, self.n as i128);
        let hb = 1i128 << (self.inputs.h.width() - 1);
        let yb = 1i128 << (self.inputs.y.width() - 1);
        let (fh, fy) = (self.inputs.h.frac(), self.inputs.y.frac());
        let b = &self.block;
        let k = &b.bank;
        let mut push =
            |name: String, terms: &[(i128, i32)], fmt: QFormat| out.push(name, terms, fmt);
        push("block.g".into(), &[(m * hb * hb, 2 * fh)], b.g)?;
        let gq = code_max(b.g);
        if bits(n * gq) > MAX_SUM_BITS {
            return Err(bound_err("block.inv_trace"));
        }
        let recip_max = |r: &Reciprocal| {
            let (lo, hi) = r.op.interval((1, 1), (0, i64::MAX));
            code_max(r.format)
                .max(i128::from(lo).abs())
                .max(i128::from(hi).abs())
        };
        let delta = abs_max(k.delta.iter().flatten().copied());
        let (ldq, lq, wq, vq, qq, pq) = (
            code_max(k.ld),
            code_max(k.l),
            code_max(k.w),
            code_max(k.v),
            code_max(k.q),
            code_max(k.p),
        );
        let (gf, ldf, lf, wf, vf, qf, pf) = (
            b.g.frac(),
            k.ld.frac(),
            k.l.frac(),
            k.w.frac(),
            k.v.frac(),
            k.q.frac(),
            k.p.frac(),
        );
        let piq = recip_max(&k.pivot_inv);
        let ciq = recip_max(&k.c_inv);
        let (pif, cif) = (k.pivot_inv.format.frac(), k.c_inv.format.frac());
        // A = G + δI at G's frac: |A| ≤ Q(G) + δ.
        push(
            "block.bank.ld".into(),
            &[(gq + delta, gf), (n * ldq * lq, ldf + lf)],
            k.ld,
        )?;
        push("block.bank.l".into(), &[(ldq * piq, ldf + pif)], k.l)?;
        // W's sum holds the unit diagonal 2^w.frac ≤ Q(w).
        push("block.bank.w".into(), &[(n * lq * wq, lf + wf)], k.w)?;
        push("block.bank.v".into(), &[(piq * wq, pif + wf)], k.v)?;
        push("block.bank.q".into(), &[(n * wq * vq, wf + vf)], k.q)?;
        push("block.bank.p".into(), &[(delta * qq, gf + qf)], k.p)?;
        // tP ≤ N·Q(p), sP ≤ N²·Q(p)², c = N·2^pf − tP, S = tP − sP.
        let tp = n * pq;
        let sp = n * n * pq * pq;
        push("block.bank.s".into(), &[(tp, pf), (sp, 2 * pf)], k.p)?;
        let c = (n << pf) + tp;
        if bits(c) > MAX_SUM_BITS {
            return Err(bound_err("block.bank.c"));
        }
        push("block.bank.alpha".into(), &[(n * ciq, cif)], k.alpha)?;
        push("block.bank.sigma".into(), &[(pq * ciq, pf + cif)], k.sigma)?;
        let (alq, sq) = (code_max(k.alpha), code_max(k.sigma));
        push(
            "block.bank.a".into(),
            &[(
                alq * ((1i128 << k.sigma.frac()) + sq),
                k.alpha.frac() + k.sigma.frac(),
            )],
            k.a,
        )?;
        for (j, pr) in k.prior.iter().enumerate() {
            push(
                format!("block.bank.b[{j}]"),
                &[(
                    coef_abs(pr) * alq * sq,
                    pr.frac + k.alpha.frac() + k.sigma.frac(),
                )],
                k.b,
            )?;
        }
        push("front.z".into(), &[(m * hb * yb, fh + fy)], self.front.z)?;
        let noise = abs_max(self.front.noise.iter().copied());
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
        let itq = recip_max(&b.inv_trace);
        let itf = b.inv_trace.format.frac();
        let (alq, aq, bq) = (code_max(k.alpha), code_max(k.a), code_max(k.b));
        for (kk, l) in self.layers.iter().enumerate() {
            let f = &l.formats;
            let at = |s: &str| format!("layers[{kk}].{s}");
            let eq = code_max(f.e);
            push(at("e"), &[(zq, zf), (n * gq * xq, gf + xf)], f.e)?;
            let w_terms = [
                (yyq, self.front.yy.frac()),
                (n * xq * zq, xf + zf),
                (n * xq * eq, xf + f.e.frac()),
                (noise, self.front.yy.frac()),
            ];
            let w = sum_bound(&w_terms, f.v2).map_err(|_| bound_err(&at("v2")))?;
            let wfr = w_terms.iter().map(|t| t.1).fold(f.v2.frac(), i32::max);
            push(at("v2"), &[(w * itq, wfr + itf)], f.v2)?;
            push(at("g"), &[(n * qq * eq, qf + f.e.frac())], f.g)?;
            let gg = code_max(f.g);
            push(
                at("r"),
                &[
                    (xq, xf),
                    (
                        coef_abs(&l.gamma) * alq * gg,
                        l.gamma.frac + k.alpha.frac() + f.g.frac(),
                    ),
                ],
                f.r,
            )?;
            let v2q = code_max(f.v2);
            push(
                at("tau2"),
                &[
                    (coef_abs(&l.c0) * v2q, l.c0.frac + f.v2.frac()),
                    (
                        coef_abs(&l.c1) * aq * v2q,
                        l.c1.frac + k.a.frac() + f.v2.frac(),
                    ),
                    (coef_abs(&l.c1) * bq, l.c1.frac + k.b.frac()),
                ],
                f.tau2,
            )?;
            push(
                at("x"),
                &[
                    (coef_abs(&l.phi) * xq, l.phi.frac + xf),
                    (
                        coef_abs(&l.phi_xi) * code_max(f.r),
                        l.phi_xi.frac + f.r.frac(),
                    ),
                ],
                self.state,
            )?;
        }
        Ok(out)
    }
}

/// One bank entry of a block, as codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BankTaps {
    /// The pivots d_k (at `ld`).
    pub pivots: Vec<i64>,
    /// ι_k = 1/d_k.
    pub pivot_inv: Vec<i64>,
    /// L (strict lower triangle; N×N row-major, zeros elsewhere).
    pub l: Vec<i64>,
    /// W = L⁻¹ (N×N row-major, diagonal 2^w.frac).
    pub w: Vec<i64>,
    /// Q_j (N×N row-major, symmetric).
    pub q: Vec<i64>,
    /// c = N·2^p.frac − tr P.
    pub c: i64,
    /// S = tr P − ‖P‖²_F at p.
    pub s: i64,
    /// 1/c.
    pub c_inv: i64,
    /// σ_j = S/c.
    pub sigma: i64,
    /// α_j, a_j, b_j.
    pub alpha: i64,
    /// a_j.
    pub a: i64,
    /// b_j.
    pub b: i64,
}

/// The block stage's codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OampBlockTaps {
    /// G (N×N row-major).
    pub g: Vec<i64>,
    /// tr G at G's frac.
    pub trace: i64,
    /// 1/tr G.
    pub inv_trace: i64,
    /// Every bank entry.
    pub bank: Vec<BankTaps>,
}

/// One layer's codes for one vector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OampLayerTaps {
    /// e = z − Gx.
    pub e: Vec<i64>,
    /// v².
    pub v2: i64,
    /// The bank entry.
    pub j: usize,
    /// g = Q_j e.
    pub g: Vec<i64>,
    /// r.
    pub r: Vec<i64>,
    /// τ².
    pub tau2: i64,
    /// The denoiser bucket.
    pub bucket: usize,
    /// x after the layer.
    pub x: Vec<i64>,
}

/// One vector's codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OampVectorTaps {
    /// z = H̃ᵀỹ.
    pub z: Vec<i64>,
    /// ‖ỹ‖².
    pub yy: i64,
    /// Every layer.
    pub layers: Vec<OampLayerTaps>,
    /// The decisions (alphabet levels).
    pub levels: Vec<i32>,
}

/// The golden model of a version-4 document.
#[derive(Debug, Clone)]
pub struct OampInterpreter {
    ir: OampIr,
    h_step: f32,
    h_qp: f32,
    y_step: f32,
    y_qp: f32,
}

/// Scratch and per-block state of one worker (allocated once).
#[derive(Debug, Clone)]
struct Work {
    g: Vec<i64>,
    /// Bank: J × N × N entries of Q, and per entry α, a, b.
    q: Vec<i64>,
    alpha: Vec<i64>,
    a: Vec<i64>,
    b: Vec<i64>,
    inv_trace: i64,
    bin: usize,
    // Inverse scratch.
    e: Vec<i64>,
    l: Vec<i64>,
    w: Vec<i64>,
    v: Vec<i64>,
    piv: Vec<i64>,
    pinv: Vec<i64>,
    // Per vector.
    z: Vec<i64>,
    x: Vec<i64>,
    ev: Vec<i64>,
    gv: Vec<i64>,
    r: Vec<i64>,
    yy: i64,
}

impl Work {
    fn new(n: usize, jn: usize) -> Self {
        let v = |len| vec![0i64; len];
        Self {
            g: v(n * n),
            q: v(jn * n * n),
            alpha: v(jn),
            a: v(jn),
            b: v(jn),
            inv_trace: 0,
            bin: 0,
            e: v(n * n),
            l: v(n * n),
            w: v(n * n),
            v: v(n * n),
            piv: v(n),
            pinv: v(n),
            z: v(n),
            x: v(n),
            ev: v(n),
            gv: v(n),
            r: v(n),
            yy: 0,
        }
    }
}

#[inline]
pub(super) fn t(v: i64) -> i128 {
    i128::from(v)
}

/// [`combine`] with a debug-build check that the aligned sum stays below 2^62, the bound the
/// interval analysis proves (docs/ir.md §11.4).
#[inline]
pub(super) fn comb(terms: &[(i128, i32)], out: QFormat) -> i64 {
    #[cfg(debug_assertions)]
    {
        let f = terms.iter().map(|t| t.1).fold(out.frac(), i32::max);
        let aligned: i128 = terms
            .iter()
            .map(|&(v, fr)| (v << ((f - fr) as u32)).abs())
            .sum();
        debug_assert!(
            aligned < 1i128 << MAX_SUM_BITS,
            "an accumulator reached 2^{} (bound 2^{MAX_SUM_BITS})",
            bits(aligned)
        );
    }
    combine(terms, out)
}

/// Debug-build check that a value stays within its declared code range.
#[inline]
pub(super) fn within(v: i64, f: QFormat) {
    debug_assert!(
        i128::from(v).abs() <= code_max(f),
        "{v} outside the {}-bit format",
        f.width()
    );
}

/// Formats and pivot reciprocal of the integer LDLᵀ inverse chain of docs/ir.md §11.3 (shared
/// by the oamp bank and any family that inverts an SPD matrix held at `a_frac`).
pub(crate) struct LdlChain<'a> {
    pub a_frac: i32,
    pub ld: QFormat,
    pub l: QFormat,
    pub w: QFormat,
    pub v: QFormat,
    pub q: QFormat,
    pub pivot_inv: &'a Reciprocal,
}

/// Scratch of [`ldl_inverse`], each `n × n` (`piv`, `pinv`: `n`); after the call `piv`, `pinv`,
/// `l` and `w` hold the pivots, their reciprocals, L and W = L⁻¹ (for taps).
pub(crate) struct LdlScratch<'a> {
    pub e: &'a mut [i64],
    pub l: &'a mut [i64],
    pub w: &'a mut [i64],
    pub v: &'a mut [i64],
    pub piv: &'a mut [i64],
    pub pinv: &'a mut [i64],
}

/// Q ≈ A⁻¹ (codes at `chain.q`) of the symmetric `n × n` matrix A whose entry (i, c), i ≥ c, is
/// `a(i, c)` at `chain.a_frac`, by docs/ir.md §11.3: LDLᵀ column by column with the named
/// clamped reciprocal of each pivot, W = L⁻¹, V = D⁻¹W, Q = WᵀV.
pub(crate) fn ldl_inverse(
    n: usize,
    a: impl Fn(usize, usize) -> i64,
    chain: &LdlChain<'_>,
    s: LdlScratch<'_>,
    q: &mut [i64],
) {
    let (gf, ldf, lf, wf, vf) = (
        chain.a_frac,
        chain.ld.frac(),
        chain.l.frac(),
        chain.w.frac(),
        chain.v.frac(),
    );
    let pif = chain.pivot_inv.format.frac();
    let one_w = 1i64 << wf;
    // LDLᵀ: E_ic = A_ic − Σ_{k<c} E_ik L_ck (i ≥ c), d_c = E_cc, ι_c = 1/d_c, L_ic = E_ic ι_c.
    s.l.fill(0);
    for c in 0..n {
        for i in c..n {
            let mut acc = 0i128;
            for kk in 0..c {
                acc += t(s.e[i * n + kk]) * t(s.l[c * n + kk]);
            }
            let v = comb(&[(t(a(i, c)), gf), (-acc, ldf + lf)], chain.ld);
            within(v, chain.ld);
            s.e[i * n + c] = v;
        }
        s.piv[c] = s.e[c * n + c];
        s.pinv[c] = chain.pivot_inv.op.apply(1, s.piv[c]);
        for i in c + 1..n {
            s.l[i * n + c] = comb(&[(t(s.e[i * n + c]) * t(s.pinv[c]), ldf + pif)], chain.l);
        }
    }
    // W = L⁻¹: W_cc = 2^wf, W_ic = −Σ_{k=c}^{i−1} L_ik W_kc.
    s.w.fill(0);
    for c in 0..n {
        s.w[c * n + c] = one_w;
        for i in c + 1..n {
            let mut acc = 0i128;
            for kk in c..i {
                acc += t(s.l[i * n + kk]) * t(s.w[kk * n + c]);
            }
            s.w[i * n + c] = comb(&[(-acc, lf + wf)], chain.w);
        }
    }
    // V = D⁻¹W, Q = WᵀV (symmetric: Q_ij for i ≥ j, mirrored).
    for r in 0..n {
        for c in 0..=r {
            s.v[r * n + c] = comb(&[(t(s.pinv[r]) * t(s.w[r * n + c]), pif + wf)], chain.v);
        }
    }
    for i in 0..n {
        for j in 0..=i {
            let mut acc = 0i128;
            for kk in i..n {
                acc += t(s.w[kk * n + i]) * t(s.v[kk * n + j]);
            }
            let v = comb(&[(acc, wf + vf)], chain.q);
            q[i * n + j] = v;
            q[j * n + i] = v;
        }
    }
}

impl OampInterpreter {
    /// Validates `ir` and builds its golden model.
    pub fn new(ir: OampIr) -> Result<Self, IrError> {
        ir.validate()?;
        let step = |f: QFormat| 2f32.powi(-f.frac());
        Ok(Self {
            h_step: step(ir.inputs.h),
            h_qp: max_code(ir.inputs.h.width()) as f32,
            y_step: step(ir.inputs.y),
            y_qp: max_code(ir.inputs.y.width()) as f32,
            ir,
        })
    }

    /// The IR.
    pub fn ir(&self) -> &OampIr {
        &self.ir
    }

    /// The front end's code of one real value of H̃.
    pub fn quantize_h(&self, v: f32) -> i64 {
        front_end(v, self.h_step, self.h_qp)
    }

    /// The front end's code of one real value of ỹ.
    pub fn quantize_y(&self, v: f32) -> i64 {
        front_end(v, self.y_step, self.y_qp)
    }

    /// The block stage of channel codes `h` in SNR bin `bin` (docs/ir.md §11.3).
    fn block(&self, h: &[i64], bin: usize, w: &mut Work, mut taps: Option<&mut OampBlockTaps>) {
        let ir = &self.ir;
        let (m, n) = (ir.m, ir.n);
        let b = &ir.block;
        let k = &b.bank;
        let two_h = 2 * ir.inputs.h.frac();
        for i in 0..n {
            for j in i..n {
                let mut s = 0i128;
                for r in 0..m {
                    s += t(h[r * n + i]) * t(h[r * n + j]);
                }
                let c = comb(&[(s, two_h)], b.g);
                w.g[i * n + j] = c;
                w.g[j * n + i] = c;
            }
        }
        let trace: i64 = (0..n).map(|i| w.g[i * n + i]).sum();
        w.inv_trace = b.inv_trace.op.apply(1, trace);
        w.bin = bin;
        let gf = b.g.frac();
        let (qf, pf) = (k.q.frac(), k.p.frac());
        let cif = k.c_inv.format.frac();
        if let Some(tp) = taps.as_deref_mut() {
            tp.g = w.g.clone();
            tp.trace = trace;
            tp.inv_trace = w.inv_trace;
            tp.bank.clear();
        }
        for jb in 0..k.delta.len() {
            let delta = k.delta[jb][bin];
            let chain = LdlChain {
                a_frac: gf,
                ld: k.ld,
                l: k.l,
                w: k.w,
                v: k.v,
                q: k.q,
                pivot_inv: &k.pivot_inv,
            };
            let q = &mut w.q[jb * n * n..(jb + 1) * n * n];
            let scratch = LdlScratch {
                e: &mut w.e,
                l: &mut w.l,
                w: &mut w.w,
                v: &mut w.v,
                piv: &mut w.piv,
                pinv: &mut w.pinv,
            };
            let g = &w.g;
            ldl_inverse(
                n,
                |i, c| g[i * n + c] + if i == c { delta } else { 0 },
                &chain,
                scratch,
                q,
            );
            // P = δQ, tr P, ‖P‖²_F, c, S, 1/c, α, a, b.
            let (mut tp, mut sp) = (0i128, 0i128);
            for i in 0..n {
                for j in 0..n {
                    let p = comb(&[(t(delta) * t(q[i * n + j]), gf + qf)], k.p);
                    if i == j {
                        tp += t(p);
                    }
                    sp += t(p) * t(p);
                }
            }
            let c = ((n as i128) << pf) - tp;
            let s = comb(&[(tp, pf), (-sp, 2 * pf)], k.p);
            let ci = k.c_inv.op.apply(1, c as i64);
            let nn = n as i128;
            let al = comb(&[(nn * t(ci), cif)], k.alpha);
            let sigma = comb(&[(t(s) * t(ci), pf + cif)], k.sigma);
            let (alf, sf) = (k.alpha.frac(), k.sigma.frac());
            w.alpha[jb] = al;
            w.a[jb] = comb(&[(t(al) * ((1i128 << sf) - t(sigma)), alf + sf)], k.a);
            let pr = k.prior[jb];
            w.b[jb] = comb(&[(t(pr.code) * t(al) * t(sigma), pr.frac + alf + sf)], k.b);
            if let Some(tp) = taps.as_deref_mut() {
                tp.bank.push(BankTaps {
                    pivots: w.piv.clone(),
                    pivot_inv: w.pinv.clone(),
                    l: w.l.clone(),
                    w: w.w.clone(),
                    q: q.to_vec(),
                    c: c as i64,
                    s,
                    c_inv: ci,
                    sigma,
                    alpha: w.alpha[jb],
                    a: w.a[jb],
                    b: w.b[jb],
                });
            }
        }
    }

    /// The K layers of one vector ỹ (codes) of the current block; the output is in `w.x`.
    fn vector(&self, h: &[i64], y: &[i64], w: &mut Work, mut taps: Option<&mut OampVectorTaps>) {
        let ir = &self.ir;
        let (m, n) = (ir.m, ir.n);
        let b = &ir.block;
        let k = &b.bank;
        let bin = w.bin;
        let (fh, fy) = (ir.inputs.h.frac(), ir.inputs.y.frac());
        for j in 0..n {
            let mut s = 0i128;
            for r in 0..m {
                s += t(h[r * n + j]) * t(y[r]);
            }
            w.z[j] = comb(&[(s, fh + fy)], ir.front.z);
        }
        let yy_s: i128 = y.iter().map(|&v| t(v) * t(v)).sum();
        w.yy = comb(&[(yy_s, 2 * fy)], ir.front.yy);
        w.x.fill(0);
        let (gf, xf, zf, yyf) = (
            b.g.frac(),
            ir.state.frac(),
            ir.front.z.frac(),
            ir.front.yy.frac(),
        );
        let noise = ir.front.noise[bin];
        let itf = b.inv_trace.format.frac();
        let half = 1i64 << (ir.layers[0].formats.r.width() - 1);
        if let Some(tv) = taps.as_deref_mut() {
            tv.z = w.z.clone();
            tv.yy = w.yy;
            tv.layers.clear();
        }
        for l in &ir.layers {
            let f = &l.formats;
            let ef = f.e.frac();
            for i in 0..n {
                let mut s = 0i128;
                for j in 0..n {
                    s += t(w.g[i * n + j]) * t(w.x[j]);
                }
                w.ev[i] = comb(&[(t(w.z[i]), zf), (-s, gf + xf)], f.e);
            }
            let xz: i128 = (0..n).map(|i| t(w.x[i]) * t(w.z[i])).sum();
            let xe: i128 = (0..n).map(|i| t(w.x[i]) * t(w.ev[i])).sum();
            let fw = f.v2.frac().max(yyf).max(xf + zf).max(xf + ef);
            let wsum = (t(w.yy) << (fw - yyf))
                - (xz << (fw - xf - zf))
                - (xe << (fw - xf - ef))
                - (t(noise) << (fw - yyf));
            let v2 = comb(&[(wsum * t(w.inv_trace), fw + itf)], f.v2).max(l.v2_floor);
            let jb = ir.select(v2);
            let q = &w.q[jb * n * n..(jb + 1) * n * n];
            for i in 0..n {
                let mut s = 0i128;
                for j in 0..n {
                    s += t(q[i * n + j]) * t(w.ev[j]);
                }
                w.gv[i] = comb(&[(s, k.q.frac() + ef)], f.g);
            }
            let ga = t(l.gamma.code) * t(w.alpha[jb]);
            let gaf = l.gamma.frac + k.alpha.frac() + f.g.frac();
            for i in 0..n {
                w.r[i] = comb(&[(t(w.x[i]), xf), (ga * t(w.gv[i]), gaf)], f.r);
            }
            let tau2 = combine(
                &[
                    (t(l.c0.code) * t(v2), l.c0.frac + f.v2.frac()),
                    (
                        t(l.c1.code) * t(w.a[jb]) * t(v2),
                        l.c1.frac + k.a.frac() + f.v2.frac(),
                    ),
                    (t(l.c1.code) * t(w.b[jb]), l.c1.frac + k.b.frac()),
                ],
                f.tau2,
            );
            let bucket = ir.denoiser.thresholds.partition_point(|&th| th <= tau2);
            let row = &ir.denoiser.table[bucket];
            for i in 0..n {
                let mc = row[(w.r[i] + half) as usize];
                w.x[i] = combine(
                    &[
                        (t(l.phi.code) * t(mc), l.phi.frac + xf),
                        (-t(l.phi_xi.code) * t(w.r[i]), l.phi_xi.frac + f.r.frac()),
                    ],
                    ir.state,
                );
            }
            if let Some(tv) = taps.as_deref_mut() {
                tv.layers.push(OampLayerTaps {
                    e: w.ev.clone(),
                    v2,
                    j: jb,
                    g: w.gv.clone(),
                    r: w.r.clone(),
                    tau2,
                    bucket,
                    x: w.x.clone(),
                });
            }
        }
        if let Some(tv) = taps {
            tv.levels = w.x.iter().map(|&c| ir.decide(c)).collect();
        }
    }

    fn check_codes(&self, h: &[i64], ys: &[i64], bin: usize) -> Result<(), IrError> {
        let ir = &self.ir;
        check_block_codes(h, ys, bin, (ir.m, ir.n), &ir.inputs, ir.snr_bins.count)
    }

    /// Runs one channel block given as codes: H̃ (row-major), the T vectors ỹ (`T × M`) and the
    /// SNR bin; returns the block's taps and every vector's taps.
    pub fn run_block_codes(
        &self,
        h: &[i64],
        ys: &[i64],
        bin: usize,
    ) -> Result<(OampBlockTaps, Vec<OampVectorTaps>), IrError> {
        self.check_codes(h, ys, bin)?;
        let mut w = Work::new(self.ir.n, self.ir.bank_len());
        let mut bt = OampBlockTaps::default();
        self.block(h, bin, &mut w, Some(&mut bt));
        let mut out = Vec::new();
        for y in ys.chunks(self.ir.m) {
            let mut tv = OampVectorTaps::default();
            self.vector(h, y, &mut w, Some(&mut tv));
            out.push(tv);
        }
        Ok((bt, out))
    }

    /// Quantizes every frame with the front end, cuts the frames into channel blocks (runs of
    /// consecutive frames with equal H̃ and σ²), runs each block's stage once and its vectors,
    /// and writes the hard decisions (`frames × n` alphabet levels). Parallel over whole blocks.
    pub fn detect_received(
        &self,
        frames: &Received<'_>,
        decisions: &mut [i32],
    ) -> Result<(), IrError> {
        use rayon::prelude::*;
        let (m, n) = (self.ir.m, self.ir.n);
        let (starts, parts) = block_parts(frames, m, n, self.ir.modulation, decisions)?;
        parts.into_par_iter().for_each(|(first, out)| {
            let mut w = Work::new(n, self.ir.bank_len());
            let mut hc = vec![0i64; m * n];
            let mut yc = vec![0i64; m];
            for (k, dec) in out.chunks_mut(n).enumerate() {
                let b = first + k;
                if k == 0 || starts[b] {
                    for (c, &v) in hc.iter_mut().zip(&frames.h[b * m * n..(b + 1) * m * n]) {
                        *c = self.quantize_h(v as f32);
                    }
                    let bin = self.ir.bin_of(frames.noise_var[b] as f32);
                    self.block(&hc, bin, &mut w, None);
                }
                for (c, &v) in yc.iter_mut().zip(&frames.y[b * m..(b + 1) * m]) {
                    *c = self.quantize_y(v as f32);
                }
                self.vector(&hc, &yc, &mut w, None);
                for (d, &c) in dec.iter_mut().zip(&w.x) {
                    *d = self.ir.decide(c);
                }
            }
        });
        Ok(())
    }
}
