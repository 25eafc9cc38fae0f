//! The latency sections of `tcptape report`: per stage pair, end to end, per flow, per CPU, per
//! second and the histograms, all from one sort of the journeys' stage pairs
//! ([`crate::report::latency_stats`]). The groupings only read that sort, so two run on another core.

use crate::journeys::journey::Journeys;
use crate::queries;
use crate::queries::cgroups::FlowOwners;
use crate::report::latency_stats::{bin_lo, LogBins, PairSamples, Stats};
use crate::report::model::*;
use tcptape_common::Stage;

/// The latency sections of a report, each in its display order.
pub struct LatencySections {
    /// Per stage pair.
    pub stages: Vec<StageLatency>,
    /// Complete journeys per (first, last) stage.
    pub end_to_end: Vec<StageLatency>,
    /// Per flow and stage pair.
    pub stages_per_flow: Vec<FlowLatency>,
    /// Per CPU and stage pair.
    pub stages_per_cpu: Vec<CpuLatency>,
    /// Per second and stage pair.
    pub stages_over_time: Vec<SecondLatency>,
    /// Latency distribution per stage pair (when asked for).
    pub histograms: Vec<Histogram>,
    /// Each pair's packets on the pooling axis (when asked for).
    pub pooling: Vec<PairBins>,
    /// Per cgroup (the owner of each packet's flow) and stage pair.
    pub stages_per_cgroup: Vec<(u64, StageLatency)>,
}

/// Builds the latency sections of journeys; `start` is the recordings' start (second 0),
/// `pictures` asks for the histograms and `pooling` for the bins that pool hosts.
pub fn build(
    j: &Journeys,
    start: u64,
    (pictures, pooling): (bool, bool),
    owners: &FlowOwners,
) -> anyhow::Result<LatencySections> {
    let samples = PairSamples::new(j.pair_rows(), &j.flows)?;
    let samples = &samples;
    std::thread::scope(|scope| {
        let per_flow_and_cpu = scope.spawn(|| {
            (
                per_flow(samples),
                per_cpu(samples),
                per_cgroup(samples, owners),
            )
        });
        let mut stages: Vec<StageLatency> = samples
            .grouped(1, |_| 0, &LATENCY_QUANTILES)
            .iter()
            .map(|(_, p, st)| latency(samples, *p, st))
            .collect();
        stages.sort_by_key(|l| pair_order(&l.from, &l.to));
        let stages_over_time = over_time(samples, start);
        let histograms = if pictures {
            histograms(samples)
        } else {
            Vec::new()
        };
        let pooling = if pooling {
            samples
                .histograms(LogBins::POOLING)
                .into_iter()
                .map(|(p, bins)| {
                    let (from, to) = stage_names(samples, p);
                    PairBins { from, to, bins }
                })
                .collect()
        } else {
            Vec::new()
        };
        let end_to_end = end_to_end(j);
        let (stages_per_flow, stages_per_cpu, stages_per_cgroup) = per_flow_and_cpu
            .join()
            .expect("the latency groupings do not panic");
        Ok(LatencySections {
            stages,
            end_to_end,
            stages_per_flow,
            stages_per_cpu,
            stages_over_time,
            histograms,
            pooling,
            stages_per_cgroup,
        })
    })
}

fn per_cgroup(samples: &PairSamples, owners: &FlowOwners) -> Vec<(u64, StageLatency)> {
    if owners.is_empty() {
        return Vec::new();
    }
    // Group 0: flows of no known cgroup; group k: the k-th cgroup.
    let ids: Vec<u64> = owners.cgroups().into_iter().collect();
    let n_flows = samples.flows().iter().max().map_or(0, |m| *m as usize + 1);
    let group_of_flow: Vec<usize> = (0..n_flows)
        .map(|f| {
            samples
                .flow(f as u32)
                .and_then(|fl| owners.owner(fl))
                .and_then(|id| ids.binary_search(&id).ok())
                .map_or(0, |k| k + 1)
        })
        .collect();
    let mut v: Vec<(u64, StageLatency)> = samples
        .grouped(
            ids.len() + 1,
            |r| group_of_flow[samples.flows()[r] as usize],
            &LATENCY_QUANTILES,
        )
        .iter()
        .filter(|(g, _, _)| *g > 0)
        .map(|(g, p, st)| (ids[*g - 1], latency(samples, *p, st)))
        .collect();
    v.sort_by(|a, b| {
        (a.0, pair_order(&a.1.from, &a.1.to)).cmp(&(b.0, pair_order(&b.1.from, &b.1.to)))
    });
    v
}

fn per_flow(samples: &PairSamples) -> Vec<FlowLatency> {
    let n_flows = samples.flows().iter().max().map_or(0, |m| *m as usize + 1);
    let mut v: Vec<FlowLatency> = samples
        .grouped(n_flows, |r| samples.flows()[r] as usize, &LATENCY_QUANTILES)
        .iter()
        .map(|(f, p, st)| FlowLatency {
            flow: flow_label(samples, *f as u32),
            latency: latency(samples, *p, st),
        })
        .collect();
    v.sort_by(|a, b| {
        (&a.flow, pair_order(&a.latency.from, &a.latency.to))
            .cmp(&(&b.flow, pair_order(&b.latency.from, &b.latency.to)))
    });
    v
}

fn per_cpu(samples: &PairSamples) -> Vec<CpuLatency> {
    let n_cpus = samples.cpus().iter().max().map_or(0, |m| *m as usize + 1);
    let mut v: Vec<CpuLatency> = samples
        .grouped(n_cpus, |r| samples.cpus()[r] as usize, &LATENCY_QUANTILES)
        .iter()
        .map(|(c, p, st)| CpuLatency {
            cpu: *c as u64,
            latency: latency(samples, *p, st),
        })
        .collect();
    v.sort_by_key(|c| (c.cpu, pair_order(&c.latency.from, &c.latency.to)));
    v
}

fn over_time(samples: &PairSamples, start: u64) -> Vec<SecondLatency> {
    // As `queries::second_of` computes it.
    let second = |ts: u64| ((ts as i64 - start as i64) as f64 / 1e9) as i64;
    let secs: Vec<i64> = samples.times().iter().map(|&t| second(t)).collect();
    let s0 = secs.iter().copied().min().unwrap_or(0);
    let n_secs = secs
        .iter()
        .copied()
        .max()
        .map_or(0, |m| (m - s0) as usize + 1);
    let mut v: Vec<SecondLatency> = samples
        .grouped(n_secs, |r| (secs[r] - s0) as usize, &[0.5, 0.99])
        .iter()
        .map(|(sec, p, st)| {
            let (from, to) = stage_names(samples, *p);
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
    v.sort_by_key(|s| (s.second, pair_order(&s.from, &s.to)));
    v
}

fn histograms(samples: &PairSamples) -> Vec<Histogram> {
    let mut out: Vec<Histogram> = samples
        .histograms(LogBins::PICTURES)
        .into_iter()
        .map(|(p, bins)| {
            let (from, to) = stage_names(samples, p);
            Histogram {
                from,
                to,
                bins: bins
                    .into_iter()
                    .map(|(k, count)| HistogramBin {
                        lo_ns: bin_lo(k),
                        hi_ns: bin_lo(k + 1),
                        count,
                    })
                    .collect(),
            }
        })
        .collect();
    out.sort_by_key(|h| pair_order(&h.from, &h.to));
    out
}

fn stage_names(samples: &PairSamples, p: usize) -> (String, String) {
    let (f, t) = samples.pair(p);
    (stage_name(f), stage_name(t))
}

fn latency(samples: &PairSamples, p: usize, st: &Stats) -> StageLatency {
    let (from, to) = samples.pair(p);
    stage_latency(from, to, st)
}

fn stage_name(code: u8) -> String {
    Stage::from_code(code).map_or_else(|| "?".into(), |s| s.name().to_string())
}

/// The percentiles of a latency row: p50, p90, p99, p99.9.
pub const LATENCY_QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// A flow's label (`SADDR:SPORT-DADDR:DPORT`, `?` when a part is unknown).
fn flow_label(samples: &PairSamples, flow: u32) -> String {
    samples
        .flow(flow)
        .map_or_else(|| "?".into(), |f| f.to_string())
}

/// The figures of a pair's durations as a latency row.
fn stage_latency(from: u8, to: u8, st: &Stats) -> StageLatency {
    latency_row(stage_name(from), stage_name(to), st)
}

/// A latency row named `from` → `to`, of figures computed with [`LATENCY_QUANTILES`].
pub fn latency_row(from: String, to: String, st: &Stats) -> StageLatency {
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
}

/// End to end: the figures of complete journeys per (first, last) stage, in stage code order.
fn end_to_end(j: &Journeys) -> Vec<StageLatency> {
    j.end_to_end()
        .into_iter()
        .map(|((from, to), v)| {
            let mut v: Vec<i64> = v.into_iter().map(|(_, dt)| dt).collect();
            v.sort_unstable();
            let st = Stats::of_sorted(&v, &LATENCY_QUANTILES);
            stage_latency(from.code(), to.code(), &st)
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

/// Where a stage pair sorts: in packet order, as the report lists its rows.
pub(crate) fn pair_order(from: &str, to: &str) -> (u8, u8) {
    (packet_order(from), packet_order(to))
}
