//! Command-line arguments of `tcptape-record`. Validated here without touching the kernel; the
//! capture starts only once every argument makes sense.

use crate::cpu_priority::Priority;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Records what the Linux TCP/IP stack does to each packet into a Parquet recording.
///
/// Recording is the default action: `tcptape-record -o incident.parquet --duration 30s --port 443`.
/// Ctrl-C or SIGTERM end a recording cleanly; everything received is written. On a busy host,
/// `--stage tcp` (the TCP events, no per-packet stages) or `--sample N` keep the cost low.
#[derive(Debug, Parser)]
#[command(
    name = "tcptape-record",
    version,
    args_conflicts_with_subcommands = true
)]
#[command(after_long_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// What to do instead of recording.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Recording options.
    #[command(flatten)]
    pub record: RecordArgs,
}

/// Exit codes, shown at the end of `--help`.
pub const EXIT_CODES_HELP: &str = "Exit codes:
  0  the recording (or command) completed; Ctrl-C/SIGTERM also end a recording with 0
  1  the recording failed while running (e.g. the disk is full); finished segments are intact;
     `trigger`: no running flight recorder answered
  2  bad arguments or an unusable output path; also rings the kernel has no memory for
     (a smaller --ring-size may fit)
  3  missing privileges (CAP_BPF and CAP_PERFMON, or root; also a kernel that refuses the
     programs or maps with EPERM/EACCES: lockdown, a seccomp filter)
  4  the kernel cannot support a recording (no BTF, no tracefs, nothing attachable)";

/// Subcommands besides recording.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print what this host can record: per stage, the mechanism chosen and why others failed.
    Check(CheckArgs),
    /// Write a synthetic recording with known per-stage delays (no root needed).
    Synth(SynthArgs),
    /// Ask running flight recorders (started with --keep) to save their window now.
    Trigger(TriggerArgs),
    /// Shell completions, printed to standard output: `tcptape-record completions bash >
    /// /etc/bash_completion.d/tcptape-record`.
    Completions(tcptape_common::shell_integration::CompletionsArgs),
    /// The manual page (roff), printed to standard output: `tcptape-record man >
    /// /usr/local/share/man/man1/tcptape-record.1`; `tcptape-record man check` for a
    /// subcommand's.
    Man(tcptape_common::shell_integration::ManArgs),
}

/// Options of a live recording.
#[derive(Debug, Args, Default)]
pub struct RecordArgs {
    /// Output: a path ending in `.parquet` for one file, anything else for a directory of
    /// segments. Must not exist yet.
    #[arg(short, long, value_name = "PATH", conflicts_with = "into")]
    pub output: Option<PathBuf>,
    /// Output into a recording set: `DIR/host=NAME/date=YYYY-MM-DD/tcptape-TIME.parquet` (or a
    /// directory of segments with --keep), a Hive-style layout that DuckDB, Spark and
    /// `tcptape report DIR` read as one set of many hosts' recordings.
    #[arg(long, value_name = "DIR")]
    pub into: Option<PathBuf>,
    /// Stop after this long (e.g. `30s`, `5m`). Default: until Ctrl-C or SIGTERM.
    #[arg(short, long, value_parser = parse_duration, value_name = "TIME")]
    pub duration: Option<Duration>,
    /// Keep only TCP traffic with this port on either side (repeatable, or comma-separated:
    /// `-p 80,443`).
    #[arg(short, long = "port", value_name = "PORT", value_delimiter = ',')]
    pub ports: Vec<u16>,
    /// Keep only traffic with an address in this range on either side (e.g. `10.0.0.0/8`,
    /// `fd00::/8`; repeatable or comma-separated). A dual-stack socket talking IPv4 is IPv4
    /// here, as its packets.
    #[arg(long = "addr", value_name = "CIDR", value_delimiter = ',')]
    pub addrs: Vec<String>,
    /// Keep only the flows of this process (repeatable or comma-separated): its sockets' events
    /// and their packets, softirq ones included. A connection it opens is kept from its SYN, one
    /// to a port it listens on from the client's SYN; a kept flow is kept whole, the peer's
    /// events included when the peer is on this host.
    #[arg(long = "pid", value_name = "PID", value_delimiter = ',')]
    pub pids: Vec<u32>,
    /// Keep only this network namespace, by inode (`stat -L -c %i /proc/PID/ns/net`).
    #[arg(long = "netns", value_name = "INODE")]
    pub netns: Vec<u32>,
    /// Keep only the flows of sockets in this cgroup (v2) or below it (repeatable): a path below
    /// the cgroup root as /proc/PID/cgroup shows it (`/system.slice/nginx.service`,
    /// `/kubepods.slice/…/cri-containerd-ID.scope`), or into its mount. A kept flow is kept whole,
    /// its packets and the peer's socket on this host included.
    #[arg(long = "cgroup", value_name = "PATH")]
    pub cgroups: Vec<String>,
    /// Keep only packets on this interface (repeatable or comma-separated).
    #[arg(long = "iface", value_name = "NAME", value_delimiter = ',')]
    pub ifaces: Vec<String>,
    /// Record only these stages (repeatable, or comma-separated): a stage name, or `rx`, `tx`,
    /// `tcp` for a path's stages. `--stage tcp` records retransmits, congestion and socket state
    /// changes, drops and buffer pressure, not the packets, at a fraction of the cost. The other
    /// stages are not attached, except with `--pid` or `--iface`, which admit flows from every
    /// stage's events.
    #[arg(long = "stage", value_name = "STAGE", value_delimiter = ',', value_parser = crate::stage_selection::parse_stage_arg)]
    pub stages: Vec<Vec<tcptape_common::Stage>>,
    /// Keep 1 in N flows, every stage of a kept flow (counters stay exact for all flows).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub sample: u32,
    /// Keep the recorded rate under this many events per second (`50k`, `2M`) by keeping fewer
    /// flows, in the kernel, while the rate is over it: a kept flow is kept whole (every stage,
    /// both directions), the rate in force over time is stored, and the analyzer scales its
    /// counts by it. `off` records every flow (what --sample keeps) whatever it costs.
    #[arg(long, default_value = "100k", value_parser = crate::sampling_budget::parse_budget, value_name = "EVENTS/S")]
    pub budget: crate::sampling_budget::Budget,
    /// Stop when the recording reaches this size on disk (e.g. `500M`, `2G`).
    #[arg(long, default_value = "1G", value_parser = parse_size, value_name = "SIZE")]
    pub max_size: u64,
    /// Stop after this many events.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_events: Option<u64>,
    /// Finish a segment at least this often, so a killed recorder loses at most this much.
    #[arg(long, default_value_t = 5, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub segment_secs: u64,
    /// Rolling window: keep only the last WINDOW of the recording on disk, a time (`10m`) or a
    /// size (`2G`), deleting the oldest segments; the recording goes on until stopped, and
    /// `--max-size` no longer stops it. Needs a directory output (a path not ending in
    /// `.parquet`).
    #[arg(long, value_name = "WINDOW", value_parser = parse_keep)]
    pub keep: Option<KeepWindow>,
    /// With --keep: save the window when CONDITION holds (repeatable): `retrans>200/s`,
    /// `drops>50/s`, `drops[REASON]>10/s`, `srtt>100ms`, `stage:FROM→TO:p99>20ms`. SIGUSR1 and
    /// `tcptape-record trigger` save it too. The window and what follows for --after go to
    /// DIR/saved/TIME-REASON/, a complete recording.
    #[arg(long = "trigger", value_name = "CONDITION", value_parser = crate::trigger_conditions::parse_condition, requires = "keep")]
    pub triggers: Vec<crate::trigger_conditions::Condition>,
    /// How long recording goes on into a saved window after its trigger.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub after: Duration,
    /// Triggers within this long of the last one are ignored, so a storm saves one window.
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub hold_off: Duration,
    /// Saved windows kept at most; the oldest is deleted first.
    #[arg(long, default_value_t = 5, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_saved: u32,
    /// Ring-buffer memory, e.g. `16M`: split into one ring per online CPU, each the largest
    /// power of two that fits its share (at least a page).
    #[arg(long, default_value = "16M", value_parser = parse_size, value_name = "SIZE")]
    pub ring_size: u64,
    /// CPU priority once the programs are attached. `idle` (SCHED_IDLE) drains and writes only
    /// on CPU time the host's own work leaves unused, so recording never delays that work; on
    /// a host whose CPUs stay saturated the recorder then falls behind, and what the rings
    /// cannot hold is counted as lost. `normal` competes with the host's work like any process.
    #[arg(long, value_enum, default_value_t = Priority::Idle, value_name = "PRIORITY")]
    pub priority: Priority,
    /// Never attach through fentry (BPF trampolines): the function stages use kprobes instead,
    /// where the kernel has them.
    #[arg(long)]
    pub no_fentry: bool,
    /// Anonymize addresses (keyed, prefix-preserving), and drop pid and comm.
    #[arg(long)]
    pub anonymize: bool,
    /// Print nothing but errors.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print the attach plan and segment details.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Options of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Plan without fentry, as `tcptape-record --no-fentry` would record.
    #[arg(long)]
    pub no_fentry: bool,
    /// Also measure what a recording would cost now: attach every stage for DURATION (default
    /// 5s), count events and the programs' run time, and print per stage events/s, ns per
    /// run and kernel CPU, the recorder's CPU and disk at this rate, and advice.
    #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "5s",
          value_parser = parse_duration)]
    pub cost: Option<Duration>,
}

/// Options of `trigger`.
#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// Why, stored in the saved window and shown by `tcptape info` and `report`.
    #[arg(long, default_value = "trigger command", value_name = "TEXT")]
    pub reason: String,
    /// Only the recorder of this process (default: every running one).
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
}

/// Options of `synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output path (`.parquet` for one file, else a directory). Must not exist yet.
    #[arg(short, long, value_name = "PATH")]
    pub output: PathBuf,
    /// Number of events.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub events: u64,
    /// Random seed: the same seed gives the same events.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,
    /// Traffic mix: `bulk` (64 KB segments through a queue) or `rr` (small requests, slow reader).
    #[arg(long, default_value = "bulk", value_name = "MIX")]
    pub mix: tcptape_common::synth::Mix,
    /// The host name the recording says it was made on (default `synthetic`), to make sets of
    /// several hosts' recordings.
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Concurrent flows (default: 4 for bulk, 8 for rr).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub flows: Option<u32>,
    /// Finish a segment every this many seconds of event time.
    #[arg(long, default_value_t = 5, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub segment_secs: u64,
    /// Pace the events at this many per second of wall-clock time, as a live recording
    /// would arrive (for demos and crash tests). Default: as fast as possible.
    #[arg(long, value_name = "EVENTS_PER_SEC", value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: Option<u64>,
    /// Print nothing.
    #[arg(short, long)]
    pub quiet: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30s, 5m, 1h)"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

/// How much of a recording a rolling window keeps on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepWindow {
    /// The segments that end within this long of the newest event.
    Time(Duration),
    /// The newest segments that fit in this many bytes.
    Size(u64),
}

impl std::fmt::Display for KeepWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeepWindow::Time(d) => write!(f, "{}", humantime::format_duration(*d)),
            KeepWindow::Size(b) => write!(f, "{}", bytesize::ByteSize::b(*b)),
        }
    }
}

/// A size has an upper-case unit (`500M`, `2G`, `1GiB`), a time a lower-case one (`30s`, `10m`):
/// `M` would otherwise be read as months.
fn parse_keep(s: &str) -> Result<KeepWindow, String> {
    let help = "a time (30s, 10m, 1h) or a size with an upper-case unit (500M, 2G)";
    if s.trim_end().ends_with(|c: char| c.is_ascii_uppercase()) {
        return parse_size(s)
            .map(KeepWindow::Size)
            .map_err(|_| help.to_string());
    }
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be longer than zero".into()),
        Ok(d) => Ok(KeepWindow::Time(d)),
        Err(_) => Err(help.into()),
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    let n = s
        .parse::<bytesize::ByteSize>()
        .map_err(|e| format!("{e} (examples: 16M, 500M, 2G)"))?
        .as_u64();
    if n == 0 {
        return Err("must be larger than zero".into());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tcptape-record").chain(args.iter().copied()))
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn record_flags_parse() {
        let cli = parse(&[
            "-o",
            "x.parquet",
            "--duration",
            "30s",
            "--port",
            "443",
            "-p",
            "80",
            "--addr",
            "10.0.0.0/8",
            "--pid",
            "7",
            "--netns",
            "4026531840",
            "--iface",
            "eth0",
            "--sample",
            "100",
            "--max-size",
            "2G",
            "--max-events",
            "5",
            "--segment-secs",
            "2",
            "--ring-size",
            "32M",
            "--priority",
            "normal",
            "--anonymize",
            "--no-fentry",
            "-v",
        ])
        .unwrap();
        let r = cli.record;
        assert_eq!(r.output.unwrap(), PathBuf::from("x.parquet"));
        assert_eq!(r.duration, Some(Duration::from_secs(30)));
        assert_eq!(r.ports, vec![443, 80]);
        assert_eq!(r.addrs, vec!["10.0.0.0/8"]);
        assert_eq!(r.pids, vec![7]);
        assert_eq!(r.netns, vec![4026531840]);
        assert_eq!(r.ifaces, vec!["eth0"]);
        assert_eq!(r.sample, 100);
        assert_eq!(r.max_size, 2_000_000_000);
        assert_eq!(r.max_events, Some(5));
        assert_eq!(r.segment_secs, 2);
        assert_eq!(r.ring_size, 32_000_000);
        assert_eq!(r.priority, Priority::Normal);
        assert!(r.anonymize && r.no_fentry && r.verbose && !r.quiet);
    }

    #[test]
    fn filter_lists_may_be_comma_separated() {
        let r = parse(&[
            "-o",
            "x",
            "-p",
            "80,443",
            "--port",
            "22",
            "--addr",
            "10.0.0.0/8,fd00::/8",
            "--pid",
            "7,9",
            "--iface",
            "eth0,eth1",
        ])
        .unwrap()
        .record;
        assert_eq!(r.ports, vec![80, 443, 22]);
        assert_eq!(r.addrs, vec!["10.0.0.0/8", "fd00::/8"]);
        assert_eq!(r.pids, vec![7, 9]);
        assert_eq!(r.ifaces, vec!["eth0", "eth1"]);
        assert!(parse(&["-o", "x", "-p", "80,"]).is_err());
    }

    #[test]
    fn defaults_bound_a_recording() {
        let r = parse(&["-o", "x"]).unwrap().record;
        assert_eq!(r.max_size, 1_000_000_000);
        assert_eq!(r.segment_secs, 5);
        assert_eq!(r.sample, 1);
        assert_eq!(
            r.budget,
            crate::sampling_budget::Budget(Some(crate::sampling_budget::DEFAULT_BUDGET))
        );
        assert_eq!(crate::sampling_budget::DEFAULT_BUDGET, 100_000);
        assert_eq!(r.duration, None);
        assert_eq!(r.priority, Priority::Idle);
    }

    #[test]
    fn budgets_are_given_with_units_or_turned_off() {
        let b = |v: &str| parse(&["-o", "x", "--budget", v]).map(|c| c.record.budget);
        assert_eq!(
            b("50k").unwrap(),
            crate::sampling_budget::Budget(Some(50_000))
        );
        assert_eq!(b("off").unwrap(), crate::sampling_budget::Budget(None));
        assert!(b("10").is_err());
        assert!(b("lots").is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            &["-o", "x", "--sample", "0"][..],
            &["-o", "x", "--duration", "0s"],
            &["-o", "x", "--duration", "soon"],
            &["-o", "x", "--max-size", "lots"],
            &["-o", "x", "--max-events", "0"],
            &["-o", "x", "--port", "70000"],
            &["-o", "x", "--segment-secs", "0"],
            &["-o", "x", "-q", "-v"],
            &["-o", "x", "--priority", "high"],
            &["synth", "-o", "x", "--mix", "weird"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn subcommands_parse() {
        let cli = parse(&[
            "synth",
            "-o",
            "s.parquet",
            "--events",
            "10",
            "--seed",
            "3",
            "--mix",
            "rr",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Synth(s)) => {
                assert_eq!((s.events, s.seed), (10, 3));
                assert_eq!(s.mix, tcptape_common::synth::Mix::RequestResponse);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(
            matches!(parse(&["check", "--json"]).unwrap().command, Some(Command::Check(c)) if c.json && c.cost.is_none())
        );
        let cost = |args: &[&str]| match parse(args).unwrap().command {
            Some(Command::Check(c)) => c.cost,
            other => panic!("parsed as {other:?}"),
        };
        assert_eq!(cost(&["check", "--cost"]), Some(Duration::from_secs(5)));
        assert_eq!(
            cost(&["check", "--cost", "2s"]),
            Some(Duration::from_secs(2))
        );
        assert!(parse(&["check", "--cost", "0s"]).is_err());
        let keep = |v: &str| parse(&["-o", "d", "--keep", v]).map(|c| c.record.keep);
        assert_eq!(
            keep("10m").unwrap(),
            Some(KeepWindow::Time(Duration::from_secs(600)))
        );
        assert_eq!(keep("2M").unwrap(), Some(KeepWindow::Size(2_000_000)));
        assert!(keep("0s").is_err() && keep("soon").is_err());
    }
}
