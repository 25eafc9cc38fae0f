//! `tcptape diff` run as a process on synthetic recordings whose per-stage delays the test
//! sets: a stage slowed on purpose must be flagged alone, the same scenario recorded twice must
//! not be, and the exit codes must be the documented ones.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tcptape_common::encode::{BatchEncoder, EncodeContext};
use tcptape_common::synth::{
    drop_reason_names, synth_meta, write_file, Delay, Mix, SynthConfig, SynthStream,
};
use tcptape_common::{RecordingMeta, Stage};

const EVENTS: u64 = 120_000;

fn tcptape(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tcptape"))
        .args(args)
        .output()
        .expect("tcptape runs")
}

fn synth(dir: &Path, name: &str, cfg: SynthConfig) -> PathBuf {
    let path = dir.join(name);
    write_file(&path, cfg).expect("synthetic recording written");
    path
}

/// The default bulk scenario with the median of one hop's delay scaled by `factor`.
fn scenario(seed: u64, slowed: Option<(Stage, f64)>) -> SynthConfig {
    let mut cfg = SynthConfig::new(Mix::Bulk, EVENTS, seed);
    if let Some((stage, factor)) = slowed {
        let hop = cfg.hops.iter_mut().find(|h| h.0 == stage).expect("hop");
        let Delay::LogNormal { median_ns, sigma } = hop.1 else {
            panic!("the bulk scenario's {stage} delay is log-normal");
        };
        hop.1 = Delay::LogNormal {
            median_ns: (median_ns as f64 * factor) as u64,
            sigma,
        };
    }
    cfg
}

/// Runs `diff --format json` with extra arguments; returns the exit code and the JSON.
fn diff_json(base: &Path, cand: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec![
        "diff",
        "--format",
        "json",
        base.to_str().unwrap(),
        cand.to_str().unwrap(),
    ];
    args.extend(extra);
    let out = tcptape(&args);
    let code = out.status.code().expect("exit code");
    assert!(
        (0..=3).contains(&code) && code != 2,
        "tcptape {args:?} exited {code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, serde_json::from_slice(&out.stdout).expect("JSON"))
}

fn verdicts(d: &Value, section: &str) -> Vec<(String, String)> {
    d[section]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                format!(
                    "{}→{}",
                    r["from"].as_str().unwrap(),
                    r["to"].as_str().unwrap()
                ),
                r["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn failed_rows(d: &Value) -> Vec<String> {
    d["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["failed"] == true)
        .map(|c| c["row"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_stage_slowed_by_20_percent_is_flagged_and_only_it() {
    let dir = tempfile::tempdir().unwrap();
    let slowed = (Stage::TxQdiscDeq, 1.2);
    let base = synth(dir.path(), "base.parquet", scenario(11, None));
    let cand = synth(dir.path(), "cand.parquet", scenario(12, Some(slowed)));
    let pair = "tx_qdisc_enq→tx_qdisc_deq";

    let (code, d) = diff_json(&base, &cand, &[]);
    let v = verdicts(&d, "stages");
    assert!(v.len() >= 10, "{v:?}");
    let changed: Vec<&str> = v
        .iter()
        .filter(|(_, verdict)| verdict == "slower" || verdict == "faster")
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(changed, [pair], "{v:?}");
    assert!(
        v.iter()
            .filter(|(_, verdict)| verdict == "no_change")
            .count()
            >= 9,
        "the other stages are compared and unchanged: {v:?}"
    );
    let row = d["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["to"] == "tx_qdisc_deq")
        .unwrap();
    let rel = row["changes"]["p50_ns"]["rel"].as_f64().unwrap();
    assert!((rel - 0.2).abs() < 0.05, "median shift {rel}");
    assert!(row["test"]["p_value"].as_f64().unwrap() < 1e-6, "{row}");
    // 20% is below the default failure bar (30%): found, shown, not failed.
    assert_eq!(code, 0, "{}", d["regressions"]);
    assert_eq!(d["regression"], false);
    // With a lower bar it fails, on that stage (and on the whole journey, which contains it).
    let (code, d) = diff_json(&base, &cand, &["--fail-effect", "10%"]);
    assert_eq!(code, 1);
    let regressions: Vec<&str> = d["regressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .filter(|r| !r.starts_with("end to end"))
        .collect();
    assert_eq!(regressions.len(), 1, "{regressions:?}");
    assert!(regressions[0].starts_with(pair), "{regressions:?}");

    // A threshold on the slowed pair fails; the same threshold on an unchanged pair does not.
    let (code, d) = diff_json(
        &base,
        &cand,
        &["--fail-on", "tx_qdisc_enq->tx_qdisc_deq:p50>+10%"],
    );
    assert_eq!(code, 1);
    assert_eq!(failed_rows(&d), [pair]);
    let (code, d) = diff_json(
        &base,
        &cand,
        &["--fail-on", "tx_qdisc_deq->tx_driver:p50>+10%"],
    );
    assert_eq!(code, 0, "{}", d["thresholds"]);
    assert!(failed_rows(&d).is_empty());
    // Globally, among the stage rows only the slowed pair crosses (the whole journey, which
    // contains it, may cross too).
    let (code, d) = diff_json(&base, &cand, &["--fail-on", "p50>+10%"]);
    assert_eq!(code, 1);
    let stage_rows: Vec<String> = failed_rows(&d)
        .into_iter()
        .filter(|r| !r.starts_with("end to end"))
        .collect();
    assert_eq!(stage_rows, [pair]);
}

#[test]
fn the_same_scenario_recorded_twice_is_no_regression() {
    let dir = tempfile::tempdir().unwrap();
    for (a, b) in [(21, 22), (23, 24)] {
        let base = synth(dir.path(), &format!("{a}.parquet"), scenario(a, None));
        let cand = synth(dir.path(), &format!("{b}.parquet"), scenario(b, None));
        let (code, d) = diff_json(&base, &cand, &[]);
        assert_eq!(code, 0, "{}", d["regressions"]);
        assert_eq!(d["regression"], false);
        assert!(d["environment"].as_array().unwrap().is_empty());
        for section in ["stages", "end_to_end"] {
            let v = verdicts(&d, section);
            for (name, verdict) in &v {
                assert!(
                    verdict != "slower" && verdict != "faster",
                    "{section} {name}"
                );
            }
            assert!(v.iter().any(|(_, verdict)| verdict == "no_change"));
        }
        assert!(
            verdicts(&d, "stages")
                .iter()
                .filter(|(_, verdict)| verdict == "no_change")
                .count()
                >= 10
        );
        // The usual CI thresholds do not fire on noise either.
        let (code, d) = diff_json(
            &base,
            &cand,
            &["--fail-on", "p99>+10%", "--fail-on", "p50>+5%"],
        );
        assert_eq!(code, 0, "{}", d["thresholds"]);
    }
}

#[test]
fn the_figures_are_the_reports() {
    let dir = tempfile::tempdir().unwrap();
    let base = synth(dir.path(), "a.parquet", scenario(31, None));
    let cand = synth(dir.path(), "b.parquet", scenario(32, None));
    let (_, d) = diff_json(&base, &cand, &[]);
    for (path, side) in [(&base, "base"), (&cand, "cand")] {
        let out = tcptape(&["report", "--format", "json", path.to_str().unwrap()]);
        assert!(out.status.success());
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        for section in ["stages", "end_to_end"] {
            let key = |v: &&Value| (v["from"].to_string(), v["to"].to_string());
            let mut from_diff: Vec<&Value> = d[section]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| &row[side])
                .filter(|v| !v.is_null())
                .collect();
            let mut from_report: Vec<&Value> = r[section].as_array().unwrap().iter().collect();
            from_diff.sort_by_key(key);
            from_report.sort_by_key(key);
            assert!(!from_report.is_empty());
            assert_eq!(from_diff, from_report, "{side} {section}");
        }
    }
}

/// A synthetic recording written with its metadata changed by `edit`.
fn with_meta(path: &Path, cfg: SynthConfig, edit: impl FnOnce(&mut RecordingMeta)) {
    let mut meta = synth_meta(&cfg);
    let mut enc = BatchEncoder::new(EncodeContext::new(drop_reason_names()));
    let batches: Vec<_> = SynthStream::new(cfg, 8192)
        .map(|b| {
            meta.end_ns = meta.end_ns.max(b.last().map_or(0, |e| e.ts_ns));
            enc.encode(&b)
        })
        .collect();
    meta.segment.last = true;
    edit(&mut meta);
    tcptape_common::parquet_file::write_file(path, &batches, &meta).unwrap();
}

#[test]
fn environment_differences_and_one_sided_stages_are_stated_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let base = synth(dir.path(), "a.parquet", scenario(41, None));
    let cand = dir.path().join("b.parquet");
    let mut cfg = scenario(42, None);
    // The candidate's kernel has no IP and TCP receive hooks: rx_netif goes straight to
    // rx_tcp_est.
    cfg.hops
        .retain(|h| h.0 != Stage::RxIp && h.0 != Stage::RxTcp);
    with_meta(&cand, cfg, |m| {
        m.environment.kernel_release = "6.18.0".into();
        m.environment.congestion_control = "bbr".into();
        m.environment.interfaces[1].gro = Some(false);
    });
    let (code, d) = diff_json(&base, &cand, &[]);
    let whats: Vec<&str> = d["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap())
        .collect();
    assert_eq!(
        whats,
        ["kernel", "congestion control", "offload veth-rcv gro"]
    );
    let only_base: Vec<&str> = d["only_in_base"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        only_base,
        ["rx_netif→rx_ip", "rx_ip→rx_tcp", "rx_tcp→rx_tcp_est"]
    );
    assert_eq!(d["only_in_cand"][0], "rx_netif→rx_tcp_est");
    // The pairs both sides have are still compared.
    let compared = verdicts(&d, "stages")
        .into_iter()
        .filter(|(_, v)| v != "one_side_only")
        .count();
    assert!(compared >= 8);
    // The pairs of one side are frequent there: no test can tell whether the path that replaced
    // them is slower, so the run is undecided (exit 3), each named, unless allowed.
    assert_eq!(code, 3, "{}", d["undecided"]);
    let undecided = d["undecided"].to_string();
    for pair in ["rx_netif→rx_ip", "rx_tcp→rx_tcp_est", "rx_netif→rx_tcp_est"] {
        assert!(
            undecided.contains(pair),
            "{pair} not undecided: {undecided}"
        );
    }
    let (code, d) = diff_json(&base, &cand, &["--allow-undecided"]);
    assert!(code == 0 || code == 1, "{code}");
    assert!(!d["undecided"].as_array().unwrap().is_empty());

    let out = tcptape(&["diff", base.to_str().unwrap(), cand.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let env_line = text
        .lines()
        .find(|l| l.starts_with("environment"))
        .expect("environment line");
    assert!(env_line.contains("DIFFERS"), "{text}");
    assert!(text.contains("kernel: synthetic → 6.18.0"), "{text}");
    assert!(text.contains("only in base: rx_netif→rx_ip"), "{text}");
}

#[test]
fn bad_input_and_bad_arguments_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = synth(
        dir.path(),
        "good.parquet",
        SynthConfig::new(Mix::Bulk, 5_000, 1),
    );
    let corrupt = dir.path().join("corrupt.parquet");
    std::fs::write(&corrupt, b"PAR1 this is not really parquet PAR1").unwrap();
    let text = dir.path().join("notes.parquet");
    std::fs::write(&text, "hello").unwrap();
    let g = good.to_str().unwrap();
    for args in [
        vec!["diff", g, corrupt.to_str().unwrap()],
        vec!["diff", text.to_str().unwrap(), g],
        vec!["diff", g, "/nonexistent/rec.parquet"],
        vec!["diff", g, g, "--fail-on", "p98>+1%"],
        vec!["diff", g, g, "--fail-on", "rx_app->tx_done:p50>+1ms"],
        vec!["diff", g],
    ] {
        let out = tcptape(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.is_empty(), "{args:?}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        if !args.contains(&"--fail-on") && args.len() == 3 {
            assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        }
    }
    let out = tcptape(&["diff", g, g]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn markdown_puts_the_verdict_first() {
    let dir = tempfile::tempdir().unwrap();
    let base = synth(dir.path(), "a.parquet", scenario(51, None));
    let cand = synth(
        dir.path(),
        "b.parquet",
        scenario(52, Some((Stage::RxApp, 1.5))),
    );
    let out = tcptape(&[
        "diff",
        "--format",
        "markdown",
        base.to_str().unwrap(),
        cand.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let md = String::from_utf8(out.stdout).unwrap();
    let first = md.lines().next().unwrap();
    assert!(first.starts_with("### tcptape diff: ❌ REGRESSION"), "{md}");
    assert!(md.contains("| **SLOWER"), "{md}");
    assert!(md.contains("rx_tcp_est→rx_app"), "{md}");
}

#[test]
fn the_selection_is_the_reports() {
    let dir = tempfile::tempdir().unwrap();
    let base = synth(
        dir.path(),
        "a.parquet",
        SynthConfig::new(Mix::Bulk, 30_000, 61),
    );
    let cand = synth(
        dir.path(),
        "b.parquet",
        SynthConfig::new(Mix::Bulk, 30_000, 62),
    );
    let (_, d) = diff_json(&base, &cand, &["--port", "40007"]);
    let (_, all) = diff_json(&base, &cand, &[]);
    let out = tcptape(&[
        "report",
        "--format",
        "json",
        "--port",
        "40007",
        base.to_str().unwrap(),
    ]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let counts = |rows: &Value, side: &str| -> Vec<u64> {
        rows.as_array()
            .unwrap()
            .iter()
            .filter_map(|row| row[side]["count"].as_u64())
            .collect()
    };
    let mut from_diff = counts(&d["stages"], "base");
    let mut from_report: Vec<u64> = r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["count"].as_u64().unwrap())
        .collect();
    from_diff.sort_unstable();
    from_report.sort_unstable();
    assert_eq!(from_diff, from_report);
    // One flow of four: about a quarter of the packets.
    let (one, every): (u64, u64) = (
        counts(&d["stages"], "base").iter().sum(),
        counts(&all["stages"], "base").iter().sum(),
    );
    assert!(one * 3 < every && one * 5 > every, "{one} of {every}");
}

/// `tcptape diff ARGS` with a format: exit code and standard output.
fn diff_text(base: &Path, cand: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["diff", "-q", base.to_str().unwrap(), cand.to_str().unwrap()];
    args.extend(extra);
    let out = tcptape(&args);
    (
        out.status.code().expect("exit code"),
        String::from_utf8(out.stdout).expect("UTF-8"),
    )
}

#[test]
fn junit_has_one_test_case_per_row_and_fails_the_slowed_stage_alone() {
    use quick_xml::events::Event;
    let dir = tempfile::tempdir().unwrap();
    let base = synth(dir.path(), "base.parquet", scenario(31, None));
    let cand = synth(
        dir.path(),
        "cand.parquet",
        scenario(32, Some((Stage::TxQdiscDeq, 1.5))),
    );
    let (_, d) = diff_json(&base, &cand, &[]);
    let rows = d["stages"].as_array().unwrap().len() + d["end_to_end"].as_array().unwrap().len();
    let (code, xml) = diff_text(&base, &cand, &["--format", "junit"]);
    assert_eq!(code, 1, "{xml}");
    // Well-formed XML: every element closes, and the counts agree with the cases.
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut failures, mut depth) = (Vec::new(), Vec::new(), 0i32);
    let mut suite_failures = None;
    let mut current = String::new();
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testsuite" => {
                let a = e.try_get_attribute("failures").unwrap().unwrap();
                suite_failures = Some(a.unescape_value().unwrap().parse::<usize>().unwrap());
                depth += 1;
            }
            Event::Start(e) if e.name().as_ref() == b"testcase" => {
                let a = e.try_get_attribute("name").unwrap().unwrap();
                current = a.unescape_value().unwrap().to_string();
                cases.push(current.clone());
                depth += 1;
            }
            Event::Empty(e) if e.name().as_ref() == b"failure" => failures.push(current.clone()),
            Event::Start(_) => depth += 1,
            Event::End(_) => depth -= 1,
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0, "unbalanced elements");
    assert_eq!(cases.len(), rows, "one test case per row: {cases:?}");
    let stage_failures: Vec<&String> = failures
        .iter()
        .filter(|f| !f.starts_with("end to end"))
        .collect();
    assert_eq!(
        stage_failures,
        ["tx_qdisc_enq→tx_qdisc_deq"],
        "{failures:?}"
    );
    assert_eq!(suite_failures, Some(failures.len()));
}

#[test]
fn markdown_renders_as_tables_on_github() {
    let dir = tempfile::tempdir().unwrap();
    let base = synth(dir.path(), "base.parquet", scenario(33, None));
    let cand = synth(
        dir.path(),
        "cand.parquet",
        scenario(34, Some((Stage::TxQdiscDeq, 1.5))),
    );
    let (_, d) = diff_json(&base, &cand, &[]);
    let (_, md) = diff_text(&base, &cand, &["--format", "markdown"]);
    // GitHub's Markdown is CommonMark with the GFM extensions (tables among them).
    let mut opts = comrak::Options::default();
    opts.extension.table = true;
    opts.extension.strikethrough = true;
    opts.extension.autolink = true;
    let html = comrak::markdown_to_html(&md, &opts);
    // Two tables (stages, whole journeys), each with the 8 columns in every row, and one body
    // row per row of the JSON.
    let tables: Vec<&str> = html.split("<table>").skip(1).collect();
    assert_eq!(tables.len(), 2, "{html}");
    for (t, section) in tables.iter().zip(["stages", "end_to_end"]) {
        let t = &t[..t.find("</table>").expect("closed table")];
        assert_eq!(t.matches("<th>").count(), 8, "{t}");
        let body_rows = t.matches("<tr>").count() - 1;
        assert_eq!(body_rows, d[section].as_array().unwrap().len(), "{t}");
        assert_eq!(
            t.matches("<td").count(),
            8 * body_rows,
            "a cell broke a row: {t}"
        );
    }
    // The verdict line is a heading, the regression a list item, the stage in bold.
    assert!(html.contains("<h3>tcptape diff: ❌ REGRESSION"), "{html}");
    assert!(
        html.contains("<li>tx_qdisc_enq→tx_qdisc_deq slower"),
        "{html}"
    );
    assert!(html.contains("<strong>SLOWER"), "{html}");
}

#[test]
fn recordings_of_two_hosts_are_compared_host_by_host_and_between_them() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
    let (a, b) = (
        dir.join("two-hosts-a.parquet"),
        dir.join("two-hosts-b.parquet"),
    );
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let out = tcptape(&[
        "diff",
        "-q",
        "--format",
        "json",
        "--base",
        a,
        b,
        "--candidate",
        a,
        b,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts: Vec<&str> = d["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["base"]["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["host-a", "host-b"]);
    // The wire and write→read spans, each direction, unchanged against themselves.
    let between: Vec<String> = d["between_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}→{} {}",
                r["from"].as_str().unwrap(),
                r["to"].as_str().unwrap(),
                r["verdict"]
            )
        })
        .collect();
    assert_eq!(
        between,
        [
            "host-a tx_driver→host-b rx_driver \"no_change\"",
            "host-a tx_sendmsg→host-b rx_app \"no_change\"",
            "host-b tx_driver→host-a rx_driver \"no_change\"",
            "host-b tx_sendmsg→host-a rx_app \"no_change\"",
        ]
    );
    // The report's wire figures are the rows' own.
    let rep = tcptape(&["report", "-q", "--format", "json", a, b]);
    let rep: Value = serde_json::from_slice(&rep.stdout).unwrap();
    let wire = &rep["between_hosts"][0]["wire"][0];
    let row = &d["between_hosts"][0]["base"];
    assert_eq!(row["count"], wire["count"]);
    assert_eq!(row["p50_ns"], wire["p50_ns"]);
    assert_eq!(row["p99_ns"], wire["p99_ns"]);
    // One side of two hosts against one of a single host: no host in common is an error.
    let out = tcptape(&[
        "diff",
        "--base",
        a,
        b,
        "--candidate",
        &dir.join("rr-slow-reader.parquet").to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no host is on both sides"));
}
