//! Linear detectors: zero forcing (ZF) and linear MMSE with the true noise variance.
//!
//! Both solve the regularized normal equations of the real-valued model and slice each real
//! dimension to the nearest alphabet level with [`Modulation::slice`]:
//!
//! ```text
//! x̂ = (H̃ᵀH̃ + δ·I)⁻¹ H̃ᵀỹ,   δ = 0 (ZF),   δ = (σ²/2) / Es_dim (MMSE)
//! ```
//!
//! Derivation of δ. In the real-valued model ỹ = H̃x̃ + ñ the complex noise CN(0, σ²) puts
//! σ²/2 on each real dimension, so E[ññᵀ] = (σ²/2)·I_M. The real dimensions of x̃ are independent,
//! zero mean and equiprobable over the alphabet, so E[x̃x̃ᵀ] = Es_dim·I_N with
//! Es_dim = Es / real_dims_per_symbol (16-QAM: Es = 10, Es_dim = (1 + 9)/2 = 5; BPSK: 1). The
//! LMMSE filter W = Es_dim·H̃ᵀ(Es_dim·H̃H̃ᵀ + (σ²/2)·I)⁻¹ equals (H̃ᵀH̃ + δ·I)⁻¹H̃ᵀ by the
//! push-through identity, with δ = (σ²/2)/Es_dim. For QAM δ = σ²/Es, the complex LMMSE
//! regularization.
//!
//! Two kernels compute the same x̂:
//! * [`Kernel::Reference`]: the simple, slow, correct version with nalgebra (dynamic matrices,
//!   Cholesky of the Gram matrix, allocation per frame).
//! * [`Kernel::Fast`] (the default): per-call scratch, no allocation per frame. When H̃ has the
//!   complex block structure [[Re H, −Im H], [Im H, Re H]] of docs/system-model.md (checked exactly, frame
//!   by frame) it works on the complex Nr × Nt channel: Hermitian Gram HᴴH (upper triangle
//!   only), in-place complex Cholesky HᴴH + δI = UᴴU and two triangular solves, which is the
//!   real-valued solution [Re x̂; Im x̂] at about half the arithmetic. Otherwise (BPSK, or a batch
//!   without the structure) it does the same on the real M × N system.
//!
//! Guarantees: a batch whose shape does not fit, a negative or non-finite σ² returns an error; a
//! singular normal matrix (ZF with M < N, or a rank-deficient channel) returns
//! [`ModelError::DetectFailed`] naming the frame; neither kernel panics on bad input.

use nalgebra::{DMatrix, DVector};

use super::{Detector, check_batch};
use crate::error::ModelError;
use crate::link::FrameBatch;

/// Which linear filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinearKind {
    /// Zero forcing, δ = 0.
    Zf,
    /// Linear MMSE with the true noise variance, δ = (σ²/2)/Es_dim.
    Mmse,
}

/// Which implementation computes x̂.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Hand-written kernel on per-call scratch, exploiting the complex structure of H̃.
    Fast,
    /// nalgebra reference: dynamic matrices and its Cholesky.
    Reference,
}

/// A ZF or MMSE detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinearDetector {
    kind: LinearKind,
    kernel: Kernel,
}

impl LinearDetector {
    /// A detector of the given kind using the given kernel.
    pub fn new(kind: LinearKind, kernel: Kernel) -> Self {
        Self { kind, kernel }
    }

    /// Zero forcing, fast kernel.
    pub fn zf() -> Self {
        Self::new(LinearKind::Zf, Kernel::Fast)
    }

    /// Linear MMSE, fast kernel.
    pub fn mmse() -> Self {
        Self::new(LinearKind::Mmse, Kernel::Fast)
    }

    /// The filter this detector applies.
    pub fn kind(&self) -> LinearKind {
        self.kind
    }

    /// The kernel this detector uses.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Diagonal loading δ of frame `f` (see the module documentation).
    pub(crate) fn regularization(&self, batch: &FrameBatch, f: usize) -> Result<f64, ModelError> {
        match self.kind {
            LinearKind::Zf => Ok(0.0),
            LinearKind::Mmse => {
                let sigma2 = batch.noise_var[f];
                if !sigma2.is_finite() || sigma2 < 0.0 {
                    return Err(ModelError::InvalidParameter {
                        name: "noise_var",
                        value: sigma2,
                        reason: "MMSE needs a finite, non-negative noise variance",
                    });
                }
                let modulation = batch.modulation();
                let es_dim = modulation.es() / modulation.real_dims_per_symbol() as f64;
                Ok(sigma2 / 2.0 / es_dim)
            }
        }
    }

    /// Writes the soft estimate x̂ of every frame (`frames × n`, before slicing) into `out`.
    pub fn estimate(&self, batch: &FrameBatch, out: &mut [f64]) -> Result<(), ModelError> {
        check_batch(batch)?;
        if out.len() != batch.frames * batch.n {
            return Err(ModelError::Shape(format!(
                "estimate buffer holds {} values, batch needs {} frames × {} = {}",
                out.len(),
                batch.frames,
                batch.n,
                batch.frames * batch.n
            )));
        }
        let n = batch.n;
        self.for_each_estimate(batch, |f, x| {
            out[f * n..(f + 1) * n].copy_from_slice(x);
        })
    }

    /// Runs the kernel on every frame and hands each x̂ to `sink`. The batch must be checked.
    fn for_each_estimate(
        &self,
        batch: &FrameBatch,
        mut sink: impl FnMut(usize, &[f64]),
    ) -> Result<(), ModelError> {
        let fail = |f: usize, reason: String| ModelError::DetectFailed {
            detector: self.name(),
            frame: f,
            reason,
        };
        match self.kernel {
            Kernel::Reference => {
                for f in 0..batch.frames {
                    let delta = self.regularization(batch, f)?;
                    let x = reference_solve(batch.h(f), batch.y(f), batch.m, batch.n, delta)
                        .map_err(|reason| fail(f, reason))?;
                    check_finite(x.as_slice()).map_err(|reason| fail(f, reason))?;
                    sink(f, x.as_slice());
                }
            }
            Kernel::Fast => {
                let mut scratch = Scratch::new(batch.m, batch.n);
                let complex = batch.modulation().real_dims_per_symbol() == 2;
                for f in 0..batch.frames {
                    let delta = self.regularization(batch, f)?;
                    let (h, y) = (batch.h(f), batch.y(f));
                    let solved = if complex && scratch.load_complex(h, y) {
                        scratch.solve_complex(delta)
                    } else {
                        scratch.solve_real(h, y, delta)
                    };
                    solved.map_err(|reason| fail(f, reason))?;
                    check_finite(&scratch.x).map_err(|reason| fail(f, reason))?;
                    sink(f, &scratch.x);
                }
            }
        }
        Ok(())
    }
}

impl Detector for LinearDetector {
    fn name(&self) -> String {
        let kind = match self.kind {
            LinearKind::Zf => "zf",
            LinearKind::Mmse => "mmse",
        };
        match self.kernel {
            Kernel::Fast => kind.to_string(),
            Kernel::Reference => format!("{kind}-reference"),
        }
    }

    fn detect(&self, batch: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError> {
        check_batch(batch)?;
        batch.check_decisions(decisions)?;
        let (n, modulation) = (batch.n, batch.modulation());
        self.for_each_estimate(batch, |f, x| {
            for (d, &v) in decisions[f * n..(f + 1) * n].iter_mut().zip(x) {
                *d = modulation.slice(v);
            }
        })
    }
}

fn check_finite(x: &[f64]) -> Result<(), String> {
    if x.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err("the estimate is not finite (non-finite input or overflow)".into())
    }
}

/// The nalgebra reference: x̂ = chol(H̃ᵀH̃ + δI) \ H̃ᵀỹ on dynamic matrices.
fn reference_solve(
    h: &[f64],
    y: &[f64],
    m: usize,
    n: usize,
    delta: f64,
) -> Result<DVector<f64>, String> {
    let h = DMatrix::from_row_slice(m, n, h);
    let y = DVector::from_column_slice(y);
    let gram = h.transpose() * &h + DMatrix::identity(n, n) * delta;
    let rhs = h.transpose() * y;
    let chol = gram
        .cholesky()
        .ok_or_else(|| "the normal matrix H̃ᵀH̃ + δI is not positive definite".to_string())?;
    Ok(chol.solve(&rhs))
}

/// Per-call scratch of the fast kernel, sized once for the batch.
struct Scratch {
    m: usize,
    n: usize,
    /// Real path: normal matrix (n × n row-major, upper triangle) and right-hand side.
    gram: Vec<f64>,
    rhs: Vec<f64>,
    /// Complex path: Re H and Im H (nr × nt row-major), Re y and Im y.
    hr: Vec<f64>,
    hi: Vec<f64>,
    yr: Vec<f64>,
    yi: Vec<f64>,
    /// Complex path: Hermitian normal matrix (nt × nt, upper triangle) and right-hand side.
    gr: Vec<f64>,
    gi: Vec<f64>,
    zr: Vec<f64>,
    zi: Vec<f64>,
    /// Complex path: 1 / U_jj, so the triangular solves multiply instead of divide.
    inv_diag: Vec<f64>,
    /// The estimate x̂ of the current frame (n values).
    x: Vec<f64>,
}

impl Scratch {
    fn new(m: usize, n: usize) -> Self {
        let (nr, nt) = (m / 2, n / 2);
        Self {
            m,
            n,
            gram: vec![0.0; n * n],
            rhs: vec![0.0; n],
            hr: vec![0.0; nr * nt],
            hi: vec![0.0; nr * nt],
            yr: vec![0.0; nr],
            yi: vec![0.0; nr],
            gr: vec![0.0; nt * nt],
            gi: vec![0.0; nt * nt],
            zr: vec![0.0; nt],
            zi: vec![0.0; nt],
            inv_diag: vec![0.0; nt],
            x: vec![0.0; n],
        }
    }

    /// Splits a frame into complex H and y if H̃ = [[Re H, −Im H], [Im H, Re H]] holds exactly;
    /// returns false (and the real path must be used) otherwise.
    fn load_complex(&mut self, h: &[f64], y: &[f64]) -> bool {
        let (m, n) = (self.m, self.n);
        if m % 2 != 0 || n % 2 != 0 {
            return false;
        }
        let (nr, nt) = (m / 2, n / 2);
        let (top, bottom) = h.split_at(nr * n);
        // Bit-pattern comparison of every pair (stricter than `==`: a ±0 mismatch falls back to
        // the real path, which is still correct), OR-accumulated so the check vectorizes.
        const SIGN: u64 = 1 << 63;
        let mut mismatch = 0u64;
        for (top, bottom) in top.chunks_exact(n).zip(bottom.chunks_exact(n)) {
            let (re, minus_im) = top.split_at(nt);
            let (im, re2) = bottom.split_at(nt);
            for (((a, b), c), d) in re.iter().zip(re2).zip(im).zip(minus_im) {
                mismatch |= (a.to_bits() ^ b.to_bits()) | (c.to_bits() ^ d.to_bits() ^ SIGN);
            }
        }
        if mismatch != 0 {
            return false;
        }
        for (i, (top, bottom)) in top.chunks_exact(n).zip(bottom.chunks_exact(n)).enumerate() {
            self.hr[i * nt..(i + 1) * nt].copy_from_slice(&top[..nt]);
            self.hi[i * nt..(i + 1) * nt].copy_from_slice(&bottom[..nt]);
        }
        self.yr.copy_from_slice(&y[..nr]);
        self.yi.copy_from_slice(&y[nr..]);
        true
    }

    /// Real path: Gram, Cholesky UᵀU, forward and back substitution into `self.x`.
    fn solve_real(&mut self, h: &[f64], y: &[f64], delta: f64) -> Result<(), String> {
        let n = self.n;
        let (g, z) = (&mut self.gram, &mut self.rhs);
        g.fill(0.0);
        z.fill(0.0);
        // Upper triangle of H̃ᵀH̃ as a sum of row outer products; H̃ᵀỹ likewise.
        for (row, &yi) in h.chunks_exact(n).zip(y) {
            for (zj, &a) in z.iter_mut().zip(row) {
                *zj += a * yi;
            }
            for (j, &a) in row.iter().enumerate() {
                for (gk, &b) in g[j * n + j..(j + 1) * n].iter_mut().zip(&row[j..]) {
                    *gk += a * b;
                }
            }
        }
        for j in 0..n {
            g[j * n + j] += delta;
        }
        // Right-looking Cholesky, G = UᵀU with U upper, in place.
        for j in 0..n {
            let d2 = g[j * n + j];
            if !(d2 > 0.0 && d2.is_finite()) {
                return Err(format!(
                    "the normal matrix is not positive definite (pivot {j})"
                ));
            }
            let d = d2.sqrt();
            let inv = 1.0 / d;
            g[j * n + j] = d;
            for v in &mut g[j * n + j + 1..(j + 1) * n] {
                *v *= inv;
            }
            let (head, tail) = g.split_at_mut((j + 1) * n);
            let urow = &head[j * n..];
            for (p, row) in (j + 1..n).zip(tail.chunks_exact_mut(n)) {
                let a = urow[p];
                for (v, &u) in row[p..].iter_mut().zip(&urow[p..]) {
                    *v -= a * u;
                }
            }
        }
        // Uᵀw = z (column-oriented, in place on z).
        for j in 0..n {
            let w = z[j] / g[j * n + j];
            z[j] = w;
            for (zk, &u) in z[j + 1..].iter_mut().zip(&g[j * n + j + 1..(j + 1) * n]) {
                *zk -= u * w;
            }
        }
        // U x = w.
        for j in (0..n).rev() {
            let row = &g[j * n + j + 1..(j + 1) * n];
            let s: f64 = row.iter().zip(&self.x[j + 1..]).map(|(u, x)| u * x).sum();
            self.x[j] = (z[j] - s) / g[j * n + j];
        }
        Ok(())
    }

    /// Complex path on the loaded H and y: writes [Re x̂; Im x̂] into `self.x`.
    fn solve_complex(&mut self, delta: f64) -> Result<(), String> {
        let nt = self.n / 2;
        let (gr, gi, zr, zi) = (&mut self.gr, &mut self.gi, &mut self.zr, &mut self.zi);
        let inv_diag = &mut self.inv_diag;
        gr.fill(0.0);
        gi.fill(0.0);
        zr.fill(0.0);
        zi.fill(0.0);
        // z_j = Σ_i conj(h_ij)·y_i.
        for ((hr, hi), (&yr, &yi)) in self
            .hr
            .chunks_exact(nt)
            .zip(self.hi.chunks_exact(nt))
            .zip(self.yr.iter().zip(&self.yi))
        {
            for (((zr, zi), &a), &b) in zr.iter_mut().zip(zi.iter_mut()).zip(hr).zip(hi) {
                *zr += a * yr + b * yi;
                *zi += a * yi - b * yr;
            }
        }
        // Upper triangle of HᴴH, G_jk = Σ_i conj(h_ij)·h_ik, four rows of H per sweep over G so
        // that each load and store of G carries four complex products.
        let mut rows_r = self.hr.chunks_exact(4 * nt);
        let mut rows_i = self.hi.chunks_exact(4 * nt);
        for (block_r, block_i) in (&mut rows_r).zip(&mut rows_i) {
            gram_rows4(block_r, block_i, gr, gi, nt);
        }
        for (hr, hi) in rows_r
            .remainder()
            .chunks_exact(nt)
            .zip(rows_i.remainder().chunks_exact(nt))
        {
            gram_row(hr, hi, gr, gi, nt);
        }
        for j in 0..nt {
            gr[j * nt + j] += delta;
        }
        // Right-looking complex Cholesky, G = UᴴU with U upper and a real positive diagonal.
        for j in 0..nt {
            let d2 = gr[j * nt + j];
            if !(d2 > 0.0 && d2.is_finite()) {
                return Err(format!(
                    "the normal matrix is not positive definite (pivot {j})"
                ));
            }
            let d = d2.sqrt();
            let inv = 1.0 / d;
            gr[j * nt + j] = d;
            gi[j * nt + j] = 0.0;
            inv_diag[j] = inv;
            for v in &mut gr[j * nt + j + 1..(j + 1) * nt] {
                *v *= inv;
            }
            for v in &mut gi[j * nt + j + 1..(j + 1) * nt] {
                *v *= inv;
            }
            let (rhead, rtail) = gr.split_at_mut((j + 1) * nt);
            let (ihead, itail) = gi.split_at_mut((j + 1) * nt);
            let (ur, ui) = (&rhead[j * nt..], &ihead[j * nt..]);
            for ((p, rrow), irow) in (j + 1..nt)
                .zip(rtail.chunks_exact_mut(nt))
                .zip(itail.chunks_exact_mut(nt))
            {
                // G_pk −= conj(U_jp)·U_jk for k ≥ p.
                let (a, b) = (ur[p], ui[p]);
                for (((gre, gim), &cr), &ci) in rrow[p..]
                    .iter_mut()
                    .zip(&mut irow[p..])
                    .zip(&ur[p..])
                    .zip(&ui[p..])
                {
                    *gre -= a * cr + b * ci;
                    *gim -= a * ci - b * cr;
                }
            }
        }
        // Uᴴw = z (column-oriented, in place on z): z_k −= conj(U_jk)·w_j.
        for j in 0..nt {
            let inv = inv_diag[j];
            let (wr, wi) = (zr[j] * inv, zi[j] * inv);
            zr[j] = wr;
            zi[j] = wi;
            let span = j * nt + j + 1..(j + 1) * nt;
            for (((zkr, zki), &ur), &ui) in zr[j + 1..]
                .iter_mut()
                .zip(&mut zi[j + 1..])
                .zip(&gr[span.clone()])
                .zip(&gi[span])
            {
                *zkr -= ur * wr + ui * wi;
                *zki -= ur * wi - ui * wr;
            }
        }
        // U x = w: x_j = (w_j − Σ_{k>j} U_jk·x_k) / U_jj.
        let (xr, xi) = self.x.split_at_mut(nt);
        for j in (0..nt).rev() {
            let span = j * nt + j + 1..(j + 1) * nt;
            let (mut sr, mut si) = (0.0, 0.0);
            for (((&ur, &ui), &vr), &vi) in gr[span.clone()]
                .iter()
                .zip(&gi[span])
                .zip(&xr[j + 1..])
                .zip(&xi[j + 1..])
            {
                sr += ur * vr - ui * vi;
                si += ur * vi + ui * vr;
            }
            let inv = inv_diag[j];
            xr[j] = (zr[j] - sr) * inv;
            xi[j] = (zi[j] - si) * inv;
        }
        Ok(())
    }
}

/// Adds conj(h_j)·h_k of one row of H (re `hr`, im `hi`, length nt) to the upper triangle of G.
fn gram_row(hr: &[f64], hi: &[f64], gr: &mut [f64], gi: &mut [f64], nt: usize) {
    for j in 0..nt {
        let (a, b) = (hr[j], hi[j]);
        let span = j * nt + j..(j + 1) * nt;
        for (((gre, gim), &cr), &ci) in gr[span.clone()]
            .iter_mut()
            .zip(&mut gi[span])
            .zip(&hr[j..])
            .zip(&hi[j..])
        {
            *gre += a * cr + b * ci;
            *gim += a * ci - b * cr;
        }
    }
}

/// [`gram_row`] for four consecutive rows of H (`hr`, `hi` hold 4 × nt values).
#[allow(clippy::needless_range_loop)] // one index walks ten equal-length slices
fn gram_rows4(hr: &[f64], hi: &[f64], gr: &mut [f64], gi: &mut [f64], nt: usize) {
    let (r0, r1, r2, r3) = (
        &hr[..nt],
        &hr[nt..2 * nt],
        &hr[2 * nt..3 * nt],
        &hr[3 * nt..4 * nt],
    );
    let (i0, i1, i2, i3) = (
        &hi[..nt],
        &hi[nt..2 * nt],
        &hi[2 * nt..3 * nt],
        &hi[3 * nt..4 * nt],
    );
    for j in 0..nt {
        let (a0, a1, a2, a3) = (r0[j], r1[j], r2[j], r3[j]);
        let (b0, b1, b2, b3) = (i0[j], i1[j], i2[j], i3[j]);
        let len = nt - j;
        let gre = &mut gr[j * nt + j..(j + 1) * nt];
        let gim = &mut gi[j * nt + j..(j + 1) * nt];
        let (c0, c1, c2, c3) = (&r0[j..], &r1[j..], &r2[j..], &r3[j..]);
        let (d0, d1, d2, d3) = (&i0[j..], &i1[j..], &i2[j..], &i3[j..]);
        for k in 0..len {
            gre[k] += (a0 * c0[k] + b0 * d0[k] + a1 * c1[k] + b1 * d1[k])
                + (a2 * c2[k] + b2 * d2[k] + a3 * c3[k] + b3 * d3[k]);
            gim[k] += (a0 * d0[k] - b0 * c0[k] + a1 * d1[k] - b1 * c1[k])
                + (a2 * d2[k] - b2 * c2[k] + a3 * d3[k] - b3 * c3[k]);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::link::{LinkConfig, stream_rng};
    use crate::modulation::Modulation;

    fn batch(
        nt: usize,
        nr: usize,
        modulation: Modulation,
        snr_db: &[f64],
        seed: u64,
    ) -> FrameBatch {
        let link = LinkConfig::new(nt, nr, modulation).unwrap();
        link.generator()
            .unwrap()
            .generate(snr_db, &mut stream_rng(seed, 0))
    }

    /// Condition number of H̃ᵀH̃ + δI of frame `f` (nalgebra SVD).
    fn normal_matrix_condition(kind: LinearKind, b: &FrameBatch, f: usize) -> f64 {
        let delta = LinearDetector::new(kind, Kernel::Fast)
            .regularization(b, f)
            .unwrap();
        let h = DMatrix::from_row_slice(b.m, b.n, b.h(f));
        let gram = h.transpose() * &h + DMatrix::identity(b.n, b.n) * delta;
        let sv = gram.singular_values();
        sv.max() / sv.min()
    }

    /// Runs fast and reference kernels of `kind` and checks they agree.
    fn assert_kernels_agree(kind: LinearKind, b: &FrameBatch) -> Result<(), TestCaseError> {
        let fast = LinearDetector::new(kind, Kernel::Fast);
        let reference = LinearDetector::new(kind, Kernel::Reference);
        let size = b.frames * b.n;
        let (mut xf, mut xr) = (vec![0.0; size], vec![0.0; size]);
        fast.estimate(b, &mut xf).unwrap();
        reference.estimate(b, &mut xr).unwrap();
        for f in 0..b.frames {
            let (a, r) = (&xf[f * b.n..(f + 1) * b.n], &xr[f * b.n..(f + 1) * b.n]);
            let scale = r.iter().fold(1.0f64, |acc, v| acc.max(v.abs()));
            let diff = a
                .iter()
                .zip(r)
                .fold(0.0f64, |acc, (p, q)| acc.max((p - q).abs()));
            // Two backward-stable solvers agree to O(κ·ε) relative, κ the condition number of
            // the normal matrix: 1e-9 relative up to κ = 1e5, proportionally looser beyond
            // (a near-singular square ZF system can reach κ ~ 1e9).
            let kappa = normal_matrix_condition(kind, b, f);
            let tolerance = 1e-9 * (kappa / 1e5).max(1.0);
            prop_assert!(
                diff <= tolerance * scale,
                "{kind:?} frame {f}: |fast − reference| = {diff:e}, scale {scale}, κ = {kappa:e}"
            );
        }
        let (mut df, mut dr) = (vec![0; size], vec![0; size]);
        fast.detect(b, &mut df).unwrap();
        reference.detect(b, &mut dr).unwrap();
        prop_assert_eq!(df, dr);
        Ok(())
    }

    fn modulation() -> impl Strategy<Value = Modulation> {
        prop::sample::select(Modulation::ALL.to_vec())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Structured QAM batches take the complex path, BPSK the real path.
        #[test]
        fn fast_kernel_matches_nalgebra_reference(
            nt in 1usize..=8,
            extra in 0usize..=4,
            modulation in modulation(),
            snr_db in -5.0f64..30.0,
            seed in any::<u64>(),
        ) {
            let b = batch(nt, nt + extra, modulation, &[snr_db; 4], seed);
            assert_kernels_agree(LinearKind::Mmse, &b)?;
            assert_kernels_agree(LinearKind::Zf, &b)?;
        }

        /// A QAM batch whose H̃ lacks the complex block structure falls back to the real path.
        #[test]
        fn fast_kernel_matches_reference_without_complex_structure(
            nt in 1usize..=8,
            extra in 0usize..=4,
            modulation in prop::sample::select(vec![Modulation::Qpsk, Modulation::Qam16, Modulation::Qam64]),
            snr_db in -5.0f64..30.0,
            seed in any::<u64>(),
        ) {
            let mut b = batch(nt, nt + extra, modulation, &[snr_db; 4], seed);
            let mut rng = stream_rng(seed, 1);
            for v in &mut b.h {
                *v += 0.05 * rand::Rng::random_range(&mut rng, -1.0..1.0);
            }
            assert_kernels_agree(LinearKind::Mmse, &b)?;
            assert_kernels_agree(LinearKind::Zf, &b)?;
        }
    }

    #[test]
    fn complex_path_is_taken_only_for_structured_channels() {
        let b = batch(3, 4, Modulation::Qam16, &[10.0], 3);
        let mut scratch = Scratch::new(b.m, b.n);
        assert!(scratch.load_complex(b.h(0), b.y(0)));
        let mut h = b.h(0).to_vec();
        h[b.n - 1] += 1e-3; // breaks H̃[0][n−1] = −H̃[nr][nt−1]
        assert!(!scratch.load_complex(&h, b.y(0)));
    }

    #[test]
    fn noiseless_frames_are_recovered_exactly() {
        // With no noise, ZF returns x̃ itself up to rounding; MMSE decisions equal x̃ at high SNR.
        let mut b = batch(4, 6, Modulation::Qam64, &[60.0; 50], 11);
        for f in 0..b.frames {
            let (h, x) = (b.h(f).to_vec(), b.x(f).to_vec());
            for (yi, row) in b.y[f * b.m..(f + 1) * b.m]
                .iter_mut()
                .zip(h.chunks_exact(b.n))
            {
                *yi = row.iter().zip(&x).map(|(a, &s)| a * s as f64).sum();
            }
        }
        let mut xhat = vec![0.0; b.frames * b.n];
        LinearDetector::zf().estimate(&b, &mut xhat).unwrap();
        for (e, &x) in xhat.iter().zip(&b.x) {
            assert!((e - x as f64).abs() < 1e-9, "ZF estimate {e} for level {x}");
        }
        let mut d = vec![0; b.frames * b.n];
        LinearDetector::mmse().detect(&b, &mut d).unwrap();
        assert_eq!(d, b.x);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let b = batch(2, 2, Modulation::Qpsk, &[10.0; 3], 5);
        let det = LinearDetector::mmse();
        assert!(matches!(
            det.detect(&b, &mut [0; 11]),
            Err(ModelError::Shape(_))
        ));
        assert!(matches!(
            det.estimate(&b, &mut [0.0; 13]),
            Err(ModelError::Shape(_))
        ));
        let mut short = b.clone();
        short.y.pop();
        assert!(matches!(
            det.detect(&short, &mut [0; 12]),
            Err(ModelError::Shape(_))
        ));
        let mut negative = b.clone();
        negative.noise_var[1] = -1.0;
        assert!(matches!(
            det.detect(&negative, &mut [0; 12]),
            Err(ModelError::InvalidParameter {
                name: "noise_var",
                ..
            })
        ));
        // ZF on more streams than receive antennas has a singular normal matrix.
        for kernel in [Kernel::Fast, Kernel::Reference] {
            let wide = batch(4, 2, Modulation::Qam16, &[10.0; 2], 6);
            let zf = LinearDetector::new(LinearKind::Zf, kernel);
            assert!(
                matches!(
                    zf.detect(&wide, &mut [0; 16]),
                    Err(ModelError::DetectFailed { frame: 0, .. })
                ),
                "{kernel:?}"
            );
        }
        // A non-finite channel is a failure, not a panic.
        let mut nan = b.clone();
        nan.h[0] = f64::NAN;
        assert!(det.detect(&nan, &mut [0; 12]).is_err());
    }
}
