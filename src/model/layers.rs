//! Building blocks shared by the families, written so that gradients reach every parameter.
//!
//! candle's fused `layer_norm` and `softmax_last_dim` kernels have no backward pass: they are
//! used only when [`Exec::grad`] is false (inference), and the composed versions otherwise.

use super::config::Activation;
use crate::util::rng::SplitMix;
use anyhow::Result;
use super::kernels;
use candle_core::{D, DType, Tensor, Var};
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

/// True when the fused CPU inference kernels apply.
fn fast_path(x: &Tensor, exec: Exec) -> bool {
    !exec.grad && x.device().is_cpu() && x.dtype() == DType::F32
}

/// `x · Wᵀ + b` for a PyTorch `nn.Linear` weight `[out, in]`, over the last dimension.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor, exec: Exec) -> Result<Tensor> {
    if fast_path(x, exec) {
        return Ok(x.contiguous()?.apply_op3_no_bwd(&w.contiguous()?, b, &kernels::LinearBias { transposed: true })?);
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
    if fast_path(x, exec) {
        return Ok(x.contiguous()?.apply_op3_no_bwd(w, b, &kernels::LinearBias { transposed: false })?);
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
        Activation::GeluErf if fast_path(x, exec) => {
            x.contiguous()?.apply_op1_no_bwd(&kernels::GeluErf)?
        }
        Activation::GeluErf => x.gelu_erf()?,
        Activation::GeluTanh => x.gelu()?,
        Activation::Relu => x.relu()?,
    })
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
        let n = x.elem_count();
        let mask: Vec<f32> = {
            let mut rng = self.rng.lock().unwrap();
            (0..n).map(|_| if rng.uniform() < p as f64 { 0.0 } else { scale }).collect()
        };
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        Ok(x.mul(&mask)?)
    }
}

/// Multi-head scaled dot-product attention from the fused projection `qkv [B, T, 3D]`
/// (Q, K, V side by side) with an additive mask broadcasting to `[B, H, T, T]`; returns the
/// merged context `[B, T, D]`.
pub fn self_attention(qkv: &Tensor, mask: &Tensor, heads: usize, dropout: &Dropout, p: f32, exec: Exec) -> Result<Tensor> {
    let (b, t, d3) = qkv.dims3()?;
    let d = d3 / 3;
    let scale = 1.0 / ((d / heads) as f64).sqrt();
    if fast_path(qkv, exec) && !(exec.dropout && p > 0.0) {
        let op = kernels::FusedAttention { heads, scale: scale as f32 };
        return Ok(qkv.contiguous()?.apply_op2_no_bwd(&mask.contiguous()?, &op)?);
    }
    let q = split_heads(&qkv.narrow(2, 0, d)?, heads)?;
    let k = split_heads(&qkv.narrow(2, d, d)?, heads)?;
    let v = split_heads(&qkv.narrow(2, 2 * d, d)?, heads)?;
    let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
    let probs = dropout.apply(&softmax_last(&scores, exec)?, p, exec)?;
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
