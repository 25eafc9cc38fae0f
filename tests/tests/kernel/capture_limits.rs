//! The recorder's command line against the real kernel: `check`, stop reasons of the limits,
//! and the exit codes for missing privileges and bad outputs.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;
use tcptape_e2e::netns::{link_counter, spawn_in, Pair};
use tcptape_e2e::recorder::{binary, RecorderProcess};
use tcptape_e2e::recording::load;
use tcptape_e2e::{should_run, traffic};

#[test]
fn check_prints_the_plan_and_succeeds() {
    if !should_run("check_prints_the_plan_and_succeeds") {
        return;
    }
    let out = Command::new(binary().unwrap())
        .arg("check")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("STAGE"), "{text}");
    let netif = text.lines().find(|l| l.starts_with("rx_netif")).unwrap();
    assert!(
        netif.contains("tp_btf") || netif.contains("tracepoint"),
        "{netif}"
    );

    let out = Command::new(binary().unwrap())
        .args(["check", "--json"])
        .output()
        .unwrap();
    let doc: serde_json_value::Value = serde_json_value::parse(&out.stdout);
    assert_eq!(doc.stages_len, 18);
    assert!(doc.recordable > 0);

    // Nothing attachable: `check` and a recording both say so with exit code 4.
    let none = [(
        "TCPTAPE_DISABLE_MECHANISMS",
        "fentry,kprobe,tp_btf,tracepoint",
    )];
    let out = Command::new(binary().unwrap())
        .arg("check")
        .envs(none)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 of 18 stages"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.parquet");
    let out = Command::new(binary().unwrap())
        .args(["-q", "-o", path.to_str().unwrap()])
        .envs(none)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(!path.exists());
}

/// A minimal reader of the two fields the test needs, so the harness needs no JSON crate.
mod serde_json_value {
    pub struct Value {
        pub stages_len: usize,
        pub recordable: usize,
    }
    pub fn parse(bytes: &[u8]) -> Value {
        let text = String::from_utf8_lossy(bytes);
        let recordable = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("\"recordable\": "))
            .and_then(|v| v.trim_end_matches(',').parse().ok())
            .expect("recordable field");
        let stages_len = text.matches("\"stage\": ").count();
        Value {
            stages_len,
            recordable,
        }
    }
}

#[test]
fn max_events_and_duration_stop_with_their_reason() {
    if !should_run("max_events_and_duration_stop_with_their_reason") {
        return;
    }
    let port = 45_301u16;
    let pair = Pair::new().expect("network namespaces");
    let dir = tempfile::tempdir().unwrap();
    let capped = dir.path().join("capped.parquet");
    let timed = dir.path().join("timed");
    let rec = RecorderProcess::start(
        &[
            "-o",
            capped.to_str().unwrap(),
            "-p",
            &port.to_string(),
            "--max-events",
            "500",
        ],
        &[],
    )
    .unwrap();
    let timed_rec = RecorderProcess::start(
        &[
            "-o",
            timed.to_str().unwrap(),
            "-p",
            &port.to_string(),
            "--duration",
            "2s",
        ],
        &[],
    )
    .unwrap();
    let addr = pair.addr_b.clone();
    let listener = traffic::listen_in(&pair.b, &addr, port).unwrap();
    let receiver = std::thread::spawn(move || traffic::receive(listener, 1, 8192, Duration::ZERO));
    spawn_in(&pair.a, move || traffic::send(&addr, port, 4 << 20, 8192))
        .join()
        .unwrap()
        .unwrap();
    receiver.join().unwrap().unwrap();

    let (code, log) = rec.wait(Duration::from_secs(20)).unwrap();
    assert_eq!(code, 0, "{log}");
    let r = load(&capped).unwrap();
    assert_eq!(r.rows.len(), 500);
    assert_eq!(r.meta.segment.stop_reason.as_deref(), Some("max-events"));

    let (code, log) = timed_rec.wait(Duration::from_secs(20)).unwrap();
    assert_eq!(code, 0, "{log}");
    let r = load(&timed).unwrap();
    assert_eq!(r.meta.segment.stop_reason.as_deref(), Some("duration"));
    let span = r.meta.end_ns - r.meta.start_ns;
    assert!(
        (1_900_000_000..6_000_000_000).contains(&span),
        "a 2 s recording spans {span} ns"
    );
}

#[test]
fn max_size_stops_the_recording_near_the_limit() {
    if !should_run("max_size_stops_the_recording_near_the_limit") {
        return;
    }
    let port = 45_311u16;
    let pair = Pair::new().expect("network namespaces");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bounded");
    let rec = RecorderProcess::start(
        &[
            "-o",
            out.to_str().unwrap(),
            "-p",
            &port.to_string(),
            "--max-size",
            "300K",
        ],
        &[],
    )
    .unwrap();
    let addr = pair.addr_b.clone();
    let listener = traffic::listen_in(&pair.b, &addr, port).unwrap();
    let receiver = std::thread::spawn(move || traffic::receive(listener, 1, 4096, Duration::ZERO));
    spawn_in(&pair.a, move || traffic::send(&addr, port, 64 << 20, 4096))
        .join()
        .unwrap()
        .unwrap();
    receiver.join().unwrap().unwrap();
    let (code, log) = rec.wait(Duration::from_secs(30)).unwrap();
    assert_eq!(code, 0, "{log}");
    let r = load(&out).unwrap();
    assert_eq!(r.meta.segment.stop_reason.as_deref(), Some("max-size"));
    let size: u64 = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(size < 2 * 300_000, "a 300K recording takes {size} bytes");
}

#[test]
fn missing_privileges_and_existing_outputs_have_their_exit_codes() {
    if !should_run("missing_privileges_and_existing_outputs_have_their_exit_codes") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.parquet");
    let mut cmd = Command::new(binary().unwrap());
    cmd.args(["-o", out.to_str().unwrap()]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let res = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(3), "{err}");
    assert!(err.contains("CAP_BPF"), "{err}");
    assert!(
        !out.exists(),
        "nothing is created when recording cannot start"
    );

    std::fs::write(&out, b"keep me").unwrap();
    let res = Command::new(binary().unwrap())
        .args(["-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
}

#[test]
fn a_closed_stderr_does_not_stop_a_recording() {
    if !should_run("a_closed_stderr_does_not_stop_a_recording") {
        return;
    }
    // `tcptape-record -v ... 2>&1 | head -3`: the reader of stderr exits, and every later
    // message fails with EPIPE. The recording must still run to its end and be finished.
    let pair = Pair::new().expect("network namespaces");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("no-stderr.parquet");
    let mut child = Command::new(binary().unwrap())
        .args([
            "-v",
            "-o",
            out.to_str().unwrap(),
            "--duration",
            "3s",
            "-p",
            "45611",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take()); // the pipe's only reader is gone before the first message
    std::thread::sleep(Duration::from_millis(1500));
    let sent = traffic::transfers(&pair, 45_611, 1, 256 << 10, 16 << 10);
    assert_eq!(sent.join().unwrap(), 256 << 10);
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "the recorder failed with a closed stderr"
    );
    let r = load(&out).expect("a finished recording");
    assert!(r.closed);
    assert_eq!(r.meta.segment.stop_reason.as_deref(), Some("duration"));
    r.assert_bytes("rx_app", 256 << 10);
}

#[test]
fn a_signal_right_after_recording_starts_ends_it_cleanly() {
    if !should_run("a_signal_right_after_recording_starts_ends_it_cleanly") {
        return;
    }
    // A script that starts the recorder and stops it as soon as it says it is recording: the
    // signal must find the recorder's handlers in place, and the file finished.
    let dir = tempfile::tempdir().unwrap();
    for (i, signal) in [libc::SIGINT, libc::SIGTERM]
        .iter()
        .cycle()
        .take(10)
        .enumerate()
    {
        let out = dir.path().join(format!("early-{i}.parquet"));
        let rec = RecorderProcess::start(&["-o", out.to_str().unwrap()], &[]).expect("starts");
        let (code, log) = rec.stop(*signal).expect("stops");
        assert_eq!(code, 0, "run {i}, signal {signal}: {log}");
        let r = load(&out).expect("a finished recording");
        assert_eq!(r.meta.segment.stop_reason.as_deref(), Some("signal"));
    }
}

#[test]
fn a_terminal_gets_the_live_view_and_a_pipe_only_the_summary() {
    if !should_run("a_terminal_gets_the_live_view_and_a_pipe_only_the_summary") {
        return;
    }
    let pair = Pair::new().expect("network namespaces");
    let port = 45_610u16;
    let dir = tempfile::tempdir().unwrap();
    let bin = binary().unwrap();
    // Traffic for the whole recording: a transfer every 100 ms for 4 s.
    let traffic = |pair: &Pair, port: u16| {
        let addr = pair.addr_b.clone();
        let l = traffic::listen_in(&pair.b, &addr, port).expect("listen");
        let rx = std::thread::spawn(move || traffic::receive(l, 40, 4 << 10, Duration::ZERO));
        let a = pair.a.clone();
        let tx = std::thread::spawn(move || {
            for _ in 0..40 {
                spawn_in(&a, {
                    let addr = addr.clone();
                    move || traffic::send(&addr, port, 64 << 10, 4 << 10)
                })
                .join()
                .unwrap()
                .expect("send");
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        (rx, tx)
    };
    // On a terminal (`script` gives the recorder a pseudo-terminal).
    let typescript = dir.path().join("typescript");
    let out = dir.path().join("tty.parquet");
    let (rx, tx) = traffic(&pair, port);
    let status = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{} -o {} --duration 3s --port {port}",
            bin.display(),
            out.display()
        ))
        .arg(&typescript)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("script (util-linux) runs");
    assert!(status.success());
    tx.join().unwrap();
    rx.join().unwrap().expect("receive");
    let screen = String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).to_string();
    assert!(screen.contains(" recorded · "), "{screen}");
    assert!(screen.contains("left (--duration)"), "{screen}");
    assert!(screen.contains("per stage/s: "), "{screen}");
    assert!(
        screen.contains(&format!("{}:{port} ⇄ ", pair.addr_b))
            || screen.contains(&format!(" ⇄ {}:{port}", pair.addr_b)),
        "the test's connection is not among the busiest flows: {screen}"
    );
    assert!(screen.contains("wrote "), "no summary: {screen}");

    // On a pipe: the start line and the summary, nothing else.
    let out = dir.path().join("pipe.parquet");
    let port = port + 1;
    let (rx, tx) = traffic(&pair, port);
    let run = Command::new(&bin)
        .args(["-o", out.to_str().unwrap(), "--duration", "3s"])
        .args(["--port", &port.to_string()])
        .output()
        .unwrap();
    tx.join().unwrap();
    rx.join().unwrap().expect("receive");
    assert!(run.status.success());
    let log = String::from_utf8_lossy(&run.stderr);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].starts_with("recording ") && lines[1].starts_with("wrote "),
        "{log}"
    );
    assert!(!log.contains("events/s"), "{log}");
}

#[test]
fn check_cost_measures_the_packet_rate_the_interfaces_count() {
    if !should_run("check_cost_measures_the_packet_rate_the_interfaces_count") {
        return;
    }
    // A steady stream: a bulk transfer through a 10 Mbit/s tbf, long enough to cover the
    // probe's loading and its 4 s window.
    let pair = Pair::new().expect("network namespaces");
    pair.shape_sender("10mbit", "16kb", "100kb").unwrap();
    let port = 45_620u16;
    let addr = pair.addr_b.clone();
    let l = traffic::listen_in(&pair.b, &addr, port).expect("listen");
    let rx = std::thread::spawn(move || traffic::receive(l, 1, 64 << 10, Duration::ZERO));
    let tx = spawn_in(&pair.a, move || {
        traffic::send(&addr, port, 16 << 20, 64 << 10)
    });
    std::thread::sleep(Duration::from_secs(1));
    // The interfaces' own rate, over a window inside the probe's run.
    let (a, b) = (pair.a.clone(), pair.b.clone());
    let counted = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        let n0 = link_counter(&a, "va", "tx_packets").unwrap()
            + link_counter(&b, "vb", "tx_packets").unwrap();
        let t0 = std::time::Instant::now();
        std::thread::sleep(Duration::from_secs(3));
        let n1 = link_counter(&a, "va", "tx_packets").unwrap()
            + link_counter(&b, "vb", "tx_packets").unwrap();
        (n1 - n0) as f64 / t0.elapsed().as_secs_f64()
    });
    let out = Command::new(binary().unwrap())
        .args(["check", "--cost", "4s", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let per_sec = counted.join().unwrap();
    tx.join().unwrap().expect("send");
    rx.join().unwrap().expect("receive");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cost = &doc["cost"];
    let stage = |name: &str| {
        cost["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stage"] == name)
            .unwrap_or_else(|| panic!("no {name} in {cost}"))
            .clone()
    };
    let driver = stage("tx_driver");
    let measured = driver["events_per_sec"].as_f64().unwrap();
    // Both ends' packets (data one way, ACKs the other) are the host's tx_driver events.
    // TCP sizes its skbs to the pacing rate: at 10 Mbit/s a few segments each, ~200 skbs/s.
    assert!(
        per_sec > 100.0,
        "the stream did not run: {per_sec:.0} packets/s"
    );
    assert!(
        (measured - per_sec).abs() <= per_sec * 0.25,
        "check --cost saw {measured:.0} tx_driver events/s, the interfaces sent {per_sec:.0} packets/s"
    );
    // The kernel's run time is counted: the programs ran, for a plausible time each.
    let ns = driver["ns_per_run"].as_f64().expect("run-time statistics");
    assert!(ns > 20.0 && ns < 100_000.0, "{ns} ns per run");
    assert!(driver["runs_per_sec"].as_f64().unwrap() >= measured * 0.9);
    assert!(cost["kernel_cpu"].as_f64().unwrap() > 0.0);
    assert!(
        cost["advice"].as_str().unwrap().starts_with("safe"),
        "{cost}"
    );
}

/// Bytes of the files in `dir` (0 when it does not exist yet).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}

#[test]
fn keep_rolls_the_oldest_segments_out_and_the_window_holds_on_disk() {
    if !should_run("keep_rolls_the_oldest_segments_out_and_the_window_holds_on_disk") {
        return;
    }
    // A steady transfer through a 20 Mbit/s tbf for the whole recording, recorded twice at
    // once: in a 256 KB window and in a 3 s window.
    let pair = Pair::new().expect("network namespaces");
    pair.shape_sender("20mbit", "16kb", "100kb").unwrap();
    let port = 45_630u16;
    let dir = tempfile::tempdir().unwrap();
    let (by_size, by_time) = (dir.path().join("size"), dir.path().join("time"));
    const KEEP: u64 = 256_000;
    let start = |out: &std::path::Path, keep: &str| {
        RecorderProcess::start(
            &[
                "-o",
                out.to_str().unwrap(),
                "--keep",
                keep,
                "--segment-secs",
                "1",
                "--port",
                &port.to_string(),
            ],
            &[],
        )
        .expect("recorder starts")
    };
    let size_rec = start(&by_size, "256K");
    let time_rec = start(&by_time, "3s");
    let addr = pair.addr_b.clone();
    let l = traffic::listen_in(&pair.b, &addr, port).expect("listen");
    let rx = std::thread::spawn(move || traffic::receive(l, 1, 64 << 10, Duration::ZERO));
    let tx = spawn_in(&pair.a, move || {
        traffic::send(&addr, port, 24 << 20, 64 << 10)
    });
    // Bytes on disk of the size window, every 20 ms while the traffic lasts.
    let mut largest_dir = 0u64;
    while !tx.is_finished() {
        largest_dir = largest_dir.max(dir_bytes(&by_size));
        std::thread::sleep(Duration::from_millis(20));
    }
    tx.join().unwrap().expect("send");
    rx.join().unwrap().expect("receive");
    let (code, size_log) = size_rec.stop(libc::SIGINT).unwrap();
    assert_eq!(code, 0, "{size_log}");
    let (code, time_log) = time_rec.stop(libc::SIGINT).unwrap();
    assert_eq!(code, 0, "{time_log}");

    let segments = |d: &std::path::Path| -> Vec<(u32, u64)> {
        let mut v: Vec<(u32, u64)> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let n = name
                    .strip_prefix("seg-")?
                    .strip_suffix(".parquet")?
                    .parse()
                    .ok()?;
                Some((n, e.metadata().ok()?.len()))
            })
            .collect();
        v.sort();
        v
    };
    let kept = segments(&by_size);
    let largest_segment = kept.iter().map(|s| s.1).max().unwrap();
    assert!(kept[0].0 > 0, "nothing rolled out: {kept:?}\n{size_log}");
    // What is left is the newest segments, none missing in between.
    assert!(kept.windows(2).all(|w| w[1].0 == w[0].0 + 1), "{kept:?}");
    assert!(
        largest_dir <= KEEP + largest_segment,
        "{largest_dir} bytes on disk, window {KEEP} + one segment of {largest_segment}"
    );
    assert!(
        size_log.contains(&format!("the {} oldest segment(s) rolled out", kept[0].0)),
        "{size_log}"
    );
    // The analyzer reads what is left, and says the recording starts late.
    let out = tcptape_e2e::analyzer::run(&[
        "report",
        "-q",
        "--format",
        "json",
        by_size.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let notes = report["notes"].to_string();
    assert!(notes.contains("rolled out of the --keep"), "{notes}");

    // The time window: what is left covers the last 3 s, give or take a segment.
    let kept = segments(&by_time);
    assert!(
        kept[0].0 > 0,
        "nothing rolled out of the 3 s window: {kept:?}"
    );
    let out = tcptape_e2e::analyzer::run(&["info", "--format", "json", by_time.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let span = info["duration_ns"].as_u64().unwrap();
    assert!(
        (2_000_000_000..=5_000_000_000).contains(&span),
        "the 3 s window keeps {span} ns"
    );
    assert!(
        info["status"].as_str().unwrap().contains("rolled out"),
        "{info}"
    );
}

#[test]
fn into_writes_a_hive_style_set_that_the_analyzer_reads() {
    if !should_run("into_writes_a_hive_style_set_that_the_analyzer_reads") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set");
    for _ in 0..2 {
        let out = Command::new(binary().unwrap())
            .args(["--into", set.to_str().unwrap(), "--duration", "1s", "-q"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Two recordings a second apart have two names.
        std::thread::sleep(Duration::from_millis(1100));
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let hosts: Vec<_> = std::fs::read_dir(&set)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        hosts,
        [std::ffi::OsString::from(format!("host={}", host.trim()))]
    );
    let dates: Vec<_> = std::fs::read_dir(set.join(&hosts[0]))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(dates.len(), 1);
    let name = dates[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with("date=20") && name.len() == "date=2026-12-07".len(),
        "{name}"
    );
    let files: Vec<_> = std::fs::read_dir(&dates[0]).unwrap().flatten().collect();
    assert_eq!(files.len(), 2, "{files:?}");
    let out = tcptape_e2e::analyzer::run(&["info", set.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("2 recordings"));
    let out =
        tcptape_e2e::analyzer::run(&["report", "-q", "--format", "json", set.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
