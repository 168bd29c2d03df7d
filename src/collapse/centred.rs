//! The centred unit class means of METHOD §4: μ̃_c = μ_c − μ_G with μ_G the unweighted mean of
//! the given class means, and û_c = μ̃_c / ‖μ̃_c‖. One definition for the metrics (NC2 and the
//! NC3 alignment s_c = ⟨û_c, ŵ_c⟩) and the NC3 regularizer of training (METHOD §5), so that the
//! regularizer acts on exactly the s_c that `collapse` reports. The means are constants (also in
//! the regularizer's gradient), so this is plain f64 arithmetic; only ŵ_c differs in kind (a
//! differentiable tensor row in training, an f64 slice in the metrics).

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub(crate) fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// `a / ‖a‖`, or None when `a` has no direction (a zero or non-finite norm).
pub(crate) fn unit(a: &[f64]) -> Option<Vec<f64>> {
    unit_with_norm(a, norm(a))
}

fn unit_with_norm(a: &[f64], n: f64) -> Option<Vec<f64>> {
    (n > 0.0 && n.is_finite()).then(|| a.iter().map(|x| x / n).collect())
}

/// The class means of S' (or of the seen classes) centred on their unweighted mean.
#[derive(Debug, Clone)]
pub struct CentredMeans {
    /// μ̃_c, one row per class.
    pub centred: Vec<Vec<f64>>,
    /// ‖μ̃_c‖.
    pub norms: Vec<f64>,
}

impl CentredMeans {
    /// Centres `means` (one row of length D per class) on μ_G = (1/K) Σ μ_c.
    pub fn new(means: &[&[f64]]) -> Self {
        let k = means.len();
        let d = means.first().map_or(0, |m| m.len());
        let mu_g: Vec<f64> = (0..d).map(|j| means.iter().map(|m| m[j]).sum::<f64>() / k as f64).collect();
        let centred: Vec<Vec<f64>> = means.iter().map(|m| m.iter().zip(&mu_g).map(|(a, b)| a - b).collect()).collect();
        let norms = centred.iter().map(|v| norm(v)).collect();
        CentredMeans { centred, norms }
    }

    /// û_c, or None for a class whose mean is the global mean (it has no direction).
    pub fn unit(&self, c: usize) -> Option<Vec<f64>> {
        unit_with_norm(&self.centred[c], self.norms[c])
    }

    /// Every û_c, or None when one is undefined.
    pub fn units(&self) -> Option<Vec<Vec<f64>>> {
        (0..self.centred.len()).map(|c| self.unit(c)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centred_on_the_unweighted_mean_and_normalised() {
        let (a, b, c) = ([3.0, 0.0], [1.0, 0.0], [2.0, 3.0]);
        let m = CentredMeans::new(&[&a, &b, &c]);
        assert_eq!(m.centred, vec![vec![1.0, -1.0], vec![-1.0, -1.0], vec![0.0, 2.0]]);
        assert_eq!(m.norms[2], 2.0);
        assert_eq!(m.unit(2), Some(vec![0.0, 1.0]));
        let same = CentredMeans::new(&[&a, &a]);
        assert_eq!((same.unit(0), same.units()), (None, None));
    }
}
