//! Dense symmetric linear algebra of the per-channel and per-vector stages, generic over the
//! float type (f32 for the nets, f64 for the finite-difference reference) and written only with
//! multiplies, adds and reciprocals, in a fixed order, so the integer model can mirror it.
//!
//! * [`gram`]: G = HᵀH (upper triangle computed, mirrored) and z = Hᵀy.
//! * [`spd_inverse`]: P = A⁻¹ of a symmetric positive definite A through the square-root-free
//!   factorization A = L D Lᵀ (L unit lower triangular), U = L⁻¹ and P = Uᵀ D⁻¹ U. Costs are in
//!   [`inverse_ops`]; the only divisions are the n reciprocals 1/d_j.

use crate::unfolded::prox::ProxFloat;

use super::Ops;

/// G = HᵀH for a row-major `m × n` H, written full (`n × n`, row-major).
pub fn gram<F: ProxFloat>(h: &[F], m: usize, n: usize, g: &mut [F]) {
    debug_assert_eq!(h.len(), m * n);
    for i in 0..n {
        for j in i..n {
            let mut acc = F::ZERO;
            for r in 0..m {
                acc = acc + h[r * n + i] * h[r * n + j];
            }
            g[i * n + j] = acc;
            g[j * n + i] = acc;
        }
    }
}

/// Operations of [`gram`]: m·n(n+1)/2 multiplies and as many adds.
pub fn gram_ops(m: usize, n: usize) -> Ops {
    let pairs = (n * (n + 1) / 2) as u64;
    Ops {
        mults: pairs * m as u64,
        adds: pairs * m as u64,
        ..Ops::default()
    }
}

/// out = Hᵀ v for a row-major `m × n` H.
pub fn transpose_mul<F: ProxFloat>(h: &[F], v: &[F], out: &mut [F]) {
    let n = out.len();
    for o in out.iter_mut() {
        *o = F::ZERO;
    }
    for (r, &vr) in v.iter().enumerate() {
        let row = &h[r * n..(r + 1) * n];
        for (o, &hij) in out.iter_mut().zip(row) {
            *o = *o + vr * hij;
        }
    }
}

/// out = S v for a symmetric row-major `n × n` S.
pub fn sym_mul<F: ProxFloat>(s: &[F], v: &[F], out: &mut [F]) {
    let n = v.len();
    for (i, o) in out.iter_mut().enumerate() {
        let row = &s[i * n..(i + 1) * n];
        let mut acc = F::ZERO;
        for (&a, &b) in row.iter().zip(v) {
            acc = acc + a * b;
        }
        *o = acc;
    }
}

/// Σ a_i b_i in index order.
pub fn dot<F: ProxFloat>(a: &[F], b: &[F]) -> F {
    let mut acc = F::ZERO;
    for (&x, &y) in a.iter().zip(b) {
        acc = acc + x * y;
    }
    acc
}

/// Scratch of [`spd_inverse`] for one size.
#[derive(Debug, Clone)]
pub struct InverseScratch<F> {
    l: Vec<F>,
    u: Vec<F>,
    d: Vec<F>,
    dinv: Vec<F>,
    w: Vec<F>,
}

impl<F: ProxFloat> InverseScratch<F> {
    /// Scratch for `n × n` matrices.
    pub fn new(n: usize) -> Self {
        Self {
            l: vec![F::ZERO; n * n],
            u: vec![F::ZERO; n * n],
            d: vec![F::ZERO; n],
            dinv: vec![F::ZERO; n],
            w: vec![F::ZERO; n],
        }
    }
}

/// Smallest pivot accepted, relative to the diagonal entry: below it the pivot is clamped (a
/// matrix that rounding made indefinite stays finite).
const PIVOT_FLOOR: f64 = 1e-12;

/// P = A⁻¹ for a symmetric positive definite row-major `n × n` A (only its lower triangle is
/// read); `p` receives the full symmetric inverse. Pivots below 1e-12·a_jj are clamped there.
pub fn spd_inverse<F: ProxFloat>(a: &[F], n: usize, p: &mut [F], s: &mut InverseScratch<F>) {
    let InverseScratch { l, u, d, dinv, w } = s;
    // A = L D Lᵀ, column by column.
    for j in 0..n {
        let mut dj = a[j * n + j];
        for k in 0..j {
            w[k] = l[j * n + k] * d[k];
            dj = dj - l[j * n + k] * w[k];
        }
        let floor = F::of(PIVOT_FLOOR) * a[j * n + j];
        if super::not_above(dj, floor) {
            dj = if floor > F::ZERO {
                floor
            } else {
                F::of(PIVOT_FLOOR)
            };
        }
        d[j] = dj;
        dinv[j] = F::ONE / dj;
        for i in j + 1..n {
            let mut acc = a[i * n + j];
            for k in 0..j {
                acc = acc - l[i * n + k] * w[k];
            }
            l[i * n + j] = acc * dinv[j];
        }
    }
    // U = L⁻¹ (unit lower triangular), column by column.
    for c in 0..n {
        u[c * n + c] = F::ONE;
        for i in c + 1..n {
            let mut acc = -l[i * n + c];
            for k in c + 1..i {
                acc = acc - l[i * n + k] * u[k * n + c];
            }
            u[i * n + c] = acc;
        }
    }
    // V = D⁻¹ U (kept in l, whose job is done), then P_ij = Σ_{k ≥ j} U_ki V_kj for i ≤ j.
    for k in 0..n {
        for c in 0..=k {
            l[k * n + c] = dinv[k] * u[k * n + c];
        }
    }
    for j in 0..n {
        for i in 0..=j {
            let mut acc = F::ZERO;
            for k in j..n {
                acc = acc + u[k * n + i] * l[k * n + j];
            }
            p[i * n + j] = acc;
            p[j * n + i] = acc;
        }
    }
}

/// Operations of [`spd_inverse`] of size n (multiplies counted exactly as the code runs them;
/// subtractions count as adds).
pub fn inverse_ops(n: usize) -> Ops {
    let n = n as u64;
    let (mut mults, mut adds) = (0u64, 0u64);
    for j in 0..n {
        // w, d_j, the pivot floor and the column of L.
        mults += 2 * j + 1 + (n - j - 1) * (j + 1);
        adds += j + (n - j - 1) * j;
    }
    for c in 0..n {
        for i in c + 1..n {
            let inner = i - c - 1;
            mults += inner;
            adds += inner;
        }
    }
    mults += n * (n + 1) / 2;
    for j in 0..n {
        let terms = (j + 1) * (n - j);
        mults += terms;
        adds += terms;
    }
    Ops {
        mults,
        adds,
        recips: n,
        ..Ops::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::DMatrix;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn inverse_matches_nalgebra(n in 1usize..12, seed in any::<u64>(), ridge in 1e-3f64..2.0) {
            use rand::Rng;
            let mut rng = crate::link::stream_rng(seed, 0);
            let m = n + 2;
            let h: Vec<f64> = (0..m * n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut g = vec![0.0; n * n];
            gram(&h, m, n, &mut g);
            for i in 0..n {
                g[i * n + i] += ridge;
            }
            let mut p = vec![0.0; n * n];
            spd_inverse(&g, n, &mut p, &mut InverseScratch::new(n));
            let want = DMatrix::from_row_slice(n, n, &g).try_inverse().unwrap();
            for i in 0..n {
                for j in 0..n {
                    let scale = want[(i, j)].abs().max(1.0);
                    prop_assert!((p[i * n + j] - want[(i, j)]).abs() < 1e-8 * scale * 1e3,
                        "({i},{j}) {} vs {}", p[i * n + j], want[(i, j)]);
                }
            }
        }
    }
}
