//! Operation counts of the classical detectors, for the energy models of `kaq_ir::energy`
//! (docs/energy.md §4).
//!
//! Every count is of the real-valued system y = Hx + w with H of m × n (m = 2N_r, n = 2N_t)
//! and L levels per dimension, split into the work once per channel block (a decomposition
//! of H) and the work once per received vector. [`baseline_counts`] turns them into
//! [`Counts`] at a stated [`Arith`].

use kaq_ir::energy::{Arith, BaselineOps, Counts};

use super::{DetectorSpec, KBestVariant};

/// Cholesky factorization G = LLᵀ of an n × n matrix: per column j, j multiplies and adds,
/// a square root and a reciprocal for L_jj, then per entry below it j multiplies and adds
/// and one multiply by the reciprocal.
pub fn cholesky(n: u64) -> BaselineOps {
    let mut o = BaselineOps::default();
    for j in 0..n {
        let below = n - 1 - j;
        o.mults += j + below * (j + 1);
        o.adds += j + below * j;
        o.sqrts += 1;
        o.recips += 1;
    }
    o
}

/// One triangular solve with an n × n factor whose diagonal reciprocals are held: row i takes
/// i multiplies and adds and one multiply by the reciprocal.
pub fn triangular_solve(n: u64) -> BaselineOps {
    BaselineOps {
        mults: n * (n - 1) / 2 + n,
        adds: n * (n - 1) / 2,
        ..BaselineOps::default()
    }
}

/// The slicer: L − 1 comparisons per dimension.
fn slicer(n: u64, levels: u64) -> BaselineOps {
    BaselineOps {
        adds: n * (levels - 1),
        ..BaselineOps::default()
    }
}

/// ZF (`mmse = false`) or MMSE by the normal equations and a Cholesky solve. Per block:
/// G = HᵀH (the n(n+1)/2 distinct entries, m multiplies and m − 1 adds each; MMSE adds σ² to
/// the n diagonal entries) and its Cholesky factor. Per vector: Hᵀy (m n multiplies,
/// (m − 1) n adds), the forward and the backward solve, the slicer.
pub fn linear(m: u64, n: u64, levels: u64, mmse: bool) -> (BaselineOps, BaselineOps) {
    let entries = n * (n + 1) / 2;
    let gram = BaselineOps {
        mults: entries * m,
        adds: entries * (m - 1) + if mmse { n } else { 0 },
        ..BaselineOps::default()
    };
    let matched = BaselineOps {
        mults: m * n,
        adds: (m - 1) * n,
        ..BaselineOps::default()
    };
    (
        gram + cholesky(n),
        matched + triangular_solve(n) * 2 + slicer(n, levels),
    )
}

/// The K-best sphere decoder with a QR decomposition by modified Gram–Schmidt of H, or of the
/// MMSE-extended H̃ = [H; σI] with `rows` = m + n (the column sorting of the sorted QR is not
/// counted). Per block, with r = `rows`: per column j its norm (r multiplies, r − 1 adds, a square root and a reciprocal),
/// the normalization (r multiplies), and per later column the projection (r multiplies, r − 1
/// adds) and its removal (r multiplies, r adds); then R_ii·s for the L levels of each row
/// (n L multiplies). Per vector: Qᵀy (m n multiplies, (m − 1) n adds) and the tree search
/// from the last row up: at row i each of the c survivors (c = min(K, L^(levels done)))
/// forms its interference Σ_{j>i} R_ij x_j (n − 1 − i multiplies and adds); each of its L
/// children takes one add for the residual, one multiply to square it and one add to the
/// partial metric; the K best of the c L children are kept by binary insertion into a sorted
/// list of K, ⌈log₂(K + 1)⌉ comparisons per child. The final decision is the best survivor.
pub fn kbest(m: u64, rows: u64, n: u64, levels: u64, k: u64) -> (BaselineOps, BaselineOps) {
    let r = rows;
    let mut pb = BaselineOps::default();
    for j in 0..n {
        let later = n - 1 - j;
        pb.mults += 2 * r + later * 2 * r;
        pb.adds += (r - 1) + later * (2 * r - 1);
        pb.sqrts += 1;
        pb.recips += 1;
    }
    pb.mults += n * levels;
    let mut pv = BaselineOps {
        mults: m * n,
        adds: (m - 1) * n,
        ..BaselineOps::default()
    };
    let insert = u64::from((k + 1).next_power_of_two().trailing_zeros());
    let mut survivors = 1u64;
    for i in (0..n).rev() {
        let interference = n - 1 - i;
        let children = survivors * levels;
        pv.mults += survivors * interference + children;
        pv.adds += survivors * interference + 2 * children + children * insert;
        survivors = children.min(k);
    }
    (pb, pv)
}

/// The counts of the classical detector `spec` at `arith` for an m × n real system with L
/// levels per dimension and `bits_per_vector` information bits; `None` for ML (not priced:
/// its cost is exponential in n). The working set is H, the factor, y and the survivors at
/// the operand width.
pub fn baseline_counts(
    spec: DetectorSpec,
    m: usize,
    n: usize,
    levels: usize,
    bits_per_vector: u32,
    arith: Arith,
) -> Option<Counts> {
    let (m, n, levels) = (m as u64, n as u64, levels as u64);
    let (pb, pv, working) = match spec {
        DetectorSpec::Zf => {
            let (pb, pv) = linear(m, n, levels, false);
            (pb, pv, m * n + n * n + m + n)
        }
        DetectorSpec::Mmse => {
            let (pb, pv) = linear(m, n, levels, true);
            (pb, pv, m * n + n * n + m + n)
        }
        DetectorSpec::KBest { k, variant } => {
            let (k, rows) = (
                k as u64,
                if variant == KBestVariant::Zf {
                    m
                } else {
                    m + n
                },
            );
            let (pb, pv) = kbest(m, rows, n, levels, k);
            (pb, pv, 2 * rows * n + n * n + m + 2 * k * n)
        }
        DetectorSpec::Ml => return None,
    };
    Some(Counts::baseline(
        &spec.to_string(),
        bits_per_vector,
        arith,
        pb,
        pv,
        working * u64::from(arith.operand_bits()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_of_two_and_three_by_hand() {
        // n = 2: L11 = √g11 (sqrt, recip), L21 = g21·(1/L11) (1 mult), L22 = √(g22 − L21²)
        // (1 mult, 1 add, sqrt, recip).
        let c = cholesky(2);
        assert_eq!((c.mults, c.adds, c.sqrts, c.recips), (2, 1, 2, 2));
        // n = 3: column 0: 2 mults; column 1: 1 + 1·2 mults, 1 + 1 adds; column 2: 2 mults,
        // 2 adds.
        let c = cholesky(3);
        assert_eq!((c.mults, c.adds, c.sqrts, c.recips), (7, 4, 3, 3));
    }

    #[test]
    fn linear_2x2_by_hand() {
        // m = n = 2, BPSK-like L = 2: G has 3 distinct entries of 2 mults and 1 add.
        let (pb, pv) = linear(2, 2, 2, false);
        assert_eq!(
            (pb.mults, pb.adds, pb.sqrts, pb.recips),
            (6 + 2, 3 + 1, 2, 2)
        );
        // Hᵀy 4 mults 2 adds; two solves of 3 mults 1 add; 2 comparisons.
        assert_eq!((pv.mults, pv.adds), (4 + 6, 2 + 2 + 2));
        let (pb, _) = linear(2, 2, 2, true);
        assert_eq!(pb.adds, 3 + 1 + 2);
    }

    #[test]
    fn kbest_2x2_by_hand() {
        // m = n = 2, L = 2, K = 1. Block: column 0: 4 + 4 mults, 1 + 3 adds; column 1: 4
        // mults, 1 add; R_ii·s: 4 mults.
        let (pb, pv) = kbest(2, 2, 2, 2, 1);
        assert_eq!((pb.mults, pb.adds, pb.sqrts, pb.recips), (16, 5, 2, 2));
        // Vector: Qᵀy 4 mults 2 adds; row 1: 1 survivor, 2 children: 2 mults, 4 adds, 2
        // insertions of 1 comparison; row 0: 1 survivor, interference 1 mult 1 add, 2
        // children: 2 mults, 4 + 2 adds.
        assert_eq!((pv.mults, pv.adds), (4 + 2 + 3, 2 + 6 + 7));
        // The MMSE-extended 4 × 2 H̃: column 0: 8 + 8 mults, 3 + 7 adds; column 1: 8, 3.
        let (pb, pv2) = kbest(2, 4, 2, 2, 1);
        assert_eq!((pb.mults, pb.adds), (24 + 4, 13));
        assert_eq!(pv2, pv);
    }

    #[test]
    fn kbest_grows_with_k_and_ml_is_not_priced() {
        let spec = |k| DetectorSpec::KBest {
            k,
            variant: KBestVariant::default(),
        };
        let a = baseline_counts(spec(4), 8, 8, 2, 8, Arith::fixed(16)).unwrap();
        let b = baseline_counts(spec(32), 8, 8, 2, 8, Arith::fixed(16)).unwrap();
        assert!(b.energy(1).horowitz.pj_per_vector > a.energy(1).horowitz.pj_per_vector);
        assert!(b.energy(1).paper.pj_per_vector > a.energy(1).paper.pj_per_vector);
        assert!(baseline_counts(DetectorSpec::Ml, 8, 8, 2, 8, Arith::F32).is_none());
    }
}
