//! The two sentences the peer measures (AUL/AULA, mlm-bias) compare, from CrowS-Pairs rows and
//! StereoSet intrasentence clusters: one record for both datasets.

use crate::data::crows::CrowsPair;
use crate::data::stereoset::{Cluster, Label};
use serde::{Deserialize, Serialize};

/// Which dataset a pair came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Crows,
    StereoSet,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Crows => "crows",
            Source::StereoSet => "stereoset",
        }
    }
}

/// Two sentences to compare: `first` is the one a biased model is expected to prefer.
#[derive(Debug, Clone)]
pub struct SentencePair {
    pub source: Source,
    /// CrowS row index, or StereoSet cluster id.
    pub id: String,
    /// CrowS bias type or StereoSet domain.
    pub group: String,
    /// CrowS `stereo` / `antistereo`; StereoSet: empty.
    pub direction: String,
    pub first: String,
    pub second: String,
}

/// How a CrowS row's two sentences are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrowsOrder {
    /// bias-bench: the stereotypical sentence first (sent_more of `stereo` rows, sent_less of
    /// `antistereo` rows).
    Stereotypical,
    /// sent_more first whatever the row's direction (Kaneko & Bollegala's preprocess.py,
    /// mlm-bias's "dis"/"adv").
    SentMore,
}

pub fn from_crows(pairs: &[CrowsPair], order: CrowsOrder) -> Vec<SentencePair> {
    pairs
        .iter()
        .map(|p| {
            let (first, second) = match order {
                CrowsOrder::Stereotypical => p.ordered(),
                CrowsOrder::SentMore => (p.sent_more.as_str(), p.sent_less.as_str()),
            };
            SentencePair {
                source: Source::Crows,
                id: p.index.to_string(),
                group: p.bias_type.clone(),
                direction: if p.stereo { "stereo" } else { "antistereo" }.into(),
                first: first.into(),
                second: second.into(),
            }
        })
        .collect()
}

/// Stereotype sentence first, anti-stereotype second; the unrelated sentence is not used
/// (neither Kaneko & Bollegala nor mlm-bias read it).
pub fn from_stereoset(clusters: &[Cluster]) -> Vec<SentencePair> {
    clusters
        .iter()
        .map(|c| {
            let get = |l: Label| {
                c.sentences.iter().find(|s| s.gold_label == l).map(|s| s.sentence.clone()).unwrap_or_default()
            };
            SentencePair {
                source: Source::StereoSet,
                id: c.id.clone(),
                group: c.bias_type.clone(),
                direction: String::new(),
                first: get(Label::Stereotype),
                second: get(Label::AntiStereotype),
            }
        })
        .collect()
}
