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
     newer schema version, empty); the message names the file and the problem
  3  diff: no regression found, but a stage that matters could not be decided (too few
     packets for any test, or recorded on one side only); --allow-undecided makes it 0
 70  internal error (a defect of tcptape: please report it)";

/// The analyzer's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Metadata, attach plan, environment, events per stage, lost events, time span.
    Info(InfoArgs),
    /// Per-layer latency from packet journeys, and the classic TCP reports (retransmits, RTT and
    /// cwnd, connections, drops, throughput, buffer pressure), one report per host.
    Report(ReportArgs),
    /// Two recordings side by side (or runs, or hosts): every stage's count and percentiles with
    /// their change, a statistical verdict per stage, thresholds for CI; exit code 1 on a
    /// regression, 3 when a stage that matters cannot be decided.
    Diff(crate::diff::DiffArgs),
    /// The events in time order like `perf script` (text or JSON lines), filtered; `--journeys`
    /// prints each packet's path with the time between hops; `--speed` paces the output.
    Replay(crate::replay::ReplayArgs),
    /// A trace for ui.perfetto.dev and chrome://tracing: each journey as slices per stage on a
    /// track per flow, retransmits as instant events, cwnd as counters; several hosts on one
    /// time line.
    Export(crate::export::ExportArgs),
    /// The report's per stage pair breakdown as SQL for DuckDB or Spark, with the recording or
    /// set filled in: the same journey rules and counts, run where the recordings live.
    Sql(crate::sql_command::SqlArgs),
    /// An anonymized copy of a recording for a public ticket: prefix-preserving (Crypto-PAn)
    /// address pseudonyms, pid, comm and cgroup paths removed, ports kept or mapped.
    Anonymize(crate::anonymize_command::AnonymizeArgs),
    /// Shell completions, printed to standard output: `tcptape completions bash >
    /// /etc/bash_completion.d/tcptape` (zsh: into a directory of `$fpath` as `_tcptape`; fish:
    /// `~/.config/fish/completions/tcptape.fish`).
    Completions(tcptape_common::shell_integration::CompletionsArgs),
    /// The manual page (roff), printed to standard output: `tcptape man >
    /// /usr/local/share/man/man1/tcptape.1`; `tcptape man report` for a subcommand's.
    Man(tcptape_common::shell_integration::ManArgs),
}

/// Output formats of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Readable tables for a terminal.
    Table,
    /// JSON with a stable shape (`schema` 1; see docs/analyzer.md).
    Json,
    /// Markdown, for a ticket or a pull request.
    Markdown,
    /// One self-contained HTML file with plots.
    Html,
}

/// Options of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Recordings: `.parquet` files, segment directories, or glob patterns (quote them). Several
    /// recordings of one host (host name and boot) are analyzed together; each host gets its own
    /// report, and with several hosts a last section joins their segments: the clock offset
    /// between them, estimated from the traffic, and the wire times.
    #[arg(value_name = "REC", required = true)]
    pub recs: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Which events.
    #[command(flatten)]
    pub select: crate::selection_args::SelectionArgs,
    /// Two hops of one packet id further apart than this are taken as two packets (the kernel
    /// reused the skb).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub max_hop_gap: std::time::Duration,
    /// Rows per table in the table, Markdown and HTML formats (the JSON has every row).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// Only the SPAN before and after the trigger that saved a flight recorder's window
    /// (`tcptape-record --keep … --trigger …`): e.g. `--around 5s`. Conflicts with --from/--to.
    #[arg(long, value_name = "SPAN", value_parser = humantime::parse_duration, conflicts_with_all = ["from", "to"])]
    pub around: Option<std::time::Duration>,
    /// The table format without fitting 120 columns: flows in full in every row, no wrapping.
    #[arg(long)]
    pub wide: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the optimized query plan of the journey segmentation to standard error.
    #[arg(long)]
    pub explain: bool,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("tcptape").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn port_and_stage_lists_may_be_comma_separated() {
        let Command::Report(r) = parse(&[
            "report",
            "x",
            "--port",
            "80,443",
            "--port",
            "22",
            "--stage",
            "rx_app,tx_driver",
        ])
        .command
        else {
            panic!("not report")
        };
        assert_eq!(r.select.port, vec![80, 443, 22]);
        let names: Vec<&str> = r.select.stage.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["rx_app", "tx_driver"]);
        let Command::Replay(r) =
            parse(&["replay", "x", "--port", "1,2", "--stage", "drop,state"]).command
        else {
            panic!("not replay")
        };
        assert_eq!(r.select.port, vec![1, 2]);
        assert_eq!(r.select.stage.len(), 2);
        let Command::Diff(d) = parse(&["diff", "a", "b", "--port", "5201,5202"]).command else {
            panic!("not diff")
        };
        assert_eq!(d.select.port, vec![5201, 5202]);
        assert!(Cli::try_parse_from(["tcptape", "report", "x", "--stage", "rx_app,nope"]).is_err());
    }
}
