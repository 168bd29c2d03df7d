//! Neural-collapse statistics on a class set (fairness words or the whole vocabulary):
//! streaming exact accumulators, mergeable shards, and the metrics of METHOD §4.
//!
//! Written once and used three ways: the `collapse` command, the NC3 regularizer during
//! training, and the audit report. The stage is [`measure`] (with [`measure_stats_shard`],
//! [`measure_decisions`] and [`merge`] for a computation split across machines); it returns a
//! [`CollapseResult`], which `report::collapse::write` writes.

pub(crate) mod centred;
pub mod measure;
pub mod merge;
pub(crate) mod metrics;
mod output;
pub mod run;
pub mod shard;
pub mod stats;
pub(crate) mod tensors;

pub use measure::{CollapseConfig, Convention, measure, measure_decisions, measure_stats_shard};
pub use merge::merge;
pub use metrics::{MetricConvention, Metrics};

use crate::util::stats::{Spread, checked_mean, checked_std};
use crate::words::{ClassSet, Skipped};
use metrics::ClassInput;
use serde::{Deserialize, Serialize};
use stats::{ClassStats, Decisions};
use std::collections::BTreeMap;

/// Which token labels a hidden state (METHOD §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The token at the same position (masked LMs).
    Same,
    /// The next token (causal LMs; the Fairness-NC release uses it for BERT too).
    Next,
}

/// Which vector is the feature of a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Features {
    /// The last-layer hidden state.
    Hidden,
    /// The MLM head transform of it (what the decoder reads; the release's measurement point).
    Head,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    pub model: String,
    pub corpus: String,
    pub words: String,
    pub policy: crate::words::Policy,
    pub convention: String,
    pub target: Target,
    pub features: Features,
    pub metric: MetricConvention,
    pub min_count: u64,
    pub heldout: f64,
    pub max_len: usize,
    /// The projection of the last-layer hidden states the measured model carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection: Option<crate::model::ProjectionInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClassRow {
    pub id: u32,
    pub token: String,
    pub words: Vec<String>,
    pub groups: Vec<String>,
    pub n: u64,
    pub var: f64,
    /// s_c = ⟨û_c, ŵ_c⟩ (NC3 alignment).
    pub s: Option<f64>,
    pub dist: Option<f64>,
    pub ncc_positions: u64,
    pub ncc_agree: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupSummary {
    pub k: usize,
    pub n: u64,
    pub duality_mean: Option<f64>,
    pub duality_std: Option<f64>,
    pub duality_dist: Option<f64>,
    pub mean_var: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    #[serde(rename = "K")]
    pub k: usize,
    pub classes: usize,
    pub classes_below_min_count: usize,
    pub positions_stats: u64,
    pub positions_heldout: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MergedRow {
    pub id: u32,
    pub token: String,
    pub words: Vec<String>,
}

/// Everything `collapse` reports; `collapse.json` is this, serialised.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CollapseResult {
    pub metrics: Metrics,
    pub groups: BTreeMap<String, GroupSummary>,
    pub settings: Settings,
    pub counts: Counts,
    pub classes: Vec<ClassRow>,
    pub skipped: Vec<Skipped>,
    pub merged: Vec<MergedRow>,
    /// Why a metric is missing, when one is.
    pub notes: Vec<String>,
}

/// Computes the metrics from (merged) statistics, decisions and classifier rows `w` `[K·D]`.
pub fn assemble(
    classes: &ClassSet,
    stats: &ClassStats,
    decisions: Option<&Decisions>,
    w: &[f32],
    settings: Settings,
) -> CollapseResult {
    let kept: Vec<usize> = (0..stats.num_classes()).filter(|&c| stats.counts[c] >= settings.min_count.max(1)).collect();
    let inputs = class_inputs(&kept, stats, decisions, w);
    let (metrics, per) = metrics::compute(&inputs, settings.metric);
    let rows = class_rows(classes, &kept, &inputs, &per);
    let groups = group_summaries(classes, &kept, &rows);
    let notes = notes(inputs.len(), decisions.is_some(), &metrics, &settings);
    let merged = classes
        .merged()
        .into_iter()
        .map(|c| MergedRow { id: c.id, token: c.token.clone(), words: c.words.clone() })
        .collect();
    CollapseResult {
        metrics,
        groups,
        counts: Counts {
            k: inputs.len(),
            classes: classes.classes.len(),
            classes_below_min_count: classes.classes.len() - inputs.len(),
            positions_stats: inputs.iter().map(|c| c.n).sum(),
            positions_heldout: decisions.map_or(0, |x| x.positions.iter().sum()),
        },
        classes: rows,
        skipped: classes.skipped.clone(),
        merged,
        settings,
        notes,
    }
}

/// The classes of S' (indices `kept`) as the metrics see them.
fn class_inputs(kept: &[usize], stats: &ClassStats, decisions: Option<&Decisions>, w: &[f32]) -> Vec<ClassInput> {
    let d = stats.dim;
    kept.iter()
        .map(|&c| ClassInput {
            n: stats.counts[c],
            mean: stats.mean(c),
            var: stats.variance(c),
            w: w[c * d..(c + 1) * d].iter().map(|&x| x as f64).collect(),
            ncc_positions: decisions.map_or(0, |x| x.positions[c]),
            ncc_agree: decisions.map_or(0, |x| x.agree[c]),
        })
        .collect()
}

fn class_rows(classes: &ClassSet, kept: &[usize], inputs: &[ClassInput], per: &metrics::PerClass) -> Vec<ClassRow> {
    kept.iter()
        .zip(inputs)
        .enumerate()
        .map(|(i, (&c, inp))| {
            let cls = &classes.classes[c];
            ClassRow {
                id: cls.id,
                token: cls.token.clone(),
                words: cls.words.clone(),
                groups: cls.groups.iter().map(|&g| classes.group_names[g].clone()).collect(),
                n: inp.n,
                var: inp.var,
                s: per.duality[i],
                dist: per.duality_dist[i],
                ncc_positions: inp.ncc_positions,
                ncc_agree: inp.ncc_agree,
            }
        })
        .collect()
}

/// Per group of the word set, over the classes of S' that belong to that group only.
fn group_summaries(classes: &ClassSet, kept: &[usize], rows: &[ClassRow]) -> BTreeMap<String, GroupSummary> {
    let mut groups = BTreeMap::new();
    for (g, name) in classes.group_names.iter().enumerate() {
        let mine: Vec<&ClassRow> = kept
            .iter()
            .zip(rows)
            .filter(|(c, _)| classes.sole_group(&classes.classes[**c]) == Some(g))
            .map(|(_, r)| r)
            .collect();
        let s: Option<Vec<f64>> = mine.iter().map(|r| r.s).collect();
        let dist: Option<Vec<f64>> = mine.iter().map(|r| r.dist).collect();
        let vars: Vec<f64> = mine.iter().map(|r| r.var).collect();
        groups.insert(
            name.clone(),
            GroupSummary {
                k: mine.len(),
                n: mine.iter().map(|r| r.n).sum(),
                duality_mean: s.as_deref().and_then(checked_mean),
                duality_std: s.as_deref().and_then(|s| checked_std(s, Spread::Sample)),
                duality_dist: dist.as_deref().and_then(checked_mean),
                mean_var: checked_mean(&vars),
            },
        );
    }
    groups
}

/// Why a metric is missing, when one is.
fn notes(k: usize, has_decisions: bool, metrics: &Metrics, settings: &Settings) -> Vec<String> {
    let mut notes = Vec::new();
    if k < 2 {
        notes.push(format!(
            "only {k} class(es) reach min_count {}: metrics over pairs are not computable",
            settings.min_count
        ));
    }
    if !has_decisions {
        notes.push("no decision pass (held-out part) yet: ncc_agreement is not computed".into());
    } else if metrics.ncc_agreement.is_none() {
        notes.push("no held-out position is labelled with a class: ncc_agreement is not computable".into());
    }
    notes
}
