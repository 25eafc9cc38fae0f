//! # tcptape-recorder: the `tcptape-record` binary's library
//!
//! Data flows kernel event → ring buffer → batch → Parquet:
//! the capture side drains the ring buffer into batches of [`tcptape_common::RawEvent`], hands
//! them to the [`write_pipeline`] (a writer thread behind a bounded queue), which encodes them and
//! writes finished segments with the [`segment_writer`].
//!
//! [`synth_command`] feeds the same writer with synthetic events, which is how the writer is
//! tested and benchmarked without root.
#![deny(missing_docs)]

pub mod cli;
pub mod exit_code;
pub mod segment_writer;
pub mod synth_command;
pub mod write_pipeline;
