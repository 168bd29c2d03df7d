//! The pairs behind the scores: the CrowS-Pairs pairs and StereoSet clusters whose two
//! sentences the model scores furthest apart, so that a reader can see what a bias score is
//! made of (`report.html`'s per-pair browser).

use crate::bench::Evaluation;
use crate::data::stereoset::Label;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Rows kept per benchmark: enough to browse, small enough for `audit.json`.
pub const GAP_ROWS: usize = 100;

/// One pair of sentences with their scores: CrowS-Pairs' `sent_more` and `sent_less`, or a
/// StereoSet cluster's stereotype and anti-stereotype.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Gap {
    /// The CrowS-Pairs row index or the StereoSet cluster id.
    pub id: String,
    /// CrowS bias type or StereoSet domain.
    pub bias_type: String,
    /// CrowS: `stereo` or `antistereo` (which of the two the row's author wrote as the
    /// stereotype); StereoSet: the cluster's target term.
    pub detail: String,
    pub stereotypical: String,
    pub anti_stereotypical: String,
    /// The scorer's own unit: mean log-probability (CrowS, causal StereoSet) or mean
    /// probability (masked StereoSet).
    pub score_stereotypical: f64,
    pub score_anti_stereotypical: f64,
    /// `score_stereotypical − score_anti_stereotypical`: > 0 counts toward the stereotype score.
    pub gap: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LargestGaps {
    pub crows: Vec<Gap>,
    pub stereoset: Vec<Gap>,
}

/// The [`GAP_ROWS`] largest |gap|s of each benchmark that ran, largest first (ties by id).
pub fn largest_gaps(ev: &Evaluation) -> LargestGaps {
    let crows = ev.crows.as_ref().map(|r| {
        r.pairs
            .iter()
            .filter_map(|p| {
                let (more, less) = (p.raw_more?, p.raw_less?);
                Some(Gap {
                    id: p.index.to_string(),
                    bias_type: p.bias_type.clone(),
                    detail: p.direction.clone(),
                    stereotypical: p.sent_more.clone(),
                    anti_stereotypical: p.sent_less.clone(),
                    score_stereotypical: more,
                    score_anti_stereotypical: less,
                    gap: more - less,
                })
            })
            .collect()
    });
    let stereoset = ev.stereoset.as_ref().map(|r| {
        let mut clusters: BTreeMap<&str, [Option<&crate::bench::stereoset::SentenceScore>; 2]> = BTreeMap::new();
        for s in &r.sentences {
            let slot = match s.gold_label {
                Label::Stereotype => 0,
                Label::AntiStereotype => 1,
                Label::Unrelated => continue,
            };
            clusters.entry(s.cluster.as_str()).or_default()[slot] = Some(s);
        }
        clusters
            .into_values()
            .filter_map(|[pro, anti]| {
                let (pro, anti) = (pro?, anti?);
                Some(Gap {
                    id: pro.cluster.clone(),
                    bias_type: pro.domain.clone(),
                    detail: pro.target.clone(),
                    stereotypical: pro.sentence.clone(),
                    anti_stereotypical: anti.sentence.clone(),
                    score_stereotypical: pro.score,
                    score_anti_stereotypical: anti.score,
                    gap: pro.score - anti.score,
                })
            })
            .collect()
    });
    LargestGaps { crows: top(crows.unwrap_or_default()), stereoset: top(stereoset.unwrap_or_default()) }
}

fn top(mut rows: Vec<Gap>) -> Vec<Gap> {
    rows.sort_by(|a, b| b.gap.abs().total_cmp(&a.gap.abs()).then_with(|| a.id.cmp(&b.id)));
    rows.truncate(GAP_ROWS);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::crows::{CrowsResult, PairScore};

    fn pair(index: usize, more: Option<f64>, less: Option<f64>) -> PairScore {
        PairScore {
            index,
            bias_type: "gender".into(),
            direction: "stereo".into(),
            score_more: more,
            score_less: less,
            raw_more: more,
            raw_less: less,
            skipped: None,
            stereotypical: None,
            sent_more: format!("more {index}"),
            sent_less: format!("less {index}"),
        }
    }

    #[test]
    fn keeps_the_largest_absolute_gaps_first_and_leaves_out_unscored_pairs() {
        let crows = CrowsResult {
            variant: "bias-bench".into(),
            by_type: Default::default(),
            overall: Default::default(),
            skipped: 1,
            pairs: vec![pair(0, Some(-1.0), Some(-1.5)), pair(1, None, None), pair(2, Some(-3.0), Some(-1.0))],
        };
        let ev = Evaluation { crows: Some(crows), ..Default::default() };
        let g = largest_gaps(&ev);
        let ids: Vec<&str> = g.crows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["2", "0"], "|−2| before |0.5|; the skipped pair has no gap");
        assert_eq!(g.crows[0].gap, -2.0);
        assert_eq!(g.crows[0].stereotypical, "more 2");
        assert!(g.stereoset.is_empty());
    }
}
