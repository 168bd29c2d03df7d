use super::{ModelArgs, validate};
use crate::collapse::Target;
use crate::project::{Bias, ProjectConfig, ProjectionMethod};
use crate::train::debias::{DebiasConfig, Method, OutputMode, Scope, debias};
use crate::train::nc3::Nc3Variant;
use crate::words::Policy;
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// A fine-tuning method (cda, dropout, bec, ase, contrastive) or a projection
    /// (sentence-debias, inlp: no training; writes the base checkpoint + projection.safetensors).
    #[arg(long, value_enum)]
    method: AnyMethod,
    /// Projection methods: the bias whose attribute words build the sentences.
    #[arg(long, value_enum, default_value = "gender")]
    bias: Bias,
    /// SentenceDebias: principal components removed (bias-bench: 1).
    #[arg(long, default_value_t = 1, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    components: usize,
    /// INLP: classifiers trained (bias-bench: 80).
    #[arg(long, default_value_t = 80, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    iterations: usize,
    /// INLP: sentences kept per class (bias-bench: 10,000).
    #[arg(long, default_value_t = 10_000, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    per_class: usize,
    /// SentenceDebias: leave out the last partial batch of sentence tuples, as bias-bench does.
    #[arg(long)]
    drop_last_batch: bool,
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
    train: Scope,
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

/// Every value of `--method`: the fine-tunes and the projections.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum AnyMethod {
    Cda,
    Dropout,
    Bec,
    Ase,
    Contrastive,
    SentenceDebias,
    Inlp,
}

impl AnyMethod {
    fn fine_tune(self) -> Option<Method> {
        Some(match self {
            AnyMethod::Cda => Method::Cda,
            AnyMethod::Dropout => Method::Dropout,
            AnyMethod::Bec => Method::Bec,
            AnyMethod::Ase => Method::Ase,
            AnyMethod::Contrastive => Method::Contrastive,
            AnyMethod::SentenceDebias | AnyMethod::Inlp => return None,
        })
    }
}

impl Args {
    /// The flags of a projection method as a validated config.
    fn projection_config(&self, method: ProjectionMethod) -> Result<ProjectConfig> {
        if self.nc3.is_some_and(|l| l != 0.0) {
            anyhow::bail!(
                "--nc3: {} is a projection, not a fine-tune; the NC3 regularizer needs training",
                method.name()
            );
        }
        if self.resume {
            anyhow::bail!("--resume: {} is a projection, computed in one go; rerun it with --overwrite", method.name());
        }
        let cfg = ProjectConfig {
            method,
            bias: self.bias,
            words: (self.words != "gender").then(|| self.words.clone()),
            corpus: self.corpus.clone().unwrap_or_else(|| ProjectConfig::default().corpus),
            max_texts: self.max_texts,
            components: self.components,
            iterations: self.iterations,
            per_class: self.per_class,
            max_len: self.max_len,
            batch_size: self.batch_size,
            seed: self.model.seed,
            drop_last_batch: self.drop_last_batch,
            device: self.model.runtime.device,
            dtype: self.model.runtime.dtype,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The flags as a validated config.
    fn config(&self) -> Result<DebiasConfig> {
        let Some(method) = self.method.fine_tune() else {
            anyhow::bail!("--method: not a fine-tuning method");
        };
        // Checked here first so that the message names the flags.
        validate::check_warmup(self.warmup, self.steps)?;
        let cfg = DebiasConfig {
            seed: self.model.seed,
            method,
            nc3: self.nc3,
            nc3_variant: self.nc3_variant,
            words: self.words.clone(),
            target: self.target,
            policy: self.policy,
            corpus: self.corpus.clone(),
            train: self.train,
            max_texts: self.max_texts,
            steps: self.steps,
            batch_size: self.batch_size,
            grad_accum: self.grad_accum,
            lr: self.lr,
            warmup: self.warmup,
            weight_decay: self.weight_decay,
            max_grad_norm: self.max_grad_norm,
            max_len: self.max_len,
            checkpoint_every: self.checkpoint_every,
            device: self.model.runtime.device,
            dtype: self.model.runtime.dtype,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn output_mode(&self) -> OutputMode {
        match (self.resume, self.overwrite) {
            (true, _) => OutputMode::Resume,
            (_, true) => OutputMode::Overwrite,
            _ => OutputMode::New,
        }
    }
}

pub fn run(a: Args) -> Result<()> {
    if let Some(p) = &a.model.projection {
        anyhow::bail!(
            "--projection {}: debias starts from an unprojected model (a projection is not a trainable part, and a projection is computed from the base model's states)",
            p.display()
        );
    }
    let projection = match a.method {
        AnyMethod::SentenceDebias => Some(ProjectionMethod::SentenceDebias),
        AnyMethod::Inlp => Some(ProjectionMethod::Inlp),
        _ => None,
    };
    if let Some(method) = projection {
        let cfg = a.projection_config(method)?;
        crate::project::prepare_output(&a.output, a.overwrite)?;
        let r = crate::project::project(&a.model.model, &cfg, &a.output, &crate::util::bars::Bars::new())?;
        println!(
            "wrote {} (base checkpoint + projection.safetensors: {} direction(s) removed), projection.json, projection.md",
            r.model_dir.display(),
            r.rank
        );
        return Ok(());
    }
    let cfg = a.config()?;
    let r = debias(&a.model.model, &cfg, &a.output, a.output_mode(), &crate::util::bars::Bars::new())?;
    println!("wrote {} (Hugging Face checkpoint), log.jsonl, loss.png, nc3.png", r.model_dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Line {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn the_flags_defaults_are_the_configs() {
        let line = Line::parse_from(["debias", "--method", "cda", "--output", "out"]);
        assert_eq!(line.args.config().unwrap(), DebiasConfig::default());
        assert_eq!(line.args.output_mode(), OutputMode::New);
        let line = Line::parse_from(["debias", "--method", "bec", "--train", "head", "--resume", "--output", "out"]);
        let cfg = line.args.config().unwrap();
        assert_eq!((cfg.method, cfg.train, line.args.output_mode()), (Method::Bec, Scope::Head, OutputMode::Resume));
    }
}
