//! AdamW with decoupled weight decay (PyTorch's `torch.optim.AdamW`), the linear learning-rate
//! schedule with optional warm-up (`transformers.get_linear_schedule_with_warmup`), and
//! global-norm gradient clipping (`torch.nn.utils.clip_grad_norm_`).

use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// The release's defaults (METHOD §7): lr 2e-5, ε 1e-8; PyTorch's betas; decay 0.01.
    fn default() -> Self {
        AdamWConfig { lr: 2e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

/// Biases and LayerNorm / RMSNorm parameters are not decayed (as in the release and
/// transformers' Trainer, whose rule also names `layernorm`, `rmsnorm` and `norm` modules).
pub fn decays(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !(name.ends_with(".bias")
        || lower.contains("layernorm")
        || lower.contains("layer_norm")
        || lower.contains("rmsnorm")
        || name.contains(".ln_")
        || name.ends_with("norm.weight"))
}

struct Slot {
    var: Var,
    decay: bool,
    /// Multiplier of the learning rate for this parameter (parameter groups).
    lr_scale: f64,
    m: Tensor,
    v: Tensor,
}

pub struct AdamW {
    pub config: AdamWConfig,
    slots: BTreeMap<String, Slot>,
    pub step: u64,
}

impl AdamW {
    pub fn new(vars: Vec<(String, Var)>, config: AdamWConfig) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let m = var.as_tensor().zeros_like()?;
                let v = var.as_tensor().zeros_like()?;
                Ok((name.clone(), Slot { decay: decays(&name), lr_scale: 1.0, var, m, v }))
            })
            .collect::<Result<_>>()?;
        Ok(AdamW { config, slots, step: 0 })
    }

    /// Gives the parameters whose name satisfies `select` `scale` × the learning rate (a
    /// second parameter group, e.g. a new head that must move faster than the encoder).
    pub fn scale_lr(&mut self, select: impl Fn(&str) -> bool, scale: f64) {
        for (name, slot) in self.slots.iter_mut() {
            if select(name) {
                slot.lr_scale = scale;
            }
        }
    }

    /// One update with learning rate `lr` from the gradients in `grads` (parameters without a
    /// gradient are left alone, as PyTorch skips `p.grad is None`).
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2_sqrt = (1.0 - c.beta2.powi(t)).sqrt();
        for slot in self.slots.values_mut() {
            let Some(g) = grads.get(slot.var.as_tensor()) else { continue };
            // A gradient that still carries a graph would chain every step's graph into the
            // moments and keep them all alive.
            let g = &g.detach();
            let lr = lr * slot.lr_scale;
            let mut p = slot.var.as_tensor().clone();
            if slot.decay && c.weight_decay != 0.0 {
                p = (p * (1.0 - lr * c.weight_decay))?;
            }
            slot.m = ((&slot.m * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            slot.v = ((&slot.v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let denom = ((slot.v.sqrt()? / bc2_sqrt)? + c.eps)?;
            let update = (slot.m.div(&denom)? * (lr / bc1))?;
            slot.var.set(&(p - update)?)?;
        }
        Ok(())
    }

    /// Moment estimates by parameter name, for checkpoints.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.slots
            .iter()
            .flat_map(|(n, s)| [(format!("{n}.exp_avg"), s.m.clone()), (format!("{n}.exp_avg_sq"), s.v.clone())])
            .collect()
    }

    /// Restores [`Self::state`] and the step count.
    pub fn load_state(&mut self, state: &BTreeMap<String, Tensor>, step: u64) -> Result<()> {
        for (n, s) in self.slots.iter_mut() {
            let get = |k: String| state.get(&k).cloned().ok_or_else(|| anyhow::anyhow!("optimizer state has no {k}"));
            s.m = get(format!("{n}.exp_avg"))?;
            s.v = get(format!("{n}.exp_avg_sq"))?;
        }
        self.step = step;
        Ok(())
    }
}

/// Scales all gradients so that their global L2 norm is at most `max_norm`; returns the norm
/// before clipping (as `clip_grad_norm_`: coefficient max_norm / (norm + 1e-6), capped at 1).
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    let mut total = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            total += g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        }
    }
    let norm = total.sqrt();
    let coef = (max_norm / (norm + 1e-6)).min(1.0);
    if coef < 1.0 {
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * coef)?);
            }
        }
    }
    Ok(norm)
}

/// Linear decay to 0 after `warmup` steps of linear increase from 0.
pub fn linear_schedule(base: f64, step: u64, warmup: u64, total: u64) -> f64 {
    if step < warmup {
        base * step as f64 / warmup.max(1) as f64
    } else {
        base * (total.saturating_sub(step) as f64 / total.saturating_sub(warmup).max(1) as f64).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Two AdamW steps on f(p) = Σ p², against the update rule written out in f64.
    #[test]
    fn adamw_matches_the_update_rule() {
        let p0 = [0.5f64, -1.5, 2.0];
        let var = Var::from_tensor(&Tensor::new(&[0.5f32, -1.5, 2.0], &Device::Cpu).unwrap()).unwrap();
        let cfg = AdamWConfig { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 };
        let mut opt = AdamW::new(vec![("w.weight".into(), var.clone())], cfg).unwrap();
        let (mut p, mut m, mut v) = (p0.to_vec(), vec![0f64; 3], vec![0f64; 3]);
        for t in 1..=2 {
            let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&grads, cfg.lr).unwrap();
            for i in 0..3 {
                let g = 2.0 * p[i];
                p[i] *= 1.0 - cfg.lr * cfg.weight_decay;
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let denom = v[i].sqrt() / (1.0 - 0.999f64.powi(t)).sqrt() + 1e-8;
                p[i] -= cfg.lr / (1.0 - 0.9f64.powi(t)) * m[i] / denom;
            }
        }
        let got: Vec<f32> = var.as_tensor().to_vec1().unwrap();
        for (a, b) in got.iter().zip(&p) {
            assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn biases_and_norms_are_not_decayed() {
        assert!(decays("bert.encoder.layer.0.attention.self.query.weight"));
        assert!(!decays("bert.encoder.layer.0.attention.self.query.bias"));
        assert!(!decays("bert.embeddings.LayerNorm.weight"));
        assert!(!decays("lm_head.layer_norm.weight"));
        assert!(!decays("transformer.h.0.ln_1.weight"));
        assert!(!decays("model.layers.0.input_layernorm.weight"));
        assert!(!decays("model.norm.weight"));
        assert!(!decays("gpt_neox.final_layer_norm.weight"));
        assert!(decays("model.layers.0.mlp.gate_proj.weight"));
        assert!(decays("lm_head.weight"));
    }

    #[test]
    fn schedule_and_clipping() {
        assert_eq!(linear_schedule(1.0, 0, 10, 110), 0.0);
        assert_eq!(linear_schedule(1.0, 5, 10, 110), 0.5);
        assert_eq!(linear_schedule(1.0, 10, 10, 110), 1.0);
        assert_eq!(linear_schedule(1.0, 60, 10, 110), 0.5);
        assert_eq!(linear_schedule(1.0, 0, 0, 100), 1.0);
        assert_eq!(linear_schedule(1.0, 100, 0, 100), 0.0);
        let var = Var::from_tensor(&Tensor::new(&[3f32, 4.0], &Device::Cpu).unwrap()).unwrap();
        let loss = (var.as_tensor() * &Tensor::new(&[3f32, 4.0], &Device::Cpu).unwrap()).unwrap().sum_all().unwrap();
        let mut grads = loss.backward().unwrap();
        let norm = clip_grad_norm(&mut grads, std::slice::from_ref(&var), 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-6);
        let g: Vec<f32> = grads.get(var.as_tensor()).unwrap().to_vec1().unwrap();
        assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6);
    }
}
