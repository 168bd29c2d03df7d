//! GPT-2: pre-LayerNorm causal decoder with Conv1D (`[in, out]`) weights and a head tied to `wte`.

use super::batch::Batch;
use super::config::ModelConfig;
use super::encoder::Norm;
use super::layers::{Dropout, Exec, MASKED, activate, conv1d, embed_tokens, head_logits, self_attention};
use super::layout::gpt2_layer_prefix;
use super::weights::ParamStore;
use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};

struct Conv1D {
    w: Var,
    b: Var,
}

impl Conv1D {
    fn from(store: &ParamStore, name: &str) -> Self {
        Conv1D { w: store.var(&format!("{name}.weight")).clone(), b: store.var(&format!("{name}.bias")).clone() }
    }

    fn forward(&self, x: &Tensor, exec: Exec) -> Result<Tensor> {
        conv1d(x, self.w.as_tensor(), self.b.as_tensor(), exec)
    }
}

struct Block {
    ln_1: Norm,
    attn: Conv1D,
    attn_proj: Conv1D,
    ln_2: Norm,
    fc: Conv1D,
    proj: Conv1D,
}

pub struct Gpt2 {
    cfg: ModelConfig,
    pub wte: Var,
    wpe: Var,
    blocks: Vec<Block>,
    ln_f: Norm,
}

impl Gpt2 {
    pub fn new(cfg: &ModelConfig, store: &ParamStore) -> Self {
        let blocks = (0..cfg.num_layers)
            .map(|i| {
                let l = gpt2_layer_prefix(i);
                Block {
                    ln_1: Norm::from(store, &format!("{l}.ln_1")),
                    attn: Conv1D::from(store, &format!("{l}.attn.c_attn")),
                    attn_proj: Conv1D::from(store, &format!("{l}.attn.c_proj")),
                    ln_2: Norm::from(store, &format!("{l}.ln_2")),
                    fc: Conv1D::from(store, &format!("{l}.mlp.c_fc")),
                    proj: Conv1D::from(store, &format!("{l}.mlp.c_proj")),
                }
            })
            .collect();
        Gpt2 {
            cfg: cfg.clone(),
            wte: store.var("transformer.wte.weight").clone(),
            wpe: store.var("transformer.wpe.weight").clone(),
            blocks,
            ln_f: Norm::from(store, "transformer.ln_f"),
        }
    }

    /// Additive causal mask `[1, 1, T, T]`. Padding is on the right, so a real token never sees
    /// a padded one and no padding mask is needed for the positions that are read.
    /// In `dtype`, the activations' (candle adds only equal dtypes).
    fn causal_mask(t: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
        let data: Vec<f32> = (0..t).flat_map(|i| (0..t).map(move |j| if j > i { MASKED } else { 0.0 })).collect();
        Ok(Tensor::from_vec(data, (1, 1, t, t), dev)?.to_dtype(dtype)?)
    }

    /// Word-embedding rows of the batch's tokens, `[B, T, D]`.
    pub fn word_embeddings(&self, batch: &Batch) -> Result<Tensor> {
        embed_tokens(&self.wte, &batch.input_ids)
    }

    /// Final hidden states (after `ln_f`) from the batch's word-embedding rows `[B, T, D]`.
    pub fn hidden_from_words(&self, batch: &Batch, words: &Tensor, dropout: &Dropout, exec: Exec) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (_, t) = batch.input_ids.dims2()?;
        let dev = batch.input_ids.device();
        let pos = Tensor::arange(0u32, t as u32, dev)?;
        let x = words.broadcast_add(&self.wpe.as_tensor().embedding(&pos)?)?;
        let mut x = dropout.apply(&x, cfg.hidden_dropout, exec)?;
        let mask = Self::causal_mask(t, x.dtype(), dev)?;
        for blk in &self.blocks {
            let h = blk.ln_1.forward(&x, cfg.layer_norm_eps, exec)?;
            let qkv = blk.attn.forward(&h, exec)?;
            let ctx = self_attention(&qkv, &mask, cfg.num_heads, dropout, cfg.attention_dropout, exec)?;
            let a = dropout.apply(&blk.attn_proj.forward(&ctx, exec)?, cfg.hidden_dropout, exec)?;
            x = (x + a)?;
            let h = blk.ln_2.forward(&x, cfg.layer_norm_eps, exec)?;
            let m = blk.proj.forward(&activate(&blk.fc.forward(&h, exec)?, cfg.activation, exec)?, exec)?;
            x = (x + dropout.apply(&m, cfg.hidden_dropout, exec)?)?;
        }
        self.ln_f.forward(&x, cfg.layer_norm_eps, exec)
    }

    /// Vocabulary logits `[N, V]` of final hidden rows `[N, D]` (GPT-2's head has no bias).
    pub fn logits(&self, rows: &Tensor) -> Result<Tensor> {
        head_logits(rows, &self.wte)
    }
}
