//! The "Reproduce each stage" commands of a flow's summary.md, run as printed (through `sh`,
//! from another directory, with the built `kaq` first on PATH), write the same artefacts as
//! the flow, byte for byte.

use std::fs;
use std::process::Command;

#[path = "common/reproduce.rs"]
mod reproduce;
use reproduce::{assert_commands_reproduce, kaq_bin, reproduce_commands};

const TINY: &str = r#"{
  "link": {"nt": 2, "nr": 2, "modulation": "qpsk"},
  "net": {"arch": "pgd", "layers": 2},
  "train": {"samples": 600, "val_samples": 200, "epochs": 2, "batch": 50, "lr": 0.01},
  "quant": {"epochs": 1, "bits": 6},
  "rtl": {"lanes": 2, "synth": "none"},
  "cosim": {"frames": 0},
  "ber": {"snr_db": [0, 10], "min_errors": 100, "max_frames": 4000, "references": ["mmse"]}
}"#;

#[test]
fn printed_commands_reproduce_the_flow_artefacts_byte_for_byte() {
    let flow_dir = tempfile::tempdir().unwrap();
    fs::write(flow_dir.path().join("kaq.json"), TINY).unwrap();
    let status = Command::new(kaq_bin())
        .current_dir(flow_dir.path())
        .args(["flow", "--config", "kaq.json", "--out", "out"])
        .status()
        .unwrap();
    assert!(status.success(), "kaq flow failed");
    let summary = fs::read_to_string(flow_dir.path().join("out/summary.md")).unwrap();
    let commands = reproduce_commands(&summary);
    assert!(commands.len() >= 4, "too few commands: {commands:?}");

    assert_commands_reproduce(
        &commands,
        &flow_dir.path().join("out"),
        &[
            "models/f32.json",
            "models/quant.json",
            "ir.json",
            "rtl/kaq_top.v",
        ],
    );
}
