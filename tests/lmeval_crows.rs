//! `fairnc eval --crows-variant lm-eval` against tools/fixtures/make_lmeval_crows_fixture.py, a
//! re-implementation of lm-evaluation-harness's crows_pairs_english (checked against lm-eval
//! 0.4.13 itself on the tiny GPT-2; see tests/fixtures/eval/lmeval-crows/).

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// Every fixture of the directory: one per model dir the generator was given.
fn fixtures() -> Vec<Value> {
    let dir = fixture("eval/lmeval-crows");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no fixtures", dir.display());
    files.iter().map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()).collect()
}

fn eval(model: &str, extra: &[&str]) -> (tempfile::TempDir, Value) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap().to_string();
    let mut args = vec!["eval", "--model", model, "--output", &out, "--tasks", "crows", "--crows-variant", "lm-eval"];
    args.extend_from_slice(extra);
    let o = fairnc(&args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(tmp.path().join("results.json")).unwrap()).unwrap();
    (tmp, r)
}

fn crows_rows(dir: &Path) -> Vec<HashMap<String, String>> {
    let mut rdr = csv::Reader::from_path(dir.join("crows.csv")).unwrap();
    let headers = rdr.headers().unwrap().clone();
    rdr.records()
        .map(|r| headers.iter().zip(r.unwrap().iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect())
        .collect()
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Aggregates of one group: n and pct_stereotype (and its stderr) exactly, likelihood_diff (and
/// its stderr) within the per-pair tolerance.
fn same_aggregates(got: &Value, want: &Value, what: &str) {
    assert_eq!(got["n"], want["n"], "{what}: n");
    assert_eq!(num(&got["pct_stereotype"]), num(&want["pct_stereotype"]), "{what}: pct_stereotype");
    assert_eq!(num(&got["pct_stereotype_stderr"]), num(&want["pct_stereotype_stderr"]), "{what}: its stderr");
    assert_eq!(num(&got["metric"]), num(&want["pct_stereotype"]).map(|p| 100.0 * p), "{what}: metric");
    for k in ["likelihood_diff", "likelihood_diff_stderr"] {
        match (num(&got[k]), num(&want[k])) {
            (Some(g), Some(w)) => assert!((g - w).abs() <= 1e-4, "{what}: {k} {g} vs {w}"),
            (g, w) => assert_eq!(g, w, "{what}: {k}"),
        }
    }
}

#[test]
fn lm_eval_variant_matches_the_reimplementation() {
    for want in fixtures() {
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join(want["model_dir"].as_str().unwrap());
        let limit = want["limit"].as_u64().unwrap().to_string();
        // A batch size that mixes lengths in a batch (right padding) and splits the pairs.
        let (dir, got) = eval(model.to_str().unwrap(), &["--crows-limit", &limit, "--batch-size", "7"]);
        let name = model.display().to_string();
        assert_eq!(got["settings"]["crows_scoring"], "lm-eval", "{name}");
        let rows = crows_rows(dir.path());
        let pairs = want["pairs"].as_array().unwrap();
        assert_eq!(rows.len(), pairs.len(), "{name}: rows");
        let mut worst = 0f64;
        for (row, p) in rows.iter().zip(pairs) {
            assert_eq!(row["index"], p["index"].to_string(), "{name}: row order");
            let skipped = p.get("skipped").is_some();
            assert_eq!(!row["skipped"].is_empty(), skipped, "{name}: pair {} skipped", p["index"]);
            if skipped {
                continue;
            }
            for (col, key) in [("raw_more", "ll_more"), ("raw_less", "ll_less")] {
                let g: f64 = row[col].parse().unwrap();
                worst = worst.max((g - p[key].as_f64().unwrap()).abs());
            }
            let hit = row["stereotypical"] == "1";
            assert_eq!(hit, p["pct_stereotype"] == 1.0, "{name}: pair {} outcome", p["index"]);
        }
        eprintln!("{name}: largest per-sentence log-likelihood difference {worst:.3e}");
        assert!(worst <= 1e-4, "{name}: a log-likelihood {worst} from the fixture's");
        same_aggregates(&got["crows"]["overall"], &want["overall"], &format!("{name} overall"));
        let types: Vec<&String> = want["by_type"].as_object().unwrap().keys().collect();
        let ours: Vec<&String> = got["crows"].as_object().unwrap().keys().filter(|k| k.as_str() != "overall").collect();
        assert_eq!(ours, types, "{name}: bias types");
        for t in types {
            same_aggregates(&got["crows"][t], &want["by_type"][t], &format!("{name} {t}"));
        }
        let md = std::fs::read_to_string(dir.path().join("results.md")).unwrap();
        assert!(md.contains("| pct_stereotype |") && md.contains("| likelihood_diff |"), "{md}");
    }
}

#[test]
fn the_batch_size_does_not_change_the_scores() {
    let gpt2 = model_dir("gpt2");
    let (a, _) = eval(gpt2.to_str().unwrap(), &["--crows-limit", "12", "--batch-size", "1"]);
    let (b, _) = eval(gpt2.to_str().unwrap(), &["--crows-limit", "12", "--batch-size", "64"]);
    for (x, y) in crows_rows(a.path()).iter().zip(crows_rows(b.path())) {
        for col in ["raw_more", "raw_less"] {
            if let (Ok(p), Ok(q)) = (x[col].parse::<f64>(), y[col].parse::<f64>()) {
                assert!((p - q).abs() < 1e-5, "pair {}: {col} {p} vs {q}", x["index"]);
            }
        }
    }
}

#[test]
fn masked_lms_are_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let bert = model_dir("bert");
    let o = fairnc(&[
        "eval",
        "--model",
        bert.to_str().unwrap(),
        "--tasks",
        "crows",
        "--crows-variant",
        "lm-eval",
        "--crows-limit",
        "5",
        "--output",
        tmp.path().to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let line = err.trim().lines().last().unwrap_or("");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(line.contains("--crows-variant lm-eval scores causal LMs only") && line.contains("masked LM"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
