//! `tcptape export REC --format perfetto -o trace.json`: a trace that ui.perfetto.dev and
//! chrome://tracing open, built from the report's journeys ([`crate::per_packet`]) so that every
//! stage slice lasts the stage delta the report aggregates.
//!
//! Large recordings: `--limit` keeps the first N journeys (in time order) and `--sample` one in
//! N, so the file stays loadable (a browser handles a few hundred thousand events).

pub mod perfetto;
pub mod trace_writer;
pub mod tracks;

use crate::exit_code;
use crate::replay::filter::EventFilter;
use anyhow::Context;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use tcptape_common::Recording;

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Chrome JSON trace-event format, for ui.perfetto.dev and chrome://tracing.
    Perfetto,
}

/// Options of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The recording.
    #[arg(value_name = "REC")]
    pub rec: PathBuf,
    /// Trace format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Perfetto)]
    pub format: ExportFormat,
    /// Write the trace to this file (`-`: standard output).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Export at most this many journeys, the first in time order (0: all). The TCP events
    /// (retransmits, drops, cwnd) are kept for the time those journeys cover.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub limit: usize,
    /// Export one journey in N (before `--limit`).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub sample: u64,
    /// Which events.
    #[command(flatten)]
    pub filter: EventFilter,
    /// Two hops of one packet id further apart than this are two packets.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub max_hop_gap: std::time::Duration,
}

/// Runs `export`.
pub fn run(args: &ExportArgs, out: &mut impl Write) -> anyhow::Result<i32> {
    let rec = Recording::open(&args.rec)?;
    let start = rec.meta().start_ns;
    let sel = args.filter.selection(start)?;
    let j = crate::per_packet::journeys(
        std::slice::from_ref(&rec),
        &sel,
        args.max_hop_gap.as_nanos() as u64,
    )?;
    let mut all = crate::per_packet::packets(&j)?;
    drop(j);
    if !sel.stages.is_empty() {
        all.retain(|p| p.hops.iter().any(|h| sel.stages.contains(&h.stage)));
    }
    let total = all.len() as u64;
    let mut kept: Vec<&crate::per_packet::Packet> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| (*i as u64).is_multiple_of(args.sample))
        .map(|(_, p)| p)
        .collect();
    let limited = args.limit > 0 && kept.len() > args.limit;
    if limited {
        kept.truncate(args.limit);
    }
    // With a limit, TCP events are kept for the time the exported journeys cover.
    let window = limited.then(|| {
        let a = kept.iter().map(|p| p.hops[0].ts_ns).min().unwrap_or(start);
        let b = kept
            .iter()
            .map(|p| p.hops[p.hops.len() - 1].ts_ns)
            .max()
            .unwrap_or(start);
        (a, b)
    });
    let written = if args.output.as_os_str() == "-" {
        let w = std::io::BufWriter::with_capacity(1 << 16, out);
        perfetto::write(&rec, &sel, &kept, total, window, w)?
    } else {
        let path = &args.output;
        let f = std::fs::File::create(path)
            .with_context(|| format!("{}: cannot create", path.display()))?;
        let w = std::io::BufWriter::with_capacity(1 << 16, f);
        perfetto::write(&rec, &sel, &kept, total, window, w)
            .with_context(|| format!("{}: cannot write", path.display()))?
    };
    tcptape_common::note!(
        "tcptape: exported {} of {} journeys ({} stage slices, {} retransmit/drop events, {} \
         counter points){}",
        written.journeys,
        written.journeys_total,
        written.stage_slices,
        written.instants,
        written.counters,
        if limited {
            format!(
                "; --limit {} reached: use --from/--to or --sample for other parts",
                args.limit
            )
        } else {
            String::new()
        }
    );
    Ok(exit_code::OK)
}
