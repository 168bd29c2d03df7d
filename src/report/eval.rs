//! Writers for `eval` results: per-example CSVs and Markdown tables laid out like
//! bias-bench's published tables (one row per model).

use crate::bench::becpro::BecProResult;
use crate::bench::crows::CrowsResult;
use crate::bench::evaluate::Evaluation;
use crate::bench::seat::SeatScore;
use crate::bench::stereoset::StereoSetResult;
use crate::bench::{BecProSection, CrowsSection, EvalResults, SeatSection, StereoSetInterSection, StereoSetSection};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

/// Writes an evaluation into `dir` (created if missing): `crows.csv`, `stereoset.csv`,
/// `seat.csv`, `stereoset_inter.csv`, `becpro.csv`, `aul.csv` and `mlm-bias.csv` for the
/// benchmarks that ran, then `results.json` and `results.md`.
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
    if let Some(r) = &ev.stereoset_inter {
        stereoset_csv(&dir.join("stereoset_inter.csv"), r)?;
    }
    if let Some(r) = &ev.becpro {
        becpro_csv(&dir.join("becpro.csv"), r)?;
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
        "sent_more",
        "sent_less",
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
            p.sent_more.clone(),
            p.sent_less.clone(),
        ])?;
    }
    crate::util::fs::write_atomic(path, &w.into_inner()?)
}

fn stereoset_csv(path: &Path, r: &StereoSetResult) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["id", "cluster", "domain", "target", "gold_label", "score", "sentence"])?;
    for s in &r.sentences {
        let label = serde_json::to_value(s.gold_label)?.as_str().unwrap_or_default().to_string();
        w.write_record([
            s.id.clone(),
            s.cluster.clone(),
            s.domain.clone(),
            s.target.clone(),
            label,
            s.score.to_string(),
            s.sentence.clone(),
        ])?;
    }
    crate::util::fs::write_atomic(path, &w.into_inner()?)
}

fn becpro_csv(path: &Path, r: &BecProResult) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "index",
        "person",
        "gender",
        "profession",
        "prof_gender",
        "template",
        "log_p_target",
        "log_p_prior",
        "association",
        "skipped",
    ])?;
    for s in &r.sentences {
        w.write_record([
            s.index.to_string(),
            s.person.clone(),
            s.gender.clone(),
            s.profession.clone(),
            s.prof_gender.clone(),
            s.template.clone(),
            opt(s.log_p_target),
            opt(s.log_p_prior),
            opt(s.association),
            s.skipped.clone().unwrap_or_default(),
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
    // Self-Debias changes the CrowS-Pairs and StereoSet scores only (SEAT reads the features).
    let scored = match r.settings.get("self_debias").and_then(|v| v.as_str()) {
        Some(sd) => format!("{model} + Self-Debias ({sd})"),
        None => model.to_string(),
    };
    if let Some(c) = &r.crows {
        let scoring = r.settings.get("crows_scoring").and_then(|v| v.as_str()).unwrap_or("bias-bench");
        crows_table(&mut out, &scored, scoring, c);
    }
    if let Some(s) = &r.stereoset {
        stereoset_tables(&mut out, &scored, s);
    }
    if let Some(s) = &r.seat {
        seat_tables(&mut out, model, s);
    }
    if let Some(s) = &r.stereoset_intersentence {
        stereoset_inter_tables(&mut out, s);
    }
    if let Some(b) = &r.becpro {
        let masking = r.settings.get("becpro_masking").and_then(|v| v.as_str()).unwrap_or("subword");
        becpro_tables(&mut out, masking, b);
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

fn stereoset_inter_tables(out: &mut String, s: &StereoSetInterSection) {
    let _ = writeln!(out, "\n## StereoSet intersentence (SS: 50 = unbiased; LMS, ICAT: higher is better)\n");
    let _ = writeln!(out, "| domain | SS | LMS | ICAT | clusters |\n| --- | ---: | ---: | ---: | ---: |");
    let overall = [("overall".to_string(), &s.overall)];
    let combined: Vec<(String, &crate::bench::stereoset::StereoSetSummary)> =
        s.combined.iter().map(|c| ("intra + inter (StereoSet overall)".to_string(), c)).collect();
    let rows = s.by_domain.iter().map(|(d, v)| (d.clone(), v)).chain(overall).chain(combined);
    for (d, v) in rows {
        let _ = writeln!(out, "| {d} | {:.2} | {:.2} | {:.2} | {} |", v.ss, v.lms, v.icat, v.n);
    }
}

fn becpro_tables(out: &mut String, masking: &str, b: &BecProSection) {
    let _ = writeln!(
        out,
        "\n## BEC-Pro ({masking} masking; mean association log P(person | profession) − log P(person | both masked))\n"
    );
    let _ = writeln!(
        out,
        "| profession group | male person words | female person words | pairs | W | z | p (Wilcoxon, female vs male) |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | --- |");
    let cell = |x: Option<f64>| x.map(|v| format!("{v:.4}")).unwrap_or_else(|| "–".into());
    for (g, v) in b.by_group.iter().chain(std::iter::once((&"overall".to_string(), &b.overall))) {
        let (pairs, w, z, p) = match &v.wilcoxon {
            Some(t) => (
                t.n.to_string(),
                format!("{}", t.statistic),
                cell(t.z),
                format!("{} ({:?})", super::p_value(t.p_value), t.method).to_lowercase(),
            ),
            None => ("0".into(), "–".into(), "–".into(), "–".into()),
        };
        let _ = writeln!(
            out,
            "| {g} | {} (n {}) | {} (n {}) | {pairs} | {w} | {z} | {p} |",
            cell(v.mean_male),
            v.n_male,
            cell(v.mean_female),
            v.n_female
        );
    }
}
