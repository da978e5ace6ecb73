//! One module per `kaq` subcommand.

pub mod args;
pub mod ber;
pub mod codegen;
pub mod compare;
pub mod cosim;
pub mod csi;
pub mod explore;
pub mod export;
pub mod flow;
pub mod lower;
pub mod merge;
pub mod plot;
pub mod report;
pub mod shard;
pub mod site;
pub mod train;
