//! Checkpoints that would load quietly and give wrong numbers, and broken tokenizer files:
//! each is refused at load with one line naming the file, tensor or value.

mod common;

use candle_core::{Device, Tensor};
use common::*;
use fairnc::model::weights::{load_tensors, save_tensors};
use fairnc::model::{Exec, LanguageModel, LoadOptions, Overflow};
use std::path::Path;

fn rewrite(dir: &Path, f: impl Fn(String, Tensor) -> Option<(String, Tensor)>) {
    let path = dir.join("model.safetensors");
    let tensors = load_tensors(&path, &Device::Cpu).unwrap();
    let out: Vec<(String, Tensor)> = tensors.into_iter().filter_map(|(n, t)| f(n, t)).collect();
    save_tensors(&out, &path).unwrap();
}

fn load_err(dir: &Path) -> String {
    match LanguageModel::load(dir, &LoadOptions::default()) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => {
            let msg = format!("{e:#}");
            assert!(!msg.contains('\n'), "not one line: {msg}");
            msg
        }
    }
}

/// `t` with its first element replaced by `value`.
fn with_first(t: Tensor, value: f32) -> Tensor {
    let shape = t.dims().to_vec();
    let mut v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    v[0] = value;
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn edit_config(dir: &Path, from: &str, to: &str) {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from} not in config.json");
    std::fs::write(&path, text.replace(from, to)).unwrap();
}

#[test]
fn non_finite_weights_are_refused_naming_file_and_tensor() {
    let tmp = copy_dir(&model_dir("bert"));
    let name = "bert.encoder.layer.0.attention.self.query.weight";
    rewrite(tmp.path(), |n, t| Some(if n == name { (n, with_first(t, f32::NAN)) } else { (n, t) }));
    let e = load_err(tmp.path());
    assert!(e.contains(&format!("model.safetensors: tensor {name} holds NaN")), "{e}");

    let tmp = copy_dir(&model_dir("gpt2"));
    rewrite(tmp.path(), |n, t| {
        Some(if n == "transformer.ln_f.bias" { (n, with_first(t, f32::NEG_INFINITY)) } else { (n, t) })
    });
    let e = load_err(tmp.path());
    assert!(e.contains("model.safetensors: tensor transformer.ln_f.bias holds an infinite value"), "{e}");
}

#[test]
fn config_values_that_give_nan_outputs_are_refused() {
    for (from, to, expected) in [
        (
            "\"layer_norm_eps\": 1e-12",
            "\"layer_norm_eps\": -1",
            "layer_norm_eps is -1; it must be a positive finite number",
        ),
        (
            "\"layer_norm_eps\": 1e-12",
            "\"layer_norm_eps\": 0",
            "layer_norm_eps is 0; it must be a positive finite number",
        ),
        ("\"layer_norm_eps\": 1e-12", "\"layer_norm_eps\": \"tiny\"", "\"layer_norm_eps\" is not a number"),
        ("\"hidden_dropout_prob\": 0.1", "\"hidden_dropout_prob\": 1.5", "hidden dropout is 1.5; it must be in [0, 1)"),
        ("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 0", "number of layers is 0"),
        ("\"num_attention_heads\": 4", "\"num_attention_heads\": 0", "number of attention heads is 0"),
        ("\"pad_token_id\": 0", "\"pad_token_id\": 270", "pad_token_id 270 is outside the vocabulary of 270 tokens"),
    ] {
        let tmp = copy_dir(&model_dir("bert"));
        edit_config(tmp.path(), from, to);
        let e = load_err(tmp.path());
        assert!(e.contains("config.json") && e.contains(expected), "{to}: {e}");
    }
    let tmp = copy_dir(&model_dir("gpt2"));
    edit_config(tmp.path(), "\"layer_norm_epsilon\": 1e-05", "\"layer_norm_epsilon\": -1");
    let e = load_err(tmp.path());
    assert!(e.contains("config.json") && e.contains("layer_norm_eps is -1"), "{e}");
}

#[test]
fn weights_that_overflow_give_an_error_naming_the_model_not_nan_states() {
    // Finite weights so large that the first layer overflows: only the output check sees it.
    let tmp = copy_dir(&model_dir("bert"));
    rewrite(tmp.path(), |n, t| {
        if n == "bert.encoder.layer.0.intermediate.dense.weight" {
            Some((n, t.affine(0.0, 3e38).unwrap()))
        } else {
            Some((n, t))
        }
    });
    let m = load(tmp.path());
    let enc = m.encode(&["the doctor is here ."], 64, Overflow::Error).unwrap();
    let batch = m.batch(enc.into_iter().map(|e| e.ids).collect()).unwrap();
    let e = format!("{:#}", m.hidden(&batch, Exec::INFER).unwrap_err());
    assert!(
        e.contains(&tmp.path().display().to_string())
            && e.contains("hidden states of a batch of 1 text(s) are not finite"),
        "{e}"
    );
}

#[test]
fn fewer_layers_in_the_config_than_in_the_weights_is_refused() {
    let tmp = copy_dir(&model_dir("bert"));
    edit_config(tmp.path(), "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1");
    let e = load_err(tmp.path());
    assert!(
        e.contains(
            "model.safetensors: 16 tensor(s) are not used by the model config.json describes: bert.encoder.layer.1."
        ),
        "{e}"
    );
    assert!(
        e.contains("and 11 more") && e.contains("config.json says 1 layer(s); the weights have layers up to 1"),
        "{e}"
    );
}

#[test]
fn more_layers_in_the_config_than_in_the_weights_names_every_missing_tensor() {
    let tmp = copy_dir(&model_dir("gpt2"));
    edit_config(tmp.path(), "\"n_layer\": 2", "\"n_layer\": 3");
    let e = load_err(tmp.path());
    assert!(e.contains("model.safetensors: 12 tensor(s) the config.json needs are missing: transformer.h.2."), "{e}");
    assert!(e.contains("config.json says 3 layer(s); the weights have layers up to 1"), "{e}");
}

#[test]
fn a_stray_tensor_is_refused_but_pooler_and_next_sentence_head_are_kept() {
    let tmp = copy_dir(&model_dir("bert"));
    let path = tmp.path().join("model.safetensors");
    let mut all: Vec<(String, Tensor)> = load_tensors(&path, &Device::Cpu).unwrap().into_iter().collect();
    let d = Tensor::zeros((32, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::zeros(32, candle_core::DType::F32, &Device::Cpu).unwrap();
    all.push(("bert.pooler.dense.weight".into(), d.clone()));
    all.push(("bert.pooler.dense.bias".into(), b.clone()));
    all.push(("cls.seq_relationship.weight".into(), d.narrow(0, 0, 2).unwrap()));
    all.push(("cls.seq_relationship.bias".into(), b.narrow(0, 0, 2).unwrap()));
    save_tensors(&all, &path).unwrap();
    let m = load(tmp.path());
    assert!(
        m.params.extras.contains_key("bert.pooler.dense.weight")
            && m.params.extras.contains_key("cls.seq_relationship.bias")
    );

    all.push(("bert.encoder.adapter.weight".into(), b));
    save_tensors(&all, &path).unwrap();
    let e = load_err(tmp.path());
    assert!(
        e.contains("1 tensor(s) are not used by the model config.json describes: bert.encoder.adapter.weight"),
        "{e}"
    );
}

#[test]
fn special_tokens_stay_special_with_a_bare_vocab_txt() {
    let with_json = load(&model_dir("bert"));
    let tmp = copy_dir(&model_dir("bert"));
    std::fs::remove_file(tmp.path().join("tokenizer.json")).unwrap();
    let bare = load(tmp.path());
    assert!(bare.tokenizer.source.ends_with("vocab.txt"));
    let mask = bare.tokenizer.mask.as_ref().expect("a mask token").1;
    for text in ["the doctor said [MASK] would be late .", "[MASK] is here [SEP] [CLS]"] {
        let a = bare.encode(&[text], 64, Overflow::Error).unwrap();
        let b = with_json.encode(&[text], 64, Overflow::Error).unwrap();
        assert_eq!(a[0].ids, b[0].ids, "{text}");
        assert_eq!(a[0].ids.iter().filter(|&&i| i == mask).count(), 1, "{text}: {:?}", a[0].ids);
    }
}

#[test]
fn a_broken_merges_file_is_named_not_the_vocabulary() {
    let tmp = copy_dir(&model_dir("roberta"));
    std::fs::remove_file(tmp.path().join("tokenizer.json")).unwrap();
    let merges = tmp.path().join("merges.txt");
    std::fs::write(&merges, "#version: 0.2\nthis line has three\n").unwrap();
    let e = load_err(tmp.path());
    assert!(e.starts_with(&format!("{}: not a valid merges file", merges.display())), "{e}");

    let tmp = copy_dir(&model_dir("roberta"));
    std::fs::remove_file(tmp.path().join("tokenizer.json")).unwrap();
    std::fs::write(tmp.path().join("vocab.json"), "[1, 2]").unwrap();
    let e = load_err(tmp.path());
    assert!(e.starts_with(&format!("{}: not a valid BPE vocabulary", tmp.path().join("vocab.json").display())), "{e}");
}

#[test]
fn a_directory_where_a_file_belongs_is_named() {
    let tmp = copy_dir(&model_dir("bert"));
    let weights = tmp.path().join("model.safetensors");
    std::fs::remove_file(&weights).unwrap();
    std::fs::create_dir(&weights).unwrap();
    let e = load_err(tmp.path());
    assert!(
        e.contains(&format!("{}: is a directory; it should be the checkpoint's weights file", weights.display())),
        "{e}"
    );

    let tmp = copy_dir(&model_dir("bert"));
    let tok = tmp.path().join("tokenizer.json");
    std::fs::remove_file(&tok).unwrap();
    std::fs::create_dir(&tok).unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains(&format!("{}: is a directory, not a tokenizer file", tok.display())), "{e}");
}

#[test]
fn an_index_naming_a_file_outside_the_checkpoint_is_refused() {
    for bad in ["../model.safetensors", "/etc/passwd", "sub/model.safetensors", "..", ""] {
        let tmp = copy_dir(&model_dir("bert"));
        std::fs::rename(tmp.path().join("model.safetensors"), tmp.path().join("model-1.safetensors")).unwrap();
        let index = serde_json::json!({"weight_map": {"bert.embeddings.word_embeddings.weight": "model-1.safetensors", "cls.predictions.bias": bad}});
        std::fs::write(tmp.path().join("model.safetensors.index.json"), index.to_string()).unwrap();
        let e = load_err(tmp.path());
        assert!(
            e.contains("model.safetensors.index.json")
                && e.contains("\"weight_map\" entry cls.predictions.bias")
                && e.contains("is not a plain file name"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn fill_mask_fails_in_one_line_on_a_nan_model_and_finds_the_mask_with_a_bare_vocab() {
    let tmp = copy_dir(&model_dir("bert"));
    rewrite(tmp.path(), |n, t| Some(if n == "cls.predictions.bias" { (n, with_first(t, f32::NAN)) } else { (n, t) }));
    let dir = tmp.path().to_str().unwrap();
    let out = fairnc(&["fill-mask", "--model", dir, "the doctor said [MASK] would be late ."]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("model.safetensors: tensor cls.predictions.bias holds NaN"),
        "{err}"
    );

    let tmp = copy_dir(&model_dir("bert"));
    std::fs::remove_file(tmp.path().join("tokenizer.json")).unwrap();
    let out = fairnc(&["fill-mask", "--model", tmp.path().to_str().unwrap(), "the doctor said [MASK] would be late ."]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("NaN"));
}
