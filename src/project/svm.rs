//! The linear classifier of INLP: what bias-bench trains, sklearn's
//! `LinearSVC(fit_intercept=False, dual=False, C=1.0)` — L2-regularised squared-hinge loss,
//! one-vs-rest over the sorted labels (one row for two labels, positive = the larger label),
//! no intercept — solved in the primal. liblinear's primal solver (trust-region Newton) stops at
//! a gradient norm of `tol · min(#pos, #neg) / n` times the initial one (tol = 1e-4); this one
//! runs exact Newton steps (the Hessian from one GEMM, solved by Cholesky) with a backtracking
//! line search to a gradient 1e-10 times the initial, i.e. to the same unique minimiser, more
//! exactly.

use super::linalg::{Rows, dot, solve_spd};
use anyhow::Result;
use candle_core::{Device, Tensor};
use rayon::prelude::*;

/// The objective's constant C (sklearn's default).
pub const C: f64 = 1.0;

/// Trained rows `W [m, d]`: one per label for three or more labels, one for two.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearSvc {
    pub labels: Vec<i64>,
    pub rows: Vec<Vec<f64>>,
}

/// Rows per parallel task in the sums over the data. Fixed, and the partial sums are added in
/// task order, so a fit gives the same bits on any number of threads.
const ROWS_PER_TASK: usize = 1024;

/// `base += Σ_{i ∈ rows} coef(i) · xᵢ`, in parallel over fixed blocks of rows.
fn add_weighted_rows(x: &Rows, rows: &[usize], base: &mut [f64], coef: impl Fn(usize) -> f64 + Sync) {
    let parts: Vec<Vec<f64>> = rows
        .par_chunks(ROWS_PER_TASK)
        .map(|block| {
            let mut part = vec![0f64; x.d];
            for &i in block {
                let s = coef(i);
                part.iter_mut().zip(x.row(i)).for_each(|(o, xj)| *o += s * xj);
            }
            part
        })
        .collect();
    for part in parts {
        base.iter_mut().zip(part).for_each(|(o, p)| *o += p);
    }
}

/// f(w) = ½‖w‖² + C Σ max(0, 1 − yᵢ⟨w, xᵢ⟩)², its gradient, and the rows where the loss is active.
fn objective(x: &Rows, y: &[f64], w: &[f64]) -> (f64, Vec<f64>, Vec<usize>) {
    let n = x.n().min(y.len());
    let margins: Vec<f64> = (0..n).into_par_iter().map(|i| 1.0 - y[i] * dot(x.row(i), w)).collect();
    let active: Vec<usize> = (0..n).filter(|&i| margins[i] > 0.0).collect();
    let f = 0.5 * dot(w, w) + active.iter().map(|&i| C * margins[i] * margins[i]).sum::<f64>();
    let mut g = w.to_vec();
    add_weighted_rows(x, &active, &mut g, |i| -2.0 * C * y[i] * margins[i]);
    (f, g, active)
}

/// Σ_{i ∈ rows} xᵢxᵢᵀ `[d, d]`, row-major, by one f64 GEMM of the gathered rows.
fn gram(x: &Rows, rows: &[usize]) -> Result<Vec<f64>> {
    let d = x.d;
    if rows.is_empty() {
        return Ok(vec![0f64; d * d]);
    }
    let mut a = Vec::with_capacity(rows.len() * d);
    rows.iter().for_each(|&i| a.extend_from_slice(x.row(i)));
    let a = Tensor::from_vec(a, (rows.len(), d), &Device::Cpu)?;
    Ok(a.t()?.matmul(&a)?.flatten_all()?.to_vec1::<f64>()?)
}

/// One binary problem with labels ±1.
fn binary(x: &Rows, y: &[f64]) -> Result<Vec<f64>> {
    let d = x.d;
    let mut w = vec![0f64; d];
    let (mut f, mut g, mut active) = objective(x, y, &w);
    let g0 = dot(&g, &g).sqrt();
    for _ in 0..200 {
        let gn = dot(&g, &g).sqrt();
        if gn <= 1e-10 * g0.max(1e-300) {
            break;
        }
        // Newton step: (I + 2C Σ_active xxᵀ) s = −g, solved exactly. The Gram matrix of the
        // active rows costs one pass over the data (a GEMM); conjugate gradients cost a pass
        // per iteration, and at bias-bench's sizes (30,000 × 384) each pass is memory-bound.
        let mut h = gram(x, &active)?;
        h.iter_mut().for_each(|v| *v *= 2.0 * C);
        (0..d).for_each(|j| h[j * d + j] += 1.0);
        let minus_g: Vec<f64> = g.iter().map(|v| -v).collect();
        let s = solve_spd(&h, d, &minus_g);
        // Backtracking (Armijo) line search along s.
        let slope = dot(&g, &s);
        let mut step = 1.0;
        let mut accepted = false;
        for _ in 0..60 {
            let trial: Vec<f64> = w.iter().zip(&s).map(|(a, b)| a + step * b).collect();
            let (ft, gt, at) = objective(x, y, &trial);
            if ft <= f + 1e-4 * step * slope {
                (w, f, g, active) = (trial, ft, gt, at);
                accepted = true;
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            break;
        }
    }
    Ok(w)
}

impl LinearSvc {
    /// Trains on rows `x` with integer labels `y` (at least two distinct).
    pub fn fit(x: &Rows, y: &[i64]) -> Result<Self> {
        let mut labels: Vec<i64> = y.to_vec();
        labels.sort_unstable();
        labels.dedup();
        let targets: Vec<i64> = if labels.len() == 2 { vec![labels[1]] } else { labels.clone() };
        let rows = targets
            .iter()
            .map(|&t| {
                let yy: Vec<f64> = y.iter().map(|&v| if v == t { 1.0 } else { -1.0 }).collect();
                binary(x, &yy)
            })
            .collect::<Result<_>>()?;
        Ok(LinearSvc { labels, rows })
    }

    /// sklearn's `predict`: the sign for two labels, else the label of the largest score (the
    /// first on a tie).
    pub fn predict(&self, row: &[f64]) -> i64 {
        if self.labels.len() == 2 {
            return if dot(&self.rows[0], row) > 0.0 { self.labels[1] } else { self.labels[0] };
        }
        let mut best = (f64::NEG_INFINITY, 0);
        for (j, w) in self.rows.iter().enumerate() {
            let s = dot(w, row);
            if s > best.0 {
                best = (s, j);
            }
        }
        self.labels[best.1]
    }

    /// Share of rows predicted right (sklearn's `score`).
    pub fn accuracy(&self, x: &Rows, y: &[i64]) -> f64 {
        let right = (0..x.n()).filter(|&i| self.predict(x.row(i)) == y[i]).count();
        right as f64 / x.n().max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_points_are_separated_and_the_gradient_vanishes() {
        let data = [2.0, 1.0, 1.0, 2.0, 3.0, 0.5, -1.0, -2.0, -2.0, -1.0, -0.5, -3.0];
        let x = Rows { data: &data, d: 2 };
        let y = [1, 1, 1, 0, 0, 0];
        let m = LinearSvc::fit(&x, &y).unwrap();
        assert_eq!(m.rows.len(), 1);
        assert_eq!(m.accuracy(&x, &y), 1.0);
        let yy: Vec<f64> = y.iter().map(|&v| if v == 1 { 1.0 } else { -1.0 }).collect();
        let (_, g, _) = objective(&x, &yy, &m.rows[0]);
        assert!(dot(&g, &g).sqrt() < 1e-8, "{g:?}");
        let three = LinearSvc::fit(&x, &[1, 1, 2, 0, 0, -1]).unwrap();
        assert_eq!((three.rows.len(), three.labels.clone()), (4, vec![-1, 0, 1, 2]));
    }
}
