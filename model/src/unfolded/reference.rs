//! The simple, slow, f64 reference of the nets, written straight from the equations of the
//! module docs: it reads parameters by name (so it also checks the layout) and allocates
//! freely. The tests check the fast f32 kernels and their hand-derived gradients against it.

use super::prox::ProxOp;
use super::{Arch, Init, Prox, TrainBatch, UnfoldedNet};

/// One reference run over a batch.
#[derive(Debug, Clone)]
pub struct Reference {
    /// Net outputs, `batch × n`.
    pub outputs: Vec<f64>,
    /// Mean over the batch of ‖x − x̂‖².
    pub loss: f64,
    /// The branch every non-smooth prox took at every element of every layer and sample
    /// (−1, 0, +1 for the three pieces); empty for the smooth qam prox.
    pub pattern: Vec<i8>,
    /// Smallest distance of any prox input to a kink (infinite for qam).
    pub kink_margin: f64,
}

/// Runs the reference with parameters `params` (same layout as `net.params()`).
pub fn run(net: &UnfoldedNet, params: &[f64], data: &TrainBatch<'_>) -> Reference {
    let names = net.param_names();
    let param = |name: String| -> f64 {
        let i = names
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("no parameter {name}"));
        params[i]
    };
    let config = net.config();
    let modulation = net.link().modulation;
    let (m, n, layers) = (data.m, data.n, config.layers);
    let mut outputs = Vec::with_capacity(data.batch * n);
    let mut pattern = Vec::new();
    let mut kink_margin = f64::INFINITY;
    let mut loss = 0.0;
    for b in 0..data.batch {
        let h: Vec<f64> = data.h[b * m * n..(b + 1) * m * n]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let y: Vec<f64> = data.y[b * m..(b + 1) * m]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let hx_minus_y = |x: &[f64]| -> Vec<f64> {
            (0..m)
                .map(|i| (0..n).map(|j| h[i * n + j] * x[j]).sum::<f64>() - y[i])
                .collect()
        };
        let ht = |e: &[f64]| -> Vec<f64> {
            (0..n)
                .map(|j| (0..m).map(|i| h[i * n + j] * e[i]).sum::<f64>())
                .collect()
        };
        let x0: Vec<f64> = match config.init {
            Init::Zero => vec![0.0; n],
            Init::MatchedFilter => {
                let alpha = param("mf_scale".into());
                ht(&y).into_iter().map(|v| alpha * v).collect()
            }
        };
        let mut xs = vec![x0.clone()];
        let mut s = x0;
        let mut u = vec![0.0; n];
        for k in 0..layers {
            let eta = param(format!("eta[{k}]"));
            let beta = if config.momentum {
                param(format!("beta[{k}]"))
            } else {
                0.0
            };
            let prox_param = match config.prox {
                Prox::Soft => param(format!("lambda[{k}]")),
                Prox::Qam => param(format!("log_tau[{k}]")),
                Prox::Box => 0.0,
            };
            let prox = ProxOp::<f64>::new(config.prox, modulation, prox_param);
            // The edge between pieces: |r| = λ (soft) or |r| = L − 1 (box).
            let edge = match config.prox {
                Prox::Soft => Some(prox_param),
                Prox::Box => Some(modulation.max_level() as f64),
                Prox::Qam => None,
            };
            let mut apply = |r: f64| -> f64 {
                kink_margin = kink_margin.min(prox.kink_distance(r));
                if let Some(edge) = edge {
                    pattern.push(if r > edge {
                        1
                    } else if r < -edge {
                        -1
                    } else {
                        0
                    });
                }
                prox.apply(r)
            };
            let xp = xs[k].clone();
            let xpp = xs[k.saturating_sub(1)].clone();
            let g = ht(&hx_minus_y(&xp));
            match config.arch {
                Arch::Pgd => {
                    let x: Vec<f64> = (0..n)
                        .map(|i| apply(xp[i] - eta * g[i] + beta * (xp[i] - xpp[i])))
                        .collect();
                    xs.push(x);
                }
                Arch::Admm => {
                    let rho = param(format!("rho[{k}]"));
                    let x: Vec<f64> = (0..n)
                        .map(|i| {
                            xp[i] - eta * (g[i] + rho * (xp[i] - s[i] + u[i]))
                                + beta * (xp[i] - xpp[i])
                        })
                        .collect();
                    let s_next: Vec<f64> = (0..n).map(|i| apply(x[i] + u[i])).collect();
                    for i in 0..n {
                        u[i] = u[i] + x[i] - s_next[i];
                    }
                    s = s_next;
                    xs.push(x);
                }
            }
        }
        let out = match config.arch {
            Arch::Pgd => xs.pop().expect("at least one layer"),
            Arch::Admm => s,
        };
        let truth = &data.x[b * n..(b + 1) * n];
        loss += out
            .iter()
            .zip(truth)
            .map(|(a, &t)| (a - t as f64).powi(2))
            .sum::<f64>();
        outputs.extend(out);
    }
    Reference {
        outputs,
        loss: loss / data.batch.max(1) as f64,
        pattern,
        kink_margin,
    }
}
