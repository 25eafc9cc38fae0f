//! The sections of `tcptape report` read from the per-connection TCP events (retransmits, RTT
//! and cwnd, connections, drops, throughput, buffer pressure) and the application's writes: the
//! classic TCP reports, independent of the journeys, so they are built alongside them.

use crate::queries::frame::{bools, collect, flows, i64s, joined_lists, strs, u64s};
use crate::queries::journey_input::WriteFrame;
use crate::queries::sampled_counts::scaled;
use crate::queries::{self, scan, select::Selection};
use crate::report::model::*;
use polars::prelude::*;
use std::collections::HashMap;
use tcptape_common::metadata::Sampling;
use tcptape_common::Stage;

fn rel(t: Option<u64>, start: u64) -> u64 {
    t.unwrap_or(start).saturating_sub(start)
}

/// Builds the TCP sections of the selected events of `files`, and counts the events read that
/// are not hops (the TCP stages; and `rx_app`, which is both); `writes` are the selected
/// `tx_sendmsg` events, `start` the recordings' start, `span_ns` the time covered, `sampling`
/// the flow sampling in force over time and `events` asks for retransmissions and drops one by one.
pub fn build(
    files: &[std::path::PathBuf],
    sel: &Selection,
    writes: &WriteFrame,
    (start, span_ns): (u64, u64),
    sampling: &Sampling,
    events: bool,
) -> anyhow::Result<(TcpSections, u64)> {
    let writes = &writes.0;
    let tcp = collect(scan::tcp_events(
        scan::scan(files).map_err(crate::queries::frame::one_line)?,
        scan::TCP_COLUMNS,
        sel,
    )?)?;
    // The snapshots' `rx_tcp_est` events are hops, which the journeys count.
    let snapshot_hops = collect(
        tcp.clone()
            .lazy()
            .filter(queries::is_stage(Stage::RxTcpEst))
            .select([len()]),
    )?;
    let snapshot_hops = u64s(&snapshot_hops, "len")?[0].unwrap_or(0);

    let retransmits = retransmits(&tcp, start, sampling)?;
    let df = collect(queries::samples::per_flow(tcp.clone().lazy()))?;
    let fl = flows(&df)?;
    let cols = [
        "samples",
        "rtt_min_us",
        "rtt_p50_us",
        "rtt_max_us",
        "cwnd_min",
        "cwnd_p50",
        "cwnd_max",
        "ssthresh_last",
    ]
    .iter()
    .map(|c| u64s(&df, c))
    .collect::<PolarsResult<Vec<_>>>()?;
    let rtt_cwnd = (0..df.height())
        .map(|i| FlowSamples {
            flow: fl[i].clone(),
            samples: cols[0][i].unwrap_or(0),
            rtt_min_us: cols[1][i].unwrap_or(0),
            rtt_p50_us: cols[2][i].unwrap_or(0),
            rtt_max_us: cols[3][i].unwrap_or(0),
            cwnd_min: cols[4][i].unwrap_or(0),
            cwnd_p50: cols[5][i].unwrap_or(0),
            cwnd_max: cols[6][i].unwrap_or(0),
            ssthresh_last: cols[7][i],
        })
        .collect();
    let df = collect(queries::samples::rtt_histogram(tcp.clone().lazy()))?;
    let rtt_histogram = u64s(&df, "bucket")?
        .into_iter()
        .zip(u64s(&df, "count")?)
        .map(|(b, c)| {
            let b = b.unwrap_or(0) as u32;
            Bucket {
                lo_us: if b == 0 { 0 } else { 1u64 << b },
                hi_us: 1u64 << (b + 1),
                count: c.unwrap_or(0),
            }
        })
        .collect();
    let bin_ns = (span_ns / 200).max(1_000_000);
    let df = collect(queries::samples::over_time(
        tcp.clone().lazy(),
        start,
        bin_ns,
    ))?;
    let fl = flows(&df)?;
    let (bin, srtt, cwnd) = (u64s(&df, "bin")?, u64s(&df, "srtt_us")?, u64s(&df, "cwnd")?);
    let rtt_cwnd_over_time = (0..df.height())
        .map(|i| SamplePoint {
            flow: fl[i].clone(),
            t_ns: bin[i].unwrap_or(0) * bin_ns,
            srtt_us: srtt[i].unwrap_or(0),
            cwnd: cwnd[i].unwrap_or(0),
        })
        .collect();

    let (connections, state_transitions) = lifecycle(&tcp, writes, start)?;
    let df = collect(queries::drops::by_reason(tcp.clone().lazy()))?;
    let mut drops: Vec<DropCount> = strs(&df, "drop_reason")?
        .into_iter()
        .zip(u64s(&df, "drops")?)
        .map(|(r, n)| DropCount {
            reason: r.unwrap_or_else(|| "unknown".into()),
            drops: n.unwrap_or(0),
        })
        .collect();
    // Ties in a deterministic order: the most first, then by name.
    drops.sort_by(|a, b| b.drops.cmp(&a.drops).then_with(|| a.reason.cmp(&b.reason)));
    let drops_total = drops.iter().map(|d| d.drops).sum::<u64>();
    let throughput_tx = throughput(writes, Stage::TxSendmsg, span_ns)?;
    let throughput_rx = throughput(&tcp, Stage::RxApp, span_ns)?;
    let df = collect(queries::buffer::per_flow(tcp.clone().lazy()))?;
    let fl = flows(&df)?;
    let (ev, mb, fst, lst) = (
        u64s(&df, "events")?,
        u64s(&df, "max_bytes")?,
        u64s(&df, "first_ns")?,
        u64s(&df, "last_ns")?,
    );
    let mut buffer_pressure: Vec<FlowBuffer> = (0..df.height())
        .map(|i| FlowBuffer {
            flow: fl[i].clone(),
            events: ev[i].unwrap_or(0),
            max_bytes: mb[i].unwrap_or(0),
            first_ns: rel(fst[i], start),
            last_ns: rel(lst[i], start),
        })
        .collect();

    buffer_pressure.sort_by(|a, b| b.events.cmp(&a.events).then_with(|| a.flow.cmp(&b.flow)));
    let sections = TcpSections {
        retransmits,
        rtt_cwnd,
        rtt_histogram,
        rtt_cwnd_over_time,
        connections,
        state_transitions,
        drops,
        drops_total,
        drops_estimated: scaled(
            &collect(queries::drops::times(tcp.clone().lazy()))?,
            None,
            sampling,
        )?,
        throughput_tx,
        throughput_rx,
        buffer_pressure,
        events: if events {
            each_event(&tcp, start)?
        } else {
            Vec::new()
        },
    };
    Ok((sections, tcp.height() as u64 - snapshot_hops))
}

fn retransmits(tcp: &DataFrame, start: u64, sampling: &Sampling) -> anyhow::Result<Retransmits> {
    use queries::retransmits as q;
    let t = collect(q::totals(tcp.clone().lazy()))?;
    let one = |c: &str| -> anyhow::Result<u64> {
        Ok(u64s(&t, c)?.first().copied().flatten().unwrap_or(0))
    };
    let segments = one("segments")?;
    let df = collect(q::by_ca_state(tcp.clone().lazy()))?;
    let by_ca_state = strs(&df, "ca_state")?
        .into_iter()
        .zip(
            u64s(&df, "attempts")?
                .into_iter()
                .zip(u64s(&df, "segments")?),
        )
        .map(|(s, (a, n))| CaStateCount {
            ca_state: s.unwrap_or_else(|| "unknown".into()),
            attempts: a.unwrap_or(0),
            segments: n.unwrap_or(0),
        })
        .collect();
    let df = collect(q::failed_by_err(tcp.clone().lazy()))?;
    let failed_by_err = i64s(&df, "err")?
        .into_iter()
        .zip(
            u64s(&df, "attempts")?
                .into_iter()
                .zip(u64s(&df, "segments")?),
        )
        .map(|(e, (a, n))| ErrCount {
            err: e.unwrap_or(0),
            attempts: a.unwrap_or(0),
            segments: n.unwrap_or(0),
        })
        .collect();
    let df = collect(q::per_flow(tcp.clone().lazy()))?;
    let fl = flows(&df)?;
    let (a, s, l) = (
        u64s(&df, "attempts")?,
        u64s(&df, "segments")?,
        u64s(&df, "loss_attempts")?,
    );
    let mut per_flow: Vec<FlowRetransmits> = (0..df.height())
        .map(|i| FlowRetransmits {
            flow: fl[i].clone(),
            attempts: a[i].unwrap_or(0),
            segments: s[i].unwrap_or(0),
            loss_attempts: l[i].unwrap_or(0),
        })
        .collect();
    per_flow.sort_by(|a, b| {
        b.segments
            .cmp(&a.segments)
            .then_with(|| a.flow.cmp(&b.flow))
    });
    let df = collect(q::per_second(tcp.clone().lazy(), start))?;
    let per_second = i64s(&df, "second")?
        .into_iter()
        .zip(u64s(&df, "segments")?)
        .map(|(s, n)| SecondCount {
            second: s.unwrap_or(0),
            segments: n.unwrap_or(0),
        })
        .collect();
    Ok(Retransmits {
        segments,
        attempts: one("attempts")?,
        failed_attempts: one("failed_attempts")?,
        failed_segments: one("failed_segments")?,
        kernel_counted_segments: one("kernel_counted_segments")?,
        estimated_segments: scaled(
            &collect(q::sent_each(tcp.clone().lazy()))?,
            Some("segs"),
            sampling,
        )?,
        by_ca_state,
        failed_by_err,
        per_flow,
        per_second,
    })
}

/// Retransmissions and drops one by one, in time order, the first [`MAX_TCP_EVENTS`].
fn each_event(tcp: &DataFrame, start: u64) -> anyhow::Result<Vec<TcpEvent>> {
    let limit = MAX_TCP_EVENTS as u32;
    let df = collect(queries::retransmits::each(tcp.clone().lazy(), limit))?;
    let (fl, ts, segs) = (flows(&df)?, u64s(&df, "ts_ns")?, u64s(&df, "segs")?);
    let mut out: Vec<TcpEvent> = (0..df.height())
        .map(|i| TcpEvent {
            t_ns: rel(ts[i], start),
            kind: "retransmit".into(),
            flow: fl[i].clone(),
            segments: segs[i].unwrap_or(1),
        })
        .collect();
    let df = collect(queries::drops::each(tcp.clone().lazy(), limit))?;
    let (fl, ts) = (flows(&df)?, u64s(&df, "ts_ns")?);
    out.extend((0..df.height()).map(|i| TcpEvent {
        t_ns: rel(ts[i], start),
        kind: "drop".into(),
        flow: fl[i].clone(),
        segments: 1,
    }));
    // Stable: at one time, retransmissions before drops, each in recorded order.
    out.sort_by_key(|e| e.t_ns);
    out.truncate(MAX_TCP_EVENTS);
    Ok(out)
}

fn throughput(events: &DataFrame, stage: Stage, span_ns: u64) -> anyhow::Result<Vec<FlowBytes>> {
    let df = collect(queries::throughput::per_flow(events.clone().lazy(), stage))?;
    let fl = flows(&df)?;
    let (pid, comm, bytes, calls) = (
        u64s(&df, "pid")?,
        strs(&df, "comm")?,
        u64s(&df, "bytes")?,
        u64s(&df, "calls")?,
    );
    let mut v: Vec<FlowBytes> = (0..df.height())
        .map(|i| FlowBytes {
            flow: fl[i].clone(),
            pid: pid[i],
            comm: comm[i].clone(),
            bytes: bytes[i].unwrap_or(0),
            calls: calls[i].unwrap_or(0),
            bytes_per_sec: bytes[i].unwrap_or(0) as f64 * 1e9 / span_ns as f64,
        })
        .collect();
    v.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.flow.cmp(&b.flow)));
    Ok(v)
}

/// Bytes a socket's application wrote or read at `stage`, and the process that did.
struct SockIo {
    bytes: u64,
    pid: Option<u64>,
    comm: Option<String>,
}

fn sock_io(events: &DataFrame, stage: Stage) -> anyhow::Result<HashMap<u64, SockIo>> {
    let df = collect(queries::throughput::per_sock(events.clone().lazy(), stage))?;
    let (sock, bytes) = (u64s(&df, "sock")?, u64s(&df, "bytes")?);
    let (pid, comm) = (u64s(&df, "pid")?, strs(&df, "comm")?);
    Ok((0..df.height())
        .filter_map(|i| {
            let io = SockIo {
                bytes: bytes[i].unwrap_or(0),
                pid: pid[i],
                comm: comm[i].clone(),
            };
            Some((sock[i]?, io))
        })
        .collect())
}

fn lifecycle(
    tcp: &DataFrame,
    writes: &DataFrame,
    start: u64,
) -> anyhow::Result<(Vec<Connection>, Vec<Transition>)> {
    use queries::lifecycle as q;
    let tx = sock_io(writes, Stage::TxSendmsg)?;
    let rx = sock_io(tcp, Stage::RxApp)?;
    let df = collect(q::per_sock(tcp.clone().lazy()))?;
    let fl = flows(&df)?;
    let (sock, pid, comm) = (u64s(&df, "sock")?, u64s(&df, "pid")?, strs(&df, "comm")?);
    let (first, last, syn, est) = (
        u64s(&df, "first_ns")?,
        u64s(&df, "last_ns")?,
        u64s(&df, "syn_sent_ns")?,
        u64s(&df, "established_ns")?,
    );
    let closed = bools(&df, "closed")?;
    let first_state = strs(&df, "first_state")?;
    let path = joined_lists(&df, "path", "→")?;
    let conns = (0..df.height())
        .map(|i| {
            let s = sock[i].unwrap_or(0);
            // The process that wrote or read the socket owns it; a state change may have run in
            // softirq, and recordings before the recorder knew that carry the interrupted task.
            let owner = tx.get(&s).or(rx.get(&s)).filter(|io| io.pid.is_some());
            Connection {
                sock: s,
                flow: fl[i].clone(),
                pid: owner.map_or(pid[i], |io| io.pid),
                comm: owner.map_or_else(|| comm[i].clone(), |io| io.comm.clone()),
                first_ns: rel(first[i], start),
                duration_ns: last[i].unwrap_or(0).saturating_sub(first[i].unwrap_or(0)),
                connect_latency_ns: match (syn[i], est[i]) {
                    (Some(a), Some(b)) if b >= a => Some(b - a),
                    _ => None,
                },
                tx_bytes: tx.get(&s).map_or(0, |io| io.bytes),
                rx_bytes: rx.get(&s).map_or(0, |io| io.bytes),
                closed: closed[i].unwrap_or(false),
                states: match &first_state[i] {
                    Some(f) => format!("{f}→{}", path[i]),
                    None => path[i].clone(),
                },
            }
        })
        .collect();
    let df = collect(q::transitions(tcp.clone().lazy()))?;
    let mut transitions: Vec<Transition> = strs(&df, "old_state")?
        .into_iter()
        .zip(strs(&df, "state")?.into_iter().zip(u64s(&df, "count")?))
        .map(|(f, (t, n))| Transition {
            from: f.unwrap_or_else(|| "?".into()),
            to: t.unwrap_or_else(|| "?".into()),
            count: n.unwrap_or(0),
        })
        .collect();
    transitions.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| (&a.from, &a.to).cmp(&(&b.from, &b.to)))
    });
    Ok((conns, transitions))
}
