//! `kaq report` on an IR v2 (cg) document: the cycle figures equal `kaq codegen`'s model, the
//! options that do not apply end with status 2, and `--synth generic` counts cells (Yosys is
//! required under `KAQ_REQUIRE_VERILATOR=1`, else the synthesis test is skipped).

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use kaq_codegen::gram::{Program, program::analytic_cycles, stream_cycles};
use kaq_ir::gram::AnyIr;
use serde_json::Value;

fn kaq(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("kaq").unwrap();
    c.current_dir(dir);
    c
}

/// Trains and lowers a tiny cg net (2×2 QPSK, one layer, one inner step) into `ir.json`.
fn tiny_ir(d: &Path) -> kaq_ir::gram::GramIr {
    kaq(d)
        .args(["train", "--arch", "cg", "--layers", "1", "--inner", "1"])
        .args([
            "--nt",
            "2",
            "--nr",
            "2",
            "--mod",
            "qpsk",
            "--samples",
            "200",
        ])
        .args(["--val-samples", "50", "--val-frames", "50", "--batch", "50"])
        .args(["--epochs", "1", "--threads", "1", "--out", "t.json"])
        .assert()
        .success();
    kaq(d)
        .args([
            "lower",
            "--model",
            "t.json",
            "--ptq-bits",
            "8",
            "--out",
            "ir.json",
        ])
        .assert()
        .success();
    match AnyIr::load(&d.join("ir.json")).unwrap() {
        AnyIr::V2(ir) => ir,
        _ => panic!("kaq lower of a cg net wrote another family's IR"),
    }
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn v2_report_cycles_equal_the_codegen_model_and_refusals_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ir = tiny_ir(d);
    let (block, vector) = analytic_cycles(&ir);
    let prog = Program::new(&ir);
    let out = kaq(d)
        .args(["codegen", "--ir", "ir.json", "--out", "rtl"])
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        text.contains(&format!(
            "block stage {block} cycles, {vector} cycles per vector"
        )),
        "{text}"
    );
    for (t, flag) in [(14u64, None), (5, Some("5")), (1, Some("1"))] {
        let mut c = kaq(d);
        c.args(["report", "--ir", "ir.json", "--json", "r.json", "--force"]);
        if let Some(f) = flag {
            c.args(["--block", f]);
        }
        let out = c.assert().success();
        let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
        let r = json(&d.join("r.json"));
        let c = &r["cycles"];
        assert_eq!(r["ir_version"], 2);
        assert_eq!(c["p_blk"], block, "{c}");
        assert_eq!(c["p_vec"], vector, "{c}");
        assert_eq!(c["block"], t);
        let stream = 1 + (ir.m * ir.n) as u64 + block + t * (vector + 2);
        assert_eq!(c["block_cycles"], stream, "{c}");
        assert_eq!(stream, stream_cycles(&prog, t));
        assert_eq!(
            c["ii_effective"].as_f64().unwrap(),
            stream as f64 / t as f64
        );
        assert_eq!(c["macs_block"], prog.multiplies().0);
        assert_eq!(c["macs_vector"], prog.multiplies().1);
        assert!(r["qor"].is_null() && r["synth"].is_null(), "{r}");
        // The energy section: the IR's own counts at block length T (exact in JSON).
        let want = kaq_ir::gram::gram_energy(&ir, t as usize);
        let e = &r["energy"]["design"];
        assert_eq!(e["block"], t, "{e}");
        assert_eq!(
            e["horowitz"]["pj_per_vector"].as_f64(),
            Some(want.horowitz.pj_per_vector)
        );
        assert_eq!(
            e["paper"]["pj_per_bit"].as_f64(),
            Some(want.paper.pj_per_bit)
        );
        assert!(
            r["energy"]["baselines"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b["detector"] == "kbest:32"),
            "{r}"
        );
        assert!(
            text.contains(&format!(
                "P_blk {block} (" // the table shows the same figures
            )) && text.contains(&format!("a block of T = {t} vectors {stream} cycles")),
            "{text}"
        );
        assert!(
            text.contains("energy per vector (4 bits)") && text.contains("mmse (16-bit)"),
            "{text}"
        );
    }
    // Four MAC lanes: the lanes' cycle model and its multiply bound.
    let (block4, vector4) = kaq_codegen::gram::program::analytic_cycles_lanes(&ir, 4);
    let out = kaq(d)
        .args(["report", "--ir", "ir.json", "--json", "r.json", "--force"])
        .args(["--lanes", "4"])
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let r = json(&d.join("r.json"));
    assert_eq!(r["lanes"], 4);
    assert_eq!(r["cycles"]["p_blk"], block4, "{r}");
    assert_eq!(r["cycles"]["p_vec"], vector4, "{r}");
    assert!(vector4 < vector, "{vector4} {vector}");
    let bound = (prog.multiplies().1 as u64).div_ceil(4);
    assert!(
        text.contains("folded engine, 4 lanes")
            && text.contains(&format!("ceil(MACs / 4) = {bound} cycles")),
        "{text}"
    );
    fs::remove_file(d.join("r.json")).unwrap();
    for (args, flag) in [
        (&["--lanes", "0"][..], "--lanes"),
        (&["--lanes", "33"][..], "--lanes"),
        (&["--synth", "generic", "--flat"][..], "--flat"),
        (&["--synth", "ice40", "--place"][..], "--place"),
        (
            &["--synth", "generic", "--sweep-lanes", "s.svg"][..],
            "--sweep-lanes",
        ),
        (&["--block", "70000"][..], "--block"),
        (&["--clock-mhz", "100"][..], "--clock-mhz"),
        (&["--update-pipeline", "1"][..], "--update-pipeline"),
    ] {
        kaq(d)
            .args(["report", "--ir", "ir.json", "--json", "r.json"])
            .args(args)
            .assert()
            .code(2)
            .stderr(predicates::str::contains(flag));
        assert!(!d.join("r.json").exists(), "{args:?} wrote the report");
        assert!(!d.join("s.svg").exists(), "{args:?} wrote the plot");
    }
}

/// Yosys's generic flow on the tiny design (about 30 s of Yosys).
#[test]
fn v2_report_synth_generic_counts_cells_and_no_latches() {
    if kaq_sim::tools::require(kaq_sim::tools::Tool::Yosys)
        .expect("KAQ_REQUIRE_VERILATOR=1 but yosys is unusable")
        .is_none()
    {
        eprintln!("skipped: yosys not found (set KAQ_REQUIRE_VERILATOR=1 to require it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ir = tiny_ir(d);
    let prog = Program::new(&ir);
    kaq(d)
        .args([
            "report", "--ir", "ir.json", "--synth", "generic", "--block", "3",
        ])
        .args(["--no-synth-cache", "--json", "r.json"])
        .assert()
        .success();
    let r = json(&d.join("r.json"));
    assert_eq!(r["synth"]["complete"], true, "{r}");
    let s = &r["synth"]["total"];
    assert_eq!(s["target"], "generic");
    let count = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k}: {s}"));
    assert!(count("logic") > 0, "{s}");
    assert!(count("ff") > 0, "{s}");
    assert_eq!(count("latch"), 0, "{s}");
    let by_type: u64 = s["cells"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_type, count("total"));
    let q = &r["qor"];
    assert_eq!(q["ii"], stream_cycles(&prog, 3), "{q}");
    assert_eq!(q["vectors_per_ii"], 3, "{q}");
    assert_eq!(q["latency_cycles"], prog.vector_cycles(), "{q}");
    assert_eq!(q["bits_per_vector"], 4, "{q}");
    assert_eq!(q["lut"], count("logic"), "{q}");
    // The generic gates have no delays: no clock, so no throughput.
    assert!(
        q["fmax_mhz"].is_null() && q["throughput_mbps"].is_null(),
        "{q}"
    );
}
