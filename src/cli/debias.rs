use super::{ModelArgs, validate};
use crate::collapse::Target;
use crate::data::corpus::Corpus;
use crate::model::{Family, LoadOptions, ModelKind};
use crate::train::nc3::{Nc3Regularizer, Nc3Variant};
use crate::train::objective::{CausalLm, MaskedLm, Objective};
use crate::train::optim::AdamWConfig;
use crate::train::trainer::{TrainConfig, Trainer};
use crate::words::{ClassSet, Policy, WordSet};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Train {
    /// Every parameter.
    All,
    /// The LM head's own parameters only (transform and bias; the tied decoder stays).
    Head,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long, value_enum)]
    method: Method,
    /// λ of the NC3 regularizer (0 or absent: none).
    #[arg(long, value_parser = validate::non_negative_f64, allow_hyphen_values = true)]
    nc3: Option<f64>,
    #[arg(long, value_enum, default_value = "std")]
    nc3_variant: Nc3Variant,
    /// Word set for CDA swaps and the NC3 classes.
    #[arg(long, default_value = "gender")]
    words: String,
    /// Label of a hidden state for NC3 (default: same for masked LMs, next for causal).
    #[arg(long, value_enum)]
    target: Option<Target>,
    /// Word → NC3 class policy: whole-word (single-token words only) or first-subword (the
    /// release's mapping; words may merge).
    #[arg(long, value_enum, default_value = "whole-word")]
    policy: Policy,
    /// Corpus: bug, gap, bold, or a text file (default: gap for bec, bug otherwise).
    #[arg(long)]
    corpus: Option<String>,
    /// Which parameters to update.
    #[arg(long, value_enum, default_value = "all")]
    train: Train,
    #[arg(long, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    max_texts: Option<usize>,
    #[arg(long, default_value_t = 500, value_parser = validate::positive_u64, allow_negative_numbers = true)]
    steps: u64,
    #[arg(long, default_value_t = 32, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    batch_size: usize,
    #[arg(long, default_value_t = 1, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    grad_accum: usize,
    #[arg(long, default_value_t = 2e-5, value_parser = validate::positive_f64, allow_hyphen_values = true)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    #[arg(long, default_value_t = 0.01, value_parser = validate::non_negative_f64, allow_hyphen_values = true)]
    weight_decay: f64,
    #[arg(long, default_value_t = 1.0, value_parser = validate::positive_f64, allow_hyphen_values = true)]
    max_grad_norm: f64,
    #[arg(long, default_value_t = 128, value_parser = validate::max_len, allow_negative_numbers = true)]
    max_len: usize,
    #[arg(long, default_value_t = 100, value_parser = validate::positive_u64, allow_negative_numbers = true)]
    checkpoint_every: u64,
    /// Continue the run in --output from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Replace the debias run --output holds (its own files only; a directory that is not a
    /// run is refused).
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    #[arg(long)]
    output: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    validate::check_warmup(a.warmup, a.steps)?;
    let settings = serde_json::json!({
        "model": a.model.model, "seed": a.model.seed, "method": a.method, "nc3": a.nc3, "nc3_variant": a.nc3_variant, "train": a.train,
        "words": a.words, "target": a.target, "policy": a.policy, "corpus": a.corpus, "max_texts": a.max_texts, "steps": a.steps,
        "batch_size": a.batch_size, "grad_accum": a.grad_accum, "lr": a.lr, "warmup": a.warmup,
        "weight_decay": a.weight_decay, "max_grad_norm": a.max_grad_norm, "max_len": a.max_len,
    });
    let run_file = a.output.join("run.json");
    prepare_output(&a.output, &settings, a.resume, a.overwrite)?;
    crate::util::fs::write_atomic(&run_file, serde_json::to_string_pretty(&settings)?.as_bytes())?;

    let probe = a.model.load()?;
    let dropout = match (a.method, probe.family()) {
        (Method::Dropout, Family::Gpt2) => Some((0.15, 0.15)),
        (Method::Dropout, _) => Some((0.20, 0.15)),
        _ => None,
    };
    drop(probe);
    let model = a.model.load_with(LoadOptions { seed: a.model.seed, dropout, ..Default::default() })?;
    let set = WordSet::load(&a.words)?;
    let corpus_name =
        a.corpus.clone().unwrap_or_else(|| if a.method == Method::Bec { "gap".into() } else { "bug".into() });
    // ASE trains on WinoBias, not on the corpus.
    let corpus = if a.method == Method::Ase {
        Corpus { name: "winobias".into(), texts: Vec::new() }
    } else {
        Corpus::load(&corpus_name)?.subsample(a.max_texts)
    };
    let texts: Vec<String> = match a.method {
        Method::Cda => crate::train::cda::augment(&corpus.texts, &set, &corpus.name)?
            .into_iter()
            .flat_map(|(o, c)| [o, c])
            .collect(),
        Method::Dropout => corpus.texts.clone(),
        Method::Bec => {
            let table = crate::train::cda::swap_table(&set);
            corpus
                .texts
                .iter()
                .map(|t| crate::train::cda::counterfactual(t, &table).unwrap_or_else(|| t.clone()))
                .collect()
        }
        Method::Ase | Method::Contrastive => Vec::new(),
    };
    let objective: Box<dyn Objective> = match (a.method, model.kind()) {
        (Method::Ase, ModelKind::Masked) => Box::new(crate::train::objective::MaskedPronouns::new(
            &model,
            &crate::data::winobias::sentences()?,
            a.max_len,
        )?),
        (Method::Ase, ModelKind::Causal) => {
            bail!("ASE-style training masks pronouns: it needs a masked LM, not {}", a.model.model)
        }
        (Method::Contrastive, ModelKind::Masked) => {
            let pairs = crate::train::cda::augment(&corpus.texts, &set, &corpus.name)?;
            Box::new(crate::train::contrastive::Contrastive::new(&model, &pairs, a.max_len)?)
        }
        (Method::Contrastive, ModelKind::Causal) => {
            bail!("MABEL-style training includes masked LM: it needs a masked LM, not {}", a.model.model)
        }
        (_, ModelKind::Masked) => Box::new(MaskedLm::new(&model, &texts, a.max_len)?),
        (_, ModelKind::Causal) => Box::new(CausalLm::new(&model, &texts, a.max_len)?),
    };
    let target = a.target.unwrap_or(if model.kind() == ModelKind::Causal { Target::Next } else { Target::Same });
    let lambda = a.nc3.filter(|l| *l != 0.0);
    // Built without λ too: the NC3 spread is then logged but not optimised.
    let classes = ClassSet::map(&set, &model.tokenizer, a.policy)?;
    eprintln!(
        "NC3 classes: {} of {} ({} policy, {} words left out)",
        classes.classes.len(),
        set.name,
        serde_json::to_value(a.policy)?.as_str().unwrap_or("?"),
        classes.skipped.len()
    );
    let nc3 = Some(Nc3Regularizer::new(
        &classes,
        model.config.vocab_size.max(model.tokenizer.vocab_size()),
        model.config.hidden_size,
        target,
        a.nc3_variant,
    ));
    let cfg = TrainConfig {
        steps: a.steps,
        batch_size: a.batch_size,
        grad_accum: a.grad_accum,
        adamw: AdamWConfig { lr: a.lr, weight_decay: a.weight_decay, ..AdamWConfig::default() },
        warmup: a.warmup,
        max_grad_norm: a.max_grad_norm,
        seed: a.model.seed,
        checkpoint_every: a.checkpoint_every,
        nc3_lambda: lambda,
        nc3_variant: a.nc3_variant,
        head_only: a.train == Train::Head,
        head_lr_scale: 1.0,
        stop_after: None,
    };
    eprintln!("{}: {} training examples from {}, {} steps", objective.name(), objective.len(), corpus.name, a.steps);
    let mut trainer = Trainer { model: &model, cfg, out: a.output.clone(), nc3 };
    trainer.run(objective.as_ref())?;
    let model_dir = a.output.join("model");
    model.save(&model_dir)?;
    loss_plot(&a.output)?;
    println!("wrote {} (Hugging Face checkpoint), log.jsonl, loss.png, nc3.png", model_dir.display());
    Ok(())
}

/// What a debias run writes in its directory: `--overwrite` removes these and nothing else.
fn is_run_file(name: &str) -> bool {
    ["run.json", "log.jsonl", "model", "loss.png", "loss.svg", "nc3.png", "nc3.svg"].contains(&name)
        || name.starts_with("checkpoint-")
        // Left by an atomic write that was interrupted (util::fs::temp_sibling).
        || (name.starts_with('.') && name.contains(".tmp-"))
}

/// Makes `dir` ready for a run with `settings`: creates it, or continues the same run
/// (`--resume`), or replaces a debias run (`--overwrite`, removing only that run's files);
/// anything else is refused with what the directory holds and the flag that would proceed.
fn prepare_output(dir: &std::path::Path, settings: &serde_json::Value, resume: bool, overwrite: bool) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("--output {}: is a file, not a directory", dir.display());
    }
    let names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect(),
        Err(_) => Vec::new(),
    };
    if names.is_empty() {
        return std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()));
    }
    let run_file = dir.join("run.json");
    let previous: Option<serde_json::Value> =
        std::fs::read_to_string(&run_file).ok().and_then(|t| serde_json::from_str(&t).ok());
    let Some(previous) = previous else {
        let mut shown: Vec<&str> = names.iter().map(String::as_str).take(3).collect();
        if names.len() > 3 {
            shown.push("…");
        }
        bail!(
            "--output {}: holds files that are not a debias run (no run.json; {}); {}choose an empty or new directory",
            dir.display(),
            shown.join(", "),
            if overwrite { "--overwrite replaces only a debias run: " } else { "" }
        );
    };
    if overwrite {
        for name in names.iter().filter(|n| is_run_file(n)) {
            let p = dir.join(name);
            if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) }
                .with_context(|| format!("{}: cannot remove", p.display()))?;
        }
        return Ok(());
    }
    if &previous != settings {
        let changed = crate::util::settings::changes(&previous, settings);
        bail!(
            "--output {}: holds a debias run with other settings ({}); pass --overwrite to replace it, or choose another directory",
            dir.display(),
            changed.join(", ")
        );
    }
    if !resume {
        if dir.join("model").join("config.json").exists() {
            bail!(
                "--output {}: holds a finished run with the same settings (model/); pass --overwrite to train it again",
                dir.display()
            );
        }
        bail!(
            "--output {}: holds an unfinished run with the same settings; pass --resume to continue it from its last checkpoint, or --overwrite to start again",
            dir.display()
        );
    }
    Ok(())
}

/// `loss.png`: the total loss and each objective term by step; `nc3.png`: the NC3 spread
/// (std of s_c over the classes seen) by step, on its own axis because it is two orders of
/// magnitude below the loss.
fn loss_plot(dir: &std::path::Path) -> Result<()> {
    let log = std::fs::read_to_string(dir.join("log.jsonl"))
        .with_context(|| format!("{}: cannot read", dir.join("log.jsonl").display()))?;
    let mut losses: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut nc3: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let step = v["step"].as_f64().unwrap_or(0.0);
        let add = |series: &mut Vec<(String, Vec<(f64, f64)>)>, name: &str, y: f64| match series
            .iter_mut()
            .find(|(n, _)| n == name)
        {
            Some((_, s)) => s.push((step, y)),
            None => series.push((name.to_string(), vec![(step, y)])),
        };
        add(&mut losses, "total", v["loss"].as_f64().unwrap_or(f64::NAN));
        for (k, t) in v["terms"].as_object().into_iter().flatten() {
            let y = t.as_f64().unwrap_or(f64::NAN);
            if k == "nc3" { add(&mut nc3, "std of s_c (NC3 term before λ)", y) } else { add(&mut losses, k, y) }
        }
    }
    if losses.len() == 2 && losses[0].1 == losses[1].1 {
        losses.truncate(1);
    }
    crate::report::plot::line_plot(&dir.join("loss"), "Training loss", "loss", &losses)?;
    if !nc3.is_empty() {
        crate::report::plot::line_plot(&dir.join("nc3"), "NC3 spread over the word set's classes", "std of s_c", &nc3)?;
    }
    Ok(())
}
