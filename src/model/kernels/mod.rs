//! CPU kernels for f32 tensors: exact GELU, layer normalisation, the scaled masked softmax,
//! attention from the fused QKV projection, and linear layers with the bias folded into the
//! GEMM. candle's versions call scalar libm `erf`/`exp` per element and materialise every
//! intermediate (its composed LayerNorm and softmax are a dozen passes each, forward and
//! backward); these fuse the passes and use branch-free polynomial approximations (errors
//! ~1e-7, tested against f64) that the compiler vectorises, with an AVX2+FMA build chosen at
//! run time.
//!
//! GELU, LayerNorm, the softmax and the linear layer have backward passes (checked against
//! candle's composed ops in the tests) and serve training too; the fused attention has none and
//! serves inference only. [`super::layers`] chooses.
//!
//! Reductions run over fixed-size chunks combined in a fixed order, so results do not depend on
//! the number of threads.

use candle_core::{CpuStorage, Layout, Result, bail};

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
    // Cephes lists 5.0000001e-1 here; in f32 that is exactly 0.5.
    let p = p.mul_add(r, 0.5);
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

/// Defines `$name`, which runs `$kernel` compiled for AVX2+FMA when the CPU has them.
macro_rules! multiversion {
    ($vis:vis $name:ident, $avx:ident, $kernel:ident, ($($arg:ident : $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx($($arg: $ty),*) {
            $kernel($($arg),*)
        }

        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU supports the features the function was compiled for.
                return unsafe { $avx($($arg),*) };
            }
            $kernel($($arg),*)
        }
    };
}

mod adamw;
mod attention;
mod gelu;
mod layer_norm;
mod linear;
mod softmax;

pub use adamw::{AdamWScalars, AdamWUpdate};
pub use attention::FusedAttention;
pub use gelu::GeluErf;
pub use layer_norm::LayerNorm;
pub use linear::LinearBias;
pub use softmax::MaskedSoftmax;

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else { bail!("{what}: input must be contiguous") };
    match storage {
        CpuStorage::F32(v) => Ok(&v[start..end]),
        _ => bail!("{what}: input must be f32"),
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

/// Rows per task of the row-wise kernels; also the unit of their fixed-order reductions.
const ROW_CHUNK: usize = 16;

#[cfg(test)]
pub(crate) mod test_util {
    pub fn randn(shape: &[usize], seed: u64) -> candle_core::Tensor {
        let mut rng = crate::util::rng::SplitMix::new(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
        candle_core::Tensor::from_vec(v, shape, &candle_core::Device::Cpu).unwrap()
    }

    pub fn max_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
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
}
