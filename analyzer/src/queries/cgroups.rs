//! Flows and cgroups: which cgroup (container, unit) each flow belongs to, the flows of chosen
//! cgroups, and each cgroup's totals. The `cgroup` column is the socket's own cgroup, on the
//! socket stages, in the socket's orientation (its local end is the source).

use super::frame::{collect, flow_values, u64s};
use super::scan::scan;
use super::select::{Flow, Selection};
use polars::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use tcptape_common::Stage;

/// The cgroup of each flow whose socket is on the recording host, in the socket's orientation.
#[derive(Debug, Default, Clone)]
pub struct FlowOwners {
    by_flow: HashMap<Flow, u64>,
}

impl FlowOwners {
    /// Read from the whole recording: a flow's owner is known even where a selection's time
    /// range leaves its socket's events out.
    ///
    /// A flow named by sockets of two cgroups (recordings whose receive-side socket stages name
    /// the flow in the packet's orientation, as synthetic ones do) is the one's that sent on it.
    pub fn read(files: &[PathBuf]) -> anyhow::Result<FlowOwners> {
        let sent = col("kind")
            .eq(lit(Stage::TxSendmsg.name()))
            .or(col("kind").eq(lit(Stage::TxTcpXmit.name())))
            .cast(DataType::UInt64)
            .sum()
            .alias("sent");
        let lf = scan(files)
            .map_err(super::frame::one_line)?
            // A listener's and a connecting socket's events before its port is chosen name
            // no flow (port 0).
            .filter(
                col("cgroup")
                    .is_not_null()
                    .and(col("sport").neq(lit(0u16)))
                    .and(col("dport").neq(lit(0u16))),
            )
            .group_by([
                col("saddr"),
                col("sport"),
                col("daddr"),
                col("dport"),
                col("cgroup"),
            ])
            .agg([sent]);
        let df = collect(lf)?;
        let (ids, sent) = (u64s(&df, "cgroup")?, u64s(&df, "sent")?);
        let mut best: HashMap<Flow, (u64, u64)> = HashMap::new();
        for ((f, id), n) in flow_values(&df)?.into_iter().zip(ids).zip(sent) {
            let (Some(f), Some(id)) = (f, id) else {
                continue;
            };
            let n = n.unwrap_or(0);
            let e = best.entry(f).or_insert((n, id));
            // Most sends first, then the smaller id: the same owner whatever the row order.
            if (n, std::cmp::Reverse(id)) > (e.0, std::cmp::Reverse(e.1)) {
                *e = (n, id);
            }
        }
        let by_flow = best.into_iter().map(|(f, (_, id))| (f, id)).collect();
        Ok(FlowOwners { by_flow })
    }

    /// The cgroup a packet of `flow` (packet orientation) counts for: its sender's socket when
    /// that is on this host, else its receiver's.
    pub fn owner(&self, flow: &Flow) -> Option<u64> {
        self.by_flow
            .get(flow)
            .or_else(|| self.by_flow.get(&flow.reversed()))
            .copied()
    }

    /// True when no flow has a known cgroup (a version 1 recording, or no socket event).
    pub fn is_empty(&self) -> bool {
        self.by_flow.is_empty()
    }

    /// The cgroups that own a flow.
    pub fn cgroups(&self) -> BTreeSet<u64> {
        self.by_flow.values().copied().collect()
    }

    /// The flows (in their sockets' orientation) of each cgroup.
    pub fn flow_counts(&self) -> BTreeMap<u64, u64> {
        let mut n = BTreeMap::new();
        for id in self.by_flow.values() {
            *n.entry(*id).or_insert(0) += 1;
        }
        n
    }
}

/// The flows, both directions, of every socket or task event in one of the cgroups `ids`: what
/// `--cgroup`/`--container` keep.
pub fn flows_in(files: &[PathBuf], ids: &BTreeSet<u64>) -> anyhow::Result<BTreeSet<Flow>> {
    let any = ids.iter().fold(lit(false), |acc, &id| {
        acc.or(col("cgroup").eq(lit(id)).fill_null(lit(false)))
            .or(col("task_cgroup").eq(lit(id)).fill_null(lit(false)))
    });
    let lf = scan(files)
        .map_err(super::frame::one_line)?
        .filter(any.and(col("sport").is_not_null()))
        .group_by([col("saddr"), col("sport"), col("daddr"), col("dport")])
        .agg([len().alias("events")]);
    let mut flows: BTreeSet<Flow> = BTreeSet::new();
    for f in flow_values(&collect(lf)?)?.into_iter().flatten() {
        flows.insert(f.reversed());
        flows.insert(f);
    }
    Ok(flows)
}

/// One cgroup's socket events, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupTotals {
    /// Sockets (connections, listeners) with an event in the selection.
    pub sockets: u64,
    /// Bytes the applications wrote (`tx_sendmsg`).
    pub bytes_written: u64,
    /// Bytes the applications read (`rx_app`).
    pub bytes_read: u64,
    /// Segments retransmitted (`retransmit`).
    pub retransmitted_segments: u64,
}

/// Each cgroup's totals over the selected socket events.
pub fn totals(files: &[PathBuf], sel: &Selection) -> anyhow::Result<BTreeMap<u64, CgroupTotals>> {
    let kind_is = |s: Stage| col("kind").eq(lit(s.name()));
    let sum_when = |s: Stage, v: Expr| {
        when(kind_is(s))
            .then(v.cast(DataType::UInt64))
            .otherwise(lit(0u64))
            .sum()
    };
    let lf = sel
        .apply(
            scan(files).map_err(super::frame::one_line)?,
            col("cgroup").is_not_null(),
        )
        .group_by([col("cgroup")])
        .agg([
            col("sock").n_unique().alias("sockets"),
            sum_when(Stage::TxSendmsg, col("len").fill_null(lit(0u32))).alias("written"),
            sum_when(Stage::RxApp, col("len").fill_null(lit(0u32))).alias("read"),
            sum_when(Stage::Retransmit, col("segs").fill_null(lit(1u16))).alias("retrans"),
        ]);
    let df = collect(lf)?;
    let ids = u64s(&df, "cgroup")?;
    let [sockets, written, read, retrans] =
        ["sockets", "written", "read", "retrans"].map(|c| u64s(&df, c));
    let (sockets, written, read, retrans) = (sockets?, written?, read?, retrans?);
    Ok((0..df.height())
        .filter_map(|i| {
            Some((
                ids[i]?,
                CgroupTotals {
                    sockets: sockets[i].unwrap_or(0),
                    bytes_written: written[i].unwrap_or(0),
                    bytes_read: read[i].unwrap_or(0),
                    retransmitted_segments: retrans[i].unwrap_or(0),
                },
            ))
        })
        .collect())
}

/// Drops per cgroup: each selected `drop` event counts for the owner of its packet's flow.
pub fn drops(
    files: &[PathBuf],
    sel: &Selection,
    owners: &FlowOwners,
) -> anyhow::Result<BTreeMap<u64, u64>> {
    let lf = sel
        .apply(
            scan(files).map_err(super::frame::one_line)?,
            col("kind").eq(lit(Stage::Drop.name())),
        )
        .group_by([col("saddr"), col("sport"), col("daddr"), col("dport")])
        .agg([len().alias("drops")]);
    let df = collect(lf)?;
    let n = u64s(&df, "drops")?;
    let mut out = BTreeMap::new();
    for (f, n) in flow_values(&df)?.into_iter().zip(n) {
        if let Some(id) = f.and_then(|f| owners.owner(&f)) {
            *out.entry(id).or_insert(0) += n.unwrap_or(0);
        }
    }
    Ok(out)
}
