//! The drain loop of a live recording: moves the events of every CPU's ring (and what the CPUs
//! still have staged) into batches for the writer, until a limit, a signal or the duration ends
//! the recording; reads the kernel's counters once a second for the live view and the metadata.
//!
//! The programs wake the reader only when `wake_bytes` come to wait in a ring (once per
//! crossing), so the loop drains every ring empty when woken and also polls on a short timer.

use crate::budget_thread::BudgetShared;
use crate::flight_control::{self, FlightControl};
use crate::kernel_counters::CountersMaps;
use crate::live_view::{self, FlowTally, LiveView};
use crate::loader::{AyaLoader, CaptureMaps, CpuRing};
use crate::ring_reader::RingReader;
use crate::trigger_conditions::{Condition, Watch};
use crate::write_pipeline::WriterHandle;
use aya::maps::MapData;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};
use tcptape_common::event::{RawBatches, RAW_EVENT_SIZE};
use tcptape_common::{RawEvent, Stage};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Events per batch handed to the writer.
pub const BATCH: usize = 8192;
/// How often the ring is drained when the kernel has not woken the reader.
const POLL: Duration = Duration::from_millis(50);
/// How often counters are read and the live line is updated.
const REPORT: Duration = Duration::from_secs(1);
/// How often the flight recorder's conditions look at the last second.
const WATCH: Duration = Duration::from_millis(250);

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

/// What stops a recording besides a signal.
pub(crate) type Limits = live_view::Limits;

/// Final counters, for the summary line.
pub(crate) struct Totals {
    pub(crate) events: u64,
    pub(crate) lost: u64,
}

/// What looks at the events on their way to the writer: the live view's flow counts and the
/// flight recorder's conditions, each only when in use.
#[derive(Default)]
pub(crate) struct Taps {
    tally: Option<FlowTally>,
    watch: Option<Watch>,
}

/// The flight recorder's settings, for [`drain`].
pub(crate) struct Flight {
    /// The `--trigger` conditions.
    pub(crate) conditions: Vec<Condition>,
    /// Triggers within this long of the last one are ignored.
    pub(crate) hold_off: Duration,
}

/// Ring records that were not events of this version.
pub(crate) static UNDECODABLE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Moves everything in the rings into batches for the writer. Returns true when `max_events` is
/// reached (the batch is cut at the limit).
fn drain_rings(
    rings: &mut [AsyncFd<CpuRing>],
    writer: &WriterHandle,
    received: &mut u64,
    max_events: Option<u64>,
    taps: &mut Taps,
) -> anyhow::Result<bool> {
    let mut batch = Vec::with_capacity(BATCH);
    for ring in rings {
        if drain_ring(
            &mut ring.get_mut().ring,
            &mut batch,
            writer,
            (received, max_events),
            taps,
        )? {
            // The limit holds: what the other rings still have is left out.
            send(writer, batch, taps)?;
            return Ok(true);
        }
    }
    send(writer, batch, taps)?;
    Ok(false)
}

/// Hands a batch to the writer, through the taps in use first.
fn send(writer: &WriterHandle, batch: Vec<RawEvent>, taps: &mut Taps) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    if let Some(t) = &mut taps.tally {
        t.add(&batch);
    }
    if let Some(w) = &mut taps.watch {
        w.add(&batch);
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
    (received, max_events): (&mut u64, Option<u64>),
    taps: &mut Taps,
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
                full = send(
                    writer,
                    std::mem::replace(batch, Vec::with_capacity(BATCH)),
                    taps,
                );
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
    send(writer, batch, &mut Taps::default())
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
pub(crate) struct StopSignals {
    pub(crate) interrupt: tokio::signal::unix::Signal,
    pub(crate) terminate: tokio::signal::unix::Signal,
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn drain(
    maps: CaptureMaps,
    program_fds: Vec<(Stage, Vec<OwnedFd>)>,
    loader: AyaLoader,
    writer: &WriterHandle,
    attached: &[Stage],
    limits: Limits,
    mut stop_signals: StopSignals,
    live: bool,
    flight: Option<Flight>,
    budget: Option<&BudgetShared>,
) -> anyhow::Result<(&'static str, Totals)> {
    let CaptureMaps {
        rings,
        seen,
        lost,
        batches,
        budget: _,
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
    let mut view = LiveView::new(live, limits);
    let mut taps = Taps {
        tally: view.drawn().then(FlowTally::default),
        watch: flight.as_ref().map(|f| {
            Watch::new(
                f.conditions.clone(),
                crate::drop_reasons::host_drop_reasons(),
            )
        }),
    };
    let mut control = match &flight {
        Some(f) => {
            let c = FlightControl::new(f.hold_off)?;
            if let Some(w) = &c.socket_warning {
                tcptape_common::note!("warning: {w}");
            }
            Some(c)
        }
        None => None,
    };
    let mut last_watch = Instant::now();
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
            (reason, stream) = async {
                match &mut control {
                    Some(c) => c.next().await,
                    None => std::future::pending().await,
                }
            } => {
                if let (Some(c), false) = (&mut control, reason.is_empty()) {
                    let said = c.fire(writer, &reason, None, None)?;
                    tcptape_common::note!("{said}");
                    flight_control::answer(stream, &said).await;
                }
            }
        }
        if drain_rings(
            &mut rings,
            writer,
            &mut received,
            limits.max_events,
            &mut taps,
        )? {
            break stop_reason::MAX_EVENTS;
        }
        if writer.is_finished() {
            anyhow::bail!("the writer stopped while recording");
        }
        if projected_bytes(&stats, received) >= limits.max_size {
            break stop_reason::MAX_SIZE;
        }
        if let Some(b) = budget {
            forward_budget(b, received, writer)?;
        }
        // The conditions, over the last second, four times a second.
        if last_watch.elapsed() >= WATCH {
            last_watch = Instant::now();
            if let (Some(w), Some(c)) = (&mut taps.watch, &mut control) {
                let now = tcptape_common::metadata::host::monotonic_ns().unwrap_or(0);
                // The first condition over its threshold; within the hold-off, silently none
                // (a storm would otherwise say so four times a second).
                let fired = w.evaluate(now);
                if let Some((cond, value)) = fired.into_iter().next().filter(|_| !c.holding_off()) {
                    let said = c.fire(writer, &cond.text, Some(&cond), Some(value))?;
                    tcptape_common::note!("{said}");
                }
            }
        }
        if last_report.elapsed() >= REPORT {
            last_report = Instant::now();
            let p = counters_maps.progress(attached);
            view.update(
                (
                    received,
                    started.elapsed(),
                    budget.map_or(1, BudgetShared::current),
                ),
                &stats,
                p.lost.total(),
                &p.seen,
                taps.tally.as_mut(),
            );
            writer
                .progress(p)
                .map_err(|_| anyhow::anyhow!("the writer stopped"))?;
        }
    };
    view.finish();
    // Detach every program first, so the last drain sees everything that will ever arrive.
    drop(loader);
    // At a size or event limit the events still in the ring are left out: the limit holds.
    if reason != stop_reason::MAX_EVENTS && reason != stop_reason::MAX_SIZE {
        drain_rings(
            &mut rings,
            writer,
            &mut received,
            limits.max_events,
            &mut Taps::default(),
        )?;
        drain_staged(&batches, writer, &mut received, limits.max_events)?;
    }
    if let Some(b) = budget {
        forward_budget(b, received, writer)?;
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

/// Tells the budget's thread how many events arrived, and hands the writer the rates it set in
/// force.
fn forward_budget(b: &BudgetShared, received: u64, writer: &WriterHandle) -> anyhow::Result<()> {
    b.received
        .store(received, std::sync::atomic::Ordering::Relaxed);
    if let Some(e) = b.take_failure() {
        tcptape_common::note!(
            "warning: the sampling rate could not be changed ({e}); the budget is no longer held"
        );
    }
    writer
        .sampling(b.take_steps())
        .map_err(|_| anyhow::anyhow!("the writer stopped"))
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
}
