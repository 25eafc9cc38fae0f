//! Whether two recordings were made under comparable conditions: the environment fingerprint
//! (kernel, congestion control, socket buffers, offloads), the attach plan and the sampling.
//! A difference does not stop the comparison; it is stated at the top of the output, because a
//! stage measured by fentry on one side and by a tracepoint on the other is not the same figure.

use super::model::EnvDifference;
use std::collections::BTreeSet;
use tcptape_common::RecordingMeta;

fn push(out: &mut Vec<EnvDifference>, what: impl Into<String>, base: String, cand: String) {
    if base != cand {
        out.push(EnvDifference {
            what: what.into(),
            base,
            cand,
        });
    }
}

fn flag(v: Option<bool>) -> String {
    match v {
        Some(true) => "on".into(),
        Some(false) => "off".into(),
        None => "unknown".into(),
    }
}

/// Every difference between the two recordings' environments, in a fixed order.
pub fn differences(base: &RecordingMeta, cand: &RecordingMeta) -> Vec<EnvDifference> {
    let mut out = Vec::new();
    let (b, c) = (&base.environment, &cand.environment);
    let kernel = |m: &RecordingMeta| {
        if m.environment.kernel_release.is_empty() {
            m.kernel_release.clone()
        } else {
            m.environment.kernel_release.clone()
        }
    };
    push(&mut out, "kernel", kernel(base), kernel(cand));
    push(
        &mut out,
        "congestion control",
        b.congestion_control.clone(),
        c.congestion_control.clone(),
    );
    push(&mut out, "tcp_rmem", b.tcp_rmem.clone(), c.tcp_rmem.clone());
    push(&mut out, "tcp_wmem", b.tcp_wmem.clone(), c.tcp_wmem.clone());
    let names: BTreeSet<&str> = b
        .interfaces
        .iter()
        .chain(&c.interfaces)
        .map(|i| i.name.as_str())
        .collect();
    for name in names {
        let (bi, ci) = (
            b.interfaces.iter().find(|i| i.name == name),
            c.interfaces.iter().find(|i| i.name == name),
        );
        match (bi, ci) {
            (Some(bi), Some(ci)) => {
                push(
                    &mut out,
                    format!("offload {name} gro"),
                    flag(bi.gro),
                    flag(ci.gro),
                );
                push(
                    &mut out,
                    format!("offload {name} tso"),
                    flag(bi.tso),
                    flag(ci.tso),
                );
                push(
                    &mut out,
                    format!("offload {name} gso"),
                    flag(bi.gso),
                    flag(ci.gso),
                );
            }
            (bi, ci) => push(
                &mut out,
                format!("interface {name}"),
                if bi.is_some() { "present" } else { "absent" }.into(),
                if ci.is_some() { "present" } else { "absent" }.into(),
            ),
        }
    }
    let stages: BTreeSet<&str> = base
        .attach_plan
        .iter()
        .chain(&cand.attach_plan)
        .map(|s| s.stage.as_str())
        .collect();
    let chosen =
        |m: &RecordingMeta, stage: &str| match m.attach_plan.iter().find(|s| s.stage == stage) {
            None => "not planned".to_string(),
            Some(s) => {
                let target = s
                    .attempts
                    .iter()
                    .find(|a| a.error.is_none())
                    .map(|a| format!(" {}", a.target))
                    .unwrap_or_default();
                match &s.chosen {
                    Some(c) => format!("{c}{target}"),
                    None => "unavailable".into(),
                }
            }
        };
    let kept = |m: &RecordingMeta| match m.filters.stages.as_slice() {
        [] => "every stage".to_string(),
        s => s.join(" "),
    };
    push(&mut out, "stages kept (--stage)", kept(base), kept(cand));
    for stage in stages {
        // A stage one side did not ask for is said once, by the line above.
        if !base.filters.keeps_stage(stage) || !cand.filters.keeps_stage(stage) {
            continue;
        }
        push(
            &mut out,
            format!("attach {stage}"),
            chosen(base, stage),
            chosen(cand, stage),
        );
    }
    let sampling = |m: &RecordingMeta| m.sampling.describe();
    push(&mut out, "sampling", sampling(base), sampling(cand));
    push(&mut out, "source", base.source.clone(), cand.source.clone());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tcptape_common::metadata::{AttachAttempt, StageAttach};
    use tcptape_common::synth::{synth_meta, Mix, SynthConfig};

    #[test]
    fn same_environment_has_no_difference_and_each_change_is_named() {
        let a = synth_meta(&SynthConfig::new(Mix::Bulk, 10, 1));
        let mut b = synth_meta(&SynthConfig::new(Mix::Bulk, 10, 2));
        assert!(differences(&a, &b).is_empty());
        b.environment.kernel_release = "6.18.0".into();
        b.environment.congestion_control = "bbr".into();
        b.environment.interfaces[0].gro = Some(false);
        b.attach_plan.push(StageAttach {
            stage: "rx_tcp_est".into(),
            chosen: Some("tracepoint".into()),
            attempts: vec![AttachAttempt {
                mechanism: "tracepoint".into(),
                target: "tcp/tcp_probe".into(),
                error: None,
            }],
        });
        let d = differences(&a, &b);
        let whats: Vec<&str> = d.iter().map(|d| d.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "kernel",
                "congestion control",
                "offload veth-snd gro",
                "attach rx_tcp_est"
            ]
        );
        assert_eq!(d[0].cand, "6.18.0");
        assert_eq!(d[3].base, "not planned");
        assert_eq!(d[3].cand, "tracepoint tcp/tcp_probe");
    }

    #[test]
    fn stages_left_out_with_stage_are_one_difference_not_one_per_stage() {
        let attach = |stage: &str, chosen: Option<&str>| StageAttach {
            stage: stage.into(),
            chosen: chosen.map(Into::into),
            attempts: vec![],
        };
        let mut a = synth_meta(&SynthConfig::new(Mix::Bulk, 10, 1));
        a.attach_plan = vec![
            attach("rx_app", Some("tp_btf")),
            attach("retransmit", Some("tp_btf")),
        ];
        let mut b = a.clone();
        b.filters.stages = vec!["retransmit".into()];
        b.attach_plan = vec![attach("rx_app", None), attach("retransmit", None)];
        let d = differences(&a, &b);
        let whats: Vec<&str> = d.iter().map(|d| d.what.as_str()).collect();
        // rx_app is not compared (not requested), retransmit is (unavailable on one side).
        assert_eq!(whats, ["stages kept (--stage)", "attach retransmit"]);
        assert_eq!(d[0].base, "every stage");
        assert_eq!(d[0].cand, "retransmit");
        assert_eq!(d[1].cand, "unavailable");
    }
}
