//! The masked-token predictions of a sentence, as transformers' fill-mask pipeline gives them:
//! for each mask, the `top_k` tokens by probability with the sentence they complete.

use super::{Exec, LanguageModel, Overflow};
use anyhow::{Result, bail};

/// One candidate for one mask.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    pub score: f32,
    pub token: String,
    /// The text with this token in the mask's place (the other masks kept).
    pub sequence: String,
}

/// The predictions at one mask of the text.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MaskPredictions {
    /// Token position of the mask in the encoded text.
    pub position: usize,
    pub predictions: Vec<Prediction>,
}

/// Predicts every mask of `text` (written `[MASK]` or `<mask>`, whatever the model's own mask
/// token is).
pub fn fill_mask(model: &LanguageModel, text: &str, top_k: usize) -> Result<Vec<MaskPredictions>> {
    let Some((mask_tok, mask_id)) = model.tokenizer.mask.clone() else {
        bail!("{}: a {} model has no mask token; fill-mask needs a masked LM", model.name, model.family().name());
    };
    let text = text.replace("[MASK]", &mask_tok).replace("<mask>", &mask_tok);
    let enc = model.encode(&[text.as_str()], model.max_len(), Overflow::Error)?.remove(0);
    let positions: Vec<(usize, usize)> =
        enc.ids.iter().enumerate().filter(|(_, id)| **id == mask_id).map(|(i, _)| (0, i)).collect();
    if positions.is_empty() {
        bail!("no {mask_tok} in the text");
    }
    let batch = model.batch(vec![enc.ids.clone()])?;
    let hidden = model.hidden(&batch, Exec::INFER)?;
    let probs = candle_nn::ops::softmax_last_dim(&model.logits_at(&hidden, &positions, Exec::INFER)?)?;
    let mut out = Vec::new();
    for (k, &(_, pos)) in positions.iter().enumerate() {
        let row: Vec<f32> = probs.get(k)?.to_vec1()?;
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        let mut predictions = Vec::new();
        for &id in order.iter().take(top_k) {
            let mut ids = enc.ids.clone();
            ids[pos] = id as u32;
            // Special tokens are dropped from the sequence, except the prediction itself.
            let kept: Vec<u32> =
                ids.iter().copied().filter(|i| !model.tokenizer.special_ids.contains(i) || *i == id as u32).collect();
            predictions.push(Prediction {
                score: row[id],
                token: model.tokenizer.id_to_token(id as u32).unwrap_or_default(),
                sequence: model.tokenizer.decode(&kept)?.trim().to_string(),
            });
        }
        out.push(MaskPredictions { position: pos, predictions });
    }
    Ok(out)
}
