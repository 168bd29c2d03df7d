//! SEAT (May et al.): effect size and permutation p-value of the association between two
//! target sets and two attribute sets of sentence encodings (METHOD §6).

use crate::data::seat::SeatTest;
use crate::model::{Exec, LanguageModel, Overflow, plan_by_length};
use crate::util::progress::{Progress, Unit};
use crate::util::rng::SplitMix;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Largest number of equal splits enumerated exactly; beyond it, this many random splits.
pub const PERMUTATIONS: u64 = 100_000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SeatScore {
    pub effect_size: f64,
    pub p_value: f64,
    /// Whether the p-value enumerated every split (else 100,000 seeded random splits).
    pub exact: bool,
    /// |X|, |Y|, |A|, |B| after removing duplicate sentences.
    pub sizes: [usize; 4],
}

/// The mean over rows, and its L2 norm.
fn mean_row(rows: &[Vec<f32>]) -> (Vec<f64>, f64) {
    let d = rows[0].len();
    let mut mean = vec![0f64; d];
    for row in rows {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += x as f64;
        }
    }
    let n = rows.len() as f64;
    mean.iter_mut().for_each(|m| *m /= n);
    let norm = mean.iter().map(|x| x * x).sum::<f64>().sqrt();
    (mean, norm)
}

/// Mean-pooled (over every position, special tokens included), L2-normalised last-layer
/// encodings of each distinct sentence. `origin(i)` says where sentence i comes from (test and
/// set), for the error when it tokenizes to nothing or its encoding is not finite. Reports an
/// "encoding" phase over the sentences.
pub fn encode(
    model: &LanguageModel,
    sentences: &[&str],
    batch_size: usize,
    origin: &dyn Fn(usize) -> String,
    progress: &dyn Progress,
) -> Result<HashMap<String, Vec<f64>>> {
    let enc = model.encode(sentences, model.max_len(), Overflow::Truncate)?;
    let lengths: Vec<usize> = enc.iter().map(|e| e.ids.len()).collect();
    if let Some(i) = lengths.iter().position(|&n| n == 0) {
        bail!("{}: sentence {:?} tokenizes to nothing (no token to mean-pool)", origin(i), sentences[i]);
    }
    let mut out = HashMap::with_capacity(sentences.len());
    let phase = progress.phase("encoding", sentences.len() as u64, Unit::Items);
    for group in plan_by_length(&lengths, batch_size.max(1), 64 * 128) {
        let batch = model.batch(group.iter().map(|&i| enc[i].ids.clone()).collect())?;
        let h = model.hidden(&batch, Exec::INFER)?;
        for (r, &i) in group.iter().enumerate() {
            let rows: Vec<Vec<f32>> = h.get(r)?.narrow(0, 0, lengths[i])?.to_vec2()?;
            let (mean, norm) = mean_row(&rows);
            // A zero or non-finite norm would turn every cosine of the test into NaN.
            if !(norm.is_finite() && norm > 0.0) {
                bail!(
                    "{}: sentence {:?}: the model's mean-pooled hidden state has norm {norm} (non-finite or zero hidden states)",
                    origin(i),
                    sentences[i]
                );
            }
            out.insert(sentences[i].to_string(), mean.into_iter().map(|x| x / norm).collect());
        }
        phase.set(out.len() as u64);
    }
    Ok(out)
}

fn dedup(xs: &[String]) -> Vec<&str> {
    let mut seen = std::collections::HashSet::new();
    xs.iter().map(String::as_str).filter(|x| seen.insert(*x)).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn binomial(n: u64, k: u64) -> f64 {
    (0..k).fold(1f64, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// Calls `f` with every k-subset of 0..n, in lexicographic order.
fn combinations(n: usize, k: usize, mut f: impl FnMut(&[usize])) {
    let mut idx: Vec<usize> = (0..k).collect();
    loop {
        f(&idx);
        let Some(i) = (0..k).rev().find(|&i| idx[i] != i + n - k) else { return };
        idx[i] += 1;
        for j in i + 1..k {
            idx[j] = idx[j - 1] + 1;
        }
    }
}

/// Effect size and one-sided p-value from s(w) of the X and Y words.
pub fn effect_and_p(sx: &[f64], sy: &[f64], seed: u64) -> (f64, f64, bool) {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let all: Vec<f64> = sx.iter().chain(sy).copied().collect();
    let m = mean(&all);
    let sd = (all.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (all.len() - 1) as f64).sqrt();
    let effect = (mean(sx) - mean(sy)) / sd;
    // Test statistic Σ_X s (the total is fixed, so this orders splits like Σ_X − Σ_Y).
    let observed: f64 = sx.iter().sum();
    let (n, k) = (all.len(), sx.len());
    if binomial(n as u64, k as u64) <= PERMUTATIONS as f64 {
        let (mut hits, mut total) = (0u64, 0u64);
        combinations(n, k, |c| {
            let s: f64 = c.iter().map(|&i| all[i]).sum();
            hits += (s >= observed) as u64;
            total += 1;
        });
        (effect, hits as f64 / total as f64, true)
    } else {
        // As sent-bias: the observed split counts once, then PERMUTATIONS − 1 random splits.
        let mut rng = SplitMix::new(seed);
        let mut order: Vec<usize> = (0..n).collect();
        let mut hits = 1u64;
        for _ in 1..PERMUTATIONS {
            rng.shuffle(&mut order);
            let s: f64 = order[..k].iter().map(|&i| all[i]).sum();
            hits += (s >= observed) as u64;
        }
        (effect, hits as f64 / PERMUTATIONS as f64, false)
    }
}

/// Refuses a test whose association is undefined before anything is encoded: two target (or
/// two attribute) sets holding the same sentences make every s(w) difference vanish (d = 0/0).
pub fn check(test: &SeatTest) -> Result<()> {
    fn set(c: &crate::data::seat::Category) -> std::collections::BTreeSet<&str> {
        c.examples.iter().map(String::as_str).collect()
    }
    for ((k1, c1), (k2, c2)) in
        [(("targ1", &test.targ1), ("targ2", &test.targ2)), (("attr1", &test.attr1), ("attr2", &test.attr2))]
    {
        if set(c1) == set(c2) {
            bail!(
                "SEAT test {}: {k1} ({}) and {k2} ({}) hold the same sentences; the test is undefined",
                test.name,
                c1.category,
                c2.category
            );
        }
    }
    if dedup(&test.targ1.examples).len() + dedup(&test.targ2.examples).len() < 3 {
        bail!("SEAT test {}: too few target sentences", test.name);
    }
    Ok(())
}

pub fn run_test(test: &SeatTest, enc: &HashMap<String, Vec<f64>>, seed: u64) -> Result<SeatScore> {
    check(test)?;
    let (x, y, a, b) = (
        dedup(&test.targ1.examples),
        dedup(&test.targ2.examples),
        dedup(&test.attr1.examples),
        dedup(&test.attr2.examples),
    );
    let get = |s: &str| {
        enc.get(s)
            .map(Vec::as_slice)
            .ok_or_else(|| anyhow::anyhow!("SEAT test {}: sentence {s:?} was not encoded", test.name))
    };
    let s = |w: &str| -> Result<f64> {
        let w = get(w)?;
        let ma = a.iter().map(|v| get(v).map(|e| dot(w, e))).sum::<Result<f64>>()? / a.len() as f64;
        let mb = b.iter().map(|v| get(v).map(|e| dot(w, e))).sum::<Result<f64>>()? / b.len() as f64;
        Ok(ma - mb)
    };
    let sx: Vec<f64> = x.iter().map(|w| s(w)).collect::<Result<_>>()?;
    let sy: Vec<f64> = y.iter().map(|w| s(w)).collect::<Result<_>>()?;
    if let Some(v) = sx.iter().chain(&sy).find(|v| !v.is_finite()) {
        bail!("SEAT test {}: an association s(w) is {v} (non-finite encodings)", test.name);
    }
    let (effect_size, p_value, exact) = effect_and_p(&sx, &sy, seed);
    // Equal s(w) for every target sentence: the standard deviation is 0 and d is undefined.
    if !effect_size.is_finite() || !p_value.is_finite() {
        bail!(
            "SEAT test {}: effect size {effect_size}, p {p_value}: undefined (every target sentence has the same association s(w), std 0)",
            test.name
        );
    }
    Ok(SeatScore { effect_size, p_value, exact, sizes: [x.len(), y.len(), a.len(), b.len()] })
}

/// Scores every test, encoding all their sentences in one batched pass; `seed` seeds the
/// random splits of tests too large to enumerate.
pub fn score(
    model: &LanguageModel,
    tests: &[SeatTest],
    batch_size: usize,
    seed: u64,
    progress: &dyn Progress,
) -> Result<Vec<(String, SeatScore)>> {
    for t in tests {
        check(t)?;
    }
    let mut sentences: Vec<&str> = Vec::new();
    // Where each distinct sentence first occurs: (test, set key, category).
    let mut origins: Vec<(&str, &str, &str)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for t in tests {
        for (key, c) in [("targ1", &t.targ1), ("targ2", &t.targ2), ("attr1", &t.attr1), ("attr2", &t.attr2)] {
            for e in &c.examples {
                if seen.insert(e.as_str()) {
                    sentences.push(e);
                    origins.push((&t.name, key, &c.category));
                }
            }
        }
    }
    let origin = |i: usize| {
        let (t, k, c) = origins[i];
        format!("SEAT test {t}, set {k} ({c})")
    };
    let enc = encode(model, &sentences, batch_size, &origin, progress)?;
    tests.iter().map(|t| Ok((t.name.clone(), run_test(t, &enc, seed)?))).collect()
}

/// The bias type a report files a test under ("other" for a test of no known type).
pub fn bias_type_of(name: &str) -> &str {
    crate::data::seat::bias_type(name).unwrap_or("other")
}

/// The average absolute effect size of the tests of each bias type (METHOD §6).
pub fn avg_abs_effect(scores: &[(String, SeatScore)]) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for (name, s) in scores {
        let e = sums.entry(bias_type_of(name).to_string()).or_default();
        e.0 += s.effect_size.abs();
        e.1 += 1;
    }
    sums.into_iter().map(|(k, (s, n))| (k, s / n as f64)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_enumerate_every_subset_once() {
        let mut seen = Vec::new();
        combinations(5, 2, |c| seen.push(c.to_vec()));
        assert_eq!(seen.len(), 10);
        assert_eq!(seen[0], vec![0, 1]);
        assert_eq!(seen[9], vec![3, 4]);
    }

    #[test]
    fn exact_p_value_by_hand() {
        // X = {3, 2}, Y = {1, 0}: only the observed split reaches Σ = 5 of C(4,2) = 6.
        let (d, p, exact) = effect_and_p(&[3.0, 2.0], &[1.0, 0.0], 0);
        assert!(exact);
        assert!((p - 1.0 / 6.0).abs() < 1e-15);
        let sd = (5.0f64 / 3.0).sqrt();
        assert!((d - 2.0 / sd).abs() < 1e-12);
    }
}
