//! Command-line interface: one file per command; each parses flags, calls the library, prints.

mod adapt;
mod audit;
mod collapse;
mod debias;
mod eval;
mod experiment;
mod fetch;
mod fill_mask;
mod glue;
mod hidden;
mod info;
pub(crate) mod validate;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "fairnc",
    version,
    about = "Neural collapse, bias benchmarks and NC3-regularised debiasing for language models"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: NC statistics, SEAT, CrowS-Pairs and StereoSet in one report (default model: minilm).
    Audit(audit::Args),
    /// Download and unpack the pinned data and model bundles into the cache.
    Fetch(fetch::Args),
    /// Describe a model: family, size, vocabulary, head, tying.
    Info(info::Args),
    /// Predict the masked token(s) of a sentence, as transformers' fill-mask pipeline.
    FillMask(fill_mask::Args),
    /// Write the last-layer hidden states of each input line to a safetensors file.
    Hidden(hidden::Args),
    /// Neural-collapse statistics on fairness words (or the whole vocabulary).
    #[command(args_conflicts_with_subcommands = true)]
    Collapse(collapse::Args),
    /// Bias benchmarks: CrowS-Pairs, StereoSet intrasentence, SEAT.
    Eval(eval::Args),
    /// NLU retention: fine-tune and score GLUE tasks over seeds, optionally beside a base model.
    Glue(glue::Args),
    /// The paper's study: a grid of models × methods × λ × seeds, each debiased, audited and
    /// optionally GLUE-scored, with one summary (effects of λ with CIs, NC–bias correlations).
    Experiment(experiment::Args),
    /// Train a bare encoder into a masked LM on bundled general text (how minilm-mlm is built).
    Adapt(adapt::Args),
    /// Debias by fine-tuning (CDA, Dropout, BEC, ASE, contrastive), optionally with the NC3 regularizer.
    Debias(debias::Args),
}

/// Options every command that loads a model shares.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// `minilm` (the embedded default), a checkpoint directory, or hf:ORG/NAME.
    #[arg(long, default_value = crate::registry::DEFAULT_MODEL)]
    pub model: String,
    /// Seed for a newly created LM head and for dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A projection file (SentenceDebias / INLP, `fairnc debias --method sentence-debias|inlp`)
    /// applied to the last-layer hidden states, in place of the model directory's own
    /// projection.safetensors.
    #[arg(long)]
    pub projection: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub runtime: crate::util::device::RuntimeArgs,
}

impl ModelArgs {
    pub fn load(&self) -> Result<crate::model::LanguageModel> {
        self.load_with(crate::util::device::load_options(self.runtime.device, self.runtime.dtype, self.seed)?)
    }

    pub fn load_with(&self, mut opts: crate::model::LoadOptions) -> Result<crate::model::LanguageModel> {
        if opts.projection.is_none() {
            opts.projection = self.projection.clone();
        }
        crate::registry::load(&self.model, &opts)
    }
}

/// A command-line error as one line: clap's message (which names the flag) and its tip, without
/// the usage block, so that every error of the tool reads the same way.
pub fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let kept: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let line = kept.join(" ");
    line.strip_prefix("error: ").unwrap_or(&line).to_string()
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Audit(a) => audit::run(a),
        Command::Fetch(a) => fetch::run(a),
        Command::Info(a) => info::run(a),
        Command::FillMask(a) => fill_mask::run(a),
        Command::Hidden(a) => hidden::run(a),
        Command::Collapse(a) => collapse::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Debias(a) => debias::run(a),
        Command::Adapt(a) => adapt::run(a),
        Command::Glue(a) => glue::run(a),
        Command::Experiment(a) => experiment::run(a),
    }
}
