//! Training objectives: each turns a micro-batch of examples into a loss and the hidden
//! states the NC3 regularizer observes.

use super::masking::{MaskingConfig, mask_tokens};
use crate::model::{Exec, LanguageModel};
use crate::util::rng::SplitMix;
use anyhow::{Result, bail};
use candle_core::Tensor;

/// What one micro-batch produced.
pub struct Step {
    pub loss: Tensor,
    /// Named loss terms before weighting (for the log); the loss is their weighted sum.
    pub terms: Vec<(String, f64)>,
    /// Last-layer hidden states `[B, T, D]` and the token rows they came from.
    pub hidden: Tensor,
    pub rows: Vec<Vec<u32>>,
    pub tokens: usize,
}

pub trait Objective {
    fn name(&self) -> &'static str;
    /// Number of examples in one pass over the data.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn step(&self, model: &LanguageModel, examples: &[usize], rng: &mut SplitMix) -> Result<Step>;
    /// Parameters of the objective's own (a task head), trained and checkpointed with the model's.
    fn extra_vars(&self) -> Vec<(String, candle_core::Var)> {
        Vec::new()
    }
}

/// Masked-LM training on tokenized texts (15%, 80/10/10).
pub struct MaskedLm {
    pub texts: Vec<Vec<u32>>,
}

/// The shared tail of every objective: run `inputs` in training mode and take the mean
/// cross-entropy of `targets` at `positions`; `rows` are the unmasked ids the NC3 term labels.
fn predict(
    term: &str,
    model: &LanguageModel,
    inputs: Vec<Vec<u32>>,
    positions: &[(usize, usize)],
    targets: &[u32],
    rows: Vec<Vec<u32>>,
) -> Result<Step> {
    let batch = model.batch(inputs)?;
    let hidden = model.hidden(&batch, Exec::TRAIN)?;
    let logits = model.logits_at(&hidden, positions, Exec::TRAIN)?;
    let loss = candle_nn::loss::cross_entropy(&logits, &Tensor::new(targets, &model.device)?)?;
    let value = loss.to_scalar::<f32>()? as f64;
    Ok(Step { loss, terms: vec![(term.into(), value)], hidden, tokens: batch.num_tokens(), rows })
}

/// Token ids of each text, with special tokens, cut to `max_len`.
pub(crate) fn tokenize(model: &LanguageModel, texts: &[String], max_len: usize) -> Result<Vec<Vec<u32>>> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    Ok(model.encode(&refs, max_len, crate::model::Overflow::Truncate)?.into_iter().map(|e| e.ids).collect())
}

impl MaskedLm {
    pub fn new(model: &LanguageModel, texts: &[String], max_len: usize) -> Result<Self> {
        Ok(MaskedLm { texts: tokenize(model, texts, max_len)? })
    }
}

impl Objective for MaskedLm {
    fn name(&self) -> &'static str {
        "mlm"
    }

    fn len(&self) -> usize {
        self.texts.len()
    }

    fn step(&self, model: &LanguageModel, examples: &[usize], rng: &mut SplitMix) -> Result<Step> {
        let Some((_, mask_id)) = model.tokenizer.mask else { bail!("masked-LM training needs a mask token") };
        let rows: Vec<Vec<u32>> = examples.iter().map(|&i| self.texts[i].clone()).collect();
        let cfg = MaskingConfig { probability: 0.15, mask_id, vocab_size: model.tokenizer.vocab_size() };
        let mut masked = mask_tokens(&rows, &model.tokenizer.special_ids, &cfg, rng);
        if masked.positions.is_empty() {
            // Always predict something: the first non-special token of the first row.
            if let Some(p) = rows[0].iter().position(|t| !model.tokenizer.special_ids.contains(t)) {
                masked.positions.push((0, p));
                masked.targets.push(rows[0][p]);
                masked.inputs[0][p] = mask_id;
            }
        }
        predict("mlm", model, masked.inputs, &masked.positions, &masked.targets, rows)
    }
}

/// Causal-LM training: every token predicts the next.
pub struct CausalLm {
    pub texts: Vec<Vec<u32>>,
}

impl CausalLm {
    pub fn new(model: &LanguageModel, texts: &[String], max_len: usize) -> Result<Self> {
        // A one-token text has nothing to predict.
        Ok(CausalLm { texts: tokenize(model, texts, max_len)?.into_iter().filter(|ids| ids.len() >= 2).collect() })
    }
}

impl Objective for CausalLm {
    fn name(&self) -> &'static str {
        "clm"
    }

    fn len(&self) -> usize {
        self.texts.len()
    }

    fn step(&self, model: &LanguageModel, examples: &[usize], _rng: &mut SplitMix) -> Result<Step> {
        let rows: Vec<Vec<u32>> = examples.iter().map(|&i| self.texts[i].clone()).collect();
        let positions: Vec<(usize, usize)> =
            rows.iter().enumerate().flat_map(|(r, ids)| (0..ids.len() - 1).map(move |p| (r, p))).collect();
        let targets: Vec<u32> = positions.iter().map(|&(r, p)| rows[r][p + 1]).collect();
        predict("clm", model, rows.clone(), &positions, &targets, rows)
    }
}

/// ASE-style training: each sentence's gendered pronoun is masked (all its subtokens) and
/// predicted; nothing else is masked.
pub struct MaskedPronouns {
    /// Token ids and the positions of the pronoun's tokens.
    pub rows: Vec<(Vec<u32>, Vec<usize>)>,
}

impl MaskedPronouns {
    pub fn new(
        model: &LanguageModel,
        sentences: &[crate::data::winobias::PronounSentence],
        max_len: usize,
    ) -> Result<Self> {
        let refs: Vec<&str> = sentences.iter().map(|s| s.text.as_str()).collect();
        let enc = model.encode(&refs, max_len, crate::model::Overflow::Truncate)?;
        let rows = enc
            .into_iter()
            .zip(sentences)
            .filter_map(|(e, s)| {
                let (a, b) = s.pronoun;
                // Tokens whose byte span lies inside the pronoun (special tokens have (0, 0)).
                let pos: Vec<usize> = e
                    .offsets
                    .iter()
                    .enumerate()
                    .filter(|&(i, &(x, y))| y > x && x >= a && y <= b && e.word_ids[i].is_some())
                    .map(|(i, _)| i)
                    .collect();
                (!pos.is_empty()).then_some((e.ids, pos))
            })
            .collect();
        Ok(MaskedPronouns { rows })
    }
}

impl Objective for MaskedPronouns {
    fn name(&self) -> &'static str {
        "ase"
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn step(&self, model: &LanguageModel, examples: &[usize], _rng: &mut SplitMix) -> Result<Step> {
        let Some((_, mask_id)) = model.tokenizer.mask else { bail!("ASE-style training needs a mask token") };
        let mut inputs = Vec::with_capacity(examples.len());
        let mut positions = Vec::new();
        let mut targets = Vec::new();
        let mut rows = Vec::with_capacity(examples.len());
        for (r, &i) in examples.iter().enumerate() {
            let (ids, pos) = &self.rows[i];
            let mut masked = ids.clone();
            for &p in pos {
                positions.push((r, p));
                targets.push(ids[p]);
                masked[p] = mask_id;
            }
            inputs.push(masked);
            rows.push(ids.clone());
        }
        predict("ase", model, inputs, &positions, &targets, rows)
    }
}
