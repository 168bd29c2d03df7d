//! Building blocks shared by the families, written so that gradients reach every parameter.
//!
//! candle's fused `layer_norm` and `softmax_last_dim` kernels have no backward pass: they are
//! used only when [`Exec::grad`] is false (inference), and the composed versions otherwise.

use super::config::Activation;
use crate::util::rng::SplitMix;
use anyhow::Result;
use candle_core::{D, Tensor, Var};
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

/// `x · Wᵀ + b` for a PyTorch `nn.Linear` weight `[out, in]`, over the last dimension.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let din = *dims.last().expect("linear on a scalar");
    let rows = x.elem_count() / din;
    let y = x.reshape((rows, din))?.matmul(&w.t()?)?.broadcast_add(b)?;
    let mut out = dims;
    *out.last_mut().unwrap() = w.dim(0)?;
    Ok(y.reshape(out)?)
}

/// `x · W + b` for a GPT-2 `Conv1D` weight stored as `[in, out]`.
pub fn conv1d(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
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

pub fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    Ok(match act {
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

    pub fn state(&self) -> SplitMix {
        self.rng.lock().unwrap().clone()
    }

    pub fn set_state(&self, state: SplitMix) {
        *self.rng.lock().unwrap() = state;
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

/// Scaled dot-product attention over `[B, H, T, dh]` inputs with an additive mask that
/// broadcasts to `[B, H, T, T]`; returns `[B, T, H·dh]`.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    dropout: &Dropout,
    p: f32,
    exec: Exec,
) -> Result<Tensor> {
    let (b, h, t, dh) = q.dims4()?;
    let scale = 1.0 / (dh as f64).sqrt();
    let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
    let probs = softmax_last(&scores, exec)?;
    let probs = dropout.apply(&probs, p, exec)?;
    let ctx = probs.matmul(v)?; // [B, H, T, dh]
    Ok(ctx.transpose(1, 2)?.reshape((b, t, h * dh))?)
}

/// `[B, T, H·dh]` → `[B, H, T, dh]`, contiguous.
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, t, d) = x.dims3()?;
    Ok(x.reshape((b, t, heads, d / heads))?.transpose(1, 2)?.contiguous()?)
}

/// Large negative additive bias for masked attention positions; exp() of it is exactly 0.
pub const MASKED: f32 = -1e9;
