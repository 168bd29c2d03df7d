//! Batched language-model scoring: log-probabilities of tokens at masked positions (masked
//! LMs) or of every token given its prefix (causal LMs). Callers describe all their
//! variants at once; this plans length-sorted batches and maps results back.

use crate::model::{Exec, LanguageModel, plan_by_length};
use crate::util::progress::{Progress, Unit};
use anyhow::{Result, bail};
use candle_core::Tensor;
use std::collections::HashMap;

/// A sequence with one position to score: log p(`target` | `ids`) read at `position`
/// (where the caller has put the mask token).
#[derive(Debug, Clone)]
pub struct Query {
    pub ids: Vec<u32>,
    pub position: usize,
    pub target: u32,
}

/// Most padded tokens per forward pass.
pub(super) const MAX_BATCH_TOKENS: usize = 64 * 128;
/// Rows of logits materialised at once (rows × vocabulary floats).
pub(super) const LOGIT_ROWS: usize = 256;

/// `log softmax(logits)[target]` for each row, with the log-sum-exp in f64.
fn log_prob_rows(logits: &Tensor, targets: &[u32]) -> Result<Vec<f64>> {
    // Models run in bf16/f16 give logits of that type; the log-sum-exp is taken in f64 anyway.
    let rows: Vec<Vec<f32>> = logits.to_dtype(candle_core::DType::F32)?.to_vec2()?;
    Ok(rows
        .iter()
        .zip(targets)
        .map(|(row, &t)| {
            let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let lse = max + row.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
            row[t as usize] as f64 - lse
        })
        .collect())
}

/// The distinct token sequences of `queries`, and for each the queries that read it.
fn distinct_sequences(queries: &[Query]) -> (Vec<&[u32]>, Vec<Vec<usize>>) {
    let mut seq_of: HashMap<&[u32], usize> = HashMap::new();
    let mut seqs: Vec<&[u32]> = Vec::new();
    let mut readers: Vec<Vec<usize>> = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        let s = *seq_of.entry(q.ids.as_slice()).or_insert_with(|| {
            seqs.push(q.ids.as_slice());
            readers.push(Vec::new());
            seqs.len() - 1
        });
        readers[s].push(i);
    }
    (seqs, readers)
}

/// Log-probabilities of every query, batched by length. Queries over the same token
/// sequence share one forward pass (StereoSet's three fillers of a context usually produce the
/// same masked input and differ only in the token read). Reports a "scoring" phase over the
/// distinct sequences.
pub fn masked_log_probs(
    model: &LanguageModel,
    queries: &[Query],
    batch_size: usize,
    progress: &dyn Progress,
) -> Result<Vec<f64>> {
    let max = model.max_len();
    if let Some(q) = queries.iter().find(|q| q.ids.len() > max) {
        bail!("a scored sequence has {} tokens, more than the model's {max} positions", q.ids.len());
    }
    let (seqs, readers) = distinct_sequences(queries);
    let lengths: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
    let mut out = vec![0f64; queries.len()];
    let phase = progress.phase("scoring", seqs.len() as u64, Unit::Items);
    let mut done = 0u64;
    for group in plan_by_length(&lengths, batch_size.max(1), MAX_BATCH_TOKENS) {
        let batch = model.batch(group.iter().map(|&s| seqs[s].to_vec()).collect())?;
        let hidden = model.hidden(&batch, Exec::INFER)?;
        // (row in batch, query index) for every read of this batch's sequences.
        let reads: Vec<(usize, usize)> =
            group.iter().enumerate().flat_map(|(r, &s)| readers[s].iter().map(move |&q| (r, q))).collect();
        for chunk in reads.chunks(LOGIT_ROWS) {
            let positions: Vec<(usize, usize)> = chunk.iter().map(|&(r, q)| (r, queries[q].position)).collect();
            let targets: Vec<u32> = chunk.iter().map(|&(_, q)| queries[q].target).collect();
            let lp = log_prob_rows(&model.logits_at(&hidden, &positions, Exec::INFER)?, &targets)?;
            for (&(_, q), v) in chunk.iter().zip(lp) {
                out[q] = v;
            }
        }
        done += group.len() as u64;
        phase.set(done);
    }
    Ok(out)
}

/// A causal LM's BOS token and the sequences without a BOS the tokenizer put first: the first
/// scored token is read after a pass over the BOS alone, so the BOS is context, not a token.
pub(crate) fn without_bos(model: &LanguageModel, seqs: &[Vec<u32>]) -> Result<(u32, Vec<Vec<u32>>)> {
    let Some(bos) = model.tokenizer.bos_id else {
        bail!("the model has no BOS or EOS token to score a sentence's first token after")
    };
    Ok((bos, seqs.iter().map(|s| s.strip_prefix(&[bos][..]).unwrap_or(s).to_vec()).collect()))
}

/// For each sequence, the log-probability of every token: the first from a forward pass
/// over the BOS token alone, the others from one pass over the sequence without BOS
/// (bias-bench's GPT-2 scoring; not the same numbers as prepending BOS). A BOS the tokenizer
/// put first (Llama's `<s>`, OPT's `</s>`) is that context, not a scored token: it is dropped.
/// Reports a "scoring" phase over the sequences.
pub fn causal_token_log_probs(
    model: &LanguageModel,
    seqs: &[Vec<u32>],
    batch_size: usize,
    progress: &dyn Progress,
) -> Result<Vec<Vec<f64>>> {
    let (bos, seqs) = without_bos(model, seqs)?;
    let seqs = seqs.as_slice();
    let max = model.max_len();
    if let Some(s) = seqs.iter().find(|s| s.len() > max) {
        bail!("a scored sentence has {} tokens, more than the model's {max} positions", s.len());
    }
    let start = model.batch(vec![vec![bos]])?;
    let first = model.logits_at(&model.hidden(&start, Exec::INFER)?, &[(0, 0)], Exec::INFER)?;
    let mut out: Vec<Vec<f64>> = seqs.iter().map(|s| Vec::with_capacity(s.len())).collect();
    for (s, o) in seqs.iter().zip(out.iter_mut()) {
        if let Some(&t0) = s.first() {
            o.push(log_prob_rows(&first, &[t0])?[0]);
        }
    }
    // Position p predicts token p + 1.
    let reads: Vec<Vec<(usize, u32)>> =
        seqs.iter().map(|s| (0..s.len().saturating_sub(1)).map(|p| (p, s[p + 1])).collect()).collect();
    for (o, lp) in out.iter_mut().zip(read_log_probs(model, seqs, &reads, batch_size, progress)?) {
        o.extend(lp);
    }
    Ok(out)
}

/// For each input sequence, the log-probabilities of the `(position, target)` reads given for
/// it, in order: length-sorted right-padded batches, logits only at the read positions.
/// Reports a "scoring" phase over the sequences.
fn read_log_probs(
    model: &LanguageModel,
    inputs: &[Vec<u32>],
    reads: &[Vec<(usize, u32)>],
    batch_size: usize,
    progress: &dyn Progress,
) -> Result<Vec<Vec<f64>>> {
    let lengths: Vec<usize> = inputs.iter().map(Vec::len).collect();
    let mut out: Vec<Vec<f64>> = reads.iter().map(|r| Vec::with_capacity(r.len())).collect();
    let phase = progress.phase("scoring", inputs.len() as u64, Unit::Items);
    let mut done = 0u64;
    for group in plan_by_length(&lengths, batch_size.max(1), MAX_BATCH_TOKENS) {
        let batch = model.batch(group.iter().map(|&i| inputs[i].clone()).collect())?;
        let hidden = model.hidden(&batch, Exec::INFER)?;
        // (row in batch, sequence, read).
        let jobs: Vec<(usize, usize, usize)> =
            group.iter().enumerate().flat_map(|(r, &i)| (0..reads[i].len()).map(move |k| (r, i, k))).collect();
        for chunk in jobs.chunks(LOGIT_ROWS) {
            let positions: Vec<(usize, usize)> = chunk.iter().map(|&(r, i, k)| (r, reads[i][k].0)).collect();
            let targets: Vec<u32> = chunk.iter().map(|&(_, i, k)| reads[i][k].1).collect();
            let lp = log_prob_rows(&model.logits_at(&hidden, &positions, Exec::INFER)?, &targets)?;
            for (&(_, i, _), v) in chunk.iter().zip(lp) {
                out[i].push(v);
            }
        }
        done += group.len() as u64;
        phase.set(done);
    }
    Ok(out)
}

/// A causal-LM log-likelihood request: the summed log-probability of `continuation` given
/// `context` (lm-eval-harness's `loglikelihood`). The model reads `context + continuation`
/// without its last token; position `len(context) - 1 + j` predicts `continuation[j]`.
#[derive(Debug, Clone)]
pub struct Continuation {
    pub context: Vec<u32>,
    pub continuation: Vec<u32>,
}

impl Continuation {
    /// The tokens the model reads.
    fn input(&self) -> Vec<u32> {
        let mut ids = self.context.clone();
        ids.extend_from_slice(&self.continuation[..self.continuation.len() - 1]);
        ids
    }
}

/// For each request, the log-probabilities of its continuation's tokens, from length-sorted
/// batches (right-padded; logits only at the continuation's positions). Reports a "scoring"
/// phase over the requests.
pub fn causal_continuation_log_probs(
    model: &LanguageModel,
    requests: &[Continuation],
    batch_size: usize,
    progress: &dyn Progress,
) -> Result<Vec<Vec<f64>>> {
    let max = model.max_len();
    for r in requests {
        if r.context.is_empty() || r.continuation.is_empty() {
            bail!("a log-likelihood request needs a non-empty context and continuation");
        }
        let n = r.context.len() + r.continuation.len() - 1;
        if n > max {
            bail!("a scored sequence has {n} tokens, more than the model's {max} positions");
        }
    }
    let inputs: Vec<Vec<u32>> = requests.iter().map(Continuation::input).collect();
    // Position len(context) - 1 + j predicts continuation token j.
    let reads: Vec<Vec<(usize, u32)>> = requests
        .iter()
        .map(|r| r.continuation.iter().enumerate().map(|(j, &t)| (r.context.len() - 1 + j, t)).collect())
        .collect();
    read_log_probs(model, &inputs, &reads, batch_size, progress)
}

/// Python's `round(x, 3)`: the exact binary value rounded to 3 decimals (formatting does the
/// exact decimal rounding; a value is never exactly halfway in practice).
pub fn round3(x: f64) -> f64 {
    format!("{x:.3}").parse().unwrap_or(x)
}

#[cfg(test)]
mod tests {
    use super::round3;

    #[test]
    fn rounding_matches_python() {
        // round(-2.0005, 3) == -2.001, round(-1.23450000001, 3) == -1.235, round(0.0625, 3) == 0.062
        assert_eq!(round3(-2.0005), -2.001);
        assert_eq!(round3(-1.23450000001), -1.235);
        assert_eq!(round3(0.0625), 0.062);
        assert_eq!(round3(-3.0), -3.0);
    }
}
