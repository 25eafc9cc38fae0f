//! `tcptape export --format perfetto` run as a process: the trace is valid JSON in the Chrome
//! trace-event format, every stage slice lasts the stage delta it shows (the delay the test set,
//! and the report's figures), tracks are named and slices on a track nest.

use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tcptape_common::record::Record;
use tcptape_common::synth::{write_file, Mix, SynthConfig};
use tcptape_common::{Recording, Stage};

fn tcptape(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tcptape"))
        .args(args)
        .output()
        .expect("tcptape runs")
}

/// `tcptape export REC --format perfetto -o TRACE`.
fn export_args<'a>(rec: &'a Path, trace: &'a Path) -> Vec<&'a str> {
    vec![
        "export",
        rec.to_str().unwrap(),
        "--format",
        "perfetto",
        "-o",
        trace.to_str().unwrap(),
    ]
}

/// A written trace, parsed.
fn read_trace(trace: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(trace).unwrap()).expect("the trace is valid JSON")
}

/// Exports `rec` with extra arguments and parses the trace.
fn export(rec: &Path, extra: &[&str]) -> Value {
    let trace = rec.with_extension("trace.json");
    let mut args = export_args(rec, &trace);
    args.extend(extra);
    let out = tcptape(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    read_trace(&trace)
}

/// The delay of each hop from the previous one, as the test sets them.
const DELAYS: &[(Stage, u64)] = &[
    (Stage::TxTcpXmit, 2_000),
    (Stage::TxDevQueue, 3_100),
    (Stage::TxQdiscEnq, 500),
    (Stage::TxQdiscDeq, 180_000),
    (Stage::TxDriver, 1_200),
    (Stage::RxDriver, 4_000),
    (Stage::RxNetif, 8_300),
    (Stage::RxIp, 900),
    (Stage::RxTcp, 1_500),
    (Stage::RxTcpEst, 2_200),
    (Stage::RxApp, 23_000_000),
];

fn fixed(dir: &Path) -> PathBuf {
    let path = dir.join("fixed.parquet");
    let cfg = SynthConfig::new(Mix::RequestResponse, 20_000, 7).with_fixed_delays(DELAYS);
    write_file(&path, cfg).unwrap();
    path
}

fn events(t: &Value) -> &Vec<Value> {
    t["traceEvents"].as_array().expect("traceEvents array")
}

/// Microseconds (a JSON number with three decimals) as integer nanoseconds.
fn ns(v: &Value) -> i64 {
    (v.as_f64().expect("a number") * 1000.0).round() as i64
}

/// Checks the fields the trace-event format requires of each phase.
fn check_format(t: &Value) {
    let mut named_pids = HashSet::new();
    let mut named_threads = HashSet::new();
    for e in events(t) {
        let ph = e["ph"].as_str().expect("ph");
        assert!(e["pid"].is_u64(), "pid: {e}");
        assert!(e["name"].is_string(), "name: {e}");
        match ph {
            "M" => {
                assert!(e["args"].is_object(), "{e}");
                match e["name"].as_str().unwrap() {
                    "process_name" => {
                        assert!(e["args"]["name"].is_string());
                        named_pids.insert(e["pid"].as_u64().unwrap());
                    }
                    "thread_name" => {
                        assert!(e["args"]["name"].is_string());
                        named_threads
                            .insert((e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap()));
                    }
                    "process_sort_index" => assert!(e["args"]["sort_index"].is_u64()),
                    "process_labels" => assert!(e["args"]["labels"].is_string()),
                    other => panic!("unexpected metadata {other}"),
                }
            }
            "X" => {
                assert!(e["ts"].is_number() && e["dur"].is_number(), "{e}");
                assert!(e["tid"].is_u64() && e["cat"].is_string(), "{e}");
                assert!(e["dur"].as_f64().unwrap() >= 0.0, "{e}");
            }
            "i" => {
                assert!(e["ts"].is_number() && e["tid"].is_u64(), "{e}");
                assert!(["t", "p", "g"].contains(&e["s"].as_str().unwrap()), "{e}");
            }
            "C" => {
                assert!(e["ts"].is_number(), "{e}");
                let args = e["args"].as_object().expect("counter args");
                assert!(
                    !args.is_empty() && args.values().all(Value::is_number),
                    "{e}"
                );
            }
            other => panic!("unexpected phase {other}: {e}"),
        }
    }
    for e in events(t) {
        let pid = e["pid"].as_u64().unwrap();
        assert!(named_pids.contains(&pid), "pid {pid} has no process_name");
        if matches!(e["ph"].as_str(), Some("X" | "i")) {
            let tid = e["tid"].as_u64().unwrap();
            assert!(
                named_threads.contains(&(pid, tid)),
                "({pid}, {tid}) unnamed"
            );
        }
    }
}

/// Journey slices and the stage slices inside each, by track.
fn check_nesting(t: &Value) {
    // (start, end, is a journey) per (pid, tid).
    type Slices = Vec<(i64, i64, bool)>;
    let mut by_track: BTreeMap<(u64, u64), Slices> = BTreeMap::new();
    for e in events(t).iter().filter(|e| e["ph"] == "X") {
        let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
        let ts = ns(&e["ts"]);
        by_track
            .entry(key)
            .or_default()
            .push((ts, ts + ns(&e["dur"]), e["cat"] == "journey"));
    }
    for slices in by_track.values_mut() {
        // Parents first at equal start.
        slices.sort_by_key(|&(a, b, journey)| (a, !journey, std::cmp::Reverse(b)));
        let mut parent: Option<(i64, i64)> = None;
        for &(a, b, journey) in slices.iter() {
            if journey {
                if let Some((_, pe)) = parent {
                    assert!(a >= pe, "journeys overlap on one track");
                }
                parent = Some((a, b));
            } else {
                let (pa, pe) = parent.expect("a stage slice inside a journey");
                assert!(a >= pa && b <= pe, "stage slice outside its journey");
            }
        }
    }
}

#[test]
fn every_stage_slice_lasts_the_delay_the_test_set() {
    let dir = tempfile::tempdir().unwrap();
    let rec = fixed(dir.path());
    let t = export(&rec, &["--limit", "0"]);
    check_format(&t);
    check_nesting(&t);
    let want: BTreeMap<&str, u64> = DELAYS.iter().map(|(s, d)| (s.name(), *d)).collect();
    let mut stage_slices = 0;
    for e in events(&t).iter().filter(|e| e["cat"] == "stage") {
        let dt = e["args"]["dt_ns"].as_i64().unwrap();
        assert_eq!(ns(&e["dur"]), dt, "{e}");
        let (from, to) = (
            e["args"]["from"].as_str().unwrap(),
            e["args"]["to"].as_str().unwrap(),
        );
        assert_eq!(e["name"].as_str().unwrap(), format!("{from}→{to}"));
        // Each hop's delay is fixed; the write → transmission one is set by the matching.
        if let Some(&d) = want.get(to) {
            if from != "tx_sendmsg" || to == "tx_tcp_xmit" {
                assert_eq!(dt as u64, d, "{e}");
            }
        }
        stage_slices += 1;
    }
    assert!(stage_slices > 10_000, "{stage_slices}");
    let retransmits = events(&t)
        .iter()
        .filter(|e| e["ph"] == "i" && e["name"] == "retransmit")
        .count();
    let recorded = Recording::open(&rec)
        .unwrap()
        .batches(None)
        .flat_map(|b| Record::from_batch(&b.unwrap()).unwrap())
        .filter(|r| r.kind == "retransmit")
        .count();
    assert!(recorded > 0);
    assert_eq!(retransmits, recorded);
    assert!(events(&t)
        .iter()
        .any(|e| e["ph"] == "C" && e["name"] == "cwnd" && e["args"]["cwnd"].is_u64()));
}

fn nearest_rank(sorted: &[i64], q: f64) -> i64 {
    let k = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[k - 1]
}

#[test]
fn stage_slices_are_the_packets_behind_the_reports_figures() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("bulk.parquet");
    write_file(&rec, SynthConfig::new(Mix::Bulk, 40_000, 3)).unwrap();
    let t = export(&rec, &["--limit", "0"]);
    check_format(&t);
    check_nesting(&t);
    let mut by_pair: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for e in events(&t).iter().filter(|e| e["cat"] == "stage") {
        assert_eq!(ns(&e["dur"]), e["args"]["dt_ns"].as_i64().unwrap());
        by_pair
            .entry((
                e["args"]["from"].as_str().unwrap().into(),
                e["args"]["to"].as_str().unwrap().into(),
            ))
            .or_default()
            .push(ns(&e["dur"]));
    }
    let out = tcptape(&["report", "--format", "json", rec.to_str().unwrap()]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["stages"].as_array().unwrap();
    assert_eq!(rows.len(), by_pair.len());
    for row in rows {
        let key = (
            row["from"].as_str().unwrap().to_string(),
            row["to"].as_str().unwrap().to_string(),
        );
        let v = by_pair.get_mut(&key).unwrap();
        v.sort_unstable();
        assert_eq!(row["count"].as_u64().unwrap(), v.len() as u64, "{key:?}");
        for (c, q) in [("p50_ns", 0.5), ("p99_ns", 0.99), ("max_ns", 1.0)] {
            assert_eq!(row[c].as_i64().unwrap(), nearest_rank(v, q), "{key:?} {c}");
        }
    }
}

#[test]
fn limit_and_sample_bound_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("bulk.parquet");
    write_file(&rec, SynthConfig::new(Mix::Bulk, 20_000, 6)).unwrap();
    let journeys = |t: &Value| events(t).iter().filter(|e| e["cat"] == "journey").count();
    let all = export(&rec, &["--limit", "0"]);
    let total = all["otherData"]["journeys_total"].as_u64().unwrap() as usize;
    assert_eq!(journeys(&all), total);
    let limited = export(&rec, &["--limit", "25"]);
    check_format(&limited);
    assert_eq!(journeys(&limited), 25);
    let sampled = export(&rec, &["--sample", "4", "--limit", "0"]);
    assert_eq!(journeys(&sampled), total.div_ceil(4));
    // With a limit, TCP events outside the exported journeys' time are left out.
    let last = events(&limited)
        .iter()
        .filter(|e| e["cat"] == "journey")
        .map(|e| ns(&e["ts"]) + ns(&e["dur"]))
        .max()
        .unwrap();
    assert!(events(&limited)
        .iter()
        .filter(|e| e["ph"] == "C")
        .all(|e| ns(&e["ts"]) <= last));
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.parquet");
    std::fs::write(&bad, b"not parquet at all").unwrap();
    let out = tcptape(&export_args(&bad, &dir.path().join("t.json")));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("not a Parquet file"), "{err}");
}

/// `tcptape export ... 2>&1 | head -1` with the reader gone before the summary: the summary is
/// dropped, and the export still succeeds. An error still ends with its documented exit code,
/// not a panic's.
#[test]
fn a_closed_stderr_does_not_fail_an_export() {
    let dir = tempfile::tempdir().unwrap();
    let rec = fixed(dir.path());
    let trace = dir.path().join("closed-stderr.trace.json");
    let run = |args: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tcptape"))
            .args(args)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("tcptape runs");
        drop(child.stderr.take()); // the pipe's only reader is gone before the first message
        child.wait().unwrap().code()
    };
    let code = run(&export_args(&rec, &trace));
    assert_eq!(code, Some(0), "the export failed with a closed stderr");
    let v = read_trace(&trace);
    assert!(!v["traceEvents"].as_array().unwrap().is_empty());
    let missing = dir.path().join("missing.parquet");
    assert_eq!(
        run(&export_args(&missing, &trace)),
        Some(2),
        "a missing input with a closed stderr"
    );
}

/// The bundled recordings of two hosts (a transfer each way between two guests).
fn two_host_samples() -> [PathBuf; 2] {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
    [
        dir.join("two-hosts-a.parquet"),
        dir.join("two-hosts-b.parquet"),
    ]
}

/// Where each data segment left one host (`tx_driver`) or reached the other (`rx_driver`, the
/// first hop of a receiver's journey) on the trace, by (sending host, seq).
fn edge_times(t: &Value, stage: &str, first_hop: bool) -> BTreeMap<(bool, u64), Vec<i64>> {
    let mut out: BTreeMap<(bool, u64), Vec<i64>> = BTreeMap::new();
    let evs = events(t);
    for e in evs.iter().filter(|e| e["cat"] == "journey") {
        let Some(seq) = e["args"]["seq"].as_u64() else {
            continue;
        };
        let (pid, tid, t0, t1) = (
            &e["pid"],
            &e["tid"],
            ns(&e["ts"]),
            ns(&e["ts"]) + ns(&e["dur"]),
        );
        // The stage slices of this journey: on its track, within its span.
        let hop = evs.iter().filter(|s| {
            s["cat"] == "stage" && &s["pid"] == pid && &s["tid"] == tid && {
                let ts = ns(&s["ts"]);
                ts >= t0 && ts <= t1
            }
        });
        let at = if first_hop {
            hop.filter(|s| s["args"]["from"] == stage && ns(&s["ts"]) == t0)
                .map(|s| ns(&s["ts"]))
                .next()
        } else {
            hop.filter(|s| s["args"]["to"] == stage)
                .map(|s| ns(&s["ts"]) + ns(&s["dur"]))
                .next()
        };
        if let Some(at) = at {
            // Host A's flows have pids below a million.
            let on_a = pid.as_u64().unwrap() < 1_000_000;
            out.entry((on_a, seq)).or_default().push(at);
        }
    }
    out
}

#[test]
fn two_hosts_share_one_time_line_aligned_by_the_traffic() {
    let [a, b] = two_host_samples();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("two.json");
    let out = tcptape(&[
        "export",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--limit",
        "0",
        "-o",
        trace.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = read_trace(&trace);
    check_format(&t);
    check_nesting(&t);
    let hosts = t["otherData"]["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2);
    assert_eq!(
        (hosts[0]["host"].as_str(), hosts[1]["host"].as_str()),
        (Some("host-a"), Some("host-b"))
    );
    assert_eq!(hosts[1]["clock"], "traffic");
    // Every process is named after its host.
    for e in events(&t).iter().filter(|e| e["name"] == "process_name") {
        let host = if e["pid"].as_u64().unwrap() < 1_000_000 {
            "host-a"
        } else {
            "host-b"
        };
        assert!(e["args"]["name"].as_str().unwrap().starts_with(host), "{e}");
    }
    // The report's wire, A to B.
    let rep = tcptape(&[
        "report",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--format",
        "json",
        "-q",
    ]);
    assert!(rep.status.success());
    let rep: Value = serde_json::from_slice(&rep.stdout).unwrap();
    let wire = &rep["between_hosts"][0]["wire"][0];
    assert_eq!(
        (wire["from_host"].as_str(), wire["to_host"].as_str()),
        (Some("host-a"), Some("host-b"))
    );
    // On the trace, each segment sent once by A and received once by B arrives after it left,
    // and the fastest took exactly the report's shortest wire time.
    let sent = edge_times(&t, "tx_driver", false);
    let arrived = edge_times(&t, "rx_driver", true);
    let mut wires = Vec::new();
    for ((on_a, seq), tx) in &sent {
        if let (true, [tx], Some([rx])) = (
            *on_a,
            tx.as_slice(),
            arrived.get(&(false, *seq)).map(Vec::as_slice),
        ) {
            wires.push(rx - tx);
        }
    }
    assert!(wires.len() >= 20, "only {} segments joined", wires.len());
    assert!(
        wires.iter().all(|&w| w >= 0),
        "a segment arrived before it left: {wires:?}"
    );
    assert_eq!(
        *wires.iter().min().unwrap(),
        wire["min_ns"].as_i64().unwrap(),
        "the trace's fastest segment is the report's"
    );
}

#[test]
fn pcapng_refuses_what_has_no_packet_headers_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.pcapng");
    let out = out.to_str().unwrap();
    // A version 1 recording: no TCP headers to rebuild the packets from.
    let v1 = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/bulk-loss.parquet");
    let o = tcptape(&["export", v1, "--format", "pcapng", "-o", out]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("schema version 2"), "{err}");
    assert!(!Path::new(out).exists(), "no file is left behind");
    // A stage whose events are not packets.
    let rec = fixed(dir.path());
    let o = tcptape(&[
        "export",
        rec.to_str().unwrap(),
        "--format",
        "pcapng",
        "--stage",
        "tx_sendmsg",
        "-o",
        out,
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--stage tx_sendmsg") && err.contains("tx_driver"),
        "{err}"
    );
}
