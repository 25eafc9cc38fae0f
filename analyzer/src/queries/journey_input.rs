//! The scans journeys are built from, and their rows read into the plain columns of
//! [`crate::journeys::hop_table`]: the one place the journey wing meets polars.

use crate::journeys::hop_table::{FlowColumns, Heads, HopTable, WriteColumns};
use crate::queries::frame::{collect, one_line};
use crate::queries::{scan, select::Selection, RANK, STAGE};
use polars::prelude::*;
use std::path::PathBuf;
use tcptape_common::Stage;

/// The selected packet hops (every hop stage but `tx_sendmsg`) of a set of recording files, not
/// yet read.
pub struct HopScan(LazyFrame);

/// The selected application writes (`tx_sendmsg`) of a set of recording files, not yet read.
pub struct WriteScan(LazyFrame);

/// The scans of the hops and of the writes of `files`, as `sel` selects them.
pub fn scans(files: &[PathBuf], sel: &Selection) -> anyhow::Result<(HopScan, WriteScan)> {
    let scan = || scan::scan(files).map_err(one_line);
    let packet_stages: Vec<Stage> = scan::hop_stages()
        .into_iter()
        .filter(|s| *s != Stage::TxSendmsg)
        .collect();
    let hops = scan::events(scan()?, scan::HOP_COLUMNS, &packet_stages, sel)?;
    let writes = scan::events(scan()?, scan::WRITE_COLUMNS, &[Stage::TxSendmsg], sel)?;
    Ok((HopScan(hops), WriteScan(writes)))
}

impl HopScan {
    /// Reads the hops.
    pub fn collect(self) -> anyhow::Result<HopFrame> {
        Ok(HopFrame(collect(self.0)?))
    }

    /// The optimized plan of the scan, for `--explain`.
    pub fn explain(&self) -> anyhow::Result<String> {
        self.0.explain(true).map_err(one_line)
    }
}

impl WriteScan {
    /// Reads the writes.
    pub fn collect(self) -> anyhow::Result<WriteFrame> {
        Ok(WriteFrame(collect(self.0)?))
    }
}

/// The hop events, read.
pub struct HopFrame(DataFrame);

/// The writes, read: the report's TCP sections query them, the journeys take their columns.
#[derive(Clone)]
pub struct WriteFrame(pub(crate) DataFrame);

impl HopFrame {
    /// The columns every hop is read by.
    pub fn table(&self) -> anyhow::Result<HopTable> {
        let df = &self.0;
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

    /// The packet id of every event that has one, with its row number.
    pub fn packet_ids(&self) -> anyhow::Result<Vec<(u64, u32)>> {
        let mut out = Vec::with_capacity(self.0.height());
        let mut row = 0u32;
        each_value::<UInt64Type>(&self.0, "skb", |id| {
            if let Some(id) = id {
                out.push((id, row));
            }
            row += 1;
        })?;
        Ok(out)
    }

    /// The first-hop columns of the rows `rows`, in that order, and their flows.
    pub fn heads(&self, rows: Vec<u32>) -> anyhow::Result<(Heads, FlowColumns)> {
        let rows: Vec<IdxSize> = rows.into_iter().map(|r| r as IdxSize).collect();
        let df = self.0.select([
            "skb", "sock", "seq", "len", "saddr", "sport", "daddr", "dport",
        ])?;
        let df = df.take(&IdxCa::from_vec("first".into(), rows))?;
        let heads = Heads {
            skb: options::<UInt64Type>(&df, "skb")?,
            sock: options::<UInt64Type>(&df, "sock")?,
            seq: options::<UInt32Type>(&df, "seq")?,
            len: options::<UInt32Type>(&df, "len")?,
        };
        Ok((heads, flow_columns(&df)?))
    }
}

impl WriteFrame {
    /// Number of writes.
    pub fn height(&self) -> usize {
        self.0.height()
    }

    /// The writes' columns.
    pub fn columns(&self) -> anyhow::Result<WriteColumns> {
        let df = &self.0;
        Ok(WriteColumns {
            ts: options::<UInt64Type>(df, "ts_ns")?,
            sock: options::<UInt64Type>(df, "sock")?,
            seq: options::<UInt32Type>(df, "seq")?,
            len: options::<UInt32Type>(df, "len")?,
            flows: flow_columns(df)?,
        })
    }
}

/// The flow columns of `df` (`saddr`, `sport`, `daddr`, `dport`).
fn flow_columns(df: &DataFrame) -> PolarsResult<FlowColumns> {
    Ok(FlowColumns {
        saddr: category_ids(df, "saddr")?,
        sport: options::<UInt16Type>(df, "sport")?,
        daddr: category_ids(df, "daddr")?,
        dport: options::<UInt16Type>(df, "dport")?,
        address,
    })
}

/// The text of an address category id. Addresses are global categories (the scan casts them),
/// so an id means the same address in every frame of the process.
fn address(id: u32) -> Option<String> {
    Categories::global()
        .mapping()
        .cat_to_str(id)
        .map(str::to_string)
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
fn options<T: PolarsNumericType>(
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
