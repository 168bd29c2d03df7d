//! GPT-NeoX (Pythia): pre-LayerNorm causal decoder with a fused QKV projection laid out per
//! head, rotary embeddings on a part of each head (`rotary_pct`), a parallel residual, and an
//! untied output matrix `embed_out`.

use super::batch::Batch;
use super::config::ModelConfig;
use super::encoder::{Linear, Norm};
use super::layers::{Dropout, Exec, activate, embed_tokens, head_logits, self_attention};
use super::layout::ParamSpec;
use super::llama::causal_mask;
use super::rotary::RotaryTables;
use super::weights::ParamStore;
use anyhow::Result;
use candle_core::{Tensor, Var};

pub fn layer_prefix(i: usize) -> String {
    format!("gpt_neox.layers.{i}")
}

pub fn param_specs(cfg: &ModelConfig) -> Vec<ParamSpec> {
    let (d, v, f) = (cfg.hidden_size, cfg.vocab_size, cfg.intermediate_size);
    let mut out = vec![ParamSpec::backbone("gpt_neox.embed_in.weight", &[v, d])];
    let both = |out: &mut Vec<ParamSpec>, name: String, w: &[usize], b: usize| {
        out.push(ParamSpec::backbone(&format!("{name}.weight"), w));
        out.push(ParamSpec::backbone(&format!("{name}.bias"), &[b]));
    };
    for i in 0..cfg.num_layers {
        let l = layer_prefix(i);
        both(&mut out, format!("{l}.input_layernorm"), &[d], d);
        both(&mut out, format!("{l}.post_attention_layernorm"), &[d], d);
        both(&mut out, format!("{l}.attention.query_key_value"), &[3 * d, d], 3 * d);
        both(&mut out, format!("{l}.attention.dense"), &[d, d], d);
        both(&mut out, format!("{l}.mlp.dense_h_to_4h"), &[f, d], f);
        both(&mut out, format!("{l}.mlp.dense_4h_to_h"), &[d, f], d);
    }
    both(&mut out, "gpt_neox.final_layer_norm".into(), &[d], d);
    if !cfg.tied_head() {
        out.push(ParamSpec::backbone("embed_out.weight", &[v, d]));
    }
    out
}

struct Block {
    ln_attn: Norm,
    ln_mlp: Norm,
    qkv: Linear,
    dense: Linear,
    fc_in: Linear,
    fc_out: Linear,
}

pub struct GptNeoX {
    cfg: ModelConfig,
    embed: Var,
    blocks: Vec<Block>,
    ln_f: Norm,
    embed_out: Option<Var>,
}

impl GptNeoX {
    pub fn new(cfg: &ModelConfig, store: &ParamStore) -> Result<Self> {
        let blocks = (0..cfg.num_layers)
            .map(|i| {
                let l = layer_prefix(i);
                Block {
                    ln_attn: Norm::from(store, &format!("{l}.input_layernorm")),
                    ln_mlp: Norm::from(store, &format!("{l}.post_attention_layernorm")),
                    qkv: Linear::from(store, &format!("{l}.attention.query_key_value")),
                    dense: Linear::from(store, &format!("{l}.attention.dense")),
                    fc_in: Linear::from(store, &format!("{l}.mlp.dense_h_to_4h")),
                    fc_out: Linear::from(store, &format!("{l}.mlp.dense_4h_to_h")),
                }
            })
            .collect();
        Ok(GptNeoX {
            cfg: cfg.clone(),
            embed: store.var("gpt_neox.embed_in.weight").clone(),
            blocks,
            ln_f: Norm::from(store, "gpt_neox.final_layer_norm"),
            embed_out: (!cfg.tied_head()).then(|| store.var("embed_out.weight").clone()),
        })
    }

    pub fn classifier(&self) -> &Var {
        self.embed_out.as_ref().unwrap_or(&self.embed)
    }

    pub fn word_embeddings(&self, batch: &Batch) -> Result<Tensor> {
        embed_tokens(&self.embed, &batch.input_ids)
    }

    /// Attention of one block: the fused projection's output is `[B, T, H, (q, k, v), dh]`,
    /// regrouped to `[q heads | k heads | v heads]` after the rotation.
    fn attention(
        &self,
        blk: &Block,
        x: &Tensor,
        tables: &RotaryTables,
        mask: &Tensor,
        dropout: &Dropout,
        exec: Exec,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (b, t, d) = x.dims3()?;
        let (h, dh) = (cfg.num_heads, cfg.head_dim());
        let qkv = blk.qkv.forward(x, exec)?.reshape((b, t, h, 3 * dh))?;
        let q = tables.apply(&qkv.narrow(3, 0, dh)?, exec)?.reshape((b, t, d))?;
        let k = tables.apply(&qkv.narrow(3, dh, dh)?, exec)?.reshape((b, t, d))?;
        let v = qkv.narrow(3, 2 * dh, dh)?.reshape((b, t, d))?;
        let ctx = self_attention(&Tensor::cat(&[q, k, v], 2)?, mask, h, dropout, cfg.attention_dropout, exec)?;
        dropout.apply(&blk.dense.forward(&ctx, exec)?, cfg.hidden_dropout, exec)
    }

    fn mlp(&self, blk: &Block, x: &Tensor, dropout: &Dropout, exec: Exec) -> Result<Tensor> {
        let f = activate(&blk.fc_in.forward(x, exec)?, self.cfg.activation, exec)?;
        dropout.apply(&blk.fc_out.forward(&f, exec)?, self.cfg.hidden_dropout, exec)
    }

    pub fn hidden_from_words(&self, batch: &Batch, words: &Tensor, dropout: &Dropout, exec: Exec) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (_, t) = batch.input_ids.dims2()?;
        let dev = words.device();
        let rope = cfg.decoder.rope.as_ref().expect("GPT-NeoX configs always have rotary settings");
        let tables = RotaryTables::new(rope, t, dev)?;
        let mask = causal_mask(t, None, words.dtype(), dev)?;
        let eps = cfg.layer_norm_eps;
        let mut x = dropout.apply(words, cfg.hidden_dropout, exec)?;
        for blk in &self.blocks {
            let a = self.attention(blk, &blk.ln_attn.forward(&x, eps, exec)?, &tables, &mask, dropout, exec)?;
            x = if cfg.decoder.parallel_residual {
                let m = self.mlp(blk, &blk.ln_mlp.forward(&x, eps, exec)?, dropout, exec)?;
                ((x + a)? + m)?
            } else {
                let x = (x + a)?;
                let m = self.mlp(blk, &blk.ln_mlp.forward(&x, eps, exec)?, dropout, exec)?;
                (x + m)?
            };
        }
        self.ln_f.forward(&x, eps, exec)
    }

    pub fn logits(&self, rows: &Tensor) -> Result<Tensor> {
        head_logits(rows, self.classifier())
    }
}
