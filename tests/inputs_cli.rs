//! Every input file kaq reads goes through `kaq_files::read_text` (docs/outputs.md, "Single
//! files"): a device file, a FIFO, a directory, a file above `kaq_files::INPUT_LIMIT` or one
//! that is not text is refused at once with exit status 2, naming the flag and the file, and
//! nothing is created. `--model /dev/zero` ends in well under a second, without reading.

use std::path::{Path, PathBuf};
use std::process::Command as Std;
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin_cmd;

/// The commands and flags that read an input file; `{}` is the input, `OUT` a path inside the
/// test's output directory.
const READERS: &[(&str, &[&str])] = &[
    (
        "--model",
        &[
            "ber", "--nt", "2", "--nr", "2", "--mod", "qpsk", "--snr", "0", "--model", "{}",
        ],
    ),
    (
        "--ir",
        &[
            "ber", "--nt", "2", "--nr", "2", "--mod", "qpsk", "--snr", "0", "--ir", "{}",
        ],
    ),
    (
        "--rtl",
        &[
            "ber", "--nt", "2", "--nr", "2", "--mod", "qpsk", "--snr", "0", "--rtl", "{}",
        ],
    ),
    (
        "--after",
        &[
            "ber",
            "--nt",
            "2",
            "--nr",
            "2",
            "--mod",
            "qpsk",
            "--shard",
            "0/1",
            "--json",
            "OUT/s.json",
            "--after",
            "{}",
        ],
    ),
    (
        "--model",
        &["lower", "--model", "{}", "--out", "OUT/ir.json"],
    ),
    ("--ir", &["codegen", "--ir", "{}", "--out", "OUT/rtl"]),
    ("--ir", &["report", "--ir", "{}", "--json", "OUT/r.json"]),
    ("--ir", &["cosim", "--ir", "{}", "--frames", "1"]),
    (
        "--teacher",
        &[
            "train",
            "--quant",
            "ptq",
            "--teacher",
            "{}",
            "--out",
            "OUT/q.json",
        ],
    ),
    (
        "--teacher",
        &["compare", "--teacher", "{}", "--out", "OUT/cmp"],
    ),
    ("SHARD", &["merge", "{}"]),
    ("--after", &["merge", "--after", "{}", "OUT/none.json"]),
];

/// The kinds of refused input, each with the phrase its message contains.
fn bad_inputs(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let fifo = dir.join("pipe.json");
    assert!(Std::new("mkfifo").arg(&fifo).status().unwrap().success());
    // Sparse: one byte above the limit costs no disk.
    let big = dir.join("big.json");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(kaq_files::INPUT_LIMIT + 1)
        .unwrap();
    let binary = dir.join("binary.json");
    std::fs::write(&binary, b"{\"format\": \"\xff\xfe\"}").unwrap();
    let folder = dir.join("folder.json");
    std::fs::create_dir(&folder).unwrap();
    vec![
        (PathBuf::from("/dev/zero"), "is a character device"),
        (PathBuf::from("/dev/urandom"), "is a character device"),
        (fifo, "is a FIFO"),
        (folder, "is a directory"),
        (big, "larger than the limit of 67108864 bytes"),
        (binary, "not UTF-8 text"),
    ]
}

#[test]
fn every_input_flag_refuses_devices_fifos_directories_large_and_binary_files() {
    let inputs = tempfile::tempdir().unwrap();
    let bad = bad_inputs(inputs.path());
    let mut cases = 0;
    for (flag, args) in READERS {
        for (input, phrase) in &bad {
            let out = tempfile::tempdir().unwrap();
            let argv: Vec<String> = args
                .iter()
                .map(|a| {
                    a.replace("{}", &input.display().to_string())
                        .replace("OUT", &out.path().display().to_string())
                })
                .collect();
            let start = Instant::now();
            let output = cargo_bin_cmd!("kaq")
                .args(&argv)
                .timeout(Duration::from_secs(60))
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            let what = format!("kaq {}: {stderr}", argv.join(" "));
            assert_eq!(output.status.code(), Some(2), "{what}");
            assert!(stderr.contains(flag), "names {flag}: {what}");
            assert!(stderr.contains(&input.display().to_string()), "{what}");
            assert!(stderr.contains(phrase), "{phrase}: {what}");
            assert!(!stderr.contains("panicked"), "{what}");
            assert!(start.elapsed() < Duration::from_secs(30), "{what}");
            let created: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
            assert!(created.is_empty(), "created {created:?}: {what}");
            cases += 1;
        }
    }
    assert_eq!(cases, READERS.len() * 6);
    eprintln!("class 5 (capped inputs): {cases} cases");
}

#[test]
fn model_dev_zero_exits_2_without_reading() {
    // Reading /dev/zero would never end: a quick exit shows it was not read at all.
    let start = Instant::now();
    cargo_bin_cmd!("kaq")
        .args(["ber", "--snr", "0", "--model", "/dev/zero"])
        .timeout(Duration::from_secs(20))
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "--model: /dev/zero: is a character device, not a regular file",
        ));
    assert!(start.elapsed() < Duration::from_secs(10));
}
