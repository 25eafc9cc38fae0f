//! Reading recordings into polars: the only place that touches Parquet.

use super::{select::Selection, stage_table};
use polars::prelude::*;
use std::path::PathBuf;
use tcptape_common::Stage;

/// Columns the per-packet (hop) queries need.
pub const HOP_COLUMNS: &[&str] = &[
    "ts_ns", "cpu", "kind", "skb", "sock", "pid", "comm", "saddr", "daddr", "sport", "dport",
    "len", "seq",
];

/// Columns the per-connection TCP queries need.
pub const TCP_COLUMNS: &[&str] = &[
    "ts_ns",
    "kind",
    "sock",
    "pid",
    "comm",
    "saddr",
    "daddr",
    "sport",
    "dport",
    "len",
    "seq",
    "segs",
    "err",
    "cwnd",
    "ssthresh",
    "srtt_us",
    "ca_state",
    "state",
    "old_state",
    "drop_reason",
];

/// A lazy scan of the given Parquet files (validated beforehand by the reader).
pub fn scan(files: &[PathBuf]) -> PolarsResult<LazyFrame> {
    let paths = files
        .iter()
        .map(|p| PlRefPath::try_from_path(p))
        .collect::<PolarsResult<Vec<_>>>()?;
    let args = ScanArgsParquet {
        // The files are given one by one; a `[` or `*` in a name is not a pattern.
        glob: false,
        ..ScanArgsParquet::default()
    };
    LazyFrame::scan_parquet_files(paths.into_iter().collect(), args)
}

/// The events of some stages with the given columns, selected, with `stage` and `rank` decoded.
pub fn events(
    scan: LazyFrame,
    columns: &[&str],
    stages: &[Stage],
    sel: &Selection,
) -> PolarsResult<LazyFrame> {
    let table = stage_table(stages)?;
    let lf = scan
        .select(columns.iter().map(|c| col(*c)).collect::<Vec<_>>())
        .filter(sel.predicate())
        .inner_join(table.lazy(), col("kind"), col("kind"))
        .drop(cols(["kind"]));
    Ok(lf)
}

/// The hop stages (RX and TX), and the per-connection TCP stages.
pub fn hop_stages() -> Vec<Stage> {
    Stage::ALL.iter().copied().filter(|s| s.is_hop()).collect()
}

/// The per-connection TCP stages.
pub fn tcp_stages() -> Vec<Stage> {
    Stage::ALL.iter().copied().filter(|s| !s.is_hop()).collect()
}
