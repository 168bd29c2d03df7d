//! The training log, `log.jsonl`: one [`LogRecord`] a line for each step done, written by the
//! trainer, kept to the checkpoint's step on resume, and read back (typed) by the loss plots,
//! the adaptation's final loss and the experiment's training curves.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// The log's file name inside a run directory.
pub const FILE: &str = "log.jsonl";

/// One optimizer step.
///
/// The fields are declared in alphabetical order because serde writes them in declaration
/// order and the log has always had its keys sorted (it was written through serde_json's
/// sorted map): a line written today is byte for byte a line written before the type existed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogRecord {
    /// Norm of the gradient before clipping.
    #[serde(deserialize_with = "number_or_nan")]
    pub grad_norm: f64,
    /// The total loss (objective terms and λ × NC3), averaged over the micro-batches.
    #[serde(deserialize_with = "number_or_nan")]
    pub loss: f64,
    /// Learning rate of this step (after warm-up and decay).
    #[serde(deserialize_with = "number_or_nan")]
    pub lr: f64,
    /// Word classes the NC3 term saw (0 without a regularizer).
    pub nc3_classes: usize,
    /// Set on the first step of a resumed invocation: the checkpoint's step it took over at, so
    /// that a run which silently started again from zero cannot pass for a resumed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<u64>,
    /// 1-based.
    pub step: u64,
    /// Each named loss term before weighting ("mlm", "nc3", "infonce", …), averaged over the
    /// micro-batches; "nc3" is the spread itself, logged with or without λ.
    #[serde(deserialize_with = "terms_or_nan")]
    pub terms: BTreeMap<String, f64>,
    /// Tokens of this invocation so far over its time so far.
    #[serde(deserialize_with = "number_or_nan")]
    pub tokens_per_s: f64,
}

/// JSON has no NaN or infinity: serde_json writes them as `null`; they read back as NaN.
fn number_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(<Option<f64> as serde::Deserialize>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn terms_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    let terms = <BTreeMap<String, Option<f64>> as serde::Deserialize>::deserialize(d)?;
    Ok(terms.into_iter().map(|(k, v)| (k, v.unwrap_or(f64::NAN))).collect())
}

impl LogRecord {
    /// The record as its log line (without the newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a log record always serialises")
    }

    /// The record of a log line, or None for a line that is cut short or not a record.
    pub fn from_line(line: &str) -> Option<Self> {
        serde_json::from_str(line).ok()
    }
}

/// Every record of the log at `path`, in file order; a line that is not a record is an error
/// naming the file and the line.
pub fn read_log(path: &Path) -> Result<Vec<LogRecord>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{}: line {} is not a training log record", path.display(), i + 1))
        })
        .collect()
}

/// Appends records to a log, one line each, flushed as written: a killed run loses at most the
/// line being written.
pub(crate) struct LogWriter {
    file: std::fs::File,
}

impl LogWriter {
    pub(crate) fn append_to(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        Ok(LogWriter { file })
    }

    pub(crate) fn write(&mut self, record: &LogRecord) -> Result<()> {
        writeln!(self.file, "{}", record.to_line())?;
        Ok(())
    }
}

/// Keeps the log lines of steps 1..=`step` (the checkpoint resumed from) and drops the ones
/// written after it (a run killed mid-way may leave a line cut short there). A log that lacks
/// any of steps 1..=`step` — deleted, truncated, a line damaged — is refused, and left as it is:
/// resuming would leave a silent gap in the loss record.
pub(crate) fn keep_until(path: &Path, step: u64) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && step == 0 => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "{}: missing, but the checkpoint is at step {step}: the log of steps 1..={step} is lost; start the run over (--overwrite)",
                path.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
    };
    let mut kept = String::new();
    let mut next = 1;
    for (i, line) in text.lines().enumerate() {
        if next > step {
            break;
        }
        match LogRecord::from_line(line).map(|r| r.step) {
            Some(s) if s == next => {
                // The line as it was, not re-serialised: the kept part of the log is unchanged.
                kept.push_str(line);
                kept.push('\n');
                next += 1;
            }
            found => bail!(
                "{}: line {} {} where the record of step {next} was expected; the checkpoint is at step {step}, so steps {next}..={step} are missing from the log; start the run over (--overwrite)",
                path.display(),
                i + 1,
                match found {
                    Some(s) => format!("is step {s}"),
                    None => "is cut short or not a log record".into(),
                }
            ),
        }
    }
    if next <= step {
        bail!(
            "{}: ends at step {} but the checkpoint is at step {step}: the log of steps {next}..={step} is missing (truncated); start the run over (--overwrite)",
            path.display(),
            next - 1
        );
    }
    crate::util::fs::write_atomic(path, kept.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(resumed_from: Option<u64>) -> LogRecord {
        LogRecord {
            step: 3,
            loss: 5.712_345_678_9,
            terms: [("mlm".to_string(), 5.7), ("nc3".to_string(), 0.012_5)].into(),
            lr: 2e-5,
            grad_norm: 1.25,
            tokens_per_s: 1234.5,
            nc3_classes: 4,
            resumed_from,
        }
    }

    /// The line the trainer wrote before the type existed, built the same way.
    fn untyped_line(r: &LogRecord) -> String {
        let mut line = serde_json::json!({"step": r.step, "loss": r.loss, "terms": r.terms, "lr": r.lr, "grad_norm": r.grad_norm, "tokens_per_s": r.tokens_per_s, "nc3_classes": r.nc3_classes});
        if let Some(start) = r.resumed_from {
            line["resumed_from"] = start.into();
        }
        line.to_string()
    }

    #[test]
    fn a_record_is_written_as_the_untyped_log_line_was() {
        for resumed in [None, Some(2)] {
            let r = record(resumed);
            assert_eq!(r.to_line(), untyped_line(&r));
            assert_eq!(LogRecord::from_line(&r.to_line()), Some(r));
        }
        assert!(!record(None).to_line().contains("resumed_from"));
    }

    #[test]
    fn non_finite_numbers_read_back_as_nan() {
        let mut r = record(None);
        r.tokens_per_s = f64::INFINITY;
        r.terms.insert("nc3".into(), f64::NAN);
        let back = LogRecord::from_line(&r.to_line()).unwrap();
        assert!(back.tokens_per_s.is_nan() && back.terms["nc3"].is_nan());
    }

    #[test]
    fn read_log_names_a_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        std::fs::write(&path, format!("{}\n{{\"step\": 4\n", record(None).to_line())).unwrap();
        let err = format!("{:#}", read_log(&path).unwrap_err());
        assert!(err.contains("line 2 is not a training log record"), "{err}");
        std::fs::write(&path, format!("{}\n", record(Some(2)).to_line())).unwrap();
        assert_eq!(read_log(&path).unwrap(), [record(Some(2))]);
    }
}
