//! `tcptape diff BASE CAND`: the report's per-stage figures of two recordings side by side,
//! a statistical verdict per pair of stages that tells a real shift from noise, thresholds for
//! CI (`--fail-on`), the exit code 1 on a regression and 3 when a stage that matters cannot be
//! decided.
//!
//! Both sides go through [`crate::report::build`], so the figures are the ones `tcptape report`
//! shows, and through [`crate::journeys::per_packet`] for the packets behind them, which the tests of
//! [`stats`] compare: time blocks from 100 packets a side, a permutation test on the packets
//! below that, the runs' medians when a side has several runs (`--base A1 A2 --candidate B1
//! B2`). Recordings of several hosts are compared host by host, and the wire between them
//! ([`hosts`]). Differences of environment or attach plan are stated at the top
//! ([`environment`]); they do not stop the comparison.

pub mod compare;
pub mod environment;
pub mod hosts;
pub mod junit;
pub mod model;
pub mod render;
pub mod stats;
pub mod threshold;

use crate::exit_code;
use crate::progress::Steps;
use crate::report::{self, Options};
use crate::selection_args::SelectionArgs;
use anyhow::Context;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use threshold::Threshold;

/// Output formats of `diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    /// Readable tables for a terminal.
    Table,
    /// JSON with a stable shape (`schema` 1).
    Json,
    /// Markdown for a pull-request comment, the verdict first (GitHub's Markdown).
    Markdown,
    /// JUnit XML: one test case per pair of stages (and per threshold), failed on a
    /// regression, an error when undecided, so CI systems list them as tests.
    Junit,
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let v = match s.strip_suffix('%') {
        Some(p) => p.parse::<f64>().map(|v| v / 100.0),
        None => s.parse::<f64>(),
    }
    .map_err(|_| format!("'{s}' is not a fraction (0.1 or 10%)"))?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("'{s}' is not between 0 and 1 (0% and 100%)"))
    }
}

/// Options of `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The base recording (before the change).
    #[arg(
        value_name = "BASE",
        required_unless_present = "base_set",
        conflicts_with = "base_set"
    )]
    pub base: Option<String>,
    /// The candidate recording (after the change).
    #[arg(value_name = "CAND", required_unless_present = "base_set")]
    pub cand: Option<String>,
    /// Base recordings, instead of BASE: several runs of the scenario (each run a recording)
    /// so that the verdict weighs the change against how much runs differ, and/or the
    /// recordings of several hosts (compared host by host, and the wire between them). Glob
    /// patterns are expanded.
    #[arg(long = "base", id = "base_set", value_name = "REC", num_args = 1.., requires = "cand_set")]
    pub base_set: Vec<String>,
    /// Candidate recordings, with `--base`.
    #[arg(long = "candidate", id = "cand_set", value_name = "REC", num_args = 1.., requires = "base_set")]
    pub cand_set: Vec<String>,
    /// A stage that matters but that no test can decide (too few packets, or recorded on one
    /// side only) does not fail the run (exit 0 instead of 3).
    #[arg(long)]
    pub allow_undecided: bool,
    /// Fail (exit 1) when this threshold is crossed beyond noise: `[SCOPE:]METRIC>LIMIT` or
    /// `<LIMIT` (repeatable). SCOPE: `FROM->TO`, a stage (pairs ending there) or `e2e`; none =
    /// every row. METRIC: p50 p90 p99 p999 max mean count, or retransmit_rate, lost. LIMIT:
    /// `+10%` / `-5%` (relative change), `+2ms` (absolute change), `5ms` (the candidate's
    /// level). Examples: 'p99>+10%', 'rx_tcp_est->rx_app:p50>+2ms', 'lost>0'. With thresholds,
    /// only they decide the exit code; without, a stage found SLOWER by at least
    /// `--fail-effect` and `--fail-shift` does.
    #[arg(long, value_name = "EXPR")]
    pub fail_on: Vec<Threshold>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Table)]
    pub format: DiffFormat,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Significance level of the Mann–Whitney tests, for all pairs together (each pair is
    /// tested at ALPHA / pairs).
    #[arg(long, default_value_t = 0.01, value_parser = parse_fraction)]
    pub alpha: f64,
    /// Smallest relative shift of a stage's median that the verdict calls a change
    /// (`10%` or `0.1`).
    #[arg(long, value_name = "FRACTION", default_value = "10%", value_parser = parse_fraction)]
    pub min_effect: f64,
    /// Smallest absolute shift of a stage's median that the verdict calls a change.
    #[arg(long, value_name = "DURATION", default_value = "1us", value_parser = humantime::parse_duration)]
    pub min_shift: std::time::Duration,
    /// Without `--fail-on`: a stage found SLOWER is a regression (exit 1) when its median rose
    /// by at least this much. Two runs of one scenario on a real host differ by up to ~25% in
    /// stages that depend on buffer sizes (a bulk sender's time in the socket buffer).
    #[arg(long, value_name = "FRACTION", default_value = "30%", value_parser = parse_fraction)]
    pub fail_effect: f64,
    /// Without `--fail-on`: a SLOWER stage is a regression only when its median also rose by
    /// at least this long. Stages of a few microseconds differ by a few microseconds between
    /// runs (scheduling, CPU frequency).
    #[arg(long, value_name = "DURATION", default_value = "10us", value_parser = humantime::parse_duration)]
    pub fail_shift: std::time::Duration,
    /// Confidence level of the quantile intervals that keep a percentile threshold from firing
    /// on noise.
    #[arg(long, default_value_t = 0.99, value_parser = parse_fraction)]
    pub confidence: f64,
    /// Which events, on both sides (`--from`/`--to` from each recording's start).
    #[command(flatten)]
    pub select: SelectionArgs,
    /// Two hops of one packet id further apart than this are taken as two packets.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub max_hop_gap: std::time::Duration,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Runs `diff`; the exit code is 1 on a regression, 3 when undecided.
pub fn run(args: &DiffArgs, out: &mut impl Write) -> anyhow::Result<i32> {
    let (base, cand) = match (&args.base, &args.cand) {
        (Some(b), Some(c)) => (vec![PathBuf::from(b)], vec![PathBuf::from(c)]),
        (Some(_), None) | (None, Some(_)) if args.base_set.is_empty() => {
            anyhow::bail!("diff needs BASE and CAND, or --base ... --candidate ...")
        }
        _ => (
            crate::inputs::expand(&args.base_set)?,
            crate::inputs::expand(&args.cand_set)?,
        ),
    };
    let (base, cand) = (
        hosts::hosts_or_runs(crate::inputs::open_by_host(&base)?),
        hosts::hosts_or_runs(crate::inputs::open_by_host(&cand)?),
    );
    // The selection of each side: times count from that side's start.
    let opts = |recs: &[tcptape_common::Recording]| -> anyhow::Result<Options> {
        Ok(Options {
            selection: args.select.selection(recs)?,
            max_hop_gap_ns: args.max_hop_gap.as_nanos() as u64,
            pictures: false,
            pooling: false,
        })
    };
    let settings = model::Settings {
        alpha: args.alpha,
        min_effect: args.min_effect,
        min_shift_ns: args.min_shift.as_nanos() as u64,
        fail_effect: args.fail_effect,
        fail_shift_ns: args.fail_shift.as_nanos() as u64,
        confidence: args.confidence,
        allow_undecided: args.allow_undecided,
    };
    let outcome = if base.len() == 1 && cand.len() == 1 {
        let steps = Steps::new(2 * report::STEPS, args.quiet);
        let (b, c) = (base.into_iter().next(), cand.into_iter().next());
        let (b, c) = (
            b.map(|h| h.1).unwrap_or_default(),
            c.map(|h| h.1).unwrap_or_default(),
        );
        let b = compare::load(b.clone(), &opts(&b)?, &steps)?;
        let c = compare::load(c.clone(), &opts(&c)?, &steps)?;
        drop(steps);
        let d = compare::compare(&b, &c, &args.fail_on, settings, true)?;
        Outcome::One(Box::new(d))
    } else {
        Outcome::Hosts(hosts::compare(
            base,
            cand,
            &opts,
            &args.fail_on,
            settings,
            args.quiet,
        )?)
    };
    match &args.output {
        None => write(args.format, &outcome, out)?,
        Some(path) => {
            let f = std::fs::File::create(path)
                .with_context(|| format!("{}: cannot create", path.display()))?;
            let mut w = std::io::BufWriter::new(f);
            write(args.format, &outcome, &mut w)?;
            w.flush()
                .with_context(|| format!("{}: cannot write", path.display()))?;
        }
    }
    let (regression, undecided) = match &outcome {
        Outcome::One(d) => (d.regression, !d.undecided.is_empty()),
        Outcome::Hosts(h) => (h.regression, !h.undecided.is_empty()),
    };
    Ok(if regression {
        exit_code::REGRESSION
    } else if undecided && !args.allow_undecided {
        exit_code::UNDECIDED
    } else {
        exit_code::OK
    })
}

/// What a comparison found: of one host, or of several.
pub enum Outcome {
    /// One host on each side.
    One(Box<model::Diff>),
    /// Several hosts, compared host by host.
    Hosts(hosts::HostsDiff),
}

fn write(format: DiffFormat, d: &Outcome, out: &mut impl Write) -> anyhow::Result<()> {
    match (format, d) {
        (DiffFormat::Json, Outcome::One(d)) => {
            serde_json::to_writer_pretty(&mut *out, d)?;
            writeln!(out)?;
        }
        (DiffFormat::Json, Outcome::Hosts(h)) => {
            serde_json::to_writer_pretty(&mut *out, h)?;
            writeln!(out)?;
        }
        (DiffFormat::Table, Outcome::One(d)) => render::table(d, out)?,
        (DiffFormat::Table, Outcome::Hosts(h)) => hosts::table(h, out)?,
        (DiffFormat::Markdown, Outcome::One(d)) => render::markdown(d, out)?,
        (DiffFormat::Markdown, Outcome::Hosts(h)) => hosts::markdown(h, out)?,
        (DiffFormat::Junit, Outcome::One(d)) => junit::write(&[("", d.as_ref())], &[], out)?,
        (DiffFormat::Junit, Outcome::Hosts(h)) => {
            let per_host: Vec<(&str, &model::Diff)> =
                h.hosts.iter().map(|d| (d.base.host.as_str(), d)).collect();
            junit::write(&per_host, &h.between_hosts, out)?
        }
    }
    Ok(())
}
