//! The terminal display of [`crate::util::progress::Progress`] that both skins use (the CLI and
//! the Python package): indicatif bars on stderr, hidden when `FAIRNC_NO_PROGRESS` is set (tests)
//! or stderr is not a terminal.

use crate::util::progress::{Phase, Progress, Unit};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Bars for every phase a stage starts, stacked while phases nest (an experiment's cells over a
/// cell's training steps).
pub struct Bars {
    multi: MultiProgress,
}

impl Bars {
    pub fn new() -> Self {
        let target = if std::env::var_os("FAIRNC_NO_PROGRESS").is_some() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Bars { multi: MultiProgress::with_draw_target(target) }
    }
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

struct BarPhase(ProgressBar);

impl Phase for BarPhase {
    fn set(&self, done: u64) {
        self.0.set_position(done);
    }

    fn status(&self, text: &str) {
        self.0.set_prefix(text.to_string());
    }
}

impl Drop for BarPhase {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bars {
    fn phase(&self, what: &str, total: u64, unit: Unit) -> Box<dyn Phase + '_> {
        let template = match unit {
            Unit::Items => "{msg} {bar:30} {pos}/{len} [{elapsed_precise}, eta {eta}] {prefix}",
            Unit::Bytes => "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        };
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
        bar.set_message(what.to_string());
        Box::new(BarPhase(bar))
    }

    fn message(&self, text: &str) {
        // Printed above the bars, which are redrawn below it.
        self.multi.suspend(|| eprintln!("{text}"));
    }
}
