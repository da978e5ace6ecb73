//! `kaq report`'s energy section: the JSON figures of a design are those of
//! `kaq_ir::energy::estimate` of the same IR, the baselines those of
//! `kaq_model::detect::ops` at the IR's dimensions (docs/energy.md).

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use kaq_ir::Ir;
use kaq_ir::energy::{Arith, estimate};
use kaq_model::detect::ops::baseline_counts;
use kaq_model::detect::{DetectorSpec, KBestVariant};
use predicates::prelude::*;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn report(ir: &Path, json: &Path, extra: &[&str]) -> String {
    let out = Command::cargo_bin("kaq")
        .unwrap()
        .arg("report")
        .arg("--ir")
        .arg(ir)
        .arg("--json")
        .arg(json)
        .args(extra)
        .assert()
        .success()
        .stdout(predicate::str::contains("m2 pJ/bit"))
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

fn load(path: &Path) -> Ir {
    Ir::from_json(
        &fs::read_to_string(path).unwrap(),
        &path.display().to_string(),
    )
    .unwrap()
}

#[test]
fn json_energy_equals_the_library_estimate() {
    let dir = tempfile::tempdir().unwrap();
    for ir_path in [
        root().join("examples/pgd-qpsk-2x2/ir.json"),
        root().join("codegen/tests/fixtures/synth-admm-bpsk.ir.json"),
    ] {
        let json = dir.path().join("r.json");
        let _ = fs::remove_file(&json);
        let stdout = report(&ir_path, &json, &["--block", "12"]);
        let doc: Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
        let ir = load(&ir_path);
        let want = serde_json::to_value(estimate(&ir)).unwrap();
        assert_eq!(doc["energy"]["design"], want, "{}", ir_path.display());
        assert!(stdout.contains(&ir.name));

        let bits = ir.n as u32 * ir.modulation.bits_per_dim();
        let baselines = doc["energy"]["baselines"].as_array().unwrap();
        let specs = [
            DetectorSpec::Zf,
            DetectorSpec::Mmse,
            DetectorSpec::KBest {
                k: 32,
                variant: KBestVariant::default(),
            },
        ];
        let mut i = 0;
        for spec in specs {
            for arith in [Arith::fixed(16), Arith::F32] {
                let c = baseline_counts(spec, ir.m, ir.n, ir.levels(), bits, arith).unwrap();
                let b = &baselines[i];
                assert_eq!(b["detector"], spec.to_string());
                assert_eq!(b["energy"], serde_json::to_value(c.energy(12)).unwrap());
                assert_eq!(b["energy"]["block"], 12);
                i += 1;
            }
        }
        assert_eq!(baselines.len(), i);
    }
}

#[test]
fn block_must_be_positive() {
    let dir = tempfile::tempdir().unwrap();
    Command::cargo_bin("kaq")
        .unwrap()
        .arg("report")
        .arg("--ir")
        .arg(root().join("examples/pgd-qpsk-2x2/ir.json"))
        .args(["--block", "0"])
        .current_dir(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--block"));
}
