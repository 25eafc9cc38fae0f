//! `tcptape replay` run as a process: time order, JSON lines that parse back to the recorded
//! rows, filters, journeys whose hop times are the report's stage deltas, pacing, and a closed
//! pipe.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tcptape_common::encode::{BatchEncoder, EncodeContext};
use tcptape_common::record::Record;
use tcptape_common::synth::{
    drop_reason_names, synth_meta, write_file, Mix, SynthConfig, SynthStream,
};
use tcptape_common::Recording;

fn tcptape(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tcptape"))
        .args(args)
        .output()
        .expect("tcptape runs")
}

fn ok(args: &[&str]) -> String {
    let out = tcptape(args);
    assert!(
        out.status.success(),
        "tcptape {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Every row of a recording, in file order.
fn rows(path: &Path) -> Vec<Record> {
    let rec = Recording::open(path).unwrap();
    rec.batches(None)
        .flat_map(|b| Record::from_batch(&b.unwrap()).unwrap())
        .collect()
}

/// A synthetic recording whose rows are written slightly out of time order, as a ring buffer
/// shared by several CPUs delivers them: every pair of neighbours swapped.
fn out_of_order(dir: &Path, events: u64) -> PathBuf {
    let cfg = SynthConfig::new(Mix::Bulk, events, 3);
    let mut meta = synth_meta(&cfg);
    let mut enc = BatchEncoder::new(EncodeContext::new(drop_reason_names()));
    let mut batches = Vec::new();
    for mut b in SynthStream::new(cfg, 4096) {
        meta.end_ns = meta.end_ns.max(b.last().map_or(0, |e| e.ts_ns));
        for pair in b.chunks_mut(2) {
            pair.reverse();
        }
        batches.push(enc.encode(&b));
    }
    meta.segment.last = true;
    let path = dir.join("disorder.parquet");
    tcptape_common::parquet_file::write_file(&path, &batches, &meta).unwrap();
    path
}

#[test]
fn jsonl_is_the_recorded_rows_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = out_of_order(dir.path(), 30_000);
    let file_rows = rows(&path);
    assert!(
        file_rows.windows(2).any(|w| w[0].ts_ns > w[1].ts_ns),
        "the file is out of order"
    );
    let out = ok(&["replay", "--format", "jsonl", path.to_str().unwrap()]);
    let replayed: Vec<Record> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a Record per line"))
        .collect();
    let mut want = file_rows.clone();
    want.sort_by_key(|r| r.ts_ns); // stable: equal times keep the file's order
    assert_eq!(replayed.len(), file_rows.len());
    assert_eq!(replayed, want);
}

#[test]
fn text_is_one_line_per_event_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = out_of_order(dir.path(), 20_000);
    let out = ok(&["replay", path.to_str().unwrap()]);
    let times: Vec<f64> = out
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(times.len(), 20_000);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "not in time order");
    let sendmsg = out.lines().find(|l| l.contains(" tx_sendmsg ")).unwrap();
    assert!(sendmsg.contains("10.200.0.1:40000 → 10.200.0.2:5201") || sendmsg.contains(" → "));
    for field in ["skb=0x", "sock=0x", "pid=", "comm=", "len=", "seq="] {
        assert!(sendmsg.contains(field), "{field} in {sendmsg}");
    }
    let sample = out.lines().find(|l| l.contains(" tcp_sample ")).unwrap();
    for field in ["cwnd=", "srtt_us=", "snd_wnd="] {
        assert!(sample.contains(field), "{field} in {sample}");
    }
}

#[test]
fn filters_select_by_port_flow_stage_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.parquet");
    write_file(&path, SynthConfig::new(Mix::Bulk, 30_000, 5)).unwrap();
    let all = rows(&path);
    let start = Recording::open(&path).unwrap().meta().start_ns;
    let p = path.to_str().unwrap();
    let parse = |out: String| -> Vec<Record> {
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };

    let port = parse(ok(&["replay", "--format", "jsonl", "--port", "40007", p]));
    let want: Vec<&Record> = all
        .iter()
        .filter(|r| r.sport == Some(40007) || r.dport == Some(40007))
        .collect();
    assert!(!want.is_empty());
    assert_eq!(port.iter().collect::<Vec<_>>(), want);

    // A flow matches both directions.
    let flow = parse(ok(&[
        "replay",
        "--format",
        "jsonl",
        "--flow",
        "10.200.0.2:5201-10.200.0.1:40014",
        p,
    ]));
    let want: Vec<&Record> = all.iter().filter(|r| r.sport == Some(40014)).collect();
    assert!(!want.is_empty());
    assert_eq!(flow.iter().collect::<Vec<_>>(), want);

    let stage = parse(ok(&[
        "replay",
        "--format",
        "jsonl",
        "--stage",
        "retransmit",
        "--stage",
        "drop",
        p,
    ]));
    let want: Vec<&Record> = all
        .iter()
        .filter(|r| r.kind == "retransmit" || r.kind == "drop")
        .collect();
    assert!(!want.is_empty());
    assert_eq!(stage.iter().collect::<Vec<_>>(), want);

    let window = parse(ok(&[
        "replay", "--format", "jsonl", "--from", "10ms", "--to", "20ms", p,
    ]));
    let want: Vec<&Record> = all
        .iter()
        .filter(|r| r.ts_ns >= start + 10_000_000 && r.ts_ns < start + 20_000_000)
        .collect();
    assert!(!want.is_empty());
    assert_eq!(window.iter().collect::<Vec<_>>(), want);
}

/// Nearest-rank percentile, the report's method.
fn nearest_rank(sorted: &[i64], q: f64) -> i64 {
    let k = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[k - 1]
}

#[test]
fn journey_hop_times_are_the_reports_stage_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.parquet");
    write_file(&path, SynthConfig::new(Mix::Bulk, 40_000, 9)).unwrap();
    let p = path.to_str().unwrap();
    let out = ok(&["replay", "--journeys", "--format", "jsonl", p]);
    let mut deltas: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    let mut first_times = Vec::new();
    for line in out.lines() {
        let j: Value = serde_json::from_str(line).unwrap();
        let hops = j["hops"].as_array().unwrap();
        first_times.push(hops[0]["ts_ns"].as_u64().unwrap());
        for w in hops.windows(2) {
            let dt = w[1]["dt_ns"]
                .as_i64()
                .expect("every later hop has its delta");
            // The delta is the time between the two hops printed.
            assert_eq!(
                dt,
                w[1]["ts_ns"].as_i64().unwrap() - w[0]["ts_ns"].as_i64().unwrap()
            );
            deltas
                .entry((
                    w[0]["stage"].as_str().unwrap().into(),
                    w[1]["stage"].as_str().unwrap().into(),
                ))
                .or_default()
                .push(dt);
        }
    }
    assert!(first_times.windows(2).all(|w| w[0] <= w[1]));
    let report: Value = serde_json::from_str(&ok(&["report", "--format", "json", p])).unwrap();
    let rows = report["stages"].as_array().unwrap();
    assert_eq!(rows.len(), deltas.len());
    for row in rows {
        let key = (
            row["from"].as_str().unwrap().to_string(),
            row["to"].as_str().unwrap().to_string(),
        );
        let v = deltas.get_mut(&key).unwrap_or_else(|| panic!("{key:?}"));
        v.sort_unstable();
        assert_eq!(row["count"].as_u64().unwrap(), v.len() as u64, "{key:?}");
        for (col, q) in [
            ("p50_ns", 0.5),
            ("p90_ns", 0.9),
            ("p99_ns", 0.99),
            ("p999_ns", 0.999),
            ("max_ns", 1.0),
        ] {
            assert_eq!(
                row[col].as_i64().unwrap(),
                nearest_rank(v, q),
                "{key:?} {col}"
            );
        }
    }
    // The text form prints the same deltas, to the nanosecond.
    let text = ok(&["replay", "--journeys", p]);
    let first = text.lines().nth(2).unwrap();
    let first_json: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let dt = first_json["hops"][1]["dt_ns"].as_i64().unwrap();
    let shown = first.split_whitespace().last().unwrap();
    let ns = |s: &str| -> i64 {
        let s = s.trim_start_matches('+');
        for (unit, mult) in [("ns", 1.0), ("µs", 1e3), ("ms", 1e6), ("s", 1e9)] {
            if let Some(v) = s.strip_suffix(unit) {
                return (v.parse::<f64>().unwrap() * mult).round() as i64;
            }
        }
        panic!("{s}")
    };
    assert_eq!(ns(shown), dt, "{first}");
}

#[test]
fn speed_1_keeps_the_recorded_pace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.parquet");
    write_file(&path, SynthConfig::new(Mix::Bulk, 20_000, 2)).unwrap();
    let p = path.to_str().unwrap();
    let all = rows(&path);
    let first = all.iter().map(|r| r.ts_ns).min().unwrap();
    let last = all.iter().map(|r| r.ts_ns).max().unwrap();
    let span = Duration::from_nanos(last - first);
    assert!(span > Duration::from_millis(20), "{span:?}");
    let timed = |speed: &str| {
        let t = Instant::now();
        let out = tcptape(&["replay", "--format", "jsonl", "--speed", speed, p]);
        assert!(out.status.success());
        assert_eq!(
            out.stdout.iter().filter(|b| **b == b'\n').count(),
            all.len()
        );
        t.elapsed()
    };
    let at_1 = timed("1");
    assert!(
        at_1 >= span,
        "--speed 1 took {at_1:?} for {span:?} of events"
    );
    let at_half = timed("0.5");
    assert!(at_half >= span * 2, "--speed 0.5 took {at_half:?}");
    let out = tcptape(&["replay", "--speed", "0", p]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_closed_pipe_ends_quietly_with_success() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.parquet");
    write_file(&path, SynthConfig::new(Mix::Bulk, 100_000, 4)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tcptape"))
        .args(["replay", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().contains("state"));
    drop(lines); // like `| head -1`
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.parquet");
    std::fs::write(&bad, b"PAR1\x00\x01garbage").unwrap();
    for args in [
        vec!["replay", bad.to_str().unwrap()],
        vec!["replay", "--journeys", bad.to_str().unwrap()],
        vec!["replay", "/nonexistent.parquet"],
    ] {
        let out = tcptape(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.starts_with("tcptape: "), "{err}");
    }
}
