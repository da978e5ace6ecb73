//! Test-only helpers shared by the malformed-IR suites of both IR versions
//! (`lower::tests_inputs` for v1, `gram::ir_inputs_tests` for v2): walking a JSON document by
//! RFC 6901 pointers, and the values a mutation puts in place of a node.

use serde_json::{Value, json};

/// Calls `f(pointer, node)` for every node of `v`, pointer in RFC 6901 form.
pub(crate) fn collect(v: &Value, at: String, f: &mut impl FnMut(&str, &Value)) {
    f(&at, v);
    match v {
        Value::Object(map) => {
            for (k, c) in map {
                collect(c, format!("{at}/{k}"), f);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                collect(c, format!("{at}/{i}"), f);
            }
        }
        _ => {}
    }
}

/// The pointers of every node of `v` that `keep` accepts, in document order.
pub(crate) fn nodes(v: &Value, keep: impl Fn(&Value) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    collect(v, String::new(), &mut |p, n| {
        if keep(n) {
            out.push(p.to_string());
        }
    });
    out
}

/// The JSON path in the errors' spelling (`layers[1].formats.e`) of an RFC 6901 pointer.
pub(crate) fn dotted(pointer: &str) -> String {
    let mut s = String::new();
    for part in pointer.split('/').skip(1) {
        if part.parse::<usize>().is_ok() {
            s.push_str(&format!("[{part}]"));
        } else {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(part);
        }
    }
    s
}

/// A value of another JSON type, chosen by `r`.
pub(crate) fn other_type(r: u64) -> Value {
    [
        Value::Null,
        json!(true),
        json!("x"),
        json!([]),
        json!({}),
        json!([1, 2]),
        json!(0.5),
    ][(r % 7) as usize]
        .clone()
}
