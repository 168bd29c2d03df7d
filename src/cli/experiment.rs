//! `fairnc experiment --config FILE.toml`: the paper's study as a grid of base models × methods
//! × λ × seeds. Each cell calls the `debias`, `audit` and (optionally) `glue` commands into its
//! own directory; a finished cell is skipped on re-run, a failed one is recorded and retried on
//! the next run, and the summary (report/experiment.rs) is rewritten after every cell. Each cell
//! records its settings first: a rerun with changed settings is refused (or, with
//! `--overwrite`, those cells are redone), never answered with the old results.

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
    /// Redo cells in OUTPUT that were run with other settings (a changed `[debias]` step count,
    /// lr, model, GLUE directory, ...) instead of refusing them.
    #[arg(long)]
    overwrite: bool,
    /// Run no cell: rewrite the summary in OUTPUT from its `cells.csv` (the per-cell numbers a
    /// finished experiment wrote, e.g. a committed one).
    #[arg(long, conflicts_with = "overwrite")]
    summarize_only: bool,
}

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
    pub debias: DebiasConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    pub glue: Option<GlueConfig>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DebiasConfig {
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
pub struct AuditConfig {
    #[serde(default)]
    pub quick: bool,
    pub max_texts: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlueConfig {
    pub tasks: Vec<Spanned<String>>,
    pub glue_dir: PathBuf,
    pub max_train: Option<Spanned<u64>>,
    pub epochs: Option<Spanned<u64>>,
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
        let model: String = self
            .model
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
            .collect();
        format!("{model}/{}-l{}-s{}", self.method, self.lambda, self.seed)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Reads and checks a config; errors name the file and the line.
pub fn load(path: &Path) -> Result<(Config, Vec<Cell>)> {
    let (cfg, cells) = parse(path)?;
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    for m in &cfg.models {
        crate::registry::resolve(m.get_ref()).map_err(|e| {
            anyhow::anyhow!("{}:{}: model \"{}\": {e:#}", path.display(), line_of(&text, m.span().start), m.get_ref())
        })?;
    }
    Ok((cfg, cells))
}

/// Reads and checks a config without resolving its models (enough to summarize cells).
pub fn parse(path: &Path) -> Result<(Config, Vec<Cell>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let cfg: Config = toml::from_str(&text).map_err(|e| {
        let (line, setting) = match e.span() {
            // A value of the wrong type or range: quote the line, whose key the message does not name.
            Some(s) => (
                format!(":{}", line_of(&text, s.start)),
                text.lines().nth(line_of(&text, s.start) - 1).map(|l| format!("`{}`: ", l.trim())).unwrap_or_default(),
            ),
            None => (String::new(), String::new()),
        };
        // toml's messages run over lines ("invalid array\nexpected `]`"); errors are one line.
        anyhow::anyhow!("{}{line}: {setting}{}", path.display(), e.message().trim().replace('\n', ": "))
    })?;
    let at = |s: std::ops::Range<usize>| format!("{}:{}", path.display(), line_of(&text, s.start));
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
    let at_least = |section: &str, key: &str, v: &Option<Spanned<u64>>, min: u64| -> Result<()> {
        match v {
            Some(v) if *v.get_ref() < min => {
                bail!("{}: [{section}] {key} = {}: must be at least {min}", at(v.span()), v.get_ref())
            }
            _ => Ok(()),
        }
    };
    let d = &cfg.debias;
    at_least("debias", "steps", &d.steps, 1)?;
    at_least("debias", "batch_size", &d.batch_size, 1)?;
    at_least("debias", "max_texts", &d.max_texts, 1)?;
    at_least("debias", "max_len", &d.max_len, 2)?;
    if let Some(lr) = &d.lr {
        if !(lr.get_ref().is_finite() && *lr.get_ref() > 0.0) {
            bail!("{}: [debias] lr = {}: must be a finite number above 0", at(lr.span()), lr.get_ref());
        }
    }
    at_least("audit", "max_texts", &cfg.audit.max_texts, 1)?;
    if let Some(g) = &cfg.glue {
        for (i, t) in g.tasks.iter().enumerate() {
            if crate::data::glue::Task::parse(t.get_ref()).is_none() {
                bail!(
                    "{}: unknown GLUE task \"{}\" (cola, sst2, mrpc, stsb, rte, qnli, wnli)",
                    at(t.span()),
                    t.get_ref()
                );
            }
            if g.tasks[..i].iter().any(|o| o.get_ref() == t.get_ref()) {
                bail!("{}: GLUE task \"{}\" is listed twice", at(t.span()), t.get_ref());
            }
        }
        if g.tasks.is_empty() {
            bail!("{}: [glue] tasks lists no task (leave out [glue] to skip GLUE)", path.display());
        }
        at_least("glue", "max_train", &g.max_train, 1)?;
        at_least("glue", "epochs", &g.epochs, 1)?;
    }
    if cfg.seeds.is_empty() || cfg.models.is_empty() || cfg.methods.is_empty() {
        bail!("{}: models, methods and seeds must each list at least one entry", path.display());
    }
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
    Ok((cfg, cells))
}

/// The settings that decide a cell's results (util/settings.rs): `[debias]` only where the cell
/// debiases, its word set always (the audit measures it).
fn cell_settings(cfg: &Config, cell: &Cell) -> serde_json::Value {
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

/// What a cell writes in its directory (and all `--overwrite` removes).
const CELL_OUTPUTS: [&str; 5] = ["result.json", crate::util::settings::FILE, "debias", "audit", "glue"];

/// Why the cell's directory cannot be reused with these settings, if it cannot.
fn cell_conflict(dir: &Path, settings: &serde_json::Value) -> Result<Option<String>> {
    Ok(match crate::util::settings::read(dir)? {
        Some(recorded) => crate::util::settings::difference(&recorded, settings),
        None if CELL_OUTPUTS.iter().any(|n| dir.join(n).exists()) => {
            Some("no settings recorded (an older fairnc ran it)".into())
        }
        None => None,
    })
}

fn clear_cell(dir: &Path) -> Result<()> {
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

/// Rewrites the summary in `out` from `out/cells.csv` without running a cell.
fn summarize_only(cfg: &Config, config: &Path, planned: usize, out: &Path) -> Result<()> {
    let results = crate::report::experiment::read_cells_csv(&out.join("cells.csv"))?;
    crate::report::experiment::write(out, &cfg.name, config, &results, planned)?;
    println!("{} cells read; summary in {}", results.len(), out.join("summary.md").display());
    Ok(())
}

pub fn run(a: Args) -> Result<()> {
    let (cfg, cells) = if a.summarize_only { parse(&a.config)? } else { load(&a.config)? };
    let out = a.output.clone().unwrap_or_else(|| PathBuf::from(format!("experiment-{}", cfg.name)));
    if a.summarize_only {
        return summarize_only(&cfg, &a.config, cells.len(), &out);
    }
    if let Some(g) = &cfg.glue {
        if !g.glue_dir.is_dir() {
            bail!("{}: [glue] glue_dir {}: no such directory", a.config.display(), g.glue_dir.display());
        }
    }
    // Every cell directory is checked before any cell runs: a refused rerun changes nothing.
    let mut conflicts = Vec::new();
    for cell in &cells {
        let dir = out.join(cell.id());
        if let Some(why) = cell_conflict(&dir, &cell_settings(&cfg, cell))? {
            conflicts.push((dir, why));
        }
    }
    if let Some((dir, why)) = conflicts.first() {
        if !a.overwrite {
            let more =
                if conflicts.len() > 1 { format!(" (and {} more cells)", conflicts.len() - 1) } else { String::new() };
            bail!(
                "{}: this cell was run with other settings: {why}{more}; use another --output or pass --overwrite to redo such cells",
                dir.display()
            );
        }
        for (dir, why) in &conflicts {
            eprintln!("{}: redoing ({why})", dir.display());
            clear_cell(dir)?;
        }
    }
    std::fs::create_dir_all(&out).with_context(|| format!("{}: cannot create", out.display()))?;
    let began = std::time::Instant::now();
    let bar = crate::report::progress::items_bar(cells.len() as u64, "experiment cells");
    let mut results = Vec::new();
    for cell in &cells {
        let dir = out.join(cell.id());
        let done = dir.join("result.json");
        let previous: Option<CellResult> =
            std::fs::read_to_string(&done).ok().and_then(|t| serde_json::from_str(&t).ok());
        let result = match previous {
            Some(r) if r.status == Status::Ok => r,
            _ => {
                bar.set_prefix(cell.id());
                let t = std::time::Instant::now();
                crate::util::settings::write(&dir, &cell_settings(&cfg, cell))?;
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
        let mut args = vec![
            "debias".to_string(),
            "--model".into(),
            cell.model.clone(),
            "--seed".into(),
            seed.clone(),
            "--method".into(),
            cell.method.clone(),
            "--output".into(),
            s(&out),
            "--resume".into(),
        ];
        if cell.lambda > 0.0 {
            args.extend(["--nc3".into(), cell.lambda.to_string()]);
        }
        let mut opt = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                args.extend([flag.to_string(), v]);
            }
        };
        let shown = |v: &Option<Spanned<u64>>| v.as_ref().map(|v| v.get_ref().to_string());
        opt("--steps", shown(&d.steps));
        opt("--batch-size", shown(&d.batch_size));
        opt("--lr", d.lr.as_ref().map(|v| v.get_ref().to_string()));
        opt("--max-texts", shown(&d.max_texts));
        opt("--corpus", d.corpus.clone());
        opt("--max-len", shown(&d.max_len));
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
        max_texts: cfg.audit.max_texts.as_ref().map(|v| *v.get_ref() as usize),
        seed: cell.seed,
        seat_dir: None,
    };
    let audit = super::audit::audit(&audit_args, &dir.join("audit")).context("audit")?;
    let mut metrics: BTreeMap<String, f64> =
        audit.headline().into_iter().map(|(p, m, v)| (format!("{p}.{m}"), v)).collect();
    if let Some(g) = &cfg.glue {
        let tasks: Vec<String> = g.tasks.iter().map(|t| t.get_ref().clone()).collect();
        let out = dir.join("glue");
        let mut args = vec![
            "glue".to_string(),
            "--model".into(),
            model,
            "--glue-dir".into(),
            s(&g.glue_dir),
            "--tasks".into(),
            tasks.join(","),
            "--seeds".into(),
            seed,
            "--output".into(),
            s(&out),
        ];
        if let Some(n) = &g.max_train {
            args.extend(["--max-train".into(), n.get_ref().to_string()]);
        }
        if let Some(n) = &g.epochs {
            args.extend(["--epochs".into(), n.get_ref().to_string()]);
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
