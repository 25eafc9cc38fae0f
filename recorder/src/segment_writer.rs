//! The segment writer: batches of raw events → finished Parquet segments.
//!
//! A recording is written as segments `seg-NNNNNN.parquet` in a directory. A segment is finished
//! (footer, fsync, rename from its temporary name) when it has been open for `segment_secs` of
//! wall-clock or event time, or reaches `segment_bytes`, so a killed recorder loses at most the
//! open segment. When the output is a single `.parquet` file, the segments live in
//! `FILE.segments/` while recording and are merged into `FILE` at the end; a killed recorder
//! leaves that directory behind, readable as is.

use crate::cgroup_names::CgroupNames;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tcptape_common::anonymize::Anonymizer;
use tcptape_common::encode::BatchEncoder;
use tcptape_common::metadata::{Lost, RecordingMeta, Sampling, SamplingStep, SegmentInfo, Trigger};
use tcptape_common::parquet_file::{check_output_dir, parent_dir, sync_parent, ParquetFileWriter};
use tcptape_common::reader::{Recording, SEGMENT_PREFIX};
use tcptape_common::RawEvent;

/// Where a recording goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// One `.parquet` file (segments are merged into it at the end).
    File(PathBuf),
    /// A directory of segments.
    Directory(PathBuf),
}

impl Output {
    /// A path ending in `.parquet` is a file; anything else a directory.
    pub fn from_path(path: &Path) -> Output {
        if path.extension().is_some_and(|e| e == "parquet") {
            Output::File(path.to_path_buf())
        } else {
            Output::Directory(path.to_path_buf())
        }
    }

    /// The directory segments are written to.
    pub fn segment_dir(&self) -> PathBuf {
        match self {
            Output::Directory(d) => d.clone(),
            Output::File(f) => {
                let mut s = f.as_os_str().to_owned();
                s.push(".segments");
                PathBuf::from(s)
            }
        }
    }

    /// The directories the writer creates files in: the segment directory, and for a file the
    /// directory it is merged into.
    pub fn written_dirs(&self) -> Vec<PathBuf> {
        match self {
            Output::Directory(d) => vec![d.clone()],
            Output::File(f) => {
                vec![self.segment_dir(), parent_dir(f).to_path_buf()]
            }
        }
    }

    /// The path the user asked for.
    pub fn path(&self) -> &Path {
        match self {
            Output::File(p) | Output::Directory(p) => p,
        }
    }
}

/// When segments are finished.
#[derive(Debug, Clone, Copy)]
pub struct SegmentLimits {
    /// Finish a segment after this long (wall-clock or event time).
    pub segment_secs: Duration,
    /// Finish a segment at this size.
    pub segment_bytes: u64,
}

impl Default for SegmentLimits {
    fn default() -> Self {
        SegmentLimits {
            segment_secs: Duration::from_secs(5),
            segment_bytes: 64 << 20,
        }
    }
}

/// Counters that the capture side updates and every finished segment records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Events lost so far.
    pub lost: Lost,
    /// Events seen per stage so far.
    pub seen: BTreeMap<String, u64>,
    /// Monotonic time the recording has covered up to.
    pub end_ns: u64,
}

/// What a finished recording holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The recording's path.
    pub path: PathBuf,
    /// Rows written.
    pub rows: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Segments written (1 for a merged file).
    pub segments: u32,
    /// Segments deleted by the rolling window (`--keep`).
    pub rolled_out: u32,
}

struct OpenSegment {
    writer: ParquetFileWriter,
    opened: Instant,
    first_ts: Option<u64>,
    /// Where its data starts: the previous segment's end.
    start_ns: u64,
}

/// A rolling window (`--keep`): the finished segments on disk, oldest first, and how many were
/// deleted.
struct Window {
    keep: crate::cli::KeepWindow,
    /// (path, bytes, end time) of each finished segment still on disk.
    kept: std::collections::VecDeque<(PathBuf, u64, u64)>,
    rolled_out: u32,
}

/// Writes a recording as segments.
pub struct SegmentWriter {
    output: Output,
    dir: PathBuf,
    encoder: BatchEncoder,
    meta: RecordingMeta,
    limits: SegmentLimits,
    open: Option<OpenSegment>,
    next_index: u32,
    finished_bytes: u64,
    rows: u64,
    last_ts: u64,
    anonymizer: Option<Anonymizer>,
    stopped: Option<String>,
    window: Option<Window>,
    flight: Option<Flight>,
    /// Under `--budget`, the sampling rates in force since the open segment's start.
    sampling_steps: Vec<SamplingStep>,
    /// The cgroups the events name, looked up as they appear.
    cgroups: CgroupNames,
}

/// A flight recorder: on a trigger the window's segments are kept in `saved/`, and the
/// segments of the next `after` with them.
struct Flight {
    after: Duration,
    max_saved: usize,
    saving: Option<Saving>,
}

/// A window being saved.
struct Saving {
    dir: PathBuf,
    until: Instant,
    trigger: Trigger,
}

/// The directory saved windows go to, inside the recording's directory.
pub const SAVED_DIR: &str = "saved";

/// A trigger reason as part of a directory name: letters, digits, `.`, `-`, `_`, 40 at most.
fn name_part(reason: &str) -> String {
    reason
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect()
}

/// Space kept free on the output's file system; below it the recording stops cleanly.
pub const MIN_FREE_BYTES: u64 = 4 << 20;

/// Free bytes for unprivileged writers on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

impl SegmentWriter {
    /// Prepares the output: creates the segment directory (0700). Refuses an output that
    /// already exists, so no recording is ever overwritten or mixed with another.
    pub fn create(
        output: Output,
        meta: RecordingMeta,
        encoder: BatchEncoder,
        limits: SegmentLimits,
    ) -> io::Result<SegmentWriter> {
        let cgroups = CgroupNames::new(tcptape_common::metadata::host::cgroup2_mount())
            .knowing(&meta.cgroups);
        if std::fs::symlink_metadata(output.path()).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} already exists; choose a new path",
                    output.path().display()
                ),
            ));
        }
        check_output_dir(output.path())?;
        let dir = output.segment_dir();
        let mut b = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&dir).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
        })?;
        Ok(SegmentWriter {
            last_ts: meta.start_ns,
            output,
            dir,
            encoder,
            meta,
            limits,
            open: None,
            next_index: 0,
            finished_bytes: 0,
            rows: 0,
            anonymizer: None,
            stopped: None,
            window: None,
            flight: None,
            sampling_steps: Vec::new(),
            cgroups,
        })
    }

    /// Makes the rolling window a flight recorder: [`SegmentWriter::trigger`] keeps the window
    /// and the next `after`, at most `max_saved` saved windows (the oldest deleted first).
    pub fn set_flight(&mut self, after: Duration, max_saved: usize) -> io::Result<()> {
        if self.window.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "triggers need a rolling window (--keep)",
            ));
        }
        self.flight = Some(Flight {
            after,
            max_saved: max_saved.max(1),
            saving: None,
        });
        Ok(())
    }

    /// Saves the window: its finished segments are hard-linked into `saved/TIME-REASON/` (no
    /// copy), and so are the segments finished during the next `after`; then the saved set is
    /// closed with a last segment that records `trigger`. Returns the directory, or `None` while
    /// an earlier trigger's window is still being saved.
    pub fn trigger(&mut self, mut trigger: Trigger) -> io::Result<Option<PathBuf>> {
        let (Some(flight), Some(window)) = (&mut self.flight, &self.window) else {
            return Err(io::Error::other("this recording has no triggers"));
        };
        if flight.saving.is_some() {
            return Ok(None);
        }
        trigger.after_ns = flight.after.as_nanos() as u64;
        let root = self.dir.join(SAVED_DIR);
        let mut b = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.recursive(true).create(&root)?;
        let wall = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace(':', "");
        let mut dir = root.join(format!("{wall}-{}", name_part(&trigger.reason)));
        let mut n = 1;
        while dir.exists() {
            n += 1;
            dir = root.join(format!("{wall}-{}-{n}", name_part(&trigger.reason)));
        }
        b.recursive(false).create(&dir)?;
        for (path, _, _) in &window.kept {
            std::fs::hard_link(path, dir.join(path.file_name().expect("a segment file")))?;
        }
        // The cap: the oldest saved windows go first.
        let mut saved: Vec<PathBuf> = std::fs::read_dir(&root)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        saved.sort();
        while saved.len() > flight.max_saved {
            let old = saved.remove(0);
            std::fs::remove_dir_all(&old)?;
            tcptape_common::note!(
                "deleted the oldest saved window {} (at most {} are kept)",
                old.display(),
                flight.max_saved
            );
        }
        flight.saving = Some(Saving {
            dir: dir.clone(),
            until: Instant::now() + flight.after,
            trigger,
        });
        Ok(Some(dir))
    }

    /// Closes the window being saved once its `after` is over (or `now` when the recording
    /// ends): the open segment is finished (and linked), and a last segment recording the
    /// trigger is written into the saved set.
    fn close_saving(&mut self, now: bool) -> io::Result<()> {
        let due = self
            .flight
            .as_ref()
            .and_then(|f| f.saving.as_ref())
            .is_some_and(|s| now || Instant::now() >= s.until);
        if !due {
            return Ok(());
        }
        self.finish_segment(false, None)?;
        let saving = self
            .flight
            .as_mut()
            .and_then(|f| f.saving.take())
            .expect("checked above");
        let path = saving
            .dir
            .join(format!("{SEGMENT_PREFIX}{:06}.parquet", self.next_index));
        let meta = RecordingMeta {
            segment: SegmentInfo {
                trigger: Some(saving.trigger.clone()),
                ..self.segment_info(true, Some("trigger"), self.meta.end_ns)
            },
            ..self.meta.clone()
        };
        ParquetFileWriter::create(&path)?.finish(&meta)?;
        tcptape_common::note!(
            "saved the window of trigger '{}' to {}",
            saving.trigger.reason,
            saving.dir.display()
        );
        Ok(())
    }

    /// Keeps only the newest `keep` of the recording on disk: before each segment is finished,
    /// the oldest finished ones that fall out of the window are deleted (never the newest).
    /// Segments are made small enough (an eighth of a size window) that the open one adds
    /// little to it. Only for a directory output.
    pub fn set_keep(&mut self, keep: crate::cli::KeepWindow) -> io::Result<()> {
        if matches!(self.output, Output::File(_)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--keep needs a directory output (a path not ending in .parquet)",
            ));
        }
        if let crate::cli::KeepWindow::Size(b) = keep {
            self.limits.segment_bytes = self.limits.segment_bytes.min((b / 8).max(64 << 10));
        }
        self.window = Some(Window {
            keep,
            kept: Default::default(),
            rolled_out: 0,
        });
        Ok(())
    }

    /// Deletes the oldest finished segments that the window no longer holds once `adding` more
    /// bytes are finished, ending at `end_ns`.
    fn roll(&mut self, adding: u64, end_ns: u64) -> io::Result<()> {
        let Some(w) = &mut self.window else {
            return Ok(());
        };
        loop {
            // Every finished segment is in the window (it is set before the first one), so the
            // finished bytes are the window's.
            let on_disk = self.finished_bytes + adding;
            let out = match (w.keep, w.kept.front()) {
                (_, None) => false,
                (crate::cli::KeepWindow::Size(b), Some(_)) => on_disk > b,
                (crate::cli::KeepWindow::Time(d), Some(front)) => {
                    front.2.saturating_add(d.as_nanos() as u64) < end_ns
                }
            };
            if !out {
                return Ok(());
            }
            let (path, bytes, _) = w.kept.pop_front().expect("checked above");
            std::fs::remove_file(&path).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot delete {}: {e}", path.display()))
            })?;
            self.finished_bytes -= bytes;
            w.rolled_out += 1;
        }
    }

    /// Adds sampling rates that `--budget` set in force, in time order.
    pub fn add_sampling_steps(&mut self, steps: &[SamplingStep]) {
        self.sampling_steps.extend_from_slice(steps);
    }

    /// Updates the counters the next finished segment records.
    pub fn set_progress(&mut self, p: &Progress) {
        self.meta.lost = p.lost.clone();
        self.meta.seen = p.seen.clone();
        self.meta.end_ns = self.meta.end_ns.max(p.end_ns);
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes on disk so far, including the open segment's estimate.
    pub fn bytes(&self) -> u64 {
        self.finished_bytes + self.open.as_ref().map_or(0, |o| o.writer.approx_bytes())
    }

    /// Writes a batch of events, finishing the open segment when it is due. When the disk is
    /// nearly full, the open segment is finished as the recording's last one (stop reason
    /// `disk-full`) and an error of kind `StorageFull` is returned; call nothing after that.
    pub fn write(&mut self, events: &[RawEvent]) -> io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        if let Some(reason) = &self.stopped {
            return Err(io::Error::other(format!(
                "the recording already stopped ({reason})"
            )));
        }
        self.cgroups.note(events);
        let batch = self.encoder.encode(events);
        let batch = match &self.anonymizer {
            Some(a) => a.anonymize_batch(&batch).map_err(io::Error::other)?,
            None => batch,
        };
        if self.open.is_none() {
            self.guard(|w| w.open_segment())?;
        }
        self.guard(|w| w.open.as_mut().expect("opened above").writer.write(&batch))?;
        let seg = self.open.as_mut().expect("opened above");
        seg.first_ts.get_or_insert(events[0].ts_ns);
        self.rows += batch.num_rows() as u64;
        self.last_ts = self
            .last_ts
            .max(events.iter().map(|e| e.ts_ns).max().unwrap_or(0));
        self.meta.end_ns = self.meta.end_ns.max(self.last_ts);
        self.check_space()?;
        self.tick()
    }

    /// Anonymizes every batch before it is written, and records that in the metadata.
    pub fn set_anonymizer(&mut self, anonymizer: Anonymizer) {
        self.meta = anonymizer.anonymize_meta(&self.meta);
        self.anonymizer = Some(anonymizer);
    }

    /// Runs an I/O step; on failure the open segment's temporary file is removed (it has no
    /// footer, so no reader could use it) to give the space back.
    fn guard<T>(&mut self, step: impl FnOnce(&mut Self) -> io::Result<T>) -> io::Result<T> {
        step(self).map_err(|e| {
            if let Some(seg) = self.open.take() {
                let _ = seg.writer.abandon();
            }
            self.stopped = Some("write error".into());
            let full = e.raw_os_error() == Some(libc::ENOSPC) || e.kind() == io::ErrorKind::StorageFull;
            if full {
                io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!("disk full in {}: the open segment was lost; {} finished segment(s) are intact", self.dir.display(), self.next_index),
                )
            } else {
                e
            }
        })
    }

    /// Stops cleanly before the disk is full: finishing the open segment needs about as much
    /// space again as it has buffered, plus the footer.
    fn check_space(&mut self) -> io::Result<()> {
        let Some(free) = free_bytes(&self.dir) else {
            return Ok(());
        };
        let pending = self.open.as_ref().map_or(0, |o| o.writer.approx_bytes());
        if free >= pending.saturating_mul(2) + MIN_FREE_BYTES {
            return Ok(());
        }
        self.guard(|w| w.finish_segment(true, Some("disk-full")))?;
        self.stopped = Some("disk-full".into());
        Err(io::Error::new(
            io::ErrorKind::StorageFull,
            format!(
                "disk nearly full in {} ({} free): recording stopped; all {} segment(s) are finished and readable",
                self.dir.display(),
                bytesize::ByteSize::b(free),
                self.next_index
            ),
        ))
    }

    /// Finishes the open segment if it is old or large enough. Call it periodically when no
    /// events arrive.
    pub fn tick(&mut self) -> io::Result<()> {
        if self.stopped.is_some() {
            return Ok(());
        }
        self.guard(|w| w.close_saving(false))?;
        let Some(seg) = &self.open else { return Ok(()) };
        let span = Duration::from_nanos(
            self.last_ts
                .saturating_sub(seg.first_ts.unwrap_or(self.last_ts)),
        );
        let due = seg.opened.elapsed() >= self.limits.segment_secs
            || span >= self.limits.segment_secs
            || seg.writer.approx_bytes() >= self.limits.segment_bytes;
        if due {
            self.guard(|w| w.finish_segment(false, None))?;
        }
        Ok(())
    }

    fn open_segment(&mut self) -> io::Result<()> {
        let path = self
            .dir
            .join(format!("{SEGMENT_PREFIX}{:06}.parquet", self.next_index));
        let writer = ParquetFileWriter::create(&path)?;
        self.open = Some(OpenSegment {
            writer,
            opened: Instant::now(),
            first_ts: None,
            start_ns: self.meta.end_ns.max(self.meta.start_ns),
        });
        Ok(())
    }

    /// The place of the segment finished next: its index, whether it ends the recording and why,
    /// where its data starts, and the rolling window's state.
    fn segment_info(&self, last: bool, stop_reason: Option<&str>, start_ns: u64) -> SegmentInfo {
        SegmentInfo {
            index: self.next_index,
            last,
            stop_reason: stop_reason.map(str::to_string),
            start_ns: Some(start_ns),
            keep: self.window.as_ref().map(|w| w.keep.to_string()),
            rolled_out: self.window.as_ref().map_or(0, |w| w.rolled_out),
            trigger: None,
        }
    }

    fn finish_segment(&mut self, last: bool, stop_reason: Option<&str>) -> io::Result<()> {
        if self.open.is_none() {
            if !last {
                return Ok(());
            }
            // The last segment carries the final counters even when it has no rows.
            self.open_segment()?;
        }
        let approx = self.open.as_ref().map_or(0, |o| o.writer.approx_bytes());
        self.roll(approx, self.meta.end_ns)?;
        let seg = self.open.take().expect("checked above");
        self.meta.segment = self.segment_info(last, stop_reason, seg.start_ns);
        // Each segment holds the rates of its own span, so a rolling window's segments carry
        // what they need and no segment's metadata grows with the recording's age.
        let steps = Sampling {
            steps: std::mem::take(&mut self.sampling_steps),
            ..Default::default()
        };
        self.meta.sampling.steps = steps.steps_from(seg.start_ns);
        self.meta.cgroups = self.cgroups.names();
        // The next segment starts where this one's data ends.
        self.sampling_steps = steps.steps_from(self.meta.end_ns);
        let (path, size) = seg.writer.finish(&self.meta)?;
        self.finished_bytes += size;
        self.next_index += 1;
        if let Some(s) = self.flight.as_ref().and_then(|f| f.saving.as_ref()) {
            std::fs::hard_link(&path, s.dir.join(path.file_name().expect("a segment file")))?;
        }
        if let Some(w) = &mut self.window {
            w.kept.push_back((path, size, self.meta.end_ns));
        }
        Ok(())
    }

    /// Ends the recording: finishes the open segment as the last one, and for a file output
    /// merges the segments into the file.
    pub fn finish(mut self, stop_reason: &str) -> io::Result<Summary> {
        if let Some(reason) = &self.stopped {
            return Err(io::Error::other(format!(
                "the recording already stopped ({reason})"
            )));
        }
        // A window being saved is closed first: it ends where the recording ends.
        self.guard(|w| w.close_saving(true))?;
        self.guard(|w| w.finish_segment(true, Some(stop_reason)))?;
        match self.output.clone() {
            Output::Directory(path) => Ok(Summary {
                path,
                rows: self.rows,
                bytes: self.finished_bytes,
                segments: self.next_index,
                rolled_out: self.window.as_ref().map_or(0, |w| w.rolled_out),
            }),
            Output::File(path) => self.merge_into(&path),
        }
    }

    /// Copies the finished segments into one file. On failure (e.g. no room for the copy) the
    /// segment directory is left as it is: a complete, readable recording.
    fn merge_into(self, path: &Path) -> io::Result<Summary> {
        let rec = Recording::open(&self.dir).map_err(io::Error::other)?;
        let meta = rec.meta();
        let mut w = ParquetFileWriter::create(path)?;
        let copied = (|| {
            for batch in rec.batches(None) {
                w.write(&batch.map_err(io::Error::other)?)?;
            }
            Ok::<_, io::Error>(())
        })();
        let rows = w.rows();
        let finished = copied.and_then(|()| {
            w.finish(&RecordingMeta {
                segment: SegmentInfo {
                    index: 0,
                    start_ns: None,
                    ..meta.segment.clone()
                },
                ..meta
            })
        });
        let (path, bytes) = finished.map_err(|e| {
            let tmp = path.with_file_name(format!(
                ".{}.tmp",
                path.file_name().unwrap_or_default().to_string_lossy()
            ));
            let _ = std::fs::remove_file(tmp);
            io::Error::new(
                e.kind(),
                format!(
                    "the recording is complete in {}, but merging it into {} failed: {e}",
                    self.dir.display(),
                    path.display()
                ),
            )
        })?;
        for f in rec.files() {
            std::fs::remove_file(f)?;
        }
        std::fs::remove_dir(&self.dir)?;
        sync_parent(&path)?;
        Ok(Summary {
            path,
            rows,
            bytes,
            segments: 1,
            rolled_out: 0,
        })
    }
}
