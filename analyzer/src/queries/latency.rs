//! Latency of whole journeys. (The per-pair figures of every hop, per stage, flow, CPU and
//! second, come from one sort in [`crate::latency_stats`].) Input rows have `from`, `to` (stage
//! codes) and `dt_ns`.

use super::latency_aggs;
use polars::prelude::*;

fn sorted(lf: LazyFrame, by: &[&str]) -> LazyFrame {
    lf.sort(by.to_vec(), SortMultipleOptions::default())
}

/// count, mean, p50 … max per (`from`, `to`).
pub fn per_stage(pairs: LazyFrame) -> LazyFrame {
    sorted(
        pairs
            .group_by([col("from"), col("to")])
            .agg(latency_aggs("dt_ns")),
        &["from", "to"],
    )
}

/// End to end: the figures of complete journeys per (`from`, `to`), from [`super::journey::whole`].
pub fn end_to_end(whole: LazyFrame) -> LazyFrame {
    per_stage(
        whole
            .filter(col("complete").and(col("from").neq(col("to"))))
            .select([col("from"), col("to"), col("dt_ns")]),
    )
}

/// Journeys counted by completeness: `complete` (bool), `journeys`.
pub fn completeness(whole: LazyFrame) -> LazyFrame {
    whole
        .group_by([col("complete")])
        .agg([len().alias("journeys")])
}
