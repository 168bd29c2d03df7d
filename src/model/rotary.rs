//! Rotary position embeddings (Llama's `rotate_half` form, halves not interleaved), applied to
//! `[B, T, H, dh]` heads; GPT-NeoX rotates only the first `rope.dims` channels of each head.

use super::decoder_config::Rope;
use super::layers::Exec;
use anyhow::Result;
use candle_core::{D, Device, Tensor};

/// cos and sin tables `[T, dims/2]` for positions `0..t`, from f32 frequencies as transformers
/// computes them (`freqs = inv_freq ⊗ positions` in f32; cos/sin of that product).
pub struct RotaryTables {
    cos: Tensor,
    sin: Tensor,
    dims: usize,
}

impl RotaryTables {
    pub fn new(rope: &Rope, t: usize, device: &Device) -> Result<Self> {
        let inv = rope.inv_freq();
        let half = inv.len();
        let mut cos = Vec::with_capacity(t * half);
        let mut sin = Vec::with_capacity(t * half);
        for p in 0..t {
            for &f in &inv {
                let angle = (p as f32 * f) as f64;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        Ok(RotaryTables {
            cos: Tensor::from_vec(cos, (t, half), device)?,
            sin: Tensor::from_vec(sin, (t, half), device)?,
            dims: rope.dims,
        })
    }

    /// Rotates `x [B, T, H, dh]`. Inference runs candle's fused kernel; training the composed
    /// form, which has a backward pass.
    pub fn apply(&self, x: &Tensor, exec: Exec) -> Result<Tensor> {
        let dh = x.dim(D::Minus1)?;
        let (cos, sin) = (self.cos.to_dtype(x.dtype())?, self.sin.to_dtype(x.dtype())?);
        if self.dims < dh {
            let rot = self.rotate(&x.narrow(D::Minus1, 0, self.dims)?.contiguous()?, &cos, &sin, exec)?;
            let pass = x.narrow(D::Minus1, self.dims, dh - self.dims)?;
            return Ok(Tensor::cat(&[&rot, &pass], D::Minus1)?);
        }
        self.rotate(x, &cos, &sin, exec)
    }

    fn rotate(&self, x: &Tensor, cos: &Tensor, sin: &Tensor, exec: Exec) -> Result<Tensor> {
        if !exec.grad {
            return Ok(candle_nn::rotary_emb::rope_thd(&x.contiguous()?, cos, sin)?);
        }
        let (_, t, _, _) = x.dims4()?;
        let full = |c: &Tensor| -> Result<Tensor> {
            Ok(Tensor::cat(&[c, c], D::Minus1)?.narrow(0, 0, t)?.unsqueeze(0)?.unsqueeze(2)?)
        };
        let half = self.dims / 2;
        let x1 = x.narrow(D::Minus1, 0, half)?;
        let x2 = x.narrow(D::Minus1, half, half)?;
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        Ok((x.broadcast_mul(&full(cos)?)? + rotated.broadcast_mul(&full(sin)?)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::decoder_config::RopeScaling;

    #[test]
    fn fused_and_composed_rotations_agree_and_position_zero_is_identity() {
        let rope = Rope { theta: 10000.0, dims: 8, scaling: RopeScaling::None };
        let dev = Device::Cpu;
        let tables = RotaryTables::new(&rope, 5, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 5, 3, 8), &dev).unwrap();
        let a = tables.apply(&x, Exec::INFER).unwrap();
        let b = tables.apply(&x, Exec { dropout: false, grad: true }).unwrap();
        let diff = (&a - &b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-6, "{diff}");
        let first = (a.narrow(1, 0, 1).unwrap() - x.narrow(1, 0, 1).unwrap()).unwrap();
        assert!(first.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() < 1e-7);
        // Partial rotation leaves the other channels alone.
        let part = RotaryTables::new(&Rope { dims: 4, ..rope }, 5, &dev).unwrap();
        let y = part.apply(&x, Exec::INFER).unwrap();
        let rest = (y.narrow(3, 4, 4).unwrap() - x.narrow(3, 4, 4).unwrap()).unwrap();
        assert_eq!(rest.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
    }
}
