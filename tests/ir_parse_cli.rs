//! A malformed IR document named on the command line: the error names the file and the JSON
//! path where reading stopped, gives serde's reason exactly once (the reason is part of the
//! message, not repeated as a cause) and exits with status 2, a usage error in every command.

use assert_cmd::Command;

/// Runs `kaq ARGS` on a malformed IR and returns its stderr.
fn stderr_of(args: &[&str]) -> String {
    let out = Command::cargo_bin("kaq")
        .unwrap()
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "kaq {args:?} on a malformed IR: not a usage error"
    );
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn a_malformed_ir_is_named_once_with_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("v1.json");
    std::fs::write(&v1, r#"{"format": "kaq-ir", "version": 1, "nt": "a"}"#).unwrap();
    let v2 = dir.path().join("v2.json");
    std::fs::write(&v2, r#"{"format": "kaq-ir", "version": 2, "x": [1,"#).unwrap();
    let out = dir.path().join("rtl");
    let cases = [
        (
            stderr_of(&[
                "codegen",
                "--ir",
                v1.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ]),
            "at nt: ",
            "invalid type: string \"a\", expected usize",
        ),
        (
            stderr_of(&["report", "--ir", v2.to_str().unwrap()]),
            "at x[1]: ",
            "EOF while parsing a value",
        ),
    ];
    for (err, field, reason) in cases {
        assert!(err.contains("not a valid IR document"), "{err}");
        assert!(err.contains(field), "no field {field:?} in {err}");
        assert_eq!(
            err.matches(reason).count(),
            1,
            "{reason:?} not exactly once in {err}"
        );
    }
    assert!(
        !out.exists(),
        "codegen created its output for a malformed IR"
    );
}
