//! Multi-head attention for inference, straight from the fused QKV projection.

use super::softmax::{MaskRows, softmax_row};
use super::{MIN_ROWS, SharedMut, contiguous_f32};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, bail};
use rayon::prelude::*;

/// Multi-head attention straight from the fused projection `qkv [B, T, 3D]` (Q, K, V side by
/// side) with an additive mask `[Bm, 1, Mq, T]`; returns the context `[B, T, D]` with heads
/// already merged. One task per (batch row, head) runs two single-threaded GEMMs on strided
/// views, so no head split/merge copies are made and small per-head products do not pay
/// multi-threading overhead.
pub struct FusedAttention {
    pub heads: usize,
    pub scale: f32,
}

impl CustomOp2 for FusedAttention {
    fn name(&self) -> &'static str {
        "fairnc-fused-attention"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = contiguous_f32(s1, l1, self.name())?;
        let mask = contiguous_f32(s2, l2, self.name())?;
        let (b, t, d3) = l1.shape().dims3()?;
        let h = self.heads;
        let Some(mask_rows) = MaskRows::new(b, t, l2.shape()).filter(|_| d3 % (3 * h) == 0) else {
            bail!("{}: qkv {:?} / mask {:?} do not fit {h} heads", self.name(), l1.shape(), l2.shape())
        };
        let dims = Dims { t, tp: t.max(MIN_ROWS), d: d3 / 3, dh: d3 / 3 / h };
        let inputs = Inputs { qkv, mask, mask_rows, dims };
        let mut out = vec![0f32; b * t * dims.d];
        let dst = SharedMut(out.as_mut_ptr());
        (0..b * h).into_par_iter().for_each_init(
            || Scratch::new(dims),
            |scratch, task| {
                let (bi, hi) = (task / h, task % h);
                let o = dst;
                // SAFETY: the block of `out` for (row bi, head hi) is written by this task alone.
                unsafe { self.one_head(&inputs, scratch, bi, hi, o.0) }
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((b, t, dims.d))))
    }
}

/// What every (row, head) task reads.
struct Inputs<'a> {
    /// `[B, T, 3D]`: Q, K and V side by side.
    qkv: &'a [f32],
    mask: &'a [f32],
    mask_rows: MaskRows,
    dims: Dims,
}

/// The sizes one (row, head) task works with.
#[derive(Clone, Copy)]
struct Dims {
    /// Tokens in the sequence.
    t: usize,
    /// Rows computed: GEMM takes other code paths for very small sizes, whose rounding
    /// differs; short sequences are therefore computed in zero-padded buffers of MIN_ROWS
    /// rows so that a text gets the same numbers alone as in a long batch.
    tp: usize,
    /// Model width (the size of each of Q, K and V per token).
    d: usize,
    /// Width of one head.
    dh: usize,
}

impl Dims {
    fn padded(&self) -> bool {
        self.t < MIN_ROWS
    }
}

/// Per-thread buffers, reused from task to task.
struct Scratch {
    scores: Vec<f32>,
    probs: Vec<f32>,
    /// Q, K and V of a short sequence, zero-padded to `tp` rows each.
    qkv_pad: Vec<f32>,
    /// The context of a short sequence, before its first `t` rows are copied out.
    out_pad: Vec<f32>,
}

impl Scratch {
    fn new(d: Dims) -> Self {
        Scratch {
            scores: vec![0f32; d.tp * d.tp],
            probs: vec![0f32; d.tp * d.tp],
            qkv_pad: vec![0f32; 3 * d.tp * d.dh],
            out_pad: vec![0f32; d.tp * d.dh],
        }
    }
}

/// A matrix inside a larger buffer: element (i, j) is at `ptr + i·row_stride + j·col_stride`.
#[derive(Clone, Copy)]
struct View<P> {
    ptr: P,
    row_stride: usize,
    col_stride: usize,
}

impl<P> View<P> {
    /// Rows of `row_stride` elements, columns adjacent.
    fn rows(ptr: P, row_stride: usize) -> Self {
        View { ptr, row_stride, col_stride: 1 }
    }
}

/// `dst = lhs · rhs` (`m×k` times `k×n`) on the calling thread: each (row, head) product is
/// small, and GEMM's own threads inside the task pool would only add overhead.
///
/// # Safety
/// Each view must lie inside its buffer for the given sizes, and no other thread may touch the
/// elements of `dst`.
unsafe fn matmul(m: usize, n: usize, k: usize, dst: View<*mut f32>, lhs: View<*const f32>, rhs: View<*const f32>) {
    let s = |x: usize| x as isize;
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.ptr,
            s(dst.col_stride),
            s(dst.row_stride),
            false,
            lhs.ptr,
            s(lhs.col_stride),
            s(lhs.row_stride),
            rhs.ptr,
            s(rhs.col_stride),
            s(rhs.row_stride),
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

impl FusedAttention {
    /// Attention of head `hi` over batch row `bi`, written into its columns of `out`
    /// (`[B, T, D]`, heads merged).
    ///
    /// # Safety
    /// `out` holds `B·T·D` elements, and no other thread writes this (row, head) block.
    unsafe fn one_head(&self, inputs: &Inputs, scratch: &mut Scratch, bi: usize, hi: usize, out: *mut f32) {
        let n = inputs.dims;
        let Dims { t, tp, d, dh } = n;
        let (q, k, v, rs) = head_inputs(inputs.qkv, n, &mut scratch.qkv_pad, bi * t * 3 * d + hi * dh);
        // SAFETY: the views stay inside their buffers (tp rows of stride `rs`, dh columns);
        // `scores`/`probs` are tp×tp.
        unsafe {
            // scores = Q · Kᵀ (K read with rows and columns swapped)
            let k_t = View { ptr: k, row_stride: 1, col_stride: rs };
            matmul(tp, tp, dh, View::rows(scratch.scores.as_mut_ptr(), tp), View::rows(q, rs), k_t);
        }
        for i in 0..t {
            let m_off = inputs.mask_rows.offset(bi, i);
            softmax_row(
                &scratch.scores[i * tp..i * tp + t],
                &inputs.mask[m_off..m_off + t],
                self.scale,
                &mut scratch.probs[i * tp..i * tp + t],
            );
        }
        let probs = View::rows(scratch.probs.as_ptr(), tp);
        // SAFETY: as above; the output block is this task's alone (the caller's promise).
        unsafe {
            let block = out.add(bi * t * d + hi * dh);
            if !n.padded() {
                // context block = P · V, written in place
                matmul(t, dh, t, View::rows(block, d), probs, View::rows(v, rs));
            } else {
                matmul(tp, dh, tp, View::rows(scratch.out_pad.as_mut_ptr(), dh), probs, View::rows(v, rs));
                for i in 0..t {
                    std::ptr::copy_nonoverlapping(scratch.out_pad.as_ptr().add(i * dh), block.add(i * d), dh);
                }
            }
        }
    }
}

/// Q, K and V of one (row, head), as pointers and their common row stride: views into `qkv`
/// itself, or for a short sequence copies in the zero-padded `qkv_pad`. `base` is the offset of
/// the head's first Q element.
fn head_inputs(qkv: &[f32], n: Dims, qkv_pad: &mut [f32], base: usize) -> (*const f32, *const f32, *const f32, usize) {
    let Dims { t, tp, d, dh } = n;
    if !n.padded() {
        return (qkv[base..].as_ptr(), qkv[base + d..].as_ptr(), qkv[base + 2 * d..].as_ptr(), 3 * d);
    }
    for part in 0..3 {
        for i in 0..t {
            let src = base + part * d + i * 3 * d;
            qkv_pad[(part * tp + i) * dh..(part * tp + i + 1) * dh].copy_from_slice(&qkv[src..src + dh]);
        }
    }
    let p = qkv_pad.as_ptr();
    // SAFETY: offsets within the 3·tp·dh buffer.
    unsafe { (p, p.add(tp * dh), p.add(2 * tp * dh), dh) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::test_util::{max_diff, randn};

    #[test]
    fn fused_attention_matches_composed_attention() {
        let (b, t, h, dh) = (3, 7, 4, 5);
        let d = h * dh;
        let qkv = randn(&[b, t, 3 * d], 1);
        let split = |i: usize| {
            qkv.narrow(2, i * d, d)
                .unwrap()
                .reshape((b, t, h, dh))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let (q, k, v) = (split(0), split(1), split(2));
        for mask in [randn(&[b, 1, 1, t], 2), randn(&[1, 1, t, t], 3)] {
            let scores = (q.matmul(&k.t().unwrap()).unwrap() * 0.3).unwrap().broadcast_add(&mask).unwrap();
            let p = candle_nn::ops::softmax(&scores, candle_core::D::Minus1).unwrap();
            let want = p.matmul(&v).unwrap().transpose(1, 2).unwrap().reshape((b, t, d)).unwrap();
            let got = qkv.apply_op2_no_bwd(&mask, &FusedAttention { heads: h, scale: 0.3 }).unwrap();
            assert!(max_diff(&got, &want) < 1e-5);
        }
    }

    /// A sequence's attention output is bit-for-bit the same whatever padding follows it.
    #[test]
    fn fused_attention_ignores_padding_exactly() {
        use candle_core::{DType, Device, Tensor};
        for (h, dh) in [(4usize, 8usize), (12, 32)] {
            let d = h * dh;
            for t in [5usize, 11, 16, 20, 33, 50] {
                for big in [t, 30, 40, 64, 128].into_iter().filter(|&b| b >= t) {
                    let qkv = randn(&[1, big, 3 * d], 3);
                    let ms = Tensor::zeros((1, 1, 1, t), DType::F32, &Device::Cpu).unwrap();
                    let ml: Vec<f32> = (0..big).map(|j| if j < t { 0.0 } else { -1e9 }).collect();
                    let ml = Tensor::from_vec(ml, (1, 1, 1, big), &Device::Cpu).unwrap();
                    let op = FusedAttention { heads: h, scale: 0.3 };
                    let a: Vec<f32> = qkv
                        .narrow(1, 0, t)
                        .unwrap()
                        .contiguous()
                        .unwrap()
                        .apply_op2_no_bwd(&ms, &op)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap();
                    let b: Vec<f32> = qkv
                        .apply_op2_no_bwd(&ml, &op)
                        .unwrap()
                        .narrow(1, 0, t)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap();
                    assert!(a == b, "h={h} dh={dh} t={t} padded to {big}");
                }
            }
        }
    }
}
