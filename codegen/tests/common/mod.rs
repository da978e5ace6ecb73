//! Shared helpers of the codegen tests: small IRs lowered from calibrated fake-quant nets, and
//! committed IR fixtures (tests/fixtures/*.ir.json) for the tests whose expected output must not
//! move when training's random streams change. `KAQ_WRITE_FIXTURES=1 cargo test -p kaq-codegen`
//! rewrites the fixtures from the nets they were drawn from.
#![allow(dead_code)]

use kaq_ir::Ir;
use kaq_model::lower::{LowerOptions, lower};
use kaq_model::quant::{QuantConfig, QuantMethod, QuantNet};
use kaq_model::train::{SetKind, TrainSet};
use kaq_model::unfolded::{Arch, Init, NetConfig, Prox, UnfoldedNet};
use kaq_model::{LinkConfig, Modulation};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One small configuration.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub arch: Arch,
    pub prox: Prox,
    pub momentum: bool,
    pub init: Init,
    pub modulation: Modulation,
    pub nt: usize,
    pub nr: usize,
    pub layers: usize,
    pub bits: u32,
    pub method: QuantMethod,
    pub seed: u64,
    /// Signed width of the lowering's per-bin multipliers and update coefficients.
    pub mult_bits: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            arch: Arch::Pgd,
            prox: Prox::Soft,
            momentum: false,
            init: Init::Zero,
            modulation: Modulation::Qpsk,
            nt: 2,
            nr: 2,
            layers: 2,
            bits: 6,
            method: QuantMethod::Kaq,
            seed: 1,
            mult_bits: kaq_ir::DEFAULT_MULT_BITS,
        }
    }
}

/// The IR of a randomly perturbed, calibrated net of `c` (KAQ with SNR-dependent steps).
pub fn ir(c: &Config) -> Ir {
    ir_with_bins(c, None)
}

/// As [`ir`], with `bins` SNR bins (fewer bins keep generated tables small).
pub fn ir_with_bins(c: &Config, bins: Option<usize>) -> Ir {
    let link = LinkConfig::new(c.nt, c.nr, c.modulation).unwrap();
    let config = NetConfig {
        arch: c.arch,
        prox: c.prox,
        layers: c.layers,
        momentum: c.momentum,
        init: c.init,
    };
    let mut net = UnfoldedNet::new(config, &link).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(c.seed);
    let names = net.param_names();
    for (p, name) in net.params_mut().iter_mut().zip(&names) {
        *p *= rng.random_range(0.6f32..1.4);
        if name.starts_with("lambda") {
            *p = p.abs();
        }
    }
    let set =
        TrainSet::generate(&link, 64, &[0.0, 10.0, 20.0, 30.0], c.seed, SetKind::Train).unwrap();
    let mut qc = QuantConfig::with_activation_bits(c.bits);
    if let Some(count) = bins {
        qc.snr_bins.count = count;
        qc.snr_bins.step_db = 50.0 / count as f64;
    }
    let mut q = QuantNet::calibrate(&net, c.method, &qc, &set.as_batch()).unwrap();
    if c.method == QuantMethod::Kaq {
        let k = c.layers;
        let len = q.params().len();
        let tail = &mut q.params_mut()[len - 2 * k..];
        for i in 0..k {
            let gamma = tail[k + i];
            tail[i] = gamma * rng.random_range(0.5f32..3.0);
            tail[k + i] = gamma * rng.random_range(0.3f32..0.9);
        }
    }
    let options = LowerOptions {
        mult_bits: c.mult_bits,
    };
    lower(&q, options).unwrap()
}

/// The committed fixture `name` (tests/fixtures/NAME.ir.json), drawn from `c` with `bins` SNR
/// bins by [`ir_with_bins`]; with `KAQ_WRITE_FIXTURES=1`, drawn again and written.
pub fn fixture(name: &str, c: &Config, bins: Option<usize>) -> Ir {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.ir.json"));
    if std::env::var_os("KAQ_WRITE_FIXTURES").is_some_and(|v| v == "1") {
        let ir = ir_with_bins(c, bins);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, ir.to_json()).unwrap();
        return ir;
    }
    Ir::load(&path).unwrap_or_else(|e| panic!("{e} (write it with KAQ_WRITE_FIXTURES=1)"))
}
