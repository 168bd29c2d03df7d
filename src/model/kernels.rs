//! CPU inference kernels: exact GELU, attention from the fused QKV projection (scaled,
//! masked softmax inside), and linear layers with the bias folded into the GEMM. candle's versions call scalar libm `erf`/`exp` per
//! element and materialise every intermediate; these fuse the passes and use branch-free
//! polynomial approximations (errors ~1e-7, tested against f64) that the compiler vectorises,
//! with an AVX2+FMA build chosen at run time.
//!
//! They have no backward pass: [`super::layers`] uses them only when no gradient is needed
//! and the tensor lives on the CPU.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, bail};
use rayon::prelude::*;

/// e^x for x ≤ 0 (and moderately positive x): Cephes-style range reduction and a degree-6
/// polynomial. Inputs below −87 flush to 0.
#[inline(always)]
fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E).round();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p.mul_add(r, 1.398_199_9e-3);
    let p = p.mul_add(r, 8.333_452e-3);
    let p = p.mul_add(r, 4.166_579_6e-2);
    let p = p.mul_add(r, 1.666_666_5e-1);
    let p = p.mul_add(r, 5.000_000_1e-1);
    let y = (p * r * r) + r + 1.0;
    // Scale by 2^n through the exponent bits.
    let bits = ((n as i32 + 127) as u32) << 23;
    y * f32::from_bits(bits)
}

/// erf(x) by Eigen's rational approximation on [−4, 4] (|error| < 2e-7).
#[inline(always)]
fn erf_approx(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p.mul_add(x2, 2.770_681_4e-8);
    p = p.mul_add(x2, -2.101_024e-6);
    p = p.mul_add(x2, -5.692_506_4e-5);
    p = p.mul_add(x2, -7.349_906_3e-4);
    p = p.mul_add(x2, -2.954_600_6e-3);
    p = p.mul_add(x2, -1.609_603_3e-2);
    let p = x * p;
    let mut q = -1.456_607_2e-5_f32;
    q = q.mul_add(x2, -2.133_740_6e-4);
    q = q.mul_add(x2, -1.682_827e-3);
    q = q.mul_add(x2, -7.373_329_2e-3);
    q = q.mul_add(x2, -1.426_474e-2);
    p / q
}

#[inline(always)]
fn gelu_erf_kernel(src: &[f32], dst: &mut [f32]) {
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = 0.5 * x * (1.0 + erf_approx(x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

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

macro_rules! multiversion {
    ($name:ident, $avx:ident, $kernel:ident, ($($arg:ident : $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx($($arg: $ty),*) {
            $kernel($($arg),*)
        }

        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU supports the features the function was compiled for.
                return unsafe { $avx($($arg),*) };
            }
            $kernel($($arg),*)
        }
    };
}

multiversion!(gelu_erf_chunk, gelu_erf_chunk_avx2, gelu_erf_kernel, (src: &[f32], dst: &mut [f32]));
multiversion!(softmax_row, softmax_row_avx2, softmax_row_kernel, (scores: &[f32], mask: &[f32], scale: f32, out: &mut [f32]));

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("{what}: input must be contiguous")
    };
    match storage {
        CpuStorage::F32(v) => Ok(&v[start..end]),
        _ => bail!("{what}: input must be f32"),
    }
}

/// Exact-erf GELU (BERT's "gelu").
pub struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "fairnc-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout, self.name())?;
        let mut dst = vec![0f32; src.len()];
        const CHUNK: usize = 1 << 14;
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(d, s)| gelu_erf_chunk(s, d));
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

/// Below this many rows GEMM switches to special small-size paths with different rounding.
const MIN_ROWS: usize = 32;

/// A raw pointer that tasks writing disjoint parts of one buffer may share.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: every task writes a disjoint set of elements (see the callers).
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

fn threads() -> gemm::Parallelism {
    match rayon::current_num_threads() {
        1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    }
}

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
        let (bm, one, mq, mk) = l2.shape().dims4()?;
        let h = self.heads;
        if d3 % (3 * h) != 0 || one != 1 || mk != t || !(bm == 1 || bm == b) || !(mq == 1 || mq == t) {
            bail!("{}: qkv {:?} / mask {:?} do not fit {h} heads", self.name(), l1.shape(), l2.shape());
        }
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
                            qkv_pad[(part * tp + i) * dh..(part * tp + i + 1) * dh].copy_from_slice(&qkv[src..src + dh]);
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
                    gemm::gemm(tp, tp, dh, scores.as_mut_ptr(), 1, tp as isize, false,
                        q, 1, rs as isize, k, rs as isize, 1, 0.0, 1.0, false, false, false, gemm::Parallelism::None);
                }
                for i in 0..t {
                    let m_off = ((if bm == 1 { 0 } else { bi }) * mq + if mq == 1 { 0 } else { i }) * t;
                    softmax_row(&scores[i * tp..i * tp + t], &mask[m_off..m_off + t], self.scale, &mut probs[i * tp..i * tp + t]);
                }
                let o = dst;
                unsafe {
                    if t >= MIN_ROWS {
                        // context block = P · V, written in place
                        gemm::gemm(t, dh, t, o.0.add(bi * t * d + hi * dh), 1, d as isize, false,
                            probs.as_ptr(), 1, tp as isize, v, 1, rs as isize, 0.0, 1.0, false, false, false, gemm::Parallelism::None);
                    } else {
                        gemm::gemm(tp, dh, tp, out_pad.as_mut_ptr(), 1, dh as isize, false,
                            probs.as_ptr(), 1, tp as isize, v, 1, rs as isize, 0.0, 1.0, false, false, false, gemm::Parallelism::None);
                        for i in 0..t {
                            std::ptr::copy_nonoverlapping(out_pad.as_ptr().add(i * dh), o.0.add(bi * t * d + i * d + hi * dh), dh);
                        }
                    }
                }
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((b, t, d))))
    }
}

/// `x · W + b` in one GEMM whose destination starts as the broadcast bias. `W` is either a
/// PyTorch `Linear` weight `[out, in]` (`transposed`) or a GPT-2 `Conv1D` weight `[in, out]`.
pub struct LinearBias {
    pub transposed: bool,
}

impl CustomOp3 for LinearBias {
    fn name(&self) -> &'static str {
        "fairnc-linear"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
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
            gemm::gemm(gemm_rows, dout, din, out.as_mut_ptr(), 1, dout as isize, true,
                x.as_ptr(), 1, din as isize, w.as_ptr(), w_cs, w_rs, 1.0, 1.0, false, false, false, threads());
        }
        out.truncate(rows * dout);
        let mut shape = dims.to_vec();
        *shape.last_mut().unwrap() = dout;
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_f64_to_float_precision() {
        let mut worst: f64 = 0.0;
        for i in 0..200_000 {
            let x = -87.0 + 95.0 * i as f32 / 200_000.0;
            let want = (x as f64).exp();
            let got = exp_approx(x) as f64;
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 5e-7, "relative error {worst}");
        assert_eq!(exp_approx(-1000.0), exp_approx(-87.0));
        assert!(exp_approx(-1e9) < 1e-37);
    }

    #[test]
    fn gelu_matches_f64_erf() {
        let mut worst: f64 = 0.0;
        for i in 0..200_000 {
            let x = -12.0 + 24.0 * i as f32 / 200_000.0;
            let xd = x as f64;
            let want = 0.5 * xd * (1.0 + statrs::function::erf::erf(xd / std::f64::consts::SQRT_2));
            let mut got = [0f32];
            gelu_erf_chunk(&[x], &mut got);
            worst = worst.max((got[0] as f64 - want).abs() / want.abs().max(1.0));
        }
        assert!(worst < 1e-6, "error {worst}");
    }

    fn randn(shape: &[usize], seed: u64) -> candle_core::Tensor {
        let mut rng = crate::util::rng::SplitMix::new(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
        candle_core::Tensor::from_vec(v, shape, &candle_core::Device::Cpu).unwrap()
    }

    fn max_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn fused_attention_matches_composed_attention() {
        let (b, t, h, dh) = (3, 7, 4, 5);
        let d = h * dh;
        let qkv = randn(&[b, t, 3 * d], 1);
        let split = |i: usize| qkv.narrow(2, i * d, d).unwrap().reshape((b, t, h, dh)).unwrap().transpose(1, 2).unwrap().contiguous().unwrap();
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
                    let a: Vec<f32> = qkv.narrow(1, 0, t).unwrap().contiguous().unwrap().apply_op2_no_bwd(&ms, &op).unwrap().flatten_all().unwrap().to_vec1().unwrap();
                    let b: Vec<f32> = qkv.apply_op2_no_bwd(&ml, &op).unwrap().narrow(1, 0, t).unwrap().flatten_all().unwrap().to_vec1().unwrap();
                    assert!(a == b, "h={h} dh={dh} t={t} padded to {big}");
                }
            }
        }
    }

    #[test]
    fn linear_rows_do_not_depend_on_the_batch() {
        for (k, n) in [(32usize, 96usize), (64, 32), (384, 1152), (1536, 384)] {
            let x = randn(&[50, k], 7);
            let w = randn(&[n, k], 8);
            let b = randn(&[n], 9);
            let op = LinearBias { transposed: true };
            let all: Vec<Vec<f32>> = x.apply_op3_no_bwd(&w, &b, &op).unwrap().to_vec2().unwrap();
            for m in 1..50 {
                let part: Vec<Vec<f32>> = x.narrow(0, 0, m).unwrap().apply_op3_no_bwd(&w, &b, &op).unwrap().to_vec2().unwrap();
                assert!(part.iter().zip(&all).all(|(p, a)| p == a), "k={k} n={n} m={m}");
            }
        }
    }

    #[test]
    fn linear_with_bias_matches_matmul() {
        let x = randn(&[2, 3, 6], 4);
        let b = randn(&[5], 5);
        let w = randn(&[5, 6], 6);
        let want = x.reshape((6, 6)).unwrap().matmul(&w.t().unwrap()).unwrap().broadcast_add(&b).unwrap().reshape((2, 3, 5)).unwrap();
        let got = x.apply_op3_no_bwd(&w, &b, &LinearBias { transposed: true }).unwrap();
        assert!(max_diff(&got, &want) < 1e-5);
        let wt = w.t().unwrap().contiguous().unwrap();
        let got = x.apply_op3_no_bwd(&wt, &b, &LinearBias { transposed: false }).unwrap();
        assert!(max_diff(&got, &want) < 1e-5);
    }

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

}
