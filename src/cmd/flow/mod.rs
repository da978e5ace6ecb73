//! `kaq flow`: from nothing to verified RTL in one command (docs/flow.md).
//!
//! Stages, each writing its artefact under `--out`:
//!
//! 1. `f32`: train the f32 net (`models/f32.json`);
//! 2. `quant`: quantize it (`models/quant.json`, KAQ 8-bit by default);
//! 3. `lower`: the IR of the integer golden model (`ir.json`);
//! 4. `codegen`: the Verilog, testbench and README (`rtl/`);
//! 5. `report`: the analytic timing and resources, plus Yosys cells when Yosys is installed
//!    (`report.json`);
//! 6. `cosim`: Verilator co-simulation of a batch of frames against the golden model
//!    (`cosim.json`), when Verilator is installed;
//! 7. `ber`: BER of the f32 net, the integer model and the MMSE/K-best references
//!    (`ber.json`, `ber.svg`);
//!
//! then `summary.md`, the page to read first. A stage whose inputs (its configuration and the
//! bytes of the artefacts it reads) hash to the key recorded with its artefact is reused, not
//! rerun; `--fresh` reruns everything. Every artefact is written atomically and its key only
//! after it, so an interrupted run resumes cleanly. The run holds the advisory lock of `--out`
//! throughout: a second run on the same directory fails at once naming the first
//! (docs/outputs.md).

mod cache;
mod config;
mod gram;
mod stages;
mod summary;

/// The cg engine's lane count in the flow (and in `kaq ber --rtl` of an IR v2 document).
pub(crate) use config::CG_DEFAULT_LANES;

use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use kaq_model::ber::BerPoint;

use crate::cmd::report::energy::EnergyReport;

use super::args::usage_error;
use crate::plot;
use cache::Stages;
pub use config::FlowConfig;

/// Arguments of `kaq flow`.
#[derive(Debug, Args)]
pub struct FlowArgs {
    /// A JSON config (docs/flow.md); every field is optional, the defaults are the paper's
    /// setup: 16×16 16-QAM, PGD-Net, K = 5, KAQ 8-bit.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// The output directory (created; kaq writes only its own files in it).
    #[arg(long, value_name = "DIR", default_value = "out")]
    out: PathBuf,
    /// Rerun every stage even when its artefact is up to date.
    #[arg(long)]
    fresh: bool,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = super::args::parse_threads)]
    threads: Option<usize>,
}

/// Everything the summary reports.
struct Results {
    /// The f32 net's name (the BER detector of the quantization gap's f32 column).
    f32_name: String,
    /// The integer golden model's IR name (its BER detector is `<name>-int`).
    ir_name: String,
    /// The headline's description of the net, its quantization and its RTL.
    design: String,
    /// The bullets of the summary's Hardware section.
    hardware: Vec<String>,
    /// The co-simulation figures (`cosim.json`) when it ran.
    cosim: Option<serde_json::Value>,
    /// The summary's co-simulation section.
    cosim_text: String,
    ber: Vec<BerPoint>,
    /// Reference curves of the verdict after `ber.references` (the paper's PGD-Net beside a
    /// cg design).
    extra_references: Vec<String>,
    /// The design's energy and the baselines' (docs/energy.md); IR v1 designs only.
    energy: Option<EnergyReport>,
}

/// Runs `kaq flow`.
pub fn run(args: FlowArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    // The whole configuration is validated before anything is created (docs/flow.md).
    let config = match &args.config {
        Some(path) => FlowConfig::load(path),
        None => FlowConfig::from_value(serde_json::json!({})).map_err(Into::into),
    }
    .map_err(|e| usage_error("--config", format!("{e:#}")))?;
    if args.out.exists() && !args.out.is_dir() {
        bail!(
            "--out {}: exists and is not a directory",
            args.out.display()
        );
    }
    // One run per output directory: a second one fails naming this one (docs/outputs.md).
    let _lock = kaq_files::DirLock::acquire(&args.out, kaq_files::Wait::No)
        .with_context(|| format!("--out {}", args.out.display()))?;
    fs::create_dir_all(args.out.join("models"))
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    fs::create_dir_all(args.out.join(".kaq-flow"))
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    // A swap of rtl/ stopped by a fault is finished even when the codegen stage is reused.
    kaq_files::Staging::recover(&args.out.join("rtl"))
        .with_context(|| format!("--out {}", args.out.display()))?;
    plot::check_writable(&args.out.join("summary.md"))?;
    let mut stages = Stages {
        out: args.out.clone(),
        fresh: args.fresh,
        log: Vec::new(),
    };
    let pool = match args.threads {
        Some(n) => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .context("cannot start the worker threads")?,
        ),
        None => None,
    };
    let mut work = || {
        if config.is_cg() {
            gram::flow(&config, &mut stages)
        } else {
            stages::flow(&config, &mut stages)
        }
    };
    let results = match &pool {
        Some(pool) => pool.install(work)?,
        None => work()?,
    };
    let summary = summary::summary(&config, &args, &results, &stages);
    plot::write_atomically(&args.out.join("summary.md"), summary.as_bytes())?;
    let log = serde_json::to_string_pretty(&serde_json::json!({
        "tool": "kaq",
        "version": env!("CARGO_PKG_VERSION"),
        "config": &config,
        "stages": &stages.log,
        // The figures the summary quotes: the design's pJ per vector and per bit under both
        // models of docs/energy.md, and the baselines' at the same link.
        "energy": &results.energy,
    }))?;
    plot::write_atomically(&args.out.join("flow.json"), format!("{log}\n").as_bytes())?;
    if let Some(v) = &results.cosim
        && (v["mismatches"].as_u64() != Some(0) || v["cycles_exact"].as_bool() == Some(false))
    {
        bail!(
            "co-simulation found {} mismatches between the RTL and the golden model{}; see {}",
            v["mismatches"],
            if v["cycles_exact"].as_bool() == Some(false) {
                " and cycle counts other than the analytic model's"
            } else {
                ""
            },
            args.out.join("summary.md").display()
        );
    }
    println!(
        "\nflow finished in {:.1} s; read {} first",
        started.elapsed().as_secs_f64(),
        args.out.join("summary.md").display()
    );
    Ok(())
}
