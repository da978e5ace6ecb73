//! Post-training quantization of an EPNet ([`super::ep`]) to an IR version 5 document
//! ([`kaq_ir::gram::ep::EpIr`], docs/ir.md §12), and the golden model as a [`Detector`].
//!
//! One float pass over calibration frames runs the IR's dataflow in f64 — per layer the LDLᵀ
//! inverse of A = G + diag(ℓ) with the same intermediate tensors (E = LD, the pivots'
//! reciprocals, L, W = L⁻¹, V = D⁻¹W, P = WᵀV), μ, c, 1/c, the cavity (u, t, h), the exact
//! Gauss-QAM moments, and the update through 1/v′ and 1/P_ii — with s2 of the frame's SNR bin,
//! and records the magnitude of every tensor class; each format takes the step its
//! [`Calibration`] picks at its width (docs/ir.md §12.6).

use rand::Rng;

use kaq_ir::fixed::{Divide, OverflowMode, QFormat, RoundingMode, max_code};
use kaq_ir::gram::ep::{
    EP_IR_VERSION, EpFamily, EpFormats, EpInterpreter, EpInverse, EpIr, EpUpdate, Moments,
};
use kaq_ir::gram::{BinCoef, Coef, Divisor, Reciprocal};
use kaq_ir::{Inputs, IrError, SnrBins};

use super::denoise::GaussQam;
use super::quantized::{Calibration, bin_s2, choose_frac, fmt, frac_for};
use super::{Family, GramNet};
use crate::detect::Detector;
use crate::error::ModelError;
use crate::link::{FrameBatch, stream_rng};

/// The f32 net's floor of the cavity factor c (`ep::C_MIN`): the d_min of 1/c.
pub const C_FLOOR: f64 = 1e-5;

/// Options of the PTQ lowering of an EPNet ("b bits", docs/ir.md §12.6).
#[derive(Debug, Clone, PartialEq)]
pub struct EpQuantOptions {
    /// Bits of the posterior mean m (the state) and of the cavity mean t (the table address).
    pub bits: u32,
    /// Bits of the input codes H̃, ỹ.
    pub input_bits: u32,
    /// Bits of G and z.
    pub wide_bits: u32,
    /// Bits of the inverse's tensors E, L, W, V, P, the pivots' reciprocals, and of the
    /// per-vector state ℓ = s2·λ, g = s2·γ, μ and u.
    pub inverse_bits: u32,
    /// Bits of c, 1/c, h, v, 1/v′, 1/P_ii and s2.
    pub scalar_bits: u32,
    /// Bits of β, 1 − β.
    pub coef_bits: u32,
    /// The calibration of every format.
    pub calibration: Calibration,
    /// h buckets of the moment tables.
    pub buckets: usize,
    /// The SNR bins.
    pub snr_bins: SnrBins,
    /// Calibration frames.
    pub calib_frames: usize,
    /// Calibration SNR range in dB.
    pub calib_snr: (f64, f64),
    /// Seed of the calibration frames.
    pub seed: u64,
}

impl EpQuantOptions {
    /// PTQ at `bits`: m, t at b; H̃, ỹ at b + 2; G, z at b + 8 (≤ 24); the inverse's tensors,
    /// ℓ, g, μ and u at 24; the cavity and update scalars at 24; β at 16; 64 h buckets; MSE
    /// calibration on 1000 frames at 14–24 dB (the net's training range).
    pub fn new(bits: u32) -> Self {
        Self {
            bits,
            input_bits: (bits + 2).min(24),
            wide_bits: (bits + 8).min(24),
            inverse_bits: 24,
            scalar_bits: 24,
            coef_bits: 16,
            calibration: Calibration::Mse,
            buckets: 64,
            snr_bins: SnrBins::default(),
            calib_frames: 1000,
            calib_snr: (14.0, 24.0),
            seed: 0x006b_6171_3136,
        }
    }
}

/// The float parameters of an EPNet: β_k and ε_k of the K − 1 updates.
#[derive(Debug, Clone)]
struct EpParams {
    beta: Vec<f64>,
    floor: Vec<f64>,
}

impl EpParams {
    fn of(net: &GramNet) -> Self {
        let k = net.config().layers - 1;
        let off = net.offsets();
        let p = net.params();
        Self {
            beta: p[off[0]..off[0] + k]
                .iter()
                .map(|&v| f64::from(v))
                .collect(),
            floor: p[off[1]..off[1] + k]
                .iter()
                .map(|&v| f64::from(v).exp())
                .collect(),
        }
    }
}

/// Magnitudes recorded by the float pass.
#[derive(Debug, Clone, Default)]
struct Stats {
    h: Vec<f32>,
    y: Vec<f32>,
    g: Vec<f32>,
    z: Vec<f32>,
    load: Vec<f32>,
    gam: Vec<f32>,
    ld: Vec<f32>,
    pivot_inv: Vec<f32>,
    l: Vec<f32>,
    w: Vec<f32>,
    v: Vec<f32>,
    q: Vec<f32>,
    mu: Vec<f32>,
    c: Vec<f32>,
    c_inv: Vec<f32>,
    tn: Vec<f32>,
    t: Vec<f32>,
    hv: Vec<f32>,
    var: Vec<f32>,
    v_inv: Vec<f32>,
    q_inv: Vec<f32>,
}

fn rec(slot: &mut Vec<f32>, v: f64) {
    slot.push(v.abs() as f32);
}

/// P = A⁻¹ by the IR's LDLᵀ chain (docs/ir.md §11.3) in f64, recording into `st`.
fn ldl_f64(a: &[f64], n: usize, p: &mut [f64], st: &mut Stats) {
    let mut e = vec![0f64; n * n];
    let mut l = vec![0f64; n * n];
    let mut pinv = vec![0f64; n];
    for c in 0..n {
        for i in c..n {
            let mut s = a[i * n + c];
            for k in 0..c {
                s -= e[i * n + k] * l[c * n + k];
            }
            e[i * n + c] = s;
            rec(&mut st.ld, s);
        }
        pinv[c] = 1.0 / e[c * n + c];
        rec(&mut st.pivot_inv, pinv[c]);
        for i in c + 1..n {
            l[i * n + c] = e[i * n + c] * pinv[c];
            rec(&mut st.l, l[i * n + c]);
        }
    }
    let mut w = vec![0f64; n * n];
    for c in 0..n {
        w[c * n + c] = 1.0;
        for i in c + 1..n {
            let mut s = 0.0;
            for k in c..i {
                s -= l[i * n + k] * w[k * n + c];
            }
            w[i * n + c] = s;
            rec(&mut st.w, s);
        }
    }
    let mut v = vec![0f64; n * n];
    for r in 0..n {
        for c in 0..=r {
            v[r * n + c] = pinv[r] * w[r * n + c];
            rec(&mut st.v, v[r * n + c]);
        }
    }
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (i..n).map(|k| w[k * n + i] * v[k * n + j]).sum();
            p[i * n + j] = s;
            p[j * n + i] = s;
            rec(&mut st.q, s);
        }
    }
}

/// The IR's dataflow (docs/ir.md §12.3) in f64 over the calibration frames.
fn float_pass(net: &GramNet, p: &EpParams, opts: &EpQuantOptions, frames: &FrameBatch) -> Stats {
    float_pass_out(net, p, opts, frames).0
}

/// [`float_pass`] and the last layer's posterior means (`frames × n`).
fn float_pass_out(
    net: &GramNet,
    p: &EpParams,
    opts: &EpQuantOptions,
    frames: &FrameBatch,
) -> (Stats, Vec<f64>) {
    let (m, n) = (frames.m, frames.n);
    let layers = net.config().layers;
    let mut st = Stats::default();
    let mut out = Vec::with_capacity(frames.frames * n);
    let gq = GaussQam::<f64>::new(net.link().modulation);
    let es = super::es_dim(net.link());
    let signal = net.link().nt as f64 / net.link().nr as f64 * net.link().modulation.es();
    let mut g = vec![0f64; n * n];
    let mut a = vec![0f64; n * n];
    let mut pm = vec![0f64; n * n];
    for f in 0..frames.frames {
        let h = &frames.h[f * m * n..(f + 1) * m * n];
        let y = &frames.y[f * m..(f + 1) * m];
        h.iter().for_each(|&v| rec(&mut st.h, v));
        y.iter().for_each(|&v| rec(&mut st.y, v));
        let bin = opts
            .snr_bins
            .bin(10.0 * (signal / frames.noise_var[f]).log10());
        let s2 = f64::from(bin_s2(net, &opts.snr_bins, bin));
        for i in 0..n {
            for j in 0..n {
                g[i * n + j] = (0..m).map(|r| h[r * n + i] * h[r * n + j]).sum();
            }
        }
        g.iter().for_each(|&v| rec(&mut st.g, v));
        let z: Vec<f64> = (0..n)
            .map(|j| (0..m).map(|r| h[r * n + j] * y[r]).sum())
            .collect();
        z.iter().for_each(|&v| rec(&mut st.z, v));
        let mut load = vec![s2 / es; n];
        let mut gam = vec![0f64; n];
        for k in 0..layers {
            a.copy_from_slice(&g);
            for i in 0..n {
                a[i * n + i] += load[i];
                rec(&mut st.load, load[i]);
                rec(&mut st.gam, gam[i]);
            }
            ldl_f64(&a, n, &mut pm, &mut st);
            let mus: Vec<f64> = (0..n)
                .map(|i| (0..n).map(|j| pm[i * n + j] * (z[j] + gam[j])).sum())
                .collect();
            for i in 0..n {
                let mu = mus[i];
                rec(&mut st.mu, mu);
                let q = pm[i * n + i];
                let c = 1.0 - q * load[i];
                rec(&mut st.c, c);
                let cc = c.max(C_FLOOR);
                rec(&mut st.c_inv, 1.0 / cc);
                let tn = mu - q * gam[i];
                rec(&mut st.tn, tn);
                let t = tn / cc;
                let hv = s2 * q / cc;
                rec(&mut st.t, t);
                rec(&mut st.hv, hv);
                let post = gq.eval(t, hv.max(1e-12));
                rec(&mut st.var, post.var);
                if k + 1 == layers {
                    out.push(post.mean);
                    continue;
                }
                let vf = post.var.max(p.floor[k]);
                let iv = 1.0 / vf;
                let iq = 1.0 / q;
                rec(&mut st.v_inv, iv);
                rec(&mut st.q_inv, iq);
                let lh = s2 * iv - cc * iq;
                let gh = s2 * post.mean * iv - tn * iq;
                // ℓ̂ and ĝ are held at the load's and g's formats before the mix.
                rec(&mut st.load, lh);
                rec(&mut st.gam, gh);
                let (lh, gh) = if lh < 0.0 {
                    (load[i], gam[i])
                } else {
                    (lh, gh)
                };
                let b = p.beta[k];
                load[i] = b * lh + (1.0 - b) * load[i];
                gam[i] = b * gh + (1.0 - b) * gam[i];
            }
        }
    }
    (st, out)
}

/// The last layer's posterior means of the f64 dataflow of docs/ir.md §12.3 (s2 of each
/// frame's SNR bin), `frames × n`: what the golden model approximates.
pub fn float_outputs(net: &GramNet, opts: &EpQuantOptions, frames: &FrameBatch) -> Vec<f64> {
    float_pass_out(net, &EpParams::of(net), opts, frames).1
}

/// A constant's code at `bits`: the finest frac (0..=40) holding |v|.
fn coef(v: f64, bits: u32) -> Coef {
    let frac = frac_for(v.abs() as f32, bits).clamp(0, 40);
    Coef {
        code: code_f64(v, frac, bits),
        frac,
    }
}

/// clamp(⌊v·2^frac + ½⌋, ±Q(width)) in f64.
fn code_f64(v: f64, frac: i32, width: u32) -> i64 {
    let qp = max_code(width) as f64;
    (v * 2f64.powi(frac) + 0.5).floor().clamp(-qp, qp) as i64
}

/// The value at quantile `q` of `samples`.
fn quantile(samples: &[f32], q: f64) -> f64 {
    let mut v: Vec<f32> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f32::total_cmp);
    let at = ((q * v.len() as f64) as usize).min(v.len() - 1);
    f64::from(v[at])
}

/// The moment tables: representatives geometric between the 0.1 % and 99.9 % quantiles of the
/// calibration h (at least one h LSB), thresholds at the geometric midpoints rounded up to h
/// codes; entry [j][i] = the quantizers of the Gauss-QAM mean (at `state`) and variance (at
/// `var`) at t = (i − 2^(w−1))·2^−f_t, h = rep_j, except at the saturating t codes ±Q(t),
/// which hold the limits as |t| → ∞ (the outer level, variance 0).
fn build_moments(
    net: &GramNet,
    st: &Stats,
    formats: (QFormat, QFormat, QFormat, QFormat),
    buckets: usize,
) -> Moments {
    let (t, h, state, var) = formats;
    let gq = GaussQam::<f64>::new(net.link().modulation);
    let lsb = 2f64.powi(-h.frac());
    let hmax = max_code(h.width()) as f64 * lsb;
    let lo = quantile(&st.hv, 0.001).max(lsb);
    let hi = quantile(&st.hv, 0.999).min(hmax).max(lo * 4.0);
    let nb = buckets.max(1);
    let ratio = if nb > 1 {
        (hi / lo).powf(1.0 / (nb - 1) as f64)
    } else {
        1.0
    };
    let reps: Vec<f64> = (0..nb).map(|j| lo * ratio.powi(j as i32)).collect();
    let thresholds = (1..nb)
        .map(|j| ((reps[j - 1] * reps[j]).sqrt() / lsb).ceil() as i64)
        .collect();
    let half = 1i64 << (t.width() - 1);
    let tstep = 2f64.powi(-t.frac());
    let edge = (net.link().modulation.levels_per_dim() - 1).max(1) as f64;
    let (mut mean, mut vars) = (Vec::with_capacity(nb), Vec::with_capacity(nb));
    for &rep in &reps {
        let (mut mr, mut vr) = (Vec::new(), Vec::new());
        for i in 0..2 * half {
            // The saturating codes ±Q(t) stand for every |t| beyond the range (the cavity of a
            // site whose c is small has |t| far beyond the alphabet): their entries are the
            // limits as |t| → ∞, the outer level with variance 0. Entry 0 (t = −2^(w−1)) is
            // never addressed (t saturates symmetrically).
            let code = i - half;
            let (mean, v) = if code.abs() >= half - 1 {
                (code.signum() as f64 * edge, 0.0)
            } else {
                let post = gq.eval(code as f64 * tstep, rep);
                (post.mean, post.var)
            };
            mr.push(code_f64(mean, state.frac(), state.width()));
            vr.push(code_f64(v, var.frac(), var.width()).max(0));
        }
        mean.push(mr);
        vars.push(vr);
    }
    Moments {
        thresholds,
        representatives: reps,
        mean,
        var: vars,
    }
}

/// PTQ of an EPNet: calibrates every format, quantizes every constant and builds the IR v5
/// document, validated. Errors name the tensor that cannot be expressed.
pub fn lower_ep(net: &GramNet, opts: &EpQuantOptions) -> Result<EpIr, ModelError> {
    if net.config().family != Family::Ep {
        return Err(IrError::Lower(format!(
            "{}: lower_ep lowers the ep family",
            net.config().family
        ))
        .into());
    }
    if !(2..=12).contains(&opts.bits) {
        return Err(IrError::Lower(format!(
            "bits = {}: must be 2..=12 (t has that width; each table row has 2^width entries)",
            opts.bits
        ))
        .into());
    }
    for (name, w, hi) in [
        ("input_bits", opts.input_bits, 24),
        ("wide_bits", opts.wide_bits, 32),
        ("inverse_bits", opts.inverse_bits, 32),
        ("scalar_bits", opts.scalar_bits, 32),
        ("coef_bits", opts.coef_bits, 24),
    ] {
        if !(2..=hi).contains(&w) {
            return Err(IrError::Lower(format!("{name} = {w}: must be 2..={hi}")).into());
        }
    }
    let link = net.link().clone();
    let p = EpParams::of(net);
    let mut rng = stream_rng(opts.seed, 16);
    let snr: Vec<f64> = (0..opts.calib_frames)
        .map(|_| rng.random_range(opts.calib_snr.0..opts.calib_snr.1))
        .collect();
    let mut plain = link.clone();
    plain.block = 1;
    let frames = plain.generator()?.generate(&snr, &mut rng);
    let st = float_pass(net, &p, opts, &frames);
    let cal = opts.calibration;
    let calibrated = |w: u32, s: &[f32]| fmt(w, choose_frac(&[s], w, cal));
    let h_in = calibrated(opts.input_bits, &st.h)?;
    let y_in = calibrated(opts.input_bits, &st.y)?;
    // m is a posterior mean, within the alphabet's outer levels: nothing may clip.
    let edge = (link.modulation.levels_per_dim() - 1).max(1) as f32;
    let state = fmt(opts.bits, frac_for(edge, opts.bits))?;
    let wb = opts.wide_bits;
    // A = G + diag(ℓ) is held at ℓ's frac, which must not be below G's: G gives up
    // resolution where the load's range needs a coarser step (at b ≥ 10 G is wider than ℓ).
    let load_frac = choose_frac(&[&st.load], opts.inverse_bits, cal);
    let g = fmt(wb, choose_frac(&[&st.g], wb, cal).min(load_frac))?;
    // μ = P(z + g) aligns the two products P·z and P·g: their fracs may differ by at most
    // the headroom each leaves below 2^62 (small nets calibrate z far finer than g).
    let ib = opts.inverse_bits;
    let nbits = (usize::BITS - link.n().leading_zeros()) as i32;
    let gam_cal = choose_frac(&[&st.gam], ib, cal);
    let z_cal = choose_frac(&[&st.z], wb, cal);
    let up = 61 - nbits - 2 * (ib as i32 - 1);
    let down = 61 - nbits - (ib as i32 - 1) - (wb as i32 - 1);
    let z = fmt(wb, z_cal.min(gam_cal + up.max(0)))?;
    let gam = fmt(ib, gam_cal.min(z.frac() + down.max(0)))?;
    let recip = |w: u32,
                 samples: &[f32],
                 divisor: QFormat,
                 d_min: i64,
                 kind: Divisor|
     -> Result<Reciprocal, IrError> {
        let frac = choose_frac(&[samples], w, cal);
        let shift = frac + divisor.frac();
        if !(0..=63).contains(&shift) {
            return Err(IrError::Lower(format!(
                "reciprocal pre-shift {shift} is outside 0..=63"
            )));
        }
        Ok(Reciprocal {
            op: Divide::new(
                shift as u32,
                d_min.max(1),
                RoundingMode::HalfUp,
                OverflowMode::SaturateSymmetric,
                w,
            )
            .map_err(|e| IrError::Lower(e.to_string()))?,
            divisor: kind,
            format: fmt(w, frac)?,
        })
    };
    let ld = calibrated(ib, &st.ld)?;
    let q = calibrated(ib, &st.q)?;
    let inverse = EpInverse {
        ld,
        pivot_inv: recip(ib, &st.pivot_inv, ld, 1, Divisor::Clamped)?,
        l: fmt(ib, choose_frac(&[&st.l], ib, cal).min(ib as i32 - 2))?,
        w: fmt(ib, choose_frac(&[&st.w], ib, cal).clamp(0, ib as i32 - 2))?,
        v: calibrated(ib, &st.v)?,
        q,
    };
    let sb = opts.scalar_bits;
    let load = fmt(ib, load_frac)?;
    let c = fmt(sb, choose_frac(&[&st.c], sb, cal).clamp(0, 40))?;
    let var = fmt(sb, frac_for(link.modulation.es() as f32, sb))?;
    let c_min = (C_FLOOR * 2f64.powi(c.frac())).ceil() as i64;
    let floors: Vec<i64> = p
        .floor
        .iter()
        .map(|&e| code_f64(e, var.frac(), var.width()).max(1))
        .collect();
    // t's heavy tail (sites whose cavity factor c is small) would set a step coarser than the
    // alphabet: beyond 2·edge the posterior is the outer level for every h the tables hold, so
    // the calibration sees |t| clipped there and the table saturates t.
    let t_clip: Vec<f32> = st.t.iter().map(|&v| v.min(2.0 * edge)).collect();
    let t = calibrated(opts.bits, &t_clip)?;
    let formats = EpFormats {
        load,
        gam,
        mu: calibrated(ib, &st.mu)?,
        c,
        c_inv: recip(sb, &st.c_inv, c, c_min, Divisor::Clamped)?,
        tn: calibrated(ib, &st.tn)?,
        t,
        h: calibrated(sb, &st.hv)?,
        var,
        // Every floor is a code ≥ 1 = d_min: v′ ≥ d_min is proved.
        v_inv: recip(sb, &st.v_inv, var, 1, Divisor::Proved)?,
        q_inv: recip(sb, &st.q_inv, q, 1, Divisor::Clamped)?,
    };
    let bins = opts.snr_bins.count;
    let es = super::es_dim(&link);
    let s2s: Vec<f64> = (0..bins)
        .map(|b| f64::from(bin_s2(net, &opts.snr_bins, b)))
        .collect();
    let s2max = s2s.iter().copied().fold(0.0, f64::max);
    let s2f = frac_for(s2max as f32, sb).clamp(0, 40);
    let s2 = BinCoef {
        codes: s2s.iter().map(|&v| code_f64(v, s2f, sb)).collect(),
        frac: s2f,
    };
    let init_load = s2s
        .iter()
        .map(|&v| code_f64(v / es, load.frac(), load.width()).max(0))
        .collect();
    let updates = (0..p.beta.len())
        .map(|k| EpUpdate {
            floor: floors[k],
            beta: coef(p.beta[k], opts.coef_bits),
            keep: coef(1.0 - p.beta[k], opts.coef_bits),
        })
        .collect();
    let moments = build_moments(net, &st, (t, formats.h, state, var), opts.buckets);
    let levels = link.modulation.levels_per_dim();
    let step = 2f64.powi(-state.frac());
    let slicer = (1..levels)
        .map(|j| (((2 * j) as f64 - levels as f64) / step).ceil() as i64)
        .collect();
    let ir = EpIr {
        format: kaq_ir::IR_FORMAT.into(),
        version: EP_IR_VERSION,
        name: format!("ep-k{}-ptq-{}b", net.config().layers, opts.bits),
        family: EpFamily::Ep,
        modulation: link.modulation,
        nt: link.nt,
        nr: link.nr,
        m: link.m(),
        n: link.n(),
        snr_bins: opts.snr_bins,
        inputs: Inputs { h: h_in, y: y_in },
        state,
        g,
        z,
        s2,
        init_load,
        inverse,
        formats,
        layers: net.config().layers,
        updates,
        moments,
        slicer,
    };
    ir.validate()?;
    Ok(ir)
}

impl Detector for EpInterpreter {
    /// The IR's name with `-int`.
    fn name(&self) -> String {
        format!("{}-int", self.ir().name)
    }

    fn detect(&self, frames: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError> {
        frames.check_decisions(decisions)?;
        Ok(self.detect_received(&frames.received(), decisions)?)
    }
}
