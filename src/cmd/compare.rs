//! `kaq compare`: trains (or loads) an f32 teacher, quantizes it with every requested method
//! at every requested activation bit width, measures all of them in one BER run, and writes a
//! report directory.
//!
//! What it guarantees:
//!
//! * **Same data.** Every quantized run uses the same training, validation and calibration data
//!   (the `--seed` streams of `kaq train`) and the same schedule; the BER run is one
//!   [`kaq_model::ber::simulate`] call, so every detector sees the same frames at each SNR.
//! * **KAQ is the full method.** Its loss is MSE + ε Σ_k MMD² against the teacher's layer
//!   outputs (`--epsilon`, `--kernel`, defaults those of `kaq train --quant`).
//! * **f32 is always the reference.** The teacher is simulated as `fp32` whether or not
//!   `--methods` lists it; `fp32` in `--methods` is accepted and adds nothing.
//! * **Safe output.** `--out` must be missing or empty unless `--force` is given; kaq then
//!   replaces only the files listed below (other files are kept). The directory is locked for
//!   the run ([`kaq_files::DirLock`]: a second `kaq compare` with the same `--out` fails naming
//!   the first) and built beside the old one, then swapped in whole ([`kaq_files::Staging`]):
//!   after a kill or a full disk, `--out` holds the old complete report or the new complete
//!   one, and the same command run again succeeds.
//! * **Reuses models.** With `--force`, a model already in `models/` whose stored training
//!   config, method and teacher equal what this run would train is loaded instead of
//!   retrained, so adding a method, a bit width or SNR points retrains nothing else. (Models
//!   trained by a run that was stopped before its swap are not kept.)
//!
//! Files under `--out`:
//!
//! * `models/fp32.json` (a `kaq-model` file), `models/<method>-<bits>bit.json` (`kaq-qmodel`).
//! * `report.md`: the BER table (rows = SNR, columns = detector, BER with its 95 % Wilson
//!   interval) and, per bit width, the two checks: KAQ within 5 % of f32 at every SNR (worst
//!   ratio BER_KAQ / BER_f32), and at how many SNR points KAQ has a lower BER than QAT-MSE
//!   (and at how many the intervals are separated: KAQ's upper end below QAT-MSE's lower end).
//! * `report.json`: config, every BER point, every training history, the checks.
//! * `ber-<bits>bit.svg`: log BER against SNR, f32 and every method at that width.
//! * `accuracy.svg`: validation accuracy against epoch. Validation accuracy is
//!   1 − (bit errors / bits) pooled over the validation-BER probes (`--val-snr`,
//!   `--val-frames` frames each). The teacher's epochs come first; each quantized run's
//!   fine-tuning epochs continue after them (epoch E + 1, …), so the plot reads as one timeline.
//! * `hist-layer<k>.svg` for the first and last layer: histograms of the layer-k activations
//!   (ADMM-Net: s⁽ᵏ⁾) of the f32 teacher and of every method at the lowest bit width, on the
//!   same fixed batch (the first `--hist-samples` samples of the validation set).
//!
//! `--arch cg|oamp` (module `gram`) compares the Gram-domain unfolded CG or OAMP-Net2: f32,
//! PTQ, QAT-MSE and KAQ (LSQ does not lower to IR v2 or v4 and is refused with status 2), each
//! student written as `models/<method>-<bits>bit.ir.json` and measured as its integer golden
//! model, with the same report files except the histograms; `--arch ep` is refused (no
//! quantized forms).
//!
//! Bad arguments end with status 2 and a message naming the argument; run-time failures
//! (refused output directory, divergence) with status 1.

mod gram;
mod options;
mod report;
mod results;
mod stages;

use super::args::{train_config_error, usage_error};
use std::fs;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use kaq_files::{DirLock, Staging, Wait};
use kaq_model::ber::{BerConfig, DEFAULT_BATCH_FRAMES};
use kaq_model::unfolded::NetConfig;
use kaq_model::{Detector, LinkConfig};

use crate::plot;

pub use options::CompareArgs;
use options::{ArchChoice, FP32, Labelled, Plan, RunKey};
use results::{
    BitsSummary, Report, RunReport, TeacherReport, accuracy, accuracy_series, ber_plots,
    histograms, summarize,
};
use stages::{check_out, obtain_quant, obtain_teacher, run_ber};

/// Runs `kaq compare`.
pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let methods = args.quant_methods()?;
    let mut runs = Vec::new();
    let mut bits: Vec<u32> = Vec::new();
    for &b in &args.bits {
        if !bits.contains(&b) {
            bits.push(b);
        }
    }
    for &b in &bits {
        for &method in &methods {
            runs.push(RunKey { method, bits: b });
        }
    }
    // Validate the data config before touching the file system (link and net are checked
    // again against the teacher file below).
    let link = LinkConfig::new(args.nt, args.nr, args.modulation)?;
    match args.arch {
        ArchChoice::Unfolded(arch) => {
            if args.inner.is_some() {
                return Err(usage_error("--inner", "only the cg family has inner steps"));
            }
            let probe_net = NetConfig {
                arch,
                prox: args.prox,
                layers: args.layers,
                momentum: args.momentum,
                init: args.init,
            };
            args.teacher_config(link, probe_net)
                .validate()
                .map_err(|e| train_config_error(e, "--train-snr"))?;
        }
        ArchChoice::Gram(_) => {
            gram::teacher_config(&args, link)?
                .validate()
                .map_err(|e| train_config_error(e, "--train-snr"))?;
        }
    }
    // A teacher file that cannot be read is refused before --out is created.
    if let Some(src) = &args.teacher {
        kaq_model::train::ModelFile::load(src)
            .with_context(|| format!("--teacher {}", src.display()))?;
    }
    // One writer per output directory; an interrupted earlier run is repaired first, so an
    // existing `--out` is a complete output (docs/outputs.md).
    let at_out = || format!("--out {}", args.out.display());
    let _lock = DirLock::acquire(&args.out, Wait::No).with_context(at_out)?;
    Staging::recover(&args.out).with_context(at_out)?;
    check_out(&args.out, args.force)?;
    let staging = Staging::begin(&args.out).with_context(at_out)?;
    if args.force {
        staging.keep_old().with_context(at_out)?;
    }
    let models = staging.path().join("models");
    fs::create_dir_all(&models).with_context(|| format!("cannot create {}", models.display()))?;

    let pool = match args.threads {
        Some(n) => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .context("cannot start the worker threads")?,
        ),
        None => None,
    };
    let work = || match args.arch {
        ArchChoice::Unfolded(_) => compare(&args, staging.path(), &runs, &bits),
        ArchChoice::Gram(_) => gram::compare(&args, staging.path(), &runs, &bits),
    };
    match &pool {
        Some(pool) => pool.install(work)?,
        None => work()?,
    }
    staging.commit().with_context(at_out)?;
    println!(
        "report written to {} in {:.1} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The comparison, its files written under `out` (the staging directory of `--out`).
fn compare(args: &CompareArgs, out: &Path, runs: &[RunKey], bits: &[u32]) -> anyhow::Result<()> {
    let models = out.join("models");
    let teacher_path = models.join("fp32.json");
    let (teacher, teacher_config, teacher_history, source) = obtain_teacher(args, &teacher_path)?;
    let data = args.teacher_config(teacher.link().clone(), teacher.config().clone());
    let mut trained = Vec::with_capacity(runs.len());
    for &key in runs {
        let config = args.quant_config(&data, key.bits);
        config
            .train
            .validate()
            .map_err(|e| train_config_error(e, "--train-snr"))?;
        let path = models.join(key.file_name());
        let (run, reused) = obtain_quant(&teacher, key, &config, &path)?;
        trained.push((key, run, reused));
    }
    let plan = Plan {
        ber: BerConfig {
            link: teacher.link().clone(),
            snr_db: args.snr.0.clone(),
            min_errors: args.min_errors,
            max_frames: args.max_frames,
            batch_frames: DEFAULT_BATCH_FRAMES,
            seed: args.seed,
            threads: None,
        },
        teacher_config,
        data,
        runs: runs.to_vec(),
        out: out.to_path_buf(),
    };
    plan.ber.validate()?;

    // One BER run for every detector.
    let mut labelled = vec![Labelled {
        label: FP32.into(),
        inner: &teacher,
    }];
    for (key, run, _) in &trained {
        labelled.push(Labelled {
            label: key.label(),
            inner: &run.net,
        });
    }
    let detectors: Vec<&dyn Detector> = labelled.iter().map(|d| d as &dyn Detector).collect();
    let points = run_ber(&plan.ber, &detectors)?;
    let names: Vec<String> = labelled.iter().map(|d| d.label.clone()).collect();

    let summary: Vec<BitsSummary> = bits.iter().map(|&b| summarize(b, &points)).collect();

    let report = Report {
        tool: "kaq",
        version: env!("CARGO_PKG_VERSION"),
        command: "compare",
        snr_definition: "per receive antenna: SNR = E|Hx|^2 / E|n|^2 = (Nt/Nr) Es / sigma^2",
        confidence: 0.95,
        interval: "wilson",
        accuracy_definition: "1 - (bit errors / bits) pooled over the validation-BER probes",
        teacher: TeacherReport {
            model: "models/fp32.json".into(),
            source: source.clone(),
            config: &plan.teacher_config,
            history: &teacher_history,
            validation_accuracy: accuracy(&teacher_history),
        },
        runs: trained
            .iter()
            .map(|(key, run, reused)| RunReport {
                label: key.label(),
                method: key.method,
                bits: key.bits,
                model: format!("models/{}", key.file_name()),
                reused: *reused,
                config: &run.config,
                history: &run.history,
                kaq_history: &run.kaq_history,
                validation_accuracy: accuracy(&run.history),
            })
            .collect(),
        ber: &plan.ber,
        detectors: names.clone(),
        points: &points,
        summary: &summary,
    };
    let mut json = serde_json::to_string_pretty(&report).context("cannot encode the report")?;
    json.push('\n');
    plot::write_atomically(&plan.out.join("report.json"), json.as_bytes())?;

    let md = report::markdown(args, &plan, &teacher, &source, &names, &points, &summary);
    plot::write_atomically(&plan.out.join("report.md"), md.as_bytes())?;

    let link = plot::style::link_name(plan.ber.link.nt, plan.ber.link.nr, plan.ber.link.modulation);
    ber_plots(
        &plan.out,
        |b| format!("BER, {} {b}-bit activations, {link}", teacher.name()),
        bits,
        &names,
        &points,
        &plan.runs,
    )?;

    let mut accuracy_series = accuracy_series(
        &teacher_history,
        trained
            .iter()
            .map(|(key, run, _)| (key.label(), run.history.as_slice())),
    );
    if accuracy_series.iter().any(|s| !s.points.is_empty()) {
        accuracy_series.retain(|s| !s.points.is_empty());
        plot::line_plot(
            &plan.out.join("accuracy.svg"),
            &format!("Validation accuracy, {} on {link}", teacher.name()),
            "epoch (f32, then quantized fine-tuning)",
            "1 - validation BER",
            false,
            &accuracy_series,
        )?;
    }

    histograms(args, &plan, &teacher, &trained)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::options::{Method, parse_method};
    use super::results::ber_ratio;
    use super::*;
    use crate::cmd::args::parse_bits;
    use kaq_model::ber::BerPoint;
    use kaq_model::ber::StopReason;
    use kaq_model::quant::QuantMethod;

    fn point(detector: &str, snr_db: f64, ber: f64, ci: (f64, f64)) -> BerPoint {
        BerPoint {
            detector: detector.into(),
            snr_db,
            ber,
            ber_ci_low: ci.0,
            ber_ci_high: ci.1,
            ser: ber,
            bit_errors: 0,
            bits: 0,
            symbol_errors: 0,
            symbols: 0,
            frames: 0,
            stop: StopReason::MinErrors,
        }
    }

    #[test]
    fn summary_counts_wins_and_separated_intervals() {
        let points = [
            point("fp32", 0.0, 0.10, (0.09, 0.11)),
            point("fp32", 5.0, 0.02, (0.018, 0.022)),
            point("fp32", 10.0, 0.0, (0.0, 0.001)),
            point("qat-mse@4", 0.0, 0.12, (0.11, 0.13)),
            point("qat-mse@4", 5.0, 0.04, (0.038, 0.042)),
            point("qat-mse@4", 10.0, 0.001, (0.0005, 0.002)),
            // Better but overlapping, better and separated, worse.
            point("kaq@4", 0.0, 0.115, (0.105, 0.125)),
            point("kaq@4", 5.0, 0.021, (0.019, 0.023)),
            point("kaq@4", 10.0, 0.002, (0.001, 0.003)),
        ];
        let s = summarize(4, &points);
        assert_eq!(s.snr_points, 3);
        assert_eq!(s.kaq_better_than_qat, Some(2));
        assert_eq!(s.kaq_better_than_qat_ci, Some(1));
        // f32 has no error at 10 dB where KAQ has some: the worst ratio is infinite there.
        let (ratio, snr) = s.kaq_worst_ratio.unwrap();
        assert!(ratio.is_infinite() && snr == 10.0, "{ratio} at {snr}");
        assert_eq!(s.kaq_within_5_percent, Some(false));

        let within = summarize(
            4,
            &points[..2]
                .iter()
                .cloned()
                .chain([
                    point("kaq@4", 0.0, 0.104, (0.1, 0.11)),
                    point("kaq@4", 5.0, 0.0201, (0.019, 0.021)),
                ])
                .collect::<Vec<_>>(),
        );
        let (ratio, snr) = within.kaq_worst_ratio.unwrap();
        assert!((ratio - 1.04).abs() < 1e-9 && snr == 0.0);
        assert_eq!(within.kaq_within_5_percent, Some(true));
        assert_eq!(within.kaq_better_than_qat, None);

        let none = summarize(8, &points);
        assert_eq!(none.kaq_worst_ratio, None);
        assert_eq!(none.kaq_better_than_qat, None);
    }

    #[test]
    fn ratio_handles_zero_errors() {
        assert_eq!(ber_ratio(0.2, 0.1), 2.0);
        assert_eq!(ber_ratio(0.0, 0.0), 1.0);
        assert!(ber_ratio(0.1, 0.0).is_infinite());
    }

    #[test]
    fn method_and_bits_parsers_name_the_problem() {
        assert_eq!(parse_method("FP32"), Ok(Method::Fp32));
        assert_eq!(
            parse_method("qat-mse"),
            Ok(Method::Quant(QuantMethod::QatMse))
        );
        assert!(parse_method("foo").unwrap_err().contains("foo"));
        assert_eq!(parse_bits("4"), Ok(4));
        assert!(parse_bits("1").unwrap_err().contains("got 1"));
        assert!(parse_bits("25").is_err());
        assert_eq!(
            RunKey {
                method: QuantMethod::Kaq,
                bits: 4
            }
            .label(),
            "kaq@4"
        );
        assert_eq!(
            RunKey {
                method: QuantMethod::QatMse,
                bits: 6
            }
            .file_name(),
            "qat-mse-6bit.json"
        );
    }
}
