//! One module per `kaq` subcommand.

pub mod ber;
pub mod train;
