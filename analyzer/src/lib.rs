//! # tcptape-analyzer: the `tcptape` binary's library
//!
//! Reads recordings through [`tcptape_common::reader`] (which refuses bad input with one-line
//! errors) and turns them into reports. The pipeline of `tcptape report`: [`inputs`] opens and
//! groups the recordings by host; [`queries`] holds every polars query (each report a
//! `LazyFrame -> LazyFrame` function); [`journey`] groups hop events into per-packet journeys;
//! [`report`] runs the queries into the [`model::Report`]; [`render`] lays it out as a table,
//! Markdown or HTML (JSON is the model serialized). Never needs root and never links aya, so it builds and
//! runs on any OS.
#![deny(missing_docs)]

pub mod anonymize_command;
pub mod cli;
pub mod clone_link;
pub mod cross_host;
pub mod diff;
pub mod exit_code;
pub mod export;
pub mod frame;
pub mod gso_link;
pub mod hop_table;
pub mod info;
pub mod inputs;
pub mod journey;
pub mod latency_sections;
pub mod latency_stats;
pub mod model;
pub mod per_packet;
pub mod progress;
pub mod queries;
pub mod radix;
pub mod render;
pub mod replay;
pub mod report;
pub mod report_command;
pub mod segment;
pub mod tcp_sections;
pub mod units;
