//! `tcptape info` run as a process: what a recording says about itself, the status of closed
//! and unclosed recordings, counts per stage, and one-line refusals of bad input.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use tcptape_common::encode::{BatchEncoder, EncodeContext};
use tcptape_common::metadata::{AttachAttempt, StageAttach};
use tcptape_common::synth::{drop_reason_names, synth_meta, Mix, SynthConfig, SynthStream};
use tcptape_common::RecordingMeta;

fn tcptape(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tcptape"))
        .args(args)
        .output()
        .expect("tcptape runs")
}

fn text(args: &[&str]) -> String {
    let out = tcptape(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Synthetic events of `cfg` written as one file with metadata changed by `edit`; returns the
/// events written per stage name.
fn write(
    path: &Path,
    cfg: SynthConfig,
    edit: impl FnOnce(&mut RecordingMeta),
) -> std::collections::BTreeMap<String, u64> {
    let mut meta = synth_meta(&cfg);
    let mut enc = BatchEncoder::new(EncodeContext::new(drop_reason_names()));
    let mut counts = std::collections::BTreeMap::new();
    let batches: Vec<_> = SynthStream::new(cfg, 4096)
        .map(|b| {
            meta.end_ns = meta.end_ns.max(b.last().map_or(0, |e| e.ts_ns));
            for e in &b {
                let name = tcptape_common::Stage::from_code(e.kind).unwrap().name();
                *counts.entry(name.to_string()).or_insert(0) += 1;
            }
            enc.encode(&b)
        })
        .collect();
    meta.segment.last = true;
    meta.segment.stop_reason = Some("duration".into());
    edit(&mut meta);
    tcptape_common::parquet_file::write_file(path, &batches, &meta).unwrap();
    counts
}

fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no '{key}' line in\n{out}"))
}

#[test]
fn a_recording_stopped_by_a_full_disk_is_closed_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.parquet");
    write(&path, SynthConfig::new(Mix::Bulk, 5_000, 1), |m| {
        m.segment.stop_reason = Some("disk-full".into());
    });
    let out = text(&["info", path.to_str().unwrap()]);
    assert_eq!(
        line(&out, "status"),
        "status       closed (stopped: disk-full)"
    );
    let json: Value =
        serde_json::from_str(&text(&["info", "--format", "json", path.to_str().unwrap()])).unwrap();
    assert_eq!(json["closed"], true);
    assert_eq!(json["stop_reason"], "disk-full");
    assert_eq!(json["status"], "closed (stopped: disk-full)");
}

#[test]
fn metadata_plan_environment_counts_lost_and_sampling_are_shown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.parquet");
    let counts = write(&path, SynthConfig::new(Mix::Bulk, 20_000, 2), |m| {
        m.source = "live".into();
        m.hostname = "db-7".into();
        m.kernel_release = "6.1.0-13-amd64".into();
        m.environment.kernel_release = "6.1.0-13-amd64".into();
        m.environment.congestion_control = "bbr".into();
        m.sampling.one_in = 4;
        m.lost.ring_per_cpu = vec![3, 0, 7];
        m.lost.writer_queue = 2;
        m.lost.missed_runs.insert("rx_driver".into(), 5);
        m.seen.insert("rx_app".into(), 9_999_999);
        m.attach_plan = vec![StageAttach {
            stage: "rx_tcp_est".into(),
            chosen: Some("tracepoint".into()),
            attempts: vec![
                AttachAttempt {
                    mechanism: "fentry".into(),
                    target: "tcp_rcv_established".into(),
                    error: Some("load failed: EPERM".into()),
                },
                AttachAttempt {
                    mechanism: "tracepoint".into(),
                    target: "tcp/tcp_probe".into(),
                    error: None,
                },
            ],
        }];
    });
    let out = text(&["info", path.to_str().unwrap()]);
    assert!(line(&out, "recording").contains("20000 events"), "{out}");
    assert!(line(&out, "host").contains("db-7, kernel 6.1.0-13-amd64"));
    assert!(line(&out, "time").contains("2026-01-01T00:00:00.000Z →"));
    assert_eq!(
        line(&out, "lost events"),
        "lost events  17 (ring buffer per CPU: [3 0 7], writer queue: 2)"
    );
    assert!(out.contains("program runs skipped by the kernel: rx_driver 5"));
    assert!(line(&out, "sampling").starts_with("sampling     1 in 4 flows"));
    assert!(line(&out, "environment").contains("congestion control bbr"));
    let plan = out
        .lines()
        .find(|l| l.contains("rx_tcp_est") && l.contains("tracepoint"))
        .expect("attach plan row");
    assert!(plan.contains("tcp/tcp_probe"), "{plan}");
    assert!(plan.contains("fentry tcp_rcv_established: load failed: EPERM"));
    let per_stage = &out[out.find("events per stage").expect("events per stage")..];
    for (stage, n) in &counts {
        let row = per_stage
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(stage.as_str()))
            .unwrap_or_else(|| panic!("no row for {stage}"));
        assert_eq!(
            row.split_whitespace().nth(2),
            Some(n.to_string().as_str()),
            "{row}"
        );
    }
    let rx_app = per_stage
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("rx_app"))
        .unwrap();
    let not_recorded = 9_999_999 - counts["rx_app"];
    assert!(rx_app.contains(&not_recorded.to_string()), "{rx_app}");
}

#[test]
fn an_unclosed_segment_directory_says_so_and_what_it_covers() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    std::fs::create_dir(&rec).unwrap();
    let mut id = String::new();
    for i in 0..2u32 {
        write(
            &rec.join(format!("seg-{i:06}.parquet")),
            SynthConfig::new(Mix::Bulk, 3_000, 7),
            |m| {
                if id.is_empty() {
                    id = m.recording_id.clone();
                }
                m.recording_id = id.clone();
                m.segment.index = i;
                m.segment.last = false;
                m.segment.stop_reason = None;
            },
        );
    }
    std::fs::write(rec.join(".seg-000002.parquet.tmp"), b"PAR1 half").unwrap();
    let out = text(&["info", rec.to_str().unwrap()]);
    let status = line(&out, "status");
    assert!(status.contains("NOT CLOSED"), "{status}");
    assert!(status.contains("2 finished segment(s) cover"), "{status}");
    assert!(
        status.contains("1 unfinished segment file(s) ignored"),
        "{status}"
    );
}

#[test]
fn corrupt_and_foreign_files_give_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.parquet");
    std::fs::write(
        &corrupt,
        b"PAR1\x15\x04\x15garbage-garbage\x00\x00\x00\x10PAR1",
    )
    .unwrap();
    let foreign = dir.path().join("foreign.parquet");
    {
        use arrow_array::{Int64Array, RecordBatch};
        use arrow_schema::{DataType, Field, Schema};
        use std::sync::Arc;
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])
                .unwrap();
        let file = std::fs::File::create(&foreign).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    let text_file = dir.path().join("notes.txt");
    std::fs::write(&text_file, "hello").unwrap();
    for (path, want) in [
        (&corrupt, "corrupt Parquet metadata"),
        (&foreign, "not a tcptape recording"),
        (&text_file, "not a Parquet file"),
    ] {
        for format in ["table", "json"] {
            let out = tcptape(&["info", "--format", format, path.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(2), "{}", path.display());
            assert!(out.stdout.is_empty());
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(err.trim_end().lines().count(), 1, "{err}");
            assert!(err.contains(want), "{err}");
            assert!(err.contains(path.to_str().unwrap()), "{err}");
        }
    }
}

#[test]
fn cgroup_filters_are_shown_with_the_workload_their_path_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cg.parquet");
    let id = "3f2a9c1b0d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789abcd";
    let pod = format!(
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1b4e28ba_2fa1_11d2_883f_0016d3cca427.slice/cri-containerd-{id}.scope"
    );
    write(&path, SynthConfig::new(Mix::Bulk, 2_000, 3), |m| {
        m.filters.cgroups = vec![pod.clone(), "/tcptape-test-1/a".into()];
    });
    let out = text(&["info", path.to_str().unwrap()]);
    assert_eq!(
        line(&out, "filters"),
        format!(
            "filters      cgroup {pod} (containerd container 3f2a9c1b0d4e, Kubernetes pod \
             1b4e28ba-2fa1-11d2-883f-0016d3cca427, QoS besteffort), cgroup /tcptape-test-1/a"
        )
    );
}
