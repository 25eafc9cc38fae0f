//! The scope filters with real traffic: `--netns`, `--iface` (resolved in the recorder's own
//! namespace) and `--pid` (a process's flows, including their softirq events).

use std::process::{Command, Stdio};
use std::time::Duration;
use tcptape_e2e::netns::{spawn_in, Pair};
use tcptape_e2e::recorder::record_to_temp;
use tcptape_e2e::{should_run, traffic};

/// One transfer of `bytes` from this process's threads, sender in A, receiver in B.
fn transfer(pair: &Pair, port: u16, bytes: u64) {
    let addr = pair.addr_b.clone();
    let l = traffic::listen_in(&pair.b, &addr, port).expect("listen");
    let rx = std::thread::spawn(move || traffic::receive(l, 1, 16 << 10, Duration::ZERO));
    spawn_in(&pair.a, move || traffic::send(&addr, port, bytes, 16 << 10))
        .join()
        .unwrap()
        .expect("send");
    assert_eq!(rx.join().unwrap().expect("receive"), bytes);
}

#[test]
fn netns_filter_keeps_one_namespace() {
    if !should_run("netns_filter_keeps_one_namespace") {
        return;
    }
    let pair = Pair::new().expect("network namespaces");
    let inode_b = Pair::inode(&pair.b).unwrap();
    let r = record_to_temp(
        None,
        &["--netns", &inode_b.to_string(), "-p", "45501"],
        || transfer(&pair, 45_501, 1 << 20),
    );
    assert!(r.rows.len() > 50);
    for row in &r.rows {
        assert_eq!(row.netns, Some(inode_b), "{row:?}");
    }
    // The receiver's side is all there; the sender's socket events are not.
    assert!(r.of("rx_app").count() > 0 && r.of("rx_netif").count() > 0);
    assert_eq!(
        r.of("tx_sendmsg")
            .filter(|x| x.dport == Some(45_501))
            .count(),
        0
    );
}

#[test]
fn iface_filter_uses_the_recorders_namespace() {
    if !should_run("iface_filter_uses_the_recorders_namespace") {
        return;
    }
    let pair = Pair::new().expect("network namespaces");
    let inode_b = Pair::inode(&pair.b).unwrap();
    let vb = Pair::ifindex(&pair.b, "vb").unwrap();
    let r = record_to_temp(Some(&pair.b), &["--iface", "vb", "-p", "45511"], || {
        transfer(&pair, 45_511, 1 << 20)
    });
    assert_eq!(r.meta.filters.ifaces, vec!["vb"]);
    let with_if: Vec<_> = r.rows.iter().filter(|x| x.ifindex.is_some()).collect();
    assert!(with_if.len() > 20, "{} packet events", with_if.len());
    for row in with_if {
        assert_eq!(
            (row.ifindex, row.netns),
            (Some(vb), Some(inode_b)),
            "{row:?}"
        );
    }
    // Socket events of the admitted flow come along.
    assert!(r.of("rx_app").count() > 0);
    // The name does not exist where the recorder runs: refused with exit code 2.
    let out = Command::new(tcptape_e2e::recorder::binary().unwrap())
        .args(["-o", "/nonexistent/x.parquet", "--iface", "vb"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no interface 'vb'"));
}

#[test]
fn pid_filter_keeps_one_process_flows() {
    if !should_run("pid_filter_keeps_one_process_flows") {
        return;
    }
    let (mine, other) = (45_521u16, 45_522u16);
    let pair = Pair::new().expect("network namespaces");
    let me = std::process::id().to_string();
    let traffic_bin = env!("CARGO_BIN_EXE_tcptape-traffic");
    let r = record_to_temp(None, &["--pid", &me], || {
        // Another process's flow, at the same time.
        let mut sink = Command::new("ip")
            .args(["netns", "exec", &pair.b, traffic_bin, "sink", &pair.addr_b])
            .arg(other.to_string())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let mut bulk = Command::new("ip")
            .args(["netns", "exec", &pair.a, traffic_bin, "bulk", &pair.addr_b])
            .args([other.to_string(), (2u64 << 20).to_string()])
            .spawn()
            .unwrap();
        transfer(&pair, mine, 2 << 20);
        assert!(bulk.wait().unwrap().success());
        assert!(sink.wait().unwrap().success());
    });
    let ports = |p: u16| {
        r.rows
            .iter()
            .filter(|x| x.sport == Some(p) || x.dport == Some(p))
            .count()
    };
    assert!(
        ports(mine) > 50,
        "{} events of this process's flow",
        ports(mine)
    );
    assert_eq!(ports(other), 0, "the other process's flow was recorded");
    // Softirq events of the admitted flow are kept, not only the ones with a pid.
    assert!(r.of("rx_netif").count() > 0);
    // Every event that names a process names this one: events handled in softirq (packets
    // received, state changes and buffer pressure they cause) carry no pid, never the pid of the
    // task they interrupted, which could be the other process's.
    let me_pid = std::process::id();
    for x in r.rows.iter().filter(|x| x.pid.is_some()) {
        assert_eq!(x.pid, Some(me_pid), "{x:?}");
    }
    // The server's LISTEN -> SYN_RECV happens in softirq, when the SYN arrives: on veth, in the
    // softirq that runs on this very process's connect(). It carries no pid.
    let syn_recv: Vec<_> = r
        .of("state")
        .filter(|x| x.sport == Some(mine) && x.state.as_deref() == Some("SYN_RECV"))
        .collect();
    assert!(!syn_recv.is_empty(), "no SYN_RECV of this process's server");
    assert!(syn_recv.iter().all(|x| x.pid.is_none()), "{syn_recv:?}");
    assert!(r
        .of("tx_sendmsg")
        .chain(r.of("rx_app"))
        .all(|x| x.pid == Some(me_pid)));
    // The connecting side's handshake is kept: the state change it makes before its port is
    // chosen admits the socket, and through it the SYN and the change to ESTABLISHED.
    let established = r.of("state").filter(|x| x.dport == Some(mine)).any(|x| {
        x.old_state.as_deref() == Some("SYN_SENT") && x.state.as_deref() == Some("ESTABLISHED")
    });
    assert!(
        established,
        "no SYN_SENT → ESTABLISHED of this process's connection"
    );
    // The SYN: its sequence number is one before the first byte written.
    let first_write = r
        .of("tx_sendmsg")
        .filter(|x| x.dport == Some(mine))
        .min_by_key(|x| x.ts_ns)
        .and_then(|x| x.seq)
        .expect("the connection's writes");
    let syn = r
        .of("tx_dev_queue")
        .filter(|x| x.dport == Some(mine) && x.seq == Some(first_write.wrapping_sub(1)))
        .count();
    assert!(syn > 0, "no SYN of this process's connection");
}

#[test]
fn pid_filter_keeps_a_servers_connections_from_the_clients_syn() {
    if !should_run("pid_filter_keeps_a_servers_connections_from_the_clients_syn") {
        return;
    }
    // Two server processes, the clients another process. The kernel completes each handshake
    // before the server touches the new socket, so only the port it listens on can admit the
    // connection that early: one server listens before the recording starts (found in /proc),
    // the other after (seen by the programs).
    let (before, after) = (45_531u16, 45_532u16);
    let pair = Pair::new().expect("network namespaces");
    let traffic_bin = env!("CARGO_BIN_EXE_tcptape-traffic");
    let sink = |port: u16| format!("exec {traffic_bin} sink {} {port}", pair.addr_b);
    let mut early = Command::new("ip")
        .args(["netns", "exec", &pair.b, "sh", "-c", &sink(before)])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // `ip netns exec` and `sh -c 'read; exec ...'` keep the pid: it is the server's.
    let mut late = Command::new("ip")
        .args(["netns", "exec", &pair.b, "sh", "-c"])
        .arg(format!("read _; {}", sink(after)))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Pair::wait_until_listening(&pair.b, before, Duration::from_secs(5)).unwrap();
    let (early_pid, late_pid) = (early.id().to_string(), late.id().to_string());
    let r = record_to_temp(None, &["--pid", &early_pid, "--pid", &late_pid], || {
        use std::io::Write;
        writeln!(late.stdin.take().unwrap()).unwrap();
        Pair::wait_until_listening(&pair.b, after, Duration::from_secs(5)).unwrap();
        for port in [before, after] {
            let sent = Command::new("ip")
                .args(["netns", "exec", &pair.a, traffic_bin, "bulk", &pair.addr_b])
                .args([port.to_string(), (1u64 << 20).to_string()])
                .status()
                .unwrap();
            assert!(sent.success());
        }
        assert!(early.wait().unwrap().success());
        assert!(late.wait().unwrap().success());
    });
    for port in [before, after] {
        // The client's SYN, as the server's side receives it: sequence number one before the
        // first byte the client wrote (its writes are kept: the flow is kept whole).
        let first_write = r
            .of("tx_sendmsg")
            .filter(|x| x.dport == Some(port))
            .min_by_key(|x| x.ts_ns)
            .and_then(|x| x.seq)
            .unwrap_or_else(|| panic!("no write of the connection to port {port}"));
        let syn = r
            .of("rx_netif")
            .filter(|x| x.dport == Some(port) && x.seq == Some(first_write.wrapping_sub(1)))
            .count();
        assert_eq!(syn, 1, "the SYN to port {port}, received");
        let accepted = r.of("state").filter(|x| x.sport == Some(port)).any(|x| {
            x.old_state.as_deref() == Some("SYN_RECV") && x.state.as_deref() == Some("ESTABLISHED")
        });
        assert!(
            accepted,
            "no SYN_RECV → ESTABLISHED of the server's socket on {port}"
        );
        let read: u64 = r
            .of("rx_app")
            .filter(|x| x.sport == Some(port))
            .map(|x| u64::from(x.len.unwrap_or(0)))
            .sum();
        assert_eq!(read, 1 << 20, "bytes the server on {port} read");
    }
}

#[test]
fn a_pid_that_is_not_running_gets_a_warning_and_the_recording_goes_on() {
    if !should_run("a_pid_that_is_not_running_gets_a_warning_and_the_recording_goes_on") {
        return;
    }
    // Above the kernel's pid_max limit (2^22): no process has it, now or later.
    let pid = (1u32 << 22) + 7;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.parquet");
    let rec = tcptape_e2e::recorder::RecorderProcess::start(
        &["-o", out.to_str().unwrap(), "--pid", &pid.to_string()],
        &[],
    )
    .expect("recorder starts");
    std::thread::sleep(Duration::from_millis(300));
    let (code, log) = rec.stop(libc::SIGINT).expect("recorder stops");
    assert_eq!(code, 0, "{log}");
    let warning = format!("warning: there is no process {pid}; --pid {pid} matches nothing");
    assert_eq!(log.matches(&warning).count(), 1, "{log}");
    assert!(out.exists(), "no recording: {log}");
}
