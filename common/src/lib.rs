//! # tcptape-common: the event model both sides of tcptape share
//!
//! A recording flows through these modules in order:
//!
//! 1. [`stage`]: the stages a packet passes, with stable names and codes;
//! 2. [`event`]: [`event::RawEvent`], the fixed-layout struct the eBPF programs write into the
//!    ring buffer (mirrored in `ebpf/include/event.h`);
//! 3. [`encode`]: raw events → Arrow batches with the [`schema`] (skb addresses keyed-hashed,
//!    addresses and states as text);
//! 4. [`parquet_file`]: one crash-safe Parquet file, with the [`metadata`] contract in its footer;
//! 5. [`reader`]: opening a file or a segment directory with clear errors for bad input;
//! 6. [`record`]: decoded rows, for code that wants one event at a time.
//!
//! [`synth`] makes recordings with known per-stage delays, for tests and benchmarks that run
//! without root. Nothing here loads eBPF: the `aya` feature only adds `aya::Pod` for the raw event,
//! so the analyzer never links aya. Both tools write to stderr through
//! [`note!`], which a closed stderr cannot fail.
#![deny(missing_docs)]

pub mod anonymize;
pub mod cgroup_identity;
pub mod encode;
pub mod event;
pub mod metadata;
pub mod parquet_file;
pub mod reader;
pub mod record;
pub mod schema;
pub mod shell_integration;
pub mod stage;
pub mod stderr_note;
pub mod synth;
pub mod tcp_names;

/// Re-exported for readers of the string columns.
pub use arrow_array;
pub use event::RawEvent;
pub use metadata::RecordingMeta;
pub use reader::{ReadError, Recording};
pub use stage::Stage;
