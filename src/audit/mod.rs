//! The audit: how biased is this model, and what does its fairness geometry look like? Neural
//! collapse on a word set ([`crate::collapse::measure`]) and the bias benchmarks
//! ([`crate::bench::evaluate`]) on one loaded model, joined into one [`Audit`]; the LM
//! benchmarks are skipped, with the command that fixes it, where the model has no usable LM head.

mod gaps;
mod result;

pub use gaps::{GAP_ROWS, Gap, LargestGaps, largest_gaps};
pub use result::{Audit, NC_METRICS, Skipped, from_50};

use crate::bench::{BenchTask, EvalConfig};
use crate::collapse::CollapseConfig;
use crate::model::{LanguageModel, ModelKind};
use crate::util::progress::Progress;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// BUG texts for the NC statistics of a full audit.
pub const DEFAULT_TEXTS: usize = 10_000;
/// BUG texts for the NC statistics of a `quick` audit.
pub const QUICK_TEXTS: usize = 1_500;
/// CrowS-Pairs pairs and StereoSet clusters of a `quick` audit (the first ones).
pub const QUICK_LIMIT: usize = 300;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditConfig {
    /// A smaller run: [`QUICK_TEXTS`] texts for the NC statistics and the first [`QUICK_LIMIT`]
    /// CrowS-Pairs pairs and StereoSet clusters (BEC-Pro in full).
    pub quick: bool,
    /// Word set of the NC statistics.
    pub words: String,
    /// BUG texts for the NC statistics (None: [`DEFAULT_TEXTS`], or [`QUICK_TEXTS`] when quick).
    pub max_texts: Option<usize>,
    /// The seed of a newly created LM head (the model's load) and of SEAT's permutations.
    pub seed: u64,
    /// SEAT tests from sent-bias's files in this directory (None: rebuilt from WEAT word lists).
    pub seat_dir: Option<PathBuf>,
    /// Where the model runs and its float type.
    #[serde(default)]
    pub device: crate::util::device::DeviceSpec,
    #[serde(default)]
    pub dtype: crate::util::device::Dtype,
    /// The benchmarks to run beside the NC statistics, which every audit measures (empty: the
    /// defaults for the model's kind, [`default_measures`]).
    #[serde(default)]
    pub measures: Vec<BenchTask>,
    /// A projection file applied to the model's last-layer hidden states (`--projection`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection: Option<PathBuf>,
    /// Score CrowS-Pairs and StereoSet with Self-Debias. It changes the output distribution
    /// only, so the NC statistics and SEAT stay the base model's (the report's notes say so).
    #[serde(default)]
    pub self_debias: Option<crate::bench::self_debias::SelfDebias>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            quick: false,
            words: "gender".into(),
            max_texts: None,
            seed: 0,
            seat_dir: None,
            device: Default::default(),
            dtype: Default::default(),
            measures: Vec::new(),
            projection: None,
            self_debias: None,
        }
    }
}

impl AuditConfig {
    pub fn validate(&self) -> Result<()> {
        if self.max_texts == Some(0) {
            bail!("audit config: max_texts must be at least 1");
        }
        Ok(())
    }

    /// BUG texts the NC statistics use.
    pub fn texts(&self) -> usize {
        self.max_texts.unwrap_or(if self.quick { QUICK_TEXTS } else { DEFAULT_TEXTS })
    }

    fn collapse(&self) -> CollapseConfig {
        CollapseConfig {
            words: self.words.clone(),
            corpus: "bug".into(),
            max_texts: Some(self.texts()),
            ..CollapseConfig::default()
        }
    }

    fn eval(&self, tasks: Vec<BenchTask>) -> EvalConfig {
        // BEC-Pro is not limited: its file is sorted by profession group and gender, so its
        // first rows would hold one group and no pairs to test, and all of it takes seconds.
        let limit = self.quick.then_some(QUICK_LIMIT);
        EvalConfig {
            tasks,
            crows_limit: limit,
            stereoset_limit: limit,
            seat_dir: self.seat_dir.clone(),
            seat_tests: self.seat_tests(),
            seed: self.seed,
            self_debias: self.self_debias,
            ..EvalConfig::default()
        }
    }

    /// sent-bias's files hold the race and religion tests too; without them only the gender
    /// tests can be rebuilt (from WEAT word lists).
    fn seat_tests(&self) -> Vec<String> {
        let biases: &[&str] = if self.seat_dir.is_some() { &["gender", "race", "religion"] } else { &["gender"] };
        biases.iter().flat_map(|b| crate::data::seat::tests_of(b)).map(String::from).collect()
    }
}

/// The benchmarks an audit runs when none are chosen: every benchmark fairnc has for the
/// model's kind (one that does not apply to it is skipped with a note, not run).
pub fn default_measures(kind: ModelKind) -> Vec<BenchTask> {
    use BenchTask::*;
    match kind {
        ModelKind::Masked => vec![Seat, Crows, StereoSet, StereoSetInter, BecPro, Aul, MlmBias],
        // BEC-Pro, AUL/AULA and mlm-bias read masked-token probabilities: masked LMs only.
        ModelKind::Causal => vec![Seat, Crows, StereoSet, StereoSetInter],
    }
}

/// Loads the model named `name` once (with the config's seed) and audits it into `dir`.
pub fn load_and_run(name: &str, cfg: &AuditConfig, dir: &Path, progress: &dyn Progress) -> Result<Audit> {
    cfg.validate()?;
    let opts = crate::model::LoadOptions {
        projection: cfg.projection.clone(),
        ..crate::util::device::load_options(cfg.device, cfg.dtype, cfg.seed)?
    };
    let model = crate::registry::load(name, &opts)?;
    run(&model, cfg, dir, progress)
}

/// Audits `model` into `dir`: `collapse/` (statistics shards, `collapse.json`, per-class CSV,
/// plot), `eval/` (benchmark results and per-example CSVs), and the joined `audit.json`,
/// `summary.csv`, `report.md`, `report.html` and plots. A rerun replaces the audit's own
/// results (finished statistics of the same settings are reused).
pub fn run(model: &LanguageModel, cfg: &AuditConfig, dir: &Path, progress: &dyn Progress) -> Result<Audit> {
    cfg.validate()?;
    let began = Instant::now();
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let mut seconds = BTreeMap::new();

    let t = Instant::now();
    let collapse_dir = dir.join("collapse");
    // `collapse/` belongs to this audit, which replaces its own results on a rerun (the same
    // settings' statistics are still reused): hence overwrite.
    let collapse =
        crate::collapse::measure(model, &cfg.collapse(), &collapse_dir, true, progress).context("NC statistics")?;
    crate::report::collapse::write(&collapse_dir, &collapse).context("NC statistics")?;
    seconds.insert("collapse".to_string(), t.elapsed().as_secs_f64());

    let chosen = if cfg.measures.is_empty() { default_measures(model.kind()) } else { cfg.measures.clone() };
    let (tasks, mut skipped) = runnable(model, &chosen);
    if cfg.seat_dir.is_none() && tasks.contains(&BenchTask::Seat) {
        skipped.push(Skipped {
            part: "SEAT race and religion".into(),
            reason: "their tests are sent-bias's files (tests/*.jsonl, given by --seat-dir DIR); only the gender tests can be rebuilt from WEAT word lists"
                .into(),
            fix: format!("fairnc audit --model {} --seat-dir DIR", model.name),
        });
    }
    let t = Instant::now();
    let evaluation = crate::bench::evaluate(model, &cfg.eval(tasks), progress).context("bias benchmarks")?;
    crate::report::eval::write(&dir.join("eval"), &evaluation).context("bias benchmarks")?;
    seconds.insert("eval".to_string(), t.elapsed().as_secs_f64());
    seconds.insert("total".to_string(), began.elapsed().as_secs_f64());

    let audit = Audit {
        model: model.name.clone(),
        family: model.family().name().to_string(),
        lm_head: if model.params.new_head { "new (untrained)".into() } else { "pretrained".into() },
        classifier: model.classifier_name(),
        tied_head: model.config.tied_head(),
        causal: model.kind() == ModelKind::Causal,
        projection: model.projection().cloned(),
        quick: cfg.quick,
        words: cfg.words.clone(),
        corpus_texts: cfg.texts(),
        collapse,
        largest_gaps: largest_gaps(&evaluation),
        eval: evaluation.results,
        skipped,
        seconds,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    crate::report::audit::write(dir, &audit)?;
    Ok(audit)
}

/// The chosen benchmarks the model can run, and the others as skipped parts with the fix.
fn runnable(model: &LanguageModel, chosen: &[BenchTask]) -> (Vec<BenchTask>, Vec<Skipped>) {
    let no_head = lm_benchmarks_skipped(model);
    let mut skipped = Vec::new();
    let mut tasks = Vec::new();
    for &t in chosen {
        match no_head.iter().find(|_| t.reads_lm_head()).cloned().or_else(|| inapplicable(model, t)) {
            Some((reason, fix)) => skipped.push(Skipped { part: t.title().into(), reason, fix }),
            None => tasks.push(t),
        }
    }
    (tasks, skipped)
}

/// Why a benchmark does not apply to this kind of model (and what would run it), if it does not.
fn inapplicable(model: &LanguageModel, t: BenchTask) -> Option<(String, String)> {
    let name = &model.name;
    let masked_only = matches!(t, BenchTask::BecPro | BenchTask::Aul | BenchTask::MlmBias);
    if masked_only && model.kind() == ModelKind::Causal {
        return Some((
            format!("{name} is a causal LM; {} is defined on masked-token probabilities", t.title()),
            format!("fairnc audit --model {}", crate::registry::DEFAULT_MASKED_LM),
        ));
    }
    if t == BenchTask::StereoSetInter && model.kind() == ModelKind::Masked && !model.has_next_sentence_head() {
        return Some((
            format!(
                "{name} is a masked LM without a next-sentence head (cls.seq_relationship, which BertForPreTraining checkpoints hold; DIR below is such a checkpoint)"
            ),
            "fairnc audit --model DIR".into(),
        ));
    }
    None
}

/// The benchmarks that score sentences by the LM's token probabilities cannot run on a model
/// without a pretrained LM head (or a masked LM without a mask token): the reason and the fix.
fn lm_benchmarks_skipped(model: &LanguageModel) -> Option<(String, String)> {
    let name = &model.name;
    let reason = if model.params.new_head {
        format!(
            "{name} has no pretrained LM head (a sentence encoder): the benchmark scores sentences by the LM's token probabilities, which a new head does not have"
        )
    } else if model.kind() == ModelKind::Masked && model.tokenizer.mask.is_none() {
        format!("{name} is a masked-LM family but its tokenizer has no mask token")
    } else {
        return None;
    };
    let fix = if name == crate::registry::DEFAULT_MODEL {
        format!("fairnc audit --model {}", crate::registry::DEFAULT_MASKED_LM)
    } else {
        format!("fairnc adapt --model {name} --output DIR, then fairnc audit --model DIR/model")
    };
    Some((reason, fix))
}
