//! Small statistics in f64: correlations (Pearson, Spearman with average ranks for ties),
//! classification scores (accuracy, F1, Matthews), mean and sample std, and percentile
//! bootstrap confidence intervals. Undefined values (a constant vector, an empty class) are
//! NaN, never a silent 0.

use crate::util::rng::SplitMix;

pub fn mean(x: &[f64]) -> f64 {
    if x.is_empty() { f64::NAN } else { x.iter().sum::<f64>() / x.len() as f64 }
}

/// Unbiased sample standard deviation (NaN below two values).
pub fn std(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return f64::NAN;
    }
    let m = mean(x);
    (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64).sqrt()
}

pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "pearson: lengths differ");
    if x.len() < 2 {
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
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
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
        i = j + 1;
    }
    r
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

/// Percentile bootstrap interval of mean(a) − mean(b), resampling each side independently
/// (two groups of seeds).
pub fn bootstrap_mean_diff_ci(a: &[f64], b: &[f64], resamples: usize, level: f64, seed: u64) -> (f64, f64) {
    if a.is_empty() || b.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = SplitMix::new(seed);
    let mut resample_mean = |x: &[f64]| (0..x.len()).map(|_| x[rng.below(x.len())]).sum::<f64>() / x.len() as f64;
    let mut values: Vec<f64> = (0..resamples).map(|_| resample_mean(a) - resample_mean(b)).collect();
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
    fn std_and_bootstrap() {
        close(std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]), (32.0f64 / 7.0).sqrt());
        assert!(std(&[1.0]).is_nan());
        let x: Vec<f64> = (0..200).map(|i| i as f64).collect();
        let (lo, hi) = bootstrap_ci(x.len(), 500, 0.95, 1, |idx| mean(&idx.iter().map(|&i| x[i]).collect::<Vec<_>>()));
        assert!(lo < 99.5 && hi > 99.5 && hi - lo < 25.0, "{lo} {hi}");
        let (lo, hi) = bootstrap_mean_diff_ci(&[10.0, 11.0, 12.0], &[1.0, 2.0, 3.0], 1000, 0.95, 2);
        assert!(lo > 7.0 && hi < 11.0 && lo < 9.0 && hi > 9.0, "{lo} {hi}");
        let (lo, hi) = bootstrap_mean_diff_ci(&[1.0, 3.0], &[2.0, 2.0], 1000, 0.95, 2);
        assert!(lo <= 0.0 && hi >= 0.0);
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
        let text = serde_json::to_string(&M { m: [("a".to_string(), f64::NAN), ("b".to_string(), 1.5)].into() }).unwrap();
        assert_eq!(text, r#"{"m":{"a":null,"b":1.5}}"#);
        let back: M = serde_json::from_str(&text).unwrap();
        assert!(back.m["a"].is_nan() && back.m["b"] == 1.5);
    }
}
