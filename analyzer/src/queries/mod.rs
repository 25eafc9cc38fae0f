//! Every polars query of the analyzer lives under this module: each report is a
//! `fn(LazyFrame) -> LazyFrame` built from the small `fn … -> Expr` helpers below, collected once.
//!
//! The polars version is pinned in `Cargo.toml` because its API moves between minor versions;
//! keeping every call here means an upgrade touches one directory.

pub mod buffer;
pub mod cgroups;
pub mod drops;
pub mod edge_events;
pub mod frame;
pub mod journey_input;
pub mod lifecycle;
pub mod retransmits;
pub mod sampled_counts;
pub mod samples;
pub mod scan;
pub mod select;
pub mod tcp_sections;
pub mod throughput;

use polars::prelude::*;
use tcptape_common::stage::Path as StagePath;
use tcptape_common::Stage;

/// Column holding a stage's code (`Stage::code`), added by the scan.
pub const STAGE: &str = "stage";
/// Column holding a stage's position in a packet's journey ([`journey_rank`]).
pub const RANK: &str = "rank";

/// The method every percentile uses: nearest rank, the smallest recorded value with at least a
/// fraction q of the values at or below it (sorted index ⌈n·q⌉ − 1). Each figure is a latency
/// that really happened (no interpolation between two packets), and it equals SQL's
/// `quantile_disc` (DuckDB, PostgreSQL `percentile_disc`).
pub const QUANTILE: QuantileMethod = QuantileMethod::Equiprobable;

/// Where a hop stage sits in a packet's path: the TX stages first (the application writes), then
/// the RX stages (on veth and loopback the same skb continues into the peer's receive path).
/// `None` for per-connection TCP events.
pub fn journey_rank(stage: Stage) -> Option<u8> {
    match stage.path() {
        StagePath::Tx => Some(stage.code() - Stage::TxSendmsg.code()),
        StagePath::Rx => Some(stage.code() - Stage::RxDriver.code() + 7),
        StagePath::Tcp => None,
    }
}

/// The stage whose journey rank is `rank`.
pub fn stage_of_rank(rank: u8) -> Option<Stage> {
    Stage::ALL
        .iter()
        .copied()
        .find(|s| journey_rank(*s) == Some(rank))
}

/// `col(STAGE) == stage`.
pub fn is_stage(stage: Stage) -> Expr {
    col(STAGE).eq(lit(stage.code()))
}

/// The four columns that name a flow, in packet orientation.
pub fn flow_cols() -> [Expr; 4] {
    [col("saddr"), col("sport"), col("daddr"), col("dport")]
}

/// Seconds since `start_ns` of a `ts_ns` column, as an integer bucket.
pub fn second_of(ts: &str, start_ns: u64) -> Expr {
    bin_of(ts, start_ns, 1_000_000_000).alias("second")
}

/// The number of the `width_ns`-wide bin since `start_ns` a `ts_ns` column falls in. Events are
/// never before the start, so truncation is the floor.
pub fn bin_of(ts: &str, start_ns: u64, width_ns: u64) -> Expr {
    ((col(ts).cast(DataType::Int64) - lit(start_ns as i64)).cast(DataType::Float64)
        / lit(width_ns.max(1) as f64))
    .cast(DataType::Int64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::latency_stats::rank_index;

    /// The percentile the journeys compute by position is the one polars computes with
    /// [`QUANTILE`], for every group size up to 200 and the report's percentiles.
    #[test]
    fn rank_index_is_polars_quantile() {
        for n in 1..=200usize {
            // Distinct values in a shuffled order, so a wrong position shows.
            let v: Vec<i64> = (0..n as i64)
                .map(|i| (i * 7919) % (n as i64) * 10)
                .collect();
            let mut sorted = v.clone();
            sorted.sort_unstable();
            let s = Series::new("v".into(), &v);
            for q in [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0] {
                let polars = s.quantile_reduce(q, QUANTILE).unwrap();
                let polars = polars.value().extract::<i64>().unwrap();
                assert_eq!(sorted[rank_index(n, q)], polars, "n={n} q={q}");
            }
        }
    }
}
