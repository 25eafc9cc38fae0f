//! A progress bar for long reports, drawn on stderr only when stderr is a terminal, so pipes,
//! files and CI logs never see it.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// Steps of a long run, shown as a bar with the current step's name. With `TCPTAPE_TRACE=1` in
/// the environment, each step also prints its start time and the peak memory so far to stderr
/// (for tuning the queries).
pub struct Steps {
    bar: Option<ProgressBar>,
    trace: Option<std::time::Instant>,
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Steps {
    /// A bar of `total` steps, or nothing when stderr is not a terminal or `quiet` is set.
    pub fn new(total: u64, quiet: bool) -> Steps {
        let trace = std::env::var("TCPTAPE_TRACE")
            .is_ok_and(|v| v == "1")
            .then(std::time::Instant::now);
        if quiet || !std::io::stderr().is_terminal() {
            return Steps { bar: None, trace };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed}] {bar:30} {pos}/{len} {msg}")
                .expect("valid template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Steps {
            bar: Some(bar),
            trace,
        }
    }

    /// No display at all.
    pub fn hidden() -> Steps {
        Steps {
            bar: None,
            trace: None,
        }
    }

    /// Starts the next step.
    pub fn step(&self, what: &str) {
        if let Some(t0) = self.trace {
            tcptape_common::note!(
                "[{:8.3}s, peak {} MiB] {what}",
                t0.elapsed().as_secs_f64(),
                peak_rss_kib().unwrap_or(0) / 1024
            );
        }
        if let Some(b) = &self.bar {
            b.set_message(what.to_string());
            b.inc(1);
        }
    }

    /// Adds steps (one host after another).
    pub fn add(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc_length(n);
        }
    }
}

impl Drop for Steps {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
