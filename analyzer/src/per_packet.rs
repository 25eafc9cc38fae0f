//! Per-packet access to the report's journeys, for `diff`, `replay --journeys` and `export`.
//!
//! The journeys are built exactly as `tcptape report` builds them (the same scan, selection and
//! [`Journeys::build`]), and every delay handed out here is a value the report aggregates: the
//! `dt_ns` of the segmented hops and `first hop − tx_sendmsg` of matched writes. So a stage delta
//! that `replay` prints, that a Perfetto slice lasts, or that `diff` tests, is one of the
//! packets behind the report's percentiles.

use crate::frame::{bools, collect, i64s, strs, u64s};
use crate::journey::Journeys;
use crate::queries::{scan, select::Flow, select::Selection, STAGE};
use polars::prelude::*;
use std::collections::{BTreeMap, HashMap};
use tcptape_common::{Recording, Stage};

/// A (from, to) pair of stages, as the report's latency rows name them.
pub type Pair = (Stage, Stage);

/// The selected packet hops (every hop stage but `tx_sendmsg`, lazily) and the application's
/// writes (`tx_sendmsg`, collected) of a set of recording files: what journeys are built from.
pub fn hops_and_writes(
    files: &[std::path::PathBuf],
    sel: &Selection,
) -> anyhow::Result<(LazyFrame, DataFrame)> {
    let scan = || scan::scan(files).map_err(crate::frame::one_line);
    let packet_stages: Vec<Stage> = scan::hop_stages()
        .into_iter()
        .filter(|s| *s != Stage::TxSendmsg)
        .collect();
    let hops = scan::events(scan()?, scan::HOP_COLUMNS, &packet_stages, sel)?;
    let writes = collect(scan::events(
        scan()?,
        scan::WRITE_COLUMNS,
        &[Stage::TxSendmsg],
        sel,
    )?)?;
    Ok((hops, writes))
}

/// Builds the journeys of recordings of one host, as `tcptape report` does.
pub fn journeys(
    recs: &[Recording],
    sel: &Selection,
    max_hop_gap_ns: u64,
) -> anyhow::Result<Journeys> {
    let files: Vec<_> = recs.iter().flat_map(|r| r.files()).collect();
    let (hops, writes) = hops_and_writes(&files, sel)?;
    Journeys::build(hops, &writes, max_hop_gap_ns)
}

fn stage(code: Option<u64>) -> Option<Stage> {
    Stage::from_code(code? as u8)
}

/// Appends the (`from`, `to`, `dt_ns`, `ts_ns`) rows of a frame to per-pair samples, skipping
/// first hops.
fn add_samples(df: &DataFrame, out: &mut BTreeMap<Pair, Vec<(u64, i64)>>) -> anyhow::Result<()> {
    let (from, to, dt, ts) = (
        u64s(df, "from")?,
        u64s(df, "to")?,
        i64s(df, "dt_ns")?,
        u64s(df, "ts_ns")?,
    );
    for i in 0..df.height() {
        if let (Some(f), Some(t), Some(d)) = (stage(from[i]), stage(to[i]), dt[i]) {
            out.entry((f, t)).or_default().push((ts[i].unwrap_or(0), d));
        }
    }
    Ok(())
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

/// Every stage delta (ns) per pair of adjacent recorded stages: the packets behind the report's
/// per-stage rows, in the time order of the later hop (time order matters to tests that must
/// allow for neighbouring packets being alike).
pub fn stage_samples(j: &Journeys) -> anyhow::Result<BTreeMap<Pair, Vec<i64>>> {
    let mut out = BTreeMap::new();
    for p in j.pairs() {
        let df = collect(
            p.select([col("from"), col("to"), col("dt_ns"), col("ts_ns")])
                .filter(col("from").is_not_null()),
        )?;
        add_samples(&df, &mut out)?;
    }
    Ok(in_time_order(out))
}

/// The durations (ns) of complete journeys per (first, last) stage: the packets behind the
/// report's end-to-end rows, in the time order of their last hop.
pub fn end_to_end_samples(j: &Journeys) -> anyhow::Result<BTreeMap<Pair, Vec<i64>>> {
    let df = collect(
        j.whole
            .clone()
            .lazy()
            .filter(col("complete").and(col("from").neq(col("to"))))
            .select([col("from"), col("to"), col("dt_ns"), col("ts_ns")]),
    )?;
    let mut out = BTreeMap::new();
    add_samples(&df, &mut out)?;
    Ok(in_time_order(out))
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

/// Every journey as a [`Packet`], in the order of their first hop's time.
pub fn packets(j: &Journeys) -> anyhow::Result<Vec<Packet>> {
    let seg = &j.seg;
    let (jid, st, ts, cpu, dt, skb) = (
        u64s(seg, "jid")?,
        u64s(seg, STAGE)?,
        u64s(seg, "ts_ns")?,
        u64s(seg, "cpu")?,
        i64s(seg, "dt_ns")?,
        u64s(seg, "skb")?,
    );
    let (sa, sp, da, dp, seq) = (
        strs(seg, "saddr")?,
        u64s(seg, "sport")?,
        strs(seg, "daddr")?,
        u64s(seg, "dport")?,
        u64s(seg, "seq")?,
    );
    let send: HashMap<u64, u64> = u64s(&j.matched, "jid")?
        .into_iter()
        .zip(u64s(&j.matched, "send_ts")?)
        .filter_map(|(a, b)| Some((a?, b?)))
        .collect();
    let complete: HashMap<u64, bool> = u64s(&j.whole, "jid")?
        .into_iter()
        .zip(bools(&j.whole, "complete")?)
        .filter_map(|(a, b)| Some((a?, b.unwrap_or(false))))
        .collect();
    // Clones joined to their `tx_tcp_xmit`: that hop leads the clone's journey.
    let (l_jid, l_xjid, l_ts, l_cpu) = (
        u64s(&j.links, "jid")?,
        u64s(&j.links, "xmit_jid")?,
        u64s(&j.links, "xmit_ts")?,
        u64s(&j.links, "xmit_cpu")?,
    );
    let xmit_of: HashMap<u64, (u64, Option<u64>)> = (0..j.links.height())
        .filter_map(|i| Some((l_jid[i]?, (l_ts[i]?, l_cpu[i]))))
        .collect();
    let absorbed: std::collections::HashSet<u64> = l_xjid.iter().flatten().copied().collect();
    let mut out: Vec<Packet> = Vec::new();
    for i in 0..seg.height() {
        let (Some(id), Some(stage), Some(t)) = (jid[i], stage(st[i]), ts[i]) else {
            continue;
        };
        if absorbed.contains(&id) {
            continue;
        }
        if out.last().is_none_or(|p| p.jid != id) {
            let flow = match (&sa[i], sp[i], &da[i], dp[i]) {
                (Some(sa), Some(sp), Some(da), Some(dp)) => Some(Flow {
                    saddr: sa.clone(),
                    sport: sp as u16,
                    daddr: da.clone(),
                    dport: dp as u16,
                }),
                _ => None,
            };
            let mut hops = Vec::new();
            let mut first_dt = None;
            let xmit = xmit_of.get(&id).copied();
            if let Some(&w) = send.get(&id) {
                hops.push(Hop {
                    stage: Stage::TxSendmsg,
                    ts_ns: w,
                    cpu: None,
                    dt_ns: None,
                });
                // As the report's `tx_sendmsg → first hop` pair computes it.
                first_dt = Some(xmit.map_or(t, |x| x.0) as i64 - w as i64);
            }
            if let Some((xt, xcpu)) = xmit {
                hops.push(Hop {
                    stage: Stage::TxTcpXmit,
                    ts_ns: xt,
                    cpu: xcpu,
                    dt_ns: first_dt,
                });
                // As the report's `tx_tcp_xmit → first hop` pair computes it.
                first_dt = Some(t as i64 - xt as i64);
            }
            hops.push(Hop {
                stage,
                ts_ns: t,
                cpu: cpu[i],
                dt_ns: first_dt,
            });
            out.push(Packet {
                jid: id,
                flow,
                skb: skb[i],
                seq: seq[i],
                hops,
                complete: complete.get(&id).copied().unwrap_or(false),
            });
        } else if let Some(p) = out.last_mut() {
            p.hops.push(Hop {
                stage,
                ts_ns: t,
                cpu: cpu[i],
                dt_ns: dt[i],
            });
        }
    }
    out.sort_by_key(|p| (p.hops[0].ts_ns, p.jid));
    Ok(out)
}
