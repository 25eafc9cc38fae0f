//! Retransmissions, like `tcpretrans -c`: segments (the sum of `segs`) per flow, per congestion
//! state and over time. Attempts with `err != 0` did not leave the host and are kept apart; the
//! kernel still counts those with a positive error (a full qdisc) in `TcpRetransSegs`.

use super::{flow_cols, is_stage, second_of};
use polars::prelude::*;
use tcptape_common::Stage;

fn retransmits(tcp: LazyFrame) -> LazyFrame {
    tcp.filter(is_stage(Stage::Retransmit))
        .with_column(col("segs").cast(DataType::UInt64).fill_null(lit(1u64)))
}

fn sent() -> Expr {
    col("err").fill_null(lit(0)).eq(lit(0))
}

/// Totals: `attempts`, `segments` (sent), `failed_attempts`, `failed_segments`,
/// `kernel_counted_segments` (err ≥ 0: what `TcpRetransSegs` counts).
pub fn totals(tcp: LazyFrame) -> LazyFrame {
    retransmits(tcp).select([
        len().alias("attempts"),
        col("segs").filter(sent()).sum().alias("segments"),
        col("segs")
            .filter(sent().not())
            .len()
            .alias("failed_attempts"),
        col("segs")
            .filter(sent().not())
            .sum()
            .alias("failed_segments"),
        col("segs")
            .filter(col("err").fill_null(lit(0)).gt_eq(lit(0)))
            .sum()
            .alias("kernel_counted_segments"),
    ])
}

/// Each sent retransmission's `ts_ns` and `segs`, for estimates scaled by the sampling in force
/// at its time.
pub fn sent_each(tcp: LazyFrame) -> LazyFrame {
    retransmits(tcp)
        .filter(sent())
        .select([col("ts_ns"), col("segs")])
}

/// Sent segments and attempts per congestion-avoidance state (`loss`, `recovery`, ...).
pub fn by_ca_state(tcp: LazyFrame) -> LazyFrame {
    retransmits(tcp)
        .filter(sent())
        .group_by([col("ca_state")])
        .agg([len().alias("attempts"), col("segs").sum().alias("segments")])
        .sort(["ca_state"], SortMultipleOptions::default())
}

/// Failed attempts per error code.
pub fn failed_by_err(tcp: LazyFrame) -> LazyFrame {
    retransmits(tcp)
        .filter(sent().not())
        .group_by([col("err")])
        .agg([len().alias("attempts"), col("segs").sum().alias("segments")])
        .sort(["err"], SortMultipleOptions::default())
}

/// Sent segments and attempts per flow, most first.
pub fn per_flow(tcp: LazyFrame) -> LazyFrame {
    retransmits(tcp)
        .filter(sent())
        .group_by(flow_cols())
        .agg([
            len().alias("attempts"),
            col("segs").sum().alias("segments"),
            col("ca_state")
                .filter(col("ca_state").eq(lit("loss")))
                .len()
                .alias("loss_attempts"),
        ])
        .sort(
            ["segments"],
            SortMultipleOptions::default().with_order_descending(true),
        )
}

/// Sent segments per second since `start_ns`.
pub fn per_second(tcp: LazyFrame, start_ns: u64) -> LazyFrame {
    retransmits(tcp)
        .filter(sent())
        .with_column(second_of("ts_ns", start_ns))
        .group_by([col("second")])
        .agg([col("segs").sum().alias("segments")])
        .sort(["second"], SortMultipleOptions::default())
}

/// Sent retransmissions one by one, in time order, the first `limit`: `ts_ns`, `segs` and the
/// flow.
pub fn each(tcp: LazyFrame, limit: u32) -> LazyFrame {
    let [sa, sp, da, dp] = flow_cols();
    retransmits(tcp)
        .filter(sent())
        .select([col("ts_ns"), col("segs"), sa, sp, da, dp])
        .sort(
            ["ts_ns"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .limit(limit as IdxSize)
}
