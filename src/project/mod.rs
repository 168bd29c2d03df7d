//! Post-hoc projection debiasing as bias-bench implements it (METHOD §11): SentenceDebias
//! (a PCA bias subspace of counterfactual sentence representations, projected out) and INLP
//! (iterated linear classifiers, projection onto the intersection of their nullspaces). Not a
//! fine-tune: the stage encodes sentences with the base model, computes P `[D, D]`, and writes
//! `DIR/model/` = the base checkpoint's files + `projection.safetensors`, which the loader
//! applies to the last-layer hidden states of every later command.

pub mod encode;
pub mod inlp;
pub mod linalg;
pub mod sentences;
pub mod svm;

use crate::data::corpus::Corpus;
use crate::model::{LoadOptions, projection};
use crate::util::progress::Progress;
use crate::words::WordSet;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProjectionMethod {
    /// Liang et al. 2020: the bias subspace of counterfactual sentence representations.
    SentenceDebias,
    /// Ravfogel et al. 2020: iterative nullspace projection of linear attribute classifiers.
    Inlp,
}

impl ProjectionMethod {
    pub fn name(self) -> &'static str {
        match self {
            ProjectionMethod::SentenceDebias => "sentence-debias",
            ProjectionMethod::Inlp => "inlp",
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bias {
    Gender,
    Race,
    Religion,
}

impl Bias {
    pub fn name(self) -> &'static str {
        match self {
            Bias::Gender => "gender",
            Bias::Race => "race",
            Bias::Religion => "religion",
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProjectConfig {
    pub method: ProjectionMethod,
    pub bias: Bias,
    /// Word set whose tuples / groups build the sentences (None: the bias's built-in set,
    /// bias-bench's attribute words).
    pub words: Option<String>,
    /// Corpus (or comma-separated corpora): bold (BOLD's Wikipedia sentences, the nearest to
    /// bias-bench's Wikipedia sample), bug, gap, or text files.
    pub corpus: String,
    /// Evenly spaced texts of each corpus to keep (None: all).
    pub max_texts: Option<usize>,
    /// SentenceDebias: principal components removed (bias-bench: 1 for every bias type).
    pub components: usize,
    /// INLP: classifiers trained (bias-bench: 80 for every bias type).
    pub iterations: usize,
    /// INLP: sentences kept per class (bias-bench: 10,000).
    pub per_class: usize,
    /// SentenceDebias: tokens per sentence (bias-bench: 128). INLP truncates at the model's limit.
    pub max_len: usize,
    pub batch_size: usize,
    /// Shuffling of INLP's texts and its train / dev / test split.
    pub seed: u64,
    /// SentenceDebias: leave out the last partial batch of tuples, as bias-bench's
    /// `len(data) // batch_size` loop does (to match its numbers).
    pub drop_last_batch: bool,
    pub device: crate::util::device::DeviceSpec,
    pub dtype: crate::util::device::Dtype,
}

impl Default for ProjectConfig {
    fn default() -> Self {
        ProjectConfig {
            method: ProjectionMethod::SentenceDebias,
            bias: Bias::Gender,
            words: None,
            corpus: "bold".into(),
            max_texts: None,
            components: 1,
            iterations: 80,
            per_class: 10_000,
            max_len: 128,
            batch_size: 32,
            seed: 0,
            drop_last_batch: false,
            device: Default::default(),
            dtype: Default::default(),
        }
    }
}

impl ProjectConfig {
    pub fn validate(&self) -> Result<()> {
        let fail = |what: &str| bail!("projection config: {what}");
        if self.components == 0 {
            return fail("components must be at least 1");
        }
        if self.iterations == 0 {
            return fail("iterations must be at least 1");
        }
        if self.per_class == 0 {
            return fail("per_class must be at least 1");
        }
        if self.max_len < 2 {
            return fail("max_len must be at least 2");
        }
        if self.batch_size == 0 {
            return fail("batch_size must be at least 1");
        }
        if self.max_texts == Some(0) {
            return fail("max_texts must be at least 1");
        }
        Ok(())
    }

    fn words(&self) -> String {
        self.words.clone().unwrap_or_else(|| self.bias.name().to_string())
    }
}

/// What a projection run did: `projection.json` is this, serialised.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProjectResult {
    pub model: String,
    pub method: ProjectionMethod,
    pub bias: Bias,
    pub words: String,
    pub corpus: String,
    /// Counterfactual tuples (SentenceDebias) or labelled sentences (INLP) encoded.
    pub examples: usize,
    /// INLP: sentences per class label.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub class_counts: Vec<(i64, usize)>,
    /// Directions removed.
    pub rank: usize,
    pub width: usize,
    /// SentenceDebias: variance of the centred representations along each removed component.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub component_variance: Vec<f64>,
    /// INLP: train / dev / test sizes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<[usize; 3]>,
    /// INLP: each iteration's dev accuracy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dev_accuracy: Vec<f64>,
    /// INLP: test accuracy of a fresh classifier before and after the projection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<(f64, f64)>,
    pub config: ProjectConfig,
    pub model_dir: PathBuf,
    pub projection_file: PathBuf,
}

/// The SentenceDebias bias subspace of `groups` (one `[n, D]` block of L2-normalised
/// representations per group, tuple i in row i of every block): each tuple centred on its mean,
/// all rows stacked, the `k` leading principal components (bias-bench's `compute_*_subspace`).
pub fn sentence_debias_subspace(groups: &[Vec<f64>], d: usize, k: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    let n = groups[0].len() / d;
    let g = groups.len() as f64;
    let mut stacked = Vec::with_capacity(groups.len() * n * d);
    for block in groups {
        for i in 0..n {
            for j in 0..d {
                let mean: f64 = groups.iter().map(|b| b[i * d + j]).sum::<f64>() / g;
                stacked.push(block[i * d + j] - mean);
            }
        }
    }
    linalg::principal_components(&linalg::Rows { data: &stacked, d }, k)
}

/// A seeded split of `n` indices as bias-bench's two `train_test_split(test_size=0.3)`: test 30%,
/// dev 30% of the rest, train the remainder.
fn split(n: usize, seed: u64) -> [Vec<usize>; 3] {
    let mut idx: Vec<usize> = (0..n).collect();
    crate::util::rng::SplitMix::new(seed ^ 0x1A1F).shuffle(&mut idx);
    let n_test = (0.3 * n as f64).ceil() as usize;
    let rest = n - n_test;
    let n_dev = (0.3 * rest as f64).ceil() as usize;
    let test = idx[..n_test].to_vec();
    let dev = idx[n_test..n_test + n_dev].to_vec();
    let train = idx[n_test + n_dev..].to_vec();
    [train, dev, test]
}

fn gather(x: &[f64], d: usize, idx: &[usize]) -> Vec<f64> {
    idx.iter().flat_map(|&i| x[i * d..(i + 1) * d].iter().copied()).collect()
}

fn load_texts(cfg: &ProjectConfig) -> Result<Vec<String>> {
    let mut texts = Vec::new();
    for spec in cfg.corpus.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        texts.extend(Corpus::load(spec)?.subsample(cfg.max_texts).texts);
    }
    if texts.is_empty() {
        bail!("projection: --corpus {:?} names no corpus", cfg.corpus);
    }
    Ok(texts)
}

/// Copies the checkpoint files of `src` (not a projection it may hold) into `dst`.
fn copy_checkpoint(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst).with_context(|| format!("{}: cannot create", dst.display()))?;
    for e in std::fs::read_dir(src).with_context(|| format!("{}: cannot list", src.display()))?.flatten() {
        let p = e.path();
        let name = e.file_name();
        if p.is_file() && name != projection::FILE {
            std::fs::copy(&p, dst.join(&name)).with_context(|| format!("{}: cannot copy", p.display()))?;
        }
    }
    Ok(())
}

/// A projection run's output directory: new or empty, or one holding a projection run that
/// `--overwrite` replaces.
pub fn prepare_output(out: &Path, overwrite: bool) -> Result<()> {
    let busy = std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(false);
    if !busy {
        return Ok(());
    }
    if !out.join("projection.json").is_file() {
        anyhow::bail!(
            "--output {}: holds files that are not a projection run; choose an empty or new directory",
            out.display()
        );
    }
    if !overwrite {
        anyhow::bail!("--output {}: holds a projection run; pass --overwrite to replace it", out.display());
    }
    for name in ["model", "projection.json", "projection.md"] {
        let p = out.join(name);
        if p.is_dir() {
            std::fs::remove_dir_all(&p)?;
        } else if p.exists() {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

/// Computes the projection of `cfg` for `model_name` (a registry name or checkpoint directory)
/// and writes `out/model/` (base files + `projection.safetensors`), `out/projection.json` and
/// `out/projection.md`.
pub fn project(model_name: &str, cfg: &ProjectConfig, out: &Path, progress: &dyn Progress) -> Result<ProjectResult> {
    cfg.validate()?;
    let dir = crate::registry::resolve(model_name)?;
    let opts = crate::util::device::load_options(cfg.device, cfg.dtype, cfg.seed)?;
    let mut model = crate::util::device::load(&dir, &LoadOptions { projection: None, ..opts })?;
    model.name = model_name.to_string();
    if let Some(p) = model.projection() {
        bail!("{model_name}: already carries a projection ({}); project the base model instead", p.file);
    }
    let set = WordSet::load(&cfg.words())?;
    if set.tuples.is_empty() && cfg.method == ProjectionMethod::SentenceDebias {
        bail!("SentenceDebias: word set {} has no tuples; counterfactual sentences need aligned words", set.name);
    }
    let texts = load_texts(cfg)?;
    let d = model.feature_width();
    let mut result = ProjectResult {
        model: model_name.to_string(),
        method: cfg.method,
        bias: cfg.bias,
        words: set.name.clone(),
        corpus: cfg.corpus.clone(),
        examples: 0,
        class_counts: Vec::new(),
        rank: 0,
        width: d,
        component_variance: Vec::new(),
        split: None,
        dev_accuracy: Vec::new(),
        test_accuracy: None,
        config: cfg.clone(),
        model_dir: out.join("model"),
        projection_file: out.join("model").join(projection::FILE),
    };
    let basis: Vec<Vec<f64>> = match cfg.method {
        ProjectionMethod::SentenceDebias => {
            let mut tuples = sentences::counterfactual_tuples(&texts, &set);
            if cfg.drop_last_batch {
                tuples.truncate(tuples.len() / cfg.batch_size * cfg.batch_size);
            }
            if tuples.len() < 2 {
                bail!(
                    "SentenceDebias: corpus {} has {} text(s) with a word of word set {} (at least 2 needed)",
                    cfg.corpus,
                    tuples.len(),
                    set.name
                );
            }
            result.examples = tuples.len();
            let k = tuples[0].len();
            let mut groups = Vec::with_capacity(k);
            for g in 0..k {
                let texts: Vec<String> = tuples.iter().map(|t| t[g].clone()).collect();
                let what = format!("encoding {} sentences", set.groups.get(g).map_or("?", String::as_str));
                groups.push(encode::pooled(&model, &texts, cfg.max_len, true, cfg.batch_size, &what, progress)?);
            }
            let (pcs, var) = sentence_debias_subspace(&groups, d, cfg.components);
            result.component_variance = var;
            pcs
        }
        ProjectionMethod::Inlp => {
            let data = sentences::inlp_sentences(&texts, &set, cfg.per_class, cfg.seed);
            let mut labels: Vec<i64> = data.labels.clone();
            labels.sort_unstable();
            labels.dedup();
            result.class_counts = labels.iter().map(|&l| (l, data.count(l))).collect();
            if labels.len() < 2 || result.class_counts.iter().any(|&(_, n)| n < 2) {
                bail!(
                    "INLP: corpus {} gives too few sentences per class ({:?}, label: count) for word set {}",
                    cfg.corpus,
                    result.class_counts,
                    set.name
                );
            }
            result.examples = data.sentences.len();
            let x = encode::pooled(
                &model,
                &data.sentences,
                model.max_len(),
                false,
                cfg.batch_size,
                "encoding INLP sentences",
                progress,
            )?;
            let [tr, dv, te] = split(data.sentences.len(), cfg.seed);
            result.split = Some([tr.len(), dv.len(), te.len()]);
            let pick = |idx: &[usize]| idx.iter().map(|&i| data.labels[i]).collect::<Vec<i64>>();
            let (xtr, ytr) = (gather(&x, d, &tr), pick(&tr));
            let (xdv, ydv) = (gather(&x, d, &dv), pick(&dv));
            let (xte, yte) = (gather(&x, d, &te), pick(&te));
            let run = inlp::run((&xtr, &ytr), (&xdv, &ydv), d, cfg.iterations, progress).context("INLP classifiers")?;
            result.dev_accuracy = run.dev_accuracy.clone();
            // A fresh classifier on the test split, before and after: what the projection hid.
            let p = linalg::removing(&run.basis, d);
            let proj = |x: &[f64]| -> Vec<f64> {
                x.chunks(d)
                    .flat_map(|r| (0..d).map(|i| linalg::dot(&p[i * d..(i + 1) * d], r)).collect::<Vec<_>>())
                    .collect()
            };
            let before = svm::LinearSvc::fit(&linalg::Rows { data: &xtr, d }, &ytr)?
                .accuracy(&linalg::Rows { data: &xte, d }, &yte);
            let (ptr, pte) = (proj(&xtr), proj(&xte));
            let after = svm::LinearSvc::fit(&linalg::Rows { data: &ptr, d }, &ytr)?
                .accuracy(&linalg::Rows { data: &pte, d }, &yte);
            result.test_accuracy = Some((before, after));
            run.basis
        }
    };
    result.rank = basis.len();
    let matrix = linalg::removing(&basis, d);
    let flat: Vec<f64> = basis.iter().flatten().copied().collect();
    copy_checkpoint(&dir, &result.model_dir)?;
    let extra = [
        ("model".to_string(), model_name.to_string()),
        ("corpus".to_string(), cfg.corpus.clone()),
        ("examples".to_string(), result.examples.to_string()),
    ]
    .into_iter()
    .collect();
    projection::save(
        &result.projection_file,
        &projection::ToSave {
            matrix: &matrix,
            width: d,
            basis: &flat,
            method: cfg.method.name(),
            bias: cfg.bias.name(),
            rank: result.rank,
        },
        extra,
    )?;
    crate::util::fs::write_atomic(&out.join("projection.json"), serde_json::to_string_pretty(&result)?.as_bytes())?;
    crate::util::fs::write_atomic(&out.join("projection.md"), markdown(&result).as_bytes())?;
    Ok(result)
}

/// The run record in Markdown.
pub fn markdown(r: &ProjectResult) -> String {
    let mut s = format!(
        "# {} projection ({} bias) of {}\n\n- word set: {}\n- corpus: {}\n- examples encoded: {}\n- directions removed: {} of {}\n- file: {}\n",
        r.method.name(),
        r.bias.name(),
        r.model,
        r.words,
        r.corpus,
        r.examples,
        r.rank,
        r.width,
        r.projection_file.display()
    );
    for (i, v) in r.component_variance.iter().enumerate() {
        s += &format!("- component {} variance: {v:.6}\n", i + 1);
    }
    if !r.class_counts.is_empty() {
        s += &format!("- sentences per class (label: count): {:?}\n", r.class_counts);
    }
    if let Some([a, b, c]) = r.split {
        s += &format!("- split train / dev / test: {a} / {b} / {c}\n");
    }
    if let Some((b, a)) = r.test_accuracy {
        s += &format!("- test accuracy of a fresh classifier: {b:.4} before, {a:.4} after\n");
    }
    if !r.dev_accuracy.is_empty() {
        s += "\n| iteration | dev accuracy |\n| --- | --- |\n";
        for (i, a) in r.dev_accuracy.iter().enumerate() {
            s += &format!("| {} | {a:.4} |\n", i + 1);
        }
    }
    s
}
