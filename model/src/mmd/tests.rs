//! Tests of the MMD² loss against a naive f64 reference written straight from paper eq. (11):
//! loss values, student and log-bandwidth gradients (central finite differences of the
//! reference), positivity, the median heuristic, and input validation.

use proptest::prelude::*;

use super::*;

/// Kernel Σ_s exp(−‖u − v‖² / (2σ_s²)) evaluated directly.
fn reference_kernel(u: &[f64], v: &[f64], sigmas: &[f64]) -> f64 {
    let d: f64 = u.iter().zip(v).map(|(a, b)| (a - b).powi(2)).sum();
    sigmas.iter().map(|s| (-d / (2.0 * s * s)).exp()).sum()
}

/// MMD² by the triple loop over (i, j) and the feature index, every pair visited in both orders.
fn reference_loss(
    a: &[f64],
    b: &[f64],
    batch: usize,
    dim: usize,
    sigmas: [&[f64]; 3],
    estimator: Estimator,
) -> f64 {
    let row = |x: &[f64], i: usize| x[i * dim..(i + 1) * dim].to_vec();
    let (mut k1, mut k2, mut k3) = (0.0, 0.0, 0.0);
    let (mut n1, mut n3) = (0.0, 0.0);
    for i in 0..batch {
        for j in 0..batch {
            k3 += reference_kernel(&row(a, i), &row(b, j), sigmas[2]);
            n3 += 1.0;
            if i == j && estimator == Estimator::Unbiased {
                continue;
            }
            k1 += reference_kernel(&row(a, i), &row(a, j), sigmas[0]);
            k2 += reference_kernel(&row(b, i), &row(b, j), sigmas[1]);
            n1 += 1.0;
        }
    }
    k1 / n1 + k2 / n1 - 2.0 * k3 / n3
}

/// The median heuristic by sorting every pooled pairwise distance.
fn reference_median(a: &[f64], b: &[f64], batch: usize, dim: usize) -> f64 {
    let pooled: Vec<&[f64]> = a.chunks(dim).chain(b.chunks(dim)).collect();
    assert_eq!(pooled.len(), 2 * batch);
    let mut dists = Vec::new();
    for i in 0..pooled.len() {
        for j in i + 1..pooled.len() {
            let d: f64 = pooled[i]
                .iter()
                .zip(pooled[j])
                .map(|(x, y)| (x - y).powi(2))
                .sum();
            dists.push(d.sqrt());
        }
    }
    dists.sort_by(f64::total_cmp);
    let c = dists.len();
    let median = if c % 2 == 1 {
        dists[c / 2]
    } else {
        0.5 * (dists[c / 2 - 1] + dists[c / 2])
    };
    if median > 0.0 {
        median
    } else {
        let mean = dists.iter().sum::<f64>() / c as f64;
        if mean > 0.0 { mean } else { 1.0 }
    }
}

fn widen(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// The per-term bandwidth lists the reference uses for `bandwidths` on this data.
fn reference_sigmas(
    bandwidths: &Bandwidths,
    a: &[f64],
    b: &[f64],
    batch: usize,
    dim: usize,
) -> [Vec<f64>; 3] {
    match bandwidths {
        Bandwidths::Learnable { log_sigma } => log_sigma.map(|s| vec![s.exp()]),
        Bandwidths::Median => {
            let s = reference_median(a, b, batch, dim);
            [vec![s], vec![s], vec![s]]
        }
        Bandwidths::Multi { sigmas } => [sigmas.clone(), sigmas.clone(), sigmas.clone()],
    }
}

#[derive(Debug, Clone)]
struct Case {
    batch: usize,
    dim: usize,
    teacher: Vec<f32>,
    student: Vec<f32>,
    mmd: Mmd,
}

fn bandwidths() -> impl Strategy<Value = Bandwidths> {
    let log_range = (0.3f64).ln()..(5.0f64).ln();
    prop_oneof![
        prop::array::uniform3(log_range).prop_map(|log_sigma| Bandwidths::Learnable { log_sigma }),
        Just(Bandwidths::Median),
        prop::collection::vec(0.3f64..5.0, 1..5).prop_map(|sigmas| Bandwidths::Multi { sigmas }),
    ]
}

fn estimator() -> impl Strategy<Value = Estimator> {
    prop_oneof![Just(Estimator::Biased), Just(Estimator::Unbiased)]
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..=10, 1usize..=8, bandwidths(), estimator())
        .prop_flat_map(|(batch, dim, bandwidths, estimator)| {
            // The unbiased estimator needs two activations per side.
            let batch = if estimator == Estimator::Unbiased {
                batch.max(2)
            } else {
                batch
            };
            let len = batch * dim;
            (
                prop::collection::vec(-3.0f32..3.0, len),
                prop::collection::vec(-3.0f32..3.0, len),
                Just((batch, dim, bandwidths, estimator)),
            )
        })
        .prop_map(
            |(teacher, student, (batch, dim, bandwidths, estimator))| Case {
                batch,
                dim,
                teacher,
                student,
                mmd: Mmd {
                    bandwidths,
                    estimator,
                },
            },
        )
}

/// A batch whose student equals its teacher, with one shared bandwidth scheme.
fn shared_case() -> impl Strategy<Value = Case> {
    let shared = prop_oneof![
        ((0.3f64).ln()..(5.0f64).ln()).prop_map(|s| Bandwidths::Learnable { log_sigma: [s; 3] }),
        Just(Bandwidths::Median),
        prop::collection::vec(0.3f64..5.0, 1..5).prop_map(|sigmas| Bandwidths::Multi { sigmas }),
    ];
    (1usize..=10, 1usize..=8, shared).prop_flat_map(|(batch, dim, bandwidths)| {
        (
            prop::collection::vec(-3.0f32..3.0, batch * dim),
            prop::collection::vec(-3.0f32..3.0, batch * dim),
        )
            .prop_map(move |(teacher, student)| Case {
                batch,
                dim,
                teacher,
                student,
                mmd: Mmd {
                    bandwidths: bandwidths.clone(),
                    estimator: Estimator::Biased,
                },
            })
    })
}

fn eval(case: &Case) -> (MmdStats, Vec<f32>, [f64; 3]) {
    let mut ws = MmdWorkspace::new(case.batch, case.dim).expect("valid shape");
    let mut grad = vec![f32::NAN; case.teacher.len()];
    let mut grad_sigma = [f64::NAN; 3];
    let stats = case
        .mmd
        .eval(
            &mut ws,
            &case.teacher,
            &case.student,
            Some(&mut grad),
            Some(&mut grad_sigma),
        )
        .expect("valid input");
    (stats, grad, grad_sigma)
}

const STEP: f64 = 1e-5;

fn gradient_tolerance(fd: f64) -> f64 {
    1e-4 * (1.0 + fd.abs())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The loss equals the naive f64 triple loop, and the reported σ and kernel means agree.
    #[test]
    fn loss_matches_reference(case in case()) {
        let (stats, _, _) = eval(&case);
        let (a, b) = (widen(&case.teacher), widen(&case.student));
        let sigmas = reference_sigmas(&case.mmd.bandwidths, &a, &b, case.batch, case.dim);
        let want = reference_loss(&a, &b, case.batch, case.dim,
            [&sigmas[0], &sigmas[1], &sigmas[2]], case.mmd.estimator);
        prop_assert!((stats.loss - want).abs() <= 1e-12 * (1.0 + want.abs()),
            "loss {} vs reference {want}", stats.loss);
        let kernels = sigmas[0].len() as f64;
        let recombined = kernels * (stats.kernel_means[0] + stats.kernel_means[1]
            - 2.0 * stats.kernel_means[2]);
        prop_assert!((recombined - stats.loss).abs() <= 1e-12 * (1.0 + kernels));
        for m in stats.kernel_means {
            prop_assert!((-1e-15..=1.0 + 1e-12).contains(&m), "kernel mean {m} outside [0, 1]");
        }
        match (&case.mmd.bandwidths, stats.sigma) {
            (Bandwidths::Multi { .. }, s) => prop_assert!(s.is_none()),
            (_, Some(s)) => for m in 0..3 {
                prop_assert!((s[m] - sigmas[m][0]).abs() <= 1e-12 * sigmas[m][0]);
            },
            (_, None) => prop_assert!(false, "single-bandwidth mode reported no sigma"),
        }
    }

    /// ∂MMD²/∂student matches central differences of the reference at fixed bandwidths (for
    /// `Median`, the bandwidth of the unperturbed batch), and ∂MMD²/∂ln σ_m matches central
    /// differences in ln σ_m (zero outside `Learnable`).
    #[test]
    fn gradients_match_finite_differences(case in case()) {
        let (_, grad, grad_sigma) = eval(&case);
        let (a, mut b) = (widen(&case.teacher), widen(&case.student));
        let (batch, dim, est) = (case.batch, case.dim, case.mmd.estimator);
        let sigmas = reference_sigmas(&case.mmd.bandwidths, &a, &b, batch, dim);
        let refs = [&sigmas[0][..], &sigmas[1][..], &sigmas[2][..]];
        for k in 0..b.len() {
            let x = b[k];
            b[k] = x + STEP;
            let up = reference_loss(&a, &b, batch, dim, refs, est);
            b[k] = x - STEP;
            let down = reference_loss(&a, &b, batch, dim, refs, est);
            b[k] = x;
            let fd = (up - down) / (2.0 * STEP);
            prop_assert!((grad[k] as f64 - fd).abs() <= gradient_tolerance(fd),
                "student element {k}: {} vs finite difference {fd}", grad[k]);
        }
        match &case.mmd.bandwidths {
            Bandwidths::Learnable { log_sigma } => {
                for m in 0..3 {
                    let mut shifted = *log_sigma;
                    let mut at = |s: f64| {
                        shifted[m] = s;
                        let sig = shifted.map(|v| vec![v.exp()]);
                        reference_loss(&a, &b, batch, dim, [&sig[0], &sig[1], &sig[2]], est)
                    };
                    let fd = (at(log_sigma[m] + STEP) - at(log_sigma[m] - STEP)) / (2.0 * STEP);
                    prop_assert!((grad_sigma[m] - fd).abs() <= gradient_tolerance(fd),
                        "ln sigma {m}: {} vs finite difference {fd}", grad_sigma[m]);
                }
            }
            _ => prop_assert_eq!(grad_sigma, [0.0; 3]),
        }
    }

    /// With one shared positive-definite kernel the biased MMD² is non-negative, and it is zero
    /// with a zero student gradient when the student equals the teacher.
    #[test]
    fn shared_kernel_is_nonnegative_and_zero_on_equal_samples(case in shared_case()) {
        let (stats, _, _) = eval(&case);
        prop_assert!(stats.loss >= -1e-12, "biased MMD² {} < 0", stats.loss);
        let same = Case { student: case.teacher.clone(), ..case };
        let (stats, grad, _) = eval(&same);
        prop_assert!(stats.loss.abs() <= 1e-12, "MMD² of equal samples = {}", stats.loss);
        for (k, g) in grad.iter().enumerate() {
            prop_assert!(g.abs() <= 1e-6, "student element {k} gradient {g} on equal samples");
        }
    }

    /// The median bandwidth equals the sort-based reference, also on batches with many
    /// coincident points (values drawn from a few grid levels).
    #[test]
    fn median_bandwidth_matches_sorting(
        batch in 1usize..=12,
        dim in 1usize..=6,
        levels in prop::collection::vec(0u8..3, 2 * 12 * 6),
    ) {
        let len = batch * dim;
        let teacher: Vec<f32> = levels[..len].iter().map(|&l| l as f32 - 1.0).collect();
        let student: Vec<f32> = levels[len..2 * len].iter().map(|&l| l as f32 - 1.0).collect();
        let mut ws = MmdWorkspace::new(batch, dim).expect("valid shape");
        let got = ws.median_bandwidth(&teacher, &student).expect("valid input");
        let want = reference_median(&widen(&teacher), &widen(&student), batch, dim);
        prop_assert!((got - want).abs() <= 1e-12 * want, "median {got} vs sorted {want}");
    }
}

#[test]
fn median_falls_back_when_points_coincide() {
    let mut ws = MmdWorkspace::new(3, 2).expect("valid shape");
    // Every point equal: σ = 1.
    let same = [0.5f32; 6];
    assert_eq!(ws.median_bandwidth(&same, &same).expect("valid"), 1.0);
    // Five of six points equal: the median distance is 0, so the mean distance is used.
    let mut other = same;
    other[5] = 3.5;
    let got = ws.median_bandwidth(&same, &other).expect("valid");
    let want = reference_median(&widen(&same), &widen(&other), 3, 2);
    assert!(
        (got - 3.0 * 5.0 / 15.0).abs() < 1e-12,
        "mean fallback {got}"
    );
    assert_eq!(got, want);
}

#[test]
fn multi_default_matches_documented_16qam_set() {
    let Bandwidths::Multi { sigmas } = Bandwidths::multi_for(32, 5.0).expect("valid") else {
        panic!("multi_for must return the Multi variant");
    };
    let c = (2.0f64 * 32.0 * 5.0).sqrt() / 2.0;
    assert_eq!(sigmas.len(), MULTI_FACTORS.len());
    for (s, f) in sigmas.iter().zip(MULTI_FACTORS) {
        assert!((s - f * c).abs() < 1e-12);
    }
    assert!((sigmas[2] - 320f64.sqrt()).abs() < 1e-12);
}

#[test]
fn repeated_evaluation_is_bit_identical() {
    let (batch, dim) = (7, 5);
    let teacher: Vec<f32> = (0..batch * dim)
        .map(|k| ((k * 37 % 11) as f32) * 0.5 - 2.5)
        .collect();
    let student: Vec<f32> = (0..batch * dim)
        .map(|k| ((k * 13 % 7) as f32) * 0.7 - 2.0)
        .collect();
    let mut ws = MmdWorkspace::new(batch, dim).expect("valid shape");
    for mmd in [
        Mmd::learnable([1.0, 2.0, 3.0]).expect("valid"),
        Mmd {
            bandwidths: Bandwidths::Median,
            estimator: Estimator::Unbiased,
        },
        Mmd {
            bandwidths: Bandwidths::multi_for(dim, 5.0).expect("valid"),
            estimator: Estimator::Biased,
        },
    ] {
        let mut g1 = vec![0.0f32; batch * dim];
        let mut g2 = vec![0.0f32; batch * dim];
        let s1 = mmd
            .eval(&mut ws, &teacher, &student, Some(&mut g1), None)
            .expect("valid");
        let s2 = mmd
            .eval(&mut ws, &teacher, &student, Some(&mut g2), None)
            .expect("valid");
        assert_eq!(s1.loss.to_bits(), s2.loss.to_bits());
        assert_eq!(g1, g2);
        assert!(
            g1.iter().any(|&g| g != 0.0),
            "{mmd:?}: gradient is identically zero"
        );
    }
}

#[test]
fn invalid_input_is_an_error() {
    assert!(matches!(
        MmdWorkspace::new(0, 4),
        Err(ModelError::InvalidDimension {
            name: "batch",
            value: 0,
            ..
        })
    ));
    assert!(matches!(
        MmdWorkspace::new(4, 0),
        Err(ModelError::InvalidDimension {
            name: "dim",
            value: 0,
            ..
        })
    ));
    for sigma in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-200, 1e200] {
        assert!(
            matches!(
                Mmd::learnable([1.0, sigma, 1.0]),
                Err(ModelError::InvalidParameter { .. })
            ),
            "sigma {sigma} accepted"
        );
    }

    let mut ws = MmdWorkspace::new(2, 3).expect("valid shape");
    let good = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0];
    let mmd = Mmd::learnable([1.0; 3]).expect("valid");
    assert!(matches!(
        mmd.eval(&mut ws, &good[..5], &good, None, None),
        Err(ModelError::Shape(_))
    ));
    assert!(matches!(
        mmd.eval(&mut ws, &good, &good[..4], None, None),
        Err(ModelError::Shape(_))
    ));
    let mut short = [0.0f32; 5];
    assert!(matches!(
        mmd.eval(&mut ws, &good, &good, Some(&mut short), None),
        Err(ModelError::Shape(_))
    ));
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut data = good;
        data[4] = bad;
        let err = mmd
            .eval(&mut ws, &data, &good, None, None)
            .expect_err("non-finite teacher");
        assert!(
            matches!(&err, ModelError::NonFinite(what) if what.contains("teacher")),
            "{err}"
        );
        let err = mmd
            .eval(&mut ws, &good, &data, None, None)
            .expect_err("non-finite student");
        assert!(
            matches!(&err, ModelError::NonFinite(what) if what.contains("student")),
            "{err}"
        );
    }
    for log_sigma in [
        [f64::NAN, 0.0, 0.0],
        [0.0, -1000.0, 0.0],
        [0.0, 0.0, 1000.0],
    ] {
        let mmd = Mmd {
            bandwidths: Bandwidths::Learnable { log_sigma },
            estimator: Estimator::Biased,
        };
        assert!(
            matches!(
                mmd.eval(&mut ws, &good, &good, None, None),
                Err(ModelError::InvalidParameter { .. })
            ),
            "log sigma {log_sigma:?} accepted"
        );
    }
    for sigmas in [vec![], vec![1.0, -2.0], vec![f64::NAN]] {
        let mmd = Mmd {
            bandwidths: Bandwidths::Multi {
                sigmas: sigmas.clone(),
            },
            estimator: Estimator::Biased,
        };
        assert!(
            mmd.eval(&mut ws, &good, &good, None, None).is_err(),
            "multi set {sigmas:?} accepted"
        );
    }
    assert!(matches!(
        Bandwidths::multi_for(0, 5.0),
        Err(ModelError::InvalidDimension { .. })
    ));
    assert!(matches!(
        Bandwidths::multi_for(4, -5.0),
        Err(ModelError::InvalidParameter { .. })
    ));

    let mut single = MmdWorkspace::new(1, 3).expect("valid shape");
    let unbiased = Mmd {
        bandwidths: Bandwidths::Median,
        estimator: Estimator::Unbiased,
    };
    assert!(matches!(
        unbiased.eval(&mut single, &good[..3], &good[3..], None, None),
        Err(ModelError::InvalidDimension {
            name: "batch",
            value: 1,
            ..
        })
    ));
}

#[test]
fn kernel_mode_names_round_trip() {
    for mode in [KernelMode::Learnable, KernelMode::Median, KernelMode::Multi] {
        assert_eq!(
            mode.to_string().parse::<KernelMode>().expect("own name"),
            mode
        );
    }
    assert!("gaussian".parse::<KernelMode>().is_err());
    assert_eq!(Bandwidths::Median.mode(), KernelMode::Median);
    assert_eq!(
        Mmd::learnable([1.0; 3]).expect("valid").bandwidths.mode(),
        KernelMode::Learnable
    );
}
