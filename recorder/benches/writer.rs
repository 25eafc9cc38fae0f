//! Writer throughput and size on disk for the synthetic bulk mix.
//!
//! `cargo bench -p tcptape-recorder --bench writer` (events: `TCPTAPE_BENCH_EVENTS`, default
//! 2 000 000). Prints events/s of the segment writer on one thread (encode + Parquet + zstd +
//! fsync), bytes per event on disk, and the size of the same events as JSON lines.

use std::io::Write;
use std::time::{Duration, Instant};
use tcptape_common::encode::{BatchEncoder, EncodeContext};
use tcptape_common::record::Record;
use tcptape_common::synth::{drop_reason_names, synth_meta, Mix, SynthConfig, SynthStream};
use tcptape_recorder::segment_writer::{Output, SegmentLimits, SegmentWriter};
use tcptape_recorder::synth_command::BATCH;

struct CountingWriter(u64);

impl Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let events: u64 = std::env::var("TCPTAPE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let cfg = SynthConfig::new(Mix::Bulk, events, 1);
    let batches: Vec<_> = SynthStream::new(cfg.clone(), BATCH).collect();
    let dir = tempfile::tempdir().expect("temp dir");

    let mut best = Duration::MAX;
    let mut bytes = 0;
    for run in 0..3 {
        let out = dir.path().join(format!("run{run}"));
        let ctx = EncodeContext::new(drop_reason_names());
        let limits = SegmentLimits {
            segment_secs: Duration::from_secs(3600),
            ..SegmentLimits::default()
        };
        let start = Instant::now();
        let mut w = SegmentWriter::create(
            Output::Directory(out),
            synth_meta(&cfg),
            BatchEncoder::new(ctx),
            limits,
        )
        .expect("writer");
        for b in &batches {
            w.write(b).expect("write");
        }
        let summary = w.finish("complete").expect("finish");
        best = best.min(start.elapsed());
        bytes = summary.bytes;
    }

    let ctx = EncodeContext::new(drop_reason_names());
    let mut json = CountingWriter(0);
    for ev in batches.iter().flatten() {
        serde_json::to_writer(&mut json, &Record::from_raw(ev, &ctx).expect("known stage"))
            .expect("json");
        json.write_all(b"\n").expect("json");
    }

    let per_event = bytes as f64 / events as f64;
    let json_per_event = json.0 as f64 / events as f64;
    println!("writer benchmark: synthetic bulk mix, {events} events, best of 3, one thread");
    println!(
        "  throughput        {:.2} M events/s ({:.0} ns/event)",
        events as f64 / best.as_secs_f64() / 1e6,
        best.as_nanos() as f64 / events as f64
    );
    println!("  parquet on disk   {bytes} bytes, {per_event:.2} bytes/event");
    println!(
        "  JSON lines        {} bytes, {json_per_event:.1} bytes/event ({:.1}x the Parquet size)",
        json.0,
        json_per_event / per_event
    );
}
