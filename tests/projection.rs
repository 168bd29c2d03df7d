//! Projection debiasing (SentenceDebias, INLP) against a re-implementation of bias-bench's code
//! path (tools/fixtures/make_projection_fixtures.py: sklearn PCA, LinearSVC, scipy's orth, the
//! forward hook), and projected models through every command.

mod common;

use candle_core::{Device, Tensor};
use common::*;
use fairnc::model::{Exec, LanguageModel, LoadOptions};
use fairnc::project::{inlp, linalg, svm};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn expected(family: &str) -> (Value, std::collections::BTreeMap<String, Tensor>) {
    let dir = fixture(&format!("projection/{family}"));
    let json: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let t = fairnc::model::weights::load_tensors(&dir.join("expected.safetensors"), &Device::Cpu).unwrap();
    (json, t)
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_dtype(candle_core::DType::F64).unwrap().to_vec2().unwrap()
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(candle_core::DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn tsv(name: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(fixture(&format!("projection/{name}")))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// Largest |a − b| over the positions the mask keeps (`[B, T, D]` states, `[B, T]` mask).
fn masked_max_diff(a: &[Vec<Vec<f32>>], b: &[Vec<Vec<f32>>], mask: &[Vec<f32>]) -> f32 {
    let mut worst = 0f32;
    for (i, row) in mask.iter().enumerate() {
        for (p, _) in row.iter().enumerate().filter(|(_, on)| **on > 0.0) {
            for (x, y) in a[i][p].iter().zip(&b[i][p]) {
                worst = worst.max((x - y).abs());
            }
        }
    }
    worst
}

/// A copy of a fixture model with the generator's INLP projection beside it.
fn projected(family: &str) -> tempfile::TempDir {
    let tmp = copy_dir(&model_dir(family));
    std::fs::copy(
        fixture(&format!("projection/{family}/projection.safetensors")),
        tmp.path().join("projection.safetensors"),
    )
    .unwrap();
    tmp
}

#[test]
fn sentence_debias_subspace_matches_bias_bench() {
    let pairs = tsv("pairs.tsv");
    for family in ["bert", "gpt2"] {
        let (json, t) = expected(family);
        let m = load(&model_dir(family));
        let d = m.feature_width();
        let max_len = json["max_len"].as_u64().unwrap() as usize;
        let p = &fairnc::util::progress::Silent;
        let male: Vec<String> = pairs.iter().map(|r| r[0].clone()).collect();
        let female: Vec<String> = pairs.iter().map(|r| r[1].clone()).collect();
        let em = fairnc::project::encode::pooled(&m, &male, max_len, true, 4, "male", p).unwrap();
        let ef = fairnc::project::encode::pooled(&m, &female, max_len, true, 4, "female", p).unwrap();
        let dm = max_diff(&em, &flat(&t["sd_male"]));
        let df = max_diff(&ef, &flat(&t["sd_female"]));
        assert!(dm < 1e-5 && df < 1e-5, "{family}: pooled representations differ by {dm:e} / {df:e}");
        let (pcs, var) = fairnc::project::sentence_debias_subspace(&[em, ef], d, 2);
        let want = rows(&t["sd_components"]);
        for (k, (got, w)) in pcs.iter().zip(&want).enumerate() {
            let sign = if linalg::dot(got, w) < 0.0 { -1.0 } else { 1.0 };
            let g: Vec<f64> = got.iter().map(|x| sign * x).collect();
            let diff = max_diff(&g, w);
            eprintln!("{family}: component {k} differs from sklearn's by {diff:e} (up to sign)");
            assert!(diff < 1e-5, "{family}: component {k} differs by {diff:e}");
            let wv = json["sd_explained_variance"][k].as_f64().unwrap();
            assert!((var[k] - wv).abs() < 1e-6 * wv.max(1e-3), "{family}: variance {} vs {wv}", var[k]);
        }
    }
}

#[test]
fn inlp_projection_formula_matches_bias_bench_for_the_same_weights() {
    for family in ["bert", "gpt2"] {
        let (json, t) = expected(family);
        let d = t["inlp_projection"].dims()[0];
        let ws: Vec<Vec<f64>> = json["inlp_weights_f64"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|w| {
                w.as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
            })
            .collect();
        let p = inlp::nullspace_projection(&ws, d);
        let diff = max_diff(&p, &flat(&t["inlp_projection"]));
        eprintln!("{family}: P from bias-bench's weights differs by {diff:e}");
        assert!(diff < 1e-6, "{family}: {diff:e}");
    }
}

#[test]
fn inlp_features_classifier_and_projection_against_sklearn() {
    let rows_in = tsv("inlp.tsv");
    let sentences: Vec<String> = rows_in.iter().map(|r| r[1].clone()).collect();
    for family in ["bert", "gpt2"] {
        let (json, t) = expected(family);
        let m = load(&model_dir(family));
        let d = m.feature_width();
        let x = fairnc::project::encode::pooled(
            &m,
            &sentences,
            m.max_len(),
            false,
            8,
            "inlp",
            &fairnc::util::progress::Silent,
        )
        .unwrap();
        let dx = max_diff(&x, &flat(&t["inlp_features"]));
        assert!(dx < 1e-5, "{family}: features differ by {dx:e}");
        let y: Vec<i64> = json["inlp_labels"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        let idx = |k: &str| -> Vec<usize> {
            json[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect()
        };
        let (tr, dv) = (idx("inlp_train"), idx("inlp_dev"));
        let pick = |ids: &[usize]| -> (Vec<f64>, Vec<i64>) {
            (ids.iter().flat_map(|&i| x[i * d..(i + 1) * d].to_vec()).collect(), ids.iter().map(|&i| y[i]).collect())
        };
        let (xtr, ytr) = pick(&tr);
        let (xdv, ydv) = pick(&dv);
        // The first classifier on the same rows: sklearn's liblinear stops at tol 1e-4, ours
        // converges further, so the weights agree to the solver tolerance.
        let svc = svm::LinearSvc::fit(&linalg::Rows { data: &xtr, d }, &ytr).unwrap();
        let w0 = rows(&t["inlp_w0"]);
        let num: f64 =
            svc.rows.iter().zip(&w0).map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>()).sum();
        let den: f64 = w0.iter().flatten().map(|x| x * x).sum();
        let rel = (num / den).sqrt();
        eprintln!("{family}: first classifier ‖W − W_sklearn‖/‖W_sklearn‖ = {rel:e}");
        assert!(rel < 1e-2, "{family}: {rel:e}");
        let run = inlp::run((&xtr, &ytr), (&xdv, &ydv), d, 4, &fairnc::util::progress::Silent).unwrap();
        let want: Vec<f64> =
            json["inlp_dev_accuracy"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        eprintln!("{family}: dev accuracy ours {:?}, sklearn {want:?}", run.dev_accuracy);
        assert_eq!(run.dev_accuracy[0], want[0], "{family}: the first classifier's dev accuracy");
        assert_eq!(run.basis.len(), json["inlp_removed"].as_u64().unwrap() as usize, "{family}: removed rank");
        let p = linalg::removing(&run.basis, d);
        let diff = max_diff(&p, &flat(&t["inlp_projection"]));
        eprintln!("{family}: final P differs from bias-bench's by {diff:e}");
        assert!(diff < 5e-2, "{family}: {diff:e}");
    }
}

#[test]
fn projected_hidden_states_match_the_forward_hook() {
    for family in ["bert", "gpt2"] {
        let (json, t) = expected(family);
        let dir = projected(family);
        let m = load(dir.path());
        let info = m.projection().expect("the directory's projection is applied").clone();
        assert_eq!((info.method.as_str(), info.bias.as_str()), ("inlp", "gender"));
        assert_eq!(info.rank, json["inlp_removed"].as_u64().unwrap() as usize);
        let probe: Vec<&str> = json["probe"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let enc = m.encode(&probe, 64, fairnc::model::Overflow::Error).unwrap();
        let batch = m.batch(enc.iter().map(|e| e.ids.clone()).collect()).unwrap();
        let h = m.hidden(&batch, Exec::INFER).unwrap();
        let want = &t["probe_projected"];
        let mask: Vec<Vec<f32>> = t["probe_mask"].to_vec2().unwrap();
        let (got, want) = (h.to_vec3::<f32>().unwrap(), want.to_vec3::<f32>().unwrap());
        let worst = masked_max_diff(&got, &want, &mask);
        assert!(worst < 1e-5, "{family}: projected hidden states differ by {worst:e}");
        // The explicit-attention path (AUL/AULA, mlm-bias) reads the same projected states.
        if family == "bert" {
            let (explicit, _) = m.hidden_with_attention(&batch).unwrap();
            let apart = masked_max_diff(&explicit.to_vec3::<f32>().unwrap(), &want, &mask);
            assert!(apart < 1e-4, "{family}: the attention path's hidden states are {apart:e} from the projected ones");
        }
        // The base model differs: the projection did something.
        let base = load(&model_dir(family)).hidden(&batch, Exec::INFER).unwrap();
        let moved = (base - h).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(moved > 1e-3, "{family}: projection changed nothing");
    }
}

#[test]
fn the_projection_flag_overrides_and_bad_files_are_one_line_errors() {
    let file = fixture("projection/bert/projection.safetensors");
    let m =
        LanguageModel::load(&model_dir("bert"), &LoadOptions { projection: Some(file.clone()), ..Default::default() })
            .unwrap();
    assert_eq!(m.projection().unwrap().file, file.display().to_string());
    // Wrong width: gpt2's is 32 wide too, so build a 16-wide one.
    let tmp = tempfile::tempdir().unwrap();
    let narrow = tmp.path().join("narrow.safetensors");
    let eye: Vec<f64> = (0..256).map(|i| if i % 17 == 0 { 1.0 } else { 0.0 }).collect();
    let save = |path: &Path, m: &[f64], w: usize| {
        fairnc::model::projection::save(
            path,
            &fairnc::model::projection::ToSave {
                matrix: m,
                width: w,
                basis: &[],
                method: "inlp",
                bias: "gender",
                rank: 0,
            },
            Default::default(),
        )
    };
    save(&narrow, &eye, 16).unwrap();
    let bert = model_dir("bert").display().to_string();
    let o = fairnc(&["info", "--model", &bert, "--projection", narrow.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("narrow.safetensors") && err.contains("32 wide"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // Non-finite: the writer refuses it, and a file holding one is refused at load.
    let mut bad = vec![0f64; 32 * 32];
    bad[5] = f64::NAN;
    assert!(save(&tmp.path().join("nan.safetensors"), &bad, 32).unwrap_err().to_string().contains("non-finite"));
    let nan = tmp.path().join("nan2.safetensors");
    let mut v = vec![0f32; 32 * 32];
    v[33] = f32::INFINITY;
    fairnc::model::weights::save_tensors(
        &[("projection".into(), Tensor::from_vec(v, (32, 32), &Device::Cpu).unwrap())],
        &nan,
    )
    .unwrap();
    let o = fairnc(&["info", "--model", &bert, "--projection", nan.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("nan2.safetensors") && err.contains("not finite"), "{err}");
    // info names the projection.
    let o = fairnc(&["info", "--model", &bert, "--projection", file.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["projection"]["method"], "inlp");
    let o = fairnc(&["info", "--model", &bert, "--projection", file.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("projection   inlp (gender bias)"));
}

fn corpus_file(dir: &Path) -> PathBuf {
    let mut lines: Vec<String> = tsv("pairs.tsv").into_iter().flatten().collect();
    lines.extend(tsv("inlp.tsv").into_iter().map(|r| r[1].clone()));
    let p = dir.join("corpus.txt");
    std::fs::write(&p, lines.join("\n")).unwrap();
    p
}

#[test]
fn debias_writes_a_projected_model_that_collapse_measures() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = corpus_file(tmp.path());
    let words = fixture("projection/gender.toml");
    let bert = model_dir("bert").display().to_string();
    let (c, w) = (corpus.to_str().unwrap(), words.to_str().unwrap());
    for (method, extra) in [("sentence-debias", vec!["--components", "2"]), ("inlp", vec!["--iterations", "3"])] {
        let out = tmp.path().join(method);
        let mut args = vec!["debias", "--method", method, "--model", &bert, "--corpus", c, "--words", w, "--output"];
        let o_s = out.to_str().unwrap().to_string();
        args.push(&o_s);
        args.extend(extra.iter().copied());
        let o = fairnc(&args);
        assert!(o.status.success(), "{method}: {}", String::from_utf8_lossy(&o.stderr));
        let rec: Value = serde_json::from_str(&std::fs::read_to_string(out.join("projection.json")).unwrap()).unwrap();
        assert!(rec["rank"].as_u64().unwrap() >= 1, "{rec}");
        assert!(out.join("projection.md").exists() && out.join("model/config.json").exists());
        let m = load(&out.join("model"));
        assert_eq!(m.projection().unwrap().method, method);
        // Fine-tuning a projected model is refused in one line.
        let mdir = out.join("model").display().to_string();
        let ft = tmp.path().join(format!("ft-{method}"));
        let o = fairnc(&["debias", "--method", "cda", "--model", &mdir, "--output", ft.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains("not a trainable part"), "{err}");
        assert!(!ft.exists(), "the refusal leaves no output behind");
    }
    // NC on the projected model: the class means lie in P's image, and NC3 differs from the base.
    let proj = tmp.path().join("sentence-debias/model");
    let m = load(&proj);
    let basis = fairnc::model::weights::load_tensors(&proj.join("projection.safetensors"), &Device::Cpu).unwrap();
    let v = rows(&basis["basis"]);
    assert_eq!(v.len(), 2);
    let ids = m.tokenizer.token_to_id("he").expect("he is one token");
    let texts = ["he is a doctor", "he said his job is hard", "the man said he works"];
    let enc = m.encode(&texts, 64, fairnc::model::Overflow::Error).unwrap();
    let batch = m.batch(enc.iter().map(|e| e.ids.clone()).collect()).unwrap();
    let h = m.hidden(&batch, Exec::INFER).unwrap().to_vec3::<f32>().unwrap();
    let mut mean = vec![0f64; m.feature_width()];
    let mut n = 0;
    for (b, e) in enc.iter().enumerate() {
        for (p, &id) in e.ids.iter().enumerate() {
            if id == ids {
                mean.iter_mut().zip(&h[b][p]).for_each(|(a, &x)| *a += x as f64);
                n += 1;
            }
        }
    }
    assert!(n >= 3);
    mean.iter_mut().for_each(|a| *a /= n as f64);
    let norm = linalg::dot(&mean, &mean).sqrt();
    for dir in &v {
        let along = linalg::dot(&mean, dir).abs();
        assert!(along < 1e-5 * norm.max(1.0), "class mean of \"he\" has {along:e} along a removed direction");
    }
    let collapse = |model: &str, out: &Path| -> Value {
        let o = fairnc(&["collapse", "--model", model, "--corpus", c, "--words", w, "--output", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_str(&std::fs::read_to_string(out.join("collapse.json")).unwrap()).unwrap()
    };
    let base = collapse(&bert, &tmp.path().join("nc-base"));
    let ours = collapse(proj.to_str().unwrap(), &tmp.path().join("nc-proj"));
    assert!(base["settings"].get("projection").is_none());
    assert_eq!(ours["settings"]["projection"]["method"], "sentence-debias");
    let (a, b) = (base["metrics"]["duality_mean"].as_f64().unwrap(), ours["metrics"]["duality_mean"].as_f64().unwrap());
    assert!((a - b).abs() > 1e-6, "NC3 duality {a} on the base and {b} on the projected model");
}

#[test]
fn eval_and_quick_audit_run_on_a_projected_model() {
    let dir = projected("bert");
    let model = dir.path().display().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("eval");
    let o = fairnc(&[
        "eval",
        "--model",
        &model,
        "--tasks",
        "crows",
        "--crows-limit",
        "20",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = tmp.path().join("audit");
    let o = fairnc(&["audit", "--model", &model, "--quick", "--max-texts", "200", "--output", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a: Value = serde_json::from_str(&std::fs::read_to_string(out.join("audit.json")).unwrap()).unwrap();
    assert_eq!(a["projection"]["method"], "inlp");
    assert_eq!(a["collapse"]["settings"]["projection"]["bias"], "gender");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("last-layer states projected by inlp (gender bias,"), "{md}");
}
