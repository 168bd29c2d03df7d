//! BERT, RoBERTa and DistilBERT: the same post-LayerNorm encoder with an MLM head, differing
//! only in weight names, position ids and token-type embeddings.

use super::attention_received::attention_with_received;
use super::batch::Batch;
use super::config::{Activation, Family, ModelConfig};
use super::layers::{Dropout, Exec, MASKED, activate, layer_norm, linear, self_attention};
use super::layout::{encoder_layer_names, encoder_names, nsp_names};
use super::weights::ParamStore;
use anyhow::Result;
use candle_core::{Tensor, Var};

pub struct Linear {
    pub w: Var,
    pub b: Var,
}

impl Linear {
    pub fn from(store: &ParamStore, name: &str) -> Self {
        Linear { w: store.var(&format!("{name}.weight")).clone(), b: store.var(&format!("{name}.bias")).clone() }
    }

    pub fn forward(&self, x: &Tensor, exec: Exec) -> Result<Tensor> {
        linear(x, self.w.as_tensor(), self.b.as_tensor(), exec)
    }
}

pub struct Norm {
    pub w: Var,
    pub b: Var,
}

impl Norm {
    pub fn from(store: &ParamStore, name: &str) -> Self {
        Norm { w: store.var(&format!("{name}.weight")).clone(), b: store.var(&format!("{name}.bias")).clone() }
    }

    pub fn forward(&self, x: &Tensor, eps: f64, exec: Exec) -> Result<Tensor> {
        layer_norm(x, &self.w, &self.b, eps, exec)
    }
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ln_attn: Norm,
    ff_in: Linear,
    ff_out: Linear,
    ln_out: Norm,
}

/// BERT's next-sentence head: tanh pooler over the first token, then a 2-way classifier
/// (logit 0: "is next", 1: "is random"). Plain tensors: not trained.
struct NspHead {
    pool_w: Tensor,
    pool_b: Tensor,
    w: Tensor,
    b: Tensor,
}

impl NspHead {
    /// The head when the checkpoint holds all four tensors with the expected shapes.
    fn from(cfg: &ModelConfig, store: &ParamStore) -> Option<Self> {
        let n = nsp_names(cfg.family)?;
        let d = cfg.hidden_size;
        let get = |name: String, shape: &[usize]| store.extras.get(&name).filter(|t| t.dims() == shape).cloned();
        Some(NspHead {
            pool_w: get(format!("{}.weight", n.pooler), &[d, d])?,
            pool_b: get(format!("{}.bias", n.pooler), &[d])?,
            w: get(format!("{}.weight", n.classifier), &[2, d])?,
            b: get(format!("{}.bias", n.classifier), &[2])?,
        })
    }
}

pub struct Encoder {
    cfg: ModelConfig,
    pub word: Var,
    position: Var,
    token_type: Option<Var>,
    ln: Norm,
    layers: Vec<Layer>,
    head_dense: Linear,
    head_ln: Norm,
    head_bias: Var,
    head_activation: Activation,
    nsp: Option<NspHead>,
}

impl Encoder {
    pub fn new(cfg: &ModelConfig, store: &ParamStore) -> Self {
        let n = encoder_names(cfg.family);
        let layers = (0..cfg.num_layers)
            .map(|i| {
                let l = encoder_layer_names(cfg.family, i);
                Layer {
                    q: Linear::from(store, &l.q),
                    k: Linear::from(store, &l.k),
                    v: Linear::from(store, &l.v),
                    o: Linear::from(store, &l.o),
                    ln_attn: Norm::from(store, &l.ln_attn),
                    ff_in: Linear::from(store, &l.ff_in),
                    ff_out: Linear::from(store, &l.ff_out),
                    ln_out: Norm::from(store, &l.ln_out),
                }
            })
            .collect();
        Encoder {
            cfg: cfg.clone(),
            word: store.var(&n.word).clone(),
            position: store.var(&n.position).clone(),
            token_type: n.token_type.as_ref().map(|t| store.var(t).clone()),
            ln: Norm::from(store, &n.ln),
            layers,
            head_dense: Linear::from(store, n.head_dense),
            head_ln: Norm::from(store, n.head_ln),
            head_bias: store.var(n.head_bias).clone(),
            // RoBERTa's LM head hard-codes exact GELU; BERT and DistilBERT follow the config.
            head_activation: if cfg.family == Family::Roberta { Activation::GeluErf } else { cfg.activation },
            nsp: NspHead::from(cfg, store),
        }
    }

    /// Position ids: 0..T, except RoBERTa, which counts non-padding tokens from `pad + 1`
    /// and gives padding the id `pad` (as `create_position_ids_from_input_ids`).
    fn position_ids(&self, batch: &Batch) -> Result<Tensor> {
        let (b, t) = batch.input_ids.dims2()?;
        let dev = batch.input_ids.device();
        if self.cfg.family != Family::Roberta {
            return Ok(Tensor::arange(0u32, t as u32, dev)?.unsqueeze(0)?.repeat((b, 1))?);
        }
        let pad = self.cfg.pad_token_id.unwrap_or(1);
        let mut out = Vec::with_capacity(b * t);
        for row in &batch.ids {
            let mut count = 0;
            for j in 0..t {
                let tok = row.get(j).copied().unwrap_or(pad);
                if tok != pad {
                    count += 1;
                    out.push(pad + count);
                } else {
                    out.push(pad);
                }
            }
        }
        Ok(Tensor::from_vec(out, (b, t), dev)?)
    }

    /// Word-embedding rows of the batch's tokens, `[B, T, D]`.
    pub fn word_embeddings(&self, batch: &Batch) -> Result<Tensor> {
        let (b, t) = batch.input_ids.dims2()?;
        let x = self.word.as_tensor().embedding(&batch.input_ids.flatten_all()?)?;
        Ok(x.reshape((b, t, self.cfg.hidden_size))?)
    }

    /// Last-layer hidden states from the batch's word-embedding rows `[B, T, D]`.
    pub fn hidden_from_words(&self, batch: &Batch, words: &Tensor, dropout: &Dropout, exec: Exec) -> Result<Tensor> {
        let (mut x, mask) = self.embed(batch, words, dropout, exec)?;
        for layer in &self.layers {
            x = self.layer(layer, &x, &mask, dropout, exec)?;
        }
        Ok(x)
    }

    /// Last-layer hidden states `[B, T, D]` (inference) and the attention each position
    /// received, `[B, T]`: the mean over layers, heads and the row's real query positions,
    /// from explicit attention probabilities (AULA, mlm-bias's CRRA / ΔPA).
    pub fn hidden_with_received(&self, batch: &Batch, dropout: &Dropout) -> Result<(Tensor, Tensor)> {
        let exec = Exec::INFER;
        let (mut x, mask) = self.embed(batch, &self.word_embeddings(batch)?, dropout, exec)?;
        let mut total: Option<Tensor> = None;
        for layer in &self.layers {
            let mut got = None;
            x = self.layer_around(layer, &x, dropout, exec, |qkv| {
                let (ctx, r) = attention_with_received(qkv, &mask, &batch.attention_mask, self.cfg.num_heads)?;
                got = Some(r);
                Ok(ctx)
            })?;
            let r = got.expect("the attention ran");
            total = Some(match total {
                Some(t) => (t + r)?,
                None => r,
            });
        }
        let (b, t) = batch.input_ids.dims2()?;
        let total = match total {
            Some(t) => t,
            None => Tensor::zeros((b, t), candle_core::DType::F32, batch.input_ids.device())?,
        };
        Ok((x, (total / self.layers.len().max(1) as f64)?))
    }

    /// The embedding sum after its LayerNorm `[B, T, D]`, and the additive padding mask
    /// `[B, 1, 1, T]` in the activations' dtype.
    fn embed(&self, batch: &Batch, words: &Tensor, dropout: &Dropout, exec: Exec) -> Result<(Tensor, Tensor)> {
        let cfg = &self.cfg;
        let (b, t) = batch.input_ids.dims2()?;
        let d = cfg.hidden_size;
        let mut x = words.reshape((b * t, d))?;
        let pos = self.position_ids(batch)?.flatten_all()?;
        x = (x + self.position.as_tensor().embedding(&pos)?)?;
        if let Some(tt) = &self.token_type {
            x = match &batch.token_types {
                Some(types) => (x + tt.as_tensor().embedding(&types.flatten_all()?)?)?,
                // Single-segment input: every token has type 0.
                None => x.broadcast_add(&tt.as_tensor().narrow(0, 0, 1)?)?,
            };
        }
        let x = x.reshape((b, t, d))?;
        let x = dropout.apply(&self.ln.forward(&x, cfg.layer_norm_eps, exec)?, cfg.hidden_dropout, exec)?;
        // In the activations' dtype: candle adds only equal dtypes (f16 holds −1e9 as −inf, still exp 0).
        let mask = ((1.0 - &batch.attention_mask)? * MASKED as f64)?.to_dtype(x.dtype())?.reshape((b, 1, 1, t))?;
        Ok((x, mask))
    }

    fn layer(&self, l: &Layer, x: &Tensor, mask: &Tensor, dropout: &Dropout, exec: Exec) -> Result<Tensor> {
        let cfg = &self.cfg;
        self.layer_around(l, x, dropout, exec, |qkv| {
            self_attention(qkv, mask, cfg.num_heads, dropout, cfg.attention_dropout, exec)
        })
    }

    /// One layer around an attention `qkv [B, T, 3D]` → context `[B, T, D]`.
    fn layer_around(
        &self,
        l: &Layer,
        x: &Tensor,
        dropout: &Dropout,
        exec: Exec,
        attend: impl FnOnce(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        // One matmul for Q, K and V; the concatenation is differentiable, so each keeps its gradient.
        let w = Tensor::cat(&[l.q.w.as_tensor(), l.k.w.as_tensor(), l.v.w.as_tensor()], 0)?;
        let bias = Tensor::cat(&[l.q.b.as_tensor(), l.k.b.as_tensor(), l.v.b.as_tensor()], 0)?;
        let qkv = linear(x, &w, &bias, exec)?;
        let ctx = attend(&qkv)?;
        let a = dropout.apply(&l.o.forward(&ctx, exec)?, cfg.hidden_dropout, exec)?;
        let x = l.ln_attn.forward(&(x + a)?, cfg.layer_norm_eps, exec)?;
        let f = activate(&l.ff_in.forward(&x, exec)?, cfg.activation, exec)?;
        let f = dropout.apply(&l.ff_out.forward(&f, exec)?, cfg.hidden_dropout, exec)?;
        l.ln_out.forward(&(x + f)?, cfg.layer_norm_eps, exec)
    }

    /// The MLM head's transform (dense → activation → LayerNorm) of hidden rows `[N, D]`.
    pub fn head_transform(&self, rows: &Tensor, exec: Exec) -> Result<Tensor> {
        let y = activate(&self.head_dense.forward(rows, exec)?, self.head_activation, exec)?;
        self.head_ln.forward(&y, self.cfg.layer_norm_eps, exec)
    }

    /// Vocabulary logits `[N, V]` of hidden rows `[N, D]`.
    pub fn logits(&self, rows: &Tensor, exec: Exec) -> Result<Tensor> {
        let feats = self.head_transform(rows, exec)?;
        linear(&feats, self.word.as_tensor(), self.head_bias.as_tensor(), exec)
    }

    pub fn has_next_sentence_head(&self) -> bool {
        self.nsp.is_some()
    }

    /// Next-sentence logits `[B, 2]` from last-layer hidden states `[B, T, D]` (the pooler
    /// reads the first token); None without a next-sentence head.
    pub fn next_sentence_logits(&self, hidden: &Tensor) -> Option<Result<Tensor>> {
        let nsp = self.nsp.as_ref()?;
        let run = || -> Result<Tensor> {
            let first = hidden.narrow(1, 0, 1)?.squeeze(1)?.contiguous()?;
            let pooled = linear(&first, &nsp.pool_w, &nsp.pool_b, Exec::INFER)?.tanh()?;
            linear(&pooled, &nsp.w, &nsp.b, Exec::INFER)
        };
        Some(run())
    }
}
