//! StereoSet intersentence: given a context sentence, does the model prefer the stereotypical
//! next sentence over the anti-stereotypical one, and meaningful ones over the unrelated one?
//! (Nadeem et al. 2021; `moinnadeem/StereoSet`, docs/stereoset-intersentence.md.)
//!
//! - Masked LMs with BERT's next-sentence head: P(IsNext) of `[CLS] context [SEP] sentence
//!   [SEP]` (segments 0 / 1), as `eval_discriminative_models.py` with `BertNextSentence`.
//! - Causal LMs: the mean log-probability of the sentence's tokens given the context, the two
//!   joined as `eval_generative_models.py` joins them (a period added to a context that ends
//!   without `.`, `!` or `?`, then one space). The mean orders sentences as the
//!   geometric-mean probability does.
//! - Masked LMs without a next-sentence head cannot be scored (the caller skips them).
//!
//! SS / LMS / ICAT as for the intrasentence part (`stereoset::tally`).

use super::scoring::{Continuation, causal_continuation_log_probs};
use super::stereoset::{StereoSetResult, tally};
use crate::data::stereoset::Cluster;
use crate::model::{LanguageModel, ModelKind, plan_by_length};
use crate::util::progress::{Progress, Unit};
use anyhow::{Result, bail};

/// Most padded tokens per forward pass.
const MAX_BATCH_TOKENS: usize = 64 * 128;

/// The context as StereoSet's generative evaluation joins it to a sentence.
pub fn causal_context(context: &str) -> String {
    if context.ends_with(['.', '!', '?']) { context.to_string() } else { format!("{context}.") }
}

/// P(IsNext) of every (context, sentence) pair, batched by length; None for a pair longer than
/// the position table.
fn nsp_scores(
    model: &LanguageModel,
    clusters: &[Cluster],
    batch_size: usize,
    progress: &dyn Progress,
) -> Result<Vec<Vec<Option<f64>>>> {
    let max = model.max_len();
    let mut rows: Vec<(Vec<u32>, Vec<u32>)> = Vec::new();
    let mut owner: Vec<(usize, usize)> = Vec::new();
    let mut out: Vec<Vec<Option<f64>>> = clusters.iter().map(|c| vec![None; c.sentences.len()]).collect();
    for (c, cl) in clusters.iter().enumerate() {
        for (s, sent) in cl.sentences.iter().enumerate() {
            // One token of room past the table: a pair that needs it is too long, not cut.
            let (ids, types) = model.tokenizer.encode_pair(&cl.context, &sent.sentence, max + 1)?;
            if ids.len() <= max {
                rows.push((ids, types));
                owner.push((c, s));
            }
        }
    }
    let lengths: Vec<usize> = rows.iter().map(|r| r.0.len()).collect();
    let phase = progress.phase("scoring", rows.len() as u64, Unit::Items);
    let mut done = 0u64;
    for group in plan_by_length(&lengths, batch_size.max(1), MAX_BATCH_TOKENS) {
        let ids: Vec<Vec<u32>> = group.iter().map(|&i| rows[i].0.clone()).collect();
        let types: Vec<Vec<u32>> = group.iter().map(|&i| rows[i].1.clone()).collect();
        let batch = model.pair_batch(ids, &types)?;
        let Some(logits) = model.next_sentence_logits(&batch) else {
            bail!("{}: no next-sentence head (cls.seq_relationship) to score StereoSet intersentence", model.name);
        };
        let logits: Vec<Vec<f32>> = logits?.to_vec2()?;
        for (&i, l) in group.iter().zip(&logits) {
            // softmax(l)[0] in f64.
            let p = 1.0 / (1.0 + (l[1] as f64 - l[0] as f64).exp());
            if !p.is_finite() {
                bail!("{}: next-sentence probability is not finite", model.name);
            }
            let (c, s) = owner[i];
            out[c][s] = Some(p);
        }
        done += group.len() as u64;
        phase.set(done);
    }
    Ok(out)
}

/// Mean log-probability of each sentence's tokens after its context; None for a text longer
/// than the position table.
fn causal_scores(
    model: &LanguageModel,
    clusters: &[Cluster],
    batch_size: usize,
    progress: &dyn Progress,
) -> Result<Vec<Vec<Option<f64>>>> {
    let max = model.max_len();
    let mut requests = Vec::new();
    let mut owner = Vec::new();
    let mut out: Vec<Vec<Option<f64>>> = clusters.iter().map(|c| vec![None; c.sentences.len()]).collect();
    for (c, cl) in clusters.iter().enumerate() {
        let context = causal_context(&cl.context);
        let ctx_len = model.encode_quiet(&[context.as_str()], max)?[0].ids.len();
        let fulls: Vec<String> = cl.sentences.iter().map(|s| format!("{context} {}", s.sentence)).collect();
        let refs: Vec<&str> = fulls.iter().map(String::as_str).collect();
        for (s, e) in model.encode_quiet(&refs, max)?.into_iter().enumerate() {
            // StereoSet cuts the joined tokens at the length of the context's own tokens.
            if e.truncated || ctx_len == 0 || ctx_len >= e.ids.len() {
                continue;
            }
            requests.push(Continuation { context: e.ids[..ctx_len].to_vec(), continuation: e.ids[ctx_len..].to_vec() });
            owner.push((c, s));
        }
    }
    let lp = causal_continuation_log_probs(model, &requests, batch_size, progress)?;
    for (&(c, s), v) in owner.iter().zip(&lp) {
        out[c][s] = Some(v.iter().sum::<f64>() / v.len() as f64);
    }
    Ok(out)
}

/// Scores every cluster's three candidate sentences and summarises per domain and overall; a
/// cluster with a sentence that could not be scored (too long) is skipped. Errors for a masked
/// LM without a next-sentence head ([`LanguageModel::has_next_sentence_head`]).
pub fn score(
    model: &LanguageModel,
    clusters: &[Cluster],
    batch_size: usize,
    progress: &dyn Progress,
) -> Result<StereoSetResult> {
    let scores = match model.kind() {
        ModelKind::Masked if !model.has_next_sentence_head() => {
            bail!("{}: a masked LM without a next-sentence head cannot score StereoSet intersentence", model.name)
        }
        ModelKind::Masked => nsp_scores(model, clusters, batch_size, progress)?,
        ModelKind::Causal => causal_scores(model, clusters, batch_size, progress)?,
    };
    if let Some(v) = scores.iter().flatten().flatten().find(|v| !v.is_finite()) {
        bail!("StereoSet intersentence: a sentence score is not finite ({v})");
    }
    tally(clusters, &scores)
}

#[cfg(test)]
mod tests {
    use super::causal_context;

    #[test]
    fn a_context_gets_a_period_unless_it_ends_a_sentence() {
        assert_eq!(causal_context("He is a chef"), "He is a chef.");
        assert_eq!(causal_context("Is he a chef?"), "Is he a chef?");
        assert_eq!(causal_context("Wow!"), "Wow!");
    }
}
