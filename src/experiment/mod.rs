//! The paper's study as a grid of base models × methods × λ × seeds. Each cell debiases
//! ([`crate::train::debias`], unless its method is `none`), audits ([`crate::audit::run`]) and
//! optionally scores GLUE ([`crate::bench::glue::run`]) into its own directory; a finished cell
//! is skipped on re-run, a failed one is recorded and retried on the next run, and the summary
//! (`report::experiment`) is rewritten after every cell. Each cell records its settings first:
//! a rerun with changed settings is refused (or, with `overwrite`, those cells are redone),
//! never answered with the old results.

pub mod cell;
pub mod config;

pub use cell::{Cell, CellResult, Status};
pub use config::{Config, Experiment};

use crate::util::progress::{Progress, Unit};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;

/// Runs every cell of `e` not yet finished in `out` and rewrites the summary after each; returns
/// every cell's result (failed cells included: a failure is recorded, not raised).
pub fn run(e: &Experiment, out: &Path, overwrite: bool, progress: &dyn Progress) -> Result<Vec<CellResult>> {
    if let Some(g) = &e.config.glue
        && !g.glue_dir.is_dir()
    {
        return Err(crate::util::fs::not_found(format!(
            "{}: [glue] glue_dir {}: no such directory",
            e.path.display(),
            g.glue_dir.display()
        )));
    }
    clear_conflicts(e, out, overwrite, progress)?;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let phase = progress.phase("experiment cells", e.cells.len() as u64, Unit::Items);
    let mut results = Vec::new();
    for (i, cell) in e.cells.iter().enumerate() {
        phase.status(&cell.id());
        results.push(finished_or_run(e, cell, &out.join(cell.id()), progress)?);
        phase.set(i as u64 + 1);
        crate::report::experiment::write(out, &e.config.name, &e.path, &results, e.cells.len())?;
    }
    Ok(results)
}

/// Rewrites the summary in `out` from `out/cells.csv` (the per-cell numbers a finished
/// experiment wrote, e.g. a committed one) without running a cell; returns those cells.
pub fn summarize_only(e: &Experiment, out: &Path) -> Result<Vec<CellResult>> {
    let results = crate::report::experiment::read_cells_csv(&out.join("cells.csv"))?;
    crate::report::experiment::write(out, &e.config.name, &e.path, &results, e.cells.len())?;
    Ok(results)
}

/// Checks every cell directory before any cell runs, so that a refused rerun changes nothing;
/// with `overwrite`, clears the cells recorded with other settings.
fn clear_conflicts(e: &Experiment, out: &Path, overwrite: bool, progress: &dyn Progress) -> Result<()> {
    let mut conflicts = Vec::new();
    for c in &e.cells {
        let dir = out.join(c.id());
        if let Some(why) = cell::conflict(&dir, &config::cell_settings(&e.config, c))? {
            conflicts.push((dir, why));
        }
    }
    let Some((dir, why)) = conflicts.first() else { return Ok(()) };
    if !overwrite {
        let more =
            if conflicts.len() > 1 { format!(" (and {} more cells)", conflicts.len() - 1) } else { String::new() };
        bail!(
            "{}: this cell was run with other settings: {why}{more}; use another --output or pass --overwrite to redo such cells",
            dir.display()
        );
    }
    for (dir, why) in &conflicts {
        progress.message(&format!("{}: redoing ({why})", dir.display()));
        cell::clear(dir)?;
    }
    Ok(())
}

/// The cell's recorded result if it finished; otherwise runs it and records the result.
fn finished_or_run(e: &Experiment, c: &Cell, dir: &Path, progress: &dyn Progress) -> Result<CellResult> {
    let done = dir.join("result.json");
    let previous: Option<CellResult> = std::fs::read_to_string(&done).ok().and_then(|t| serde_json::from_str(&t).ok());
    if let Some(r) = previous.filter(|r| r.status == Status::Ok) {
        return Ok(r);
    }
    let began = std::time::Instant::now();
    crate::util::settings::write(dir, &config::cell_settings(&e.config, c))?;
    let r = match run_cell(&e.config, c, dir, progress) {
        Ok(metrics) => CellResult::ok(c, metrics, began.elapsed().as_secs_f64()),
        Err(err) => {
            let msg = format!("{err:#}").replace('\n', " ");
            progress.message(&format!("cell {} failed: {msg}", c.id()));
            CellResult::failed(c, msg, began.elapsed().as_secs_f64())
        }
    };
    crate::util::fs::write_atomic(&done, serde_json::to_string_pretty(&r)?.as_bytes())?;
    Ok(r)
}

/// Debias (unless `none`), audit, GLUE: the cell's headline numbers by `part.metric`.
fn run_cell(cfg: &Config, c: &Cell, dir: &Path, progress: &dyn Progress) -> Result<BTreeMap<String, f64>> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let model = match cfg.debias_config(c)? {
        None => c.model.clone(),
        Some(debias) => {
            let out = dir.join("debias");
            let trained = crate::train::debias(&c.model, &debias, &out, crate::train::OutputMode::Resume, progress)
                .context("debias")?;
            // The optimizer state is not needed once the model is saved; it is most of the disk.
            crate::train::trainer::remove_checkpoints(&out)?;
            trained.model_dir.to_string_lossy().to_string()
        }
    };
    let audit =
        crate::audit::load_and_run(&model, &cfg.audit_config(c), &dir.join("audit"), progress).context("audit")?;
    let mut metrics: BTreeMap<String, f64> =
        audit.headline().into_iter().map(|(p, m, v)| (format!("{p}.{m}"), v)).collect();
    if let Some(glue) = cfg.glue_config(c) {
        let out = dir.join("glue");
        let results = crate::bench::glue::run(&model, &glue, &out, false, progress).context("glue")?;
        crate::report::glue::write(&out, &results, None)?;
        for t in &results.tasks {
            // Non-finite means (a metric undefined on every seed) are left out, as JSON's null.
            for (k, v) in t.mean.iter().filter(|(_, v)| v.is_finite()) {
                metrics.insert(format!("glue.{}_{k}", t.task.name()), *v);
            }
        }
    }
    Ok(metrics)
}
