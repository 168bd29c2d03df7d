//! NLU retention (METHOD §8): fine-tune a classification or regression head (and the whole
//! model) on a GLUE task's training split with the shared training loop, score the dev split
//! with the task's metric, and aggregate over seeds.

use crate::data::glue::{Example, Label, Task};
use crate::model::{LanguageModel, LoadOptions};
use crate::train::classify::{Classification, ClassifierHead, items, predict};
use crate::train::optim::AdamWConfig;
use crate::train::trainer::{TrainConfig, Trainer};
use crate::util::stats;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct GlueSettings {
    pub epochs: usize,
    pub lr: f64,
    pub batch_size: usize,
    pub max_len: usize,
    pub max_train: Option<usize>,
    pub weight_decay: f64,
}

impl Default for GlueSettings {
    /// METHOD §8: lr 2e-5, 3 epochs, batch 32, max length 128.
    fn default() -> Self {
        GlueSettings { epochs: 3, lr: 2e-5, batch_size: 32, max_len: 128, max_train: None, weight_decay: 0.01 }
    }
}

impl GlueSettings {
    /// Refuses settings that cannot train (a batch of 0 divides by zero, a non-finite lr
    /// trains to NaN); the library checks even where a command line has checked its flags.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            bail!("GLUE settings: epochs must be at least 1");
        }
        if self.batch_size == 0 {
            bail!("GLUE settings: batch size must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            bail!("GLUE settings: lr must be a finite number above 0 (got {})", self.lr);
        }
        if self.max_len < 2 {
            bail!("GLUE settings: max length must be at least 2 tokens (got {})", self.max_len);
        }
        if self.max_train == Some(0) {
            bail!("GLUE settings: max train must be at least 1 example");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bail!("GLUE settings: weight decay must be a finite number ≥ 0 (got {})", self.weight_decay);
        }
        Ok(())
    }
}

/// The settings record of one task-seed run (util/settings.rs): what decides its result.
fn run_record(
    model_name: &str,
    model_dir: &Path,
    glue_dir: &Path,
    task: Task,
    seed: u64,
    settings: &GlueSettings,
) -> serde_json::Value {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string();
    let mut record = serde_json::json!({"model": model_name, "model_dir": canonical(model_dir), "glue_dir": canonical(glue_dir), "task": task.name(), "seed": seed});
    if let (Some(r), serde_json::Value::Object(s)) =
        (record.as_object_mut(), serde_json::to_value(settings).unwrap_or_default())
    {
        r.extend(s);
    }
    record
}

/// What a task-seed run writes in its directory (and all `overwrite` removes).
fn clear_run(run_dir: &Path) -> Result<()> {
    for name in ["result.json", crate::util::settings::FILE, "log.jsonl"] {
        let path = run_dir.join(name);
        if path.exists() {
            std::fs::remove_file(&path).with_context(|| format!("{}: cannot remove", path.display()))?;
        }
    }
    crate::train::trainer::remove_checkpoints(run_dir)
}

/// The metrics of a task, the first being the one a table leads with.
pub fn metric_names(task: Task) -> &'static [&'static str] {
    match task {
        Task::Cola => &["matthews"],
        Task::Stsb => &["pearson", "spearman"],
        Task::Mrpc => &["f1", "accuracy"],
        _ => &["accuracy"],
    }
}

/// Scores predictions (classes as f64, or scores) against the gold labels of `dev`.
pub fn score(task: Task, predictions: &[f64], dev: &[Example]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    if task.is_regression() {
        let gold: Vec<f64> =
            dev.iter().map(|e| if let Label::Score(v) = e.label { v as f64 } else { f64::NAN }).collect();
        out.insert("pearson".into(), stats::pearson(predictions, &gold));
        out.insert("spearman".into(), stats::spearman(predictions, &gold));
    } else {
        let gold: Vec<usize> = dev.iter().map(|e| if let Label::Class(c) = e.label { c } else { usize::MAX }).collect();
        let pred: Vec<usize> = predictions.iter().map(|&p| p as usize).collect();
        for name in metric_names(task) {
            let v = match *name {
                "matthews" => stats::matthews(&pred, &gold),
                "f1" => stats::f1(&pred, &gold),
                _ => stats::accuracy(&pred, &gold),
            };
            out.insert(name.to_string(), v);
        }
    }
    out
}

/// One fine-tuning run: a task and a seed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunResult {
    pub task: Task,
    pub seed: u64,
    #[serde(deserialize_with = "crate::util::stats::nan_map")]
    pub metrics: BTreeMap<String, f64>,
    pub train_examples: usize,
    pub dev_examples: usize,
    pub steps: u64,
    pub seconds_per_epoch: f64,
}

/// Fine-tunes `model_dir` on `task` with `seed` in `run_dir` (log, checkpoints; a killed run
/// resumes; a finished one is read back from `result.json`). The run's settings are recorded in
/// `run_dir` before it starts; a directory recorded with other settings (or with none, by an
/// older fairnc) is refused, or cleared and redone with `overwrite`.
pub fn run_task(
    model_name: &str,
    model_dir: &Path,
    glue_dir: &Path,
    task: Task,
    seed: u64,
    settings: &GlueSettings,
    run_dir: &Path,
    overwrite: bool,
) -> Result<RunResult> {
    settings.validate()?;
    let record = run_record(model_name, model_dir, glue_dir, task, seed, settings);
    let done = run_dir.join("result.json");
    let conflict = match crate::util::settings::read(run_dir)? {
        Some(recorded) => crate::util::settings::difference(&recorded, &record),
        None if done.exists() || run_dir.join("log.jsonl").exists() => {
            Some("no settings recorded (an older fairnc wrote it)".into())
        }
        None => None,
    };
    if let Some(why) = conflict {
        if !overwrite {
            bail!(
                "{}: this run was made with other settings: {why}; use another --output or pass --overwrite to redo it",
                run_dir.display()
            );
        }
        clear_run(run_dir)?;
    }
    if let Ok(text) = std::fs::read_to_string(&done) {
        if let Ok(r) = serde_json::from_str::<RunResult>(&text) {
            return Ok(r);
        }
    }
    crate::util::settings::write(run_dir, &record)?;
    let train = crate::data::glue::subsample(task.load(glue_dir, "train")?, settings.max_train);
    let dev = task.load(glue_dir, "dev")?;
    let model = LanguageModel::load(model_dir, &LoadOptions { seed, ..Default::default() })?;
    let head = ClassifierHead::new(&model, task.num_outputs(), seed)?;
    let objective = Classification { items: items(&model, &train, settings.max_len)?, head };
    let dev_items = items(&model, &dev, settings.max_len)?;
    let per_epoch = train.len().div_ceil(settings.batch_size) as u64;
    let steps = per_epoch * settings.epochs as u64;
    let cfg = TrainConfig {
        steps,
        batch_size: settings.batch_size,
        adamw: AdamWConfig { lr: settings.lr, weight_decay: settings.weight_decay, ..AdamWConfig::default() },
        seed,
        checkpoint_every: 200,
        ..TrainConfig::default()
    };
    let began = std::time::Instant::now();
    Trainer { model: &model, cfg, out: run_dir.to_path_buf(), nc3: None }
        .run(&objective, &crate::util::progress::Silent)?; // INTEGRATE: pass progress
    let seconds_per_epoch = began.elapsed().as_secs_f64() / settings.epochs.max(1) as f64;
    let predictions = predict(&model, &objective.head, &dev_items)?;
    let result = RunResult {
        task,
        seed,
        metrics: score(task, &predictions, &dev),
        train_examples: train.len(),
        dev_examples: dev.len(),
        steps,
        seconds_per_epoch,
    };
    crate::util::fs::write_atomic(&done, serde_json::to_string_pretty(&result)?.as_bytes())?;
    // The fine-tuned weights are not kept: the result is what GLUE retention needs.
    crate::train::trainer::remove_checkpoints(run_dir)?;
    Ok(result)
}

/// Mean and sample std over seeds of every metric of a task.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TaskSummary {
    pub task: Task,
    #[serde(deserialize_with = "crate::util::stats::nan_map")]
    pub mean: BTreeMap<String, f64>,
    #[serde(deserialize_with = "crate::util::stats::nan_map")]
    pub std: BTreeMap<String, f64>,
    pub runs: Vec<RunResult>,
}

pub fn summarize(task: Task, runs: Vec<RunResult>) -> TaskSummary {
    let mut mean = BTreeMap::new();
    let mut std = BTreeMap::new();
    for name in metric_names(task) {
        let values: Vec<f64> = runs.iter().filter_map(|r| r.metrics.get(*name).copied()).collect();
        mean.insert(name.to_string(), stats::mean(&values));
        std.insert(name.to_string(), stats::std(&values));
    }
    TaskSummary { task, mean, std, runs }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GlueResults {
    pub model: String,
    pub settings: GlueSettings,
    pub seeds: Vec<u64>,
    pub tasks: Vec<TaskSummary>,
}

/// Every task × seed for one model, in `out/runs/<task>-seed<k>/` (`overwrite`: redo runs
/// recorded with other settings instead of refusing them).
pub fn run_all(
    model_name: &str,
    model_dir: &Path,
    glue_dir: &Path,
    tasks: &[Task],
    seeds: &[u64],
    settings: &GlueSettings,
    out: &Path,
    overwrite: bool,
) -> Result<GlueResults> {
    settings.validate()?;
    if let Some(s) = seeds.iter().enumerate().find_map(|(i, s)| seeds[..i].contains(s).then_some(s)) {
        bail!("seed {s} is listed twice: each seed is one run, counted once");
    }
    let mut summaries = Vec::new();
    for &task in tasks {
        let mut runs = Vec::new();
        for &seed in seeds {
            let dir = out.join("runs").join(format!("{}-seed{seed}", task.name()));
            let r = run_task(model_name, model_dir, glue_dir, task, seed, settings, &dir, overwrite)
                .with_context(|| format!("{model_name} on {}", task.name()))?;
            eprintln!(
                "{model_name} {} seed {seed}: {} ({} train examples, {:.0} s/epoch)",
                task.name(),
                r.metrics.iter().map(|(k, v)| format!("{k} {v:.4}")).collect::<Vec<_>>().join(", "),
                r.train_examples,
                r.seconds_per_epoch
            );
            runs.push(r);
        }
        summaries.push(summarize(task, runs));
    }
    Ok(GlueResults {
        model: model_name.to_string(),
        settings: settings.clone(),
        seeds: seeds.to_vec(),
        tasks: summaries,
    })
}
