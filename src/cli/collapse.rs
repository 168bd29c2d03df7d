use super::{ModelArgs, validate};
use crate::collapse::run::{Collector, Run, RunOptions, decisions_path, stats_path};
use crate::collapse::shard::{self, Header, Shard};
use crate::collapse::stats::{ClassStats, Decisions};
use crate::collapse::{CollapseResult, Features, MetricConvention, Settings, Target, assemble};
use crate::data::corpus::Corpus;
use crate::words::{ClassSet, Policy, WordSet};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

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

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Debug)]
pub enum Convention {
    /// METHOD §4: whole words, p = 1, centred log kernel; target by model kind.
    Default,
    /// The Fairness-NC release: next-token targets, first subwords, p = 2, squared norms,
    /// uncentred log kernel, features after the MLM head transform.
    FairnessNc,
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

pub fn run(args: Args) -> Result<()> {
    match args.merge {
        Some(Sub::Merge { output, inputs, overwrite }) => merge(&inputs, &output, overwrite),
        None => collect(args.run),
    }
}

/// The settings and class set a run stores in its shards.
#[derive(serde::Serialize, serde::Deserialize)]
struct Info {
    settings: Settings,
    classes: ClassSet,
}

pub struct Resolved {
    pub settings: Settings,
    pub opts: RunOptions,
}

fn resolve(a: &RunArgs, kind: crate::model::ModelKind) -> Resolved {
    let fnc = a.convention == Convention::FairnessNc;
    let target =
        a.target.unwrap_or(if fnc || kind == crate::model::ModelKind::Causal { Target::Next } else { Target::Same });
    let features = a.features.unwrap_or(if fnc { Features::Head } else { Features::Hidden });
    let policy = a.policy.unwrap_or(if fnc { Policy::FirstSubword } else { Policy::WholeWord });
    let mut metric = if fnc { MetricConvention::FAIRNESS_NC } else { MetricConvention::DEFAULT };
    if let Some(p) = a.cdnv_power {
        metric.cdnv_power = p;
    }
    let settings = Settings {
        model: a.model.model.clone(),
        corpus: a.corpus.clone(),
        words: a.words.clone(),
        policy,
        convention: if fnc { "fairness-nc".into() } else { "default".into() },
        target,
        features,
        metric,
        min_count: a.min_count,
        heldout: a.heldout,
        max_len: a.max_len,
    };
    let opts = RunOptions {
        target,
        features,
        max_len: a.max_len,
        batch_size: a.batch_size,
        heldout: a.heldout,
        min_count: a.min_count,
        block: a.block,
        ..RunOptions::default()
    };
    Resolved { settings, opts }
}

fn collect(a: RunArgs) -> Result<()> {
    let Some(output) = a.output.clone() else { bail!("collapse: --output DIR is required") };
    let model = a.model.load()?;
    let Resolved { settings, opts } = resolve(&a, model.kind());
    let classes = if a.words == "vocabulary" {
        ClassSet::vocabulary(&model.tokenizer)
    } else {
        ClassSet::map(&WordSet::load(&a.words)?, &model.tokenizer, settings.policy)?
    };
    let corpus = Corpus::load(&a.corpus)?.subsample(a.max_texts);
    let mut run = Run::new(Collector::new(&model, &classes, opts), &corpus, a.shard, &output)?;
    run.info = serde_json::to_value(Info { settings: settings.clone(), classes: classes.clone() })?;
    if let Some(other) = other_run(&output, &settings, &run.identity, &[run.blocks]) {
        if !a.overwrite {
            bail!(
                "--output {}: holds {other}; pass --overwrite to replace it, or choose another directory",
                output.display()
            );
        }
        remove_run_files(&output)?;
    }
    let started = std::time::Instant::now();
    if let Some(path) = &a.means {
        // Decision pass of a shard against merged statistics.
        let (header, means) = read_stats(path)?;
        if header.identity != run.identity {
            bail!("{}: statistics from a different model, word set, corpus or settings", path.display());
        }
        run.decisions(&means)?;
        println!("decision shard {} written; merge it with the statistics", decisions_path(&output).display());
        return Ok(());
    }
    let stats = run.stats()?;
    if stats.positions() == 0 {
        bail!(
            "corpus {} has no position labelled with a word of {} ({} classes)",
            corpus.name,
            classes.name,
            classes.classes.len()
        );
    }
    if a.shard.is_some() {
        println!(
            "statistics shard {} written; merge all shards with `fairnc collapse merge`, then run the decision pass with --means",
            stats_path(&output).display()
        );
        return Ok(());
    }
    let decisions = run.decisions(&stats)?;
    let mut result = assemble(&classes, &stats, Some(&decisions), &run.w, settings);
    if result.settings.features == Features::Head && model.params.new_head {
        result.notes.push(format!(
            "{} has no pretrained MLM head: head features come from a newly initialised transform",
            a.model.model
        ));
    }
    finish(&output, &result, started)
}

/// What a collapse run (or a merge) writes in its directory.
const RUN_FILES: [&str; 8] = [
    "stats.safetensors",
    "decisions.safetensors",
    ".partial-stats.safetensors",
    ".partial-decisions.safetensors",
    "collapse.json",
    "classes.csv",
    "summary.md",
    "nc3_cosines.png",
];

fn remove_run_files(dir: &Path) -> Result<()> {
    for name in RUN_FILES.iter().copied().chain(["nc3_cosines.svg"]) {
        let p = dir.join(name);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("{}: cannot remove", p.display()))?;
        }
    }
    Ok(())
}

/// Describes the finished computation `dir` holds if it is not this one (a report with other
/// settings, or statistics / decisions of another model, word set, corpus, option or shard), so
/// that it is not overwritten unasked. Statistics that found no labelled position (a failed run)
/// and files that are not fairnc shards do not count.
fn other_run(dir: &Path, settings: &Settings, identity: &shard::Identity, blocks: &[(usize, usize)]) -> Option<String> {
    if let Ok(text) = std::fs::read_to_string(dir.join("collapse.json")) {
        let previous: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let now = serde_json::to_value(settings).unwrap_or_default();
        if previous["settings"] != now {
            let changed = crate::util::settings::changes(&previous["settings"], &now);
            return Some(format!(
                "a finished collapse run with other settings ({})",
                if changed.is_empty() { "unreadable collapse.json".into() } else { changed.join(", ") }
            ));
        }
    }
    for path in [stats_path(dir), decisions_path(dir)] {
        let other = match shard::read(&path) {
            Ok(Shard::Stats(h, s, _)) => s.positions() > 0 && (h.identity != *identity || h.blocks != blocks),
            Ok(Shard::Decisions(h, _)) => h.identity != *identity || h.blocks != blocks,
            Err(_) => false,
        };
        if other {
            let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
            return Some(format!("{name} of another computation (model, word set, corpus, options or --shard)"));
        }
    }
    None
}

fn finish(dir: &Path, result: &CollapseResult, started: std::time::Instant) -> Result<()> {
    crate::report::collapse::write(dir, result)?;
    println!("{}", crate::report::collapse::markdown(result));
    eprintln!("wrote {} in {:.1}s", dir.join("collapse.json").display(), started.elapsed().as_secs_f64());
    Ok(())
}

fn read_stats(path: &Path) -> Result<(Header, ClassStats)> {
    let file = if path.is_dir() { stats_path(path) } else { path.to_path_buf() };
    match shard::read(&file)? {
        Shard::Stats(h, s, _) => Ok((h, s)),
        Shard::Decisions(..) => bail!("{}: a decision shard, not statistics", file.display()),
    }
}

fn merge(inputs: &[PathBuf], out: &Path, overwrite: bool) -> Result<()> {
    let started = std::time::Instant::now();
    let mut files = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let (s, d) = (stats_path(p), decisions_path(p));
            if !s.exists() && !d.exists() {
                bail!("{}: holds no stats.safetensors or decisions.safetensors", p.display());
            }
            files.extend([s, d].into_iter().filter(|f| f.exists()));
        } else {
            files.push(p.clone());
        }
    }
    let mut stats: Option<(Header, ClassStats, Vec<f32>)> = None;
    let mut decisions: Vec<(PathBuf, Header, Decisions)> = Vec::new();
    for f in &files {
        match shard::read(f)? {
            Shard::Stats(h, s, w) => match &mut stats {
                None => stats = Some((h, s, w)),
                Some((acc_h, acc, _)) => {
                    if h.identity != acc_h.identity {
                        bail!(
                            "{}: computed with a different model, word set, corpus or settings than the other shards",
                            f.display()
                        );
                    }
                    acc_h.blocks =
                        shard::union_blocks(&acc_h.blocks, &h.blocks).with_context(|| format!("{}", f.display()))?;
                    acc.merge(&s).with_context(|| format!("{}", f.display()))?;
                }
            },
            Shard::Decisions(h, d) => decisions.push((f.clone(), h, d)),
        }
    }
    let Some((mut header, stats, w)) = stats else { bail!("no statistics shard among the inputs") };
    header.next_block = None;
    let total_blocks = header.identity.corpus_texts.div_ceil(header.identity.block);
    let complete = header.blocks == vec![(0, total_blocks)];
    let fp = stats.fingerprint();
    let mut merged: Option<(Header, Decisions)> = None;
    for (f, h, d) in decisions {
        if h.identity != header.identity {
            bail!("{}: decisions from a different model, word set, corpus or settings", f.display());
        }
        if h.means.as_deref() != Some(fp.as_str()) {
            bail!(
                "{}: decisions used other means than the merged statistics (means {} vs {fp})",
                f.display(),
                h.means.unwrap_or_default()
            );
        }
        match &mut merged {
            None => merged = Some((h, d)),
            Some((mh, md)) => {
                if h.min_count != mh.min_count {
                    bail!("{}: decisions with another min_count", f.display());
                }
                mh.blocks = shard::union_blocks(&mh.blocks, &h.blocks).with_context(|| format!("{}", f.display()))?;
                md.merge(&d).with_context(|| format!("{}", f.display()))?;
            }
        }
    }
    let info: Info =
        serde_json::from_value(header.info.clone().unwrap_or_default()).context("shards carry no settings")?;
    let mut settings = info.settings;
    if let Some((h, _)) = &merged {
        settings.min_count = h.min_count.unwrap_or(settings.min_count);
    }
    // The merged output is itself a computation: another one in `out` is not replaced unasked
    // (an input directory given as the output holds this very one's pieces and is refused too).
    if let Some(other) = other_run(out, &settings, &header.identity, &header.blocks) {
        if !overwrite {
            bail!(
                "--output {}: holds {other}; pass --overwrite to replace it, or choose another directory",
                out.display()
            );
        }
        remove_run_files(out)?;
    }
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    shard::write_stats(&stats_path(out), &header, &stats, &w)?;
    if let Some((h, d)) = &merged {
        shard::write_decisions(&decisions_path(out), h, d)?;
    }
    let mut result = assemble(&info.classes, &stats, merged.as_ref().map(|(_, d)| d), &w, settings);
    if !complete {
        result.notes.push(format!("statistics cover blocks {:?} of 0..{total_blocks} only", header.blocks));
    }
    if let Some((h, _)) = &merged {
        if h.blocks != vec![(0, total_blocks)] {
            result.notes.push(format!("decisions cover blocks {:?} of 0..{total_blocks} only", h.blocks));
        }
    }
    finish(out, &result, started)
}
