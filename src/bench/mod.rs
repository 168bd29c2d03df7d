//! Bias benchmarks: CrowS-Pairs, StereoSet intrasentence and SEAT. Datasets + model →
//! per-example scores → summaries; every scorer plans batches of variants, never one
//! forward pass per masked token.

pub mod crows;
pub mod difflib;
pub mod glue;
pub mod scoring;
pub mod seat;
pub mod stereoset;

#[cfg(test)]
mod tests {
    use super::difflib::{Tag, opcodes};
    use super::scoring::round3;

    #[test]
    fn opcodes_match_python_difflib() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/difflib/opcodes.json");
        let cases: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for (n, c) in cases.iter().enumerate() {
            let v = |k: &str| -> Vec<u64> { c[k].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect() };
            let got: Vec<serde_json::Value> = opcodes(&v("a"), &v("b"))
                .into_iter()
                .map(|(t, a0, a1, b0, b1)| {
                    let tag = match t {
                        Tag::Equal => "equal",
                        Tag::Replace => "replace",
                        Tag::Delete => "delete",
                        Tag::Insert => "insert",
                    };
                    serde_json::json!([tag, a0, a1, b0, b1])
                })
                .collect();
            assert_eq!(serde_json::Value::Array(got), c["opcodes"], "case {n}");
        }
    }

    #[test]
    fn rounding_matches_python() {
        // round(-2.0005, 3) == -2.001, round(-1.23450000001, 3) == -1.235, round(0.0625, 3) == 0.062
        assert_eq!(round3(-2.0005), -2.001);
        assert_eq!(round3(-1.23450000001), -1.235);
        assert_eq!(round3(0.0625), 0.062);
        assert_eq!(round3(-3.0), -3.0);
    }
}

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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeatSection {
    #[serde(flatten)]
    pub tests: BTreeMap<String, seat::SeatScore>,
    pub avg_abs_effect: BTreeMap<String, f64>,
}
