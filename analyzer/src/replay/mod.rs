//! `tcptape replay REC`: the events of a recording in time order, like `perf script`, as text
//! or JSON lines; `--journeys` prints each packet's path with the time between hops; `--speed`
//! replays at a multiple of the recorded pace.
//!
//! Events stream from the Parquet reader one batch at a time through the report's selection
//! ([`crate::selection_args`]) and a bounded reorder buffer ([`order`]), so printing a recording of any size
//! holds only a window of events in memory. Journeys are built in memory, as for the report.

pub mod journeys;
pub mod order;
pub mod pace;
pub mod text;

use crate::exit_code;
use crate::selection_args::{self, SelectionArgs};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use tcptape_common::record::Record;
use tcptape_common::Recording;

/// Output formats of `replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReplayFormat {
    /// One line per event (per journey hop with `--journeys`).
    Text,
    /// One JSON object per line: the event with its non-null columns (with `--journeys`: one
    /// journey with its hops).
    Jsonl,
}

/// Options of `replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The recording.
    #[arg(value_name = "REC")]
    pub rec: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReplayFormat::Text)]
    pub format: ReplayFormat,
    /// Print each packet's journey (its hops and the time between them) instead of events.
    #[arg(long)]
    pub journeys: bool,
    /// Replay at this multiple of the recorded pace (1 = as recorded, 10 = ten times faster).
    /// Default: as fast as possible.
    #[arg(long, value_name = "X", value_parser = pace::parse_speed)]
    pub speed: Option<f64>,
    /// Which events.
    #[command(flatten)]
    pub select: SelectionArgs,
    /// Events up to this far out of time order are put back in order (the recorder writes them
    /// as the ring buffer delivers them, a few microseconds apart across CPUs).
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub reorder_window: std::time::Duration,
    /// With `--journeys`: two hops of one packet id further apart than this are two packets.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub max_hop_gap: std::time::Duration,
}

/// The most events the reorder buffer holds, whatever the window.
const MAX_HELD: usize = 1 << 20;

/// Runs `replay`.
pub fn run(args: &ReplayArgs, out: &mut impl Write) -> anyhow::Result<i32> {
    let rec = Recording::open(&args.rec)?;
    let start = rec.meta().start_ns;
    let sel = args.select.selection(std::slice::from_ref(&rec))?;
    let mut pace = pace::Pace::new(args.speed);
    let jsonl = args.format == ReplayFormat::Jsonl;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    if args.journeys {
        let j = crate::journeys::per_packet::journeys(
            std::slice::from_ref(&rec),
            &sel,
            args.max_hop_gap.as_nanos() as u64,
        )?;
        let mut packets = crate::journeys::per_packet::packets(&j)?;
        if !sel.stages.is_empty() {
            packets.retain(|p| p.hops.iter().any(|h| sel.stages.contains(&h.stage)));
        }
        journeys::write(&packets, start, jsonl, &mut pace, &mut out)?;
        out.flush()?;
        return Ok(exit_code::OK);
    }
    let mut reorder = order::Reorder::new(args.reorder_window.as_nanos() as u64, MAX_HELD);
    let mut ready = Vec::new();
    let mut emit = |ready: &mut Vec<Record>, out: &mut dyn Write| -> std::io::Result<()> {
        for r in ready.drain(..) {
            pace.wait(r.ts_ns);
            if jsonl {
                serde_json::to_writer(&mut *out, &r)?;
                writeln!(out)?;
            } else {
                writeln!(out, "{}", text::line(&r, start))?;
            }
            if pace.active() {
                out.flush()?;
            }
        }
        Ok(())
    };
    for batch in rec.batches(None) {
        let batch = batch?;
        let rows = Record::from_batch(&batch)
            .map_err(|e| anyhow::anyhow!("{}: {e}", rec.path.display()))?;
        for r in rows {
            if selection_args::matches(&sel, &r) {
                reorder.push(r.ts_ns, r, &mut ready);
            }
        }
        emit(&mut ready, &mut out)?;
    }
    reorder.finish(&mut ready);
    emit(&mut ready, &mut out)?;
    out.flush()?;
    if reorder.late > 0 {
        tcptape_common::note!(
            "tcptape: {} events were more than {:?} out of time order and are printed late \
             (raise --reorder-window)",
            reorder.late,
            args.reorder_window
        );
    }
    Ok(exit_code::OK)
}
