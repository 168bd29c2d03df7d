//! `fairnc eval --self-debias` against bias-bench's own Self-Debias code
//! (tools/fixtures/make_self_debias_fixture.py: its modeling.py/generation.py on the tiny BERT and
//! GPT-2, one forward pass per variant), on the small inputs in tests/fixtures/self_debias/.

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn inputs(name: &str) -> String {
    fixture(&format!("self_debias/{name}")).display().to_string()
}

/// Every expected JSON: (file name, contents).
fn expected() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(fixture("self_debias"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && p.file_name().unwrap() != "stereoset.json")
        .map(|p| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p.file_name().unwrap().to_string_lossy().to_string(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 4, "expected fixtures missing: regenerate with tools/fixtures/make_self_debias_fixture.py");
    out
}

fn eval(model: &str, extra: &[&str]) -> (tempfile::TempDir, Value) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap().to_string();
    let (crows, stereo) = (inputs("crows.csv"), inputs("stereoset.json"));
    let mut args = vec![
        "eval",
        "--model",
        model,
        "--tasks",
        "crows,stereoset",
        "--crows-file",
        &crows,
        "--stereoset-file",
        &stereo,
        "--output",
        &out,
    ];
    args.extend_from_slice(extra);
    let o = fairnc(&args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(tmp.path().join("results.json")).unwrap()).unwrap();
    (tmp, r)
}

fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let mut rdr = csv::Reader::from_path(path).unwrap();
    let headers = rdr.headers().unwrap().clone();
    rdr.records()
        .map(|r| headers.iter().zip(r.unwrap().iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect())
        .collect()
}

fn model_of(want: &Value) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(want["model_dir"].as_str().unwrap())
}

fn num(s: &str) -> f64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}"))
}

/// Per-pair scores within 1e-5 (masked: the unrounded means, and the rounded ones equal;
/// causal: the mean log-probabilities), the same skips, and exact counts per bias type.
fn compare_crows(dir: &Path, got: &Value, want: &Value, name: &str) -> f64 {
    let causal = want["kind"] == "causal";
    let rows: HashMap<String, HashMap<String, String>> =
        read_csv(&dir.join("crows.csv")).into_iter().map(|r| (r["index"].clone(), r)).collect();
    let mut worst: f64 = 0.0;
    for w in want["crows"]["rows"].as_array().unwrap() {
        let idx = w["index"].to_string();
        let g = &rows[&idx];
        let skipped = w["skipped"].as_bool().unwrap();
        assert_eq!(
            !g["skipped"].is_empty(),
            skipped,
            "{name}: pair {idx} skip: {:?} vs {:?}",
            g["skipped"],
            w["reason"]
        );
        if skipped {
            continue;
        }
        for side in ["more", "less"] {
            let (ours, theirs) = if causal {
                (num(&g[&format!("raw_{side}")]), w[&format!("score_{side}")].as_f64().unwrap())
            } else {
                let rounded = num(&g[&format!("score_{side}")]);
                assert_eq!(rounded, w[&format!("score_{side}")].as_f64().unwrap(), "{name}: pair {idx} score_{side}");
                (num(&g[&format!("raw_{side}")]), w[&format!("raw_{side}")].as_f64().unwrap())
            };
            worst = worst.max((ours - theirs).abs());
            assert!((ours - theirs).abs() <= 1e-5, "{name}: pair {idx} {side}: {ours} vs {theirs}");
        }
    }
    for (t, s) in want["crows"]["summary"].as_object().unwrap() {
        let gs = &got["crows"][t];
        if s["n"] == 0 {
            assert!(gs.is_null(), "{name}: CrowS {t} has no scored pair, yet {gs}");
            continue;
        }
        let counts = |v: &Value, keys: [&str; 4]| keys.map(|k| v[k].as_u64());
        assert_eq!(
            counts(gs, ["n", "stereo", "antistereo", "neutral"]),
            counts(s, ["n", "stereo_wins", "antistereo_wins", "neutral_count"]),
            "{name}: CrowS {t}: {gs} vs {s}"
        );
        let m = gs["metric"].as_f64().unwrap();
        assert!((m - s["metric_unrounded"].as_f64().unwrap()).abs() < 1e-9, "{name}: CrowS {t} metric {m}");
    }
    worst
}

/// Per-sentence scores within 1e-5 (masked: mean probability; causal: mean log-probability),
/// the same clusters skipped, SS/LMS/ICAT per domain and overall equal.
fn compare_stereoset(dir: &Path, got: &Value, want: &Value, name: &str) -> f64 {
    let rows: HashMap<String, HashMap<String, String>> =
        read_csv(&dir.join("stereoset.csv")).into_iter().map(|r| (r["id"].clone(), r)).collect();
    let sentences = want["stereoset"]["sentences"].as_array().unwrap();
    assert_eq!(rows.len(), sentences.len(), "{name}: StereoSet sentences scored");
    let mut worst: f64 = 0.0;
    for w in sentences {
        let id = w["id"].as_str().unwrap();
        let g = rows.get(id).unwrap_or_else(|| panic!("{name}: sentence {id} missing"));
        let (ours, theirs) = (num(&g["score"]), w["score"].as_f64().unwrap());
        worst = worst.max((ours - theirs).abs());
        assert!((ours - theirs).abs() <= 1e-5, "{name}: sentence {id}: {ours} vs {theirs}");
    }
    for (d, s) in want["stereoset"]["summary"].as_object().unwrap() {
        let gs = &got["stereoset"][d];
        if s.is_null() {
            assert!(gs.is_null(), "{name}: StereoSet {d} should be absent: {gs}");
            continue;
        }
        assert_eq!(gs["n"], s["n"], "{name}: StereoSet {d} n");
        for k in ["ss", "lms", "icat"] {
            let (a, b) = (gs[k].as_f64().unwrap(), s[k].as_f64().unwrap());
            assert!((a - b).abs() < 1e-9, "{name}: StereoSet {d} {k} {a} vs {b}");
        }
    }
    worst
}

#[test]
fn self_debias_matches_bias_bench() {
    for (name, want) in expected() {
        let mode = want["mode"].as_str().unwrap();
        let (dir, got) = eval(model_of(&want).to_str().unwrap(), &["--self-debias", mode, "--batch-size", "5"]);
        let c = compare_crows(dir.path(), &got, &want, &name);
        let s = compare_stereoset(dir.path(), &got, &want, &name);
        assert_eq!(got["settings"]["self_debias"], mode, "{name}");
        let notes = got["notes"].to_string();
        assert!(
            notes.contains("Self-Debias") && notes.contains("SEAT and NC statistics are the base model's"),
            "{notes}"
        );
        eprintln!("{name}: CrowS max |diff| {c:.2e}, StereoSet max |diff| {s:.2e}");
    }
}

/// The batch layout (how many sequences share a padded batch) does not change a score, and
/// Self-Debias does change them (it is not silently off).
#[test]
fn batching_does_not_change_self_debiased_scores() {
    for family in ["bert", "gpt2"] {
        let model = model_dir(family).display().to_string();
        let (a, _) = eval(&model, &["--self-debias", "gender", "--batch-size", "1"]);
        let (b, _) = eval(&model, &["--self-debias", "gender", "--batch-size", "64"]);
        let (plain, r) = eval(&model, &[]);
        assert!(r["settings"]["self_debias"].is_null());
        let (mut differs, mut n) = (0, 0);
        for file in ["crows.csv", "stereoset.csv"] {
            let (x, y, z) =
                (read_csv(&a.path().join(file)), read_csv(&b.path().join(file)), read_csv(&plain.path().join(file)));
            assert_eq!(x.len(), y.len());
            for ((p, q), u) in x.iter().zip(&y).zip(&z) {
                for col in ["raw_more", "raw_less", "score"] {
                    if let (Some(Ok(s)), Some(Ok(t))) =
                        (p.get(col).map(|v| v.parse::<f64>()), q.get(col).map(|v| v.parse::<f64>()))
                    {
                        assert!((s - t).abs() < 1e-6, "{family} {file}: {col} {s} vs {t}");
                        n += 1;
                        if u.get(col).and_then(|v| v.parse::<f64>().ok()).is_some_and(|w| (w - s).abs() > 1e-6) {
                            differs += 1;
                        }
                    }
                }
            }
        }
        assert!(n > 20 && differs * 2 > n, "{family}: Self-Debias changed only {differs} of {n} scores");
    }
}

#[test]
fn a_bad_self_debias_value_is_one_line_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out").display().to_string();
    let bert = model_dir("bert").display().to_string();
    for cmd in [vec!["eval", "--model", &bert, "--output", &out], vec!["audit", "--model", &bert]] {
        let mut args = cmd.clone();
        args.extend(["--self-debias", "sexism"]);
        let o = fairnc(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && !err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("--self-debias") && err.contains("sexism"), "{err}");
    }
    // The lm-eval CrowS variant has no Self-Debias scoring: refused in one line, naming the flag.
    let gpt2 = model_dir("gpt2").display().to_string();
    let o = fairnc(&[
        "eval",
        "--model",
        &gpt2,
        "--tasks",
        "crows",
        "--crows-file",
        &inputs("crows.csv"),
        "--crows-variant",
        "lm-eval",
        "--self-debias",
        "gender",
        "--output",
        &out,
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.trim_end().lines().count() == 1 && err.contains("--self-debias"), "{err}");
}
