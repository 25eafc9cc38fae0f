//! `tcptape-record synth`: a synthetic recording written through the same segment writer as a
//! live one.

use crate::cli::SynthArgs;
use crate::segment_writer::{Output, SegmentLimits, SegmentWriter, Summary};
use std::time::Duration;
use tcptape_common::encode::{BatchEncoder, EncodeContext};
use tcptape_common::metadata::{Environment, InterfaceOffloads, RecordingMeta};
use tcptape_common::synth::{drop_reason_names, SynthConfig, SynthStream, SYNTH_START_NS};

/// Events per batch handed to the writer, as the live drain loop batches them.
pub const BATCH: usize = 8192;

/// The metadata of a synthetic recording.
pub fn synth_meta(cfg: &SynthConfig) -> RecordingMeta {
    let mut meta = RecordingMeta::new("synth");
    meta.start_ns = SYNTH_START_NS;
    meta.end_ns = SYNTH_START_NS;
    meta.hostname = "synthetic".into();
    // A fixed wall clock (2026-01-01T00:00:00Z at the start) keeps synthetic files reproducible.
    meta.mono_to_wall_ns = 1_767_225_600_000_000_000 - SYNTH_START_NS as i64;
    meta.kernel_release = "synthetic".into();
    meta.environment = Environment {
        kernel_release: "synthetic".into(),
        congestion_control: "cubic".into(),
        tcp_rmem: "4096 131072 6291456".into(),
        tcp_wmem: "4096 16384 4194304".into(),
        interfaces: vec![
            InterfaceOffloads {
                name: "veth-snd".into(),
                ifindex: 2,
                gro: Some(true),
                tso: Some(true),
                gso: Some(true),
            },
            InterfaceOffloads {
                name: "veth-rcv".into(),
                ifindex: 3,
                gro: Some(true),
                tso: Some(true),
                gso: Some(true),
            },
        ],
    };
    meta.synth = Some(serde_json::to_value(cfg).expect("config serializes"));
    meta
}

/// Writes the recording `cfg` describes to `output`.
pub fn write_synth(
    cfg: SynthConfig,
    output: Output,
    segment_secs: u64,
) -> std::io::Result<Summary> {
    let meta = synth_meta(&cfg);
    let encoder = BatchEncoder::new(EncodeContext::new(drop_reason_names()));
    let limits = SegmentLimits {
        segment_secs: Duration::from_secs(segment_secs),
        ..SegmentLimits::default()
    };
    let mut writer = SegmentWriter::create(output, meta, encoder, limits)?;
    for batch in SynthStream::new(cfg, BATCH) {
        writer.write(&batch)?;
    }
    writer.finish("complete")
}

/// Runs the subcommand.
pub fn run(args: &SynthArgs) -> anyhow::Result<()> {
    let mut cfg = SynthConfig::new(args.mix, args.events, args.seed);
    if let Some(f) = args.flows {
        cfg.flows = f;
    }
    let summary = write_synth(cfg, Output::from_path(&args.output), args.segment_secs)?;
    if !args.quiet {
        eprintln!(
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
