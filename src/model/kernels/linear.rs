//! Linear layers with the bias folded into the GEMM, forward and backward.

use super::{MIN_ROWS, contiguous_f32, threads};
use candle_core::{CpuStorage, CustomOp1, CustomOp3, D, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// `x · W + b` in one GEMM whose destination starts as the broadcast bias. `W` is either a
/// PyTorch `Linear` weight `[out, in]` (`transposed`) or a GPT-2 `Conv1D` weight `[in, out]`.
pub struct LinearBias {
    pub transposed: bool,
}

impl CustomOp3 for LinearBias {
    fn name(&self) -> &'static str {
        "fairnc-linear"
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
        let bias = contiguous_f32(s3, l3, self.name())?;
        let (r, c) = l2.shape().dims2()?;
        let (din, dout) = if self.transposed { (c, r) } else { (r, c) };
        let dims = l1.shape().dims();
        if dims.last() != Some(&din) || bias.len() != dout {
            bail!("{}: x {:?}, w {:?}, b {:?} do not fit", self.name(), l1.shape(), l2.shape(), l3.shape());
        }
        let rows = x.len() / din;
        // Tiny inputs are padded to MIN_ROWS zero rows: GEMM's small-size paths round
        // differently, and a row must come out the same in any batch.
        let padded;
        let (x, gemm_rows) = if rows < MIN_ROWS {
            let mut p = x.to_vec();
            p.resize(MIN_ROWS * din, 0.0);
            padded = p;
            (padded.as_slice(), MIN_ROWS)
        } else {
            (x, rows)
        };
        let mut out = Vec::with_capacity(gemm_rows * dout);
        for _ in 0..gemm_rows {
            out.extend_from_slice(bias);
        }
        // Element (i, j) of W as the right-hand side [din, dout]: W[j, i] or W[i, j].
        let (w_cs, w_rs) = if self.transposed { (din as isize, 1) } else { (1, dout as isize) };
        // SAFETY: all three buffers have the sizes checked above.
        unsafe {
            gemm::gemm(
                gemm_rows,
                dout,
                din,
                out.as_mut_ptr(),
                1,
                dout as isize,
                true,
                x.as_ptr(),
                1,
                din as isize,
                w.as_ptr(),
                w_cs,
                w_rs,
                1.0,
                1.0,
                false,
                false,
                false,
                threads(),
            );
        }
        out.truncate(rows * dout);
        let mut shape = dims.to_vec();
        *shape.last_mut().unwrap() = dout;
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // Detached: products of the tracked inputs would carry the forward graph into the
        // gradients (and from there into the optimizer state, step after step).
        let (x, w) = (x.detach(), w.detach());
        let din = x.dim(D::Minus1)?;
        let rows = x.elem_count() / din;
        let dout = grad.dim(D::Minus1)?;
        let g = grad.contiguous()?.reshape((rows, dout))?;
        let x2 = x.reshape((rows, din))?;
        let (dx, dw) = if self.transposed {
            (g.matmul(&w)?, g.t()?.matmul(&x2)?)
        } else {
            (g.matmul(&w.t()?)?, x2.t()?.matmul(&g)?)
        };
        let db = g.apply_op1_no_bwd(&ColumnSum)?;
        Ok((Some(dx.reshape(x.shape())?), Some(dw), Some(db)))
    }
}

/// Sums of the columns of a `[rows, cols]` matrix, each added top to bottom.
struct ColumnSum;

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "fairnc-column-sum"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let m = contiguous_f32(storage, layout, self.name())?;
        let (rows, cols) = layout.shape().dims2()?;
        const BLOCK: usize = 64;
        let mut out = vec![0f32; cols];
        out.par_chunks_mut(BLOCK).enumerate().for_each(|(c, o)| {
            let start = c * BLOCK;
            for r in 0..rows {
                let row = &m[r * cols + start..r * cols + start + o.len()];
                for (o, v) in o.iter_mut().zip(row) {
                    *o += v;
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from(cols)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::test_util::{max_diff, randn};

    #[test]
    fn linear_rows_do_not_depend_on_the_batch() {
        for (k, n) in [(32usize, 96usize), (64, 32), (384, 1152), (1536, 384)] {
            let x = randn(&[50, k], 7);
            let w = randn(&[n, k], 8);
            let b = randn(&[n], 9);
            let op = LinearBias { transposed: true };
            let all: Vec<Vec<f32>> = x.apply_op3_no_bwd(&w, &b, &op).unwrap().to_vec2().unwrap();
            for m in 1..50 {
                let part: Vec<Vec<f32>> =
                    x.narrow(0, 0, m).unwrap().apply_op3_no_bwd(&w, &b, &op).unwrap().to_vec2().unwrap();
                assert!(part.iter().zip(&all).all(|(p, a)| p == a), "k={k} n={n} m={m}");
            }
        }
    }

    #[test]
    fn linear_with_bias_matches_matmul() {
        let x = randn(&[2, 3, 6], 4);
        let b = randn(&[5], 5);
        let w = randn(&[5, 6], 6);
        let want = x
            .reshape((6, 6))
            .unwrap()
            .matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap()
            .reshape((2, 3, 5))
            .unwrap();
        let got = x.apply_op3_no_bwd(&w, &b, &LinearBias { transposed: true }).unwrap();
        assert!(max_diff(&got, &want) < 1e-5);
        let wt = w.t().unwrap().contiguous().unwrap();
        let got = x.apply_op3_no_bwd(&wt, &b, &LinearBias { transposed: false }).unwrap();
        assert!(max_diff(&got, &want) < 1e-5);
    }

    #[test]
    fn linear_gradients_match_matmul() {
        let x = candle_core::Var::from_tensor(&randn(&[2, 40, 6], 4)).unwrap();
        let w = candle_core::Var::from_tensor(&randn(&[5, 6], 6)).unwrap();
        let b = candle_core::Var::from_tensor(&randn(&[5], 5)).unwrap();
        let up = randn(&[2, 40, 5], 7);
        let composed = |w: &Tensor| {
            x.as_tensor()
                .reshape((80, 6))
                .unwrap()
                .matmul(w)
                .unwrap()
                .broadcast_add(b.as_tensor())
                .unwrap()
                .reshape((2, 40, 5))
                .unwrap()
        };
        let loss = |y: Tensor| (y * &up).unwrap().sum_all().unwrap().backward().unwrap();
        for transposed in [true, false] {
            let want = loss(composed(&w.as_tensor().t().unwrap()));
            let wt = if transposed { w.as_tensor().clone() } else { w.as_tensor().t().unwrap().contiguous().unwrap() };
            let got = loss(x.as_tensor().apply_op3(&wt, b.as_tensor(), LinearBias { transposed }).unwrap());
            assert!(max_diff(got.get(&x).unwrap(), want.get(&x).unwrap()) < 1e-4);
            assert!(max_diff(got.get(&b).unwrap(), want.get(&b).unwrap()) < 1e-4);
            // Untransposed, the weight's gradient also passes back through the copy.
            assert!(max_diff(got.get(&w).unwrap(), want.get(&w).unwrap()) < 1e-4);
        }
    }
}
