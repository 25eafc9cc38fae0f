//! Between hosts: the wire from one host's last TX hop to another host's first RX hop, and the
//! offset between their monotonic clocks, estimated from the traffic itself.
//!
//! A data segment leaves host X at `tx_driver` and reaches host Y at `rx_driver` (or
//! `rx_netif`, when the driver stage has no event of it). Both ends name it alike: the same
//! addresses and ports in the packet's direction and the same TCP sequence number. A sequence
//! number sent twice (a retransmission) or received twice is left out: which copy arrived is
//! not known. Across NAT the addresses differ and nothing is joined.
//!
//! With `off` the time to add to X's clock to read Y's, a segment from X to Y gives
//! `d = t_Y(rx) - t_X(tx) = wire + off`, and one from Y to X gives `e = t_X(rx) - t_Y(tx) =
//! wire - off`. Wire times are never negative, so `-min(e) <= off <= min(d)`: the estimate is
//! the middle of that interval and the uncertainty its half width (the method of NTP, with the
//! fastest packet of each direction). It assumes the fastest packets of the two directions took
//! as long (a link slower one way biases the estimate by half the difference, within the stated
//! uncertainty) and that the clocks do not drift apart during the recording. It needs data in
//! both directions; with one direction only, the offset, and so the wire, is unknown.

use crate::queries::edge_events::edge_events;
use crate::report::latency_stats::Stats;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use tcptape_common::{Recording, Stage};

/// A segment as both hosts name it: source, destination (address and port) and sequence.
type SegmentKey = (String, u16, String, u16, u32);

/// A flow in the packets' direction: source and destination address and port.
type FlowKey = (String, u16, String, u16);

/// An application's write or read: time, first sequence number, bytes.
type AppCall = (u64, u32, u32);

fn flow_of(k: &SegmentKey) -> FlowKey {
    (k.0.clone(), k.1, k.2.clone(), k.3)
}

/// One host's data segments at the edge of the wire.
#[derive(Debug, Default, Clone)]
pub struct WireEdge {
    /// Transmission times (`tx_driver`) per segment.
    tx: HashMap<SegmentKey, Vec<u64>>,
    /// Arrival times per segment: `rx_driver`, else `rx_netif`.
    rx: HashMap<SegmentKey, Vec<u64>>,
    /// The application's writes (`tx_sendmsg`) per flow, in time order.
    writes: HashMap<FlowKey, Vec<AppCall>>,
    /// The application's reads (`rx_app`) per flow in the packets' direction, in time order.
    reads: HashMap<FlowKey, Vec<AppCall>>,
}

impl WireEdge {
    /// Reads the edge events of a host's recordings.
    pub fn read(recs: &[Recording]) -> anyhow::Result<WireEdge> {
        let files: Vec<PathBuf> = recs.iter().flat_map(|r| r.files()).collect();
        let e = edge_events(&files)?;
        let (ts, seq, len) = (e.ts, e.seq, e.len);
        let (sport, dport) = (e.sport, e.dport);
        let (saddr, daddr) = (e.saddr, e.daddr);
        let stage = e.stage;
        let mut edge = WireEdge::default();
        let mut netif: HashMap<SegmentKey, Vec<u64>> = HashMap::new();
        for i in 0..ts.len() {
            let (Some(t), Some(s), Some(l)) = (ts[i], seq[i], len[i]) else {
                continue;
            };
            let (Some(sa), Some(da), Some(sp), Some(dp)) =
                (&saddr[i], &daddr[i], sport[i], dport[i])
            else {
                continue;
            };
            if l == 0 {
                continue; // an ACK: its sequence number names no segment
            }
            let code = stage[i].unwrap_or(0) as u8;
            let call = (t, s as u32, l as u32);
            if code == Stage::TxSendmsg.code() {
                let flow = (sa.clone(), sp as u16, da.clone(), dp as u16);
                edge.writes.entry(flow).or_default().push(call);
                continue;
            }
            if code == Stage::RxApp.code() {
                // The reading socket names itself first: the packets came the other way.
                let flow = (da.clone(), dp as u16, sa.clone(), sp as u16);
                edge.reads.entry(flow).or_default().push(call);
                continue;
            }
            let key = (sa.clone(), sp as u16, da.clone(), dp as u16, s as u32);
            let into = if code == Stage::TxDriver.code() {
                &mut edge.tx
            } else if code == Stage::RxDriver.code() {
                &mut edge.rx
            } else {
                &mut netif
            };
            into.entry(key).or_default().push(t);
        }
        for (key, times) in netif {
            edge.rx.entry(key).or_insert(times);
        }
        for calls in edge.writes.values_mut().chain(edge.reads.values_mut()) {
            calls.sort_unstable();
        }
        Ok(edge)
    }
}

/// Wire times of one direction, ns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WireLatency {
    /// Sending host.
    pub from_host: String,
    /// Receiving host.
    pub to_host: String,
    /// Segments joined (each seen once on both sides).
    pub count: u64,
    /// Median, ns (nearest rank, as every percentile of the report).
    pub p50_ns: u64,
    /// 90th percentile, ns.
    pub p90_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// Smallest, ns.
    pub min_ns: u64,
    /// Largest, ns.
    pub max_ns: u64,
}

/// Two hosts whose recordings share traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostPair {
    /// The first host (by name).
    pub host_a: String,
    /// The second host.
    pub host_b: String,
    /// Segments from A joined to their arrival on B, and back.
    pub segments_a_to_b: u64,
    /// Segments from B joined to their arrival on A.
    pub segments_b_to_a: u64,
    /// Add to a monotonic time of A to read B's clock, ns (when both directions have data).
    pub clock_offset_ns: Option<i64>,
    /// Half width of the interval the offset is known to lie in, ns.
    pub clock_offset_uncertainty_ns: Option<u64>,
    /// The wire, each direction, after the offset correction.
    pub wire: Vec<WireLatency>,
    /// From the write on one host to the read on the other of each joined segment's first byte
    /// (`tx_sendmsg` → `rx_app`), each direction, after the offset correction.
    pub end_to_end: Vec<WireLatency>,
    /// What could not be estimated, and why.
    pub notes: Vec<String>,
    /// The figures behind `wire` and `end_to_end`, in send order (for `diff`).
    #[serde(skip)]
    pub samples: Vec<BetweenSamples>,
}

/// The per-segment times behind one row of [`HostPair::wire`] or [`HostPair::end_to_end`].
#[derive(Debug, Clone, PartialEq)]
pub struct BetweenSamples {
    /// Sending host.
    pub from_host: String,
    /// Receiving host.
    pub to_host: String,
    /// `true`: write → read (`tx_sendmsg` → `rx_app`); `false`: the wire.
    pub end_to_end: bool,
    /// ns, in the order the segments were sent.
    pub ns: Vec<i64>,
}

/// Every segment sent once by `from` and received once by `to`: (segment, sent, received), in
/// send order.
fn joined<'a>(from: &'a WireEdge, to: &'a WireEdge) -> Vec<(&'a SegmentKey, u64, u64)> {
    let mut out: Vec<_> = from
        .tx
        .iter()
        .filter_map(
            |(k, t)| match (t.as_slice(), to.rx.get(k).map(Vec::as_slice)) {
                ([t], Some([r])) => Some((k, *t, *r)),
                _ => None,
            },
        )
        .collect();
    out.sort_unstable_by_key(|&(k, t, _)| (t, k.4));
    out
}

/// `t_to(rx) - t_from(tx)` of every joined segment.
fn one_way(from: &WireEdge, to: &WireEdge) -> Vec<i64> {
    joined(from, to)
        .into_iter()
        .map(|(_, t, r)| r as i64 - t as i64)
        .collect()
}

/// The call of `calls` (time order) whose bytes hold `seq`: the latest at or before `t` (a
/// write), or the earliest at or after it (a read).
fn holding(calls: &[AppCall], seq: u32, t: u64, before: bool) -> Option<u64> {
    let holds = |c: &&AppCall| seq.wrapping_sub(c.1) < c.2;
    if before {
        let at = calls.partition_point(|c| c.0 <= t);
        calls[..at].iter().rev().find(holds).map(|c| c.0)
    } else {
        let from = calls.partition_point(|c| c.0 < t);
        calls[from..].iter().find(holds).map(|c| c.0)
    }
}

/// `tx_sendmsg` on `from` → `rx_app` on `to` of each joined segment's first byte, with `off`
/// added to `from`'s clock to read `to`'s.
fn app_to_app(from: &WireEdge, to: &WireEdge, off: i64) -> Vec<i64> {
    joined(from, to)
        .into_iter()
        .filter_map(|(k, t, r)| {
            let flow = flow_of(k);
            let w = holding(from.writes.get(&flow)?, k.4, t, true)?;
            let a = holding(to.reads.get(&flow)?, k.4, r, false)?;
            Some(a as i64 - off - w as i64)
        })
        .collect()
}

fn wire(from: &str, to: &str, d: &[i64]) -> WireLatency {
    let mut d = d.to_vec();
    d.sort_unstable();
    // The report's percentile rule (nearest rank), as every stage's figures.
    let st = Stats::of_sorted(&d, &[0.5, 0.9, 0.99]);
    let ns = |v: i64| v.max(0) as u64;
    WireLatency {
        from_host: from.to_string(),
        to_host: to.to_string(),
        count: st.count,
        p50_ns: ns(st.quantiles_ns[0]),
        p90_ns: ns(st.quantiles_ns[1]),
        p99_ns: ns(st.quantiles_ns[2]),
        min_ns: ns(d.first().copied().unwrap_or(0)),
        max_ns: ns(st.max_ns),
    }
}

/// The clock offset and the wire between two hosts; `None` when they share no segment.
pub fn pair(a: (&str, &WireEdge), b: (&str, &WireEdge)) -> Option<HostPair> {
    let (ab, ba) = (one_way(a.1, b.1), one_way(b.1, a.1));
    if ab.is_empty() && ba.is_empty() {
        return None;
    }
    let mut p = HostPair {
        host_a: a.0.to_string(),
        host_b: b.0.to_string(),
        segments_a_to_b: ab.len() as u64,
        segments_b_to_a: ba.len() as u64,
        clock_offset_ns: None,
        clock_offset_uncertainty_ns: None,
        wire: Vec::new(),
        end_to_end: Vec::new(),
        notes: Vec::new(),
        samples: Vec::new(),
    };
    let (Some(&d_min), Some(&e_min)) = (ab.iter().min(), ba.iter().min()) else {
        let (with, without) = if ab.is_empty() {
            (b.0, a.0)
        } else {
            (a.0, b.0)
        };
        p.notes.push(format!(
            "data went from {with} to {without} only: the clock offset, and so the wire, \
             needs data segments in both directions"
        ));
        return Some(p);
    };
    let (lo, hi) = (-e_min, d_min);
    if hi < lo {
        p.notes.push(format!(
            "the fastest segments disagree ({} ns apart): the clocks drifted during the \
             recording, or the hosts' addresses are translated between them",
            lo - hi
        ));
        return Some(p);
    }
    let off = lo + (hi - lo) / 2;
    p.clock_offset_ns = Some(off);
    p.clock_offset_uncertainty_ns = Some(((hi - lo) / 2) as u64);
    let mut add = |from: &str, to: &str, end_to_end: bool, ns: Vec<i64>| {
        let row = wire(from, to, &ns);
        if end_to_end {
            p.end_to_end.push(row);
        } else {
            p.wire.push(row);
        }
        p.samples.push(BetweenSamples {
            from_host: from.to_string(),
            to_host: to.to_string(),
            end_to_end,
            ns,
        });
    };
    add(a.0, b.0, false, ab.iter().map(|d| d - off).collect());
    add(b.0, a.0, false, ba.iter().map(|e| e + off).collect());
    for (x, y, o) in [(a, b, off), (b, a, -off)] {
        let spans = app_to_app(x.1, y.1, o);
        if !spans.is_empty() {
            add(x.0, y.0, true, spans);
        }
    }
    Some(p)
}

/// Every pair of hosts that share segments, in host order.
pub fn pairs(hosts: &[(String, WireEdge)]) -> Vec<HostPair> {
    let mut out = Vec::new();
    for (i, (na, ea)) in hosts.iter().enumerate() {
        for (nb, eb) in &hosts[i + 1..] {
            out.extend(pair((na, ea), (nb, eb)));
        }
    }
    out
}

/// How a host's clock is read on the first host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockAlignment {
    /// The first host itself.
    Reference,
    /// From the traffic: the offsets of [`pair`] along a chain of hosts that share traffic.
    Traffic,
    /// No chain of shared traffic: the recordings' wall clocks (each host's NTP, as good as it
    /// is).
    WallClock,
}

impl ClockAlignment {
    /// The name used in outputs.
    pub fn name(self) -> &'static str {
        match self {
            ClockAlignment::Reference => "reference",
            ClockAlignment::Traffic => "traffic",
            ClockAlignment::WallClock => "wall clock",
        }
    }
}

/// For every host (in the order of `hosts`), what to add to a time of its monotonic clock to
/// read the first host's, and how that is known. Offsets come from `pairs` (host names as in
/// `hosts`), chained through hosts in between; a host with no such chain falls back to the
/// difference of the recordings' wall clocks (`mono_to_wall_ns` of each host).
pub fn to_first_host(
    names: &[String],
    mono_to_wall_ns: &[i64],
    pairs: &[HostPair],
) -> Vec<(i64, ClockAlignment)> {
    let mut out: Vec<Option<(i64, ClockAlignment)>> = vec![None; names.len()];
    if out.is_empty() {
        return Vec::new();
    }
    out[0] = Some((0, ClockAlignment::Reference));
    let index = |n: &str| names.iter().position(|h| h == n);
    // off: add to A's time to read B's. With to[i] the shift of host i onto the first host's
    // clock: to[b] = to[a] - off and to[a] = to[b] + off.
    loop {
        let mut grew = false;
        for p in pairs {
            let (Some(off), Some(a), Some(b)) =
                (p.clock_offset_ns, index(&p.host_a), index(&p.host_b))
            else {
                continue;
            };
            match (out[a], out[b]) {
                (Some((ta, _)), None) => out[b] = Some((ta - off, ClockAlignment::Traffic)),
                (None, Some((tb, _))) => out[a] = Some((tb + off, ClockAlignment::Traffic)),
                _ => continue,
            }
            grew = true;
        }
        if !grew {
            break;
        }
    }
    out.into_iter()
        .enumerate()
        .map(|(i, o)| {
            o.unwrap_or((
                mono_to_wall_ns[i] - mono_to_wall_ns[0],
                ClockAlignment::WallClock,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(from: &str, to: &str, seq: u32) -> SegmentKey {
        (from.into(), 40000, to.into(), 80, seq)
    }

    /// Host A sends segments 0..n with the given wire times, B answers with its own; B's clock
    /// reads `off` more than A's.
    fn hosts(off: i64, there: &[i64], back: &[i64]) -> (WireEdge, WireEdge) {
        let (mut a, mut b) = (WireEdge::default(), WireEdge::default());
        for (i, w) in there.iter().enumerate() {
            let t = 1_000_000 + i as i64 * 10_000;
            a.tx.insert(key("a", "b", i as u32), vec![t as u64]);
            b.rx.insert(key("a", "b", i as u32), vec![(t + w + off) as u64]);
        }
        for (i, w) in back.iter().enumerate() {
            let t = 5_000_000 + i as i64 * 10_000;
            b.tx.insert(key("b", "a", i as u32), vec![(t + off) as u64]);
            a.rx.insert(key("b", "a", i as u32), vec![(t + w) as u64]);
        }
        (a, b)
    }

    #[test]
    fn the_offset_lies_within_its_stated_uncertainty_and_no_wire_is_negative() {
        for off in [-3_000_000_000i64, 0, 123_456_789] {
            // Asymmetric: the fastest way there takes 40 µs, back 60 µs.
            let (a, b) = hosts(off, &[40_000, 55_000, 90_000], &[60_000, 75_000]);
            let p = pair(("a", &a), ("b", &b)).unwrap();
            let (est, unc) = (
                p.clock_offset_ns.unwrap(),
                p.clock_offset_uncertainty_ns.unwrap(),
            );
            assert_eq!(unc, 50_000, "half of 40 + 60 µs");
            assert!((est - off).unsigned_abs() <= unc, "{est} vs {off} ± {unc}");
            assert_eq!(est - off, -10_000, "half the asymmetry");
            assert_eq!(p.wire[0].min_ns, 50_000);
            assert_eq!(p.wire[1].min_ns, 50_000);
            assert_eq!((p.wire[0].count, p.wire[1].count), (3, 2));
        }
    }

    #[test]
    fn one_direction_or_no_common_segment_says_so() {
        let (a, b) = hosts(7, &[40_000], &[]);
        let p = pair(("a", &a), ("b", &b)).unwrap();
        assert_eq!(p.clock_offset_ns, None);
        assert!(p.wire.is_empty());
        assert!(p.notes[0].contains("from a to b only"), "{:?}", p.notes);
        assert!(pair(("a", &WireEdge::default()), ("b", &b)).is_none());
    }

    #[test]
    fn a_segment_spans_from_its_write_to_its_read() {
        let off = 1_000_000_000;
        let (mut a, mut b) = hosts(off, &[40_000, 40_000], &[40_000]);
        let flow: FlowKey = ("a".into(), 40000, "b".into(), 80);
        // One write of both segments (seq 0 and 1, one byte each) 0.5 ms before the first is
        // sent (at 1 ms); one read of both on B, 30 ms after the second arrived (B's clock).
        a.writes.insert(flow.clone(), vec![(500_000, 0, 2)]);
        let second_rx = b.rx[&key("a", "b", 1)][0];
        b.reads.insert(flow, vec![(second_rx + 30_000_000, 0, 2)]);
        let p = pair(("a", &a), ("b", &b)).unwrap();
        let e2e = &p.end_to_end[0];
        assert_eq!((e2e.from_host.as_str(), e2e.count), ("a", 2));
        // The second was sent at 1.01 ms and took 40 µs: read at 31.05 ms, written at 0.5 ms.
        assert_eq!((e2e.min_ns, e2e.max_ns), (30_550_000, 30_550_000));
    }

    #[test]
    fn clocks_chain_through_hosts_and_fall_back_to_the_wall_clock() {
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).into();
        let p = |a: &str, b: &str, off: Option<i64>| HostPair {
            host_a: a.into(),
            host_b: b.into(),
            segments_a_to_b: 1,
            segments_b_to_a: 1,
            clock_offset_ns: off,
            clock_offset_uncertainty_ns: off.map(|_| 10),
            wire: Vec::new(),
            end_to_end: Vec::new(),
            notes: Vec::new(),
            samples: Vec::new(),
        };
        // b reads a + 100; c reads b - 30 (so a + 70); d shares nothing with a known offset.
        let pairs = [
            p("b", "c", Some(-30)),
            p("a", "b", Some(100)),
            p("c", "d", None),
        ];
        let to = to_first_host(&names, &[1_000, 1_500, 0, 2_000], &pairs);
        assert_eq!(to[0], (0, ClockAlignment::Reference));
        assert_eq!(to[1], (-100, ClockAlignment::Traffic));
        assert_eq!(to[2], (-70, ClockAlignment::Traffic));
        // d: wall = mono + 2000, a: wall = mono + 1000, so a's clock reads d's + 1000.
        assert_eq!(to[3], (1_000, ClockAlignment::WallClock));
    }

    #[test]
    fn a_segment_sent_twice_is_not_joined() {
        let (mut a, b) = hosts(0, &[40_000, 50_000], &[60_000]);
        a.tx.get_mut(&key("a", "b", 0)).unwrap().push(2_000_000);
        let p = pair(("a", &a), ("b", &b)).unwrap();
        assert_eq!(p.segments_a_to_b, 1);
    }
}
