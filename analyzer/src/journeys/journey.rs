//! Journeys: one packet's path through the stack, from the events of a recording.
//!
//! Hop events are split per packet id ([`crate::journeys::segment`]). Every hop takes the flow of its
//! journey's first hop: socket hooks (`rx_tcp_est`, `rx_app`) name a flow from the socket's side
//! (local → remote), which on the receiver is the packet's reverse; the first hop of a journey is
//! a packet hook on RX and the sender's socket on TX, both in the packet's direction.
//!
//! The application's writes (`tx_sendmsg`) happen on the socket's write-queue skb, not on the
//! clone TCP transmits, so they are matched to transmissions by socket and TCP sequence range
//! instead: a transmission starting at sequence `s` carries data of the `tx_sendmsg` whose
//! `[seq, seq + len)` holds `s`. Retransmissions (a sequence not beyond the last one matched)
//! are left unmatched, as are transmissions whose write was not recorded. A transmitted clone's
//! journey is joined to its `tx_tcp_xmit` ([`crate::journeys::clone_link`]). Nothing is guessed: journeys
//! that do not span the recorded stages are counted incomplete. A packet that carries no data
//! (its first hop records a length of 0: a pure ACK) spans them when it reaches the latest
//! recorded stage before `rx_app`, since no read follows it.

use crate::journeys::clone_link;
use crate::journeys::gso_link;
use crate::journeys::hop_table::{Flows, Heads, WriteColumns};
use crate::journeys::segment::{segment, Segments};
use crate::queries::journey_input::HopFrame;
use crate::queries::{journey_rank, stage_of_rank};
use std::collections::{BTreeMap, HashMap, VecDeque};
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
                // Data 2 GiB behind the newest write is never sent for the first time (a TCP
                // window is at most 1 GiB): dropping it keeps the queue's sequence numbers
                // within half their space, where the wrapped order below holds, however many
                // GiB a socket sends within the horizon.
                while queue
                    .front()
                    .is_some_and(|p| writes[i].seq.wrapping_sub(p.w.seq) >= 1 << 31)
                {
                    queue.pop_front();
                }
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

/// A journey's first hop: its own, or for a clone joined to its `tx_tcp_xmit`, that one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstHop {
    /// Stage.
    pub stage: Stage,
    /// Journey rank of the stage.
    pub rank: u8,
    /// Time, monotonic ns.
    pub ts: u64,
    /// CPU.
    pub cpu: u16,
}

/// Every adjacent pair of recorded stages of the journeys, one row each: the hops, then
/// `tx_sendmsg → first hop` of matched journeys, then `tx_tcp_xmit → first hop` of joined clones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PairRows {
    /// Earlier stage code.
    pub from: Vec<u8>,
    /// Later stage code.
    pub to: Vec<u8>,
    /// Time between them, ns.
    pub dt: Vec<i64>,
    /// Time of the later one.
    pub ts: Vec<u64>,
    /// CPU of the later one.
    pub cpu: Vec<u16>,
    /// Flow id of the journey ([`Flows`]).
    pub flow: Vec<u32>,
}

impl PairRows {
    fn push(&mut self, from: u8, to: u8, dt: i64, ts: u64, cpu: u16, flow: u32) {
        self.from.push(from);
        self.to.push(to);
        self.dt.push(dt);
        self.ts.push(ts);
        self.cpu.push(cpu);
        self.flow.push(flow);
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.dt.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.dt.is_empty()
    }
}

const NONE: u32 = u32::MAX;

/// The journeys of a recording.
pub struct Journeys {
    /// Packet id, socket and sequence number of each journey's first hop.
    pub head: Heads,
    /// Their flows (and the writes').
    pub flows: Flows,
    /// The split into journeys.
    pub seg: Segments,
    /// Per journey: the flow id of its first hop.
    flow: Vec<u32>,
    /// Per journey: the `tx_tcp_xmit` journey a clone was joined to, or `NONE`.
    xmit_of: Vec<u32>,
    /// Per journey: a `tx_tcp_xmit` joined to a clone, or a GSO skb joined to its segments,
    /// whose journey it now leads.
    absorbed: Vec<bool>,
    /// Per journey: the skb a software-GSO segment was cut from, or `NONE`.
    gso_parent: Vec<u32>,
    /// Per journey: the time of the write its data came from.
    send_ts: Vec<Option<u64>>,
    /// Per journey: spans the recorded stages of its path.
    complete: Vec<bool>,
    /// Hop stages recorded, with their event counts (after repeats are folded).
    pub stages: Vec<(Stage, u64)>,
    /// Counts.
    pub counts: JourneyCounts,
}

impl Journeys {
    /// Builds journeys from hop events (`hops`: the packet stages without `tx_sendmsg`) and the
    /// writes (`tx_sendmsg` events with `ts_ns`, `sock`, `seq`, `len` and the flow), which
    /// `writes` gives when they are needed (they may still be read meanwhile).
    pub fn build(
        hops: HopFrame,
        writes: impl FnOnce() -> anyhow::Result<WriteColumns>,
        max_gap_ns: u64,
    ) -> anyhow::Result<Journeys> {
        let table = hops.table()?;
        let seg = segment(&table, hops.packet_ids()?, max_gap_ns);
        drop(table);
        let n = seg.journeys();
        let firsts: Vec<u32> = (0..n).map(|k| seg.rows[seg.start[k] as usize]).collect();
        // What is read of the first hops only; the other columns are in the table.
        let (head, head_flows) = hops.heads(firsts)?;
        drop(hops);
        let mut flows = Flows::default();
        let flow = flows.intern(&head_flows);
        drop(head_flows);
        let mut per_stage = [0u64; 256];
        for &s in &seg.stage {
            per_stage[s as usize] += 1;
        }
        let stages: Vec<(Stage, u64)> = (0..=u8::MAX)
            .filter(|&c| per_stage[c as usize] > 0)
            .filter_map(|c| Some((Stage::from_code(c)?, per_stage[c as usize])))
            .collect();
        let mut j = Journeys {
            head,
            flows,
            seg,
            flow,
            xmit_of: vec![NONE; n],
            absorbed: vec![false; n],
            gso_parent: vec![NONE; n],
            send_ts: vec![None; n],
            complete: vec![false; n],
            stages,
            counts: JourneyCounts::default(),
        };
        j.join_clones(max_gap_ns);
        j.join_segments(max_gap_ns);
        let writes = writes()?;
        let matched = j.match_writes(&writes, max_gap_ns)?;
        let b = bounds(&j.stages);
        let rx0 = journey_rank(Stage::RxDriver).expect("hop stage");
        let (mut total, mut complete, mut tx_starts) = (0, 0, 0);
        for k in 0..n {
            if j.absorbed[k] {
                continue;
            }
            let first = j.first_hop(k);
            let last = j.seg.rank[j.last_pos(k)];
            let starts_ok = if first.rank < rx0 {
                first.rank == b.tx.0
            } else {
                first.rank == b.rx.0
            };
            // A packet without data (a pure ACK) ends where TCP takes it: no read follows.
            let ends_ok = if last < rx0 {
                last == b.tx.1
            } else if j.head.len[k] == Some(0) {
                last == b.rx_no_data
            } else {
                last == b.rx.1
            };
            j.complete[k] = starts_ok && ends_ok;
            total += 1;
            complete += u64::from(j.complete[k]);
            tx_starts += u64::from(j.transmits(k));
        }
        j.counts = JourneyCounts {
            total,
            complete,
            incomplete: total - complete,
            writes: writes.ts.len() as u64,
            matched_to_write: matched,
            tx_unmatched: tx_starts.saturating_sub(matched),
        };
        Ok(j)
    }

    /// Number of journeys, joined `tx_tcp_xmit` ones included ([`Journeys::shown`]).
    pub fn len(&self) -> usize {
        self.seg.journeys()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// False for a `tx_tcp_xmit` journey joined to its clone's, which it now leads.
    pub fn shown(&self, k: usize) -> bool {
        !self.absorbed[k]
    }

    /// True when journey `k` is shown and starts on the TX path (a transmission).
    fn transmits(&self, k: usize) -> bool {
        self.shown(k) && self.first_hop(k).stage.path() == StagePath::Tx
    }

    /// Position of journey `k`'s first hop in the segmented columns.
    fn first_pos(&self, k: usize) -> usize {
        self.seg.start[k] as usize
    }

    /// Position of its last hop.
    fn last_pos(&self, k: usize) -> usize {
        self.seg.start[k + 1] as usize - 1
    }

    /// The journey's own first hop (for a joined clone, the hop after `tx_tcp_xmit`).
    pub fn own_first_hop(&self, k: usize) -> FirstHop {
        let (p, s) = (self.first_pos(k), &self.seg);
        FirstHop {
            stage: Stage::from_code(s.stage[p]).expect("a hop stage"),
            rank: s.rank[p],
            ts: s.ts[p],
            cpu: s.cpu[p],
        }
    }

    /// The first hop of journey `k`: a joined clone's starts at its `tx_tcp_xmit`, a GSO
    /// segment's where the skb it was cut from starts.
    pub fn first_hop(&self, k: usize) -> FirstHop {
        if let Some(p) = self.gso_parent(k) {
            return self.first_hop(p);
        }
        match self.xmit_of[k] {
            NONE => self.own_first_hop(k),
            x => self.own_first_hop(x as usize),
        }
    }

    /// The journey of the skb GSO cut segment `k` from, when joined.
    pub fn gso_parent(&self, k: usize) -> Option<usize> {
        (self.gso_parent[k] != NONE).then_some(self.gso_parent[k] as usize)
    }

    /// The last hop (time, stage code) of the skb a GSO segment was cut from.
    fn gso_parent_end(&self, k: usize) -> Option<(u64, u8)> {
        let at = self.last_pos(self.gso_parent(k)?);
        Some((self.seg.ts[at], self.seg.stage[at]))
    }

    /// The `tx_tcp_xmit` (time, CPU) a clone's journey was joined to.
    pub fn xmit(&self, k: usize) -> Option<(u64, u16)> {
        match self.xmit_of[k] {
            NONE => None,
            x => {
                let f = self.own_first_hop(x as usize);
                Some((f.ts, f.cpu))
            }
        }
    }

    /// Time of the write journey `k`'s data came from, when matched.
    pub fn send_ts(&self, k: usize) -> Option<u64> {
        self.send_ts[k]
    }

    /// True when journey `k` spans the recorded stages of its path.
    pub fn complete(&self, k: usize) -> bool {
        self.complete[k]
    }

    /// Flow id of journey `k` (of its first hop).
    pub fn flow(&self, k: usize) -> u32 {
        self.flow[k]
    }

    /// Hop events kept in journeys (repeats folded).
    pub fn hop_events(&self) -> usize {
        self.seg.rows.len()
    }

    /// Every adjacent pair of recorded stages, as [`PairRows`] describes.
    pub fn pair_rows(&self) -> PairRows {
        let s = &self.seg;
        let n = self.hop_events();
        let mut out = PairRows {
            from: Vec::with_capacity(n),
            to: Vec::with_capacity(n),
            dt: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            cpu: Vec::with_capacity(n),
            flow: Vec::with_capacity(n),
        };
        for k in 0..self.len() {
            let flow = self.flow(k);
            let range = s.range(k);
            for r in range.start + 1..range.end {
                let p = r - 1;
                out.push(
                    s.stage[p],
                    s.stage[r],
                    s.ts[r] as i64 - s.ts[p] as i64,
                    s.ts[r],
                    s.cpu[r],
                    flow,
                );
            }
        }
        for k in 0..self.len() {
            if let (Some(w), true) = (self.send_ts[k], self.shown(k)) {
                let f = self.first_hop(k);
                let dt = f.ts as i64 - w as i64;
                let code = f.stage.code();
                out.push(Stage::TxSendmsg.code(), code, dt, f.ts, f.cpu, self.flow(k));
            }
        }
        // A GSO segment: from the last hop of the skb it was cut from to its own first.
        for k in 0..self.len() {
            if let Some((pt, pstage)) = self.gso_parent_end(k) {
                let f = self.own_first_hop(k);
                let dt = f.ts as i64 - pt as i64;
                out.push(pstage, f.stage.code(), dt, f.ts, f.cpu, self.flow(k));
            }
        }
        for k in 0..self.len() {
            if let Some((xt, _)) = self.xmit(k) {
                let f = self.own_first_hop(k);
                let dt = f.ts as i64 - xt as i64;
                let code = f.stage.code();
                out.push(Stage::TxTcpXmit.code(), code, dt, f.ts, f.cpu, self.flow(k));
            }
        }
        out
    }

    /// The complete journeys that span more than one stage, by (first, last) stage as the
    /// end-to-end figures take them: the first is `tx_sendmsg` when the data was matched to a
    /// write. Each is (time of the last hop, duration), in journey order.
    pub fn end_to_end(&self) -> BTreeMap<(Stage, Stage), Vec<(u64, i64)>> {
        let mut out: BTreeMap<(Stage, Stage), Vec<(u64, i64)>> = BTreeMap::new();
        for k in (0..self.len()).filter(|&k| self.shown(k) && self.complete[k]) {
            let f = self.first_hop(k);
            let last = self.last_pos(k);
            let t1 = self.seg.ts[last];
            let from = match self.send_ts[k] {
                Some(_) => Stage::TxSendmsg,
                None => f.stage,
            };
            let to = Stage::from_code(self.seg.stage[last]).expect("a hop stage");
            if from != to {
                let dt = t1 as i64 - self.send_ts[k].unwrap_or(f.ts) as i64;
                out.entry((from, to)).or_default().push((t1, dt));
            }
        }
        out
    }

    /// Joins the journeys of transmitted clones to their `tx_tcp_xmit` ([`crate::journeys::clone_link`]).
    fn join_clones(&mut self, horizon_ns: u64) {
        let xmit = Stage::TxTcpXmit;
        let xmit_rank = journey_rank(xmit).unwrap_or(u8::MAX);
        let start = |k: usize| {
            let flow = self.flows.flow(self.flow[k]).map(|_| self.flow[k])?;
            Some(clone_link::Start {
                idx: k,
                ts: self.seg.ts[self.first_pos(k)],
                key: (flow, self.head.seq[k]?),
            })
        };
        // Journeys of `tx_tcp_xmit` alone: the write-queue skb, whose clone went on.
        let alone: Vec<_> = (0..self.len())
            .filter(|&k| {
                self.seg.stage[self.first_pos(k)] == xmit.code()
                    && self.seg.stage[self.last_pos(k)] == xmit.code()
            })
            .filter_map(start)
            .collect();
        if alone.is_empty() {
            return;
        }
        let clones = (0..self.len())
            .filter(|&k| {
                let rank = self.seg.rank[self.first_pos(k)];
                rank > xmit_rank && stage_of_rank(rank).map(|s| s.path()) == Some(StagePath::Tx)
            })
            .filter_map(start)
            .collect();
        for (c, x) in clone_link::link(alone, clones, horizon_ns) {
            self.xmit_of[c] = x as u32;
            self.absorbed[x] = true;
        }
    }

    /// Joins the segments software GSO cut to their skb ([`crate::journeys::gso_link`]): journeys
    /// that start at `tx_driver` (cut after the qdisc) or at `tx_qdisc_deq` (cut by the qdisc as
    /// it took the skb) to journeys that ended on TX before that stage.
    fn join_segments(&mut self, horizon_ns: u64) {
        let driver = journey_rank(Stage::TxDriver).unwrap_or(u8::MAX);
        let dequeue = journey_rank(Stage::TxQdiscDeq).unwrap_or(u8::MAX);
        let segments: Vec<gso_link::Segment> = (0..self.len())
            .filter(|&k| {
                let r = self.seg.rank[self.first_pos(k)];
                r == driver || r == dequeue
            })
            .filter_map(|k| {
                self.flows.flow(self.flow[k])?;
                Some(gso_link::Segment {
                    idx: k,
                    ts: self.seg.ts[self.first_pos(k)],
                    flow: self.flow[k],
                    seq: self.head.seq[k]?,
                    rank: self.seg.rank[self.first_pos(k)],
                })
            })
            .collect();
        if segments.is_empty() {
            return;
        }
        // Shown journeys only: a tx_tcp_xmit joined to its clone goes on as the clone's.
        let parents: Vec<gso_link::Parent> = (0..self.len())
            .filter(|&k| self.shown(k) && self.seg.rank[self.last_pos(k)] < driver)
            .filter_map(|k| {
                self.flows.flow(self.flow[k])?;
                Some(gso_link::Parent {
                    idx: k,
                    end_ts: self.seg.ts[self.last_pos(k)],
                    flow: self.flow[k],
                    seq: self.head.seq[k]?,
                    len: self.head.len[k]?,
                    end_rank: self.seg.rank[self.last_pos(k)],
                })
            })
            .collect();
        for (seg, parent) in gso_link::link(parents, &segments, horizon_ns) {
            self.gso_parent[seg] = parent as u32;
            self.absorbed[parent] = true;
        }
    }

    /// Matches the journeys whose first hop is on TX to the recorded writes; returns how many
    /// were. A first hop without a socket takes the socket of its flow's writes.
    fn match_writes(&mut self, writes: &WriteColumns, horizon_ns: u64) -> anyhow::Result<u64> {
        let (ts, sock, seq, len) = (&writes.ts, &writes.sock, &writes.seq, &writes.len);
        let mut flow_sock: HashMap<u32, u64> = HashMap::new();
        // Only needed (and read) when a transmission names no socket.
        let need_flows = (0..self.len()).any(|k| self.transmits(k) && self.head.sock[k].is_none());
        if need_flows {
            let write_flows = self.flows.intern(&writes.flows);
            for (f, s) in write_flows.iter().zip(sock) {
                if let (Some(_), Some(s)) = (self.flows.flow(*f), s) {
                    flow_sock.entry(*f).or_insert(*s);
                }
            }
        }
        let mut ws: Vec<Write> = (0..ts.len())
            .filter_map(|i| {
                Some(Write {
                    ts: ts[i]?,
                    sock: sock[i]?,
                    seq: seq[i]?,
                    len: len[i]?,
                })
            })
            .collect();
        let mut xs: Vec<Transmission> = (0..self.len())
            .filter(|&k| self.transmits(k))
            .filter_map(|k| {
                let flow = self.flow[k];
                let sock = self.head.sock[k].or_else(|| flow_sock.get(&flow).copied())?;
                Some(Transmission {
                    idx: k,
                    t0: self.first_hop(k).ts,
                    sock,
                    seq: self.head.seq[k]?,
                })
            })
            .collect();
        let found = match_writes(&mut ws, &mut xs, horizon_ns);
        for &(k, t) in &found {
            self.send_ts[k] = Some(t);
        }
        Ok(found.len() as u64)
    }
}

/// The earliest and latest journey rank recorded on each path (`u8::MAX` when none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PathBounds {
    /// (earliest, latest) TX rank, without `tx_sendmsg` (matched separately).
    tx: (u8, u8),
    /// (earliest, latest) RX rank.
    rx: (u8, u8),
    /// Latest RX rank a packet without data reaches: the latest but `rx_app`.
    rx_no_data: u8,
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
    let rx_no_data = stages
        .iter()
        .filter(|(s, _)| s.path() == StagePath::Rx && *s != Stage::RxApp)
        .filter_map(|(s, _)| journey_rank(*s))
        .max()
        .unwrap_or(u8::MAX);
    PathBounds {
        tx: ranks(StagePath::Tx),
        rx: ranks(StagePath::Rx),
        rx_no_data,
    }
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
    fn more_than_4_gib_within_the_horizon_matches_the_latest_writes() {
        // 1 GiB writes, five of them within the horizon: the sequence space wraps once and the
        // first write's range holds the fifth's sequence numbers again.
        const G: u32 = 1 << 30;
        let mut ws: Vec<Write> = (0..5u32)
            .map(|k| w(100 + u64::from(k), k.wrapping_mul(G), G))
            .collect();
        // The fifth write (seq 4 GiB ≡ 0) holds 10, sent once (the second is a retransmission);
        // the fourth holds 3 GiB + 7.
        let mut xs = [x(0, 200, 10), x(1, 201, 10), x(2, 202, 3 * G + 7)];
        assert_eq!(match_writes(&mut ws, &mut xs, H), vec![(0, 104), (2, 103)]);
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
