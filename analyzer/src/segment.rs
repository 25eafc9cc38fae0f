//! Splitting hop events into journeys, in one pass over the rows in (packet id, time) order.
//!
//! Hop events are ordered by packet id and time; a new journey starts at the first event of a
//! packet id, and again when the id is evidently reused: the stage order goes backwards (the
//! kernel freed the skb and allocated the same address for another packet), the previous event
//! was the TX completion (`tx_done`: the skb was freed), or more than the allowed gap passed.
//! A stage seen twice in a row (stacked devices, partial reads) keeps its first occurrence.
//!
//! The order is found by a radix sort of the packet id's top 33 bits with the row number, which
//! is stable, so rows of one id stay in their recorded order. Packet ids are keyed hashes, evenly
//! spread: ids that share their top 33 bits are rare, and only those runs are then sorted by the
//! whole id; the few ids whose rows were recorded out of time order are sorted by time. Half the
//! passes of a sort of the whole id, and nothing but row numbers moves.

use crate::hop_table::HopTable;
use crate::radix::radix_sort_spread;
use tcptape_common::Stage;

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
/// ([`crate::hop_table::packet_ids`]); the others are left out.
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
