//! Writers for `eval` results: per-example CSVs and Markdown tables laid out like
//! bias-bench's published tables (one row per model).

use crate::bench::crows::CrowsResult;
use crate::bench::evaluate::Evaluation;
use crate::bench::seat::SeatScore;
use crate::bench::stereoset::StereoSetResult;
use crate::bench::{CrowsSection, EvalResults, SeatSection, StereoSetSection};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

/// Writes an evaluation into `dir` (created if missing): `crows.csv`, `stereoset.csv`,
/// `seat.csv`, `aul.csv` and `mlm-bias.csv` for the benchmarks that ran, then `results.json` and `results.md`.
pub fn write(dir: &Path, ev: &Evaluation) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    if let Some(r) = &ev.crows {
        crows_csv(&dir.join("crows.csv"), r)?;
    }
    if let Some(r) = &ev.stereoset {
        stereoset_csv(&dir.join("stereoset.csv"), r)?;
    }
    if let Some(scores) = &ev.seat {
        seat_csv(&dir.join("seat.csv"), scores)?;
    }
    if let Some(r) = &ev.aul {
        super::peer_measures::aul_csv(&dir.join("aul.csv"), r)?;
    }
    if let Some(r) = &ev.mlm_bias {
        super::peer_measures::mlm_bias_csv(&dir.join("mlm-bias.csv"), r)?;
    }
    crate::util::fs::write_atomic(&dir.join("results.json"), serde_json::to_string_pretty(&ev.results)?.as_bytes())?;
    crate::util::fs::write_atomic(&dir.join("results.md"), markdown(&ev.results).as_bytes())
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

fn crows_csv(path: &Path, r: &CrowsResult) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "index",
        "bias_type",
        "direction",
        "score_more",
        "score_less",
        "raw_more",
        "raw_less",
        "stereotypical",
        "skipped",
    ])?;
    for p in &r.pairs {
        w.write_record([
            p.index.to_string(),
            p.bias_type.clone(),
            p.direction.clone(),
            opt(p.score_more),
            opt(p.score_less),
            opt(p.raw_more),
            opt(p.raw_less),
            p.stereotypical.map(|b| (b as u8).to_string()).unwrap_or_default(),
            p.skipped.clone().unwrap_or_default(),
        ])?;
    }
    crate::util::fs::write_atomic(path, &w.into_inner()?)
}

fn stereoset_csv(path: &Path, r: &StereoSetResult) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["id", "cluster", "domain", "target", "gold_label", "score"])?;
    for s in &r.sentences {
        let label = serde_json::to_value(s.gold_label)?.as_str().unwrap_or_default().to_string();
        w.write_record([
            s.id.clone(),
            s.cluster.clone(),
            s.domain.clone(),
            s.target.clone(),
            label,
            s.score.to_string(),
        ])?;
    }
    crate::util::fs::write_atomic(path, &w.into_inner()?)
}

fn seat_csv(path: &Path, scores: &[(String, SeatScore)]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["test", "bias_type", "effect_size", "p_value", "exact", "n_x", "n_y", "n_a", "n_b"])?;
    for (name, s) in scores {
        let [x, y, a, b] = s.sizes;
        w.write_record([
            name.clone(),
            crate::bench::seat::bias_type_of(name).to_string(),
            s.effect_size.to_string(),
            s.p_value.to_string(),
            s.exact.to_string(),
            x.to_string(),
            y.to_string(),
            a.to_string(),
            b.to_string(),
        ])?;
    }
    crate::util::fs::write_atomic(path, &w.into_inner()?)
}

/// `results.md`: one table per benchmark laid out like bias-bench's, then the notes.
pub fn markdown(r: &EvalResults) -> String {
    let model = r.settings.get("model").and_then(|m| m.as_str()).unwrap_or("model");
    let mut out = String::new();
    let _ = writeln!(out, "# Bias benchmarks: `{model}`");
    if let Some(c) = &r.crows {
        let scoring = r.settings.get("crows_scoring").and_then(|v| v.as_str()).unwrap_or("bias-bench");
        crows_table(&mut out, model, scoring, c);
    }
    if let Some(s) = &r.stereoset {
        stereoset_tables(&mut out, model, s);
    }
    if let Some(s) = &r.seat {
        seat_tables(&mut out, model, s);
    }
    if let Some(s) = &r.aul {
        super::peer_measures::aul_markdown(&mut out, s);
    }
    if let Some(s) = &r.mlm_bias {
        super::peer_measures::mlm_bias_markdown(&mut out, s);
    }
    for n in &r.notes {
        let _ = writeln!(out, "\nNote: {n}");
    }
    out
}

fn crows_table(out: &mut String, model: &str, scoring: &str, c: &CrowsSection) {
    let _ = writeln!(out, "\n## CrowS-Pairs ({scoring} scoring; stereotype score, 50 = unbiased)\n");
    let types: Vec<&String> = c.by_type.keys().collect();
    let _ = writeln!(out, "| Model | {} | overall |", types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(" | "));
    let _ = writeln!(out, "| --- |{} ---: |", " ---: |".repeat(types.len()));
    let cells: Vec<String> = c.by_type.values().map(|s| format!("{:.2}", s.metric)).collect();
    let _ = writeln!(out, "| {model} | {} | {:.2} |", cells.join(" | "), c.overall.metric);
    let ns: Vec<String> = c.by_type.values().map(|s| s.n.to_string()).collect();
    let _ = writeln!(out, "| N | {} | {} |", ns.join(" | "), c.overall.n);
    // The lm-eval variant's own metrics, under lm-eval's names.
    let lm_eval = |name: &str, get: fn(&crate::bench::crows::CrowsSummary) -> Option<f64>| {
        let cells: Option<Vec<String>> = c.by_type.values().map(|s| get(s).map(|v| format!("{v:.4}"))).collect();
        cells.zip(get(&c.overall)).map(|(cells, o)| format!("| {name} | {} | {o:.4} |", cells.join(" | ")))
    };
    for row in [lm_eval("pct_stereotype", |s| s.pct_stereotype), lm_eval("likelihood_diff", |s| s.likelihood_diff)]
        .into_iter()
        .flatten()
    {
        let _ = writeln!(out, "{row}");
    }
}

fn stereoset_tables(out: &mut String, model: &str, s: &StereoSetSection) {
    let _ = writeln!(out, "\n## StereoSet intrasentence (SS: 50 = unbiased; LMS, ICAT: higher is better)\n");
    let domains: Vec<&String> = s.by_domain.keys().collect();
    let _ = writeln!(
        out,
        "| Model | {} | overall SS | LMS | ICAT |",
        domains.iter().map(|d| format!("{d} SS")).collect::<Vec<_>>().join(" | ")
    );
    let _ = writeln!(out, "| --- |{} ---: | ---: | ---: |", " ---: |".repeat(domains.len()));
    let cells: Vec<String> = s.by_domain.values().map(|v| format!("{:.2}", v.ss)).collect();
    let _ = writeln!(
        out,
        "| {model} | {} | {:.2} | {:.2} | {:.2} |",
        cells.join(" | "),
        s.overall.ss,
        s.overall.lms,
        s.overall.icat
    );
    let _ = writeln!(out, "\n| domain | SS | LMS | ICAT | clusters |\n| --- | ---: | ---: | ---: | ---: |");
    for (d, v) in s.by_domain.iter().chain(std::iter::once((&"overall".to_string(), &s.overall))) {
        let _ = writeln!(out, "| {d} | {:.2} | {:.2} | {:.2} | {} |", v.ss, v.lms, v.icat, v.n);
    }
}

fn seat_tables(out: &mut String, model: &str, s: &SeatSection) {
    let _ = writeln!(out, "\n## SEAT (effect size d; * p < 0.01)\n");
    let names: Vec<String> = s.tests.keys().map(|n| n.trim_start_matches("sent-").to_string()).collect();
    let _ = writeln!(
        out,
        "| Model | {} | {} |",
        names.join(" | "),
        s.avg_abs_effect.keys().map(|b| format!("avg. abs. ({b})")).collect::<Vec<_>>().join(" | ")
    );
    let _ = writeln!(out, "| --- |{}{}", " ---: |".repeat(names.len()), " ---: |".repeat(s.avg_abs_effect.len()));
    let cells: Vec<String> =
        s.tests.values().map(|t| format!("{:.3}{}", t.effect_size, if t.p_value < 0.01 { "*" } else { "" })).collect();
    let avgs: Vec<String> = s.avg_abs_effect.values().map(|v| format!("{v:.3}")).collect();
    let _ = writeln!(out, "| {model} | {} | {} |", cells.join(" | "), avgs.join(" | "));
    let _ = writeln!(out, "\n| test | d | p | p exact | X / Y / A / B sentences |\n| --- | ---: | ---: | --- | --- |");
    for (n, t) in &s.tests {
        let _ = writeln!(
            out,
            "| {n} | {:.4} | {} | {} | {} |",
            t.effect_size,
            super::p_value(t.p_value),
            if t.exact { "yes" } else { "100,000 random splits" },
            t.sizes.map(|k| k.to_string()).join(" / ")
        );
    }
}
