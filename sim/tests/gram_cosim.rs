//! The IR v2 (cg) RTL under Verilator against the golden model `GramInterpreter`, bit for
//! bit on every output beat (x, the levels, the last-of-block flag) and on every stage's
//! taps (every register write the tap port shows, against the golden model's block and
//! vector taps; a deliberately altered golden value is found and named), over small
//! configurations (2×2 and 4×4, QPSK and 16-QAM, K = 1..3 layers, L = 1..3 inner steps),
//! block lengths 0..5, random and extreme codes, random stalls on every port, 1 to 32 MAC
//! lanes; the measured cycles of every block and every vector equal the analytic cycle model
//! exactly.
//!
//! A missing Verilator skips, or fails under `KAQ_REQUIRE_VERILATOR=1`. The wider sweep
//! (`gram_rtl_matches_golden_model_over_many_configurations`: 21 configurations, ≥ 10^5
//! vectors) is `#[ignore]`d: run it with
//! `cargo test --release -p kaq-sim --test gram_cosim -- --ignored`.

use kaq_codegen::gram::Tensor;
use kaq_ir::gram::GramIr;
use kaq_ir::gram::{BlockTaps, VectorTaps};
use kaq_model::gram::quantized::CgQuantOptions;
use kaq_model::gram::testing::{self, bin_shifted};
use kaq_model::link::LinkConfig;
use kaq_model::modulation::Modulation;
use kaq_sim::cosim::gram::{GramBlock, GramRtl, GramStalls};
use kaq_sim::cosim::gram_taps::TapMismatch;
use kaq_sim::tools::{self, Tool};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn verilator_present() -> bool {
    tools::require(Tool::Verilator)
        .expect("KAQ_REQUIRE_VERILATOR=1 but verilator is unusable")
        .is_some()
}

/// A PTQ'd cg net of `nt`×`nt` `modulation` with perturbed parameters
/// ([`kaq_model::gram::testing::lowered_cg`]).
fn lowered(
    nt: usize,
    modulation: Modulation,
    layers: usize,
    inner: usize,
    bits: u32,
    seed: u64,
) -> GramIr {
    lowered_with(nt, modulation, layers, inner, bits, seed, |_| {})
}

/// [`lowered`] with `tune` applied to the quantization options first.
fn lowered_with(
    nt: usize,
    modulation: Modulation,
    layers: usize,
    inner: usize,
    bits: u32,
    seed: u64,
    tune: impl FnOnce(&mut CgQuantOptions),
) -> GramIr {
    let link = LinkConfig::new(nt, nt, modulation).unwrap();
    testing::lowered_cg(&link, layers, inner, bits, seed, tune)
}

/// The configurations with a narrow inner G (docs/ir.md §10.9) and per-bin formats (version
/// 3, §10.8): (name, IR, MAC lanes).
fn mixed_configs(seed: u64) -> Vec<(String, GramIr, usize)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    let gi = |nt, modulation, layers, inner, g: Vec<u32>, s: u64| {
        lowered_with(nt, modulation, layers, inner, 8, s, move |o| {
            o.g_inner = g.clone();
        })
    };
    out.push((
        "g_inner 9/6/16 2x2 16-QAM K3 L3".to_string(),
        gi(2, Modulation::Qam16, 3, 3, vec![9, 6, 16], seed),
        2,
    ));
    out.push((
        "g_inner 7/7 4x4 QPSK K2 L2".to_string(),
        gi(4, Modulation::Qpsk, 2, 2, vec![7, 7], seed + 1),
        4,
    ));
    let kaq = lowered_with(2, Modulation::Qpsk, 2, 3, 8, seed + 2, |o| {
        o.bin_adaptive = true;
        o.calib_frames = 400;
    });
    assert!(kaq.first_bin_shift().is_some(), "KAQ lowers to version 3");
    out.push(("kaq bin-adaptive 2x2 QPSK K2 L3".to_string(), kaq, 1));
    let both = gi(4, Modulation::Qam16, 2, 3, vec![10, 8], seed + 3);
    let both = bin_shifted(&both, &mut rng).expect("a valid version-3 draw");
    out.push((
        "g_inner 10/8 + bin_shift 4x4 16-QAM K2 L3".to_string(),
        both,
        3,
    ));
    let shifted = bin_shifted(&lowered(2, Modulation::Qam16, 3, 2, 8, seed + 4), &mut rng)
        .expect("a valid version-3 draw");
    out.push(("bin_shift 2x2 16-QAM K3 L2".to_string(), shifted, 8));
    out
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

fn blocks(ir: &GramIr, rng: &mut ChaCha8Rng, count: usize) -> Vec<GramBlock> {
    (0..count)
        .map(|k| {
            // One block in 16 has T = 0 (the block program alone).
            let t = if k % 16 == 7 {
                0
            } else {
                rng.random_range(1..=5)
            };
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

/// A configuration: (nt, modulation, layers, inner steps, bits, MAC lanes).
type Config = (usize, Modulation, usize, usize, u32, usize);

/// Co-simulates every configuration with and without stalls; returns (configs, vectors).
fn sweep(configs: &[Config], per_run: usize) -> (usize, usize) {
    let irs: Vec<(String, GramIr, usize)> = configs
        .iter()
        .enumerate()
        .map(|(c, &(nt, modulation, layers, inner, bits, lanes))| {
            (
                format!("{nt}x{nt} {modulation} K{layers} L{inner}"),
                lowered(nt, modulation, layers, inner, bits, c as u64),
                lanes,
            )
        })
        .collect();
    sweep_irs(&irs, per_run)
}

/// [`sweep`] over given IRs: (name, IR, MAC lanes).
fn sweep_irs(configs: &[(String, GramIr, usize)], per_run: usize) -> (usize, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(0x18);
    let mut vectors = 0;
    let mut elapsed = 0.0;
    for (c, (name, ir, lanes)) in configs.iter().enumerate() {
        let (ir, lanes) = (ir, *lanes);
        let rtl = GramRtl::build_lanes(ir, lanes, false).expect("builds");
        let prog = rtl.program();
        let (pb, pv) = (prog.block_cycles(), prog.vector_cycles());
        assert_eq!(prog.lanes, lanes);
        assert_eq!(
            (pb, pv),
            kaq_codegen::gram::program::analytic_cycles_lanes(ir, lanes),
            "the program's cycles are the closed form's"
        );
        for (s, stall) in [0.0, 0.3, 0.6].into_iter().enumerate() {
            let bl = blocks(ir, &mut rng, per_run);
            let stalls = GramStalls {
                block: stall,
                vector: stall,
                output: stall,
                seed: (c * 3 + s) as u64,
            };
            let t0 = std::time::Instant::now();
            let report = rtl.run(&bl, stalls).expect("runs");
            elapsed += t0.elapsed().as_secs_f64();
            let want: usize = bl.iter().map(|b| b.ys.len() / ir.m).sum();
            assert_eq!(report.vectors, want);
            assert!(
                report.mismatches.is_empty(),
                "config {c} ({name} P{lanes}) stall {stall}: {} mismatches, first {}",
                report.mismatches.len(),
                report.mismatches[0]
            );
            // Every stage's taps: every value the generator's table lists, once, equal.
            assert!(report.taps);
            assert_eq!(
                report.tap_mismatch_count,
                0,
                "config {c} ({name} P{lanes}) stall {stall}: first tap mismatch {:?}, anomaly {:?}",
                report.tap_mismatches.first().map(|m| m.to_string()),
                report.tap_anomalies.first()
            );
            let (per_block, per_vector) = rtl.taps_per_run();
            assert!(per_block > 0 && per_vector > 0);
            assert_eq!(
                report.taps_compared,
                bl.len() as u64 * per_block + want as u64 * per_vector,
                "every listed tap compared"
            );
            assert_eq!(report.vector_cycles.len(), want);
            assert!(
                report.vector_cycles.iter().all(|&v| v == pv),
                "vector cycles"
            );
            let with_vectors = bl.iter().filter(|b| !b.ys.is_empty()).count();
            assert_eq!(report.block_cycles.len(), with_vectors);
            assert!(
                report.block_cycles.iter().all(|&v| v == pb),
                "block cycles {:?} != {pb}",
                &report.block_cycles[..3]
            );
            if stall == 0.0 {
                // Without stalls a block takes 1 + M·N + P_blk + T·(P_vec + 2) cycles, back to
                // back.
                let whole: u64 = bl
                    .iter()
                    .map(|b| {
                        let t = (b.ys.len() / ir.m) as u64;
                        assert_eq!(
                            kaq_codegen::gram::stream_cycles(prog, t),
                            1 + (ir.m * ir.n) as u64 + pb + t * (pv + 2)
                        );
                        kaq_codegen::gram::stream_cycles(prog, t)
                    })
                    .sum();
                assert_eq!(report.cycles, whole, "stream cycles without stalls");
            }
            vectors += report.vectors;
        }
    }
    eprintln!(
        "{vectors} vectors simulated in {elapsed:.2} s ({:.0} vectors/s, builds excluded)",
        vectors as f64 / elapsed
    );
    (configs.len(), vectors)
}

#[test]
fn gram_rtl_matches_golden_model_with_stalls() {
    if !verilator_present() {
        return;
    }
    let configs = [
        (2, Modulation::Qpsk, 1, 1, 8, 1),
        (2, Modulation::Qam16, 2, 2, 8, 2),
        (4, Modulation::Qpsk, 3, 3, 8, 4),
        (4, Modulation::Qam16, 2, 3, 8, 3),
        (4, Modulation::Qpsk, 2, 2, 8, 8),
        (4, Modulation::Qam16, 2, 2, 8, 16),
        (2, Modulation::Qpsk, 2, 3, 8, 32),
    ];
    let (c, v) = sweep(&configs, 40);
    eprintln!("{c} configurations, {v} vectors, 0 mismatches");
}

/// One golden value altered (`alter` on a block's taps) must come back as the first tap
/// mismatch, named by `check`; the outputs stay equal.
fn altered_golden_is_named(
    rtl: &GramRtl,
    bl: &[GramBlock],
    alter: impl Fn(&mut BlockTaps, &mut [VectorTaps]),
    check: impl Fn(&TapMismatch),
) {
    let stalls = GramStalls {
        block: 0.3,
        vector: 0.3,
        output: 0.3,
        seed: 9,
    };
    let report = rtl
        .run_against(bl, stalls, |k, b| {
            let (mut bt, mut vt) = rtl.golden().run_block_codes(&b.h, &b.ys, b.bin)?;
            if k == 1 {
                alter(&mut bt, &mut vt);
            }
            Ok((bt, vt))
        })
        .expect("runs");
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
    assert!(
        report.tap_anomalies.is_empty(),
        "{:?}",
        report.tap_anomalies
    );
    assert_eq!(report.tap_mismatch_count, 1, "{:?}", report.tap_mismatches);
    let m = &report.tap_mismatches[0];
    assert_eq!(m.block, 1);
    assert_eq!(m.rtl, m.golden - 1, "{m}");
    check(m);
}

#[test]
fn a_wrong_golden_tap_is_found_and_named() {
    if !verilator_present() {
        return;
    }
    // K = 3, L = 3 on 2 lanes (wide and lane-split writes), a narrow inner G.
    let ir = lowered_with(4, Modulation::Qam16, 3, 3, 8, 0x18, |o| {
        o.g_inner = vec![9, 7, 16];
    });
    let rtl = GramRtl::build_lanes(&ir, 2, false).expect("builds");
    let mut rng = ChaCha8Rng::seed_from_u64(0x1818);
    let mut bl = blocks(&ir, &mut rng, 3);
    // Block 1 has three vectors.
    bl[1].ys = (0..3 * ir.m)
        .map(|_| code(&mut rng, ir.inputs.y.width()))
        .collect();
    let first_vector = bl[0].ys.len() / ir.m;
    // Layer 2's r[3] of the block's second vector.
    altered_golden_is_named(
        &rtl,
        &bl,
        |_, v| v[1].layers[1].r[3] += 1,
        |m| {
            assert_eq!(m.vector, Some(first_vector + 1));
            assert_eq!((m.layer, m.tensor, m.element), (Some(2), Tensor::R, 3));
            let text = m.to_string();
            assert!(text.contains("layer 2 r[3]"), "{text}");
        },
    );
    // Layer 3's d of its last inner step (no ρ follows), element 0, of the first vector.
    altered_golden_is_named(
        &rtl,
        &bl,
        |_, v| v[0].layers[2].d[2 * ir.n] += 1,
        |m| {
            assert_eq!(m.vector, Some(first_vector));
            assert_eq!((m.layer, m.tensor, m.element), (Some(3), Tensor::D(2), 0));
            assert!(m.to_string().contains("layer 3 step 3 d[0]"), "{m}");
        },
    );
    // The block stage's D[2].
    altered_golden_is_named(
        &rtl,
        &bl,
        |b, _| b.diag_inv[2] += 1,
        |m| {
            assert_eq!(m.vector, None);
            assert_eq!((m.layer, m.tensor, m.element), (None, Tensor::DiagInv, 2));
            assert!(
                m.to_string().contains("block 1 block stage diag_inv[2]"),
                "{m}"
            );
        },
    );
    // G[1][2] (its upper-triangle write) differs, not its copy G[2][1]; the narrow copies
    // derived from it may.
    let stalls = GramStalls {
        block: 0.0,
        vector: 0.0,
        output: 0.0,
        seed: 3,
    };
    let n = ir.n;
    let report = rtl
        .run_against(&bl, stalls, |k, b| {
            let (mut bt, vt) = rtl.golden().run_block_codes(&b.h, &b.ys, b.bin)?;
            if k == 2 {
                bt.g[n + 2] += 1;
            }
            Ok((bt, vt))
        })
        .expect("runs");
    assert!(report.tap_mismatch_count >= 1);
    let m = &report.tap_mismatches[0];
    assert_eq!((m.block, m.tensor, m.element), (2, Tensor::G, n + 2), "{m}");
    assert!(
        report
            .tap_mismatches
            .iter()
            .all(|m| m.element == n + 2 && matches!(m.tensor, Tensor::G | Tensor::GInner(_))),
        "{:?}",
        report.tap_mismatches
    );
}

#[test]
fn without_the_tap_port_only_outputs_are_compared() {
    if !verilator_present() {
        return;
    }
    let ir = lowered(2, Modulation::Qpsk, 2, 2, 8, 0x19);
    let rtl = GramRtl::build_with(&ir, 1, false, false).expect("builds");
    assert!(!rtl.has_taps());
    let mut rng = ChaCha8Rng::seed_from_u64(0x19);
    let bl = blocks(&ir, &mut rng, 6);
    let stalls = GramStalls {
        block: 0.2,
        vector: 0.2,
        output: 0.2,
        seed: 1,
    };
    let report = rtl.run(&bl, stalls).expect("runs");
    assert!(report.mismatches.is_empty());
    assert!(!report.taps);
    assert_eq!(report.taps_compared, 0);
    assert!(report.vectors > 0);
}

#[test]
fn fast_forward_is_the_per_cycle_run_exactly() {
    if !verilator_present() {
        return;
    }
    // The shim's free run of the cycles that wait on no port (taps recorded there, stall
    // draws skipped) against every cycle driven from Rust: the same report, field by field
    // (outputs, levels, cycles of every block and vector, every tap compared), with and
    // without the tap port, without and with stalls on every port, and with the tap buffer
    // filling after 1 and 3 records.
    let ir = lowered(4, Modulation::Qam16, 2, 2, 8, 0x1f);
    let mut rng = ChaCha8Rng::seed_from_u64(0x1f);
    let bl = blocks(&ir, &mut rng, 9);
    for taps in [true, false] {
        let per_cycle = GramRtl::build_with(&ir, 2, false, taps)
            .expect("builds")
            .with_fast_forward(false);
        let fast = GramRtl::build_with(&ir, 2, false, taps).expect("builds");
        for (s, stall) in [0.0, 0.3, 0.6].into_iter().enumerate() {
            let stalls = GramStalls {
                block: stall,
                vector: stall,
                output: stall,
                seed: s as u64 + 3,
            };
            let want = per_cycle.run(&bl, stalls).expect("runs");
            assert!(want.mismatches.is_empty() && want.tap_mismatch_count == 0);
            assert_eq!(want.taps, taps);
            assert!(want.vectors > 0 && (want.taps_compared > 0) == taps);
            assert_eq!(
                fast.run(&bl, stalls).expect("runs"),
                want,
                "taps {taps} stall {stall}"
            );
            for records in [1, 3] {
                let small = GramRtl::build_with(&ir, 2, false, taps)
                    .expect("builds")
                    .with_tap_records(records);
                assert_eq!(
                    small.run(&bl, stalls).expect("runs"),
                    want,
                    "{records} records"
                );
            }
        }
    }
}

#[test]
fn gram_rtl_matches_golden_model_with_g_inner_and_bin_shift() {
    if !verilator_present() {
        return;
    }
    let configs = mixed_configs(0x17);
    let (c, v) = sweep_irs(&configs, 40);
    eprintln!("{c} configurations with g_inner / bin_shift, {v} vectors, 0 mismatches");
}

#[test]
#[ignore = "builds 21 designs and runs 10^5 vectors; run with --ignored"]
fn gram_rtl_matches_golden_model_over_many_configurations() {
    if !verilator_present() {
        return;
    }
    let mut configs = Vec::new();
    for nt in [2, 4] {
        for modulation in [Modulation::Qpsk, Modulation::Qam16] {
            for (layers, inner) in [(1, 2), (2, 1), (3, 3), (1, 3)] {
                let lanes = [1, 2, 4, 8, 3][configs.len() % 5];
                configs.push((nt, modulation, layers, inner, 8, lanes));
            }
        }
    }
    configs.push((1, Modulation::Qpsk, 2, 2, 6, 2));
    configs.push((3, Modulation::Qam16, 2, 2, 10, 5));
    configs.push((2, Modulation::Qam16, 3, 1, 7, 1));
    configs.push((4, Modulation::Qpsk, 2, 2, 9, 16));
    configs.push((4, Modulation::Qam16, 3, 2, 8, 32));
    let (c, v) = sweep(&configs, 700);
    assert!(c >= 20 && v >= 100_000, "{c} configurations, {v} vectors");
    eprintln!("{c} configurations, {v} vectors, 0 mismatches");
    let (c, v) = sweep_irs(&mixed_configs(0x1718), 300);
    eprintln!("{c} configurations with g_inner / bin_shift, {v} vectors, 0 mismatches");
}

#[test]
fn generated_gram_designs_are_lint_clean_and_latch_free() {
    let tools = [Tool::Verilator, Tool::Iverilog];
    for tool in tools {
        if tools::require(tool)
            .expect("KAQ_REQUIRE_VERILATOR=1 but a tool is unusable")
            .is_none()
        {
            return;
        }
    }
    let mut irs: Vec<(GramIr, usize)> = [
        (1, Modulation::Qpsk, 1, 1, 6, 1),
        (2, Modulation::Qam16, 3, 2, 8, 4),
        (4, Modulation::Qam16, 2, 3, 10, 3),
        (2, Modulation::Qpsk, 2, 2, 8, 32),
    ]
    .iter()
    .enumerate()
    .map(|(c, &(nt, modulation, layers, inner, bits, lanes))| {
        (
            lowered(nt, modulation, layers, inner, bits, 50 + c as u64),
            lanes,
        )
    })
    .collect();
    // A narrow inner G with per-bin shifts (a shift-table ROM, a larger bank G).
    irs.extend(
        mixed_configs(0x50)
            .into_iter()
            .skip(3)
            .take(1)
            .map(|(_, ir, lanes)| (ir, lanes)),
    );
    for (c, (ir, lanes)) in irs.iter().enumerate() {
        let files = kaq_codegen::gram::generate_lanes(ir, "kaq_top", *lanes).expect("generates");
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
        // No latches: after Yosys's `proc`, no latch cell anywhere in the flattened design.
        if c != 2 && tools::require(Tool::Yosys).expect("yosys").is_some() {
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
