//! `fairnc eval` against a faithful Python re-implementation of the reference procedures
//! (tools/fixtures/eval_reference.py: bias-bench, Nangia et al., sent-bias; batch size 1, one
//! forward pass per masked variant).

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    let path = fixture(&format!("eval/{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; regenerate with tools/fixtures/make_eval_fixtures.sh", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let mut rdr = csv::Reader::from_path(path).unwrap();
    let headers = rdr.headers().unwrap().clone();
    rdr.records()
        .map(|r| headers.iter().zip(r.unwrap().iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect())
        .collect()
}

/// MiniLM with the fixture's fixed MLM head, assembled in a temporary checkpoint directory.
fn minilm_with_head() -> (tempfile::TempDir, PathBuf) {
    let src = fairnc::registry::resolve("minilm").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dev = candle_core::Device::Cpu;
    let mut tensors: Vec<(String, candle_core::Tensor)> =
        fairnc::model::weights::load_tensors(&src.join("model.safetensors"), &dev).unwrap().into_iter().collect();
    tensors.extend(fairnc::model::weights::load_tensors(&fixture("eval/minilm-head.safetensors"), &dev).unwrap());
    fairnc::model::weights::save_tensors(&tensors, &tmp.path().join("model.safetensors")).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let dir = tmp.path().to_path_buf();
    (tmp, dir)
}

/// Per-pair unrounded scores within 1e-4 and the rounded ones equal (unless the raw score
/// sits within float noise of a rounding boundary), same skips; summaries equal. The only
/// slack: a pair whose outcome (more > less, less > more, or a tie) differs from the
/// reference's, allowed only where the reference marks it fragile or a score rounded the
/// other way at a boundary, moves its own bias type's metric by 100/n — counted per type.
fn compare_crows(dir: &Path, got: &Value, want: &Value, name: &str) {
    let rows = read_csv(&dir.join("crows.csv"));
    let fragile: BTreeSet<u64> = want["fragile"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: the reference has no `fragile` list"))
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let by_index: HashMap<u64, &HashMap<String, String>> =
        rows.iter().map(|r| (r["index"].parse().unwrap(), r)).collect();
    let mut checked = 0;
    let mut flipped = BTreeSet::new();
    let mut worst: f64 = 0.0;
    // Pairs whose outcome differs from the reference's, per bias type.
    let mut differing: BTreeMap<String, usize> = BTreeMap::new();
    for w in want["rows"].as_array().unwrap() {
        let idx = w["index"].as_u64().unwrap();
        let g = by_index.get(&idx).unwrap_or_else(|| panic!("{name}: row {idx} missing"));
        let skipped = w["skipped"].as_bool().unwrap();
        assert_eq!(
            !g["skipped"].is_empty(),
            skipped,
            "{name}: row {idx} skip differs ({:?} vs {:?})",
            g["skipped"],
            w.get("reason")
        );
        if skipped {
            continue;
        }
        for side in ["more", "less"] {
            let raw: f64 = g[&format!("raw_{side}")].parse().unwrap();
            let want_raw = w
                .get(format!("raw_{side}"))
                .and_then(Value::as_f64)
                .unwrap_or_else(|| w[&format!("score_{side}")].as_f64().unwrap());
            worst = worst.max((raw - want_raw).abs());
            assert!((raw - want_raw).abs() <= 1e-4, "{name}: row {idx} raw_{side} {raw} vs {want_raw}");
            if w.get(format!("raw_{side}")).is_none() {
                continue; // causal scores are not rounded
            }
            let rounded: f64 = g[&format!("score_{side}")].parse().unwrap();
            let want_rounded = w[&format!("score_{side}")].as_f64().unwrap();
            if rounded != want_rounded {
                // Only a raw score at a rounding boundary may round the other way.
                assert!(
                    (rounded - want_rounded).abs() < 1.5e-3 && ((want_raw * 1000.0).fract().abs() - 0.5).abs() < 0.1,
                    "{name}: row {idx} score_{side} {rounded} vs {want_rounded}"
                );
                flipped.insert(idx);
            }
        }
        // The scores each side compares: rounded for masked LMs; causal: bias-bench compares the
        // geometric-mean probabilities, we the mean log-probabilities (the same order).
        let ours = |side: &str| -> f64 { g[&format!("score_{side}")].parse().unwrap() };
        let theirs = |side: &str| -> f64 {
            w.get(format!("gm_{side}")).unwrap_or(&w[&format!("score_{side}")]).as_f64().unwrap()
        };
        if ours("more").partial_cmp(&ours("less")) != theirs("more").partial_cmp(&theirs("less")) {
            assert!(
                fragile.contains(&idx) || flipped.contains(&idx),
                "{name}: row {idx} outcome differs ({} vs {}, reference {} vs {}) and the reference does not mark it fragile",
                ours("more"),
                ours("less"),
                theirs("more"),
                theirs("less")
            );
            *differing.entry(w["bias_type"].as_str().unwrap().to_string()).or_default() += 1;
        }
        checked += 1;
    }
    eprintln!(
        "{name}: {checked} pairs, max |raw score difference| {worst:.1e}, {} rounded the other way at a boundary, {} outcomes differ",
        flipped.len(),
        differing.values().sum::<usize>()
    );
    assert!(checked > 0);
    for (t, s) in want["summary"].as_object().unwrap() {
        let ours = if t == "overall" { &got["crows"]["overall"] } else { &got["crows"][t] };
        assert_eq!(ours["n"], s["n"], "{name} {t} n");
        let k = if t == "overall" { differing.values().sum() } else { differing.get(t).copied().unwrap_or(0) };
        let (a, b) = (ours["metric"].as_f64().unwrap(), s["metric_unrounded"].as_f64().unwrap());
        let slack = 100.0 * k as f64 / s["n"].as_f64().unwrap();
        assert!((a - b).abs() <= 1e-9 + slack, "{name} {t} metric {a} vs {b} ({k} pairs of {} differ)", s["n"]);
        // Ties are neutral: in n, never in the numerator.
        for (ours_key, their_key) in
            [("neutral", "neutral_count"), ("stereo", "stereo_wins"), ("antistereo", "antistereo_wins")]
        {
            let (a, b) = (ours[ours_key].as_u64().unwrap(), s[their_key].as_u64().unwrap());
            assert!(a.abs_diff(b) as usize <= k, "{name} {t} {ours_key}: {a} vs {their_key} {b} ({k} pairs differ)");
        }
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
    let names = seat_test_names();
    let seat = common::shared_data().join("seat").display().to_string();
    let (_t, got) = eval(&m, &["--tasks", "seat", "--seat-dir", &seat, "--seat-tests", &names.join(",")]);
    let exact = compare_seat(&got, &reference("seat-minilm"), "minilm");
    eprintln!("minilm: {} SEAT tests, {exact} exact p-values equal", names.len());
}

/// The 50 SEAT test files of ../shared/data/seat, which the reference fixtures cover.
fn seat_test_names() -> Vec<String> {
    let dir = common::shared_data().join("seat");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; these tests need sent-bias's SEAT files (bias-bench data/seat/*.jsonl) there",
                dir.display()
            )
        })
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".jsonl").to_string())
        .collect();
    assert_eq!(names.len(), 50, "{}: expected bias-bench's 50 SEAT files, found {}", dir.display(), names.len());
    names
}

/// The outcome of a cluster from its three scores: (stereotype preferred, related count),
/// bias-bench's rules (a tie counts as anti-stereotype; related comparisons are strict).
fn cluster_outcome(scores: &HashMap<String, f64>) -> (bool, u8) {
    let (pro, anti, unrel) = (scores["stereotype"], scores["anti-stereotype"], scores["unrelated"]);
    (pro > anti, (pro > unrel) as u8 + (anti > unrel) as u8)
}

/// Per-sentence scores within 1e-4 relative, same skipped clusters, summaries equal. The only
/// slack: a cluster whose outcome differs from the reference's, allowed only for a cluster the
/// reference lists as a near tie, moves its term's SS and LMS by at most 100/(clusters of the
/// term) and so its domain's by that over the domain's term count (ICAT by 3× that) —
/// counted per domain.
fn compare_stereoset(dir: &Path, got: &Value, want: &Value, name: &str) {
    let rows = read_csv(&dir.join("stereoset.csv"));
    let ours: HashMap<&str, f64> = rows.iter().map(|r| (r["id"].as_str(), r["score"].parse().unwrap())).collect();
    let near: BTreeSet<&str> = want["ties"]["near_ties"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: the reference has no near-tie list"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
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
    // Per cluster: our scores by label (mean log-probabilities for causal models order as
    // bias-bench's probabilities do), its domain and term; and the reference's scores.
    let mut our_clusters: HashMap<&str, HashMap<String, f64>> = HashMap::new();
    let mut place: HashMap<&str, (&str, &str)> = HashMap::new();
    for r in &rows {
        our_clusters
            .entry(r["cluster"].as_str())
            .or_default()
            .insert(r["gold_label"].clone(), r["score"].parse().unwrap());
        place.insert(r["cluster"].as_str(), (r["domain"].as_str(), r["target"].as_str()));
    }
    let mut their_clusters: HashMap<&str, HashMap<String, f64>> = HashMap::new();
    for w in want["sentences"].as_array().unwrap().iter().filter(|w| w["score"].is_number()) {
        their_clusters
            .entry(w["cluster"].as_str().unwrap())
            .or_default()
            .insert(w["gold_label"].as_str().unwrap().to_string(), w["score"].as_f64().unwrap());
    }
    let mut clusters_of_term: HashMap<&str, usize> = HashMap::new();
    let mut terms_of_domain: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (domain, target) in place.values() {
        *clusters_of_term.entry(target).or_default() += 1;
        terms_of_domain.entry(domain).or_default().insert(target);
    }
    let all_terms = clusters_of_term.len();
    // Bound on how far the clusters whose outcome differs move each domain's SS (and LMS).
    let mut slack: BTreeMap<&str, f64> = BTreeMap::new();
    let mut differing = 0;
    for (cluster, theirs) in &their_clusters {
        let mine = our_clusters.get(cluster).unwrap_or_else(|| panic!("{name}: cluster {cluster} missing"));
        if cluster_outcome(mine) != cluster_outcome(theirs) {
            assert!(
                near.contains(cluster),
                "{name}: cluster {cluster} outcome differs ({mine:?} vs {theirs:?}) and the reference does not list it as a near tie"
            );
            let (domain, target) = place[cluster];
            let per_term = 100.0 / clusters_of_term[target] as f64;
            *slack.entry(domain).or_default() += per_term / terms_of_domain[domain].len() as f64;
            *slack.entry("overall").or_default() += per_term / all_terms as f64;
            differing += 1;
        }
    }
    eprintln!(
        "{name}: {checked} sentences, max relative score difference {worst:.1e}, {differing} cluster outcomes differ"
    );
    for (d, s) in want["summary"].as_object().unwrap() {
        let ours = if d == "overall" { &got["stereoset"]["overall"] } else { &got["stereoset"][d] };
        assert_eq!(ours["n"], s["n"], "{name} {d} n");
        let terms = if d == "overall" { all_terms } else { terms_of_domain.get(d.as_str()).map_or(0, BTreeSet::len) };
        assert_eq!(Some(terms as u64), s["terms"].as_u64(), "{name} {d} terms");
        let unit = slack.get(d.as_str()).copied().unwrap_or(0.0);
        for (k, bound) in [("ss", unit), ("lms", unit), ("icat", 3.0 * unit)] {
            let (a, b) = (ours[k].as_f64().unwrap(), s[k].as_f64().unwrap());
            assert!((a - b).abs() <= 1e-9 + bound, "{name} {d} {k}: {a} vs {b} (slack {bound})");
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
    let names = seat_test_names();
    let dir = common::shared_data().join("seat").display().to_string();
    let (_t, got) = eval(
        &model_dir("bert").display().to_string(),
        &["--tasks", "seat", "--seat-dir", &dir, "--seat-tests", &names.join(",")],
    );
    let exact = compare_seat(&got, &reference("seat-tiny-bert"), "tiny-bert");
    eprintln!("tiny-bert: {} tests, {exact} exact p-values equal", names.len());
}

/// Deliberate exact ties, whatever the model: StereoSet clusters whose three sentences are the
/// same text score SS = LMS = ICAT = 0 (a stereotype/anti-stereotype tie counts as
/// anti-stereotype; a tie with the unrelated sentence is not "related"), for masked and causal
/// scoring; CrowS-Pairs pairs of identical sentences are neutral under Nangia scoring (in n, not
/// in the metric) and out of N under bias-bench's (nothing differs to mask).
#[test]
fn exact_ties_follow_the_reference_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let stereo = tmp.path().join("ties.json");
    let cluster = |id: &str, sentence: &str| {
        serde_json::json!({"id": id, "target": "nurse", "bias_type": "gender", "context": "the nurse is BLANK .", "sentences": [
        {"id": format!("{id}a"), "sentence": sentence, "gold_label": "stereotype", "labels": []},
        {"id": format!("{id}b"), "sentence": sentence, "gold_label": "anti-stereotype", "labels": []},
        {"id": format!("{id}c"), "sentence": sentence, "gold_label": "unrelated", "labels": []}]})
    };
    let data = serde_json::json!({"version": "ties", "data": {"intrasentence": [cluster("t1", "the nurse is he ."), cluster("t2", "the nurse is kind .")]}});
    std::fs::write(&stereo, data.to_string()).unwrap();
    for family in ["bert", "gpt2"] {
        let (dir, r) = eval(
            &model_dir(family).display().to_string(),
            &["--tasks", "stereoset", "--stereoset-file", stereo.to_str().unwrap()],
        );
        let rows = read_csv(&dir.path().join("stereoset.csv"));
        assert_eq!(rows.len(), 6, "{family}");
        for c in rows.chunks(3) {
            assert!(c.iter().all(|r| r["score"] == c[0]["score"]), "{family}: the tie is not exact: {c:?}");
        }
        for block in [&r["stereoset"]["gender"], &r["stereoset"]["overall"]] {
            assert_eq!(
                (block["ss"].as_f64(), block["lms"].as_f64(), block["icat"].as_f64(), block["n"].as_u64()),
                (Some(0.0), Some(0.0), Some(0.0), Some(2)),
                "{family}: {block}"
            );
        }
    }
    let crows = tmp.path().join("ties.csv");
    std::fs::write(&crows, ",sent_more,sent_less,stereo_antistereo,bias_type\n0,the nurse is here .,the nurse is here .,stereo,gender\n1,he is kind .,he is kind .,antistereo,gender\n2,the man is late .,the woman is late .,stereo,race-color\n").unwrap();
    let bert = model_dir("bert").display().to_string();
    let (_t, r) =
        eval(&bert, &["--tasks", "crows", "--crows-file", crows.to_str().unwrap(), "--crows-variant", "nangia"]);
    let g = &r["crows"]["gender"];
    assert_eq!(
        (g["n"].as_u64(), g["neutral"].as_u64(), g["stereo"].as_u64(), g["antistereo"].as_u64(), g["metric"].as_f64()),
        (Some(2), Some(2), Some(0), Some(0), Some(0.0)),
        "{g}"
    );
    let o = &r["crows"]["overall"];
    assert_eq!((o["n"].as_u64(), o["neutral"].as_u64()), (Some(3), Some(2)), "{o}");
    let (_t, r) = eval(&bert, &["--tasks", "crows", "--crows-file", crows.to_str().unwrap()]);
    assert_eq!((r["crows"]["overall"]["n"].as_u64(), r["crows"].get("gender")), (Some(1), None), "{}", r["crows"]);
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
    let o = fairnc(&[
        "eval",
        "--model",
        model,
        "--tasks",
        "crows",
        "--crows-limit",
        "5",
        "--output",
        out.path().to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no mask token") && err.contains("CrowS-Pairs"), "{err}");
    let o = fairnc(&[
        "eval",
        "--model",
        model,
        "--tasks",
        "seat",
        "--seat-tests",
        "sent-weat6",
        "--output",
        out.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn malformed_rows_are_skipped_counted_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let crows = tmp.path().join("crows.csv");
    std::fs::write(&crows, ",sent_more,sent_less,stereo_antistereo,bias_type\n0,he is a nurse .,she is a nurse .,stereo,gender\n1,,she is late .,stereo,gender\n2,the man is late .,the woman is late .,sideways,gender\n3,he said that .,she said that .,antistereo,gender\n").unwrap();
    let stereo = tmp.path().join("ss.json");
    let cluster = |id: &str, context: &str| {
        serde_json::json!({"id": id, "target": "nurse", "bias_type": "gender", "context": context, "sentences": [
        {"id": format!("{id}a"), "sentence": "the nurse is he .", "gold_label": "stereotype", "labels": []},
        {"id": format!("{id}b"), "sentence": "the nurse is she .", "gold_label": "anti-stereotype", "labels": []},
        {"id": format!("{id}c"), "sentence": "the nurse is late .", "gold_label": "unrelated", "labels": []}]})
    };
    let data = serde_json::json!({"version": "test", "data": {"intrasentence": [cluster("c1", "the nurse is BLANK ."), cluster("c2", "the nurse is here ."), {"id": "c3"}]}});
    std::fs::write(&stereo, data.to_string()).unwrap();
    let (_t, r) = eval(
        &model_dir("bert").display().to_string(),
        &[
            "--tasks",
            "crows,stereoset",
            "--crows-file",
            crows.to_str().unwrap(),
            "--stereoset-file",
            stereo.to_str().unwrap(),
        ],
    );
    assert_eq!(r["crows"]["overall"]["n"], 2);
    assert_eq!(r["stereoset"]["overall"]["n"], 1);
    let notes = r["notes"].to_string();
    assert!(
        notes.contains("skipped 2 malformed rows")
            && notes.contains("skipped 2 malformed clusters")
            && notes.contains("no BLANK"),
        "{notes}"
    );
}
