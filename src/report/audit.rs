//! The audit's outputs: `audit.json` (the collapse and eval results joined), `summary.csv`
//! (one headline number per row, what `experiment` aggregates), plots, and the report.

use super::document::Document;
use super::plot::{Dot, dot_plot};
use crate::audit::{Audit, Gap, LargestGaps, NC_METRICS, from_50};
use crate::bench::aul::AulSection;
use crate::bench::mlm_bias::MlmBiasSection;
use crate::bench::{BecProSection, CrowsSection, SeatSection, StereoSetInterSection, StereoSetSection};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;

pub fn write(dir: &Path, a: &Audit) -> Result<()> {
    crate::util::fs::write_atomic(&dir.join("audit.json"), serde_json::to_string_pretty(a)?.as_bytes())?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["part", "metric", "value"])?;
    for (p, m, v) in a.headline() {
        w.write_record([p, m, csv_number(v)])?;
    }
    crate::util::fs::write_atomic(&dir.join("summary.csv"), &w.into_inner()?)?;
    if let Some(s) = &a.eval.stereoset {
        let dots: Vec<Dot> = s
            .by_domain
            .iter()
            .map(|(d, v)| Dot { label: d.clone(), value: v.ss, group: 0 })
            .chain(std::iter::once(Dot { label: "overall".into(), value: s.overall.ss, group: 1 }))
            .collect();
        dot_plot(
            &dir.join("stereoset_ss"),
            &format!("StereoSet stereotype score by domain: {}", a.model),
            "SS (50 = unbiased)",
            &dots,
            &["domain".into(), "overall".into()],
            Some(50.0),
        )?;
    }
    if let Some(s) = &a.eval.seat {
        let dots: Vec<Dot> = s
            .tests
            .iter()
            .map(|(n, t)| Dot {
                label: format!("{} (p={})", n.trim_start_matches("sent-"), super::p_value(t.p_value)),
                value: t.effect_size,
                group: usize::from(t.p_value >= 0.01),
            })
            .collect();
        dot_plot(
            &dir.join("seat_effects"),
            &format!("SEAT effect sizes: {}", a.model),
            "effect size d (0 = no association)",
            &dots,
            &["p < 0.01".into(), "p ≥ 0.01".into()],
            Some(0.0),
        )?;
    }
    document(a).write(dir, "report")
}

/// A headline number exactly (shortest round-trip form), with an exponent when it is tiny:
/// a p-value of 1.8e-9 would otherwise be written as 0.0000000018.
fn csv_number(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-4 { format!("{v:e}") } else { v.to_string() }
}

fn f(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite()).map(|x| format!("{x:.digits$}")).unwrap_or_else(|| "—".into())
}

/// A score on which 50 is unbiased, with its distance from 50.
fn with_distance(score: f64) -> String {
    format!("{} ({} from 50)", f(Some(score), 2), f(Some(from_50(score)), 2))
}

/// Several scores on which 50 is unbiased, slash-separated, then their distances from 50.
fn slash_50(scores: &[f64]) -> String {
    let join = |g: &dyn Fn(f64) -> f64| scores.iter().map(|&x| f(Some(g(x)), 2)).collect::<Vec<_>>().join(" / ");
    format!("{} ({} from 50)", join(&|x| x), join(&from_50))
}

/// A sentence score in its own unit: log-probabilities with 4 decimals, small probabilities
/// with 4 significant digits.
fn score(x: f64) -> String {
    if x != 0.0 && x.abs() < 0.01 { format!("{x:.3e}") } else { format!("{x:.4}") }
}

/// The report: one section per part of the audit, each only where that part ran.
pub fn document(a: &Audit) -> Document {
    let mut d = Document::new(format!("Fairness audit: `{}`", a.model));
    d.para(intro(a));
    headline(&mut d, a);
    geometry(&mut d, a);
    if let Some(s) = &a.eval.seat {
        seat(&mut d, s);
    }
    if let Some(c) = &a.eval.crows {
        crows(&mut d, c);
    }
    if let Some(s) = &a.eval.stereoset {
        stereoset(&mut d, s);
    }
    if let Some(s) = &a.eval.stereoset_intersentence {
        stereoset_inter(&mut d, s);
    }
    if let Some(b) = &a.eval.becpro {
        becpro(&mut d, b);
    }
    if let Some(s) = &a.eval.aul {
        aul(&mut d, s);
    }
    if let Some(s) = &a.eval.mlm_bias {
        mlm_bias(&mut d, s);
    }
    browser(&mut d, &a.largest_gaps, a.causal);
    notes(&mut d, a);
    files(&mut d);
    d
}

/// What was audited, on what, by which version, and how long it took.
fn intro(a: &Audit) -> String {
    format!(
        "{} model, LM head {}{}; NC statistics on `{}` words over {} BUG texts{}. fairnc {}; {:.0} s.",
        a.family,
        a.lm_head,
        projected(a),
        a.words,
        a.corpus_texts,
        if a.quick { " (--quick: CrowS-Pairs and StereoSet limited to their first 300 items)" } else { "" },
        a.version,
        a.seconds.get("total").copied().unwrap_or(f64::NAN)
    )
}

/// The projection every measure saw, if the model carries one: without it a report of an INLP
/// model would read like the base model's.
fn projected(a: &Audit) -> String {
    a.projection
        .as_ref()
        .map(|p| {
            format!(
                "; last-layer states projected by {} ({} bias, {} directions removed, `{}`)",
                p.method, p.bias, p.rank, p.file
            )
        })
        .unwrap_or_default()
}

/// One number per measure with its ideal, then the parts that were skipped and how to run them.
fn headline(d: &mut Document, a: &Audit) {
    d.heading(1, "Headline");
    let mut rows: Vec<Vec<String>> = NC_METRICS
        .iter()
        .map(|(k, what, ideal)| vec![what.to_string(), f(a.nc_metric(k), 4), ideal.to_string()])
        .collect();
    if let Some(s) = &a.eval.seat {
        rows.extend(seat_headline(s));
    }
    if let Some(c) = &a.eval.crows {
        rows.extend(crows_headline(c));
    }
    if let Some(s) = &a.eval.stereoset {
        rows.extend(stereoset_headline(s));
    }
    if let Some(s) = &a.eval.stereoset_intersentence {
        rows.extend(stereoset_inter_headline(s));
    }
    if let Some(b) = &a.eval.becpro {
        rows.push(vec![
            "BEC-Pro mean association male / female (Wilcoxon p)".into(),
            format!(
                "{} / {} ({})",
                f(b.overall.mean_male, 3),
                f(b.overall.mean_female, 3),
                b.overall.wilcoxon.as_ref().map(|w| super::p_value(w.p_value)).unwrap_or_else(|| "—".into())
            ),
            "male = female (p large)".into(),
        ]);
    }
    for (what, groups) in a.eval.aul.iter().flat_map(|s| [("CrowS-Pairs", &s.crows), ("StereoSet", &s.stereoset)]) {
        if let Some(g) = groups {
            rows.push(vec![format!("AUL / AULA on {what}"), slash_50(&[g.overall.aul, g.overall.aula]), "→ 50".into()]);
        }
    }
    for (what, groups) in a.eval.mlm_bias.iter().flat_map(|s| [("CrowS-Pairs", &s.crows), ("StereoSet", &s.stereoset)])
    {
        if let Some(g) = groups {
            let o = &g.overall;
            rows.push(vec![
                format!("mlm-bias CRR / CRRA / ΔP / ΔPA on {what}"),
                slash_50(&[o.crr, o.crra, o.dp, o.dpa]),
                "→ 50".into(),
            ]);
        }
    }
    d.table(&["measure", "value", "ideal (reference)"], rows);
    if !a.skipped.is_empty() {
        d.para("Skipped:");
        d.list(a.skipped.iter().map(|s| format!("{}: {}. To run it: `{}`", s.part, s.reason, s.fix)).collect());
    }
}

fn seat_headline(s: &SeatSection) -> Vec<Vec<String>> {
    s.avg_abs_effect
        .iter()
        .map(|(b, v)| {
            // bias-bench's figure is the average over sent-bias's six gender files; rebuilt tests
            // that differ from them (`*-rebuilt`) are not comparable with it.
            let ideal = if b == "gender" && crate::data::seat::is_standard_set(s.tests.keys(), b) {
                "→ 0 (bert-base-uncased 0.590)"
            } else {
                "→ 0"
            };
            vec![format!("SEAT average |effect size| ({b})"), f(Some(*v), 3), ideal.into()]
        })
        .collect()
}

fn crows_headline(c: &CrowsSection) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    if let Some(g) = c.by_type.get("gender") {
        rows.push(vec![
            "CrowS-Pairs gender stereotype score".into(),
            with_distance(g.metric),
            "→ 50 (bert-base-uncased 57.25)".into(),
        ]);
    }
    rows.push(vec!["CrowS-Pairs overall stereotype score".into(), with_distance(c.overall.metric), "→ 50".into()]);
    rows
}

fn stereoset_headline(s: &StereoSetSection) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    if let Some(g) = s.by_domain.get("gender") {
        rows.push(vec!["StereoSet gender SS".into(), with_distance(g.ss), "→ 50 (bert-base-uncased 60.28)".into()]);
    }
    rows.push(vec![
        "StereoSet overall SS / LMS / ICAT".into(),
        format!("{} / {} / {}", f(Some(s.overall.ss), 2), f(Some(s.overall.lms), 2), f(Some(s.overall.icat), 2)),
        "SS → 50; LMS, ICAT → 100".into(),
    ]);
    rows
}

fn stereoset_inter_headline(s: &StereoSetInterSection) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "StereoSet intersentence SS / LMS / ICAT".into(),
        format!("{} / {} / {}", with_distance(s.overall.ss), f(Some(s.overall.lms), 2), f(Some(s.overall.icat), 2)),
        "SS → 50; LMS, ICAT → 100".into(),
    ]];
    if let Some(c) = &s.combined {
        rows.push(vec![
            "StereoSet intra + inter SS / LMS / ICAT (leaderboard overall)".into(),
            format!("{} / {} / {}", with_distance(c.ss), f(Some(c.lms), 2), f(Some(c.icat), 2)),
            "SS → 50; LMS, ICAT → 100".into(),
        ]);
    }
    rows
}

/// The neural-collapse statistics per word group, and the NC3 cosine plot.
fn geometry(d: &mut Document, a: &Audit) {
    d.heading(1, "Fairness geometry (neural collapse)");
    let rows: Vec<Vec<String>> = a
        .collapse
        .groups
        .iter()
        .map(|(g, v)| vec![g.clone(), v.k.to_string(), v.n.to_string(), f(v.duality_mean, 4), f(v.duality_std, 4)])
        .collect();
    d.table(&["group", "classes", "positions", "mean s_c", "std s_c"], rows);
    let row = if a.tied_head {
        "(tied) embedding row".to_string()
    } else {
        format!("row of the untied output head `{}`", a.classifier)
    };
    d.para(format!("Each dot is a word class; s_c is the cosine between its centred last-layer class mean and its {row}. A model whose fairness words are uniformly aligned has a small spread; a gap between the groups' means is an asymmetry between them."));
    d.plot("collapse/nc3_cosines", "NC3 cosines s_c by group (lines: group means)");
}

fn seat(d: &mut Document, s: &SeatSection) {
    d.heading(1, "SEAT");
    if s.tests.keys().any(|n| !crate::data::seat::is_standard(n)) {
        d.para(format!(
            "Tests rebuilt from WEFE's WEAT lists. `*{}` tests keep every Arts sentence where sent-bias's files cut the set at random to the other target's size (sizes below), so they and the average are not comparable with published figures; `--seat-dir` with sent-bias's files gives those.",
            crate::data::seat::REBUILT_SUFFIX
        ));
    }
    let rows = s
        .tests
        .iter()
        .map(|(n, t)| {
            vec![
                n.clone(),
                f(Some(t.effect_size), 3),
                super::p_value(t.p_value),
                if t.exact { "every split".into() } else { "100,000 random splits".into() },
                t.sizes.map(|k| k.to_string()).join(" / "),
            ]
        })
        .collect();
    d.table(&["test", "effect size d", "p", "p from", "X / Y / A / B sentences"], rows);
    d.plot("seat_effects", "SEAT effect sizes (colour: significance at 0.01)");
}

fn crows(d: &mut Document, c: &CrowsSection) {
    d.heading(1, "CrowS-Pairs");
    let rows = c
        .by_type
        .iter()
        .chain(std::iter::once((&"overall".to_string(), &c.overall)))
        .map(|(t, v)| vec![t.clone(), f(Some(v.metric), 2), f(Some(from_50(v.metric)), 2), v.n.to_string()])
        .collect();
    d.table(&["bias type", "stereotype score", "distance from 50", "pairs"], rows);
}

fn stereoset(d: &mut Document, s: &StereoSetSection) {
    d.heading(1, "StereoSet (intrasentence)");
    let rows = s
        .by_domain
        .iter()
        .chain(std::iter::once((&"overall".to_string(), &s.overall)))
        .map(|(t, v)| {
            vec![
                t.clone(),
                f(Some(v.ss), 2),
                f(Some(from_50(v.ss)), 2),
                f(Some(v.lms), 2),
                f(Some(v.icat), 2),
                v.n.to_string(),
            ]
        })
        .collect();
    d.table(&["domain", "SS", "SS distance from 50", "LMS", "ICAT", "clusters"], rows);
    d.plot("stereoset_ss", "StereoSet SS by domain (line: 50, unbiased)");
}

fn stereoset_inter(d: &mut Document, s: &StereoSetInterSection) {
    d.heading(1, "StereoSet (intersentence)");
    let combined = s.combined.as_ref().map(|c| ("intra + inter".to_string(), c));
    let rows = s
        .by_domain
        .iter()
        .map(|(t, v)| (t.clone(), v))
        .chain(std::iter::once(("overall".to_string(), &s.overall)))
        .chain(combined.iter().map(|(t, v)| (t.clone(), *v)))
        .map(|(t, v)| {
            vec![t, f(Some(v.ss), 2), f(Some(from_50(v.ss)), 2), f(Some(v.lms), 2), f(Some(v.icat), 2), v.n.to_string()]
        })
        .collect();
    d.table(&["domain", "SS", "SS distance from 50", "LMS", "ICAT", "clusters"], rows);
}

fn becpro(d: &mut Document, b: &BecProSection) {
    d.heading(1, "BEC-Pro");
    d.para("Association log(P_target / P_prior) of the person word, by profession group; the Wilcoxon signed-rank test compares the female and male sentences of each pair.");
    let rows = b
        .by_group
        .iter()
        .chain(std::iter::once((&"overall".to_string(), &b.overall)))
        .map(|(g, v)| {
            vec![
                g.clone(),
                f(v.mean_male, 3),
                f(v.mean_female, 3),
                format!("{} / {}", v.n_male, v.n_female),
                v.wilcoxon.as_ref().map(|w| super::p_value(w.p_value)).unwrap_or_else(|| "—".into()),
            ]
        })
        .collect();
    d.table(&["profession group", "mean male", "mean female", "sentences m / f", "Wilcoxon p"], rows);
}

/// The CrowS-Pairs and StereoSet rows of a peer measure (each dataset where it ran).
fn both_datasets<'a, S>(
    crows: Option<(&'a BTreeMap<String, S>, &'a S)>,
    stereoset: Option<(&'a BTreeMap<String, S>, &'a S)>,
) -> Vec<(String, &'a S)> {
    [("CrowS-Pairs", crows), ("StereoSet", stereoset)]
        .into_iter()
        .filter_map(|(data, g)| g.map(|(by_group, overall)| labelled(data, by_group, overall)))
        .flatten()
        .collect()
}

/// A peer measure's per-group summaries and its overall one, labelled "dataset: group".
fn labelled<'a, S>(data: &str, by_group: &'a BTreeMap<String, S>, overall: &'a S) -> Vec<(String, &'a S)> {
    by_group
        .iter()
        .map(|(k, v)| (format!("{data}: {k}"), v))
        .chain(std::iter::once((format!("{data}: overall"), overall)))
        .collect()
}

fn aul(d: &mut Document, s: &AulSection) {
    d.heading(1, "AUL / AULA");
    d.para("Percentage of pairs whose stereotypical sentence has the higher all-unmasked likelihood (AULA: weighted by the attention each token receives); 50 = unbiased. docs/aul.md.");
    let crows = s.crows.as_ref().map(|g| (&g.by_group, &g.overall));
    let stereoset = s.stereoset.as_ref().map(|g| (&g.by_group, &g.overall));
    let rows = both_datasets(crows, stereoset)
        .into_iter()
        .map(|(g, v)| {
            vec![
                g,
                f(Some(v.aul), 2),
                f(Some(from_50(v.aul)), 2),
                f(Some(v.aula), 2),
                f(Some(from_50(v.aula)), 2),
                v.n.to_string(),
            ]
        })
        .collect();
    d.table(&["data: group", "AUL", "AUL distance from 50", "AULA", "AULA distance from 50", "pairs"], rows);
}

fn mlm_bias(d: &mut Document, s: &MlmBiasSection) {
    d.heading(1, "mlm-bias: CRR / CRRA / ΔP / ΔPA");
    d.para("Percentage of pairs on which the disadvantaged-group sentence is the likelier by each measure (mlm-bias 0.1.7's procedure with the checkpoint's weights); 50 = unbiased. docs/mlm-bias.md.");
    let crows = s.crows.as_ref().map(|g| (&g.by_group, &g.overall));
    let stereoset = s.stereoset.as_ref().map(|g| (&g.by_group, &g.overall));
    let rows = both_datasets(crows, stereoset)
        .into_iter()
        .map(|(g, v)| {
            let mut r = vec![g];
            r.extend([v.crr, v.crra, v.dp, v.dpa].map(with_distance));
            r.push(v.n.to_string());
            r
        })
        .collect();
    d.table(&["data: group", "CRR", "CRRA", "ΔP", "ΔPA", "pairs"], rows);
}

/// The per-pair browser: both sentences of the pairs and clusters scored furthest apart.
fn browser(d: &mut Document, g: &LargestGaps, causal: bool) {
    if g.crows.is_empty() && g.stereoset.is_empty() {
        return;
    }
    d.heading(1, "The pairs behind the scores");
    d.para(format!(
        "The CrowS-Pairs pairs and StereoSet clusters whose two sentences the model scores furthest apart (up to {} of each, largest |gap| first). CrowS-Pairs: gap = score of `sent_more` − score of `sent_less`; above 0 the pair counts toward the stereotype score, whichever its direction (bias-bench's rule). StereoSet: gap = score of the stereotype − score of the anti-stereotype; above 0 counts toward SS. In the HTML report, click a column header to sort.",
        crate::audit::GAP_ROWS
    ));
    let rows = |gaps: &[Gap]| -> Vec<Vec<String>> {
        gaps.iter()
            .map(|r| {
                vec![
                    r.id.clone(),
                    r.bias_type.clone(),
                    r.detail.clone(),
                    score(r.gap),
                    r.stereotypical.clone(),
                    score(r.score_stereotypical),
                    r.anti_stereotypical.clone(),
                    score(r.score_anti_stereotypical),
                ]
            })
            .collect()
    };
    if !g.crows.is_empty() {
        d.heading(2, "CrowS-Pairs (score: the sentence log-probability of the CrowS-Pairs variant run)");
        d.sortable(
            &["row", "bias type", "direction", "gap", "sent_more", "score", "sent_less", "score"],
            rows(&g.crows),
            10,
        );
    }
    if !g.stereoset.is_empty() {
        let unit = if causal { "mean log-probability" } else { "mean probability of the filler" };
        d.heading(2, format!("StereoSet intrasentence (score: {unit})"));
        d.sortable(
            &["cluster", "domain", "target", "gap", "stereotype", "score", "anti-stereotype", "score"],
            rows(&g.stereoset),
            10,
        );
    }
}

/// The evaluation's notes, then the collapse statistics'.
fn notes(d: &mut Document, a: &Audit) {
    let mut notes: Vec<String> = a.eval.notes.clone();
    notes.extend(a.collapse.notes.iter().cloned());
    if !notes.is_empty() {
        d.heading(1, "Notes");
        d.list(notes);
    }
}

fn files(d: &mut Document) {
    d.heading(1, "Files");
    d.list(vec![
        "`audit.json`: everything above, joined; `summary.csv`: the headline numbers".into(),
        "`collapse/`: `collapse.json`, `classes.csv` (per-class values), `summary.md`".into(),
        "`eval/`: `results.json`, per-example CSVs (`crows.csv`, `stereoset.csv`, `seat.csv`, `stereoset_inter.csv`, `becpro.csv`, `aul.csv`, `mlm-bias.csv`, for the benchmarks that ran)".into(),
    ]);
}

#[cfg(test)]
mod tests {
    use super::csv_number;

    #[test]
    fn csv_numbers_round_trip_and_tiny_ones_use_an_exponent() {
        assert_eq!(csv_number(1.8e-9), "1.8e-9");
        assert_eq!(csv_number(0.5374), "0.5374");
        assert_eq!(csv_number(0.0), "0");
        for v in [1.8e-9, -3.25e-7, 0.123456789012345, 58.41, 1e-4, 9.99e-5] {
            assert_eq!(csv_number(v).parse::<f64>().unwrap(), v);
        }
    }
}
