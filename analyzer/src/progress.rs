//! A progress bar for long reports, drawn on stderr only when stderr is a terminal, so pipes,
//! files and CI logs never see it.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// Steps of a long run, shown as a bar with the current step's name.
pub struct Steps {
    bar: Option<ProgressBar>,
}

impl Steps {
    /// A bar of `total` steps, or nothing when stderr is not a terminal or `quiet` is set.
    pub fn new(total: u64, quiet: bool) -> Steps {
        if quiet || !std::io::stderr().is_terminal() {
            return Steps::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed}] {bar:30} {pos}/{len} {msg}")
                .expect("valid template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Steps { bar: Some(bar) }
    }

    /// No display at all.
    pub fn hidden() -> Steps {
        Steps { bar: None }
    }

    /// Starts the next step.
    pub fn step(&self, what: &str) {
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
