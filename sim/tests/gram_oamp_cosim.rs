//! The IR v4 (oamp) RTL — the Gram engine running `kaq_codegen::gram::oamp::program` —
//! under Verilator against the golden model `OampInterpreter`, bit for bit on every output
//! beat (x, the levels, the last-of-block flag), over small lowered nets (N = 2, 4; QPSK and
//! 16-QAM; K = 1..3 layers), block lengths 0..4, random and extreme codes, random stalls on
//! every port and 1 to 8 MAC lanes; the measured cycles of every block and vector equal the
//! analytic cycle model exactly. The 16×16 oamp-k10 8-bit design (N = 32) runs in
//! `oamp_k10_8b_rtl_matches_golden_model` (`#[ignore]`d: a minutes-long Verilator build).
//!
//! A missing Verilator skips, or fails under `KAQ_REQUIRE_VERILATOR=1`.

use kaq_codegen::gram::oamp::analytic_cycles;
use kaq_ir::gram::oamp::{OampInterpreter, OampIr};
use kaq_model::gram::oamp_quant::{OampQuantOptions, lower_oamp};
use kaq_model::gram::{Family, GramConfig, GramNet};
use kaq_model::link::LinkConfig;
use kaq_model::modulation::Modulation;
use kaq_sim::cosim::gram::{GramBlock, GramStalls};
use kaq_sim::cosim::gram_oamp::{OampRtl, oamp_link_blocks};
use kaq_sim::tools::{self, Tool};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn verilator_present() -> bool {
    tools::require(Tool::Verilator)
        .expect("KAQ_REQUIRE_VERILATOR=1 but verilator is unusable")
        .is_some()
}

/// A PTQ'd oamp net of `nt`×`nt` `modulation` with `layers` layers, parameters perturbed by
/// `seed`.
fn lowered_oamp(nt: usize, modulation: Modulation, layers: usize, seed: u64) -> OampIr {
    let link = LinkConfig::new(nt, nt, modulation).unwrap();
    let mut net = GramNet::new(
        GramConfig {
            family: Family::Oamp,
            layers,
            inner: 0,
        },
        &link,
    )
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for p in net.params_mut() {
        *p *= rng.random_range(0.6..1.4f32);
    }
    let mut opts = OampQuantOptions::new(8);
    opts.calib_frames = 60;
    lower_oamp(&net, &opts).unwrap()
}

/// A code of `w` bits: small most of the time, sometimes full range or extreme.
fn code(rng: &mut ChaCha8Rng, w: u32) -> i64 {
    let q = (1i64 << (w - 1)) - 1;
    match rng.random_range(0..10) {
        0 => [-q - 1, q, 0, -1, 1][rng.random_range(0..5)],
        1 | 2 => rng.random_range(-q - 1..=q),
        _ => rng.random_range(-q / 4..=q / 4),
    }
}

/// `count` random blocks of 0..=4 vectors.
fn random_blocks(ir: &OampIr, count: usize, rng: &mut ChaCha8Rng) -> Vec<GramBlock> {
    (0..count)
        .map(|_| {
            let t = rng.random_range(0..=4);
            GramBlock {
                h: (0..ir.m * ir.n)
                    .map(|_| code(rng, ir.inputs.h.width()))
                    .collect(),
                ys: (0..t * ir.m)
                    .map(|_| code(rng, ir.inputs.y.width()))
                    .collect(),
                bin: rng.random_range(0..ir.snr_bins.count),
            }
        })
        .collect()
}

/// Runs `blocks` on `rtl` with and without stalls: 0 mismatches, every vector out, the
/// cycles of every block and vector (stall-free run) equal to the analytic model.
fn check(ir: &OampIr, rtl: &OampRtl, lanes: usize, blocks: &[GramBlock], seed: u64) -> usize {
    let want: usize = blocks.iter().map(|b| b.ys.len() / ir.m).sum();
    let (blk, vec) = analytic_cycles(ir, lanes);
    let free = GramStalls {
        block: 0.0,
        vector: 0.0,
        output: 0.0,
        seed,
    };
    let r = rtl.run(blocks, free).unwrap();
    assert!(r.mismatches.is_empty(), "{:?}", &r.mismatches[..1]);
    assert_eq!(r.tap_mismatch_count, 0, "{:?}", r.tap_anomalies);
    assert_eq!(r.taps, r.taps_compared > 0);
    assert_eq!(r.vectors, want);
    assert!(
        r.block_cycles.iter().all(|&c| c == blk),
        "block cycles {:?} vs {blk}",
        r.block_cycles
    );
    assert!(
        r.vector_cycles.iter().all(|&c| c == vec),
        "vector cycles {:?} vs {vec}",
        r.vector_cycles
    );
    let stalls = GramStalls {
        block: 0.3,
        vector: 0.4,
        output: 0.5,
        seed: seed + 1,
    };
    let r = rtl.run(blocks, stalls).unwrap();
    assert!(r.mismatches.is_empty(), "{:?}", &r.mismatches[..1]);
    assert_eq!(r.tap_mismatch_count, 0, "{:?}", r.tap_anomalies);
    assert_eq!(r.vectors, want);
    // Stalls on the ports do not change the engine's cycles.
    assert!(r.vector_cycles.iter().all(|&c| c == vec));
    want
}

#[test]
fn oamp_rtl_matches_golden_model_with_stalls() {
    if !verilator_present() {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut vectors = 0;
    for (c, &(nt, modulation, layers, lanes)) in [
        (1, Modulation::Qpsk, 1, 1),
        (1, Modulation::Qpsk, 2, 2),
        (2, Modulation::Qpsk, 2, 1),
        (2, Modulation::Qam16, 3, 3),
        (2, Modulation::Qam16, 2, 8),
    ]
    .iter()
    .enumerate()
    {
        let ir = lowered_oamp(nt, modulation, layers, c as u64 + 40);
        // Every other design with its tap port (each register write against the twin's).
        let rtl = OampRtl::build_with(&ir, lanes, false, c % 2 == 1).unwrap();
        let mut blocks = random_blocks(&ir, 12, &mut rng);
        blocks.extend(oamp_link_blocks(&ir, 24, 6, &[0.0, 10.0, 20.0, 30.0], c as u64).unwrap());
        vectors += check(&ir, &rtl, lanes, &blocks, c as u64);
        if c == 3 {
            // Against the golden model of an IR with the last layer's φ an eighth larger,
            // the same run differs: the comparison can fail.
            let mut other = ir.clone();
            let phi = &mut other.layers.last_mut().unwrap().phi;
            phi.code += phi.code / 8 + 1;
            let golden = OampInterpreter::new(other).unwrap();
            let free = GramStalls {
                block: 0.0,
                vector: 0.0,
                output: 0.0,
                seed: 1,
            };
            let r = rtl.run_against(&golden, &blocks, free).unwrap();
            assert!(
                !r.mismatches.is_empty(),
                "an altered golden model is told apart"
            );
        }
    }
    assert!(vectors > 100, "{vectors} vectors");
}

#[test]
#[ignore = "a minutes-long Verilator build of the 16×16 design"]
fn oamp_k10_8b_rtl_matches_golden_model() {
    if !verilator_present() {
        return;
    }
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/gram/oamp-k10.model.json");
    let file = kaq_model::gram::file::GramModelFile::load(&path).expect("model file");
    let ir = lower_oamp(&file.net, &OampQuantOptions::new(8)).unwrap();
    let lanes = 8;
    let rtl = OampRtl::build(&ir, lanes, false).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut blocks = random_blocks(&ir, 2, &mut rng);
    blocks.extend(oamp_link_blocks(&ir, 16, 8, &[14.0, 24.0], 3).unwrap());
    check(&ir, &rtl, lanes, &blocks, 11);
}

#[test]
fn generated_oamp_designs_are_lint_clean_and_latch_free() {
    for tool in [Tool::Verilator, Tool::Iverilog] {
        if tools::require(tool)
            .expect("KAQ_REQUIRE_VERILATOR=1 but a tool is unusable")
            .is_none()
        {
            return;
        }
    }
    for (c, &(nt, modulation, layers, lanes)) in [
        (1, Modulation::Qpsk, 1, 1),
        (2, Modulation::Qam16, 2, 3),
        (2, Modulation::Qpsk, 3, 8),
    ]
    .iter()
    .enumerate()
    {
        let ir = lowered_oamp(nt, modulation, layers, 60 + c as u64);
        let files =
            kaq_codegen::gram::oamp::generate_lanes(&ir, "kaq_top", lanes).expect("generates");
        let dir = tempfile::tempdir().unwrap();
        let mut sources = Vec::new();
        for f in &files {
            let path = dir.path().join(&f.name);
            std::fs::write(&path, &f.contents).unwrap();
            if f.name.ends_with(".v") {
                sources.push(path);
            }
        }
        let lint = std::process::Command::new("verilator")
            .args(["--lint-only", "-Wall", "--top-module", "kaq_top"])
            .args(&sources)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&lint.stderr);
        assert!(
            lint.status.success() && !text.contains("%Warning"),
            "config {c}: {text}"
        );
        let image = dir.path().join("top.vvp");
        let icarus = std::process::Command::new("iverilog")
            .args(["-g2012", "-Wall", "-o"])
            .arg(&image)
            .args(&sources)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&icarus.stderr);
        assert!(
            icarus.status.success() && text.trim().is_empty(),
            "config {c}: {text}"
        );
        if tools::require(Tool::Yosys).expect("yosys").is_some() {
            let names: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
            let script = format!(
                "read_verilog -sv {}; hierarchy -top kaq_top; proc; flatten; \
                 select -assert-none t:$dlatch t:$adlatch t:$dlatchsr t:$sr",
                names.join(" ")
            );
            let yosys = std::process::Command::new("yosys")
                .args(["-q", "-p", &script])
                .output()
                .unwrap();
            assert!(
                yosys.status.success(),
                "config {c}: {}{}",
                String::from_utf8_lossy(&yosys.stdout),
                String::from_utf8_lossy(&yosys.stderr)
            );
        }
    }
}
