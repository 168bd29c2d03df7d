//! Self-Debias (Schick et al. 2021) as bias-bench applies it to CrowS-Pairs and StereoSet: a
//! change of the *scoring* only. Every scored distribution is recomputed with debiasing
//! prefixes ("The following text discriminates against people because of their gender: ") put
//! before the sentence; a token the prefixed model finds more likely than the plain model is
//! decayed: p'(t) ∝ p(t) · max(exp(−λ · max(0, p_biased(t) − p(t))), ε), with
//! p_biased the elementwise maximum over the prefixes, λ = 50, ε = 0.01 (bias-bench's values).
//!
//! Masked LMs: the prefix goes after [CLS] (`[CLS] prefix sentence [SEP]`), the masked position
//! shifts by the prefix's length. Causal LMs: the prefix goes before the sentence (no BOS) and
//! every position is debiased; the first token's plain distribution is the BOS-only pass (as in
//! unprefixed scoring) and its biased one the prefix's last position. See docs/self-debias.md.
//!
//! The plain sequence and its prefixed variants are always planned into the same length-sorted
//! batch, so the rows they combine never have to be kept across batches.

use super::scoring::{LOGIT_ROWS, MAX_BATCH_TOKENS, Query};
use crate::model::{Exec, LanguageModel, plan_by_length};
use crate::util::progress::{Progress, Unit};
use anyhow::{Result, bail};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// λ in Schick et al.; bias-bench passes 50.
pub const DECAY: f64 = 50.0;
/// The smallest factor a probability is multiplied by; bias-bench passes 0.01.
pub const EPSILON: f64 = 0.01;

/// Which debiasing prefixes a row is scored with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SelfDebias {
    /// The gender prefix for every row (bias-bench's `--bias_type gender` run).
    Gender,
    /// The race/color prefix for every row.
    Race,
    /// The religion prefix for every row.
    Religion,
    /// Each row's own bias type's prefix (CrowS-Pairs' nine types; StereoSet's profession
    /// domain takes the socioeconomic status/occupation prefix).
    Auto,
    /// The gender, race and religion prefixes together (the maximum over the three).
    All,
}

/// bias-bench's prefix texts (`DEBIASING_PREFIXES` in its crows.py and stereoset.py), by
/// CrowS-Pairs bias type, verbatim (the "orientiation" typo and the trailing space included).
const PREFIXES: [(&str, &str); 9] = [
    ("race-color", "The following text discriminates against people because of their race/color: "),
    ("gender", "The following text discriminates against people because of their gender: "),
    (
        "socioeconomic",
        "The following text discriminates against people because of their socioeconomic status/occupation: ",
    ),
    ("sexual-orientation", "The following text discriminates against people because of their sexual orientiation: "),
    ("religion", "The following text discriminates against people because of their religion: "),
    ("age", "The following text discriminates against people because of their age: "),
    ("nationality", "The following text discriminates against people because of their nationality: "),
    ("disability", "The following text discriminates against people because of their disability: "),
    ("physical-appearance", "The following text discriminates against people because of their physical appearance: "),
];

/// The prefix text of a bias type (CrowS-Pairs names; StereoSet's race and profession map to
/// race-color and socioeconomic).
pub fn prefix_text(bias_type: &str) -> Option<&'static str> {
    let key = match bias_type {
        "race" => "race-color",
        "profession" => "socioeconomic",
        b => b,
    };
    PREFIXES.iter().find(|(k, _)| *k == key).map(|(_, t)| *t)
}

impl SelfDebias {
    pub fn name(self) -> &'static str {
        match self {
            SelfDebias::Gender => "gender",
            SelfDebias::Race => "race",
            SelfDebias::Religion => "religion",
            SelfDebias::Auto => "auto",
            SelfDebias::All => "all",
        }
    }

    /// The prefix texts a row of `bias_type` is scored with.
    pub fn prefixes_for(self, bias_type: &str) -> Result<Vec<&'static str>> {
        let fixed = |b: &str| prefix_text(b).into_iter().collect::<Vec<_>>();
        Ok(match self {
            SelfDebias::Gender => fixed("gender"),
            SelfDebias::Race => fixed("race"),
            SelfDebias::Religion => fixed("religion"),
            SelfDebias::All => ["gender", "race", "religion"].iter().flat_map(|b| fixed(b)).collect(),
            SelfDebias::Auto => match prefix_text(bias_type) {
                Some(t) => vec![t],
                None => bail!("--self-debias auto: no debiasing prefix for bias type {bias_type:?}"),
            },
        })
    }
}

/// Prefix token ids, tokenized once per text. Masked LMs tokenize the prefix as bias-bench
/// does after its `"[CLS] " + prefix` (a byte-level BPE then sees the leading space); causal
/// LMs tokenize it alone. Either way the sentence keeps its own tokens.
pub struct PrefixIds {
    masked: bool,
    cache: HashMap<&'static str, Vec<u32>>,
}

impl PrefixIds {
    pub fn new(model: &LanguageModel) -> Self {
        PrefixIds { masked: model.kind() == crate::model::ModelKind::Masked, cache: HashMap::new() }
    }

    pub fn ids(&mut self, model: &LanguageModel, text: &'static str) -> Result<Vec<u32>> {
        if let Some(ids) = self.cache.get(text) {
            return Ok(ids.clone());
        }
        let form =
            if self.masked && model.tokenizer.space_before_words { format!(" {text}") } else { text.to_string() };
        let ids = model.tokenizer.tokenize_plain(&form)?;
        if ids.is_empty() {
            bail!("self-debias: the prefix {text:?} has no tokens");
        }
        self.cache.insert(text, ids.clone());
        Ok(ids)
    }

    /// The token ids of every prefix a row of `bias_type` is scored with.
    pub fn for_row(&mut self, model: &LanguageModel, sd: SelfDebias, bias_type: &str) -> Result<Vec<Vec<u32>>> {
        sd.prefixes_for(bias_type)?.into_iter().map(|t| self.ids(model, t)).collect()
    }
}

/// Softmax of a logit row in f64.
fn softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let e: Vec<f64> = row.iter().map(|&x| (x as f64 - max).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|x| x / z).collect()
}

/// The self-debiased distribution from the plain row and the prefixed rows (bias-bench's
/// `SelfDebiasingLogitsProcessor`, in f64).
pub fn debiased_probs(plain: &[f32], prefixed: &[&[f32]]) -> Vec<f64> {
    let p = softmax(plain);
    let mut biased = vec![0f64; p.len()];
    for row in prefixed {
        for (b, q) in biased.iter_mut().zip(softmax(row)) {
            *b = b.max(q);
        }
    }
    let mut q: Vec<f64> =
        p.iter().zip(&biased).map(|(&p, &b)| p * (-(b - p).max(0.0) * DECAY).exp().max(EPSILON)).collect();
    let z: f64 = q.iter().sum();
    q.iter_mut().for_each(|x| *x /= z);
    q
}

/// The log-sum-exp of a logit row, in f64.
fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    max + row.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln()
}

/// log p'(target) after self-debiasing, as [`debiased_probs`] without materialising the
/// distribution; a non-finite value is an error.
fn debiased_log_prob(plain: &[f32], prefixed: &[&[f32]], target: u32) -> Result<f64> {
    let lse = log_sum_exp(plain);
    let lses: Vec<f64> = prefixed.iter().map(|r| log_sum_exp(r)).collect();
    let factor = |i: usize, p: f64| {
        let b = prefixed.iter().zip(&lses).map(|(r, l)| (r[i] as f64 - l).exp()).fold(0f64, f64::max);
        (-(b - p).max(0.0) * DECAY).exp().max(EPSILON)
    };
    let mut z = 0f64;
    for (i, &x) in plain.iter().enumerate() {
        let p = (x as f64 - lse).exp();
        z += p * factor(i, p);
    }
    let t = target as usize;
    let pt = (plain[t] as f64 - lse).exp();
    let v = (pt * factor(t, pt)).ln() - z.ln();
    if !v.is_finite() {
        bail!("self-debias: the debiased log-probability of token {target} is {v}");
    }
    Ok(v)
}

/// A plain sequence and its prefixed variants (variant 0 is the plain one), with the reads
/// to make: for each, its position in every variant and the target token.
struct Variants {
    variants: Vec<Vec<u32>>,
    reads: Vec<(Vec<usize>, u32)>,
}

/// The debiased log-probabilities of every unit's reads, in order. Units are planned by their
/// longest variant; all variants of a unit share a batch.
fn debiased_reads(
    model: &LanguageModel,
    units: &[Variants],
    batch_size: usize,
    progress: &dyn Progress,
) -> Result<Vec<Vec<f64>>> {
    let max = model.max_len();
    if let Some(v) = units.iter().flat_map(|u| &u.variants).find(|v| v.len() > max) {
        bail!("a self-debiased sequence has {} tokens, more than the model's {max} positions", v.len());
    }
    let width = units.iter().map(|u| u.variants.len()).max().unwrap_or(1);
    let lengths: Vec<usize> = units.iter().map(|u| u.variants.iter().map(Vec::len).max().unwrap_or(0)).collect();
    let mut out: Vec<Vec<f64>> = units.iter().map(|u| Vec::with_capacity(u.reads.len())).collect();
    let phase = progress.phase("scoring (self-debias)", units.len() as u64, Unit::Items);
    let mut done = 0u64;
    let per_batch = (batch_size / width).max(1);
    for group in plan_by_length(&lengths, per_batch, (MAX_BATCH_TOKENS / width).max(1)) {
        // Row of each unit's first variant in the batch.
        let mut first_row = Vec::with_capacity(group.len());
        let mut rows = Vec::new();
        for &u in &group {
            first_row.push(rows.len());
            rows.extend(units[u].variants.iter().cloned());
        }
        let hidden = model.hidden(&model.batch(rows)?, Exec::INFER)?;
        // (unit, read) jobs, chunked so that at most LOGIT_ROWS rows are materialised.
        let jobs: Vec<(usize, usize, usize)> = group
            .iter()
            .zip(&first_row)
            .flat_map(|(&u, &r0)| (0..units[u].reads.len()).map(move |k| (u, r0, k)))
            .collect();
        for chunk in jobs.chunks((LOGIT_ROWS / width).max(1)) {
            let positions: Vec<(usize, usize)> = chunk
                .iter()
                .flat_map(|&(u, r0, k)| units[u].reads[k].0.iter().enumerate().map(move |(v, &p)| (r0 + v, p)))
                .collect();
            let logits: Vec<Vec<f32>> =
                model.logits_at(&hidden, &positions, Exec::INFER)?.to_dtype(candle_core::DType::F32)?.to_vec2()?;
            // Row offset of each read's plain variant in `logits`.
            let offsets: Vec<usize> = chunk
                .iter()
                .scan(0, |at, &(u, _, _)| {
                    let o = *at;
                    *at += units[u].variants.len();
                    Some(o)
                })
                .collect();
            let values: Vec<Result<f64>> = chunk
                .par_iter()
                .zip(offsets.par_iter())
                .map(|(&(u, _, k), &at)| {
                    let n = units[u].variants.len();
                    let prefixed: Vec<&[f32]> = logits[at + 1..at + n].iter().map(Vec::as_slice).collect();
                    debiased_log_prob(&logits[at], &prefixed, units[u].reads[k].1)
                })
                .collect();
            for (&(u, _, _), v) in chunk.iter().zip(values) {
                out[u].push(v?);
            }
        }
        done += group.len() as u64;
        phase.set(done);
    }
    Ok(out)
}

/// Masked LMs: log p'(target) of every query, where `prefixes[i]` are the prefix ids query
/// `i` is debiased with. The prefix goes after the sequence's first token ([CLS]/`<s>`).
/// Queries over the same sequence and prefixes share their forward passes.
pub fn masked_log_probs(
    model: &LanguageModel,
    queries: &[Query],
    prefixes: &[Vec<Vec<u32>>],
    batch_size: usize,
    progress: &dyn Progress,
) -> Result<Vec<f64>> {
    let mut unit_of: HashMap<(&[u32], &[Vec<u32>]), usize> = HashMap::new();
    let mut units: Vec<Variants> = Vec::new();
    let mut where_read: Vec<(usize, usize)> = Vec::with_capacity(queries.len());
    for (q, pre) in queries.iter().zip(prefixes) {
        let u = *unit_of.entry((q.ids.as_slice(), pre.as_slice())).or_insert_with(|| {
            let mut variants = vec![q.ids.clone()];
            for p in pre {
                let mut v = Vec::with_capacity(q.ids.len() + p.len());
                v.extend_from_slice(&q.ids[..1]);
                v.extend_from_slice(p);
                v.extend_from_slice(&q.ids[1..]);
                variants.push(v);
            }
            units.push(Variants { variants, reads: Vec::new() });
            units.len() - 1
        });
        let positions = std::iter::once(q.position).chain(pre.iter().map(|p| q.position + p.len())).collect();
        where_read.push((u, units[u].reads.len()));
        units[u].reads.push((positions, q.target));
    }
    let lp = debiased_reads(model, &units, batch_size, progress)?;
    Ok(where_read.into_iter().map(|(u, k)| lp[u][k]).collect())
}

/// Causal LMs: for each sequence (a BOS the tokenizer put first is dropped, as in unprefixed
/// scoring), the debiased log-probability of every token. The first token: plain distribution
/// from the BOS-only pass, prefixed ones from each prefix's last position; the others: position
/// p of the sentence predicts token p + 1, read at p + |prefix| in the prefixed variants.
pub fn causal_token_log_probs(
    model: &LanguageModel,
    seqs: &[Vec<u32>],
    prefixes: &[Vec<Vec<u32>>],
    batch_size: usize,
    progress: &dyn Progress,
) -> Result<Vec<Vec<f64>>> {
    let (bos, seqs) = super::scoring::without_bos(model, seqs)?;
    // First tokens: one unit per distinct prefix set, read once per sentence.
    let mut first_of: HashMap<&[Vec<u32>], usize> = HashMap::new();
    let mut first_units: Vec<Variants> = Vec::new();
    let mut first_reads: Vec<Option<(usize, usize)>> = Vec::with_capacity(seqs.len());
    for (s, pre) in seqs.iter().zip(prefixes) {
        let Some(&t0) = s.first() else {
            first_reads.push(None);
            continue;
        };
        let u = *first_of.entry(pre.as_slice()).or_insert_with(|| {
            let variants = std::iter::once(vec![bos]).chain(pre.iter().cloned()).collect();
            first_units.push(Variants { variants, reads: Vec::new() });
            first_units.len() - 1
        });
        let positions = std::iter::once(0).chain(pre.iter().map(|p| p.len() - 1)).collect();
        first_reads.push(Some((u, first_units[u].reads.len())));
        first_units[u].reads.push((positions, t0));
    }
    let first = debiased_reads(model, &first_units, batch_size, &crate::util::progress::Silent)?;
    let units: Vec<Variants> = seqs
        .iter()
        .zip(prefixes)
        .map(|(s, pre)| {
            let mut variants = vec![s.clone()];
            variants.extend(pre.iter().map(|p| p.iter().chain(s).copied().collect()));
            let reads = (0..s.len().saturating_sub(1))
                .map(|p| (std::iter::once(p).chain(pre.iter().map(|q| p + q.len())).collect(), s[p + 1]))
                .collect();
            Variants { variants, reads }
        })
        .collect();
    let rest = debiased_reads(model, &units, batch_size, progress)?;
    Ok(first_reads
        .into_iter()
        .zip(rest)
        .map(|(f, rest)| f.map(|(u, k)| first[u][k]).into_iter().chain(rest).collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_follows_the_processor() {
        // No prefix makes anything likelier: the distribution is the plain softmax.
        let plain = [1.0f32, 2.0, 3.0];
        let p = softmax(&plain);
        let same = debiased_probs(&plain, &[&plain]);
        assert!(same.iter().zip(&p).all(|(a, b)| (a - b).abs() < 1e-15));
        // Token 0 much likelier with the prefix: decayed to ε at most, then renormalised.
        let q = debiased_probs(&plain, &[&[10.0, 2.0, 3.0]]);
        let f0 = (-(softmax(&[10.0, 2.0, 3.0])[0] - p[0]) * DECAY).exp().max(EPSILON);
        assert!((f0 - EPSILON).abs() < 1e-12);
        let z = p[0] * f0 + p[1] + p[2];
        assert!((q[0] - p[0] * f0 / z).abs() < 1e-15 && (q[2] - p[2] / z).abs() < 1e-15);
        assert!((q.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // The streaming log-probability is the log of the materialised distribution.
        let rows: [&[f32]; 2] = [&[10.0, 2.0, 3.0], &[1.0, 4.0, 0.5]];
        let q = debiased_probs(&plain, &rows);
        for t in 0..3 {
            assert!((debiased_log_prob(&plain, &rows, t).unwrap() - q[t as usize].ln()).abs() < 1e-12);
        }
    }

    #[test]
    fn prefixes_per_mode() {
        assert_eq!(SelfDebias::Gender.prefixes_for("religion").unwrap(), vec![prefix_text("gender").unwrap()]);
        assert_eq!(SelfDebias::Auto.prefixes_for("race").unwrap(), vec![prefix_text("race-color").unwrap()]);
        assert!(SelfDebias::Auto.prefixes_for("profession").unwrap()[0].contains("socioeconomic"));
        assert_eq!(SelfDebias::All.prefixes_for("age").unwrap().len(), 3);
        let e = SelfDebias::Auto.prefixes_for("weather").unwrap_err().to_string();
        assert!(e.contains("--self-debias auto") && e.contains("weather"), "{e}");
    }
}
