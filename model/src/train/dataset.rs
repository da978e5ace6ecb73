//! Training and validation data in f32: [`TrainSet`] and the per-epoch [`Minibatcher`].
//!
//! A set is drawn once from a seed with the link's [`FrameGenerator`]. It is generated in chunks
//! of [`CHUNK_SAMPLES`] samples (rounded up to whole channel blocks with block fading);
//! chunk `c` of a set draws from its own ChaCha stream `stream_rng(seed, base + c)` (first one
//! SNR per channel block — per sample without block fading — uniformly from the configured set,
//! then the frames), so the contents depend only on (seed, set kind, link, sample count, SNR
//! set) and never on the thread count, although chunks are generated in parallel.
//!
//! With block fading (`link.block` = T) the samples of a block share one channel and one SNR,
//! and [`Minibatcher::with_block`] shuffles whole blocks, so a minibatch holds whole blocks and
//! a detector's per-channel stage runs once per block in training too.
//!
//! Buffers are contiguous and row-major, sample after sample: H̃ (`m × n` per sample), ỹ (`m`),
//! x̃ (`n`, the alphabet levels as f32), σ² and the SNR in dB. The [`Minibatcher`] shuffles the
//! sample order once per epoch with its own seeded stream and gathers each minibatch into reused
//! contiguous buffers, handed to the net as a [`TrainBatch`].

use rand::Rng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::error::ModelError;
use crate::link::{FrameBatch, LinkConfig, stream_rng};
use crate::unfolded::TrainBatch;

/// Samples per generation chunk (one ChaCha stream each). Changing it changes every data set.
pub const CHUNK_SAMPLES: usize = 1024;

/// Which data set a stream belongs to. Each kind owns a disjoint range of ChaCha streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// The training set.
    Train,
    /// The validation set used for the validation loss.
    Validation,
    /// A fixed-SNR validation set used for the validation BER; the index tells the SNR point.
    BerProbe(u32),
}

impl SetKind {
    /// First ChaCha stream of this set; chunk `c` uses stream `base + c`.
    fn base_stream(self) -> u64 {
        match self {
            Self::Train => 1 << 32,
            Self::Validation => 2 << 32,
            Self::BerProbe(i) => (3 << 32) + ((i as u64) << 24),
        }
    }
}

/// ChaCha stream of the sample order of training epoch `epoch`.
pub(crate) fn shuffle_stream(epoch: usize) -> u64 {
    (4 << 32) + epoch as u64
}

/// A data set of `len` samples of one link in contiguous f32 buffers.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSet {
    link: LinkConfig,
    len: usize,
    m: usize,
    n: usize,
    h: Vec<f32>,
    y: Vec<f32>,
    x: Vec<f32>,
    noise_var: Vec<f32>,
    snr_db: Vec<f32>,
}

impl TrainSet {
    /// Draws `samples` samples with per-sample SNR uniform over `snr_db` (dB).
    pub fn generate(
        link: &LinkConfig,
        samples: usize,
        snr_db: &[f64],
        seed: u64,
        kind: SetKind,
    ) -> Result<Self, ModelError> {
        if samples == 0 {
            return Err(ModelError::InvalidDimension {
                name: "samples",
                value: samples,
                reason: "a data set needs at least one sample",
            });
        }
        if snr_db.is_empty() {
            return Err(ModelError::InvalidParameter {
                name: "snr_db",
                value: f64::NAN,
                reason: "the SNR set is empty",
            });
        }
        if let Some(&bad) = snr_db.iter().find(|v| !v.is_finite()) {
            return Err(ModelError::InvalidParameter {
                name: "snr_db",
                value: bad,
                reason: "every SNR must be finite",
            });
        }
        let generator = link.generator()?;
        let (m, n) = (link.m(), link.n());
        let mut set = Self {
            link: link.clone(),
            len: samples,
            m,
            n,
            h: vec![0.0; samples * m * n],
            y: vec![0.0; samples * m],
            x: vec![0.0; samples * n],
            noise_var: vec![0.0; samples],
            snr_db: vec![0.0; samples],
        };
        let base = kind.base_stream();
        let block = link.block.max(1);
        let chunk_samples = CHUNK_SAMPLES.div_ceil(block) * block;
        set.h
            .par_chunks_mut(chunk_samples * m * n)
            .zip(set.y.par_chunks_mut(chunk_samples * m))
            .zip(set.x.par_chunks_mut(chunk_samples * n))
            .zip(set.noise_var.par_chunks_mut(chunk_samples))
            .zip(set.snr_db.par_chunks_mut(chunk_samples))
            .enumerate()
            .for_each_init(
                || (generator.clone(), FrameBatch::empty(link), Vec::new()),
                |(generator, frames, snrs), (chunk, ((((h, y), x), noise_var), snr_out))| {
                    let mut rng = stream_rng(seed, base + chunk as u64);
                    let count = noise_var.len();
                    snrs.clear();
                    for _ in 0..count.div_ceil(block) {
                        let snr = snr_db[rng.random_range(0..snr_db.len())];
                        let left = count - snrs.len();
                        snrs.extend(std::iter::repeat_n(snr, block.min(left)));
                    }
                    generator.fill(frames, snrs, &mut rng);
                    copy_f32(h, &frames.h);
                    copy_f32(y, &frames.y);
                    for (dst, &src) in x.iter_mut().zip(&frames.x) {
                        *dst = src as f32;
                    }
                    copy_f32(noise_var, &frames.noise_var);
                    copy_f32(snr_out, &frames.snr_db);
                },
            );
        Ok(set)
    }

    /// The link the samples were drawn from.
    pub fn link(&self) -> &LinkConfig {
        &self.link
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set holds no samples (never true for a generated set).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows of H̃.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Columns of H̃.
    pub fn n(&self) -> usize {
        self.n
    }

    /// H̃ of every sample, `len × m × n`.
    pub fn h(&self) -> &[f32] {
        &self.h
    }

    /// ỹ of every sample, `len × m`.
    pub fn y(&self) -> &[f32] {
        &self.y
    }

    /// x̃ of every sample, `len × n`.
    pub fn x(&self) -> &[f32] {
        &self.x
    }

    /// σ² of every sample.
    pub fn noise_var(&self) -> &[f32] {
        &self.noise_var
    }

    /// SNR in dB of every sample.
    pub fn snr_db(&self) -> &[f32] {
        &self.snr_db
    }

    /// Mutable ỹ, for tests that poison a sample.
    #[cfg(test)]
    pub(crate) fn y_mut(&mut self) -> &mut [f32] {
        &mut self.y
    }

    /// The whole set as one batch.
    pub fn as_batch(&self) -> TrainBatch<'_> {
        self.range_batch(0, self.len)
    }

    /// Samples `start..end` as one batch (no copy).
    pub fn range_batch(&self, start: usize, end: usize) -> TrainBatch<'_> {
        let (m, n) = (self.m, self.n);
        TrainBatch {
            batch: end - start,
            m,
            n,
            h: &self.h[start * m * n..end * m * n],
            y: &self.y[start * m..end * m],
            x: &self.x[start * n..end * n],
            noise_var: &self.noise_var[start..end],
        }
    }
}

fn copy_f32(dst: &mut [f32], src: &[f64]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s as f32;
    }
}

/// Shuffled minibatches of a [`TrainSet`], gathered into reused contiguous buffers.
///
/// Every epoch visits every sample once; the last minibatch of an epoch holds the remainder
/// when the batch size does not divide the set.
#[derive(Debug)]
pub struct Minibatcher {
    batch: usize,
    /// Samples per shuffled unit (the channel block).
    block: usize,
    /// Samples of the set.
    len: usize,
    order: Vec<usize>,
    h: Vec<f32>,
    y: Vec<f32>,
    x: Vec<f32>,
    noise_var: Vec<f32>,
}

impl Minibatcher {
    /// A minibatcher of `batch` samples per step over a set of `len` samples.
    pub fn new(len: usize, batch: usize) -> Self {
        Self::with_block(len, batch, 1)
    }

    /// A minibatcher that keeps blocks of `block` consecutive samples together: the epoch order
    /// shuffles blocks, and a minibatch holds ⌈`batch`/`block`⌉ whole blocks (the set's last
    /// block may be shorter). `block` = 1 is [`Minibatcher::new`].
    pub fn with_block(len: usize, batch: usize, block: usize) -> Self {
        let block = block.max(1);
        let batch = if block == 1 {
            batch
        } else {
            batch.div_ceil(block) * block
        };
        Self {
            batch,
            block,
            len,
            order: (0..len).collect(),
            h: Vec::new(),
            y: Vec::new(),
            x: Vec::new(),
            noise_var: Vec::new(),
        }
    }

    /// Number of minibatches per epoch.
    pub fn batches(&self) -> usize {
        self.order.len().div_ceil(self.batch)
    }

    /// Draws the sample order of `epoch` from stream [`shuffle_stream`] of `seed`.
    pub fn shuffle(&mut self, seed: u64, epoch: usize) {
        if self.block == 1 {
            self.order.sort_unstable();
            self.order
                .shuffle(&mut stream_rng(seed, shuffle_stream(epoch)));
            return;
        }
        let mut blocks: Vec<usize> = (0..self.len.div_ceil(self.block)).collect();
        blocks.shuffle(&mut stream_rng(seed, shuffle_stream(epoch)));
        self.order.clear();
        for b in blocks {
            self.order
                .extend(b * self.block..((b + 1) * self.block).min(self.len));
        }
    }

    /// The sample indices of minibatch `index` in the current order.
    pub fn indices(&self, index: usize) -> &[usize] {
        let start = index * self.batch;
        let end = (start + self.batch).min(self.order.len());
        &self.order[start..end]
    }

    /// Gathers minibatch `index` of the current order from `set`.
    pub fn gather<'a>(&'a mut self, set: &TrainSet, index: usize) -> TrainBatch<'a> {
        let (m, n) = (set.m, set.n);
        let start = index * self.batch;
        let end = (start + self.batch).min(self.order.len());
        let count = end - start;
        self.h.resize(count * m * n, 0.0);
        self.y.resize(count * m, 0.0);
        self.x.resize(count * n, 0.0);
        self.noise_var.resize(count, 0.0);
        for (slot, &s) in self.order[start..end].iter().enumerate() {
            self.h[slot * m * n..(slot + 1) * m * n]
                .copy_from_slice(&set.h[s * m * n..(s + 1) * m * n]);
            self.y[slot * m..(slot + 1) * m].copy_from_slice(&set.y[s * m..(s + 1) * m]);
            self.x[slot * n..(slot + 1) * n].copy_from_slice(&set.x[s * n..(s + 1) * n]);
            self.noise_var[slot] = set.noise_var[s];
        }
        TrainBatch {
            batch: count,
            m,
            n,
            h: &self.h,
            y: &self.y,
            x: &self.x,
            noise_var: &self.noise_var,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modulation::Modulation;

    fn link() -> LinkConfig {
        LinkConfig::new(2, 3, Modulation::Qam16).unwrap()
    }

    const SNRS: [f64; 3] = [0.0, 10.0, 20.0];

    #[test]
    fn same_seed_same_set_regardless_of_threads() {
        let samples = 2 * CHUNK_SAMPLES + 17;
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| TrainSet::generate(&link(), samples, &SNRS, 5, SetKind::Train).unwrap());
        let two = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
            .install(|| TrainSet::generate(&link(), samples, &SNRS, 5, SetKind::Train).unwrap());
        assert_eq!(one, two);
        let other_seed = TrainSet::generate(&link(), samples, &SNRS, 6, SetKind::Train).unwrap();
        assert_ne!(one.h(), other_seed.h());
        let validation =
            TrainSet::generate(&link(), samples, &SNRS, 5, SetKind::Validation).unwrap();
        assert_ne!(
            one.h(),
            validation.h(),
            "train and validation share a stream"
        );
    }

    #[test]
    fn snr_is_drawn_from_the_set_and_covers_it() {
        let set = TrainSet::generate(&link(), 3000, &SNRS, 1, SetKind::Train).unwrap();
        let mut counts = [0usize; 3];
        for (i, &snr) in set.snr_db().iter().enumerate() {
            let k = SNRS
                .iter()
                .position(|&s| s as f32 == snr)
                .unwrap_or_else(|| panic!("sample {i} has SNR {snr} outside the set"));
            counts[k] += 1;
            let want = link().noise_var(SNRS[k]) as f32;
            assert_eq!(set.noise_var()[i], want, "sample {i}");
        }
        for (k, &c) in counts.iter().enumerate() {
            // Uniform: 1000 expected per point, binomial std ≈ 26.
            assert!((850..1150).contains(&c), "SNR {} drawn {c} times", SNRS[k]);
        }
    }

    #[test]
    fn samples_follow_the_link_model() {
        let set = TrainSet::generate(&link(), 200, &[30.0], 3, SetKind::Validation).unwrap();
        let (m, n) = (set.m(), set.n());
        assert_eq!((m, n), (6, 4));
        for s in 0..set.len() {
            let x = &set.x()[s * n..(s + 1) * n];
            assert!(x.iter().all(|&v| [-3.0, -1.0, 1.0, 3.0].contains(&v)));
            // At 30 dB the residual y − Hx is the noise, σ²/2 = 2·10/3/1000/2 per dimension.
            let h = &set.h()[s * m * n..(s + 1) * m * n];
            for i in 0..m {
                let hx: f32 = (0..n).map(|j| h[i * n + j] * x[j]).sum();
                let r = set.y()[s * m + i] - hx;
                assert!(r.abs() < 0.5, "sample {s} row {i}: residual {r}");
            }
        }
    }

    #[test]
    fn rejects_empty_inputs() {
        assert!(TrainSet::generate(&link(), 0, &SNRS, 1, SetKind::Train).is_err());
        assert!(TrainSet::generate(&link(), 10, &[], 1, SetKind::Train).is_err());
        assert!(TrainSet::generate(&link(), 10, &[f64::NAN], 1, SetKind::Train).is_err());
    }

    #[test]
    fn minibatches_cover_every_sample_once_and_gather_correctly() {
        let set = TrainSet::generate(&link(), 50, &SNRS, 2, SetKind::Train).unwrap();
        let mut batcher = Minibatcher::new(set.len(), 16);
        assert_eq!(batcher.batches(), 4);
        batcher.shuffle(7, 0);
        let first_order: Vec<usize> = (0..4).flat_map(|b| batcher.indices(b).to_vec()).collect();
        let mut sorted = first_order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(first_order, sorted, "epoch order was not shuffled");

        let indices = batcher.indices(3).to_vec();
        assert_eq!(indices.len(), 2);
        let (m, n) = (set.m(), set.n());
        let batch = batcher.gather(&set, 3);
        assert_eq!(batch.batch, 2);
        for (slot, &s) in indices.iter().enumerate() {
            assert_eq!(
                &batch.h[slot * m * n..(slot + 1) * m * n],
                &set.h()[s * m * n..(s + 1) * m * n]
            );
            assert_eq!(
                &batch.y[slot * m..(slot + 1) * m],
                &set.y()[s * m..(s + 1) * m]
            );
            assert_eq!(
                &batch.x[slot * n..(slot + 1) * n],
                &set.x()[s * n..(s + 1) * n]
            );
            assert_eq!(batch.noise_var[slot], set.noise_var()[s]);
        }

        batcher.shuffle(7, 1);
        let second: Vec<usize> = (0..4).flat_map(|b| batcher.indices(b).to_vec()).collect();
        assert_ne!(first_order, second, "epochs share one order");
        batcher.shuffle(7, 0);
        let again: Vec<usize> = (0..4).flat_map(|b| batcher.indices(b).to_vec()).collect();
        assert_eq!(first_order, again, "shuffle is not reproducible");
    }
}
