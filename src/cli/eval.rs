//! `fairnc eval`: flags → [`EvalConfig`] → [`evaluate`] → the files of `report::eval`.

use super::{ModelArgs, validate};
use crate::bench::becpro::BecProMasking;
use crate::bench::crows::CrowsVariant;
use crate::bench::evaluate::{EvalConfig, evaluate};
use crate::bench::self_debias::SelfDebias;
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Benchmarks to run: crows, stereoset (intrasentence), seat, stereoset-inter (StereoSet
    /// intersentence: next-sentence head of masked LMs, conditional likelihood of causal LMs;
    /// docs/stereoset-intersentence.md), becpro (BEC-Pro association, masked LMs; docs/becpro.md),
    /// and the peer measures aul (AUL/AULA, docs/aul.md) and mlm-bias (CRR/CRRA/ΔP/ΔPA,
    /// docs/mlm-bias.md), which score both CrowS-Pairs and StereoSet.
    #[arg(long, value_delimiter = ',', default_value = "crows,stereoset,seat")]
    tasks: Vec<String>,
    /// Bias types (gender, race, religion, or any CrowS type; default: every type for
    /// CrowS-Pairs and StereoSet, gender for SEAT).
    #[arg(long, value_delimiter = ',')]
    bias: Vec<String>,
    /// CrowS-Pairs scoring. Masked LMs: bias-bench or nangia; causal LMs: bias-bench's GPT-2
    /// scoring under either of those names, or lm-eval (lm-evaluation-harness's
    /// crows_pairs_english: summed log-likelihood after the BOS/EOS token; pct_stereotype and
    /// likelihood_diff, stereo_antistereo ignored as lm-eval does; see docs/crows-lm-eval.md).
    #[arg(long, value_enum, default_value = "bias-bench")]
    crows_variant: CrowsVariant,
    /// CrowS-Pairs CSV (default: the benchmark bundle's).
    #[arg(long)]
    crows_file: Option<PathBuf>,
    /// Score only the first N CrowS-Pairs rows.
    #[arg(long, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    crows_limit: Option<usize>,
    /// StereoSet split of the bundle: test or dev.
    #[arg(long, default_value = "test")]
    stereoset_split: String,
    /// StereoSet JSON file (overrides --stereoset-split).
    #[arg(long)]
    stereoset_file: Option<PathBuf>,
    /// Score only the first N StereoSet clusters (of each part run).
    #[arg(long, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    stereoset_limit: Option<usize>,
    /// Directory of SEAT tests in the sent-bias layout (default: the WEAT-based tests rebuilt
    /// from the weat bundle).
    #[arg(long)]
    seat_dir: Option<PathBuf>,
    /// SEAT tests by name (default: the standard tests of the chosen bias types).
    #[arg(long, value_delimiter = ',')]
    seat_tests: Vec<String>,
    /// BEC-Pro TSV (default: the benchmark bundle's BEC-Pro_EN.tsv).
    #[arg(long)]
    becpro_file: Option<PathBuf>,
    /// Score only the first N BEC-Pro rows.
    #[arg(long, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    becpro_limit: Option<usize>,
    /// BEC-Pro masking: subword (one mask per subword of the person word and the profession)
    /// or bartl (gender-bias-BERT's: the file's one mask per word, sequences padded with
    /// attended masks), to match that code's numbers.
    #[arg(long, value_enum, default_value = "subword")]
    becpro_masking: BecProMasking,
    /// AUL: the stereotypical CrowS-Pairs sentence by bias-bench's rule (bias-bench) or always
    /// sent_more, as the AUL authors' code does (sent-more).
    #[arg(long, value_enum, default_value = "bias-bench")]
    aul_direction: crate::bench::aul::AulDirection,
    #[arg(long, default_value_t = 64, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    batch_size: usize,
    /// Score CrowS-Pairs and StereoSet with Self-Debias (bias-bench's debiasing prefixes,
    /// decay 50, epsilon 0.01): the prefix of gender, race or religion for every row, auto for
    /// each row's own bias type, or all three at once. SEAT is unchanged by it (see
    /// docs/self-debias.md).
    #[arg(long, value_enum)]
    self_debias: Option<SelfDebias>,
    #[arg(long)]
    output: PathBuf,
}

impl Args {
    /// The validated library config (the SEAT seed is the model's `--seed`).
    fn config(&self) -> Result<EvalConfig> {
        let cfg = EvalConfig {
            tasks: self.tasks.iter().map(|t| t.parse()).collect::<Result<_>>()?,
            bias: self.bias.clone(),
            crows_variant: self.crows_variant,
            crows_file: self.crows_file.clone(),
            crows_limit: self.crows_limit,
            stereoset_split: self.stereoset_split.clone(),
            stereoset_file: self.stereoset_file.clone(),
            stereoset_limit: self.stereoset_limit,
            seat_dir: self.seat_dir.clone(),
            seat_tests: self.seat_tests.clone(),
            batch_size: self.batch_size,
            seed: self.model.seed,
            becpro_file: self.becpro_file.clone(),
            becpro_limit: self.becpro_limit,
            becpro_masking: self.becpro_masking,
            self_debias: self.self_debias,
            aul_direction: self.aul_direction,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

pub fn run(args: Args) -> Result<()> {
    let cfg = args.config()?;
    let model = args.model.load()?;
    let started = std::time::Instant::now();
    let evaluation = evaluate(&model, &cfg, &crate::util::bars::Bars::new())?;
    crate::report::eval::write(&args.output, &evaluation)?;
    println!("{}", crate::report::eval::markdown(&evaluation.results));
    eprintln!("wrote {} in {:.1}s", args.output.join("results.json").display(), started.elapsed().as_secs_f64());
    Ok(())
}
