//! One decoded row of a recording, for code that wants events one at a time (replay, JSON lines,
//! tests) rather than as columns.

use crate::encode::{ip_from_bytes, EncodeContext};
use crate::event::{valid, RawEvent, AF_INET};
use crate::schema::{COLUMNS, V1_COLUMNS};
use crate::stage::Stage;
use crate::tcp_names::{ca_state_name, tcp_state_name};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type};
use arrow_array::{Array, RecordBatch};
use serde::{Deserialize, Serialize};

/// One event as stored in a recording. `None` is a null cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// CLOCK_MONOTONIC ns.
    pub ts_ns: u64,
    /// CPU.
    pub cpu: u16,
    /// Stage name.
    pub kind: String,
    /// Hashed skb id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skb: Option<u64>,
    /// Socket cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sock: Option<u64>,
    /// Process id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Task name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// Network namespace inode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<u32>,
    /// Interface index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifindex: Option<u32>,
    /// 4 or 6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<u8>,
    /// Source address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saddr: Option<String>,
    /// Destination address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daddr: Option<String>,
    /// Source port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<u16>,
    /// Destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dport: Option<u16>,
    /// Byte count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u32>,
    /// TCP sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u32>,
    /// GSO segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segs: Option<u16>,
    /// Error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err: Option<i32>,
    /// Congestion window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwnd: Option<u32>,
    /// Slow-start threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssthresh: Option<u32>,
    /// Smoothed RTT, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srtt_us: Option<u32>,
    /// RTT variance, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rttvar_us: Option<u32>,
    /// Send window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snd_wnd: Option<u32>,
    /// Receive window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcv_wnd: Option<u32>,
    /// Segments in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets_out: Option<u32>,
    /// Retransmitted segments in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrans_out: Option<u32>,
    /// Congestion-avoidance state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_state: Option<String>,
    /// TCP state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Previous TCP state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_state: Option<String>,
    /// Drop reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_reason: Option<String>,
    /// cgroup v2 id of the socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<u64>,
    /// cgroup v2 id of the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_cgroup: Option<u64>,
    /// TCP acknowledgment number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<u32>,
    /// TCP window field, unscaled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u16>,
    /// TCP flags byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_flags: Option<u8>,
    /// TCP header bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_hlen: Option<u8>,
}

impl Record {
    /// The row a raw event becomes when encoded with `ctx`; `None` for an unknown stage.
    pub fn from_raw(ev: &RawEvent, ctx: &EncodeContext) -> Option<Record> {
        let stage = Stage::from_code(ev.kind)?;
        let flow = ev.has_flow();
        let tcp = |v: u32| ev.has(valid::TCP).then_some(v);
        let pid = ev.has(valid::PID);
        Some(Record {
            ts_ns: ev.ts_ns,
            cpu: ev.cpu.min(u16::MAX as u32) as u16,
            kind: stage.name().to_string(),
            skb: ev.has(valid::SKB).then(|| ctx.skb_hasher.hash(ev.skb)),
            sock: ev.has(valid::SOCK).then_some(ev.sock),
            pid: pid.then_some(ev.pid),
            comm: pid.then(|| ev.comm_str().into_owned()),
            netns: ev.has(valid::NETNS).then_some(ev.netns),
            ifindex: ev.has(valid::IFINDEX).then_some(ev.ifindex),
            family: flow.then_some(if ev.family == AF_INET { 4 } else { 6 }),
            saddr: flow
                .then(|| ip_from_bytes(ev.family, &ev.saddr))
                .flatten()
                .map(|a| a.to_string()),
            daddr: flow
                .then(|| ip_from_bytes(ev.family, &ev.daddr))
                .flatten()
                .map(|a| a.to_string()),
            sport: flow.then_some(ev.sport),
            dport: flow.then_some(ev.dport),
            len: ev.has(valid::LEN).then_some(ev.len),
            seq: ev.has(valid::SEQ).then_some(ev.seq),
            segs: ev.has(valid::SEGS).then_some(ev.segs),
            err: ev.has(valid::ERR).then_some(ev.err),
            cwnd: tcp(ev.cwnd),
            ssthresh: tcp(ev.ssthresh),
            srtt_us: tcp(ev.srtt_us),
            rttvar_us: tcp(ev.rttvar_us),
            snd_wnd: tcp(ev.snd_wnd),
            rcv_wnd: tcp(ev.rcv_wnd),
            packets_out: tcp(ev.packets_out),
            retrans_out: tcp(ev.retrans_out),
            ca_state: ev
                .has(valid::CA_STATE)
                .then(|| ca_state_name(ev.ca_state).to_string()),
            state: ev
                .has(valid::STATE)
                .then(|| tcp_state_name(ev.state).to_string()),
            old_state: ev
                .has(valid::STATE)
                .then(|| tcp_state_name(ev.old_state).to_string()),
            drop_reason: ev
                .has(valid::DROP)
                .then(|| ctx.drop_reason_name(ev.drop_reason)),
            cgroup: ev.has(valid::CGROUP).then_some(ev.cgroup),
            task_cgroup: ev.has(valid::TASK_CGROUP).then_some(ev.task_cgroup),
            ack: ev.has(valid::TCP_HDR).then_some(ev.ack),
            window: ev.has(valid::TCP_HDR).then_some(ev.window),
            tcp_flags: ev.has(valid::TCP_HDR).then_some(ev.tcp_flags),
            tcp_hlen: ev.has(valid::TCP_HDR).then_some(ev.tcp_hlen),
        })
    }

    /// Decodes every row of a batch that has the recording schema's columns (by name, in any
    /// order; extra columns are ignored, those version 2 added may be missing: nulls).
    pub fn from_batch(batch: &RecordBatch) -> Result<Vec<Record>, String> {
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| format!("column '{name}' is missing"))
        };
        for (i, (name, ty, _, _)) in COLUMNS.iter().enumerate() {
            let c = match col(name) {
                Ok(c) => c,
                Err(_) if i >= V1_COLUMNS => continue,
                Err(e) => return Err(e),
            };
            if c.data_type() != ty {
                return Err(format!(
                    "column '{name}' is {} (expected {ty})",
                    c.data_type()
                ));
            }
        }
        macro_rules! prim {
            ($name:literal, $t:ty) => {
                col($name)?.as_primitive::<$t>()
            };
        }
        let ts = prim!("ts_ns", UInt64Type);
        let cpu = prim!("cpu", UInt16Type);
        let kind = col("kind")?.as_string::<i32>();
        let skb = prim!("skb", UInt64Type);
        let sock = prim!("sock", UInt64Type);
        let pid = prim!("pid", UInt32Type);
        let comm = col("comm")?.as_string::<i32>();
        let netns = prim!("netns", UInt32Type);
        let ifindex = prim!("ifindex", UInt32Type);
        let family = prim!("family", UInt8Type);
        let saddr = col("saddr")?.as_string::<i32>();
        let daddr = col("daddr")?.as_string::<i32>();
        let sport = prim!("sport", UInt16Type);
        let dport = prim!("dport", UInt16Type);
        let len = prim!("len", UInt32Type);
        let seq = prim!("seq", UInt32Type);
        let segs = prim!("segs", UInt16Type);
        let err = prim!("err", Int32Type);
        let tcp: Vec<_> = [
            "cwnd",
            "ssthresh",
            "srtt_us",
            "rttvar_us",
            "snd_wnd",
            "rcv_wnd",
            "packets_out",
            "retrans_out",
        ]
        .iter()
        .map(|n| col(n).map(|c| c.as_primitive::<UInt32Type>().clone()))
        .collect::<Result<_, _>>()?;
        let ca_state = col("ca_state")?.as_string::<i32>();
        let state = col("state")?.as_string::<i32>();
        let old_state = col("old_state")?.as_string::<i32>();
        let drop_reason = col("drop_reason")?.as_string::<i32>();
        let cgroup = batch
            .column_by_name("cgroup")
            .map(|c| c.as_primitive::<UInt64Type>());
        let task_cgroup = batch
            .column_by_name("task_cgroup")
            .map(|c| c.as_primitive::<UInt64Type>());
        let ack = batch
            .column_by_name("ack")
            .map(|c| c.as_primitive::<UInt32Type>());
        let window = batch
            .column_by_name("window")
            .map(|c| c.as_primitive::<UInt16Type>());
        let tcp_flags = batch
            .column_by_name("tcp_flags")
            .map(|c| c.as_primitive::<UInt8Type>());
        let tcp_hlen = batch
            .column_by_name("tcp_hlen")
            .map(|c| c.as_primitive::<UInt8Type>());
        fn added<T: arrow_array::ArrowPrimitiveType>(
            a: Option<&arrow_array::PrimitiveArray<T>>,
            i: usize,
        ) -> Option<T::Native> {
            a.and_then(|a| a.is_valid(i).then(|| a.value(i)))
        }

        fn opt<A: Array, T>(a: &A, i: usize, get: impl Fn(usize) -> T) -> Option<T> {
            a.is_valid(i).then(|| get(i))
        }
        let text = |a: &arrow_array::StringArray, i: usize| opt(a, i, |i| a.value(i).to_string());
        Ok((0..batch.num_rows())
            .map(|i| Record {
                ts_ns: ts.value(i),
                cpu: cpu.value(i),
                kind: kind.value(i).to_string(),
                skb: opt(skb, i, |i| skb.value(i)),
                sock: opt(sock, i, |i| sock.value(i)),
                pid: opt(pid, i, |i| pid.value(i)),
                comm: text(comm, i),
                netns: opt(netns, i, |i| netns.value(i)),
                ifindex: opt(ifindex, i, |i| ifindex.value(i)),
                family: opt(family, i, |i| family.value(i)),
                saddr: text(saddr, i),
                daddr: text(daddr, i),
                sport: opt(sport, i, |i| sport.value(i)),
                dport: opt(dport, i, |i| dport.value(i)),
                len: opt(len, i, |i| len.value(i)),
                seq: opt(seq, i, |i| seq.value(i)),
                segs: opt(segs, i, |i| segs.value(i)),
                err: opt(err, i, |i| err.value(i)),
                cwnd: opt(&tcp[0], i, |i| tcp[0].value(i)),
                ssthresh: opt(&tcp[1], i, |i| tcp[1].value(i)),
                srtt_us: opt(&tcp[2], i, |i| tcp[2].value(i)),
                rttvar_us: opt(&tcp[3], i, |i| tcp[3].value(i)),
                snd_wnd: opt(&tcp[4], i, |i| tcp[4].value(i)),
                rcv_wnd: opt(&tcp[5], i, |i| tcp[5].value(i)),
                packets_out: opt(&tcp[6], i, |i| tcp[6].value(i)),
                retrans_out: opt(&tcp[7], i, |i| tcp[7].value(i)),
                ca_state: text(ca_state, i),
                state: text(state, i),
                old_state: text(old_state, i),
                drop_reason: text(drop_reason, i),
                cgroup: added(cgroup, i),
                task_cgroup: added(task_cgroup, i),
                ack: added(ack, i),
                window: added(window, i),
                tcp_flags: added(tcp_flags, i),
                tcp_hlen: added(tcp_hlen, i),
            })
            .collect())
    }
}
