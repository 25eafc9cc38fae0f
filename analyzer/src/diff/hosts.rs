//! `diff` over recordings of several hosts: each host of the base compared with the host of the
//! same name in the candidate, and the wire and write→read spans between hosts
//! ([`crate::journeys::cross_host`]) compared the same way.
//!
//! Which recordings of a side are hosts and which are runs: recordings of different hosts whose
//! times overlap were made together (hosts of one scenario); recordings that follow one another
//! are runs of a scenario, even when each ran on another machine (a CI job on a fresh runner).

use super::compare::{self, fails, RowInput};
use super::model::{Diff, Settings, StageDiff, Verdict, DIFF_SCHEMA};
use super::render::{self, md_escape, md_row, row_cells, HEADER};
use super::threshold::Threshold;
use crate::journeys::cross_host::{self, BetweenSamples, WireEdge};
use crate::progress::Steps;
use crate::report::latency_sections::{latency_row, LATENCY_QUANTILES};
use crate::report::latency_stats::Stats;
use crate::report::model::StageLatency;
use crate::report::{self, Options};
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use serde::Serialize;
use std::io::{self, Write};
use tcptape_common::Recording;

/// Recordings grouped by host ([`crate::inputs::open_by_host`]).
pub type HostGroups = Vec<(String, Vec<Recording>)>;

/// What `diff` finds over several hosts (JSON `schema` 1, like one host's).
#[derive(Debug, Clone, Serialize)]
pub struct HostsDiff {
    /// The JSON schema version.
    pub schema: u32,
    /// One comparison per host recorded on both sides.
    pub hosts: Vec<Diff>,
    /// The wire (`HOST tx_driver → HOST rx_driver`) and write→read spans (`HOST tx_sendmsg →
    /// HOST rx_app`) between hosts, each direction, after each side's clock offset correction.
    pub between_hosts: Vec<StageDiff>,
    /// Hosts recorded in the base only.
    pub only_in_base: Vec<String>,
    /// Hosts recorded in the candidate only.
    pub only_in_cand: Vec<String>,
    /// Every regression, each prefixed with its host.
    pub regressions: Vec<String>,
    /// True when a regression was found (exit code 1).
    pub regression: bool,
    /// Every undecided row that matters, prefixed with its host.
    pub undecided: Vec<String>,
    /// The settings of the verdicts.
    pub settings: Settings,
}

fn wall_span(r: &Recording) -> (i128, i128) {
    let m = r.meta();
    let w = m.mono_to_wall_ns as i128;
    (m.start_ns as i128 + w, m.end_ns.max(m.start_ns) as i128 + w)
}

/// Hosts recorded together stay apart; recordings that follow one another, on whichever
/// machine, are runs of one scenario and become one group.
pub fn hosts_or_runs(groups: HostGroups) -> HostGroups {
    if groups.len() < 2 {
        return groups;
    }
    let spans: Vec<(i128, i128)> = groups
        .iter()
        .map(|(_, recs)| {
            let s: Vec<_> = recs.iter().map(wall_span).collect();
            (
                s.iter().map(|x| x.0).min().unwrap_or(0),
                s.iter().map(|x| x.1).max().unwrap_or(0),
            )
        })
        .collect();
    let together = spans
        .iter()
        .enumerate()
        .any(|(i, a)| spans[i + 1..].iter().any(|b| a.0 < b.1 && b.0 < a.1));
    if together {
        return groups;
    }
    let name = groups
        .iter()
        .map(|(h, _)| h.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut recs: Vec<Recording> = groups.into_iter().flat_map(|(_, r)| r).collect();
    recs.sort_by_key(|r| wall_span(r).0);
    vec![(name, recs)]
}

/// The latency figures of samples, as the report gives them.
fn latency(from: &str, to: &str, ns: &[i64]) -> StageLatency {
    let mut v = ns.to_vec();
    v.sort_unstable();
    latency_row(
        from.into(),
        to.into(),
        &Stats::of_sorted(&v, &LATENCY_QUANTILES),
    )
}

/// The row names of a sample set: `HOST tx_driver` → `HOST rx_driver` (the wire) or `HOST
/// tx_sendmsg` → `HOST rx_app` (write to read).
fn names(s: &BetweenSamples) -> (String, String) {
    if s.end_to_end {
        (
            format!("{} tx_sendmsg", s.from_host),
            format!("{} rx_app", s.to_host),
        )
    } else {
        (
            format!("{} tx_driver", s.from_host),
            format!("{} rx_driver", s.to_host),
        )
    }
}

fn between_samples(groups: &HostGroups) -> anyhow::Result<Vec<BetweenSamples>> {
    let edges = groups
        .iter()
        .map(|(h, recs)| Ok((h.clone(), WireEdge::read(recs)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(cross_host::pairs(&edges)
        .into_iter()
        .flat_map(|p| p.samples)
        .collect())
}

fn between_rows(
    base: &HostGroups,
    cand: &HostGroups,
    s: &Settings,
) -> anyhow::Result<Vec<StageDiff>> {
    let (b, c) = (between_samples(base)?, between_samples(cand)?);
    let mut keys: Vec<(String, String)> = b.iter().chain(&c).map(names).collect();
    keys.sort();
    keys.dedup();
    let find = |v: &'_ [BetweenSamples], k: &(String, String)| {
        v.iter().find(|x| names(x) == *k).map(|x| x.ns.clone())
    };
    // (from, to, base samples, candidate samples)
    type Found = (String, String, Option<Vec<i64>>, Option<Vec<i64>>);
    let found: Vec<Found> = keys
        .into_iter()
        .map(|k| {
            let (sb, sc) = (find(&b, &k), find(&c, &k));
            (k.0, k.1, sb, sc)
        })
        .collect();
    let inputs = found
        .iter()
        .map(|(from, to, sb, sc)| RowInput {
            from: from.clone(),
            to: to.clone(),
            base: sb.as_ref().map(|v| latency(from, to, v)),
            cand: sc.as_ref().map(|v| latency(from, to, v)),
            sb: sb.as_deref().unwrap_or(&[]),
            sc: sc.as_deref().unwrap_or(&[]),
            runs: [Vec::new(), Vec::new()],
        })
        .collect();
    Ok(compare::rows(inputs, s))
}

/// Compares the hosts of two sides, by host name.
pub fn compare(
    base: HostGroups,
    cand: HostGroups,
    opts: &dyn Fn(&[Recording]) -> anyhow::Result<Options>,
    thresholds: &[Threshold],
    settings: Settings,
    quiet: bool,
) -> anyhow::Result<HostsDiff> {
    let in_cand = |h: &str| cand.iter().any(|(c, _)| c == h);
    let in_base = |h: &str| base.iter().any(|(b, _)| b == h);
    let only_in_base: Vec<String> = base
        .iter()
        .filter(|(h, _)| !in_cand(h))
        .map(|(h, _)| h.clone())
        .collect();
    let only_in_cand: Vec<String> = cand
        .iter()
        .filter(|(h, _)| !in_base(h))
        .map(|(h, _)| h.clone())
        .collect();
    let common = base.len() - only_in_base.len();
    anyhow::ensure!(
        common > 0,
        "no host is on both sides: the base was recorded on {} and the candidate on {}",
        base.iter()
            .map(|(h, _)| h.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        cand.iter()
            .map(|(h, _)| h.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let steps = Steps::new(2 * report::STEPS * common as u64, quiet);
    let mut hosts = Vec::new();
    let (base, cand): (HostGroups, HostGroups) = (
        base.into_iter()
            .filter(|(h, _)| !only_in_base.contains(h))
            .collect(),
        cand.into_iter()
            .filter(|(h, _)| !only_in_cand.contains(h))
            .collect(),
    );
    for (host, brecs) in &base {
        let crecs = &cand
            .iter()
            .find(|(h, _)| h == host)
            .expect("a common host")
            .1;
        let b = compare::load(brecs.to_vec(), &opts(brecs)?, &steps)?;
        let c = compare::load(crecs.to_vec(), &opts(crecs)?, &steps)?;
        hosts.push(compare::compare(
            &b,
            &c,
            thresholds,
            settings.clone(),
            false,
        )?);
    }
    drop(steps);
    for t in thresholds {
        anyhow::ensure!(
            hosts
                .iter()
                .any(|d| d.thresholds.iter().any(|c| c.expr == t.text)),
            "--fail-on '{}': no such pair of stages on any host",
            t.text
        );
    }
    let between_hosts = between_rows(&base, &cand, &settings)?;
    let host_name = |d: &Diff| d.base.host.clone();
    let mut regressions: Vec<String> = hosts
        .iter()
        .flat_map(|d| {
            d.regressions
                .iter()
                .map(move |r| format!("{}: {r}", host_name(d)))
        })
        .collect();
    let mut undecided: Vec<String> = hosts
        .iter()
        .flat_map(|d| {
            d.undecided
                .iter()
                .map(move |r| format!("{}: {r}", host_name(d)))
        })
        .collect();
    if thresholds.is_empty() {
        regressions.extend(
            between_hosts
                .iter()
                .filter(|r| {
                    r.verdict == Verdict::Slower
                        && r.changes.is_some_and(|c| fails(c.p50_ns, &settings))
                })
                .map(|r| {
                    let ch = r.changes.expect("both sides").p50_ns;
                    format!(
                        "between hosts {} slower: median {} → {} ({})",
                        r.name(),
                        crate::units::ns(ch.base),
                        crate::units::ns(ch.cand),
                        render::percent(ch.rel)
                    )
                }),
        );
        undecided.extend(
            between_hosts
                .iter()
                .filter(|r| r.verdict == Verdict::Undecided)
                .map(|r| compare::undecided_reason(r, "between hosts ")),
        );
    }
    Ok(HostsDiff {
        schema: DIFF_SCHEMA,
        hosts,
        between_hosts,
        only_in_base,
        only_in_cand,
        regression: !regressions.is_empty(),
        regressions,
        undecided,
        settings,
    })
}

fn result(h: &HostsDiff) -> String {
    render::result_words(
        h.regressions.len(),
        h.undecided.len(),
        h.settings.allow_undecided,
    )
}

/// Writes the comparison of several hosts as terminal tables: each host's, then between them.
pub fn table(h: &HostsDiff, out: &mut impl Write) -> io::Result<()> {
    for d in &h.hosts {
        writeln!(out, "══ host {} {}", d.base.host, "═".repeat(50))?;
        render::table(d, out)?;
        writeln!(out)?;
    }
    writeln!(out, "══ between hosts {}", "═".repeat(50))?;
    if h.between_hosts.is_empty() {
        writeln!(out, "  no segment joined between hosts on either side")?;
    } else {
        let mut t = Table::new();
        t.load_preset(UTF8_BORDERS_ONLY).set_header(HEADER);
        for r in &h.between_hosts {
            t.add_row(row_cells(r, "\n"));
        }
        writeln!(out, "{t}")?;
    }
    for (what, hosts) in [("base", &h.only_in_base), ("candidate", &h.only_in_cand)] {
        if !hosts.is_empty() {
            writeln!(
                out,
                "recorded in the {what} only, not compared: {}",
                hosts.join(", ")
            )?;
        }
    }
    writeln!(out, "\nresult over {} hosts: {}", h.hosts.len(), result(h))?;
    for r in &h.regressions {
        writeln!(out, "  {r}")?;
    }
    for u in &h.undecided {
        writeln!(out, "  undecided: {u}")?;
    }
    Ok(())
}

/// Writes the comparison of several hosts as Markdown, the overall verdict first.
pub fn markdown(h: &HostsDiff, out: &mut impl Write) -> io::Result<()> {
    let mark = render::result_mark(h.regression, h.undecided.len(), h.settings.allow_undecided);
    writeln!(
        out,
        "## tcptape diff over {} hosts: {mark} {}\n",
        h.hosts.len(),
        result(h)
    )?;
    for r in &h.regressions {
        writeln!(out, "- {}", md_escape(r))?;
    }
    for u in &h.undecided {
        writeln!(out, "- undecided: {}", md_escape(u))?;
    }
    writeln!(out, "\n#### Between hosts\n")?;
    if h.between_hosts.is_empty() {
        writeln!(out, "No segment joined between hosts on either side.")?;
    } else {
        writeln!(out, "{}", md_row(&HEADER.map(String::from)))?;
        writeln!(out, "|{}", "---|".repeat(HEADER.len()))?;
        for r in &h.between_hosts {
            writeln!(out, "{}", md_row(&row_cells(r, " ")))?;
        }
    }
    for d in &h.hosts {
        writeln!(out, "\n---\n")?;
        render::markdown(d, out)?;
    }
    Ok(())
}
