//! The collapse stage: a typed configuration, its resolution for a model into the settings a
//! result records and the options of a run, and the computations themselves: the whole
//! measurement, a statistics shard, a decision shard. Each keeps its shards and checkpoints in
//! an output directory (reusing the same computation's finished statistics, resuming an
//! unfinished pass, refusing another computation's files unless told to replace them) and
//! returns its result; writing the report is the caller's (`report::collapse::write`).

use super::output::claim;
use super::run::{Collector, Run, RunOptions, decisions_path, stats_path};
use super::shard::{self, Info};
use super::{CollapseResult, Features, MetricConvention, Settings, Target, assemble};
use crate::data::corpus::Corpus;
use crate::model::{LanguageModel, ModelKind};
use crate::util::progress::Progress;
use crate::words::{ClassSet, Policy, WordSet};
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A preset of defaults for the target, features, policy and metric variants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Convention {
    /// METHOD §4: whole words, p = 1, centred log kernel; target by model kind.
    #[default]
    Default,
    /// The Fairness-NC release: next-token targets, first subwords, p = 2, squared norms,
    /// uncentred log kernel, features after the MLM head transform.
    FairnessNc,
}

impl Convention {
    /// The name results record.
    pub fn name(self) -> &'static str {
        match self {
            Convention::Default => "default",
            Convention::FairnessNc => "fairness-nc",
        }
    }
}

/// What to measure and how; `None` fields take the convention's default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollapseConfig {
    /// Word set: gender, gender-large, race, religion, a TOML/JSON file, or `vocabulary`.
    pub words: String,
    /// Corpus: bug, gap, bold, or a text file with one text per line.
    pub corpus: String,
    /// Use an evenly spread subset of at most this many texts.
    pub max_texts: Option<usize>,
    pub convention: Convention,
    /// Word → class policy (default: whole-word; fairness-nc: first-subword).
    pub policy: Option<Policy>,
    /// Label of a hidden state (default: same for masked LMs, next for causal LMs).
    pub target: Option<Target>,
    /// Feature vector (default: hidden; fairness-nc: head).
    pub features: Option<Features>,
    /// Exponent p of the CDNV denominator, 1 or 2 (default 1; fairness-nc 2).
    pub cdnv_power: Option<u32>,
    /// Classes seen fewer times in the statistics part are left out.
    pub min_count: u64,
    /// Fraction of texts held out for the decision pass (NC4), strictly between 0 and 1.
    pub heldout: f64,
    /// Tokens per text (at least 2); longer texts are truncated.
    pub max_len: usize,
    pub batch_size: usize,
    /// Texts per block: batches never cross a block and a shard is a range of blocks, so all
    /// shards of one computation must use the same value.
    pub block: usize,
}

impl Default for CollapseConfig {
    fn default() -> Self {
        CollapseConfig {
            words: "gender".into(),
            corpus: "bug".into(),
            max_texts: None,
            convention: Convention::Default,
            policy: None,
            target: None,
            features: None,
            cdnv_power: None,
            min_count: 1,
            heldout: 0.2,
            max_len: 128,
            batch_size: 64,
            block: 1024,
        }
    }
}

/// A config resolved for one model: what its result records, and how its run goes.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub settings: Settings,
    pub opts: RunOptions,
}

impl CollapseConfig {
    pub fn validate(&self) -> Result<()> {
        let fail = |what: &str| bail!("collapse config: {what}");
        if self.words.is_empty() {
            return fail("words must name a word set");
        }
        if self.corpus.is_empty() {
            return fail("corpus must name a corpus");
        }
        if self.max_texts == Some(0) {
            return fail("max_texts must be at least 1");
        }
        if self.cdnv_power.is_some_and(|p| !(1..=2).contains(&p)) {
            return fail("cdnv_power must be 1 or 2");
        }
        if self.min_count == 0 {
            return fail("min_count must be at least 1");
        }
        if !(self.heldout > 0.0 && self.heldout < 1.0) {
            return fail("heldout must be a fraction strictly between 0 and 1");
        }
        if self.max_len < 2 {
            return fail("max_len must be at least 2");
        }
        if self.batch_size == 0 {
            return fail("batch_size must be at least 1");
        }
        if self.block == 0 {
            return fail("block must be at least 1");
        }
        Ok(())
    }

    /// The settings and run options for a model called `model` of kind `kind`: the
    /// convention's defaults where the config leaves a choice open.
    pub fn resolve(&self, model: &str, kind: ModelKind) -> Resolved {
        let fnc = self.convention == Convention::FairnessNc;
        let target = self.target.unwrap_or(if fnc || kind == ModelKind::Causal { Target::Next } else { Target::Same });
        let features = self.features.unwrap_or(if fnc { Features::Head } else { Features::Hidden });
        let policy = self.policy.unwrap_or(if fnc { Policy::FirstSubword } else { Policy::WholeWord });
        let mut metric = if fnc { MetricConvention::FAIRNESS_NC } else { MetricConvention::DEFAULT };
        if let Some(p) = self.cdnv_power {
            metric.cdnv_power = p;
        }
        let settings = Settings {
            model: model.to_string(),
            corpus: self.corpus.clone(),
            words: self.words.clone(),
            policy,
            convention: self.convention.name().into(),
            target,
            features,
            metric,
            min_count: self.min_count,
            heldout: self.heldout,
            max_len: self.max_len,
            projection: None,
        };
        let opts = RunOptions {
            target,
            features,
            max_len: self.max_len,
            batch_size: self.batch_size,
            heldout: self.heldout,
            min_count: self.min_count,
            block: self.block,
            ..RunOptions::default()
        };
        Resolved { settings, opts }
    }
}

/// The whole measurement (statistics, then the decision pass against them) of `model` under
/// `cfg`, with its shards and checkpoints in `dir`. Another computation's files in `dir` are
/// refused unless `overwrite`.
pub fn measure(
    model: &LanguageModel,
    cfg: &CollapseConfig,
    dir: &Path,
    overwrite: bool,
    progress: &dyn Progress,
) -> Result<CollapseResult> {
    let inputs = Inputs::load(model, cfg)?;
    let run = inputs.run(model, None, dir, overwrite)?;
    let stats = run.stats(progress)?;
    inputs.require_positions(stats.positions())?;
    let decisions = run.decisions(&stats, progress)?;
    let mut result = assemble(&inputs.classes, &stats, Some(&decisions), &run.w, inputs.settings.clone());
    if result.settings.features == Features::Head && model.params.new_head {
        result.notes.push(format!(
            "{} has no pretrained MLM head: head features come from a newly initialised transform",
            model.name
        ));
    }
    Ok(result)
}

/// The statistics of shard `shard = (i, n)` of the corpus, written to `dir`; returns the
/// shard's file. Merge all shards with [`super::merge::merge`], then run the decision pass of
/// each against the merged statistics ([`measure_decisions`]).
pub fn measure_stats_shard(
    model: &LanguageModel,
    cfg: &CollapseConfig,
    shard: (usize, usize),
    dir: &Path,
    overwrite: bool,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    let inputs = Inputs::load(model, cfg)?;
    let run = inputs.run(model, Some(shard), dir, overwrite)?;
    inputs.require_positions(run.stats(progress)?.positions())?;
    Ok(stats_path(dir))
}

/// The decision pass of `shard` (or of the whole corpus) against the merged statistics at
/// `means` (a directory or its `stats.safetensors`), written to `dir`; returns the shard's file.
pub fn measure_decisions(
    model: &LanguageModel,
    cfg: &CollapseConfig,
    shard: Option<(usize, usize)>,
    means: &Path,
    dir: &Path,
    overwrite: bool,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    let inputs = Inputs::load(model, cfg)?;
    let run = inputs.run(model, shard, dir, overwrite)?;
    let (header, stats) = shard::read_stats(means)?;
    if header.identity != run.identity {
        bail!("{}: statistics from a different model, word set, corpus or settings", means.display());
    }
    run.decisions(&stats, progress)?;
    Ok(decisions_path(dir))
}

/// What a computation runs over: the config resolved for the model, its classes and corpus.
struct Inputs {
    settings: Settings,
    opts: RunOptions,
    classes: ClassSet,
    corpus: Corpus,
}

impl Inputs {
    fn load(model: &LanguageModel, cfg: &CollapseConfig) -> Result<Self> {
        cfg.validate()?;
        let Resolved { mut settings, opts } = cfg.resolve(&model.name, model.kind());
        settings.projection = model.projection().cloned();
        let classes = if cfg.words == "vocabulary" {
            ClassSet::vocabulary(&model.tokenizer)
        } else {
            ClassSet::map(&WordSet::load(&cfg.words)?, &model.tokenizer, settings.policy)?
        };
        let corpus = Corpus::load(&cfg.corpus)?.subsample(cfg.max_texts);
        Ok(Inputs { settings, opts, classes, corpus })
    }

    /// A run over `shard` of the corpus (or all of it) keeping its files in `dir`, which must
    /// not hold another computation unless `overwrite` (then that one's files are removed).
    fn run<'a>(
        &'a self,
        model: &'a LanguageModel,
        shard: Option<(usize, usize)>,
        dir: &Path,
        overwrite: bool,
    ) -> Result<Run<'a>> {
        let collector = Collector::new(model, &self.classes, self.opts.clone());
        let mut run = Run::new(collector, &self.corpus, shard, dir)?;
        run.info = serde_json::to_value(Info { settings: self.settings.clone(), classes: self.classes.clone() })?;
        claim(dir, &self.settings, &run.identity, &[run.blocks], overwrite)?;
        Ok(run)
    }

    /// Statistics without a single labelled position measure nothing: say why.
    fn require_positions(&self, positions: u64) -> Result<()> {
        if positions == 0 {
            bail!(
                "corpus {} has no position labelled with a word of {} ({} classes)",
                self.corpus.name,
                self.classes.name,
                self.classes.classes.len()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_command_line_defaults_and_bad_values_are_named() {
        let cfg = CollapseConfig::default();
        cfg.validate().unwrap();
        assert_eq!(serde_json::to_value(cfg.convention).unwrap(), "default");
        assert_eq!(serde_json::to_value(Convention::FairnessNc).unwrap(), Convention::FairnessNc.name());
        for (bad, field) in [
            (CollapseConfig { batch_size: 0, ..cfg.clone() }, "batch_size"),
            (CollapseConfig { heldout: 1.0, ..cfg.clone() }, "heldout"),
            (CollapseConfig { heldout: f64::NAN, ..cfg.clone() }, "heldout"),
            (CollapseConfig { cdnv_power: Some(3), ..cfg.clone() }, "cdnv_power"),
            (CollapseConfig { max_len: 1, ..cfg.clone() }, "max_len"),
            (CollapseConfig { block: 0, ..cfg.clone() }, "block"),
            (CollapseConfig { min_count: 0, ..cfg.clone() }, "min_count"),
            (CollapseConfig { max_texts: Some(0), ..cfg.clone() }, "max_texts"),
        ] {
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.starts_with("collapse config: ") && err.contains(field), "{err}");
        }
    }

    #[test]
    fn the_fairness_nc_preset_resolves_to_the_release() {
        let cfg = CollapseConfig { convention: Convention::FairnessNc, cdnv_power: Some(1), ..Default::default() };
        let r = cfg.resolve("m", ModelKind::Masked);
        assert_eq!(
            (r.settings.target, r.settings.features, r.settings.policy),
            (Target::Next, Features::Head, Policy::FirstSubword)
        );
        assert_eq!(r.settings.metric, MetricConvention { cdnv_power: 1, ..MetricConvention::FAIRNESS_NC });
        assert_eq!(r.settings.convention, "fairness-nc");
        let r = CollapseConfig::default().resolve("m", ModelKind::Masked);
        assert_eq!((r.settings.target, r.opts.target), (Target::Same, Target::Same));
        assert_eq!(CollapseConfig::default().resolve("m", ModelKind::Causal).settings.target, Target::Next);
    }
}
