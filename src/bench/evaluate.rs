//! The bias-benchmark stage (`fairnc eval` as a library call): CrowS-Pairs, StereoSet
//! intrasentence and intersentence, SEAT and BEC-Pro on an already loaded model, from a typed [`EvalConfig`], into an
//! [`Evaluation`] — the summaries of `results.json` and the per-example detail its CSVs hold.
//! Nothing is written here; `report::eval::write` writes the files.

use super::becpro::{BecProMasking, BecProResult};
use super::crows::{CrowsResult, CrowsVariant};
use super::seat::SeatScore;
use super::self_debias::SelfDebias;
use super::stereoset::StereoSetResult;
use super::{BecProSection, CrowsSection, EvalResults, SeatSection, StereoSetInterSection, StereoSetSection};
use crate::data::crows::CrowsPair;
use crate::data::seat::SeatTest;
use crate::data::stereoset::Cluster;
use crate::data::{becpro, crows, seat, stereoset};
use crate::model::{LanguageModel, ModelKind};
use crate::util::progress::Progress;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One of the bias benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchTask {
    Crows,
    StereoSet,
    Seat,
    #[serde(rename = "stereoset-inter")]
    StereoSetInter,
    BecPro,
    /// AUL and AULA (Kaneko & Bollegala) on CrowS-Pairs and StereoSet; docs/aul.md.
    Aul,
    /// mlm-bias's CRR, CRRA, ΔP, ΔPA on CrowS-Pairs and StereoSet; docs/mlm-bias.md.
    #[serde(rename = "mlm-bias")]
    MlmBias,
}

impl BenchTask {
    pub const ALL: [BenchTask; 7] = [
        BenchTask::Crows,
        BenchTask::StereoSet,
        BenchTask::Seat,
        BenchTask::StereoSetInter,
        BenchTask::BecPro,
        BenchTask::Aul,
        BenchTask::MlmBias,
    ];
    /// What `fairnc eval` runs unless told otherwise.
    pub const DEFAULT: [BenchTask; 3] = [BenchTask::Crows, BenchTask::StereoSet, BenchTask::Seat];

    /// The name on the command line and in `results.json`'s settings.
    pub fn name(self) -> &'static str {
        match self {
            BenchTask::Crows => "crows",
            BenchTask::StereoSet => "stereoset",
            BenchTask::Seat => "seat",
            BenchTask::StereoSetInter => "stereoset-inter",
            BenchTask::BecPro => "becpro",
            BenchTask::Aul => "aul",
            BenchTask::MlmBias => "mlm-bias",
        }
    }

    /// The benchmark's name in reports.
    pub fn title(self) -> &'static str {
        match self {
            BenchTask::Crows => "CrowS-Pairs",
            BenchTask::StereoSet => "StereoSet",
            BenchTask::Seat => "SEAT",
            BenchTask::StereoSetInter => "StereoSet intersentence",
            BenchTask::BecPro => "BEC-Pro",
            BenchTask::Aul => "AUL/AULA",
            BenchTask::MlmBias => "mlm-bias (CRR/ΔP)",
        }
    }

    /// Whether the benchmark scores sentences by the LM head's token probabilities (SEAT reads
    /// only the hidden states).
    pub fn reads_lm_head(self) -> bool {
        !matches!(self, BenchTask::Seat)
    }

    /// A comma-separated list such as "crows,stereoset,seat", in the order given.
    pub fn parse_list(list: &str) -> Result<Vec<BenchTask>> {
        list.split(',').map(str::parse).collect()
    }
}

impl std::str::FromStr for BenchTask {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match BenchTask::ALL.into_iter().find(|t| t.name() == s) {
            Some(t) => Ok(t),
            None => {
                let names: Vec<&str> = BenchTask::ALL.iter().map(|t| t.name()).collect();
                bail!("unknown task \"{s}\" ({})", names.join(", "))
            }
        }
    }
}

/// What to run and on which data; the defaults are `fairnc eval`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// Benchmarks to run (each once, in the fixed order CrowS-Pairs, StereoSet, SEAT; the list
    /// is recorded as given).
    pub tasks: Vec<BenchTask>,
    /// Bias types (gender, race, religion, or any CrowS type); empty: every type for
    /// CrowS-Pairs and StereoSet, gender for SEAT.
    pub bias: Vec<String>,
    pub crows_variant: CrowsVariant,
    /// CrowS-Pairs CSV (None: the benchmark bundle's).
    pub crows_file: Option<PathBuf>,
    /// Score only the first N CrowS-Pairs rows.
    pub crows_limit: Option<usize>,
    /// StereoSet split of the bundle: test or dev.
    pub stereoset_split: String,
    /// StereoSet JSON file (overrides `stereoset_split`).
    pub stereoset_file: Option<PathBuf>,
    /// Score only the first N StereoSet clusters (of each part run).
    pub stereoset_limit: Option<usize>,
    /// Directory of SEAT tests in the sent-bias layout (None: the WEAT-based tests rebuilt from
    /// the weat bundle).
    pub seat_dir: Option<PathBuf>,
    /// SEAT tests by name (empty: the standard tests of the chosen bias types).
    pub seat_tests: Vec<String>,
    pub batch_size: usize,
    /// Seed of SEAT's random splits (tests too large to enumerate every split).
    pub seed: u64,
    /// BEC-Pro TSV (None: the benchmark bundle's BEC-Pro_EN.tsv).
    #[serde(default)]
    pub becpro_file: Option<PathBuf>,
    /// Score only the first N BEC-Pro rows.
    #[serde(default)]
    pub becpro_limit: Option<usize>,
    #[serde(default)]
    pub becpro_masking: BecProMasking,
    /// Score CrowS-Pairs and StereoSet with Self-Debias (bias-bench's prefixes; see
    /// docs/self-debias.md). SEAT and NC statistics read the features, which it leaves alone.
    #[serde(default)]
    pub self_debias: Option<SelfDebias>,
    /// AUL: which CrowS-Pairs sentence is the stereotypical one.
    #[serde(default)]
    pub aul_direction: super::aul::AulDirection,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            tasks: BenchTask::DEFAULT.to_vec(),
            bias: Vec::new(),
            crows_variant: CrowsVariant::BiasBench,
            crows_file: None,
            crows_limit: None,
            stereoset_split: "test".into(),
            stereoset_file: None,
            stereoset_limit: None,
            seat_dir: None,
            seat_tests: Vec::new(),
            batch_size: 64,
            seed: 0,
            becpro_file: None,
            becpro_limit: None,
            becpro_masking: BecProMasking::Subword,
            self_debias: None,
            aul_direction: Default::default(),
        }
    }
}

impl EvalConfig {
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            bail!("eval config: batch_size must be at least 1");
        }
        if self.crows_limit == Some(0) {
            bail!("eval config: crows_limit must be at least 1");
        }
        if self.stereoset_limit == Some(0) {
            bail!("eval config: stereoset_limit must be at least 1");
        }
        if self.becpro_limit == Some(0) {
            bail!("eval config: becpro_limit must be at least 1");
        }
        if self.self_debias.is_some() && self.runs(BenchTask::Crows) && self.crows_variant == CrowsVariant::LmEval {
            bail!("eval config: --self-debias has no lm-eval CrowS-Pairs scoring (use --crows-variant bias-bench)");
        }
        // The bundle has these two splits; a file given instead makes the split unused.
        if (self.runs(BenchTask::StereoSet) || self.runs(BenchTask::StereoSetInter))
            && self.stereoset_file.is_none()
            && !["test", "dev"].contains(&self.stereoset_split.as_str())
        {
            bail!("eval config: stereoset_split must be test or dev (got {:?})", self.stereoset_split);
        }
        Ok(())
    }

    pub fn runs(&self, task: BenchTask) -> bool {
        self.tasks.contains(&task)
    }
}

/// What [`evaluate`] found: the summaries of `results.json` and, for each benchmark run, the
/// per-example scores (pairs, sentences, tests) its CSV lists.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Evaluation {
    pub results: EvalResults,
    pub crows: Option<CrowsResult>,
    pub stereoset: Option<StereoSetResult>,
    pub seat: Option<Vec<(String, SeatScore)>>,
    pub stereoset_inter: Option<StereoSetResult>,
    pub becpro: Option<BecProResult>,
    #[serde(default)]
    pub aul: Option<super::aul::AulResult>,
    #[serde(default)]
    pub mlm_bias: Option<super::mlm_bias::MlmBiasResult>,
}

/// Runs the benchmarks of `cfg` on `model`. The notes of `results.json` say what was skipped
/// or could not be read; its settings record the model by `model.name`.
pub fn evaluate(model: &LanguageModel, cfg: &EvalConfig, progress: &dyn Progress) -> Result<Evaluation> {
    cfg.validate()?;
    let mut notes = Vec::new();
    let head_tasks: Vec<&str> = cfg.tasks.iter().filter(|t| t.reads_lm_head()).map(|t| t.title()).collect();
    if model.params.new_head && !head_tasks.is_empty() {
        notes.push(format!(
            "{} has no pretrained LM head: the {} scores come from an untrained head",
            model.name,
            head_tasks.join(", ")
        ));
    }
    notes.extend(self_debias_note(cfg));
    let crows = cfg.runs(BenchTask::Crows).then(|| run_crows(model, cfg, &mut notes, progress)).transpose()?;
    let stereoset =
        cfg.runs(BenchTask::StereoSet).then(|| run_stereoset(model, cfg, &mut notes, progress)).transpose()?;
    let seat = cfg.runs(BenchTask::Seat).then(|| run_seat(model, cfg, &mut notes, progress)).transpose()?;
    let stereoset_inter =
        if cfg.runs(BenchTask::StereoSetInter) { run_stereoset_inter(model, cfg, &mut notes, progress)? } else { None };
    let becpro = if cfg.runs(BenchTask::BecPro) { run_becpro(model, cfg, &mut notes, progress)? } else { None };
    let aul = cfg.runs(BenchTask::Aul).then(|| run_aul(model, cfg, &mut notes, progress)).transpose()?.flatten();
    let mlm_bias =
        cfg.runs(BenchTask::MlmBias).then(|| run_mlm_bias(model, cfg, &mut notes, progress)).transpose()?.flatten();
    let results = EvalResults {
        crows: crows.as_ref().map(|r| CrowsSection { by_type: r.by_type.clone(), overall: r.overall.clone() }),
        stereoset: stereoset
            .as_ref()
            .map(|r| StereoSetSection { by_domain: r.by_domain.clone(), overall: r.overall.clone() }),
        seat: seat.as_deref().map(SeatSection::new),
        stereoset_intersentence: stereoset_inter.as_ref().map(|r| StereoSetInterSection {
            by_domain: r.by_domain.clone(),
            overall: r.overall.clone(),
            combined: stereoset.as_ref().map(|intra| super::stereoset::pooled(&[intra, r])),
        }),
        becpro: becpro.as_ref().map(|r| BecProSection { by_group: r.by_group.clone(), overall: r.overall.clone() }),
        aul: aul.as_ref().map(|r| r.section.clone()),
        mlm_bias: mlm_bias.as_ref().map(|r| r.section.clone()),
        notes,
        settings: settings(model, cfg, crows.as_ref().map(|r| r.variant.as_str())),
    };
    Ok(Evaluation { results, crows, stereoset, seat, stereoset_inter, becpro, aul, mlm_bias })
}

/// `results.json`'s record of what was run.
fn settings(model: &LanguageModel, cfg: &EvalConfig, crows_scoring: Option<&str>) -> serde_json::Value {
    let lm_head = if model.params.new_head { "new" } else { "pretrained" };
    let seat_source =
        cfg.seat_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_else(|| "rebuilt from WEAT word lists".into());
    serde_json::json!({
        "model": model.name, "family": model.family(), "kind": model.kind(), "lm_head": lm_head,
        "tasks": cfg.tasks, "bias": cfg.bias, "crows_variant": cfg.crows_variant, "crows_scoring": crows_scoring,
        "stereoset_split": cfg.stereoset_split, "crows_limit": cfg.crows_limit, "stereoset_limit": cfg.stereoset_limit,
        "seat_source": seat_source, "becpro_limit": cfg.becpro_limit, "becpro_masking": cfg.becpro_masking, "self_debias": cfg.self_debias,
    })
}

/// What Self-Debias changes and what it cannot.
fn self_debias_note(cfg: &EvalConfig) -> Option<String> {
    let sd = cfg.self_debias?;
    Some(format!(
        "Self-Debias ({}): CrowS-Pairs and StereoSet are scored from the self-debiased output distribution (decay {}, epsilon {}); it changes no feature, so SEAT and NC statistics are the base model's, and so are BEC-Pro, AUL/AULA, mlm-bias and StereoSet intersentence, which bias-bench's Self-Debias does not cover",
        sd.name(),
        super::self_debias::DECAY,
        super::self_debias::EPSILON
    ))
}

/// The note for rows or clusters a data file holds but that could not be read.
fn malformed_note(path: &Path, what: &str, malformed: &[String]) -> Option<String> {
    (!malformed.is_empty()).then(|| {
        format!(
            "{}: skipped {} malformed {what} ({})",
            path.display(),
            malformed.len(),
            malformed.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
        )
    })
}

/// CrowS-Pairs calls race "race-color".
fn crows_type(b: &str) -> &str {
    if b == "race" { "race-color" } else { b }
}

/// The CrowS-Pairs rows to score: of the chosen bias types, cut to the limit.
fn crows_pairs(cfg: &EvalConfig, notes: &mut Vec<String>) -> Result<Vec<CrowsPair>> {
    let path = match &cfg.crows_file {
        Some(p) => p.clone(),
        None => crows::default_path()?,
    };
    let data = crows::read(&path)?;
    notes.extend(malformed_note(&path, "rows", &data.malformed));
    let mut pairs: Vec<CrowsPair> = data
        .pairs
        .into_iter()
        .filter(|p| cfg.bias.is_empty() || cfg.bias.iter().any(|b| crows_type(b) == p.bias_type))
        .collect();
    if let Some(n) = cfg.crows_limit {
        pairs.truncate(n);
    }
    if pairs.is_empty() {
        bail!("{}: no CrowS-Pairs rows of bias type {}", path.display(), cfg.bias.join(","));
    }
    Ok(pairs)
}

fn run_crows(
    model: &LanguageModel,
    cfg: &EvalConfig,
    notes: &mut Vec<String>,
    progress: &dyn Progress,
) -> Result<CrowsResult> {
    let pairs = crows_pairs(cfg, notes)?;
    let r = super::crows::score_with(model, &pairs, cfg.crows_variant, cfg.self_debias, cfg.batch_size, progress)?;
    if r.skipped > 0 {
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for why in r.pairs.iter().filter_map(|p| p.skipped.as_deref()) {
            *reasons.entry(why).or_default() += 1;
        }
        let why: Vec<String> = reasons.iter().map(|(w, n)| format!("{n} {w}")).collect();
        notes.push(format!("CrowS-Pairs: {} pairs skipped and left out of N ({})", r.skipped, why.join("; ")));
    }
    Ok(r)
}

/// The StereoSet clusters of one part to score: of the chosen domains, cut to the limit.
fn stereoset_clusters(cfg: &EvalConfig, notes: &mut Vec<String>, part: stereoset::Part) -> Result<Vec<Cluster>> {
    let path = match &cfg.stereoset_file {
        Some(p) => p.clone(),
        None => stereoset::default_path(&cfg.stereoset_split)?,
    };
    let data = stereoset::read_part(&path, part)?;
    notes.extend(malformed_note(&path, "clusters", &data.malformed));
    let mut clusters: Vec<Cluster> =
        data.clusters.into_iter().filter(|c| cfg.bias.is_empty() || cfg.bias.contains(&c.bias_type)).collect();
    if let Some(n) = cfg.stereoset_limit {
        clusters.truncate(n);
    }
    if clusters.is_empty() {
        bail!("{}: no StereoSet clusters of domain {}", path.display(), cfg.bias.join(","));
    }
    Ok(clusters)
}

fn run_stereoset(
    model: &LanguageModel,
    cfg: &EvalConfig,
    notes: &mut Vec<String>,
    progress: &dyn Progress,
) -> Result<StereoSetResult> {
    let clusters = stereoset_clusters(cfg, notes, stereoset::Part::Intrasentence)?;
    let r = super::stereoset::score(model, &clusters, cfg.self_debias, cfg.batch_size, progress)?;
    if r.skipped > 0 {
        let with = if cfg.self_debias.is_some() { " with its Self-Debias prefix" } else { "" };
        notes.push(format!(
            "StereoSet: {} clusters skipped (a sentence longer than the model's {} positions{with})",
            r.skipped,
            model.max_len()
        ));
    }
    Ok(r)
}

/// StereoSet intersentence; None (with a note) for a masked LM without a next-sentence head.
fn run_stereoset_inter(
    model: &LanguageModel,
    cfg: &EvalConfig,
    notes: &mut Vec<String>,
    progress: &dyn Progress,
) -> Result<Option<StereoSetResult>> {
    if model.kind() == ModelKind::Masked && !model.has_next_sentence_head() {
        notes.push(format!(
            "StereoSet intersentence skipped: {} is a masked LM without a next-sentence head (cls.seq_relationship, as BertForPreTraining checkpoints hold)",
            model.name
        ));
        return Ok(None);
    }
    let clusters = stereoset_clusters(cfg, notes, stereoset::Part::Intersentence)?;
    let r = super::stereoset_inter::score(model, &clusters, cfg.batch_size, progress)?;
    if r.skipped > 0 {
        notes.push(format!(
            "StereoSet intersentence: {} clusters skipped (a context and sentence longer than the model's {} positions)",
            r.skipped,
            model.max_len()
        ));
    }
    Ok(Some(r))
}

/// BEC-Pro; None (with a note) for a causal LM or bias types without gender.
fn run_becpro(
    model: &LanguageModel,
    cfg: &EvalConfig,
    notes: &mut Vec<String>,
    progress: &dyn Progress,
) -> Result<Option<BecProResult>> {
    if model.kind() == ModelKind::Causal {
        notes.push(format!(
            "BEC-Pro skipped: {} is a causal LM; the association needs masked-token probabilities",
            model.name
        ));
        return Ok(None);
    }
    if !cfg.bias.is_empty() && !cfg.bias.iter().any(|b| b == "gender") {
        notes.push("BEC-Pro skipped: it measures gender only, and the bias types chosen do not include gender".into());
        return Ok(None);
    }
    let path = match &cfg.becpro_file {
        Some(p) => p.clone(),
        None => becpro::default_path()?,
    };
    let mut data = becpro::read(&path)?;
    notes.extend(malformed_note(&path, "rows", &data.malformed));
    if let Some(n) = cfg.becpro_limit {
        data.rows.truncate(n);
    }
    let r = super::becpro::score(model, &data.rows, cfg.becpro_masking, false, cfg.batch_size, progress)?;
    if r.skipped > 0 {
        notes.push(format!(
            "BEC-Pro: {} rows skipped (longer than the model's positions, or a word not found among the tokens)",
            r.skipped
        ));
    }
    if r.unpaired > 0 {
        notes.push(format!(
            "BEC-Pro: {} scored rows have no partner of the other gender and are left out of the Wilcoxon tests",
            r.unpaired
        ));
    }
    Ok(Some(r))
}

/// The CrowS-Pairs rows and StereoSet clusters of the peer measures as sentence pairs (the
/// files' notes added once, though CrowS-Pairs or StereoSet may have read them too).
fn peer_pairs(
    cfg: &EvalConfig,
    order: super::sentence_pairs::CrowsOrder,
    notes: &mut Vec<String>,
) -> Result<Vec<super::sentence_pairs::SentencePair>> {
    let mut read = Vec::new();
    let mut pairs = super::sentence_pairs::from_crows(&crows_pairs(cfg, &mut read)?, order);
    pairs.extend(super::sentence_pairs::from_stereoset(&stereoset_clusters(
        cfg,
        &mut read,
        stereoset::Part::Intrasentence,
    )?));
    for n in read {
        if !notes.contains(&n) {
            notes.push(n);
        }
    }
    Ok(pairs)
}

/// The note for pairs a peer measure skipped, by reason.
fn peer_skip_note(what: &str, reasons: impl Iterator<Item = String>) -> Option<String> {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for r in reasons {
        *by.entry(r).or_default() += 1;
    }
    let total: usize = by.values().sum();
    (total > 0).then(|| {
        let why: Vec<String> = by.iter().map(|(w, n)| format!("{n} {w}")).collect();
        format!("{what}: {total} pairs skipped and left out of N ({})", why.join("; "))
    })
}

fn run_aul(
    model: &LanguageModel,
    cfg: &EvalConfig,
    notes: &mut Vec<String>,
    progress: &dyn Progress,
) -> Result<Option<super::aul::AulResult>> {
    if model.kind() != crate::model::ModelKind::Masked {
        notes.push(format!("AUL skipped: {} is a causal LM; AUL/AULA are defined for masked LMs", model.name));
        return Ok(None);
    }
    let order = match cfg.aul_direction {
        super::aul::AulDirection::BiasBench => super::sentence_pairs::CrowsOrder::Stereotypical,
        super::aul::AulDirection::SentMore => super::sentence_pairs::CrowsOrder::SentMore,
    };
    let pairs = peer_pairs(cfg, order, notes)?;
    let r = super::aul::score(model, &pairs, cfg.aul_direction, cfg.batch_size, progress)?;
    notes.extend(peer_skip_note("AUL", r.pairs.iter().filter_map(|p| p.skipped.clone())));
    Ok(Some(r))
}

fn run_mlm_bias(
    model: &LanguageModel,
    cfg: &EvalConfig,
    notes: &mut Vec<String>,
    progress: &dyn Progress,
) -> Result<Option<super::mlm_bias::MlmBiasResult>> {
    if model.kind() != crate::model::ModelKind::Masked {
        notes.push(format!(
            "mlm-bias skipped: {} is a causal LM; CRR/CRRA/ΔP/ΔPA are defined for masked LMs",
            model.name
        ));
        return Ok(None);
    }
    let pairs = peer_pairs(cfg, super::sentence_pairs::CrowsOrder::SentMore, notes)?;
    let r = super::mlm_bias::score(model, &pairs, cfg.batch_size, progress)?;
    notes.extend(peer_skip_note("mlm-bias", r.pairs.iter().filter_map(|p| p.skipped.clone())));
    Ok(Some(r))
}

/// The SEAT tests to run: the named ones or the standard tests of the bias types, read from
/// `seat_dir` or rebuilt from WEAT word lists.
fn seat_tests(cfg: &EvalConfig) -> Result<Vec<SeatTest>> {
    let biases: Vec<String> = if cfg.bias.is_empty() { vec!["gender".into()] } else { cfg.bias.clone() };
    let names: Vec<String> = if cfg.seat_tests.is_empty() {
        biases.iter().flat_map(|b| seat::tests_of(b)).map(String::from).collect()
    } else {
        cfg.seat_tests.clone()
    };
    if names.is_empty() {
        bail!("no SEAT tests for bias type {}", biases.join(","));
    }
    match &cfg.seat_dir {
        Some(dir) => seat::read_dir(dir, &names),
        None => names.iter().map(|n| seat::rebuild(n)).collect(),
    }
}

/// Rebuilt tests that differ from sent-bias's files of the same name are not comparable with
/// published effect sizes: the note names them.
fn rebuilt_note(tests: &[SeatTest]) -> Option<String> {
    let differ: Vec<String> = tests
        .iter()
        .filter(|t| !seat::is_standard(&t.name))
        .map(|t| {
            format!(
                "{} ({} {} / {} {} sentences)",
                t.name,
                t.targ1.examples.len(),
                t.targ1.category,
                t.targ2.examples.len(),
                t.targ2.category
            )
        })
        .collect();
    (!differ.is_empty()).then(|| {
        format!(
            "SEAT tests rebuilt from WEFE's WEAT lists: {} keep every Arts sentence where sent-bias's files of the same name cut the set at random to the other target's size, so their effect sizes are not comparable with published ones (pass --seat-dir with sent-bias's files for those)",
            differ.join(", ")
        )
    })
}

fn run_seat(
    model: &LanguageModel,
    cfg: &EvalConfig,
    notes: &mut Vec<String>,
    progress: &dyn Progress,
) -> Result<Vec<(String, SeatScore)>> {
    let tests = seat_tests(cfg)?;
    if cfg.seat_dir.is_none() {
        notes.extend(rebuilt_note(&tests));
    }
    super::seat::score(model, &tests, cfg.batch_size, cfg.seed, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_lists_parse_in_order_and_name_an_unknown_task() {
        assert_eq!(
            BenchTask::parse_list("seat,crows").unwrap(),
            vec![BenchTask::Seat, BenchTask::Crows],
            "the order given is kept"
        );
        assert_eq!(BenchTask::parse_list("crows,stereoset,seat").unwrap(), EvalConfig::default().tasks);
        let e = BenchTask::parse_list("crows,winobias").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown task \"winobias\" (crows, stereoset, seat, stereoset-inter, becpro, aul, mlm-bias)"
        );
        assert_eq!(
            serde_json::to_value(BenchTask::ALL).unwrap(),
            serde_json::json!(["crows", "stereoset", "seat", "stereoset-inter", "becpro", "aul", "mlm-bias"])
        );
        assert_eq!(
            BenchTask::parse_list("stereoset-inter,becpro").unwrap(),
            vec![BenchTask::StereoSetInter, BenchTask::BecPro]
        );
        assert_eq!(BenchTask::parse_list("aul,mlm-bias").unwrap(), vec![BenchTask::Aul, BenchTask::MlmBias]);
    }

    #[test]
    fn a_config_that_cannot_run_names_the_field() {
        assert!(EvalConfig::default().validate().is_ok());
        let bad = |cfg: EvalConfig| cfg.validate().unwrap_err().to_string();
        assert_eq!(
            bad(EvalConfig { batch_size: 0, ..Default::default() }),
            "eval config: batch_size must be at least 1"
        );
        assert!(bad(EvalConfig { crows_limit: Some(0), ..Default::default() }).contains("crows_limit"));
        assert!(bad(EvalConfig { stereoset_limit: Some(0), ..Default::default() }).contains("stereoset_limit"));
        assert!(bad(EvalConfig { becpro_limit: Some(0), ..Default::default() }).contains("becpro_limit"));
        assert!(bad(EvalConfig { stereoset_split: "train".into(), ..Default::default() }).contains("stereoset_split"));
        let file =
            EvalConfig { stereoset_split: "train".into(), stereoset_file: Some("x.json".into()), ..Default::default() };
        assert!(file.validate().is_ok(), "a file makes the split unused");
    }
}
