//! `kaq codegen` on an IR v2 (cg) document: the folded Gram design's files, its README's
//! exact cycle counts (equal to the library's closed-form model), byte-identical reruns, and
//! the refusals (status 2 naming the flag, nothing written).

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use kaq_ir::gram::GramIr;
use predicates::prelude::*;

fn kaq(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("kaq").unwrap();
    c.current_dir(dir);
    c
}

#[path = "common/gram_ir.rs"]
mod gram_ir;

fn ir() -> GramIr {
    gram_ir::cg_2x2_16qam()
}

#[test]
fn codegen_writes_the_v2_design_with_its_cycle_counts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ir = ir();
    fs::write(d.join("ir.json"), ir.to_json()).unwrap();
    let (block, vector) = kaq_codegen::gram::program::analytic_cycles(&ir);
    kaq(d)
        .args([
            "codegen", "--ir", "ir.json", "--out", "rtl", "--top", "cg_top",
        ])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("wrote 6 files to rtl (top cg_top, IR v2").and(
                predicate::str::contains(format!(
                    "block stage {block} cycles, {vector} cycles per vector"
                )),
            ),
        );
    let mut names: Vec<String> = fs::read_dir(d.join("rtl"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "README.md",
            "cg_top.v",
            "files.f",
            "kaq_divide_seq.v",
            "kaq_gram_core.v",
            "kaq_round_shift_sat.v"
        ]
    );
    let readme = fs::read_to_string(d.join("rtl/README.md")).unwrap();
    assert!(readme.contains(&format!("**{block} cycles**")), "{readme}");
    assert!(readme.contains(&format!("**{vector} cycles**")), "{readme}");
    // A rerun into a fresh directory gives the same bytes.
    kaq(d)
        .args([
            "codegen", "--ir", "ir.json", "--out", "again", "--top", "cg_top",
        ])
        .assert()
        .success();
    for n in &names {
        assert_eq!(
            fs::read(d.join("rtl").join(n)).unwrap(),
            fs::read(d.join("again").join(n)).unwrap(),
            "{n}"
        );
    }
}

#[test]
fn codegen_takes_mac_lanes_for_v2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ir = ir();
    fs::write(d.join("ir.json"), ir.to_json()).unwrap();
    let one = kaq_codegen::gram::program::analytic_cycles(&ir);
    let (block, vector) = kaq_codegen::gram::program::analytic_cycles_lanes(&ir, 4);
    assert!(vector < one.1, "4 lanes take fewer cycles per vector");
    kaq(d)
        .args(["codegen", "--ir", "ir.json", "--out", "rtl", "--lanes", "4"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("folded engine, 4 lanes").and(predicate::str::contains(
                format!("block stage {block} cycles, {vector} cycles per vector"),
            )),
        );
    let top = fs::read_to_string(d.join("rtl/kaq_top.v")).unwrap();
    assert!(top.contains(".LANES(4)"), "{top}");
    let readme = fs::read_to_string(d.join("rtl/README.md")).unwrap();
    assert!(readme.contains(&format!("**{vector} cycles**")), "{readme}");
}

#[test]
fn v2_codegen_refusals_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("ir.json"), ir().to_json()).unwrap();
    for (args, flag) in [
        (&["--lanes", "0"][..], "--lanes"),
        (&["--lanes", "33"][..], "--lanes"),
        (&["--clock-mhz", "100"][..], "--clock-mhz"),
        (&["--update-pipeline", "1"][..], "--update-pipeline"),
        (&["--top", "kaq_gram_core"][..], "--top"),
        (&["--top", "1x"][..], "--top"),
    ] {
        kaq(d)
            .args(["codegen", "--ir", "ir.json", "--out", "rtl"])
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(flag));
        assert!(!d.join("rtl").exists(), "{args:?} wrote output");
    }
}

#[test]
fn cosim_runs_the_v2_design_bit_exact_in_channel_blocks() {
    if kaq_sim::tools::require(kaq_sim::tools::Tool::Verilator)
        .expect("KAQ_REQUIRE_VERILATOR=1 but verilator is unusable")
        .is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("ir.json"), ir().to_json()).unwrap();
    kaq(d)
        .args(["cosim", "--ir", "ir.json", "--frames", "60", "--block", "7"])
        .args(["--snr", "5,15,25", "--stall-prob", "0.3"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("60 vectors in 9 blocks of 7: 0 mismatches")
                .and(predicate::str::contains("measured equal")),
        );
    // Three MAC lanes: bit-exact, with fewer cycles per vector, equal to the model.
    let (block, vector) = kaq_codegen::gram::program::analytic_cycles_lanes(&ir(), 3);
    kaq(d)
        .args(["cosim", "--ir", "ir.json", "--frames", "20", "--block", "4"])
        .args(["--stall-prob", "0.3", "--lanes", "3"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("20 vectors in 5 blocks of 4: 0 mismatches").and(
                predicate::str::contains(format!(
                    "block stage {block}, vector {vector} (analytic); measured equal"
                )),
            ),
        );
    kaq(d)
        .args(["cosim", "--ir", "ir.json", "--frames", "6", "--lanes", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--lanes"));
    // The v1-only outputs are refused, named, before anything is built or written.
    for (flag, file) in [("--json", "c.json"), ("--trace", "c.vcd")] {
        kaq(d)
            .args(["cosim", "--ir", "ir.json", "--frames", "6", flag, file])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(flag).and(predicate::str::contains("IR v2")));
        assert!(!d.join(file).exists());
    }
}
