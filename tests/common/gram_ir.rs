//! The small IR v2 document the CLI tests of the Gram engine share.

use kaq_ir::gram::GramIr;
use kaq_model::gram::quantized::{CgQuantOptions, lower_cg};
use kaq_model::gram::{Family, GramConfig, GramNet};
use kaq_model::link::LinkConfig;
use kaq_model::modulation::Modulation;

/// A 2×2 16-QAM cg net (2 layers × 2 inner steps, untrained) lowered at 8 bits.
pub fn cg_2x2_16qam() -> GramIr {
    let link = LinkConfig::new(2, 2, Modulation::Qam16).unwrap();
    let config = GramConfig {
        family: Family::Cg,
        layers: 2,
        inner: 2,
    };
    let net = GramNet::new(config, &link).unwrap();
    let mut opts = CgQuantOptions::new(8);
    opts.calib_frames = 100;
    lower_cg(&net, &opts).unwrap()
}
