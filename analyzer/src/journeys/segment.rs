//! Splitting hop events into journeys, in one pass over the rows in (packet id, time) order.
//!
//! Hop events are ordered by packet id and time; a new journey starts at the first event of a
//! packet id, and again when the id is evidently reused: the stage order goes backwards (the
//! kernel freed the skb and allocated the same address for another packet), the previous event
//! was the TX completion (`tx_done`: the skb was freed), more than the allowed gap passed, or the
//! next hop is of another packet (other ports in the packet's direction, or another sequence
//! number). On veth and loopback the sender's skb itself is received, so its TX hops go on as RX
//! hops of the same packet; on a NIC a transmitted skb is freed and its memory soon carries a
//! received packet (typically an ACK of the other direction) or another transmitted one.
//! A stage seen twice in a row (stacked devices, partial reads) keeps its first occurrence.
//!
//! The order is found by a radix sort of the packet id's top 33 bits with the row number, which
//! is stable, so rows of one id stay in their recorded order. Packet ids are keyed hashes, evenly
//! spread: ids that share their top 33 bits are rare, and only those runs are then sorted by the
//! whole id; the few ids whose rows were recorded out of time order are sorted by time. Half the
//! passes of a sort of the whole id, and nothing but row numbers moves.

use crate::journeys::hop_table::HopTable;
use crate::journeys::radix::radix_sort_spread;
use tcptape_common::Stage;

/// True for the receive path's socket stages, which name the ports from the receiving socket's
/// side (the packet's reverse); older and synthetic recordings may have them either way.
fn socket_side(h: &HopTable, i: usize) -> bool {
    h.stage[i] == Stage::RxTcpEst.code() || h.stage[i] == Stage::RxApp.code()
}

/// True when row `r`, a later hop of the packet id of row `p`, can be that very packet: its ports
/// in the packet's direction and its sequence number agree wherever both rows know them. (On
/// veth and loopback the sender's skb itself is received and keeps both; a freed skb's memory
/// soon holds another packet: an ACK of the other direction, or another segment.)
fn same_packet(h: &HopTable, p: usize, r: usize) -> bool {
    let agree = |a: Option<u16>, b: Option<u16>| a.is_none() || b.is_none() || a == b;
    let ports = |(a, b): (Option<u16>, Option<u16>), (c, d): (Option<u16>, Option<u16>)| {
        agree(a, c) && agree(b, d)
    };
    let (pp, rp) = ((h.sport[p], h.dport[p]), (h.sport[r], h.dport[r]));
    let ports_agree = if socket_side(h, p) != socket_side(h, r) {
        ports(pp, (rp.1, rp.0)) || ports(pp, rp)
    } else {
        ports(pp, rp)
    };
    let seq_agrees = h.seq[p].is_none() || h.seq[r].is_none() || h.seq[p] == h.seq[r];
    ports_agree && seq_agrees
}

/// The journeys of a [`HopTable`]: its rows without repeated stages, journey by journey, each
/// journey's in time order, with the columns every later step reads in that order (so they read
/// memory in sequence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segments {
    /// Kept rows of the hop table.
    pub rows: Vec<u32>,
    /// Where each journey starts in `rows`, and `rows.len()` last: journey `k` (numbered `k + 1`
    /// where shown) is `rows[start[k]..start[k + 1]]`.
    pub start: Vec<u32>,
    /// Time of each kept row, in `rows` order.
    pub ts: Vec<u64>,
    /// Stage code of each kept row.
    pub stage: Vec<u8>,
    /// Journey rank of each kept row.
    pub rank: Vec<u8>,
    /// CPU of each kept row.
    pub cpu: Vec<u16>,
}

impl Segments {
    /// Number of journeys.
    pub fn journeys(&self) -> usize {
        self.start.len().saturating_sub(1)
    }

    /// The positions (in `rows` and the columns) of journey `k`.
    pub fn range(&self, k: usize) -> std::ops::Range<usize> {
        self.start[k] as usize..self.start[k + 1] as usize
    }
}

/// Splits hop events into journeys: `ids` are the (packet id, row) of the events that have one
/// ([`crate::journeys::hop_table::packet_ids`]); the others are left out.
pub fn segment(h: &HopTable, ids: Vec<(u64, u32)>, max_gap_ns: u64) -> Segments {
    let (ts, stage, rank) = (&h.ts, &h.stage, &h.rank);
    // The id rotated so that its top 33 bits are the low ones, which the radix sort sorts by.
    const TOP: u32 = 33;
    let mut order = ids;
    for (id, _) in order.iter_mut() {
        *id = id.rotate_left(TOP);
    }
    radix_sort_spread(&mut order, TOP);
    let top = |k: u64| k & ((1 << TOP) - 1);
    let mut a = 0;
    while a < order.len() {
        let mut b = a + 1;
        let mut one_id = true;
        while b < order.len() && top(order[b].0) == top(order[a].0) {
            one_id &= order[b].0 == order[a].0;
            b += 1;
        }
        if !one_id {
            // Stable: each id's rows keep their recorded order.
            order[a..b].sort_by_key(|&(k, _)| k.rotate_right(TOP));
        }
        a = b;
    }
    // Rows of one id out of time order: sort that id's rows by time.
    let mut a = 0;
    while a < order.len() {
        let mut b = a + 1;
        let mut sorted = true;
        while b < order.len() && order[b].0 == order[a].0 {
            sorted &= ts[order[b - 1].1 as usize] <= ts[order[b].1 as usize];
            b += 1;
        }
        if !sorted {
            order[a..b].sort_by_key(|&(_, r)| ts[r as usize]);
        }
        a = b;
    }

    let tx_done = Stage::TxDone.code();
    let n = order.len();
    let mut seg = Segments {
        rows: Vec::with_capacity(n),
        start: Vec::new(),
        ts: Vec::with_capacity(n),
        stage: Vec::with_capacity(n),
        rank: Vec::with_capacity(n),
        cpu: Vec::with_capacity(n),
    };
    let mut prev: Option<(u64, usize)> = None;
    for &(id, r) in &order {
        let r = r as usize;
        // The previous row, repeats included (as the rules compare with it).
        let new = match prev {
            None => true,
            Some((pid, p)) => {
                pid != id
                    || ts[r] as i64 - ts[p] as i64 > max_gap_ns as i64
                    || stage[p] == tx_done
                    || rank[r] < rank[p]
                    || !same_packet(h, p, r)
            }
        };
        let repeat = !new && prev.is_some_and(|(_, p)| stage[p] == stage[r]);
        prev = Some((id, r));
        if repeat {
            continue; // A repeat keeps the first time.
        }
        if new {
            seg.start.push(seg.rows.len() as u32);
        }
        seg.rows.push(r as u32);
        seg.ts.push(ts[r]);
        seg.stage.push(stage[r]);
        seg.rank.push(rank[r]);
        seg.cpu.push(h.cpu[r]);
    }
    seg.start.push(seg.rows.len() as u32);
    seg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::journey_rank;

    /// A hop: time, stage, ports and sequence number.
    type Hop = (u64, Stage, u16, u16, u32);

    fn table(hops: &[Hop]) -> HopTable {
        HopTable {
            ts: hops.iter().map(|h| h.0).collect(),
            stage: hops.iter().map(|h| h.1.code()).collect(),
            rank: hops.iter().map(|h| journey_rank(h.1).unwrap()).collect(),
            cpu: vec![0; hops.len()],
            sport: hops.iter().map(|h| Some(h.2)).collect(),
            dport: hops.iter().map(|h| Some(h.3)).collect(),
            seq: hops.iter().map(|h| Some(h.4)).collect(),
        }
    }

    fn journeys_of_one_skb(hops: &[Hop]) -> usize {
        let t = table(hops);
        let ids = (0..hops.len() as u32).map(|r| (0xabcd, r)).collect();
        segment(&t, ids, u64::MAX / 2).journeys()
    }

    #[test]
    fn an_skb_handed_from_tx_to_rx_is_one_journey() {
        // veth: the sender's skb is the receiver's, ports and sequence unchanged; the socket
        // stage names the ports from the receiving socket's side.
        let hops = [
            (10, Stage::TxDevQueue, 40000, 80, 1000),
            (20, Stage::TxDriver, 40000, 80, 1000),
            (30, Stage::RxDriver, 40000, 80, 1000),
            (40, Stage::RxTcpEst, 80, 40000, 1000),
        ];
        assert_eq!(journeys_of_one_skb(&hops), 1);
        // Without a packet stage on RX, the socket stage alone continues it.
        assert_eq!(journeys_of_one_skb(&[hops[0], hops[1], hops[3]]), 1);
    }

    #[test]
    fn a_freed_tx_skb_reused_for_a_received_ack_starts_a_new_journey() {
        // A NIC: data sent, the skb freed, its memory then holds an ACK of the other direction.
        let hops = [
            (10, Stage::TxDevQueue, 40000, 80, 1000),
            (20, Stage::TxDriver, 40000, 80, 1000),
            (900, Stage::RxDriver, 80, 40000, 5555),
            (910, Stage::RxTcpEst, 40000, 80, 5555),
        ];
        assert_eq!(journeys_of_one_skb(&hops), 2);
        // The same direction, another sequence number: another packet too.
        let hops = [
            (10, Stage::TxDriver, 40000, 80, 1000),
            (900, Stage::RxDriver, 40000, 80, 9000),
        ];
        assert_eq!(journeys_of_one_skb(&hops), 2);
    }

    #[test]
    fn a_later_tx_hop_of_another_segment_starts_a_new_journey() {
        // A GSO skb freed after segmentation: its memory is handed to the driver later as
        // another segment, which is not this packet's continuation.
        let hops = [
            (10, Stage::TxDevQueue, 5002, 40000, 1000),
            (1_500, Stage::TxDriver, 5002, 40000, 7000),
        ];
        assert_eq!(journeys_of_one_skb(&hops), 2);
        let same = [
            (10, Stage::TxDevQueue, 5002, 40000, 1000),
            (20, Stage::TxDriver, 5002, 40000, 1000),
        ];
        assert_eq!(journeys_of_one_skb(&same), 1);
    }
}
