//! The last-layer hidden states of a list of texts, padded into one `[N, T, D]` tensor with its
//! attention mask and token ids: what `fairnc hidden` writes for comparison with other tools.

use super::{Exec, LanguageModel, Overflow, plan_by_length};
use crate::util::progress::{Progress, Unit};
use anyhow::Result;
use candle_core::{DType, Tensor};

pub struct HiddenStates {
    /// `[N, T, D]`, zero past each text's length.
    pub hidden: Tensor,
    /// `[N, T]` i64: 1 on a text's tokens, 0 on padding.
    pub attention_mask: Tensor,
    /// `[N, T]` i64: the token ids, the pad id on padding.
    pub input_ids: Tensor,
}

impl HiddenStates {
    /// The tensors by the names `fairnc hidden` writes.
    pub fn named(&self) -> Vec<(String, Tensor)> {
        vec![
            ("hidden".to_string(), self.hidden.clone()),
            ("attention_mask".to_string(), self.attention_mask.clone()),
            ("input_ids".to_string(), self.input_ids.clone()),
        ]
    }
}

/// Encodes `texts` (at most `max_len` tokens, `overflow` deciding longer ones) and runs them in
/// batches of about `batch_size`; with `head_transform`, each state is passed through the MLM
/// head transform (what the decoder reads) instead.
pub fn hidden_states(
    model: &LanguageModel,
    texts: &[&str],
    max_len: usize,
    overflow: Overflow,
    batch_size: usize,
    head_transform: bool,
    progress: &dyn Progress,
) -> Result<HiddenStates> {
    let enc = model.encode(texts, max_len, overflow)?;
    let (n, d) = (enc.len(), model.feature_width());
    let lengths: Vec<usize> = enc.iter().map(|e| e.ids.len()).collect();
    let t = lengths.iter().copied().max().unwrap_or(1);
    let mut hidden = vec![0f32; n * t * d];
    let phase = progress.phase("hidden states", n as u64, Unit::Items);
    let mut done = 0;
    for group in plan_by_length(&lengths, batch_size, 64 * 128) {
        let batch = model.batch(group.iter().map(|&i| enc[i].ids.clone()).collect())?;
        let mut h = model.hidden(&batch, Exec::INFER)?;
        if head_transform {
            let (b, t, d) = h.dims3()?;
            h = model.head_features(&h.reshape((b * t, d))?, Exec::INFER)?.reshape((b, t, d))?;
        }
        for (row, &i) in group.iter().enumerate() {
            let len = lengths[i];
            let v: Vec<f32> = h.get(row)?.narrow(0, 0, len)?.flatten_all()?.to_vec1()?;
            hidden[i * t * d..i * t * d + len * d].copy_from_slice(&v);
        }
        done += group.len();
        phase.set(done as u64);
    }
    let mut ids = vec![model.tokenizer.pad_id as i64; n * t];
    let mut mask = vec![0i64; n * t];
    for (i, e) in enc.iter().enumerate() {
        for (j, &id) in e.ids.iter().enumerate() {
            ids[i * t + j] = id as i64;
            mask[i * t + j] = 1;
        }
    }
    let dev = &model.device;
    Ok(HiddenStates {
        hidden: Tensor::from_vec(hidden, (n, t, d), dev)?,
        attention_mask: Tensor::from_vec(mask, (n, t), dev)?.to_dtype(DType::I64)?,
        input_ids: Tensor::from_vec(ids, (n, t), dev)?,
    })
}
