//! The MAC kernels of the interpreter: `i16` codes with `i32` accumulators (packed
//! multiply-adds) and `i32` codes with `i64` accumulators, behind one trait.

/// A MAC operand type and its accumulator.
pub(super) trait Code: Copy + Default + Send + Sync + 'static {
    /// The accumulator of [`Code::t_dot`].
    type Acc: Copy + Default + Send + Sync + Into<i64>;
    fn of(v: i64) -> Self;
    fn wide(self) -> i64;
    fn dot(a: &[Self], b: &[Self]) -> i64;
    /// `acc[j] = Σ_i h[i·n + j]·e[i]` (Hᵀ e for row-major H with `n` columns), without
    /// forming Hᵀ: a multiply-add of each row of H into the accumulators.
    fn t_dot(h: &[Self], hp: &[Self], n: usize, e: &[Self], acc: &mut [Self::Acc]);
    /// The rows of `h` in interleaved pairs (`hp[2n·p + 2j + r] = h[(2p + r)·n + j]`) where
    /// [`Code::t_dot`] reads them (a trailing odd row is not copied).
    fn pair_rows(h: &[Self], n: usize, hp: &mut [Self]);
    /// [`front_end`] of `v` as an f32 quantized with `scale = 1/step`.
    fn quantize(v: f64, scale: f32, qp: f32) -> Self;
    /// [`Code::quantize`] of every element of `src` into `dst` (same length).
    #[inline]
    fn quantize_into(src: &[f64], dst: &mut [Self], scale: f32, qp: f32) {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = Self::quantize(v, scale, qp);
        }
    }
}

/// `(v·scale + ½)` clamped to `±qp`: the argument of the floor in [`front_end`]. With
/// `scale = 1/step` a power of two, `v·scale` and `v/step` are the same correctly rounded
/// value of the same real number, and clamping to the integers `±qp` before the floor gives
/// the floor's result clamped afterwards.
#[inline]
fn front_end_clamped(v: f32, scale: f32, qp: f32) -> f32 {
    (v * scale + 0.5).clamp(-qp, qp)
}

/// [`Code::quantize`] for `i16` of an input already converted to f32.
#[inline]
fn quantize_f32(v: f32, scale: f32, qp: f32) -> i16 {
    // |t| ≤ qp < 2^15. Adding 1.5·2^23 rounds t to the nearest integer r (the sum lies in
    // [2^23, 2^24), where the f32 spacing is 1, so its bits count up from MAGIC's), and the
    // floor is r, or r − 1 where r > t. No float-to-int cast, so this vectorizes without
    // the saturating cast's scalar fix-ups. A NaN becomes 0, as `front_end`'s cast makes it.
    const MAGIC: f32 = 12_582_912.0;
    let t = front_end_clamped(v, scale, qp);
    let t = if t.is_nan() { 0.0 } else { t };
    let m = t + MAGIC;
    let r = m.to_bits() as i32 - MAGIC.to_bits() as i32;
    (r - i32::from(m - MAGIC > t)) as i16
}

impl Code for i16 {
    type Acc = i32;
    #[inline]
    fn of(v: i64) -> Self {
        debug_assert!(i16::try_from(v).is_ok(), "{v} is not a 16-bit code");
        v as i16
    }
    #[inline]
    fn wide(self) -> i64 {
        i64::from(self)
    }
    #[inline]
    fn quantize(v: f64, scale: f32, qp: f32) -> Self {
        quantize_f32(v as f32, scale, qp)
    }
    #[inline]
    fn quantize_into(src: &[f64], dst: &mut [Self], scale: f32, qp: f32) {
        // Blocks of 8: the f64 → f32 conversions fill whole 4-lane f32 vectors.
        let mut s = src.chunks_exact(8);
        let mut d = dst.chunks_exact_mut(8);
        for (dc, sc) in (&mut d).zip(&mut s) {
            let mut t = [0f32; 8];
            for (t, &v) in t.iter_mut().zip(sc) {
                *t = v as f32;
            }
            for (d, &t) in dc.iter_mut().zip(&t) {
                *d = quantize_f32(t, scale, qp);
            }
        }
        for (d, &v) in d.into_remainder().iter_mut().zip(s.remainder()) {
            *d = Self::quantize(v, scale, qp);
        }
    }
    #[inline]
    fn dot(a: &[Self], b: &[Self]) -> i64 {
        // |sum| < 2^31 by the proved accumulator width (the fast path requires ≤ 32 bits), so
        // every partial sum in any order is exact. Blocks of 32 and 16 become whole packed
        // multiply-adds with one horizontal sum per block.
        let (a32, a_rest) = a.split_at(a.len() - a.len() % 32);
        let (b32, b_rest) = b.split_at(a32.len());
        let mut t = dot_blocks::<32>(a32, b32);
        let (a16, a_tail) = a_rest.split_at(a_rest.len() - a_rest.len() % 16);
        let (b16, b_tail) = b_rest.split_at(a16.len());
        t = t.wrapping_add(dot_blocks::<16>(a16, b16));
        t = t.wrapping_add(dot_blocks::<1>(a_tail, b_tail));
        i64::from(t)
    }
    #[inline]
    fn pair_rows(h: &[Self], n: usize, hp: &mut [Self]) {
        for (pair, d) in h.chunks_exact(2 * n).zip(hp.chunks_exact_mut(2 * n)) {
            let (r0, r1) = pair.split_at(n);
            for ((d, &u), &v) in d.chunks_exact_mut(2).zip(r0).zip(r1) {
                d[0] = u;
                d[1] = v;
            }
        }
    }
    #[inline]
    fn t_dot(h: &[Self], hp: &[Self], n: usize, e: &[Self], acc: &mut [i32]) {
        // |acc[j]| < 2^31 by the proved accumulator width: wrapping partial sums are exact.
        // Two rows at a time from their interleaved copy: each accumulator takes the pair
        // of products (a packed multiply-add) per pass.
        acc.fill(0);
        let pairs = e.len() / 2;
        for (p, ep) in hp.chunks_exact(2 * n).zip(e.chunks_exact(2)) {
            let (e0, e1) = (i32::from(ep[0]), i32::from(ep[1]));
            for (a, uv) in acc.iter_mut().zip(p.chunks_exact(2)) {
                let t = (i32::from(uv[0]) * e0).wrapping_add(i32::from(uv[1]) * e1);
                *a = a.wrapping_add(t);
            }
        }
        if let Some(&ei) = e.get(2 * pairs) {
            let ei = i32::from(ei);
            for (a, &u) in acc.iter_mut().zip(&h[2 * pairs * n..]) {
                *a = a.wrapping_add(i32::from(u) * ei);
            }
        }
    }
}

/// Σ a_i·b_i in wrapping `i32`, one block of `L` at a time (`a.len()` a multiple of `L`).
#[inline]
fn dot_blocks<const L: usize>(a: &[i16], b: &[i16]) -> i32 {
    a.chunks_exact(L)
        .zip(b.chunks_exact(L))
        .fold(0i32, |t, (x, y)| {
            t.wrapping_add(
                x.iter()
                    .zip(y)
                    .map(|(&x, &y)| i32::from(x) * i32::from(y))
                    .fold(0i32, i32::wrapping_add),
            )
        })
}

impl Code for i32 {
    type Acc = i64;
    #[inline]
    fn of(v: i64) -> Self {
        debug_assert!(i32::try_from(v).is_ok(), "{v} is not a 32-bit code");
        v as i32
    }
    #[inline]
    fn wide(self) -> i64 {
        i64::from(self)
    }
    #[inline]
    fn quantize(v: f64, scale: f32, qp: f32) -> Self {
        let t = front_end_clamped(v as f32, scale, qp);
        let i = t as i64;
        Self::of(i - i64::from(i as f32 > t))
    }
    #[inline]
    fn dot(a: &[Self], b: &[Self]) -> i64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| i64::from(x) * i64::from(y))
            .sum()
    }
    #[inline]
    fn pair_rows(_: &[Self], _: usize, _: &mut [Self]) {}
    #[inline]
    fn t_dot(h: &[Self], _: &[Self], n: usize, e: &[Self], acc: &mut [i64]) {
        // The exact sums fit their proved accumulator width (≤ 64 bits): wrapping partial
        // sums are exact.
        acc.fill(0);
        for (row, &ei) in h.chunks_exact(n).zip(e) {
            let ei = i64::from(ei);
            for (a, &u) in acc.iter_mut().zip(row) {
                *a = a.wrapping_add(i64::from(u) * ei);
            }
        }
    }
}

#[cfg(test)]
mod t_dot_tests {
    use super::Code;

    /// The packed `Hᵀe` of `i16` codes, odd row counts included (their last row has no pair),
    /// equals the plain `i64` sum.
    #[test]
    fn packed_t_dot_equals_plain_sums() {
        for (m, n) in [(1, 3), (2, 5), (3, 4), (5, 7), (6, 16)] {
            let h: Vec<i16> = (0..m * n).map(|i| (i as i16 * 37 % 255) - 127).collect();
            let e: Vec<i16> = (0..m).map(|i| (i as i16 * 91 % 201) - 100).collect();
            let mut hp = vec![0i16; m * n];
            i16::pair_rows(&h, n, &mut hp);
            let mut acc = vec![0i32; n];
            i16::t_dot(&h, &hp, n, &e, &mut acc);
            let want: Vec<i64> = (0..n)
                .map(|j| {
                    (0..m)
                        .map(|i| i64::from(h[i * n + j]) * i64::from(e[i]))
                        .sum()
                })
                .collect();
            let got: Vec<i64> = acc.iter().map(|&a| i64::from(a)).collect();
            assert_eq!(got, want, "{m}×{n}");
        }
    }
}
