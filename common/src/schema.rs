//! The Arrow schema of a recording (schema version [`SCHEMA_VERSION`]).
//!
//! One row per event. Columns a stage does not have are null. Strings are plain UTF-8 columns
//! (Parquet dictionary-encodes them on disk), so DuckDB, pandas and polars read them as is.

use arrow_schema::{DataType, Field, Schema};
use std::sync::{Arc, OnceLock};

/// The version of the columns and metadata keys this build writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 2;

/// Columns every version has: the first this many of [`COLUMNS`]. Version 2 added the rest;
/// readers give them as nulls for a version 1 recording.
pub const V1_COLUMNS: usize = 30;

/// Column definitions: name, Arrow type, nullable, meaning. The README's schema table is checked
/// against this list by a test.
pub const COLUMNS: &[(&str, DataType, bool, &str)] = &[
    (
        "ts_ns",
        DataType::UInt64,
        false,
        "CLOCK_MONOTONIC time of the event, ns",
    ),
    ("cpu", DataType::UInt16, false, "CPU the event ran on"),
    ("kind", DataType::Utf8, false, "stage name"),
    (
        "skb",
        DataType::UInt64,
        true,
        "packet id: the skb address keyed-hashed per recording",
    ),
    ("sock", DataType::UInt64, true, "socket cookie"),
    (
        "pid",
        DataType::UInt32,
        true,
        "process id of the task the event ran in",
    ),
    ("comm", DataType::Utf8, true, "task name"),
    ("netns", DataType::UInt32, true, "network namespace inode"),
    ("ifindex", DataType::UInt32, true, "interface index"),
    ("family", DataType::UInt8, true, "4 or 6"),
    ("saddr", DataType::Utf8, true, "source address"),
    ("daddr", DataType::Utf8, true, "destination address"),
    ("sport", DataType::UInt16, true, "source port"),
    ("dport", DataType::UInt16, true, "destination port"),
    (
        "len",
        DataType::UInt32,
        true,
        "bytes: payload, skb length or buffer bytes by stage",
    ),
    ("seq", DataType::UInt32, true, "TCP sequence number"),
    (
        "segs",
        DataType::UInt16,
        true,
        "segments (GSO) of a retransmission",
    ),
    (
        "err",
        DataType::Int32,
        true,
        "error code of a retransmission attempt (0 = sent)",
    ),
    (
        "cwnd",
        DataType::UInt32,
        true,
        "congestion window, segments",
    ),
    (
        "ssthresh",
        DataType::UInt32,
        true,
        "slow-start threshold, segments",
    ),
    ("srtt_us", DataType::UInt32, true, "smoothed RTT, µs"),
    ("rttvar_us", DataType::UInt32, true, "RTT variance, µs"),
    ("snd_wnd", DataType::UInt32, true, "send window, bytes"),
    ("rcv_wnd", DataType::UInt32, true, "receive window, bytes"),
    ("packets_out", DataType::UInt32, true, "segments in flight"),
    (
        "retrans_out",
        DataType::UInt32,
        true,
        "retransmitted segments in flight",
    ),
    (
        "ca_state",
        DataType::Utf8,
        true,
        "congestion-avoidance state",
    ),
    ("state", DataType::Utf8, true, "TCP state (new)"),
    ("old_state", DataType::Utf8, true, "TCP state (previous)"),
    ("drop_reason", DataType::Utf8, true, "kernel drop reason"),
    (
        "cgroup",
        DataType::UInt64,
        true,
        "cgroup v2 id of the socket (v2)",
    ),
    (
        "task_cgroup",
        DataType::UInt64,
        true,
        "cgroup v2 id of the task, process context only (v2)",
    ),
    (
        "ack",
        DataType::UInt32,
        true,
        "TCP acknowledgment number (v2)",
    ),
    (
        "window",
        DataType::UInt16,
        true,
        "TCP window field, unscaled (v2)",
    ),
    ("tcp_flags", DataType::UInt8, true, "TCP flags byte (v2)"),
    (
        "tcp_hlen",
        DataType::UInt8,
        true,
        "TCP header bytes, options included (v2)",
    ),
];

/// The schema every recording of [`SCHEMA_VERSION`] has.
pub fn arrow_schema() -> Arc<Schema> {
    static SCHEMA: OnceLock<Arc<Schema>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(
                COLUMNS
                    .iter()
                    .map(|(name, ty, nullable, _)| Field::new(*name, ty.clone(), *nullable))
                    .collect::<Vec<_>>(),
            ))
        })
        .clone()
}

/// Columns that are dictionary-encoded on disk: text, and the 64-bit ids that repeat across
/// many rows. Small numbers (`cpu`, `pid`, `family`, `netns`, `ifindex`, ports, `segs`, `err`,
/// `tcp_hlen`) are plain and left to zstd: interning them was 4 % of the writer's instructions,
/// for 9 % fewer bytes.
pub const DICTIONARY_COLUMNS: &[&str] = &[
    "kind",
    "sock",
    "comm",
    "saddr",
    "daddr",
    "ca_state",
    "state",
    "old_state",
    "drop_reason",
    "cgroup",
    "task_cgroup",
];

/// Columns that grow steadily and compress best as deltas.
pub const DELTA_COLUMNS: &[&str] = &["ts_ns"];
