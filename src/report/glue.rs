//! The GLUE table: per task and metric, mean ± std over seeds (×100, as GLUE papers print), and
//! beside it a base model with the difference.

use crate::bench::glue::{GlueResults, metric_names};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

/// Writes `glue.json` (the model's results and the base's, or null) and `glue.md` in `out`
/// (created if missing).
pub fn write(out: &Path, r: &GlueResults, base: Option<&GlueResults>) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let json = serde_json::json!({ "model": r, "base": base });
    crate::util::fs::write_atomic(&out.join("glue.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    crate::util::fs::write_atomic(&out.join("glue.md"), markdown(r, base).as_bytes())
}

fn cell(mean: f64, std: f64) -> String {
    if !mean.is_finite() {
        return "— (undefined: constant predictions)".into();
    }
    if std.is_finite() { format!("{:.2} ± {:.2}", mean * 100.0, std * 100.0) } else { format!("{:.2}", mean * 100.0) }
}

pub fn markdown(r: &GlueResults, base: Option<&GlueResults>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# GLUE: {}\n", r.model);
    let st = &r.settings;
    let _ = writeln!(
        s,
        "Dev-set scores ×100, mean ± sample std over seeds {:?}; {} epochs, lr {}, batch {}, max length {}{}.\n",
        r.seeds,
        st.epochs,
        st.lr,
        st.batch_size,
        st.max_len,
        st.max_train.map(|n| format!(", training sets subsampled to at most {n} examples")).unwrap_or_default()
    );
    match base {
        Some(b) => {
            let _ = writeln!(
                s,
                "| task | metric | {} | {} (base) | Δ |\n| --- | --- | ---: | ---: | ---: |",
                r.model, b.model
            );
        }
        None => {
            let _ = writeln!(
                s,
                "| task | metric | {} | train examples | s / epoch |\n| --- | --- | ---: | ---: | ---: |",
                r.model
            );
        }
    }
    for t in &r.tasks {
        for m in metric_names(t.task) {
            let (mean, std) = (t.mean[*m], t.std[*m]);
            match base.and_then(|b| b.tasks.iter().find(|x| x.task == t.task)) {
                Some(bt) => {
                    let (bm, bs) = (bt.mean[*m], bt.std[*m]);
                    let _ = writeln!(
                        s,
                        "| {} | {m} | {} | {} | {:+.2} |",
                        t.task.name(),
                        cell(mean, std),
                        cell(bm, bs),
                        (mean - bm) * 100.0
                    );
                }
                None if base.is_some() => {
                    let _ = writeln!(s, "| {} | {m} | {} | — | — |", t.task.name(), cell(mean, std));
                }
                None => {
                    let n = t.runs.first().map(|x| x.train_examples).unwrap_or(0);
                    let secs =
                        crate::util::stats::mean(&t.runs.iter().map(|x| x.seconds_per_epoch).collect::<Vec<_>>());
                    let _ = writeln!(s, "| {} | {m} | {} | {n} | {secs:.0} |", t.task.name(), cell(mean, std));
                }
            }
        }
    }
    s
}
