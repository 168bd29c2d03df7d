//! What an audit found: the NC statistics and the bias benchmarks of one model, joined, with
//! the parts it skipped and why. `audit.json` is this, serialised.

use crate::bench::EvalResults;
use crate::collapse::CollapseResult;
use std::collections::BTreeMap;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    pub part: String,
    pub reason: String,
    /// The command that makes the part run.
    pub fix: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Audit {
    pub model: String,
    pub family: String,
    pub lm_head: String,
    /// The parameter whose rows are the classifier W (the tied embedding or an untied head).
    #[serde(default)]
    pub classifier: String,
    /// True when W is the word-embedding matrix itself.
    #[serde(default = "tied_by_default")]
    pub tied_head: bool,
    pub causal: bool,
    /// The projection of the last-layer hidden states the audited model carries (SentenceDebias, INLP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection: Option<crate::model::ProjectionInfo>,
    pub quick: bool,
    pub words: String,
    pub corpus_texts: usize,
    /// The NC statistics, as `collapse/collapse.json` holds them.
    pub collapse: CollapseResult,
    pub eval: EvalResults,
    /// The CrowS-Pairs pairs and StereoSet clusters the model scores furthest apart.
    #[serde(default)]
    pub largest_gaps: super::LargestGaps,
    pub skipped: Vec<Skipped>,
    /// Seconds of `collapse`, `eval` and the `total`.
    pub seconds: BTreeMap<String, f64>,
    pub version: String,
}

/// NC metrics in the headline, with what perfect collapse would give.
pub const NC_METRICS: [(&str, &str, &str); 5] = [
    ("duality_std", "UNC3: std of the class-mean / weight cosines s_c (the NC3 regularizer's quantity)", "→ 0"),
    ("duality_mean", "NC3: mean alignment s_c", "→ 1"),
    ("cdnv", "NC1: class-distance normalised variance", "→ 0"),
    ("equinorm_cov", "NC2: variation of class-mean norms", "→ 0"),
    ("ncc_agreement", "NC4: agreement of the classifier with the nearest class mean", "→ 1"),
];

impl Audit {
    /// An NC metric of the headline by its name in `collapse.json` (None: not computable).
    pub fn nc_metric(&self, name: &str) -> Option<f64> {
        let m = &self.collapse.metrics;
        match name {
            "duality_std" => m.duality_std,
            "duality_mean" => m.duality_mean,
            "cdnv" => m.cdnv,
            "equinorm_cov" => m.equinorm_cov,
            "ncc_agreement" => m.ncc_agreement,
            _ => None,
        }
    }

    /// Every headline number as (part, metric, value): NC metrics, then each benchmark that ran;
    /// every score on which 50 is unbiased is followed by its `*_from_50` distance.
    pub fn headline(&self) -> Vec<(String, String, f64)> {
        let mut rows = Vec::new();
        for (k, _, _) in NC_METRICS {
            if let Some(v) = self.nc_metric(k) {
                rows.push(("nc".into(), k.into(), v));
            }
        }
        if let Some(s) = &self.eval.seat {
            for (b, v) in &s.avg_abs_effect {
                rows.push(("seat".into(), format!("avg_abs_effect_{b}"), *v));
            }
        }
        if let Some(c) = &self.eval.crows {
            for (t, v) in c.by_type.iter().chain(std::iter::once((&"overall".to_string(), &c.overall))) {
                push_50(&mut rows, "crows", t, v.metric);
            }
        }
        if let Some(s) = &self.eval.stereoset {
            for (d, v) in &s.by_domain {
                push_50(&mut rows, "stereoset", &format!("ss_{d}"), v.ss);
            }
            push_50(&mut rows, "stereoset", "ss", s.overall.ss);
            rows.push(("stereoset".into(), "lms".into(), s.overall.lms));
            rows.push(("stereoset".into(), "icat".into(), s.overall.icat));
        }
        if let Some(s) = &self.eval.stereoset_intersentence {
            let part = "stereoset-inter";
            for (d, v) in &s.by_domain {
                push_50(&mut rows, part, &format!("ss_{d}"), v.ss);
            }
            push_50(&mut rows, part, "ss", s.overall.ss);
            rows.push((part.into(), "lms".into(), s.overall.lms));
            rows.push((part.into(), "icat".into(), s.overall.icat));
            if let Some(c) = &s.combined {
                push_50(&mut rows, part, "combined_ss", c.ss);
                rows.push((part.into(), "combined_lms".into(), c.lms));
                rows.push((part.into(), "combined_icat".into(), c.icat));
            }
        }
        if let Some(b) = &self.eval.becpro {
            for (g, v) in b.by_group.iter().chain(std::iter::once((&"overall".to_string(), &b.overall))) {
                for (what, x) in [("mean_male", v.mean_male), ("mean_female", v.mean_female)] {
                    if let Some(x) = x {
                        rows.push(("becpro".into(), format!("{g}_{what}"), x));
                    }
                }
                if let Some(w) = &v.wilcoxon {
                    rows.push(("becpro".into(), format!("{g}_wilcoxon_p"), w.p_value));
                }
            }
        }
        if let Some(a) = &self.eval.aul {
            for (data, groups) in [("crows", &a.crows), ("stereoset", &a.stereoset)] {
                if let Some(g) = groups {
                    for (k, v) in g.by_group.iter().chain(std::iter::once((&"overall".to_string(), &g.overall))) {
                        push_50(&mut rows, "aul", &format!("{data}_{k}_aul"), v.aul);
                        push_50(&mut rows, "aul", &format!("{data}_{k}_aula"), v.aula);
                    }
                }
            }
        }
        if let Some(m) = &self.eval.mlm_bias {
            for (data, groups) in [("crows", &m.crows), ("stereoset", &m.stereoset)] {
                if let Some(g) = groups {
                    for (k, v) in g.by_group.iter().chain(std::iter::once((&"overall".to_string(), &g.overall))) {
                        for (what, x) in [("crr", v.crr), ("crra", v.crra), ("dp", v.dp), ("dpa", v.dpa)] {
                            push_50(&mut rows, "mlm-bias", &format!("{data}_{k}_{what}"), x);
                        }
                    }
                }
            }
        }
        rows
    }
}

/// A 50-is-unbiased score and its distance from 50, as two headline rows.
fn push_50(rows: &mut Vec<(String, String, f64)>, part: &str, metric: &str, score: f64) {
    rows.push((part.into(), metric.into(), score));
    rows.push((part.into(), format!("{metric}_from_50"), from_50(score)));
}

/// How far a score on which 50 is unbiased lies from 50, in either direction: a model that
/// prefers anti-stereotypes as often as another prefers stereotypes is as far from unbiased.
pub fn from_50(score: f64) -> f64 {
    (score - 50.0).abs()
}

fn tied_by_default() -> bool {
    true
}
