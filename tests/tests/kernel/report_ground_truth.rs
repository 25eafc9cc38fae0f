//! `tcptape report` against what the test itself makes the kernel do, on real captures between
//! two network namespaces (root only; skipped with a printed reason elsewhere):
//!
//! - a reader that sleeps a chosen time before each read shows that time in the stage that ends
//!   at `rx_app`, within ±0.5 ms at the median;
//! - a tbf queue's delay (`tx_qdisc_enq → tx_qdisc_deq`) stays within the bound its `latency`
//!   and `burst` parameters set, at the median it is what the queue's backlog (as `tc -s`
//!   reports it during the transfer) takes to drain at the rate;
//! - the retransmitted segments the report counts equal the kernel's `TcpRetransSegs`.

use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tcptape_e2e::netns::{run, spawn_in, Pair};
use tcptape_e2e::recorder::RecorderProcess;
use tcptape_e2e::{analyzer, should_run, traffic};

fn report(rec: &Path) -> Value {
    let out = Command::new(analyzer::binary())
        .args(["report", "-q", "--format", "json"])
        .arg(rec)
        .output()
        .expect("tcptape runs");
    assert!(
        out.status.success(),
        "tcptape report: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

/// A directory for the recording: temporary, or kept under `$TCPTAPE_KEEP_DIR/<test>` to look
/// at after a failure.
fn workdir(test: &str) -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("TCPTAPE_KEEP_DIR") {
        Some(d) => {
            let p = PathBuf::from(d).join(test);
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).expect("keep dir");
            (None, p)
        }
        None => {
            let t = tempfile::tempdir().expect("temporary directory");
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    }
}

fn record(port: u16, dir: &Path) -> (RecorderProcess, PathBuf) {
    let out = dir.join("rec.parquet");
    let rec = RecorderProcess::start(
        &["-o", out.to_str().unwrap(), "--port", &port.to_string()],
        &[],
    )
    .expect("recorder starts");
    (rec, out)
}

fn stop(rec: RecorderProcess) {
    // Let the last events reach the ring, then stop as an operator would.
    std::thread::sleep(Duration::from_millis(300));
    let (code, log) = rec.stop(libc::SIGTERM).expect("recorder stops");
    assert_eq!(code, 0, "recorder exit code; stderr:\n{log}");
}

#[test]
fn a_reader_that_sleeps_shows_its_sleep_before_rx_app() {
    if !should_run("a_reader_that_sleeps_shows_its_sleep_before_rx_app") {
        return;
    }
    const PORT: u16 = 45_201;
    const SLEEP: Duration = Duration::from_millis(23);
    const ROUNDS: usize = 40;
    let pair = Pair::new().expect("network namespaces");
    let (_tmp, dir) = workdir("sleep");
    let (rec, out) = record(PORT, &dir);
    let listener = traffic::listen_in(&pair.b, &pair.addr_b, PORT).expect("listen");
    // Request/response: the client sends a request as soon as it has the previous answer; the
    // server sleeps before each read, so each request waits in its receive queue. Both sides
    // note when (CLOCK_MONOTONIC, the recorder's clock) the request was sent and read.
    let server = std::thread::spawn(move || -> Result<Vec<Instant>, String> {
        let (mut s, _) = listener.accept().map_err(|e| e.to_string())?;
        let mut msg = [0u8; 100];
        let mut reads = Vec::new();
        for _ in 0..ROUNDS {
            std::thread::sleep(SLEEP);
            reads.push(Instant::now());
            s.read_exact(&mut msg).map_err(|e| e.to_string())?;
            s.write_all(b"k").map_err(|e| e.to_string())?;
        }
        Ok(reads)
    });
    let addr_b = pair.addr_b.clone();
    let client = spawn_in(&pair.a, move || {
        let mut s = traffic::connect(&addr_b, PORT)?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        let local_port = s.local_addr().map_err(|e| e.to_string())?.port();
        let mut ack = [0u8; 1];
        let mut sends = Vec::new();
        for _ in 0..ROUNDS {
            sends.push(Instant::now());
            s.write_all(&[0x5a; 100]).map_err(|e| e.to_string())?;
            s.read_exact(&mut ack).map_err(|e| e.to_string())?;
        }
        Ok((local_port, sends))
    });
    let (client_port, sends) = client.join().unwrap().expect("client");
    let reads = server.join().unwrap().expect("server");
    stop(rec);

    // What the test made happen: each request waited from its send to the server's read.
    let mut waited: Vec<i64> = sends
        .iter()
        .zip(&reads)
        .map(|(s, r)| r.saturating_duration_since(*s).as_nanos() as i64)
        .collect();
    waited.sort_unstable();
    let truth = waited[waited.len().div_ceil(2) - 1];

    // The requests' flow: client → server. (The answers the client reads are another flow.)
    let r = report(&out);
    let flow = format!("{}:{client_port}-{}:{PORT}", pair.addr_a, pair.addr_b);
    let row = r["stages_per_flow"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["flow"] == flow.as_str() && s["to"] == "rx_app")
        .unwrap_or_else(|| {
            panic!(
                "no stage ends at rx_app for {flow}: {}",
                r["stages_per_flow"]
            )
        });
    eprintln!("stage ending at rx_app for {flow}: {row}; measured waits: median {truth} ns");
    assert!(
        row["count"].as_u64().unwrap() >= ROUNDS as u64 - 2,
        "too few reads measured: {row}"
    );
    let p50 = row["p50_ns"].as_u64().unwrap() as i64;
    assert!(
        p50 >= SLEEP.as_nanos() as i64 - 500_000,
        "the reader's {SLEEP:?} sleep does not show: p50 {p50} ns"
    );
    // The recorded time from the packet's arrival to the copy is the wait the test measured,
    // less the path from send() to the receiver's TCP (tens of µs).
    assert!(
        (p50 - truth).abs() <= 500_000,
        "p50 {p50} ns is not within 0.5 ms of the measured median wait {truth} ns: {row}"
    );
}

#[test]
fn tbf_queueing_stays_within_its_latency_bound() {
    if !should_run("tbf_queueing_stays_within_its_latency_bound") {
        return;
    }
    const PORT: u16 = 45_202;
    const LATENCY_MS: u64 = 20;
    let pair = Pair::new().expect("network namespaces");
    // tbf computes its queue limit from `latency`: no packet waits longer than that in it.
    run(
        "tc",
        &[
            "-n",
            &pair.a,
            "qdisc",
            "add",
            "dev",
            "va",
            "root",
            "tbf",
            "rate",
            "200mbit",
            "burst",
            "32kb",
            "latency",
            &format!("{LATENCY_MS}ms"),
        ],
    )
    .expect("tbf");
    let (_tmp, dir) = workdir("tbf");
    let (rec, out) = record(PORT, &dir);
    let listener = traffic::listen_in(&pair.b, &pair.addr_b, PORT).expect("listen");
    let receiver =
        std::thread::spawn(move || traffic::receive(listener, 1, 64 << 10, Duration::ZERO));
    let addr_b = pair.addr_b.clone();
    let sender = spawn_in(&pair.a, move || {
        traffic::send(&addr_b, PORT, 16 << 20, 128 << 10)
    });
    // What the kernel says is in the queue while the transfer runs (`tc -s`: backlog bytes),
    // every 10 ms: a packet enqueued behind B bytes waits B / rate.
    let mut backlog = Vec::new();
    while !sender.is_finished() {
        let out =
            run("tc", &["-n", &pair.a, "-s", "qdisc", "show", "dev", "va"]).unwrap_or_default();
        if let Some(b) = backlog_bytes(&out).filter(|&b| b > 0) {
            backlog.push(b);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    sender.join().unwrap().expect("send");
    receiver.join().unwrap().expect("receive");
    stop(rec);

    let r = report(&out);
    let q = r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["from"] == "tx_qdisc_enq" && s["to"] == "tx_qdisc_deq")
        .unwrap_or_else(|| panic!("no qdisc stage: {}", r["stages"]));
    eprintln!("tbf queueing: {q}");
    // tbf's queue holds `rate × latency + burst` bytes: a packet at the tail of a full queue
    // waits `latency + burst / rate` (20 ms + 32 KiB at 200 Mbit/s = 21.3 ms). One packet may be
    // dequeued a timer tick after its token time; allow 1 ms for that.
    let burst_ns = (32u64 << 10) * 8 * 1_000_000_000 / 200_000_000;
    let upper = LATENCY_MS * 1_000_000 + burst_ns + 1_000_000;
    let (p50, p99) = (q["p50_ns"].as_u64().unwrap(), q["p99_ns"].as_u64().unwrap());
    assert!(
        p99 <= upper,
        "p99 {p99} ns exceeds tbf's bound of {upper} ns (latency + burst/rate + a tick): {q}"
    );
    // The queue's own account: the median backlog tc saw while the transfer ran, drained at the
    // rate, is what a packet waits at the median; sampled in time, not per packet, so within a
    // factor of 2. tbf cuts GSO packets larger than its burst into segments as it takes them:
    // each segment's wait runs from its packet's enqueue to its own dequeue.
    backlog.sort_unstable();
    assert!(
        backlog.len() >= 5,
        "tc saw a backlog only {} times",
        backlog.len()
    );
    let expected = backlog[backlog.len() / 2] * 8 * 1_000_000_000 / 200_000_000;
    eprintln!(
        "median backlog {} bytes: {expected} ns at 200 Mbit/s; p50 {p50} ns",
        backlog[backlog.len() / 2]
    );
    assert!(
        p50 * 2 >= expected && p50 <= expected * 2 + 1_000_000,
        "median {p50} ns, while tc's median backlog drains in {expected} ns: {q}"
    );
}

/// The `backlog` of `tc -s qdisc show` output, in bytes (`backlog 59046b`, `68Kb`, `1Mb`).
fn backlog_bytes(tc: &str) -> Option<u64> {
    let word = tc
        .split_whitespace()
        .skip_while(|w| *w != "backlog")
        .nth(1)?;
    let digits: String = word.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().ok()?;
    Some(match &word[digits.len()..] {
        "b" => n,
        "Kb" => n << 10,
        "Mb" => n << 20,
        _ => return None,
    })
}

#[test]
fn retransmitted_segments_equal_the_kernel_counter() {
    if !should_run("retransmitted_segments_equal_the_kernel_counter") {
        return;
    }
    const PORT: u16 = 45_203;
    let pair = Pair::new().expect("network namespaces");
    pair.drop_at_receiver(PORT, 53).expect("nft");
    let (_tmp, dir) = workdir("retransmits");
    let (rec, out) = record(PORT, &dir);
    // The report counts both ends' retransmissions, and so do the counters.
    let t = traffic::counted_transfer(&pair, PORT, 8 << 20, 64 << 10).expect("transfer");
    stop(rec);

    let r = report(&out);
    let nstat = t.grew("RetransSegs");
    let rt = &r["retransmits"];
    eprintln!("nstat RetransSegs {nstat}; report {rt}");
    assert!(nstat > 0, "the scenario induced no retransmission");
    if r["lost_events"].as_u64() != Some(0) {
        eprintln!("events were lost: the count is a lower bound");
        assert!(rt["kernel_counted_segments"].as_u64().unwrap() <= nstat);
        return;
    }
    let reported = rt["kernel_counted_segments"]
        .as_u64()
        .expect("kernel_counted_segments");
    tcptape_e2e::recording::assert_counted_segments(reported, nstat);
}

/// The Connections table against what the test's own processes know: the client's row has the
/// port it was given (its first state change, to SYN_SENT, comes before the port is chosen), each
/// row names the process that owns the socket (the server is another process: its accepted
/// socket's handshake runs in softirq, on the client's CPU), and the bytes are what the
/// applications wrote and read.
#[test]
fn connections_have_their_port_owner_and_application_bytes() {
    if !should_run("connections_have_their_port_owner_and_application_bytes") {
        return;
    }
    const PORT: u16 = 45_231;
    const BYTES: [u64; 2] = [1_000_000, 3_000_000];
    let pair = Pair::new().expect("network namespaces");
    let (_tmp, dir) = workdir("connections");
    let (rec, out) = record(PORT, &dir);
    let mut sink = Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.b,
            env!("CARGO_BIN_EXE_tcptape-traffic"),
            "sink",
        ])
        .args([&pair.addr_b, &PORT.to_string(), "2"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sink starts");
    let sink_pid = sink.id() as u64;
    Pair::wait_until_listening(&pair.b, PORT, Duration::from_secs(5)).expect("sink listens");
    let mut clients = Vec::new();
    for bytes in BYTES {
        let addr = pair.addr_b.clone();
        let port = spawn_in(&pair.a, move || {
            let mut s = traffic::connect(&addr, PORT)?;
            let port = s.local_addr().map_err(|e| e.to_string())?.port();
            traffic::write_and_close(&mut s, bytes, 16 << 10)?;
            Ok(port)
        })
        .join()
        .unwrap()
        .expect("client");
        clients.push((port, bytes));
    }
    let mut read = String::new();
    sink.stdout
        .take()
        .unwrap()
        .read_to_string(&mut read)
        .unwrap();
    assert!(sink.wait().unwrap().success());
    assert_eq!(read.trim(), BYTES.iter().sum::<u64>().to_string());
    pair.wait_until_quiet(PORT, Duration::from_secs(5))
        .expect("connections closed");
    stop(rec);

    let report = report(&out);
    let conns = report["connections"].as_array().expect("connections");
    let me = std::process::id() as u64;
    for (port, bytes) in clients {
        let (client, server) = (
            format!("{}:{port}-{}:{PORT}", pair.addr_a, pair.addr_b),
            format!("{}:{PORT}-{}:{port}", pair.addr_b, pair.addr_a),
        );
        let row = |flow: &str| {
            conns
                .iter()
                .find(|c| c["flow"] == flow)
                .unwrap_or_else(|| panic!("no connection {flow} in {conns:#?}"))
        };
        let c = row(&client);
        assert_eq!(
            (c["pid"].as_u64(), c["tx_bytes"].as_u64()),
            (Some(me), Some(bytes)),
            "{c}"
        );
        let s = row(&server);
        assert_eq!(
            (
                s["pid"].as_u64(),
                s["rx_bytes"].as_u64(),
                s["comm"].as_str()
            ),
            (Some(sink_pid), Some(bytes), Some("tcptape-traffic")),
            "{s}"
        );
        // Both ends are seen to close, under the port filter too: the server's socket gives its
        // port back before its change to CLOSE is traced.
        for x in [c, s] {
            assert!(
                x["closed"] == true && x["states"].as_str().unwrap().ends_with("CLOSE"),
                "{x}"
            );
        }
    }
}
