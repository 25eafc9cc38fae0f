//! A writer killed with SIGKILL mid-recording leaves every finished segment readable, holding
//! exactly the first events it was given, and the recording says it was not closed.

use std::process::{Command, Stdio};
use std::time::Duration;
use tcptape_common::record::Record;
use tcptape_common::synth::{Mix, SynthConfig, SynthStream};
use tcptape_common::Recording;

#[test]
fn sigkill_loses_at_most_the_open_segment() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("rec");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tcptape-record"))
        .args(["synth", "-o"])
        .arg(&out)
        .args([
            "--events",
            "10000000",
            "--seed",
            "5",
            "--rate",
            "40000",
            "--segment-secs",
            "1",
            "-q",
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the writer ended before it was killed"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let rec = Recording::open(&out).unwrap();
    assert!(
        rec.segments.len() >= 2,
        "{} finished segments",
        rec.segments.len()
    );
    assert!(!rec.closed(), "a killed recording must not look closed");
    let mut rows = Vec::new();
    for b in rec.batches(None) {
        rows.extend(Record::from_batch(&b.unwrap()).unwrap());
    }
    assert_eq!(rows.len() as u64, rec.rows());
    // Nothing was lost before the open segment: the rows are the stream's first events.
    let expected: Vec<_> = SynthStream::new(SynthConfig::new(Mix::Bulk, 10_000_000, 5), 8192)
        .flatten()
        .take(rows.len())
        .collect();
    for (i, (r, e)) in rows.iter().zip(&expected).enumerate() {
        let kind = tcptape_common::Stage::from_code(e.kind).unwrap().name();
        assert_eq!((r.ts_ns, r.kind.as_str()), (e.ts_ns, kind), "row {i}");
        assert!(r.seq.is_none() || r.seq == Some(e.seq), "row {i}");
    }
}
