//! The keys the modern causal decoders (Llama, Mistral, Qwen2, GPT-NeoX, OPT) add to the shared
//! [`ModelConfig`](super::config::ModelConfig): grouped-query attention, rotary embeddings and
//! their scaling, sliding windows, untied heads, OPT's projections.
//!
//! transformers 5 writes rotary settings as `rope_parameters`; older files have `rope_theta` and
//! `rope_scaling`. Both are read, and a scaling type fairnc does not implement is refused rather
//! than silently computed as unscaled.

use super::config::Family;
use anyhow::{Context, Result, bail};
use serde_json::Value;

/// How rotary frequencies are rescaled for long contexts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor` (every frequency divided by it).
    Linear {
        factor: f64,
    },
    /// Llama 3.1's per-band rescaling of the inverse frequencies.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_positions: f64,
    },
}

/// Rotary position embedding of the first `dims` channels of each head (all of them except in
/// GPT-NeoX, whose `rotary_pct` rotates a part).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rope {
    pub theta: f64,
    pub dims: usize,
    pub scaling: RopeScaling,
}

impl Rope {
    /// The inverse frequencies `θ^(-2i/dims)`, rescaled, computed in f32 as transformers does
    /// (`1 / base ** (arange(0, dim, 2).float() / dim)`), so that positions far out round alike.
    pub fn inv_freq(&self) -> Vec<f32> {
        let half = self.dims / 2;
        let base = self.theta as f32;
        let raw: Vec<f32> = (0..half).map(|i| 1.0 / base.powf((2 * i) as f32 / self.dims as f32)).collect();
        match self.scaling {
            RopeScaling::None => raw,
            RopeScaling::Linear { factor } => raw.iter().map(|f| f / factor as f32).collect(),
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_positions } => {
                let (factor, low, high, old) =
                    (factor as f32, low_freq_factor as f32, high_freq_factor as f32, original_max_positions as f32);
                let low_wavelen = old / low;
                let high_wavelen = old / high;
                raw.iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f32::consts::PI / f;
                        if wavelen > low_wavelen {
                            f / factor
                        } else if wavelen < high_wavelen {
                            f
                        } else {
                            // Medium band: interpolated between the scaled and the raw frequency.
                            let smooth = (old / wavelen - low) / (high - low);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        }
    }
}

/// OPT's extras: learned positions offset by 2, optional pre/post LayerNorm, and projections
/// between a narrower word-embedding width and the hidden size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptExtras {
    pub layer_norm_before: bool,
    /// The final LayerNorm exists (`do_layer_norm_before` and not `_remove_final_layer_norm`).
    pub final_layer_norm: bool,
    pub word_embed_proj_dim: usize,
    pub bias: bool,
}

/// What a decoder family adds; the BERT family and GPT-2 leave it at its default.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderConfig {
    /// Key/value heads (grouped-query attention); equals the query heads without GQA.
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rope: Option<Rope>,
    /// The LM head is the word-embedding matrix (one `Var`), else its own `lm_head` weight.
    pub tie_word_embeddings: bool,
    /// Attention window of each layer (Mistral, Qwen2): a query sees at most this many keys.
    pub windows: Vec<Option<usize>>,
    /// Biases on the q/k/v projections (Qwen2; Llama's `attention_bias`).
    pub qkv_bias: bool,
    /// Bias on the attention output projection (Llama's `attention_bias`).
    pub o_bias: bool,
    pub mlp_bias: bool,
    /// GPT-NeoX: attention and MLP both read the block's input.
    pub parallel_residual: bool,
    pub opt: Option<OptExtras>,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            num_kv_heads: 0,
            head_dim: 0,
            rope: None,
            tie_word_embeddings: true,
            windows: Vec::new(),
            qkv_bias: true,
            o_bias: true,
            mlp_bias: true,
            parallel_residual: false,
            opt: None,
            bos_token_id: None,
            eos_token_id: None,
        }
    }
}

fn number(v: &Value, key: &str) -> Result<Option<f64>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x.as_f64().map(Some).with_context(|| format!("\"{key}\" is not a number ({x})")),
    }
}

fn flag(v: &Value, key: &str, default: bool) -> Result<bool> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x.as_bool().with_context(|| format!("\"{key}\" is not true or false ({x})")),
    }
}

/// A token id key: an integer, or a list whose first entry is taken (Llama 3 lists several eos ids).
fn token_id(v: &Value, key: &str) -> Result<Option<u32>> {
    let x = match v.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => match a.first() {
            Some(x) => x,
            None => return Ok(None),
        },
        Some(x) => x,
    };
    let id = x.as_u64().and_then(|i| u32::try_from(i).ok());
    id.map(Some).with_context(|| format!("\"{key}\" is not a token id ({x})"))
}

/// `rope_parameters` (transformers 5) or `rope_theta` + `rope_scaling` (older files).
fn rope(raw: &Value, dims: usize, default_theta: f64) -> Result<Rope> {
    let params = raw.get("rope_parameters").filter(|v| v.is_object());
    let scaling = params.or_else(|| raw.get("rope_scaling").filter(|v| v.is_object()));
    let theta = match params.map(|p| number(p, "rope_theta")).transpose()?.flatten() {
        Some(t) => t,
        None => number(raw, "rope_theta")?.unwrap_or(default_theta),
    };
    if !(theta.is_finite() && theta > 1.0) {
        bail!("rope_theta is {theta}; it must be a finite number above 1");
    }
    let scaling = match scaling {
        None => RopeScaling::None,
        Some(s) => {
            let kind = s.get("rope_type").or_else(|| s.get("type")).and_then(Value::as_str).unwrap_or("default");
            let factor = || -> Result<f64> {
                let f = number(s, "factor")?.context("rope scaling has no \"factor\"")?;
                if !(f.is_finite() && f > 0.0) {
                    bail!("rope scaling factor is {f}; it must be a positive number");
                }
                Ok(f)
            };
            match kind {
                "default" => RopeScaling::None,
                "linear" => RopeScaling::Linear { factor: factor()? },
                "llama3" => {
                    let get = |k: &str| number(s, k)?.with_context(|| format!("llama3 rope scaling has no \"{k}\""));
                    let (low, high) = (get("low_freq_factor")?, get("high_freq_factor")?);
                    if !(low > 0.0 && high > low) {
                        bail!("llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor (got {low}, {high})");
                    }
                    RopeScaling::Llama3 {
                        factor: factor()?,
                        low_freq_factor: low,
                        high_freq_factor: high,
                        original_max_positions: get("original_max_position_embeddings")?,
                    }
                }
                other => bail!("rope scaling type \"{other}\" is not supported (supported: default, linear, llama3)"),
            }
        }
    };
    Ok(Rope { theta, dims, scaling })
}

/// The attention window of each layer: Mistral's `sliding_window` applies to every layer;
/// Qwen2 uses it only with `use_sliding_window`, from layer `max_window_layers` on;
/// transformers 5's `layer_types` says it per layer.
fn windows(raw: &Value, family: Family, layers: usize) -> Result<Vec<Option<usize>>> {
    let window = match raw.get("sliding_window") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|&w| w > 0)
                .with_context(|| format!("\"sliding_window\" is not a positive integer ({v})"))? as usize,
        ),
    };
    let Some(w) = window else { return Ok(vec![None; layers]) };
    if let Some(types) = raw.get("layer_types").and_then(Value::as_array) {
        if types.len() != layers {
            bail!("\"layer_types\" lists {} layers, but the model has {layers}", types.len());
        }
        return types
            .iter()
            .map(|t| match t.as_str() {
                Some("sliding_attention") => Ok(Some(w)),
                Some("full_attention") => Ok(None),
                _ => bail!("\"layer_types\" entry {t} is not \"full_attention\" or \"sliding_attention\""),
            })
            .collect();
    }
    Ok(match family {
        Family::Qwen2 => {
            if !flag(raw, "use_sliding_window", false)? {
                vec![None; layers]
            } else {
                let from = raw.get("max_window_layers").and_then(Value::as_u64).unwrap_or(layers as u64) as usize;
                (0..layers).map(|i| (i >= from).then_some(w)).collect()
            }
        }
        _ => vec![Some(w); layers],
    })
}

/// The decoder keys of a Llama, Mistral or Qwen2 config.
pub fn llama_like(raw: &Value, family: Family, hidden: usize, heads: usize, layers: usize) -> Result<DecoderConfig> {
    let kv = raw.get("num_key_value_heads").and_then(Value::as_u64).map_or(heads, |v| v as usize);
    if kv == 0 || !heads.is_multiple_of(kv) {
        bail!(
            "{heads} attention heads cannot be shared by {kv} key/value heads (num_key_value_heads must divide num_attention_heads)"
        );
    }
    let head_dim = match raw.get("head_dim") {
        None | Some(Value::Null) => hidden / heads.max(1),
        Some(v) => {
            v.as_u64().filter(|&d| d > 0).with_context(|| format!("\"head_dim\" is not a positive integer ({v})"))?
                as usize
        }
    };
    if head_dim % 2 != 0 {
        bail!("head dimension {head_dim} is odd; rotary embeddings need an even one");
    }
    let attention_bias = flag(raw, "attention_bias", false)?;
    let qwen = family == Family::Qwen2;
    Ok(DecoderConfig {
        num_kv_heads: kv,
        head_dim,
        rope: Some(rope(raw, head_dim, 10000.0)?),
        tie_word_embeddings: flag(raw, "tie_word_embeddings", false)?,
        windows: windows(raw, family, layers)?,
        qkv_bias: qwen || attention_bias,
        o_bias: attention_bias && !qwen,
        mlp_bias: flag(raw, "mlp_bias", false)? && !qwen,
        parallel_residual: false,
        opt: None,
        bos_token_id: token_id(raw, "bos_token_id")?,
        eos_token_id: token_id(raw, "eos_token_id")?,
    })
}

/// The decoder keys of a GPT-NeoX (Pythia) config.
pub fn gpt_neox(raw: &Value, hidden: usize, heads: usize) -> Result<DecoderConfig> {
    let head_dim = hidden / heads.max(1);
    let pct = number(raw, "rotary_pct")?
        .or(raw.get("rope_parameters").map(|p| number(p, "partial_rotary_factor")).transpose()?.flatten())
        .or(number(raw, "partial_rotary_factor")?)
        .unwrap_or(0.25);
    if !(pct > 0.0 && pct <= 1.0) {
        bail!("rotary_pct is {pct}; it must be in (0, 1]");
    }
    let dims = (head_dim as f64 * pct) as usize;
    if dims == 0 || !dims.is_multiple_of(2) {
        bail!(
            "rotary_pct {pct} of head dimension {head_dim} gives {dims} rotary channels; it must be a positive even number"
        );
    }
    let rope = Rope { dims, ..rope(raw, dims, 10000.0)? };
    let rope = match number(raw, "rotary_emb_base")? {
        Some(base) if raw.get("rope_parameters").is_none() && raw.get("rope_theta").is_none() => {
            Rope { theta: base, ..rope }
        }
        _ => rope,
    };
    Ok(DecoderConfig {
        num_kv_heads: heads,
        head_dim,
        rope: Some(rope),
        tie_word_embeddings: flag(raw, "tie_word_embeddings", false)?,
        windows: Vec::new(),
        qkv_bias: flag(raw, "attention_bias", true)?,
        o_bias: flag(raw, "attention_bias", true)?,
        mlp_bias: true,
        parallel_residual: flag(raw, "use_parallel_residual", true)?,
        opt: None,
        bos_token_id: token_id(raw, "bos_token_id")?,
        eos_token_id: token_id(raw, "eos_token_id")?,
    })
}

/// The decoder keys of an OPT config.
pub fn opt(raw: &Value, hidden: usize, heads: usize) -> Result<DecoderConfig> {
    let before = flag(raw, "do_layer_norm_before", true)?;
    let proj = raw.get("word_embed_proj_dim").and_then(Value::as_u64).map_or(hidden, |v| v as usize);
    if proj == 0 {
        bail!("word_embed_proj_dim is 0; it must be at least 1");
    }
    if !flag(raw, "layer_norm_elementwise_affine", true)? {
        bail!("layer_norm_elementwise_affine = false is not supported");
    }
    let bias = flag(raw, "enable_bias", true)?;
    Ok(DecoderConfig {
        num_kv_heads: heads,
        head_dim: hidden / heads.max(1),
        rope: None,
        tie_word_embeddings: flag(raw, "tie_word_embeddings", true)?,
        windows: Vec::new(),
        qkv_bias: bias,
        o_bias: bias,
        mlp_bias: bias,
        parallel_residual: false,
        opt: Some(OptExtras {
            layer_norm_before: before,
            final_layer_norm: before && !flag(raw, "_remove_final_layer_norm", false)?,
            word_embed_proj_dim: proj,
            bias,
        }),
        bos_token_id: token_id(raw, "bos_token_id")?,
        eos_token_id: token_id(raw, "eos_token_id")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn llama3_scaling_keeps_high_frequencies_and_divides_low_ones() {
        let r = Rope {
            theta: 500000.0,
            dims: 64,
            scaling: RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_positions: 8192.0,
            },
        };
        let raw = Rope { scaling: RopeScaling::None, ..r }.inv_freq();
        let scaled = r.inv_freq();
        assert_eq!(scaled[0], raw[0]);
        assert!((scaled[31] - raw[31] / 8.0).abs() < 1e-12);
    }

    #[test]
    fn both_rope_spellings_are_read_and_unknown_types_refused() {
        let old = json!({"rope_theta": 5e5, "rope_scaling": {"type": "linear", "factor": 2.0}});
        let new = json!({"rope_parameters": {"rope_type": "linear", "rope_theta": 5e5, "factor": 2.0}});
        assert_eq!(rope(&old, 8, 1e4).unwrap(), rope(&new, 8, 1e4).unwrap());
        assert_eq!(rope(&old, 8, 1e4).unwrap().scaling, RopeScaling::Linear { factor: 2.0 });
        let yarn = json!({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}});
        assert!(rope(&yarn, 8, 1e4).unwrap_err().to_string().contains("yarn"));
    }

    #[test]
    fn qwen2_windows_start_at_max_window_layers() {
        let raw = json!({"sliding_window": 4, "use_sliding_window": true, "max_window_layers": 1});
        assert_eq!(windows(&raw, Family::Qwen2, 3).unwrap(), vec![None, Some(4), Some(4)]);
        let off = json!({"sliding_window": 4});
        assert_eq!(windows(&off, Family::Qwen2, 2).unwrap(), vec![None, None]);
        assert_eq!(windows(&off, Family::Mistral, 2).unwrap(), vec![Some(4), Some(4)]);
    }
}
