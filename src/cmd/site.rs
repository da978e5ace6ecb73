//! `kaq site --out FILE.npy`: a channel dataset from the geometric site stand-in
//! ([`kaq_model::channel::site`], docs/channels.md), readable by `kaq ber/train --channels`.
//!
//! `--site S` fixes the geometry (cluster angles and powers); `--seed` draws the channels, so
//! two files of one site with different seeds are a training set and a held-out test set.
//! The file is complex64 of shape [channels, Nr, Nt], written atomically; an existing file is
//! replaced only with `--force`. The geometry is printed as JSON on standard output.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use kaq_model::channel::site::{Site, SiteConfig};
use ndarray::Array3;
use ndarray_npy::WriteNpyExt;
use num_complex::Complex;

use super::args::{parse_antennas, parse_positive, usage_error};

/// Arguments of `kaq site`.
#[derive(Debug, Args)]
pub struct SiteArgs {
    /// Output `.npy` file.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,

    /// Replace an existing output file.
    #[arg(long)]
    force: bool,

    /// Number of channels.
    #[arg(long, value_parser = parse_positive, default_value_t = 1000)]
    channels: usize,

    /// Users (transmit antennas), 1 to 256.
    #[arg(long, value_parser = parse_antennas, default_value_t = 16)]
    nt: usize,

    /// Base-station array size (receive antennas), 1 to 256.
    #[arg(long, value_parser = parse_antennas, default_value_t = 16)]
    nr: usize,

    /// Site seed: the cluster geometry.
    #[arg(long, default_value_t = 1)]
    site: u64,

    /// Seed of the channel draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Scattering clusters, 1 to 64.
    #[arg(long, default_value_t = 3)]
    clusters: usize,

    /// Rays per cluster and user, 1 to 1024.
    #[arg(long, default_value_t = 20)]
    rays: usize,

    /// rms angular spread of a cluster, degrees.
    #[arg(long, allow_hyphen_values = true, default_value_t = 5.0)]
    spread: f64,

    /// Width of the sector holding clusters and users, degrees.
    #[arg(long, allow_hyphen_values = true, default_value_t = 120.0)]
    sector: f64,

    /// Power decay between successive clusters, dB.
    #[arg(long, allow_hyphen_values = true, default_value_t = 3.0)]
    decay: f64,

    /// Line of sight with this Rician K factor in dB [default: none].
    #[arg(long, value_name = "DB", allow_hyphen_values = true)]
    los_k: Option<f64>,

    /// Antenna spacing in wavelengths.
    #[arg(long, allow_hyphen_values = true, default_value_t = 0.5)]
    spacing: f64,
}

/// Runs `kaq site`.
pub fn run(args: SiteArgs) -> anyhow::Result<()> {
    let config = SiteConfig {
        nr: args.nr,
        nt: args.nt,
        clusters: args.clusters,
        rays: args.rays,
        spread_deg: args.spread,
        sector_deg: args.sector,
        decay_db: args.decay,
        los_k_db: args.los_k,
        spacing: args.spacing,
    };
    let site = Site::new(config, args.site).map_err(|e| {
        let flag = match &e {
            kaq_model::ModelError::InvalidParameter { name, .. } => format!("--{name}"),
            _ => "--site".to_string(),
        };
        usage_error(&flag, e)
    })?;
    let bytes = (args.channels as u64) * (args.nr * args.nt) as u64 * 8;
    if bytes > kaq_model::channel::dataset::MAX_DATASET_BYTES {
        return Err(usage_error(
            "--channels",
            format!(
                "{} channels would take {bytes} bytes, above the dataset limit",
                args.channels
            ),
        ));
    }
    if args.out.exists() && !args.force {
        return Err(usage_error(
            "--out",
            format!(
                "{} already exists; pass --force to replace it",
                args.out.display()
            ),
        ));
    }
    kaq_files::check_writable(&args.out).map_err(|e| usage_error("--out", e))?;
    let h = site
        .channels(args.channels, args.seed)
        .map_err(|e| usage_error("--channels", e))?;
    let h32: Array3<Complex<f32>> = h.mapv(|v| Complex::new(v.re as f32, v.im as f32));
    let mut bytes = Vec::new();
    h32.write_npy(&mut bytes)
        .context("cannot encode the channels")?;
    kaq_files::write_file(&args.out, &bytes)
        .with_context(|| format!("--out {}", args.out.display()))?;
    let meta = serde_json::json!({
        "site": &site,
        "seed": args.seed,
        "channels": args.channels,
        "file": args.out.display().to_string(),
        "shape": [args.channels, args.nr, args.nt],
        "dtype": "complex64",
    });
    println!("{}", serde_json::to_string_pretty(&meta)?);
    Ok(())
}
