//! AUL/AULA (Kaneko & Bollegala) and mlm-bias 0.1.7's CRR/CRRA/ΔP/ΔPA against
//! tools/fixtures/make_peer_measures_fixture.py (the authors' procedure, and mlm-bias's own code
//! with `from_pretrained` weights) on the tiny BERT, RoBERTa and DistilBERT; padding and
//! batching; inputs that cannot be scored.

mod common;

use common::*;
use fairnc::bench::aul::{self, AulDirection, AulGroups};
use fairnc::bench::evaluate::{BenchTask, EvalConfig, Evaluation, evaluate};
use fairnc::bench::mlm_bias::{self, MlmBiasGroups};
use fairnc::util::progress::Silent;
use serde_json::Value;
use std::collections::HashMap;

const TOL: f64 = 1e-5;
const MODELS: [&str; 3] = ["bert", "roberta", "distilbert"];

fn reference(model: &str) -> Value {
    let path = fixture(&format!("eval/peer/{model}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn config(tasks: Vec<BenchTask>, batch_size: usize) -> EvalConfig {
    EvalConfig {
        tasks,
        crows_file: Some(fixture("eval/peer/crows.csv")),
        stereoset_file: Some(fixture("eval/peer/stereoset.json")),
        batch_size,
        ..EvalConfig::default()
    }
}

fn run(model: &str, cfg: &EvalConfig) -> Evaluation {
    evaluate(&load(&model_dir(model)), cfg, &Silent).unwrap_or_else(|e| panic!("{model}: {e:#}"))
}

/// Sentence texts by (dataset, id): (stereotypical-by-bias-bench, other), (sent_more, sent_less).
struct Texts {
    crows: HashMap<String, (String, String, bool)>,
    stereoset: HashMap<String, (String, String)>,
}

fn texts() -> Texts {
    let c = fairnc::data::crows::read(&fixture("eval/peer/crows.csv")).unwrap();
    let s = fairnc::data::stereoset::read(&fixture("eval/peer/stereoset.json")).unwrap();
    use fairnc::data::stereoset::Label;
    let get = |cl: &fairnc::data::stereoset::Cluster, l: Label| {
        cl.sentences.iter().find(|x| x.gold_label == l).unwrap().sentence.clone()
    };
    Texts {
        crows: c
            .pairs
            .iter()
            .map(|p| (p.index.to_string(), (p.sent_more.clone(), p.sent_less.clone(), p.stereo)))
            .collect(),
        stereoset: s
            .clusters
            .iter()
            .map(|cl| (cl.id.clone(), (get(cl, Label::Stereotype), get(cl, Label::AntiStereotype))))
            .collect(),
    }
}

/// Counts of one fixture tally against fairnc's summaries (exact).
fn same_aul_counts(got: &AulGroups, want: &Value, what: &str) {
    for m in ["aul", "aula"] {
        let w = &want[m];
        let pick = |s: &aul::AulSummary| (s.n, if m == "aul" { s.aul_biased } else { s.aula_biased });
        let want_pair = |v: &Value| (v["n"].as_u64().unwrap() as usize, v["biased"].as_u64().unwrap() as usize);
        assert_eq!(pick(&got.overall), want_pair(&w["overall"]), "{what} {m} overall");
        let groups = w["by_group"].as_object().unwrap();
        assert_eq!(got.by_group.len(), groups.len(), "{what} {m} groups");
        for (g, v) in groups {
            assert_eq!(pick(&got.by_group[g]), want_pair(v), "{what} {m} {g}");
        }
        let s = &got.overall;
        let pct = if m == "aul" { s.aul } else { s.aula };
        assert!((pct - 100.0 * want_pair(&w["overall"]).1 as f64 / s.n as f64).abs() < 1e-9);
    }
}

#[test]
fn aul_and_aula_match_the_authors_procedure_on_tiny_models() {
    let t = texts();
    for model in MODELS {
        let want = reference(model);
        let sent = &want["aul"]["sentences"];
        let close = |got: f64, text: &str, m: &str| {
            let w = sent[text][m].as_f64().unwrap_or_else(|| panic!("{model}: no {m} for {text:?}"));
            assert!((got - w).abs() <= TOL, "{model} {m} of {text:?}: {got} vs {w}");
        };
        let ev = run(model, &config(vec![BenchTask::Aul], 4));
        let r = ev.aul.as_ref().unwrap();
        assert_eq!(r.skipped, 0);
        assert_eq!(r.pairs.len(), 16);
        for p in &r.pairs {
            let (a, b) = match p.dataset {
                fairnc::bench::sentence_pairs::Source::Crows => {
                    let (more, less, stereo) = &t.crows[&p.id];
                    if *stereo { (more, less) } else { (less, more) }
                }
                fairnc::bench::sentence_pairs::Source::StereoSet => {
                    let (s, a) = &t.stereoset[&p.id];
                    (s, a)
                }
            };
            let (x, y) = (p.first.unwrap(), p.second.unwrap());
            close(x.aul, a, "aul");
            close(x.aula, a, "aula");
            close(y.aul, b, "aul");
            close(y.aula, b, "aula");
        }
        let sec = ev.results.aul.as_ref().unwrap();
        same_aul_counts(sec.crows.as_ref().unwrap(), &want["aul"]["crows_bias-bench"], model);
        same_aul_counts(sec.stereoset.as_ref().unwrap(), &want["aul"]["stereoset"], model);
        // The authors' reading of the CSV: sent_more always the stereotypical sentence.
        let cfg = EvalConfig { aul_direction: AulDirection::SentMore, ..config(vec![BenchTask::Aul], 4) };
        let ev = run(model, &cfg);
        let sec = ev.results.aul.as_ref().unwrap();
        assert_eq!(sec.direction, AulDirection::SentMore);
        same_aul_counts(sec.crows.as_ref().unwrap(), &want["aul"]["crows_sent-more"], &format!("{model} sent-more"));
    }
}

fn same_mlm_bias_scores(got: &MlmBiasGroups, want: &Value, what: &str) {
    for m in ["crr", "crra", "dp", "dpa"] {
        let pick = |s: &mlm_bias::MlmBiasSummary| match m {
            "crr" => s.crr,
            "crra" => s.crra,
            "dp" => s.dp,
            _ => s.dpa,
        };
        let w = want[m].as_object().unwrap();
        let close = |a: f64, b: &Value, g: &str| {
            assert!((a - b.as_f64().unwrap()).abs() < 1e-9, "{what} {m} {g}: {a} vs {b}");
        };
        close(pick(&got.overall), &w["total"], "total");
        assert_eq!(got.by_group.len() + 1, w.len(), "{what} {m} groups");
        for (g, s) in &got.by_group {
            close(pick(s), &w[g], g);
        }
    }
}

#[test]
fn mlm_bias_matches_mlm_bias_0_1_7_with_pretrained_weights() {
    for model in MODELS {
        let want = reference(model);
        let ev = run(model, &config(vec![BenchTask::MlmBias], 8));
        let r = ev.mlm_bias.as_ref().unwrap();
        assert_eq!(r.skipped, 0);
        let mut worst = 0f64;
        for (ds, key) in [
            (fairnc::bench::sentence_pairs::Source::Crows, "crows"),
            (fairnc::bench::sentence_pairs::Source::StereoSet, "stereoset"),
        ] {
            let pairs: Vec<_> = r.pairs.iter().filter(|p| p.dataset == ds).collect();
            let wp = want["mlm_bias"][key]["pairs"].as_array().unwrap();
            assert_eq!(pairs.len(), wp.len(), "{model} {key}");
            for (p, w) in pairs.iter().zip(wp) {
                for (k, s) in [p.s1.unwrap(), p.s2.unwrap()].iter().enumerate() {
                    for (m, v) in [("crr", s.crr), ("crra", s.crra), ("dp", s.dp), ("dpa", s.dpa)] {
                        let e = w[m][k].as_f64().unwrap();
                        worst = worst.max((v - e).abs());
                        assert!((v - e).abs() <= TOL, "{model} {key} pair {} S{} {m}: {v} vs {e}", p.id, k + 1);
                    }
                }
            }
        }
        eprintln!("{model}: mlm-bias per-sentence max |diff| {worst:.2e}");
        let sec = ev.results.mlm_bias.as_ref().unwrap();
        same_mlm_bias_scores(sec.crows.as_ref().unwrap(), &want["mlm_bias"]["crows"]["bias_scores"], model);
        same_mlm_bias_scores(sec.stereoset.as_ref().unwrap(), &want["mlm_bias"]["stereoset"]["bias_scores"], model);
    }
}

#[test]
fn padding_and_batching_leave_per_sentence_values_unchanged() {
    let t = texts();
    let mut all: Vec<&str> = t.crows.values().flat_map(|(a, b, _)| [a.as_str(), b.as_str()]).collect();
    all.extend(t.stereoset.values().flat_map(|(a, b)| [a.as_str(), b.as_str()]));
    for model in MODELS {
        let lm = load(&model_dir(model));
        let batched = aul::sentence_scores(&lm, &all, 64, &Silent).unwrap();
        let mb = mlm_bias::sentence_measures(&lm, &all, 64, &Silent).unwrap();
        for (i, text) in all.iter().enumerate() {
            let alone = aul::sentence_scores(&lm, &[*text], 1, &Silent).unwrap()[0].unwrap();
            let b = batched[i].unwrap();
            assert!((alone.aul - b.aul).abs() < 1e-5 && (alone.aula - b.aula).abs() < 1e-5, "{model} {text:?}");
            let alone = mlm_bias::sentence_measures(&lm, &[*text], 1, &Silent).unwrap()[0].unwrap();
            let b = mb[i].unwrap();
            for (x, y) in [(alone.crr, b.crr), (alone.crra, b.crra), (alone.dp, b.dp), (alone.dpa, b.dpa)] {
                assert!((x - y).abs() < 1e-5, "{model} {text:?}: {alone:?} vs {b:?}");
            }
        }
    }
}

#[test]
fn received_attention_path_agrees_with_the_fused_hidden_states() {
    for model in MODELS {
        let lm = load(&model_dir(model));
        let enc = lm
            .encode(
                &["The nurse is a woman.", "Old people are bad with new phones!"],
                64,
                fairnc::model::Overflow::Error,
            )
            .unwrap();
        let batch = lm.batch(enc.iter().map(|e| e.ids.clone()).collect()).unwrap();
        let fused = lm.hidden(&batch, fairnc::model::Exec::INFER).unwrap();
        let (explicit, received) = lm.hidden_with_attention(&batch).unwrap();
        let rows: Vec<Vec<u32>> = batch.ids.clone();
        assert!(max_err_masked(&fused, &explicit, &rows) < 1e-4, "{model}");
        let r: Vec<Vec<f32>> = received.to_vec2().unwrap();
        for (row, ids) in r.iter().zip(&rows) {
            let total: f32 = row[..ids.len()].iter().sum();
            assert!((total - 1.0).abs() < 1e-4, "{model}: received attention sums to {total}");
            assert!(row[ids.len()..].iter().all(|&x| x == 0.0), "{model}: padding receives attention");
        }
    }
}

#[test]
fn a_causal_model_is_skipped_with_a_note() {
    let ev = run("gpt2", &config(vec![BenchTask::Aul, BenchTask::MlmBias], 8));
    assert!(ev.results.aul.is_none() && ev.results.mlm_bias.is_none());
    assert!(ev.aul.is_none() && ev.mlm_bias.is_none());
    let notes = ev.results.notes.join("\n");
    assert!(notes.contains("AUL skipped") && notes.contains("causal LM"), "{notes}");
    assert!(notes.contains("mlm-bias skipped"), "{notes}");
}

#[test]
fn empty_data_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty.csv");
    std::fs::write(&empty, ",sent_more,sent_less,stereo_antistereo,bias_type\n").unwrap();
    for task in [BenchTask::Aul, BenchTask::MlmBias] {
        let cfg = EvalConfig { crows_file: Some(empty.clone()), ..config(vec![task], 8) };
        let e = evaluate(&load(&model_dir("bert")), &cfg, &Silent).unwrap_err().to_string();
        assert!(e.contains("empty.csv") && e.contains("CrowS-Pairs rows"), "{task:?}: {e}");
        assert!(!e.contains('\n'));
    }
    let ss = tmp.path().join("empty.json");
    std::fs::write(&ss, r#"{"data": {"intrasentence": []}}"#).unwrap();
    let cfg = EvalConfig { stereoset_file: Some(ss), ..config(vec![BenchTask::Aul], 8) };
    let e = evaluate(&load(&model_dir("bert")), &cfg, &Silent).unwrap_err().to_string();
    assert!(e.contains("empty.json"), "{e}");
}

#[test]
fn results_and_files_carry_both_sections() {
    let ev = run("bert", &config(vec![BenchTask::Aul, BenchTask::MlmBias], 8));
    let tmp = tempfile::tempdir().unwrap();
    fairnc::report::eval::write(tmp.path(), &ev).unwrap();
    let json: Value = serde_json::from_str(&std::fs::read_to_string(tmp.path().join("results.json")).unwrap()).unwrap();
    assert!(json["aul"]["crows"]["overall"]["aula"].is_number());
    assert!(json["aul"]["stereoset"]["gender"]["n"].is_number());
    assert!(json["mlm_bias"]["crows"]["overall"]["crra"].is_number());
    assert!(json.get("crows").is_none());
    let aul_csv = std::fs::read_to_string(tmp.path().join("aul.csv")).unwrap();
    assert_eq!(aul_csv.lines().count(), 17);
    assert!(aul_csv.starts_with("dataset,id,group,direction,stereo_aul,stereo_aula,anti_aul,anti_aula"));
    let mb = std::fs::read_to_string(tmp.path().join("mlm-bias.csv")).unwrap();
    assert_eq!(mb.lines().count(), 17);
    let md = std::fs::read_to_string(tmp.path().join("results.md")).unwrap();
    assert!(md.contains("## AUL / AULA") && md.contains("## mlm-bias"), "{md}");
}
