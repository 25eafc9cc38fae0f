//! Reading collected polars frames into plain Rust values: the seam between the queries and the
//! report model. Column names are checked here, so a query that changes shape fails loudly.

use polars::prelude::*;

/// An integer column as `u64` values (nulls kept).
pub fn u64s(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<u64>>> {
    let c = df.column(name)?.cast(&DataType::UInt64)?;
    Ok(c.u64()?.iter().collect())
}

/// An integer column as `i64` values (nulls kept).
pub fn i64s(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<i64>>> {
    let c = df.column(name)?.cast(&DataType::Int64)?;
    Ok(c.i64()?.iter().collect())
}

/// A numeric column as `f64` values (nulls kept).
pub fn f64s(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<f64>>> {
    let c = df.column(name)?.cast(&DataType::Float64)?;
    Ok(c.f64()?.iter().collect())
}

/// A boolean column (nulls kept).
pub fn bools(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<bool>>> {
    Ok(df.column(name)?.bool()?.iter().collect())
}

/// A string (or categorical) column as owned strings (nulls kept).
pub fn strs(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<String>>> {
    Ok(df
        .column(name)?
        .cast(&DataType::String)?
        .str()?
        .iter()
        .map(|s| s.map(str::to_string))
        .collect())
}

/// A list-of-strings column, each list joined by `sep` (nulls inside are skipped).
pub fn joined_lists(df: &DataFrame, name: &str, sep: &str) -> PolarsResult<Vec<String>> {
    let mut out = Vec::with_capacity(df.height());
    let lists = df.column(name)?.list()?;
    for i in 0..lists.len() {
        out.push(match lists.get_as_series(i) {
            Some(s) => s
                .cast(&DataType::String)?
                .str()?
                .iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(sep),
            None => String::new(),
        });
    }
    Ok(out)
}

/// The flow of each row, from `saddr`, `sport`, `daddr`, `dport` (`None` where a part is
/// unknown).
pub fn flow_values(df: &DataFrame) -> PolarsResult<Vec<Option<crate::queries::select::Flow>>> {
    let (sa, sp, da, dp) = (
        strs(df, "saddr")?,
        u64s(df, "sport")?,
        strs(df, "daddr")?,
        u64s(df, "dport")?,
    );
    Ok((0..df.height())
        .map(|i| match (&sa[i], sp[i], &da[i], dp[i]) {
            (Some(sa), Some(sp), Some(da), Some(dp)) => Some(crate::queries::select::Flow {
                saddr: sa.clone(),
                sport: sp as u16,
                daddr: da.clone(),
                dport: dp as u16,
            }),
            _ => None,
        })
        .collect())
}

/// The flow label of each row ([`flow_values`]; `?` where a part is unknown).
pub fn flows(df: &DataFrame) -> PolarsResult<Vec<String>> {
    Ok(flow_values(df)?
        .into_iter()
        .map(|f| f.map_or_else(|| "?".to_string(), |f| f.to_string()))
        .collect())
}

/// Collects a query, turning a polars error into one line.
pub fn collect(lf: LazyFrame) -> anyhow::Result<DataFrame> {
    lf.collect().map_err(one_line)
}

/// A polars error as one line.
pub fn one_line(e: PolarsError) -> anyhow::Error {
    let s = e.to_string();
    anyhow::anyhow!(
        "query failed: {}",
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    )
}
