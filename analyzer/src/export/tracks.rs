//! Tracks of a Perfetto trace: one process per flow (either direction of a connection shares
//! it), and within it one thread per lane. Journeys of one flow overlap in time (a window of
//! packets is in flight), and slices on one thread must nest, so each journey goes into the
//! first lane that is free when it starts.

use crate::queries::select::Flow;
use std::collections::HashMap;

/// The thread that holds a flow's TCP events (retransmits, drops).
pub const TCP_TID: u64 = 1;
/// Lanes of journeys start at this thread id.
const FIRST_LANE_TID: u64 = 2;

/// One flow's track group.
#[derive(Debug, Clone)]
pub struct FlowTrack {
    /// Process id in the trace.
    pub pid: u64,
    /// The flow as first seen.
    pub flow: Option<Flow>,
    /// End time (ns) of the last journey in each lane.
    pub lanes: Vec<i64>,
}

/// The flows seen so far.
#[derive(Debug, Default)]
pub struct Tracks {
    by_flow: HashMap<Option<Flow>, u64>,
    /// The pid of the first flow, less one (the pids of several hosts' tracks must not meet).
    pid_base: u64,
    /// Every flow track, by pid − 1 − `pid_base`.
    pub flows: Vec<FlowTrack>,
}

impl Tracks {
    /// Tracks whose pids start after `pid_base`.
    pub fn after(pid_base: u64) -> Tracks {
        Tracks {
            pid_base,
            ..Tracks::default()
        }
    }

    /// The pid of a flow (or of its reverse), created when new; the bool is true when new.
    pub fn pid(&mut self, flow: &Option<Flow>) -> (u64, bool) {
        if let Some(&p) = self.by_flow.get(flow) {
            return (p, false);
        }
        if let Some(f) = flow {
            if let Some(&p) = self.by_flow.get(&Some(f.reversed())) {
                return (p, false);
            }
        }
        let pid = self.pid_base + self.flows.len() as u64 + 1;
        self.by_flow.insert(flow.clone(), pid);
        self.flows.push(FlowTrack {
            pid,
            flow: flow.clone(),
            lanes: Vec::new(),
        });
        (pid, true)
    }

    /// The pid of a flow or its reverse, if already known (events of a flow without journeys
    /// are left out).
    pub fn known(&self, flow: &Option<Flow>) -> Option<u64> {
        self.by_flow.get(flow).copied().or_else(|| {
            flow.as_ref()
                .and_then(|f| self.by_flow.get(&Some(f.reversed())).copied())
        })
    }

    /// The lane (thread id) for a journey of `pid` spanning `[start, end]`; the bool is true
    /// when the lane is new.
    pub fn lane(&mut self, pid: u64, start: i64, end: i64) -> (u64, bool) {
        let lanes = &mut self.flows[(pid - self.pid_base) as usize - 1].lanes;
        match lanes.iter().position(|&e| e <= start) {
            Some(i) => {
                lanes[i] = end;
                (FIRST_LANE_TID + i as u64, false)
            }
            None => {
                lanes.push(end);
                (FIRST_LANE_TID + lanes.len() as u64 - 1, true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_and_its_reverse_share_a_track_and_overlapping_journeys_get_lanes() {
        let f: Flow = "10.0.0.1:1-10.0.0.2:2".parse().unwrap();
        let mut t = Tracks::default();
        assert_eq!(t.pid(&Some(f.clone())), (1, true));
        assert_eq!(t.pid(&Some(f.reversed())), (1, false));
        assert_eq!(t.pid(&None), (2, true));
        assert_eq!(t.lane(1, 0, 100), (2, true));
        assert_eq!(t.lane(1, 50, 150), (3, true));
        assert_eq!(t.lane(1, 100, 120), (2, false));
        assert_eq!(t.lane(1, 130, 140), (2, false));
        assert_eq!(t.lane(1, 151, 200), (2, false));
        let mut second_host = Tracks::after(1_000_000);
        assert_eq!(second_host.pid(&Some(f)), (1_000_001, true));
        assert_eq!(second_host.lane(1_000_001, 0, 10), (2, true));
    }
}
