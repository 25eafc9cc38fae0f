//! Per-packet access to the report's journeys, for `diff`, `replay --journeys` and `export`.
//!
//! The journeys are built exactly as `tcptape report` builds them (the same scan, selection and
//! [`Journeys::build`]), and every delay handed out here is a value the report aggregates: the
//! `dt_ns` of the segmented hops and `first hop − tx_sendmsg` of matched writes. So a stage delta
//! that `replay` prints, that a Perfetto slice lasts, or that `diff` tests, is one of the
//! packets behind the report's percentiles.

use crate::journeys::journey::Journeys;
use crate::queries::journey_input::scans;
use crate::queries::select::{Flow, Selection};
use std::collections::BTreeMap;
use tcptape_common::{Recording, Stage};

/// A (from, to) pair of stages, as the report's latency rows name them.
pub type Pair = (Stage, Stage);

/// Builds the journeys of recordings of one host, as `tcptape report` does.
pub fn journeys(
    recs: &[Recording],
    sel: &Selection,
    max_hop_gap_ns: u64,
) -> anyhow::Result<Journeys> {
    let files: Vec<_> = recs.iter().flat_map(|r| r.files()).collect();
    let (hops, writes) = scans(&files, sel)?;
    Journeys::build(
        hops.collect()?,
        || writes.collect()?.columns(),
        max_hop_gap_ns,
    )
}

/// Every stage delta (ns) per pair of adjacent recorded stages: the packets behind the report's
/// per-stage rows, in the time order of the later hop (time order matters to tests that must
/// allow for neighbouring packets being alike).
pub fn stage_samples(j: &Journeys) -> anyhow::Result<BTreeMap<Pair, Vec<i64>>> {
    let rows = j.pair_rows();
    let mut out: BTreeMap<Pair, Vec<(u64, i64)>> = BTreeMap::new();
    for i in 0..rows.len() {
        if let (Some(f), Some(t)) = (Stage::from_code(rows.from[i]), Stage::from_code(rows.to[i])) {
            out.entry((f, t))
                .or_default()
                .push((rows.ts[i], rows.dt[i]));
        }
    }
    Ok(in_time_order(out))
}

/// The durations (ns) of complete journeys per (first, last) stage: the packets behind the
/// report's end-to-end rows, in the time order of their last hop.
pub fn end_to_end_samples(j: &Journeys) -> anyhow::Result<BTreeMap<Pair, Vec<i64>>> {
    Ok(in_time_order(j.end_to_end()))
}

/// The samples in the time order of their later hop (stable for equal times).
fn in_time_order(v: BTreeMap<Pair, Vec<(u64, i64)>>) -> BTreeMap<Pair, Vec<i64>> {
    v.into_iter()
        .map(|(k, mut v)| {
            v.sort_by_key(|&(ts, _)| ts);
            (k, v.into_iter().map(|(_, d)| d).collect())
        })
        .collect()
}

/// One hop of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    /// The stage.
    pub stage: Stage,
    /// When, monotonic ns.
    pub ts_ns: u64,
    /// CPU, when known (not for the application's write, matched by sequence number).
    pub cpu: Option<u64>,
    /// Time since the previous hop, ns, as the report measures it (`None` on the first hop).
    pub dt_ns: Option<i64>,
}

/// One packet's journey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Journey number (stable within one build).
    pub jid: u64,
    /// The packet's flow, when its first hop names one.
    pub flow: Option<Flow>,
    /// Hashed skb id.
    pub skb: Option<u64>,
    /// TCP sequence number of the first hop, when recorded.
    pub seq: Option<u64>,
    /// The hops in time order, starting with the matched `tx_sendmsg` when there is one.
    pub hops: Vec<Hop>,
    /// True when the journey spans the recorded stages of its path.
    pub complete: bool,
}

/// Every journey as a [`Packet`], in the order of their first hop's time. A segment that software
/// GSO cut after the qdisc starts with the hops of the skb it was cut from.
pub fn packets(j: &Journeys) -> anyhow::Result<Vec<Packet>> {
    let mut out: Vec<Packet> = Vec::new();
    for k in (0..j.len()).filter(|&k| j.shown(k)) {
        let flow = j.flows.flow(j.flow(k)).cloned();
        // The journeys whose hops this packet shows: the GSO parent first, when there is one.
        let parts: Vec<usize> = j.gso_parent(k).into_iter().chain([k]).collect();
        let root = parts[0];
        let first = j.own_first_hop(root);
        let mut hops = Vec::new();
        let mut first_dt = None;
        let xmit = j.xmit(root);
        if let Some(w) = j.send_ts(k) {
            hops.push(Hop {
                stage: Stage::TxSendmsg,
                ts_ns: w,
                cpu: None,
                dt_ns: None,
            });
            // As the report's `tx_sendmsg → first hop` pair computes it.
            first_dt = Some(xmit.map_or(first.ts, |x| x.0) as i64 - w as i64);
        }
        if let Some((xt, xcpu)) = xmit {
            hops.push(Hop {
                stage: Stage::TxTcpXmit,
                ts_ns: xt,
                cpu: Some(xcpu as u64),
                dt_ns: first_dt,
            });
            // As the report's `tx_tcp_xmit → first hop` pair computes it.
            first_dt = Some(first.ts as i64 - xt as i64);
        }
        let mut prev: Option<u64> = None;
        let s = &j.seg;
        for part in parts {
            for p in s.range(part) {
                let Some(stage) = Stage::from_code(s.stage[p]) else {
                    continue;
                };
                hops.push(Hop {
                    stage,
                    ts_ns: s.ts[p],
                    cpu: Some(s.cpu[p] as u64),
                    dt_ns: prev.map_or(first_dt, |t| Some(s.ts[p] as i64 - t as i64)),
                });
                prev = Some(s.ts[p]);
            }
        }
        out.push(Packet {
            jid: k as u64 + 1,
            flow,
            skb: j.head.skb[k],
            seq: j.head.seq[k].map(u64::from),
            hops,
            complete: j.complete(k),
        });
    }
    out.sort_by_key(|p| (p.hops[0].ts_ns, p.jid));
    Ok(out)
}
