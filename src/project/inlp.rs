//! INLP (Ravfogel et al. 2020) as bias-bench runs it: train a linear classifier of the
//! protected attribute, remove its rowspace from the features, train the next one on the
//! projected features, and so on; the result projects onto the intersection of every
//! classifier's nullspace, P = I − P_rowspace(W₁; …; Wₙ).

use super::linalg::{Rows, extend_basis, removing};
use super::svm::LinearSvc;
use crate::util::progress::{Progress, Unit};

/// What the iterations produced.
#[derive(Debug, Clone, PartialEq)]
pub struct InlpRun {
    /// Orthonormal basis of the span of every classifier row: the removed directions.
    pub basis: Vec<Vec<f64>>,
    /// Each iteration's classifier rows.
    pub weights: Vec<Vec<Vec<f64>>>,
    /// Each iteration's dev accuracy, measured on the features projected by the earlier ones.
    pub dev_accuracy: Vec<f64>,
}

/// bias-bench's `get_projection_to_intersection_of_nullspaces` over classifier rows `ws`:
/// I − (the projection onto the span of all rows), `[d, d]` row-major.
pub fn nullspace_projection(ws: &[Vec<f64>], d: usize) -> Vec<f64> {
    let mut basis = Vec::new();
    extend_basis(&mut basis, ws);
    removing(&basis, d)
}

/// Removes the span of `dirs` (orthonormal, orthogonal to what `x` was already projected by)
/// from every row of `x`.
fn project_rows(x: &mut [f64], d: usize, dirs: &[Vec<f64>]) {
    for row in x.chunks_mut(d) {
        for b in dirs {
            let c: f64 = row.iter().zip(b).map(|(a, b)| a * b).sum();
            row.iter_mut().zip(b).for_each(|(a, bj)| *a -= c * bj);
        }
    }
}

/// `iterations` rounds of INLP (bias-bench: 80, `min_accuracy` 0 so every classifier counts,
/// autoregressive). A round whose classifier adds no new direction ends the run early.
pub fn run(
    train: (&[f64], &[i64]),
    dev: (&[f64], &[i64]),
    d: usize,
    iterations: usize,
    progress: &dyn Progress,
) -> anyhow::Result<InlpRun> {
    let mut xt = train.0.to_vec();
    let mut xd = dev.0.to_vec();
    let mut out = InlpRun { basis: Vec::new(), weights: Vec::new(), dev_accuracy: Vec::new() };
    let phase = progress.phase("INLP classifiers", iterations as u64, Unit::Items);
    for i in 0..iterations {
        let svc = LinearSvc::fit(&Rows { data: &xt, d }, train.1)?;
        let acc = svc.accuracy(&Rows { data: &xd, d }, dev.1);
        progress.message(&format!("INLP iteration {}: dev accuracy {acc:.4}", i + 1));
        out.dev_accuracy.push(acc);
        let before = out.basis.len();
        let added = extend_basis(&mut out.basis, &svc.rows);
        out.weights.push(svc.rows);
        phase.set(i as u64 + 1);
        if added == 0 {
            break;
        }
        let new = &out.basis[before..];
        project_rows(&mut xt, d, new);
        project_rows(&mut xd, d, new);
    }
    Ok(out)
}
