//! The segment writer: rotation by time and size, the single-file merge, safe output creation.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use tcptape_common::encode::{BatchEncoder, EncodeContext};
use tcptape_common::record::Record;
use tcptape_common::synth::{drop_reason_names, synth_meta, Mix, SynthConfig, SynthStream};
use tcptape_common::Recording;
use tcptape_recorder::segment_writer::{Output, SegmentLimits, SegmentWriter};
use tcptape_recorder::synth_command::write_synth;

fn rows_without_skb(path: &Path) -> Vec<Record> {
    let rec = Recording::open(path).unwrap();
    let mut out = Vec::new();
    for b in rec.batches(None) {
        out.extend(
            Record::from_batch(&b.unwrap())
                .unwrap()
                .into_iter()
                .map(|mut r| {
                    // skb ids are keyed per recording: equal within one, different across two.
                    r.skb = r.skb.map(|_| 0);
                    r
                }),
        );
    }
    out
}

#[test]
fn directory_rotates_by_event_time_and_reads_back_in_order() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("rec");
    // Request/response: ~28k events per second of event time, so 100k events span ~3.5 s.
    let cfg = SynthConfig::new(Mix::RequestResponse, 100_000, 3);
    let summary = write_synth(cfg, Output::Directory(out.clone()), 1, None).unwrap();
    let rec = Recording::open(&out).unwrap();
    assert!(rec.segments.len() >= 3, "{} segments", rec.segments.len());
    assert_eq!(summary.segments as usize, rec.segments.len());
    for (i, seg) in rec.segments.iter().enumerate() {
        assert_eq!(seg.meta.segment.index as usize, i);
        assert_eq!(seg.meta.segment.last, i + 1 == rec.segments.len());
        let span = seg.meta.end_ns - seg.meta.start_ns;
        assert!(span > 0);
    }
    assert!(rec.closed());
    assert_eq!(rec.meta().segment.stop_reason.as_deref(), Some("complete"));
    let rows = rows_without_skb(&out);
    assert_eq!(rows.len(), 100_000);
    assert!(rows.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
}

#[test]
fn size_bound_rotates_and_file_output_merges_the_same_rows() {
    let d = tempfile::tempdir().unwrap();
    let cfg = SynthConfig::new(Mix::Bulk, 60_000, 8);
    let dir = d.path().join("small-segments");
    let meta = synth_meta(&cfg);
    let limits = SegmentLimits {
        segment_secs: Duration::from_secs(3600),
        segment_bytes: 64 * 1024,
    };
    let mut w = SegmentWriter::create(
        Output::Directory(dir.clone()),
        meta,
        BatchEncoder::new(EncodeContext::new(drop_reason_names())),
        limits,
    )
    .unwrap();
    for batch in SynthStream::new(cfg.clone(), 2048) {
        w.write(&batch).unwrap();
    }
    let summary = w.finish("complete").unwrap();
    assert!(summary.segments >= 4, "{} segments", summary.segments);

    let file = d.path().join("one.parquet");
    let s = write_synth(cfg, Output::File(file.clone()), 3600, None).unwrap();
    assert_eq!(s.segments, 1);
    assert!(
        !d.path().join("one.parquet.segments").exists(),
        "segment directory left behind"
    );
    let rec = Recording::open(&file).unwrap();
    assert_eq!(rec.segments.len(), 1);
    assert!(rec.closed());
    assert_eq!(rows_without_skb(&file), rows_without_skb(&dir));
}

#[test]
fn outputs_are_private_and_never_overwritten() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("r.parquet");
    write_synth(
        SynthConfig::new(Mix::Bulk, 1000, 1),
        Output::File(file.clone()),
        5,
        None,
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let before = std::fs::read(&file).unwrap();
    let again = write_synth(
        SynthConfig::new(Mix::Bulk, 10, 2),
        Output::File(file.clone()),
        5,
        None,
    );
    assert_eq!(again.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&file).unwrap(), before);

    let dir = d.path().join("segs");
    write_synth(
        SynthConfig::new(Mix::Bulk, 1000, 1),
        Output::Directory(dir.clone()),
        5,
        None,
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for f in std::fs::read_dir(&dir).unwrap() {
        assert_eq!(
            f.unwrap().metadata().unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // A symlink planted at the output path is refused, not followed.
    let link = d.path().join("link.parquet");
    let target = d.path().join("victim");
    std::fs::write(&target, b"keep me").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let r = write_synth(
        SynthConfig::new(Mix::Bulk, 10, 1),
        Output::File(link),
        5,
        None,
    );
    assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
}

#[test]
fn a_directory_any_user_can_write_is_refused_unless_sticky() {
    let d = tempfile::tempdir().unwrap();
    let open = d.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    for output in [
        Output::File(open.join("r.parquet")),
        Output::Directory(open.join("r")),
    ] {
        let err = write_synth(SynthConfig::new(Mix::Bulk, 10, 1), output, 5, None).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("writable by every user"), "{err}");
    }
    assert_eq!(
        std::fs::read_dir(&open).unwrap().count(),
        0,
        "nothing was created"
    );

    // With the sticky bit (as /tmp has), other users cannot rename or remove what is created.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let file = open.join("r.parquet");
    write_synth(
        SynthConfig::new(Mix::Bulk, 10, 1),
        Output::File(file.clone()),
        5,
        None,
    )
    .unwrap();
    assert_eq!(Recording::open(&file).unwrap().segments.len(), 1);
}

#[test]
fn a_name_created_while_writing_is_not_overwritten_and_nothing_is_lost() {
    use tcptape_common::parquet_file::ParquetFileWriter;
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("r.parquet");
    let meta = synth_meta(&SynthConfig::new(Mix::Bulk, 100, 1));
    let mut encoder = BatchEncoder::new(EncodeContext::new(drop_reason_names()));
    let events: Vec<_> = SynthStream::new(SynthConfig::new(Mix::Bulk, 100, 1), 100)
        .flatten()
        .collect();
    let mut w = ParquetFileWriter::create(&file).unwrap();
    w.write(&encoder.encode(&events)).unwrap();
    // Another process takes the name between the check and the rename.
    std::fs::write(&file, b"someone else's").unwrap();
    let tmp = w.tmp_path().to_path_buf();
    let err = w.finish(&meta).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert!(
        err.to_string().contains(&tmp.display().to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"someone else's");
    // The recording is kept, finished, under its temporary name.
    let kept = d.path().join("kept.parquet");
    std::fs::rename(&tmp, &kept).unwrap();
    assert_eq!(Recording::open(&kept).unwrap().rows(), 100);
}

#[test]
fn an_empty_recording_still_says_what_it_is() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("empty.parquet");
    write_synth(
        SynthConfig::new(Mix::Bulk, 0, 1),
        Output::File(file.clone()),
        5,
        None,
    )
    .unwrap();
    let rec = Recording::open(&file).unwrap();
    assert_eq!(rec.rows(), 0);
    assert!(rec.closed());
    assert_eq!(rec.meta().source, "synth");
}
