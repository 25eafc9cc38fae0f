//! Kernel-side filters and flow sampling, with real traffic: a port filter keeps other traffic
//! out, and sampling keeps or drops whole flows, never parts of a journey.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;
use tcptape_e2e::netns::Pair;
use tcptape_e2e::recorder::RecorderProcess;
use tcptape_e2e::recording::{load, port_pair};
use tcptape_e2e::{should_run, traffic};

#[test]
fn port_filter_keeps_other_traffic_out() {
    if !should_run("port_filter_keeps_other_traffic_out") {
        return;
    }
    let (kept, other) = (45_201u16, 45_202u16);
    let pair = Pair::new().expect("network namespaces");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("filtered.parquet");
    let rec = RecorderProcess::start(&["-o", out.to_str().unwrap(), "-p", &kept.to_string()], &[])
        .expect("recorder starts");
    let a = traffic::transfers(&pair, kept, 2, 2 << 20, 16 << 10);
    let b = traffic::transfers(&pair, other, 2, 2 << 20, 16 << 10);
    a.join().unwrap();
    b.join().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (code, log) = rec.stop(libc::SIGINT).expect("stops");
    assert_eq!(code, 0, "{log}");
    let r = load(&out).expect("recording");
    assert!(r.rows.len() > 100, "too few events: {}", r.rows.len());
    for row in &r.rows {
        assert!(
            row.sport == Some(kept) || row.dport == Some(kept),
            "an event of another flow passed the filter: {row:?}"
        );
    }
    assert!(r.of("rx_app").count() > 0 && r.of("tx_dev_queue").count() > 0);
    assert_eq!(r.meta.filters.ports, vec![kept]);
}

#[test]
fn sampling_keeps_whole_flows_and_exact_counters() {
    if !should_run("sampling_keeps_whole_flows_and_exact_counters") {
        return;
    }
    let port = 45_211u16;
    let conns = 48;
    let pair = Pair::new().expect("network namespaces");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sampled.parquet");
    let rec = RecorderProcess::start(
        &[
            "-o",
            out.to_str().unwrap(),
            "-p",
            &port.to_string(),
            "--sample",
            "4",
        ],
        &[],
    )
    .expect("recorder starts");
    traffic::transfers(&pair, port, conns, 256 << 10, 16 << 10)
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (code, log) = rec.stop(libc::SIGTERM).expect("stops");
    assert_eq!(code, 0, "{log}");
    let r = load(&out).expect("recording");
    assert_eq!(r.meta.sampling.one_in, 4);

    // Some flows are kept, not all; each kept flow has its whole life.
    let mut stages_of: HashMap<(u16, u16), BTreeSet<String>> = HashMap::new();
    for row in &r.rows {
        let flow = port_pair(row).expect("every event has ports");
        if flow.0 == 0 {
            continue; // the listening socket's state changes: not a connection
        }
        stages_of.entry(flow).or_default().insert(row.kind.clone());
    }
    let kept = stages_of.len();
    assert!(
        kept > 0 && kept < conns,
        "{kept} of {conns} flows kept with --sample 4"
    );
    for (flow, stages) in &stages_of {
        for needed in [
            "state",
            "tx_sendmsg",
            "tx_dev_queue",
            "rx_netif",
            "rx_tcp_est",
            "rx_app",
        ] {
            assert!(
                stages.contains(needed),
                "flow {flow:?} lacks {needed}: {stages:?}"
            );
        }
    }
    // Journeys are whole: every sender skb seen at tx_dev_queue of a kept flow reaches rx_netif.
    let journeys = r.journeys();
    let tx: HashSet<u64> = r.of("tx_dev_queue").filter_map(|x| x.skb).collect();
    let crossed = tx
        .iter()
        .filter(|skb| journeys[*skb].contains("rx_netif"))
        .count();
    assert_eq!(crossed, tx.len(), "a sampled journey lost its receive side");
    // Counters cover every flow: seen ≥ about 2x what was kept (expected 4x).
    let seen = r.meta.seen["rx_app"];
    let recorded = r.of("rx_app").count() as u64;
    assert!(seen >= 2 * recorded, "seen {seen} vs recorded {recorded}");
}

#[test]
fn classic_tracepoints_record_when_btf_tracepoints_are_unavailable() {
    if !should_run("classic_tracepoints_record_when_btf_tracepoints_are_unavailable") {
        return;
    }
    let port = 45_221u16;
    let pair = Pair::new().expect("network namespaces");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("classic.parquet");
    let rec = RecorderProcess::start(
        &["-o", out.to_str().unwrap(), "-p", &port.to_string()],
        &[("TCPTAPE_DISABLE_MECHANISMS", "tp_btf")],
    )
    .expect("recorder starts");
    traffic::transfers(&pair, port, 1, 1 << 20, 16 << 10)
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (code, log) = rec.stop(libc::SIGTERM).expect("stops");
    assert_eq!(code, 0, "{log}");
    let r = load(&out).expect("recording");
    let plan: HashMap<&str, Option<&str>> = r
        .meta
        .attach_plan
        .iter()
        .map(|s| (s.stage.as_str(), s.chosen.as_deref()))
        .collect();
    assert_eq!(plan["rx_netif"], Some("tracepoint"));
    let tp_btf_attempt = r.meta.attach_plan[1].attempts[0].clone();
    assert_eq!(tp_btf_attempt.mechanism, "tp_btf");
    assert!(tp_btf_attempt
        .error
        .unwrap()
        .contains("TCPTAPE_DISABLE_MECHANISMS"));
    let counts = r.counts();
    for stage in [
        "rx_netif",
        "rx_tcp_est",
        "rx_app",
        "tx_dev_queue",
        "tx_driver",
        "state",
    ] {
        assert!(
            counts.get(stage).copied().unwrap_or(0) > 0,
            "no {stage}: {counts:?}"
        );
    }
    r.assert_bytes("rx_app", 1 << 20);
}
