//! `tcptape-record synth`: a synthetic recording written through the same segment writer as a
//! live one.

use crate::cli::SynthArgs;
use crate::segment_writer::{Output, SegmentLimits, SegmentWriter, Summary};
use std::time::{Duration, Instant};
use tcptape_common::encode::{BatchEncoder, EncodeContext};
use tcptape_common::synth::{drop_reason_names, synth_meta, SynthConfig, SynthStream};

/// Events per batch handed to the writer, as the live drain loop batches them.
pub const BATCH: usize = 8192;

/// Writes the recording `cfg` describes to `output`.
pub fn write_synth(
    cfg: SynthConfig,
    output: Output,
    segment_secs: u64,
    rate: Option<u64>,
) -> std::io::Result<Summary> {
    let meta = synth_meta(&cfg);
    let encoder = BatchEncoder::new(EncodeContext::new(drop_reason_names()));
    let limits = SegmentLimits {
        segment_secs: Duration::from_secs(segment_secs),
        ..SegmentLimits::default()
    };
    let mut writer = SegmentWriter::create(output, meta, encoder, limits)?;
    let started = Instant::now();
    let batch_size = rate.map_or(BATCH, |r| (r as usize / 20).clamp(1, BATCH));
    let mut written = 0u64;
    for batch in SynthStream::new(cfg, batch_size) {
        writer.write(&batch)?;
        written += batch.len() as u64;
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(written as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    writer.finish("complete")
}

/// Runs the subcommand.
pub fn run(args: &SynthArgs) -> anyhow::Result<()> {
    let mut cfg = SynthConfig::new(args.mix, args.events, args.seed);
    if let Some(f) = args.flows {
        cfg.flows = f;
    }
    cfg.hostname = args.hostname.clone();
    let summary = write_synth(
        cfg,
        Output::from_path(&args.output),
        args.segment_secs,
        args.rate,
    )?;
    if !args.quiet {
        tcptape_common::note!(
            "wrote {} events to {} ({}, {} segment{})",
            summary.rows,
            summary.path.display(),
            bytesize::ByteSize::b(summary.bytes),
            summary.segments,
            if summary.segments == 1 { "" } else { "s" }
        );
    }
    Ok(())
}
