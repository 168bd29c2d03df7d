//! Checkpoint directory → [`LanguageModel`]: BERT, RoBERTa, DistilBERT, GPT-2, Llama, Mistral,
//! Qwen2, GPT-NeoX or OPT with its tokenizer, trainable end to end. The LM head is tied to the
//! word embeddings, except in decoders whose config unties it (`lm_head` / `embed_out`).
//!
//! Only this module knows how a family lays out its weights; everything else sees
//! [`LanguageModel`].

pub(crate) mod attention_received;
pub(crate) mod batch;
pub mod config;
pub mod decoder_config;
pub(crate) mod encoder;
pub mod fill_mask;
pub(crate) mod gpt2;
pub mod hidden_states;
pub mod info;
pub(crate) mod kernels;
pub(crate) mod layers;
pub mod layout;
pub(crate) mod llama;
pub(crate) mod neox;
pub(crate) mod opt;
pub(crate) mod pickle;
pub mod projection;
pub(crate) mod rotary;
pub(crate) mod tensor_data;
pub(crate) mod tokenizer;
pub(crate) mod torch_zip;
pub mod weights;

pub use batch::{Batch, plan_by_length};
pub use config::{Family, ModelConfig, ModelKind};
pub use info::ModelInfo;
pub use layers::Exec;
pub use projection::{Projection, ProjectionInfo};
pub use tokenizer::{Encoded, TextTokenizer};

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor, Var};
use layers::Dropout;
use std::path::{Path, PathBuf};
use weights::{ParamStore, TensorFiles};

enum Arch {
    Encoder(encoder::Encoder),
    Gpt2(gpt2::Gpt2),
    Llama(llama::Llama),
    NeoX(neox::GptNeoX),
    Opt(opt::Opt),
}

/// What to do with a text longer than the position table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Cut it and warn once.
    Truncate,
    /// Refuse it.
    Error,
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub device: Device,
    /// Seed for a newly created head and for dropout masks.
    pub seed: u64,
    /// (hidden, attention) dropout replacing the config's (the Dropout debiasing method).
    pub dropout: Option<(f32, f32)>,
    /// What parameters are kept and computed in: f32 (the default; what the references use),
    /// or bf16 / f16 where memory matters. Outputs are f32 either way. bf16 moves hidden
    /// states and logits by at most 3% of their largest |value| in f32 (measured 0.7–2.85% on
    /// the tiny fixtures and MiniLM), f16 by at most 0.5% (0.09–0.27%): tests/formats.rs.
    pub dtype: DType,
    /// A projection file applied to the last-layer hidden states (`--projection`), in place of
    /// the `projection.safetensors` the model directory may hold.
    pub projection: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { device: Device::Cpu, seed: 0, dropout: None, dtype: DType::F32, projection: None }
    }
}

pub struct LanguageModel {
    /// What the model was asked for by ("minilm", "hf:ORG/NAME", a directory): the name results
    /// record. [`LanguageModel::load`] sets the directory; `registry::load` the name given.
    pub name: String,
    pub config: ModelConfig,
    pub tokenizer: TextTokenizer,
    pub params: ParamStore,
    pub dir: PathBuf,
    pub device: Device,
    arch: Arch,
    /// SentenceDebias / INLP projection of the last-layer hidden states, if any.
    projection: Option<Projection>,
    dropout: Dropout,
    warned_truncation: std::sync::atomic::AtomicBool,
}

thread_local! {
    static LOADS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many models this thread has loaded: lets a test see that a composite stage (the audit)
/// loads its model once and hands it to every part.
pub fn loads_on_this_thread() -> usize {
    LOADS.with(|n| n.get())
}

impl LanguageModel {
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        if !dir.is_dir() {
            return Err(crate::util::fs::not_found(format!("{}: model directory does not exist", dir.display())));
        }
        let mut config = ModelConfig::from_file(&dir.join("config.json"))?;
        if let Some((hidden, attention)) = opts.dropout {
            config.set_dropout(hidden, attention);
        }
        let tokenizer = TextTokenizer::for_model(dir, &config)?;
        let mut files = TensorFiles::open_as(dir, &opts.device, opts.dtype)?;
        // Every layer has tensors of its own; checked before the per-layer layout is built,
        // whose size would otherwise follow the config's count alone.
        if config.num_layers > files.tensor_count() {
            bail!(
                "{}: {} layers, but {} holds only {} tensors",
                dir.join("config.json").display(),
                config.num_layers,
                files.primary.display(),
                files.tensor_count()
            );
        }
        let specs = layout::param_specs(&config);
        let mut params = ParamStore::load(&mut files, &specs, &config, opts.seed)?;
        if tokenizer.vocab_size() > config.vocab_size {
            bail!(
                "{}: tokenizer has {} tokens but the embedding {} has only {} rows",
                tokenizer.source.display(),
                tokenizer.vocab_size(),
                files.primary.display(),
                config.vocab_size
            );
        }
        if tokenizer.vocab_size() < config.vocab_size {
            params.notes.push(format!(
                "embedding has {} rows, tokenizer {} tokens: {} rows are never used",
                config.vocab_size,
                tokenizer.vocab_size(),
                config.vocab_size - tokenizer.vocab_size()
            ));
        }
        let arch = match config.family {
            Family::Gpt2 => Arch::Gpt2(gpt2::Gpt2::new(&config, &params)),
            Family::Llama | Family::Mistral | Family::Qwen2 => Arch::Llama(llama::Llama::new(&config, &params)?),
            Family::GptNeoX => Arch::NeoX(neox::GptNeoX::new(&config, &params)?),
            Family::Opt => Arch::Opt(opt::Opt::new(&config, &params)?),
            Family::Bert | Family::Roberta | Family::DistilBert => {
                Arch::Encoder(encoder::Encoder::new(&config, &params))
            }
        };
        let projection_file = opts.projection.clone().or_else(|| {
            let p = dir.join(projection::FILE);
            p.is_file().then_some(p)
        });
        let width = match &arch {
            Arch::Opt(m) => m.classifier().as_tensor().dims()[1],
            _ => config.hidden_size,
        };
        let projection = projection_file.map(|f| Projection::load(&f, width, &opts.device)).transpose()?;
        LOADS.with(|n| n.set(n.get() + 1));
        Ok(LanguageModel {
            name: dir.display().to_string(),
            config,
            tokenizer,
            params,
            dir: dir.to_path_buf(),
            device: opts.device.clone(),
            arch,
            projection,
            dropout: Dropout::new(opts.seed ^ 0x000D_500D),
            warned_truncation: false.into(),
        })
    }

    pub fn family(&self) -> Family {
        self.config.family
    }

    /// The dtype parameters are kept and computed in ([`LoadOptions::dtype`]). Tensors cross
    /// [`Self::word_embeddings`], [`Self::hidden_from_words`], [`Self::hidden`],
    /// [`Self::head_features`] and the logits in f32 whatever it is.
    pub fn dtype(&self) -> DType {
        self.classifier().dtype()
    }

    pub fn kind(&self) -> ModelKind {
        self.config.family.kind()
    }

    /// Longest sequence, special tokens included, that the position table allows.
    pub fn max_len(&self) -> usize {
        self.config.usable_positions()
    }

    pub fn dropout_rng(&self) -> &Dropout {
        &self.dropout
    }

    /// Tokenizes texts with special tokens, cutting (with one warning) or refusing texts that
    /// do not fit `max_len` (at most the position table).
    pub fn encode(&self, texts: &[&str], max_len: usize, overflow: Overflow) -> Result<Vec<Encoded>> {
        let max_len = max_len.min(self.max_len());
        let encoded = self.tokenizer.encode_all(texts, max_len)?;
        if let Some(i) = encoded.iter().position(|e| e.truncated) {
            match overflow {
                Overflow::Error => bail!(
                    "text {} is longer than {max_len} tokens: {:?}",
                    i + 1,
                    crate::util::text::preview(texts[i], 60)
                ),
                Overflow::Truncate => {
                    if !self.warned_truncation.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        let n = encoded.iter().filter(|e| e.truncated).count();
                        crate::util::progress::background()
                            .message(&format!("warning: {n} text(s) longer than {max_len} tokens were truncated"));
                    }
                }
            }
        }
        Ok(encoded)
    }

    /// Tokenizes texts, cutting those longer than `max_len` without a warning: for callers
    /// that check [`Encoded::truncated`] and skip such texts themselves.
    pub fn encode_quiet(&self, texts: &[&str], max_len: usize) -> Result<Vec<Encoded>> {
        self.tokenizer.encode_all(texts, max_len.min(self.max_len()))
    }

    pub fn batch(&self, rows: Vec<Vec<u32>>) -> Result<Batch> {
        Batch::new(rows, self.tokenizer.pad_id, &self.device)
    }

    /// A batch of sentence pairs with their segments. Models with a single segment embedding
    /// (RoBERTa) or none (DistilBERT, GPT-2) see every token as segment 0, as in transformers.
    pub fn pair_batch(&self, rows: Vec<Vec<u32>>, types: &[Vec<u32>]) -> Result<Batch> {
        if self.kind() == ModelKind::Causal || self.config.type_vocab_size < 2 {
            return self.batch(rows);
        }
        Batch::with_types(rows, types, self.tokenizer.pad_id, &self.device)
    }

    /// Last-layer hidden states `[B, T, D]` (decoders: after the final norm).
    ///
    /// Without a backward pass (every measurement: fill-mask, `hidden`, scoring, SEAT,
    /// statistics) the states are checked to be finite, so that weights that overflow give an
    /// error naming the model instead of NaN scores; training checks its loss instead.
    pub fn hidden(&self, batch: &Batch, exec: Exec) -> Result<Tensor> {
        let hidden = self.hidden_from_words(batch, &self.word_embeddings(batch)?, exec)?;
        if !exec.grad {
            // One reduction against a whole forward pass; NaN and ±inf both survive a sum.
            let total = hidden.sum_all()?.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?;
            if !total.is_finite() {
                bail!(
                    "{}: hidden states of a batch of {} text(s) are not finite (the weights overflow); the model cannot be measured",
                    self.dir.display(),
                    batch.ids.len()
                );
            }
        }
        Ok(hidden)
    }

    /// Last-layer hidden states `[B, T, D]` (inference) and, per row, the attention each
    /// position received `[B, T]`: averaged over layers, heads and the row's real query
    /// positions, so that padding leaves it unchanged (padding keys receive 0). Computed with
    /// explicit attention probabilities, batched; [`Self::hidden`]'s fused path is not used,
    /// so the states agree with it to rounding only. Masked LMs (the encoders) only.
    pub fn hidden_with_attention(&self, batch: &Batch) -> Result<(Tensor, Tensor)> {
        let Arch::Encoder(m) = &self.arch else {
            bail!(
                "{}: received attention is computed for masked LMs (BERT, RoBERTa, DistilBERT) only, not {:?}",
                self.dir.display(),
                self.family()
            );
        };
        let (hidden, received) = m.hidden_with_received(batch, &self.dropout)?;
        let hidden = self.project(hidden)?;
        let total = (hidden.sum_all()?.to_scalar::<f32>()? + received.sum_all()?.to_scalar::<f32>()?).is_finite();
        if !total {
            bail!(
                "{}: hidden states or attention of a batch of {} text(s) are not finite (the weights overflow); the model cannot be measured",
                self.dir.display(),
                batch.ids.len()
            );
        }
        Ok((hidden, received))
    }

    /// The input path of the tied matrix: word-embedding rows of the batch `[B, T, D]`.
    /// With [`Self::hidden_from_words`] it splits [`Self::hidden`] in two, so that callers can
    /// perturb the input embeddings or read their gradient.
    pub fn word_embeddings(&self, batch: &Batch) -> Result<Tensor> {
        let words = match &self.arch {
            Arch::Encoder(m) => m.word_embeddings(batch),
            Arch::Gpt2(m) => m.word_embeddings(batch),
            Arch::Llama(m) => m.word_embeddings(batch),
            Arch::NeoX(m) => m.word_embeddings(batch),
            Arch::Opt(m) => m.word_embeddings(batch),
        }?;
        Ok(words.to_dtype(DType::F32)?)
    }

    /// Last-layer hidden states from given word-embedding rows `[B, T, D]`, projected when the
    /// model carries a projection ([`Self::projection`]).
    pub fn hidden_from_words(&self, batch: &Batch, words: &Tensor, exec: Exec) -> Result<Tensor> {
        let words = &words.to_dtype(self.dtype())?;
        let hidden = match &self.arch {
            Arch::Encoder(m) => m.hidden_from_words(batch, words, &self.dropout, exec),
            Arch::Gpt2(m) => m.hidden_from_words(batch, words, &self.dropout, exec),
            Arch::Llama(m) => m.hidden_from_words(batch, words, &self.dropout, exec),
            Arch::NeoX(m) => m.hidden_from_words(batch, words, &self.dropout, exec),
            Arch::Opt(m) => m.hidden_from_words(batch, words, &self.dropout, exec),
        }?;
        self.project(hidden)
    }

    /// Last-layer hidden states as every reader sees them: f32, through the model's projection
    /// (SentenceDebias, INLP) when it has one. Every path to the last hidden states ends here,
    /// so no measure scores the unprojected model by taking another route.
    fn project(&self, hidden: Tensor) -> Result<Tensor> {
        match &self.projection {
            Some(p) => p.apply(&hidden),
            None => Ok(hidden.to_dtype(DType::F32)?),
        }
    }

    /// The projection applied to the last-layer hidden states (SentenceDebias, INLP), if any.
    pub fn projection(&self) -> Option<&ProjectionInfo> {
        self.projection.as_ref().map(|p| &p.info)
    }

    /// The classifier `W [V, D]`: the LM head's decoder. Tied heads share the word-embedding
    /// `Var`; an untied decoder head (`lm_head`, `embed_out`) is its own `Var`, so the NC3
    /// regularizer's gradient reaches it and not the input embeddings.
    pub fn classifier(&self) -> &Var {
        match &self.arch {
            Arch::Encoder(m) => &m.word,
            Arch::Gpt2(m) => &m.wte,
            Arch::Llama(m) => m.classifier(),
            Arch::NeoX(m) => m.classifier(),
            Arch::Opt(m) => m.classifier(),
        }
    }

    /// Width of the hidden rows [`Self::hidden`] returns and of the classifier's features: the
    /// hidden size, except in OPT models with `project_out`, whose rows have the narrower
    /// word-embedding width.
    pub fn feature_width(&self) -> usize {
        self.classifier().as_tensor().dims().get(1).copied().unwrap_or(self.config.hidden_size)
    }

    /// The checkpoint name of [`Self::classifier`].
    pub fn classifier_name(&self) -> String {
        let w = self.classifier().as_tensor().id();
        self.params.vars.iter().find(|(_, v)| v.as_tensor().id() == w).map(|(n, _)| n.clone()).unwrap_or_default()
    }

    /// Features the classifier reads: the MLM head transform of hidden rows `[N, D]` for
    /// masked LMs (the Fairness-NC measurement point); the rows themselves for decoders.
    pub fn head_features(&self, rows: &Tensor, exec: Exec) -> Result<Tensor> {
        let rows = &rows.to_dtype(self.dtype())?;
        let features = match &self.arch {
            Arch::Encoder(m) => m.head_transform(rows, exec),
            Arch::Gpt2(_) | Arch::Llama(_) | Arch::NeoX(_) | Arch::Opt(_) => Ok(rows.clone()),
        }?;
        Ok(features.to_dtype(DType::F32)?)
    }

    /// Vocabulary logits `[N, V]` of hidden rows `[N, D]`.
    pub fn logits_rows(&self, rows: &Tensor, exec: Exec) -> Result<Tensor> {
        let rows = &rows.to_dtype(self.dtype())?;
        let logits = match &self.arch {
            Arch::Encoder(m) => m.logits(rows, exec),
            Arch::Gpt2(m) => m.logits(rows),
            Arch::Llama(m) => m.logits(rows),
            Arch::NeoX(m) => m.logits(rows),
            Arch::Opt(m) => m.logits(rows),
        }?;
        Ok(logits.to_dtype(DType::F32)?)
    }

    /// Logits `[N, V]` at chosen `(row, position)` pairs of a hidden-state batch `[B, T, D]`.
    /// Only the selected rows go through the vocabulary projection.
    pub fn logits_at(&self, hidden: &Tensor, positions: &[(usize, usize)], exec: Exec) -> Result<Tensor> {
        let (b, t, d) = hidden.dims3()?;
        let idx: Vec<u32> = positions
            .iter()
            .map(|&(r, p)| {
                if r >= b || p >= t {
                    bail!("position ({r}, {p}) outside a [{b}, {t}] batch");
                }
                Ok((r * t + p) as u32)
            })
            .collect::<Result<_>>()?;
        let idx = Tensor::from_vec(idx, positions.len(), hidden.device())?;
        let rows = hidden.reshape((b * t, d))?.index_select(&idx, 0)?;
        self.logits_rows(&rows, exec)
    }

    /// True when the checkpoint holds BERT's next-sentence head (`cls.seq_relationship`) and the
    /// pooler it reads (`BertForPreTraining` files).
    pub fn has_next_sentence_head(&self) -> bool {
        matches!(&self.arch, Arch::Encoder(m) if m.has_next_sentence_head())
    }

    /// Next-sentence logits `[B, 2]` in f32 of a batch of sentence pairs (logit 0: the second
    /// segment follows the first; 1: it is random), from one forward pass; None when the model
    /// has no next-sentence head.
    pub fn next_sentence_logits(&self, batch: &Batch) -> Option<Result<Tensor>> {
        let Arch::Encoder(m) = &self.arch else { return None };
        if !m.has_next_sentence_head() {
            return None;
        }
        let run = || -> Result<Tensor> {
            let hidden = self.hidden(batch, Exec::INFER)?.to_dtype(self.dtype())?;
            let logits = m.next_sentence_logits(&hidden).context("no next-sentence head")??;
            Ok(logits.to_dtype(DType::F32)?)
        };
        Some(run())
    }

    /// Every trainable parameter, by Hugging Face name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.params.vars.iter().map(|(n, v)| (n.clone(), v.clone())).collect()
    }

    pub fn num_parameters(&self) -> usize {
        self.params.num_parameters()
    }

    /// Saves weights, config and tokenizer files so that `transformers` loads the directory
    /// with `AutoModelForMaskedLM` / `AutoModelForCausalLM` unchanged.
    pub fn save(&self, out: &Path) -> Result<()> {
        std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create directory", out.display()))?;
        self.params.save(&out.join("model.safetensors"))?;
        let cfg = serde_json::to_string_pretty(&self.config.to_saved_json())?;
        crate::util::fs::write_atomic(&out.join("config.json"), cfg.as_bytes())?;
        for name in [
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "vocab.txt",
            "vocab.json",
            "merges.txt",
        ] {
            let src = self.dir.join(name);
            let dst = out.join(name);
            if src.exists() && src != dst {
                let bytes = std::fs::read(&src).with_context(|| format!("{}: cannot read", src.display()))?;
                crate::util::fs::write_atomic(&dst, &bytes)?;
            }
        }
        // A projected model stays projected.
        if let Some(p) = &self.projection {
            let src = PathBuf::from(&p.info.file);
            let dst = out.join(projection::FILE);
            if src != dst {
                let bytes = std::fs::read(&src).with_context(|| format!("{}: cannot read", src.display()))?;
                crate::util::fs::write_atomic(&dst, &bytes)?;
            }
        }
        Ok(())
    }
}
