//! Long calls. A stage runs with the GIL released (Python's other threads go on) and reports to
//! a [`Watch`]: the terminal bars when the caller asked for progress, and on each report a look
//! at Python's signals, so that Ctrl-C stops the stage at its next report. The stop unwinds the
//! stage's stack with a private payload (no panic message, no hook), which [`long`] catches and
//! turns back into the `KeyboardInterrupt` Python raised; files a stage writes are atomic, so a
//! stop leaves what a killed CLI run would. Everything a stage reports is on the thread that
//! called it or on the library's worker threads; only the calling (main) thread sees signals.

use fairnc::util::bars::Bars;
use fairnc::util::progress::{Phase, Progress, Unit};
use pyo3::prelude::*;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// The process's one set of bars: phases of nested or background work stack in it.
static BARS: LazyLock<Bars> = LazyLock::new(Bars::new);

/// Long calls running now that show progress, and that run at all (for background work).
static SHOWING: AtomicUsize = AtomicUsize::new(0);
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// How often a report looks at Python's signals (each look takes the GIL briefly).
const SIGNAL_EVERY: Duration = Duration::from_millis(100);

/// The unwind payload of a stop.
struct Stopped;

/// The signal a stop raised, kept for [`long`] to re-raise.
static RAISED: Mutex<Option<PyErr>> = Mutex::new(None);
static LAST_LOOK: Mutex<Option<Instant>> = Mutex::new(None);

/// Stops the stage (by unwinding) if Python has a pending signal whose handler raised.
fn look_at_signals() {
    if RUNNING.load(Ordering::Relaxed) == 0 {
        return;
    }
    {
        let mut last = LAST_LOOK.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < SIGNAL_EVERY) {
            return;
        }
        *last = Some(Instant::now());
    }
    if let Err(e) = Python::attach(|py| py.check_signals()) {
        *RAISED.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        resume_unwind(Box::new(Stopped));
    }
}

struct Watch {
    show: bool,
}

struct WatchPhase<'a> {
    shown: Option<Box<dyn Phase + 'a>>,
}

impl Phase for WatchPhase<'_> {
    fn set(&self, done: u64) {
        look_at_signals();
        if let Some(p) = &self.shown {
            p.set(done);
        }
    }

    fn status(&self, text: &str) {
        if let Some(p) = &self.shown {
            p.status(text);
        }
    }
}

impl Progress for Watch {
    fn phase(&self, what: &str, total: u64, unit: Unit) -> Box<dyn Phase + '_> {
        look_at_signals();
        Box::new(WatchPhase { shown: self.show.then(|| BARS.phase(what, total, unit)) })
    }

    fn message(&self, text: &str) {
        if self.show {
            BARS.message(text);
        }
    }
}

/// Work below any stage's reach (a bundle download, the `minilm-mlm` build, truncation
/// warnings): shown while some running call shows progress, and stoppable like the call.
struct Background;

impl Progress for Background {
    fn phase(&self, what: &str, total: u64, unit: Unit) -> Box<dyn Phase + '_> {
        look_at_signals();
        let show = SHOWING.load(Ordering::Relaxed) > 0;
        Box::new(WatchPhase { shown: show.then(|| BARS.phase(what, total, unit)) })
    }

    fn message(&self, text: &str) {
        if SHOWING.load(Ordering::Relaxed) > 0 {
            BARS.message(text);
        }
    }
}

pub fn install_background() {
    fairnc::util::progress::report_background_to(Box::new(Background));
}

/// Counts a running call for as long as it lives.
struct Running {
    show: bool,
}

impl Running {
    fn start(show: bool) -> Self {
        RUNNING.fetch_add(1, Ordering::Relaxed);
        if show {
            SHOWING.fetch_add(1, Ordering::Relaxed);
        }
        Running { show }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::Relaxed);
        if self.show {
            SHOWING.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Runs `work` without the GIL, reporting to bars on stderr when `show`; Ctrl-C raises
/// `KeyboardInterrupt`, a library error its `fairnc.errors` exception, a panic `fairnc.Error`.
pub fn long<T: Send>(
    py: Python<'_>,
    show: bool,
    work: impl FnOnce(&dyn Progress) -> anyhow::Result<T> + Send,
) -> PyResult<T> {
    let outcome = py.detach(|| {
        let _running = Running::start(show);
        catch_unwind(AssertUnwindSafe(|| work(&Watch { show })))
    });
    match outcome {
        Ok(result) => result.map_err(crate::errors::to_py),
        Err(payload) if payload.is::<Stopped>() => Err(RAISED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| pyo3::exceptions::PyKeyboardInterrupt::new_err("interrupted"))),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(crate::errors::raise(py, "Error", format!("internal error (please report): {what}")))
        }
    }
}
