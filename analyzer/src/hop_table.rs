//! The collected hop events as plain columns: what the journey split, the clone join and the
//! latency sort read millions of times, by row number, without a DataFrame in between.
//!
//! Flows are interned to small ids ([`Flows`]), for the first hop of each journey only (every hop
//! takes its journey's flow): a flow's text (addresses) is read once per flow, not per event.

use polars::prelude::*;
use rustc_hash::FxHashMap;

/// A flow as the recording's columns name it: address category ids and ports (`None` where the
/// event has none). Equal keys are equal flows: addresses are global categories.
pub type FlowKey = (Option<u32>, Option<u16>, Option<u32>, Option<u16>);

/// A flow's text: `saddr`, `sport`, `daddr`, `dport` (`None` where unknown).
pub type FlowLabel = (Option<String>, Option<u64>, Option<String>, Option<u64>);

/// The flow id of events that name no flow (no source port).
pub const NO_FLOW: u32 = 0;

/// The flows of a set of frames, numbered from 1 in order of first appearance.
pub struct Flows {
    ids: FxHashMap<FlowKey, u32>,
    keys: Vec<FlowKey>,
    labels: Vec<FlowLabel>,
}

impl Default for Flows {
    fn default() -> Flows {
        Flows {
            ids: FxHashMap::default(),
            keys: vec![(None, None, None, None)],
            labels: vec![(None, None, None, None)],
        }
    }
}

/// The values of a numeric column, nulls as `None`.
pub fn options<T: PolarsNumericType>(
    df: &DataFrame,
    name: &str,
) -> PolarsResult<Vec<Option<T::Native>>> {
    let c = df.column(name)?.cast(&T::get_static_dtype())?;
    let ca: &ChunkedArray<T> = c.as_materialized_series().unpack()?;
    let mut out = Vec::with_capacity(ca.len());
    for a in ca.downcast_iter() {
        match a.validity() {
            None => out.extend(a.values().iter().map(|x| Some(*x))),
            Some(v) => out.extend(
                a.values()
                    .iter()
                    .zip(v.iter())
                    .map(|(x, ok)| ok.then_some(*x)),
            ),
        }
    }
    Ok(out)
}

/// The values of a column without nulls (a null, which the schema rules out, reads as 0).
fn values<T: PolarsNumericType>(df: &DataFrame, name: &str) -> PolarsResult<Vec<T::Native>> {
    let c = df.column(name)?.cast(&T::get_static_dtype())?;
    let ca: &ChunkedArray<T> = c.as_materialized_series().unpack()?;
    let mut out = Vec::with_capacity(ca.len());
    for a in ca.downcast_iter() {
        match a.validity() {
            None => out.extend_from_slice(a.values()),
            Some(v) => out.extend(a.values().iter().zip(v.iter()).map(|(x, ok)| {
                if ok {
                    *x
                } else {
                    T::Native::default()
                }
            })),
        }
    }
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
                    let next = self.keys.len() as u32;
                    let id = *self.ids.entry(key).or_insert_with(|| {
                        self.keys.push(key);
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
            self.labels
                .push((s("saddr")?, u("sport")?, s("daddr")?, u("dport")?));
        }
        Ok(out)
    }

    /// The text of a flow id.
    pub fn label(&self, id: u32) -> &FlowLabel {
        &self.labels[id as usize]
    }

    /// The text of every flow id, by id.
    pub fn labels(&self) -> &[FlowLabel] {
        &self.labels
    }

    /// The key of a flow id, when it names all four parts.
    pub fn full_key(&self, id: u32) -> Option<FlowKey> {
        let k = self.keys[id as usize];
        (k.0.is_some() && k.1.is_some() && k.2.is_some() && k.3.is_some()).then_some(k)
    }

    /// Number of ids (the largest id plus one).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no flow was interned (only [`NO_FLOW`] exists).
    pub fn is_empty(&self) -> bool {
        self.keys.len() == 1
    }
}

/// The packet id of every event that has one, with its row number.
pub fn packet_ids(df: &DataFrame) -> PolarsResult<Vec<(u64, u32)>> {
    let c = df.column("skb")?.cast(&DataType::UInt64)?;
    let mut out = Vec::with_capacity(c.len());
    let mut row = 0u32;
    for a in c.u64()?.downcast_iter() {
        match a.validity() {
            None => out.extend(
                a.values()
                    .iter()
                    .enumerate()
                    .map(|(i, &s)| (s, row + i as u32)),
            ),
            Some(v) => out.extend(
                a.values()
                    .iter()
                    .zip(v.iter())
                    .enumerate()
                    .filter(|(_, (_, ok))| *ok)
                    .map(|(i, (&s, _))| (s, row + i as u32)),
            ),
        }
        row += a.len() as u32;
    }
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
        })
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }
}
