//! End-to-end tests of `kaq export` (docs/channels.md): the `.npy` files read back equal, value
//! for value, the frames the link simulator draws for `kaq ber` with the same flags; an
//! existing output is replaced only with `--force`.

use std::path::Path;

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin_cmd;
use kaq_model::ber::BerConfig;
use kaq_model::channel::Csi;
use kaq_model::link::stream_rng;
use kaq_model::{LinkConfig, Modulation};
use ndarray::{Array1, Array2, Array3};
use ndarray_npy::read_npy;
use num_complex::Complex;
use predicates::str::contains;

fn kaq() -> Command {
    cargo_bin_cmd!("kaq")
}

fn export(out: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    kaq()
        .args([
            "export", "--nt", "3", "--nr", "4", "--mod", "16qam", "--snr", "5,12", "--frames",
            "70", "--batch", "32", "--block", "2", "--seed", "9",
        ])
        .args(extra)
        .arg("--out")
        .arg(out)
        .assert()
}

#[test]
fn exported_frames_equal_the_simulators() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("frames");
    export(&out, &["--csi", "ls", "--pilots", "4"]).success();
    let h: Array3<Complex<f64>> = read_npy(out.join("H.npy")).unwrap();
    let h_est: Array3<Complex<f64>> = read_npy(out.join("H_est.npy")).unwrap();
    let x: Array2<Complex<f64>> = read_npy(out.join("x.npy")).unwrap();
    let y: Array2<Complex<f64>> = read_npy(out.join("y.npy")).unwrap();
    let noise_var: Array1<f64> = read_npy(out.join("noise_var.npy")).unwrap();
    let snr: Array1<f64> = read_npy(out.join("snr_db.npy")).unwrap();
    assert_eq!(h.shape(), &[140, 4, 3]);
    assert_eq!(x.shape(), &[140, 3]);
    assert_eq!(y.shape(), &[140, 4]);

    let link = LinkConfig::new(3, 4, Modulation::Qam16)
        .unwrap()
        .with_block(2)
        .unwrap()
        .with_csi(Csi::Ls {
            pilots: 4,
            pilot_power: 1.0,
        })
        .unwrap();
    let mut generator = link.generator().unwrap();
    let mut row = 0;
    for (point, &s) in [5.0, 12.0].iter().enumerate() {
        for (b, count) in [32, 32, 6].into_iter().enumerate() {
            let mut rng = stream_rng(9, BerConfig::stream(point, b as u64));
            let frames = generator.generate(&vec![s; count], &mut rng);
            let n = frames.n;
            for f in 0..count {
                let (t, e) = (frames.true_h(f), frames.h(f));
                for i in 0..4 {
                    for j in 0..3 {
                        assert_eq!(
                            h[[row, i, j]],
                            Complex::new(t[i * n + j], t[(i + 4) * n + j])
                        );
                        assert_eq!(
                            h_est[[row, i, j]],
                            Complex::new(e[i * n + j], e[(i + 4) * n + j])
                        );
                    }
                    assert_eq!(
                        y[[row, i]],
                        Complex::new(frames.y(f)[i], frames.y(f)[i + 4])
                    );
                }
                for j in 0..3 {
                    let xs = frames.x(f);
                    assert_eq!(x[[row, j]], Complex::new(xs[j] as f64, xs[j + 3] as f64));
                }
                assert_eq!(noise_var[row], frames.noise_var[f]);
                assert_eq!(snr[row], s);
                row += 1;
            }
        }
    }
    assert_eq!(row, 140);
    // The model holds: y − Hx is noise of variance σ² (a loose sanity bound, 560 samples).
    let mut power = 0.0;
    for r in 0..140 {
        for i in 0..4 {
            let hx: Complex<f64> = (0..3).map(|j| h[[r, i, j]] * x[[r, j]]).sum();
            power += (y[[r, i]] - hx).norm_sqr() / noise_var[r];
        }
    }
    let mean = power / 560.0;
    assert!((mean - 1.0).abs() < 0.25, "normalized noise power {mean}");
    let meta = std::fs::read_to_string(out.join("meta.json")).unwrap();
    assert!(meta.contains("\"estimator\": \"ls\""), "{meta}");
}

#[test]
fn perfect_csi_writes_no_estimate_and_existing_output_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("frames");
    export(&out, &[]).success();
    assert!(out.join("H.npy").exists());
    assert!(!out.join("H_est.npy").exists());
    export(&out, &[])
        .failure()
        .stderr(contains("already exists; pass --force"));
    export(&out, &["--csi", "lmmse", "--force"]).success();
    assert!(out.join("H_est.npy").exists());
    export(&out, &["--csi", "ls", "--pilots", "2", "--force"])
        .code(2)
        .stderr(contains("--pilots"));
}
