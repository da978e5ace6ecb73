//! Channels users have (docs/channels.md): estimated channel state information from pilots.
//!
//! * [`csi`]: orthogonal pilots and the LS and LMMSE estimates Ĥ the detectors see while the
//!   link draws `y` through the true H ([`crate::link::FrameGenerator`]).

pub mod csi;

pub use csi::{Csi, Estimator};
