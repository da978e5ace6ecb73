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

mod summary;

use kaq_model::lower::LinkFrames;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::ProgressBar;
use kaq_codegen::report::{Report, analyse};
use kaq_ir::{Interpreter, Ir};
use kaq_model::ber::{BerConfig, BerPoint, simulate};
use kaq_model::detect::DetectorSpec;
use kaq_model::lower::{LowerOptions, lower};
use kaq_model::mmd::KernelMode;
use kaq_model::quant::file::QuantModelFile;
use kaq_model::quant::kaq::{DEFAULT_EPSILON, DEFAULT_KERNEL, KaqConfig};
use kaq_model::quant::{QuantMethod, QuantTrainConfig, train_quantized};
use kaq_model::train::model_file::Overwrite;
use kaq_model::train::{ModelFile, Progress, TrainConfig, train};
use kaq_model::unfolded::{Arch, Init, NetConfig, Prox};
use kaq_model::{Detector, LinkConfig, Modulation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::args::usage_error;
use crate::plot::{self, Series};

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

/// The link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkSection {
    /// Transmit antennas.
    pub nt: usize,
    /// Receive antennas.
    pub nr: usize,
    /// bpsk, qpsk, 16qam or 64qam.
    pub modulation: Modulation,
    /// Block fading: frames per channel block (1, the default, is left out of the JSON).
    #[serde(skip_serializing_if = "is_one")]
    pub block: usize,
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

impl Default for LinkSection {
    fn default() -> Self {
        Self {
            nt: 16,
            nr: 16,
            modulation: Modulation::Qam16,
            block: 1,
        }
    }
}

/// The unfolded net.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetSection {
    /// pgd or admm.
    pub arch: Arch,
    /// soft, box or qam.
    pub prox: Prox,
    /// Layers K.
    pub layers: usize,
    /// Heavy-ball momentum.
    pub momentum: bool,
    /// zero or mf.
    pub init: Init,
}

impl Default for NetSection {
    fn default() -> Self {
        let d = NetConfig::default();
        Self {
            arch: d.arch,
            prox: d.prox,
            layers: d.layers,
            momentum: d.momentum,
            init: d.init,
        }
    }
}

/// f32 training (the paper's protocol by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// Training samples.
    pub samples: usize,
    /// Validation samples.
    pub val_samples: usize,
    /// Minibatch size.
    pub batch: usize,
    /// Epochs.
    pub epochs: usize,
    /// Initial Adam learning rate.
    pub lr: f64,
    /// The learning rate halves every this many epochs.
    pub lr_step: usize,
    /// Seed of every random stream.
    pub seed: u64,
    /// Training SNRs in dB.
    pub snr_db: Vec<f64>,
}

impl Default for TrainSection {
    fn default() -> Self {
        let d = TrainConfig::default();
        Self {
            samples: d.samples,
            val_samples: d.val_samples,
            batch: d.batch,
            epochs: d.epochs,
            lr: d.lr,
            lr_step: d.lr_step,
            seed: d.seed,
            snr_db: d.snr_db,
        }
    }
}

/// Quantization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuantSection {
    /// ptq, qat-mse, lsq or kaq.
    pub method: QuantMethod,
    /// Activation bits.
    pub bits: u32,
    /// Fine-tuning epochs.
    pub epochs: usize,
    /// Fine-tuning learning rate.
    pub lr: f64,
    /// The learning rate halves every this many epochs.
    pub lr_step: usize,
    /// KAQ's ε.
    pub epsilon: f64,
    /// KAQ's kernel bandwidths: median, multi or learnable.
    pub kernel: String,
    /// Signed bits of the IR's requantization multipliers.
    pub mult_bits: u32,
}

impl Default for QuantSection {
    fn default() -> Self {
        let d = QuantTrainConfig::default();
        Self {
            method: QuantMethod::Kaq,
            bits: 8,
            epochs: d.train.epochs,
            lr: d.train.lr,
            lr_step: d.train.lr_step,
            epsilon: DEFAULT_EPSILON,
            kernel: DEFAULT_KERNEL.to_string(),
            mult_bits: LowerOptions::default().mult_bits,
        }
    }
}

/// The generated RTL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtlSection {
    /// MAC lanes per layer stage (must divide N).
    pub lanes: usize,
    /// Top module name.
    pub top: String,
    /// Frames in the generated testbench.
    pub testbench_frames: usize,
    /// Yosys target for the resource report: generic, ice40, xilinx or none.
    pub synth: String,
    /// Seconds Yosys may run before it is stopped (the summary says so).
    pub synth_limit_s: u64,
}

impl Default for RtlSection {
    fn default() -> Self {
        let d = kaq_codegen::Options::default();
        Self {
            lanes: d.lanes,
            top: d.top,
            testbench_frames: d.testbench_frames,
            synth: "xilinx".to_string(),
            synth_limit_s: 600,
        }
    }
}

/// Co-simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CosimSection {
    /// Frames co-simulated (0 skips the stage).
    pub frames: usize,
    /// Probability of an input stall per cycle.
    pub stall_prob: f64,
    /// Seed of the frames and stalls.
    pub seed: u64,
}

impl Default for CosimSection {
    fn default() -> Self {
        Self {
            frames: 2000,
            stall_prob: 0.2,
            seed: 1,
        }
    }
}

/// The BER curves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BerSection {
    /// SNR points in dB.
    pub snr_db: Vec<f64>,
    /// A point stops at this many bit errors per detector.
    pub min_errors: u64,
    /// A point never uses more frames than this.
    pub max_frames: u64,
    /// Classical references (`kaq ber --detector` specs).
    pub references: Vec<String>,
    /// Seed.
    pub seed: u64,
}

impl Default for BerSection {
    fn default() -> Self {
        Self {
            snr_db: vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0],
            min_errors: 1000,
            max_frames: 200_000,
            references: vec!["mmse".to_string(), "kbest:32".to_string()],
            seed: 1,
        }
    }
}

/// The whole `kaq flow` configuration (docs/flow.md).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowConfig {
    /// The link.
    pub link: LinkSection,
    /// The net.
    pub net: NetSection,
    /// f32 training.
    pub train: TrainSection,
    /// Quantization and lowering.
    pub quant: QuantSection,
    /// RTL generation and synthesis.
    pub rtl: RtlSection,
    /// Co-simulation.
    pub cosim: CosimSection,
    /// BER curves.
    pub ber: BerSection,
}

impl FlowConfig {
    /// Reads a config file; unknown fields are refused with their name.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("--config {}: cannot read", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("--config {}", path.display()))
    }

    fn link(&self) -> anyhow::Result<LinkConfig> {
        Ok(
            LinkConfig::new(self.link.nt, self.link.nr, self.link.modulation)?
                .with_block(self.link.block)?,
        )
    }

    fn net(&self) -> NetConfig {
        NetConfig {
            arch: self.net.arch,
            prox: self.net.prox,
            layers: self.net.layers,
            momentum: self.net.momentum,
            init: self.net.init,
        }
    }

    fn f32_config(&self) -> anyhow::Result<TrainConfig> {
        let t = &self.train;
        Ok(TrainConfig {
            link: self.link()?,
            net: self.net(),
            samples: t.samples,
            val_samples: t.val_samples,
            batch: t.batch,
            epochs: t.epochs,
            lr: t.lr,
            lr_step: t.lr_step,
            seed: t.seed,
            snr_db: t.snr_db.clone(),
            ..TrainConfig::default()
        })
    }

    /// The quantized run's config: `kaq train --quant` with the f32 run's data flags.
    fn kernel(&self) -> anyhow::Result<KernelMode> {
        self.quant
            .kernel
            .parse()
            .map_err(|e| anyhow::anyhow!("config quant.kernel: {e}"))
    }

    fn quant_config(&self, f32: &TrainConfig) -> QuantTrainConfig {
        let q = &self.quant;
        let train = TrainConfig {
            epochs: q.epochs,
            lr: q.lr,
            lr_step: q.lr_step,
            ..f32.clone()
        };
        let kaq = KaqConfig {
            epsilon: q.epsilon,
            kernel: self.kernel().unwrap_or(DEFAULT_KERNEL),
        };
        QuantTrainConfig::fine_tuning(train, q.bits, kaq)
    }

    fn codegen_options(&self) -> kaq_codegen::Options {
        kaq_codegen::Options {
            lanes: self.rtl.lanes,
            top: self.rtl.top.clone(),
            testbench_frames: self.rtl.testbench_frames,
            seed: 1,
        }
    }

    /// Checks everything that can be checked before any work.
    fn validate(&self) -> anyhow::Result<()> {
        let f32 = self.f32_config().context("config link")?;
        self.kernel()?;
        if !(self.quant.epsilon.is_finite() && self.quant.epsilon >= 0.0) {
            bail!(
                "config quant.epsilon = {}: must be finite and ≥ 0",
                self.quant.epsilon
            );
        }
        f32.validate().context("config train")?;
        super::args::parse_bits(&self.quant.bits.to_string())
            .map_err(|e| anyhow::anyhow!("config quant.bits = {}: {e}", self.quant.bits))?;
        self.quant_config(&f32)
            .quant
            .validate()
            .context("config quant.bits")?;
        if !(8..=32).contains(&self.quant.mult_bits) {
            bail!(
                "config quant.mult_bits = {}: must be 8..=32",
                self.quant.mult_bits
            );
        }
        kaq_codegen::check_top_name(&self.rtl.top).context("config rtl.top")?;
        let n = f32.link.n();
        if kaq_codegen::resolve_lanes(n, Some(self.rtl.lanes)).is_err() {
            bail!(
                "config rtl.lanes = {}: must divide N = {n} (the row length of H)",
                self.rtl.lanes
            );
        }
        if !["generic", "ice40", "xilinx", "none"].contains(&self.rtl.synth.as_str()) {
            bail!(
                "config rtl.synth = {:?}: expected generic, ice40, xilinx or none",
                self.rtl.synth
            );
        }
        if !(0.0..1.0).contains(&self.cosim.stall_prob) {
            bail!(
                "config cosim.stall_prob = {}: must be in [0, 1)",
                self.cosim.stall_prob
            );
        }
        for spec in &self.ber.references {
            spec.parse::<DetectorSpec>()
                .with_context(|| format!("config ber.references: {spec}"))?;
        }
        BerConfig::new(
            f32.link.clone(),
            self.ber.snr_db.clone(),
            self.ber.min_errors,
            self.ber.max_frames,
            self.ber.seed,
        )
        .validate()
        .context("config ber")?;
        Ok(())
    }
}

/// Keys and timings of the stages.
struct Stages {
    out: PathBuf,
    fresh: bool,
    log: Vec<StageLog>,
}

#[derive(Debug, Clone, Serialize)]
struct StageLog {
    stage: &'static str,
    outcome: String,
    seconds: f64,
}

fn digest(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

impl Stages {
    fn key_path(&self, stage: &str) -> PathBuf {
        self.out.join(".kaq-flow").join(format!("{stage}.key"))
    }

    /// Whether `stage`'s artefacts are present and were made from inputs hashing to `key`.
    fn up_to_date(&self, stage: &str, key: &str, artefacts: &[&Path]) -> bool {
        !self.fresh
            && artefacts.iter().all(|p| p.exists())
            && fs::read_to_string(self.key_path(stage)).is_ok_and(|k| k.trim() == key)
    }

    fn record(&mut self, stage: &'static str, key: &str, started: Instant) -> anyhow::Result<()> {
        plot::write_atomically(&self.key_path(stage), format!("{key}\n").as_bytes())?;
        self.log.push(StageLog {
            stage,
            outcome: "ran".into(),
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(())
    }

    /// A stage that ran but did not finish (a time limit, a tool failure): logged with its
    /// outcome and not marked up to date, so the next run tries again.
    fn unfinished(&mut self, stage: &'static str, outcome: String, started: Instant) {
        let _ = fs::remove_file(self.key_path(stage));
        self.log.push(StageLog {
            stage,
            outcome,
            seconds: started.elapsed().as_secs_f64(),
        });
    }

    fn reused(&mut self, stage: &'static str) {
        println!("{stage}: up to date, reused");
        self.log.push(StageLog {
            stage,
            outcome: "reused".into(),
            seconds: 0.0,
        });
    }

    fn skipped(&mut self, stage: &'static str, why: String) {
        println!("{stage}: skipped ({why})");
        self.log.push(StageLog {
            stage,
            outcome: format!("skipped: {why}"),
            seconds: 0.0,
        });
    }
}

fn on_progress<'a>(label: &'a str, bar: &'a ProgressBar) -> impl FnMut(Progress<'_>) + 'a {
    let mut epochs = 0;
    move |p| match p {
        Progress::Started { epochs: e, batches } => {
            epochs = e;
            bar.set_length(batches as u64);
            bar.set_prefix(format!("{label} epoch 1/{e}"));
        }
        Progress::Batch {
            epoch, batch, loss, ..
        } => {
            bar.set_prefix(format!("{label} epoch {epoch}/{epochs}"));
            bar.set_position(batch as u64);
            bar.set_message(format!("loss {loss:.5}"));
        }
        Progress::Epoch(r) => {
            bar.set_message(format!("val loss {:.5}", r.val_loss));
            bar.set_position(0);
        }
    }
}

/// Everything the summary reports.
struct Results {
    f32_file: ModelFile,
    ir: Ir,
    report: Report,
    synth: Option<serde_json::Value>,
    cosim: Option<serde_json::Value>,
    cosim_note: Option<String>,
    ber: Vec<BerPoint>,
    codegen_seconds: f64,
}

/// Runs `kaq flow`.
pub fn run(args: FlowArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = match &args.config {
        Some(path) => {
            FlowConfig::load(path).map_err(|e| usage_error("--config", format!("{e:#}")))?
        }
        None => FlowConfig::default(),
    };
    if let Err(e) = config.validate() {
        return Err(usage_error("--config", format!("{e:#}")));
    }
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
    let mut work = || flow(&config, &mut stages);
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
    }))?;
    plot::write_atomically(&args.out.join("flow.json"), format!("{log}\n").as_bytes())?;
    if let Some(v) = &results.cosim
        && v["mismatches"].as_u64() != Some(0)
    {
        bail!(
            "co-simulation found {} mismatches between the RTL and the golden model; see {}",
            v["mismatches"],
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

fn flow(config: &FlowConfig, stages: &mut Stages) -> anyhow::Result<Results> {
    let out = stages.out.clone();

    // 1. f32 training.
    let f32_config = config.f32_config()?;
    let f32_path = out.join("models").join("f32.json");
    let key = digest(&[b"f32", config_json(&f32_config).as_bytes()]);
    let f32_file = if stages.up_to_date("f32", &key, &[&f32_path])
        && let Ok(file) = ModelFile::load(&f32_path)
    {
        stages.reused("f32");
        file
    } else {
        let t = Instant::now();
        let bar = crate::progress::open_bar("f32", "");
        let result = train(&f32_config, &mut on_progress("f32", &bar));
        bar.finish_and_clear();
        let file = ModelFile::from(result.context("training the f32 net failed")?);
        file.save(&f32_path, Overwrite::Replace)
            .with_context(|| format!("cannot save {}", f32_path.display()))?;
        println!(
            "f32: trained {} in {:.1} s → {}",
            file.net.name(),
            t.elapsed().as_secs_f64(),
            f32_path.display()
        );
        stages.record("f32", &key, t)?;
        file
    };

    // 2. Quantization.
    let quant_config = config.quant_config(&f32_config);
    let quant_path = out.join("models").join("quant.json");
    let f32_bytes = read(&f32_path)?;
    let key = digest(&[
        b"quant",
        config_json(&quant_config).as_bytes(),
        config.quant.method.to_string().as_bytes(),
        &f32_bytes,
    ]);
    let quant_file = if stages.up_to_date("quant", &key, &[&quant_path])
        && let Ok(file) = QuantModelFile::load(&quant_path)
    {
        stages.reused("quant");
        file
    } else {
        let t = Instant::now();
        let label = format!("{}-{}b", config.quant.method, config.quant.bits);
        let bar = crate::progress::open_bar(&label, "");
        let result = train_quantized(
            &f32_file.net,
            config.quant.method,
            &quant_config,
            &mut on_progress(&label, &bar),
        );
        bar.finish_and_clear();
        let run = result.with_context(|| format!("quantization ({label}) failed"))?;
        let file = QuantModelFile::from(&run);
        file.save(&quant_path, Overwrite::Replace)
            .with_context(|| format!("cannot save {}", quant_path.display()))?;
        println!(
            "quant: {label} in {:.1} s → {}",
            t.elapsed().as_secs_f64(),
            quant_path.display()
        );
        stages.record("quant", &key, t)?;
        file
    };

    // 3. Lowering.
    let ir_path = out.join("ir.json");
    let quant_bytes = read(&quant_path)?;
    let key = digest(&[
        b"lower",
        &config.quant.mult_bits.to_le_bytes(),
        &quant_bytes,
    ]);
    let ir = if stages.up_to_date("lower", &key, &[&ir_path])
        && let Ok(ir) = Ir::load(&ir_path)
    {
        stages.reused("lower");
        ir
    } else {
        let t = Instant::now();
        let net = quant_file
            .quant_net()
            .map_err(|e| anyhow::anyhow!("{}: {e}", quant_path.display()))?;
        let ir = lower(
            &net,
            LowerOptions {
                mult_bits: config.quant.mult_bits,
            },
        )?;
        plot::write_atomically(&ir_path, ir.to_json().as_bytes())?;
        println!("lower: {} → {}", ir.name, ir_path.display());
        stages.record("lower", &key, t)?;
        ir
    };

    // 4. Codegen.
    let rtl_dir = out.join("rtl");
    let ir_bytes = read(&ir_path)?;
    let options = config.codegen_options();
    let key = digest(&[
        b"codegen",
        env!("CARGO_PKG_VERSION").as_bytes(),
        format!("{options:?}").as_bytes(),
        &ir_bytes,
    ]);
    let t = Instant::now();
    let generated = kaq_codegen::generate(&ir, &options, &LinkFrames)?;
    let codegen_seconds = t.elapsed().as_secs_f64();
    let readme = rtl_dir.join("README.md");
    if stages.up_to_date("codegen", &key, &[&readme]) {
        stages.reused("codegen");
    } else {
        let written = kaq_codegen::write_design(&generated, &rtl_dir, false)?;
        println!(
            "codegen: {} files in {:.2} s → {}",
            written.len(),
            codegen_seconds,
            rtl_dir.display()
        );
        stages.record("codegen", &key, t)?;
    }

    // 5. Report: analytic always; Yosys when asked for and installed.
    let report = analyse(&generated.design);
    let synth = synth_stage(config, stages, &generated, &key)?;
    plot::write_atomically(
        &out.join("report.json"),
        format!(
            "{}\n",
            serde_json::to_string_pretty(&report_json(&report, synth.as_ref()))?
        )
        .as_bytes(),
    )?;

    // 6. Co-simulation.
    let (cosim, cosim_note) = cosim_stage(config, stages, &generated, &key)?;

    // 7. BER.
    let ber_path = out.join("ber.json");
    let key = digest(&[
        b"ber",
        config_json(&config.ber).as_bytes(),
        &f32_bytes,
        &ir_bytes,
    ]);
    let ber = if stages.up_to_date("ber", &key, &[&ber_path, &out.join("ber.svg")])
        && let Ok(points) = load_ber(&ber_path)
    {
        stages.reused("ber");
        points
    } else {
        let t = Instant::now();
        let points = ber_stage(config, &f32_file, &ir)?;
        let doc = serde_json::json!({ "snr_definition": "per receive antenna", "points": &points });
        plot::write_atomically(
            &ber_path,
            format!("{}\n", serde_json::to_string_pretty(&doc)?).as_bytes(),
        )?;
        let title = format!(
            "BER, {}×{} {}: {} and references",
            config.link.nt, config.link.nr, config.link.modulation, ir.name
        );
        ber_plot(&out.join("ber.svg"), &title, &points)?;
        println!(
            "ber: {} points in {:.1} s",
            points.len(),
            t.elapsed().as_secs_f64()
        );
        stages.record("ber", &key, t)?;
        points
    };
    Ok(Results {
        f32_file,
        ir,
        report,
        synth,
        cosim,
        cosim_note,
        ber,
        codegen_seconds,
    })
}

fn ber_stage(config: &FlowConfig, f32_file: &ModelFile, ir: &Ir) -> anyhow::Result<Vec<BerPoint>> {
    let link = config.link()?;
    let mut detectors: Vec<Box<dyn Detector>> = config
        .ber
        .references
        .iter()
        .map(|s| s.parse::<DetectorSpec>().map(|d| d.build()))
        .collect::<Result<_, _>>()?;
    detectors.push(Box::new(f32_file.net.clone()));
    detectors.push(Box::new(Interpreter::new(ir.clone())?));
    let refs: Vec<&dyn Detector> = detectors.iter().map(AsRef::as_ref).collect();
    let ber_config = BerConfig::new(
        link,
        config.ber.snr_db.clone(),
        config.ber.min_errors,
        config.ber.max_frames,
        config.ber.seed,
    );
    let bar = crate::progress::open_bar("ber", "");
    bar.set_length(ber_config.snr_db.len() as u64 * 1000);
    let mut on_progress = |p: &kaq_model::ber::BerProgress| {
        bar.set_position(((p.snr_index as f64 + p.point_fraction()) * 1000.0) as u64);
        bar.set_message(format!("SNR {} dB", p.snr_db));
    };
    let points = simulate(&ber_config, &refs, Some(&mut on_progress));
    bar.finish_and_clear();
    Ok(points?)
}

fn ber_plot(path: &Path, title: &str, points: &[BerPoint]) -> anyhow::Result<()> {
    let mut names: Vec<&str> = Vec::new();
    for p in points {
        if !names.contains(&p.detector.as_str()) {
            names.push(&p.detector);
        }
    }
    let series: Vec<Series> = names
        .iter()
        .map(|name| {
            let pts: Vec<&BerPoint> = points.iter().filter(|p| p.detector == *name).collect();
            Series {
                name: name.to_string(),
                points: pts.iter().map(|p| (p.snr_db, p.ber)).collect(),
                y_err: Some(pts.iter().map(|p| (p.ber_ci_low, p.ber_ci_high)).collect()),
            }
        })
        .collect();
    plot::line_plot(
        path,
        title,
        "SNR per receive antenna (dB)",
        "BER",
        true,
        &series,
    )
}

fn report_json(report: &Report, synth: Option<&serde_json::Value>) -> serde_json::Value {
    serde_json::json!({
        "layers": report.layers.iter().map(|l| serde_json::json!({
            "layer": l.layer, "macs": l.macs, "mac_cycles": l.mac_cycles,
            "update_cycles": l.update_cycles, "latency": l.latency, "ii": l.ii,
            "multipliers": l.multipliers, "adders": l.adders, "memory_bits": l.memory_bits,
        })).collect::<Vec<_>>(),
        "total": {
            "macs": report.total.macs, "mac_bound": report.total.mac_bound,
            "latency": report.total.latency, "ii": report.total.ii,
            "multipliers": report.total.multipliers, "adders": report.total.adders,
            "memory_bits": report.total.memory_bits,
        },
        "synth": synth,
    })
}

/// Yosys on the generated RTL (reused when the RTL and target did not change). A missing
/// Yosys, a time-out or a failure is a note in the summary, not an error of the flow.
fn synth_stage(
    config: &FlowConfig,
    stages: &mut Stages,
    generated: &kaq_codegen::Generated,
    rtl_key: &str,
) -> anyhow::Result<Option<serde_json::Value>> {
    use kaq_codegen::synth::{Target, find_yosys};
    if config.rtl.synth == "none" {
        stages.skipped("synth", "rtl.synth is none".to_string());
        return Ok(None);
    }
    let target: Target = config
        .rtl
        .synth
        .parse()
        .map_err(|e: String| anyhow::anyhow!("config rtl.synth: {e}"))?;
    let path = stages.out.join("synth.json");
    let key = digest(&[
        b"synth",
        rtl_key.as_bytes(),
        target.name().as_bytes(),
        &config.rtl.synth_limit_s.to_le_bytes(),
    ]);
    if stages.up_to_date("synth", &key, &[&path])
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&read(&path)?)
    {
        stages.reused("synth");
        return Ok(Some(v));
    }
    match find_yosys() {
        Ok(Some(_)) => {}
        Ok(None) | Err(_) => {
            stages.skipped("synth", "Yosys is not installed".to_string());
            return Ok(None);
        }
    }
    let t = Instant::now();
    let limit = std::time::Duration::from_secs(config.rtl.synth_limit_s);
    let cache = stages.out.join("synth-cache");
    let value = match super::report::flow_synth(generated, target, limit, &cache) {
        Ok(v) => v,
        Err(e) => {
            let note = format!("Yosys {target} synthesis failed: {e:#}");
            println!("synth: {note}");
            serde_json::json!({ "target": target.name(), "failed": true, "note": note })
        }
    };
    plot::write_atomically(
        &path,
        format!("{}\n", serde_json::to_string_pretty(&value)?).as_bytes(),
    )?;
    if value["failed"].as_bool() == Some(true) {
        stages.unfinished("synth", "failed (not cached)".into(), t);
    } else if value["complete"].as_bool() == Some(false) {
        stages.unfinished(
            "synth",
            format!(
                "timed out after {} s (not cached; what finished is reported)",
                config.rtl.synth_limit_s
            ),
            t,
        );
    } else {
        stages.record("synth", &key, t)?;
    }
    Ok(Some(value))
}

/// Verilator co-simulation (reused when the RTL and settings did not change): frames at the
/// BER SNR points, random input stalls and output back-pressure, every output and every
/// layer's states compared with the golden model. A missing Verilator is a note; a mismatch
/// is an error of the flow (after the report is written).
fn cosim_stage(
    config: &FlowConfig,
    stages: &mut Stages,
    generated: &kaq_codegen::Generated,
    rtl_key: &str,
) -> anyhow::Result<(Option<serde_json::Value>, Option<String>)> {
    use kaq_sim::cosim::{FrameCodes, Rtl, Stalls, link_frames};
    use kaq_sim::tools::{Tool, find};
    if config.cosim.frames == 0 {
        let note = "cosim.frames is 0".to_string();
        stages.skipped("cosim", note.clone());
        return Ok((None, Some(note)));
    }
    if !matches!(find(Tool::Verilator), Ok(Some(_))) {
        let note = "Verilator is not installed (`apt-get install -y verilator`)".to_string();
        stages.skipped("cosim", note.clone());
        return Ok((None, Some(note)));
    }
    let path = stages.out.join("cosim.json");
    let key = digest(&[
        b"cosim",
        rtl_key.as_bytes(),
        config_json(&config.cosim).as_bytes(),
        config_json(&config.ber.snr_db).as_bytes(),
    ]);
    if stages.up_to_date("cosim", &key, &[&path])
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&read(&path)?)
    {
        stages.reused("cosim");
        return Ok((Some(v), None));
    }
    let t = Instant::now();
    let bar = crate::progress::open_bar("cosim build", "");
    let rtl = Rtl::build(generated, false);
    bar.finish_and_clear();
    let rtl = rtl.context("building the RTL with Verilator")?;
    let stalls = Stalls {
        input: config.cosim.stall_prob,
        output: config.cosim.stall_prob,
        seed: config.cosim.seed,
    };
    let link = config.link()?;
    let interp = rtl.interpreter();
    let total = config.cosim.frames;
    let codes: Vec<FrameCodes> =
        link_frames(interp, &link, &config.ber.snr_db, total, config.cosim.seed)?
            .collect::<Result<_, _>>()?;
    let bar = crate::progress::open_bar("cosim", "");
    bar.set_length(total as u64);
    let report = rtl.cosimulate(codes.into_iter().inspect(|_| bar.inc(1)), stalls);
    bar.finish_and_clear();
    let report = report?;
    let first = report.first_mismatch.as_ref().map(|m| m.to_string());
    let value = serde_json::json!({
        "frames": report.frames,
        "mismatches": report.mismatches,
        "first_mismatch": first,
        "stall_prob": config.cosim.stall_prob,
        "measured_ii": report.measured_ii,
        "estimated_ii": report.estimated_ii,
        "measured_latency": report.measured_latency,
        "estimated_latency": report.estimated_latency,
        "frames_per_second": report.frames_per_second,
        "build_seconds": report.build_time.as_secs_f64(),
        "build_cached": report.cached,
    });
    plot::write_atomically(
        &path,
        format!("{}\n", serde_json::to_string_pretty(&value)?).as_bytes(),
    )?;
    println!(
        "cosim: {} frames, {} mismatches, {:.0} frames/s (build {:.1} s{})",
        report.frames,
        report.mismatches,
        report.frames_per_second,
        report.build_time.as_secs_f64(),
        if report.cached { ", cached" } else { "" }
    );
    stages.record("cosim", &key, t)?;
    Ok((Some(value), None))
}

fn load_ber(path: &Path) -> anyhow::Result<Vec<BerPoint>> {
    let v: serde_json::Value = serde_json::from_slice(&read(path)?)?;
    Ok(serde_json::from_value(v["points"].clone())?)
}

/// A stage config's JSON, for its key.
fn config_json(v: &impl Serialize) -> String {
    serde_json::to_string(v).expect("a stage config always serializes")
}
