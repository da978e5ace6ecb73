//! `kaq report`'s analytic estimate: the table and the JSON `"estimate"` are
//! `kaq_codegen::estimate` of the design at the reported lane count (docs/synthesis.md
//! §Estimate), with one row per module and the total.

use std::fs;
use std::path::PathBuf;

use assert_cmd::Command;
use kaq_ir::Ir;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn report_shows_the_estimate_of_the_design_at_each_lane_count() {
    let dir = tempfile::tempdir().unwrap();
    let ir_path = root().join("codegen/tests/fixtures/synth-admm-bpsk.ir.json");
    let ir = Ir::from_json(&fs::read_to_string(&ir_path).unwrap(), "fixture").unwrap();
    let lane_counts: Vec<usize> = (1..=ir.n).filter(|p| ir.n.is_multiple_of(*p)).collect();
    assert!(
        lane_counts.len() >= 2,
        "the fixture must allow two lane counts"
    );
    let mut totals = Vec::new();
    for lanes in lane_counts {
        let json = dir.path().join(format!("r{lanes}.json"));
        let out = Command::cargo_bin("kaq")
            .unwrap()
            .args(["report", "--lanes", &lanes.to_string(), "--ir"])
            .arg(&ir_path)
            .arg("--json")
            .arg(&json)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let stdout = String::from_utf8(out).unwrap();
        let design = kaq_codegen::lower(&ir, lanes, "kaq_top").unwrap();
        let want = kaq_codegen::estimate::estimate(&design);
        let doc: Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(doc["estimate"], serde_json::to_value(&want).unwrap());
        assert!(stdout.contains("analytic estimate, xc7"), "{stdout}");
        let total_row = format!(
            "{:>16} {:>8} {:>7} {:>6}",
            "total", want.total.lut, want.total.ff, want.total.dsp
        );
        assert!(
            stdout.contains(&total_row),
            "{total_row:?} not in\n{stdout}"
        );
        for m in &want.modules {
            assert!(stdout.contains(&m.module), "{} missing", m.module);
        }
        totals.push(want.total);
    }
    // More lanes, more multipliers: the estimate follows the design it is given.
    assert!(
        totals.first().unwrap().dsp < totals.last().unwrap().dsp,
        "{totals:?}"
    );
}
