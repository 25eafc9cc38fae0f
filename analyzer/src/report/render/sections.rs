//! The report as titled blocks of text and tables, independent of the output format.

use crate::report::model::*;
use crate::units::{bytes, ns, wall};
use tcptape_common::metadata::CgroupName;

/// One piece of a rendered report.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A section heading.
    Heading(String),
    /// Lines of text.
    Text(Vec<String>),
    /// A table: header, rows, and how many rows were left out.
    Table {
        /// Column names.
        header: Vec<String>,
        /// Cells.
        rows: Vec<Vec<String>>,
        /// Rows not shown (see the JSON output for all of them).
        omitted: usize,
    },
}

fn table<S: ToString>(header: &[S], rows: Vec<Vec<String>>, limit: usize) -> Block {
    let omitted = rows.len().saturating_sub(limit);
    Block::Table {
        header: header.iter().map(|s| s.to_string()).collect(),
        rows: rows.into_iter().take(limit).collect(),
        omitted,
    }
}

fn pair(from: &str, to: &str) -> String {
    format!("{from} → {to}")
}

fn lat_cells(l: &StageLatency) -> Vec<String> {
    vec![
        l.count.to_string(),
        ns(l.mean_ns),
        ns(l.p50_ns as f64),
        ns(l.p90_ns as f64),
        ns(l.p99_ns as f64),
        ns(l.p999_ns as f64),
        ns(l.max_ns as f64),
    ]
}

const LAT: [&str; 7] = ["count", "mean", "p50", "p90", "p99", "p99.9", "max"];

fn with_lat(first: &[&str]) -> Vec<String> {
    first
        .iter()
        .chain(LAT.iter())
        .map(|s| s.to_string())
        .collect()
}

/// A cgroup as a report names it ([`CgroupName::label`]).
fn cgroup_label(c: &CgroupShare) -> String {
    CgroupName {
        id: c.cgroup,
        path: c.path.clone(),
        identity: c.workload.clone(),
    }
    .label()
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|x| x.to_string())
        .unwrap_or_else(|| "-".into())
}

/// The report as blocks; tables longer than `limit` rows are cut (the JSON has every row).
pub fn sections(r: &Report, limit: usize) -> Vec<Block> {
    let mut b = Vec::new();
    let mut head = vec![
        format!("host         {}", r.host),
        format!(
            "recordings   {}",
            r.recordings
                .iter()
                .map(|x| format!("{} ({} events, {})", x.path, x.events, x.source))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "time         {} + {}",
            wall(r.start_mono_ns, r.mono_to_wall_ns),
            ns(r.duration_ns as f64)
        ),
        format!("events       {} analyzed", r.events),
        format!("lost events  {}", lost_line(r)),
        format!(
            "sampling     {}",
            if r.sampling.sampled() {
                format!("{} (estimates scaled)", r.sampling.describe())
            } else {
                r.sampling.describe()
            }
        ),
        format!(
            "journeys     {} ({} complete, {} incomplete); {} start with data of one of the {} writes, {} TX journeys carry no recorded write (ACKs, retransmissions)",
            r.journeys.total,
            r.journeys.complete,
            r.journeys.incomplete,
            r.journeys.matched_to_write,
            r.journeys.writes,
            r.journeys.tx_unmatched
        ),
        format!(
            "stages       {}",
            r.stages_recorded
                .iter()
                .map(|s| match (s.estimated, s.kernel) {
                    (Some(e), Some(k)) => format!("{} ({}, est. {e}, kernel {k})", s.stage, s.events),
                    (Some(e), None) => format!("{} ({}, est. {e})", s.stage, s.events),
                    _ => format!("{} ({})", s.stage, s.events),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ];
    head.extend(r.notes.iter().map(|n| format!("NOTE         {n}")));
    b.push(Block::Text(head));

    b.push(Block::Heading(
        "Per-stage latency (adjacent recorded stages)".into(),
    ));
    b.push(table(
        &with_lat(&["stages"]),
        r.stages
            .iter()
            .map(|l| {
                let mut row = vec![pair(&l.from, &l.to)];
                row.extend(lat_cells(l));
                row
            })
            .collect(),
        usize::MAX,
    ));
    b.push(Block::Heading("End to end (complete journeys)".into()));
    b.push(table(
        &with_lat(&["span"]),
        r.end_to_end
            .iter()
            .map(|l| {
                let mut row = vec![pair(&l.from, &l.to)];
                row.extend(lat_cells(l));
                row
            })
            .collect(),
        limit,
    ));
    b.push(Block::Heading("Per flow".into()));
    b.push(table(
        &with_lat(&["flow", "stages"]),
        r.stages_per_flow
            .iter()
            .map(|f| {
                let mut row = vec![f.flow.clone(), pair(&f.latency.from, &f.latency.to)];
                row.extend(lat_cells(&f.latency));
                row
            })
            .collect(),
        limit,
    ));
    if !r.cgroups.is_empty() {
        b.push(Block::Heading(
            "Per cgroup (containers, pods, units; a packet counts for its sender's socket on this host, else its receiver's)".into(),
        ));
        b.push(table(
            &[
                "cgroup",
                "flows",
                "sockets",
                "written",
                "read",
                "retransmitted",
                "drops",
            ],
            r.cgroups
                .iter()
                .map(|c| {
                    vec![
                        cgroup_label(c),
                        c.flows.to_string(),
                        c.sockets.to_string(),
                        bytes(c.bytes_written),
                        bytes(c.bytes_read),
                        c.retransmitted_segments.to_string(),
                        c.drops.to_string(),
                    ]
                })
                .collect(),
            limit,
        ));
        b.push(table(
            &with_lat(&["cgroup", "stages"]),
            r.cgroups
                .iter()
                .flat_map(|c| {
                    c.stages.iter().map(move |l| {
                        let mut row = vec![cgroup_label(c), pair(&l.from, &l.to)];
                        row.extend(lat_cells(l));
                        row
                    })
                })
                .collect(),
            limit,
        ));
    }
    b.push(Block::Heading("Per CPU".into()));
    b.push(table(
        &with_lat(&["cpu", "stages"]),
        r.stages_per_cpu
            .iter()
            .map(|c| {
                let mut row = vec![c.cpu.to_string(), pair(&c.latency.from, &c.latency.to)];
                row.extend(lat_cells(&c.latency));
                row
            })
            .collect(),
        limit,
    ));
    b.push(Block::Heading("Over time (per second)".into()));
    b.push(table(
        &["second", "stages", "count", "p50", "p99", "max"],
        r.stages_over_time
            .iter()
            .map(|s| {
                vec![
                    s.second.to_string(),
                    pair(&s.from, &s.to),
                    s.count.to_string(),
                    ns(s.p50_ns as f64),
                    ns(s.p99_ns as f64),
                    ns(s.max_ns as f64),
                ]
            })
            .collect(),
        limit,
    ));

    let rt = &r.tcp.retransmits;
    b.push(Block::Heading("Retransmits".into()));
    let mut lines = vec![format!(
        "{} segments retransmitted in {} attempts{}; {} failed attempts ({} segments) did not leave the host; kernel TcpRetransSegs equivalent: {}",
        rt.segments,
        rt.attempts - rt.failed_attempts,
        rt.estimated_segments
            .map(|e| format!(" (about {e} over all flows)"))
            .unwrap_or_default(),
        rt.failed_attempts,
        rt.failed_segments,
        rt.kernel_counted_segments
    )];
    if !rt.failed_by_err.is_empty() {
        lines.push(format!(
            "failed by error: {}",
            rt.failed_by_err
                .iter()
                .map(|e| format!(
                    "err {}: {} attempts, {} segments",
                    e.err, e.attempts, e.segments
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    b.push(Block::Text(lines));
    b.push(table(
        &["congestion state", "attempts", "segments"],
        rt.by_ca_state
            .iter()
            .map(|c| {
                vec![
                    c.ca_state.clone(),
                    c.attempts.to_string(),
                    c.segments.to_string(),
                ]
            })
            .collect(),
        limit,
    ));
    b.push(table(
        &["flow", "attempts", "segments", "in loss state"],
        rt.per_flow
            .iter()
            .map(|f| {
                vec![
                    f.flow.clone(),
                    f.attempts.to_string(),
                    f.segments.to_string(),
                    f.loss_attempts.to_string(),
                ]
            })
            .collect(),
        limit,
    ));
    b.push(table(
        &["second", "segments"],
        rt.per_second
            .iter()
            .map(|s| vec![s.second.to_string(), s.segments.to_string()])
            .collect(),
        limit,
    ));

    b.push(Block::Heading("RTT and cwnd per flow".into()));
    b.push(table(
        &[
            "flow", "samples", "srtt min", "srtt p50", "srtt max", "cwnd min", "cwnd p50",
            "cwnd max", "ssthresh",
        ],
        r.tcp
            .rtt_cwnd
            .iter()
            .map(|f| {
                vec![
                    f.flow.clone(),
                    f.samples.to_string(),
                    ns(f.rtt_min_us as f64 * 1e3),
                    ns(f.rtt_p50_us as f64 * 1e3),
                    ns(f.rtt_max_us as f64 * 1e3),
                    f.cwnd_min.to_string(),
                    f.cwnd_p50.to_string(),
                    f.cwnd_max.to_string(),
                    match f.ssthresh_last {
                        Some(s) if s >= 0x7fff_ffff => "inf".into(),
                        s => opt(&s),
                    },
                ]
            })
            .collect(),
        limit,
    ));
    let most = r
        .tcp
        .rtt_histogram
        .iter()
        .map(|h| h.count)
        .max()
        .unwrap_or(1)
        .max(1);
    b.push(table(
        &["srtt µs", "count", "distribution"],
        r.tcp
            .rtt_histogram
            .iter()
            .map(|h| {
                vec![
                    format!("{} -> {}", h.lo_us, h.hi_us - 1),
                    h.count.to_string(),
                    "*".repeat(((h.count * 40).div_ceil(most)) as usize),
                ]
            })
            .collect(),
        usize::MAX,
    ));

    b.push(Block::Heading("Connections".into()));
    b.push(table(
        &[
            "flow", "sock", "pid", "comm", "start", "duration", "connect", "tx", "rx", "states",
        ],
        r.tcp
            .connections
            .iter()
            .map(|c| {
                vec![
                    c.flow.clone(),
                    format!("{:#x}", c.sock),
                    opt(&c.pid),
                    opt(&c.comm),
                    ns(c.first_ns as f64),
                    ns(c.duration_ns as f64),
                    c.connect_latency_ns
                        .map(|v| ns(v as f64))
                        .unwrap_or_else(|| "-".into()),
                    bytes(c.tx_bytes),
                    bytes(c.rx_bytes),
                    c.states.clone(),
                ]
            })
            .collect(),
        limit,
    ));
    b.push(table(
        &["from state", "to state", "count"],
        r.tcp
            .state_transitions
            .iter()
            .map(|t| vec![t.from.clone(), t.to.clone(), t.count.to_string()])
            .collect(),
        limit,
    ));

    b.push(Block::Heading("Drops by reason".into()));
    b.push(Block::Text(vec![format!(
        "{} drops{}",
        r.tcp.drops_total,
        r.tcp
            .drops_estimated
            .map(|e| format!(" (about {e} over all flows)"))
            .unwrap_or_default()
    )]));
    b.push(table(
        &["reason", "drops"],
        r.tcp
            .drops
            .iter()
            .map(|d| vec![d.reason.clone(), d.drops.to_string()])
            .collect(),
        limit,
    ));

    b.push(Block::Heading("Throughput per flow".into()));
    for (dir, v) in [
        ("written (tx_sendmsg)", &r.tcp.throughput_tx),
        ("read (rx_app)", &r.tcp.throughput_rx),
    ] {
        b.push(table(
            &["flow", "pid", "comm", dir, "calls", "rate"],
            v.iter()
                .map(|f| {
                    vec![
                        f.flow.clone(),
                        opt(&f.pid),
                        opt(&f.comm),
                        bytes(f.bytes),
                        f.calls.to_string(),
                        format!("{}/s", bytes(f.bytes_per_sec as u64)),
                    ]
                })
                .collect(),
            limit,
        ));
    }

    b.push(Block::Heading("Buffer pressure".into()));
    b.push(table(
        &["flow", "events", "largest buffer", "first", "last"],
        r.tcp
            .buffer_pressure
            .iter()
            .map(|f| {
                vec![
                    f.flow.clone(),
                    f.events.to_string(),
                    bytes(f.max_bytes),
                    ns(f.first_ns as f64),
                    ns(f.last_ns as f64),
                ]
            })
            .collect(),
        limit,
    ));
    b
}

/// The lost events and where they were lost, as `info` shows them, e.g. `12 (ring buffer per
/// CPU: [0 12]; counts are lower bounds)`.
fn lost_line(r: &Report) -> String {
    if r.lost_events == 0 {
        return "0".to_string();
    }
    let l = &r.lost;
    let mut parts = Vec::new();
    if l.ring_per_cpu.iter().any(|&n| n > 0) {
        let cpus: Vec<String> = l.ring_per_cpu.iter().map(u64::to_string).collect();
        parts.push(format!("ring buffer per CPU: [{}]", cpus.join(" ")));
    }
    if l.writer_queue > 0 {
        parts.push(format!("writer queue: {}", l.writer_queue));
    }
    if !l.missed_runs.is_empty() {
        let runs: Vec<String> = l
            .missed_runs
            .iter()
            .map(|(stage, n)| format!("{stage} {n}"))
            .collect();
        parts.push(format!("skipped program runs: {}", runs.join(", ")));
    }
    parts.push("counts are lower bounds".to_string());
    format!("{} ({})", r.lost_events, parts.join("; "))
}

/// The hosts of a multi-host report ranked by their dominant stage pair ([`rank_hosts`]).
pub fn hosts_ranked(reports: &[Report], limit: usize) -> Vec<Block> {
    let rows = rank_hosts(reports)
        .into_iter()
        .map(|h| {
            vec![
                h.host,
                if h.from.is_empty() {
                    "-".into()
                } else {
                    pair(&h.from, &h.to)
                },
                ns(h.p50_ns as f64),
                ns(h.p99_ns as f64),
                h.count.to_string(),
                h.events.to_string(),
                h.lost_events.to_string(),
                format!("1 in {}", h.sampling_one_in.max(1)),
            ]
        })
        .collect();
    vec![
        Block::Heading("Hosts, by the stage where their packets spend most time".into()),
        table(
            &[
                "host",
                "dominant stages",
                "p50",
                "p99",
                "packets",
                "events",
                "lost",
                "sampling",
            ],
            rows,
            limit,
        ),
    ]
}

/// Every host's stage pairs pooled ([`pooled`]).
pub fn pooled(reports: &[Report]) -> Vec<Block> {
    let rows = crate::report::model::pooled(reports)
        .iter()
        .map(|l| {
            let mut r = vec![pair(&l.from, &l.to)];
            r.extend(lat_cells(l));
            r
        })
        .collect();
    vec![
        Block::Heading(format!(
            "All {} hosts pooled (per-stage latency)",
            reports.len()
        )),
        Block::Text(vec![POOLED_RULE.to_string()]),
        table(&with_lat(&["stages"]), rows, usize::MAX),
    ]
}

/// The section on traffic between the hosts of a report ([`crate::journeys::cross_host`]).
pub fn between_hosts(pairs: &[crate::journeys::cross_host::HostPair]) -> Vec<Block> {
    let mut b = vec![Block::Heading("Between hosts".into())];
    if pairs.is_empty() {
        b.push(Block::Text(vec![
            "no data segment of one host's recording was received in another's: the hosts \
             cannot be joined (no common traffic, or addresses translated between them)"
                .into(),
        ]));
        return b;
    }
    let mut text = Vec::new();
    let mut rows = Vec::new();
    for p in pairs {
        match (p.clock_offset_ns, p.clock_offset_uncertainty_ns) {
            (Some(off), Some(unc)) => text.push(format!(
                "{} ↔ {}: {} + {} segments joined; clock of {} = clock of {} {} {} ± {}",
                p.host_a,
                p.host_b,
                p.segments_a_to_b,
                p.segments_b_to_a,
                p.host_b,
                p.host_a,
                if off < 0 { "−" } else { "+" },
                ns(off.unsigned_abs() as f64),
                ns(unc as f64),
            )),
            _ => text.push(format!(
                "{} ↔ {}: {} + {} segments joined; clock offset unknown",
                p.host_a, p.host_b, p.segments_a_to_b, p.segments_b_to_a
            )),
        }
        text.extend(p.notes.iter().map(|n| format!("  {n}")));
        for w in &p.wire {
            rows.push(vec![
                "wire".into(),
                pair(&w.from_host, &w.to_host),
                w.count.to_string(),
                ns(w.min_ns as f64),
                ns(w.p50_ns as f64),
                ns(w.p90_ns as f64),
                ns(w.p99_ns as f64),
                ns(w.max_ns as f64),
            ]);
        }
        for w in &p.end_to_end {
            rows.push(vec![
                "tx_sendmsg → rx_app".into(),
                pair(&w.from_host, &w.to_host),
                w.count.to_string(),
                ns(w.min_ns as f64),
                ns(w.p50_ns as f64),
                ns(w.p90_ns as f64),
                ns(w.p99_ns as f64),
                ns(w.max_ns as f64),
            ]);
        }
    }
    b.push(Block::Text(text));
    if !rows.is_empty() {
        b.push(Block::Heading(
            "Wire (tx_driver → rx_driver or rx_netif) and end to end, clocks aligned".into(),
        ));
        let n = rows.len();
        b.push(table(
            &[
                "span", "hosts", "segments", "min", "p50", "p90", "p99", "max",
            ],
            rows,
            n,
        ));
    }
    b
}
