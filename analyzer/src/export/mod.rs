//! `tcptape export REC --format perfetto -o trace.json`: a trace that ui.perfetto.dev and
//! chrome://tracing open, built from the report's journeys ([`crate::journeys::per_packet`]) so that every
//! stage slice lasts the stage delta the report aggregates.
//!
//! Several hosts: `tcptape export A.parquet B.parquet -o trace.json` puts every host's journeys
//! on one time line, each host's clock read on the first host's through the offset estimated
//! from the traffic between them ([`crate::journeys::cross_host`]); each host's flows are grouped and
//! named after it.
//!
//! Large recordings: `--limit` keeps the first N journeys (in time order) and `--sample` one in
//! N, so the file stays loadable (a browser handles a few hundred thousand events).

pub mod pcapng;
pub mod perfetto;
pub mod trace_writer;
pub mod tracks;

use crate::exit_code;
use crate::journeys::cross_host::{self, ClockAlignment};
use crate::journeys::per_packet::Packet;
use crate::queries::select::Selection;
use crate::selection_args::SelectionArgs;
use anyhow::Context;
use clap::{Args, ValueEnum};
use perfetto::Written;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use tcptape_common::Recording;
use trace_writer::TraceWriter;
use tracks::Tracks;

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Chrome JSON trace-event format, for ui.perfetto.dev and chrome://tracing.
    Perfetto,
    /// pcap-ng, for Wireshark and tshark: one packet per event at the driver stages (or those
    /// of `--stage`), IP and TCP headers as recorded, payload left out, each packet's journey
    /// and stage latencies in its comment.
    Pcapng,
}

/// Options of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The recording (a file or a directory recording), or the recordings of several hosts
    /// (shown on one time line: clocks aligned from the traffic between the hosts, else from
    /// their wall clocks). Glob patterns are expanded.
    #[arg(value_name = "REC", required = true)]
    pub recs: Vec<String>,
    /// Trace format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Perfetto)]
    pub format: ExportFormat,
    /// Write the trace to this file (`-`: standard output).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Export at most this many journeys of each host, the first in time order (0: all;
    /// default 20000 for perfetto, all for pcapng, where it counts packets). The TCP events
    /// (retransmits, drops, cwnd) are kept for the time those journeys cover.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Export one journey in N (before `--limit`).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub sample: u64,
    /// Which events.
    #[command(flatten)]
    pub select: SelectionArgs,
    /// Two hops of one packet id further apart than this are two packets.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub max_hop_gap: std::time::Duration,
}

/// One host's journeys, selected, sampled and limited.
struct HostJourneys {
    all: Vec<Packet>,
    sel: Selection,
    keep: Vec<usize>,
    window: Option<(u64, u64)>,
    limited: bool,
}

fn host_journeys(
    args: &ExportArgs,
    recs: &[Recording],
    sel: Selection,
) -> anyhow::Result<HostJourneys> {
    let start = recs.iter().map(|r| r.meta().start_ns).min().unwrap_or(0);
    let j = crate::journeys::per_packet::journeys(recs, &sel, args.max_hop_gap.as_nanos() as u64)?;
    let mut all = crate::journeys::per_packet::packets(&j)?;
    drop(j);
    if !sel.stages.is_empty() {
        all.retain(|p| p.hops.iter().any(|h| sel.stages.contains(&h.stage)));
    }
    let mut keep: Vec<usize> = (0..all.len())
        .filter(|i| (*i as u64).is_multiple_of(args.sample))
        .collect();
    let limit = args.limit.unwrap_or(PERFETTO_LIMIT);
    let limited = limit > 0 && keep.len() > limit;
    if limited {
        keep.truncate(limit);
    }
    // With a limit, TCP events are kept for the time the exported journeys cover.
    let window = limited.then(|| {
        let kept = keep.iter().map(|&i| &all[i]);
        let a = kept.clone().map(|p| p.hops[0].ts_ns).min().unwrap_or(start);
        let b = kept
            .map(|p| p.hops[p.hops.len() - 1].ts_ns)
            .max()
            .unwrap_or(start);
        (a, b)
    });
    Ok(HostJourneys {
        all,
        sel,
        keep,
        window,
        limited,
    })
}

/// Where each host's clock reads 0 on the trace: the first host's start, every other host's
/// clock read on the first host's.
fn origins(hosts: &[(String, Vec<Recording>)]) -> anyhow::Result<Vec<(i64, &'static str)>> {
    let start0 = hosts[0]
        .1
        .iter()
        .map(|r| r.meta().start_ns)
        .min()
        .unwrap_or(0) as i64;
    if hosts.len() == 1 {
        return Ok(vec![(start0, ClockAlignment::Reference.name())]);
    }
    let edges = hosts
        .iter()
        .map(|(h, recs)| Ok((h.clone(), cross_host::WireEdge::read(recs)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let pairs = cross_host::pairs(&edges);
    let names: Vec<String> = hosts.iter().map(|(h, _)| h.clone()).collect();
    let walls: Vec<i64> = hosts
        .iter()
        .map(|(_, recs)| recs[0].meta().mono_to_wall_ns)
        .collect();
    let to_first = cross_host::to_first_host(&names, &walls, &pairs);
    for ((h, _), (_, how)) in hosts.iter().zip(&to_first) {
        if *how == ClockAlignment::WallClock {
            tcptape_common::note!(
                "tcptape: {h} shares no traffic in both directions with {}: its clock is \
                 aligned by the wall clocks of the recordings",
                names[0]
            );
        }
    }
    // t on host i reads t + shift on the first host: its 0 is the first host's start − shift.
    Ok(to_first
        .into_iter()
        .map(|(shift, how)| (start0 - shift, how.name()))
        .collect())
}

/// Journeys a Perfetto trace holds by default: what a browser loads comfortably.
const PERFETTO_LIMIT: usize = 20_000;

/// Writes to `-o` (standard output for `-`), with the file named in errors.
fn to_output<T>(
    args: &ExportArgs,
    out: &mut impl Write,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    if args.output.as_os_str() == "-" {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, out);
        write(&mut w)
    } else {
        let path = &args.output;
        let f = std::fs::File::create(path)
            .with_context(|| format!("{}: cannot create", path.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 16, f);
        write(&mut w).with_context(|| format!("{}: cannot write", path.display()))
    }
}

/// `export --format pcapng`.
fn run_pcapng(
    args: &ExportArgs,
    hosts: &[(String, Vec<Recording>)],
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    // Selections first: a bad --cgroup or --stage creates no file.
    let sels = args
        .select
        .selections(hosts.iter().map(|(_, recs)| recs.as_slice()))?;
    for ((_, recs), sel) in hosts.iter().zip(&sels) {
        pcapng::check(recs, sel)?;
    }
    let written = to_output(args, out, |w| {
        let mut export = pcapng::PcapExport::new(w)?;
        for ((host, recs), sel) in hosts.iter().zip(&sels) {
            export.host(&pcapng::HostPackets {
                host: (hosts.len() > 1).then_some(host.as_str()),
                recs,
                sel,
                max_hop_gap_ns: args.max_hop_gap.as_nanos() as u64,
                limit: args.limit.unwrap_or(0),
            })?;
        }
        export.finish()
    })?;
    tcptape_common::note!(
        "tcptape: exported {} packets on {} interfaces ({} with their journey in the comment){}",
        written.packets,
        written.interfaces,
        written.in_journeys,
        if written.limited > 0 {
            format!(
                "; --limit reached: {} packets left out (use --from/--to)",
                written.limited
            )
        } else {
            String::new()
        }
    );
    Ok(exit_code::OK)
}

/// Runs `export`.
pub fn run(args: &ExportArgs, out: &mut impl Write) -> anyhow::Result<i32> {
    let paths = crate::inputs::expand(&args.recs)?;
    let hosts = crate::inputs::open_by_host(&paths)?;
    if args.format == ExportFormat::Pcapng {
        return run_pcapng(args, &hosts, out);
    }
    let origins = origins(&hosts)?;
    let sels = args
        .select
        .selections(hosts.iter().map(|(_, recs)| recs.as_slice()))?;
    let journeys = hosts
        .iter()
        .zip(sels)
        .map(|((_, recs), sel)| host_journeys(args, recs, sel))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let write = |out: &mut dyn Write| -> anyhow::Result<Written> {
        let mut w = TraceWriter::new(out)?;
        let mut written = Written::default();
        let mut facts = Vec::new();
        for (i, (((host, recs), hj), (origin, clock))) in
            hosts.iter().zip(&journeys).zip(&origins).enumerate()
        {
            let kept: Vec<&Packet> = hj.keep.iter().map(|&k| &hj.all[k]).collect();
            let part = perfetto::HostPart {
                host: (hosts.len() > 1).then_some(host.as_str()),
                recs,
                sel: &hj.sel,
                packets: &kept,
                journeys_total: hj.all.len() as u64,
                window: hj.window,
                origin_ns: *origin,
            };
            // Hosts' pids stay apart (and sorted by host) with a million flows to each.
            let mut tracks = Tracks::after(i as u64 * 1_000_000);
            perfetto::write_host(&mut w, &mut tracks, &part, &mut written)?;
            facts.push(perfetto::host_facts(recs, *origin, clock));
        }
        written.events = w.events;
        w.finish(json!({
            "tool": "tcptape",
            "hosts": facts,
            "note": "ts are µs since the first host's start; other hosts' clocks are read on \
                     the first host's; stage slices last the report's stage deltas",
            "journeys_total": written.journeys_total,
            "journeys_exported": written.journeys,
        }))?;
        Ok(written)
    };
    let written = to_output(args, out, write)?;
    let limited = journeys.iter().any(|j| j.limited);
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
                args.limit.unwrap_or(PERFETTO_LIMIT)
            )
        } else {
            String::new()
        }
    );
    Ok(exit_code::OK)
}
