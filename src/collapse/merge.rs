//! Merging statistics and decision shards (computed on other machines or corpus slices) into
//! one computation: exact integer sums add up to what a single run would have found.

use super::output::claim;
use super::run::{decisions_path, stats_path};
use super::shard::{self, Header, Info, Shard};
use super::stats::{ClassStats, Decisions};
use super::{CollapseResult, assemble};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Merges the shards in `inputs` (shard files, or directories holding `stats.safetensors`
/// and/or `decisions.safetensors`) and writes the merged shards to `out`, which must not hold
/// another computation unless `overwrite`. Returns the result computed from them; a partial
/// coverage of the corpus is noted in it.
pub fn merge(inputs: &[PathBuf], out: &Path, overwrite: bool) -> Result<CollapseResult> {
    let mut stats: Option<MergedStats> = None;
    let mut decision_shards = Vec::new();
    for f in shard_files(inputs)? {
        match shard::read(&f)? {
            Shard::Stats(h, s, w) => match &mut stats {
                None => stats = Some(MergedStats { header: h, stats: s, w }),
                Some(acc) => acc.add(&f, &h, &s)?,
            },
            Shard::Decisions(h, d) => decision_shards.push((f, h, d)),
        }
    }
    let Some(MergedStats { mut header, stats, w }) = stats else { bail!("no statistics shard among the inputs") };
    header.next_block = None;
    let decisions = merge_decisions(&header, &stats, decision_shards)?;
    let info: Info =
        serde_json::from_value(header.info.clone().unwrap_or_default()).context("shards carry no settings")?;
    let mut settings = info.settings;
    if let Some((h, _)) = &decisions {
        settings.min_count = h.min_count.unwrap_or(settings.min_count);
    }
    // The merged output is itself a computation: another one in `out` is not replaced unasked
    // (an input directory given as the output holds this very one's pieces and is refused too).
    claim(out, &settings, &header.identity, &header.blocks, overwrite)?;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    shard::write_stats(&stats_path(out), &header, &stats, &w)?;
    if let Some((h, d)) = &decisions {
        shard::write_decisions(&decisions_path(out), h, d)?;
    }
    let mut result = assemble(&info.classes, &stats, decisions.as_ref().map(|(_, d)| d), &w, settings);
    result.notes.extend(coverage_notes(&header, decisions.as_ref().map(|(h, _)| h)));
    Ok(result)
}

/// The shard files named by `inputs`, directories expanded to the shards they hold.
fn shard_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
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
    Ok(files)
}

/// Statistics shards summed so far, with the header of the first and the classifier rows.
struct MergedStats {
    header: Header,
    stats: ClassStats,
    w: Vec<f32>,
}

impl MergedStats {
    /// Adds the shard read from `f`, refusing another computation's or overlapping blocks.
    fn add(&mut self, f: &Path, h: &Header, s: &ClassStats) -> Result<()> {
        if h.identity != self.header.identity {
            bail!(
                "{}: computed with a different model, word set, corpus or settings than the other shards",
                f.display()
            );
        }
        self.header.blocks =
            shard::union_blocks(&self.header.blocks, &h.blocks).with_context(|| format!("{}", f.display()))?;
        self.stats.merge(s).with_context(|| format!("{}", f.display()))
    }
}

/// Sums the decision shards, each of which must have used the merged statistics' means (and
/// the same min_count); None without any.
fn merge_decisions(
    header: &Header,
    stats: &ClassStats,
    shards: Vec<(PathBuf, Header, Decisions)>,
) -> Result<Option<(Header, Decisions)>> {
    let fp = stats.fingerprint();
    let mut merged: Option<(Header, Decisions)> = None;
    for (f, h, d) in shards {
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
    Ok(merged)
}

/// Which part of the corpus the merged statistics and decisions miss, if any.
fn coverage_notes(stats: &Header, decisions: Option<&Header>) -> Vec<String> {
    let total_blocks = stats.identity.corpus_texts.div_ceil(stats.identity.block);
    let whole = vec![(0, total_blocks)];
    let mut notes = Vec::new();
    if stats.blocks != whole {
        notes.push(format!("statistics cover blocks {:?} of 0..{total_blocks} only", stats.blocks));
    }
    if let Some(h) = decisions
        && h.blocks != whole
    {
        notes.push(format!("decisions cover blocks {:?} of 0..{total_blocks} only", h.blocks));
    }
    notes
}
