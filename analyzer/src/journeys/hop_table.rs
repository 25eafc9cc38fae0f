//! The collected hop events as plain columns: what the journey split, the clone join and the
//! latency sort read millions of times, by row number, without a DataFrame in between.
//!
//! Flows are interned to small ids ([`Flows`]), for the first hop of each journey only (every hop
//! takes its journey's flow): a flow's text (addresses) is read once per flow, not per event.

use crate::queries::select::Flow;
use polars::prelude::*;
use rustc_hash::FxHashMap;

/// A flow as the recording's columns name it: address category ids and ports (`None` where the
/// event has none). Equal keys are equal flows: addresses are global categories.
pub type FlowKey = (Option<u32>, Option<u16>, Option<u32>, Option<u16>);

/// The flow id of events that name no flow (no source port).
pub const NO_FLOW: u32 = 0;

/// The flows of a set of frames, numbered from 1 in order of first appearance.
pub struct Flows {
    ids: FxHashMap<FlowKey, u32>,
    /// Each id as a flow, `None` where a part is unknown.
    flows: Vec<Option<Flow>>,
}

impl Default for Flows {
    fn default() -> Flows {
        Flows {
            ids: FxHashMap::default(),
            flows: vec![None],
        }
    }
}

/// Calls `f` with each value of a numeric column, in order, `None` for a null.
fn each_value<T: PolarsNumericType>(
    df: &DataFrame,
    name: &str,
    mut f: impl FnMut(Option<T::Native>),
) -> PolarsResult<()> {
    let c = df.column(name)?.cast(&T::get_static_dtype())?;
    let ca: &ChunkedArray<T> = c.as_materialized_series().unpack()?;
    for a in ca.downcast_iter() {
        match a.validity() {
            None => a.values().iter().for_each(|x| f(Some(*x))),
            Some(v) => a
                .values()
                .iter()
                .zip(v.iter())
                .for_each(|(x, ok)| f(ok.then_some(*x))),
        }
    }
    Ok(())
}

/// The values of a numeric column, nulls as `None`.
pub fn options<T: PolarsNumericType>(
    df: &DataFrame,
    name: &str,
) -> PolarsResult<Vec<Option<T::Native>>> {
    let mut out = Vec::with_capacity(df.height());
    each_value::<T>(df, name, |v| out.push(v))?;
    Ok(out)
}

/// The values of a column without nulls (a null, which the schema rules out, reads as 0).
fn values<T: PolarsNumericType>(df: &DataFrame, name: &str) -> PolarsResult<Vec<T::Native>> {
    let mut out = Vec::with_capacity(df.height());
    each_value::<T>(df, name, |v| out.push(v.unwrap_or_default()))?;
    Ok(out)
}

/// Category ids of a text column (cast to global categories when it is plain text).
fn category_ids(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<u32>>> {
    let c = df.column(name)?;
    let c = if c.dtype().is_categorical() {
        c.clone()
    } else {
        c.cast(&DataType::from_categories(Categories::global()))?
    };
    let p = c.to_physical_repr().cast(&DataType::UInt32)?;
    Ok(p.u32()?.iter().collect())
}

impl Flows {
    /// The flow id of every row of `df` (columns `saddr`, `sport`, `daddr`, `dport`):
    /// [`NO_FLOW`] where `sport` is null.
    pub fn intern(&mut self, df: &DataFrame) -> PolarsResult<Vec<u32>> {
        let (sa, sp, da, dp) = (
            category_ids(df, "saddr")?,
            options::<UInt16Type>(df, "sport")?,
            category_ids(df, "daddr")?,
            options::<UInt16Type>(df, "dport")?,
        );
        let mut out = Vec::with_capacity(df.height());
        let mut new_rows: Vec<usize> = Vec::new();
        let mut last: Option<(FlowKey, u32)> = None;
        for i in 0..df.height() {
            if sp[i].is_none() {
                out.push(NO_FLOW);
                continue;
            }
            let key = (sa[i], sp[i], da[i], dp[i]);
            // Consecutive events are often of one flow.
            let id = match last {
                Some((k, id)) if k == key => id,
                _ => {
                    // Ids from 1: 0 is NO_FLOW.
                    let next = self.ids.len() as u32 + 1;
                    let id = *self.ids.entry(key).or_insert_with(|| {
                        new_rows.push(i);
                        next
                    });
                    last = Some((key, id));
                    id
                }
            };
            out.push(id);
        }
        for i in new_rows {
            // The one row only: casting a whole column of categories to text would build
            // millions of strings.
            let row = df.slice(i as i64, 1);
            let s = |c: &str| -> PolarsResult<Option<String>> {
                Ok(row
                    .column(c)?
                    .cast(&DataType::String)?
                    .str()?
                    .get(0)
                    .map(Into::into))
            };
            let u = |c: &str| -> PolarsResult<Option<u64>> {
                Ok(row.column(c)?.cast(&DataType::UInt64)?.u64()?.get(0))
            };
            let flow = match (s("saddr")?, u("sport")?, s("daddr")?, u("dport")?) {
                (Some(saddr), Some(sport), Some(daddr), Some(dport)) => Some(Flow {
                    saddr,
                    sport: sport as u16,
                    daddr,
                    dport: dport as u16,
                }),
                _ => None,
            };
            self.flows.push(flow);
        }
        Ok(out)
    }

    /// A flow id as a flow, when all four parts are known.
    pub fn flow(&self, id: u32) -> Option<&Flow> {
        self.flows[id as usize].as_ref()
    }

    /// Every flow id's flow, by id.
    pub fn all(&self) -> &[Option<Flow>] {
        &self.flows
    }
}

/// The packet id of every event that has one, with its row number.
pub fn packet_ids(df: &DataFrame) -> PolarsResult<Vec<(u64, u32)>> {
    let mut out = Vec::with_capacity(df.height());
    let mut row = 0u32;
    each_value::<UInt64Type>(df, "skb", |id| {
        if let Some(id) = id {
            out.push((id, row));
        }
        row += 1;
    })?;
    Ok(out)
}

/// Hop events (the columns of [`crate::queries::scan::HOP_COLUMNS`] with `stage` and `rank`),
/// one vector per column, in the order they were collected.
pub struct HopTable {
    /// Event time, monotonic ns.
    pub ts: Vec<u64>,
    /// Stage code.
    pub stage: Vec<u8>,
    /// Journey rank of the stage.
    pub rank: Vec<u8>,
    /// CPU.
    pub cpu: Vec<u16>,
    /// Source port, as the event names it (the socket's side for socket stages).
    pub sport: Vec<Option<u16>>,
    /// Destination port, likewise.
    pub dport: Vec<Option<u16>>,
    /// TCP sequence number.
    pub seq: Vec<Option<u32>>,
}

impl HopTable {
    /// Reads collected hop events.
    pub fn new(df: &DataFrame) -> anyhow::Result<HopTable> {
        use crate::queries::{RANK, STAGE};
        anyhow::ensure!(df.height() < u32::MAX as usize, "too many hop events");
        Ok(HopTable {
            ts: values::<UInt64Type>(df, "ts_ns")?,
            stage: values::<UInt8Type>(df, STAGE)?,
            rank: options::<UInt8Type>(df, RANK)?
                .into_iter()
                .map(|r| r.unwrap_or(u8::MAX))
                .collect(),
            cpu: values::<UInt16Type>(df, "cpu")?,
            sport: options::<UInt16Type>(df, "sport")?,
            dport: options::<UInt16Type>(df, "dport")?,
            seq: options::<UInt32Type>(df, "seq")?,
        })
    }
}
