//! MABEL-style contrastive debiasing (METHOD §7): a sentence and its counterfactual (from CDA)
//! are a positive pair. The loss is
//!
//!   InfoNCE(z, z') + alignment(z, z') + 0.1 · MLM,
//!
//! where z are the mean-pooled last-layer states of the original sentences of a batch and z'
//! those of their counterfactuals; InfoNCE is the symmetric cross-entropy of the cosine
//! similarities divided by the temperature (0.05, as SimCSE and MABEL) with the partner as the
//! target and the other sentences of the batch as negatives; alignment is the mean squared
//! distance between the normalised pair representations (2 − 2·cos), which pulls each pair
//! together beyond what the ranking asks; MLM is the usual masked-LM loss (15%, 80/10/10) on
//! both sentences of each pair, in a second forward pass as MABEL does.

use super::masking::{MaskingConfig, mask_tokens};
use super::objective::{Objective, Step, tokenize};
use crate::model::{Exec, LanguageModel};
use crate::util::rng::SplitMix;
use anyhow::{Result, bail};
use candle_core::{D, Tensor};

pub const TEMPERATURE: f64 = 0.05;
pub const MLM_WEIGHT: f64 = 0.1;
pub const ALIGN_WEIGHT: f64 = 1.0;

pub struct Contrastive {
    /// Token ids of (original, counterfactual) pairs.
    pub pairs: Vec<(Vec<u32>, Vec<u32>)>,
}

impl Contrastive {
    pub fn new(model: &LanguageModel, pairs: &[(String, String)], max_len: usize) -> Result<Self> {
        let (a, b): (Vec<String>, Vec<String>) = pairs.iter().cloned().unzip();
        let a = tokenize(model, &a, max_len)?;
        let b = tokenize(model, &b, max_len)?;
        Ok(Contrastive { pairs: a.into_iter().zip(b).collect() })
    }
}

/// Mean of the hidden states `[B, T, D]` over each row's real tokens → `[B, D]`.
pub fn mean_pool(hidden: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
    let mask = attention_mask.unsqueeze(2)?;
    let sum = hidden.broadcast_mul(&mask)?.sum(1)?;
    Ok(sum.broadcast_div(&mask.sum(1)?)?)
}

fn normalize(z: &Tensor) -> Result<Tensor> {
    let norm = (z.sqr()?.sum_keepdim(D::Minus1)? + 1e-12)?.sqrt()?;
    Ok(z.broadcast_div(&norm)?)
}

/// Symmetric InfoNCE of paired rows and the alignment term, from pair representations `[N, D]`.
pub fn pair_losses(z: &Tensor, zc: &Tensor) -> Result<(Tensor, Tensor)> {
    let n = z.dim(0)?;
    let (u, v) = (normalize(z)?, normalize(zc)?);
    let sim = (u.matmul(&v.t()?)? / TEMPERATURE)?;
    let targets = Tensor::arange(0u32, n as u32, z.device())?;
    let forward = candle_nn::loss::cross_entropy(&sim, &targets)?;
    let backward = candle_nn::loss::cross_entropy(&sim.t()?.contiguous()?, &targets)?;
    let info_nce = ((forward + backward)? * 0.5)?;
    let align = (u - v)?.sqr()?.sum(1)?.mean_all()?;
    Ok((info_nce, align))
}

impl Objective for Contrastive {
    fn name(&self) -> &'static str {
        "contrastive"
    }

    fn len(&self) -> usize {
        self.pairs.len()
    }

    fn step(&self, model: &LanguageModel, examples: &[usize], rng: &mut SplitMix) -> Result<Step> {
        let Some((_, mask_id)) = model.tokenizer.mask else {
            bail!("contrastive (MABEL-style) training includes masked LM: it needs a mask token")
        };
        if examples.len() < 2 {
            bail!("contrastive training needs at least 2 pairs per batch (the other pairs are the negatives)");
        }
        // Originals first, then their counterfactuals in the same order.
        let rows: Vec<Vec<u32>> = examples
            .iter()
            .map(|&i| self.pairs[i].0.clone())
            .chain(examples.iter().map(|&i| self.pairs[i].1.clone()))
            .collect();
        let n = examples.len();
        let batch = model.batch(rows.clone())?;
        let hidden = model.hidden(&batch, Exec::TRAIN)?;
        let pooled = mean_pool(&hidden, &batch.attention_mask)?;
        let (info_nce, align) = pair_losses(&pooled.narrow(0, 0, n)?, &pooled.narrow(0, n, n)?)?;

        let cfg = MaskingConfig { probability: 0.15, mask_id, vocab_size: model.tokenizer.vocab_size() };
        let masked = mask_tokens(&rows, &model.tokenizer.special_ids, &cfg, rng);
        let mut loss = (&info_nce + (&align * ALIGN_WEIGHT)?)?;
        let mut terms = vec![
            ("info_nce".to_string(), info_nce.to_scalar::<f32>()? as f64),
            ("align".to_string(), align.to_scalar::<f32>()? as f64),
        ];
        let mut tokens = batch.num_tokens();
        if !masked.positions.is_empty() {
            let mlm_batch = model.batch(masked.inputs)?;
            let mlm_hidden = model.hidden(&mlm_batch, Exec::TRAIN)?;
            let logits = model.logits_at(&mlm_hidden, &masked.positions, Exec::TRAIN)?;
            let mlm = candle_nn::loss::cross_entropy(&logits, &Tensor::new(masked.targets.as_slice(), &model.device)?)?;
            terms.push(("mlm".to_string(), mlm.to_scalar::<f32>()? as f64));
            loss = (loss + (mlm * MLM_WEIGHT)?)?;
            tokens += mlm_batch.num_tokens();
        }
        Ok(Step { loss, terms, hidden, rows, tokens })
    }
}
