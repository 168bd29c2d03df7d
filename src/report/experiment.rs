//! The experiment summary: every configuration's mean ± std over seeds, the change each λ makes
//! against λ = 0 of the same method (paired by seed: mean, std, n, t-interval, exact sign-flip
//! p; METHOD §12), and the correlation of each NC metric with each bias score across cells
//! (Pearson and Spearman with n and a permutation p), as tables, `summary.json`, `cells.csv`
//! and scatter plots.

use super::document::Document;
pub use super::experiment_stats::{ALPHA, BOOTSTRAP_MIN_N, PairedDelta, paired_delta};
use super::experiment_stats::{BOOTSTRAP, Correlation, correlation};
use crate::experiment::cell::{Cell, CellResult, Status, lambda_label};
use crate::util::stats;
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// NC metrics (x of the correlations) and bias scores (y), by `part.metric` key.
pub const NC_KEYS: [&str; 3] = ["nc.duality_std", "nc.duality_mean", "nc.cdnv"];
pub const BIAS_KEYS: [&str; 4] =
    ["seat.avg_abs_effect_gender", "crows.gender", "stereoset.ss_gender", "stereoset.icat"];

fn sd(v: f64) -> String {
    if v.is_finite() { format!("{v:.4}") } else { "—".into() }
}

fn interval(ci: (f64, f64)) -> String {
    if ci.0.is_finite() && ci.1.is_finite() { format!("[{:+.4}, {:+.4}]", ci.0, ci.1) } else { "—".into() }
}

fn interval3(ci: (f64, f64)) -> String {
    if ci.0.is_finite() && ci.1.is_finite() { format!("[{:+.2}, {:+.2}]", ci.0, ci.1) } else { "[—]".into() }
}

fn distinct(items: impl Iterator<Item = String>) -> usize {
    items.collect::<BTreeSet<_>>().len()
}

/// Columns of the main table: NC, bias, LM quality and GLUE metrics present in any cell.
fn columns(results: &[CellResult]) -> Vec<String> {
    let mut keys: Vec<String> = NC_KEYS.iter().chain(BIAS_KEYS.iter()).map(|s| s.to_string()).collect();
    keys.push("stereoset.lms".into());
    let mut glue: Vec<String> =
        results.iter().flat_map(|r| r.metrics.keys()).filter(|k| k.starts_with("glue.")).cloned().collect();
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

/// A configuration of the grid, as `CellResult::config` names it: model, method and λ label.
type Configuration = (String, String, String);

/// Writes the summary of `results` into `out`: `summary.md`, `.html` and `.json`, one scatter
/// plot per correlation, and `cells.csv` (which `read_cells_csv` reads back).
pub fn write(out: &Path, name: &str, config: &Path, results: &[CellResult], planned: usize) -> Result<()> {
    let ok: Vec<&CellResult> = results.iter().filter(|r| r.status == Status::Ok).collect();
    let keys = columns(results);
    let configs = configurations(results);
    let mut d = Document::new(format!("Experiment `{name}`"));
    d.para(overview(config, results, ok.len(), planned));
    let table = every_configuration(&mut d, results, &ok, &configs, &keys);
    let deltas = regularizer_changes(&mut d, &ok, &configs, &keys);
    let correlations = nc_bias_correlations(&mut d, out, &ok)?;
    failed_cells(&mut d, results);
    d.write(out, "summary")?;
    let json = serde_json::json!({"name": name, "config": config.display().to_string(), "planned": planned, "cells": results, "table": table, "deltas": deltas, "correlations": correlations});
    crate::util::fs::write_atomic(&out.join("summary.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    write_cells_csv(out, results, &keys)
}

/// Every configuration once, by model and method, then λ as a number (so 10 comes before 100).
fn configurations(results: &[CellResult]) -> Vec<Configuration> {
    let mut configs: Vec<Configuration> = results.iter().map(CellResult::config).collect();
    configs.dedup();
    configs.sort_by(|a, b| {
        (&a.0, &a.1)
            .cmp(&(&b.0, &b.1))
            .then(a.2.parse::<f64>().unwrap_or(0.0).total_cmp(&b.2.parse::<f64>().unwrap_or(0.0)))
    });
    configs.dedup();
    configs
}

fn overview(config: &Path, results: &[CellResult], finished: usize, planned: usize) -> String {
    let total_s: f64 = results.iter().map(|r| r.seconds).sum();
    format!(
        "Config `{}`; {} of {planned} cells run, {} failed; {:.0} min of cell time. Values are mean ± sample std over seeds.",
        config.display(),
        results.len(),
        results.len() - finished,
        total_s / 60.0
    )
}

/// The "Every configuration" section: each configuration's mean ± std over its finished seeds.
/// Returns the same numbers for `summary.json`.
fn every_configuration(
    d: &mut Document,
    results: &[CellResult],
    ok: &[&CellResult],
    configs: &[Configuration],
    keys: &[String],
) -> Vec<serde_json::Value> {
    d.heading(1, "Every configuration");
    let mut header = vec!["model", "method", "λ", "seeds"];
    header.extend(keys.iter().map(String::as_str));
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for c in configs {
        let group: Vec<&CellResult> = ok.iter().copied().filter(|r| r.config() == *c).collect();
        let failed = results.iter().filter(|r| r.config() == *c && r.status != Status::Ok).count();
        let mut row = vec![
            c.0.clone(),
            c.1.clone(),
            c.2.clone(),
            format!("{}{}", group.len(), if failed > 0 { format!(" ({failed} failed)") } else { String::new() }),
        ];
        let mut entry =
            serde_json::json!({"model": c.0, "method": c.1, "lambda": c.2, "seeds": group.len(), "failed": failed});
        for k in keys {
            let v = values(&group, k);
            row.push(cell(&v, digits(k)));
            entry[k] = serde_json::json!({"mean": stats::mean(&v), "std": stats::std(&v), "n": v.len()});
        }
        rows.push(row);
        json.push(entry);
    }
    d.table(&header, rows);
    json
}

/// One metric of a λ > 0 configuration against λ = 0 of the same model and method.
struct Change<'a> {
    config: &'a Configuration,
    metric: &'a str,
    delta: PairedDelta,
}

/// Every change that some seed finished on both sides, by configuration, then metric.
fn paired_changes<'a>(ok: &[&CellResult], configs: &'a [Configuration], keys: &'a [String]) -> Vec<Change<'a>> {
    let mut changes = Vec::new();
    for c in configs.iter().filter(|c| c.2 != "0") {
        let base: Vec<&CellResult> =
            ok.iter().copied().filter(|r| r.model == c.0 && r.method == c.1 && r.lambda == 0.0).collect();
        let with: Vec<&CellResult> = ok.iter().copied().filter(|r| r.config() == *c).collect();
        for k in keys {
            if let Some(delta) = paired_delta(&with, &base, k) {
                changes.push(Change { config: c, metric: k, delta });
            }
        }
    }
    changes
}

/// The "What the NC3 regularizer changes" section: the paired deltas. Returns them for
/// `summary.json`.
fn regularizer_changes(
    d: &mut Document,
    ok: &[&CellResult],
    configs: &[Configuration],
    keys: &[String],
) -> Vec<serde_json::Value> {
    d.heading(1, "What the NC3 regularizer changes");
    let changes = paired_changes(ok, configs, keys);
    d.para(how_changes_are_tested(&changes));
    if changes.is_empty() {
        d.para("No method has both λ = 0 and λ > 0 cells of a common seed finished yet.");
    } else {
        d.table(
            &[
                "model",
                "method",
                "λ",
                "metric",
                "n",
                "mean Δ",
                "std Δ",
                "95% t-interval",
                "sign-flip p",
                "significant",
                "bootstrap 95%",
            ],
            changes.iter().map(change_row).collect(),
        );
    }
    changes.iter().map(change_json).collect()
}

/// What Δ is and how it is tested, with the limits that apply to these changes: the seed
/// counts at which nothing can be significant, and whether any change was bootstrapped.
fn how_changes_are_tested(changes: &[Change]) -> String {
    let untestable_n: BTreeSet<usize> = changes.iter().filter(|c| c.delta.untestable()).map(|c| c.delta.n).collect();
    let any_bootstrap = changes.iter().any(|c| c.delta.bootstrap.is_some());
    let mut about = format!(
        "Δ = metric(λ) − metric(λ = 0) of the same model, method and seed (cells of one seed see the same data in the same order), over the n seeds that have both; mean Δ, its sample std, the Student-t 95% interval (it assumes normal differences) and the two-sided sign-flip permutation p over all 2ⁿ sign assignments of the n differences (exact up to n = {}; H0: each difference is as likely positive as negative). Significant means p ≤ {ALPHA}.",
        stats::SIGN_FLIP_EXACT_MAX
    );
    for n in &untestable_n {
        about.push_str(&format!(
            " n = {n}: the smallest attainable p is {}, so no difference can be significant.",
            stats::sign_flip_min_p(*n)
        ));
    }
    about.push_str(&format!(
        " Percentile bootstrap intervals ({BOOTSTRAP} resamples) only where n ≥ {BOOTSTRAP_MIN_N}{}.",
        if any_bootstrap { "" } else { ": none here" }
    ));
    about
}

fn change_row(change: &Change) -> Vec<String> {
    let (c, d) = (change.config, &change.delta);
    let n = if d.without_partner > 0 {
        format!("{} ({} without a partner)", d.n, d.without_partner)
    } else {
        d.n.to_string()
    };
    let significance = if d.untestable() {
        format!("cannot be (n = {})", d.n)
    } else if d.significant() {
        "**yes**".into()
    } else {
        "no".into()
    };
    vec![
        c.0.clone(),
        c.1.clone(),
        c.2.clone(),
        change.metric.to_string(),
        n,
        format!("{:+.4}", d.mean),
        sd(d.std),
        interval(d.t_ci),
        super::p_value(d.test.p),
        significance,
        d.bootstrap.map(interval).unwrap_or_else(|| "—".into()),
    ]
}

fn change_json(change: &Change) -> serde_json::Value {
    let (c, d) = (change.config, &change.delta);
    serde_json::json!({
        "model": c.0, "method": c.1, "lambda": c.2, "metric": change.metric, "n": d.n, "seeds_without_partner": d.without_partner,
        "mean": d.mean, "std": d.std, "t_ci95": [d.t_ci.0, d.t_ci.1],
        "sign_flip_p": d.test.p, "sign_flip_exact": d.test.exact, "sign_flip_assignments": d.test.assignments, "smallest_attainable_p": d.min_p,
        "significant": d.significant(),
        "bootstrap_ci95": d.bootstrap.map(|b| [b.0, b.1]),
    })
}

/// One NC metric against one bias score across the finished cells that have both.
struct Pairing {
    nc: &'static str,
    bias: &'static str,
    /// (nc, bias, index into the scatter legend) per cell.
    points: Vec<(f64, f64, usize)>,
    stats: Correlation,
    /// Distinct seeds and base models among the cells: why they are not independent.
    seeds: usize,
    models: usize,
}

impl Pairing {
    fn dependence(&self) -> String {
        format!(
            "{} cells share {} seed{} and {} base model{}",
            self.stats.n,
            self.seeds,
            if self.seeds == 1 { "" } else { "s" },
            self.models,
            if self.models == 1 { "" } else { "s" }
        )
    }

    /// The scatter plot's file stem, without extension.
    fn stem(&self) -> String {
        format!("scatter_{}_{}", self.nc.replace('.', "-"), self.bias.replace('.', "-"))
    }
}

/// Method and λ of a cell as the scatter plots' legend names it.
fn legend_label(r: &CellResult) -> String {
    format!("{} λ={}", r.method, lambda_label(r.lambda))
}

/// None under three cells, where a correlation says nothing.
fn pairing(ok: &[&CellResult], legend: &[String], nc: &'static str, bias: &'static str) -> Option<Pairing> {
    let finite = |r: &CellResult, k: &str| r.metrics.get(k).is_some_and(|v| v.is_finite());
    let used: Vec<&CellResult> = ok.iter().copied().filter(|r| finite(r, nc) && finite(r, bias)).collect();
    if used.len() < 3 {
        return None;
    }
    let points: Vec<(f64, f64, usize)> = used
        .iter()
        .map(|r| {
            let label = legend_label(r);
            (r.metrics[nc], r.metrics[bias], legend.iter().position(|m| *m == label).unwrap_or(0))
        })
        .collect();
    let (xs, ys): (Vec<f64>, Vec<f64>) = points.iter().map(|p| (p.0, p.1)).unzip();
    Some(Pairing {
        nc,
        bias,
        stats: correlation(&xs, &ys),
        points,
        seeds: distinct(used.iter().map(|r| r.seed.to_string())),
        models: distinct(used.iter().map(|r| r.model.clone())),
    })
}

fn write_scatter(out: &Path, p: &Pairing, legend: &[String]) -> Result<()> {
    let r2 = |v: f64| if v.is_finite() { format!("{v:.2}") } else { "undefined".to_string() };
    crate::report::plot::scatter_plot(
        &out.join(p.stem()),
        &format!(
            "{} vs {} (Pearson {}, Spearman {}; n = {})",
            p.bias,
            p.nc,
            r2(p.stats.pearson),
            r2(p.stats.spearman),
            p.stats.n
        ),
        p.nc,
        p.bias,
        &p.points,
        legend,
    )
}

fn correlation_row(p: &Pairing) -> Vec<String> {
    let c = &p.stats;
    let how = if !c.pearson.is_finite() {
        "none: a value is constant across the cells".to_string()
    } else if c.pearson_test.exact {
        format!("exact, {} orders", c.pearson_test.assignments)
    } else {
        format!("{} random orders", c.pearson_test.assignments)
    };
    // An undefined correlation (a constant score across the cells) shows as —, never NaN.
    let with_ci = |r: f64, ci: Option<(f64, f64)>| match ci {
        _ if !r.is_finite() => "—".to_string(),
        Some(ci) => format!("{r:+.3} {}", interval3(ci)),
        None => format!("{r:+.3}"),
    };
    vec![
        p.nc.to_string(),
        p.bias.to_string(),
        c.n.to_string(),
        with_ci(c.pearson, c.pearson_ci),
        super::p_value(c.pearson_test.p),
        with_ci(c.spearman, c.spearman_ci),
        super::p_value(c.spearman_test.p),
        how,
        p.dependence(),
        format!("`{}.png`", p.stem()),
    ]
}

fn correlation_json(p: &Pairing) -> serde_json::Value {
    let c = &p.stats;
    serde_json::json!({
        "nc": p.nc, "bias": p.bias, "n": c.n, "seeds": p.seeds, "models": p.models, "independent": false, "dependence": p.dependence(),
        "pearson": c.pearson, "pearson_p": c.pearson_test.p, "spearman": c.spearman, "spearman_p": c.spearman_test.p, "permutation_exact": c.pearson_test.exact, "permutations": c.pearson_test.assignments,
        "pearson_ci95": c.pearson_ci.map(|c| [c.0, c.1]), "spearman_ci95": c.spearman_ci.map(|c| [c.0, c.1]),
    })
}

/// The "Do NC metrics track fairness?" section and a scatter plot per pairing. Returns the
/// correlations for `summary.json`.
fn nc_bias_correlations(d: &mut Document, out: &Path, ok: &[&CellResult]) -> Result<Vec<serde_json::Value>> {
    d.heading(1, "Do NC metrics track fairness?");
    d.para(format!(
        "Across the finished cells: Pearson's r and Spearman's ρ of each NC metric with each bias score, with n and a two-sided permutation p (all n! orders up to n = {}, else {} seeded random orders, p = (k + 1) / (B + 1)); bootstrap intervals over cells only where n ≥ {BOOTSTRAP_MIN_N}. The cells are not independent: cells that share a seed share data order, and cells of one base model share its starting point (the `none` cells of a model are one model audited several times), so the p-values assume an exchangeability the grid does not have; read them as descriptive.",
        stats::PERMUTATION_EXACT_MAX,
        stats::RANDOM_PERMUTATIONS
    ));
    let mut legend: Vec<String> = ok.iter().map(|r| legend_label(r)).collect();
    legend.sort();
    legend.dedup();
    let mut pairings = Vec::new();
    for nc in NC_KEYS {
        for bias in BIAS_KEYS {
            if let Some(p) = pairing(ok, &legend, nc, bias) {
                write_scatter(out, &p, &legend)?;
                pairings.push(p);
            }
        }
    }
    if let Some(first) = pairings.first() {
        d.table(
            &[
                "NC metric",
                "bias score",
                "n",
                "Pearson r",
                "p",
                "Spearman ρ",
                "p",
                "permutation test",
                "not independent",
                "plot",
            ],
            pairings.iter().map(correlation_row).collect(),
        );
        d.plot(first.stem(), "the first pair; every pair has its own plot");
    } else {
        d.para("Fewer than three finished cells: no correlations yet.");
    }
    Ok(pairings.iter().map(correlation_json).collect())
}

fn failed_cells(d: &mut Document, results: &[CellResult]) {
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.status != Status::Ok)
        .map(|r| {
            format!(
                "{} {} λ={} seed {}: {}",
                r.model,
                r.method,
                lambda_label(r.lambda),
                r.seed,
                r.error.clone().unwrap_or_default()
            )
        })
        .collect();
    if !failed.is_empty() {
        d.heading(1, "Failed cells");
        d.list(failed);
    }
}

/// One row per cell: its settings, status, seconds and every column of the main table (an
/// empty field where the cell lacks the metric), at full precision so it reads back exactly.
fn write_cells_csv(out: &Path, results: &[CellResult], keys: &[String]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header =
        vec!["model".to_string(), "method".into(), "lambda".into(), "seed".into(), "status".into(), "seconds".into()];
    header.extend(keys.iter().cloned());
    w.write_record(&header)?;
    for r in results {
        let mut row = vec![
            r.model.clone(),
            r.method.clone(),
            lambda_label(r.lambda),
            r.seed.to_string(),
            format!("{:?}", r.status).to_lowercase(),
            format!("{:.1}", r.seconds),
        ];
        row.extend(keys.iter().map(|k| r.metrics.get(k).map(|v| v.to_string()).unwrap_or_default()));
        w.write_record(&row)?;
    }
    crate::util::fs::write_atomic(&out.join("cells.csv"), &w.into_inner()?)
}

/// Reads the per-cell numbers back from a `cells.csv` that `write` wrote (status, seconds and
/// every metric; an empty field is a metric the cell does not have, "NaN" an undefined one).
/// Failed cells come back without their error text, which the CSV does not keep.
pub fn read_cells_csv(path: &Path) -> Result<Vec<CellResult>> {
    use anyhow::{Context, bail};
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .with_context(|| format!("{}: no header", path.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    let fixed = ["model", "method", "lambda", "seed", "status", "seconds"];
    if header.len() < fixed.len() || header[..fixed.len()] != fixed {
        bail!("{}: not an experiment cells.csv (its header must begin {})", path.display(), fixed.join(","));
    }
    let mut results = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.with_context(|| format!("{}:{line}: unreadable row", path.display()))?;
        let number = |col: usize| -> Result<f64> {
            let v = row.get(col).unwrap_or("");
            v.parse::<f64>()
                .map_err(|_| anyhow::anyhow!("{}:{line}: {} \"{v}\" is not a number", path.display(), header[col]))
        };
        let lambda = number(2)?;
        let seed: u64 = row[3].parse().map_err(|_| {
            anyhow::anyhow!("{}:{line}: seed \"{}\" is not a non-negative integer", path.display(), &row[3])
        })?;
        let status = match &row[4] {
            "ok" => Status::Ok,
            "failed" => Status::Failed,
            other => bail!("{}:{line}: status \"{other}\" is neither ok nor failed", path.display()),
        };
        let mut metrics = BTreeMap::new();
        for (col, name) in header.iter().enumerate().skip(fixed.len()) {
            if !row.get(col).unwrap_or("").is_empty() {
                metrics.insert(name.clone(), number(col)?);
            }
        }
        let cell = Cell { model: row[0].to_string(), method: row[1].to_string(), lambda, seed };
        if results.iter().any(|r: &CellResult| {
            r.model == cell.model && r.method == cell.method && r.lambda == lambda && r.seed == seed
        }) {
            bail!("{}:{line}: cell {} appears twice", path.display(), cell.id());
        }
        let seconds = number(5)?;
        results.push(match status {
            Status::Ok => CellResult::ok(&cell, metrics, seconds),
            Status::Failed => {
                CellResult { metrics, ..CellResult::failed(&cell, "(cells.csv keeps no error text)".into(), seconds) }
            }
        });
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_csv_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let at = |lambda: f64, seed: u64, m: &[(&str, f64)]| {
            CellResult::ok(
                &Cell { model: "m".into(), method: "cda".into(), lambda, seed },
                m.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                1.0,
            )
        };
        let results = vec![
            at(0.0, 0, &[("nc.cdnv", 0.1 + 0.2), ("crows.gender", f64::NAN)]),
            at(10.0, 1, &[("nc.cdnv", 0.25)]),
            CellResult::failed(
                &Cell { model: "m".into(), method: "cda".into(), lambda: 10.0, seed: 2 },
                "boom".into(),
                3.0,
            ),
        ];
        write(tmp.path(), "t", Path::new("t.toml"), &results, 3).unwrap();
        let back = read_cells_csv(&tmp.path().join("cells.csv")).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(
            (back[0].metrics["nc.cdnv"], back[1].metrics["nc.cdnv"], back[1].lambda, back[2].status),
            (0.1 + 0.2, 0.25, 10.0, Status::Failed)
        );
        assert!(back[0].metrics["crows.gender"].is_nan() && !back[1].metrics.contains_key("crows.gender"));
        std::fs::write(tmp.path().join("bad.csv"), "model,method,lambda,seed,status,seconds,x\nm,cda,0,0,ok,1.0,abc\n")
            .unwrap();
        let e = read_cells_csv(&tmp.path().join("bad.csv")).unwrap_err().to_string();
        assert!(e.ends_with("bad.csv:2: x \"abc\" is not a number"), "{e}");
    }
}
