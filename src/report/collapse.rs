//! Writers for `collapse` results: JSON, per-class CSV, Markdown summary and the NC3 plot.

use super::plot::{Dot, dot_plot};
use crate::collapse::{CollapseResult, Metrics};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

pub fn fmt(x: Option<f64>) -> String {
    match x {
        Some(v) if v.abs() >= 1e4 || (v != 0.0 && v.abs() < 1e-3) => format!("{v:.3e}"),
        Some(v) => format!("{v:.4}"),
        None => "n/c".into(),
    }
}

pub fn write(dir: &Path, r: &CollapseResult) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    crate::util::fs::write_atomic(&dir.join("collapse.json"), serde_json::to_string_pretty(r)?.as_bytes())?;
    write_csv(&dir.join("classes.csv"), r)?;
    crate::util::fs::write_atomic(&dir.join("summary.md"), markdown(r).as_bytes())?;
    plot(dir, r)
}

fn write_csv(path: &Path, r: &CollapseResult) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["id", "token", "words", "groups", "n", "var", "s", "dist", "ncc_positions", "ncc_agree"])?;
    for c in &r.classes {
        let opt = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
        w.write_record([
            c.id.to_string(),
            c.token.clone(),
            c.words.join(" "),
            c.groups.join(" "),
            c.n.to_string(),
            c.var.to_string(),
            opt(c.s),
            opt(c.dist),
            c.ncc_positions.to_string(),
            c.ncc_agree.to_string(),
        ])?;
    }
    crate::util::fs::write_atomic(path, &w.into_inner()?)
}

/// The Markdown summary (`summary.md`, and what the command prints).
pub fn markdown(r: &CollapseResult) -> String {
    let mut out = String::new();
    write_heading(&mut out, r);
    write_metrics_table(&mut out, &r.metrics);
    write_groups_table(&mut out, r);
    write_footnotes(&mut out, r);
    out
}

fn write_heading(out: &mut String, r: &CollapseResult) {
    let s = &r.settings;
    let _ = writeln!(out, "# Neural collapse on `{}` words\n", s.words);
    let _ = writeln!(
        out,
        "Model `{}`, corpus `{}`, convention `{}` (target {:?}, features {:?}, policy {:?}, CDNV power {}).",
        s.model, s.corpus, s.convention, s.target, s.features, s.policy, s.metric.cdnv_power
    );
    let _ = writeln!(
        out,
        "{} classes measured (K), {} below min count {}; {} statistics positions, {} held-out positions.\n",
        r.counts.k, r.counts.classes_below_min_count, s.min_count, r.counts.positions_stats, r.counts.positions_heldout
    );
}

fn write_metrics_table(out: &mut String, m: &Metrics) {
    let _ = writeln!(out, "| metric | value | collapse means |\n| --- | ---: | --- |");
    for (name, v, goal) in [
        ("NC1 cdnv", m.cdnv, "→ 0"),
        ("NC2 equinorm_cov", m.equinorm_cov, "→ 0"),
        ("NC2 equiangular_mean", m.equiangular_mean, "→ −1/(K−1)"),
        ("NC2 equiangular_std", m.equiangular_std, "→ 0"),
        ("GNC2 logkernel_mean", m.logkernel_mean, ""),
        ("GNC2 logkernel_std", m.logkernel_std, "→ 0"),
        ("NC3 duality_mean", m.duality_mean, "→ 1"),
        ("NC3 duality_dist", m.duality_dist, "→ 0"),
        ("UNC3 duality_std", m.duality_std, "→ 0 (uniform alignment)"),
        ("UNC3 duality_cov", m.duality_cov, "→ 0"),
        ("NC4 ncc_agreement", m.ncc_agreement, "→ 1"),
    ] {
        let _ = writeln!(out, "| {name} | {} | {goal} |", fmt(v));
    }
}

fn write_groups_table(out: &mut String, r: &CollapseResult) {
    if r.groups.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n## By group\n\n| group | classes | positions | mean s_c | std s_c | mean ‖ŵ−û‖ | mean σ² |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for (g, v) in &r.groups {
        let _ = writeln!(
            out,
            "| {g} | {} | {} | {} | {} | {} | {} |",
            v.k,
            v.n,
            fmt(v.duality_mean),
            fmt(v.duality_std),
            fmt(v.duality_dist),
            fmt(v.mean_var)
        );
    }
}

/// Notes, skipped words, classes holding several words, and where the details are.
fn write_footnotes(out: &mut String, r: &CollapseResult) {
    for n in &r.notes {
        let _ = writeln!(out, "\nNote: {n}");
    }
    if !r.skipped.is_empty() {
        let words: Vec<String> = r.skipped.iter().take(30).map(|s| format!("{} ({})", s.word, s.reason)).collect();
        let _ = writeln!(
            out,
            "\n{} words skipped: {}{}",
            r.skipped.len(),
            words.join(", "),
            if r.skipped.len() > 30 { ", …" } else { "" }
        );
    }
    if !r.merged.is_empty() {
        let merged: Vec<String> = r.merged.iter().map(|m| format!("{} ← {}", m.token, m.words.join("/"))).collect();
        let _ = writeln!(out, "\nClasses holding several words: {}", merged.join("; "));
    }
    let _ = writeln!(out, "\nPer-class values: `classes.csv`; plot: `nc3_cosines.png`.");
}

fn plot(dir: &Path, r: &CollapseResult) -> Result<()> {
    let mut groups: Vec<String> = r.groups.keys().cloned().collect();
    let mut dots: Vec<Dot> = r
        .classes
        .iter()
        .filter_map(|c| {
            let s = c.s?;
            let group = match c.groups.as_slice() {
                [g] => groups.iter().position(|x| x == g).unwrap_or(0),
                _ => usize::MAX,
            };
            Some(Dot { label: c.token.clone(), value: s, group })
        })
        .collect();
    if dots.iter().any(|d| d.group == usize::MAX) || groups.is_empty() {
        groups.push(if r.groups.is_empty() { "classes".into() } else { "several groups".into() });
        let other = groups.len() - 1;
        for d in dots.iter_mut().filter(|d| d.group == usize::MAX || r.groups.is_empty()) {
            d.group = other;
        }
    }
    dots.sort_by(|a, b| (a.group, a.value).partial_cmp(&(b.group, b.value)).unwrap_or(std::cmp::Ordering::Equal));
    if dots.len() > 150 {
        // Too many to label one by one (e.g. the whole vocabulary): keep an even spread.
        let step = dots.len() / 150 + 1;
        dots = dots.into_iter().step_by(step).collect();
    }
    let title = format!("NC3 alignment s_c = cos(class mean, classifier row) — {}", r.settings.model);
    dot_plot(&dir.join("nc3_cosines"), &title, "s_c (lines: group means)", &dots, &groups, None)
}
