//! Raw events → Arrow record batches: the one place where kernel values become file values.
//!
//! This is where skb addresses are keyed-hashed ([`SkbHasher`]), addresses become text, and state
//! and drop-reason numbers become names. It runs on the writer thread, off the ring-buffer path.

use crate::event::{valid, RawEvent, AF_INET, AF_INET6};
use crate::schema::arrow_schema;
use crate::stage::Stage;
use crate::tcp_names::{ca_state_name, tcp_state_name};
use arrow_array::types::{
    ArrowPrimitiveType, Int32Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{ArrayRef, PrimitiveArray, RecordBatch, StringArray};
use arrow_buffer::{BooleanBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
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

/// The last packet ids computed, by skb address: a packet's events (8–10 stages) mostly fall in
/// one batch, and a slot read costs a tenth of the keyed hash.
struct SkbIdCache {
    slots: Vec<(u64, u64)>,
}

impl SkbIdCache {
    const SLOTS: usize = 4096;

    fn new(hasher: &SkbHasher) -> SkbIdCache {
        // Every slot starts as the true id of address 1, so a hit is always right.
        SkbIdCache {
            slots: vec![(1, hasher.hash(1)); Self::SLOTS],
        }
    }

    fn id(&mut self, hasher: &SkbHasher, addr: u64) -> u64 {
        // skbs are 256-byte slab objects: the bits above the object size spread them.
        let slot = &mut self.slots[((addr >> 8) ^ (addr >> 20)) as usize % Self::SLOTS];
        if slot.0 != addr {
            *slot = (addr, hasher.hash(addr));
        }
        slot.1
    }
}

/// Builds record batches from raw events. Keep one per recording: it caches formatted text.
pub struct BatchEncoder {
    ctx: EncodeContext,
    cache: TextCache,
    skb_ids: SkbIdCache,
}

impl BatchEncoder {
    /// An encoder for one recording.
    pub fn new(ctx: EncodeContext) -> BatchEncoder {
        BatchEncoder {
            skb_ids: SkbIdCache::new(&ctx.skb_hasher),
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
    ///
    /// Column by column rather than row by row: each column is one tight loop over the events,
    /// and the columns that one `valid` bit governs share one null bitmap, computed once (the
    /// row-wise builders' per-value null bookkeeping was a third of the writer's work).
    pub fn encode(&mut self, events: &[RawEvent]) -> RecordBatch {
        let known: Vec<RawEvent>;
        let events = if events.iter().all(|ev| Stage::from_code(ev.kind).is_some()) {
            events
        } else {
            known = events
                .iter()
                .filter(|ev| Stage::from_code(ev.kind).is_some())
                .copied()
                .collect();
            &known
        };
        let n = events.len();

        // The `valid` words side by side (FLOW cleared where the family is neither IPv4 nor
        // IPv6): the 17 null bitmaps are read from 32 KiB, not from the 1.4 MB batch each.
        let valid_words: Vec<u32> = events
            .iter()
            .map(|ev| {
                if ev.has_flow() {
                    ev.valid
                } else {
                    ev.valid & !valid::FLOW
                }
            })
            .collect();
        let bit = |flag: u32| validity(&valid_words, flag);
        let pid_ok = bit(valid::PID);
        let flow_ok = bit(valid::FLOW);
        let tcp_ok = bit(valid::TCP);
        let state_ok = bit(valid::STATE);
        let hdr_ok = bit(valid::TCP_HDR);

        let mut kind = TextColumn::with_capacity(n, n * 11);
        for ev in events {
            kind.push(Stage::from_code(ev.kind).map_or("", Stage::name));
        }
        let cache = &mut self.cache;
        let comm = cached_text_column(
            events,
            n * 8,
            cache,
            |ev| ev.has(valid::PID).then_some(ev.comm),
            |c, ev| c.comm(ev),
        );
        let saddr = cached_text_column(
            events,
            n * 10,
            cache,
            |ev| ev.has_flow().then_some((ev.family, ev.saddr)),
            |c, ev| c.addr(ev.family, &ev.saddr).unwrap_or(""),
        );
        let daddr = cached_text_column(
            events,
            n * 10,
            cache,
            |ev| ev.has_flow().then_some((ev.family, ev.daddr)),
            |c, ev| c.addr(ev.family, &ev.daddr).unwrap_or(""),
        );
        let ca_state = name_column(events, valid::CA_STATE, |ev| ca_state_name(ev.ca_state));
        let state = name_column(events, valid::STATE, |ev| tcp_state_name(ev.state));
        let old_state = name_column(events, valid::STATE, |ev| tcp_state_name(ev.old_state));
        let mut drop_reason = TextColumn::with_capacity(n, 0);
        for ev in events {
            if ev.has(valid::DROP) {
                let ctx = &self.ctx;
                let name = self
                    .cache
                    .drops
                    .entry(ev.drop_reason)
                    .or_insert_with(|| ctx.drop_reason_name(ev.drop_reason));
                drop_reason.push(name);
            } else {
                drop_reason.push("");
            }
        }

        let columns: Vec<ArrayRef> = vec![
            primitive::<UInt64Type>(events, None, |ev| ev.ts_ns),
            primitive::<UInt16Type>(events, None, |ev| ev.cpu.min(u16::MAX as u32) as u16),
            kind.finish(None),
            primitive::<UInt64Type>(events, bit(valid::SKB), |ev| {
                if ev.has(valid::SKB) {
                    self.skb_ids.id(&self.ctx.skb_hasher, ev.skb)
                } else {
                    0
                }
            }),
            primitive::<UInt64Type>(events, bit(valid::SOCK), |ev| ev.sock),
            primitive::<UInt32Type>(events, pid_ok.clone(), |ev| ev.pid),
            comm.finish(pid_ok),
            primitive::<UInt32Type>(events, bit(valid::NETNS), |ev| ev.netns),
            primitive::<UInt32Type>(events, bit(valid::IFINDEX), |ev| ev.ifindex),
            primitive::<UInt8Type>(events, flow_ok.clone(), |ev| {
                if ev.family == AF_INET {
                    4
                } else {
                    6
                }
            }),
            saddr.finish(flow_ok.clone()),
            daddr.finish(flow_ok.clone()),
            primitive::<UInt16Type>(events, flow_ok.clone(), |ev| ev.sport),
            primitive::<UInt16Type>(events, flow_ok, |ev| ev.dport),
            primitive::<UInt32Type>(events, bit(valid::LEN), |ev| ev.len),
            primitive::<UInt32Type>(events, bit(valid::SEQ), |ev| ev.seq),
            primitive::<UInt16Type>(events, bit(valid::SEGS), |ev| ev.segs),
            primitive::<Int32Type>(events, bit(valid::ERR), |ev| ev.err),
            primitive::<UInt32Type>(events, tcp_ok.clone(), |ev| ev.cwnd),
            primitive::<UInt32Type>(events, tcp_ok.clone(), |ev| ev.ssthresh),
            primitive::<UInt32Type>(events, tcp_ok.clone(), |ev| ev.srtt_us),
            primitive::<UInt32Type>(events, tcp_ok.clone(), |ev| ev.rttvar_us),
            primitive::<UInt32Type>(events, tcp_ok.clone(), |ev| ev.snd_wnd),
            primitive::<UInt32Type>(events, tcp_ok.clone(), |ev| ev.rcv_wnd),
            primitive::<UInt32Type>(events, tcp_ok.clone(), |ev| ev.packets_out),
            primitive::<UInt32Type>(events, tcp_ok, |ev| ev.retrans_out),
            ca_state.finish(bit(valid::CA_STATE)),
            state.finish(state_ok.clone()),
            old_state.finish(state_ok),
            drop_reason.finish(bit(valid::DROP)),
            primitive::<UInt64Type>(events, bit(valid::CGROUP), |ev| ev.cgroup),
            primitive::<UInt64Type>(events, bit(valid::TASK_CGROUP), |ev| ev.task_cgroup),
            primitive::<UInt32Type>(events, hdr_ok.clone(), |ev| ev.ack),
            primitive::<UInt16Type>(events, hdr_ok.clone(), |ev| ev.window),
            primitive::<UInt8Type>(events, hdr_ok.clone(), |ev| ev.tcp_flags),
            primitive::<UInt8Type>(events, hdr_ok, |ev| ev.tcp_hlen),
        ];
        RecordBatch::try_new(arrow_schema(), columns)
            .expect("encoder columns match the schema by construction")
    }
}

/// The null bitmap of the rows whose `valid` word has every bit of `flag`; `None` when all do.
fn validity(valid_words: &[u32], flag: u32) -> Option<NullBuffer> {
    let nulls = NullBuffer::new(BooleanBuffer::collect_bool(valid_words.len(), |i| {
        valid_words[i] & flag == flag
    }));
    (nulls.null_count() > 0).then_some(nulls)
}

/// One primitive column: a value per row (whatever the raw field holds under a null) and the
/// given null bitmap.
fn primitive<T: ArrowPrimitiveType>(
    events: &[RawEvent],
    nulls: Option<NullBuffer>,
    value: impl FnMut(&RawEvent) -> T::Native,
) -> ArrayRef {
    let values: ScalarBuffer<T::Native> = events.iter().map(value).collect();
    Arc::new(PrimitiveArray::<T>::new(values, nulls))
}

/// A text column formatted through the cache: `key` is `None` for a row without a value ("" under
/// the column's null bitmap), and a row whose key equals the previous row's copies its text
/// rather than asking the cache (consecutive events of one task or one flow are common).
fn cached_text_column<K: PartialEq>(
    events: &[RawEvent],
    bytes: usize,
    cache: &mut TextCache,
    key: impl Fn(&RawEvent) -> Option<K>,
    text: impl for<'c> Fn(&'c mut TextCache, &RawEvent) -> &'c str,
) -> TextColumn {
    let mut col = TextColumn::with_capacity(events.len(), bytes);
    let mut last = None;
    for ev in events {
        let k = key(ev);
        if k.is_none() {
            col.push("");
        } else if k == last {
            col.repeat_last();
        } else {
            col.push(text(cache, ev));
        }
        last = k;
    }
    col
}

/// A column of fixed names (TCP states), "" where `flag` is not valid.
fn name_column(
    events: &[RawEvent],
    flag: u32,
    name: impl Fn(&RawEvent) -> &'static str,
) -> TextColumn {
    let mut col = TextColumn::with_capacity(events.len(), 0);
    for ev in events {
        col.push(if ev.has(flag) { name(ev) } else { "" });
    }
    col
}

/// A Utf8 column built as offsets and bytes, its null bitmap given when it is finished.
struct TextColumn {
    offsets: Vec<i32>,
    bytes: Vec<u8>,
}

impl TextColumn {
    fn with_capacity(rows: usize, bytes: usize) -> TextColumn {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        TextColumn {
            offsets,
            bytes: Vec::with_capacity(bytes),
        }
    }

    fn push(&mut self, text: &str) {
        self.bytes.extend_from_slice(text.as_bytes());
        self.offsets.push(self.end());
    }

    /// Appends the previous row's text again (a row was pushed before).
    fn repeat_last(&mut self) {
        let n = self.offsets.len();
        let start = self.offsets[n - 2] as usize;
        self.bytes.extend_from_within(start..);
        self.offsets.push(self.end());
    }

    fn end(&self) -> i32 {
        i32::try_from(self.bytes.len()).expect("a batch's text fits in 2 GiB")
    }

    fn finish(self, nulls: Option<NullBuffer>) -> ArrayRef {
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.offsets));
        debug_assert!(std::str::from_utf8(&self.bytes).is_ok());
        // SAFETY: the bytes are whole `&str`s one after another and each offset is the end of
        // one of them, so every value is valid UTF-8 on character boundaries. The checked
        // constructor validates that again byte by byte: 4 % of the writer's time.
        Arc::new(unsafe { StringArray::new_unchecked(offsets, self.bytes.into(), nulls) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn event(kind: Stage, valid: u32, family: u16, saddr: u8, daddr: u8) -> RawEvent {
        let mut ev = RawEvent {
            ts_ns: 1,
            kind: kind.code(),
            valid,
            family,
            pid: 7,
            state: 1,
            old_state: 2,
            sport: 80,
            dport: 9,
            ..RawEvent::default()
        };
        ev.saddr[0] = saddr;
        ev.daddr[0] = daddr;
        ev.saddr[15] = saddr;
        ev.set_comm("task");
        ev
    }

    /// The id cache gives the keyed hash of every address, when addresses share a slot, when
    /// one comes back after another took its slot, and for the address the slots start with.
    #[test]
    fn cached_skb_ids_are_the_keyed_hashes() {
        let hasher = SkbHasher::new([9; 16]);
        let mut cache = SkbIdCache::new(&hasher);
        let base = 0xffff_8880_1234_5600_u64;
        let addrs: Vec<u64> = (0..3 * SkbIdCache::SLOTS as u64)
            .map(|i| base + i * 256)
            .chain([1, 0, base, base + (1 << 20), base])
            .collect();
        for round in 0..2 {
            for &a in &addrs {
                assert_eq!(
                    cache.id(&hasher, a),
                    hasher.hash(a),
                    "{a:#x}, round {round}"
                );
            }
        }
    }

    /// The column-wise encoder gives each row what the row-wise `Record::from_raw` gives: a
    /// row without a flow between two rows of one flow, the same bytes as IPv4 and IPv6, a
    /// family that is neither, rows without a task, and an unknown stage code (skipped).
    #[test]
    fn columns_equal_the_rows_of_from_raw() {
        let flow = valid::FLOW | valid::PID;
        let mut unknown = event(Stage::RxIp, flow, AF_INET, 1, 2);
        unknown.kind = 250;
        let events = [
            event(Stage::TxSendmsg, flow, AF_INET, 10, 20),
            event(Stage::RxIp, valid::STATE, AF_INET, 10, 20),
            event(Stage::TxSendmsg, flow, AF_INET, 10, 20),
            event(Stage::TxSendmsg, flow, AF_INET6, 10, 20),
            unknown,
            event(Stage::TxSendmsg, flow, 99, 10, 20),
            event(Stage::TxSendmsg, valid::FLOW, AF_INET6, 10, 20),
            event(Stage::State, valid::STATE | valid::SKB, AF_INET, 0, 0),
            event(Stage::TxSendmsg, flow, AF_INET, 10, 21),
        ];
        let ctx = EncodeContext {
            skb_hasher: SkbHasher::new([3; 16]),
            drop_reasons: HashMap::new(),
        };
        let batch = BatchEncoder::new(ctx.clone()).encode(&events);
        let got = Record::from_batch(&batch).unwrap();
        let want: Vec<Record> = events
            .iter()
            .filter_map(|ev| Record::from_raw(ev, &ctx))
            .collect();
        assert_eq!(want.len(), events.len() - 1);
        assert_eq!(got, want);
        assert_eq!(got[0].saddr.as_deref(), Some("10.0.0.0"));
        assert_eq!(got[1].saddr, None);
        assert_eq!(got[2].saddr.as_deref(), Some("10.0.0.0"));
        assert_eq!(got[3].saddr.as_deref(), Some("a00::a"));
        assert_eq!(got[7].daddr.as_deref(), Some("21.0.0.0"));
    }
}
