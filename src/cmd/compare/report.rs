//! The comparison's `report.md`: the results formatted here, laid out by
//! `templates/compare_report.md`.

use askama::Template;
use kaq_model::Detector;
use kaq_model::ber::{BerConfig, BerPoint};
use kaq_model::unfolded::UnfoldedNet;

use super::options::{CompareArgs, Plan};
use super::results::BitsSummary;

#[derive(Template)]
#[template(path = "compare_report.md", escape = "none")]
struct ReportTemplate {
    net: String,
    nt: usize,
    nr: usize,
    modulation: String,
    setup: Vec<String>,
    names: Vec<String>,
    rows: Vec<(f64, Vec<String>)>,
    checks: Vec<String>,
    plots: String,
}

/// The report of a finished comparison.
pub(super) fn markdown(
    args: &CompareArgs,
    plan: &Plan,
    teacher: &UnfoldedNet,
    source: &str,
    names: &[String],
    points: &[BerPoint],
    summary: &[BitsSummary],
) -> String {
    let tc = &plan.teacher_config;
    let mut setup = vec![format!(
        "f32 teacher: {source}; {} epochs, {} samples, batch {}, lr {} halved every {} epochs, \
         training SNR {:?} dB, seed {}",
        tc.epochs, tc.samples, tc.batch, tc.lr, tc.lr_step, tc.snr_db, tc.seed
    )];
    if let Some(q) = plan
        .runs
        .first()
        .map(|k| args.quant_config(&plan.data, k.bits))
    {
        setup.push(format!(
            "quantized runs (every method and width on the same data): {} epochs, {} samples, \
             batch {}, lr {} halved every {} epochs, {} calibration samples, training SNR {:?} dB, \
             seed {}; KAQ loss MSE + {} Σ_k MMD², {} kernels",
            q.train.epochs,
            q.train.samples,
            q.train.batch,
            q.train.lr,
            q.train.lr_step,
            q.calibration_samples,
            q.train.snr_db,
            q.train.seed,
            q.kaq.epsilon,
            q.kaq.kernel
        ));
    }
    setup.push(format!(
        "BER: one run, every detector on the same frames; a point stops at {} bit errors or \
         {} frames; seed {}; SNR per receive antenna; 95 % Wilson intervals",
        plan.ber.min_errors, plan.ber.max_frames, plan.ber.seed
    ));
    render(
        teacher.name(),
        &plan.ber,
        setup,
        names,
        points,
        checks(summary),
        summary
            .iter()
            .map(|s| format!("ber-{}bit.svg, ", s.bits))
            .collect::<String>()
            + "accuracy.svg, hist-layer*.svg",
    )
}

/// The KAQ checks of every bit width.
fn checks(summary: &[BitsSummary]) -> Vec<String> {
    let mut checks = Vec::new();
    for s in summary {
        checks.push(match (s.kaq_within_5_percent, s.kaq_worst_ratio) {
            (Some(ok), Some((ratio, snr))) => format!(
                "{}-bit KAQ within 5 % of f32 at every SNR: {} (worst ratio {ratio:.3} at {snr} dB)",
                s.bits,
                if ok { "yes" } else { "no" }
            ),
            _ => format!("{}-bit KAQ within 5 % of f32: not run", s.bits),
        });
        checks.push(match (s.kaq_better_than_qat, s.kaq_better_than_qat_ci) {
            (Some(n), Some(m)) => format!(
                "{}-bit KAQ better than QAT-MSE at {n} of {} SNR points (CI-separated at {m})",
                s.bits, s.snr_points
            ),
            _ => format!(
                "{}-bit KAQ vs QAT-MSE: not run (needs both methods)",
                s.bits
            ),
        });
    }
    checks
}

/// `report.md` from its parts: the setup lines, the BER table of `names`, the checks and the
/// list of plots.
pub(super) fn render(
    net: String,
    ber: &BerConfig,
    setup: Vec<String>,
    names: &[String],
    points: &[BerPoint],
    checks: Vec<String>,
    plots: String,
) -> String {
    let link = &ber.link;
    let rows = ber
        .snr_db
        .iter()
        .map(|&snr| {
            let cells = names
                .iter()
                .map(|name| {
                    points
                        .iter()
                        .find(|p| &p.detector == name && p.snr_db == snr)
                        .map_or("–".to_string(), |p| {
                            format!(
                                "{:.3e} [{:.2e}, {:.2e}]",
                                p.ber, p.ber_ci_low, p.ber_ci_high
                            )
                        })
                })
                .collect();
            (snr, cells)
        })
        .collect();
    ReportTemplate {
        net,
        nt: link.nt,
        nr: link.nr,
        modulation: link.modulation.to_string(),
        setup,
        names: names.to_vec(),
        rows,
        checks,
        plots,
    }
    .render()
    .expect("the report template renders plain strings")
        + "\n"
}
