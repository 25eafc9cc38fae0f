//! `tcptape report`: runs the queries over one host's recordings and fills the [`Report`].

use crate::journey::Journeys;
use crate::latency_stats::{FlowLabel, PairSamples, Stats};
use crate::model::*;
use crate::progress::Steps;
use crate::queries::{self, scan, select::Selection};
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

/// The figures of a pair's durations as a latency row.
fn stage_latency(from: u8, to: u8, st: &Stats) -> StageLatency {
    let q = |i: usize| st.quantiles_ns[i].max(0) as u64;
    StageLatency {
        from: stage_name(Some(from as u64)),
        to: stage_name(Some(to as u64)),
        count: st.count,
        mean_ns: st.mean_ns,
        p50_ns: q(0),
        p90_ns: q(1),
        p99_ns: q(2),
        p999_ns: q(3),
        max_ns: st.max_ns.max(0) as u64,
    }
}

/// End to end: the figures of complete journeys per (first, last) stage, in stage code order.
fn end_to_end(j: &Journeys) -> Vec<StageLatency> {
    let mut per_pair: std::collections::BTreeMap<(u8, u8), Vec<i64>> = Default::default();
    for (_, w) in j.whole() {
        if w.complete && w.from != w.to {
            per_pair
                .entry((w.from.code(), w.to.code()))
                .or_default()
                .push(w.dt_ns);
        }
    }
    per_pair
        .into_iter()
        .map(|((from, to), mut v)| {
            v.sort_unstable();
            stage_latency(from, to, &Stats::of_sorted(&v, &LATENCY_QUANTILES))
        })
        .collect()
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
    let lost: u64 = metas.iter().map(|m| m.lost.total()).sum();
    let sampling = metas
        .iter()
        .map(|m| m.sampling.one_in.max(1))
        .max()
        .unwrap_or(1);

    steps.step("reading packet hops");
    let (hops, writes) = crate::per_packet::hops_and_writes(&files, sel)?;

    steps.step("building journeys");
    // The TCP sections need no journey: built alongside, on another core.
    let writes = &writes;
    std::thread::scope(|scope| {
        let tcp = scope
            .spawn(|| crate::tcp_sections::build(&files, sel, writes, start, span_ns, sampling));
        let j = Journeys::build(hops, writes, opts.max_hop_gap_ns)?;

        steps.step("per-stage latency");
        let samples = PairSamples::new(j.pair_rows(), j.flows.labels().to_vec())?;
        let stage_of = |p: usize| {
            let (f, t) = samples.pair(p);
            (stage_name(Some(f as u64)), stage_name(Some(t as u64)))
        };
        let latency = |p: usize, st: &Stats| {
            let (from, to) = samples.pair(p);
            stage_latency(from, to, st)
        };
        let mut stages: Vec<StageLatency> = samples
            .grouped(1, |_| 0, &LATENCY_QUANTILES)
            .iter()
            .map(|(_, p, st)| latency(*p, st))
            .collect();
        stages.sort_by_key(|l| pair_order(&l.from, &l.to));
        let end_to_end = end_to_end(&j);
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

        let rx_app = j
            .stages
            .iter()
            .find(|(s, _)| *s == Stage::RxApp)
            .map_or(0, |s| s.1);
        let t = tcp.join().expect("the TCP sections do not panic")?;
        // rx_app events are in both frames.
        let events = (j.hop_events() + writes.height()) as u64 + t.events - rx_app;

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
            retransmits: t.retransmits,
            rtt_cwnd: t.rtt_cwnd,
            rtt_histogram: t.rtt_histogram,
            rtt_cwnd_over_time: t.rtt_cwnd_over_time,
            connections: t.connections,
            state_transitions: t.state_transitions,
            drops: t.drops,
            drops_total: t.drops_total,
            drops_estimated: scale(t.drops_total),
            throughput_tx: t.throughput_tx,
            throughput_rx: t.throughput_rx,
            buffer_pressure: t.buffer_pressure,
        })
    })
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
