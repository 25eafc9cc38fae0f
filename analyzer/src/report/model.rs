//! The report's data: what every output format shows, and the JSON shape (`schema` 1).
//!
//! Fields are only ever added; renaming or removing one is a schema bump. Durations are integer
//! nanoseconds (`*_ns`), times are offsets from the start of the host's recordings unless named
//! `*_mono_ns`, byte counts are bytes.

use crate::journeys::journey::JourneyCounts;
use serde::Serialize;

/// The JSON schema version of a report.
pub const REPORT_SCHEMA: u32 = 1;

/// Latency figures of one pair of stages (or one whole journey span).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageLatency {
    /// Earlier stage.
    pub from: String,
    /// Later stage.
    pub to: String,
    /// Packets measured.
    pub count: u64,
    /// Mean, ns.
    pub mean_ns: f64,
    /// Median, ns.
    pub p50_ns: u64,
    /// 90th percentile, ns.
    pub p90_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// Largest, ns.
    pub max_ns: u64,
}

/// [`StageLatency`] of one flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowLatency {
    /// `SADDR:SPORT-DADDR:DPORT`, packet orientation.
    pub flow: String,
    /// The figures.
    #[serde(flatten)]
    pub latency: StageLatency,
}

/// [`StageLatency`] on one CPU (the CPU of the later hop).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuLatency {
    /// CPU number.
    pub cpu: u64,
    /// The figures.
    #[serde(flatten)]
    pub latency: StageLatency,
}

/// Latency of one pair of stages in one second.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecondLatency {
    /// Earlier stage.
    pub from: String,
    /// Later stage.
    pub to: String,
    /// Seconds since the start.
    pub second: i64,
    /// Packets.
    pub count: u64,
    /// Median, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// Largest, ns.
    pub max_ns: u64,
}

/// The distribution of one stage pair's latency: packets per bin of a log time axis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Histogram {
    /// Earlier stage.
    pub from: String,
    /// Later stage.
    pub to: String,
    /// The bins that hold packets, in time order.
    pub bins: Vec<HistogramBin>,
}

/// Packets whose latency is in `[lo_ns, hi_ns)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramBin {
    /// Lower bound, ns (0 for the first bin, which holds everything under 1 ns).
    pub lo_ns: u64,
    /// Upper bound, ns.
    pub hi_ns: u64,
    /// Packets.
    pub count: u64,
}

/// A retransmission or a drop, at its time: what the HTML report marks on its time lines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TcpEvent {
    /// Time since the start of the recordings, ns.
    pub t_ns: u64,
    /// `retransmit` or `drop`.
    pub kind: String,
    /// The flow (`?` when unknown).
    pub flow: String,
    /// Segments retransmitted (1 for a drop).
    pub segments: u64,
}

/// Retransmissions, like `tcpretrans -c`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Retransmits {
    /// Segments retransmitted (sum of `segs` over attempts with `err == 0`).
    pub segments: u64,
    /// All attempts, failed ones included.
    pub attempts: u64,
    /// Attempts with `err != 0` (the segment did not leave the host).
    pub failed_attempts: u64,
    /// Segments of failed attempts.
    pub failed_segments: u64,
    /// Segments the kernel counts in `TcpRetransSegs` (`err >= 0`): compare with `nstat`.
    pub kernel_counted_segments: u64,
    /// `segments` scaled by flow sampling (present only when the recording was sampled).
    pub estimated_segments: Option<u64>,
    /// Sent segments per congestion-avoidance state.
    pub by_ca_state: Vec<CaStateCount>,
    /// Failed attempts per error code.
    pub failed_by_err: Vec<ErrCount>,
    /// Per flow, most segments first.
    pub per_flow: Vec<FlowRetransmits>,
    /// Sent segments per second.
    pub per_second: Vec<SecondCount>,
}

/// Retransmissions in one congestion state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaStateCount {
    /// `loss`, `recovery`, `disorder`, `cwr`, `open`.
    pub ca_state: String,
    /// Attempts.
    pub attempts: u64,
    /// Segments.
    pub segments: u64,
}

/// Failed retransmission attempts with one error code.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrCount {
    /// Kernel error (positive: `NET_XMIT_*`, counted by the kernel; negative: `-errno`, not).
    pub err: i64,
    /// Attempts.
    pub attempts: u64,
    /// Segments.
    pub segments: u64,
}

/// Retransmissions of one flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowRetransmits {
    /// Flow.
    pub flow: String,
    /// Attempts sent.
    pub attempts: u64,
    /// Segments sent.
    pub segments: u64,
    /// Attempts in the `loss` state (timeouts) rather than fast recovery.
    pub loss_attempts: u64,
}

/// A count in one second.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecondCount {
    /// Seconds since the start.
    pub second: i64,
    /// Segments.
    pub segments: u64,
}

/// RTT and congestion window of one flow, like `tcprtt`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowSamples {
    /// Flow.
    pub flow: String,
    /// Congestion snapshots (`rx_tcp_est` events, or `tcp_sample` in older recordings).
    pub samples: u64,
    /// Smallest smoothed RTT, µs.
    pub rtt_min_us: u64,
    /// Median smoothed RTT, µs.
    pub rtt_p50_us: u64,
    /// Largest smoothed RTT, µs.
    pub rtt_max_us: u64,
    /// Smallest cwnd, segments.
    pub cwnd_min: u64,
    /// Median cwnd, segments.
    pub cwnd_p50: u64,
    /// Largest cwnd, segments.
    pub cwnd_max: u64,
    /// Last slow-start threshold seen.
    pub ssthresh_last: Option<u64>,
}

/// One bucket of the RTT histogram.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// Lower bound, µs (inclusive).
    pub lo_us: u64,
    /// Upper bound, µs (exclusive).
    pub hi_us: u64,
    /// Samples.
    pub count: u64,
}

/// Median RTT and cwnd of a flow in one time bin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SamplePoint {
    /// Flow.
    pub flow: String,
    /// Start of the bin, ns since the start.
    pub t_ns: u64,
    /// Median smoothed RTT, µs.
    pub srtt_us: u64,
    /// Median cwnd.
    pub cwnd: u64,
}

/// One connection's life, like `tcplife` / `tcpconnlat`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Connection {
    /// Socket cookie.
    pub sock: u64,
    /// Flow (as the socket's state events name it).
    pub flow: String,
    /// Process id, when recorded.
    pub pid: Option<u64>,
    /// Task name, when recorded.
    pub comm: Option<String>,
    /// First state change, ns since the start.
    pub first_ns: u64,
    /// Time from the first to the last state change, ns.
    pub duration_ns: u64,
    /// SYN_SENT → ESTABLISHED, ns (active opens only).
    pub connect_latency_ns: Option<u64>,
    /// Bytes written by the application (`tx_sendmsg`).
    pub tx_bytes: u64,
    /// Bytes read by the application (`rx_app`).
    pub rx_bytes: u64,
    /// True when the socket reached CLOSE within the recording.
    pub closed: bool,
    /// States in order, starting with the first old state.
    pub states: String,
}

/// How often one state transition happened, like `tcpstates`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// Old state.
    pub from: String,
    /// New state.
    pub to: String,
    /// Times.
    pub count: u64,
}

/// Drops with one kernel reason, like `tcpdrop`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DropCount {
    /// `enum skb_drop_reason` name.
    pub reason: String,
    /// Drops.
    pub drops: u64,
}

/// Bytes of one flow, like `tcptop`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowBytes {
    /// Flow.
    pub flow: String,
    /// Process id.
    pub pid: Option<u64>,
    /// Task name.
    pub comm: Option<String>,
    /// Bytes.
    pub bytes: u64,
    /// Calls (writes or reads).
    pub calls: u64,
    /// Bytes per second over the time covered.
    pub bytes_per_sec: f64,
}

/// Buffer-pressure events of one flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowBuffer {
    /// Flow.
    pub flow: String,
    /// Events.
    pub events: u64,
    /// Largest buffer size reported, bytes.
    pub max_bytes: u64,
    /// First event, ns since the start.
    pub first_ns: u64,
    /// Last event, ns since the start.
    pub last_ns: u64,
}

/// Events recorded at one stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageCount {
    /// Stage name.
    pub stage: String,
    /// Events.
    pub events: u64,
    /// Events before flow sampling, estimated: each event scaled by the sampling in force at
    /// its time (present only when some flows were left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated: Option<u64>,
    /// Events the kernel counted at this stage before sampling: exact, where `estimated` is
    /// not (present only when some flows were left out and every event is selected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<u64>,
}

/// One recording that went into a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordingSummary {
    /// Path given.
    pub path: String,
    /// Rows.
    pub events: u64,
    /// `live` or `synth`.
    pub source: String,
    /// Kernel release.
    pub kernel: String,
    /// Lost events.
    pub lost_events: u64,
    /// Flow sampling (1 = every flow).
    pub sampling_one_in: u32,
    /// True when the recorder finished it.
    pub closed: bool,
}

/// Everything `tcptape report` shows for one host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// [`REPORT_SCHEMA`].
    pub schema: u32,
    /// Host the recordings were made on.
    pub host: String,
    /// The recordings.
    pub recordings: Vec<RecordingSummary>,
    /// Monotonic time the earliest recording starts (the origin of every `*_ns` offset).
    pub start_mono_ns: u64,
    /// Add to a monotonic time for wall-clock ns since the Unix epoch.
    pub mono_to_wall_ns: i64,
    /// Time covered, ns.
    pub duration_ns: u64,
    /// Events read (after selection).
    pub events: u64,
    /// Events the recorder lost (ring buffer, writer queue): counts below are lower bounds.
    pub lost_events: u64,
    /// Where they were lost, summed over the recordings (ring buffer per CPU, writer queue,
    /// skipped program runs per stage).
    pub lost: tcptape_common::metadata::Lost,
    /// The sparsest flow sampling in force (1 = every flow throughout; N: counts are of 1 flow
    /// in N at least part of the time).
    pub sampling_one_in: u32,
    /// The sampling in force over time (`--sample`, and under `--budget` its steps): what the
    /// estimates are scaled by.
    pub sampling: tcptape_common::metadata::Sampling,
    /// Caveats about the figures (lost events, sampling, unfinished recordings).
    pub notes: Vec<String>,
    /// Hop stages recorded, with event counts.
    pub stages_recorded: Vec<StageCount>,
    /// Journeys built.
    pub journeys: JourneyCounts,
    /// Latency of every adjacent pair of recorded stages.
    pub stages: Vec<StageLatency>,
    /// Latency of complete journeys, first stage to last.
    pub end_to_end: Vec<StageLatency>,
    /// Stage latency per flow.
    pub stages_per_flow: Vec<FlowLatency>,
    /// Stage latency per CPU.
    pub stages_per_cpu: Vec<CpuLatency>,
    /// Stage latency per second.
    pub stages_over_time: Vec<SecondLatency>,
    /// Latency distribution per stage pair (HTML reports only; empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub histograms: Vec<Histogram>,
    /// Each stage pair's packets on the pooling axis, when several hosts are pooled (not in the
    /// JSON: [`pooled`] turns them into rows).
    #[serde(skip)]
    pub pooling: Vec<PairBins>,
    /// The sections read from the per-connection TCP events, in place (the JSON has their
    /// fields at this level).
    #[serde(flatten)]
    pub tcp: TcpSections,
    /// Each cgroup's (container's, unit's) share, most bytes first; absent for recordings
    /// without cgroups (schema version 1, synthetic ones before they had them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cgroups: Vec<CgroupShare>,
}

/// One cgroup's share of a report. A flow is the cgroup's whose socket on this host is in it;
/// a packet counts for its sender's socket when that is on this host, else its receiver's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CgroupShare {
    /// The cgroup v2 id.
    pub cgroup: u64,
    /// Its path below the cgroup v2 root, when the recorder found it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The container, pod or unit the path names, when tcptape knows the layout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<tcptape_common::cgroup_identity::CgroupIdentity>,
    /// Flows of the cgroup's sockets (one per socket and peer, in the recording).
    pub flows: u64,
    /// Sockets of the cgroup with an event in the selection.
    pub sockets: u64,
    /// Bytes its applications wrote.
    pub bytes_written: u64,
    /// Bytes its applications read.
    pub bytes_read: u64,
    /// Segments its sockets retransmitted.
    pub retransmitted_segments: u64,
    /// Drops of its packets.
    pub drops: u64,
    /// Per-stage latency of its packets.
    pub stages: Vec<StageLatency>,
}

/// The classic TCP sections of a report (retransmits, RTT and cwnd, connections, drops,
/// throughput, buffer pressure).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TcpSections {
    /// Retransmissions.
    pub retransmits: Retransmits,
    /// RTT and cwnd per flow.
    pub rtt_cwnd: Vec<FlowSamples>,
    /// Smoothed RTT histogram, log2 buckets.
    pub rtt_histogram: Vec<Bucket>,
    /// Median RTT and cwnd per flow over time.
    pub rtt_cwnd_over_time: Vec<SamplePoint>,
    /// Connections.
    pub connections: Vec<Connection>,
    /// State transitions.
    pub state_transitions: Vec<Transition>,
    /// Drops by reason.
    pub drops: Vec<DropCount>,
    /// All drops (scaled estimate in `drops_estimated` when sampled).
    pub drops_total: u64,
    /// `drops_total` scaled by flow sampling (present only when sampled).
    pub drops_estimated: Option<u64>,
    /// Bytes written per flow.
    pub throughput_tx: Vec<FlowBytes>,
    /// Bytes read per flow.
    pub throughput_rx: Vec<FlowBytes>,
    /// Buffer-pressure events per flow.
    pub buffer_pressure: Vec<FlowBuffer>,
    /// Retransmissions and drops in time order, the first [`MAX_TCP_EVENTS`] (HTML reports only;
    /// empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<TcpEvent>,
}

/// At most this many retransmissions and drops are listed one by one in [`TcpSections::events`].
pub const MAX_TCP_EVENTS: usize = 20_000;

/// A host of a multi-host report, by the stage pair where its packets spend most time (largest
/// median), with what qualifies its figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostRank {
    /// The host.
    pub host: String,
    /// Earlier stage of its dominant pair (empty when no pair was measured).
    pub from: String,
    /// Later stage.
    pub to: String,
    /// The pair's median, ns.
    pub p50_ns: u64,
    /// The pair's p99, ns.
    pub p99_ns: u64,
    /// Packets measured on the pair.
    pub count: u64,
    /// Events analyzed on the host.
    pub events: u64,
    /// Events lost while recording.
    pub lost_events: u64,
    /// Flow sampling (1 in N).
    pub sampling_one_in: u32,
}

/// The hosts of a multi-host report, the one whose dominant pair's median is largest first.
pub fn rank_hosts(reports: &[Report]) -> Vec<HostRank> {
    let mut v: Vec<HostRank> = reports
        .iter()
        .map(|r| {
            let top = r.stages.iter().max_by_key(|l| (l.p50_ns, l.p99_ns));
            HostRank {
                host: r.host.clone(),
                from: top.map_or(String::new(), |l| l.from.clone()),
                to: top.map_or(String::new(), |l| l.to.clone()),
                p50_ns: top.map_or(0, |l| l.p50_ns),
                p99_ns: top.map_or(0, |l| l.p99_ns),
                count: top.map_or(0, |l| l.count),
                events: r.events,
                lost_events: r.lost_events,
                sampling_one_in: r.sampling_one_in,
            }
        })
        .collect();
    v.sort_by(|a, b| b.p50_ns.cmp(&a.p50_ns).then_with(|| a.host.cmp(&b.host)));
    v
}

/// One stage pair's packets per bin of [`crate::report::latency_stats::LogBins::POOLING`].
#[derive(Debug, Clone, PartialEq)]
pub struct PairBins {
    /// Earlier stage.
    pub from: String,
    /// Later stage.
    pub to: String,
    /// (bin, packets), bins ascending.
    pub bins: Vec<(i32, u64)>,
}

/// How the pooled percentiles are found, said in the JSON.
pub const POOLED_RULE: &str = "count, mean and max exact; a percentile is the upper edge (less \
    1 ns, at most the max) of the 1/100-decade bin that holds the nearest-rank value over all \
    hosts' packets: at most 2.33 % above it";

/// Every host's stage pairs pooled into one row per pair, in packet order (see [`POOLED_RULE`]).
/// Memory is one small histogram per pair and host, whatever the packets.
pub fn pooled(reports: &[Report]) -> Vec<StageLatency> {
    use crate::report::latency_stats::LogBins;
    use std::collections::BTreeMap;
    /// Per pair: packets per bin, the sum of durations, the largest.
    #[derive(Default)]
    struct Pooled {
        bins: BTreeMap<i32, u64>,
        sum: f64,
        max: u64,
    }
    let mut pairs: BTreeMap<(String, String), Pooled> = BTreeMap::new();
    for r in reports {
        for p in &r.pooling {
            let e = pairs.entry((p.from.clone(), p.to.clone())).or_default();
            for &(k, n) in &p.bins {
                *e.bins.entry(k).or_default() += n;
            }
        }
        for l in &r.stages {
            if let Some(e) = pairs.get_mut(&(l.from.clone(), l.to.clone())) {
                e.sum += l.mean_ns * l.count as f64;
                e.max = e.max.max(l.max_ns);
            }
        }
    }
    let axis = LogBins::POOLING;
    let mut out: Vec<StageLatency> = pairs
        .into_iter()
        .map(|((from, to), Pooled { bins, sum, max })| {
            let n: u64 = bins.values().sum();
            let at = |q: f64| -> u64 {
                let rank = ((n as f64 * q).ceil() as u64).max(1);
                let mut seen = 0;
                for (&k, &c) in &bins {
                    seen += c;
                    if seen >= rank {
                        return if k < 0 {
                            0
                        } else {
                            (axis.lo(k + 1) - 1).min(max)
                        };
                    }
                }
                max
            };
            StageLatency {
                from,
                to,
                count: n,
                mean_ns: if n > 0 { sum / n as f64 } else { 0.0 },
                p50_ns: at(0.5),
                p90_ns: at(0.9),
                p99_ns: at(0.99),
                p999_ns: at(0.999),
                max_ns: max,
            }
        })
        .filter(|l| l.count > 0)
        .collect();
    out.sort_by_key(|l| crate::report::latency_sections::pair_order(&l.from, &l.to));
    out
}
