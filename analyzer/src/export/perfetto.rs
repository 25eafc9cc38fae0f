//! The Perfetto (Chrome JSON) trace of a recording: each packet's journey as a slice on its
//! flow's track with one child slice per stage (lasting the report's stage delta), the flow's
//! retransmissions and drops as instant events, and its congestion window and smoothed RTT as
//! counters.

use super::trace_writer::TraceWriter;
use super::tracks::{Tracks, TCP_TID};
use crate::per_packet::Packet;
use crate::queries::select::{Flow, Selection};
use crate::replay::filter::matches;
use serde_json::{json, Map, Value};
use std::io::Write;
use tcptape_common::record::Record;
use tcptape_common::{Recording, Stage};

/// What went into a trace.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Written {
    /// Journeys in the recording (after the selection).
    pub journeys_total: u64,
    /// Journeys exported.
    pub journeys: u64,
    /// Stage slices exported.
    pub stage_slices: u64,
    /// Instant events (retransmits, drops).
    pub instants: u64,
    /// Counter events (cwnd, srtt).
    pub counters: u64,
    /// Every event of the trace, metadata included.
    pub events: u64,
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn flow_name(f: &Option<Flow>) -> String {
    match f {
        Some(f) => crate::replay::text::flow_of(f),
        None => "packets without a flow".into(),
    }
}

fn flow_of_record(r: &Record) -> Option<Flow> {
    Some(Flow {
        saddr: r.saddr.clone()?,
        sport: r.sport?,
        daddr: r.daddr.clone()?,
        dport: r.dport?,
    })
}

/// Writes the trace of `packets` (already limited and sampled) and of the TCP events of the
/// same flows between `window` (ns, inclusive), streaming the TCP events from `rec`.
pub fn write(
    rec: &Recording,
    sel: &Selection,
    packets: &[&Packet],
    journeys_total: u64,
    window: Option<(u64, u64)>,
    out: impl Write,
) -> anyhow::Result<Written> {
    let start = rec.meta().start_ns as i64;
    let rel = |ts: u64| ts as i64 - start;
    let mut w = TraceWriter::new(out)?;
    let mut tracks = Tracks::default();
    let mut written = Written {
        journeys_total,
        ..Written::default()
    };
    for p in packets {
        let (pid, new) = tracks.pid(&p.flow);
        if new {
            w.metadata(
                "process_name",
                pid,
                None,
                json!({ "name": format!("flow {}", flow_name(&p.flow)) }),
            )?;
            w.metadata(
                "process_sort_index",
                pid,
                None,
                json!({ "sort_index": pid }),
            )?;
            w.metadata(
                "thread_name",
                pid,
                Some(TCP_TID),
                json!({ "name": "TCP events" }),
            )?;
        }
        let t0 = rel(p.hops[0].ts_ns);
        let t1 = rel(p.hops[p.hops.len() - 1].ts_ns);
        let (tid, new_lane) = tracks.lane(pid, t0, t1);
        if new_lane {
            w.metadata(
                "thread_name",
                pid,
                Some(tid),
                json!({ "name": format!("packets, lane {}", tid - TCP_TID) }),
            )?;
        }
        let mut args = Map::new();
        args.insert("jid".into(), p.jid.into());
        if let Some(s) = p.seq {
            args.insert("seq".into(), s.into());
        }
        if let Some(s) = p.skb {
            args.insert("skb".into(), format!("{s:#018x}").into());
        }
        args.insert("complete".into(), p.complete.into());
        args.insert("hops".into(), p.hops.len().into());
        let name = match p.seq {
            Some(s) => format!("packet seq {s}"),
            None => format!("packet {}", p.jid),
        };
        w.slice(&name, "journey", pid, tid, t0, t1 - t0, &args)?;
        written.journeys += 1;
        for pair in p.hops.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            // The report's delta; it equals b − a by construction, and is what the slice shows.
            let dt = b.dt_ns.unwrap_or(b.ts_ns as i64 - a.ts_ns as i64);
            let mut args = Map::new();
            args.insert("from".into(), a.stage.name().into());
            args.insert("to".into(), b.stage.name().into());
            args.insert("dt_ns".into(), dt.into());
            if let Some(c) = b.cpu {
                args.insert("cpu".into(), c.into());
            }
            w.slice(
                &format!("{}→{}", a.stage.name(), b.stage.name()),
                "stage",
                pid,
                tid,
                rel(a.ts_ns),
                dt,
                &args,
            )?;
            written.stage_slices += 1;
        }
    }
    // TCP events of the exported flows, streamed in file order (counters and instants need not
    // be sorted in this format); the congestion snapshots are the `rx_tcp_est` events that carry
    // the socket's state (`tcp_sample` events in older recordings).
    let kinds = [
        Stage::Retransmit,
        Stage::Drop,
        Stage::TcpSample,
        Stage::RxTcpEst,
    ];
    for batch in rec.batches(None) {
        for r in Record::from_batch(&batch?).map_err(|e| anyhow::anyhow!("{e}"))? {
            if !kinds.iter().any(|k| k.name() == r.kind) || !matches(sel, &r) {
                continue;
            }
            if window.is_some_and(|(a, b)| r.ts_ns < a || r.ts_ns > b) {
                continue;
            }
            let Some(pid) = tracks.known(&flow_of_record(&r)) else {
                continue;
            };
            let ts = rel(r.ts_ns);
            if r.kind == Stage::TcpSample.name() || r.kind == Stage::RxTcpEst.name() {
                if let Some(cwnd) = r.cwnd {
                    w.counter("cwnd", pid, ts, &obj(json!({ "cwnd": cwnd })))?;
                    written.counters += 1;
                }
                if let Some(srtt) = r.srtt_us {
                    w.counter("srtt_us", pid, ts, &obj(json!({ "srtt_us": srtt })))?;
                    written.counters += 1;
                }
                continue;
            }
            let mut args = obj(serde_json::to_value(&r)?);
            for k in [
                "ts_ns", "kind", "saddr", "daddr", "sport", "dport", "family",
            ] {
                args.remove(k);
            }
            w.instant(&r.kind, "tcp", pid, TCP_TID, ts, &args)?;
            written.instants += 1;
        }
    }
    written.events = w.events;
    let meta = rec.meta();
    w.finish(json!({
        "tool": "tcptape",
        "recording": rec.path.display().to_string(),
        "host": meta.hostname,
        "kernel": meta.kernel_release,
        "start_mono_ns": meta.start_ns,
        "mono_to_wall_ns": meta.mono_to_wall_ns,
        "note": "ts are µs since start_mono_ns; stage slices last the report's stage deltas",
        "journeys_total": written.journeys_total,
        "journeys_exported": written.journeys,
    }))?;
    Ok(written)
}
