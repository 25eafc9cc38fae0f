//! A live recording: checks, load and attach, then drain the rings into the writer until a
//! limit, a signal or the duration ends it.
//!
//! Each CPU's programs stage events and write them into that CPU's ring a batch at a time, and
//! wake the reader only once `wake_bytes` wait there (`BPF_RB_NO_WAKEUP` below that), so the
//! drain loop also polls on a short timer. Batches go to the writer thread; the per-stage and loss
//! counters are read once a second and at the end, and what the CPUs still had staged once the
//! programs are detached.

use crate::attach_plan::{anything_recorded, attach_context, attach_selected, PLAN, TASK_STAGES};
use crate::cli::RecordArgs;
use crate::exit_code::{self, ExitError};
use crate::filters::{if_index, KernelFilters};
use crate::loader::{AyaLoader, CaptureMaps, CpuRing, LoadConfig, RingLayout};
use crate::program_stats::recursion_misses;
use crate::ring_reader::RingReader;
use crate::segment_writer::{Output, Progress, SegmentLimits, SegmentWriter, Summary};
use crate::stage_selection::StageUse;
use crate::write_pipeline::WriterHandle;
use crate::{drop_reasons, environment, least_privilege, plan_report, preflight, progress_line};
use aya::maps::MapData;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};
use tcptape_common::anonymize::{AnonOptions, Anonymizer};
use tcptape_common::encode::{BatchEncoder, EncodeContext};
use tcptape_common::event::{RawBatches, RAW_EVENT_SIZE};
use tcptape_common::metadata::{host, Lost, RecordingMeta, Sampling};
use tcptape_common::{RawEvent, Stage};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::signal::unix::{signal, SignalKind};

/// Events per batch handed to the writer.
pub const BATCH: usize = 8192;
/// Batches the writer queue holds before it counts losses.
const WRITER_QUEUE: usize = 32;
/// How often the ring is drained when the kernel has not woken the reader.
const POLL: Duration = Duration::from_millis(50);
/// How often counters are read and the live line is updated.
const REPORT: Duration = Duration::from_secs(1);

/// Why a recording stopped, as stored in the metadata.
pub mod stop_reason {
    /// `--duration` elapsed.
    pub const DURATION: &str = "duration";
    /// SIGINT or SIGTERM.
    pub const SIGNAL: &str = "signal";
    /// `--max-size` reached.
    pub const MAX_SIZE: &str = "max-size";
    /// `--max-events` reached.
    pub const MAX_EVENTS: &str = "max-events";
}

/// Records as `args` says.
pub fn run(args: &RecordArgs) -> anyhow::Result<()> {
    let path = args.output.as_ref().ok_or_else(|| {
        ExitError::new(
            exit_code::USAGE,
            "a recording needs an output path: -o PATH (see --help)",
        )
    })?;
    let filters = KernelFilters::from_args(args, if_index)
        .map_err(|e| ExitError::new(exit_code::USAGE, e))?;
    let rings =
        RingLayout::for_host(args.ring_size).map_err(|e| ExitError::new(exit_code::USAGE, e))?;
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
    let maps = loader.take_maps().map_err(anyhow::Error::msg)?;
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
        max_size: args.max_size,
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
    ));
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

/// True when the maps the recording goes on reading (counters, staged events) can be read.
fn counters_readable(maps: &CaptureMaps) -> bool {
    maps.seen.get(&0, 0).is_ok() && maps.lost.get(&0, 0).is_ok() && maps.batches.get(&0, 0).is_ok()
}

/// True when every attached program's statistics can be read (false as well on kernels that do
/// not report them).
fn program_stats_readable(programs: &[(Stage, Vec<OwnedFd>)]) -> bool {
    programs
        .iter()
        .flat_map(|(_, fds)| fds)
        .all(|fd| recursion_misses(fd.as_fd()).is_some())
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

struct Limits {
    duration: Option<Duration>,
    max_size: u64,
    max_events: Option<u64>,
}

/// Final counters, for the summary line.
struct Totals {
    events: u64,
    lost: u64,
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

/// Ring records that were not events of this version.
static UNDECODABLE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Moves everything in the rings into batches for the writer. Returns true when `max_events` is
/// reached (the batch is cut at the limit).
fn drain_rings(
    rings: &mut [AsyncFd<CpuRing>],
    writer: &WriterHandle,
    received: &mut u64,
    max_events: Option<u64>,
) -> anyhow::Result<bool> {
    let mut batch = Vec::with_capacity(BATCH);
    for ring in rings {
        if drain_ring(
            &mut ring.get_mut().ring,
            &mut batch,
            writer,
            received,
            max_events,
        )? {
            // The limit holds: what the other rings still have is left out.
            send(writer, batch)?;
            return Ok(true);
        }
    }
    send(writer, batch)?;
    Ok(false)
}

fn send(writer: &WriterHandle, batch: Vec<RawEvent>) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    writer
        .send(batch)
        .map_err(|_| anyhow::anyhow!("the writer stopped"))
}

/// Moves everything in one ring into `batch`, handing full batches to the writer. Returns true
/// when `max_events` is reached.
fn drain_ring(
    ring: &mut RingReader,
    batch: &mut Vec<RawEvent>,
    writer: &WriterHandle,
    received: &mut u64,
    max_events: Option<u64>,
) -> anyhow::Result<bool> {
    let mut full = Ok(());
    let mut done = false;
    ring.drain(|record| {
        // A record is a batch of events (one CPU's staged events, see event.h).
        if record.len() % RAW_EVENT_SIZE != 0 {
            UNDECODABLE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return true;
        }
        for bytes in record.chunks_exact(RAW_EVENT_SIZE) {
            if !take_event(bytes, batch, received) {
                continue;
            }
            if max_events.is_some_and(|m| *received >= m) {
                done = true;
                return false;
            }
            if batch.len() == BATCH {
                full = send(writer, std::mem::replace(batch, Vec::with_capacity(BATCH)));
                if full.is_err() {
                    return false;
                }
            }
        }
        true
    });
    full?;
    Ok(done)
}

/// Decodes one event into `batch`; false if it is not an event of this version.
fn take_event(bytes: &[u8], batch: &mut Vec<RawEvent>, received: &mut u64) -> bool {
    match RawEvent::from_bytes(bytes) {
        Ok(ev) => {
            batch.push(ev);
            *received += 1;
            true
        }
        // Only an object from another version could write these; never expected, but counted
        // rather than dropped silently.
        Err(_) => {
            UNDECODABLE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            false
        }
    }
}

/// Hands the writer the events the CPUs staged but had not written into their rings yet. Call
/// it once the programs are detached.
fn drain_staged(
    batches: &aya::maps::PerCpuArray<MapData, RawBatches>,
    writer: &WriterHandle,
    received: &mut u64,
    max_events: Option<u64>,
) -> anyhow::Result<()> {
    let per_cpu = batches
        .get(&0, 0)
        .map_err(|e| anyhow::anyhow!("cannot read the staged events: {e}"))?;
    let mut batch = Vec::new();
    for staged in per_cpu.iter() {
        for ev in staged.staged() {
            if max_events.is_some_and(|m| *received >= m) {
                break;
            }
            take_event(ev.as_bytes(), &mut batch, received);
        }
    }
    send(writer, batch)
}

/// Resolves once any ring's descriptor is readable (the kernel woke the reader), clearing that
/// readiness.
async fn any_readable(rings: &[AsyncFd<CpuRing>]) -> std::io::Result<()> {
    std::future::poll_fn(|cx| {
        let mut woken = false;
        for ring in rings {
            match ring.poll_read_ready(cx) {
                std::task::Poll::Ready(Ok(mut guard)) => {
                    guard.clear_ready();
                    woken = true;
                }
                std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
                std::task::Poll::Pending => {}
            }
        }
        if woken {
            std::task::Poll::Ready(Ok(()))
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// The signals that end a recording, registered before it is announced.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[allow(clippy::too_many_arguments)]
async fn drain(
    maps: CaptureMaps,
    program_fds: Vec<(Stage, Vec<OwnedFd>)>,
    loader: AyaLoader,
    writer: &WriterHandle,
    attached: &[Stage],
    limits: Limits,
    mut stop_signals: StopSignals,
    live: bool,
) -> anyhow::Result<(&'static str, Totals)> {
    let CaptureMaps {
        rings,
        seen,
        lost,
        batches,
    } = maps;
    let mut rings = rings
        .into_iter()
        .map(|r| {
            let cpu = r.cpu;
            // SAFETY: the ring buffer owns its fd, which stays open and unchanged until the
            // AsyncFd is dropped at the end of this function.
            unsafe { AsyncFd::register_with_interest(r, Interest::READABLE) }.map_err(|e| {
                anyhow::anyhow!(
                    "cannot poll the ring buffer of CPU {cpu}: {}",
                    e.into_parts().1
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let counters_maps = CountersMaps {
        seen,
        lost,
        program_fds,
    };
    let deadline = limits.duration.map(|d| tokio::time::Instant::now() + d);
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut line = progress_line::ProgressLine::new(live);
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut received = 0u64;
    let stats = writer.stats().clone();

    let reason = loop {
        tokio::select! {
            _ = stop_signals.interrupt.recv() => break stop_reason::SIGNAL,
            _ = stop_signals.terminate.recv() => break stop_reason::SIGNAL,
            _ = sleep_until(deadline) => break stop_reason::DURATION,
            woken = any_readable(&rings) => woken?,
            _ = poll.tick() => {}
        }
        if drain_rings(&mut rings, writer, &mut received, limits.max_events)? {
            break stop_reason::MAX_EVENTS;
        }
        if writer.is_finished() {
            anyhow::bail!("the writer stopped while recording");
        }
        if projected_bytes(&stats, received) >= limits.max_size {
            break stop_reason::MAX_SIZE;
        }
        if last_report.elapsed() >= REPORT {
            last_report = Instant::now();
            let p = counters_maps.progress(attached);
            line.update(received, started.elapsed(), &stats, p.lost.total());
            writer
                .progress(p)
                .map_err(|_| anyhow::anyhow!("the writer stopped"))?;
        }
    };
    line.finish();
    // Detach every program first, so the last drain sees everything that will ever arrive.
    drop(loader);
    // At a size or event limit the events still in the ring are left out: the limit holds.
    if reason != stop_reason::MAX_EVENTS && reason != stop_reason::MAX_SIZE {
        drain_rings(&mut rings, writer, &mut received, limits.max_events)?;
        drain_staged(&batches, writer, &mut received, limits.max_events)?;
    }
    let p = counters_maps.progress(attached);
    let lost = p.lost.total();
    writer
        .progress(p)
        .map_err(|_| anyhow::anyhow!("the writer stopped"))?;
    Ok((
        reason,
        Totals {
            events: received,
            lost: lost + stats.queue_lost.load(std::sync::atomic::Ordering::Relaxed),
        },
    ))
}

/// Bytes the recording will take once the events handed to the writer so far are written: what
/// is on disk plus the queued events at the bytes per row seen so far. Stopping on this rather
/// than on what is written keeps the writer's queue from carrying a recording past `--max-size`.
fn projected_bytes(stats: &crate::write_pipeline::WriterStats, received: u64) -> u64 {
    use std::sync::atomic::Ordering::Relaxed;
    /// Bytes per row assumed before the first rows are written (zstd-compressed rows are smaller).
    const FIRST_GUESS: u64 = 40;
    let bytes = stats.bytes.load(Relaxed);
    let rows = stats.rows.load(Relaxed);
    let lost = stats.queue_lost.load(Relaxed);
    let queued = received.saturating_sub(rows + lost);
    let per_row = if rows > 1000 {
        bytes / rows
    } else {
        FIRST_GUESS
    };
    bytes + queued * per_row.max(1)
}

/// The per-CPU counter maps.
struct CountersMaps {
    seen: aya::maps::PerCpuArray<MapData, u64>,
    lost: aya::maps::PerCpuArray<MapData, u64>,
    /// The attached programs of each stage, for their skipped runs.
    program_fds: Vec<(Stage, Vec<OwnedFd>)>,
}

impl CountersMaps {
    /// Sums the per-CPU counters into what the metadata stores.
    fn progress(&self, attached: &[Stage]) -> Progress {
        let mut seen = BTreeMap::new();
        for &stage in attached {
            let n = self
                .seen
                .get(&u32::from(stage.code()), 0)
                .map(|v| v.iter().sum::<u64>())
                .unwrap_or(0);
            seen.insert(stage.name().to_string(), n);
        }
        let ring_per_cpu = self
            .lost
            .get(&0, 0)
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default();
        let mut missed_runs = BTreeMap::new();
        for (stage, fds) in &self.program_fds {
            let n: u64 = fds
                .iter()
                .filter_map(|fd| recursion_misses(fd.as_fd()))
                .sum();
            if n > 0 {
                missed_runs.insert(stage.name().to_string(), n);
            }
        }
        Progress {
            lost: Lost {
                ring_per_cpu,
                writer_queue: 0,
                missed_runs,
            },
            seen,
            end_ns: host::monotonic_ns().unwrap_or(0),
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write_pipeline::WriterStats;
    use std::sync::atomic::Ordering::Relaxed;

    #[test]
    fn projected_size_counts_what_the_writer_has_not_written_yet() {
        let stats = WriterStats::default();
        // Nothing written yet: the first guess per row.
        assert_eq!(projected_bytes(&stats, 100), 4000);
        // 10 000 rows in 200 000 bytes (20 per row), 5 000 more queued, 1 000 dropped.
        stats.rows.store(10_000, Relaxed);
        stats.bytes.store(200_000, Relaxed);
        stats.queue_lost.store(1_000, Relaxed);
        assert_eq!(projected_bytes(&stats, 16_000), 200_000 + 5_000 * 20);
        // Everything written: just the bytes.
        assert_eq!(projected_bytes(&stats, 11_000), 200_000);
    }

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
