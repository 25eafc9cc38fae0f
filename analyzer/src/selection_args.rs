//! The selection flags every command shares (`--flow`, `--port`, `--stage`, `--from`, `--to`),
//! turned into the report's [`Selection`]; and that selection applied one decoded event at a
//! time, for the commands that stream (`replay`, `export`).

use crate::queries::select::{Flow, Selection};
use clap::Args;
use tcptape_common::record::Record;
use tcptape_common::Stage;

/// Which events: the same flags, with the same meaning, in every command.
#[derive(Debug, Clone, Default, Args)]
pub struct SelectionArgs {
    /// Only events of this flow, either direction: `SADDR:SPORT-DADDR:DPORT`, IPv6 in brackets
    /// (repeatable).
    #[arg(long, value_name = "F")]
    pub flow: Vec<Flow>,
    /// Only events of this port, source or destination (repeatable, or comma-separated).
    #[arg(long, value_name = "P", value_delimiter = ',')]
    pub port: Vec<u16>,
    /// Only this stage (repeatable, or comma-separated): the latency rows that start or end at
    /// it (`report`, `diff`; journeys still use every recorded stage), its events (`replay`),
    /// the journeys that pass it (`replay --journeys`, `export`).
    #[arg(long, value_name = "S", value_delimiter = ',')]
    pub stage: Vec<Stage>,
    /// Only events from this long after the start of the recording (`10s`, `1m30s`, `250ms`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub from: Option<std::time::Duration>,
    /// Only events until this long after the start of the recording.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub to: Option<std::time::Duration>,
}

impl SelectionArgs {
    /// The selection for a recording that starts at `start_ns`.
    pub fn selection(&self, start_ns: u64) -> anyhow::Result<Selection> {
        if let (Some(f), Some(t)) = (self.from, self.to) {
            anyhow::ensure!(f < t, "--from {f:?} is not before --to {t:?}");
        }
        Ok(Selection {
            ports: self.port.clone(),
            flows: self.flow.clone(),
            from_ns: self.from.map(|d| start_ns + d.as_nanos() as u64),
            to_ns: self.to.map(|d| start_ns + d.as_nanos() as u64),
            stages: self.stage.clone(),
        })
    }
}

fn flow_is(r: &Record, f: &Flow) -> bool {
    r.saddr.as_deref() == Some(f.saddr.as_str())
        && r.sport == Some(f.sport)
        && r.daddr.as_deref() == Some(f.daddr.as_str())
        && r.dport == Some(f.dport)
}

/// True when one event passes the selection: the row-at-a-time form of
/// [`Selection::predicate`] (time range, ports, flows in either direction), plus the stage list.
pub fn matches(sel: &Selection, r: &Record) -> bool {
    if sel.from_ns.is_some_and(|f| r.ts_ns < f) || sel.to_ns.is_some_and(|t| r.ts_ns >= t) {
        return false;
    }
    if !sel.ports.is_empty()
        && !sel
            .ports
            .iter()
            .any(|p| r.sport == Some(*p) || r.dport == Some(*p))
    {
        return false;
    }
    if !sel.flows.is_empty()
        && !sel
            .flows
            .iter()
            .any(|f| flow_is(r, f) || flow_is(r, &f.reversed()))
    {
        return false;
    }
    sel.stages.is_empty() || sel.stages.iter().any(|s| s.name() == r.kind)
}
