//! Tests of the fake-quant nets: the high-precision limit, the activation grid, the hand
//! backward pass against finite differences of the STE/LSQ surrogate (an independent f64
//! reference), the model file, and a small end-to-end PTQ / QAT-MSE run.
//!
//! The surrogate checked by finite differences: every quantizer Q(v; Δ) of the forward pass is
//! replaced by Q̃(v; Δ) = Δ·(clamp(v/Δ, −Q_P, Q_P) + ρ), with ρ (the rounding residual, 0 when
//! clamped) and the parameters' power-of-two steps frozen at the unperturbed point. Q̃ equals Q
//! there, its derivative in v is the STE (eq. 19) and in Δ the LSQ step gradient, so its exact
//! gradient is what the hand backward pass must return — for the net parameters through every
//! quantizer and for the LSQ steps and KAQ's α, γ through the activation quantizers.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::quantizer::{SnrBins, max_code};
use super::*;
use crate::mmd::{Bandwidths, KernelMode};
use crate::modulation::Modulation;
use crate::train::{SetKind, TrainSet};
use crate::unfolded::prox::ProxOp;
use crate::unfolded::{Arch, Init, Prox};

fn link(modulation: Modulation) -> LinkConfig {
    LinkConfig::new(4, 3, modulation).unwrap()
}

fn net_with(config: NetConfig, link: &LinkConfig, seed: u64) -> UnfoldedNet {
    let mut net = UnfoldedNet::new(config, link).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let names = net.param_names();
    for (p, name) in net.params_mut().iter_mut().zip(&names) {
        *p *= rng.random_range(0.6f32..1.4);
        if name.starts_with("lambda") {
            *p = p.abs();
        }
    }
    net
}

fn data(link: &LinkConfig, samples: usize, seed: u64) -> TrainSet {
    TrainSet::generate(link, samples, &[0.0, 7.5, 15.0, 25.0], seed, SetKind::Train).unwrap()
}

fn config_all(bits: u32, act: u32) -> QuantConfig {
    let f = TensorFormat {
        bits,
        step: StepPolicy::PowerOfTwo,
    };
    QuantConfig {
        activation_bits: act,
        layer_bits: None,
        h: f,
        h_layer_bits: None,
        y: f,
        e: f,
        g: f,
        params: f,
        snr_bins: SnrBins::default(),
    }
}

fn configs() -> Vec<NetConfig> {
    let base = NetConfig {
        layers: 3,
        ..NetConfig::default()
    };
    vec![
        base.clone(),
        NetConfig {
            momentum: true,
            init: Init::MatchedFilter,
            ..base.clone()
        },
        NetConfig {
            prox: Prox::Qam,
            momentum: true,
            ..base.clone()
        },
        NetConfig {
            prox: Prox::Box,
            init: Init::MatchedFilter,
            ..base.clone()
        },
        NetConfig {
            arch: Arch::Admm,
            ..base.clone()
        },
        NetConfig {
            arch: Arch::Admm,
            prox: Prox::Qam,
            momentum: true,
            init: Init::MatchedFilter,
            ..base
        },
    ]
}

#[test]
fn many_bits_match_the_f32_forward() {
    for (i, config) in configs().into_iter().enumerate() {
        let link = link(Modulation::Qam16);
        let teacher = net_with(config, &link, i as u64);
        let set = data(&link, 40, 3);
        let batch = set.as_batch();
        for method in [QuantMethod::Ptq, QuantMethod::Kaq] {
            let q = QuantNet::calibrate(&teacher, method, &config_all(24, 24), &batch).unwrap();
            let mut want = vec![0.0; batch.batch * batch.n];
            teacher.forward(&batch, &mut want);
            let mut got = vec![0.0; want.len()];
            q.forward(&batch, &mut got).unwrap();
            let mut layers = vec![0.0; teacher.config().layers * want.len()];
            teacher_layers(&teacher, &batch, &mut layers).unwrap();
            let last = &layers[(teacher.config().layers - 1) * want.len()..];
            for ((a, b), c) in got.iter().zip(&want).zip(last) {
                assert!(
                    (a - b).abs() < 1e-3 * (1.0 + b.abs()),
                    "config {i}: {a} vs {b}"
                );
                assert!(
                    (c - b).abs() < 1e-5 * (1.0 + b.abs()),
                    "teacher {i}: {c} vs {b}"
                );
            }
        }
    }
}

#[test]
fn activations_are_on_their_grid() {
    let link = link(Modulation::Qam16);
    for (config, bits) in [(1, 3), (1, 4), (1, 8), (5, 4)] {
        let teacher = net_with(configs()[config].clone(), &link, 5);
        let set = data(&link, 64, 4);
        let batch = set.as_batch();
        let mut q =
            QuantNet::calibrate(&teacher, QuantMethod::Kaq, &config_all(12, bits), &batch).unwrap();
        // Make the KAQ step depend on the SNR bin.
        let k = teacher.config().layers;
        let len = q.params().len();
        for a in &mut q.params_mut()[len - 2 * k..len - k] {
            *a = 0.05;
        }
        let mut out = vec![0.0; k * batch.batch * batch.n];
        q.forward_layers(&batch, &mut out).unwrap();
        let qp = max_code(bits);
        let bins = q.config().snr_bins;
        let mut distinct_steps = std::collections::BTreeSet::new();
        for layer in 0..k {
            for b in 0..batch.batch {
                let snr = 10.0 * (link.noise_var(0.0) / batch.noise_var[b] as f64).log10();
                let step = q.activation_step(layer, bins.bin(snr));
                distinct_steps.insert(step.to_bits());
                for &v in &out[(layer * batch.batch + b) * batch.n..][..batch.n] {
                    let code = v / step;
                    assert!(
                        (code - code.round()).abs() < 1e-3,
                        "{bits} bits: {v} is not a multiple of {step}"
                    );
                    assert!(
                        code.abs() <= qp + 1e-3,
                        "{bits} bits: code {code} beyond {qp}"
                    );
                }
            }
        }
        assert!(
            distinct_steps.len() > k,
            "the SNR-adaptive step did not vary"
        );
    }
}

/// The f64 surrogate of the fake-quant PGD-Net, written from the equations of `pass.rs`.
struct Reference<'a> {
    q: &'a QuantNet,
    /// Rounding residuals and parameter steps in call order; recorded on the first run.
    tape: Vec<f64>,
    record: bool,
    at: usize,
    /// x_S⁽ᵏ⁾ of the last [`Reference::loss`] call, layout `K × batch × n`.
    layers: Vec<f64>,
}

impl Reference<'_> {
    fn quant(&mut self, v: f64, step: f64, qp: f64) -> f64 {
        let rho = if self.record {
            let s = v / step;
            let r = if s.abs() <= qp {
                (s + 0.5).floor() - s
            } else {
                0.0
            };
            self.tape.push(r);
            r
        } else {
            self.at += 1;
            self.tape[self.at - 1]
        };
        step * ((v / step).clamp(-qp, qp) + rho)
    }

    fn frozen(&mut self, value: f64) -> f64 {
        if self.record {
            self.tape.push(value);
            value
        } else {
            self.at += 1;
            self.tape[self.at - 1]
        }
    }

    /// MSE + Σ_k ⟨extra_k, x⁽ᵏ⁾⟩ at the learnable vector `p`.
    fn loss(&mut self, p: &[f64], data: &TrainBatch<'_>, extra: &[f64]) -> f64 {
        self.at = 0;
        let q = self.q;
        let cfg = q.config();
        let nc = q.net_config();
        let link = q.link();
        let (m, n, kk) = (data.m, data.n, nc.layers);
        let net_len = q.float_net().params().len();
        let names = q.param_names();
        let fmt = cfg.params;
        let mut pq = vec![0.0; net_len];
        for i in 0..net_len {
            let step = self.frozen(fmt.step.step(p[i].abs() as f32, fmt.bits) as f64);
            pq[i] = self.quant(p[i], step, max_code(fmt.bits) as f64);
        }
        let find = |name: String| names.iter().position(|s| *s == name);
        let fx = q.fixed_steps();
        let act_qp = max_code(cfg.activation_bits) as f64;
        let mut loss = 0.0;
        self.layers = vec![0.0; kk * data.batch * n];
        for b in 0..data.batch {
            let h: Vec<f64> = data.h[b * m * n..(b + 1) * m * n]
                .iter()
                .map(|&v| self.quant(v as f64, fx.h as f64, max_code(cfg.h.bits) as f64))
                .collect();
            let y: Vec<f64> = data.y[b * m..(b + 1) * m]
                .iter()
                .map(|&v| self.quant(v as f64, fx.y as f64, max_code(cfg.y.bits) as f64))
                .collect();
            let snr = 10.0 * (link.noise_var(0.0) / data.noise_var[b] as f64).log10();
            let s = cfg.snr_bins.inv_sqrt_snr(cfg.snr_bins.bin(snr)) as f64;
            let mut xs: Vec<Vec<f64>> = Vec::new();
            let mut ss: Vec<Vec<f64>> = Vec::new();
            let mut us: Vec<Vec<f64>> = Vec::new();
            let x0 = match find("mf_scale".into()) {
                None => vec![0.0; n],
                Some(i) => (0..n)
                    .map(|j| {
                        let z: f64 = (0..m).map(|r| h[r * n + j] * y[r]).sum();
                        self.quant(pq[i] * z, fx.x0 as f64, act_qp)
                    })
                    .collect(),
            };
            ss.push(x0.clone());
            us.push(vec![0.0; n]);
            xs.push(x0);
            for k in 0..kk {
                let xp = xs[k].clone();
                let xpp = xs[k.saturating_sub(1)].clone();
                let e: Vec<f64> = (0..m)
                    .map(|r| {
                        let v = (0..n).map(|j| h[r * n + j] * xp[j]).sum::<f64>() - y[r];
                        self.quant(v, fx.e[k] as f64, max_code(cfg.e.bits) as f64)
                    })
                    .collect();
                let g: Vec<f64> = (0..n)
                    .map(|j| {
                        let v = (0..m).map(|r| h[r * n + j] * e[r]).sum::<f64>();
                        self.quant(v, fx.g[k] as f64, max_code(cfg.g.bits) as f64)
                    })
                    .collect();
                let eta = pq[find(format!("eta[{k}]")).unwrap()];
                let beta = find(format!("beta[{k}]")).map_or(0.0, |i| pq[i]);
                let pp = find(format!("lambda[{k}]"))
                    .or_else(|| find(format!("log_tau[{k}]")))
                    .map_or(0.0, |i| pq[i]);
                let prox = ProxOp::<f64>::new(nc.prox, link.modulation, pp);
                let step = match q.method() {
                    QuantMethod::Ptq | QuantMethod::QatMse => fx.activation[k] as f64,
                    QuantMethod::Lsq => p[net_len + k],
                    QuantMethod::Kaq => p[net_len + k] * s + p[net_len + kk + k],
                };
                let prox_in = q.prox_input_step().map(|st| st as f64);
                let layer_qp = max_code(cfg.layer_activation_bits(k)) as f64;
                let out_k = if nc.arch == Arch::Pgd {
                    let next: Vec<f64> = (0..n)
                        .map(|j| {
                            let r = xp[j] - eta * g[j] + beta * (xp[j] - xpp[j]);
                            let r = match prox_in {
                                Some(st) => self.quant(r, st, act_qp),
                                None => r,
                            };
                            self.quant(prox.apply(r), step, layer_qp)
                        })
                        .collect();
                    xs.push(next.clone());
                    next
                } else {
                    let rho = pq[find(format!("rho[{k}]")).unwrap()];
                    let (sp, up) = (ss[k].clone(), us[k].clone());
                    let (mut xn, mut sn, mut un) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
                    for j in 0..n {
                        let c = xp[j] - sp[j] + up[j];
                        let pre = xp[j] - eta * (g[j] + rho * c) + beta * (xp[j] - xpp[j]);
                        xn[j] = self.quant(pre, step, layer_qp);
                        let v = xn[j] + up[j];
                        let vq = match prox_in {
                            Some(st) => self.quant(v, st, act_qp),
                            None => v,
                        };
                        sn[j] = self.quant(prox.apply(vq), step, layer_qp);
                        un[j] = self.quant(v - sn[j], step, layer_qp);
                    }
                    xs.push(xn);
                    us.push(un);
                    ss.push(sn.clone());
                    sn
                };
                for j in 0..n {
                    loss += extra[(k * data.batch + b) * n + j] * out_k[j];
                    self.layers[(k * data.batch + b) * n + j] = out_k[j];
                }
            }
            let out = if nc.arch == Arch::Pgd {
                &xs[kk]
            } else {
                &ss[kk]
            };
            loss += (0..n)
                .map(|j| (out[j] - data.x[b * n + j] as f64).powi(2))
                .sum::<f64>()
                / data.batch as f64;
        }
        loss
    }
}

fn check_gradient(method: QuantMethod, config: NetConfig, seed: u64) {
    check_gradient_bits(method, config, seed, false);
}

/// [`check_gradient`]; `mixed` gives the layers 6, 3, 4, 5, … activation bits.
fn check_gradient_bits(method: QuantMethod, config: NetConfig, seed: u64, mixed: bool) {
    let link = link(Modulation::Qam16);
    let teacher = net_with(config, &link, seed);
    let set = data(&link, 6, seed + 100);
    let batch = set.as_batch();
    // Power-of-two steps make the grids of H, y, e, g and the parameters commensurate, so
    // exact rounding ties and exact soft-threshold kinks occur, where f32 and the f64
    // reference may round differently or the finite differences average two slopes. The check
    // therefore uses max-abs (incommensurate) steps for H, y, e, g, 24-bit parameters, and
    // calibrates on other samples so that no value sits exactly on a calibrated clamp bound.
    let calibration = data(&link, 32, seed + 200);
    let mut formats = config_all(6, 4);
    for f in [
        &mut formats.h,
        &mut formats.y,
        &mut formats.e,
        &mut formats.g,
    ] {
        f.step = StepPolicy::MaxAbs;
    }
    formats.params.bits = 24;
    if mixed {
        formats.activation_bits = 6;
        formats.layer_bits = Some(
            (0..teacher.config().layers)
                .map(|k| [6, 3, 4, 5][k % 4])
                .collect(),
        );
    }
    let mut q = QuantNet::calibrate(&teacher, method, &formats, &calibration.as_batch()).unwrap();
    let k = teacher.config().layers;
    let net_len = teacher.params().len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // A saturated g gives the calibration maximum of ADMM's x-update exactly, so a fixed step
    // at max/Q_P puts test values exactly on the clamp bound: move the fixed steps off it.
    for a in &mut q.fixed.activation {
        *a *= 0.93;
    }
    // Shrink the learned steps so that some activations saturate, and make α non-zero.
    for v in &mut q.params_mut()[net_len..] {
        *v *= rng.random_range(0.3f32..0.9);
    }
    if method == QuantMethod::Kaq {
        for a in &mut q.params_mut()[net_len..net_len + k] {
            *a = rng.random_range(0.0f32..0.05);
        }
    }
    let extra: Vec<f32> = (0..k * batch.batch * batch.n)
        .map(|_| rng.random_range(-0.05f32..0.05))
        .collect();
    let mut grad = vec![0.0; q.params().len()];
    q.loss_and_grad(&batch, Some(&extra), &mut grad).unwrap();
    let extra64: Vec<f64> = extra.iter().map(|&v| v as f64).collect();
    let base: Vec<f64> = q.params().iter().map(|&v| v as f64).collect();
    let mut reference = Reference {
        q: &q,
        tape: Vec::new(),
        record: true,
        at: 0,
        layers: Vec::new(),
    };
    reference.loss(&base, &batch, &extra64);
    reference.record = false;
    let names = q.param_names();
    let mut saturated = false;
    for i in 0..base.len() {
        let h = 1e-6 * (1.0 + base[i].abs());
        let mut plus = base.clone();
        plus[i] += h;
        let mut minus = base.clone();
        minus[i] -= h;
        let fd = (reference.loss(&plus, &batch, &extra64)
            - reference.loss(&minus, &batch, &extra64))
            / (2.0 * h);
        let got = grad[i] as f64;

        assert!(
            (got - fd).abs() <= 2e-3 * (1.0 + fd.abs()),
            "{method} {:?} seed {seed}: d/d{} = {got}, finite differences {fd}",
            q.net_config(),
            names[i]
        );
        if i >= net_len && fd.abs() > 0.0 {
            saturated = true;
        }
    }
    if method != QuantMethod::QatMse {
        assert!(saturated, "no step gradient was exercised");
    }
}

#[test]
fn backward_matches_finite_differences_of_the_surrogate() {
    for (c, config) in configs().into_iter().enumerate() {
        for method in [QuantMethod::QatMse, QuantMethod::Lsq, QuantMethod::Kaq] {
            for seed in 0..2 {
                check_gradient(method, config.clone(), 10 * c as u64 + seed);
            }
        }
    }
}

/// Mixed precision: per-layer Q_P in the forward pass and the STE/LSQ backward, checked
/// against the f64 reference with per-layer widths.
#[test]
fn mixed_precision_backward_matches_finite_differences() {
    for (c, config) in configs().into_iter().enumerate() {
        if config.layers < 2 {
            continue;
        }
        for method in [QuantMethod::QatMse, QuantMethod::Lsq, QuantMethod::Kaq] {
            check_gradient_bits(method, config.clone(), 10 * c as u64 + 7, true);
        }
    }
}

/// 4×4 QPSK, PGD-soft K = 3: the f32 teacher's run and the quantized runs share data and seed.
fn tiny_train_config() -> crate::train::TrainConfig {
    crate::train::TrainConfig {
        link: LinkConfig::new(4, 4, Modulation::Qpsk).unwrap(),
        net: NetConfig {
            layers: 3,
            ..NetConfig::default()
        },
        samples: 2_000,
        val_samples: 500,
        batch: 64,
        epochs: 5,
        lr: 1e-2,
        lr_step: 2,
        seed: 11,
        val_ber_snr_db: vec![10.0],
        val_ber_frames: 500,
        ..crate::train::TrainConfig::default()
    }
}

fn quant_config(bits: u32, epochs: usize) -> QuantTrainConfig {
    QuantTrainConfig {
        train: crate::train::TrainConfig {
            epochs,
            lr: 1e-3,
            ..tiny_train_config()
        },
        quant: QuantConfig::with_activation_bits(bits),
        calibration_samples: 1_000,
        kaq: KaqConfig::default(),
    }
}

#[test]
fn ptq_and_qat_end_to_end_on_a_tiny_net() {
    let teacher = crate::train::train(&tiny_train_config(), &mut |_| {})
        .unwrap()
        .net;
    let link = teacher.link().clone();
    let probe = TrainSet::generate(&link, 4_000, &[8.0], 99, SetKind::Validation).unwrap();
    let validation =
        TrainSet::generate(&link, 2_000, &[0.0, 10.0, 20.0], 98, SetKind::Train).unwrap();
    let f32_ber = crate::train::ber_on(&teacher, &probe, 8.0);
    let f32_loss = crate::train::mean_loss(&teacher, &validation);
    let mut report = Vec::new();
    for bits in [4, 8] {
        let ptq = train_quantized(
            &teacher,
            QuantMethod::Ptq,
            &quant_config(bits, 1),
            &mut |_| {},
        )
        .unwrap();
        assert!(ptq.history.is_empty());
        let qat = train_quantized(
            &teacher,
            QuantMethod::QatMse,
            &quant_config(bits, 2),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(qat.history.len(), 2);
        // QAT-MSE starts from the PTQ net and descends its own loss.
        let ptq_loss = quant_mean_loss(&ptq.net, &validation).unwrap();
        let qat_loss = quant_mean_loss(&qat.net, &validation).unwrap();
        let ptq_ber = quant_ber_on(&ptq.net, &probe, 8.0).unwrap();
        let qat_ber = quant_ber_on(&qat.net, &probe, 8.0).unwrap();
        report.push((bits, ptq_loss, qat_loss, ptq_ber.ber, qat_ber.ber));
        assert!(
            qat_loss <= ptq_loss * 1.02,
            "{bits} bits: QAT-MSE loss {qat_loss} vs PTQ {ptq_loss}"
        );
        if bits == 8 {
            // 8-bit PTQ stays within 10 % (plus 0.2 % absolute) of the f32 BER on the same frames.
            assert!(
                ptq_ber.ber <= f32_ber.ber * 1.1 + 2e-3 && ptq_ber.ber >= f32_ber.ber * 0.9 - 2e-3,
                "8-bit PTQ BER {} vs f32 {}",
                ptq_ber.ber,
                f32_ber.ber
            );
        }
        // Outputs are on the grid of the last layer's step.
        let batch = probe.range_batch(0, 64);
        let mut out = vec![0.0; 64 * batch.n];
        qat.net.forward(&batch, &mut out).unwrap();
        let step = qat.net.activation_step(2, 0);
        let qp = max_code(bits);
        for &v in &out {
            let code = v / step;
            assert!(
                (code - code.round()).abs() < 1e-3 && code.abs() <= qp + 1e-3,
                "{v} / {step}"
            );
        }
        // The Detector agrees with the forward pass.
        let mut frames = link.generator().unwrap();
        let mut rng = crate::link::stream_rng(5, 0);
        let fb = frames.generate(&vec![8.0; 200], &mut rng);
        let mut decisions = vec![0; fb.frames * fb.n];
        Detector::detect(&qat.net, &fb, &mut decisions).unwrap();
        let errors: u64 = decisions
            .iter()
            .zip(&fb.x)
            .map(|(&d, &x)| link.modulation.bit_errors(x, d) as u64)
            .sum();
        assert!((errors as f64) < 0.25 * (fb.frames as f64 * link.bits_per_frame() as f64));
    }
    eprintln!(
        "f32: loss {f32_loss:.4}, BER {:.5}; (bits, ptq loss, qat loss, ptq BER, qat BER): {report:?}",
        f32_ber.ber
    );
}

#[test]
fn quantized_model_file_round_trips_and_rejects_corruption() {
    let link = LinkConfig::new(4, 4, Modulation::Qpsk).unwrap();
    let teacher = net_with(tiny_train_config().net, &link, 1);
    let mut config = quant_config(6, 1);
    config.train.samples = 256;
    config.train.val_samples = 64;
    config.train.val_ber_frames = 64;
    config.calibration_samples = 128;
    let run = train_quantized(&teacher, QuantMethod::Kaq, &config, &mut |_| {}).unwrap();
    let dir = std::env::temp_dir().join(format!("kaq-qmodel-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("q.json");
    let file = file::QuantModelFile::from(&run);
    file.save(&path, crate::train::model_file::Overwrite::Replace)
        .unwrap();
    let loaded = file::QuantModelFile::load(&path).unwrap();
    let net = loaded.quant_net().unwrap();
    assert_eq!(net, run.net);
    assert_eq!(net.step_table().len(), 3);
    assert_eq!(net.step_table()[0].len(), SnrBins::default().count);

    let text = std::fs::read_to_string(&path).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["step_table"][0][5] = serde_json::json!(123.0);
    let err = file::QuantModelFile::from_json(&value.to_string(), &path).unwrap_err();
    assert!(err.to_string().contains("step_table"), "{err}");
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["fixed_steps"]["e"] = serde_json::json!([0.25]);
    let err = file::QuantModelFile::from_json(&value.to_string(), &path).unwrap_err();
    assert!(err.to_string().contains("fixed.e"), "{err}");
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["format"] = serde_json::json!("kaq-model");
    let err = file::QuantModelFile::from_json(&value.to_string(), &path).unwrap_err();
    assert!(err.to_string().contains("format"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn gradients_do_not_depend_on_threads_and_bad_inputs_are_refused() {
    let link = link(Modulation::Qam16);
    let teacher = net_with(configs()[1].clone(), &link, 8);
    let set = data(&link, 37, 9);
    let batch = set.as_batch();
    let q =
        QuantNet::calibrate(&teacher, QuantMethod::Kaq, &QuantConfig::default(), &batch).unwrap();
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let mut grad = vec![0.0; q.params().len()];
                let loss = q.loss_and_grad(&batch, None, &mut grad).unwrap();
                (loss, grad)
            })
    };
    assert_eq!(run(1), run(2));

    let mut grad = vec![0.0; q.params().len()];
    assert!(q.loss_and_grad(&batch, Some(&[0.0; 3]), &mut grad).is_err());
    assert!(q.loss_and_grad(&batch, None, &mut grad[1..]).is_err());
    let bad = QuantConfig::with_activation_bits(1);
    assert!(QuantNet::calibrate(&teacher, QuantMethod::Ptq, &bad, &batch).is_err());
    assert_eq!(
        "qat-mse".parse::<QuantMethod>().unwrap(),
        QuantMethod::QatMse
    );
    assert!("int4".parse::<QuantMethod>().is_err());
}

/// Biased MMD² of eq. 11 in f64 with the kernel Σ_s exp(−d/(2σ_s²)) per term (`sigmas[m]`
/// lists the bandwidths of term m: teacher–teacher, student–student, cross).
fn mmd_reference(a: &[f64], b: &[f64], n: usize, sigmas: &[Vec<f64>; 3]) -> f64 {
    let rows = a.len() / n;
    let mean = |u: &[f64], v: &[f64], s: &[f64]| {
        let mut sum = 0.0;
        for i in 0..rows {
            for j in 0..rows {
                let d: f64 = (0..n).map(|t| (u[i * n + t] - v[j * n + t]).powi(2)).sum();
                sum += s.iter().map(|s| (-d / (2.0 * s * s)).exp()).sum::<f64>();
            }
        }
        sum / (rows * rows) as f64
    };
    mean(a, a, &sigmas[0]) + mean(b, b, &sigmas[1]) - 2.0 * mean(a, b, &sigmas[2])
}

/// The KAQ loss MSE + ε Σ_k MMD² and its gradient with respect to the net parameters, α, γ
/// and ln σ against central finite differences of the STE surrogate plus the f64 MMD.
fn check_kaq_gradient(kernel: KernelMode, seed: u64) {
    let link = link(Modulation::Qam16);
    let config = configs()[1].clone();
    let teacher = net_with(config, &link, seed);
    let set = data(&link, 5, seed + 100);
    let batch = set.as_batch();
    let calibration = data(&link, 32, seed + 200);
    let mut formats = config_all(6, 4);
    for f in [
        &mut formats.h,
        &mut formats.y,
        &mut formats.e,
        &mut formats.g,
    ] {
        f.step = StepPolicy::MaxAbs;
    }
    formats.params.bits = 24;
    let mut q = QuantNet::calibrate(
        &teacher,
        QuantMethod::Kaq,
        &formats,
        &calibration.as_batch(),
    )
    .unwrap();
    let k = teacher.config().layers;
    let net_len = teacher.params().len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for a in &mut q.fixed.activation {
        *a *= 0.93;
    }
    for v in &mut q.params_mut()[net_len..] {
        *v *= rng.random_range(0.3f32..0.9);
    }
    for a in &mut q.params_mut()[net_len..net_len + k] {
        *a = rng.random_range(0.0f32..0.05);
    }
    let q_len = q.params().len();
    let epsilon = 3.0;
    let kaq_config = KaqConfig { epsilon, kernel };
    let mut student = KaqStudent::new(q.clone(), &teacher, kaq_config, &batch).unwrap();
    // Give the three bandwidths of every layer different values around the median start.
    for v in &mut student.params_mut()[q_len..] {
        *v += rng.random_range(-0.4f32..0.4);
    }
    student.project();
    let mut grad = vec![0.0; student.params().len()];
    let total = student.loss_and_grad(&batch, &mut grad).unwrap();
    let mse_only = KaqStudent::new(
        q.clone(),
        &teacher,
        KaqConfig {
            epsilon: 0.0,
            kernel,
        },
        &batch,
    )
    .unwrap();
    let mut grad_mse = vec![0.0; q_len];
    if kernel == KernelMode::Learnable {
        grad_mse.resize(q_len + 3 * k, 0.0);
    }
    let mse = mse_only.loss_and_grad(&batch, &mut grad_mse).unwrap();

    let n = batch.n;
    let size = batch.batch * n;
    let mut t32 = vec![0.0f32; k * size];
    teacher_layers(&teacher, &batch, &mut t32).unwrap();
    let t: Vec<f64> = t32.iter().map(|&v| v as f64).collect();
    let multi = match Bandwidths::multi_for(n, 5.0).unwrap() {
        Bandwidths::Multi { sigmas } => sigmas,
        _ => unreachable!("multi_for gives a multi-bandwidth set"),
    };
    let zeros = vec![0.0; k * size];
    let mut reference = Reference {
        q: &q,
        tape: Vec::new(),
        record: true,
        at: 0,
        layers: Vec::new(),
    };
    let base: Vec<f64> = student.params().iter().map(|&v| v as f64).collect();
    let loss = |reference: &mut Reference<'_>, p: &[f64]| -> (f64, f64) {
        let mse = reference.loss(&p[..q_len], &batch, &zeros);
        let mut mmd = 0.0;
        for layer in 0..k {
            let sigmas: [Vec<f64>; 3] = match kernel {
                KernelMode::Learnable => {
                    std::array::from_fn(|m| vec![p[q_len + 3 * layer + m].exp()])
                }
                _ => std::array::from_fn(|_| multi.clone()),
            };
            let range = layer * size..(layer + 1) * size;
            mmd += mmd_reference(&t[range.clone()], &reference.layers[range], n, &sigmas);
        }
        (mse, mmd)
    };
    let (mse0, mmd0) = loss(&mut reference, &base);
    reference.record = false;
    assert!(
        (mse0 - mse as f64).abs() < 1e-3 * (1.0 + mse0),
        "{mse0} vs {mse}"
    );
    let want = mse0 + epsilon * mmd0;
    assert!(
        (want - total as f64).abs() < 1e-3 * (1.0 + want),
        "{kernel}: loss {total} vs reference {want}"
    );
    let names = student.param_names();
    let mut mmd_seen = 0.0f64;
    for i in 0..base.len() {
        let h = 1e-6 * (1.0 + base[i].abs());
        let mut plus = base.clone();
        plus[i] += h;
        let mut minus = base.clone();
        minus[i] -= h;
        let (mp, dp) = loss(&mut reference, &plus);
        let (mm, dm) = loss(&mut reference, &minus);
        let fd = (mp + epsilon * dp - mm - epsilon * dm) / (2.0 * h);
        let fd_mmd = epsilon * (dp - dm) / (2.0 * h);
        let got = grad[i] as f64;
        assert!(
            (got - fd).abs() <= 2e-3 * (1.0 + fd.abs()),
            "{kernel} seed {seed}: d/d{} = {got}, finite differences {fd}",
            names[i]
        );
        // The MMD part alone: the difference of the ε > 0 and ε = 0 gradients.
        let got_mmd = got - grad_mse[i] as f64;
        assert!(
            (got_mmd - fd_mmd).abs() <= 2e-3 * (1.0 + fd_mmd.abs()) + 1e-4 * fd.abs(),
            "{kernel} seed {seed}: MMD part of d/d{} = {got_mmd}, finite differences {fd_mmd}",
            names[i]
        );
        mmd_seen = mmd_seen.max(fd_mmd.abs());
    }
    assert!(mmd_seen > 1e-3, "{kernel}: the MMD term has no gradient");
}

#[test]
fn kaq_loss_gradient_matches_finite_differences_of_the_surrogate() {
    for kernel in [KernelMode::Learnable, KernelMode::Multi] {
        for seed in 0..2 {
            check_kaq_gradient(kernel, 40 + seed);
        }
    }
}

#[test]
fn kaq_with_zero_epsilon_is_mse_only_training_and_threads_do_not_matter() {
    let link = LinkConfig::new(4, 4, Modulation::Qpsk).unwrap();
    let teacher = net_with(tiny_train_config().net, &link, 3);
    let mut config = quant_config(4, 2);
    config.train.samples = 512;
    config.train.val_samples = 64;
    config.train.val_ber_frames = 64;
    config.calibration_samples = 256;
    config.kaq = KaqConfig {
        epsilon: 0.0,
        kernel: KernelMode::Median,
    };
    let zero = train_quantized(&teacher, QuantMethod::Kaq, &config, &mut |_| {}).unwrap();
    // MSE-only training of the same calibrated net through the shared trainer.
    let tc = &config.train;
    let train =
        TrainSet::generate(&tc.link, tc.samples, &tc.snr_db, tc.seed, SetKind::Train).unwrap();
    let calibration = train.range_batch(0, config.calibration_samples);
    let net = QuantNet::calibrate(&teacher, QuantMethod::Kaq, &config.quant, &calibration).unwrap();
    let mut trainer = crate::train::Trainer::new(net, train.len(), tc.batch, tc.seed);
    for epoch in 1..=tc.epochs {
        trainer
            .epoch(&train, epoch, tc.lr_at(epoch), &mut |_| {})
            .unwrap();
    }
    assert_eq!(zero.net, trainer.into_net());
    assert_eq!(zero.kaq_history.len(), 2);
    assert!(zero.kaq_history.iter().all(|r| r.mmd == 0.0));

    for kernel in [KernelMode::Median, KernelMode::Learnable, KernelMode::Multi] {
        config.kaq = KaqConfig {
            epsilon: 2.0,
            kernel,
        };
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| train_quantized(&teacher, QuantMethod::Kaq, &config, &mut |_| {}))
                .unwrap()
        };
        let one = run(1);
        let two = run(2);
        assert_eq!(one.net, two.net, "{kernel}");
        assert_eq!(one.kaq_history, two.kaq_history, "{kernel}");
        assert_ne!(one.net, zero.net, "{kernel}: the MMD term changed nothing");
        for r in &one.kaq_history {
            // Learnable bandwidths may drive the paper's three-σ MMD² below zero (the trap).
            assert!(r.mmd.is_finite() && r.mmd != 0.0, "{kernel}: {r:?}");
            if kernel != KernelMode::Learnable {
                assert!(r.mmd > 0.0, "{kernel}: {r:?}");
            }
            assert!((r.total - r.mse - 2.0 * r.mmd).abs() < 1e-9 * (1.0 + r.total));
            assert_eq!(r.mmd_per_layer.len(), 3);
            assert!(
                r.saturation.iter().all(|s| (0.0..=1.0).contains(s)),
                "{r:?}"
            );
            let sigmas = if kernel == KernelMode::Multi { 0 } else { 3 };
            assert_eq!(r.sigma.len(), sigmas, "{kernel}");
        }
        assert_eq!(one.history[1].train_loss, one.kaq_history[1].mse);
    }
    config.kaq.epsilon = -1.0;
    assert!(train_quantized(&teacher, QuantMethod::Kaq, &config, &mut |_| {}).is_err());
}

/// Per-layer H̃ widths: every layer reading H̃ at `w − 2` bits is the same net as feeding it
/// the narrowed matrix sat(round_half_up(c / 4), w − 2)·4·step (computed here in integers)
/// at one width; the widths are checked against the net.
#[test]
fn per_layer_h_widths_read_the_rounded_top_bits() {
    let link = link(Modulation::Qam16);
    for (i, config) in configs()
        .into_iter()
        .filter(|c| c.init == Init::Zero && c.arch == Arch::Pgd)
        .enumerate()
    {
        let teacher = net_with(config, &link, 40 + i as u64);
        let set = data(&link, 24, 9);
        let batch = set.as_batch();
        let mut formats = config_all(6, 6);
        formats.h_layer_bits = Some(vec![4; teacher.config().layers]);
        let q = QuantNet::calibrate(&teacher, QuantMethod::Ptq, &formats, &batch).unwrap();
        let mut plain = q.clone();
        plain.config.h_layer_bits = None;
        let step = q.fixed.h;
        let narrowed: Vec<f32> = batch
            .h
            .iter()
            .map(|&v| {
                let c = ((v / step).round() as i64).clamp(-31, 31);
                let r = ((c + 2) >> 2).clamp(-7, 7);
                r as f32 * 4.0 * step
            })
            .collect();
        assert!(
            narrowed
                .iter()
                .zip(batch.h)
                .any(|(a, b)| (a - b).abs() > step)
        );
        let narrow_batch = TrainBatch {
            h: &narrowed,
            ..batch
        };
        let mut got = vec![0.0; batch.batch * batch.n];
        q.forward(&batch, &mut got).unwrap();
        let mut want = vec![0.0; got.len()];
        plain.forward(&narrow_batch, &mut want).unwrap();
        assert_eq!(got, want, "config {i}");
        let mut full = vec![0.0; got.len()];
        plain.forward(&batch, &mut full).unwrap();
        assert_ne!(got, full, "config {i}: narrowing H changed nothing");
    }
    let mut bad = config_all(6, 6);
    bad.h_layer_bits = Some(vec![7, 4, 4]);
    assert!(bad.validate().is_err());
    bad.h_layer_bits = Some(vec![4, 4]);
    assert!(bad.check_layers(3).is_err());
    bad.h_layer_bits = Some(vec![4, 5, 6]);
    assert!(bad.validate().is_ok() && bad.check_layers(3).is_ok());
}
