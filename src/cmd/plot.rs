//! `kaq plot --ber FILE.json --out FILE.svg`: redraws the BER plot of a saved `kaq ber` (or
//! `kaq merge`) `--json` file, without simulating anything: the SVG is the one `kaq ber
//! --plot` would have drawn from the same points, in the current plot style.
//!
//! An existing `--out` is replaced only with `--force`. A file that is not a `kaq ber` JSON
//! ends with status 2 naming `--ber`.

use std::path::PathBuf;

use clap::Args;
use kaq_model::ber::{BerConfig, BerPoint};
use serde::Deserialize;

use super::args::{check_outputs, usage_error};

/// Arguments of `kaq plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// A `kaq ber --json` (or `kaq merge --json`) file.
    #[arg(long, value_name = "FILE.json")]
    ber: PathBuf,

    /// The SVG to write.
    #[arg(long, value_name = "FILE.svg")]
    out: PathBuf,

    /// Replace an existing --out file.
    #[arg(long)]
    force: bool,
}

/// The parts of a `kaq ber --json` document the plot needs (other fields are ignored: the
/// file is an output of kaq, read back, not a configuration).
#[derive(Debug, Deserialize)]
struct SavedBer {
    command: String,
    detectors: Vec<String>,
    config: BerConfig,
    points: Vec<BerPoint>,
}

/// Runs `kaq plot`.
pub fn run(args: PlotArgs) -> anyhow::Result<()> {
    check_outputs(&[("--out", Some(args.out.as_path()))], args.force)?;
    let at =
        |e: &dyn std::fmt::Display| usage_error("--ber", format!("{}: {e}", args.ber.display()));
    let text = kaq_files::read_text(&args.ber, kaq_files::INPUT_LIMIT).map_err(|e| at(&e))?;
    let saved: SavedBer = serde_json::from_str(&text).map_err(|e| at(&e))?;
    if saved.command != "ber" {
        return Err(at(&format!(
            "a `kaq ber --json` file is needed, this one is from `kaq {}`",
            saved.command
        )));
    }
    super::ber::ber_plot(&args.out, &saved.config, &saved.detectors, &saved.points)?;
    println!("{} drawn from {}", args.out.display(), args.ber.display());
    Ok(())
}
