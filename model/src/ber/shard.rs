//! BER sweeps beyond one machine: rounds, shards and their exact merge (docs/cluster.md).
//!
//! What it guarantees:
//!
//! * **Same batches as one machine.** Batch `b` of SNR point `s` is drawn from the stream
//!   [`BerConfig::stream`]`(s, b)` wherever it runs, so a batch computed by a shard counts
//!   exactly what [`super::simulate`] counts for it.
//! * **Rounds.** A sweep runs in rounds. Round 0 ([`RoundPlan::first`]) gives every
//!   (detector, SNR point) its first batches; each later round ([`RoundPlan::next`]) adds
//!   batches only to the (detector, point) pairs that have not stopped, as many as the error
//!   rate seen so far predicts they need, capped by `max_frames`.
//! * **Shards.** Shard `I/N` of a round computes the round's units (one unit = one batch of
//!   one point, run through every detector whose range holds it) whose index in the round's
//!   order is `I mod N`: a deterministic slice, equal on every rerun, bit for bit.
//! * **Exact merge.** [`merge`] places every shard's per-batch counts, refuses anything that
//!   does not fit (another configuration, another round, a batch held twice or by no file, a
//!   corrupt file, naming the file), and feeds the batches in order to the very
//!   [`PointState`] that [`super::simulate`] uses. Whatever the shard counts and rounds, the
//!   rows equal those of the unsharded run.
//! * **Files are checked.** Shard and state files carry a SHA-256 digest of their content and
//!   the configuration hash ([`config_hash`]); a file that does not match its digest is refused
//!   as corrupt.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{BerConfig, BerPoint, ErrorTally, PointState, Z_95, run_batch, wilson_interval};
use crate::detect::Detector;
use crate::error::ModelError;

/// `kind` of a shard file.
pub const SHARD_KIND: &str = "kaq-ber-shard";

/// `kind` of a state file (the sweep between two rounds).
pub const STATE_KIND: &str = "kaq-ber-state";

/// `kind` of a plan document (`kaq ber --plan --json`).
pub const PLAN_KIND: &str = "kaq-ber-plan";

/// Version of the shard, state and plan formats.
pub const FORMAT_VERSION: u32 = 1;

/// Default batches per (detector, SNR point) in round 0.
pub const DEFAULT_FIRST_ROUND_BATCHES: u64 = 16;

/// A later round aims at this multiple of the batches that the upper end of the 95 % Wilson
/// interval of the BER seen so far predicts. That prediction is a lower bound on what the point
/// needs (with 97.5 % confidence), so the round overshoots the stop by at most this factor
/// (with that confidence); the margin makes one more round usually enough.
pub const ROUND_MARGIN: f64 = 1.5;

/// Largest shard count.
pub const MAX_SHARDS: u32 = 1 << 20;

/// Errors of sharded sweeps; each names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The file is not a readable shard or state file (truncated, edited, wrong kind).
    #[error("{file}: corrupt or not a {what}: {reason}")]
    Corrupt {
        /// The file.
        file: String,
        /// What it should be ("shard file", "state file").
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The file belongs to another sweep configuration.
    #[error(
        "{file}: belongs to another configuration (hash {found}) than {reference} (hash {expected})"
    )]
    OtherConfig {
        /// The file.
        file: String,
        /// Its configuration hash.
        found: String,
        /// The file (or run) it was compared with.
        reference: String,
        /// That one's configuration hash.
        expected: String,
    },
    /// The file belongs to another round (or continues another state) than the others.
    #[error("{file}: belongs to another round than {reference}: {reason}")]
    OtherRound {
        /// The file.
        file: String,
        /// The file it was compared with.
        reference: String,
        /// What differs.
        reason: String,
    },
    /// Two files hold the same batch.
    #[error(
        "{file} and {other} overlap: both hold batch {batch} of detector {detector} at {snr_db} dB"
    )]
    Overlap {
        /// The later file.
        file: String,
        /// The earlier file holding the batch.
        other: String,
        /// Detector name.
        detector: String,
        /// SNR of the point in dB.
        snr_db: f64,
        /// The batch index.
        batch: u64,
    },
    /// A batch of the round is in no file.
    #[error(
        "round {round} is incomplete: batch {batch} of detector {detector} at {snr_db} dB is in no file{hint}"
    )]
    Missing {
        /// The round.
        round: u32,
        /// Detector name.
        detector: String,
        /// SNR of the point in dB.
        snr_db: f64,
        /// The batch index.
        batch: u64,
        /// Which shards are missing, when the files tell.
        hint: String,
    },
    /// No shard file was given.
    #[error("no shard files given")]
    NoShards,
    /// The simulation itself failed.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// The configuration hash of a sweep: SHA-256 (hex) over the kaq version, the canonical JSON of
/// `config` (without `threads`, which does not change results), the detector names, and the
/// bytes of every input file the detectors were built from (`inputs`, in order), each field
/// length-prefixed.
pub fn config_hash(config: &BerConfig, detectors: &[String], inputs: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(b"kaq-ber-config");
    field(env!("CARGO_PKG_VERSION").as_bytes());
    field(
        serde_json::to_string(config)
            .expect("a BerConfig always serializes")
            .as_bytes(),
    );
    field(&(detectors.len() as u64).to_le_bytes());
    for name in detectors {
        field(name.as_bytes());
    }
    field(&(inputs.len() as u64).to_le_bytes());
    for input in inputs {
        field(input);
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (hex) of the compact JSON of `value`.
fn digest_of<T: Serialize>(value: &T) -> String {
    let text = serde_json::to_string(value).expect("shard and state documents always serialize");
    hex(&Sha256::digest(text.as_bytes()))
}

/// Shard `index` of `count` (0 ≤ index < count), written `I/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ShardSpec {
    /// Which shard, from 0.
    pub index: u32,
    /// How many shards the round is split into.
    pub count: u32,
}

impl ShardSpec {
    /// Shard `index` of `count`; the error says what is wrong.
    pub fn new(index: u32, count: u32) -> Result<Self, String> {
        if count == 0 || count > MAX_SHARDS {
            return Err(format!(
                "the shard count must be between 1 and {MAX_SHARDS}, got {count}"
            ));
        }
        if index >= count {
            return Err(format!(
                "the shard index counts from 0 and must be below the shard count: {index}/{count}"
            ));
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for ShardSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: a shard is INDEX/COUNT, e.g. 0/8"))?;
        let number = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("`{s}`: `{v}` is not a whole number"))
        };
        Self::new(number(i)?, number(n)?)
    }
}

/// The batches `start..end` of one detector at one SNR point in one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRange {
    /// Detector index (order of the sweep's detector list).
    pub detector: usize,
    /// SNR point index.
    pub point: usize,
    /// First batch.
    pub start: u64,
    /// One past the last batch.
    pub end: u64,
}

/// The work of one round: a batch range for every (detector, point) that has not stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundPlan {
    /// Round number, from 0.
    pub round: u32,
    /// Ranges sorted by (point, detector), each non-empty.
    pub ranges: Vec<BatchRange>,
}

/// Consecutive batches of one point run through the same detectors: the units of a plan,
/// in the plan's order, are the batches of its segments in turn.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    point: usize,
    start: u64,
    end: u64,
    detectors: Vec<usize>,
    /// Index of the segment's first unit in the round's order.
    offset: u64,
}

impl RoundPlan {
    /// Round 0: batches `0..min(batches, ⌈max_frames / batch_frames⌉)` of every detector at
    /// every point. `batches` ≥ 1.
    pub fn first(config: &BerConfig, detectors: usize, batches: u64) -> Result<Self, ModelError> {
        config.validate()?;
        if batches == 0 {
            return Err(ModelError::InvalidDimension {
                name: "first_round_batches",
                value: 0,
                reason: "must be at least 1",
            });
        }
        let end = batches.min(config.batches_per_point());
        let ranges = (0..config.snr_db.len())
            .flat_map(|point| {
                (0..detectors).map(move |detector| BatchRange {
                    detector,
                    point,
                    start: 0,
                    end,
                })
            })
            .collect();
        Ok(Self { round: 0, ranges })
    }

    /// Round `round` after the points reached `states` (detector-major, as
    /// [`SweepState::points`]): for every point that has not stopped, the batches from where it
    /// is to the total that the upper end of the 95 % Wilson interval of its BER so far
    /// predicts for `min_errors` errors, times [`ROUND_MARGIN`]; at least half as many batches
    /// as it has run and at least one (so a point without errors, whose prediction grows only
    /// with its own count, still grows by half each round, and a sweep ends within about
    /// log1.5 of its cap rounds), at most up to the `max_frames` cap. `None` when every point has stopped.
    pub fn next(config: &BerConfig, states: &[PointState], round: u32) -> Option<Self> {
        let points = config.snr_db.len();
        let cap = config.batches_per_point();
        let bits_per_batch = (config.batch_frames as u64 * config.link.bits_per_frame()) as f64;
        let mut ranges = Vec::new();
        for point in 0..points {
            for (detector, state) in states.chunks(points).map(|c| c[point]).enumerate() {
                if state.is_done() {
                    continue;
                }
                let (_, ber_high) = wilson_interval(state.tally.bit_errors, state.tally.bits, Z_95);
                let wanted = ROUND_MARGIN * config.min_errors as f64 / (ber_high * bits_per_batch);
                // `wanted` may be huge or infinite (ber_high is never 0 but can underflow the
                // product); the float-to-int cast saturates.
                let total = (wanted.ceil() as u64)
                    .max(state.batches + state.batches.div_ceil(2).max(1))
                    .min(cap);
                ranges.push(BatchRange {
                    detector,
                    point,
                    start: state.batches,
                    end: total,
                });
            }
        }
        (!ranges.is_empty()).then_some(Self { round, ranges })
    }

    /// Checks the plan against the sweep: indices in range, ranges non-empty and within the
    /// frame cap, sorted by (point, detector) without repeats.
    fn check(&self, config: &BerConfig, detectors: usize) -> Result<(), String> {
        let cap = config.batches_per_point();
        for r in &self.ranges {
            if r.detector >= detectors || r.point >= config.snr_db.len() {
                return Err(format!(
                    "plan range of detector {} at point {} is outside the sweep",
                    r.detector, r.point
                ));
            }
            if r.start >= r.end || r.end > cap {
                return Err(format!(
                    "plan range {}..{} of detector {} at point {} is empty or beyond the {cap} batches of a point",
                    r.start, r.end, r.detector, r.point
                ));
            }
        }
        if self
            .ranges
            .windows(2)
            .any(|w| (w[0].point, w[0].detector) >= (w[1].point, w[1].detector))
        {
            return Err("plan ranges are not sorted by point and detector".into());
        }
        Ok(())
    }

    /// The plan's segments: per point in order, the maximal runs of batches with the same set
    /// of detectors.
    fn segments(&self) -> Vec<Segment> {
        let mut segments = Vec::new();
        let mut offset = 0;
        let mut i = 0;
        while i < self.ranges.len() {
            let point = self.ranges[i].point;
            let mut j = i;
            while j < self.ranges.len() && self.ranges[j].point == point {
                j += 1;
            }
            let ranges = &self.ranges[i..j];
            let bounds: BTreeSet<u64> = ranges.iter().flat_map(|r| [r.start, r.end]).collect();
            let bounds: Vec<u64> = bounds.into_iter().collect();
            for w in bounds.windows(2) {
                let (start, end) = (w[0], w[1]);
                let detectors: Vec<usize> = ranges
                    .iter()
                    .filter(|r| r.start <= start && end <= r.end)
                    .map(|r| r.detector)
                    .collect();
                if !detectors.is_empty() {
                    segments.push(Segment {
                        point,
                        start,
                        end,
                        detectors,
                        offset,
                    });
                    offset += end - start;
                }
            }
            i = j;
        }
        segments
    }

    /// Units in the round: batches summed over points (a batch of a point counts once however
    /// many detectors run it).
    pub fn units(&self) -> u64 {
        self.segments().iter().map(|s| s.end - s.start).sum()
    }

    /// Batch runs (one detector on one batch) in the round.
    pub fn batch_runs(&self) -> u64 {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }

    /// The units of shard `shard`, in order: `(point, batch, detectors)`.
    pub fn shard_units(&self, shard: ShardSpec) -> Vec<(usize, u64, Vec<usize>)> {
        let n = u64::from(shard.count);
        let i = u64::from(shard.index);
        let mut units = Vec::new();
        for seg in self.segments() {
            let first = (i + n - seg.offset % n) % n;
            let mut b = seg.start + first;
            while b < seg.end {
                units.push((seg.point, b, seg.detectors.clone()));
                b += n;
            }
        }
        units
    }
}

/// The counts of one batch of one detector at one point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCounts {
    /// The batch index.
    pub batch: u64,
    /// Frames (received vectors) in the batch.
    pub frames: u64,
    /// Bits.
    pub bits: u64,
    /// Bit errors.
    pub bit_errors: u64,
    /// Complex symbols.
    pub symbols: u64,
    /// Symbol errors.
    pub symbol_errors: u64,
}

impl BatchCounts {
    fn new(batch: u64, t: &ErrorTally) -> Self {
        Self {
            batch,
            frames: t.frames,
            bits: t.bits,
            bit_errors: t.bit_errors,
            symbols: t.symbols,
            symbol_errors: t.symbol_errors,
        }
    }

    fn tally(&self) -> ErrorTally {
        ErrorTally {
            frames: self.frames,
            bits: self.bits,
            bit_errors: self.bit_errors,
            symbols: self.symbols,
            symbol_errors: self.symbol_errors,
        }
    }

    /// Checks the counts against what the configuration says batch `batch` holds.
    fn check(&self, config: &BerConfig) -> Result<(), String> {
        let frames = config.frames_in_batch(self.batch);
        let ok = self.frames == frames
            && self.bits == frames * config.link.bits_per_frame()
            && self.symbols == frames * config.link.nt as u64
            && self.bit_errors <= self.bits
            && self.symbol_errors <= self.symbols
            && self.symbol_errors <= self.bit_errors;
        if ok {
            Ok(())
        } else {
            Err(format!(
                "the counts of batch {} do not fit the configuration",
                self.batch
            ))
        }
    }
}

/// Per-batch counts of one detector at one point, batches ascending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointCounts {
    /// Detector index.
    pub detector: usize,
    /// SNR point index.
    pub point: usize,
    /// Counts of each batch the shard computed for this pair.
    pub batches: Vec<BatchCounts>,
}

/// What a shard writes: the sweep's identity, the round plan, which shard it is, and the
/// additive per-batch counts of its units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardFile {
    /// [`SHARD_KIND`].
    pub kind: String,
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// The kaq version that wrote it.
    pub kaq_version: String,
    /// [`config_hash`] of the sweep.
    pub config_hash: String,
    /// The sweep's configuration.
    pub config: BerConfig,
    /// The detector names, in order.
    pub detectors: Vec<String>,
    /// Digest of the state this round continues ([`SweepState::digest`]); `None` in round 0.
    pub after: Option<String>,
    /// The round's plan.
    pub plan: RoundPlan,
    /// Which shard of the round.
    pub shard: ShardSpec,
    /// How a unit is assigned to a shard (documentation for readers of the file).
    pub assignment: String,
    /// Counts per (detector, point) with at least one batch in this shard, sorted.
    pub counts: Vec<PointCounts>,
    /// SHA-256 of the file's content with this field empty.
    pub digest: String,
}

const ASSIGNMENT: &str = "unit u (batch of a point, in the plan's order) goes to shard u mod N";

/// The identity of a sweep: its configuration, detector names and configuration hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// The configuration.
    pub config: BerConfig,
    /// Detector names, in order.
    pub detectors: Vec<String>,
    /// [`config_hash`] of the two and the detectors' input files.
    pub config_hash: String,
}

/// Runs shard `shard` of `plan` (continuing the state of digest `after`, `None` in round 0) for
/// `sweep` with `detectors` (named as in `sweep`). `progress`, if given, is called on the
/// calling thread with (units done, units of the shard).
pub fn run_shard(
    sweep: &Sweep,
    detectors: &[&dyn Detector],
    plan: &RoundPlan,
    after: Option<&str>,
    shard: ShardSpec,
    mut progress: Option<&mut dyn FnMut(usize, usize)>,
) -> Result<ShardFile, ModelError> {
    let config = &sweep.config;
    config.validate()?;
    let names: Vec<String> = detectors.iter().map(|d| d.name()).collect();
    if names != sweep.detectors {
        return Err(ModelError::Shape(format!(
            "the detectors {names:?} are not the sweep's {:?}",
            sweep.detectors
        )));
    }
    plan.check(config, detectors.len())
        .map_err(ModelError::Shape)?;
    let pool = super::worker_pool(config.threads)?;
    let units = plan.shard_units(shard);
    let mut results: Vec<Vec<ErrorTally>> = Vec::with_capacity(units.len());
    // Chunks keep the progress live; their size does not change any count.
    let chunk = 4 * pool
        .as_ref()
        .map_or_else(rayon::current_num_threads, |p| p.current_num_threads());
    for group in units.chunks(chunk.max(1)) {
        let work = || {
            group
                .par_iter()
                .map(|(point, batch, active)| {
                    run_batch(
                        config,
                        detectors,
                        &names,
                        active,
                        *point,
                        config.snr_db[*point],
                        *batch,
                    )
                })
                .collect::<Result<Vec<_>, ModelError>>()
        };
        let done = match &pool {
            Some(pool) => pool.install(work)?,
            None => work()?,
        };
        results.extend(done);
        if let Some(report) = progress.as_mut() {
            report(results.len(), units.len());
        }
    }
    let points = config.snr_db.len();
    let mut per_pair: Vec<Vec<BatchCounts>> = vec![Vec::new(); detectors.len() * points];
    for ((point, batch, active), tallies) in units.iter().zip(&results) {
        for (&d, t) in active.iter().zip(tallies) {
            per_pair[d * points + point].push(BatchCounts::new(*batch, t));
        }
    }
    let counts = per_pair
        .into_iter()
        .enumerate()
        .filter(|(_, b)| !b.is_empty())
        .map(|(i, batches)| PointCounts {
            detector: i / points,
            point: i % points,
            batches,
        })
        .collect();
    let mut file = ShardFile {
        kind: SHARD_KIND.into(),
        version: FORMAT_VERSION,
        kaq_version: env!("CARGO_PKG_VERSION").into(),
        config_hash: sweep.config_hash.clone(),
        config: config.clone(),
        detectors: sweep.detectors.clone(),
        after: after.map(str::to_string),
        plan: plan.clone(),
        shard,
        assignment: ASSIGNMENT.into(),
        counts,
        digest: String::new(),
    };
    file.digest = digest_of(&file);
    Ok(file)
}

/// Checks the common header of shard and state files.
fn check_header(
    file: &str,
    what: &'static str,
    kind: &str,
    want_kind: &str,
    version: u32,
    config: &BerConfig,
    detectors: &[String],
) -> Result<(), ShardError> {
    let corrupt = |reason: String| ShardError::Corrupt {
        file: file.to_string(),
        what,
        reason,
    };
    if kind != want_kind {
        return Err(corrupt(format!("kind is `{kind}`, not `{want_kind}`")));
    }
    if version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {version}; this kaq reads version {FORMAT_VERSION}"
        )));
    }
    config
        .validate()
        .map_err(|e| corrupt(format!("invalid configuration: {e}")))?;
    if detectors.is_empty() {
        return Err(corrupt("no detectors".into()));
    }
    Ok(())
}

impl ShardFile {
    /// The compact JSON written to disk (one line, newline-terminated).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string(self).expect("a shard file always serializes");
        text.push('\n');
        text
    }

    /// Parses and checks a shard file (`file` names it in errors): kind, version, digest,
    /// configuration, plan, and that it holds exactly the units of its shard with counts that
    /// fit the configuration.
    pub fn from_json(text: &str, file: &str) -> Result<Self, ShardError> {
        let what = "shard file";
        let corrupt = |reason: String| ShardError::Corrupt {
            file: file.to_string(),
            what,
            reason,
        };
        let parsed: ShardFile =
            serde_json::from_str(text).map_err(|e| corrupt(format!("not valid JSON: {e}")))?;
        check_header(
            file,
            what,
            &parsed.kind,
            SHARD_KIND,
            parsed.version,
            &parsed.config,
            &parsed.detectors,
        )?;
        let mut unsealed = parsed.clone();
        unsealed.digest = String::new();
        if digest_of(&unsealed) != parsed.digest {
            return Err(corrupt(
                "its content does not match its digest (edited or damaged)".into(),
            ));
        }
        ShardSpec::new(parsed.shard.index, parsed.shard.count).map_err(corrupt)?;
        parsed
            .plan
            .check(&parsed.config, parsed.detectors.len())
            .map_err(corrupt)?;
        parsed.check_units().map_err(corrupt)?;
        Ok(parsed)
    }

    /// Checks that the file holds exactly the units of its shard, with plausible counts.
    fn check_units(&self) -> Result<(), String> {
        let points = self.config.snr_db.len();
        let mut expected: Vec<Vec<u64>> = vec![Vec::new(); self.detectors.len() * points];
        for (point, batch, active) in self.plan.shard_units(self.shard) {
            for d in active {
                expected[d * points + point].push(batch);
            }
        }
        let mut seen = vec![false; expected.len()];
        for c in &self.counts {
            if c.detector >= self.detectors.len() || c.point >= points {
                return Err(format!(
                    "counts of detector {} at point {} are outside the sweep",
                    c.detector, c.point
                ));
            }
            let slot = c.detector * points + c.point;
            if std::mem::replace(&mut seen[slot], true) {
                return Err(format!(
                    "two count lists for detector {} at point {}",
                    c.detector, c.point
                ));
            }
            let batches: Vec<u64> = c.batches.iter().map(|b| b.batch).collect();
            if batches != expected[slot] {
                return Err(format!(
                    "the batches of detector {} at point {} are not those of shard {}",
                    c.detector, c.point, self.shard
                ));
            }
            for b in &c.batches {
                b.check(&self.config)?;
            }
        }
        if let Some(slot) = (0..expected.len()).find(|&s| !seen[s] && !expected[s].is_empty()) {
            return Err(format!(
                "no counts for detector {} at point {}, which shard {} computes",
                slot / points,
                slot % points,
                self.shard
            ));
        }
        Ok(())
    }
}

/// The sweep between two rounds: where every (detector, point) stands and the next round's
/// plan. Written by `kaq merge --state`, read by `kaq ber --shard … --after` and
/// `kaq merge --after`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepState {
    /// [`STATE_KIND`].
    pub kind: String,
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// The kaq version that wrote it.
    pub kaq_version: String,
    /// [`config_hash`] of the sweep.
    pub config_hash: String,
    /// The sweep's configuration.
    pub config: BerConfig,
    /// The detector names, in order.
    pub detectors: Vec<String>,
    /// Rounds merged so far.
    pub rounds: u32,
    /// Where each (detector, point) stands, detector-major (index `detector · points + point`).
    pub points: Vec<PointState>,
    /// The next round.
    pub next: RoundPlan,
    /// SHA-256 of the file's content with this field empty.
    pub digest: String,
}

impl SweepState {
    /// The pretty JSON written to disk, newline-terminated.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a state always serializes");
        text.push('\n');
        text
    }

    /// Parses and checks a state file (`file` names it in errors).
    pub fn from_json(text: &str, file: &str) -> Result<Self, ShardError> {
        let what = "state file";
        let corrupt = |reason: String| ShardError::Corrupt {
            file: file.to_string(),
            what,
            reason,
        };
        let parsed: SweepState =
            serde_json::from_str(text).map_err(|e| corrupt(format!("not valid JSON: {e}")))?;
        check_header(
            file,
            what,
            &parsed.kind,
            STATE_KIND,
            parsed.version,
            &parsed.config,
            &parsed.detectors,
        )?;
        let mut unsealed = parsed.clone();
        unsealed.digest = String::new();
        if digest_of(&unsealed) != parsed.digest {
            return Err(corrupt(
                "its content does not match its digest (edited or damaged)".into(),
            ));
        }
        let points = parsed.config.snr_db.len();
        if parsed.points.len() != parsed.detectors.len() * points {
            return Err(corrupt(format!(
                "{} point states for {} detectors at {points} SNR points",
                parsed.points.len(),
                parsed.detectors.len()
            )));
        }
        let cap = parsed.config.batches_per_point();
        let bits_per_frame = parsed.config.link.bits_per_frame();
        for (i, p) in parsed.points.iter().enumerate() {
            let frames =
                (p.batches * parsed.config.batch_frames as u64).min(parsed.config.max_frames);
            let t = &p.tally;
            let fits = p.batches <= cap
                && (p.is_done() || p.batches < cap)
                && t.frames == frames
                && t.bits == frames * bits_per_frame
                && t.symbols == frames * parsed.config.link.nt as u64
                && t.bit_errors <= t.bits
                && t.symbol_errors <= t.symbols;
            if !fits {
                return Err(corrupt(format!(
                    "the counts of detector {} at point {} do not fit the configuration",
                    i / points,
                    i % points
                )));
            }
        }
        parsed
            .next
            .check(&parsed.config, parsed.detectors.len())
            .map_err(corrupt)?;
        // The plan continues exactly the points that still need batches.
        let mut planned = vec![false; parsed.points.len()];
        for r in &parsed.next.ranges {
            let state = parsed.points[r.detector * points + r.point];
            if state.is_done() || state.batches != r.start {
                return Err(corrupt(format!(
                    "the next round's range of detector {} at point {} does not continue its state",
                    r.detector, r.point
                )));
            }
            planned[r.detector * points + r.point] = true;
        }
        if let Some(i) = (0..planned.len()).find(|&i| !planned[i] && !parsed.points[i].is_done()) {
            return Err(corrupt(format!(
                "detector {} at point {} needs batches but the next round has none",
                i / points,
                i % points
            )));
        }
        Ok(parsed)
    }

    /// The sweep this state belongs to.
    pub fn sweep(&self) -> Sweep {
        Sweep {
            config: self.config.clone(),
            detectors: self.detectors.clone(),
            config_hash: self.config_hash.clone(),
        }
    }
}

/// A shard file with the name to report it by.
#[derive(Debug, Clone)]
pub struct NamedShard {
    /// How errors name the file (its path).
    pub name: String,
    /// Its content.
    pub file: ShardFile,
}

/// The result of merging one round.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The sweep.
    pub sweep: Sweep,
    /// Rounds merged, this one included.
    pub rounds: u32,
    /// Where each (detector, point) stands, detector-major.
    pub points: Vec<PointState>,
}

impl Merged {
    /// The table rows, detector-major as [`super::simulate`] returns them, once every point
    /// has stopped; `None` while some point needs more batches.
    pub fn rows(&self) -> Option<Vec<BerPoint>> {
        let snr = &self.sweep.config.snr_db;
        self.points
            .iter()
            .enumerate()
            .map(|(i, s)| s.row(&self.sweep.detectors[i / snr.len()], snr[i % snr.len()]))
            .collect()
    }

    /// The state for the next round; `None` when every point has stopped.
    pub fn next_state(&self) -> Option<SweepState> {
        let next = RoundPlan::next(&self.sweep.config, &self.points, self.rounds)?;
        let mut state = SweepState {
            kind: STATE_KIND.into(),
            version: FORMAT_VERSION,
            kaq_version: env!("CARGO_PKG_VERSION").into(),
            config_hash: self.sweep.config_hash.clone(),
            config: self.sweep.config.clone(),
            detectors: self.sweep.detectors.clone(),
            rounds: self.rounds,
            points: self.points.clone(),
            next,
            digest: String::new(),
        };
        state.digest = digest_of(&state);
        Some(state)
    }
}

/// Merges the shards of one round, continuing `after` (the state file the round was planned
/// from, with its name; `None` for round 0). Refuses, naming the file: shards of another
/// configuration or round, shards that do not continue `after`, a batch held by two files, a
/// batch of the round held by none.
pub fn merge(
    after: Option<(&str, &SweepState)>,
    shards: &[NamedShard],
) -> Result<Merged, ShardError> {
    let first = shards.first().ok_or(ShardError::NoShards)?;
    let reference = &first.file;
    for s in shards {
        let f = &s.file;
        if f.config_hash != reference.config_hash
            || f.config != reference.config
            || f.detectors != reference.detectors
        {
            return Err(ShardError::OtherConfig {
                file: s.name.clone(),
                found: f.config_hash.clone(),
                reference: first.name.clone(),
                expected: reference.config_hash.clone(),
            });
        }
        let other_round = |reason: &str| ShardError::OtherRound {
            file: s.name.clone(),
            reference: first.name.clone(),
            reason: reason.to_string(),
        };
        if f.plan.round != reference.plan.round {
            return Err(other_round(&format!(
                "round {} against round {}",
                f.plan.round, reference.plan.round
            )));
        }
        if f.after != reference.after {
            return Err(other_round("it continues another state"));
        }
        if f.plan != reference.plan {
            return Err(other_round(
                "its plan differs (another --first-round, or another state)",
            ));
        }
    }
    let sweep = Sweep {
        config: reference.config.clone(),
        detectors: reference.detectors.clone(),
        config_hash: reference.config_hash.clone(),
    };
    let config = &sweep.config;
    let points = config.snr_db.len();
    let mut states = match (after, &reference.after) {
        (None, None) => vec![PointState::default(); sweep.detectors.len() * points],
        (Some((name, state)), Some(digest)) => {
            if state.config_hash != sweep.config_hash {
                return Err(ShardError::OtherConfig {
                    file: first.name.clone(),
                    found: sweep.config_hash.clone(),
                    reference: name.to_string(),
                    expected: state.config_hash.clone(),
                });
            }
            if &state.digest != digest || state.next != reference.plan {
                return Err(ShardError::OtherRound {
                    file: first.name.clone(),
                    reference: name.to_string(),
                    reason: format!(
                        "the shards were not run after this state (it plans round {})",
                        state.next.round
                    ),
                });
            }
            state.points.clone()
        }
        (None, Some(_)) => {
            return Err(ShardError::OtherRound {
                file: first.name.clone(),
                reference: "round 0".into(),
                reason: format!(
                    "it is of round {} and continues a state; give that state file (--after)",
                    reference.plan.round
                ),
            });
        }
        (Some((name, state)), None) => {
            return Err(ShardError::OtherRound {
                file: first.name.clone(),
                reference: name.to_string(),
                reason: format!(
                    "it is of round 0, but this state plans round {}",
                    state.next.round
                ),
            });
        }
    };

    // Place every batch; each slot of the round takes exactly one file's counts.
    let plan = &reference.plan;
    let mut slots: Vec<Vec<Option<(ErrorTally, usize)>>> = plan
        .ranges
        .iter()
        .map(|r| vec![None; (r.end - r.start) as usize])
        .collect();
    let mut range_of = vec![usize::MAX; sweep.detectors.len() * points];
    for (i, r) in plan.ranges.iter().enumerate() {
        range_of[r.detector * points + r.point] = i;
    }
    for (fi, s) in shards.iter().enumerate() {
        for c in &s.file.counts {
            let outside = || ShardError::Corrupt {
                file: s.name.clone(),
                what: "shard file",
                reason: format!(
                    "it holds batches of detector {} at point {} outside its round's plan",
                    c.detector, c.point
                ),
            };
            let ri = *range_of
                .get(c.detector * points + c.point)
                .filter(|&&ri| ri != usize::MAX)
                .ok_or_else(outside)?;
            let range = plan.ranges[ri];
            for b in &c.batches {
                if !(range.start..range.end).contains(&b.batch) {
                    return Err(outside());
                }
                let slot = &mut slots[ri][(b.batch - range.start) as usize];
                if let Some((_, other)) = slot {
                    return Err(ShardError::Overlap {
                        file: s.name.clone(),
                        other: shards[*other].name.clone(),
                        detector: sweep.detectors[c.detector].clone(),
                        snr_db: config.snr_db[c.point],
                        batch: b.batch,
                    });
                }
                *slot = Some((b.tally(), fi));
            }
        }
    }
    for (ri, range) in plan.ranges.iter().enumerate() {
        if let Some(k) = slots[ri].iter().position(Option::is_none) {
            return Err(ShardError::Missing {
                round: plan.round,
                detector: sweep.detectors[range.detector].clone(),
                snr_db: config.snr_db[range.point],
                batch: range.start + k as u64,
                hint: missing_hint(shards),
            });
        }
    }
    // The one stopping rule, batch by batch in order.
    for (ri, range) in plan.ranges.iter().enumerate() {
        let state = &mut states[range.detector * points + range.point];
        for slot in &slots[ri] {
            let (tally, _) = slot.as_ref().expect("every slot was checked to be filled");
            if state.push(config, tally) {
                break;
            }
        }
    }
    Ok(Merged {
        sweep,
        rounds: plan.round + 1,
        points: states,
    })
}

/// `" (no file of shard 3/8)"` when every file has the same shard count, else empty.
fn missing_hint(shards: &[NamedShard]) -> String {
    let count = shards[0].file.shard.count;
    if shards.iter().any(|s| s.file.shard.count != count) {
        return String::new();
    }
    let have: BTreeSet<u32> = shards.iter().map(|s| s.file.shard.index).collect();
    let missing: Vec<String> = (0..count)
        .filter(|i| !have.contains(i))
        .take(8)
        .map(|i| format!("{i}/{count}"))
        .collect();
    if missing.is_empty() {
        String::new()
    } else {
        format!(" (no file of shard {})", missing.join(", "))
    }
}

#[cfg(test)]
mod tests;
