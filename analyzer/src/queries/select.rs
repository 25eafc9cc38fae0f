//! What part of a recording a report covers: `--port`, `--flow`, `--from`/`--to`, `--stage`.

use polars::prelude::*;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use tcptape_common::Stage;

/// One flow in packet orientation: `SADDR:SPORT-DADDR:DPORT` (IPv6 addresses in brackets).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flow {
    /// Source address.
    pub saddr: String,
    /// Source port.
    pub sport: u16,
    /// Destination address.
    pub daddr: String,
    /// Destination port.
    pub dport: u16,
}

impl Flow {
    /// The same connection seen the other way: source and destination swapped.
    pub fn reversed(&self) -> Flow {
        Flow {
            saddr: self.daddr.clone(),
            sport: self.dport,
            daddr: self.saddr.clone(),
            dport: self.sport,
        }
    }
}

fn endpoint(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            endpoint(&self.saddr, self.sport),
            endpoint(&self.daddr, self.dport)
        )
    }
}

fn parse_endpoint(s: &str) -> Result<(String, u16), String> {
    let (addr, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}' is not ADDR:PORT"))?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = addr
        .parse()
        .map_err(|_| format!("'{addr}' is not an IP address"))?;
    let port = port
        .parse()
        .map_err(|_| format!("'{port}' is not a port number"))?;
    Ok((ip.to_string(), port))
}

impl std::str::FromStr for Flow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // The separator is the '-' between the source port and the destination address.
        let (a, b) = s
            .split_once("-")
            .ok_or_else(|| format!("flow '{s}' is not SADDR:SPORT-DADDR:DPORT"))?;
        let (saddr, sport) = parse_endpoint(a)?;
        let (daddr, dport) = parse_endpoint(b)?;
        Ok(Flow {
            saddr,
            sport,
            daddr,
            dport,
        })
    }
}

/// The events and rows a report covers.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Keep events of these ports (source or destination); empty = all.
    pub ports: Vec<u16>,
    /// Keep events of these flows (either direction); empty = all.
    pub flows: Vec<Flow>,
    /// Keep events at or after this monotonic time, ns.
    pub from_ns: Option<u64>,
    /// Keep events before this monotonic time, ns.
    pub to_ns: Option<u64>,
    /// Show only latency rows that start or end at these stages; empty = all. Journeys are
    /// built from every stage regardless, so the rows shown keep their meaning.
    pub stages: Vec<Stage>,
    /// Keep only events of these flows (both directions listed), the flows of the cgroups that
    /// `--cgroup`/`--container` chose; `None` = all.
    pub cgroup_flows: Option<Arc<BTreeSet<Flow>>>,
}

impl Selection {
    /// The event filter of this selection (`true` when nothing is selected).
    pub fn predicate(&self) -> Expr {
        let mut p = lit(true);
        if let Some(from) = self.from_ns {
            p = p.and(col("ts_ns").gt_eq(lit(from)));
        }
        if let Some(to) = self.to_ns {
            p = p.and(col("ts_ns").lt(lit(to)));
        }
        if !self.ports.is_empty() {
            let any = self.ports.iter().fold(lit(false), |acc, &port| {
                acc.or(col("sport").eq(lit(port)))
                    .or(col("dport").eq(lit(port)))
            });
            p = p.and(any.fill_null(lit(false)));
        }
        if !self.flows.is_empty() {
            let any = self.flows.iter().fold(lit(false), |acc, f| {
                acc.or(flow_is(f)).or(flow_is(&f.reversed()))
            });
            p = p.and(any.fill_null(lit(false)));
        }
        p
    }

    /// The events of `lf` this selection keeps: [`Selection::predicate`], and the cgroups'
    /// flows (a join: a container can have thousands).
    pub fn apply(&self, lf: LazyFrame, rows: Expr) -> LazyFrame {
        let lf = lf.filter(rows.and(self.predicate()));
        let Some(flows) = &self.cgroup_flows else {
            return lf;
        };
        let saddr: Vec<&str> = flows.iter().map(|f| f.saddr.as_str()).collect();
        let daddr: Vec<&str> = flows.iter().map(|f| f.daddr.as_str()).collect();
        let sport: Vec<u16> = flows.iter().map(|f| f.sport).collect();
        let dport: Vec<u16> = flows.iter().map(|f| f.dport).collect();
        let keys = DataFrame::new_infer_height(vec![
            Column::new("saddr".into(), saddr),
            Column::new("sport".into(), sport),
            Column::new("daddr".into(), daddr),
            Column::new("dport".into(), dport),
        ])
        .expect("columns of one length");
        let on = [col("saddr"), col("sport"), col("daddr"), col("dport")];
        lf.join(
            keys.lazy(),
            on.clone(),
            on,
            JoinArgs {
                maintain_order: MaintainOrderJoin::Left,
                ..JoinArgs::new(JoinType::Inner)
            },
        )
    }

    /// True when every event is selected (whatever latency rows are shown).
    pub fn is_whole(&self) -> bool {
        self.cgroup_flows.is_none()
            && self.ports.is_empty()
            && self.flows.is_empty()
            && self.from_ns.is_none()
            && self.to_ns.is_none()
    }

    /// True when a latency row between these stages is shown.
    pub fn shows(&self, from: &str, to: &str) -> bool {
        self.stages.is_empty()
            || self
                .stages
                .iter()
                .any(|s| s.name() == from || s.name() == to)
    }
}

fn flow_is(f: &Flow) -> Expr {
    col("saddr")
        .eq(lit(f.saddr.as_str()))
        .and(col("sport").eq(lit(f.sport)))
        .and(col("daddr").eq(lit(f.daddr.as_str())))
        .and(col("dport").eq(lit(f.dport)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_parse_and_print_back() {
        let f: Flow = "10.0.0.1:40000-10.0.0.2:5201".parse().unwrap();
        assert_eq!(f.sport, 40000);
        assert_eq!(f.daddr, "10.0.0.2");
        assert_eq!(f.to_string(), "10.0.0.1:40000-10.0.0.2:5201");
        let v6: Flow = "[fd00::1]:1-[fd00::2]:2".parse().unwrap();
        assert_eq!(v6.saddr, "fd00::1");
        assert_eq!(v6.to_string(), "[fd00::1]:1-[fd00::2]:2");
        assert!("10.0.0.1:1".parse::<Flow>().is_err());
        assert!("x:1-10.0.0.2:2".parse::<Flow>().is_err());
        assert!("10.0.0.1:70000-10.0.0.2:2".parse::<Flow>().is_err());
    }
}

#[cfg(test)]
mod row_filter_tests {
    use super::*;
    use crate::queries::frame::collect;
    use crate::queries::scan;
    use crate::selection_args::matches;
    use tcptape_common::record::Record;
    use tcptape_common::synth::{write_file, Mix, SynthConfig};
    use tcptape_common::Recording;

    /// The row-at-a-time filter keeps exactly the rows the report's polars predicate keeps.
    #[test]
    fn matches_agrees_with_the_reports_predicate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.parquet");
        write_file(&path, SynthConfig::new(Mix::Bulk, 20_000, 8)).unwrap();
        let rec = Recording::open(&path).unwrap();
        let start = rec.meta().start_ns;
        let rows: Vec<Record> = rec
            .batches(None)
            .flat_map(|b| Record::from_batch(&b.unwrap()).unwrap())
            .collect();
        let flow: Flow = "10.200.0.2:5201-10.200.0.1:40007".parse().unwrap();
        let selections = [
            Selection::default(),
            Selection {
                ports: vec![40014],
                ..Selection::default()
            },
            Selection {
                flows: vec![flow],
                ..Selection::default()
            },
            Selection {
                ports: vec![5201],
                from_ns: Some(start + 5_000_000),
                to_ns: Some(start + 9_000_000),
                ..Selection::default()
            },
        ];
        for sel in selections {
            let polars_rows = collect(
                scan::scan(&rec.files())
                    .unwrap()
                    .filter(sel.predicate())
                    .select([col("ts_ns")]),
            )
            .unwrap()
            .height();
            let ours = rows.iter().filter(|r| matches(&sel, r)).count();
            assert!(ours > 0, "{sel:?}");
            assert_eq!(ours, polars_rows, "{sel:?}");
        }
    }
}
