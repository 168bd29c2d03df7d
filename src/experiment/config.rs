//! The experiment's grid as its TOML file gives it: base models × methods × λ × seeds, with the
//! `[debias]`, `[audit]` and `[glue]` settings every cell shares. Errors name the file and the
//! line; a cell's settings record (util/settings.rs) is what decides whether a rerun may reuse it.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

pub use super::cell::Cell;

pub const METHODS: [&str; 6] = ["none", "cda", "dropout", "bec", "ase", "contrastive"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub name: String,
    pub models: Vec<Spanned<String>>,
    /// Method → the λ values to run it with (0 = no regularizer); `none` takes only 0.
    pub methods: BTreeMap<Spanned<String>, Vec<f64>>,
    pub seeds: Vec<Spanned<u64>>,
    #[serde(default)]
    pub debias: DebiasSection,
    #[serde(default)]
    pub audit: AuditSection,
    pub glue: Option<GlueSection>,
    /// Where every cell's models run (`device = "cuda:0"`) and their float type; `fairnc
    /// experiment --device/--dtype` override them.
    #[serde(default)]
    pub device: crate::util::device::DeviceSpec,
    #[serde(default)]
    pub dtype: crate::util::device::Dtype,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
/// `[debias]`: settings of every cell's debiasing (absent: the `debias` defaults).
pub struct DebiasSection {
    pub steps: Option<Spanned<u64>>,
    pub batch_size: Option<Spanned<u64>>,
    pub lr: Option<Spanned<f64>>,
    pub max_texts: Option<Spanned<u64>>,
    pub corpus: Option<String>,
    pub max_len: Option<Spanned<u64>>,
    pub words: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
/// `[audit]`: settings of every cell's audit.
pub struct AuditSection {
    #[serde(default)]
    pub quick: bool,
    pub max_texts: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
/// `[glue]`: GLUE retention of every cell (absent: no GLUE).
pub struct GlueSection {
    pub tasks: Vec<Spanned<String>>,
    pub glue_dir: PathBuf,
    pub max_train: Option<Spanned<u64>>,
    pub epochs: Option<Spanned<u64>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// An experiment as its config file defines it: the settings and the grid's cells, in order.
#[derive(Debug)]
pub struct Experiment {
    /// The config file (the summary names it).
    pub path: PathBuf,
    pub config: Config,
    pub cells: Vec<Cell>,
}

impl Experiment {
    /// Reads and checks a config and that each of its models resolves; errors name the file and
    /// the line.
    pub fn load(path: &Path) -> Result<Experiment> {
        let e = Experiment::parse(path)?;
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        for m in &e.config.models {
            crate::registry::resolve(m.get_ref()).map_err(|err| {
                anyhow::anyhow!(
                    "{}:{}: model \"{}\": {err:#}",
                    path.display(),
                    line_of(&text, m.span().start),
                    m.get_ref()
                )
            })?;
        }
        Ok(e)
    }

    /// Reads and checks a config without resolving its models (enough to summarize cells).
    pub fn parse(path: &Path) -> Result<Experiment> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let config = read_toml(path, &text)?;
        let at = |s: std::ops::Range<usize>| format!("{}:{}", path.display(), line_of(&text, s.start));
        check_grid(&config, &at)?;
        check_debias(&config.debias, &at)?;
        at_least(&at, "audit", "max_texts", &config.audit.max_texts, 1)?;
        if let Some(g) = &config.glue {
            check_glue(g, path, &at)?;
        }
        if config.seeds.is_empty() || config.models.is_empty() || config.methods.is_empty() {
            bail!("{}: models, methods and seeds must each list at least one entry", path.display());
        }
        let cells = grid(&config);
        Ok(Experiment { path: path.to_path_buf(), config, cells })
    }

    /// The results directory when none is given: `experiment-<name>`.
    pub fn default_output(&self) -> PathBuf {
        PathBuf::from(format!("experiment-{}", self.config.name))
    }
}

fn read_toml(path: &Path, text: &str) -> Result<Config> {
    toml::from_str(text).map_err(|e| {
        let (line, setting) = match e.span() {
            // A value of the wrong type or range: quote the line, whose key the message does not name.
            Some(s) => (
                format!(":{}", line_of(text, s.start)),
                text.lines().nth(line_of(text, s.start) - 1).map(|l| format!("`{}`: ", l.trim())).unwrap_or_default(),
            ),
            None => (String::new(), String::new()),
        };
        // toml's messages run over lines ("invalid array\nexpected `]`"); errors are one line.
        anyhow::anyhow!("{}{line}: {setting}{}", path.display(), e.message().trim().replace('\n', ": "))
    })
}

type At<'a> = dyn Fn(std::ops::Range<usize>) -> String + 'a;

/// Models, methods with their λ lists, and seeds: each known, each listed once.
fn check_grid(cfg: &Config, at: &At) -> Result<()> {
    for (i, m) in cfg.models.iter().enumerate() {
        if cfg.models[..i].iter().any(|o| o.get_ref() == m.get_ref()) {
            bail!("{}: model \"{}\" is listed twice: each would be counted twice", at(m.span()), m.get_ref());
        }
    }
    for (m, lambdas) in &cfg.methods {
        if !METHODS.contains(&m.get_ref().as_str()) {
            bail!("{}: unknown method \"{}\" (methods: {})", at(m.span()), m.get_ref(), METHODS.join(", "));
        }
        if lambdas.is_empty() || lambdas.iter().any(|l| !l.is_finite() || *l < 0.0) {
            bail!("{}: method \"{}\" needs a list of λ ≥ 0 (0 = no regularizer)", at(m.span()), m.get_ref());
        }
        if m.get_ref() == "none" && lambdas.iter().any(|l| *l != 0.0) {
            bail!("{}: method \"none\" trains nothing, so it takes no regularizer: use none = [0]", at(m.span()));
        }
        if let Some(l) = lambdas.iter().enumerate().find_map(|(i, l)| lambdas[..i].contains(l).then_some(l)) {
            bail!(
                "{}: method \"{}\" lists λ = {} twice: its cells would be counted twice",
                at(m.span()),
                m.get_ref(),
                l + 0.0
            );
        }
    }
    for (i, s) in cfg.seeds.iter().enumerate() {
        if cfg.seeds[..i].iter().any(|o| o.get_ref() == s.get_ref()) {
            bail!("{}: seed {} is listed twice: its cells would be counted twice", at(s.span()), s.get_ref());
        }
    }
    Ok(())
}

fn at_least(at: &At, section: &str, key: &str, v: &Option<Spanned<u64>>, min: u64) -> Result<()> {
    match v {
        Some(v) if *v.get_ref() < min => {
            bail!("{}: [{section}] {key} = {}: must be at least {min}", at(v.span()), v.get_ref())
        }
        _ => Ok(()),
    }
}

fn check_debias(d: &DebiasSection, at: &At) -> Result<()> {
    at_least(at, "debias", "steps", &d.steps, 1)?;
    at_least(at, "debias", "batch_size", &d.batch_size, 1)?;
    at_least(at, "debias", "max_texts", &d.max_texts, 1)?;
    at_least(at, "debias", "max_len", &d.max_len, 2)?;
    if let Some(lr) = &d.lr
        && !(lr.get_ref().is_finite() && *lr.get_ref() > 0.0)
    {
        bail!("{}: [debias] lr = {}: must be a finite number above 0", at(lr.span()), lr.get_ref());
    }
    Ok(())
}

fn check_glue(g: &GlueSection, path: &Path, at: &At) -> Result<()> {
    for (i, t) in g.tasks.iter().enumerate() {
        if crate::data::glue::Task::parse(t.get_ref()).is_none() {
            bail!("{}: unknown GLUE task \"{}\" (cola, sst2, mrpc, stsb, rte, qnli, wnli)", at(t.span()), t.get_ref());
        }
        if g.tasks[..i].iter().any(|o| o.get_ref() == t.get_ref()) {
            bail!("{}: GLUE task \"{}\" is listed twice", at(t.span()), t.get_ref());
        }
    }
    if g.tasks.is_empty() {
        bail!("{}: [glue] tasks lists no task (leave out [glue] to skip GLUE)", path.display());
    }
    at_least(at, "glue", "max_train", &g.max_train, 1)?;
    at_least(at, "glue", "epochs", &g.epochs, 1)
}

/// Every cell: models × methods × λ × seeds, in the config's order.
fn grid(cfg: &Config) -> Vec<Cell> {
    let mut cells = Vec::new();
    for model in &cfg.models {
        for (method, lambdas) in &cfg.methods {
            for &lambda in lambdas {
                for seed in &cfg.seeds {
                    // + 0.0 turns −0 into 0, so both name one cell.
                    cells.push(Cell {
                        model: model.get_ref().clone(),
                        method: method.get_ref().clone(),
                        lambda: lambda + 0.0,
                        seed: *seed.get_ref(),
                    });
                }
            }
        }
    }
    cells
}

/// The settings that decide a cell's results (util/settings.rs): `[debias]` only where the cell
/// debiases, its word set always (the audit measures it).
pub fn cell_settings(cfg: &Config, cell: &Cell) -> serde_json::Value {
    let v = |x: &Option<Spanned<u64>>| serde_json::json!(x.as_ref().map(|x| *x.get_ref()));
    let d = &cfg.debias;
    let mut s = serde_json::json!({
        "model": cell.model, "method": cell.method, "lambda": cell.lambda, "seed": cell.seed,
        "[debias] words": d.words, "[audit] quick": cfg.audit.quick, "[audit] max_texts": v(&cfg.audit.max_texts),
    });
    if cell.method != "none" {
        for (k, x) in [
            ("steps", v(&d.steps)),
            ("batch_size", v(&d.batch_size)),
            ("max_texts", v(&d.max_texts)),
            ("max_len", v(&d.max_len)),
            ("lr", serde_json::json!(d.lr.as_ref().map(|x| *x.get_ref()))),
            ("corpus", serde_json::json!(d.corpus)),
        ] {
            s[format!("[debias] {k}")] = x;
        }
    }
    if let Some(g) = &cfg.glue {
        let dir = std::fs::canonicalize(&g.glue_dir).unwrap_or_else(|_| g.glue_dir.clone());
        s["[glue] tasks"] = serde_json::json!(g.tasks.iter().map(|t| t.get_ref().clone()).collect::<Vec<_>>());
        s["[glue] glue_dir"] = serde_json::json!(dir.display().to_string());
        s["[glue] max_train"] = v(&g.max_train);
        s["[glue] epochs"] = v(&g.epochs);
    }
    s
}

impl Config {
    /// The cell's debiasing (None for method `none`): the `debias` defaults, changed where
    /// `[debias]` says, with the cell's method, λ (0: no regularizer) and seed.
    pub fn debias_config(&self, c: &Cell) -> Result<Option<crate::train::DebiasConfig>> {
        if c.method == "none" {
            return Ok(None);
        }
        let d = &self.debias;
        let base = crate::train::DebiasConfig::default();
        let method = serde_json::from_value(serde_json::json!(c.method))
            .with_context(|| format!("method \"{}\" is not a debiasing method", c.method))?;
        let n = |v: &Option<Spanned<u64>>| v.as_ref().map(|v| *v.get_ref());
        Ok(Some(crate::train::DebiasConfig {
            method,
            nc3: (c.lambda > 0.0).then_some(c.lambda),
            seed: c.seed,
            steps: n(&d.steps).unwrap_or(base.steps),
            batch_size: n(&d.batch_size).map_or(base.batch_size, |v| v as usize),
            lr: d.lr.as_ref().map_or(base.lr, |v| *v.get_ref()),
            max_texts: n(&d.max_texts).map(|v| v as usize),
            corpus: d.corpus.clone(),
            max_len: n(&d.max_len).map_or(base.max_len, |v| v as usize),
            words: d.words.clone().unwrap_or(base.words.clone()),
            device: self.device,
            dtype: self.dtype,
            ..base
        }))
    }

    /// The cell's audit: `[audit]` with the cell's seed and `[debias] words`.
    pub fn audit_config(&self, c: &Cell) -> crate::audit::AuditConfig {
        crate::audit::AuditConfig {
            quick: self.audit.quick,
            words: self.debias.words.clone().unwrap_or_else(|| "gender".into()),
            max_texts: self.audit.max_texts.as_ref().map(|v| *v.get_ref() as usize),
            seed: c.seed,
            seat_dir: None,
            device: self.device,
            dtype: self.dtype,
            measures: Vec::new(),
            projection: None,
            self_debias: None,
        }
    }

    /// The cell's GLUE retention (None without `[glue]`): its tasks on the cell's seed.
    pub fn glue_config(&self, c: &Cell) -> Option<crate::bench::glue::GlueConfig> {
        let g = self.glue.as_ref()?;
        let base = crate::bench::glue::GlueConfig::default();
        Some(crate::bench::glue::GlueConfig {
            glue_dir: g.glue_dir.clone(),
            // Checked when the config was read.
            tasks: g.tasks.iter().filter_map(|t| crate::data::glue::Task::parse(t.get_ref())).collect(),
            seeds: vec![c.seed],
            settings: crate::bench::glue::GlueSettings {
                max_train: g.max_train.as_ref().map(|v| *v.get_ref() as usize),
                epochs: g.epochs.as_ref().map_or(base.settings.epochs, |v| *v.get_ref() as usize),
                device: self.device,
                dtype: self.dtype,
                ..base.settings
            },
        })
    }
}
