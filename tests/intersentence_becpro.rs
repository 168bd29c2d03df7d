//! StereoSet intersentence and BEC-Pro against Python re-implementations of the reference
//! procedures (tools/fixtures/stereoset_inter_reference.py, becpro_reference.py) on the tiny
//! fixture models and small synthetic data files; the Wilcoxon test against scipy.

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn eval(model: &Path, extra: &[&str]) -> (tempfile::TempDir, Value) {
    let tmp = tempfile::tempdir().unwrap();
    let (m, out) = (model.display().to_string(), tmp.path().display().to_string());
    let mut args = vec!["eval", "--model", &m, "--output", &out];
    args.extend_from_slice(extra);
    let o = fairnc(&args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    let r = json(&tmp.path().join("results.json"));
    (tmp, r)
}

fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let mut rdr = csv::Reader::from_path(path).unwrap();
    let headers = rdr.headers().unwrap().clone();
    rdr.records()
        .map(|r| headers.iter().zip(r.unwrap().iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect())
        .collect()
}

fn stereoset_file() -> String {
    fixture("stereoset_inter/stereoset-mini.json").display().to_string()
}

fn becpro_file() -> String {
    fixture("becpro/becpro-mini.tsv").display().to_string()
}

fn assert_summary(got: &Value, want: &Value, what: &str) {
    for k in ["ss", "lms", "icat"] {
        let (a, b) = (got[k].as_f64().unwrap(), want[k].as_f64().unwrap());
        assert!((a - b).abs() < 1e-9, "{what} {k}: {a} vs {b}");
    }
    assert_eq!(got["n"], want["n"], "{what} n");
}

/// Per-sentence scores within 1e-5, every summary (per domain, overall, intra + inter) equal.
fn check_intersentence(model: &str) {
    let want = json(&fixture(&format!("stereoset_inter/reference-{model}.json")));
    let file = stereoset_file();
    let (dir, got) = eval(&model_dir(model), &["--tasks", "stereoset,stereoset-inter", "--stereoset-file", &file]);
    let rows = read_csv(&dir.path().join("stereoset_inter.csv"));
    let by_id: HashMap<&str, f64> = rows.iter().map(|r| (r["id"].as_str(), r["score"].parse().unwrap())).collect();
    let mut worst: f64 = 0.0;
    for s in want["sentences"].as_array().unwrap() {
        let id = s["id"].as_str().unwrap();
        let (a, b) = (by_id[id], s["score"].as_f64().unwrap());
        worst = worst.max((a - b).abs());
        assert!((a - b).abs() <= 1e-5, "{model} sentence {id}: {a} vs {b}");
    }
    assert_eq!(rows.len(), want["sentences"].as_array().unwrap().len(), "{model}: sentences scored");
    eprintln!("{model}: {} sentences, max |score difference| {worst:.1e}", rows.len());
    let sec = &got["stereoset_intersentence"];
    for (d, s) in want["summary"].as_object().unwrap() {
        assert_summary(&sec[d], s, &format!("{model} {d}"));
    }
    assert_summary(&sec["combined"], &want["combined"], &format!("{model} combined"));
    // The three malformed clusters of the file are counted, not scored.
    let notes = got["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n.as_str().unwrap().contains("skipped 3 malformed clusters")),
        "{model}: no malformed-cluster note in {notes:?}"
    );
}

#[test]
fn intersentence_matches_reference_with_a_next_sentence_head() {
    check_intersentence("bert_nsp");
}

#[test]
fn intersentence_matches_reference_on_a_causal_lm() {
    check_intersentence("gpt2");
}

#[test]
fn a_masked_lm_without_a_next_sentence_head_is_skipped_with_a_note() {
    let file = stereoset_file();
    let (dir, got) = eval(&model_dir("bert"), &["--tasks", "stereoset-inter", "--stereoset-file", &file]);
    assert!(got.get("stereoset_intersentence").is_none(), "{got}");
    assert!(!dir.path().join("stereoset_inter.csv").exists());
    let notes = got["notes"].to_string();
    assert!(notes.contains("StereoSet intersentence skipped") && notes.contains("next-sentence head"), "{notes}");
}

#[test]
fn a_next_sentence_head_survives_a_save() {
    let model = load(&model_dir("bert_nsp"));
    assert!(model.has_next_sentence_head());
    assert!(!load(&model_dir("bert")).has_next_sentence_head());
    let tmp = tempfile::tempdir().unwrap();
    model.save(tmp.path()).unwrap();
    let again = load(tmp.path());
    assert!(again.has_next_sentence_head(), "the pooler and cls.seq_relationship are saved back");
    let rows = vec![vec![2, 10, 11, 3, 12, 3]];
    let batch = model.pair_batch(rows.clone(), &[vec![0, 0, 0, 0, 1, 1]]).unwrap();
    let a: Vec<Vec<f32>> = model.next_sentence_logits(&batch).unwrap().unwrap().to_vec2().unwrap();
    let b: Vec<Vec<f32>> = again.next_sentence_logits(&batch).unwrap().unwrap().to_vec2().unwrap();
    assert_eq!(a, b);
}

/// Per-row associations within 1e-5; means within 1e-9; Wilcoxon statistic and p equal.
fn check_becpro(model: &str, masking: &str) {
    let want = json(&fixture(&format!("becpro/reference-{model}-{masking}.json")));
    let file = becpro_file();
    let (dir, got) =
        eval(&model_dir(model), &["--tasks", "becpro", "--becpro-file", &file, "--becpro-masking", masking]);
    let rows = read_csv(&dir.path().join("becpro.csv"));
    let by_index: HashMap<&str, &HashMap<String, String>> = rows.iter().map(|r| (r["index"].as_str(), r)).collect();
    let mut worst: f64 = 0.0;
    for w in want["rows"].as_array().unwrap() {
        let idx = w["index"].to_string();
        let g = by_index.get(idx.as_str()).unwrap_or_else(|| panic!("{model} {masking}: row {idx} missing"));
        for k in ["log_p_target", "log_p_prior", "association"] {
            let (a, b): (f64, f64) = (g[k].parse().unwrap(), w[k].as_f64().unwrap());
            worst = worst.max((a - b).abs());
            assert!((a - b).abs() <= 1e-5, "{model} {masking} row {idx} {k}: {a} vs {b}");
        }
    }
    assert_eq!(rows.len(), want["rows"].as_array().unwrap().len());
    eprintln!("{model} {masking}: {} rows, max |difference| {worst:.1e}", rows.len());
    let sec = &got["becpro"];
    let overall = "overall".to_string();
    let groups = want["groups"].as_object().unwrap().iter().chain([(&overall, &want["overall"])]);
    for (g, w) in groups {
        let s = &sec[g];
        for k in ["mean_male", "mean_female"] {
            let (a, b) = (s[k].as_f64().unwrap(), w[k].as_f64().unwrap());
            assert!((a - b).abs() < 1e-6, "{model} {masking} {g} {k}: {a} vs {b}");
        }
        assert_eq!(s["n_male"], w["n_male"]);
        assert_eq!(s["n_female"], w["n_female"]);
        let t = &s["wilcoxon"];
        assert_eq!(t["n"], w["n_pairs"], "{g} pairs");
        assert_eq!(t["method"], w["method"], "{g} method");
        assert_eq!(t["statistic"].as_f64(), w["statistic"].as_f64(), "{model} {masking} {g} statistic");
        let (a, b) = (t["p_value"].as_f64().unwrap(), w["p_value"].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-12 * b.max(1e-300).max(1.0), "{model} {masking} {g} p: {a} vs {b}");
    }
    let notes = got["notes"].to_string();
    assert!(notes.contains("skipped 2 malformed rows"), "{notes}");
}

#[test]
fn becpro_matches_reference_with_subword_masking() {
    check_becpro("bert", "subword");
    check_becpro("roberta", "subword");
}

#[test]
fn becpro_matches_gender_bias_bert_with_its_masking() {
    check_becpro("bert", "bartl");
}

#[test]
fn becpro_skips_a_causal_lm_with_a_note() {
    let file = becpro_file();
    let (_dir, got) = eval(&model_dir("gpt2"), &["--tasks", "becpro", "--becpro-file", &file]);
    assert!(got.get("becpro").is_none());
    assert!(got["notes"].to_string().contains("BEC-Pro skipped"), "{}", got["notes"]);
}

#[test]
fn a_missing_becpro_file_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-becpro.tsv");
    let (m, out, f) =
        (model_dir("bert").display().to_string(), tmp.path().display().to_string(), missing.display().to_string());
    let o = fairnc(&["eval", "--model", &m, "--output", &out, "--tasks", "becpro", "--becpro-file", &f]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&f) && err.contains("does not exist"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn wilcoxon_matches_scipy() {
    let v = json(&fixture("wilcoxon/vectors.json"));
    for c in v["cases"].as_array().unwrap() {
        let d: Vec<f64> = c["d"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let correction = c["correction"].as_bool().unwrap();
        let name = format!("{} (correction {correction})", c["name"].as_str().unwrap());
        let t = fairnc::util::wilcoxon::wilcoxon(&d, correction).unwrap();
        assert_eq!(t.statistic, c["statistic"].as_f64().unwrap(), "{name} statistic");
        let (a, b) = (t.p_value, c["p_value"].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-12, "{name}: p {a} vs scipy {b} ({:?})", t.method);
        eprintln!("{name}: n {} {:?} p {a}", t.n, t.method);
    }
}
