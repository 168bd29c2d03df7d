//! NLU retention (METHOD §8): fine-tune a classification or regression head (and the whole
//! model) on a GLUE task's training split with the shared training loop, score the dev split
//! with the task's metric, and aggregate over seeds.

use crate::data::glue::{Example, Label, Task};
use crate::train::classify::{Classification, ClassifierHead, items, predict};
use crate::train::optim::AdamWConfig;
use crate::train::trainer::{TrainConfig, Trainer};
use crate::util::progress::{Progress, Unit};
use crate::util::stats;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct GlueSettings {
    pub epochs: usize,
    pub lr: f64,
    pub batch_size: usize,
    pub max_len: usize,
    pub max_train: Option<usize>,
    pub weight_decay: f64,
    /// Where the model runs (not in a run's settings record: it decides no result).
    #[serde(default)]
    pub device: crate::util::device::DeviceSpec,
    /// In a run's settings record only when not f32, so that earlier runs' records still match.
    #[serde(default)]
    pub dtype: crate::util::device::Dtype,
}

impl Default for GlueSettings {
    /// METHOD §8: lr 2e-5, 3 epochs, batch 32, max length 128.
    fn default() -> Self {
        GlueSettings {
            epochs: 3,
            lr: 2e-5,
            batch_size: 32,
            max_len: 128,
            max_train: None,
            weight_decay: 0.01,
            device: Default::default(),
            dtype: Default::default(),
        }
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

/// A GLUE retention run: which tasks, over which seeds, from which data, with which
/// fine-tuning settings; the defaults are `fairnc glue`'s (every field but `glue_dir`, which
/// has no default).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GlueConfig {
    /// Directory in the glue_data layout (CoLA/, SST-2/, ... with train.tsv and dev.tsv).
    pub glue_dir: PathBuf,
    pub tasks: Vec<Task>,
    /// One fine-tuning run per task and seed.
    pub seeds: Vec<u64>,
    pub settings: GlueSettings,
}

impl Default for GlueConfig {
    fn default() -> Self {
        GlueConfig {
            glue_dir: PathBuf::new(),
            tasks: vec![Task::Sst2, Task::Mrpc, Task::Rte, Task::Cola, Task::Stsb],
            seeds: vec![0, 1, 2],
            settings: GlueSettings::default(),
        }
    }
}

impl GlueConfig {
    pub fn validate(&self) -> Result<()> {
        self.settings.validate()?;
        if self.glue_dir.as_os_str().is_empty() {
            bail!("GLUE config: glue_dir is not set");
        }
        if self.tasks.is_empty() {
            bail!("GLUE config: tasks must list at least one task");
        }
        if let Some(t) = self.tasks.iter().enumerate().find_map(|(i, t)| self.tasks[..i].contains(t).then_some(t)) {
            bail!("GLUE config: task {} is listed twice", t.name());
        }
        if self.seeds.is_empty() {
            bail!("GLUE config: seeds must list at least one seed");
        }
        if let Some(s) = self.seeds.iter().enumerate().find_map(|(i, s)| self.seeds[..i].contains(s).then_some(s)) {
            bail!("seed {s} is listed twice: each seed is one run, counted once");
        }
        Ok(())
    }
}

/// A comma-separated list of seeds, such as "0,1,2".
pub fn parse_seeds(list: &str) -> Result<Vec<u64>> {
    let seeds: Vec<u64> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().with_context(|| format!("seed \"{s}\" is not a non-negative integer")))
        .collect::<Result<_>>()?;
    if seeds.is_empty() {
        bail!("no seeds given");
    }
    Ok(seeds)
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

/// One fine-tuning run of a model on a task with a seed.
#[derive(Debug, Clone, Copy)]
pub struct TaskRun<'a> {
    /// The name the model was asked for (recorded; a rerun under another name is another run).
    pub model_name: &'a str,
    /// The resolved checkpoint directory: each run loads a fresh copy from it.
    pub model_dir: &'a Path,
    pub glue_dir: &'a Path,
    pub task: Task,
    pub seed: u64,
    pub settings: &'a GlueSettings,
}

impl TaskRun<'_> {
    /// The settings record of the run (util/settings.rs): what decides its result.
    fn record(&self) -> serde_json::Value {
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string();
        let mut record = serde_json::json!({"model": self.model_name, "model_dir": canonical(self.model_dir), "glue_dir": canonical(self.glue_dir), "task": self.task.name(), "seed": self.seed});
        if let (Some(r), serde_json::Value::Object(s)) =
            (record.as_object_mut(), serde_json::to_value(self.settings).unwrap_or_default())
        {
            r.extend(s);
            r.remove("device");
            if self.settings.dtype == crate::util::device::Dtype::F32 {
                r.remove("dtype");
            }
        }
        record
    }

    /// Refuses a run directory recorded with other settings (or with none, by an older
    /// fairnc), or clears it with `overwrite`.
    fn claim(&self, run_dir: &Path, record: &serde_json::Value, overwrite: bool) -> Result<()> {
        let conflict = match crate::util::settings::read(run_dir)? {
            Some(recorded) => crate::util::settings::difference(&recorded, record),
            None if run_dir.join("result.json").exists() || run_dir.join("log.jsonl").exists() => {
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
        Ok(())
    }

    /// Runs in `run_dir` (log, checkpoints; a killed run resumes; a finished one is read back
    /// from `result.json`). The run's settings are recorded in `run_dir` before it starts; a
    /// directory recorded with other settings is refused, or cleared and redone with
    /// `overwrite`.
    pub fn run(&self, run_dir: &Path, overwrite: bool, progress: &dyn Progress) -> Result<RunResult> {
        self.settings.validate()?;
        let record = self.record();
        self.claim(run_dir, &record, overwrite)?;
        let done = run_dir.join("result.json");
        if let Ok(text) = std::fs::read_to_string(&done)
            && let Ok(r) = serde_json::from_str::<RunResult>(&text)
        {
            return Ok(r);
        }
        crate::util::settings::write(run_dir, &record)?;
        let result = self.fine_tune(run_dir, progress)?;
        crate::util::fs::write_atomic(&done, serde_json::to_string_pretty(&result)?.as_bytes())?;
        // The fine-tuned weights are not kept: the result is what GLUE retention needs.
        crate::train::trainer::remove_checkpoints(run_dir)?;
        Ok(result)
    }

    /// Trains a new head (and the whole model) on the training split and scores the dev split.
    fn fine_tune(&self, run_dir: &Path, progress: &dyn Progress) -> Result<RunResult> {
        let (task, seed, settings) = (self.task, self.seed, self.settings);
        let train = crate::data::glue::subsample(task.load(self.glue_dir, "train")?, settings.max_train);
        let dev = task.load(self.glue_dir, "dev")?;
        let opts = crate::util::device::load_options(settings.device, settings.dtype, seed)?;
        let model = crate::util::device::load(self.model_dir, &opts)?;
        let head = ClassifierHead::new(&model, task.num_outputs(), seed)?;
        let objective = Classification { items: items(&model, &train, settings.max_len)?, head };
        let dev_items = items(&model, &dev, settings.max_len)?;
        let cfg = train_config(settings, train.len(), seed);
        let steps = cfg.steps;
        let began = std::time::Instant::now();
        Trainer { model: &model, cfg, out: run_dir.to_path_buf(), nc3: None }.run(&objective, progress)?;
        let seconds_per_epoch = began.elapsed().as_secs_f64() / settings.epochs.max(1) as f64;
        let predictions = predict(&model, &objective.head, &dev_items)?;
        Ok(RunResult {
            task,
            seed,
            metrics: score(task, &predictions, &dev),
            train_examples: train.len(),
            dev_examples: dev.len(),
            steps,
            seconds_per_epoch,
        })
    }
}

/// The training loop's settings for `examples` training examples: `epochs` passes in batches.
fn train_config(settings: &GlueSettings, examples: usize, seed: u64) -> TrainConfig {
    let per_epoch = examples.div_ceil(settings.batch_size) as u64;
    TrainConfig {
        steps: per_epoch * settings.epochs as u64,
        batch_size: settings.batch_size,
        adamw: AdamWConfig { lr: settings.lr, weight_decay: settings.weight_decay, ..AdamWConfig::default() },
        seed,
        checkpoint_every: 200,
        ..TrainConfig::default()
    }
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

/// Every task × seed of `cfg` for the model `model_name` (resolved once; each run fine-tunes
/// a fresh copy), in `out/runs/<task>-seed<k>/`. `overwrite`: redo runs recorded with other
/// settings instead of refusing them. Nothing is written for a config that does not validate.
pub fn run(
    model_name: &str,
    cfg: &GlueConfig,
    out: &Path,
    overwrite: bool,
    progress: &dyn Progress,
) -> Result<GlueResults> {
    cfg.validate()?;
    if !cfg.glue_dir.is_dir() {
        return Err(crate::util::fs::not_found(format!("{}: no such GLUE directory", cfg.glue_dir.display())));
    }
    let model_dir = crate::registry::resolve(model_name)?;
    let phase = progress.phase("GLUE runs", (cfg.tasks.len() * cfg.seeds.len()) as u64, Unit::Items);
    let mut summaries = Vec::new();
    for &task in &cfg.tasks {
        let mut runs = Vec::new();
        for &seed in &cfg.seeds {
            let job = TaskRun {
                model_name,
                model_dir: &model_dir,
                glue_dir: &cfg.glue_dir,
                task,
                seed,
                settings: &cfg.settings,
            };
            let dir = out.join("runs").join(format!("{}-seed{seed}", task.name()));
            let r = job.run(&dir, overwrite, progress).with_context(|| format!("{model_name} on {}", task.name()))?;
            progress.message(&format!(
                "{model_name} {} seed {seed}: {} ({} train examples, {:.0} s/epoch)",
                task.name(),
                r.metrics.iter().map(|(k, v)| format!("{k} {v:.4}")).collect::<Vec<_>>().join(", "),
                r.train_examples,
                r.seconds_per_epoch
            ));
            runs.push(r);
            phase.set((summaries.len() * cfg.seeds.len() + runs.len()) as u64);
        }
        summaries.push(summarize(task, runs));
    }
    Ok(GlueResults {
        model: model_name.to_string(),
        settings: cfg.settings.clone(),
        seeds: cfg.seeds.clone(),
        tasks: summaries,
    })
}

/// The base model beside which `--compare` puts a run: `base` is a directory holding an earlier
/// run's `glue.json` (read back), or a model, run with the same config into `out/base`.
pub fn base_results(
    base: &str,
    cfg: &GlueConfig,
    out: &Path,
    overwrite: bool,
    progress: &dyn Progress,
) -> Result<GlueResults> {
    if Path::new(base).join("glue.json").exists() {
        read_results(Path::new(base))
    } else {
        run(base, cfg, &out.join("base"), overwrite, progress)
    }
}

/// The model's results in `dir/glue.json`, as `report::glue::write` wrote them.
pub fn read_results(dir: &Path) -> Result<GlueResults> {
    let path = dir.join("glue.json");
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?,
    )
    .with_context(|| format!("{}: not valid JSON", path.display()))?;
    serde_json::from_value(v["model"].clone()).with_context(|| format!("{}: not a fairnc glue result", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_that_cannot_run_names_the_field() {
        let ok = GlueConfig { glue_dir: "glue_data".into(), ..GlueConfig::default() };
        assert!(ok.validate().is_ok());
        let bad = |cfg: GlueConfig| cfg.validate().unwrap_err().to_string();
        assert_eq!(bad(GlueConfig::default()), "GLUE config: glue_dir is not set");
        assert!(bad(GlueConfig { tasks: vec![], ..ok.clone() }).contains("tasks must list"));
        assert_eq!(
            bad(GlueConfig { tasks: vec![Task::Rte, Task::Rte], ..ok.clone() }),
            "GLUE config: task rte is listed twice"
        );
        assert!(bad(GlueConfig { seeds: vec![], ..ok.clone() }).contains("seeds must list"));
        let zero = GlueSettings { epochs: 0, ..GlueSettings::default() };
        assert_eq!(bad(GlueConfig { settings: zero, ..ok }), "GLUE settings: epochs must be at least 1");
    }

    #[test]
    fn seed_lists_parse_or_name_the_bad_seed() {
        assert_eq!(parse_seeds("0, 1,2,").unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_seeds("0,-1").unwrap_err().to_string(), "seed \"-1\" is not a non-negative integer");
        assert_eq!(parse_seeds(",").unwrap_err().to_string(), "no seeds given");
    }

    #[test]
    fn written_results_read_back() {
        let run = RunResult {
            task: Task::Stsb,
            seed: 3,
            metrics: [("pearson".to_string(), f64::NAN), ("spearman".to_string(), 0.5)].into(),
            train_examples: 10,
            dev_examples: 4,
            steps: 2,
            seconds_per_epoch: 1.5,
        };
        let r = GlueResults {
            model: "minilm".into(),
            settings: GlueSettings::default(),
            seeds: vec![3],
            tasks: vec![summarize(Task::Stsb, vec![run])],
        };
        let tmp = tempfile::tempdir().unwrap();
        crate::report::glue::write(tmp.path(), &r, None).unwrap();
        let back = read_results(tmp.path()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&r).unwrap());
        assert!(back.tasks[0].runs[0].metrics["pearson"].is_nan(), "null reads back as NaN");
        let e = format!("{:#}", read_results(&tmp.path().join("none")).unwrap_err());
        assert!(e.contains("glue.json: cannot read"), "{e}");
    }
}
