//! Writing one Parquet file of a recording: encodings chosen per column, metadata added at the
//! end, and a crash-safe finish (temporary name → footer → fsync → rename → fsync directory).

use crate::metadata::RecordingMeta;
use crate::schema::{arrow_schema, COLUMNS, DELTA_COLUMNS, DICTIONARY_COLUMNS};
use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// zstd level: -1, zstd's first fast level. Level 1 took 2.6 % more writer instructions for 3.5 %
/// fewer bytes, level 3 (zstd's default) 9 % more writer CPU than level 1 for 3 % fewer bytes,
/// and the writer shares the host with the traffic it records.
const ZSTD_LEVEL: i32 = -1;
/// Rows per row group. Large groups compress better; segments bound the size anyway.
pub const ROW_GROUP_ROWS: usize = 1 << 20;
/// Rows the column writers take at a time (parquet's default is 1024). The recorder hands over
/// 8192 events per batch; whole batches at once took 4 % less writer time.
const WRITE_BATCH_ROWS: usize = 8192;

/// Writer properties of every recording file: zstd, dictionary encoding for the columns in
/// [`DICTIONARY_COLUMNS`], delta encoding for timestamps, page statistics on `ts_ns` so a reader can skip pages
/// outside a time range. No other column has statistics: min and max of names, addresses,
/// sockets or ports prune nothing (every row group holds every stage and most flows), and
/// computing them was 7 % of the writer's time for the text columns and 4 % for the rest.
pub fn writer_properties() -> WriterProperties {
    let mut b = WriterProperties::builder()
        // Version 1 data pages: their levels are compressed with the values, and integer columns
        // without a dictionary are plain, not delta-packed. Against version 2 pages: the same
        // writer instructions, 20 % fewer bytes on disk; every reader of Parquet reads them.
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(ZSTD_LEVEL).expect("valid level"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_write_batch_size(WRITE_BATCH_ROWS)
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_created_by(format!("tcptape {}", env!("CARGO_PKG_VERSION")));
    for (name, _, _, _) in COLUMNS {
        let path = ColumnPath::from(*name);
        if DICTIONARY_COLUMNS.contains(name) {
            b = b.set_column_dictionary_enabled(path, true);
        } else if DELTA_COLUMNS.contains(name) {
            b = b.set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
        }
    }
    b = b.set_column_statistics_enabled(ColumnPath::from("ts_ns"), EnabledStatistics::Page);
    b.build()
}

/// One recording file being written under a temporary name.
pub struct ParquetFileWriter {
    tmp_path: PathBuf,
    final_path: PathBuf,
    writer: ArrowWriter<File>,
    rows: u64,
}

impl ParquetFileWriter {
    /// Starts a file that will be named `final_path` once finished. The temporary file is
    /// `.NAME.tmp` beside it, created exclusively with mode 0600. An existing `final_path` is
    /// refused: a recording is never overwritten.
    pub fn create(final_path: &Path) -> io::Result<ParquetFileWriter> {
        if std::fs::symlink_metadata(final_path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists; choose a new path", final_path.display()),
            ));
        }
        check_output_dir(final_path)?;
        let name = final_path.file_name().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "output has no file name")
        })?;
        let tmp_path = final_path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        }
        let file = opts.open(&tmp_path)?;
        let writer = ArrowWriter::try_new(file, arrow_schema(), Some(writer_properties()))
            .map_err(io::Error::other)?;
        Ok(ParquetFileWriter {
            tmp_path,
            final_path: final_path.to_path_buf(),
            writer,
            rows: 0,
        })
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> io::Result<()> {
        self.writer.write(batch).map_err(parquet_to_io)?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes this file will take, roughly: flushed bytes plus the encoded size of the open row
    /// group.
    pub fn approx_bytes(&self) -> u64 {
        (self.writer.bytes_written() + self.writer.in_progress_size()) as u64
    }

    /// Writes the metadata and footer, syncs, and gives the file its final name. Returns the
    /// final path and size in bytes. On failure the temporary file is removed: without its
    /// footer no reader could use it, and the space may be what is missing.
    pub fn finish(mut self, meta: &RecordingMeta) -> io::Result<(PathBuf, u64)> {
        for (k, v) in meta.to_key_values() {
            self.writer.append_key_value_metadata(KeyValue::new(k, v));
        }
        let tmp = self.tmp_path.clone();
        let written = self
            .writer
            .into_inner()
            .map_err(parquet_to_io)
            .and_then(|file| {
                file.sync_all()?;
                file.metadata().map(|m| m.len())
            });
        let size = match written {
            Ok(size) => size,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        rename_no_replace(&tmp, &self.final_path).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                // Someone created the name while the file was written: keep both.
                io::Error::new(
                    e.kind(),
                    format!(
                        "{} appeared while the recording was written; it is kept as {}",
                        self.final_path.display(),
                        tmp.display()
                    ),
                )
            } else {
                e
            }
        })?;
        sync_parent(&self.final_path)?;
        Ok((self.final_path, size))
    }

    /// Removes the temporary file (a segment with no rows, or one that failed).
    pub fn abandon(self) -> io::Result<()> {
        let tmp = self.tmp_path.clone();
        drop(self.writer);
        std::fs::remove_file(tmp)
    }

    /// The temporary path being written.
    pub fn tmp_path(&self) -> &Path {
        &self.tmp_path
    }
}

fn parquet_to_io(e: parquet::errors::ParquetError) -> io::Error {
    match e {
        parquet::errors::ParquetError::External(inner) => match inner.downcast::<io::Error>() {
            Ok(io) => *io,
            Err(other) => io::Error::other(other),
        },
        other => io::Error::other(other),
    }
}

/// Refuses an output in a directory every user may write to that lacks the sticky bit: any user
/// could rename or replace the recording, or swap a directory the writer is filling for a symlink.
/// (In a sticky directory such as /tmp, names are created exclusively and never followed.)
pub fn check_output_dir(path: &Path) -> io::Result<()> {
    let dir = parent_dir(path);
    let meta = std::fs::metadata(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o002 != 0 && mode & 0o1000 == 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is writable by every user and not sticky, so another user could replace the recording; choose another directory",
                    dir.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Renames `from` to `to` unless `to` exists, atomically: a recording is never overwritten, even
/// by a name created after it was checked.
pub fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
    };
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: valid NUL-terminated paths relative to the working directory.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        // Filesystems without RENAME_NOREPLACE: link() also refuses an existing name.
        Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        _ => Err(err),
    }
}

/// The directory a path is in (`.` for a bare name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsyncs the directory holding `path`, so a rename survives a power cut.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    File::open(parent_dir(path))?.sync_all()
}

/// Writes events already encoded as batches to a single finished file.
pub fn write_file(
    path: &Path,
    batches: &[RecordBatch],
    meta: &RecordingMeta,
) -> io::Result<(PathBuf, u64)> {
    let mut w = ParquetFileWriter::create(path)?;
    for b in batches {
        w.write(b)?;
    }
    w.finish(meta)
}
