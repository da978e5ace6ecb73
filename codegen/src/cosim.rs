//! The co-simulation wrapper: the top as `dut` with every stage stream's handshake and states
//! as extra outputs, read by hierarchical reference from the top's stream wires
//! (`rtl-templates/cosim_wrapper.v`). The references are checked against the wires the top
//! declares, so a renamed wire fails generation instead of a Verilator build or a run.

use askama::Template;

use crate::{CodegenError, Generated, GeneratedFile};

/// One port of the wrapper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapperPort {
    /// Port name.
    pub name: String,
    /// Driven by the wrapper (an output) rather than by the testbench.
    pub output: bool,
    /// Bits.
    pub width: u32,
}

impl WrapperPort {
    fn input(name: &str, width: u32) -> Self {
        Self {
            name: name.to_string(),
            output: false,
            width,
        }
    }

    fn output(name: impl Into<String>, width: u32) -> Self {
        Self {
            name: name.into(),
            output: true,
            width,
        }
    }
}

/// A stage tap: the wrapper's output `port` driven by the top's internal `wire`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tap {
    port: String,
    wire: String,
}

/// The generated wrapper: its file (module name `<top>_cosim`) and its ports in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosimWrapper {
    /// The module's name.
    pub name: String,
    /// The Verilog source.
    pub file: GeneratedFile,
    /// The design's ports, then per stage k = 2..=K+1 the taps `t{k}_valid`, `t{k}_ready`,
    /// `t{k}_x1` and, for ADMM-Net, `t{k}_s` and `t{k}_u`.
    pub ports: Vec<WrapperPort>,
}

/// The top's own ports, passed through.
const OWN: [&str; 11] = [
    "clk",
    "rst",
    "in_valid",
    "in_ready",
    "in_h",
    "in_y",
    "in_bin",
    "out_valid",
    "out_ready",
    "out_x",
    "out_bits",
];

#[derive(Template)]
#[template(path = "cosim_wrapper.v", escape = "none")]
struct WrapperTemplate<'a> {
    d: &'a crate::Design,
    name: &'a str,
    ports: &'a [WrapperPort],
    own: &'a [&'a str],
    taps: &'a [Tap],
}

/// The co-simulation wrapper of `generated`.
pub fn cosim_wrapper(generated: &Generated) -> Result<CosimWrapper, CodegenError> {
    let d = &generated.design;
    let io = &d.io;
    let n = io.n as u32;
    let xw = n * io.sw;
    let mut ports = vec![
        WrapperPort::input("clk", 1),
        WrapperPort::input("rst", 1),
        WrapperPort::input("in_valid", 1),
        WrapperPort::output("in_ready", 1),
        WrapperPort::input("in_h", n * io.hw),
        WrapperPort::input("in_y", io.yw),
        WrapperPort::input("in_bin", io.binw),
        WrapperPort::output("out_valid", 1),
        WrapperPort::input("out_ready", 1),
        WrapperPort::output("out_x", xw),
        WrapperPort::output("out_bits", n * io.bpd),
    ];
    let mut fields = vec![("valid", 1), ("ready", 1), ("x1", xw)];
    if d.arch == kaq_ir::Arch::Admm {
        fields.extend([("s", xw), ("u", xw)]);
    }
    let top = generated
        .file(&format!("{}.v", d.top))
        .ok_or_else(|| CodegenError::Unsupported(format!("no top file {}.v", d.top)))?;
    let mut taps = Vec::new();
    for k in 2..=d.layers.len() + 1 {
        for &(f, width) in &fields {
            let port = format!("t{k}_{f}");
            let wire = format!("s{k}_{f}");
            if !declares_wire(&top.contents, &wire) {
                return Err(CodegenError::Unsupported(format!(
                    "the co-simulation wrapper reads {}.{wire}, which the top does not declare",
                    d.top
                )));
            }
            ports.push(WrapperPort::output(port.clone(), width));
            taps.push(Tap { port, wire });
        }
    }
    let name = format!("{}_cosim", d.top);
    let t = WrapperTemplate {
        d,
        name: &name,
        ports: &ports,
        own: &OWN,
        taps: &taps,
    };
    let contents = t.render().map_err(|e| CodegenError::Template {
        name: "cosim_wrapper.v",
        message: e.to_string(),
    })? + "\n";
    Ok(CosimWrapper {
        file: GeneratedFile {
            name: format!("{name}.v"),
            contents,
        },
        name,
        ports,
    })
}

/// Whether `source` has a `wire [..] name;` declaration.
fn declares_wire(source: &str, name: &str) -> bool {
    source.lines().any(|l| {
        let l = l.trim();
        l.starts_with("wire ") && l.trim_end_matches(';').split_whitespace().last() == Some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::declares_wire;

    #[test]
    fn finds_declared_wires_only() {
        let src = "    wire s2_valid;\n    wire [7:0] s2_x1;\n    assign s3_x1 = 0;\n";
        assert!(declares_wire(src, "s2_valid"));
        assert!(declares_wire(src, "s2_x1"));
        assert!(!declares_wire(src, "s3_x1"));
        assert!(!declares_wire(src, "s2_x"));
    }
}
