//! `fairnc experiment --config FILE.toml`: the paper's study as a grid of base models × methods
//! × λ × seeds. Each cell calls the `debias`, `audit` and (optionally) `glue` commands into its
//! own directory; a finished cell is skipped on re-run, a failed one is recorded and retried on
//! the next run, and the summary (report/experiment.rs) is rewritten after every cell.

use crate::report::experiment::{CellResult, Status};
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    config: PathBuf,
    /// Results directory (default: `experiment-<name>` from the config).
    #[arg(long)]
    output: Option<PathBuf>,
}

pub const METHODS: [&str; 6] = ["none", "cda", "dropout", "bec", "ase", "contrastive"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub name: String,
    pub models: Vec<Spanned<String>>,
    /// Method → the λ values to run it with (0 = no regularizer); `none` takes only 0.
    pub methods: BTreeMap<Spanned<String>, Vec<f64>>,
    pub seeds: Vec<u64>,
    #[serde(default)]
    pub debias: DebiasConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    pub glue: Option<GlueConfig>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DebiasConfig {
    pub steps: Option<u64>,
    pub batch_size: Option<usize>,
    pub lr: Option<f64>,
    pub max_texts: Option<usize>,
    pub corpus: Option<String>,
    pub max_len: Option<usize>,
    pub words: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    #[serde(default)]
    pub quick: bool,
    pub max_texts: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlueConfig {
    pub tasks: Vec<Spanned<String>>,
    pub glue_dir: PathBuf,
    pub max_train: Option<usize>,
    pub epochs: Option<usize>,
}

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
        let model: String = self.model.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
        format!("{model}/{}-l{}-s{}", self.method, self.lambda, self.seed)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Reads and checks a config; errors name the file and the line.
pub fn load(path: &Path) -> Result<(Config, Vec<Cell>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let cfg: Config = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| format!(":{}", line_of(&text, s.start))).unwrap_or_default();
        // toml's messages run over lines ("invalid array\nexpected `]`"); errors are one line.
        anyhow::anyhow!("{}{line}: {}", path.display(), e.message().trim_end().replace('\n', ": "))
    })?;
    let at = |s: std::ops::Range<usize>| format!("{}:{}", path.display(), line_of(&text, s.start));
    for m in &cfg.models {
        crate::model::resolve::resolve(m.get_ref()).map_err(|e| anyhow::anyhow!("{}: model \"{}\": {e:#}", at(m.span()), m.get_ref()))?;
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
    }
    if let Some(g) = &cfg.glue {
        for t in &g.tasks {
            if crate::data::glue::Task::parse(t.get_ref()).is_none() {
                bail!("{}: unknown GLUE task \"{}\" (cola, sst2, mrpc, stsb, rte, qnli, wnli)", at(t.span()), t.get_ref());
            }
        }
    }
    if cfg.seeds.is_empty() || cfg.models.is_empty() || cfg.methods.is_empty() {
        bail!("{}: models, methods and seeds must each list at least one entry", path.display());
    }
    let mut cells = Vec::new();
    for model in &cfg.models {
        for (method, lambdas) in &cfg.methods {
            for &lambda in lambdas {
                for &seed in &cfg.seeds {
                    cells.push(Cell { model: model.get_ref().clone(), method: method.get_ref().clone(), lambda, seed });
                }
            }
        }
    }
    Ok((cfg, cells))
}

pub fn run(a: Args) -> Result<()> {
    let (cfg, cells) = load(&a.config)?;
    let out = a.output.clone().unwrap_or_else(|| PathBuf::from(format!("experiment-{}", cfg.name)));
    std::fs::create_dir_all(&out).with_context(|| format!("{}: cannot create", out.display()))?;
    let began = std::time::Instant::now();
    let bar = crate::report::progress::items_bar(cells.len() as u64, "experiment cells");
    let mut results = Vec::new();
    for cell in &cells {
        let dir = out.join(cell.id());
        let done = dir.join("result.json");
        let previous: Option<CellResult> = std::fs::read_to_string(&done).ok().and_then(|t| serde_json::from_str(&t).ok());
        let result = match previous {
            Some(r) if r.status == Status::Ok => r,
            _ => {
                bar.set_prefix(cell.id());
                let t = std::time::Instant::now();
                let r = match run_cell(&cfg, cell, &dir) {
                    Ok(metrics) => CellResult::ok(cell, metrics, t.elapsed().as_secs_f64()),
                    Err(e) => {
                        let msg = format!("{e:#}").replace('\n', " ");
                        bar.suspend(|| eprintln!("cell {} failed: {msg}", cell.id()));
                        CellResult::failed(cell, msg, t.elapsed().as_secs_f64())
                    }
                };
                std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
                crate::util::fs::write_atomic(&done, serde_json::to_string_pretty(&r)?.as_bytes())?;
                r
            }
        };
        results.push(result);
        bar.inc(1);
        crate::report::experiment::write(&out, &cfg.name, &a.config, &results, cells.len())?;
    }
    bar.finish_and_clear();
    let failed = results.iter().filter(|r| r.status != Status::Ok).count();
    println!(
        "{} cells ({} failed) in {:.0} s; summary in {}",
        results.len(),
        failed,
        began.elapsed().as_secs_f64(),
        out.join("summary.md").display()
    );
    Ok(())
}

/// Debias (unless `none`), audit, GLUE: the cell's headline numbers by `part.metric`.
fn run_cell(cfg: &Config, cell: &Cell, dir: &Path) -> Result<BTreeMap<String, f64>> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let s = |p: &Path| p.to_string_lossy().to_string();
    let seed = cell.seed.to_string();
    let model = if cell.method == "none" {
        cell.model.clone()
    } else {
        let d = &cfg.debias;
        let out = dir.join("debias");
        let mut args = vec!["debias".to_string(), "--model".into(), cell.model.clone(), "--seed".into(), seed.clone(), "--method".into(), cell.method.clone(), "--output".into(), s(&out), "--resume".into()];
        if cell.lambda > 0.0 {
            args.extend(["--nc3".into(), cell.lambda.to_string()]);
        }
        let mut opt = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                args.extend([flag.to_string(), v]);
            }
        };
        opt("--steps", d.steps.map(|v| v.to_string()));
        opt("--batch-size", d.batch_size.map(|v| v.to_string()));
        opt("--lr", d.lr.map(|v| v.to_string()));
        opt("--max-texts", d.max_texts.map(|v| v.to_string()));
        opt("--corpus", d.corpus.clone());
        opt("--max-len", d.max_len.map(|v| v.to_string()));
        opt("--words", d.words.clone());
        super::run_subcommand(&args.iter().map(String::as_str).collect::<Vec<_>>()).context("debias")?;
        // The optimizer state is not needed once the model is saved; it is most of the disk.
        crate::train::trainer::remove_checkpoints(&out)?;
        s(&out.join("model"))
    };
    let audit_args = super::audit::Args {
        model: model.clone(),
        output: None,
        quick: cfg.audit.quick,
        words: cfg.debias.words.clone().unwrap_or_else(|| "gender".into()),
        max_texts: cfg.audit.max_texts,
        seed: cell.seed,
    };
    let audit = super::audit::audit(&audit_args, &dir.join("audit")).context("audit")?;
    let mut metrics: BTreeMap<String, f64> = audit.headline().into_iter().map(|(p, m, v)| (format!("{p}.{m}"), v)).collect();
    if let Some(g) = &cfg.glue {
        let tasks: Vec<String> = g.tasks.iter().map(|t| t.get_ref().clone()).collect();
        let out = dir.join("glue");
        let mut args = vec!["glue".to_string(), "--model".into(), model, "--glue-dir".into(), s(&g.glue_dir), "--tasks".into(), tasks.join(","), "--seeds".into(), seed, "--output".into(), s(&out)];
        if let Some(n) = g.max_train {
            args.extend(["--max-train".into(), n.to_string()]);
        }
        if let Some(n) = g.epochs {
            args.extend(["--epochs".into(), n.to_string()]);
        }
        super::run_subcommand(&args.iter().map(String::as_str).collect::<Vec<_>>()).context("glue")?;
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("glue.json"))?)?;
        for t in v["model"]["tasks"].as_array().into_iter().flatten() {
            let task = t["task"].as_str().unwrap_or("?");
            for (k, x) in t["mean"].as_object().into_iter().flatten() {
                if let Some(x) = x.as_f64() {
                    metrics.insert(format!("glue.{task}_{k}"), x);
                }
            }
        }
    }
    Ok(metrics)
}
