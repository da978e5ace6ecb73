//! What `kaq compare` reports: the JSON report, the per-bit-width checks, the BER series and
//! the activation histograms.

use kaq_model::ber::{BerConfig, BerPoint};
use kaq_model::quant::kaq::KaqEpoch;
use kaq_model::quant::{QuantMethod, QuantTrainConfig, QuantTrained, teacher_layers};
use kaq_model::train::{EpochRecord, SetKind, TrainSet};
use kaq_model::unfolded::UnfoldedNet;
use serde::Serialize;

use super::options::{CompareArgs, FP32, Plan, RunKey};
use crate::plot::{self, Histogram, Series};

/// The per-run part of `report.json`.
#[derive(Debug, Serialize)]
pub(super) struct RunReport<'a> {
    pub(super) label: String,
    pub(super) method: QuantMethod,
    pub(super) bits: u32,
    pub(super) model: String,
    pub(super) reused: bool,
    pub(super) config: &'a QuantTrainConfig,
    pub(super) history: &'a [EpochRecord],
    /// KAQ only: the loss terms, saturation and bandwidths of every epoch.
    pub(super) kaq_history: &'a [KaqEpoch],
    pub(super) validation_accuracy: Vec<f64>,
}

/// One bit width's checks.
#[derive(Debug, Clone, Serialize)]
pub(super) struct BitsSummary {
    pub(super) bits: u32,
    /// Worst BER_KAQ / BER_f32 over the SNR points and where (absent without KAQ).
    pub(super) kaq_worst_ratio: Option<(f64, f64)>,
    /// Whether KAQ is within 5 % of f32 at every SNR point.
    pub(super) kaq_within_5_percent: Option<bool>,
    /// SNR points where KAQ's BER is below QAT-MSE's (absent without both).
    pub(super) kaq_better_than_qat: Option<usize>,
    /// SNR points where KAQ's upper 95 % bound is below QAT-MSE's lower bound.
    pub(super) kaq_better_than_qat_ci: Option<usize>,
    pub(super) snr_points: usize,
}

/// `report.json`; `T` is the teacher's training config and `R` a run's report.
#[derive(Debug, Serialize)]
pub(super) struct Report<'a, T, R> {
    pub(super) tool: &'static str,
    pub(super) version: &'static str,
    pub(super) command: &'static str,
    pub(super) snr_definition: &'static str,
    pub(super) confidence: f64,
    pub(super) interval: &'static str,
    pub(super) accuracy_definition: &'static str,
    pub(super) teacher: TeacherReport<'a, T>,
    pub(super) runs: Vec<R>,
    pub(super) ber: &'a BerConfig,
    pub(super) detectors: Vec<String>,
    pub(super) points: &'a [BerPoint],
    pub(super) summary: &'a [BitsSummary],
}

#[derive(Debug, Serialize)]
pub(super) struct TeacherReport<'a, T> {
    pub(super) model: String,
    pub(super) source: String,
    pub(super) config: &'a T,
    pub(super) history: &'a [EpochRecord],
    pub(super) validation_accuracy: Vec<f64>,
}

/// 1 − pooled validation BER of every epoch.
pub(super) fn accuracy(history: &[EpochRecord]) -> Vec<f64> {
    history
        .iter()
        .map(|r| {
            let errors: u64 = r.val_ber.iter().map(|v| v.bit_errors).sum();
            let bits: u64 = r.val_ber.iter().map(|v| v.bits).sum();
            if bits == 0 {
                f64::NAN
            } else {
                1.0 - errors as f64 / bits as f64
            }
        })
        .collect()
}

pub(super) fn ber_series(name: &str, points: &[BerPoint]) -> Series {
    let mine: Vec<&BerPoint> = points.iter().filter(|p| p.detector == name).collect();
    Series {
        name: name.to_string(),
        points: mine.iter().map(|p| (p.snr_db, p.ber)).collect(),
        y_err: Some(mine.iter().map(|p| (p.ber_ci_low, p.ber_ci_high)).collect()),
    }
}
/// One BER plot per bit width, `ber-<b>bit.svg` in `out`: the f32 teacher and the runs of
/// `runs` at that width, titled by `title(b)`.
pub(super) fn ber_plots(
    out: &std::path::Path,
    title: impl Fn(u32) -> String,
    bits: &[u32],
    names: &[String],
    points: &[BerPoint],
    runs: &[RunKey],
) -> anyhow::Result<()> {
    for &b in bits {
        let series: Vec<Series> = names
            .iter()
            .filter(|name| {
                name.as_str() == FP32 || runs.iter().any(|k| k.bits == b && &k.label() == *name)
            })
            .map(|name| ber_series(name, points))
            .collect();
        plot::line_plot(
            &out.join(format!("ber-{b}bit.svg")),
            &title(b),
            plot::style::SNR_AXIS,
            "BER",
            true,
            &series,
        )?;
    }
    Ok(())
}

/// The accuracy curves: the teacher's epochs, then every student with a history after them
/// (its fine-tuning epochs counted on from the teacher's last).
pub(super) fn accuracy_series<'a>(
    teacher: &[EpochRecord],
    students: impl IntoIterator<Item = (String, &'a [EpochRecord])>,
) -> Vec<Series> {
    let curve = |history: &[EpochRecord], offset: usize| -> Vec<(f64, f64)> {
        history
            .iter()
            .zip(accuracy(history))
            .map(|(r, a)| ((offset + r.epoch) as f64, a))
            .collect()
    };
    let mut series = vec![Series {
        name: FP32.into(),
        points: curve(teacher, 0),
        y_err: None,
    }];
    series.extend(
        students
            .into_iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(name, h)| Series {
                name,
                points: curve(h, teacher.len()),
                y_err: None,
            }),
    );
    series
}

/// The checks of one bit width.
pub(super) fn summarize(bits: u32, points: &[BerPoint]) -> BitsSummary {
    let of =
        |name: &str| -> Vec<&BerPoint> { points.iter().filter(|p| p.detector == name).collect() };
    let f32_points = of(FP32);
    let kaq = of(&RunKey {
        method: QuantMethod::Kaq,
        bits,
    }
    .label());
    let qat = of(&RunKey {
        method: QuantMethod::QatMse,
        bits,
    }
    .label());
    let mut summary = BitsSummary {
        bits,
        kaq_worst_ratio: None,
        kaq_within_5_percent: None,
        kaq_better_than_qat: None,
        kaq_better_than_qat_ci: None,
        snr_points: f32_points.len(),
    };
    if !kaq.is_empty() {
        let worst = kaq
            .iter()
            .zip(&f32_points)
            .map(|(k, f)| (ber_ratio(k.ber, f.ber), k.snr_db))
            .fold(
                (f64::NEG_INFINITY, f64::NAN),
                |a, b| if b.0 > a.0 { b } else { a },
            );
        summary.kaq_worst_ratio = Some(worst);
        summary.kaq_within_5_percent = Some(worst.0 <= 1.05);
    }
    if !kaq.is_empty() && !qat.is_empty() {
        summary.kaq_better_than_qat =
            Some(kaq.iter().zip(&qat).filter(|(k, q)| k.ber < q.ber).count());
        summary.kaq_better_than_qat_ci = Some(
            kaq.iter()
                .zip(&qat)
                .filter(|(k, q)| k.ber_ci_high < q.ber_ci_low)
                .count(),
        );
    }
    summary
}

/// BER_a / BER_f32; 1 when both are zero, infinite when only the reference is.
pub(super) fn ber_ratio(ber: f64, reference: f64) -> f64 {
    if reference > 0.0 {
        ber / reference
    } else if ber > 0.0 {
        f64::INFINITY
    } else {
        1.0
    }
}

/// Histograms of the first and last layer's activations, teacher vs every method at the
/// lowest bit width, on the first `--hist-samples` validation samples.
pub(super) fn histograms(
    args: &CompareArgs,
    plan: &Plan,
    teacher: &UnfoldedNet,
    trained: &[(RunKey, QuantTrained, bool)],
) -> anyhow::Result<()> {
    let Some(lowest) = plan.runs.iter().map(|k| k.bits).min() else {
        return Ok(());
    };
    let tc = &plan.data;
    let set = TrainSet::generate(
        &tc.link,
        args.hist_samples.min(tc.val_samples),
        &tc.snr_db,
        tc.seed,
        SetKind::Validation,
    )?;
    let batch = set.as_batch();
    let k = tc.net.layers;
    let per_layer = batch.batch * batch.n;
    let mut f32_layers = vec![0.0f32; k * per_layer];
    teacher_layers(teacher, &batch, &mut f32_layers)?;
    let students: Vec<(String, Vec<f32>)> = trained
        .iter()
        .filter(|(key, _, _)| key.bits == lowest)
        .map(|(key, run, _)| {
            let mut out = vec![0.0f32; k * per_layer];
            run.net
                .forward_layers(&batch, &mut out)
                .map(|()| (key.label(), out))
        })
        .collect::<Result<_, _>>()?;
    let mut layers = vec![1];
    if k > 1 {
        layers.push(k);
    }
    for layer in layers {
        let slice = |v: &[f32]| -> Vec<f64> {
            v[(layer - 1) * per_layer..layer * per_layer]
                .iter()
                .map(|&a| a as f64)
                .collect()
        };
        let mut samples = vec![Histogram {
            name: FP32.into(),
            values: slice(&f32_layers),
        }];
        samples.extend(students.iter().map(|(name, v)| Histogram {
            name: name.clone(),
            values: slice(v),
        }));
        plot::histogram_plot(
            &plan.out.join(format!("hist-layer{layer}.svg")),
            &format!(
                "Layer {layer} activations, {} samples, f32 vs {lowest}-bit",
                batch.batch
            ),
            "activation value",
            &samples,
            80,
        )?;
    }
    Ok(())
}
