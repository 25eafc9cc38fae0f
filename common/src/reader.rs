//! Opening a recording (one file or a directory of segments) and refusing bad input clearly.
//!
//! Every check happens before any row is read: the Parquet magic at both ends, a footer size
//! that fits the file and a sane bound, tcptape metadata with a schema version this build reads,
//! the columns with their types, and row counts and column chunk ranges that the file can hold
//! (readers size their buffers from those claims). Errors are one line: `PATH: what is wrong`.

use crate::metadata::{MetaError, RecordingMeta};
use crate::schema::{arrow_schema, COLUMNS, V1_COLUMNS};
use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{parquet_to_arrow_schema, ProjectionMask};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The largest footer (Parquet metadata) accepted. A recording's footer is a few KB per row
/// group; a claim beyond this is a corrupt or hostile file, refused before allocating.
pub const MAX_FOOTER_BYTES: u64 = 64 << 20;

/// The most rows a row group may claim. The writer makes groups of
/// [`ROW_GROUP_ROWS`](crate::parquet_file::ROW_GROUP_ROWS); readers allocate column buffers from
/// this claim, so a larger one is refused rather than trusted.
pub const MAX_ROW_GROUP_ROWS: i64 = 4 * crate::parquet_file::ROW_GROUP_ROWS as i64;

/// Segment files in a recording directory are named `seg-NNNNNN.parquet`.
pub const SEGMENT_PREFIX: &str = "seg-";

/// What is wrong with an input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadErrorKind {
    /// It cannot be opened or read.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// The file is empty.
    #[error("empty file")]
    EmptyFile,
    /// The file does not start with the Parquet magic.
    #[error("not a Parquet file")]
    NotParquet,
    /// The file starts as Parquet but has no valid footer.
    #[error("truncated Parquet file (no footer: the writer did not finish it)")]
    Truncated,
    /// The footer is damaged or unreasonably large.
    #[error("corrupt Parquet metadata: {0}")]
    Corrupt(String),
    /// A directory without finished segments.
    #[error("no finished segments in this directory{0}")]
    NoSegments(&'static str),
    /// Parquet, but not written by tcptape.
    #[error("not a tcptape recording (Parquet without tcptape metadata)")]
    Foreign,
    /// A newer schema version.
    #[error("{0}")]
    Newer(MetaError),
    /// Metadata that does not parse.
    #[error("{0}")]
    BadMetadata(MetaError),
    /// A column is missing or has the wrong type.
    #[error("schema mismatch: {0}")]
    Schema(String),
    /// Segments of different recordings in one directory.
    #[error("segments of different recordings mixed in one directory ({0})")]
    Mixed(String),
    /// Rows that cannot be decoded.
    #[error("corrupt data: {0}")]
    Data(String),
}

/// An input that cannot be used, and which one.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct ReadError {
    /// The file or directory.
    pub path: PathBuf,
    /// What is wrong.
    pub kind: ReadErrorKind,
}

impl ReadError {
    fn new(path: &Path, kind: impl Into<ReadErrorKind>) -> ReadError {
        ReadError {
            path: path.to_path_buf(),
            kind: kind.into(),
        }
    }
}

/// One finished Parquet file of a recording.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Its path.
    pub path: PathBuf,
    /// Its metadata.
    pub meta: RecordingMeta,
    /// Rows it holds.
    pub rows: u64,
    /// Bytes on disk.
    pub bytes: u64,
    parquet: Arc<ParquetMetaData>,
}

/// An opened, validated recording.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The path given.
    pub path: PathBuf,
    /// Its segments in order (one for a single file).
    pub segments: Vec<Segment>,
    /// Temporary (unfinished) segment files found beside the finished ones.
    pub unfinished: Vec<PathBuf>,
}

impl Recording {
    /// Opens a `.parquet` file or a directory of segments.
    pub fn open(path: &Path) -> Result<Recording, ReadError> {
        let md = std::fs::metadata(path).map_err(|e| ReadError::new(path, e))?;
        if !md.is_dir() {
            let seg = open_segment(path)?;
            return Ok(Recording {
                path: path.to_path_buf(),
                segments: vec![seg],
                unfinished: vec![],
            });
        }
        let mut finished = Vec::new();
        let mut unfinished = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| ReadError::new(path, e))? {
            let entry = entry.map_err(|e| ReadError::new(path, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(SEGMENT_PREFIX) && name.ends_with(".parquet") {
                finished.push(entry.path());
            } else if name.starts_with(&format!(".{SEGMENT_PREFIX}")) && name.ends_with(".tmp") {
                unfinished.push(entry.path());
            }
        }
        finished.sort();
        unfinished.sort();
        if finished.is_empty() {
            let why = if unfinished.is_empty() {
                ""
            } else {
                " (only an unfinished one: the recorder stopped before finishing its first segment)"
            };
            return Err(ReadError::new(path, ReadErrorKind::NoSegments(why)));
        }
        let segments = finished
            .iter()
            .map(|p| open_segment(p))
            .collect::<Result<Vec<_>, _>>()?;
        let id = &segments[0].meta.recording_id;
        if let Some(other) = segments.iter().find(|s| &s.meta.recording_id != id) {
            return Err(ReadError::new(
                path,
                ReadErrorKind::Mixed(format!(
                    "{} and {}",
                    segments[0].path.display(),
                    other.path.display()
                )),
            ));
        }
        Ok(Recording {
            path: path.to_path_buf(),
            segments,
            unfinished,
        })
    }

    /// The recording's metadata: fixed facts from the first segment, cumulative counters and the
    /// end (time, stop reason) from the last. When older segments rolled out of a `--keep`
    /// window, the start is where the first segment left on disk starts.
    pub fn meta(&self) -> RecordingMeta {
        let first = &self.segments[0].meta;
        let last = &self.segments[self.segments.len() - 1].meta;
        let start_ns = match first.segment.start_ns {
            Some(s) if first.segment.index > 0 => s.max(first.start_ns),
            _ => first.start_ns,
        };
        let mut sampling = first.sampling.clone();
        sampling.steps = crate::metadata::Sampling::join_steps(
            self.segments
                .iter()
                .map(|s| s.meta.sampling.steps.as_slice()),
        );
        RecordingMeta {
            start_ns,
            end_ns: last.end_ns,
            lost: last.lost.clone(),
            seen: last.seen.clone(),
            segment: last.segment.clone(),
            sampling,
            cgroups: last.cgroups.clone(),
            ..first.clone()
        }
    }

    /// Segments older than the first one here that a `--keep` window deleted, with that window;
    /// `None` when nothing rolled out.
    pub fn rolled_out(&self) -> Option<(u32, String)> {
        let first = &self.segments[0].meta.segment;
        let last = &self.segments[self.segments.len() - 1].meta.segment;
        (first.index > 0 && last.rolled_out > 0)
            .then(|| (first.index, last.keep.clone().unwrap_or_default()))
    }

    /// True when the recorder finished the recording (its last segment says so).
    pub fn closed(&self) -> bool {
        self.segments.last().is_some_and(|s| s.meta.segment.last)
    }

    /// Total rows.
    pub fn rows(&self) -> u64 {
        self.segments.iter().map(|s| s.rows).sum()
    }

    /// Total bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// The Parquet files, in order.
    pub fn files(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    /// Reads every row, optionally only some columns (by name), as batches in file order.
    pub fn batches(
        &self,
        columns: Option<&[&str]>,
    ) -> impl Iterator<Item = Result<RecordBatch, ReadError>> + '_ {
        let columns: Option<Vec<String>> =
            columns.map(|c| c.iter().map(|s| s.to_string()).collect());
        self.segments
            .iter()
            .flat_map(move |seg| segment_batches(seg, columns.as_deref()))
    }
}

fn segment_batches<'a>(
    seg: &'a Segment,
    columns: Option<&[String]>,
) -> Box<dyn Iterator<Item = Result<RecordBatch, ReadError>> + 'a> {
    let fail = |kind: ReadErrorKind| -> Box<dyn Iterator<Item = _>> {
        Box::new(std::iter::once(Err(ReadError::new(&seg.path, kind))))
    };
    let file = match File::open(&seg.path) {
        Ok(f) => f,
        Err(e) => return fail(e.into()),
    };
    let options = parquet::arrow::arrow_reader::ArrowReaderOptions::new();
    let meta = match parquet::arrow::arrow_reader::ArrowReaderMetadata::try_new(
        seg.parquet.clone(),
        options,
    ) {
        Ok(m) => m,
        Err(e) => return fail(ReadErrorKind::Corrupt(e.to_string())),
    };
    let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta);
    if let Some(cols) = columns {
        let mask =
            ProjectionMask::columns(builder.parquet_schema(), cols.iter().map(|s| s.as_str()));
        builder = builder.with_projection(mask);
    }
    match contained(|| builder.build()) {
        Ok(Ok(reader)) => Box::new(ContainedBatches {
            reader: Some(reader),
            path: &seg.path,
        }),
        Ok(Err(e)) => fail(ReadErrorKind::Data(e.to_string())),
        Err(panic) => fail(ReadErrorKind::Data(panic)),
    }
}

/// Batches of one file; decoder failures (errors or panics) end the iteration with one error.
struct ContainedBatches<'a> {
    reader: Option<parquet::arrow::arrow_reader::ParquetRecordBatchReader>,
    path: &'a Path,
}

impl Iterator for ContainedBatches<'_> {
    type Item = Result<RecordBatch, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let reader = self.reader.as_mut()?;
        let item = match contained(|| reader.next()) {
            Ok(item) => item?.map_err(|e| e.to_string()),
            Err(panic) => Err(panic),
        };
        if item.is_err() {
            self.reader = None;
        }
        Some(item.map_err(|m| ReadError::new(self.path, ReadErrorKind::Data(m))))
    }
}

thread_local! {
    static DECODING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs Parquet decoding so that a panic inside the decoder (hostile bytes can trigger some in
/// the `parquet` crate, e.g. an overflowing shift in its RLE decoder) becomes an error message
/// instead of ending the process.
fn contained<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    DECODING.with(|d| d.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    DECODING.with(|d| d.set(false));
    r.map_err(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".into());
        format!("the Parquet decoder failed ({msg})")
    })
}

/// Keeps panics that [`Recording`] contains from printing a backtrace: the caller gets a
/// one-line error instead. Other panics still reach the previous hook. Call once at start-up.
pub fn quiet_contained_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !DECODING.with(|d| d.get()) {
                previous(info);
            }
        }));
    });
}

/// Opens and validates one Parquet file of a recording.
pub fn open_segment(path: &Path) -> Result<Segment, ReadError> {
    let err = |kind: ReadErrorKind| ReadError::new(path, kind);
    let mut file = File::open(path).map_err(|e| err(e.into()))?;
    let len = file.metadata().map_err(|e| err(e.into()))?.len();
    if len == 0 {
        return Err(err(ReadErrorKind::EmptyFile));
    }
    let mut head = [0u8; 4];
    let got = read_up_to(&mut file, &mut head).map_err(|e| err(e.into()))?;
    if got < 4 || &head != b"PAR1" {
        return Err(err(ReadErrorKind::NotParquet));
    }
    if len < 12 {
        return Err(err(ReadErrorKind::Truncated));
    }
    let mut tail = [0u8; 8];
    file.seek(SeekFrom::Start(len - 8))
        .map_err(|e| err(e.into()))?;
    file.read_exact(&mut tail).map_err(|e| err(e.into()))?;
    if &tail[4..] != b"PAR1" {
        return Err(err(ReadErrorKind::Truncated));
    }
    let footer = u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")) as u64;
    if footer > len - 12 {
        return Err(err(ReadErrorKind::Corrupt(format!(
            "footer claims {footer} bytes in a {len}-byte file"
        ))));
    }
    if footer > MAX_FOOTER_BYTES {
        return Err(err(ReadErrorKind::Corrupt(format!(
            "footer of {footer} bytes exceeds the {MAX_FOOTER_BYTES}-byte limit"
        ))));
    }
    let parquet = contained(|| ParquetMetaDataReader::new().parse_and_finish(&file))
        .map_err(|m| err(ReadErrorKind::Corrupt(m)))?
        .map_err(|e| err(ReadErrorKind::Corrupt(e.to_string())))?;
    let fmd = parquet.file_metadata();
    let kvs = fmd
        .key_value_metadata()
        .map(|v| v.as_slice())
        .unwrap_or(&[]);
    let meta =
        RecordingMeta::from_key_values(kvs.iter().map(|kv| (kv.key.as_str(), kv.value.as_deref())))
            .map_err(|e| match e {
                MetaError::Foreign => err(ReadErrorKind::Foreign),
                e @ MetaError::Newer(_) => err(ReadErrorKind::Newer(e)),
                e => err(ReadErrorKind::BadMetadata(e)),
            })?;
    let schema = parquet_to_arrow_schema(fmd.schema_descr(), fmd.key_value_metadata())
        .map_err(|e| err(ReadErrorKind::Schema(e.to_string())))?;
    check_columns(&schema).map_err(|m| err(ReadErrorKind::Schema(m)))?;
    let rows = u64::try_from(fmd.num_rows()).map_err(|_| {
        err(ReadErrorKind::Corrupt(format!(
            "negative row count {}",
            fmd.num_rows()
        )))
    })?;
    let data_end = len - 8 - footer;
    check_row_groups(&parquet, data_end).map_err(|m| err(ReadErrorKind::Corrupt(m)))?;
    let declared: i64 = parquet.row_groups().iter().map(|rg| rg.num_rows()).sum();
    if declared != fmd.num_rows() {
        return Err(err(ReadErrorKind::Corrupt(format!(
            "row groups hold {declared} rows, file claims {}",
            fmd.num_rows()
        ))));
    }
    Ok(Segment {
        path: path.to_path_buf(),
        meta,
        rows,
        bytes: len,
        parquet: Arc::new(parquet),
    })
}

/// Refuses row counts and column chunk ranges no real recording has: a row group over
/// [`MAX_ROW_GROUP_ROWS`] or negative, a column chunk with more values than its group has rows,
/// or one whose bytes lie outside the data part of the file (`..data_end`).
fn check_row_groups(parquet: &ParquetMetaData, data_end: u64) -> Result<(), String> {
    for (i, rg) in parquet.row_groups().iter().enumerate() {
        let rows = rg.num_rows();
        if !(0..=MAX_ROW_GROUP_ROWS).contains(&rows) {
            return Err(format!(
                "row group {i} claims {rows} rows (at most {MAX_ROW_GROUP_ROWS} are accepted)"
            ));
        }
        for c in rg.columns() {
            let name = c.column_path().string();
            if !(0..=rows).contains(&c.num_values()) {
                return Err(format!(
                    "column '{name}' of row group {i} claims {} values for {rows} rows",
                    c.num_values()
                ));
            }
            // Not `byte_range()`: it asserts on negative claims.
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let size = c.compressed_size();
            let end = u64::try_from(start)
                .ok()
                .zip(u64::try_from(size).ok())
                .and_then(|(a, b)| a.checked_add(b));
            if end.is_none_or(|end| end > data_end) {
                return Err(format!(
                    "column '{name}' of row group {i} claims bytes {start}+{size}, past the data ({data_end} bytes)"
                ));
            }
        }
    }
    Ok(())
}

fn check_columns(schema: &arrow_schema::Schema) -> Result<(), String> {
    let expected = arrow_schema();
    for (i, (name, ty, _, _)) in COLUMNS.iter().enumerate() {
        let field = match schema.field_with_name(name) {
            Ok(f) => f,
            // Added in version 2: a version 1 recording has none of them.
            Err(_) if i >= V1_COLUMNS => continue,
            Err(_) => return Err(format!("column '{name}' is missing")),
        };
        if field.data_type() != ty {
            return Err(format!(
                "column '{name}' is {} (expected {ty})",
                field.data_type()
            ));
        }
    }
    debug_assert_eq!(expected.fields().len(), COLUMNS.len());
    Ok(())
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
