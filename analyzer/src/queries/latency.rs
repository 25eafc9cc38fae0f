//! Per-stage latency: every adjacent pair of recorded stages in a journey, and whole journeys.
//! Input rows have `from`, `to` (stage codes), `dt_ns`, `ts_ns`, `cpu` and the flow.

use super::{flow_cols, latency_aggs, percentile, second_of};
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

/// The same per flow.
pub fn per_flow(pairs: LazyFrame) -> LazyFrame {
    let mut keys = flow_cols().to_vec();
    keys.extend([col("from"), col("to")]);
    sorted(
        pairs.group_by(keys).agg(latency_aggs("dt_ns")),
        &["saddr", "sport", "daddr", "dport", "from", "to"],
    )
}

/// The same per CPU (of the later hop).
pub fn per_cpu(pairs: LazyFrame) -> LazyFrame {
    sorted(
        pairs
            .group_by([col("cpu"), col("from"), col("to")])
            .agg(latency_aggs("dt_ns")),
        &["cpu", "from", "to"],
    )
}

/// count, p50, p99 and max per (`from`, `to`) and second since `start_ns`.
pub fn per_second(pairs: LazyFrame, start_ns: u64) -> LazyFrame {
    sorted(
        pairs
            .with_column(second_of("ts_ns", start_ns))
            .group_by([col("from"), col("to"), col("second")])
            .agg([
                len().alias("count"),
                percentile("dt_ns", 0.5).alias("p50_ns"),
                percentile("dt_ns", 0.99).alias("p99_ns"),
                col("dt_ns").max().alias("max_ns"),
            ]),
        &["from", "to", "second"],
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

/// The latency CDF of each (`from`, `to`) at `points` evenly spaced quantiles, for plots:
/// `from`, `to`, `q`, `dt_ns`.
pub fn cdf(pairs: LazyFrame, points: usize) -> LazyFrame {
    let aggs: Vec<Expr> = (0..=points)
        .map(|i| {
            let q = i as f64 / points as f64;
            percentile("dt_ns", q).alias(format!("q{i}"))
        })
        .collect();
    sorted(
        pairs.group_by([col("from"), col("to")]).agg(aggs),
        &["from", "to"],
    )
}
