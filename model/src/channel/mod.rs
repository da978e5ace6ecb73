//! Channels users have (docs/channels.md): estimated channel state information from pilots.
//!
//! * [`csi`]: orthogonal pilots and the LS and LMMSE estimates Ĥ the detectors see while the
//!   link draws `y` through the true H ([`crate::link::FrameGenerator`]).
//! * [`dataset`]: channels loaded from `.npy` files, every shape, dtype, size and value
//!   checked, with the SNR normalization stated.
//! * [`doppler`]: Clarke/Jakes time variation within a channel block.
//! * [`site`]: a geometric site stand-in (ULA, scattering clusters, line of sight) that
//!   generates channel datasets.

pub mod csi;
pub mod dataset;
pub mod doppler;
pub mod site;

pub use csi::{Csi, Estimator};
