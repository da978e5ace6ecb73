//! The MIMO link simulator (docs/system-model.md, normative): y = Hx + n and its real-valued equivalent.
//!
//! * Channels are i.i.d. Rayleigh with entries CN(0, 1/Nr), or Kronecker-correlated
//!   H = R_rx^{1/2} H_w R_tx^{1/2 T} with exponential correlation R_ij = ρ^{|i−j|} on each side
//!   (the square roots are Cholesky factors, so E|h_ij|² stays 1/Nr).
//! * SNR is per receive antenna: SNR = E‖Hx‖²/E‖n‖² = (Nt/Nr)·Es/σ² with n ~ CN(0, σ²I).
//! * Real-valued equivalent (paper eq. 2): ỹ = [Re y; Im y], x̃ = [Re x; Im x],
//!   H̃ = [[Re H, −Im H], [Im H, Re H]], so M = 2Nr and N = 2Nt. For BPSK the imaginary part of x
//!   is identically zero and is dropped: x̃ = Re x, H̃ = [Re H; Im H], N = Nt.
//! * Randomness comes from ChaCha8 streams keyed by (seed, stream), so any batch can be
//!   regenerated on any thread and results never depend on the thread count.
//! * Block fading: with [`LinkConfig::block`] = T, one channel serves T consecutive frames of a
//!   [`FrameGenerator::fill`] call (frames 0..T, T..2T, …; a call whose length is not a multiple
//!   of T ends with a shorter block). T = 1 (the default) draws a channel per frame and consumes
//!   the random stream exactly as before block fading existed.
//! * Dataset channels ([`LinkConfig::dataset`], [`crate::channel::dataset`]): each channel
//!   block draws one channel of the file uniformly at random from the frame stream.
//! * Time variation ([`LinkConfig::doppler`], [`crate::channel::doppler`]): with f_D·T_s > 0
//!   the true channel moves frame by frame within a block (Clarke/Jakes) while the detectors
//!   keep the CSI of the block's first frame.
//! * Channel state information ([`LinkConfig::csi`], [`crate::channel::csi`]): with estimated
//!   CSI, `y` is drawn through the true channel while [`FrameBatch::h`] holds the estimate Ĥ
//!   from the pilots of the block's first frame, and [`FrameBatch::h_true`] the true H̃.
//!   Perfect CSI (the default) draws nothing more and leaves `h_true` empty.

use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::channel::csi::{Csi, Estimator};
use crate::channel::dataset::{ChannelSet, DatasetChannels};
use crate::channel::doppler::{JakesBlock, MAX_DOPPLER};
use crate::error::ModelError;
use crate::modulation::Modulation;

pub use kaq_ir::vocab::MAX_ANTENNAS;

/// The random channel model.
///
/// Read from JSON strictly: `{"kind": "rayleigh"}` or `{"kind": "kronecker", "rho_tx": …,
/// "rho_rx": …}`; a Rayleigh channel with a ρ, a Kronecker channel missing one, or any other
/// field is refused rather than dropped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", try_from = "ChannelFile")]
pub enum ChannelModel {
    /// i.i.d. entries CN(0, 1/Nr).
    Rayleigh,
    /// Kronecker model with exponential correlation ρ at the transmitter and receiver.
    Kronecker {
        /// Correlation between neighbouring transmit antennas, |ρ| < 1.
        rho_tx: f64,
        /// Correlation between neighbouring receive antennas, |ρ| < 1.
        rho_rx: f64,
    },
}

/// The JSON form of [`ChannelModel`], checked on conversion.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelFile {
    kind: String,
    rho_tx: Option<f64>,
    rho_rx: Option<f64>,
}

impl TryFrom<ChannelFile> for ChannelModel {
    type Error = String;

    fn try_from(file: ChannelFile) -> Result<Self, String> {
        match (file.kind.as_str(), file.rho_tx, file.rho_rx) {
            ("rayleigh", None, None) => Ok(ChannelModel::Rayleigh),
            ("rayleigh", ..) => Err("a rayleigh channel has no rho_tx or rho_rx \
                 (a correlated channel is \"kind\": \"kronecker\")"
                .to_string()),
            ("kronecker", Some(rho_tx), Some(rho_rx)) => {
                Ok(ChannelModel::Kronecker { rho_tx, rho_rx })
            }
            ("kronecker", ..) => Err("a kronecker channel needs both rho_tx and rho_rx".into()),
            (other, ..) => Err(format!(
                "unknown channel kind `{other}` (expected rayleigh or kronecker)"
            )),
        }
    }
}

/// Everything that defines the link: antenna counts, modulation and channel model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// Transmit antennas (users / streams).
    pub nt: usize,
    /// Receive antennas.
    pub nr: usize,
    /// Modulation of every stream.
    pub modulation: Modulation,
    /// Random channel model.
    pub channel: ChannelModel,
    /// Frames per channel block T (block fading), at least 1; 1 draws a channel per frame.
    /// Omitted from JSON when 1, so documents written before block fading stay identical.
    #[serde(default = "one_frame_per_block", skip_serializing_if = "is_one_frame")]
    pub block: usize,
    /// What the detectors know of the channel; omitted from JSON when perfect.
    #[serde(default, skip_serializing_if = "Csi::is_perfect")]
    pub csi: Csi,
    /// Channels drawn from a dataset file instead of [`Self::channel`] (which is then
    /// Rayleigh and unused); omitted from JSON when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetChannels>,
    /// Normalized Doppler f_D·T_s of the Clarke/Jakes time variation within a block
    /// ([`crate::channel::doppler`]); 0 (omitted from JSON) is block fading.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub doppler: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// Largest channel block accepted.
pub const MAX_BLOCK: usize = 1 << 16;

fn one_frame_per_block() -> usize {
    1
}

fn is_one_frame(block: &usize) -> bool {
    *block == 1
}

/// The exponential correlation matrix R_ij = ρ^{|i−j|} of size n.
pub fn exponential_correlation(n: usize, rho: f64) -> DMatrix<f64> {
    DMatrix::from_fn(n, n, |i, j| rho.powi(i.abs_diff(j) as i32))
}

/// A ChaCha8 generator for one independent stream of a seed.
pub fn stream_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Converts an SNR in dB to a linear ratio.
pub fn db_to_linear(db: f64) -> f64 {
    10f64.powf(db / 10.0)
}

impl LinkConfig {
    /// An i.i.d. Rayleigh link; validates the dimensions.
    pub fn new(nt: usize, nr: usize, modulation: Modulation) -> Result<Self, ModelError> {
        for (name, value) in [("nt", nt), ("nr", nr)] {
            if value == 0 {
                return Err(ModelError::InvalidDimension {
                    name,
                    value,
                    reason: "must be at least 1",
                });
            }
            if value > MAX_ANTENNAS {
                return Err(ModelError::InvalidDimension {
                    name,
                    value,
                    reason: "must be at most 256",
                });
            }
        }
        Ok(Self {
            nt,
            nr,
            modulation,
            channel: ChannelModel::Rayleigh,
            block: 1,
            csi: Csi::Perfect,
            dataset: None,
            doppler: 0.0,
        })
    }

    /// The same link with Clarke/Jakes time variation at normalized Doppler `fd` = f_D·T_s,
    /// 0 ≤ fd ≤ 0.5 (0 keeps block fading). It needs channel blocks of more than one frame,
    /// which [`Self::validate`] checks.
    pub fn with_doppler(mut self, fd: f64) -> Result<Self, ModelError> {
        if !fd.is_finite() || !(0.0..=MAX_DOPPLER).contains(&fd) {
            return Err(ModelError::InvalidParameter {
                name: "doppler",
                value: fd,
                reason: "normalized Doppler f_D*T_s must be between 0 and 0.5",
            });
        }
        self.doppler = fd;
        Ok(self)
    }

    /// The same link drawing its channels uniformly from a loaded dataset (one per block).
    pub fn with_dataset(mut self, dataset: DatasetChannels) -> Result<Self, ModelError> {
        self.dataset = Some(dataset);
        self.check_dataset()?;
        Ok(self)
    }

    fn check_dataset(&self) -> Result<(), ModelError> {
        let Some(dataset) = &self.dataset else {
            return Ok(());
        };
        if self.channel != ChannelModel::Rayleigh {
            return Err(ModelError::InvalidParameter {
                name: "rho",
                value: f64::NAN,
                reason: "dataset channels carry their own correlation; leave rho_tx and rho_rx at 0",
            });
        }
        if let Some(set) = &dataset.set
            && (set.nr, set.nt) != (self.nr, self.nt)
        {
            return Err(ModelError::Shape(format!(
                "dataset {} holds {}x{} channels (Nr x Nt), the link is {}x{}",
                dataset.file, set.nr, set.nt, self.nr, self.nt
            )));
        }
        Ok(())
    }

    /// The same link with channel state information `csi` for the detectors.
    pub fn with_csi(mut self, csi: Csi) -> Result<Self, ModelError> {
        csi.validate(self.nt)?;
        self.csi = csi;
        Ok(self)
    }

    /// The same link with block fading: one channel per `block` consecutive frames.
    pub fn with_block(mut self, block: usize) -> Result<Self, ModelError> {
        check_block(block)?;
        self.block = block;
        Ok(self)
    }

    /// Checks the dimensions, the correlation and the block length of a link that may have
    /// been built field by field or deserialized.
    pub fn validate(&self) -> Result<(), ModelError> {
        let link = Self::new(self.nt, self.nr, self.modulation)?;
        if let ChannelModel::Kronecker { rho_tx, rho_rx } = self.channel {
            link.with_correlation(rho_tx, rho_rx)?;
        }
        check_block(self.block)?;
        self.csi.validate(self.nt)?;
        self.check_dataset()?;
        self.clone().with_doppler(self.doppler)?;
        if self.doppler > 0.0 && self.block == 1 {
            return Err(ModelError::InvalidParameter {
                name: "doppler",
                value: self.doppler,
                reason: "time variation is within a channel block: set block above 1",
            });
        }
        if self.doppler > 0.0 && self.dataset.is_some() {
            return Err(ModelError::InvalidParameter {
                name: "doppler",
                value: self.doppler,
                reason: "dataset channels are static; time variation applies to the random models",
            });
        }
        Ok(())
    }

    /// The same link with Kronecker exponential correlation (ρ = 0 on both sides keeps Rayleigh).
    pub fn with_correlation(mut self, rho_tx: f64, rho_rx: f64) -> Result<Self, ModelError> {
        for (name, value) in [("rho_tx", rho_tx), ("rho_rx", rho_rx)] {
            if !value.is_finite() || value.abs() >= 1.0 {
                return Err(ModelError::InvalidParameter {
                    name,
                    value,
                    reason: "correlation must be finite with |rho| < 1",
                });
            }
        }
        self.channel = if rho_tx == 0.0 && rho_rx == 0.0 {
            ChannelModel::Rayleigh
        } else {
            ChannelModel::Kronecker { rho_tx, rho_rx }
        };
        Ok(self)
    }

    /// Rows of the real-valued equivalent, M = 2Nr.
    pub fn m(&self) -> usize {
        2 * self.nr
    }

    /// Columns of the real-valued equivalent: 2Nt (Nt for BPSK).
    pub fn n(&self) -> usize {
        self.nt * self.modulation.real_dims_per_symbol()
    }

    /// Bits per frame (all streams).
    pub fn bits_per_frame(&self) -> u64 {
        self.nt as u64 * self.modulation.bits_per_symbol() as u64
    }

    /// Complex noise variance σ² for a per-receive-antenna SNR in dB: σ² = (Nt/Nr)·Es/SNR.
    pub fn noise_var(&self, snr_db: f64) -> f64 {
        self.nt as f64 / self.nr as f64 * self.modulation.es() / db_to_linear(snr_db)
    }

    /// A generator of frames for this link (precomputes correlation factors).
    pub fn generator(&self) -> Result<FrameGenerator, ModelError> {
        FrameGenerator::new(self.clone())
    }
}

fn check_block(block: usize) -> Result<(), ModelError> {
    if block == 0 || block > MAX_BLOCK {
        return Err(ModelError::InvalidDimension {
            name: "block",
            value: block,
            reason: "frames per channel block must be between 1 and 65536",
        });
    }
    Ok(())
}

/// A batch of frames in real-valued form, row-major, frame after frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameBatch {
    /// The link the frames came from.
    pub link: LinkConfig,
    /// Number of frames.
    pub frames: usize,
    /// Rows of H̃ (2Nr).
    pub m: usize,
    /// Columns of H̃ (2Nt, or Nt for BPSK).
    pub n: usize,
    /// H̃ of every frame: `frames × m × n`, row-major.
    pub h: Vec<f64>,
    /// ỹ of every frame: `frames × m`.
    pub y: Vec<f64>,
    /// Transmitted levels x̃ of every frame: `frames × n`, each an odd integer of the alphabet.
    pub x: Vec<i32>,
    /// True H̃ of every frame (`frames × m × n`) when the detectors see another channel
    /// (estimated CSI, or time variation within a block); empty when `h` is the true channel.
    pub h_true: Vec<f64>,
    /// Complex noise variance σ² of every frame.
    pub noise_var: Vec<f64>,
    /// SNR in dB of every frame.
    pub snr_db: Vec<f64>,
}

impl FrameBatch {
    /// An empty batch for a link, ready for [`FrameGenerator::fill`].
    pub fn empty(link: &LinkConfig) -> Self {
        Self {
            link: link.clone(),
            frames: 0,
            m: link.m(),
            n: link.n(),
            h: Vec::new(),
            h_true: Vec::new(),
            y: Vec::new(),
            x: Vec::new(),
            noise_var: Vec::new(),
            snr_db: Vec::new(),
        }
    }

    /// H̃ of frame `f` (`m × n`, row-major).
    pub fn h(&self, f: usize) -> &[f64] {
        &self.h[f * self.m * self.n..(f + 1) * self.m * self.n]
    }

    /// The true H̃ of frame `f` through which `y` was drawn: [`Self::h_true`] when it is held,
    /// else [`Self::h`].
    pub fn true_h(&self, f: usize) -> &[f64] {
        let h = if self.h_true.is_empty() {
            &self.h
        } else {
            &self.h_true
        };
        &h[f * self.m * self.n..(f + 1) * self.m * self.n]
    }

    /// ỹ of frame `f`.
    pub fn y(&self, f: usize) -> &[f64] {
        &self.y[f * self.m..(f + 1) * self.m]
    }

    /// Transmitted x̃ of frame `f`.
    pub fn x(&self, f: usize) -> &[i32] {
        &self.x[f * self.n..(f + 1) * self.n]
    }

    /// Modulation of the link.
    pub fn modulation(&self) -> Modulation {
        self.link.modulation
    }

    /// Checks that a decision buffer fits this batch.
    pub fn check_decisions(&self, decisions: &[i32]) -> Result<(), ModelError> {
        if decisions.len() != self.frames * self.n {
            return Err(ModelError::Shape(format!(
                "decision buffer holds {} values, batch needs {} frames × {} = {}",
                decisions.len(),
                self.frames,
                self.n,
                self.frames * self.n
            )));
        }
        Ok(())
    }
}

/// Draws frames of one link. Holds the Cholesky factors of the correlation matrices.
#[derive(Debug, Clone)]
pub struct FrameGenerator {
    link: LinkConfig,
    /// Lower-triangular L_tx with L_tx L_txᵀ = R_tx, if correlated.
    l_tx: Option<DMatrix<f64>>,
    /// Lower-triangular L_rx with L_rx L_rxᵀ = R_rx, if correlated.
    l_rx: Option<DMatrix<f64>>,
    /// Scratch for the complex channel (re, im), Nr × Nt row-major.
    scratch: Vec<(f64, f64)>,
    /// The channel estimator, for estimated CSI.
    estimator: Option<Estimator>,
    /// Scratch for the estimated complex channel, Nr × Nt.
    estimate: Vec<(f64, f64)>,
    /// The dataset channels are drawn from, if any.
    dataset: Option<std::sync::Arc<ChannelSet>>,
    /// The Jakes state of the current block (time variation only).
    jakes: JakesBlock,
}

impl FrameGenerator {
    fn new(link: LinkConfig) -> Result<Self, ModelError> {
        let (l_tx, l_rx) = match link.channel {
            ChannelModel::Rayleigh => (None, None),
            ChannelModel::Kronecker { rho_tx, rho_rx } => {
                let chol = |n, rho, name| {
                    exponential_correlation(n, rho)
                        .cholesky()
                        .map(|c| c.l())
                        .ok_or(ModelError::InvalidParameter {
                            name,
                            value: rho,
                            reason: "correlation matrix is not positive definite",
                        })
                };
                (
                    Some(chol(link.nt, rho_tx, "rho_tx")?),
                    Some(chol(link.nr, rho_rx, "rho_rx")?),
                )
            }
        };
        let scratch = vec![(0.0, 0.0); link.nr * link.nt];
        link.check_dataset()?;
        let dataset = match &link.dataset {
            None => None,
            Some(d) => Some(d.set.clone().ok_or_else(|| {
                ModelError::Shape(format!(
                    "the channels of dataset {} are not loaded (load the file again)",
                    d.file
                ))
            })?),
        };
        let estimator = Estimator::new(&link)?;
        Ok(Self {
            jakes: JakesBlock::default(),
            dataset,
            estimate: scratch.clone(),
            link,
            l_tx,
            l_rx,
            scratch,
            estimator,
        })
    }

    /// The link this generator draws from.
    pub fn link(&self) -> &LinkConfig {
        &self.link
    }

    /// Draws `snr_db.len()` frames, frame `f` at SNR `snr_db[f]`.
    pub fn generate(&mut self, snr_db: &[f64], rng: &mut impl Rng) -> FrameBatch {
        let mut batch = FrameBatch::empty(&self.link);
        self.fill(&mut batch, snr_db, rng);
        batch
    }

    /// Refills `batch` with `snr_db.len()` new frames, reusing its buffers.
    pub fn fill(&mut self, batch: &mut FrameBatch, snr_db: &[f64], rng: &mut impl Rng) {
        let (m, n) = (self.link.m(), self.link.n());
        let frames = snr_db.len();
        batch.link.clone_from(&self.link);
        batch.frames = frames;
        batch.m = m;
        batch.n = n;
        batch.h.resize(frames * m * n, 0.0);
        batch.y.resize(frames * m, 0.0);
        batch.x.resize(frames * n, 0);
        batch.noise_var.clear();
        batch.snr_db.clear();
        let block = self.link.block.max(1);
        let moving = self.link.doppler > 0.0;
        let separate = self.estimator.is_some() || moving;
        if separate {
            batch.h_true.resize(frames * m * n, 0.0);
        } else {
            batch.h_true.clear();
        }
        let bpsk = self.link.modulation.real_dims_per_symbol() == 1;
        let (nt, nr) = (self.link.nt, self.link.nr);
        for (f, &snr) in snr_db.iter().enumerate() {
            let sigma2 = self.link.noise_var(snr);
            batch.noise_var.push(sigma2);
            batch.snr_db.push(snr);
            let here = f * m * n..(f + 1) * m * n;
            if f % block == 0 {
                self.draw_channel(rng);
                if separate {
                    real_equivalent(&self.scratch, nt, nr, bpsk, &mut batch.h_true[here.clone()]);
                }
                if let Some(estimator) = self.estimator.as_mut() {
                    estimator.estimate(&self.scratch, sigma2, rng, &mut self.estimate);
                    real_equivalent(&self.estimate, nt, nr, bpsk, &mut batch.h[here.clone()]);
                } else {
                    real_equivalent(&self.scratch, nt, nr, bpsk, &mut batch.h[here.clone()]);
                }
            } else {
                batch.h.copy_within((f - 1) * m * n..f * m * n, f * m * n);
                if moving {
                    self.channel_at(f % block);
                    real_equivalent(&self.scratch, nt, nr, bpsk, &mut batch.h_true[here.clone()]);
                } else if separate {
                    batch
                        .h_true
                        .copy_within((f - 1) * m * n..f * m * n, f * m * n);
                }
            }
            let modulation = self.link.modulation;
            let levels = modulation.levels_per_dim();
            let x = &mut batch.x[f * n..(f + 1) * n];
            for v in x.iter_mut() {
                *v = modulation.level_of_index(rng.random_range(0..levels));
            }
            let noise_std = (sigma2 / 2.0).sqrt();
            let h = if separate {
                &batch.h_true[here]
            } else {
                &batch.h[here]
            };
            let y = &mut batch.y[f * m..(f + 1) * m];
            for (i, yi) in y.iter_mut().enumerate() {
                let row = &h[i * n..(i + 1) * n];
                let hx: f64 = row.iter().zip(x.iter()).map(|(a, &b)| a * b as f64).sum();
                let noise: f64 = rng.sample(StandardNormal);
                *yi = hx + noise_std * noise;
            }
        }
    }

    /// Draws one complex channel into the scratch (Nr × Nt, row-major): the channel of a
    /// block's first frame.
    fn draw_channel(&mut self, rng: &mut impl Rng) {
        if let Some(set) = &self.dataset {
            let c = rng.random_range(0..set.len());
            self.scratch.copy_from_slice(set.channel(c));
            return;
        }
        let (nt, nr) = (self.link.nt, self.link.nr);
        let std = (0.5 / nr as f64).sqrt();
        if self.link.doppler > 0.0 {
            self.jakes.draw(nt * nr, self.link.doppler, rng);
            self.jakes
                .eval(0, (1.0 / nr as f64).sqrt(), &mut self.scratch);
        } else {
            for h in self.scratch.iter_mut() {
                let re: f64 = rng.sample(StandardNormal);
                let im: f64 = rng.sample(StandardNormal);
                *h = (std * re, std * im);
            }
        }
        self.correlate();
    }

    /// The channel of frame `t` of the current block under time variation, into the scratch.
    fn channel_at(&mut self, t: usize) {
        let nr = self.link.nr;
        self.jakes
            .eval(t, (1.0 / nr as f64).sqrt(), &mut self.scratch);
        self.correlate();
    }

    /// Applies the Kronecker factors to the white channel in the scratch, if correlated.
    fn correlate(&mut self) {
        let (nt, nr) = (self.link.nt, self.link.nr);
        if let (Some(l_tx), Some(l_rx)) = (&self.l_tx, &self.l_rx) {
            // H = L_rx · H_w · L_txᵀ with real factors, applied to re and im separately.
            let hw_re = DMatrix::from_fn(nr, nt, |i, j| self.scratch[i * nt + j].0);
            let hw_im = DMatrix::from_fn(nr, nt, |i, j| self.scratch[i * nt + j].1);
            let h_re = l_rx * hw_re * l_tx.transpose();
            let h_im = l_rx * hw_im * l_tx.transpose();
            for i in 0..nr {
                for j in 0..nt {
                    self.scratch[i * nt + j] = (h_re[(i, j)], h_im[(i, j)]);
                }
            }
        }
    }
}

/// Writes the real-valued equivalent of the complex channel `h` (Nr × Nt row-major) into `out`
/// (2Nr × 2Nt, or 2Nr × Nt for BPSK).
pub fn real_equivalent(h: &[(f64, f64)], nt: usize, nr: usize, bpsk: bool, out: &mut [f64]) {
    let n = if bpsk { nt } else { 2 * nt };
    for i in 0..nr {
        for j in 0..nt {
            let (re, im) = h[i * nt + j];
            out[i * n + j] = re;
            out[(i + nr) * n + j] = im;
            if !bpsk {
                out[i * n + j + nt] = -im;
                out[(i + nr) * n + j + nt] = re;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(nt: usize, nr: usize, m: Modulation) -> LinkConfig {
        LinkConfig::new(nt, nr, m).unwrap()
    }

    #[test]
    fn rejects_bad_dimensions_and_correlation() {
        assert!(LinkConfig::new(0, 4, Modulation::Qpsk).is_err());
        assert!(LinkConfig::new(4, 0, Modulation::Qpsk).is_err());
        assert!(
            LinkConfig::new(4, 4, Modulation::Qpsk)
                .unwrap()
                .with_correlation(1.0, 0.0)
                .is_err()
        );
        assert!(
            LinkConfig::new(4, 4, Modulation::Qpsk)
                .unwrap()
                .with_correlation(0.0, f64::NAN)
                .is_err()
        );
    }

    #[test]
    fn real_equivalent_has_complex_structure() {
        let l = link(3, 4, Modulation::Qam16);
        let mut g = l.generator().unwrap();
        let b = g.generate(&[10.0], &mut stream_rng(1, 0));
        let (m, n, nr, nt) = (b.m, b.n, 4, 3);
        assert_eq!((m, n), (8, 6));
        let h = b.h(0);
        for i in 0..nr {
            for j in 0..nt {
                assert_eq!(h[i * n + j], h[(i + nr) * n + j + nt]);
                assert_eq!(h[i * n + j + nt], -h[(i + nr) * n + j]);
            }
        }
    }

    #[test]
    fn channel_entries_have_variance_one_over_nr() {
        for channel in [(0.0, 0.0), (0.7, 0.5)] {
            let l = link(4, 8, Modulation::Qpsk)
                .with_correlation(channel.0, channel.1)
                .unwrap();
            let mut g = l.generator().unwrap();
            let b = g.generate(&vec![10.0; 20_000], &mut stream_rng(2, 0));
            // E|h_ij|² = E[Re² + Im²] over the top-left (Re) and bottom-left (Im) blocks.
            let (m, n) = (b.m, b.n);
            let mut acc = 0.0;
            for f in 0..b.frames {
                let h = b.h(f);
                for i in 0..8 {
                    for j in 0..4 {
                        acc += h[i * n + j].powi(2) + h[(i + 8) * n + j].powi(2);
                    }
                }
            }
            let _ = m;
            let mean = acc / (b.frames * 32) as f64;
            assert!(
                (mean - 1.0 / 8.0).abs() < 0.01 / 8.0 * 2.0,
                "{channel:?}: E|h|² = {mean}"
            );
        }
    }

    #[test]
    fn kronecker_correlation_matches_definition() {
        let (rho_tx, rho_rx) = (0.6, 0.3);
        let l = link(3, 3, Modulation::Qpsk)
            .with_correlation(rho_tx, rho_rx)
            .unwrap();
        let mut g = l.generator().unwrap();
        let frames = 40_000;
        let b = g.generate(&vec![10.0; frames], &mut stream_rng(3, 0));
        let n = b.n;
        // E[h_00 h_01*] = (1/Nr)·ρ_tx and E[h_00 h_10*] = (1/Nr)·ρ_rx (real parts).
        let (mut tx, mut rx) = (0.0, 0.0);
        for f in 0..frames {
            let h = b.h(f);
            let (re00, im00) = (h[0], h[3 * n]);
            let (re01, im01) = (h[1], h[3 * n + 1]);
            let (re10, im10) = (h[n], h[4 * n]);
            tx += re00 * re01 + im00 * im01;
            rx += re00 * re10 + im00 * im10;
        }
        let (tx, rx) = (tx / frames as f64 * 3.0, rx / frames as f64 * 3.0);
        assert!((tx - rho_tx).abs() < 0.03, "tx correlation {tx}");
        assert!((rx - rho_rx).abs() < 0.03, "rx correlation {rx}");
    }

    #[test]
    fn measured_snr_matches_request() {
        for (modulation, nt, nr) in [
            (Modulation::Qam16, 16, 16),
            (Modulation::Bpsk, 2, 4),
            (Modulation::Qpsk, 8, 4),
        ] {
            let l = link(nt, nr, modulation);
            let mut g = l.generator().unwrap();
            let snr_db = 7.0;
            let b = g.generate(&vec![snr_db; 20_000], &mut stream_rng(4, 1));
            let (mut sig, mut noise) = (0.0, 0.0);
            for f in 0..b.frames {
                let (h, y, x) = (b.h(f), b.y(f), b.x(f));
                for i in 0..b.m {
                    let hx: f64 = (0..b.n).map(|j| h[i * b.n + j] * x[j] as f64).sum();
                    sig += hx * hx;
                    noise += (y[i] - hx).powi(2);
                }
            }
            let measured = sig / noise;
            let want = db_to_linear(snr_db);
            assert!(
                (measured / want - 1.0).abs() < 0.01,
                "{modulation} {nt}x{nr}: measured SNR {measured}, requested {want}"
            );
        }
    }

    #[test]
    fn streams_are_reproducible_and_independent() {
        let l = link(2, 2, Modulation::Qpsk);
        let mut g = l.generator().unwrap();
        let a = g.generate(&[5.0; 4], &mut stream_rng(9, 3));
        let b = g.generate(&[5.0; 4], &mut stream_rng(9, 3));
        let c = g.generate(&[5.0; 4], &mut stream_rng(9, 4));
        assert_eq!(a, b);
        assert_ne!(a.h, c.h);
    }

    #[test]
    fn block_fading_shares_one_channel_per_block() {
        let l = link(3, 4, Modulation::Qam16).with_block(4).unwrap();
        let mut g = l.generator().unwrap();
        let b = g.generate(&[10.0; 10], &mut stream_rng(5, 0));
        for f in 0..10 {
            let first = f - f % 4;
            assert_eq!(b.h(f), b.h(first), "frame {f} left its block");
        }
        assert_ne!(b.h(0), b.h(4));
        assert_ne!(b.h(4), b.h(8));
        assert_ne!(b.x(0), b.x(1), "symbols must be drawn per frame");
        // The first channel of a call is drawn exactly as without block fading.
        let plain = link(3, 4, Modulation::Qam16)
            .generator()
            .unwrap()
            .generate(&[10.0], &mut stream_rng(5, 0));
        assert_eq!(plain.h(0), b.h(0));
        assert!(link(2, 2, Modulation::Qpsk).with_block(0).is_err());
        assert!(
            link(2, 2, Modulation::Qpsk)
                .with_block(MAX_BLOCK + 1)
                .is_err()
        );
    }

    #[test]
    fn block_of_one_stays_out_of_json() {
        let plain = link(2, 2, Modulation::Qpsk);
        let text = serde_json::to_string(&plain).unwrap();
        assert!(!text.contains("block"), "{text}");
        let back: LinkConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back.block, 1);
        let blocked = plain.with_block(14).unwrap();
        let text = serde_json::to_string(&blocked).unwrap();
        assert!(text.contains("\"block\":14"), "{text}");
        let back: LinkConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, blocked);
        let bad: LinkConfig = serde_json::from_str(&text.replace("14", "0")).unwrap();
        assert!(bad.validate().unwrap_err().to_string().contains("block"));
    }
}
