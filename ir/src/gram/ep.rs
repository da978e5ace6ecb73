//! IR version 5: EPNet, expectation propagation with a per-vector, per-layer integer LDLᵀ
//! inverse (`family: "ep"`, docs/ir.md §12).
//!
//! * [`EpIr`]: the document, loaded with unknown fields refused and validated field by field
//!   ([`EpIr::validate`]); every error names the offending field by its JSON path.
//! * [`EpInterpreter`]: the integer golden model, batched over the vectors of a channel block:
//!   per block G; per vector z and the K layers, each with the integer LDLᵀ inverse
//!   ([`super::oamp::ldl_inverse`]) of A = G + diag(ℓ), ℓ = s2·λ the diagonal load from the
//!   cavity precisions, the cavity (t, h) through the named reciprocal of c, the moment-matching
//!   tables (posterior mean and variance of the PAM alphabet), and except in the last layer the
//!   message update through the reciprocals of the floored variance v′ and of P_ii.
//!
//! Guarantees: a validated [`EpIr`] cannot make the interpreter panic or overflow — every
//! sum's bound is computed by interval analysis ([`EpIr::bounds`]) and must stay below 2^62.

use serde::{Deserialize, Serialize};

use super::interp::{block_parts, check_block_codes};
use super::oamp::{LdlChain, LdlScratch, abs_max, comb, ldl_inverse, t, within};
use super::{
    BinCoef, Coef, Divisor, MAX_BUCKETS, MAX_GRAM_LAYERS, MAX_SUM_BITS, MAX_TABLE_INPUT_WIDTH,
    Reciprocal, SumBits, bits, bound_err, check_bins, check_code, check_coef, check_dims,
    check_fmt, check_slicer, code_max,
};
use crate::document::{IR_FORMAT, IrError};
use crate::fixed::{QFormat, max_code};
use crate::interp::{Received, front_end};
use crate::modulation::Modulation;
use crate::vocab::SnrBins;

/// The version of an EP IR document.
pub const EP_IR_VERSION: u32 = 5;

/// The family of a version-5 document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EpFamily {
    /// EPNet.
    Ep,
}

/// The formats of the integer LDLᵀ inverse chain of docs/ir.md §11.3, applied to
/// A = G + diag(ℓ) held at `formats.load`'s frac.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpInverse {
    /// E = L·D (the unnormalized columns of L) and the pivots d.
    pub ld: QFormat,
    /// ι_k = 1/d_k (divisor d_k at `ld`'s frac; always `"clamped"`).
    pub pivot_inv: Reciprocal,
    /// The strict lower triangle of L.
    pub l: QFormat,
    /// W = L⁻¹ (unit lower triangular; its diagonal is the code 2^frac).
    pub w: QFormat,
    /// V = D⁻¹W.
    pub v: QFormat,
    /// The entries of P = WᵀV ≈ A⁻¹.
    pub q: QFormat,
}

/// Formats of the per-vector tensors (shared by every layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpFormats {
    /// The diagonal load ℓ = s2·λ (frac ≥ `g.frac`: A = G + diag(ℓ) is exact at it).
    pub load: QFormat,
    /// The scaled natural mean g = s2·γ.
    pub gam: QFormat,
    /// μ = P(z + g).
    pub mu: QFormat,
    /// c = 1 − P_ii·ℓ_i (frac ≥ 0).
    pub c: QFormat,
    /// 1/c (divisor c at `c.frac`; always `"clamped"`, d_min the f32 net's c floor).
    pub c_inv: Reciprocal,
    /// The cavity numerator u = μ − P_ii·g_i (t = u/c).
    pub tn: QFormat,
    /// The cavity mean t (its width addresses the tables).
    pub t: QFormat,
    /// The cavity variance h = s2·P_ii/c, and the product s2·P_ii before the division (only
    /// compared with the tables' thresholds).
    pub h: QFormat,
    /// The posterior variance v (the `moments.var` entries) and its floors.
    pub var: QFormat,
    /// 1/v′, v′ = max(v, floor) (divisor at `var.frac`; `"proved"` when every floor ≥ d_min).
    pub v_inv: Reciprocal,
    /// 1/P_ii (divisor at `inverse.q.frac`; always `"clamped"`).
    pub q_inv: Reciprocal,
}

/// The message update after layer k < K − 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpUpdate {
    /// The variance floor ε_k, a code at `formats.var` (≥ 0).
    pub floor: i64,
    /// β_k, the weight of the new message (code ≥ 0).
    pub beta: Coef,
    /// 1 − β_k, the weight of the old one (code ≥ 0).
    pub keep: Coef,
}

/// The moment-matching tables: bucket j = #{i : h ≥ thresholds[i]}, posterior mean
/// `mean[j][t + 2^(w_t − 1)]` (codes at `state`) and variance `var[j][…]` (codes at
/// `formats.var`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moments {
    /// Ascending h codes (at `formats.h`): `buckets − 1` entries.
    pub thresholds: Vec<i64>,
    /// The representative h of each bucket (informational: what the tables were built at).
    pub representatives: Vec<f64>,
    /// One row of 2^(w_t) posterior-mean codes (at `state`) per bucket.
    pub mean: Vec<Vec<i64>>,
    /// One row of 2^(w_t) posterior-variance codes (at `formats.var`, ≥ 0) per bucket.
    pub var: Vec<Vec<i64>>,
}

/// The IR v5 document of an EPNet (docs/ir.md §12).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpIr {
    /// Always `kaq-ir`.
    pub format: String,
    /// Always [`EP_IR_VERSION`].
    pub version: u32,
    /// The source model's name.
    pub name: String,
    /// Always `ep`.
    pub family: EpFamily,
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
    /// Format of the posterior means m (the `moments.mean` entries and the output).
    pub state: QFormat,
    /// Format of G's entries.
    pub g: QFormat,
    /// Format of z = H̃ᵀỹ.
    pub z: QFormat,
    /// Per bin: s2 = σ²/2 of the bin centre.
    pub s2: BinCoef,
    /// Per bin: ℓ⁽⁰⁾ = s2/E_s, a code at `formats.load` (≥ 0).
    pub init_load: Vec<i64>,
    /// The LDLᵀ inverse chain.
    pub inverse: EpInverse,
    /// The per-vector formats.
    pub formats: EpFormats,
    /// Layers K.
    pub layers: usize,
    /// The K − 1 message updates.
    pub updates: Vec<EpUpdate>,
    /// The moment-matching tables.
    pub moments: Moments,
    /// The L − 1 ascending state-code thresholds of the slicer.
    pub slicer: Vec<i64>,
}

fn check_reciprocal(field: &str, r: &Reciprocal, divisor: QFormat) -> Result<(), IrError> {
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
    if r.op.overflow() == crate::fixed::OverflowMode::Wrap {
        return Err(IrError::invalid(
            format!("{field}.op.overflow"),
            "must saturate (a wrapped reciprocal has no bound)",
        ));
    }
    Ok(())
}

fn refuse_proved(field: &str, r: &Reciprocal, why: &str) -> Result<(), IrError> {
    if r.divisor == Divisor::Proved {
        return Err(IrError::invalid(
            format!("{field}.divisor"),
            format!("\"proved\" does not hold: {why} (docs/ir.md §12.4); it must be \"clamped\""),
        ));
    }
    Ok(())
}

impl EpIr {
    /// Parses and validates a v5 document; `path` names it in errors.
    pub fn from_json(text: &str, path: &str) -> Result<Self, IrError> {
        let ir: EpIr = serde_json::from_str(text).map_err(|e| IrError::parse(text, path, e))?;
        ir.validate()?;
        Ok(ir)
    }

    /// The canonical JSON text (pretty, trailing newline).
    pub fn to_json(&self) -> String {
        crate::document::canonical_json(self)
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

    /// The moment-table bucket of h code `h`: `#{i : h ≥ thresholds[i]}`.
    #[inline]
    pub fn bucket(&self, h: i64) -> usize {
        self.moments.thresholds.partition_point(|&th| th <= h)
    }

    /// Whether every floor is at least `v_inv`'s d_min (so the clamp of 1/v′ never acts).
    pub fn floors_prove_v_inv(&self) -> bool {
        let d_min = self.formats.v_inv.op.d_min();
        self.updates.iter().all(|u| u.floor >= d_min)
    }

    /// Checks every field; the error names the first offending one (docs/ir.md §12.5).
    pub fn validate(&self) -> Result<(), IrError> {
        if self.format != IR_FORMAT {
            return Err(IrError::Format(self.format.clone()));
        }
        if self.version != EP_IR_VERSION {
            return Err(IrError::invalid(
                "version",
                format!("{} is not {EP_IR_VERSION} (family ep)", self.version),
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
        check_fmt("g", &self.g, 2, 32)?;
        check_fmt("z", &self.z, 2, 32)?;
        check_bins("s2", &self.s2, bins)?;
        for (i, &c) in self.s2.codes.iter().enumerate() {
            if c < 0 {
                return Err(IrError::invalid(
                    format!("s2.codes[{i}]"),
                    format!("{c} is negative (a noise variance)"),
                ));
            }
        }
        let f = &self.formats;
        check_fmt("formats.load", &f.load, 2, 32)?;
        if f.load.frac() < self.g.frac() || f.load.frac() - self.g.frac() > 30 {
            return Err(IrError::invalid(
                "formats.load.frac",
                format!(
                    "{} is outside g.frac..=g.frac + 30 = {}..={}: A = G + diag(load) is held \
                     at load's frac",
                    f.load.frac(),
                    self.g.frac(),
                    self.g.frac() + 30
                ),
            ));
        }
        if self.init_load.len() != bins {
            return Err(IrError::invalid(
                "init_load",
                format!(
                    "{} entries, snr_bins.count = {bins} needed",
                    self.init_load.len()
                ),
            ));
        }
        let lq = code_max(f.load);
        for (i, &c) in self.init_load.iter().enumerate() {
            if c < 0 || i128::from(c) > lq {
                return Err(IrError::invalid(
                    format!("init_load[{i}]"),
                    format!("{c} is not a code 0..=Q(formats.load) = {lq}"),
                ));
            }
        }
        let k = &self.inverse;
        for (name, q) in [
            ("ld", &k.ld),
            ("l", &k.l),
            ("w", &k.w),
            ("v", &k.v),
            ("q", &k.q),
        ] {
            check_fmt(&format!("inverse.{name}"), q, 2, 32)?;
        }
        if k.w.frac() < 0 || k.w.frac() as u32 > k.w.width() - 2 {
            return Err(IrError::invalid(
                "inverse.w.frac",
                format!(
                    "{} is outside 0..={}: W's unit diagonal 2^frac must be a code",
                    k.w.frac(),
                    k.w.width() - 2
                ),
            ));
        }
        check_reciprocal("inverse.pivot_inv", &k.pivot_inv, k.ld)?;
        refuse_proved(
            "inverse.pivot_inv",
            &k.pivot_inv,
            "the rounded pivots of A can reach 0",
        )?;
        for (name, q) in [
            ("gam", &f.gam),
            ("mu", &f.mu),
            ("c", &f.c),
            ("tn", &f.tn),
            ("h", &f.h),
            ("var", &f.var),
        ] {
            check_fmt(&format!("formats.{name}"), q, 2, 32)?;
        }
        check_fmt("formats.t", &f.t, 2, MAX_TABLE_INPUT_WIDTH)?;
        if !(0..=40).contains(&f.c.frac()) {
            return Err(IrError::invalid(
                "formats.c.frac",
                format!(
                    "{} is outside 0..=40: c = 1 − P_ii·ℓ_i needs the code 2^frac",
                    f.c.frac()
                ),
            ));
        }
        check_reciprocal("formats.c_inv", &f.c_inv, f.c)?;
        refuse_proved(
            "formats.c_inv",
            &f.c_inv,
            "c = 1 − P_ii·ℓ_i reaches 0 and below",
        )?;
        check_reciprocal("formats.v_inv", &f.v_inv, f.var)?;
        check_reciprocal("formats.q_inv", &f.q_inv, k.q)?;
        refuse_proved("formats.q_inv", &f.q_inv, "the rounded P_ii can reach 0")?;
        if !(1..=MAX_GRAM_LAYERS).contains(&self.layers) {
            return Err(IrError::invalid(
                "layers",
                format!("{} layers is outside 1..={MAX_GRAM_LAYERS}", self.layers),
            ));
        }
        if self.updates.len() + 1 != self.layers {
            return Err(IrError::invalid(
                "updates",
                format!(
                    "{} entries, layers − 1 = {} needed",
                    self.updates.len(),
                    self.layers - 1
                ),
            ));
        }
        let vq = code_max(f.var);
        for (i, u) in self.updates.iter().enumerate() {
            let at = |s: &str| format!("updates[{i}].{s}");
            if u.floor < 0 || i128::from(u.floor) > vq {
                return Err(IrError::invalid(
                    at("floor"),
                    format!("{} is not a code 0..=Q(formats.var) = {vq}", u.floor),
                ));
            }
            for (name, c) in [("beta", &u.beta), ("keep", &u.keep)] {
                check_coef(&at(name), c)?;
                if c.code < 0 {
                    return Err(IrError::invalid(
                        at(&format!("{name}.code")),
                        format!("{} is negative (the load must stay ≥ 0)", c.code),
                    ));
                }
            }
        }
        if f.v_inv.divisor == Divisor::Proved && !self.floors_prove_v_inv() {
            return Err(IrError::invalid(
                "formats.v_inv.divisor",
                format!(
                    "\"proved\" does not hold: a floor is below d_min = {} (docs/ir.md §12.4)",
                    f.v_inv.op.d_min()
                ),
            ));
        }
        self.validate_moments()?;
        check_slicer(&self.slicer, self.levels())?;
        self.bounds().map(|_| ())
    }

    fn validate_moments(&self) -> Result<(), IrError> {
        let mo = &self.moments;
        let nb = mo.mean.len();
        if nb == 0 || nb > MAX_BUCKETS {
            return Err(IrError::invalid(
                "moments.mean",
                format!("{nb} buckets is outside 1..={MAX_BUCKETS}"),
            ));
        }
        for (name, len) in [
            ("moments.var", mo.var.len()),
            ("moments.representatives", mo.representatives.len()),
            ("moments.thresholds", mo.thresholds.len() + 1),
        ] {
            if len != nb {
                return Err(IrError::invalid(
                    name,
                    format!(
                        "{} entries for {nb} buckets (thresholds: buckets − 1)",
                        if name == "moments.thresholds" {
                            len - 1
                        } else {
                            len
                        }
                    ),
                ));
            }
        }
        for (i, &th) in mo.thresholds.iter().enumerate() {
            check_code(&format!("moments.thresholds[{i}]"), th)?;
            if i > 0 && th < mo.thresholds[i - 1] {
                return Err(IrError::invalid(
                    format!("moments.thresholds[{i}]"),
                    "not ascending",
                ));
            }
        }
        let entries = 1usize << self.formats.t.width();
        let (xq, vq) = (code_max(self.state), code_max(self.formats.var));
        for (name, rows, lo, hi) in [("mean", &mo.mean, -xq, xq), ("var", &mo.var, 0, vq)] {
            for (j, row) in rows.iter().enumerate() {
                if row.len() != entries {
                    return Err(IrError::invalid(
                        format!("moments.{name}[{j}]"),
                        format!(
                            "{} entries, 2^(formats.t width {}) = {entries} needed",
                            row.len(),
                            self.formats.t.width()
                        ),
                    ));
                }
                for (i, &v) in row.iter().enumerate() {
                    if !(lo..=hi).contains(&i128::from(v)) {
                        return Err(IrError::invalid(
                            format!("moments.{name}[{j}][{i}]"),
                            format!("{v} is outside {lo}..={hi}"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Interval analysis (docs/ir.md §12.4): the bound of every sum from the formats and the
    /// constants; an error names the first sum that cannot be kept below 2^62.
    pub fn bounds(&self) -> Result<SumBits, IrError> {
        let mut out = SumBits::default();
        let (m, n) = (self.m as i128, self.n as i128);
        let hb = 1i128 << (self.inputs.h.width() - 1);
        let yb = 1i128 << (self.inputs.y.width() - 1);
        let (fh, fy) = (self.inputs.h.frac(), self.inputs.y.frac());
        let f = &self.formats;
        let k = &self.inverse;
        let mut push =
            |name: String, terms: &[(i128, i32)], fmt: QFormat| out.push(name, terms, fmt);
        push("g".into(), &[(m * hb * hb, 2 * fh)], self.g)?;
        push("z".into(), &[(m * hb * yb, fh + fy)], self.z)?;
        let recip_max = |r: &Reciprocal| {
            let (lo, hi) = r.op.interval((1, 1), (i64::MIN, i64::MAX));
            code_max(r.format)
                .max(i128::from(lo).abs())
                .max(i128::from(hi).abs())
        };
        let q = |x: QFormat| code_max(x);
        let (gq, lq, ldq, llq, wq, vq, qq) = (
            q(self.g),
            q(f.load),
            q(k.ld),
            q(k.l),
            q(k.w),
            q(k.v),
            q(k.q),
        );
        let fa = f.load.frac();
        let (ldf, lf, wf, vf, qf) = (k.ld.frac(), k.l.frac(), k.w.frac(), k.v.frac(), k.q.frac());
        let piq = recip_max(&k.pivot_inv);
        let pif = k.pivot_inv.format.frac();
        // A = G·2^(fa − fg) + diag(ℓ) at the load's frac.
        let a = (gq << (fa - self.g.frac()) as u32) + lq;
        if bits(a) > MAX_SUM_BITS {
            return Err(bound_err("inverse.a"));
        }
        push(
            "inverse.ld".into(),
            &[(a, fa), (n * ldq * llq, ldf + lf)],
            k.ld,
        )?;
        push("inverse.l".into(), &[(ldq * piq, ldf + pif)], k.l)?;
        push("inverse.w".into(), &[(n * llq * wq, lf + wf)], k.w)?;
        push("inverse.v".into(), &[(piq * wq, pif + wf)], k.v)?;
        push("inverse.q".into(), &[(n * wq * vq, wf + vf)], k.q)?;
        let (zq, gmq, muq, cq, tnq, xq) =
            (q(self.z), q(f.gam), q(f.mu), q(f.c), q(f.tn), q(self.state));
        let (zf, gmf, muf, cf, tnf, xf) = (
            self.z.frac(),
            f.gam.frac(),
            f.mu.frac(),
            f.c.frac(),
            f.tn.frac(),
            self.state.frac(),
        );
        push(
            "formats.mu".into(),
            &[(n * qq * zq, qf + zf), (n * qq * gmq, qf + gmf)],
            f.mu,
        )?;
        push("formats.c".into(), &[(1, 0), (qq * lq, qf + fa)], f.c)?;
        push(
            "formats.tn".into(),
            &[(muq, muf), (qq * gmq, qf + gmf)],
            f.tn,
        )?;
        let ciq = recip_max(&f.c_inv);
        let cif = f.c_inv.format.frac();
        push("formats.t".into(), &[(tnq * ciq, tnf + cif)], f.t)?;
        let s2q = abs_max(self.s2.codes.iter().copied());
        let s2f = self.s2.frac;
        push("formats.h.sq".into(), &[(s2q * qq, s2f + qf)], f.h)?;
        push("formats.h".into(), &[(q(f.h) * ciq, f.h.frac() + cif)], f.h)?;
        let viq = recip_max(&f.v_inv);
        let vif = f.v_inv.format.frac();
        let qiq = recip_max(&f.q_inv);
        let qif = f.q_inv.format.frac();
        let cc = cq.max(i128::from(f.c_inv.op.d_min()));
        push(
            "updates.load_hat".into(),
            &[(s2q * viq, s2f + vif), (cc * qiq, cf + qif)],
            f.load,
        )?;
        push(
            "updates.gam_hat".into(),
            &[(s2q * xq * viq, s2f + xf + vif), (tnq * qiq, tnf + qif)],
            f.gam,
        )?;
        for (i, u) in self.updates.iter().enumerate() {
            let (b, kp) = (i128::from(u.beta.code), i128::from(u.keep.code));
            push(
                format!("updates[{i}].load"),
                &[(b * lq, u.beta.frac + fa), (kp * lq, u.keep.frac + fa)],
                f.load,
            )?;
            push(
                format!("updates[{i}].gam"),
                &[(b * gmq, u.beta.frac + gmf), (kp * gmq, u.keep.frac + gmf)],
                f.gam,
            )?;
        }
        Ok(out)
    }
}

/// One layer's codes for one vector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpLayerTaps {
    /// ℓ entering the layer (at `formats.load`).
    pub load: Vec<i64>,
    /// g = s2·γ entering the layer.
    pub gam: Vec<i64>,
    /// The pivots d_k of A's LDLᵀ.
    pub pivots: Vec<i64>,
    /// P = A⁻¹ (N×N row-major, symmetric, at `inverse.q`).
    pub p: Vec<i64>,
    /// μ.
    pub mu: Vec<i64>,
    /// c = 1 − P_ii ℓ_i (before the divider's clamp).
    pub c: Vec<i64>,
    /// 1/c.
    pub c_inv: Vec<i64>,
    /// u = μ − P_ii g_i.
    pub tn: Vec<i64>,
    /// The cavity mean t.
    pub t: Vec<i64>,
    /// The cavity variance h.
    pub h: Vec<i64>,
    /// The table bucket of h.
    pub bucket: Vec<usize>,
    /// The posterior mean m (at `state`).
    pub m: Vec<i64>,
    /// The posterior variance v (at `formats.var`).
    pub v: Vec<i64>,
    /// The update (empty in the last layer).
    pub update: Option<EpUpdateTaps>,
}

/// The codes of one message update.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpUpdateTaps {
    /// v′ = max(v, floor).
    pub v_floored: Vec<i64>,
    /// 1/v′.
    pub v_inv: Vec<i64>,
    /// 1/P_ii.
    pub q_inv: Vec<i64>,
    /// ℓ̂ (before the keep rule).
    pub load_hat: Vec<i64>,
    /// ĝ (before the keep rule).
    pub gam_hat: Vec<i64>,
    /// The sites whose old message is kept (ℓ̂ < 0).
    pub kept: Vec<bool>,
}

/// One vector's codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpVectorTaps {
    /// z = H̃ᵀỹ.
    pub z: Vec<i64>,
    /// Every layer.
    pub layers: Vec<EpLayerTaps>,
    /// The decisions (alphabet levels).
    pub levels: Vec<i32>,
}

/// The golden model of a version-5 document.
#[derive(Debug, Clone)]
pub struct EpInterpreter {
    ir: EpIr,
    h_step: f32,
    h_qp: f32,
    y_step: f32,
    y_qp: f32,
}

/// Scratch and per-block state of one worker (allocated once per chunk of blocks).
#[derive(Debug, Clone)]
struct Work {
    g: Vec<i64>,
    bin: usize,
    // Inverse scratch.
    e: Vec<i64>,
    l: Vec<i64>,
    w: Vec<i64>,
    v: Vec<i64>,
    piv: Vec<i64>,
    pinv: Vec<i64>,
    p: Vec<i64>,
    // Per vector.
    z: Vec<i64>,
    load: Vec<i64>,
    gam: Vec<i64>,
    mu: Vec<i64>,
    m: Vec<i64>,
}

impl Work {
    fn new(n: usize) -> Self {
        let v = |len| vec![0i64; len];
        Self {
            g: v(n * n),
            bin: 0,
            e: v(n * n),
            l: v(n * n),
            w: v(n * n),
            v: v(n * n),
            piv: v(n),
            pinv: v(n),
            p: v(n * n),
            z: v(n),
            load: v(n),
            gam: v(n),
            mu: v(n),
            m: v(n),
        }
    }
}

impl EpInterpreter {
    /// Validates `ir` and builds its golden model.
    pub fn new(ir: EpIr) -> Result<Self, IrError> {
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
    pub fn ir(&self) -> &EpIr {
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

    /// The block stage of channel codes `h` in SNR bin `bin`: G (docs/ir.md §12.3).
    fn block(&self, h: &[i64], bin: usize, w: &mut Work) {
        let ir = &self.ir;
        let (m, n) = (ir.m, ir.n);
        let two_h = 2 * ir.inputs.h.frac();
        for i in 0..n {
            for j in i..n {
                let mut s = 0i128;
                for r in 0..m {
                    s += t(h[r * n + i]) * t(h[r * n + j]);
                }
                let c = comb(&[(s, two_h)], ir.g);
                w.g[i * n + j] = c;
                w.g[j * n + i] = c;
            }
        }
        w.bin = bin;
    }

    /// The K layers of one vector ỹ (codes) of the current block; the output m is in `w.m`.
    fn vector(&self, h: &[i64], y: &[i64], w: &mut Work, mut taps: Option<&mut EpVectorTaps>) {
        let ir = &self.ir;
        let (m, n) = (ir.m, ir.n);
        let f = &ir.formats;
        let k = &ir.inverse;
        let bin = w.bin;
        let (fh, fy) = (ir.inputs.h.frac(), ir.inputs.y.frac());
        for j in 0..n {
            let mut s = 0i128;
            for r in 0..m {
                s += t(h[r * n + j]) * t(y[r]);
            }
            w.z[j] = comb(&[(s, fh + fy)], ir.z);
        }
        w.load.fill(ir.init_load[bin]);
        w.gam.fill(0);
        let fa = f.load.frac();
        let ga = (fa - ir.g.frac()) as u32;
        let (qf, zf, gmf, muf, tnf, xf) = (
            k.q.frac(),
            ir.z.frac(),
            f.gam.frac(),
            f.mu.frac(),
            f.tn.frac(),
            ir.state.frac(),
        );
        let (cif, vif, qif, cf) = (
            f.c_inv.format.frac(),
            f.v_inv.format.frac(),
            f.q_inv.format.frac(),
            f.c.frac(),
        );
        let s2 = ir.s2.codes[bin];
        let s2f = ir.s2.frac;
        let c_min = f.c_inv.op.d_min();
        let half = 1i64 << (f.t.width() - 1);
        let chain = LdlChain {
            a_frac: fa,
            ld: k.ld,
            l: k.l,
            w: k.w,
            v: k.v,
            q: k.q,
            pivot_inv: &k.pivot_inv,
        };
        if let Some(tv) = taps.as_deref_mut() {
            tv.z = w.z.clone();
            tv.layers.clear();
        }
        for layer in 0..ir.layers {
            let update = ir.updates.get(layer);
            let mut lt = taps.as_ref().map(|_| EpLayerTaps {
                load: w.load.clone(),
                gam: w.gam.clone(),
                update: update.map(|_| EpUpdateTaps::default()),
                ..EpLayerTaps::default()
            });
            {
                let scratch = LdlScratch {
                    e: &mut w.e,
                    l: &mut w.l,
                    w: &mut w.w,
                    v: &mut w.v,
                    piv: &mut w.piv,
                    pinv: &mut w.pinv,
                };
                let (g, load) = (&w.g, &w.load);
                ldl_inverse(
                    n,
                    |i, c| (g[i * n + c] << ga) + if i == c { load[i] } else { 0 },
                    &chain,
                    scratch,
                    &mut w.p,
                );
            }
            if let Some(lt) = lt.as_mut() {
                lt.pivots = w.piv.clone();
            }
            for i in 0..n {
                let row = &w.p[i * n..(i + 1) * n];
                let (mut sz, mut sg) = (0i128, 0i128);
                for ((&pj, &zj), &gj) in row.iter().zip(&w.z).zip(&w.gam) {
                    sz += t(pj) * t(zj);
                    sg += t(pj) * t(gj);
                }
                w.mu[i] = comb(&[(sz, qf + zf), (sg, qf + gmf)], f.mu);
            }
            for i in 0..n {
                let qi = w.p[i * n + i];
                let (lo, go) = (w.load[i], w.gam[i]);
                let c = comb(&[(1, 0), (-t(qi) * t(lo), qf + fa)], f.c);
                let ic = f.c_inv.op.apply(1, c);
                let tn = comb(&[(t(w.mu[i]), muf), (-t(qi) * t(go), qf + gmf)], f.tn);
                let tc = comb(&[(t(tn) * t(ic), tnf + cif)], f.t);
                let sq = comb(&[(t(s2) * t(qi), s2f + qf)], f.h);
                let hc = comb(&[(t(sq) * t(ic), f.h.frac() + cif)], f.h);
                let bucket = ir.bucket(hc);
                let at = (tc + half) as usize;
                let (mc, vc) = (ir.moments.mean[bucket][at], ir.moments.var[bucket][at]);
                within(mc, ir.state);
                w.m[i] = mc;
                if let Some(lt) = lt.as_mut() {
                    lt.c.push(c);
                    lt.c_inv.push(ic);
                    lt.tn.push(tn);
                    lt.t.push(tc);
                    lt.h.push(hc);
                    lt.bucket.push(bucket);
                    lt.m.push(mc);
                    lt.v.push(vc);
                }
                let Some(u) = update else { continue };
                let vf = vc.max(u.floor);
                let iv = f.v_inv.op.apply(1, vf);
                let iq = f.q_inv.op.apply(1, qi);
                let cc = c.max(c_min);
                let lh = comb(
                    &[(t(s2) * t(iv), s2f + vif), (-t(cc) * t(iq), cf + qif)],
                    f.load,
                );
                let gh = comb(
                    &[
                        (t(s2) * t(mc) * t(iv), s2f + xf + vif),
                        (-t(tn) * t(iq), tnf + qif),
                    ],
                    f.gam,
                );
                let kept = lh < 0;
                let (lh2, gh2) = if kept { (lo, go) } else { (lh, gh) };
                let (b, kp) = (u.beta, u.keep);
                w.load[i] = comb(
                    &[
                        (t(b.code) * t(lh2), b.frac + fa),
                        (t(kp.code) * t(lo), kp.frac + fa),
                    ],
                    f.load,
                );
                w.gam[i] = comb(
                    &[
                        (t(b.code) * t(gh2), b.frac + gmf),
                        (t(kp.code) * t(go), kp.frac + gmf),
                    ],
                    f.gam,
                );
                if let Some(ut) = lt.as_mut().and_then(|lt| lt.update.as_mut()) {
                    ut.v_floored.push(vf);
                    ut.v_inv.push(iv);
                    ut.q_inv.push(iq);
                    ut.load_hat.push(lh);
                    ut.gam_hat.push(gh);
                    ut.kept.push(kept);
                }
            }
            if let (Some(tv), Some(mut lt)) = (taps.as_deref_mut(), lt) {
                lt.p = w.p.clone();
                lt.mu = w.mu.clone();
                tv.layers.push(lt);
            }
        }
        if let Some(tv) = taps {
            tv.levels = w.m.iter().map(|&c| ir.decide(c)).collect();
        }
    }

    fn check_codes(&self, h: &[i64], ys: &[i64], bin: usize) -> Result<(), IrError> {
        let ir = &self.ir;
        check_block_codes(h, ys, bin, (ir.m, ir.n), &ir.inputs, ir.snr_bins.count)
    }

    /// Runs one channel block given as codes: H̃ (row-major), the T vectors ỹ (`T × M`) and the
    /// SNR bin; returns G and every vector's taps.
    pub fn run_block_codes(
        &self,
        h: &[i64],
        ys: &[i64],
        bin: usize,
    ) -> Result<(Vec<i64>, Vec<EpVectorTaps>), IrError> {
        self.check_codes(h, ys, bin)?;
        let mut w = Work::new(self.ir.n);
        self.block(h, bin, &mut w);
        let mut out = Vec::new();
        for y in ys.chunks(self.ir.m) {
            let mut tv = EpVectorTaps::default();
            self.vector(h, y, &mut w, Some(&mut tv));
            out.push(tv);
        }
        Ok((w.g, out))
    }

    /// The output state codes (the last layer's m, `T × N`) of one block given as codes.
    pub fn outputs_block_codes(
        &self,
        h: &[i64],
        ys: &[i64],
        bin: usize,
    ) -> Result<Vec<i64>, IrError> {
        self.check_codes(h, ys, bin)?;
        let mut w = Work::new(self.ir.n);
        self.block(h, bin, &mut w);
        let mut out = Vec::with_capacity(ys.len() / self.ir.m * self.ir.n);
        for y in ys.chunks(self.ir.m) {
            self.vector(h, y, &mut w, None);
            out.extend_from_slice(&w.m);
        }
        Ok(out)
    }

    /// Quantizes every frame with the front end, cuts the frames into channel blocks (runs of
    /// consecutive frames with equal H̃ and σ²), computes each block's G once and runs its
    /// vectors, and writes the hard decisions (`frames × n` alphabet levels). Parallel over
    /// whole blocks.
    pub fn detect_received(
        &self,
        frames: &Received<'_>,
        decisions: &mut [i32],
    ) -> Result<(), IrError> {
        use rayon::prelude::*;
        let (m, n) = (self.ir.m, self.ir.n);
        let (starts, parts) = block_parts(frames, m, n, self.ir.modulation, decisions)?;
        parts.into_par_iter().for_each(|(first, out)| {
            let mut w = Work::new(n);
            let mut hc = vec![0i64; m * n];
            let mut yc = vec![0i64; m];
            for (k, dec) in out.chunks_mut(n).enumerate() {
                let b = first + k;
                if k == 0 || starts[b] {
                    for (c, &v) in hc.iter_mut().zip(&frames.h[b * m * n..(b + 1) * m * n]) {
                        *c = self.quantize_h(v as f32);
                    }
                    let bin = self.ir.bin_of(frames.noise_var[b] as f32);
                    self.block(&hc, bin, &mut w);
                }
                for (c, &v) in yc.iter_mut().zip(&frames.y[b * m..(b + 1) * m]) {
                    *c = self.quantize_y(v as f32);
                }
                self.vector(&hc, &yc, &mut w, None);
                for (d, &c) in dec.iter_mut().zip(&w.m) {
                    *d = self.ir.decide(c);
                }
            }
        });
        Ok(())
    }
}
