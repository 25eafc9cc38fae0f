//! Joining a transmitted clone's journey to its `tx_tcp_xmit`.
//!
//! `tx_tcp_xmit` (`__tcp_transmit_skb`) is handed the skb of the socket's write queue. For data
//! the kernel keeps that skb for retransmission and sends a clone of it, so on a real kernel the
//! data's `tx_tcp_xmit` has another packet id than every later hop: segmented by packet id, it
//! is a journey of its own (only `tx_tcp_xmit` hops), and the clone's journey starts at the
//! next TX stage. Pure ACKs and control segments are sent without a clone and keep one id.
//!
//! Both sides carry the flow and the TCP sequence number of the segment, so the clone's journey
//! is joined to the latest `tx_tcp_xmit`-only journey of its flow and sequence number before
//! it, unless that one is joined already (a retransmission whose `tx_tcp_xmit` was folded into
//! the first transmission's, as a stage seen twice in a row): nothing is guessed, and a clone
//! without its own `tx_tcp_xmit` stays an incomplete journey.

use std::collections::HashMap;
use std::hash::Hash;

/// A journey start: its index (the caller's), time and linking key (flow and sequence number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start<K> {
    /// Caller's index of the journey.
    pub idx: usize,
    /// Time of its first hop.
    pub ts: u64,
    /// Flow and sequence number.
    pub key: K,
}

/// Joins clones to transmissions: returns `(clone idx, xmit idx)` pairs.
///
/// Each clone takes the latest transmission with its key at or before its first hop and at most
/// `horizon_ns` earlier, when no earlier clone took it.
pub fn link<K: Hash + Eq>(
    xmits: Vec<Start<K>>,
    mut clones: Vec<Start<K>>,
    horizon_ns: u64,
) -> Vec<(usize, usize)> {
    // Per key, (time, idx, taken) in time order.
    let mut by_key: HashMap<K, Vec<(u64, usize, bool)>> = HashMap::new();
    for x in xmits {
        by_key.entry(x.key).or_default().push((x.ts, x.idx, false));
    }
    for v in by_key.values_mut() {
        v.sort_unstable();
    }
    clones.sort_by_key(|c| (c.ts, c.idx));
    let mut out = Vec::new();
    for c in clones {
        let Some(v) = by_key.get_mut(&c.key) else {
            continue;
        };
        let Some(k) = v.partition_point(|x| x.0 <= c.ts).checked_sub(1) else {
            continue;
        };
        let x = &mut v[k];
        if !x.2 && c.ts - x.0 <= horizon_ns {
            x.2 = true;
            out.push((c.idx, x.1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(idx: usize, ts: u64, seq: u32) -> Start<u32> {
        Start { idx, ts, key: seq }
    }

    #[test]
    fn a_clone_joins_the_transmission_of_its_sequence_number() {
        let xs = vec![s(0, 100, 1000), s(1, 110, 2000)];
        let cs = vec![s(2, 130, 2000), s(3, 120, 1000), s(4, 140, 3000)];
        assert_eq!(link(xs, cs, 1_000), vec![(3, 0), (2, 1)]);
    }

    #[test]
    fn a_transmission_joins_one_clone_and_never_a_later_one() {
        // The retransmission's clone (at 500) finds the first transmission taken: unlinked.
        let xs = vec![s(0, 100, 1000)];
        let cs = vec![s(1, 120, 1000), s(2, 500, 1000)];
        assert_eq!(link(xs, cs, 1_000), vec![(1, 0)]);
        // A clone before any transmission, or beyond the horizon, is unlinked.
        let xs = vec![s(0, 100, 1000)];
        assert!(link(xs.clone(), vec![s(1, 90, 1000)], 1_000).is_empty());
        assert!(link(xs, vec![s(1, 1_101, 1000)], 1_000).is_empty());
    }

    #[test]
    fn the_latest_transmission_is_taken() {
        // A retransmission recorded as its own journey: its clone is the later one's.
        let xs = vec![s(0, 100, 1000), s(1, 400, 1000)];
        let cs = vec![s(2, 110, 1000), s(3, 410, 1000)];
        assert_eq!(link(xs, cs, 1_000), vec![(2, 0), (3, 1)]);
    }
}
