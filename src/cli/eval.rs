use super::{ModelArgs, validate};
use crate::bench::crows::CrowsVariant;
use crate::bench::{CrowsSection, EvalResults, SeatSection, StereoSetSection};
use crate::data::{crows, seat, stereoset};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Benchmarks to run.
    #[arg(long, value_delimiter = ',', default_value = "crows,stereoset,seat")]
    tasks: Vec<String>,
    /// Bias types (gender, race, religion, or any CrowS type; default: every type for
    /// CrowS-Pairs and StereoSet, gender for SEAT).
    #[arg(long, value_delimiter = ',')]
    bias: Vec<String>,
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
    /// Score only the first N StereoSet intrasentence clusters.
    #[arg(long, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    stereoset_limit: Option<usize>,
    /// Directory of SEAT tests in the sent-bias layout (default: the WEAT-based tests rebuilt
    /// from the weat bundle).
    #[arg(long)]
    seat_dir: Option<PathBuf>,
    /// SEAT tests by name (default: the standard tests of the chosen bias types).
    #[arg(long, value_delimiter = ',')]
    seat_tests: Vec<String>,
    #[arg(long, default_value_t = 64, value_parser = validate::positive_usize, allow_negative_numbers = true)]
    batch_size: usize,
    #[arg(long)]
    output: PathBuf,
}

/// CrowS-Pairs calls race "race-color".
fn crows_type(b: &str) -> &str {
    if b == "race" { "race-color" } else { b }
}

pub fn run(args: Args) -> Result<()> {
    for t in &args.tasks {
        if !["crows", "stereoset", "seat"].contains(&t.as_str()) {
            bail!("unknown task \"{t}\" (crows, stereoset, seat)");
        }
    }
    let model = args.model.load()?;
    let started = std::time::Instant::now();
    let mut res = EvalResults::default();
    std::fs::create_dir_all(&args.output).with_context(|| format!("{}: cannot create", args.output.display()))?;
    let has = |t: &str| args.tasks.iter().any(|x| x == t);
    let mut crows_scoring: Option<String> = None;
    if model.params.new_head && (has("crows") || has("stereoset")) {
        res.notes.push(format!(
            "{} has no pretrained LM head: CrowS-Pairs and StereoSet scores come from an untrained head",
            args.model.model
        ));
    }
    if has("crows") {
        let path = match &args.crows_file {
            Some(p) => p.clone(),
            None => crows::default_path()?,
        };
        let data = crows::read(&path)?;
        if !data.malformed.is_empty() {
            res.notes.push(format!(
                "{}: skipped {} malformed rows ({})",
                path.display(),
                data.malformed.len(),
                data.malformed.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            ));
        }
        let mut pairs: Vec<_> = data
            .pairs
            .into_iter()
            .filter(|p| args.bias.is_empty() || args.bias.iter().any(|b| crows_type(b) == p.bias_type))
            .collect();
        if let Some(n) = args.crows_limit {
            pairs.truncate(n);
        }
        if pairs.is_empty() {
            bail!("{}: no CrowS-Pairs rows of bias type {}", path.display(), args.bias.join(","));
        }
        let r = crate::bench::crows::score(&model, &pairs, args.crows_variant, args.batch_size)?;
        if r.skipped > 0 {
            let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
            for p in &r.pairs {
                if let Some(why) = &p.skipped {
                    *reasons.entry(why.as_str()).or_default() += 1;
                }
            }
            let why: Vec<String> = reasons.iter().map(|(w, n)| format!("{n} {w}")).collect();
            res.notes.push(format!("CrowS-Pairs: {} pairs skipped and left out of N ({})", r.skipped, why.join("; ")));
        }
        crate::report::eval::crows_csv(&args.output.join("crows.csv"), &r)?;
        crows_scoring = Some(r.variant.clone());
        res.crows = Some(CrowsSection { by_type: r.by_type, overall: r.overall });
    }
    if has("stereoset") {
        let path = match &args.stereoset_file {
            Some(p) => p.clone(),
            None => stereoset::default_path(&args.stereoset_split)?,
        };
        let data = stereoset::read(&path)?;
        if !data.malformed.is_empty() {
            res.notes.push(format!(
                "{}: skipped {} malformed clusters ({})",
                path.display(),
                data.malformed.len(),
                data.malformed.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            ));
        }
        let mut clusters: Vec<_> =
            data.clusters.into_iter().filter(|c| args.bias.is_empty() || args.bias.contains(&c.bias_type)).collect();
        if let Some(n) = args.stereoset_limit {
            clusters.truncate(n);
        }
        if clusters.is_empty() {
            bail!("{}: no StereoSet clusters of domain {}", path.display(), args.bias.join(","));
        }
        let r = crate::bench::stereoset::score(&model, &clusters, args.batch_size)?;
        if r.skipped > 0 {
            res.notes.push(format!(
                "StereoSet: {} clusters skipped (a sentence longer than the model's {} positions)",
                r.skipped,
                model.max_len()
            ));
        }
        crate::report::eval::stereoset_csv(&args.output.join("stereoset.csv"), &r)?;
        res.stereoset = Some(StereoSetSection { by_domain: r.by_domain, overall: r.overall });
    }
    if has("seat") {
        let biases: Vec<String> = if args.bias.is_empty() { vec!["gender".into()] } else { args.bias.clone() };
        let names: Vec<String> = if args.seat_tests.is_empty() {
            biases.iter().flat_map(|b| seat::tests_of(b)).map(String::from).collect()
        } else {
            args.seat_tests.clone()
        };
        if names.is_empty() {
            bail!("no SEAT tests for bias type {}", biases.join(","));
        }
        let tests = match &args.seat_dir {
            Some(dir) => seat::read_dir(dir, &names)?,
            None => names.iter().map(|n| crate::data::seat::rebuild(n)).collect::<Result<Vec<_>>>()?,
        };
        if args.seat_dir.is_none() {
            let differ: Vec<String> = tests
                .iter()
                .filter(|t| !seat::is_standard(&t.name))
                .map(|t| {
                    format!(
                        "{} ({} {} / {} {} sentences)",
                        t.name,
                        t.targ1.examples.len(),
                        t.targ1.category,
                        t.targ2.examples.len(),
                        t.targ2.category
                    )
                })
                .collect();
            if !differ.is_empty() {
                res.notes.push(format!(
                    "SEAT tests rebuilt from WEFE's WEAT lists: {} keep every Arts sentence where sent-bias's files of the same name cut the set at random to the other target's size, so their effect sizes are not comparable with published ones (pass --seat-dir with sent-bias's files for those)",
                    differ.join(", ")
                ));
            }
        }
        let scores = crate::bench::seat::score(&model, &tests, args.batch_size, args.model.seed)?;
        crate::report::eval::seat_csv(&args.output.join("seat.csv"), &scores)?;
        let mut avg: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        for (name, s) in &scores {
            let e = avg.entry(seat::bias_type(name).unwrap_or("other").to_string()).or_default();
            e.0 += s.effect_size.abs();
            e.1 += 1;
        }
        res.seat = Some(SeatSection {
            tests: scores.into_iter().collect(),
            avg_abs_effect: avg.into_iter().map(|(k, (s, n))| (k, s / n as f64)).collect(),
        });
    }
    res.settings = serde_json::json!({
        "model": args.model.model, "family": model.family(), "kind": model.kind(), "lm_head": if model.params.new_head { "new" } else { "pretrained" },
        "tasks": args.tasks, "bias": args.bias, "crows_variant": args.crows_variant, "crows_scoring": crows_scoring, "stereoset_split": args.stereoset_split,
        "crows_limit": args.crows_limit, "stereoset_limit": args.stereoset_limit,
        "seat_source": args.seat_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_else(|| "rebuilt from WEAT word lists".into()),
    });
    crate::util::fs::write_atomic(&args.output.join("results.json"), serde_json::to_string_pretty(&res)?.as_bytes())?;
    let md = crate::report::eval::markdown(&res);
    crate::util::fs::write_atomic(&args.output.join("results.md"), md.as_bytes())?;
    println!("{md}");
    eprintln!("wrote {} in {:.1}s", args.output.join("results.json").display(), started.elapsed().as_secs_f64());
    Ok(())
}
