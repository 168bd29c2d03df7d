//! `fairnc experiment --config FILE.toml`: flags → [`Experiment`] → [`crate::experiment::run`]
//! (or `summarize_only`) → one line on stdout.

use crate::experiment::{Experiment, Status};
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    config: PathBuf,
    /// Results directory (default: `experiment-<name>` from the config).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Redo cells in OUTPUT that were run with other settings (a changed `[debias]` step count,
    /// lr, model, GLUE directory, ...) instead of refusing them.
    #[arg(long)]
    overwrite: bool,
    /// Run no cell: rewrite the summary in OUTPUT from its `cells.csv` (the per-cell numbers a
    /// finished experiment wrote, e.g. a committed one).
    #[arg(long, conflicts_with = "overwrite")]
    summarize_only: bool,
    /// Where every cell's models run: cpu, cuda (= cuda:0), cuda:N or metal (default: the
    /// config's `device`, else cpu).
    #[arg(long, value_parser = |s: &str| s.parse::<crate::util::device::DeviceSpec>())]
    device: Option<crate::util::device::DeviceSpec>,
    /// Float type of every cell's models (default: the config's `dtype`, else f32).
    #[arg(long, value_enum)]
    dtype: Option<crate::util::device::Dtype>,
}

pub fn run(a: Args) -> Result<()> {
    let mut e = if a.summarize_only { Experiment::parse(&a.config)? } else { Experiment::load(&a.config)? };
    e.config.device = a.device.unwrap_or(e.config.device);
    e.config.dtype = a.dtype.unwrap_or(e.config.dtype);
    let out = a.output.clone().unwrap_or_else(|| e.default_output());
    if a.summarize_only {
        let results = crate::experiment::summarize_only(&e, &out)?;
        println!("{} cells read; summary in {}", results.len(), out.join("summary.md").display());
        return Ok(());
    }
    let began = std::time::Instant::now();
    let results = crate::experiment::run(&e, &out, a.overwrite, &crate::util::bars::Bars::new())?;
    let failed = results.iter().filter(|r| r.status != Status::Ok).count();
    println!(
        "{} cells ({} failed) in {:.0} s; summary in {}",
        results.len(),
        failed,
        began.elapsed().as_secs_f64(),
        out.join("summary.md").display()
    );
    Ok(())
}
