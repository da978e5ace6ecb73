//! Quantization-aware training of the cg family: the STE surrogate of [`FakeQuantCg`]
//! ([`super::cg::forward_surrogate`]) trained by the shared epoch loop ([`crate::train`]) with
//! the hand-derived cg backward ([`super::cg::backward`]).
//!
//! The formats are those of a PTQ lowering ([`lower_cg`]) and stay fixed (QAT-MSE). Each
//! forward quantizes the current float parameters at the IR's fracs exactly as the fake-quant
//! net does, so at every step the surrogate's value is the fake-quant output, and after
//! training the net lowers with the same formats ([`QatCg::lower`]) to an IR whose golden model
//! the fake-quant net matches.
//!
//! With [`QatCg::with_mmd`] the loss is KAQ's (paper eq. 16): MSE + ε Σ_k MMD²(x⁽ᵏ⁾, x_S⁽ᵏ⁾)
//! per minibatch, x⁽ᵏ⁾ the outputs of layer k of the frozen f32 teacher (the float net the
//! QAT starts from) and x_S⁽ᵏ⁾ the surrogate's, with the kernels of [`crate::mmd`]; the MMD's
//! student gradient enters the cg backward at every layer's output
//! ([`cg::backward_with`]).

use rayon::prelude::*;

use kaq_ir::fixed::{QFormat, max_code};
use kaq_ir::gram::GramIr;

use super::batch::cg_layer_outputs;
use super::cg::{self, SurrogateBin, SurrogateFormats, Tape};
use super::denoise::GaussQam;
use super::quantized::{CgParams, CgQuantOptions, FakeQuantCg, bin_s2, lower_cg_with, quantize_cg};
use super::refine::{FormatMove, RefineOptions, refine_formats};
use super::stage::Stage;
use super::train::GramTrainConfig;
use super::{Family, GramNet, Real, linalg};
use crate::error::ModelError;
use crate::mmd::{Bandwidths, Estimator, KernelMode, Mmd, MmdWorkspace};
use crate::quant::kaq::KaqConfig;
use crate::train::{EpochRecord, Progress, RunData, TrainError, run_epochs};
use crate::unfolded::TrainBatch;
use crate::unfolded::batch::reduce_chunks;

/// A cg net under quantization-aware training at the fixed formats of `ir`.
#[derive(Debug, Clone)]
pub struct QatCg {
    net: GramNet,
    ir: GramIr,
    opts: CgQuantOptions,
    formats: SurrogateFormats,
    /// With [`QatCg::freeze_constants`]: the float parameters at which the constants'
    /// quantization offsets are frozen.
    frozen: Option<CgParams>,
    /// With [`QatCg::with_mmd`]: KAQ's MMD term.
    mmd: Option<CgMmd>,
}

/// KAQ's MMD term: its weight ε, the per-layer loss and the frozen teacher.
#[derive(Debug, Clone)]
struct CgMmd {
    epsilon: f64,
    mmd: Mmd,
    teacher: GramNet,
}

/// The fake-quant quantizer in f32 on a value of any precision.
#[inline]
fn qv<F: Real>(v: F, f: QFormat) -> F {
    let qp = max_code(f.width()) as f32;
    let v = v.to_f64() as f32;
    F::of(f64::from(
        (v * 2f32.powi(f.frac()) + 0.5).floor().clamp(-qp, qp) * 2f32.powi(-f.frac()),
    ))
}

#[inline]
fn qcode(v: f32, frac: i32, width: u32) -> f32 {
    let qp = max_code(width) as f32;
    (v * 2f32.powi(frac) + 0.5).floor().clamp(-qp, qp) * 2f32.powi(-frac)
}

const CHUNK: usize = 8;

impl QatCg {
    /// The QAT net starting from the PTQ fake-quant net `fq`.
    pub fn new(fq: &FakeQuantCg) -> Self {
        let ir = fq.ir().clone();
        let formats = SurrogateFormats::of(&ir);
        Self {
            net: fq.net().clone(),
            ir,
            opts: fq.opts().clone(),
            formats,
            frozen: None,
            mmd: None,
        }
    }

    /// Adds KAQ's MMD term with weight `config.epsilon` (0: none) and `config.kernel`'s
    /// bandwidths (median or multi; learnable bandwidths are refused for cg), the teacher the
    /// current float net.
    pub fn with_mmd(mut self, config: &KaqConfig) -> Result<Self, ModelError> {
        config.validate()?;
        let link = self.net.link();
        let bandwidths = match config.kernel {
            KernelMode::Median => Bandwidths::Median,
            KernelMode::Multi => Bandwidths::multi_for(
                link.n(),
                link.modulation.es() / link.modulation.real_dims_per_symbol() as f64,
            )?,
            KernelMode::Learnable => {
                return Err(ModelError::InvalidParameter {
                    name: "kaq.kernel",
                    value: 0.0,
                    reason: "learnable bandwidths are not implemented for cg (median or multi)",
                });
            }
        };
        self.mmd = (config.epsilon > 0.0).then(|| CgMmd {
            epsilon: config.epsilon,
            mmd: Mmd {
                bandwidths,
                estimator: Estimator::Biased,
            },
            teacher: self.net.clone(),
        });
        Ok(self)
    }

    /// Freezes the quantization offsets of the constants (ω, β, γ, e^a and the per-bin δ,
    /// ts·s2) at the current parameters: from then on each constant is its float value plus
    /// that offset, the straight-through surrogate the taped forward replays.
    pub fn freeze_constants(&mut self) {
        self.frozen = Some(CgParams::of(&self.net));
    }

    /// A constant through its quantizer: q(v), or with frozen offsets v + q(v₀) − v₀.
    fn konst(&self, v: f32, v0: Option<f32>, frac: i32, width: u32) -> f32 {
        match v0 {
            None => qcode(v, frac, width),
            Some(v0) => (f64::from(v) + f64::from(qcode(v0, frac, width)) - f64::from(v0)) as f32,
        }
    }

    /// The float net (the trained parameters).
    pub fn net(&self) -> &GramNet {
        &self.net
    }

    /// The IR of the current parameters at the training formats.
    pub fn lower(&self) -> Result<GramIr, ModelError> {
        lower_cg_with(&self.net, &self.opts, &self.ir)
    }

    /// The fake-quant net of the current parameters at the training formats.
    pub fn fake_quant(&self) -> Result<FakeQuantCg, ModelError> {
        Ok(FakeQuantCg::new(
            self.net.clone(),
            self.lower()?,
            self.opts.clone(),
        ))
    }

    /// The parameters the surrogate uses: ω, β, γ, e^a quantized at the IR's fracs, e^ρ and
    /// e^b float (their per-bin products are quantized per bin, [`Self::bin_values`]).
    fn resolved<F: Real>(&self) -> (cg::Params<F>, CgParams) {
        let f = CgParams::of(&self.net);
        let z = self.frozen.as_ref();
        let cw = self.opts.width(super::quantized::CgTensor::Coef);
        let (k_n, l_n) = (f.layers, f.inner);
        let off = self.net.offsets();
        let mut omega = Vec::with_capacity(k_n * l_n);
        let mut beta = Vec::with_capacity(k_n * (l_n - 1));
        for (k, l) in self.ir.layers.iter().enumerate() {
            for (li, s) in l.steps.iter().enumerate() {
                let at = k * l_n + li;
                omega.push(self.konst(f.omega[at], z.map(|z| z.omega[at]), s.omega.frac, cw));
                if li > 0 {
                    let b0 = z.map(|z| z.beta(k, li));
                    beta.push(self.konst(f.beta(k, li), b0, s.beta.frac, cw));
                }
            }
        }
        let cv = |v: Vec<f32>| -> Vec<F> { v.into_iter().map(|x| F::of(f64::from(x))).collect() };
        // e^ρ and e^b in the working precision from the raw log-parameters (the chain factors
        // of the backward pass).
        let ex = |i: usize, len: usize| -> Vec<F> {
            self.net.params()[off[i]..off[i] + len]
                .iter()
                .map(|&v| F::of(f64::from(v)).exp())
                .collect()
        };
        let p = cg::Params {
            layers: k_n,
            inner: l_n,
            delta_scale: ex(0, k_n),
            gamma: cv((0..k_n)
                .map(|k| {
                    let g0 = z.map(|z| z.gamma[k]);
                    self.konst(f.gamma[k], g0, self.ir.layers[k].gamma.frac, cw)
                })
                .collect()),
            tv: cv((0..k_n)
                .map(|k| self.konst(f.tv[k], z.map(|z| z.tv[k]), self.ir.layers[k].tv.frac, cw))
                .collect()),
            ts: ex(3, k_n),
            omega: cv(omega),
            beta: cv(beta),
            slots: [off[0], off[1], off[2], off[3], off[4], off[5]],
        };
        (p, f)
    }

    /// The per-bin values of bin `bin`: M·s2, δ and ts·s2 quantized as the fake-quant net does.
    fn bin_values(&self, f: &CgParams, bin: usize) -> (f32, SurrogateBin) {
        let s2 = bin_s2(&self.net, &self.ir.snr_bins, bin);
        let z = self.frozen.as_ref();
        let noise = self.ir.front.noise[bin] as f32 * 2f32.powi(-self.ir.front.yy.frac());
        let sb = SurrogateBin {
            layers: self
                .ir
                .layers
                .iter()
                .map(|l| {
                    let f = l.formats_at(bin);
                    [f.e, f.p, f.d, f.v2, f.r, f.tau2]
                })
                .collect(),
            noise,
            delta: (0..f.layers)
                .map(|k| {
                    let d0 = z.map(|z| s2 * z.delta_scale[k]);
                    self.konst(s2 * f.delta_scale[k], d0, self.ir.layers[k].delta.frac, 24)
                })
                .collect(),
            ts: (0..f.layers)
                .map(|k| {
                    let t0 = z.map(|z| s2 * z.ts[k]);
                    self.konst(s2 * f.ts[k], t0, self.ir.layers[k].ts.frac, 31)
                })
                .collect(),
        };
        (s2, sb)
    }

    /// The quantized stage of channel `h` (already quantized) in bin `bin`.
    fn stage<F: Real>(&self, hq: &[F], s2: f32, st: &mut Stage<F>) {
        let (m, n) = (self.ir.m, self.ir.n);
        let b = &self.ir.block;
        linalg::gram(hq, m, n, &mut st.g);
        st.g.iter_mut().for_each(|v| *v = qv(*v, b.g));
        // In f32, as the fake-quant net computes them.
        let gstep = 2f32.powi(-b.g.frac());
        let g32 = |i: usize| st.g[i * n + i].to_f64() as f32;
        let trace: f32 = (0..n).map(g32).sum();
        st.inv_trace = qv(F::of(f64::from(1.0 / trace.max(gstep))), b.inv_trace.format);
        for i in 0..n {
            st.diag_inv[i] = qv(F::of(f64::from(1.0 / g32(i).max(gstep))), b.diag_inv.format);
        }
        st.s2 = F::of(f64::from(s2));
    }

    /// Runs the surrogate over `range` of `data`, calling `each(ws, params, stage, b)` after
    /// each vector; with `tapes` (one per vector of the range) the quantizers record into or
    /// replay from them.
    fn run<F: Real>(
        &self,
        data: &TrainBatch<'_>,
        range: std::ops::Range<usize>,
        mut tapes: Option<&mut [Tape<F>]>,
        mut each: impl FnMut(&mut cg::Workspace<F>, &cg::Params<F>, &Stage<F>, usize),
    ) {
        let (m, n) = (data.m, data.n);
        let (p, f) = self.resolved::<F>();
        let q = GaussQam::<F>::new(self.net.link().modulation);
        let mut st = Stage::new(Family::Cg, m, n);
        let mut ws = cg::Workspace::new(p.layers, p.inner, n);
        let mut hq = vec![F::ZERO; m * n];
        let mut yq = vec![F::ZERO; m];
        let mut bin_vals = None;
        let mut own = Tape::<F>::default();
        for b in range.clone() {
            let h = &data.h[b * m * n..(b + 1) * m * n];
            let new_block = b == range.start
                || data.noise_var[b] != data.noise_var[b - 1]
                || *h != data.h[(b - 1) * m * n..b * m * n];
            if new_block {
                for (o, &v) in hq.iter_mut().zip(h) {
                    *o = qv(F::of(f64::from(v)), self.ir.inputs.h);
                }
                let bin = self.ir.bin_of(data.noise_var[b]);
                let (s2, sb) = self.bin_values(&f, bin);
                self.stage(&hq, s2, &mut st);
                bin_vals = Some(sb);
            }
            for (o, &v) in yq.iter_mut().zip(&data.y[b * m..(b + 1) * m]) {
                *o = qv(F::of(f64::from(v)), self.ir.inputs.y);
            }
            let tape = match tapes.as_deref_mut() {
                Some(t) => &mut t[b - range.start],
                None => &mut own,
            };
            tape.start();
            let sb = bin_vals.as_ref().expect("set at the block start");
            cg::forward_surrogate(&p, &q, &st, &self.formats, sb, &hq, &yq, &mut ws, tape);
            each(&mut ws, &p, &st, b);
        }
    }

    /// Σ over `range` of the squared error and of its gradient scaled by 2/`data.batch`, plus
    /// the gradient of `extra` (empty, or per sample of the batch ∂/∂x⁽ᵏ⁾ of every layer's
    /// output, `batch × K × n`).
    fn chunk_sums<F: Real>(
        &self,
        data: &TrainBatch<'_>,
        range: std::ops::Range<usize>,
        len: usize,
        tapes: Option<&mut [Tape<F>]>,
        extra: &[F],
    ) -> (f64, Vec<f64>) {
        let n = data.n;
        let k = self.net.config().layers;
        let scale = F::of(2.0 / data.batch as f64);
        let mut acc = vec![0.0f64; len];
        let mut loss = 0.0f64;
        let mut dout = vec![F::ZERO; n];
        self.run(data, range, tapes, |ws, p, st, b| {
            let truth = &data.x[b * n..(b + 1) * n];
            for ((d, &o), &t) in dout.iter_mut().zip(ws.output(k)).zip(truth) {
                let diff = o - F::of(f64::from(t));
                loss += (diff * diff).to_f64();
                *d = scale * diff;
            }
            let kn = k * n;
            let ex = (!extra.is_empty()).then(|| &extra[b * kn..(b + 1) * kn]);
            cg::backward_with(p, st, &dout, ex, ws, &mut acc);
        });
        (loss, acc)
    }

    /// ε Σ_k MMD² on `data` (0 without the MMD term) and per sample its gradient with respect
    /// to every layer's output (`batch × K × n`; empty without the term). With `tapes` the
    /// student's forward records into or replays from them (then serial; otherwise parallel
    /// over chunks).
    fn mmd_terms<F: Real>(
        &self,
        data: &TrainBatch<'_>,
        tapes: Option<&mut [Tape<F>]>,
    ) -> Result<(f64, Vec<F>), ModelError> {
        let Some(m) = &self.mmd else {
            return Ok((0.0, Vec::new()));
        };
        let (b, n, k) = (data.batch, data.n, self.net.config().layers);
        let kn = k * n;
        let teacher = cg_layer_outputs(&m.teacher, data);
        let collect = |ws: &mut cg::Workspace<F>, out: &mut Vec<f32>| {
            for l in 1..=k {
                out.extend(ws.output(l).iter().map(|v| v.to_f64() as f32));
            }
        };
        let student: Vec<f32> = match tapes {
            Some(t) => {
                let mut out = Vec::with_capacity(b * kn);
                self.run(data, 0..b, Some(t), |ws, _, _, _| collect(ws, &mut out));
                out
            }
            None => chunks(data)
                .into_par_iter()
                .map(|r| {
                    let mut out = Vec::with_capacity(r.len() * kn);
                    self.run::<F>(data, r, None, |ws, _, _, _| collect(ws, &mut out));
                    out
                })
                .collect::<Vec<_>>()
                .concat(),
        };
        let mut ws = MmdWorkspace::new(b, n)?;
        let (mut t, mut s, mut g) = (vec![0f32; b * n], vec![0f32; b * n], vec![0f32; b * n]);
        let mut extra = vec![F::ZERO; b * kn];
        let mut total = 0.0f64;
        for l in 0..k {
            for i in 0..b {
                let at = i * kn + l * n;
                t[i * n..(i + 1) * n].copy_from_slice(&teacher[at..at + n]);
                s[i * n..(i + 1) * n].copy_from_slice(&student[at..at + n]);
            }
            total += m.mmd.eval(&mut ws, &t, &s, Some(&mut g), None)?.loss;
            for i in 0..b {
                let at = i * kn + l * n;
                for (e, &v) in extra[at..at + n].iter_mut().zip(&g[i * n..(i + 1) * n]) {
                    *e = F::of(m.epsilon * f64::from(v));
                }
            }
        }
        Ok((m.epsilon * total, extra))
    }

    /// The surrogate's mean squared error on `data` and its gradient in precision F, every
    /// vector recording into (or, when the tapes replay, replaying from) its tape (one per
    /// vector).
    pub fn loss_and_grad_taped<F: Real>(
        &self,
        data: &TrainBatch<'_>,
        tapes: &mut [Tape<F>],
    ) -> Result<(f64, Vec<f64>), ModelError> {
        let len = self.net.params().len();
        let (mmd, extra) = self.mmd_terms(data, Some(&mut *tapes))?;
        let (loss, grad) = self.chunk_sums(data, 0..data.batch, len, Some(tapes), &extra);
        Ok((loss / data.batch as f64 + mmd, grad))
    }
}

fn chunks(data: &TrainBatch<'_>) -> Vec<std::ops::Range<usize>> {
    let mn = data.m * data.n;
    let starts = |b: usize| {
        b == 0
            || data.noise_var[b] != data.noise_var[b - 1]
            || data.h[b * mn..(b + 1) * mn] != data.h[(b - 1) * mn..b * mn]
    };
    let mut out = Vec::new();
    let mut start = 0;
    for b in 1..=data.batch {
        if b == data.batch || (b - start >= CHUNK && starts(b)) {
            if b > start {
                out.push(start..b);
            }
            start = b;
        }
    }
    out
}

impl crate::train::Trainable for QatCg {
    fn params(&self) -> &[f32] {
        self.net.params()
    }
    fn params_mut(&mut self) -> &mut [f32] {
        self.net.params_mut()
    }
    fn param_names(&self) -> Vec<String> {
        self.net.param_names()
    }
    fn loss_and_grad(&self, data: &TrainBatch<'_>, grad: &mut [f32]) -> f32 {
        if data.batch == 0 {
            grad.fill(0.0);
            return 0.0;
        }
        let Ok((mmd, extra)) = self.mmd_terms::<f32>(data, None) else {
            // A non-finite activation: the trainer reports the NaN as divergence.
            grad.fill(0.0);
            return f32::NAN;
        };
        let results: Vec<(f64, Vec<f64>)> = chunks(data)
            .into_par_iter()
            .map(|r| self.chunk_sums::<f32>(data, r, grad.len(), None, &extra))
            .collect();
        (f64::from(reduce_chunks(&results, grad, data.batch)) + mmd) as f32
    }
    fn project(&mut self) {
        self.net.project();
    }
}

impl crate::train::Forward for QatCg {
    fn forward(&self, data: &TrainBatch<'_>, out: &mut [f32]) {
        let n = data.n;
        let k = self.net.config().layers;
        self.run::<f32>(data, 0..data.batch, None, |ws, _, _, b| {
            out[b * n..(b + 1) * n].copy_from_slice(ws.output(k));
        });
    }
}

/// A valid training config whose net and link are the quantized net's.
fn check_config(fq: &FakeQuantCg, config: &GramTrainConfig) -> Result<(), TrainError> {
    config.validate()?;
    if &config.net != fq.net().config() || &config.link != fq.net().link() {
        return Err(TrainError::Config {
            field: "net",
            value: format!("{:?}", config.net),
            reason: "the training config's net and link must be the quantized net's".into(),
        });
    }
    Ok(())
}

/// QAT-MSE of a PTQ fake-quant cg net: the shared epoch loop (Adam, the halving schedule, the
/// deterministic shuffles of [`crate::train`]) on the data of `config` (its `net` must be
/// `fq`'s), the formats of `fq`'s IR fixed, the MSE loss through the STE surrogate.
pub fn train_qat_mse(
    fq: &FakeQuantCg,
    config: &GramTrainConfig,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(QatCg, Vec<EpochRecord>), TrainError> {
    check_config(fq, config)?;
    let run = config.run_config();
    let data = RunData::generate(&run)?;
    run_epochs(&run, QatCg::new(fq), &data, progress)
}

/// KAQ fine-tuning of a fake-quant cg net at its formats: [`train_qat_mse`] with the loss
/// MSE + ε Σ_k MMD² of `kaq` (the teacher `fq`'s float net, frozen).
pub fn train_kaq(
    fq: &FakeQuantCg,
    config: &GramTrainConfig,
    kaq: &KaqConfig,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(QatCg, Vec<EpochRecord>), TrainError> {
    check_config(fq, config)?;
    let student = QatCg::new(fq).with_mmd(kaq)?;
    let run = config.run_config();
    let data = RunData::generate(&run)?;
    run_epochs(&run, student, &data, progress)
}

/// What [`kaq_cg`] ran.
#[derive(Debug, Clone)]
pub struct KaqCgRun {
    /// The student: the fine-tuned net lowered at its formats, those refined once more.
    pub ir: GramIr,
    /// The fine-tuned net at the formats of the refined PTQ document.
    pub qat: QatCg,
    /// The fine-tuning's epochs.
    pub history: Vec<EpochRecord>,
    /// The moves the format refinement kept on the PTQ document, then on the fine-tuned one
    /// (both empty without refinement).
    pub moves: [Vec<FormatMove>; 2],
}

/// KAQ of the cg net `teacher` at `opts`: the PTQ lowering with per-SNR-bin steps of e, ρ, p,
/// d (`bin_adaptive` is set here), its formats refined on the golden model
/// ([`refine_formats`]), the fine-tuning at those formats on `config`'s data with KAQ's loss
/// ([`train_kaq`]; ε = 0: MSE only), and the lowered net's formats refined again (the
/// constants stay those of the fine-tuned net). `refine` = `None` skips both refinements.
pub fn kaq_cg(
    teacher: &GramNet,
    opts: &CgQuantOptions,
    config: &GramTrainConfig,
    kaq: &KaqConfig,
    refine: Option<&RefineOptions>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<KaqCgRun, TrainError> {
    let mut opts = opts.clone();
    opts.bin_adaptive = true;
    let mut fq = quantize_cg(teacher, &opts)?;
    let frames = match refine {
        Some(r) => r.frames(teacher.link())?,
        None => Vec::new(),
    };
    let mut moves = [Vec::new(), Vec::new()];
    if let Some(r) = refine {
        let (ir, kept) = refine_formats(teacher, fq.ir(), &frames, r)?;
        fq = FakeQuantCg::new(teacher.clone(), ir, opts);
        moves[0] = kept;
    }
    let (qat, history) = train_kaq(&fq, config, kaq, progress)?;
    let mut ir = qat.lower()?;
    if let Some(r) = refine {
        let (out, kept) = refine_formats(qat.net(), &ir, &frames, r)?;
        ir = out;
        moves[1] = kept;
    }
    Ok(KaqCgRun {
        ir,
        qat,
        history,
        moves,
    })
}
