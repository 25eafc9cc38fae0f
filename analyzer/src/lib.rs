//! # tcptape-analyzer: the `tcptape` binary's library
//!
//! Reads recordings through [`tcptape_common::reader`] (which refuses bad input with one-line
//! errors) and turns them into reports. Never needs root and never links aya, so it builds and
//! runs on any OS.
#![deny(missing_docs)]

pub mod cli;
pub mod exit_code;
pub mod info;
pub mod units;
