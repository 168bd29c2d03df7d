//! The Wilcoxon signed-rank test of paired differences, as `scipy.stats.wilcoxon(d)` computes
//! it with its defaults (scipy 1.17: `zero_method="wilcox"`, `correction=False`, two-sided,
//! `method="auto"`):
//! - zeros are dropped from the ranks (but still count towards the method choice below);
//! - statistic: min(R+, R−) of the average ranks of |d|;
//! - method: the exact null distribution of R+ when n ≤ 50 and there are neither ties nor
//!   zeros; the exact sign-flip permutation distribution (all 2ⁿ sign vectors) when n ≤ 13
//!   with ties or zeros; otherwise the normal approximation z = (R+ − n'(n'+1)/4) / σ with
//!   σ² = (n'(n'+1)(2n'+1) − Σ(t³ − t)/2) / 24 over the n' non-zero differences and their tie
//!   groups t, optionally continuity-corrected (z − sign(z)·½/σ).
//!
//! p = min(1, 2·min(P(R+ ≤ r), P(R+ ≥ r))) in every method.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WilcoxonMethod {
    /// The exact null distribution of R+ (no ties, no zeros, n ≤ 50).
    Exact,
    /// All 2ⁿ sign flips of the differences (ties or zeros, n ≤ 13).
    Permutation,
    /// The normal approximation with the tie correction.
    Normal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wilcoxon {
    /// Pairs given (zeros included).
    pub n: usize,
    /// Pairs with a non-zero difference (the ones ranked).
    pub n_nonzero: usize,
    /// min(R+, R−).
    pub statistic: f64,
    pub r_plus: f64,
    /// The normal score (normal approximation only; continuity-corrected if asked).
    pub z: Option<f64>,
    pub p_value: f64,
    pub method: WilcoxonMethod,
}

/// P(R+ = k) for k = 0..=n(n+1)/2 under the null (no ties).
fn exact_pmf(n: usize) -> Vec<f64> {
    let max = n * (n + 1) / 2;
    let mut counts = vec![0f64; max + 1];
    counts[0] = 1.0;
    for r in 1..=n {
        for s in (r..=max).rev() {
            counts[s] += counts[s - r];
        }
    }
    let total = 2f64.powi(n as i32);
    counts.iter().map(|c| c / total).collect()
}

/// Two-sided p from the probabilities P(T ≤ t) and P(T ≥ t).
fn two_sided(less: f64, greater: f64) -> f64 {
    (2.0 * less.min(greater)).clamp(0.0, 1.0)
}

unsafe extern "C" {
    /// The C library's complementary error function (libm; every platform Rust's std runs on
    /// links it). statrs' `erfc` is off by up to ~1e-10 relative, enough to move p-values in
    /// the tenth digit against scipy's.
    safe fn erfc(x: f64) -> f64;
}

/// Standard normal upper tail.
fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The test of the differences `d` (x − y of paired samples). `correction`: continuity
/// correction of the normal approximation (scipy's default: false). Errors when no difference
/// is non-zero or one is not finite.
pub fn wilcoxon(d: &[f64], correction: bool) -> Result<Wilcoxon> {
    if let Some(x) = d.iter().find(|x| !x.is_finite()) {
        bail!("Wilcoxon test: a difference is not finite ({x})");
    }
    let n = d.len();
    let nonzero: Vec<f64> = d.iter().copied().filter(|&x| x != 0.0).collect();
    let m = nonzero.len();
    if m == 0 {
        bail!("Wilcoxon test: no non-zero difference among {n} pairs");
    }
    let abs: Vec<f64> = nonzero.iter().map(|x| x.abs()).collect();
    let (ranks, groups) = super::stats::ranks_with_ties(&abs);
    let r_plus: f64 = nonzero.iter().zip(&ranks).filter(|(x, _)| **x > 0.0).map(|(_, r)| r).sum();
    let r_minus: f64 = nonzero.iter().zip(&ranks).filter(|(x, _)| **x < 0.0).map(|(_, r)| r).sum();
    let ties = groups.iter().any(|&g| g > 1);
    let zeros = m < n;
    let method = if n > 50 {
        WilcoxonMethod::Normal
    } else if !ties && !zeros {
        WilcoxonMethod::Exact
    } else if n <= 13 {
        WilcoxonMethod::Permutation
    } else {
        WilcoxonMethod::Normal
    };
    let mut z = None;
    let p_value = match method {
        WilcoxonMethod::Exact => {
            let pmf = exact_pmf(m);
            // R+ is an integer here (no ties).
            let k = r_plus.round() as usize;
            two_sided(pmf[..=k].iter().sum(), pmf[k..].iter().sum())
        }
        WilcoxonMethod::Permutation => {
            // Every sign vector of the non-zero differences: flipping a zero changes nothing,
            // so the proportions are those of scipy's 2ⁿ sign flips.
            let tol = 1e-12 * r_plus.abs().max(1.0);
            let (mut less, mut greater) = (0u64, 0u64);
            for signs in 0u64..(1 << m) {
                let t: f64 = ranks.iter().enumerate().filter(|(i, _)| (signs >> i) & 1 == 1).map(|(_, r)| r).sum();
                less += (t <= r_plus + tol) as u64;
                greater += (t >= r_plus - tol) as u64;
            }
            let total = (1u64 << m) as f64;
            two_sided(less as f64 / total, greater as f64 / total)
        }
        WilcoxonMethod::Normal => {
            let mf = m as f64;
            let tie: f64 = groups.iter().map(|&t| (t * t * t - t) as f64).sum();
            let se = ((mf * (mf + 1.0) * (2.0 * mf + 1.0) - tie / 2.0) / 24.0).sqrt();
            let mut score = (r_plus - mf * (mf + 1.0) / 4.0) / se;
            if correction {
                score -= score.signum() * 0.5 / se;
            }
            z = Some(-score.abs());
            two_sided(normal_sf(-score), normal_sf(score))
        }
    };
    if !p_value.is_finite() {
        bail!("Wilcoxon test: the p-value of {n} pairs is not finite");
    }
    Ok(Wilcoxon { n, n_nonzero: m, statistic: r_plus.min(r_minus), r_plus, z, p_value, method })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_distribution_sums_to_one_and_is_symmetric() {
        let pmf = exact_pmf(10);
        assert!((pmf.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(pmf[0], pmf[55]);
        assert_eq!(pmf[0], 1.0 / 1024.0);
    }

    #[test]
    fn no_nonzero_difference_is_an_error() {
        assert!(wilcoxon(&[0.0, 0.0], false).unwrap_err().to_string().contains("no non-zero"));
        assert!(wilcoxon(&[1.0, f64::NAN], false).is_err());
    }
}
