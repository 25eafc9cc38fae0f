//! `diff --format junit`: the comparison as JUnit XML, the report format CI systems (GitLab,
//! Jenkins, GitHub test reporters) show as tests. One test suite per host, one test case per
//! pair of stages and per `--fail-on` check: a regression is a `<failure>`, an undecided row an
//! `<error>` (never a pass), a row too rare to test `<skipped>`.

use super::compare::fails;
use super::model::{Diff, StageDiff, Verdict};
use super::render::percent;
use crate::units::ns;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;
use std::io::Write;

/// How one test case ended.
enum Outcome {
    Pass,
    Failure(String),
    Error(String),
    Skipped(String),
}

struct Case {
    class: String,
    name: String,
    outcome: Outcome,
    /// What the case measured, one line.
    out: String,
}

fn figures(r: &StageDiff) -> String {
    match (&r.changes, &r.base, &r.cand) {
        (Some(c), _, _) => format!(
            "median {} → {} ({}), p99 {} → {}, packets {} → {}, verdict {}",
            ns(c.p50_ns.base),
            ns(c.p50_ns.cand),
            percent(c.p50_ns.rel),
            ns(c.p99_ns.base),
            ns(c.p99_ns.cand),
            c.count.base,
            c.count.cand,
            r.verdict.label()
        ),
        (None, Some(b), _) => format!("{} packets in the base only", b.count),
        (None, _, Some(c)) => format!("{} packets in the candidate only", c.count),
        _ => String::new(),
    }
}

fn stage_case(class: &str, prefix: &str, r: &StageDiff, d_fail: bool, settings_fail: bool) -> Case {
    let out = figures(r);
    let outcome = match r.verdict {
        Verdict::Slower if d_fail && settings_fail => {
            Outcome::Failure(format!("{prefix}{} slower: {out}", r.name()))
        }
        Verdict::Undecided => Outcome::Error(format!("undecided: {out}")),
        Verdict::TooFewPackets | Verdict::OneSideOnly => Outcome::Skipped(out.clone()),
        _ => Outcome::Pass,
    };
    Case {
        class: class.into(),
        name: format!("{prefix}{}", r.name()),
        outcome,
        out,
    }
}

fn cases(d: &Diff) -> Vec<Case> {
    // Without thresholds a SLOWER row fails the run when it rose by the failing amount; with
    // them, the thresholds decide.
    let by_verdict = d.thresholds.is_empty();
    let mut out = Vec::new();
    for (class, prefix, rows) in [
        ("stages", "", &d.stages),
        ("end_to_end", "end to end ", &d.end_to_end),
    ] {
        for r in rows {
            let fail = r.changes.is_some_and(|c| fails(c.p50_ns, &d.settings));
            out.push(stage_case(class, prefix, r, by_verdict, fail));
        }
    }
    for t in &d.thresholds {
        let fig = t.change.map_or(String::new(), |c| {
            format!(
                "{} → {}",
                super::render::figure(t.unit, c.base),
                super::render::figure(t.unit, c.cand)
            )
        });
        out.push(Case {
            class: "thresholds".into(),
            name: format!("{} on {}", t.expr, t.row),
            outcome: if t.failed {
                Outcome::Failure(format!("{} crossed: {fig}", t.expr))
            } else {
                Outcome::Pass
            },
            out: match &t.note {
                Some(n) => format!("{fig} ({n})"),
                None => fig,
            },
        });
    }
    out
}

fn attrs<'a>(name: &'a str, kv: &[(&'a str, String)]) -> BytesStart<'a> {
    let mut e = BytesStart::new(name);
    for (k, v) in kv {
        e.push_attribute((*k, v.as_str()));
    }
    e
}

/// Writes the test suites: one per host (`host` empty for a single comparison), then the rows
/// between hosts.
pub fn write(
    per_host: &[(&str, &Diff)],
    between: &[StageDiff],
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut suites: Vec<(String, Vec<Case>)> = per_host
        .iter()
        .map(|(h, d)| {
            let name = if h.is_empty() {
                "tcptape diff".to_string()
            } else {
                format!("tcptape diff {h}")
            };
            (name, cases(d))
        })
        .collect();
    if !between.is_empty() {
        let settings = &per_host.first().map(|(_, d)| d.settings.clone());
        let by_verdict = per_host.iter().all(|(_, d)| d.thresholds.is_empty());
        let cases = between
            .iter()
            .map(|r| {
                let fail = settings
                    .as_ref()
                    .is_some_and(|s| r.changes.is_some_and(|c| fails(c.p50_ns, s)));
                stage_case("between_hosts", "", r, by_verdict, fail)
            })
            .collect();
        suites.push(("tcptape diff between hosts".into(), cases));
    }
    let mut w = Writer::new_with_indent(out, b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let count = |cs: &[Case], f: fn(&Outcome) -> bool| cs.iter().filter(|c| f(&c.outcome)).count();
    let is_fail: fn(&Outcome) -> bool = |o| matches!(o, Outcome::Failure(_));
    let is_err: fn(&Outcome) -> bool = |o| matches!(o, Outcome::Error(_));
    let is_skip: fn(&Outcome) -> bool = |o| matches!(o, Outcome::Skipped(_));
    let all: Vec<&Case> = suites.iter().flat_map(|s| &s.1).collect();
    let total = |f: fn(&Outcome) -> bool| all.iter().filter(|c| f(&c.outcome)).count();
    w.write_event(Event::Start(attrs(
        "testsuites",
        &[
            ("name", "tcptape diff".into()),
            ("tests", all.len().to_string()),
            ("failures", total(is_fail).to_string()),
            ("errors", total(is_err).to_string()),
            ("skipped", total(is_skip).to_string()),
        ],
    )))?;
    for (name, cs) in &suites {
        w.write_event(Event::Start(attrs(
            "testsuite",
            &[
                ("name", name.clone()),
                ("tests", cs.len().to_string()),
                ("failures", count(cs, is_fail).to_string()),
                ("errors", count(cs, is_err).to_string()),
                ("skipped", count(cs, is_skip).to_string()),
            ],
        )))?;
        for c in cs {
            w.write_event(Event::Start(attrs(
                "testcase",
                &[("classname", c.class.clone()), ("name", c.name.clone())],
            )))?;
            let (tag, msg) = match &c.outcome {
                Outcome::Pass => ("", ""),
                Outcome::Failure(m) => ("failure", m.as_str()),
                Outcome::Error(m) => ("error", m.as_str()),
                Outcome::Skipped(m) => ("skipped", m.as_str()),
            };
            if !tag.is_empty() {
                w.write_event(Event::Empty(attrs(tag, &[("message", msg.to_string())])))?;
            }
            w.write_event(Event::Start(BytesStart::new("system-out")))?;
            w.write_event(Event::Text(BytesText::new(&c.out)))?;
            w.write_event(Event::End(BytesEnd::new("system-out")))?;
            w.write_event(Event::End(BytesEnd::new("testcase")))?;
        }
        w.write_event(Event::End(BytesEnd::new("testsuite")))?;
    }
    w.write_event(Event::End(BytesEnd::new("testsuites")))?;
    writeln!(w.get_mut())?;
    Ok(())
}
