//! `fairnc collapse`: flags → [`CollapseConfig`] → the collapse stage (whole, one shard, or a
//! merge) → the report and the printed summary.

use super::{ModelArgs, validate};
use crate::collapse::{self, CollapseConfig, CollapseResult, Convention, Features, Target};
use crate::util::bars::Bars;
use crate::words::Policy;
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    merge: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Combine statistics / decision shards (directories or files) into one result.
    Merge {
        /// Where the merged shards and the report go.
        #[arg(long)]
        output: PathBuf,
        /// Shard directories (holding stats.safetensors / decisions.safetensors) or files.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Replace another run's results in --output.
        #[arg(long)]
        overwrite: bool,
    },
}

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Word set: gender, gender-large, race, religion, a TOML/JSON file, or `vocabulary`.
    #[arg(long, default_value = "gender")]
    words: String,
    /// Corpus: bug, gap, bold, or a text file with one text per line.
    #[arg(long, default_value = "bug")]
    corpus: String,
    /// Use an evenly spread subset of at most this many texts.
    #[arg(long, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    max_texts: Option<usize>,
    #[arg(long, value_enum, default_value = "default")]
    convention: Convention,
    /// Word → class policy (default: whole-word; fairness-nc: first-subword).
    #[arg(long, value_enum)]
    policy: Option<Policy>,
    /// Label of a hidden state (default: same for masked LMs, next for causal LMs).
    #[arg(long, value_enum)]
    target: Option<Target>,
    /// Feature vector (default: hidden; fairness-nc: head).
    #[arg(long, value_enum)]
    features: Option<Features>,
    /// Exponent p of the CDNV denominator (default 1; fairness-nc 2).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=2))]
    cdnv_power: Option<u32>,
    /// Classes seen fewer times in the statistics part are left out.
    #[arg(long, default_value_t = 1, value_parser = validate::positive_u64, allow_negative_numbers = true)]
    min_count: u64,
    /// Fraction of texts held out for the decision pass (NC4).
    #[arg(long, default_value_t = 0.2, value_parser = validate::open_fraction, allow_hyphen_values = true)]
    heldout: f64,
    #[arg(long, default_value_t = 128, value_parser = validate::max_len, allow_negative_numbers = true)]
    max_len: usize,
    #[arg(long, default_value_t = 64, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    batch_size: usize,
    /// Texts per block: batches never cross a block and a shard is a range of blocks, so all
    /// shards of one computation must use the same value.
    #[arg(long, default_value_t = 1024, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    block: usize,
    /// Compute only slice i of n (statistics; with --means, decisions).
    #[arg(long, value_parser = validate::shard)]
    shard: Option<(usize, usize)>,
    /// Merged statistics (a directory or stats.safetensors) whose means the decision pass uses.
    #[arg(long)]
    means: Option<PathBuf>,
    /// Output directory (required).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Replace another collapse run's results in --output (by default such a directory is
    /// refused; the same run's finished statistics are reused, an unfinished pass resumes).
    #[arg(long)]
    overwrite: bool,
}

impl RunArgs {
    /// The validated configuration these flags describe.
    pub fn config(&self) -> Result<CollapseConfig> {
        let cfg = CollapseConfig {
            words: self.words.clone(),
            corpus: self.corpus.clone(),
            max_texts: self.max_texts,
            convention: self.convention,
            policy: self.policy,
            target: self.target,
            features: self.features,
            cdnv_power: self.cdnv_power,
            min_count: self.min_count,
            heldout: self.heldout,
            max_len: self.max_len,
            batch_size: self.batch_size,
            block: self.block,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

pub fn run(args: Args) -> Result<()> {
    match args.merge {
        Some(Sub::Merge { output, inputs, overwrite }) => {
            let started = Instant::now();
            let result = collapse::merge(&inputs, &output, overwrite)?;
            finish(&output, &result, started)
        }
        None => collect(args.run),
    }
}

fn collect(a: RunArgs) -> Result<()> {
    let Some(output) = a.output.clone() else { bail!("collapse: --output DIR is required") };
    let cfg = a.config()?;
    let model = a.model.load()?;
    let progress = Bars::new();
    if let Some(means) = &a.means {
        let path = collapse::measure_decisions(&model, &cfg, a.shard, means, &output, a.overwrite, &progress)?;
        println!("decision shard {} written; merge it with the statistics", path.display());
        return Ok(());
    }
    if let Some(shard) = a.shard {
        let path = collapse::measure_stats_shard(&model, &cfg, shard, &output, a.overwrite, &progress)?;
        println!(
            "statistics shard {} written; merge all shards with `fairnc collapse merge`, then run the decision pass with --means",
            path.display()
        );
        return Ok(());
    }
    let started = Instant::now();
    let result = collapse::measure(&model, &cfg, &output, a.overwrite, &progress)?;
    finish(&output, &result, started)
}

fn finish(dir: &Path, result: &CollapseResult, started: Instant) -> Result<()> {
    crate::report::collapse::write(dir, result)?;
    println!("{}", crate::report::collapse::markdown(result));
    eprintln!("wrote {} in {:.1}s", dir.join("collapse.json").display(), started.elapsed().as_secs_f64());
    Ok(())
}
