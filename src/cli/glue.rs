//! `fairnc glue`: flags → [`GlueConfig`] → [`glue::run`] (and the `--compare` base) → the
//! files of `report::glue`.

use super::validate;
use crate::bench::glue::{self, GlueConfig, GlueSettings};
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// `minilm`, `minilm-mlm`, a checkpoint directory, or hf:ORG/NAME.
    #[arg(long, default_value = crate::registry::DEFAULT_MODEL)]
    model: String,
    /// Directory in the glue_data layout (CoLA/, SST-2/, MRPC/, STS-B/, RTE/, ... with train.tsv and dev.tsv).
    #[arg(long, env = "FAIRNC_GLUE_DIR")]
    glue_dir: PathBuf,
    /// Comma-separated: cola, sst2, mrpc, stsb, rte, qnli, wnli.
    #[arg(long, default_value = "sst2,mrpc,rte,cola,stsb")]
    tasks: String,
    #[arg(long, default_value = "0,1,2")]
    seeds: String,
    #[arg(long, default_value_t = 3, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    epochs: usize,
    #[arg(long, default_value_t = 2e-5, value_parser = validate::positive_f64, allow_hyphen_values = true)]
    lr: f64,
    #[arg(long, default_value_t = 32, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    batch_size: usize,
    #[arg(long, default_value_t = 128, value_parser = validate::max_len, allow_negative_numbers = true)]
    max_len: usize,
    /// Subsample each training set to at most N examples (evenly spread) for quick runs.
    #[arg(long, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    max_train: Option<usize>,
    /// A base model to put beside this one (run with the same tasks, seeds and settings into
    /// DIR/base), or a directory holding an earlier run's glue.json.
    #[arg(long)]
    compare: Option<String>,
    #[arg(long)]
    output: PathBuf,
    /// Redo task-seed runs in OUTPUT that were made with other settings (model, GLUE directory,
    /// epochs, lr, ...) instead of refusing them.
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    runtime: crate::util::device::RuntimeArgs,
}

impl Args {
    /// The validated library config.
    fn config(&self) -> Result<GlueConfig> {
        let cfg = GlueConfig {
            glue_dir: self.glue_dir.clone(),
            tasks: crate::data::glue::parse_tasks(&self.tasks)?,
            seeds: glue::parse_seeds(&self.seeds)?,
            settings: GlueSettings {
                epochs: self.epochs,
                lr: self.lr,
                batch_size: self.batch_size,
                max_len: self.max_len,
                max_train: self.max_train,
                device: self.runtime.device,
                dtype: self.runtime.dtype,
                ..GlueSettings::default()
            },
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

pub fn run(a: Args) -> Result<()> {
    let cfg = a.config()?;
    let progress = crate::util::bars::Bars::new();
    let results = glue::run(&a.model, &cfg, &a.output, a.overwrite, &progress)?;
    let base = match &a.compare {
        Some(b) => Some(glue::base_results(b, &cfg, &a.output, a.overwrite, &progress)?),
        None => None,
    };
    crate::report::glue::write(&a.output, &results, base.as_ref())?;
    print!("{}", crate::report::glue::markdown(&results, base.as_ref()));
    println!("\nwrote {}", a.output.join("glue.json").display());
    Ok(())
}
