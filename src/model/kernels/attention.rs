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
        let d = d3 / 3;
        let dh = d / h;
        let mut out = vec![0f32; b * t * d];
        let dst = SharedMut(out.as_mut_ptr());
        // GEMM takes other code paths for very small sizes, whose rounding differs; short
        // sequences are therefore computed in zero-padded buffers of MIN_ROWS rows so that a
        // text gets the same numbers alone as in a long batch.
        let tp = t.max(MIN_ROWS);
        (0..b * h).into_par_iter().for_each_init(
            || (vec![0f32; tp * tp], vec![0f32; tp * tp], vec![0f32; 3 * tp * dh], vec![0f32; tp * dh]),
            |(scores, probs, qkv_pad, out_pad), task| {
                let (bi, hi) = (task / h, task % h);
                let base = bi * t * d3 + hi * dh;
                // (pointer, row stride) of Q, K and V for this (row, head).
                let (q, k, v, rs) = if t >= MIN_ROWS {
                    (qkv[base..].as_ptr(), qkv[base + d..].as_ptr(), qkv[base + 2 * d..].as_ptr(), d3)
                } else {
                    for part in 0..3 {
                        for i in 0..t {
                            let src = base + part * d + i * d3;
                            qkv_pad[(part * tp + i) * dh..(part * tp + i + 1) * dh]
                                .copy_from_slice(&qkv[src..src + dh]);
                        }
                    }
                    let p = qkv_pad.as_ptr();
                    // SAFETY: offsets within the 3·tp·dh buffer.
                    unsafe { (p, p.add(tp * dh), p.add(2 * tp * dh), dh) }
                };
                // SAFETY: the views stay inside their buffers (tp rows of stride `rs`, dh
                // columns); `scores`/`probs` are tp×tp; this task alone writes its output block.
                unsafe {
                    // scores = Q · Kᵀ
                    gemm::gemm(
                        tp,
                        tp,
                        dh,
                        scores.as_mut_ptr(),
                        1,
                        tp as isize,
                        false,
                        q,
                        1,
                        rs as isize,
                        k,
                        rs as isize,
                        1,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                for i in 0..t {
                    let m_off = mask_rows.offset(bi, i);
                    softmax_row(
                        &scores[i * tp..i * tp + t],
                        &mask[m_off..m_off + t],
                        self.scale,
                        &mut probs[i * tp..i * tp + t],
                    );
                }
                let o = dst;
                unsafe {
                    if t >= MIN_ROWS {
                        // context block = P · V, written in place
                        gemm::gemm(
                            t,
                            dh,
                            t,
                            o.0.add(bi * t * d + hi * dh),
                            1,
                            d as isize,
                            false,
                            probs.as_ptr(),
                            1,
                            tp as isize,
                            v,
                            1,
                            rs as isize,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    } else {
                        gemm::gemm(
                            tp,
                            dh,
                            tp,
                            out_pad.as_mut_ptr(),
                            1,
                            dh as isize,
                            false,
                            probs.as_ptr(),
                            1,
                            tp as isize,
                            v,
                            1,
                            rs as isize,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                        for i in 0..t {
                            std::ptr::copy_nonoverlapping(
                                out_pad.as_ptr().add(i * dh),
                                o.0.add(bi * t * d + i * d + hi * dh),
                                dh,
                            );
                        }
                    }
                }
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((b, t, d))))
    }
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
