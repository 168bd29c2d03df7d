//! Shared by the benches: a BERT-base-sized checkpoint with random weights.

use candle_core::{Device, Tensor};
use fairnc::util::rng::SplitMix;

/// A 12-layer, 768-wide BERT with random weights (std 0.02) and MiniLM's (bert-base-uncased)
/// tokenizer, in a temporary directory.
pub fn random_bert_base(minilm: &std::path::Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cfg = serde_json::json!({
        "model_type": "bert", "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
        "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 512,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"
    });
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    std::fs::copy(minilm.join("tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
    let c = fairnc::model::ModelConfig::from_value(cfg).unwrap();
    let mut rng = SplitMix::new(1);
    let tensors: Vec<(String, Tensor)> = fairnc::model::layout::param_specs(&c)
        .into_iter()
        .map(|s| {
            let n: usize = s.shape.iter().product();
            let data: Vec<f32> = (0..n).map(|_| (rng.normal() * 0.02) as f32).collect();
            (s.name, Tensor::from_vec(data, s.shape.as_slice(), &Device::Cpu).unwrap())
        })
        .collect();
    fairnc::model::weights::save_tensors(&tensors, &dir.path().join("model.safetensors")).unwrap();
    dir
}
