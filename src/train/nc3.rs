//! The paper's regularizer (METHOD §5): λ · std over the fairness classes seen so far of the
//! cosine between the centred running class mean and the class's row of the tied embedding.
//!
//! Class means are running sums of detached last-layer hidden states (the collapse module's
//! exact accumulators and labelling), so they are constants in the gradient, which reaches only
//! the rows w_c of the seen classes — and, through tying, those input embeddings.

use crate::collapse::Target;
use crate::collapse::centred::CentredMeans;
use crate::collapse::run::ClassLookup;
use crate::collapse::stats::ClassStats;
use crate::words::ClassSet;
use anyhow::{Context, Result};
use candle_core::{D, DType, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Nc3Variant {
    /// Sample std of the alignments (uniform alignment; the paper).
    Std,
    /// −mean of the alignments (ablation: stronger alignment).
    Mean,
}

pub struct Nc3Regularizer {
    ids: Vec<u32>,
    lookup: ClassLookup,
    stats: ClassStats,
    pub variant: Nc3Variant,
}

/// The term's value and the number of classes it was computed over.
pub struct Nc3Term {
    pub loss: Tensor,
    pub classes: usize,
}

impl Nc3Regularizer {
    pub fn new(classes: &ClassSet, vocab_size: usize, hidden_size: usize, target: Target, variant: Nc3Variant) -> Self {
        Nc3Regularizer {
            ids: classes.ids(),
            lookup: ClassLookup::new(classes, vocab_size, target),
            stats: ClassStats::new(classes.classes.len(), hidden_size),
            variant,
        }
    }

    /// Adds the (detached) hidden states `[B, T, D]` of a batch with token rows `rows` to the
    /// running class sums.
    pub fn observe(&mut self, hidden: &Tensor, rows: &[Vec<u32>]) -> Result<()> {
        let (b, t, d) = hidden.dims3()?;
        let (labels, flat) = self.lookup.labelled_positions(rows, t);
        if labels.is_empty() {
            return Ok(());
        }
        let idx = Tensor::new(flat.as_slice(), hidden.device())?;
        let feats: Vec<f32> = hidden.detach().reshape((b * t, d))?.index_select(&idx, 0)?.flatten_all()?.to_vec1()?;
        self.stats.add(&labels, &feats)
    }

    /// The running sums, for checkpoints: (name, tensor) pairs under `prefix`, in the layout of
    /// the statistics shards.
    pub fn state(&self, prefix: &str) -> Result<Vec<(String, Tensor)>> {
        crate::collapse::tensors::to_tensors(&self.stats, prefix)
    }

    /// Restores [`Self::state`].
    pub fn load_state(&mut self, state: &std::collections::BTreeMap<String, Tensor>, prefix: &str) -> Result<()> {
        let stats = crate::collapse::tensors::from_tensors(|name| state.get(name), prefix)
            .context("checkpoint NC3 statistics")?;
        if stats.counts.len() != self.stats.counts.len() || stats.sums.len() != self.stats.sums.len() {
            anyhow::bail!("checkpoint NC3 statistics are for another class set");
        }
        self.stats = ClassStats { dim: self.stats.dim, ..stats };
        Ok(())
    }

    /// Classes seen so far.
    pub fn seen(&self) -> usize {
        self.stats.counts.iter().filter(|&&n| n > 0).count()
    }

    /// The regularizer on the classifier `w [V, D]`, or None while fewer than two classes have
    /// been seen (the std needs two; K < 2 would give NaN).
    pub fn term(&self, w: &Tensor) -> Result<Option<Nc3Term>> {
        let Some(s) = self.alignments(w)? else { return Ok(None) };
        let k = s.dim(0)?;
        let mean = (s.sum_all()? / k as f64)?;
        let loss = match self.variant {
            // The sample std (n − 1), as in the paper and `collapse`'s `duality_std`.
            Nc3Variant::Std => (s.broadcast_sub(&mean)?.sqr()?.sum_all()? / (k - 1) as f64)?.sqrt()?,
            Nc3Variant::Mean => mean.neg()?,
        };
        Ok(Some(Nc3Term { loss: loss.to_dtype(w.dtype())?, classes: k }))
    }

    /// s_c = ⟨û_c, ŵ_c⟩ `[K]` (f64, differentiable in `w`) over the seen classes, or None while
    /// fewer than two have been seen.
    pub fn alignments(&self, w: &Tensor) -> Result<Option<Tensor>> {
        let seen: Vec<usize> = (0..self.ids.len()).filter(|&c| self.stats.counts[c] > 0).collect();
        if seen.len() < 2 {
            return Ok(None);
        }
        let dev = w.device();
        let u = Tensor::from_vec(self.centred_unit_means(&seen), (seen.len(), self.stats.dim), dev)?;
        // ŵ_c: rows of the tied matrix, differentiable; computed in f64 for a precise gradient.
        let ids: Vec<u32> = seen.iter().map(|&c| self.ids[c]).collect();
        let rows = w.index_select(&Tensor::new(ids.as_slice(), dev)?, 0)?.to_dtype(DType::F64)?;
        let norms = rows.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
        let w_hat = rows.broadcast_div(&norms)?;
        Ok(Some((w_hat * u)?.sum(D::Minus1)?))
    }

    /// û_c of the `seen` classes, row-major `[K·D]`, as the metrics define them; constants in
    /// the gradient. A class at the global mean has no direction and contributes s_c = 0.
    fn centred_unit_means(&self, seen: &[usize]) -> Vec<f64> {
        let means: Vec<Vec<f64>> = seen.iter().map(|&c| self.stats.mean(c)).collect();
        let refs: Vec<&[f64]> = means.iter().map(Vec::as_slice).collect();
        let centred = CentredMeans::new(&refs);
        (0..seen.len()).flat_map(|c| centred.unit(c).unwrap_or_else(|| vec![0.0; self.stats.dim])).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::{Class, ClassSet};
    use candle_core::{Device, Var};

    fn setup() -> (Nc3Regularizer, Var) {
        let classes = ClassSet {
            name: "t".into(),
            group_names: vec!["a".into(), "b".into()],
            classes: [2u32, 5, 7]
                .iter()
                .enumerate()
                .map(|(i, &id)| Class { id, token: id.to_string(), words: vec![], groups: vec![i % 2] })
                .collect(),
            skipped: vec![],
        };
        let mut rng = crate::util::rng::SplitMix::new(3);
        let (v, d) = (10, 4);
        let w: Vec<f32> = (0..v * d).map(|_| rng.normal() as f32).collect();
        let w = Var::from_tensor(&Tensor::from_vec(w, (v, d), &Device::Cpu).unwrap()).unwrap();
        let mut reg = Nc3Regularizer::new(&classes, v, d, Target::Same, Nc3Variant::Std);
        let rows = vec![vec![1u32, 2, 5, 7, 2], vec![7, 3, 5, 0, 0]];
        let h: Vec<f32> = (0..2 * 5 * d).map(|_| rng.normal() as f32).collect();
        reg.observe(&Tensor::from_vec(h, (2, 5, d), &Device::Cpu).unwrap(), &rows).unwrap();
        (reg, w)
    }

    #[test]
    fn gradient_matches_finite_differences_and_reaches_only_fairness_rows() {
        let (reg, w) = setup();
        assert_eq!(reg.seen(), 3);
        let term = reg.term(w.as_tensor()).unwrap().unwrap();
        assert_eq!(term.classes, 3);
        let grads = term.loss.backward().unwrap();
        let g: Vec<Vec<f32>> = grads.get(w.as_tensor()).unwrap().to_vec2().unwrap();
        for (row, gr) in g.iter().enumerate() {
            let fairness = [2, 5, 7].contains(&row);
            assert_eq!(gr.iter().any(|x| *x != 0.0), fairness, "row {row}");
        }
        // Central differences in f64 on every element of the fairness rows.
        let base: Vec<Vec<f32>> = w.as_tensor().to_vec2().unwrap();
        let value = |m: &Vec<Vec<f32>>| -> f64 {
            let t = Tensor::new(m.clone(), &Device::Cpu).unwrap();
            reg.term(&t).unwrap().unwrap().loss.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
        };
        let eps = 1e-2f32;
        for row in [2usize, 5, 7] {
            for j in 0..4 {
                let (mut up, mut down) = (base.clone(), base.clone());
                up[row][j] += eps;
                down[row][j] -= eps;
                let fd = (value(&up) - value(&down)) / (2.0 * eps as f64);
                assert!(
                    (fd - g[row][j] as f64).abs() < 1e-3 * fd.abs().max(0.1),
                    "row {row} col {j}: {fd} vs {}",
                    g[row][j]
                );
            }
        }
    }

    /// The regularizer acts on the s_c that `collapse` reports: the same centred unit means,
    /// the same alignments, and its std term is the metrics' `duality_std`.
    #[test]
    fn alignments_are_the_metrics_s_c() {
        use crate::collapse::metrics::{ClassInput, MetricConvention, compute};
        let (reg, w) = setup();
        let w64 = w.as_tensor().to_dtype(DType::F64).unwrap();
        let s: Vec<f64> = reg.alignments(&w64).unwrap().unwrap().to_vec1().unwrap();
        let rows: Vec<Vec<f64>> = w64.to_vec2().unwrap();
        let inputs: Vec<ClassInput> = (0..reg.ids.len())
            .map(|c| ClassInput {
                n: reg.stats.counts[c],
                mean: reg.stats.mean(c),
                var: reg.stats.variance(c),
                w: rows[reg.ids[c] as usize].clone(),
                ncc_positions: 0,
                ncc_agree: 0,
            })
            .collect();
        let (metrics, per) = compute(&inputs, MetricConvention::DEFAULT);
        assert_eq!(s.len(), 3);
        for (a, b) in s.iter().zip(&per.duality) {
            assert!((a - b.unwrap()).abs() < 1e-14, "{a} vs {b:?}");
        }
        let loss: f64 = reg.term(&w64).unwrap().unwrap().loss.to_scalar().unwrap();
        assert!((loss - metrics.duality_std.unwrap()).abs() < 1e-14, "{loss} vs {:?}", metrics.duality_std);
    }

    #[test]
    fn fewer_than_two_classes_give_no_term() {
        let (_, w) = setup();
        let classes = ClassSet {
            name: "t".into(),
            group_names: vec![],
            classes: vec![
                Class { id: 2, token: "2".into(), words: vec![], groups: vec![] },
                Class { id: 5, token: "5".into(), words: vec![], groups: vec![] },
            ],
            skipped: vec![],
        };
        let mut reg = Nc3Regularizer::new(&classes, 10, 4, Target::Same, Nc3Variant::Std);
        assert!(reg.term(w.as_tensor()).unwrap().is_none());
        reg.observe(&Tensor::ones((1, 2, 4), DType::F32, &Device::Cpu).unwrap(), &[vec![2, 3]]).unwrap();
        assert_eq!(reg.seen(), 1);
        assert!(reg.term(w.as_tensor()).unwrap().is_none());
    }
}
