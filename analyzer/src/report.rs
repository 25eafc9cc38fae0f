//! `tcptape report`: runs the queries over one host's recordings and fills the [`Report`].

use crate::frame::{bools, collect, f64s, flows, i64s, joined_lists, strs, u64s};
use crate::journey::Journeys;
use crate::latency_stats::{FlowLabel, PairSamples, Stats};
use crate::model::*;
use crate::progress::Steps;
use crate::queries::{self, latency, scan, select::Selection};
use polars::prelude::*;
use std::collections::HashMap;
use tcptape_common::metadata::{Lost, RecordingMeta};
use tcptape_common::{Recording, Stage};

/// How a report is built.
#[derive(Debug, Clone)]
pub struct Options {
    /// What to cover.
    pub selection: Selection,
    /// Time between two hops of one packet id beyond which it is taken as reused, ns.
    pub max_hop_gap_ns: u64,
    /// Compute latency CDFs (for plots).
    pub cdf: bool,
}

/// Number of steps [`build`] reports to its progress display.
pub const STEPS: u64 = 8;

fn stage_name(code: Option<u64>) -> String {
    code.and_then(|c| Stage::from_code(c as u8))
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| "?".into())
}

/// The percentiles of a latency row: p50, p90, p99, p99.9.
const LATENCY_QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// A flow's label (`SADDR:SPORT-DADDR:DPORT`, `?` when a part is unknown).
fn flow_label(f: &FlowLabel) -> String {
    match f {
        (Some(saddr), Some(sport), Some(daddr), Some(dport)) => queries::select::Flow {
            saddr: saddr.clone(),
            sport: *sport as u16,
            daddr: daddr.clone(),
            dport: *dport as u16,
        }
        .to_string(),
        _ => "?".to_string(),
    }
}

/// Latency rows of an aggregate; `None` for the group of first hops (no previous stage).
fn latency_rows(df: &DataFrame) -> anyhow::Result<Vec<Option<StageLatency>>> {
    let (from, to, count, mean) = (
        u64s(df, "from")?,
        u64s(df, "to")?,
        u64s(df, "count")?,
        f64s(df, "mean_ns")?,
    );
    let (p50, p90, p99, p999, max) = (
        u64s(df, "p50_ns")?,
        u64s(df, "p90_ns")?,
        u64s(df, "p99_ns")?,
        u64s(df, "p999_ns")?,
        u64s(df, "max_ns")?,
    );
    Ok((0..df.height())
        .map(|i| {
            from[i]?;
            Some(StageLatency {
                from: stage_name(from[i]),
                to: stage_name(to[i]),
                count: count[i].unwrap_or(0),
                mean_ns: mean[i].unwrap_or(0.0),
                p50_ns: p50[i].unwrap_or(0),
                p90_ns: p90[i].unwrap_or(0),
                p99_ns: p99[i].unwrap_or(0),
                p999_ns: p999[i].unwrap_or(0),
                max_ns: max[i].unwrap_or(0),
            })
        })
        .collect())
}

/// Latency rows of an aggregate, without the group of first hops.
fn latencies(df: &DataFrame) -> anyhow::Result<Vec<StageLatency>> {
    Ok(latency_rows(df)?.into_iter().flatten().collect())
}

/// Where a stage name sorts: in packet order (the application's write first).
fn packet_order(name: &str) -> u8 {
    name.parse::<Stage>()
        .ok()
        .and_then(queries::journey_rank)
        .unwrap_or(u8::MAX)
}

fn pair_order(from: &str, to: &str) -> (u8, u8) {
    (packet_order(from), packet_order(to))
}

fn rel(t: Option<u64>, start: u64) -> u64 {
    t.unwrap_or(start).saturating_sub(start)
}

/// Builds the report of one host's recordings.
pub fn build(recs: &[Recording], opts: &Options, steps: &Steps) -> anyhow::Result<Report> {
    let metas: Vec<_> = recs.iter().map(|r| r.meta()).collect();
    let start = metas.iter().map(|m| m.start_ns).min().unwrap_or(0);
    let end = metas.iter().map(|m| m.end_ns).max().unwrap_or(start);
    let sel = &opts.selection;
    let (from_ns, to_ns) = (
        sel.from_ns.map_or(start, |f| f.max(start)),
        sel.to_ns.map_or(end, |t| t.min(end)),
    );
    let span_ns = to_ns.saturating_sub(from_ns).max(1);
    let files: Vec<_> = recs.iter().flat_map(|r| r.files()).collect();
    let scan = || scan::scan(&files).map_err(crate::frame::one_line);
    let lost: u64 = metas.iter().map(|m| m.lost.total()).sum();
    let sampling = metas
        .iter()
        .map(|m| m.sampling.one_in.max(1))
        .max()
        .unwrap_or(1);

    steps.step("reading packet hops");
    let (hops, writes) = crate::per_packet::hops_and_writes(&files, sel)?;

    steps.step("building journeys");
    let j = Journeys::build(hops, &writes, opts.max_hop_gap_ns)?;

    steps.step("per-stage latency");
    let frames = j
        .pairs()
        .into_iter()
        .map(collect)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let samples = PairSamples::new(&frames)?;
    drop(frames);
    let stage_of = |p: usize| {
        let (f, t) = samples.pair(p);
        (stage_name(Some(f as u64)), stage_name(Some(t as u64)))
    };
    let latency = |p: usize, st: &Stats| {
        let (from, to) = stage_of(p);
        let q = |i: usize| st.quantiles_ns[i].max(0) as u64;
        StageLatency {
            from,
            to,
            count: st.count,
            mean_ns: st.mean_ns,
            p50_ns: q(0),
            p90_ns: q(1),
            p99_ns: q(2),
            p999_ns: q(3),
            max_ns: st.max_ns.max(0) as u64,
        }
    };
    let mut stages: Vec<StageLatency> = samples
        .grouped(1, |_| 0, &LATENCY_QUANTILES)
        .iter()
        .map(|(_, p, st)| latency(*p, st))
        .collect();
    stages.sort_by_key(|l| pair_order(&l.from, &l.to));
    let end_to_end = latencies(&collect(latency::end_to_end(j.whole.clone().lazy()))?)?;
    let n_flows = samples.flows().iter().max().map_or(0, |m| *m as usize + 1);
    let mut stages_per_flow: Vec<FlowLatency> = samples
        .grouped(n_flows, |r| samples.flows()[r] as usize, &LATENCY_QUANTILES)
        .iter()
        .map(|(f, p, st)| FlowLatency {
            flow: flow_label(samples.flow(*f as u32)),
            latency: latency(*p, st),
        })
        .collect();
    let n_cpus = samples.cpus().iter().max().map_or(0, |m| *m as usize + 1);
    let mut stages_per_cpu: Vec<CpuLatency> = samples
        .grouped(n_cpus, |r| samples.cpus()[r] as usize, &LATENCY_QUANTILES)
        .iter()
        .map(|(c, p, st)| CpuLatency {
            cpu: *c as u64,
            latency: latency(*p, st),
        })
        .collect();
    stages_per_flow.sort_by(|a, b| {
        (&a.flow, pair_order(&a.latency.from, &a.latency.to))
            .cmp(&(&b.flow, pair_order(&b.latency.from, &b.latency.to)))
    });
    stages_per_cpu.sort_by_key(|c| (c.cpu, pair_order(&c.latency.from, &c.latency.to)));

    steps.step("latency over time");
    // As `queries::second_of` computes it.
    let second = |ts: u64| ((ts as i64 - start as i64) as f64 / 1e9) as i64;
    let secs: Vec<i64> = samples.times().iter().map(|&t| second(t)).collect();
    let s0 = secs.iter().copied().min().unwrap_or(0);
    let n_secs = secs
        .iter()
        .copied()
        .max()
        .map_or(0, |m| (m - s0) as usize + 1);
    let mut stages_over_time: Vec<SecondLatency> = samples
        .grouped(n_secs, |r| (secs[r] - s0) as usize, &[0.5, 0.99])
        .iter()
        .map(|(sec, p, st)| {
            let (from, to) = stage_of(*p);
            SecondLatency {
                from,
                to,
                second: *sec as i64 + s0,
                count: st.count,
                p50_ns: st.quantiles_ns[0].max(0) as u64,
                p99_ns: st.quantiles_ns[1].max(0) as u64,
                max_ns: st.max_ns.max(0) as u64,
            }
        })
        .collect();
    drop(secs);
    stages_over_time.sort_by_key(|s| (s.second, pair_order(&s.from, &s.to)));
    let cdf: Vec<Cdf> = if opts.cdf {
        const POINTS: usize = 50;
        let qs: Vec<f64> = (0..=POINTS).map(|i| i as f64 / POINTS as f64).collect();
        let mut cdf: Vec<Cdf> = samples
            .grouped(1, |_| 0, &qs)
            .iter()
            .map(|(_, p, st)| {
                let (from, to) = stage_of(*p);
                Cdf {
                    from,
                    to,
                    quantiles_ns: st.quantiles_ns.iter().map(|v| (*v).max(0) as u64).collect(),
                }
            })
            .collect();
        // Stage code order, the application's write last (as the hop pairs came first).
        let code = |n: &str| n.parse::<Stage>().map_or(u8::MAX, |s| s.code());
        cdf.sort_by_key(|c| {
            let from = code(&c.from);
            (from == Stage::TxSendmsg.code(), from, code(&c.to))
        });
        cdf
    } else {
        Vec::new()
    };
    drop(samples);

    steps.step("reading TCP events");
    let tcp = collect(scan::events(
        scan()?,
        scan::TCP_COLUMNS,
        &scan::tcp_stages(),
        sel,
    )?)?;
    let rx_app = j
        .stages
        .iter()
        .find(|(s, _)| *s == Stage::RxApp)
        .map_or(0, |s| s.1);
    // rx_app events are in both frames.
    let events = (j.seg.height() + writes.height() + tcp.height()) as u64 - rx_app;

    steps.step("retransmits, RTT, cwnd");
    let retransmits = retransmits(&tcp, start, sampling)?;
    let df = collect(queries::samples::per_flow(tcp.clone().lazy()))?;
    let fl = flows(&df)?;
    let cols = [
        "samples",
        "rtt_min_us",
        "rtt_p50_us",
        "rtt_max_us",
        "cwnd_min",
        "cwnd_p50",
        "cwnd_max",
        "ssthresh_last",
    ]
    .iter()
    .map(|c| u64s(&df, c))
    .collect::<PolarsResult<Vec<_>>>()?;
    let rtt_cwnd = (0..df.height())
        .map(|i| FlowSamples {
            flow: fl[i].clone(),
            samples: cols[0][i].unwrap_or(0),
            rtt_min_us: cols[1][i].unwrap_or(0),
            rtt_p50_us: cols[2][i].unwrap_or(0),
            rtt_max_us: cols[3][i].unwrap_or(0),
            cwnd_min: cols[4][i].unwrap_or(0),
            cwnd_p50: cols[5][i].unwrap_or(0),
            cwnd_max: cols[6][i].unwrap_or(0),
            ssthresh_last: cols[7][i],
        })
        .collect();
    let df = collect(queries::samples::rtt_histogram(tcp.clone().lazy()))?;
    let rtt_histogram = u64s(&df, "bucket")?
        .into_iter()
        .zip(u64s(&df, "count")?)
        .map(|(b, c)| {
            let b = b.unwrap_or(0) as u32;
            Bucket {
                lo_us: if b == 0 { 0 } else { 1u64 << b },
                hi_us: 1u64 << (b + 1),
                count: c.unwrap_or(0),
            }
        })
        .collect();
    let bin_ns = (span_ns / 200).max(1_000_000);
    let df = collect(queries::samples::over_time(
        tcp.clone().lazy(),
        start,
        bin_ns,
    ))?;
    let fl = flows(&df)?;
    let (bin, srtt, cwnd) = (u64s(&df, "bin")?, u64s(&df, "srtt_us")?, u64s(&df, "cwnd")?);
    let rtt_cwnd_over_time = (0..df.height())
        .map(|i| SamplePoint {
            flow: fl[i].clone(),
            t_ns: bin[i].unwrap_or(0) * bin_ns,
            srtt_us: srtt[i].unwrap_or(0),
            cwnd: cwnd[i].unwrap_or(0),
        })
        .collect();

    steps.step("connections, drops, throughput");
    let (connections, state_transitions) = lifecycle(&tcp, &writes, start)?;
    let df = collect(queries::drops::by_reason(tcp.clone().lazy()))?;
    let mut drops: Vec<DropCount> = strs(&df, "drop_reason")?
        .into_iter()
        .zip(u64s(&df, "drops")?)
        .map(|(r, n)| DropCount {
            reason: r.unwrap_or_else(|| "unknown".into()),
            drops: n.unwrap_or(0),
        })
        .collect();
    // Ties in a deterministic order: the most first, then by name.
    drops.sort_by(|a, b| b.drops.cmp(&a.drops).then_with(|| a.reason.cmp(&b.reason)));
    let drops_total = drops.iter().map(|d| d.drops).sum::<u64>();
    let throughput_tx = throughput(&writes, Stage::TxSendmsg, span_ns)?;
    let throughput_rx = throughput(&tcp, Stage::RxApp, span_ns)?;
    let df = collect(queries::buffer::per_flow(tcp.clone().lazy()))?;
    let fl = flows(&df)?;
    let (ev, mb, fst, lst) = (
        u64s(&df, "events")?,
        u64s(&df, "max_bytes")?,
        u64s(&df, "first_ns")?,
        u64s(&df, "last_ns")?,
    );
    let mut buffer_pressure: Vec<FlowBuffer> = (0..df.height())
        .map(|i| FlowBuffer {
            flow: fl[i].clone(),
            events: ev[i].unwrap_or(0),
            max_bytes: mb[i].unwrap_or(0),
            first_ns: rel(fst[i], start),
            last_ns: rel(lst[i], start),
        })
        .collect();

    buffer_pressure.sort_by(|a, b| b.events.cmp(&a.events).then_with(|| a.flow.cmp(&b.flow)));

    steps.step("done");
    let mut notes = Vec::new();
    if lost > 0 {
        notes.push(format!(
            "{lost} events were lost while recording: counts are lower bounds, and journeys \
             missing a hop are counted incomplete rather than measured"
        ));
    }
    if sampling > 1 {
        notes.push(format!(
            "flows were sampled 1 in {sampling}: counts are of the sampled flows; \
             estimated totals are scaled by {sampling}"
        ));
    }
    for (r, m) in recs.iter().zip(&metas) {
        if !r.closed() {
            notes.push(format!(
                "{} was not finished by the recorder (killed?): it ends early",
                r.path.display()
            ));
        }
        if m.source == "synth" {
            notes.push(format!("{} is a synthetic recording", r.path.display()));
        }
    }
    let scale = |n: u64| (sampling > 1).then_some(n * sampling as u64);
    let shown = |v: Vec<StageLatency>| {
        v.into_iter()
            .filter(|l| sel.shows(&l.from, &l.to))
            .collect::<Vec<_>>()
    };
    Ok(Report {
        schema: REPORT_SCHEMA,
        host: metas[0].hostname.clone(),
        recordings: recs
            .iter()
            .zip(&metas)
            .map(|(r, m)| RecordingSummary {
                path: r.path.display().to_string(),
                events: r.rows(),
                source: m.source.clone(),
                kernel: m.kernel_release.clone(),
                lost_events: m.lost.total(),
                sampling_one_in: m.sampling.one_in.max(1),
                closed: r.closed(),
            })
            .collect(),
        start_mono_ns: start,
        mono_to_wall_ns: metas[0].mono_to_wall_ns,
        duration_ns: end.saturating_sub(start),
        events,
        lost_events: lost,
        lost: merged_losses(&metas),
        sampling_one_in: sampling,
        notes,
        stages_recorded: j
            .stages
            .iter()
            .map(|(s, n)| StageCount {
                stage: s.name().to_string(),
                events: *n,
            })
            .chain((writes.height() > 0).then(|| StageCount {
                stage: Stage::TxSendmsg.name().to_string(),
                events: writes.height() as u64,
            }))
            .collect(),
        journeys: j.counts.clone(),
        stages: shown(stages),
        end_to_end: shown(end_to_end),
        stages_per_flow: stages_per_flow
            .into_iter()
            .filter(|f: &FlowLatency| sel.shows(&f.latency.from, &f.latency.to))
            .collect(),
        stages_per_cpu: stages_per_cpu
            .into_iter()
            .filter(|c: &CpuLatency| sel.shows(&c.latency.from, &c.latency.to))
            .collect(),
        stages_over_time: stages_over_time
            .into_iter()
            .filter(|s: &SecondLatency| sel.shows(&s.from, &s.to))
            .collect(),
        cdf: cdf
            .into_iter()
            .filter(|c: &Cdf| sel.shows(&c.from, &c.to))
            .collect(),
        retransmits,
        rtt_cwnd,
        rtt_histogram,
        rtt_cwnd_over_time,
        connections,
        state_transitions,
        drops,
        drops_total,
        drops_estimated: scale(drops_total),
        throughput_tx,
        throughput_rx,
        buffer_pressure,
    })
}

fn retransmits(tcp: &DataFrame, start: u64, sampling: u32) -> anyhow::Result<Retransmits> {
    use queries::retransmits as q;
    let t = collect(q::totals(tcp.clone().lazy()))?;
    let one = |c: &str| -> anyhow::Result<u64> {
        Ok(u64s(&t, c)?.first().copied().flatten().unwrap_or(0))
    };
    let segments = one("segments")?;
    let df = collect(q::by_ca_state(tcp.clone().lazy()))?;
    let by_ca_state = strs(&df, "ca_state")?
        .into_iter()
        .zip(
            u64s(&df, "attempts")?
                .into_iter()
                .zip(u64s(&df, "segments")?),
        )
        .map(|(s, (a, n))| CaStateCount {
            ca_state: s.unwrap_or_else(|| "unknown".into()),
            attempts: a.unwrap_or(0),
            segments: n.unwrap_or(0),
        })
        .collect();
    let df = collect(q::failed_by_err(tcp.clone().lazy()))?;
    let failed_by_err = i64s(&df, "err")?
        .into_iter()
        .zip(
            u64s(&df, "attempts")?
                .into_iter()
                .zip(u64s(&df, "segments")?),
        )
        .map(|(e, (a, n))| ErrCount {
            err: e.unwrap_or(0),
            attempts: a.unwrap_or(0),
            segments: n.unwrap_or(0),
        })
        .collect();
    let df = collect(q::per_flow(tcp.clone().lazy()))?;
    let fl = flows(&df)?;
    let (a, s, l) = (
        u64s(&df, "attempts")?,
        u64s(&df, "segments")?,
        u64s(&df, "loss_attempts")?,
    );
    let mut per_flow: Vec<FlowRetransmits> = (0..df.height())
        .map(|i| FlowRetransmits {
            flow: fl[i].clone(),
            attempts: a[i].unwrap_or(0),
            segments: s[i].unwrap_or(0),
            loss_attempts: l[i].unwrap_or(0),
        })
        .collect();
    per_flow.sort_by(|a, b| {
        b.segments
            .cmp(&a.segments)
            .then_with(|| a.flow.cmp(&b.flow))
    });
    let df = collect(q::per_second(tcp.clone().lazy(), start))?;
    let per_second = i64s(&df, "second")?
        .into_iter()
        .zip(u64s(&df, "segments")?)
        .map(|(s, n)| SecondCount {
            second: s.unwrap_or(0),
            segments: n.unwrap_or(0),
        })
        .collect();
    Ok(Retransmits {
        segments,
        attempts: one("attempts")?,
        failed_attempts: one("failed_attempts")?,
        failed_segments: one("failed_segments")?,
        kernel_counted_segments: one("kernel_counted_segments")?,
        estimated_segments: (sampling > 1).then_some(segments * sampling as u64),
        by_ca_state,
        failed_by_err,
        per_flow,
        per_second,
    })
}

fn throughput(events: &DataFrame, stage: Stage, span_ns: u64) -> anyhow::Result<Vec<FlowBytes>> {
    let df = collect(queries::throughput::per_flow(events.clone().lazy(), stage))?;
    let fl = flows(&df)?;
    let (pid, comm, bytes, calls) = (
        u64s(&df, "pid")?,
        strs(&df, "comm")?,
        u64s(&df, "bytes")?,
        u64s(&df, "calls")?,
    );
    let mut v: Vec<FlowBytes> = (0..df.height())
        .map(|i| FlowBytes {
            flow: fl[i].clone(),
            pid: pid[i],
            comm: comm[i].clone(),
            bytes: bytes[i].unwrap_or(0),
            calls: calls[i].unwrap_or(0),
            bytes_per_sec: bytes[i].unwrap_or(0) as f64 * 1e9 / span_ns as f64,
        })
        .collect();
    v.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.flow.cmp(&b.flow)));
    Ok(v)
}

fn sock_bytes(events: &DataFrame, stage: Stage) -> anyhow::Result<HashMap<u64, u64>> {
    let df = collect(queries::throughput::per_sock(events.clone().lazy(), stage))?;
    Ok(u64s(&df, "sock")?
        .into_iter()
        .zip(u64s(&df, "bytes")?)
        .filter_map(|(s, b)| Some((s?, b.unwrap_or(0))))
        .collect())
}

fn lifecycle(
    tcp: &DataFrame,
    writes: &DataFrame,
    start: u64,
) -> anyhow::Result<(Vec<Connection>, Vec<Transition>)> {
    use queries::lifecycle as q;
    let tx = sock_bytes(writes, Stage::TxSendmsg)?;
    let rx = sock_bytes(tcp, Stage::RxApp)?;
    let df = collect(q::per_sock(tcp.clone().lazy()))?;
    let fl = flows(&df)?;
    let (sock, pid, comm) = (u64s(&df, "sock")?, u64s(&df, "pid")?, strs(&df, "comm")?);
    let (first, last, syn, est) = (
        u64s(&df, "first_ns")?,
        u64s(&df, "last_ns")?,
        u64s(&df, "syn_sent_ns")?,
        u64s(&df, "established_ns")?,
    );
    let closed = bools(&df, "closed")?;
    let first_state = strs(&df, "first_state")?;
    let path = joined_lists(&df, "path", "→")?;
    let conns = (0..df.height())
        .map(|i| {
            let s = sock[i].unwrap_or(0);
            Connection {
                sock: s,
                flow: fl[i].clone(),
                pid: pid[i],
                comm: comm[i].clone(),
                first_ns: rel(first[i], start),
                duration_ns: last[i].unwrap_or(0).saturating_sub(first[i].unwrap_or(0)),
                connect_latency_ns: match (syn[i], est[i]) {
                    (Some(a), Some(b)) if b >= a => Some(b - a),
                    _ => None,
                },
                tx_bytes: tx.get(&s).copied().unwrap_or(0),
                rx_bytes: rx.get(&s).copied().unwrap_or(0),
                closed: closed[i].unwrap_or(false),
                states: match &first_state[i] {
                    Some(f) => format!("{f}→{}", path[i]),
                    None => path[i].clone(),
                },
            }
        })
        .collect();
    let df = collect(q::transitions(tcp.clone().lazy()))?;
    let mut transitions: Vec<Transition> = strs(&df, "old_state")?
        .into_iter()
        .zip(strs(&df, "state")?.into_iter().zip(u64s(&df, "count")?))
        .map(|(f, (t, n))| Transition {
            from: f.unwrap_or_else(|| "?".into()),
            to: t.unwrap_or_else(|| "?".into()),
            count: n.unwrap_or(0),
        })
        .collect();
    transitions.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| (&a.from, &a.to).cmp(&(&b.from, &b.to)))
    });
    Ok((conns, transitions))
}

/// The optimized plan of the hop scan journeys are split from ([`crate::segment`]), for
/// `--explain`.
pub fn explain(recs: &[Recording], opts: &Options) -> anyhow::Result<String> {
    let files: Vec<_> = recs.iter().flat_map(|r| r.files()).collect();
    let stages: Vec<Stage> = scan::hop_stages()
        .into_iter()
        .filter(|s| *s != Stage::TxSendmsg)
        .collect();
    let hops = scan::events(
        scan::scan(&files).map_err(crate::frame::one_line)?,
        scan::HOP_COLUMNS,
        &stages,
        &opts.selection,
    )?;
    hops.explain(true).map_err(crate::frame::one_line)
}

/// The losses of several recordings added up: per CPU slot, per stage, and in the writer queue.
fn merged_losses(metas: &[RecordingMeta]) -> Lost {
    let mut all = Lost::default();
    for m in metas {
        let l = &m.lost;
        if all.ring_per_cpu.len() < l.ring_per_cpu.len() {
            all.ring_per_cpu.resize(l.ring_per_cpu.len(), 0);
        }
        for (sum, n) in all.ring_per_cpu.iter_mut().zip(&l.ring_per_cpu) {
            *sum += n;
        }
        all.writer_queue += l.writer_queue;
        for (stage, n) in &l.missed_runs {
            *all.missed_runs.entry(stage.clone()).or_default() += n;
        }
    }
    all
}
