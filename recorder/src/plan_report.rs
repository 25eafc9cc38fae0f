//! The attach plan as the user sees it: a table (stage, mechanism chosen, why the others were
//! not used) or JSON. Shared by `check` and `record -v`.

use crate::attach_plan::StageOutcome;
use crate::stage_selection::StageUse;
use serde::Serialize;

/// One row of the report.
#[derive(Debug, Serialize)]
pub struct Row {
    /// Stage name.
    pub stage: &'static str,
    /// The mechanism used, if any.
    pub chosen: Option<&'static str>,
    /// The kernel point(s) it hooks.
    pub target: Option<String>,
    /// Mechanisms not used and why, in order.
    pub failed: Vec<Failure>,
    /// Why the stage has no option on some hosts.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub note: &'static str,
    /// Why the stage records nothing although it could (`--stage`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_kept: Option<&'static str>,
}

/// A mechanism that did not attach.
#[derive(Debug, Serialize)]
pub struct Failure {
    /// Mechanism name.
    pub mechanism: &'static str,
    /// Kernel point(s).
    pub target: String,
    /// The error.
    pub error: String,
}

/// Rows of the report, in stage order.
pub fn rows(outcomes: &[StageOutcome]) -> Vec<Row> {
    outcomes
        .iter()
        .map(|o| Row {
            stage: o.stage.name(),
            chosen: o.chosen.map(|m| m.name()),
            target: o
                .attempts
                .iter()
                .find(|a| a.error.is_none())
                .map(|a| a.target.clone()),
            failed: o
                .attempts
                .iter()
                .filter_map(|a| {
                    a.error.as_ref().map(|e| Failure {
                        mechanism: a.mechanism.name(),
                        target: a.target.clone(),
                        error: e.clone(),
                    })
                })
                .collect(),
            note: o.note,
            not_kept: match o.usage {
                StageUse::Keep => None,
                StageUse::FilterOnly => {
                    Some("not requested (--stage): attached for --pid/--iface, events dropped")
                }
                StageUse::Skip => Some("not requested (--stage)"),
            },
        })
        .collect()
}

/// The plan as a text table.
pub fn table(outcomes: &[StageOutcome]) -> String {
    let rows = rows(outcomes);
    let w = rows
        .iter()
        .filter_map(|r| r.target.as_ref().map(String::len))
        .max()
        .unwrap_or(0)
        .max("KERNEL POINT".len());
    let line = |stage: &str, mech: &str, target: &str, why: &str| {
        let l = format!("{stage:<14} {mech:<11} {target:<w$} {why}");
        format!("{}\n", l.trim_end())
    };
    let mut out = line("STAGE", "MECHANISM", "KERNEL POINT", "NOT USED");
    for r in rows {
        let chosen = r.chosen.unwrap_or("-");
        let target = r.target.clone().unwrap_or_else(|| "-".into());
        let mut why: Vec<String> = r
            .failed
            .iter()
            .map(|f| format!("{}: {}", f.mechanism, f.error))
            .collect();
        if let Some(n) = r.not_kept {
            why.insert(0, n.to_string());
        } else if r.chosen.is_none() && !r.note.is_empty() {
            why.push(r.note.to_string());
        }
        let first = why.first().cloned().unwrap_or_default();
        out.push_str(&line(r.stage, chosen, &target, &first));
        for more in why.iter().skip(1) {
            out.push_str(&line("", "", "", more));
        }
    }
    let n = outcomes.iter().filter(|o| o.records()).count();
    let requested = outcomes
        .iter()
        .filter(|o| o.usage == StageUse::Keep)
        .count();
    if requested == outcomes.len() {
        out.push_str(&format!(
            "{n} of {requested} stages can be recorded on this host\n"
        ));
    } else {
        out.push_str(&format!(
            "{n} of the {requested} requested stages can be recorded on this host\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attach_plan::{Attempt, Mechanism};
    use tcptape_common::Stage;

    #[test]
    fn table_shows_the_choice_and_every_failure() {
        let outcomes = vec![
            StageOutcome {
                stage: Stage::RxTcpEst,
                chosen: Some(Mechanism::TpBtf),
                attempts: vec![
                    Attempt {
                        mechanism: Mechanism::Fentry,
                        target: "tcp_rcv_established".into(),
                        error: Some("load failed: EPERM".into()),
                    },
                    Attempt {
                        mechanism: Mechanism::TpBtf,
                        target: "tcp_probe".into(),
                        error: None,
                    },
                ],
                note: "",
                programs: vec!["rx_tcp_est__tp_btf__tcp_probe"],
                usage: StageUse::Keep,
            },
            StageOutcome {
                stage: Stage::RxIp,
                chosen: None,
                attempts: vec![],
                note: "no tracepoint exists at IP receive",
                programs: vec![],
                usage: StageUse::Keep,
            },
        ];
        let t = table(&outcomes);
        assert!(t.contains("rx_tcp_est     tp_btf      tcp_probe"), "{t}");
        assert!(t.contains("fentry: load failed: EPERM"), "{t}");
        assert!(t.contains("no tracepoint exists at IP receive"), "{t}");
        assert!(
            t.ends_with("1 of 2 stages can be recorded on this host\n"),
            "{t}"
        );
        let json = serde_json::to_value(rows(&outcomes)).unwrap();
        assert_eq!(json[0]["chosen"], "tp_btf");
        assert_eq!(json[1]["chosen"], serde_json::Value::Null);
    }

    #[test]
    fn table_says_which_stages_were_not_requested() {
        let outcome = |stage, usage| StageOutcome {
            stage,
            chosen: (usage != StageUse::Skip).then_some(Mechanism::TpBtf),
            attempts: vec![],
            note: "a note not shown for a stage not requested",
            programs: vec![],
            usage,
        };
        let outcomes = vec![
            outcome(Stage::Retransmit, StageUse::Keep),
            outcome(Stage::RxApp, StageUse::FilterOnly),
            outcome(Stage::TxDriver, StageUse::Skip),
        ];
        let t = table(&outcomes);
        assert!(t.contains("tx_driver      -"), "{t}");
        assert!(t.contains("not requested (--stage)\n"), "{t}");
        assert!(
            t.contains("attached for --pid/--iface, events dropped"),
            "{t}"
        );
        assert!(!t.contains("a note not shown"), "{t}");
        assert!(
            t.ends_with("1 of the 1 requested stages can be recorded on this host\n"),
            "{t}"
        );
        let json = serde_json::to_value(rows(&outcomes)).unwrap();
        assert_eq!(json[2]["not_kept"], "not requested (--stage)");
        assert!(json[0].get("not_kept").is_none());
    }
}
