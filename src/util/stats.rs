//! Small statistics in f64: correlations (Pearson, Spearman with average ranks for ties),
//! classification scores (accuracy, F1, Matthews), mean and standard deviation (the sample or
//! the population convention, named at each call: [`Spread`]), the same over a stream
//! ([`Running`]), Student-t intervals, exact permutation tests for few seeds (METHOD §12) and
//! percentile bootstrap confidence intervals. Undefined values (a constant vector, an empty class) are NaN, never a silent 0.

use crate::util::rng::SplitMix;

/// Which divisor a standard deviation uses. The convention is named at every call, because
/// both are in use: the sample one for experiment summaries and the NC3 alignment spread
/// (`duality_std`, as the paper's regularizer), the population one for the equinorm,
/// equiangular and log-kernel statistics (METHOD §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// Divisor n − 1 (Bessel's correction): needs two values.
    Sample,
    /// Divisor n: needs one value.
    Population,
}

impl Spread {
    /// The degrees of freedom the divisor leaves out.
    fn ddof(self) -> usize {
        match self {
            Spread::Sample => 1,
            Spread::Population => 0,
        }
    }
}

/// The mean, or None for no values.
pub fn checked_mean(x: &[f64]) -> Option<f64> {
    (!x.is_empty()).then(|| x.iter().sum::<f64>() / x.len() as f64)
}

/// The standard deviation under `spread`, or None with too few values (none for the
/// population std, fewer than two for the sample std).
pub fn checked_std(x: &[f64], spread: Spread) -> Option<f64> {
    if x.len() <= spread.ddof() {
        return None;
    }
    let m = checked_mean(x)?;
    Some((x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - spread.ddof()) as f64).sqrt())
}

/// The mean (NaN for no values).
pub fn mean(x: &[f64]) -> f64 {
    checked_mean(x).unwrap_or(f64::NAN)
}

/// Sample standard deviation, divisor n − 1 (NaN below two values).
pub fn std_sample(x: &[f64]) -> f64 {
    checked_std(x, Spread::Sample).unwrap_or(f64::NAN)
}

/// The sample standard deviation ([`std_sample`]), under its historical name.
pub fn std(x: &[f64]) -> f64 {
    std_sample(x)
}

/// Mean and standard deviation of a stream of values too long to keep (the pairs of a
/// 30k-class Gram matrix), in one pass: Welford's update.
#[derive(Debug, Clone, Default)]
pub struct Running {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Running {
    pub fn push(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    /// The mean so far, or None before the first value.
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then_some(self.mean)
    }

    /// The standard deviation so far under `spread`, or None with too few values.
    pub fn std(&self, spread: Spread) -> Option<f64> {
        let ddof = spread.ddof() as u64;
        (self.n > ddof).then(|| (self.m2 / (self.n - ddof) as f64).sqrt())
    }
}

pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "pearson: lengths differ");
    if x.len() < 2 {
        return f64::NAN;
    }
    // A constant vector has no correlation. Test constancy itself: when its mean is not exactly
    // representable, the centred sums are rounding noise rather than 0 and would give an r.
    let constant = |v: &[f64]| v.iter().all(|a| *a == v[0]);
    if constant(x) || constant(y) {
        return f64::NAN;
    }
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 { f64::NAN } else { sxy / (sxx * syy).sqrt() }
}

/// Ranks from 1, ties sharing their average rank (as scipy.stats.rankdata).
pub fn ranks(x: &[f64]) -> Vec<f64> {
    ranks_with_ties(x).0
}

/// [`ranks`] and the sizes of the tie groups, in ascending order of value (the tie
/// correction of rank tests needs them).
pub fn ranks_with_ties(x: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut groups = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            r[k] = avg;
        }
        groups.push(j - i + 1);
        i = j + 1;
    }
    (r, groups)
}

pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

pub fn accuracy(pred: &[usize], gold: &[usize]) -> f64 {
    if gold.is_empty() {
        return f64::NAN;
    }
    pred.iter().zip(gold).filter(|(p, g)| p == g).count() as f64 / gold.len() as f64
}

/// F1 of the positive class (label 1), as sklearn's binary `f1_score`.
pub fn f1(pred: &[usize], gold: &[usize]) -> f64 {
    let tp = pred.iter().zip(gold).filter(|&(&p, &g)| p == 1 && g == 1).count() as f64;
    let fp = pred.iter().zip(gold).filter(|&(&p, &g)| p == 1 && g != 1).count() as f64;
    let fneg = pred.iter().zip(gold).filter(|&(&p, &g)| p != 1 && g == 1).count() as f64;
    if tp == 0.0 { if fp + fneg == 0.0 { f64::NAN } else { 0.0 } } else { 2.0 * tp / (2.0 * tp + fp + fneg) }
}

/// Matthews correlation of binary predictions; 0 when a row or column of the confusion
/// matrix is empty (sklearn's convention for a constant predictor).
pub fn matthews(pred: &[usize], gold: &[usize]) -> f64 {
    let count = |p: usize, g: usize| pred.iter().zip(gold).filter(|&(&a, &b)| a == p && b == g).count() as f64;
    let (tp, tn, fp, fneg) = (count(1, 1), count(0, 0), count(1, 0), count(0, 1));
    let den = ((tp + fp) * (tp + fneg) * (tn + fp) * (tn + fneg)).sqrt();
    if den == 0.0 { 0.0 } else { (tp * tn - fp * fneg) / den }
}

/// Percentile bootstrap interval (`level`, e.g. 0.95) of `stat` over resamples of `n` items.
pub fn bootstrap_ci(n: usize, resamples: usize, level: f64, seed: u64, stat: impl Fn(&[usize]) -> f64) -> (f64, f64) {
    let mut rng = SplitMix::new(seed);
    let mut values: Vec<f64> = (0..resamples)
        .map(|_| {
            let idx: Vec<usize> = (0..n).map(|_| rng.below(n)).collect();
            stat(&idx)
        })
        .filter(|v| v.is_finite())
        .collect();
    percentile_interval(&mut values, level)
}

fn percentile_interval(values: &mut [f64], level: f64) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    let q = |p: f64| values[((p * (values.len() - 1) as f64).round() as usize).min(values.len() - 1)];
    (q((1.0 - level) / 2.0), q(1.0 - (1.0 - level) / 2.0))
}

/// The `p` quantile of Student's t with `df` degrees of freedom.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    // Written so that NaN (for which every comparison is false) is refused too.
    let valid = p > 0.0 && p < 1.0 && df > 0.0;
    if !valid {
        return f64::NAN;
    }
    if df > 1000.0 {
        // statrs's inverse loses accuracy for very large ν (1.83 instead of 1.96 at ν = 10⁷);
        // there the Cornish–Fisher expansion around the normal quantile is exact to ~1e-10.
        let z = statrs::distribution::Normal::standard().inverse_cdf(p);
        let (z3, z5) = (z.powi(3), z.powi(5));
        return z + (z3 + z) / (4.0 * df) + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * df * df);
    }
    StudentsT::new(0.0, 1.0, df).map(|t| t.inverse_cdf(p)).unwrap_or(f64::NAN)
}

/// Two-sided Student-t interval (`level`, e.g. 0.95) of the mean of `x`: mean ± t(n − 1) · s / √n.
/// It assumes the values are a normal sample; NaN below two values.
pub fn t_interval(x: &[f64], level: f64) -> (f64, f64) {
    if x.len() < 2 {
        return (f64::NAN, f64::NAN);
    }
    let half = t_quantile(1.0 - (1.0 - level) / 2.0, (x.len() - 1) as f64) * std(x) / (x.len() as f64).sqrt();
    (mean(x) - half, mean(x) + half)
}

/// Up to this many paired differences the sign-flip test enumerates all 2ⁿ assignments.
pub const SIGN_FLIP_EXACT_MAX: usize = 20;
/// Up to this many pairs a correlation's permutation test enumerates all n! orders.
pub const PERMUTATION_EXACT_MAX: usize = 10;
/// Random permutations (or sign assignments) beyond the exact limits.
pub const RANDOM_PERMUTATIONS: usize = 100_000;

/// A permutation p-value and how it was obtained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PermutationP {
    pub p: f64,
    /// Every assignment enumerated (else `RANDOM_PERMUTATIONS` seeded ones, p = (k + 1) / (B + 1)).
    pub exact: bool,
    /// Assignments counted: 2ⁿ, n! or the random ones.
    pub assignments: u64,
}

/// Whether `candidate` is at least as extreme as `observed`, forgiving the rounding of sums
/// taken in another order (a sign flip of a zero-sum subset must count as a tie).
fn at_least(candidate: f64, observed: f64, scale: f64) -> bool {
    candidate.abs() >= observed.abs() - 1e-9 * scale
}

/// Exact two-sided sign-flip permutation test of paired differences `d` (H0: each difference is
/// as likely positive as negative): the share of the 2ⁿ sign assignments whose |Σ| is at least
/// the observed |Σ|. Above `SIGN_FLIP_EXACT_MAX` differences, seeded random assignments. With n
/// differences the smallest attainable p is 2 / 2ⁿ (`sign_flip_min_p`); NaN for none or a non-finite one.
pub fn sign_flip_p(d: &[f64], seed: u64) -> PermutationP {
    let n = d.len();
    if n == 0 || d.iter().any(|v| !v.is_finite()) {
        return PermutationP { p: f64::NAN, exact: true, assignments: 0 };
    }
    let observed: f64 = d.iter().sum();
    let scale: f64 = d.iter().map(|v| v.abs()).sum();
    if n <= SIGN_FLIP_EXACT_MAX {
        let total = 1u64 << n;
        let extreme = (0..total)
            .filter(|mask| {
                at_least(
                    d.iter().enumerate().map(|(i, v)| if mask >> i & 1 == 1 { -v } else { *v }).sum(),
                    observed,
                    scale,
                )
            })
            .count();
        return PermutationP { p: extreme as f64 / total as f64, exact: true, assignments: total };
    }
    let mut rng = SplitMix::new(seed);
    let extreme = (0..RANDOM_PERMUTATIONS)
        .filter(|_| at_least(d.iter().map(|v| if rng.next_u64() & 1 == 1 { -v } else { *v }).sum(), observed, scale))
        .count();
    PermutationP {
        p: (extreme + 1) as f64 / (RANDOM_PERMUTATIONS + 1) as f64,
        exact: false,
        assignments: RANDOM_PERMUTATIONS as u64,
    }
}

/// The smallest p the exact sign-flip test can give with `n` pairs: the observed assignment and
/// its mirror are always at least as extreme, so 2 / 2ⁿ (0.25 for n = 3, 1 for n = 1).
pub fn sign_flip_min_p(n: usize) -> f64 {
    if n == 0 { f64::NAN } else { 0.5f64.powi(n as i32 - 1) }
}

/// Two-sided permutation test of Pearson's r (H0: y's order is unrelated to x's): the share of
/// orderings of y whose |r| is at least the observed |r|, over all n! orders up to
/// `PERMUTATION_EXACT_MAX` pairs, else `RANDOM_PERMUTATIONS` seeded shuffles. For Spearman's ρ
/// pass the ranks (`spearman_permutation_p`). NaN where r is undefined.
pub fn pearson_permutation_p(x: &[f64], y: &[f64], seed: u64) -> PermutationP {
    assert_eq!(x.len(), y.len(), "pearson_permutation_p: lengths differ");
    let n = x.len();
    if !pearson(x, y).is_finite() {
        return PermutationP { p: f64::NAN, exact: true, assignments: 0 };
    }
    // r is the centred dot product over fixed norms, so the dot product alone orders the permutations.
    let (mx, my) = (mean(x), mean(y));
    let xc: Vec<f64> = x.iter().map(|v| v - mx).collect();
    let mut yc: Vec<f64> = y.iter().map(|v| v - my).collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    let observed = dot(&xc, &yc);
    let scale: f64 = xc.iter().map(|v| v * v).sum::<f64>().sqrt() * yc.iter().map(|v| v * v).sum::<f64>().sqrt();
    if n <= PERMUTATION_EXACT_MAX {
        // Heap's algorithm: every ordering of yc, one swap apart.
        let mut count = 0u64;
        let mut total = 1u64;
        let mut c = vec![0usize; n];
        if at_least(observed, observed, scale) {
            count += 1;
        }
        let mut i = 1;
        while i < n {
            if c[i] < i {
                if i % 2 == 0 {
                    yc.swap(0, i)
                } else {
                    yc.swap(c[i], i)
                }
                total += 1;
                if at_least(dot(&xc, &yc), observed, scale) {
                    count += 1;
                }
                c[i] += 1;
                i = 1;
            } else {
                c[i] = 0;
                i += 1;
            }
        }
        return PermutationP { p: count as f64 / total as f64, exact: true, assignments: total };
    }
    let mut rng = SplitMix::new(seed);
    let mut extreme = 0usize;
    for _ in 0..RANDOM_PERMUTATIONS {
        for i in (1..n).rev() {
            yc.swap(i, rng.below(i + 1));
        }
        if at_least(dot(&xc, &yc), observed, scale) {
            extreme += 1;
        }
    }
    PermutationP {
        p: (extreme + 1) as f64 / (RANDOM_PERMUTATIONS + 1) as f64,
        exact: false,
        assignments: RANDOM_PERMUTATIONS as u64,
    }
}

/// The permutation test of Spearman's ρ: Pearson's on the (average-tie) ranks.
pub fn spearman_permutation_p(x: &[f64], y: &[f64], seed: u64) -> PermutationP {
    pearson_permutation_p(&ranks(x), &ranks(y), seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    /// Expected values by hand and from scipy 1.x / sklearn (the vectors are small enough to
    /// check on paper).
    #[test]
    fn correlations_match_known_values() {
        close(pearson(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 6.0, 8.0]), 1.0);
        close(pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), -1.0);
        // x = 1..5, y = (2, 1, 4, 3, 5): Sxy = 8, Sxx = Syy = 10.
        close(pearson(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 1.0, 4.0, 3.0, 5.0]), 0.8);
        assert!(pearson(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
        assert_eq!(ranks(&[10.0, 20.0, 20.0, 5.0]), vec![2.0, 3.5, 3.5, 1.0]);
        // Monotone but not linear: Spearman 1.
        close(spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 8.0, 27.0, 64.0]), 1.0);
        // scipy.stats.spearmanr([1,2,3,4,5],[5,6,7,8,7]) = 0.8207826816681233
        assert!((spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]) - 0.8207826816681233).abs() < 1e-12);
    }

    #[test]
    fn classification_scores_match_known_values() {
        let gold = [1, 1, 1, 0, 0, 0, 1, 0];
        let pred = [1, 0, 1, 0, 1, 0, 1, 0];
        // tp 3, tn 3, fp 1, fn 1.
        close(accuracy(&pred, &gold), 0.75);
        close(f1(&pred, &gold), 0.75);
        close(matthews(&pred, &gold), (9.0 - 1.0) / 16.0);
        // sklearn.metrics.matthews_corrcoef([1,1,0,0,0],[1,0,0,0,0]) = 0.6123724356957946
        assert!((matthews(&[1, 0, 0, 0, 0], &[1, 1, 0, 0, 0]) - 0.6123724356957946).abs() < 1e-12);
        close(matthews(&[1, 1, 1], &[1, 0, 1]), 0.0);
        close(f1(&[0, 0], &[1, 1]), 0.0);
    }

    #[test]
    fn a_constant_vector_has_no_correlation() {
        // 0.1 × 9 / 9 is not 0.1 in binary: the old centred sums were 1e-34, not 0, and gave r = -0.0.
        let x: Vec<f64> = (1..=9).map(f64::from).collect();
        assert!(pearson(&x, &[0.1; 9]).is_nan() && pearson(&[0.1; 9], &x).is_nan() && spearman(&x, &[0.1; 9]).is_nan());
        assert!(pearson_permutation_p(&x, &[0.1; 9], 1).p.is_nan());
        assert!((pearson(&x, &x) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn both_std_conventions_batch_and_streaming() {
        let x = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        close(checked_std(&x, Spread::Population).unwrap(), 2.0);
        close(std_sample(&x), (32.0f64 / 7.0).sqrt());
        let mut r = Running::default();
        assert_eq!((r.mean(), r.std(Spread::Population)), (None, None));
        for v in x {
            r.push(v);
        }
        close(r.mean().unwrap(), mean(&x));
        close(r.std(Spread::Population).unwrap(), 2.0);
        close(r.std(Spread::Sample).unwrap(), std_sample(&x));
        assert!(checked_std(&[], Spread::Population).is_none() && mean(&[]).is_nan());
        assert_eq!(checked_std(&[3.0], Spread::Population), Some(0.0));
        assert_eq!(checked_std(&[3.0], Spread::Sample), None);
    }

    #[test]
    fn std_and_bootstrap() {
        close(std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]), (32.0f64 / 7.0).sqrt());
        assert!(std(&[1.0]).is_nan());
        let x: Vec<f64> = (0..200).map(|i| i as f64).collect();
        let (lo, hi) = bootstrap_ci(x.len(), 500, 0.95, 1, |idx| mean(&idx.iter().map(|&i| x[i]).collect::<Vec<_>>()));
        assert!(lo < 99.5 && hi > 99.5 && hi - lo < 25.0, "{lo} {hi}");
    }
}

/// Deserializes a map of numbers in which JSON `null` stands for NaN (serde_json writes
/// non-finite floats as null): undefined metrics survive a round trip through a file.
pub fn nan_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::collections::BTreeMap<String, f64>, D::Error> {
    let m: std::collections::BTreeMap<String, Option<f64>> = serde::Deserialize::deserialize(d)?;
    Ok(m.into_iter().map(|(k, v)| (k, v.unwrap_or(f64::NAN))).collect())
}

#[cfg(test)]
mod nan_tests {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct M {
        #[serde(deserialize_with = "super::nan_map")]
        m: std::collections::BTreeMap<String, f64>,
    }

    #[test]
    fn nan_round_trips_through_json_as_null() {
        let text =
            serde_json::to_string(&M { m: [("a".to_string(), f64::NAN), ("b".to_string(), 1.5)].into() }).unwrap();
        assert_eq!(text, r#"{"m":{"a":null,"b":1.5}}"#);
        let back: M = serde_json::from_str(&text).unwrap();
        assert!(back.m["a"].is_nan() && back.m["b"] == 1.5);
    }
}

/// The small-sample statistics against independent computations: closed-form t quantiles,
/// sign flips and permutations counted by hand or by a separate brute force.
#[cfg(test)]
mod small_sample_tests {
    use super::*;

    fn near(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b}");
    }

    #[test]
    fn t_quantiles_match_closed_forms_and_tables() {
        let p = 0.975f64;
        // ν = 1 (Cauchy): tan(π(p − ½)); ν = 2: (2p − 1) / √(2p(1 − p)).
        near(t_quantile(p, 1.0), (std::f64::consts::PI * (p - 0.5)).tan(), 1e-9);
        near(t_quantile(p, 2.0), (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt(), 1e-9);
        // ν = 4: 2√(cos(arccos(√α)/3)/√α − 1) with α = 4p(1 − p).
        let a = 4.0 * p * (1.0 - p);
        near(t_quantile(p, 4.0), 2.0 * ((a.sqrt().acos() / 3.0).cos() / a.sqrt() - 1.0).sqrt(), 1e-9);
        // Printed tables: t(0.975; ν) for ν = 9 … 1001 (1001 by the expansion), and ν → ∞.
        for (df, want) in [
            (9.0, 2.262157),
            (29.0, 2.045230),
            (120.0, 1.979930),
            (1000.0, 1.962339),
            (1001.0, 1.962336),
            (1e7, 1.959964),
        ] {
            near(t_quantile(p, df), want, 1e-6);
        }
        near(t_quantile(0.025, 2.0), -t_quantile(p, 2.0), 1e-12);
        // x = 1, 2, 3: mean 2, s = 1, so 2 ± t(0.975; 2) / √3.
        let half = (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt() / 3f64.sqrt();
        let (lo, hi) = t_interval(&[1.0, 2.0, 3.0], 0.95);
        near(lo, 2.0 - half, 1e-9);
        near(hi, 2.0 + half, 1e-9);
        assert!(t_interval(&[1.0], 0.95).0.is_nan());
    }

    #[test]
    fn sign_flips_are_counted_over_every_assignment() {
        // ±1 ±2 ±3 over the 8 assignments: only +++ and −−− reach |6|.
        let r = sign_flip_p(&[1.0, 2.0, 3.0], 0);
        assert_eq!((r.p, r.exact, r.assignments), (0.25, true, 8));
        assert_eq!(sign_flip_min_p(3), 0.25);
        assert_eq!(sign_flip_min_p(1), 1.0);
        assert_eq!(sign_flip_min_p(6), 0.03125);
        // 3 + 1 + 1 + 1: every flip of a 1 or of the 3 lowers |Σ| below 6: 2 of 16.
        assert_eq!(sign_flip_p(&[3.0, 1.0, 1.0, 1.0], 0).p, 0.125);
        // 2 + 1 − 3 + 9: with +9, ±2 ±1 ∓3 ≥ 0 in 5 of 8 ways (6, 4, 2, 0, 0); mirrored: 10 of 16.
        assert_eq!(sign_flip_p(&[2.0, 1.0, -3.0, 9.0], 0).p, 0.625);
        // The same in tenths: flipping the zero-sum {0.2, 0.1, −0.3} must count as a tie although
        // its f64 sum rounds below the observed one (without the tolerance p is 0.5).
        assert_eq!(sign_flip_p(&[0.2, 0.1, -0.3, 0.9], 0).p, 0.625);
        assert_eq!(sign_flip_p(&[0.0, 0.0, 0.0], 0).p, 1.0);
        assert_eq!(sign_flip_p(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 0).p, 0.03125);
        assert!(sign_flip_p(&[], 0).p.is_nan() && sign_flip_p(&[1.0, f64::NAN], 0).p.is_nan());
    }

    #[test]
    fn many_pairs_use_seeded_random_sign_flips_close_to_the_exact_count() {
        // 21 integer differences: the exact p by a separate brute force over 2²¹ integer sums.
        let d: Vec<i64> = (0..21).map(|i| (i * 7 % 5) - 1).collect();
        let observed: i64 = d.iter().sum();
        let extreme = (0u64..1 << 21)
            .filter(|m| {
                d.iter().enumerate().map(|(i, v)| if m >> i & 1 == 1 { -v } else { *v }).sum::<i64>().abs()
                    >= observed.abs()
            })
            .count();
        let exact = extreme as f64 / (1u64 << 21) as f64;
        let r = sign_flip_p(&d.iter().map(|&v| v as f64).collect::<Vec<_>>(), 5);
        assert!(!r.exact && r.assignments == RANDOM_PERMUTATIONS as u64);
        // Binomial standard error at 100,000 draws is at most 0.0016.
        near(r.p, exact, 0.006);
        assert_eq!(r.p, sign_flip_p(&d.iter().map(|&v| v as f64).collect::<Vec<_>>(), 5).p, "seeded");
    }

    /// Every ordering of `y`, by recursion (independent of the library's Heap enumeration).
    fn orderings(y: &[f64]) -> Vec<Vec<f64>> {
        if y.len() <= 1 {
            return vec![y.to_vec()];
        }
        let mut out = Vec::new();
        for i in 0..y.len() {
            let mut rest = y.to_vec();
            let first = rest.remove(i);
            for mut tail in orderings(&rest) {
                tail.insert(0, first);
                out.push(tail);
            }
        }
        out
    }

    #[test]
    fn correlation_permutation_p_matches_a_brute_force() {
        // x = y = 1, 2, 3: ρ over the 6 orders is 1, ½, ½, −½, −½, −1, so p = 2/6.
        let r = spearman_permutation_p(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], 0);
        assert_eq!((r.exact, r.assignments), (true, 6));
        near(r.p, 1.0 / 3.0, 1e-15);
        near(spearman_permutation_p(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0], 0).p, 2.0 / 24.0, 1e-15);
        // With ties and 7 cells: count |ρ| ≥ |ρ_obs| by re-ranking every ordering with `spearman`.
        let x = [0.3, 0.1, 0.4, 0.1, 0.5, 0.9, 0.2];
        let y = [2.0, 7.0, 1.0, 8.0, 2.0, 8.0, 1.5];
        for (stat, test) in [
            (spearman as fn(&[f64], &[f64]) -> f64, spearman_permutation_p as fn(&[f64], &[f64], u64) -> PermutationP),
            (pearson, pearson_permutation_p),
        ] {
            let observed = stat(&x, &y).abs();
            let all = orderings(&y);
            let extreme = all.iter().filter(|o| stat(&x, o).abs() >= observed - 1e-12).count();
            let r = test(&x, &y, 0);
            assert_eq!(r.assignments, 5040);
            near(r.p, extreme as f64 / all.len() as f64, 1e-15);
        }
        // 11 cells: 100,000 seeded shuffles; a perfect rank order is as extreme as it gets.
        let x: Vec<f64> = (0..11).map(|i| i as f64).collect();
        let r = spearman_permutation_p(&x, &x.iter().map(|v| v * v).collect::<Vec<_>>(), 3);
        assert!(!r.exact && r.p == 1.0 / (RANDOM_PERMUTATIONS + 1) as f64, "{r:?}");
        assert!(pearson_permutation_p(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0], 0).p.is_nan());
    }
}
