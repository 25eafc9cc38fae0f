//! The flight recorder against the real kernel: a rolling window (`--keep`) saved by its
//! triggers — a burst of drops made with nft (`retrans>…`), a tbf queue added halfway
//! (`stage:…:p99>…`), `SIGUSR1` and `tcptape-record trigger` — with the hold-off and the cap on
//! saved windows.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tcptape_e2e::netns::{spawn_in, Pair};
use tcptape_e2e::recorder::{binary, RecorderProcess};
use tcptape_e2e::recording::load;
use tcptape_e2e::{should_run, traffic};

/// CLOCK_MONOTONIC now, ns: the recording's clock.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The saved windows of a flight recording, oldest first.
fn saved(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("saved"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// `tcptape info --format json` of a recording.
fn info(path: &Path) -> serde_json::Value {
    let out = tcptape_e2e::analyzer::run(&["info", "--format", "json", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A transfer from A to B of `bytes` in the background.
fn transfer(pair: &Pair, port: u16, bytes: u64) -> impl FnOnce() {
    let addr = pair.addr_b.clone();
    let l = traffic::listen_in(&pair.b, &addr, port).expect("listen");
    let rx = std::thread::spawn(move || traffic::receive(l, 1, 64 << 10, Duration::ZERO));
    let tx = spawn_in(&pair.a, move || traffic::send(&addr, port, bytes, 16 << 10));
    move || {
        tx.join().unwrap().expect("send");
        rx.join().unwrap().expect("receive");
    }
}

#[test]
fn a_burst_of_drops_saves_the_seconds_before_it_and_after() {
    if !should_run("a_burst_of_drops_saves_the_seconds_before_it_and_after") {
        return;
    }
    let pair = Pair::new().expect("network namespaces");
    // A quiet flow: 4 Mbit/s through tbf, 7 MB, about 14 s. The queue's limit is large enough
    // that TCP never overflows it: no loss, no retransmission until the burst.
    pair.shape_sender("4mbit", "16kb", "4mb").unwrap();
    let port = 45_640u16;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("flight");
    let rec = RecorderProcess::start(
        &[
            "-o",
            out.to_str().unwrap(),
            "--keep",
            "4s",
            "--segment-secs",
            "1",
            "--after",
            "2s",
            "--trigger",
            "retrans>20/s",
            "--port",
            &port.to_string(),
        ],
        &[],
    )
    .expect("recorder starts");
    let done = transfer(&pair, port, 7 << 20);
    // Quiet for 6 s: the window rolls, nothing fires.
    std::thread::sleep(Duration::from_secs(6));
    assert!(saved(&out).is_empty(), "a trigger fired on a quiet flow");
    // The burst: every 4th packet to the receiver dropped, for 2 s.
    let burst = monotonic_ns();
    pair.drop_at_receiver(port, 4).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    pair.clear_receiver_rules().unwrap();
    // The window's --after, and a margin.
    std::thread::sleep(Duration::from_secs(3));
    let (code, log) = rec.stop(libc::SIGINT).unwrap();
    assert_eq!(code, 0, "{log}");
    let windows = saved(&out);
    assert_eq!(windows.len(), 1, "{windows:?}\n{log}");
    assert_eq!(
        log.matches(": saving the window to").count(),
        1,
        "the storm fired more than once: {log}"
    );
    let meta = info(&windows[0]);
    assert_eq!(meta["closed"], true);
    let trigger = &meta["meta"]["segment"]["trigger"];
    assert_eq!(trigger["condition"], "retrans>20/s");
    assert!(trigger["value"].as_f64().unwrap() > 20.0, "{trigger}");
    let at = trigger["at_ns"].as_u64().unwrap();
    eprintln!(
        "retrans trigger: {} ms after the burst began, value {}",
        (at as i64 - burst as i64) / 1_000_000,
        trigger["value"]
    );
    // Soon after the burst (the conditions look at the last second four times a second; the
    // retransmissions take a round trip or a timeout to come).
    assert!(
        at >= burst && at < burst + 1_500_000_000,
        "fired {} ms after the burst",
        (at as i64 - burst as i64) / 1_000_000
    );
    // The saved window: the quiet flow before the burst, its retransmissions, and --after.
    let w = load(&windows[0]).unwrap();
    let writes_before = w
        .of("tx_sendmsg")
        .filter(|r| r.ts_ns + 2_000_000_000 < burst)
        .count();
    assert!(
        writes_before > 0,
        "no write 2 s before the burst in the window"
    );
    let retrans: u64 = w
        .of("retransmit")
        .map(|r| u64::from(r.segs.unwrap_or(1)))
        .sum();
    assert!(
        retrans > 20,
        "{retrans} retransmitted segments in the window"
    );
    let last = w.rows.iter().map(|r| r.ts_ns).max().unwrap();
    assert!(
        last >= at + 1_500_000_000,
        "the window ends {} ms after the trigger (--after 2s)",
        (last - at) / 1_000_000
    );
    // The live window kept rolling: its oldest segments are gone.
    let live = info(&out);
    assert!(
        live["status"].as_str().unwrap().contains("rolled out"),
        "{}",
        live["status"]
    );
    done();
}

#[test]
fn a_queue_added_halfway_fires_the_stage_trigger_within_a_second() {
    if !should_run("a_queue_added_halfway_fires_the_stage_trigger_within_a_second") {
        return;
    }
    let pair = Pair::new().expect("network namespaces");
    let port = 45_641u16;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("flight");
    let rec = RecorderProcess::start(
        &[
            "-o",
            out.to_str().unwrap(),
            "--keep",
            "10s",
            "--segment-secs",
            "1",
            "--after",
            "2s",
            "--trigger",
            "stage:tx_qdisc_enq→tx_qdisc_deq:p99>5ms",
            "--port",
            &port.to_string(),
        ],
        &[],
    )
    .expect("recorder starts");
    // A request/response-like stream: 64 KB every 20 ms for 8 s, no queue at first (veth has
    // none), then a 2 Mbit/s tbf that holds each burst for tens of ms.
    let addr = pair.addr_b.clone();
    let l = traffic::listen_in(&pair.b, &addr, port).expect("listen");
    let rx = std::thread::spawn(move || traffic::receive(l, 400, 64 << 10, Duration::ZERO));
    let a = pair.a.clone();
    let sender = std::thread::spawn(move || {
        for _ in 0..400 {
            let addr = addr.clone();
            spawn_in(&a, move || traffic::send(&addr, port, 16 << 10, 16 << 10))
                .join()
                .unwrap()
                .expect("send");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(saved(&out).is_empty(), "fired without a queue");
    let queued = monotonic_ns();
    pair.shape_sender("2mbit", "8kb", "400kb").unwrap();
    std::thread::sleep(Duration::from_secs(4));
    // Within the hold-off, a command is answered, and ignored.
    let pid = rec.pid().to_string();
    let reply = Command::new(binary().unwrap())
        .args(["trigger", "--pid", &pid, "--reason", "by hand"])
        .output()
        .unwrap();
    let reply = String::from_utf8_lossy(&reply.stdout).to_string();
    assert!(reply.contains("ignored"), "{reply}");
    let (code, log) = rec.stop(libc::SIGINT).unwrap();
    assert_eq!(code, 0, "{log}");
    sender.join().unwrap();
    let _ = rx.join();
    let windows = saved(&out);
    assert_eq!(windows.len(), 1, "{log}");
    let meta = info(&windows[0]);
    let trigger = &meta["meta"]["segment"]["trigger"];
    let at = trigger["at_ns"].as_u64().unwrap();
    eprintln!(
        "stage trigger: {} ms after the queue was added, p99 {} ns",
        (at as i64 - queued as i64) / 1_000_000,
        trigger["value"]
    );
    assert!(
        at > queued && at < queued + 1_000_000_000,
        "fired {} ms after the queue was added",
        (at as i64 - queued as i64) / 1_000_000
    );
    assert!(trigger["value"].as_f64().unwrap() > 5e6, "{trigger}");
    // The window shows the stage before (no queue: no qdisc events) and after.
    let w = load(&windows[0]).unwrap();
    let before = w.rows.iter().filter(|r| r.ts_ns < queued).count();
    let qdisc_before = w.of("tx_qdisc_enq").filter(|r| r.ts_ns < queued).count();
    let qdisc_after = w.of("tx_qdisc_enq").filter(|r| r.ts_ns > queued).count();
    assert!(
        before > 0 && qdisc_before == 0 && qdisc_after > 0,
        "{before} events before the queue, {qdisc_before} queued before, {qdisc_after} after"
    );
    // `report --around` narrows to the trigger.
    let out = tcptape_e2e::analyzer::run(&[
        "report",
        "-q",
        "--format",
        "json",
        "--around",
        "1s",
        windows[0].to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["notes"].to_string().contains("saved by trigger"),
        "{}",
        report["notes"]
    );
}

#[test]
fn sigusr1_and_the_trigger_command_save_windows_and_the_cap_keeps_the_newest() {
    if !should_run("sigusr1_and_the_trigger_command_save_windows_and_the_cap_keeps_the_newest") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("flight");
    let rec = RecorderProcess::start(
        &[
            "-o",
            out.to_str().unwrap(),
            "--keep",
            "5s",
            "--segment-secs",
            "1",
            "--after",
            "1s",
            "--hold-off",
            "1s",
            "--max-saved",
            "1",
        ],
        &[],
    )
    .expect("recorder starts");
    let pid = rec.pid();
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(rec.pid() as i32, libc::SIGUSR1) };
    let t0 = Instant::now();
    while saved(&out).is_empty() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = saved(&out);
    assert_eq!(first.len(), 1);
    assert!(
        first[0].to_string_lossy().ends_with("-SIGUSR1"),
        "{first:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let reply = Command::new(binary().unwrap())
        .args([
            "trigger",
            "--pid",
            &rec.pid().to_string(),
            "--reason",
            "ticket 42",
        ])
        .output()
        .unwrap();
    assert!(
        reply.status.success(),
        "{}",
        String::from_utf8_lossy(&reply.stderr)
    );
    let reply = String::from_utf8_lossy(&reply.stdout).to_string();
    assert!(reply.contains("saving the window to"), "{reply}");
    std::thread::sleep(Duration::from_secs(2));
    let (code, log) = rec.stop(libc::SIGINT).unwrap();
    assert_eq!(code, 0, "{log}");
    // The cap of one: the SIGUSR1 window made room for the newer one, and said so.
    let windows = saved(&out);
    assert_eq!(windows.len(), 1, "{windows:?}");
    assert!(
        windows[0].to_string_lossy().ends_with("-ticket_42"),
        "{windows:?}"
    );
    assert!(log.contains("deleted the oldest saved window"), "{log}");
    let meta = info(&windows[0]);
    assert_eq!(meta["meta"]["segment"]["trigger"]["reason"], "ticket 42");
    assert_eq!(meta["closed"], true);
    // The socket is gone with the recorder.
    assert!(!Path::new(&format!("/run/tcptape-record/{pid}.sock")).exists());
}

#[test]
fn a_killed_recorders_socket_is_removed_by_the_next_trigger_command() {
    if !should_run("a_killed_recorders_socket_is_removed_by_the_next_trigger_command") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("flight");
    let rec = RecorderProcess::start(&["-o", out.to_str().unwrap(), "--keep", "5s"], &[])
        .expect("recorder starts");
    let pid = rec.pid();
    let socket = format!("/run/tcptape-record/{pid}.sock");
    let t0 = Instant::now();
    while !Path::new(&socket).exists() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(Path::new(&socket).exists(), "the recorder listens");
    // SIGKILL: the recorder cannot remove its socket.
    let (code, _) = rec.stop(libc::SIGKILL).unwrap();
    assert_eq!(code, -1, "killed by a signal");
    assert!(
        Path::new(&socket).exists(),
        "a killed recorder leaves its socket"
    );
    let reply = Command::new(binary().unwrap())
        .args(["trigger", "--pid", &pid.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&reply.stderr);
    // Nobody answered (exit 1), the dead recorder's socket is gone and not reported as a
    // connection failure.
    assert_eq!(reply.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no running flight recorder answered"),
        "{stderr}"
    );
    assert!(!stderr.contains("cannot connect"), "{stderr}");
    assert!(!Path::new(&socket).exists());
}
