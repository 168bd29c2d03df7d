//! Progress bars for long jobs (hidden when stderr is not a terminal or in tests).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

fn target() -> ProgressDrawTarget {
    if std::env::var_os("FAIRNC_NO_PROGRESS").is_some() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    }
}

/// A byte-count bar for downloads.
pub fn bytes_bar(total: Option<u64>, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(total, target());
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template"),
    );
    bar.set_message(what.to_string());
    bar
}

/// A bar over items that also reports tokens per second.
pub fn items_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), target());
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} [{elapsed_precise}, eta {eta}] {prefix}")
            .expect("valid template"),
    );
    bar.set_message(what.to_string());
    bar
}
