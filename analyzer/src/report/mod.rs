//! `tcptape report`: runs the queries over one host's recordings and fills the [`Report`].
//!
//! The wing: [`command`] (the command: inputs, one report per host, the rows between hosts,
//! the output), this module (`build`: queries and journeys into the model), [`latency_stats`]
//! and [`latency_sections`] (the per-stage figures), [`crate::queries::tcp_sections`] (the
//! classic TCP reports, which are queries read into the model), [`model`] (the report, also its JSON shape) and [`render`] (table, Markdown,
//! HTML).

pub mod cgroup_section;
pub mod command;
pub mod latency_sections;
pub mod latency_stats;
pub mod model;
pub mod render;

use crate::journeys::journey::Journeys;
use crate::progress::Steps;
use crate::queries::journey_input::scans;
use crate::queries::select::Selection;
use crate::report::model::*;
use tcptape_common::metadata::Sampling;
use tcptape_common::metadata::{Lost, RecordingMeta};
use tcptape_common::{Recording, Stage};

/// How a report is built.
#[derive(Debug, Clone)]
pub struct Options {
    /// What to cover.
    pub selection: Selection,
    /// Time between two hops of one packet id beyond which it is taken as reused, ns.
    pub max_hop_gap_ns: u64,
    /// Compute what only the HTML report's pictures show (histograms, retransmissions and
    /// drops one by one).
    pub pictures: bool,
    /// Compute the bins that pool several hosts' stage pairs ([`model::pooled`]).
    pub pooling: bool,
}

/// Number of steps [`build`] reports to its progress display.
pub const STEPS: u64 = 3;

/// Builds the report of one host's recordings.
pub fn build(recs: &[Recording], opts: &Options, steps: &Steps) -> anyhow::Result<Report> {
    Ok(build_with_journeys(recs, opts, steps)?.0)
}

/// [`build`], also handing out the journeys it built, so that a command that needs the packets
/// behind the figures (`diff`) does not build them a second time.
pub fn build_with_journeys(
    recs: &[Recording],
    opts: &Options,
    steps: &Steps,
) -> anyhow::Result<(Report, Journeys)> {
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
    let sampling = Sampling::merged(metas.iter().map(|m| &m.sampling));

    steps.step("building journeys");
    let (hops, writes) = scans(&files, sel)?;
    // The writes and the TCP sections need no journey: they are read and built alongside, on
    // another core, and the journeys take the writes when they match them.
    std::thread::scope(|scope| {
        let (sent, received) = std::sync::mpsc::sync_channel(1);
        let files = &files;
        let sampling = &sampling;
        let tcp = scope.spawn(move || {
            let writes = writes.collect();
            let columns = writes.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"));
            // Sent first, failed or not: the journeys wait for them.
            let _ = sent.send(columns.and_then(|w| w.columns()));
            let writes = writes?;
            let t = crate::queries::tcp_sections::build(
                files,
                sel,
                &writes,
                (start, span_ns),
                sampling,
                opts.pictures,
            )?;
            anyhow::Ok((writes, t))
        });
        let j = hops.collect().and_then(|hops| {
            Journeys::build(
                hops,
                || {
                    received
                        .recv()
                        .unwrap_or_else(|_| anyhow::bail!("the writes were not read"))
                },
                opts.max_hop_gap_ns,
            )
        });
        let (writes, (t, tcp_events)) = tcp.join().expect("the TCP sections do not panic")?;
        let j = j?;

        steps.step("per-stage latency");
        let owners = crate::queries::cgroups::FlowOwners::read(files)?;
        let l = crate::report::latency_sections::build(
            &j,
            start,
            (opts.pictures, opts.pooling),
            &owners,
        )?;
        let cgroups = cgroup_section::build(files, sel, &owners, &metas, &l.stages_per_cgroup)?;

        let rx_app = j
            .stages
            .iter()
            .find(|(s, _)| *s == Stage::RxApp)
            .map_or(0, |s| s.1);
        // rx_app events are in both frames.
        let events = (j.hop_events() + writes.height()) as u64 + tcp_events - rx_app;

        let estimated = crate::queries::sampled_counts::per_stage(files, sel, sampling)?;
        // The kernel's own counts cover whole recordings: shown beside the estimates when
        // nothing narrows the events.
        let kernel_count = |s: Stage| -> Option<u64> {
            (sampling.sampled() && sel.is_whole())
                .then(|| metas.iter().filter_map(|m| m.seen.get(s.name())).sum())
        };
        steps.step("done");
        let mut notes = Vec::new();
        if lost > 0 {
            notes.push(format!(
                "{lost} events were lost while recording: counts are lower bounds, and journeys \
             missing a hop are counted incomplete rather than measured"
            ));
        }
        if sampling.sampled() {
            notes.push(format!(
                "flows were sampled, {}: counts are of the sampled flows; estimated totals \
                 scale each event by the sampling in force at its time (with few flows they \
                 vary with which were kept; the kernel's per-stage counts are exact)",
                sampling.describe()
            ));
        }
        for (r, m) in recs.iter().zip(&metas) {
            if let Some(t) = &m.segment.trigger {
                notes.push(format!(
                    "{} is a flight recorder's window saved by trigger {} (+{} after it)",
                    r.path.display(),
                    crate::units::trigger(t, m.mono_to_wall_ns),
                    crate::units::ns(t.after_ns as f64),
                ));
            }
            if let Some((n, keep)) = r.rolled_out() {
                notes.push(format!(
                    "{} starts at {}: its {n} older segment(s) rolled out of the --keep {keep} \
                     window (deleted by the recorder, not lost)",
                    r.path.display(),
                    crate::units::wall(m.start_ns, m.mono_to_wall_ns)
                ));
            }
            if !r.closed() {
                notes.push(format!(
                    "{} was not finished by the recorder (killed?): it ends early",
                    r.path.display()
                ));
            }
            if m.source == "synth" {
                notes.push(format!("{} is a synthetic recording", r.path.display()));
            }
            if !m.filters.stages.is_empty() {
                notes.push(format!(
                    "{} recorded only the stages {} (--stage): the others have no figures",
                    r.path.display(),
                    m.filters.stages.join(", ")
                ));
            }
        }
        let shown = |v: Vec<StageLatency>| {
            v.into_iter()
                .filter(|l| sel.shows(&l.from, &l.to))
                .collect::<Vec<_>>()
        };
        let report = Report {
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
                    sampling_one_in: m.sampling.max_one_in(),
                    closed: r.closed(),
                })
                .collect(),
            start_mono_ns: start,
            mono_to_wall_ns: metas[0].mono_to_wall_ns,
            duration_ns: end.saturating_sub(start),
            events,
            lost_events: lost,
            lost: merged_losses(&metas),
            sampling_one_in: sampling.max_one_in(),
            sampling: sampling.clone(),
            notes,
            stages_recorded: j
                .stages
                .iter()
                .map(|(s, n)| StageCount {
                    stage: s.name().to_string(),
                    events: *n,
                    estimated: estimated.get(s).copied(),
                    kernel: kernel_count(*s),
                })
                .chain((writes.height() > 0).then(|| StageCount {
                    stage: Stage::TxSendmsg.name().to_string(),
                    events: writes.height() as u64,
                    estimated: estimated.get(&Stage::TxSendmsg).copied(),
                    kernel: kernel_count(Stage::TxSendmsg),
                }))
                .collect(),
            journeys: j.counts.clone(),
            stages: shown(l.stages),
            end_to_end: shown(l.end_to_end),
            stages_per_flow: l
                .stages_per_flow
                .into_iter()
                .filter(|f: &FlowLatency| sel.shows(&f.latency.from, &f.latency.to))
                .collect(),
            stages_per_cpu: l
                .stages_per_cpu
                .into_iter()
                .filter(|c: &CpuLatency| sel.shows(&c.latency.from, &c.latency.to))
                .collect(),
            stages_over_time: l
                .stages_over_time
                .into_iter()
                .filter(|s: &SecondLatency| sel.shows(&s.from, &s.to))
                .collect(),
            histograms: l
                .histograms
                .into_iter()
                .filter(|h: &Histogram| sel.shows(&h.from, &h.to))
                .collect(),
            pooling: l
                .pooling
                .into_iter()
                .filter(|p: &PairBins| sel.shows(&p.from, &p.to))
                .collect(),
            tcp: t,
            cgroups,
        };
        Ok((report, j))
    })
}

/// The optimized plan of the hop scan journeys are split from ([`crate::journeys::segment`]), for
/// `--explain`.
pub fn explain(recs: &[Recording], opts: &Options) -> anyhow::Result<String> {
    let files: Vec<_> = recs.iter().flat_map(|r| r.files()).collect();
    scans(&files, &opts.selection)?.0.explain()
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
