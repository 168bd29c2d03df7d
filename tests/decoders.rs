//! The modern causal decoders (Llama, Mistral, Qwen2, GPT-NeoX, OPT) against transformers on
//! tiny random checkpoints (tools/fixtures/make_decoder_fixtures.py): token ids, hidden states
//! and logits of a right-padded batch, one AdamW step, and the untied head.

mod common;

use candle_core::{Device, Tensor};
use common::*;
use fairnc::model::{Exec, Overflow};
use fairnc::train::optim::{AdamW, AdamWConfig, clip_grad_norm};

const CASES: [&str; 8] = ["llama", "llama_tied", "mistral", "qwen2", "gpt_neox", "gpt_neox_serial", "opt", "opt_pre"];
const TOL: f32 = 1e-4;

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    a.sub(b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// (max |Δhidden|, max |Δlogits|) over real positions of the padded batch.
fn parity(case: &str) -> (f32, f32) {
    let dir = model_dir(case);
    let m = load(&dir);
    let exp = Expected::read(&dir);
    let rows = exp.rows();
    let texts: Vec<&str> = exp.sentences.iter().map(String::as_str).collect();
    let enc = m.encode(&texts, m.max_len(), Overflow::Error).unwrap();
    for (i, (e, r)) in enc.iter().zip(&rows).enumerate() {
        assert_eq!(&e.ids, r, "{case}: token ids of sentence {i} differ from transformers");
    }
    let batch = m.batch(rows.clone()).unwrap();
    let hidden = m.hidden(&batch, Exec::INFER).unwrap();
    let h = max_err_masked(&hidden, &exp.tensors["hidden"], &rows);
    let (b, t, _) = hidden.dims3().unwrap();
    let positions: Vec<(usize, usize)> = (0..b).flat_map(|i| (0..t).map(move |j| (i, j))).collect();
    let logits = m.logits_at(&hidden, &positions, Exec::INFER).unwrap().reshape((b, t, ())).unwrap();
    (h, max_err_masked(&logits, &exp.tensors["logits"], &rows))
}

#[test]
fn every_decoder_matches_transformers() {
    for case in CASES {
        let (h, l) = parity(case);
        eprintln!("{case:<16} max |Δhidden| = {h:.2e}   max |Δlogits| = {l:.2e}");
        assert!(h <= TOL, "{case}: hidden error {h}");
        assert!(l <= TOL, "{case}: logits error {l}");
    }
}

#[test]
fn decoder_training_graph_matches_inference_graph_and_batching_changes_nothing() {
    for case in CASES {
        let m = load(&model_dir(case));
        let rows = Expected::read(&model_dir(case)).rows();
        let batch = m.batch(rows.clone()).unwrap();
        let a = m.hidden(&batch, Exec::INFER).unwrap();
        let g = m.hidden(&batch, Exec { dropout: false, grad: true }).unwrap();
        let e = max_err_masked(&a, &g, &rows);
        assert!(e < 1e-5, "{case}: training graph differs by {e}");
        for (i, r) in rows.iter().enumerate() {
            let one = m.hidden(&m.batch(vec![r.clone()]).unwrap(), Exec::INFER).unwrap();
            let d = max_abs(&a.get(i).unwrap().narrow(0, 0, r.len()).unwrap(), &one.get(0).unwrap());
            assert!(d < 1e-5, "{case}: sentence {i} alone differs from its batched run by {d}");
        }
    }
}

/// One causal-LM step (mean next-token cross-entropy, clip 1.0, AdamW lr 1e-3, wd 0.01 except
/// biases and norms) against torch.optim.AdamW: loss, gradient norm and every weight after it.
#[test]
fn one_adamw_step_matches_pytorch_on_every_decoder() {
    for case in CASES {
        let dir = model_dir(case);
        let fx = fairnc::model::weights::load_tensors(&dir.join("onestep.safetensors"), &Device::Cpu).unwrap();
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("onestep.json")).unwrap()).unwrap();
        let m = load(&dir);
        let rows = Expected::read(&dir).rows();
        let positions: Vec<(usize, usize)> =
            fx["positions"].to_vec2::<i64>().unwrap().iter().map(|p| (p[0] as usize, p[1] as usize)).collect();
        let targets: Vec<u32> = fx["targets"].to_vec1::<i64>().unwrap().iter().map(|&t| t as u32).collect();
        let exec = Exec { dropout: false, grad: true };
        let hidden = m.hidden(&m.batch(rows).unwrap(), exec).unwrap();
        let logits = m.logits_at(&hidden, &positions, exec).unwrap();
        let loss =
            candle_nn::loss::cross_entropy(&logits, &Tensor::new(targets.as_slice(), &Device::Cpu).unwrap()).unwrap();
        let loss_v = loss.to_scalar::<f32>().unwrap() as f64;
        let mut grads = loss.backward().unwrap();
        let vars: Vec<candle_core::Var> = m.vars().into_iter().map(|(_, v)| v).collect();
        let norm = clip_grad_norm(&mut grads, &vars, 1.0).unwrap();
        let mut opt =
            AdamW::new(m.vars(), AdamWConfig { lr: 1e-3, weight_decay: 0.01, ..AdamWConfig::default() }).unwrap();
        opt.step(&grads, 1e-3).unwrap();
        let (want_loss, want_norm) = (meta["loss"].as_f64().unwrap(), meta["grad_norm"].as_f64().unwrap());
        assert!((loss_v - want_loss).abs() < 1e-5, "{case}: loss {loss_v} vs {want_loss}");
        assert!((norm - want_norm).abs() < 1e-5, "{case}: grad norm {norm} vs {want_norm}");
        let names: Vec<&str> = meta["param_names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
        assert_eq!(names.len(), m.vars().len(), "{case}: parameter count differs from torch's");
        let mut worst: f32 = 0.0;
        for torch_name in names {
            // transformers 5 calls GPT-NeoX's head `lm_head` in memory and `embed_out` on disk.
            let name = if case.starts_with("gpt_neox") && torch_name == "lm_head.weight" {
                "embed_out.weight"
            } else {
                torch_name
            };
            let d = max_abs(m.params.var(name).as_tensor(), &fx[torch_name]);
            // A key bias's true gradient is 0 (softmax ignores a per-query constant): rounding
            // noise of ~1e-9 on both sides becomes Adam steps of up to lr.
            if name.ends_with("k_proj.bias") {
                assert!(d <= 1e-3, "{case} {name}: {d}");
                continue;
            }
            if name.ends_with("query_key_value.bias") {
                // GPT-NeoX's fused bias: per head [q | k | v]; the k entries are such noise.
                let dh = m.config.head_dim();
                let got: Vec<f32> = m.params.var(name).as_tensor().to_vec1().unwrap();
                let want: Vec<f32> = fx[torch_name].to_vec1().unwrap();
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    let key = (dh..2 * dh).contains(&(i % (3 * dh)));
                    let tol = if key { 1e-3 } else { 1e-5 };
                    assert!((g - w).abs() < tol, "{case} {name}[{i}]: {g} vs {w}");
                    if !key {
                        worst = worst.max((g - w).abs());
                    }
                }
                continue;
            }
            worst = worst.max(d);
            assert!(d < 1e-5, "{case} {name}: {d}");
        }
        eprintln!(
            "{case:<16} loss Δ {:.1e}  grad-norm Δ {:.1e}  max |Δ weight| {worst:.1e}",
            (loss_v - want_loss).abs(),
            (norm - want_norm).abs()
        );
    }
}

/// An untied head is its own parameter: the classifier W is `lm_head` / `embed_out`, `info`
/// says so, and a loss on W's rows (as the NC3 regularizer's) reaches that parameter only.
#[test]
fn untied_heads_are_the_classifier_and_take_the_regularizer_gradient_alone() {
    for (case, head, embedding) in [
        ("llama", "lm_head.weight", "model.embed_tokens.weight"),
        ("mistral", "lm_head.weight", "model.embed_tokens.weight"),
        ("gpt_neox", "embed_out.weight", "gpt_neox.embed_in.weight"),
    ] {
        let m = load(&model_dir(case));
        assert_eq!(m.classifier_name(), head, "{case}");
        let info = m.info();
        assert!(info.tying.starts_with("untied") && info.tying.contains(head), "{case}: {}", info.tying);
        let w = m.classifier().as_tensor();
        let rows = w.index_select(&Tensor::new(&[3u32, 5, 7], &Device::Cpu).unwrap(), 0).unwrap();
        let grads = rows.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        assert!(grads.get(m.params.var(head).as_tensor()).is_some(), "{case}: no gradient on {head}");
        assert!(grads.get(m.params.var(embedding).as_tensor()).is_none(), "{case}: gradient reached {embedding}");
    }
    for (case, embedding) in [
        ("llama_tied", "model.embed_tokens.weight"),
        ("qwen2", "model.embed_tokens.weight"),
        ("opt", "model.decoder.embed_tokens.weight"),
    ] {
        let m = load(&model_dir(case));
        assert_eq!(m.classifier_name(), embedding, "{case}");
        assert!(!m.vars().iter().any(|(n, _)| n == "lm_head.weight"), "{case}: a tied head was loaded twice");
    }
}

/// A GPT-NeoX checkpoint whose head is stored under transformers' in-memory name `lm_head`
/// loads as the same model (`embed_out` on disk is the usual name).
#[test]
fn a_gpt_neox_head_stored_as_lm_head_loads_the_same() {
    let tmp = copy_dir(&model_dir("gpt_neox"));
    let path = tmp.path().join("model.safetensors");
    let renamed: Vec<(String, Tensor)> = fairnc::model::weights::load_tensors(&path, &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(n, t)| (if n == "embed_out.weight" { "lm_head.weight".to_string() } else { n }, t))
        .collect();
    assert!(renamed.iter().any(|(n, _)| n == "lm_head.weight"));
    fairnc::model::weights::save_tensors(&renamed, &path).unwrap();
    let (a, b) = (load(&model_dir("gpt_neox")), load(tmp.path()));
    assert_eq!(b.classifier_name(), "embed_out.weight");
    assert_eq!(max_abs(a.classifier().as_tensor(), b.classifier().as_tensor()), 0.0);
}

#[test]
fn decoder_special_tokens_come_from_the_checkpoint_files() {
    // (case, BOS the scorers start from, words looked up with a leading space)
    for (case, bos, spaced) in [
        ("llama", "<s>", false),
        ("qwen2", "<|endoftext|>", true),
        ("gpt_neox", "<|endoftext|>", true),
        ("opt", "</s>", true),
    ] {
        let m = load(&model_dir(case));
        let t = &m.tokenizer;
        assert_eq!(t.bos_id, t.token_to_id(bos), "{case}");
        assert_eq!(t.space_before_words, spaced, "{case}");
        assert!(t.special_ids.contains(&t.bos_id.unwrap()), "{case}");
    }
}

/// Every command that applies to a causal LM runs on every decoder family, and `debias`
/// (with the NC3 regularizer, whose gradient reaches an untied head) writes a checkpoint that
/// loads back with the same logits.
#[test]
fn every_command_runs_on_every_decoder() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("texts.txt");
    std::fs::write(&input, "he is a doctor.\nshe is a nurse and she works late.\n").unwrap();
    for case in ["llama", "mistral", "qwen2", "gpt_neox", "opt"] {
        let dir = model_dir(case);
        let model = dir.to_str().unwrap();
        let out = |name: &str| tmp.path().join(format!("{case}-{name}")).to_str().unwrap().to_string();
        let ok = |o: std::process::Output, what: &str| {
            assert!(o.status.success(), "{case} {what}: {}", String::from_utf8_lossy(&o.stderr));
            o
        };
        let info: serde_json::Value =
            serde_json::from_slice(&ok(fairnc(&["info", "--model", model, "--json"]), "info").stdout).unwrap();
        assert_eq!(info["kind"], "causal", "{case}");
        ok(
            fairnc(&[
                "hidden",
                "--model",
                model,
                "--input",
                input.to_str().unwrap(),
                "--output",
                &out("h.safetensors"),
            ]),
            "hidden",
        );
        let h =
            fairnc::model::weights::load_tensors(std::path::Path::new(&out("h.safetensors")), &Device::Cpu).unwrap();
        assert_eq!(h["hidden"].dims()[0], 2, "{case}");
        ok(fairnc(&["collapse", "--model", model, "--max-texts", "200", "--output", &out("collapse")]), "collapse");
        let eval =
            ["eval", "--model", model, "--crows-limit", "40", "--stereoset-limit", "40", "--output", &out("eval")];
        ok(fairnc(&eval), "eval");
        let o = fairnc(&["fill-mask", "--model", model, "he is a <mask>."]);
        assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).lines().count() == 1, "{case}: fill-mask");
        let debiased = out("debias");
        let args = [
            "debias",
            "--model",
            model,
            "--method",
            "cda",
            "--nc3",
            "0.5",
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--max-texts",
            "40",
            "--output",
            &debiased,
        ];
        ok(fairnc(&args), "debias");
        let saved = load(&std::path::Path::new(&debiased).join("model"));
        let base = load(&dir);
        assert_eq!(saved.family(), base.family(), "{case}");
        assert_eq!(saved.classifier_name(), base.classifier_name(), "{case}");
        let moved: f32 = saved
            .vars()
            .iter()
            .map(|(n, v)| max_abs(v.as_tensor(), base.params.var(n).as_tensor()))
            .fold(0.0, f32::max);
        assert!(moved > 0.0, "{case}: debias changed no weight");
    }
}

/// Settings fairnc does not implement, and broken decoder files, are one-line errors naming the
/// file and the key, never a silently different model.
#[test]
fn unsupported_decoder_settings_are_refused_with_one_line() {
    let edit = |case: &str, change: &dyn Fn(&mut serde_json::Value)| {
        let tmp = copy_dir(&model_dir(case));
        let path = tmp.path().join("config.json");
        let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        change(&mut cfg);
        std::fs::write(&path, serde_json::to_string(&cfg).unwrap()).unwrap();
        tmp
    };
    let cases: Vec<(tempfile::TempDir, &str)> = vec![
        (
            edit("llama", &|c| {
                c["rope_parameters"] = serde_json::json!({"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4})
            }),
            "yarn",
        ),
        (edit("llama", &|c| c["num_key_value_heads"] = 3.into()), "num_key_value_heads"),
        (edit("mistral", &|c| c["sliding_window"] = "four".into()), "sliding_window"),
        (edit("gpt_neox", &|c| c["rotary_pct"] = 0.1.into()), "rotary_pct"),
        (edit("opt", &|c| c["layer_norm_elementwise_affine"] = false.into()), "layer_norm_elementwise_affine"),
        (edit("qwen2", &|c| c["model_type"] = "qwen3".into()), "qwen3"),
    ];
    for (dir, word) in &cases {
        let o = fairnc(&["info", "--model", dir.path().to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{word}: accepted");
        assert_eq!(err.trim().lines().count(), 1, "{word}: {err}");
        assert!(err.contains("config.json") && err.contains(word), "{word}: {err}");
    }
    let tmp = copy_dir(&model_dir("llama"));
    std::fs::remove_file(tmp.path().join("tokenizer.json")).unwrap();
    let o = fairnc(&["info", "--model", tmp.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no tokenizer.json") && err.trim().lines().count() == 1, "{err}");
}

/// The study grid runs on a decoder with an untied head: debiased with and without NC3, audited.
#[test]
fn the_experiment_grid_runs_on_an_untied_decoder() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("grid.toml");
    let corpus = fixture("collapse/corpus.txt").display().to_string();
    let text = format!(
        "name = \"decoder\"\nmodels = [\"{}\"]\nseeds = [0]\n\n[methods]\nnone = [0]\ncda = [0, 1]\n\n[debias]\nsteps = 2\nbatch_size = 4\ncorpus = \"{corpus}\"\n\n[audit]\nquick = true\nmax_texts = 100\n",
        model_dir("llama").display()
    );
    std::fs::write(&cfg, text).unwrap();
    let out = tmp.path().join("out");
    let o = fairnc(&["experiment", "--config", cfg.to_str().unwrap(), "--output", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let cells = s["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 3);
    assert!(cells.iter().all(|c| c["status"] != "failed"), "{cells:?}");
}
