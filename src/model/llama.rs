//! Llama, Mistral and Qwen2: pre-RMSNorm causal decoders with rotary embeddings, grouped-query
//! attention and a SwiGLU MLP. Mistral adds sliding-window attention, Qwen2 q/k/v biases; the
//! LM head is `lm_head.weight` unless `tie_word_embeddings` makes it the embedding matrix.

use super::batch::Batch;
use super::config::ModelConfig;
use super::layers::{Dropout, Exec, embed_tokens, head_logits, linear, self_attention};
use super::layout::ParamSpec;
use super::rotary::RotaryTables;
use super::weights::ParamStore;
use anyhow::Result;
use candle_core::{DType, Tensor, Var};

pub fn layer_prefix(i: usize) -> String {
    format!("model.layers.{i}")
}

/// Every parameter, in checkpoint names and PyTorch `[out, in]` shapes.
pub fn param_specs(cfg: &ModelConfig) -> Vec<ParamSpec> {
    let (d, v, f) = (cfg.hidden_size, cfg.vocab_size, cfg.intermediate_size);
    let (q, kv) = (cfg.num_heads * cfg.head_dim(), cfg.num_kv_heads() * cfg.head_dim());
    let dc = &cfg.decoder;
    let mut out = vec![ParamSpec::backbone("model.embed_tokens.weight", &[v, d])];
    let proj = |out: &mut Vec<ParamSpec>, name: String, o: usize, i: usize, bias: bool| {
        out.push(ParamSpec::backbone(&format!("{name}.weight"), &[o, i]));
        if bias {
            out.push(ParamSpec::backbone(&format!("{name}.bias"), &[o]));
        }
    };
    for i in 0..cfg.num_layers {
        let l = layer_prefix(i);
        out.push(ParamSpec::backbone(&format!("{l}.input_layernorm.weight"), &[d]));
        proj(&mut out, format!("{l}.self_attn.q_proj"), q, d, dc.qkv_bias);
        proj(&mut out, format!("{l}.self_attn.k_proj"), kv, d, dc.qkv_bias);
        proj(&mut out, format!("{l}.self_attn.v_proj"), kv, d, dc.qkv_bias);
        proj(&mut out, format!("{l}.self_attn.o_proj"), d, q, dc.o_bias);
        out.push(ParamSpec::backbone(&format!("{l}.post_attention_layernorm.weight"), &[d]));
        proj(&mut out, format!("{l}.mlp.gate_proj"), f, d, dc.mlp_bias);
        proj(&mut out, format!("{l}.mlp.up_proj"), f, d, dc.mlp_bias);
        proj(&mut out, format!("{l}.mlp.down_proj"), d, f, dc.mlp_bias);
    }
    out.push(ParamSpec::backbone("model.norm.weight", &[d]));
    if !cfg.tied_head() {
        out.push(ParamSpec::backbone("lm_head.weight", &[v, d]));
    }
    out
}

/// A projection whose bias is optional; a missing one is a constant zero (not trained).
pub struct Proj {
    pub w: Var,
    b: Tensor,
}

impl Proj {
    pub fn from(store: &ParamStore, name: &str) -> Result<Self> {
        let w = store.var(&format!("{name}.weight")).clone();
        let b = match store.vars.get(&format!("{name}.bias")) {
            Some(b) => b.as_tensor().clone(),
            None => Tensor::zeros(w.dim(0)?, w.dtype(), w.device())?,
        };
        Ok(Proj { w, b })
    }

    pub fn forward(&self, x: &Tensor, exec: Exec) -> Result<Tensor> {
        linear(x, self.w.as_tensor(), &self.b, exec)
    }
}

/// RMSNorm: `w · x / √(mean(x²) + ε)`.
pub struct RmsNorm {
    w: Var,
}

impl RmsNorm {
    pub fn from(store: &ParamStore, name: &str) -> Self {
        RmsNorm { w: store.var(&format!("{name}.weight")).clone() }
    }

    pub fn forward(&self, x: &Tensor, eps: f64, exec: Exec) -> Result<Tensor> {
        // candle's fused kernel has no backward pass; training composes the same formula.
        Ok(if exec.grad {
            candle_nn::ops::rms_norm_slow(x, self.w.as_tensor(), eps as f32)?
        } else {
            candle_nn::ops::rms_norm(&x.contiguous()?, self.w.as_tensor(), eps as f32)?
        })
    }
}

struct Block {
    ln_attn: RmsNorm,
    q: Proj,
    k: Proj,
    v: Proj,
    o: Proj,
    ln_mlp: RmsNorm,
    gate: Proj,
    up: Proj,
    down: Proj,
    window: Option<usize>,
}

pub struct Llama {
    cfg: ModelConfig,
    pub embed: Var,
    blocks: Vec<Block>,
    norm: RmsNorm,
    /// The untied LM head; None when it is `embed`.
    lm_head: Option<Var>,
}

/// Additive mask `[1, 1, T, T]`: a query sees itself and earlier keys, and with a window `w`
/// only the `w` latest of them (transformers: key index > query index − w). Padding is on the
/// right, so a real token never sees a padded one.
pub fn causal_mask(t: usize, window: Option<usize>, dtype: DType, dev: &candle_core::Device) -> Result<Tensor> {
    let w = window.unwrap_or(usize::MAX);
    let data: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j > i || i - j >= w { super::layers::MASKED } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(data, (1, 1, t, t), dev)?.to_dtype(dtype)?)
}

/// `[B, T, Hkv, dh]` → `[B, T, Hkv·g, dh]`, each key/value head repeated for its `g` query heads
/// (transformers' `repeat_kv`: query head h reads key/value head h / g).
pub fn repeat_kv(x: &Tensor, g: usize) -> Result<Tensor> {
    if g == 1 {
        return Ok(x.clone());
    }
    let (b, t, h, dh) = x.dims4()?;
    Ok(x.unsqueeze(3)?.broadcast_as((b, t, h, g, dh))?.reshape((b, t, h * g, dh))?)
}

impl Llama {
    pub fn new(cfg: &ModelConfig, store: &ParamStore) -> Result<Self> {
        let blocks = (0..cfg.num_layers)
            .map(|i| {
                let l = layer_prefix(i);
                Ok(Block {
                    ln_attn: RmsNorm::from(store, &format!("{l}.input_layernorm")),
                    q: Proj::from(store, &format!("{l}.self_attn.q_proj"))?,
                    k: Proj::from(store, &format!("{l}.self_attn.k_proj"))?,
                    v: Proj::from(store, &format!("{l}.self_attn.v_proj"))?,
                    o: Proj::from(store, &format!("{l}.self_attn.o_proj"))?,
                    ln_mlp: RmsNorm::from(store, &format!("{l}.post_attention_layernorm")),
                    gate: Proj::from(store, &format!("{l}.mlp.gate_proj"))?,
                    up: Proj::from(store, &format!("{l}.mlp.up_proj"))?,
                    down: Proj::from(store, &format!("{l}.mlp.down_proj"))?,
                    window: cfg.decoder.windows.get(i).copied().flatten(),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Llama {
            cfg: cfg.clone(),
            embed: store.var("model.embed_tokens.weight").clone(),
            blocks,
            norm: RmsNorm::from(store, "model.norm"),
            lm_head: (!cfg.tied_head()).then(|| store.var("lm_head.weight").clone()),
        })
    }

    /// The classifier W `[V, D]` the LM head multiplies by: `lm_head` or the tied embedding.
    pub fn classifier(&self) -> &Var {
        self.lm_head.as_ref().unwrap_or(&self.embed)
    }

    pub fn word_embeddings(&self, batch: &Batch) -> Result<Tensor> {
        embed_tokens(&self.embed, &batch.input_ids)
    }

    /// Final hidden states (after the last RMSNorm) from the batch's embedding rows `[B, T, D]`.
    pub fn hidden_from_words(&self, batch: &Batch, words: &Tensor, dropout: &Dropout, exec: Exec) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (b, t) = batch.input_ids.dims2()?;
        let dev = words.device();
        let rope = cfg.decoder.rope.as_ref().expect("Llama-like configs always have rotary settings");
        let tables = RotaryTables::new(rope, t, dev)?;
        let mut masks: Vec<(Option<usize>, Tensor)> = Vec::new();
        let (h, hkv, dh) = (cfg.num_heads, cfg.num_kv_heads(), cfg.head_dim());
        let mut x = words.clone();
        for blk in &self.blocks {
            if !masks.iter().any(|(w, _)| *w == blk.window) {
                masks.push((blk.window, causal_mask(t, blk.window, x.dtype(), dev)?));
            }
            let mask = &masks.iter().find(|(w, _)| *w == blk.window).expect("mask just built").1;
            let a = blk.ln_attn.forward(&x, cfg.layer_norm_eps, exec)?;
            // Three products, not one over concatenated weights: concatenating a 1B model's
            // weights on every forward pass copies gigabytes.
            let q = tables.apply(&blk.q.forward(&a, exec)?.reshape((b, t, h, dh))?, exec)?;
            let k = tables.apply(&blk.k.forward(&a, exec)?.reshape((b, t, hkv, dh))?, exec)?;
            let v = blk.v.forward(&a, exec)?.reshape((b, t, hkv, dh))?;
            let (k, v) = (repeat_kv(&k, h / hkv)?, repeat_kv(&v, h / hkv)?);
            let merge = |x: Tensor| x.reshape((b, t, h * dh));
            let qkv = Tensor::cat(&[merge(q)?, merge(k)?, merge(v)?], 2)?;
            let ctx = self_attention(&qkv, mask, h, dropout, cfg.attention_dropout, exec)?;
            x = (x + dropout.apply(&blk.o.forward(&ctx, exec)?, cfg.hidden_dropout, exec)?)?;
            let m = blk.ln_mlp.forward(&x, cfg.layer_norm_eps, exec)?;
            let act = (blk.gate.forward(&m, exec)?.silu()? * blk.up.forward(&m, exec)?)?;
            x = (x + dropout.apply(&blk.down.forward(&act, exec)?, cfg.hidden_dropout, exec)?)?;
        }
        self.norm.forward(&x, cfg.layer_norm_eps, exec)
    }

    /// Vocabulary logits `[N, V]` of final hidden rows `[N, D]` (no bias).
    pub fn logits(&self, rows: &Tensor) -> Result<Tensor> {
        head_logits(rows, self.classifier())
    }
}
