//! Turning a bare encoder into a usable masked LM: masked-LM training of the whole model on
//! general text from the bundle (GAP and BOLD Wikipedia text, BUG), then the held-out
//! masked-token accuracy that says whether the result is good enough to score benchmarks with.
//!
//! `minilm-mlm`, the default masked LM of experiments, is this recipe applied to `minilm` with
//! [`AdaptConfig::default`], built once and cached.

use super::objective::MaskedLm;
use super::optim::AdamWConfig;
use super::trainer::{TrainConfig, Trainer};
use crate::data::corpus::Corpus;
use crate::model::{Exec, LanguageModel};
use crate::util::progress::Progress;
use crate::util::rng::SplitMix;
use anyhow::{Result, bail};
use std::path::Path;

/// Every fifth text of the mixed corpus is held out for the accuracy measurement.
pub const HELDOUT_FRACTION: f64 = 0.2;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct AdaptConfig {
    pub steps: u64,
    pub batch_size: usize,
    pub max_len: usize,
    /// Learning rate of the encoder; the new LM head gets `head_lr_scale` times more.
    pub lr: f64,
    pub head_lr_scale: f64,
    pub warmup: u64,
    pub seed: u64,
    /// Held-out texts scored for the accuracy.
    pub eval_texts: usize,
    /// Pack consecutive training sentences into rows of `max_len` tokens (see [`pack`]);
    /// builds from before packing existed read as false.
    #[serde(default)]
    pub pack: bool,
    /// Where the model trains and its float type.
    #[serde(default)]
    pub device: crate::util::device::DeviceSpec,
    #[serde(default)]
    pub dtype: crate::util::device::Dtype,
}

impl Default for AdaptConfig {
    /// Sized for about 30 minutes on 2 cores (see the README for the measured accuracy).
    fn default() -> Self {
        AdaptConfig {
            steps: 1500,
            batch_size: 16,
            max_len: 64,
            lr: 3e-4,
            head_lr_scale: 20.0,
            warmup: 50,
            seed: 0,
            eval_texts: 2000,
            pack: true,
            device: Default::default(),
            dtype: Default::default(),
        }
    }
}

impl AdaptConfig {
    /// Refuses settings that would divide by zero or never reach the learning rate asked for.
    pub fn validate(&self) -> Result<()> {
        let at_least = |field: &str, value: u64, min: u64| -> Result<()> {
            if value < min {
                bail!("adapt config: {field} must be at least {min}");
            }
            Ok(())
        };
        at_least("steps", self.steps, 1)?;
        at_least("batch_size", self.batch_size as u64, 1)?;
        at_least("max_len", self.max_len as u64, 2)?;
        at_least("eval_texts", self.eval_texts as u64, 1)?;
        for (field, value) in [("lr", self.lr), ("head_lr_scale", self.head_lr_scale)] {
            if !(value.is_finite() && value > 0.0) {
                bail!("adapt config: {field} must be a finite number above 0, not {value}");
            }
        }
        if self.warmup > self.steps {
            bail!(
                "adapt config: warmup {} is more than steps {}: the learning rate would never reach lr",
                self.warmup,
                self.steps
            );
        }
        Ok(())
    }
}

/// The training and held-out texts: GAP, BOLD and BUG, each split by [`Corpus::is_heldout`].
pub fn general_text() -> Result<(Vec<String>, Vec<String>)> {
    let (mut train, mut heldout) = (Vec::new(), Vec::new());
    for name in ["gap", "bold", "bug"] {
        // GAP's passages are split into sentences: batches of similar short texts pad less.
        let texts: Vec<String> = Corpus::load(name)?.texts.iter().flat_map(|t| sentences(t)).collect();
        for (i, t) in texts.into_iter().enumerate() {
            if Corpus::is_heldout(i, HELDOUT_FRACTION) { heldout.push(t) } else { train.push(t) }
        }
    }
    // Interleave the sources in a fixed order so that any prefix of the held-out part mixes them.
    SplitMix::new(0xE7A1).shuffle(&mut heldout);
    Ok((train, heldout))
}

/// Splits a passage after `. `, `! ` and `? ` (good enough for Wikipedia prose; a sentence that
/// stays too long is cut by the tokenizer).
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = text.as_bytes();
    for i in 0..b.len().saturating_sub(1) {
        if matches!(b[i], b'.' | b'!' | b'?') && b[i + 1] == b' ' {
            out.push(text[start..=i].trim().to_string());
            start = i + 1;
        }
    }
    out.push(text[start..].trim().to_string());
    out.retain(|s| s.split_whitespace().count() >= 3);
    out
}

/// Packs consecutive tokenized sentences into rows of up to `max_len` tokens, as BERT's
/// pre-training did: `[CLS] a [SEP] b [SEP] …` (each later sentence without its leading special
/// token). Unpacked, a batch is padded to its longest sentence, and most batches hold one near
/// `max_len`; packed (about 1.5 sentences a row here), more of a step's compute goes to real
/// tokens. The order is kept: neighbours come from the same source, often the same passage.
fn pack(rows: Vec<Vec<u32>>, max_len: usize) -> Vec<Vec<u32>> {
    let mut out: Vec<Vec<u32>> = Vec::new();
    for row in rows {
        match out.last_mut() {
            Some(last) if row.len() > 1 && last.len() + row.len() - 1 <= max_len => last.extend_from_slice(&row[1..]),
            _ => out.push(row),
        }
    }
    out
}

/// Fraction of masked tokens (15% of the non-special tokens, all replaced by the mask token,
/// chosen by a fixed seed) that the model predicts exactly, over `texts`.
pub fn masked_accuracy(model: &LanguageModel, texts: &[String], max_len: usize) -> Result<(f64, usize)> {
    let Some((_, mask_id)) = model.tokenizer.mask else { bail!("masked-token accuracy needs a mask token") };
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let rows: Vec<Vec<u32>> = model.encode_quiet(&refs, max_len)?.into_iter().map(|e| e.ids).collect();
    let lengths: Vec<usize> = rows.iter().map(Vec::len).collect();
    let mut rng = SplitMix::new(0x4D41_534B);
    let (mut hits, mut total) = (0usize, 0usize);
    for group in crate::model::batch::plan_by_length(&lengths, 64, 64 * max_len) {
        let mut inputs = Vec::with_capacity(group.len());
        let mut positions = Vec::new();
        let mut targets = Vec::new();
        for (r, &i) in group.iter().enumerate() {
            let mut row = rows[i].clone();
            for (p, tok) in rows[i].iter().enumerate() {
                if !model.tokenizer.special_ids.contains(tok) && rng.uniform() < 0.15 {
                    positions.push((r, p));
                    targets.push(*tok);
                    row[p] = mask_id;
                }
            }
            inputs.push(row);
        }
        if positions.is_empty() {
            continue;
        }
        let batch = model.batch(inputs)?;
        let hidden = model.hidden(&batch, Exec::INFER)?;
        let predicted: Vec<u32> = model.logits_at(&hidden, &positions, Exec::INFER)?.argmax(1)?.to_vec1()?;
        hits += predicted.iter().zip(&targets).filter(|(a, b)| a == b).count();
        total += targets.len();
    }
    if total == 0 {
        bail!("no tokens to mask in the held-out texts");
    }
    Ok((hits as f64 / total as f64, total))
}

/// What a build measured, written beside the model as `adapt.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AdaptReport {
    pub base: String,
    pub config: AdaptConfig,
    pub train_texts: usize,
    /// Rows of up to `max_len` tokens the training texts were packed into.
    #[serde(default)]
    pub train_rows: usize,
    pub heldout_accuracy_before: f64,
    pub heldout_accuracy: f64,
    pub heldout_tokens: usize,
    pub final_loss: f64,
    pub seconds: f64,
}

/// Trains `base` (a checkpoint directory) into a masked LM in `out`: checkpoints and the log go
/// to `out/train/` (a killed build resumes there), the model to `out/model/`, the measurements
/// to `out/adapt.json`.
pub fn adapt(
    base_name: &str,
    base: &Path,
    cfg: &AdaptConfig,
    out: &Path,
    progress: &dyn Progress,
) -> Result<AdaptReport> {
    cfg.validate()?;
    let began = std::time::Instant::now();
    let model = crate::util::device::load(base, &crate::util::device::load_options(cfg.device, cfg.dtype, cfg.seed)?)?;
    let (train, heldout) = general_text()?;
    let heldout = &heldout[..cfg.eval_texts.min(heldout.len())];
    let (before, _) = masked_accuracy(&model, heldout, cfg.max_len)?;
    progress.message(&format!("{base_name}: held-out masked-token accuracy before training {:.1}%", before * 100.0));
    let mut objective = MaskedLm::new(&model, &train, cfg.max_len)?;
    if cfg.pack {
        objective.texts = pack(std::mem::take(&mut objective.texts), cfg.max_len);
    }
    let train_cfg = TrainConfig {
        steps: cfg.steps,
        batch_size: cfg.batch_size,
        adamw: AdamWConfig { lr: cfg.lr, ..AdamWConfig::default() },
        warmup: cfg.warmup,
        head_lr_scale: cfg.head_lr_scale,
        seed: cfg.seed,
        checkpoint_every: 50,
        ..TrainConfig::default()
    };
    let train_dir = out.join("train");
    let mut trainer = Trainer { model: &model, cfg: train_cfg, out: train_dir.clone(), nc3: None };
    trainer.run(&objective, progress)?;
    let (accuracy, tokens) = masked_accuracy(&model, heldout, cfg.max_len)?;
    let final_loss = final_loss(&super::log::read_log(&train_dir.join(super::log::FILE))?);
    model.save(&out.join("model"))?;
    let report = AdaptReport {
        base: base_name.to_string(),
        config: cfg.clone(),
        train_texts: train.len(),
        train_rows: objective.texts.len(),
        heldout_accuracy_before: before,
        heldout_accuracy: accuracy,
        heldout_tokens: tokens,
        final_loss,
        seconds: began.elapsed().as_secs_f64(),
    };
    crate::util::fs::write_atomic(&out.join("adapt.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
    Ok(report)
}

/// The mean loss of the last 20 steps: one step's loss is noisy.
fn final_loss(log: &[super::log::LogRecord]) -> f64 {
    let tail = &log[log.len().saturating_sub(20)..];
    tail.iter().map(|r| r.loss).sum::<f64>() / tail.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_fills_rows_in_order_with_one_leading_special_token() {
        let rows = vec![vec![101, 1, 2, 102], vec![101, 3, 102], vec![101, 4, 5, 6, 102], vec![101, 7, 102]];
        assert_eq!(pack(rows, 7), vec![vec![101, 1, 2, 102, 3, 102], vec![101, 4, 5, 6, 102, 7, 102]]);
        assert_eq!(pack(vec![vec![101, 1, 2, 3, 4, 5, 102]], 7), vec![vec![101, 1, 2, 3, 4, 5, 102]]);
    }

    #[test]
    fn sentences_split_after_end_punctuation() {
        // Pieces under three words are dropped.
        assert_eq!(
            sentences("He is a doctor. She is not here! Why? It is late."),
            vec!["He is a doctor.", "She is not here!", "It is late."]
        );
    }
}
