//! Files whose footer lies about sizes: a row group claiming 2^40 rows, a column chunk claiming
//! more values than its group has rows, a column chunk claiming bytes past the end of the file.
//! Readers size buffers from such claims, so the reader refuses them before anything is
//! allocated: the analyzer exits 2 with one line, and its peak memory stays small.
//!
//! One test in this file on purpose: the peak RSS read with `getrusage(RUSAGE_CHILDREN)` covers
//! every child this process waited for.

use parquet::file::metadata::{
    FileMetaData, ParquetMetaData, ParquetMetaDataBuilder, ParquetMetaDataReader,
    ParquetMetaDataWriter, RowGroupMetaData,
};
use std::path::Path;
use std::process::Command;
use tcptape_common::synth::{write_file, Mix, SynthConfig};
use tcptape_common::Recording;

/// The most memory the analyzer may take to refuse a file (it needs far less).
const MAX_RSS_BYTES: i64 = 256 << 20;

/// Rewrites the footer of `good` with `edit` applied to its metadata; the data is unchanged.
fn with_footer(good: &Path, edit: impl FnOnce(ParquetMetaData) -> ParquetMetaData) -> Vec<u8> {
    let md = ParquetMetaDataReader::new()
        .parse_and_finish(&std::fs::File::open(good).unwrap())
        .unwrap();
    let good = std::fs::read(good).unwrap();
    let footer = u32::from_le_bytes(good[good.len() - 8..good.len() - 4].try_into().unwrap());
    let data_end = good.len() - 8 - footer as usize;
    let md = edit(md);
    let mut out = good[..data_end].to_vec();
    ParquetMetaDataWriter::new(&mut out, &md).finish().unwrap();
    out
}

/// `md` with row group 0 rebuilt by `edit` and the file's row count made to agree.
fn edit_group(
    md: ParquetMetaData,
    edit: impl FnOnce(RowGroupMetaData) -> RowGroupMetaData,
) -> ParquetMetaData {
    let mut groups = md.row_groups().to_vec();
    groups[0] = edit(groups[0].clone());
    let rows = groups.iter().map(|g| g.num_rows()).sum();
    let f = md.file_metadata();
    let file = FileMetaData::new(
        f.version(),
        rows,
        f.created_by().map(str::to_string),
        f.key_value_metadata().cloned(),
        f.schema_descr_ptr(),
        f.column_orders().cloned(),
    );
    ParquetMetaDataBuilder::new(file)
        .set_row_groups(groups)
        .build()
}

/// Column 0 of row group 0 rebuilt by `edit`.
fn edit_column(
    md: ParquetMetaData,
    edit: impl FnOnce(
        parquet::file::metadata::ColumnChunkMetaDataBuilder,
    ) -> parquet::file::metadata::ColumnChunkMetaDataBuilder,
) -> ParquetMetaData {
    edit_group(md, |g| {
        let mut cols = g.columns().to_vec();
        cols[0] = edit(cols[0].clone().into_builder()).build().unwrap();
        g.into_builder().set_column_metadata(cols).build().unwrap()
    })
}

/// Peak RSS of the largest child waited for so far, in bytes.
fn children_peak_rss() -> i64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) },
        0
    );
    ru.ru_maxrss * 1024
}

fn refused(path: &Path, expect: &str) {
    let err = match Recording::open(path) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(expect), "{err}");
    for args in [&["info"][..], &["report", "-q"], &["replay"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_tcptape"))
            .args(args)
            .arg(path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        let rss = children_peak_rss();
        assert!(rss < MAX_RSS_BYTES, "{args:?} peaked at {rss} bytes");
    }
}

#[test]
fn size_claims_past_what_the_file_holds_are_refused_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("good.parquet");
    write_file(&src, SynthConfig::new(Mix::Bulk, 5_000, 1)).unwrap();
    assert!(Recording::open(&src).is_ok());
    let good = src.as_path();

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "rows.parquet",
            with_footer(good, |md| {
                edit_group(md, |g| {
                    g.into_builder().set_num_rows(1 << 40).build().unwrap()
                })
            }),
            "claims 1099511627776 rows",
        ),
        (
            "values.parquet",
            with_footer(good, |md| edit_column(md, |c| c.set_num_values(1 << 40))),
            "claims 1099511627776 values",
        ),
        (
            "bytes.parquet",
            with_footer(good, |md| {
                edit_column(md, |c| c.set_total_compressed_size(1 << 50))
            }),
            "past the data",
        ),
        (
            "negative.parquet",
            with_footer(good, |md| {
                edit_column(md, |c| c.set_total_compressed_size(-5))
            }),
            "past the data",
        ),
    ];
    for (name, bytes, expect) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        refused(&path, expect);
    }
}
