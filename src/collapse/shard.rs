//! Statistics and decision shards on disk: safetensors holding the exact integer sums, with a
//! header saying what they were computed from, so that only compatible shards merge.

use super::stats::{ClassStats, Decisions, join_i128, split_i128};
use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
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

fn i64s(t: &Tensor) -> Result<Vec<i64>> {
    Ok(t.flatten_all()?.to_vec1::<i64>()?)
}

/// Writes statistics with the classifier rows `w` (`[K, D]`) they are measured against, so that
/// merging needs no model.
pub fn write_stats(path: &Path, header: &Header, stats: &ClassStats, w: &[f32]) -> Result<()> {
    let dev = Device::Cpu;
    let k = stats.num_classes();
    let counts: Vec<i64> = stats.counts.iter().map(|&c| c as i64).collect();
    let tensors = vec![
        ("w".to_string(), Tensor::from_vec(w.to_vec(), (k, w.len() / k.max(1)), &dev)?),
        ("counts".to_string(), Tensor::from_vec(counts, k, &dev)?),
        ("sums".to_string(), Tensor::from_vec(split_i128(&stats.sums), (k * stats.dim, 2), &dev)?),
        ("sq_norms".to_string(), Tensor::from_vec(split_i128(&stats.sq_norms), (k, 2), &dev)?),
    ];
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
    let get = |name: &str| t.get(name).with_context(|| format!("{}: no tensor {name}", path.display()));
    // Counts are written from u64 values below 2⁶³; a negative one is a damaged file.
    let counts_of = |name: &str| -> Result<Vec<u64>> {
        i64s(get(name)?)
            .with_context(|| format!("{}: tensor {name} is not integer", path.display()))?
            .into_iter()
            .map(|c| {
                u64::try_from(c)
                    .ok()
                    .with_context(|| format!("{}: tensor {name} holds a negative count {c}", path.display()))
            })
            .collect()
    };
    // i128 sums are stored as (low, high) pairs.
    let pairs_of = |name: &str| -> Result<Vec<i128>> {
        let raw = i64s(get(name)?).with_context(|| format!("{}: tensor {name} is not integer", path.display()))?;
        if raw.len() % 2 != 0 {
            bail!("{}: tensor {name} has an odd length {}, not (low, high) pairs", path.display(), raw.len());
        }
        Ok(join_i128(&raw))
    };
    match header.kind.as_str() {
        "stats" => {
            let counts = counts_of("counts")?;
            let sums = pairs_of("sums")?;
            let sq_norms = pairs_of("sq_norms")?;
            let k = counts.len();
            if counts.iter().try_fold(0u64, |a, &c| a.checked_add(c)).is_none() {
                bail!("{}: the counts add up to more than 2^64 positions", path.display());
            }
            if k == 0 || sums.len() % k != 0 || sq_norms.len() != k {
                bail!("{}: inconsistent tensor sizes", path.display());
            }
            let dim = sums.len() / k;
            let w: Vec<f32> = get("w")?.flatten_all()?.to_vec1()?;
            if w.len() != k * dim {
                bail!("{}: classifier rows do not match the statistics", path.display());
            }
            Ok(Shard::Stats(header, ClassStats { dim, counts, sums, sq_norms }, w))
        }
        "decisions" => {
            let positions = counts_of("positions")?;
            let agree = counts_of("agree")?;
            if positions.len() != agree.len() || agree.iter().zip(&positions).any(|(a, p)| a > p) {
                bail!(
                    "{}: decision counts are inconsistent (agree must be at most positions, per class)",
                    path.display()
                );
            }
            Ok(Shard::Decisions(header, Decisions { positions, agree }))
        }
        other => bail!("{}: unknown shard kind {other}", path.display()),
    }
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
