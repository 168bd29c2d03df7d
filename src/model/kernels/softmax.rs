//! The attention softmax `softmax(scores · scale + mask)` over the last dimension, forward and
//! backward.

use super::{ROW_CHUNK, contiguous_f32, exp_approx};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// One softmax row: `probs = softmax(scores · scale + mask)`.
///
/// Element j always accumulates into lane j mod 8 and the lanes are combined in a fixed
/// order, so a row's result does not depend on how much padding follows it (masked entries
/// add exact zeros): the same text gives the same numbers in any batch.
#[inline(always)]
fn softmax_row_kernel(scores: &[f32], mask: &[f32], scale: f32, out: &mut [f32]) {
    const L: usize = 8;
    let n = out.len();
    let mut maxv = [f32::NEG_INFINITY; L];
    for (j, o) in out.iter_mut().enumerate() {
        let v = scores[j].mul_add(scale, mask[j]);
        *o = v;
        let l = j % L;
        maxv[l] = if v > maxv[l] { v } else { maxv[l] };
    }
    let max = maxv.iter().fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    let mut sumv = [0f32; L];
    let split = n - n % L;
    for o in out[..split].chunks_exact_mut(L) {
        for l in 0..L {
            let e = exp_approx(o[l] - max);
            o[l] = e;
            sumv[l] += e;
        }
    }
    for (l, o) in out[split..].iter_mut().enumerate() {
        let e = exp_approx(*o - max);
        *o = e;
        sumv[l] += e;
    }
    let sum = ((sumv[0] + sumv[1]) + (sumv[2] + sumv[3])) + ((sumv[4] + sumv[5]) + (sumv[6] + sumv[7]));
    let inv = 1.0 / sum;
    for o in out.iter_mut() {
        *o *= inv;
    }
}

multiversion!(pub(super) softmax_row, softmax_row_avx2, softmax_row_kernel, (scores: &[f32], mask: &[f32], scale: f32, out: &mut [f32]));

/// `softmax(scores · scale + mask)` for `scores [B, H, T, T]` and an additive mask
/// `[Bm, 1, Mq, T]` (`Bm` 1 or B, `Mq` 1 or T: padding or causal). The mask gets no gradient.
pub struct MaskedSoftmax {
    pub scale: f32,
}

/// Where the row of an additive attention mask `[Bm, 1, Mq, T]` (`Bm` 1 or B, `Mq` 1 or T:
/// padding or causal) for query `i` of batch row `bi` starts.
pub(super) struct MaskRows {
    t: usize,
    per_batch: bool,
    per_query: bool,
}

impl MaskRows {
    /// None when the mask does not fit a batch of `b` sequences of length `t`.
    pub(super) fn new(b: usize, t: usize, mask: &Shape) -> Option<Self> {
        let (bm, one, mq, mk) = mask.dims4().ok()?;
        let fits = one == 1 && mk == t && (bm == 1 || bm == b) && (mq == 1 || mq == t);
        fits.then_some(MaskRows { t, per_batch: bm != 1, per_query: mq != 1 })
    }

    pub(super) fn offset(&self, bi: usize, i: usize) -> usize {
        let rows_per_batch = if self.per_query { self.t } else { 1 };
        ((if self.per_batch { bi } else { 0 }) * rows_per_batch + if self.per_query { i } else { 0 }) * self.t
    }
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "fairnc-masked-softmax"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let scores = contiguous_f32(s1, l1, self.name())?;
        let mask = contiguous_f32(s2, l2, self.name())?;
        let (b, heads, tq, t) = l1.shape().dims4()?;
        let Some(rows) = MaskRows::new(b, t, l2.shape()).filter(|_| tq == t) else {
            bail!("{}: scores {:?} / mask {:?} do not fit", self.name(), l1.shape(), l2.shape())
        };
        let mut out = vec![0f32; scores.len()];
        if t == 0 {
            return Ok((CpuStorage::F32(out), l1.shape().clone()));
        }
        out.par_chunks_mut(ROW_CHUNK * t).enumerate().for_each(|(c, o)| {
            for (k, o) in o.chunks_exact_mut(t).enumerate() {
                let r = c * ROW_CHUNK + k;
                let m = rows.offset(r / (heads * t), r % t);
                softmax_row(&scores[r * t..(r + 1) * t], &mask[m..m + t], self.scale, o);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _scores: &Tensor,
        _mask: &Tensor,
        probs: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = probs.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxGrad { scale: self.scale })?;
        Ok((Some(g), None))
    }
}

/// `d scores = scale · p ⊙ (g − Σ_j g_j p_j)` row by row, from the probabilities and their gradient.
struct SoftmaxGrad {
    scale: f32,
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "fairnc-masked-softmax-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let p = contiguous_f32(s1, l1, self.name())?;
        let g = contiguous_f32(s2, l2, self.name())?;
        if l1.shape() != l2.shape() {
            bail!("{}: probabilities {:?} and gradient {:?} differ", self.name(), l1.shape(), l2.shape());
        }
        let t = l1.shape().dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; p.len()];
        out.par_chunks_mut(ROW_CHUNK * t).enumerate().for_each(|(c, o)| {
            let base = c * ROW_CHUNK * t;
            for (k, o) in o.chunks_exact_mut(t).enumerate() {
                let (p, g) = (&p[base + k * t..base + (k + 1) * t], &g[base + k * t..base + (k + 1) * t]);
                let dot: f32 = p.iter().zip(g).map(|(a, b)| a * b).sum();
                for ((o, &p), &g) in o.iter_mut().zip(p).zip(g) {
                    *o = self.scale * p * (g - dot);
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::test_util::{max_diff, randn};
    use candle_core::{D, Var};

    #[test]
    fn softmax_row_matches_reference() {
        for n in [1, 5, 8, 13, 64] {
            let scores: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.7).collect();
            let mask: Vec<f32> = (0..n).map(|i| if i % 4 == 3 { -1e9 } else { 0.1 * i as f32 }).collect();
            let mut got = vec![0f32; n];
            softmax_row(&scores, &mask, 0.5, &mut got);
            let v: Vec<f64> = scores.iter().zip(&mask).map(|(s, m)| *s as f64 * 0.5 + *m as f64).collect();
            let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = v.iter().map(|x| (x - max).exp()).sum();
            for (g, x) in got.iter().zip(&v) {
                assert!((*g as f64 - (x - max).exp() / sum).abs() < 1e-6, "n={n}");
            }
        }
    }

    /// Forward and gradient equal candle's composed softmax, for padding and causal masks.
    #[test]
    fn masked_softmax_and_its_gradient_match_composed_ops() {
        let (b, h, t) = (3, 2, 7);
        let up = randn(&[b, h, t, t], 11);
        for mask in [randn(&[b, 1, 1, t], 12), randn(&[1, 1, t, t], 13)] {
            let x = Var::from_tensor(&randn(&[b, h, t, t], 10)).unwrap();
            let want =
                candle_nn::ops::softmax(&(x.as_tensor() * 0.3).unwrap().broadcast_add(&mask).unwrap(), D::Minus1)
                    .unwrap();
            let got = x.as_tensor().apply_op2(&mask, MaskedSoftmax { scale: 0.3 }).unwrap();
            assert!(max_diff(&got, &want) < 1e-6);
            let gw = (want * &up).unwrap().sum_all().unwrap().backward().unwrap();
            let gg = (got * &up).unwrap().sum_all().unwrap().backward().unwrap();
            assert!(max_diff(gg.get(&x).unwrap(), gw.get(&x).unwrap()) < 1e-5);
        }
    }
}
