//! Reading recordings into polars: the only place that touches Parquet.

use super::{select::Selection, RANK, STAGE};
use polars::prelude::*;
use std::path::PathBuf;
use tcptape_common::Stage;

/// Columns the journeys need: every hop event goes through a sort, so only these.
pub const HOP_COLUMNS: &[&str] = &[
    "ts_ns", "cpu", "kind", "skb", "sock", "saddr", "daddr", "sport", "dport", "seq", "len",
];

/// Columns of the application's writes (`tx_sendmsg`).
pub const WRITE_COLUMNS: &[&str] = &[
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
        // A recording set's `host=NAME/date=…` directories are for engines that prune by path;
        // every file carries its host in its metadata, and its columns are the recording's.
        hive_options: HiveOptions::new_disabled(),
        // A version 1 recording lacks the columns version 2 added: nulls there.
        schema: Some(recording_schema()),
        allow_missing_columns: true,
        ..ScanArgsParquet::default()
    };
    LazyFrame::scan_parquet_files(paths.into_iter().collect(), args)
}

/// The recording schema of this version, as polars types.
fn recording_schema() -> SchemaRef {
    use arrow_schema::DataType as A;
    let fields = tcptape_common::schema::COLUMNS
        .iter()
        .map(|(name, ty, _, _)| {
            let ty = match ty {
                A::UInt8 => DataType::UInt8,
                A::UInt16 => DataType::UInt16,
                A::UInt32 => DataType::UInt32,
                A::UInt64 => DataType::UInt64,
                A::Int32 => DataType::Int32,
                A::Utf8 => DataType::String,
                other => unreachable!("no recording column is {other}"),
            };
            Field::new((*name).into(), ty)
        });
    Arc::new(Schema::from_iter(fields))
}

/// The events of some stages with the given columns, selected, with `stage` (code) and `rank`
/// (journey rank) decoded from `kind`, which is dropped.
pub fn events(
    scan: LazyFrame,
    columns: &[&str],
    stages: &[Stage],
    sel: &Selection,
) -> PolarsResult<LazyFrame> {
    events_where(scan, columns, kind_in(stages), stages, sel)
}

/// The per-connection TCP events ([`tcp_stages`]) with the given columns, and the `rx_tcp_est`
/// hops that carry the socket's congestion snapshot (older recordings have the snapshots as
/// separate `tcp_sample` events, one of the TCP stages).
pub fn tcp_events(scan: LazyFrame, columns: &[&str], sel: &Selection) -> PolarsResult<LazyFrame> {
    let stages = tcp_stages();
    let snapshots = col("kind")
        .eq(lit(Stage::RxTcpEst.name()))
        .and(col("cwnd").is_not_null());
    let mut decoded = stages.clone();
    decoded.push(Stage::RxTcpEst);
    events_where(scan, columns, kind_in(&stages).or(snapshots), &decoded, sel)
}

/// True for the rows of these stages: a plain predicate on `kind`, which polars pushes into the
/// Parquet scan, so the other columns are decoded only for matching rows.
fn kind_in(stages: &[Stage]) -> Expr {
    stages
        .iter()
        .fold(lit(false), |acc, s| acc.or(col("kind").eq(lit(s.name()))))
}

/// The `rows` selected, with `stage` decoded for `stages` (the stages `rows` can contain).
fn events_where(
    scan: LazyFrame,
    columns: &[&str],
    rows: Expr,
    stages: &[Stage],
    sel: &Selection,
) -> PolarsResult<LazyFrame> {
    let code = stages
        .iter()
        .fold(lit(NULL).cast(DataType::UInt8), |acc, s| {
            when(col("kind").eq(lit(s.name())))
                .then(lit(s.code()).cast(DataType::UInt8))
                .otherwise(acc)
        })
        .alias(STAGE);
    let mut cols: Vec<Expr> = columns
        .iter()
        .filter(|c| **c != "kind")
        .map(|c| text_as_categories(c))
        .collect();
    cols.push(code);
    Ok(sel
        .apply(scan, rows)
        .select(cols)
        .with_column(rank_of_stage().alias(RANK)))
}

/// The journey rank ([`super::journey_rank`]) of the `stage` column, as arithmetic on the code:
/// TX codes follow RX codes in [`Stage`], while a journey runs TX first.
fn rank_of_stage() -> Expr {
    let (rx0, tx0, tcp0) = (
        Stage::RxDriver.code(),
        Stage::TxSendmsg.code(),
        Stage::Retransmit.code(),
    );
    let rx_first = super::journey_rank(Stage::RxDriver).expect("hop") - rx0;
    let s = || col(STAGE);
    when(s().lt(lit(tx0)))
        .then(s() + lit(rx_first))
        .when(s().lt(lit(tcp0)))
        .then(s() - lit(tx0))
        .otherwise(lit(NULL).cast(DataType::UInt8))
        .cast(DataType::UInt8)
}

/// Text columns that repeat a few values millions of times (addresses, task names, states).
pub const CATEGORICAL: &[&str] = &[
    "saddr",
    "daddr",
    "comm",
    "ca_state",
    "state",
    "old_state",
    "drop_reason",
];

/// A column, as categories when it is one of [`CATEGORICAL`]: 4 bytes a row instead of a
/// 16-byte string view, which matters for the hops that go through a sort.
fn text_as_categories(c: &str) -> Expr {
    if CATEGORICAL.contains(&c) {
        col(c).cast(DataType::from_categories(Categories::global()))
    } else {
        col(c)
    }
}

/// The hop stages (RX and TX), and the per-connection TCP stages.
pub fn hop_stages() -> Vec<Stage> {
    Stage::ALL.iter().copied().filter(|s| s.is_hop()).collect()
}

/// The per-connection TCP stages, and the application's reads (`rx_app`, for bytes received).
pub fn tcp_stages() -> Vec<Stage> {
    Stage::ALL
        .iter()
        .copied()
        .filter(|s| !s.is_hop() || *s == Stage::RxApp)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_decode_to_codes_and_journey_ranks() {
        let names: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
        let df = DataFrame::new_infer_height(vec![
            Column::new("ts_ns".into(), vec![0u64; names.len() + 1]),
            Column::new("kind".into(), [names.clone(), vec!["nope"]].concat()),
        ])
        .unwrap();
        let out = events(
            df.lazy(),
            &["ts_ns", "kind"],
            Stage::ALL,
            &Selection::default(),
        )
        .unwrap()
        .collect()
        .unwrap();
        assert_eq!(out.height(), Stage::ALL.len(), "unknown kinds are dropped");
        let codes = crate::queries::frame::u64s(&out, STAGE).unwrap();
        let ranks = crate::queries::frame::u64s(&out, RANK).unwrap();
        for (i, s) in Stage::ALL.iter().enumerate() {
            assert_eq!(codes[i], Some(s.code() as u64), "{s}");
            assert_eq!(
                ranks[i],
                super::super::journey_rank(*s).map(u64::from),
                "{s}"
            );
        }
    }
}
