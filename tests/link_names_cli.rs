//! One name for a link in every command's output: `2×2 QPSK` (transmit × receive antennas and
//! the modulation as written in the field), as `plot::style::link_name` gives it, in the
//! tables of `kaq ber`, `kaq lower` and `kaq report` and in the plots' titles and axes.

use assert_cmd::cargo::cargo_bin_cmd;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pgd-qpsk-2x2");

fn stdout(args: &[&str]) -> String {
    let out = cargo_bin_cmd!("kaq").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "kaq {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_command_names_the_link_alike() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("ber.svg");
    let ber = stdout(&[
        "ber",
        "--nt",
        "2",
        "--nr",
        "2",
        "--mod",
        "qpsk",
        "--snr",
        "0",
        "--max-frames",
        "64",
        "--detector=mmse",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(ber.starts_with("# 2×2 QPSK Rayleigh, "), "{ber}");
    let svg = std::fs::read_to_string(svg).unwrap();
    assert!(svg.contains("BER, 2×2 QPSK Rayleigh"), "plot title");
    assert!(svg.contains("SNR per receive antenna (dB)"), "plot axis");
    assert!(
        !svg.contains("2x2") && !svg.contains("qpsk"),
        "an old name in the plot"
    );

    let ir = format!("{EXAMPLE}/ir.json");
    let lower_in = format!("{EXAMPLE}/model.json");
    let lowered = dir.path().join("ir.json");
    let lower = stdout(&[
        "lower",
        "--model",
        &lower_in,
        "--out",
        lowered.to_str().unwrap(),
    ]);
    assert!(lower.contains("  2×2 QPSK, H~ 4×4, "), "{lower}");
    let report = stdout(&["report", "--ir", &ir]);
    assert!(report.contains("): 2×2 QPSK, H~ 4×4, "), "{report}");
    for out in [&ber, &lower, &report] {
        assert!(!out.contains("2x2 qpsk"), "an old name in:\n{out}");
    }
}
