//! `kaq ber`: Monte-Carlo BER of detectors over an SNR range.
//!
//! Runs [`kaq_model::ber::simulate`] (same frames for every detector, results independent of
//! the thread count) and prints one table row per detector and SNR point: BER with its 95 %
//! Wilson interval, SER, bit errors, bits and frames. SNR is per receive antenna,
//! SNR = E‖Hx‖²/E‖n‖² = (Nt/Nr)·Es/σ² (docs/system-model.md).
//!
//! Defaults (`kaq ber` alone): detectors `zf,mmse,kbest:32`, 16×16 16-QAM i.i.d. Rayleigh,
//! SNR `0:25:5` dB, a point stops at 1000 bit errors or 200 000 frames, batches of 256 frames,
//! seed 1, all cores. That run takes about half a minute on two cores, almost all of it K-best
//! at 20 and 25 dB.
//!
//! Every argument is checked while parsing, so bad input ends with exit status 2 and a message
//! naming the argument, and so does a detector of `--detector` refusing the link (exhaustive
//! ML on a large link, ZF with Nt > Nr) or a `--model` of another link; run-time failures (an
//! unwritable output) end with status 1. Output paths are checked before the simulation
//! starts: an existing `--json` or `--plot` file is replaced only with `--force` (a shard's or
//! a plan's file always is), and two outputs may not share a path. Files are written
//! atomically.
//!
//! `--json PATH` writes one object:
//! ```text
//! { "tool": "kaq", "version": "0.1.0", "command": "ber",
//!   "snr_definition": "...", "confidence": 0.95, "interval": "wilson",
//!   "detectors": ["zf", "mmse", "kbest:32"],
//!   "config": { "link": {"nt", "nr", "modulation", "channel": {"kind", ...}},
//!               "snr_db": [...], "min_errors", "max_frames", "batch_frames", "seed" },
//!   "points": [ { "detector", "snr_db", "ber", "ber_ci_low", "ber_ci_high", "ser",
//!                 "bit_errors", "bits", "symbol_errors", "symbols", "frames",
//!                 "stop": "min_errors" | "max_frames" }, ... ] }
//! ```
//! `points` holds one row per detector and SNR point, detector-major. The file depends only on
//! the arguments that change results (no timings, no thread count), so equal runs give equal
//! bytes, and `kaq merge` of a sharded run writes the very same bytes.
//!
//! `--shard I/N --json SHARD` runs shard I (from 0) of N of one round of a sweep split across
//! processes or machines, `--plan` prints the next round, `--after STATE` continues the state
//! that `kaq merge --state` wrote (docs/cluster.md, [`super::shard`]).
//!
//! `--block T` simulates block fading: one channel per T consecutive frames (default 1, a
//! channel per frame); batches then hold whole blocks.
//!
//! `--csi perfect|ls|lmmse --pilots L --pilot-power P` gives the detectors the true channel or
//! an LS / LMMSE estimate from orthogonal pilots ([`super::csi`], docs/channels.md).
//!
//! `--model PATH` also takes a Gram-domain model file (`kaq train --arch ep|oamp|cg`,
//! `"format": "kaq-gram-model"`), named like `ep-k10` or `cg-k6-l4`.
//!
//! `--model PATH` (repeatable) adds a trained unfolded net from a `kaq train` model file as one
//! more detector, named by its architecture (for example `pgd-soft-k5`, with the file name
//! appended when two nets would share a name). A quantized model file (`kaq train --quant`,
//! `"format": "kaq-qmodel"`) adds its fake-quant net, named like `pgd-soft-k5-kaq-4b`. Its antennas and modulation must be those of the
//! run; the channel model may differ (a Rayleigh-trained net on a Kronecker channel is a
//! robustness study).
//!
//! `--ir PATH` (repeatable) adds the integer golden model of an IR file (`kaq lower`,
//! [`kaq_ir::Interpreter`]) as one more detector, named like `pgd-soft-k5-kaq-4b-int`.
//! Given with `--model` for the quantized file it was lowered from, both see the same frames,
//! so their rows compare the integer model with the fake-quant net directly. Its antennas and
//! modulation must be those of the run; a mismatch ends with status 2 naming `--ir`. An IR
//! version 2 document (`kaq lower --ptq-bits`, the Gram-domain cg net) runs on
//! [`kaq_ir::gram::GramInterpreter`], named like `cg-k6-l4-ptq-8b-int`; it computes its
//! per-channel-block stage once per block, so it runs on block fading (`--block`) as is.
//!
//! `--rtl PATH` (repeatable) builds the RTL generated from an IR file with Verilator (8 MAC
//! lanes, or the largest divisor of N below 8) and runs it as one more detector, named like
//! `pgd-soft-k5-kaq-4b-rtl`: BER through the hardware itself. Same link rules as `--ir`. An
//! IR v2 document builds the cg engine at the flow's lane count (8, `CG_DEFAULT_LANES`; the
//! engine takes any P from 1 to 32) as `kaq_sim::cosim::GramRtlDetector`: the frames
//! enter in channel blocks as for `--ir`, one block beat and T vector beats each. Its outputs
//! are compared with the golden model (a mismatch fails the run); `--rtl-taps` builds it with
//! its tap port and checks every stage's taps too (slower; a tap mismatch fails the run).
//!
//! `--plot PATH.svg` draws log BER against SNR, one curve per detector, with the Wilson
//! intervals as error bars. A point with zero bit errors has no place on a log axis: it is left
//! out of the curve and shown only by its error bar, from the bottom of the axis up to the
//! interval's upper end.

use super::args::{parse_antennas, parse_snr_db, parse_threads, usage_error};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use kaq_ir::Interpreter;
use kaq_model::ber::shard::{DEFAULT_FIRST_ROUND_BATCHES, ShardSpec};
use kaq_model::ber::{BerConfig, BerPoint, BerProgress, default_batch_frames, simulate};
use kaq_model::detect::DetectorSpec;
use kaq_model::gram::file::{GRAM_FORMAT, GramModelFile};
use kaq_model::link::stream_rng;
use kaq_model::quant::file::{QFORMAT, QuantModelFile};
use kaq_model::train::ModelFile;
use kaq_model::{ChannelModel, Detector, LinkConfig, Modulation};
use serde::Serialize;

use crate::plot::{self, Series};

/// Largest number of SNR points one run accepts.
const MAX_SNR_POINTS: usize = 10_000;

/// Largest batch accepted by `--batch`.
const MAX_BATCH: usize = 1 << 20;

/// Arguments of `kaq ber`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("sharding").args(["shard", "plan"])))]
pub struct BerArgs {
    /// Detectors to compare, comma separated: zf, mmse, kbest:K (MMSE-sorted QR), kbest-zf:K,
    /// kbest-reg:K, ml (duplicates are dropped).
    #[arg(long, value_delimiter = ',', value_parser = parse_detector, default_value = "zf,mmse,kbest:32")]
    detector: Vec<DetectorSpec>,

    /// A trained net to compare (a `kaq train` model file); repeat for several.
    #[arg(long, value_name = "PATH")]
    model: Vec<PathBuf>,

    /// An IR file (`kaq lower`) whose integer golden model to compare; repeat for several.
    #[arg(long, value_name = "PATH")]
    ir: Vec<PathBuf>,

    /// An IR file whose generated RTL to run as a detector, built with Verilator (`kaq cosim`);
    /// repeat for several. Its decisions equal the golden model's (`--ir`) bit for bit.
    #[arg(long, value_name = "PATH")]
    rtl: Vec<PathBuf>,

    /// With --rtl of an IR v2 (cg) document: build the design with its tap port and check
    /// every stage's taps against the golden model as well (a tap mismatch fails the run);
    /// slower. Without it only the outputs are compared, on the flow's RTL exactly.
    #[arg(long, requires = "rtl")]
    rtl_taps: bool,

    /// Transmit antennas (streams), 1 to 256.
    #[arg(long, value_parser = parse_antennas, default_value_t = 16)]
    nt: usize,

    /// Receive antennas, 1 to 256.
    #[arg(long, value_parser = parse_antennas, default_value_t = 16)]
    nr: usize,

    /// Modulation: bpsk, qpsk, 16qam, 64qam.
    #[arg(long = "mod", value_parser = parse_modulation, default_value = "16qam")]
    modulation: Modulation,

    /// SNR points in dB per receive antenna: `start:stop:step` (stop included when on the grid)
    /// or a comma list such as `0,3.5,10`.
    #[arg(long, value_parser = parse_snr, default_value = "0:25:5", allow_hyphen_values = true)]
    snr: SnrPoints,

    /// A point stops once a detector has this many bit errors.
    #[arg(long, value_parser = parse_positive_u64, default_value = "1000")]
    min_errors: u64,

    /// A point never simulates more than this many frames (exact: the last batch is shortened).
    #[arg(long, value_parser = parse_positive_u64, default_value = "200000")]
    max_frames: u64,

    /// Seed of all randomness; equal seeds give equal results on any thread count.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Exponential correlation between neighbouring transmit antennas (Kronecker), |ρ| < 1.
    #[arg(long, value_parser = parse_rho, default_value_t = 0.0, allow_hyphen_values = true)]
    rho_tx: f64,

    /// Exponential correlation between neighbouring receive antennas (Kronecker), |ρ| < 1.
    #[arg(long, value_parser = parse_rho, default_value_t = 0.0, allow_hyphen_values = true)]
    rho_rx: f64,

    /// Worker threads (default: all cores). Does not change the results.
    #[arg(long, value_parser = parse_threads)]
    threads: Option<usize>,

    /// Frames per batch, the unit of randomness and of the stopping rule (changing it changes
    /// which frames are drawn); a multiple of --block [default: 256 rounded up to a multiple
    /// of --block].
    #[arg(long, value_parser = parse_batch)]
    batch: Option<usize>,

    /// Block fading: frames per channel block T (one channel serves T consecutive frames).
    #[arg(long, value_parser = parse_block, default_value_t = 1)]
    block: usize,

    /// Write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,

    /// Draw log BER against SNR as SVG to this file.
    #[arg(long, value_name = "PATH.svg")]
    plot: Option<PathBuf>,

    /// Replace existing --json and --plot files (a shard's or a plan's file is always
    /// replaced).
    #[arg(long)]
    force: bool,

    /// Run shard I of N (I from 0) of the next round of a sweep split across processes or
    /// machines and write its counts to --json; `kaq merge` puts the shards together
    /// (docs/cluster.md). Every shard takes the same arguments.
    #[arg(long, value_name = "I/N", value_parser = parse_shard, requires = "json", conflicts_with = "plot")]
    shard: Option<ShardSpec>,

    /// Print the next round of a sharded sweep (with --json, write it too); simulates nothing.
    #[arg(long, conflicts_with = "plot")]
    plan: bool,

    /// The state written by the previous round's `kaq merge --state`: run or plan the round
    /// after it (without it, round 0).
    #[arg(long, value_name = "STATE", requires = "sharding")]
    after: Option<PathBuf>,

    /// Batches per detector and SNR point in round 0 of a sharded sweep; later rounds size
    /// themselves from the error rates seen.
    #[arg(long, value_name = "BATCHES", value_parser = parse_positive_u64, default_value_t = DEFAULT_FIRST_ROUND_BATCHES)]
    first_round: u64,

    /// Channel state information of the detectors (docs/channels.md).
    #[command(flatten)]
    csi: super::csi::CsiArgs,
}

/// A parsed `--snr` value: finite SNR points in dB.
#[derive(Debug, Clone, PartialEq)]
pub struct SnrPoints(pub Vec<f64>);

fn parse_detector(s: &str) -> Result<DetectorSpec, String> {
    s.parse().map_err(|e: kaq_model::ModelError| e.to_string())
}

fn parse_modulation(s: &str) -> Result<Modulation, String> {
    s.parse().map_err(|e: kaq_ir::VocabError| e.to_string())
}

fn parse_shard(s: &str) -> Result<ShardSpec, String> {
    s.parse()
}

fn parse_positive_u64(s: &str) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    if n == 0 {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

fn parse_block(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    if n == 0 || n > kaq_model::link::MAX_BLOCK {
        return Err(format!(
            "frames per block must be between 1 and {}, got {n}",
            kaq_model::link::MAX_BLOCK
        ));
    }
    Ok(n)
}

fn parse_batch(s: &str) -> Result<usize, String> {
    let n = parse_positive_u64(s)?;
    if n > MAX_BATCH as u64 {
        return Err(format!("at most {MAX_BATCH} frames per batch, got {n}"));
    }
    Ok(n as usize)
}

fn parse_finite(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !v.is_finite() {
        return Err(format!("`{s}` is not a finite number"));
    }
    Ok(v)
}

fn parse_rho(s: &str) -> Result<f64, String> {
    let v = parse_finite(s)?;
    if v.abs() >= 1.0 {
        return Err(format!("correlation must satisfy |rho| < 1, got {v}"));
    }
    Ok(v)
}

/// Parses `start:stop:step` or a comma list of SNR values in dB, each finite and within
/// ±100 dB (as every SNR flag of kaq, [`parse_snr_db`]).
pub(crate) fn parse_snr(s: &str) -> Result<SnrPoints, String> {
    let points = if s.contains(':') {
        let parts: Vec<&str> = s.split(':').collect();
        let [start, stop, step] = parts[..] else {
            return Err(format!("`{s}`: a range is start:stop:step, e.g. 0:25:5"));
        };
        let (start, stop, step) = (
            parse_snr_db(start)?,
            parse_snr_db(stop)?,
            parse_finite(step)?,
        );
        if step <= 0.0 {
            return Err(format!("`{s}`: step must be positive, got {step}"));
        }
        if start > stop {
            return Err(format!("`{s}`: start {start} is above stop {stop}"));
        }
        // The tolerance keeps `stop` when rounding leaves it a hair beyond the last step.
        let steps = ((stop - start) / step + 1e-9).floor();
        if steps >= MAX_SNR_POINTS as f64 {
            return Err(format!("`{s}`: more than {MAX_SNR_POINTS} SNR points"));
        }
        (0..=steps as usize)
            .map(|i| {
                let v = start + i as f64 * step;
                // Trim binary noise such as 0.30000000000000004 → 0.3.
                (v * 1e9).round() / 1e9
            })
            .collect()
    } else {
        let points = s
            .split(',')
            .map(parse_snr_db)
            .collect::<Result<Vec<f64>, String>>()?;
        if points.len() > MAX_SNR_POINTS {
            return Err(format!("more than {MAX_SNR_POINTS} SNR points"));
        }
        points
    };
    Ok(SnrPoints(points))
}

/// The JSON document written by `--json`.
#[derive(Debug, Serialize)]
struct BerReport<'a> {
    tool: &'static str,
    version: &'static str,
    command: &'static str,
    snr_definition: &'static str,
    confidence: f64,
    interval: &'static str,
    detectors: Vec<String>,
    config: &'a BerConfig,
    points: &'a [BerPoint],
}

/// Runs `kaq ber`.
pub fn run(args: BerArgs) -> anyhow::Result<()> {
    let link = LinkConfig::new(args.nt, args.nr, args.modulation)?
        .with_correlation(args.rho_tx, args.rho_rx)?
        .with_block(args.block)?;
    let link = args.csi.apply(link)?;
    let batch = args
        .batch
        .unwrap_or_else(|| default_batch_frames(args.block));
    if !batch.is_multiple_of(args.block) {
        anyhow::bail!(
            "--batch {batch} is not a multiple of --block {}: every batch must hold whole channel blocks",
            args.block
        );
    }
    // A shard's or a plan's file is rewritten by a retried job (docs/cluster.md): only the
    // results of an unsharded run need --force to replace a file.
    let sharded = args.shard.is_some() || args.plan;
    super::args::check_outputs(
        &[
            ("--json", args.json.as_deref()),
            ("--plot", args.plot.as_deref()),
        ],
        args.force || sharded,
    )?;
    let mut specs: Vec<DetectorSpec> = Vec::new();
    for spec in args.detector {
        if !specs.contains(&spec) {
            specs.push(spec);
        }
    }
    let mut detectors: Vec<Box<dyn Detector>> = specs.iter().map(DetectorSpec::build).collect();
    for path in &args.model {
        let net = load_net(path, &link)?;
        let mut name = net.name();
        if detectors.iter().any(|d| d.name() == name) {
            name = format!("{name} ({})", path.display());
        }
        detectors.push(Box::new(NamedDetector { name, inner: net }));
    }
    for path in &args.ir {
        let golden = load_ir(path, &link)?;
        let mut name = golden.name();
        if detectors.iter().any(|d| d.name() == name) {
            name = format!("{name} ({})", path.display());
        }
        detectors.push(Box::new(NamedDetector {
            name,
            inner: golden,
        }));
    }
    for path in &args.rtl {
        let rtl = load_rtl(path, &link, args.rtl_taps)?;
        let mut name = rtl.name();
        if detectors.iter().any(|d| d.name() == name) {
            name = format!("{name} ({})", path.display());
        }
        detectors.push(Box::new(NamedDetector { name, inner: rtl }));
    }
    let detector_refs: Vec<&dyn Detector> = detectors.iter().map(AsRef::as_ref).collect();
    let config = BerConfig {
        link,
        snr_db: args.snr.0,
        min_errors: args.min_errors,
        max_frames: args.max_frames,
        batch_frames: batch,
        seed: args.seed,
        threads: args.threads,
    };
    config.validate()?;
    preflight(&config, &detector_refs, specs.len())?;
    if args.shard.is_some() || args.plan {
        let sweep = super::shard::sweep(&config, &detector_refs, &args.model, &args.ir, &args.rtl)?;
        let sharding = super::shard::Sharding {
            after: args.after.as_deref(),
            first_round: args.first_round,
        };
        return match args.shard {
            Some(spec) => {
                let json = args.json.as_deref().context("--shard needs --json")?;
                super::shard::run_shard(&sweep, &detector_refs, spec, &sharding, json)
            }
            None => super::shard::print_plan(&sweep, &sharding, args.json.as_deref()),
        };
    }

    let bar = crate::progress::percent_bar("ber", config.snr_db.len() as u64 * 1000);
    let mut on_progress = |p: &BerProgress| {
        let done = (p.snr_index as f64 + p.point_fraction()) * 1000.0;
        bar.set_position(done as u64);
        let per_detector: Vec<String> = p
            .detectors
            .iter()
            .zip(p.tallies)
            .zip(p.done)
            .map(|((name, t), &done)| {
                let mark = if done { " done" } else { "" };
                format!("{name} {} err/{} fr{mark}", t.bit_errors, t.frames)
            })
            .collect();
        bar.set_message(format!(
            "SNR {} dB ({}/{}) | {}",
            p.snr_db,
            p.snr_index + 1,
            p.snr_points,
            per_detector.join(" | ")
        ));
    };
    let start = Instant::now();
    let rows = simulate(&config, &detector_refs, Some(&mut on_progress));
    bar.finish_and_clear();
    let rows = rows?;
    let elapsed = start.elapsed();

    let names: Vec<String> = detector_refs.iter().map(|d| d.name()).collect();
    write_results(
        &config,
        &names,
        &rows,
        args.json.as_deref(),
        args.plot.as_deref(),
    )?;
    eprintln!("simulated in {:.1} s", elapsed.as_secs_f64());
    Ok(())
}

/// Prints the table and writes `--json` and `--plot` of finished rows: the one writer of
/// `kaq ber` and `kaq merge`, so a merged sweep gives the same bytes as one process.
pub(crate) fn write_results(
    config: &BerConfig,
    names: &[String],
    rows: &[BerPoint],
    json: Option<&Path>,
    plot: Option<&Path>,
) -> anyhow::Result<()> {
    print!("{}", table(config, rows));
    std::io::Write::flush(&mut std::io::stdout()).context("cannot write the table")?;

    if let Some(path) = json {
        let report = BerReport {
            tool: "kaq",
            version: env!("CARGO_PKG_VERSION"),
            command: "ber",
            snr_definition: "per receive antenna: SNR = E|Hx|^2 / E|n|^2 = (Nt/Nr) Es / sigma^2",
            confidence: 0.95,
            interval: "wilson",
            detectors: names.to_vec(),
            config,
            points: rows,
        };
        let mut text =
            serde_json::to_string_pretty(&report).context("cannot encode the results")?;
        text.push('\n');
        plot::write_atomically(path, text.as_bytes())?;
    }
    if let Some(path) = plot {
        ber_plot(path, config, names, rows)?;
    }
    Ok(())
}

/// The BER plot of `kaq ber --plot` (and `kaq plot --ber`): one curve per detector with its
/// Wilson intervals.
pub(crate) fn ber_plot(
    path: &Path,
    config: &BerConfig,
    names: &[String],
    rows: &[BerPoint],
) -> anyhow::Result<()> {
    let series: Vec<Series> = names
        .iter()
        .map(|name| {
            let mine = rows.iter().filter(|r| &r.detector == name);
            Series {
                name: name.clone(),
                points: mine.clone().map(|r| (r.snr_db, r.ber)).collect(),
                y_err: Some(mine.map(|r| (r.ber_ci_low, r.ber_ci_high)).collect()),
            }
        })
        .collect();
    let title = format!("BER, {}", link_label(&config.link));
    plot::line_plot(path, &title, plot::style::SNR_AXIS, "BER", true, &series)
}

/// Loads the net of a model file and checks that it detects the run's link.
/// A quantized-model file (`"format": "kaq-qmodel"`) gives its fake-quant net.
fn load_net(path: &Path, link: &LinkConfig) -> anyhow::Result<Box<dyn Detector>> {
    let context = || format!("--model {}", path.display());
    let text = super::args::read_input("--model", path)?;
    // A file that is not a valid model file is a usage error of --model (its message names
    // the file).
    let refused = |e: kaq_model::train::TrainError| usage_error("--model", e);
    #[derive(serde::Deserialize)]
    struct Tag {
        format: Option<String>,
    }
    let format = serde_json::from_str::<Tag>(&text)
        .ok()
        .and_then(|t| t.format);
    let quantized = format.as_deref() == Some(QFORMAT);
    let gram = format.as_deref() == Some(GRAM_FORMAT);
    let (net, trained): (Box<dyn Detector>, LinkConfig) = if gram {
        let file = GramModelFile::from_json(&text, path).map_err(refused)?;
        let trained = file.net.link().clone();
        (Box::new(file.net), trained)
    } else if quantized {
        let file = QuantModelFile::from_json(&text, path).map_err(refused)?;
        let net = file
            .quant_net()
            .map_err(anyhow::Error::msg)
            .with_context(context)?;
        let trained = net.link().clone();
        (Box::new(net), trained)
    } else {
        let file = ModelFile::from_json(&text, path).map_err(refused)?;
        let trained = file.net.link().clone();
        (Box::new(file.net), trained)
    };
    if (trained.nt, trained.nr, trained.modulation) != (link.nt, link.nr, link.modulation) {
        return Err(usage_error(
            "--model",
            format!(
                "{}: the net was trained for {}x{} {}, this run simulates {}x{} {} \
                 (set --nt, --nr and --mod to match)",
                path.display(),
                trained.nt,
                trained.nr,
                trained.modulation,
                link.nt,
                link.nr,
                link.modulation
            ),
        ));
    }
    Ok(net)
}

/// Loads an IR file of either version (v1: PGD/ADMM, v2: the Gram-domain cg net) as its
/// integer golden model and checks that it detects the run's link (a mismatch is a usage
/// error, status 2).
fn load_ir(path: &Path, link: &LinkConfig) -> anyhow::Result<Box<dyn Detector>> {
    use kaq_ir::gram::{AnyIr, GramInterpreter};
    let context = || format!("--ir {}", path.display());
    match AnyIr::load(path).map_err(|e| ir_usage_error("--ir", path, e))? {
        AnyIr::Ep(ir) => {
            check_ir_link("--ir", path, (ir.nt, ir.nr, ir.modulation), link)?;
            Ok(Box::new(
                kaq_ir::gram::ep::EpInterpreter::new(*ir).with_context(context)?,
            ))
        }
        AnyIr::V1(ir) => {
            check_ir_link("--ir", path, (ir.nt, ir.nr, ir.modulation), link)?;
            Ok(Box::new(Interpreter::new(ir).with_context(context)?))
        }
        AnyIr::V2(ir) => {
            check_ir_link("--ir", path, (ir.nt, ir.nr, ir.modulation), link)?;
            Ok(Box::new(GramInterpreter::new(ir).with_context(context)?))
        }
        AnyIr::Oamp(ir) => {
            check_ir_link("--ir", path, (ir.nt, ir.nr, ir.modulation), link)?;
            let golden = kaq_ir::gram::oamp::OampInterpreter::new(*ir).with_context(context)?;
            Ok(Box::new(golden))
        }
    }
}

/// An IR that cannot be read or is invalid, as a usage error naming `flag`.
fn ir_usage_error(flag: &str, path: &Path, e: kaq_ir::IrError) -> anyhow::Error {
    match e {
        kaq_ir::IrError::Parse { .. } | kaq_ir::IrError::Read(_) => usage_error(flag, e),
        _ => usage_error(flag, format!("{}: {e}", path.display())),
    }
}

/// An IR of another link than the run's ends with status 2 naming `flag`.
fn check_ir_link(
    flag: &str,
    path: &Path,
    (nt, nr, modulation): (usize, usize, kaq_ir::Modulation),
    link: &LinkConfig,
) -> anyhow::Result<()> {
    if (nt, nr, modulation) != (link.nt, link.nr, link.modulation) {
        return Err(usage_error(
            flag,
            format!(
                "{}: the IR is for {nt}x{nr} {modulation}, this run simulates {}x{} {} \
                 (set --nt, --nr and --mod to match)",
                path.display(),
                link.nt,
                link.nr,
                link.modulation
            ),
        ));
    }
    Ok(())
}

/// The RTL of an IR file built with Verilator, as a detector (see the module docs).
/// `taps`: an IR v2 design is built with its tap port and its taps are checked too.
fn load_rtl(path: &Path, link: &LinkConfig, taps: bool) -> anyhow::Result<Box<dyn Detector>> {
    use kaq_ir::gram::AnyIr;
    use kaq_sim::cosim::{GramRtlDetector, Rtl, RtlDetector, gram::GramRtl};
    let ir = match AnyIr::load(path).map_err(|e| ir_usage_error("--rtl", path, e))? {
        AnyIr::Ep(_) => {
            return Err(usage_error(
                "--rtl",
                format!("{}: family ep has no RTL yet", path.display()),
            ));
        }
        AnyIr::V1(ir) => ir,
        AnyIr::V2(ir) => {
            check_ir_link("--rtl", path, (ir.nt, ir.nr, ir.modulation), link)?;
            let lanes = super::flow::CG_DEFAULT_LANES;
            eprintln!(
                "building the RTL of {} with Verilator (the IR v2 engine, {lanes} lanes{})…",
                ir.name,
                if taps { ", with its tap port" } else { "" }
            );
            let rtl = GramRtl::build_with(&ir, lanes, false, taps)
                .with_context(|| format!("--rtl {}", path.display()))?;
            return Ok(Box::new(GramRtlDetector::new(rtl, 1)));
        }
        AnyIr::Oamp(_) => {
            return Err(usage_error(
                "--rtl",
                format!(
                    "{}: family oamp has no RTL detector yet (kaq cosim runs its RTL)",
                    path.display()
                ),
            ));
        }
    };
    check_ir_link("--rtl", path, (ir.nt, ir.nr, ir.modulation), link)?;
    let lanes = kaq_codegen::default_lanes(ir.n);
    let options = kaq_codegen::Options {
        lanes,
        ..kaq_codegen::Options::default()
    };
    eprintln!(
        "building the RTL of {} with Verilator ({lanes} lanes)…",
        ir.name
    );
    let rtl = Rtl::generate_and_build(&ir, &options, false)
        .with_context(|| format!("--rtl {}", path.display()))?;
    Ok(Box::new(RtlDetector::new(rtl, 1)))
}

/// A detector under another name (to tell apart two nets of the same architecture).
struct NamedDetector {
    name: String,
    inner: Box<dyn Detector>,
}

impl Detector for NamedDetector {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn detect(
        &self,
        batch: &kaq_model::FrameBatch,
        decisions: &mut [i32],
    ) -> Result<(), kaq_model::ModelError> {
        self.inner.detect(batch, decisions)
    }
}

/// Runs every detector on one frame of the link so that a detector unable to handle it (for
/// example exhaustive ML on a large system, ZF with more streams than receive antennas) fails
/// before the long run starts. The first `builtin` detectors are those of `--detector`: their
/// refusal is a usage error naming that flag.
fn preflight(
    config: &BerConfig,
    detectors: &[&dyn Detector],
    builtin: usize,
) -> anyhow::Result<()> {
    let mut generator = config.link.generator()?;
    let batch = generator.generate(&config.snr_db[..1], &mut stream_rng(config.seed, u64::MAX));
    let mut decisions = vec![0; batch.n];
    for (i, d) in detectors.iter().enumerate() {
        if let Err(e) = d.detect(&batch, &mut decisions) {
            let message = format!("detector {} cannot run on this link: {e}", d.name());
            return Err(if i < builtin {
                usage_error("--detector", message)
            } else {
                anyhow::anyhow!(message)
            });
        }
    }
    Ok(())
}

/// `16×16 16-QAM Rayleigh` or `... Kronecker rho_tx=…, rho_rx=…` (the link named as
/// [`plot::style::link_name`] names it everywhere).
pub(crate) fn link_label(link: &LinkConfig) -> String {
    let channel = match link.channel {
        ChannelModel::Rayleigh => "Rayleigh".to_string(),
        ChannelModel::Kronecker { rho_tx, rho_rx } => {
            format!("Kronecker rho_tx={rho_tx}, rho_rx={rho_rx}")
        }
    };
    let channel = match &link.dataset {
        Some(d) => format!("dataset {} ({} channels, {:?})", d.file, d.channels, d.norm),
        None => channel,
    };
    let block = if link.block > 1 {
        format!(", block fading T={}", link.block)
    } else {
        String::new()
    };
    let csi = if link.csi.is_perfect() {
        String::new()
    } else {
        format!(", {}", link.csi)
    };
    format!(
        "{} {channel}{block}{csi}",
        plot::style::link_name(link.nt, link.nr, link.modulation)
    )
}

/// The result table printed on stdout.
pub(crate) fn table(config: &BerConfig, rows: &[BerPoint]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {}, SNR per receive antenna, seed {}, stop at {} bit errors or {} frames",
        link_label(&config.link),
        config.seed,
        config.min_errors,
        config.max_frames
    );
    let width = rows
        .iter()
        .map(|r| r.detector.len())
        .max()
        .unwrap_or(0)
        .max("detector".len());
    let _ = writeln!(
        out,
        "{:<width$}  {:>7}  {:>10}  {:>23}  {:>10}  {:>11}  {:>13}  {:>9}",
        "detector", "SNR dB", "BER", "95% CI", "SER", "bit errors", "bits", "frames"
    );
    for r in rows {
        let ci = format!("[{:.3e}, {:.3e}]", r.ber_ci_low, r.ber_ci_high);
        let _ = writeln!(
            out,
            "{:<width$}  {:>7.2}  {:>10.3e}  {:>23}  {:>10.3e}  {:>11}  {:>13}  {:>9}",
            r.detector, r.snr_db, r.ber, ci, r.ser, r.bit_errors, r.bits, r.frames
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snr_ranges_and_lists() {
        assert_eq!(
            parse_snr("0:25:5").unwrap().0,
            vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
        );
        assert_eq!(
            parse_snr("0:24:5").unwrap().0,
            vec![0.0, 5.0, 10.0, 15.0, 20.0]
        );
        assert_eq!(parse_snr("0:0.3:0.1").unwrap().0, vec![0.0, 0.1, 0.2, 0.3]);
        assert_eq!(parse_snr("-5:-5:1").unwrap().0, vec![-5.0]);
        assert_eq!(parse_snr("3,1.5,10").unwrap().0, vec![3.0, 1.5, 10.0]);
        assert_eq!(parse_snr("7").unwrap().0, vec![7.0]);
        assert_eq!(parse_snr("-100,100").unwrap().0, vec![-100.0, 100.0]);
        for bad in [
            "5:0:1",
            "0:10:0",
            "0:10:-1",
            "0:10",
            "a:1:1",
            "nan",
            "1,inf",
            "",
            "0:1e9:1e-3",
            "-1e308",
            "0,101",
            "-100.5:0:1",
            "0:1e300:1e299",
        ] {
            assert!(parse_snr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scalar_parsers_name_the_problem() {
        assert!(parse_antennas("0").unwrap_err().contains("between 1 and"));
        assert!(parse_antennas("257").is_err());
        assert_eq!(parse_antennas("4").unwrap(), 4);
        assert!(parse_rho("1").is_err());
        assert!(parse_rho("NaN").is_err());
        assert_eq!(parse_rho("-0.5").unwrap(), -0.5);
        assert!(parse_modulation("7qam").unwrap_err().contains("7qam"));
        assert!(parse_detector("kbest:0").unwrap_err().contains("kbest:0"));
        assert!(parse_positive_u64("0").is_err());
        assert!(parse_batch("0").is_err());
    }
}
