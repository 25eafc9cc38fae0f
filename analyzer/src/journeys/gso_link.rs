//! Joining the segments software GSO makes to the skb they were cut from.
//!
//! A NIC without TSO (or a path that cannot offload) gets a large TCP skb segmented by the stack
//! after the qdisc: the skb seen at `tx_dev_queue` and the qdisc stages is freed and the driver is
//! handed new skbs, one per wire segment, with ids of their own. Segmented by packet id, the
//! parent's journey ends before `tx_driver`, and each segment's journey starts there. A qdisc
//! can cut too: tbf segments a GSO skb larger than its burst as it enqueues it, so the parent ends
//! at `tx_qdisc_enq` and each segment's journey starts at `tx_qdisc_deq`.
//!
//! Both sides carry the flow and the TCP sequence: a segment starting at sequence `s` was cut
//! from the latest parent of its flow, ended before the segment's first hop and at most
//! `horizon_ns` earlier, whose range `[seq, seq + len)` holds `s`. Nothing is guessed: a segment
//! whose parent was not recorded keeps a journey that starts at `tx_driver`.

use std::collections::HashMap;

/// A journey that ended before the driver: its index (the caller's), the time of its last hop,
/// its flow and the sequence range of its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    /// Caller's index of the journey.
    pub idx: usize,
    /// Time of its last hop.
    pub end_ts: u64,
    /// Flow id.
    pub flow: u32,
    /// First sequence number.
    pub seq: u32,
    /// Payload bytes.
    pub len: u32,
    /// Journey rank of its last hop.
    pub end_rank: u8,
}

/// A journey that starts where segments appear (the driver, or the qdisc's dequeue): its index,
/// first hop time and rank, flow and sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Caller's index of the journey.
    pub idx: usize,
    /// Time of its first hop.
    pub ts: u64,
    /// Flow id.
    pub flow: u32,
    /// Sequence number.
    pub seq: u32,
    /// Journey rank of its first hop: a parent ended at an earlier stage.
    pub rank: u8,
}

/// How far back from a segment the parents of its flow are searched, at most.
const LOOKBACK: usize = 64;

/// Joins segments to parents: `(segment idx, parent idx)` pairs. A parent may take several
/// segments (that is what segmentation makes); a segment takes at most one parent.
pub fn link(parents: Vec<Parent>, segments: &[Segment], horizon_ns: u64) -> Vec<(usize, usize)> {
    let mut by_flow: HashMap<u32, Vec<Parent>> = HashMap::new();
    for p in parents.into_iter().filter(|p| p.len > 0) {
        by_flow.entry(p.flow).or_default().push(p);
    }
    for v in by_flow.values_mut() {
        v.sort_unstable_by_key(|p| (p.end_ts, p.idx));
    }
    let mut out = Vec::new();
    for s in segments {
        let Some(v) = by_flow.get(&s.flow) else {
            continue;
        };
        let before = v.partition_point(|p| p.end_ts <= s.ts);
        let found = v[..before]
            .iter()
            .rev()
            .take(LOOKBACK)
            .take_while(|p| s.ts - p.end_ts <= horizon_ns)
            .find(|p| p.end_rank < s.rank && s.seq.wrapping_sub(p.seq) < p.len);
        if let Some(p) = found {
            out.push((s.idx, p.idx));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(idx: usize, end_ts: u64, seq: u32, len: u32) -> Parent {
        Parent {
            idx,
            end_ts,
            flow: 1,
            seq,
            len,
            end_rank: 4,
        }
    }
    fn s(idx: usize, ts: u64, seq: u32) -> Segment {
        Segment {
            idx,
            ts,
            flow: 1,
            seq,
            rank: 5,
        }
    }

    #[test]
    fn each_segment_joins_the_skb_whose_range_holds_it() {
        let parents = vec![p(0, 100, 1000, 2896), p(1, 200, 3896, 2896)];
        let segs = [
            s(2, 110, 1000),
            s(3, 111, 2448),
            s(4, 210, 3896),
            s(5, 211, 5344),
        ];
        assert_eq!(
            link(parents, &segs, 1_000),
            vec![(2, 0), (3, 0), (4, 1), (5, 1)]
        );
    }

    #[test]
    fn no_parent_before_the_segment_other_flows_and_old_ones_are_not_joined() {
        let parents = vec![p(0, 500, 1000, 2896)];
        // Before the parent left the qdisc; another flow; beyond the horizon; outside the range.
        assert!(link(parents.clone(), &[s(1, 400, 1000)], 1_000).is_empty());
        let other = Segment {
            flow: 2,
            ..s(1, 600, 1000)
        };
        assert!(link(parents.clone(), &[other], 1_000).is_empty());
        assert!(link(parents.clone(), &[s(1, 1_501, 1000)], 1_000).is_empty());
        assert!(link(parents, &[s(1, 600, 3896)], 1_000).is_empty());
    }

    #[test]
    fn a_parent_ended_at_the_segments_stage_or_later_is_not_joined() {
        // A segment starting at the qdisc's dequeue (rank 4) takes no parent that got that far.
        let seg = Segment {
            rank: 4,
            ..s(1, 600, 1000)
        };
        assert!(link(vec![p(0, 500, 1000, 2896)], &[seg], 1_000).is_empty());
        let parent = Parent {
            end_rank: 3,
            ..p(0, 500, 1000, 2896)
        };
        assert_eq!(link(vec![parent], &[seg], 1_000), vec![(1, 0)]);
    }

    #[test]
    fn a_retransmitted_range_joins_the_latest_parent_and_sequences_wrap() {
        let parents = vec![p(0, 100, 1000, 2896), p(1, 300, 1000, 1448)];
        assert_eq!(link(parents, &[s(2, 310, 1000)], 1_000), vec![(2, 1)]);
        let parents = vec![p(0, 100, u32::MAX - 999, 2896)];
        assert_eq!(link(parents, &[s(1, 110, 448)], 1_000), vec![(1, 0)]);
    }
}
