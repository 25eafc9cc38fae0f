//! RTT and congestion window from the sockets' snapshots, like `tcprtt` (per flow: min, median,
//! max; a log2 histogram) plus cwnd and both over time. The snapshots come with the `rx_tcp_est`
//! events (older recordings have them as separate `tcp_sample` events).

use super::{flow_cols, is_stage, QUANTILE};
use polars::prelude::*;
use tcptape_common::Stage;

fn samples(tcp: LazyFrame) -> LazyFrame {
    tcp.filter(
        is_stage(Stage::TcpSample).or(is_stage(Stage::RxTcpEst).and(col("cwnd").is_not_null())),
    )
}

/// Per flow: `samples`, `rtt_min_us`, `rtt_p50_us`, `rtt_max_us`, `cwnd_min`, `cwnd_p50`,
/// `cwnd_max`, `ssthresh_last`.
pub fn per_flow(tcp: LazyFrame) -> LazyFrame {
    samples(tcp)
        .sort(["ts_ns"], SortMultipleOptions::default())
        .group_by(flow_cols())
        .agg([
            len().alias("samples"),
            col("srtt_us").min().alias("rtt_min_us"),
            col("srtt_us")
                .quantile(lit(0.5), QUANTILE)
                .alias("rtt_p50_us"),
            col("srtt_us").max().alias("rtt_max_us"),
            col("cwnd").min().alias("cwnd_min"),
            col("cwnd").quantile(lit(0.5), QUANTILE).alias("cwnd_p50"),
            col("cwnd").max().alias("cwnd_max"),
            col("ssthresh").last().alias("ssthresh_last"),
        ])
        .sort(
            ["saddr", "sport", "daddr", "dport"],
            SortMultipleOptions::default(),
        )
}

/// The log2 bucket of a positive integer column: 0 for 0–1, k for [2^k, 2^(k+1)).
pub fn log2_bucket(c: &str) -> Expr {
    let v = col(c).cast(DataType::UInt64);
    (1..40u32).fold(lit(0u32), |acc, k| {
        acc + v.clone().gt_eq(lit(1u64 << k)).cast(DataType::UInt32)
    })
}

/// The smoothed-RTT histogram in log2 buckets of µs: `bucket`, `count`.
pub fn rtt_histogram(tcp: LazyFrame) -> LazyFrame {
    samples(tcp)
        .filter(col("srtt_us").is_not_null())
        .group_by([log2_bucket("srtt_us").alias("bucket")])
        .agg([len().alias("count")])
        .sort(["bucket"], SortMultipleOptions::default())
}

/// Median smoothed RTT and cwnd per flow and time bin of `bin_ns` since `start_ns`: `bin`,
/// `srtt_us`, `cwnd` (for plots).
pub fn over_time(tcp: LazyFrame, start_ns: u64, bin_ns: u64) -> LazyFrame {
    let bin = super::bin_of("ts_ns", start_ns, bin_ns).alias("bin");
    let mut keys = flow_cols().to_vec();
    keys.push(bin);
    samples(tcp)
        .group_by(keys)
        .agg([
            col("srtt_us").quantile(lit(0.5), QUANTILE).alias("srtt_us"),
            col("cwnd").quantile(lit(0.5), QUANTILE).alias("cwnd"),
        ])
        .sort(
            ["saddr", "sport", "daddr", "dport", "bin"],
            SortMultipleOptions::default(),
        )
}
