//! Debiasing by fine-tuning: the methods (CDA, Dropout, BEC, ASE, MABEL-style contrastive),
//! what each trains on and with which objective, optionally with the NC3 regularizer, and the
//! stage that runs one into a directory (`run.json`, `log.jsonl`, checkpoints, `model/`, plots).

use super::log::LogRecord;
use super::nc3::{Nc3Regularizer, Nc3Variant};
use super::objective::{CausalLm, MaskedLm, MaskedPronouns, Objective};
use super::optim::AdamWConfig;
use super::trainer::{TrainConfig, Trainer};
use crate::collapse::Target;
use crate::data::corpus::Corpus;
use crate::model::{Family, LanguageModel, LoadOptions, ModelConfig, ModelKind};
use crate::util::progress::Progress;
use crate::words::{ClassSet, Policy, WordSet};
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Continued LM training on texts holding an attribute word, original and counterfactual.
    Cda,
    /// Continued LM training with hidden dropout 0.20 and attention dropout 0.15 (GPT-2: 0.15).
    Dropout,
    /// BEC-style: LM training on GAP's Wikipedia text with every gendered word flipped.
    Bec,
    /// ASE-style: WinoBias sentences (bundle, dev and test splits, as the release's ASE) with
    /// the gendered pronoun masked.
    Ase,
    /// MABEL-style: InfoNCE between each CDA sentence and its counterfactual, an alignment
    /// term, and 0.1 × MLM.
    Contrastive,
}

impl Method {
    /// The (hidden, attention) dropout the method trains with, replacing the model's own; None
    /// keeps the model's.
    pub fn dropout(self, family: Family) -> Option<(f32, f32)> {
        match (self, family) {
            (Method::Dropout, f) if f.kind() == ModelKind::Causal => Some((0.15, 0.15)),
            (Method::Dropout, _) => Some((0.20, 0.15)),
            _ => None,
        }
    }

    /// The corpus the method trains on when none is named (ASE trains on WinoBias instead).
    pub fn default_corpus(self) -> &'static str {
        if self == Method::Bec { "gap" } else { "bug" }
    }
}

impl std::str::FromStr for Method {
    type Err = anyhow::Error;

    /// A method by its command-line name (`cda`, `dropout`, `bec`, `ase`, `contrastive`).
    fn from_str(s: &str) -> Result<Self> {
        <Method as clap::ValueEnum>::from_str(s, false).map_err(|_| {
            anyhow::anyhow!("unknown debiasing method {s:?} (methods are cda, dropout, bec, ase, contrastive)")
        })
    }
}

/// Which parameters a run updates.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every parameter.
    All,
    /// The LM head's own parameters only (transform and bias; the tied decoder stays).
    Head,
}

/// Where a run writes when its directory is not empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputMode {
    /// Only into an empty or new directory.
    New,
    /// Continue the run the directory holds (same settings) from its last checkpoint.
    Resume,
    /// Replace the debias run the directory holds (its own files only; a directory that is not
    /// a run is refused).
    Overwrite,
}

/// Everything a debias run is asked for besides the model and where it writes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DebiasConfig {
    /// Seed of the data order, masking, dropout and a newly created LM head.
    pub seed: u64,
    pub method: Method,
    /// λ of the NC3 regularizer (None or 0: none; the spread is then only logged).
    pub nc3: Option<f64>,
    pub nc3_variant: Nc3Variant,
    /// Word set for CDA swaps and the NC3 classes.
    pub words: String,
    /// Label of a hidden state for NC3 (None: same for masked LMs, next for causal).
    pub target: Option<Target>,
    /// Word → NC3 class policy: whole-word (single-token words only) or first-subword (the
    /// release's mapping; words may merge).
    pub policy: Policy,
    /// Corpus: bug, gap, bold, or a text file (None: [`Method::default_corpus`]).
    pub corpus: Option<String>,
    /// Which parameters to update (`--train`).
    pub train: Scope,
    /// Evenly spaced texts of the corpus to keep (None: all).
    pub max_texts: Option<usize>,
    pub steps: u64,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub lr: f64,
    pub warmup: u64,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    pub max_len: usize,
    /// Steps between checkpoints (the last step is always one). Not a setting of the results:
    /// `run.json` leaves it out, so a run resumes with another value.
    pub checkpoint_every: u64,
    /// Where the model trains and its float type (not in `run.json`).
    #[serde(default)]
    pub device: crate::util::device::DeviceSpec,
    #[serde(default)]
    pub dtype: crate::util::device::Dtype,
}

impl Default for DebiasConfig {
    /// The command line's defaults; the command requires `--method`, the default here is CDA.
    fn default() -> Self {
        DebiasConfig {
            seed: 0,
            method: Method::Cda,
            nc3: None,
            nc3_variant: Nc3Variant::Std,
            words: "gender".into(),
            target: None,
            policy: Policy::WholeWord,
            corpus: None,
            train: Scope::All,
            max_texts: None,
            steps: 500,
            batch_size: 32,
            grad_accum: 1,
            lr: 2e-5,
            warmup: 0,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            max_len: 128,
            checkpoint_every: 100,
            device: Default::default(),
            dtype: Default::default(),
        }
    }
}

impl DebiasConfig {
    /// Refuses settings that would divide by zero, train backwards or never reach `lr`.
    pub fn validate(&self) -> Result<()> {
        let at_least = |field: &str, value: u64, min: u64| -> Result<()> {
            if value < min {
                bail!("debias config: {field} must be at least {min}");
            }
            Ok(())
        };
        at_least("steps", self.steps, 1)?;
        at_least("batch_size", self.batch_size as u64, 1)?;
        at_least("grad_accum", self.grad_accum as u64, 1)?;
        at_least("max_len", self.max_len as u64, 2)?;
        at_least("checkpoint_every", self.checkpoint_every, 1)?;
        if let Some(n) = self.max_texts {
            at_least("max_texts", n as u64, 1)?;
        }
        let finite = |field: &str, value: f64, positive: bool| -> Result<()> {
            if !value.is_finite() || value < 0.0 || (positive && value == 0.0) {
                let bound = if positive { "above 0" } else { "of at least 0" };
                bail!("debias config: {field} must be a finite number {bound}, not {value}");
            }
            Ok(())
        };
        finite("lr", self.lr, true)?;
        finite("max_grad_norm", self.max_grad_norm, true)?;
        finite("weight_decay", self.weight_decay, false)?;
        if let Some(lambda) = self.nc3 {
            finite("nc3", lambda, false)?;
        }
        if self.warmup > self.steps {
            bail!(
                "debias config: warmup {} is more than steps {}: the learning rate would never reach lr",
                self.warmup,
                self.steps
            );
        }
        Ok(())
    }

    /// The corpus named, or the method's default.
    pub fn corpus_name(&self) -> String {
        self.corpus.clone().unwrap_or_else(|| self.method.default_corpus().into())
    }

    /// λ of the NC3 term, None when it is not optimised.
    fn nc3_lambda(&self) -> Option<f64> {
        self.nc3.filter(|l| *l != 0.0)
    }

    fn train_config(&self) -> TrainConfig {
        TrainConfig {
            steps: self.steps,
            batch_size: self.batch_size,
            grad_accum: self.grad_accum,
            adamw: AdamWConfig { lr: self.lr, weight_decay: self.weight_decay, ..AdamWConfig::default() },
            warmup: self.warmup,
            max_grad_norm: self.max_grad_norm,
            seed: self.seed,
            checkpoint_every: self.checkpoint_every,
            nc3_lambda: self.nc3_lambda(),
            nc3_variant: self.nc3_variant,
            head_only: self.train == Scope::Head,
            head_lr_scale: 1.0,
            stop_after: None,
        }
    }
}

/// The settings `run.json` records (the model by the name given): a later start into the same
/// directory must match them to resume. The keys are today's, so older runs still resume.
fn run_settings(model_name: &str, cfg: &DebiasConfig) -> serde_json::Value {
    serde_json::json!({
        "model": model_name, "seed": cfg.seed, "method": cfg.method, "nc3": cfg.nc3, "nc3_variant": cfg.nc3_variant,
        "train": cfg.train, "words": cfg.words, "target": cfg.target, "policy": cfg.policy, "corpus": cfg.corpus,
        "max_texts": cfg.max_texts, "steps": cfg.steps, "batch_size": cfg.batch_size, "grad_accum": cfg.grad_accum,
        "lr": cfg.lr, "warmup": cfg.warmup, "weight_decay": cfg.weight_decay, "max_grad_norm": cfg.max_grad_norm,
        "max_len": cfg.max_len,
    })
}

/// What a finished debias run produced.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DebiasResult {
    /// Steps done in all (earlier invocations of a resumed run included).
    pub steps: u64,
    /// The trained model, a Hugging Face checkpoint directory.
    pub model_dir: PathBuf,
    /// Every step's log record.
    pub log: Vec<LogRecord>,
}

/// Debiases `model_name` (a registry name or a checkpoint directory) as `cfg` asks, into `out`:
/// `run.json`, `log.jsonl`, checkpoints, the trained model in `out/model/`, and the loss plots.
/// `mode` says what to do with a directory that already holds a run.
pub fn debias(
    model_name: &str,
    cfg: &DebiasConfig,
    out: &Path,
    mode: OutputMode,
    progress: &dyn Progress,
) -> Result<DebiasResult> {
    cfg.validate()?;
    // Refused before the output directory is touched.
    let projection = crate::registry::resolve(model_name)?.join(crate::model::projection::FILE);
    if projection.is_file() {
        bail!(
            "{model_name}: carries a projection ({}), which is not a trainable part; fine-tune the base model and project the result",
            projection.display()
        );
    }
    let settings = run_settings(model_name, cfg);
    super::run_dir::prepare(out, &settings, mode)?;
    crate::util::fs::write_atomic(
        &out.join(super::run_dir::SETTINGS_FILE),
        serde_json::to_string_pretty(&settings)?.as_bytes(),
    )?;
    let model = load_for(model_name, cfg)?;
    let set = WordSet::load(&cfg.words)?;
    let corpus = corpus(cfg)?;
    let objective = objective(cfg.method, &model, &corpus, &set, cfg.max_len)?;
    let nc3 = regularizer(&model, &set, cfg, progress)?;
    progress.message(&format!(
        "{}: {} training examples from {}, {} steps",
        objective.name(),
        objective.len(),
        corpus.name,
        cfg.steps
    ));
    let mut trainer = Trainer { model: &model, cfg: cfg.train_config(), out: out.to_path_buf(), nc3 };
    let steps = trainer.run(objective.as_ref(), progress)?;
    let model_dir = out.join("model");
    model.save(&model_dir)?;
    let log = super::log::read_log(&out.join(super::log::FILE))?;
    crate::report::training::loss_plots(out, &log)?;
    Ok(DebiasResult { steps, model_dir, log })
}

/// Loads the model once, with the method's dropout: the family that decides the dropout is read
/// from the checkpoint's `config.json` before the load.
fn load_for(model_name: &str, cfg: &DebiasConfig) -> Result<LanguageModel> {
    let dir = crate::registry::resolve(model_name)?;
    let family = ModelConfig::from_file(&dir.join("config.json"))?.family;
    let opts = LoadOptions {
        dropout: cfg.method.dropout(family),
        ..crate::util::device::load_options(cfg.device, cfg.dtype, cfg.seed)?
    };
    let mut model = crate::util::device::load(&dir, &opts)?;
    model.name = model_name.to_string();
    if let Some(p) = model.projection() {
        bail!(
            "{model_name}: carries a {} projection ({}), which is not a trainable part; fine-tune the base model and project the result",
            p.method,
            p.file
        );
    }
    Ok(model)
}

/// The corpus the run trains on, cut to `max_texts`; ASE trains on WinoBias (read by its
/// objective), so its corpus is only a name.
fn corpus(cfg: &DebiasConfig) -> Result<Corpus> {
    if cfg.method == Method::Ase {
        return Ok(Corpus { name: "winobias".into(), texts: Vec::new() });
    }
    Ok(Corpus::load(&cfg.corpus_name())?.subsample(cfg.max_texts))
}

/// The texts a language-modelling method trains on: CDA each text and its counterfactual, BEC
/// every text with its attribute words flipped, Dropout the corpus as it is. ASE and the
/// contrastive method build their examples themselves.
fn lm_texts(method: Method, corpus: &Corpus, set: &WordSet) -> Result<Vec<String>> {
    Ok(match method {
        Method::Cda => {
            super::cda::augment(&corpus.texts, set, &corpus.name)?.into_iter().flat_map(|(o, c)| [o, c]).collect()
        }
        Method::Dropout => corpus.texts.clone(),
        Method::Bec => {
            let table = super::cda::swap_table(set);
            corpus.texts.iter().map(|t| super::cda::counterfactual(t, &table).unwrap_or_else(|| t.clone())).collect()
        }
        Method::Ase | Method::Contrastive => Vec::new(),
    })
}

/// The objective of `method` for this model: ASE and the contrastive method need a masked LM;
/// the others train the model's own LM loss (masked or causal) on [`lm_texts`].
fn objective(
    method: Method,
    model: &LanguageModel,
    corpus: &Corpus,
    set: &WordSet,
    max_len: usize,
) -> Result<Box<dyn Objective>> {
    Ok(match (method, model.kind()) {
        (Method::Ase, ModelKind::Masked) => {
            Box::new(MaskedPronouns::new(model, &crate::data::winobias::sentences()?, max_len)?)
        }
        (Method::Ase, ModelKind::Causal) => {
            bail!("ASE-style training masks pronouns: it needs a masked LM, not {}", model.name)
        }
        (Method::Contrastive, ModelKind::Masked) => {
            let pairs = super::cda::augment(&corpus.texts, set, &corpus.name)?;
            Box::new(super::contrastive::Contrastive::new(model, &pairs, max_len)?)
        }
        (Method::Contrastive, ModelKind::Causal) => {
            bail!("MABEL-style training includes masked LM: it needs a masked LM, not {}", model.name)
        }
        (_, ModelKind::Masked) => Box::new(MaskedLm::new(model, &lm_texts(method, corpus, set)?, max_len)?),
        (_, ModelKind::Causal) => Box::new(CausalLm::new(model, &lm_texts(method, corpus, set)?, max_len)?),
    })
}

/// The NC3 regularizer over the word set's classes. Built without λ too: the NC3 spread is then
/// logged but not optimised.
fn regularizer(
    model: &LanguageModel,
    set: &WordSet,
    cfg: &DebiasConfig,
    progress: &dyn Progress,
) -> Result<Option<Nc3Regularizer>> {
    let target = cfg.target.unwrap_or(if model.kind() == ModelKind::Causal { Target::Next } else { Target::Same });
    let classes = ClassSet::map(set, &model.tokenizer, cfg.policy)?;
    progress.message(&format!(
        "NC3 classes: {} of {} ({} policy, {} words left out)",
        classes.classes.len(),
        set.name,
        serde_json::to_value(cfg.policy)?.as_str().unwrap_or("?"),
        classes.skipped.len()
    ));
    Ok(Some(Nc3Regularizer::new(
        &classes,
        model.config.vocab_size.max(model.tokenizer.vocab_size()),
        model.feature_width(),
        target,
        cfg.nc3_variant,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_bad_field_is_named() {
        DebiasConfig::default().validate().unwrap();
        let cases = [
            (DebiasConfig { steps: 0, ..Default::default() }, "steps must be at least 1"),
            (DebiasConfig { batch_size: 0, ..Default::default() }, "batch_size must be at least 1"),
            (DebiasConfig { grad_accum: 0, ..Default::default() }, "grad_accum must be at least 1"),
            (DebiasConfig { max_len: 1, ..Default::default() }, "max_len must be at least 2"),
            (DebiasConfig { max_texts: Some(0), ..Default::default() }, "max_texts must be at least 1"),
            (DebiasConfig { lr: -1.0, ..Default::default() }, "lr must be a finite number above 0"),
            (DebiasConfig { nc3: Some(f64::NAN), ..Default::default() }, "nc3 must be a finite number of at least 0"),
            (DebiasConfig { steps: 10, warmup: 11, ..Default::default() }, "warmup 11 is more than steps 10"),
        ];
        for (cfg, expected) in cases {
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.starts_with("debias config: ") && err.contains(expected), "{err}");
        }
        DebiasConfig { steps: 10, warmup: 10, nc3: Some(0.0), ..Default::default() }.validate().unwrap();
    }

    #[test]
    fn the_method_table() {
        assert_eq!(Method::Dropout.dropout(Family::Gpt2), Some((0.15, 0.15)));
        assert_eq!(Method::Dropout.dropout(Family::Bert), Some((0.20, 0.15)));
        assert_eq!(Method::Cda.dropout(Family::Bert), None);
        assert_eq!(Method::Bec.default_corpus(), "gap");
        assert_eq!(Method::Contrastive.default_corpus(), "bug");
        assert_eq!("contrastive".parse::<Method>().unwrap(), Method::Contrastive);
        assert!("mabel".parse::<Method>().is_err());
    }

    /// `run.json` has today's keys and values: older runs must still resume.
    #[test]
    fn run_settings_are_the_command_lines() {
        let cfg = DebiasConfig { nc3: Some(10.0), train: Scope::Head, ..Default::default() };
        let s = run_settings("minilm", &cfg);
        let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "batch_size",
                "corpus",
                "grad_accum",
                "lr",
                "max_grad_norm",
                "max_len",
                "max_texts",
                "method",
                "model",
                "nc3",
                "nc3_variant",
                "policy",
                "seed",
                "steps",
                "target",
                "train",
                "warmup",
                "weight_decay",
                "words"
            ]
        );
        assert_eq!(
            (&s["model"], &s["method"], &s["train"], &s["nc3"], &s["policy"], &s["target"]),
            (
                &"minilm".into(),
                &"cda".into(),
                &"head".into(),
                &serde_json::json!(10.0),
                &"whole-word".into(),
                &serde_json::Value::Null
            )
        );
    }
}
