//! Sequence classification and regression (GLUE, METHOD §8): a new head on the first token
//! for masked-LM families (dense + tanh + dropout + linear, as transformers' RoBERTa
//! classification head) and on the last real token for GPT-2 (one linear layer, as
//! `GPT2ForSequenceClassification`), trained with the shared loop; cross-entropy for classes,
//! mean squared error for scores.

use super::objective::{Objective, Step};
use crate::model::{Exec, LanguageModel, layers};
use crate::util::rng::SplitMix;
use anyhow::{Result, bail};
use candle_core::{DType, Device, Tensor, Var};

/// One input: token ids (with special tokens; a pair joined as the tokenizer does) and its target.
#[derive(Debug, Clone)]
pub struct Item {
    pub ids: Vec<u32>,
    /// Segment of each token (all 0 for single sentences).
    pub types: Vec<u32>,
    pub class: Option<usize>,
    pub score: Option<f32>,
}

pub struct ClassifierHead {
    /// `[D, D]` and `[D]`; absent for GPT-2.
    dense: Option<(Var, Var)>,
    out_w: Var,
    out_b: Option<Var>,
    dropout: f32,
    last_token: bool,
}

fn normal(shape: (usize, usize), rng: &mut SplitMix, device: &Device) -> Result<Var> {
    let v: Vec<f32> = (0..shape.0 * shape.1).map(|_| (rng.normal() * 0.02) as f32).collect();
    Ok(Var::from_tensor(&Tensor::from_vec(v, shape, device)?)?)
}

impl ClassifierHead {
    /// A new head with `outputs` outputs (1 for regression), weights N(0, 0.02), zero biases.
    pub fn new(model: &LanguageModel, outputs: usize, seed: u64) -> Result<Self> {
        let d = model.feature_width();
        let dev = &model.device;
        let mut rng = SplitMix::new(seed ^ 0xC1A5);
        // Decoders pool their last token through one projection, as GPT2ForSequenceClassification.
        let gpt2 = model.kind() == crate::model::ModelKind::Causal;
        let dense = if gpt2 { None } else { Some((normal((d, d), &mut rng, dev)?, Var::zeros(d, DType::F32, dev)?)) };
        let out_w = normal((outputs, d), &mut rng, dev)?;
        let out_b = if gpt2 { None } else { Some(Var::zeros(outputs, DType::F32, dev)?) };
        Ok(ClassifierHead { dense, out_w, out_b, dropout: model.config.hidden_dropout, last_token: gpt2 })
    }

    pub fn vars(&self) -> Vec<(String, Var)> {
        let mut v = Vec::new();
        if let Some((w, b)) = &self.dense {
            v.push(("classifier.dense.weight".to_string(), w.clone()));
            v.push(("classifier.dense.bias".to_string(), b.clone()));
        }
        v.push(("classifier.out_proj.weight".to_string(), self.out_w.clone()));
        if let Some(b) = &self.out_b {
            v.push(("classifier.out_proj.bias".to_string(), b.clone()));
        }
        v
    }

    /// Outputs `[B, outputs]` for a batch of hidden states `[B, T, D]` of rows with `lengths`.
    pub fn forward(&self, model: &LanguageModel, hidden: &Tensor, lengths: &[usize], exec: Exec) -> Result<Tensor> {
        let (b, t, d) = hidden.dims3()?;
        let idx: Vec<u32> = lengths
            .iter()
            .enumerate()
            .map(|(r, &n)| (r * t + if self.last_token { n.max(1) - 1 } else { 0 }) as u32)
            .collect();
        let pooled = hidden.reshape((b * t, d))?.index_select(&Tensor::from_vec(idx, b, hidden.device())?, 0)?;
        let dropout = model.dropout_rng();
        let mut x = dropout.apply(&pooled, self.dropout, exec)?;
        if let Some((w, bias)) = &self.dense {
            x = layers::linear(&x, w.as_tensor(), bias.as_tensor(), exec)?.tanh()?;
            x = dropout.apply(&x, self.dropout, exec)?;
        }
        let y = x.matmul(&self.out_w.as_tensor().t()?)?;
        Ok(match &self.out_b {
            Some(bias) => y.broadcast_add(bias.as_tensor())?,
            None => y,
        })
    }
}

/// The GLUE training objective over tokenized items.
pub struct Classification {
    pub items: Vec<Item>,
    pub head: ClassifierHead,
}

impl Classification {
    /// Loss of a batch of items and the head's outputs.
    fn loss(&self, outputs: &Tensor, items: &[&Item], device: &Device) -> Result<Tensor> {
        if items[0].score.is_some() {
            let gold: Vec<f32> = items.iter().map(|it| it.score.unwrap_or(f32::NAN)).collect();
            let gold = Tensor::from_vec(gold, items.len(), device)?;
            Ok((outputs.squeeze(1)? - gold)?.sqr()?.mean_all()?)
        } else {
            let gold: Vec<u32> = items.iter().map(|it| it.class.unwrap_or(0) as u32).collect();
            Ok(candle_nn::loss::cross_entropy(outputs, &Tensor::from_vec(gold, items.len(), device)?)?)
        }
    }
}

impl Objective for Classification {
    fn name(&self) -> &'static str {
        "classify"
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn extra_vars(&self) -> Vec<(String, Var)> {
        self.head.vars()
    }

    fn step(&self, model: &LanguageModel, examples: &[usize], _rng: &mut SplitMix) -> Result<Step> {
        let items: Vec<&Item> = examples.iter().map(|&i| &self.items[i]).collect();
        let rows: Vec<Vec<u32>> = items.iter().map(|it| it.ids.clone()).collect();
        let types: Vec<Vec<u32>> = items.iter().map(|it| it.types.clone()).collect();
        let lengths: Vec<usize> = rows.iter().map(Vec::len).collect();
        let batch = model.pair_batch(rows.clone(), &types)?;
        let hidden = model.hidden(&batch, Exec::TRAIN)?;
        let outputs = self.head.forward(model, &hidden, &lengths, Exec::TRAIN)?;
        let loss = self.loss(&outputs, &items, &model.device)?;
        let value = loss.to_scalar::<f32>()? as f64;
        Ok(Step { loss, terms: vec![("task".into(), value)], hidden, tokens: batch.num_tokens(), rows })
    }
}

/// Tokenizes GLUE examples (pairs joined with the family's separators), cut to `max_len`.
pub fn items(model: &LanguageModel, examples: &[crate::data::glue::Example], max_len: usize) -> Result<Vec<Item>> {
    use crate::data::glue::Label;
    use rayon::prelude::*;
    let max_len = max_len.min(model.max_len());
    examples
        .par_iter()
        .map(|ex| {
            let (ids, types) = match &ex.text_b {
                Some(b) => model.tokenizer.encode_pair(&ex.text_a, b, max_len)?,
                None => {
                    let ids = model.tokenizer.encode(&ex.text_a, max_len)?.ids;
                    let n = ids.len();
                    (ids, vec![0; n])
                }
            };
            let (class, score) = match ex.label {
                Label::Class(c) => (Some(c), None),
                Label::Score(v) => (None, Some(v)),
            };
            Ok(Item { ids, types, class, score })
        })
        .collect()
}

/// Predictions of the head on items: the class (argmax) or the score.
pub fn predict(model: &LanguageModel, head: &ClassifierHead, items: &[Item]) -> Result<Vec<f64>> {
    if items.is_empty() {
        bail!("nothing to predict");
    }
    let lengths: Vec<usize> = items.iter().map(|it| it.ids.len()).collect();
    let mut out = vec![0f64; items.len()];
    for group in crate::model::batch::plan_by_length(&lengths, 64, 64 * 128) {
        let rows: Vec<Vec<u32>> = group.iter().map(|&i| items[i].ids.clone()).collect();
        let types: Vec<Vec<u32>> = group.iter().map(|&i| items[i].types.clone()).collect();
        let lens: Vec<usize> = rows.iter().map(Vec::len).collect();
        let batch = model.pair_batch(rows, &types)?;
        let hidden = model.hidden(&batch, Exec::INFER)?;
        let y = head.forward(model, &hidden, &lens, Exec::INFER)?;
        let values: Vec<f64> = if y.dim(1)? == 1 {
            y.squeeze(1)?.to_dtype(DType::F64)?.to_vec1()?
        } else {
            y.argmax(1)?.to_vec1::<u32>()?.into_iter().map(f64::from).collect()
        };
        for (&i, v) in group.iter().zip(values) {
            out[i] = v;
        }
    }
    Ok(out)
}
