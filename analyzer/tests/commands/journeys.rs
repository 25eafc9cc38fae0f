//! Journeys on hand-made recordings: packet ids reused by the kernel, repeated stages, lost and
//! sampled events. Each case sets the exact times, so the expected figures are known.

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use tcptape_common::encode::{BatchEncoder, EncodeContext};
use tcptape_common::event::{valid, RawEvent, AF_INET};
use tcptape_common::synth::{drop_reason_names, synth_meta, Mix, SynthConfig};
use tcptape_common::{RecordingMeta, Stage};

const T0: u64 = 5_000_000_000;

fn ev(stage: Stage, t: u64, skb: u64) -> RawEvent {
    let mut e = RawEvent {
        ts_ns: T0 + t,
        kind: stage.code(),
        skb,
        family: AF_INET,
        sport: 40_000,
        dport: 5201,
        valid: valid::SKB | valid::FLOW,
        ..RawEvent::default()
    };
    e.saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
    e.daddr[..4].copy_from_slice(&[10, 0, 0, 2]);
    e
}

fn write(path: &Path, mut events: Vec<RawEvent>, meta: impl FnOnce(&mut RecordingMeta)) {
    events.sort_by_key(|e| e.ts_ns);
    let mut m = synth_meta(&SynthConfig::new(Mix::Bulk, 0, 0));
    m.start_ns = T0;
    m.end_ns = events.last().map_or(T0, |e| e.ts_ns);
    m.segment.last = true;
    meta(&mut m);
    let mut enc = BatchEncoder::new(EncodeContext::new(drop_reason_names()));
    tcptape_common::parquet_file::write_file(path, &[enc.encode(&events)], &m).unwrap();
}

fn report(path: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tcptape"))
        .args(["report", "--format", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn pairs(r: &Value) -> Vec<(String, String, u64, u64, u64)> {
    r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["from"].as_str().unwrap().to_string(),
                s["to"].as_str().unwrap().to_string(),
                s["count"].as_u64().unwrap(),
                s["p50_ns"].as_u64().unwrap(),
                s["max_ns"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn p(from: &str, to: &str, count: u64, p50: u64, max: u64) -> (String, String, u64, u64, u64) {
    (from.into(), to.into(), count, p50, max)
}

#[test]
fn a_reused_packet_id_starts_a_new_journey() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reuse.parquet");
    const X: u64 = 0xffff_8880_0000_1000;
    write(
        &path,
        vec![
            // First packet on X.
            ev(Stage::RxDriver, 0, X),
            ev(Stage::RxNetif, 1_000, X),
            ev(Stage::RxApp, 5_000, X),
            // The kernel frees X and the next packet gets the same address: order restarts.
            ev(Stage::RxDriver, 6_000, X),
            ev(Stage::RxNetif, 8_000, X),
            ev(Stage::RxApp, 20_000, X),
        ],
        |_| {},
    );
    let r = report(&path);
    assert_eq!(
        pairs(&r),
        vec![
            p("rx_driver", "rx_netif", 2, 1_000, 2_000),
            p("rx_netif", "rx_app", 2, 4_000, 12_000),
        ]
    );
    assert_eq!(r["journeys"]["total"], 2);
    assert_eq!(r["journeys"]["complete"], 2);
}

#[test]
fn a_freed_packet_or_a_long_gap_ends_a_journey() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gap.parquet");
    const Y: u64 = 0xffff_8880_0000_2000;
    const Z: u64 = 0xffff_8880_0000_3000;
    write(
        &path,
        vec![
            // Y leaves through a NIC and is freed; its address comes back as a received packet.
            ev(Stage::TxDriver, 0, Y),
            ev(Stage::TxDone, 700, Y),
            ev(Stage::RxDriver, 900, Y),
            ev(Stage::RxNetif, 1_900, Y),
            // Z: the stage order goes forward, but 3 s apart: two packets.
            ev(Stage::TxDriver, 10_000, Z),
            ev(Stage::TxDone, 10_500, Z),
            ev(Stage::RxDriver, 3_000_010_000, Z),
            ev(Stage::RxNetif, 3_000_011_000, Z),
        ],
        |_| {},
    );
    let r = report(&path);
    assert_eq!(
        pairs(&r),
        vec![
            p("tx_driver", "tx_done", 2, 500, 700),
            p("rx_driver", "rx_netif", 2, 1_000, 1_000),
        ]
    );
    assert_eq!(r["journeys"]["total"], 4);
}

#[test]
fn a_stage_seen_twice_keeps_its_first_time_and_cut_journeys_are_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repeat.parquet");
    const A: u64 = 0xffff_8880_0000_4000;
    const B: u64 = 0xffff_8880_0000_5000;
    write(
        &path,
        vec![
            ev(Stage::RxDriver, 0, A),
            ev(Stage::RxTcpEst, 2_000, A),
            // Two partial reads of the same packet.
            ev(Stage::RxApp, 9_000, A),
            ev(Stage::RxApp, 15_000, A),
            // B was already past rx_driver when the recording started.
            ev(Stage::RxTcpEst, 20_000, B),
            ev(Stage::RxApp, 21_000, B),
        ],
        |_| {},
    );
    let r = report(&path);
    assert_eq!(
        pairs(&r),
        vec![
            p("rx_driver", "rx_tcp_est", 1, 2_000, 2_000),
            p("rx_tcp_est", "rx_app", 2, 1_000, 7_000),
        ]
    );
    let j = &r["journeys"];
    assert_eq!(
        (j["total"].as_u64(), j["complete"].as_u64()),
        (Some(2), Some(1))
    );
    // End to end counts only the complete journey.
    let e2e = &r["end_to_end"][0];
    assert_eq!(
        (e2e["count"].as_u64(), e2e["p50_ns"].as_u64()),
        (Some(1), Some(9_000))
    );
}

#[test]
fn a_packet_without_data_is_complete_where_tcp_takes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ack.parquet");
    let with_len = |mut e: RawEvent, len: u32| {
        e.len = len;
        e.valid |= valid::LEN;
        e
    };
    const DATA: u64 = 0xffff_8880_0000_7000;
    const ACK: u64 = 0xffff_8880_0000_8000;
    const CUT: u64 = 0xffff_8880_0000_9000;
    write(
        &path,
        vec![
            with_len(ev(Stage::RxDriver, 0, DATA), 1448),
            ev(Stage::RxTcpEst, 1_000, DATA),
            ev(Stage::RxApp, 5_000, DATA),
            // A pure ACK: TCP takes it, nothing reads it.
            with_len(ev(Stage::RxDriver, 10_000, ACK), 0),
            ev(Stage::RxTcpEst, 11_000, ACK),
            // Data whose read the recording did not see.
            with_len(ev(Stage::RxDriver, 20_000, CUT), 1448),
            ev(Stage::RxTcpEst, 21_000, CUT),
        ],
        |_| {},
    );
    let r = report(&path);
    let j = &r["journeys"];
    assert_eq!(
        (j["total"].as_u64(), j["complete"].as_u64()),
        (Some(3), Some(2)),
        "{j}"
    );
    let e2e: Vec<_> = r["end_to_end"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_string(),
                e["to"].as_str().unwrap().to_string(),
                e["count"].as_u64().unwrap(),
                e["p50_ns"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        e2e,
        vec![
            ("rx_driver".into(), "rx_tcp_est".into(), 1, 1_000),
            ("rx_driver".into(), "rx_app".into(), 1, 5_000),
        ]
    );
}

#[test]
fn lost_and_sampled_events_are_stated_and_scaled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lost.parquet");
    let mut rt = ev(Stage::Retransmit, 100, 0xffff_8880_0000_6000);
    rt.valid |= valid::SEGS | valid::ERR | valid::CA_STATE;
    rt.segs = 3;
    rt.ca_state = 4;
    let mut failed = rt;
    failed.ts_ns += 10;
    failed.err = 1;
    failed.segs = 2;
    write(&path, vec![rt, failed], |m| {
        m.lost.ring_per_cpu = vec![3, 4];
        m.sampling.one_in = 4;
    });
    let r = report(&path);
    assert_eq!(r["lost_events"], 7);
    assert_eq!(r["sampling_one_in"], 4);
    let notes = r["notes"].to_string();
    assert!(notes.contains("7 events were lost"), "{notes}");
    assert!(notes.contains("1 in 4"), "{notes}");
    let rt = &r["retransmits"];
    assert_eq!(rt["segments"], 3);
    assert_eq!(rt["estimated_segments"], 12);
    assert_eq!(rt["failed_attempts"], 1);
    assert_eq!(rt["failed_segments"], 2);
    assert_eq!(rt["kernel_counted_segments"], 5);
    assert_eq!(rt["by_ca_state"][0]["ca_state"], "loss");
    // The table states both at the top.
    let out = Command::new(env!("CARGO_BIN_EXE_tcptape"))
        .args(["report"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let head: Vec<&str> = text.lines().take(8).collect();
    assert!(
        head.iter().any(|l| l.starts_with("lost events  7")),
        "{text}"
    );
    assert!(head.iter().any(|l| l.contains("1 in 4 flows")), "{text}");
}

/// A socket's congestion snapshot at `t`: the event `stage` with cwnd and smoothed RTT set.
fn snapshot(stage: Stage, t: u64, skb: u64, cwnd: u32, srtt_us: u32) -> RawEvent {
    let mut e = ev(stage, t, skb);
    e.sock = 0xc0;
    e.cwnd = cwnd;
    e.srtt_us = srtt_us;
    e.valid |= valid::SOCK | valid::TCP | valid::CA_STATE;
    e
}

#[test]
fn congestion_snapshots_come_from_rx_tcp_est_as_from_tcp_sample() {
    let dir = tempfile::tempdir().unwrap();
    let figures = |old: bool| {
        // One packet's journey rx_netif → rx_tcp_est at each of three times; recordings made
        // before the rx_tcp_est events carried the snapshot have it as a separate tcp_sample.
        let mut events = Vec::new();
        for (i, (cwnd, srtt)) in [(10, 100), (20, 200), (30, 400)].into_iter().enumerate() {
            let (t, skb) = (i as u64 * 1_000_000, 0x100 + i as u64);
            events.push(ev(Stage::RxNetif, t, skb));
            if old {
                events.push(ev(Stage::RxTcpEst, t + 1_000, skb));
                events.push(snapshot(Stage::TcpSample, t + 1_000, skb, cwnd, srtt));
            } else {
                events.push(snapshot(Stage::RxTcpEst, t + 1_000, skb, cwnd, srtt));
            }
        }
        let rows = events.len();
        let path = dir
            .path()
            .join(if old { "old.parquet" } else { "new.parquet" });
        write(&path, events, |_| {});
        let r = report(&path);
        assert_eq!(r["events"], rows, "every row counted once");
        let flows = r["rtt_cwnd"].as_array().unwrap().clone();
        assert_eq!(flows.len(), 1, "{flows:?}");
        let f = &flows[0];
        let got = [
            "samples",
            "rtt_min_us",
            "rtt_p50_us",
            "rtt_max_us",
            "cwnd_min",
            "cwnd_max",
        ]
        .map(|k| f[k].as_u64().unwrap());
        assert_eq!(got, [3, 100, 200, 400, 10, 30], "{f}");
        (f.clone(), r["stages"].clone())
    };
    let (new, new_stages) = figures(false);
    let (old, old_stages) = figures(true);
    assert_eq!(new, old);
    // The hops are the same either way: rx_netif → rx_tcp_est, 1 µs, three times.
    assert_eq!(new_stages, old_stages);
    assert_eq!(new_stages[0]["count"], 3, "{new_stages}");
}
