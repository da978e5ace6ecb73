//! The per-vector runner of every family and the batched drivers.
//!
//! A [`Runner`] owns one thread's stage, scratch and workspace. The drivers cut a batch into
//! runs of consecutive samples that share H̃ and σ² (one channel block each; every sample is
//! its own run without block fading), group whole runs into chunks of at least [`CHUNK`]
//! samples, and process the chunks in parallel, each computing a run's per-channel stage once.
//! The cut depends only on the data, chunk results are summed in chunk order (gradients in
//! f64), so results never depend on the thread count.

use rayon::prelude::*;

use super::denoise::GaussQam;
use super::stage::{Scratch, Stage};
use super::{Family, GramNet, Real, cg, ep, es_dim, oamp};
use crate::unfolded::TrainBatch;
use crate::unfolded::batch::reduce_chunks;

/// Smallest number of samples per parallel task.
const CHUNK: usize = 8;

#[derive(Debug, Clone)]
enum FamilyParams<F> {
    Ep(ep::Params<F>),
    Oamp(oamp::Params<F>),
    Cg(cg::Params<F>),
}

#[derive(Debug, Clone)]
enum FamilyWs<F> {
    Ep(Box<ep::Workspace<F>>),
    Oamp(Box<oamp::Workspace<F>>),
    Cg(Box<cg::Workspace<F>>),
}

/// One thread's detector state for a net with parameters of float type F.
#[derive(Debug, Clone)]
pub(crate) struct Runner<F> {
    family: Family,
    layers: usize,
    es: f64,
    params: FamilyParams<F>,
    q: GaussQam<F>,
    stage: Stage<F>,
    scratch: Scratch<F>,
    ws: FamilyWs<F>,
}

impl<F: Real> Runner<F> {
    /// A runner of `net`'s architecture with the flat parameter vector `p` (same layout as
    /// [`GramNet::params`]).
    pub fn new(net: &GramNet, p: &[F]) -> Self {
        let config = net.config();
        let (m, n, k) = (net.link().m(), net.link().n(), config.layers);
        let off = net.offsets();
        let es = es_dim(net.link());
        let block = |i: usize, len: usize| p[off[i]..off[i] + len].to_vec();
        let (params, ws) = match config.family {
            Family::Ep => (
                FamilyParams::Ep(ep::Params {
                    layers: k,
                    beta: block(0, k - 1),
                    floor: block(1, k - 1).into_iter().map(F::exp).collect(),
                    slots: (off[0], off[1]),
                    inv_es: F::of(1.0 / es),
                }),
                FamilyWs::Ep(Box::new(ep::Workspace::new(k, n))),
            ),
            Family::Oamp => (
                FamilyParams::Oamp(oamp::Params {
                    gamma: block(0, k),
                    theta: block(1, k),
                    phi: block(2, k),
                    xi: block(3, k),
                    slots: [off[0], off[1], off[2], off[3]],
                }),
                FamilyWs::Oamp(Box::new(oamp::Workspace::new(k, n))),
            ),
            Family::Cg => {
                let l = config.inner;
                (
                    FamilyParams::Cg(cg::Params {
                        layers: k,
                        inner: l,
                        delta_scale: block(0, k).into_iter().map(F::exp).collect(),
                        gamma: block(1, k),
                        tv: block(2, k).into_iter().map(F::exp).collect(),
                        ts: block(3, k).into_iter().map(F::exp).collect(),
                        omega: block(4, k * l),
                        beta: block(5, k * (l - 1)),
                        slots: [off[0], off[1], off[2], off[3], off[4], off[5]],
                    }),
                    FamilyWs::Cg(Box::new(cg::Workspace::new(k, l, n))),
                )
            }
        };
        Self {
            family: config.family,
            layers: k,
            es,
            params,
            q: GaussQam::new(net.link().modulation),
            stage: Stage::new(config.family, m, n),
            scratch: Scratch::new(n),
            ws,
        }
    }

    /// Computes the per-channel stage of channel `h` at complex noise variance `noise_var`.
    pub fn set_channel(&mut self, h: &[F], noise_var: F) {
        let s2 = noise_var * F::of(0.5);
        self.stage
            .compute(self.family, h, s2, self.es, &mut self.scratch);
    }

    /// Runs the layers on one vector of the current channel.
    pub fn forward(&mut self, h: &[F], y: &[F]) {
        match (&self.params, &mut self.ws) {
            (FamilyParams::Ep(p), FamilyWs::Ep(ws)) => {
                ep::forward(p, &self.q, &self.stage, h, y, ws)
            }
            (FamilyParams::Oamp(p), FamilyWs::Oamp(ws)) => {
                oamp::forward(p, &self.q, &self.stage, h, y, ws)
            }
            (FamilyParams::Cg(p), FamilyWs::Cg(ws)) => {
                cg::forward(p, &self.q, &self.stage, h, y, ws)
            }
            _ => unreachable!("parameters and workspace are built together"),
        }
    }

    /// The estimate x̂ of the last forward pass.
    pub fn output(&self) -> &[F] {
        match &self.ws {
            FamilyWs::Ep(ws) => ws.output(self.layers),
            FamilyWs::Oamp(ws) => ws.output(self.layers),
            FamilyWs::Cg(ws) => ws.output(self.layers),
        }
    }

    /// Adds the parameter gradient of the last forward pass, given δx̂ = `dout`, into `grad`.
    pub fn backward(&mut self, dout: &[F], grad: &mut [f64]) {
        match (&self.params, &mut self.ws) {
            (FamilyParams::Ep(p), FamilyWs::Ep(ws)) => ep::backward(p, &self.stage, dout, ws, grad),
            (FamilyParams::Oamp(p), FamilyWs::Oamp(ws)) => {
                oamp::backward(p, &self.stage, dout, ws, grad)
            }
            (FamilyParams::Cg(p), FamilyWs::Cg(ws)) => cg::backward(p, &self.stage, dout, ws, grad),
            _ => unreachable!("parameters and workspace are built together"),
        }
    }

    /// The branch pattern of the last forward pass (tests: finite differences are only valid
    /// when it does not change).
    #[cfg(test)]
    pub fn pattern(&self) -> Vec<usize> {
        match &self.ws {
            FamilyWs::Ep(ws) => ws.pattern().into_iter().map(usize::from).collect(),
            FamilyWs::Oamp(ws) => ws.pattern(),
            FamilyWs::Cg(ws) => ws.pattern().into_iter().map(usize::from).collect(),
        }
    }
}

/// Whether sample `b` starts a new channel block (its H̃ or σ² differs from sample b − 1's).
fn starts_block(data: &TrainBatch<'_>, b: usize) -> bool {
    let mn = data.m * data.n;
    b == 0
        || data.noise_var[b] != data.noise_var[b - 1]
        || data.h[b * mn..(b + 1) * mn] != data.h[(b - 1) * mn..b * mn]
}

/// Sample ranges of the parallel chunks: whole blocks, at least [`CHUNK`] samples each.
fn chunks(data: &TrainBatch<'_>) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for b in 1..=data.batch {
        if b == data.batch || (b - start >= CHUNK && starts_block(data, b)) {
            if b > start {
                out.push(start..b);
            }
            start = b;
        }
    }
    out
}

fn run_chunk(
    runner: &mut Runner<f32>,
    data: &TrainBatch<'_>,
    range: std::ops::Range<usize>,
    mut each: impl FnMut(&mut Runner<f32>, usize),
) {
    let (m, n) = (data.m, data.n);
    for b in range.clone() {
        let h = &data.h[b * m * n..(b + 1) * m * n];
        if b == range.start || starts_block(data, b) {
            runner.set_channel(h, data.noise_var[b]);
        }
        runner.forward(h, &data.y[b * m..(b + 1) * m]);
        each(runner, b);
    }
}

pub(crate) fn loss_and_grad(net: &GramNet, data: &TrainBatch<'_>, grad: &mut [f32]) -> f32 {
    if data.batch == 0 {
        grad.fill(0.0);
        return 0.0;
    }
    let n = data.n;
    let scale = 2.0 / data.batch as f32;
    let len = grad.len();
    let results: Vec<(f64, Vec<f64>)> = chunks(data)
        .into_par_iter()
        .map(|range| {
            let mut runner = Runner::new(net, net.params());
            let mut acc = vec![0.0f64; len];
            let mut loss = 0.0f64;
            let mut dout = vec![0.0f32; n];
            run_chunk(&mut runner, data, range, |runner, b| {
                let truth = &data.x[b * n..(b + 1) * n];
                for ((d, &o), &t) in dout.iter_mut().zip(runner.output()).zip(truth) {
                    loss += ((o - t) * (o - t)) as f64;
                    *d = scale * (o - t);
                }
                runner.backward(&dout, &mut acc);
            });
            (loss, acc)
        })
        .collect();
    reduce_chunks(&results, grad, data.batch)
}

pub(crate) fn forward(net: &GramNet, data: &TrainBatch<'_>, out: &mut [f32]) {
    let n = data.n;
    let ranges = chunks(data);
    let mut parts: Vec<&mut [f32]> = Vec::with_capacity(ranges.len());
    let mut rest = out;
    for r in &ranges {
        let (head, tail) = rest.split_at_mut(r.len() * n);
        parts.push(head);
        rest = tail;
    }
    parts.into_par_iter().zip(ranges).for_each(|(part, range)| {
        let mut runner = Runner::new(net, net.params());
        let first = range.start;
        run_chunk(&mut runner, data, range, |runner, b| {
            part[(b - first) * n..(b - first + 1) * n].copy_from_slice(runner.output());
        });
    });
}

/// [`forward`] on the calling thread (the detector parallelizes over its own chunks).
pub(crate) fn forward_serial(net: &GramNet, data: &TrainBatch<'_>, out: &mut [f32]) {
    let n = data.n;
    let mut runner = Runner::new(net, net.params());
    run_chunk(&mut runner, data, 0..data.batch, |runner, b| {
        out[b * n..(b + 1) * n].copy_from_slice(runner.output());
    });
}

/// The outputs x⁽¹⁾ … x⁽ᴷ⁾ of every layer of the cg or oamp net `net` on every sample of `data`,
/// `batch × K × n` (sample, layer, value); empty for ep.
pub(crate) fn cg_layer_outputs(net: &GramNet, data: &TrainBatch<'_>) -> Vec<f32> {
    let (n, k) = (data.n, net.config().layers);
    if !matches!(net.config().family, Family::Cg | Family::Oamp) {
        return Vec::new();
    }
    let parts: Vec<Vec<f32>> = chunks(data)
        .into_par_iter()
        .map(|range| {
            let mut runner = Runner::new(net, net.params());
            let mut part = Vec::with_capacity(range.len() * k * n);
            run_chunk(&mut runner, data, range, |runner, _| match &runner.ws {
                FamilyWs::Cg(ws) => (1..=k).for_each(|l| part.extend_from_slice(ws.output(l))),
                FamilyWs::Oamp(ws) => (1..=k).for_each(|l| part.extend_from_slice(ws.output(l))),
                FamilyWs::Ep(_) => {}
            });
            part
        })
        .collect();
    parts.concat()
}
