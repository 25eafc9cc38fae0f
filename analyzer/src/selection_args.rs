//! The selection flags every command shares (`--flow`, `--port`, `--stage`, `--from`, `--to`,
//! `--cgroup`, `--container`),
//! turned into the report's [`Selection`]; and that selection applied one decoded event at a
//! time, for the commands that stream (`replay`, `export`).

use crate::queries::select::{Flow, Selection};
use clap::Args;
use std::collections::BTreeSet;
use std::sync::Arc;
use tcptape_common::metadata::CgroupName;
use tcptape_common::record::Record;
use tcptape_common::{Recording, Stage};

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
    /// the journeys that pass it (`replay --journeys`, `export`), the stages whose packets are
    /// written (`export --format pcapng`).
    #[arg(long, value_name = "S", value_delimiter = ',')]
    pub stage: Vec<Stage>,
    /// Only events from this long after the start of the recording (`10s`, `1m30s`, `250ms`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub from: Option<std::time::Duration>,
    /// Only events until this long after the start of the recording.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub to: Option<std::time::Duration>,
    /// Only the flows of this cgroup and those below it: a path below the cgroup v2 root as
    /// `tcptape info` lists them (`/system.slice/nginx.service`, `/kubepods.slice`); repeatable.
    /// A flow is a cgroup's when one of its sockets or tasks on the recording host is in it.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Vec<String>,
    /// Only the flows of this container (id or its first 12+ hex digits), Kubernetes pod (UID)
    /// or systemd unit (`nginx.service`), as `tcptape info` lists them; repeatable.
    #[arg(long, value_name = "ID")]
    pub container: Vec<String>,
}

impl SelectionArgs {
    /// The selection of each host's recordings: with several hosts, one whose recordings do
    /// not name a cgroup that `--cgroup`/`--container` give contributes nothing (an empty
    /// selection) rather than stopping the command, unless no host names one.
    pub fn selections<'a>(
        &self,
        hosts: impl IntoIterator<Item = &'a [Recording]>,
    ) -> anyhow::Result<Vec<Selection>> {
        let hosts: Vec<&[Recording]> = hosts.into_iter().collect();
        let chosen: Vec<anyhow::Result<Option<BTreeSet<u64>>>> =
            hosts.iter().map(|recs| self.chosen_in(recs)).collect();
        let lenient = hosts.len() > 1 && chosen.iter().any(Result::is_ok);
        hosts
            .iter()
            .zip(chosen)
            .map(|(recs, ids)| match ids {
                Ok(ids) => self.select(recs, ids),
                Err(_) if lenient => {
                    let mut none = self.select(recs, None)?;
                    none.cgroup_flows = Some(Arc::new(BTreeSet::new()));
                    Ok(none)
                }
                Err(e) => Err(e),
            })
            .collect()
    }

    /// The selection for these recordings (of one host): times count from their start, and
    /// `--cgroup`/`--container` are looked up in what they recorded.
    pub fn selection(&self, recs: &[Recording]) -> anyhow::Result<Selection> {
        let ids = self.chosen_in(recs)?;
        self.select(recs, ids)
    }

    /// The ids of the cgroups `--cgroup`/`--container` name in these recordings (`None` when
    /// neither is given).
    fn chosen_in(&self, recs: &[Recording]) -> anyhow::Result<Option<BTreeSet<u64>>> {
        if self.cgroup.is_empty() && self.container.is_empty() {
            return Ok(None);
        }
        let mut names: Vec<CgroupName> = Vec::new();
        for n in recs.iter().flat_map(|r| r.meta().cgroups) {
            if !names.iter().any(|k| k.id == n.id) {
                names.push(n);
            }
        }
        chosen_cgroups(&self.cgroup, &self.container, &names).map(Some)
    }

    /// The selection of these recordings, keeping the flows of the cgroups `ids` when given.
    fn select(&self, recs: &[Recording], ids: Option<BTreeSet<u64>>) -> anyhow::Result<Selection> {
        if let (Some(f), Some(t)) = (self.from, self.to) {
            anyhow::ensure!(f < t, "--from {f:?} is not before --to {t:?}");
        }
        let start_ns = recs.iter().map(|r| r.meta().start_ns).min().unwrap_or(0);
        let cgroup_flows = match ids {
            None => None,
            Some(ids) => {
                let files: Vec<_> = recs.iter().flat_map(|r| r.files()).collect();
                Some(Arc::new(crate::queries::cgroups::flows_in(&files, &ids)?))
            }
        };
        Ok(Selection {
            ports: self.port.clone(),
            flows: self.flow.clone(),
            from_ns: self.from.map(|d| start_ns + d.as_nanos() as u64),
            to_ns: self.to.map(|d| start_ns + d.as_nanos() as u64),
            stages: self.stage.clone(),
            cgroup_flows,
        })
    }
}

/// The ids of the cgroups `--cgroup PATH` (the cgroup and those below it) and `--container ID`
/// name among those a recording names; an argument that names none is an error that lists
/// what the recording has.
pub fn chosen_cgroups(
    paths: &[String],
    containers: &[String],
    names: &[CgroupName],
) -> anyhow::Result<BTreeSet<u64>> {
    let listed = || {
        let mut v: Vec<String> = names
            .iter()
            .filter_map(|n| n.path.clone())
            .collect::<Vec<_>>();
        v.sort();
        if v.is_empty() {
            "it names no cgroup (recorded before tcptape kept them, or synthetic)".to_string()
        } else {
            format!("it names: {}", v.join(", "))
        }
    };
    let mut ids = BTreeSet::new();
    for p in paths {
        let want = format!("/{}", p.trim_matches('/'));
        let below =
            |path: &str| want == "/" || path == want || path.starts_with(&format!("{want}/"));
        let found: Vec<u64> = names
            .iter()
            .filter(|n| n.path.as_deref().is_some_and(below))
            .map(|n| n.id)
            .collect();
        anyhow::ensure!(
            !found.is_empty(),
            "--cgroup {p}: no cgroup of the recording is {want} or below it; {}",
            listed()
        );
        ids.extend(found);
    }
    for c in containers {
        let c = c.trim();
        let found: Vec<&CgroupName> = names
            .iter()
            .filter(|n| {
                n.identity.as_ref().is_some_and(|i| {
                    i.container
                        .as_deref()
                        .is_some_and(|id| c.len() >= 4 && id.starts_with(c))
                        || i.pod_uid.as_deref() == Some(c)
                        || i.unit.as_deref() == Some(c)
                })
            })
            .collect();
        anyhow::ensure!(
            !found.is_empty(),
            "--container {c}: no container, pod or unit of the recording is {c}; {}",
            listed()
        );
        let containers: BTreeSet<&str> = found
            .iter()
            .filter_map(|n| n.identity.as_ref()?.container.as_deref())
            .collect();
        anyhow::ensure!(
            containers.len() <= 1
                || found
                    .iter()
                    .all(|n| { n.identity.as_ref().and_then(|i| i.pod_uid.as_deref()) == Some(c) }),
            "--container {c}: {} containers start with it; give more of the id",
            containers.len()
        );
        ids.extend(found.iter().map(|n| n.id));
    }
    Ok(ids)
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
    if let Some(flows) = &sel.cgroup_flows {
        let flow = match (&r.saddr, r.sport, &r.daddr, r.dport) {
            (Some(sa), Some(sp), Some(da), Some(dp)) => Flow {
                saddr: sa.clone(),
                sport: sp,
                daddr: da.clone(),
                dport: dp,
            },
            _ => return false,
        };
        if !flows.contains(&flow) {
            return false;
        }
    }
    sel.stages.is_empty() || sel.stages.iter().any(|s| s.name() == r.kind)
}
