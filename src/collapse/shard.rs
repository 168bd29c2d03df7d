//! Statistics and decision shards on disk: safetensors holding the exact integer sums, with a
//! header saying what they were computed from, so that only compatible shards merge.

use super::stats::{ClassStats, Decisions};
use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Everything two shards must share to be merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Fingerprint of the model's config and classifier rows.
    pub model: String,
    pub classes: Vec<u32>,
    pub class_set: String,
    pub target: super::Target,
    pub features: super::Features,
    pub max_len: usize,
    pub corpus: String,
    pub corpus_texts: usize,
    /// Fingerprint of the texts themselves (a file edited in place is another corpus).
    pub corpus_hash: String,
    pub heldout: f64,
    pub block: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub kind: String,
    pub identity: Identity,
    /// Corpus blocks covered, as half-open ranges.
    pub blocks: Vec<(usize, usize)>,
    /// For decisions: fingerprint of the statistics whose means were used, and min_count.
    pub means: Option<String>,
    pub min_count: Option<u64>,
    /// For an unfinished pass: the next block to process.
    pub next_block: Option<usize>,
    /// What `merge` needs to write the report: the class set and settings.
    pub info: Option<serde_json::Value>,
}

/// Writes statistics with the classifier rows `w` (`[K, D]`) they are measured against, so that
/// merging needs no model.
pub fn write_stats(path: &Path, header: &Header, stats: &ClassStats, w: &[f32]) -> Result<()> {
    let k = stats.num_classes();
    let mut tensors = vec![("w".to_string(), Tensor::from_vec(w.to_vec(), (k, w.len() / k.max(1)), &Device::Cpu)?)];
    tensors.extend(super::tensors::to_tensors(stats, "")?);
    let meta: HashMap<String, String> = [("fairnc".to_string(), serde_json::to_string(header)?)].into();
    crate::model::weights::save_tensors_with_metadata(&tensors, path, meta)
}

pub fn write_decisions(path: &Path, header: &Header, d: &Decisions) -> Result<()> {
    let dev = Device::Cpu;
    let k = d.positions.len();
    let tensors = vec![
        (
            "positions".to_string(),
            Tensor::from_vec(d.positions.iter().map(|&x| x as i64).collect::<Vec<_>>(), k, &dev)?,
        ),
        ("agree".to_string(), Tensor::from_vec(d.agree.iter().map(|&x| x as i64).collect::<Vec<_>>(), k, &dev)?),
    ];
    let meta: HashMap<String, String> = [("fairnc".to_string(), serde_json::to_string(header)?)].into();
    crate::model::weights::save_tensors_with_metadata(&tensors, path, meta)
}

/// What `merge` needs beyond the sums to write the report: the settings and class set of the
/// run that wrote a shard (its header's `info`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Info {
    pub settings: super::Settings,
    pub classes: crate::words::ClassSet,
}

pub enum Shard {
    /// Header, statistics, classifier rows `[K·D]`.
    Stats(Header, ClassStats, Vec<f32>),
    Decisions(Header, Decisions),
}

impl Shard {
    pub fn header(&self) -> &Header {
        match self {
            Shard::Stats(h, _, _) | Shard::Decisions(h, _) => h,
        }
    }
}

pub fn read(path: &Path) -> Result<Shard> {
    let (t, meta) = crate::model::weights::load_tensors_with_metadata(path, &Device::Cpu)?;
    let header: Header = meta
        .get("fairnc")
        .context("no fairnc header")
        .and_then(|h| serde_json::from_str(h).context("unreadable fairnc header"))
        .with_context(|| format!("{}: not a fairnc shard", path.display()))?;
    if header.identity.block == 0 {
        bail!("{}: fairnc header has a block size of 0", path.display());
    }
    let shard = match header.kind.as_str() {
        "stats" => read_stats_tensors(&t).map(|(s, w)| Shard::Stats(header, s, w)),
        "decisions" => read_decision_tensors(&t).map(|d| Shard::Decisions(header, d)),
        other => bail!("{}: unknown shard kind {other}", path.display()),
    };
    shard.with_context(|| path.display().to_string())
}

/// The statistics at `path`: a statistics shard, or a directory holding `stats.safetensors`.
pub fn read_stats(path: &Path) -> Result<(Header, ClassStats)> {
    let file = if path.is_dir() { super::run::stats_path(path) } else { path.to_path_buf() };
    match read(&file)? {
        Shard::Stats(h, s, _) => Ok((h, s)),
        Shard::Decisions(..) => bail!("{}: a decision shard, not statistics", file.display()),
    }
}

fn read_stats_tensors(t: &BTreeMap<String, Tensor>) -> Result<(ClassStats, Vec<f32>)> {
    let stats = super::tensors::from_tensors(|name| t.get(name), "")?;
    if stats.num_classes() == 0 {
        bail!("inconsistent tensor sizes");
    }
    let w: Vec<f32> = t.get("w").context("no tensor w")?.flatten_all()?.to_vec1()?;
    if w.len() != stats.num_classes() * stats.dim {
        bail!("classifier rows do not match the statistics");
    }
    Ok((stats, w))
}

fn read_decision_tensors(t: &BTreeMap<String, Tensor>) -> Result<Decisions> {
    // Counts are written from u64 values below 2⁶³; a negative one is a damaged file.
    let counts_of = |name: &str| -> Result<Vec<u64>> {
        let values = t
            .get(name)
            .with_context(|| format!("no tensor {name}"))?
            .flatten_all()
            .and_then(|t| t.to_vec1::<i64>())
            .with_context(|| format!("tensor {name} is not integer"))?;
        values
            .into_iter()
            .map(|c| u64::try_from(c).ok().with_context(|| format!("tensor {name} holds a negative count {c}")))
            .collect()
    };
    let positions = counts_of("positions")?;
    let agree = counts_of("agree")?;
    if positions.len() != agree.len() || agree.iter().zip(&positions).any(|(a, p)| a > p) {
        bail!("decision counts are inconsistent (agree must be at most positions, per class)");
    }
    Ok(Decisions { positions, agree })
}

/// Adds block ranges, refusing overlap (the same texts counted twice).
pub fn union_blocks(a: &[(usize, usize)], b: &[(usize, usize)]) -> Result<Vec<(usize, usize)>> {
    let mut all: Vec<(usize, usize)> = a.iter().chain(b).copied().filter(|(s, e)| s < e).collect();
    all.sort();
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (s, e) in all {
        if let Some(last) = out.last_mut() {
            if s < last.1 {
                bail!("shards overlap (blocks {}..{} and {s}..{e})", last.0, last.1);
            }
            if s == last.1 {
                last.1 = e;
                continue;
            }
        }
        out.push((s, e));
    }
    Ok(out)
}
