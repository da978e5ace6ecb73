//! PTQ diagnosis of a cg model file: BER of its f32 net and of fake-quant variants, each given
//! as one argument of comma-separated `key=value` settings on top of `CgQuantOptions::new(bits)`:
//! `bits=B`, `<tensor>=W` (a class's width, e.g. `e=16`), `cal=max|mse|pQ` (every class),
//! `cal.<tensor>=max|mse|pQ`, `calib=LO:HI` (calibration SNR range in dB). `-` alone is the
//! default 8-bit PTQ.
//!
//! `cargo run --release -p kaq-model --example cg_ptq_diag -- MODEL SNRS FRAMES VARIANT…`
//! (SNRS comma-separated dB); one thread; prints one line per variant and SNR point: BER, bit
//! errors, frames, and the 95 % interval.

use kaq_model::Detector;
use kaq_model::ber::{BerConfig, simulate};
use kaq_model::gram::file::GramModelFile;
use kaq_model::gram::quantized::{CgQuantOptions, CgTensor, quantize_cg};

fn variant(spec: &str) -> Result<CgQuantOptions, String> {
    let mut opts = CgQuantOptions::new(8);
    let mut rest = Vec::new();
    for kv in spec.split(',').filter(|s| !s.is_empty() && *s != "-") {
        let (k, v) = kv
            .split_once('=')
            .ok_or(format!("{kv}: expected key=value"))?;
        if k == "bits" {
            let b: u32 = v.parse().map_err(|_| format!("{kv}: bad bits"))?;
            let keep = (opts.calibration, opts.calib_snr);
            opts = CgQuantOptions::new(b);
            (opts.calibration, opts.calib_snr) = keep;
        } else {
            rest.push((k, v));
        }
    }
    for (k, v) in rest {
        if k == "cal" {
            opts.calibration = v.parse()?;
        } else if let Some(t) = k.strip_prefix("cal.") {
            opts.calibrations.push((t.parse()?, v.parse()?));
        } else if k == "calib" {
            let (lo, hi) = v.split_once(':').ok_or("calib=LO:HI")?;
            opts.calib_snr = (
                lo.parse().map_err(|_| "calib lo")?,
                hi.parse().map_err(|_| "calib hi")?,
            );
        } else {
            let t: CgTensor = k.parse()?;
            opts.widths
                .push((t, v.parse().map_err(|_| format!("{k}={v}: bad width"))?));
        }
    }
    Ok(opts)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        return Err("usage: cg_ptq_diag MODEL SNRS FRAMES VARIANT…".into());
    }
    let file = GramModelFile::load(std::path::Path::new(&args[0]))?;
    let snr: Vec<f64> = args[1]
        .split(',')
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let frames: u64 = args[2].parse()?;
    let mut fqs = Vec::new();
    for spec in &args[3..] {
        let opts = variant(spec)?;
        fqs.push((spec.clone(), quantize_cg(&file.net, &opts)?));
    }
    let mut dets: Vec<&dyn Detector> = vec![&file.net];
    dets.extend(fqs.iter().map(|(_, f)| f as &dyn Detector));
    let mut config = BerConfig::new(file.net.link().clone(), snr, u64::MAX, frames, 1);
    config.threads = Some(1);
    let rows = simulate(&config, &dets, None)?;
    let names: Vec<String> = std::iter::once("f32".to_string())
        .chain(fqs.iter().map(|(s, _)| s.clone()))
        .collect();
    let per = rows.len() / names.len();
    for (i, r) in rows.iter().enumerate() {
        println!(
            "{:<40} {:>5.1} dB  BER {:.3e}  [{:.2e}, {:.2e}]  errors {:>7}  frames {}",
            names[i / per],
            r.snr_db,
            r.ber,
            r.ber_ci_low,
            r.ber_ci_high,
            r.bit_errors,
            r.frames
        );
    }
    Ok(())
}
