//! The events at a host's edges, for the join between hosts
//! ([`crate::journeys::cross_host`]): segments put on and taken off the wire (`tx_driver`,
//! `rx_driver`, `rx_netif`) and the application's writes and reads (`tx_sendmsg`, `rx_app`).

use crate::queries::frame::{collect, strs, u64s};
use crate::queries::scan::{events, scan};
use crate::queries::select::Selection;
use crate::queries::STAGE;
use std::path::PathBuf;
use tcptape_common::Stage;

/// The edge events of a set of recording files, one entry per event, `None` where it has no
/// value.
pub struct EdgeEvents {
    /// Time, monotonic ns.
    pub ts: Vec<Option<u64>>,
    /// Stage code.
    pub stage: Vec<Option<u64>>,
    /// Source address.
    pub saddr: Vec<Option<String>>,
    /// Source port.
    pub sport: Vec<Option<u64>>,
    /// Destination address.
    pub daddr: Vec<Option<String>>,
    /// Destination port.
    pub dport: Vec<Option<u64>>,
    /// TCP sequence number.
    pub seq: Vec<Option<u64>>,
    /// Payload bytes.
    pub len: Vec<Option<u64>>,
}

/// Reads the edge events of `files` (every event, no selection: the join needs both ends).
pub fn edge_events(files: &[PathBuf]) -> anyhow::Result<EdgeEvents> {
    let cols = [
        "ts_ns", "kind", "saddr", "daddr", "sport", "dport", "seq", "len",
    ];
    let stages = [
        Stage::TxDriver,
        Stage::RxDriver,
        Stage::RxNetif,
        Stage::TxSendmsg,
        Stage::RxApp,
    ];
    let df = collect(events(scan(files)?, &cols, &stages, &Selection::default())?)?;
    Ok(EdgeEvents {
        ts: u64s(&df, "ts_ns")?,
        stage: u64s(&df, STAGE)?,
        saddr: strs(&df, "saddr")?,
        sport: u64s(&df, "sport")?,
        daddr: strs(&df, "daddr")?,
        dport: u64s(&df, "dport")?,
        seq: u64s(&df, "seq")?,
        len: u64s(&df, "len")?,
    })
}
