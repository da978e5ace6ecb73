//! `kaq export --out DIR`: kaq's generated frames as `.npy` files, to cross-check any detector
//! in Python (docs/channels.md).
//!
//! The frames are exactly those `kaq ber` simulates with the same link flags, `--seed` and
//! `--batch`: for SNR point s, frames come in batches of the BER engine's size drawn from the
//! stream `(s << 32) | b` ([`kaq_model::ber::BerConfig::stream`]), the first `--frames` of
//! each point. Written (complex128 unless stated; F = frames per point × SNR points, frame-major):
//!
//! * `H.npy` [F, Nr, Nt]: the true channel y was drawn through;
//! * `H_est.npy` [F, Nr, Nt]: the channel the detectors see, only with `--csi ls|lmmse`;
//! * `x.npy` [F, Nt]: the transmitted symbols on kaq's unnormalized odd-integer alphabet
//!   (16-QAM: {±1, ±3} per real dimension; BPSK has a zero imaginary part);
//! * `y.npy` [F, Nr]: the received vectors, y = Hx + n;
//! * `noise_var.npy` [F] float64: the complex noise variance σ² (n ~ CN(0, σ²I));
//! * `snr_db.npy` [F] float64: the per-receive-antenna SNR of each frame;
//! * `meta.json`: the link, seed, batch size and these definitions.
//!
//! The directory is written through a staging directory and swapped in whole
//! ([`kaq_files::Staging`]) under the directory's lock ([`kaq_files::DirLock`]: a second export
//! to the same `--out` fails naming the first); an existing `--out` is replaced only with
//! `--force`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use kaq_model::ber::{BerConfig, default_batch_frames};
use kaq_model::link::stream_rng;
use kaq_model::{FrameBatch, LinkConfig, Modulation};
use ndarray::{Array1, Array2, Array3};
use ndarray_npy::WriteNpyExt;
use num_complex::Complex;

use super::args::{parse_antennas, parse_positive, usage_error};
use super::ber::{SnrPoints, parse_snr};

/// Largest number of frames one export writes (all SNR points together).
const MAX_EXPORT_FRAMES: usize = 1 << 24;

/// Arguments of `kaq export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Replace an existing output directory.
    #[arg(long)]
    force: bool,

    /// Frames per SNR point.
    #[arg(long, value_parser = parse_positive, default_value_t = 1000)]
    frames: usize,

    /// Transmit antennas, 1 to 256.
    #[arg(long, value_parser = parse_antennas, default_value_t = 16)]
    nt: usize,

    /// Receive antennas, 1 to 256.
    #[arg(long, value_parser = parse_antennas, default_value_t = 16)]
    nr: usize,

    /// Modulation: bpsk, qpsk, 16qam, 64qam.
    #[arg(long = "mod", value_parser = parse_modulation, default_value = "16qam")]
    modulation: Modulation,

    /// SNR points in dB per receive antenna, as for `kaq ber`.
    #[arg(long, value_parser = parse_snr, default_value = "10", allow_hyphen_values = true)]
    snr: SnrPoints,

    /// Seed, as for `kaq ber`.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Exponential correlation between neighbouring transmit antennas (Kronecker).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    rho_tx: f64,

    /// Exponential correlation between neighbouring receive antennas (Kronecker).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    rho_rx: f64,

    /// Block fading: frames per channel block.
    #[arg(long, value_parser = parse_positive, default_value_t = 1)]
    block: usize,

    /// Frames per batch of the BER engine whose frames to reproduce [default: as `kaq ber`].
    #[arg(long, value_parser = parse_positive)]
    batch: Option<usize>,

    /// Channel state information and dataset channels, as for `kaq ber`.
    #[command(flatten)]
    csi: super::csi::CsiArgs,
}

fn parse_modulation(s: &str) -> Result<Modulation, String> {
    s.parse().map_err(|e: kaq_ir::VocabError| e.to_string())
}

/// The frames `kaq ber` draws at SNR point `point` (its first `frames`), batch after batch.
pub fn ber_frames(
    link: &LinkConfig,
    seed: u64,
    batch: usize,
    point: usize,
    snr_db: f64,
    frames: usize,
) -> anyhow::Result<Vec<FrameBatch>> {
    let mut generator = link.generator()?;
    let mut out = Vec::new();
    let mut left = frames;
    let mut b = 0u64;
    while left > 0 {
        let count = batch.min(left);
        let mut rng = stream_rng(seed, BerConfig::stream(point, b));
        out.push(generator.generate(&vec![snr_db; count], &mut rng));
        left -= count;
        b += 1;
    }
    Ok(out)
}

/// Runs `kaq export`.
pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let link = LinkConfig::new(args.nt, args.nr, args.modulation)?
        .with_correlation(args.rho_tx, args.rho_rx)
        .map_err(|e| usage_error("--rho-tx/--rho-rx", e))?
        .with_block(args.block)
        .map_err(|e| usage_error("--block", e))?;
    let link = args.csi.apply(link)?;
    let batch = args
        .batch
        .unwrap_or_else(|| default_batch_frames(args.block));
    if !batch.is_multiple_of(args.block) {
        return Err(usage_error(
            "--batch",
            format!("{batch} is not a multiple of --block {}", args.block),
        ));
    }
    let total = args
        .frames
        .checked_mul(args.snr.0.len())
        .filter(|&t| t <= MAX_EXPORT_FRAMES)
        .ok_or_else(|| {
            usage_error(
                "--frames",
                format!("at most {MAX_EXPORT_FRAMES} frames over all SNR points"),
            )
        })?;
    // One writer per output directory; an interrupted earlier export is repaired first, so
    // "exists" means a complete output (docs/outputs.md).
    let _lock = kaq_files::DirLock::acquire(&args.out, kaq_files::Wait::No)
        .with_context(|| format!("--out {}", args.out.display()))?;
    kaq_files::Staging::recover(&args.out)
        .with_context(|| format!("--out {}", args.out.display()))?;
    if args.out.exists() && !args.force {
        bail!(
            "--out {} already exists; pass --force to replace it",
            args.out.display()
        );
    }
    let (nt, nr) = (link.nt, link.nr);
    let estimated = !link.csi.is_perfect();
    let mut h = Array3::<Complex<f64>>::zeros((total, nr, nt));
    let mut h_est = Array3::<Complex<f64>>::zeros((if estimated { total } else { 0 }, nr, nt));
    let mut x = Array2::<Complex<f64>>::zeros((total, nt));
    let mut y = Array2::<Complex<f64>>::zeros((total, nr));
    let mut noise_var = Array1::<f64>::zeros(total);
    let mut snr_db = Array1::<f64>::zeros(total);
    let mut row = 0;
    for (point, &snr) in args.snr.0.iter().enumerate() {
        for frames in ber_frames(&link, args.seed, batch, point, snr, args.frames)? {
            for f in 0..frames.frames {
                let (m, n) = (frames.m, frames.n);
                let complex_h =
                    |h: &[f64], i: usize, j: usize| Complex::new(h[i * n + j], h[(i + nr) * n + j]);
                let (true_h, seen) = (frames.true_h(f), frames.h(f));
                for i in 0..nr {
                    for j in 0..nt {
                        h[[row, i, j]] = complex_h(true_h, i, j);
                        if estimated {
                            h_est[[row, i, j]] = complex_h(seen, i, j);
                        }
                    }
                }
                let xs = frames.x(f);
                for s in 0..nt {
                    let im = if n == nt { 0.0 } else { f64::from(xs[s + nt]) };
                    x[[row, s]] = Complex::new(f64::from(xs[s]), im);
                }
                let ys = frames.y(f);
                for i in 0..m / 2 {
                    y[[row, i]] = Complex::new(ys[i], ys[i + nr]);
                }
                noise_var[row] = frames.noise_var[f];
                snr_db[row] = frames.snr_db[f];
                row += 1;
            }
        }
    }
    let staging = kaq_files::Staging::begin(&args.out)
        .with_context(|| format!("--out {}", args.out.display()))?;
    let write = |name: &str, bytes: Vec<u8>| -> anyhow::Result<()> {
        staging.write(std::path::Path::new(name), &bytes)?;
        Ok(())
    };
    fn npy<T: WriteNpyExt>(a: &T) -> anyhow::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        a.write_npy(&mut bytes).context("cannot encode an array")?;
        Ok(bytes)
    }
    write("H.npy", npy(&h)?)?;
    if estimated {
        write("H_est.npy", npy(&h_est)?)?;
    }
    write("x.npy", npy(&x)?)?;
    write("y.npy", npy(&y)?)?;
    write("noise_var.npy", npy(&noise_var)?)?;
    write("snr_db.npy", npy(&snr_db)?)?;
    let meta = serde_json::json!({
        "tool": "kaq",
        "version": env!("CARGO_PKG_VERSION"),
        "command": "export",
        "link": &link,
        "seed": args.seed,
        "batch_frames": batch,
        "frames_per_snr": args.frames,
        "snr_db": &args.snr.0,
        "snr_definition": "per receive antenna: SNR = E|Hx|^2 / E|n|^2 = (Nt/Nr) Es / sigma^2",
        "model": "y = H x + n, n ~ CN(0, noise_var I); x on the odd-integer alphabet (unnormalized)",
        "es": link.modulation.es(),
        "files": {
            "H": "[frames, Nr, Nt] complex128, the true channel",
            "H_est": "[frames, Nr, Nt] complex128, the channel the detectors see (estimated CSI only)",
            "x": "[frames, Nt] complex128",
            "y": "[frames, Nr] complex128",
            "noise_var": "[frames] float64",
            "snr_db": "[frames] float64",
        },
    });
    let mut text = serde_json::to_string_pretty(&meta)?;
    text.push('\n');
    write("meta.json", text.into_bytes())?;
    staging
        .commit()
        .with_context(|| format!("--out {}", args.out.display()))?;
    println!("{total} frames written to {}", args.out.display());
    Ok(())
}
