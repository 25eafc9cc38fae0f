//! # tcptape-analyzer: the `tcptape` binary's library
//!
//! Reads recordings through [`tcptape_common::reader`] (which refuses bad input with one-line
//! errors) and turns them into reports, in the order of the data flow: [`inputs`] opens and
//! groups the recordings by host; [`queries`] holds every polars query over the Parquet files
//! (each report a `LazyFrame -> LazyFrame` function) and reads their results into plain Rust
//! values; [`journeys`] groups hop events, as plain columns, into per-packet journeys, once, for
//! every command; [`report`] runs the queries into the
//! [`report::model::Report`] and lays it out ([`report::render`]: table, Markdown or HTML; JSON
//! is the model serialized); [`diff`], [`replay`] and [`export`] reuse the report and the
//! journeys; [`selection_args`] is the selection every command takes. Never needs root and never
//! links aya, so it builds and runs on any OS.
#![deny(missing_docs)]

pub mod anonymize_command;
pub mod cli;
pub mod diff;
pub mod exit_code;
pub mod export;
pub mod info;
pub mod inputs;
pub mod journeys;
pub mod progress;
pub mod queries;
pub mod replay;
pub mod report;
pub mod selection_args;
pub mod sql_command;
pub mod units;
