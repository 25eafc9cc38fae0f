//! A real capture of a lossy bulk transfer between two network namespaces: veth, tbf on the
//! sender, nft drops on the receiver. Checks that every stage this path can produce is
//! recorded, that retransmissions match the kernel's own counter and bpftrace's count of attempts,
//! that the bytes the application
//! read match the recording, that journeys cross from the sender's TX path to the receiver's RX
//! path, and that SIGTERM ends the recording cleanly with the reason in the metadata.

use std::collections::HashSet;
use std::time::Duration;
use tcptape_e2e::bpftrace::Counter;
use tcptape_e2e::netns::Pair;
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

    // bpftrace counts every retransmission attempt of the transfer at the tracepoint, beside the
    // recorder: a count of events, where the kernel's counters below count segments.
    let counter = Counter::start(&format!(
        "tracepoint:tcp:tcp_retransmit_skb /args->sport == {PORT} || args->dport == {PORT}/ \
         {{ @n = count(); }}"
    ))
    .expect("bpftrace counts");

    // Both ends retransmit, and the recording has both: the counters of both namespaces are
    // summed, once both sockets are done sending, and while the recorder still runs.
    let t = traffic::counted_transfer(&pair, PORT, BYTES, 128 << 10).expect("transfer");
    let attempts = counter.stop().expect("bpftrace count");
    let read = t.read;
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
    // that sleeps for memory and resumes on another CPU is recorded again with what it had left),
    // unless events were lost.
    let sent: u64 = r
        .of("tx_sendmsg")
        .map(|x| u64::from(x.len.unwrap_or(0)))
        .sum();
    eprintln!(
        "tx_sendmsg: {} events, {sent} bytes",
        r.of("tx_sendmsg").count()
    );
    if r.stage_lost("tx_sendmsg") == 0 {
        assert!(sent >= BYTES, "tx_sendmsg covers {sent} of {BYTES} bytes");
    } else {
        assert!(sent > 0, "no tx_sendmsg bytes");
    }

    // Bytes copied to the application = bytes the receiver read.
    r.assert_bytes("rx_app", read);

    // Retransmitted segments = the TcpRetransSegs delta of both namespaces (attempts that exit
    // early, with a negative errno such as -EBUSY, are not counted, and not summed here either).
    let delta = t.grew("RetransSegs");
    assert!(delta > 0, "the scenario induced no retransmission");
    let fails = t.grew("TCPRetransFail");
    let failed_segs = r.retransmitted_segments(|e| e > 0);
    let unreported = r.unreported_retransmit_segments(Pair::MSS);
    eprintln!(
        "retransmit: {} events (seen {:?}), {failed_segs} failed segments, {unreported} \
         segments of unreported attempts; nstat {delta} ({fails} failed)",
        r.of("retransmit").count(),
        r.meta.seen.get("retransmit")
    );
    let segs = r.assert_retransmitted(delta);

    // Drops carry a reason from the host's BTF.
    assert!(
        r.of("drop")
            .any(|x| x.drop_reason.as_deref() == Some("NETFILTER_DROP")),
        "no netfilter drop recorded"
    );

    // Every attempt bpftrace saw, the programs saw (their own count, kept in the metadata
    // whether or not the ring had room); and without loss, each is an event of the recording:
    // none missing in the middle, which the counters' deltas could not tell.
    assert_eq!(
        r.meta.seen.get("retransmit").copied(),
        Some(attempts),
        "retransmit attempts the programs saw vs bpftrace's count of tcp_retransmit_skb"
    );
    if r.stage_lost("retransmit") == 0 {
        assert_eq!(
            r.of("retransmit").count() as u64,
            attempts,
            "retransmit events vs bpftrace's count of tcp_retransmit_skb"
        );
        // Failed attempts = TCPRetransFail, but for the segments of unreported attempts: the next
        // event carries them whether it failed or not, and those after a socket's last event are
        // not recorded at all.
        let slack = unreported + (delta - segs);
        assert!(
            failed_segs.abs_diff(fails) <= slack,
            "failed retransmissions {failed_segs} vs TCPRetransFail {fails} (slack {slack})"
        );
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
    // The sender queues data on its veth end, the receiver its ACKs on its own: no other
    // interface.
    let ifindex_b = Pair::ifindex(&pair.b, "vb").unwrap();
    let tx_if: HashSet<u32> = r.of("tx_dev_queue").filter_map(|x| x.ifindex).collect();
    assert_eq!(tx_if, HashSet::from([ifindex_a, ifindex_b]));

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
