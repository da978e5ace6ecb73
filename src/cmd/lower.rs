//! `kaq lower`: lowers a quantized model file to the IR (`kaq_ir`, docs/ir.md).
//!
//! `kaq lower --model q.json --out ir.json [--mult-bits B] [--force]` reads a `kaq train
//! --quant` file (`"format": "kaq-qmodel"`), lowers its fake-quant net with
//! [`kaq_model::lower::lower`] and writes the IR's canonical JSON: equal inputs give equal bytes.
//! `--mult-bits` (8 to 32, default 24) is the signed width of the per-SNR-bin requantization
//! multipliers and update coefficients.
//!
//! `kaq lower --model cg.json --ptq-bits B --out ir.json` instead reads a Gram-domain model file
//! of the cg family (`kaq train --arch cg`, `"format": "kaq-gram-model"`) and lowers it by
//! post-training quantization at `B` bits (2 to 12;
//! [`kaq_model::gram::quantized::lower_cg`]) to an IR version 2 document (docs/ir.md §10).
//! `--mult-bits` does not apply to it (status 2 if given). Its calibration frames are drawn
//! on the net's link; a net trained on a channel dataset needs `--channels FILE`, that dataset
//! again (checked against the model file's SHA-256), so a site-trained net calibrates on its
//! site. `--calibration max|mse|pQ` picks the rule that sets each format's step from the
//! calibration values (default mse; [`kaq_model::gram::quantized::Calibration`]). A
//! Gram-domain file without `--ptq-bits` is a usage error naming `--ptq-bits`. An oamp file
//! lowers the same way to an IR version 4 document (docs/ir.md §11;
//! [`kaq_model::gram::oamp_quant::lower_oamp`]; `--cg-width` and `--g-inner-bits` are cg's and
//! refused for it); an ep file lowers to an IR version 5 document (docs/ir.md §12;
//! [`kaq_model::gram::ep_quant::lower_ep`]; the same two flags refused).
//!
//! A plain f32 model file is refused (quantize it first with `kaq train --quant`). The output
//! is checked before any work; an existing file is never replaced without `--force`, and the
//! file is written atomically. Stdout gets a short summary: name, dimensions, layers, state
//! width, SNR bins, the accumulator widths of every layer and the output path.
//!
//! Bad flag values end with status 2 naming the flag; unreadable or invalid model files, a net
//! the IR cannot express and an unwritable output end with status 1.

use super::args::{parse_whole, usage_error};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use kaq_ir::{InitStage, Ir, IrError};
use kaq_model::gram::file::GRAM_FORMAT;
use kaq_model::lower::{LowerOptions, lower};
use kaq_model::quant::QuantNet;
use kaq_model::quant::file::{QFORMAT, QuantModelFile};
use kaq_model::train::model_file::{FORMAT, Overwrite, write_atomic};

use crate::plot;

/// Arguments of `kaq lower`.
#[derive(Debug, Args)]
pub struct LowerArgs {
    /// The quantized model file (`kaq train --quant`).
    #[arg(long, value_name = "PATH")]
    model: PathBuf,

    /// Where to write the IR (JSON).
    #[arg(long, value_name = "PATH")]
    out: PathBuf,

    /// Signed width of the per-bin requantization multipliers, 8 to 32.
    #[arg(long, value_parser = parse_mult_bits, default_value_t = kaq_ir::DEFAULT_MULT_BITS,
          conflicts_with = "ptq_bits")]
    mult_bits: u32,

    /// Post-training quantization at this many bits of a Gram-domain cg model file
    /// (`kaq train --arch cg`) to an IR version 2 document (docs/ir.md §10), 2 to 12.
    #[arg(long, value_name = "B", value_parser = parse_ptq_bits)]
    ptq_bits: Option<u32>,

    /// With --ptq-bits: how each format's step is chosen from the calibration values: max (the
    /// largest magnitude), mse (least squared rounding and clipping error) or pQ (the Q-th
    /// percentile of the magnitudes, e.g. p99.9) [default: mse].
    #[arg(long, value_name = "RULE", requires = "ptq_bits",
          value_parser = |s: &str| s.parse::<kaq_model::gram::quantized::Calibration>())]
    calibration: Option<kaq_model::gram::quantized::Calibration>,

    /// With --ptq-bits, for a net trained on a channel dataset: the dataset file again (the
    /// one its model file records, checked by SHA-256); the calibration frames draw from it.
    #[arg(long, value_name = "FILE", requires = "ptq_bits")]
    channels: Option<PathBuf>,

    /// With --ptq-bits: the width of one tensor class, CLASS=BITS (h, y, g, z, e, p, d, r, …;
    /// docs/ir.md §10.6's classes), replacing the --ptq-bits default; repeatable, e.g.
    /// `--cg-width g=13 --cg-width h=8`.
    #[arg(long, value_name = "CLASS=BITS", requires = "ptq_bits", value_parser = parse_cg_width)]
    cg_width: Vec<(kaq_model::gram::quantized::CgTensor, u32)>,

    /// With --ptq-bits: the widths of the narrow inner copy of G each layer's inner steps read
    /// for ρ (docs/ir.md §10.9, `g_inner`): one for every layer or one per layer; a width at or
    /// above G's reads the full G.
    #[arg(long, value_name = "W,…", value_delimiter = ',', requires = "ptq_bits",
          value_parser = clap::value_parser!(u32).range(2..=32))]
    g_inner_bits: Vec<u32>,

    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,
}

fn parse_cg_width(s: &str) -> Result<(kaq_model::gram::quantized::CgTensor, u32), String> {
    let (c, b) = s
        .split_once('=')
        .ok_or_else(|| format!("{s}: expected CLASS=BITS, e.g. g=13"))?;
    let class = c.parse()?;
    let bits: u32 = b.parse().map_err(|_| format!("{b}: not a width in bits"))?;
    if !(2..=24).contains(&bits) {
        return Err(format!("{bits} bits is outside 2..=24"));
    }
    Ok((class, bits))
}

fn parse_ptq_bits(s: &str) -> Result<u32, String> {
    let n = parse_whole(s)?;
    if !(2..=12).contains(&n) {
        return Err(format!("PTQ bits must be between 2 and 12, got {n}"));
    }
    Ok(n as u32)
}

fn parse_mult_bits(s: &str) -> Result<u32, String> {
    let n = parse_whole(s)?;
    if !(8..=32).contains(&n) {
        return Err(format!("multiplier bits must be between 8 and 32, got {n}"));
    }
    Ok(n as u32)
}

/// Runs `kaq lower`.
pub fn run(args: LowerArgs) -> anyhow::Result<()> {
    if same_file(&args.model, &args.out) {
        bail!(
            "--out {} is the --model file; choose another output",
            args.out.display()
        );
    }
    if args.out.exists() && !args.force {
        bail!(
            "--out {} already exists; pass --force to replace it",
            args.out.display()
        );
    }
    plot::check_writable(&args.out).context("--out is not writable")?;

    let overwrite = if args.force {
        Overwrite::Replace
    } else {
        Overwrite::Refuse
    };
    if let Some(bits) = args.ptq_bits {
        return lower_gram(&args, bits, overwrite);
    }
    let net = load_quant_net(&args.model)?;
    let ir = lower(
        &net,
        LowerOptions {
            mult_bits: args.mult_bits,
        },
    )
    .map_err(|e| match e {
        // The model holds something the IR cannot express: a property of the input file.
        IrError::Lower(_) => usage_error("--model", format!("{}: {e}", args.model.display())),
        other => anyhow::Error::new(other).context(format!("--model {}", args.model.display())),
    })?;
    write_atomic(&args.out, ir.to_json().as_bytes(), overwrite)
        .with_context(|| format!("cannot write the IR to {}", args.out.display()))?;
    print!("{}", summary(&ir, &args.out));
    Ok(())
}

/// `--ptq-bits`: PTQ of a Gram-domain cg model file to IR v2.
fn lower_gram(args: &LowerArgs, bits: u32, overwrite: Overwrite) -> anyhow::Result<()> {
    use kaq_model::gram::file::GramModelFile;
    use kaq_model::gram::quantized::{CgQuantOptions, lower_cg};
    let file = GramModelFile::load(&args.model).with_context(|| {
        format!(
            "--model {} (--ptq-bits needs a cg, oamp or ep model file)",
            args.model.display()
        )
    })?;
    let link = super::csi::reload_dataset(file.net.link(), args.channels.as_deref())?;
    let net = if link.dataset.is_some() {
        let mut net = kaq_model::gram::GramNet::new(file.net.config().clone(), &link)
            .with_context(|| format!("--model {}", args.model.display()))?;
        net.params_mut().copy_from_slice(file.net.params());
        net
    } else {
        file.net
    };
    match net.config().family {
        kaq_model::gram::Family::Oamp => return lower_oamp(args, &net, bits, overwrite),
        kaq_model::gram::Family::Ep => return lower_ep(args, &net, bits, overwrite),
        kaq_model::gram::Family::Cg => {}
    }
    let mut opts = CgQuantOptions::new(bits);
    if let Some(rule) = args.calibration {
        opts.calibration = rule;
    }
    opts.widths.extend(args.cg_width.iter().copied());
    let layers = net.config().layers;
    opts.g_inner =
        CgQuantOptions::g_inner_per_layer(&args.g_inner_bits, layers).ok_or_else(|| {
            super::args::usage_error(
                "--g-inner-bits",
                format!(
                    "{} widths for {layers} layers (one for every layer, or one per layer)",
                    args.g_inner_bits.len()
                ),
            )
        })?;
    let ir = lower_cg(&net, &opts).with_context(|| format!("--model {}", args.model.display()))?;
    write_atomic(&args.out, ir.to_json().as_bytes(), overwrite)
        .with_context(|| format!("cannot write the IR to {}", args.out.display()))?;
    let widest = ir
        .bounds()
        .map(|b| b.sums.iter().map(|s| s.1).max().unwrap_or(0))
        .unwrap_or(0);
    println!("IR v2 {} (cg)", ir.name);
    println!(
        "  {}x{} {}, H~ {}x{}, {} layers x {} inner steps, state width {} bits, {} SNR bins, \
         {} denoiser buckets",
        ir.nt,
        ir.nr,
        ir.modulation,
        ir.m,
        ir.n,
        ir.layers.len(),
        ir.inner(),
        ir.state.width(),
        ir.snr_bins.count,
        ir.denoiser.table.len()
    );
    println!("  widest sum bound (interval analysis): {widest} bits");
    let energy = kaq_ir::gram::gram_energy(&ir, 14);
    println!(
        "  energy at T = 14 (docs/energy.md): model 2 {:.1} pJ/bit, model 1 {:.1} pJ/bit",
        energy.horowitz.pj_per_bit, energy.paper.pj_per_bit
    );
    println!("IR written to {}", args.out.display());
    Ok(())
}

/// `--ptq-bits` of an ep model file: PTQ to IR version 5 (docs/ir.md §12).
fn lower_ep(
    args: &LowerArgs,
    net: &kaq_model::gram::GramNet,
    bits: u32,
    overwrite: Overwrite,
) -> anyhow::Result<()> {
    use kaq_model::gram::ep_quant::{EpQuantOptions, lower_ep};
    for (flag, given) in [
        ("--cg-width", !args.cg_width.is_empty()),
        ("--g-inner-bits", !args.g_inner_bits.is_empty()),
    ] {
        if given {
            return Err(super::args::usage_error(
                flag,
                "applies to cg nets only (this model file is an ep net)",
            ));
        }
    }
    let mut opts = EpQuantOptions::new(bits);
    if let Some(rule) = args.calibration {
        opts.calibration = rule;
    }
    let ir = lower_ep(net, &opts).with_context(|| format!("--model {}", args.model.display()))?;
    write_atomic(&args.out, ir.to_json().as_bytes(), overwrite)
        .with_context(|| format!("cannot write the IR to {}", args.out.display()))?;
    let widest = ir
        .bounds()
        .map(|b| b.sums.iter().map(|s| s.1).max().unwrap_or(0))
        .unwrap_or(0);
    println!("IR v5 {} (ep)", ir.name);
    println!(
        "  {}x{} {}, H~ {}x{}, {} layers, state width {} bits, t width {} bits, {} SNR bins, \
         {} h buckets",
        ir.nt,
        ir.nr,
        ir.modulation,
        ir.m,
        ir.n,
        ir.layers,
        ir.state.width(),
        ir.formats.t.width(),
        ir.snr_bins.count,
        ir.moments.mean.len()
    );
    println!("  widest sum bound (interval analysis): {widest} bits");
    println!("IR written to {}", args.out.display());
    Ok(())
}

/// `--ptq-bits` of an oamp model file: PTQ to IR version 4 (docs/ir.md §11).
fn lower_oamp(
    args: &LowerArgs,
    net: &kaq_model::gram::GramNet,
    bits: u32,
    overwrite: Overwrite,
) -> anyhow::Result<()> {
    use kaq_model::gram::oamp_quant::{OampQuantOptions, lower_oamp};
    for (flag, given) in [
        ("--cg-width", !args.cg_width.is_empty()),
        ("--g-inner-bits", !args.g_inner_bits.is_empty()),
    ] {
        if given {
            return Err(super::args::usage_error(
                flag,
                "applies to cg nets only (this model file is an oamp net)",
            ));
        }
    }
    let mut opts = OampQuantOptions::new(bits);
    if let Some(rule) = args.calibration {
        opts.calibration = rule;
    }
    let ir = lower_oamp(net, &opts).with_context(|| format!("--model {}", args.model.display()))?;
    write_atomic(&args.out, ir.to_json().as_bytes(), overwrite)
        .with_context(|| format!("cannot write the IR to {}", args.out.display()))?;
    let widest = ir
        .bounds()
        .map(|b| b.sums.iter().map(|s| s.1).max().unwrap_or(0))
        .unwrap_or(0);
    println!("IR v4 {} (oamp)", ir.name);
    println!(
        "  {}x{} {}, H~ {}x{}, {} layers, bank of {}, state width {} bits, {} SNR bins, \
         {} denoiser buckets",
        ir.nt,
        ir.nr,
        ir.modulation,
        ir.m,
        ir.n,
        ir.layers.len(),
        ir.bank_len(),
        ir.state.width(),
        ir.snr_bins.count,
        ir.denoiser.table.len()
    );
    println!("  widest sum bound (interval analysis): {widest} bits");
    println!("IR written to {}", args.out.display());
    Ok(())
}

/// Whether two paths name the same existing file (or are spelled the same).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Reads a quantized model file and returns its fake-quant net; an f32 model file or any
/// other document is refused with the file named.
fn load_quant_net(path: &Path) -> anyhow::Result<QuantNet> {
    let context = || format!("--model {}", path.display());
    let text = super::args::read_input("--model", path)?;
    #[derive(serde::Deserialize)]
    struct Tag {
        format: Option<serde_json::Value>,
    }
    let tag = serde_json::from_str::<Tag>(&text).map_err(|e| {
        super::args::usage_error(
            "--model",
            format!("{}: not a JSON model file: {e}", path.display()),
        )
    })?;
    match tag.format {
        Some(serde_json::Value::String(f)) if f == QFORMAT => {}
        Some(serde_json::Value::String(f)) if f == GRAM_FORMAT => {
            return Err(super::args::usage_error(
                "--ptq-bits",
                format!(
                    "--model {} is a Gram-domain model (format \"{GRAM_FORMAT}\"); it lowers to \
                     IR v2 by post-training quantization: pass --ptq-bits B",
                    path.display()
                ),
            ));
        }
        Some(serde_json::Value::String(f)) if f == FORMAT => bail!(
            "--model {}: an f32 model (format \"{FORMAT}\"); only quantized models lower to the \
             IR — run `kaq train --quant METHOD --teacher {}` first",
            path.display(),
            path.display()
        ),
        Some(other) => {
            return Err(super::args::usage_error(
                "--model",
                format!(
                    "{}: format is {other}, expected \"{QFORMAT}\"",
                    path.display()
                ),
            ));
        }
        None => {
            return Err(super::args::usage_error(
                "--model",
                format!(
                    "{}: missing field `format` (expected \"{QFORMAT}\")",
                    path.display()
                ),
            ));
        }
    }
    let file = QuantModelFile::from_json(&text, path).with_context(context)?;
    file.quant_net()
        .map_err(anyhow::Error::msg)
        .with_context(context)
}

/// The summary printed on stdout.
fn summary(ir: &Ir, out: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "IR {} ({})", ir.name, ir.arch);
    let _ = writeln!(
        s,
        "  {}, H~ {}×{}, {} layers, state width {} bits, {} SNR bins",
        plot::style::link_name(ir.nt, ir.nr, ir.modulation),
        ir.m,
        ir.n,
        ir.layers.len(),
        ir.state_width,
        ir.bins()
    );
    if let InitStage::MatchedFilter { acc, .. } = &ir.init {
        let _ = writeln!(s, "  init: matched filter, acc {} bits", acc.width);
    }
    let _ = writeln!(s, "  accumulator widths (bits): e.acc g.acc update.acc");
    for (k, layer) in ir.layers.iter().enumerate() {
        let _ = writeln!(
            s,
            "  layer {:>2}: {:>5} {:>5} {:>10}",
            k + 1,
            layer.e.acc.width,
            layer.g.acc.width,
            layer.update.acc.width
        );
    }
    let _ = writeln!(s, "IR written to {}", out.display());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mult_bits_range() {
        assert_eq!(parse_mult_bits("8").unwrap(), 8);
        assert_eq!(parse_mult_bits("32").unwrap(), 32);
        assert!(
            parse_mult_bits("7")
                .unwrap_err()
                .contains("between 8 and 32")
        );
        assert!(parse_mult_bits("33").is_err());
        assert!(parse_mult_bits("x").is_err());
    }
}
