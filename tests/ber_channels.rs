//! End-to-end tests of `kaq ber --channels` (docs/channels.md): every accepted dtype gives the
//! same results, the per-file normalization makes the SNR independent of the file's scale,
//! and every bad dataset (shape, dtype, truncation, NaN/Inf, 0 channels, a header claiming far
//! more than the file holds) exits with status 2 naming the file and the problem.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin_cmd;
use ndarray::{Array3, Array4};
use ndarray_npy::write_npy;
use num_complex::Complex;
use predicates::str::contains;

fn kaq() -> Command {
    cargo_bin_cmd!("kaq")
}

const NR: usize = 4;
const NT: usize = 2;

/// 64 deterministic channels of a 4×2 link with entries of magnitude around 1/2 that f32
/// holds exactly (multiples of 1/64).
fn channels() -> Array3<Complex<f64>> {
    let mut state = 12345u64;
    Array3::from_shape_fn((64, NR, NT), |_| {
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) % 97) as f64 / 64.0 - 0.75
        };
        Complex::new(next(), next())
    })
}

fn write(dir: &Path, name: &str, a: &Array3<Complex<f64>>) -> PathBuf {
    let path = dir.join(name);
    write_npy(&path, a).unwrap();
    path
}

fn run(path: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    kaq()
        .args([
            "ber",
            "--nt",
            "2",
            "--nr",
            "4",
            "--mod",
            "qpsk",
            "--detector",
            "mmse,kbest:4",
            "--snr",
            "0,8",
            "--min-errors",
            "200",
            "--max-frames",
            "4000",
            "--seed",
            "2",
        ])
        .arg("--channels")
        .arg(path)
        .args(extra)
        .assert()
}

fn points(path: &Path, extra: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("ber.json");
    let mut args: Vec<&str> = extra.to_vec();
    let json_text = json.to_str().unwrap().to_string();
    args.extend(["--json", &json_text]);
    run(path, &args).success();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    v["points"].clone()
}

#[test]
fn every_dtype_gives_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let h = channels();
    let c128 = write(dir.path(), "c128.npy", &h);
    let c64 = dir.path().join("c64.npy");
    write_npy(&c64, &h.mapv(|z| Complex::new(z.re as f32, z.im as f32))).unwrap();
    let pair = |z: &Complex<f64>, k: usize| if k == 0 { z.re } else { z.im };
    let f64s = dir.path().join("f64.npy");
    write_npy(
        &f64s,
        &Array4::from_shape_fn((64, NR, NT, 2), |(c, i, j, k)| pair(&h[[c, i, j]], k)),
    )
    .unwrap();
    let f32s = dir.path().join("f32.npy");
    write_npy(
        &f32s,
        &Array4::from_shape_fn((64, NR, NT, 2), |(c, i, j, k)| {
            pair(&h[[c, i, j]], k) as f32
        }),
    )
    .unwrap();
    // Fortran order holds the same logical array.
    let fortran = dir.path().join("fortran.npy");
    let mut f = Array3::<Complex<f64>>::zeros((64, NR, NT).f());
    f.assign(&h);
    write_npy(&fortran, &f).unwrap();
    let want = points(&c128, &[]);
    for path in [&c64, &f64s, &f32s, &fortran] {
        assert_eq!(points(path, &[]), want, "{}", path.display());
    }
    // The run differs from the i.i.d. model's and records the dataset.
    let out = run(&c128, &[]).success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(
        stdout.contains("dataset") && stdout.contains("64 channels"),
        "{stdout}"
    );
}

use ndarray::ShapeBuilder;

#[test]
fn per_file_normalization_removes_the_file_scale_and_as_is_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let h = channels();
    let one = write(dir.path(), "one.npy", &h);
    let four = write(dir.path(), "four.npy", &h.mapv(|z| z * 4.0));
    // Scaling by a power of two is exact, so the normalized channels are equal bit for bit.
    assert_eq!(points(&one, &[]), points(&four, &[]));
    assert_eq!(
        points(&four, &["--channel-norm", "per-file"]),
        points(&one, &[])
    );
    let as_is = points(&four, &["--channel-norm", "as-is"]);
    assert_ne!(as_is, points(&one, &[]));
    // 16 times the power per entry (about 2.4 times the i.i.d. model's) gives fewer errors.
    let ber = |p: &serde_json::Value| p[0]["ber"].as_f64().unwrap();
    assert!(ber(&as_is) < ber(&points(&one, &["--channel-norm", "as-is"])));
}

fn raw_npy(descr: &str, shape: &str, data: usize) -> Vec<u8> {
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((dict.len() as u16).to_le_bytes());
    bytes.extend(dict.as_bytes());
    bytes.extend(std::iter::repeat_n(0u8, data));
    bytes
}

#[test]
fn bad_datasets_exit_2_naming_file_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let h = channels();
    let good = write(dir.path(), "good.npy", &h);
    let bytes = std::fs::read(&good).unwrap();
    let file = |name: &str, content: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    };
    let mut nan = h.clone();
    nan[[3, 1, 0]].im = f64::NAN;
    let mut inf = h.clone();
    inf[[60, 3, 1]].re = f64::NEG_INFINITY;
    let zeros = Array3::<Complex<f64>>::zeros((5, NR, NT));
    let cases: Vec<(PathBuf, &[&str], &str)> = vec![
        (
            write(dir.path(), "shape.npy", &Array3::zeros((4, 3, 2))),
            &[],
            "shape [4, 3, 2]",
        ),
        (
            write(dir.path(), "swap.npy", &Array3::zeros((4, NT, NR))),
            &[],
            "the link needs [n, 4, 2]",
        ),
        (
            write(dir.path(), "empty.npy", &Array3::zeros((0, NR, NT))),
            &[],
            "0 channels",
        ),
        (
            write(dir.path(), "nan.npy", &nan),
            &[],
            "channel 3, row 1, column 0 (imaginary part)",
        ),
        (
            write(dir.path(), "inf.npy", &inf),
            &[],
            "channel 60, row 3, column 1 (real part)",
        ),
        (
            write(dir.path(), "zeros.npy", &zeros),
            &[],
            "every channel is zero",
        ),
        (
            file("trunc.npy", &bytes[..bytes.len() - 7]),
            &[],
            "(truncated)",
        ),
        (
            file("extra.npy", &[&bytes[..], &[0u8; 16]].concat()),
            &[],
            "(extra bytes)",
        ),
        (file("header.npy", &bytes[..40]), &[], "header claims"),
        (
            file("text.npy", b"H = [[1, 2], [3, 4]]\n"),
            &[],
            "no .npy magic",
        ),
        (file("tiny.npy", b""), &[], "no .npy magic"),
        (
            file("int.npy", &raw_npy("<i4", "(2, 4, 2)", 64)),
            &[],
            "dtype '<i4'",
        ),
        (
            file("pair3.npy", &raw_npy("<f8", "(2, 4, 2, 3)", 384)),
            &[],
            "shape [2, 4, 2, 3]",
        ),
        // A 10 GB claim in a small file: refused from the header, before any allocation.
        (
            file("huge.npy", &raw_npy("<c16", "(78125000, 4, 2)", 128)),
            &[],
            "needs 10000000000 data bytes",
        ),
        (dir.path().join("missing.npy"), &[], "missing.npy"),
        (
            good.clone(),
            &["--rho-tx", "0.5"],
            "leave --rho-tx and --rho-rx at 0",
        ),
    ];
    for (path, extra, reason) in cases {
        run(&path, extra)
            .code(2)
            .stderr(contains("--channels"))
            .stderr(contains(path.file_name().unwrap().to_str().unwrap()))
            .stderr(contains(reason));
    }
    // A v2 header whose length field claims 4 GiB.
    let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
    v2.extend(u32::MAX.to_le_bytes());
    v2.extend(b"{'descr': '<c16'");
    let p = file("v2.npy", &v2);
    run(&p, &[])
        .code(2)
        .stderr(contains("header claims 4294967295 bytes"));
    // --channel-norm without --channels.
    kaq()
        .args(["ber", "--channel-norm", "as-is"])
        .assert()
        .code(2)
        .stderr(contains("--channel-norm"));
}
