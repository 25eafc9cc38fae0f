//! Journeys: one packet's path through the stack, from the events of a recording.
//!
//! Hop events are grouped per packet id (see [`crate::queries::journey`] for how a reused id
//! splits a journey). The application's writes (`tx_sendmsg`) happen on the socket's write-queue
//! skb, not on the clone TCP transmits, so they are matched to transmissions by socket and TCP
//! sequence range instead: a transmission starting at sequence `s` carries data of the
//! `tx_sendmsg` whose `[seq, seq + len)` holds `s`. Retransmissions (a sequence not beyond the
//! last one matched) are left unmatched, as are transmissions whose write was not recorded.
//! Nothing is guessed: journeys that do not span the recorded stages are counted incomplete.

use crate::clone_link;
use crate::frame::{collect, i64s, strs, u64s};
use crate::queries::journey::{self as q, PathBounds};
use crate::queries::{journey_rank, stage_of_rank, STAGE};
use polars::prelude::*;
use std::collections::{HashMap, VecDeque};
use tcptape_common::stage::Path as StagePath;
use tcptape_common::Stage;

/// One application write: time, socket, first sequence number, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Write {
    /// Time of the `tx_sendmsg`.
    pub ts: u64,
    /// Socket cookie.
    pub sock: u64,
    /// First sequence number of the data written.
    pub seq: u32,
    /// Bytes written.
    pub len: u32,
}

/// The first TX hop of a journey: its index, time, socket and first sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmission {
    /// Caller's index of the journey.
    pub idx: usize,
    /// Time of the first hop.
    pub t0: u64,
    /// Socket cookie.
    pub sock: u64,
    /// Sequence number of the transmitted data.
    pub seq: u32,
}

/// Finds the write each transmission's data came from; returns `(idx, write time)` pairs.
///
/// Per socket, writes are kept in time order (which is sequence order: TCP appends to the send
/// queue) for `horizon_ns`; a transmission takes the write whose `[seq, seq + len)` holds its
/// first sequence number, found by binary search. A sequence number already matched is a
/// retransmission and stays unmatched, so retransmission timeouts never count as time spent
/// before the first transmission. Sequence arithmetic wraps, as TCP's does.
pub fn match_writes(
    writes: &mut [Write],
    xmits: &mut [Transmission],
    horizon_ns: u64,
) -> Vec<(usize, u64)> {
    /// A write still waiting for transmissions, with the sequence numbers matched so far.
    struct Pending {
        w: Write,
        sent: Vec<u32>,
    }
    const MAX_PENDING: usize = 1 << 16;
    writes.sort_by_key(|w| (w.sock, w.ts));
    xmits.sort_by_key(|x| (x.sock, x.t0));
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while j < xmits.len() {
        let sock = xmits[j].sock;
        while i < writes.len() && writes[i].sock < sock {
            i += 1;
        }
        let mut queue: VecDeque<Pending> = VecDeque::new();
        while j < xmits.len() && xmits[j].sock == sock {
            let x = xmits[j];
            j += 1;
            while i < writes.len() && writes[i].sock == sock && writes[i].ts <= x.t0 {
                queue.push_back(Pending {
                    w: writes[i],
                    sent: Vec::new(),
                });
                i += 1;
            }
            while queue.front().is_some_and(|p| {
                queue.len() > MAX_PENDING || p.w.ts.saturating_add(horizon_ns) < x.t0
            }) {
                queue.pop_front();
            }
            let Some(base) = queue.front().map(|p| p.w.seq) else {
                continue;
            };
            let key = |seq: u32| seq.wrapping_sub(base);
            // The last write starting at or before x.seq.
            let k = queue.partition_point(|p| key(p.w.seq) <= key(x.seq));
            let Some(p) = k.checked_sub(1).map(|k| &mut queue[k]) else {
                continue;
            };
            if x.seq.wrapping_sub(p.w.seq) < p.w.len && !p.sent.contains(&x.seq) {
                p.sent.push(x.seq);
                out.push((x.idx, p.w.ts));
            }
        }
        while i < writes.len() && writes[i].sock == sock {
            i += 1;
        }
    }
    out
}

/// Journey counts, stated in every report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct JourneyCounts {
    /// Journeys (packets, counting a reused packet id once per use).
    pub total: u64,
    /// Journeys that span the recorded stages of their path.
    pub complete: u64,
    /// Journeys that do not (cut by the recording's ends, lost events, unrecorded hops).
    pub incomplete: u64,
    /// `tx_sendmsg` events.
    pub writes: u64,
    /// Journeys whose data was matched to its `tx_sendmsg`.
    pub matched_to_write: u64,
    /// Journeys starting on the TX path that were not (retransmissions, unrecorded writes).
    pub tx_unmatched: u64,
}

/// The journeys of a recording, as frames for the latency queries.
pub struct Journeys {
    /// Segmented hops ([`crate::segment::segment`]).
    pub seg: DataFrame,
    /// First hops ([`q::starts`]), a clone's journey starting at the `tx_tcp_xmit` it was
    /// joined to, whose own journey is left out ([`crate::clone_link`]).
    pub starts: DataFrame,
    /// Clones joined to their `tx_tcp_xmit`: `jid` (the clone's journey), `xmit_jid` (the
    /// journey of the `tx_tcp_xmit`, part of the clone's now), `xmit_ts`, `xmit_cpu`, and the clone's own
    /// first hop (`to`, `ts_ns`, `cpu`, flow): the pair `tx_tcp_xmit → first hop`.
    pub links: DataFrame,
    /// Journeys matched to a write: `jid`, `send_ts`.
    pub matched: DataFrame,
    /// Whole journeys ([`q::whole`]).
    pub whole: DataFrame,
    /// Hop stages recorded, with their event counts (after repeats are folded).
    pub stages: Vec<(Stage, u64)>,
    /// Counts.
    pub counts: JourneyCounts,
}

impl Journeys {
    /// Builds journeys from hop events (`hops`: the packet stages without `tx_sendmsg`) and the
    /// writes (`writes`: `tx_sendmsg` events with `ts_ns`, `sock`, `seq`, `len` and the flow).
    pub fn build(hops: LazyFrame, writes: &DataFrame, max_gap_ns: u64) -> anyhow::Result<Journeys> {
        let seg = crate::segment::segment(collect(hops)?, max_gap_ns)?;
        let ends = collect(q::ends(seg.clone().lazy()))?;
        let (starts, links) =
            join_clones(collect(q::starts(seg.clone().lazy()))?, &ends, max_gap_ns)?;
        let present = collect(q::stages_present(seg.clone().lazy()))?;
        let stages: Vec<(Stage, u64)> = u64s(&present, STAGE)?
            .into_iter()
            .zip(u64s(&present, "events")?)
            .filter_map(|(s, n)| Some((Stage::from_code(s? as u8)?, n.unwrap_or(0))))
            .collect();
        let matched = match_frame(&starts, writes, max_gap_ns)?;
        let whole = collect(q::whole(
            starts.clone().lazy(),
            ends.lazy(),
            matched.clone().lazy(),
            bounds(&stages),
        ))?;
        let complete = whole
            .column("complete")?
            .bool()?
            .iter()
            .filter(|c| *c == Some(true))
            .count() as u64;
        let tx_starts = u64s(&starts, "first_rank")?
            .iter()
            .filter(|r| {
                r.and_then(|r| stage_of_rank(r as u8)).map(|s| s.path()) == Some(StagePath::Tx)
            })
            .count() as u64;
        let counts = JourneyCounts {
            total: whole.height() as u64,
            complete,
            incomplete: whole.height() as u64 - complete,
            writes: writes.height() as u64,
            matched_to_write: matched.height() as u64,
            tx_unmatched: tx_starts.saturating_sub(matched.height() as u64),
        };
        Ok(Journeys {
            seg,
            starts,
            links,
            matched,
            whole,
            stages,
            counts,
        })
    }

    /// Every adjacent pair of recorded stages in a journey, as three frames of the same shape:
    /// the hops (first hops included, with a null `from`), `tx_sendmsg → first hop`, and
    /// `tx_tcp_xmit → a clone's first hop`. The caller aggregates them together.
    pub fn pairs(&self) -> [LazyFrame; 3] {
        [
            q::hop_pairs(self.seg.clone().lazy()),
            q::sendmsg_pairs(self.starts.clone().lazy(), self.matched.clone().lazy()),
            q::link_pairs(self.links.clone().lazy()),
        ]
    }
}

/// Joins the journeys of transmitted clones to their `tx_tcp_xmit` ([`crate::clone_link`]):
/// returns the first hops with each joined clone starting at its `tx_tcp_xmit` (time and CPU)
/// and without the `tx_tcp_xmit`'s own journey, and the links. `starts` and `ends` have one row
/// per journey, in `jid` order.
fn join_clones(
    starts: DataFrame,
    ends: &DataFrame,
    horizon_ns: u64,
) -> anyhow::Result<(DataFrame, DataFrame)> {
    let xmit = Stage::TxTcpXmit.code() as u64;
    let (first, last) = (u64s(&starts, "first_stage")?, u64s(ends, "last_stage")?);
    anyhow::ensure!(
        first.len() == last.len(),
        "one start and one end per journey"
    );
    // Journeys of `tx_tcp_xmit` alone: the write-queue skb, whose clone went on.
    let alone: Vec<usize> = (0..first.len())
        .filter(|&i| first[i] == Some(xmit) && last[i] == Some(xmit))
        .collect();
    let mut links: Vec<(usize, usize)> = Vec::new();
    if !alone.is_empty() {
        let (t0, seq, rank) = (
            u64s(&starts, "t0")?,
            u64s(&starts, "seq")?,
            u64s(&starts, "first_rank")?,
        );
        let keys = flow_keys(&starts)?;
        let xmit_rank = journey_rank(Stage::TxTcpXmit).unwrap_or(u8::MAX) as u64;
        let start = |i: usize| {
            Some(clone_link::Start {
                idx: i,
                ts: t0[i]?,
                key: (keys[i].clone()?, seq[i]?),
            })
        };
        let clones = (0..first.len())
            .filter(|&i| {
                rank[i].is_some_and(|r| r > xmit_rank)
                    && stage_of_rank(rank[i].unwrap_or(0) as u8).map(|s| s.path())
                        == Some(StagePath::Tx)
            })
            .filter_map(start)
            .collect();
        links = clone_link::link(
            alone.iter().filter_map(|&i| start(i)).collect(),
            clones,
            horizon_ns,
        );
    }
    let n = starts.height();
    let (jid, t0, cpu) = (
        u64s(&starts, "jid")?,
        u64s(&starts, "t0")?,
        u64s(&starts, "cpu")?,
    );
    let mut xmit_ts: Vec<Option<u64>> = vec![None; n];
    let mut xmit_cpu: Vec<Option<u64>> = vec![None; n];
    let mut absorbed = vec![false; n];
    let mut xmit_jid: Vec<Option<u64>> = vec![None; n];
    for &(c, x) in &links {
        xmit_ts[c] = t0[x];
        xmit_cpu[c] = cpu[x];
        xmit_jid[c] = jid[x];
        absorbed[x] = true;
    }
    let mut all = starts;
    all.with_column(Column::new("xmit_ts".into(), xmit_ts))?;
    all.with_column(Column::new("xmit_cpu".into(), xmit_cpu))?;
    all.with_column(Column::new("xmit_jid".into(), xmit_jid))?;
    all.with_column(Column::new("absorbed".into(), absorbed))?;
    let links = collect(q::links(all.clone().lazy()))?;
    let starts = collect(q::joined_starts(all.lazy()))?;
    Ok((starts, links))
}

fn bounds(stages: &[(Stage, u64)]) -> PathBounds {
    let ranks = |path: StagePath| {
        let r: Vec<u8> = stages
            .iter()
            .filter(|(s, _)| s.path() == path && *s != Stage::TxSendmsg)
            .filter_map(|(s, _)| journey_rank(*s))
            .collect();
        (
            r.iter().copied().min().unwrap_or(u8::MAX),
            r.iter().copied().max().unwrap_or(u8::MAX),
        )
    };
    PathBounds {
        tx: ranks(StagePath::Tx),
        rx: ranks(StagePath::Rx),
    }
}

type FlowKey = (String, u64, String, u64);

fn flow_keys(df: &DataFrame) -> PolarsResult<Vec<Option<FlowKey>>> {
    let (sa, sp, da, dp) = (
        strs(df, "saddr")?,
        u64s(df, "sport")?,
        strs(df, "daddr")?,
        u64s(df, "dport")?,
    );
    Ok(sa
        .into_iter()
        .zip(sp)
        .zip(da.into_iter().zip(dp))
        .map(|((sa, sp), (da, dp))| Some((sa?, sp?, da?, dp?)))
        .collect())
}

/// `jid`, `send_ts` for the journeys whose first hop is on TX and whose data was written by a
/// recorded `tx_sendmsg`. A first hop without a socket takes the socket of its flow's writes.
fn match_frame(
    starts: &DataFrame,
    writes: &DataFrame,
    horizon_ns: u64,
) -> anyhow::Result<DataFrame> {
    let (ts, sock, seq, len) = (
        u64s(writes, "ts_ns")?,
        u64s(writes, "sock")?,
        u64s(writes, "seq")?,
        u64s(writes, "len")?,
    );
    let mut flow_sock: HashMap<FlowKey, u64> = HashMap::new();
    for (k, s) in flow_keys(writes)?.into_iter().zip(&sock) {
        if let (Some(k), Some(s)) = (k, s) {
            flow_sock.entry(k).or_insert(*s);
        }
    }
    let mut ws: Vec<Write> = (0..writes.height())
        .filter_map(|i| {
            Some(Write {
                ts: ts[i]?,
                sock: sock[i]?,
                seq: seq[i]? as u32,
                len: len[i]? as u32,
            })
        })
        .collect();
    let (jid, rank, t0, ssock, sseq) = (
        u64s(starts, "jid")?,
        u64s(starts, "first_rank")?,
        u64s(starts, "t0")?,
        u64s(starts, "sock")?,
        u64s(starts, "seq")?,
    );
    let keys = flow_keys(starts)?;
    let mut xs: Vec<Transmission> = (0..starts.height())
        .filter(|&i| {
            rank[i]
                .and_then(|r| stage_of_rank(r as u8))
                .map(|s| s.path())
                == Some(StagePath::Tx)
        })
        .filter_map(|i| {
            let sock = ssock[i].or_else(|| flow_sock.get(keys[i].as_ref()?).copied())?;
            Some(Transmission {
                idx: i,
                t0: t0[i]?,
                sock,
                seq: sseq[i]? as u32,
            })
        })
        .collect();
    let mut found = match_writes(&mut ws, &mut xs, horizon_ns);
    found.sort_unstable();
    let jids: Vec<u32> = found
        .iter()
        .map(|(i, _)| jid[*i].unwrap_or(0) as u32)
        .collect();
    let send: Vec<u64> = found.iter().map(|(_, t)| *t).collect();
    Ok(DataFrame::new_infer_height(vec![
        Column::new("jid".into(), jids),
        Column::new("send_ts".into(), send),
    ])?)
}

/// Durations (ns) of the journey column `dt_ns` (for tests and checks).
pub fn durations(df: &DataFrame) -> PolarsResult<Vec<Option<i64>>> {
    i64s(df, "dt_ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 1_000_000;

    fn w(ts: u64, seq: u32, len: u32) -> Write {
        Write {
            ts,
            sock: 7,
            seq,
            len,
        }
    }
    fn x(idx: usize, t0: u64, seq: u32) -> Transmission {
        Transmission {
            idx,
            t0,
            sock: 7,
            seq,
        }
    }

    #[test]
    fn a_write_split_into_segments_matches_each_segment() {
        let mut ws = [w(100, 1000, 3000)];
        let mut xs = [x(0, 150, 1000), x(1, 160, 2000), x(2, 170, 3000)];
        assert_eq!(
            match_writes(&mut ws, &mut xs, H),
            vec![(0, 100), (1, 100), (2, 100)]
        );
    }

    #[test]
    fn coalesced_writes_match_the_write_holding_the_first_byte() {
        let mut ws = [w(100, 1000, 10), w(110, 1010, 10), w(120, 1020, 10)];
        let mut xs = [x(0, 200, 1000), x(1, 300, 1020)];
        assert_eq!(match_writes(&mut ws, &mut xs, H), vec![(0, 100), (1, 120)]);
    }

    #[test]
    fn retransmissions_and_writes_after_the_transmission_do_not_match() {
        let mut ws = [w(100, 1000, 100), w(500, 1100, 100)];
        // A retransmission of 1000 after 1100 was sent; a transmission before its write.
        let mut xs = [x(0, 150, 1000), x(1, 600, 1100), x(2, 700, 1000)];
        assert_eq!(match_writes(&mut ws, &mut xs, H), vec![(0, 100), (1, 500)]);
        let mut ws = [w(500, 1000, 100)];
        let mut xs = [x(0, 400, 1000)];
        assert!(match_writes(&mut ws, &mut xs, H).is_empty());
    }

    #[test]
    fn transmissions_out_of_order_still_match() {
        let mut ws = [w(100, 1000, 100), w(110, 1100, 100)];
        let mut xs = [x(0, 300, 1000), x(1, 200, 1100)];
        assert_eq!(match_writes(&mut ws, &mut xs, H), vec![(1, 110), (0, 100)]);
    }

    #[test]
    fn writes_older_than_the_horizon_are_not_matched() {
        let mut ws = [w(100, 1000, 100)];
        let mut xs = [x(0, 100 + H + 1, 1000)];
        assert!(match_writes(&mut ws, &mut xs, H).is_empty());
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut ws = [w(100, u32::MAX - 9, 20), w(110, 10, 20)];
        let mut xs = [x(0, 200, u32::MAX - 9), x(1, 210, 5), x(2, 220, 15)];
        assert_eq!(
            match_writes(&mut ws, &mut xs, H),
            vec![(0, 100), (1, 100), (2, 110)]
        );
    }

    #[test]
    fn sockets_are_kept_apart() {
        let mut ws = [
            Write {
                ts: 1,
                sock: 1,
                seq: 0,
                len: 10,
            },
            Write {
                ts: 2,
                sock: 2,
                seq: 0,
                len: 10,
            },
        ];
        let mut xs = [
            Transmission {
                idx: 0,
                t0: 5,
                sock: 2,
                seq: 0,
            },
            Transmission {
                idx: 1,
                t0: 6,
                sock: 3,
                seq: 0,
            },
        ];
        assert_eq!(match_writes(&mut ws, &mut xs, H), vec![(0, 2)]);
    }
}
