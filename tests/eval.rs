//! `fairnc eval` against a faithful Python re-implementation of the reference procedures
//! (tools/fixtures/eval_reference.py: bias-bench, Nangia et al., sent-bias; batch size 1, one
//! forward pass per masked variant).

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};


fn eval(model: &str, extra: &[&str]) -> (tempfile::TempDir, Value) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap().to_string();
    let mut args = vec!["eval", "--model", model, "--output", &out];
    args.extend_from_slice(extra);
    let o = fairnc(&args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(tmp.path().join("results.json")).unwrap()).unwrap();
    (tmp, r)
}

fn reference(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(&format!("eval/{name}.json"))).unwrap()).unwrap()
}

fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let mut rdr = csv::Reader::from_path(path).unwrap();
    let headers = rdr.headers().unwrap().clone();
    rdr.records().map(|r| headers.iter().zip(r.unwrap().iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect()).collect()
}

/// MiniLM with the fixture's fixed MLM head, assembled in a temporary checkpoint directory.
fn minilm_with_head() -> (tempfile::TempDir, PathBuf) {
    let src = fairnc::model::resolve::resolve("minilm").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dev = candle_core::Device::Cpu;
    let mut tensors: Vec<(String, candle_core::Tensor)> = fairnc::model::weights::load_tensors(&src.join("model.safetensors"), &dev).unwrap().into_iter().collect();
    tensors.extend(fairnc::model::weights::load_tensors(&fixture("eval/minilm-head.safetensors"), &dev).unwrap());
    fairnc::model::weights::save_tensors(&tensors, &tmp.path().join("model.safetensors")).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let dir = tmp.path().to_path_buf();
    (tmp, dir)
}

/// Per-pair unrounded scores within 1e-4 and the rounded ones equal (unless the raw score
/// sits within float noise of a rounding boundary), same skips; summaries equal, except
/// where a pair the reference marks fragile (an outcome that float noise can flip) differs.
fn compare_crows(dir: &Path, got: &Value, want: &Value, name: &str) {
    let rows = read_csv(&dir.join("crows.csv"));
    let fragile: Vec<u64> = want["fragile"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
    let by_index: HashMap<u64, &HashMap<String, String>> = rows.iter().map(|r| (r["index"].parse().unwrap(), r)).collect();
    let mut checked = 0;
    let mut flipped = 0;
    let mut worst: f64 = 0.0;
    for w in want["rows"].as_array().unwrap() {
        let idx = w["index"].as_u64().unwrap();
        let g = by_index.get(&idx).unwrap_or_else(|| panic!("{name}: row {idx} missing"));
        let skipped = w["skipped"].as_bool().unwrap();
        assert_eq!(!g["skipped"].is_empty(), skipped, "{name}: row {idx} skip differs ({:?} vs {:?})", g["skipped"], w.get("reason"));
        if skipped {
            continue;
        }
        for side in ["more", "less"] {
            let raw: f64 = g[&format!("raw_{side}")].parse().unwrap();
            let want_raw = w.get(&format!("raw_{side}")).and_then(Value::as_f64).unwrap_or_else(|| w[&format!("score_{side}")].as_f64().unwrap());
            worst = worst.max((raw - want_raw).abs());
            assert!((raw - want_raw).abs() <= 1e-4, "{name}: row {idx} raw_{side} {raw} vs {want_raw}");
            if w.get(&format!("raw_{side}")).is_none() {
                continue; // causal scores are not rounded
            }
            let rounded: f64 = g[&format!("score_{side}")].parse().unwrap();
            let want_rounded = w[&format!("score_{side}")].as_f64().unwrap();
            if rounded != want_rounded {
                // Only a raw score at a rounding boundary may round the other way.
                assert!((rounded - want_rounded).abs() < 1.5e-3 && ((want_raw * 1000.0).fract().abs() - 0.5).abs() < 0.1, "{name}: row {idx} score_{side} {rounded} vs {want_rounded}");
                flipped += 1;
            }
        }
        checked += 1;
    }
    eprintln!("{name}: {checked} pairs, max |raw score difference| {worst:.1e}, {flipped} rounded the other way at a boundary");
    assert!(checked > 0);
    for (t, s) in want["summary"].as_object().unwrap() {
        let ours = if t == "overall" { &got["crows"]["overall"] } else { &got["crows"][t] };
        assert_eq!(ours["n"], s["n"], "{name} {t} n");
        let (a, b) = (ours["metric"].as_f64().unwrap(), s["metric_unrounded"].as_f64().unwrap());
        let slack = 100.0 * fragile.len().max(flipped) as f64 / s["n"].as_f64().unwrap();
        assert!((a - b).abs() <= 1e-9 + slack, "{name} {t} metric {a} vs {b}");
    }
}

#[test]
fn crows_matches_reference_on_tiny_models() {
    let bert = model_dir("bert").display().to_string();
    let (dir, got) = eval(&bert, &["--tasks", "crows"]);
    compare_crows(dir.path(), &got, &reference("crows-bias-bench-tiny-bert"), "bias-bench tiny-bert");
    let (dir, got) = eval(&bert, &["--tasks", "crows", "--crows-variant", "nangia"]);
    compare_crows(dir.path(), &got, &reference("crows-nangia-tiny-bert"), "nangia tiny-bert");
    let (dir, got) = eval(&model_dir("gpt2").display().to_string(), &["--tasks", "crows"]);
    compare_crows(dir.path(), &got, &reference("crows-causal-tiny-gpt2"), "causal tiny-gpt2");
}

#[test]
fn crows_matches_reference_on_minilm() {
    let (_keep, model) = minilm_with_head();
    let m = model.display().to_string();
    let (dir, got) = eval(&m, &["--tasks", "crows,stereoset", "--crows-limit", "300", "--stereoset-limit", "500"]);
    compare_crows(dir.path(), &got, &reference("crows-bias-bench-minilm"), "bias-bench minilm");
    compare_stereoset(dir.path(), &got, &reference("stereoset-minilm"), "minilm");
    let (dir, got) = eval(&m, &["--tasks", "crows", "--crows-limit", "300", "--crows-variant", "nangia"]);
    compare_crows(dir.path(), &got, &reference("crows-nangia-minilm"), "nangia minilm");
    if fixture("eval/seat-minilm.json").exists() {
        let seat = common::shared_data().join("seat").display().to_string();
        let names: Vec<String> = std::fs::read_dir(&seat).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".jsonl").to_string()).collect();
        let (_t, got) = eval(&m, &["--tasks", "seat", "--seat-dir", &seat, "--seat-tests", &names.join(",")]);
        let exact = compare_seat(&got, &reference("seat-minilm"), "minilm");
        eprintln!("minilm: {} SEAT tests, {exact} exact p-values equal", names.len());
    }
}

/// Per-sentence scores within 1e-4 relative, same skipped clusters, summaries equal (a
/// cluster the reference lists as a near tie may go the other way).
fn compare_stereoset(dir: &Path, got: &Value, want: &Value, name: &str) {
    let rows = read_csv(&dir.join("stereoset.csv"));
    let ours: HashMap<&str, f64> = rows.iter().map(|r| (r["id"].as_str(), r["score"].parse().unwrap())).collect();
    let near: Vec<&str> = want["ties"]["near_ties"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let mut worst: f64 = 0.0;
    let mut checked = 0;
    for w in want["sentences"].as_array().unwrap() {
        let id = w["id"].as_str().unwrap();
        if w["skipped"].as_bool().unwrap_or(false) || w["score"].is_null() {
            assert!(!ours.contains_key(id), "{name}: sentence {id} should be skipped");
            continue;
        }
        let a = *ours.get(id).unwrap_or_else(|| panic!("{name}: sentence {id} missing"));
        // Masked LMs: probabilities; causal: bias-bench's geometric-mean probability, which
        // is exp of our mean log-probability.
        let b = w["score"].as_f64().unwrap();
        let a = if w.get("logp").is_some() { a.exp() } else { a };
        let rel = (a - b).abs() / b.abs().max(1e-30);
        worst = worst.max(rel);
        assert!(rel <= 1e-4, "{name}: sentence {id} score {a} vs {b}");
        checked += 1;
    }
    eprintln!("{name}: {checked} sentences, max relative score difference {worst:.1e}");
    for (d, s) in want["summary"].as_object().unwrap() {
        let ours = if d == "overall" { &got["stereoset"]["overall"] } else { &got["stereoset"][d] };
        assert_eq!(ours["n"], s["n"], "{name} {d} n");
        for k in ["ss", "lms", "icat"] {
            let (a, b) = (ours[k].as_f64().unwrap(), s[k].as_f64().unwrap());
            let terms = s.get("terms").and_then(Value::as_f64).unwrap_or(1.0);
            // A near tie flipping moves one term's SS by 100/count: bounded by 100·k/terms.
            let slack = if near.is_empty() { 0.0 } else { 100.0 * near.len() as f64 / terms };
            assert!((a - b).abs() <= 1e-9 + slack, "{name} {d} {k}: {a} vs {b}");
        }
    }
}

#[test]
fn stereoset_matches_reference_on_tiny_models() {
    let (dir, got) = eval(&model_dir("bert").display().to_string(), &["--tasks", "stereoset"]);
    compare_stereoset(dir.path(), &got, &reference("stereoset-tiny-bert"), "tiny-bert");
    let (dir, got) = eval(&model_dir("gpt2").display().to_string(), &["--tasks", "stereoset"]);
    compare_stereoset(dir.path(), &got, &reference("stereoset-tiny-gpt2"), "tiny-gpt2");
}

/// SEAT effect sizes within 1e-4 and exact p-values equal on every one of the 50 test files
/// (p-values from random splits cannot be matched and are not compared).
fn compare_seat(got: &Value, want: &Value, name: &str) -> usize {
    let mut exact = 0;
    for (test, w) in want["tests"].as_object().unwrap() {
        let g = &got["seat"][test];
        assert!(g.is_object(), "{name}: {test} missing");
        let (a, b) = (g["effect_size"].as_f64().unwrap(), w["effect_size"].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-4, "{name} {test}: d {a} vs {b}");
        assert_eq!(g["sizes"], w["sizes"], "{name} {test} sizes");
        if w["exact"].as_bool().unwrap() {
            // Two splits within float noise of the observed one could count differently.
            let near = w.get("min_abs_gap").and_then(Value::as_f64).is_some_and(|gap| gap < 1e-6);
            let (p, q) = (g["p_value"].as_f64().unwrap(), w["p_value"].as_f64().unwrap());
            if near {
                assert!((p - q).abs() <= 2.0 / w["total"].as_f64().unwrap(), "{name} {test}: p {p} vs {q}");
            } else {
                assert_eq!(p, q, "{name} {test}: p");
            }
            exact += 1;
        }
    }
    exact
}

#[test]
fn seat_matches_reference_on_all_fifty_files() {
    let names: Vec<String> = std::fs::read_dir(common::shared_data().join("seat"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".jsonl").to_string())
        .collect();
    let dir = common::shared_data().join("seat").display().to_string();
    let (_t, got) = eval(&model_dir("bert").display().to_string(), &["--tasks", "seat", "--seat-dir", &dir, "--seat-tests", &names.join(",")]);
    let exact = compare_seat(&got, &reference("seat-tiny-bert"), "tiny-bert");
    eprintln!("tiny-bert: {} tests, {exact} exact p-values equal", names.len());
}

#[test]
fn masked_scoring_without_a_mask_token_is_refused_but_seat_runs() {
    let tmp = copy_dir(&model_dir("bert"));
    let path = tmp.path().join("tokenizer.json");
    let mut tok: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    tok["model"]["vocab"].as_object_mut().unwrap().remove("[MASK]");
    tok["added_tokens"].as_array_mut().unwrap().retain(|t| t["content"] != "[MASK]");
    std::fs::write(&path, tok.to_string()).unwrap();
    std::fs::remove_file(tmp.path().join("vocab.txt")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let model = tmp.path().to_str().unwrap();
    let o = fairnc(&["eval", "--model", model, "--tasks", "crows", "--crows-limit", "5", "--output", out.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no mask token") && err.contains("CrowS-Pairs"), "{err}");
    let o = fairnc(&["eval", "--model", model, "--tasks", "seat", "--seat-tests", "sent-weat6", "--output", out.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn malformed_rows_are_skipped_counted_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let crows = tmp.path().join("crows.csv");
    std::fs::write(&crows, ",sent_more,sent_less,stereo_antistereo,bias_type\n0,he is a nurse .,she is a nurse .,stereo,gender\n1,,she is late .,stereo,gender\n2,the man is late .,the woman is late .,sideways,gender\n3,he said that .,she said that .,antistereo,gender\n").unwrap();
    let stereo = tmp.path().join("ss.json");
    let cluster = |id: &str, context: &str| serde_json::json!({"id": id, "target": "nurse", "bias_type": "gender", "context": context, "sentences": [
        {"id": format!("{id}a"), "sentence": "the nurse is he .", "gold_label": "stereotype", "labels": []},
        {"id": format!("{id}b"), "sentence": "the nurse is she .", "gold_label": "anti-stereotype", "labels": []},
        {"id": format!("{id}c"), "sentence": "the nurse is late .", "gold_label": "unrelated", "labels": []}]});
    let data = serde_json::json!({"version": "test", "data": {"intrasentence": [cluster("c1", "the nurse is BLANK ."), cluster("c2", "the nurse is here ."), {"id": "c3"}]}});
    std::fs::write(&stereo, data.to_string()).unwrap();
    let (_t, r) = eval(&model_dir("bert").display().to_string(), &["--tasks", "crows,stereoset", "--crows-file", crows.to_str().unwrap(), "--stereoset-file", stereo.to_str().unwrap()]);
    assert_eq!(r["crows"]["overall"]["n"], 2);
    assert_eq!(r["stereoset"]["overall"]["n"], 1);
    let notes = r["notes"].to_string();
    assert!(notes.contains("skipped 2 malformed rows") && notes.contains("skipped 2 malformed clusters") && notes.contains("no BLANK"), "{notes}");
}
