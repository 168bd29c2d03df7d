//! Building blocks shared by the families, written so that gradients reach every parameter.
//!
//! On the CPU (f32) the ops run on our [`kernels`]: training on those with a backward pass
//! (linear, GELU, LayerNorm, the attention softmax), inference also on the fused attention;
//! inference LayerNorm stays candle's fused kernel. Elsewhere candle's fused `layer_norm` and
//! `softmax_last_dim` serve inference and composed ops serve training: candle's fused kernels
//! have no backward pass.

use super::config::Activation;
use super::kernels;
use crate::util::rng::SplitMix;
use anyhow::Result;
use candle_core::{CustomOp1, CustomOp2, CustomOp3, D, DType, Tensor, Var};
use rayon::prelude::*;
use std::sync::Mutex;

/// How a forward pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exec {
    /// Apply dropout (training mode).
    pub dropout: bool,
    /// A backward pass will follow: use only ops that have one.
    pub grad: bool,
}

impl Exec {
    pub const INFER: Exec = Exec { dropout: false, grad: false };
    pub const TRAIN: Exec = Exec { dropout: true, grad: true };
}

/// True when our CPU kernels apply.
fn cpu_f32(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// Applies a kernel, recording it for the backward pass only when one will follow.
fn op1(x: &Tensor, op: impl CustomOp1 + Send + Sync + 'static, exec: Exec) -> Result<Tensor> {
    let x = x.contiguous()?;
    Ok(if exec.grad { x.apply_op1(op)? } else { x.apply_op1_no_bwd(&op)? })
}

fn op2(x: &Tensor, a: &Tensor, op: impl CustomOp2 + Send + Sync + 'static, exec: Exec) -> Result<Tensor> {
    let (x, a) = (x.contiguous()?, a.contiguous()?);
    Ok(if exec.grad { x.apply_op2(&a, op)? } else { x.apply_op2_no_bwd(&a, &op)? })
}

fn op3(x: &Tensor, a: &Tensor, b: &Tensor, op: impl CustomOp3 + Send + Sync + 'static, exec: Exec) -> Result<Tensor> {
    let (x, a, b) = (x.contiguous()?, a.contiguous()?, b.contiguous()?);
    Ok(if exec.grad { x.apply_op3(&a, &b, op)? } else { x.apply_op3_no_bwd(&a, &b, &op)? })
}

/// `x · Wᵀ + b` for a PyTorch `nn.Linear` weight `[out, in]`, over the last dimension.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor, exec: Exec) -> Result<Tensor> {
    if cpu_f32(x) {
        return op3(x, w, b, kernels::LinearBias { transposed: true }, exec);
    }
    let dims = x.dims().to_vec();
    let din = *dims.last().expect("linear on a scalar");
    let rows = x.elem_count() / din;
    let y = x.reshape((rows, din))?.matmul(&w.t()?)?.broadcast_add(b)?;
    let mut out = dims;
    *out.last_mut().unwrap() = w.dim(0)?;
    Ok(y.reshape(out)?)
}

/// `x · W + b` for a GPT-2 `Conv1D` weight stored as `[in, out]`.
pub fn conv1d(x: &Tensor, w: &Tensor, b: &Tensor, exec: Exec) -> Result<Tensor> {
    if cpu_f32(x) {
        return op3(x, w, b, kernels::LinearBias { transposed: false }, exec);
    }
    let dims = x.dims().to_vec();
    let din = *dims.last().expect("conv1d on a scalar");
    let rows = x.elem_count() / din;
    let y = x.reshape((rows, din))?.matmul(w)?.broadcast_add(b)?;
    let mut out = dims;
    *out.last_mut().unwrap() = w.dim(1)?;
    Ok(y.reshape(out)?)
}

pub fn layer_norm(x: &Tensor, w: &Var, b: &Var, eps: f64, exec: Exec) -> Result<Tensor> {
    // Inference keeps candle's fused kernel: the collapse statistics are pinned to it at 1e-6.
    if cpu_f32(x) && exec.grad {
        return op3(x, w.as_tensor(), b.as_tensor(), kernels::LayerNorm { eps: eps as f32 }, exec);
    }
    Ok(if exec.grad {
        candle_nn::ops::layer_norm_slow(x, w.as_tensor(), b.as_tensor(), eps as f32)?
    } else {
        candle_nn::ops::layer_norm(&x.contiguous()?, w.as_tensor(), b.as_tensor(), eps as f32)?
    })
}

pub fn softmax_last(x: &Tensor, exec: Exec) -> Result<Tensor> {
    Ok(if exec.grad {
        candle_nn::ops::softmax(x, D::Minus1)?
    } else {
        candle_nn::ops::softmax_last_dim(&x.contiguous()?)?
    })
}

pub fn activate(x: &Tensor, act: Activation, exec: Exec) -> Result<Tensor> {
    Ok(match act {
        Activation::GeluErf if cpu_f32(x) => op1(x, kernels::GeluErf, exec)?,
        Activation::GeluErf => x.gelu_erf()?,
        Activation::GeluTanh => x.gelu()?,
        Activation::Relu => x.relu()?,
        Activation::Silu => x.silu()?,
    })
}

/// Rows of an embedding table for a batch's token ids `[B, T]`: `[B, T, width]`.
pub fn embed_tokens(table: &Var, ids: &Tensor) -> Result<Tensor> {
    let (b, t) = ids.dims2()?;
    Ok(table.as_tensor().embedding(&ids.flatten_all()?)?.reshape((b, t, ()))?)
}

/// Vocabulary logits `[N, V]` of rows `[N, D]` against a bias-free head `W [V, D]` (the
/// decoders' LM heads, tied or not).
pub fn head_logits(rows: &Tensor, w: &Var) -> Result<Tensor> {
    Ok(rows.matmul(&w.as_tensor().t()?)?)
}

/// Inverted dropout with masks drawn from a seeded generator, so that training runs are
/// reproducible (candle's CPU random source cannot be seeded).
pub struct Dropout {
    rng: Mutex<SplitMix>,
}

impl Dropout {
    pub fn new(seed: u64) -> Self {
        Dropout { rng: Mutex::new(SplitMix::new(seed)) }
    }

    pub fn reseed(&self, seed: u64) {
        *self.rng.lock().unwrap() = SplitMix::new(seed);
    }

    pub fn apply(&self, x: &Tensor, p: f32, exec: Exec) -> Result<Tensor> {
        if !exec.dropout || p <= 0.0 {
            return Ok(x.clone());
        }
        let scale = 1.0 / (1.0 - p);
        // One draw per call seeds fixed-size chunks filled in parallel: the mask depends on
        // the seed alone, not on the number of threads.
        let seed = self.rng.lock().unwrap().next_u64();
        let mut mask = vec![0f32; x.elem_count()];
        mask.par_chunks_mut(1 << 14).enumerate().for_each(|(c, m)| {
            let mut rng = SplitMix::substream(seed, c as u64 + 1);
            for v in m {
                *v = if rng.uniform() < p as f64 { 0.0 } else { scale };
            }
        });
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        Ok(x.mul(&mask)?)
    }
}

/// Multi-head scaled dot-product attention from the fused projection `qkv [B, T, 3D]`
/// (Q, K, V side by side) with an additive mask broadcasting to `[B, H, T, T]`; returns the
/// merged context `[B, T, D]`.
pub fn self_attention(
    qkv: &Tensor,
    mask: &Tensor,
    heads: usize,
    dropout: &Dropout,
    p: f32,
    exec: Exec,
) -> Result<Tensor> {
    let (b, t, d3) = qkv.dims3()?;
    let d = d3 / 3;
    let scale = 1.0 / ((d / heads) as f64).sqrt();
    if cpu_f32(qkv) && !exec.grad && !(exec.dropout && p > 0.0) {
        let op = kernels::FusedAttention { heads, scale: scale as f32 };
        return op2(qkv, mask, op, exec);
    }
    let q = split_heads(&qkv.narrow(2, 0, d)?, heads)?;
    let k = split_heads(&qkv.narrow(2, d, d)?, heads)?;
    let v = split_heads(&qkv.narrow(2, 2 * d, d)?, heads)?;
    let probs = if cpu_f32(qkv) {
        op2(&q.matmul(&k.t()?)?, mask, kernels::MaskedSoftmax { scale: scale as f32 }, exec)?
    } else {
        softmax_last(&(q.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?, exec)?
    };
    let probs = dropout.apply(&probs, p, exec)?;
    let ctx = probs.matmul(&v)?; // [B, H, T, dh]
    Ok(ctx.transpose(1, 2)?.reshape((b, t, d))?)
}

/// `[B, T, H·dh]` → `[B, H, T, dh]`, contiguous.
fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, t, d) = x.dims3()?;
    Ok(x.reshape((b, t, heads, d / heads))?.transpose(1, 2)?.contiguous()?)
}

/// Large negative additive bias for masked attention positions; exp() of it is exactly 0.
pub const MASKED: f32 = -1e9;
