//! `kaq explore`: a search over per-layer activation bits (mixed precision), the depth K (one
//! `--teacher` per K) and the MAC lanes, judged on the integer golden model.
//!
//! Every candidate (teacher, per-layer bits) is quantized from its f32 teacher with `--method`
//! (`kaq_model::quant::train_quantized`), lowered to the IR, and evaluated for: the BER at each
//! target SNR (`kaq_model::ber::simulate` on the IR interpreter), the energy per bit under both
//! models of `kaq_ir::energy` (docs/energy.md), and per lane count the analytic xc7 area
//! (`kaq_codegen::estimate`) and the throughput in detected bits per clock cycle
//! (`kaq_codegen::report`). A candidate is the layers' bits with the widths of H̃, e, g and ỹ
//! (each from its own grid). The search is exhaustive when a teacher's grid of candidates has
//! at most `--exhaustive` points, otherwise greedy: from every coordinate at its widest bits
//! (the reference), each step lowers the one coordinate whose next narrower width costs the
//! least BER, until every coordinate is at its narrowest width or (`--stop-loss-db`) the step
//! loses more SNR than allowed against the reference. With `--refine METHOD` the candidates of
//! the first `--refine-fronts` Pareto fronts and the reference are then fine-tuned by METHOD
//! (QAT or KAQ) from the teacher and measured again on the same frames; those records join the
//! fronts beside the search's. A Gram-domain cg teacher (`kaq train --arch cg`) is a second
//! family in the same run: its candidate is the widths of x/r, p, d (`--cg-bits`,
//! `--cg-p-bits`, `--cg-d-bits`) and of H̃, e/ρ, G, ỹ (`--cg-h-bits`, `--cg-e-bits`,
//! `--cg-g-bits`, `--cg-y-bits`), PTQ-lowered to IR v2 (`kaq_model::gram::quantized::lower_cg`),
//! its BER measured on the v2 golden model, its energy by `kaq_ir::gram::gram_energy` with the
//! block stage over `--block` vectors, its area by the v2 estimate
//! (`kaq_codegen::estimate::gram`, read from the generated engine) and its throughput from the
//! v2 cycle model, both at every `--lanes` (the engine's MAC lanes, 1 to 32). Every record's
//! SNR loss against the reference of its method is the mean over the target SNRs of the shift
//! along the reference's BER curve ([`snr_loss_db`]), and the summary names the design of
//! least model 2 energy within `--max-loss-db` of it.
//!
//! Guarantees: the result is a function of the flags and the teacher files alone (common
//! random numbers: every candidate sees the same frames), so a run is deterministic for a
//! seed at any thread count. Every evaluation is appended to `DIR/results.jsonl` by an atomic
//! rewrite of the file, which a rerun with the same configuration rereads and does not
//! evaluate again (a different configuration in that file is refused). The Pareto fronts
//! (mean BER against pJ/bit of model 2 and of model 1, BER against LUTs, throughput against
//! LUTs) are written as a table (`pareto.md`, also printed), JSON (`pareto.json`) and SVG plots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use kaq_ir::Interpreter;
use kaq_model::ber::{BerConfig, simulate};
use kaq_model::lower::{LowerOptions, lower};
use kaq_model::quant::{KaqConfig, QuantConfig, QuantMethod, QuantTrainConfig, train_quantized};
use kaq_model::train::{ModelFile, TrainConfig};
use kaq_model::unfolded::UnfoldedNet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::args::{parse_bits, parse_from_str, parse_snr_db, parse_threads, usage_error};
use crate::plot::{Series, line_plot, write_atomically};

/// The results file in `--out`.
pub const RESULTS_FILE: &str = "results.jsonl";

/// `kaq explore` flags.
#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// A trained f32 model file (`kaq train --out`); repeat for more depths K.
    #[arg(long = "teacher", required = true, value_name = "PATH")]
    teachers: Vec<PathBuf>,

    /// The quantization method of every candidate.
    #[arg(long, value_parser = parse_from_str::<QuantMethod>, default_value = "ptq")]
    method: QuantMethod,

    /// The widths each layer may take (2 to 16 bits).
    #[arg(long, value_delimiter = ',', value_parser = parse_bits, default_value = "4,5,6,8")]
    bits: Vec<u32>,

    /// The widths of H̃ (per tensor, one for every layer).
    #[arg(long, value_delimiter = ',', value_parser = parse_bits, default_value = "8")]
    h_bits: Vec<u32>,

    /// The widths of the residual e.
    #[arg(long, value_delimiter = ',', value_parser = parse_bits, default_value = "12")]
    e_bits: Vec<u32>,

    /// The widths of the gradient g.
    #[arg(long, value_delimiter = ',', value_parser = parse_bits, default_value = "12")]
    g_bits: Vec<u32>,

    /// The widths of ỹ.
    #[arg(long, value_delimiter = ',', value_parser = parse_bits, default_value = "10")]
    y_bits: Vec<u32>,

    /// cg teachers (`kaq train --arch cg`, a Gram-domain model file): the widths of the
    /// state x and the denoiser input r (docs/ir.md §10.6's "b bits"; one for every layer).
    #[arg(long, value_delimiter = ',', value_parser = parse_bits, default_value = "8")]
    cg_bits: Vec<u32>,

    /// cg teachers: the widths of the search directions p.
    #[arg(long, value_delimiter = ',', value_parser = parse_bits, default_value = "8")]
    cg_p_bits: Vec<u32>,

    /// cg teachers: the widths of the iterates d.
    #[arg(long, value_delimiter = ',', value_parser = parse_bits, default_value = "8")]
    cg_d_bits: Vec<u32>,

    /// cg teachers: the widths of H̃.
    #[arg(long, value_delimiter = ',', value_parser = parse_bits, default_value = "10")]
    cg_h_bits: Vec<u32>,

    /// cg teachers: the widths of the residuals e and ρ.
    #[arg(long, value_delimiter = ',', value_parser = parse_bits, default_value = "12")]
    cg_e_bits: Vec<u32>,

    /// cg teachers: the widths of the Gram matrix G (z stays at the lowering's default).
    #[arg(long, value_delimiter = ',', value_parser = parse_bits, default_value = "16")]
    cg_g_bits: Vec<u32>,

    /// cg teachers: the widths of ỹ.
    #[arg(long, value_delimiter = ',', value_parser = parse_bits, default_value = "10")]
    cg_y_bits: Vec<u32>,

    /// cg teachers: the widths of the narrow copy of G that the inner steps read for
    /// ρ = e − G·d − δd (docs/ir.md §10.9, `g_inner`; e = z − G·x keeps the full G); a width at
    /// or above the candidate's G width reads the full G. Empty (the default): no such axis.
    #[arg(long, value_delimiter = ',', value_parser = parse_bits)]
    cg_gi_bits: Vec<u32>,

    /// cg teachers: one `--cg-gi-bits` coordinate per layer instead of one for every layer.
    #[arg(long, requires = "cg_gi_bits")]
    cg_gi_per_layer: bool,

    /// cg teachers: vectors per channel block T over which the per-block stage's energy and
    /// cycles are spread.
    #[arg(long, default_value_t = 14)]
    block: usize,

    /// After the search, fine-tune the candidates of the first `--refine-fronts` Pareto fronts
    /// (model 2 energy against mean BER) and the reference with this method (qat-mse, lsq or
    /// kaq) and evaluate them again; the refined records join the fronts.
    #[arg(long, value_parser = parse_from_str::<QuantMethod>)]
    refine: Option<QuantMethod>,

    /// How many successive Pareto fronts (non-dominated layers) `--refine` fine-tunes.
    #[arg(long, default_value_t = 2)]
    refine_fronts: usize,

    /// Fine-tuning epochs of `--refine` (Adam at 2e-4, halved every 5 epochs).
    #[arg(long, default_value_t = 4)]
    refine_epochs: usize,

    /// Greedy search: the step taken is the neighbour of least mean BER (`ber`), or of least
    /// BER increase per pJ/bit of model 2 saved (`efficiency`).
    #[arg(long, value_enum, default_value = "ber")]
    greedy_by: GreedyBy,

    /// Greedy search: stop a path once its best step loses more than this many dB of SNR
    /// against the reference (its start; `snr_loss_db`). Absent: descend to the narrowest.
    #[arg(long, value_name = "DB")]
    stop_loss_db: Option<f64>,

    /// The SNR loss against the reference (every coordinate at its widest) that the summary's
    /// best design may have, in dB.
    #[arg(long, default_value_t = 0.2)]
    max_loss_db: f64,

    /// MAC lanes to estimate area and throughput at: per layer stage of a PGD/ADMM design
    /// (each must divide N), of the folded engine of a cg design (1 to 32).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    lanes: Vec<usize>,

    /// Target SNRs in dB at which the BER is measured.
    #[arg(long = "snr", value_delimiter = ',', value_parser = parse_snr_db, required = true)]
    snr: Vec<f64>,

    /// Most frames per target SNR.
    #[arg(long, default_value_t = 20_000)]
    frames: u64,

    /// A point stops at this many bit errors.
    #[arg(long, default_value_t = 500)]
    min_errors: u64,

    /// Seed of the BER frames and of the quantization data.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Exhaustive search when a teacher's grid of candidates has at most this many points.
    #[arg(long, default_value_t = 256)]
    exhaustive: u64,

    /// Samples drawn for calibration (and fine-tuning with a trained method).
    #[arg(long, default_value_t = 5_000)]
    samples: usize,

    /// Fine-tuning epochs of a trained method (qat-mse, lsq, kaq).
    #[arg(long, default_value_t = 2)]
    epochs: usize,

    /// Output directory: results.jsonl (resumable), pareto.md, pareto.json and the SVG plots.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Worker threads (default: all cores).
    #[arg(long, value_parser = parse_threads)]
    threads: Option<usize>,
}

/// The greedy step's criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GreedyBy {
    /// The neighbour of least mean BER.
    Ber,
    /// The neighbour of least mean-BER increase per pJ/bit (model 2) saved.
    Efficiency,
}

/// The mean-BER increase from `cur` to `next` per pJ/bit of model 2 saved (an increase below
/// 0 counts as 0, so among free steps the largest saving wins); +∞ without a saving.
fn efficiency(cur: &Record, next: &Record) -> f64 {
    let saved = cur.m2_pj_per_bit - next.m2_pj_per_bit;
    if saved > 0.0 {
        (next.mean_ber() - cur.mean_ber()).max(0.0) / saved - saved * 1e-12
    } else {
        f64::INFINITY
    }
}

/// Area and throughput of one candidate at one lane count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    /// MAC lanes per layer stage.
    pub lanes: usize,
    /// Estimated xc7 LUTs (`kaq_codegen::estimate`, or `kaq_codegen::estimate::gram` for a
    /// cg design; absent in records of runs before the cg estimate).
    pub lut: Option<u64>,
    /// Estimated flip-flops.
    pub ff: Option<u64>,
    /// Estimated DSP48E1 slices.
    pub dsp: Option<u64>,
    /// Mean cycles per frame in steady state.
    pub cycles_per_frame: f64,
    /// Detected bits per clock cycle.
    pub bits_per_cycle: f64,
}

impl Hardware {
    /// The record of a design at `lanes` lanes from its estimated `[LUT, FF, DSP]` and its
    /// mean cycles per frame, detecting `bits_per_vector` bits a frame.
    fn estimated(lanes: usize, area: [u64; 3], cycles: f64, bits_per_vector: u32) -> Self {
        let [lut, ff, dsp] = area;
        Hardware {
            lanes,
            lut: Some(lut),
            ff: Some(ff),
            dsp: Some(dsp),
            cycles_per_frame: cycles,
            bits_per_cycle: f64::from(bits_per_vector) / cycles,
        }
    }
}

/// One evaluated candidate: one line of `results.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The configuration hash of the run that evaluated it.
    pub config: String,
    /// Index of its `--teacher`.
    pub teacher: usize,
    /// The detector family: absent for PGD/ADMM (IR v1), `cg` for a Gram-domain cg net
    /// (IR v2), whose `bits` are the widths of x/r, p and d and `tensor_bits` those of H̃, e
    /// and G.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Layers K.
    pub layers: usize,
    /// Activation bits per layer.
    pub bits: Vec<u32>,
    /// Bits of H̃, e and g.
    pub tensor_bits: [u32; 3],
    /// Bits of ỹ.
    #[serde(default = "default_y_bits")]
    pub y_bits: u32,
    /// The `--refine` method that fine-tuned it (absent: the search's `--method`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refined: Option<String>,
    /// The IR's name.
    pub name: String,
    /// BER at each target SNR.
    pub ber: Vec<f64>,
    /// Bit errors at each target SNR.
    pub bit_errors: Vec<u64>,
    /// Bits simulated at each target SNR.
    pub bits_simulated: Vec<u64>,
    /// Model 1 (paper eqs. 7–11) pJ per bit.
    pub m1_pj_per_bit: f64,
    /// Model 2 (45 nm per operation) pJ per bit.
    pub m2_pj_per_bit: f64,
    /// Per lane count.
    pub hardware: Vec<Hardware>,
}

/// The default width of ỹ (`kaq_model::quant::QuantConfig`).
fn default_y_bits() -> u32 {
    10
}

impl Record {
    /// The candidate: the layers' bits, then those of H̃, e, g and ỹ.
    pub fn candidate(&self) -> Vec<u32> {
        let mut v = self.bits.clone();
        v.extend(self.tensor_bits);
        v.push(self.y_bits);
        v
    }

    /// Its key in the store: teacher, candidate, refining method.
    fn key(&self) -> Key {
        (self.teacher, self.candidate(), self.refined.clone())
    }

    /// The mean BER over the target SNRs: the BER objective.
    pub fn mean_ber(&self) -> f64 {
        self.ber.iter().sum::<f64>() / self.ber.len().max(1) as f64
    }
}

/// Indices of the points of `points` (both coordinates minimized) that no other point
/// dominates (≤ in both, < in one), in ascending x. Points with a non-finite coordinate are
/// left out. Equal points are all kept. O(n log n): sort by (x, y), then sweep.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].0.is_finite() && points[i].1.is_finite())
        .collect();
    order.sort_by(|&a, &b| {
        points[a]
            .0
            .total_cmp(&points[b].0)
            .then(points[a].1.total_cmp(&points[b].1))
            .then(a.cmp(&b))
    });
    let mut front = Vec::new();
    let mut best = f64::INFINITY;
    let mut i = 0;
    while i < order.len() {
        let x = points[order[i]].0;
        let y = points[order[i]].1;
        let mut j = i;
        while j < order.len() && points[order[j]].0 == x {
            j += 1;
        }
        // The group of equal x: only its least y can be on the front, and only below every
        // y at smaller x.
        if y < best {
            front.extend(order[i..j].iter().copied().filter(|&k| points[k].1 == y));
            best = y;
        }
        i = j;
    }
    front
}

/// Every vector over the per-coordinate `grids` (each ascending), in lexicographic order.
fn all_vectors(grids: &[Vec<u32>]) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new()];
    for grid in grids {
        out = out
            .into_iter()
            .flat_map(|v| {
                grid.iter().map(move |&w| {
                    let mut v = v.clone();
                    v.push(w);
                    v
                })
            })
            .collect();
    }
    out
}

/// The greedy step's neighbours of `at`: each coordinate lowered to its next narrower width.
fn narrower(grids: &[Vec<u32>], at: &[u32]) -> Vec<Vec<u32>> {
    (0..at.len())
        .filter_map(|k| {
            let lower = grids[k].iter().rev().find(|&&w| w < at[k])?;
            let mut v = at.to_vec();
            v[k] = *lower;
            Some(v)
        })
        .collect()
}

/// The grid of every coordinate of a K-layer candidate: K layers, then H̃, e, g, ỹ.
fn grids_of(args: &ExploreArgs, layers: usize) -> Vec<Vec<u32>> {
    let sorted = |v: &[u32]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.dedup();
        v
    };
    let mut g = vec![sorted(&args.bits); layers];
    g.push(sorted(&args.h_bits));
    g.push(sorted(&args.e_bits));
    g.push(sorted(&args.g_bits));
    g.push(sorted(&args.y_bits));
    g
}

/// The SNR loss in dB of a design with BERs `ber` against a reference with BERs `reference`,
/// both at the ascending SNRs `snr`: at each SNR s, the SNR s′ at which the reference reaches
/// the design's BER (log-linear interpolation between the reference's points, extrapolated
/// along its end segments), and the mean of s − s′. Positive: the design needs more SNR.
/// `None` with fewer than two SNRs, a BER of 0, or a reference that does not fall with the SNR.
pub fn snr_loss_db(snr: &[f64], reference: &[f64], ber: &[f64]) -> Option<f64> {
    if snr.len() < 2 || reference.len() != snr.len() || ber.len() != snr.len() {
        return None;
    }
    if reference
        .iter()
        .chain(ber)
        .any(|&b| b <= 0.0 || !b.is_finite())
    {
        return None;
    }
    let lr: Vec<f64> = reference.iter().map(|b| b.ln()).collect();
    // Segments of the reference with a falling BER.
    let segs: Vec<usize> = (0..snr.len() - 1)
        .filter(|&i| lr[i + 1] < lr[i] && snr[i + 1] > snr[i])
        .collect();
    let (&first, &last) = (segs.first()?, segs.last()?);
    let mut total = 0.0;
    for (i, &b) in ber.iter().enumerate() {
        let t = b.ln();
        // The segment bracketing t, else the end segment on its side.
        let seg = segs
            .iter()
            .copied()
            .find(|&j| t <= lr[j] && t >= lr[j + 1])
            .unwrap_or(if t > lr[first] { first } else { last });
        let slope = (lr[seg + 1] - lr[seg]) / (snr[seg + 1] - snr[seg]);
        let at = snr[seg] + (t - lr[seg]) / slope;
        total += snr[i] - at;
    }
    Some(total / snr.len() as f64)
}

/// What the configuration hash covers: everything that changes a record.
#[derive(Serialize)]
struct ConfigKey<'a> {
    tool: &'static str,
    version: &'static str,
    teachers: Vec<String>,
    method: String,
    snr: &'a [f64],
    frames: u64,
    min_errors: u64,
    seed: u64,
    samples: usize,
    epochs: usize,
    lanes: &'a [usize],
    tensor_grids: [&'a [u32]; 3],
    /// Absent at the default grid, so that results of earlier runs stay valid.
    #[serde(skip_serializing_if = "is_default_y")]
    y_grid: &'a [u32],
    /// The cg grids and block length, present only with a cg teacher.
    #[serde(skip_serializing_if = "Option::is_none")]
    cg: Option<(Vec<Vec<u32>>, usize)>,
    /// `--cg-gi-per-layer`; absent when not given, so that earlier results stay valid.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cg_gi_per_layer: bool,
    /// With a cg teacher, the v2 area estimate and the per-lane cycles (a cg record of an
    /// earlier run has one lane and no area: it is evaluated again).
    #[serde(skip_serializing_if = "Option::is_none")]
    cg_area: Option<&'static str>,
}

fn is_default_y(g: &&[u32]) -> bool {
    *g == [default_y_bits()]
}

/// What the hash of the refined records covers beyond the search's configuration.
#[derive(Serialize)]
struct RefineKey<'a> {
    search: &'a str,
    method: String,
    epochs: usize,
    lr: f64,
    lr_step: usize,
}

/// A record's key: teacher, candidate, refining method.
type Key = (usize, Vec<u32>, Option<String>);

/// Fine-tuning learning rate and halving period of `--refine` (`kaq train --quant`'s).
const REFINE_LR: f64 = 2e-4;
const REFINE_LR_STEP: usize = 5;

/// The candidates evaluated so far, by (teacher, bits), with the results file.
struct Store {
    path: PathBuf,
    config: String,
    /// The configuration hash of the `--refine` records, if any.
    refine_config: Option<String>,
    text: String,
    records: BTreeMap<Key, Record>,
}

impl Store {
    /// Rereads `path` (absent: empty); a record of another configuration is refused.
    fn open(path: &Path, config: &str, refine_config: Option<&str>) -> anyhow::Result<Self> {
        let text = if path.exists() {
            super::args::read_input("--out", path)?
        } else {
            String::new()
        };
        let mut records = BTreeMap::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let r: Record = serde_json::from_str(line).map_err(|e| {
                usage_error(
                    "--out",
                    format!(
                        "{} line {}: not a kaq explore record: {e}",
                        path.display(),
                        i + 1
                    ),
                )
            })?;
            let ours = match &r.refined {
                None => r.config == config,
                Some(_) => Some(r.config.as_str()) == refine_config,
            };
            if !ours {
                return Err(usage_error(
                    "--out",
                    format!(
                        "{} holds results of another configuration (line {}); give another \
                         directory or remove the file",
                        path.display(),
                        i + 1
                    ),
                ));
            }
            records.insert(r.key(), r);
        }
        Ok(Self {
            path: path.to_path_buf(),
            config: config.to_string(),
            refine_config: refine_config.map(str::to_string),
            text,
            records,
        })
    }

    /// Appends `r` by rewriting the file atomically.
    fn push(&mut self, r: Record) -> anyhow::Result<()> {
        let line = serde_json::to_string(&r).expect("a record serializes");
        let mut text = self.text.clone();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&line);
        text.push('\n');
        write_atomically(&self.path, text.as_bytes())?;
        self.text = text;
        self.records.insert(r.key(), r);
        Ok(())
    }
}

/// One teacher and what evaluating a candidate of it needs.
enum Teacher {
    /// A PGD/ADMM net (IR v1).
    Unfolded(UnfoldedNet),
    /// A Gram-domain cg net (IR v2).
    Cg(kaq_model::gram::GramNet),
}

impl Teacher {
    fn layers(&self) -> usize {
        match self {
            Self::Unfolded(n) => n.config().layers,
            Self::Cg(n) => n.config().layers,
        }
    }
}

struct Evaluator<'a> {
    args: &'a ExploreArgs,
    teachers: Vec<Teacher>,
    store: Store,
    bar: indicatif::ProgressBar,
    evaluated: u64,
}

impl Evaluator<'_> {
    /// The record of `candidate` on teacher `t` (fine-tuned by `refine`, else quantized by
    /// the search's method): from the store, or evaluated and appended.
    fn get(
        &mut self,
        t: usize,
        candidate: &[u32],
        refine: Option<QuantMethod>,
    ) -> anyhow::Result<Record> {
        let key = (t, candidate.to_vec(), refine.map(|m| m.to_string()));
        if let Some(r) = self.store.records.get(&key) {
            self.bar.inc(1);
            return Ok(r.clone());
        }
        let (bits, tensors) = candidate.split_at(candidate.len() - 4);
        let tensors = [tensors[0], tensors[1], tensors[2], tensors[3]];
        let label = format!(
            "{} (H {}, e {}, g {}, y {}){}",
            bits_label(bits),
            tensors[0],
            tensors[1],
            tensors[2],
            tensors[3],
            refine.map_or(String::new(), |m| format!(" refined by {m}"))
        );
        self.bar
            .set_message(format!("teacher {} bits {label}", t + 1));
        let config = match refine {
            None => self.store.config.clone(),
            Some(_) => self
                .store
                .refine_config
                .clone()
                .expect("a refine run has a refine configuration"),
        };
        let r = match &self.teachers[t] {
            Teacher::Unfolded(net) => evaluate(self.args, net, t, bits, tensors, refine, &config),
            Teacher::Cg(net) => evaluate_cg(self.args, net, t, bits, tensors, refine, &config),
        }
        .with_context(|| format!("evaluating teacher {} at --bits {label}", t + 1))?;
        self.store.push(r.clone())?;
        self.evaluated += 1;
        self.bar.inc(1);
        Ok(r)
    }
}

/// Quantizes, lowers and measures one candidate.
fn evaluate(
    args: &ExploreArgs,
    teacher: &UnfoldedNet,
    t: usize,
    bits: &[u32],
    tensor_bits: [u32; 4],
    refine: Option<QuantMethod>,
    config: &str,
) -> anyhow::Result<Record> {
    let mut train = TrainConfig {
        link: teacher.link().clone(),
        net: teacher.config().clone(),
        samples: args.samples,
        val_samples: args.samples.clamp(1, 1_000),
        epochs: args.epochs.max(1),
        seed: args.seed,
        val_ber_snr_db: args.snr.clone(),
        val_ber_frames: 200,
        ..TrainConfig::default()
    };
    if refine.is_some() {
        train.epochs = args.refine_epochs.max(1);
        train.lr = REFINE_LR;
        train.lr_step = REFINE_LR_STEP;
    }
    let mut qt = QuantTrainConfig::fine_tuning(train, bits[0], KaqConfig::default());
    qt.quant = QuantConfig::with_layer_bits(bits);
    qt.quant.h.bits = tensor_bits[0];
    qt.quant.e.bits = tensor_bits[1];
    qt.quant.g.bits = tensor_bits[2];
    qt.quant.y.bits = tensor_bits[3];
    let run = train_quantized(teacher, refine.unwrap_or(args.method), &qt, &mut |_| {})?;
    let ir = lower(&run.net, LowerOptions::default())?;
    let energy = kaq_ir::energy::estimate(&ir);
    let mut hardware = Vec::with_capacity(args.lanes.len());
    for &lanes in &args.lanes {
        let design = kaq_codegen::lower(&ir, lanes, "kaq_top")?;
        let area = kaq_codegen::estimate::estimate(&design).total;
        let cycles = kaq_codegen::report::analyse(&design)
            .total
            .cycles_per_frame();
        hardware.push(Hardware::estimated(
            lanes,
            [area.lut, area.ff, area.dsp],
            cycles,
            energy.bits_per_vector,
        ));
    }
    let interp = Interpreter::new(ir.clone())?;
    let points = measure_ber(args, teacher.link(), &interp)?;
    Ok(Record {
        config: config.to_string(),
        teacher: t,
        family: None,
        layers: bits.len(),
        bits: bits.to_vec(),
        tensor_bits: [tensor_bits[0], tensor_bits[1], tensor_bits[2]],
        y_bits: tensor_bits[3],
        refined: refine.map(|m| m.to_string()),
        name: ir.name.clone(),
        ber: points.iter().map(|p| p.ber).collect(),
        bit_errors: points.iter().map(|p| p.bit_errors).collect(),
        bits_simulated: points.iter().map(|p| p.bits).collect(),
        m1_pj_per_bit: energy.paper.pj_per_bit,
        m2_pj_per_bit: energy.horowitz.pj_per_bit,
        hardware,
    })
}

/// The BER of one candidate's golden model at the run's SNR points, stopping rule and seed.
fn measure_ber(
    args: &ExploreArgs,
    link: &kaq_model::LinkConfig,
    detector: &dyn kaq_model::Detector,
) -> anyhow::Result<Vec<kaq_model::ber::BerPoint>> {
    let ber = BerConfig::new(
        link.clone(),
        args.snr.clone(),
        args.min_errors,
        args.frames,
        args.seed,
    );
    Ok(simulate(&ber, &[detector], None)?)
}

/// PTQ-lowers and measures one candidate of a cg teacher: `bits` = widths of x/r, p, d and
/// the inner G widths (`cg_grids`);
/// `tensor_bits` = H̃, e (and ρ), G, ỹ; every other class at `CgQuantOptions::new(x bits)`'s
/// default (docs/ir.md §10.6). Energy by `kaq_ir::gram::gram_energy` at `--block`; per
/// `--lanes` the v2 area estimate (`kaq_codegen::estimate::gram`) and the cycles of the v2
/// cycle model at that many MAC lanes.
fn evaluate_cg(
    args: &ExploreArgs,
    teacher: &kaq_model::gram::GramNet,
    t: usize,
    bits: &[u32],
    tensor_bits: [u32; 4],
    refine: Option<QuantMethod>,
    config: &str,
) -> anyhow::Result<Record> {
    use kaq_model::gram::quantized::{CgQuantOptions, CgTensor, lower_cg};
    if refine.is_some() || args.method != QuantMethod::Ptq {
        anyhow::bail!("a cg teacher is quantized by ptq only (no --refine, --method ptq)");
    }
    let mut opts = CgQuantOptions::new(bits[0]);
    // The inner G widths: one for every layer, or one per layer (`cg_grids`).
    opts.g_inner = CgQuantOptions::g_inner_per_layer(&bits[3..], teacher.config().layers)
        .expect("cg_grids gives no, one or one per layer inner G coordinates");
    opts.widths.extend([
        (CgTensor::P, bits[1]),
        (CgTensor::D, bits[2]),
        (CgTensor::H, tensor_bits[0]),
        (CgTensor::E, tensor_bits[1]),
        (CgTensor::G, tensor_bits[2]),
        (CgTensor::Z, opts.wide_bits),
        (CgTensor::Y, tensor_bits[3]),
    ]);
    let ir = lower_cg(teacher, &opts)?;
    let energy = kaq_ir::gram::gram_energy(&ir, args.block);
    // Per lane count: the v2 area estimate from the generated top and the cycle model.
    let mut hardware = Vec::with_capacity(args.lanes.len());
    for &lanes in &args.lanes {
        let prog = kaq_codegen::gram::Program::with_lanes(&ir, lanes);
        let area = kaq_codegen::estimate::gram::estimate_top(&kaq_codegen::gram::verilog::top(
            &prog, "kaq_top",
        ))
        .map_err(anyhow::Error::msg)?;
        let cycles =
            kaq_codegen::gram::stream_cycles(&prog, args.block as u64) as f64 / args.block as f64;
        hardware.push(Hardware::estimated(
            lanes,
            [area.lut, area.ff, area.dsp],
            cycles,
            energy.bits_per_vector,
        ));
    }
    let interp = kaq_ir::gram::GramInterpreter::new(ir.clone())?;
    let points = measure_ber(args, teacher.link(), &interp)?;
    Ok(Record {
        config: config.to_string(),
        teacher: t,
        family: Some("cg".to_string()),
        layers: teacher.config().layers,
        bits: bits.to_vec(),
        tensor_bits: [tensor_bits[0], tensor_bits[1], tensor_bits[2]],
        y_bits: tensor_bits[3],
        refined: None,
        name: ir.name.clone(),
        ber: points.iter().map(|p| p.ber).collect(),
        bit_errors: points.iter().map(|p| p.bit_errors).collect(),
        bits_simulated: points.iter().map(|p| p.bits).collect(),
        m1_pj_per_bit: energy.paper.pj_per_bit,
        m2_pj_per_bit: energy.horowitz.pj_per_bit,
        hardware,
    })
}

/// The grids of a cg candidate of a `layers`-layer teacher: x/r, p, d, the inner G widths
/// (none without `--cg-gi-bits`; one, or one per layer with `--cg-gi-per-layer`), then H̃, e,
/// G, ỹ.
fn cg_grids(args: &ExploreArgs, layers: usize) -> Vec<Vec<u32>> {
    let gi = match (args.cg_gi_bits.is_empty(), args.cg_gi_per_layer) {
        (true, _) => 0,
        (false, false) => 1,
        (false, true) => layers,
    };
    let mut grids: Vec<&[u32]> = vec![&args.cg_bits, &args.cg_p_bits, &args.cg_d_bits];
    grids.extend(std::iter::repeat_n(args.cg_gi_bits.as_slice(), gi));
    grids.extend([
        args.cg_h_bits.as_slice(),
        &args.cg_e_bits,
        &args.cg_g_bits,
        &args.cg_y_bits,
    ]);
    grids
        .iter()
        .map(|v| {
            let mut v = v.to_vec();
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect()
}

/// The reference candidate of a grid: every coordinate at its widest.
fn reference_of(grid: &[Vec<u32>]) -> Vec<u32> {
    grid.iter()
        .map(|g| *g.last().expect("a grid is not empty"))
        .collect()
}

/// The successive Pareto fronts (non-dominated sorting) of `points`, at most `depth` of them.
fn front_layers(points: &[(f64, f64)], depth: usize) -> Vec<Vec<usize>> {
    let mut left: Vec<usize> = (0..points.len()).collect();
    let mut layers = Vec::new();
    while layers.len() < depth && !left.is_empty() {
        let sub: Vec<(f64, f64)> = left.iter().map(|&i| points[i]).collect();
        let front: Vec<usize> = pareto_front(&sub).into_iter().map(|j| left[j]).collect();
        if front.is_empty() {
            break;
        }
        left.retain(|i| !front.contains(i));
        layers.push(front);
    }
    layers
}

/// The candidates of teacher `t` that `--refine` fine-tunes: those on the first `depth`
/// fronts of model 2 energy against mean BER of the search's records, and the reference;
/// ascending, without repeats.
fn refine_set(records: &[Record], t: usize, grid: &[Vec<u32>], depth: usize) -> Vec<Vec<u32>> {
    let own: Vec<&Record> = records
        .iter()
        .filter(|r| r.teacher == t && r.refined.is_none())
        .collect();
    let xy: Vec<(f64, f64)> = own
        .iter()
        .map(|r| (r.m2_pj_per_bit, r.mean_ber()))
        .collect();
    let mut picked: Vec<Vec<u32>> = front_layers(&xy, depth)
        .into_iter()
        .flatten()
        .map(|i| own[i].candidate())
        .collect();
    picked.push(reference_of(grid));
    picked.sort_unstable();
    picked.dedup();
    picked
}

/// The target SNRs' order, ascending.
fn snr_order(snr: &[f64]) -> Vec<usize> {
    let mut o: Vec<usize> = (0..snr.len()).collect();
    o.sort_by(|&a, &b| snr[a].total_cmp(&snr[b]));
    o
}

/// Each record's SNR loss (`snr_loss_db`) against the reference of its teacher and method.
fn losses(records: &[Record], grids: &[Vec<Vec<u32>>], snr: &[f64]) -> Vec<Option<f64>> {
    let order = snr_order(snr);
    let sorted = |v: &[f64]| order.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    let s = sorted(snr);
    records
        .iter()
        .map(|r| {
            let want = reference_of(&grids[r.teacher]);
            let reference = records.iter().find(|q| {
                q.teacher == r.teacher && q.refined == r.refined && q.candidate() == want
            })?;
            snr_loss_db(&s, &sorted(&reference.ber), &sorted(&r.ber))
        })
        .collect()
}

/// Per teacher and method, the design of least model 2 energy within `max_loss` dB of the
/// reference, with its saving in both models.
fn summary(
    records: &[Record],
    losses: &[Option<f64>],
    grids: &[Vec<Vec<u32>>],
    method: &str,
    max_loss: f64,
) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let mut groups: Vec<(usize, Option<String>)> = records
        .iter()
        .map(|r| (r.teacher, r.refined.clone()))
        .collect();
    groups.sort_unstable();
    groups.dedup();
    for (t, refined) in groups {
        let name = refined.clone().unwrap_or_else(|| method.to_string());
        let want = reference_of(&grids[t]);
        let Some(reference) = records
            .iter()
            .find(|q| q.teacher == t && q.refined == refined && q.candidate() == want)
        else {
            continue;
        };
        let best = records
            .iter()
            .zip(losses)
            .filter(|(r, l)| {
                r.teacher == t && r.refined == refined && l.is_some_and(|l| l <= max_loss)
            })
            .min_by(|a, b| a.0.m2_pj_per_bit.total_cmp(&b.0.m2_pj_per_bit));
        let Some((r, l)) = best else { continue };
        let saving = |a: f64, b: f64| 100.0 * (1.0 - a / b);
        let _ = writeln!(
            s,
            "teacher {} ({name}): least model 2 energy within {max_loss} dB of the reference \
             {} (H,e,g,y {},{}): {} (H,e,g,y {},{}), loss {:+.3} dB, model 2 {:.3} vs {:.3} \
             pJ/bit ({:.1} % less), model 1 {:.3} vs {:.3} pJ/bit ({:.1} % less)",
            t + 1,
            bits_label(&reference.bits),
            bits_label(&reference.tensor_bits),
            reference.y_bits,
            bits_label(&r.bits),
            bits_label(&r.tensor_bits),
            r.y_bits,
            l.unwrap_or(0.0),
            r.m2_pj_per_bit,
            reference.m2_pj_per_bit,
            saving(r.m2_pj_per_bit, reference.m2_pj_per_bit),
            r.m1_pj_per_bit,
            reference.m1_pj_per_bit,
            saving(r.m1_pj_per_bit, reference.m1_pj_per_bit),
        );
    }
    s
}

/// One point of a front: a record at one lane count.
#[derive(Debug, Clone, Serialize)]
struct FrontPoint {
    teacher: usize,
    /// `pgd` (IR v1, also ADMM) or `cg`.
    family: String,
    layers: usize,
    bits: Vec<u32>,
    tensor_bits: [u32; 3],
    y_bits: u32,
    /// The search's method, or the `--refine` method.
    method: String,
    lanes: usize,
    mean_ber: f64,
    /// SNR loss against the reference of its teacher and method, dB.
    snr_loss_db: Option<f64>,
    m1_pj_per_bit: f64,
    m2_pj_per_bit: f64,
    lut: Option<u64>,
    bits_per_cycle: f64,
}

impl FrontPoint {
    /// LUTs as a coordinate (NaN without an estimate: left off the LUT fronts).
    fn lut_x(&self) -> f64 {
        self.lut.map_or(f64::NAN, |l| l as f64)
    }
}

fn front_points(records: &[Record], losses: &[Option<f64>], method: &str) -> Vec<FrontPoint> {
    records
        .iter()
        .zip(losses)
        .flat_map(|(r, &loss)| {
            r.hardware.iter().map(move |h| FrontPoint {
                teacher: r.teacher,
                family: r.family.clone().unwrap_or_else(|| "pgd".to_string()),
                layers: r.layers,
                bits: r.bits.clone(),
                tensor_bits: r.tensor_bits,
                y_bits: r.y_bits,
                method: r.refined.clone().unwrap_or_else(|| method.to_string()),
                lanes: h.lanes,
                mean_ber: r.mean_ber(),
                snr_loss_db: loss,
                m1_pj_per_bit: r.m1_pj_per_bit,
                m2_pj_per_bit: r.m2_pj_per_bit,
                lut: h.lut,
                bits_per_cycle: h.bits_per_cycle,
            })
        })
        .collect()
}

/// The fronts of the run: (name, x label, y label, the front's points).
type Front = (&'static str, Vec<FrontPoint>);

fn fronts(points: &[FrontPoint]) -> Vec<Front> {
    let pick = |f: &dyn Fn(&FrontPoint) -> (f64, f64)| -> Vec<FrontPoint> {
        let xy: Vec<(f64, f64)> = points.iter().map(f).collect();
        pareto_front(&xy)
            .into_iter()
            .map(|i| points[i].clone())
            .collect()
    };
    vec![
        ("ber_vs_m2", pick(&|p| (p.m2_pj_per_bit, p.mean_ber))),
        ("ber_vs_m1", pick(&|p| (p.m1_pj_per_bit, p.mean_ber))),
        ("ber_vs_lut", pick(&|p| (p.lut_x(), p.mean_ber))),
        (
            "throughput_vs_lut",
            pick(&|p| (p.lut_x(), -p.bits_per_cycle)),
        ),
    ]
}

fn bits_label(bits: &[u32]) -> String {
    bits.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The table of the BER-vs-energy front (model 2), with model 1 beside.
fn front_table(front: &[FrontPoint], snr: &[f64], records: &[Record]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let snrs = snr
        .iter()
        .map(|v| format!("{v} dB"))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        s,
        "Pareto front, mean BER at {snrs} against pJ/bit (model 2; model 1 beside), {} candidates",
        records.len()
    );
    let _ = writeln!(
        s,
        "{:<3} {:>2} {:<20} {:>11} {:<7} {:>5} {:>11} {:>8} {:>10} {:>10} {:>8} {:>9}",
        "fam",
        "K",
        "bits",
        "H,e,g,y",
        "method",
        "lanes",
        "mean BER",
        "loss dB",
        "m2 pJ/bit",
        "m1 pJ/bit",
        "LUT",
        "bit/cycle"
    );
    for p in front {
        let _ = writeln!(
            s,
            "{:<3} {:>2} {:<20} {:>11} {:<7} {:>5} {:>11.3e} {:>8} {:>10.3} {:>10.3} {:>8} {:>9.3}",
            p.family,
            p.layers,
            bits_label(&p.bits),
            format!("{},{}", bits_label(&p.tensor_bits), p.y_bits),
            p.method,
            p.lanes,
            p.mean_ber,
            p.snr_loss_db
                .map_or("-".to_string(), |l| format!("{l:+.3}")),
            p.m2_pj_per_bit,
            p.m1_pj_per_bit,
            p.lut.map_or("-".to_string(), |l| l.to_string()),
            p.bits_per_cycle
        );
    }
    let mixed = front
        .iter()
        .filter(|p| p.bits.iter().any(|&b| b != p.bits[0]));
    let _ = writeln!(
        s,
        "{} of {} front points are mixed precision",
        mixed.count(),
        front.len()
    );
    s
}

fn series(name: &str, mut pts: Vec<(f64, f64)>) -> Series {
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    Series {
        name: name.to_string(),
        points: pts,
        y_err: None,
    }
}

/// Writes the SVG plots; returns how many (the LUT plots need an area estimate).
fn plots(dir: &Path, points: &[FrontPoint], fronts: &[Front]) -> anyhow::Result<usize> {
    let uniform: Vec<&FrontPoint> = points
        .iter()
        .filter(|p| p.bits.iter().all(|&b| b == p.bits[0]))
        .collect();
    let get = |name: &str| {
        &fronts
            .iter()
            .find(|f| f.0 == name)
            .expect("every front is computed")
            .1
    };
    let xy = |ps: &[&FrontPoint], f: &dyn Fn(&FrontPoint) -> (f64, f64)| -> Vec<(f64, f64)> {
        ps.iter()
            .map(|p| f(p))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect()
    };
    let m2 = |p: &FrontPoint| (p.m2_pj_per_bit, p.mean_ber);
    let m1 = |p: &FrontPoint| (p.m1_pj_per_bit, p.mean_ber);
    line_plot(
        &dir.join("ber_energy.svg"),
        "Pareto front: mean BER against energy per bit",
        "energy (pJ/bit)",
        "mean BER",
        true,
        &[
            series("Pareto front, model 2", xy(&refs(get("ber_vs_m2")), &m2)),
            series("uniform bits, model 2", xy(&uniform, &m2)),
            series("Pareto front, model 1", xy(&refs(get("ber_vs_m1")), &m1)),
            series("uniform bits, model 1", xy(&uniform, &m1)),
        ],
    )?;
    // Records of runs without an area estimate: no LUT plots.
    if points.iter().all(|p| p.lut.is_none()) {
        return Ok(1);
    }
    let lut = |p: &FrontPoint| (p.lut_x(), p.mean_ber);
    line_plot(
        &dir.join("ber_lut.svg"),
        "Pareto front: mean BER against LUTs (xc7 estimate)",
        "LUTs",
        "mean BER",
        true,
        &[
            series("Pareto front", xy(&refs(get("ber_vs_lut")), &lut)),
            series("uniform bits", xy(&uniform, &lut)),
        ],
    )?;
    let tp = |p: &FrontPoint| (p.lut_x(), p.bits_per_cycle);
    line_plot(
        &dir.join("throughput_area.svg"),
        "Pareto front: throughput against LUTs (xc7 estimate)",
        "LUTs",
        "throughput (bit/cycle)",
        false,
        &[series(
            "Pareto front",
            xy(&refs(get("throughput_vs_lut")), &tp),
        )],
    )?;
    Ok(3)
}

/// The lower-case hex digits of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn refs(v: &[FrontPoint]) -> Vec<&FrontPoint> {
    v.iter().collect()
}

/// Runs `kaq explore`.
pub fn run(args: ExploreArgs) -> anyhow::Result<()> {
    if args.lanes.is_empty() || args.lanes.contains(&0) {
        return Err(usage_error("--lanes", "lane counts must be at least 1"));
    }
    if args.frames == 0 {
        return Err(usage_error("--frames", "must be at least 1"));
    }
    if args.min_errors == 0 {
        return Err(usage_error("--min-errors", "must be at least 1"));
    }
    if args.samples == 0 {
        return Err(usage_error("--samples", "must be at least 1"));
    }
    if args.refine.is_some_and(|m| !m.trains()) {
        return Err(usage_error(
            "--refine",
            "ptq does not fine-tune; give qat-mse, lsq or kaq",
        ));
    }
    if args.refine_fronts == 0 {
        return Err(usage_error("--refine-fronts", "must be at least 1"));
    }
    if args.stop_loss_db.is_some_and(|l| !l.is_finite()) {
        return Err(usage_error(
            "--stop-loss-db",
            "must be a finite number of dB",
        ));
    }
    if !(args.max_loss_db.is_finite() && args.max_loss_db >= 0.0) {
        return Err(usage_error(
            "--max-loss-db",
            "must be a finite number of dB, at least 0",
        ));
    }
    let mut teachers = Vec::with_capacity(args.teachers.len());
    let mut hashes = Vec::with_capacity(args.teachers.len());
    if !(1..=65_535).contains(&args.block) {
        return Err(usage_error("--block", "must be between 1 and 65535"));
    }
    for path in &args.teachers {
        let text = super::args::read_input("--teacher", path)?;
        let is_gram = serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| {
            v.get("format").and_then(|f| f.as_str()) == Some(kaq_model::gram::file::GRAM_FORMAT)
        });
        if is_gram {
            let file = kaq_model::gram::file::GramModelFile::from_json(&text, path)
                .with_context(|| format!("--teacher {}", path.display()))?;
            if file.net.config().family != kaq_model::gram::Family::Cg {
                return Err(usage_error(
                    "--teacher",
                    format!(
                        "{}: only the cg family of the Gram-domain nets lowers to an IR",
                        path.display()
                    ),
                ));
            }
            if args.method != QuantMethod::Ptq || args.refine.is_some() {
                return Err(usage_error(
                    if args.refine.is_some() {
                        "--refine"
                    } else {
                        "--method"
                    },
                    format!(
                        "{} is a cg net: it is quantized by ptq only",
                        path.display()
                    ),
                ));
            }
            if let Some(&l) = args
                .lanes
                .iter()
                .find(|&&l| l > kaq_codegen::gram::MAX_LANES)
            {
                return Err(usage_error(
                    "--lanes",
                    format!(
                        "{l} is more than the {} MAC lanes of a cg design ({})",
                        kaq_codegen::gram::MAX_LANES,
                        path.display()
                    ),
                ));
            }
            hashes.push(hex(&Sha256::digest(text.as_bytes())));
            teachers.push(Teacher::Cg(file.net));
            continue;
        }
        let file = ModelFile::from_json(&text, path)
            .with_context(|| format!("--teacher {}", path.display()))?;
        let n = file.net.link().n();
        if let Some(&l) = args
            .lanes
            .iter()
            .find(|&&l| kaq_codegen::resolve_lanes(n, Some(l)).is_err())
        {
            return Err(usage_error(
                "--lanes",
                format!("{l} does not divide N = {n} of {}", path.display()),
            ));
        }
        hashes.push(hex(&Sha256::digest(text.as_bytes())));
        teachers.push(Teacher::Unfolded(file.net));
    }
    let key = ConfigKey {
        tool: "kaq explore",
        version: env!("CARGO_PKG_VERSION"),
        teachers: hashes,
        method: args.method.to_string(),
        snr: &args.snr,
        frames: args.frames,
        min_errors: args.min_errors,
        seed: args.seed,
        samples: args.samples,
        epochs: args.epochs,
        lanes: &args.lanes,
        tensor_grids: [&args.h_bits, &args.e_bits, &args.g_bits],
        y_grid: &args.y_bits,
        cg: teachers
            .iter()
            .any(|t| matches!(t, Teacher::Cg(_)))
            .then(|| (cg_grids(&args, 1), args.block)),
        cg_gi_per_layer: args.cg_gi_per_layer,
        cg_area: teachers
            .iter()
            .any(|t| matches!(t, Teacher::Cg(_)))
            .then_some("estimate::gram, lanes"),
    };
    let config = hex(&Sha256::digest(
        serde_json::to_string(&key).expect("the key serializes"),
    ));
    let refine_config = args.refine.map(|m| {
        let key = RefineKey {
            search: &config,
            method: m.to_string(),
            epochs: args.refine_epochs.max(1),
            lr: REFINE_LR,
            lr_step: REFINE_LR_STEP,
        };
        hex(&Sha256::digest(
            serde_json::to_string(&key).expect("the key serializes"),
        ))
    });
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("--out: cannot create {}", args.out.display()))?;
    for name in [
        RESULTS_FILE,
        "pareto.md",
        "pareto.json",
        "ber_energy.svg",
        "ber_lut.svg",
        "throughput_area.svg",
    ] {
        crate::plot::check_writable(&args.out.join(name))?;
    }
    let store = Store::open(
        &args.out.join(RESULTS_FILE),
        &config,
        refine_config.as_deref(),
    )?;
    let resumed = store.records.len();
    let grids: Vec<Vec<Vec<u32>>> = teachers
        .iter()
        .map(|t| match t {
            Teacher::Unfolded(_) => grids_of(&args, t.layers()),
            Teacher::Cg(_) => cg_grids(&args, t.layers()),
        })
        .collect();
    let sizes: Vec<u64> = grids
        .iter()
        .map(|g| g.iter().fold(1u64, |n, c| n.saturating_mul(c.len() as u64)))
        .collect();
    let plans: Vec<bool> = sizes.iter().map(|&n| n <= args.exhaustive).collect();
    // The exhaustive grids, plus the start of each greedy path (its steps add their
    // neighbours to the bar as they are known).
    let total: u64 = sizes
        .iter()
        .zip(&plans)
        .map(|(&n, &ex)| if ex { n } else { 1 })
        .sum();
    let bar = crate::progress::bar("explore", total, "candidates");
    let mut ev = Evaluator {
        args: &args,
        teachers,
        store,
        bar,
        evaluated: 0,
    };
    let job = |ev: &mut Evaluator<'_>| -> anyhow::Result<Vec<Record>> {
        let mut records = Vec::new();
        for (t, &exhaustive) in plans.iter().enumerate() {
            let grid = &grids[t];
            if exhaustive {
                for c in all_vectors(grid) {
                    records.push(ev.get(t, &c, None)?);
                }
            } else {
                let mut at: Vec<u32> = grid
                    .iter()
                    .map(|g| *g.last().expect("a grid is not empty"))
                    .collect();
                let start = ev.get(t, &at, None)?;
                records.push(start.clone());
                let order = snr_order(&ev.args.snr);
                let sorted = |v: &[f64]| order.iter().map(|&i| v[i]).collect::<Vec<f64>>();
                let mut cur = start.clone();
                loop {
                    let next = narrower(grid, &at);
                    if next.is_empty() {
                        break;
                    }
                    ev.bar.inc_length(next.len() as u64);
                    let mut best: Option<Record> = None;
                    for c in next {
                        let r = ev.get(t, &c, None)?;
                        let better = best.as_ref().is_none_or(|b| match ev.args.greedy_by {
                            GreedyBy::Ber => {
                                (r.mean_ber(), r.m2_pj_per_bit) < (b.mean_ber(), b.m2_pj_per_bit)
                            }
                            GreedyBy::Efficiency => {
                                efficiency(&cur, &r).total_cmp(&efficiency(&cur, b)).is_lt()
                            }
                        });
                        records.push(r.clone());
                        if better {
                            best = Some(r);
                        }
                    }
                    let best = best.expect("a step has a neighbour");
                    at = best.candidate();
                    cur = best.clone();
                    if let Some(stop) = ev.args.stop_loss_db {
                        let loss = snr_loss_db(
                            &sorted(&ev.args.snr),
                            &sorted(&start.ber),
                            &sorted(&best.ber),
                        );
                        if loss.is_none_or(|l| l > stop) {
                            break;
                        }
                    }
                }
            }
        }
        if let Some(method) = ev.args.refine {
            for (t, grid) in grids.iter().enumerate() {
                let picked = refine_set(&records, t, grid, ev.args.refine_fronts);
                ev.bar.inc_length(picked.len() as u64);
                for c in picked {
                    records.push(ev.get(t, &c, Some(method))?);
                }
            }
        }
        Ok(records)
    };
    let records = match args.threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .context("cannot start the worker threads")?
            .install(|| job(&mut ev))?,
        None => job(&mut ev)?,
    };
    ev.bar.finish_and_clear();
    // One record per candidate, in evaluation order.
    let mut seen = std::collections::BTreeSet::new();
    let records: Vec<Record> = records
        .into_iter()
        .filter(|r| seen.insert(r.key()))
        .collect();
    let losses = losses(&records, &grids, &args.snr);
    let method = args.method.to_string();
    let points = front_points(&records, &losses, &method);
    let fronts = fronts(&points);
    let mut table = front_table(&fronts[0].1, &args.snr, &records);
    table.push_str(&summary(
        &records,
        &losses,
        &grids,
        &method,
        args.max_loss_db,
    ));
    print!("{table}");
    println!(
        "{} candidates evaluated, {} reused from {}",
        ev.evaluated,
        resumed,
        args.out.join(RESULTS_FILE).display()
    );
    let doc = serde_json::json!({
        "tool": "kaq",
        "command": "explore",
        "config": config,
        "method": args.method.to_string(),
        "snr_db": args.snr,
        "bits": args.bits,
        "h_bits": args.h_bits,
        "e_bits": args.e_bits,
        "g_bits": args.g_bits,
        "y_bits": args.y_bits,
        "cg_grids": cg_grids(&args, 1),
        "cg_gi_per_layer": args.cg_gi_per_layer,
        "block": args.block,
        "refine": args.refine.map(|m| m.to_string()),
        "refine_epochs": args.refine_epochs,
        "max_loss_db": args.max_loss_db,
        "stop_loss_db": args.stop_loss_db,
        "greedy_by": format!("{:?}", args.greedy_by).to_lowercase(),
        "lanes": args.lanes,
        "records": records,
        "fronts": fronts.iter().map(|(name, f)| (name.to_string(), serde_json::json!(f))).collect::<serde_json::Map<_, _>>(),
    });
    write_atomically(&args.out.join("pareto.md"), table.as_bytes())?;
    write_atomically(
        &args.out.join("pareto.json"),
        serde_json::to_string_pretty(&doc)
            .expect("the document serializes")
            .as_bytes(),
    )?;
    let svgs = plots(&args.out, &points, &fronts)?;
    println!(
        "wrote pareto.md, pareto.json and {svgs} SVG plot{} to {}",
        if svgs == 1 { "" } else { "s" },
        args.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The brute-force definition: no other point is ≤ in both and < in one.
    fn brute(points: &[(f64, f64)]) -> Vec<usize> {
        let mut v: Vec<usize> = (0..points.len())
            .filter(|&i| {
                let p = points[i];
                !points
                    .iter()
                    .any(|q| q.0 <= p.0 && q.1 <= p.1 && (q.0 < p.0 || q.1 < p.1))
            })
            .collect();
        v.sort_unstable();
        v
    }

    proptest! {
        /// The sweep equals the definition, ties and duplicates included (small integer
        /// coordinates make them frequent).
        #[test]
        fn pareto_front_equals_brute_force(
            raw in proptest::collection::vec((0u8..8, 0u8..8), 0..40),
        ) {
            let points: Vec<(f64, f64)> =
                raw.iter().map(|&(x, y)| (f64::from(x), f64::from(y))).collect();
            let mut fast = pareto_front(&points);
            fast.sort_unstable();
            prop_assert_eq!(fast, brute(&points));
        }

        #[test]
        fn pareto_front_equals_brute_force_reals(
            points in proptest::collection::vec((-1e3f64..1e3, -1e3f64..1e3), 0..60),
        ) {
            let mut fast = pareto_front(&points);
            fast.sort_unstable();
            prop_assert_eq!(fast, brute(&points));
        }
    }

    #[test]
    fn snr_loss_against_hand_computed_cases() {
        let snr = [10.0, 12.0, 14.0];
        // A reference falling a decade per 2 dB.
        let reference = [1e-1, 1e-2, 1e-3];
        assert_eq!(snr_loss_db(&snr, &reference, &reference), Some(0.0));
        // The design's curve shifted right by 0.5 dB: each BER is the reference's at s − 0.5,
        // a quarter decade higher.
        let shifted: Vec<f64> = reference.iter().map(|b| b * 10f64.powf(0.25)).collect();
        let l = snr_loss_db(&snr, &reference, &shifted).unwrap();
        assert!((l - 0.5).abs() < 1e-12, "{l}");
        // Better than the reference: negative, extrapolated past the last point.
        let better: Vec<f64> = reference.iter().map(|b| b / 10.0).collect();
        let l = snr_loss_db(&snr, &reference, &better).unwrap();
        assert!((l + 2.0).abs() < 1e-12, "{l}");
        // Undefined cases.
        assert_eq!(snr_loss_db(&[10.0], &[0.1], &[0.1]), None);
        assert_eq!(snr_loss_db(&snr, &[0.1, 0.1, 0.1], &reference), None);
        assert_eq!(snr_loss_db(&snr, &reference, &[0.1, 0.0, 0.1]), None);
    }

    #[test]
    fn front_layers_peel_successive_fronts() {
        let pts = [
            (1.0, 3.0),
            (2.0, 2.0),
            (3.0, 1.0),
            (2.0, 3.0),
            (3.0, 3.0),
            (4.0, 4.0),
        ];
        let layers = front_layers(&pts, 10);
        assert_eq!(layers, vec![vec![0, 1, 2], vec![3], vec![4], vec![5]]);
        assert_eq!(front_layers(&pts, 2).len(), 2);
    }

    #[test]
    fn non_finite_points_are_left_out() {
        let pts = [(1.0, f64::NAN), (2.0, 1.0), (f64::INFINITY, 0.0)];
        assert_eq!(pareto_front(&pts), vec![1]);
    }

    #[test]
    fn grid_and_greedy_neighbours() {
        let v = all_vectors(&[vec![4, 8], vec![4, 8], vec![4, 8]]);
        assert_eq!(v.len(), 8);
        assert_eq!(v[0], vec![4, 4, 4]);
        assert_eq!(v[7], vec![8, 8, 8]);
        assert_eq!(
            narrower(&[vec![4, 6, 8], vec![4, 6, 8], vec![4, 6, 8]], &[8, 4, 6]),
            vec![vec![6, 4, 6], vec![8, 4, 4]]
        );
    }
}
