//! Attention with explicit probabilities, for measures that read them (AULA, mlm-bias's CRRA
//! and ΔPA): the attention each key position *receives*, averaged over heads and over the real
//! (unpadded) query positions. Inference only; the fused path of [`super::layers`] is left
//! as it is, so training and every other measurement keep their numbers.

use anyhow::Result;
use candle_core::{D, DType, Tensor};

/// Multi-head attention from the fused projection `qkv [B, T, 3D]` with the additive padding
/// mask `[B, 1, 1, T]` (the activations' dtype) and the 0/1 mask `real [B, T]` (f32). Returns
/// the merged context `[B, T, D]` and, per row, the attention each key received, `[B, T]`
/// f32: the mean over heads and over the row's real query positions (padding queries would
/// otherwise move the numbers with the batch a sentence is in).
pub fn attention_with_received(qkv: &Tensor, mask: &Tensor, real: &Tensor, heads: usize) -> Result<(Tensor, Tensor)> {
    let (b, t, d3) = qkv.dims3()?;
    let d = d3 / 3;
    let scale = 1.0 / ((d / heads) as f64).sqrt();
    let split =
        |x: Tensor| -> Result<Tensor> { Ok(x.reshape((b, t, heads, d / heads))?.transpose(1, 2)?.contiguous()?) };
    let q = split(qkv.narrow(2, 0, d)?)?;
    let k = split(qkv.narrow(2, d, d)?)?;
    let v = split(qkv.narrow(2, 2 * d, d)?)?;
    let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores.contiguous()?)?; // [B, H, Tq, Tk]
    let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
    Ok((ctx, received(&probs.to_dtype(DType::F32)?, real)?))
}

/// `[B, H, Tq, Tk]` probabilities → `[B, Tk]`: mean over heads and the real queries.
fn received(probs: &Tensor, real: &Tensor) -> Result<Tensor> {
    let (b, h, t, _) = probs.dims4()?;
    let per_query = real.reshape((b, 1, t, 1))?;
    let summed = probs.broadcast_mul(&per_query)?.sum(2)?.sum(1)?; // [B, Tk]
    let count = (real.sum_keepdim(D::Minus1)? * h as f64)?; // [B, 1]
    Ok(summed.broadcast_div(&count)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn padding_queries_and_keys_leave_the_received_attention_unchanged() {
        let dev = Device::Cpu;
        let (t, d, heads) = (3, 4, 2);
        let vals: Vec<f32> = (0..t * 3 * d).map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0).collect();
        let alone = Tensor::from_vec(vals.clone(), (1, t, 3 * d), &dev).unwrap();
        let mask0 = Tensor::zeros((1, 1, 1, t), DType::F32, &dev).unwrap();
        let real0 = Tensor::ones((1, t), DType::F32, &dev).unwrap();
        let (_, r0) = attention_with_received(&alone, &mask0, &real0, heads).unwrap();
        // The same row padded by two positions of arbitrary content.
        let mut padded = vals.clone();
        padded.extend((0..2 * 3 * d).map(|i| i as f32 / 3.0));
        let padded = Tensor::from_vec(padded, (1, t + 2, 3 * d), &dev).unwrap();
        let mask = Tensor::from_vec(vec![0f32, 0.0, 0.0, -1e9, -1e9], (1, 1, 1, t + 2), &dev).unwrap();
        let real = Tensor::from_vec(vec![1f32, 1.0, 1.0, 0.0, 0.0], (1, t + 2), &dev).unwrap();
        let (_, r1) = attention_with_received(&padded, &mask, &real, heads).unwrap();
        let a: Vec<f32> = r0.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = r1.flatten_all().unwrap().to_vec1().unwrap();
        for k in 0..t {
            assert!((a[k] - b[k]).abs() < 1e-6, "{a:?} vs {b:?}");
        }
        assert!(b[t] == 0.0 && b[t + 1] == 0.0, "padding keys receive nothing: {b:?}");
        // Each query's row sums to 1, so the mean over queries sums to 1 over the keys.
        assert!((a.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}
