//! `config.json` → one typed configuration for the supported families.
//!
//! Hugging Face uses different key names per family (`hidden_size` vs `dim` vs `n_embd`);
//! everything downstream sees only [`ModelConfig`].

use super::decoder_config::{self, DecoderConfig};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Bert,
    Roberta,
    DistilBert,
    Gpt2,
    Llama,
    Mistral,
    Qwen2,
    #[serde(rename = "gpt_neox")]
    GptNeoX,
    Opt,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::Roberta => "roberta",
            Family::DistilBert => "distilbert",
            Family::Gpt2 => "gpt2",
            Family::Llama => "llama",
            Family::Mistral => "mistral",
            Family::Qwen2 => "qwen2",
            Family::GptNeoX => "gpt_neox",
            Family::Opt => "opt",
        }
    }

    /// The module prefix Hugging Face puts before the backbone weights in a `*ForMaskedLM` /
    /// `*LMHeadModel` checkpoint (absent in bare-backbone checkpoints).
    pub fn prefix(self) -> &'static str {
        match self {
            Family::Bert => "bert.",
            Family::Roberta => "roberta.",
            Family::DistilBert => "distilbert.",
            Family::Gpt2 => "transformer.",
            Family::Llama | Family::Mistral | Family::Qwen2 | Family::Opt => "model.",
            Family::GptNeoX => "gpt_neox.",
        }
    }

    pub fn kind(self) -> ModelKind {
        match self {
            Family::Bert | Family::Roberta | Family::DistilBert => ModelKind::Masked,
            _ => ModelKind::Causal,
        }
    }

    /// The architecture name `transformers` instantiates for the LM-headed model.
    pub fn lm_architecture(self) -> &'static str {
        match self {
            Family::Bert => "BertForMaskedLM",
            Family::Roberta => "RobertaForMaskedLM",
            Family::DistilBert => "DistilBertForMaskedLM",
            Family::Gpt2 => "GPT2LMHeadModel",
            Family::Llama => "LlamaForCausalLM",
            Family::Mistral => "MistralForCausalLM",
            Family::Qwen2 => "Qwen2ForCausalLM",
            Family::GptNeoX => "GPTNeoXForCausalLM",
            Family::Opt => "OPTForCausalLM",
        }
    }
}

/// Masked LMs predict the token at a position from its own hidden state; causal LMs predict the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Masked,
    Causal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU, x·Φ(x) (BERT family's "gelu").
    GeluErf,
    /// tanh approximation (GPT-2's "gelu_new").
    GeluTanh,
    Relu,
    /// x·σ(x) (Llama's SwiGLU gate, "silu").
    Silu,
}

/// The largest size a config may give any dimension or count (see [`ModelConfig::from_value`]).
pub const MAX_SIZE: usize = 1 << 32;

#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub family: Family,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub max_positions: usize,
    /// BERT/RoBERTa token-type table size; 0 for families without one.
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub activation: Activation,
    /// Dropout after embeddings and on residual branches (GPT-2: `embd_pdrop`/`resid_pdrop`).
    pub hidden_dropout: f32,
    pub attention_dropout: f32,
    pub pad_token_id: Option<u32>,
    /// What the modern decoders add (GQA, rotary, windows, untied head); default elsewhere.
    pub decoder: DecoderConfig,
    /// The parsed file, kept so that saving writes back every key we do not interpret.
    pub raw: Value,
}

/// The family a `config.json` names in `model_type`.
fn family_of(raw: &Value) -> Result<Family> {
    let model_type = raw.get("model_type").and_then(Value::as_str).context("no \"model_type\" key")?;
    Ok(match model_type {
        "bert" => Family::Bert,
        "roberta" => Family::Roberta,
        "distilbert" => Family::DistilBert,
        "gpt2" => Family::Gpt2,
        "llama" => Family::Llama,
        "mistral" => Family::Mistral,
        "qwen2" => Family::Qwen2,
        "gpt_neox" => Family::GptNeoX,
        "opt" => Family::Opt,
        other => bail!(
            "unknown model_type \"{other}\" (supported: bert, roberta, distilbert, gpt2, llama, mistral, qwen2, gpt_neox, opt)"
        ),
    })
}

/// Typed reads from a parsed `config.json`, each error naming its key.
struct Keys<'a>(&'a Value);

impl Keys<'_> {
    fn size(&self, key: &str) -> Result<usize> {
        self.0
            .get(key)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .with_context(|| format!("missing or non-integer \"{key}\""))
    }

    /// A key that is present must hold a number: a typo'd string must not become the default.
    fn float(&self, key: &str, default: f64) -> Result<f64> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_f64().with_context(|| format!("\"{key}\" is not a number ({v})")),
        }
    }

    fn activation(&self, key: &str, default: &str) -> Result<Activation> {
        let name = self.0.get(key).and_then(Value::as_str).unwrap_or(default);
        Ok(match name {
            "gelu" | "gelu_python" => Activation::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            other => bail!("unsupported activation \"{other}\" in \"{key}\""),
        })
    }

    fn pad_token_id(&self) -> Result<Option<u32>> {
        match self.0.get("pad_token_id").and_then(Value::as_u64) {
            Some(v) => {
                Ok(Some(u32::try_from(v).ok().with_context(|| format!("\"pad_token_id\" {v} is not a token id"))?))
            }
            None => Ok(None),
        }
    }

    /// BERT and RoBERTa share their key names.
    fn bert_like(&self, family: Family, pad: Option<u32>) -> Result<ModelConfig> {
        Ok(ModelConfig {
            family,
            vocab_size: self.size("vocab_size")?,
            hidden_size: self.size("hidden_size")?,
            num_layers: self.size("num_hidden_layers")?,
            num_heads: self.size("num_attention_heads")?,
            intermediate_size: self.size("intermediate_size")?,
            max_positions: self.size("max_position_embeddings")?,
            type_vocab_size: self.size("type_vocab_size").unwrap_or(2),
            layer_norm_eps: self.float("layer_norm_eps", 1e-12)?,
            activation: self.activation("hidden_act", "gelu")?,
            hidden_dropout: self.float("hidden_dropout_prob", 0.1)? as f32,
            attention_dropout: self.float("attention_probs_dropout_prob", 0.1)? as f32,
            pad_token_id: pad.or(Some(if family == Family::Roberta { 1 } else { 0 })),
            decoder: DecoderConfig::default(),
            raw: Value::Null,
        })
    }

    fn distilbert(&self, pad: Option<u32>) -> Result<ModelConfig> {
        Ok(ModelConfig {
            family: Family::DistilBert,
            vocab_size: self.size("vocab_size")?,
            hidden_size: self.size("dim")?,
            num_layers: self.size("n_layers")?,
            num_heads: self.size("n_heads")?,
            intermediate_size: self.size("hidden_dim")?,
            max_positions: self.size("max_position_embeddings")?,
            type_vocab_size: 0,
            // DistilBERT hard-codes its LayerNorm epsilon.
            layer_norm_eps: 1e-12,
            activation: self.activation("activation", "gelu")?,
            hidden_dropout: self.float("dropout", 0.1)? as f32,
            attention_dropout: self.float("attention_dropout", 0.1)? as f32,
            pad_token_id: pad.or(Some(0)),
            decoder: DecoderConfig::default(),
            raw: Value::Null,
        })
    }

    fn gpt2(&self, pad: Option<u32>) -> Result<ModelConfig> {
        let d = self.size("n_embd")?;
        let inner = self.0.get("n_inner").and_then(Value::as_u64).map(|v| v as usize);
        Ok(ModelConfig {
            family: Family::Gpt2,
            vocab_size: self.size("vocab_size")?,
            hidden_size: d,
            num_layers: self.size("n_layer")?,
            num_heads: self.size("n_head")?,
            intermediate_size: inner.unwrap_or(d.saturating_mul(4)),
            max_positions: self.size("n_positions")?,
            type_vocab_size: 0,
            layer_norm_eps: self.float("layer_norm_epsilon", 1e-5)?,
            activation: self.activation("activation_function", "gelu_new")?,
            hidden_dropout: self.float("resid_pdrop", 0.1)? as f32,
            attention_dropout: self.float("attn_pdrop", 0.1)? as f32,
            pad_token_id: pad,
            decoder: DecoderConfig::default(),
            raw: Value::Null,
        })
    }

    /// Llama, Mistral and Qwen2 share their key names. They have no hidden dropout.
    fn llama_like(&self, family: Family, pad: Option<u32>) -> Result<ModelConfig> {
        let (d, heads, layers) =
            (self.size("hidden_size")?, self.size("num_attention_heads")?, self.size("num_hidden_layers")?);
        let decoder = decoder_config::llama_like(self.0, family, d, heads, layers)?;
        Ok(ModelConfig {
            family,
            vocab_size: self.size("vocab_size")?,
            hidden_size: d,
            num_layers: layers,
            num_heads: heads,
            intermediate_size: self.size("intermediate_size")?,
            max_positions: self.size("max_position_embeddings")?,
            type_vocab_size: 0,
            layer_norm_eps: self.float("rms_norm_eps", 1e-6)?,
            activation: self.activation("hidden_act", "silu")?,
            hidden_dropout: 0.0,
            attention_dropout: self.float("attention_dropout", 0.0)? as f32,
            pad_token_id: pad,
            decoder,
            raw: Value::Null,
        })
    }

    fn gpt_neox(&self, pad: Option<u32>) -> Result<ModelConfig> {
        let (d, heads) = (self.size("hidden_size")?, self.size("num_attention_heads")?);
        Ok(ModelConfig {
            family: Family::GptNeoX,
            vocab_size: self.size("vocab_size")?,
            hidden_size: d,
            num_layers: self.size("num_hidden_layers")?,
            num_heads: heads,
            intermediate_size: self.size("intermediate_size")?,
            max_positions: self.size("max_position_embeddings")?,
            type_vocab_size: 0,
            layer_norm_eps: self.float("layer_norm_eps", 1e-5)?,
            activation: self.activation("hidden_act", "gelu")?,
            hidden_dropout: self.float("hidden_dropout", 0.0)? as f32,
            attention_dropout: self.float("attention_dropout", 0.0)? as f32,
            pad_token_id: pad,
            decoder: decoder_config::gpt_neox(self.0, d, heads)?,
            raw: Value::Null,
        })
    }

    fn opt(&self, pad: Option<u32>) -> Result<ModelConfig> {
        let (d, heads) = (self.size("hidden_size")?, self.size("num_attention_heads")?);
        Ok(ModelConfig {
            family: Family::Opt,
            vocab_size: self.size("vocab_size")?,
            hidden_size: d,
            num_layers: self.size("num_hidden_layers")?,
            num_heads: heads,
            intermediate_size: self.size("ffn_dim")?,
            max_positions: self.size("max_position_embeddings")?,
            type_vocab_size: 0,
            // OPT hard-codes its LayerNorm epsilon (nn.LayerNorm's default).
            layer_norm_eps: 1e-5,
            activation: self.activation("activation_function", "relu")?,
            hidden_dropout: self.float("dropout", 0.1)? as f32,
            attention_dropout: self.float("attention_dropout", 0.0)? as f32,
            pad_token_id: pad.or(Some(1)),
            decoder: decoder_config::opt(self.0, d, heads)?,
            raw: Value::Null,
        })
    }
}

impl ModelConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let raw: Value = serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))?;
        Self::from_value(raw).with_context(|| format!("{}", path.display()))
    }

    /// Reads the keys of a parsed `config.json` that the model uses, under each family's
    /// names, and checks the values; `raw` is kept for saving.
    pub fn from_value(raw: Value) -> Result<Self> {
        let family = family_of(&raw)?;
        let keys = Keys(&raw);
        let pad = keys.pad_token_id()?;
        let cfg = match family {
            Family::Bert | Family::Roberta => keys.bert_like(family, pad)?,
            Family::DistilBert => keys.distilbert(pad)?,
            Family::Gpt2 => keys.gpt2(pad)?,
            Family::Llama | Family::Mistral | Family::Qwen2 => keys.llama_like(family, pad)?,
            Family::GptNeoX => keys.gpt_neox(pad)?,
            Family::Opt => keys.opt(pad)?,
        };
        cfg.validate()?;
        // Llama-like configs may give `head_dim` explicitly, so heads · head_dim ≠ hidden is allowed there.
        let own_head_dim = matches!(family, Family::Llama | Family::Mistral | Family::Qwen2);
        if !own_head_dim && cfg.hidden_size % cfg.num_heads != 0 {
            bail!("hidden size {} is not divisible by {} attention heads", cfg.hidden_size, cfg.num_heads);
        }
        Ok(ModelConfig { raw, ..cfg })
    }

    /// Refuses values that would make every output NaN or the model empty instead of letting
    /// them through to the numbers (a negative LayerNorm epsilon gives NaN hidden states).
    fn validate(&self) -> Result<()> {
        // No checkpoint has a dimension near 2³²; larger values would overflow the shape
        // products the layout computes (3·n_embd, 4·n_embd) and can only come from a broken file.
        for (key, v) in [
            ("vocab size", self.vocab_size),
            ("hidden size", self.hidden_size),
            ("intermediate size", self.intermediate_size),
            ("position table size", self.max_positions),
            ("token type table size", self.type_vocab_size),
            ("layer count", self.num_layers),
            ("attention head count", self.num_heads),
        ] {
            if v > MAX_SIZE {
                bail!("{key} {v} is larger than any checkpoint (at most {MAX_SIZE})");
            }
        }
        let sizes = [
            ("vocabulary size", self.vocab_size),
            ("hidden size", self.hidden_size),
            ("number of layers", self.num_layers),
            ("number of attention heads", self.num_heads),
            ("intermediate size", self.intermediate_size),
            ("number of positions", self.max_positions),
        ];
        for (what, value) in sizes {
            if value == 0 {
                bail!("{what} is 0; it must be at least 1");
            }
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            bail!("layer_norm_eps is {}; it must be a positive finite number", self.layer_norm_eps);
        }
        for (what, p) in [("hidden dropout", self.hidden_dropout), ("attention dropout", self.attention_dropout)] {
            if !(p.is_finite() && (0.0..1.0).contains(&p)) {
                bail!("{what} is {p}; it must be in [0, 1)");
            }
        }
        if self.family == Family::Roberta && self.max_positions <= self.pad_token_id.unwrap_or(1) as usize + 1 {
            bail!(
                "max_position_embeddings {} leaves no positions: RoBERTa's table starts after pad_token_id {} + 1",
                self.max_positions,
                self.pad_token_id.unwrap_or(1)
            );
        }
        if let Some(pad) = self.pad_token_id
            && pad as usize >= self.vocab_size
        {
            bail!("pad_token_id {pad} is outside the vocabulary of {} tokens", self.vocab_size);
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        if self.decoder.head_dim > 0 { self.decoder.head_dim } else { self.hidden_size / self.num_heads }
    }

    /// Key/value heads: fewer than query heads under grouped-query attention.
    pub fn num_kv_heads(&self) -> usize {
        if self.decoder.num_kv_heads > 0 { self.decoder.num_kv_heads } else { self.num_heads }
    }

    /// True when the LM head is the word-embedding matrix itself (always, in the BERT family
    /// and GPT-2); false when the checkpoint has its own `lm_head` / `embed_out` weight.
    pub fn tied_head(&self) -> bool {
        self.decoder.tie_word_embeddings
    }

    /// Number of positions a sequence may use. RoBERTa's table starts at `padding_idx + 1`.
    pub fn usable_positions(&self) -> usize {
        match self.family {
            Family::Roberta => self.max_positions - self.pad_token_id.unwrap_or(1) as usize - 1,
            _ => self.max_positions,
        }
    }

    /// Override dropout rates (the Dropout debiasing method, or `--dropout 0`).
    pub fn set_dropout(&mut self, hidden: f32, attention: f32) {
        self.hidden_dropout = hidden;
        self.attention_dropout = attention;
    }

    /// The config as it should be written next to a saved checkpoint.
    pub fn to_saved_json(&self) -> Value {
        let mut raw = self.raw.clone();
        if let Value::Object(map) = &mut raw {
            map.insert("architectures".into(), Value::Array(vec![Value::String(self.family.lm_architecture().into())]));
            // Llama-like models have no hidden dropout key; fairnc's residual dropout is a training choice.
            let (hk, ak) = match self.family {
                Family::Bert | Family::Roberta => (Some("hidden_dropout_prob"), "attention_probs_dropout_prob"),
                Family::DistilBert | Family::Opt => (Some("dropout"), "attention_dropout"),
                Family::Gpt2 => (Some("resid_pdrop"), "attn_pdrop"),
                Family::GptNeoX => (Some("hidden_dropout"), "attention_dropout"),
                Family::Llama | Family::Mistral | Family::Qwen2 => (None, "attention_dropout"),
            };
            if let Some(hk) = hk {
                map.insert(hk.into(), round_json(self.hidden_dropout));
            }
            map.insert(ak.into(), round_json(self.attention_dropout));
            if self.family == Family::Gpt2 {
                map.insert("embd_pdrop".into(), round_json(self.hidden_dropout));
            }
        }
        raw
    }
}

fn round_json(x: f32) -> Value {
    // f32 → f64 would print 0.15000000596; round to the precision users typed.
    let v = (x as f64 * 1e6).round() / 1e6;
    serde_json::json!(v)
}
