//! Bytes per flow and task, like `tcptop`: sent (at `tx_sendmsg`) and received (copied to the
//! application at `rx_app`).

use super::{flow_cols, is_stage};
use polars::prelude::*;
use tcptape_common::Stage;

/// Per flow: `pid`, `comm`, `bytes`, `calls`, most bytes first. `events` are the events of one
/// stage (`tx_sendmsg` or `rx_app`) with `len`, `pid`, `comm` and the flow.
pub fn per_flow(events: LazyFrame, stage: Stage) -> LazyFrame {
    events
        .filter(is_stage(stage))
        .group_by(flow_cols())
        .agg([
            col("pid").first_non_null().alias("pid"),
            col("comm").first_non_null().alias("comm"),
            col("len").cast(DataType::UInt64).sum().alias("bytes"),
            len().alias("calls"),
        ])
        .sort(
            ["bytes"],
            SortMultipleOptions::default().with_order_descending(true),
        )
}

/// Bytes per socket (`sock`, `bytes`) at one stage, for connection lifecycles, with the process
/// that wrote or read them (`pid`, `comm`: these stages run in the application's own task).
pub fn per_sock(events: LazyFrame, stage: Stage) -> LazyFrame {
    events
        .filter(is_stage(stage).and(col("sock").is_not_null()))
        .group_by([col("sock")])
        .agg([
            col("len").cast(DataType::UInt64).sum().alias("bytes"),
            col("pid").first_non_null().alias("pid"),
            col("comm").first_non_null().alias("comm"),
        ])
}
