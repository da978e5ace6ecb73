//! The Monte-Carlo BER engine (docs/system-model.md).
//!
//! [`simulate`] measures the bit and symbol error rates of several detectors over a list of SNR
//! points. What it guarantees:
//!
//! * **Same frames for every detector.** At each SNR point every detector sees exactly the same
//!   frames, so the curves are compared on common randomness.
//! * **Reproducible on any thread count.** Frames come in batches of [`BerConfig::batch_frames`]
//!   frames. Batch `b` of SNR point `s` is drawn from [`stream_rng`]`(seed, (s << 32) | b)`, so
//!   it is the same on whichever thread it runs. Batches are processed in *waves* whose sizes
//!   (2, 4, 8, then 16 batches) do not depend on the thread count; within a wave batches run in
//!   parallel (rayon), and results are merged strictly in batch order. The result for a given
//!   [`BerConfig`] (ignoring `threads`) is therefore bit-identical for 1, 2 or N threads.
//! * **Stopping rule.** A detector's point ends at the first batch boundary where its bit
//!   errors reach `min_errors` or its frames reach `max_frames`. The frame cap is exact: the last
//!   batch of a point is shortened so that frames never exceed `max_frames` (batch `b` holds
//!   `min(batch_frames, max_frames − b·batch_frames)` frames). The error target is checked at
//!   batch granularity, so a point may end with somewhat more than `min_errors` errors.
//!   The rule lives in one type, [`PointState`], which the sweep on one machine and the merge
//!   of shards ([`shard`]) both feed batch by batch, so the two cannot disagree.
//! * **Beyond one machine.** [`shard`] splits the batches of a sweep over processes and merges
//!   their additive counts into exactly the result of [`simulate`] (docs/cluster.md).
//! * **Counting.** Bit errors are Gray-bit differences per real dimension
//!   ([`crate::modulation::Modulation::bit_errors`]); a symbol error is a complex symbol with any wrong real
//!   dimension (for BPSK the one real dimension). Decisions outside the alphabet are an error,
//!   never counted silently.
//! * **Block fading.** With `link.block` = T every batch holds whole channel blocks
//!   (`batch_frames` must be a multiple of T); only the frame cap may shorten a point's last
//!   block.
//! * **Confidence.** Every point carries the 95 % Wilson score interval of its BER
//!   ([`wilson_interval`]).

pub mod shard;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::detect::Detector;
use crate::error::ModelError;
use crate::link::{FrameBatch, LinkConfig, stream_rng};

/// The two-sided 95 % standard normal quantile used for the reported intervals.
pub const Z_95: f64 = 1.959964;

/// Default frames per batch: large enough to amortize per-batch work and thread hand-off,
/// small enough that a point stops close to its error target.
pub const DEFAULT_BATCH_FRAMES: usize = 256;

/// Batches per wave, wave after wave; the last size repeats. Fixed, so that the processed
/// prefix never depends on the thread count. Small first waves keep low-SNR points (which reach
/// their error target after a few batches) cheap.
const WAVE_BATCHES: [u64; 4] = [2, 4, 8, 16];

/// Largest number of batches one SNR point may need (the batch index occupies 32 bits of the
/// random stream id).
const MAX_BATCHES_PER_POINT: u64 = 1 << 32;

/// Largest number of SNR points (the point index occupies the upper 32 bits of the stream id).
const MAX_SNR_POINTS: usize = 1 << 31;

/// The default frames per batch for channel blocks of `block` frames: [`DEFAULT_BATCH_FRAMES`]
/// rounded up to whole blocks (256 without block fading).
pub fn default_batch_frames(block: usize) -> usize {
    let block = block.max(1);
    DEFAULT_BATCH_FRAMES.div_ceil(block) * block
}

/// What to simulate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BerConfig {
    /// The link: antennas, modulation, channel model.
    pub link: LinkConfig,
    /// SNR points in dB (per receive antenna, docs/system-model.md), simulated in this order.
    pub snr_db: Vec<f64>,
    /// A point stops once a detector has at least this many bit errors (≥ 1).
    pub min_errors: u64,
    /// A point never uses more than this many frames (≥ 1).
    pub max_frames: u64,
    /// Frames per batch, the unit of randomness and of the stopping rule (≥ 1).
    pub batch_frames: usize,
    /// Seed of all randomness.
    pub seed: u64,
    /// Worker threads: `None` uses rayon's global pool; `Some(n)` a local pool of `n` threads.
    /// Does not change the result, so it is not part of the serialized configuration (results
    /// files and the configuration hash of [`shard`] are equal on any thread count).
    #[serde(skip)]
    pub threads: Option<usize>,
}

impl BerConfig {
    /// A configuration with the default batch size ([`default_batch_frames`] of the link's
    /// channel block) and rayon's global pool.
    pub fn new(
        link: LinkConfig,
        snr_db: Vec<f64>,
        min_errors: u64,
        max_frames: u64,
        seed: u64,
    ) -> Self {
        Self {
            snr_db,
            min_errors,
            max_frames,
            batch_frames: default_batch_frames(link.block),
            link,
            seed,
            threads: None,
        }
    }

    /// Checks every field; the error names the offending one.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.snr_db.is_empty() {
            return Err(ModelError::InvalidDimension {
                name: "snr_db",
                value: 0,
                reason: "at least one SNR point is needed",
            });
        }
        if self.snr_db.len() > MAX_SNR_POINTS {
            return Err(ModelError::InvalidDimension {
                name: "snr_db",
                value: self.snr_db.len(),
                reason: "too many SNR points",
            });
        }
        if let Some(&bad) = self.snr_db.iter().find(|v| !v.is_finite()) {
            return Err(ModelError::InvalidParameter {
                name: "snr_db",
                value: bad,
                reason: "SNR must be finite",
            });
        }
        if self.min_errors == 0 {
            return Err(ModelError::InvalidDimension {
                name: "min_errors",
                value: 0,
                reason: "must be at least 1",
            });
        }
        if self.max_frames == 0 {
            return Err(ModelError::InvalidDimension {
                name: "max_frames",
                value: 0,
                reason: "must be at least 1",
            });
        }
        if self.batch_frames == 0 {
            return Err(ModelError::InvalidDimension {
                name: "batch_frames",
                value: 0,
                reason: "must be at least 1",
            });
        }
        if self.max_frames.div_ceil(self.batch_frames as u64) > MAX_BATCHES_PER_POINT {
            return Err(ModelError::InvalidDimension {
                name: "max_frames",
                value: self.max_frames as usize,
                reason: "needs more than 2^32 batches per SNR point; raise batch_frames",
            });
        }
        if self.threads == Some(0) {
            return Err(ModelError::InvalidDimension {
                name: "threads",
                value: 0,
                reason: "must be at least 1",
            });
        }
        // Building the generator checks the link (dimensions, correlation).
        self.link.validate()?;
        self.link.generator()?;
        if !self.batch_frames.is_multiple_of(self.link.block) {
            return Err(ModelError::InvalidDimension {
                name: "batch_frames",
                value: self.batch_frames,
                reason: "must be a multiple of the channel block (link.block), so that no \
                         block is cut by a batch boundary",
            });
        }
        Ok(())
    }

    /// The random stream of batch `batch` of SNR point `point`.
    pub fn stream(point: usize, batch: u64) -> u64 {
        ((point as u64) << 32) | batch
    }

    /// Frames in batch `batch` of a point: the batch size, shortened for the last batch so the
    /// point never exceeds `max_frames`.
    pub fn frames_in_batch(&self, batch: u64) -> u64 {
        let start = batch * self.batch_frames as u64;
        (self.batch_frames as u64).min(self.max_frames.saturating_sub(start))
    }

    /// Batches a point has at most: `⌈max_frames / batch_frames⌉`.
    pub fn batches_per_point(&self) -> u64 {
        self.max_frames.div_ceil(self.batch_frames as u64)
    }
}

/// The stopping rule of one detector at one SNR point: the running counts of the batches
/// `0..batches`, fed strictly in batch order, and why the point stopped once it has.
///
/// [`simulate`] and the merge of shards ([`shard::merge`]) both decide through
/// [`PointState::push`]; batches after the stop are never counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointState {
    /// Batches counted: the next batch to push is batch `batches`.
    pub batches: u64,
    /// Counts of batches `0..batches`.
    pub tally: ErrorTally,
    /// Why the point stopped; `None` while it needs more batches.
    pub stop: Option<StopReason>,
}

impl PointState {
    /// Whether the point has stopped.
    pub fn is_done(&self) -> bool {
        self.stop.is_some()
    }

    /// Counts batch `self.batches` (the next one in order) and applies the stopping rule: the
    /// point stops once its bit errors reach `min_errors`, else once its frames reach
    /// `max_frames`. Returns whether it has stopped.
    ///
    /// Panics if the point has already stopped (a broken caller invariant).
    pub fn push(&mut self, config: &BerConfig, batch: &ErrorTally) -> bool {
        assert!(
            self.stop.is_none(),
            "a batch pushed after the point stopped"
        );
        self.tally.add(batch);
        self.batches += 1;
        if self.tally.bit_errors >= config.min_errors {
            self.stop = Some(StopReason::MinErrors);
        } else if self.tally.frames >= config.max_frames {
            self.stop = Some(StopReason::MaxFrames);
        }
        self.is_done()
    }

    /// The table row of a stopped point; `None` while it needs more batches.
    pub fn row(&self, detector: &str, snr_db: f64) -> Option<BerPoint> {
        self.stop
            .map(|stop| BerPoint::new(detector.to_string(), snr_db, &self.tally, stop))
    }
}

/// Why a point stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The bit errors reached `min_errors`.
    MinErrors,
    /// The frames reached `max_frames` first.
    MaxFrames,
}

/// Running error counts of one detector at one SNR point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorTally {
    /// Frames counted.
    pub frames: u64,
    /// Bits counted.
    pub bits: u64,
    /// Bit errors.
    pub bit_errors: u64,
    /// Complex symbols counted.
    pub symbols: u64,
    /// Complex symbols with at least one wrong real dimension.
    pub symbol_errors: u64,
}

impl ErrorTally {
    fn add(&mut self, other: &ErrorTally) {
        self.frames += other.frames;
        self.bits += other.bits;
        self.bit_errors += other.bit_errors;
        self.symbols += other.symbols;
        self.symbol_errors += other.symbol_errors;
    }

    /// Counts the errors of `decisions` against the transmitted levels of `batch`.
    ///
    /// Real dimension `j` of stream `s` is `j = s` (real part) and `j = s + Nt` (imaginary part,
    /// absent for BPSK), following the real-valued equivalent x̃ = [Re x; Im x].
    pub fn count(
        batch: &FrameBatch,
        decisions: &[i32],
        detector: &str,
    ) -> Result<ErrorTally, ModelError> {
        batch.check_decisions(decisions)?;
        let modulation = batch.modulation();
        let nt = batch.link.nt;
        let dims = modulation.real_dims_per_symbol();
        let max = modulation.max_level();
        let mut tally = ErrorTally {
            frames: batch.frames as u64,
            bits: batch.frames as u64 * batch.link.bits_per_frame(),
            symbols: (batch.frames * nt) as u64,
            ..ErrorTally::default()
        };
        for f in 0..batch.frames {
            let sent = batch.x(f);
            let got = &decisions[f * batch.n..(f + 1) * batch.n];
            if let Some(pos) = got.iter().position(|&v| v & 1 == 0 || v.abs() > max) {
                return Err(ModelError::DetectFailed {
                    detector: detector.to_string(),
                    frame: f,
                    reason: format!(
                        "decision {} of dimension {pos} is not a {modulation} level",
                        got[pos]
                    ),
                });
            }
            for s in 0..nt {
                let mut wrong = false;
                for d in 0..dims {
                    let j = s + d * nt;
                    if sent[j] != got[j] {
                        wrong = true;
                        tally.bit_errors += u64::from(modulation.bit_errors(sent[j], got[j]));
                    }
                }
                tally.symbol_errors += u64::from(wrong);
            }
        }
        Ok(tally)
    }
}

/// The result of one detector at one SNR point; one row of the BER table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BerPoint {
    /// Detector name ([`Detector::name`]).
    pub detector: String,
    /// SNR in dB (per receive antenna).
    pub snr_db: f64,
    /// Bit error rate, `bit_errors / bits`.
    pub ber: f64,
    /// Lower end of the 95 % Wilson interval of the BER.
    pub ber_ci_low: f64,
    /// Upper end of the 95 % Wilson interval of the BER.
    pub ber_ci_high: f64,
    /// Symbol error rate, `symbol_errors / symbols`.
    pub ser: f64,
    /// Bit errors.
    pub bit_errors: u64,
    /// Bits simulated.
    pub bits: u64,
    /// Symbol errors.
    pub symbol_errors: u64,
    /// Complex symbols simulated.
    pub symbols: u64,
    /// Frames simulated.
    pub frames: u64,
    /// Why the point stopped.
    pub stop: StopReason,
}

impl BerPoint {
    fn new(detector: String, snr_db: f64, tally: &ErrorTally, stop: StopReason) -> Self {
        let (ber_ci_low, ber_ci_high) = wilson_interval(tally.bit_errors, tally.bits, Z_95);
        let ratio = |e: u64, n: u64| if n == 0 { 0.0 } else { e as f64 / n as f64 };
        Self {
            detector,
            snr_db,
            ber: ratio(tally.bit_errors, tally.bits),
            ber_ci_low,
            ber_ci_high,
            ser: ratio(tally.symbol_errors, tally.symbols),
            bit_errors: tally.bit_errors,
            bits: tally.bits,
            symbol_errors: tally.symbol_errors,
            symbols: tally.symbols,
            frames: tally.frames,
            stop,
        }
    }
}

/// The Wilson score interval of a binomial proportion with `errors` successes in `n` trials at
/// normal quantile `z` (1.959964 for 95 %). Returns `(0, 1)` when `n = 0`.
pub fn wilson_interval(errors: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n = n as f64;
    let p = errors as f64 / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // The ends are exactly 0 and 1 when no trial (or every trial) is an error; the formula
    // would leave rounding residue there.
    let low = if errors == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let high = if errors as f64 == n {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    (low, high)
}

/// Progress of the SNR point being simulated, reported after every wave.
#[derive(Debug, Clone, Copy)]
pub struct BerProgress<'a> {
    /// Index of the current SNR point.
    pub snr_index: usize,
    /// Number of SNR points.
    pub snr_points: usize,
    /// The current SNR in dB.
    pub snr_db: f64,
    /// Detector names, in the order given to [`simulate`].
    pub detectors: &'a [String],
    /// Counts so far of each detector at this point.
    pub tallies: &'a [ErrorTally],
    /// Whether each detector's point has stopped.
    pub done: &'a [bool],
    /// The configuration being run (for the stopping targets).
    pub config: &'a BerConfig,
}

impl BerProgress<'_> {
    /// Fraction of the current point done: the least advanced detector's progress towards
    /// whichever of its targets (errors, frames) is nearer.
    pub fn point_fraction(&self) -> f64 {
        self.tallies
            .iter()
            .zip(self.done)
            .map(|(t, &done)| {
                if done {
                    1.0
                } else {
                    let e = t.bit_errors as f64 / self.config.min_errors as f64;
                    let f = t.frames as f64 / self.config.max_frames as f64;
                    e.max(f).min(1.0)
                }
            })
            .fold(1.0, f64::min)
    }
}

/// Runs the Monte-Carlo simulation of `detectors` over `config.snr_db`.
///
/// Returns one [`BerPoint`] per detector and SNR point, detector-major (all SNR points of the
/// first detector, then the second, …). `progress`, if given, is called on the calling thread
/// after every wave of batches.
pub fn simulate(
    config: &BerConfig,
    detectors: &[&dyn Detector],
    mut progress: Option<&mut dyn FnMut(&BerProgress)>,
) -> Result<Vec<BerPoint>, ModelError> {
    config.validate()?;
    if detectors.is_empty() {
        return Err(ModelError::InvalidDimension {
            name: "detectors",
            value: 0,
            reason: "at least one detector is needed",
        });
    }
    let pool = worker_pool(config.threads)?;
    let names: Vec<String> = detectors.iter().map(|d| d.name()).collect();
    let mut rows: Vec<Vec<BerPoint>> =
        vec![Vec::with_capacity(config.snr_db.len()); detectors.len()];
    let total_batches = config.batches_per_point();

    for (point, &snr_db) in config.snr_db.iter().enumerate() {
        let mut states = vec![PointState::default(); detectors.len()];
        let mut next_batch = 0u64;
        let mut wave = 0usize;
        while states.iter().any(|s| !s.is_done()) {
            let size = WAVE_BATCHES[wave.min(WAVE_BATCHES.len() - 1)];
            let end = (next_batch + size).min(total_batches);
            let active: Vec<usize> = (0..detectors.len())
                .filter(|&d| !states[d].is_done())
                .collect();
            let run_wave = || {
                (next_batch..end)
                    .into_par_iter()
                    .map(|b| run_batch(config, detectors, &names, &active, point, snr_db, b))
                    .collect::<Result<Vec<Vec<ErrorTally>>, ModelError>>()
            };
            let results = match &pool {
                Some(pool) => pool.install(run_wave)?,
                None => run_wave()?,
            };
            // Merge in batch order; each detector stops at its first qualifying prefix.
            for batch_tallies in &results {
                for (slot, &d) in active.iter().enumerate() {
                    if !states[d].is_done() {
                        states[d].push(config, &batch_tallies[slot]);
                    }
                }
            }
            next_batch = end;
            wave += 1;
            if let Some(report) = progress.as_mut() {
                let tallies: Vec<ErrorTally> = states.iter().map(|s| s.tally).collect();
                let done: Vec<bool> = states.iter().map(PointState::is_done).collect();
                report(&BerProgress {
                    snr_index: point,
                    snr_points: config.snr_db.len(),
                    snr_db,
                    detectors: &names,
                    tallies: &tallies,
                    done: &done,
                    config,
                });
            }
        }
        for (d, state) in states.iter().enumerate() {
            let row = state
                .row(&names[d], snr_db)
                .expect("every detector has stopped when the point loop ends");
            rows[d].push(row);
        }
    }
    Ok(rows.into_iter().flatten().collect())
}

/// A local pool of `threads` workers, or `None` for rayon's global pool.
fn worker_pool(threads: Option<usize>) -> Result<Option<rayon::ThreadPool>, ModelError> {
    threads
        .map(|n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| ModelError::Shape(format!("cannot start {n} worker threads: {e}")))
        })
        .transpose()
}

/// Draws batch `batch` of point `point` and counts the errors of each active detector on it.
pub(crate) fn run_batch(
    config: &BerConfig,
    detectors: &[&dyn Detector],
    names: &[String],
    active: &[usize],
    point: usize,
    snr_db: f64,
    batch: u64,
) -> Result<Vec<ErrorTally>, ModelError> {
    let frames = config.frames_in_batch(batch) as usize;
    let mut generator = config.link.generator()?;
    let mut rng = stream_rng(config.seed, BerConfig::stream(point, batch));
    let frames_batch = generator.generate(&vec![snr_db; frames], &mut rng);
    let mut decisions = vec![0i32; frames * frames_batch.n];
    active
        .iter()
        .map(|&d| {
            detectors[d].detect(&frames_batch, &mut decisions)?;
            ErrorTally::count(&frames_batch, &decisions, &names[d])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modulation::Modulation;

    /// Per-column matched filter: x̂_j = slice(h_jᵀ y / h_jᵀ h_j). Ignores inter-stream
    /// interference; for a 1×1 link it is the ML detector.
    pub(super) struct MatchedFilter;

    impl Detector for MatchedFilter {
        fn name(&self) -> String {
            "mf".into()
        }

        fn detect(&self, batch: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError> {
            batch.check_decisions(decisions)?;
            let (m, n) = (batch.m, batch.n);
            for f in 0..batch.frames {
                let (h, y) = (batch.h(f), batch.y(f));
                for j in 0..n {
                    let (mut hy, mut hh) = (0.0, 0.0);
                    for i in 0..m {
                        hy += h[i * n + j] * y[i];
                        hh += h[i * n + j] * h[i * n + j];
                    }
                    decisions[f * n + j] = batch.modulation().slice(hy / hh);
                }
            }
            Ok(())
        }
    }

    /// Knows the transmitted symbols: never wrong.
    pub(super) struct Genie;

    impl Detector for Genie {
        fn name(&self) -> String {
            "genie".into()
        }

        fn detect(&self, batch: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError> {
            decisions.copy_from_slice(&batch.x);
            Ok(())
        }
    }

    /// Returns an even number, which no alphabet contains.
    struct Broken;

    impl Detector for Broken {
        fn name(&self) -> String {
            "broken".into()
        }

        fn detect(&self, _batch: &FrameBatch, decisions: &mut [i32]) -> Result<(), ModelError> {
            decisions.fill(0);
            Ok(())
        }
    }

    fn config(link: LinkConfig, snr_db: Vec<f64>, min_errors: u64, max_frames: u64) -> BerConfig {
        BerConfig::new(link, snr_db, min_errors, max_frames, 7)
    }

    #[test]
    fn wilson_interval_matches_published_values() {
        // Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson score).
        for (x, n, lo, hi) in [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ] {
            let (l, h) = wilson_interval(x, n, Z_95);
            assert!((l - lo).abs() < 5e-5, "{x}/{n}: low {l}, want {lo}");
            assert!((h - hi).abs() < 5e-5, "{x}/{n}: high {h}, want {hi}");
        }
        // Closed forms: 0/n has upper end z²/(n + z²); n/n is its mirror.
        let (l, h) = wilson_interval(0, 12_800_000, Z_95);
        assert_eq!(l, 0.0);
        let n = 12_800_000.0;
        assert!((h - Z_95 * Z_95 / (n + Z_95 * Z_95)).abs() < 1e-15);
        let (l, h) = wilson_interval(0, 100, Z_95);
        assert_eq!(l, 0.0);
        assert!((h - Z_95 * Z_95 / (100.0 + Z_95 * Z_95)).abs() < 1e-12);
        let (l, h) = wilson_interval(100, 100, Z_95);
        assert!((l - 100.0 / (100.0 + Z_95 * Z_95)).abs() < 1e-12);
        assert_eq!(h, 1.0);
        assert_eq!(wilson_interval(0, 0, Z_95), (0.0, 1.0));
    }

    #[test]
    fn bpsk_1x1_rayleigh_matches_closed_form() {
        // For 1×1 BPSK, Es = 1 and E|h|² = 1/Nr = 1, so the per-receive-antenna SNR
        // (Nt/Nr)·Es/σ² is 1/σ² = γ, the average SNR of the closed form
        // P_b = ½(1 − √(γ/(1+γ))) for coherent BPSK over Rayleigh fading.
        let link = LinkConfig::new(1, 1, Modulation::Bpsk).unwrap();
        let snrs = vec![0.0, 5.0, 10.0, 15.0];
        let mut cfg = config(link, snrs.clone(), 3000, 4_000_000);
        cfg.seed = 2024;
        let rows = simulate(&cfg, &[&MatchedFilter], None).unwrap();
        assert_eq!(rows.len(), snrs.len());
        for (row, &snr) in rows.iter().zip(&snrs) {
            let g = crate::link::db_to_linear(snr);
            let want = 0.5 * (1.0 - (g / (1.0 + g)).sqrt());
            assert_eq!(row.snr_db, snr);
            assert_eq!(row.stop, StopReason::MinErrors);
            assert!(row.bit_errors >= 3000);
            assert!(
                row.ber_ci_low <= want && want <= row.ber_ci_high,
                "{snr} dB: closed form {want} outside [{}, {}] (BER {})",
                row.ber_ci_low,
                row.ber_ci_high,
                row.ber
            );
            // BPSK: one bit per symbol, so SER equals BER.
            assert_eq!(row.ser, row.ber);
        }
    }

    #[test]
    fn results_do_not_depend_on_thread_count() {
        let link = LinkConfig::new(4, 4, Modulation::Qam16).unwrap();
        let mut cfg = config(link, vec![5.0, 15.0, 25.0], 2000, 20_000);
        cfg.batch_frames = 64;
        let detectors: [&dyn Detector; 2] = [&MatchedFilter, &Genie];
        cfg.threads = Some(1);
        let one = simulate(&cfg, &detectors, None).unwrap();
        cfg.threads = Some(2);
        let two = simulate(&cfg, &detectors, None).unwrap();
        cfg.threads = None;
        let global = simulate(&cfg, &detectors, None).unwrap();
        assert_eq!(one, two);
        assert_eq!(one, global);
        cfg.seed += 1;
        let other = simulate(&cfg, &detectors, None).unwrap();
        assert_ne!(one, other);
        let mf_rows = |rows: &[BerPoint]| -> Vec<u64> {
            rows.iter()
                .filter(|r| r.detector == "mf")
                .map(|r| r.bit_errors)
                .collect()
        };
        assert_ne!(mf_rows(&one), mf_rows(&other));
    }

    #[test]
    fn point_stops_at_first_batch_reaching_min_errors() {
        let link = LinkConfig::new(2, 2, Modulation::Qpsk).unwrap();
        let mut cfg = config(link, vec![0.0], 500, 1_000_000);
        cfg.batch_frames = 32;
        let row = simulate(&cfg, &[&MatchedFilter], None).unwrap().remove(0);
        assert_eq!(row.stop, StopReason::MinErrors);
        assert!(row.bit_errors >= 500);
        assert_eq!(row.frames % 32, 0);
        assert_eq!(row.bits, row.frames * 4);
        assert_eq!(row.symbols, row.frames * 2);
        // One batch fewer must fall short of the target: the point stopped at the first
        // qualifying prefix, not later.
        cfg.max_frames = row.frames - 32;
        let shorter = simulate(&cfg, &[&MatchedFilter], None).unwrap().remove(0);
        assert_eq!(shorter.stop, StopReason::MaxFrames);
        assert_eq!(shorter.frames, row.frames - 32);
        assert!(shorter.bit_errors < 500);
    }

    #[test]
    fn frame_cap_is_exact_and_detectors_share_frames() {
        let link = LinkConfig::new(2, 2, Modulation::Qpsk).unwrap();
        let mut cfg = config(link, vec![10.0, 20.0], 1_000_000, 1000);
        cfg.batch_frames = 256;
        let rows = simulate(&cfg, &[&Genie, &MatchedFilter, &MatchedFilter], None).unwrap();
        assert_eq!(rows.len(), 6);
        for row in &rows {
            assert_eq!(row.frames, 1000, "{row:?}");
            assert_eq!(row.stop, StopReason::MaxFrames);
        }
        // Detector-major order.
        let order: Vec<(&str, f64)> = rows
            .iter()
            .map(|r| (r.detector.as_str(), r.snr_db))
            .collect();
        assert_eq!(order[0], ("genie", 10.0));
        assert_eq!(order[1], ("genie", 20.0));
        assert_eq!(order[2], ("mf", 10.0));
        let genie = &rows[0];
        assert_eq!(
            (genie.bit_errors, genie.symbol_errors, genie.ber),
            (0, 0, 0.0)
        );
        assert_eq!(genie.ber_ci_low, 0.0);
        assert!(genie.ber_ci_high > 0.0);
        // Two copies of one detector on the same frames count the same errors.
        assert_eq!(rows[2], rows[4]);
        assert_eq!(rows[3], rows[5]);
        assert!(rows[2].bit_errors > 0);
    }

    #[test]
    fn counts_bit_and_symbol_errors_per_complex_symbol() {
        let link = LinkConfig::new(3, 3, Modulation::Qam16).unwrap();
        let mut generator = link.generator().unwrap();
        let batch = generator.generate(&[10.0; 5], &mut stream_rng(3, 0));
        let m = Modulation::Qam16;
        let mut decisions = batch.x.clone();
        // Frame 0: stream 1 wrong in both dimensions (one symbol error).
        // Frame 1: stream 2 wrong in its imaginary dimension only (one symbol error).
        let flip = |v: i32| if v == 3 { -3 } else { 3 };
        let mut want_bits = 0;
        for j in [1, 1 + 3] {
            let old = decisions[j];
            decisions[j] = flip(old);
            want_bits += m.bit_errors(old, decisions[j]) as u64;
        }
        let j = 6 + 2 + 3;
        let old = decisions[j];
        decisions[j] = flip(old);
        want_bits += m.bit_errors(old, decisions[j]) as u64;
        let tally = ErrorTally::count(&batch, &decisions, "test").unwrap();
        assert_eq!(tally.frames, 5);
        assert_eq!(tally.bits, 5 * 3 * 4);
        assert_eq!(tally.symbols, 15);
        assert_eq!(tally.symbol_errors, 2);
        assert_eq!(tally.bit_errors, want_bits);
        assert!(want_bits >= 3);
    }

    #[test]
    fn rejects_bad_configs_and_decisions() {
        let link = LinkConfig::new(2, 2, Modulation::Qpsk).unwrap();
        let good = config(link.clone(), vec![0.0], 10, 100);
        let mut bad = good.clone();
        bad.snr_db = vec![f64::NAN];
        assert!(matches!(
            simulate(&bad, &[&Genie], None),
            Err(ModelError::InvalidParameter { name: "snr_db", .. })
        ));
        for (field, mutate) in [
            (
                "min_errors",
                &(|c: &mut BerConfig| c.min_errors = 0) as &dyn Fn(&mut BerConfig),
            ),
            ("max_frames", &|c: &mut BerConfig| c.max_frames = 0),
            ("batch_frames", &|c: &mut BerConfig| c.batch_frames = 0),
            ("threads", &|c: &mut BerConfig| c.threads = Some(0)),
            ("snr_db", &|c: &mut BerConfig| c.snr_db.clear()),
        ] {
            let mut c = good.clone();
            mutate(&mut c);
            match c.validate() {
                Err(ModelError::InvalidDimension { name, .. }) => assert_eq!(name, field),
                other => panic!("{field}: expected InvalidDimension, got {other:?}"),
            }
        }
        assert!(simulate(&good, &[], None).is_err());
        match simulate(&good, &[&Broken], None) {
            Err(ModelError::DetectFailed { detector, .. }) => assert_eq!(detector, "broken"),
            other => panic!("expected DetectFailed, got {other:?}"),
        }
    }

    #[test]
    fn progress_reports_every_wave_until_done() {
        let link = LinkConfig::new(2, 2, Modulation::Qpsk).unwrap();
        let mut cfg = config(link, vec![0.0, 30.0], 200, 3000);
        cfg.batch_frames = 100;
        let mut calls = Vec::new();
        let mut record = |p: &BerProgress| {
            calls.push((p.snr_index, p.point_fraction(), p.tallies[0].frames));
        };
        simulate(&cfg, &[&MatchedFilter], Some(&mut record)).unwrap();
        assert!(calls.len() >= 2);
        assert_eq!(calls.first().unwrap().0, 0);
        assert_eq!(calls.last().unwrap().0, 1);
        assert_eq!(calls.last().unwrap().1, 1.0);
        // Frames of a point only grow from wave to wave.
        for w in calls.windows(2) {
            if w[0].0 == w[1].0 {
                assert!(w[1].2 >= w[0].2);
            }
        }
    }
}
