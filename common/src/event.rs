//! The kernel→user event: one fixed-layout struct, written by the eBPF programs into the ring
//! buffer and decoded here.
//!
//! The C mirror is `ebpf/include/event.h`. Both sides assert the same size and offsets at compile
//! time, and a test in the `tcptape-ebpf` crate compiles the header with the host C compiler and
//! compares every offset, so the two definitions cannot drift apart silently.

use std::mem::{offset_of, size_of};

/// Bits of [`RawEvent::valid`]: which optional field groups an event carries.
pub mod valid {
    /// `skb` holds an skb address (hashed before it is written to a file).
    pub const SKB: u32 = 1 << 0;
    /// `sock` holds the socket cookie.
    pub const SOCK: u32 = 1 << 1;
    /// `pid` and `comm` describe the task the event ran in.
    pub const PID: u32 = 1 << 2;
    /// `netns` holds the network namespace inode.
    pub const NETNS: u32 = 1 << 3;
    /// `ifindex` holds the interface index.
    pub const IFINDEX: u32 = 1 << 4;
    /// `family`, `saddr`, `daddr`, `sport`, `dport` describe the flow.
    pub const FLOW: u32 = 1 << 5;
    /// `len` holds a byte count (payload, skb length or buffer bytes, by stage).
    pub const LEN: u32 = 1 << 6;
    /// `seq` holds a TCP sequence number.
    pub const SEQ: u32 = 1 << 7;
    /// `cwnd` … `retrans_out` hold a congestion-control snapshot.
    pub const TCP: u32 = 1 << 8;
    /// `state` and `old_state` hold TCP states.
    pub const STATE: u32 = 1 << 9;
    /// `ca_state` holds the congestion-avoidance state.
    pub const CA_STATE: u32 = 1 << 10;
    /// `drop_reason` holds the kernel's `enum skb_drop_reason` value.
    pub const DROP: u32 = 1 << 11;
    /// `err` holds an error or return code.
    pub const ERR: u32 = 1 << 12;
    /// `segs` holds a segment count (GSO segments of a retransmission).
    pub const SEGS: u32 = 1 << 13;
    /// `cgroup` holds the cgroup v2 id of the event's socket.
    pub const CGROUP: u32 = 1 << 14;
    /// `task_cgroup` holds the cgroup v2 id of the task the event ran in.
    pub const TASK_CGROUP: u32 = 1 << 15;
    /// `ack`, `window`, `tcp_flags` and `tcp_hlen` come from the packet's TCP header.
    pub const TCP_HDR: u32 = 1 << 16;
    /// Every bit defined in schema version 2.
    pub const ALL: u32 = (1 << 17) - 1;
}

/// `family` value for IPv4 (the kernel's `AF_INET`).
pub const AF_INET: u16 = 2;
/// `family` value for IPv6 (the kernel's `AF_INET6`).
pub const AF_INET6: u16 = 10;

/// One event as the eBPF programs emit it. Plain old data: fixed-width fields, explicit padding
/// (none is needed: the fields are ordered by alignment), no pointers.
///
/// Fields not covered by a bit in [`RawEvent::valid`] are zero and mean nothing.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawEvent {
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// skb address; never written to a file as is (see [`crate::encode::SkbHasher`]).
    pub skb: u64,
    /// Socket cookie (`bpf_get_socket_cookie`), stable for the socket's life.
    pub sock: u64,
    /// Source address: IPv4 in the first 4 bytes (network order), or IPv6.
    pub saddr: [u8; 16],
    /// Destination address, as `saddr`.
    pub daddr: [u8; 16],
    /// Task name, NUL-padded.
    pub comm: [u8; 16],
    /// TCP sequence number (host order).
    pub seq: u32,
    /// Byte count; what it counts depends on the stage.
    pub len: u32,
    /// Thread-group id (the user-visible pid).
    pub pid: u32,
    /// Network namespace inode number.
    pub netns: u32,
    /// Interface index.
    pub ifindex: u32,
    /// CPU the event ran on.
    pub cpu: u32,
    /// Congestion window, in segments.
    pub cwnd: u32,
    /// Slow-start threshold, in segments.
    pub ssthresh: u32,
    /// Smoothed RTT, microseconds.
    pub srtt_us: u32,
    /// RTT variance, microseconds.
    pub rttvar_us: u32,
    /// Send window, bytes.
    pub snd_wnd: u32,
    /// Receive window, bytes.
    pub rcv_wnd: u32,
    /// Segments in flight.
    pub packets_out: u32,
    /// Retransmitted segments in flight.
    pub retrans_out: u32,
    /// `enum skb_drop_reason` value (names come from the recording host's BTF).
    pub drop_reason: u32,
    /// Error / return code (a retransmission's `err`).
    pub err: i32,
    /// Bit set of [`valid`] flags.
    pub valid: u32,
    /// Source port (host order).
    pub sport: u16,
    /// Destination port (host order).
    pub dport: u16,
    /// [`AF_INET`] or [`AF_INET6`].
    pub family: u16,
    /// Segment count (GSO segments).
    pub segs: u16,
    /// [`crate::stage::Stage`] code.
    pub kind: u8,
    /// TCP state (`TCP_ESTABLISHED` = 1 …).
    pub state: u8,
    /// Previous TCP state.
    pub old_state: u8,
    /// Congestion-avoidance state (`TCP_CA_Open` = 0 …).
    pub ca_state: u8,
    /// cgroup v2 id of the socket (its own cgroup, so softirq events are attributed too).
    pub cgroup: u64,
    /// cgroup v2 id of the task the event ran in (process context only).
    pub task_cgroup: u64,
    /// TCP acknowledgment number (host order).
    pub ack: u32,
    /// TCP window field as on the wire (unscaled, host order).
    pub window: u16,
    /// TCP flags byte (FIN 0x01 … CWR 0x80).
    pub tcp_flags: u8,
    /// TCP header length in bytes, options included.
    pub tcp_hlen: u8,
}

/// Size of [`RawEvent`] in bytes; the C header asserts the same number.
pub const RAW_EVENT_SIZE: usize = 176;

const _: () = assert!(size_of::<RawEvent>() == RAW_EVENT_SIZE);
const _: () = assert!(std::mem::align_of::<RawEvent>() == 8);
const _: () = assert!(offset_of!(RawEvent, saddr) == 24);
const _: () = assert!(offset_of!(RawEvent, comm) == 56);
const _: () = assert!(offset_of!(RawEvent, seq) == 72);
const _: () = assert!(offset_of!(RawEvent, err) == 132);
const _: () = assert!(offset_of!(RawEvent, valid) == 136);
const _: () = assert!(offset_of!(RawEvent, sport) == 140);
const _: () = assert!(offset_of!(RawEvent, kind) == 148);
const _: () = assert!(offset_of!(RawEvent, ca_state) == 151);
const _: () = assert!(offset_of!(RawEvent, cgroup) == 152);
const _: () = assert!(offset_of!(RawEvent, ack) == 168);
const _: () = assert!(offset_of!(RawEvent, tcp_hlen) == 175);

/// Every field with its offset, for the cross-language layout test.
pub const RAW_EVENT_FIELDS: &[(&str, usize)] = &[
    ("ts_ns", offset_of!(RawEvent, ts_ns)),
    ("skb", offset_of!(RawEvent, skb)),
    ("sock", offset_of!(RawEvent, sock)),
    ("saddr", offset_of!(RawEvent, saddr)),
    ("daddr", offset_of!(RawEvent, daddr)),
    ("comm", offset_of!(RawEvent, comm)),
    ("seq", offset_of!(RawEvent, seq)),
    ("len", offset_of!(RawEvent, len)),
    ("pid", offset_of!(RawEvent, pid)),
    ("netns", offset_of!(RawEvent, netns)),
    ("ifindex", offset_of!(RawEvent, ifindex)),
    ("cpu", offset_of!(RawEvent, cpu)),
    ("cwnd", offset_of!(RawEvent, cwnd)),
    ("ssthresh", offset_of!(RawEvent, ssthresh)),
    ("srtt_us", offset_of!(RawEvent, srtt_us)),
    ("rttvar_us", offset_of!(RawEvent, rttvar_us)),
    ("snd_wnd", offset_of!(RawEvent, snd_wnd)),
    ("rcv_wnd", offset_of!(RawEvent, rcv_wnd)),
    ("packets_out", offset_of!(RawEvent, packets_out)),
    ("retrans_out", offset_of!(RawEvent, retrans_out)),
    ("drop_reason", offset_of!(RawEvent, drop_reason)),
    ("err", offset_of!(RawEvent, err)),
    ("valid", offset_of!(RawEvent, valid)),
    ("sport", offset_of!(RawEvent, sport)),
    ("dport", offset_of!(RawEvent, dport)),
    ("family", offset_of!(RawEvent, family)),
    ("segs", offset_of!(RawEvent, segs)),
    ("kind", offset_of!(RawEvent, kind)),
    ("state", offset_of!(RawEvent, state)),
    ("old_state", offset_of!(RawEvent, old_state)),
    ("ca_state", offset_of!(RawEvent, ca_state)),
    ("cgroup", offset_of!(RawEvent, cgroup)),
    ("task_cgroup", offset_of!(RawEvent, task_cgroup)),
    ("ack", offset_of!(RawEvent, ack)),
    ("window", offset_of!(RawEvent, window)),
    ("tcp_flags", offset_of!(RawEvent, tcp_flags)),
    ("tcp_hlen", offset_of!(RawEvent, tcp_hlen)),
];

// SAFETY: `RawEvent` is `repr(C)`, has no padding (asserted above: the fields add up to the size)
// and every bit pattern is a valid value of every field.
#[cfg(feature = "aya")]
unsafe impl aya::Pod for RawEvent {}

/// Events a CPU stages before writing them into its ring as one record (`TCPTAPE_BATCH_EVENTS`).
pub const BATCH_EVENTS: usize = 16;
/// Nesting levels of staging per CPU (`TCPTAPE_BATCH_LEVELS`): process context, softirq, hardirq.
pub const BATCH_LEVELS: usize = 3;

/// One level of a CPU's staged events (`struct tcptape_batch`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawBatch {
    /// Time of the first staged event.
    pub first_ns: u64,
    /// Events staged in `events`.
    pub count: u32,
    /// Padding.
    pub pad: u32,
    /// The staged events, `count` of them valid.
    pub events: [RawEvent; BATCH_EVENTS],
}

/// A CPU's staging memory (`struct tcptape_batches`), read once the programs are detached for the
/// events that had not filled a batch yet.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawBatches {
    /// Levels in use (0 once every program has finished).
    pub depth: u32,
    /// Padding.
    pub pad: u32,
    /// One batch per nesting level.
    pub level: [RawBatch; BATCH_LEVELS],
}

const _: () = assert!(size_of::<RawBatch>() == 2832);
const _: () = assert!(offset_of!(RawBatch, events) == 16);
const _: () = assert!(size_of::<RawBatches>() == 8504);
const _: () = assert!(offset_of!(RawBatches, level) == 8);

/// Offsets of the staging structs' fields, for the cross-language layout test: (C struct, field,
/// offset), and the sizes.
pub const RAW_BATCH_LAYOUT: &[(&str, &str, usize)] = &[
    ("tcptape_batch", "first_ns", offset_of!(RawBatch, first_ns)),
    ("tcptape_batch", "count", offset_of!(RawBatch, count)),
    ("tcptape_batch", "events", offset_of!(RawBatch, events)),
    ("tcptape_batches", "depth", offset_of!(RawBatches, depth)),
    ("tcptape_batches", "level", offset_of!(RawBatches, level)),
];

impl RawBatches {
    /// The events staged at every level, in level order.
    pub fn staged(&self) -> impl Iterator<Item = &RawEvent> + '_ {
        self.level
            .iter()
            .flat_map(|b| &b.events[..(b.count as usize).min(BATCH_EVENTS)])
    }
}

// SAFETY: `repr(C)` of `RawEvent`s and u32/u64 fields with explicit padding (sizes asserted above);
// every bit pattern is valid.
#[cfg(feature = "aya")]
unsafe impl aya::Pod for RawBatches {}

/// Why a byte buffer is not a [`RawEvent`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer is shorter than an event.
    #[error("event record is {got} bytes, expected {RAW_EVENT_SIZE}")]
    Short {
        /// Bytes received.
        got: usize,
    },
    /// The stage code is not one this version knows.
    #[error("unknown stage code {0}")]
    UnknownStage(u8),
}

impl RawEvent {
    /// Decodes one event from a ring-buffer record. The record may be unaligned; bytes past the
    /// event are ignored (a newer eBPF object may append fields).
    pub fn from_bytes(buf: &[u8]) -> Result<RawEvent, DecodeError> {
        if buf.len() < RAW_EVENT_SIZE {
            return Err(DecodeError::Short { got: buf.len() });
        }
        // SAFETY: the length is checked above, `read_unaligned` has no alignment requirement and
        // every bit pattern is a valid `RawEvent`.
        let ev = unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<RawEvent>()) };
        if crate::stage::Stage::from_code(ev.kind).is_none() {
            return Err(DecodeError::UnknownStage(ev.kind));
        }
        Ok(ev)
    }

    /// The event's bytes, as the kernel would write them.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: plain old data without padding.
        unsafe {
            std::slice::from_raw_parts((self as *const RawEvent).cast::<u8>(), RAW_EVENT_SIZE)
        }
    }

    /// True when every bit of `flags` is set in `valid`.
    pub const fn has(&self, flags: u32) -> bool {
        self.valid & flags == flags
    }

    /// True when the event carries a flow the files can name: `FLOW` valid and an IPv4 or IPv6
    /// family (any other family's addresses are not written).
    pub const fn has_flow(&self) -> bool {
        self.has(valid::FLOW) && matches!(self.family, AF_INET | AF_INET6)
    }

    /// The task name up to its first NUL, lossily decoded.
    pub fn comm_str(&self) -> std::borrow::Cow<'_, str> {
        let end = self
            .comm
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.comm.len());
        String::from_utf8_lossy(&self.comm[..end])
    }

    /// Sets `comm` from a string, truncated to 15 bytes and NUL-terminated as the kernel does.
    pub fn set_comm(&mut self, name: &str) {
        self.comm = [0; 16];
        let n = name.len().min(15);
        self.comm[..n].copy_from_slice(&name.as_bytes()[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_cover_the_struct_without_gaps() {
        let sizes: std::collections::HashMap<&str, usize> = [
            ("saddr", 16),
            ("daddr", 16),
            ("comm", 16),
            ("ts_ns", 8),
            ("skb", 8),
            ("sock", 8),
            ("sport", 2),
            ("dport", 2),
            ("family", 2),
            ("segs", 2),
            ("kind", 1),
            ("state", 1),
            ("old_state", 1),
            ("ca_state", 1),
            ("cgroup", 8),
            ("task_cgroup", 8),
            ("window", 2),
            ("tcp_flags", 1),
            ("tcp_hlen", 1),
        ]
        .into_iter()
        .collect();
        let mut spans: Vec<(usize, usize)> = RAW_EVENT_FIELDS
            .iter()
            .map(|(name, off)| (*off, off + sizes.get(name).copied().unwrap_or(4)))
            .collect();
        spans.sort();
        let mut end = 0;
        for (start, stop) in spans {
            assert_eq!(start, end, "gap or overlap at offset {start}");
            end = stop;
        }
        assert_eq!(end, RAW_EVENT_SIZE);
    }

    #[test]
    fn staged_events_are_the_counted_ones_of_every_level() {
        let mut b = RawBatches::default();
        b.level[0].count = 2;
        b.level[0].events[1].seq = 1;
        b.level[2].count = 1;
        b.level[2].events[0].seq = 2;
        b.level[1].events[0].seq = 99; // not counted
        let seqs: Vec<u32> = b.staged().map(|e| e.seq).collect();
        assert_eq!(seqs, [0, 1, 2]);
        // A count the kernel never writes still stays within the batch.
        b.level[1].count = u32::MAX;
        assert_eq!(b.staged().count(), 3 + BATCH_EVENTS);
    }

    #[test]
    fn decodes_unaligned_and_rejects_short_or_unknown() {
        let mut ev = RawEvent {
            ts_ns: 42,
            kind: 5,
            seq: 7,
            ..Default::default()
        };
        ev.set_comm("a-very-long-task-name");
        let mut buf = vec![0u8; 1];
        buf.extend_from_slice(ev.as_bytes());
        buf.extend_from_slice(&[9, 9, 9]);
        assert_eq!(RawEvent::from_bytes(&buf[1..]).unwrap(), ev);
        assert_eq!(ev.comm_str(), "a-very-long-tas");
        assert_eq!(
            RawEvent::from_bytes(&buf[1..100]),
            Err(DecodeError::Short { got: 99 })
        );
        ev.kind = 0;
        assert_eq!(
            RawEvent::from_bytes(ev.as_bytes()),
            Err(DecodeError::UnknownStage(0))
        );
    }
}
