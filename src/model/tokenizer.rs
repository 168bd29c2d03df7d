//! Tokenizers for every family, from `tokenizer.json` or (BERT family, GPT-2) from the slow
//! vocabulary files. The modern decoders name their special tokens in `tokenizer_config.json`
//! and `config.json` rather than by convention, so theirs are read from there.
//!
//! A `tokenizer.json` may carry its own padding and truncation (MiniLM's pads every input to
//! 128); both are switched off here and done by [`super::batch`], so token counts never drift.

use super::config::{Family, ModelConfig};
use anyhow::{Context, Result, anyhow, bail};
use rayon::prelude::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;

/// A text after tokenization, with the special tokens the family adds.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub ids: Vec<u32>,
    /// Character offsets into the text (special tokens have (0, 0)).
    pub offsets: Vec<(usize, usize)>,
    /// Index of the pre-tokenized word each token came from (None for special tokens).
    pub word_ids: Vec<Option<u32>>,
    /// True when the text was cut to fit the position table.
    pub truncated: bool,
}

pub struct TextTokenizer {
    inner: Tokenizer,
    pub family: Family,
    pub pad_id: u32,
    /// The mask token and its id (masked LMs only).
    pub mask: Option<(String, u32)>,
    /// The token a sentence's first token is scored after: GPT-2's `<|endoftext|>`; a
    /// decoder's BOS, else its EOS (lm-evaluation-harness's `prefix_token_id`).
    pub bos_id: Option<u32>,
    /// Words are looked up as `" word"`: byte-level BPE vocabularies (GPT-2, RoBERTa, and
    /// decoders whose tokenizer marks a word's leading space) hold a word's in-sentence form
    /// with its space; WordPiece and sentencepiece-style ones without.
    pub space_before_words: bool,
    /// Ids never treated as words: [CLS], [SEP], [PAD], [MASK], [UNK], `<s>`, `</s>`...
    pub special_ids: BTreeSet<u32>,
    /// How many special tokens a single sequence gets ([CLS] + [SEP] = 2 for BERT).
    pub added_per_sequence: usize,
    /// Where it was read from, for messages.
    pub source: PathBuf,
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Special-token strings of each family, in the roles [`TextTokenizer`] needs (cls/sep are
/// a decoder's bos/eos).
struct Specials {
    pad: Option<String>,
    mask: Option<String>,
    unk: Option<String>,
    cls: Option<String>,
    sep: Option<String>,
}

fn fixed(pad: &str, mask: Option<&str>, unk: &str, cls: &str, sep: &str) -> Specials {
    let s = |x: &str| Some(x.to_string());
    Specials { pad: s(pad), mask: mask.map(str::to_string), unk: s(unk), cls: s(cls), sep: s(sep) }
}

fn specials(family: Family) -> Specials {
    match family {
        Family::Bert | Family::DistilBert => fixed("[PAD]", Some("[MASK]"), "[UNK]", "[CLS]", "[SEP]"),
        Family::Roberta => fixed("<pad>", Some("<mask>"), "<unk>", "<s>", "</s>"),
        Family::Gpt2 => fixed("<|endoftext|>", None, "<|endoftext|>", "<|endoftext|>", "<|endoftext|>"),
        // Read from the checkpoint's files instead (`decoder_specials`).
        _ => Specials { pad: None, mask: None, unk: None, cls: None, sep: None },
    }
}

/// A `tokenizer_config.json` token entry: a string or `{"content": ...}`.
fn config_token(config: &Option<serde_json::Value>, key: &str) -> Option<String> {
    let v = config.as_ref()?.get(key)?;
    v.as_str().or_else(|| v.get("content").and_then(|c| c.as_str())).map(str::to_string)
}

/// A decoder's bos/eos/pad/unk: `tokenizer_config.json` names them; `config.json`'s ids fill
/// in what it does not.
fn decoder_specials(dir: &Path, inner: &Tokenizer, cfg: &ModelConfig) -> Specials {
    let tc = read_json(&dir.join("tokenizer_config.json"));
    let by_id = |id: Option<u32>| id.and_then(|i| inner.id_to_token(i));
    let cls = config_token(&tc, "bos_token").or_else(|| by_id(cfg.decoder.bos_token_id));
    let sep = config_token(&tc, "eos_token").or_else(|| by_id(cfg.decoder.eos_token_id));
    let pad = config_token(&tc, "pad_token").or_else(|| by_id(cfg.pad_token_id));
    Specials { pad, mask: None, unk: config_token(&tc, "unk_token"), cls, sep }
}

/// Whether the in-sentence form of a word carries its leading space: `" the"` tokenizes
/// differently from `"the"`, and `"a the"` ends in the tokens of `" the"`.
fn marks_leading_space(inner: &Tokenizer) -> bool {
    let ids = |t: &str| inner.encode(t, false).map(|e| e.get_ids().to_vec()).unwrap_or_default();
    let (spaced, bare, in_context) = (ids(" the"), ids("the"), ids("a the"));
    !spaced.is_empty() && spaced != bare && in_context.ends_with(&spaced)
}

impl TextTokenizer {
    /// Loads `tokenizer.json` if present, else builds one from `vocab.txt` (WordPiece) or
    /// `vocab.json` + `merges.txt` (byte-level BPE).
    pub fn from_dir(dir: &Path, family: Family, pad_from_config: Option<u32>) -> Result<Self> {
        Self::read(dir, family, pad_from_config, None)
    }

    /// The tokenizer of a checkpoint whose config has been read: decoders take their special
    /// tokens from its ids where `tokenizer_config.json` does not name them.
    pub fn for_model(dir: &Path, cfg: &ModelConfig) -> Result<Self> {
        Self::read(dir, cfg.family, cfg.pad_token_id, Some(cfg))
    }

    fn read(dir: &Path, family: Family, pad_from_config: Option<u32>, cfg: Option<&ModelConfig>) -> Result<Self> {
        let json = dir.join("tokenizer.json");
        if json.is_dir() {
            bail!("{}: is a directory, not a tokenizer file", json.display());
        }
        let classic = matches!(family, Family::Bert | Family::DistilBert | Family::Roberta | Family::Gpt2);
        let (mut inner, source) = if json.exists() {
            (read_tokenizer_json(&json)?, json)
        } else if classic {
            build_from_vocab(dir, family)?
        } else {
            bail!(
                "{}: no tokenizer.json; fairnc reads {} tokenizers from tokenizer.json only (transformers writes it with save_pretrained)",
                dir.display(),
                family.name()
            );
        };
        inner.with_truncation(None).map_err(|e| anyhow!("{}: cannot disable truncation ({e})", source.display()))?;
        inner.with_padding(None);
        let sp = match cfg {
            Some(cfg) if !classic => decoder_specials(dir, &inner, cfg),
            _ => specials(family),
        };
        register_specials(&mut inner, &sp, &source)?;
        let id = |tok: &Option<String>| tok.as_deref().and_then(|t| inner.token_to_id(t));
        let pad_id = match family {
            Family::Bert | Family::DistilBert | Family::Roberta => id(&sp.pad).or(pad_from_config),
            // A decoder without a padding token pads with EOS (or BOS): padded positions are never read.
            _ => pad_from_config.or_else(|| id(&sp.pad)).or_else(|| id(&sp.sep)).or_else(|| id(&sp.cls)),
        }
        .with_context(|| {
            format!("{}: no padding token {}", source.display(), sp.pad.as_deref().unwrap_or("(none named)"))
        })?;
        // A masked-LM vocabulary without its mask token still encodes text (SEAT, statistics);
        // the scorers that need the token say so.
        let mask = sp.mask.as_ref().and_then(|m| inner.token_to_id(m).map(|i| (m.clone(), i)));
        let bos_id = match family {
            Family::Gpt2 => inner.token_to_id("<|endoftext|>"),
            _ if classic => None,
            _ => id(&sp.cls).or_else(|| id(&sp.sep)),
        };
        let space_before_words = match family {
            Family::Gpt2 | Family::Roberta => true,
            Family::Bert | Family::DistilBert => false,
            _ => marks_leading_space(&inner),
        };
        let mut special_ids: BTreeSet<u32> =
            inner.get_added_tokens_decoder().into_iter().filter(|(_, t)| t.special).map(|(i, _)| i).collect();
        for tok in [&sp.pad, &sp.unk, &sp.cls, &sp.sep, &sp.mask] {
            if let Some(i) = id(tok) {
                special_ids.insert(i);
            }
        }
        let added_per_sequence = inner
            .get_post_processor()
            .map(|pp| tokenizers::tokenizer::PostProcessor::added_tokens(pp, false))
            .unwrap_or(0);
        Ok(TextTokenizer {
            inner,
            family,
            pad_id,
            mask,
            bos_id,
            space_before_words,
            special_ids,
            added_per_sequence,
            source,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(|e| anyhow!("cannot decode: {e}"))
    }

    /// Tokens of `text` without special tokens (word look-ups, StereoSet fillers).
    pub fn tokenize_plain(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow!("{}: cannot tokenize {text:?}: {e}", self.source.display()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Tokenizes one text with the family's special tokens, keeping at most `max_len` tokens
    /// in all (the content is cut, the special tokens kept).
    pub fn encode(&self, text: &str, max_len: usize) -> Result<Encoded> {
        let mut enc = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow!("{}: cannot tokenize {text:?}: {e}", self.source.display()))?;
        let room = max_len.saturating_sub(self.added_per_sequence);
        let truncated = enc.get_ids().len() > room;
        if truncated {
            enc.truncate(room, 0, tokenizers::TruncationDirection::Right);
        }
        let enc = self
            .inner
            .post_process(enc, None, true)
            .map_err(|e| anyhow!("{}: cannot add special tokens: {e}", self.source.display()))?;
        Ok(Encoded {
            ids: enc.get_ids().to_vec(),
            offsets: enc.get_offsets().to_vec(),
            word_ids: enc.get_word_ids().to_vec(),
            truncated,
        })
    }

    /// Tokenizes a sentence pair with the family's special tokens (BERT: `[CLS] a [SEP] b [SEP]`),
    /// cutting the longer side token by token until the pair fits `max_len` (transformers'
    /// `longest_first`). Returns the ids and the segment (token type) of each token.
    pub fn encode_pair(&self, a: &str, b: &str, max_len: usize) -> Result<(Vec<u32>, Vec<u32>)> {
        let plain = |t: &str| {
            self.inner.encode(t, false).map_err(|e| anyhow!("{}: cannot tokenize {t:?}: {e}", self.source.display()))
        };
        let (mut ea, mut eb) = (plain(a)?, plain(b)?);
        let added = self
            .inner
            .get_post_processor()
            .map(|pp| tokenizers::tokenizer::PostProcessor::added_tokens(pp, true))
            .unwrap_or(0);
        let room = max_len.saturating_sub(added);
        let (mut na, mut nb) = (ea.get_ids().len(), eb.get_ids().len());
        while na + nb > room {
            if na > nb { na -= 1 } else { nb -= 1 }
        }
        ea.truncate(na, 0, tokenizers::TruncationDirection::Right);
        eb.truncate(nb, 0, tokenizers::TruncationDirection::Right);
        let enc = self
            .inner
            .post_process(ea, Some(eb), true)
            .map_err(|e| anyhow!("{}: cannot add special tokens: {e}", self.source.display()))?;
        Ok((enc.get_ids().to_vec(), enc.get_type_ids().to_vec()))
    }

    /// [`Self::encode`] over many texts in parallel, in order.
    pub fn encode_all(&self, texts: &[&str], max_len: usize) -> Result<Vec<Encoded>> {
        texts.par_iter().map(|t| self.encode(t, max_len)).collect()
    }
}

/// Parses `tokenizer.json`, refusing first the files on which `tokenizers` would panic.
fn read_tokenizer_json(json: &Path) -> Result<Tokenizer> {
    let text = std::fs::read_to_string(json).with_context(|| format!("{}: cannot read", json.display()))?;
    // tokenizers panics (`expect("Helper")`) on a syntax error inside the "decoder"
    // section, so the syntax is checked first.
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow!("{}: not valid JSON ({e})", json.display()))?;
    check_templates(&value["post_processor"]).map_err(|e| anyhow!("{}: {e}", json.display()))?;
    text.parse().map_err(|e| anyhow!("{}: not a valid tokenizer ({e})", json.display()))
}

/// Makes the family's special tokens that the vocabulary holds special added tokens, so that
/// `[MASK]` written in a text is one token whatever files the vocabulary came from: a bare
/// `vocab.txt` WordPiece would otherwise split it into `[`, `mask`, `]`. Tokens a
/// `tokenizer.json` already declares keep its settings; ids never change (each is in the
/// vocabulary already).
fn register_specials(inner: &mut Tokenizer, sp: &Specials, source: &Path) -> Result<()> {
    let declared: BTreeSet<String> = inner.get_added_tokens_decoder().into_iter().map(|(_, t)| t.content).collect();
    let missing: Vec<tokenizers::AddedToken> = [&sp.pad, &sp.unk, &sp.cls, &sp.sep, &sp.mask]
        .into_iter()
        .flatten()
        .filter(|tok| inner.token_to_id(tok).is_some() && !declared.contains(*tok))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|tok| tokenizers::AddedToken::from(tok.to_string(), true))
        .collect();
    if !missing.is_empty() {
        inner
            .add_special_tokens(missing)
            .map_err(|e| anyhow!("{}: cannot register special tokens ({e})", source.display()))?;
    }
    Ok(())
}

/// tokenizers panics (a map lookup in `apply_template`) at the first encode when a
/// TemplateProcessing template names a special token its `special_tokens` map lacks.
fn check_templates(v: &serde_json::Value) -> std::result::Result<(), String> {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            if m.get("type").and_then(Value::as_str) == Some("TemplateProcessing") {
                let known = m.get("special_tokens").and_then(Value::as_object);
                for key in ["single", "pair"] {
                    for piece in m.get(key).and_then(Value::as_array).into_iter().flatten() {
                        if let Some(id) = piece.pointer("/SpecialToken/id").and_then(Value::as_str)
                            && !known.is_some_and(|k| k.contains_key(id))
                        {
                            return Err(format!(
                                "post_processor template uses special token {id:?}, which its special_tokens do not define"
                            ));
                        }
                    }
                }
            }
            m.values().try_for_each(check_templates)
        }
        Value::Array(a) => a.iter().try_for_each(check_templates),
        _ => Ok(()),
    }
}

/// A tokenizer built from the older vocabulary files, for checkpoints without `tokenizer.json`:
/// WordPiece from `vocab.txt` (BERT, DistilBERT), byte-level BPE from `vocab.json` +
/// `merges.txt` (RoBERTa, GPT-2). `tokenizer_config.json`, when present, sets the casing and
/// prefix-space flags.
fn build_from_vocab(dir: &Path, family: Family) -> Result<(Tokenizer, PathBuf)> {
    let config = read_json(&dir.join("tokenizer_config.json"));
    let flag = |key: &str, default: bool| {
        config.as_ref().and_then(|c| c.get(key)).and_then(|v| v.as_bool()).unwrap_or(default)
    };
    match family {
        Family::Bert | Family::DistilBert => wordpiece_from_vocab(dir, flag("do_lower_case", true)),
        Family::Roberta | Family::Gpt2 => bpe_from_vocab(dir, family, flag("add_prefix_space", false)),
        other => bail!("{}: {} has no slow-vocabulary tokenizer", dir.display(), other.name()),
    }
}

/// BERT's WordPiece pipeline over `vocab.txt`: normaliser, pre-tokenizer, `[CLS] … [SEP]`.
fn wordpiece_from_vocab(dir: &Path, lower: bool) -> Result<(Tokenizer, PathBuf)> {
    use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
    use tokenizers::models::wordpiece::WordPiece;
    use tokenizers::normalizers::bert::BertNormalizer;
    use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
    use tokenizers::processors::bert::BertProcessing;

    let vocab = dir.join("vocab.txt");
    if !vocab.exists() {
        bail!("{}: no tokenizer.json or vocab.txt", dir.display());
    }
    if vocab.is_dir() {
        bail!("{}: is a directory, not a tokenizer file", vocab.display());
    }
    let vs = vocab.to_string_lossy().to_string();
    let model = WordPiece::from_file(&vs)
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| anyhow!("{}: not a valid WordPiece vocabulary ({e})", vocab.display()))?;
    let mut t = Tokenizer::new(model);
    t.with_normalizer(Some(BertNormalizer::new(true, true, None, lower))).map_err(|e| anyhow!("{e}"))?;
    t.with_pre_tokenizer(Some(BertPreTokenizer));
    let id = |s: &str| t.token_to_id(s).with_context(|| format!("{}: no {s} token", vocab.display()));
    let (sep, cls) = (id("[SEP]")?, id("[CLS]")?);
    t.with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))));
    t.with_decoder(Some(WordPieceDecoder::default()));
    Ok((t, vocab))
}

/// The byte-level BPE pipeline over `vocab.json` + `merges.txt`, with RoBERTa's `<s> … </s>`
/// or GPT-2's bare byte-level post-processing.
fn bpe_from_vocab(dir: &Path, family: Family, prefix: bool) -> Result<(Tokenizer, PathBuf)> {
    use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::processors::roberta::RobertaProcessing;

    let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
    if !vocab.exists() || !merges.exists() {
        bail!("{}: no tokenizer.json, or vocab.json + merges.txt", dir.display());
    }
    for path in [&vocab, &merges] {
        if path.is_dir() {
            bail!("{}: is a directory, not a tokenizer file", path.display());
        }
    }
    check_bpe_vocab(&vocab)?;
    let model = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
        .build()
        .map_err(|e| anyhow!("{}: not a valid merges file for {} ({e})", merges.display(), vocab.display()))?;
    let mut t = Tokenizer::new(model);
    t.with_pre_tokenizer(Some(ByteLevel::new(prefix, true, true)));
    t.with_decoder(Some(ByteLevelDecoder::default()));
    if family == Family::Roberta {
        let id = |s: &str| t.token_to_id(s).with_context(|| format!("{}: no {s} token", vocab.display()));
        let (sep, cls) = (id("</s>")?, id("<s>")?);
        t.with_post_processor(Some(
            RobertaProcessing::new(("</s>".into(), sep), ("<s>".into(), cls))
                .trim_offsets(true)
                .add_prefix_space(prefix),
        ));
        let specials: Vec<tokenizers::AddedToken> = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
            .iter()
            .map(|s| tokenizers::AddedToken::from(s.to_string(), true))
            .collect();
        t.add_special_tokens(specials).map_err(|e| anyhow!("{e}"))?;
    } else {
        t.with_post_processor(Some(ByteLevel::new(prefix, true, true)));
        t.add_special_tokens([tokenizers::AddedToken::from("<|endoftext|>".to_string(), true)])
            .map_err(|e| anyhow!("{e}"))?;
    }
    Ok((t, vocab))
}

/// The BPE builder reads both files and does not say which one is broken: check vocab.json
/// first (an object of token → id), so that any later error is the merges file's.
fn check_bpe_vocab(vocab: &Path) -> Result<()> {
    let vocab_text = std::fs::read_to_string(vocab).with_context(|| format!("{}: cannot read", vocab.display()))?;
    let parsed: serde_json::Value = serde_json::from_str(&vocab_text)
        .map_err(|e| anyhow!("{}: not a valid BPE vocabulary ({e})", vocab.display()))?;
    if !parsed.as_object().is_some_and(|m| m.values().all(|v| v.as_u64().is_some_and(|id| id <= u32::MAX as u64))) {
        bail!("{}: not a valid BPE vocabulary (expected an object of token → id)", vocab.display());
    }
    Ok(())
}
