//! Journeys: the hops of one packet (one skb), in time order.
//!
//! Hop events are sorted by packet id and time; a new journey starts at the first event of a
//! packet id, and again when the id is evidently reused: the stage order goes backwards (the
//! kernel freed the skb and allocated the same address for another packet), the previous event
//! was the TX completion (`tx_done`: the skb was freed), or more than the allowed gap passed.
//! A stage seen twice in a row (stacked devices, partial reads) keeps its first occurrence.

use super::{flow_cols, RANK, STAGE};
use polars::prelude::*;
use tcptape_common::Stage;

/// Columns of the segmented hop frame, besides the event's own (the flow is the journey's, see
/// [`journey_flow`]): `new` (first hop of a journey),
/// `last` (last hop), `jid` (journey number), `from` (previous stage in the journey, null on a
/// first hop) and `dt_ns` (time since that stage).
pub fn segment(hops: LazyFrame, max_gap_ns: u64) -> LazyFrame {
    let prev = |c: &str| col(c).shift(lit(1));
    let ts = || col("ts_ns").cast(DataType::Int64);
    let same_skb = col("skb").eq(prev("skb")).fill_null(lit(false));
    let gap = (ts() - ts().shift(lit(1)))
        .gt(lit(max_gap_ns as i64))
        .fill_null(lit(true));
    let after_free = prev(STAGE)
        .eq(lit(Stage::TxDone.code()))
        .fill_null(lit(false));
    let backwards = col(RANK).lt(prev(RANK)).fill_null(lit(false));
    let new = same_skb.not().or(gap).or(after_free).or(backwards);
    let repeat = col("new")
        .not()
        .and(col(STAGE).eq(prev(STAGE)).fill_null(lit(false)));
    hops.filter(col("skb").is_not_null())
        .sort(["skb", "ts_ns"], SortMultipleOptions::default())
        .with_column(new.alias("new"))
        .filter(repeat.not())
        .with_columns([
            col("new")
                .cast(DataType::UInt32)
                .cum_sum(false)
                .alias("jid"),
            // Within a journey the previous row is the previous hop; on a first hop these are
            // meaningless and are nulled below.
            prev(STAGE).alias("from"),
            (ts() - ts().shift(lit(1))).alias("dt_ns"),
        ])
        .with_columns([
            when(col("new"))
                .then(lit(NULL).cast(DataType::UInt8))
                .otherwise(col("from"))
                .alias("from"),
            when(col("new"))
                .then(lit(NULL).cast(DataType::Int64))
                .otherwise(col("dt_ns"))
                .alias("dt_ns"),
            col("jid")
                .neq(col("jid").shift(lit(-1)))
                .fill_null(lit(true))
                .alias("last"),
        ])
        .with_columns(journey_flow())
}

/// Every hop takes the flow of its journey's first hop. Socket hooks (`rx_tcp_est`, `rx_app`)
/// name a flow from the socket's side (local → remote), which on the receiver is the packet's
/// reverse; the first hop of a journey is a packet hook on RX and the sender's socket on TX,
/// both in the packet's direction.
fn journey_flow() -> Vec<Expr> {
    let forward = |e: Expr| e.fill_null_with_strategy(FillNullStrategy::Forward(None));
    let known = forward(
        when(col("new"))
            .then(col("sport").is_not_null())
            .otherwise(lit(NULL)),
    );
    ["saddr", "sport", "daddr", "dport"]
        .into_iter()
        .map(|c| {
            when(known.clone())
                .then(forward(when(col("new")).then(col(c)).otherwise(lit(NULL))))
                .otherwise(lit(NULL))
                .alias(c)
        })
        .collect()
}

/// One row per hop: `from`, `to`, `dt_ns`, `ts_ns` (of the later hop), `cpu` and the flow.
/// First hops have a null `from` and `dt_ns`: aggregations keep them in their own groups, which
/// the caller drops, because filtering them out first would copy every column of every hop.
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
