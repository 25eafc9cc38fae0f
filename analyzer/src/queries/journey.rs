//! Journeys: the hops of one packet (one skb), in time order.
//!
//! Hop events are sorted by packet id and time; a new journey starts at the first event of a
//! packet id, and again when the id is evidently reused: the stage order goes backwards (the
//! kernel freed the skb and allocated the same address for another packet), the previous event
//! was the TX completion (`tx_done`: the skb was freed), or more than the allowed gap passed.
//! A stage seen twice in a row (stacked devices, partial reads) keeps its first occurrence.
//! Every hop takes the flow of its journey's first hop: socket hooks (`rx_tcp_est`, `rx_app`)
//! name a flow from the socket's side (local → remote), which on the receiver is the packet's
//! reverse; the first hop of a journey is a packet hook on RX and the sender's socket on TX,
//! both in the packet's direction. The split itself is one pass in Rust
//! ([`crate::segment::segment`]); the queries below read the segmented frame.

use super::{flow_cols, RANK, STAGE};
use polars::prelude::*;
use tcptape_common::Stage;

/// One row per hop: `from`, `to`, `dt_ns`, `ts_ns` (of the later hop), `cpu` and the flow.
/// First hops have a null `from` and `dt_ns`, skipped where the rows are read
/// ([`crate::latency_stats`]): filtering them out here would copy every column of every hop.
pub fn hop_pairs(seg: LazyFrame) -> LazyFrame {
    let mut cols = vec![
        col("from"),
        col(STAGE).alias("to"),
        col("dt_ns"),
        col("ts_ns"),
        col("cpu"),
    ];
    cols.extend(flow_cols());
    seg.select(cols)
}

/// The first hop of each journey: `jid`, `first_stage`, `first_rank`, `t0`, and the event's
/// `sock`, `seq`, `cpu` and flow (used to find the data's `tx_sendmsg`).
pub fn starts(seg: LazyFrame) -> LazyFrame {
    let mut cols = vec![
        col("jid"),
        col(STAGE).alias("first_stage"),
        col(RANK).alias("first_rank"),
        col("ts_ns").alias("t0"),
        col("sock"),
        col("seq"),
        col("cpu"),
    ];
    cols.extend(flow_cols());
    seg.filter(col("new")).select(cols)
}

/// The last hop of each journey: `jid`, `last_stage`, `last_rank`, `t1`.
pub fn ends(seg: LazyFrame) -> LazyFrame {
    seg.filter(col("last")).select([
        col("jid"),
        col(STAGE).alias("last_stage"),
        col(RANK).alias("last_rank"),
        col("ts_ns").alias("t1"),
    ])
}

/// Pairs `tx_sendmsg → first hop` for the journeys whose data was matched to a `tx_sendmsg`
/// (`matched`: `jid`, `send_ts`), in the shape of [`hop_pairs`].
pub fn sendmsg_pairs(starts: LazyFrame, matched: LazyFrame) -> LazyFrame {
    let mut cols = vec![
        lit(Stage::TxSendmsg.code())
            .cast(DataType::UInt8)
            .alias("from"),
        col("first_stage").alias("to"),
        (col("t0").cast(DataType::Int64) - col("send_ts").cast(DataType::Int64)).alias("dt_ns"),
        col("t0").alias("ts_ns"),
        col("cpu"),
    ];
    cols.extend(flow_cols());
    starts
        .inner_join(matched, col("jid"), col("jid"))
        .select(cols)
}

/// The clones joined to a `tx_tcp_xmit`, from first hops with `xmit_ts`, `xmit_cpu` and
/// `xmit_jid` (null when not joined): `jid`, `xmit_jid`, `xmit_ts`, `xmit_cpu`, and the clone's first hop as
/// `to`, `ts_ns`, `cpu` and the flow.
pub fn links(starts: LazyFrame) -> LazyFrame {
    let mut cols = vec![
        col("jid"),
        col("xmit_jid"),
        col("xmit_ts"),
        col("xmit_cpu").cast(DataType::UInt16),
        col("first_stage").alias("to"),
        col("t0").alias("ts_ns"),
        col("cpu"),
    ];
    cols.extend(flow_cols());
    starts.filter(col("xmit_ts").is_not_null()).select(cols)
}

/// First hops after joining clones: a joined clone starts at its `tx_tcp_xmit` (stage, rank,
/// time and CPU), and the `tx_tcp_xmit`'s own journey (`absorbed`) is left out.
pub fn joined_starts(starts: LazyFrame) -> LazyFrame {
    let xmit = Stage::TxTcpXmit;
    let joined = || col("xmit_ts").is_not_null();
    let pick = |then: Expr, c: &str| when(joined()).then(then).otherwise(col(c)).alias(c);
    starts
        .filter(col("absorbed").not())
        .with_columns([
            pick(lit(xmit.code()).cast(DataType::UInt8), "first_stage"),
            pick(
                lit(super::journey_rank(xmit).expect("hop stage")).cast(DataType::UInt8),
                "first_rank",
            ),
            pick(col("xmit_ts"), "t0"),
            pick(col("xmit_cpu").cast(DataType::UInt16), "cpu"),
        ])
        .select(
            [
                "jid",
                "first_stage",
                "first_rank",
                "t0",
                "sock",
                "seq",
                "cpu",
            ]
            .into_iter()
            .map(col)
            .chain(flow_cols())
            .collect::<Vec<_>>(),
        )
}

/// Pairs `tx_tcp_xmit → first hop` of the joined clones ([`links`]), in the shape of
/// [`hop_pairs`].
pub fn link_pairs(links: LazyFrame) -> LazyFrame {
    let mut cols = vec![
        lit(Stage::TxTcpXmit.code())
            .cast(DataType::UInt8)
            .alias("from"),
        col("to"),
        (col("ts_ns").cast(DataType::Int64) - col("xmit_ts").cast(DataType::Int64)).alias("dt_ns"),
        col("ts_ns"),
        col("cpu"),
    ];
    cols.extend(flow_cols());
    links.select(cols)
}

/// Whole journeys: `jid`, `from` (`tx_sendmsg` when matched, else the first hop), `to` (the last
/// hop), `dt_ns` and `complete`: it starts at the earliest recorded stage of its path and ends at
/// the latest recorded stage of its path. `bounds` gives (earliest, latest) recorded rank for TX
/// and for RX.
pub fn whole(
    starts: LazyFrame,
    ends: LazyFrame,
    matched: LazyFrame,
    bounds: PathBounds,
) -> LazyFrame {
    let rx0 = super::journey_rank(Stage::RxDriver).expect("hop stage");
    let starts_ok = when(col("first_rank").lt(lit(rx0)))
        .then(col("first_rank").eq(lit(bounds.tx.0)))
        .otherwise(col("first_rank").eq(lit(bounds.rx.0)));
    let ends_ok = when(col("last_rank").lt(lit(rx0)))
        .then(col("last_rank").eq(lit(bounds.tx.1)))
        .otherwise(col("last_rank").eq(lit(bounds.rx.1)));
    starts
        .select([col("jid"), col("first_stage"), col("first_rank"), col("t0")])
        .inner_join(ends, col("jid"), col("jid"))
        .left_join(matched, col("jid"), col("jid"))
        .select([
            col("jid"),
            when(col("send_ts").is_not_null())
                .then(lit(Stage::TxSendmsg.code()).cast(DataType::UInt8))
                .otherwise(col("first_stage"))
                .alias("from"),
            col("last_stage").alias("to"),
            (col("t1").cast(DataType::Int64)
                - col("send_ts").fill_null(col("t0")).cast(DataType::Int64))
            .alias("dt_ns"),
            starts_ok.and(ends_ok).alias("complete"),
            col("t1").alias("ts_ns"),
        ])
}

/// The earliest and latest journey rank recorded on each path (`u8::MAX` when none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathBounds {
    /// (earliest, latest) TX rank, without `tx_sendmsg` (matched separately).
    pub tx: (u8, u8),
    /// (earliest, latest) RX rank.
    pub rx: (u8, u8),
}

/// Which hop stages have at least one event (a small aggregate).
pub fn stages_present(seg: LazyFrame) -> LazyFrame {
    seg.group_by([col(STAGE)])
        .agg([len().alias("events")])
        .sort([STAGE], SortMultipleOptions::default())
}
