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

/// G = HᵀH for a row-major `m × n` H, written full (`n × n`, row-major): for j ≥ i,
/// G_ij = Σ_r H_ri H_rj summed in r order from zero, mirrored to G_ji.
///
/// Row i of the upper triangle is accumulated side by side (G_{i,i..n} += H_ri H_{r,i..n} for each
/// r), over contiguous memory; each entry sees the same products in the same order as the plain
/// dot product of two columns, so the result is bit-identical to it.
pub fn gram<F: ProxFloat>(h: &[F], m: usize, n: usize, g: &mut [F]) {
    debug_assert_eq!(h.len(), m * n);
    for i in 0..n {
        let row = &mut g[i * n + i..(i + 1) * n];
        row.iter_mut().for_each(|v| *v = F::ZERO);
        for r in 0..m {
            let hri = h[r * n + i];
            for (acc, &hrj) in row.iter_mut().zip(&h[r * n + i..(r + 1) * n]) {
                *acc = *acc + hri * hrj;
            }
        }
        for j in i + 1..n {
            g[j * n + i] = g[i * n + j];
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

/// out = S v for a symmetric row-major `n × n` S: out_i = Σ_j S_ij v_j, summed in j order
/// from zero.
///
/// Runs column by column (out += S_{:,j} v_j, reading row j as column j), so the n sums advance
/// together and vectorize; for an exactly symmetric S (every caller's G, P and Q is written
/// mirrored) each out_i sees the same products in the same order as the row-by-row dot product,
/// so the result is bit-identical to it.
pub fn sym_mul<F: ProxFloat>(s: &[F], v: &[F], out: &mut [F]) {
    let n = v.len();
    for o in out.iter_mut() {
        *o = F::ZERO;
    }
    for (j, &vj) in v.iter().enumerate() {
        let column = &s[j * n..(j + 1) * n];
        for (o, &a) in out.iter_mut().zip(column) {
            *o = *o + a * vj;
        }
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
    acc: Vec<F>,
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
            acc: vec![F::ZERO; n],
        }
    }
}

/// Smallest pivot accepted, relative to the diagonal entry: below it the pivot is clamped (a
/// matrix that rounding made indefinite stays finite).
const PIVOT_FLOOR: f64 = 1e-12;

/// P = A⁻¹ for a symmetric positive definite row-major `n × n` A (only its lower triangle is
/// read); `p` receives the full symmetric inverse. Pivots below 1e-12·a_jj are clamped there.
///
/// Every entry is the sum of the textbook column-by-column recurrences below, in the same term
/// order; the loops only run several entries' sums side by side over contiguous memory (Lᵀ is
/// kept column-contiguous in `p` until P overwrites it), so the result is bit-identical to the
/// plain triple loops (see the `spd_inverse_is_bit_identical_to_the_textbook_loops` test):
/// * A = L D Lᵀ: d_j = a_jj − Σ_{k<j} L_jk (L_jk d_k), L_ij = (a_ij − Σ_{k<j} L_ik (L_jk d_k))/d_j;
/// * U = L⁻¹: U_ic = −L_ic − Σ_{c<k<i} L_ik U_kc;
/// * P_ij = Σ_{k ≥ j} U_ki (U_kj / d_k) for i ≤ j, mirrored.
pub fn spd_inverse<F: ProxFloat>(a: &[F], n: usize, p: &mut [F], s: &mut InverseScratch<F>) {
    let InverseScratch {
        l,
        u,
        d,
        dinv,
        w,
        acc,
    } = s;
    // A = L D Lᵀ, column by column, with lt[k·n + i] = L_ik.
    let lt = &mut *p;
    for j in 0..n {
        let mut dj = a[j * n + j];
        for k in 0..j {
            let ljk = lt[k * n + j];
            w[k] = ljk * d[k];
            dj = dj - ljk * w[k];
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
        let col = &mut acc[j + 1..n];
        for (r, i) in col.iter_mut().zip(j + 1..n) {
            *r = a[i * n + j];
        }
        for k in 0..j {
            let wk = w[k];
            for (r, &lik) in col.iter_mut().zip(&lt[k * n + j + 1..(k + 1) * n]) {
                *r = *r - lik * wk;
            }
        }
        for (&r, i) in col.iter().zip(j + 1..n) {
            lt[j * n + i] = r * dinv[j];
        }
    }
    for i in 0..n {
        for k in 0..i {
            l[i * n + k] = lt[k * n + i];
        }
    }
    // U = L⁻¹ (unit lower triangular), row by row.
    for i in 0..n {
        u[i * n + i] = F::ONE;
        let row = &mut acc[..i];
        for (c, r) in row.iter_mut().enumerate() {
            *r = -l[i * n + c];
        }
        for k in 1..i {
            let lik = l[i * n + k];
            for (r, &ukc) in row[..k].iter_mut().zip(&u[k * n..k * n + k]) {
                *r = *r - lik * ukc;
            }
        }
        u[i * n..i * n + i].copy_from_slice(row);
    }
    // V = D⁻¹ U (kept in l, whose job is done), then P_ij = Σ_{k ≥ j} U_ki V_kj for i ≤ j.
    for k in 0..n {
        for c in 0..=k {
            l[k * n + c] = dinv[k] * u[k * n + c];
        }
    }
    for j in 0..n {
        let col = &mut acc[..=j];
        col.iter_mut().for_each(|v| *v = F::ZERO);
        for k in j..n {
            let vkj = l[k * n + j];
            for (r, &uki) in col.iter_mut().zip(&u[k * n..k * n + j + 1]) {
                *r = *r + uki * vkj;
            }
        }
        for (i, &r) in col.iter().enumerate() {
            p[i * n + j] = r;
            p[j * n + i] = r;
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

    /// The plain column-by-column loops that [`spd_inverse`] must reproduce bit for bit.
    fn textbook_inverse(a: &[f32], n: usize) -> Vec<f32> {
        let (mut l, mut u) = (vec![0.0f32; n * n], vec![0.0f32; n * n]);
        let (mut d, mut dinv, mut w) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
        for j in 0..n {
            let mut dj = a[j * n + j];
            for k in 0..j {
                w[k] = l[j * n + k] * d[k];
                dj -= l[j * n + k] * w[k];
            }
            let floor = PIVOT_FLOOR as f32 * a[j * n + j];
            if crate::gram::not_above(dj, floor) {
                dj = if floor > 0.0 {
                    floor
                } else {
                    PIVOT_FLOOR as f32
                };
            }
            d[j] = dj;
            dinv[j] = 1.0 / dj;
            for i in j + 1..n {
                let mut acc = a[i * n + j];
                for k in 0..j {
                    acc -= l[i * n + k] * w[k];
                }
                l[i * n + j] = acc * dinv[j];
            }
        }
        for c in 0..n {
            u[c * n + c] = 1.0;
            for i in c + 1..n {
                let mut acc = -l[i * n + c];
                for k in c + 1..i {
                    acc -= l[i * n + k] * u[k * n + c];
                }
                u[i * n + c] = acc;
            }
        }
        let mut p = vec![0.0f32; n * n];
        for j in 0..n {
            for i in 0..=j {
                let mut acc = 0.0f32;
                for k in j..n {
                    acc += u[k * n + i] * (dinv[k] * u[k * n + j]);
                }
                p[i * n + j] = acc;
                p[j * n + i] = acc;
            }
        }
        p
    }

    proptest! {
        #[test]
        fn spd_inverse_is_bit_identical_to_the_textbook_loops(
            n in 1usize..34, extra in 0usize..4, seed in any::<u64>(), ridge in 0.0f32..1.0,
        ) {
            use rand::Rng;
            let mut rng = crate::link::stream_rng(seed, 1);
            let m = n + extra;
            let h: Vec<f32> = (0..m * n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let mut g = vec![0.0f32; n * n];
            gram(&h, m, n, &mut g);
            for i in 0..n {
                g[i * n + i] += ridge;
            }
            let mut p = vec![f32::NAN; n * n];
            spd_inverse(&g, n, &mut p, &mut InverseScratch::new(n));
            let want = textbook_inverse(&g, n);
            for (i, (a, b)) in p.iter().zip(&want).enumerate() {
                prop_assert_eq!(a.to_bits(), b.to_bits(), "entry {} of {}x{}", i, n, n);
            }
        }
    }

    proptest! {
        #[test]
        fn gram_is_bit_identical_to_column_dot_products(
            m in 1usize..40, n in 1usize..40, seed in any::<u64>(),
        ) {
            use rand::Rng;
            let mut rng = crate::link::stream_rng(seed, 2);
            let h: Vec<f32> = (0..m * n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let mut g = vec![f32::NAN; n * n];
            gram(&h, m, n, &mut g);
            for i in 0..n {
                for j in 0..n {
                    let (a, b) = (i.min(j), i.max(j));
                    let mut want = 0.0f32;
                    for r in 0..m {
                        want += h[r * n + a] * h[r * n + b];
                    }
                    prop_assert_eq!(g[i * n + j].to_bits(), want.to_bits(), "G[{}][{}]", i, j);
                }
            }
        }
    }

    proptest! {
        #[test]
        fn sym_mul_is_bit_identical_to_row_dot_products(n in 1usize..40, seed in any::<u64>()) {
            use rand::Rng;
            let mut rng = crate::link::stream_rng(seed, 0);
            let m = n + 3;
            let h: Vec<f32> = (0..m * n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let v: Vec<f32> = (0..n).map(|_| rng.random_range(-4.0f32..4.0)).collect();
            let mut g = vec![0.0f32; n * n];
            gram(&h, m, n, &mut g);
            let mut out = vec![f32::NAN; n];
            sym_mul(&g, &v, &mut out);
            for i in 0..n {
                let want = dot(&g[i * n..(i + 1) * n], &v);
                prop_assert_eq!(out[i].to_bits(), want.to_bits(), "row {}", i);
            }
        }

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
