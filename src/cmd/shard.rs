//! `kaq ber --shard I/N` and `kaq ber --plan`: one round of a BER sweep split across processes
//! or machines ([`kaq_model::ber::shard`], docs/cluster.md).
//!
//! A shard takes the same arguments as the unsharded run plus `--shard I/N --json SHARD`, and
//! `--after STATE` from round 1 on. It refuses a state of another configuration (another
//! configuration hash: other arguments, other detectors, other model/IR file bytes). It writes
//! only counts; `kaq merge` turns the shards of a round into the table, JSON and plot of the
//! unsharded run, or into the state of the next round.
//!
//! `--plan` prints the round a shard would run (every (detector, SNR point) with its batch
//! range and the counts so far) and, with `--json PLAN`, writes it as a `"kind":
//! "kaq-ber-plan"` document. It simulates nothing.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use kaq_model::Detector;
use kaq_model::ber::BerConfig;
use kaq_model::ber::shard::{
    FORMAT_VERSION, PLAN_KIND, RoundPlan, ShardSpec, Sweep, SweepState, config_hash,
};
use serde::Serialize;

use crate::plot;

/// How the round to run is chosen.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sharding<'a> {
    /// The state of the previous round, if any.
    pub after: Option<&'a Path>,
    /// Batches per (detector, point) of round 0.
    pub first_round: u64,
}

/// The sweep of a run: its configuration, detector names and the configuration hash over
/// them and the bytes of the `--model`, `--ir` and `--rtl` files.
pub(crate) fn sweep(
    config: &BerConfig,
    detectors: &[&dyn Detector],
    models: &[PathBuf],
    irs: &[PathBuf],
    rtls: &[PathBuf],
) -> anyhow::Result<Sweep> {
    let names: Vec<String> = detectors.iter().map(|d| d.name()).collect();
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for (flag, paths) in [("--model", models), ("--ir", irs), ("--rtl", rtls)] {
        for path in paths {
            inputs.push(flag.as_bytes().to_vec());
            inputs.push(super::args::read_input(flag, path)?.into_bytes());
        }
    }
    let inputs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
    Ok(Sweep {
        config_hash: config_hash(config, &names, &inputs),
        config: config.clone(),
        detectors: names,
    })
}

/// Reads a state file and checks that it belongs to `sweep`.
pub(crate) fn load_state(path: &Path, sweep: Option<&Sweep>) -> anyhow::Result<SweepState> {
    let name = path.display().to_string();
    let text = super::args::read_input("--after", path)?;
    let state = SweepState::from_json(&text, &name)?;
    if let Some(sweep) = sweep
        && state.config_hash != sweep.config_hash
    {
        anyhow::bail!(
            "{name}: belongs to another configuration (hash {}) than this run's arguments \
             (hash {}); give every round the arguments of the sweep",
            state.config_hash,
            sweep.config_hash
        );
    }
    Ok(state)
}

/// The round to run: round 0, or the next round of the state.
fn round(sweep: &Sweep, sharding: &Sharding) -> anyhow::Result<(RoundPlan, Option<SweepState>)> {
    match sharding.after {
        None => Ok((
            RoundPlan::first(&sweep.config, sweep.detectors.len(), sharding.first_round)?,
            None,
        )),
        Some(path) => {
            let state = load_state(path, Some(sweep))?;
            Ok((state.next.clone(), Some(state)))
        }
    }
}

/// Runs one shard and writes its file.
pub(crate) fn run_shard(
    sweep: &Sweep,
    detectors: &[&dyn Detector],
    spec: ShardSpec,
    sharding: &Sharding,
    json: &Path,
) -> anyhow::Result<()> {
    let (plan, state) = round(sweep, sharding)?;
    let units = plan.shard_units(spec).len();
    let bar = crate::progress::bar("shard", units as u64, "batches");
    bar.set_message(format!("shard {spec} of round {}", plan.round));
    let mut on_progress = |done: usize, _total: usize| bar.set_position(done as u64);
    let start = Instant::now();
    let file = kaq_model::ber::shard::run_shard(
        sweep,
        detectors,
        &plan,
        state.as_ref().map(|s| s.digest.as_str()),
        spec,
        Some(&mut on_progress),
    );
    bar.finish_and_clear();
    let file = file?;
    plot::write_atomically(json, file.to_json().as_bytes())?;
    eprintln!(
        "shard {spec} of round {}: {units} of the round's {} batches in {:.1} s, written to {}",
        plan.round,
        plan.units(),
        start.elapsed().as_secs_f64(),
        json.display()
    );
    Ok(())
}

/// The plan document of `--plan --json`.
#[derive(Debug, Serialize)]
struct PlanDocument<'a> {
    kind: &'static str,
    version: u32,
    config_hash: &'a str,
    /// Digest of the state the round continues.
    after: Option<&'a str>,
    round: u32,
    /// Batches of a point (a batch run through every detector that needs it).
    units: u64,
    /// Batches summed over detectors.
    batch_runs: u64,
    /// Most batches one point can have (`max_frames` cap).
    batches_per_point: u64,
    ranges: Vec<PlanRow>,
}

#[derive(Debug, Serialize)]
struct PlanRow {
    detector: String,
    snr_db: f64,
    start: u64,
    end: u64,
    frames: u64,
    bit_errors_so_far: u64,
    frames_so_far: u64,
}

/// Prints the round a shard would run; writes it to `json` if given.
pub(crate) fn print_plan(
    sweep: &Sweep,
    sharding: &Sharding,
    json: Option<&Path>,
) -> anyhow::Result<()> {
    let (plan, state) = round(sweep, sharding)?;
    let config = &sweep.config;
    let points = config.snr_db.len();
    let rows: Vec<PlanRow> = plan
        .ranges
        .iter()
        .map(|r| {
            let so_far = state
                .as_ref()
                .map(|s| s.points[r.detector * points + r.point].tally)
                .unwrap_or_default();
            PlanRow {
                detector: sweep.detectors[r.detector].clone(),
                snr_db: config.snr_db[r.point],
                start: r.start,
                end: r.end,
                frames: (r.start..r.end).map(|b| config.frames_in_batch(b)).sum(),
                bit_errors_so_far: so_far.bit_errors,
                frames_so_far: so_far.frames,
            }
        })
        .collect();
    print!("{}", plan_table(sweep, &plan, &rows));
    std::io::Write::flush(&mut std::io::stdout()).context("cannot write the plan")?;
    if let Some(path) = json {
        let doc = PlanDocument {
            kind: PLAN_KIND,
            version: FORMAT_VERSION,
            config_hash: &sweep.config_hash,
            after: state.as_ref().map(|s| s.digest.as_str()),
            round: plan.round,
            units: plan.units(),
            batch_runs: plan.batch_runs(),
            batches_per_point: config.batches_per_point(),
            ranges: rows,
        };
        let mut text = serde_json::to_string_pretty(&doc).context("cannot encode the plan")?;
        text.push('\n');
        plot::write_atomically(path, text.as_bytes())?;
    }
    Ok(())
}

fn plan_table(sweep: &Sweep, plan: &RoundPlan, rows: &[PlanRow]) -> String {
    use std::fmt::Write;
    let config = &sweep.config;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# round {} of sweep {}: {} batches of {} frames ({} detector-batches); \
         run `kaq ber --shard I/N` for I = 0..N-1",
        plan.round,
        &sweep.config_hash[..12],
        plan.units(),
        config.batch_frames,
        plan.batch_runs()
    );
    let _ = writeln!(
        out,
        "# a point stops at {} bit errors or {} frames ({} batches)",
        config.min_errors,
        config.max_frames,
        config.batches_per_point()
    );
    let width = rows
        .iter()
        .map(|r| r.detector.len())
        .max()
        .unwrap_or(0)
        .max("detector".len());
    let _ = writeln!(
        out,
        "{:<width$}  {:>7}  {:>15}  {:>11}  {:>11}  {:>11}",
        "detector", "SNR dB", "batches", "frames", "errors yet", "frames yet"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<width$}  {:>7.2}  {:>15}  {:>11}  {:>11}  {:>11}",
            r.detector,
            r.snr_db,
            format!("{}..{}", r.start, r.end),
            r.frames,
            r.bit_errors_so_far,
            r.frames_so_far
        );
    }
    out
}
