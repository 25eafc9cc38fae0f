//! The recordings named on the command line: paths or glob patterns, opened and validated, then
//! grouped by the host they were recorded on (one report per host).

use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tcptape_common::reader::SEGMENT_PREFIX;
use tcptape_common::Recording;

/// True for a directory of segments (one recording), false for any other directory.
fn is_segment_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|d| {
        d.flatten().any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(SEGMENT_PREFIX) && n.ends_with(".parquet")
        })
    })
}

/// The recordings in a recording set (`tcptape-record --into DIR`, or any tree of recordings):
/// `.parquet` files and directories of segments, found recursively, in path order. A flight
/// recorder's saved windows (inside a recording's directory) are recordings of their own and
/// are not walked into.
fn recordings_in(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if is_segment_dir(&p) {
                out.push(p);
            } else {
                recordings_in(&p, out)?;
            }
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
    Ok(())
}

/// Expands patterns (`*`, `?`, `[`) that the shell left alone, and directories that are
/// recording sets (not one recording's segments) into the recordings they hold; other paths
/// pass through.
pub fn expand(args: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for a in args {
        let path = Path::new(a);
        if path.is_dir() && !is_segment_dir(path) {
            let before = out.len();
            recordings_in(path, &mut out).with_context(|| format!("{a}: cannot read"))?;
            if out.len() == before {
                bail!("{a}: no recording in this directory (no .parquet file, no segments)");
            }
            continue;
        }
        let is_pattern = a.contains(['*', '?', '[']) && !path.exists();
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
/// in host-name order, each group in time order. A host is a host name and a boot: two machines
/// with one name (a default name, a cloned image) have two clocks, whose timestamps must not be
/// mixed; such groups are named `NAME (boot XXXXXXXX)`. Recordings without a boot id (older
/// ones) go by their host name alone.
pub fn open_by_host(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, Vec<Recording>)>> {
    let mut hosts: BTreeMap<(String, String), Vec<Recording>> = BTreeMap::new();
    for p in paths {
        let rec = Recording::open(p)?;
        let m = rec.meta();
        hosts.entry((m.hostname, m.boot_id)).or_default().push(rec);
    }
    // An old recording without a boot id joins the only boot its host name has, if one.
    let unbooted: Vec<(String, String)> = hosts
        .keys()
        .filter(|(_, b)| b.is_empty())
        .cloned()
        .collect();
    for key in unbooted {
        let mut boots = hosts.keys().filter(|(h, b)| *h == key.0 && !b.is_empty());
        if let (Some(only), None) = (boots.next().cloned(), boots.next()) {
            let recs = hosts.remove(&key).unwrap_or_default();
            hosts.entry(only).or_default().extend(recs);
        }
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for (h, _) in hosts.keys() {
        *names.entry(h).or_default() += 1;
    }
    let shared: Vec<String> = names
        .into_iter()
        .filter(|&(_, n)| n > 1)
        .map(|(h, _)| h.to_string())
        .collect();
    let mut out: Vec<(String, Vec<Recording>)> = hosts
        .into_iter()
        .map(|((h, boot), mut recs)| {
            recs.sort_by_key(|r| r.meta().start_ns);
            let name = if shared.contains(&h) {
                format!("{h} (boot {})", boot.get(..8).unwrap_or(&boot))
            } else {
                h
            };
            (name, recs)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
