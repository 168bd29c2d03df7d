//! The small-sample statistics of the experiment summary (METHOD §12): the change a λ makes
//! against λ = 0, paired by seed, and the correlation of two metrics across cells. Only numbers
//! here; `experiment` turns them into tables, JSON and plots.

use crate::experiment::cell::CellResult;
use crate::util::stats;

/// Resamples of every percentile bootstrap in the summary.
pub const BOOTSTRAP: usize = 2000;
/// Below this many values a percentile bootstrap is little more than [min, max] (METHOD §12).
pub const BOOTSTRAP_MIN_N: usize = 10;
/// The level at which a permutation p counts as significant.
pub const ALPHA: f64 = 0.05;

/// λ against λ = 0 of one metric, paired by seed (METHOD §12).
#[derive(Debug, Clone, PartialEq)]
pub struct PairedDelta {
    /// Seeds with both sides finished and finite.
    pub n: usize,
    /// Seeds finished on one side only (left out of every statistic).
    pub without_partner: usize,
    pub mean: f64,
    pub std: f64,
    pub t_ci: (f64, f64),
    pub test: stats::PermutationP,
    /// The smallest p the sign-flip test can reach with n pairs.
    pub min_p: f64,
    /// Only where n ≥ `BOOTSTRAP_MIN_N`.
    pub bootstrap: Option<(f64, f64)>,
}

/// The per-seed differences `with − base` of `key` and their statistics; None when no seed has both.
pub fn paired_delta(with: &[&CellResult], base: &[&CellResult], key: &str) -> Option<PairedDelta> {
    let finite = |r: &CellResult| r.metrics.get(key).copied().filter(|v| v.is_finite());
    let mut diffs = Vec::new();
    let mut without_partner = 0;
    for w in with.iter().filter(|w| finite(w).is_some()) {
        match base.iter().find(|b| b.seed == w.seed).and_then(|b| finite(b)) {
            Some(b) => diffs.push(finite(w)? - b),
            None => without_partner += 1,
        }
    }
    without_partner += base
        .iter()
        .filter(|b| finite(b).is_some() && !with.iter().any(|w| w.seed == b.seed && finite(w).is_some()))
        .count();
    if diffs.is_empty() {
        return None;
    }
    let n = diffs.len();
    let bootstrap = (n >= BOOTSTRAP_MIN_N).then(|| {
        stats::bootstrap_ci(n, BOOTSTRAP, 0.95, 0xD1FF, |idx| {
            stats::mean(&idx.iter().map(|&i| diffs[i]).collect::<Vec<_>>())
        })
    });
    Some(PairedDelta {
        n,
        without_partner,
        mean: stats::mean(&diffs),
        std: stats::std(&diffs),
        t_ci: stats::t_interval(&diffs, 0.95),
        test: stats::sign_flip_p(&diffs, 0xD1FF),
        min_p: stats::sign_flip_min_p(n),
        bootstrap,
    })
}

impl PairedDelta {
    /// Whether the sign-flip test rejects at `ALPHA`: never where n is too small for it to
    /// (whatever the t-interval, which leans on normality, says).
    pub fn significant(&self) -> bool {
        self.min_p <= ALPHA && self.test.p <= ALPHA
    }

    /// Whether n is too small for the sign-flip test ever to reach `ALPHA`.
    pub fn untestable(&self) -> bool {
        self.min_p > ALPHA
    }
}

/// Pearson's r and Spearman's ρ of paired values, with permutation p-values and, where
/// n ≥ `BOOTSTRAP_MIN_N`, percentile bootstrap intervals.
#[derive(Debug, Clone, PartialEq)]
pub struct Correlation {
    pub n: usize,
    pub pearson: f64,
    pub spearman: f64,
    pub pearson_test: stats::PermutationP,
    pub spearman_test: stats::PermutationP,
    pub pearson_ci: Option<(f64, f64)>,
    pub spearman_ci: Option<(f64, f64)>,
}

/// The correlations of `xs` with `ys` (of equal length). The seeds are fixed, so a summary
/// rewritten from the same cells shows the same p-values and intervals.
pub fn correlation(xs: &[f64], ys: &[f64]) -> Correlation {
    let n = xs.len();
    let (pearson_ci, spearman_ci) = if n >= BOOTSTRAP_MIN_N {
        let resampled = |idx: &[usize], f: fn(&[f64], &[f64]) -> f64| {
            f(&idx.iter().map(|&i| xs[i]).collect::<Vec<_>>(), &idx.iter().map(|&i| ys[i]).collect::<Vec<_>>())
        };
        (
            Some(stats::bootstrap_ci(n, BOOTSTRAP, 0.95, 7, |idx| resampled(idx, stats::pearson))),
            Some(stats::bootstrap_ci(n, BOOTSTRAP, 0.95, 8, |idx| resampled(idx, stats::spearman))),
        )
    } else {
        (None, None)
    };
    Correlation {
        n,
        pearson: stats::pearson(xs, ys),
        spearman: stats::spearman(xs, ys),
        pearson_test: stats::pearson_permutation_p(xs, ys, 7),
        spearman_test: stats::spearman_permutation_p(xs, ys, 8),
        pearson_ci,
        spearman_ci,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::cell::Cell;

    fn cell(lambda: f64, seed: u64, v: f64) -> CellResult {
        CellResult::ok(
            &Cell { model: "m".into(), method: "cda".into(), lambda, seed },
            [("x".to_string(), v)].into(),
            1.0,
        )
    }

    #[test]
    fn deltas_pair_by_seed_and_three_seeds_are_never_significant() {
        // Seeds 0–2 on both sides (differences 1.0, 1.1, 0.9), seed 3 only with λ > 0.
        let base = [cell(0.0, 0, 5.0), cell(0.0, 1, 6.0), cell(0.0, 2, 7.0)];
        let with = [cell(10.0, 2, 7.9), cell(10.0, 0, 6.0), cell(10.0, 1, 7.1), cell(10.0, 3, 100.0)];
        let d = paired_delta(&with.iter().collect::<Vec<_>>(), &base.iter().collect::<Vec<_>>(), "x").unwrap();
        assert_eq!((d.n, d.without_partner), (3, 1));
        assert!((d.mean - 1.0).abs() < 1e-12 && (d.std - 0.1).abs() < 1e-12, "{d:?}");
        // mean ± t(0.975; 2) · 0.1 / √3 with t(0.975; 2) = 0.95 / √(2 · 0.975 · 0.025).
        let half = 0.95 / (2.0f64 * 0.975 * 0.025).sqrt() * 0.1 / 3f64.sqrt();
        assert!((d.t_ci.0 - (1.0 - half)).abs() < 1e-9 && (d.t_ci.1 - (1.0 + half)).abs() < 1e-9, "{d:?}");
        // The t-interval excludes 0, yet only 2 of the 8 sign assignments can be as extreme.
        assert!(d.t_ci.0 > 0.0);
        assert_eq!((d.test.p, d.min_p, d.bootstrap), (0.25, 0.25, None));
        assert!(!d.significant() && d.untestable());
        // Six seeds that agree reach p = 2/64 < 0.05; ten get a bootstrap interval too.
        let base: Vec<CellResult> = (0..10).map(|s| cell(0.0, s, 1.0)).collect();
        let with: Vec<CellResult> = (0..10).map(|s| cell(10.0, s, 2.0 + s as f64 / 100.0)).collect();
        let six =
            paired_delta(&with[..6].iter().collect::<Vec<_>>(), &base[..6].iter().collect::<Vec<_>>(), "x").unwrap();
        assert_eq!((six.n, six.test.p, six.bootstrap), (6, 0.03125, None));
        assert!(six.significant() && !six.untestable());
        let ten = paired_delta(&with.iter().collect::<Vec<_>>(), &base.iter().collect::<Vec<_>>(), "x").unwrap();
        let (lo, hi) = ten.bootstrap.expect("n = 10 bootstraps");
        assert!(lo >= 1.0 && hi <= 1.09 && lo <= ten.mean && ten.mean <= hi, "{lo} {hi}");
        assert!(
            paired_delta(&with[..1].iter().collect::<Vec<_>>(), &base[5..].iter().collect::<Vec<_>>(), "x").is_none(),
            "no common seed"
        );
    }

    #[test]
    fn correlations_bootstrap_only_from_ten_values() {
        let xs: Vec<f64> = (0..10).map(f64::from).collect();
        let ys: Vec<f64> = xs.iter().map(|x| 2.0 * x + 1.0).collect();
        let all = correlation(&xs, &ys);
        assert_eq!((all.n, all.pearson_ci.is_some(), all.spearman_ci.is_some()), (10, true, true));
        assert!((all.pearson - 1.0).abs() < 1e-12 && (all.spearman - 1.0).abs() < 1e-12, "{all:?}");
        let few = correlation(&xs[..9], &ys[..9]);
        assert_eq!((few.n, few.pearson_ci, few.spearman_ci), (9, None, None));
    }
}
