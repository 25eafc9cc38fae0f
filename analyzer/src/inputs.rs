//! The recordings named on the command line: paths or glob patterns, opened and validated, then
//! grouped by the host they were recorded on (one report per host).

use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tcptape_common::Recording;

/// Expands patterns (`*`, `?`, `[`) that the shell left alone; plain paths pass through.
pub fn expand(args: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for a in args {
        let is_pattern = a.contains(['*', '?', '[']) && !std::path::Path::new(a).exists();
        if !is_pattern {
            out.push(PathBuf::from(a));
            continue;
        }
        let mut matched: Vec<PathBuf> = glob::glob(a)
            .with_context(|| format!("{a}: bad pattern"))?
            .filter_map(Result::ok)
            .collect();
        if matched.is_empty() {
            bail!("{a}: no recording matches this pattern");
        }
        matched.sort();
        out.extend(matched);
    }
    Ok(out)
}

/// Opens every recording (refusing bad input with a one-line error) and groups them by host,
/// in host-name order, each group in time order.
pub fn open_by_host(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, Vec<Recording>)>> {
    let mut hosts: BTreeMap<String, Vec<Recording>> = BTreeMap::new();
    for p in paths {
        let rec = Recording::open(p)?;
        hosts.entry(rec.meta().hostname).or_default().push(rec);
    }
    for recs in hosts.values_mut() {
        recs.sort_by_key(|r| r.meta().start_ns);
    }
    Ok(hosts.into_iter().collect())
}
