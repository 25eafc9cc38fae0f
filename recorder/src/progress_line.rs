//! The live status line on a terminal: events/s, bytes written, events lost. Nothing is drawn
//! when stderr is not a terminal or with `-q`.

use crate::write_pipeline::WriterStats;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The line, or nothing.
pub struct ProgressLine {
    bar: Option<ProgressBar>,
    last_events: u64,
    last_elapsed: Duration,
}

impl ProgressLine {
    /// A line drawn on stderr when `enabled`.
    pub fn new(enabled: bool) -> ProgressLine {
        let bar = enabled.then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .expect("static template is valid"),
            );
            b
        });
        ProgressLine {
            bar,
            last_events: 0,
            last_elapsed: Duration::ZERO,
        }
    }

    /// Redraws with the latest figures.
    pub fn update(&mut self, events: u64, elapsed: Duration, stats: &WriterStats, lost: u64) {
        let Some(bar) = &self.bar else { return };
        let dt = (elapsed - self.last_elapsed).as_secs_f64().max(1e-3);
        let rate = (events - self.last_events) as f64 / dt;
        self.last_events = events;
        self.last_elapsed = elapsed;
        let lost = lost + stats.queue_lost.load(Ordering::Relaxed);
        bar.set_message(format!(
            "{events} events ({rate:.0}/s), {} written, {lost} lost",
            bytesize::ByteSize::b(stats.bytes.load(Ordering::Relaxed)),
        ));
        bar.tick();
    }

    /// Removes the line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
