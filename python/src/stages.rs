//! The library's stages for Python: options (JSON) → the stage's config → one call → the
//! result as the JSON the CLI writes, with the text the CLI prints. Where the caller names an
//! output directory, the same files as the command's are written there; without one, a stage
//! that needs a working directory gets a temporary one, removed afterwards.

use crate::call::long;
use crate::errors::IntoPy;
use crate::model::Model;
use crate::options::{names, overlay};
use anyhow::{Context, Result, bail};
use fairnc::audit::AuditConfig;
use fairnc::bench::EvalConfig;
use fairnc::bench::glue::GlueConfig;
use fairnc::collapse::CollapseConfig;
use fairnc::project::ProjectConfig;
use fairnc::report;
use fairnc::train::{DebiasConfig, OutputMode};
use pyo3::prelude::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The directory a stage works in: the caller's, or a temporary one living as long as this.
enum WorkDir {
    Given(PathBuf),
    Temporary(tempfile::TempDir),
}

impl WorkDir {
    fn new(output: Option<PathBuf>) -> Result<Self> {
        Ok(match output {
            Some(dir) => WorkDir::Given(dir),
            None => WorkDir::Temporary(tempfile::tempdir().context("cannot create a temporary directory")?),
        })
    }

    fn path(&self) -> &Path {
        match self {
            WorkDir::Given(p) => p,
            WorkDir::Temporary(t) => t.path(),
        }
    }

    /// The directory when the caller gave it (results are then also written as files).
    fn given(&self) -> Option<&Path> {
        match self {
            WorkDir::Given(p) => Some(p),
            WorkDir::Temporary(_) => None,
        }
    }
}

fn to_json(v: Value) -> PyResult<String> {
    serde_json::to_string(&v).map_err(anyhow::Error::from).py_err()
}

/// The option names and default values of a stage's config, as JSON (for the docs and stubs).
#[pyfunction]
pub fn defaults(stage: &str) -> PyResult<String> {
    let value = match stage {
        "collapse" => serde_json::to_value(CollapseConfig::default()),
        "evaluate" => serde_json::to_value(EvalConfig::default()),
        "audit" => serde_json::to_value(AuditConfig::default()),
        "debias" => serde_json::to_value(DebiasConfig::default()),
        "project" => serde_json::to_value(ProjectConfig::default()),
        "glue" => serde_json::to_value(GlueConfig::default()),
        other => return Err(anyhow::anyhow!("no stage called {other:?}")).py_err(),
    };
    to_json(value.map_err(anyhow::Error::from).py_err()?)
}

#[pyfunction]
#[pyo3(signature = (model, options, output = None, overwrite = false, progress = true))]
pub fn collapse(
    py: Python<'_>,
    model: &Model,
    options: &str,
    output: Option<PathBuf>,
    overwrite: bool,
    progress: bool,
) -> PyResult<String> {
    let m = model.inner.as_ref();
    let out = long(py, progress, |p| {
        let cfg: CollapseConfig = overlay("collapse", &CollapseConfig::default(), options)?;
        cfg.validate()?;
        let dir = WorkDir::new(output)?;
        let result = fairnc::collapse::measure(m, &cfg, dir.path(), overwrite, p)?;
        if let Some(dir) = dir.given() {
            report::collapse::write(dir, &result)?;
        }
        Ok(json!({"result": result, "markdown": report::collapse::markdown(&result)}))
    })?;
    to_json(out)
}

#[pyfunction]
#[pyo3(signature = (model, options, output = None, progress = true))]
pub fn evaluate(
    py: Python<'_>,
    model: &Model,
    options: &str,
    output: Option<PathBuf>,
    progress: bool,
) -> PyResult<String> {
    let m = model.inner.as_ref();
    // SEAT's permutations follow the model's seed, as `fairnc eval --seed` sets both.
    let defaults = EvalConfig { seed: model.seed, ..EvalConfig::default() };
    let out = long(py, progress, |p| {
        let cfg: EvalConfig = overlay("evaluate", &defaults, options)?;
        let evaluation = fairnc::bench::evaluate(m, &cfg, p)?;
        if let Some(dir) = &output {
            report::eval::write(dir, &evaluation)?;
        }
        let markdown = report::eval::markdown(&evaluation.results);
        Ok(json!({"result": evaluation, "markdown": markdown}))
    })?;
    to_json(out)
}

#[pyfunction]
#[pyo3(signature = (model, options, output = None, progress = true))]
pub fn audit(
    py: Python<'_>,
    model: &Model,
    options: &str,
    output: Option<PathBuf>,
    progress: bool,
) -> PyResult<String> {
    let m = model.inner.as_ref();
    let defaults = AuditConfig { seed: model.seed, ..AuditConfig::default() };
    let out = long(py, progress, |p| {
        let cfg: AuditConfig = overlay("audit", &defaults, options)?;
        if cfg.seed != model.seed {
            bail!(
                "audit: seed {} differs from the model's load seed {}: load the model with seed={}",
                cfg.seed,
                model.seed,
                cfg.seed
            );
        }
        let dir = WorkDir::new(output)?;
        let audit = fairnc::audit::run(m, &cfg, dir.path(), p)?;
        let headline: Vec<Value> = audit
            .headline()
            .into_iter()
            .map(|(part, metric, value)| json!({"part": part, "metric": metric, "value": value}))
            .collect();
        let markdown = report::audit::document(&audit).markdown();
        Ok(json!({"result": audit, "headline": headline, "markdown": markdown}))
    })?;
    to_json(out)
}

/// A stage that trains fresh copies takes the model by name: a `Model`'s own with its load seed,
/// or a string (seed 0, the CLI's default).
fn model_name(model: &Bound<'_, PyAny>) -> PyResult<(String, u64)> {
    if let Ok(m) = model.cast::<Model>() {
        return Ok((m.get().inner.name.clone(), m.get().seed));
    }
    Ok((model.extract::<String>()?, 0))
}

#[pyfunction]
#[pyo3(signature = (model, options, output, mode = "new", progress = true))]
pub fn debias(
    py: Python<'_>,
    model: &Bound<'_, PyAny>,
    options: &str,
    output: PathBuf,
    mode: &str,
    progress: bool,
) -> PyResult<String> {
    let (name, seed) = model_name(model)?;
    let mode = match mode {
        "new" => OutputMode::New,
        "resume" => OutputMode::Resume,
        "overwrite" => OutputMode::Overwrite,
        other => {
            return Err(crate::errors::raise(
                py,
                "InputError",
                format!("debias: mode must be new, resume or overwrite, not {other:?}"),
            ));
        }
    };
    let defaults = DebiasConfig { seed, ..DebiasConfig::default() };
    let out = long(py, progress, |p| {
        let cfg: DebiasConfig = overlay("debias", &defaults, options)?;
        let result = fairnc::train::debias(&name, &cfg, &output, mode, p)?;
        Ok(json!({"result": result}))
    })?;
    to_json(out)
}

/// A post-hoc projection (SentenceDebias or INLP) of the model into `output`, as `fairnc debias
/// --method sentence-debias|inlp` writes it.
#[pyfunction]
#[pyo3(signature = (model, options, output, overwrite = false, progress = true))]
pub fn project(
    py: Python<'_>,
    model: &Bound<'_, PyAny>,
    options: &str,
    output: PathBuf,
    overwrite: bool,
    progress: bool,
) -> PyResult<String> {
    let (name, seed) = model_name(model)?;
    let defaults = ProjectConfig { seed, ..ProjectConfig::default() };
    let out = long(py, progress, |p| {
        let cfg: ProjectConfig = overlay("project", &defaults, options)?;
        fairnc::project::prepare_output(&output, overwrite)?;
        let result = fairnc::project::project(&name, &cfg, &output, p)?;
        Ok(json!({"result": result, "markdown": fairnc::project::markdown(&result)}))
    })?;
    to_json(out)
}

#[pyfunction]
#[pyo3(signature = (model, options, output, compare = None, overwrite = false, progress = true))]
pub fn glue(
    py: Python<'_>,
    model: &Bound<'_, PyAny>,
    options: &str,
    output: PathBuf,
    compare: Option<String>,
    overwrite: bool,
    progress: bool,
) -> PyResult<String> {
    // GLUE's runs take their seeds from the config, not the model's load.
    let (name, _) = model_name(model)?;
    let out = long(py, progress, |p| {
        let cfg: GlueConfig = overlay("glue", &GlueConfig::default(), options)?;
        if cfg.glue_dir.as_os_str().is_empty() {
            bail!("glue: glue_dir is required (options: {})", names(&GlueConfig::default()).join(", "));
        }
        let results = fairnc::bench::glue::run(&name, &cfg, &output, overwrite, p)?;
        let base = match &compare {
            Some(b) => Some(fairnc::bench::glue::base_results(b, &cfg, &output, overwrite, p)?),
            None => None,
        };
        report::glue::write(&output, &results, base.as_ref())?;
        let markdown = report::glue::markdown(&results, base.as_ref());
        Ok(json!({"result": results, "base": base, "markdown": markdown}))
    })?;
    to_json(out)
}
