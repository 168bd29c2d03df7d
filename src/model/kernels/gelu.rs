//! Exact-erf GELU (BERT's "gelu"), forward and backward.

use super::{contiguous_f32, erf_approx, exp_approx};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

#[inline(always)]
fn gelu_erf_kernel(src: &[f32], dst: &mut [f32]) {
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = 0.5 * x * (1.0 + erf_approx(x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// `g · GELU'(x)` with GELU'(x) = Φ(x) + x·φ(x).
#[inline(always)]
fn gelu_erf_grad_kernel(x: &[f32], g: &[f32], dst: &mut [f32]) {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    for ((d, &x), &g) in dst.iter_mut().zip(x).zip(g) {
        let cdf = 0.5 * (1.0 + erf_approx(x * std::f32::consts::FRAC_1_SQRT_2));
        let pdf = INV_SQRT_2PI * exp_approx(-0.5 * x * x);
        *d = g * x.mul_add(pdf, cdf);
    }
}

multiversion!(gelu_erf_chunk, gelu_erf_chunk_avx2, gelu_erf_kernel, (src: &[f32], dst: &mut [f32]));
multiversion!(gelu_erf_grad_chunk, gelu_erf_grad_chunk_avx2, gelu_erf_grad_kernel, (x: &[f32], g: &[f32], dst: &mut [f32]));

pub struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "fairnc-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout, self.name())?;
        let mut dst = vec![0f32; src.len()];
        dst.par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).for_each(|(d, s)| gelu_erf_chunk(s, d));
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&grad.contiguous()?, &GeluErfGrad)?))
    }
}

struct GeluErfGrad;

impl CustomOp2 for GeluErfGrad {
    fn name(&self) -> &'static str {
        "fairnc-gelu-erf-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, self.name())?;
        let g = contiguous_f32(s2, l2, self.name())?;
        if l1.shape() != l2.shape() {
            bail!("{}: input {:?} and gradient {:?} differ", self.name(), l1.shape(), l2.shape());
        }
        let mut dst = vec![0f32; x.len()];
        dst.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
            .for_each(|(d, (x, g))| gelu_erf_grad_chunk(x, g, d));
        Ok((CpuStorage::F32(dst), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::test_util::{max_diff, randn};

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

    #[test]
    fn gelu_gradient_matches_f64_derivative() {
        let mut worst: f64 = 0.0;
        for i in 0..200_000 {
            let x = -12.0 + 24.0 * i as f32 / 200_000.0;
            let xd = x as f64;
            let cdf = 0.5 * (1.0 + statrs::function::erf::erf(xd / std::f64::consts::SQRT_2));
            let want = cdf + xd * (-0.5 * xd * xd).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let mut got = [0f32];
            gelu_erf_grad_chunk(&[x], &[1.0], &mut got);
            worst = worst.max((got[0] as f64 - want).abs());
        }
        assert!(worst < 1e-6, "error {worst}");
    }

    #[test]
    fn gelu_gradient_matches_candle() {
        let x = candle_core::Var::from_tensor(&randn(&[40, 50], 1)).unwrap();
        let up = randn(&[40, 50], 2);
        let gw = (x.as_tensor().gelu_erf().unwrap() * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let gg = (x.as_tensor().apply_op1(GeluErf).unwrap() * &up).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(max_diff(gg.get(&x).unwrap(), gw.get(&x).unwrap()) < 1e-5);
    }
}
