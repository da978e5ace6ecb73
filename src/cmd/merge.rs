//! `kaq merge`: the shards of one round of a BER sweep put back together
//! ([`kaq_model::ber::shard::merge`], docs/cluster.md).
//!
//! Reads the shard files of one round (`kaq ber --shard I/N --json`) and, from round 1 on, the
//! state that round was run after (`--after`). Refuses, naming the file: a file that is not a
//! shard file or does not match its digest (corrupt), shards of another configuration, round
//! or state, two files holding the same batch, a batch of the round held by no file.
//!
//! Then it applies the stopping rule of one machine to the summed per-batch counts. When every
//! (detector, SNR point) has stopped, it prints the table and writes `--json` and `--plot`
//! through the writer of `kaq ber`: the same bytes as the unsharded run. Otherwise it writes
//! the next round's state to `--state` and exits with status [`MORE_ROUNDS_EXIT`].

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use kaq_model::ber::shard::{Merged, NamedShard, ShardFile, merge};

use crate::plot;

/// Exit status of `kaq merge` when some point needs another round.
pub const MORE_ROUNDS_EXIT: u8 = 3;

/// Arguments of `kaq merge`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 when every point has stopped (the table, --json and \
    --plot are written, equal to the unsharded `kaq ber`); 3 when some point needs another \
    round (its state is written to --state: run the round's shards with `kaq ber --shard I/N \
    --after STATE`, then merge them with `kaq merge --after STATE`); 2 for usage errors; 1 when \
    a file is refused or cannot be read or written."
)]
pub struct MergeArgs {
    /// Shard files of one round (`kaq ber --shard I/N --json SHARD`).
    #[arg(required = true, value_name = "SHARD")]
    shards: Vec<PathBuf>,

    /// The state the round was run after (the previous `kaq merge --state`); needed from
    /// round 1 on.
    #[arg(long, value_name = "STATE")]
    after: Option<PathBuf>,

    /// Write the results as JSON to this file (once every point has stopped).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,

    /// Draw log BER against SNR as SVG to this file (once every point has stopped).
    #[arg(long, value_name = "PATH.svg")]
    plot: Option<PathBuf>,

    /// Write the next round's state to this file when some point needs more batches.
    #[arg(long, value_name = "STATE")]
    state: Option<PathBuf>,
}

/// The sweep needs another round; `main` maps it to [`MORE_ROUNDS_EXIT`].
#[derive(Debug)]
pub struct MoreRounds(pub String);

impl std::fmt::Display for MoreRounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MoreRounds {}

/// Runs `kaq merge`.
pub fn run(args: MergeArgs) -> anyhow::Result<()> {
    for path in [&args.json, &args.plot, &args.state].into_iter().flatten() {
        plot::check_writable(path)?;
    }
    let after = args
        .after
        .as_deref()
        .map(|p| super::shard::load_state(p, None).map(|s| (p.display().to_string(), s)))
        .transpose()?;
    let shards = args
        .shards
        .iter()
        .map(|p| read_shard(p))
        .collect::<anyhow::Result<Vec<NamedShard>>>()?;
    let merged = merge(after.as_ref().map(|(n, s)| (n.as_str(), s)), &shards)?;
    match merged.rows() {
        Some(rows) => super::ber::write_results(
            &merged.sweep.config,
            &merged.sweep.detectors,
            &rows,
            args.json.as_deref(),
            args.plot.as_deref(),
        ),
        None => Err(next_round(&merged, args.state.as_deref())?.into()),
    }
}

fn read_shard(path: &Path) -> anyhow::Result<NamedShard> {
    let name = path.display().to_string();
    let text = super::args::read_input("SHARD", path)?;
    let file = ShardFile::from_json(&text, &name)?;
    Ok(NamedShard { name, file })
}

/// Writes the next state (if asked) and says what is left.
fn next_round(merged: &Merged, state_path: Option<&Path>) -> anyhow::Result<MoreRounds> {
    let state = merged
        .next_state()
        .context("internal: an unfinished sweep has no next round")?;
    let open = merged.points.iter().filter(|p| !p.is_done()).count();
    let what = format!(
        "round {} merged: {open} of {} (detector, SNR point) pairs need more batches; \
         round {} has {} batches",
        merged.rounds - 1,
        merged.points.len(),
        state.next.round,
        state.next.units()
    );
    Ok(match state_path {
        Some(path) => {
            plot::write_atomically(path, state.to_json().as_bytes())?;
            MoreRounds(format!(
                "{what}; its state is in {} (run its shards with --after {0})",
                path.display()
            ))
        }
        None => MoreRounds(format!(
            "{what}; merge again with --state STATE to write its state"
        )),
    })
}
