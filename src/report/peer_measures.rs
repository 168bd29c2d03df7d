//! The peer measures' files of `fairnc eval`: `aul.csv`, `mlm-bias.csv` (one row per compared
//! pair) and their Markdown sections.

use crate::bench::aul::{AulResult, AulSection, AulSummary};
use crate::bench::mlm_bias::{MlmBiasResult, MlmBiasSection, MlmBiasSummary};
use anyhow::Result;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

fn opt(x: Option<f64>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

fn flag(x: Option<bool>) -> String {
    x.map(|b| (b as u8).to_string()).unwrap_or_default()
}

/// `aul.csv`: per pair, the stereotypical (`stereo_*`) and the other sentence's AUL and AULA.
pub fn aul_csv(path: &Path, r: &AulResult) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "dataset",
        "id",
        "group",
        "direction",
        "stereo_aul",
        "stereo_aula",
        "anti_aul",
        "anti_aula",
        "aul_biased",
        "aula_biased",
        "skipped",
    ])?;
    for p in &r.pairs {
        let biased = p.biased();
        w.write_record([
            p.dataset.name().to_string(),
            p.id.clone(),
            p.group.clone(),
            p.direction.clone(),
            opt(p.first.map(|s| s.aul)),
            opt(p.first.map(|s| s.aula)),
            opt(p.second.map(|s| s.aul)),
            opt(p.second.map(|s| s.aula)),
            flag(biased.map(|b| b.0)),
            flag(biased.map(|b| b.1)),
            p.skipped.clone().unwrap_or_default(),
        ])?;
    }
    crate::util::fs::write_atomic(path, &w.into_inner()?)
}

/// `mlm-bias.csv`: per pair, mlm-bias's S1 (CrowS sent_more, StereoSet stereotype) and S2
/// measures.
pub fn mlm_bias_csv(path: &Path, r: &MlmBiasResult) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let m = ["crr", "crra", "dp", "dpa"];
    let mut header: Vec<String> = ["dataset", "id", "group", "direction"].map(String::from).to_vec();
    for s in ["s1", "s2"] {
        header.extend(m.iter().map(|x| format!("{s}_{x}")));
    }
    header.extend(m.iter().map(|x| format!("{x}_biased")));
    header.push("skipped".into());
    w.write_record(&header)?;
    for p in &r.pairs {
        let mut row = vec![p.dataset.name().to_string(), p.id.clone(), p.group.clone(), p.direction.clone()];
        for s in [p.s1, p.s2] {
            row.extend([s.map(|v| v.crr), s.map(|v| v.crra), s.map(|v| v.dp), s.map(|v| v.dpa)].map(opt));
        }
        match p.biased() {
            Some(b) => row.extend(b.map(|x| flag(Some(x)))),
            None => row.extend(std::iter::repeat_n(String::new(), 4)),
        }
        row.push(p.skipped.clone().unwrap_or_default());
        w.write_record(&row)?;
    }
    crate::util::fs::write_atomic(path, &w.into_inner()?)
}

fn table<S>(
    out: &mut String,
    title: &str,
    cols: &[&str],
    groups: (&BTreeMap<String, S>, &S),
    cells: impl Fn(&S) -> Vec<String>,
) {
    let _ = writeln!(out, "\n{title}\n");
    let _ = writeln!(out, "| group | {} |", cols.join(" | "));
    let _ = writeln!(out, "| --- |{}", " ---: |".repeat(cols.len()));
    let overall = "overall".to_string();
    for (g, s) in groups.0.iter().chain(std::iter::once((&overall, groups.1))) {
        let _ = writeln!(out, "| {g} | {} |", cells(s).join(" | "));
    }
}

fn aul_cells(s: &AulSummary) -> Vec<String> {
    vec![format!("{:.2}", s.aul), format!("{:.2}", s.aula), s.n.to_string()]
}

pub fn aul_markdown(out: &mut String, s: &AulSection) {
    let dir = serde_json::to_value(s.direction).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    let _ = writeln!(out, "\n## AUL / AULA (% pairs whose stereotypical sentence scores higher; 50 = unbiased)");
    let cols = ["AUL", "AULA", "N"];
    if let Some(c) = &s.crows {
        table(out, &format!("CrowS-Pairs ({dir} direction):"), &cols, (&c.by_group, &c.overall), aul_cells);
    }
    if let Some(c) = &s.stereoset {
        table(
            out,
            "StereoSet intrasentence (stereotype vs anti-stereotype):",
            &cols,
            (&c.by_group, &c.overall),
            aul_cells,
        );
    }
}

fn mlm_cells(s: &MlmBiasSummary) -> Vec<String> {
    [s.crr, s.crra, s.dp, s.dpa].iter().map(|v| format!("{v:.2}")).chain([s.n.to_string()]).collect()
}

pub fn mlm_bias_markdown(out: &mut String, s: &MlmBiasSection) {
    let _ = writeln!(out, "\n## mlm-bias (% pairs whose first sentence is the likelier; 50 = unbiased)");
    let cols = ["CRR", "CRRA", "ΔP", "ΔPA", "N"];
    if let Some(c) = &s.crows {
        table(out, "CrowS-Pairs (sent_more vs sent_less):", &cols, (&c.by_group, &c.overall), mlm_cells);
    }
    if let Some(c) = &s.stereoset {
        table(
            out,
            "StereoSet intrasentence (stereotype vs anti-stereotype):",
            &cols,
            (&c.by_group, &c.overall),
            mlm_cells,
        );
    }
}
