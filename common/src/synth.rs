//! Synthetic recordings with known per-stage delays.
//!
//! The generator plays flows between two network namespaces joined by veth, the way the kernel
//! would report them: a `tx_sendmsg` on the write-queue skb, then the transmitted clone through
//! the TX stages, across veth into the peer's RX stages, up to the application's read; a
//! `tcp_sample` when the ACK comes back; retransmissions with their congestion state; drops;
//! buffer pressure; the connection's state changes. The time between two hops is drawn from the
//! [`Delay`] configured for the later hop, so tests know the true latency of every stage.
//!
//! Events come out in time order, in batches, with bounded memory whatever the count.

use crate::encode::{BatchEncoder, EncodeContext};
use crate::event::{valid, RawEvent, AF_INET};
use crate::metadata::{Environment, InterfaceOffloads, RecordingMeta};
use crate::stage::Stage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// How long a hop takes, from the previous hop.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delay {
    /// Always exactly this many ns.
    Fixed(u64),
    /// Uniform in `[lo, hi]` ns.
    Uniform {
        /// Lower bound, ns.
        lo: u64,
        /// Upper bound, ns.
        hi: u64,
    },
    /// Log-normal with this median (ns) and shape.
    LogNormal {
        /// Median, ns.
        median_ns: u64,
        /// Shape (σ of the underlying normal).
        sigma: f64,
    },
}

impl Delay {
    fn sample(&self, rng: &mut ChaCha8Rng) -> u64 {
        match *self {
            Delay::Fixed(ns) => ns,
            Delay::Uniform { lo, hi } => rng.random_range(lo..=hi.max(lo)),
            Delay::LogNormal { median_ns, sigma } => {
                let d = LogNormal::new((median_ns.max(1) as f64).ln(), sigma.max(0.0))
                    .expect("finite parameters");
                (d.sample(rng) as u64).max(1)
            }
        }
    }
}

/// The traffic a synthetic recording plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mix {
    /// Bulk transfer: 64 KB GSO segments back to back through a queue.
    Bulk,
    /// Request/response: small messages, a reader that is slow to read.
    RequestResponse,
}

impl std::str::FromStr for Mix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bulk" => Ok(Mix::Bulk),
            "rr" | "request-response" => Ok(Mix::RequestResponse),
            _ => Err(format!("unknown mix '{s}' (known: bulk, rr)")),
        }
    }
}

/// Everything that determines a synthetic recording. The same config gives the same events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthConfig {
    /// Exactly this many events.
    pub events: u64,
    /// Random seed.
    pub seed: u64,
    /// Concurrent flows.
    pub flows: u32,
    /// Traffic mix (sets the defaults below).
    pub mix: Mix,
    /// The hops of a journey in order, each with its delay from the previous one. The first
    /// hop's delay is ignored (it starts the journey).
    pub hops: Vec<(Stage, Delay)>,
    /// Time between the starts of two journeys (over all flows).
    pub interarrival: Delay,
    /// Payload bytes of one segment.
    pub segment_bytes: u32,
    /// One segment in this many is retransmitted (0 = never).
    pub retransmit_one_in: u32,
    /// One segment in this many is dropped at the receiver (0 = never).
    pub drop_one_in: u32,
    /// `tx_tcp_xmit` on the write-queue skb, as a real kernel records it: `__tcp_transmit_skb`
    /// is handed the skb of the socket's write queue and sends a clone of it, so every later hop
    /// has another packet id. Off by default: the hops then share one id.
    #[serde(default)]
    pub xmit_on_write_queue: bool,
    /// The host name the recording says it was made on (default `synthetic`): synthetic
    /// recordings of several hosts make a recording set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

impl SynthConfig {
    /// Realistic defaults for a mix: a veth path through a tbf queue.
    pub fn new(mix: Mix, events: u64, seed: u64) -> SynthConfig {
        let ln = |median_ns, sigma| Delay::LogNormal { median_ns, sigma };
        let (app, queue, segment_bytes, interarrival, flows) = match mix {
            Mix::Bulk => (
                ln(40_000, 1.0),
                ln(200_000, 0.6),
                65_160,
                ln(20_000, 0.5),
                4,
            ),
            Mix::RequestResponse => (
                ln(23_000_000, 0.05),
                ln(5_000, 0.5),
                512,
                ln(500_000, 0.8),
                8,
            ),
        };
        SynthConfig {
            events,
            seed,
            flows,
            mix,
            hops: vec![
                (Stage::TxSendmsg, Delay::Fixed(0)),
                (Stage::TxTcpXmit, ln(2_000, 0.5)),
                (Stage::TxDevQueue, ln(3_000, 0.4)),
                (Stage::TxQdiscEnq, ln(500, 0.3)),
                (Stage::TxQdiscDeq, queue),
                (Stage::TxDriver, ln(1_000, 0.3)),
                (Stage::RxDriver, ln(4_000, 0.4)),
                (Stage::RxNetif, ln(8_000, 0.7)),
                (Stage::RxIp, ln(1_000, 0.3)),
                (Stage::RxTcp, ln(1_500, 0.3)),
                (Stage::RxTcpEst, ln(2_000, 0.4)),
                (Stage::RxApp, app),
            ],
            interarrival,
            segment_bytes,
            retransmit_one_in: 200,
            drop_one_in: 500,
            xmit_on_write_queue: false,
            hostname: None,
        }
    }

    /// The same config with every hop delay fixed, for tests that need exact figures.
    pub fn with_fixed_delays(mut self, delays_ns: &[(Stage, u64)]) -> SynthConfig {
        for (stage, ns) in delays_ns {
            for hop in self.hops.iter_mut().filter(|h| h.0 == *stage) {
                hop.1 = Delay::Fixed(*ns);
            }
        }
        self
    }
}

/// Drop-reason names the synthetic kernel uses (a real recording takes them from BTF).
pub fn drop_reason_names() -> HashMap<u32, String> {
    [
        (2, "NOT_SPECIFIED"),
        (6, "TCP_CSUM"),
        (34, "TCP_OLD_DATA"),
        (41, "TCP_OFO_DROP"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect()
}

/// The monotonic time the synthetic recordings start at (an hour after boot).
pub const SYNTH_START_NS: u64 = 3_600_000_000_000;

const NETNS_SENDER: u32 = 4_026_532_001;
const NETNS_RECEIVER: u32 = 4_026_532_002;
const IFINDEX_SENDER: u32 = 2;
const IFINDEX_RECEIVER: u32 = 3;
const MSS: u32 = 1448;

struct Flow {
    sport: u16,
    dport: u16,
    snd_sock: u64,
    rcv_sock: u64,
    snd_pid: u32,
    rcv_pid: u32,
    seq: u32,
    cwnd: u32,
    ssthresh: u32,
    srtt_us: u32,
}

#[derive(PartialEq, Eq)]
struct Pending {
    ts: u64,
    order: u64,
    ev: RawEvent,
}

impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.ts, self.order).cmp(&(o.ts, o.order))
    }
}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// A stream of synthetic events in time order, in batches.
pub struct SynthStream {
    cfg: SynthConfig,
    rng: ChaCha8Rng,
    flows: Vec<Flow>,
    heap: BinaryHeap<Reverse<Pending>>,
    order: u64,
    next_start: u64,
    journeys: u64,
    emitted: u64,
    budget: u64,
    closing_done: bool,
    last_ts: u64,
    batch: usize,
}

impl SynthStream {
    /// A stream for `cfg`, yielding batches of up to `batch` events.
    pub fn new(cfg: SynthConfig, batch: usize) -> SynthStream {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let flows = (0..cfg.flows.max(1))
            .map(|i| Flow {
                sport: 40_000 + i as u16 * 7,
                dport: 5201,
                snd_sock: 0x1000 + rng.random_range(0..1 << 20) * 2,
                rcv_sock: 0x1000 + rng.random_range(0..1 << 20) * 2 + 1,
                snd_pid: 2000 + i,
                rcv_pid: 3000 + i,
                seq: rng.random(),
                cwnd: 10,
                ssthresh: 0x7fff_ffff,
                srtt_us: 100,
            })
            .collect::<Vec<_>>();
        let closing = flows.len() as u64 * 4;
        let mut s = SynthStream {
            budget: cfg.events.saturating_sub(closing),
            cfg,
            rng,
            flows,
            heap: BinaryHeap::new(),
            order: 0,
            next_start: SYNTH_START_NS,
            journeys: 0,
            emitted: 0,
            closing_done: false,
            last_ts: SYNTH_START_NS,
            batch: batch.max(1),
        };
        s.open_connections();
        s
    }

    fn push(&mut self, mut ev: RawEvent) {
        if ev.has(valid::SOCK) {
            // Every socket event names its socket's cgroup, as the recorder's do.
            let owner = self.flows.iter().enumerate().find_map(|(i, fl)| {
                (fl.snd_sock == ev.sock)
                    .then(|| SYNTH_CGROUPS[i % 2].0)
                    .or((fl.rcv_sock == ev.sock).then_some(SYNTH_CGROUPS[2].0))
            });
            if let Some(id) = owner {
                ev.cgroup = id;
                ev.valid |= valid::CGROUP;
                if ev.has(valid::PID) {
                    ev.task_cgroup = id;
                    ev.valid |= valid::TASK_CGROUP;
                }
            }
        }
        self.order += 1;
        self.heap.push(Reverse(Pending {
            ts: ev.ts_ns,
            order: self.order,
            ev,
        }));
    }

    fn base(&self, f: usize, stage: Stage, ts: u64, sender_side: bool) -> RawEvent {
        let fl = &self.flows[f];
        let mut ev = RawEvent {
            ts_ns: ts,
            kind: stage.code(),
            family: AF_INET,
            sport: fl.sport,
            dport: fl.dport,
            cpu: if sender_side { 0 } else { 1 },
            valid: valid::FLOW | valid::NETNS,
            netns: if sender_side {
                NETNS_SENDER
            } else {
                NETNS_RECEIVER
            },
            ..RawEvent::default()
        };
        ev.saddr[..4].copy_from_slice(&[10, 200, 0, 1]);
        ev.daddr[..4].copy_from_slice(&[10, 200, 0, 2]);
        ev
    }

    fn state(&mut self, f: usize, ts: u64, sender: bool, old: u8, new: u8) {
        let mut ev = self.base(f, Stage::State, ts, sender);
        ev.sock = if sender {
            self.flows[f].snd_sock
        } else {
            self.flows[f].rcv_sock
        };
        ev.valid |= valid::SOCK | valid::STATE;
        ev.old_state = old;
        ev.state = new;
        self.push(ev);
    }

    fn open_connections(&mut self) {
        // CLOSE→SYN_SENT, SYN_SENT→ESTABLISHED on the client; SYN_RECV→ESTABLISHED on the server.
        for f in 0..self.flows.len() {
            let t = SYNTH_START_NS + f as u64 * 1_000;
            self.state(f, t, true, 7, 2);
            self.state(f, t + 60_000, false, 3, 1);
            self.state(f, t + 50_000, true, 2, 1);
        }
        self.next_start = SYNTH_START_NS + self.flows.len() as u64 * 1_000 + 100_000;
    }

    fn close_connections(&mut self, t: u64) {
        for f in 0..self.flows.len() {
            let t = t + 1_000 + f as u64 * 100;
            self.state(f, t, true, 1, 4);
            self.state(f, t + 30_000, false, 1, 8);
            self.state(f, t + 60_000, true, 4, 5);
            self.state(f, t + 90_000, false, 8, 7);
        }
    }

    fn kernel_addr(&mut self) -> u64 {
        0xffff_8880_0000_0000 | (self.rng.random_range(0..1u64 << 30) << 8)
    }

    fn journey(&mut self, t0: u64) {
        self.journeys += 1;
        let f = self.rng.random_range(0..self.flows.len());
        let len = self.cfg.segment_bytes;
        let seq = self.flows[f].seq;
        self.flows[f].seq = seq.wrapping_add(len);
        let (wq_skb, skb) = (self.kernel_addr(), self.kernel_addr());
        let hops = self.cfg.hops.clone();
        let mut t = t0;
        let mut est_ts = None;
        for (i, (stage, delay)) in hops.iter().enumerate() {
            if i > 0 {
                t += delay.sample(&mut self.rng);
            }
            let tx = stage.path() == crate::stage::Path::Tx;
            let mut ev = self.base(f, *stage, t, tx);
            let fl = &self.flows[f];
            ev.valid |= valid::SKB | valid::LEN;
            ev.skb = skb;
            ev.len = len;
            match stage {
                Stage::TxSendmsg => {
                    ev.skb = wq_skb;
                    ev.valid |= valid::SOCK | valid::SEQ | valid::PID;
                    ev.sock = fl.snd_sock;
                    ev.seq = seq;
                    ev.pid = fl.snd_pid;
                    ev.set_comm("iperf3");
                }
                Stage::TxTcpXmit => {
                    if self.cfg.xmit_on_write_queue {
                        ev.skb = wq_skb;
                    }
                    ev.valid |= valid::SOCK | valid::SEQ;
                    ev.sock = fl.snd_sock;
                    ev.seq = seq;
                }
                Stage::RxTcpEst | Stage::RxApp => {
                    ev.valid |= valid::SOCK | valid::SEQ;
                    ev.sock = fl.rcv_sock;
                    ev.seq = seq;
                    if *stage == Stage::RxApp {
                        ev.valid |= valid::PID;
                        ev.pid = fl.rcv_pid;
                        ev.set_comm("iperf3");
                    } else {
                        est_ts = Some(t);
                    }
                }
                _ => {
                    ev.valid |= valid::IFINDEX;
                    ev.ifindex = if tx { IFINDEX_SENDER } else { IFINDEX_RECEIVER };
                    if matches!(stage, Stage::TxDevQueue | Stage::RxDriver) {
                        ev.valid |= valid::SEQ;
                        ev.seq = seq;
                    }
                }
            }
            self.push(ev);
        }
        // The ACK reaches the sender: a congestion-control snapshot there.
        let ack_ts = est_ts.unwrap_or(t) + 30_000;
        self.tcp_sample(f, ack_ts);
        if self.cfg.retransmit_one_in > 0
            && self
                .journeys
                .is_multiple_of(self.cfg.retransmit_one_in as u64)
        {
            self.retransmit(f, ack_ts + 1_000, seq, len);
        }
        if self.cfg.drop_one_in > 0 && self.journeys % self.cfg.drop_one_in as u64 == 7 {
            let mut ev = self.base(f, Stage::Drop, t + 500, false);
            ev.valid |= valid::SKB | valid::DROP | valid::LEN;
            ev.skb = self.kernel_addr();
            ev.len = len;
            ev.drop_reason = [6, 34, 41][self.rng.random_range(0..3)];
            self.push(ev);
        }
        if self.journeys % 1_000 == 999 {
            let mut ev = self.base(f, Stage::Buffer, t, false);
            ev.valid |= valid::SOCK | valid::LEN;
            ev.sock = self.flows[f].rcv_sock;
            ev.len = 6 * 1024 * 1024;
            self.push(ev);
        }
    }

    fn tcp_sample(&mut self, f: usize, ts: u64) {
        let jitter = self.rng.random_range(0..40);
        let fl = &mut self.flows[f];
        if fl.cwnd < fl.ssthresh {
            fl.cwnd = (fl.cwnd + 2).min(2_000);
        } else if jitter == 0 {
            fl.cwnd += 1;
        }
        fl.srtt_us = (fl.srtt_us * 7 + 80 + jitter * 10) / 8;
        let (cwnd, ssthresh, srtt, seq, sock) =
            (fl.cwnd, fl.ssthresh, fl.srtt_us, fl.seq, fl.snd_sock);
        let mut ev = self.base(f, Stage::TcpSample, ts, true);
        ev.valid |= valid::SOCK | valid::TCP | valid::SEQ;
        ev.sock = sock;
        ev.seq = seq;
        ev.cwnd = cwnd;
        ev.ssthresh = ssthresh;
        ev.srtt_us = srtt;
        ev.rttvar_us = srtt / 4;
        ev.snd_wnd = 3 * 1024 * 1024;
        ev.rcv_wnd = 128 * 1024;
        ev.packets_out = cwnd.min(44);
        ev.retrans_out = 0;
        self.push(ev);
    }

    fn retransmit(&mut self, f: usize, ts: u64, seq: u32, len: u32) {
        let loss = self.rng.random_range(0..4) == 0;
        let ca = if loss { 4 } else { 3 };
        let fl = &mut self.flows[f];
        fl.ssthresh = (fl.cwnd / 2).max(2);
        fl.cwnd = if loss { 1 } else { fl.ssthresh };
        let sock = fl.snd_sock;
        let mut cong = self.base(f, Stage::CongState, ts, true);
        cong.valid |= valid::SOCK | valid::CA_STATE;
        cong.sock = sock;
        cong.ca_state = ca;
        self.push(cong);
        let mut ev = self.base(f, Stage::Retransmit, ts + 200, true);
        ev.valid |= valid::SOCK
            | valid::SEQ
            | valid::LEN
            | valid::SEGS
            | valid::ERR
            | valid::SKB
            | valid::CA_STATE
            | valid::STATE;
        ev.sock = sock;
        ev.skb = self.kernel_addr();
        ev.seq = seq;
        ev.len = len;
        ev.segs = len.div_ceil(MSS) as u16;
        ev.err = 0;
        ev.ca_state = ca;
        ev.state = 1;
        ev.old_state = 1;
        self.push(ev);
        let mut back = self.base(f, Stage::CongState, ts + 400_000, true);
        back.valid |= valid::SOCK | valid::CA_STATE;
        back.sock = sock;
        back.ca_state = 0;
        self.push(back);
    }
}

impl Iterator for SynthStream {
    type Item = Vec<RawEvent>;

    fn next(&mut self) -> Option<Vec<RawEvent>> {
        let mut out = Vec::with_capacity(self.batch);
        while out.len() < self.batch && self.emitted < self.cfg.events {
            if !self.closing_done && self.emitted >= self.budget {
                // Journeys still in flight are cut, as a stopped recording cuts them.
                self.closing_done = true;
                self.heap.clear();
                self.close_connections(self.last_ts);
            }
            if !self.closing_done {
                // Everything earlier than the next journey's start can no longer be preceded.
                while self.heap.peek().is_none_or(|p| p.0.ts >= self.next_start) {
                    let t0 = self.next_start;
                    self.journey(t0);
                    let gap = self.cfg.interarrival.sample(&mut self.rng);
                    self.next_start += gap.max(1);
                }
            }
            let Some(Reverse(p)) = self.heap.pop() else {
                break;
            };
            self.emitted += 1;
            self.last_ts = p.ts;
            out.push(p.ev);
        }
        (!out.is_empty()).then_some(out)
    }
}

/// The cgroups of a synthetic recording: (id, path). Senders of even flows are in the first (a
/// Docker container), of odd flows in the second (a Kubernetes pod's container), every receiver
/// in the third (a systemd service).
pub const SYNTH_CGROUPS: [(u64, &str); 3] = [
    (
        0x2001,
        "/system.slice/docker-5e1f7c0a9b3d2e4f6a8b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f.scope",
    ),
    (
        0x2002,
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7c9e6679_7425_40de_944b_e07fc1f90ae7.slice/cri-containerd-9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b.scope",
    ),
    (0x2003, "/system.slice/iperf3.service"),
];

/// The metadata of a synthetic recording made with `cfg`.
pub fn synth_meta(cfg: &SynthConfig) -> RecordingMeta {
    let mut meta = RecordingMeta::new("synth");
    meta.start_ns = SYNTH_START_NS;
    meta.end_ns = SYNTH_START_NS;
    meta.hostname = cfg.hostname.clone().unwrap_or_else(|| "synthetic".into());
    meta.boot_id = "00000000-0000-0000-0000-000000000000".into();
    // A fixed wall clock (2026-01-01T00:00:00Z at the start) keeps synthetic files reproducible.
    meta.mono_to_wall_ns = 1_767_225_600_000_000_000 - SYNTH_START_NS as i64;
    meta.kernel_release = "synthetic".into();
    meta.environment = Environment {
        kernel_release: "synthetic".into(),
        congestion_control: "cubic".into(),
        tcp_rmem: "4096 131072 6291456".into(),
        tcp_wmem: "4096 16384 4194304".into(),
        interfaces: vec![
            InterfaceOffloads {
                name: "veth-snd".into(),
                ifindex: 2,
                gro: Some(true),
                tso: Some(true),
                gso: Some(true),
            },
            InterfaceOffloads {
                name: "veth-rcv".into(),
                ifindex: 3,
                gro: Some(true),
                tso: Some(true),
                gso: Some(true),
            },
        ],
    };
    meta.synth = Some(serde_json::to_value(cfg).expect("config serializes"));
    meta.cgroups = SYNTH_CGROUPS
        .iter()
        .map(|(id, path)| crate::metadata::CgroupName {
            id: *id,
            path: Some(path.to_string()),
            identity: crate::cgroup_identity::recognize(path),
        })
        .collect();
    meta
}

/// Writes a synthetic recording as one Parquet file (for tests and tools that do not link the
/// recorder). The recorder's `synth` command writes the same events through its segment writer.
pub fn write_file(path: &std::path::Path, cfg: SynthConfig) -> std::io::Result<u64> {
    write_file_with_meta(path, cfg, |_| {})
}

/// [`write_file`], with the metadata changed by `edit` first (another host, another boot).
pub fn write_file_with_meta(
    path: &std::path::Path,
    cfg: SynthConfig,
    edit: impl FnOnce(&mut RecordingMeta),
) -> std::io::Result<u64> {
    let mut meta = synth_meta(&cfg);
    edit(&mut meta);
    let mut encoder = BatchEncoder::new(EncodeContext::new(drop_reason_names()));
    let mut w = crate::parquet_file::ParquetFileWriter::create(path)?;
    let mut end_ns = meta.end_ns;
    for batch in SynthStream::new(cfg, 8192) {
        end_ns = end_ns.max(batch.last().map_or(0, |e| e.ts_ns));
        w.write(&encoder.encode(&batch))?;
    }
    let rows = w.rows();
    let segment = crate::metadata::SegmentInfo {
        index: 0,
        last: true,
        stop_reason: Some("complete".into()),
        ..Default::default()
    };
    w.finish(&RecordingMeta {
        end_ns,
        segment,
        ..meta
    })?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::Path;

    fn all(cfg: SynthConfig) -> Vec<RawEvent> {
        SynthStream::new(cfg, 1000).flatten().collect()
    }

    #[test]
    fn exact_count_time_order_and_reproducible() {
        for n in [0, 1, 50, 12_345] {
            let evs = all(SynthConfig::new(Mix::Bulk, n, 9));
            assert_eq!(evs.len() as u64, n);
            assert!(
                evs.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns),
                "not time-ordered"
            );
        }
        let a = all(SynthConfig::new(Mix::RequestResponse, 5_000, 1));
        assert_eq!(a, all(SynthConfig::new(Mix::RequestResponse, 5_000, 1)));
        assert_ne!(a, all(SynthConfig::new(Mix::RequestResponse, 5_000, 2)));
    }

    #[test]
    fn fixed_delays_are_the_hop_deltas() {
        let cfg = SynthConfig::new(Mix::Bulk, 20_000, 4)
            .with_fixed_delays(&[(Stage::TxQdiscDeq, 250_000), (Stage::RxApp, 23_000_000)]);
        let evs = all(cfg);
        // Follow the transmitted skb: its enqueue→dequeue and est→app gaps are exact.
        let mut by_skb: HashMap<u64, Vec<&RawEvent>> = HashMap::new();
        for e in evs
            .iter()
            .filter(|e| Stage::from_code(e.kind).is_some_and(|s| s.path() != Path::Tcp))
        {
            by_skb.entry(e.skb).or_default().push(e);
        }
        let mut checked = 0;
        for hops in by_skb.values() {
            let at = |s: Stage| hops.iter().find(|e| e.kind == s.code()).map(|e| e.ts_ns);
            if let (Some(enq), Some(deq)) = (at(Stage::TxQdiscEnq), at(Stage::TxQdiscDeq)) {
                assert_eq!(deq - enq, 250_000);
                checked += 1;
            }
            if let (Some(est), Some(app)) = (at(Stage::RxTcpEst), at(Stage::RxApp)) {
                assert_eq!(app - est, 23_000_000);
            }
        }
        assert!(checked > 500, "only {checked} journeys checked");
    }

    #[test]
    fn retransmits_and_states_are_present() {
        let evs = all(SynthConfig::new(Mix::Bulk, 50_000, 5));
        let count = |s: Stage| evs.iter().filter(|e| e.kind == s.code()).count();
        assert!(count(Stage::Retransmit) > 0);
        assert!(count(Stage::Drop) > 0);
        assert_eq!(
            count(Stage::State),
            4 * 7,
            "3 opening and 4 closing transitions per flow"
        );
    }
}
