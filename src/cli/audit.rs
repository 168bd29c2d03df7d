//! `fairnc audit`: how biased is this model, and what does its fairness geometry look like?
//! Runs the `collapse` and `eval` commands (no metric code of its own) into one directory and
//! joins their results into `audit.json`, `report.md`, `report.html`, `summary.csv` and plots.

use crate::bench::EvalResults;
use crate::model::{Family, ModelKind};
use crate::report::audit::{Audit, Skipped};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// `minilm` (the embedded default), `minilm-mlm`, a checkpoint directory, or hf:ORG/NAME.
    #[arg(long, default_value = crate::registry::DEFAULT_MODEL)]
    pub model: String,
    /// Run directory (default: `audit-<model name>`).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// A smaller run (about a minute on 2 cores): 1,500 BUG texts for the NC statistics and the
    /// first 300 CrowS-Pairs pairs and StereoSet clusters.
    #[arg(long)]
    pub quick: bool,
    /// Word set for the NC statistics.
    #[arg(long, default_value = "gender")]
    pub words: String,
    /// BUG texts for the NC statistics (default 10,000; --quick 1,500).
    #[arg(long, value_parser = super::validate::positive_usize, allow_negative_numbers = true)]
    pub max_texts: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// SEAT tests from sent-bias's files in this directory (default: rebuilt from WEAT word
    /// lists; only the files' gender average is shown beside bias-bench's published figure).
    #[arg(long)]
    pub seat_dir: Option<PathBuf>,
}

pub const DEFAULT_TEXTS: usize = 10_000;
pub const QUICK_TEXTS: usize = 1_500;
pub const QUICK_LIMIT: usize = 300;

fn default_output(model: &str) -> PathBuf {
    let name: String = Path::new(model.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| model.to_string())
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '-' })
        .collect();
    PathBuf::from(format!("audit-{name}"))
}

pub fn run(a: Args) -> Result<()> {
    let out = a.output.clone().unwrap_or_else(|| default_output(&a.model));
    let audit = audit(&a, &out)?;
    print!("{}", crate::report::audit::document(&audit).markdown());
    println!("wrote {} (report.html, audit.json, summary.csv, plots)", out.join("report.md").display());
    Ok(())
}

/// Runs the audit into `out` and returns what it found.
pub fn audit(a: &Args, out: &Path) -> Result<Audit> {
    let began = std::time::Instant::now();
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let model = crate::model::LanguageModel::load(
        &crate::registry::resolve(&a.model)?,
        &crate::model::LoadOptions { seed: a.seed, ..Default::default() },
    )?;
    let (family, kind, new_head, has_mask) =
        (model.family(), model.kind(), model.params.new_head, model.tokenizer.mask.is_some());
    drop(model);
    let texts = a.max_texts.unwrap_or(if a.quick { QUICK_TEXTS } else { DEFAULT_TEXTS });
    let seed = a.seed.to_string();
    let mut seconds = serde_json::Map::new();
    let mut skipped = Vec::new();

    let t = std::time::Instant::now();
    let collapse_dir = out.join("collapse");
    // `collapse/` belongs to this audit, which replaces its own results on a rerun (the same
    // settings' statistics are still reused): hence --overwrite.
    super::run_subcommand(&[
        "collapse",
        "--model",
        &a.model,
        "--seed",
        &seed,
        "--words",
        &a.words,
        "--corpus",
        "bug",
        "--max-texts",
        &texts.to_string(),
        "--output",
        path(&collapse_dir)?,
        "--overwrite",
    ])
    .context("NC statistics")?;
    seconds.insert("collapse".into(), t.elapsed().as_secs_f64().into());

    let mut tasks = vec!["seat"];
    let lm_reason = if new_head {
        Some(format!(
            "{} has no pretrained LM head (a sentence encoder): CrowS-Pairs and StereoSet score sentences by the LM's token probabilities, which a new head does not have",
            a.model
        ))
    } else if kind == ModelKind::Masked && !has_mask {
        Some(format!("{} is a masked-LM family but its tokenizer has no mask token", a.model))
    } else {
        None
    };
    match lm_reason {
        Some(reason) => {
            let fix = if a.model == crate::registry::DEFAULT_MODEL {
                "fairnc audit --model minilm-mlm".to_string()
            } else {
                format!("fairnc adapt --model {} --output DIR, then fairnc audit --model DIR/model", a.model)
            };
            for part in ["CrowS-Pairs", "StereoSet"] {
                skipped.push(Skipped { part: part.into(), reason: reason.clone(), fix: fix.clone() });
            }
        }
        None => tasks.extend(["crows", "stereoset"]),
    }
    let t = std::time::Instant::now();
    let eval_dir = out.join("eval");
    let mut eval_args: Vec<String> =
        ["eval", "--model", &a.model, "--seed", &seed, "--tasks", &tasks.join(","), "--output", path(&eval_dir)?]
            .iter()
            .map(|s| s.to_string())
            .collect();
    if a.quick {
        eval_args.extend([
            "--crows-limit".into(),
            QUICK_LIMIT.to_string(),
            "--stereoset-limit".into(),
            QUICK_LIMIT.to_string(),
        ]);
    }
    if let Some(dir) = &a.seat_dir {
        eval_args.extend(["--seat-dir".into(), path(dir)?.to_string()]);
    }
    super::run_subcommand(&eval_args.iter().map(String::as_str).collect::<Vec<_>>()).context("bias benchmarks")?;
    seconds.insert("eval".into(), t.elapsed().as_secs_f64().into());

    let collapse: serde_json::Value = read_json(&collapse_dir.join("collapse.json"))?;
    let eval: EvalResults = serde_json::from_value(read_json(&eval_dir.join("results.json"))?)
        .with_context(|| format!("{}: unexpected layout", eval_dir.join("results.json").display()))?;
    seconds.insert("total".into(), began.elapsed().as_secs_f64().into());
    let audit = Audit {
        model: a.model.clone(),
        family: format!("{family:?}").to_lowercase(),
        lm_head: if new_head { "new (untrained)".into() } else { "pretrained".into() },
        causal: family == Family::Gpt2,
        quick: a.quick,
        words: a.words.clone(),
        corpus_texts: texts,
        collapse,
        eval,
        skipped,
        seconds: serde_json::Value::Object(seconds),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    crate::report::audit::write(out, &audit)?;
    Ok(audit)
}

fn path(p: &Path) -> Result<&str> {
    p.to_str().with_context(|| format!("{}: path is not UTF-8", p.display()))
}

fn read_json(p: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", p.display()))
}
