//! The experiment summary: every configuration's mean ± std over seeds, the change each λ makes
//! against λ = 0 of the same method (bootstrap CI over seeds, paired by seed), and the correlation of each NC
//! metric with each bias score across cells (Pearson and Spearman, bootstrap CIs over cells),
//! as tables, `summary.json`, `cells.csv` and scatter plots.

use super::document::Document;
use crate::cli::experiment::Cell;
use crate::util::stats;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CellResult {
    pub model: String,
    pub method: String,
    pub lambda: f64,
    pub seed: u64,
    pub status: Status,
    pub error: Option<String>,
    #[serde(deserialize_with = "crate::util::stats::nan_map")]
    pub metrics: BTreeMap<String, f64>,
    pub seconds: f64,
}

impl CellResult {
    pub fn ok(c: &Cell, metrics: BTreeMap<String, f64>, seconds: f64) -> Self {
        CellResult { model: c.model.clone(), method: c.method.clone(), lambda: c.lambda, seed: c.seed, status: Status::Ok, error: None, metrics, seconds }
    }

    pub fn failed(c: &Cell, error: String, seconds: f64) -> Self {
        CellResult { model: c.model.clone(), method: c.method.clone(), lambda: c.lambda, seed: c.seed, status: Status::Failed, error: Some(error), metrics: BTreeMap::new(), seconds }
    }

    fn config(&self) -> (String, String, String) {
        (self.model.clone(), self.method.clone(), lambda_label(self.lambda))
    }
}

fn lambda_label(l: f64) -> String {
    if l == 0.0 { "0".into() } else { format!("{l}") }
}

/// NC metrics (x of the correlations) and bias scores (y), by `part.metric` key.
pub const NC_KEYS: [&str; 3] = ["nc.duality_std", "nc.duality_mean", "nc.cdnv"];
pub const BIAS_KEYS: [&str; 4] = ["seat.avg_abs_effect_gender", "crows.gender", "stereoset.ss_gender", "stereoset.icat"];
const BOOTSTRAP: usize = 2000;

/// Columns of the main table: NC, bias, LM quality and GLUE metrics present in any cell.
fn columns(results: &[CellResult]) -> Vec<String> {
    let mut keys: Vec<String> = NC_KEYS.iter().chain(BIAS_KEYS.iter()).map(|s| s.to_string()).collect();
    keys.push("stereoset.lms".into());
    let mut glue: Vec<String> = results.iter().flat_map(|r| r.metrics.keys()).filter(|k| k.starts_with("glue.")).cloned().collect();
    glue.sort();
    glue.dedup();
    keys.extend(glue);
    keys.retain(|k| results.iter().any(|r| r.metrics.contains_key(k)));
    keys
}

fn values(cells: &[&CellResult], key: &str) -> Vec<f64> {
    cells.iter().filter_map(|r| r.metrics.get(key).copied()).filter(|v| v.is_finite()).collect()
}

fn cell(v: &[f64], digits: usize) -> String {
    match v.len() {
        0 => "—".into(),
        1 => format!("{:.digits$}", v[0]),
        _ => format!("{:.digits$} ± {:.digits$}", stats::mean(v), stats::std(v)),
    }
}

fn digits(key: &str) -> usize {
    if key.starts_with("nc.") || key.starts_with("seat.") || key.starts_with("glue.") { 4 } else { 2 }
}

pub fn write(out: &Path, name: &str, config: &Path, results: &[CellResult], planned: usize) -> Result<()> {
    let ok: Vec<&CellResult> = results.iter().filter(|r| r.status == Status::Ok).collect();
    let keys = columns(results);
    let mut configs: Vec<(String, String, String)> = results.iter().map(CellResult::config).collect();
    configs.dedup();
    configs.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)).then(a.2.parse::<f64>().unwrap_or(0.0).total_cmp(&b.2.parse::<f64>().unwrap_or(0.0))));
    configs.dedup();

    let mut d = Document::new(format!("Experiment `{name}`"));
    let total_s: f64 = results.iter().map(|r| r.seconds).sum();
    d.para(format!(
        "Config `{}`; {} of {planned} cells run, {} failed; {:.0} min of cell time. Values are mean ± sample std over seeds.",
        config.display(),
        results.len(),
        results.len() - ok.len(),
        total_s / 60.0
    ));

    d.heading(1, "Every configuration");
    let mut header = vec!["model", "method", "λ", "seeds"];
    header.extend(keys.iter().map(String::as_str));
    let mut rows = Vec::new();
    let mut table_json = Vec::new();
    for c in &configs {
        let group: Vec<&CellResult> = ok.iter().copied().filter(|r| r.config() == *c).collect();
        let failed = results.iter().filter(|r| r.config() == *c && r.status != Status::Ok).count();
        let mut row = vec![c.0.clone(), c.1.clone(), c.2.clone(), format!("{}{}", group.len(), if failed > 0 { format!(" ({failed} failed)") } else { String::new() })];
        let mut entry = serde_json::json!({"model": c.0, "method": c.1, "lambda": c.2, "seeds": group.len(), "failed": failed});
        for k in &keys {
            let v = values(&group, k);
            row.push(cell(&v, digits(k)));
            entry[k] = serde_json::json!({"mean": stats::mean(&v), "std": stats::std(&v), "n": v.len()});
        }
        rows.push(row);
        table_json.push(entry);
    }
    d.table(&header, rows);

    d.heading(1, "What the NC3 regularizer changes");
    d.para(format!(
        "Δ = mean(λ) − mean(λ = 0) of the same model and method. Cells with the same seed see the same data in the same order, so where every seed has both sides Δ is the mean of the per-seed differences and its 95% interval bootstraps those differences ({BOOTSTRAP} resamples); otherwise each side's seeds are resampled. An interval that excludes 0 is a change outside the seed noise."
    ));
    let mut rows = Vec::new();
    let mut deltas_json = Vec::new();
    for c in configs.iter().filter(|c| c.2 != "0") {
        let base: Vec<&CellResult> = ok.iter().copied().filter(|r| r.model == c.0 && r.method == c.1 && r.lambda == 0.0).collect();
        let with: Vec<&CellResult> = ok.iter().copied().filter(|r| r.config() == *c).collect();
        if base.is_empty() || with.is_empty() {
            continue;
        }
        for k in &keys {
            let (a, b) = (values(&with, k), values(&base, k));
            if a.is_empty() || b.is_empty() {
                continue;
            }
            // Cells of one seed share data order and masking: compare them pairwise when every
            // seed has both sides, else compare the two groups.
            let paired: Vec<f64> = with
                .iter()
                .filter_map(|w| {
                    let b = base.iter().find(|b| b.seed == w.seed)?;
                    Some(w.metrics.get(k)? - b.metrics.get(k)?)
                })
                .filter(|v| v.is_finite())
                .collect();
            let (delta, (lo, hi), how) = if paired.len() >= 2 && paired.len() == a.len() && paired.len() == b.len() {
                let ci = stats::bootstrap_ci(paired.len(), BOOTSTRAP, 0.95, 0xD1FF, |idx| stats::mean(&idx.iter().map(|&i| paired[i]).collect::<Vec<_>>()));
                (stats::mean(&paired), ci, format!("paired, {} seeds", paired.len()))
            } else {
                (stats::mean(&a) - stats::mean(&b), stats::bootstrap_mean_diff_ci(&a, &b, BOOTSTRAP, 0.95, 0xD1FF), format!("unpaired, {} vs {}", a.len(), b.len()))
            };
            let outside = lo > 0.0 || hi < 0.0;
            rows.push(vec![c.0.clone(), c.1.clone(), c.2.clone(), k.clone(), format!("{delta:+.4}"), format!("[{lo:+.4}, {hi:+.4}]"), how.clone(), if outside { "yes".into() } else { "no".into() }]);
            deltas_json.push(serde_json::json!({"model": c.0, "method": c.1, "lambda": c.2, "metric": k, "delta": delta, "ci95": [lo, hi], "comparison": how, "outside_noise": outside}));
        }
    }
    if rows.is_empty() {
        d.para("No method has both λ = 0 and λ > 0 cells finished yet.");
    } else {
        d.table(&["model", "method", "λ", "metric", "Δ vs λ = 0", "95% CI", "comparison", "outside noise"], rows);
    }

    d.heading(1, "Do NC metrics track fairness?");
    d.para(format!("Across all finished cells (n = {}): correlation of each NC metric with each bias score; 95% bootstrap intervals over cells.", ok.len()));
    let mut rows = Vec::new();
    let mut corr_json = Vec::new();
    let methods: Vec<String> = {
        let mut m: Vec<String> = ok.iter().map(|r| format!("{} λ={}", r.method, lambda_label(r.lambda))).collect();
        m.sort();
        m.dedup();
        m
    };
    for x in NC_KEYS {
        for y in BIAS_KEYS {
            let pairs: Vec<(f64, f64, usize)> = ok
                .iter()
                .filter_map(|r| {
                    let g = methods.iter().position(|m| *m == format!("{} λ={}", r.method, lambda_label(r.lambda)))?;
                    Some((*r.metrics.get(x)?, *r.metrics.get(y)?, g))
                })
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .collect();
            if pairs.len() < 3 {
                continue;
            }
            let (xs, ys): (Vec<f64>, Vec<f64>) = pairs.iter().map(|p| (p.0, p.1)).unzip();
            let p = stats::pearson(&xs, &ys);
            let s = stats::spearman(&xs, &ys);
            let sub = |idx: &[usize], f: fn(&[f64], &[f64]) -> f64| f(&idx.iter().map(|&i| xs[i]).collect::<Vec<_>>(), &idx.iter().map(|&i| ys[i]).collect::<Vec<_>>());
            let pci = stats::bootstrap_ci(xs.len(), BOOTSTRAP, 0.95, 7, |idx| sub(idx, stats::pearson));
            let sci = stats::bootstrap_ci(xs.len(), BOOTSTRAP, 0.95, 8, |idx| sub(idx, stats::spearman));
            let stem = format!("scatter_{}_{}", x.replace('.', "-"), y.replace('.', "-"));
            crate::report::plot::scatter_plot(&out.join(&stem), &format!("{y} vs {x} (Pearson {p:.2}, Spearman {s:.2})"), x, y, &pairs, &methods)?;
            rows.push(vec![x.to_string(), y.to_string(), xs.len().to_string(), format!("{p:+.3} [{:+.2}, {:+.2}]", pci.0, pci.1), format!("{s:+.3} [{:+.2}, {:+.2}]", sci.0, sci.1), format!("`{stem}.png`")]);
            corr_json.push(serde_json::json!({"nc": x, "bias": y, "n": xs.len(), "pearson": p, "pearson_ci95": [pci.0, pci.1], "spearman": s, "spearman_ci95": [sci.0, sci.1]}));
        }
    }
    if rows.is_empty() {
        d.para("Fewer than three finished cells: no correlations yet.");
    } else {
        d.table(&["NC metric", "bias score", "cells", "Pearson [95% CI]", "Spearman [95% CI]", "plot"], rows);
        if let Some(first) = corr_json.first() {
            d.plot(format!("scatter_{}_{}", first["nc"].as_str().unwrap_or("").replace('.', "-"), first["bias"].as_str().unwrap_or("").replace('.', "-")), "the first pair; every pair has its own plot");
        }
    }
    let failed: Vec<String> = results.iter().filter(|r| r.status != Status::Ok).map(|r| format!("{} {} λ={} seed {}: {}", r.model, r.method, lambda_label(r.lambda), r.seed, r.error.clone().unwrap_or_default())).collect();
    if !failed.is_empty() {
        d.heading(1, "Failed cells");
        d.list(failed);
    }
    d.write(out, "summary")?;
    let json = serde_json::json!({"name": name, "config": config.display().to_string(), "planned": planned, "cells": results, "table": table_json, "deltas": deltas_json, "correlations": corr_json});
    crate::util::fs::write_atomic(&out.join("summary.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["model".to_string(), "method".into(), "lambda".into(), "seed".into(), "status".into(), "seconds".into()];
    header.extend(keys.iter().cloned());
    w.write_record(&header)?;
    for r in results {
        let mut row = vec![r.model.clone(), r.method.clone(), lambda_label(r.lambda), r.seed.to_string(), format!("{:?}", r.status).to_lowercase(), format!("{:.1}", r.seconds)];
        row.extend(keys.iter().map(|k| r.metrics.get(k).map(|v| v.to_string()).unwrap_or_default()));
        w.write_record(&row)?;
    }
    crate::util::fs::write_atomic(&out.join("cells.csv"), &w.into_inner()?)
}
