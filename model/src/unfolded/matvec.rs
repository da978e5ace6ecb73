//! The two matrix–vector products of the direct-form datapath on one row-major M×N channel:
//! H v (M dot products over contiguous rows) and Hᵀ e (an axpy of each row into the result).
//!
//! The dot product keeps eight independent partial sums so the compiler can vectorize it
//! without reassociating; its summation order is fixed, so results are deterministic.

/// Lanes of the partial sums in [`dot`].
const LANES: usize = 8;

/// Σ a_i b_i with a fixed, vectorizable summation order.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let (a_main, a_tail) = a.split_at(a.len() - a.len() % LANES);
    let (b_main, b_tail) = b.split_at(a_main.len());
    for (ca, cb) in a_main.chunks_exact(LANES).zip(b_main.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] += ca[l] * cb[l];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in a_tail.iter().zip(b_tail) {
        tail += x * y;
    }
    let s01 = (acc[0] + acc[4]) + (acc[1] + acc[5]);
    let s23 = (acc[2] + acc[6]) + (acc[3] + acc[7]);
    (s01 + s23) + tail
}

/// out = H v − y (pass an empty `y` for out = H v). H is `out.len() × v.len()`.
#[inline]
pub fn residual(h: &[f32], v: &[f32], y: &[f32], out: &mut [f32]) {
    let n = v.len();
    debug_assert_eq!(h.len(), out.len() * n);
    for (i, (o, row)) in out.iter_mut().zip(h.chunks_exact(n)).enumerate() {
        let hv = dot(row, v);
        *o = if y.is_empty() { hv } else { hv - y[i] };
    }
}

/// out = Hᵀ e. H is `e.len() × out.len()`.
#[inline]
pub fn transpose_mul(h: &[f32], e: &[f32], out: &mut [f32]) {
    let n = out.len();
    debug_assert_eq!(h.len(), e.len() * n);
    out.fill(0.0);
    for (&ei, row) in e.iter().zip(h.chunks_exact(n)) {
        for (o, &hij) in out.iter_mut().zip(row) {
            *o += ei * hij;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_match_the_definition() {
        let (m, n) = (5, 11);
        let h: Vec<f32> = (0..m * n)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.25)
            .collect();
        let v: Vec<f32> = (0..n).map(|j| j as f32 * 0.5 - 2.0).collect();
        let y: Vec<f32> = (0..m).map(|i| i as f32).collect();
        let mut e = vec![0.0; m];
        residual(&h, &v, &y, &mut e);
        for i in 0..m {
            let want: f32 = (0..n).map(|j| h[i * n + j] * v[j]).sum::<f32>() - y[i];
            assert!((e[i] - want).abs() < 1e-4, "row {i}: {} vs {want}", e[i]);
        }
        let mut g = vec![0.0; n];
        transpose_mul(&h, &e, &mut g);
        for j in 0..n {
            let want: f32 = (0..m).map(|i| h[i * n + j] * e[i]).sum();
            assert!((g[j] - want).abs() < 1e-4, "column {j}: {} vs {want}", g[j]);
        }
    }
}
