//! Post-training quantization of an OAMP-Net2 ([`super::oamp`]) to an IR version 4 document
//! ([`kaq_ir::gram::oamp::OampIr`], docs/ir.md §11), and the golden model as a [`Detector`].
//!
//! One float pass over calibration frames runs the IR's dataflow in f64 — the LDLᵀ inverse of
//! every bank entry with the same intermediate tensors (E = LD, the pivots' reciprocals, L,
//! W = L⁻¹, V = D⁻¹W, Q = WᵀV, P = δQ, 1/c, α, a, b), then the layers with s2 of the frame's
//! SNR bin — and records the magnitude of every tensor class; each format takes the step its
//! [`Calibration`] picks at its width (docs/ir.md §11.6).

use rand::Rng;

use kaq_ir::fixed::{Divide, OverflowMode, QFormat, RoundingMode, max_code};
use kaq_ir::gram::oamp::{
    Bank, OAMP_IR_VERSION, OampBlock, OampFamily, OampFormats, OampInterpreter, OampIr, OampLayer,
};
use kaq_ir::gram::{Coef, Divisor, Reciprocal, VectorFront};
use kaq_ir::{Inputs, IrError, SnrBins};

use super::denoise::GaussQam;
use super::quantized::{
    Calibration, bin_s2, build_denoiser, choose_frac, fmt, frac_for, quant_code,
};
use super::{Family, GramNet, OAMP_BANK, OAMP_BANK_RATIO};
use crate::detect::Detector;
use crate::error::ModelError;
use crate::link::{FrameBatch, stream_rng};

/// Options of the PTQ lowering of an OAMP net ("b bits", docs/ir.md §11.6).
#[derive(Debug, Clone, PartialEq)]
pub struct OampQuantOptions {
    /// Bits of the state x and of r.
    pub bits: u32,
    /// Bits of the input codes H̃, ỹ.
    pub input_bits: u32,
    /// Bits of the residual e and of g = Q_j e.
    pub residual_bits: u32,
    /// Bits of G, z and of the bank entries Q_j the layers read.
    pub wide_bits: u32,
    /// Bits of the inverse's internal tensors E, L, W, V, P and of the pivots' and c's
    /// reciprocals.
    pub bank_bits: u32,
    /// Bits of 1/tr G, v², τ², α, a, b and of every constant's code.
    pub scalar_bits: u32,
    /// The calibration of every format.
    pub calibration: Calibration,
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
}

impl OampQuantOptions {
    /// PTQ at `bits`: x, r at b; H̃, ỹ at b + 2; e, g at b + 4; G, z, Q at b + 8 (≤ 24); the
    /// inverse's internal tensors at 24; scalars and constants at 16; 32 buckets; MSE
    /// calibration on 2000 frames at 15–27 dB (the nets' training range).
    pub fn new(bits: u32) -> Self {
        Self {
            bits,
            input_bits: (bits + 2).min(24),
            residual_bits: (bits + 4).min(24),
            wide_bits: (bits + 8).min(24),
            bank_bits: 24,
            scalar_bits: 16,
            calibration: Calibration::Mse,
            buckets: 32,
            snr_bins: SnrBins::default(),
            calib_frames: 2000,
            calib_snr: (15.0, 27.0),
            seed: 0x006b_6171_3136,
        }
    }
}

/// The float parameters of an OAMP net, per layer.
#[derive(Debug, Clone)]
struct OampParams {
    gamma: Vec<f32>,
    theta: Vec<f32>,
    phi: Vec<f32>,
    xi: Vec<f32>,
}

impl OampParams {
    fn of(net: &GramNet) -> Self {
        let k = net.config().layers;
        let off = net.offsets();
        let p = net.params();
        let block = |i: usize| p[off[i]..off[i] + k].to_vec();
        Self {
            gamma: block(0),
            theta: block(1),
            phi: block(2),
            xi: block(3),
        }
    }
}

/// Magnitudes recorded by the float pass.
#[derive(Debug, Clone, Default)]
struct Stats {
    h: Vec<f32>,
    y: Vec<f32>,
    g: Vec<f32>,
    inv_trace: Vec<f32>,
    ld: Vec<f32>,
    pivot_inv: Vec<f32>,
    l: Vec<f32>,
    w: Vec<f32>,
    v: Vec<f32>,
    q: Vec<f32>,
    p: Vec<f32>,
    c_inv: Vec<f32>,
    alpha: Vec<f32>,
    sigma: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    z: Vec<f32>,
    yy: Vec<f32>,
    x: Vec<f32>,
    e: Vec<Vec<f32>>,
    gv: Vec<Vec<f32>>,
    r: Vec<f32>,
    v2: Vec<f32>,
    tau2: Vec<f32>,
}

fn rec(slot: &mut Vec<f32>, v: f64) {
    slot.push(v.abs() as f32);
}

/// One bank entry in f64 by the IR's algorithm (docs/ir.md §11.3); records into `st`.
/// Returns (Q, α, a, b).
pub(super) fn bank_entry_f64(
    g: &[f64],
    n: usize,
    delta: f64,
    prior: f64,
    st: Option<&mut StatsRef<'_>>,
) -> (Vec<f64>, f64, f64, f64) {
    let mut e = vec![0f64; n * n];
    let mut l = vec![0f64; n * n];
    let mut pinv = vec![0f64; n];
    for c in 0..n {
        for i in c..n {
            let mut s = g[i * n + c] + if i == c { delta } else { 0.0 };
            for k in 0..c {
                s -= e[i * n + k] * l[c * n + k];
            }
            e[i * n + c] = s;
        }
        pinv[c] = 1.0 / e[c * n + c];
        for i in c + 1..n {
            l[i * n + c] = e[i * n + c] * pinv[c];
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
        }
    }
    let mut v = vec![0f64; n * n];
    for r in 0..n {
        for c in 0..=r {
            v[r * n + c] = pinv[r] * w[r * n + c];
        }
    }
    let mut q = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (i..n).map(|k| w[k * n + i] * v[k * n + j]).sum();
            q[i * n + j] = s;
            q[j * n + i] = s;
        }
    }
    let (mut tp, mut sp) = (0.0, 0.0);
    let mut pmax = Vec::with_capacity(n * n);
    for i in 0..n {
        for j in 0..n {
            let p = delta * q[i * n + j];
            if i == j {
                tp += p;
            }
            sp += p * p;
            pmax.push(p);
        }
    }
    let nf = n as f64;
    let c = nf - tp;
    let s = tp - sp;
    let ci = 1.0 / c;
    let alpha = nf * ci;
    let sigma = s * ci;
    let a = alpha * (1.0 - sigma);
    let b = prior * alpha * sigma;
    if let Some(st) = st {
        for i in 0..n {
            for j in 0..=i {
                rec(st.ld, e[i * n + j]);
                if i > j {
                    rec(st.l, l[i * n + j]);
                    rec(st.w, w[i * n + j]);
                }
                rec(st.v, v[i * n + j]);
                rec(st.q, q[i * n + j]);
            }
            rec(st.pivot_inv, pinv[i]);
        }
        pmax.iter().for_each(|&p| rec(st.p, p));
        rec(st.p, s);
        rec(st.c_inv, ci);
        rec(st.alpha, alpha);
        rec(st.sigma, sigma);
        rec(st.a, a);
        rec(st.b, b);
    }
    (q, alpha, a, b)
}

/// The bank classes of [`Stats`], borrowed for [`bank_entry_f64`].
pub(super) struct StatsRef<'a> {
    ld: &'a mut Vec<f32>,
    pivot_inv: &'a mut Vec<f32>,
    l: &'a mut Vec<f32>,
    w: &'a mut Vec<f32>,
    v: &'a mut Vec<f32>,
    q: &'a mut Vec<f32>,
    p: &'a mut Vec<f32>,
    c_inv: &'a mut Vec<f32>,
    alpha: &'a mut Vec<f32>,
    sigma: &'a mut Vec<f32>,
    a: &'a mut Vec<f32>,
    b: &'a mut Vec<f32>,
}

/// δ_j of SNR bin `bin`: s2(bin)/E_s·8^j.
fn bank_delta(net: &GramNet, bins: &SnrBins, bin: usize, j: usize) -> f64 {
    f64::from(bin_s2(net, bins, bin)) / super::es_dim(net.link()) * OAMP_BANK_RATIO.powi(j as i32)
}

/// The smallest δ code (at `g`) whose 1/δ fits every format in `inverse` (at least 1 code):
/// the pivots' reciprocals and Q_j are at most 1/δ_j in exact arithmetic (the pivots of the SPD
/// A_j = G + δ_j I are ≥ λ_min(A_j) ≥ δ_j, and ‖A_j⁻¹‖₂ ≤ 1/δ_j bounds every entry of Q_j), so
/// with δ_j at or above this floor neither saturates on any channel (docs/ir.md §11.6). At high
/// SNR the LMMSE δ_j = s2·8^j/E_s falls below it and is raised to it.
pub(crate) fn delta_floor(g: QFormat, inverse: &[QFormat]) -> i64 {
    let top = inverse
        .iter()
        .map(|f| max_code(f.width()) as f64 * 2f64.powi(-f.frac()))
        .fold(f64::INFINITY, f64::min);
    ((2f64.powi(g.frac()) / top).ceil() as i64).clamp(1, max_code(g.width()))
}

/// The v² below which entry j + 1 is nearer than entry j: E_s/8^j/√8 (as the f32 stage).
fn bank_threshold(es: f64, j: usize) -> f64 {
    es / OAMP_BANK_RATIO.powi(j as i32) / OAMP_BANK_RATIO.sqrt()
}

fn float_pass(
    net: &GramNet,
    p: &OampParams,
    opts: &OampQuantOptions,
    frames: &FrameBatch,
) -> Stats {
    let (m, n) = (frames.m, frames.n);
    let k_n = p.gamma.len();
    let mut st = Stats {
        e: vec![Vec::new(); k_n],
        gv: vec![Vec::new(); k_n],
        ..Stats::default()
    };
    let q = GaussQam::<f64>::new(net.link().modulation);
    let es = super::es_dim(net.link());
    let signal = net.link().nt as f64 / net.link().nr as f64 * net.link().modulation.es();
    let mut g = vec![0f64; n * n];
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
        let trace: f64 = (0..n).map(|i| g[i * n + i]).sum();
        let it = 1.0 / trace;
        rec(&mut st.inv_trace, it);
        let mut bank = Vec::with_capacity(OAMP_BANK);
        for j in 0..OAMP_BANK {
            let mut sr = StatsRef {
                ld: &mut st.ld,
                pivot_inv: &mut st.pivot_inv,
                l: &mut st.l,
                w: &mut st.w,
                v: &mut st.v,
                q: &mut st.q,
                p: &mut st.p,
                c_inv: &mut st.c_inv,
                alpha: &mut st.alpha,
                sigma: &mut st.sigma,
                a: &mut st.a,
                b: &mut st.b,
            };
            let prior = es / OAMP_BANK_RATIO.powi(j as i32);
            bank.push(bank_entry_f64(
                &g,
                n,
                bank_delta(net, &opts.snr_bins, bin, j),
                prior,
                Some(&mut sr),
            ));
        }
        let z: Vec<f64> = (0..n)
            .map(|j| (0..m).map(|r| h[r * n + j] * y[r]).sum())
            .collect();
        z.iter().for_each(|&v| rec(&mut st.z, v));
        let yy: f64 = y.iter().map(|v| v * v).sum();
        rec(&mut st.yy, yy);
        rec(&mut st.yy, m as f64 * s2);
        let mut x = vec![0f64; n];
        let mut e = vec![0f64; n];
        for k in 0..k_n {
            for i in 0..n {
                e[i] = z[i] - (0..n).map(|j| g[i * n + j] * x[j]).sum::<f64>();
                rec(&mut st.e[k], e[i]);
            }
            let xz: f64 = x.iter().zip(&z).map(|(a, b)| a * b).sum();
            let xe: f64 = x.iter().zip(&e).map(|(a, b)| a * b).sum();
            let v2 = ((yy - xz - xe - m as f64 * s2) * it).max(super::oamp::V_FLOOR);
            rec(&mut st.v2, v2);
            let jb = (0..OAMP_BANK - 1)
                .filter(|&t| v2 < bank_threshold(es, t))
                .count();
            let (qj, alpha, a, b) = &bank[jb];
            let (theta, gamma) = (f64::from(p.theta[k]), f64::from(p.gamma[k]));
            let tau2 = v2 * (1.0 - 2.0 * theta + theta * theta * a) + theta * theta * b;
            rec(&mut st.tau2, tau2);
            let (phi, xi) = (f64::from(p.phi[k]), f64::from(p.xi[k]));
            for i in 0..n {
                let gi: f64 = (0..n).map(|j| qj[i * n + j] * e[j]).sum();
                rec(&mut st.gv[k], gi);
                let r = x[i] + gamma * alpha * gi;
                rec(&mut st.r, r);
                let mean = q.eval(r, tau2.max(1e-8)).mean;
                rec(&mut st.x, mean);
                x[i] = phi * (mean - xi * r);
                rec(&mut st.x, x[i]);
            }
        }
    }
    st
}

/// A constant's code at `bits`: the finest frac (0..=40) holding |v|.
pub(crate) fn coef(v: f64, bits: u32) -> Coef {
    let frac = frac_for(v.abs() as f32, bits).clamp(0, 40);
    let qp = max_code(bits) as f64;
    Coef {
        code: (v * 2f64.powi(frac) + 0.5).floor().clamp(-qp, qp) as i64,
        frac,
    }
}

/// PTQ of an OAMP net: calibrates every format, quantizes every constant and builds the IR
/// v4 document, validated. Errors name the tensor that cannot be expressed.
pub fn lower_oamp(net: &GramNet, opts: &OampQuantOptions) -> Result<OampIr, ModelError> {
    if net.config().family != Family::Oamp {
        return Err(IrError::Lower(format!(
            "{}: lower_oamp lowers the oamp family",
            net.config().family
        ))
        .into());
    }
    if !(2..=12).contains(&opts.bits) {
        return Err(IrError::Lower(format!(
            "bits = {}: must be 2..=12 (r has that width; the denoiser table has 2^width entries)",
            opts.bits
        ))
        .into());
    }
    for (name, w) in [
        ("input_bits", opts.input_bits),
        ("residual_bits", opts.residual_bits),
        ("wide_bits", opts.wide_bits),
        ("bank_bits", opts.bank_bits),
        ("scalar_bits", opts.scalar_bits),
    ] {
        if !(2..=24).contains(&w) {
            return Err(IrError::Lower(format!("{name} = {w}: must be 2..=24")).into());
        }
    }
    let link = net.link().clone();
    let p = OampParams::of(net);
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
    let h = calibrated(opts.input_bits, &st.h)?;
    let y = calibrated(opts.input_bits, &st.y)?;
    let state = fmt(
        opts.bits,
        choose_frac(&[&st.x], opts.bits, Calibration::Max),
    )?;
    let g = calibrated(opts.wide_bits, &st.g)?;
    let recip = |w: u32, samples: &[f32], divisor: QFormat| -> Result<Reciprocal, IrError> {
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
                1,
                RoundingMode::HalfUp,
                OverflowMode::SaturateSymmetric,
                w,
            )
            .map_err(|e| IrError::Lower(e.to_string()))?,
            divisor: Divisor::Clamped,
            format: fmt(w, frac)?,
        })
    };
    let bb = opts.bank_bits;
    let ld = calibrated(bb, &st.ld)?;
    // P = δQ has eigenvalues in [0, 1): its frac must be non-negative.
    let pf = fmt(bb, choose_frac(&[&st.p], bb, cal).max(0))?;
    // W's unit diagonal must be a code.
    let wf = fmt(bb, choose_frac(&[&st.w], bb, cal).clamp(0, bb as i32 - 2))?;
    let bins = opts.snr_bins.count;
    let es = super::es_dim(&link);
    let v2w = opts.scalar_bits;
    let v2f = fmt(v2w, choose_frac(&[&st.v2], v2w, cal))?;
    let pivot_inv = recip(bb, &st.pivot_inv, ld)?;
    let q = calibrated(opts.wide_bits, &st.q)?;
    let d_floor = delta_floor(g, &[pivot_inv.format, q]);
    let bank = Bank {
        delta: (0..OAMP_BANK)
            .map(|j| {
                (0..bins)
                    .map(|bin| {
                        let d = bank_delta(net, &opts.snr_bins, bin, j);
                        quant_code(d as f32, g.frac(), g.width()).max(d_floor)
                    })
                    .collect()
            })
            .collect(),
        prior: (0..OAMP_BANK)
            .map(|j| coef(es / OAMP_BANK_RATIO.powi(j as i32), opts.scalar_bits))
            .collect(),
        ld,
        pivot_inv,
        // |L| ≤ 1 is the usual case and never below: at most width − 2 (a tiny L of a nearly
        // diagonal G would otherwise take a frac whose A term leaves 2^62).
        l: fmt(bb, choose_frac(&[&st.l], bb, cal).min(bb as i32 - 2))?,
        w: wf,
        v: calibrated(bb, &st.v)?,
        q,
        p: pf,
        c_inv: recip(bb, &st.c_inv, pf)?,
        alpha: calibrated(opts.scalar_bits, &st.alpha)?,
        sigma: fmt(
            opts.scalar_bits,
            choose_frac(&[&st.sigma], opts.scalar_bits, cal).clamp(0, 32),
        )?,
        a: calibrated(opts.scalar_bits, &st.a)?,
        b: calibrated(opts.scalar_bits, &st.b)?,
        thresholds: (0..OAMP_BANK - 1)
            .map(|j| (bank_threshold(es, j) * 2f64.powi(v2f.frac())).ceil() as i64)
            .collect(),
    };
    let block = OampBlock {
        g,
        inv_trace: recip(opts.scalar_bits, &st.inv_trace, g)?,
        bank,
    };
    let yy = calibrated(24, &st.yy)?;
    let front = VectorFront {
        z: calibrated(opts.wide_bits, &st.z)?,
        yy,
        noise: (0..bins)
            .map(|i| {
                quant_code(
                    link.m() as f32 * bin_s2(net, &opts.snr_bins, i),
                    yy.frac(),
                    31,
                )
            })
            .collect(),
    };
    let tau2 = calibrated(opts.scalar_bits, &st.tau2)?;
    let tau2_max = st
        .tau2
        .iter()
        .copied()
        .fold(0.0f32, f32::max)
        .min(max_code(tau2.width()) as f32 * 2f32.powi(-tau2.frac()));
    let r = calibrated(opts.bits, &st.r)?;
    let cw = opts.scalar_bits;
    let layers = (0..p.gamma.len())
        .map(|k| {
            let (theta, phi) = (f64::from(p.theta[k]), f64::from(p.phi[k]));
            Ok(OampLayer {
                formats: OampFormats {
                    e: calibrated(opts.residual_bits, &st.e[k])?,
                    g: calibrated(opts.residual_bits, &st.gv[k])?,
                    r,
                    v2: v2f,
                    tau2,
                },
                v2_floor: quant_code(super::oamp::V_FLOOR as f32, v2f.frac(), v2f.width()).max(0),
                gamma: coef(f64::from(p.gamma[k]), cw),
                c0: coef(1.0 - 2.0 * theta, cw),
                c1: coef(theta * theta, cw),
                phi: coef(phi, cw),
                phi_xi: coef(phi * f64::from(p.xi[k]), cw),
            })
        })
        .collect::<Result<Vec<_>, IrError>>()?;
    let denoiser = build_denoiser(net, r, tau2, state, opts.buckets, tau2_max)?;
    let levels = link.modulation.levels_per_dim();
    let step = 2f64.powi(-state.frac());
    let slicer = (1..levels)
        .map(|j| (((2 * j) as f64 - levels as f64) / step).ceil() as i64)
        .collect();
    let ir = OampIr {
        format: kaq_ir::IR_FORMAT.into(),
        version: OAMP_IR_VERSION,
        name: format!("oamp-k{}-ptq-{}b", p.gamma.len(), opts.bits),
        family: OampFamily::Oamp,
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

impl Detector for OampInterpreter {
    /// The IR's name with `-int`.
    fn name(&self) -> String {
        format!("{}-int", self.ir().name)
    }

    fn detect(&self, frames: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError> {
        frames.check_decisions(decisions)?;
        Ok(self.detect_received(&frames.received(), decisions)?)
    }
}
