//! Loading real-world checkpoint variants and refusing broken ones with a clear message.

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

fn hidden_err(dir: &Path, family: &str) -> f32 {
    let m = load(dir);
    let exp = Expected::read(&model_dir(family));
    let rows = exp.rows();
    let h = m.hidden(&m.batch(rows.clone()).unwrap(), Exec::INFER).unwrap();
    max_err_masked(&h, &exp.tensors["hidden"], &rows)
}

fn load_err(dir: &Path) -> String {
    match LanguageModel::load(dir, &LoadOptions::default()) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn old_gamma_beta_names_without_prefix_load() {
    let tmp = copy_dir(&model_dir("bert"));
    rewrite(tmp.path(), |n, t| {
        let n = n.strip_prefix("bert.").map(String::from).unwrap_or(n);
        let n = n.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta");
        Some((n, t))
    });
    assert!(hidden_err(tmp.path(), "bert") < 1e-4);
}

#[test]
fn gpt2_without_transformer_prefix_loads() {
    let tmp = copy_dir(&model_dir("gpt2"));
    rewrite(tmp.path(), |n, t| Some((n.strip_prefix("transformer.").map(String::from).unwrap_or(n), t)));
    assert!(hidden_err(tmp.path(), "gpt2") < 1e-4);
}

#[test]
fn sharded_checkpoint_loads() {
    let tmp = copy_dir(&model_dir("roberta"));
    let path = tmp.path().join("model.safetensors");
    let tensors = load_tensors(&path, &Device::Cpu).unwrap();
    std::fs::remove_file(&path).unwrap();
    let (a, b): (Vec<_>, Vec<_>) = tensors.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let mut map = serde_json::Map::new();
    for (file, part) in [("model-00001-of-00002.safetensors", a), ("model-00002-of-00002.safetensors", b)] {
        let part: Vec<(String, Tensor)> = part.into_iter().map(|(_, x)| x).collect();
        for (n, _) in &part {
            map.insert(n.clone(), file.into());
        }
        save_tensors(&part, &tmp.path().join(file)).unwrap();
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(tmp.path().join("model.safetensors.index.json"), index.to_string()).unwrap();
    assert!(hidden_err(tmp.path(), "roberta") < 1e-4);
}

#[test]
fn bare_encoder_gets_a_new_head_and_says_so() {
    for family in ["bert", "roberta", "distilbert"] {
        let tmp = copy_dir(&model_dir(family));
        rewrite(tmp.path(), |n, t| {
            let head = n.starts_with("cls.") || n.starts_with("lm_head") || n.starts_with("vocab_");
            (!head).then(|| (n.split_once('.').map(|(_, r)| r.to_string()).unwrap(), t))
        });
        let m = load(tmp.path());
        assert!(m.params.new_head, "{family}");
        assert!(m.params.notes.iter().any(|n| n.contains("not pretrained")));
        assert!(hidden_err(tmp.path(), family) < 1e-4, "{family}");
        // The new head's decoder is the embedding, and its bias starts at zero.
        let (_, emb) = fairnc::model::layout::tied_names(&m.config).expect("the BERT family and GPT-2 tie their heads");
        assert_eq!(m.classifier().as_tensor().id(), m.params.var(emb).as_tensor().id());
    }
}

#[test]
fn untied_decoder_copy_is_reported() {
    let tmp = copy_dir(&model_dir("bert"));
    let emb = load_tensors(&tmp.path().join("model.safetensors"), &Device::Cpu).unwrap()
        ["bert.embeddings.word_embeddings.weight"].clone();
    let path = tmp.path().join("model.safetensors");
    let mut all: Vec<(String, Tensor)> = load_tensors(&path, &Device::Cpu).unwrap().into_iter().collect();
    all.push(("cls.predictions.decoder.weight".into(), (emb + 1.0).unwrap()));
    save_tensors(&all, &path).unwrap();
    let m = load(tmp.path());
    assert!(m.params.notes.iter().any(|n| n.contains("differs")), "{:?}", m.params.notes);
}

#[test]
fn broken_inputs_fail_with_one_line_naming_the_file() {
    // Missing directory.
    let e = load_err(Path::new("/nonexistent/model"));
    assert!(e.contains("/nonexistent/model") && e.contains("does not exist"), "{e}");

    // Unknown model type.
    let tmp = copy_dir(&model_dir("bert"));
    let cfg = std::fs::read_to_string(tmp.path().join("config.json")).unwrap().replace("\"bert\"", "\"t5\"");
    std::fs::write(tmp.path().join("config.json"), cfg).unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("config.json") && e.contains("unknown model_type \"t5\""), "{e}");

    // Truncated safetensors.
    let tmp = copy_dir(&model_dir("bert"));
    let path = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("model.safetensors") && e.contains("not a valid safetensors"), "{e}");

    // Garbage safetensors.
    std::fs::write(&path, b"garbage").unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("model.safetensors") && e.contains("not a valid safetensors"), "{e}");

    // A tensor with the wrong shape: both shapes named.
    let tmp = copy_dir(&model_dir("bert"));
    rewrite(tmp.path(), |n, t| {
        if n == "bert.encoder.layer.1.intermediate.dense.weight" {
            Some((n, t.narrow(0, 0, 10).unwrap()))
        } else {
            Some((n, t))
        }
    });
    let e = load_err(tmp.path());
    assert!(
        e.contains("bert.encoder.layer.1.intermediate.dense.weight")
            && e.contains("[10, 32]")
            && e.contains("[64, 32]"),
        "{e}"
    );

    // A missing backbone tensor.
    let tmp = copy_dir(&model_dir("gpt2"));
    rewrite(tmp.path(), |n, t| (n != "transformer.h.0.ln_2.bias").then_some((n, t)));
    let e = load_err(tmp.path());
    assert!(e.contains("1 tensor(s) the config.json needs are missing: transformer.h.0.ln_2.bias"), "{e}");

    // Tokenizer larger than the embedding.
    let tmp = copy_dir(&model_dir("bert"));
    rewrite(tmp.path(), |n, t| {
        if n == "bert.embeddings.word_embeddings.weight" || n == "cls.predictions.bias" {
            Some((n, t.narrow(0, 0, 260).unwrap()))
        } else {
            Some((n, t))
        }
    });
    let cfg = std::fs::read_to_string(tmp.path().join("config.json"))
        .unwrap()
        .replace("\"vocab_size\": 270", "\"vocab_size\": 260");
    std::fs::write(tmp.path().join("config.json"), cfg).unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("tokenizer.json") && e.contains("270 tokens") && e.contains("260 rows"), "{e}");

    // No weights at all.
    let tmp = copy_dir(&model_dir("bert"));
    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    let e = load_err(tmp.path());
    assert!(e.contains("no model.safetensors"), "{e}");
    assert!(!e.contains('\n'));
}

#[test]
fn long_text_is_truncated_or_refused() {
    let m = load(&model_dir("bert"));
    let long = "the doctor said that he would be late . ".repeat(20);
    let enc = m.encode(&[long.as_str()], m.max_len(), Overflow::Truncate).unwrap();
    assert!(enc[0].truncated);
    assert_eq!(enc[0].ids.len(), m.max_len());
    assert_eq!(*enc[0].ids.last().unwrap(), m.tokenizer.token_to_id("[SEP]").unwrap());
    let e = m.encode(&[long.as_str()], m.max_len(), Overflow::Error).unwrap_err();
    assert!(format!("{e:#}").contains("longer than 64 tokens"));
    // Roberta's table is shorter by its position offset.
    let r = load(&model_dir("roberta"));
    assert_eq!(r.max_len(), 64);
}

#[test]
fn saved_model_round_trips() {
    for family in FAMILIES {
        let m = load(&model_dir(family));
        let out = tempfile::tempdir().unwrap();
        m.save(out.path()).unwrap();
        // transformers needs this metadata; the tied decoder is not duplicated.
        let bytes = std::fs::read(out.path().join("model.safetensors")).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap().get("format").map(String::as_str), Some("pt"));
        let (tied, _) =
            fairnc::model::layout::tied_names(&m.config).expect("the BERT family and GPT-2 tie their heads");
        assert!(meta.info(tied).is_none(), "{family}: tied copy written");
        assert!(hidden_err(out.path(), family) < 1e-4, "{family}");
        let m2 = load(out.path());
        for (name, v) in m.vars() {
            let w = m2.params.var(&name);
            let d =
                v.as_tensor().sub(w.as_tensor()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert_eq!(d, 0.0, "{family} {name}");
        }
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.path().join("config.json")).unwrap()).unwrap();
        assert_eq!(cfg["architectures"][0], m.family().lm_architecture());
    }
}
