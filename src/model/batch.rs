//! Padding tokenized texts into rectangular batches, and planning batches by length.

use anyhow::Result;
use candle_core::{Device, Tensor};

/// A right-padded batch of token ids.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[B, T]` u32.
    pub input_ids: Tensor,
    /// `[B, T]` f32, 1 for real tokens and 0 for padding.
    pub attention_mask: Tensor,
    /// `[B, T]` u32 segment of each token (sentence pairs); None: every token is segment 0.
    pub token_types: Option<Tensor>,
    /// The unpadded ids of each row.
    pub ids: Vec<Vec<u32>>,
    pub seq_len: usize,
}

impl Batch {
    pub fn new(rows: Vec<Vec<u32>>, pad_id: u32, device: &Device) -> Result<Self> {
        let b = rows.len();
        let t = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(b * t);
        let mut mask = Vec::with_capacity(b * t);
        for row in &rows {
            ids.extend_from_slice(row);
            ids.extend(std::iter::repeat_n(pad_id, t - row.len()));
            mask.extend(std::iter::repeat_n(1f32, row.len()));
            mask.extend(std::iter::repeat_n(0f32, t - row.len()));
        }
        Ok(Batch {
            input_ids: Tensor::from_vec(ids, (b, t), device)?,
            attention_mask: Tensor::from_vec(mask, (b, t), device)?,
            token_types: None,
            ids: rows,
            seq_len: t,
        })
    }

    /// A batch of sentence pairs: `types` gives each token's segment (padding is segment 0).
    pub fn with_types(rows: Vec<Vec<u32>>, types: &[Vec<u32>], pad_id: u32, device: &Device) -> Result<Self> {
        let mut batch = Batch::new(rows, pad_id, device)?;
        let t = batch.seq_len;
        let mut flat = Vec::with_capacity(types.len() * t);
        for row in types {
            flat.extend_from_slice(row);
            flat.extend(std::iter::repeat_n(0u32, t - row.len()));
        }
        batch.token_types = Some(Tensor::from_vec(flat, (types.len(), t), device)?);
        Ok(batch)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn num_tokens(&self) -> usize {
        self.ids.iter().map(Vec::len).sum()
    }
}

/// Groups item indices into batches of similar length: sorted by length (longest first, so
/// an out-of-memory shows at once), at most `max_items` rows and `max_tokens` padded tokens.
pub fn plan_by_length(lengths: &[usize], max_items: usize, max_tokens: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(lengths[i]), i));
    let mut out = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let mut cur_max = 0;
    for i in order {
        let len = lengths[i].max(1);
        let new_max = cur_max.max(len);
        if !cur.is_empty() && (cur.len() >= max_items || new_max * (cur.len() + 1) > max_tokens) {
            out.push(std::mem::take(&mut cur));
            cur_max = 0;
        }
        cur_max = cur_max.max(len);
        cur.push(i);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_covers_every_item_once_and_respects_limits() {
        let lengths = [5, 1, 9, 3, 3, 7, 2, 8];
        let plan = plan_by_length(&lengths, 3, 20);
        let mut seen: Vec<usize> = plan.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        for batch in &plan {
            let max = batch.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(batch.len() <= 3);
            assert!(batch.len() == 1 || max * batch.len() <= 20);
        }
    }
}
