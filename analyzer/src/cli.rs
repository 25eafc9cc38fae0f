//! Command-line arguments of `tcptape`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Offline analysis of tcptape recordings: per-layer latency, TCP reports, regressions.
///
/// A recording (REC) is a `.parquet` file or a directory of segments written by `tcptape-record`.
/// Nothing here needs root.
#[derive(Debug, Parser)]
#[command(name = "tcptape", version, after_long_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Exit codes, shown at the end of `--help`.
pub const EXIT_CODES_HELP: &str = "Exit codes:
  0  success (diff: no regression)
  1  diff: a regression was found
  2  bad arguments or unusable input (not Parquet, truncated, not a tcptape recording,
     newer schema version, empty); the message names the file and the problem";

/// The analyzer's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Metadata, attach plan, environment, events per stage, lost events, time span.
    Info(InfoArgs),
}

/// Output formats of `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InfoFormat {
    /// Readable text.
    Table,
    /// JSON: the metadata plus counts.
    Json,
}

/// Options of `info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The recording.
    #[arg(value_name = "REC")]
    pub rec: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = InfoFormat::Table)]
    pub format: InfoFormat,
}
