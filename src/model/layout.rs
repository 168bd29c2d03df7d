//! Tensor names and shapes of each family's Hugging Face checkpoint.
//!
//! The names are those of the LM-headed classes (`BertForMaskedLM`, `RobertaForMaskedLM`,
//! `DistilBertForMaskedLM`, `GPT2LMHeadModel`); loading also accepts them without the backbone
//! prefix. The layer code asks for parameters through these functions only.

use super::config::{Family, ModelConfig};
use crate::util::rng::SplitMix;
use anyhow::Result;
use candle_core::{Device, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamRole {
    Backbone,
    /// Part of the LM head: may be absent as a whole (bare encoder), then created.
    Head,
}

/// How a newly created head parameter starts (Hugging Face's `_init_weights`).
#[derive(Debug, Clone, Copy)]
pub enum Init {
    Normal(f64),
    Zeros,
    Ones,
}

impl Init {
    pub fn create(self, shape: &[usize], rng: &mut SplitMix) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = match self {
            Init::Normal(std) => (0..n).map(|_| (rng.normal() * std) as f32).collect(),
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
        };
        Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
    }
}

#[derive(Debug, Clone)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub role: ParamRole,
    pub init: Init,
}

impl ParamSpec {
    /// A parameter the checkpoint must hold.
    pub fn backbone(name: &str, shape: &[usize]) -> ParamSpec {
        p(name.to_string(), shape)
    }
}

fn p(name: String, shape: &[usize]) -> ParamSpec {
    ParamSpec { name, shape: shape.to_vec(), role: ParamRole::Backbone, init: Init::Zeros }
}

fn h(name: &str, shape: &[usize], init: Init) -> ParamSpec {
    ParamSpec { name: name.to_string(), shape: shape.to_vec(), role: ParamRole::Head, init }
}

/// Names of the encoder-family parameters of one layer, BERT/RoBERTa or DistilBERT style.
pub struct EncoderLayerNames {
    pub q: String,
    pub k: String,
    pub v: String,
    pub o: String,
    pub ln_attn: String,
    pub ff_in: String,
    pub ff_out: String,
    pub ln_out: String,
}

pub fn encoder_layer_names(family: Family, i: usize) -> EncoderLayerNames {
    match family {
        Family::DistilBert => {
            let l = format!("distilbert.transformer.layer.{i}");
            EncoderLayerNames {
                q: format!("{l}.attention.q_lin"),
                k: format!("{l}.attention.k_lin"),
                v: format!("{l}.attention.v_lin"),
                o: format!("{l}.attention.out_lin"),
                ln_attn: format!("{l}.sa_layer_norm"),
                ff_in: format!("{l}.ffn.lin1"),
                ff_out: format!("{l}.ffn.lin2"),
                ln_out: format!("{l}.output_layer_norm"),
            }
        }
        _ => {
            let l = format!("{}encoder.layer.{i}", family.prefix());
            EncoderLayerNames {
                q: format!("{l}.attention.self.query"),
                k: format!("{l}.attention.self.key"),
                v: format!("{l}.attention.self.value"),
                o: format!("{l}.attention.output.dense"),
                ln_attn: format!("{l}.attention.output.LayerNorm"),
                ff_in: format!("{l}.intermediate.dense"),
                ff_out: format!("{l}.output.dense"),
                ln_out: format!("{l}.output.LayerNorm"),
            }
        }
    }
}

/// Names of the encoder families' embeddings and MLM head.
pub struct EncoderNames {
    pub word: String,
    pub position: String,
    pub token_type: Option<String>,
    pub ln: String,
    pub head_dense: &'static str,
    pub head_ln: &'static str,
    pub head_bias: &'static str,
}

pub fn encoder_names(family: Family) -> EncoderNames {
    let pre = family.prefix();
    let (head_dense, head_ln, head_bias) = match family {
        Family::Bert => {
            ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", "cls.predictions.bias")
        }
        Family::Roberta => ("lm_head.dense", "lm_head.layer_norm", "lm_head.bias"),
        Family::DistilBert => ("vocab_transform", "vocab_layer_norm", "vocab_projector.bias"),
        _ => unreachable!("{family:?} is not an encoder"),
    };
    EncoderNames {
        word: format!("{pre}embeddings.word_embeddings.weight"),
        position: format!("{pre}embeddings.position_embeddings.weight"),
        token_type: (family != Family::DistilBert).then(|| format!("{pre}embeddings.token_type_embeddings.weight")),
        ln: format!("{pre}embeddings.LayerNorm"),
        head_dense,
        head_ln,
        head_bias,
    }
}

/// BERT's next-sentence head and the pooler it reads, held by `BertForPreTraining` checkpoints
/// (`{pooler,classifier}.{weight,bias}`). Optional: loaded when both are present (as the
/// checkpoint's tolerated extras, saved back unchanged, not trained), absent otherwise.
pub struct NspNames {
    pub pooler: &'static str,
    pub classifier: &'static str,
}

/// The next-sentence head's names; None for families that have none.
pub fn nsp_names(family: Family) -> Option<NspNames> {
    (family == Family::Bert).then_some(NspNames { pooler: "bert.pooler.dense", classifier: "cls.seq_relationship" })
}

/// Parameters of the LM head proper (its transform and bias), not the tied decoder.
pub fn is_head_param(name: &str) -> bool {
    name.starts_with("cls.") || name.starts_with("lm_head.") || name.starts_with("vocab_")
}

pub fn gpt2_layer_prefix(i: usize) -> String {
    format!("transformer.h.{i}")
}

/// (name of the stored tied decoder weight, name of the embedding it is tied to); None when
/// the head is untied (its weight is then a parameter of its own).
pub fn tied_names(cfg: &ModelConfig) -> Option<(&'static str, &'static str)> {
    if !cfg.tied_head() {
        return None;
    }
    Some(match cfg.family {
        Family::Bert => ("cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight"),
        Family::Roberta => ("lm_head.decoder.weight", "roberta.embeddings.word_embeddings.weight"),
        Family::DistilBert => ("vocab_projector.weight", "distilbert.embeddings.word_embeddings.weight"),
        Family::Gpt2 => ("lm_head.weight", "transformer.wte.weight"),
        Family::Llama | Family::Mistral | Family::Qwen2 => ("lm_head.weight", "model.embed_tokens.weight"),
        Family::GptNeoX => ("embed_out.weight", "gpt_neox.embed_in.weight"),
        Family::Opt => ("lm_head.weight", "model.decoder.embed_tokens.weight"),
    })
}

/// A second copy of the MLM decoder bias that some files store.
pub fn duplicate_bias_name(family: Family) -> Option<&'static str> {
    match family {
        Family::Bert => Some("cls.predictions.decoder.bias"),
        Family::Roberta => Some("lm_head.decoder.bias"),
        _ => None,
    }
}

/// Every parameter of the model in a fixed order.
pub fn param_specs(cfg: &ModelConfig) -> Vec<ParamSpec> {
    let (d, v, f) = (cfg.hidden_size, cfg.vocab_size, cfg.intermediate_size);
    let mut out = Vec::new();
    let linear = |out: &mut Vec<ParamSpec>, name: &str, o: usize, i: usize| {
        out.push(p(format!("{name}.weight"), &[o, i]));
        out.push(p(format!("{name}.bias"), &[o]));
    };
    let norm = |out: &mut Vec<ParamSpec>, name: &str| {
        out.push(p(format!("{name}.weight"), &[d]));
        out.push(p(format!("{name}.bias"), &[d]));
    };
    match cfg.family {
        Family::Llama | Family::Mistral | Family::Qwen2 => return super::llama::param_specs(cfg),
        Family::GptNeoX => return super::neox::param_specs(cfg),
        Family::Opt => return super::opt::param_specs(cfg),
        _ => {}
    }
    if cfg.family == Family::Gpt2 {
        out.push(p("transformer.wte.weight".into(), &[v, d]));
        out.push(p("transformer.wpe.weight".into(), &[cfg.max_positions, d]));
        for i in 0..cfg.num_layers {
            let l = gpt2_layer_prefix(i);
            norm(&mut out, &format!("{l}.ln_1"));
            // Conv1D stores weights as [in, out].
            out.push(p(format!("{l}.attn.c_attn.weight"), &[d, 3 * d]));
            out.push(p(format!("{l}.attn.c_attn.bias"), &[3 * d]));
            out.push(p(format!("{l}.attn.c_proj.weight"), &[d, d]));
            out.push(p(format!("{l}.attn.c_proj.bias"), &[d]));
            norm(&mut out, &format!("{l}.ln_2"));
            out.push(p(format!("{l}.mlp.c_fc.weight"), &[d, f]));
            out.push(p(format!("{l}.mlp.c_fc.bias"), &[f]));
            out.push(p(format!("{l}.mlp.c_proj.weight"), &[f, d]));
            out.push(p(format!("{l}.mlp.c_proj.bias"), &[d]));
        }
        norm(&mut out, "transformer.ln_f");
        return out;
    }
    let n = encoder_names(cfg.family);
    out.push(p(n.word.clone(), &[v, d]));
    out.push(p(n.position.clone(), &[cfg.max_positions, d]));
    if let Some(tt) = &n.token_type {
        out.push(p(tt.clone(), &[cfg.type_vocab_size, d]));
    }
    norm(&mut out, &n.ln);
    for i in 0..cfg.num_layers {
        let l = encoder_layer_names(cfg.family, i);
        for name in [&l.q, &l.k, &l.v, &l.o] {
            linear(&mut out, name, d, d);
        }
        norm(&mut out, &l.ln_attn);
        linear(&mut out, &l.ff_in, f, d);
        linear(&mut out, &l.ff_out, d, f);
        norm(&mut out, &l.ln_out);
    }
    let std = cfg.raw.get("initializer_range").and_then(|x| x.as_f64()).unwrap_or(0.02);
    out.push(h(&format!("{}.weight", n.head_dense), &[d, d], Init::Normal(std)));
    out.push(h(&format!("{}.bias", n.head_dense), &[d], Init::Zeros));
    out.push(h(&format!("{}.weight", n.head_ln), &[d], Init::Ones));
    out.push(h(&format!("{}.bias", n.head_ln), &[d], Init::Zeros));
    out.push(h(n.head_bias, &[v], Init::Zeros));
    out
}
