//! `tcptape-record check --cost [DURATION]`: what a recording would cost on this host now.
//!
//! Attaches every stage as a recording would (same programs, same rings), turns on the kernel's
//! run-time statistics of BPF programs, and for DURATION drains the rings and throws the events
//! away. Per stage it then knows the events/s, how often its programs ran and for how long; the
//! recorder's own CPU per event and bytes per event are the figures of the benchmark
//! (`recorder/scripts/overhead.sh`), stated as such.

use crate::attach_plan::{anything_recorded, StageOutcome};
use crate::check_command::{attach_every_stage, Attached};
use crate::exit_code::{self, ExitError};
use crate::kernel_counters::seen_of;
use crate::program_stats::{enable_run_time_stats, run_time};
use serde::Serialize;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};
use tcptape_common::Stage;

/// Recorder CPU (user space: decode, encode, compress, write) per recorded event, ns, for a veth
/// bulk transfer with every stage: 490 (0.46–0.49 s per million) before the writer changes of
/// 2026-12-08, which took 0.65–0.73 of it in side-by-side runs (`recorder/scripts/recorder_cpu.sh`).
pub const RECORDER_NS_PER_EVENT: f64 = 330.0;
/// Bytes on disk per recorded event: the writer benchmark's figure (zstd-compressed Parquet; a
/// real recording of a veth bulk transfer took 8.4).
pub const BYTES_PER_EVENT: f64 = 10.5;
/// The CPU share (of one CPU) under which recording everything is advised.
const SAFE_SHARE: f64 = 0.05;

/// One stage's figures over the measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageCost {
    /// Stage name.
    pub stage: String,
    /// Events the stage would record per second.
    pub events_per_sec: f64,
    /// Runs of its programs per second (events filtered out or not).
    pub runs_per_sec: f64,
    /// Average run time of its programs, ns (`None` without run-time statistics).
    pub ns_per_run: Option<f64>,
    /// Kernel CPU its programs take, as a share of one CPU.
    pub kernel_cpu: Option<f64>,
}

/// The whole measurement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cost {
    /// How long it measured, s.
    pub seconds: f64,
    /// Per attached stage, busiest first.
    pub stages: Vec<StageCost>,
    /// Events per second, all stages.
    pub events_per_sec: f64,
    /// Kernel CPU of all programs, share of one CPU (`None` without run-time statistics).
    pub kernel_cpu: Option<f64>,
    /// Kernel time per recorded event, ns.
    pub kernel_ns_per_event: Option<f64>,
    /// The recorder's CPU at this rate, share of one CPU (at [`RECORDER_NS_PER_EVENT`]).
    pub recorder_cpu: f64,
    /// Bytes on disk per second at this rate (at [`BYTES_PER_EVENT`]).
    pub disk_bytes_per_sec: f64,
    /// The smallest `--sample N` that keeps the recorder under 5 % of one CPU (1: none needed).
    pub sample_for_safe: u64,
    /// The default `--budget`, events per second.
    pub default_budget: u64,
    /// The flow sampling the default budget would put in force at this rate (1 in N, a power of
    /// two; 1: none).
    pub budget_one_in: u64,
    /// The recorder's CPU under the default budget, share of one CPU (at most the budget's).
    pub budget_recorder_cpu: f64,
    /// One sentence of advice.
    pub advice: String,
    /// Why a figure is missing, when one is.
    pub notes: Vec<String>,
}

/// What a row of the table measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measured {
    /// A stage's programs.
    Stage(Stage),
    /// The softirq entry/exit programs that tell the task stages whether they run in softirq:
    /// they record nothing but run twice at every softirq, so a recording pays for them too.
    Context,
}

impl Measured {
    /// The row's name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Measured::Stage(s) => s.name(),
            Measured::Context => "(context)",
        }
    }
}

/// Counters read at one moment: events seen per stage, (run ns, runs) per stage.
struct Reading {
    at: Instant,
    seen: Vec<u64>,
    runs: Vec<Option<(u64, u64)>>,
}

fn read(
    seen: &aya::maps::PerCpuArray<aya::maps::MapData, u64>,
    stages: &[(Measured, Vec<OwnedFd>)],
) -> Reading {
    Reading {
        at: Instant::now(),
        seen: stages
            .iter()
            .map(|(m, _)| match m {
                Measured::Stage(s) => seen_of(seen, *s),
                Measured::Context => 0,
            })
            .collect(),
        runs: stages
            .iter()
            .map(|(_, fds)| {
                fds.iter()
                    .map(|fd| run_time(fd.as_fd()))
                    .try_fold((0u64, 0u64), |acc, r| {
                        r.map(|(t, n)| (acc.0 + t, acc.1 + n))
                    })
            })
            .collect(),
    }
}

/// Counters of the stages at one moment: events seen, and (run ns, runs) of their programs when
/// the kernel reports them.
pub type Counters<'a> = (&'a [u64], &'a [Option<(u64, u64)>]);

/// The figures between two readings.
pub fn figures(
    stages: &[Measured],
    before: Counters<'_>,
    after: Counters<'_>,
    seconds: f64,
    stats_on: bool,
) -> Cost {
    let secs = seconds.max(1e-3);
    let mut out: Vec<StageCost> = Vec::new();
    let (mut total_events, mut total_ns, mut all_known) = (0u64, 0u64, stats_on);
    for (i, stage) in stages.iter().enumerate() {
        let events = after.0[i].saturating_sub(before.0[i]);
        total_events += events;
        let run = match (before.1[i], after.1[i]) {
            (Some((t0, n0)), Some((t1, n1))) if stats_on => {
                Some((t1.saturating_sub(t0), n1.saturating_sub(n0)))
            }
            _ => None,
        };
        if let Some((t, _)) = run {
            total_ns += t;
        } else {
            all_known = false;
        }
        out.push(StageCost {
            stage: stage.name().to_string(),
            events_per_sec: events as f64 / secs,
            runs_per_sec: run.map_or(0.0, |(_, n)| n as f64 / secs),
            ns_per_run: run.and_then(|(t, n)| (n > 0).then(|| t as f64 / n as f64)),
            kernel_cpu: run.map(|(t, _)| t as f64 / 1e9 / secs),
        });
    }
    // Busiest stage first; the context programs, which record nothing, last.
    let context = |c: &StageCost| c.stage == Measured::Context.name();
    out.sort_by(|a, b| {
        context(a)
            .cmp(&context(b))
            .then_with(|| b.events_per_sec.total_cmp(&a.events_per_sec))
            .then_with(|| a.stage.cmp(&b.stage))
    });
    let events_per_sec = total_events as f64 / secs;
    let kernel_cpu = all_known.then(|| total_ns as f64 / 1e9 / secs);
    let recorder_cpu = events_per_sec * RECORDER_NS_PER_EVENT / 1e9;
    let sample_for_safe = (recorder_cpu / SAFE_SHARE).ceil().max(1.0) as u64;
    let default_budget = crate::sampling_budget::DEFAULT_BUDGET;
    // The budget halves the flows kept until the rate is under it.
    let budget_one_in = (events_per_sec / default_budget as f64)
        .max(1.0)
        .log2()
        .ceil()
        .exp2() as u64;
    let budget_recorder_cpu = recorder_cpu / budget_one_in as f64;
    let mut notes = Vec::new();
    if !stats_on {
        notes.push(
            "the kernel did not turn on BPF run-time statistics (BPF_ENABLE_STATS needs 5.8+): \
             kernel time is unknown"
                .to_string(),
        );
    }
    let advice = if sample_for_safe <= 1 {
        format!(
            "safe to record every stage now: about {:.1} % of one CPU for the recorder",
            recorder_cpu * 100.0
        )
    } else {
        format!(
            "busy: recording everything would take about {:.0} % of one CPU; the default \
             --budget keeps about 1 flow in {budget_one_in} ({:.1} %); --sample \
             {sample_for_safe}, or narrowing it (--port, --stage), also stays under {:.0} %",
            recorder_cpu * 100.0,
            budget_recorder_cpu * 100.0,
            SAFE_SHARE * 100.0
        )
    };
    Cost {
        seconds,
        stages: out,
        events_per_sec,
        kernel_cpu,
        kernel_ns_per_event: kernel_cpu
            .filter(|_| total_events > 0)
            .map(|_| total_ns as f64 / total_events as f64),
        recorder_cpu,
        disk_bytes_per_sec: events_per_sec * BYTES_PER_EVENT,
        sample_for_safe,
        default_budget,
        budget_one_in,
        budget_recorder_cpu,
        advice,
        notes,
    }
}

/// Attaches every stage and measures for `duration`.
pub fn measure(duration: Duration, no_fentry: bool) -> anyhow::Result<(Cost, Vec<StageOutcome>)> {
    // The rings of a recording with the default --ring-size, so the programs do what a
    // recording's would.
    let Attached {
        mut loader,
        outcomes,
        context_programs,
        ..
    } = attach_every_stage(no_fentry, 16_000_000)?;
    if !anything_recorded(&outcomes) {
        return Err(ExitError::new(
            exit_code::UNSUPPORTED,
            "no stage can be recorded on this kernel (run `tcptape-record check`)",
        )
        .into());
    }
    let mut stages: Vec<(Measured, Vec<OwnedFd>)> = outcomes
        .iter()
        .filter(|o| o.records())
        .map(|o| (Measured::Stage(o.stage), loader.program_fds(&o.programs)))
        .collect();
    if !context_programs.is_empty() {
        stages.push((Measured::Context, loader.program_fds(&context_programs)));
    }
    let mut maps = loader.take_maps().map_err(anyhow::Error::msg)?;
    let stats = enable_run_time_stats();
    let before = read(&maps.seen, &stages);
    let end = before.at + duration;
    while Instant::now() < end {
        for r in &mut maps.rings {
            r.ring.drain(|_| true);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = read(&maps.seen, &stages);
    let names: Vec<Measured> = stages.iter().map(|(s, _)| *s).collect();
    let cost = figures(
        &names,
        (&before.seen, &before.runs),
        (&after.seen, &after.runs),
        (after.at - before.at).as_secs_f64(),
        stats.is_ok(),
    );
    drop(stats);
    drop(loader);
    Ok((cost, outcomes))
}

/// The cost as a table, with the totals and the advice.
pub fn table(c: &Cost) -> String {
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}%", v * 100.0));
    let mut out = format!(
        "measured for {:.1} s: every stage attached, events drained and discarded\n\
         {:<14} {:>12} {:>12} {:>8} {:>11}\n",
        c.seconds, "STAGE", "EVENTS/S", "RUNS/S", "NS/RUN", "KERNEL CPU"
    );
    for s in &c.stages {
        out += &format!(
            "{:<14} {:>12.0} {:>12.0} {:>8} {:>11}\n",
            s.stage,
            s.events_per_sec,
            s.runs_per_sec,
            s.ns_per_run.map_or("-".into(), |v| format!("{v:.0}")),
            pct(s.kernel_cpu)
        );
    }
    if c.stages.iter().any(|s| s.stage == Measured::Context.name()) {
        out += "(context: the softirq entry/exit programs the task stages need; they record \
                nothing, and count in `all`)\n";
    }
    out += &format!(
        "{:<14} {:>12.0} {:>12} {:>8} {:>11}\n",
        "all",
        c.events_per_sec,
        "",
        c.kernel_ns_per_event
            .map_or("-".into(), |v| format!("{v:.0}/ev")),
        pct(c.kernel_cpu)
    );
    out += &format!(
        "a recording of every stage now: kernel {} + recorder ≈ {:.2}% of one CPU \
         ({RECORDER_NS_PER_EVENT:.0} ns per event), ≈ {}/s on disk",
        pct(c.kernel_cpu),
        c.recorder_cpu * 100.0,
        bytesize::ByteSize::b(c.disk_bytes_per_sec as u64),
    );
    if c.sample_for_safe > 1 {
        out += &format!(
            "; with --sample {}: recorder ≈ {:.2}%",
            c.sample_for_safe,
            c.recorder_cpu * 100.0 / c.sample_for_safe as f64
        );
    }
    out += "\n";
    out += &format!(
        "with the default --budget {}/s: {}\n",
        c.default_budget,
        if c.budget_one_in > 1 {
            format!(
                "1 flow in {} kept, recorder ≈ {:.2}% of one CPU",
                c.budget_one_in,
                c.budget_recorder_cpu * 100.0
            )
        } else {
            "every flow kept (the rate is under it)".to_string()
        }
    );
    for n in &c.notes {
        out += &format!("note: {n}\n");
    }
    out += &format!("advice: {}\n", c.advice);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() <= b.abs() * 1e-9)
    }

    #[test]
    fn figures_are_rates_over_the_window_and_the_advice_follows_the_rate() {
        let stages = [
            Measured::Context,
            Measured::Stage(Stage::TxDriver),
            Measured::Stage(Stage::RxApp),
        ];
        let before = (
            [0u64, 100, 0],
            [Some((0u64, 0u64)), Some((1_000u64, 10u64)), Some((0, 0))],
        );
        // 2 s: 200 000 tx_driver events, 300 000 runs in 30 ms; 1 000 rx_app events; the
        // context programs ran 100 000 times in 4 ms, recording nothing.
        let after = (
            [0u64, 200_100, 1_000],
            [
                Some((4_000_000u64, 100_000u64)),
                Some((30_001_000u64, 300_010u64)),
                Some((1_000_000, 2_000)),
            ],
        );
        let c = figures(
            &stages,
            (&before.0, &before.1),
            (&after.0, &after.1),
            2.0,
            true,
        );
        assert_eq!(c.stages[0].stage, "tx_driver");
        assert_eq!(c.stages[0].events_per_sec, 100_000.0);
        assert_eq!(c.stages[0].runs_per_sec, 150_000.0);
        assert_eq!(c.stages[0].ns_per_run, Some(100.0));
        assert!(close(c.stages[0].kernel_cpu, 0.015));
        // The context row comes last, and its time counts in the totals.
        assert_eq!(c.stages[2].stage, "(context)");
        assert_eq!(c.stages[2].events_per_sec, 0.0);
        assert_eq!(c.stages[2].ns_per_run, Some(40.0));
        assert!(table(&c).contains("(context: the softirq"));
        assert_eq!(c.events_per_sec, 100_500.0);
        assert!(close(c.kernel_cpu, 0.0175));
        assert!(close(c.kernel_ns_per_event, 35_000_000.0 / 201_000.0));
        // 100 500 events/s at 330 ns: 3.3 % of a CPU, under the 5 % line.
        assert_eq!(c.sample_for_safe, 1);
        assert!(c.advice.starts_with("safe"), "{}", c.advice);
        let busy = figures(
            &stages,
            (&before.0, &before.1),
            (&[0, 2_000_100, 1_000], &after.1),
            2.0,
            true,
        );
        // 1 000 500 events/s: 33 % of a CPU, so 1 in 7 flows.
        assert_eq!(busy.sample_for_safe, 7);
        assert!(busy.advice.contains("--sample 7"), "{}", busy.advice);
        // The default budget of 100 000/s halves the flows kept four times: 1 in 16.
        assert_eq!(busy.budget_one_in, 16);
        assert!(close(
            Some(busy.budget_recorder_cpu),
            busy.recorder_cpu / 16.0
        ));
        assert!(busy.advice.contains("1 flow in 16"), "{}", busy.advice);
        assert!(table(&busy).contains("with the default --budget 100000/s: 1 flow in 16 kept"));
        // Just over the budget: 1 in 2.
        assert_eq!(c.budget_one_in, 2);
        assert!(table(&c).contains("1 flow in 2 kept"));
    }

    #[test]
    fn without_run_time_statistics_kernel_time_is_unknown_and_said_so() {
        let c = figures(
            &[Measured::Stage(Stage::TxDriver)],
            (&[0], &[Some((0, 0))]),
            (&[10], &[Some((0, 0))]),
            1.0,
            false,
        );
        assert_eq!(c.kernel_cpu, None);
        // 10 events/s, under the budget: every flow.
        assert_eq!(c.budget_one_in, 1);
        assert!(table(&c).contains("every flow kept"), "{}", table(&c));
        assert_eq!(c.stages[0].ns_per_run, None);
        assert_eq!(c.notes.len(), 1);
        assert!(table(&c).contains("note: the kernel did not turn on"));
    }
}
