//! Output names and leftovers (docs/outputs.md): the longest legal name (255 bytes) works for
//! every output of every command, since kaq's temporary names are fixed-length; a longer one is
//! refused before any work and leaves nothing; a temporary file left by a killed kaq is removed
//! by the next run writing the same output, and never blamed as a foreign file.

use std::path::Path;

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin_cmd;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pgd-qpsk-2x2");
const BER: [&str; 12] = [
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
    "--detector=zf",
];
const TRAIN: [&str; 17] = [
    "train",
    "--nt",
    "2",
    "--nr",
    "2",
    "--mod",
    "qpsk",
    "--samples",
    "64",
    "--val-samples",
    "16",
    "--epochs",
    "1",
    "--val-frames",
    "10",
    "--batch",
    "32",
];

fn kaq() -> Command {
    cargo_bin_cmd!("kaq")
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `(command, flag, extension)`: every single-file or directory output the cases below write.
fn outputs(dir: &Path, name: &str) -> Vec<(Vec<String>, String)> {
    let p = |ext: &str| dir.join(format!("{name}{ext}")).display().to_string();
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let model = format!("{EXAMPLE}/model.json");
    let ir = format!("{EXAMPLE}/ir.json");
    vec![
        (
            [&s(&BER)[..], &["--json".into(), p(".json")]].concat(),
            p(".json"),
        ),
        (
            [&s(&BER)[..], &["--plot".into(), p(".svg")]].concat(),
            p(".svg"),
        ),
        (
            [&s(&TRAIN)[..], &["--out".into(), p(".json")]].concat(),
            p(".json"),
        ),
        (
            [
                &s(&TRAIN)[..],
                &[
                    "--out".into(),
                    dir.join("m.json").display().to_string(),
                    "--plot".into(),
                    p(".svg"),
                ],
            ]
            .concat(),
            p(".svg"),
        ),
        (
            s(&["lower", "--model", &model, "--out", &p(".json")]),
            p(".json"),
        ),
        (s(&["codegen", "--ir", &ir, "--out", &p(".rtl")]), p(".rtl")),
        (
            s(&["report", "--ir", &ir, "--json", &p(".json")]),
            p(".json"),
        ),
    ]
}

#[test]
fn the_longest_legal_name_works_and_a_longer_one_is_refused_before_any_work() {
    let mut cases = 0;
    for (len, ok) in [(255usize, true), (256, false), (1000, false)] {
        for i in 0..outputs(Path::new("."), "x").len() {
            let dir = tempfile::tempdir().unwrap();
            // The name including its extension is `len` bytes.
            let (args, out) = {
                let all = outputs(dir.path(), "");
                let ext = Path::new(&all[i].1).file_name().unwrap().len();
                let stem = "n".repeat(len - ext);
                outputs(dir.path(), &stem).swap_remove(i)
            };
            let output = kaq().args(&args).output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            let what = format!("{len} bytes, kaq {}: {stderr}", args[0]);
            assert!(!stderr.contains("panicked"), "{what}");
            if ok {
                assert!(output.status.success(), "{what}");
                assert!(Path::new(&out).exists(), "{what}");
                // Only the output (and the model of the plot case) and kaq's lock files.
                for n in names(dir.path()) {
                    assert!(
                        n.len() == len || n == "m.json" || n.starts_with(".kaq-lock-"),
                        "{what}: {n}"
                    );
                }
            } else {
                assert!(!output.status.success(), "{what}");
                assert!(stderr.contains("longer than 255 bytes"), "{what}");
                assert!(!stderr.contains("epoch"), "refused after work: {what}");
                let left: Vec<String> = names(dir.path())
                    .into_iter()
                    .filter(|n| !n.starts_with(".kaq-lock-"))
                    .collect();
                assert!(left.is_empty(), "{what}: left {left:?}");
            }
            cases += 1;
        }
    }
    eprintln!("class 6 (output names): {cases} cases");
}

#[test]
fn a_temp_file_left_by_a_killed_run_is_removed_by_the_next_run_of_the_same_output() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("ber.json");
    let prefix = kaq_files::temp_prefix("ber.json".as_ref());
    // What a SIGKILL between creating the temporary file and renaming it leaves.
    let leftover = dir.path().join(format!("{prefix}k1ll3d"));
    std::fs::write(&leftover, b"{\"half\": ").unwrap();
    // Another output's leftover is not this run's business.
    let other = dir.path().join(format!(
        "{}k1ll3d",
        kaq_files::temp_prefix("plot.svg".as_ref())
    ));
    std::fs::write(&other, b"<svg").unwrap();
    kaq().args(BER).arg("--json").arg(&json).assert().success();
    assert_eq!(
        names(dir.path()),
        vec![
            other.file_name().unwrap().to_string_lossy().into_owned(),
            "ber.json".into()
        ]
    );
    // The plot's own next run removes its leftover too.
    kaq()
        .args(BER)
        .arg("--plot")
        .arg(dir.path().join("plot.svg"))
        .assert()
        .success();
    assert_eq!(names(dir.path()), vec!["ber.json", "plot.svg"]);
}
