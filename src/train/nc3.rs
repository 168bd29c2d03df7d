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
use candle_core::{D, DType, Device, Tensor, Var};

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

    /// The class token ids, in class order (the order of [`Self::counts`] and of the rows
    /// [`Self::loss_and_grad`] takes).
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// n_c of every class.
    pub fn counts(&self) -> &[u64] {
        &self.stats.counts
    }

    /// μ_c of every class, row-major `[K·D]` (zeros for an unseen class).
    pub fn means(&self) -> Vec<f64> {
        (0..self.ids.len()).flat_map(|c| self.stats.mean(c)).collect()
    }

    /// The labelling of [`Self::observe`]: (class index, flat position `row · t + p`) of every
    /// labelled position of `rows` padded to length `t`.
    pub fn labelled_positions(&self, rows: &[Vec<u32>], t: usize) -> (Vec<usize>, Vec<u32>) {
        self.lookup.labelled_positions(rows, t)
    }

    /// Adds feature rows `feats` (`[N, D]`, row-major, already gathered at the positions of
    /// [`Self::labelled_positions`]) with their class indices, as [`Self::observe`] does. Checked
    /// first (labels, size, values), so a refused batch leaves the sums unchanged.
    pub fn add(&mut self, labels: &[usize], feats: &[f32]) -> Result<()> {
        let (k, d) = (self.ids.len(), self.stats.dim);
        if feats.len() != labels.len() * d {
            anyhow::bail!("{} feature values for {} labels of dimension {d}", feats.len(), labels.len());
        }
        if let Some(c) = labels.iter().find(|&&c| c >= k) {
            anyhow::bail!("class index {c} out of range (there are {k} classes)");
        }
        if let Some(x) = feats.iter().find(|x| !x.is_finite() || x.abs() as f64 >= MAX_FEATURE) {
            anyhow::bail!("feature value {x} is not finite or too large to accumulate");
        }
        self.stats.add(labels, feats)
    }

    /// The regularizer on the classifier `w [V, D]`, or None while fewer than two classes have
    /// been seen (the std needs two; K < 2 would give NaN).
    pub fn term(&self, w: &Tensor) -> Result<Option<Nc3Term>> {
        let Some(s) = self.alignments(w)? else { return Ok(None) };
        let k = s.dim(0)?;
        let loss = loss_of_alignments(&s, self.variant)?;
        Ok(Some(Nc3Term { loss: loss.to_dtype(w.dtype())?, classes: k }))
    }

    /// s_c = ⟨û_c, ŵ_c⟩ `[K]` (f64, differentiable in `w`) over the seen classes, or None while
    /// fewer than two have been seen.
    pub fn alignments(&self, w: &Tensor) -> Result<Option<Tensor>> {
        let seen = self.seen_classes();
        if seen.len() < 2 {
            return Ok(None);
        }
        let dev = w.device();
        // ŵ_c: rows of the tied matrix, differentiable; computed in f64 for a precise gradient.
        let ids: Vec<u32> = seen.iter().map(|&c| self.ids[c]).collect();
        let rows = w.index_select(&Tensor::new(ids.as_slice(), dev)?, 0)?.to_dtype(DType::F64)?;
        Ok(Some(self.alignments_of_rows(&seen, &rows)?))
    }

    /// s_c `[K']` of the `seen` classes given their classifier rows `[K', D]` (f64).
    fn alignments_of_rows(&self, seen: &[usize], rows: &Tensor) -> Result<Tensor> {
        let u = Tensor::from_vec(self.centred_unit_means(seen), (seen.len(), self.stats.dim), rows.device())?;
        alignments_of(&u, rows)
    }

    /// The term and its gradient with respect to the classifier rows of every class (`[K·D]`,
    /// f64, class order; what [`Self::term`] optimises, computed by the same code with the rows
    /// as the variable): (loss, gradient `[K·D]`, zero on the rows of unseen classes), or None
    /// while fewer than two classes have been seen.
    pub fn loss_and_grad(&self, rows: &[f64]) -> Result<Option<(f64, Vec<f64>)>> {
        let (k, d) = (self.ids.len(), self.stats.dim);
        check_rows(rows, k, d)?;
        let seen = self.seen_classes();
        if seen.len() < 2 {
            return Ok(None);
        }
        check_directions(rows, &seen, d, |c| format!("class {c} (token id {})", self.ids[c]))?;
        let picked: Vec<f64> = seen.iter().flat_map(|&c| rows[c * d..(c + 1) * d].iter().copied()).collect();
        let var = Var::from_tensor(&Tensor::from_vec(picked, (seen.len(), d), &Device::Cpu)?)?;
        let s = self.alignments_of_rows(&seen, var.as_tensor())?;
        let (loss, g) = value_and_grad(&var, &s, self.variant)?;
        let mut grad = vec![0.0; k * d];
        for (i, &c) in seen.iter().enumerate() {
            grad[c * d..(c + 1) * d].copy_from_slice(&g[i * d..(i + 1) * d]);
        }
        Ok(Some((loss, grad)))
    }

    /// Indices of the classes seen so far.
    fn seen_classes(&self) -> Vec<usize> {
        (0..self.ids.len()).filter(|&c| self.stats.counts[c] > 0).collect()
    }

    /// û_c of the `seen` classes, row-major `[K·D]`, as the metrics define them; constants in
    /// the gradient. A class at the global mean has no direction and contributes s_c = 0.
    fn centred_unit_means(&self, seen: &[usize]) -> Vec<f64> {
        let means: Vec<Vec<f64>> = seen.iter().map(|&c| self.stats.mean(c)).collect();
        let refs: Vec<&[f64]> = means.iter().map(Vec::as_slice).collect();
        centred_unit_rows(&refs, self.stats.dim)
    }
}

/// Features at or beyond this magnitude cannot be accumulated (the statistics' fixed-point
/// range, 2⁴⁰).
const MAX_FEATURE: f64 = (1u64 << 40) as f64;

/// û_c of `means` (one row per class), row-major, zero for a class at the global mean.
fn centred_unit_rows(means: &[&[f64]], d: usize) -> Vec<f64> {
    let centred = CentredMeans::new(means);
    (0..means.len()).flat_map(|c| centred.unit(c).unwrap_or_else(|| vec![0.0; d])).collect()
}

/// s_c = ⟨û_c, ŵ_c⟩ `[K]` from the unit means `u [K, D]` and the classifier rows `[K, D]`.
fn alignments_of(u: &Tensor, rows: &Tensor) -> Result<Tensor> {
    let norms = rows.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    let w_hat = rows.broadcast_div(&norms)?;
    Ok((w_hat * u)?.sum(D::Minus1)?)
}

/// The loss of the alignments `s [K]` (K ≥ 2).
fn loss_of_alignments(s: &Tensor, variant: Nc3Variant) -> Result<Tensor> {
    let k = s.dim(0)?;
    let mean = (s.sum_all()? / k as f64)?;
    Ok(match variant {
        // The sample std (n − 1), as in the paper and `collapse`'s `duality_std`.
        Nc3Variant::Std => (s.broadcast_sub(&mean)?.sqr()?.sum_all()? / (k - 1) as f64)?.sqrt()?,
        Nc3Variant::Mean => mean.neg()?,
    })
}

/// The loss of the alignments `s` (computed from `rows`) and its gradient in `rows`, row-major.
fn value_and_grad(rows: &Var, s: &Tensor, variant: Nc3Variant) -> Result<(f64, Vec<f64>)> {
    let loss = loss_of_alignments(s, variant)?;
    let grads = loss.backward()?;
    let g = match grads.get(rows.as_tensor()) {
        Some(g) => g.flatten_all()?.to_vec1::<f64>()?,
        None => vec![0.0; rows.as_tensor().elem_count()],
    };
    Ok((loss.to_scalar::<f64>()?, g))
}

fn check_rows(rows: &[f64], k: usize, d: usize) -> Result<()> {
    if rows.len() != k * d {
        anyhow::bail!("rows hold {} values, not {k} × {d}", rows.len());
    }
    if let Some(x) = rows.iter().find(|x| !x.is_finite()) {
        anyhow::bail!("rows hold a non-finite value {x}");
    }
    Ok(())
}

/// Refuses a zero row among the `used` classes: ŵ_c has no direction there (the loss would be NaN).
fn check_directions(rows: &[f64], used: &[usize], d: usize, name: impl Fn(usize) -> String) -> Result<()> {
    for &c in used {
        if rows[c * d..(c + 1) * d].iter().all(|&x| x == 0.0) {
            anyhow::bail!("the row of {} is zero, so it has no direction", name(c));
        }
    }
    Ok(())
}

/// The term for explicit class means `[K·D]` and classifier rows `[K·D]` (row-major, every class
/// counted as seen, K ≥ 2): (loss, gradient in the rows `[K·D]`), by the code of
/// [`Nc3Regularizer::term`].
pub fn loss_and_grad(means: &[f64], rows: &[f64], k: usize, d: usize, variant: Nc3Variant) -> Result<(f64, Vec<f64>)> {
    if k < 2 {
        anyhow::bail!("at least 2 classes are needed, not {k}");
    }
    if d == 0 {
        anyhow::bail!("the dimension must be at least 1");
    }
    if means.len() != k * d {
        anyhow::bail!("means hold {} values, not {k} × {d}", means.len());
    }
    if let Some(x) = means.iter().find(|x| !x.is_finite()) {
        anyhow::bail!("means hold a non-finite value {x}");
    }
    check_rows(rows, k, d)?;
    check_directions(rows, &(0..k).collect::<Vec<_>>(), d, |c| format!("class {c}"))?;
    let refs: Vec<&[f64]> = means.chunks_exact(d).collect();
    let u = Tensor::from_vec(centred_unit_rows(&refs, d), (k, d), &Device::Cpu)?;
    let var = Var::from_tensor(&Tensor::from_vec(rows.to_vec(), (k, d), &Device::Cpu)?)?;
    let s = alignments_of(&u, var.as_tensor())?;
    value_and_grad(&var, &s, variant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::words::{Class, ClassSet};

    /// One class per id, in no group.
    fn ungrouped(ids: &[u32]) -> ClassSet {
        ClassSet {
            name: "t".into(),
            group_names: vec![],
            classes: ids.iter().map(|&id| Class { id, token: id.to_string(), words: vec![], groups: vec![] }).collect(),
            skipped: vec![],
        }
    }

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
        let classes = ungrouped(&[2, 5]);
        let mut reg = Nc3Regularizer::new(&classes, 10, 4, Target::Same, Nc3Variant::Std);
        assert!(reg.term(w.as_tensor()).unwrap().is_none());
        reg.observe(&Tensor::ones((1, 2, 4), DType::F32, &Device::Cpu).unwrap(), &[vec![2, 3]]).unwrap();
        assert_eq!(reg.seen(), 1);
        assert!(reg.term(w.as_tensor()).unwrap().is_none());
    }

    /// Central differences (f64) of the loss at `x` in every coordinate.
    fn finite_differences(x: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
        let eps = 1e-6;
        (0..x.len())
            .map(|i| {
                let (mut up, mut down) = (x.to_vec(), x.to_vec());
                up[i] += eps;
                down[i] -= eps;
                (f(&up) - f(&down)) / (2.0 * eps)
            })
            .collect()
    }

    fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len());
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!((a - b).abs() <= tol * b.abs().max(1.0), "{what} [{i}]: {a} vs {b}");
        }
    }

    /// The regularizer's rows and their gradient: the rows of the classes in class order.
    fn class_rows(reg: &Nc3Regularizer, w: &Tensor) -> Vec<f64> {
        let w: Vec<Vec<f64>> = w.to_dtype(DType::F64).unwrap().to_vec2().unwrap();
        reg.ids.iter().flat_map(|&id| w[id as usize].clone()).collect()
    }

    #[test]
    fn loss_and_grad_is_the_term_and_its_gradient() {
        let (reg, w) = setup();
        let w64 = Var::from_tensor(&w.as_tensor().to_dtype(DType::F64).unwrap()).unwrap();
        let term = reg.term(w64.as_tensor()).unwrap().unwrap();
        let want: f64 = term.loss.to_scalar().unwrap();
        let g: Vec<Vec<f64>> = term.loss.backward().unwrap().get(w64.as_tensor()).unwrap().to_vec2().unwrap();
        let rows = class_rows(&reg, w64.as_tensor());
        let (loss, grad) = reg.loss_and_grad(&rows).unwrap().unwrap();
        assert_eq!(loss, want);
        let want_grad: Vec<f64> = reg.ids.iter().flat_map(|&id| g[id as usize].clone()).collect();
        assert_eq!(grad, want_grad);
        let fd = finite_differences(&rows, |r| reg.loss_and_grad(r).unwrap().unwrap().0);
        assert_close(&grad, &fd, 1e-7, "gradient vs central differences");
    }

    #[test]
    fn unseen_classes_get_no_gradient_and_two_are_needed() {
        let (_, w) = setup();
        let classes = ungrouped(&[2, 5, 7]);
        let mut reg = Nc3Regularizer::new(&classes, 10, 4, Target::Next, Nc3Variant::Mean);
        let rows = class_rows(&reg, w.as_tensor());
        let h = Tensor::new(&[[[1f32, 2., 3., 4.], [0.5, -1., 2., 0.], [3., 1., -2., 1.]]], &Device::Cpu).unwrap();
        // Next: position 0 is labelled 2, position 1 is labelled 7, the last has no next token.
        assert_eq!(reg.labelled_positions(&[vec![9, 2, 7]], 3), (vec![0, 2], vec![0, 1]));
        reg.observe(&h.narrow(1, 0, 1).unwrap(), &[vec![9, 2]]).unwrap();
        assert_eq!(reg.seen(), 1);
        assert!(reg.loss_and_grad(&rows).unwrap().is_none());
        reg.observe(&h, &[vec![9, 2, 7]]).unwrap();
        assert_eq!(reg.counts(), &[2, 0, 1]);
        let (loss, grad) = reg.loss_and_grad(&rows).unwrap().unwrap();
        assert!(loss.is_finite());
        assert!(grad[4..8].iter().all(|&x| x == 0.0), "class 5 is unseen: {grad:?}");
        assert!(grad[..4].iter().any(|&x| x != 0.0) && grad[8..].iter().any(|&x| x != 0.0));
        let fd = finite_differences(&rows, |r| reg.loss_and_grad(r).unwrap().unwrap().0);
        assert_close(&grad, &fd, 1e-7, "gradient vs central differences");
        // A refused batch leaves the sums as they were.
        let means = reg.means();
        assert!(reg.add(&[0], &[1.0, f32::NAN, 0.0, 0.0]).is_err());
        assert!(reg.add(&[3], &[1.0, 0.0, 0.0, 0.0]).is_err());
        assert_eq!(reg.counts(), &[2, 0, 1]);
        assert_eq!(reg.means(), means);
    }

    #[test]
    fn explicit_means_give_the_regularizer_value_and_a_checked_gradient() {
        let (reg, w) = setup();
        let rows = class_rows(&reg, w.as_tensor());
        let means = reg.means();
        for variant in [Nc3Variant::Std, Nc3Variant::Mean] {
            let reg = Nc3Regularizer { variant, ..setup().0 };
            let (want, want_grad) = reg.loss_and_grad(&rows).unwrap().unwrap();
            let (loss, grad) = loss_and_grad(&means, &rows, 3, 4, variant).unwrap();
            assert!((loss - want).abs() < 1e-14, "{variant:?}: {loss} vs {want}");
            assert_close(&grad, &want_grad, 1e-12, "gradient vs the regularizer's");
            let fd = finite_differences(&rows, |r| loss_and_grad(&means, r, 3, 4, variant).unwrap().0);
            assert_close(&grad, &fd, 1e-7, "gradient vs central differences");
        }
        assert!(loss_and_grad(&means[..4], &rows[..4], 1, 4, Nc3Variant::Std).is_err());
        assert!(loss_and_grad(&means, &rows[..8], 3, 4, Nc3Variant::Std).is_err());
        let mut zero = rows.clone();
        zero[4..8].fill(0.0);
        assert!(loss_and_grad(&means, &zero, 3, 4, Nc3Variant::Std).is_err());
    }
}
