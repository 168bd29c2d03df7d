//! One cell of the grid (a base model, a method, a λ, a seed), its directory, and its result.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// One cell of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub model: String,
    pub method: String,
    pub lambda: f64,
    pub seed: u64,
}

impl Cell {
    pub fn id(&self) -> String {
        let model: String = self
            .model
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
            .collect();
        format!("{model}/{}-l{}-s{}", self.method, self.lambda, self.seed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CellResult {
    pub model: String,
    pub method: String,
    pub lambda: f64,
    pub seed: u64,
    pub status: Status,
    pub error: Option<String>,
    #[serde(deserialize_with = "crate::util::stats::nan_map")]
    pub metrics: BTreeMap<String, f64>,
    pub seconds: f64,
}

impl CellResult {
    pub fn ok(c: &Cell, metrics: BTreeMap<String, f64>, seconds: f64) -> Self {
        CellResult {
            model: c.model.clone(),
            method: c.method.clone(),
            lambda: c.lambda,
            seed: c.seed,
            status: Status::Ok,
            error: None,
            metrics,
            seconds,
        }
    }

    pub fn failed(c: &Cell, error: String, seconds: f64) -> Self {
        CellResult {
            model: c.model.clone(),
            method: c.method.clone(),
            lambda: c.lambda,
            seed: c.seed,
            status: Status::Failed,
            error: Some(error),
            metrics: BTreeMap::new(),
            seconds,
        }
    }

    pub(crate) fn config(&self) -> (String, String, String) {
        (self.model.clone(), self.method.clone(), lambda_label(self.lambda))
    }
}

/// λ as tables show it: 0 for no regularizer.
pub fn lambda_label(l: f64) -> String {
    if l == 0.0 { "0".into() } else { format!("{l}") }
}

/// What a cell writes in its directory (and all `--overwrite` removes).
pub const CELL_OUTPUTS: [&str; 5] = ["result.json", crate::util::settings::FILE, "debias", "audit", "glue"];

/// Why the cell's directory cannot be reused with these settings, if it cannot.
pub fn conflict(dir: &Path, settings: &serde_json::Value) -> Result<Option<String>> {
    Ok(match crate::util::settings::read(dir)? {
        Some(recorded) => crate::util::settings::difference(&recorded, settings),
        None if CELL_OUTPUTS.iter().any(|n| dir.join(n).exists()) => {
            Some("no settings recorded (an older fairnc ran it)".into())
        }
        None => None,
    })
}

pub fn clear(dir: &Path) -> Result<()> {
    for name in CELL_OUTPUTS {
        let p = dir.join(name);
        if p.is_dir() {
            std::fs::remove_dir_all(&p).with_context(|| format!("{}: cannot remove", p.display()))?;
        } else if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("{}: cannot remove", p.display()))?;
        }
    }
    Ok(())
}
