//! The experiment summary: every configuration's mean ± std over seeds, the change each λ makes
//! against λ = 0 of the same method (paired by seed: mean, std, n, t-interval, exact sign-flip
//! p; METHOD §12), and the correlation of each NC metric with each bias score across cells
//! (Pearson and Spearman with n and a permutation p), as tables, `summary.json`, `cells.csv`
//! and scatter plots.

use super::document::Document;
use crate::experiment::cell::{Cell, CellResult, Status, lambda_label};
use crate::util::stats;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;

/// NC metrics (x of the correlations) and bias scores (y), by `part.metric` key.
pub const NC_KEYS: [&str; 3] = ["nc.duality_std", "nc.duality_mean", "nc.cdnv"];
pub const BIAS_KEYS: [&str; 4] =
    ["seat.avg_abs_effect_gender", "crows.gender", "stereoset.ss_gender", "stereoset.icat"];
const BOOTSTRAP: usize = 2000;
/// Below this many values a percentile bootstrap is little more than [min, max] (METHOD §12).
pub const BOOTSTRAP_MIN_N: usize = 10;
/// The level at which a permutation p counts as significant.
pub const ALPHA: f64 = 0.05;

/// λ against λ = 0 of one metric, paired by seed (METHOD §12).
#[derive(Debug, Clone, PartialEq)]
pub struct PairedDelta {
    /// Seeds with both sides finished and finite.
    pub n: usize,
    /// Seeds finished on one side only (left out of every statistic).
    pub without_partner: usize,
    pub mean: f64,
    pub std: f64,
    pub t_ci: (f64, f64),
    pub test: stats::PermutationP,
    /// The smallest p the sign-flip test can reach with n pairs.
    pub min_p: f64,
    /// Only where n ≥ `BOOTSTRAP_MIN_N`.
    pub bootstrap: Option<(f64, f64)>,
}

/// The per-seed differences `with − base` of `key` and their statistics; None when no seed has both.
pub fn paired_delta(with: &[&CellResult], base: &[&CellResult], key: &str) -> Option<PairedDelta> {
    let finite = |r: &CellResult| r.metrics.get(key).copied().filter(|v| v.is_finite());
    let mut diffs = Vec::new();
    let mut without_partner = 0;
    for w in with.iter().filter(|w| finite(w).is_some()) {
        match base.iter().find(|b| b.seed == w.seed).and_then(|b| finite(b)) {
            Some(b) => diffs.push(finite(w)? - b),
            None => without_partner += 1,
        }
    }
    without_partner += base
        .iter()
        .filter(|b| finite(b).is_some() && !with.iter().any(|w| w.seed == b.seed && finite(w).is_some()))
        .count();
    if diffs.is_empty() {
        return None;
    }
    let n = diffs.len();
    let bootstrap = (n >= BOOTSTRAP_MIN_N).then(|| {
        stats::bootstrap_ci(n, BOOTSTRAP, 0.95, 0xD1FF, |idx| {
            stats::mean(&idx.iter().map(|&i| diffs[i]).collect::<Vec<_>>())
        })
    });
    Some(PairedDelta {
        n,
        without_partner,
        mean: stats::mean(&diffs),
        std: stats::std(&diffs),
        t_ci: stats::t_interval(&diffs, 0.95),
        test: stats::sign_flip_p(&diffs, 0xD1FF),
        min_p: stats::sign_flip_min_p(n),
        bootstrap,
    })
}

impl PairedDelta {
    /// Whether the sign-flip test rejects at `ALPHA`: never where n is too small for it to
    /// (whatever the t-interval, which leans on normality, says).
    pub fn significant(&self) -> bool {
        self.min_p <= ALPHA && self.test.p <= ALPHA
    }
}

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
    items.collect::<std::collections::BTreeSet<_>>().len()
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

pub fn write(out: &Path, name: &str, config: &Path, results: &[CellResult], planned: usize) -> Result<()> {
    let ok: Vec<&CellResult> = results.iter().filter(|r| r.status == Status::Ok).collect();
    let keys = columns(results);
    let mut configs: Vec<(String, String, String)> = results.iter().map(CellResult::config).collect();
    configs.dedup();
    configs.sort_by(|a, b| {
        (&a.0, &a.1)
            .cmp(&(&b.0, &b.1))
            .then(a.2.parse::<f64>().unwrap_or(0.0).total_cmp(&b.2.parse::<f64>().unwrap_or(0.0)))
    });
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
        let mut row = vec![
            c.0.clone(),
            c.1.clone(),
            c.2.clone(),
            format!("{}{}", group.len(), if failed > 0 { format!(" ({failed} failed)") } else { String::new() }),
        ];
        let mut entry =
            serde_json::json!({"model": c.0, "method": c.1, "lambda": c.2, "seeds": group.len(), "failed": failed});
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
    let mut rows = Vec::new();
    let mut deltas_json = Vec::new();
    let mut untestable_n = std::collections::BTreeSet::new();
    let mut any_bootstrap = false;
    for c in configs.iter().filter(|c| c.2 != "0") {
        let base: Vec<&CellResult> =
            ok.iter().copied().filter(|r| r.model == c.0 && r.method == c.1 && r.lambda == 0.0).collect();
        let with: Vec<&CellResult> = ok.iter().copied().filter(|r| r.config() == *c).collect();
        for k in &keys {
            let Some(d) = paired_delta(&with, &base, k) else { continue };
            let significance = if d.min_p > ALPHA {
                untestable_n.insert(d.n);
                format!("cannot be (n = {})", d.n)
            } else if d.significant() {
                "**yes**".into()
            } else {
                "no".into()
            };
            let mut row = vec![
                c.0.clone(),
                c.1.clone(),
                c.2.clone(),
                k.clone(),
                d.n.to_string(),
                format!("{:+.4}", d.mean),
                sd(d.std),
                interval(d.t_ci),
                super::p_value(d.test.p),
                significance,
            ];
            if let Some(b) = d.bootstrap {
                any_bootstrap = true;
                row.push(interval(b));
            } else {
                row.push("—".into());
            }
            if d.without_partner > 0 {
                row[4] = format!("{} ({} without a partner)", d.n, d.without_partner);
            }
            rows.push(row);
            deltas_json.push(serde_json::json!({
                "model": c.0, "method": c.1, "lambda": c.2, "metric": k, "n": d.n, "seeds_without_partner": d.without_partner,
                "mean": d.mean, "std": d.std, "t_ci95": [d.t_ci.0, d.t_ci.1],
                "sign_flip_p": d.test.p, "sign_flip_exact": d.test.exact, "sign_flip_assignments": d.test.assignments, "smallest_attainable_p": d.min_p,
                "significant": d.significant(),
                "bootstrap_ci95": d.bootstrap.map(|b| [b.0, b.1]),
            }));
        }
    }
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
    d.para(about);
    if rows.is_empty() {
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
            rows,
        );
    }

    d.heading(1, "Do NC metrics track fairness?");
    d.para(format!(
        "Across the finished cells: Pearson's r and Spearman's ρ of each NC metric with each bias score, with n and a two-sided permutation p (all n! orders up to n = {}, else {} seeded random orders, p = (k + 1) / (B + 1)); bootstrap intervals over cells only where n ≥ {BOOTSTRAP_MIN_N}. The cells are not independent: cells that share a seed share data order, and cells of one base model share its starting point (the `none` cells of a model are one model audited several times), so the p-values assume an exchangeability the grid does not have; read them as descriptive.",
        stats::PERMUTATION_EXACT_MAX,
        stats::RANDOM_PERMUTATIONS
    ));
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
            let used: Vec<&CellResult> = ok
                .iter()
                .copied()
                .filter(|r| {
                    r.metrics.get(x).is_some_and(|v| v.is_finite()) && r.metrics.get(y).is_some_and(|v| v.is_finite())
                })
                .collect();
            if used.len() < 3 {
                continue;
            }
            let pairs: Vec<(f64, f64, usize)> = used
                .iter()
                .map(|r| {
                    (
                        r.metrics[x],
                        r.metrics[y],
                        methods
                            .iter()
                            .position(|m| *m == format!("{} λ={}", r.method, lambda_label(r.lambda)))
                            .unwrap_or(0),
                    )
                })
                .collect();
            let (xs, ys): (Vec<f64>, Vec<f64>) = pairs.iter().map(|p| (p.0, p.1)).unzip();
            let p = stats::pearson(&xs, &ys);
            let s = stats::spearman(&xs, &ys);
            let pp = stats::pearson_permutation_p(&xs, &ys, 7);
            let sp = stats::spearman_permutation_p(&xs, &ys, 8);
            let n = xs.len();
            let (ci_p, ci_s) = if n >= BOOTSTRAP_MIN_N {
                let sub = |idx: &[usize], f: fn(&[f64], &[f64]) -> f64| {
                    f(&idx.iter().map(|&i| xs[i]).collect::<Vec<_>>(), &idx.iter().map(|&i| ys[i]).collect::<Vec<_>>())
                };
                (
                    Some(stats::bootstrap_ci(n, BOOTSTRAP, 0.95, 7, |idx| sub(idx, stats::pearson))),
                    Some(stats::bootstrap_ci(n, BOOTSTRAP, 0.95, 8, |idx| sub(idx, stats::spearman))),
                )
            } else {
                (None, None)
            };
            let seeds = distinct(used.iter().map(|r| r.seed.to_string()));
            let models = distinct(used.iter().map(|r| r.model.clone()));
            let dependence = format!(
                "{n} cells share {seeds} seed{} and {models} base model{}",
                if seeds == 1 { "" } else { "s" },
                if models == 1 { "" } else { "s" }
            );
            let how = if !p.is_finite() {
                "none: a value is constant across the cells".to_string()
            } else if pp.exact {
                format!("exact, {} orders", pp.assignments)
            } else {
                format!("{} random orders", pp.assignments)
            };
            let r2 = |v: f64| if v.is_finite() { format!("{v:.2}") } else { "undefined".to_string() };
            let stem = format!("scatter_{}_{}", x.replace('.', "-"), y.replace('.', "-"));
            crate::report::plot::scatter_plot(
                &out.join(&stem),
                &format!("{y} vs {x} (Pearson {}, Spearman {}; n = {n})", r2(p), r2(s)),
                x,
                y,
                &pairs,
                &methods,
            )?;
            // An undefined correlation (a constant score across the cells) shows as —, never NaN.
            let with_ci = |r: f64, ci: Option<(f64, f64)>| match ci {
                _ if !r.is_finite() => "—".to_string(),
                Some(ci) => format!("{r:+.3} {}", interval3(ci)),
                None => format!("{r:+.3}"),
            };
            rows.push(vec![
                x.to_string(),
                y.to_string(),
                n.to_string(),
                with_ci(p, ci_p),
                super::p_value(pp.p),
                with_ci(s, ci_s),
                super::p_value(sp.p),
                how,
                dependence.clone(),
                format!("`{stem}.png`"),
            ]);
            corr_json.push(serde_json::json!({
                "nc": x, "bias": y, "n": n, "seeds": seeds, "models": models, "independent": false, "dependence": dependence,
                "pearson": p, "pearson_p": pp.p, "spearman": s, "spearman_p": sp.p, "permutation_exact": pp.exact, "permutations": pp.assignments,
                "pearson_ci95": ci_p.map(|c| [c.0, c.1]), "spearman_ci95": ci_s.map(|c| [c.0, c.1]),
            }));
        }
    }
    if rows.is_empty() {
        d.para("Fewer than three finished cells: no correlations yet.");
    } else {
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
            rows,
        );
        if let Some(first) = corr_json.first() {
            d.plot(
                format!(
                    "scatter_{}_{}",
                    first["nc"].as_str().unwrap_or("").replace('.', "-"),
                    first["bias"].as_str().unwrap_or("").replace('.', "-")
                ),
                "the first pair; every pair has its own plot",
            );
        }
    }
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
    d.write(out, "summary")?;
    let json = serde_json::json!({"name": name, "config": config.display().to_string(), "planned": planned, "cells": results, "table": table_json, "deltas": deltas_json, "correlations": corr_json});
    crate::util::fs::write_atomic(&out.join("summary.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
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

    fn cell(lambda: f64, seed: u64, v: f64) -> CellResult {
        CellResult::ok(
            &Cell { model: "m".into(), method: "cda".into(), lambda, seed },
            [("x".to_string(), v)].into(),
            1.0,
        )
    }

    #[test]
    fn deltas_pair_by_seed_and_three_seeds_are_never_significant() {
        // Seeds 0–2 on both sides (differences 1.0, 1.1, 0.9), seed 3 only with λ > 0.
        let base = [cell(0.0, 0, 5.0), cell(0.0, 1, 6.0), cell(0.0, 2, 7.0)];
        let with = [cell(10.0, 2, 7.9), cell(10.0, 0, 6.0), cell(10.0, 1, 7.1), cell(10.0, 3, 100.0)];
        let d = paired_delta(&with.iter().collect::<Vec<_>>(), &base.iter().collect::<Vec<_>>(), "x").unwrap();
        assert_eq!((d.n, d.without_partner), (3, 1));
        assert!((d.mean - 1.0).abs() < 1e-12 && (d.std - 0.1).abs() < 1e-12, "{d:?}");
        // mean ± t(0.975; 2) · 0.1 / √3 with t(0.975; 2) = 0.95 / √(2 · 0.975 · 0.025).
        let half = 0.95 / (2.0f64 * 0.975 * 0.025).sqrt() * 0.1 / 3f64.sqrt();
        assert!((d.t_ci.0 - (1.0 - half)).abs() < 1e-9 && (d.t_ci.1 - (1.0 + half)).abs() < 1e-9, "{d:?}");
        // The t-interval excludes 0, yet only 2 of the 8 sign assignments can be as extreme.
        assert!(d.t_ci.0 > 0.0);
        assert_eq!((d.test.p, d.min_p, d.bootstrap), (0.25, 0.25, None));
        assert!(!d.significant());
        // Six seeds that agree reach p = 2/64 < 0.05; ten get a bootstrap interval too.
        let base: Vec<CellResult> = (0..10).map(|s| cell(0.0, s, 1.0)).collect();
        let with: Vec<CellResult> = (0..10).map(|s| cell(10.0, s, 2.0 + s as f64 / 100.0)).collect();
        let six =
            paired_delta(&with[..6].iter().collect::<Vec<_>>(), &base[..6].iter().collect::<Vec<_>>(), "x").unwrap();
        assert_eq!((six.n, six.test.p, six.bootstrap), (6, 0.03125, None));
        assert!(six.significant());
        let ten = paired_delta(&with.iter().collect::<Vec<_>>(), &base.iter().collect::<Vec<_>>(), "x").unwrap();
        let (lo, hi) = ten.bootstrap.expect("n = 10 bootstraps");
        assert!(lo >= 1.0 && hi <= 1.09 && lo <= ten.mean && ten.mean <= hi, "{lo} {hi}");
        assert!(
            paired_delta(&with[..1].iter().collect::<Vec<_>>(), &base[5..].iter().collect::<Vec<_>>(), "x").is_none(),
            "no common seed"
        );
    }

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
