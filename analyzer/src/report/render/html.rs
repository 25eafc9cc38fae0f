//! One self-contained HTML file that leads with pictures: the packet path as recorded
//! ([`super::path_drawing`]), the per-stage distributions as small multiples
//! ([`super::histograms`]), RTT and cwnd over time with each retransmission and drop marked; then
//! the tables of the other formats. No script and no external resource; readable in a narrow
//! window and printable.

use super::plots::{lines, Marks, Series};
use super::sections::Block;
use super::{histograms, path_drawing};
use crate::journeys::cross_host::HostPair;
use crate::report::model::Report;
use crate::units::ns;
use plotters::style::RGBColor;
use std::collections::BTreeMap;
use std::io::Write;

/// Text escaped for HTML content and attributes.
pub fn esc(s: &str) -> String {
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

fn ms(v: f64) -> String {
    format!("{v:.2}ms")
}

/// The time lines of a report (RTT, cwnd), with retransmissions and drops marked as the events
/// they are, as SVG documents.
pub fn plots(r: &Report) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
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
    let mark = |kind: &str, name: &str, color: RGBColor| {
        let xs: Vec<f64> = r
            .tcp
            .events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.t_ns as f64 / 1e9)
            .collect();
        (!xs.is_empty()).then(|| Marks {
            name: format!("{name} ({})", xs.len()),
            color,
            xs,
        })
    };
    let marks: Vec<Marks> = [
        mark("retransmit", "retransmission", RGBColor(214, 39, 40)),
        mark("drop", "drop", RGBColor(0, 0, 0)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !rtt.is_empty() {
        out.push(lines(
            "Smoothed RTT over time",
            "time",
            "srtt",
            &named(rtt),
            &marks,
            (secs, ms),
        )?);
        out.push(lines(
            "Congestion window over time",
            "time",
            "cwnd (segments)",
            &named(cwnd),
            &marks,
            (secs, plain),
        )?);
    } else if !marks.is_empty() {
        out.push(lines(
            "Retransmissions and drops",
            "time",
            "",
            &[],
            &marks,
            (secs, |_| String::new()),
        )?);
    }
    Ok(out)
}

const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#222}\
h1{font-size:1.5em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}h3{font-size:1.05em;margin:.2em 0}\
h3 small{font-weight:normal;color:#555}\
.legend{color:#555;font-size:.9em}\
.note{background:#fff6d6;border-left:4px solid #e0b000;padding:.3em .6em;margin:.3em 0}\
.lane{margin:1em 0 1.6em}\
.stack{display:flex;height:28px;border-radius:3px;overflow:hidden;margin:.3em 0 .6em}\
.stack span{color:#fff;font-size:12px;line-height:28px;padding:0 4px;white-space:nowrap;overflow:hidden;\
text-overflow:ellipsis;min-width:3px;box-sizing:border-box}\
.hop{display:grid;grid-template-columns:minmax(14em,1.2fr) minmax(17em,1.3fr) 2fr;gap:.2em 1em;\
align-items:center;padding:3px 0;border-bottom:1px solid #eee;font-size:14px}\
.hop.dominant .name{font-weight:600}.hop.beside{color:#777}\
.track{position:relative;height:12px;background:#f1f1f1}\
.track .p50{position:absolute;left:0;top:0;bottom:0;background:#4e79a7}\
.hop.dominant .track .p50{background:#d62728}\
.track .p99{position:absolute;top:5px;height:2px;background:#333}\
.dom{color:#d62728}.num{font-variant-numeric:tabular-nums;white-space:nowrap}\
.multiples{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:.8em}\
svg.hist{width:100%;height:auto}svg.hist rect{fill:#4e79a7}svg.hist .axis{stroke:#888}\
svg.hist text{font-size:10px;fill:#333}svg.hist .t{font-size:11px;font-weight:600}\
svg.plot{display:block;width:100%;height:auto;max-width:820px;margin:1em 0}\
.scroll{overflow-x:auto}\
table{border-collapse:collapse;margin:.5em 0 1em}\
td,th{border:1px solid #ccc;padding:2px 8px;text-align:right;font-variant-numeric:tabular-nums}\
td:first-child,th:first-child{text-align:left}pre{background:#f6f6f6;padding:.6em;white-space:pre-wrap}\
@media (max-width:700px){.hop{grid-template-columns:1fr}}\
@media print{body{max-width:none;margin:0}.lane,svg,table{break-inside:avoid}.scroll{overflow:visible}}";

fn blocks(blocks: &[Block], out: &mut impl Write) -> std::io::Result<()> {
    for b in blocks {
        match b {
            Block::Heading(h) => writeln!(out, "<h3>{}</h3>", esc(h))?,
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
                write!(out, "<div class=\"scroll\"><table><tr>")?;
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
                writeln!(out, "</table></div>")?;
                if *omitted > 0 {
                    writeln!(out, "<p><i>{omitted} more rows in the JSON report.</i></p>")?;
                }
            }
        }
    }
    Ok(())
}

/// Writes the reports (one per host, with their table blocks) and what crossed between the
/// hosts as one HTML document.
pub fn write(
    reports: &[(Report, Vec<Block>)],
    between: Option<(&[HostPair], Vec<Block>)>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let hosts: Vec<&str> = reports.iter().map(|(r, _)| r.host.as_str()).collect();
    writeln!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>tcptape report: {}</title><style>{STYLE}</style></head><body>",
        esc(&hosts.join(", "))
    )?;
    writeln!(out, "<h1>tcptape report: {}</h1>", esc(&hosts.join(", ")))?;
    // What qualifies every figure below (lost events, sampling, a flight recorder's trigger)
    // comes first.
    for (r, _) in reports {
        for n in &r.notes {
            writeln!(
                out,
                "<p class=\"note\"><b>{}</b> {}</p>",
                esc(&r.host),
                esc(n)
            )?;
        }
    }
    let several = reports.len() > 1;
    // The JSON of one host is its report; of several, each is under `hosts`.
    let base = |i: usize| {
        if several {
            format!("/hosts/{i}")
        } else {
            String::new()
        }
    };
    writeln!(out, "<h2>Where the time goes</h2>")?;
    writeln!(out, "<section id=\"path\">")?;
    writeln!(out, "<p class=\"legend\">{}</p>", path_drawing::LEGEND)?;
    if let Some((pairs, _)) = &between {
        let all: Vec<&Report> = reports.iter().map(|(r, _)| r).collect();
        path_drawing::write(&path_drawing::cross_host_lanes(&all, pairs), out)?;
    }
    for (i, (r, _)) in reports.iter().enumerate() {
        if several {
            writeln!(out, "<h3>{}</h3>", esc(&r.host))?;
        }
        let lanes = path_drawing::lanes(r, &base(i));
        if lanes.is_empty() {
            writeln!(
                out,
                "<p><i>no packet went through two recorded stages</i></p>"
            )?;
        }
        path_drawing::write(&lanes, out)?;
    }
    writeln!(out, "</section>")?;
    writeln!(out, "<h2>Latency per stage</h2>")?;
    writeln!(
        out,
        "<p class=\"legend\">Packets per latency bin, one small chart per pair of adjacent \
         stages, all on one log time axis (four bins per decade).</p>"
    )?;
    for (r, _) in reports {
        if several {
            writeln!(out, "<h3>{}</h3>", esc(&r.host))?;
        }
        histograms::write(&r.histograms, out)?;
    }
    writeln!(
        out,
        "<h2>RTT, congestion window, retransmissions and drops</h2>"
    )?;
    for (r, _) in reports {
        if several {
            writeln!(out, "<h3>{}</h3>", esc(&r.host))?;
        }
        let svgs = plots(r).map_err(|e| anyhow::anyhow!("plot failed: {e}"))?;
        if svgs.is_empty() {
            writeln!(
                out,
                "<p><i>no RTT sample, retransmission or drop recorded</i></p>"
            )?;
        }
        for svg in svgs {
            // The SVG starts with an XML declaration, which is not allowed inside HTML.
            let body = svg.find("<svg").map_or(svg.as_str(), |i| &svg[i..]);
            writeln!(out, "{}", body.replacen("<svg ", "<svg class=\"plot\" ", 1))?;
        }
    }
    writeln!(out, "<h2>Tables</h2>")?;
    for (r, b) in reports {
        if several {
            writeln!(out, "<h2>{}</h2>", esc(&r.host))?;
        }
        blocks(b, out)?;
    }
    if let Some((_, b)) = &between {
        blocks(b, out)?;
    }
    writeln!(out, "</body></html>")?;
    Ok(())
}
