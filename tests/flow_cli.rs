//! End-to-end tests of `kaq flow` on a tiny configuration: every artefact, the summary,
//! resumption (reuse, partial rerun after a change, --fresh) and config errors.

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

const TINY: &str = r#"{
  "link": {"nt": 2, "nr": 2, "modulation": "qpsk"},
  "net": {"arch": "pgd", "layers": 2},
  "train": {"samples": 600, "val_samples": 200, "epochs": 2, "batch": 50, "lr": 0.01},
  "quant": {"epochs": 1, "bits": 6},
  "rtl": {"lanes": 2, "synth": "none"},
  "cosim": {"frames": 0},
  "ber": {"snr_db": [0, 10], "min_errors": 100, "max_frames": 4000, "references": ["mmse"]}
}"#;

fn kaq(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("kaq").unwrap();
    cmd.current_dir(dir);
    cmd
}

fn flow(dir: &Path, config: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
    fs::write(dir.join("kaq.json"), config).unwrap();
    kaq(dir)
        .args([
            "flow",
            "--config",
            "kaq.json",
            "--out",
            "out",
            "--threads",
            "1",
        ])
        .args(extra)
        .assert()
}

#[test]
fn flow_writes_every_artefact_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    flow(d, TINY, &[]).success();
    let out = d.join("out");
    for f in [
        "models/f32.json",
        "models/quant.json",
        "ir.json",
        "rtl/kaq_top.v",
        "rtl/README.md",
        "report.json",
        "ber.json",
        "ber.svg",
        "summary.md",
        "flow.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let summary = fs::read_to_string(out.join("summary.md")).unwrap();
    for needle in [
        "## BER",
        "pgd-soft-k2-kaq-6b-int",
        "## Quantization gap",
        "initiation interval",
        "kaq lower --model out/models/quant.json",
        "kaq codegen --ir out/ir.json --lanes 2",
        // How to get `kaq` on the PATH for the reproduce commands.
        "cargo install --path .",
        // The link is named as everywhere else (plot::style::link_name).
        "2×2 QPSK link",
    ] {
        assert!(
            summary.contains(needle),
            "summary lacks {needle:?}:\n{summary}"
        );
    }
    let svg = fs::read_to_string(out.join("ber.svg")).unwrap();
    assert!(svg.contains("BER, 2×2 QPSK: "), "ber.svg title");
    assert!(svg.contains("SNR per receive antenna (dB)"), "ber.svg axis");
    // The energy figures of the summary are in flow.json and report.json (docs/energy.md).
    let json = |f: &str| -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(out.join(f)).unwrap()).unwrap()
    };
    let (flow_json, report_json) = (json("flow.json"), json("report.json"));
    let energy = &flow_json["energy"];
    assert_eq!(energy, &report_json["energy"]);
    let (paper, horowitz) = (
        energy["design"]["paper"]["pj_per_bit"].as_f64().unwrap(),
        energy["design"]["horowitz"]["pj_per_bit"].as_f64().unwrap(),
    );
    assert!(paper > 0.0 && horowitz > 0.0, "{energy}");
    assert!(
        summary.contains(&format!("design **{paper:.3} / {horowitz:.3}**")),
        "the summary quotes other energy figures than flow.json:\n{summary}"
    );
    let baselines: Vec<&str> = energy["baselines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["detector"].as_str().unwrap())
        .collect();
    assert!(
        baselines.contains(&"mmse") && baselines.contains(&"kbest:32"),
        "{baselines:?}"
    );
    let ir_before = fs::read(out.join("ir.json")).unwrap();

    // Unchanged: everything is reused.
    flow(d, TINY, &[])
        .success()
        .stdout(predicate::str::contains("f32: up to date, reused"))
        .stdout(predicate::str::contains("ber: up to date, reused"))
        .stdout(predicate::str::contains("trained").not());

    // One change downstream of f32: the f32 net is reused, quantization and after rerun.
    let changed = TINY.replace("\"bits\": 6", "\"bits\": 5");
    flow(d, &changed, &[])
        .success()
        .stdout(predicate::str::contains("f32: up to date, reused"))
        .stdout(predicate::str::contains("quant: kaq-5b"))
        .stdout(predicate::str::contains("lower: pgd-soft-k2-kaq-5b"));
    assert_ne!(fs::read(out.join("ir.json")).unwrap(), ir_before);

    // --fresh reruns everything.
    flow(d, &changed, &["--fresh"])
        .success()
        .stdout(predicate::str::contains("f32: trained"));
}

#[test]
fn bad_configs_exit_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    flow(d, r#"{"quant": {"bitz": 4}}"#, &[])
        .code(2)
        .stderr(predicate::str::contains("bitz"));
    // 3 lanes do not divide N = 16 of the default link (the unfolded nets' lanes must).
    flow(d, r#"{"net": {"arch": "pgd"}, "rtl": {"lanes": 3}}"#, &[])
        .code(2)
        .stderr(predicate::str::contains("rtl.lanes"));
    flow(d, r#"{"rtl": {"top": "1bad"}}"#, &[])
        .code(2)
        .stderr(predicate::str::contains("rtl.top"));
    flow(d, r#"{"ber": {"references": ["nope"]}}"#, &[])
        .code(2)
        .stderr(predicate::str::contains("ber.references"));
    flow(d, "{not json", &[])
        .code(2)
        .stderr(predicate::str::contains("--config"));
    assert!(
        !d.join("out").exists(),
        "a refused config must not create --out"
    );
}

/// A synthesis stopped by its time limit is reported as timed out and not cached: the next
/// run synthesizes again instead of reusing the partial result.
#[test]
fn a_synthesis_time_out_is_not_cached() {
    if which("yosys").is_none() {
        assert!(
            std::env::var("KAQ_REQUIRE_VERILATOR").as_deref() != Ok("1"),
            "yosys not found and KAQ_REQUIRE_VERILATOR=1"
        );
        eprintln!("skipped: yosys not found (set KAQ_REQUIRE_VERILATOR=1 to require it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = TINY.replace(
        r#""synth": "none""#,
        r#""synth": "xilinx", "synth_limit_s": 1"#,
    );
    for _ in 0..2 {
        let out = flow(d, &config, &[]).success();
        let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
        assert!(!stdout.contains("synth: up to date, reused"), "{stdout}");
        let summary = fs::read_to_string(d.join("out/summary.md")).unwrap();
        assert!(
            summary.contains("| synth | timed out after 1 s (not cached"),
            "{summary}"
        );
        assert!(
            summary.contains("**timed out** after 1 s (`rtl.synth_limit_s`; not cached"),
            "the hardware section does not say the synthesis timed out:\n{summary}"
        );
        assert!(
            !d.join("out/.kaq-flow/synth.key").exists(),
            "a timed-out synthesis left a cache key"
        );
        // The printed report command repeats this synthesis: same limit, same cache.
        assert!(
            summary.contains(
                "kaq report --ir out/ir.json --lanes 2 --update-pipeline 2 --synth xilinx \
                 --synth-limit 1 \
                 --synth-cache out/synth-cache\n"
            ),
            "{summary}"
        );
    }
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}

/// With stderr piped (not a terminal) the bars are hidden and each long stage prints plain
/// progress lines — its name, percentage and time elapsed — at `$KAQ_PROGRESS_SECS`; the
/// Verilator build says when it starts and how long it took.
#[test]
fn progress_is_plain_lines_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let verilator = which("verilator").is_some();
    // Enough training and BER frames that each of the two stages takes well over the interval
    // (the test profile is optimized: 20 000 BER frames of this 2×2 net once ended before the
    // first 0.01 s line; 200 000 take a few tenths of a second).
    let config = TINY
        .replace(r#""samples": 600"#, r#""samples": 10000"#)
        .replace(r#""epochs": 2"#, r#""epochs": 3"#)
        .replace(
            r#""min_errors": 100, "max_frames": 4000"#,
            r#""min_errors": 1000000, "max_frames": 200000"#,
        )
        .replace(
            r#""cosim": {"frames": 0}"#,
            if verilator {
                r#""cosim": {"frames": 4}"#
            } else {
                r#""cosim": {"frames": 0}"#
            },
        );
    fs::write(d.join("kaq.json"), config).unwrap();
    let out = kaq(d)
        .env("KAQ_PROGRESS_SECS", "0.01")
        .args([
            "flow",
            "--config",
            "kaq.json",
            "--out",
            "out",
            "--threads",
            "1",
        ])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    // No bar drawing (spinners, bars, carriage returns or escapes) in a log.
    for junk in ["\r", "\x1b[", "[====", "⠁"] {
        assert!(!stderr.contains(junk), "{junk:?} in the log:\n{stderr}");
    }
    // `name: P%, …, N s elapsed`, P within 0..=100.
    let progress = |prefix: &str| -> Vec<u64> {
        stderr
            .lines()
            .filter(|l| l.starts_with(prefix) && l.ends_with(" s elapsed"))
            .map(|l| {
                let percent = l.split(": ").nth(1).and_then(|r| r.split('%').next());
                let percent: u64 = percent
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| panic!("no percentage in {l:?}"));
                assert!(percent <= 100, "{l}");
                percent
            })
            .collect()
    };
    let f32_lines = progress("f32 epoch ");
    assert!(!f32_lines.is_empty(), "no f32 progress lines:\n{stderr}");
    let ber_lines = progress("ber: ");
    assert!(!ber_lines.is_empty(), "no ber progress lines:\n{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("ber: ") && l.contains(", SNR ")),
        "the ber lines do not name the SNR:\n{stderr}"
    );
    // The BER stage moves forward (one pass over the SNR points).
    assert!(
        ber_lines.windows(2).all(|w| w[0] <= w[1]),
        "{ber_lines:?}\n{stderr}"
    );
    if verilator {
        assert!(
            stderr.contains("cosim build: compiling the RTL with Verilator…\n"),
            "{stderr}"
        );
        let done = stderr
            .lines()
            .find(|l| {
                l.starts_with("cosim build: Verilator build done in ")
                    || l.starts_with("cosim build: reused the cached Verilator build in ")
            })
            .unwrap_or_else(|| panic!("no build-step line:\n{stderr}"));
        let seconds = done
            .rsplit(" in ")
            .next()
            .and_then(|s| s.strip_suffix(" s"))
            .and_then(|s| s.parse::<f64>().ok());
        assert!(seconds.is_some_and(|s| s >= 0.0), "{done}");
    }
}
