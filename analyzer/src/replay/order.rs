//! Time order from a stream of events that is nearly in order.
//!
//! The recorder writes events in the order the ring buffer delivers them, which is the order
//! they were reserved: events of different CPUs can be a few microseconds out of order. A
//! bounded buffer restores the order within a window, so printing a recording of any size holds
//! at most a window's worth of events (and never more than a fixed count) in memory.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

struct Held<T> {
    ts: u64,
    n: u64,
    item: T,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, o: &Self) -> bool {
        (self.ts, self.n) == (o.ts, o.n)
    }
}
impl<T> Eq for Held<T> {}
impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Held<T> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.ts, self.n).cmp(&(o.ts, o.n))
    }
}

/// A reorder buffer: push items with their time, take them out in time order once no earlier
/// item can still arrive within the window.
pub struct Reorder<T> {
    heap: BinaryHeap<Reverse<Held<T>>>,
    window_ns: u64,
    max_items: usize,
    newest: u64,
    last_out: Option<u64>,
    n: u64,
    /// Items that arrived after a later one had been released (more out of order than the
    /// window): released at once, so they break the order; counted for a warning.
    pub late: u64,
}

impl<T> Reorder<T> {
    /// A buffer holding items up to `window_ns` and at most `max_items`.
    pub fn new(window_ns: u64, max_items: usize) -> Reorder<T> {
        Reorder {
            heap: BinaryHeap::new(),
            window_ns,
            max_items: max_items.max(1),
            newest: 0,
            last_out: None,
            n: 0,
            late: 0,
        }
    }

    /// Adds an item; returns the items now safe to release, in time order.
    pub fn push(&mut self, ts: u64, item: T, out: &mut Vec<T>) {
        if self.last_out.is_some_and(|l| ts < l) {
            self.late += 1;
        }
        self.newest = self.newest.max(ts);
        self.n += 1;
        self.heap.push(Reverse(Held {
            ts,
            n: self.n,
            item,
        }));
        while let Some(Reverse(top)) = self.heap.peek() {
            let ripe = top.ts.saturating_add(self.window_ns) <= self.newest;
            if !ripe && self.heap.len() <= self.max_items {
                break;
            }
            self.release(out);
        }
    }

    fn release(&mut self, out: &mut Vec<T>) {
        if let Some(Reverse(h)) = self.heap.pop() {
            self.last_out = Some(self.last_out.map_or(h.ts, |l| l.max(h.ts)));
            out.push(h.item);
        }
    }

    /// Releases everything left, in time order.
    pub fn finish(&mut self, out: &mut Vec<T>) {
        while !self.heap.is_empty() {
            self.release(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(window: u64, max: usize, ts: &[u64]) -> (Vec<u64>, u64) {
        let mut r = Reorder::new(window, max);
        let mut out = Vec::new();
        for &t in ts {
            r.push(t, t, &mut out);
        }
        r.finish(&mut out);
        (out, r.late)
    }

    #[test]
    fn disorder_within_the_window_is_repaired() {
        let (out, late) = run(10, 1000, &[5, 3, 9, 7, 20, 15, 31, 40, 38]);
        assert_eq!(out, [3, 5, 7, 9, 15, 20, 31, 38, 40]);
        assert_eq!(late, 0);
    }

    #[test]
    fn memory_is_bounded_and_older_stragglers_are_counted() {
        let ts: Vec<u64> = (0..10_000).collect();
        let mut r = Reorder::new(u64::MAX / 2, 64);
        let mut out = Vec::new();
        for &t in &ts {
            r.push(t, t, &mut out);
            assert!(r.heap.len() <= 64);
        }
        r.finish(&mut out);
        assert_eq!(out, ts);
        // An event far older than the window comes out late, and is counted.
        let (out, late) = run(10, 1000, &[100, 200, 300, 50]);
        assert_eq!(out, [100, 200, 50, 300]);
        assert_eq!(late, 1);
    }
}
