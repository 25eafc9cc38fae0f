//! The writer thread's queue: when the drain side outpaces the writer, whole batches are dropped
//! and counted, and the count reaches the recording's metadata; nothing else is lost.

use std::sync::atomic::Ordering;
use tcptape_common::encode::{BatchEncoder, EncodeContext};
use tcptape_common::synth::{drop_reason_names, synth_meta, Mix, SynthConfig, SynthStream};
use tcptape_common::Recording;
use tcptape_recorder::segment_writer::{Output, SegmentLimits, SegmentWriter};
use tcptape_recorder::write_pipeline::WriterHandle;

#[test]
fn a_full_queue_drops_counted_batches_only() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("rec");
    let cfg = SynthConfig::new(Mix::Bulk, 100 * 4096, 4);
    let writer = SegmentWriter::create(
        Output::Directory(out.clone()),
        synth_meta(&cfg),
        BatchEncoder::new(EncodeContext::new(drop_reason_names())),
        SegmentLimits::default(),
    )
    .unwrap();
    let handle = WriterHandle::spawn(writer, 2);
    let mut sent = 0u64;
    // Handing over batches costs nothing; encoding them costs milliseconds: the queue fills.
    for batch in SynthStream::new(cfg, 4096) {
        sent += batch.len() as u64;
        handle.send(batch).unwrap();
    }
    let lost = handle.stats().queue_lost.load(Ordering::Relaxed);
    let summary = handle.finish("complete").unwrap();
    assert!(lost > 0, "the queue never filled; the test proves nothing");
    assert_eq!(summary.rows + lost, sent);
    assert_eq!(lost % 4096, 0, "only whole batches are dropped");

    let rec = Recording::open(&out).unwrap();
    assert_eq!(rec.rows(), summary.rows);
    assert_eq!(rec.meta().lost.writer_queue, lost);
    assert_eq!(rec.meta().lost.total(), lost);
}
