//! Raw events → Arrow record batches: the one place where kernel values become file values.
//!
//! This is where skb addresses are keyed-hashed ([`SkbHasher`]), addresses become text, and state
//! and drop-reason numbers become names. It runs on the writer thread, off the ring-buffer path.

use crate::event::{valid, RawEvent, AF_INET, AF_INET6};
use crate::schema::arrow_schema;
use crate::stage::Stage;
use crate::tcp_names::{ca_state_name, tcp_state_name};
use arrow_array::builder::{
    Int32Builder, StringBuilder, UInt16Builder, UInt32Builder, UInt64Builder, UInt8Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use rustc_hash::FxHashMap;
use std::collections::HashMap;
use std::hash::Hasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Keyed hash of skb addresses. The key is random per recording and never stored, so a file
/// links events of one packet without revealing any kernel address.
#[derive(Clone)]
pub struct SkbHasher {
    key: [u8; 16],
}

impl SkbHasher {
    /// A hasher with this key.
    pub fn new(key: [u8; 16]) -> SkbHasher {
        SkbHasher { key }
    }

    /// A hasher with a fresh random key.
    pub fn random() -> SkbHasher {
        SkbHasher::new(rand::random())
    }

    /// The packet id written for an skb address.
    pub fn hash(&self, addr: u64) -> u64 {
        let mut h = siphasher::sip::SipHasher13::new_with_key(&self.key);
        h.write_u64(addr);
        h.finish()
    }
}

impl std::fmt::Debug for SkbHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SkbHasher(<key hidden>)")
    }
}

/// The address of an event's `saddr`/`daddr` bytes for a family.
pub fn ip_from_bytes(family: u16, bytes: &[u8; 16]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(*bytes))),
        _ => None,
    }
}

/// What turns kernel numbers into file values for one recording.
#[derive(Debug, Clone)]
pub struct EncodeContext {
    /// Hash for skb addresses.
    pub skb_hasher: SkbHasher,
    /// `enum skb_drop_reason` names of the recording host (from its BTF), by value.
    pub drop_reasons: HashMap<u32, String>,
}

impl EncodeContext {
    /// A context with a random skb key and the given drop-reason names.
    pub fn new(drop_reasons: HashMap<u32, String>) -> EncodeContext {
        EncodeContext {
            skb_hasher: SkbHasher::random(),
            drop_reasons,
        }
    }

    /// The name stored for a drop reason value.
    pub fn drop_reason_name(&self, value: u32) -> String {
        self.drop_reasons
            .get(&value)
            .cloned()
            .unwrap_or_else(|| format!("reason_{value}"))
    }
}

/// Text caches kept across batches: the same few addresses and task names repeat millions of
/// times, and formatting them once is what keeps the writer fast.
/// FxHash: these keys come from the kernel, not from someone choosing collisions, and SipHash
/// was a measurable part of the writer's time.
#[derive(Default)]
struct TextCache {
    addrs: FxHashMap<(u16, [u8; 16]), Option<String>>,
    comms: FxHashMap<[u8; 16], String>,
    drops: FxHashMap<u32, String>,
}

const CACHE_LIMIT: usize = 1 << 16;

impl TextCache {
    fn addr(&mut self, family: u16, bytes: &[u8; 16]) -> Option<&str> {
        if self.addrs.len() >= CACHE_LIMIT {
            self.addrs.clear();
        }
        self.addrs
            .entry((family, *bytes))
            .or_insert_with(|| ip_from_bytes(family, bytes).map(|ip| ip.to_string()))
            .as_deref()
    }

    fn comm(&mut self, ev: &RawEvent) -> &str {
        if self.comms.len() >= CACHE_LIMIT {
            self.comms.clear();
        }
        self.comms
            .entry(ev.comm)
            .or_insert_with(|| ev.comm_str().into_owned())
    }
}

/// Builds record batches from raw events. Keep one per recording: it caches formatted text.
pub struct BatchEncoder {
    ctx: EncodeContext,
    cache: TextCache,
}

impl BatchEncoder {
    /// An encoder for one recording.
    pub fn new(ctx: EncodeContext) -> BatchEncoder {
        BatchEncoder {
            ctx,
            cache: TextCache::default(),
        }
    }

    /// The context this encoder applies.
    pub fn context(&self) -> &EncodeContext {
        &self.ctx
    }

    /// Encodes events into one batch with [`arrow_schema`]. Events with an unknown stage code
    /// are skipped (the decoder already refuses them).
    pub fn encode(&mut self, events: &[RawEvent]) -> RecordBatch {
        let n = events.len();
        let mut ts = UInt64Builder::with_capacity(n);
        let mut cpu = UInt16Builder::with_capacity(n);
        let mut kind = StringBuilder::with_capacity(n, n * 10);
        let mut skb = UInt64Builder::with_capacity(n);
        let mut sock = UInt64Builder::with_capacity(n);
        let mut pid = UInt32Builder::with_capacity(n);
        let mut comm = StringBuilder::with_capacity(n, n * 8);
        let mut netns = UInt32Builder::with_capacity(n);
        let mut ifindex = UInt32Builder::with_capacity(n);
        let mut family = UInt8Builder::with_capacity(n);
        let mut saddr = StringBuilder::with_capacity(n, n * 10);
        let mut daddr = StringBuilder::with_capacity(n, n * 10);
        let mut sport = UInt16Builder::with_capacity(n);
        let mut dport = UInt16Builder::with_capacity(n);
        let mut len = UInt32Builder::with_capacity(n);
        let mut seq = UInt32Builder::with_capacity(n);
        let mut segs = UInt16Builder::with_capacity(n);
        let mut err = Int32Builder::with_capacity(n);
        let mut tcp: [UInt32Builder; 8] = std::array::from_fn(|_| UInt32Builder::with_capacity(n));
        let mut ca_state = StringBuilder::with_capacity(n, 0);
        let mut state = StringBuilder::with_capacity(n, 0);
        let mut old_state = StringBuilder::with_capacity(n, 0);
        let mut drop_reason = StringBuilder::with_capacity(n, 0);
        let mut cgroup = UInt64Builder::with_capacity(n);
        let mut task_cgroup = UInt64Builder::with_capacity(n);
        let mut ack = UInt32Builder::with_capacity(n);
        let mut window = UInt16Builder::with_capacity(n);
        let mut tcp_flags = UInt8Builder::with_capacity(n);
        let mut tcp_hlen = UInt8Builder::with_capacity(n);

        for ev in events {
            let Some(stage) = Stage::from_code(ev.kind) else {
                continue;
            };
            ts.append_value(ev.ts_ns);
            cpu.append_value(ev.cpu.min(u16::MAX as u32) as u16);
            kind.append_value(stage.name());
            skb.append_option(ev.has(valid::SKB).then(|| self.ctx.skb_hasher.hash(ev.skb)));
            sock.append_option(ev.has(valid::SOCK).then_some(ev.sock));
            if ev.has(valid::PID) {
                pid.append_value(ev.pid);
                comm.append_value(self.cache.comm(ev));
            } else {
                pid.append_null();
                comm.append_null();
            }
            netns.append_option(ev.has(valid::NETNS).then_some(ev.netns));
            ifindex.append_option(ev.has(valid::IFINDEX).then_some(ev.ifindex));
            let flow = ev.has(valid::FLOW) && matches!(ev.family, AF_INET | AF_INET6);
            if flow {
                family.append_value(if ev.family == AF_INET { 4 } else { 6 });
                saddr.append_option(self.cache.addr(ev.family, &ev.saddr));
                daddr.append_option(self.cache.addr(ev.family, &ev.daddr));
                sport.append_value(ev.sport);
                dport.append_value(ev.dport);
            } else {
                family.append_null();
                saddr.append_null();
                daddr.append_null();
                sport.append_null();
                dport.append_null();
            }
            len.append_option(ev.has(valid::LEN).then_some(ev.len));
            seq.append_option(ev.has(valid::SEQ).then_some(ev.seq));
            segs.append_option(ev.has(valid::SEGS).then_some(ev.segs));
            err.append_option(ev.has(valid::ERR).then_some(ev.err));
            let values = [
                ev.cwnd,
                ev.ssthresh,
                ev.srtt_us,
                ev.rttvar_us,
                ev.snd_wnd,
                ev.rcv_wnd,
                ev.packets_out,
                ev.retrans_out,
            ];
            let has_tcp = ev.has(valid::TCP);
            for (b, v) in tcp.iter_mut().zip(values) {
                b.append_option(has_tcp.then_some(v));
            }
            ca_state.append_option(ev.has(valid::CA_STATE).then(|| ca_state_name(ev.ca_state)));
            if ev.has(valid::STATE) {
                state.append_value(tcp_state_name(ev.state));
                old_state.append_value(tcp_state_name(ev.old_state));
            } else {
                state.append_null();
                old_state.append_null();
            }
            if ev.has(valid::DROP) {
                let ctx = &self.ctx;
                let name = self
                    .cache
                    .drops
                    .entry(ev.drop_reason)
                    .or_insert_with(|| ctx.drop_reason_name(ev.drop_reason));
                drop_reason.append_value(name.as_str());
            } else {
                drop_reason.append_null();
            }
            cgroup.append_option(ev.has(valid::CGROUP).then_some(ev.cgroup));
            task_cgroup.append_option(ev.has(valid::TASK_CGROUP).then_some(ev.task_cgroup));
            let hdr = ev.has(valid::TCP_HDR);
            ack.append_option(hdr.then_some(ev.ack));
            window.append_option(hdr.then_some(ev.window));
            tcp_flags.append_option(hdr.then_some(ev.tcp_flags));
            tcp_hlen.append_option(hdr.then_some(ev.tcp_hlen));
        }

        let [cwnd, ssthresh, srtt, rttvar, snd_wnd, rcv_wnd, packets_out, retrans_out] = tcp;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(ts.finish()),
            Arc::new(cpu.finish()),
            Arc::new(kind.finish()),
            Arc::new(skb.finish()),
            Arc::new(sock.finish()),
            Arc::new(pid.finish()),
            Arc::new(comm.finish()),
            Arc::new(netns.finish()),
            Arc::new(ifindex.finish()),
            Arc::new(family.finish()),
            Arc::new(saddr.finish()),
            Arc::new(daddr.finish()),
            Arc::new(sport.finish()),
            Arc::new(dport.finish()),
            Arc::new(len.finish()),
            Arc::new(seq.finish()),
            Arc::new(segs.finish()),
            Arc::new(err.finish()),
            Arc::new(finish(cwnd)),
            Arc::new(finish(ssthresh)),
            Arc::new(finish(srtt)),
            Arc::new(finish(rttvar)),
            Arc::new(finish(snd_wnd)),
            Arc::new(finish(rcv_wnd)),
            Arc::new(finish(packets_out)),
            Arc::new(finish(retrans_out)),
            Arc::new(ca_state.finish()),
            Arc::new(state.finish()),
            Arc::new(old_state.finish()),
            Arc::new(drop_reason.finish()),
            Arc::new(cgroup.finish()),
            Arc::new(task_cgroup.finish()),
            Arc::new(ack.finish()),
            Arc::new(window.finish()),
            Arc::new(tcp_flags.finish()),
            Arc::new(tcp_hlen.finish()),
        ];
        RecordBatch::try_new(arrow_schema(), columns)
            .expect("encoder columns match the schema by construction")
    }
}

fn finish(mut b: UInt32Builder) -> arrow_array::UInt32Array {
    b.finish()
}
