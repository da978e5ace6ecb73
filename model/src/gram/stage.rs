//! The per-channel stage: everything a family computes once per channel block from H̃ and σ².
//!
//! * all families: G = H̃ᵀH̃ (m·n(n+1)/2 multiplies);
//! * `oamp`, `cg`: 1/tr G (one reciprocal);
//! * `oamp`: the bank Q_j = (G + δ_j I)⁻¹, δ_j = (s2/E_s)·8^j, with α_j = N/tr(Q_j G),
//!   F_j = ‖Q_j G‖²_F and T_j = tr(Q_j G Q_j), using Q G = I − δQ:
//!   tr(QG) = N − δ tr Q, ‖QG‖²_F = N − 2δ tr Q + δ²‖Q‖²_F, tr(QGQ) = tr Q − δ‖Q‖²_F;
//! * `cg`: D = diag(G)⁻¹ (n reciprocals).

use super::Real;

use super::linalg::{InverseScratch, gram, gram_ops, inverse_ops, spd_inverse};
use super::{Family, GramConfig, OAMP_BANK, OAMP_BANK_RATIO, Ops};

/// One LMMSE bank entry of the `oamp` family.
#[derive(Debug, Clone)]
pub struct BankEntry<F> {
    /// Q_j = (G + δ_j I)⁻¹, `n × n`.
    pub q: Vec<F>,
    /// α_j = N / tr(Q_j G).
    pub alpha: F,
    /// F_j = ‖Q_j G‖²_F.
    pub frob: F,
    /// T_j = tr(Q_j G Q_j).
    pub t3: F,
}

/// The per-channel stage of one block.
#[derive(Debug, Clone)]
pub struct Stage<F> {
    /// Rows of H̃.
    pub m: usize,
    /// Columns of H̃.
    pub n: usize,
    /// s2 = σ²/2 of the block.
    pub s2: F,
    /// G = H̃ᵀH̃, `n × n`.
    pub g: Vec<F>,
    /// 1/tr G (`oamp`, `cg`).
    pub inv_trace: F,
    /// diag(G)⁻¹ (`cg`).
    pub diag_inv: Vec<F>,
    /// The LMMSE bank (`oamp`).
    pub bank: Vec<BankEntry<F>>,
    /// Prior variance E_s/8^j / √8 below which entry j + 1 is nearer than entry j (`oamp`).
    pub thresholds: Vec<F>,
}

impl<F: Real> Stage<F> {
    /// An empty stage for `m × n` channels.
    pub fn new(family: Family, m: usize, n: usize) -> Self {
        let bank = if family == Family::Oamp {
            (0..OAMP_BANK)
                .map(|_| BankEntry {
                    q: vec![F::ZERO; n * n],
                    alpha: F::ZERO,
                    frob: F::ZERO,
                    t3: F::ZERO,
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            m,
            n,
            s2: F::ZERO,
            g: vec![F::ZERO; n * n],
            inv_trace: F::ZERO,
            diag_inv: vec![F::ZERO; if family == Family::Cg { n } else { 0 }],
            bank,
            thresholds: Vec::new(),
        }
    }

    /// Computes the stage of channel `h` (`m × n`, row-major) at s2 = σ²/2, for symbol energy
    /// per real dimension `es`.
    pub fn compute(&mut self, family: Family, h: &[F], s2: F, es: f64, scratch: &mut Scratch<F>) {
        let (m, n) = (self.m, self.n);
        self.s2 = s2;
        gram(h, m, n, &mut self.g);
        if family == Family::Ep {
            return;
        }
        let mut trace = F::ZERO;
        for i in 0..n {
            trace = trace + self.g[i * n + i];
        }
        self.inv_trace = F::ONE / trace;
        if family == Family::Cg {
            for i in 0..n {
                self.diag_inv[i] = F::ONE / self.g[i * n + i];
            }
            return;
        }
        let nf = F::of(n as f64);
        self.thresholds.clear();
        let base = s2 * F::of(1.0 / es);
        let mut scale = 1.0;
        for j in 0..OAMP_BANK {
            let delta = base * F::of(scale);
            if j + 1 < OAMP_BANK {
                self.thresholds
                    .push(F::of(es / scale / OAMP_BANK_RATIO.sqrt()));
            }
            scale *= OAMP_BANK_RATIO;
            let a = &mut scratch.a;
            a.copy_from_slice(&self.g);
            for i in 0..n {
                a[i * n + i] = a[i * n + i] + delta;
            }
            let entry = &mut self.bank[j];
            spd_inverse(a, n, &mut entry.q, &mut scratch.inverse);
            let (mut tr, mut fro) = (F::ZERO, F::ZERO);
            for i in 0..n {
                tr = tr + entry.q[i * n + i];
            }
            for &v in &entry.q {
                fro = fro + v * v;
            }
            let tr_qg = nf - delta * tr;
            entry.alpha = nf / tr_qg;
            entry.frob = nf - F::of(2.0) * delta * tr + delta * delta * fro;
            entry.t3 = tr - delta * fro;
        }
    }

    /// The bank entry whose prior variance is nearest to `v2` on a log scale.
    pub fn select(&self, v2: F) -> usize {
        self.thresholds.iter().filter(|&&t| v2 < t).count()
    }
}

/// Scratch of [`Stage::compute`].
#[derive(Debug, Clone)]
pub struct Scratch<F> {
    a: Vec<F>,
    inverse: InverseScratch<F>,
}

impl<F: Real> Scratch<F> {
    /// Scratch for `n × n` matrices.
    pub fn new(n: usize) -> Self {
        Self {
            a: vec![F::ZERO; n * n],
            inverse: InverseScratch::new(n),
        }
    }
}

/// Operations of [`Stage::compute`] for a configuration on an `m × n` channel (the bank's
/// regularizers δ_j = (s2/E_s)·8^j are one multiply each by a constant).
pub fn stage_ops(config: &GramConfig, m: usize, n: usize) -> Ops {
    let nn = n as u64;
    let g = gram_ops(m, n);
    match config.family {
        Family::Ep => g,
        Family::Cg => {
            g + Ops {
                adds: nn,
                recips: 1 + nn,
                ..Ops::default()
            }
        }
        Family::Oamp => {
            let entry = inverse_ops(n)
                + Ops {
                    // δ_j, the diagonal load, tr Q, ‖Q‖²_F, then α, F, T.
                    mults: 1 + nn * nn + 1 + 1 + 3 + 1,
                    adds: nn + nn + nn * nn + 1 + 2 + 1,
                    recips: 1,
                    ..Ops::default()
                };
            g + Ops {
                adds: nn,
                recips: 1,
                ..Ops::default()
            } + entry * OAMP_BANK as u64
        }
    }
}
