//! Buffer-pressure events (`sock_exceed_buf_limit`, `sock_rcvqueue_full`) per flow.

use super::{flow_cols, is_stage};
use polars::prelude::*;
use tcptape_common::Stage;

/// Per flow: `events`, `max_bytes`, `first_ns`, `last_ns`, most events first.
pub fn per_flow(tcp: LazyFrame) -> LazyFrame {
    tcp.filter(is_stage(Stage::Buffer))
        .group_by(flow_cols())
        .agg([
            len().alias("events"),
            col("len").max().alias("max_bytes"),
            col("ts_ns").min().alias("first_ns"),
            col("ts_ns").max().alias("last_ns"),
        ])
        .sort(
            ["events"],
            SortMultipleOptions::default().with_order_descending(true),
        )
}
