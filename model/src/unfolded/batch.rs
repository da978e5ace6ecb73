//! The batched drivers: per-sample forward and backward passes run in parallel over fixed
//! chunks of the batch, each chunk with its own preallocated [`Workspace`].
//!
//! Determinism: the chunking depends only on the batch size, every chunk accumulates its
//! samples in order (parameter gradients in f64), and the chunk results are summed in chunk
//! order, so loss and gradient do not depend on the number of threads.

use rayon::prelude::*;

use super::{Arch, LayerParams, LayerSlots, TrainBatch, UnfoldedNet, admm, pgd};

/// Samples per parallel task.
const CHUNK: usize = 8;

/// Per-task scratch holding everything one sample's backward pass needs.
#[derive(Debug)]
pub(crate) struct Workspace {
    /// x⁽⁰⁾ … x⁽ᴷ⁾, `(K+1) × n`.
    pub x: Vec<f32>,
    /// ∂prox/∂input at the prox inputs r⁽ᵏ⁾ (PGD) or v⁽ᵏ⁾ (ADMM) of layers 1..K, `K × n`
    /// (filled by training forward passes only).
    pub d_input: Vec<f32>,
    /// ∂prox/∂p_k at the same points, `K × n` (training forward passes only).
    pub d_param: Vec<f32>,
    /// g⁽ᵏ⁾ = Hᵀ(H x⁽ᵏ⁻¹⁾ − y) of layers 1..K, `K × n`.
    pub g: Vec<f32>,
    /// s⁽⁰⁾ … s⁽ᴷ⁾ (ADMM), `(K+1) × n`.
    pub s: Vec<f32>,
    /// u⁽⁰⁾ … u⁽ᴷ⁾ (ADMM), `(K+1) × n`.
    pub u: Vec<f32>,
    /// Hᵀy (matched-filter init), `n`.
    pub z: Vec<f32>,
    /// A length-m temporary (residuals).
    pub e: Vec<f32>,
    /// ∂L/∂x⁽ᵏ⁾, `(K+1) × n`.
    pub dx: Vec<f32>,
    /// ∂L/∂s⁽ᵏ⁾ (ADMM), `(K+1) × n`.
    pub ds: Vec<f32>,
    /// ∂L/∂u⁽ᵏ⁾ (ADMM), `(K+1) × n`.
    pub du: Vec<f32>,
    /// Length-n temporaries of the backward pass.
    pub t: Vec<f32>,
    /// Length-n temporary holding HᵀH t.
    pub w: Vec<f32>,
}

impl Workspace {
    pub fn new(layers: usize, m: usize, n: usize) -> Self {
        let states = (layers + 1) * n;
        Self {
            x: vec![0.0; states],
            d_input: vec![0.0; layers * n],
            d_param: vec![0.0; layers * n],
            g: vec![0.0; layers * n],
            s: vec![0.0; states],
            u: vec![0.0; states],
            z: vec![0.0; n],
            e: vec![0.0; m],
            dx: vec![0.0; states],
            ds: vec![0.0; states],
            du: vec![0.0; states],
            t: vec![0.0; n],
            w: vec![0.0; n],
        }
    }

    /// The net output of the last forward pass.
    pub fn output(&self, arch: Arch, layers: usize, n: usize) -> &[f32] {
        let states = match arch {
            Arch::Pgd => &self.x,
            Arch::Admm => &self.s,
        };
        &states[layers * n..(layers + 1) * n]
    }
}

/// One sample's channel and received vector.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample<'a> {
    pub h: &'a [f32],
    pub y: &'a [f32],
}

/// Everything the per-sample passes need from the net.
#[derive(Debug)]
pub(crate) struct Plan {
    pub arch: Arch,
    pub layers: Vec<LayerParams>,
    pub slots: Vec<LayerSlots>,
    /// (slot, α) of the matched-filter scale, if any.
    pub mf: Option<(usize, f32)>,
    pub m: usize,
    pub n: usize,
}

impl Plan {
    pub fn new(net: &UnfoldedNet) -> Self {
        let (layers, slots) = net.layers().into_iter().unzip();
        Self {
            arch: net.config().arch,
            layers,
            slots,
            mf: net.mf_slot().map(|i| (i, net.params()[i])),
            m: net.link().m(),
            n: net.link().n(),
        }
    }

    /// One sample's forward pass; with `TRAIN` it also keeps the prox derivatives.
    fn forward_sample<const TRAIN: bool>(&self, sample: Sample<'_>, ws: &mut Workspace) {
        match self.arch {
            Arch::Pgd => pgd::forward::<TRAIN>(self, sample, ws),
            Arch::Admm => admm::forward::<TRAIN>(self, sample, ws),
        }
    }

    fn output<'w>(&self, ws: &'w Workspace) -> &'w [f32] {
        ws.output(self.arch, self.layers.len(), self.n)
    }
}

fn sample<'a>(data: &TrainBatch<'a>, b: usize) -> Sample<'a> {
    let (m, n) = (data.m, data.n);
    Sample {
        h: &data.h[b * m * n..(b + 1) * m * n],
        y: &data.y[b * m..(b + 1) * m],
    }
}

pub(crate) fn loss_and_grad(net: &UnfoldedNet, data: &TrainBatch<'_>, grad: &mut [f32]) -> f32 {
    let plan = Plan::new(net);
    let (n, k) = (plan.n, plan.layers.len());
    let params = grad.len();
    if data.batch == 0 {
        grad.fill(0.0);
        return 0.0;
    }
    // d(mean loss)/d(output) = 2 (x̂ − x) / B.
    let scale = 2.0 / data.batch as f32;
    let chunks = data.batch.div_ceil(CHUNK);
    let results: Vec<(f64, Vec<f64>)> = (0..chunks)
        .into_par_iter()
        .map(|c| {
            let mut ws = Workspace::new(k, plan.m, n);
            let mut acc = vec![0.0f64; params];
            let mut loss = 0.0f64;
            for b in c * CHUNK..((c + 1) * CHUNK).min(data.batch) {
                let s = sample(data, b);
                plan.forward_sample::<true>(s, &mut ws);
                let truth = &data.x[b * n..(b + 1) * n];
                let out = plan.output(&ws);
                loss += out
                    .iter()
                    .zip(truth)
                    .map(|(a, t)| ((a - t) * (a - t)) as f64)
                    .sum::<f64>();
                match plan.arch {
                    Arch::Pgd => pgd::backward(&plan, s, truth, scale, &mut ws, &mut acc),
                    Arch::Admm => admm::backward(&plan, s, truth, scale, &mut ws, &mut acc),
                }
            }
            (loss, acc)
        })
        .collect();
    reduce_chunks(&results, grad, data.batch)
}

/// Sums per-chunk `(loss, gradient)` results in chunk order — in f64, so the result does not
/// depend on how rayon scheduled the chunks — writes the gradient into `grad` and returns the
/// mean loss over `batch` samples.
pub(crate) fn reduce_chunks(results: &[(f64, Vec<f64>)], grad: &mut [f32], batch: usize) -> f32 {
    let mut total = vec![0.0f64; grad.len()];
    let mut loss = 0.0f64;
    for (l, g) in results {
        loss += l;
        for (t, v) in total.iter_mut().zip(g) {
            *t += v;
        }
    }
    for (out, v) in grad.iter_mut().zip(&total) {
        *out = *v as f32;
    }
    (loss / batch as f64) as f32
}

pub(crate) fn forward(net: &UnfoldedNet, data: &TrainBatch<'_>, out: &mut [f32]) {
    let plan = Plan::new(net);
    let (n, k) = (plan.n, plan.layers.len());
    out.par_chunks_mut(CHUNK * n)
        .enumerate()
        .for_each(|(c, out)| {
            let mut ws = Workspace::new(k, plan.m, n);
            for (i, o) in out.chunks_exact_mut(n).enumerate() {
                plan.forward_sample::<false>(sample(data, c * CHUNK + i), &mut ws);
                o.copy_from_slice(plan.output(&ws));
            }
        });
}

/// e = H x⁽⁰⁾ − y, skipping the product when x⁽⁰⁾ = 0.
pub(crate) fn first_residual(plan: &Plan, sample: Sample<'_>, x0: &[f32], e: &mut [f32]) {
    if plan.mf.is_none() {
        for (e, &y) in e.iter_mut().zip(sample.y) {
            *e = -y;
        }
    } else {
        super::matvec::residual(sample.h, x0, sample.y, e);
    }
}

/// Writes x⁽⁰⁾ into `ws.x[..n]`: zero, or α Hᵀy with Hᵀy kept in `ws.z` for the backward pass.
pub(crate) fn initial_estimate(plan: &Plan, sample: Sample<'_>, ws: &mut Workspace) {
    let x0 = &mut ws.x[..plan.n];
    match plan.mf {
        None => x0.fill(0.0),
        Some((_, alpha)) => {
            super::matvec::transpose_mul(sample.h, sample.y, &mut ws.z);
            for (x, &z) in x0.iter_mut().zip(&ws.z) {
                *x = alpha * z;
            }
        }
    }
}
