//! `tcptape report REC...`: opens the recordings, builds one report per host (and, with several,
//! what crossed between them) and writes it in the chosen format.

use crate::cli::{ReportArgs, ReportFormat};
use crate::exit_code;
use crate::journeys::cross_host;
use crate::progress::Steps;
use crate::report::model::{Report, REPORT_SCHEMA};
use crate::report::render::{html, markdown, sections, table};
use crate::report::{self, Options};
use anyhow::Context;
use std::io::Write;

/// Hosts whose traffic between them is joined at most (every pair is: quadratic).
const MAX_JOINED_HOSTS: usize = 8;

/// Runs `report`, writing to `out` unless `-o` names a file.
pub fn run(args: &ReportArgs, out: &mut impl Write) -> anyhow::Result<i32> {
    let paths = crate::inputs::expand(&args.recs)?;
    let hosts = crate::inputs::open_by_host(&paths)?;
    let steps = Steps::new(report::STEPS * hosts.len() as u64, args.quiet);
    let mut reports = Vec::new();
    let selections = args
        .select
        .selections(hosts.iter().map(|(_, recs)| recs.as_slice()))?;
    for ((host, recs), mut selection) in hosts.iter().zip(selections) {
        if let Some(span) = args.around {
            let at = recs
                .iter()
                .find_map(|r| r.meta().segment.trigger.map(|t| t.at_ns))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--around: no recording of {host} was saved by a trigger \
                         (tcptape-record --keep … --trigger …)"
                    )
                })?;
            let span = span.as_nanos() as u64;
            selection.from_ns = Some(at.saturating_sub(span));
            selection.to_ns = Some(at.saturating_add(span));
        }
        let opts = Options {
            selection,
            max_hop_gap_ns: args.max_hop_gap.as_nanos() as u64,
            pictures: args.format == ReportFormat::Html,
            pooling: hosts.len() > 1,
        };
        if args.explain {
            tcptape_common::note!("{}", report::explain(recs, &opts)?);
        }
        let mut r = report::build(recs, &opts, &steps)?;
        // The group's name: a host name shared by two boots says which boot.
        r.host = host.clone();
        reports.push(r);
    }
    drop(steps);
    // Several hosts: what crossed between them, with their clocks aligned. Every pair is
    // joined, so a fleet is not: name the hosts to join.
    if hosts.len() > MAX_JOINED_HOSTS && !args.quiet {
        tcptape_common::note!(
            "note: the traffic between hosts is not joined for {} hosts (at most \
             {MAX_JOINED_HOSTS}); give the recordings of the hosts to join",
            hosts.len()
        );
    }
    let between = if (2..=MAX_JOINED_HOSTS).contains(&hosts.len()) {
        let edges = hosts
            .iter()
            .map(|(h, recs)| Ok((h.clone(), cross_host::WireEdge::read(recs)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Some(cross_host::pairs(&edges))
    } else {
        None
    };
    let between = between.as_deref();
    match &args.output {
        None => write(args, &reports, between, out)?,
        Some(path) => {
            let f = std::fs::File::create(path)
                .with_context(|| format!("{}: cannot create", path.display()))?;
            let mut w = std::io::BufWriter::new(f);
            write(args, &reports, between, &mut w)?;
            w.flush()
                .with_context(|| format!("{}: cannot write", path.display()))?;
        }
    }
    Ok(exit_code::OK)
}

fn write(
    args: &ReportArgs,
    reports: &[Report],
    between: Option<&[cross_host::HostPair]>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match args.format {
        ReportFormat::Json => {
            // One host: the report itself; several: each under `hosts`.
            if let [r] = reports {
                serde_json::to_writer_pretty(&mut *out, r)?;
            } else {
                serde_json::to_writer_pretty(
                    &mut *out,
                    &serde_json::json!({
                        "schema": REPORT_SCHEMA,
                        "hosts": reports,
                        "hosts_ranked": crate::report::model::rank_hosts(reports),
                        "pooled": {
                            "rule": crate::report::model::POOLED_RULE,
                            "stages": crate::report::model::pooled(reports),
                        },
                        "between_hosts": between.unwrap_or_default(),
                    }),
                )?;
            }
            writeln!(out)?;
        }
        ReportFormat::Table => {
            let layout = if args.wide {
                table::Layout::Wide
            } else {
                table::Layout::Fit
            };
            for (i, r) in reports.iter().enumerate() {
                if i > 0 {
                    writeln!(out, "\n{}", "═".repeat(60))?;
                }
                table::write_with(&sections::sections(r, args.limit), layout, out)?;
            }
            if reports.len() > 2 {
                writeln!(out, "\n{}", "═".repeat(60))?;
                table::write_with(&sections::hosts_ranked(reports, args.limit), layout, out)?;
                table::write_with(&sections::pooled(reports), layout, out)?;
            }
            if let Some(pairs) = between {
                writeln!(out, "\n{}", "═".repeat(60))?;
                table::write_with(&sections::between_hosts(pairs), layout, out)?;
            }
        }
        ReportFormat::Markdown => {
            for r in reports {
                markdown::write(
                    &format!("tcptape report: {}", r.host),
                    &sections::sections(r, args.limit),
                    out,
                )?;
            }
            if reports.len() > 2 {
                markdown::write("hosts", &sections::hosts_ranked(reports, args.limit), out)?;
                markdown::write("all hosts", &sections::pooled(reports), out)?;
            }
            if let Some(pairs) = between {
                markdown::write("between hosts", &sections::between_hosts(pairs), out)?;
            }
        }
        ReportFormat::Html => {
            let all: Vec<_> = reports
                .iter()
                .map(|r| (r.clone(), sections::sections(r, args.limit)))
                .collect();
            let between = between.map(|p| (p, sections::between_hosts(p)));
            html::write(&all, between, out)?;
        }
    }
    Ok(())
}
