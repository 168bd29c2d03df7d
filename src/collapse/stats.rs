//! Streaming class statistics, accumulated exactly.
//!
//! Each position contributes its feature vector h and ‖h‖² (computed the same way whatever the
//! batch) to its class, as fixed-point integers (resolution 2⁻⁴⁰). Integer sums do not depend
//! on the order of addition, so statistics gathered in any number of shards and merged equal
//! the single run bit for bit; converted back they are as accurate as f64 sums.

use anyhow::{Result, bail};

const SCALE: f64 = (1u64 << 40) as f64;
/// Features must stay below this magnitude for the fixed-point sums (2⁴⁰ · 2⁴⁰ < 2¹²⁷).
const MAX_ABS: f64 = (1u64 << 40) as f64;

fn to_fixed(x: f64) -> i128 {
    (x * SCALE).round() as i128
}

fn from_fixed(x: i128) -> f64 {
    x as f64 / SCALE
}

/// Per-class counts, feature sums and squared-norm sums (METHOD §4 passes 1 and 2: the
/// variance follows from them as E‖h‖² − ‖μ‖², evaluated in f64).
#[derive(Debug, Clone, PartialEq)]
pub struct ClassStats {
    pub dim: usize,
    pub counts: Vec<u64>,
    pub sums: Vec<i128>,
    pub sq_norms: Vec<i128>,
}

impl ClassStats {
    pub fn new(classes: usize, dim: usize) -> Self {
        ClassStats { dim, counts: vec![0; classes], sums: vec![0; classes * dim], sq_norms: vec![0; classes] }
    }

    pub fn num_classes(&self) -> usize {
        self.counts.len()
    }

    /// Adds feature rows `feats` (`[N, D]`, row-major) labelled with class indices `labels`.
    pub fn add(&mut self, labels: &[usize], feats: &[f32]) -> Result<()> {
        let d = self.dim;
        debug_assert_eq!(labels.len() * d, feats.len());
        for (row, &c) in feats.chunks_exact(d).zip(labels) {
            let mut sq = 0f64;
            for (j, &x) in row.iter().enumerate() {
                let x = x as f64;
                if !x.is_finite() || x.abs() >= MAX_ABS {
                    bail!("feature value {x} is not finite or too large to accumulate");
                }
                self.sums[c * d + j] += to_fixed(x);
                sq += x * x;
            }
            self.sq_norms[c] += to_fixed(sq);
            self.counts[c] += 1;
        }
        Ok(())
    }

    pub fn merge(&mut self, other: &ClassStats) -> Result<()> {
        if other.dim != self.dim || other.counts.len() != self.counts.len() {
            bail!("statistics of different shapes cannot be merged");
        }
        // Shards come from files: an overflowing sum is a damaged or hostile shard, not a panic.
        let overflow = || anyhow::anyhow!("statistics overflow when merged (a damaged shard?)");
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a = a.checked_add(*b).ok_or_else(overflow)?;
        }
        for (a, b) in self.sums.iter_mut().zip(&other.sums) {
            *a = a.checked_add(*b).ok_or_else(overflow)?;
        }
        for (a, b) in self.sq_norms.iter_mut().zip(&other.sq_norms) {
            *a = a.checked_add(*b).ok_or_else(overflow)?;
        }
        self.checked_positions().ok_or_else(overflow)?;
        Ok(())
    }

    pub fn positions(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// [`Self::positions`], or None when the counts (read from a file) overflow a u64.
    pub fn checked_positions(&self) -> Option<u64> {
        self.counts.iter().try_fold(0u64, |a, &c| a.checked_add(c))
    }

    /// μ_c (zeros for an unseen class).
    pub fn mean(&self, c: usize) -> Vec<f64> {
        let n = self.counts[c].max(1) as f64;
        self.sums[c * self.dim..(c + 1) * self.dim].iter().map(|&s| from_fixed(s) / n).collect()
    }

    /// σ²_c = (1/n_c) Σ ‖h − μ_c‖² = Σ‖h‖²/n_c − ‖μ_c‖² (clamped at 0 against rounding).
    pub fn variance(&self, c: usize) -> f64 {
        let n = self.counts[c].max(1) as f64;
        let mu = self.mean(c);
        let mu_sq: f64 = mu.iter().map(|x| x * x).sum();
        (from_fixed(self.sq_norms[c]) / n - mu_sq).max(0.0)
    }

    /// A fingerprint of the statistics, recorded by decision shards that used these means.
    pub fn fingerprint(&self) -> String {
        let mut bytes = Vec::with_capacity(self.sums.len() * 16 + self.counts.len() * 8);
        for c in &self.counts {
            bytes.extend_from_slice(&c.to_le_bytes());
        }
        for s in &self.sums {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        crate::util::hash::hex_digest(&bytes)
    }
}

/// i128 values as (low, high) i64 pairs, for safetensors (which has no 128-bit type).
pub fn split_i128(xs: &[i128]) -> Vec<i64> {
    xs.iter().flat_map(|&x| [x as u64 as i64, (x >> 64) as i64]).collect()
}

/// Inverse of [`split_i128`].
pub fn join_i128(xs: &[i64]) -> Vec<i128> {
    xs.chunks_exact(2).map(|p| ((p[1] as i128) << 64) | (p[0] as u64 as i128)).collect()
}

/// Pass 3: per class, held-out positions and how many of them the linear classifier and the
/// nearest-class-mean rule decide alike.
#[derive(Debug, Clone, PartialEq)]
pub struct Decisions {
    pub positions: Vec<u64>,
    pub agree: Vec<u64>,
}

impl Decisions {
    pub fn new(classes: usize) -> Self {
        Decisions { positions: vec![0; classes], agree: vec![0; classes] }
    }

    pub fn merge(&mut self, other: &Decisions) -> Result<()> {
        if other.positions.len() != self.positions.len() {
            bail!("decisions over different class sets cannot be merged");
        }
        let overflow = || anyhow::anyhow!("decision counts overflow when merged (a damaged shard?)");
        for (a, b) in self.positions.iter_mut().zip(&other.positions) {
            *a = a.checked_add(*b).ok_or_else(overflow)?;
        }
        for (a, b) in self.agree.iter_mut().zip(&other.agree) {
            *a = a.checked_add(*b).ok_or_else(overflow)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_independent_of_order_and_variance_matches_two_pass() {
        let feats: Vec<f32> = (0..40).map(|i| ((i * 7919 % 97) as f32 - 48.0) * 0.37).collect();
        let labels = [0, 1, 0, 2, 1, 0, 2, 2, 1, 0];
        let mut a = ClassStats::new(3, 4);
        a.add(&labels, &feats).unwrap();
        let mut b = ClassStats::new(3, 4);
        b.add(&labels[5..], &feats[20..]).unwrap();
        let mut c = ClassStats::new(3, 4);
        c.add(&labels[..5], &feats[..20]).unwrap();
        b.merge(&c).unwrap();
        assert_eq!(a, b);
        for class in 0..3 {
            let rows: Vec<&[f32]> = feats.chunks(4).zip(labels).filter(|(_, l)| *l == class).map(|(r, _)| r).collect();
            let n = rows.len() as f64;
            let mu: Vec<f64> = (0..4).map(|j| rows.iter().map(|r| r[j] as f64).sum::<f64>() / n).collect();
            let var: f64 =
                rows.iter().map(|r| (0..4).map(|j| (r[j] as f64 - mu[j]).powi(2)).sum::<f64>()).sum::<f64>() / n;
            assert!((a.variance(class) - var).abs() < 1e-9 * var.max(1.0));
            for (got, want) in a.mean(class).iter().zip(&mu) {
                assert!((got - want).abs() < 1e-11);
            }
        }
        assert!(a.add(&[0], &[f32::NAN, 0.0, 0.0, 0.0]).is_err());
    }
}
