//! The reader refuses each bad input with a one-line error naming the file and the problem, and
//! never panics, whatever the bytes.

use arrow_array::{Int32Array, RecordBatch};
use parquet::arrow::ArrowWriter;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tcptape_common::metadata::RecordingMeta;
use tcptape_common::reader::ReadErrorKind;
use tcptape_common::synth::{synth_meta, write_file, Mix, SynthConfig};
use tcptape_common::Recording;

fn valid_recording(dir: &Path) -> PathBuf {
    let p = dir.join("good.parquet");
    write_file(&p, SynthConfig::new(Mix::Bulk, 20_000, 3)).unwrap();
    p
}

/// Opens and reads everything; returns the error, checking it is one line and names the path.
fn open_err(path: &Path) -> ReadErrorKind {
    let err = match Recording::open(path) {
        Err(e) => e,
        Ok(rec) => match rec.batches(None).find_map(Result::err) {
            Some(e) => e,
            None => panic!("{} was accepted", path.display()),
        },
    };
    let text = err.to_string();
    assert!(!text.contains('\n'), "multi-line error: {text}");
    assert!(
        text.starts_with(&path.display().to_string()),
        "error does not name the input: {text}"
    );
    err.kind
}

fn write_parquet(path: &Path, batch: &RecordBatch, kv: Vec<(String, String)>) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    for (k, v) in kv {
        w.append_key_value_metadata(parquet::file::metadata::KeyValue::new(k, v));
    }
    w.close().unwrap();
}

fn int_batch() -> RecordBatch {
    RecordBatch::try_from_iter([("x", Arc::new(Int32Array::from(vec![1, 2, 3])) as _)]).unwrap()
}

#[test]
fn not_parquet() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("notes.parquet");
    std::fs::write(&p, "ts,kind\n1,rx_app\n").unwrap();
    assert!(matches!(open_err(&p), ReadErrorKind::NotParquet));
}

#[test]
fn empty_file() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("empty.parquet");
    std::fs::write(&p, "").unwrap();
    assert!(matches!(open_err(&p), ReadErrorKind::EmptyFile));
}

#[test]
fn truncated_files() {
    let d = tempfile::tempdir().unwrap();
    let good = std::fs::read(valid_recording(d.path())).unwrap();
    for keep in [4, 5, 100, good.len() / 2, good.len() - 1] {
        let p = d.path().join(format!("cut-{keep}.parquet"));
        std::fs::write(&p, &good[..keep]).unwrap();
        assert!(
            matches!(open_err(&p), ReadErrorKind::Truncated),
            "cut at {keep}"
        );
    }
}

#[test]
fn foreign_parquet() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("foreign.parquet");
    write_parquet(&p, &int_batch(), vec![("pandas".into(), "{}".into())]);
    assert!(matches!(open_err(&p), ReadErrorKind::Foreign));
}

#[test]
fn tcptape_metadata_with_the_wrong_columns() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("columns.parquet");
    write_parquet(&p, &int_batch(), RecordingMeta::new("live").to_key_values());
    match open_err(&p) {
        ReadErrorKind::Schema(m) => assert!(m.contains("ts_ns"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn newer_schema_version() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("newer.parquet");
    let mut meta = synth_meta(&SynthConfig::new(Mix::Bulk, 1, 1));
    meta.schema_version = tcptape_common::schema::SCHEMA_VERSION + 1;
    write_parquet(&p, &int_batch(), meta.to_key_values());
    let kind = open_err(&p);
    assert!(matches!(kind, ReadErrorKind::Newer(_)), "{kind:?}");
    assert!(kind.to_string().contains("upgrade tcptape"));
}

#[test]
fn garbage_metadata_values() {
    let d = tempfile::tempdir().unwrap();
    for (i, (k, v)) in [
        ("tcptape.schema_version", "\"one\""),
        ("tcptape.schema_version", "0"),
        ("tcptape.lost", "{not json"),
    ]
    .iter()
    .enumerate()
    {
        let p = d.path().join(format!("meta-{i}.parquet"));
        let mut kvs = RecordingMeta::new("live").to_key_values();
        kvs.retain(|(key, _)| key != k);
        kvs.push((k.to_string(), v.to_string()));
        write_parquet(&p, &int_batch(), kvs);
        assert!(
            matches!(open_err(&p), ReadErrorKind::BadMetadata(_)),
            "{k}={v}"
        );
    }
}

#[test]
fn footer_length_beyond_the_file() {
    let d = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(valid_recording(d.path())).unwrap();
    let n = bytes.len();
    bytes[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let p = d.path().join("footer.parquet");
    std::fs::write(&p, &bytes).unwrap();
    assert!(matches!(open_err(&p), ReadErrorKind::Corrupt(_)));
}

#[test]
fn empty_and_unfinished_directories() {
    let d = tempfile::tempdir().unwrap();
    let empty = d.path().join("rec");
    std::fs::create_dir(&empty).unwrap();
    assert!(matches!(open_err(&empty), ReadErrorKind::NoSegments("")));
    std::fs::write(empty.join(".seg-000000.parquet.tmp"), b"PAR1").unwrap();
    let kind = open_err(&empty);
    assert!(kind.to_string().contains("unfinished"), "{kind}");
}

#[test]
fn segments_of_two_recordings_are_not_mixed() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("rec");
    std::fs::create_dir(&dir).unwrap();
    write_file(
        &dir.join("seg-000000.parquet"),
        SynthConfig::new(Mix::Bulk, 100, 1),
    )
    .unwrap();
    write_file(
        &dir.join("seg-000001.parquet"),
        SynthConfig::new(Mix::Bulk, 100, 2),
    )
    .unwrap();
    assert!(matches!(open_err(&dir), ReadErrorKind::Mixed(_)));
}

#[test]
fn missing_path() {
    let p = Path::new("/nonexistent/tcptape/rec.parquet");
    assert!(matches!(open_err(p), ReadErrorKind::Io(_)));
}

/// Flipped bytes anywhere in a file: an error or (where the flip hits padding or a value) the
/// rows, but never a panic.
#[test]
fn bit_flips_never_panic() {
    let d = tempfile::tempdir().unwrap();
    let good = std::fs::read(valid_recording(d.path())).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let p = d.path().join("flipped.parquet");
    let (mut refused, mut read) = (0, 0);
    for _ in 0..300 {
        let mut bytes = good.clone();
        // Half the flips hit the footer, where the structure lives.
        let at = if rng.random_bool(0.5) {
            rng.random_range(bytes.len().saturating_sub(4096)..bytes.len())
        } else {
            rng.random_range(0..bytes.len())
        };
        bytes[at] ^= 1 << rng.random_range(0..8);
        std::fs::write(&p, &bytes).unwrap();
        let outcome = std::panic::catch_unwind(|| match Recording::open(&p) {
            Err(e) => Err(e.to_string()),
            Ok(rec) => rec
                .batches(None)
                .try_for_each(|b| b.map(drop))
                .map_err(|e| e.to_string()),
        });
        match outcome.expect("the reader panicked on a bit flip") {
            Ok(()) => read += 1,
            Err(msg) => {
                assert!(!msg.contains('\n'), "multi-line error: {msg}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0 && read > 0, "refused {refused}, read {read}");
}
