//! The writer thread: keeps Parquet encoding and disk I/O off the ring-buffer draining path.
//!
//! The drain side hands over batches through a bounded queue. When the queue is full the batch is
//! dropped and counted (`lost.writer_queue` in the metadata), never silently: blocking the drain
//! would only move the loss into the kernel's ring buffer, where it is harder to attribute.

use crate::segment_writer::{Progress, SegmentWriter, Summary};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tcptape_common::metadata::{SamplingStep, Trigger};
use tcptape_common::RawEvent;

/// How often the writer thread checks whether the open segment is due when idle.
const TICK: Duration = Duration::from_millis(200);

/// Where a trigger's window is saved: the directory, `None` while an earlier one is still being
/// saved, or why it could not be.
pub type TriggerReply = Result<Option<std::path::PathBuf>, String>;

enum Msg {
    Events(Vec<RawEvent>),
    Progress(Progress),
    Sampling(Vec<SamplingStep>),
    Trigger(Trigger, std::sync::mpsc::Sender<TriggerReply>),
    Finish(String),
}

/// Figures the writer thread publishes for the live progress line and limits.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Rows written.
    pub rows: AtomicU64,
    /// Bytes on disk (estimate for the open segment).
    pub bytes: AtomicU64,
    /// Events dropped because the queue was full.
    pub queue_lost: AtomicU64,
}

/// The drain side's handle on the writer thread.
pub struct WriterHandle {
    tx: SyncSender<Msg>,
    stats: Arc<WriterStats>,
    join: JoinHandle<io::Result<Summary>>,
}

/// Why the writer thread is gone.
#[derive(Debug, thiserror::Error)]
#[error("the writer stopped")]
pub struct WriterGone;

impl WriterHandle {
    /// Starts the writer thread with a queue of `queue_batches` batches.
    pub fn spawn(mut writer: SegmentWriter, queue_batches: usize) -> WriterHandle {
        let (tx, rx) = sync_channel(queue_batches.max(1));
        let stats = Arc::new(WriterStats::default());
        let thread_stats = stats.clone();
        let join = std::thread::Builder::new()
            .name("tcptape-writer".into())
            .spawn(move || {
                run(&mut writer, rx, &thread_stats).and_then(|reason| writer.finish(&reason))
            })
            .expect("spawning the writer thread");
        WriterHandle { tx, stats, join }
    }

    /// Queues a batch; when the queue is full the batch is counted as lost. Fails only when the
    /// writer thread has stopped (an I/O error it will report from [`WriterHandle::finish`]).
    pub fn send(&self, events: Vec<RawEvent>) -> Result<(), WriterGone> {
        let n = events.len() as u64;
        match self.tx.try_send(Msg::Events(events)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.stats.queue_lost.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => Err(WriterGone),
        }
    }

    /// Hands the writer new counters for the segments it finishes next. The queue-loss count is
    /// filled in by the writer itself.
    pub fn progress(&self, p: Progress) -> Result<(), WriterGone> {
        // Counters are small and must not be lost: wait for room.
        self.tx.send(Msg::Progress(p)).map_err(|_| WriterGone)
    }

    /// Hands the writer the sampling rates `--budget` set in force since the last call.
    pub fn sampling(&self, steps: Vec<SamplingStep>) -> Result<(), WriterGone> {
        if steps.is_empty() {
            return Ok(());
        }
        // Small, rare and needed to scale the counts: wait for room.
        self.tx.send(Msg::Sampling(steps)).map_err(|_| WriterGone)
    }

    /// Saves the flight recorder's window for `trigger`; the reply comes once the window's
    /// segments are kept (hard links: quick).
    pub fn trigger(&self, trigger: Trigger) -> Result<TriggerReply, WriterGone> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.tx
            .send(Msg::Trigger(trigger, tx))
            .map_err(|_| WriterGone)?;
        rx.recv().map_err(|_| WriterGone)
    }

    /// Live figures.
    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }

    /// True once the writer thread has stopped (after an error).
    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }

    /// Ends the recording: everything queued is written, then the last segment is finished.
    pub fn finish(self, reason: &str) -> io::Result<Summary> {
        let _ = self.tx.send(Msg::Finish(reason.to_string()));
        drop(self.tx);
        self.join
            .join()
            .map_err(|_| io::Error::other("the writer thread panicked"))?
    }
}

fn run(writer: &mut SegmentWriter, rx: Receiver<Msg>, stats: &WriterStats) -> io::Result<String> {
    let mut last_progress = Progress::default();
    loop {
        let msg = match rx.recv_timeout(TICK) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                writer.tick()?;
                stats.bytes.store(writer.bytes(), Ordering::Relaxed);
                continue;
            }
            // The drain side went away without saying why: treat it as an interruption.
            Err(RecvTimeoutError::Disconnected) => return Ok("interrupted".into()),
        };
        match msg {
            Msg::Events(events) => {
                writer.write(&events)?;
                stats.rows.store(writer.rows(), Ordering::Relaxed);
                stats.bytes.store(writer.bytes(), Ordering::Relaxed);
            }
            Msg::Progress(p) => last_progress = p,
            Msg::Sampling(steps) => writer.add_sampling_steps(&steps),
            Msg::Trigger(t, reply) => {
                let _ = reply.send(writer.trigger(t).map_err(|e| e.to_string()));
            }
            Msg::Finish(reason) => {
                last_progress.lost.writer_queue = stats.queue_lost.load(Ordering::Relaxed);
                writer.set_progress(&last_progress);
                return Ok(reason);
            }
        }
        last_progress.lost.writer_queue = stats.queue_lost.load(Ordering::Relaxed);
        writer.set_progress(&last_progress);
    }
}
