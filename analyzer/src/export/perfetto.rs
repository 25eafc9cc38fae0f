//! The Perfetto (Chrome JSON) trace of a recording: each packet's journey as a slice on its
//! flow's track with one child slice per stage (lasting the report's stage delta), the flow's
//! retransmissions and drops as instant events, and its congestion window and smoothed RTT as
//! counters.

use super::trace_writer::TraceWriter;
use super::tracks::{Tracks, TCP_TID};
use crate::journeys::per_packet::Packet;
use crate::queries::select::{Flow, Selection};
use crate::selection_args::matches;
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

/// One host's part of a trace.
pub struct HostPart<'a> {
    /// The host's name, shown before each of its flows; `None` for a trace of one host.
    pub host: Option<&'a str>,
    /// The host's recordings, whose TCP events are streamed.
    pub recs: &'a [Recording],
    /// Which events.
    pub sel: &'a Selection,
    /// The host's journeys to write (already limited and sampled).
    pub packets: &'a [&'a Packet],
    /// Journeys of the host after the selection.
    pub journeys_total: u64,
    /// With a limit, TCP events are kept between these times (ns, inclusive, host clock).
    pub window: Option<(u64, u64)>,
    /// Subtract from a time of this host's clock to get the trace's time (ns).
    pub origin_ns: i64,
}

/// Writes one host's journeys and the TCP events of their flows, streaming the TCP events from
/// its recordings. Each flow is a process of the trace; with several hosts, a host's flows are
/// sorted together and carry the host's name and label.
pub fn write_host<W: Write>(
    w: &mut TraceWriter<W>,
    tracks: &mut Tracks,
    part: &HostPart,
    written: &mut Written,
) -> anyhow::Result<()> {
    let rel = |ts: u64| ts as i64 - part.origin_ns;
    written.journeys_total += part.journeys_total;
    let packets = part.packets;
    let sel = part.sel;
    let window = part.window;
    for p in packets {
        let (pid, new) = tracks.pid(&p.flow);
        if new {
            w.metadata(
                "process_name",
                pid,
                None,
                json!({ "name": match part.host {
                    Some(h) => format!("{h} · flow {}", flow_name(&p.flow)),
                    None => format!("flow {}", flow_name(&p.flow)),
                } }),
            )?;
            if let Some(h) = part.host {
                w.metadata("process_labels", pid, None, json!({ "labels": h }))?;
            }
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
    for batch in part.recs.iter().flat_map(|rec| rec.batches(None)) {
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
    Ok(())
}

/// What `otherData` says of one host: its recordings and how its clock maps to the trace's.
pub fn host_facts(recs: &[Recording], origin_ns: i64, clock: &str) -> Value {
    let meta = recs.first().map(|r| r.meta());
    json!({
        "host": meta.as_ref().map(|m| m.hostname.clone()),
        "kernel": meta.as_ref().map(|m| m.kernel_release.clone()),
        "recordings": recs.iter().map(|r| r.path.display().to_string()).collect::<Vec<_>>(),
        "trace_zero_mono_ns": origin_ns,
        "mono_to_wall_ns": meta.as_ref().map(|m| m.mono_to_wall_ns),
        "clock": clock,
    })
}
