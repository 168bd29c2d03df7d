//! OPT: a causal decoder with learned positions offset by 2, LayerNorm before (or, in OPT-350m,
//! after) each block, and projections between a narrower word-embedding width and the hidden
//! size. Its last hidden state is taken after `project_out`, as transformers' `OPTModel`
//! returns it, so hidden rows have the embedding width and the tied head reads them directly.

use super::batch::Batch;
use super::config::ModelConfig;
use super::encoder::Norm;
use super::layers::{Dropout, Exec, activate, embed_tokens, head_logits, layer_norm, self_attention};
use super::layout::ParamSpec;
use super::llama::{Proj, causal_mask};
use super::weights::ParamStore;
use anyhow::Result;
use candle_core::{Tensor, Var};

/// OPT's position table starts 2 rows in (a fairseq legacy).
pub const POSITION_OFFSET: usize = 2;

pub fn layer_prefix(i: usize) -> String {
    format!("model.decoder.layers.{i}")
}

fn extras(cfg: &ModelConfig) -> super::decoder_config::OptExtras {
    cfg.decoder.opt.expect("OPT configs always carry OPT settings")
}

pub fn param_specs(cfg: &ModelConfig) -> Vec<ParamSpec> {
    let (d, v, f) = (cfg.hidden_size, cfg.vocab_size, cfg.intermediate_size);
    let o = extras(cfg);
    let p = o.word_embed_proj_dim;
    let mut out = vec![
        ParamSpec::backbone("model.decoder.embed_tokens.weight", &[v, p]),
        ParamSpec::backbone("model.decoder.embed_positions.weight", &[cfg.max_positions + POSITION_OFFSET, d]),
    ];
    if p != d {
        out.push(ParamSpec::backbone("model.decoder.project_in.weight", &[d, p]));
        out.push(ParamSpec::backbone("model.decoder.project_out.weight", &[p, d]));
    }
    let lin = |out: &mut Vec<ParamSpec>, name: String, w: &[usize], bias: bool| {
        out.push(ParamSpec::backbone(&format!("{name}.weight"), w));
        if bias {
            out.push(ParamSpec::backbone(&format!("{name}.bias"), &[w[0]]));
        }
    };
    for i in 0..cfg.num_layers {
        let l = layer_prefix(i);
        for name in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            lin(&mut out, format!("{l}.self_attn.{name}"), &[d, d], o.bias);
        }
        lin(&mut out, format!("{l}.self_attn_layer_norm"), &[d], true);
        lin(&mut out, format!("{l}.fc1"), &[f, d], o.bias);
        lin(&mut out, format!("{l}.fc2"), &[d, f], o.bias);
        lin(&mut out, format!("{l}.final_layer_norm"), &[d], true);
    }
    if o.final_layer_norm {
        lin(&mut out, "model.decoder.final_layer_norm".into(), &[d], true);
    }
    if !cfg.tied_head() {
        out.push(ParamSpec::backbone("lm_head.weight", &[v, p]));
    }
    out
}

struct Block {
    q: Proj,
    k: Proj,
    v: Proj,
    o: Proj,
    ln_attn: Norm,
    fc1: Proj,
    fc2: Proj,
    ln_mlp: Norm,
}

pub struct Opt {
    cfg: ModelConfig,
    embed: Var,
    positions: Var,
    project_in: Option<Var>,
    project_out: Option<Var>,
    blocks: Vec<Block>,
    ln_f: Option<Norm>,
    lm_head: Option<Var>,
}

/// `x · Wᵀ` for a bias-free projection.
fn project(x: &Tensor, w: &Var) -> Result<Tensor> {
    let (b, t, din) = x.dims3()?;
    Ok(x.reshape((b * t, din))?.matmul(&w.as_tensor().t()?)?.reshape((b, t, ()))?)
}

impl Opt {
    pub fn new(cfg: &ModelConfig, store: &ParamStore) -> Result<Self> {
        let o = extras(cfg);
        let blocks = (0..cfg.num_layers)
            .map(|i| {
                let l = layer_prefix(i);
                Ok(Block {
                    q: Proj::from(store, &format!("{l}.self_attn.q_proj"))?,
                    k: Proj::from(store, &format!("{l}.self_attn.k_proj"))?,
                    v: Proj::from(store, &format!("{l}.self_attn.v_proj"))?,
                    o: Proj::from(store, &format!("{l}.self_attn.out_proj"))?,
                    ln_attn: Norm::from(store, &format!("{l}.self_attn_layer_norm")),
                    fc1: Proj::from(store, &format!("{l}.fc1"))?,
                    fc2: Proj::from(store, &format!("{l}.fc2"))?,
                    ln_mlp: Norm::from(store, &format!("{l}.final_layer_norm")),
                })
            })
            .collect::<Result<_>>()?;
        let projected = o.word_embed_proj_dim != cfg.hidden_size;
        Ok(Opt {
            cfg: cfg.clone(),
            embed: store.var("model.decoder.embed_tokens.weight").clone(),
            positions: store.var("model.decoder.embed_positions.weight").clone(),
            project_in: projected.then(|| store.var("model.decoder.project_in.weight").clone()),
            project_out: projected.then(|| store.var("model.decoder.project_out.weight").clone()),
            blocks,
            ln_f: o.final_layer_norm.then(|| Norm::from(store, "model.decoder.final_layer_norm")),
            lm_head: (!cfg.tied_head()).then(|| store.var("lm_head.weight").clone()),
        })
    }

    pub fn classifier(&self) -> &Var {
        self.lm_head.as_ref().unwrap_or(&self.embed)
    }

    /// Word-embedding rows `[B, T, P]` (the embedding width, before `project_in`).
    pub fn word_embeddings(&self, batch: &Batch) -> Result<Tensor> {
        embed_tokens(&self.embed, &batch.input_ids)
    }

    pub fn hidden_from_words(&self, batch: &Batch, words: &Tensor, dropout: &Dropout, exec: Exec) -> Result<Tensor> {
        let cfg = &self.cfg;
        let before = extras(cfg).layer_norm_before;
        let eps = cfg.layer_norm_eps;
        let (_, t) = batch.input_ids.dims2()?;
        let dev = words.device();
        // Right padding: a real token's position is its index (pads' positions are never read).
        let pos = Tensor::arange(POSITION_OFFSET as u32, (t + POSITION_OFFSET) as u32, dev)?;
        let x = match &self.project_in {
            Some(w) => project(words, w)?,
            None => words.clone(),
        };
        let x = x.broadcast_add(&self.positions.as_tensor().embedding(&pos)?)?;
        let mut x = dropout.apply(&x, cfg.hidden_dropout, exec)?;
        let mask = causal_mask(t, None, x.dtype(), dev)?;
        let ln = |n: &Norm, x: &Tensor| layer_norm(x, &n.w, &n.b, eps, exec);
        for blk in &self.blocks {
            let h = if before { ln(&blk.ln_attn, &x)? } else { x.clone() };
            let qkv = Tensor::cat(&[blk.q.forward(&h, exec)?, blk.k.forward(&h, exec)?, blk.v.forward(&h, exec)?], 2)?;
            let ctx = self_attention(&qkv, &mask, cfg.num_heads, dropout, cfg.attention_dropout, exec)?;
            x = (x + dropout.apply(&blk.o.forward(&ctx, exec)?, cfg.hidden_dropout, exec)?)?;
            if !before {
                x = ln(&blk.ln_attn, &x)?;
            }
            let h = if before { ln(&blk.ln_mlp, &x)? } else { x.clone() };
            let f = activate(&blk.fc1.forward(&h, exec)?, cfg.activation, exec)?;
            x = (x + dropout.apply(&blk.fc2.forward(&f, exec)?, cfg.hidden_dropout, exec)?)?;
            if !before {
                x = ln(&blk.ln_mlp, &x)?;
            }
        }
        if let Some(n) = &self.ln_f {
            x = ln(n, &x)?;
        }
        match &self.project_out {
            Some(w) => project(&x, w),
            None => Ok(x),
        }
    }

    pub fn logits(&self, rows: &Tensor) -> Result<Tensor> {
        head_logits(rows, self.classifier())
    }
}
