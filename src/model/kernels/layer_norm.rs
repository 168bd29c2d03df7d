//! Layer normalisation over the last dimension, forward and backward.

use super::{ROW_CHUNK, contiguous_f32};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// `(x − mean) / sqrt(var + eps) · w + b` per row of the last dimension (biased variance, as
/// PyTorch). Gradients reach `x`, `w` and `b`.
pub struct LayerNorm {
    pub eps: f32,
}

/// Mean and 1/std of one row, accumulated in f64.
#[inline(always)]
fn moments(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean) * (v as f64 - mean)).sum::<f64>() / n;
    (mean as f32, (1.0 / (var + eps as f64).sqrt()) as f32)
}

fn check(x: &Layout, w: &Layout, other: &Layout, what: &str) -> Result<usize> {
    let d = w.shape().elem_count();
    if x.shape().dims().last() != Some(&d)
        || w.shape().rank() != 1
        || d == 0
        || !other.shape().elem_count().is_multiple_of(d)
    {
        bail!("{what}: x {:?}, weight {:?}, {:?} do not fit", x.shape(), w.shape(), other.shape());
    }
    Ok(d)
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "fairnc-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, self.name())?;
        let w = contiguous_f32(s2, l2, self.name())?;
        let b = contiguous_f32(s3, l3, self.name())?;
        let d = check(l1, l2, l3, self.name())?;
        if b.len() != d {
            bail!("{}: bias {:?} does not fit {d} features", self.name(), l3.shape());
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(ROW_CHUNK * d).zip(x.par_chunks(ROW_CHUNK * d)).for_each(|(o, x)| {
            for (o, x) in o.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                let (mean, rstd) = moments(x, self.eps);
                for (((o, &x), &w), &b) in o.iter_mut().zip(x).zip(w).zip(b) {
                    *o = ((x - mean) * rstd).mul_add(w, b);
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = w.elem_count();
        let n = x.elem_count() / d;
        let all = x.apply_op3_no_bwd(w, &grad.contiguous()?, &LayerNormGrad { eps: self.eps })?;
        let dx = all.narrow(0, 0, n)?.reshape(x.shape())?;
        let dw = all.narrow(0, n, 1)?.reshape(d)?;
        let db = all.narrow(0, n + 1, 1)?.reshape(d)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// The three gradients in one `[N + 2, D]` tensor: rows 0..N are d x, row N is d w, row N+1
/// is d b. With x̂ the normalised row and ĝ = g ⊙ w:
/// d x = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)), d w = Σ_rows g ⊙ x̂, d b = Σ_rows g.
struct LayerNormGrad {
    eps: f32,
}

impl CustomOp3 for LayerNormGrad {
    fn name(&self) -> &'static str {
        "fairnc-layer-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, self.name())?;
        let w = contiguous_f32(s2, l2, self.name())?;
        let g = contiguous_f32(s3, l3, self.name())?;
        let d = check(l1, l2, l3, self.name())?;
        if g.len() != x.len() {
            bail!("{}: gradient {:?} does not match x {:?}", self.name(), l3.shape(), l1.shape());
        }
        let n = x.len() / d;
        let mut out = vec![0f32; (n + 2) * d];
        let (dx, dwb) = out.split_at_mut(n * d);
        // Per-chunk partial sums of d w and d b, added in chunk order below.
        let chunks = n.div_ceil(ROW_CHUNK);
        let mut partial = vec![0f32; chunks * 2 * d];
        dx.par_chunks_mut(ROW_CHUNK * d)
            .zip(x.par_chunks(ROW_CHUNK * d).zip(g.par_chunks(ROW_CHUNK * d)))
            .zip(partial.par_chunks_mut(2 * d))
            .for_each(|((dx, (x, g)), part)| {
                let (pw, pb) = part.split_at_mut(d);
                let mut xhat = vec![0f32; d];
                for ((dx, x), g) in dx.chunks_exact_mut(d).zip(x.chunks_exact(d)).zip(g.chunks_exact(d)) {
                    let (mean, rstd) = moments(x, self.eps);
                    let (mut sum_g, mut sum_gx) = (0f32, 0f32);
                    for j in 0..d {
                        let xh = (x[j] - mean) * rstd;
                        xhat[j] = xh;
                        let gh = g[j] * w[j];
                        sum_g += gh;
                        sum_gx += gh * xh;
                        pw[j] += g[j] * xh;
                        pb[j] += g[j];
                    }
                    let (mg, mgx) = (sum_g / d as f32, sum_gx / d as f32);
                    for j in 0..d {
                        dx[j] = rstd * (g[j] * w[j] - mg - xhat[j] * mgx);
                    }
                }
            });
        let (dw, db) = dwb.split_at_mut(d);
        for part in partial.chunks_exact(2 * d) {
            for j in 0..d {
                dw[j] += part[j];
                db[j] += part[d + j];
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((n + 2, d))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::test_util::{max_diff, randn};
    use candle_core::Var;

    #[test]
    fn layer_norm_and_its_gradients_match_composed_ops() {
        let (n, d) = (37, 24);
        let x = Var::from_tensor(&(randn(&[n, d], 1) * 3.0).unwrap()).unwrap();
        let w = Var::from_tensor(&randn(&[d], 2)).unwrap();
        let b = Var::from_tensor(&randn(&[d], 3)).unwrap();
        let up = randn(&[n, d], 4);
        let want = candle_nn::ops::layer_norm_slow(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5).unwrap();
        let got = x.as_tensor().apply_op3(w.as_tensor(), b.as_tensor(), LayerNorm { eps: 1e-5 }).unwrap();
        assert!(max_diff(&got, &want) < 1e-5);
        let gw = (want * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let gg = (got * &up).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &w, &b] {
            let (a, e) = (gg.get(v).unwrap(), gw.get(v).unwrap());
            let scale = e.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1.0);
            assert!(max_diff(a, e) / scale < 1e-5, "{:?}", v.shape());
        }
    }
}
