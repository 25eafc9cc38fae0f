//! Connection lifecycles from socket state changes, like `tcplife`, `tcpconnlat` and
//! `tcpstates`: first and last state change, connect latency (SYN_SENT → ESTABLISHED) and the
//! transitions.

use super::{flow_cols, is_stage};
use polars::prelude::*;
use tcptape_common::Stage;

fn states(tcp: LazyFrame) -> LazyFrame {
    tcp.filter(is_stage(Stage::State).and(col("sock").is_not_null()))
}

/// Per socket: flow, `pid`, `comm`, `first_ns`, `last_ns`, `syn_sent_ns`, `established_ns`
/// (after SYN_SENT: an active open), `closed` (reached CLOSE), `path` (the states in order).
/// The local port is the one the socket got: a connecting socket changes to SYN_SENT before
/// its port is chosen, so its first event has port 0.
pub fn per_sock(tcp: LazyFrame) -> LazyFrame {
    let mut aggs = flow_cols()
        .into_iter()
        .map(|e| e.first())
        .collect::<Vec<_>>();
    aggs[1] = col("sport")
        .filter(col("sport").neq(lit(0)))
        .first()
        .fill_null(col("sport").first())
        .alias("sport");
    aggs.extend([
        col("pid").first_non_null().alias("pid"),
        col("comm").first_non_null().alias("comm"),
        col("ts_ns").min().alias("first_ns"),
        col("ts_ns").max().alias("last_ns"),
        col("ts_ns")
            .filter(col("state").eq(lit("SYN_SENT")))
            .min()
            .alias("syn_sent_ns"),
        col("ts_ns")
            .filter(
                col("state")
                    .eq(lit("ESTABLISHED"))
                    .and(col("old_state").eq(lit("SYN_SENT"))),
            )
            .min()
            .alias("established_ns"),
        col("state")
            .filter(col("state").eq(lit("CLOSE")))
            .len()
            .gt(lit(0))
            .alias("closed"),
        col("old_state").first().alias("first_state"),
        col("state")
            .cast(DataType::String)
            .implode(true)
            .alias("path"),
    ]);
    states(tcp)
        .sort(["ts_ns"], SortMultipleOptions::default())
        .group_by([col("sock")])
        .agg(aggs)
        .sort(["first_ns"], SortMultipleOptions::default())
}

/// State transitions counted: `old_state`, `state`, `count`.
pub fn transitions(tcp: LazyFrame) -> LazyFrame {
    states(tcp)
        .group_by([col("old_state"), col("state")])
        .agg([len().alias("count")])
        .sort(
            ["count"],
            SortMultipleOptions::default().with_order_descending(true),
        )
}
