//! The committed example design (examples/pgd-qpsk-2x2) is what kaq generates today: its IR
//! is `kaq lower` of the committed model file and its RTL is `kaq codegen --lanes 2` of the
//! IR, byte for byte. After a change to the lowering or the generator, rewrite it with
//! scripts/regen-examples.sh and commit the result.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pgd-qpsk-2x2")
}

/// Every file of `dir` (names starting with a dot included) and its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            assert!(e.file_type().unwrap().is_file(), "{:?}", e.path());
            (
                e.file_name().to_string_lossy().to_string(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

const REGEN: &str = "run scripts/regen-examples.sh and commit the result";

#[test]
fn the_example_rtl_is_what_codegen_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rtl");
    Command::cargo_bin("kaq")
        .unwrap()
        .args(["codegen", "--ir"])
        .arg(example().join("ir.json"))
        .arg("--out")
        .arg(&out)
        .args(["--lanes", "2"])
        .assert()
        .success();
    let fresh = files(&out);
    let committed = files(&example().join("rtl"));
    assert!(fresh.len() > 10, "{:?}", fresh.keys());
    assert_eq!(
        fresh.keys().collect::<Vec<_>>(),
        committed.keys().collect::<Vec<_>>(),
        "the generated file set differs from examples/pgd-qpsk-2x2/rtl; {REGEN}"
    );
    for (name, bytes) in &fresh {
        assert!(
            bytes == &committed[name],
            "examples/pgd-qpsk-2x2/rtl/{name} differs from what kaq codegen writes; {REGEN}"
        );
    }
}

#[test]
fn the_example_ir_is_what_lower_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ir.json");
    Command::cargo_bin("kaq")
        .unwrap()
        .args(["lower", "--model"])
        .arg(example().join("model.json"))
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    assert!(
        fs::read(&out).unwrap() == fs::read(example().join("ir.json")).unwrap(),
        "examples/pgd-qpsk-2x2/ir.json differs from what kaq lower writes; {REGEN}"
    );
}
