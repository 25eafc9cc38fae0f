//! `tcptape report` run as a process on synthetic recordings whose per-stage delays the test
//! sets, and on bad input.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tcptape_common::synth::{write_file, write_file_with_meta, Mix, SynthConfig};
use tcptape_common::Stage;

fn tcptape(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tcptape"))
        .args(args)
        .output()
        .expect("tcptape runs")
}

fn json_report(args: &[&str]) -> Value {
    let mut all = vec!["report", "--format", "json"];
    all.extend(args);
    let out = tcptape(&all);
    assert!(
        out.status.success(),
        "tcptape {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
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

fn fixed(dir: &Path, name: &str, events: u64, seed: u64) -> PathBuf {
    let path = dir.join(name);
    let cfg = SynthConfig::new(Mix::RequestResponse, events, seed).with_fixed_delays(DELAYS);
    write_file(&path, cfg).expect("synthetic recording written");
    path
}

fn stage_row<'a>(report: &'a Value, from: &str, to: &str) -> &'a Value {
    report["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .find(|r| r["from"] == from && r["to"] == to)
        .unwrap_or_else(|| panic!("no row {from} → {to} in {}", report["stages"]))
}

#[test]
fn fixed_delays_give_exactly_those_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let rec = fixed(dir.path(), "fixed.parquet", 20_000, 7);
    let r = json_report(&[rec.to_str().unwrap()]);
    assert_eq!(r["schema"], 1);
    let mut prev = Stage::TxSendmsg;
    for &(stage, delay) in DELAYS {
        let row = stage_row(&r, prev.name(), stage.name());
        assert!(row["count"].as_u64().unwrap() > 100, "{row}");
        for p in ["p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"] {
            assert_eq!(row[p].as_u64(), Some(delay), "{prev} → {stage} {p}: {row}");
        }
        assert_eq!(row["mean_ns"].as_f64(), Some(delay as f64), "{row}");
        prev = stage;
    }
    // Whole journeys: from the application's write to its read.
    let total: u64 = DELAYS.iter().map(|d| d.1).sum();
    let e2e = r["end_to_end"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["from"] == "tx_sendmsg" && x["to"] == "rx_app")
        .expect("a tx_sendmsg → rx_app span");
    assert_eq!(e2e["p50_ns"].as_u64(), Some(total));
    assert_eq!(e2e["max_ns"].as_u64(), Some(total));
    let j = &r["journeys"];
    assert!(j["complete"].as_u64().unwrap() > 100);
    assert_eq!(
        j["complete"].as_u64().unwrap() + j["incomplete"].as_u64().unwrap(),
        j["total"].as_u64().unwrap()
    );
    // Every retransmission in the synthetic traffic is one segment of 512 bytes.
    let rt = &r["retransmits"];
    assert_eq!(rt["segments"], rt["attempts"]);
    assert!(rt["segments"].as_u64().unwrap() > 0);
}

#[test]
fn a_transmitted_clone_joins_its_tx_tcp_xmit() {
    // A real kernel records tx_tcp_xmit on the write-queue skb and sends a clone of it: every
    // later hop has another packet id. The journeys must come out as when all hops share one.
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig::new(Mix::RequestResponse, 20_000, 11).with_fixed_delays(DELAYS);
    let (one_id, clone) = (
        dir.path().join("one.parquet"),
        dir.path().join("clone.parquet"),
    );
    write_file(&one_id, cfg.clone()).unwrap();
    write_file(
        &clone,
        SynthConfig {
            xmit_on_write_queue: true,
            ..cfg
        },
    )
    .unwrap();
    let (a, b) = (
        json_report(&[one_id.to_str().unwrap()]),
        json_report(&[clone.to_str().unwrap()]),
    );
    assert!(
        b["journeys"]["complete"].as_u64().unwrap() > 1_000,
        "{}",
        b["journeys"]
    );
    let row = stage_row(&b, "tx_tcp_xmit", "tx_dev_queue");
    assert_eq!(row["max_ns"].as_u64(), Some(3_100), "{row}");
    for section in [
        "journeys",
        "stages",
        "end_to_end",
        "stages_per_flow",
        "stages_per_cpu",
        "stages_over_time",
    ] {
        assert_eq!(a[section], b[section], "{section}");
    }
}

#[test]
fn a_missing_stage_joins_its_neighbours() {
    // Recordings never assume which stages exist: drop rx_ip and rx_tcp (no fentry/kprobe).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-ip.parquet");
    let mut cfg = SynthConfig::new(Mix::RequestResponse, 10_000, 3).with_fixed_delays(DELAYS);
    cfg.hops
        .retain(|(s, _)| !matches!(s, Stage::RxIp | Stage::RxTcp));
    write_file(&path, cfg).unwrap();
    let r = json_report(&[path.to_str().unwrap()]);
    let row = stage_row(&r, "rx_netif", "rx_tcp_est");
    assert_eq!(row["p50_ns"].as_u64(), Some(2_200));
    assert!(r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["from"] != "rx_ip" && x["to"] != "rx_ip"));
}

#[test]
fn stage_and_time_selection() {
    let dir = tempfile::tempdir().unwrap();
    let rec = fixed(dir.path(), "sel.parquet", 8_000, 11);
    let r = json_report(&[rec.to_str().unwrap(), "--stage", "rx_app"]);
    let rows = r["stages"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["from"], "rx_tcp_est");
    let all = json_report(&[rec.to_str().unwrap()]);
    let early = json_report(&[rec.to_str().unwrap(), "--to", "100ms"]);
    let n = |v: &Value| {
        stage_row(v, "rx_tcp_est", "rx_app")["count"]
            .as_u64()
            .unwrap()
    };
    assert!(n(&early) < n(&all), "{} vs {}", n(&early), n(&all));
    let none = json_report(&[rec.to_str().unwrap(), "--port", "1"]);
    assert_eq!(none["stages"].as_array().unwrap().len(), 0);
    assert_eq!(none["journeys"]["total"], 0);
}

#[test]
fn table_markdown_and_html_formats() {
    let dir = tempfile::tempdir().unwrap();
    let rec = fixed(dir.path(), "fmt.parquet", 5_000, 5);
    let rec = rec.to_str().unwrap();
    let out = tcptape(&["report", rec]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("rx_tcp_est → rx_app"), "{text}");
    assert!(text.contains("23.0ms"), "{text}");
    let out = tcptape(&["report", "--format", "markdown", rec]);
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.contains("| rx_tcp_est → rx_app |"), "{md}");
    let html = dir.path().join("r.html");
    let out = tcptape(&[
        "report",
        "--format",
        "html",
        "-o",
        html.to_str().unwrap(),
        rec,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg"));
    // The drawing of the path leads, the distributions follow, the tables come last.
    let at = |s: &str| page.find(s).unwrap_or_else(|| panic!("no {s} in the page"));
    assert!(at("id=\"path\"") < at("Latency per stage") && at("Latency per stage") < at("Tables"));
    assert!(
        page.contains("data-json=\"/stages/"),
        "no figure of the drawing"
    );
    assert!(page.contains("class=\"hist\""), "no histogram");
    assert!(!page.contains("<script"));
}

fn assert_input_error(args: &[&str], needle: &str) {
    let out = tcptape(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{err}");
}

#[test]
fn bad_input_gives_one_line_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.parquet");
    std::fs::write(&junk, b"this is not parquet at all").unwrap();
    assert_input_error(&["report", junk.to_str().unwrap()], "not a Parquet file");
    // A real recording cut short.
    let rec = fixed(dir.path(), "cut.parquet", 2_000, 1);
    let bytes = std::fs::read(&rec).unwrap();
    let cut = dir.path().join("cut2.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert_input_error(&["report", cut.to_str().unwrap()], "truncated");
    // Missing file; a pattern that matches nothing.
    assert_input_error(&["report", "/nonexistent/rec.parquet"], "cannot read");
    let pattern = format!("{}/*.nothing", dir.path().display());
    assert_input_error(&["report", &pattern], "no recording matches");
    // Parquet, but not a tcptape recording.
    let foreign = dir.path().join("foreign.parquet");
    write_foreign(&foreign);
    assert_input_error(
        &["report", foreign.to_str().unwrap()],
        "not a tcptape recording",
    );
    // One good and one bad input: the bad one is named.
    assert_input_error(
        &["report", rec.to_str().unwrap(), junk.to_str().unwrap()],
        "junk.parquet",
    );
    // A bad flow.
    let out = tcptape(&["report", "--flow", "nope", rec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

fn write_foreign(path: &Path) {
    use arrow_array::{Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
    )
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// Two machines with one host name (a default name, a cloned image) have two clocks: their
/// recordings are two hosts, told apart by their boot ids, never one timeline.
#[test]
fn one_host_name_with_two_boots_is_two_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for boot in ["aaaaaaaa-1111", "bbbbbbbb-2222"] {
        let p = dir.path().join(format!("{boot}.parquet"));
        write_file_with_meta(&p, SynthConfig::new(Mix::Bulk, 2000, 3), |m| {
            m.hostname = "(none)".into();
            m.boot_id = boot.into();
        })
        .unwrap();
        paths.push(p.to_str().unwrap().to_string());
    }
    let mut args = vec!["-q"];
    args.extend(paths.iter().map(String::as_str));
    let r = json_report(&args);
    let hosts: Vec<&str> = r["hosts"]
        .as_array()
        .expect("one report per host")
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["(none) (boot aaaaaaaa)", "(none) (boot bbbbbbbb)"]);
    for h in r["hosts"].as_array().unwrap() {
        assert_eq!(h["events"], 2000, "{}", h["host"]);
    }
}

/// The table format fits 120 columns, names flows by ids whose legend gives them in full, and
/// `--wide` keeps the flows in every row.
#[test]
fn the_table_fits_120_columns_and_wide_keeps_the_flows() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
    for sample in ["bulk-loss.parquet", "rr-slow-reader.parquet"] {
        let path = dir.join(sample);
        let out = Command::new(env!("CARGO_BIN_EXE_tcptape"))
            .args(["report", "-q"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let wide_lines: Vec<&str> = text.lines().filter(|l| l.chars().count() > 120).collect();
        assert!(wide_lines.is_empty(), "{sample}: {wide_lines:#?}");
        // Every id in a table row has its legend line with the flow in full.
        let legend: std::collections::HashMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("  f"))
            .filter_map(|l| l.split_once(' '))
            .map(|(id, flow)| (id, flow.trim()))
            .collect();
        assert!(!legend.is_empty(), "{sample}: no legend");
        let is_id = |w: &str| w.len() > 1 && w[1..].chars().all(|c| c.is_ascii_digit());
        for l in text.lines().filter(|l| {
            l.starts_with("│ f") && is_id(l[4..].split_whitespace().next().unwrap_or(""))
        }) {
            let id = l[4..]
                .split_whitespace()
                .next()
                .unwrap()
                .trim_start_matches('f');
            let flow = legend
                .get(id)
                .unwrap_or_else(|| panic!("f{id} has no legend: {l}"));
            assert!(flow.contains(':') && flow.contains('-'), "{flow}");
        }
        let wide = Command::new(env!("CARGO_BIN_EXE_tcptape"))
            .args(["report", "-q", "--wide"])
            .arg(&path)
            .output()
            .unwrap();
        let wide = String::from_utf8(wide.stdout).unwrap();
        let some_flow = legend.values().next().unwrap();
        assert!(
            wide.lines()
                .any(|l| l.starts_with("│ ") && l.contains(some_flow)),
            "{sample}: --wide names the flows in the rows"
        );
    }
}

#[test]
fn a_recording_set_is_reported_per_host_and_ranked() {
    // Three hosts in a Hive-style set: each host's queue (tx_qdisc_enq → tx_qdisc_deq) waits a
    // fixed time, so their ranking is known: c (9 ms), a (5 ms), b (1 ms).
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set");
    let mut one_by_one = Vec::new();
    for (host, queue_ns, seed) in [
        ("a", 5_000_000u64, 1),
        ("b", 1_000_000, 2),
        ("c", 9_000_000, 3),
    ] {
        let d = set.join(format!("host={host}")).join("date=2026-12-07");
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("tcptape-20261207T000000Z.parquet");
        let mut cfg = SynthConfig::new(Mix::Bulk, 5_000, seed)
            .with_fixed_delays(&[(Stage::TxQdiscDeq, queue_ns)]);
        cfg.hostname = Some(host.to_string());
        write_file(&path, cfg).unwrap();
        one_by_one.push((host, json_report(&[path.to_str().unwrap()])));
    }
    let r = json_report(&[set.to_str().unwrap()]);
    let hosts = r["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 3);
    // Each host's report is the report of its recording alone.
    for (host, alone) in &one_by_one {
        let h = hosts.iter().find(|h| h["host"] == *host).unwrap();
        assert_eq!(h["stages"], alone["stages"], "{host}");
        assert_eq!(h["events"], alone["events"], "{host}");
    }
    let ranked: Vec<(&str, &str, u64)> = r["hosts_ranked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap(),
                h["to"].as_str().unwrap(),
                h["p50_ns"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ranked,
        [
            ("c", "tx_qdisc_deq", 9_000_000),
            ("a", "tx_qdisc_deq", 5_000_000),
            ("b", "tx_qdisc_deq", 1_000_000)
        ]
    );
    // Pooled over the hosts: exact counts and mean, each percentile within its bin (2.33 %)
    // above the nearest-rank value of all hosts' packets together.
    let pooled = r["pooled"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["from"] == "tx_qdisc_enq" && l["to"] == "tx_qdisc_deq")
        .unwrap()
        .clone();
    let mut groups: Vec<(u64, u64)> = ["b", "a", "c"]
        .iter()
        .zip([1_000_000u64, 5_000_000, 9_000_000])
        .map(|(h, d)| {
            let host = hosts.iter().find(|x| x["host"] == *h).unwrap();
            (
                d,
                stage_row(host, "tx_qdisc_enq", "tx_qdisc_deq")["count"]
                    .as_u64()
                    .unwrap(),
            )
        })
        .collect();
    groups.sort();
    let n: u64 = groups.iter().map(|g| g.1).sum();
    assert_eq!(pooled["count"].as_u64(), Some(n));
    let sum: u64 = groups.iter().map(|(d, c)| d * c).sum();
    let mean = pooled["mean_ns"].as_f64().unwrap();
    assert!((mean - sum as f64 / n as f64).abs() < 1e-6 * mean, "{mean}");
    for (q, key) in [(0.5, "p50_ns"), (0.9, "p90_ns"), (0.99, "p99_ns")] {
        let rank = (n as f64 * q).ceil() as u64;
        let mut seen = 0;
        let exact = groups
            .iter()
            .find(|(_, c)| {
                seen += c;
                seen >= rank
            })
            .unwrap()
            .0;
        let shown = pooled[key].as_u64().unwrap();
        assert!(
            shown >= exact && shown as f64 <= exact as f64 * 1.0234,
            "{key}: {shown} for {exact}"
        );
    }
    assert_eq!(pooled["max_ns"].as_u64(), Some(9_000_000));
    // The table says the same, and `info` lists the set.
    let text = String::from_utf8(tcptape(&["report", "-q", set.to_str().unwrap()]).stdout).unwrap();
    assert!(
        text.contains("Hosts, by the stage where their packets spend most time"),
        "{text}"
    );
    let info = tcptape(&["info", set.to_str().unwrap()]);
    assert!(info.status.success());
    let info = String::from_utf8(info.stdout).unwrap();
    assert!(info.starts_with("3 recordings"), "{info}");
    // Two sets compare host by host: the set against itself changes nothing.
    let d = tcptape(&[
        "diff",
        "--base",
        set.to_str().unwrap(),
        "--candidate",
        set.to_str().unwrap(),
    ]);
    let text = String::from_utf8(d.stdout).unwrap();
    assert_eq!(d.status.code(), Some(0), "{text}");
    for h in ["a", "b", "c"] {
        assert!(text.contains(&format!("══ host {h} ")), "{text}");
    }
    // A directory without recordings is refused in one line.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_input_error(
        &["report", empty.to_str().unwrap()],
        "no recording in this directory",
    );
}
