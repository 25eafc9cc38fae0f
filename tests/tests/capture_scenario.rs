//! A real capture of a lossy bulk transfer between two network namespaces: veth, tbf on the
//! sender, nft drops on the receiver. Checks that every stage this path can produce is
//! recorded, that retransmissions match the kernel's own counter, that the bytes the application
//! read match the recording, that journeys cross from the sender's TX path to the receiver's RX
//! path, and that SIGTERM ends the recording cleanly with the reason in the metadata.

use std::collections::HashSet;
use std::time::Duration;
use tcptape_e2e::netns::{spawn_in, tcp_counters_of, Pair};
use tcptape_e2e::recorder::RecorderProcess;
use tcptape_e2e::recording::load;
use tcptape_e2e::{should_run, traffic};

const PORT: u16 = 45_101;
const BYTES: u64 = 24 << 20;

/// Stages a TCP transfer over veth with tbf produces. `tx_done` needs a driver that completes
/// transmissions (veth hands the skb to the peer instead), `buffer` needs memory pressure: both
/// are covered by their own tests or not reachable on veth.
const EXPECTED: &[&str] = &[
    "rx_driver",
    "rx_netif",
    "rx_tcp_est",
    "rx_app",
    "tx_sendmsg",
    "tx_dev_queue",
    "tx_qdisc_enq",
    "tx_qdisc_deq",
    "tx_driver",
    "retransmit",
    "cong_state",
    "state",
    "drop",
];

#[test]
fn lossy_bulk_transfer_is_recorded_completely() {
    if !should_run("lossy_bulk_transfer_is_recorded_completely") {
        return;
    }
    let pair = Pair::new().expect("network namespaces");
    pair.shape_sender("400mbit", "64kb", "96kb").expect("tbf");
    pair.drop_at_receiver(PORT, 97).expect("nft");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec");
    let rec = RecorderProcess::start(
        &[
            "-o",
            out.to_str().unwrap(),
            "--port",
            &PORT.to_string(),
            "--segment-secs",
            "2",
        ],
        &[],
    )
    .expect("recorder starts");

    let listener = {
        let addr = pair.addr_b.clone();
        spawn_in(&pair.b, move || traffic::listen(&addr, PORT))
            .join()
            .unwrap()
            .expect("listen")
    };
    // Both ends retransmit (the receiver its FIN when the sender's ACK of it is dropped), and
    // the recording has both: the counters of both namespaces are summed, once both sockets are
    // done sending, and while the recorder still runs.
    let before = tcp_counters_of(&pair.a).expect("nstat");
    let before_b = tcp_counters_of(&pair.b).expect("nstat");
    let receiver = {
        // The listener socket already lives in the receiver's namespace.
        std::thread::spawn(move || traffic::receive(listener, 1, 64 << 10, Duration::ZERO))
    };
    let addr_b = pair.addr_b.clone();
    spawn_in(&pair.a, move || {
        traffic::send(&addr_b, PORT, BYTES, 128 << 10)
    })
    .join()
    .unwrap()
    .expect("transfer");
    let read = receiver.join().unwrap().expect("receive");
    pair.wait_until_quiet(PORT, Duration::from_secs(20))
        .expect("the connection closes");
    let after = tcp_counters_of(&pair.a).expect("nstat");
    let after_b = tcp_counters_of(&pair.b).expect("nstat");
    assert_eq!(read, BYTES, "the receiver read everything");
    // Let the last events reach the ring, then stop the way an operator would.
    std::thread::sleep(Duration::from_millis(300));
    let (code, log) = rec.stop(libc::SIGTERM).expect("recorder stops");
    assert_eq!(code, 0, "recorder exit code; stderr:\n{log}");

    let r = load(&out).expect("the recording opens");
    assert!(r.closed, "the recording was finished cleanly");
    assert_eq!(r.meta.segment.stop_reason.as_deref(), Some("signal"));
    assert!(r.meta.segment.last);
    let counts = r.counts();
    eprintln!("events per stage: {counts:?}; lost: {:?}", r.meta.lost);

    // Every stage this path produces is there.
    for stage in EXPECTED {
        assert!(
            counts.get(*stage).copied().unwrap_or(0) > 0,
            "no {stage} events: {counts:?}"
        );
    }
    // Every rx_tcp_est event carries its socket's congestion snapshot, and no tcp_sample event
    // repeats it.
    assert_eq!(counts.get("tcp_sample"), None, "{counts:?}");
    for x in r.of("rx_tcp_est") {
        assert!(
            x.cwnd.is_some_and(|c| c > 0) && x.srtt_us.is_some() && x.ca_state.is_some(),
            "rx_tcp_est without its snapshot: {x:?}"
        );
    }
    // Only the test's flow, only TCP.
    for row in &r.rows {
        assert!(
            row.sport == Some(PORT) || row.dport == Some(PORT),
            "foreign row {row:?}"
        );
    }

    // One tx_sendmsg per write call, with the call's size: at least every byte written (a call
    // that sleeps for memory and resumes on another CPU is recorded again with what it had left).
    let sent: u64 = r
        .of("tx_sendmsg")
        .map(|x| u64::from(x.len.unwrap_or(0)))
        .sum();
    eprintln!(
        "tx_sendmsg: {} events, {sent} bytes",
        r.of("tx_sendmsg").count()
    );
    assert!(sent >= BYTES, "tx_sendmsg covers {sent} of {BYTES} bytes");

    // Bytes copied to the application = bytes the receiver read.
    r.assert_bytes("rx_app", read);

    // Retransmitted segments = the TcpRetransSegs delta of both namespaces. The kernel counts an
    // attempt once it gets to transmit (err >= 0, including qdisc drops, err 1); attempts that
    // exit early (negative errno, e.g. -EBUSY) are not counted, and not summed here either.
    let grew = |name: &str| {
        let n = |m: &std::collections::HashMap<String, u64>| m.get(name).copied().unwrap_or(0);
        n(&after) - n(&before) + n(&after_b) - n(&before_b)
    };
    let delta = grew("RetransSegs");
    let segs: u64 = r
        .of("retransmit")
        .filter(|x| x.err.unwrap_or(0) >= 0)
        .map(|x| u64::from(x.segs.unwrap_or(0)))
        .sum();
    assert!(delta > 0, "the scenario induced no retransmission");
    let fails = grew("TCPRetransFail");
    let failed_segs: u64 = r
        .of("retransmit")
        .filter(|x| x.err.unwrap_or(0) > 0)
        .map(|x| u64::from(x.segs.unwrap_or(0)))
        .sum();
    eprintln!(
        "retransmit: {segs} segments ({failed_segs} failed) in {} events (seen {:?}); nstat {delta} ({fails} failed)",
        r.of("retransmit").count(),
        r.meta.seen.get("retransmit")
    );

    // Drops carry a reason from the host's BTF.
    assert!(
        r.of("drop")
            .any(|x| x.drop_reason.as_deref() == Some("NETFILTER_DROP")),
        "no netfilter drop recorded"
    );

    // Exact when no retransmit event can have been lost: no ring or writer loss, and no skipped
    // run of the retransmit program (the kernel reports those; they are rare).
    let retransmit_lost = r.stage_lost("retransmit");
    if retransmit_lost == 0 {
        assert_eq!(segs, delta, "retransmitted segments vs TcpRetransSegs");
        // Failed attempts: `segs` is the counter growth since the socket's previous event, which
        // can move a few segments between a success and the failure that follows it.
        let diff = failed_segs.abs_diff(fails);
        assert!(
            diff * 100 <= fails.max(100),
            "failed retransmissions {failed_segs} vs TCPRetransFail {fails}"
        );
    } else {
        eprintln!("{retransmit_lost} retransmit events may be lost: totals compared as a bound");
        assert!(segs <= delta);
    }

    // Journeys: a sender skb at tx_dev_queue continues at the receiver's rx_netif.
    let ifindex_a = Pair::ifindex(&pair.a, "va").unwrap();
    let journeys = r.journeys();
    let crossing = journeys
        .values()
        .filter(|stages| stages.contains("tx_dev_queue") && stages.contains("rx_netif"))
        .count();
    assert!(
        crossing > 100,
        "only {crossing} journeys cross the veth pair"
    );
    let tx_if: HashSet<u32> = r.of("tx_dev_queue").filter_map(|x| x.ifindex).collect();
    assert!(tx_if.contains(&ifindex_a) || tx_if.len() <= 2);

    // The sample of the metadata: plan, filters, environment, counters.
    let plan = &r.meta.attach_plan;
    assert_eq!(plan.len(), 18);
    let est = plan.iter().find(|s| s.stage == "rx_tcp_est").unwrap();
    assert!(est.chosen.is_some());
    assert_eq!(r.meta.filters.ports, vec![PORT]);
    assert!(!r.meta.environment.congestion_control.is_empty());
    assert!(r.meta.seen.get("tx_dev_queue").copied().unwrap_or(0) >= counts["tx_dev_queue"] as u64);
    assert!(r.meta.start_ns > 0 && r.meta.end_ns > r.meta.start_ns);
}
