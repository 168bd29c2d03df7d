//! `fairnc audit`: flags → [`AuditConfig`] → [`crate::audit::load_and_run`] → the report on stdout.

use crate::audit::AuditConfig;
use anyhow::Result;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// `minilm` (the embedded default), `minilm-mlm`, a checkpoint directory, or hf:ORG/NAME.
    #[arg(long, default_value = crate::registry::DEFAULT_MODEL)]
    pub model: String,
    /// Run directory (default: `audit-<model name>`).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// A smaller run: 1,500 BUG texts for the NC statistics and the first 300 CrowS-Pairs pairs
    /// and StereoSet clusters (BEC-Pro runs in full).
    #[arg(long)]
    pub quick: bool,
    /// Word set for the NC statistics.
    #[arg(long, default_value = "gender")]
    pub words: String,
    /// BUG texts for the NC statistics (default 10,000; --quick 1,500).
    #[arg(long, value_parser = super::validate::positive_usize, allow_negative_numbers = true)]
    pub max_texts: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// SEAT tests from sent-bias's files in this directory (default: rebuilt from WEAT word
    /// lists; only the files' gender average is shown beside bias-bench's published figure).
    #[arg(long)]
    pub seat_dir: Option<PathBuf>,
    /// Benchmarks to run beside the NC statistics, which every audit measures (default: every
    /// benchmark fairnc has for the model's kind: seat, crows, stereoset, stereoset-inter and,
    /// for masked LMs, becpro, aul, mlm-bias; `fairnc eval --help` describes them). One that
    /// does not apply to the model is listed as skipped, with why.
    #[arg(long, value_delimiter = ',')]
    pub measures: Vec<String>,
    /// A projection file (SentenceDebias / INLP) applied to the last-layer hidden states, in
    /// place of the model directory's own projection.safetensors.
    #[arg(long)]
    pub projection: Option<PathBuf>,
    /// Score CrowS-Pairs and StereoSet with Self-Debias (gender, race, religion, auto, all; see
    /// `fairnc eval --self-debias`). The NC statistics and SEAT are the base model's: Self-Debias
    /// changes the output distribution, not the features.
    #[arg(long, value_enum)]
    pub self_debias: Option<crate::bench::self_debias::SelfDebias>,
    #[command(flatten)]
    pub runtime: crate::util::device::RuntimeArgs,
}

impl Args {
    fn config(&self) -> Result<AuditConfig> {
        let measures = self
            .measures
            .iter()
            .map(|m| m.parse().map_err(|e: anyhow::Error| anyhow::anyhow!("--measures: {e}")))
            .collect::<Result<_>>()?;
        Ok(AuditConfig {
            quick: self.quick,
            words: self.words.clone(),
            max_texts: self.max_texts,
            seed: self.seed,
            seat_dir: self.seat_dir.clone(),
            device: self.runtime.device,
            dtype: self.runtime.dtype,
            measures,
            projection: self.projection.clone(),
            self_debias: self.self_debias,
        })
    }
}

fn default_output(model: &str) -> PathBuf {
    let name: String = Path::new(model.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| model.to_string())
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '-' })
        .collect();
    PathBuf::from(format!("audit-{name}"))
}

pub fn run(a: Args) -> Result<()> {
    let out = a.output.clone().unwrap_or_else(|| default_output(&a.model));
    let audit = crate::audit::load_and_run(&a.model, &a.config()?, &out, &crate::util::bars::Bars::new())?;
    print!("{}", crate::report::audit::document(&audit).markdown());
    println!("wrote {} (report.html, audit.json, summary.csv, plots)", out.join("report.md").display());
    Ok(())
}
