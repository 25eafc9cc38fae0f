//! What journeys are built from, as plain columns: the hop events the journey split, the clone
//! join and the latency sort read millions of times by row number, the columns of each journey's
//! first hop, and the application's writes. [`crate::queries::journey_input`] fills them from a
//! recording; nothing here knows how a recording is read.
//!
//! Flows are interned to small ids ([`Flows`]), for the first hop of each journey only (every hop
//! takes its journey's flow): a flow's text (addresses) is read once per flow, not per event.

use crate::queries::select::Flow;
use rustc_hash::FxHashMap;

/// A flow as the recording's columns name it: address category ids and ports (`None` where the
/// event has none). Equal keys are equal flows: addresses are global categories.
pub type FlowKey = (Option<u32>, Option<u16>, Option<u32>, Option<u16>);

/// The flow id of events that name no flow (no source port).
pub const NO_FLOW: u32 = 0;

/// The flows of a set of frames, numbered from 1 in order of first appearance.
pub struct Flows {
    ids: FxHashMap<FlowKey, u32>,
    /// Each id as a flow, `None` where a part is unknown.
    flows: Vec<Option<Flow>>,
}

impl Default for Flows {
    fn default() -> Flows {
        Flows {
            ids: FxHashMap::default(),
            flows: vec![None],
        }
    }
}

impl Flows {
    /// The flow id of every row of `cols`: [`NO_FLOW`] where the source port is unknown.
    pub fn intern(&mut self, cols: &FlowColumns) -> Vec<u32> {
        let n = cols.sport.len();
        let mut out = Vec::with_capacity(n);
        let mut last: Option<(FlowKey, u32)> = None;
        for i in 0..n {
            if cols.sport[i].is_none() {
                out.push(NO_FLOW);
                continue;
            }
            let key = (cols.saddr[i], cols.sport[i], cols.daddr[i], cols.dport[i]);
            // Consecutive events are often of one flow.
            let id = match last {
                Some((k, id)) if k == key => id,
                _ => {
                    // Ids from 1: 0 is NO_FLOW.
                    let next = self.ids.len() as u32 + 1;
                    let id = *self.ids.entry(key).or_insert(next);
                    if id == next {
                        self.flows.push(cols.flow(key));
                    }
                    last = Some((key, id));
                    id
                }
            };
            out.push(id);
        }
        out
    }

    /// A flow id as a flow, when all four parts are known.
    pub fn flow(&self, id: u32) -> Option<&Flow> {
        self.flows[id as usize].as_ref()
    }

    /// Every flow id's flow, by id.
    pub fn all(&self) -> &[Option<Flow>] {
        &self.flows
    }
}

/// Hop events (the columns of [`crate::queries::scan::HOP_COLUMNS`] with `stage` and `rank`),
/// one vector per column, in the order they were collected.
pub struct HopTable {
    /// Event time, monotonic ns.
    pub ts: Vec<u64>,
    /// Stage code.
    pub stage: Vec<u8>,
    /// Journey rank of the stage.
    pub rank: Vec<u8>,
    /// CPU.
    pub cpu: Vec<u16>,
    /// Source port, as the event names it (the socket's side for socket stages).
    pub sport: Vec<Option<u16>>,
    /// Destination port, likewise.
    pub dport: Vec<Option<u16>>,
    /// TCP sequence number.
    pub seq: Vec<Option<u32>>,
}

/// The flow columns of a set of rows: address ids (categories of the recording's address text)
/// and ports, `None` where the row has none.
#[derive(Debug, Clone)]
pub struct FlowColumns {
    /// Source address id.
    pub saddr: Vec<Option<u32>>,
    /// Source port.
    pub sport: Vec<Option<u16>>,
    /// Destination address id.
    pub daddr: Vec<Option<u32>>,
    /// Destination port.
    pub dport: Vec<Option<u16>>,
    /// The text of an address id.
    pub address: fn(u32) -> Option<String>,
}

impl FlowColumns {
    /// A key as a flow, when all four parts are known.
    fn flow(&self, key: FlowKey) -> Option<Flow> {
        match key {
            (Some(sa), Some(sport), Some(da), Some(dport)) => Some(Flow {
                saddr: (self.address)(sa)?,
                sport,
                daddr: (self.address)(da)?,
                dport,
            }),
            _ => None,
        }
    }
}

/// Columns of each journey's own first hop, read for those rows only.
pub struct Heads {
    /// Packet id.
    pub skb: Vec<Option<u64>>,
    /// Socket cookie.
    pub sock: Vec<Option<u64>>,
    /// TCP sequence number.
    pub seq: Vec<Option<u32>>,
    /// Sequence space the packet takes (payload, and 1 for SYN or FIN at `tx_tcp_xmit`).
    pub len: Vec<Option<u32>>,
}

/// The application's writes (`tx_sendmsg` events), one entry per event.
#[derive(Debug, Clone)]
pub struct WriteColumns {
    /// Time, monotonic ns.
    pub ts: Vec<Option<u64>>,
    /// Socket cookie.
    pub sock: Vec<Option<u64>>,
    /// First sequence number written.
    pub seq: Vec<Option<u32>>,
    /// Bytes written.
    pub len: Vec<Option<u32>>,
    /// Their flows.
    pub flows: FlowColumns,
}
