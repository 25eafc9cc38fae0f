//! IPv6 end to end: flows parsed from IPv6 headers and IPv6 sockets, and an IPv6 `--addr` range
//! that keeps IPv4 traffic of the same port out.

use std::time::Duration;
use tcptape_e2e::netns::{spawn_in, Pair};
use tcptape_e2e::recorder::record_to_temp;
use tcptape_e2e::{should_run, traffic};

/// One connection to a receiver listening on `listen_ns_addr` in B, made by `send` in A; returns
/// the bytes the receiver read.
fn transfer_by(
    pair: &Pair,
    listen_ns_addr: &str,
    port: u16,
    send: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> u64 {
    let l = traffic::listen_in(&pair.b, listen_ns_addr, port).expect("listen");
    let rx = std::thread::spawn(move || traffic::receive(l, 1, 16 << 10, Duration::ZERO));
    spawn_in(&pair.a, send).join().unwrap().expect("send");
    rx.join().unwrap().expect("receive")
}

fn transfer(pair: &Pair, listen_ns_addr: &str, to: &str, port: u16, bytes: u64) -> u64 {
    let to = to.to_string();
    transfer_by(pair, listen_ns_addr, port, move || {
        traffic::send(&to, port, bytes, 16 << 10)
    })
}

#[test]
fn ipv6_flows_are_recorded_and_filtered_by_range() {
    if !should_run("ipv6_flows_are_recorded_and_filtered_by_range") {
        return;
    }
    let port = 45_401u16;
    let pair = Pair::new().expect("network namespaces");
    let (a6, b6) = pair.add_ipv6().expect("ipv6 addresses");
    std::thread::sleep(Duration::from_millis(300)); // link-local routes settle
    let range = format!("fd00:200:{:x}::/64", pair.subnet);
    let r = record_to_temp(None, &["-p", &port.to_string(), "--addr", &range], || {
        let read6 = transfer(&pair, &b6, &b6, port, 1 << 20);
        let read4 = transfer(&pair, &pair.addr_b, &pair.addr_b, port, 1 << 20);
        assert_eq!((read6, read4), (1 << 20, 1 << 20));
    });
    let counts = r.counts();
    for stage in [
        "rx_netif",
        "rx_tcp_est",
        "rx_app",
        "tx_sendmsg",
        "tx_dev_queue",
        "state",
    ] {
        assert!(
            counts.get(stage).copied().unwrap_or(0) > 0,
            "no {stage}: {counts:?}"
        );
    }
    for row in &r.rows {
        assert_eq!(
            row.family,
            Some(6),
            "an IPv4 event passed the IPv6 range: {row:?}"
        );
        let ends = [row.saddr.as_deref(), row.daddr.as_deref()];
        assert!(
            ends.contains(&Some(a6.as_str())) || ends.contains(&Some(b6.as_str())),
            "unexpected addresses {ends:?}"
        );
    }
    // Header parsing and sockets agree: packets to the receiver carry its address and port.
    let to_b = r
        .of("rx_netif")
        .filter(|x| x.daddr.as_deref() == Some(b6.as_str()) && x.dport == Some(port))
        .count();
    assert!(to_b > 10, "{to_b} IPv6 packets to the receiver");
    r.assert_bytes("rx_app", 1 << 20);
    assert_eq!(r.meta.filters.addrs, vec![range]);
}

#[test]
fn a_dual_stack_servers_ipv4_connection_is_one_ipv4_flow() {
    if !should_run("a_dual_stack_servers_ipv4_connection_is_one_ipv4_flow") {
        return;
    }
    // A server listening on :: takes IPv4 clients on IPv6 sockets (addresses ::ffff:a.b.c.d),
    // while the packets are IPv4. The socket's events must give the packets' flow: an IPv4
    // range then keeps the server's own events, and the two ends are one flow.
    let port = 45_402u16;
    let pair = Pair::new().expect("network namespaces");
    let range = format!("{}/32", pair.addr_b);
    let r = record_to_temp(None, &["-p", &port.to_string(), "--addr", &range], || {
        assert_eq!(transfer(&pair, "::", &pair.addr_b, port, 1 << 20), 1 << 20);
    });
    let ends = [Some(pair.addr_a.as_str()), Some(pair.addr_b.as_str())];
    for row in &r.rows {
        assert_eq!(row.family, Some(4), "not given as IPv4: {row:?}");
        assert!(
            ends.contains(&row.saddr.as_deref()) && ends.contains(&row.daddr.as_deref()),
            "unexpected addresses: {row:?}"
        );
    }
    // The server's reads come from its IPv6 socket: all of them passed the IPv4 range.
    r.assert_bytes("rx_app", 1 << 20);
    let server_states = r
        .of("state")
        .filter(|x| x.saddr.as_deref() == Some(pair.addr_b.as_str()) && x.sport == Some(port))
        .count();
    assert!(server_states > 0, "no state change of the server's socket");
    let server_snapshots = r
        .of("rx_tcp_est")
        .filter(|x| x.saddr.as_deref() == Some(pair.addr_b.as_str()) && x.cwnd.is_some())
        .count();
    assert!(server_snapshots > 0, "no rx_tcp_est of the server's socket");
}

/// Connects to `addr:port`, adds an 8-byte destination-options header (one PadN option) to every
/// packet the socket sends from then on, and writes `bytes` bytes.
fn send_with_destination_options(addr: &str, port: u16, bytes: u64) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let mut s = traffic::connect(addr, port)?;
    // next header (the kernel fills it in), length 0 (= 8 bytes), PadN of 4 bytes.
    let opts: [u8; 8] = [0, 0, 1, 4, 0, 0, 0, 0];
    // SAFETY: a valid socket and an 8-byte buffer whose size is passed along.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_DSTOPTS,
            opts.as_ptr().cast(),
            opts.len() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(format!("IPV6_DSTOPTS: {}", std::io::Error::last_os_error()));
    }
    traffic::write_and_close(&mut s, bytes, 16 << 10)
}

#[test]
fn ipv6_packets_with_extension_headers_are_parsed() {
    if !should_run("ipv6_packets_with_extension_headers_are_parsed") {
        return;
    }
    // The sender's packets carry a destination-options header between the IPv6 and the TCP
    // header; their flow, sequence and payload come from the TCP header after it.
    let port = 45_403u16;
    let pair = Pair::new().expect("network namespaces");
    let (_a6, b6) = pair.add_ipv6().expect("ipv6 addresses");
    std::thread::sleep(Duration::from_millis(300));
    let r = record_to_temp(None, &["-p", &port.to_string()], || {
        let to = b6.clone();
        let read = transfer_by(&pair, &b6, port, move || {
            send_with_destination_options(&to, port, 1 << 20)
        });
        assert_eq!(read, 1 << 20);
    });
    // Every data byte crossed the receiver's device: the payload lengths parsed from the
    // packets to the receiver's port add up to at least what was sent (more if a segment was
    // sent twice).
    for stage in ["tx_dev_queue", "rx_netif"] {
        let to_b: Vec<_> = r
            .of(stage)
            .filter(|x| x.daddr.as_deref() == Some(b6.as_str()) && x.dport == Some(port))
            .collect();
        let payload: u64 = to_b.iter().map(|x| u64::from(x.len.unwrap_or(0))).sum();
        assert!(
            payload >= 1 << 20,
            "{stage}: {} packets to the receiver with {payload} payload bytes",
            to_b.len()
        );
        let sent_seqs: std::collections::HashSet<_> = to_b.iter().filter_map(|x| x.seq).collect();
        assert!(
            sent_seqs.len() > 10,
            "{stage}: {} distinct sequences",
            sent_seqs.len()
        );
    }
    r.assert_bytes("rx_app", 1 << 20);
}
