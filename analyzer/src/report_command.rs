//! `tcptape report REC...`: opens the recordings, builds one report per host and writes it in
//! the chosen format.

use crate::cli::{ReportArgs, ReportFormat};
use crate::exit_code;
use crate::model::{Report, REPORT_SCHEMA};
use crate::progress::Steps;
use crate::queries::select::Selection;
use crate::render::{html, markdown, sections, table};
use crate::report::{self, Options};
use anyhow::Context;
use std::io::Write;

/// Runs `report`, writing to `out` unless `-o` names a file.
pub fn run(args: &ReportArgs, out: &mut impl Write) -> anyhow::Result<i32> {
    let paths = crate::inputs::expand(&args.recs)?;
    let hosts = crate::inputs::open_by_host(&paths)?;
    if let (Some(f), Some(t)) = (args.from, args.to) {
        anyhow::ensure!(f < t, "--from {f:?} is not before --to {t:?}");
    }
    let steps = Steps::new(report::STEPS * hosts.len() as u64, args.quiet);
    let mut reports = Vec::new();
    for (_, recs) in &hosts {
        let start = recs.iter().map(|r| r.meta().start_ns).min().unwrap_or(0);
        let opts = Options {
            selection: Selection {
                ports: args.port.clone(),
                flows: args.flow.clone(),
                from_ns: args.from.map(|d| start + d.as_nanos() as u64),
                to_ns: args.to.map(|d| start + d.as_nanos() as u64),
                stages: args.stage.clone(),
            },
            max_hop_gap_ns: args.max_hop_gap.as_nanos() as u64,
            cdf: args.format == ReportFormat::Html,
        };
        if args.explain {
            tcptape_common::note!("{}", report::explain(recs, &opts)?);
        }
        reports.push(report::build(recs, &opts, &steps)?);
    }
    drop(steps);
    match &args.output {
        None => write(args, &reports, out)?,
        Some(path) => {
            let f = std::fs::File::create(path)
                .with_context(|| format!("{}: cannot create", path.display()))?;
            let mut w = std::io::BufWriter::new(f);
            write(args, &reports, &mut w)?;
            w.flush()
                .with_context(|| format!("{}: cannot write", path.display()))?;
        }
    }
    Ok(exit_code::OK)
}

fn write(args: &ReportArgs, reports: &[Report], out: &mut impl Write) -> anyhow::Result<()> {
    match args.format {
        ReportFormat::Json => {
            // One host: the report itself; several: each under `hosts`.
            if let [r] = reports {
                serde_json::to_writer_pretty(&mut *out, r)?;
            } else {
                serde_json::to_writer_pretty(
                    &mut *out,
                    &serde_json::json!({ "schema": REPORT_SCHEMA, "hosts": reports }),
                )?;
            }
            writeln!(out)?;
        }
        ReportFormat::Table => {
            for (i, r) in reports.iter().enumerate() {
                if i > 0 {
                    writeln!(out, "\n{}", "═".repeat(60))?;
                }
                table::write(&sections::sections(r, args.limit), out)?;
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
        }
        ReportFormat::Html => {
            let all: Vec<_> = reports
                .iter()
                .map(|r| (r.clone(), sections::sections(r, args.limit)))
                .collect();
            html::write(&all, out)?;
        }
    }
    Ok(())
}
