//! The quantized cg net: post-training quantization (PTQ) of a float [`GramNet`] of the `cg`
//! family, its fake-quant forward in f32, and its lowering to an IR v2 document
//! ([`kaq_ir::gram::GramIr`], docs/ir.md §10).
//!
//! The fake-quant forward holds every tensor the hardware holds — the input codes, G, 1/tr G,
//! D, z, ‖y‖², e, v², every p, d and ρ, r, τ² and x — rounded half-up and saturated
//! symmetrically to the IR's power-of-two formats, its constants quantized to the IR's codes,
//! and the denoiser read from the IR's bucketed table, so that on equal inputs it computes the
//! integer model's values except where f32 rounding differs from the exact integers
//! (docs/fixed-point.md §5). Every rounding is a plain f32 expression of the float
//! parameters, so a straight-through estimator can later train them.
//!
//! PTQ: one float pass over calibration frames records the magnitude of every value of every
//! tensor class (per layer); each format takes the power-of-two step its [`Calibration`]
//! picks at its width (default: the step of least squared rounding-plus-clipping error), so
//! the result is a function of the options and the seed alone.

use rand::Rng;

use kaq_ir::fixed::{Divide, OverflowMode, QFormat, RoundingMode, max_code};
use kaq_ir::gram::{
    BinCoef, BinShift, BlockStage, Coef, Denoiser, Divisor, GRAM_IR_VERSION, GramFamily,
    GramInterpreter, GramIr, GramLayer, InnerStep, LayerFormats, Reciprocal, VectorFront,
};
use kaq_ir::{Inputs, IrError, SnrBins};

use super::denoise::GaussQam;
use super::{Family, GramNet};
use crate::detect::Detector;
use crate::error::ModelError;
use crate::link::{FrameBatch, stream_rng};

/// A tensor class of the quantized cg net: one format (per layer where the IR has per-layer
/// formats) or, for `Coef`, the codes of every learned constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgTensor {
    /// The input codes H̃.
    H,
    /// The input codes ỹ.
    Y,
    /// G = H̃ᵀH̃ (an accumulator-class register, held per block).
    G,
    /// z = H̃ᵀỹ (an accumulator-class register).
    Z,
    /// ‖ỹ‖² and the noise constants.
    Yy,
    /// The reciprocal 1/tr G.
    InvTrace,
    /// The reciprocals D = diag(G)⁻¹.
    DiagInv,
    /// The layer state x (fixed: the finest step holding the outermost level).
    State,
    /// The residuals e and ρ.
    E,
    /// The search directions p.
    P,
    /// The corrections d.
    D,
    /// The denoiser input r.
    R,
    /// The residual variance v².
    V2,
    /// The denoiser variance τ².
    Tau2,
    /// The constants ω, β, γ, e^a (their codes' width).
    Coef,
}

impl CgTensor {
    /// Every class, in the order of the docs' table.
    pub const ALL: [CgTensor; 15] = [
        Self::H,
        Self::Y,
        Self::G,
        Self::Z,
        Self::Yy,
        Self::InvTrace,
        Self::DiagInv,
        Self::State,
        Self::E,
        Self::P,
        Self::D,
        Self::R,
        Self::V2,
        Self::Tau2,
        Self::Coef,
    ];

    /// The short name (`h`, `y`, `g`, `z`, `yy`, `inv_trace`, `diag_inv`, `state`, `e`, `p`,
    /// `d`, `r`, `v2`, `tau2`, `coef`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::H => "h",
            Self::Y => "y",
            Self::G => "g",
            Self::Z => "z",
            Self::Yy => "yy",
            Self::InvTrace => "inv_trace",
            Self::DiagInv => "diag_inv",
            Self::State => "state",
            Self::E => "e",
            Self::P => "p",
            Self::D => "d",
            Self::R => "r",
            Self::V2 => "v2",
            Self::Tau2 => "tau2",
            Self::Coef => "coef",
        }
    }
}

impl std::str::FromStr for CgTensor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
                format!(
                    "unknown tensor {s:?} (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// How a format's power-of-two step is chosen from the values the calibration pass recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Calibration {
    /// The finest step whose codes hold the largest magnitude (nothing clips).
    Max,
    /// The finest step whose codes hold the given quantile (in (0, 1]) of the magnitudes.
    Percentile(f64),
    /// The step minimizing the summed squared error (rounding and clipping) over the recorded
    /// values, searched from the `Max` step down to 2⁻¹⁰ of it; ties take the coarser step.
    Mse,
}

impl std::str::FromStr for Calibration {
    type Err = String;

    /// `max`, `mse` or `pQ` with Q a percentage (`p99.9`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "max" => Ok(Self::Max),
            "mse" => Ok(Self::Mse),
            _ => {
                let q: f64 = s
                    .strip_prefix('p')
                    .and_then(|v| v.parse().ok())
                    .filter(|q: &f64| *q > 0.0 && *q <= 100.0)
                    .ok_or_else(|| {
                        format!("calibration {s:?}: expected max, mse or pQ, 0 < Q ≤ 100")
                    })?;
                Ok(Self::Percentile(q / 100.0))
            }
        }
    }
}

/// Options of the PTQ lowering of a cg net.
#[derive(Debug, Clone, PartialEq)]
pub struct CgQuantOptions {
    /// Bits of the state x and of the per-vector activations p, d, r (and of e, ρ unless
    /// `widths` says otherwise; [`CgQuantOptions::new`] puts them at bits + 4).
    pub bits: u32,
    /// Bits of the input codes H̃, ỹ.
    pub input_bits: u32,
    /// Bits of G and z.
    pub wide_bits: u32,
    /// Bits of the scalars 1/tr G, D, v², τ² and of every constant's code.
    pub scalar_bits: u32,
    /// Per-class widths that replace the four above (last entry of a class wins).
    pub widths: Vec<(CgTensor, u32)>,
    /// The calibration of every format.
    pub calibration: Calibration,
    /// Per-class calibrations that replace `calibration` (last entry of a class wins).
    pub calibrations: Vec<(CgTensor, Calibration)>,
    /// Variance buckets of the denoiser table.
    pub buckets: usize,
    /// The SNR bins.
    pub snr_bins: SnrBins,
    /// Calibration frames.
    pub calib_frames: usize,
    /// Calibration SNR range in dB.
    pub calib_snr: (f64, f64),
    /// Seed of the calibration frames.
    pub seed: u64,
    /// KAQ's SNR-adaptive step for e (and ρ), p and d: each layer's format moves per SNR bin
    /// by the IR's `bin_shift` (docs/ir.md §10.8), the shifts from [`bin_shifts`] of the
    /// calibration pass; the IR is then version 3.
    pub bin_adaptive: bool,
    /// Per layer: the width of the narrow copy of G its inner steps read for ρ (docs/ir.md
    /// §10.9, the IR's `g_inner`); empty, or an entry at or above G's width, reads the full G.
    pub g_inner: Vec<u32>,
}

impl CgQuantOptions {
    /// PTQ at `bits` with the defaults of docs/ir.md §10.6 (what "b bits" means for
    /// the Gram nets): x, p, d, r at b bits; the inputs at b + 2; the residuals e, ρ at b + 4
    /// and G, z at b + 8 (accumulator-class registers, at most 24); scalars and constants at
    /// 16; 32 buckets, the default SNR bins; MSE calibration on 2000 frames at 15–27 dB (the
    /// training range of the cg nets, docs/f32-nets.md).
    pub fn new(bits: u32) -> Self {
        Self {
            bits,
            input_bits: (bits + 2).min(24),
            wide_bits: (bits + 8).min(24),
            scalar_bits: 16,
            widths: vec![(CgTensor::E, (bits + 4).min(24))],
            calibration: Calibration::Mse,
            calibrations: Vec::new(),
            buckets: 32,
            snr_bins: SnrBins::default(),
            calib_frames: 2000,
            calib_snr: (15.0, 27.0),
            seed: 0x006b_6171_3136,
            bin_adaptive: false,
            g_inner: Vec::new(),
        }
    }

    /// The per-layer [`CgQuantOptions::g_inner`] of `widths` given for a `layers`-layer net:
    /// none, one for every layer, or one per layer; `None` for any other count.
    pub fn g_inner_per_layer(widths: &[u32], layers: usize) -> Option<Vec<u32>> {
        match widths {
            [] => Some(Vec::new()),
            [w] => Some(vec![*w; layers]),
            ws if ws.len() == layers => Some(ws.to_vec()),
            _ => None,
        }
    }

    /// The width of class `t`.
    pub fn width(&self, t: CgTensor) -> u32 {
        if let Some(&(_, w)) = self.widths.iter().rev().find(|(c, _)| *c == t) {
            return w;
        }
        match t {
            CgTensor::H | CgTensor::Y => self.input_bits,
            CgTensor::G | CgTensor::Z => self.wide_bits,
            CgTensor::Yy => 24,
            CgTensor::InvTrace
            | CgTensor::DiagInv
            | CgTensor::V2
            | CgTensor::Tau2
            | CgTensor::Coef => self.scalar_bits,
            CgTensor::State | CgTensor::E | CgTensor::P | CgTensor::D | CgTensor::R => self.bits,
        }
    }

    /// The calibration of class `t`.
    pub fn calibration_of(&self, t: CgTensor) -> Calibration {
        self.calibrations
            .iter()
            .rev()
            .find(|(c, _)| *c == t)
            .map_or(self.calibration, |&(_, c)| c)
    }
}

/// The magnitudes the float pass recorded, per tensor class (per layer where the IR has
/// per-layer formats).
#[derive(Debug, Clone, Default)]
struct Stats {
    h: Vec<f32>,
    y: Vec<f32>,
    g: Vec<f32>,
    inv_trace: Vec<f32>,
    diag_inv: Vec<f32>,
    z: Vec<f32>,
    yy: Vec<f32>,
    e: Vec<Vec<f32>>,
    p: Vec<Vec<f32>>,
    d: Vec<Vec<f32>>,
    r: Vec<Vec<f32>>,
    v2: Vec<Vec<f32>>,
    tau2: Vec<Vec<f32>>,
    /// The SNR bin of every calibration frame (each frame adds the same number of samples to
    /// every per-layer class, so frame f's samples of e are `e[k][f·c..(f + 1)·c]`).
    bins: Vec<usize>,
}

fn upd(slot: &mut Vec<f32>, v: f32) {
    slot.push(v.abs());
}

/// The float parameters of a cg net in the order the forward uses them.
#[derive(Debug, Clone)]
pub(super) struct CgParams {
    pub(super) layers: usize,
    pub(super) inner: usize,
    pub(super) delta_scale: Vec<f32>,
    pub(super) gamma: Vec<f32>,
    pub(super) tv: Vec<f32>,
    pub(super) ts: Vec<f32>,
    pub(super) omega: Vec<f32>,
    pub(super) beta: Vec<f32>,
}

impl CgParams {
    pub(super) fn of(net: &GramNet) -> Self {
        let c = net.config();
        let (k, l) = (c.layers, c.inner);
        let off = net.offsets();
        let p = net.params();
        let block = |i: usize, len: usize| p[off[i]..off[i] + len].to_vec();
        let exp = |v: Vec<f32>| v.into_iter().map(f32::exp).collect();
        Self {
            layers: k,
            inner: l,
            delta_scale: exp(block(0, k)),
            gamma: block(1, k),
            tv: exp(block(2, k)),
            ts: exp(block(3, k)),
            omega: block(4, k * l),
            beta: block(5, k * (l - 1)),
        }
    }

    pub(super) fn beta(&self, k: usize, l: usize) -> f32 {
        if l == 0 {
            0.0
        } else {
            self.beta[k * (self.inner - 1) + l - 1]
        }
    }
}

/// s2 = σ²/2 at the centre of SNR bin `bin` (σ² from SNR = N_t/N_r·E_s/σ²).
pub(super) fn bin_s2(net: &GramNet, bins: &SnrBins, bin: usize) -> f32 {
    let link = net.link();
    let signal = link.nt as f64 / link.nr as f64 * link.modulation.es();
    (0.5 * signal / 10f64.powf(bins.centre_db(bin) / 10.0)) as f32
}

/// The float cg forward with s2 from the frame's SNR bin, recording magnitudes: the same
/// equations as [`super::cg::forward`].
fn float_pass(
    net: &GramNet,
    p: &CgParams,
    opts: &CgQuantOptions,
    frames: &FrameBatch,
    st: &mut Stats,
) {
    let (m, n) = (frames.m, frames.n);
    let q = GaussQam::<f32>::new(net.link().modulation);
    let (k_n, l_n) = (p.layers, p.inner);
    for v in [
        &mut st.e,
        &mut st.p,
        &mut st.d,
        &mut st.r,
        &mut st.v2,
        &mut st.tau2,
    ] {
        v.resize(k_n, Vec::new());
    }
    let mut g = vec![0f32; n * n];
    let (mut z, mut x, mut e, mut rho, mut pv, mut d, mut tmp) = (
        vec![0f32; n],
        vec![0f32; n],
        vec![0f32; n],
        vec![0f32; n],
        vec![0f32; n],
        vec![0f32; n],
        vec![0f32; n],
    );
    let mut dinv = vec![0f32; n];
    let nt_nr = net.link().nt as f64 / net.link().nr as f64 * net.link().modulation.es();
    for f in 0..frames.frames {
        let h: Vec<f32> = frames.h[f * m * n..(f + 1) * m * n]
            .iter()
            .map(|&v| v as f32)
            .collect();
        let y: Vec<f32> = frames.y[f * m..(f + 1) * m]
            .iter()
            .map(|&v| v as f32)
            .collect();
        h.iter().for_each(|&v| upd(&mut st.h, v));
        y.iter().for_each(|&v| upd(&mut st.y, v));
        let bin = opts
            .snr_bins
            .bin(10.0 * (nt_nr / frames.noise_var[f]).log10());
        st.bins.push(bin);
        let s2 = bin_s2(net, &opts.snr_bins, bin);
        super::linalg::gram(&h, m, n, &mut g);
        g.iter().for_each(|&v| upd(&mut st.g, v));
        let trace: f32 = (0..n).map(|i| g[i * n + i]).sum();
        let it = 1.0 / trace;
        upd(&mut st.inv_trace, it);
        for i in 0..n {
            dinv[i] = 1.0 / g[i * n + i];
            upd(&mut st.diag_inv, dinv[i]);
        }
        super::linalg::transpose_mul(&h, &y, &mut z);
        z.iter().for_each(|&v| upd(&mut st.z, v));
        let yy: f32 = y.iter().map(|v| v * v).sum();
        upd(&mut st.yy, yy);
        upd(&mut st.yy, m as f32 * s2);
        x.fill(0.0);
        for k in 0..k_n {
            super::linalg::sym_mul(&g, &x, &mut tmp);
            for i in 0..n {
                e[i] = z[i] - tmp[i];
                upd(&mut st.e[k], e[i]);
            }
            let xz: f32 = x.iter().zip(&z).map(|(a, b)| a * b).sum();
            let xe: f32 = x.iter().zip(&e).map(|(a, b)| a * b).sum();
            let v2 = ((yy - xz - xe - m as f32 * s2) * it).max(super::oamp::V_FLOOR as f32);
            upd(&mut st.v2[k], v2);
            let delta = s2 * p.delta_scale[k];
            rho.copy_from_slice(&e);
            d.fill(0.0);
            pv.fill(0.0);
            for l in 0..l_n {
                let (b, w) = (p.beta(k, l), p.omega[k * l_n + l]);
                for i in 0..n {
                    pv[i] = dinv[i] * rho[i] + b * pv[i];
                    d[i] += w * pv[i];
                    upd(&mut st.p[k], pv[i]);
                    upd(&mut st.d[k], d[i]);
                }
                if l + 1 < l_n {
                    super::linalg::sym_mul(&g, &d, &mut tmp);
                    for i in 0..n {
                        rho[i] = e[i] - tmp[i] - delta * d[i];
                        upd(&mut st.e[k], rho[i]);
                    }
                }
            }
            let tau2 = p.tv[k] * v2 + p.ts[k] * s2;
            upd(&mut st.tau2[k], tau2);
            for i in 0..n {
                let r = x[i] + p.gamma[k] * d[i];
                upd(&mut st.r[k], r);
                x[i] = q.eval(r, tau2).mean;
            }
        }
    }
}

/// The finest power-of-two frac whose `width`-bit symmetric codes hold `max_abs`.
pub(super) fn frac_for(max_abs: f32, width: u32) -> i32 {
    let qp = max_code(width) as f64;
    if !(max_abs.is_finite() && max_abs > 0.0) {
        return 0;
    }
    ((qp / f64::from(max_abs)).log2().floor() as i32).clamp(-60, 60)
}

/// Every layer's samples of one class, as slices.
fn all(v: &[Vec<f32>]) -> Vec<&[f32]> {
    v.iter().map(Vec::as_slice).collect()
}

/// The frac of a `width`-bit format for the magnitudes `samples` under `cal` (at most 2¹⁸
/// of them, taken at an even stride, enter the quantile and the error sums).
pub(super) fn choose_frac(samples: &[&[f32]], width: u32, cal: Calibration) -> i32 {
    let total: usize = samples.iter().map(|s| s.len()).sum();
    let max = samples
        .iter()
        .flat_map(|s| s.iter())
        .copied()
        .fold(0.0f32, f32::max);
    let top = frac_for(max, width);
    if matches!(cal, Calibration::Max) || total == 0 || max <= 0.0 {
        return top;
    }
    let stride = total.div_ceil(1 << 18).max(1);
    let mut vals: Vec<f32> = samples
        .iter()
        .flat_map(|s| s.iter())
        .step_by(stride)
        .copied()
        .collect();
    match cal {
        Calibration::Max => top,
        Calibration::Percentile(q) => {
            vals.sort_by(f32::total_cmp);
            let at = ((q * vals.len() as f64).ceil() as usize).clamp(1, vals.len()) - 1;
            frac_for(vals[at], width).max(top)
        }
        Calibration::Mse => {
            let qp = max_code(width) as f64;
            let err = |frac: i32| -> f64 {
                let scale = 2f64.powi(frac);
                vals.iter()
                    .map(|&v| {
                        let v = f64::from(v);
                        let c = (v * scale + 0.5).floor().min(qp);
                        (c / scale - v).powi(2)
                    })
                    .sum()
            };
            let mut best = (top, err(top));
            for frac in top + 1..=(top + 10).min(60) {
                let e = err(frac);
                if e < best.1 {
                    best = (frac, e);
                }
            }
            best.0
        }
    }
}

pub(super) fn fmt(width: u32, frac: i32) -> Result<QFormat, IrError> {
    QFormat::signed(width, frac).map_err(|e| IrError::Lower(e.to_string()))
}

/// A constant's code at `bits`: the finest frac holding `v`, clamped to 0..=40.
fn coef(v: f32, bits: u32) -> Coef {
    let frac = frac_for(v, bits).clamp(0, 40);
    Coef {
        code: quant_code(v, frac, bits),
        frac,
    }
}

/// The quantizer on a code: clamp(⌊v·2^frac + ½⌋, ±Q_P) in f32.
pub(super) fn quant_code(v: f32, frac: i32, width: u32) -> i64 {
    let qp = max_code(width) as f32;
    (v * 2f32.powi(frac) + 0.5).floor().clamp(-qp, qp) as i64
}

/// Fewest calibration frames a bin needs for its own calibrated step to enter the fit.
const MIN_BIN_FRAMES: usize = 20;

/// KAQ's SNR-adaptive step of one per-layer class as per-bin frac shifts (docs/ir.md §10.8).
///
/// `samples` are the class's recorded magnitudes, `per_frame` of them per calibration frame,
/// frame f in SNR bin `frame_bins[f]`; `base` is the pooled calibrated frac. Each bin with at
/// least [`MIN_BIN_FRAMES`] frames gets its own calibrated step Δ_b = 2^−frac_b (the class's
/// calibration on that bin's frames alone); the step of eq. 15 (paper §3.3),
/// Δ(SNR) = α·SNR^−½ + γ with SNR linear at the bin centre, is fitted to them by least squares
/// (γ alone when only one bin has data, α = 0 when the fit's slope is negative); every bin's
/// shift is then round(−log2 Δ(SNR_b)) − base, clamped to ±`max_shift`. Deterministic.
#[allow(clippy::too_many_arguments)]
pub fn bin_shifts(
    samples: &[f32],
    per_frame: usize,
    frame_bins: &[usize],
    bins: &SnrBins,
    width: u32,
    cal: Calibration,
    base: i32,
    max_shift: i32,
) -> Vec<i32> {
    let mut by_bin: Vec<Vec<f32>> = vec![Vec::new(); bins.count];
    let mut frames = vec![0usize; bins.count];
    for (f, &b) in frame_bins.iter().enumerate() {
        if let Some(chunk) = samples.get(f * per_frame..(f + 1) * per_frame) {
            by_bin[b].extend_from_slice(chunk);
            frames[b] += 1;
        }
    }
    let pts: Vec<(f64, f64)> = (0..bins.count)
        .filter(|&b| frames[b] >= MIN_BIN_FRAMES)
        .map(|b| {
            let frac = choose_frac(&[&by_bin[b]], width, cal);
            (f64::from(bins.inv_sqrt_snr(b)), 2f64.powi(-frac))
        })
        .collect();
    if pts.is_empty() {
        return vec![0; bins.count];
    }
    let np = pts.len() as f64;
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / np,
        pts.iter().map(|p| p.1).sum::<f64>() / np,
    );
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let alpha = if sxx > 0.0 { (sxy / sxx).max(0.0) } else { 0.0 };
    let gamma = my - alpha * mx;
    let floor = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min) / 4.0;
    (0..bins.count)
        .map(|b| {
            let step = (alpha * f64::from(bins.inv_sqrt_snr(b)) + gamma).max(floor);
            let frac = (-step.log2()).round() as i32;
            (frac - base).clamp(-max_shift, max_shift)
        })
        .collect()
}

/// PTQ of a cg net: calibrates every format, quantizes every constant and builds the IR v2
/// document, validated. Errors name the tensor that cannot be expressed.
pub fn lower_cg(net: &GramNet, opts: &CgQuantOptions) -> Result<GramIr, ModelError> {
    if net.config().family != Family::Cg {
        return Err(IrError::Lower(format!(
            "{}: only the cg family lowers to IR v2 so far",
            net.config().family
        ))
        .into());
    }
    if !(2..=12).contains(&opts.width(CgTensor::R)) {
        return Err(IrError::Lower(format!(
            "r width = {}: must be 2..=12 (the denoiser table has 2^width entries)",
            opts.width(CgTensor::R)
        ))
        .into());
    }
    if !opts.g_inner.is_empty() && opts.g_inner.len() != net.config().layers {
        return Err(IrError::Lower(format!(
            "g_inner: {} widths for {} layers (one per layer, or none)",
            opts.g_inner.len(),
            net.config().layers
        ))
        .into());
    }
    if let Some(w) = opts.g_inner.iter().find(|&&w| w < 2) {
        return Err(IrError::Lower(format!("g_inner width = {w}: must be at least 2")).into());
    }
    if let Some(t) = CgTensor::ALL
        .iter()
        .find(|&&t| !(2..=24).contains(&opts.width(t)) && t != CgTensor::Yy)
    {
        return Err(IrError::Lower(format!(
            "{} width = {}: must be 2..=24",
            t.as_str(),
            opts.width(*t)
        ))
        .into());
    }
    let link = net.link().clone();
    let p = CgParams::of(net);
    let mut rng = stream_rng(opts.seed, 16);
    let snr: Vec<f64> = (0..opts.calib_frames)
        .map(|_| rng.random_range(opts.calib_snr.0..opts.calib_snr.1))
        .collect();
    let mut plain = link.clone();
    plain.block = 1;
    let frames = plain.generator()?.generate(&snr, &mut rng);
    let mut st = Stats::default();
    float_pass(net, &p, opts, &frames, &mut st);
    let w = |t: CgTensor| opts.width(t);
    // One class's format from its recorded magnitudes (several layers pooled where the IR
    // shares one format).
    let calibrated = |t: CgTensor, samples: &[&[f32]]| -> Result<QFormat, IrError> {
        fmt(w(t), choose_frac(samples, w(t), opts.calibration_of(t)))
    };
    let frac_of =
        |t: CgTensor, samples: &[&[f32]]| choose_frac(samples, w(t), opts.calibration_of(t));
    let bins = opts.snr_bins.count;
    let h = calibrated(CgTensor::H, &[&st.h])?;
    let y = calibrated(CgTensor::Y, &[&st.y])?;
    let levels = link.modulation.levels_per_dim();
    let state_w = w(CgTensor::State);
    let state = fmt(state_w, frac_for((levels - 1).max(1) as f32, state_w))?;
    let g = calibrated(CgTensor::G, &[&st.g])?;
    let recip = |t: CgTensor, samples: &[f32]| -> Result<Reciprocal, IrError> {
        let sc = w(t);
        let frac = frac_of(t, &[samples]);
        let shift = frac + g.frac();
        if !(0..=63).contains(&shift) {
            return Err(IrError::Lower(format!(
                "reciprocal pre-shift {shift} is outside 0..=63"
            )));
        }
        Ok(Reciprocal {
            op: Divide::new(
                shift as u32,
                1,
                RoundingMode::HalfUp,
                OverflowMode::SaturateSymmetric,
                sc,
            )
            .map_err(|e| IrError::Lower(e.to_string()))?,
            divisor: Divisor::Clamped,
            format: fmt(sc, frac)?,
        })
    };
    let block = BlockStage {
        g,
        inv_trace: recip(CgTensor::InvTrace, &st.inv_trace)?,
        diag_inv: recip(CgTensor::DiagInv, &st.diag_inv)?,
    };
    let yy = calibrated(CgTensor::Yy, &[&st.yy])?;
    let s2: Vec<f32> = (0..bins).map(|i| bin_s2(net, &opts.snr_bins, i)).collect();
    let front = VectorFront {
        z: calibrated(CgTensor::Z, &[&st.z])?,
        yy,
        noise: s2
            .iter()
            .map(|&v| quant_code(link.m() as f32 * v, yy.frac(), 31))
            .collect(),
    };
    let tau2 = calibrated(CgTensor::Tau2, &all(&st.tau2))?;
    let tau2_max = st
        .tau2
        .iter()
        .flatten()
        .copied()
        .fold(0.0f32, f32::max)
        .min(max_code(tau2.width()) as f32 * 2f32.powi(-tau2.frac()));
    // r only indexes the denoiser table, so its range need not pass the point beyond which
    // every table row gives the outer level: a layer whose inner recurrence diverges on some
    // channels (an r of 2^15 where the constellation ends at 3) would otherwise set the one r
    // format every layer shares.
    // so each calibration sample counts only up to the saturation point of the table row its
    // τ² selects (the row above, to be safe against the row's rounding).
    let reps = denoiser_reps(tau2, tau2_max, opts.buckets);
    let sat: Vec<f32> = reps
        .iter()
        .map(|&t| denoiser_saturation(net, state, t))
        .collect();
    let n = link.n();
    let r_seen: Vec<Vec<f32>> = (0..p.layers)
        .map(|k| {
            st.r[k]
                .iter()
                .enumerate()
                .map(|(j, &v)| {
                    let t = f64::from(st.tau2[k][j / n]);
                    let row = reps.iter().filter(|&&rep| rep < t).count();
                    v.min(sat[row.min(sat.len() - 1)])
                })
                .collect()
        })
        .collect();
    let r_fmt = calibrated(CgTensor::R, &all(&r_seen))?;
    let cw = w(CgTensor::Coef);
    let mut layers = Vec::with_capacity(p.layers);
    for k in 0..p.layers {
        let formats = LayerFormats {
            e: calibrated(CgTensor::E, &[&st.e[k]])?,
            p: calibrated(CgTensor::P, &[&st.p[k]])?,
            d: calibrated(CgTensor::D, &[&st.d[k]])?,
            r: r_fmt,
            v2: calibrated(CgTensor::V2, &[&st.v2[k]])?,
            tau2,
        };
        let dmax = s2.iter().fold(0.0f32, |a, &v| a.max(v * p.delta_scale[k]));
        let dfrac = frac_for(dmax, 24).clamp(-40, 40);
        let delta = BinCoef {
            codes: s2
                .iter()
                .map(|&v| quant_code(v * p.delta_scale[k], dfrac, 24))
                .collect(),
            frac: dfrac,
        };
        let ts = BinCoef {
            codes: s2
                .iter()
                .map(|&v| quant_code(v * p.ts[k], tau2.frac(), 31))
                .collect(),
            frac: tau2.frac(),
        };
        let steps = (0..p.inner)
            .map(|l| InnerStep {
                omega: coef(p.omega[k * p.inner + l], cw),
                beta: coef(p.beta(k, l), cw),
            })
            .collect();
        layers.push(GramLayer {
            formats,
            v2_floor: quant_code(
                super::oamp::V_FLOOR as f32,
                formats.v2.frac(),
                formats.v2.width(),
            )
            .max(0),
            delta,
            gamma: coef(p.gamma[k], cw),
            tv: coef(p.tv[k], cw),
            ts,
            steps,
            bin_shift: None,
            g_inner: opts
                .g_inner
                .get(k)
                .copied()
                .filter(|&w| w < opts.width(CgTensor::G)),
        });
    }
    if opts.bin_adaptive {
        let frames = st.bins.len().max(1);
        for (k, l) in layers.iter_mut().enumerate() {
            let f = l.formats;
            let sh = |t: CgTensor, v: &[f32], q: QFormat| {
                bin_shifts(
                    v,
                    v.len() / frames,
                    &st.bins,
                    &opts.snr_bins,
                    q.width(),
                    opts.calibration_of(t),
                    q.frac(),
                    kaq_ir::gram::MAX_BIN_SHIFT.min(8),
                )
            };
            l.bin_shift = Some(BinShift {
                e: sh(CgTensor::E, &st.e[k], f.e),
                p: sh(CgTensor::P, &st.p[k], f.p),
                d: sh(CgTensor::D, &st.d[k], f.d),
            });
        }
    }
    let denoiser = build_denoiser(net, r_fmt, tau2, state, opts.buckets, tau2_max)?;
    let step = 2f64.powi(-state.frac());
    let slicer = (1..levels)
        .map(|j| {
            let boundary = (2 * j) as f64 - levels as f64;
            (boundary / step).ceil() as i64
        })
        .collect();
    let cfg = net.config();
    let ir = GramIr {
        format: kaq_ir::IR_FORMAT.into(),
        version: if opts.bin_adaptive {
            kaq_ir::gram::GRAM_IR_VERSION_BIN_SHIFT
        } else {
            GRAM_IR_VERSION
        },
        name: format!(
            "cg-k{}-l{}-{}-{}b",
            cfg.layers,
            cfg.inner,
            if opts.bin_adaptive { "kaq" } else { "ptq" },
            opts.bits
        ),
        family: GramFamily::Cg,
        modulation: link.modulation,
        nt: link.nt,
        nr: link.nr,
        m: link.m(),
        n: link.n(),
        snr_bins: opts.snr_bins,
        inputs: Inputs { h, y },
        state,
        block,
        front,
        layers,
        denoiser,
        slicer,
    };
    ir.validate()?;
    Ok(ir)
}

/// The representative τ² of the denoiser table's rows: geometric from max(10⁻³, one τ² LSB)
/// to the calibrated largest τ².
fn denoiser_reps(tau2: QFormat, tau2_max: f32, buckets: usize) -> Vec<f64> {
    let lo = 2f64.powi(-tau2.frac()).max(1e-3);
    let hi = f64::from(tau2_max).max(lo * 4.0);
    let nb = buckets.max(1);
    let ratio = if nb > 1 {
        (hi / lo).powf(1.0 / (nb - 1) as f64)
    } else {
        1.0
    };
    (0..nb).map(|j| lo * ratio.powi(j as i32)).collect()
}

/// An r (within 1/64 of the smallest) beyond which the Gauss-QAM mean at τ² = `tau2`,
/// quantized to the state format, is the outer level: the mean grows with r, so the table
/// row of that τ² is constant from there on.
fn denoiser_saturation(net: &GramNet, state: QFormat, tau2: f64) -> f32 {
    let q = GaussQam::<f32>::new(net.link().modulation);
    let edge = (net.link().modulation.levels_per_dim() - 1).max(1) as f32;
    let top = quant_code(edge, state.frac(), state.width());
    let outer =
        |r: f32| quant_code(q.eval(r, tau2 as f32).mean, state.frac(), state.width()) >= top;
    let (mut lo, mut hi) = (0.0f32, edge);
    while hi < 2f32.powi(30) && !outer(hi) {
        (lo, hi) = (hi, 2.0 * hi);
    }
    for _ in 0..6 {
        let mid = 0.5 * (lo + hi);
        if outer(mid) { hi = mid } else { lo = mid }
    }
    hi
}

/// The bucketed Gauss-QAM table: representatives geometric from max(10⁻³, one τ² LSB) to the
/// calibrated largest τ²; thresholds at the geometric midpoints, rounded up to τ² codes;
/// entry [j][i] = the quantizer (state format) of gq(f32((i − 2^(w−1))·2^−f_r), rep_j).m.
pub(super) fn build_denoiser(
    net: &GramNet,
    r: QFormat,
    tau2: QFormat,
    state: QFormat,
    buckets: usize,
    tau2_max: f32,
) -> Result<Denoiser, IrError> {
    let q = GaussQam::<f32>::new(net.link().modulation);
    let lsb = 2f64.powi(-tau2.frac());
    let reps = denoiser_reps(tau2, tau2_max, buckets);
    let nb = reps.len();
    let thresholds = (1..nb)
        .map(|j| ((reps[j - 1] * reps[j]).sqrt() / lsb).ceil() as i64)
        .collect();
    let table = denoiser_table(&q, r, state, &reps);
    Ok(Denoiser {
        thresholds,
        representatives: reps,
        table,
    })
}

/// The rows of the denoiser table at r's format: entry [j][i] = the quantizer (state format)
/// of gq(f32((i − 2^(w−1))·2^−f_r), reps[j]).m.
pub(super) fn denoiser_table(
    q: &GaussQam<f32>,
    r: QFormat,
    state: QFormat,
    reps: &[f64],
) -> Vec<Vec<i64>> {
    let half = 1i64 << (r.width() - 1);
    let rstep = 2f32.powi(-r.frac());
    reps.iter()
        .map(|&rep| {
            (0..2 * half)
                .map(|i| {
                    let rv = (i - half) as f32 * rstep;
                    quant_code(q.eval(rv, rep as f32).mean, state.frac(), state.width())
                })
                .collect()
        })
        .collect()
}

/// The fake-quant cg net: the float net's parameters, quantized in f32 to the formats and
/// codes of its IR at every use (module docs).
#[derive(Debug, Clone)]
pub struct FakeQuantCg {
    net: GramNet,
    ir: GramIr,
    opts: CgQuantOptions,
}

/// Q on a value: Δ·clamp(⌊v/Δ + ½⌋, ±Q_P) with Δ = 2^−frac, in f32.
#[inline]
fn qv(v: f32, f: QFormat) -> f32 {
    quant_code(v, f.frac(), f.width()) as f32 * 2f32.powi(-f.frac())
}

#[inline]
fn qv_code(v: f32, frac: i32, width: u32) -> f32 {
    quant_code(v, frac, width) as f32 * 2f32.powi(-frac)
}

impl FakeQuantCg {
    /// The fake-quant net of `net` at the formats of `ir` (from [`lower_cg`] of `net` with
    /// `opts`).
    pub fn new(net: GramNet, ir: GramIr, opts: CgQuantOptions) -> Self {
        Self { net, ir, opts }
    }

    /// The IR whose formats it uses.
    pub fn ir(&self) -> &GramIr {
        &self.ir
    }

    /// The float net whose parameters it quantizes.
    pub fn net(&self) -> &GramNet {
        &self.net
    }

    /// The options of its lowering.
    pub fn opts(&self) -> &CgQuantOptions {
        &self.opts
    }

    /// The state codes x⁽ᴷ⁾ of every frame (`frames × n`), blocks cut where H̃ or σ² changes.
    pub fn forward_codes(&self, frames: &FrameBatch) -> Vec<i64> {
        let ir = &self.ir;
        let p = CgParams::of(&self.net);
        let sc = self.opts.width(CgTensor::Coef);
        // Each constant quantized from its float value at the IR's frac (the codes of lower_cg).
        let qc = |v: f32, c: &Coef| quant_code(v, c.frac, sc) as f32 * 2f32.powi(-c.frac);
        let (m, n) = (ir.m, ir.n);
        let mut out = vec![0i64; frames.frames * n];
        let qin = |v: f64, f: QFormat| qv(v as f32, f);
        let mut h = vec![0f32; m * n];
        let mut g = vec![0f32; n * n];
        let (mut z, mut x, mut e, mut rho, mut pv, mut d, mut tmp, mut r) = (
            vec![0f32; n],
            vec![0f32; n],
            vec![0f32; n],
            vec![0f32; n],
            vec![0f32; n],
            vec![0f32; n],
            vec![0f32; n],
            vec![0f32; n],
        );
        let mut dinv = vec![0f32; n];
        // Per layer: the narrow inner copy of G it reads for ρ (`g_inner`), if any.
        let mut gi: Vec<Option<Vec<f32>>> = vec![None; ir.layers.len()];
        let (mut it, mut bin) = (0f32, 0usize);
        let b = &ir.block;
        let gstep = 2f32.powi(-b.g.frac());
        for f in 0..frames.frames {
            let new_block = f == 0
                || frames.noise_var[f] != frames.noise_var[f - 1]
                || frames.h[f * m * n..(f + 1) * m * n] != frames.h[(f - 1) * m * n..f * m * n];
            if new_block {
                for (o, &v) in h.iter_mut().zip(&frames.h[f * m * n..(f + 1) * m * n]) {
                    *o = qin(v, ir.inputs.h);
                }
                bin = ir.bin_of(frames.noise_var[f] as f32);
                super::linalg::gram(&h, m, n, &mut g);
                g.iter_mut().for_each(|v| *v = qv(*v, b.g));
                for (o, l) in gi.iter_mut().zip(&ir.layers) {
                    *o = (l.inner_g_shift(b.g) > 0).then(|| {
                        let f = l.inner_g(b.g);
                        g.iter().map(|&v| qv(v, f)).collect()
                    });
                }
                let trace: f32 = (0..n).map(|i| g[i * n + i]).sum();
                it = qv(1.0 / trace.max(gstep), b.inv_trace.format);
                for i in 0..n {
                    dinv[i] = qv(1.0 / g[i * n + i].max(gstep), b.diag_inv.format);
                }
            }
            let y: Vec<f32> = frames.y[f * m..(f + 1) * m]
                .iter()
                .map(|&v| qin(v, ir.inputs.y))
                .collect();
            super::linalg::transpose_mul(&h, &y, &mut z);
            z.iter_mut().for_each(|v| *v = qv(*v, ir.front.z));
            let yy = qv(y.iter().map(|v| v * v).sum(), ir.front.yy);
            let noise = ir.front.noise[bin] as f32 * 2f32.powi(-ir.front.yy.frac());
            x.fill(0.0);
            for (k, l) in ir.layers.iter().enumerate() {
                let fm = &l.formats_at(bin);
                super::linalg::sym_mul(&g, &x, &mut tmp);
                for i in 0..n {
                    e[i] = qv(z[i] - tmp[i], fm.e);
                }
                let xz: f32 = x.iter().zip(&z).map(|(a, b)| a * b).sum();
                let xe: f32 = x.iter().zip(&e).map(|(a, b)| a * b).sum();
                let floor = l.v2_floor as f32 * 2f32.powi(-fm.v2.frac());
                let v2 = qv((yy - xz - xe - noise) * it, fm.v2).max(floor);
                let s2 = bin_s2(&self.net, &ir.snr_bins, bin);
                let delta = qv_code(s2 * p.delta_scale[k], l.delta.frac, 24);
                rho.copy_from_slice(&e);
                d.fill(0.0);
                pv.fill(0.0);
                for (li, s) in l.steps.iter().enumerate() {
                    let (bc, wc) = (
                        qc(p.beta(k, li), &s.beta),
                        qc(p.omega[k * p.inner + li], &s.omega),
                    );
                    for i in 0..n {
                        pv[i] = qv(dinv[i] * rho[i] + bc * pv[i], fm.p);
                        d[i] = qv(d[i] + wc * pv[i], fm.d);
                    }
                    if li + 1 < l.steps.len() {
                        super::linalg::sym_mul(gi[k].as_ref().unwrap_or(&g), &d, &mut tmp);
                        for i in 0..n {
                            rho[i] = qv(e[i] - tmp[i] - delta * d[i], fm.e);
                        }
                    }
                }
                let ts = qv_code(s2 * p.ts[k], l.ts.frac, 31);
                let tau2 = qv(qc(p.tv[k], &l.tv) * v2 + ts, fm.tau2);
                let tau2_code = (tau2 * 2f32.powi(fm.tau2.frac())).round() as i64;
                let bucket = ir
                    .denoiser
                    .thresholds
                    .iter()
                    .filter(|&&t| tau2_code >= t)
                    .count();
                let row = &ir.denoiser.table[bucket];
                let half = 1i64 << (fm.r.width() - 1);
                let gm = qc(p.gamma[k], &l.gamma);
                for i in 0..n {
                    r[i] = qv(x[i] + gm * d[i], fm.r);
                    let code = (r[i] * 2f32.powi(fm.r.frac())).round() as i64;
                    x[i] = row[(code + half) as usize] as f32 * 2f32.powi(-ir.state.frac());
                }
            }
            for (o, &v) in out[f * n..(f + 1) * n].iter_mut().zip(&x) {
                *o = (v * 2f32.powi(ir.state.frac())).round() as i64;
            }
        }
        out
    }
}

impl Detector for FakeQuantCg {
    /// The IR's name with `-fq`.
    fn name(&self) -> String {
        format!("{}-fq", self.ir.name)
    }

    fn detect(&self, frames: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError> {
        frames.check_decisions(decisions)?;
        let codes = self.forward_codes(frames);
        for (d, &c) in decisions.iter_mut().zip(&codes) {
            *d = self.ir.decide(c);
        }
        Ok(())
    }
}

impl Detector for GramInterpreter {
    /// The IR's name with `-int`.
    fn name(&self) -> String {
        format!("{}-int", self.ir().name)
    }

    fn detect(&self, frames: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError> {
        frames.check_decisions(decisions)?;
        Ok(self.detect_received(&frames.received(), decisions)?)
    }
}

/// The IR of `net` at the formats of `template` (a lowering of a net of the same config with
/// `opts`): every constant's code recomputed from `net`'s parameters at the template's frac
/// (saturating, as the fake-quant forward does), every format, table and noise code kept. This
/// is how a net trained at fixed formats (QAT) lowers.
pub fn lower_cg_with(
    net: &GramNet,
    opts: &CgQuantOptions,
    template: &GramIr,
) -> Result<GramIr, ModelError> {
    let p = CgParams::of(net);
    if template.layers.len() != p.layers || template.inner() != p.inner {
        return Err(IrError::Lower(format!(
            "template has {} layers × {} steps, the net {} × {}",
            template.layers.len(),
            template.inner(),
            p.layers,
            p.inner
        ))
        .into());
    }
    let cw = opts.width(CgTensor::Coef);
    let code = |v: f32, c: &Coef| Coef {
        code: quant_code(v, c.frac, cw),
        frac: c.frac,
    };
    let mut ir = template.clone();
    let bins = ir.snr_bins.count;
    let s2: Vec<f32> = (0..bins).map(|i| bin_s2(net, &ir.snr_bins, i)).collect();
    for (k, l) in ir.layers.iter_mut().enumerate() {
        l.delta.codes = s2
            .iter()
            .map(|&v| quant_code(v * p.delta_scale[k], l.delta.frac, 24))
            .collect();
        l.ts.codes = s2
            .iter()
            .map(|&v| quant_code(v * p.ts[k], l.ts.frac, 31))
            .collect();
        l.gamma = code(p.gamma[k], &l.gamma);
        l.tv = code(p.tv[k], &l.tv);
        for (li, st) in l.steps.iter_mut().enumerate() {
            st.omega = code(p.omega[k * p.inner + li], &st.omega);
            st.beta = code(p.beta(k, li), &st.beta);
        }
    }
    ir.validate()?;
    Ok(ir)
}

/// Lowers `net` with PTQ at `opts` and returns the IR with its fake-quant net.
pub fn quantize_cg(net: &GramNet, opts: &CgQuantOptions) -> Result<FakeQuantCg, ModelError> {
    let ir = lower_cg(net, opts)?;
    Ok(FakeQuantCg::new(net.clone(), ir, opts.clone()))
}
