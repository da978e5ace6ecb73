//! Malformed IR documents, the round trip, bad interpreter inputs and adversarial inputs at
//! the format limits.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::json_walk_tests::{collect, dotted, nodes, other_type};

use super::tests::{Case, frames, quant_net};
use super::*;
use crate::detect::Detector;
use crate::quant::QuantMethod;
use crate::unfolded::{Init, Prox};
use kaq_ir::*;

/// A small-link case; KAQ gets strongly SNR-dependent steps (α·(SNR)^−½ dominating γ, so
/// the steps span about two decades across the bins).
fn case(
    arch: Arch,
    prox: Prox,
    momentum: bool,
    init: Init,
    bits: u32,
    method: QuantMethod,
) -> Case {
    Case {
        arch,
        prox,
        momentum,
        init,
        modulation: Modulation::Qam16,
        nt: 2,
        nr: 3,
        layers: 3,
        bits,
        method,
        seed: 17 + u64::from(bits),
    }
}

fn lower_case(c: &Case) -> Ir {
    let mut q = quant_net(c);
    if c.method == QuantMethod::Kaq {
        let k = c.layers;
        let len = q.params().len();
        let tail = &mut q.params_mut()[len - 2 * k..];
        for i in 0..k {
            let gamma = tail[k + i];
            tail[i] = 8.0 * gamma;
            tail[k + i] = 0.2 * gamma;
        }
    }
    lower(&q, LowerOptions::default()).unwrap_or_else(|e| panic!("{c:?}: {e}"))
}

/// The matrix of lowered IRs: both archs, every prox, momentum and matched-filter init on and
/// off, 4/8/12 bits, PTQ/LSQ/KAQ.
fn matrix() -> &'static [(Case, Ir)] {
    static IRS: OnceLock<Vec<(Case, Ir)>> = OnceLock::new();
    IRS.get_or_init(|| {
        let mut out = Vec::new();
        let mut i = 0usize;
        for arch in [Arch::Pgd, Arch::Admm] {
            for prox in [Prox::Soft, Prox::Box, Prox::Qam] {
                for bits in [4, 8, 12] {
                    let momentum = i.is_multiple_of(2);
                    let init = if (i + i / 3).is_multiple_of(2) {
                        Init::Zero
                    } else {
                        Init::MatchedFilter
                    };
                    let method =
                        [QuantMethod::Kaq, QuantMethod::Lsq, QuantMethod::Ptq][(i + i / 3) % 3];
                    // Every prox and arch sees KAQ at 8 bits.
                    let method = if bits == 8 { QuantMethod::Kaq } else { method };
                    i += 1;
                    let c = case(arch, prox, momentum, init, bits, method);
                    let ir = lower_case(&c);
                    out.push((c, ir));
                }
            }
        }
        out
    })
}

/// The IR of the matrix entry matching `pick`.
fn pick(f: impl Fn(&Case) -> bool) -> &'static Ir {
    &matrix()
        .iter()
        .find(|(c, _)| f(c))
        .expect("the matrix holds such a case")
        .1
}

fn pgd_soft() -> &'static Ir {
    pick(|c| c.arch == Arch::Pgd && c.prox == Prox::Soft && c.bits == 8)
}

fn admm_qam() -> &'static Ir {
    pick(|c| c.arch == Arch::Admm && c.prox == Prox::Qam && c.bits == 8)
}

// ---------------------------------------------------------------------------------------
// 1. The round trip.

#[test]
fn round_trip_is_byte_identical() {
    let m = matrix();
    let mut seen = std::collections::HashSet::new();
    for (c, ir) in m {
        let text = ir.to_json();
        let back = Ir::from_json(&text, "<string>").unwrap_or_else(|e| panic!("{c:?}: {e}"));
        assert_eq!(&back, ir, "{c:?}");
        assert_eq!(back.to_json(), text, "{c:?}");
        seen.insert((c.arch, c.prox, c.momentum, c.init, c.bits, c.method));
    }
    // The matrix covers what the round trip must see.
    assert!(m.iter().any(|(c, _)| c.momentum) && m.iter().any(|(c, _)| !c.momentum));
    for init in [Init::Zero, Init::MatchedFilter] {
        assert!(m.iter().any(|(c, _)| c.init == init));
    }
    for method in [QuantMethod::Kaq, QuantMethod::Lsq, QuantMethod::Ptq] {
        assert!(m.iter().any(|(c, _)| c.method == method));
    }
    for bits in [4, 8] {
        assert!(m.iter().any(|(c, _)| c.bits == bits));
    }
    assert_eq!(seen.len(), m.len());
    // KAQ's steps really differ across bins.
    let ir = pgd_soft();
    let out = &ir.layers[1].out;
    let scales: Vec<f64> = out
        .mult
        .iter()
        .zip(&out.shift)
        .map(|(&m, &s)| m as f64 * 2f64.powi(-(s as i32)))
        .collect();
    let lo = scales.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = scales.iter().cloned().fold(0.0, f64::max);
    assert!(hi > 8.0 * lo, "out's scales span only {lo}..{hi}");
}

// ---------------------------------------------------------------------------------------
// 2b. Targeted malformed documents.

fn value_of(ir: &Ir) -> Value {
    serde_json::from_str(&ir.to_json()).unwrap()
}

fn load(v: &Value) -> Result<Ir, IrError> {
    Ir::from_json(&serde_json::to_string_pretty(v).unwrap(), "<string>")
}

/// `mutate` applied to `ir`'s JSON must give `IrError::Invalid` naming exactly `field`.
fn assert_invalid(ir: &Ir, field: &str, mutate: impl FnOnce(&mut Value)) {
    let mut v = value_of(ir);
    mutate(&mut v);
    match load(&v) {
        Err(IrError::Invalid { field: f, reason }) => {
            assert_eq!(f, field, "wrong field named ({reason})")
        }
        other => panic!("expected Invalid at {field}, got {other:?}"),
    }
}

/// `mutate` applied to `ir`'s JSON must give a parse error that names where reading stopped
/// (`at` or, for a value checked once its object is read, the object holding it) and
/// contains `detail` (the offending field's name).
fn assert_parse(ir: &Ir, at: &str, detail: &str, mutate: impl FnOnce(&mut Value)) {
    let mut v = value_of(ir);
    mutate(&mut v);
    match load(&v) {
        Err(e @ IrError::Parse { .. }) => {
            let IrError::Parse { field, .. } = &e else {
                unreachable!()
            };
            let msg = e.to_string();
            assert!(
                !field.is_empty() && at.starts_with(field.as_str()),
                "{at}: {msg}"
            );
            assert!(msg.contains(detail), "{msg}");
        }
        other => panic!("expected a parse error at {at}, got {other:?}"),
    }
}

#[test]
fn wrong_dimensions_are_named() {
    let ir = pgd_soft();
    assert_invalid(ir, "m", |v| v["m"] = json!(ir.m + 2));
    assert_invalid(ir, "n", |v| v["n"] = json!(ir.n + 1));
    // 16-QAM has two real dimensions per symbol: n = nt is wrong for it.
    assert_invalid(ir, "n", |v| v["n"] = json!(ir.nt));
    assert_invalid(ir, "n", |v| {
        v["modulation"] = json!("bpsk");
    });
    assert_invalid(ir, "nr", |v| v["nr"] = json!(0));
    assert_invalid(ir, "nt", |v| v["nt"] = json!(100_000));
}

#[test]
fn widths_outside_their_range_are_named() {
    let ir = pgd_soft();
    assert_invalid(ir, "state_width", |v| v["state_width"] = json!(0));
    assert_invalid(ir, "state_width", |v| v["state_width"] = json!(33));
    assert_invalid(ir, "inputs.y.width", |v| {
        v["inputs"]["y"]["width"] = json!(25)
    });
    assert_invalid(ir, "layers[1].e.format.width", |v| {
        v["layers"][1]["e"]["format"]["width"] = json!(1)
    });
    assert_parse(ir, "inputs.h", "width", |v| {
        v["inputs"]["h"]["width"] = json!(0)
    });
    assert_parse(ir, "inputs.h", "width", |v| {
        v["inputs"]["h"]["width"] = json!(33)
    });
    assert_parse(ir, "init.requant", "out_width", |v| {
        v["init"]["requant"]["out_width"] = json!(33)
    });
    assert_parse(ir, "layers[2].g.requant", "out_width", |v| {
        v["layers"][2]["g"]["requant"]["out_width"] = json!(0)
    });
    assert_invalid(ir, "layers[0].e.acc.width", |v| {
        v["layers"][0]["e"]["acc"]["width"] = json!(65)
    });
    assert_invalid(ir, "layers[0].e.acc.width", |v| {
        v["layers"][0]["e"]["acc"]["width"] = json!(0)
    });
    // A width too narrow for its own declared bound.
    assert_invalid(ir, "layers[0].g.acc.width", |v| {
        let w = v["layers"][0]["g"]["acc"]["width"].as_u64().unwrap();
        v["layers"][0]["g"]["acc"]["width"] = json!(w - 1);
    });
}

#[test]
fn shifts_out_of_range_are_named() {
    let ir = pgd_soft();
    assert_invalid(ir, "layers[0].e.shift", |v| {
        v["layers"][0]["e"]["shift"] = json!(64)
    });
    assert_invalid(ir, "layers[2].e.y_shift", |v| {
        v["layers"][2]["e"]["y_shift"] = json!(1000)
    });
    assert_invalid(ir, "layers[1].out.shift[0]", |v| {
        v["layers"][1]["out"]["shift"][0] = json!(64)
    });
    assert_parse(ir, "layers[0].g.requant", "shift", |v| {
        v["layers"][0]["g"]["requant"]["shift"] = json!(64)
    });
    let ir = admm_qam();
    assert_invalid(ir, "layers[2].admm.x_out.shift[1]", |v| {
        v["layers"][2]["admm"]["x_out"]["shift"][1] = json!(64)
    });
    assert_parse(ir, "layers[1].prox.input", "shift", |v| {
        v["layers"][1]["prox"]["input"]["shift"] = json!(64)
    });
}

#[test]
fn per_bin_tables_of_the_wrong_length_are_named() {
    let ir = pgd_soft();
    let shrink = |a: &mut Value| {
        a.as_array_mut().unwrap().pop();
    };
    assert_invalid(ir, "layers[1].out.mult", |v| {
        shrink(&mut v["layers"][1]["out"]["mult"])
    });
    assert_invalid(ir, "layers[0].e.mult", |v| {
        v["layers"][0]["e"]["mult"]
            .as_array_mut()
            .unwrap()
            .push(json!(1))
    });
    assert_invalid(ir, "layers[2].update.x1", |v| {
        shrink(&mut v["layers"][2]["update"]["x1"])
    });
    assert_invalid(ir, "slicer.output_lsb", |v| {
        shrink(&mut v["slicer"]["output_lsb"])
    });
    assert_invalid(ir, "slicer.thresholds", |v| {
        shrink(&mut v["slicer"]["thresholds"])
    });
    // A multiplier beyond 32 bits.
    assert_invalid(ir, "layers[1].out.mult[7]", |v| {
        v["layers"][1]["out"]["mult"][7] = json!(1i64 << 40)
    });
    // Momentum in the first layer, a constraint term in PGD-Net.
    assert_invalid(ir, "layers[0].update.x2", |v| {
        v["layers"][0]["update"]["x2"] = v["layers"][0]["update"]["x1"].clone()
    });
    assert_invalid(ir, "layers[1].update.c", |v| {
        v["layers"][1]["update"]["c"] = v["layers"][1]["update"]["x1"].clone()
    });
    let ir = admm_qam();
    assert_invalid(ir, "layers[0].admm.vu", |v| {
        shrink(&mut v["layers"][0]["admm"]["vu"])
    });
    assert_invalid(ir, "layers[1].update.c", |v| {
        shrink(&mut v["layers"][1]["update"]["c"])
    });
}

#[test]
fn prox_tables_of_the_wrong_length_are_named() {
    let ir = admm_qam();
    assert_invalid(ir, "layers[1].prox.table", |v| {
        v["layers"][1]["prox"]["table"]
            .as_array_mut()
            .unwrap()
            .pop();
    });
    assert_invalid(ir, "layers[0].prox.table", |v| {
        let t = v["layers"][0]["prox"]["table"].as_array_mut().unwrap();
        let extra = t.clone();
        t.extend(extra);
    });
    assert_invalid(ir, "layers[0].prox.table[3]", |v| {
        v["layers"][0]["prox"]["table"][3] = json!(1i64 << 20)
    });
    assert_invalid(ir, "layers[2].prox.input.out_width", |v| {
        v["layers"][2]["prox"]["input"]["out_width"] = json!(17)
    });
    let ir = pgd_soft();
    assert_invalid(ir, "layers[0].prox.lambda", |v| {
        v["layers"][0]["prox"]["lambda"] = json!(-1)
    });
}

#[test]
fn bad_slicer_thresholds_are_named() {
    let ir = pgd_soft();
    assert_eq!(ir.slicer.thresholds[0].len(), 3);
    assert_invalid(ir, "slicer.thresholds[4]", |v| {
        v["slicer"]["thresholds"][4].as_array_mut().unwrap().pop();
    });
    assert_invalid(ir, "slicer.thresholds[0]", |v| {
        v["slicer"]["thresholds"][0]
            .as_array_mut()
            .unwrap()
            .push(json!(1000))
    });
    assert_invalid(ir, "slicer.thresholds[9]", |v| {
        let row = v["slicer"]["thresholds"][9].as_array_mut().unwrap();
        row.reverse();
    });
    // Extreme thresholds are refused, not a panic.
    assert_invalid(ir, "slicer.thresholds[0]", |v| {
        v["slicer"]["thresholds"][0][0] = json!(i64::MIN)
    });
    assert_invalid(ir, "slicer.thresholds[0]", |v| {
        v["slicer"]["thresholds"][0][2] = json!(i64::MAX)
    });
    assert_invalid(ir, "slicer.output_lsb[3]", |v| {
        v["slicer"]["output_lsb"][3] = json!(0.0)
    });
}

#[test]
fn declared_bounds_below_the_proved_ones_are_named() {
    let ir = pgd_soft();
    let admm = admm_qam();
    let fields: [(&Ir, &str, &[&str]); 7] = [
        (ir, "layers[0].g.acc", &["layers", "0", "g", "acc"]),
        (ir, "layers[1].e.acc", &["layers", "1", "e", "acc"]),
        (ir, "layers[2].e.sum", &["layers", "2", "e", "sum"]),
        (
            ir,
            "layers[1].update.acc",
            &["layers", "1", "update", "acc"],
        ),
        (ir, "layers[2].out.input", &["layers", "2", "out", "input"]),
        (admm, "layers[1].admm.v", &["layers", "1", "admm", "v"]),
        (admm, "layers[2].admm.w", &["layers", "2", "admm", "w"]),
    ];
    for (ir, field, path) in fields {
        assert_invalid(ir, &format!("{field}.bound"), |v| {
            let mut node = v;
            for p in path {
                node = match p.parse::<usize>() {
                    Ok(i) => &mut node[i],
                    Err(_) => &mut node[*p],
                };
            }
            let b = node["bound"].as_i64().unwrap();
            assert!(b > 0, "{field} has bound 0");
            node["bound"] = json!(b - 1);
        });
    }
    let mf = pick(|c| c.init == Init::MatchedFilter && c.bits == 8);
    assert_invalid(mf, "init.acc.bound", |v| {
        v["init"]["acc"]["bound"] = json!(5)
    });
    assert_invalid(ir, "layers[0].e.sum.bound", |v| {
        v["layers"][0]["e"]["sum"]["bound"] = json!(-1)
    });
}

#[test]
fn version_and_format_are_checked_first() {
    let ir = pgd_soft();
    let mut v = value_of(ir);
    v["version"] = json!(2);
    // Even with other fields broken, the version is what is reported.
    v["layers"] = json!("gone");
    assert!(matches!(load(&v), Err(IrError::Version(2))));
    let mut v = value_of(ir);
    v["version"] = json!(u64::MAX);
    assert!(matches!(load(&v), Err(IrError::Version(u32::MAX))));
    for bad in [json!(-1), json!("1"), json!(1.5), Value::Null] {
        let mut v = value_of(ir);
        v["version"] = bad.clone();
        match load(&v) {
            Err(IrError::Invalid { field, .. }) => assert_eq!(field, "version", "{bad}"),
            other => panic!("version {bad}: {other:?}"),
        }
    }
    let mut v = value_of(ir);
    v.as_object_mut().unwrap().remove("version");
    assert!(matches!(load(&v), Err(IrError::Invalid { field, .. }) if field == "version"));
    for bad in [json!("kaq-ir2"), json!(1), Value::Null] {
        let mut v = value_of(ir);
        v["format"] = bad.clone();
        assert!(matches!(load(&v), Err(IrError::Format(_))), "format {bad}");
    }
    let mut v = value_of(ir);
    v.as_object_mut().unwrap().remove("format");
    assert!(matches!(load(&v), Err(IrError::Format(f)) if f == "<missing>"));
}

#[test]
fn unknown_fields_anywhere_are_refused() {
    for ir in [pgd_soft(), admm_qam()] {
        let v = value_of(ir);
        let mut objects = Vec::new();
        collect(&v, String::new(), &mut |p, node| {
            if node.is_object() {
                objects.push(p.to_string());
            }
        });
        assert!(objects.len() > 20, "{} objects", objects.len());
        for ptr in &objects {
            let mut v = value_of(ir);
            v.pointer_mut(ptr)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .insert("surplus_key".into(), json!(1));
            let err = load(&v).expect_err(ptr);
            let msg = err.to_string();
            assert!(
                matches!(err, IrError::Parse { .. }) && msg.contains("surplus_key"),
                "{ptr}: {msg}"
            );
            // The path names the object the key was added to, or (inside the internally
            // tagged `init` and `prox`, read as a whole) the tagged object.
            let dotted = dotted(ptr);
            let IrError::Parse { field, .. } = &err else {
                unreachable!()
            };
            assert!(
                field.starts_with(&dotted) || dotted.starts_with(field.as_str()),
                "{ptr}: {msg}"
            );
            assert!(!field.is_empty(), "{ptr}: {msg}");
        }
    }
}

#[test]
fn a_pgd_ir_with_an_admm_block_is_refused() {
    let pgd = pgd_soft();
    let admm = pick(|c| c.arch == Arch::Admm && c.prox == Prox::Soft && c.bits == 8);
    let block = value_of(admm)["layers"][0]["admm"].clone();
    assert_invalid(pgd, "layers[0].admm", |v| v["layers"][0]["admm"] = block);
    assert_invalid(admm, "layers[2].admm", |v| {
        v["layers"][2].as_object_mut().unwrap().remove("admm");
    });
}

#[test]
fn broken_json_is_a_parse_error() {
    let text = pgd_soft().to_json();
    for cut in [0, 1, 10, text.len() / 2, text.len() - 3] {
        assert!(
            matches!(
                Ir::from_json(&text[..cut], "<string>"),
                Err(IrError::Parse { .. })
            ),
            "cut at {cut}"
        );
    }
    let err = Ir::from_json("{\"format\": \"kaq-ir\", \"version\": 1, }", "x.json").unwrap_err();
    assert!(err.to_string().starts_with("x.json: "), "{err}");
}

// ---------------------------------------------------------------------------------------
// 2a. Mutated documents.

fn huge(r: u64) -> Value {
    [
        json!(u64::MAX),
        json!(i64::MAX),
        json!(1u64 << 53),
        json!(1e300),
        json!(u32::MAX),
        json!(1u64 << 32),
    ][(r % 6) as usize]
        .clone()
}

fn nan_like(r: u64) -> Value {
    json!(["NaN", "inf", "-Infinity", "1e999", "", "0x10"][(r % 6) as usize])
}

/// One mutation of the document: `(op, choice of node, choice of value)`.
type Mutation = (u8, u64, u64);

/// Applies the mutations to `v`; returns the text to load and what was done.
fn mutate(v: &mut Value, muts: &[Mutation]) -> (String, Vec<String>) {
    let mut log = Vec::new();
    let mut cut = None;
    for &(op, a, b) in muts {
        let pick = |list: Vec<String>| -> Option<String> {
            (!list.is_empty()).then(|| list[(a % list.len() as u64) as usize].clone())
        };
        let leaves = |v: &Value| nodes(v, |n| !n.is_object() && !n.is_array());
        let numbers = |v: &Value| nodes(v, Value::is_number);
        let set = |v: &mut Value, p: &str, new: Value| *v.pointer_mut(p).unwrap() = new;
        match op {
            0..=3 => {
                let list = if op == 0 { leaves(v) } else { numbers(v) };
                let Some(p) = pick(list) else { continue };
                let old = v.pointer(&p).unwrap().clone();
                let new = match op {
                    0 => other_type(b),
                    1 => huge(b),
                    2 => match b % 3 {
                        0 => json!(-1),
                        1 => json!(i64::MIN),
                        _ => old
                            .as_i64()
                            .map(|x| json!(x.wrapping_neg()))
                            .or_else(|| old.as_f64().map(|x| json!(-x)))
                            .unwrap_or(json!(-1)),
                    },
                    _ => nan_like(b),
                };
                log.push(format!("{p}: {old} → {new}"));
                set(v, &p, new);
            }
            4 => {
                let Some(p) = pick(nodes(v, |n| n.as_object().is_some_and(|o| !o.is_empty())))
                else {
                    continue;
                };
                let obj = v.pointer_mut(&p).unwrap().as_object_mut().unwrap();
                let key = obj
                    .keys()
                    .nth((b % obj.len() as u64) as usize)
                    .unwrap()
                    .clone();
                obj.remove(&key);
                log.push(format!("{p}: deleted key {key}"));
            }
            5 => {
                let Some(p) = pick(nodes(v, Value::is_object)) else {
                    continue;
                };
                let obj = v.pointer_mut(&p).unwrap().as_object_mut().unwrap();
                obj.insert(format!("unknown{}", b % 3), json!(b % 5));
                log.push(format!("{p}: added an unknown key"));
            }
            6 => {
                cut = Some(b);
            }
            7 | 8 => {
                let Some(p) = pick(nodes(v, |n| n.as_array().is_some_and(|a| !a.is_empty())))
                else {
                    continue;
                };
                let arr = v.pointer_mut(&p).unwrap().as_array_mut().unwrap();
                let i = (b % arr.len() as u64) as usize;
                if op == 7 {
                    let e = arr[i].clone();
                    arr.insert(i, e);
                    log.push(format!("{p}: duplicated element {i}"));
                } else if b % 2 == 0 {
                    arr.truncate(i);
                    log.push(format!("{p}: truncated to {i} elements"));
                } else {
                    arr.remove(i);
                    log.push(format!("{p}: removed element {i}"));
                }
            }
            _ => {
                // A small change of a number that keeps its type: often still a valid IR.
                let Some(p) = pick(numbers(v)) else { continue };
                let old = v.pointer(&p).unwrap().clone();
                let new = if let Some(x) = old.as_i64() {
                    json!(match b % 5 {
                        0 => x.saturating_add(1),
                        1 => x.saturating_sub(1),
                        2 => x.saturating_mul(2),
                        3 => x / 2,
                        _ => 0,
                    })
                } else {
                    let x = old.as_f64().unwrap_or(0.0);
                    json!([x * 2.0, x / 2.0, 0.0, x + 1.0][(b % 4) as usize])
                };
                log.push(format!("{p}: {old} → {new}"));
                set(v, &p, new);
            }
        }
    }
    let mut text = serde_json::to_string_pretty(v).unwrap();
    if let Some(b) = cut {
        let mut at = (b % text.len() as u64) as usize;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
        log.push(format!("text truncated at byte {at}"));
    }
    (text, log)
}

fn fixed_seed(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x6b61_7132),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Loads a mutated document; an IR that loads must survive the round trip and run.
fn load_and_run(text: &str, seed: u64) -> Result<bool, String> {
    let ir = match Ir::from_json(text, "<mutated>") {
        Err(e) => {
            let msg = e.to_string();
            return if msg.is_empty() {
                Err("an empty error message".into())
            } else {
                Ok(false)
            };
        }
        Ok(ir) => ir,
    };
    let again = Ir::from_json(&ir.to_json(), "<again>").map_err(|e| e.to_string())?;
    if again != ir {
        return Err("the round trip changed the IR".into());
    }
    let interp = Interpreter::new(ir).map_err(|e| e.to_string())?;
    let ir = interp.ir();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (hf, yf) = (ir.inputs.h, ir.inputs.y);
    for extreme in [false, true] {
        let code = |rng: &mut ChaCha8Rng, f: crate::fixed::QFormat| {
            if extreme {
                if rng.random::<bool>() {
                    f.min_code()
                } else {
                    f.max_code()
                }
            } else {
                rng.random_range(f.min_code()..=f.max_code())
            }
        };
        let h: Vec<i64> = (0..ir.m * ir.n).map(|_| code(&mut rng, hf)).collect();
        let y: Vec<i64> = (0..ir.m).map(|_| code(&mut rng, yf)).collect();
        let bin = rng.random_range(0..ir.bins());
        interp.run_codes(&h, &y, bin).map_err(|e| e.to_string())?;
    }
    Ok(true)
}

proptest! {
    #![proptest_config(fixed_seed(200))]

    /// A randomly mutated document loads as an error, or as an IR that validates, round-trips
    /// and runs without a panic on random and extreme in-range codes.
    #[test]
    fn mutated_documents_error_or_run(
        base in 0usize..3,
        muts in prop::collection::vec((0u8..10, any::<u64>(), any::<u64>()), 1..=3),
        seed in any::<u64>(),
    ) {
        let ir = [
            pgd_soft(),
            admm_qam(),
            pick(|c| c.arch == Arch::Pgd && c.prox == Prox::Box && c.bits == 4),
        ][base];
        let mut v = value_of(ir);
        let (text, log) = mutate(&mut v, &muts);
        let outcome = catch_unwind(AssertUnwindSafe(|| load_and_run(&text, seed)));
        match outcome {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => prop_assert!(false, "{e} after the mutations {log:?}"),
            Err(_) => prop_assert!(false, "panic after the mutations {log:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// 3. Bad interpreter inputs.

#[test]
fn run_codes_refuses_bad_inputs() {
    let ir = pgd_soft();
    let interp = Interpreter::new(ir.clone()).unwrap();
    let (m, n) = (ir.m, ir.n);
    let h = vec![0i64; m * n];
    let y = vec![0i64; m];
    assert!(interp.run_codes(&h, &y, 0).is_ok());
    let field_of = |r: Result<Taps, IrError>| match r {
        Err(IrError::Invalid { field, .. }) => field,
        other => panic!("expected Invalid, got {other:?}"),
    };
    assert_eq!(field_of(interp.run_codes(&h[1..], &y, 0)), "h");
    assert_eq!(field_of(interp.run_codes(&[], &y, 0)), "h");
    assert_eq!(field_of(interp.run_codes(&h, &y[1..], 0)), "y");
    assert_eq!(field_of(interp.run_codes(&h, &[0; 100], 0)), "y");
    let (hmax, ymin) = (ir.inputs.h.max_code(), ir.inputs.y.min_code());
    let mut bad = h.clone();
    bad[5] = hmax + 1;
    assert_eq!(field_of(interp.run_codes(&bad, &y, 0)), "h[5]");
    bad[5] = i64::MIN;
    assert_eq!(field_of(interp.run_codes(&bad, &y, 0)), "h[5]");
    let mut bad = y.clone();
    bad[0] = ymin - 1;
    assert_eq!(field_of(interp.run_codes(&h, &bad, 0)), "y[0]");
    assert_eq!(field_of(interp.run_codes(&h, &y, ir.bins())), "bin");
    assert_eq!(field_of(interp.run_codes(&h, &y, usize::MAX)), "bin");
    // The limits themselves are accepted.
    let mut edge = h.clone();
    edge[0] = ir.inputs.h.min_code();
    edge[1] = hmax;
    assert!(interp.run_codes(&edge, &y, ir.bins() - 1).is_ok());
}

#[test]
fn detect_refuses_frames_of_another_link() {
    let (c, ir) = &matrix()[0];
    let interp = Interpreter::new(ir.clone()).unwrap();
    let own = frames(c, 8, 1);
    let mut d = vec![0; own.frames * own.n];
    interp.detect(&own, &mut d).unwrap();
    assert!(interp.detect(&own, &mut d[1..]).is_err());
    for other in [
        Case { nt: 3, ..c.clone() },
        Case { nr: 4, ..c.clone() },
        Case {
            modulation: Modulation::Qpsk,
            ..c.clone()
        },
    ] {
        let batch = frames(&other, 8, 1);
        let mut d = vec![0; batch.frames * batch.n];
        let err = interp.detect(&batch, &mut d).expect_err("another link");
        assert!(err.to_string().contains(&ir.name), "{err}");
        assert!(interp.frame_codes(&batch.received(), 0).is_err());
    }
    assert!(interp.frame_codes(&own.received(), own.frames).is_err());
    // A batch whose arrays are shorter than its frame count claims.
    let mut short = own.clone();
    short.h.truncate(short.h.len() - 1);
    assert!(interp.detect(&short, &mut d).is_err());
}

// ---------------------------------------------------------------------------------------
// 4. Adversarial inputs at the format limits.

/// The signed code of magnitude 2^(w−1) (sign −) or 2^(w−1) − 1 (sign +).
fn extreme(f: crate::fixed::QFormat, positive: bool) -> i64 {
    if positive { f.max_code() } else { f.min_code() }
}

/// Max-magnitude (H, y) patterns: all min, all max, mixed, alternating, and rank-one sign
/// patterns H_ij = s_i t_j, y = ±s (with which H x and Hᵀ e add up coherently).
fn patterns(ir: &Ir) -> Vec<(Vec<i64>, Vec<i64>)> {
    let (m, n) = (ir.m, ir.n);
    let (hf, yf) = (ir.inputs.h, ir.inputs.y);
    let mut out = Vec::new();
    for (hs, ys) in [(false, false), (true, true), (false, true), (true, false)] {
        out.push((vec![extreme(hf, hs); m * n], vec![extreme(yf, ys); m]));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut signs: Vec<(Vec<bool>, Vec<bool>)> = vec![
        (
            (0..m).map(|i| i % 2 == 0).collect(),
            (0..n).map(|j| j % 2 == 0).collect(),
        ),
        (vec![true; m], (0..n).map(|j| j % 2 == 1).collect()),
    ];
    for _ in 0..3 {
        signs.push((
            (0..m).map(|_| rng.random()).collect(),
            (0..n).map(|_| rng.random()).collect(),
        ));
    }
    for (s, t) in signs {
        let h: Vec<i64> = (0..m * n)
            .map(|k| extreme(hf, s[k / n] == t[k % n]))
            .collect();
        for flip in [false, true] {
            let y = (0..m).map(|i| extreme(yf, s[i] != flip)).collect();
            out.push((h.clone(), y));
        }
    }
    // Independent random extremes.
    for _ in 0..2 {
        out.push((
            (0..m * n).map(|_| extreme(hf, rng.random())).collect(),
            (0..m).map(|_| extreme(yf, rng.random())).collect(),
        ));
    }
    out
}

fn assert_within(codes: &[i64], width: u32, what: &str) {
    let half = 1i64 << (width - 1);
    if let Some(c) = codes.iter().find(|&&c| !(-half..half).contains(&c)) {
        panic!("{what}: {c} is not a signed {width}-bit code");
    }
}

/// Runs every pattern at every SNR bin: the interpreter's assertions check every accumulator
/// against its proved bound; every code must lie in its format.
fn run_adversarial(c: &Case, ir: &Ir) {
    let interp = Interpreter::new(ir.clone()).unwrap();
    let w = ir.state_width;
    let levels = ir.levels() as i32;
    for (p, (h, y)) in patterns(ir).iter().enumerate() {
        for bin in 0..ir.bins() {
            let what = format!("{c:?} pattern {p} bin {bin}");
            let taps = interp.run_codes(h, y, bin).unwrap();
            assert_within(&taps.x0, w, &what);
            for (k, (t, l)) in taps.layers.iter().zip(&ir.layers).enumerate() {
                assert_within(&t.e, l.e.format.width(), &format!("{what} e{k}"));
                assert_within(&t.g, l.g.format.width(), &format!("{what} g{k}"));
                assert_within(&t.x, w, &format!("{what} x{k}"));
                assert_within(&t.s, w, &format!("{what} s{k}"));
                assert_within(&t.u, w, &format!("{what} u{k}"));
            }
            assert_eq!(taps.output.len(), ir.n);
            assert_within(&taps.output, w, &what);
            let bound = code_bound(w, ir.layers[ir.layers.len() - 1].out.overflow);
            assert!(taps.output.iter().all(|&o| i128::from(o).abs() <= bound));
            assert!(
                taps.levels.iter().all(|&l| l % 2 != 0 && l.abs() < levels),
                "{what}: levels {:?}",
                taps.levels
            );
        }
    }
}

#[test]
fn debug_assertions_are_on_in_tests() {
    // The accumulator checks of the interpreter are debug assertions: the test profile
    // (opt-level 2) keeps them on.
    let fired = catch_unwind(|| debug_assert!(std::hint::black_box(false), "live"));
    assert!(fired.is_err(), "debug assertions are off in this build");
}

#[test]
fn max_magnitude_inputs_stay_within_the_proved_bounds() {
    for (c, ir) in matrix() {
        run_adversarial(c, ir);
    }
}

#[test]
fn max_magnitude_inputs_on_a_larger_link() {
    // 8×8 16-QAM: longer dot products, larger bounds; as lowered, and with the input formats
    // widened to 20 bits (the i32/i64 path) and the bounds proved again.
    for bits in [8, 12] {
        let c = Case {
            nt: 8,
            nr: 8,
            ..case(
                Arch::Pgd,
                Prox::Soft,
                true,
                Init::MatchedFilter,
                bits,
                QuantMethod::Kaq,
            )
        };
        let ir = lower_case(&c);
        run_adversarial(&c, &ir);
        let mut wide = ir.clone();
        wide.inputs.h = crate::fixed::QFormat::signed(20, ir.inputs.h.frac()).unwrap();
        wide.inputs.y = crate::fixed::QFormat::signed(20, ir.inputs.y.frac()).unwrap();
        fill_bounds(&mut wide).unwrap();
        let wide = Ir::from_json(&wide.to_json(), "<widened>").unwrap();
        assert!(!Interpreter::new(wide.clone()).unwrap().is_fast());
        assert!(wide.layers[0].e.sum.bound > ir.layers[0].e.sum.bound);
        run_adversarial(&c, &wide);
    }
}

/// The assertions are live: a declared bound below what the inputs reach panics.
#[test]
#[should_panic(expected = "exceeds the proved bound")]
fn a_lowered_bound_trips_the_interpreter_assertion() {
    let mut ir = pgd_soft().clone();
    ir.layers[0].g.acc.bound = 1;
    assert!(ir.validate().is_err());
    let interp = Interpreter::new_unchecked(ir.clone());
    let (h, y) = patterns(&ir).swap_remove(0);
    let _ = interp.run_codes(&h, &y, 0);
}
