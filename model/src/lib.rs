//! kaq-model: everything upstream of the IR.
//!
//! * [`modulation`] and [`link`]: the normative system model of docs/system-model.md — Gray-mapped
//!   alphabets, Rayleigh and Kronecker channels, the per-receive-antenna SNR, the real-valued
//!   equivalent and seeded ChaCha streams.
//! * [`channel`]: estimated CSI (LS, LMMSE from orthogonal pilots), docs/channels.md.
//! * [`detect`]: the [`detect::Detector`] trait and the classical detectors (ZF, MMSE, K-best, ML).
//! * [`ber`]: the Monte-Carlo BER engine.
//! * [`unfolded`]: the deep-unfolded PGD-Net and ADMM-Net in f32 with hand-derived gradients.
//! * [`gram`]: the Gram-domain nets with a per-channel stage (EPNet, OAMP-Net2 with an LMMSE
//!   bank, unfolded CG), f32 with hand-derived gradients.
//! * [`train`]: f32 training of the unfolded nets (data sets, Adam, the loop) and the model file.
//! * [`mmd`]: the kernel MMD² distribution-matching loss of KAQ with hand-derived gradients.
//! * [`quant`]: the fake-quant nets and the quantization methods (PTQ, QAT-MSE, LSQ, KAQ).
//! * [`lower`]: the lowering from a fake-quant net to the IR of `kaq-ir`, and the integer
//!   golden model as a [`Detector`].
//!
//! The IR, the fixed-point arithmetic and the vocabulary shared with the IR (architectures,
//! SNR bins, limits) live in `kaq-ir`; [`modulation`] and [`fixed`] are re-exported from there.
//! Data flows one way: this crate never depends on codegen or simulation.

pub mod ber;
pub mod channel;
pub mod detect;
pub mod error;
pub mod gram;
#[cfg(test)]
mod json_walk_tests;
pub mod link;
pub mod lower;
pub mod mmd;
pub mod quant;
pub mod train;
pub mod unfolded;

pub use detect::Detector;
pub use error::ModelError;
pub use kaq_ir::{Modulation, fixed, modulation};
pub use link::{ChannelModel, FrameBatch, FrameGenerator, LinkConfig};
