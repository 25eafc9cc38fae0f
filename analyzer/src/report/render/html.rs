//! One self-contained HTML file: the tables of the other formats plus SVG plots (latency CDF
//! per stage, RTT and cwnd over time, retransmits over time). No script, no external resource.

use super::plots::{lines, Series};
use super::sections::Block;
use crate::report::model::Report;
use crate::units::ns;
use std::collections::BTreeMap;
use std::io::Write;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn secs(v: f64) -> String {
    ns(v * 1e9)
}

fn plain(v: f64) -> String {
    format!("{v:.0}")
}

fn fraction(v: f64) -> String {
    format!("{v:.2}")
}

fn log_ns(v: f64) -> String {
    ns(10f64.powf(v))
}

fn ms(v: f64) -> String {
    format!("{v:.2}ms")
}

/// The plots of a report, as SVG documents with their titles.
pub fn plots(r: &Report) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    if !r.cdf.is_empty() {
        // Latency spans several orders of magnitude: log10(ns) on x.
        let series: Vec<Series> = r
            .cdf
            .iter()
            .map(|c| {
                let n = c.quantiles_ns.len().saturating_sub(1).max(1) as f64;
                let pts = c
                    .quantiles_ns
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (((*v).max(1) as f64).log10(), i as f64 / n))
                    .collect();
                (format!("{} → {}", c.from, c.to), pts)
            })
            .collect();
        out.push(lines(
            "Latency CDF per stage",
            "latency (log scale)",
            "fraction of packets",
            &series,
            log_ns,
            fraction,
        )?);
    }
    let mut rtt: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    let mut cwnd: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for p in &r.tcp.rtt_cwnd_over_time {
        let t = p.t_ns as f64 / 1e9;
        rtt.entry(&p.flow)
            .or_default()
            .push((t, p.srtt_us as f64 / 1e3));
        cwnd.entry(&p.flow).or_default().push((t, p.cwnd as f64));
    }
    let named = |m: BTreeMap<&str, Vec<(f64, f64)>>| -> Vec<Series> {
        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    };
    if !rtt.is_empty() {
        out.push(lines(
            "Smoothed RTT over time",
            "time",
            "srtt",
            &named(rtt),
            secs,
            ms,
        )?);
        out.push(lines(
            "Congestion window over time",
            "time",
            "cwnd (segments)",
            &named(cwnd),
            secs,
            plain,
        )?);
    }
    let span = (r.duration_ns / 1_000_000_000) as i64;
    let per: BTreeMap<i64, u64> = r
        .tcp
        .retransmits
        .per_second
        .iter()
        .map(|s| (s.second, s.segments))
        .collect();
    let pts = (0..=span)
        .map(|s| (s as f64, per.get(&s).copied().unwrap_or(0) as f64))
        .collect();
    out.push(lines(
        "Retransmitted segments per second",
        "time",
        "segments",
        &[("retransmits".into(), pts)],
        secs,
        plain,
    )?);
    Ok(out)
}

/// Writes the report as one HTML document.
pub fn write(reports: &[(Report, Vec<Block>)], out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tcptape report</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}\
         table{{border-collapse:collapse;margin:.5em 0 1em}}\
         td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right;font-variant-numeric:tabular-nums}}\
         td:first-child,th:first-child{{text-align:left}} pre{{background:#f6f6f6;padding:.6em}}\
         svg{{display:block;margin:1em 0}}</style></head><body>"
    )?;
    for (r, blocks) in reports {
        writeln!(out, "<h1>tcptape report: {}</h1>", esc(&r.host))?;
        for b in blocks {
            match b {
                Block::Heading(h) => writeln!(out, "<h2>{}</h2>", esc(h))?,
                Block::Text(lines) => writeln!(out, "<pre>{}</pre>", esc(&lines.join("\n")))?,
                Block::Table {
                    header,
                    rows,
                    omitted,
                } => {
                    if rows.is_empty() {
                        writeln!(out, "<p><i>none</i></p>")?;
                        continue;
                    }
                    write!(out, "<table><tr>")?;
                    for h in header {
                        write!(out, "<th>{}</th>", esc(h))?;
                    }
                    writeln!(out, "</tr>")?;
                    for row in rows {
                        write!(out, "<tr>")?;
                        for c in row {
                            write!(out, "<td>{}</td>", esc(c))?;
                        }
                        writeln!(out, "</tr>")?;
                    }
                    writeln!(out, "</table>")?;
                    if *omitted > 0 {
                        writeln!(out, "<p><i>{omitted} more rows in the JSON report.</i></p>")?;
                    }
                }
            }
        }
        writeln!(out, "<h2>Plots</h2>")?;
        for svg in plots(r).map_err(|e| anyhow::anyhow!("plot failed: {e}"))? {
            // The SVG starts with an XML declaration, which is not allowed inside HTML.
            let body = svg.find("<svg").map_or(svg.as_str(), |i| &svg[i..]);
            writeln!(out, "{body}")?;
        }
    }
    writeln!(out, "</body></html>")?;
    Ok(())
}
