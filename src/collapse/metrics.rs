//! The neural-collapse metrics of METHOD §4, from class statistics, in f64.
//!
//! Pairwise statistics run over tiles of the class-mean Gram matrix, so a full-vocabulary
//! class set (30k classes, 450M pairs) needs memory for two tiles only.

use super::centred::{CentredMeans, dot, norm, unit};
use crate::util::stats::{Running, Spread, checked_mean, checked_std};
use serde::{Deserialize, Serialize};

/// How the metrics are defined: METHOD §4 by default, or the Fairness-NC release's variants.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricConvention {
    /// Exponent p in the CDNV denominator ‖μ_i − μ_j‖^(2p).
    pub cdnv_power: u32,
    /// Equinorm over ‖μ̃_c‖² instead of ‖μ̃_c‖.
    pub equinorm_squared: bool,
    /// Log-kernel over centred unit means û (true) or uncentred μ_c/‖μ_c‖ (the release).
    pub logkernel_centred: bool,
}

impl MetricConvention {
    pub const DEFAULT: MetricConvention =
        MetricConvention { cdnv_power: 1, equinorm_squared: false, logkernel_centred: true };
    pub const FAIRNESS_NC: MetricConvention =
        MetricConvention { cdnv_power: 2, equinorm_squared: true, logkernel_centred: false };
}

/// One class of S' (n_c ≥ min_count) as the metrics see it.
#[derive(Debug, Clone)]
pub struct ClassInput {
    pub n: u64,
    pub mean: Vec<f64>,
    pub var: f64,
    /// The class's classifier row w_c.
    pub w: Vec<f64>,
    pub ncc_positions: u64,
    pub ncc_agree: u64,
}

/// Metric values; `None` where the metric is not computable (fewer than two classes, no
/// held-out positions, a zero norm).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub cdnv: Option<f64>,
    pub equinorm_cov: Option<f64>,
    pub equiangular_mean: Option<f64>,
    pub equiangular_std: Option<f64>,
    pub logkernel_mean: Option<f64>,
    pub logkernel_std: Option<f64>,
    pub duality_mean: Option<f64>,
    pub duality_dist: Option<f64>,
    pub duality_std: Option<f64>,
    pub duality_cov: Option<f64>,
    pub ncc_agreement: Option<f64>,
}

/// Per-class values: s_c = ⟨û_c, ŵ_c⟩ and ‖ŵ_c − û_c‖ (None when K < 2).
#[derive(Debug, Clone)]
pub struct PerClass {
    pub duality: Vec<Option<f64>>,
    pub duality_dist: Vec<Option<f64>>,
}

const TILE: usize = 1024;

/// Calls `f(i, j, gram_ij)` for every pair i < j of rows, with the Gram entries of `a`
/// computed tile by tile in parallel but delivered in a fixed order.
fn for_pairs(a: &[Vec<f64>], f: impl FnMut(usize, usize, f64)) {
    for_pairs_tiled(a, TILE, f)
}

fn for_pairs_tiled(a: &[Vec<f64>], tile: usize, mut f: impl FnMut(usize, usize, f64)) {
    use rayon::prelude::*;
    let k = a.len();
    for i0 in (0..k).step_by(tile) {
        let i1 = (i0 + tile).min(k);
        for j0 in (i0..k).step_by(tile) {
            let j1 = (j0 + tile).min(k);
            let tile: Vec<Vec<f64>> = (i0..i1)
                .into_par_iter()
                .map(|i| (j0.max(i + 1)..j1.max(i + 1)).map(|j| dot(&a[i], &a[j])).collect())
                .collect();
            for (ii, row) in tile.iter().enumerate() {
                let i = i0 + ii;
                for (jj, &g) in row.iter().enumerate() {
                    f(i, j0.max(i + 1) + jj, g);
                }
            }
        }
    }
}

/// The metrics of the classes of S' and their per-class NC3 values.
pub fn compute(classes: &[ClassInput], conv: MetricConvention) -> (Metrics, PerClass) {
    let k = classes.len();
    let mut m = Metrics { ncc_agreement: ncc_agreement(classes), ..Metrics::default() };
    let none = PerClass { duality: vec![None; k], duality_dist: vec![None; k] };
    if k < 2 {
        return (m, none);
    }
    let means: Vec<&[f64]> = classes.iter().map(|c| c.mean.as_slice()).collect();
    let centred = CentredMeans::new(&means);
    m.equinorm_cov = equinorm_cov(&centred.norms, conv);
    let Some(units) = centred.units() else {
        return (m, none); // a class mean equals the global mean: directions undefined
    };
    m.cdnv = cdnv(classes, &centred, conv);
    let mut angles = Running::default();
    for_pairs(&units, |_, _, g| angles.push(g));
    m.equiangular_mean = angles.mean();
    m.equiangular_std = angles.std(Spread::Population);
    if let Some((mean, std)) = log_kernel(classes, &units, conv) {
        m.logkernel_mean = mean;
        m.logkernel_std = std;
    }
    let per = duality(classes, &units);
    duality_summary(&per, &mut m);
    (m, per)
}

/// NC4: the share of held-out positions on which the two decisions agree.
fn ncc_agreement(classes: &[ClassInput]) -> Option<f64> {
    let positions: u64 = classes.iter().map(|c| c.ncc_positions).sum();
    (positions > 0).then(|| classes.iter().map(|c| c.ncc_agree).sum::<u64>() as f64 / positions as f64)
}

/// NC2 equinorm: population std / mean of ‖μ̃_c‖ (or of ‖μ̃_c‖²).
fn equinorm_cov(norms: &[f64], conv: MetricConvention) -> Option<f64> {
    let values: Vec<f64> = norms.iter().map(|n| if conv.equinorm_squared { n * n } else { *n }).collect();
    let (s, mn) = (checked_std(&values, Spread::Population)?, checked_mean(&values)?);
    (mn > 0.0).then(|| s / mn)
}

/// NC1 CDNV from the centred Gram matrix: ‖μ_i − μ_j‖² = ‖μ̃_i‖² + ‖μ̃_j‖² − 2⟨μ̃_i, μ̃_j⟩
/// (None when two means coincide).
fn cdnv(classes: &[ClassInput], centred: &CentredMeans, conv: MetricConvention) -> Option<f64> {
    let norms = &centred.norms;
    let mut cdnv = Running::default();
    let mut zero_distance = false;
    for_pairs(&centred.centred, |i, j, g| {
        let dist2 = (norms[i] * norms[i] + norms[j] * norms[j] - 2.0 * g).max(0.0);
        if dist2 == 0.0 {
            zero_distance = true;
        }
        let den = if conv.cdnv_power == 1 { dist2 } else { dist2.powi(conv.cdnv_power as i32) };
        cdnv.push((classes[i].var + classes[j].var) / 2.0 / den);
    });
    if zero_distance { None } else { cdnv.mean() }
}

/// GNC2: mean and population std over pairs of −log ‖v_i − v_j‖, v = û (or μ_c/‖μ_c‖ in the
/// release's convention); None when a direction is undefined or two coincide.
fn log_kernel(
    classes: &[ClassInput],
    units: &[Vec<f64>],
    conv: MetricConvention,
) -> Option<(Option<f64>, Option<f64>)> {
    let uncentred: Vec<Vec<f64>>;
    let v = if conv.logkernel_centred {
        units
    } else {
        uncentred = classes.iter().map(|c| unit(&c.mean)).collect::<Option<_>>()?;
        &uncentred
    };
    let mut lk = Running::default();
    let mut degenerate = false;
    for_pairs(v, |_, _, g| {
        // Unit vectors: ‖v_i − v_j‖² = 2 − 2⟨v_i, v_j⟩.
        let dist2 = (2.0 - 2.0 * g).max(0.0);
        if dist2 == 0.0 {
            degenerate = true;
        }
        lk.push(-0.5 * dist2.ln());
    });
    (!degenerate).then(|| (lk.mean(), lk.std(Spread::Population)))
}

/// NC3 per class: s_c = ⟨û_c, ŵ_c⟩ and ‖ŵ_c − û_c‖ (None for a zero classifier row).
fn duality(classes: &[ClassInput], units: &[Vec<f64>]) -> PerClass {
    let (duality, duality_dist) = classes
        .iter()
        .zip(units)
        .map(|(c, u)| match unit(&c.w) {
            Some(w) => {
                let diff: Vec<f64> = w.iter().zip(u).map(|(a, b)| a - b).collect();
                (Some(dot(u, &w)), Some(norm(&diff)))
            }
            None => (None, None),
        })
        .unzip();
    PerClass { duality, duality_dist }
}

/// NC3 and UNC3 over the classes: mean s_c, mean distance, sample std (n − 1) of s_c and its
/// coefficient of variation.
fn duality_summary(per: &PerClass, m: &mut Metrics) {
    let s: Option<Vec<f64>> = per.duality.iter().copied().collect();
    let dist: Option<Vec<f64>> = per.duality_dist.iter().copied().collect();
    let (Some(s), Some(dist)) = (s, dist) else { return };
    m.duality_mean = checked_mean(&s);
    m.duality_dist = checked_mean(&dist);
    m.duality_std = checked_std(&s, Spread::Sample);
    m.duality_cov = match (m.duality_std, m.duality_mean) {
        (Some(sd), Some(mn)) if mn != 0.0 => Some(sd / mn.abs()),
        _ => None,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(mean: Vec<f64>, var: f64, w: Vec<f64>) -> ClassInput {
        ClassInput { n: 3, mean, var, w, ncc_positions: 2, ncc_agree: 1 }
    }

    #[test]
    fn simplex_is_collapsed() {
        // Three means on an equilateral triangle around the origin, classifier rows aligned.
        let r3 = 3f64.sqrt();
        let means = [vec![1.0, 0.0], vec![-0.5, r3 / 2.0], vec![-0.5, -r3 / 2.0]];
        let cls: Vec<ClassInput> =
            means.iter().map(|m| class(m.clone(), 0.0, m.iter().map(|x| 2.0 * x).collect())).collect();
        let (m, per) = compute(&cls, MetricConvention::DEFAULT);
        assert!((m.equiangular_mean.unwrap() + 0.5).abs() < 1e-12);
        assert!(m.equiangular_std.unwrap() < 1e-12);
        assert!(m.equinorm_cov.unwrap() < 1e-12);
        assert!((m.duality_mean.unwrap() - 1.0).abs() < 1e-12);
        assert!(m.duality_std.unwrap() < 1e-12);
        assert_eq!(m.cdnv, Some(0.0));
        assert_eq!(m.ncc_agreement, Some(0.5));
        assert!(per.duality.iter().all(|s| (s.unwrap() - 1.0).abs() < 1e-12));
    }

    #[test]
    fn tiles_visit_every_pair_once() {
        let a: Vec<Vec<f64>> = (0..11).map(|i| vec![i as f64, 1.0]).collect();
        let mut seen = Vec::new();
        for_pairs_tiled(&a, 3, |i, j, g| {
            assert_eq!(g, (i * j) as f64 + 1.0);
            seen.push((i, j));
        });
        let mut want = Vec::new();
        for i in 0..11 {
            for j in i + 1..11 {
                want.push((i, j));
            }
        }
        seen.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn one_class_gives_no_pairwise_metrics() {
        let (m, _) = compute(&[class(vec![1.0, 2.0], 0.5, vec![1.0, 0.0])], MetricConvention::DEFAULT);
        assert_eq!(m.cdnv, None);
        assert_eq!(m.duality_std, None);
        assert_eq!(m.ncc_agreement, Some(0.5));
    }
}
