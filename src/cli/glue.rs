use super::validate;
use crate::bench::glue::{GlueResults, GlueSettings, run_all};
use crate::data::glue::Task;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

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
}

pub fn parse_tasks(list: &str) -> Result<Vec<Task>> {
    let mut tasks = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match Task::parse(name) {
            Some(t) if !tasks.contains(&t) => tasks.push(t),
            Some(_) => {}
            None => bail!("unknown GLUE task \"{name}\" (cola, sst2, mrpc, stsb, rte, qnli, wnli)"),
        }
    }
    if tasks.is_empty() {
        bail!("no GLUE tasks given");
    }
    Ok(tasks)
}

pub fn parse_seeds(list: &str) -> Result<Vec<u64>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().with_context(|| format!("seed \"{s}\" is not a non-negative integer")))
        .collect()
}

/// Writes `glue.json` and `glue.md` in `out`.
pub fn write(out: &Path, r: &GlueResults, base: Option<&GlueResults>) -> Result<()> {
    let json = serde_json::json!({ "model": r, "base": base });
    crate::util::fs::write_atomic(&out.join("glue.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    crate::util::fs::write_atomic(&out.join("glue.md"), crate::report::glue::markdown(r, base).as_bytes())
}

fn read_previous(dir: &Path) -> Result<GlueResults> {
    let path = dir.join("glue.json");
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?,
    )
    .with_context(|| format!("{}: not valid JSON", path.display()))?;
    serde_json::from_value(v["model"].clone()).with_context(|| format!("{}: not a fairnc glue result", path.display()))
}

pub fn run(a: Args) -> Result<()> {
    let tasks = parse_tasks(&a.tasks)?;
    let seeds = parse_seeds(&a.seeds)?;
    if seeds.is_empty() {
        bail!("no seeds given");
    }
    if !a.glue_dir.is_dir() {
        bail!("{}: no such GLUE directory", a.glue_dir.display());
    }
    let settings = GlueSettings {
        epochs: a.epochs,
        lr: a.lr,
        batch_size: a.batch_size,
        max_len: a.max_len,
        max_train: a.max_train,
        ..GlueSettings::default()
    };
    std::fs::create_dir_all(&a.output).with_context(|| format!("{}: cannot create", a.output.display()))?;
    let model_dir = crate::registry::resolve(&a.model)?;
    let results = run_all(&a.model, &model_dir, &a.glue_dir, &tasks, &seeds, &settings, &a.output, a.overwrite)?;
    let base = match &a.compare {
        None => None,
        Some(b) if Path::new(b).join("glue.json").exists() => Some(read_previous(Path::new(b))?),
        Some(b) => {
            let dir = crate::registry::resolve(b)?;
            Some(run_all(b, &dir, &a.glue_dir, &tasks, &seeds, &settings, &a.output.join("base"), a.overwrite)?)
        }
    };
    write(&a.output, &results, base.as_ref())?;
    print!("{}", crate::report::glue::markdown(&results, base.as_ref()));
    println!("\nwrote {}", a.output.join("glue.json").display());
    Ok(())
}
