//! `--stage`: a recording of some stages attaches only their programs and holds only their
//! events, complete; with `--pid` the other stages' programs still admit the flows.

use std::collections::BTreeSet;
use tcptape_e2e::netns::Pair;
use tcptape_e2e::recorder::record_during;
use tcptape_e2e::recording::load;
use tcptape_e2e::{analyzer, bpf_programs, should_run, traffic};

/// The stages of the programs a recorder holds (`<stage>__<mechanism>__<kernel point>`).
fn stages_attached(pid: u32) -> BTreeSet<String> {
    bpf_programs::held_by(pid)
        .expect("the recorder's programs")
        .iter()
        .filter_map(|name| name.split_once("__").map(|(stage, _)| stage.to_string()))
        .collect()
}

#[test]
fn stages_without_a_pid_attach_no_context_programs() {
    if !should_run("stages_without_a_pid_attach_no_context_programs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("retransmit.parquet");
    let args = ["-o", out.to_str().unwrap(), "--stage", "retransmit,drop"];
    record_during(&args, |rec| {
        assert_eq!(
            stages_attached(rec.pid()),
            BTreeSet::from(["drop", "retransmit"].map(String::from))
        );
    });
}

#[test]
fn stage_option_attaches_and_records_only_the_chosen_stages() {
    if !should_run("stage_option_attaches_and_records_only_the_chosen_stages") {
        return;
    }
    let port = 45_601u16;
    let (conns, bytes) = (2usize, 3u64 << 20);
    let pair = Pair::new().expect("network namespaces");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stages.parquet");
    let mut read = 0;
    let args = [
        "-o",
        out.to_str().unwrap(),
        "-p",
        &port.to_string(),
        "--stage",
        "rx_app,state",
    ];
    let log = record_during(&args, |rec| {
        // What the kernel has attached for it, before any traffic: the two stages, and the
        // softirq context programs, as both stages' events may carry a pid.
        assert_eq!(
            stages_attached(rec.pid()),
            BTreeSet::from(["context", "rx_app", "state"].map(String::from))
        );
        read = traffic::transfers(&pair, port, conns, bytes, 16 << 10)
            .join()
            .unwrap();
    });
    assert_eq!(read, conns as u64 * bytes);
    assert!(log.contains("recording 2 stages"), "{log}");

    let r = load(&out).expect("recording");
    let kinds: BTreeSet<&str> = r.rows.iter().map(|x| x.kind.as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["rx_app", "state"]),
        "{:?}",
        r.counts()
    );
    // Complete for the stages kept: every byte the receiver read, every connection's setup.
    r.assert_bytes("rx_app", read);
    let established = r
        .of("state")
        .filter(|x| x.state.as_deref() == Some("ESTABLISHED"))
        .count();
    assert_eq!(established, 2 * conns, "both ends of each connection");
    assert_eq!(r.meta.filters.stages, ["rx_app", "state"]);
    let seen: BTreeSet<&str> = r.meta.seen.keys().map(String::as_str).collect();
    assert_eq!(seen, BTreeSet::from(["rx_app", "state"]));
    for s in &r.meta.attach_plan {
        let kept = s.stage == "rx_app" || s.stage == "state";
        assert_eq!(s.chosen.is_some(), kept, "{s:?}");
        assert_eq!(s.attempts.is_empty(), !kept, "{s:?}");
    }
    // `info` says which stages were not requested, rather than unavailable.
    let info = analyzer::run(&["info", out.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success(), "{text}");
    assert!(text.contains("stages rx_app state"), "{text}");
    let tx_driver = text
        .lines()
        .find(|l| l.contains("tx_driver"))
        .expect("tx_driver in the plan");
    assert!(tx_driver.contains("not requested"), "{tx_driver}");
    assert!(!text.contains("UNAVAILABLE"), "{text}");
    // And the report says its other sections are empty for that reason.
    let report = analyzer::run(&["report", "-q", "--format", "json", out.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(report.status.success(), "{text}");
    let doc: serde_json::Value = serde_json::from_slice(&report.stdout).expect("JSON report");
    assert!(
        doc["notes"]
            .to_string()
            .contains("recorded only the stages rx_app, state (--stage)"),
        "{}",
        doc["notes"]
    );
}

#[test]
fn stage_option_with_pid_admits_flows_through_the_other_stages() {
    if !should_run("stage_option_with_pid_admits_flows_through_the_other_stages") {
        return;
    }
    // Retransmissions run in timers and softirqs and carry no pid: only the socket's writes,
    // seen by tx_sendmsg, admit them to a `--pid` recording. So with `--stage retransmit` the
    // other stages are attached anyway and their events dropped.
    let port = 45_611u16;
    let bytes = 12u64 << 20;
    let pair = Pair::new().expect("network namespaces");
    pair.shape_sender("400mbit", "64kb", "96kb").expect("tbf");
    pair.drop_at_receiver(port, 61).expect("nft");
    let me = std::process::id().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("retransmits.parquet");
    let mut transfer = None;
    let args = [
        "-o",
        out.to_str().unwrap(),
        "--pid",
        &me,
        "--stage",
        "retransmit",
    ];
    record_during(&args, |rec| {
        let attached = stages_attached(rec.pid());
        assert!(
            attached.contains("retransmit") && attached.contains("tx_sendmsg"),
            "{attached:?}"
        );
        transfer =
            Some(traffic::counted_transfer(&pair, port, bytes, 128 << 10).expect("transfer"));
    });
    let t = transfer.expect("the transfer ran");
    assert_eq!(t.read, bytes);

    let r = load(&out).expect("recording");
    let kinds: BTreeSet<&str> = r.rows.iter().map(|x| x.kind.as_str()).collect();
    assert_eq!(kinds, BTreeSet::from(["retransmit"]), "{:?}", r.counts());
    assert_eq!(r.meta.filters.stages, ["retransmit"]);
    // Retransmitted segments = TcpRetransSegs of both namespaces, as in the full recording.
    let delta = t.grew("RetransSegs");
    assert!(delta > 0, "the scenario induced no retransmission");
    let segs = r.assert_retransmitted(delta);
    eprintln!("retransmit: {segs} segments recorded, nstat {delta}");
    assert!(segs > 0, "no retransmitted segment recorded");
}

#[test]
fn stages_that_cannot_be_attached_end_the_recording_before_it_starts() {
    if !should_run("stages_that_cannot_be_attached_end_the_recording_before_it_starts") {
        return;
    }
    // rx_ip and rx_tcp have only fentry and kprobe programs: with both disabled, on any kernel,
    // nothing that was asked for can be recorded, though every other stage could be.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.parquet");
    let out = std::process::Command::new(tcptape_e2e::recorder::binary().unwrap())
        .args(["-o", path.to_str().unwrap(), "--stage", "rx_ip,rx_tcp"])
        .env("TCPTAPE_DISABLE_MECHANISMS", "fentry,kprobe")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("none of the stages given with --stage can be recorded"),
        "{err}"
    );
    assert!(
        err.contains("0 of the 2 requested stages can be recorded"),
        "{err}"
    );
    assert!(
        !path.exists(),
        "nothing is created when recording cannot start"
    );
}
