//! Retransmit events on sockets whose memory an earlier socket used: the kernel allocates a new
//! socket where a freed one was, and the recorder keys each socket's retransmit count by that
//! address. A connection whose only retransmission was its SYN is closed, then a bulk transfer
//! with losses is opened, round after round, so that the transfer's socket often takes the
//! closed one's place. No event may then report fewer segments than its own skb holds (the old
//! socket's count subtracted), and each connection's events add up to no more than its own
//! `tcpi_total_retrans`.

use std::collections::HashMap;
use std::time::Duration;
use tcptape_e2e::netns::{run_in, spawn_in, Pair};
use tcptape_e2e::recorder::record_during;
use tcptape_e2e::recording::{load, skb_segments};
use tcptape_e2e::{should_run, traffic};

const SYN_PORT: u16 = 45_131;
const BULK_PORT: u16 = 45_132;
const ROUNDS: usize = 8;
const BYTES: u64 = 4 << 20;

#[test]
fn a_reused_socket_does_not_inherit_the_previous_sockets_retransmit_count() {
    if !should_run("a_reused_socket_does_not_inherit_the_previous_sockets_retransmit_count") {
        return;
    }
    let pair = Pair::new().expect("network namespaces");
    pair.drop_first_syns(SYN_PORT).expect("nft");
    // A short tbf queue drops whole GSO skbs: their retransmissions have several segments.
    pair.shape_sender("400mbit", "64kb", "96kb").expect("tbf");
    // Without tail loss probes (one segment each), a transfer's first retransmission is a lost
    // skb resent whole, with several segments.
    run_in(&pair.a, "sysctl", &["-qw", "net.ipv4.tcp_early_retrans=0"]).expect("sysctl");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.parquet");
    let (syn_port, bulk_port) = (SYN_PORT.to_string(), BULK_PORT.to_string());
    let mut totals: HashMap<u16, u32> = HashMap::new();
    record_during(
        &[
            "-o",
            out.to_str().unwrap(),
            "--port",
            &syn_port,
            "--port",
            &bulk_port,
            "--stage",
            "retransmit",
        ],
        |_| {
            let syn_listener = traffic::listen_in(&pair.b, &pair.addr_b, SYN_PORT).unwrap();
            let bulk_listener = traffic::listen_in(&pair.b, &pair.addr_b, BULK_PORT).unwrap();
            let closer = std::thread::spawn(move || {
                pin_to_cpu0();
                for _ in 0..ROUNDS {
                    drop(syn_listener.accept().expect("accept"));
                }
            });
            let receiver = std::thread::spawn(move || {
                pin_to_cpu0();
                traffic::receive(bulk_listener, ROUNDS, 64 << 10, Duration::ZERO)
            });
            let addr = pair.addr_b.clone();
            totals = spawn_in(&pair.a, move || {
                pin_to_cpu0();
                let mut totals = HashMap::new();
                for _ in 0..ROUNDS {
                    let s = traffic::connect(&addr, SYN_PORT)?;
                    let port = s.local_addr().map_err(|e| e.to_string())?.port();
                    totals.insert(port, traffic::total_retrans(&s)?);
                    drop(s);
                    // Let the closed socket be freed before the next one is allocated.
                    std::thread::sleep(Duration::from_millis(50));
                    let mut s = traffic::connect(&addr, BULK_PORT)?;
                    let port = s.local_addr().map_err(|e| e.to_string())?.port();
                    traffic::write_and_close(&mut s, BYTES, 64 << 10)?;
                    totals.insert(port, traffic::total_retrans(&s)?);
                }
                Ok::<_, String>(totals)
            })
            .join()
            .expect("the client thread")
            .expect("the client");
            closer.join().expect("the closing server");
            assert_eq!(receiver.join().unwrap().unwrap(), BYTES * ROUNDS as u64);
        },
    );

    let r = load(&out).expect("the recording opens");
    assert_eq!(r.stage_lost("retransmit"), 0, "{:?}", r.meta.lost);
    let mut recorded: HashMap<u16, u64> = HashMap::new();
    for x in r.of("retransmit").filter(|x| x.err.unwrap_or(0) >= 0) {
        let segs = x.segs.unwrap_or(0);
        assert!(
            u32::from(segs) >= skb_segments(x, Pair::MSS),
            "a retransmission of {} bytes reported as {segs} segments: {x:?}",
            x.len.unwrap_or(0)
        );
        if let Some(port) = x.sport.filter(|p| totals.contains_key(p)) {
            *recorded.entry(port).or_default() += u64::from(segs);
        }
    }
    let syn_only = totals.values().filter(|&&t| t == 1).count();
    assert!(
        syn_only >= ROUNDS,
        "the SYN connections retransmitted once each: {totals:?}"
    );
    let bulk: u64 = totals
        .values()
        .filter(|&&t| t > 1)
        .map(|&t| u64::from(t))
        .sum();
    assert!(bulk > 0, "the transfers retransmitted nothing: {totals:?}");
    for (port, total) in &totals {
        let got = recorded.get(port).copied().unwrap_or(0);
        assert!(
            got <= u64::from(*total) && (got > 0) == (*total > 0),
            "connection from port {port}: {got} segments recorded, tcpi_total_retrans {total}"
        );
    }
    eprintln!("per connection (recorded, tcpi_total_retrans): {:?}", {
        let mut v: Vec<_> = totals
            .iter()
            .map(|(p, t)| (*p, recorded.get(p).copied().unwrap_or(0), *t))
            .collect();
        v.sort();
        v
    });
}

/// Runs the calling thread on CPU 0 only: the kernel hands a freed socket's memory to the next
/// allocation on the same CPU, and every packet of these connections is processed there.
fn pin_to_cpu0() {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the call only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
