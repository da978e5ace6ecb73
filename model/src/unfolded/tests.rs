//! Tests of the unfolded nets: hand-derived gradients against f64 central differences of the
//! reference, the fast forward against the reference, the Detector against forward, shape
//! checks, validation, serialization and thread-count independence.

use proptest::prelude::*;

use super::reference;
use super::*;
use crate::link::stream_rng;
use crate::modulation::Modulation;

fn frames(link: &LinkConfig, batch: usize, snr_db: f64, seed: u64) -> FrameBatch {
    let mut generator = link.generator().unwrap();
    generator.generate(&vec![snr_db; batch], &mut stream_rng(seed, 0))
}

fn to_f32(frames: &FrameBatch) -> F32Frames {
    F32Frames::from_frames(frames, 0..frames.frames).unwrap()
}

/// A random net configuration and link with random parameters around the initial ones.
#[derive(Debug, Clone)]
struct Case {
    net: UnfoldedNet,
    data: F32Frames,
}

fn config() -> impl Strategy<Value = NetConfig> {
    (
        prop::sample::select(vec![Arch::Pgd, Arch::Admm]),
        prop::sample::select(vec![Prox::Soft, Prox::Box, Prox::Qam]),
        1usize..=6,
        any::<bool>(),
        prop::sample::select(vec![Init::Zero, Init::MatchedFilter]),
    )
        .prop_map(|(arch, prox, layers, momentum, init)| NetConfig {
            arch,
            prox,
            layers,
            momentum,
            init,
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        config(),
        1usize..=6,
        1usize..=6,
        prop::sample::select(Modulation::ALL.to_vec()),
        1usize..=8,
        -5.0f64..30.0,
        any::<u64>(),
        prop::collection::vec(0.0f64..1.0, 6 * 4 + 1),
    )
        .prop_map(|(config, nt, nr, modulation, batch, snr, seed, u)| {
            // Heavily overloaded links (Nt > 2Nr) with a sharp qam prox are chaotic maps: f32
            // and f64 trajectories part ways and no f32 tolerance means anything there.
            let nt = nt.min(2 * nr);
            let link = LinkConfig::new(nt, nr, modulation).unwrap();
            let mut net = UnfoldedNet::new(config, &link).unwrap();
            let names = net.param_names();
            for ((p, name), u) in net.params_mut().iter_mut().zip(&names).zip(&u) {
                let (lo, hi) = match name.split('[').next().unwrap() {
                    "eta" => (0.05, 0.4),
                    "rho" => (0.1, 1.0),
                    "lambda" => (0.0, 0.6),
                    "log_tau" => (0.2f64.ln(), 2.0f64.ln()),
                    "beta" => (-0.3, 0.6),
                    "mf_scale" => (0.3, 1.0),
                    other => panic!("unexpected parameter {other}"),
                };
                *p = (lo + (hi - lo) * u) as f32;
            }
            let data = to_f32(&frames(&link, batch, snr, seed));
            Case { net, data }
        })
}

fn params64(net: &UnfoldedNet) -> Vec<f64> {
    net.params().iter().map(|&v| v as f64).collect()
}

/// Relative tolerance on each gradient entry against finite differences, and absolute
/// tolerance as a fraction of the largest gradient entry, on top of the finite-difference
/// gradient's own sensitivity to f32 rounding (see [`check_gradient`]): a wrong sign or a
/// missing term moves entries by O(1) of their size.
const RTOL: f64 = 1e-3;
const ATOL_OF_MAX: f64 = 1e-3;
/// Absolute floor: gradients below 1e-6 are at the f32 rounding level of the loss terms.
const ATOL_FLOOR: f64 = 1e-6;
/// Safety factor on the measured rounding sensitivity: f32 rounds every intermediate of every
/// layer, the jitter only the inputs, and a few random jitters see the most unstable direction
/// only partly.
const SENSITIVITY_FACTOR: f64 = 100.0;
/// Perturbed runs behind each sensitivity estimate.
const JITTER_RUNS: u64 = 4;

/// Central differences of the f64 reference loss; `None` where a prox changes branch inside
/// [p − h, p + h] (there the difference quotient is not the derivative).
fn fd_gradient(net: &UnfoldedNet, base: &[f64], data: &TrainBatch<'_>) -> Vec<Option<f64>> {
    let reference = reference::run(net, base, data);
    (0..base.len())
        .map(|i| {
            let h = 1e-5 * base[i].abs().max(1.0);
            let mut p = base.to_vec();
            p[i] = base[i] + h;
            let plus = reference::run(net, &p, data);
            p[i] = base[i] - h;
            let minus = reference::run(net, &p, data);
            (plus.pattern == reference.pattern && minus.pattern == reference.pattern)
                .then(|| (plus.loss - minus.loss) / (2.0 * h))
        })
        .collect()
}

/// `data` with H and y moved by one f32 ulp and `params` scaled by 1 ± 2⁻²⁴, random signs.
fn jittered(data: &F32Frames, params: &[f64], seed: u64) -> (F32Frames, Vec<f64>) {
    use rand::Rng;
    let mut rng = stream_rng(seed, 1);
    let unit = f32::EPSILON as f64 / 2.0;
    let p = params
        .iter()
        .map(|&v| v * (1.0 + if rng.random::<bool>() { unit } else { -unit }))
        .collect();
    let mut moved = data.clone();
    for v in moved.h.iter_mut().chain(moved.y.iter_mut()) {
        *v = if rng.random::<bool>() {
            v.next_up()
        } else {
            v.next_down()
        };
    }
    (moved, p)
}

/// Checks the analytic gradient of `net` on `data` against central differences of the f64
/// reference. The tolerance of each entry adds [`SENSITIVITY_FACTOR`] times the spread of the
/// finite-difference gradient over [`JITTER_RUNS`] f32-rounding-level perturbations of the inputs, so
/// ill-conditioned cases (sharp qam prox, many layers) get the slack f32 needs and no more.
/// Returns the number of parameters checked.
fn check_gradient(net: &UnfoldedNet, data: &F32Frames) -> Result<usize, TestCaseError> {
    let view = data.as_batch();
    let base = params64(net);
    let reference = reference::run(net, &base, &view);
    prop_assume!(reference.kink_margin > 1e-3);
    let mut grad = vec![0.0f32; base.len()];
    let loss = net.loss_and_grad(&view, &mut grad);
    prop_assert!(
        ((loss as f64) - reference.loss).abs() <= 1e-4 * (1.0 + reference.loss),
        "loss {loss} vs reference {}",
        reference.loss
    );
    let names = net.param_names();
    let fd = fd_gradient(net, &base, &view);
    let mut spread = vec![0.0f64; base.len()];
    for seed in 0..JITTER_RUNS {
        let (moved, p) = jittered(data, &base, seed);
        for (s, (a, b)) in spread
            .iter_mut()
            .zip(fd_gradient(net, &p, &moved.as_batch()).iter().zip(&fd))
        {
            if let (Some(a), Some(b)) = (a, b) {
                *s = s.max((a - b).abs());
            }
        }
    }
    let max = fd.iter().flatten().fold(0.0f64, |a, v| a.max(v.abs()));
    let mut checked = 0;
    for (i, want) in fd.iter().enumerate() {
        let Some(want) = *want else { continue };
        let got = grad[i] as f64;
        let tol =
            RTOL * want.abs() + ATOL_OF_MAX * max + ATOL_FLOOR + SENSITIVITY_FACTOR * spread[i];
        prop_assert!(
            (got - want).abs() <= tol,
            "{}: analytic {got} vs finite difference {want} (tolerance {tol}), config {:?}, \
             link {}x{} {}",
            names[i],
            net.config(),
            net.link().nt,
            net.link().nr,
            net.link().modulation
        );
        checked += 1;
    }
    Ok(checked)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Every parameter gradient matches central finite differences of the f64 reference.
    #[test]
    fn gradients_match_finite_differences(case in case()) {
        let checked = check_gradient(&case.net, &case.data)?;
        prop_assert!(checked > 0, "no parameter could be checked");
    }

    /// The fast f32 forward equals the f64 reference forward within f32 accuracy: the
    /// tolerance is the reference's own spread when its inputs and parameters are rounded
    /// differently at the f32 unit roundoff (times [`SENSITIVITY_FACTOR`], plus 1e-4 of the output scale), so ill-conditioned
    /// cases (sharp qam prox, underdetermined links) get the slack they need and no more.
    #[test]
    fn forward_matches_reference(case in case(), signs in any::<u64>()) {
        let data = case.data.as_batch();
        let mut out = vec![0.0f32; data.batch * data.n];
        case.net.forward(&data, &mut out);
        let params = params64(&case.net);
        let reference = reference::run(&case.net, &params, &data);
        let spread = f32_sensitivity(&case.net, &params, &case.data, signs, &reference.outputs);
        let scale = reference.outputs.iter().fold(1.0f64, |a, v| a.max(v.abs()));
        for (i, (&got, &want)) in out.iter().zip(&reference.outputs).enumerate() {
            let tol = 1e-4 * scale + SENSITIVITY_FACTOR * spread[i];
            prop_assert!((got as f64 - want).abs() <= tol,
                "element {i}: {got} vs reference {want} (tolerance {tol})");
        }
    }
}

/// Per output element, the largest change of the f64 reference over [`JITTER_RUNS`] f32-rounding-level
/// perturbations of its inputs and parameters (see [`jittered`]).
fn f32_sensitivity(
    net: &UnfoldedNet,
    params: &[f64],
    data: &F32Frames,
    seed: u64,
    base: &[f64],
) -> Vec<f64> {
    let mut spread = vec![0.0f64; base.len()];
    for i in 0..JITTER_RUNS {
        let (moved, p) = jittered(data, params, seed.wrapping_add(i));
        let run = reference::run(net, &p, &moved.as_batch());
        for (s, (a, b)) in spread.iter_mut().zip(run.outputs.iter().zip(base)) {
            *s = s.max((a - b).abs());
        }
    }
    spread
}

#[test]
fn gradient_test_sees_every_parameter_kind() {
    // Deterministic cases covering every block, so that each kind of parameter is checked.
    let link = LinkConfig::new(3, 4, Modulation::Qam16).unwrap();
    let data = to_f32(&frames(&link, 5, 12.0, 7));
    for arch in [Arch::Pgd, Arch::Admm] {
        for prox in [Prox::Soft, Prox::Box, Prox::Qam] {
            let config = NetConfig {
                arch,
                prox,
                layers: 3,
                momentum: true,
                init: Init::MatchedFilter,
            };
            let mut net = UnfoldedNet::new(config, &link).unwrap();
            if prox == Prox::Soft {
                let names = net.param_names();
                for (p, name) in net.params_mut().iter_mut().zip(names) {
                    if name.starts_with("lambda") {
                        *p = 0.25;
                    }
                }
            }
            let checked =
                check_gradient(&net, &data).unwrap_or_else(|e| panic!("{arch} {prox}: {e}"));
            assert_eq!(
                checked,
                net.params().len(),
                "{arch} {prox}: a parameter was skipped"
            );
        }
    }
}

#[test]
fn detector_slices_forward_output() {
    let link = LinkConfig::new(4, 4, Modulation::Qam16).unwrap();
    let net = UnfoldedNet::new(
        NetConfig {
            prox: Prox::Qam,
            ..NetConfig::default()
        },
        &link,
    )
    .unwrap();
    // More frames than one detection chunk, and not a multiple of it.
    let fb = frames(&link, 150, 15.0, 3);
    let data = to_f32(&fb);
    let mut out = vec![0.0f32; data.batch * data.n];
    net.forward(&data.as_batch(), &mut out);
    let mut decisions = vec![0i32; fb.frames * fb.n];
    net.detect(&fb, &mut decisions).unwrap();
    let want: Vec<i32> = out
        .iter()
        .map(|&v| link.modulation.slice(v as f64))
        .collect();
    assert_eq!(decisions, want);
    assert_eq!(net.name(), "pgd-qam-k5");
}

#[test]
fn detector_rejects_mismatched_frames() {
    let link = LinkConfig::new(4, 4, Modulation::Qpsk).unwrap();
    let net = UnfoldedNet::new(NetConfig::default(), &link).unwrap();
    let other = LinkConfig::new(4, 2, Modulation::Qpsk).unwrap();
    let fb = frames(&other, 3, 10.0, 1);
    let mut decisions = vec![0; fb.frames * fb.n];
    assert!(matches!(
        net.detect(&fb, &mut decisions),
        Err(ModelError::Shape(_))
    ));
    let fb = frames(&link, 3, 10.0, 1);
    let mut short = vec![0; 5];
    assert!(net.detect(&fb, &mut short).is_err());
    let qam = LinkConfig::new(4, 4, Modulation::Qam16).unwrap();
    let fb = frames(&qam, 3, 10.0, 1);
    let mut decisions = vec![0; fb.frames * fb.n];
    assert!(matches!(
        net.detect(&fb, &mut decisions),
        Err(ModelError::Shape(_))
    ));
}

#[test]
fn check_rejects_bad_shapes() {
    let link = LinkConfig::new(2, 3, Modulation::Qam16).unwrap();
    let net = UnfoldedNet::new(NetConfig::default(), &link).unwrap();
    let good = to_f32(&frames(&link, 4, 10.0, 2));
    assert!(net.check(&good.as_batch()).is_ok());
    let mut bad = good.clone();
    bad.h.pop();
    assert!(matches!(
        net.check(&bad.as_batch()),
        Err(ModelError::Shape(_))
    ));
    let mut bad = good.clone();
    bad.noise_var.push(1.0);
    assert!(net.check(&bad.as_batch()).is_err());
    let mut bad = good.clone();
    bad.y.pop();
    assert!(net.check(&bad.as_batch()).is_err());
    let mut bad = good.clone();
    bad.x.pop();
    assert!(net.check(&bad.as_batch()).is_err());
    // Consistent slices, but not this net's dimensions.
    let mut bad = good.as_batch();
    (bad.m, bad.n) = (good.n, good.m);
    assert!(matches!(net.check(&bad), Err(ModelError::Shape(_))));
    let mut bad = good.as_batch();
    bad.batch = usize::MAX;
    assert!(net.check(&bad).is_err());
}

#[test]
fn new_and_validate_enforce_the_domain() {
    let link = LinkConfig::new(2, 2, Modulation::Qpsk).unwrap();
    for layers in [0, MAX_LAYERS + 1] {
        let config = NetConfig {
            layers,
            ..NetConfig::default()
        };
        assert!(UnfoldedNet::new(config, &link).is_err(), "layers {layers}");
    }
    let mut net = UnfoldedNet::new(NetConfig::default(), &link).unwrap();
    net.params_mut()[0] = f32::NAN;
    assert!(matches!(net.validate(), Err(ModelError::NonFinite(_))));
    let mut net = UnfoldedNet::new(NetConfig::default(), &link).unwrap();
    let lambda = net
        .param_names()
        .iter()
        .position(|n| n == "lambda[2]")
        .unwrap();
    net.params_mut()[lambda] = -0.1;
    assert!(net.validate().is_err());
    net.project();
    assert!(net.validate().is_ok());
    assert_eq!(net.params()[lambda], 0.0);
    let qam = NetConfig {
        prox: Prox::Qam,
        ..NetConfig::default()
    };
    let mut net = UnfoldedNet::new(qam, &link).unwrap();
    net.params_mut()[7] = 100.0;
    assert!(net.validate().is_err());
    net.project();
    assert_eq!(net.params()[7], MAX_LOG_TAU);
}

#[test]
fn initial_parameters_and_names_follow_the_layout() {
    let link = LinkConfig::new(16, 16, Modulation::Qam16).unwrap();
    let net = UnfoldedNet::new(NetConfig::default(), &link).unwrap();
    assert_eq!(
        net.param_names()[..2],
        ["eta[0]".to_string(), "eta[1]".to_string()]
    );
    assert_eq!(net.params().len(), 10);
    assert!(net.params()[..5].iter().all(|&v| v == INIT_ETA));
    assert!(net.params()[5..].iter().all(|&v| v == INIT_LAMBDA));
    let full = NetConfig {
        arch: Arch::Admm,
        prox: Prox::Qam,
        layers: 4,
        momentum: true,
        init: Init::MatchedFilter,
    };
    let net = UnfoldedNet::new(full, &link).unwrap();
    let names = net.param_names();
    assert_eq!(names.len(), 4 * 4 + 1);
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len());
    let value = |name: &str| net.params()[names.iter().position(|n| n == name).unwrap()];
    assert_eq!(value("rho[3]"), INIT_RHO);
    assert_eq!(value("log_tau[0]"), INIT_TAU.ln());
    assert_eq!(value("beta[1]"), INIT_BETA);
    assert_eq!(value("mf_scale"), 0.5);
}

#[test]
fn serde_round_trips_and_validates() {
    let link = LinkConfig::new(2, 3, Modulation::Qam64).unwrap();
    let config = NetConfig {
        arch: Arch::Admm,
        prox: Prox::Box,
        layers: 2,
        momentum: false,
        init: Init::MatchedFilter,
    };
    let net = UnfoldedNet::new(config, &link).unwrap();
    let json = serde_json::to_string(&net).unwrap();
    assert!(
        json.contains("\"arch\":\"admm\"") && json.contains("\"init\":\"mf\""),
        "{json}"
    );
    let back: UnfoldedNet = serde_json::from_str(&json).unwrap();
    assert_eq!(back, net);
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["params"].as_array_mut().unwrap().pop();
    assert!(serde_json::from_value::<UnfoldedNet>(value).is_err());
}

#[test]
fn names_parse_and_display() {
    for a in [Arch::Pgd, Arch::Admm] {
        assert_eq!(a.to_string().parse::<Arch>().unwrap(), a);
    }
    for p in [Prox::Soft, Prox::Box, Prox::Qam] {
        assert_eq!(p.to_string().parse::<Prox>().unwrap(), p);
    }
    for i in [Init::Zero, Init::MatchedFilter] {
        assert_eq!(i.to_string().parse::<Init>().unwrap(), i);
    }
    assert_eq!("MF".parse::<Init>().unwrap(), Init::MatchedFilter);
    assert!("fista".parse::<Arch>().is_err());
    assert!("hard".parse::<Prox>().is_err());
    assert!("random".parse::<Init>().is_err());
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let link = LinkConfig::new(8, 8, Modulation::Qam16).unwrap();
    let config = NetConfig {
        arch: Arch::Admm,
        prox: Prox::Qam,
        momentum: true,
        ..NetConfig::default()
    };
    let net = UnfoldedNet::new(config, &link).unwrap();
    let data = to_f32(&frames(&link, 77, 10.0, 5));
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut grad = vec![0.0f32; net.params().len()];
            let loss = net.loss_and_grad(&data.as_batch(), &mut grad);
            let mut out = vec![0.0f32; data.batch * data.n];
            net.forward(&data.as_batch(), &mut out);
            (
                loss.to_bits(),
                grad.iter().map(|g| g.to_bits()).collect::<Vec<_>>(),
                out,
            )
        })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(5));
    assert!(one.1.iter().any(|&g| f32::from_bits(g) != 0.0));
}

#[test]
fn empty_batch_has_zero_loss_and_gradient() {
    let link = LinkConfig::new(2, 2, Modulation::Qpsk).unwrap();
    let net = UnfoldedNet::new(NetConfig::default(), &link).unwrap();
    let data = to_f32(&frames(&link, 0, 10.0, 1));
    let mut grad = vec![1.0f32; net.params().len()];
    assert_eq!(net.loss_and_grad(&data.as_batch(), &mut grad), 0.0);
    assert!(grad.iter().all(|&g| g == 0.0));
}

#[test]
fn f32_frames_copy_a_range_and_refuse_one_past_the_end() {
    let link = LinkConfig::new(2, 3, Modulation::Qam16).unwrap();
    let fb = frames(&link, 4, 10.0, 3);
    let part = F32Frames::from_frames(&fb, 1..3).unwrap();
    assert_eq!((part.batch, part.m, part.n), (2, fb.m, fb.n));
    part.as_batch().check().unwrap();
    let (m, n) = (fb.m, fb.n);
    assert_eq!(part.h[0], fb.h[m * n] as f32);
    assert_eq!(part.y[m - 1], fb.y[2 * m - 1] as f32);
    assert_eq!(part.x[n], fb.x[2 * n] as f32);
    assert_eq!(part.noise_var[1], fb.noise_var[2] as f32);
    let err = F32Frames::from_frames(&fb, 3..5).unwrap_err();
    assert!(
        matches!(err, ModelError::Shape(ref s) if s.contains("field h")),
        "{err}"
    );
}
