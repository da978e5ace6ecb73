//! The `kaq` command-line interface: one module per subcommand under `cmd/`.
//!
//! Usage errors (bad values, unknown options) exit with status 2 and a message naming the
//! offending argument, and so does an input file kaq refuses to read (a device file, a FIFO, a
//! file above `kaq_files::INPUT_LIMIT`) or cannot use (a malformed IR document or model file),
//! whichever command reads it; run-time failures exit with status 1. `kaq merge` exits with status 3
//! when a sharded sweep needs another round ([`cmd::merge::MORE_ROUNDS_EXIT`]).

mod cmd;
mod plot;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Deep-unfolded MIMO detectors from training to verified hardware.
#[derive(Debug, Parser)]
#[command(name = "kaq", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Monte-Carlo bit error rate of detectors over an SNR range.
    Ber(cmd::ber::BerArgs),
    /// Merge the shards of one round of a sharded BER sweep (`kaq ber --shard`): the table,
    /// JSON and plot of the unsharded run, or the state of the next round (exit status 3).
    Merge(cmd::merge::MergeArgs),
    /// Train a PGD-Net or ADMM-Net in f32 and write the model file.
    Train(cmd::train::TrainArgs),
    /// Train an f32 teacher and its quantized students, compare their BER, write a report.
    Compare(cmd::compare::CompareArgs),
    /// Lower a quantized model file to the IR of the integer golden model.
    Lower(cmd::lower::LowerArgs),
    /// The whole flow on built-in defaults: train, quantize, lower, generate RTL, report,
    /// co-simulate and plot BER, with a summary.
    Flow(cmd::flow::FlowArgs),
    /// Generate Verilog, a testbench and a README from an IR.
    Codegen(cmd::codegen::CodegenArgs),
    /// Timing and resources of the generated design: the analytic model, optionally Yosys.
    Report(cmd::report::ReportArgs),
    /// Co-simulate the generated RTL with Verilator against the integer golden model.
    Cosim(cmd::cosim::CosimArgs),
    /// Search per-layer bits, K and lanes for the Pareto front of BER, energy, area and
    /// throughput.
    Explore(cmd::explore::ExploreArgs),
    /// Write kaq's generated frames (H, x, y, σ²) as .npy files for cross-checks in Python.
    Export(cmd::export::ExportArgs),
    /// Generate a channel dataset (.npy) from a geometric site: ULA, clusters, line of sight.
    Site(cmd::site::SiteArgs),
    /// Redraw the BER plot of a saved `kaq ber --json` file (no simulation).
    Plot(cmd::plot::PlotArgs),
}

/// Whether `e` is a library's refusal of an input file the user named: one kaq refuses to
/// read (a device file, a FIFO, a file above the input limit, not text), an IR document that
/// is not one (malformed JSON, another format or version, a field out of range) or a model
/// file that does not describe a valid model. Each is a usage error, whichever command read
/// the file. The libraries wrap the kaq-files error transparently, which hides it from the
/// error chain, so they are looked into here.
fn refused_input(e: &(dyn std::error::Error + 'static)) -> bool {
    use kaq_ir::IrError;
    use kaq_model::train::TrainError;
    match (e.downcast_ref::<TrainError>(), e.downcast_ref::<IrError>()) {
        (Some(TrainError::Read(f)), _) | (_, Some(IrError::Read(f))) => f.is_usage(),
        (Some(TrainError::ModelFile { .. }), _)
        | (
            _,
            Some(
                IrError::Parse { .. }
                | IrError::Format(_)
                | IrError::Version(_)
                | IrError::Invalid { .. },
            ),
        ) => true,
        _ => false,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ber(args) => cmd::ber::run(args),
        Command::Merge(args) => cmd::merge::run(args),
        Command::Train(args) => cmd::train::run(args),
        Command::Compare(args) => cmd::compare::run(args),
        Command::Lower(args) => cmd::lower::run(args),
        Command::Flow(args) => cmd::flow::run(args),
        Command::Codegen(args) => cmd::codegen::run(args),
        Command::Report(args) => cmd::report::run(args),
        Command::Cosim(args) => cmd::cosim::run(args),
        Command::Export(args) => cmd::export::run(args),
        Command::Explore(args) => cmd::explore::run(args),
        Command::Site(args) => cmd::site::run(args),
        Command::Plot(args) => cmd::plot::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<cmd::args::UsageError>() => {
            let _ = clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{err}\n"))
                .print();
            ExitCode::from(2)
        }
        Err(err) if err.chain().any(refused_input) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
        Err(err) if err.is::<cmd::merge::MoreRounds>() => {
            eprintln!("{err:#}");
            ExitCode::from(cmd::merge::MORE_ROUNDS_EXIT)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
