//! Counts scaled by the flow sampling in force at each event's time (`--sample`, `--budget`):
//! an event recorded while 1 flow in N was kept stands for N.

use crate::queries::frame::{collect, u64s};
use crate::queries::{scan, select::Selection, STAGE};
use polars::prelude::*;
use std::collections::BTreeMap;
use tcptape_common::metadata::Sampling;
use tcptape_common::Stage;

/// The events of `df` (a `ts_ns` column, and a `weight` column when named: how many each one
/// counts for) scaled by the sampling in force at each one's time; `None` when every flow was
/// kept throughout.
pub fn scaled(
    df: &DataFrame,
    weight: Option<&str>,
    sampling: &Sampling,
) -> anyhow::Result<Option<u64>> {
    if !sampling.sampled() {
        return Ok(None);
    }
    let ts = u64s(df, "ts_ns")?;
    let w = match weight {
        Some(c) => u64s(df, c)?,
        None => vec![Some(1); ts.len()],
    };
    Ok(Some(
        ts.iter()
            .zip(w)
            .map(|(t, w)| w.unwrap_or(1) * sampling.one_in_at(t.unwrap_or(0)) as u64)
            .sum(),
    ))
}

/// The estimated events of every stage of the selection, before sampling; empty when every flow
/// was kept (the recorded counts are then exact).
pub fn per_stage(
    files: &[std::path::PathBuf],
    sel: &Selection,
    sampling: &Sampling,
) -> anyhow::Result<BTreeMap<Stage, u64>> {
    let mut out = BTreeMap::new();
    if !sampling.sampled() {
        return Ok(out);
    }
    let df = collect(
        scan::events(
            scan::scan(files).map_err(crate::queries::frame::one_line)?,
            &["ts_ns"],
            Stage::ALL,
            sel,
        )?
        .select([col(STAGE), col("ts_ns")]),
    )?;
    let (stages, ts) = (u64s(&df, STAGE)?, u64s(&df, "ts_ns")?);
    for (s, t) in stages.into_iter().zip(ts) {
        let Some(stage) = s.and_then(|c| Stage::from_code(c as u8)) else {
            continue;
        };
        *out.entry(stage).or_insert(0) += sampling.one_in_at(t.unwrap_or(0)) as u64;
    }
    Ok(out)
}
