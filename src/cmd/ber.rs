//! `kaq ber`: Monte-Carlo BER of detectors over an SNR range.

use clap::Args;

/// Arguments of `kaq ber`.
#[derive(Debug, Args)]
pub struct BerArgs {}

/// Runs `kaq ber`.
pub fn run(_args: BerArgs) -> anyhow::Result<()> {
    anyhow::bail!("kaq ber is not built yet")
}
