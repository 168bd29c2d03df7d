//! Batched reads of unmasked or masked sequences *with* the attention each position received
//! (AUL/AULA, mlm-bias's CRR/ΔP and their attention-weighted forms). Callers describe every
//! sequence and the `(position, token)` reads they need at once; this plans length-sorted
//! batches, runs [`LanguageModel::hidden_with_attention`] and projects to the vocabulary only
//! the rows read, a chunk at a time.

use crate::model::{LanguageModel, plan_by_length};
use crate::util::progress::{Progress, Unit};
use anyhow::{Result, bail};
use candle_core::{DType, Tensor};

/// Most padded tokens per forward pass (the explicit attention probabilities of a batch are
/// `B·H·T²` floats per layer).
const MAX_BATCH_TOKENS: usize = 32 * 128;
/// Rows of logits materialised at once (rows × vocabulary floats).
const LOGIT_ROWS: usize = 256;

/// What a read found at one position: the token's log-probability, the top token's, and the
/// token's rank among the vocabulary (1 = most likely; tokens with an equal logit rank level).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenRead {
    pub log_prob: f64,
    pub top_log_prob: f64,
    pub rank: usize,
}

/// One sequence's reads, in the order asked, and the attention each of its positions received
/// (mean over layers, heads and real query positions; one value per token).
#[derive(Debug, Clone)]
pub struct SequenceReads {
    pub received: Vec<f64>,
    pub reads: Vec<TokenRead>,
}

/// Log-softmax statistics of a logits row at `target`, the log-sum-exp in f64.
fn token_read(row: &[f32], target: u32) -> TokenRead {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let lse = max as f64 + row.iter().map(|&x| (x as f64 - max as f64).exp()).sum::<f64>().ln();
    let x = row[target as usize];
    TokenRead {
        log_prob: x as f64 - lse,
        top_log_prob: max as f64 - lse,
        rank: 1 + row.iter().filter(|&&y| y > x).count(),
    }
}

/// Reads every sequence: `reads[i]` are the `(position, token)` pairs of sequence `i`.
/// Reports a "scoring" phase over the sequences.
pub fn read_with_attention(
    model: &LanguageModel,
    seqs: &[Vec<u32>],
    reads: &[Vec<(usize, u32)>],
    batch_size: usize,
    progress: &dyn Progress,
) -> Result<Vec<SequenceReads>> {
    let max = model.max_len();
    let vocab = model.config.vocab_size;
    for (s, r) in seqs.iter().zip(reads) {
        if s.len() > max {
            bail!("a scored sequence has {} tokens, more than the model's {max} positions", s.len());
        }
        if let Some(&(p, t)) = r.iter().find(|&&(p, t)| p >= s.len() || t as usize >= vocab) {
            bail!("read of token {t} at position {p} outside a sequence of {} tokens or the vocabulary", s.len());
        }
    }
    let lengths: Vec<usize> = seqs.iter().map(Vec::len).collect();
    let mut out: Vec<SequenceReads> =
        reads.iter().map(|r| SequenceReads { received: Vec::new(), reads: Vec::with_capacity(r.len()) }).collect();
    let phase = progress.phase("scoring", seqs.len() as u64, Unit::Items);
    let mut done = 0u64;
    for group in plan_by_length(&lengths, batch_size.max(1), MAX_BATCH_TOKENS) {
        let batch = model.batch(group.iter().map(|&i| seqs[i].clone()).collect())?;
        let (hidden, received) = model.hidden_with_attention(&batch)?;
        let received: Vec<Vec<f32>> = received.to_dtype(DType::F32)?.to_vec2()?;
        for (r, &i) in group.iter().enumerate() {
            out[i].received = received[r][..seqs[i].len()].iter().map(|&a| a as f64).collect();
        }
        // (row in batch, sequence, read).
        let jobs: Vec<(usize, usize, usize)> =
            group.iter().enumerate().flat_map(|(r, &i)| (0..reads[i].len()).map(move |k| (r, i, k))).collect();
        for chunk in jobs.chunks(LOGIT_ROWS) {
            let positions: Vec<(usize, usize)> = chunk.iter().map(|&(r, i, k)| (r, reads[i][k].0)).collect();
            let logits: Tensor = model.logits_at(&hidden, &positions, crate::model::Exec::INFER)?;
            let rows: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
            for (&(_, i, k), row) in chunk.iter().zip(&rows) {
                let read = token_read(row, reads[i][k].1);
                if !(read.log_prob.is_finite() && read.top_log_prob.is_finite()) {
                    bail!("{}: a log-probability is not finite (logits overflow)", model.dir.display());
                }
                out[i].reads.push(read);
            }
        }
        done += group.len() as u64;
        phase.set(done);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::token_read;

    #[test]
    fn a_read_ranks_strictly_and_takes_the_top_token() {
        let row = [0.0f32, 2.0, 1.0, 2.0];
        let r = token_read(&row, 2);
        assert_eq!(r.rank, 3);
        let lse = (1f64 + 2f64.exp() * 2.0 + 1f64.exp()).ln();
        assert!((r.log_prob - (1.0 - lse)).abs() < 1e-12);
        assert!((r.top_log_prob - (2.0 - lse)).abs() < 1e-12);
        assert_eq!(token_read(&row, 1).rank, 1, "a tie with the top is rank 1");
    }
}
