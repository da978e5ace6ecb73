//! kaq-model: everything upstream of the IR.
//!
//! * [`modulation`] and [`link`]: the normative system model of DESIGN.md §2 — Gray-mapped
//!   alphabets, Rayleigh and Kronecker channels, the per-receive-antenna SNR, the real-valued
//!   equivalent and seeded ChaCha streams.
//! * [`detect`]: the [`detect::Detector`] trait and the classical detectors (ZF, MMSE, K-best, ML).
//! * [`ber`]: the Monte-Carlo BER engine.
//! * [`unfolded`]: the deep-unfolded PGD-Net and ADMM-Net in f32 with hand-derived gradients.
//! * [`gram`]: the Gram-domain nets with a per-channel stage (EPNet, OAMP-Net2 with an LMMSE
//!   bank, unfolded CG), f32 with hand-derived gradients.
//! * [`train`]: f32 training of the unfolded nets (data sets, Adam, the loop) and the model file.
//! * [`mmd`]: the kernel MMD² distribution-matching loss of KAQ with hand-derived gradients.
//! * [`fixed`]: the normative fixed-point arithmetic of `docs/fixed-point.md`.
//! * [`quant`]: the fake-quant nets and the quantization methods (PTQ, QAT-MSE, LSQ, KAQ).
//! * [`ir`]: the IR, the lowering from a fake-quant net and the integer golden model.
//!
//! Data flows one way: this crate never depends on codegen or simulation.

pub mod ber;
pub mod detect;
pub mod error;
pub mod fixed;
pub mod gram;
pub mod ir;
pub mod link;
pub mod mmd;
pub mod modulation;
pub mod quant;
pub mod train;
pub mod unfolded;

pub use detect::Detector;
pub use error::ModelError;
pub use link::{ChannelModel, FrameBatch, FrameGenerator, LinkConfig};
pub use modulation::Modulation;
