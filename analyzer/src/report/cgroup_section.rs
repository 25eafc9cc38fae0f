//! The report's per-cgroup section: each cgroup's (container's, pod's, unit's) sockets, bytes,
//! retransmissions and drops, and the latency of its packets, named from the recordings'
//! metadata.

use crate::queries::cgroups::{self, FlowOwners};
use crate::queries::select::Selection;
use crate::report::model::{CgroupShare, StageLatency};
use std::collections::BTreeSet;
use std::path::PathBuf;
use tcptape_common::metadata::RecordingMeta;

/// Each cgroup's share: its sockets' totals, its packets' drops and latency, named from the
/// recordings' metadata; most bytes first.
pub fn build(
    files: &[PathBuf],
    sel: &Selection,
    owners: &FlowOwners,
    metas: &[RecordingMeta],
    latency: &[(u64, StageLatency)],
) -> anyhow::Result<Vec<CgroupShare>> {
    if owners.is_empty() {
        return Ok(Vec::new());
    }
    let totals = cgroups::totals(files, sel)?;
    let drops = cgroups::drops(files, sel, owners)?;
    let flows = owners.flow_counts();
    let ids: BTreeSet<u64> = totals
        .keys()
        .chain(drops.keys())
        .chain(latency.iter().map(|(id, _)| id))
        .copied()
        .collect();
    let mut shares: Vec<CgroupShare> = ids
        .into_iter()
        .map(|id| {
            let name = metas.iter().flat_map(|m| &m.cgroups).find(|n| n.id == id);
            let t = totals.get(&id).cloned().unwrap_or_default();
            CgroupShare {
                cgroup: id,
                path: name.and_then(|n| n.path.clone()),
                workload: name.and_then(|n| n.identity.clone()),
                flows: flows.get(&id).copied().unwrap_or(0),
                sockets: t.sockets,
                bytes_written: t.bytes_written,
                bytes_read: t.bytes_read,
                retransmitted_segments: t.retransmitted_segments,
                drops: drops.get(&id).copied().unwrap_or(0),
                stages: latency
                    .iter()
                    .filter(|(c, l)| *c == id && sel.shows(&l.from, &l.to))
                    .map(|(_, l)| l.clone())
                    .collect(),
            }
        })
        .collect();
    shares.sort_by_key(|s| (std::cmp::Reverse(s.bytes_written + s.bytes_read), s.cgroup));
    Ok(shares)
}
