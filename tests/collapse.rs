//! `fairnc collapse` against the independent f64 reference (tools/fixtures/collapse_reference.py),
//! shards + merge against the single run, resumption, and bad inputs.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

fn run_ok(args: &[&str]) -> Value {
    let o = fairnc(args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    let out = args.iter().position(|a| *a == "--output").map(|i| args[i + 1]).unwrap();
    serde_json::from_str(&std::fs::read_to_string(Path::new(out).join("collapse.json")).unwrap()).unwrap()
}

fn corpus() -> String {
    fixture("collapse/corpus.txt").display().to_string()
}

/// Agreement to 1e-6 relative (1e-12 absolute for values at zero).
fn close(a: &Value, b: &Value, what: &str) {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => {
            let tol = (1e-6 * x.abs().max(y.abs())).max(1e-12);
            assert!((x - y).abs() <= tol, "{what}: {x} vs reference {y}");
        }
        _ => assert_eq!(a, b, "{what}"),
    }
}

fn compare(got: &Value, want: &Value, name: &str) {
    for (k, v) in want["metrics"].as_object().unwrap() {
        close(&got["metrics"][k], v, &format!("{name} {k}"));
    }
    for key in ["K", "positions_stats", "positions_heldout", "classes_below_min_count"] {
        assert_eq!(got["counts"][key], want["counts"][key], "{name} counts.{key}");
    }
    assert_eq!(got["skipped"].as_array().unwrap().len(), want["skipped"].as_array().unwrap().len(), "{name} skipped");
    let got_classes = got["classes"].as_array().unwrap();
    let want_classes = want["classes"].as_array().unwrap();
    assert_eq!(got_classes.len(), want_classes.len(), "{name} classes");
    for (g, w) in got_classes.iter().zip(want_classes) {
        assert_eq!(g["id"], w["id"], "{name}");
        for key in ["n", "ncc_positions", "ncc_agree"] {
            assert_eq!(g[key], w[key], "{name} class {} {key}", w["token"]);
        }
        close(&g["var"], &w["var"], &format!("{name} class {} var", w["token"]));
        close(&g["s"], &w["s"], &format!("{name} class {} s", w["token"]));
    }
    for (group, v) in want["groups"].as_object().unwrap() {
        for key in ["k", "n"] {
            assert_eq!(got["groups"][group][key], v[key], "{name} {group}.{key}");
        }
        for key in ["duality_mean", "duality_std", "duality_dist", "mean_var"] {
            close(&got["groups"][group][key], &v[key], &format!("{name} {group}.{key}"));
        }
    }
}

fn check(name: &str, model: &str, extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap();
    let c = corpus();
    let mut args = vec!["collapse", "--model", model, "--corpus", &c, "--output", out];
    args.extend_from_slice(extra);
    let got = run_ok(&args);
    let want: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(&format!("collapse/{name}.json"))).unwrap()).unwrap();
    compare(&got, &want, name);
    for f in ["classes.csv", "summary.md", "nc3_cosines.png", "nc3_cosines.svg"] {
        assert!(tmp.path().join(f).exists(), "{name}: no {f}");
    }
}

#[test]
fn tiny_models_match_the_f64_reference() {
    let bert = model_dir("bert").display().to_string();
    check("bert-default", &bert, &[]);
    check("bert-fairness-nc", &bert, &["--convention", "fairness-nc"]);
    check("bert-p2", &bert, &["--cdnv-power", "2"]);
    check("bert-min12", &bert, &["--min-count", "12"]);
    check("gpt2-default", &model_dir("gpt2").display().to_string(), &[]);
}

#[test]
fn minilm_matches_the_f64_reference() {
    check("minilm-default", "minilm", &[]);
    check("minilm-fairness-nc", "minilm", &["--convention", "fairness-nc", "--features", "hidden"]);
}

#[test]
fn sharded_run_and_merge_equal_the_single_run_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |s: &str| tmp.path().join(s).display().to_string();
    let bert = model_dir("bert").display().to_string();
    let c = corpus();
    // 700 lines in blocks of 100: seven blocks over three shards.
    let lines: Vec<String> = std::fs::read_to_string(&c).unwrap().lines().map(String::from).collect();
    let big: Vec<String> =
        (0..7).flat_map(|k| lines.iter().map(move |l| if k % 2 == 0 { l.clone() } else { l.to_uppercase() })).collect();
    std::fs::write(p("big.txt"), big.join("\n")).unwrap();
    let base = ["collapse", "--model", &bert, "--corpus", &p("big.txt"), "--block", "100"];
    let with = |extra: &[&str]| -> Vec<String> { base.iter().chain(extra).map(|s| s.to_string()).collect() };
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = fairnc(&a);
        assert!(o.status.success(), "{a:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    let single = run_ok(&with(&["--output", &p("single")]).iter().map(String::as_str).collect::<Vec<_>>());
    for i in 0..3 {
        run(with(&["--shard", &format!("{i}/3"), "--output", &p(&format!("s{i}"))]));
    }
    run(vec!["collapse".into(), "merge".into(), "--output".into(), p("stats"), p("s0"), p("s1"), p("s2")]);
    for i in 0..3 {
        run(with(&["--shard", &format!("{i}/3"), "--means", &p("stats"), "--output", &p(&format!("d{i}"))]));
    }
    let o = fairnc(&["collapse", "merge", "--output", &p("merged"), &p("stats"), &p("d0"), &p("d1"), &p("d2")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let merged: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("merged/collapse.json")).unwrap()).unwrap();
    assert_eq!(merged["metrics"], single["metrics"]);
    assert_eq!(merged["classes"], single["classes"]);
    assert_eq!(merged["groups"], single["groups"]);
    assert!(merged["notes"].as_array().unwrap().is_empty(), "{}", merged["notes"]);

    // Shards from another model, or the same shard twice, are refused.
    let gpt2 = model_dir("gpt2").display().to_string();
    run(vec![
        "collapse".into(),
        "--model".into(),
        gpt2,
        "--corpus".into(),
        p("big.txt"),
        "--block".into(),
        "100".into(),
        "--shard".into(),
        "1/3".into(),
        "--output".into(),
        p("g1"),
    ]);
    let o = fairnc(&["collapse", "merge", "--output", &p("bad"), &p("s0"), &p("g1")]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("different model"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = fairnc(&["collapse", "merge", "--output", &p("bad2"), &p("s0"), &p("s0")]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("overlap"), "{}", String::from_utf8_lossy(&o.stderr));
    // Decisions made with other means are refused.
    let o = fairnc(&["collapse", "merge", "--output", &p("bad3"), &p("s0"), &p("d0")]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("other means"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn bad_inputs_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let bert = model_dir("bert").display().to_string();
    let out = tmp.path().join("o").display().to_string();
    let empty = tmp.path().join("empty.txt");
    std::fs::write(&empty, "\n\n").unwrap();
    let o = fairnc(&["collapse", "--model", &bert, "--corpus", empty.to_str().unwrap(), "--output", &out]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("the corpus is empty"));

    // Words that are classes but never occur.
    let text = tmp.path().join("plain.txt");
    std::fs::write(&text, "the doctor said that it would be late .\nthe nurse is late .\n").unwrap();
    let o = fairnc(&["collapse", "--model", &bert, "--corpus", text.to_str().unwrap(), "--output", &out]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("plain.txt") && err.contains("gender"), "{err}");

    // A word set none of whose words is in the vocabulary.
    let set = tmp.path().join("set.toml");
    std::fs::write(&set, "name = \"odd\"\n[[group]]\nname = \"a\"\nwords = [\"xylophonist\"]\n").unwrap();
    let o = fairnc(&[
        "collapse",
        "--model",
        &bert,
        "--words",
        set.to_str().unwrap(),
        "--corpus",
        &corpus(),
        "--output",
        &out,
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("word set odd"), "{err}");

    // One class only: pair metrics are not computable (null), never NaN.
    std::fs::write(&set, "name = \"one\"\n[[group]]\nname = \"a\"\nwords = [\"he\"]\n").unwrap();
    let r = run_ok(&[
        "collapse",
        "--model",
        &bert,
        "--words",
        set.to_str().unwrap(),
        "--corpus",
        &corpus(),
        "--output",
        &out,
    ]);
    assert_eq!(r["metrics"]["cdnv"], Value::Null);
    assert_eq!(r["metrics"]["duality_std"], Value::Null);
    assert!(r["metrics"]["ncc_agreement"].is_number());
    assert!(!std::fs::read_to_string(tmp.path().join("o/collapse.json")).unwrap().contains("NaN"));
}

#[test]
fn full_vocabulary_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().display().to_string();
    let r = run_ok(&[
        "collapse",
        "--model",
        model_dir("bert").to_str().unwrap(),
        "--words",
        "vocabulary",
        "--corpus",
        &corpus(),
        "--output",
        &out,
    ]);
    let k = r["counts"]["K"].as_u64().unwrap();
    assert!(k > 100, "{k}");
    assert!(r["metrics"]["cdnv"].is_number() && r["metrics"]["ncc_agreement"].is_number());
    assert!(r["groups"].as_object().unwrap().is_empty());
}

/// The stage as a library call: the same numbers as the command, shards in the directory but no
/// report (the caller writes it), the finished statistics reused, another computation refused.
#[test]
fn the_library_stage_measures_without_writing_a_report() {
    use fairnc::collapse::{CollapseConfig, measure};
    use fairnc::util::progress::Silent;
    let m =
        fairnc::registry::load(model_dir("bert").to_str().unwrap(), &fairnc::model::LoadOptions::default()).unwrap();
    let cfg = CollapseConfig { corpus: corpus(), ..CollapseConfig::default() };
    let tmp = tempfile::tempdir().unwrap();
    let r = measure(&m, &cfg, tmp.path(), false, &Silent).unwrap();
    let want: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("collapse/bert-default.json")).unwrap()).unwrap();
    compare(&serde_json::to_value(&r).unwrap(), &want, "library bert-default");
    assert_eq!(r.settings.model, m.name);
    assert!(tmp.path().join("stats.safetensors").exists() && tmp.path().join("decisions.safetensors").exists());
    assert!(!tmp.path().join("collapse.json").exists());
    assert_eq!(measure(&m, &cfg, tmp.path(), false, &Silent).unwrap(), r);
    let other = CollapseConfig { max_len: 16, ..cfg.clone() };
    let err = format!("{:#}", measure(&m, &other, tmp.path(), false, &Silent).unwrap_err());
    assert!(err.contains("holds stats.safetensors of another computation"), "{err}");
    assert!(CollapseConfig { batch_size: 0, ..cfg }.validate().is_err());
}
