//! A live recording: checks, load and attach, the writer, then the drain loop
//! ([`crate::drain_loop`]) until a limit, a signal or the duration ends it, and the summary.
//!
//! Each CPU's programs stage events and write them into that CPU's ring a batch at a time, and
//! wake the reader once, with the batch that brings `wake_bytes` to wait there (`BPF_RB_NO_WAKEUP`
//! for every other batch). Batches go to the writer thread; the kernel's counters
//! ([`crate::kernel_counters`]) are read once a second and at the end, and what the CPUs still
//! had staged once the programs are detached.

use crate::attach_plan::{anything_recorded, attach_context, attach_selected, PLAN, TASK_STAGES};
use crate::budget_thread::BudgetThread;
use crate::cli::RecordArgs;
use crate::drain_loop::{drain, Flight, Limits, StopSignals, Totals, UNDECODABLE};
use crate::exit_code::{self, ExitError};
use crate::filters::{if_index, KernelFilters};
use crate::kernel_counters::{counters_readable, program_stats_readable};
use crate::loader::{AyaLoader, LoadConfig, RingLayout};
use crate::sampling_budget::BudgetControl;
use crate::segment_writer::{Output, SegmentLimits, SegmentWriter, Summary};
use crate::stage_selection::StageUse;
use crate::write_pipeline::WriterHandle;
use crate::{drop_reasons, environment, least_privilege, plan_report, preflight};
use std::io::IsTerminal;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::time::Duration;
use tcptape_common::anonymize::{AnonOptions, Anonymizer};
use tcptape_common::encode::{BatchEncoder, EncodeContext};
use tcptape_common::metadata::{host, RecordingMeta, Sampling};
use tcptape_common::Stage;
use tokio::signal::unix::{signal, SignalKind};

/// Batches the writer queue holds before it counts losses.
const WRITER_QUEUE: usize = 32;
/// Records as `args` says.
pub fn run(args: &RecordArgs) -> anyhow::Result<()> {
    let in_set = args.into.as_ref().map(|d| set_path(d, args.keep.is_some()));
    let path = args.output.as_ref().or(in_set.as_ref()).ok_or_else(|| {
        ExitError::new(
            exit_code::USAGE,
            "a recording needs an output path: -o PATH or --into DIR (see --help)",
        )
    })?;
    if let Some(parent) = in_set.as_ref().and_then(|p| p.parent()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| {
                ExitError::new(
                    exit_code::USAGE,
                    format!("cannot create {}: {e}", parent.display()),
                )
            })?;
    }
    let cgroup2 = tcptape_common::metadata::host::cgroup2_mount();
    let filters = KernelFilters::from_args(args, if_index, cgroup2.as_deref())
        .map_err(|e| ExitError::new(exit_code::USAGE, e))?;
    let rings =
        RingLayout::for_host(args.ring_size).map_err(|e| ExitError::new(exit_code::USAGE, e))?;
    if args.keep.is_some() && matches!(Output::from_path(path), Output::File(_)) {
        return Err(ExitError::new(
            exit_code::USAGE,
            format!(
                "--keep needs a directory output: {} ends in .parquet (drop the extension)",
                path.display()
            ),
        )
        .into());
    }
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(ExitError::new(
            exit_code::USAGE,
            format!("{} already exists; choose a new path", path.display()),
        )
        .into());
    }
    tcptape_common::parquet_file::check_output_dir(path)
        .map_err(|e| ExitError::new(exit_code::USAGE, e.to_string()))?;
    preflight::check_privileges()?;
    preflight::check_btf()?;
    let say = !args.quiet;
    if let Some(w) = preflight::ensure_tracefs() {
        if say {
            tcptape_common::note!("warning: {w}");
        }
    }

    let cfg = LoadConfig {
        filters: filters.clone(),
        sample: args.sample,
        adaptive: args.budget.0.is_some(),
        rings: rings.clone(),
    };
    let mut loader = AyaLoader::open(&cfg).map_err(ExitError::from)?;
    if !filters.pids.is_empty() {
        let (found, failed) = loader
            .admit_listeners(&filters.pids)
            .map_err(|e| ExitError::new(exit_code::UNSUPPORTED, e))?;
        if say {
            for e in &failed {
                tcptape_common::note!("warning: {e}");
            }
        }
        if args.verbose {
            for l in &found {
                tcptape_common::note!(
                    "--pid: listening on port {} (network namespace {})",
                    l.port,
                    l.netns
                );
            }
        }
    }
    if args.no_fentry {
        loader.disable(crate::attach_plan::Mechanism::Fentry);
    }
    let admits_flows = filters.admits_flows();
    // Before the stages, so that their first events already know whether they run in softirq;
    // only when a stage attached would carry a pid.
    let pids_used = TASK_STAGES
        .iter()
        .any(|&s| filters.stages.use_of(s, admits_flows) != StageUse::Skip);
    if pids_used {
        if let Some(w) = attach_context(&mut loader).warning() {
            if say {
                tcptape_common::note!("warning: {w}");
            }
        }
    }
    let outcomes = attach_selected(
        PLAN,
        |s| filters.stages.use_of(s, admits_flows),
        &mut loader,
    );
    if !anything_recorded(&outcomes) {
        tcptape_common::note_raw!("{}", plan_report::table(&outcomes));
        let what = if filters.stages.is_all() {
            "no stage"
        } else {
            "none of the stages given with --stage"
        };
        return Err(ExitError::new(
            exit_code::UNSUPPORTED,
            format!(
                "{what} can be recorded on this kernel (run `tcptape-record check` for details)"
            ),
        )
        .into());
    }
    let mut maps = loader.take_maps().map_err(anyhow::Error::msg)?;
    if args.verbose {
        tcptape_common::note_raw!("{}", plan_report::table(&outcomes));
    }

    let (mono_to_wall_ns, start_ns) = clock_offset();
    let mut meta = RecordingMeta::new("live");
    meta.mono_to_wall_ns = mono_to_wall_ns;
    meta.start_ns = start_ns;
    meta.end_ns = start_ns;
    meta.attach_plan = outcomes.iter().map(|o| o.to_meta()).collect();
    meta.filters = filters.to_meta();
    meta.sampling = Sampling {
        one_in: args.sample,
        budget: args.budget.0,
        steps: Vec::new(),
    };
    meta.ring_bytes = rings.total();
    meta.environment = environment::fingerprint();
    let attached: Vec<Stage> = outcomes
        .iter()
        .filter(|o| o.records())
        .map(|o| o.stage)
        .collect();
    // Recorded stages only: a skipped run of a program whose events are dropped loses nothing
    // the recording would hold.
    let program_fds: Vec<(Stage, Vec<OwnedFd>)> = outcomes
        .iter()
        .filter(|o| o.records())
        .map(|o| (o.stage, loader.program_fds(&o.programs)))
        .collect();

    let encoder = BatchEncoder::new(EncodeContext::new(drop_reasons::host_drop_reasons()));
    let limits = SegmentLimits {
        segment_secs: Duration::from_secs(args.segment_secs),
        segment_bytes: SegmentLimits::default()
            .segment_bytes
            .min((args.max_size / 4).max(1 << 20)),
    };
    let output = Output::from_path(path);
    let dirs = output.written_dirs();
    let mut writer = SegmentWriter::create(output, meta, encoder, limits)?;
    if let Some(keep) = args.keep {
        writer.set_keep(keep)?;
        writer.set_flight(args.after, args.max_saved as usize)?;
    }
    if args.anonymize {
        // A fresh key, never stored: pseudonyms are consistent within this recording only.
        let options = AnonOptions {
            ports: false,
            tasks: true,
        };
        writer.set_anonymizer(Anonymizer::new(&rand::random(), options));
    }
    // Before any thread starts: capabilities are per thread.
    let dirs: Vec<&std::path::Path> = dirs.iter().map(|d| d.as_path()).collect();
    let stats_known = program_stats_readable(&program_fds);
    let reads =
        || counters_readable(&maps) && (!stats_known || program_stats_readable(&program_fds));
    match least_privilege::drop_after_attach(reads, &dirs) {
        Ok(d) if args.verbose => tcptape_common::note!("{}", d.describe()),
        Ok(_) => {}
        Err(e) => tcptape_common::note!("warning: capabilities were not dropped: {e}"),
    }
    // At normal priority whatever --priority says (set after it starts): the budget must be
    // held on a saturated host, where an idle thread may not run.
    let budget = match (args.budget.0, maps.budget.take()) {
        (Some(b), Some(m)) => Some(BudgetThread::spawn(
            BudgetControl::new(b, args.sample, start_ns),
            m,
            attached.clone(),
        )?),
        _ => None,
    };
    // After the verifier's work, before the writer thread starts (which inherits it).
    match args.priority.apply_to_current_thread() {
        Ok(()) if args.verbose => tcptape_common::note!("CPU priority: {}", args.priority.name()),
        Ok(()) => {}
        Err(e) => tcptape_common::note!(
            "warning: the CPU priority {} could not be set: {e}",
            args.priority.name()
        ),
    }
    let writer = WriterHandle::spawn(writer, WRITER_QUEUE);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Before the recorder says it is recording: from that line on, a SIGINT or SIGTERM must end
    // the recording cleanly, not kill the process with its default action.
    let stop_signals = {
        let _runtime = runtime.enter();
        StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        }
    };
    if say {
        tcptape_common::note!(
            "recording {} stages to {} (Ctrl-C to stop)",
            attached.len(),
            path.display()
        );
    }
    let live = say && std::io::stderr().is_terminal();
    let limits = Limits {
        duration: args.duration,
        // A rolling window bounds the disk itself; the recording goes on until stopped.
        max_size: if args.keep.is_some() {
            u64::MAX
        } else {
            args.max_size
        },
        max_events: args.max_events,
    };
    let drained = runtime.block_on(drain(
        maps,
        program_fds,
        loader,
        &writer,
        &attached,
        limits,
        stop_signals,
        live,
        args.keep.map(|_| Flight {
            conditions: args.triggers.clone(),
            hold_off: args.hold_off,
        }),
        budget.as_ref().map(|b| b.shared().as_ref()),
    ));
    // The sparsest rate the budget needed, said after the summary when it sampled at all.
    let budget_sampled = budget
        .map(|b| b.stop().sparsest())
        .filter(|&n| n > args.sample);
    let (reason, totals) = match drained {
        Ok(x) => x,
        Err(e) => {
            let _ = writer.finish("failed");
            return Err(e);
        }
    };
    let summary = writer.finish(reason)?;
    if say {
        report_summary(&summary, reason, &totals);
        if let (Some(n), Some(b)) = (budget_sampled, args.budget.0) {
            tcptape_common::note!(
                "the rate went over --budget {b} events/s: down to 1 flow in {n} was kept, each \
                 kept flow whole (`tcptape info` shows when; `tcptape report` scales its counts)"
            );
        }
    }
    if args.verbose {
        let cpu = cpu_seconds();
        let per_million = if totals.events > 0 {
            cpu / totals.events as f64 * 1e6
        } else {
            0.0
        };
        tcptape_common::note!(
            "recorder CPU time: {cpu:.3} s for {} events ({per_million:.3} s per million)",
            totals.events
        );
    }
    Ok(())
}

/// User + system CPU time of this process so far, in seconds (every thread).
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn report_summary(s: &Summary, reason: &str, t: &Totals) {
    tcptape_common::note!(
        "wrote {} events to {} ({}, {} segment{}); stopped by {reason}; {} lost",
        s.rows,
        s.path.display(),
        bytesize::ByteSize::b(s.bytes),
        s.segments,
        if s.segments == 1 { "" } else { "s" },
        t.lost,
    );
    if s.rolled_out > 0 {
        tcptape_common::note!(
            "the {} oldest segment(s) rolled out of the --keep window; {} remain ({} on disk)",
            s.rolled_out,
            s.segments - s.rolled_out,
            bytesize::ByteSize::b(s.bytes),
        );
    }
    let bad = UNDECODABLE.load(std::sync::atomic::Ordering::Relaxed);
    if bad > 0 {
        tcptape_common::note!(
            "warning: {bad} ring records were not events of this version and were skipped"
        );
    }
    if t.events != s.rows {
        tcptape_common::note!(
            "note: {} events were received but {} written (the writer queue was full)",
            t.events,
            s.rows
        );
    }
}

/// Where a recording goes in a recording set: `DIR/host=NAME/date=YYYY-MM-DD/tcptape-TIME`, a
/// `.parquet` file, or a directory of segments for a rolling window. The host and date in the
/// path are for engines that prune by directory; every file also carries them (and the kernel
/// and the recording id) in its metadata.
fn set_path(dir: &std::path::Path, segments: bool) -> std::path::PathBuf {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let date = now.get(..10).unwrap_or("unknown-date");
    // A host name is a path component: no slash, no `=`.
    let host: String = host::hostname()
        .chars()
        .map(|c| if c == '/' || c == '=' { '_' } else { c })
        .collect();
    let name = format!(
        "tcptape-{}{}",
        now.replace(':', ""),
        if segments { "" } else { ".parquet" }
    );
    dir.join(format!("host={host}"))
        .join(format!("date={date}"))
        .join(name)
}

/// Wall-clock minus monotonic time, measured between two monotonic reads so the error is at most
/// half the narrowest window of a few tries; and the monotonic time it was measured at.
fn clock_offset() -> (i64, u64) {
    let mut best: Option<(u64, i64, u64)> = None;
    for _ in 0..8 {
        let a = host::monotonic_ns().unwrap_or(0);
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        let b = host::monotonic_ns().unwrap_or(0);
        let width = b.saturating_sub(a);
        let offset = wall - (a / 2 + b / 2) as i64;
        if best.is_none_or(|(w, _, _)| width < w) {
            best = Some((width, offset, b));
        }
    }
    let (_, offset, at) = best.expect("measured at least once");
    (offset, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_offset_matches_the_wall_clock() {
        let (offset, at) = clock_offset();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let mono = host::monotonic_ns().unwrap() as i64;
        assert!(at > 0);
        assert!(
            (mono + offset - wall).abs() < 50_000_000,
            "offset off by more than 50 ms"
        );
    }
}
