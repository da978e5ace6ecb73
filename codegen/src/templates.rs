//! The askama templates of `rtl-templates/` and the values they print.

use askama::Template;
use kaq_ir::Ir;

use crate::design::{Design, LayerDesign};
use crate::literal::hex_digits;
use crate::stimulus::Stimulus;
use crate::{CodegenError, GeneratedFile, Options, PRIMITIVES};

/// Port ranges, `[msb:0]`.
#[derive(Debug, Clone)]
pub(crate) struct Ports {
    pub h: String,
    pub y: String,
    pub bin: String,
    pub x: String,
    pub bits: String,
    pub zero_x: String,
}

/// Bit slices of a testbench stimulus word.
#[derive(Debug, Clone)]
pub(crate) struct Slices {
    pub h: String,
    pub y: String,
    pub bin: String,
}

fn range(width: u64) -> String {
    format!("[{}:0]", width - 1)
}

#[derive(Template)]
#[template(path = "top.v", escape = "none")]
struct TopTemplate<'a> {
    d: &'a Design,
    name: &'a str,
    version: &'a str,
    ports: &'a Ports,
    wires: Vec<usize>,
    last: usize,
}

#[derive(Template)]
#[template(path = "layer.v", escape = "none")]
struct LayerTemplate<'a> {
    l: &'a LayerDesign,
    name: &'a str,
    arch: &'a str,
    version: &'a str,
    ports: &'a Ports,
}

#[derive(Template)]
#[template(path = "params.vh", escape = "none")]
struct ParamsTemplate<'a> {
    d: &'a Design,
    version: &'a str,
    params: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "testbench.v", escape = "none")]
struct TestbenchTemplate<'a> {
    d: &'a Design,
    version: &'a str,
    ports: &'a Ports,
    slices: &'a Slices,
    frames: usize,
    beats: usize,
    beat_w: u64,
    out_w: u64,
    timeout: u64,
    seed: u32,
}

#[derive(Template)]
#[template(path = "design_readme.md", escape = "none")]
struct ReadmeTemplate<'a> {
    d: &'a Design,
    name: &'a str,
    arch: &'a str,
    version: &'a str,
    modulation: String,
    beat_w: u64,
    out_w: u64,
    frames: usize,
    files: Vec<String>,
    report: &'a crate::report::Report,
}

fn render_err(name: &'static str) -> impl FnOnce(askama::Error) -> CodegenError {
    move |e| CodegenError::Template {
        name,
        message: e.to_string(),
    }
}

/// Renders every file of the design.
pub(crate) fn render(
    ir: &Ir,
    d: &Design,
    stim: &Stimulus,
    options: &Options,
) -> Result<Vec<GeneratedFile>, CodegenError> {
    let version = env!("CARGO_PKG_VERSION");
    let io = &d.io;
    let (n, m) = (io.n as u64, io.m as u64);
    let ports = Ports {
        h: range(n * u64::from(io.hw)),
        y: range(u64::from(io.yw)),
        bin: range(u64::from(io.binw)),
        x: range(n * u64::from(io.sw)),
        bits: range(n * u64::from(io.bpd)),
        zero_x: format!("{{{}{{1'b0}}}}", n * u64::from(io.sw)),
    };
    let arch = match d.arch {
        kaq_ir::Arch::Pgd => "PGD-Net",
        kaq_ir::Arch::Admm => "ADMM-Net",
    };
    let mut files = Vec::new();
    for (name, text) in PRIMITIVES {
        files.push(GeneratedFile {
            name: name.to_string(),
            contents: text.to_string(),
        });
    }
    for l in &d.layers {
        let t = LayerTemplate {
            l,
            name: &ir.name,
            arch,
            version,
            ports: &ports,
        };
        files.push(GeneratedFile {
            name: format!("{}.v", l.module),
            contents: t.render().map_err(render_err("layer.v"))?,
        });
    }
    let k = d.layers.len();
    let top = TopTemplate {
        d,
        name: &ir.name,
        version,
        ports: &ports,
        wires: (1..=k + 1).collect(),
        last: k + 1,
    };
    files.push(GeneratedFile {
        name: format!("{}.v", d.top),
        contents: top.render().map_err(render_err("top.v"))?,
    });

    // The params header.
    let report = crate::report::analyse(d);
    let prefix = d.top.to_uppercase();
    let mut params = vec![
        (
            format!("{prefix}_M"),
            io.m.to_string(),
            "rows of H (beats per frame)".to_string(),
        ),
        (
            format!("{prefix}_N"),
            io.n.to_string(),
            "columns of H (codes per frame)".to_string(),
        ),
        (
            format!("{prefix}_K"),
            k.to_string(),
            "layers (pipeline stages)".to_string(),
        ),
        (
            format!("{prefix}_LANES"),
            io.lanes.to_string(),
            "MAC lanes per stage".to_string(),
        ),
        (
            format!("{prefix}_HW"),
            io.hw.to_string(),
            "bits of an entry of H".to_string(),
        ),
        (
            format!("{prefix}_YW"),
            io.yw.to_string(),
            "bits of an entry of y".to_string(),
        ),
        (
            format!("{prefix}_SW"),
            io.sw.to_string(),
            "bits of an output code".to_string(),
        ),
        (
            format!("{prefix}_BINS"),
            io.bins.to_string(),
            "SNR bins".to_string(),
        ),
        (
            format!("{prefix}_BINW"),
            io.binw.to_string(),
            "bits of the SNR bin".to_string(),
        ),
        (
            format!("{prefix}_BPD"),
            io.bpd.to_string(),
            "decision bits per real dimension".to_string(),
        ),
        (
            format!("{prefix}_II"),
            report.total.ii.to_string(),
            "initiation interval, cycles".to_string(),
        ),
        (
            format!("{prefix}_LATENCY"),
            report.total.latency.to_string(),
            "input beat 0 to output beat, cycles".to_string(),
        ),
    ];
    for l in &d.layers {
        for (name, value) in &l.params {
            if !value.contains('\'') {
                params.push((
                    format!("{prefix}_L{}_{name}", l.number),
                    value.clone(),
                    format!("layer {} {name}", l.number),
                ));
            }
        }
    }
    let t = ParamsTemplate { d, version, params };
    files.push(GeneratedFile {
        name: format!("{}_params.vh", d.top),
        contents: t.render().map_err(render_err("params.vh"))?,
    });

    // The testbench and its vectors.
    let hw_total = n * u64::from(io.hw);
    let slices = Slices {
        h: format!("[{}:0]", hw_total - 1),
        y: format!("[{}:{}]", hw_total + u64::from(io.yw) - 1, hw_total),
        bin: format!(
            "[{}:{}]",
            hw_total + u64::from(io.yw) + u64::from(io.binw) - 1,
            hw_total + u64::from(io.yw)
        ),
    };
    let beat_w = hw_total + u64::from(io.yw) + u64::from(io.binw);
    let out_w = n * u64::from(io.sw + io.bpd);
    let mut stim_text = String::new();
    let mut expect_text = String::new();
    for f in &stim.frames {
        for i in 0..io.m {
            let mut fields: Vec<(i64, u32)> = f.h[i * io.n..(i + 1) * io.n]
                .iter()
                .map(|&c| (c, io.hw))
                .collect();
            fields.push((f.y[i], io.yw));
            fields.push((f.bin as i64, io.binw));
            stim_text.push_str(&hex_digits(&fields));
            stim_text.push('\n');
        }
        let mut fields: Vec<(i64, u32)> = f.out.iter().map(|&c| (c, io.sw)).collect();
        fields.extend(f.bits.iter().map(|&b| (i64::from(b), io.bpd)));
        expect_text.push_str(&hex_digits(&fields));
        expect_text.push('\n');
    }
    let frames = stim.frames.len();
    let t = TestbenchTemplate {
        d,
        version,
        ports: &ports,
        slices: &slices,
        frames,
        beats: frames * io.m,
        beat_w,
        out_w,
        // Generous: every frame at the latency, with stalls, plus slack.
        timeout: 4 * (report.total.latency + frames as u64 * report.total.ii * 4) + 10_000,
        seed: (options.seed as u32) | 1,
    };
    files.push(GeneratedFile {
        name: format!("{}_tb.v", d.top),
        contents: t.render().map_err(render_err("testbench.v"))?,
    });
    files.push(GeneratedFile {
        name: format!("{}_stim.mem", d.top),
        contents: stim_text,
    });
    files.push(GeneratedFile {
        name: format!("{}_expect.mem", d.top),
        contents: expect_text,
    });
    let sources: Vec<String> = files
        .iter()
        .filter(|f| f.name.ends_with(".v") && !f.name.ends_with("_tb.v"))
        .map(|f| f.name.clone())
        .collect();
    files.push(GeneratedFile {
        name: format!("{}.f", d.top),
        contents: sources.iter().map(|s| format!("{s}\n")).collect(),
    });
    let mut listed: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    listed.push("README.md".to_string());
    let t = ReadmeTemplate {
        d,
        name: &ir.name,
        arch,
        version,
        modulation: ir.modulation.to_string(),
        beat_w,
        out_w,
        frames,
        files: listed,
        report: &report,
    };
    files.push(GeneratedFile {
        name: "README.md".to_string(),
        contents: t.render().map_err(render_err("README.md"))?,
    });
    let _ = m;
    for f in &mut files {
        if !f.contents.ends_with('\n') {
            f.contents.push('\n');
        }
    }
    Ok(files)
}
