//! Drops by the kernel's reason, like `tcpdrop`.

use super::{flow_cols, is_stage};
use polars::prelude::*;
use tcptape_common::Stage;

/// `drop_reason`, `drops`, most first.
pub fn by_reason(tcp: LazyFrame) -> LazyFrame {
    tcp.filter(is_stage(Stage::Drop))
        .group_by([col("drop_reason")])
        .agg([len().alias("drops")])
        .sort(
            ["drops", "drop_reason"],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
}

/// Each drop's `ts_ns`, for estimates scaled by the sampling in force at its time.
pub fn times(tcp: LazyFrame) -> LazyFrame {
    tcp.filter(is_stage(Stage::Drop)).select([col("ts_ns")])
}

/// Drops per flow, most first.
pub fn per_flow(tcp: LazyFrame) -> LazyFrame {
    tcp.filter(is_stage(Stage::Drop))
        .group_by(flow_cols())
        .agg([len().alias("drops")])
        .sort(
            ["drops"],
            SortMultipleOptions::default().with_order_descending(true),
        )
}

/// Drops one by one, in time order, the first `limit`: `ts_ns` and the flow.
pub fn each(tcp: LazyFrame, limit: u32) -> LazyFrame {
    let [sa, sp, da, dp] = flow_cols();
    tcp.filter(is_stage(Stage::Drop))
        .select([col("ts_ns"), sa, sp, da, dp])
        .sort(
            ["ts_ns"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .limit(limit as IdxSize)
}
