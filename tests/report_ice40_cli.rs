//! `kaq report --synth ice40` says whether an iCE40 part holds the synthesized netlist, in the
//! table and the JSON, consistently with the cells it counted. Yosys's iCE40 synthesis of the
//! committed example takes minutes on a loaded machine, so the test is ignored by default:
//! run it with `cargo test --test report_ice40_cli -- --ignored` (Yosys on PATH).

use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::cargo_bin;
use serde_json::Value;

#[test]
#[ignore = "minutes of Yosys; run with --ignored"]
fn the_ice40_fit_is_stated_and_agrees_with_the_cells() {
    if Command::new("yosys").arg("-V").output().is_err() {
        panic!("yosys is not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pgd-qpsk-2x2/ir.json");
    let out = Command::new(cargo_bin("kaq"))
        .current_dir(d)
        .arg("report")
        .arg("--ir")
        .arg(&ir)
        .args(["--lanes", "2", "--synth", "ice40", "--no-synth-cache"])
        .args(["--json", "r.json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    let total = &json["synth"]["total"];
    let fit = &json["ice40_fit"];
    let (luts, ffs, dsps) = (
        total["logic"].as_u64().unwrap(),
        total["ff"].as_u64().unwrap(),
        total["dsp"].as_u64().unwrap(),
    );
    assert_eq!(fit["logic_cells"].as_u64(), Some(luts.max(ffs)), "{fit}");
    assert_eq!(fit["dsps"].as_u64(), Some(dsps), "{fit}");
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("iCE40 fit:"))
        .unwrap_or_else(|| panic!("no fit line in {stdout}"));
    match fit["part"].as_str() {
        Some(part) => assert!(line.contains(&format!("fits the {part}")), "{line}"),
        None => {
            assert!(line.contains("DOES NOT FIT any iCE40 part"), "{line}");
            // Nothing fits: not the HX8K/LP8K (7680 cells, no DSP, 32 BRAMs), not the UP5K
            // (5280 cells, 8 DSPs, 30 BRAMs).
            let (cells, brams) = (luts.max(ffs), total["memory"].as_u64().unwrap());
            let hx = cells <= 7680 && dsps == 0 && brams <= 32;
            let up = cells <= 5280 && dsps <= 8 && brams <= 30;
            assert!(!hx && !up, "{fit}");
        }
    }
}
