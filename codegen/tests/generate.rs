//! `generate` and `write_design`: determinism, clear errors on bad input, and the output
//! directory rules (foreign files refused unless forced, kaq's own files rewritten, no
//! temporary files left behind).

mod common;

use kaq_model::lower::LinkFrames;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::{Config, fixture, ir_with_bins};
use kaq_codegen::{CodegenError, Generated, MANIFEST, Options, generate, write_design};
use kaq_ir::Ir;
use kaq_model::Modulation;

/// A small IR: PGD-Net, soft thresholds, QPSK 2×2 (N = 4), two layers, 4 SNR bins.
fn small_ir() -> Ir {
    fixture("pgd-qpsk-2x2", &Config::default(), Some(4))
}

fn options(lanes: usize, top: &str) -> Options {
    Options {
        lanes,
        top: top.to_string(),
        testbench_frames: 8,
        seed: 3,
    }
}

fn small() -> Generated {
    generate(&small_ir(), &options(2, "kaq_top"), &LinkFrames).unwrap()
}

/// Every file of `dir` by name with its bytes.
fn listing(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().to_string(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn assert_no_tmp(dir: &Path) {
    for name in listing(dir).keys() {
        assert!(
            !name.contains(".tmp"),
            "temporary file {name} left in {dir:?}"
        );
    }
}

/// Asserts that `dir` holds exactly the files of `g` (with their contents) plus the manifest
/// and `extra`.
fn assert_holds(dir: &Path, g: &Generated, extra: &[&str]) {
    let files = listing(dir);
    for f in &g.files {
        let got = files
            .get(&f.name)
            .unwrap_or_else(|| panic!("{} not written", f.name));
        assert!(got == f.contents.as_bytes(), "{} differs", f.name);
    }
    let manifest = String::from_utf8(files[MANIFEST].clone()).unwrap();
    for f in &g.files {
        assert!(
            manifest.lines().any(|l| l == f.name),
            "{} not in the manifest",
            f.name
        );
    }
    assert_eq!(
        files.len(),
        g.files.len() + 1 + extra.len(),
        "{:?}",
        files.keys()
    );
    for e in extra {
        assert!(files.contains_key(*e), "{e} missing");
    }
    assert_no_tmp(dir);
}

#[test]
fn same_input_same_bytes() {
    let ir = small_ir();
    let o = options(2, "kaq_top");
    let a = generate(&ir, &o, &LinkFrames).unwrap();
    let b = generate(&ir, &o, &LinkFrames).unwrap();
    assert_eq!(a, b);
    // An independently rebuilt IR gives the same design too.
    let c = generate(&small_ir(), &o, &LinkFrames).unwrap();
    assert_eq!(a, c);
    // Written twice, the directories are byte-identical (manifest included).
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_design(&a, d1.path(), false).unwrap();
    write_design(&b, d2.path(), false).unwrap();
    assert_eq!(listing(d1.path()), listing(d2.path()));
    // The comparison can fail: another seed draws other testbench vectors.
    let other = generate(&ir, &Options { seed: 4, ..o }, &LinkFrames).unwrap();
    assert_ne!(
        a.file("kaq_top_stim.mem").unwrap(),
        other.file("kaq_top_stim.mem").unwrap()
    );
}

#[test]
fn files_are_named_after_the_top() {
    let g = generate(&small_ir(), &options(4, "det"), &LinkFrames).unwrap();
    let names: Vec<&str> = g.files.iter().map(|f| f.name.as_str()).collect();
    for name in [
        "det_layer1.v",
        "det_layer2.v",
        "det.v",
        "det_params.vh",
        "det_tb.v",
        "det_stim.mem",
        "det_expect.mem",
        "det.f",
        "README.md",
        "kaq_layer_core.v",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert!(g.file("det.v").unwrap().contents.contains("module det ("));
    assert_eq!(g.design.io.lanes, 4);
    // The file list names every source once, the top last, and not the testbench.
    let list = &g.file("det.f").unwrap().contents;
    let sources: Vec<&str> = list.lines().collect();
    assert_eq!(sources.last(), Some(&"det.v"));
    assert!(!sources.contains(&"det_tb.v"));
    assert_eq!(sources.len(), g.sources().len());
}

#[test]
fn lanes_must_divide_n() {
    let ir = small_ir();
    assert_eq!(ir.n, 4);
    for lanes in [0, 3, 5, 8] {
        let err = generate(&ir, &options(lanes, "kaq_top"), &LinkFrames).unwrap_err();
        assert!(
            matches!(err, CodegenError::Lanes { lanes: l, n: 4 } if l == lanes),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&format!("--lanes {lanes}")), "{msg}");
        assert!(msg.contains("N = 4"), "{msg}");
    }
    for lanes in [1, 2, 4] {
        generate(&ir, &options(lanes, "kaq_top"), &LinkFrames).unwrap();
    }
    // BPSK 3×2: N = 3.
    let bpsk = ir_with_bins(
        &Config {
            modulation: Modulation::Bpsk,
            nt: 3,
            nr: 2,
            ..Config::default()
        },
        Some(4),
    );
    let err = generate(&bpsk, &options(2, "kaq_top"), &LinkFrames).unwrap_err();
    assert!(err.to_string().contains("N = 3"), "{err}");
    generate(&bpsk, &options(3, "kaq_top"), &LinkFrames).unwrap();
}

#[test]
fn illegal_top_names_are_refused() {
    let ir = small_ir();
    let long = "a".repeat(65);
    for name in [
        "1abc",
        "a-b",
        "module",
        "",
        long.as_str(),
        "kaq_layer_core",
        "kaq_mac_lane",
        "a b",
        "wire",
        "always_ff",
        "int",
        "logic",
        "bit",
        "task",
        "interface",
        "$abc",
        "ä",
    ] {
        let Err(err) = generate(&ir, &options(2, name), &LinkFrames) else {
            panic!("top name {name:?} accepted");
        };
        assert!(
            matches!(&err, CodegenError::TopName(n, _) if n == name),
            "{name:?}: {err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("--top") && msg.contains(&format!("{name:?}")),
            "{msg}"
        );
    }
    for name in [
        "a",
        "_x",
        "det_2x2",
        "a$b",
        "kaq_det",
        "Module",
        &"a".repeat(64),
    ] {
        let g = generate(&ir, &options(2, name), &LinkFrames)
            .unwrap_or_else(|e| panic!("{name:?} refused: {e}"));
        assert!(g.file(&format!("{name}.v")).is_some());
    }
}

#[test]
fn invalid_ir_is_refused() {
    let ir = small_ir();
    let mut bad = ir.clone();
    bad.m += 1;
    let err = generate(&bad, &options(2, "kaq_top"), &LinkFrames).unwrap_err();
    assert!(matches!(err, CodegenError::Ir(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("invalid IR: m:"), "{msg}");

    let mut bad = ir.clone();
    bad.state_width = 0;
    let msg = generate(&bad, &options(2, "kaq_top"), &LinkFrames)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("state_width"), "{msg}");

    let mut bad = ir.clone();
    bad.layers[1].update.x1.pop();
    let msg = generate(&bad, &options(2, "kaq_top"), &LinkFrames)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("layers[1]"), "{msg}");

    let mut bad = ir;
    bad.layers.clear();
    let msg = generate(&bad, &options(2, "kaq_top"), &LinkFrames)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("layers"), "{msg}");
}

#[test]
fn testbench_frames_must_be_in_range() {
    let ir = small_ir();
    for frames in [0, 100_001] {
        let o = Options {
            testbench_frames: frames,
            ..options(2, "kaq_top")
        };
        let err = generate(&ir, &o, &LinkFrames).unwrap_err();
        assert!(
            matches!(err, CodegenError::TestbenchFrames(f) if f == frames),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains(&format!("--testbench-frames {frames}")),
            "{err}"
        );
    }
    let o = Options {
        testbench_frames: 1,
        ..options(2, "kaq_top")
    };
    let g = generate(&ir, &o, &LinkFrames).unwrap();
    assert_eq!(
        g.file("kaq_top_expect.mem")
            .unwrap()
            .contents
            .lines()
            .count(),
        1
    );
}

#[test]
fn writes_into_a_new_directory() {
    let g = small();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a/b/design");
    let written = write_design(&g, &dir, false).unwrap();
    assert_eq!(written.len(), g.files.len());
    for (path, f) in written.iter().zip(&g.files) {
        assert_eq!(path, &dir.join(&f.name));
    }
    assert_holds(&dir, &g, &[]);
    let manifest = fs::read_to_string(dir.join(MANIFEST)).unwrap();
    let names: Vec<&str> = g.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(manifest.lines().collect::<Vec<_>>(), names);
}

#[test]
fn foreign_files_are_refused_and_left_alone() {
    let g = small();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    // A file with a generated name that kaq did not write is foreign too.
    fs::write(dir.path().join("kaq_top.v"), "// hand-written").unwrap();
    let before = listing(dir.path());
    let err = write_design(&g, dir.path(), false).unwrap_err();
    assert!(matches!(err, CodegenError::ForeignFiles { .. }), "{err:?}");
    let msg = err.to_string();
    for needle in ["notes.txt", "kaq_top.v", "--force"] {
        assert!(msg.contains(needle), "{needle} not in: {msg}");
    }
    assert_eq!(listing(dir.path()), before, "directory changed");

    // With force the design is written; other files stay.
    write_design(&g, dir.path(), true).unwrap();
    assert_holds(dir.path(), &g, &["notes.txt"]);
    assert_eq!(fs::read(dir.path().join("notes.txt")).unwrap(), b"mine");
}

#[test]
fn many_foreign_files_are_summarized() {
    let g = small();
    let dir = tempfile::tempdir().unwrap();
    for i in 0..8 {
        fs::write(dir.path().join(format!("f{i}.txt")), "x").unwrap();
    }
    let msg = write_design(&g, dir.path(), false).unwrap_err().to_string();
    assert!(
        msg.contains("f0.txt") && msg.contains("and 3 more"),
        "{msg}"
    );
    assert_eq!(listing(dir.path()).len(), 8);
}

#[test]
fn kaq_written_directory_is_rewritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let first = small();
    write_design(&first, dir.path(), false).unwrap();
    // Same design again.
    write_design(&first, dir.path(), false).unwrap();
    assert_holds(dir.path(), &first, &[]);
    // A different design of the same top replaces every file.
    let second = generate(&small_ir(), &options(4, "kaq_top"), &LinkFrames).unwrap();
    assert_ne!(first, second);
    write_design(&second, dir.path(), false).unwrap();
    assert_holds(dir.path(), &second, &[]);
}

#[test]
fn renamed_top_can_be_written_again() {
    // Every file in the directory is kaq's, so rewriting never needs --force, also after the
    // top was renamed (the old top's files stay listed as kaq's).
    let dir = tempfile::tempdir().unwrap();
    let a = generate(&small_ir(), &options(2, "det_a"), &LinkFrames).unwrap();
    let b = generate(&small_ir(), &options(2, "det_b"), &LinkFrames).unwrap();
    write_design(&a, dir.path(), false).unwrap();
    write_design(&b, dir.path(), false).unwrap();
    write_design(&b, dir.path(), false).unwrap();
    write_design(&a, dir.path(), false).unwrap();
    let files = listing(dir.path());
    assert_eq!(
        files["det_a.v"],
        a.file("det_a.v").unwrap().contents.as_bytes()
    );
    assert_eq!(
        files["det_b.v"],
        b.file("det_b.v").unwrap().contents.as_bytes()
    );
    let manifest = String::from_utf8(files[MANIFEST].clone()).unwrap();
    let listed: Vec<&str> = manifest.lines().collect();
    // This run's files first, in order, then the other top's.
    let (first, rest) = listed.split_at(a.files.len());
    let names: Vec<&str> = a.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(first, names.as_slice());
    for name in ["det_b.v", "det_b_layer1.v", "det_b_tb.v", "det_b.f"] {
        assert!(rest.contains(&name), "{name} not in the manifest");
    }
    assert_eq!(listed.len() + 1, files.len());
    assert_no_tmp(dir.path());
}

#[test]
fn a_file_is_not_a_directory() {
    let g = small();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("design");
    fs::write(&path, "a file").unwrap();
    let err = write_design(&g, &path, false).unwrap_err();
    assert!(matches!(err, CodegenError::NotADirectory(_)), "{err:?}");
    assert!(err.to_string().contains("design"), "{err}");
    let err = write_design(&g, &path, true).unwrap_err();
    assert!(matches!(err, CodegenError::NotADirectory(_)), "{err:?}");
    assert_eq!(fs::read(&path).unwrap(), b"a file");
    assert_eq!(listing(dir.path()).len(), 1);
}

/// `--clock-mhz`: the plan takes the fewest update registers whose estimated clock reaches the
/// target, the generated design carries them (`UPD_PIPE`, one update cycle each), and the
/// deepest is taken with `met` false when no depth reaches it.
#[test]
fn clock_targets_pick_the_update_pipeline() {
    use kaq_codegen::estimate::{clock_estimate, pipeline_for_clock};
    use kaq_codegen::report::analyse;
    use kaq_codegen::{design::max_update_pipeline, generate_pipelined, lower, lower_pipelined};
    let ir = small_ir();
    let plain = lower(&ir, 2, "kaq_top").unwrap();
    let max = max_update_pipeline(ir.arch);
    assert_eq!(max, 2);
    let depth_mhz: Vec<f64> = (0..=max)
        .map(|d| clock_estimate(&lower_pipelined(&ir, 2, "kaq_top", d).unwrap()).1)
        .collect();
    assert!(
        depth_mhz[0] < depth_mhz[1] && depth_mhz[1] <= depth_mhz[2],
        "{depth_mhz:?}"
    );
    let plan = pipeline_for_clock(&plain, depth_mhz[0], max);
    assert_eq!((plan.upd_pipe, plan.met), (0, true));
    let plan = pipeline_for_clock(&plain, depth_mhz[0] + 0.5, max);
    assert_eq!((plan.upd_pipe, plan.met), (1, true));
    assert!((plan.estimated_mhz - depth_mhz[1]).abs() < 1e-9);
    let plan = pipeline_for_clock(&plain, 2000.0, max);
    assert_eq!((plan.upd_pipe, plan.met), (2, false));
    let g = generate_pipelined(&ir, &options(2, "kaq_top"), &LinkFrames, 2).unwrap();
    let layer1 = g
        .files
        .iter()
        .find(|f| f.name == "kaq_top_layer1.v")
        .unwrap();
    assert!(layer1.contents.contains(".UPD_PIPE(2)"));
    let plain_layer1 = generate(&ir, &options(2, "kaq_top"), &LinkFrames).unwrap();
    assert!(
        !plain_layer1
            .files
            .iter()
            .any(|f| f.contents.contains("UPD_PIPE("))
    );
    let (a, b) = (analyse(&plain).total, analyse(&g.design).total);
    assert_eq!(b.latency, a.latency + 2 * ir.layers.len() as u64);
    // ADMM-Net takes at most one register.
    let admm = fixture("synth-admm-bpsk", &Config::default(), None);
    assert_eq!(admm.arch, kaq_ir::Arch::Admm);
    let d = lower_pipelined(&admm, 1, "kaq_top", 2).unwrap();
    assert!(d.layers.iter().all(|l| l.upd_pipe == 1));
}
