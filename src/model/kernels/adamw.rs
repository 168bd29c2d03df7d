//! One AdamW update of an f32 parameter in place: decay, both moments and the step in one pass
//! over parameter, gradient and moments. The composed tensor version allocates about a dozen
//! parameter-sized temporaries per step (for the vocabulary matrix, 47 MB each on MiniLM) and
//! makes as many passes over memory.
//!
//! The arithmetic is the composed version's, operation for operation in f32 (candle's scalar
//! multiply, `x / s` as `x · (1/s)`, `x + ε`), so both give the same bits
//! (`optim::tests::fused_update_is_bit_identical_to_the_composed_one`).

use super::contiguous_f32;
use candle_core::{CpuStorage, InplaceOp2, Layout, Result, bail};
use rayon::prelude::*;
use std::cell::RefCell;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// The step's scalars, each as the composed version rounds it to f32.
#[derive(Clone, Copy)]
pub struct AdamWScalars {
    /// 1 − lr·λ (1 where the parameter is not decayed).
    pub decay: f32,
    pub beta1: f32,
    pub one_minus_beta1: f32,
    pub beta2: f32,
    pub one_minus_beta2: f32,
    /// 1 / √(1 − β₂ᵗ).
    pub inv_bc2_sqrt: f32,
    pub eps: f32,
    /// lr / (1 − β₁ᵗ).
    pub step_size: f32,
}

#[inline(always)]
fn adamw_kernel(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamWScalars) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        *m = *m * s.beta1 + g * s.one_minus_beta1;
        *v = *v * s.beta2 + (g * g) * s.one_minus_beta2;
        let denom = v.sqrt() * s.inv_bc2_sqrt + s.eps;
        *p = *p * s.decay - (*m / denom) * s.step_size;
    }
}

multiversion!(adamw_chunk, adamw_chunk_avx2, adamw_kernel,
    (p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamWScalars));

/// The in-place op on the parameter, reading the gradient; the moments live in host memory the
/// optimizer owns and are updated in the same pass.
pub struct AdamWUpdate<'a> {
    pub m: RefCell<&'a mut [f32]>,
    pub v: RefCell<&'a mut [f32]>,
    pub scalars: AdamWScalars,
}

impl InplaceOp2 for AdamWUpdate<'_> {
    fn name(&self) -> &'static str {
        "fairnc-adamw"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        let g = contiguous_f32(s2, l2, self.name())?;
        let Some((start, end)) = l1.contiguous_offsets() else {
            bail!("{}: parameter must be contiguous", self.name())
        };
        let CpuStorage::F32(p) = s1 else { bail!("{}: parameter must be f32", self.name()) };
        let p = &mut p[start..end];
        let (mut m, mut v) = (self.m.borrow_mut(), self.v.borrow_mut());
        if g.len() != p.len() || m.len() != p.len() || v.len() != p.len() {
            bail!(
                "{}: parameter {}, gradient {}, moments {}/{} elements",
                self.name(),
                p.len(),
                g.len(),
                m.len(),
                v.len()
            );
        }
        let s = &self.scalars;
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
            .for_each(|((p, g), (m, v))| adamw_chunk(p, g, m, v, s));
        Ok(())
    }
}
