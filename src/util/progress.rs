//! How a long stage says how far it is. The caller passes a [`Progress`] in: the CLI draws
//! indicatif bars ([`crate::util::bars`]), as the Python package does; tests and library users who want
//! quiet pass [`Silent`]. A stage never decides how its progress is shown.

/// What a phase counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Texts, pairs, steps, cells: anything counted one by one.
    Items,
    /// Bytes of a download.
    Bytes,
}

/// The receiver of a stage's progress.
pub trait Progress: Sync {
    /// Starts a phase of `total` units named `what` (e.g. "statistics", "scoring"); the phase
    /// ends when the returned handle is dropped.
    fn phase(&self, what: &str, total: u64, unit: Unit) -> Box<dyn Phase + '_>;

    /// A line for the user ("resuming from step 40"), shown without breaking a phase's display.
    fn message(&self, _text: &str) {}
}

/// One running phase of a stage.
pub trait Phase {
    /// Units done so far.
    fn set(&self, done: u64);
    /// A short live status beside the count, such as "loss 0.4123" or "5300 tok/s".
    fn status(&self, _text: &str) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

struct SilentPhase;

impl Phase for SilentPhase {
    fn set(&self, _done: u64) {}
}

impl Progress for Silent {
    fn phase(&self, _what: &str, _total: u64, _unit: Unit) -> Box<dyn Phase + '_> {
        Box::new(SilentPhase)
    }
}

/// Where work done on first use and warnings from deep below any stage report: a bundle
/// download or the `minilm-mlm` build happens wherever a name is first resolved, and a
/// truncation warning wherever texts are encoded, below the reach of the caller's progress, so
/// they report to one process-wide receiver instead. The CLI installs its bars here; without
/// that they are silent.
static BACKGROUND: std::sync::OnceLock<Box<dyn Progress + Send>> = std::sync::OnceLock::new();

/// Installs the receiver of first-use work (once per process; later calls are ignored).
pub fn report_background_to(progress: Box<dyn Progress + Send>) {
    let _ = BACKGROUND.set(progress);
}

/// The receiver of first-use work (downloads, the `minilm-mlm` build).
pub fn background() -> &'static dyn Progress {
    match BACKGROUND.get() {
        Some(p) => p.as_ref(),
        None => &Silent,
    }
}
