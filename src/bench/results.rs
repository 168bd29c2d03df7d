//! The summaries `fairnc eval` writes to `results.json`.

use super::{becpro, crows, seat, stereoset};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `results.json` of `fairnc eval`: summaries only (per-example scores go to CSVs).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EvalResults {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crows: Option<CrowsSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stereoset: Option<StereoSetSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seat: Option<SeatSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stereoset_intersentence: Option<StereoSetInterSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub becpro: Option<BecProSection>,
    pub aul: Option<super::aul::AulSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlm_bias: Option<super::mlm_bias::MlmBiasSection>,
    /// What was run, skipped or could not be read.
    pub notes: Vec<String>,
    pub settings: serde_json::Value,
}

/// Bias types and `overall` only, so that every key but `overall` is a bias type; the scoring
/// variant and skip counts are in [`EvalResults::settings`] and the notes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrowsSection {
    #[serde(flatten)]
    pub by_type: BTreeMap<String, crows::CrowsSummary>,
    pub overall: crows::CrowsSummary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StereoSetSection {
    #[serde(flatten)]
    pub by_domain: BTreeMap<String, stereoset::StereoSetSummary>,
    pub overall: stereoset::StereoSetSummary,
}

/// StereoSet intersentence per domain and overall, and `combined`: intrasentence and
/// intersentence clusters pooled per target term (StereoSet's leaderboard "overall"), when both
/// parts ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StereoSetInterSection {
    #[serde(flatten)]
    pub by_domain: BTreeMap<String, stereoset::StereoSetSummary>,
    pub overall: stereoset::StereoSetSummary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combined: Option<stereoset::StereoSetSummary>,
}

/// BEC-Pro per profession group (male, female, balanced) and overall.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BecProSection {
    #[serde(flatten)]
    pub by_group: BTreeMap<String, becpro::BecProSummary>,
    pub overall: becpro::BecProSummary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeatSection {
    #[serde(flatten)]
    pub tests: BTreeMap<String, seat::SeatScore>,
    pub avg_abs_effect: BTreeMap<String, f64>,
}

impl SeatSection {
    /// The scores of every test, with the average absolute effect per bias type.
    pub fn new(scores: &[(String, seat::SeatScore)]) -> Self {
        SeatSection { tests: scores.iter().cloned().collect(), avg_abs_effect: seat::avg_abs_effect(scores) }
    }
}
