//! End-to-end tests of `kaq codegen` and `kaq report` on the committed example IR
//! (examples/pgd-qpsk-2x2, a 2×2 QPSK K = 3 PGD-Net): the files written and the II printed,
//! usage errors, refusal of a directory holding foreign files, the report's table and JSON,
//! and Yosys synthesis of a 1×1 BPSK K = 1 design (skipped when Yosys is missing unless
//! `KAQ_REQUIRE_VERILATOR=1`).

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use kaq_codegen::report::{Report, analyse};
use kaq_ir::Ir;
use predicates::prelude::*;
use serde_json::Value;

fn kaq(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("kaq").unwrap();
    cmd.current_dir(dir);
    cmd
}

fn example_ir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pgd-qpsk-2x2/ir.json")
}

/// The analytic report of the example IR at `lanes`, from the library.
fn expected(lanes: usize) -> Report {
    let ir = Ir::load(&example_ir()).unwrap();
    analyse(&kaq_codegen::lower(&ir, lanes, "kaq_top").unwrap())
}

fn stdout(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(out.get_output().stdout.clone()).unwrap()
}

#[test]
fn codegen_writes_the_files_and_the_ii() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = kaq(d)
        .args(["codegen", "--ir"])
        .arg(example_ir())
        .args(["--out", "rtl", "--lanes", "2"])
        .assert()
        .success();
    let text = stdout(&out);
    let manifest = fs::read_to_string(d.join("rtl/.kaq-codegen")).unwrap();
    let files: Vec<&str> = manifest.lines().collect();
    for f in &files {
        assert!(d.join("rtl").join(f).is_file(), "{f} listed but missing");
    }
    for f in [
        "kaq_top.v",
        "kaq_top_tb.v",
        "kaq_top_layer1.v",
        "kaq_top_layer3.v",
    ] {
        assert!(files.contains(&f), "{f} not written: {files:?}");
    }
    assert!(
        text.contains(&format!("wrote {} files to rtl", files.len())),
        "{text}"
    );
    assert!(text.contains("top kaq_top, 2 lanes, 3 layers"), "{text}");
    let t = expected(2).total;
    assert!(
        text.contains(&format!(
            "II {} cycles/frame (MAC bound {}), latency {} cycles",
            t.ii, t.mac_bound, t.latency
        )),
        "{text}"
    );
    assert!(text.contains("codegen "), "{text}");

    // Default lanes: N = 4, so 4; a custom top names the files.
    let out = kaq(d)
        .args(["codegen", "--ir"])
        .arg(example_ir())
        .args(["--out", "rtl4", "--top", "det"])
        .args(["--testbench-frames", "3", "--seed", "9"])
        .assert()
        .success();
    assert!(
        stdout(&out).contains("top det, 4 lanes"),
        "{}",
        stdout(&out)
    );
    assert!(d.join("rtl4/det.v").is_file());
    assert!(!d.join("rtl4/kaq_top.v").exists());
    let stim = fs::read_to_string(d.join("rtl4/det_stim.mem")).unwrap();
    let stim2 = fs::read_to_string(d.join("rtl/kaq_top_stim.mem")).unwrap();
    assert!(
        stim.lines().count() < stim2.lines().count(),
        "3 testbench frames should be fewer lines than 64"
    );
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: [(&[&str], &str); 12] = [
        (&["--clock-mhz", "0"], "--clock-mhz"),
        (&["--clock-mhz=-20"], "--clock-mhz"),
        (&["--clock-mhz", "x"], "--clock-mhz"),
        (&["--update-pipeline", "3"], "--update-pipeline"),
        (
            &["--update-pipeline", "1", "--clock-mhz", "50"],
            "--clock-mhz",
        ),
        (&["--lanes", "0"], "--lanes"),
        (&["--lanes", "3"], "--lanes"),
        (&["--lanes", "x"], "--lanes"),
        (&["--top", "module"], "--top"),
        (&["--top", "1abc"], "--top"),
        (&["--testbench-frames", "0"], "--testbench-frames"),
        (&["--testbench-frames", "100001"], "--testbench-frames"),
    ];
    for (flags, flag) in cases {
        kaq(d)
            .args(["codegen", "--ir"])
            .arg(example_ir())
            .args(["--out", "rtl"])
            .args(flags)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(flag));
        assert!(!d.join("rtl").exists(), "{flags:?} wrote output");
    }
    kaq(d)
        .args(["report", "--ir"])
        .arg(example_ir())
        .args(["--lanes", "3"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--lanes"));
    kaq(d)
        .args(["report", "--ir"])
        .arg(example_ir())
        .args(["--synth", "ecp5"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--synth"));

    // An invalid IR is a usage error naming the file; a missing one a run-time error.
    fs::write(
        d.join("bad.json"),
        "{\"format\": \"kaq-ir\", \"version\": 1}",
    )
    .unwrap();
    for cmd in ["codegen", "report"] {
        let mut c = kaq(d);
        c.args([cmd, "--ir", "bad.json"]);
        if cmd == "codegen" {
            c.args(["--out", "rtl"]);
        }
        c.assert()
            .code(2)
            .stderr(predicate::str::contains("--ir bad.json"));
    }
    kaq(d)
        .args(["codegen", "--ir", "missing.json", "--out", "rtl"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("missing.json"));
    assert!(!d.join("rtl").exists());
}

#[test]
fn a_directory_with_foreign_files_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("rtl")).unwrap();
    fs::write(d.join("rtl/notes.txt"), "mine").unwrap();
    let codegen = |force: bool| {
        let mut c = kaq(d);
        c.args(["codegen", "--ir"])
            .arg(example_ir())
            .args(["--out", "rtl"]);
        if force {
            c.arg("--force");
        }
        c
    };
    codegen(false)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("notes.txt").and(predicate::str::contains("--force")));
    assert!(!d.join("rtl/kaq_top.v").exists());
    codegen(true).assert().success();
    assert!(d.join("rtl/kaq_top.v").is_file());
    assert_eq!(fs::read_to_string(d.join("rtl/notes.txt")).unwrap(), "mine");
    // Its own files are not foreign: a second run needs no --force, the foreign one still
    // does.
    fs::remove_file(d.join("rtl/notes.txt")).unwrap();
    codegen(false).assert().success();
}

#[test]
fn report_prints_layers_totals_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = kaq(d)
        .args(["report", "--ir"])
        .arg(example_ir())
        .args(["--lanes", "2", "--json", "r.json"])
        .assert()
        .success();
    let text = stdout(&out);
    let r = expected(2);
    assert_eq!(r.layers.len(), 3);
    for l in &r.layers {
        let row = format!(
            "{:>6} {:>9} {:>8} {:>8} {:>8} {:>7} {:>6} {:>7} {:>10}",
            l.layer,
            l.macs,
            l.mac_cycles,
            l.update_cycles,
            l.latency,
            l.ii,
            l.multipliers,
            l.adders,
            l.memory_bits
        );
        assert!(text.contains(&row), "missing row {row:?} in\n{text}");
    }
    let t = &r.total;
    let total = text.lines().find(|l| l.trim_start().starts_with("total"));
    let total: Vec<&str> = total.expect("a total row").split_whitespace().collect();
    assert_eq!(total[1], t.macs.to_string());
    assert_eq!(total[4], t.latency.to_string());
    assert_eq!(total[5], t.ii.to_string());
    assert_eq!(total[8], t.memory_bits.to_string());
    assert!(
        text.contains(&format!(
            "II {} cycles/frame, latency {} cycles, MAC bound {} cycles",
            t.ii, t.latency, t.mac_bound
        )),
        "{text}"
    );

    let json: Value = serde_json::from_str(&fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    assert_eq!(json["format"], "kaq-report");
    assert_eq!(json["lanes"], 2);
    assert_eq!(json["n"], 4);
    let layers = json["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    for (j, l) in layers.iter().zip(&r.layers) {
        assert_eq!(j["macs"], l.macs);
        assert_eq!(j["mac_cycles"], l.mac_cycles);
        assert_eq!(j["update_cycles"], l.update_cycles);
        assert_eq!(j["latency"], l.latency);
        assert_eq!(j["ii"], l.ii);
        assert_eq!(j["multipliers"], l.multipliers);
        assert_eq!(j["adders"], l.adders);
        assert_eq!(j["memory_bits"], l.memory_bits);
    }
    let jt = &json["total"];
    assert_eq!(jt["ii"], t.ii);
    assert_eq!(jt["latency"], t.latency);
    assert_eq!(jt["mac_bound"], t.mac_bound);
    let ratio = jt["ii_over_mac_bound"].as_f64().unwrap();
    assert_eq!(ratio, t.ii as f64 / t.mac_bound as f64);
    assert!(json["synth"].is_null());

    // No clobber without --force.
    kaq(d)
        .args(["report", "--ir"])
        .arg(example_ir())
        .args(["--lanes", "4", "--json", "r.json"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--force"));
    let again: Value =
        serde_json::from_str(&fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    assert_eq!(again["lanes"], 2);
    kaq(d)
        .args(["report", "--ir"])
        .arg(example_ir())
        .args(["--lanes", "4", "--json", "r.json", "--force"])
        .assert()
        .success();
    let forced: Value =
        serde_json::from_str(&fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    assert_eq!(forced["lanes"], 4);
    assert_eq!(forced["total"]["ii"], expected(4).total.ii);
}

/// Yosys on the smallest design: 1×1 BPSK, one layer, one lane (about 20 s of Yosys).
#[test]
fn report_synth_generic_counts_cells_and_no_latches() {
    if kaq_codegen::synth::find_yosys().unwrap().is_none() {
        eprintln!("skipped: yosys not found (set KAQ_REQUIRE_VERILATOR=1 to require it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = [
        "--samples",
        "400",
        "--val-samples",
        "100",
        "--val-frames",
        "100",
        "--batch",
        "50",
        "--epochs",
        "1",
        "--threads",
        "1",
    ];
    kaq(d)
        .args(["train", "--nt", "1", "--nr", "1", "--mod", "bpsk"])
        .args(["--layers", "1", "--out", "t.json"])
        .args(data)
        .assert()
        .success();
    kaq(d)
        .args([
            "train",
            "--quant",
            "kaq",
            "--teacher",
            "t.json",
            "--out",
            "q.json",
        ])
        .args(data)
        .assert()
        .success();
    kaq(d)
        .args(["lower", "--model", "q.json", "--out", "ir.json"])
        .assert()
        .success();
    let out = kaq(d)
        .args([
            "report",
            "--ir",
            "ir.json",
            "--synth",
            "generic",
            "--no-synth-cache",
            "--json",
            "r.json",
        ])
        .assert()
        .success();
    let text = stdout(&out);
    assert!(
        text.contains("Yosys `synth -flatten -top kaq_unit` per stage"),
        "{text}"
    );
    let json: Value = serde_json::from_str(&fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    assert_eq!(json["synth"]["complete"], true);
    let s = &json["synth"]["total"];
    assert_eq!(s["target"], "generic");
    let count = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k}: {s}"));
    assert!(count("total") > 0, "{s}");
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
    assert_eq!(
        count("logic")
            + count("ff")
            + count("carry")
            + count("dsp")
            + count("memory")
            + count("latch")
            + count("other"),
        count("total")
    );
    assert!(
        text.contains(&format!("total cells {}", count("total"))),
        "{text}"
    );
}
