//! `diff` as a terminal table or as Markdown for a pull-request comment (JSON is the
//! [`Diff`] serialized).

use super::model::*;
use crate::units::ns;
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use std::io::{self, Write};

/// A relative change as a signed percentage (`+20.0%`), `n/a` without a base.
pub fn percent(rel: Option<f64>) -> String {
    match rel {
        Some(r) => format!("{:+.1}%", r * 100.0),
        None => "n/a".into(),
    }
}

/// A p-value, short (`0.42`, `3e-12`, `<1e-300`).
pub fn p_value(p: Option<f64>) -> String {
    match p {
        None => "n/a".into(),
        Some(0.0) => "<1e-300".into(),
        Some(p) if p < 0.001 => format!("{p:.0e}"),
        Some(p) => format!("{p:.3}"),
    }
}

/// A figure in its unit (`ns`: a duration, `fraction`: a percentage, `count`: a number).
pub fn figure(unit: &str, v: f64) -> String {
    match unit {
        "ns" => ns(v),
        "fraction" => format!("{:.3}%", v * 100.0),
        _ => format!("{}", v.round() as i64),
    }
}

fn signed_ns(v: f64) -> String {
    if v >= 0.0 {
        format!("+{}", ns(v))
    } else {
        format!("-{}", ns(-v))
    }
}

/// `base → cand` and the change, for one duration.
fn cell(c: Change, sep: &str) -> String {
    format!(
        "{} → {}{sep}{} ({})",
        ns(c.base),
        ns(c.cand),
        signed_ns(c.abs),
        percent(c.rel)
    )
}

fn only(
    l: &Option<crate::report::model::StageLatency>,
    f: impl Fn(&crate::report::model::StageLatency) -> u64,
) -> String {
    l.as_ref().map_or("—".into(), |l| ns(f(l) as f64))
}

/// The cells of one row: stage, packets, p50, p90, p99, p99.9, max, verdict.
pub fn row_cells(r: &StageDiff, sep: &str) -> Vec<String> {
    // The p-value and which test gave it: blocks, packets or runs.
    let p = r.runs_test.map(|w| w.p_value).or(r.test.map(|t| t.p_value));
    let verdict = match (p, r.method) {
        (Some(p), Some(m)) => format!("{} (p={}, {m})", r.verdict.label(), p_value(Some(p))),
        _ => r.verdict.label().to_string(),
    };
    let mut cells = vec![r.name()];
    match &r.changes {
        Some(c) => {
            cells.push(format!(
                "{} → {}{sep}({})",
                c.count.base,
                c.count.cand,
                percent(c.count.rel)
            ));
            for ch in [c.p50_ns, c.p90_ns, c.p99_ns, c.p999_ns, c.max_ns] {
                cells.push(cell(ch, sep));
            }
        }
        None => {
            let side = |l: &Option<crate::report::model::StageLatency>| {
                l.as_ref().map_or("—".to_string(), |l| l.count.to_string())
            };
            cells.push(format!("{} → {}", side(&r.base), side(&r.cand)));
            type Get = fn(&crate::report::model::StageLatency) -> u64;
            let gets: [Get; 5] = [
                |l| l.p50_ns,
                |l| l.p90_ns,
                |l| l.p99_ns,
                |l| l.p999_ns,
                |l| l.max_ns,
            ];
            for g in gets {
                cells.push(format!("{} → {}", only(&r.base, g), only(&r.cand, g)));
            }
        }
    }
    cells.push(verdict);
    cells
}

/// The header of a table of [`row_cells`].
pub const HEADER: [&str; 8] = [
    "stages", "packets", "p50", "p90", "p99", "p99.9", "max", "verdict",
];

fn side_line(s: &Side) -> String {
    format!(
        "{} ({}, host {}, {} events, {}, {} journeys, {} lost)",
        s.path,
        s.source,
        s.host,
        s.events,
        ns(s.duration_ns as f64),
        s.journeys,
        s.lost_events
    )
}

/// The verdict of a run, in a few words.
pub fn result_words(regressions: usize, undecided: usize, allow_undecided: bool) -> String {
    match (regressions, undecided) {
        (0, 0) => "no regression".into(),
        (0, u) if allow_undecided => format!("no regression ({u} undecided, allowed)"),
        (0, u) => format!(
            "UNDECIDED ({u} stage{} no test can decide)",
            if u == 1 { "" } else { "s" }
        ),
        (r, 0) => format!("REGRESSION ({r} found)"),
        (r, u) => format!("REGRESSION ({r} found, {u} undecided)"),
    }
}

fn result_line(d: &Diff) -> String {
    result_words(
        d.regressions.len(),
        d.undecided.len(),
        d.settings.allow_undecided,
    )
}

/// The mark of a verdict in Markdown.
pub fn result_mark(regression: bool, undecided: usize, allow_undecided: bool) -> &'static str {
    if regression {
        "❌"
    } else if undecided > 0 && !allow_undecided {
        "⚠️"
    } else {
        "✅"
    }
}

fn settings_line(d: &Diff) -> String {
    let s = &d.settings;
    let rule = if d.thresholds.is_empty() {
        format!(
            "; without --fail-on, a SLOWER stage fails when its median rose by at least {:.0}% \
             and {}",
            s.fail_effect * 100.0,
            ns(s.fail_shift_ns as f64)
        )
    } else {
        "; the --fail-on thresholds decide the result".to_string()
    };
    format!(
        "a stage is SLOWER or faster when its test rejects \"no shift\" at α = {} (Bonferroni \
         over the pairs) and its median moved by at least {:.0}% and {}; the test: a t test on \
         the runs' medians with two or more runs a side, else Mann–Whitney on the medians of up \
         to 30 time blocks from 100 packets a side, else a permutation test on the packets; \
         UNDECIDED: no test can decide at this size and the median rose by the failing amount, \
         or a frequent pair is on one side only{rule}",
        s.alpha,
        s.min_effect * 100.0,
        ns(s.min_shift_ns as f64)
    )
}

fn retransmit_line(d: &Diff) -> String {
    let r = &d.retransmits;
    format!(
        "retransmits  {} → {} packets ({} → {} segments), {} → {} of packets sent ({})",
        r.packets[0],
        r.packets[1],
        r.segments[0],
        r.segments[1],
        figure("fraction", r.rate.base),
        figure("fraction", r.rate.cand),
        percent(r.rate.rel)
    )
}

fn lost_line(d: &Diff) -> String {
    format!(
        "lost events  {} → {} ({} → {} of events)",
        d.lost.events.base,
        d.lost.events.cand,
        figure("fraction", d.lost.rate.base),
        figure("fraction", d.lost.rate.cand)
    )
}

/// Writes the diff as terminal tables.
pub fn table(d: &Diff, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "base         {}", side_line(&d.base))?;
    writeln!(out, "candidate    {}", side_line(&d.cand))?;
    if d.environment.is_empty() {
        writeln!(
            out,
            "environment  same kernel, congestion control, socket buffers, offloads and attach plan"
        )?;
    } else {
        writeln!(
            out,
            "environment  DIFFERS: the recordings may not be comparable"
        )?;
        for e in &d.environment {
            writeln!(out, "             {}: {} → {}", e.what, e.base, e.cand)?;
        }
    }
    for (title, rows) in [
        ("per-stage latency", &d.stages),
        ("end to end", &d.end_to_end),
    ] {
        writeln!(out, "\n{title} (base → candidate)")?;
        if rows.is_empty() {
            writeln!(out, "  none recorded")?;
            continue;
        }
        let mut t = Table::new();
        t.load_preset(UTF8_BORDERS_ONLY).set_header(HEADER);
        for r in rows {
            t.add_row(row_cells(r, "\n"));
        }
        writeln!(out, "{t}")?;
    }
    if !d.only_in_base.is_empty() {
        writeln!(out, "only in base: {}", d.only_in_base.join(", "))?;
    }
    if !d.only_in_cand.is_empty() {
        writeln!(out, "only in candidate: {}", d.only_in_cand.join(", "))?;
    }
    writeln!(out, "\n{}", retransmit_line(d))?;
    writeln!(out, "{}", lost_line(d))?;
    if !d.thresholds.is_empty() {
        writeln!(out, "\nthresholds")?;
        let mut t = Table::new();
        t.load_preset(UTF8_BORDERS_ONLY).set_header([
            "--fail-on",
            "row",
            "base → candidate",
            "result",
        ]);
        for c in &d.thresholds {
            t.add_row(threshold_cells(c));
        }
        writeln!(out, "{t}")?;
    }
    writeln!(out, "\n{}", settings_line(d))?;
    writeln!(out, "result: {}", result_line(d))?;
    for r in &d.regressions {
        writeln!(out, "  {r}")?;
    }
    for u in &d.undecided {
        writeln!(out, "  undecided: {u}")?;
    }
    Ok(())
}

fn threshold_cells(c: &ThresholdCheck) -> [String; 4] {
    let fig = c.change.map_or("—".into(), |ch| {
        format!("{} → {}", figure(c.unit, ch.base), figure(c.unit, ch.cand))
    });
    let result = if c.failed {
        "FAILED".to_string()
    } else {
        match &c.note {
            Some(n) => format!("ok ({n})"),
            None => "ok".into(),
        }
    };
    [c.expr.clone(), c.row.clone(), fig, result]
}

/// Escapes a table cell of GitHub's Markdown.
pub fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// One row of a GitHub Markdown table.
pub fn md_row(cells: &[String]) -> String {
    format!(
        "| {} |",
        cells
            .iter()
            .map(|c| md_escape(c))
            .collect::<Vec<_>>()
            .join(" | ")
    )
}

/// Writes the diff as Markdown, the verdict first, for a pull-request comment.
pub fn markdown(d: &Diff, out: &mut impl Write) -> io::Result<()> {
    let mark = result_mark(d.regression, d.undecided.len(), d.settings.allow_undecided);
    writeln!(out, "### tcptape diff: {mark} {}\n", result_line(d))?;
    for r in &d.regressions {
        writeln!(out, "- {}", md_escape(r))?;
    }
    for u in &d.undecided {
        writeln!(out, "- undecided: {}", md_escape(u))?;
    }
    if !d.regressions.is_empty() || !d.undecided.is_empty() {
        writeln!(out)?;
    }
    // A paragraph with a hard break, not list items: a list right after the regressions would
    // join theirs (one loose list) on GitHub.
    writeln!(out, "base: `{}`\\", side_line(&d.base))?;
    writeln!(out, "candidate: `{}`", side_line(&d.cand))?;
    if !d.environment.is_empty() {
        writeln!(
            out,
            "\n> **The environments differ**; the recordings may not be comparable:"
        )?;
        for e in &d.environment {
            writeln!(out, "> - {}: `{}` → `{}`", e.what, e.base, e.cand)?;
        }
    }
    for (title, rows) in [
        ("Per-stage latency", &d.stages),
        ("End to end", &d.end_to_end),
    ] {
        writeln!(out, "\n#### {title}\n")?;
        if rows.is_empty() {
            writeln!(out, "None recorded.")?;
            continue;
        }
        writeln!(out, "{}", md_row(&HEADER.map(String::from)))?;
        writeln!(out, "|{}", "---|".repeat(HEADER.len()))?;
        for r in rows {
            let mut cells = row_cells(r, " ");
            if matches!(r.verdict, Verdict::Slower | Verdict::Undecided) {
                let last = cells.len() - 1;
                cells[last] = format!("**{}**", cells[last]);
            }
            writeln!(out, "{}", md_row(&cells))?;
        }
    }
    if !d.only_in_base.is_empty() {
        writeln!(out, "\nOnly in base: {}", d.only_in_base.join(", "))?;
    }
    if !d.only_in_cand.is_empty() {
        writeln!(out, "\nOnly in candidate: {}", d.only_in_cand.join(", "))?;
    }
    writeln!(
        out,
        "\n- {}",
        retransmit_line(d)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    )?;
    writeln!(
        out,
        "- {}",
        lost_line(d)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    )?;
    if !d.thresholds.is_empty() {
        writeln!(out, "\n#### Thresholds\n")?;
        writeln!(
            out,
            "| --fail-on | row | base → candidate | result |\n|---|---|---|---|"
        )?;
        for c in &d.thresholds {
            writeln!(out, "{}", md_row(&threshold_cells(c)))?;
        }
    }
    writeln!(out, "\n<sub>{}</sub>", settings_line(d))?;
    Ok(())
}
