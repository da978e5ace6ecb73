//! The stages of `kaq compare`: the output directory, the teacher, each quantized run and the
//! BER run.

use std::fs;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::ProgressBar;
use kaq_model::ber::{BerConfig, BerPoint, BerProgress, simulate};
use kaq_model::quant::file::QuantModelFile;
use kaq_model::quant::{QuantTrainConfig, QuantTrained, train_quantized};
use kaq_model::train::model_file::Overwrite;
use kaq_model::train::{EpochRecord, ModelFile, Progress, TrainConfig, train};
use kaq_model::unfolded::{NetConfig, UnfoldedNet};
use kaq_model::{Detector, LinkConfig};

use super::options::{ArchChoice, CompareArgs, FP32, RunKey};
use super::results::accuracy;

/// Checks the output directory: missing, or empty but for kaq's own `.kaq-*` files, unless
/// `force`.
pub(super) fn check_out(out: &Path, force: bool) -> anyhow::Result<()> {
    if !out.exists() || force {
        return Ok(());
    }
    let non_empty = fs::read_dir(out)
        .with_context(|| format!("cannot read --out {}", out.display()))?
        .filter_map(Result::ok)
        .any(|e| !kaq_files::is_kaq_file(&e.file_name()));
    if non_empty {
        bail!(
            "--out {} is not empty; pass --force to write kaq's report files into it \
             (other files are kept)",
            out.display()
        );
    }
    Ok(())
}

/// A progress callback for one training run labelled `label`.
pub(super) fn on_progress<'a>(
    label: &'a str,
    bar: &'a ProgressBar,
) -> impl FnMut(Progress<'_>) + 'a {
    let mut epochs = 0;
    move |p| match p {
        Progress::Started { epochs: e, batches } => {
            epochs = e;
            bar.set_length(batches as u64);
            bar.set_prefix(format!("{label} epoch 1/{e}"));
        }
        Progress::Batch {
            epoch, batch, loss, ..
        } => {
            bar.set_prefix(format!("{label} epoch {epoch}/{epochs}"));
            bar.set_position(batch as u64);
            bar.set_message(format!("loss {loss:.5}"));
        }
        Progress::Epoch(r) => {
            let acc = accuracy(std::slice::from_ref(r))[0];
            bar.suspend(|| {
                println!(
                    "{label} epoch {}/{epochs}  train loss {:.5}  val loss {:.5}  val accuracy {:.5}  {:.1} s",
                    r.epoch, r.train_loss, r.val_loss, acc, r.seconds
                )
            });
            bar.set_position(0);
        }
    }
}

/// The teacher: loaded from `--teacher`, reused from `models/fp32.json`, or trained.
pub(super) fn obtain_teacher(
    args: &CompareArgs,
    path: &Path,
) -> anyhow::Result<(UnfoldedNet, TrainConfig, Vec<EpochRecord>, String)> {
    if let Some(src) = &args.teacher {
        let file = ModelFile::load(src).with_context(|| format!("--teacher {}", src.display()))?;
        let source = format!("loaded from {}", src.display());
        file.save(path, Overwrite::Replace)
            .with_context(|| format!("cannot save {}", path.display()))?;
        return Ok((file.net, file.train, file.history, source));
    }
    let ArchChoice::Unfolded(arch) = args.arch else {
        bail!(
            "internal error: an unfolded teacher for --arch {:?}",
            args.arch
        );
    };
    let link = LinkConfig::new(args.nt, args.nr, args.modulation)?;
    let net = NetConfig {
        arch,
        prox: args.prox,
        layers: args.layers,
        momentum: args.momentum,
        init: args.init,
    };
    let config = args.teacher_config(link, net);
    if let Ok(file) = ModelFile::load(path)
        && file.train == config
    {
        println!("fp32: reusing models/fp32.json");
        return Ok((file.net, file.train, file.history, "reused".into()));
    }
    let bar = crate::progress::open_bar("", "batches");
    let result = train(&config, &mut on_progress(FP32, &bar));
    bar.finish_and_clear();
    let model = result.context("training the f32 teacher failed")?;
    let file = ModelFile::from(model);
    file.save(path, Overwrite::Replace)
        .with_context(|| format!("cannot save {}", path.display()))?;
    Ok((file.net, file.train, file.history, "trained".into()))
}

/// One quantized run: reused from its model file when that holds exactly this run, else
/// trained and saved.
pub(super) fn obtain_quant(
    teacher: &UnfoldedNet,
    key: RunKey,
    config: &QuantTrainConfig,
    path: &Path,
) -> anyhow::Result<(QuantTrained, bool)> {
    if let Ok(file) = QuantModelFile::load(path)
        && file.method == key.method
        && &file.train == config
        && &file.teacher == teacher
        && let Ok(net) = file.quant_net()
    {
        println!("{}: reusing models/{}", key.label(), key.file_name());
        return Ok((
            QuantTrained {
                net,
                teacher: file.teacher,
                config: file.train,
                history: file.history,
                kaq_history: file.kaq_history,
            },
            true,
        ));
    }
    let label = key.label();
    let bar = crate::progress::open_bar("", "batches");
    bar.set_prefix(format!("{label} calibrating"));
    let result = train_quantized(teacher, key.method, config, &mut on_progress(&label, &bar));
    bar.finish_and_clear();
    let run = result.with_context(|| format!("quantized run {label} failed"))?;
    QuantModelFile::from(&run)
        .save(path, Overwrite::Replace)
        .with_context(|| format!("cannot save {}", path.display()))?;
    Ok((run, false))
}

pub(super) fn run_ber(
    config: &BerConfig,
    detectors: &[&dyn Detector],
) -> anyhow::Result<Vec<BerPoint>> {
    let bar = crate::progress::percent_bar("BER", config.snr_db.len() as u64 * 1000);
    let mut on_progress = |p: &BerProgress| {
        let done = (p.snr_index as f64 + p.point_fraction()) * 1000.0;
        bar.set_position(done as u64);
        let running = p.done.iter().filter(|d| !**d).count();
        bar.set_message(format!(
            "SNR {} dB ({}/{}), {running} detectors running",
            p.snr_db,
            p.snr_index + 1,
            p.snr_points
        ));
    };
    let start = Instant::now();
    let points = simulate(config, detectors, Some(&mut on_progress));
    bar.finish_and_clear();
    let points = points.context("the BER run failed")?;
    println!("BER run: {:.1} s", start.elapsed().as_secs_f64());
    Ok(points)
}
