//! `kaq flow --config` refuses every malformed configuration before any work (docs/flow.md):
//! a non-object document, an array or `null` in place of an object, a value of the wrong
//! type, an unknown field at any depth, an out-of-range value. Each exits 2 with a message
//! naming the field's path and creates nothing on disk.

use std::fs;

use assert_cmd::Command;
use proptest::prelude::*;
use serde_json::{Value, json};

/// A small valid configuration the mutations start from.
fn base() -> Value {
    json!({
        "link": {"nt": 2, "nr": 2, "modulation": "qpsk", "block": 1},
        "net": {"arch": "pgd", "prox": "soft", "layers": 2, "momentum": false, "init": "zero"},
        "train": {"samples": 600, "val_samples": 200, "batch": 50, "epochs": 2, "lr": 0.01,
                  "lr_step": 10, "seed": 1, "snr_db": [0.0, 10.0]},
        "quant": {"method": "kaq", "bits": 6, "epochs": 1, "lr": 0.001, "lr_step": 10,
                  "epsilon": 0.1, "kernel": "median", "mult_bits": 16},
        "rtl": {"lanes": 2, "top": "kaq_top", "testbench_frames": 8, "synth": "none",
                "synth_limit_s": 60},
        "cosim": {"frames": 0, "stall_prob": 0.2, "seed": 1},
        "ber": {"snr_db": [0.0, 10.0], "min_errors": 100, "max_frames": 4000,
                "references": ["mmse"], "seed": 1}
    })
}

const SECTIONS: [&str; 7] = ["link", "net", "train", "quant", "rtl", "cosim", "ber"];

/// What a leaf holds, for a value of another type.
#[derive(Debug, Clone, Copy)]
enum Leaf {
    Int,
    /// An integer whose `null` means its default.
    OptInt,
    Float,
    Str,
    Bool,
    Floats,
    Strs,
}

const LEAVES: &[(&str, &str, Leaf)] = &[
    ("link", "nt", Leaf::Int),
    ("link", "nr", Leaf::Int),
    ("link", "modulation", Leaf::Str),
    ("link", "block", Leaf::Int),
    ("net", "arch", Leaf::Str),
    ("net", "prox", Leaf::Str),
    ("net", "layers", Leaf::Int),
    ("net", "momentum", Leaf::Bool),
    ("net", "init", Leaf::Str),
    ("train", "samples", Leaf::Int),
    ("train", "val_samples", Leaf::Int),
    ("train", "batch", Leaf::Int),
    ("train", "epochs", Leaf::Int),
    ("train", "lr", Leaf::Float),
    ("train", "lr_step", Leaf::Int),
    ("train", "seed", Leaf::Int),
    ("train", "snr_db", Leaf::Floats),
    ("quant", "method", Leaf::Str),
    ("quant", "bits", Leaf::Int),
    ("quant", "epochs", Leaf::Int),
    ("quant", "lr", Leaf::Float),
    ("quant", "lr_step", Leaf::Int),
    ("quant", "epsilon", Leaf::Float),
    ("quant", "kernel", Leaf::Str),
    ("quant", "mult_bits", Leaf::Int),
    ("rtl", "lanes", Leaf::OptInt),
    ("rtl", "top", Leaf::Str),
    ("rtl", "testbench_frames", Leaf::Int),
    ("rtl", "synth", Leaf::Str),
    ("rtl", "synth_limit_s", Leaf::Int),
    ("cosim", "frames", Leaf::Int),
    ("cosim", "stall_prob", Leaf::Float),
    ("cosim", "seed", Leaf::Int),
    ("ber", "snr_db", Leaf::Floats),
    ("ber", "min_errors", Leaf::Int),
    ("ber", "max_frames", Leaf::Int),
    ("ber", "references", Leaf::Strs),
    ("ber", "seed", Leaf::Int),
];

/// Values of other JSON kinds than `leaf`'s own (for integers also negatives, fractions and
/// numbers too large for an integer; for arrays also arrays of wrong elements).
fn wrong_values(leaf: Leaf) -> Vec<Value> {
    match leaf {
        Leaf::Int => vec![
            Value::Null,
            json!([1, 2]),
            json!({"nt": 2}),
            json!("x"),
            json!(true),
            json!(-1),
            json!(2.5),
            json!(1e30),
        ],
        Leaf::OptInt => vec![
            json!([1, 2]),
            json!({"nt": 2}),
            json!("x"),
            json!(true),
            json!(-1),
            json!(2.5),
            json!(1e30),
        ],
        Leaf::Float => vec![
            Value::Null,
            json!([1, 2]),
            json!({"nt": 2}),
            json!("x"),
            json!(true),
        ],
        Leaf::Str => vec![
            Value::Null,
            json!(["qpsk"]),
            json!({}),
            json!(3),
            json!(true),
        ],
        Leaf::Bool => vec![Value::Null, json!([true]), json!({}), json!("x"), json!(1)],
        Leaf::Floats => vec![
            Value::Null,
            json!({}),
            json!("x"),
            json!(true),
            json!(3),
            json!(["a"]),
            json!([[1.0]]),
            json!([null]),
        ],
        Leaf::Strs => vec![
            Value::Null,
            json!({}),
            json!("mmse"),
            json!(true),
            json!(3),
            json!([1]),
            json!([["mmse"]]),
            json!([null]),
        ],
    }
}

/// Values in range of their type but refused by the flow, with the path the error names.
fn out_of_range() -> Vec<(&'static str, &'static str, Value, &'static str)> {
    vec![
        ("link", "nt", json!(0), "link.nt"),
        ("link", "nr", json!(300), "link.nr"),
        ("link", "block", json!(0), "link.block"),
        ("net", "layers", json!(0), "net.layers"),
        ("net", "layers", json!(65), "net.layers"),
        ("net", "arch", json!("cnn"), "net.arch"),
        ("train", "samples", json!(0), "train.samples"),
        ("train", "batch", json!(601), "train.batch"),
        ("train", "lr", json!(-0.1), "train.lr"),
        ("train", "snr_db", json!([0.0, 1e308]), "train.snr_db[1]"),
        ("train", "snr_db", json!([]), "train.snr_db"),
        ("quant", "bits", json!(1), "quant.bits"),
        ("quant", "bits", json!(40), "quant.bits"),
        ("quant", "bits", json!(5_000_000_000u64), "quant.bits"),
        ("quant", "epochs", json!(0), "quant.epochs"),
        ("quant", "epsilon", json!(-1.0), "quant.epsilon"),
        ("quant", "kernel", json!("gauss"), "quant.kernel"),
        ("quant", "mult_bits", json!(7), "quant.mult_bits"),
        ("quant", "method", json!("fp8"), "quant.method"),
        ("rtl", "lanes", json!(3), "rtl.lanes"),
        ("rtl", "lanes", json!(0), "rtl.lanes"),
        ("rtl", "top", json!("1bad"), "rtl.top"),
        ("rtl", "testbench_frames", json!(0), "rtl.testbench_frames"),
        (
            "rtl",
            "testbench_frames",
            json!(100_001),
            "rtl.testbench_frames",
        ),
        ("rtl", "synth", json!("asic"), "rtl.synth"),
        ("rtl", "synth_limit_s", json!(0), "rtl.synth_limit_s"),
        ("rtl", "clock_mhz", json!(0.0), "rtl.clock_mhz"),
        ("rtl", "clock_mhz", json!(-50.0), "rtl.clock_mhz"),
        ("rtl", "clock_mhz", json!(5000.0), "rtl.clock_mhz"),
        ("cosim", "stall_prob", json!(1.0), "cosim.stall_prob"),
        ("cosim", "frames", json!(10_000_000), "cosim.frames"),
        ("ber", "snr_db", json!([-1e308]), "ber.snr_db[0]"),
        ("ber", "snr_db", json!([0.0, 5.0, 101.0]), "ber.snr_db[2]"),
        ("ber", "snr_db", json!([]), "ber.snr_db"),
        ("ber", "min_errors", json!(0), "ber.min_errors"),
        (
            "ber",
            "references",
            json!(["mmse", "nope"]),
            "ber.references[1]",
        ),
        ("ber", "references", json!(["kbest:0"]), "ber.references[0]"),
    ]
}

/// One malformed configuration and the path its error must name (empty: the document).
#[derive(Debug, Clone)]
struct Case {
    config: Value,
    path: String,
}

fn case() -> impl Strategy<Value = Case> {
    let top = prop_oneof![
        Just(json!([])),
        Just(json!([{"nt": 2}])),
        Just(Value::Null),
        Just(json!(3)),
        Just(json!("link")),
    ]
    .prop_map(|config| Case {
        config,
        path: String::new(),
    });
    let section = (
        0..SECTIONS.len(),
        prop_oneof![
            Just(json!([2, 2])),
            Just(json!([])),
            Just(Value::Null),
            Just(json!(16)),
            Just(json!("qpsk"))
        ],
    )
        .prop_map(|(i, v)| {
            let mut config = base();
            config[SECTIONS[i]] = v;
            Case {
                config,
                path: SECTIONS[i].to_string(),
            }
        });
    let unknown = (0..=SECTIONS.len(), "[a-z]{1,8}").prop_map(|(i, name)| {
        let name = format!("zz_{name}");
        let mut config = base();
        if i == SECTIONS.len() {
            config[&name] = json!({});
            Case { config, path: name }
        } else {
            config[SECTIONS[i]][&name] = json!(1);
            Case {
                config,
                path: format!("{}.{name}", SECTIONS[i]),
            }
        }
    });
    let wrong_type = (0..LEAVES.len(), any::<prop::sample::Index>()).prop_map(|(i, pick)| {
        let (s, f, leaf) = LEAVES[i];
        let values = wrong_values(leaf);
        let v = values[pick.index(values.len())].clone();
        let mut config = base();
        // A bad element inside an array field is named by its index.
        let path = if matches!(leaf, Leaf::Floats | Leaf::Strs) && v.is_array() {
            format!("{s}.{f}[0]")
        } else {
            format!("{s}.{f}")
        };
        config[s][f] = v;
        Case { config, path }
    });
    let range = (0..out_of_range().len()).prop_map(|i| {
        let (s, f, v, path) = out_of_range().swap_remove(i);
        let mut config = base();
        config[s][f] = v;
        Case {
            config,
            path: path.to_string(),
        }
    });
    prop_oneof![top, section, unknown, wrong_type, range]
}

/// Runs the flow on `config`; returns its exit code, stderr and the names in the directory
/// after the run.
fn run(config: &str) -> (Option<i32>, String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("kaq.json"), config).unwrap();
    let out = Command::cargo_bin("kaq")
        .unwrap()
        .current_dir(dir.path())
        .args(["flow", "--config", "kaq.json", "--out", "out"])
        .output()
        .unwrap();
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
        names,
    )
}

fn check(case: &Case) {
    let (code, stderr, names) = run(&case.config.to_string());
    assert_eq!(code, Some(2), "{}: {stderr}", case.config);
    let want = if case.path.is_empty() {
        "config: ".to_string()
    } else {
        format!("config field {}: ", case.path)
    };
    assert!(
        stderr.contains(&want),
        "{}: stderr does not name {want:?}: {stderr}",
        case.config
    );
    assert_eq!(names, ["kaq.json"], "{}: created files", case.config);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn malformed_configs_exit_2_naming_the_field_and_create_nothing(case in case()) {
        check(&case);
    }
}

/// Every out-of-range value of the table, not only the ones the random cases pick.
#[test]
fn every_out_of_range_value_is_refused_by_name() {
    for (s, f, v, path) in out_of_range() {
        let mut config = base();
        config[s][f] = v;
        check(&Case {
            config,
            path: path.to_string(),
        });
    }
}

/// The reference configuration itself passes validation (so the refusals above are the
/// mutation's doing): with an out directory that is a file, the flow fails after the
/// configuration, at `--out`.
#[test]
fn the_base_configuration_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("kaq.json"), base().to_string()).unwrap();
    fs::write(dir.path().join("out"), "").unwrap();
    Command::cargo_bin("kaq")
        .unwrap()
        .current_dir(dir.path())
        .args(["flow", "--config", "kaq.json", "--out", "out"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "--out out: exists and is not a directory",
        ));
}

/// `rtl.lanes` left out (or `null`) is what `kaq codegen` picks for the link: a 2×2 QPSK link
/// (N = 4) gets 4 lanes where the 16×16 default gets 8; the flow gets past its configuration.
#[test]
fn the_default_lanes_fit_the_link() {
    for rtl in [json!({}), json!({"lanes": null})] {
        let dir = tempfile::tempdir().unwrap();
        let config = json!({"link": {"nt": 2, "nr": 2, "modulation": "qpsk"}, "rtl": rtl});
        fs::write(dir.path().join("kaq.json"), config.to_string()).unwrap();
        fs::write(dir.path().join("out"), "").unwrap();
        Command::cargo_bin("kaq")
            .unwrap()
            .current_dir(dir.path())
            .args(["flow", "--config", "kaq.json", "--out", "out"])
            .assert()
            .code(1)
            .stderr(predicates::str::contains(
                "--out out: exists and is not a directory",
            ));
    }
}

/// Exhaustive ML on the default 16×16 link would enumerate 4^32 vectors: refused up front.
#[test]
fn a_reference_too_large_for_the_link_is_refused_up_front() {
    check(&Case {
        config: json!({"ber": {"references": ["mmse", "ml"]}}),
        path: "ber.references[1]".to_string(),
    });
    check(&Case {
        config: json!({"link": {"nt": 4, "nr": 2}, "rtl": {"lanes": 2},
                       "ber": {"references": ["zf"]}}),
        path: "ber.references[0]".to_string(),
    });
}
